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
/* The same from a SQLSTATE (may be NULL) and a message: "what: msg", the code mapped from state. */
int tc_error_from_state(tc_error_t *err, const char *state, const char *what, const char *msg);

/* TC_OK for a valid UUID, else TC_EINVAL naming what ("Invalid UUID for task_uuid: ..."). */
static inline int tc_uuid_require(const char *value, const char *what, tc_error_t *err) {
  if (tc_uuid_valid(value)) return TC_OK;
  return tc_error_set(err, TC_EINVAL, "Invalid UUID for %s: %s", what, value ? value : "(nil)");
}

/* Milliseconds on the monotonic clock. */
int64_t tc_now_ms(void);
/* Absolute CLOCK_REALTIME deadline ms from now, for pthread_cond_timedwait. */
void tc_deadline(struct timespec *ts, int64_t ms_from_now);

/* A copy of in with every secret value replaced (SPEC 6.2's rule); *paths: the dotted paths
 * (tc_redact.c). */
int tc_redact(json_object *in, json_object **out, json_object **paths, tc_error_t *err);
/* Redacts v itself (an object or array), appending the paths replaced to paths. names_under NULL:
 * both rules everywhere; else secret names count only below keys called names_under (a template's
 * "initialization": a JSON Schema property called token is no secret), shapes everywhere. */
int tc_redact_in_place(json_object *v, const char *names_under, json_object *paths, tc_error_t *err);
/* s with the credentials it carries masked (the userinfo of a URL, the value of a secret-named
 * key=value pair) as a new string, or NULL when it carries none (*oom: NULL for want of memory). */
char *tc_redact_text(const char *s, bool *oom);
/* Writes libpq's msg into dst (cap bytes, trailing newline trimmed) with credentials masked: URL
 * userinfo and secret-named key=value pairs (tc_redact_text) and the connection's password
 * (PQpass(conn)) wherever it appears. Every libpq message the engine passes on goes through it. */
void tc_pg_scrub(PGconn *conn, const char *msg, char *dst, size_t cap);

/* ---- JSON helpers (tc_json.c). ---- */
/* obj[key], borrowed; NULL when obj is NULL or has no such key. */
json_object *tc_json_get(json_object *obj, const char *key);
/* Reads the optional integer obj[key] within [lo, hi] into *value (left alone when absent); a
 * value of another type or out of range fails with code and "<what><key> must be an integer
 * between lo and hi". */
int tc_json_opt_int(json_object *obj, const char *key, int lo, int hi, int *value, int code, const char *what,
                    tc_error_t *err);
/* The same for several keys of obj, in order; the first failure ends it. */
typedef struct tc_int_opt {
  const char *key;
  int lo, hi;
  int *value;
} tc_int_opt_t;
int tc_json_opt_ints(json_object *obj, const tc_int_opt_t *opts, size_t n, int code, const char *what,
                     tc_error_t *err);
#define TC_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- A bounded FIFO of json values (tc_ring.c); the owner locks around every call. ---- */
typedef struct tc_ring {
  json_object **items;
  int cap, head, count;
} tc_ring_t;
/* 0, or -1 when out of memory. */
int tc_ring_init(tc_ring_t *r, int cap);
/* Releases the values still queued and the storage. */
void tc_ring_free(tc_ring_t *r);
/* Take the reference; false (the caller keeps it) when the ring is full. */
bool tc_ring_push(tc_ring_t *r, json_object *v);
bool tc_ring_push_front(tc_ring_t *r, json_object *v);
/* The oldest value (the caller's reference), or NULL when empty. */
json_object *tc_ring_pop(tc_ring_t *r);
/* The i-th oldest value, borrowed; 0 <= i < count. */
json_object *tc_ring_at(const tc_ring_t *r, int i);

/* ---- Task states (tc_wait.c). ---- */
/* The task states that are not final (all but complete, error, cancelled, resolved_manually), listed
 * so that "status IN (...)" is a condition of tasks_status_created_idx. */
#define TC_UNFINISHED_TASK_STATES_SQL                                                                       \
  "'pending', 'initializing', 'enqueuing_steps', 'steps_in_process', 'evaluating_results', "               \
  "'waiting_for_dependencies', 'waiting_for_retry', 'blocked_by_failures'"
/* Whether a task in this state is finished (complete, error, cancelled, resolved_manually). */
bool tc_task_state_terminal(const char *status);

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

/* Parses JSON text (nesting up to 128 levels) into *out, a new reference (NULL for the literal
 * null); TC_EDB "the database returned invalid JSON" otherwise. */
