/*
 * tc_observe.c - the worker's observability services (SPEC 6-7): health, metrics, templates and
 * configuration, answered as JSON (Prometheus text for metrics_prometheus) to the language
 * binding and to the web server (tc_web.c) alike.
 *
 * Threads and locks: any number of threads may call tc_obs_call at once. o->cache_mu guards the
 * template cache; o->breaker.mu the database circuit breaker. No database call runs under either.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tc_internal.h"

#define CACHE_MAX 256
#define REDACTED "***REDACTED***"

enum { CB_CLOSED = 0, CB_HALF_OPEN = 1, CB_OPEN = 2 };
static const char *const cb_names[] = {"closed", "half_open", "open"};

typedef struct breaker {
  pthread_mutex_t mu;
  int state;
  int failure_threshold, success_threshold;
  int64_t timeout_ms;
  int consecutive_failures, half_open_successes;
  uint64_t total_calls, success_count, failure_count, rejections;
  int64_t opened_at;
} breaker_t;

typedef struct cache_entry {
  char key[256];
  json_object *value; /* tc_template_get's answer */
  int64_t cached_at;  /* monotonic ms */
  uint64_t access_count;
} cache_entry_t;

struct tc_obs {
  tc_runtime_t *rt;
  tc_worker_t *w;
  char worker_id[64];
  char environment[64];
  json_object *config; /* the host's view of the configuration (unredacted; never returned as is) */
  breaker_t breaker;
  int queue_degraded, queue_unhealthy;
  pthread_mutex_t cache_mu;
  cache_entry_t *cache;
  int n_cache;
  uint64_t hits, misses, evictions;
  char last_maintenance[40];
};

/* ---- small helpers ---- */

static void now_iso(char buf[40]) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, 40 - n, ".%06ldZ", ts.tv_nsec / 1000);
}

static json_object *timestamp(void) {
  char buf[40];
  now_iso(buf);
  return json_object_new_string(buf);
}

/* Returns the serialized text as a new malloc'd string (the caller frees it with tc_obs_text_free). */
static int finish(json_object *obj, char **text, tc_error_t *err) {
  if (!obj) return tc_error_set(err, TC_ENOMEM, "out of memory building the response");
  const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  *text = s ? tc_strdup(s) : NULL;
  json_object_put(obj);
  return *text ? TC_OK : tc_error_set(err, TC_ENOMEM, "out of memory building the response");
}

void tc_obs_text_free(char *text) { tc_free(text); }

/* ---- secret redaction (SPEC 6.2) ---- */

static const char *const secret_words[] = {"password", "secret", "token", "key", "api_key", "private_key",
                                           "jwt_private_key", "jwt_public_key", "auth_token", "credentials",
                                           "database_url", "url", NULL};

static bool secret_key(const char *k) {
  for (int i = 0; secret_words[i]; i++)
    if (strcasestr(k, secret_words[i])) return true;
  return false;
}

static void redact_walk(json_object *v, const char *path, bool secret, json_object *paths) {
  if (json_object_is_type(v, json_type_object)) {
    json_object_object_foreach(v, k, child) {
      char sub[512];
      snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", k);
      bool s = secret || secret_key(k);
      if (s && ((json_object_is_type(child, json_type_string) && json_object_get_string_len(child) > 0) ||
                json_object_is_type(child, json_type_int) || json_object_is_type(child, json_type_double))) {
        json_object_object_add(v, k, json_object_new_string(REDACTED));
        json_object_array_add(paths, json_object_new_string(sub));
      } else {
        redact_walk(child, sub, s, paths);
      }
    }
  } else if (json_object_is_type(v, json_type_array)) {
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
      json_object *child = json_object_array_get_idx(v, i);
      char sub[512];
      snprintf(sub, sizeof sub, "%s[%zu]", path, i);
      if (secret && ((json_object_is_type(child, json_type_string) && json_object_get_string_len(child) > 0) ||
                     json_object_is_type(child, json_type_int) || json_object_is_type(child, json_type_double))) {
        json_object_array_put_idx(v, i, json_object_new_string(REDACTED));
        json_object_array_add(paths, json_object_new_string(sub));
      } else {
        redact_walk(child, sub, secret, paths);
      }
    }
  }
}

int tc_redact(json_object *in, json_object **out, json_object **paths, tc_error_t *err) {
  json_object *copy = NULL;
  if (json_object_deep_copy(in, &copy, NULL) != 0 || !copy)
    return tc_error_set(err, TC_ENOMEM, "out of memory copying the configuration");
  json_object *p = json_object_new_array();
  if (!p) {
    json_object_put(copy);
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  }
  redact_walk(copy, "", false, p);
  *out = copy;
  *paths = p;
  return TC_OK;
}

/* ---- database circuit breaker (SPEC 9.3) ---- */

static bool breaker_allow(breaker_t *b) {
  pthread_mutex_lock(&b->mu);
  if (b->state == CB_OPEN && tc_now_ms() - b->opened_at >= b->timeout_ms) {
    b->state = CB_HALF_OPEN;
    b->half_open_successes = 0;
  }
  bool ok = b->state != CB_OPEN;
  if (ok) b->total_calls++;
  else b->rejections++;
  pthread_mutex_unlock(&b->mu);
  return ok;
}

static void breaker_record(tc_obs_t *o, bool ok) {
  breaker_t *b = &o->breaker;
  pthread_mutex_lock(&b->mu);
  int before = b->state;
  if (ok) {
    b->success_count++;
    b->consecutive_failures = 0;
    if (b->state == CB_HALF_OPEN && ++b->half_open_successes >= b->success_threshold) b->state = CB_CLOSED;
  } else {
    b->failure_count++;
    b->consecutive_failures++;
    if (b->state == CB_HALF_OPEN || (b->state == CB_CLOSED && b->consecutive_failures >= b->failure_threshold)) {
      b->state = CB_OPEN;
      b->opened_at = tc_now_ms();
    }
  }
  int after = b->state;
  pthread_mutex_unlock(&b->mu);
  if (before != after)
    tc_log(o->rt, after == CB_OPEN ? TC_LOG_WARN : TC_LOG_INFO, "circuit_breaker_transition",
           "database circuit breaker %s -> %s", cb_names[before], cb_names[after]);
}

static json_object *breaker_json(breaker_t *b) {
  json_object *j = json_object_new_object();
  if (!j) return NULL;
  pthread_mutex_lock(&b->mu);
  if (b->state == CB_OPEN && tc_now_ms() - b->opened_at >= b->timeout_ms) {
    b->state = CB_HALF_OPEN;
    b->half_open_successes = 0;
  }
  json_object_object_add(j, "name", json_object_new_string("database"));
  json_object_object_add(j, "state", json_object_new_string(cb_names[b->state]));
  json_object_object_add(j, "is_healthy", json_object_new_boolean(b->state == CB_CLOSED));
  json_object_object_add(j, "success_count", json_object_new_int64((int64_t)b->success_count));
  json_object_object_add(j, "failure_count", json_object_new_int64((int64_t)b->failure_count));
  json_object_object_add(j, "consecutive_failures", json_object_new_int(b->consecutive_failures));
  json_object_object_add(j, "total_calls", json_object_new_int64((int64_t)b->total_calls));
  json_object_object_add(j, "circuit_open_rejections", json_object_new_int64((int64_t)b->rejections));
  json_object_object_add(j, "failure_threshold", json_object_new_int(b->failure_threshold));
  json_object_object_add(j, "success_threshold", json_object_new_int(b->success_threshold));
  json_object_object_add(j, "timeout_seconds", json_object_new_double((double)b->timeout_ms / 1000.0));
  pthread_mutex_unlock(&b->mu);
  return j;
}

