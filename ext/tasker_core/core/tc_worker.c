/*
 * tc_worker.c - the worker: a claimer thread (tc_claimer.c) claims steps into a bounded in-memory
 * queue; handler threads of the host language take them here and submit their results. Threads and
 * locks: see tc_worker.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tc_worker.h"

tc_metrics_t *tc_worker_metrics(tc_worker_t *w) { return w->metrics; }

static int parse_mode(const char *s, tc_mode_t *mode) {
  if (!s || strcmp(s, "Hybrid") == 0 || strcmp(s, "hybrid") == 0) *mode = TC_MODE_HYBRID;
  else if (strcmp(s, "PollingOnly") == 0 || strcmp(s, "polling_only") == 0) *mode = TC_MODE_POLLING_ONLY;
  else if (strcmp(s, "EventDrivenOnly") == 0 || strcmp(s, "event_driven_only") == 0) *mode = TC_MODE_EVENT_DRIVEN_ONLY;
  else return -1;
  return 0;
}

static bool valid_namespace(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > TC_NAMESPACE_MAX || (s[0] >= '0' && s[0] <= '9')) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

void tc_worker_free(tc_worker_t *w);
static void posted_done(void *sink, const tc_flush_report_t *report);
static void moved_next(void *sink, json_object *row);

int tc_worker_new(tc_runtime_t *rt, json_object *options, tc_worker_t **out, tc_error_t *err) {
  if (!options || !json_object_is_type(options, json_type_object))
    return tc_error_set(err, TC_ECONFIG, "worker options must be an object");
  json_object *ns = tc_json_get(options, "namespaces");
  if (!ns || !json_object_is_type(ns, json_type_array) || json_object_array_length(ns) == 0)
    return tc_error_set(err, TC_ECONFIG, "worker option namespaces must be a non-empty list");
  size_t n_ns = json_object_array_length(ns);
  for (size_t i = 0; i < n_ns; i++) {
    json_object *v = json_object_array_get_idx(ns, i);
    if (!json_object_is_type(v, json_type_string) || !valid_namespace(json_object_get_string(v)))
      return tc_error_set(err, TC_ECONFIG,
                          "worker option namespaces: %s is not a namespace name (letters, digits, underscores)",
                          tc_json_str(v));
  }
  int capacity = 10, batch = 20, poll_ms = 1000, vis = 30;
  int stale_every = 60, stale_threshold = 30, lifetime = 24;
  const tc_int_opt_t ints[] = {{"concurrency", 1, 1000, &capacity},
                               {"batch_size", 1, 1000, &batch},
                               {"poll_interval_ms", 10, 3600000, &poll_ms},
                               {"visibility_timeout_seconds", 1, 86400, &vis},
                               {"staleness_check_interval_seconds", 0, 86400, &stale_every},
                               {"staleness_threshold_minutes", 0, 525600, &stale_threshold},
                               {"max_task_lifetime_hours", 1, 87600, &lifetime}};
  int rc = tc_json_opt_ints(options, ints, TC_COUNT(ints), TC_ECONFIG, "worker option ", err);
  if (rc != TC_OK) return rc;
  int keep_completed = 0, keep_error = 0, retention_batch = 100;
  json_object *retention = tc_json_get(options, "retention");
  if (retention && !json_object_is_type(retention, json_type_object))
    return tc_error_set(err, TC_ECONFIG, "worker option retention must be a mapping of completed_days, error_days, batch_size");
  if (retention) {
    json_object_object_foreach(retention, key, val) {
      (void)val;
      if (strcmp(key, "completed_days") != 0 && strcmp(key, "error_days") != 0 && strcmp(key, "batch_size") != 0)
        return tc_error_set(err, TC_ECONFIG,
                            "worker option retention.%.64s is not a setting (completed_days, error_days, batch_size)", key);
    }
    const tc_int_opt_t keep[] = {{"completed_days", 1, 36500, &keep_completed},
                                 {"error_days", 1, 36500, &keep_error},
                                 {"batch_size", 1, 10000, &retention_batch}};
    rc = tc_json_opt_ints(retention, keep, TC_COUNT(keep), TC_ECONFIG, "worker option retention.", err);
    if (rc != TC_OK) return rc;
  }
  tc_mode_t mode;
  json_object *m = tc_json_get(options, "deployment_mode");
  if (parse_mode(m ? json_object_get_string(m) : NULL, &mode) != 0)
    return tc_error_set(err, TC_ECONFIG,
                        "worker option deployment_mode must be Hybrid, PollingOnly or EventDrivenOnly");

  tc_worker_t *w = tc_calloc(1, sizeof *w);
  if (!w) return tc_error_set(err, TC_ENOMEM, "out of memory creating the worker");
  w->rt = rt;
  w->capacity = capacity;
  w->batch_size = batch;
  w->poll_interval_ms = poll_ms;
  w->visibility_s = vis;
  w->mode = mode;
  w->staleness_interval_s = stale_every;
  json_object *coc = tc_json_get(options, "claim_on_complete");
  w->claim_on_complete = coc ? json_object_get_boolean(coc) : true;
  w->staleness_threshold_min = stale_threshold;
  w->max_lifetime_h = lifetime;
  w->retention_completed_days = keep_completed;
  w->retention_error_days = keep_error;
  w->retention_batch = retention_batch;
  w->wake_fd[0] = w->wake_fd[1] = -1;
  tc_uuid_v7(w->worker_uuid);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  int ring_rc = tc_ring_init(&w->queue, capacity);
  w->token_slots = 2 * capacity;
  w->flight_tokens = tc_calloc((size_t)w->token_slots, sizeof *w->flight_tokens);
  w->namespaces = tc_calloc(n_ns, sizeof(char *));
  size_t lit_len = 3;
  for (size_t i = 0; i < n_ns; i++) lit_len += json_object_get_string_len(json_object_array_get_idx(ns, i)) + 1;
  w->ns_literal = tc_malloc(lit_len);
  bool ok = ring_rc == 0 && w->flight_tokens && w->namespaces && w->ns_literal && pipe2(w->wake_fd, O_NONBLOCK | O_CLOEXEC) == 0;
  if (ok) {
    strcpy(w->ns_literal, "{");
    for (size_t i = 0; i < n_ns && ok; i++) {
      const char *name = json_object_get_string(json_object_array_get_idx(ns, i));
      w->namespaces[i] = tc_strdup(name);
      ok = w->namespaces[i] != NULL;
      w->n_namespaces = (int)i + 1;
      if (i) strcat(w->ns_literal, ",");
      strcat(w->ns_literal, name);
    }
    strcat(w->ns_literal, "}");
    if (ok) ok = (w->metrics = tc_metrics_new(w->namespaces, w->n_namespaces, w->token_slots)) != NULL;
  }
  if (ok) ok = tc_flusher_new(rt, w->worker_uuid, w->ns_literal, vis, capacity, &w->flusher, err) == TC_OK;
  if (ok) tc_flusher_set_sink(w->flusher, posted_done, moved_next, w);
  if (ok) ok = tc_step_defs_new(&w->step_defs, err) == TC_OK;
  if (!ok) {
    tc_worker_free(w);
    return tc_error_set(err, TC_ENOMEM, "could not allocate the worker's queue or wake pipe");
  }
  *out = w;
  return TC_OK;
}

/* Remembers (add) or forgets the claim token of an in-flight step; false when there was no free
 * slot to remember it in, or no such token to forget. Caller holds w->mu. */
