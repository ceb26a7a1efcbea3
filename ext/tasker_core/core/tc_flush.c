/*
 * tc_flush.c - group commit of a worker's results.
 *
 * Handler threads submit results here instead of each running its own transaction. The first
 * submitter that finds no flush in progress becomes the leader: it takes every waiting result (up
 * to max_batch) and sends them, with a claim of the next step for each submitter that asked for
 * one, in one round trip and one transaction on the flusher's own connection: two prepared
 * statements pipelined (tc_flush_sql.h), the completion of the plain results (successes without
 * domain events, the common case) and the claim, preceded by tasker.complete_results for the others
 * (failures, domain events). A submitter whose step's only child became ready with this result gets
 * that child handed over (no enqueue, no claim of the queue), the others a step of the claim. A
 * plain result the completion did not apply (a decision or batch step, a stale claim, an ended
 * task) goes through tasker.complete_results right after, which knows every case. The leader goes
 * on leading while results keep arriving (its own next step, once its result is done, goes to the
 * worker's queue through the sink so it does not wait behind other flushes). A lone result
 * therefore goes at once, from its own thread, and under load the results that arrive during one
 * flush share the next one: there is no timer.
 *
 * While a flush is being led, a plain result may be posted (tc_flusher_post) instead of
 * submitted: the flusher copies it and its thread goes on at once; the leader reports its end to
 * the worker through the sink (tc_flusher_set_sink). A posted result the database refused as bad
 * data is replaced once by a permanent failure saying why; one that failed for want of the
 * database goes round again, with a pause that grows while the connection is down, until twice
 * the visibility timeout or the flusher stops; then it is given up (reported with its error).
 *
 * A result waits only in memory and only until its transaction commits; if the process dies first,
 * its claim expires and the step runs again (at least once, as before). A flush that fails on a
 * statement (not the connection) is rolled back whole and sent again through tasker.flush, the
 * PL/pgSQL twin that fails only a step whose event cannot be built; if that fails too, one result at
 * a time, so one bad result fails alone. Each statement locks claims, then tasks, in uuid order; a
 * flush with both kinds of results takes two such rounds, so two workers completing failures and
 * successes of the same tasks at once can deadlock: PostgreSQL ends one after deadlock_timeout, and
 * its group goes through tasker.flush as above (later, never lost).
 *
 * Locks: f->mu guards the queue, `flushing` and each queued item's done/rc/outcome fields. The
 * connection belongs to the leader of the moment (flushing == true); no query runs under f->mu, and
 * the sink is called without it. Each submitter waits on a condition variable of its own, so a
 * flush wakes only the submitters it answered, not every handler thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tc_flush_sql.h"
#include "tc_internal.h"

#define FLUSH_SQL "SELECT tasker.flush($1::uuid, $2::jsonb, $3::integer, $4::text[], $5::integer)"
#define FLUSH_STATEMENT "tc_flush"
#define COMPLETE_STATEMENT "tc_flush_complete"
#define CLAIM_STATEMENT "tc_flush_claim"
#define OTHERS_SQL "SELECT tasker.complete_results($1::uuid, $2::jsonb, true)"
#define OTHERS_STATEMENT "tc_flush_others"

struct tc_flush_item {
  const char *step_uuid;
  const char *claim_token;
  const char *result_text; /* the submitter's serialized result, valid while it waits */
  bool claim_next;
  bool plain;              /* a success without domain events: the completion statement's case */
  bool done;
  int rc;
  tc_error_t err;
  json_object *outcome;    /* handed to the submitter */
  json_object *next;       /* a claimed step for the submitter, or NULL */
  bool next_moved;         /* the leader's own next went to the worker's queue (it kept leading) */
  pthread_cond_t cv;       /* signalled when done */
  struct tc_flush_item *link;
  /* A posted result (tc_flusher_post): nobody waits for it; the flusher owns the item and its
   * copies, and reports its end through the sink. */
  bool posted;
  int64_t posted_at;       /* monotonic ms: a posted result is retried until twice the visibility */
  char step_buf[37], token_buf[37];
  char *owned_text;
};

