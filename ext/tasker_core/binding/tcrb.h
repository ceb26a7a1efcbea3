/*
 * tcrb.h - shared declarations of the Ruby binding, the only code that includes ruby.h.
 */
#ifndef TCRB_H
#define TCRB_H

#include <ruby.h>
#include <ruby/thread.h>

#include "tasker.h"

extern VALUE tcrb_mTaskerCore;
extern VALUE tcrb_mFFI;

/* ---- json-c <-> Ruby (tcrb_convert.c); both run with the GVL held. ---- */
/* A new Ruby object for a JSON value (NULL is nil). */
VALUE tcrb_json_to_value(json_object *obj);
/* Converts a Ruby value into a new json_object in *out (NULL for nil). On failure returns -1 and
 * writes a message naming the path of the bad value (e.g. "context.items[2]") into msg. Never
 * raises for plain data (Hash, Array, String, Symbol, Integer, Float, true, false, nil). */
int tcrb_value_to_json(VALUE v, const char *root, json_object **out, char *msg, size_t msg_len);

/* ---- Errors (tcrb_errors.c). ---- */
/* The TaskerCore::Errors exception for err->code with err->message (NoMemoryError for TC_ENOMEM),
 * not raised. */
VALUE tcrb_error_new(const tc_error_t *err);
/* Raises the TaskerCore::Errors class for err->code with err->message. */
NORETURN(void tcrb_raise(const tc_error_t *err));
/* Raises TaskerCore::Errors::ValidationError with a message. */
NORETURN(void tcrb_raise_validation(const char *msg));
/* Raises TaskerCore::Errors::<name> with a message. */
NORETURN(void tcrb_raise_class(const char *name, const char *msg));

/* ---- Calls that run without the GVL (tcrb_call.c). ----
 * A tcrb_call_t owns the json it carries: whatever happens (errors, Thread#kill, Ctrl-C),
 * tcrb_call_run's cleanup releases in/out exactly once, and on_abandon (when set) can hand an
 * unconsumed out back to the core instead (a step event goes back to the worker's queue). */
typedef struct tcrb_call tcrb_call_t;
struct tcrb_call {
  int (*fn)(tcrb_call_t *call);           /* runs without the GVL */
  VALUE (*convert)(tcrb_call_t *call);    /* runs with the GVL after fn succeeded */
  void (*on_abandon)(tcrb_call_t *call);  /* out was produced but not converted */
  tc_runtime_t *rt;
  tc_worker_t *worker;
  tc_events_t *events;
  json_object *in;
  json_object *out;
  char s1[80], s2[80];
  int timeout_ms;
  tc_cancel_t cancel;
  rb_unblock_function_t *ubf;
  tc_error_t err;
  int rc;
  bool ran;
  bool consumed;
  bool counted;
};
extern int tcrb_active_calls;
extern int tcrb_worker_calls;
/* Runs call->fn without the GVL, raises on failure, returns call->convert's value (or the
 * plain converted out when convert is NULL). */
VALUE tcrb_call_run(tcrb_call_t *call);
/* Converts call->out, produced with the GVL held (fn is not run), with tcrb_call_run's cleanup. */
VALUE tcrb_call_convert(tcrb_call_t *call);

/* ---- The process's runtime (tcrb_runtime.c). ---- */
/* The bootstrapped runtime; raises FFIError "runtime not bootstrapped" when there is none. A
 * runtime inherited through fork is abandoned first. */
tc_runtime_t *tcrb_runtime(void);
/* Copies a Ruby String argument (UUIDs and names) into buf or raises ValidationError. */
void tcrb_copy_string(VALUE v, const char *what, char *buf, size_t cap);
/* Raises ValidationError naming what unless v is a String without NUL bytes. */
void tcrb_check_string(VALUE v, const char *what);
/* A Ruby String argument as a new JSON string, whatever its length (no fixed buffer: names are
 * bounded by the core's checks, not by the binding); raises as tcrb_check_string, NULL when out of
 * memory (never raises then, so a caller can release what it holds). */
json_object *tcrb_string_json(VALUE v, const char *what);
/* tcrb_copy_string for a UUID argument, lower-cased (the engine's canonical text). */
void tcrb_copy_uuid(VALUE v, const char *what, char *buf, size_t cap);

void tcrb_runtime_init(void);
void tcrb_client_init(void);
void tcrb_worker_init(void);
void tcrb_operations_init(void);
void tcrb_events_init(void);
void tcrb_domain_init(void);
void tcrb_log_init(void);
/* Stops and frees the lifecycle events feeder (runtime shutdown). */
void tcrb_events_shutdown(void);
/* Called when fork is detected: forgets the parent's feeder. */
void tcrb_events_forget_after_fork(void);
/* Called when fork is detected: drops the worker without joining threads that do not exist. */
void tcrb_worker_forget_after_fork(void);
/* The current worker's observability services (and the worker, in *w); raises WorkerStoppedError
 * "Worker system not running" when no worker was started. */
tc_obs_t *tcrb_current_obs(tc_worker_t **w);
void tcrb_observe_init(void);
/* {namespace, name, version} as a new JSON object for a template lookup (tcrb_observe.c); raises
 * ValidationError naming a bad argument. */
json_object *tcrb_template_args(VALUE ns, VALUE name, VALUE version);

#endif /* TCRB_H */