static int breaker_state(breaker_t *b) {
  pthread_mutex_lock(&b->mu);
  int s = b->state;
  if (s == CB_OPEN && tc_now_ms() - b->opened_at >= b->timeout_ms) s = CB_HALF_OPEN;
  pthread_mutex_unlock(&b->mu);
  return s;
}

/* Runs a JSON query through the breaker: an open breaker answers at once without the database. */
static int guarded_query(tc_obs_t *o, const char *sql, int n, const char *const *params, json_object **out,
                         tc_error_t *err) {
  if (!breaker_allow(&o->breaker))
    return tc_error_set(err, TC_EDB, "database circuit breaker is open (%d consecutive failures)",
                        o->breaker.consecutive_failures);
  int rc = tc_rt_query_json(o->rt, sql, n, params, out, err);
  if (rc != TC_ENOMEM) breaker_record(o, rc == TC_OK);
  return rc;
}

/* ---- lifecycle ---- */

int tc_obs_new(tc_runtime_t *rt, tc_worker_t *w, json_object *options, tc_obs_t **out, tc_error_t *err) {
  if (!rt || !w) return tc_error_set(err, TC_EINVAL, "observability needs a runtime and a worker");
  if (options && !json_object_is_type(options, json_type_object))
    return tc_error_set(err, TC_ECONFIG, "observability options must be an object");
  int failures = 5, successes = 2, timeout_s = 30, degraded = 10000, unhealthy = 50000;
  json_object *cb = tc_json_get(options, "circuit_breaker");
  if (cb && !json_object_is_type(cb, json_type_object))
    return tc_error_set(err, TC_ECONFIG, "observability option circuit_breaker must be an object");
  const tc_int_opt_t breaker_ints[] = {{"failure_threshold", 1, 1000, &failures},
                                       {"success_threshold", 1, 1000, &successes},
                                       {"timeout_seconds", 1, 3600, &timeout_s}};
  const tc_int_opt_t queue_ints[] = {{"queue_depth_degraded", 1, 100000000, &degraded},
                                     {"queue_depth_unhealthy", 1, 100000000, &unhealthy}};
  int rc = tc_json_opt_ints(cb, breaker_ints, TC_COUNT(breaker_ints), TC_ECONFIG, "observability option ", err);
  if (rc == TC_OK)
    rc = tc_json_opt_ints(options, queue_ints, TC_COUNT(queue_ints), TC_ECONFIG, "observability option ", err);
  if (rc != TC_OK) return rc;
  json_object *env = tc_json_get(options, "environment"), *wid = tc_json_get(options, "worker_id"), *cfg = tc_json_get(options, "config");
  if (env && !json_object_is_type(env, json_type_string))
    return tc_error_set(err, TC_ECONFIG, "observability option environment must be a string");
  if (wid && !json_object_is_type(wid, json_type_string))
    return tc_error_set(err, TC_ECONFIG, "observability option worker_id must be a string");
  if (cfg && !json_object_is_type(cfg, json_type_object))
    return tc_error_set(err, TC_ECONFIG, "observability option config must be an object");
  tc_obs_t *o = tc_calloc(1, sizeof *o);
  if (!o) return tc_error_set(err, TC_ENOMEM, "out of memory creating the observability services");
  o->cache = tc_calloc(CACHE_MAX, sizeof *o->cache);
  if (!o->cache || (cfg && json_object_deep_copy(cfg, &o->config, NULL) != 0)) {
    tc_free(o->cache);
    tc_free(o);
    return tc_error_set(err, TC_ENOMEM, "out of memory creating the observability services");
  }
  o->rt = rt;
  o->w = w;
  json_object *st = NULL;
  tc_error_t e = {0};
  const char *uuid = "";
  if (tc_worker_status(w, &st, &e) == TC_OK) uuid = json_object_get_string(tc_json_get(st, "worker_uuid"));
  if (wid) snprintf(o->worker_id, sizeof o->worker_id, "%s", json_object_get_string(wid));
  else snprintf(o->worker_id, sizeof o->worker_id, "worker_%s", uuid);
  json_object_put(st);
  snprintf(o->environment, sizeof o->environment, "%s", env ? json_object_get_string(env) : "development");
  o->breaker.failure_threshold = failures;
  o->breaker.success_threshold = successes;
  o->breaker.timeout_ms = (int64_t)timeout_s * 1000;
  o->queue_degraded = degraded;
  o->queue_unhealthy = unhealthy > degraded ? unhealthy : degraded + 1;
  pthread_mutex_init(&o->breaker.mu, NULL);
  pthread_mutex_init(&o->cache_mu, NULL);
  *out = o;
  return TC_OK;
}

void tc_obs_free(tc_obs_t *o) {
  if (!o) return;
  for (int i = 0; i < o->n_cache; i++) json_object_put(o->cache[i].value);
  tc_free(o->cache);
  json_object_put(o->config);
  pthread_mutex_destroy(&o->breaker.mu);
  pthread_mutex_destroy(&o->cache_mu);
  tc_free(o);
}

/* ---- health ---- */

static json_object *check(const char *status, const char *message, double duration_ms) {
  json_object *c = json_object_new_object();
  if (!c) return NULL;
  json_object_object_add(c, "status", json_object_new_string(status));
  if (message) json_object_object_add(c, "message", json_object_new_string(message));
  json_object_object_add(c, "duration_ms", json_object_new_double(duration_ms));
  json_object_object_add(c, "last_checked", timestamp());
  return c;
}

typedef struct probe {
  bool db_ok;
  char db_error[1024];
  double db_ms;
  json_object *queues; /* [{namespace, depth, oldest_age_seconds}] or NULL */
  char queue_error[1100];
  double queue_ms;
  json_object *status; /* tc_worker_status */
} probe_t;

static const char *QUEUES_SQL =
    "SELECT coalesce(jsonb_agg(jsonb_build_object('namespace', n, 'depth', d.depth, 'oldest_age_seconds', d.age)"
    " ORDER BY n), '[]'::jsonb) FROM unnest($1::text[]) AS n CROSS JOIN LATERAL ("
    " SELECT count(*) AS depth, coalesce(extract(epoch FROM (now() AT TIME ZONE 'utc') - min(s.ready_at)), 0)::float8"
    " AS age FROM tasker.workflow_steps s WHERE s.status = 'enqueued' AND s.namespace_name = n) d";

static void run_probe(tc_obs_t *o, probe_t *p, bool queues) {
  memset(p, 0, sizeof *p);
  tc_error_t err = {0};
  tc_worker_status(o->w, &p->status, &err);
  int64_t t0 = tc_now_ms();
  json_object *one = NULL;
  int rc = guarded_query(o, "SELECT to_jsonb(1)", 0, NULL, &one, &err);
  json_object_put(one);
  p->db_ms = (double)(tc_now_ms() - t0);
  p->db_ok = rc == TC_OK;
  if (!p->db_ok) snprintf(p->db_error, sizeof p->db_error, "%s", err.message);
  if (!queues) return;
  if (!p->db_ok) {
    snprintf(p->queue_error, sizeof p->queue_error, "database unavailable: %s", p->db_error);
    return;
  }
  json_object *ns = tc_json_get(p->status, "namespaces");
  char lit[2048] = "{";
  for (size_t i = 0; ns && i < json_object_array_length(ns); i++) {
    size_t len = strlen(lit);
    snprintf(lit + len, sizeof lit - len, "%s%s", i ? "," : "", json_object_get_string(json_object_array_get_idx(ns, i)));
  }
  strncat(lit, "}", sizeof lit - strlen(lit) - 1);
  const char *params[] = {lit};
  t0 = tc_now_ms();
  rc = guarded_query(o, QUEUES_SQL, 1, params, &p->queues, &err);
  p->queue_ms = (double)(tc_now_ms() - t0);
  if (rc != TC_OK) snprintf(p->queue_error, sizeof p->queue_error, "%s", err.message);
}

