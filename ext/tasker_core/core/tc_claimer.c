/*
 * tc_claimer.c - the worker's claimer thread: it LISTENs on its namespaces' channels and polls,
 * claims steps into the worker's queue as handler slots free, extends the claims it holds
 * (heartbeats) and runs the staleness detector. Threads and locks: see tc_worker.h.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tc_flush_sql.h"
#include "tc_worker.h"

/* The claimer's claim is the flush's claim statement (tc_flush_sql.h) with no finished parents,
 * prepared on its connection and run with generic plans for that transaction only (the
 * connection's other statements, the heartbeat, staleness and retention functions among them,
 * keep the session's planning). Before it, in the same pipeline and transaction and in the statement
 * that sets those, due retries and expired claims are put back (tasker.recover_due, evaluated before
 * the settings), which also says when the next retry falls due. */
#define CLAIM_STATEMENT "tc_claim"
#define RECOVER_SQL \
  "SELECT tasker.recover_due($1::text[], 100), set_config('plan_cache_mode', 'force_generic_plan', true), " \
  "set_config('enable_bitmapscan', 'off', true), set_config('jit', 'off', true)"

void tc_claimer_wake(tc_worker_t *w) {
  char b = 1;
  ssize_t r = write(w->wake_fd[1], &b, 1);
  TC_UNUSED(r); /* A full pipe already guarantees a wakeup. */
}

static void drain_wake(tc_worker_t *w) {
  char buf[64];
  while (read(w->wake_fd[0], buf, sizeof buf) > 0) {
  }
}

static bool is_stopping(tc_worker_t *w) {
  pthread_mutex_lock(&w->mu);
  bool s = w->stopping;
  pthread_mutex_unlock(&w->mu);
  return s;
}

static void drop_conn(tc_worker_t *w) {
  if (w->conn) PQfinish(w->conn);
  w->conn = NULL;
  w->listening = false;
  pthread_mutex_lock(&w->mu);
  w->listen_connected = false;
  pthread_mutex_unlock(&w->mu);
}

/* Opens the claimer's connection and LISTENs on each namespace channel (unless PollingOnly). */
static int open_conn(tc_worker_t *w, tc_error_t *err) {
  int rc = tc_db_connect(&w->rt->pool, &w->conn, err);
  if (rc != TC_OK) return rc;
  if (w->mode != TC_MODE_POLLING_ONLY) {
    for (int i = 0; i < w->n_namespaces && rc == TC_OK; i++) {
      char sql[128];
      snprintf(sql, sizeof sql, "LISTEN \"tasker_steps_%s\"", w->namespaces[i]);
      rc = tc_db_exec(w->conn, sql, 0, NULL, err);
    }
    if (rc != TC_OK) {
      drop_conn(w);
      return rc;
    }
    w->listening = true;
    pthread_mutex_lock(&w->mu);
    w->listen_connected = true;
    pthread_mutex_unlock(&w->mu);
  }
  rc = tc_db_prepare(w->conn, CLAIM_STATEMENT, TC_FLUSH_CLAIM_SQL, 5, err);
  if (rc != TC_OK) drop_conn(w);
  return rc;
}

/* Consumes pending notifications; returns how many arrived. */
static int drain_notifies(tc_worker_t *w) {
  int count = 0;
  PGnotify *n;
  while ((n = PQnotifies(w->conn)) != NULL) {
    PQfreemem(n);
    count++;
  }
  return count;
}

/* Runs the recovery and the claim in one pipeline; *rows the claim's answer (NULL on failure).
 * *statement_error when a statement failed with the connection intact. */
