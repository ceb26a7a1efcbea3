/*
 * tc_step_event.c - the step event a handler sees, built in the worker from the claim's row.
 *
 * The claim answers with one positional json array per claimed step (tasker.step_event,
 * sql/functions/step_event.sql): building the nested event as jsonb in the database cost a
 * conversion per key on the server, which every worker shares. The worker builds the event from
 * the row instead, and adds the step's template definition from a cache of its own, keyed by the
 * template's uuid and updated_at (a re-registered template with a new definition has a new
 * updated_at, so its steps are fetched again). The event is the same object the database built
 * before: handlers see no difference.
 *
 * Threads: the claimer and the handler threads build events; the cache is guarded by defs->mu,
 * and each event gets its own deep copy of a definition, so no json object is shared between
 * threads (json-c reference counts are not atomic).
 */
#include <string.h>

#include "tc_internal.h"

/* Positions in the row (the order of tasker.step_event's json_build_array). */
enum {
  R_CLAIM_TOKEN, R_TASK_UUID, R_STEP_UUID, R_CORRELATION_ID, R_PARENT_CORRELATION_ID,
  R_HANDLER_CALLABLE, R_HANDLER_METHOD, R_CLAIM_EXPIRES_AT,
  R_NAMED_TASK_UUID, R_COMPLETE, R_REQUESTED_AT, R_INITIATOR, R_SOURCE_SYSTEM, R_REASON, R_TAGS,
  R_CONTEXT, R_IDENTITY_HASH, R_PRIORITY, R_TASK_CREATED_AT, R_TASK_UPDATED_AT,
  R_TASK_NAME, R_TASK_VERSION, R_NAMESPACE,
  R_STEP_NAME, R_TEMPLATE_STEP_NAME, R_STEP_TYPE, R_RETRYABLE, R_MAX_ATTEMPTS, R_IN_PROCESS, R_PROCESSED,
  R_PROCESSED_AT, R_ATTEMPTS, R_LAST_ATTEMPTED_AT, R_BACKOFF_REQUEST_SECONDS,
  R_INPUTS, R_RESULTS, R_CHECKPOINT, R_STEP_CREATED_AT, R_STEP_UPDATED_AT,
  R_DEPENDENCY_RESULTS, R_TEMPLATE_UPDATED_AT,
  R_COUNT
};

/* Templates cached before the cache starts over (a worker serves a handful). */
#define TC_STEP_DEFS_MAX 512

struct tc_step_defs {
  pthread_mutex_t mu;
  json_object *by_template; /* "uuid|updated_at" -> {step name: definition} */
  int count;
};

int tc_step_defs_new(tc_step_defs_t **out, tc_error_t *err) {
  tc_step_defs_t *d = tc_calloc(1, sizeof *d);
  if (!d) return tc_error_set(err, TC_ENOMEM, "out of memory creating the step definition cache");
  d->by_template = json_object_new_object();
  if (!d->by_template) {
    tc_free(d);
    return tc_error_set(err, TC_ENOMEM, "out of memory creating the step definition cache");
  }
  pthread_mutex_init(&d->mu, NULL);
  *out = d;
  return TC_OK;
}

void tc_step_defs_free(tc_step_defs_t *d) {
  if (!d) return;
  json_object_put(d->by_template);
  pthread_mutex_destroy(&d->mu);
  tc_free(d);
}

/* A deep copy of the definition of step `name` under key, or NULL when the key is not cached
 * (*cached false) or the template has no such step (*cached true). */
static json_object *cached_definition(tc_step_defs_t *d, const char *key, const char *name, bool *cached) {
  json_object *copy = NULL;
  pthread_mutex_lock(&d->mu);
  json_object *steps = NULL;
  *cached = json_object_object_get_ex(d->by_template, key, &steps);
  json_object *def = NULL;
  if (*cached && json_object_object_get_ex(steps, name, &def)) {
    if (json_object_deep_copy(def, &copy, NULL) != 0) copy = NULL;
  }
  pthread_mutex_unlock(&d->mu);
  return copy;
}

