/*
 * tasker.h - the public API of the tasker_core engine: plain C over libpq and json-c.
 *
 * Nothing here knows about Ruby; any language binding (Ruby today, Python and TypeScript later)
 * drives the engine through these functions.
 *
 * Conventions
 * - Every function that can fail returns 0 or a negative TC_E* code. On failure the optional
 *   tc_error_t is filled (code, SQLSTATE when the database raised, message naming the field or
 *   object at fault) and out-parameters are left untouched.
 * - json_object ownership: arguments are borrowed (never stored, never released); out-parameters
 *   named *out receive a NEW reference the caller must json_object_put exactly once.
 * - Thread safety: a tc_runtime_t and a tc_worker_t may be used from any number of threads at
 *   once. Every call that waits (database round trips, tc_worker_next_step) may block; a language
 *   binding releases its interpreter lock around them.
 * - Fork: the engine's threads and connections do not survive fork(). A child process must call
 *   tc_runtime_abandon on the inherited runtime and create its own.
 */
#ifndef TASKER_H
#define TASKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TC_VERSION "0.1.0"

/* Error codes. */
enum {
  TC_OK = 0,
  TC_EINVAL = -1,      /* bad argument or request: the message names the field */
  TC_ENOMEM = -2,      /* allocation failed */
  TC_EDB = -3,         /* database unreachable or a statement failed */
  TC_ENOTFOUND = -4,   /* unknown task, step or template */
  TC_ETEMPLATE = -5,   /* template failed validation: the message names template and step */
  TC_ECONFIG = -6,     /* invalid configuration */
  TC_ESTATE = -7,      /* operation not allowed in the object's current state */
  TC_ETIMEDOUT = -8,   /* a wait ran out (no step arrived, pool exhausted) */
  TC_ECANCELED = -9,   /* a wait was cancelled through its tc_cancel_t */
  TC_ESTOPPED = -10    /* the worker is stopping or stopped */
};

typedef struct tc_error {
  int code;
  char sqlstate[6];    /* "" unless the database raised */
  char message[1024];
} tc_error_t;

/* Returns a static name for an error code, e.g. "TC_ENOTFOUND". */
const char *tc_err_name(int code);
/* The name of the error class a binding raises for a code (TaskerCore::Errors::X in Ruby,
 * tasker_core.errors.X in Python), e.g. "NotFoundError"; "FFIError" for the others. */
const char *tc_err_class(int code);

typedef enum tc_log_level {
  TC_LOG_TRACE = 0, TC_LOG_DEBUG, TC_LOG_INFO, TC_LOG_WARN, TC_LOG_ERROR, TC_LOG_OFF
} tc_log_level_t;

/* Parses "trace".."error"/"off"; returns -1 for an unknown name. */
int tc_log_level_parse(const char *name);

/* A log sink receives one complete JSON line (no trailing newline). It may be called from any
 * engine thread and must not block for long. */
typedef void (*tc_log_sink_fn)(void *data, tc_log_level_t level, const char *json_line);

typedef struct tc_runtime tc_runtime_t;
typedef struct tc_worker tc_worker_t;

/* A cancel token for one blocking wait: tc_cancel_fire may be called from another thread (a
 * language's interrupt hook) any number of times; it never allocates or blocks for long. */
typedef struct tc_cancel {
  volatile int fired;
  tc_worker_t *worker;   /* set by the wait that uses it */
} tc_cancel_t;

/* Writes a version 7 UUID (36 chars + NUL) into buf. */
void tc_uuid_v7(char buf[37]);
/* True when s is a UUID in canonical 8-4-4-4-12 hex form. */
bool tc_uuid_valid(const char *s);
/* The number of characters (code points) in the UTF-8 text s of len bytes: every limit on text
 * counts characters, as PostgreSQL's varchar(n) does. */
size_t tc_utf8_chars(const char *s, size_t len);

/* ---- Runtime: configuration, connection pool, logging. ----
 * config keys (all optional but database_url):
 *   database_url (string), pool_size (1..500, default 10), connect_timeout_seconds (1..300,
 *   default 5), acquire_timeout_ms (default 10000), log_level (string, default "warn").
 */
