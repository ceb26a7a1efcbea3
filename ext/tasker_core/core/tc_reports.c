/*
 * tc_reports.c - read-only reports over the database for operators: the dashboard overview's live
 * figures (task counts, namespaces, activity, queue depth, workers) and the DLQ's reports. Each is one SQL function
 * (sql/functions/overview.sql, workers.sql, dlq_reports.sql) answering JSON.
 */
#include <stdio.h>
#include <string.h>

#include "tc_internal.h"

typedef struct {
  const char *name;
  const char *sql;
  int n_params;       /* 0, 1 (arg1) or 2 (arg1, arg2) */
  int arg1_min, arg1_max;
  const char *arg1_name;
  int arg2_min, arg2_max; /* arg2_max 0: at most arg1 */
  const char *arg2_name;
} tc_report_def_t;

static const tc_report_def_t reports[] = {
    {"activity", "SELECT tasker.activity($1::integer, $2::integer)", 2, 1, 1440, "minutes", 1, 0, "bucket_minutes"},
    {"queue_depth", "SELECT tasker.queue_depth()", 0, 0, 0, NULL, 0, 0, NULL},
    {"task_counts", "SELECT tasker.task_counts()", 0, 0, 0, NULL, 0, 0, NULL},
    {"namespaces", "SELECT tasker.namespace_names()", 0, 0, 0, NULL, 0, 0, NULL},
    {"workers", "SELECT tasker.list_workers($1::integer)", 1, 1, 1000, "limit", 0, 0, NULL},
    {"dlq_stats", "SELECT tasker.dlq_stats()", 0, 0, 0, NULL, 0, 0, NULL},
    {"dlq_investigation_queue", "SELECT tasker.dlq_investigation_queue($1::integer)", 1, 1, 1000, "limit", 0, 0, NULL},
    {"dlq_staleness", "SELECT tasker.dlq_staleness($1::integer, $2::integer)", 2, 1, 1000, "limit", 1, 525600,
     "threshold_minutes"},
};

int tc_report(tc_runtime_t *rt, const char *report, int arg1, int arg2, json_object **out, tc_error_t *err) {
  if (!out) return tc_error_set(err, TC_EINVAL, "out must not be NULL");
  *out = NULL;
  const tc_report_def_t *def = NULL;
  for (size_t i = 0; report && i < TC_COUNT(reports); i++)
    if (strcmp(report, reports[i].name) == 0) def = &reports[i];
  if (!def)
    return tc_error_set(err, TC_EINVAL,
                        "report must be one of activity, queue_depth, task_counts, namespaces, workers, dlq_stats, "
                        "dlq_investigation_queue, dlq_staleness (got %.64s)",
                        report ? report : "nothing");
  if (def->n_params >= 1 && (arg1 < def->arg1_min || arg1 > def->arg1_max))
    return tc_error_set(err, TC_EINVAL, "%s must be between %d and %d (got %d)", def->arg1_name, def->arg1_min,
                        def->arg1_max, arg1);
  int arg2_max = def->arg2_max ? def->arg2_max : arg1;
  if (def->n_params >= 2 && (arg2 < def->arg2_min || arg2 > arg2_max))
    return tc_error_set(err, TC_EINVAL, "%s must be between %d and %d (got %d)", def->arg2_name, def->arg2_min,
                        arg2_max, arg2);
  char a1[16], a2[16];
  snprintf(a1, sizeof a1, "%d", arg1);
  snprintf(a2, sizeof a2, "%d", arg2);
  const char *params[] = {a1, a2};
  json_object *res = NULL;
  int rc = tc_rt_query_json(rt, def->sql, def->n_params, def->n_params ? params : NULL, &res, err);
  if (rc != TC_OK) return rc;
  if (!res) return tc_error_set(err, TC_EDB, "%s returned nothing", def->name);
  *out = res;
  return TC_OK;
}
