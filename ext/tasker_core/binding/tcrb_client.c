/*
 * tcrb_client.c - TaskerCore::FFI.client_* functions: raw Hashes in, raw Hashes out.
 */
#include <string.h>

#include "tcrb.h"

static int create_fn(tcrb_call_t *call) {
  return tc_client_create_task(call->rt, call->in, &call->out, &call->err);
}

/* FFI.client_create_task(request_hash) -> the task (as client_get_task) plus "created", "step_count" */
static VALUE tcrb_client_m_create_task(VALUE self, VALUE request) {
  tc_runtime_t *rt = tcrb_runtime();
  if (!RB_TYPE_P(request, T_HASH)) tcrb_raise_validation("the task request must be a Hash");
  char msg[700];
  json_object *req = NULL;
  if (tcrb_value_to_json(request, "request", &req, msg, sizeof msg) != 0) tcrb_raise_validation(msg);
  tcrb_call_t call = {.fn = create_fn, .rt = rt, .in = req};
  return tcrb_call_run(&call);
}

static int create_many_fn(tcrb_call_t *call) {
  return tc_client_create_tasks(call->rt, call->in, &call->out, &call->err);
}

/* FFI.client_create_tasks(array_of_request_hashes) -> Array of client_create_task answers, in order */
static void requests_to_json(VALUE requests, json_object **out);

static VALUE tcrb_client_m_create_tasks(VALUE self, VALUE requests) {
  tc_runtime_t *rt = tcrb_runtime();
  json_object *reqs = NULL;
  requests_to_json(requests, &reqs);
  tcrb_call_t call = {.fn = create_many_fn, .rt = rt, .in = reqs};
  return tcrb_call_run(&call);
}

/* ---- Creation on the caller's connection: the statement, then its answer. ---- */

static int create_statement_fn(tcrb_call_t *call) {
  return tc_client_create_task_statement(call->in, &call->out, &call->err);
}

/* FFI.client_create_task_statement(request_hash) -> {"sql" => text, "params" => [task_uuid, request_json]}:
 * the request validated as client_create_task validates it, nothing sent. */
static VALUE tcrb_client_m_create_task_statement(VALUE self, VALUE request) {
  if (!RB_TYPE_P(request, T_HASH)) tcrb_raise_validation("the task request must be a Hash");
  char msg[700];
  json_object *req = NULL;
  if (tcrb_value_to_json(request, "request", &req, msg, sizeof msg) != 0) tcrb_raise_validation(msg);
  tcrb_call_t call = {.fn = create_statement_fn, .in = req};
  return tcrb_call_run(&call);
}

static int create_many_statement_fn(tcrb_call_t *call) {
  return tc_client_create_tasks_statement(call->in, &call->out, &call->err);
}

/* Checks client_create_tasks's argument as the engine's path does; the json in *out. */
static void requests_to_json(VALUE requests, json_object **out) {
  if (!RB_TYPE_P(requests, T_ARRAY)) tcrb_raise_validation("requests must be an Array of task request Hashes");
  long n = RARRAY_LEN(requests);
  if (n > TC_CLIENT_CREATE_TASKS_MAX) {
    char msg[160];
    snprintf(msg, sizeof msg, "requests has %ld task requests; the limit is %d per call", n, TC_CLIENT_CREATE_TASKS_MAX);
    tcrb_raise_validation(msg);
  }
  for (long i = 0; i < n; i++) {
    if (!RB_TYPE_P(rb_ary_entry(requests, i), T_HASH)) {
      char msg[160];
      snprintf(msg, sizeof msg, "requests[%ld]: the task request must be a Hash", i);
      tcrb_raise_validation(msg);
    }
  }
  char msg[700];
  if (tcrb_value_to_json(requests, "requests", out, msg, sizeof msg) != 0) tcrb_raise_validation(msg);
}

/* FFI.client_create_tasks_statement(array_of_request_hashes) -> {"sql" => text, "params" => [batch_json]} */
static VALUE tcrb_client_m_create_tasks_statement(VALUE self, VALUE requests) {
  json_object *reqs = NULL;
  requests_to_json(requests, &reqs);
  tcrb_call_t call = {.fn = create_many_statement_fn, .in = reqs};
  return tcrb_call_run(&call);
}

/* An answer to parse: the text (a copy the call owns, NUL-terminated) and the request count. */
typedef struct {
  tcrb_call_t call;
  const char *text;
  size_t n;
} answer_call_t;

