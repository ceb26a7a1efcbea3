/*
 * tc_client.c - task creation and the read side of the client API.
 */
#include <stdio.h>
#include <string.h>

#include "tc_internal.h"

/* SPEC 1.2 limits on a task's context. */
#define TC_CONTEXT_MAX_BYTES (1024 * 1024)
#define TC_CONTEXT_MAX_DEPTH 10
#define TC_CONTEXT_MAX_KEYS 1000
#define TC_CONTEXT_MAX_STRING 10000

static json_object *get(json_object *obj, const char *key) {
  json_object *v = NULL;
  if (obj && json_object_object_get_ex(obj, key, &v)) return v;
  return NULL;
}

/* Walks the context checking depth, keys per object and string length; path names the culprit. */
static int check_context(json_object *v, int depth, char *path, size_t cap, tc_error_t *err) {
  if (depth > TC_CONTEXT_MAX_DEPTH)
    return tc_error_set(err, TC_EINVAL, "context is nested deeper than %d levels at %s",
                        TC_CONTEXT_MAX_DEPTH, path);
  size_t base = strlen(path);
  switch (json_object_get_type(v)) {
    case json_type_string:
      if (json_object_get_string_len(v) > TC_CONTEXT_MAX_STRING)
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
  json_object *v = get(req, key);
  if (!v) return TC_OK;
  if (!json_object_is_type(v, json_type_string))
    return tc_error_set(err, TC_EINVAL, "%s must be a string", key);
  if ((size_t)json_object_get_string_len(v) > max)
    return tc_error_set(err, TC_EINVAL, "%s is longer than %zu characters", key, max);
  return TC_OK;
}

static int opt_uuid(json_object *req, const char *key, tc_error_t *err) {
  json_object *v = get(req, key);
  if (!v) return TC_OK;
  if (!json_object_is_type(v, json_type_string) || !tc_uuid_valid(json_object_get_string(v)))
    return tc_error_set(err, TC_EINVAL, "%s must be a UUID (got %s)", key, tc_json_str(v));
  return TC_OK;
}

/* Validates a create request and returns a copy with defaults applied. */
static int build_request(json_object *req, json_object **out, tc_error_t *err) {
  if (!req || !json_object_is_type(req, json_type_object))
    return tc_error_set(err, TC_EINVAL, "the task request must be an object");
  json_object *name = get(req, "name");
  if (!name || !json_object_is_type(name, json_type_string) || json_object_get_string_len(name) == 0)
    return tc_error_set(err, TC_EINVAL, "name is required (the template name)");
  int rc;
  if ((rc = opt_string(req, "name", 255, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "namespace", 64, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "version", 50, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "initiator", 128, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "source_system", 128, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "reason", 128, err)) != TC_OK) return rc;
  if ((rc = opt_string(req, "idempotency_key", 255, err)) != TC_OK) return rc;
  if ((rc = opt_uuid(req, "correlation_id", err)) != TC_OK) return rc;
  if ((rc = opt_uuid(req, "parent_correlation_id", err)) != TC_OK) return rc;

  json_object *context = get(req, "context");
  if (context && !json_object_is_type(context, json_type_object))
    return tc_error_set(err, TC_EINVAL, "context must be an object (a Hash), got %s",
                        json_type_to_name(json_object_get_type(context)));
  if (context) {
    size_t bytes = strlen(tc_json_str(context));
    if (bytes > TC_CONTEXT_MAX_BYTES)
      return tc_error_set(err, TC_EINVAL, "context is %zu bytes serialized; the limit is %d", bytes,
                          TC_CONTEXT_MAX_BYTES);
    char path[512] = "context";
    if ((rc = check_context(context, 1, path, sizeof path, err)) != TC_OK) return rc;
  }
  json_object *tags = get(req, "tags");
  if (tags) {
    if (!json_object_is_type(tags, json_type_array))
      return tc_error_set(err, TC_EINVAL, "tags must be a list of strings");
    for (size_t i = 0; i < json_object_array_length(tags); i++)
      if (!json_object_is_type(json_object_array_get_idx(tags, i), json_type_string))
        return tc_error_set(err, TC_EINVAL, "tags must be a list of strings (item %zu is not)", i);
  }
  json_object *priority = get(req, "priority");
  if (priority && !json_object_is_type(priority, json_type_null) &&
      (!json_object_is_type(priority, json_type_int) || json_object_get_int64(priority) < -1000000 ||
       json_object_get_int64(priority) > 1000000))
    return tc_error_set(err, TC_EINVAL, "priority must be an integer between -1000000 and 1000000");

  json_object *copy = NULL;
  if (json_object_deep_copy(req, &copy, NULL) != 0 || !copy)
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  if (!get(copy, "correlation_id") || json_object_is_type(get(copy, "correlation_id"), json_type_null)) {
    char uuid[37];
    tc_uuid_v7(uuid);
    json_object_object_add(copy, "correlation_id", json_object_new_string(uuid));
  }
  *out = copy;
  return TC_OK;
}

int tc_client_create_task(tc_runtime_t *rt, json_object *request, json_object **out,
                          tc_error_t *err) {
  json_object *req = NULL;
  int rc = build_request(request, &req, err);
  if (rc != TC_OK) return rc;
  char task_uuid[37];
  tc_uuid_v7(task_uuid);
  const char *params[] = {task_uuid, tc_json_str(req)};
  json_object *res = NULL;
  rc = tc_rt_query_json(rt, "SELECT tasker.create_task($1::uuid, $2::jsonb)", 2, params, &res, err);
  json_object_put(req);
  if (rc != TC_OK) return rc;
  if (!res) return tc_error_set(err, TC_EDB, "create_task returned nothing");
  *out = res;
  return TC_OK;
}

static int read_by_uuid(tc_runtime_t *rt, const char *sql, const char *what, const char *uuid,
                        json_object **out, tc_error_t *err) {
  if (!tc_uuid_valid(uuid))
    return tc_error_set(err, TC_EINVAL, "Invalid UUID for %s: %s", what, uuid ? uuid : "(nil)");
  const char *params[] = {uuid};
  json_object *res = NULL;
  int rc = tc_rt_query_json(rt, sql, 1, params, &res, err);
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
