/*
 * tc_db.c - the libpq connection pool and the query helpers every engine module uses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tc_internal.h"

int tc_pool_init(tc_pool_t *pool, tc_runtime_t *rt, const char *url, int max,
                 int connect_timeout_s, int acquire_timeout_ms, tc_error_t *err) {
  memset(pool, 0, sizeof *pool);
  pool->rt = rt;
  pool->max = max;
  pool->connect_timeout_s = connect_timeout_s;
  pool->acquire_timeout_ms = acquire_timeout_ms;
  pool->conninfo = tc_strdup(url);
  pool->idle = tc_calloc((size_t)max, sizeof(PGconn *));
  if (!pool->conninfo || !pool->idle) {
    tc_free(pool->conninfo);
    tc_free(pool->idle);
    return tc_error_set(err, TC_ENOMEM, "out of memory creating the connection pool");
  }
  pthread_mutex_init(&pool->mu, NULL);
  pthread_cond_init(&pool->cv, NULL);
  return TC_OK;
}

void tc_pool_destroy(tc_pool_t *pool) {
  pthread_mutex_lock(&pool->mu);
  pool->closed = true;
  PGconn **idle = pool->idle;
  int n = pool->n_idle;
  pool->n_idle = 0;
  pool->n_open -= n;
  pthread_cond_broadcast(&pool->cv);
  pthread_mutex_unlock(&pool->mu);
  for (int i = 0; i < n; i++) PQfinish(idle[i]);
  tc_free(idle);
  tc_free(pool->conninfo);
  pthread_cond_destroy(&pool->cv);
  pthread_mutex_destroy(&pool->mu);
}

void tc_pool_abandon(tc_pool_t *pool) {
  /* No locking: the threads that could hold pool->mu do not exist in a forked child. Closing the
   * socket first makes PQfinish unable to send a Terminate message on the parent's session. */
  for (int i = 0; i < pool->n_idle; i++) {
    int fd = PQsocket(pool->idle[i]);
    if (fd >= 0) close(fd);
  }
}

/* Closes every idle connection: after one is found dead (server restart, failover) the others,
 * opened to the same server, are too. */
static void pool_flush_idle(tc_pool_t *pool) {
  pthread_mutex_lock(&pool->mu);
  int n = pool->n_idle;
  PGconn *idle[n > 0 ? n : 1];
  for (int i = 0; i < n; i++) idle[i] = pool->idle[i];
  pool->n_idle = 0;
  pool->n_open -= n;
  pthread_cond_broadcast(&pool->cv);
  pthread_mutex_unlock(&pool->mu);
  for (int i = 0; i < n; i++) PQfinish(idle[i]);
}

/* Builds the connection keywords: the URL (expanded), then defaults it did not set. Two settings
 * are added to any options the URL carries, for the engine's sessions only:
 *  - jit=off: its statements are short, and a plan whose estimate crossed jit_above_cost as the
 *    tables grew paid tens of milliseconds of compilation per call;
 *  - enable_seqscan=off: every statement of the engine is keyed (uuid, claim index, task), but a
 *    PL/pgSQL plan cached while a table was still small (or never analyzed) joined it by a
 *    sequential scan, and kept doing so as the table grew, until the next ANALYZE. Without the
 *    option a sequential scan is still used where no index applies.
 * Defaults for a primary that can fail over (docs/operations.md), each unless the URL sets it:
 *  - target_session_attrs=read-write: every connection of the engine writes (a LISTEN too), so
 *    one that reaches a standby (a host list, a DNS name that still points at the old primary
 *    after it came back as a standby) is refused by libpq, which tries the next host; with no
 *    writable host the connect fails and its caller retries;
 *  - TCP keepalives after 30 s idle, every 10 s, 3 probes: a primary that vanished without closing
 *    its sockets (a crashed machine, a partition) is noticed in about a minute instead of the
 *    operating system's two hours, by the LISTEN connections above all, which only read. */