static int task_answer_fn(tcrb_call_t *call) {
  answer_call_t *ac = (answer_call_t *)call;
  return tc_client_create_task_answer(ac->text, &call->out, &call->err);
}

static int tasks_answer_fn(tcrb_call_t *call) {
  answer_call_t *ac = (answer_call_t *)call;
  return tc_client_create_tasks_answer(ac->text, ac->n, &call->out, &call->err);
}

/* A private copy of the answer text (nil stays NULL): no other thread can change it while the core
 * parses it without the GVL. */
static VALUE answer_text(VALUE text, const char **out) {
  *out = NULL;
  if (NIL_P(text)) return Qnil;
  if (!RB_TYPE_P(text, T_STRING)) {
    char msg[160];
    snprintf(msg, sizeof msg, "the answer must be a String (the statement's JSON), got %s", rb_obj_classname(text));
    tcrb_raise_validation(msg);
  }
  if (memchr(RSTRING_PTR(text), '\0', (size_t)RSTRING_LEN(text)))
    tcrb_raise_class("DatabaseError", "the database returned invalid JSON: the answer contains a NUL byte");
  VALUE copy = rb_str_new(RSTRING_PTR(text), RSTRING_LEN(text));
  *out = RSTRING_PTR(copy);
  return copy;
}

/* FFI.client_create_task_answer(text) -> the task, as client_create_task answers */
static VALUE tcrb_client_m_create_task_answer(VALUE self, VALUE text) {
  answer_call_t ac = {.call = {.fn = task_answer_fn}};
  VALUE copy = answer_text(text, &ac.text);
  VALUE result = tcrb_call_run(&ac.call);
  RB_GC_GUARD(copy);
  return result;
}

/* FFI.client_create_tasks_answer(text, count) -> Array of tasks, as client_create_tasks answers */
static VALUE tcrb_client_m_create_tasks_answer(VALUE self, VALUE text, VALUE count) {
  if (!RB_INTEGER_TYPE_P(count) || !FIXNUM_P(count) || FIX2LONG(count) < 0)
    tcrb_raise_validation("count must be a non-negative Integer (the number of requests)");
  answer_call_t ac = {.call = {.fn = tasks_answer_fn}, .n = (size_t)FIX2LONG(count)};
  VALUE copy = answer_text(text, &ac.text);
  VALUE result = tcrb_call_run(&ac.call);
  RB_GC_GUARD(copy);
  return result;
}

/* FFI.client_statement_error(sqlstate_or_nil, message) -> the TaskerCore::Errors exception (not raised)
 * for the statement's failure on the caller's connection, as the engine's own create reports it */
static VALUE tcrb_client_m_statement_error(VALUE self, VALUE sqlstate, VALUE message) {
  char state[8] = "";
  if (!NIL_P(sqlstate)) tcrb_copy_string(sqlstate, "sqlstate", state, sizeof state);
  if (!RB_TYPE_P(message, T_STRING)) tcrb_raise_validation("message must be a String");
  char msg[sizeof ((tc_error_t *)0)->message];
  size_t len = (size_t)RSTRING_LEN(message) < sizeof msg - 1 ? (size_t)RSTRING_LEN(message) : sizeof msg - 1;
  memcpy(msg, RSTRING_PTR(message), len);
  msg[len] = '\0'; /* an embedded NUL just ends the message early */
  tc_error_t err = {0};
  tc_client_statement_error(state[0] ? state : NULL, msg, &err);
  return tcrb_error_new(&err);
}

/* FFI.client_get_task(task_uuid) -> the task with its execution summary and steps */
static int get_task_fn(tcrb_call_t *call) {
  return tc_client_get_task(call->rt, call->s1, &call->out, &call->err);
}

static VALUE tcrb_client_m_get_task(VALUE self, VALUE task_uuid) {
  tcrb_call_t call = {.fn = get_task_fn, .rt = tcrb_runtime()};
  tcrb_copy_uuid(task_uuid, "task_uuid", call.s1, sizeof call.s1);
  return tcrb_call_run(&call);
}

/* FFI.client_list_task_steps(task_uuid) -> Array of steps */
static int list_steps_fn(tcrb_call_t *call) {
  return tc_client_list_task_steps(call->rt, call->s1, &call->out, &call->err);
}

static VALUE tcrb_client_m_list_task_steps(VALUE self, VALUE task_uuid) {
  tcrb_call_t call = {.fn = list_steps_fn, .rt = tcrb_runtime()};
  tcrb_copy_uuid(task_uuid, "task_uuid", call.s1, sizeof call.s1);
  return tcrb_call_run(&call);
}