static bool track_locked(tc_worker_t *w, const char *token, bool add) {
  if (!token) return false;
  for (int i = 0; i < w->token_slots; i++) {
    if (add && w->flight_tokens[i][0] == '\0') {
      snprintf(w->flight_tokens[i], sizeof w->flight_tokens[i], "%s", token);
      return true;
    }
    if (!add && w->flight_tokens[i][0] != '\0' && strcmp(w->flight_tokens[i], token) == 0) {
      w->flight_tokens[i][0] = '\0';
      return true;
    }
  }
  return false;
}

int tc_worker_start(tc_worker_t *w, tc_error_t *err) {
  pthread_mutex_lock(&w->mu);
  if (w->started) {
    pthread_mutex_unlock(&w->mu);
    return tc_error_set(err, TC_ESTATE, "the worker is already started");
  }
  w->started = true;
  pthread_mutex_unlock(&w->mu);
  if (pthread_create(&w->thread, NULL, tc_claimer_main, w) != 0)
    return tc_error_set(err, TC_ENOMEM, "could not start the worker's claimer thread");
  w->thread_started = true;
  tc_log(w->rt, TC_LOG_INFO, "worker_started", "worker %s serving %s with %d slots", w->worker_uuid,
         w->ns_literal, w->capacity);
  return TC_OK;
}