int tc_json_parse_text(const char *text, json_object **out, tc_error_t *err);

/* Runs sql with text parameters and expects at most one row whose first column is JSON text;
 * *out is the parsed value (a new reference) or NULL for no row / SQL NULL. */
int tc_db_query_json(PGconn *conn, const char *sql, int n, const char *const *params,
                     json_object **out, tc_error_t *err);
/* Same, collecting the first column of every row into a new JSON array. */
int tc_db_query_json_rows(PGconn *conn, const char *sql, int n, const char *const *params,
                          json_object **out, tc_error_t *err);
/* Prepares a named statement on conn (once per connection). */
int tc_db_prepare(PGconn *conn, const char *name, const char *sql, int n, tc_error_t *err);
/* The next result of a pipeline, which must have status want; NULL (err set, keeping an error
 * already there: an aborted statement follows the one that failed) otherwise. Reads the NULL that
 * ends each statement's results, but not past a sync. */
PGresult *tc_db_pipeline_next(PGconn *conn, ExecStatusType want, tc_error_t *err);
/* tc_db_query_json for a statement prepared with tc_db_prepare. */
int tc_db_query_prepared_json(PGconn *conn, const char *name, int n, const char *const *params, json_object **out,
                              tc_error_t *err);
/* Runs a statement (or several, with n == 0) that returns no rows of interest. */
int tc_db_exec(PGconn *conn, const char *sql, int n, const char *const *params, tc_error_t *err);

/* Whether err is the database refusing a write because it is read-only (a standby). */
bool tc_db_read_only_error(const tc_error_t *err);

/* Runs fn on a pooled connection. A pooled connection that died while idle (server restart,
 * failover) makes fn fail on its first statement; then the idle connections are dropped and fn runs
 * once more on a new one. A connection whose server refused a write as read-only (a standby) is
 * closed, never pooled again, and fn runs once more the same way. fn must therefore do nothing
 * before its first statement reaches the server. */
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
#define TC_DOMAIN_COUNTERS 10
struct tc_runtime {
  tc_pool_t pool;
  char *database_url;
  volatile int log_level;
  pthread_mutex_t log_mu;       /* guards sink, sink_data */
  tc_log_sink_fn sink;
  void *sink_data;
  pid_t pid;
  pthread_mutex_t events_mu;    /* guards events: stats readers on other threads vs. free */
  tc_events_t *events;          /* lifecycle events, when started (tc_events.c) */
  int64_t domain_counters[TC_DOMAIN_COUNTERS]; /* tc_domain.c; atomic */
};

/* A domain event name: dotted lowercase words, e.g. payment.processed (tc_domain.c). */
bool tc_domain_event_name_valid(const char *s);

/* Serializes a JSON value without spaces; the string belongs to obj (tc_json.c). */
const char *tc_json_str(json_object *obj);

/* ---- Embedded schema (generated tc_migrations.h, tc_migrate.c): a migration
 * (version >= 1) or a function file (version 0), with the SHA-256 of its text. ---- */
typedef struct tc_migration {
  int version;
  const char *name;
  const char *checksum;
  const char *sql;
} tc_migration_t;
/* The name of the first function file whose checksum in recorded ({name: checksum}, may be NULL)
 * differs from this library's, or NULL when all are current. */
const char *tc_schema_stale_function_file(json_object *recorded);

/* ---- Step events built from the claim's rows, with a cache of step definitions
 * (tc_step_event.c). ---- */
typedef struct tc_step_defs tc_step_defs_t;
int tc_step_defs_new(tc_step_defs_t **out, tc_error_t *err);
void tc_step_defs_free(tc_step_defs_t *d);
/* The event a handler sees for one row of tasker.step_event; fetches the template's step
 * definitions through rt's pool when they are not cached. The row keeps its references. */
int tc_step_event_build(tc_step_defs_t *defs, tc_runtime_t *rt, json_object *row, json_object **out,
                        tc_error_t *err);

/* ---- Group commit of a worker's results (tc_flush.c). ---- */
typedef struct tc_flusher tc_flusher_t;
typedef struct tc_flush_item tc_flush_item_t;
int tc_flusher_new(tc_runtime_t *rt, const char *worker_uuid, const char *ns_literal, int visibility_s,
                   int max_batch, tc_flusher_t **out, tc_error_t *err);
/* Submits one result and returns once the transaction that applied it committed (or failed):
 * *outcome is its outcome, *next a step claimed for the caller (claim_next) or NULL. A caller that
 * led the flush and had to go on leading for other results gives its next step to the worker's
 * queue through the sink instead: *next is NULL and *next_moved true. */