int tc_runtime_new(json_object *config, tc_runtime_t **out, tc_error_t *err);
/* TC_OK when libpq can parse url (a postgresql:// URL or key=value connection string), else
 * TC_ECONFIG with a message that never repeats the URL or any part of it (libpq's own message
 * quotes the token it could not read, which may be the password). tc_runtime_new checks this. */
int tc_database_url_check(const char *url, tc_error_t *err);
/* Closes every connection. No worker may be running on it. Accepts NULL. */
void tc_runtime_free(tc_runtime_t *rt);
/* After fork(): closes the inherited sockets without talking to the server and without touching
 * locks the parent's threads may have held. Leaks the parent's memory on purpose. */
void tc_runtime_abandon(tc_runtime_t *rt);
/* ---- Logging (tc_log.c). ----
 * Every line is one JSON object: {"ts","level","event","message","pid", extra fields}. It goes to
 * the runtime's sink, or to stderr when none is installed (or rt is NULL). */
void tc_runtime_set_log_sink(tc_runtime_t *rt, tc_log_sink_fn fn, void *data);
/* Changes the level of a running runtime; TC_EINVAL for an unknown name. */
int tc_runtime_set_log_level(tc_runtime_t *rt, const char *name);
/* The name of a level ("trace".."off"). */
const char *tc_log_level_name(tc_log_level_t level);
/* True when a line of this level would be written. */
bool tc_log_enabled(tc_runtime_t *rt, tc_log_level_t level);
void tc_log(tc_runtime_t *rt, tc_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Like tc_log, with the members of the object fields (borrowed) added to the line. */
void tc_log_fields(tc_runtime_t *rt, tc_log_level_t level, const char *event, json_object *fields,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A bounded FIFO of log lines, filled by engine threads through tc_log_buffer_sink (install it
 * with tc_runtime_set_log_sink(rt, tc_log_buffer_sink, buffer)) and drained by one consumer
 * thread: tc_log_buffer_peek shows the oldest lines without removing them, tc_log_buffer_ack
 * removes them once delivered. A full buffer makes an appender wait up to wait_ms, then write its
 * line to stderr (counted in to_stderr); no line is dropped. Thread-safe; one consumer at a time. */
typedef struct tc_log_buffer tc_log_buffer_t;
typedef struct tc_log_line {
  tc_log_level_t level;
  const char *line;   /* owned by the buffer; valid until acknowledged */
} tc_log_line_t;
typedef struct tc_log_buffer_stats {
  int capacity, buffered;
  uint64_t appended, acked, to_stderr, max_buffered;
} tc_log_buffer_stats_t;
/* NULL when out of memory. */
tc_log_buffer_t *tc_log_buffer_new(int capacity, int wait_ms);
/* Frees the buffer and the lines still in it. No sink may still point at it. Accepts NULL. */
void tc_log_buffer_free(tc_log_buffer_t *b);
/* A tc_log_sink_fn: data is the buffer. */
void tc_log_buffer_sink(void *data, tc_log_level_t level, const char *json_line);
/* Waits up to timeout_ms for a line, then fills out[0..*n) with the oldest lines (at most max).
 * TC_ETIMEDOUT or TC_ECANCELED (tc_log_buffer_interrupt fired cancel) with *n == 0. */
int tc_log_buffer_peek(tc_log_buffer_t *b, int timeout_ms, tc_cancel_t *cancel, tc_log_line_t *out, int max,
                       int *n);
/* Removes the n oldest lines (the ones peek returned). */
void tc_log_buffer_ack(tc_log_buffer_t *b, int n);
/* fd (non-blocking, e.g. a pipe's write end; -1 for none) gets one byte whenever a line arrives in
 * an empty buffer: a consumer may wait on the read end instead of in peek, then peek with
 * timeout 0 until no line is left before waiting again. The buffer never closes fd. */
void tc_log_buffer_set_wake_fd(tc_log_buffer_t *b, int fd);
/* Fires cancel and wakes a waiting peek; safe from any thread. */
void tc_log_buffer_interrupt(tc_log_buffer_t *b, tc_cancel_t *cancel);
void tc_log_buffer_stats(tc_log_buffer_t *b, tc_log_buffer_stats_t *st);
/* Applies the embedded schema (safe concurrently: advisory lock): pending migrations in order, and
 * every function file whose text differs from the one the database recorded. *out: {"applied":
 * [versions...], "functions": [function files applied...], "current_version": n}. */
int tc_migrate(tc_runtime_t *rt, json_object **out, tc_error_t *err);
/* Highest migration version compiled into this library. */
int tc_schema_version(void);

/* ---- Templates. ----
 * tc_template_normalize validates a template (the JSON form of the YAML, seed 001's format) and
 * returns its normalized form: defaults applied, step types checked, dependencies known and
 * acyclic, each step marked "initial" when it is created with the task. No database access. */
int tc_template_normalize(json_object *raw, json_object **out, tc_error_t *err);
/* Normalizes and stores a template; *out: {"named_task_uuid", "namespace_name", "name",
 * "version", "step_count"}. */
int tc_template_register(tc_runtime_t *rt, json_object *raw, json_object **out, tc_error_t *err);

/* *out: {named_task_uuid, namespace_name, name, version, configuration (the normalized template),
 * registered_at, updated_at}; TC_ENOTFOUND names the template. */
int tc_template_get(tc_runtime_t *rt, const char *ns, const char *name, const char *version, json_object **out,
                    tc_error_t *err);

/* *out (new reference): the registered templates, optionally of namespace ns (NULL or "" for all),
 * ordered by namespace, name, version: [{named_task_uuid, namespace_name, name, version, description,
 * step_count, active_tasks (tasks not yet finished), registered_at, updated_at}]. */
int tc_template_list(tc_runtime_t *rt, const char *ns, json_object **out, tc_error_t *err);

/* Limits on template names, one definition each for the validator, the bindings' buffers and the
 * columns (varchar(n) counts characters; so does every check, with tc_utf8_chars). docs/templates.md
 * lists them. */
#define TC_NAMESPACE_MAX 29         /* letters, digits, underscores (task_namespaces.name's CHECK) */
#define TC_TEMPLATE_NAME_MAX 255    /* named_tasks.name */
#define TC_TEMPLATE_VERSION_MAX 50  /* named_tasks.version */
#define TC_STEP_NAME_MAX 128        /* workflow_steps.name, template_step_name */
#define TC_HANDLER_METHOD_MAX 128   /* workflow_steps.handler_method */
#define TC_BATCH_ID_MAX 32          /* a batch worker is named <worker_template>_<batch_id> */
#define TC_BATCH_WORKER_NAME_MAX (TC_STEP_NAME_MAX - 1 - TC_BATCH_ID_MAX)
#define TC_TEMPLATE_STEPS_MAX 1000

/* ---- Client (tc_client.c): seed 000's client API; SPEC 5's response fields. ----
 * Every read and change validates its arguments (uuids, ranges, states) before the database is
 * asked; unknown tasks and steps are TC_ENOTFOUND naming the uuid. Timestamps are naive ISO-8601
 * UTC strings. */
/* A task request's tags: at most this many, each at most TC_CLIENT_TAG_MAX_BYTES bytes. Every
 * claimed step's event carries them, so the context and the tags share one budget:
 * TC_CLIENT_REQUEST_MAX_BYTES serialized, together. */
#define TC_CLIENT_TAGS_MAX 100
#define TC_CLIENT_TAG_MAX_BYTES 128
#define TC_CLIENT_REQUEST_MAX_BYTES (1024 * 1024)
/* request: {name, namespace, version, context, initiator, source_system, reason, tags, priority,
 * correlation_id, parent_correlation_id, idempotency_key, requested_at}. *out: the task as
 * tc_client_get_task returns it, plus "created" (false: a task with the same identity existed and is
 * returned instead) and "step_count". */
int tc_client_create_task(tc_runtime_t *rt, json_object *request, json_object **out,
                          tc_error_t *err);
/* The most requests one tc_client_create_tasks call takes. */
#define TC_CLIENT_CREATE_TASKS_MAX 10000
/* requests: an array of tc_client_create_task requests (at most TC_CLIENT_CREATE_TASKS_MAX), created
 * in one transaction by one statement. Every request is validated first as tc_client_create_task
 * validates it; a refusal is TC_EINVAL whose message begins "requests[i]: " (i counts from 0) and
 * nothing is sent. The identity rules are create_task's, also between requests of the same batch
 * (a repeated identity answers the task of its first occurrence, "created": false). An error of
 * the database names its request the same way, and nothing is created. *out: an array of
 * tc_client_create_task answers in request order ([] for no requests, without a round trip). */
int tc_client_create_tasks(tc_runtime_t *rt, json_object *requests, json_object **out, tc_error_t *err);
/* Task creation on a connection of the caller's (inside a transaction of its own, say), in three
 * steps: the statement, validated exactly as tc_client_create_task(s) validate (the same errors,
 * before anything is sent); the caller runs it; the answer, checked as the engine checks its own.
 * The statement is *out = {"sql": text, "params": [text, ...]}: schema-qualified, with explicit
 * casts and text parameters, so it assumes nothing of the session (search_path and the like) and
 * takes no prepared statement (fine behind PgBouncer's transaction mode). It creates the task with
 * its steps, edges and transitions and NOTIFYs the workers, all in the caller's transaction: the
 * workers see the task when that commits, and a rollback leaves nothing. Needs no runtime. */
int tc_client_create_task_statement(json_object *request, json_object **out, tc_error_t *err);
/* The same for tc_client_create_tasks (no requests: a statement answering []). */
int tc_client_create_tasks_statement(json_object *requests, json_object **out, tc_error_t *err);
/* The first column of the statement's one row (NULL for SQL NULL) as tc_client_create_task answers
 * it; TC_EDB when it is not a task. */
int tc_client_create_task_answer(const char *text, json_object **out, tc_error_t *err);
/* The same for tc_client_create_tasks: n is the number of requests. */
int tc_client_create_tasks_answer(const char *text, size_t n, json_object **out, tc_error_t *err);
/* Fills err for the statement's failure on the caller's connection (its SQLSTATE, which may be
 * NULL, and primary message) as the engine's own create would have, and returns the code. A
 * database without the tasker schema (or without this version's functions) is TC_ECONFIG saying
 * so; a serialization failure or deadlock (REPEATABLE READ, SERIALIZABLE) is TC_EDB saying to
 * retry the transaction. */
int tc_client_statement_error(const char *sqlstate, const char *message, tc_error_t *err);
/* *out: the task with its execution summary and "steps" (SPEC 5 TaskResponse, SPEC 2.7 readiness). */
int tc_client_get_task(tc_runtime_t *rt, const char *task_uuid, json_object **out,
                       tc_error_t *err);
/* One page of tasks, newest first; ns, status, initiator and source_system may be NULL (no filter).
 * limit 1..1000, offset >= 0, status one of SPEC 2.1's task states, initiator and source_system
 * 1..128 characters. *out: {"tasks": [TaskResponse without "steps"], "pagination": {page, per_page,
 * total_count, total_pages, has_next, has_previous, next_cursor}}. Without with_total the matching
 * rows are not counted: total_count and total_pages are null, and has_next comes from reading one
 * row beyond the page. next_cursor (when has_next) continues with tc_client_list_tasks_after. */
int tc_client_list_tasks(tc_runtime_t *rt, int64_t limit, int64_t offset, const char *ns, const char *status,
                         const char *initiator, const char *source_system, bool with_total, json_object **out,
                         tc_error_t *err);
/* A page of tasks newest first after cursor (NULL: from the newest), by keyset, with the filters of
 * tc_client_list_tasks: {"tasks", "per_page", "has_next", "next_cursor" (the cursor of the next
 * page, or null)}. Nothing is counted, and a page deep in the list costs what the first does. */
int tc_client_list_tasks_after(tc_runtime_t *rt, int64_t limit, const char *cursor, const char *ns,
                               const char *status, const char *initiator, const char *source_system,
                               json_object **out, tc_error_t *err);
/* The most entries of tc_client_count_tasks's statuses. */
#define TC_CLIENT_COUNT_STATUSES_MAX 32
/* *count: the number of tasks of namespace ns (NULL: any) whose status is any of statuses[0..n_statuses)
 * (statuses NULL: any status; each one of SPEC 2.1's task states, repeats allowed; an empty list is
 * TC_EINVAL). One count(*) served by tasks_namespace_created_idx or tasks_status_created_idx. */
int tc_client_count_tasks(tc_runtime_t *rt, const char *ns, const char *const *statuses, size_t n_statuses,
                          int64_t *count, tc_error_t *err);
/* Cancels a task that has not finished: its pending, enqueued and waiting_for_retry steps and the task
 * become cancelled in one transaction; steps in progress finish, and their results never resume the
 * task. A finished task is TC_ESTATE naming its state. *out: {"cancelled": true, task_uuid, status,
 * previous_status, cancelled_steps, running_steps, cancelled_at}. */
int tc_client_cancel_task(tc_runtime_t *rt, const char *task_uuid, json_object **out, tc_error_t *err);
/* *out: array of steps (SPEC 5 StepResponse fields), in creation order. */
int tc_client_list_task_steps(tc_runtime_t *rt, const char *task_uuid, json_object **out,
                              tc_error_t *err);
/* *out: one step of the task (StepResponse); a step of another task is TC_ENOTFOUND. */
int tc_client_get_step(tc_runtime_t *rt, const char *task_uuid, const char *step_uuid, json_object **out,
                       tc_error_t *err);
/* *out: array of StepAuditResponse entries, newest first: every transition of the step with the
 * worker result it recorded, if any, and results refused for a stale claim (applied false). */
int tc_client_get_step_audit_history(tc_runtime_t *rt, const char *task_uuid, const char *step_uuid,
                                     json_object **out, tc_error_t *err);
/* One round trip: the database answers and its schema is at tc_schema_version() with every migration
 * applied and every function file current. An unreachable database (after connect_timeout_seconds) or a schema that is not current is
 * an answer, not an error: *out: {healthy, status ("healthy"/"unhealthy"), timestamp,
 * database_connected, response_time_ms, schema_version (when the database answered; 0 before any
 * migration), expected_schema_version, error (when unhealthy)}. Fails only for TC_ENOMEM or a closed runtime. */
int tc_client_health_check(tc_runtime_t *rt, json_object **out, tc_error_t *err);
/* ---- End of Client. ---- */

/* ---- Operations: operator actions, staleness (tc_operations.c), dead-letter queue (tc_dlq.c). ---- */
/* action: "reset_for_retry", "resolve_manually" or "complete_manually"; payload: {reason,
 * performed_by, result, metadata} (result required for complete_manually). The task re-evaluates;
 * *out: {task_uuid, step_uuid, action_type, step_status, task_status, enqueued}. */
int tc_step_operate(tc_runtime_t *rt, const char *task_uuid, const char *step_uuid, const char *action,
                    json_object *payload, json_object **out, tc_error_t *err);
/* options: batch_size, threshold_minutes (default 30), max_lifetime_hours (24), dry_run. *out: the
 * actions taken, one per stale task (DLQ entry + task error). */
int tc_detect_stale_tasks(tc_runtime_t *rt, json_object *options, json_object **out, tc_error_t *err);
/* task_uuid and status may be NULL (no filter). *out: array of entries, newest first. */
int tc_dlq_list(tc_runtime_t *rt, const char *task_uuid, const char *status, int limit, int offset,
                json_object **out, tc_error_t *err);
/* changes: {resolution_status, resolution_notes, resolved_by, metadata}. *out: the entry. */
int tc_dlq_update(tc_runtime_t *rt, const char *entry_uuid, json_object *changes, json_object **out,
                  tc_error_t *err);

/* ---- Reports (tc_reports.c): read-only figures for the dashboard and the DLQ routes. ----
 * report: "activity" (arg1 minutes 1..1440, arg2 bucket minutes 1..arg1: tasks finished and step
 * attempts ended per bucket, totals, error rates), "queue_depth" (per namespace: enqueued,
 * in_progress, waiting_for_retry, retry_due), "task_counts" (per namespace and state),
 * "namespaces" (the registered namespaces' names), "workers" (arg1 limit 1..1000: the registered
 * workers, alive first), "dlq_stats" (per dlq_reason), "dlq_investigation_queue" (arg1 limit:
 * pending entries by priority_score), "dlq_staleness" (arg1 limit, arg2 the steps_in_process
 * threshold in minutes 1..525600: active tasks by closeness to their threshold). Anything else is
 * TC_EINVAL naming report. */
int tc_report(tc_runtime_t *rt, const char *report, int arg1, int arg2, json_object **out, tc_error_t *err);

/* Waits up to timeout_ms for the task to reach a terminal state, without polling (LISTEN on the
 * task's channel). status receives the task's state. Returns TC_ETIMEDOUT (status holds the current
 * state), TC_ECANCELED, TC_ENOTFOUND. */
int tc_task_wait(tc_runtime_t *rt, const char *task_uuid, int timeout_ms, tc_cancel_t *cancel, char status[32],
                 tc_error_t *err);

/* ---- Worker: claims steps of its namespaces into a bounded in-memory queue. ----
 * options: namespaces (array of strings, required), concurrency (1..1000, default 10: the most
 * steps claimed but not yet completed), poll_interval_ms (default 1000), visibility_timeout_seconds
 * (default 30), deployment_mode ("Hybrid" default, "PollingOnly", "EventDrivenOnly"),
 * claim_on_complete (default true), staleness_check_interval_seconds (60; 0 off),
 * staleness_threshold_minutes (30), max_task_lifetime_hours (24).
 * The worker's claimer thread starts in tc_worker_start. */
int tc_worker_new(tc_runtime_t *rt, json_object *options, tc_worker_t **out, tc_error_t *err);
int tc_worker_start(tc_worker_t *w, tc_error_t *err);
/* Waits up to timeout_ms for the next claimed step; *out is its step event (SPEC 4.2 shape plus
 * "claim_token"). Returns TC_ETIMEDOUT, TC_ECANCELED (cancel fired) or TC_ESTOPPED. */
int tc_worker_next_step(tc_worker_t *w, int timeout_ms, tc_cancel_t *cancel, json_object **out,
                        tc_error_t *err);
void tc_cancel_fire(tc_cancel_t *cancel);
/* Puts a step event handed out by tc_worker_next_step back at the head of the queue when its
 * handler never started (the waiting thread was interrupted). Takes ownership of ev. */
void tc_worker_requeue(tc_worker_t *w, json_object *ev);
/* The largest step result envelope (serialized) the engine stores: every descendant's step event
 * carries it. A larger one is refused with TC_EINVAL naming its size (the step stays claimed). The
 * same limit holds for a checkpoint and for an operator's complete_manually result. */
#define TC_STEP_RESULT_MAX_BYTES (1024 * 1024)
/* Applies the result envelope of a step handed out by tc_worker_next_step; *out:
 * {applied, step_status, task_status, enqueued, next_steps}. With the worker option
 * claim_on_complete (default true) the same round trip claims the next step of the worker's
 * namespaces into the freed slot: when next_steps holds an event, the caller owns it as if
 * tc_worker_next_step had returned it. Works after tc_worker_stop too, so running
 * handlers can finish. On TC_EDB / TC_ETIMEDOUT, and on TC_EINVAL (a result refused, e.g. too
 * large, or by the database as bad data), the step stays claimed (and its claim alive): retry the
 * call (with another result after TC_EINVAL), or give up with tc_worker_abandon_step. */
int tc_worker_complete_step(tc_worker_t *w, const char *step_uuid, const char *claim_token,
                            json_object *result, json_object **out, tc_error_t *err);
/* Hands a plain result (a success without domain events) of a step handed out by
 * tc_worker_next_step to the flush another thread is leading, without waiting for it: *posted
 * true. The step keeps its slot and claim until that transaction commits; then the slot takes the
 * step claimed or handed over with the result (into the queue) or is freed. A failure of the
 * database is retried until twice the visibility timeout, a result the database refuses is
 * replaced by a permanent failure saying why; a result given up runs again when its claim expires.
 * *posted false (nobody is flushing, the result is not plain, the worker is stopping): submit it
 * with tc_worker_complete_step. Never waits for the database; TC_EINVAL for bad arguments or a
 * result over TC_STEP_RESULT_MAX_BYTES (not posted). */
int tc_worker_post_step(tc_worker_t *w, const char *step_uuid, const char *claim_token, json_object *result,
                        bool *posted, tc_error_t *err);
/* The next queued step without waiting: true with *out as tc_worker_next_step gives it, false
 * when none is queued (or the worker is stopping). */
bool tc_worker_try_next_step(tc_worker_t *w, json_object **out);
/* Saves a checkpoint ({cursor, items_processed, accumulated_results}) of a step handed out by
 * tc_worker_next_step, keeping its claim and slot; *out: {"applied": true, "event": the step's fresh
 * event, to run the handler again} or {"applied": false} when the claim is no longer current. */
int tc_worker_checkpoint_step(tc_worker_t *w, const char *step_uuid, const char *claim_token,
                              json_object *checkpoint, json_object **out, tc_error_t *err);
/* Frees the slot of a step whose result could not be submitted (tc_worker_complete_step kept
 * returning TC_EDB, or the host's handler thread ended without a result): the claim is no longer
 * kept alive and the step runs again after it expires. Only a claim still in flight counts: a
 * second call, or one for a claim already completed or requeued, changes nothing. */
void tc_worker_abandon_step(tc_worker_t *w, const char *claim_token);
/* The host declares its handler threads: delta +1 when it starts one, -1 when one ends; lost when
 * it ended while the worker was running. Once declared, the worker's status reports
 * handler_threads and handler_threads_lost, and readiness requires one thread per slot. */
void tc_worker_handler_threads(tc_worker_t *w, int delta, bool lost);
/* Stops claiming, wakes every waiter with TC_ESTOPPED, joins the claimer thread and gives claimed
 * but unstarted steps back to the queue. Idempotent. */
void tc_worker_stop(tc_worker_t *w);
/* *out: {worker_uuid, running, queued, in_flight, claimed_total, completed_total, ...}. */
int tc_worker_status(tc_worker_t *w, json_object **out, tc_error_t *err);
/* Stops if needed and frees. Accepts NULL. */
void tc_worker_free(tc_worker_t *w);
/* After fork(): abandons the parent's worker without joining or locking. */
void tc_worker_abandon(tc_worker_t *w);

/* ---- Observability (tc_observe.c and the files it dispatches to): SPEC 6-7's services of one
 * worker. ----
 * options (all optional): environment (string, "development"), worker_id (default
 * "worker_{uuid}"), config (object: the host's configuration, merged into config_runtime's answer
 * and shown redacted), circuit_breaker {failure_threshold (5), success_threshold (2),
 * timeout_seconds (30)} for the database probe, queue_depth_degraded (10000),
 * queue_depth_unhealthy (50000). The worker must outlive the services. */
typedef struct tc_obs tc_obs_t;
int tc_obs_new(tc_runtime_t *rt, tc_worker_t *w, json_object *options, tc_obs_t **out, tc_error_t *err);
void tc_obs_free(tc_obs_t *o);
/* Runs one service: health_basic, health_live, health_ready, health_detailed, metrics_worker,
 * metrics_prometheus (Prometheus text), metrics_events, templates_list, template_get,
 * template_validate, templates_cache_stats, templates_cache_clear, template_refresh,
 * config_runtime, config_environment (a plain string). args: {namespace, name, version,
 * include_cache_stats}. *text: a new string, released with tc_obs_text_free. Unknown templates
 * are TC_ENOTFOUND; template_refresh answers failures as {"success": false}. */
int tc_obs_call(tc_obs_t *o, const char *service, json_object *args, char **text, tc_error_t *err);
void tc_obs_text_free(char *text);

/* ---- Worker web server (tc_web.c, libmicrohttpd): the services above over HTTP GET. ----
 * options: bind_address ("127.0.0.1:8081"; IPv4 host:port, port 0 picks a free one), api_key (a
 * string: every request must carry it in api_key_header, default "X-API-Key"; also enables
 * DELETE /templates/cache and POST /templates/{ns}/{name}/{version}/refresh), threads (1..64,
 * default 4: the pool that serves every connection), max_connections (8..10000, default 256),
 * max_connections_per_client (default 16: per client IP address), connection_timeout_seconds
 * (1..3600, default 10: an idle connection, or one stuck inside a request, is closed). Requests are
 * answered on the server's own threads. obs must outlive the server; tc_web_stop waits for open
 * requests. */
typedef struct tc_web tc_web_t;
int tc_web_start(tc_runtime_t *rt, tc_obs_t *obs, json_object *options, tc_web_t **out, tc_error_t *err);
int tc_web_port(tc_web_t *web);
const char *tc_web_bind_address(tc_web_t *web);
void tc_web_stop(tc_web_t *web);

/* ---- Lifecycle events (tc_events.c): SPEC 8.1's catalogue for in-process subscribers. ----
 * tc_events_start starts a feeder thread that reads the transitions persisted from then on (by any
 * process) and turns each into its catalogue events: {event_name, category, task_uuid, task_id,
 * task_name, task_version, namespace, named_task_uuid, correlation_id, parent_correlation_id,
 * from_state, to_state, transition_event, transitioned_at, timestamp, attempt, metadata,
 * transition_uuid, execution_duration (terminal task events), and for step events step_uuid, step_id,
 * step_name, error_message and exception_class (failures)}. They wait in a bounded buffer
 * (buffer_size, default 10000; a full buffer drops and counts) until tc_events_next pops them, in
 * transition order per task. The step path gains no statement. options: buffer_size,
 * poll_interval_ms (default 50), batch_size (default 1000). One per runtime (TC_ESTATE). */
typedef struct tc_events tc_events_t;
int tc_events_start(tc_runtime_t *rt, json_object *options, tc_events_t **out, tc_error_t *err);
/* Pops the next event (*out, new reference); TC_ETIMEDOUT, TC_ECANCELED or TC_ESTOPPED (and the
 * buffer is empty) otherwise. */
int tc_events_next(tc_events_t *ev, int timeout_ms, tc_cancel_t *cancel, json_object **out, tc_error_t *err);
/* Fires cancel (when given) and wakes every tc_events_next: a language's interrupt hook. */
void tc_events_interrupt(tc_events_t *ev, tc_cancel_t *cancel);
/* Stops the feeder; waiting tc_events_next calls return TC_ESTOPPED once the buffer is empty. */
void tc_events_stop(tc_events_t *ev);
/* Stops and frees; no call may be using ev. Accepts NULL. */
void tc_events_free(tc_events_t *ev);
/* *out (new reference): the runtime's event counters {running, feeder_alive (its thread has not
 * returned), transitions_read, emitted, delivered, dropped, queued, buffer_size, polls, poll_errors}
 * (zeros when events never started). */
int tc_events_stats(tc_runtime_t *rt, json_object **out);
/* The catalogue names of one transition (kind "task" or "step", from NULL for a first state) into
 * names; returns how many (0..3). */
int tc_events_names(const char *kind, const char *from, const char *to, const char *names[3]);

/* ---- Domain events (tc_domain.c): SPEC 8.2. ----
 * A step's publishes_events are written by the engine with its result (the envelope's
 * "domain_events": the language worker's candidate DomainEvents, each with condition and
 * delivery_mode; durable and broadcast ones whose condition matches the outcome are stored in the
 * result's transaction). A DomainEvent is {event_id (UUID v7), event_name, event_version, payload,
 * metadata {task_uuid, step_uuid, step_name, namespace, correlation_id, fired_at, fired_by}}.
 *
 * tc_domain_publish stores one event outside a step result (delivery_mode durable, the default,
 * or broadcast; fast events are the language bus's alone): *out {event_id, written}.
 * tc_domain_read leases up to limit (1-1000) events of the modes (NULL: durable and broadcast)
 * that consumer has not acknowledged, for visibility_seconds: *out is an array of DomainEvents,
 * each with delivery_mode and delivery {consumer, read_count, stored_at}. An event whose lease
 * expires unacknowledged is read again (at least once); tc_domain_ack acknowledges event_ids (an
 * array of UUIDs) for the consumer, *out {acknowledged}, after which it is never read again by
 * that consumer. tc_domain_purge deletes events stored more than older_than_seconds ago: *out
 * {purged}. */
int tc_domain_publish(tc_runtime_t *rt, json_object *event, json_object **out, tc_error_t *err);
int tc_domain_read(tc_runtime_t *rt, const char *consumer, int limit, int visibility_seconds, json_object *modes,
                   json_object **out, tc_error_t *err);
int tc_domain_ack(tc_runtime_t *rt, const char *consumer, json_object *event_ids, json_object **out,
                  tc_error_t *err);
int tc_domain_purge(tc_runtime_t *rt, int older_than_seconds, json_object **out, tc_error_t *err);
/* Routing counters shown by metrics_events: durable_routed, fast_routed, broadcast_routed,
 * fast_delivery_errors, routing_errors, fast_dispatched, fast_dropped, subscriber_errors,
 * durable_delivered (added to) and subscribers (set). TC_EINVAL for another name. */
int tc_domain_count(tc_runtime_t *rt, const char *name, int64_t delta);
/* *out (new reference): every counter by name. */
int tc_domain_counters(tc_runtime_t *rt, json_object **out);

#ifdef __cplusplus
}
#endif
#endif /* TASKER_H */