static int claim_pipeline(tc_worker_t *w, int asked, PGresult **rows, bool *statement_error, tc_error_t *err) {
  char limit[16], vis[16];
  snprintf(limit, sizeof limit, "%d", asked);
  snprintf(vis, sizeof vis, "%d", w->visibility_s);
  const char *p_recover[] = {w->ns_literal};
  const char *p_claim[] = {w->worker_uuid, w->ns_literal, limit, vis, "{}"};
  PGconn *conn = w->conn;
  *rows = NULL;
  *statement_error = false;
  bool sent = PQenterPipelineMode(conn) == 1 &&
              PQsendQueryParams(conn, RECOVER_SQL, 1, NULL, p_recover, NULL, NULL, 0) == 1 &&
              PQsendQueryPrepared(conn, CLAIM_STATEMENT, 5, p_claim, NULL, NULL, 0) == 1 && PQpipelineSync(conn) == 1;
  if (!sent) {
    tc_error_from_pg(err, conn, NULL, "sending a claim failed");
  } else {
    PGresult *recovered = tc_db_pipeline_next(conn, PGRES_TUPLES_OK, err);
    PGresult *claimed = tc_db_pipeline_next(conn, PGRES_TUPLES_OK, err);
    PGresult *sync = tc_db_pipeline_next(conn, PGRES_PIPELINE_SYNC, err);
    if (recovered && PQntuples(recovered) == 1) {
      json_object *answer = NULL;
      tc_error_t ignored = {0};
      if (tc_json_parse_text(PQgetvalue(recovered, 0, 0), &answer, &ignored) == TC_OK) {
        json_object *due = tc_json_get(answer, "next_due_in_ms");
        w->retry_due_at = due ? tc_now_ms() + json_object_get_int64(due) : 0;
      }
      json_object_put(answer);
    }
    *statement_error = err->code != TC_OK && sync && err->sqlstate[0] != '\0';
    PQclear(recovered);
    PQclear(sync);
    if (err->code == TC_OK) *rows = claimed;
    else PQclear(claimed);
  }
  if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF && PQexitPipelineMode(conn) != 1 && err->code == TC_OK)
    tc_error_from_pg(err, conn, NULL, "leaving the claim's pipeline failed");
  if (err->code != TC_OK && PQpipelineStatus(conn) != PQ_PIPELINE_OFF) *statement_error = false;
  return err->code;
}

/* The claim of tasker.claim (PL/pgSQL), which fails for good only a step whose event cannot be
 * built: after the pipeline failed on a statement. *rows is its array of step event rows. */
static int claim_function(tc_worker_t *w, int asked, json_object **res, tc_error_t *err) {
  char limit[16], vis[16];
  snprintf(limit, sizeof limit, "%d", asked);
  snprintf(vis, sizeof vis, "%d", w->visibility_s);
  const char *params[] = {w->worker_uuid, w->ns_literal, limit, vis};
  int rc = tc_db_query_json(w->conn, "SELECT tasker.claim($1::uuid, $2::text[], $3::integer, $4::integer)", 4,
                            params, res, err);
  if (rc != TC_OK) return rc;
  json_object *due = tc_json_get(*res, "next_due_in_ms");
  w->retry_due_at = due ? tc_now_ms() + json_object_get_int64(due) : 0;
  return TC_OK;
}

/* Claims up to `asked` steps into the queue (after the database put back due retries and expired
 * claims); returns the number claimed or a negative code. Records when the next retry falls due. */
static int claim(tc_worker_t *w, int asked, tc_error_t *err) {
  int64_t t0 = tc_now_ms();
  PGresult *rows = NULL;
  json_object *res = NULL, *list = NULL;
  bool statement_error = false;
  int rc = claim_pipeline(w, asked, &rows, &statement_error, err);
  if (rc != TC_OK && statement_error) {
    tc_log(w->rt, TC_LOG_WARN, "claim_retried", "the claim failed (%s); claiming through tasker.claim",
           err->message);
    memset(err, 0, sizeof *err);
    rc = claim_function(w, asked, &res, err);
    list = tc_json_get(res, "steps");
  }
  if (rc != TC_OK) return rc;
  int got = rows ? PQntuples(rows) : list ? (int)json_object_array_length(list) : 0;
  if (got > asked) got = asked;
  double claim_ms = (double)(tc_now_ms() - t0);
  /* Build every event, and let go of the answer, before any handler thread can see one. */
  json_object **events = got > 0 ? tc_calloc((size_t)got, sizeof *events) : NULL;
  if (got > 0 && !events) {
    PQclear(rows);
    json_object_put(res); /* the claims expire and the steps run again */
    return tc_error_set(err, TC_ENOMEM, "out of memory taking %d claimed steps", got);
  }
  int built = 0;
  for (int i = 0; i < got; i++) {
    json_object *row = NULL;
    if (rows) {
      tc_error_t parse_err = {0};
      if (PQgetisnull(rows, i, 1) || tc_json_parse_text(PQgetvalue(rows, i, 1), &row, &parse_err) != TC_OK) {
        tc_log(w->rt, TC_LOG_ERROR, "step_event_failed", "could not read a claimed step's row (%s); it runs again "
               "when its claim expires", parse_err.message);
        continue;
      }
    } else {
      row = json_object_get(json_object_array_get_idx(list, (size_t)i));
    }
    json_object *ev = tc_worker_event_from_row(w, row);
    if (ev) events[built++] = ev;
  }
  PQclear(rows);
  json_object_put(res);
  for (int i = 0; i < built; i++) tc_metrics_claimed(w->metrics, events[i], claim_ms);
  pthread_mutex_lock(&w->mu);
  w->claim_queries++;
  for (int i = 0; i < built; i++) {
    /* The capacity check before the claim guarantees room: the claimer only fills free slots, and
     * a flush only gives a step the slot its result frees. */
    tc_ring_push(&w->queue, events[i]);
    w->claimed_total++;
  }
  /* One waiting handler thread per step: a broadcast would wake every idle thread for one step. */
  for (int i = 0; i < built; i++) pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  tc_free(events);
  return got;
}