/* A growing text buffer; ok turns false (and stays false) when memory runs out. */
typedef struct {
  char *text;
  size_t len, cap;
  bool ok;
} text_t;

struct tc_flusher {
  tc_runtime_t *rt;
  char worker_uuid[37];
  char *ns_literal;
  char visibility[16];
  int max_batch;
  pthread_mutex_t mu;
  tc_flush_item_t *head, *tail;
  bool flushing;
  PGconn *conn;            /* the leader's */
  int waiting;              /* results submitted and not yet answered */
  long long flushes, results;
  long long posted;         /* results posted (tc_flusher_post) rather than submitted */
  long long flush_us;       /* time spent in flushes' round trips, summed */
  int visibility_s;
  bool stopping;            /* posted results are no longer retried after a failure */
  tc_flush_done_fn on_done; /* the sink of posted results (NULL: nothing is posted) */
  tc_flush_next_fn on_next;
  void *sink;
  /* The leader's parameter texts, kept between flushes (emptied, not freed): a fresh set of
   * kilobyte buffers per flush made glibc consolidate its free lists each time. */
  text_t p_steps, p_tokens, p_results, p_wants, p_parents, p_others;
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
  f->visibility_s = visibility_s;
  f->max_batch = max_batch < 1 ? 1 : max_batch;
  pthread_mutex_init(&f->mu, NULL);
  *out = f;
  return TC_OK;
}

void tc_flusher_free(tc_flusher_t *f) {
  if (!f) return;
  tc_free(f->p_steps.text);
  tc_free(f->p_tokens.text);
  tc_free(f->p_results.text);
  tc_free(f->p_wants.text);
  tc_free(f->p_parents.text);
  tc_free(f->p_others.text);
  if (f->conn) PQfinish(f->conn);
  pthread_mutex_destroy(&f->mu);
  tc_free(f->ns_literal);
  tc_free(f);
}

void tc_flusher_abandon(tc_flusher_t *f) {
  if (f && f->conn && PQsocket(f->conn) >= 0) close(PQsocket(f->conn));
}

void tc_flusher_stats(tc_flusher_t *f, long long *flushes, long long *results, long long *posted, long long *flush_us,
                      int *waiting) {
  pthread_mutex_lock(&f->mu);
  *posted = f->posted;
  *flushes = f->flushes;
  *results = f->results;
  *flush_us = f->flush_us;
  *waiting = f->waiting;
  pthread_mutex_unlock(&f->mu);
}