static PGconn *connect_now(tc_pool_t *pool) {
  char timeout[16];
  snprintf(timeout, sizeof timeout, "%d", pool->connect_timeout_s);
  static const char *const defaults[][2] = {{"target_session_attrs", "read-write"},
                                            {"keepalives_idle", "30"},
                                            {"keepalives_interval", "10"},
                                            {"keepalives_count", "3"}};
  bool has_default[4] = {false, false, false, false};
  bool has_timeout = false;
  bool out_of_memory = false;
  char *options = NULL;
  PQconninfoOption *opts = PQconninfoParse(pool->conninfo, NULL);
  if (opts) {
    for (PQconninfoOption *o = opts; o->keyword; o++) {
      if (!o->val || !*o->val) continue;
      if (strcmp(o->keyword, "connect_timeout") == 0) has_timeout = true;
      for (size_t i = 0; i < TC_COUNT(defaults); i++)
        if (strcmp(o->keyword, defaults[i][0]) == 0) has_default[i] = true;
      if (strcmp(o->keyword, "options") == 0) {
        options = tc_strdup(o->val);
        out_of_memory = options == NULL;
      }
    }
    PQconninfoFree(opts);
  }
  const char *session_opts = "-c jit=off -c enable_seqscan=off";
  char *merged = NULL;
  if (options) {
    size_t len = strlen(options) + strlen(session_opts) + 2;
    merged = tc_malloc(len);
    if (merged) snprintf(merged, len, "%s %s", options, session_opts);
    else out_of_memory = true;
    tc_free(options);
  }
  if (out_of_memory) {
    tc_free(merged);
    return NULL; /* Never connect without the options the URL asked for. */
  }
  const char *keys[4 + TC_COUNT(defaults) + 1];
  const char *vals[4 + TC_COUNT(defaults) + 1];
  int n = 0;
  keys[n] = "dbname", vals[n++] = pool->conninfo;
  keys[n] = "fallback_application_name", vals[n++] = "tasker_core";
  keys[n] = "options", vals[n++] = merged ? merged : session_opts;
  if (!has_timeout) keys[n] = "connect_timeout", vals[n++] = timeout;
  for (size_t i = 0; i < TC_COUNT(defaults); i++)
    if (!has_default[i]) keys[n] = defaults[i][0], vals[n++] = defaults[i][1];
  keys[n] = NULL, vals[n] = NULL;
  PGconn *conn = PQconnectdbParams(keys, vals, 1);
  tc_free(merged);
  return conn;
}

int tc_database_url_check(const char *url, tc_error_t *err) {
  char *errmsg = NULL;
  PQconninfoOption *opts = url ? PQconninfoParse(url, &errmsg) : NULL;
  if (opts) {
    PQconninfoFree(opts);
    return TC_OK;
  }
  bool oom = url && !errmsg; /* libpq gives no message only when it ran out of memory */
  PQfreemem(errmsg);
  if (oom) return tc_error_set(err, TC_ENOMEM, "out of memory checking database_url");
  return tc_error_set(err, TC_ECONFIG,
                      "database_url is not a valid PostgreSQL URL or connection string (libpq cannot parse it; "
                      "in a URL, percent-encode %%, @, : and / in the user name and password, e.g. %% as %%25)");
}

void tc_pg_scrub(PGconn *conn, const char *msg, char *dst, size_t cap) {
  bool oom = false;
  char *masked = tc_redact_text(msg, &oom);
  const char *text = masked ? masked : oom ? "(message withheld: out of memory masking it)" : msg;
  const char *pw = conn ? PQpass(conn) : NULL;
  size_t n = 0, pw_len = pw ? strlen(pw) : 0;
  dst[0] = '\0';
  for (const char *p = text; *p && n + 1 < cap;) {
    if (pw_len >= 2 && strncmp(p, pw, pw_len) == 0) {
      n += (size_t)snprintf(dst + n, cap - n, "%s", "***REDACTED***");
      if (n >= cap) n = cap - 1;
      p += pw_len;
    } else {
      dst[n++] = *p++;
      dst[n] = '\0';
    }
  }
  while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' ')) dst[--n] = '\0';
  tc_free(masked);
}

/* Server notices and warnings (and a FATAL the server sends before closing an idle session) go
 * through the engine log instead of libpq's default, which prints them on stderr. NOTICE, INFO
 * and LOG are informational (e.g. "relation already exists, skipping" from a migration), so
 * they are logged at info; WARNING at warn; DEBUG at debug; anything graver at warn, since the
 * statement or connection that failed reports the error itself. */
