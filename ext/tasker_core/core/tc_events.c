/*
 * tc_events.c - lifecycle events (SPEC 8.1) for in-process subscribers.
 *
 * Every persisted transition is a row of tasker.task_transitions or tasker.workflow_step_transitions
 * whose uuid is a version 7 UUID taken from the clock when the row was written. A feeder thread,
 * running only while a process has subscribers, reads the rows after its cursor (keyset on the
 * uuid), turns each into its catalogue events and pushes them into a bounded queue; a language
 * binding pops them on its own thread (tc_events_next), so no engine thread ever runs subscriber
 * code and the step path gains no statement at all.
 *
 * Rows of transactions still open would sort before rows already read; the feeder therefore only
 * reads up to a horizon: the start of the oldest open transaction that has written (it may still
 * insert rows), or of the oldest statement running in a transaction that has not written yet, or
 * now. Every row before the horizon is committed (or never will be), so none is skipped (the
 * horizon is read in a statement before the one that reads the rows, whose snapshot therefore
 * sees every transaction the horizon took as finished). A
 * committed transaction may still straddle the horizon (its rows span a few milliseconds, and an
 * open transaction may have started in between): the horizon then moves down to its first row, so
 * its rows (one xmin) are read together, in one poll, and keep their per-task order. This needs the engine's sessions visible in pg_stat_activity:
 * every process uses the same role (or one with pg_read_all_stats).
 *
 * Threads: the feeder owns the rows it reads and hands each event, built of fresh objects (json-c
 * reference counts are not atomic, so no object is shared between threads), to the consumer.
 * tc_events_stop may be called from several threads at once; each returns only after the feeder
 * has been joined, so the caller that frees next never frees under a running feeder.
 *
 * Locks: ev->mu guards the queue, the counters and the stop state; rt->events_mu guards
 * rt->events, which stats readers on other threads (the web server) follow.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tc_internal.h"

struct tc_events {
  tc_runtime_t *rt;
  pthread_mutex_t mu;
  pthread_cond_t cv;       /* queue became non-empty, or stopping */
  pthread_cond_t tick;     /* wakes the feeder early when stopping */
  pthread_cond_t joined_cv; /* the feeder was joined */
  pthread_t thread;
  bool started;
  bool stopping;
  bool joining;            /* one stopper is joining the feeder */
  bool joined;
  bool exited;             /* the feeder thread returned */
  tc_ring_t ring;           /* events not yet taken by the consumer */
  int poll_ms, batch;
  char cursor[37];
  uint64_t emitted, dropped, delivered, polls, poll_errors, transitions;
};

/* ---- Names of the catalogue for one transition. ---- */

static bool is(const char *a, const char *b) { return a && strcmp(a, b) == 0; }

