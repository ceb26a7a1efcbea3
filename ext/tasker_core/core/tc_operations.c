/*
 * tc_operations.c - operator actions on steps and the staleness detector (which fills the
 * dead-letter queue, tc_dlq.c).
 */
#include <stdio.h>
#include <string.h>

#include "tc_internal.h"

int tc_step_operate(tc_runtime_t *rt, const char *task_uuid, const char *step_uuid, const char *action,
                    json_object *payload, json_object **out, tc_error_t *err) {
  int rc;
  if ((rc = tc_uuid_require(task_uuid, "task_uuid", err)) != TC_OK) return rc;
  if ((rc = tc_uuid_require(step_uuid, "step_uuid", err)) != TC_OK) return rc;
  if (!action || (strcmp(action, "reset_for_retry") != 0 && strcmp(action, "resolve_manually") != 0 &&
                  strcmp(action, "complete_manually") != 0))
    return tc_error_set(err, TC_EINVAL,
                        "action_type must be reset_for_retry, resolve_manually or complete_manually (got %s)",
                        action ? action : "(nil)");
  if (payload && !json_object_is_type(payload, json_type_object))
    return tc_error_set(err, TC_EINVAL, "the action's details must be an object");
  json_object *result = tc_json_get(payload, "result");
  if (result) {
    const char *text = tc_json_str(result);
    if (!text) return tc_error_set(err, TC_ENOMEM, "out of memory serializing the result");
    size_t bytes = strlen(text);
    if (bytes > TC_STEP_RESULT_MAX_BYTES)
      return tc_error_set(err, TC_EINVAL, "result is %zu bytes serialized; the limit is %d", bytes,
                          TC_STEP_RESULT_MAX_BYTES);
  }
  const char *details = payload ? tc_json_str(payload) : "{}";
  if (!details) return tc_error_set(err, TC_ENOMEM, "out of memory serializing the action's details");
  const char *params[] = {task_uuid, step_uuid, action, details};
  return tc_rt_query_json(rt, "SELECT tasker.operate_step($1::uuid, $2::uuid, $3, $4::jsonb)", 4, params, out, err);
}

typedef struct {
  int limit, threshold, lifetime;
  bool dry_run;
  json_object **out;
} stale_args_t;

static int stale_on(PGconn *conn, void *arg, tc_error_t *err) {
  stale_args_t *a = arg;
  return tc__detect_stale_on(conn, a->limit, a->threshold, a->lifetime, a->dry_run, a->out, err);
}

int tc_detect_stale_tasks(tc_runtime_t *rt, json_object *options, json_object **out, tc_error_t *err) {
  int limit = 100, threshold = 30, lifetime = 24;
  const tc_int_opt_t ints[] = {{"batch_size", 1, 10000, &limit},
                               {"threshold_minutes", 0, 525600, &threshold},
                               {"max_lifetime_hours", 1, 87600, &lifetime}};
  int rc = tc_json_opt_ints(options, ints, TC_COUNT(ints), TC_EINVAL, "", err);
  if (rc != TC_OK) return rc;
  json_object *dry = NULL;
  bool dry_run = options && json_object_object_get_ex(options, "dry_run", &dry) && json_object_get_boolean(dry);
  stale_args_t a = {limit, threshold, lifetime, dry_run, out};
  return tc_rt_with_conn(rt, stale_on, &a, err);
}

int tc__detect_stale_on(PGconn *conn, int limit, int threshold_minutes, int lifetime_hours, bool dry_run,
                        json_object **out, tc_error_t *err) {
  char l[16], t[16], h[16];
  snprintf(l, sizeof l, "%d", limit);
  snprintf(t, sizeof t, "%d", threshold_minutes);
  snprintf(h, sizeof h, "%d", lifetime_hours);
  const char *params[] = {l, t, h, dry_run ? "true" : "false"};
  return tc_db_query_json(conn, "SELECT tasker.detect_stale_tasks($1::integer, $2::integer, $3::integer, $4::boolean)",
                          4, params, out, err);
}
