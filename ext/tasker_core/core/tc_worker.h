/*
 * tc_worker.h - the worker's state, private to tc_worker.c (its API for handler threads) and
 * tc_claimer.c (its claimer thread).
 *
 * Threads and locks
 * - The claimer thread owns w->conn (its LISTEN and claim connection) and w->want_claim; nothing
 *   else touches them while it runs.
 * - w->mu guards queue, in_flight, stopping and the counters. Nothing blocks
 *   while holding it except pthread_cond_timedwait on w->cv.
 * - Handler threads (next_step / complete_step) wait on w->cv; the claimer is woken through the
 *   self-pipe wake_fd when a slot frees or the worker stops.
 * Capacity: queued + in_flight never exceeds w->capacity, so a worker never holds more claims than
 * it has handler slots for.
 */
#ifndef TC_WORKER_H
#define TC_WORKER_H

#include "tc_internal.h"

typedef enum { TC_MODE_HYBRID, TC_MODE_POLLING_ONLY, TC_MODE_EVENT_DRIVEN_ONLY } tc_mode_t;

struct tc_worker {
  tc_runtime_t *rt;
  char worker_uuid[37];
  char **namespaces;
  int n_namespaces;
  char *ns_literal;           /* "{a,b}" for the claim's text[] parameter */
  int capacity;
  int batch_size;
  int poll_interval_ms;
  int visibility_s;
  tc_mode_t mode;
  int staleness_interval_s;   /* 0: this worker does not run the staleness detector */
  bool claim_on_complete;     /* a result's submission also claims the next step */
  int staleness_threshold_min;
  int max_lifetime_h;
  int64_t last_staleness;     /* claimer thread only */
  /* Retention (run with the staleness detector): days after which finished tasks are removed,
   * 0 keeping them; tasks per batch; whether the last batch was full (claimer thread only). */
  int retention_completed_days;
  int retention_error_days;
  int retention_batch;
  bool retention_more;

  pthread_t thread;
  bool thread_started;
  int wake_fd[2];
  PGconn *conn;               /* claimer thread only */
  bool want_claim;            /* claimer thread only */
  int64_t retry_due_at;       /* claimer thread only: monotonic ms of the next retry, 0 if none */
  int64_t last_heartbeat;     /* claimer thread only */
  bool listening;             /* claimer thread only; copied to listen_connected for status */

  pthread_mutex_t mu;
  pthread_cond_t cv;
  tc_ring_t queue;            /* capacity slots: claimed, not yet handed out step events */
  int in_flight;              /* handed out, not yet completed (a posted result's step included) */
  int returning;              /* threads that posted a result and come back for a step at once */
  /* Claim tokens of the in-flight steps ("" = free): twice capacity slots, since a step handed
   * over through the queue may start before the result that freed its slot is counted done. */
  char (*flight_tokens)[37];
  int token_slots;
  bool stopping;
  bool stopped;            /* the stopper finished: claimer joined, queue released (broadcast on cv) */
  bool started;
  bool listen_connected;
  long long claimed_total, completed_total, failed_total, stale_total, released_total;
  long long claim_queries, notifications;
  bool handler_threads_declared; /* the host counts its handler threads (tc_worker_handler_threads) */
  int handler_threads;        /* the host's handler threads now */
  long long handler_threads_lost; /* handler threads that ended while the worker ran */
  tc_metrics_t *metrics;      /* counters and histograms per namespace (tc_metrics.c) */
  tc_flusher_t *flusher;      /* group commit of the handler threads' results (tc_flush.c) */
  tc_step_defs_t *step_defs;  /* template step definitions for the step events (tc_step_event.c) */
  int64_t claimer_tick;       /* monotonic ms of the claimer loop's last turn (atomic) */
  int64_t last_heartbeat_at;  /* monotonic ms of the last claim extension (atomic) */
};

/* The step event for a claim's row (which it takes); on failure logs, gives the claim back and
 * returns NULL. */
json_object *tc_worker_event_from_row(tc_worker_t *w, json_object *row);

/* The claimer thread's body (tc_claimer.c); arg is the worker. */
void *tc_claimer_main(void *arg);
/* Wakes the claimer: a slot freed or the worker stops. */
void tc_claimer_wake(tc_worker_t *w);

#endif /* TC_WORKER_H */