int tc_events_names(const char *kind, const char *from, const char *to, const char *names[3]) {
  int n = 0;
  names[0] = names[1] = names[2] = NULL;
  if (is(kind, "task")) {
    if (is(to, "initializing")) {
      names[n++] = "task.initialize_requested";
      names[n++] = "workflow.task_started";
    } else if (is(to, "enqueuing_steps")) {
      names[n++] = is(from, "waiting_for_dependencies") ? "task.dependencies_satisfied" : "task.steps_discovery_completed";
    } else if (is(to, "steps_in_process")) {
      names[n++] = "task.steps_enqueued";
    } else if (is(to, "evaluating_results")) {
      names[n++] = is(from, "waiting_for_dependencies") ? "task.dependencies_satisfied" : "task.step_results_received";
    } else if (is(to, "waiting_for_dependencies")) {
      names[n++] = "task.awaiting_dependencies";
      names[n++] = "workflow.no_viable_steps";
    } else if (is(to, "waiting_for_retry")) {
      names[n++] = "task.retry_backoff_started";
    } else if (is(to, "blocked_by_failures")) {
      names[n++] = "task.blocked_by_failures";
    } else if (is(to, "complete")) {
      names[n++] = "task.completed";
      names[n++] = "workflow.task_completed";
    } else if (is(to, "error")) {
      names[n++] = "task.failed";
      names[n++] = "workflow.task_failed";
    } else if (is(to, "cancelled")) {
      names[n++] = "task.cancelled";
    } else if (is(to, "resolved_manually")) {
      names[n++] = "task.resolved_manually";
    } else if (is(to, "pending") && from) {
      names[n++] = "task.retry_requested";
    }
  } else if (is(kind, "step")) {
    if (is(to, "pending")) {
      names[n++] = from ? "step.retry_requested" : "step.initialize_requested";
    } else if (is(to, "enqueued")) {
      names[n++] = "step.enqueue_requested";
      names[n++] = "workflow.viable_steps_discovered";
    } else if (is(to, "in_progress")) {
      names[n++] = is(from, "enqueued") ? "step.execution_requested" : "step.handle";
    } else if (is(to, "enqueued_for_orchestration")) {
      names[n++] = "step.enqueued_for_orchestration";
      names[n++] = "step.result_submitted";
    } else if (is(to, "enqueued_as_error_for_orchestration")) {
      names[n++] = "step.enqueued_as_error_for_orchestration";
      names[n++] = "step.result_submitted";
    } else if (is(to, "waiting_for_retry")) {
      names[n++] = "step.retry_requested";
    } else if (is(to, "complete")) {
      names[n++] = "step.completed";
      names[n++] = "workflow.step_completed";
    } else if (is(to, "error")) {
      names[n++] = "step.failed";
      names[n++] = "workflow.step_failed";
    } else if (is(to, "cancelled")) {
      names[n++] = "step.cancelled";
    } else if (is(to, "resolved_manually")) {
      names[n++] = "step.resolved_manually";
    }
  }
  return n;
}

/* ---- The feeder. ---- */

/* The horizon and the transitions below it: sql/functions/events_feed.sql. */
static const char *HORIZON_SQL = "SELECT to_jsonb(tasker.events_horizon()::text)";
static const char *POLL_SQL = "SELECT tasker.events_since($1::uuid, $2::integer, $3::uuid)";

/* Copies src[from] into dst[to] as a new object: the event leaves this thread, the row does not. */
static int copy_key(json_object *dst, json_object *src, const char *from, const char *to) {
  json_object *v = json_object_object_get(src, from);
  json_object *copy = NULL;
  if (v && json_object_deep_copy(v, &copy, NULL) != 0) return -1;
  if (json_object_object_add(dst, to, copy) != 0) {
    json_object_put(copy);
    return -1;
  }
  return 0;
}

/* Adds a new value (NULL is JSON null); fails when the value could not be made. */
static int add_new(json_object *dst, const char *key, json_object *value, bool made) {
  if (!made) return -1;
  if (json_object_object_add(dst, key, value) != 0) {
    json_object_put(value);
    return -1;
  }
  return 0;
}

/* Builds one event of a transition row; NULL when out of memory. */
static json_object *build_event(const char *name, json_object *row) {
  json_object *ev = json_object_new_object();
  if (!ev) return NULL;
  int bad = 0;
  bool task = is(json_object_get_string(json_object_object_get(row, "kind")), "task");
  json_object *v = json_object_new_string(name);
  bad |= add_new(ev, "event_name", v, v != NULL);
  const char *dot = strchr(name, '.');
  v = json_object_new_string_len(name, (int)(dot - name));
  bad |= add_new(ev, "category", v, v != NULL);
  static const char *const keys[] = {"task_uuid", "task_name", "task_version", "namespace", "named_task_uuid",
                                     "correlation_id", "parent_correlation_id", "from_state", "to_state",
                                     "transition_event", "transitioned_at", "attempt", "metadata",
                                     "transition_uuid", "execution_duration"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) bad |= copy_key(ev, row, keys[i], keys[i]);
  bad |= copy_key(ev, row, "task_uuid", "task_id");
  bad |= copy_key(ev, row, "transitioned_at", "timestamp");
  if (!task) {
    bad |= copy_key(ev, row, "step_uuid", "step_uuid");
    bad |= copy_key(ev, row, "step_uuid", "step_id");
    bad |= copy_key(ev, row, "step_name", "step_name");
  }
  json_object *error = json_object_object_get(row, "error");
  if (error && json_object_is_type(error, json_type_object)) {
    bad |= copy_key(ev, error, "message", "error_message");
    bad |= copy_key(ev, error, json_object_object_get(error, "error_type") ? "error_type" : "exception_class",
                    "exception_class");
  } else if (!task && (is(json_object_get_string(json_object_object_get(row, "to_state")), "error"))) {
    bad |= add_new(ev, "error_message", NULL, true);
    bad |= add_new(ev, "exception_class", NULL, true);
  }
  if (bad) {
    json_object_put(ev);
    return NULL;
  }
  return ev;
}