void tc_cancel_fire(tc_cancel_t *cancel) {
  if (!cancel) return;
  cancel->fired = 1;
  tc_worker_t *w = cancel->worker;
  if (w) {
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
  }
}

/* Whether this thread posted a result and has not asked for a step since (it counts in
 * w->returning: a step queued meanwhile needs no wake-up, this thread takes it). */
static __thread tc_worker_t *returning_to = NULL;

/* Caller holds w->mu. */
static void arrived_locked(tc_worker_t *w) {
  if (returning_to != w) return;
  returning_to = NULL;
  if (w->returning > 0) w->returning--;
}

int tc_worker_next_step(tc_worker_t *w, int timeout_ms, tc_cancel_t *cancel, json_object **out,
                        tc_error_t *err) {
  struct timespec deadline;
  tc_deadline(&deadline, timeout_ms < 0 ? 0 : timeout_ms);
  if (cancel) cancel->worker = w;
  pthread_mutex_lock(&w->mu);
  arrived_locked(w);
  int rc = TC_OK;
  while (w->queue.count == 0 && !w->stopping && !(cancel && cancel->fired)) {
    if (pthread_cond_timedwait(&w->cv, &w->mu, &deadline) == ETIMEDOUT) break;
  }
  if (w->queue.count > 0 && !w->stopping && !(cancel && cancel->fired)) {
    json_object *ev = tc_ring_pop(&w->queue);
    if (w->queue.count > w->returning) pthread_cond_signal(&w->cv);
    w->in_flight++;
    track_locked(w, json_object_get_string(tc_json_get(ev, "claim_token")), true);
    pthread_mutex_unlock(&w->mu);
    tc_metrics_started(w->metrics, ev);
    *out = ev;
    return TC_OK;
  }
  /* A step is signalled to one waiting thread: one that leaves without it passes the signal on. */
  if (w->queue.count > 0) pthread_cond_signal(&w->cv);
  if (w->stopping) rc = tc_error_set(err, TC_ESTOPPED, "the worker is stopped");
  else if (cancel && cancel->fired) rc = tc_error_set(err, TC_ECANCELED, "the wait was cancelled");
  else rc = tc_error_set(err, TC_ETIMEDOUT, "no step arrived within %d ms", timeout_ms);
  pthread_mutex_unlock(&w->mu);
  return rc;
}

bool tc_worker_try_next_step(tc_worker_t *w, json_object **out) {
  pthread_mutex_lock(&w->mu);
  arrived_locked(w);
  json_object *ev = w->queue.count > 0 && !w->stopping ? tc_ring_pop(&w->queue) : NULL;
  if (ev) {
    w->in_flight++;
    track_locked(w, json_object_get_string(tc_json_get(ev, "claim_token")), true);
  }
  pthread_mutex_unlock(&w->mu);
  if (!ev) return false;
  tc_metrics_started(w->metrics, ev);
  *out = ev;
  return true;
}

void tc_worker_requeue(tc_worker_t *w, json_object *ev) {
  tc_metrics_forget(w->metrics, json_object_get_string(tc_json_get(ev, "claim_token")));
  pthread_mutex_lock(&w->mu);
  track_locked(w, json_object_get_string(tc_json_get(ev, "claim_token")), false);
  if (tc_ring_push_front(&w->queue, ev)) ev = NULL;
  if (w->in_flight > 0) w->in_flight--;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  json_object_put(ev); /* Unreachable while capacity accounting holds; its claim would expire. */
}