static void notice_receiver(void *arg, const PGresult *res) {
  tc_runtime_t *rt = arg;
  const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (!severity) severity = PQresultErrorField(res, PG_DIAG_SEVERITY);
  if (!severity) severity = "NOTICE";
  tc_log_level_t level = TC_LOG_WARN;
  if (strcmp(severity, "NOTICE") == 0 || strcmp(severity, "INFO") == 0 || strcmp(severity, "LOG") == 0)
    level = TC_LOG_INFO;
  else if (strncmp(severity, "DEBUG", 5) == 0)
    level = TC_LOG_DEBUG;
  if (!tc_log_enabled(rt, level)) return;
  const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  json_object *fields = json_object_new_object();
  if (fields) {
    json_object_object_add(fields, "pg_severity", json_object_new_string(severity));
    if (sqlstate) json_object_object_add(fields, "sqlstate", json_object_new_string(sqlstate));
  }
  char msg[900];
  tc_pg_scrub(NULL, primary ? primary : PQresultErrorMessage(res), msg, sizeof msg);
  tc_log_fields(rt, level, "pg_notice", fields, "%s", msg);
  json_object_put(fields);
}

int tc_db_connect(tc_pool_t *pool, PGconn **out, tc_error_t *err) {
  PGconn *conn = connect_now(pool);
  if (!conn) return tc_error_set(err, TC_ENOMEM, "out of memory opening a database connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    char msg[900];
    tc_pg_scrub(conn, PQerrorMessage(conn), msg, sizeof msg);
    tc_error_set(err, TC_EDB, "database connection failed: %s", msg);
    PQfinish(conn);
    return TC_EDB;
  }
  PQsetNoticeReceiver(conn, notice_receiver, pool->rt);
  *out = conn;
  return TC_OK;
}

/* Like tc_pool_acquire; *fresh tells whether the connection was just opened. */
static int pool_acquire(tc_pool_t *pool, PGconn **out, bool *fresh, tc_error_t *err);

int tc_pool_acquire(tc_pool_t *pool, PGconn **out, tc_error_t *err) {
  bool fresh;
  return pool_acquire(pool, out, &fresh, err);
}

static int pool_acquire(tc_pool_t *pool, PGconn **out, bool *fresh, tc_error_t *err) {
  struct timespec deadline;
  tc_deadline(&deadline, pool->acquire_timeout_ms);
  pthread_mutex_lock(&pool->mu);
  for (;;) {
    if (pool->closed) {
      pthread_mutex_unlock(&pool->mu);
      return tc_error_set(err, TC_ESTOPPED, "the connection pool is closed");
    }
    if (pool->n_idle > 0) {
      PGconn *conn = pool->idle[--pool->n_idle];
      pthread_mutex_unlock(&pool->mu);
      if (PQstatus(conn) == CONNECTION_OK) {
        *out = conn;
        *fresh = false;
        return TC_OK;
      }
      PQfinish(conn);  /* Broken while idle (server restart): replace it below. */
      pthread_mutex_lock(&pool->mu);
      pool->n_open--;
      continue;
    }
    if (pool->n_open < pool->max) {
      pool->n_open++;
      pthread_mutex_unlock(&pool->mu);
      PGconn *conn = NULL;
      int rc = tc_db_connect(pool, &conn, err);
      if (rc != TC_OK) {
        pthread_mutex_lock(&pool->mu);
        pool->n_open--;
        pthread_cond_signal(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
        return rc;
      }
      *out = conn;
      *fresh = true;
      return TC_OK;
    }
    int rc = pthread_cond_timedwait(&pool->cv, &pool->mu, &deadline);
    if (rc == ETIMEDOUT) {
      int max = pool->max;
      pthread_mutex_unlock(&pool->mu);
      return tc_error_set(err, TC_ETIMEDOUT,
                          "no database connection free within %d ms (pool_size %d)",
                          pool->acquire_timeout_ms, max);
    }
  }
}

void tc_pool_release(tc_pool_t *pool, PGconn *conn) {
  if (!conn) return;
  bool healthy = PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE;
  pthread_mutex_lock(&pool->mu);
  if (healthy && !pool->closed && pool->n_idle < pool->max) {
    pool->idle[pool->n_idle++] = conn;
    conn = NULL;
  } else {
    pool->n_open--;
  }
  pthread_cond_signal(&pool->cv);
  pthread_mutex_unlock(&pool->mu);
  if (conn) PQfinish(conn);
}

/* Runs a parameterized statement; on success *res holds the result. */
static int run(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **res,
               tc_error_t *err) {
  PGresult *r = n > 0 ? PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0) : PQexec(conn, sql);
  if (!r) return tc_error_from_pg(err, conn, NULL, "query failed");
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    int code = tc_error_from_pg(err, conn, r, "query failed");
    PQclear(r);
    return code;
  }
  *res = r;
  return TC_OK;
}

