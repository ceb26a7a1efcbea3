/*
 * tc_client.c - the client API (seed 000, SPEC 5): task creation, reads, lists, cancellation, audit
 * history and the health check. Each call validates its arguments and runs one SQL function.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tc_internal.h"

/* SPEC 1.2 limits on a task's context (its bytes share TC_CLIENT_REQUEST_MAX_BYTES with the tags). */
#define TC_CONTEXT_MAX_BYTES TC_CLIENT_REQUEST_MAX_BYTES
#define TC_CONTEXT_MAX_DEPTH 10
#define TC_CONTEXT_MAX_KEYS 1000
#define TC_CONTEXT_MAX_STRING 10000

/* An error our SQL raised on purpose (SQLSTATE TKxxx: not found, invalid, wrong state) already
 * names the object; it loses the generic "query failed: " prefix. */
static void strip_query_prefix(tc_error_t *err) {
  static const char prefix[] = "query failed: ";
  if (err && strncmp(err->sqlstate, "TK", 2) == 0 && strncmp(err->message, prefix, sizeof prefix - 1) == 0)
    memmove(err->message, err->message + sizeof prefix - 1, strlen(err->message) - (sizeof prefix - 1) + 1);
}

/* Runs a client statement on a pooled connection. */
static int client_query(tc_runtime_t *rt, const char *sql, int n, const char *const *params, json_object **out,
                        tc_error_t *err) {
  int rc = tc_rt_query_json(rt, sql, n, params, out, err);
  if (rc != TC_OK) strip_query_prefix(err);
  return rc;
}

/* Walks the context checking depth, keys per object and string length; path names the culprit. */
static int check_context(json_object *v, int depth, char *path, size_t cap, tc_error_t *err) {
  if (depth > TC_CONTEXT_MAX_DEPTH)
    return tc_error_set(err, TC_EINVAL, "context is nested deeper than %d levels at %s",
                        TC_CONTEXT_MAX_DEPTH, path);
  size_t base = strlen(path);
  switch (json_object_get_type(v)) {
    case json_type_string:
      if (tc_utf8_chars(json_object_get_string(v), (size_t)json_object_get_string_len(v)) > TC_CONTEXT_MAX_STRING)
        return tc_error_set(err, TC_EINVAL, "context string at %s is longer than %d characters",
                            path, TC_CONTEXT_MAX_STRING);
      return TC_OK;
    case json_type_object: {
      if (json_object_object_length(v) > TC_CONTEXT_MAX_KEYS)
        return tc_error_set(err, TC_EINVAL, "context object at %s has more than %d keys", path,
                            TC_CONTEXT_MAX_KEYS);
      json_object_object_foreach(v, key, child) {
        snprintf(path + base, cap - base, ".%s", key);
        int rc = check_context(child, depth + 1, path, cap, err);
        path[base] = '\0';
        if (rc != TC_OK) return rc;
      }
      return TC_OK;
    }
    case json_type_array:
      for (size_t i = 0; i < json_object_array_length(v); i++) {
        snprintf(path + base, cap - base, "[%zu]", i);
        int rc = check_context(json_object_array_get_idx(v, i), depth + 1, path, cap, err);
        path[base] = '\0';
        if (rc != TC_OK) return rc;
      }
      return TC_OK;
    default:
      return TC_OK;
  }
}

static int opt_string(json_object *req, const char *key, size_t max, tc_error_t *err) {
  json_object *v = tc_json_get(req, key);
  if (!v) return TC_OK;
  if (!json_object_is_type(v, json_type_string))
    return tc_error_set(err, TC_EINVAL, "%s must be a string", key);
  if (tc_utf8_chars(json_object_get_string(v), (size_t)json_object_get_string_len(v)) > max)
    return tc_error_set(err, TC_EINVAL, "%s is longer than %zu characters", key, max);
  return TC_OK;
}

static int opt_uuid(json_object *req, const char *key, tc_error_t *err) {
  json_object *v = tc_json_get(req, key);
  if (!v) return TC_OK;
  if (!json_object_is_type(v, json_type_string) || !tc_uuid_valid(json_object_get_string(v)))
    return tc_error_set(err, TC_EINVAL, "%s must be a UUID (got %s)", key, tc_json_str(v));
  return TC_OK;
}