static void free_probe(probe_t *p) {
  json_object_put(p->queues);
  json_object_put(p->status);
}

static json_object *check_database(probe_t *p) {
  if (p->db_ok) return check("healthy", "SELECT 1 answered", p->db_ms);
  return check("unhealthy", p->db_error, p->db_ms);
}

static json_object *check_command_processor(probe_t *p) {
  json_object *st = p->status;
  if (!st) return check("unhealthy", "worker status unavailable", 0);
  bool alive = json_object_get_boolean(tc_json_get(st, "claimer_alive"));
  json_object *tick = tc_json_get(st, "claimer_last_active_ms_ago"), *beat = tc_json_get(st, "last_heartbeat_ms_ago");
  int64_t tick_ms = tick ? json_object_get_int64(tick) : -1;
  int64_t beat_ms = beat ? json_object_get_int64(beat) : -1;
  int64_t beat_every = json_object_get_int64(tc_json_get(st, "heartbeat_interval_ms"));
  char msg[512];
  char tick_s[48] = "not yet", beat_s[48] = "none yet";
  if (tick_ms >= 0) snprintf(tick_s, sizeof tick_s, "%lld ms ago", (long long)tick_ms);
  if (beat_ms >= 0) snprintf(beat_s, sizeof beat_s, "%lld ms ago", (long long)beat_ms);
  snprintf(msg, sizeof msg,
           "claimer thread %s, last active %s, last claim heartbeat %s, %d queued, %d in flight, database %s",
           alive ? "running" : "stopped", tick_s, beat_s, json_object_get_int(tc_json_get(st, "queued")),
           json_object_get_int(tc_json_get(st, "in_flight")), p->db_ok ? "connected" : "unreachable");
  if (!alive) return check("unhealthy", msg, 0);
  /* The claimer turns at least once a second (plus one database round trip); heartbeats are due
   * every visibility/3. Twice those and more means the thread is stuck. */
  int64_t turn_limit = 30000 + 2 * json_object_get_int64(tc_json_get(st, "poll_interval_ms"));
  if (tick_ms > turn_limit || (beat_ms > 2 * beat_every + 30000)) return check("unhealthy", msg, 0);
  return check(p->db_ok ? "healthy" : "degraded", msg, 0);
}

static json_object *check_queue(tc_obs_t *o, probe_t *p) {
  if (!p->queues) return check("unhealthy", p->queue_error, p->queue_ms);
  int64_t total = 0;
  for (size_t i = 0; i < json_object_array_length(p->queues); i++)
    total += json_object_get_int64(tc_json_get(json_object_array_get_idx(p->queues, i), "depth"));
  char msg[256];
  snprintf(msg, sizeof msg, "%lld steps waiting in the worker's namespaces", (long long)total);
  const char *status = total < o->queue_degraded ? "healthy" : total < o->queue_unhealthy ? "degraded" : "unhealthy";
  return check(status, msg, p->queue_ms);
}

static json_object *check_events(probe_t *p) {
  const char *mode = json_object_get_string(tc_json_get(p->status, "deployment_mode"));
  if (mode && strcmp(mode, "PollingOnly") == 0) return check("healthy", "polling mode (no LISTEN connection)", 0);
  if (json_object_get_boolean(tc_json_get(p->status, "listen_connected")))
    return check("healthy", "LISTEN connection established", 0);
  return check("degraded", "LISTEN connection not established (fallback polling)", 0);
}

static json_object *check_steps(tc_obs_t *o) {
  tc_ns_metrics_t *ns = NULL;
  int n = 0;
  uint64_t ok = 0, bad = 0;
  int64_t up = 0;
  if (tc_metrics_snapshot(tc_worker_metrics(o->w), &ns, &n, &ok, &bad, &up) != TC_OK)
    return check("unhealthy", "out of memory", 0);
  tc_free(ns);
  char msg[256];
  if (ok + bad == 0) {
    snprintf(msg, sizeof msg, "no step results in the last %d minutes", TC_METRICS_WINDOW);
    return check("healthy", msg, 0);
  }
  double rate = (double)bad / (double)(ok + bad);
  snprintf(msg, sizeof msg, "error rate %.1f%% (%llu failed of %llu results in the last %d minutes)", rate * 100.0,
           (unsigned long long)bad, (unsigned long long)(ok + bad), TC_METRICS_WINDOW);
  return check(rate < 0.05 ? "healthy" : rate < 0.15 ? "degraded" : "unhealthy", msg, 0);
}

static json_object *check_breakers(tc_obs_t *o) {
  json_object *b = breaker_json(&o->breaker);
  if (!b) return NULL;
  const char *state = json_object_get_string(tc_json_get(b, "state"));
  char msg[256];
  snprintf(msg, sizeof msg, "database: %s (%lld calls, %lld failures)", state,
           (long long)json_object_get_int64(tc_json_get(b, "total_calls")),
           (long long)json_object_get_int64(tc_json_get(b, "failure_count")));
  const char *status = strcmp(state, "closed") == 0 ? "healthy" : strcmp(state, "open") == 0 ? "unhealthy" : "degraded";
  json_object_put(b);
  return check(status, msg, 0);
}

static void pool_stats(tc_runtime_t *rt, int *max, int *open, int *idle) {
  pthread_mutex_lock(&rt->pool.mu);
  *max = rt->pool.max;
  *open = rt->pool.n_open;
  *idle = rt->pool.n_idle;
  pthread_mutex_unlock(&rt->pool.mu);
}

static json_object *system_info(tc_obs_t *o, probe_t *p) {
  json_object *si = json_object_new_object();
  if (!si) return NULL;
  int max, open, idle;
  pool_stats(o->rt, &max, &open, &idle);
  tc_ns_metrics_t *ns = NULL;
  int n = 0;
  uint64_t ok, bad;
  int64_t up = 0;
  if (tc_metrics_snapshot(tc_worker_metrics(o->w), &ns, &n, &ok, &bad, &up) == TC_OK) tc_free(ns);
  json_object_object_add(si, "version", json_object_new_string(TC_VERSION));
  json_object_object_add(si, "environment", json_object_new_string(o->environment));
  json_object_object_add(si, "uptime_seconds", json_object_new_int64(up / 1000));
  json_object_object_add(si, "worker_type", json_object_new_string("command_processor"));
  json_object_object_add(si, "database_pool_size", json_object_new_int(max));
  json_object_object_add(si, "command_processor_active", json_object_new_boolean(json_object_get_boolean(tc_json_get(p->status, "claimer_alive"))));
  json_object *spaces = tc_json_get(p->status, "namespaces");
  json_object_object_add(si, "supported_namespaces", spaces ? json_object_get(spaces) : json_object_new_array());
  json_object *pu = json_object_new_object();
  if (pu) {
    json_object_object_add(pu, "max_connections", json_object_new_int(max));
    json_object_object_add(pu, "open_connections", json_object_new_int(open));
    json_object_object_add(pu, "idle_connections", json_object_new_int(idle));
    json_object_object_add(pu, "in_use", json_object_new_int(open - idle));
    json_object_object_add(pu, "utilization_percent", json_object_new_double(max ? 100.0 * (open - idle) / max : 0));
  }
  json_object_object_add(si, "pool_utilization", pu);
  return si;
}

static json_object *basic(tc_obs_t *o, const char *status) {
  json_object *j = json_object_new_object();
  if (!j) return NULL;
  json_object_object_add(j, "status", json_object_new_string(status));
  json_object_object_add(j, "worker_id", json_object_new_string(o->worker_id));
  json_object_object_add(j, "timestamp", timestamp());
  return j;
}

