/*
 * tc_breaker.c - the database circuit breaker of the observability services (SPEC 9.3): after
 * failure_threshold consecutive failures it opens and answers at once without the database; after
 * timeout_ms it lets calls through again (half open) and closes after success_threshold successes.
 *
 * Lock: b->mu guards every field but rt; no database call runs under it.
 */
#include "tc_observe.h"

static const char *const cb_names[] = {"closed", "half_open", "open"};

void tc_breaker_init(tc_breaker_t *b, tc_runtime_t *rt, int failure_threshold, int success_threshold,
                     int64_t timeout_ms) {
  memset(b, 0, sizeof *b);
  b->rt = rt;
  b->failure_threshold = failure_threshold;
  b->success_threshold = success_threshold;
  b->timeout_ms = timeout_ms;
  pthread_mutex_init(&b->mu, NULL);
}

void tc_breaker_destroy(tc_breaker_t *b) { pthread_mutex_destroy(&b->mu); }

static bool allow(tc_breaker_t *b) {
  pthread_mutex_lock(&b->mu);
  if (b->state == TC_BREAKER_OPEN && tc_now_ms() - b->opened_at >= b->timeout_ms) {
    b->state = TC_BREAKER_HALF_OPEN;
    b->half_open_successes = 0;
  }
  bool ok = b->state != TC_BREAKER_OPEN;
  if (ok) b->total_calls++;
  else b->rejections++;
  pthread_mutex_unlock(&b->mu);
  return ok;
}

static void record(tc_breaker_t *b, bool ok) {
  pthread_mutex_lock(&b->mu);
  int before = b->state;
  if (ok) {
    b->success_count++;
    b->consecutive_failures = 0;
    if (b->state == TC_BREAKER_HALF_OPEN && ++b->half_open_successes >= b->success_threshold) b->state = TC_BREAKER_CLOSED;
  } else {
    b->failure_count++;
    b->consecutive_failures++;
    if (b->state == TC_BREAKER_HALF_OPEN || (b->state == TC_BREAKER_CLOSED && b->consecutive_failures >= b->failure_threshold)) {
      b->state = TC_BREAKER_OPEN;
      b->opened_at = tc_now_ms();
    }
  }
  int after = b->state;
  pthread_mutex_unlock(&b->mu);
  if (before != after)
    tc_log(b->rt, after == TC_BREAKER_OPEN ? TC_LOG_WARN : TC_LOG_INFO, "circuit_breaker_transition",
           "database circuit breaker %s -> %s", cb_names[before], cb_names[after]);
}

json_object *tc_breaker_json(tc_breaker_t *b) {
  json_object *j = json_object_new_object();
  if (!j) return NULL;
  pthread_mutex_lock(&b->mu);
  if (b->state == TC_BREAKER_OPEN && tc_now_ms() - b->opened_at >= b->timeout_ms) {
    b->state = TC_BREAKER_HALF_OPEN;
    b->half_open_successes = 0;
  }
  json_object_object_add(j, "name", json_object_new_string("database"));
  json_object_object_add(j, "state", json_object_new_string(cb_names[b->state]));
  json_object_object_add(j, "is_healthy", json_object_new_boolean(b->state == TC_BREAKER_CLOSED));
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

int tc_breaker_state(tc_breaker_t *b) {
  pthread_mutex_lock(&b->mu);
  int s = b->state;
  if (s == TC_BREAKER_OPEN && tc_now_ms() - b->opened_at >= b->timeout_ms) s = TC_BREAKER_HALF_OPEN;
  pthread_mutex_unlock(&b->mu);
  return s;
}

int tc_breaker_query_json(tc_breaker_t *b, const char *sql, int n, const char *const *params, json_object **out,
                          tc_error_t *err) {
  if (!allow(b))
    return tc_error_set(err, TC_EDB, "database circuit breaker is open (%d consecutive failures)",
                        b->consecutive_failures);
  int rc = tc_rt_query_json(b->rt, sql, n, params, out, err);
  if (rc != TC_ENOMEM) record(b, rc == TC_OK);
  return rc;
}

