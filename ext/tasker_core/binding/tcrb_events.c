/*
 * tcrb_events.c - TaskerCore::FFI lifecycle events: events_start, events_next, events_stop,
 * events_stats.
 *
 * The core's feeder thread fills a bounded buffer; the Ruby dispatcher thread blocks in
 * events_next without the GVL (its unblocking function wakes the wait, so Thread#kill lands at
 * once) and runs subscribers with the GVL. No engine thread ever calls Ruby.
 */
#include "tcrb.h"

/* The feeder of this process and the binding calls using it. The handle is taken out of g_events
 * under the GVL before the GVL is first released, so only one caller ever drops a feeder, and it
 * is freed once the calls counted on it (events_next, events_stop) have returned. */
typedef struct {
  tc_events_t *ev;
  int calls;
} handle_t;

static handle_t *g_events = NULL;

void tcrb_events_forget_after_fork(void) {
  g_events = NULL; /* the parent's; its thread does not exist here and its memory is left alone */
}

static void *stop_nogvl(void *ev) {
  tc_events_stop(ev);
  return NULL;
}

static void *free_nogvl(void *ev) {
  tc_events_free(ev);
  return NULL;
}

static void drop_events(void) {
  handle_t *h = g_events;
  if (!h) return;
  g_events = NULL;
  rb_thread_call_without_gvl(stop_nogvl, h->ev, RUBY_UBF_IO, NULL);
  while (h->calls > 0) rb_thread_wait_for(rb_time_interval(DBL2NUM(0.001)));
  rb_thread_call_without_gvl(free_nogvl, h->ev, RUBY_UBF_IO, NULL);
  free(h);
}

void tcrb_events_shutdown(void) { drop_events(); }

static bool feeder_running(tc_runtime_t *rt) {
  json_object *st = NULL;
  bool running = tc_events_stats(rt, &st) == TC_OK && json_object_get_boolean(json_object_object_get(st, "running"));
  json_object_put(st);
  return running;
}

/* FFI.events_start(options) -> true (false when already running). */
static VALUE tcrb_events_m_start(VALUE self, VALUE options) {
  tc_runtime_t *rt = tcrb_runtime();
  if (!RB_TYPE_P(options, T_HASH)) tcrb_raise_validation("events options must be a Hash");
  if (g_events) {
    if (feeder_running(rt)) return Qfalse;
    drop_events();            /* releases the GVL: look again at what other threads did meanwhile */
    rt = tcrb_runtime();
    if (g_events) return Qfalse;
  }
  char msg[700];
  json_object *opts = NULL;
  if (tcrb_value_to_json(options, "options", &opts, msg, sizeof msg) != 0) tcrb_raise_validation(msg);
  handle_t *h = calloc(1, sizeof *h);
  if (!h) {
    json_object_put(opts);
    rb_raise(rb_eNoMemError, "out of memory starting lifecycle events");
  }
  tc_error_t err = {0};
  int rc = tc_events_start(rt, opts, &h->ev, &err);
  json_object_put(opts);
  if (rc != TC_OK) {
    free(h);
    tcrb_raise(&err);
  }
  g_events = h;
  return Qtrue;
}

static int next_fn(tcrb_call_t *call) {
  int rc = tc_events_next(call->events, call->timeout_ms, &call->cancel, &call->out, &call->err);
  if (rc == TC_ETIMEDOUT || rc == TC_ECANCELED || rc == TC_ESTOPPED) {
    call->s1[0] = rc == TC_ESTOPPED ? 's' : 't';
    return TC_OK;
  }
  return rc;
}

static void next_ubf(void *arg) {
  tcrb_call_t *call = arg;
  tc_events_interrupt(call->events, &call->cancel);
}

static VALUE next_convert(tcrb_call_t *call) {
  if (!call->out) return call->s1[0] == 's' ? Qfalse : Qnil;
  return tcrb_json_to_value(call->out);
}

static VALUE next_body(VALUE arg) { return tcrb_call_run((tcrb_call_t *)arg); }

static VALUE call_done(VALUE arg) {
  ((handle_t *)arg)->calls--;
  return Qnil;
}

/* FFI.events_next(timeout_seconds) -> event Hash, nil on timeout, false once events stopped. */
static VALUE tcrb_events_m_next(VALUE self, VALUE timeout) {
  tcrb_runtime();
  double seconds = NUM2DBL(timeout);
  if (!(seconds >= 0 && seconds <= 3600)) tcrb_raise_validation("timeout must be between 0 and 3600 seconds");
  handle_t *h = g_events;
  if (!h) return Qfalse;
  tcrb_call_t call = {.fn = next_fn, .convert = next_convert, .events = h->ev,
                      .timeout_ms = (int)(seconds * 1000), .ubf = next_ubf};
  h->calls++;
  return rb_ensure(next_body, (VALUE)&call, call_done, (VALUE)h);
}

static VALUE stop_body(VALUE arg) {
  rb_thread_call_without_gvl(stop_nogvl, ((handle_t *)arg)->ev, RUBY_UBF_IO, NULL);
  return Qtrue;
}

/* FFI.events_stop -> true when a feeder was stopped. Waiting events_next calls return false. */
static VALUE tcrb_events_m_stop(VALUE self) {
  tcrb_runtime();
  handle_t *h = g_events;
  if (!h) return Qfalse;
  h->calls++;
  return rb_ensure(stop_body, (VALUE)h, call_done, (VALUE)h);
}

/* FFI.events_stats -> the core's counters (tc_events_stats). */
static VALUE tcrb_events_m_stats(VALUE self) {
  tc_runtime_t *rt = tcrb_runtime();
  json_object *st = NULL;
  if (tc_events_stats(rt, &st) != TC_OK) rb_raise(rb_eNoMemError, "out of memory reading event stats");
  VALUE result = tcrb_json_to_value(st);
  json_object_put(st);
  return result;
}

/* FFI.event_names(kind, from_state, to_state) -> the catalogue names of one transition. */
static VALUE tcrb_events_m_names(VALUE self, VALUE kind, VALUE from, VALUE to) {
  char k[16], f[64], t[64];
  tcrb_copy_string(kind, "kind", k, sizeof k);
  if (!NIL_P(from)) tcrb_copy_string(from, "from_state", f, sizeof f);
  tcrb_copy_string(to, "to_state", t, sizeof t);
  const char *names[3];
  int n = tc_events_names(k, NIL_P(from) ? NULL : f, t, names);
  VALUE out = rb_ary_new_capa(n);
  for (int i = 0; i < n; i++) rb_ary_push(out, rb_str_new_cstr(names[i]));
  return out;
}

void tcrb_events_init(void) {
  rb_define_module_function(tcrb_mFFI, "events_start", tcrb_events_m_start, 1);
  rb_define_module_function(tcrb_mFFI, "events_next", tcrb_events_m_next, 1);
  rb_define_module_function(tcrb_mFFI, "events_stop", tcrb_events_m_stop, 0);
  rb_define_module_function(tcrb_mFFI, "events_stats", tcrb_events_m_stats, 0);
  rb_define_module_function(tcrb_mFFI, "event_names", tcrb_events_m_names, 3);
}
