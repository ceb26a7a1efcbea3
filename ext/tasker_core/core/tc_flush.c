/*
 * tc_flush.c - group commit of a worker's results.
 *
 * Handler threads submit results here instead of each running its own transaction. The first
 * submitter that finds no flush in progress becomes the leader: it takes every waiting result (up
 * to max_batch) and sends them, with a claim of the next step for each submitter that asked for
 * one, in one round trip and one transaction (tasker.flush) on the flusher's own connection. A
 * submitter whose step's only child became ready with this result gets that child handed over
 * (tasker.complete_results: no enqueue, no claim of the queue), the others a step of the claim. The
 * others wait; whoever still waits when the flush ends leads the next one. A lone result therefore
 * goes at once, from its own thread, and under load the results that arrive during one flush
 * share the next one: there is no timer.
 *
 * A result waits only in memory and only until its transaction commits; if the process dies first,
 * its claim expires and the step runs again (at least once, as before). A flush that fails on a
 * statement (not the connection) is retried one result at a time, so one bad result fails alone.
 *
 * Locks: f->mu guards the queue, `flushing` and each queued item's done/rc/outcome fields. The
 * connection belongs to the leader of the moment (flushing == true); no query runs under f->mu.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tc_internal.h"

#define FLUSH_SQL "SELECT tasker.flush($1::uuid, $2::jsonb, $3::integer, $4::text[], $5::integer)"
#define FLUSH_STATEMENT "tc_flush"

struct tc_flush_item {
  const char *step_uuid;
  const char *claim_token;
  const char *result_text; /* the submitter's serialized result, valid while it waits */
  bool claim_next;
  bool done;
  int rc;
  tc_error_t err;
  json_object *outcome;    /* handed to the submitter */
  json_object *next;       /* a claimed step for the submitter, or NULL */
  struct tc_flush_item *link;
};

struct tc_flusher {
  tc_runtime_t *rt;
  char worker_uuid[37];
  char *ns_literal;
  char visibility[16];
  int max_batch;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  tc_flush_item_t *head, *tail;
  bool flushing;
  PGconn *conn;            /* the leader's */
  int waiting;              /* results submitted and not yet answered */
  long long flushes, results;
};

int tc_flusher_new(tc_runtime_t *rt, const char *worker_uuid, const char *ns_literal, int visibility_s,
                   int max_batch, tc_flusher_t **out, tc_error_t *err) {
  tc_flusher_t *f = tc_calloc(1, sizeof *f);
  if (!f) return tc_error_set(err, TC_ENOMEM, "out of memory creating the result flusher");
  f->ns_literal = tc_strdup(ns_literal);
  if (!f->ns_literal) {
    tc_free(f);
    return tc_error_set(err, TC_ENOMEM, "out of memory creating the result flusher");
  }
  f->rt = rt;
  snprintf(f->worker_uuid, sizeof f->worker_uuid, "%s", worker_uuid);
  snprintf(f->visibility, sizeof f->visibility, "%d", visibility_s);
  f->max_batch = max_batch < 1 ? 1 : max_batch;
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  *out = f;
  return TC_OK;
}

void tc_flusher_free(tc_flusher_t *f) {
  if (!f) return;
  if (f->conn) PQfinish(f->conn);
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  tc_free(f->ns_literal);
  tc_free(f);
}

void tc_flusher_abandon(tc_flusher_t *f) {
  if (f && f->conn && PQsocket(f->conn) >= 0) close(PQsocket(f->conn));
}

void tc_flusher_stats(tc_flusher_t *f, long long *flushes, long long *results, int *waiting) {
  pthread_mutex_lock(&f->mu);
  *flushes = f->flushes;
  *results = f->results;
  *waiting = f->waiting;
  pthread_mutex_unlock(&f->mu);
}

/* Opens the connection and prepares the flush statement, once per connection. */
static int ensure_conn(tc_flusher_t *f, tc_error_t *err) {
  if (f->conn && PQstatus(f->conn) == CONNECTION_OK) return TC_OK;
  if (f->conn) PQfinish(f->conn);
  f->conn = NULL;
  int rc = tc_db_connect(&f->rt->pool, &f->conn, err);
  if (rc != TC_OK) return rc;
  rc = tc_db_prepare(f->conn, FLUSH_STATEMENT, FLUSH_SQL, 5, err);
  if (rc != TC_OK) {
    PQfinish(f->conn);
    f->conn = NULL;
  }
  return rc;
}

/* Appends s to the buffer, growing it; false when out of memory. */
static bool append(char **buf, size_t *len, size_t *cap, const char *s) {
  size_t n = strlen(s);
  if (*len + n + 1 > *cap) {
    size_t want = (*cap ? *cap * 2 : 4096);
    while (want < *len + n + 1) want *= 2;
    char *grown = tc_realloc(*buf, want);
    if (!grown) return false;
    *buf = grown;
    *cap = want;
  }
  memcpy(*buf + *len, s, n + 1);
  *len += n;
  return true;
}

