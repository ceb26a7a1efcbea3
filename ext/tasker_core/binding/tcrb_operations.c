/*
 * tcrb_operations.c - TaskerCore::FFI operator actions, staleness detection and the DLQ.
 */
#include "tcrb.h"

static json_object *hash_arg(VALUE v, const char *root) {
  if (NIL_P(v)) return NULL;
  if (!RB_TYPE_P(v, T_HASH)) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s must be a Hash", root);
    tcrb_raise_validation(msg);
  }
  char msg[700];
  json_object *obj = NULL;
  if (tcrb_value_to_json(v, root, &obj, msg, sizeof msg) != 0) tcrb_raise_validation(msg);
  return obj;
}

static int operate_fn(tcrb_call_t *call) {
  json_object *action = json_object_object_get(call->in, "action");
  json_object *payload = json_object_object_get(call->in, "payload");
  return tc_step_operate(call->rt, call->s1, call->s2, json_object_get_string(action), payload, &call->out, &call->err);
}

/* FFI.client_update_step(task_uuid, step_uuid, action_type, details_hash) -> Hash */
static VALUE tcrb_ops_m_update_step(VALUE self, VALUE task_uuid, VALUE step_uuid, VALUE action, VALUE details) {
  tcrb_call_t call = {.fn = operate_fn, .rt = tcrb_runtime()};
  tcrb_copy_uuid(task_uuid, "task_uuid", call.s1, sizeof call.s1);
  tcrb_copy_uuid(step_uuid, "step_uuid", call.s2, sizeof call.s2);
  char action_buf[64];
  tcrb_copy_string(action, "action_type", action_buf, sizeof action_buf);
  json_object *payload = hash_arg(details, "details");
  call.in = json_object_new_object();
  if (!call.in) {
    json_object_put(payload);
    rb_raise(rb_eNoMemError, "out of memory");
  }
  json_object_object_add(call.in, "action", json_object_new_string(action_buf));
  json_object_object_add(call.in, "payload", payload);
  return tcrb_call_run(&call);
}

static int stale_fn(tcrb_call_t *call) { return tc_detect_stale_tasks(call->rt, call->in, &call->out, &call->err); }

/* FFI.detect_stale_tasks(options_hash) -> Array of actions */
static VALUE tcrb_ops_m_detect_stale(VALUE self, VALUE options) {
  tcrb_call_t call = {.fn = stale_fn, .rt = tcrb_runtime()};
  call.in = hash_arg(options, "options");
  return tcrb_call_run(&call);
}

static int dlq_list_fn(tcrb_call_t *call) {
  return tc_dlq_list(call->rt, call->s1[0] ? call->s1 : NULL, call->s2[0] ? call->s2 : NULL, call->timeout_ms,
                     json_object_get_int(call->in), &call->out, &call->err);
}

/* FFI.dlq_list(task_uuid_or_nil, resolution_status_or_nil, limit, offset) -> Array */
static VALUE tcrb_ops_m_dlq_list(VALUE self, VALUE task_uuid, VALUE status, VALUE limit, VALUE offset) {
  tcrb_call_t call = {.fn = dlq_list_fn, .rt = tcrb_runtime()};
  if (!NIL_P(task_uuid)) tcrb_copy_uuid(task_uuid, "task_uuid", call.s1, sizeof call.s1);
  if (!NIL_P(status)) tcrb_copy_string(status, "resolution_status", call.s2, sizeof call.s2);
  if (!RB_INTEGER_TYPE_P(limit) || !RB_INTEGER_TYPE_P(offset)) tcrb_raise_validation("limit and offset must be Integers");
  long l = NUM2LONG(limit), o = NUM2LONG(offset);
  if (l < 1 || l > 1000) tcrb_raise_validation("limit must be between 1 and 1000");
  if (o < 0 || o > 1000000000L) tcrb_raise_validation("offset must not be negative");
  call.timeout_ms = (int)l;
  call.in = json_object_new_int((int)o);
  return tcrb_call_run(&call);
}

static int dlq_update_fn(tcrb_call_t *call) { return tc_dlq_update(call->rt, call->s1, call->in, &call->out, &call->err); }

/* FFI.dlq_update(dlq_entry_uuid, changes_hash) -> Hash */
static VALUE tcrb_ops_m_dlq_update(VALUE self, VALUE entry, VALUE changes) {
  tcrb_call_t call = {.fn = dlq_update_fn, .rt = tcrb_runtime()};
  tcrb_copy_uuid(entry, "dlq_entry_uuid", call.s1, sizeof call.s1);
  call.in = hash_arg(changes, "changes");
  return tcrb_call_run(&call);
}