/* Opens the connection and prepares the flush statements, once per connection. */
static int ensure_conn(tc_flusher_t *f, tc_error_t *err) {
  if (f->conn && PQstatus(f->conn) == CONNECTION_OK) return TC_OK;
  if (f->conn) PQfinish(f->conn);
  f->conn = NULL;
  int rc = tc_db_connect(&f->rt->pool, &f->conn, err);
  if (rc != TC_OK) return rc;
  /* Generic plans from the first execution (every access is keyed, whatever the parameters), no
   * bitmap scans (their set-up costs more than the few rows each probe finds), no JIT. */
  rc = tc_db_exec(f->conn, "SET plan_cache_mode = force_generic_plan; SET enable_bitmapscan = off; SET jit = off",
                  0, NULL, err);
  if (rc == TC_OK) rc = tc_db_prepare(f->conn, FLUSH_STATEMENT, FLUSH_SQL, 5, err);
  if (rc == TC_OK) rc = tc_db_prepare(f->conn, COMPLETE_STATEMENT, TC_FLUSH_COMPLETE_SQL, 6, err);
  if (rc == TC_OK) rc = tc_db_prepare(f->conn, CLAIM_STATEMENT, TC_FLUSH_CLAIM_SQL, 5, err);
  if (rc == TC_OK) rc = tc_db_prepare(f->conn, OTHERS_STATEMENT, OTHERS_SQL, 2, err);
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

/* Runs one flush of the n items in batch[] through tasker.flush, the PL/pgSQL twin of the
 * pipeline below, and fills their rc/outcome/next (f->mu not held). */
static void run_flush_function(tc_flusher_t *f, tc_flush_item_t **batch, int n) {
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

static void add(text_t *t, const char *s) {
  if (t->ok) t->ok = append(&t->text, &t->len, &t->cap, s);
}

/* Adds v under key, taking v whether or not it was added; false when v is NULL (out of memory) or
 * the add failed. */
static bool put(json_object *obj, const char *key, json_object *v) {
  if (v && json_object_object_add(obj, key, v) == 0) return true;
  json_object_put(v);
  return false;
}

/* The outcome of a result applied by the completion statement (the shape complete_results gives);
 * NULL when out of memory. */
static json_object *plain_outcome(PGresult *r, int row) {
  json_object *o = json_object_new_object();
  if (!o) return NULL;
  bool ok = put(o, "applied", json_object_new_boolean(1)) &&
            put(o, "step_status", json_object_new_string("complete")) &&
            put(o, "task_status", json_object_new_string(PQgetvalue(r, row, 1))) &&
            put(o, "enqueued", json_object_new_int(atoi(PQgetvalue(r, row, 2)))) &&
            json_object_object_add(o, "next_retry_at", NULL) == 0 &&
            put(o, "namespace", json_object_new_string(PQgetvalue(r, row, 3)));
  if (!ok) {
    json_object_put(o);
    return NULL;
  }
  return o;
}

/* Sends the items of batch[] listed in idx[0..n) to tasker.complete_results in a transaction of
 * their own (no claim) and fills their outcomes. */
static void run_others(tc_flusher_t *f, tc_flush_item_t **batch, const int *idx, int n) {
  text_t json = {.ok = true};
  add(&json, "[");
  for (int k = 0; k < n; k++) {
    char head[160];
    snprintf(head, sizeof head, "%s{\"step_uuid\":\"%s\",\"claim_token\":\"%s\",\"result\":", k ? "," : "",
             batch[idx[k]]->step_uuid, batch[idx[k]]->claim_token);
    add(&json, head);
    add(&json, batch[idx[k]]->result_text);
    add(&json, "}");
  }
  add(&json, "]");
  tc_error_t err = {0};
  json_object *res = NULL;
  int rc = json.ok ? TC_OK : tc_error_set(&err, TC_ENOMEM, "out of memory building a flush");
  if (rc == TC_OK) {
    const char *params[] = {f->worker_uuid, json.text};
    rc = tc_db_query_prepared_json(f->conn, OTHERS_STATEMENT, 2, params, &res, &err);
  }
  tc_free(json.text);
  if (rc == TC_OK && (!json_object_is_type(res, json_type_array) || (int)json_object_array_length(res) != n))
    rc = tc_error_set(&err, TC_EDB, "tasker.complete_results answered without an outcome for each result");
  for (int k = 0; k < n; k++) {
    tc_flush_item_t *item = batch[idx[k]];
    item->rc = rc;
    if (rc != TC_OK) item->err = err;
    else item->outcome = json_object_get(json_object_array_get_idx(res, (size_t)k));
  }
  json_object_put(res);
}

/* Runs one flush of the n items in batch[] and fills their rc/outcome/next (f->mu not held): in
 * one pipeline and one transaction, tasker.complete_results for the results that are not plain,
 * the completion of the plain ones and the claim; then, in a transaction of their own, the plain
 * results the completion did not apply. */
static void run_flush(tc_flusher_t *f, tc_flush_item_t **batch, int n) {
  int plain_idx[256], others_idx[256], late_idx[256];
  int n_plain = 0, n_others = 0, n_late = 0, claims = 0, n_parents = 0;
  text_t *steps = &f->p_steps, *tokens = &f->p_tokens, *results = &f->p_results, *wants = &f->p_wants,
         *parents = &f->p_parents, *others = &f->p_others;
  text_t *bufs[] = {steps, tokens, results, wants, parents, others};
  for (size_t b = 0; b < sizeof bufs / sizeof *bufs; b++) {
    bufs[b]->len = 0;
    bufs[b]->ok = true;
  }
  add(steps, "{");
  add(tokens, "{");
  add(results, "[");
  add(wants, "{");
  add(parents, "{");
  add(others, "[");
  for (int i = 0; i < n; i++) {
    tc_flush_item_t *item = batch[i];
    if (item->claim_next) claims++;
    if (item->plain) {
      const char *sep = n_plain ? "," : "";
      add(steps, sep);
      add(steps, item->step_uuid);
      add(tokens, sep);
      add(tokens, item->claim_token);
      add(results, sep);
      add(results, item->result_text);
      add(wants, sep);
      add(wants, item->claim_next ? "t" : "f");
      if (item->claim_next) {
        add(parents, n_parents++ ? "," : "");
        add(parents, item->step_uuid);
      }
      plain_idx[n_plain++] = i;
    } else {
      char head[160];
      snprintf(head, sizeof head, "%s{\"step_uuid\":\"%s\",\"claim_token\":\"%s\",\"result\":",
               n_others ? "," : "", item->step_uuid, item->claim_token);
      add(others, head);
      add(others, item->result_text);
      add(others, "}");
      others_idx[n_others++] = i;
    }
  }
  add(steps, "}");
  add(tokens, "}");
  add(results, "]");
  add(wants, "}");
  add(parents, "}");
  add(others, "]");
  bool built = steps->ok && tokens->ok && results->ok && wants->ok && parents->ok && others->ok;

  tc_error_t err = {0};
  int rc = built ? ensure_conn(f, &err) : tc_error_set(&err, TC_ENOMEM, "out of memory building a flush");
  PGresult *r_others = NULL, *r_complete = NULL, *r_claim = NULL;
  bool statement_error = false;
  if (rc == TC_OK) {
    PGconn *conn = f->conn;
    char claim[16];
    snprintf(claim, sizeof claim, "%d", claims);
    const char *p_others[] = {f->worker_uuid, others->text};
    const char *p_complete[] = {f->worker_uuid, steps->text, tokens->text, results->text, wants->text, f->visibility};
    const char *p_claim[] = {f->worker_uuid, f->ns_literal, claim, f->visibility, parents->text};
    bool sent = PQenterPipelineMode(conn) == 1 &&
                (!n_others || PQsendQueryPrepared(conn, OTHERS_STATEMENT, 2, p_others, NULL, NULL, 0) == 1) &&
                (!n_plain || PQsendQueryPrepared(conn, COMPLETE_STATEMENT, 6, p_complete, NULL, NULL, 0) == 1) &&
                (!claims || PQsendQueryPrepared(conn, CLAIM_STATEMENT, 5, p_claim, NULL, NULL, 0) == 1) &&
                PQpipelineSync(conn) == 1;
    if (!sent) {
      rc = tc_error_from_pg(&err, conn, NULL, "sending a flush failed");
    } else {
      if (n_others) r_others = tc_db_pipeline_next(conn, PGRES_TUPLES_OK, &err);
      if (n_plain) r_complete = tc_db_pipeline_next(conn, PGRES_TUPLES_OK, &err);
      if (claims) r_claim = tc_db_pipeline_next(conn, PGRES_TUPLES_OK, &err);
      PGresult *sync = tc_db_pipeline_next(conn, PGRES_PIPELINE_SYNC, &err);
      if (sync) PQclear(sync);
      if (err.code != TC_OK) rc = err.code;
      statement_error = rc != TC_OK && sync && err.sqlstate[0] != '\0';
    }
    if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF && PQexitPipelineMode(conn) != 1) statement_error = false;
    if (PQstatus(conn) != CONNECTION_OK || PQpipelineStatus(conn) != PQ_PIPELINE_OFF) {
      PQfinish(conn);
      f->conn = NULL;
      statement_error = false;
    }
  }
  /* Kept for the next flush, unless a large result grew one. */
  for (size_t b = 0; b < sizeof bufs / sizeof *bufs; b++) {
    if (bufs[b]->cap > 256 * 1024) {
      tc_free(bufs[b]->text);
      *bufs[b] = (text_t){0};
    }
  }

  if (rc != TC_OK) {
    PQclear(r_others);
    PQclear(r_complete);
    PQclear(r_claim);
    /* The transaction was rolled back whole: a statement error goes through tasker.flush, which
     * knows how to fail only a step whose event cannot be built. */
    if (statement_error) {
      run_flush_function(f, batch, n);
      return;
    }
    for (int i = 0; i < n; i++) {
      batch[i]->rc = rc;
      batch[i]->err = err;
    }
    return;
  }

  /* The others' outcomes, in the order they were sent. */
  json_object *others_out = NULL;
  if (r_others) {
    if (PQntuples(r_others) != 1 ||
        tc_json_parse_text(PQgetvalue(r_others, 0, 0), &others_out, &err) != TC_OK ||
        !json_object_is_type(others_out, json_type_array) ||
        (int)json_object_array_length(others_out) != n_others) {
      if (err.code == TC_OK) tc_error_set(&err, TC_EDB, "tasker.complete_results answered without an outcome for each result");
      for (int k = 0; k < n_others; k++) {
        batch[others_idx[k]]->rc = err.code;
        batch[others_idx[k]]->err = err;
      }
    } else {
      for (int k = 0; k < n_others; k++)
        batch[others_idx[k]]->outcome = json_object_get(json_object_array_get_idx(others_out, (size_t)k));
    }
    json_object_put(others_out);
    PQclear(r_others);
  }
  /* The plain results' outcomes; the ones not applied go through complete_results below. */
  if (r_complete) {
    for (int row = 0; row < PQntuples(r_complete); row++) {
      int ord = atoi(PQgetvalue(r_complete, row, 0));
      if (ord < 1 || ord > n_plain) continue;
      tc_flush_item_t *item = batch[plain_idx[ord - 1]];
      item->outcome = plain_outcome(r_complete, row);
      if (!item->outcome) {
        item->rc = TC_ENOMEM;
        tc_error_set(&item->err, TC_ENOMEM, "out of memory reading a flush");
      }
    }
    PQclear(r_complete);
    for (int k = 0; k < n_plain; k++) {
      tc_flush_item_t *item = batch[plain_idx[k]];
      if (!item->outcome && item->rc == TC_OK) late_idx[n_late++] = plain_idx[k];
    }
  }
  /* Steps handed over go to the submitter whose step handed them, the claimed ones to the others
   * that asked, in order. Every submitter that asked gets one step at most; no more were claimed. */
  if (r_claim) {
    int taker = 0;
    for (int pass = 0; pass < 2; pass++) {
      for (int row = 0; row < PQntuples(r_claim); row++) {
        bool handed = !PQgetisnull(r_claim, row, 0);
        if (handed != (pass == 0) || PQgetisnull(r_claim, row, 1)) continue;
        tc_flush_item_t *to = NULL;
        if (handed) {
          for (int i = 0; i < n && !to; i++)
            if (batch[i]->claim_next && !batch[i]->next && strcmp(batch[i]->step_uuid, PQgetvalue(r_claim, row, 0)) == 0)
              to = batch[i];
        } else {
          while (taker < n && (!batch[taker]->claim_next || batch[taker]->next)) taker++;
          if (taker < n) to = batch[taker];
        }
        json_object *ev = NULL;
        tc_error_t parse_err = {0};
        /* A step nobody takes (not expected) keeps its claim until it expires, then runs again. */
        if (to && tc_json_parse_text(PQgetvalue(r_claim, row, 1), &ev, &parse_err) == TC_OK) to->next = ev;
      }
    }
    PQclear(r_claim);
  }
  if (n_late) run_others(f, batch, late_idx, n_late);
}

/* The permanent failure that replaces a posted result the database refused as bad data (as the
 * host does for a result it submits itself); NULL when out of memory. */
static char *unstorable_text(const char *step_uuid, const char *message) {
  char text[sizeof ((tc_error_t *)0)->message + 64];
  snprintf(text, sizeof text, "the step result could not be stored: %s", message);
  json_object *error = json_object_new_object(), *meta = json_object_new_object(), *r = json_object_new_object();
  bool ok = error && meta && r && put(error, "message", json_object_new_string(text)) &&
            put(error, "error_type", json_object_new_string("StepCompletionError")) &&
            put(error, "retryable", json_object_new_boolean(0)) &&
            put(meta, "execution_time_ms", json_object_new_int(0)) &&
            put(meta, "retryable", json_object_new_boolean(0)) &&
            put(meta, "error_type", json_object_new_string("StepCompletionError")) &&
            json_object_object_add(meta, "error_code", NULL) == 0 &&
            put(r, "step_uuid", json_object_new_string(step_uuid)) &&
            put(r, "success", json_object_new_boolean(0)) && put(r, "status", json_object_new_string("failed")) &&
            json_object_object_add(r, "result", NULL) == 0;
  if (ok) {
    ok = put(r, "error", error);
    error = NULL;
  }
  if (ok) {
    ok = put(r, "metadata", meta);
    meta = NULL;
  }
  char *out = ok ? tc_strdup(tc_json_str(r)) : NULL;
  json_object_put(error);
  json_object_put(meta);
  json_object_put(r);
  return out;
}

static void free_posted(tc_flush_item_t *item) {
  json_object_put(item->outcome);
  json_object_put(item->next);
  tc_free(item->owned_text);
  tc_free(item);
}

/* After its flush: whether a posted result goes round again, reset for it (f->mu not held). A
 * result the database refused is replaced once by a permanent failure saying why; a failure of
 * the database is retried until twice the visibility timeout, unless the flusher stops. */
static bool retry_posted(tc_flusher_t *f, tc_flush_item_t *item) {
  if (item->rc == TC_OK) return false;
  if (item->rc == TC_EINVAL && item->plain) {
    char *text = unstorable_text(item->step_uuid, item->err.message);
    if (!text) return false;
    tc_log(f->rt, TC_LOG_WARN, "step_result_unstorable", "the result of step %s could not be stored: %s",
           item->step_uuid, item->err.message);
    tc_free(item->owned_text);
    item->owned_text = text;
    item->result_text = text;
    item->plain = false;
  } else if (item->rc == TC_EDB || item->rc == TC_ETIMEDOUT) {
    pthread_mutex_lock(&f->mu);
    bool stopping = f->stopping;
    pthread_mutex_unlock(&f->mu);
    if (stopping || tc_now_ms() - item->posted_at > 2000LL * f->visibility_s) return false;
  } else {
    return false;
  }
  json_object_put(item->outcome);
  json_object_put(item->next);
  item->outcome = item->next = NULL;
  item->rc = TC_OK;
  memset(&item->err, 0, sizeof item->err);
  return true;
}

/* Leads flushes (called and returning with f->mu held) until nothing waits: the caller's own
 * result, the results other threads submit or post meanwhile. A caller whose own result is done
 * while others still wait gives its next step to the worker's queue and goes on leading, so no
 * claimed step waits behind other flushes. */
static void lead(tc_flusher_t *f, tc_flush_item_t *mine) {
  tc_flush_item_t *batch[256];
  int cap = f->max_batch < 256 ? f->max_batch : 256;
  int backoff_ms = 0;
  f->flushing = true;
  while (f->head) {
    int n = 0;
    while (f->head && n < cap) {
      batch[n++] = f->head;
      f->head = f->head->link;
    }
    if (!f->head) f->tail = NULL;
    pthread_mutex_unlock(&f->mu);
    if (backoff_ms) {
      struct timespec pause = {backoff_ms / 1000, (long)(backoff_ms % 1000) * 1000000L};
      nanosleep(&pause, NULL);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
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
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tc_flush_item_t *again[256], *ended[256];
    int n_again = 0, n_ended = 0;
    bool db_failed = !f->conn;
    for (int i = 0; i < n; i++) {
      if (!batch[i]->posted) continue;
      bool failed = batch[i]->rc == TC_EDB || batch[i]->rc == TC_ETIMEDOUT;
      if (retry_posted(f, batch[i])) {
        again[n_again++] = batch[i];
        db_failed = db_failed || failed;
      } else {
        ended[n_ended++] = batch[i];
      }
    }
    /* The database away, or failing a posted result: the next round waits, longer each time (as a
     * host retrying a result it submitted would). A refused result's replacement goes at once. */
    backoff_ms = db_failed ? (backoff_ms ? (backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2) : 50) : 0;
    pthread_mutex_lock(&f->mu);
    f->flush_us += (t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000;
    f->flushes++;
    f->results += n;
    for (int i = 0; i < n; i++) {
      if (batch[i]->posted || batch[i] == mine) continue;
      batch[i]->done = true;
      pthread_cond_signal(&batch[i]->cv);
    }
    /* Retried results go first, in their order. */
    for (int k = n_again - 1; k >= 0; k--) {
      again[k]->link = f->head;
      f->head = again[k];
      if (!f->tail) f->tail = again[k];
    }
    f->waiting -= n - n_again;
    bool mine_now = false;
    for (int i = 0; i < n; i++)
      if (batch[i] == mine) mine_now = true;
    pthread_mutex_unlock(&f->mu);
    /* The sink runs with the flush still ours: what others post meanwhile waits for the next round. */
    for (int k = 0; k < n_ended; k++) {
      tc_flush_report_t report = {.step_uuid = ended[k]->step_uuid, .claim_token = ended[k]->claim_token,
                                  .success = ended[k]->plain, .rc = ended[k]->rc, .err = &ended[k]->err,
                                  .outcome = ended[k]->outcome, .next = ended[k]->next};
      f->on_done(f->sink, &report);
      free_posted(ended[k]);
    }
    pthread_mutex_lock(&f->mu);
    if (mine_now) mine->done = true;
    if (mine->done && f->head) {
      if (!f->on_next) {
        /* Without a sink the caller keeps its next step: the first waiting submitter leads on. */
        pthread_cond_signal(&f->head->cv);
        break;
      }
      if (mine->next && !mine->next_moved && mine->rc == TC_OK) {
        json_object *next = mine->next;
        mine->next = NULL;
        mine->next_moved = true;
        pthread_mutex_unlock(&f->mu);
        f->on_next(f->sink, next);
        json_object_put(next);
        pthread_mutex_lock(&f->mu);
      }
    }
  }
  f->flushing = false;
}

void tc_flusher_set_sink(tc_flusher_t *f, tc_flush_done_fn on_done, tc_flush_next_fn on_next, void *sink) {
  pthread_mutex_lock(&f->mu);
  f->on_done = on_done;
  f->on_next = on_next;
  f->sink = sink;
  pthread_mutex_unlock(&f->mu);
}

void tc_flusher_stop(tc_flusher_t *f) {
  pthread_mutex_lock(&f->mu);
  f->stopping = true;
  pthread_mutex_unlock(&f->mu);
}

/* Plain: a success without domain events (an empty list counts as none). */
static bool is_plain(json_object *result) {
  json_object *events = tc_json_get(result, "domain_events");
  return json_object_is_type(tc_json_get(result, "success"), json_type_boolean) &&
         json_object_get_boolean(tc_json_get(result, "success")) &&
         (!events || (json_object_is_type(events, json_type_array) && json_object_array_length(events) == 0));
}

static int check_size(const char *text, tc_error_t *err) {
  if (!text) return tc_error_set(err, TC_ENOMEM, "out of memory serializing the step result");
  size_t bytes = strlen(text);
  if (bytes > TC_STEP_RESULT_MAX_BYTES)
    return tc_error_set(err, TC_EINVAL, "the step result is %zu bytes serialized; the limit is %d", bytes,
                        TC_STEP_RESULT_MAX_BYTES);
  return TC_OK;
}

int tc_flusher_post(tc_flusher_t *f, const char *step_uuid, const char *claim_token, json_object *result,
                    bool claim_next, bool *posted, tc_error_t *err) {
  *posted = false;
  pthread_mutex_lock(&f->mu);
  bool open = f->flushing && f->on_done && !f->stopping;
  pthread_mutex_unlock(&f->mu);
  if (!open || !is_plain(result)) return TC_OK;
  const char *text = tc_json_str(result);
  int rc = check_size(text, err);
  if (rc != TC_OK) return rc;
  tc_flush_item_t *item = tc_calloc(1, sizeof *item);
  char *copy = tc_strdup(text);
  if (!item || !copy) {
    tc_free(item);
    tc_free(copy);
    return TC_OK; /* the caller submits it itself */
  }
  snprintf(item->step_buf, sizeof item->step_buf, "%s", step_uuid);
  snprintf(item->token_buf, sizeof item->token_buf, "%s", claim_token);
  item->step_uuid = item->step_buf;
  item->claim_token = item->token_buf;
  item->owned_text = copy;
  item->result_text = copy;
  item->claim_next = claim_next;
  item->plain = true;
  item->posted = true;
  item->posted_at = tc_now_ms();
  pthread_mutex_lock(&f->mu);
  /* Taken only while a flush is being led: its leader takes every result waiting before it stops. */
  if (f->flushing && !f->stopping) {
    if (f->tail) f->tail->link = item;
    else f->head = item;
    f->tail = item;
    f->waiting++;
    f->posted++;
    *posted = true;
  }
  pthread_mutex_unlock(&f->mu);
  if (!*posted) {
    tc_free(copy);
    tc_free(item);
  }
  return TC_OK;
}

int tc_flusher_submit(tc_flusher_t *f, const char *step_uuid, const char *claim_token, json_object *result,
                      bool claim_next, json_object **outcome, json_object **next, bool *next_moved,
                      tc_error_t *err) {
  tc_flush_item_t item = {.step_uuid = step_uuid, .claim_token = claim_token,
                          .result_text = tc_json_str(result), .claim_next = claim_next, .plain = is_plain(result)};
  int rc = check_size(item.result_text, err);
  if (rc != TC_OK) return rc;
  pthread_cond_init(&item.cv, NULL);
  pthread_mutex_lock(&f->mu);
  if (f->tail) f->tail->link = &item;
  else f->head = &item;
  f->tail = &item;
  f->waiting++;
  while (!item.done) {
    if (!f->flushing) lead(f, &item);
    else pthread_cond_wait(&item.cv, &f->mu);
  }
  pthread_mutex_unlock(&f->mu);
  pthread_cond_destroy(&item.cv);
  *next_moved = item.next_moved;
  if (item.rc != TC_OK) {
    if (err) *err = item.err;
    return item.rc;
  }
  *outcome = item.outcome;
  *next = item.next;
  return TC_OK;
}
