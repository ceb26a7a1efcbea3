/*
 * tc_observe.h - private to the observability services: tc_observe.c (lifecycle and dispatch) and
 * the files it dispatches to, tc_breaker.c, tc_health.c, tc_metrics_text.c, tc_template_cache.c
 * and tc_config.c.
 */
#ifndef TC_OBSERVE_H
#define TC_OBSERVE_H

#include <string.h>

#include "tc_internal.h"

/* ---- The database circuit breaker (tc_breaker.c). Lock: mu guards every field but rt. ---- */
enum { TC_BREAKER_CLOSED = 0, TC_BREAKER_HALF_OPEN = 1, TC_BREAKER_OPEN = 2 };
typedef struct tc_breaker {
  pthread_mutex_t mu;
  tc_runtime_t *rt;
  int state;
  int failure_threshold, success_threshold;
  int64_t timeout_ms;
  int consecutive_failures, half_open_successes;
  uint64_t total_calls, success_count, failure_count, rejections;
  int64_t opened_at;
} tc_breaker_t;
void tc_breaker_init(tc_breaker_t *b, tc_runtime_t *rt, int failure_threshold, int success_threshold,
                     int64_t timeout_ms);
void tc_breaker_destroy(tc_breaker_t *b);
/* tc_rt_query_json through the breaker: an open breaker answers at once without the database. */
int tc_breaker_query_json(tc_breaker_t *b, const char *sql, int n, const char *const *params, json_object **out,
                          tc_error_t *err);
/* The breaker's state and counters as JSON (NULL when out of memory). */
json_object *tc_breaker_json(tc_breaker_t *b);
/* TC_BREAKER_CLOSED, _HALF_OPEN or _OPEN. */
int tc_breaker_state(tc_breaker_t *b);

/* ---- The template cache (tc_template_cache.c). Lock: mu guards all of it. ---- */
typedef struct tc_cache_entry {
  char *ns, *name, *version; /* the key, field by field (any of them may contain '/') */
  json_object *value; /* tc_template_get's answer */
  int64_t cached_at;  /* monotonic ms */
  uint64_t access_count;
} tc_cache_entry_t;
typedef struct tc_template_cache {
  pthread_mutex_t mu;
  tc_cache_entry_t *entries;
  int n;
  uint64_t hits, misses, evictions;
  char last_maintenance[40];
} tc_template_cache_t;
/* 0, or -1 when out of memory. */
int tc_template_cache_init(tc_template_cache_t *c);
void tc_template_cache_destroy(tc_template_cache_t *c);

struct tc_obs {
  tc_runtime_t *rt;
  tc_worker_t *w;
  char worker_id[64];
  char environment[64];
  json_object *config; /* the host's view of the configuration (unredacted; never returned as is) */
  tc_breaker_t breaker;
  int queue_degraded, queue_unhealthy;
  tc_template_cache_t cache;
};

/* The current UTC time in ISO 8601 with microseconds, as text and as a new JSON string (tc_observe.c). */
void tc_obs_now_iso(char buf[40]);
json_object *tc_obs_timestamp(void);

/* ---- Health (tc_health.c). ---- */
typedef struct tc_probe {
  bool db_ok;
  char db_error[1024];
  double db_ms;
  json_object *queues; /* [{namespace, depth, oldest_age_seconds}] or NULL */
  char queue_error[1100];
  double queue_ms;
  json_object *status; /* tc_worker_status */
} tc_probe_t;
/* Probes the database (and, with queues, the depth of the worker's namespaces' queues). */
void tc_health_probe(tc_obs_t *o, tc_probe_t *p, bool queues);
void tc_health_probe_free(tc_probe_t *p);
void tc_health_pool_stats(tc_runtime_t *rt, int *max, int *open, int *idle);
json_object *tc_health_basic(tc_obs_t *o, const char *status);
/* health_ready (detailed = false) or health_detailed. */
json_object *tc_health_report(tc_obs_t *o, bool detailed);

/* ---- Metrics (tc_metrics_text.c). ---- */
json_object *tc_metrics_text_worker(tc_obs_t *o, tc_error_t *err);
json_object *tc_metrics_text_events(tc_obs_t *o, tc_error_t *err);
/* *text: a new string, freed with tc_obs_text_free. */
int tc_metrics_text_prometheus(tc_obs_t *o, char **text, tc_error_t *err);

/* ---- Template services (tc_template_cache.c); args as tc_obs_call's. ---- */
json_object *tc_template_cache_get(tc_obs_t *o, json_object *args, tc_error_t *err);
json_object *tc_template_cache_validate(tc_obs_t *o, json_object *args, tc_error_t *err);
json_object *tc_template_cache_list(tc_obs_t *o, json_object *args, tc_error_t *err);
json_object *tc_template_cache_stats(tc_obs_t *o);
json_object *tc_template_cache_clear(tc_obs_t *o);
json_object *tc_template_cache_refresh(tc_obs_t *o, json_object *args);

/* ---- Configuration (tc_config.c). ---- */
json_object *tc_config_runtime(tc_obs_t *o, tc_error_t *err);

#endif /* TC_OBSERVE_H */