/* A list call carries more arguments than tcrb_call_t has room for; the call comes first, so fn
 * gets back to the whole struct from the tcrb_call_t pointer it receives. */
/* The initiator and source_system filters of the task lists (nil: any), copied for the call. */
typedef struct {
  bool has_initiator, has_source_system;
  char initiator[1024]; /* 128 characters of up to 4 bytes each, and room to report a longer one */
  char source_system[1024];
} text_filters_t;

static void copy_text_filters(text_filters_t *f, VALUE initiator, VALUE source_system) {
  if (!NIL_P(initiator)) {
    tcrb_copy_string(initiator, "initiator", f->initiator, sizeof f->initiator);
    f->has_initiator = true;
  }
  if (!NIL_P(source_system)) {
    tcrb_copy_string(source_system, "source_system", f->source_system, sizeof f->source_system);
    f->has_source_system = true;
  }
}

typedef struct {
  tcrb_call_t call;
  int64_t limit, offset;
  bool has_ns, has_status, with_total;
  char ns[256];
  char status[64];
  text_filters_t f;
} list_call_t;

static int list_tasks_fn(tcrb_call_t *call) {
  list_call_t *lc = (list_call_t *)call;
  return tc_client_list_tasks(call->rt, lc->limit, lc->offset, lc->has_ns ? lc->ns : NULL,
                              lc->has_status ? lc->status : NULL, lc->f.has_initiator ? lc->f.initiator : NULL,
                              lc->f.has_source_system ? lc->f.source_system : NULL, lc->with_total, &call->out,
                              &call->err);
}

/* An Integer argument as int64_t: values beyond its range saturate (the core reports them as out of
 * range with the rest). */
static int64_t integer_arg(VALUE v, const char *what) {
  if (!RB_INTEGER_TYPE_P(v)) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s must be an Integer, got %s", what, rb_obj_classname(v));
    tcrb_raise_validation(msg);
  }
  if (FIXNUM_P(v)) return (int64_t)FIX2LONG(v);
  return RTEST(rb_funcall(v, rb_intern("negative?"), 0)) ? INT64_MIN : INT64_MAX;
}

/* FFI.client_list_tasks(limit, offset, namespace_or_nil, status_or_nil, with_total = true,
 * initiator = nil, source_system = nil) -> {"tasks", "pagination"}; with_total false: total_count
 * and total_pages are nil */
static VALUE tcrb_client_m_list_tasks(int argc, VALUE *argv, VALUE self) {
  VALUE limit, offset, ns, status, with_total, initiator, source_system;
  rb_scan_args(argc, argv, "43", &limit, &offset, &ns, &status, &with_total, &initiator, &source_system);
  list_call_t lc = {.call = {.fn = list_tasks_fn, .rt = tcrb_runtime()}};
  copy_text_filters(&lc.f, initiator, source_system);
  lc.with_total = NIL_P(with_total) || RTEST(with_total);
  lc.limit = integer_arg(limit, "limit");
  lc.offset = integer_arg(offset, "offset");
  if (!NIL_P(ns)) {
    tcrb_copy_string(ns, "namespace", lc.ns, sizeof lc.ns);
    lc.has_ns = true;
  }
  if (!NIL_P(status)) {
    tcrb_copy_string(status, "status", lc.status, sizeof lc.status);
    lc.has_status = true;
  }
  return tcrb_call_run(&lc.call);
}

typedef struct {
  tcrb_call_t call;
  int64_t limit;
  bool has_cursor, has_ns, has_status;
  char cursor[128];
  char ns[256];
  char status[64];
  text_filters_t f;
} after_call_t;

static int list_tasks_after_fn(tcrb_call_t *call) {
  after_call_t *ac = (after_call_t *)call;
  return tc_client_list_tasks_after(call->rt, ac->limit, ac->has_cursor ? ac->cursor : NULL, ac->has_ns ? ac->ns : NULL,
                                    ac->has_status ? ac->status : NULL, ac->f.has_initiator ? ac->f.initiator : NULL,
                                    ac->f.has_source_system ? ac->f.source_system : NULL, &call->out, &call->err);
}

/* FFI.client_list_tasks_after(limit, cursor_or_nil, namespace_or_nil, status_or_nil, initiator = nil,
 * source_system = nil) -> {"tasks", "per_page", "has_next", "next_cursor"} (keyset pagination) */
