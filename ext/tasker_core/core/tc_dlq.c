/*
 * tc_dlq.c - the dead-letter queue: tasks the staleness detector gave up on (tc_operations.c),
 * listed and resolved by operators.
 */
#include <stdio.h>

#include "tc_internal.h"

int tc_dlq_list(tc_runtime_t *rt, const char *task_uuid, const char *status, int limit, int offset,
                json_object **out, tc_error_t *err) {
  if (task_uuid) {
    int rc = tc_uuid_require(task_uuid, "task_uuid", err);
    if (rc != TC_OK) return rc;
  }
  if (limit < 1 || limit > 1000) return tc_error_set(err, TC_EINVAL, "limit must be between 1 and 1000 (got %d)", limit);
  if (offset < 0) return tc_error_set(err, TC_EINVAL, "offset must not be negative (got %d)", offset);
  char l[16], o[16];
  snprintf(l, sizeof l, "%d", limit);
  snprintf(o, sizeof o, "%d", offset);
  const char *params[] = {task_uuid, status, l, o};
  return tc_rt_query_json(rt, "SELECT tasker.list_dlq($1::uuid, $2, $3::integer, $4::integer)", 4, params, out, err);
}

int tc_dlq_update(tc_runtime_t *rt, const char *entry_uuid, json_object *changes, json_object **out,
                  tc_error_t *err) {
  int rc = tc_uuid_require(entry_uuid, "dlq_entry_uuid", err);
  if (rc != TC_OK) return rc;
  if (!changes || !json_object_is_type(changes, json_type_object))
    return tc_error_set(err, TC_EINVAL, "the DLQ changes must be an object");
  const char *params[] = {entry_uuid, tc_json_str(changes)};
  return tc_rt_query_json(rt, "SELECT tasker.update_dlq($1::uuid, $2::jsonb)", 2, params, out, err);
}
