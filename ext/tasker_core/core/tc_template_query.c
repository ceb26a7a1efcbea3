/*
 * tc_template_query.c - reading registered templates back from the database.
 */
#include <string.h>

#include "tc_internal.h"

int tc_template_get(tc_runtime_t *rt, const char *ns, const char *name, const char *version, json_object **out,
                    tc_error_t *err) {
  if (!ns || !*ns || !name || !*name || !version || !*version)
    return tc_error_set(err, TC_EINVAL, "namespace, name and version are required to find a template");
  const char *params[] = {ns, name, version};
  json_object *res = NULL;
  int rc = tc_rt_query_json(rt,
                            "SELECT jsonb_build_object('named_task_uuid', nt.named_task_uuid, 'namespace_name', ns.name,"
                            " 'name', nt.name, 'version', nt.version, 'configuration', nt.configuration,"
                            " 'registered_at', nt.created_at, 'updated_at', nt.updated_at)"
                            " FROM tasker.named_tasks nt JOIN tasker.task_namespaces ns USING (task_namespace_uuid)"
                            " WHERE ns.name = $1 AND nt.name = $2 AND nt.version = $3",
                            3, params, &res, err);
  if (rc != TC_OK) return rc;
  if (!res)
    return tc_error_set(err, TC_ENOTFOUND, "task template not found: namespace=%s, name=%s, version=%s", ns, name,
                        version);
  *out = res;
  return TC_OK;
}

int tc_template_list(tc_runtime_t *rt, const char *ns, json_object **out, tc_error_t *err) {
  const char *params[] = {ns && *ns ? ns : NULL};
  json_object *res = NULL;
  int rc = tc_rt_query_json(
      rt,
      "SELECT coalesce(jsonb_agg(t ORDER BY t.namespace_name, t.name, t.version), '[]'::jsonb) FROM ("
      " SELECT nt.named_task_uuid, ns.name AS namespace_name, nt.name, nt.version,"
      "  nt.configuration->>'description' AS description,"
      "  jsonb_array_length(coalesce(nt.configuration->'steps', '[]'::jsonb)) AS step_count,"
      "  (SELECT count(*) FROM tasker.tasks tk WHERE tk.named_task_uuid = nt.named_task_uuid"
      "    AND tk.status IN (" TC_UNFINISHED_TASK_STATES_SQL ")) AS active_tasks,"
      "  nt.created_at AS registered_at, nt.updated_at"
      " FROM tasker.named_tasks nt JOIN tasker.task_namespaces ns USING (task_namespace_uuid)"
      " WHERE $1::text IS NULL OR ns.name = $1) t",
      1, params, &res, err);
  if (rc != TC_OK) return rc;
  if (!res) res = json_object_new_array();
  if (!res) return tc_error_set(err, TC_ENOMEM, "out of memory listing templates");
  *out = res;
  return TC_OK;
}