/* Queues an event (takes the reference); a full queue drops it. Called with ev->mu held. */
static void push_locked(tc_events_t *ev, json_object *e) {
  if (!tc_ring_push(&ev->ring, e)) {
    ev->dropped++;
    json_object_put(e);
    return;
  }
  ev->emitted++;
}

typedef struct {
  tc_events_t *ev;
  json_object *rows;
} poll_args_t;

static int poll_on(PGconn *conn, void *arg, tc_error_t *err) {
  poll_args_t *a = arg;
  json_object *horizon = NULL;
  int rc = tc_db_query_json(conn, HORIZON_SQL, 0, NULL, &horizon, err);
  if (rc != TC_OK) return rc;
  char upper[37];
  const char *h = json_object_get_string(horizon);
  snprintf(upper, sizeof upper, "%s", h && strlen(h) == 36 ? h : "");
  json_object_put(horizon);
  if (!upper[0]) return tc_error_set(err, TC_EDB, "the events horizon query returned no uuid");
  char batch[16];
  snprintf(batch, sizeof batch, "%d", a->ev->batch);
  const char *params[] = {a->ev->cursor, batch, upper};
  return tc_db_query_json_rows(conn, POLL_SQL, 3, params, &a->rows, err);
}

/* One poll; returns the number of transitions read (-1 on error). */
static int poll_once(tc_events_t *ev) {
  poll_args_t a = {ev, NULL};
  tc_error_t err = {0};
  int rc = tc_rt_with_conn(ev->rt, poll_on, &a, &err);
  if (rc != TC_OK) {
    pthread_mutex_lock(&ev->mu);
    ev->poll_errors++;
    pthread_mutex_unlock(&ev->mu);
    tc_log(ev->rt, TC_LOG_WARN, "events.poll_failed", "%s", err.message);
    return -1;
  }
  size_t n = a.rows ? json_object_array_length(a.rows) : 0;
  pthread_mutex_lock(&ev->mu);
  for (size_t i = 0; i < n; i++) {
    json_object *row = json_object_array_get_idx(a.rows, i);
    const char *uuid = json_object_get_string(json_object_object_get(row, "transition_uuid"));
    if (uuid && strlen(uuid) == 36 && strcmp(uuid, ev->cursor) > 0) memcpy(ev->cursor, uuid, 37);
    const char *names[3];
    int k = tc_events_names(json_object_get_string(json_object_object_get(row, "kind")),
                            json_object_get_string(json_object_object_get(row, "from_state")),
                            json_object_get_string(json_object_object_get(row, "to_state")), names);
    ev->transitions++;
    for (int j = 0; j < k; j++) {
      json_object *e = build_event(names[j], row);
      if (e) push_locked(ev, e);
      else ev->dropped++;
    }
  }
  ev->polls++;
  if (n > 0) pthread_cond_broadcast(&ev->cv);
  pthread_mutex_unlock(&ev->mu);
  json_object_put(a.rows);
  return (int)n;
}

static void *feeder_main(void *arg) {
  tc_events_t *ev = arg;
  for (;;) {
    pthread_mutex_lock(&ev->mu);
    bool stop = ev->stopping;
    pthread_mutex_unlock(&ev->mu);
    if (stop) break;
    int n = poll_once(ev);
    /* A full batch means more rows are waiting: read again at once. */
    if (n >= ev->batch) continue;
    struct timespec ts;
    tc_deadline(&ts, n < 0 ? ev->poll_ms * 10 : ev->poll_ms);
    pthread_mutex_lock(&ev->mu);
    if (!ev->stopping) pthread_cond_timedwait(&ev->tick, &ev->mu, &ts);
    pthread_mutex_unlock(&ev->mu);
  }
  pthread_mutex_lock(&ev->mu);
  ev->exited = true;
  pthread_mutex_unlock(&ev->mu);
  return NULL;
}