/* Validates a create request and returns a copy with defaults applied. */
static int build_request(json_object *req, json_object **out, tc_error_t *err) {
  if (!req || !json_object_is_type(req, json_type_object))
    return tc_error_set(err, TC_EINVAL, "the task request must be an object");
  json_object *name = tc_json_get(req, "name");
  if (!name || !json_object_is_type(name, json_type_string) || json_object_get_string_len(name) == 0)
    return tc_error_set(err, TC_EINVAL, "name is required (the template name)");
  int rc;
  if ((rc = opt_string(req, "name", TC_TEMPLATE_NAME_MAX, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "namespace", TC_NAMESPACE_MAX, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "version", TC_TEMPLATE_VERSION_MAX, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "initiator", 128, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "source_system", 128, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "reason", 128, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "idempotency_key", 255, err)) != TC_OK) return rc;
  if ((rc = opt_uuid(req, "correlation_id", err)) != TC_OK) return rc;
  if ((rc = opt_uuid(req, "parent_correlation_id", err)) != TC_OK) return rc;

  json_object *context = tc_json_get(req, "context");
  if (context && !json_object_is_type(context, json_type_object))
    return tc_error_set(err, TC_EINVAL, "context must be an object (a Hash), got %s",
                        json_type_to_name(json_object_get_type(context)));
  if (context) {
    const char *text = tc_json_str(context);
    if (!text) return tc_error_set(err, TC_ENOMEM, "out of memory serializing the context");
    size_t bytes = strlen(text);
    if (bytes > TC_CONTEXT_MAX_BYTES)
      return tc_error_set(err, TC_EINVAL, "context is %zu bytes serialized; the limit is %d", bytes,
                          TC_CONTEXT_MAX_BYTES);
    char path[512] = "context";
    if ((rc = check_context(context, 1, path, sizeof path, err)) != TC_OK) return rc;
  }
  json_object *tags = tc_json_get(req, "tags");
  if (tags && !json_object_is_type(tags, json_type_null)) {
    if (!json_object_is_type(tags, json_type_array))
      return tc_error_set(err, TC_EINVAL, "tags must be a list of strings");
    size_t n = json_object_array_length(tags);
    if (n > TC_CLIENT_TAGS_MAX)
      return tc_error_set(err, TC_EINVAL, "tags has %zu entries; the limit is %d", n, TC_CLIENT_TAGS_MAX);
    for (size_t i = 0; i < n; i++) {
      json_object *tag = json_object_array_get_idx(tags, i);
      if (!json_object_is_type(tag, json_type_string))
        return tc_error_set(err, TC_EINVAL, "tags must be a list of strings (item %zu is not)", i);
      if (json_object_get_string_len(tag) > TC_CLIENT_TAG_MAX_BYTES)
        return tc_error_set(err, TC_EINVAL, "tags[%zu] is %d bytes; the limit is %d", i, json_object_get_string_len(tag),
                            TC_CLIENT_TAG_MAX_BYTES);
    }
    const char *tags_text = tc_json_str(tags), *context_text = context ? tc_json_str(context) : "";
    if (!tags_text || !context_text) return tc_error_set(err, TC_ENOMEM, "out of memory serializing the request");
    size_t bytes = strlen(tags_text) + strlen(context_text);
    if (bytes > TC_CLIENT_REQUEST_MAX_BYTES)
      return tc_error_set(err, TC_EINVAL, "context and tags are %zu bytes serialized; the limit is %d for both", bytes,
                          TC_CLIENT_REQUEST_MAX_BYTES);
  }
  json_object *priority = tc_json_get(req, "priority");
  if (priority && !json_object_is_type(priority, json_type_null) &&
      (!json_object_is_type(priority, json_type_int) || json_object_get_int64(priority) < -1000000 ||
       json_object_get_int64(priority) > 1000000))
    return tc_error_set(err, TC_EINVAL, "priority must be an integer between -1000000 and 1000000");

  json_object *copy = NULL;
  if (json_object_deep_copy(req, &copy, NULL) != 0 || !copy)
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  json_object *correlation = tc_json_get(copy, "correlation_id");
  if (!correlation || json_object_is_type(correlation, json_type_null)) {
    char uuid[37];
    tc_uuid_v7(uuid);
    json_object_object_add(copy, "correlation_id", json_object_new_string(uuid));
  }
  *out = copy;
  return TC_OK;
}

/* The statements of task creation. Schema-qualified, with explicit casts: they run the same on the
 * engine's connections and on a caller's (tc_client_create_task_statement), whatever its
 * search_path or other session settings. */
