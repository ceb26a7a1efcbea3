/*
 * tcrb_domain.c - TaskerCore::FFI domain events: publish_domain_event, domain_events_read,
 * domain_events_ack, domain_events_purge, domain_events_count, domain_events_counters.
 */
#include "tcrb.h"

static json_object *to_json(VALUE v, const char *root) {
  char msg[700];
  json_object *obj = NULL;
  if (tcrb_value_to_json(v, root, &obj, msg, sizeof msg) != 0) tcrb_raise_validation(msg);
  return obj;
}

static int publish_fn(tcrb_call_t *call) { return tc_domain_publish(call->rt, call->in, &call->out, &call->err); }

/* FFI.publish_domain_event(event_hash) -> {"event_id", "written"} */
static VALUE m_publish(VALUE self, VALUE event) {
  tcrb_call_t call = {.fn = publish_fn, .rt = tcrb_runtime()};
  if (!RB_TYPE_P(event, T_HASH)) tcrb_raise_validation("the domain event must be a Hash");
  call.in = to_json(event, "event");
  return tcrb_call_run(&call);
}

static int read_fn(tcrb_call_t *call) {
  return tc_domain_read(call->rt, call->s1, call->timeout_ms, atoi(call->s2), call->in, &call->out, &call->err);
}

static int int_arg(VALUE v, const char *what) {
  if (!RB_INTEGER_TYPE_P(v)) {
    char msg[120];
    snprintf(msg, sizeof msg, "%s must be an Integer", what);
    tcrb_raise_validation(msg);
  }
  long long n = NUM2LL(v);
  return n > 1000000000LL ? 1000000000 : n < -1000000000LL ? -1000000000 : (int)n;
}

/* FFI.domain_events_read(consumer, limit, visibility_seconds, modes_or_nil) -> Array of events */
static VALUE m_read(VALUE self, VALUE consumer, VALUE limit, VALUE visibility, VALUE modes) {
  tcrb_call_t call = {.fn = read_fn, .rt = tcrb_runtime()};
  tcrb_copy_string(consumer, "consumer", call.s1, sizeof call.s1);
  call.timeout_ms = int_arg(limit, "limit");
  snprintf(call.s2, sizeof call.s2, "%d", int_arg(visibility, "visibility_seconds"));
  if (!NIL_P(modes)) {
    if (!RB_TYPE_P(modes, T_ARRAY)) tcrb_raise_validation("modes must be an Array");
    call.in = to_json(modes, "modes");
  }
  return tcrb_call_run(&call);
}

static int ack_fn(tcrb_call_t *call) { return tc_domain_ack(call->rt, call->s1, call->in, &call->out, &call->err); }

/* FFI.domain_events_ack(consumer, event_ids) -> {"acknowledged" => n} */
static VALUE m_ack(VALUE self, VALUE consumer, VALUE ids) {
  tcrb_call_t call = {.fn = ack_fn, .rt = tcrb_runtime()};
  tcrb_copy_string(consumer, "consumer", call.s1, sizeof call.s1);
  if (!RB_TYPE_P(ids, T_ARRAY)) tcrb_raise_validation("event_ids must be an Array of UUIDs");
  call.in = to_json(ids, "event_ids");
  return tcrb_call_run(&call);
}

static int purge_fn(tcrb_call_t *call) {
  return tc_domain_purge(call->rt, call->timeout_ms, &call->out, &call->err);
}

/* FFI.domain_events_purge(older_than_seconds) -> {"purged" => n} */
static VALUE m_purge(VALUE self, VALUE seconds) {
  tcrb_call_t call = {.fn = purge_fn, .rt = tcrb_runtime(), .timeout_ms = int_arg(seconds, "older_than_seconds")};
  return tcrb_call_run(&call);
}

static int count_each(VALUE key, VALUE value, VALUE rt) {
  char name[40];
  tcrb_copy_string(RB_TYPE_P(key, T_SYMBOL) ? rb_sym2str(key) : key, "counter", name, sizeof name);
  if (!RB_INTEGER_TYPE_P(value)) tcrb_raise_validation("counter deltas must be Integers");
  if (tc_domain_count((tc_runtime_t *)rt, name, NUM2LL(value)) != TC_OK) {
    char msg[120];
    snprintf(msg, sizeof msg, "unknown domain event counter: %s", name);
    tcrb_raise_validation(msg);
  }
  return ST_CONTINUE;
}

/* FFI.domain_events_count(name => delta, ...) -> nil. The language bus's routing counters. */
static VALUE m_count(VALUE self, VALUE counts) {
  tc_runtime_t *rt = tcrb_runtime();
  if (!RB_TYPE_P(counts, T_HASH)) tcrb_raise_validation("counts must be a Hash");
  rb_hash_foreach(counts, count_each, (VALUE)rt);
  return Qnil;
}

/* FFI.domain_events_counters -> {name => value} */
static VALUE m_counters(VALUE self) {
  json_object *o = NULL;
  if (tc_domain_counters(tcrb_runtime(), &o) != TC_OK) rb_raise(rb_eNoMemError, "out of memory");
  VALUE result = tcrb_json_to_value(o);
  json_object_put(o);
  return result;
}

void tcrb_domain_init(void) {
  rb_define_module_function(tcrb_mFFI, "publish_domain_event", m_publish, 1);
  rb_define_module_function(tcrb_mFFI, "domain_events_read", m_read, 4);
  rb_define_module_function(tcrb_mFFI, "domain_events_ack", m_ack, 2);
  rb_define_module_function(tcrb_mFFI, "domain_events_purge", m_purge, 1);
  rb_define_module_function(tcrb_mFFI, "domain_events_count", m_count, 1);
  rb_define_module_function(tcrb_mFFI, "domain_events_counters", m_counters, 0);
}