/* Results may nest deeper than json-c's default limit of 32 levels. */
#define TC_JSON_MAX_DEPTH 128

PGresult *tc_db_pipeline_next(PGconn *conn, ExecStatusType want, tc_error_t *err) {
  PGresult *r = PQgetResult(conn);
  if (!r) {
    if (err->code == TC_OK) tc_error_from_pg(err, conn, NULL, "a pipelined statement got no answer");
    return NULL;
  }
  ExecStatusType status = PQresultStatus(r);
  if (status != PGRES_PIPELINE_SYNC) {
    PGresult *end = PQgetResult(conn);
    if (end) {
      PQclear(end);
      PQclear(r);
      tc_error_set(err, TC_EDB, "a pipelined statement answered more than once");
      return NULL;
    }
  }
  if (status != want) {
    /* An aborted statement follows the one that failed: keep that one's error. */
    if (status != PGRES_PIPELINE_ABORTED && err->code == TC_OK) tc_error_from_pg(err, conn, r, "statement failed");
    else if (err->code == TC_OK) tc_error_set(err, TC_EDB, "the pipeline was aborted");
    PQclear(r);
    return NULL;
  }
  return r;
}

/* One tokener per thread, kept: a new one allocates its parse stack (kilobytes), and on the
 * step path a large allocation per parse made glibc consolidate its free lists each time. */
static pthread_key_t tokener_key;
static pthread_once_t tokener_once = PTHREAD_ONCE_INIT;
static bool tokener_key_ok;

static void tokener_free(void *tok) { json_tokener_free(tok); }

static void tokener_key_init(void) { tokener_key_ok = pthread_key_create(&tokener_key, tokener_free) == 0; }

static json_tokener *thread_tokener(void) {
  pthread_once(&tokener_once, tokener_key_init);
  json_tokener *tok = tokener_key_ok ? pthread_getspecific(tokener_key) : NULL;
  if (tok) {
    json_tokener_reset(tok);
    return tok;
  }
  tok = json_tokener_new_ex(TC_JSON_MAX_DEPTH);
  if (tok && tokener_key_ok && pthread_setspecific(tokener_key, tok) == 0) return tok;
  json_tokener_free(tok);
  return NULL;
}

int tc_json_parse_text(const char *text, json_object **out, tc_error_t *err) {
  json_tokener *tok = thread_tokener();
  if (!tok) return tc_error_set(err, TC_ENOMEM, "out of memory parsing JSON");
  json_object *obj = json_tokener_parse_ex(tok, text, (int)strlen(text) + 1); /* + NUL ends a bare number */
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  if (jerr != json_tokener_success) {
    json_object_put(obj);
    return tc_error_set(err, TC_EDB, "the database returned invalid JSON: %s",
                        json_tokener_error_desc(jerr));
  }
  *out = obj; /* May be NULL for the JSON literal null. */
  return TC_OK;
}

int tc_db_query_json(PGconn *conn, const char *sql, int n, const char *const *params,
                     json_object **out, tc_error_t *err) {
  PGresult *res = NULL;
  int rc = run(conn, sql, n, params, &res, err);
  if (rc != TC_OK) return rc;
  json_object *value = NULL;
  if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
    rc = tc_json_parse_text(PQgetvalue(res, 0, 0), &value, err);
  PQclear(res);
  if (rc == TC_OK) *out = value;
  return rc;
}

int tc_db_query_json_rows(PGconn *conn, const char *sql, int n, const char *const *params,
                          json_object **out, tc_error_t *err) {
  PGresult *res = NULL;
  int rc = run(conn, sql, n, params, &res, err);
  if (rc != TC_OK) return rc;
  json_object *rows = json_object_new_array();
  if (!rows) {
    PQclear(res);
    return tc_error_set(err, TC_ENOMEM, "out of memory reading query rows");
  }
  int count = PQntuples(res);
  for (int i = 0; i < count && rc == TC_OK; i++) {
    json_object *value = NULL;
    if (!PQgetisnull(res, i, 0)) rc = tc_json_parse_text(PQgetvalue(res, i, 0), &value, err);
    if (rc == TC_OK && json_object_array_add(rows, value) != 0) {
      json_object_put(value);
      rc = tc_error_set(err, TC_ENOMEM, "out of memory reading query rows");
    }
  }
  PQclear(res);
  if (rc != TC_OK) {
    json_object_put(rows);
    return rc;
  }
  *out = rows;
  return TC_OK;
}