static const char CREATE_TASK_SQL[] = "SELECT tasker.create_task_response($1::uuid, $2::jsonb)";
static const char CREATE_TASKS_SQL[] = "SELECT tasker.create_tasks($1::jsonb)";
/* CREATE_TASK_SQL's name as a prepared statement of the engine's connections, each of which
 * prepares it on its first create (the first run answers "not prepared", SQLSTATE 26000): the
 * server then neither parses nor plans it again for every task. */
static const char CREATE_TASK_STATEMENT[] = "tasker_create_task";
/* invalid_sql_statement_name: the connection has not prepared the statement (yet). */
static const char NOT_PREPARED[] = "26000";

/* The parameters of CREATE_TASK_SQL for a request: a fresh task uuid and the validated request
 * with defaults (*req, a new reference). */
static int create_task_params(json_object *request, char task_uuid[37], json_object **req, tc_error_t *err) {
  int rc = build_request(request, req, err);
  if (rc != TC_OK) return rc;
  tc_uuid_v7(task_uuid);
  return TC_OK;
}

/* Adds key: value to obj, taking value; false (value released) when out of memory. */
static bool put(json_object *obj, const char *key, json_object *value) {
  if (!value) return false;
  if (json_object_object_add(obj, key, value) != 0) {
    json_object_put(value);
    return false;
  }
  return true;
}

/* {"sql": sql, "params": [params...]}: a statement for the caller to run. */
static int statement(const char *sql, int n, const char *const *params, json_object **out, tc_error_t *err) {
  json_object *st = json_object_new_object();
  json_object *list = json_object_new_array_ext(n > 0 ? n : 1);
  bool ok = st && list && put(st, "sql", json_object_new_string(sql));
  for (int i = 0; ok && i < n; i++) {
    json_object *p = params[i] ? json_object_new_string(params[i]) : NULL;
    ok = p && json_object_array_add(list, p) == 0;
    if (!ok) json_object_put(p);
  }
  if (ok) {
    ok = put(st, "params", list);
    list = NULL; /* put took it, or released it */
  }
  json_object_put(list);
  if (!ok) {
    json_object_put(st);
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  }
  *out = st;
  return TC_OK;
}

typedef struct {
  const char *const *params;
  json_object **out;
} create_args_t;

/* Runs CREATE_TASK_STATEMENT on conn, preparing it first when conn has not. A failure to prepare
 * (a schema without the function, say) is reported as the statement's own failure would be. */
static int run_create(PGconn *conn, void *arg, tc_error_t *err) {
  create_args_t *a = arg;
  int rc = tc_db_query_prepared_json(conn, CREATE_TASK_STATEMENT, 2, a->params, a->out, err);
  if (rc != TC_EDB || strcmp(err->sqlstate, NOT_PREPARED) != 0) return rc;
  PGresult *r = PQprepare(conn, CREATE_TASK_STATEMENT, CREATE_TASK_SQL, 2, NULL);
  if (!r) return tc_error_from_pg(err, conn, NULL, "query failed");
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    rc = tc_error_from_pg(err, conn, r, "query failed");
    PQclear(r);
    return rc;
  }
  PQclear(r);
  return tc_db_query_prepared_json(conn, CREATE_TASK_STATEMENT, 2, a->params, a->out, err);
}

int tc_client_create_task(tc_runtime_t *rt, json_object *request, json_object **out,
                          tc_error_t *err) {
  json_object *req = NULL;
  char task_uuid[37];
  int rc = create_task_params(request, task_uuid, &req, err);
  if (rc != TC_OK) return rc;
  const char *params[] = {task_uuid, tc_json_str(req)};
  if (!params[1]) {
    json_object_put(req);
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  }
  json_object *res = NULL;
  tc_error_t local = {0};
  tc_error_t *e = err ? err : &local; /* run_create reads the SQLSTATE */
  create_args_t args = {params, &res};
  rc = tc_rt_with_conn(rt, run_create, &args, e);
  if (rc != TC_OK) strip_query_prefix(e);
  json_object_put(req);
  if (rc != TC_OK) return rc;
  if (!res) return tc_error_set(err, TC_EDB, "create_task returned nothing");
  *out = res;
  return TC_OK;
}

int tc_client_create_task_statement(json_object *request, json_object **out, tc_error_t *err) {
  json_object *req = NULL;
  char task_uuid[37];
  int rc = create_task_params(request, task_uuid, &req, err);
  if (rc != TC_OK) return rc;
  const char *params[] = {task_uuid, tc_json_str(req)};
  rc = params[1] ? statement(CREATE_TASK_SQL, 2, params, out, err) : tc_error_set(err, TC_ENOMEM, "out of memory");
  json_object_put(req);
  return rc;
}