static VALUE tcrb_client_m_list_tasks_after(int argc, VALUE *argv, VALUE self) {
  VALUE limit, cursor, ns, status, initiator, source_system;
  rb_scan_args(argc, argv, "42", &limit, &cursor, &ns, &status, &initiator, &source_system);
  after_call_t ac = {.call = {.fn = list_tasks_after_fn, .rt = tcrb_runtime()}};
  copy_text_filters(&ac.f, initiator, source_system);
  ac.limit = integer_arg(limit, "limit");
  if (!NIL_P(cursor)) {
    tcrb_copy_string(cursor, "cursor", ac.cursor, sizeof ac.cursor);
    ac.has_cursor = true;
  }
  if (!NIL_P(ns)) {
    tcrb_copy_string(ns, "namespace", ac.ns, sizeof ac.ns);
    ac.has_ns = true;
  }
  if (!NIL_P(status)) {
    tcrb_copy_string(status, "status", ac.status, sizeof ac.status);
    ac.has_status = true;
  }
  return tcrb_call_run(&ac.call);
}

/* A count call: a namespace and up to TC_CLIENT_COUNT_STATUSES_MAX states, copied for the call. */
typedef struct {
  tcrb_call_t call;
  bool has_ns;
  char ns[256];
  size_t n_statuses;
  bool has_statuses;
  char statuses[TC_CLIENT_COUNT_STATUSES_MAX][64];
  int64_t count;
} count_call_t;

static int count_tasks_fn(tcrb_call_t *call) {
  count_call_t *cc = (count_call_t *)call;
  const char *statuses[TC_CLIENT_COUNT_STATUSES_MAX];
  for (size_t i = 0; i < cc->n_statuses; i++) statuses[i] = cc->statuses[i];
  return tc_client_count_tasks(call->rt, cc->has_ns ? cc->ns : NULL, cc->has_statuses ? statuses : NULL,
                               cc->n_statuses, &cc->count, &call->err);
}

static VALUE count_tasks_convert(tcrb_call_t *call) { return LL2NUM(((count_call_t *)call)->count); }

/* FFI.client_count_tasks(namespace_or_nil, statuses) -> Integer; statuses: nil (any), a String or an
 * Array of Strings (any of them) */
static VALUE tcrb_client_m_count_tasks(VALUE self, VALUE ns, VALUE statuses) {
  count_call_t cc = {.call = {.fn = count_tasks_fn, .convert = count_tasks_convert, .rt = tcrb_runtime()}};
  if (!NIL_P(ns)) {
    tcrb_copy_string(ns, "namespace", cc.ns, sizeof cc.ns);
    cc.has_ns = true;
  }
  if (RB_TYPE_P(statuses, T_STRING)) {
    tcrb_copy_string(statuses, "status", cc.statuses[0], sizeof cc.statuses[0]);
    cc.n_statuses = 1;
    cc.has_statuses = true;
  } else if (RB_TYPE_P(statuses, T_ARRAY)) {
    long n = RARRAY_LEN(statuses);
    if (n > TC_CLIENT_COUNT_STATUSES_MAX) {
      char msg[120];
      snprintf(msg, sizeof msg, "status lists %ld states; the limit is %d", n, TC_CLIENT_COUNT_STATUSES_MAX);
      tcrb_raise_validation(msg);
    }
    for (long i = 0; i < n; i++) {
      char what[32];
      snprintf(what, sizeof what, "status[%ld]", i);
      tcrb_copy_string(rb_ary_entry(statuses, i), what, cc.statuses[i], sizeof cc.statuses[i]);
    }
    cc.n_statuses = (size_t)n;
    cc.has_statuses = true;
  } else if (!NIL_P(statuses)) {
    char msg[160];
    snprintf(msg, sizeof msg, "status must be a String or an Array of Strings, got %s", rb_obj_classname(statuses));
    tcrb_raise_validation(msg);
  }
  return tcrb_call_run(&cc.call);
}

static int cancel_fn(tcrb_call_t *call) {
  return tc_client_cancel_task(call->rt, call->s1, &call->out, &call->err);
}

/* FFI.client_cancel_task(task_uuid) -> {"cancelled" => true, ...} */
static VALUE tcrb_client_m_cancel_task(VALUE self, VALUE task_uuid) {
  tcrb_call_t call = {.fn = cancel_fn, .rt = tcrb_runtime()};
  tcrb_copy_uuid(task_uuid, "task_uuid", call.s1, sizeof call.s1);
  return tcrb_call_run(&call);
}

static int get_step_fn(tcrb_call_t *call) {
  return tc_client_get_step(call->rt, call->s1, call->s2, &call->out, &call->err);
}