static json_object *health(tc_obs_t *o, bool detailed) {
  probe_t p;
  run_probe(o, &p, true);
  json_object *checks = json_object_new_object();
  json_object *j = json_object_new_object();
  if (!checks || !j) {
    json_object_put(checks);
    json_object_put(j);
    free_probe(&p);
    return NULL;
  }
  json_object_object_add(checks, "database", check_database(&p));
  json_object_object_add(checks, "command_processor", check_command_processor(&p));
  json_object_object_add(checks, "queue_processing", check_queue(o, &p));
  if (detailed) {
    json_object_object_add(checks, "event_system", check_events(&p));
    json_object_object_add(checks, "step_processing", check_steps(o));
    json_object_object_add(checks, "circuit_breakers", check_breakers(o));
  }
  bool all_healthy = true, any_unhealthy = false;
  json_object_object_foreach(checks, name, c) {
    TC_UNUSED(name);
    const char *s = json_object_get_string(tc_json_get(c, "status"));
    if (!s || strcmp(s, "healthy") != 0) all_healthy = false;
    if (!s || strcmp(s, "unhealthy") == 0) any_unhealthy = true;
  }
  const char *status = detailed ? (all_healthy ? "healthy" : "degraded") : (any_unhealthy ? "not_ready" : "ready");
  json_object_object_add(j, "status", json_object_new_string(status));
  json_object_object_add(j, "timestamp", timestamp());
  json_object_object_add(j, "worker_id", json_object_new_string(o->worker_id));
  json_object_object_add(j, "checks", checks);
  json_object_object_add(j, "system_info", system_info(o, &p));
  free_probe(&p);
  return j;
}

/* ---- metrics ---- */

static void add_metric(json_object *metrics, const char *name, double value, const char *type, const char *ns,
                       const char *help) {
  json_object *m = json_object_new_object();
  json_object *labels = json_object_new_object();
  if (!m || !labels) {
    json_object_put(m);
    json_object_put(labels);
    return;
  }
  if (ns) json_object_object_add(labels, "namespace", json_object_new_string(ns));
  json_object_object_add(m, "value", json_object_new_double(value));
  json_object_object_add(m, "metric_type", json_object_new_string(type));
  json_object_object_add(m, "labels", labels);
  json_object_object_add(m, "help", json_object_new_string(help));
  json_object_object_add(metrics, name, m);
}

typedef struct snapshot {
  tc_ns_metrics_t *ns;
  int n;
  uint64_t ok, bad;
  int64_t uptime_ms;
  int pool_max, pool_open, pool_idle;
  probe_t probe;
} snapshot_t;

static int take_snapshot(tc_obs_t *o, snapshot_t *s, tc_error_t *err) {
  memset(s, 0, sizeof *s);
  if (tc_metrics_snapshot(tc_worker_metrics(o->w), &s->ns, &s->n, &s->ok, &s->bad, &s->uptime_ms) != TC_OK)
    return tc_error_set(err, TC_ENOMEM, "out of memory reading the metrics");
  pool_stats(o->rt, &s->pool_max, &s->pool_open, &s->pool_idle);
  run_probe(o, &s->probe, true);
  return TC_OK;
}

static void free_snapshot(snapshot_t *s) {
  tc_free(s->ns);
  free_probe(&s->probe);
}

static json_object *queue_of(snapshot_t *s, const char *ns) {
  for (size_t i = 0; s->probe.queues && i < json_object_array_length(s->probe.queues); i++) {
    json_object *q = json_object_array_get_idx(s->probe.queues, i);
    if (strcmp(json_object_get_string(tc_json_get(q, "namespace")), ns) == 0) return q;
  }
  return NULL;
}

static json_object *metrics_worker(tc_obs_t *o, tc_error_t *err) {
  snapshot_t s;
  if (take_snapshot(o, &s, err) != TC_OK) return NULL;
  json_object *j = json_object_new_object(), *m = json_object_new_object();
  if (!j || !m) {
    json_object_put(j);
    json_object_put(m);
    free_snapshot(&s);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  add_metric(m, "uptime_seconds", (double)s.uptime_ms / 1000.0, "counter", NULL, "Seconds since the worker started");
  add_metric(m, "database_pool_size", s.pool_max, "gauge", NULL, "Maximum connections of the database pool");
  add_metric(m, "database_pool_in_use", s.pool_open - s.pool_idle, "gauge", NULL, "Pool connections in use");
  for (int i = 0; i < s.n; i++) {
    tc_ns_metrics_t *n = &s.ns[i];
    char key[160];
    json_object *q = queue_of(&s, n->name);
    if (q) {
      snprintf(key, sizeof key, "queue_depth_%s", n->name);
      add_metric(m, key, (double)json_object_get_int64(tc_json_get(q, "depth")), "gauge", n->name,
                 "Steps waiting to be claimed in the namespace");
      snprintf(key, sizeof key, "queue_oldest_message_age_%s", n->name);
      add_metric(m, key, json_object_get_double(tc_json_get(q, "oldest_age_seconds")), "gauge", n->name,
                 "Seconds the oldest waiting step has been ready");
    }
    struct { const char *name; uint64_t v; const char *help; } c[] = {
        {"steps_claimed_total", n->claimed, "Steps claimed"},
        {"steps_completed_total", n->completed, "Steps completed successfully"},
        {"steps_failed_total", n->failed, "Steps failed permanently"},
        {"steps_retried_total", n->retried, "Steps failed and scheduled for retry"},
        {"tasks_completed_total", n->tasks_completed, "Tasks completed by a result of this worker"},
        {"tasks_failed_total", n->tasks_failed, "Tasks failed by a result of this worker"}};
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
      snprintf(key, sizeof key, "%s_%s", c[k].name, n->name);
      add_metric(m, key, (double)c[k].v, "counter", n->name, c[k].help);
    }
  }
  json_object_object_add(j, "metrics", m);
  json_object_object_add(j, "timestamp", timestamp());
  json_object_object_add(j, "worker_id", json_object_new_string(o->worker_id));
  free_snapshot(&s);
  return j;
}

/* A growing text buffer for the Prometheus exposition. */
typedef struct buf {
  char *s;
  size_t len, cap;
  bool oom;
} buf_t;

__attribute__((format(printf, 2, 3))) static void bprintf(buf_t *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->oom = true;
      return;
    }
    if (b->s && b->len + (size_t)n < b->cap) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap <= b->len + (size_t)n) cap *= 2;
    char *s = tc_realloc(b->s, cap);
    if (!s) {
      b->oom = true;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
}

/* Label values are escaped as the exposition format requires (backslash, quote, newline). */
static void bescape(buf_t *b, const char *v) {
  for (; *v; v++) {
    if (*v == '\\') bprintf(b, "\\\\");
    else if (*v == '"') bprintf(b, "\\\"");
    else if (*v == '\n') bprintf(b, "\\n");
    else bprintf(b, "%c", *v);
  }
}

