/*
 * tc_metrics.c - a worker's step counters and duration histograms, labelled by namespace only
 * (the worker's own namespaces: a bounded label set), and a one-minute-bucket window of results
 * for the step error rate. One mutex guards everything; no call blocks while holding it.
 */
#include <stdio.h>
#include <string.h>

#include "tc_internal.h"

const double tc_metrics_buckets_ms[TC_METRICS_BUCKETS] = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
                                                          10000, 30000, 60000};

typedef struct {
  char token[37];
  int ns;
  int64_t started_ms;
} flight_t;

struct tc_metrics {
  pthread_mutex_t mu;
  int n;
  tc_ns_metrics_t *ns;
  int cap;
  flight_t *flight;
  int64_t window_minute[TC_METRICS_WINDOW];
  uint64_t window_ok[TC_METRICS_WINDOW], window_err[TC_METRICS_WINDOW];
  int64_t created_ms;
};

tc_metrics_t *tc_metrics_new(char *const *namespaces, int n, int capacity) {
  tc_metrics_t *m = tc_calloc(1, sizeof *m);
  if (!m) return NULL;
  m->ns = tc_calloc((size_t)(n > 0 ? n : 1), sizeof *m->ns);
  m->flight = tc_calloc((size_t)(capacity > 0 ? capacity : 1), sizeof *m->flight);
  if (!m->ns || !m->flight) {
    tc_free(m->ns);
    tc_free(m->flight);
    tc_free(m);
    return NULL;
  }
  m->n = n;
  m->cap = capacity;
  for (int i = 0; i < n; i++) snprintf(m->ns[i].name, sizeof m->ns[i].name, "%s", namespaces[i]);
  pthread_mutex_init(&m->mu, NULL);
  m->created_ms = tc_now_ms();
  return m;
}

void tc_metrics_free(tc_metrics_t *m) {
  if (!m) return;
  pthread_mutex_destroy(&m->mu);
  tc_free(m->ns);
  tc_free(m->flight);
  tc_free(m);
}

/* Index of the step event's namespace (task_sequence_step.task.namespace_name), or -1. */
static int ns_index(tc_metrics_t *m, json_object *ev) {
  json_object *name = tc_json_get(tc_json_get(tc_json_get(ev, "task_sequence_step"), "task"), "namespace_name");
  const char *s = name ? json_object_get_string(name) : NULL;
  for (int i = 0; s && i < m->n; i++)
    if (strcmp(m->ns[i].name, s) == 0) return i;
  return -1;
}

static void observe(tc_histogram_t *h, double ms) {
  int i = 0;
  while (i < TC_METRICS_BUCKETS && ms > tc_metrics_buckets_ms[i]) i++;
  h->counts[i]++;
  h->count++;
  h->sum += ms;
}

void tc_metrics_claimed(tc_metrics_t *m, json_object *ev, double claim_ms) {
  if (!m) return;
  pthread_mutex_lock(&m->mu);
  int i = ns_index(m, ev);
  if (i >= 0) {
    m->ns[i].claimed++;
    if (claim_ms >= 0) observe(&m->ns[i].claim, claim_ms);
  }
  pthread_mutex_unlock(&m->mu);
}

void tc_metrics_started(tc_metrics_t *m, json_object *ev) {
  if (!m) return;
  json_object *tok = tc_json_get(ev, "claim_token");
  if (!tok) return;
  pthread_mutex_lock(&m->mu);
  for (int i = 0; i < m->cap; i++) {
    if (m->flight[i].token[0] == '\0') {
      snprintf(m->flight[i].token, sizeof m->flight[i].token, "%s", json_object_get_string(tok));
      m->flight[i].ns = ns_index(m, ev);
      m->flight[i].started_ms = tc_now_ms();
      break;
    }
  }
  pthread_mutex_unlock(&m->mu);
}

/* Removes the token's entry; returns its namespace index and start (or -1). Caller holds mu. */
static int take_locked(tc_metrics_t *m, const char *token, int64_t *started) {
  for (int i = 0; token && i < m->cap; i++) {
    if (m->flight[i].token[0] && strcmp(m->flight[i].token, token) == 0) {
      m->flight[i].token[0] = '\0';
      *started = m->flight[i].started_ms;
      return m->flight[i].ns;
    }
  }
  return -1;
}

void tc_metrics_forget(tc_metrics_t *m, const char *token) {
  if (!m) return;
  int64_t started;
  pthread_mutex_lock(&m->mu);
  take_locked(m, token, &started);
  pthread_mutex_unlock(&m->mu);
}

static const char *str_of(json_object *o, const char *k) {
  json_object *v = tc_json_get(o, k);
  return v ? json_object_get_string(v) : "";
}

void tc_metrics_finished(tc_metrics_t *m, const char *token, bool success, json_object *answer) {
  if (!m) return;
  bool applied = answer && json_object_get_boolean(tc_json_get(answer, "applied"));
  const char *step_status = str_of(answer, "step_status");
  const char *task_status = str_of(answer, "task_status");
  int64_t now = tc_now_ms(), started = now;
  pthread_mutex_lock(&m->mu);
  int i = take_locked(m, token, &started);
  if (i >= 0) {
    tc_ns_metrics_t *n = &m->ns[i];
    observe(&n->exec, (double)(now - started));
    if (!applied) n->stale++;
    else if (success) n->completed++;
    else if (strcmp(step_status, "waiting_for_retry") == 0) n->retried++;
    else n->failed++;
    if (applied && strcmp(task_status, "complete") == 0) n->tasks_completed++;
    if (applied && strcmp(task_status, "error") == 0) n->tasks_failed++;
  }
  if (applied) {
    int64_t minute = now / 60000;
    int slot = (int)(minute % TC_METRICS_WINDOW);
    if (m->window_minute[slot] != minute) {
      m->window_minute[slot] = minute;
      m->window_ok[slot] = m->window_err[slot] = 0;
    }
    if (success) m->window_ok[slot]++;
    else m->window_err[slot]++;
  }
  pthread_mutex_unlock(&m->mu);
}

int tc_metrics_snapshot(tc_metrics_t *m, tc_ns_metrics_t **out, int *n, uint64_t *recent_ok, uint64_t *recent_err,
                        int64_t *uptime_ms) {
  tc_ns_metrics_t *copy = tc_calloc((size_t)(m->n > 0 ? m->n : 1), sizeof *copy);
  if (!copy) return TC_ENOMEM;
  int64_t now = tc_now_ms(), minute = now / 60000;
  uint64_t ok = 0, bad = 0;
  pthread_mutex_lock(&m->mu);
  memcpy(copy, m->ns, (size_t)m->n * sizeof *copy);
  for (int i = 0; i < TC_METRICS_WINDOW; i++) {
    if (m->window_minute[i] > minute - TC_METRICS_WINDOW) {
      ok += m->window_ok[i];
      bad += m->window_err[i];
    }
  }
  *n = m->n;
  *uptime_ms = now - m->created_ms;
  pthread_mutex_unlock(&m->mu);
  *out = copy;
  *recent_ok = ok;
  *recent_err = bad;
  return TC_OK;
}