/* Reports this worker alive in tasker.workers (sql/functions/workers.sql): when the claimer
 * connects and on every heartbeat, so operators see the workers alive and their last beat. */
static void report_alive(tc_worker_t *w) {
  char host[256] = "unknown";
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
  host[sizeof host - 1] = '\0';
  pthread_mutex_lock(&w->mu);
  int busy = w->queue.count + w->in_flight;
  pthread_mutex_unlock(&w->mu);
  char pid[16], capacity[16], busy_s[16], interval[24];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  snprintf(capacity, sizeof capacity, "%d", w->capacity);
  snprintf(busy_s, sizeof busy_s, "%d", busy);
  snprintf(interval, sizeof interval, "%lld", (long long)w->visibility_s * 1000 / 3);
  const char *params[] = {w->worker_uuid, host, pid, w->ns_literal, capacity, busy_s, interval};
  tc_error_t err = {0};
  if (tc_db_exec(w->conn,
                 "SELECT tasker.worker_heartbeat($1::uuid, $2, $3::integer, $4::text[], $5::integer, $6::integer, "
                 "$7::integer)",
                 7, params, &err) != TC_OK) {
    tc_log(w->rt, TC_LOG_WARN, "worker_heartbeat_failed", "could not record the worker's heartbeat: %s", err.message);
    if (PQstatus(w->conn) != CONNECTION_OK || tc_db_read_only_error(&err)) drop_conn(w);
  }
}

/* Marks this worker stopped in tasker.workers (best effort: a worker that cannot say so turns not
 * alive when its heartbeats stop). */
static void report_stopped(tc_worker_t *w) {
  if (!w->conn) return;
  const char *params[] = {w->worker_uuid};
  tc_error_t err = {0};
  if (tc_db_exec(w->conn, "SELECT tasker.worker_stopped($1::uuid)", 1, params, &err) != TC_OK)
    tc_log(w->rt, TC_LOG_WARN, "worker_heartbeat_failed", "could not record the worker's stop: %s", err.message);
}

/* Extends the claims of every queued and in-flight step, so a long handler keeps its step. */
static void heartbeat(tc_worker_t *w) {
  json_object *tokens = json_object_new_array();
  if (!tokens) return;
  pthread_mutex_lock(&w->mu);
  for (int i = 0; i < w->token_slots; i++)
    if (w->flight_tokens[i][0]) json_object_array_add(tokens, json_object_new_string(w->flight_tokens[i]));
  for (int i = 0; i < w->queue.count; i++) {
    json_object *tok = tc_json_get(tc_ring_at(&w->queue, i), "claim_token");
    if (tok) json_object_array_add(tokens, json_object_get(tok));
  }
  pthread_mutex_unlock(&w->mu);
  if (json_object_array_length(tokens) > 0) {
    char vis[16];
    snprintf(vis, sizeof vis, "%d", w->visibility_s);
    const char *params[] = {w->worker_uuid, tc_json_str(tokens), vis};
    tc_error_t err = {0};
    json_object *n = NULL;
    if (tc_db_query_json(w->conn, "SELECT tasker.extend_claims($1::uuid, $2::jsonb, $3::integer)", 3, params, &n,
                         &err) != TC_OK)
      tc_log(w->rt, TC_LOG_WARN, "heartbeat_failed", "could not extend claims: %s", err.message);
    if (err.code != TC_OK && (PQstatus(w->conn) != CONNECTION_OK || tc_db_read_only_error(&err)))
      drop_conn(w); /* the main loop reconnects and claims at once */
    else if (err.code == TC_OK)
      __atomic_store_n(&w->last_heartbeat_at, tc_now_ms(), __ATOMIC_RELAXED);
    json_object_put(n);
  }
  if (json_object_array_length(tokens) == 0) __atomic_store_n(&w->last_heartbeat_at, tc_now_ms(), __ATOMIC_RELAXED);
  json_object_put(tokens);
  if (w->conn) report_alive(w);
}