/* ---- Public API. ---- */

static int start_locked(tc_runtime_t *rt, int cap, int poll_ms, int batch, tc_events_t **out, tc_error_t *err);

int tc_events_start(tc_runtime_t *rt, json_object *config, tc_events_t **out, tc_error_t *err) {
  if (!rt || !out) return tc_error_set(err, TC_EINVAL, "runtime and out are required");
  if (config && !json_object_is_type(config, json_type_object))
    return tc_error_set(err, TC_EINVAL, "events options must be an object");
  int cap = 10000, poll_ms = 50, batch = 1000;
  const tc_int_opt_t ints[] = {{"buffer_size", 1, 1000000, &cap},
                               {"poll_interval_ms", 1, 60000, &poll_ms},
                               {"batch_size", 1, 100000, &batch}};
  int rc = tc_json_opt_ints(config, ints, TC_COUNT(ints), TC_EINVAL, "events ", err);
  if (rc != TC_OK) return rc;
  pthread_mutex_lock(&rt->events_mu);
  rc = rt->events ? tc_error_set(err, TC_ESTATE, "lifecycle events are already running on this runtime")
                  : start_locked(rt, cap, poll_ms, batch, out, err);
  pthread_mutex_unlock(&rt->events_mu);
  return rc;
}

/* Creates the buffer and the feeder; rt->events_mu is held. */
static int start_locked(tc_runtime_t *rt, int cap, int poll_ms, int batch, tc_events_t **out, tc_error_t *err) {
  tc_events_t *ev = tc_calloc(1, sizeof *ev);
  if (!ev || tc_ring_init(&ev->ring, cap) != 0) {
    tc_free(ev);
    return tc_error_set(err, TC_ENOMEM, "out of memory for the events buffer");
  }
  ev->rt = rt;
  ev->poll_ms = poll_ms;
  ev->batch = batch;
  /* Events start with the transitions written from now on. */
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
  snprintf(ev->cursor, sizeof ev->cursor, "%08llx-%04llx-7000-8000-000000000000", (unsigned long long)((ms >> 16) & 0xffffffffULL),
           (unsigned long long)(ms & 0xffff));
  pthread_mutex_init(&ev->mu, NULL);
  pthread_cond_init(&ev->cv, NULL);
  pthread_cond_init(&ev->tick, NULL);
  pthread_cond_init(&ev->joined_cv, NULL);
  if (pthread_create(&ev->thread, NULL, feeder_main, ev) != 0) {
    pthread_mutex_destroy(&ev->mu);
    pthread_cond_destroy(&ev->cv);
    pthread_cond_destroy(&ev->tick);
    pthread_cond_destroy(&ev->joined_cv);
    tc_ring_free(&ev->ring);
    tc_free(ev);
    return tc_error_set(err, TC_ENOMEM, "could not start the events thread");
  }
  ev->started = true;
  rt->events = ev;
  *out = ev;
  return TC_OK;
}

void tc_events_interrupt(tc_events_t *ev, tc_cancel_t *cancel) {
  if (cancel) cancel->fired = 1;
  if (!ev) return;
  pthread_mutex_lock(&ev->mu);
  pthread_cond_broadcast(&ev->cv);
  pthread_mutex_unlock(&ev->mu);
}