static int wait_fn(tcrb_call_t *call) {
  int rc = tc_task_wait(call->rt, call->s1, call->timeout_ms, &call->cancel, call->s2, &call->err);
  if (rc == TC_ETIMEDOUT || rc == TC_ECANCELED) {
    call->s2[0] = '\0';
    return TC_OK;
  }
  return rc;
}

static void wait_ubf(void *arg) { tc_cancel_fire(&((tcrb_call_t *)arg)->cancel); }

static VALUE wait_convert(tcrb_call_t *call) { return call->s2[0] ? rb_str_new_cstr(call->s2) : Qnil; }

/* FFI.wait_for_task(task_uuid, timeout_seconds) -> the terminal status, or nil on timeout */
static VALUE tcrb_ops_m_wait_for_task(VALUE self, VALUE task_uuid, VALUE timeout) {
  tcrb_call_t call = {.fn = wait_fn, .convert = wait_convert, .rt = tcrb_runtime(), .ubf = wait_ubf};
  tcrb_copy_uuid(task_uuid, "task_uuid", call.s1, sizeof call.s1);
  double seconds = NUM2DBL(timeout);
  if (!(seconds >= 0 && seconds <= 86400)) tcrb_raise_validation("timeout must be between 0 and 86400 seconds");
  call.timeout_ms = (int)(seconds * 1000);
  return tcrb_call_run(&call);
}

static int template_fetch_fn(tcrb_call_t *call) {
  return tc_template_get(call->rt, json_object_get_string(json_object_object_get(call->in, "namespace")),
                         json_object_get_string(json_object_object_get(call->in, "name")),
                         json_object_get_string(json_object_object_get(call->in, "version")), &call->out, &call->err);
}

/* FFI.template_fetch(namespace, name, version) -> the registered template (raw Hash) */
static VALUE tcrb_ops_m_template_fetch(VALUE self, VALUE ns, VALUE name, VALUE version) {
  tcrb_call_t call = {.fn = template_fetch_fn, .rt = tcrb_runtime()};
  call.in = tcrb_template_args(ns, name, version);
  return tcrb_call_run(&call);
}

static int template_list_fn(tcrb_call_t *call) { return tc_template_list(call->rt, call->s1, &call->out, &call->err); }

/* FFI.template_list(namespace_or_nil) -> Array of the registered templates (raw Hashes) */
static VALUE tcrb_ops_m_template_list(VALUE self, VALUE ns) {
  tcrb_call_t call = {.fn = template_list_fn, .rt = tcrb_runtime()};
  if (!NIL_P(ns)) tcrb_copy_string(ns, "namespace", call.s1, sizeof call.s1);
  return tcrb_call_run(&call);
}

static int report_fn(tcrb_call_t *call) {
  return tc_report(call->rt, call->s1, call->timeout_ms, json_object_get_int(call->in), &call->out, &call->err);
}

/* FFI.report(name, arg1, arg2) -> the report's JSON as Ruby data (tasker.h, tc_report) */
static VALUE tcrb_ops_m_report(VALUE self, VALUE name, VALUE arg1, VALUE arg2) {
  tcrb_call_t call = {.fn = report_fn, .rt = tcrb_runtime()};
  tcrb_copy_string(name, "report", call.s1, sizeof call.s1);
  if (!RB_INTEGER_TYPE_P(arg1) || !RB_INTEGER_TYPE_P(arg2)) tcrb_raise_validation("report arguments must be Integers");
  long a1 = NUM2LONG(arg1), a2 = NUM2LONG(arg2);
  if (a1 < -1000000 || a1 > 1000000 || a2 < -1000000 || a2 > 1000000)
    tcrb_raise_validation("report arguments must be between -1000000 and 1000000");
  call.timeout_ms = (int)a1;
  call.in = json_object_new_int((int)a2);
  if (!call.in) rb_raise(rb_eNoMemError, "out of memory");
  return tcrb_call_run(&call);
}

void tcrb_operations_init(void) {
  rb_define_module_function(tcrb_mFFI, "report", tcrb_ops_m_report, 3);
  rb_define_module_function(tcrb_mFFI, "template_list", tcrb_ops_m_template_list, 1);
  rb_define_module_function(tcrb_mFFI, "template_fetch", tcrb_ops_m_template_fetch, 3);
  rb_define_module_function(tcrb_mFFI, "wait_for_task", tcrb_ops_m_wait_for_task, 2);
  rb_define_module_function(tcrb_mFFI, "client_update_step", tcrb_ops_m_update_step, 4);
  rb_define_module_function(tcrb_mFFI, "detect_stale_tasks", tcrb_ops_m_detect_stale, 1);
  rb_define_module_function(tcrb_mFFI, "dlq_list", tcrb_ops_m_dlq_list, 4);
  rb_define_module_function(tcrb_mFFI, "dlq_update", tcrb_ops_m_dlq_update, 2);
}