/* Sends tasks that stopped making progress to the dead-letter queue (any worker may; they
 * coordinate through row locks). */
static void detect_stale(tc_worker_t *w) {
  json_object *actions = NULL;
  tc_error_t err = {0};
  if (tc__detect_stale_on(w->conn, 100, w->staleness_threshold_min, w->max_lifetime_h, false, &actions, &err) != TC_OK) {
    tc_log(w->rt, TC_LOG_WARN, "staleness_check_failed", "%s", err.message);
    if (PQstatus(w->conn) != CONNECTION_OK || tc_db_read_only_error(&err)) drop_conn(w);
    return;
  }
  size_t n = actions ? json_object_array_length(actions) : 0;
  if (n > 0)
    tc_log(w->rt, TC_LOG_WARN, "stale_tasks_dead_lettered", "%zu stale tasks moved to the DLQ and error: %s", n,
           tc_json_str(actions));
  json_object_put(actions);
}

/* Removes one batch of finished tasks past their retention age (tasker.remove_finished_tasks):
 * one short transaction, so claims wait for it at most that long. A full batch means more are due:
 * the next runs when the claimer has nothing to claim. */
static void remove_finished(tc_worker_t *w) {
  w->retention_more = false;
  if (w->retention_completed_days <= 0 && w->retention_error_days <= 0) return;
  char done[16], failed[16], limit[16];
  snprintf(done, sizeof done, "%d", w->retention_completed_days);
  snprintf(failed, sizeof failed, "%d", w->retention_error_days);
  snprintf(limit, sizeof limit, "%d", w->retention_batch);
  const char *params[] = {w->retention_completed_days > 0 ? done : NULL, w->retention_error_days > 0 ? failed : NULL,
                          limit};
  json_object *counts = NULL;
  tc_error_t err = {0};
  if (tc_db_query_json(w->conn, "SELECT tasker.remove_finished_tasks($1::integer, $2::integer, $3::integer)", 3, params,
                       &counts, &err) != TC_OK) {
    tc_log(w->rt, TC_LOG_WARN, "retention_failed", "%s", err.message);
    if (PQstatus(w->conn) != CONNECTION_OK || tc_db_read_only_error(&err)) drop_conn(w);
    return;
  }
  json_object *tasks = tc_json_get(counts, "tasks");
  json_object *events = tc_json_get(counts, "events_outbox");
  int64_t removed = tasks ? json_object_get_int64(tasks) : 0;
  int64_t removed_events = events ? json_object_get_int64(events) : 0;
  if (removed > 0 || removed_events > 0)
    tc_log(w->rt, TC_LOG_INFO, "finished_tasks_removed", "retention removed %lld tasks: %s", (long long)removed,
           tc_json_str(counts));
  w->retention_more = removed >= w->retention_batch || removed_events >= (int64_t)w->retention_batch * 10;
  json_object_put(counts);
}

static int free_slots(tc_worker_t *w) {
  pthread_mutex_lock(&w->mu);
  int free = w->capacity - w->queue.count - w->in_flight;
  pthread_mutex_unlock(&w->mu);
  return free;
}

/* Waits for the wake pipe and, when listening, the connection's socket. Returns true when a
 * notification arrived. */