int tc_events_next(tc_events_t *ev, int timeout_ms, tc_cancel_t *cancel, json_object **out, tc_error_t *err) {
  if (!ev || !out) return tc_error_set(err, TC_EINVAL, "events and out are required");
  struct timespec ts;
  tc_deadline(&ts, timeout_ms < 0 ? 0 : timeout_ms);
  int rc = TC_OK;
  pthread_mutex_lock(&ev->mu);
  while (ev->ring.count == 0) {
    if (ev->stopping) {
      rc = tc_error_set(err, TC_ESTOPPED, "lifecycle events are stopped");
      break;
    }
    if (cancel && cancel->fired) {
      rc = tc_error_set(err, TC_ECANCELED, "the wait was cancelled");
      break;
    }
    if (pthread_cond_timedwait(&ev->cv, &ev->mu, &ts) != 0 && ev->ring.count == 0) {
      rc = tc_error_set(err, TC_ETIMEDOUT, "no event within %d ms", timeout_ms);
      break;
    }
  }
  if (rc == TC_OK) {
    *out = tc_ring_pop(&ev->ring);
    ev->delivered++;
  }
  pthread_mutex_unlock(&ev->mu);
  return rc;
}

static json_object *stats_of(tc_events_t *ev) {
  json_object *o = json_object_new_object();
  if (!o) return NULL;
  if (ev) pthread_mutex_lock(&ev->mu);
  json_object_object_add(o, "running", json_object_new_boolean(ev && !ev->stopping));
  json_object_object_add(o, "feeder_alive", json_object_new_boolean(ev && ev->started && !ev->exited));
  json_object_object_add(o, "transitions_read", json_object_new_int64(ev ? (int64_t)ev->transitions : 0));
  json_object_object_add(o, "emitted", json_object_new_int64(ev ? (int64_t)ev->emitted : 0));
  json_object_object_add(o, "delivered", json_object_new_int64(ev ? (int64_t)ev->delivered : 0));
  json_object_object_add(o, "dropped", json_object_new_int64(ev ? (int64_t)ev->dropped : 0));
  json_object_object_add(o, "queued", json_object_new_int64(ev ? ev->ring.count : 0));
  json_object_object_add(o, "buffer_size", json_object_new_int64(ev ? ev->ring.cap : 0));
  json_object_object_add(o, "polls", json_object_new_int64(ev ? (int64_t)ev->polls : 0));
  json_object_object_add(o, "poll_errors", json_object_new_int64(ev ? (int64_t)ev->poll_errors : 0));
  if (ev) pthread_mutex_unlock(&ev->mu);
  return o;
}

int tc_events_stats(tc_runtime_t *rt, json_object **out) {
  if (!rt || !out) return TC_EINVAL;
  pthread_mutex_lock(&rt->events_mu);
  json_object *o = stats_of(rt->events);
  pthread_mutex_unlock(&rt->events_mu);
  if (!o) return TC_ENOMEM;
  *out = o;
  return TC_OK;
}

void tc_events_stop(tc_events_t *ev) {
  if (!ev) return;
  pthread_mutex_lock(&ev->mu);
  ev->stopping = true;
  pthread_cond_broadcast(&ev->cv);
  pthread_cond_broadcast(&ev->tick);
  if (!ev->started || ev->joined) {
    pthread_mutex_unlock(&ev->mu);
    return;
  }
  if (ev->joining) {
    /* Another caller joins the feeder; return only once it has. */
    while (!ev->joined) pthread_cond_wait(&ev->joined_cv, &ev->mu);
    pthread_mutex_unlock(&ev->mu);
    return;
  }
  ev->joining = true;
  pthread_mutex_unlock(&ev->mu);
  pthread_join(ev->thread, NULL);
  pthread_mutex_lock(&ev->mu);
  ev->joined = true;
  pthread_cond_broadcast(&ev->joined_cv);
  pthread_mutex_unlock(&ev->mu);
}

void tc_events_free(tc_events_t *ev) {
  if (!ev) return;
  tc_events_stop(ev);
  if (ev->rt) {
    pthread_mutex_lock(&ev->rt->events_mu);
    if (ev->rt->events == ev) ev->rt->events = NULL;
    pthread_mutex_unlock(&ev->rt->events_mu);
  }
  tc_ring_free(&ev->ring);
  pthread_mutex_destroy(&ev->mu);
  pthread_cond_destroy(&ev->cv);
  pthread_cond_destroy(&ev->tick);
  pthread_cond_destroy(&ev->joined_cv);
  tc_free(ev);
}