int tc_worker_complete_step(tc_worker_t *w, const char *step_uuid, const char *claim_token,
                            json_object *result, json_object **out, tc_error_t *err) {
  int rc = tc_uuid_require(step_uuid, "step_uuid", err);
  if (rc == TC_OK) rc = tc_uuid_require(claim_token, "claim_token", err);
  if (rc == TC_OK && (!result || !json_object_is_type(result, json_type_object)))
    rc = tc_error_set(err, TC_EINVAL, "the step result must be an object");
  /* Claim on complete: unless stopping, ask for one step into the slot this result frees. */
  pthread_mutex_lock(&w->mu);
  bool claim_next = !w->stopping && w->claim_on_complete;
  pthread_mutex_unlock(&w->mu);
  json_object *res = NULL, *next = NULL;
  bool next_moved = false; /* the slot went to the queue with a step (moved_next) */
  if (rc == TC_OK)
    rc = tc_flusher_submit(w->flusher, step_uuid, claim_token, result, claim_next, &res, &next, &next_moved, err);
  if (rc == TC_OK && !res) {
    json_object_put(next); /* its claim expires and the step runs again */
    next = NULL;
    rc = tc_error_set(err, TC_EDB, "the result of step %s got no outcome", step_uuid);
  }
  if (rc == TC_OK && next) next = tc_worker_event_from_row(w, next);
  if (rc == TC_OK) {
    /* The caller runs the step claimed for it next: {"next_steps": [event]}. */
    json_object *list = json_object_new_array();
    bool in_list = list && next && json_object_array_add(list, next) == 0;
    if (!list || (next && !in_list) || json_object_object_add(res, "next_steps", list) != 0) {
      json_object_put(list); /* and next, when it is in the list */
      if (!in_list) json_object_put(next);
      json_object_put(res);
      res = next = NULL;
      rc = tc_error_set(err, TC_ENOMEM, "out of memory");
    }
  }
  bool applied = rc == TC_OK && json_object_get_boolean(tc_json_get(res, "applied"));
  bool success = result && json_object_get_boolean(tc_json_get(result, "success"));
  /* A database failure, or a result the database refused (TC_EINVAL: nothing of it was applied),
   * leaves the step claimed by us: the caller may retry the submission, with another result (its
   * claim stays alive through the heartbeat), or give it up with tc_worker_abandon_step. */
  bool retry_later = rc == TC_EDB || rc == TC_ETIMEDOUT || rc == TC_EINVAL;
  pthread_mutex_lock(&w->mu);
  if (!retry_later) {
    if (claim_token) track_locked(w, claim_token, false);
    if (next) {
      /* The slot goes straight to the next step: in_flight stays, its claim is tracked. */
      track_locked(w, json_object_get_string(tc_json_get(next, "claim_token")), true);
      w->claimed_total++;
    } else if (w->in_flight > 0 && !next_moved) {
      w->in_flight--;
    }
  }
  if (applied) {
    if (success) w->completed_total++;
    else w->failed_total++;
  } else if (rc == TC_OK) {
    w->stale_total++;
  }
  pthread_mutex_unlock(&w->mu);
  if (!retry_later) {
    tc_metrics_finished(w->metrics, claim_token, success, rc == TC_OK ? res : NULL);
    if (next) {
      tc_metrics_claimed(w->metrics, next, -1);
      tc_metrics_started(w->metrics, next);
    }
  }
  tc_claimer_wake(w);
  if (rc != TC_OK) return rc;
  if (!applied)
    tc_log(w->rt, TC_LOG_WARN, "stale_result_refused",
           "result for step %s refused: its claim is no longer current (step is %s)", step_uuid,
           json_object_get_string(tc_json_get(res, "step_status")));
  *out = res;
  return TC_OK;
}