/* Fetches the template's steps and caches them under key. */
static int fetch_definitions(tc_step_defs_t *d, tc_runtime_t *rt, const char *template_uuid, const char *key,
                             tc_error_t *err) {
  const char *params[] = {template_uuid};
  json_object *res = NULL;
  int rc = tc_rt_query_json(rt, "SELECT tasker.template_step_definitions($1::uuid)", 1, params, &res, err);
  if (rc != TC_OK) return rc;
  json_object *steps = tc_json_get(res, "steps");
  if (!steps || !json_object_is_type(steps, json_type_object)) {
    json_object_put(res);
    return tc_error_set(err, TC_EDB, "template %s has no step definitions", template_uuid);
  }
  json_object_get(steps);
  json_object_put(res);
  pthread_mutex_lock(&d->mu);
  if (d->count >= TC_STEP_DEFS_MAX) {
    json_object *fresh = json_object_new_object();
    if (fresh) {
      json_object_put(d->by_template);
      d->by_template = fresh;
      d->count = 0;
    }
  }
  if (json_object_object_add(d->by_template, key, steps) == 0) d->count++;
  else json_object_put(steps);
  pthread_mutex_unlock(&d->mu);
  return TC_OK;
}

/* Adds row[pos] to obj under key; the row keeps its own reference. */
static bool put(json_object *obj, const char *key, json_object *row, int pos) {
  json_object *v = json_object_array_get_idx(row, (size_t)pos);
  if (json_object_object_add(obj, key, json_object_get(v)) != 0) {
    json_object_put(v);
    return false;
  }
  return true;
}

static bool add(json_object *obj, const char *key, json_object *v) {
  if (!v) return false;
  if (json_object_object_add(obj, key, v) != 0) {
    json_object_put(v);
    return false;
  }
  return true;
}