/* Parses the JSON text of an answer; NULL text (SQL NULL) or the literal null is *out = NULL. */
static int parse_answer(const char *text, json_object **out, tc_error_t *err) {
  *out = NULL;
  if (!text) return TC_OK;
  return tc_json_parse_text(text, out, err);
}

int tc_client_create_task_answer(const char *text, json_object **out, tc_error_t *err) {
  json_object *res = NULL;
  int rc = parse_answer(text, &res, err);
  if (rc != TC_OK) return rc;
  json_object *uuid = tc_json_get(res, "task_uuid");
  if (!res || !json_object_is_type(res, json_type_object) || !uuid || !json_object_is_type(uuid, json_type_string)) {
    json_object_put(res);
    return tc_error_set(err, TC_EDB, "create_task returned nothing");
  }
  *out = res;
  return TC_OK;
}

/* Puts "requests[i]: " before the message of a refused request. */
static int name_request(tc_error_t *err, size_t i, int rc) {
  if (!err) return rc;
  char prefix[48];
  int len = snprintf(prefix, sizeof prefix, "requests[%zu]: ", i);
  size_t cap = sizeof err->message;
  size_t room = cap - 1 - (size_t)len;
  size_t keep = strnlen(err->message, room);
  memmove(err->message + len, err->message, keep);
  memcpy(err->message, prefix, (size_t)len);
  err->message[len + keep] = '\0';
  return rc;
}

/* The parameter of CREATE_TASKS_SQL: every request validated, with defaults and its "task_uuid"
 * (*batch, a new array; *n requests). */
static int create_tasks_batch(json_object *requests, json_object **batch_out, size_t *n_out, tc_error_t *err) {
  if (!requests || !json_object_is_type(requests, json_type_array))
    return tc_error_set(err, TC_EINVAL, "requests must be an array of task requests");
  size_t n = json_object_array_length(requests);
  if (n > TC_CLIENT_CREATE_TASKS_MAX)
    return tc_error_set(err, TC_EINVAL, "requests has %zu task requests; the limit is %d per call", n,
                        TC_CLIENT_CREATE_TASKS_MAX);
  json_object *batch = json_object_new_array_ext((int)(n ? n : 1));
  if (!batch) return tc_error_set(err, TC_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    json_object *req = NULL;
    char task_uuid[37];
    int rc = create_task_params(json_object_array_get_idx(requests, i), task_uuid, &req, err);
    if (rc != TC_OK) {
      json_object_put(batch);
      return name_request(err, i, rc);
    }
    /* put() keeps its value only on success; a failed array add leaves req to us. */
    bool ok = put(req, "task_uuid", json_object_new_string(task_uuid));
    if (!ok || json_object_array_add(batch, req) != 0) {
      json_object_put(req);
      json_object_put(batch);
      return tc_error_set(err, TC_ENOMEM, "out of memory");
    }
  }
  *batch_out = batch;
  *n_out = n;
  return TC_OK;
}

/* Checks create_tasks's answer: one task per request. Takes res. */
static int check_tasks_answer(json_object *res, size_t n, json_object **out, tc_error_t *err) {
  if (!res || !json_object_is_type(res, json_type_array) || json_object_array_length(res) != n) {
    json_object_put(res);
    return tc_error_set(err, TC_EDB, "create_tasks did not answer one task per request");
  }
  *out = res;
  return TC_OK;
}

int tc_client_create_tasks(tc_runtime_t *rt, json_object *requests, json_object **out, tc_error_t *err) {
  json_object *batch = NULL;
  size_t n = 0;
  int rc = create_tasks_batch(requests, &batch, &n, err);
  if (rc != TC_OK) return rc;
  if (n == 0) {
    *out = batch;
    return TC_OK;
  }
  const char *params[] = {tc_json_str(batch)};
  if (!params[0]) {
    json_object_put(batch);
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  }
  json_object *res = NULL;
  rc = client_query(rt, CREATE_TASKS_SQL, 1, params, &res, err);
  json_object_put(batch);
  if (rc != TC_OK) return rc;
  return check_tasks_answer(res, n, out, err);
}

int tc_client_create_tasks_statement(json_object *requests, json_object **out, tc_error_t *err) {
  json_object *batch = NULL;
  size_t n = 0;
  int rc = create_tasks_batch(requests, &batch, &n, err);
  if (rc != TC_OK) return rc;
  const char *params[] = {tc_json_str(batch)};
  rc = params[0] ? statement(CREATE_TASKS_SQL, 1, params, out, err) : tc_error_set(err, TC_ENOMEM, "out of memory");
  json_object_put(batch);
  return rc;
}

