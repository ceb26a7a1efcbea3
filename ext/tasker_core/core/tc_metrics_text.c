/*
 * tc_metrics_text.c - the metrics services: metrics_worker (JSON), metrics_prometheus (the
 * Prometheus text exposition) and metrics_events (event routing and the outbox), built from the
 * worker's counters (tc_metrics.c), the pool and a health probe (tc_health.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tc_observe.h"

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
  tc_probe_t probe;
} snapshot_t;

static int take_snapshot(tc_obs_t *o, snapshot_t *s, tc_error_t *err) {
  memset(s, 0, sizeof *s);
  if (tc_metrics_snapshot(tc_worker_metrics(o->w), &s->ns, &s->n, &s->ok, &s->bad, &s->uptime_ms) != TC_OK)
    return tc_error_set(err, TC_ENOMEM, "out of memory reading the metrics");
  tc_health_pool_stats(o->rt, &s->pool_max, &s->pool_open, &s->pool_idle);
  tc_health_probe(o, &s->probe, true);
  return TC_OK;
}

static void free_snapshot(snapshot_t *s) {
  tc_free(s->ns);
  tc_health_probe_free(&s->probe);
}

static json_object *queue_of(snapshot_t *s, const char *ns) {
  for (size_t i = 0; s->probe.queues && i < json_object_array_length(s->probe.queues); i++) {
    json_object *q = json_object_array_get_idx(s->probe.queues, i);
    if (strcmp(json_object_get_string(tc_json_get(q, "namespace")), ns) == 0) return q;
  }
  return NULL;
}

json_object *tc_metrics_text_worker(tc_obs_t *o, tc_error_t *err) {
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
  json_object_object_add(j, "timestamp", tc_obs_timestamp());
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

int tc_metrics_text_prometheus(tc_obs_t *o, char **text, tc_error_t *err) {
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
  bprintf(&b, "tasker_circuit_breaker_state{component=\"database\"} %d\n", tc_breaker_state(&o->breaker));
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

static int64_t counter(json_object *counters, const char *key) {
  return json_object_get_int64(tc_json_get(counters, key));
}

json_object *tc_metrics_text_events(tc_obs_t *o, tc_error_t *err) {
  json_object *outbox = NULL;
  if (tc_breaker_query_json(&o->breaker, OUTBOX_SQL, 0, NULL, &outbox, err) != TC_OK) return NULL;
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
  json_object_object_add(j, "captured_at", tc_obs_timestamp());
  json_object_object_add(j, "worker_id", json_object_new_string(o->worker_id));
  return j;
}