int tc_worker_post_step(tc_worker_t *w, const char *step_uuid, const char *claim_token, json_object *result,
                        bool *posted, tc_error_t *err) {
  *posted = false;
  int rc = tc_uuid_require(step_uuid, "step_uuid", err);
  if (rc == TC_OK) rc = tc_uuid_require(claim_token, "claim_token", err);
  if (rc == TC_OK && (!result || !json_object_is_type(result, json_type_object)))
    rc = tc_error_set(err, TC_EINVAL, "the step result must be an object");
  if (rc != TC_OK) return rc;
  pthread_mutex_lock(&w->mu);
  bool claim_next = !w->stopping && w->claim_on_complete;
  pthread_mutex_unlock(&w->mu);
  /* The step keeps its slot and its claim (kept alive by the heartbeat) until posted_done. */
  rc = tc_flusher_post(w->flusher, step_uuid, claim_token, result, claim_next, posted, err);
  if (*posted && returning_to != w) {
    pthread_mutex_lock(&w->mu);
    returning_to = w;
    w->returning++;
    pthread_mutex_unlock(&w->mu);
  }
  return rc;
}

/* Puts a step claimed by a flush into the queue, in a slot the caller freed under w->mu; false
 * when the worker is stopping or the queue is full (the caller gives the claim back). */
static bool queue_locked(tc_worker_t *w, json_object *ev) {
  if (w->stopping || !tc_ring_push(&w->queue, ev)) return false;
  w->claimed_total++;
  /* A thread on its way back from posting takes it without a wake-up (and a wait for the GVL). */
  if (w->queue.count == w->returning + 1) pthread_cond_signal(&w->cv);
  return true;
}

static void release_events(tc_worker_t *w, json_object **events, int n);

/* A step claimed by a flush that the queue did not take (the worker stops): its claim goes back. */
static void give_back(tc_worker_t *w, json_object *ev) {
  tc_metrics_forget(w->metrics, json_object_get_string(tc_json_get(ev, "claim_token")));
  release_events(w, &ev, 1);
}

/* The end of a posted result (tc_flusher_post), in the thread that led its flush: its slot goes to
 * the step claimed or handed over with it, or is freed. */
static void posted_done(void *sink, const tc_flush_report_t *report) {
  tc_worker_t *w = sink;
  json_object *ev = report->rc == TC_OK && report->next ? tc_worker_event_from_row(w, json_object_get(report->next))
                                                        : NULL;
  bool applied = report->rc == TC_OK && json_object_get_boolean(tc_json_get(report->outcome, "applied"));
  if (ev) tc_metrics_claimed(w->metrics, ev, -1); /* before a handler thread can take (and free) it */
  pthread_mutex_lock(&w->mu);
  track_locked(w, report->claim_token, false);
  if (w->in_flight > 0) w->in_flight--;
  bool queued = ev && queue_locked(w, ev);
  if (applied) {
    if (report->success) w->completed_total++;
    else w->failed_total++;
  } else if (report->rc == TC_OK) {
    w->stale_total++;
  }
  pthread_mutex_unlock(&w->mu);
  tc_metrics_finished(w->metrics, report->claim_token, report->success, report->rc == TC_OK ? report->outcome : NULL);
  if (ev && !queued) give_back(w, ev);
  if (!queued) tc_claimer_wake(w);
  if (report->rc != TC_OK)
    tc_log(w->rt, TC_LOG_WARN, "step_abandoned",
           "gave up submitting the result of step %s (%s); the step runs again when its claim expires",
           report->step_uuid, report->err->message);
  else if (!applied)
    tc_log(w->rt, TC_LOG_WARN, "stale_result_refused",
           "result for step %s refused: its claim is no longer current (step is %s)", report->step_uuid,
           json_object_get_string(tc_json_get(report->outcome, "step_status")));
}

/* The step claimed for a flush leader's own result while it went on leading: it takes the leader's
 * slot in the queue (tc_worker_complete_step then leaves in_flight alone). */
static void moved_next(void *sink, json_object *row) {
  tc_worker_t *w = sink;
  json_object *ev = tc_worker_event_from_row(w, json_object_get(row));
  if (ev) tc_metrics_claimed(w->metrics, ev, -1);
  pthread_mutex_lock(&w->mu);
  if (w->in_flight > 0) w->in_flight--;
  bool queued = ev && queue_locked(w, ev);
  pthread_mutex_unlock(&w->mu);
  if (ev && !queued) give_back(w, ev);
  if (!queued) tc_claimer_wake(w);
}