int tc_flusher_submit(tc_flusher_t *f, const char *step_uuid, const char *claim_token, json_object *result,
                      bool claim_next, json_object **outcome, json_object **next, bool *next_moved,
                      tc_error_t *err);
/* What the flusher tells the worker of a posted result once its transaction committed (rc TC_OK),
 * or once it gave up on it (a failure that outlived its retries, or the worker stopping). */
typedef struct {
  const char *step_uuid, *claim_token;
  bool success;          /* the result reported a success */
  int rc;
  const tc_error_t *err;
  json_object *outcome;  /* borrowed; NULL unless rc is TC_OK */
  json_object *next;     /* borrowed: a step row claimed or handed over into the result's slot */
} tc_flush_report_t;
typedef void (*tc_flush_done_fn)(void *sink, const tc_flush_report_t *report);
/* A step row (borrowed) that takes the slot of the leader's own result: the leader went on
 * leading, so the step goes to the worker's queue. */
typedef void (*tc_flush_next_fn)(void *sink, json_object *row);
void tc_flusher_set_sink(tc_flusher_t *f, tc_flush_done_fn on_done, tc_flush_next_fn on_next, void *sink);
/* Posts a plain result (a success without domain events) without waiting: *posted is true when
 * another thread is leading a flush, which takes the result along and reports it through the
 * sink; false when the caller must tc_flusher_submit it itself (nobody is flushing, the result is
 * not plain, no sink, the flusher is stopping). TC_EINVAL for a result over the size limit. Takes
 * no lock but the flusher's own and never waits for the database. */
int tc_flusher_post(tc_flusher_t *f, const char *step_uuid, const char *claim_token, json_object *result,
                    bool claim_next, bool *posted, tc_error_t *err);
/* From now on a posted result that fails is given up (reported with its error), not retried. */
void tc_flusher_stop(tc_flusher_t *f);
/* Flushes run, results they applied, results posted, the flushes' time, results submitted and not
 * yet answered. */
void tc_flusher_stats(tc_flusher_t *f, long long *flushes, long long *results, long long *posted, long long *flush_us,
                      int *waiting);
/* No submission may be waiting. */
void tc_flusher_free(tc_flusher_t *f);
/* In a forked child: closes the parent's socket without talking to the server. */
void tc_flusher_abandon(tc_flusher_t *f);

/* ---- Worker metrics (tc_metrics.c): counters and histograms per namespace of one worker. ---- */
#define TC_METRICS_BUCKETS 14 /* upper bounds in ms; one more slot counts +Inf */
#define TC_METRICS_WINDOW 5   /* minutes of results kept for the recent error rate */
extern const double tc_metrics_buckets_ms[TC_METRICS_BUCKETS];
typedef struct tc_histogram {
  uint64_t counts[TC_METRICS_BUCKETS + 1]; /* per bucket, not cumulative */
  uint64_t count;
  double sum;
} tc_histogram_t;
typedef struct tc_ns_metrics {
  char name[65];
  uint64_t claimed, completed, failed, retried, stale, tasks_completed, tasks_failed;
  tc_histogram_t exec, claim;
} tc_ns_metrics_t;
typedef struct tc_metrics tc_metrics_t;
tc_metrics_t *tc_metrics_new(char *const *namespaces, int n, int capacity);
void tc_metrics_free(tc_metrics_t *m);
/* A step event entered the worker's queue; claim_ms < 0 records no claim duration. */
void tc_metrics_claimed(tc_metrics_t *m, json_object *ev, double claim_ms);
/* A step event went to a handler: its execution time starts. */
void tc_metrics_started(tc_metrics_t *m, json_object *ev);
/* Its result was submitted; answer is complete_and_claim's answer (applied, step_status, task_status). */
void tc_metrics_finished(tc_metrics_t *m, const char *token, bool success, json_object *answer);
/* The step went back to the queue or was abandoned: no execution recorded. */
void tc_metrics_forget(tc_metrics_t *m, const char *token);
/* A copy of the per-namespace metrics (*out freed with tc_free) and the results of the last
 * TC_METRICS_WINDOW minutes. */
int tc_metrics_snapshot(tc_metrics_t *m, tc_ns_metrics_t **out, int *n, uint64_t *recent_ok, uint64_t *recent_err,
                        int64_t *uptime_ms);
/* The worker's metrics (owned by the worker). */
tc_metrics_t *tc_worker_metrics(tc_worker_t *w);

#endif /* TC_INTERNAL_H */