int tc_db_prepare(PGconn *conn, const char *name, const char *sql, int n, tc_error_t *err) {
  PGresult *r = PQprepare(conn, name, sql, n, NULL);
  if (!r) return tc_error_from_pg(err, conn, NULL, "prepare failed");
  int rc = TC_OK;
  if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = tc_error_from_pg(err, conn, r, "prepare failed");
  PQclear(r);
  return rc;
}

int tc_db_query_prepared_json(PGconn *conn, const char *name, int n, const char *const *params, json_object **out,
                              tc_error_t *err) {
  PGresult *r = PQexecPrepared(conn, name, n, params, NULL, NULL, 0);
  if (!r) return tc_error_from_pg(err, conn, NULL, "query failed");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    int code = tc_error_from_pg(err, conn, r, "query failed");
    PQclear(r);
    return code;
  }
  json_object *value = NULL;
  int rc = TC_OK;
  if (PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0)) rc = tc_json_parse_text(PQgetvalue(r, 0, 0), &value, err);
  PQclear(r);
  if (rc == TC_OK) *out = value;
  return rc;
}

int tc_db_exec(PGconn *conn, const char *sql, int n, const char *const *params, tc_error_t *err) {
  PGresult *res = NULL;
  int rc = run(conn, sql, n, params, &res, err);
  if (rc == TC_OK) PQclear(res);
  return rc;
}

bool tc_db_read_only_error(const tc_error_t *err) {
  /* read_only_sql_transaction: a write (or LISTEN) on a standby, or on a server in recovery. */
  return strcmp(err->sqlstate, "25006") == 0;
}

int tc_rt_with_conn(tc_runtime_t *rt, tc_conn_fn fn, void *arg, tc_error_t *err) {
  for (int attempt = 0;; attempt++) {
    PGconn *conn = NULL;
    bool fresh = false;
    int rc = pool_acquire(&rt->pool, &conn, &fresh, err);
    if (rc != TC_OK) return rc;
    bool was_idle = PQtransactionStatus(conn) == PQTRANS_IDLE;
    rc = fn(conn, arg, err);
    bool lost = PQstatus(conn) != CONNECTION_OK;
    bool read_only = rc == TC_EDB && tc_db_read_only_error(err);
    if (read_only) {
      /* The server this connection reached is (now) a standby: it must never be used again, nor
       * the idle ones opened to the same server. The statement wrote nothing, so it runs again. */
      PQfinish(conn);
      pthread_mutex_lock(&rt->pool.mu);
      rt->pool.n_open--;
      pthread_cond_signal(&rt->pool.cv);
      pthread_mutex_unlock(&rt->pool.mu);
    } else {
      tc_pool_release(&rt->pool, conn);
    }
    if (rc == TC_EDB && (read_only || (lost && !fresh)) && was_idle && attempt == 0) {
      pool_flush_idle(&rt->pool);
      tc_log(rt, TC_LOG_INFO, "stale_connection_replaced",
             read_only ? "a pooled connection reached a read-only server; retrying on a new one"
                       : "a pooled connection was lost; retrying on a new one");
      continue;
    }
    return rc;
  }
}

typedef int (*query_fn)(PGconn *, const char *, int, const char *const *, json_object **, tc_error_t *);

typedef struct {
  query_fn fn;
  const char *sql;
  int n;
  const char *const *params;
  json_object **out;
} query_args_t;

static int run_query(PGconn *conn, void *arg, tc_error_t *err) {
  query_args_t *q = arg;
  return q->fn(conn, q->sql, q->n, q->params, q->out, err);
}

int tc_rt_query_json(tc_runtime_t *rt, const char *sql, int n, const char *const *params,
                     json_object **out, tc_error_t *err) {
  query_args_t q = {tc_db_query_json, sql, n, params, out};
  return tc_rt_with_conn(rt, run_query, &q, err);
}

int tc_rt_query_json_rows(tc_runtime_t *rt, const char *sql, int n, const char *const *params,
                          json_object **out, tc_error_t *err) {
  query_args_t q = {tc_db_query_json_rows, sql, n, params, out};
  return tc_rt_with_conn(rt, run_query, &q, err);
}
