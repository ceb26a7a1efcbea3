/*
 * tcrb_client.c - TaskerCore::FFI.client_* functions: raw Hashes in, raw Hashes out.
 */
#include "tcrb.h"

static int create_fn(tcrb_call_t *call) {
  return tc_client_create_task(call->rt, call->in, &call->out, &call->err);
}

/* FFI.client_create_task(request_hash) -> {"task_uuid", "status", "correlation_id", "created", ...} */
static VALUE tcrb_client_m_create_task(VALUE self, VALUE request) {
  tc_runtime_t *rt = tcrb_runtime();
  if (!RB_TYPE_P(request, T_HASH)) tcrb_raise_validation("the task request must be a Hash");
  char msg[700];
  json_object *req = NULL;
  if (tcrb_value_to_json(request, "request", &req, msg, sizeof msg) != 0) tcrb_raise_validation(msg);
  tcrb_call_t call = {.fn = create_fn, .rt = rt, .in = req};
  return tcrb_call_run(&call);
}

static int get_task_fn(tcrb_call_t *call) {
  return tc_client_get_task(call->rt, call->s1, &call->out, &call->err);
}

static VALUE tcrb_client_m_get_task(VALUE self, VALUE task_uuid) {
  tcrb_call_t call = {.fn = get_task_fn, .rt = tcrb_runtime()};
  tcrb_copy_string(task_uuid, "task_uuid", call.s1, sizeof call.s1);
  return tcrb_call_run(&call);
}

static int list_steps_fn(tcrb_call_t *call) {
  return tc_client_list_task_steps(call->rt, call->s1, &call->out, &call->err);
}

static VALUE tcrb_client_m_list_task_steps(VALUE self, VALUE task_uuid) {
  tcrb_call_t call = {.fn = list_steps_fn, .rt = tcrb_runtime()};
  tcrb_copy_string(task_uuid, "task_uuid", call.s1, sizeof call.s1);
  return tcrb_call_run(&call);
}

void tcrb_client_init(void) {
  rb_define_module_function(tcrb_mFFI, "client_create_task", tcrb_client_m_create_task, 1);
  rb_define_module_function(tcrb_mFFI, "client_get_task", tcrb_client_m_get_task, 1);
  rb_define_module_function(tcrb_mFFI, "client_list_task_steps", tcrb_client_m_list_task_steps, 1);
}