json_object *tc_worker_event_from_row(tc_worker_t *w, json_object *row) {
  json_object *ev = NULL;
  tc_error_t err = {0};
  if (tc_step_event_build(w->step_defs, w->rt, row, &ev, &err) == TC_OK) {
    json_object_put(row);
    return ev;
  }
  /* Give the claim back (the attempt it counted too), so the step runs again at once instead of
   * failing an attempt when its claim expires. */
  json_object *tok = json_object_array_get_idx(row, 0);
  tc_log(w->rt, TC_LOG_ERROR, "step_event_failed", "could not build the event of claim %s: %s",
         tok ? json_object_get_string(tok) : "?", err.message);
  json_object *tokens = json_object_new_array();
  if (tokens && tok && json_object_array_add(tokens, json_object_get(tok)) == 0) {
    const char *params[] = {tc_json_str(tokens)};
    json_object *n = NULL;
    tc_error_t ignored = {0};
    if (tc_rt_query_json(w->rt, "SELECT tasker.release_claims($1::jsonb)", 1, params, &n, &ignored) != TC_OK)
      tc_log(w->rt, TC_LOG_WARN, "release_failed", "could not give back claim %s: %s; it runs again when it expires",
             json_object_get_string(tok), ignored.message);
    json_object_put(n);
  }
  json_object_put(tokens);
  json_object_put(row);
  return NULL;
}

int tc_worker_checkpoint_step(tc_worker_t *w, const char *step_uuid, const char *claim_token,
                              json_object *checkpoint, json_object **out, tc_error_t *err) {
  int rc = tc_uuid_require(step_uuid, "step_uuid", err);
  if (rc == TC_OK) rc = tc_uuid_require(claim_token, "claim_token", err);
  if (rc != TC_OK) return rc;
  if (!checkpoint || !json_object_is_type(checkpoint, json_type_object))
    return tc_error_set(err, TC_EINVAL, "the checkpoint must be an object");
  const char *text = tc_json_str(checkpoint);
  if (!text) return tc_error_set(err, TC_ENOMEM, "out of memory serializing the checkpoint");
  size_t bytes = strlen(text);
  if (bytes > TC_STEP_RESULT_MAX_BYTES)
    return tc_error_set(err, TC_EINVAL, "the checkpoint is %zu bytes serialized; the limit is %d", bytes,
                        TC_STEP_RESULT_MAX_BYTES);
  char vis[16];
  snprintf(vis, sizeof vis, "%d", w->visibility_s);
  const char *params[] = {step_uuid, claim_token, w->worker_uuid, text, vis};
  json_object *res = NULL;
  rc = tc_rt_query_json(w->rt, "SELECT tasker.checkpoint_step($1::uuid, $2::uuid, $3::uuid, $4::jsonb, $5::integer)",
                        5, params, &res, err);
  if (rc != TC_OK) return rc;
  json_object *row = tc_json_get(res, "event");
  if (row) {
    json_object *ev = NULL;
    rc = tc_step_event_build(w->step_defs, w->rt, row, &ev, err);
    if (rc == TC_OK && json_object_object_add(res, "event", ev) != 0) {
      json_object_put(ev);
      rc = tc_error_set(err, TC_ENOMEM, "out of memory");
    }
    if (rc != TC_OK) {
      json_object_put(res);
      return rc;
    }
  }
  *out = res;
  return TC_OK;
}

void tc_worker_abandon_step(tc_worker_t *w, const char *claim_token) {
  pthread_mutex_lock(&w->mu);
  bool in_flight = track_locked(w, claim_token, false);
  if (in_flight && w->in_flight > 0) w->in_flight--;
  pthread_mutex_unlock(&w->mu);
  if (!in_flight) return; /* completed, requeued or abandoned already */
  tc_metrics_forget(w->metrics, claim_token);
  tc_claimer_wake(w);
  tc_log(w->rt, TC_LOG_WARN, "step_abandoned",
         "gave up submitting the result of claim %s; the step runs again when its claim expires", claim_token);
}

