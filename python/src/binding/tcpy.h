/*
 * tcpy.h - shared declarations of the Python binding, the only code that includes Python.h.
 *
 * Every function here runs with the GIL held unless it says otherwise; engine calls that may
 * block run through tcpy_call_run, which releases the GIL around them.
 */
#ifndef TCPY_H
#define TCPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "tasker.h"

/* ---- json-c <-> Python (tcpy_convert.c). ---- */
/* A new Python object for a JSON value (NULL json is None); NULL with an exception set when out
 * of memory. */
PyObject *tcpy_json_to_py(json_object *obj);
/* Converts a Python value into a new json_object in *out (NULL for None). On failure returns -1
 * with tasker_core.errors.ValidationError set, its message naming the path of the bad value
 * (e.g. "context.items[2]"). Plain data only: dict (str keys), list, tuple, str, int, float, bool,
 * None. */
int tcpy_py_to_json(PyObject *v, const char *root, json_object **out);

/* ---- Errors (tcpy_errors.c). ---- */
/* Sets the tasker_core.errors exception for err->code (MemoryError for TC_ENOMEM); returns NULL. */
PyObject *tcpy_raise(const tc_error_t *err);
/* Sets tasker_core.errors.<name> with a message; returns NULL. */
PyObject *tcpy_raise_class(const char *name, const char *msg);
/* Sets ValidationError with a message; returns NULL. */
PyObject *tcpy_raise_validation(const char *msg);

/* ---- Calls that run without the GIL (tcpy_call.c). ----
 * The call owns in and out: tcpy_call_run releases both exactly once, or hands an out it could
 * not convert to on_abandon (a step event goes back to the worker's queue). */
typedef struct tcpy_call tcpy_call_t;
struct tcpy_call {
  int (*fn)(tcpy_call_t *call);           /* runs without the GIL */
  void (*on_abandon)(tcpy_call_t *call);  /* out was produced but could not be converted */
  tc_runtime_t *rt;
  tc_worker_t *worker;
  json_object *in;
  json_object *out;
  char s1[80], s2[80];
  int timeout_ms;
  tc_cancel_t cancel;
  tc_error_t err;
  int rc;
};
/* Engine calls running without the GIL now, and those of them using the worker: shutdown and the
 * worker's replacement wait for zero. Read and written with the GIL held. */
extern int tcpy_active_calls;
extern int tcpy_worker_calls;
/* Runs call->fn without the GIL; raises on failure; returns the converted out (None for none). */
PyObject *tcpy_call_run(tcpy_call_t *call);
/* Waits, GIL released in between, until *counter is zero. */
void tcpy_wait_for_zero(int *counter);

/* Copies a str argument (UUIDs and names) into buf; -1 with ValidationError naming what when it
 * is no str, too long or holds NUL. uuid: lower-cased (the engine's canonical text). */
int tcpy_copy_string(PyObject *v, const char *what, char *buf, size_t cap, int uuid);

/* ---- The process's runtime (tcpy_runtime.c). ---- */
/* The bootstrapped runtime, or NULL with FFIError set. A runtime inherited through fork is
 * abandoned first. */
tc_runtime_t *tcpy_runtime(void);
void tcpy_worker_forget_after_fork(void);
void tcpy_worker_shutdown(void);

extern PyMethodDef tcpy_runtime_methods[];
extern PyMethodDef tcpy_client_methods[];
extern PyMethodDef tcpy_worker_methods[];
extern PyMethodDef tcpy_log_methods[];
extern PyMethodDef tcpy_domain_methods[];

#endif /* TCPY_H */