static void header(buf_t *b, const char *name, const char *type, const char *help) {
  bprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(buf_t *b, const char *name, const char *help, snapshot_t *s, bool claim) {
  header(b, name, "histogram", help);
  for (int i = 0; i < s->n; i++) {
    tc_histogram_t *h = claim ? &s->ns[i].claim : &s->ns[i].exec;
    uint64_t cum = 0;
    for (int k = 0; k <= TC_METRICS_BUCKETS; k++) {
      cum += h->counts[k];
      bprintf(b, "%s_bucket{namespace=\"", name);
      bescape(b, s->ns[i].name);
      if (k < TC_METRICS_BUCKETS)
        bprintf(b, "\",le=\"%g\"} %llu\n", tc_metrics_buckets_ms[k] / 1000.0, (unsigned long long)cum);
      else bprintf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    bprintf(b, "%s_sum{namespace=\"", name);
    bescape(b, s->ns[i].name);
    bprintf(b, "\"} %.6f\n%s_count{namespace=\"", h->sum / 1000.0, name);
    bescape(b, s->ns[i].name);
    bprintf(b, "\"} %llu\n", (unsigned long long)h->count);
  }
}

static int metrics_prometheus(tc_obs_t *o, char **text, tc_error_t *err) {
  snapshot_t s;
  if (take_snapshot(o, &s, err) != TC_OK) return err->code;
  buf_t b = {0};
  header(&b, "tasker_worker_info", "gauge", "Worker identity");
  bprintf(&b, "tasker_worker_info{version=\"%s\",worker_id=\"", TC_VERSION);
  bescape(&b, o->worker_id);
  bprintf(&b, "\",worker_type=\"command_processor\"} 1\n");
  header(&b, "tasker_worker_uptime_seconds", "gauge", "Seconds since the worker started");
  bprintf(&b, "tasker_worker_uptime_seconds %.3f\n", (double)s.uptime_ms / 1000.0);
  header(&b, "tasker_worker_db_pool_size", "gauge", "Maximum connections of the database pool");
  bprintf(&b, "tasker_worker_db_pool_size %d\n", s.pool_max);
  header(&b, "tasker_worker_db_pool_connections", "gauge", "Open database pool connections by state");
  bprintf(&b, "tasker_worker_db_pool_connections{state=\"in_use\"} %d\n", s.pool_open - s.pool_idle);
  bprintf(&b, "tasker_worker_db_pool_connections{state=\"idle\"} %d\n", s.pool_idle);
  header(&b, "tasker_worker_queue_depth", "gauge", "Steps waiting to be claimed in the namespace");
  for (int i = 0; i < s.n; i++) {
    json_object *q = queue_of(&s, s.ns[i].name);
    if (!q) continue;
    bprintf(&b, "tasker_worker_queue_depth{namespace=\"");
    bescape(&b, s.ns[i].name);
    bprintf(&b, "\"} %lld\n", (long long)json_object_get_int64(tc_json_get(q, "depth")));
  }
  header(&b, "tasker_worker_queue_oldest_message_age_seconds", "gauge",
         "Seconds the oldest waiting step of the namespace has been ready");
  for (int i = 0; i < s.n; i++) {
    json_object *q = queue_of(&s, s.ns[i].name);
    if (!q) continue;
    bprintf(&b, "tasker_worker_queue_oldest_message_age_seconds{namespace=\"");
    bescape(&b, s.ns[i].name);
    bprintf(&b, "\"} %.3f\n", json_object_get_double(tc_json_get(q, "oldest_age_seconds")));
  }
  const char *mode = json_object_get_string(tc_json_get(s.probe.status, "deployment_mode"));
  bool polling = mode && strcmp(mode, "PollingOnly") == 0;
  header(&b, "tasker_worker_channel_health", "gauge", "Channel health: 0 healthy, 1 degraded, 2 critical");
  bprintf(&b, "tasker_worker_channel_health{channel_name=\"listen\",component=\"worker\"} %d\n",
          polling || json_object_get_boolean(tc_json_get(s.probe.status, "listen_connected")) ? 0 : 1);
  bprintf(&b, "tasker_worker_channel_health{channel_name=\"database\",component=\"worker\"} %d\n",
          s.probe.db_ok ? 0 : 2);
  struct { const char *name; const char *help; size_t off; } counters[] = {
      {"tasker_steps_claimed_total", "Steps claimed", offsetof(tc_ns_metrics_t, claimed)},
      {"tasker_steps_successes_total", "Steps completed successfully", offsetof(tc_ns_metrics_t, completed)},
      {"tasker_steps_failures_total", "Steps failed permanently", offsetof(tc_ns_metrics_t, failed)},
      {"tasker_steps_retries_total", "Steps failed and scheduled for retry", offsetof(tc_ns_metrics_t, retried)},
      {"tasker_step_results_stale_total", "Results refused because their claim was no longer current",
       offsetof(tc_ns_metrics_t, stale)},
      {"tasker_tasks_completions_total", "Tasks completed by a step result of this worker",
       offsetof(tc_ns_metrics_t, tasks_completed)},
      {"tasker_tasks_failures_total", "Tasks failed by a step result of this worker",
       offsetof(tc_ns_metrics_t, tasks_failed)}};
  for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
    header(&b, counters[c].name, "counter", counters[c].help);
    for (int i = 0; i < s.n; i++) {
      bprintf(&b, "%s{namespace=\"", counters[c].name);
      bescape(&b, s.ns[i].name);
      bprintf(&b, "\"} %llu\n", (unsigned long long)*(uint64_t *)((char *)&s.ns[i] + counters[c].off));
    }
  }
  histogram(&b, "tasker_step_execution_duration_seconds", "Time from handing a step to its handler to its result",
            &s, false);
  histogram(&b, "tasker_step_claim_duration_seconds", "Duration of the claim query that claimed the step", &s, true);
  header(&b, "tasker_circuit_breaker_state", "gauge", "Circuit breaker state: 0 closed, 1 half-open, 2 open");
  bprintf(&b, "tasker_circuit_breaker_state{component=\"database\"} %d\n", breaker_state(&o->breaker));
  free_snapshot(&s);
  if (b.oom || !b.s) {
    tc_free(b.s);
    return tc_error_set(err, TC_ENOMEM, "out of memory building the metrics text");
  }
  *text = b.s;
  return TC_OK;
}

/* The outbox across every process: its events by kind and delivery mode, and how many domain
 * events some consumer has acknowledged. */
static const char *OUTBOX_SQL =
    "WITH d AS (SELECT count(DISTINCT event_id) AS n FROM tasker.domain_event_deliveries"
    "   WHERE delivered_at IS NOT NULL)"
    " SELECT jsonb_build_object('total', count(*), 'lifecycle', count(*) FILTER (WHERE kind = 'lifecycle'),"
    " 'domain', count(*) FILTER (WHERE kind = 'domain'),"
    " 'durable', count(*) FILTER (WHERE delivery_mode = 'durable'),"
    " 'broadcast', count(*) FILTER (WHERE delivery_mode = 'broadcast'),"
    " 'delivered', (SELECT n FROM d), 'pending', count(*) FILTER (WHERE kind = 'domain') - (SELECT n FROM d))"
    " FROM tasker.events_outbox";

static int64_t counter(json_object *counters, const char *key) { return json_object_get_int64(tc_json_get(counters, key)); }

static json_object *metrics_events(tc_obs_t *o, tc_error_t *err) {
  json_object *outbox = NULL;
  if (guarded_query(o, OUTBOX_SQL, 0, NULL, &outbox, err) != TC_OK) return NULL;
  json_object *j = json_object_new_object(), *router = json_object_new_object(), *bus = json_object_new_object();
  json_object *domain = NULL, *lifecycle = NULL;
  if (!j || !router || !bus || tc_domain_counters(o->rt, &domain) != TC_OK ||
      tc_events_stats(o->rt, &lifecycle) != TC_OK) {
    json_object_put(j);
    json_object_put(router);
    json_object_put(bus);
    json_object_put(outbox);
    json_object_put(domain);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  /* Routing in this process: durable and broadcast events stored with step results or published,
   * fast ones handed to the in-process bus (tc_domain.c's counters). */
  int64_t durable = counter(domain, "durable_routed"), fast = counter(domain, "fast_routed");
  int64_t broadcast = counter(domain, "broadcast_routed");
  json_object_object_add(router, "total_routed", json_object_new_int64(durable + fast + broadcast));
  json_object_object_add(router, "durable_routed", json_object_new_int64(durable));
  json_object_object_add(router, "fast_routed", json_object_new_int64(fast));
  json_object_object_add(router, "broadcast_routed", json_object_new_int64(broadcast));
  json_object_object_add(router, "fast_delivery_errors", json_object_new_int64(counter(domain, "fast_delivery_errors")));
  json_object_object_add(router, "routing_errors", json_object_new_int64(counter(domain, "routing_errors")));
  /* The in-process bus: lifecycle events (tc_events.c) and fast domain events, both handed to the
   * language's dispatcher over the FFI. No native handlers run in the core. */
  int64_t fast_dispatched = counter(domain, "fast_dispatched");
  json_object_object_add(bus, "total_events_dispatched",
                         json_object_new_int64(counter(lifecycle, "emitted") + fast_dispatched));
  json_object_object_add(bus, "rust_handler_dispatches", json_object_new_int64(0));
  json_object_object_add(bus, "ffi_channel_dispatches",
                         json_object_new_int64(counter(lifecycle, "delivered") + fast_dispatched));
  json_object_object_add(bus, "rust_handler_errors", json_object_new_int64(0));
  json_object_object_add(bus, "ffi_channel_drops",
                         json_object_new_int64(counter(lifecycle, "dropped") + counter(domain, "fast_dropped")));
  json_object_object_add(bus, "rust_subscriber_patterns", json_object_new_int64(0));
  json_object_object_add(bus, "rust_handler_count", json_object_new_int64(0));
  json_object_object_add(bus, "ffi_subscriber_count", json_object_new_int64(counter(domain, "subscribers")));
  json_object_put(lifecycle);
  json_object_object_add(j, "router", router);
  json_object_object_add(j, "in_process_bus", bus);
  json_object_object_add(j, "outbox", outbox);
  json_object_object_add(j, "domain", domain);
  json_object_object_add(j, "captured_at", timestamp());
  json_object_object_add(j, "worker_id", json_object_new_string(o->worker_id));
  return j;
}

/* ---- templates ---- */

static bool serves(json_object *status, const char *ns) {
  json_object *spaces = tc_json_get(status, "namespaces");
  for (size_t i = 0; spaces && i < json_object_array_length(spaces); i++)
    if (strcmp(json_object_get_string(json_object_array_get_idx(spaces, i)), ns) == 0) return true;
  return false;
}

static json_object *cache_stats(tc_obs_t *o) {
  json_object *st = NULL;
  tc_error_t e = {0};
  tc_worker_status(o->w, &st, &e);
  json_object *j = json_object_new_object();
  if (!j) {
    json_object_put(st);
    return NULL;
  }
  pthread_mutex_lock(&o->cache_mu);
  int64_t now = tc_now_ms(), oldest = 0;
  uint64_t accesses = 0;
  for (int i = 0; i < o->n_cache; i++) {
    if (now - o->cache[i].cached_at > oldest) oldest = now - o->cache[i].cached_at;
    accesses += o->cache[i].access_count;
  }
  int n = o->n_cache;
  uint64_t hits = o->hits, misses = o->misses, evictions = o->evictions;
  char maint[40];
  snprintf(maint, sizeof maint, "%s", o->last_maintenance);
  pthread_mutex_unlock(&o->cache_mu);
  json_object_object_add(j, "total_cached", json_object_new_int(n));
  json_object_object_add(j, "cache_hits", json_object_new_int64((int64_t)hits));
  json_object_object_add(j, "cache_misses", json_object_new_int64((int64_t)misses));
  json_object_object_add(j, "cache_evictions", json_object_new_int64((int64_t)evictions));
  json_object_object_add(j, "oldest_entry_age_seconds", json_object_new_int64(oldest / 1000));
  json_object_object_add(j, "average_access_count", json_object_new_double(n ? (double)accesses / n : 0.0));
  json_object *spaces = tc_json_get(st, "namespaces");
  json_object_object_add(j, "supported_namespaces", spaces ? json_object_get(spaces) : json_object_new_array());
  json_object_object_add(j, "total_entries", json_object_new_int(n));
  json_object_object_add(j, "hits", json_object_new_int64((int64_t)hits));
  json_object_object_add(j, "misses", json_object_new_int64((int64_t)misses));
  json_object_object_add(j, "evictions", json_object_new_int64((int64_t)evictions));
  json_object_object_add(j, "last_maintenance", maint[0] ? json_object_new_string(maint) : NULL);
  json_object_put(st);
  return j;
}

static const char *arg_str(json_object *args, const char *key) {
  json_object *v = tc_json_get(args, key);
  return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int template_args(json_object *args, const char **ns, const char **name, const char **version,
                         char key[256], tc_error_t *err) {
  *ns = arg_str(args, "namespace");
  *name = arg_str(args, "name");
  *version = arg_str(args, "version");
  if (!*ns || !**ns) return tc_error_set(err, TC_EINVAL, "namespace is required");
  if (!*name || !**name) return tc_error_set(err, TC_EINVAL, "name is required");
  if (!*version || !**version) return tc_error_set(err, TC_EINVAL, "version is required");
  if (strlen(*ns) + strlen(*name) + strlen(*version) + 3 > 255)
    return tc_error_set(err, TC_EINVAL, "namespace, name and version are too long");
  snprintf(key, 256, "%s/%s/%s", *ns, *name, *version);
  return TC_OK;
}

/* Looks the template up in the cache, else reads it and caches it. *entry_out: a new reference;
 * *cached: whether it came from the cache; *age_ms, *accesses of the entry. */
static int cache_fetch(tc_obs_t *o, const char *ns, const char *name, const char *version, const char *key,
                       json_object **out, bool *cached, int64_t *age_ms, uint64_t *accesses, tc_error_t *err) {
  pthread_mutex_lock(&o->cache_mu);
  for (int i = 0; i < o->n_cache; i++) {
    if (strcmp(o->cache[i].key, key) == 0) {
      o->hits++;
      o->cache[i].access_count++;
      *out = json_object_get(o->cache[i].value);
      *cached = true;
      *age_ms = tc_now_ms() - o->cache[i].cached_at;
      *accesses = o->cache[i].access_count;
      pthread_mutex_unlock(&o->cache_mu);
      return TC_OK;
    }
  }
  o->misses++;
  pthread_mutex_unlock(&o->cache_mu);
  json_object *value = NULL;
  int rc = tc_template_get(o->rt, ns, name, version, &value, err);
  if (rc != TC_OK) return rc;
  pthread_mutex_lock(&o->cache_mu);
  int slot = -1;
  for (int i = 0; i < o->n_cache; i++)
    if (strcmp(o->cache[i].key, key) == 0) slot = i; /* another thread cached it meanwhile */
  if (slot < 0 && o->n_cache == CACHE_MAX) {
    slot = 0;
    for (int i = 1; i < o->n_cache; i++)
      if (o->cache[i].cached_at < o->cache[slot].cached_at) slot = i;
    o->evictions++;
  }
  if (slot < 0) slot = o->n_cache++;
  else json_object_put(o->cache[slot].value);
  snprintf(o->cache[slot].key, sizeof o->cache[slot].key, "%s", key);
  o->cache[slot].value = json_object_get(value);
  o->cache[slot].cached_at = tc_now_ms();
  o->cache[slot].access_count = 1;
  pthread_mutex_unlock(&o->cache_mu);
  *out = value;
  *cached = false;
  *age_ms = 0;
  *accesses = 1;
  return TC_OK;
}

static json_object *handler_metadata(json_object *tpl) {
  json_object *cfg = tc_json_get(tpl, "configuration");
  json_object *hm = json_object_new_object();
  if (!hm) return NULL;
  json_object_object_add(hm, "namespace", json_object_get(tc_json_get(tpl, "namespace_name")));
  json_object_object_add(hm, "name", json_object_get(tc_json_get(tpl, "name")));
  json_object_object_add(hm, "version", json_object_get(tc_json_get(tpl, "version")));
  json_object *th = tc_json_get(cfg, "task_handler");
  json_object *callable = th ? tc_json_get(th, "callable") : NULL;
  json_object_object_add(hm, "handler_class", callable ? json_object_get(callable) : json_object_new_string(""));
  if (tc_json_get(cfg, "input_schema")) json_object_object_add(hm, "config_schema", json_object_get(tc_json_get(cfg, "input_schema")));
  json_object_object_add(hm, "registered_at", json_object_get(tc_json_get(tpl, "registered_at")));
  return hm;
}

static json_object *template_response(tc_obs_t *o, json_object *args, tc_error_t *err) {
  const char *ns, *name, *version;
  char key[256];
  if (template_args(args, &ns, &name, &version, key, err) != TC_OK) return NULL;
  json_object *tpl = NULL;
  bool cached = false;
  int64_t age = 0;
  uint64_t accesses = 0;
  if (cache_fetch(o, ns, name, version, key, &tpl, &cached, &age, &accesses, err) != TC_OK) return NULL;
  json_object *j = json_object_new_object(), *t = json_object_new_object();
  if (!j || !t) {
    json_object_put(j);
    json_object_put(t);
    json_object_put(tpl);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  json_object_object_add(t, "template", json_object_get(tc_json_get(tpl, "configuration")));
  json_object_object_add(t, "environment", json_object_new_string(o->environment));
  json_object_object_add(t, "resolved_at", timestamp());
  json_object_object_add(j, "template", t);
  json_object_object_add(j, "handler_metadata", handler_metadata(tpl));
  json_object_object_add(j, "cached", json_object_new_boolean(cached));
  json_object_object_add(j, "cache_age_seconds", json_object_new_int64(age / 1000));
  json_object_object_add(j, "access_count", json_object_new_int64((int64_t)accesses));
  json_object_put(tpl);
  return j;
}

/* A handler callable the host can look up: a class name, a registered key or a dotted path, so
 * any non-empty name without spaces or control characters (the host checks it resolves). */
static bool callable_name(const char *s) {
  if (!s || !*s) return false;
  for (const char *p = s; *p; p++)
    if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) return false;
  return true;
}

static json_object *template_validate(tc_obs_t *o, json_object *args, tc_error_t *err) {
  const char *ns, *name, *version;
  char key[256];
  if (template_args(args, &ns, &name, &version, key, err) != TC_OK) return NULL;
  json_object *tpl = NULL;
  bool cached;
  int64_t age;
  uint64_t accesses;
  if (cache_fetch(o, ns, name, version, key, &tpl, &cached, &age, &accesses, err) != TC_OK) return NULL;
  json_object *errors = json_object_new_array(), *handlers = json_object_new_array(), *caps = json_object_new_array();
  json_object *j = json_object_new_object();
  if (!errors || !handlers || !caps || !j) {
    json_object_put(errors);
    json_object_put(handlers);
    json_object_put(caps);
    json_object_put(j);
    json_object_put(tpl);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  json_object *cfg = tc_json_get(tpl, "configuration");
  json_object *normalized = NULL;
  tc_error_t verr = {0};
  if (tc_template_normalize(cfg, &normalized, &verr) != TC_OK) json_object_array_add(errors, json_object_new_string(verr.message));
  json_object_put(normalized);
  json_object *steps = tc_json_get(cfg, "steps");
  bool decision = false, batch = false;
  for (size_t i = 0; steps && i < json_object_array_length(steps); i++) {
    json_object *step = json_object_array_get_idx(steps, i);
    const char *callable = json_object_get_string(tc_json_get(tc_json_get(step, "handler"), "callable"));
    const char *type = json_object_get_string(tc_json_get(step, "type"));
    if (type && strcmp(type, "decision") == 0) decision = true;
    if (type && (strcmp(type, "batchable") == 0 || strcmp(type, "batch_worker") == 0)) batch = true;
    bool seen = false;
    for (size_t k = 0; callable && k < json_object_array_length(handlers); k++)
      if (strcmp(json_object_get_string(json_object_array_get_idx(handlers, k)), callable) == 0) seen = true;
    if (callable && !seen) json_object_array_add(handlers, json_object_new_string(callable));
    if (!callable_name(callable)) {
      char msg[400];
      snprintf(msg, sizeof msg, "step %s: handler callable %s is not a handler name", json_object_get_string(tc_json_get(step, "name")),
               callable ? callable : "(missing)");
      json_object_array_add(errors, json_object_new_string(msg));
    }
  }
  json_object *st = NULL;
  tc_error_t e = {0};
  if (tc_worker_status(o->w, &st, &e) == TC_OK && !serves(st, ns)) {
    char msg[200];
    snprintf(msg, sizeof msg, "namespace %s is not served by this worker", ns);
    json_object_array_add(errors, json_object_new_string(msg));
  }
  json_object_put(st);
  json_object_array_add(caps, json_object_new_string("step_execution"));
  if (decision) json_object_array_add(caps, json_object_new_string("decision_points"));
  if (batch) json_object_array_add(caps, json_object_new_string("batch_processing"));
  bool valid = json_object_array_length(errors) == 0;
  json_object_object_add(j, "valid", json_object_new_boolean(valid));
  json_object_object_add(j, "errors", errors);
  json_object_object_add(j, "issues", json_object_get(errors));
  json_object_object_add(j, "required_capabilities", caps);
  json_object_object_add(j, "step_handlers", handlers);
  json_object_object_add(j, "namespace", json_object_new_string(ns));
  json_object_object_add(j, "name", json_object_new_string(name));
  json_object_object_add(j, "version", json_object_new_string(version));
  json_object_object_add(j, "handler_count", json_object_new_int((int)json_object_array_length(handlers)));
  json_object_object_add(j, "handler_metadata", handler_metadata(tpl));
  json_object_put(tpl);
  return j;
}

static json_object *templates_list(tc_obs_t *o, json_object *args, tc_error_t *err) {
  const char *filter = arg_str(args, "namespace");
  json_object *incl = tc_json_get(args, "include_cache_stats");
  json_object *all = NULL;
  if (tc_template_list(o->rt, filter && *filter ? filter : NULL, &all, err) != TC_OK) return NULL;
  json_object *st = NULL;
  if (tc_worker_status(o->w, &st, err) != TC_OK) {
    json_object_put(all);
    return NULL;
  }
  json_object *mine = json_object_new_array(), *j = json_object_new_object(), *caps = json_object_new_array();
  if (!mine || !j || !caps) {
    json_object_put(mine);
    json_object_put(j);
    json_object_put(caps);
    json_object_put(all);
    json_object_put(st);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < json_object_array_length(all); i++) {
    json_object *t = json_object_array_get_idx(all, i);
    if (serves(st, json_object_get_string(tc_json_get(t, "namespace_name")))) json_object_array_add(mine, json_object_get(t));
  }
  const char *cap_names[] = {"step_execution", "decision_points", "batch_processing", "checkpoints", "retries"};
  for (size_t i = 0; i < 5; i++) json_object_array_add(caps, json_object_new_string(cap_names[i]));
  json_object *spaces = tc_json_get(st, "namespaces");
  json_object_object_add(j, "supported_namespaces", spaces ? json_object_get(spaces) : json_object_new_array());
  json_object_object_add(j, "template_count", json_object_new_int((int)json_object_array_length(mine)));
  json_object_object_add(j, "templates", mine);
  if (incl && json_object_get_boolean(incl)) json_object_object_add(j, "cache_stats", cache_stats(o));
  json_object_object_add(j, "worker_capabilities", caps);
  json_object_put(all);
  json_object_put(st);
  return j;
}

static json_object *cache_operation(tc_obs_t *o, const char *op, bool success, const char *message) {
  json_object *j = json_object_new_object();
  if (!j) return NULL;
  json_object_object_add(j, "operation", json_object_new_string(op));
  json_object_object_add(j, "success", json_object_new_boolean(success));
  json_object_object_add(j, "message", json_object_new_string(message));
  json_object_object_add(j, "timestamp", timestamp());
  json_object_object_add(j, "cache_stats", cache_stats(o));
  return j;
}

static json_object *cache_clear(tc_obs_t *o) {
  pthread_mutex_lock(&o->cache_mu);
  int n = o->n_cache;
  for (int i = 0; i < n; i++) json_object_put(o->cache[i].value);
  memset(o->cache, 0, (size_t)n * sizeof *o->cache);
  o->n_cache = 0;
  o->evictions += (uint64_t)n;
  now_iso(o->last_maintenance);
  pthread_mutex_unlock(&o->cache_mu);
  char msg[128];
  snprintf(msg, sizeof msg, "cleared %d cached templates", n);
  return cache_operation(o, "clear", true, msg);
}

static json_object *template_refresh(tc_obs_t *o, json_object *args) {
  const char *ns, *name, *version;
  char key[256];
  tc_error_t e = {0};
  if (template_args(args, &ns, &name, &version, key, &e) != TC_OK) return cache_operation(o, "refresh", false, e.message);
  pthread_mutex_lock(&o->cache_mu);
  for (int i = 0; i < o->n_cache; i++) {
    if (strcmp(o->cache[i].key, key) == 0) {
      json_object_put(o->cache[i].value);
      o->cache[i] = o->cache[--o->n_cache];
      memset(&o->cache[o->n_cache], 0, sizeof o->cache[0]);
      o->evictions++;
      break;
    }
  }
  now_iso(o->last_maintenance);
  pthread_mutex_unlock(&o->cache_mu);
  json_object *tpl = NULL;
  bool cached;
  int64_t age;
  uint64_t accesses;
  if (cache_fetch(o, ns, name, version, key, &tpl, &cached, &age, &accesses, &e) != TC_OK)
    return cache_operation(o, "refresh", false, e.message);
  json_object_put(tpl);
  char msg[320];
  snprintf(msg, sizeof msg, "template %s reloaded from the database", key);
  return cache_operation(o, "refresh", true, msg);
}

/* ---- configuration ---- */

static void merge_into(json_object *dst, json_object *src) {
  json_object_object_foreach(src, k, v) {
    json_object *cur = tc_json_get(dst, k);
    if (cur && json_object_is_type(cur, json_type_object) && json_object_is_type(v, json_type_object)) merge_into(cur, v);
    else json_object_object_add(dst, k, json_object_get(v));
  }
}

static json_object *obj(void) { return json_object_new_object(); }

static json_object *config_runtime(tc_obs_t *o, tc_error_t *err) {
  json_object *st = NULL;
  if (tc_worker_status(o->w, &st, err) != TC_OK) return NULL;
  json_object *full = obj(), *common = obj(), *db = obj(), *pool = obj(), *cbs = obj(), *sys = obj(), *worker = obj();
  if (!full || !common || !db || !pool || !cbs || !sys || !worker) {
    json_object *all[] = {full, common, db, pool, cbs, sys, worker, st};
    for (size_t i = 0; i < 8; i++) json_object_put(all[i]);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  json_object_object_add(db, "url", json_object_new_string(o->rt->database_url));
  json_object_object_add(pool, "max_connections", json_object_new_int(o->rt->pool.max));
  json_object_object_add(pool, "connect_timeout_seconds", json_object_new_int(o->rt->pool.connect_timeout_s));
  json_object_object_add(pool, "acquire_timeout_ms", json_object_new_int(o->rt->pool.acquire_timeout_ms));
  json_object_object_add(db, "pool", pool);
  json_object_object_add(common, "database", db);
  json_object *dbcb = breaker_json(&o->breaker);
  json_object_object_add(cbs, "database", dbcb);
  json_object_object_add(common, "circuit_breakers", cbs);
  json_object_object_add(common, "telemetry", obj());
  json_object_object_add(sys, "version", json_object_new_string(TC_VERSION));
  json_object_object_add(sys, "schema_version", json_object_new_int(tc_schema_version()));
  json_object_object_add(common, "system", sys);
  json_object_object_add(common, "backoff", obj());
  json_object_object_add(common, "task_templates", obj());
  json_object_object_add(worker, "worker_id", json_object_new_string(o->worker_id));
  json_object_object_add(worker, "worker_type", json_object_new_string("command_processor"));
  const char *keys[] = {"namespaces", "concurrency", "deployment_mode", "poll_interval_ms"};
  for (size_t i = 0; i < 4; i++) json_object_object_add(worker, keys[i], json_object_get(tc_json_get(st, keys[i])));
  json_object_object_add(full, "environment", json_object_new_string(o->environment));
  json_object_object_add(full, "common", common);
  json_object_object_add(full, "worker", worker);
  if (o->config) merge_into(full, o->config);
  json_object_put(st);
  json_object *red = NULL, *paths = NULL;
  int rc = tc_redact(full, &red, &paths, err);
  json_object_put(full);
  if (rc != TC_OK) return NULL;
  json_object *meta = obj();
  if (!meta) {
    json_object_put(red);
    json_object_put(paths);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  json_object_object_add(meta, "timestamp", timestamp());
  json_object_object_add(meta, "source", json_object_new_string("runtime"));
  json_object_object_add(meta, "redacted_fields", paths);
  json_object_object_add(red, "environment", json_object_new_string(o->environment));
  json_object_object_add(red, "metadata", meta);
  return red;
}

/* ---- dispatch ---- */

int tc_obs_call(tc_obs_t *o, const char *service, json_object *args, char **text, tc_error_t *err) {
  if (!o || !service) return tc_error_set(err, TC_EINVAL, "service is required");
  if (args && !json_object_is_type(args, json_type_object)) return tc_error_set(err, TC_EINVAL, "args must be an object");
  json_object *j = NULL;
  tc_error_t local = {0};
  if (!err) err = &local;
  err->code = TC_OK;
  if (strcmp(service, "health_basic") == 0) j = basic(o, "healthy");
  else if (strcmp(service, "health_live") == 0) j = basic(o, "alive");
  else if (strcmp(service, "health_ready") == 0) j = health(o, false);
  else if (strcmp(service, "health_detailed") == 0) j = health(o, true);
  else if (strcmp(service, "metrics_worker") == 0) j = metrics_worker(o, err);
  else if (strcmp(service, "metrics_prometheus") == 0) return metrics_prometheus(o, text, err);
  else if (strcmp(service, "metrics_events") == 0) j = metrics_events(o, err);
  else if (strcmp(service, "templates_list") == 0) j = templates_list(o, args, err);
  else if (strcmp(service, "template_get") == 0) j = template_response(o, args, err);
  else if (strcmp(service, "template_validate") == 0) j = template_validate(o, args, err);
  else if (strcmp(service, "templates_cache_stats") == 0) j = cache_stats(o);
  else if (strcmp(service, "templates_cache_clear") == 0) j = cache_clear(o);
  else if (strcmp(service, "template_refresh") == 0) j = template_refresh(o, args);
  else if (strcmp(service, "config_runtime") == 0) j = config_runtime(o, err);
  else if (strcmp(service, "config_environment") == 0) {
    *text = tc_strdup(o->environment);
    return *text ? TC_OK : tc_error_set(err, TC_ENOMEM, "out of memory");
  } else {
    return tc_error_set(err, TC_EINVAL, "unknown observability service %s", service);
  }
  if (!j) return err->code != TC_OK ? err->code : tc_error_set(err, TC_ENOMEM, "out of memory building the response");
  return finish(j, text, err);
}

const char *tc_obs_worker_id(tc_obs_t *o) { return o->worker_id; }