void tc_worker_handler_threads(tc_worker_t *w, int delta, bool lost) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  if (delta < 0) arrived_locked(w); /* an ending thread comes back for no step */
  w->handler_threads_declared = true;
  w->handler_threads += delta;
  if (w->handler_threads < 0) w->handler_threads = 0;
  if (lost) w->handler_threads_lost++;
  long long lost_total = w->handler_threads_lost;
  pthread_mutex_unlock(&w->mu);
  if (lost)
    tc_log(w->rt, TC_LOG_WARN, "handler_thread_lost", "worker %s lost a handler thread (%lld so far)", w->worker_uuid,
           lost_total);
}

/* Gives the claims of steps that never started back at once and frees their events. */
static void release_events(tc_worker_t *w, json_object **events, int n) {
  json_object *tokens = json_object_new_array();
  for (int i = 0; tokens && i < n; i++) {
    json_object *tok = tc_json_get(events[i], "claim_token");
    if (tok) json_object_array_add(tokens, json_object_get(tok));
  }
  for (int i = 0; i < n; i++) json_object_put(events[i]);
  if (!tokens) return;
  const char *params[] = {tc_json_str(tokens)};
  tc_error_t err = {0};
  json_object *res = NULL;
  if (tc_rt_query_json(w->rt, "SELECT to_jsonb(tasker.release_claims($1::jsonb))", 1, params, &res, &err) != TC_OK) {
    tc_log(w->rt, TC_LOG_WARN, "release_claims_failed",
           "could not give back %d claimed steps (they return when their claims expire): %s", n, err.message);
  } else {
    pthread_mutex_lock(&w->mu);
    w->released_total += json_object_get_int(res);
    pthread_mutex_unlock(&w->mu);
  }
  json_object_put(res);
  json_object_put(tokens);
}

/* Gives claimed but never started steps back to the queue at once. */
static void release_queued(tc_worker_t *w) {
  pthread_mutex_lock(&w->mu);
  int n = w->queue.count;
  json_object **events = tc_calloc((size_t)(n ? n : 1), sizeof(json_object *));
  for (int i = 0; events && i < n; i++) events[i] = tc_ring_pop(&w->queue);
  pthread_mutex_unlock(&w->mu);
  if (events && n > 0) release_events(w, events, n);
  tc_free(events);
}