int tc_client_create_tasks_answer(const char *text, size_t n, json_object **out, tc_error_t *err) {
  json_object *res = NULL;
  int rc = parse_answer(text, &res, err);
  if (rc != TC_OK) return rc;
  return check_tasks_answer(res, n, out, err);
}

/* Whether s contains needle (both may be NULL: no). */
static bool mentions(const char *s, const char *needle) { return s && needle && strstr(s, needle) != NULL; }

int tc_client_statement_error(const char *sqlstate, const char *message, tc_error_t *err) {
  const char *state = sqlstate && *sqlstate ? sqlstate : NULL;
  const char *msg = message && *message ? message : "unknown error";
  int rc;
  if (state && (strcmp(state, "3F000") == 0 || strcmp(state, "42883") == 0 || strcmp(state, "42P01") == 0) &&
      mentions(msg, "tasker")) {
    /* No schema tasker (or not this version's functions): another database, or not migrated. */
    rc = tc_error_set(err, TC_ECONFIG,
                      "the connection's database has no tasker schema of this version (%s): is it the engine's "
                      "database, migrated (TaskerCore.migrate!)?", msg);
  } else if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)) {
    /* Under REPEATABLE READ or SERIALIZABLE, a concurrent transaction that committed a task of the same
     * identity aborts this one; at any level, so does a deadlock (two batches taking the same identities
     * in opposite orders). */
    rc = tc_error_set(err, TC_EDB,
                      "the task was not created: %s (SQLSTATE %s: this transaction conflicted with a concurrent "
                      "one, e.g. one that committed a task of the same identity first); retry the whole "
                      "transaction", msg, state);
  } else {
    rc = tc_error_from_state(err, state, "query failed", msg); /* sets err->sqlstate */
    strip_query_prefix(err);
    return rc;
  }
  if (err && state) snprintf(err->sqlstate, sizeof err->sqlstate, "%s", state);
  return rc;
}

static int read_by_uuid(tc_runtime_t *rt, const char *sql, const char *what, const char *uuid,
                        json_object **out, tc_error_t *err) {
  int rc = tc_uuid_require(uuid, what, err);
  if (rc != TC_OK) return rc;
  const char *params[] = {uuid};
  json_object *res = NULL;
  rc = client_query(rt, sql, 1, params, &res, err);
  if (rc != TC_OK) return rc;
  if (!res) return tc_error_set(err, TC_ENOTFOUND, "%s not found: %s", what, uuid);
  *out = res;
  return TC_OK;
}

int tc_client_get_task(tc_runtime_t *rt, const char *task_uuid, json_object **out,
                       tc_error_t *err) {
  return read_by_uuid(rt, "SELECT tasker.get_task($1::uuid)", "task_uuid", task_uuid, out, err);
}

int tc_client_list_task_steps(tc_runtime_t *rt, const char *task_uuid, json_object **out,
                              tc_error_t *err) {
  return read_by_uuid(rt, "SELECT tasker.list_task_steps($1::uuid)", "task_uuid", task_uuid, out, err);
}

/* list_tasks page sizes. */
#define TC_CLIENT_LIST_MIN 1
#define TC_CLIENT_LIST_MAX 1000

/* SPEC 2.1: the twelve task states, the only values the status filter accepts. */
static const char *const task_states[] = {
    "pending",          "initializing",      "enqueuing_steps",     "steps_in_process",
    "evaluating_results", "waiting_for_dependencies", "waiting_for_retry", "blocked_by_failures",
    "complete",         "error",             "cancelled",           "resolved_manually"};

static bool known_task_state(const char *s) {
  for (size_t i = 0; i < sizeof task_states / sizeof task_states[0]; i++)
    if (strcmp(s, task_states[i]) == 0) return true;
  return false;
}