int tc_step_event_build(tc_step_defs_t *defs, tc_runtime_t *rt, json_object *row, json_object **out,
                        tc_error_t *err) {
  if (!row || !json_object_is_type(row, json_type_array) || json_object_array_length(row) != R_COUNT)
    return tc_error_set(err, TC_EDB, "the claim answered with a step row of an unexpected shape");
  const char *template_uuid = json_object_get_string(json_object_array_get_idx(row, R_NAMED_TASK_UUID));
  const char *updated_at = json_object_get_string(json_object_array_get_idx(row, R_TEMPLATE_UPDATED_AT));
  const char *step_name = json_object_get_string(json_object_array_get_idx(row, R_TEMPLATE_STEP_NAME));
  if (!template_uuid || !updated_at || !step_name)
    return tc_error_set(err, TC_EDB, "the claim answered with a step row without its template");

  char key[96];
  snprintf(key, sizeof key, "%s|%s", template_uuid, updated_at);
  bool cached = false;
  json_object *definition = cached_definition(defs, key, step_name, &cached);
  if (!cached) {
    int rc = fetch_definitions(defs, rt, template_uuid, key, err);
    if (rc != TC_OK) return rc;
    definition = cached_definition(defs, key, step_name, &cached);
  }
  if (!definition) definition = json_object_new_object(); /* as the database did: {} when absent */

  json_object *ev = json_object_new_object();
  json_object *tss = json_object_new_object();
  json_object *task_wrap = json_object_new_object();
  json_object *task = json_object_new_object();
  json_object *step = json_object_new_object();
  bool ok = definition && ev && tss && task_wrap && task && step;
  ok = ok && put(ev, "event_id", row, R_CLAIM_TOKEN) && put(ev, "claim_token", row, R_CLAIM_TOKEN) &&
       put(ev, "task_uuid", row, R_TASK_UUID) && put(ev, "step_uuid", row, R_STEP_UUID) &&
       put(ev, "correlation_id", row, R_CORRELATION_ID) && put(ev, "task_correlation_id", row, R_CORRELATION_ID) &&
       put(ev, "parent_correlation_id", row, R_PARENT_CORRELATION_ID) &&
       put(ev, "handler_callable", row, R_HANDLER_CALLABLE) && put(ev, "handler_method", row, R_HANDLER_METHOD) &&
       put(ev, "claim_expires_at", row, R_CLAIM_EXPIRES_AT);
  ok = ok && put(task, "task_uuid", row, R_TASK_UUID) && put(task, "named_task_uuid", row, R_NAMED_TASK_UUID) &&
       put(task, "complete", row, R_COMPLETE) && put(task, "requested_at", row, R_REQUESTED_AT) &&
       put(task, "initiator", row, R_INITIATOR) && put(task, "source_system", row, R_SOURCE_SYSTEM) &&
       put(task, "reason", row, R_REASON) && put(task, "tags", row, R_TAGS) && put(task, "context", row, R_CONTEXT) &&
       put(task, "identity_hash", row, R_IDENTITY_HASH) && put(task, "priority", row, R_PRIORITY) &&
       put(task, "created_at", row, R_TASK_CREATED_AT) && put(task, "updated_at", row, R_TASK_UPDATED_AT) &&
       put(task, "correlation_id", row, R_CORRELATION_ID) &&
       put(task, "parent_correlation_id", row, R_PARENT_CORRELATION_ID);
  ok = ok && put(step, "workflow_step_uuid", row, R_STEP_UUID) && put(step, "task_uuid", row, R_TASK_UUID) &&
       put(step, "name", row, R_STEP_NAME) && put(step, "template_step_name", row, R_TEMPLATE_STEP_NAME) &&
       put(step, "step_type", row, R_STEP_TYPE) && put(step, "retryable", row, R_RETRYABLE) &&
       put(step, "max_attempts", row, R_MAX_ATTEMPTS) && put(step, "in_process", row, R_IN_PROCESS) &&
       put(step, "processed", row, R_PROCESSED) && put(step, "processed_at", row, R_PROCESSED_AT) &&
       put(step, "attempts", row, R_ATTEMPTS) && put(step, "last_attempted_at", row, R_LAST_ATTEMPTED_AT) &&
       put(step, "backoff_request_seconds", row, R_BACKOFF_REQUEST_SECONDS) && put(step, "inputs", row, R_INPUTS) &&
       put(step, "results", row, R_RESULTS) && put(step, "checkpoint", row, R_CHECKPOINT) &&
       put(step, "created_at", row, R_STEP_CREATED_AT) && put(step, "updated_at", row, R_STEP_UPDATED_AT);
  /* Each add() takes its object, added or not, so nothing below leaks on a failure. */
  if (ok) {
    ok = add(task_wrap, "task", task);
    task = NULL;
    ok = ok && put(task_wrap, "task_name", row, R_TASK_NAME) && put(task_wrap, "task_version", row, R_TASK_VERSION) &&
         put(task_wrap, "namespace_name", row, R_NAMESPACE);
    ok = add(tss, "task", task_wrap) && ok;
    task_wrap = NULL;
    ok = add(tss, "workflow_step", step) && ok;
    step = NULL;
    ok = ok && put(tss, "dependency_results", row, R_DEPENDENCY_RESULTS);
    ok = add(tss, "step_definition", definition) && ok;
    definition = NULL;
    ok = add(ev, "task_sequence_step", tss) && ok;
    tss = NULL;
  }
  json_object_put(definition);
  json_object_put(tss);
  json_object_put(task_wrap);
  json_object_put(task);
  json_object_put(step);
  if (!ok) {
    json_object_put(ev);
    return tc_error_set(err, TC_ENOMEM, "out of memory building a step event");
  }
  *out = ev;
  return TC_OK;
}