void tc_worker_stop(tc_worker_t *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  bool already = w->stopping;
  w->stopping = true;
  pthread_cond_broadcast(&w->cv);
  if (already) {
    /* Another thread is stopping it: return only once it is stopped, so a caller that frees
     * next never frees under the claimer. */
    while (!w->stopped) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return;
  }
  pthread_mutex_unlock(&w->mu);
  tc_flusher_stop(w->flusher);
  tc_claimer_wake(w);
  if (w->thread_started) {
    pthread_join(w->thread, NULL);
    w->thread_started = false;
  }
  release_queued(w);
  tc_log(w->rt, TC_LOG_INFO, "worker_stopped", "worker %s stopped", w->worker_uuid);
  pthread_mutex_lock(&w->mu);
  w->stopped = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

int tc_worker_status(tc_worker_t *w, json_object **out, tc_error_t *err) {
  json_object *s = json_object_new_object();
  if (!s) return tc_error_set(err, TC_ENOMEM, "out of memory");
  pthread_mutex_lock(&w->mu);
  json_object_object_add(s, "worker_uuid", json_object_new_string(w->worker_uuid));
  json_object_object_add(s, "running", json_object_new_boolean(w->started && !w->stopping));
  json_object_object_add(s, "concurrency", json_object_new_int(w->capacity));
  json_object_object_add(s, "queued", json_object_new_int(w->queue.count));
  json_object_object_add(s, "in_flight", json_object_new_int(w->in_flight));
  json_object_object_add(s, "listen_connected", json_object_new_boolean(w->listen_connected));
  json_object_object_add(s, "claimed_total", json_object_new_int64(w->claimed_total));
  json_object_object_add(s, "completed_total", json_object_new_int64(w->completed_total));
  json_object_object_add(s, "failed_total", json_object_new_int64(w->failed_total));
  json_object_object_add(s, "stale_total", json_object_new_int64(w->stale_total));
  json_object_object_add(s, "released_total", json_object_new_int64(w->released_total));
  json_object_object_add(s, "claim_queries", json_object_new_int64(w->claim_queries));
  json_object_object_add(s, "notifications", json_object_new_int64(w->notifications));
  if (w->handler_threads_declared) {
    json_object_object_add(s, "handler_threads", json_object_new_int(w->handler_threads));
    json_object_object_add(s, "handler_threads_lost", json_object_new_int64(w->handler_threads_lost));
  }
  bool claimer_alive = w->thread_started && w->started && !w->stopping;
  pthread_mutex_unlock(&w->mu);
  long long flushes = 0, flushed = 0, posted = 0, flush_us = 0;
  int flush_waiting = 0;
  tc_flusher_stats(w->flusher, &flushes, &flushed, &posted, &flush_us, &flush_waiting);
  json_object_object_add(s, "flush_waiting", json_object_new_int(flush_waiting));
  json_object_object_add(s, "flushes", json_object_new_int64(flushes));
  json_object_object_add(s, "flushed_results", json_object_new_int64(flushed));
  /* Results that joined a flush another thread led, their threads going on at once. */
  json_object_object_add(s, "posted_results", json_object_new_int64(posted));
  /* The flushes' round trips (statements and commit), summed: the database's share of the steps. */
  json_object_object_add(s, "flush_ms", json_object_new_double((double)flush_us / 1000.0));
  int64_t now = tc_now_ms(), tick = __atomic_load_n(&w->claimer_tick, __ATOMIC_RELAXED),
          beat = __atomic_load_n(&w->last_heartbeat_at, __ATOMIC_RELAXED);
  json_object_object_add(s, "claimer_alive", json_object_new_boolean(claimer_alive));
  json_object_object_add(s, "claimer_last_active_ms_ago", tick ? json_object_new_int64(now - tick) : NULL);
  json_object_object_add(s, "last_heartbeat_ms_ago", beat ? json_object_new_int64(now - beat) : NULL);
  json_object_object_add(s, "heartbeat_interval_ms", json_object_new_int64((int64_t)w->visibility_s * 1000 / 3));
  json_object_object_add(s, "poll_interval_ms", json_object_new_int(w->poll_interval_ms));
  json_object_object_add(s, "deployment_mode", json_object_new_string(w->mode == TC_MODE_HYBRID ? "Hybrid"
                                                                      : w->mode == TC_MODE_POLLING_ONLY ? "PollingOnly"
                                                                                                     : "EventDrivenOnly"));
  json_object *ns = json_object_new_array();
  for (int i = 0; ns && i < w->n_namespaces; i++)
    json_object_array_add(ns, json_object_new_string(w->namespaces[i]));
  json_object_object_add(s, "namespaces", ns);
  *out = s;
  return TC_OK;
}

void tc_worker_free(tc_worker_t *w) {
  if (!w) return;
  if (w->started) tc_worker_stop(w);
  tc_ring_free(&w->queue);
  tc_free(w->flight_tokens);
  for (int i = 0; w->namespaces && i < w->n_namespaces; i++) tc_free(w->namespaces[i]);
  tc_free(w->namespaces);
  tc_free(w->ns_literal);
  tc_metrics_free(w->metrics);
  tc_flusher_free(w->flusher);
  tc_step_defs_free(w->step_defs);
  if (w->wake_fd[0] >= 0) close(w->wake_fd[0]);
  if (w->wake_fd[1] >= 0) close(w->wake_fd[1]);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  tc_free(w);
}

void tc_worker_abandon(tc_worker_t *w) {
  if (!w) return;
  /* The claimer thread does not exist in the child; close what the parent's thread held. */
  if (w->conn && PQsocket(w->conn) >= 0) close(PQsocket(w->conn));
  tc_flusher_abandon(w->flusher);
  if (w->wake_fd[0] >= 0) close(w->wake_fd[0]);
  if (w->wake_fd[1] >= 0) close(w->wake_fd[1]);
}