/* FFI.client_get_step(task_uuid, step_uuid) -> the step */
static VALUE tcrb_client_m_get_step(VALUE self, VALUE task_uuid, VALUE step_uuid) {
  tcrb_call_t call = {.fn = get_step_fn, .rt = tcrb_runtime()};
  tcrb_copy_uuid(task_uuid, "task_uuid", call.s1, sizeof call.s1);
  tcrb_copy_uuid(step_uuid, "step_uuid", call.s2, sizeof call.s2);
  return tcrb_call_run(&call);
}

static int audit_fn(tcrb_call_t *call) {
  return tc_client_get_step_audit_history(call->rt, call->s1, call->s2, &call->out, &call->err);
}

/* FFI.client_get_step_audit_history(task_uuid, step_uuid) -> Array of entries, newest first */
static VALUE tcrb_client_m_get_step_audit_history(VALUE self, VALUE task_uuid, VALUE step_uuid) {
  tcrb_call_t call = {.fn = audit_fn, .rt = tcrb_runtime()};
  tcrb_copy_uuid(task_uuid, "task_uuid", call.s1, sizeof call.s1);
  tcrb_copy_uuid(step_uuid, "step_uuid", call.s2, sizeof call.s2);
  return tcrb_call_run(&call);
}

static int health_fn(tcrb_call_t *call) { return tc_client_health_check(call->rt, &call->out, &call->err); }

/* FFI.client_health_check -> {"healthy" => true/false, "status", "timestamp", ...} */
static VALUE tcrb_client_m_health_check(VALUE self) {
  tcrb_call_t call = {.fn = health_fn, .rt = tcrb_runtime()};
  return tcrb_call_run(&call);
}

void tcrb_client_init(void) {
  rb_define_module_function(tcrb_mFFI, "client_create_task", tcrb_client_m_create_task, 1);
  rb_define_module_function(tcrb_mFFI, "client_create_tasks", tcrb_client_m_create_tasks, 1);
  rb_define_const(tcrb_mFFI, "CREATE_TASKS_MAX", INT2NUM(TC_CLIENT_CREATE_TASKS_MAX));
  rb_define_module_function(tcrb_mFFI, "client_create_task_statement", tcrb_client_m_create_task_statement, 1);
  rb_define_module_function(tcrb_mFFI, "client_create_tasks_statement", tcrb_client_m_create_tasks_statement, 1);
  rb_define_module_function(tcrb_mFFI, "client_create_task_answer", tcrb_client_m_create_task_answer, 1);
  rb_define_module_function(tcrb_mFFI, "client_create_tasks_answer", tcrb_client_m_create_tasks_answer, 2);
  rb_define_module_function(tcrb_mFFI, "client_statement_error", tcrb_client_m_statement_error, 2);
  rb_define_const(tcrb_mFFI, "TAGS_MAX", INT2NUM(TC_CLIENT_TAGS_MAX));
  rb_define_const(tcrb_mFFI, "TAG_MAX_BYTES", INT2NUM(TC_CLIENT_TAG_MAX_BYTES));
  rb_define_const(tcrb_mFFI, "REQUEST_MAX_BYTES", INT2NUM(TC_CLIENT_REQUEST_MAX_BYTES));
  rb_define_const(tcrb_mFFI, "STEP_RESULT_MAX_BYTES", INT2NUM(TC_STEP_RESULT_MAX_BYTES));
  rb_define_module_function(tcrb_mFFI, "client_get_task", tcrb_client_m_get_task, 1);
  rb_define_module_function(tcrb_mFFI, "client_list_tasks", tcrb_client_m_list_tasks, -1);
  rb_define_module_function(tcrb_mFFI, "client_list_tasks_after", tcrb_client_m_list_tasks_after, -1);
  rb_define_module_function(tcrb_mFFI, "client_count_tasks", tcrb_client_m_count_tasks, 2);
  rb_define_module_function(tcrb_mFFI, "client_cancel_task", tcrb_client_m_cancel_task, 1);
  rb_define_module_function(tcrb_mFFI, "client_list_task_steps", tcrb_client_m_list_task_steps, 1);
  rb_define_module_function(tcrb_mFFI, "client_get_step", tcrb_client_m_get_step, 2);
  rb_define_module_function(tcrb_mFFI, "client_get_step_audit_history", tcrb_client_m_get_step_audit_history, 2);
  rb_define_module_function(tcrb_mFFI, "client_health_check", tcrb_client_m_health_check, 0);
}
