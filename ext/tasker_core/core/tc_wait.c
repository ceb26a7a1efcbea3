/*
 * tc_wait.c - waiting for a task to finish without polling: LISTEN on the task's own channel,
 * which a trigger notifies when the task reaches a terminal state.
 */
#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "tc_internal.h"

/* A wait reads the task's status again this often, so a notification it missed (a connection
 * that dropped it, a trigger disabled during a restore) cannot make it wait until its timeout. */
#define TC_WAIT_REREAD_MS 2000

bool tc_task_state_terminal(const char *status) {
  return status && (strcmp(status, "complete") == 0 || strcmp(status, "error") == 0 ||
                    strcmp(status, "cancelled") == 0 || strcmp(status, "resolved_manually") == 0);
}

/* Reads the task's status into buf; TC_ENOTFOUND when the task does not exist. */
static int read_status(PGconn *conn, const char *uuid, char *buf, size_t cap, tc_error_t *err) {
  const char *params[] = {uuid};
  json_object *st = NULL;
  int rc = tc_db_query_json(conn, "SELECT to_jsonb(status) FROM tasker.tasks WHERE task_uuid = $1::uuid", 1, params,
                            &st, err);
  if (rc != TC_OK) return rc;
  if (!st) return tc_error_set(err, TC_ENOTFOUND, "task not found: %s", uuid);
  snprintf(buf, cap, "%s", json_object_get_string(st));
  json_object_put(st);
  return TC_OK;
}

typedef struct {
  const char *task_uuid, *channel, *listen, *unlisten;
  int timeout_ms;
  int64_t deadline; /* tc_now_ms() time the wait gives up */
  tc_cancel_t *cancel;
  char *status;
  bool ran, lost;   /* wait_on was reached; its connection was lost (or reached a standby) */
} wait_args_t;

/* LISTEN, read, wait; always leaves the connection without the LISTEN. */
static int wait_on(PGconn *conn, void *arg, tc_error_t *err) {
  wait_args_t *a = arg;
  const char *task_uuid = a->task_uuid, *channel = a->channel, *listen = a->listen, *unlisten = a->unlisten;
  int timeout_ms = a->timeout_ms;
  tc_cancel_t *cancel = a->cancel;
  char *status = a->status;
  a->ran = true;
  int rc = tc_db_exec(conn, listen, 0, NULL, err);
  /* LISTEN first, then read: a task finishing in between still leaves a notification. */
  if (rc == TC_OK) rc = read_status(conn, task_uuid, status, 32, err);
  int64_t deadline = a->deadline;
  int64_t reread_at = tc_now_ms() + TC_WAIT_REREAD_MS;
  while (rc == TC_OK && !tc_task_state_terminal(status)) {
    if (cancel && cancel->fired) {
      rc = tc_error_set(err, TC_ECANCELED, "the wait was cancelled");
      break;
    }
    int64_t left = deadline - tc_now_ms();
    if (left <= 0) {
      rc = tc_error_set(err, TC_ETIMEDOUT, "task %s did not finish within %d ms (it is %s)", task_uuid, timeout_ms,
                        status);
      break;
    }
    /* A notification may already sit in libpq's buffer, read along with a query's result. */
    PGnotify *early;
    bool got = false;
    while ((early = PQnotifies(conn)) != NULL) {
      if (strcmp(early->relname, channel) == 0) {
        snprintf(status, 32, "%s", early->extra);
        got = true;
      }
      PQfreemem(early);
    }
    if (got) continue;
    if (tc_now_ms() >= reread_at) {
      rc = read_status(conn, task_uuid, status, 32, err);
      reread_at = tc_now_ms() + TC_WAIT_REREAD_MS;
      continue;
    }
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    int r = poll(&pfd, 1, (int)(left < 100 ? left : 100)); /* Slices of 100 ms notice a cancel. */
    if (r < 0) continue;
    if (r == 0) continue;
    if (!PQconsumeInput(conn)) {
      rc = tc_error_from_pg(err, conn, NULL, "waiting for the task");
      break;
    }
    PGnotify *n;
    while ((n = PQnotifies(conn)) != NULL) {
      if (strcmp(n->relname, channel) == 0) snprintf(status, 32, "%s", n->extra);
      PQfreemem(n);
    }
  }
  a->lost = PQstatus(conn) != CONNECTION_OK || (rc == TC_EDB && tc_db_read_only_error(err));
  tc_error_t ignored;
  if (PQstatus(conn) == CONNECTION_OK) tc_db_exec(conn, unlisten, 0, NULL, &ignored);
  /* A LISTEN that could not be undone must not go back to the pool. */
  if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE) {
    tc_db_exec(conn, "SELECT 1", 0, NULL, &ignored);
    PGnotify *n;
    while ((n = PQnotifies(conn)) != NULL) PQfreemem(n);
  }
  return rc;
}

int tc_task_wait(tc_runtime_t *rt, const char *task_uuid, int timeout_ms, tc_cancel_t *cancel, char status[32],
                 tc_error_t *err) {
  int rc = tc_uuid_require(task_uuid, "task_uuid", err);
  if (rc != TC_OK) return rc;
  /* The trigger notifies the channel of the uuid's canonical (lower-case) text. */
  char uuid[37];
  for (int i = 0; i < 37; i++) uuid[i] = (char)tolower((unsigned char)task_uuid[i]);
  char channel[64] = "tasker_task_";
  size_t len = strlen(channel);
  for (const char *p = uuid; *p && len + 1 < sizeof channel; p++)
    if (*p != '-') channel[len++] = *p;
  channel[len] = '\0';
  char listen[96], unlisten[96];
  snprintf(listen, sizeof listen, "LISTEN \"%s\"", channel);
  snprintf(unlisten, sizeof unlisten, "UNLISTEN \"%s\"", channel);

  /* A connection lost during the wait (a primary failing over, a restart), and then one that cannot
   * be opened yet, is retried with backoff until the deadline: each new connection LISTENs and reads
   * the status again, so a task that finished meanwhile is seen. */
  int64_t deadline = tc_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
  int backoff_ms = 100;
  bool waited = false; /* a wait began: a database unreachable from the start fails at once, as any call */
  for (;;) {
    wait_args_t a = {uuid, channel, listen, unlisten, timeout_ms, deadline, cancel, status, false, false};
    tc_error_t attempt = {0};
    rc = tc_rt_with_conn(rt, wait_on, &a, &attempt);
    waited = waited || a.ran;
    bool retry = rc == TC_EDB && (a.lost || (!a.ran && waited));
    if (!retry) {
      if (rc != TC_OK) *err = attempt;
      return rc;
    }
    if (cancel && cancel->fired) return tc_error_set(err, TC_ECANCELED, "the wait was cancelled");
    int64_t left = deadline - tc_now_ms();
    if (left <= 0) {
      *err = attempt;
      return rc;
    }
    tc_log(rt, TC_LOG_INFO, "wait_reconnecting", "waiting for task %s: %s; reconnecting in %d ms", uuid,
           attempt.message, backoff_ms);
    /* Sleep in slices that notice a cancel. */
    for (int64_t until = tc_now_ms() + (backoff_ms < left ? backoff_ms : left); tc_now_ms() < until;) {
      if (cancel && cancel->fired) break;
      int64_t slice = until - tc_now_ms();
      poll(NULL, 0, (int)(slice < 100 ? (slice > 0 ? slice : 0) : 100));
    }
    backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
  }
}