/* The characters of UTF-8 text (its bytes that do not continue a character). */
static size_t utf8_chars(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

/* initiator and source_system are varchar(128) columns: a longer filter matches nothing. */
static int check_text_filters(const char *initiator, const char *source_system, tc_error_t *err) {
  if (initiator && (!*initiator || utf8_chars(initiator) > 128))
    return tc_error_set(err, TC_EINVAL, "initiator must be 1 to 128 characters (got %zu)", utf8_chars(initiator));
  if (source_system && (!*source_system || utf8_chars(source_system) > 128))
    return tc_error_set(err, TC_EINVAL, "source_system must be 1 to 128 characters (got %zu)",
                        utf8_chars(source_system));
  return TC_OK;
}

int tc_client_list_tasks(tc_runtime_t *rt, int64_t limit, int64_t offset, const char *ns, const char *status,
                         const char *initiator, const char *source_system, bool with_total, json_object **out,
                         tc_error_t *err) {
  if (limit < TC_CLIENT_LIST_MIN || limit > TC_CLIENT_LIST_MAX)
    return tc_error_set(err, TC_EINVAL, "limit must be between %d and %d (got %lld)", TC_CLIENT_LIST_MIN,
                        TC_CLIENT_LIST_MAX, (long long)limit);
  if (offset < 0 || offset > INT32_MAX)
    return tc_error_set(err, TC_EINVAL, "offset must be between 0 and %d (got %lld)", INT32_MAX, (long long)offset);
  if (ns && (strlen(ns) == 0 || strlen(ns) > 64))
    return tc_error_set(err, TC_EINVAL, "namespace must be 1 to 64 characters (got %zu)", strlen(ns));
  if (status && !known_task_state(status))
    return tc_error_set(err, TC_EINVAL,
                        "status must be one of pending, initializing, enqueuing_steps, steps_in_process, "
                        "evaluating_results, waiting_for_dependencies, waiting_for_retry, blocked_by_failures, "
                        "complete, error, cancelled, resolved_manually (got %.100s)",
                        status);
  int rc = check_text_filters(initiator, source_system, err);
  if (rc != TC_OK) return rc;
  char limit_s[24], offset_s[24];
  snprintf(limit_s, sizeof limit_s, "%lld", (long long)limit);
  snprintf(offset_s, sizeof offset_s, "%lld", (long long)offset);
  const char *params[] = {limit_s, offset_s, ns, status, with_total ? "true" : "false", initiator, source_system};
  json_object *res = NULL;
  rc = client_query(rt, "SELECT tasker.list_tasks($1::integer, $2::integer, $3, $4, $5::boolean, $6, $7)", 7, params,
                    &res, err);
  if (rc != TC_OK) return rc;
  if (!res) return tc_error_set(err, TC_EDB, "list_tasks returned nothing");
  *out = res;
  return TC_OK;
}

/* A cursor is "created_at_task_uuid": at most 26 + 1 + 36 characters. */
#define TC_CLIENT_CURSOR_MAX 80

int tc_client_list_tasks_after(tc_runtime_t *rt, int64_t limit, const char *cursor, const char *ns,
                               const char *status, const char *initiator, const char *source_system,
                               json_object **out, tc_error_t *err) {
  if (limit < TC_CLIENT_LIST_MIN || limit > TC_CLIENT_LIST_MAX)
    return tc_error_set(err, TC_EINVAL, "limit must be between %d and %d (got %lld)", TC_CLIENT_LIST_MIN,
                        TC_CLIENT_LIST_MAX, (long long)limit);
  if (cursor && (strlen(cursor) == 0 || strlen(cursor) > TC_CLIENT_CURSOR_MAX))
    return tc_error_set(err, TC_EINVAL, "cursor must be 1 to %d characters (got %zu)", TC_CLIENT_CURSOR_MAX,
                        strlen(cursor));
  if (ns && (strlen(ns) == 0 || strlen(ns) > 64))
    return tc_error_set(err, TC_EINVAL, "namespace must be 1 to 64 characters (got %zu)", strlen(ns));
  if (status && !known_task_state(status))
    return tc_error_set(err, TC_EINVAL, "status must be a task state (got %.100s)", status);
  int rc = check_text_filters(initiator, source_system, err);
  if (rc != TC_OK) return rc;
  char limit_s[24];
  snprintf(limit_s, sizeof limit_s, "%lld", (long long)limit);
  const char *params[] = {limit_s, cursor, ns, status, initiator, source_system};
  json_object *res = NULL;
  rc = client_query(rt, "SELECT tasker.list_tasks_after($1::integer, $2, $3, $4, $5, $6)", 6, params, &res, err);
  if (rc != TC_OK) return rc;
  if (!res) return tc_error_set(err, TC_EDB, "list_tasks_after returned nothing");
  *out = res;
  return TC_OK;
}

int tc_client_count_tasks(tc_runtime_t *rt, const char *ns, const char *const *statuses, size_t n_statuses,
                          int64_t *count, tc_error_t *err) {
  if (!count) return tc_error_set(err, TC_EINVAL, "count must not be NULL");
  if (ns && (strlen(ns) == 0 || strlen(ns) > 64))
    return tc_error_set(err, TC_EINVAL, "namespace must be 1 to 64 characters (got %zu)", strlen(ns));
  /* The states as a PostgreSQL array literal, each once, in SPEC 2.1's order: only known states
   * reach it, so nothing needs quoting, and it fits (12 states of at most 24 characters). */
  char literal[12 * 26 + 3];
  if (statuses) {
    if (n_statuses == 0)
      return tc_error_set(err, TC_EINVAL, "status must name at least one task state (got an empty list)");
    if (n_statuses > TC_CLIENT_COUNT_STATUSES_MAX)
      return tc_error_set(err, TC_EINVAL, "status lists %zu states; the limit is %d", n_statuses,
                          TC_CLIENT_COUNT_STATUSES_MAX);
    bool wanted[sizeof task_states / sizeof task_states[0]] = {false};
    for (size_t i = 0; i < n_statuses; i++) {
      bool found = false;
      for (size_t k = 0; statuses[i] && k < sizeof task_states / sizeof task_states[0]; k++)
        if (strcmp(statuses[i], task_states[k]) == 0) wanted[k] = found = true;
      if (!found)
        return tc_error_set(err, TC_EINVAL,
                            "status must be one of pending, initializing, enqueuing_steps, steps_in_process, "
                            "evaluating_results, waiting_for_dependencies, waiting_for_retry, blocked_by_failures, "
                            "complete, error, cancelled, resolved_manually (got %.100s)",
                            statuses[i] ? statuses[i] : "nil");
    }
    size_t len = 0;
    literal[len++] = '{';
    for (size_t k = 0; k < sizeof task_states / sizeof task_states[0]; k++) {
      if (!wanted[k]) continue;
      int w = snprintf(literal + len, sizeof literal - len, "%s%s", len > 1 ? "," : "", task_states[k]);
      if (w < 0 || (size_t)w >= sizeof literal - len) return tc_error_set(err, TC_EINVAL, "status list too long");
      len += (size_t)w;
    }
    literal[len++] = '}';
    literal[len] = '\0';
  }
  const char *params[] = {ns, statuses ? literal : NULL};
  json_object *res = NULL;
  int rc = client_query(rt, "SELECT tasker.count_tasks($1, $2::text[])", 2, params, &res, err);
  if (rc != TC_OK) return rc;
  if (!res || !json_object_is_type(res, json_type_int)) {
    json_object_put(res);
    return tc_error_set(err, TC_EDB, "count_tasks did not answer a number");
  }
  *count = json_object_get_int64(res);
  json_object_put(res);
  return TC_OK;
}

/* A deadlock or serialization failure aborts the whole transaction and is safe to run again. */
static bool retryable_conflict(const tc_error_t *err) {
  return err && (strcmp(err->sqlstate, "40P01") == 0 || strcmp(err->sqlstate, "40001") == 0);
}

int tc_client_cancel_task(tc_runtime_t *rt, const char *task_uuid, json_object **out, tc_error_t *err) {
  tc_error_t local = {0};
  tc_error_t *e = err ? err : &local;
  for (int attempt = 0;; attempt++) {
    int rc = read_by_uuid(rt, "SELECT tasker.cancel_task($1::uuid)", "task_uuid", task_uuid, out, e);
    if (rc == TC_OK || attempt == 2 || !retryable_conflict(e)) return rc;
    tc_log(rt, TC_LOG_INFO, "cancel_retried", "cancelling task %s conflicted (%s); running it again", task_uuid,
           e->sqlstate);
  }
}

/* Validates both uuids, then runs sql($1 task, $2 step), which must return a value. */
static int read_step(tc_runtime_t *rt, const char *sql, const char *task_uuid, const char *step_uuid,
                     json_object **out, tc_error_t *err) {
  int rc = tc_uuid_require(task_uuid, "task_uuid", err);
  if (rc == TC_OK) rc = tc_uuid_require(step_uuid, "step_uuid", err);
  if (rc != TC_OK) return rc;
  const char *params[] = {task_uuid, step_uuid};
  json_object *res = NULL;
  rc = client_query(rt, sql, 2, params, &res, err);
  if (rc != TC_OK) return rc;
  if (!res) return tc_error_set(err, TC_ENOTFOUND, "step not found: %s in task %s", step_uuid, task_uuid);
  *out = res;
  return TC_OK;
}

int tc_client_get_step(tc_runtime_t *rt, const char *task_uuid, const char *step_uuid, json_object **out,
                       tc_error_t *err) {
  return read_step(rt, "SELECT tasker.get_step($1::uuid, $2::uuid)", task_uuid, step_uuid, out, err);
}

int tc_client_get_step_audit_history(tc_runtime_t *rt, const char *task_uuid, const char *step_uuid,
                                     json_object **out, tc_error_t *err) {
  return read_step(rt, "SELECT tasker.step_audit_history($1::uuid, $2::uuid)", task_uuid, step_uuid, out, err);
}

/* Naive ISO-8601 UTC with microseconds, the format of every timestamp the API returns. */
static void utc_timestamp(char buf[32]) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, 32 - n, ".%06ld", ts.tv_nsec / 1000);
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int tc_client_health_check(tc_runtime_t *rt, json_object **out, tc_error_t *err) {
  int64_t started = now_us();
  json_object *answer = NULL;
  tc_error_t qerr = {0};
  /* Plain SQL, no function of ours: it answers on a database at any schema version. */
  int rc = tc_rt_query_json(rt,
                            "SELECT jsonb_build_object('versions', (SELECT coalesce(jsonb_agg(version ORDER BY "
                            "version), '[]') FROM tasker.schema_migrations), 'functions', (SELECT "
                            "jsonb_object_agg(name, checksum) FROM tasker.schema_functions))",
                            0, NULL, &answer, &qerr);
  json_object *versions = NULL, *functions = NULL;
  if (answer) {
    json_object_object_get_ex(answer, "versions", &versions);
    json_object_object_get_ex(answer, "functions", &functions);
  }
  double elapsed_ms = (double)(now_us() - started) / 1000.0;
  bool not_migrated = rc == TC_EDB && strcmp(qerr.sqlstate, "42P01") == 0; /* undefined_table */
  if (rc != TC_OK && rc != TC_EDB && rc != TC_ETIMEDOUT) {
    if (err) *err = qerr;
    return rc;
  }
  /* A statement the server refused still proves the round trip; a connection failure has no SQLSTATE. */
  bool connected = rc == TC_OK || qerr.sqlstate[0] != '\0';

  int expected = tc_schema_version();
  int current = 0;
  int applied_upto_expected = 0;
  for (size_t i = 0; versions && i < json_object_array_length(versions); i++) {
    int v = json_object_get_int(json_object_array_get_idx(versions, i));
    if (v > current) current = v;
    if (v >= 1 && v <= expected) applied_upto_expected++;
  }
  const char *stale = rc == TC_OK ? tc_schema_stale_function_file(functions) : NULL;

  char message[sizeof qerr.message + 160] = "";
  if (rc != TC_OK && !not_migrated) {
    snprintf(message, sizeof message, "database check failed: %s", qerr.message);
  } else if (not_migrated) {
    snprintf(message, sizeof message, "the tasker schema is not migrated (this library expects version %d)",
             expected);
  } else if (current > expected) {
    snprintf(message, sizeof message, "the tasker schema is at version %d, newer than this library's %d", current,
             expected);
  } else if (applied_upto_expected != expected) {
    /* Migrations are numbered 1..expected without gaps: fewer applied means some are pending. */
    snprintf(message, sizeof message,
             "the tasker schema is at version %d with %d of this library's %d migrations applied: migrations are "
             "pending",
             current, applied_upto_expected, expected);
  } else if (stale) {
    snprintf(message, sizeof message,
             "the tasker functions of functions/%s.sql are not this library's: migrations are pending", stale);
  }
  json_object_put(answer);
  bool healthy = message[0] == '\0';
  char stamp[32];
  utc_timestamp(stamp);

  json_object *res = json_object_new_object();
  if (!res) return tc_error_set(err, TC_ENOMEM, "out of memory");
  bool ok = put(res, "healthy", json_object_new_boolean(healthy)) &&
            put(res, "status", json_object_new_string(healthy ? "healthy" : "unhealthy")) &&
            put(res, "timestamp", json_object_new_string(stamp)) &&
            put(res, "database_connected", json_object_new_boolean(connected)) &&
            put(res, "response_time_ms", json_object_new_double(elapsed_ms)) &&
            put(res, "expected_schema_version", json_object_new_int(expected));
  /* The schema's version is known only when the database answered. */
  if (ok && (rc == TC_OK || not_migrated)) ok = put(res, "schema_version", json_object_new_int(current));
  if (ok && !healthy) ok = put(res, "error", json_object_new_string(message));
  if (!ok) {
    json_object_put(res);
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  }
  *out = res;
  return TC_OK;
}
