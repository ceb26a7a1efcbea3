/*
 * tc_internal.h - declarations shared by the core's own files; never included by a binding.
 */
#ifndef TC_INTERNAL_H
#define TC_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>
#include <libpq-fe.h>

#include "tasker.h"

#define TC_UNUSED(x) ((void)(x))

/* Allocation wrappers: one place to count or replace allocations. */
void *tc_malloc(size_t n);
void *tc_calloc(size_t count, size_t n);
void *tc_realloc(void *p, size_t n);
char *tc_strdup(const char *s);
void tc_free(void *p);

/* Fills err (when non-NULL) and returns code. */
int tc_error_set(tc_error_t *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Fills err from a failed PGresult (or the connection when res is NULL); returns the mapped code. */
int tc_error_from_pg(tc_error_t *err, PGconn *conn, PGresult *res, const char *what);

/* Milliseconds on the monotonic clock. */
int64_t tc_now_ms(void);
/* Absolute CLOCK_REALTIME deadline ms from now, for pthread_cond_timedwait. */
void tc_deadline(struct timespec *ts, int64_t ms_from_now);

/* ---- Connection pool (tc_db.c). ----
 * Lock: pool->mu guards idle[], n_idle, n_open and closed. No connect or query runs under it. */
typedef struct tc_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *conninfo;
  int max;
  int n_open;
  int n_idle;
  bool closed;
  PGconn **idle;
  int connect_timeout_s;
  int acquire_timeout_ms;
  tc_runtime_t *rt;
} tc_pool_t;

int tc_pool_init(tc_pool_t *pool, tc_runtime_t *rt, const char *url, int max,
                 int connect_timeout_s, int acquire_timeout_ms, tc_error_t *err);
void tc_pool_destroy(tc_pool_t *pool);
void tc_pool_abandon(tc_pool_t *pool);
int tc_pool_acquire(tc_pool_t *pool, PGconn **out, tc_error_t *err);
/* Returns a connection; a broken one (or one inside a transaction) is closed instead. */
void tc_pool_release(tc_pool_t *pool, PGconn *conn);
/* Opens a new dedicated connection outside the pool (the worker's LISTEN connection). */
int tc_db_connect(tc_pool_t *pool, PGconn **out, tc_error_t *err);

/* Runs sql with text parameters and expects at most one row whose first column is JSON text;
 * *out is the parsed value (a new reference) or NULL for no row / SQL NULL. */
int tc_db_query_json(PGconn *conn, const char *sql, int n, const char *const *params,
                     json_object **out, tc_error_t *err);
/* Same, collecting the first column of every row into a new JSON array. */
int tc_db_query_json_rows(PGconn *conn, const char *sql, int n, const char *const *params,
                          json_object **out, tc_error_t *err);
/* Runs a statement (or several, with n == 0) that returns no rows of interest. */
int tc_db_exec(PGconn *conn, const char *sql, int n, const char *const *params, tc_error_t *err);

/* Runs fn on a pooled connection. A pooled connection that died while idle (server restart,
 * failover) makes fn fail on its first statement; then the idle connections are dropped and fn runs
 * once more on a new one. fn must therefore do nothing before its first statement reaches the
 * server. */
typedef int (*tc_conn_fn)(PGconn *conn, void *arg, tc_error_t *err);
int tc_rt_with_conn(tc_runtime_t *rt, tc_conn_fn fn, void *arg, tc_error_t *err);

/* Acquires a pooled connection, runs tc_db_query_json, releases (via tc_rt_with_conn). */
int tc_rt_query_json(tc_runtime_t *rt, const char *sql, int n, const char *const *params,
                     json_object **out, tc_error_t *err);
int tc_rt_query_json_rows(tc_runtime_t *rt, const char *sql, int n, const char *const *params,
                          json_object **out, tc_error_t *err);

/* Runs the staleness detector on a connection the caller owns (tc_operations.c). */
int tc__detect_stale_on(PGconn *conn, int limit, int threshold_minutes, int lifetime_hours, bool dry_run,
                        json_object **out, tc_error_t *err);

/* ---- Runtime (tc_runtime.c). ---- */
struct tc_runtime {
  tc_pool_t pool;
  char *database_url;
  volatile int log_level;
  pthread_mutex_t log_mu;       /* guards sink, sink_data */
  tc_log_sink_fn sink;
  void *sink_data;
  pid_t pid;
};

/* Serializes a JSON value without spaces; the string belongs to obj. */
const char *tc_json_str(json_object *obj);

/* ---- Embedded migrations (generated tc_migrations.h, used by tc_migrate.c). ---- */
typedef struct tc_migration {
  int version;
  const char *name;
  const char *sql;
} tc_migration_t;

#endif /* TC_INTERNAL_H */
