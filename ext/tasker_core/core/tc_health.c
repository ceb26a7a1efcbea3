/*
 * tc_health.c - the health services (health_basic, health_live, health_ready, health_detailed):
 * a probe of the database, the worker and its namespaces' queues, judged check by check.
 */
#include <stdio.h>
#include <string.h>

#include "tc_observe.h"

static json_object *check(const char *status, const char *message, double duration_ms) {
  json_object *c = json_object_new_object();
  if (!c) return NULL;
  json_object_object_add(c, "status", json_object_new_string(status));
  if (message) json_object_object_add(c, "message", json_object_new_string(message));
  json_object_object_add(c, "duration_ms", json_object_new_double(duration_ms));
  json_object_object_add(c, "last_checked", tc_obs_timestamp());
  return c;
}

static const char *QUEUES_SQL =
    "SELECT coalesce(jsonb_agg(jsonb_build_object('namespace', n, 'depth', d.depth, 'oldest_age_seconds', d.age)"
    " ORDER BY n), '[]'::jsonb) FROM jsonb_array_elements_text($1::jsonb) AS n CROSS JOIN LATERAL ("
    " SELECT count(*) AS depth, coalesce(extract(epoch FROM (now() AT TIME ZONE 'utc') - min(s.ready_at)), 0)::float8"
    " AS age FROM tasker.workflow_steps s WHERE s.status = 'enqueued' AND s.namespace_name = n) d";

void tc_health_probe(tc_obs_t *o, tc_probe_t *p, bool queues) {
  memset(p, 0, sizeof *p);
  tc_error_t err = {0};
  tc_worker_status(o->w, &p->status, &err);
  int64_t t0 = tc_now_ms();
  json_object *one = NULL;
  int rc = tc_breaker_query_json(&o->breaker, "SELECT to_jsonb(1)", 0, NULL, &one, &err);
  json_object_put(one);
  p->db_ms = (double)(tc_now_ms() - t0);
  p->db_ok = rc == TC_OK;
  if (!p->db_ok) snprintf(p->db_error, sizeof p->db_error, "%s", err.message);
  if (!queues) return;
  if (!p->db_ok) {
    snprintf(p->queue_error, sizeof p->queue_error, "database unavailable: %s", p->db_error);
    return;
  }
  /* The namespaces travel as one JSON array, however many the worker serves. */
  json_object *ns = tc_json_get(p->status, "namespaces");
  const char *params[] = {ns ? json_object_to_json_string_ext(ns, JSON_C_TO_STRING_PLAIN) : "[]"};
  if (!params[0]) {
    snprintf(p->queue_error, sizeof p->queue_error, "out of memory listing the worker's namespaces");
    return;
  }
  t0 = tc_now_ms();
  rc = tc_breaker_query_json(&o->breaker, QUEUES_SQL, 1, params, &p->queues, &err);
  p->queue_ms = (double)(tc_now_ms() - t0);
  if (rc != TC_OK) snprintf(p->queue_error, sizeof p->queue_error, "%s", err.message);
}

void tc_health_probe_free(tc_probe_t *p) {
  json_object_put(p->queues);
  json_object_put(p->status);
}

static json_object *check_database(tc_probe_t *p) {
  if (p->db_ok) return check("healthy", "SELECT 1 answered", p->db_ms);
  return check("unhealthy", p->db_error, p->db_ms);
}

static json_object *check_command_processor(tc_probe_t *p) {
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
  /* A host that declares its handler threads (the Ruby binding does) needs one per slot: a worker
   * that lost threads and could not replace them runs fewer steps than it claims room for. */
  json_object *threads = tc_json_get(st, "handler_threads");
  int slots = json_object_get_int(tc_json_get(st, "concurrency"));
  char threads_s[96] = "";
  if (threads)
    snprintf(threads_s, sizeof threads_s, ", %d of %d handler threads (%lld lost)", json_object_get_int(threads), slots,
             (long long)json_object_get_int64(tc_json_get(st, "handler_threads_lost")));
  snprintf(msg, sizeof msg,
           "claimer thread %s, last active %s, last claim heartbeat %s, %d queued, %d in flight%s, database %s",
           alive ? "running" : "stopped", tick_s, beat_s, json_object_get_int(tc_json_get(st, "queued")),
           json_object_get_int(tc_json_get(st, "in_flight")), threads_s, p->db_ok ? "connected" : "unreachable");
  if (!alive) return check("unhealthy", msg, 0);
  if (threads && json_object_get_int(threads) < slots) return check("unhealthy", msg, 0);
  /* The claimer turns at least once a second (plus one database round trip); heartbeats are due
   * every visibility/3. Twice those and more means the thread is stuck. */
  int64_t turn_limit = 30000 + 2 * json_object_get_int64(tc_json_get(st, "poll_interval_ms"));
  if (tick_ms > turn_limit || (beat_ms > 2 * beat_every + 30000)) return check("unhealthy", msg, 0);
  return check(p->db_ok ? "healthy" : "degraded", msg, 0);
}

static json_object *check_queue(tc_obs_t *o, tc_probe_t *p) {
  if (!p->queues) return check("unhealthy", p->queue_error, p->queue_ms);
  int64_t total = 0;
  for (size_t i = 0; i < json_object_array_length(p->queues); i++)
    total += json_object_get_int64(tc_json_get(json_object_array_get_idx(p->queues, i), "depth"));
  char msg[256];
  snprintf(msg, sizeof msg, "%lld steps waiting in the worker's namespaces", (long long)total);
  const char *status = total < o->queue_degraded ? "healthy" : total < o->queue_unhealthy ? "degraded" : "unhealthy";
  return check(status, msg, p->queue_ms);
}

static json_object *check_events(tc_probe_t *p) {
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
  json_object *b = tc_breaker_json(&o->breaker);
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

void tc_health_pool_stats(tc_runtime_t *rt, int *max, int *open, int *idle) {
  pthread_mutex_lock(&rt->pool.mu);
  *max = rt->pool.max;
  *open = rt->pool.n_open;
  *idle = rt->pool.n_idle;
  pthread_mutex_unlock(&rt->pool.mu);
}

static json_object *system_info(tc_obs_t *o, tc_probe_t *p) {
  json_object *si = json_object_new_object();
  if (!si) return NULL;
  int max, open, idle;
  tc_health_pool_stats(o->rt, &max, &open, &idle);
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
  bool claimer_alive = json_object_get_boolean(tc_json_get(p->status, "claimer_alive"));
  json_object_object_add(si, "command_processor_active", json_object_new_boolean(claimer_alive));
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

json_object *tc_health_basic(tc_obs_t *o, const char *status) {
  json_object *j = json_object_new_object();
  if (!j) return NULL;
  json_object_object_add(j, "status", json_object_new_string(status));
  json_object_object_add(j, "worker_id", json_object_new_string(o->worker_id));
  json_object_object_add(j, "timestamp", tc_obs_timestamp());
  return j;
}

json_object *tc_health_report(tc_obs_t *o, bool detailed) {
  tc_probe_t p;
  tc_health_probe(o, &p, true);
  json_object *checks = json_object_new_object();
  json_object *j = json_object_new_object();
  if (!checks || !j) {
    json_object_put(checks);
    json_object_put(j);
    tc_health_probe_free(&p);
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
  json_object_object_add(j, "timestamp", tc_obs_timestamp());
  json_object_object_add(j, "worker_id", json_object_new_string(o->worker_id));
  json_object_object_add(j, "checks", checks);
  json_object_object_add(j, "system_info", system_info(o, &p));
  tc_health_probe_free(&p);
  return j;
}