/* Runs one flush of the n items in batch[] and fills their rc/outcome/next (f->mu not held). */
static void run_flush(tc_flusher_t *f, tc_flush_item_t **batch, int n) {
  char *text = NULL;
  size_t len = 0, cap = 0;
  int claims = 0;
  bool ok = append(&text, &len, &cap, "[");
  for (int i = 0; ok && i < n; i++) {
    char head[160];
    snprintf(head, sizeof head, "%s{\"step_uuid\":\"%s\",\"claim_token\":\"%s\",%s\"result\":", i ? "," : "",
             batch[i]->step_uuid, batch[i]->claim_token, batch[i]->claim_next ? "\"next\":true," : "");
    ok = append(&text, &len, &cap, head) && append(&text, &len, &cap, batch[i]->result_text) &&
         append(&text, &len, &cap, "}");
    if (batch[i]->claim_next) claims++;
  }
  ok = ok && append(&text, &len, &cap, "]");
  tc_error_t err = {0};
  json_object *res = NULL;
  int rc = ok ? ensure_conn(f, &err) : tc_error_set(&err, TC_ENOMEM, "out of memory building a flush");
  if (rc == TC_OK) {
    char claim[16];
    snprintf(claim, sizeof claim, "%d", claims);
    const char *params[] = {f->worker_uuid, text, claim, f->ns_literal, f->visibility};
    rc = tc_db_query_prepared_json(f->conn, FLUSH_STATEMENT, 5, params, &res, &err);
    if (rc != TC_OK && PQstatus(f->conn) != CONNECTION_OK) {
      PQfinish(f->conn);
      f->conn = NULL;
    }
  }
  tc_free(text);
  json_object *outcomes = NULL, *next = NULL, *handed_over = NULL;
  if (rc == TC_OK && (!json_object_object_get_ex(res, "outcomes", &outcomes) ||
                      !json_object_is_type(outcomes, json_type_array) ||
                      (int)json_object_array_length(outcomes) != n ||
                      !json_object_object_get_ex(res, "next_steps", &next) ||
                      !json_object_object_get_ex(res, "handed", &handed_over) ||
                      !json_object_is_type(handed_over, json_type_array)))
    rc = tc_error_set(&err, TC_EDB, "tasker.flush answered without an outcome for each result");
  int taken = 0;
  for (int i = 0; i < n; i++) {
    tc_flush_item_t *item = batch[i];
    item->rc = rc;
    if (rc != TC_OK) {
      item->err = err;
      continue;
    }
    item->outcome = json_object_get(json_object_array_get_idx(outcomes, (size_t)i));
    /* A step handed over by the completion (the finished step's only child), else one of the claim's. */
    if (json_object_is_type(item->outcome, json_type_object)) json_object_object_del(item->outcome, "next_step");
    json_object *mine = json_object_array_get_idx(handed_over, (size_t)i);
    if (item->claim_next && mine && json_object_is_type(mine, json_type_array))
      item->next = json_object_get(mine);
    else if (item->claim_next && next && taken < (int)json_object_array_length(next))
      item->next = json_object_get(json_object_array_get_idx(next, (size_t)taken++));
  }
  /* Every submitter that asked got one step at most; more cannot have been claimed. */
  json_object_put(res);
}

/* Leads flushes until the caller's own item is done (called and returning with f->mu held). */
static void lead(tc_flusher_t *f, tc_flush_item_t *mine) {
  tc_flush_item_t *batch[256];
  int cap = f->max_batch < 256 ? f->max_batch : 256;
  while (!mine->done) {
    int n = 0;
    while (f->head && n < cap) {
      batch[n++] = f->head;
      f->head = f->head->link;
    }
    if (!f->head) f->tail = NULL;
    f->flushing = true;
    pthread_mutex_unlock(&f->mu);
    run_flush(f, batch, n);
    /* A statement error with several results: one of them may be the cause; each goes alone. */
    if (n > 1 && batch[0]->rc != TC_OK && batch[0]->err.sqlstate[0] != '\0' && f->conn) {
      for (int i = 0; i < n; i++) {
        json_object_put(batch[i]->outcome);
        json_object_put(batch[i]->next);
        batch[i]->outcome = batch[i]->next = NULL;
        run_flush(f, &batch[i], 1);
      }
    }
    pthread_mutex_lock(&f->mu);
    f->flushing = false;
    f->flushes++;
    f->results += n;
    for (int i = 0; i < n; i++) batch[i]->done = true;
    f->waiting -= n;
    pthread_cond_broadcast(&f->cv);
  }
}

int tc_flusher_submit(tc_flusher_t *f, const char *step_uuid, const char *claim_token, json_object *result,
                      bool claim_next, json_object **outcome, json_object **next, tc_error_t *err) {
  tc_flush_item_t item = {.step_uuid = step_uuid, .claim_token = claim_token,
                          .result_text = tc_json_str(result), .claim_next = claim_next};
  if (!item.result_text) return tc_error_set(err, TC_ENOMEM, "out of memory serializing the step result");
  size_t bytes = strlen(item.result_text);
  if (bytes > TC_STEP_RESULT_MAX_BYTES)
    return tc_error_set(err, TC_EINVAL, "the step result is %zu bytes serialized; the limit is %d", bytes,
                        TC_STEP_RESULT_MAX_BYTES);
  pthread_mutex_lock(&f->mu);
  if (f->tail) f->tail->link = &item;
  else f->head = &item;
  f->tail = &item;
  f->waiting++;
  while (!item.done) {
    if (!f->flushing) lead(f, &item);
    else pthread_cond_wait(&f->cv, &f->mu);
  }
  pthread_mutex_unlock(&f->mu);
  if (item.rc != TC_OK) {
    if (err) *err = item.err;
    return item.rc;
  }
  *outcome = item.outcome;
  *next = item.next;
  return TC_OK;
}