static bool wait_events(tc_worker_t *w, int timeout_ms) {
  struct pollfd fds[2];
  int n = 0;
  fds[n].fd = w->wake_fd[0];
  fds[n].events = POLLIN;
  n++;
  if (w->conn && w->listening) {
    fds[n].fd = PQsocket(w->conn);
    fds[n].events = POLLIN;
    n++;
  }
  int r = poll(fds, (nfds_t)n, timeout_ms);
  if (r <= 0) return false;
  if (fds[0].revents) drain_wake(w);
  bool notified = false;
  if (n > 1 && fds[1].revents) {
    if (!PQconsumeInput(w->conn)) {
      char msg[900];
      tc_pg_scrub(w->conn, PQerrorMessage(w->conn), msg, sizeof msg);
      tc_log(w->rt, TC_LOG_WARN, "listen_connection_lost", "LISTEN connection lost: %s", msg);
      drop_conn(w);
      return true; /* Reconnect and catch up with a claim. */
    }
    int got = drain_notifies(w);
    if (got > 0) {
      pthread_mutex_lock(&w->mu);
      w->notifications += got;
      pthread_mutex_unlock(&w->mu);
      notified = true;
    }
  }
  return notified;
}

void *tc_claimer_main(void *arg) {
  tc_worker_t *w = arg;
  int backoff_ms = 100;
  int64_t last_poll = tc_now_ms();
  w->want_claim = true;
  w->last_heartbeat = tc_now_ms();
  w->last_staleness = tc_now_ms();
  while (!is_stopping(w)) {
    tc_error_t err = {0};
    __atomic_store_n(&w->claimer_tick, tc_now_ms(), __ATOMIC_RELAXED);
    if (!w->conn) {
      if (open_conn(w, &err) != TC_OK) {
        tc_log(w->rt, TC_LOG_WARN, "worker_connect_failed", "%s; retrying in %d ms", err.message, backoff_ms);
        wait_events(w, backoff_ms);
        backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
        continue;
      }
      backoff_ms = 100;
      w->want_claim = true; /* Catch up on anything enqueued while disconnected. */
      report_alive(w);
      if (!w->conn) continue;
    }
    int free = free_slots(w);
    if (w->want_claim && free > 0) {
      int asked = free < w->batch_size ? free : w->batch_size;
      int got = claim(w, asked, &err);
      last_poll = tc_now_ms();
      if (got < 0) {
        tc_log(w->rt, TC_LOG_WARN, "claim_failed", "%s", err.message);
        /* Lost, or on a server that became read-only: reconnect (to the new primary). */
        if (PQstatus(w->conn) != CONNECTION_OK || tc_db_read_only_error(&err)) drop_conn(w);
        wait_events(w, backoff_ms);
        backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
        continue;
      }
      backoff_ms = 100;
      if (drain_notifies(w) > 0) {
        w->want_claim = true; /* Something was enqueued while we were claiming. */
      } else {
        w->want_claim = got == asked;
      }
      continue;
    }
    int64_t now = tc_now_ms();
    int64_t beat_every = w->visibility_s * 1000 / 3;
    if (now - w->last_heartbeat >= beat_every) {
      heartbeat(w);
      w->last_heartbeat = now;
      if (!w->conn) continue; /* lost: reconnect first */
      if (drain_notifies(w) > 0) w->want_claim = true; /* read along with the heartbeat's result */
    }
    if (w->staleness_interval_s > 0 && now - w->last_staleness >= (int64_t)w->staleness_interval_s * 1000) {
      detect_stale(w);
      w->last_staleness = now;
      if (w->conn) remove_finished(w);
      if (!w->conn) continue; /* lost: reconnect first */
      if (drain_notifies(w) > 0) w->want_claim = true;
    } else if (w->retention_more) {
      remove_finished(w); /* the backlog, a batch at a time between claims */
      if (!w->conn) continue;
      if (drain_notifies(w) > 0) w->want_claim = true;
      if (w->retention_more) continue;
    }
    int64_t timeout = 1000;
    if (w->mode != TC_MODE_EVENT_DRIVEN_ONLY) {
      int64_t due = last_poll + w->poll_interval_ms - now;
      if (due <= 0) {
        w->want_claim = true;
        last_poll = now;
        continue;
      }
      timeout = due;
    }
    if (w->retry_due_at) {
      /* Wake for the next retry on time, not at the next coarse poll. */
      if (w->retry_due_at <= now) {
        w->retry_due_at = 0;
        w->want_claim = true;
        continue;
      }
      if (w->retry_due_at - now < timeout) timeout = w->retry_due_at - now;
    }
    int64_t beat_due = w->last_heartbeat + beat_every - now;
    if (beat_due < timeout) timeout = beat_due < 1 ? 1 : beat_due;
    if (wait_events(w, (int)timeout)) w->want_claim = true;
  }
  report_stopped(w);
  drop_conn(w);
  return NULL;
}
