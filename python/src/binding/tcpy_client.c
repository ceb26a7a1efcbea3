/*
 * tcpy_client.c - the client_* functions of tasker_core._tasker_core: plain dicts in and out
 * (seed 000's raw FFI; tasker_core.client.TaskerClient types them).
 */
#include <stdint.h>
#include <string.h>

#include "tcpy.h"

static int create_fn(tcpy_call_t *call) { return tc_client_create_task(call->rt, call->in, &call->out, &call->err); }

/* client_create_task(request: dict) -> the task (as client_get_task) plus "created", "step_count" */
static PyObject *m_create_task(PyObject *self, PyObject *args) {
  PyObject *request;
  if (!PyArg_ParseTuple(args, "O:client_create_task", &request)) return NULL;
  if (!PyDict_Check(request)) return tcpy_raise_validation("the task request must be a dict");
  tcpy_call_t call = {.fn = create_fn, .rt = tcpy_runtime()};
  if (!call.rt || tcpy_py_to_json(request, "request", &call.in) != 0) return NULL;
  return tcpy_call_run(&call);
}

static int create_many_fn(tcpy_call_t *call) { return tc_client_create_tasks(call->rt, call->in, &call->out, &call->err); }

/* client_create_tasks(requests: list of dicts) -> list of client_create_task answers, in order */
static PyObject *m_create_tasks(PyObject *self, PyObject *args) {
  PyObject *requests;
  if (!PyArg_ParseTuple(args, "O:client_create_tasks", &requests)) return NULL;
  if (!PyList_Check(requests)) return tcpy_raise_validation("requests must be a list of task request dicts");
  Py_ssize_t n = PyList_GET_SIZE(requests);
  char msg[160];
  if (n > TC_CLIENT_CREATE_TASKS_MAX) {
    snprintf(msg, sizeof msg, "requests has %zd task requests; the limit is %d per call", n, TC_CLIENT_CREATE_TASKS_MAX);
    return tcpy_raise_validation(msg);
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    if (!PyDict_Check(PyList_GET_ITEM(requests, i))) {
      snprintf(msg, sizeof msg, "requests[%zd]: the task request must be a dict", i);
      return tcpy_raise_validation(msg);
    }
  }
  tcpy_call_t call = {.fn = create_many_fn, .rt = tcpy_runtime()};
  if (!call.rt || tcpy_py_to_json(requests, "requests", &call.in) != 0) return NULL;
  return tcpy_call_run(&call);
}

static int get_task_fn(tcpy_call_t *call) { return tc_client_get_task(call->rt, call->s1, &call->out, &call->err); }
static int list_steps_fn(tcpy_call_t *call) { return tc_client_list_task_steps(call->rt, call->s1, &call->out, &call->err); }
static int cancel_fn(tcpy_call_t *call) { return tc_client_cancel_task(call->rt, call->s1, &call->out, &call->err); }
static int get_step_fn(tcpy_call_t *call) { return tc_client_get_step(call->rt, call->s1, call->s2, &call->out, &call->err); }
static int audit_fn(tcpy_call_t *call) {
  return tc_client_get_step_audit_history(call->rt, call->s1, call->s2, &call->out, &call->err);
}
static int health_fn(tcpy_call_t *call) { return tc_client_health_check(call->rt, &call->out, &call->err); }

/* A call on one task (s1) or one step of it (s2). */
static PyObject *task_call(PyObject *args, const char *format, int (*fn)(tcpy_call_t *), bool step) {
  PyObject *task_uuid, *step_uuid = NULL;
  if (step ? !PyArg_ParseTuple(args, format, &task_uuid, &step_uuid) : !PyArg_ParseTuple(args, format, &task_uuid))
    return NULL;
  tcpy_call_t call = {.fn = fn, .rt = tcpy_runtime()};
  if (!call.rt || tcpy_copy_string(task_uuid, "task_uuid", call.s1, sizeof call.s1, 1)) return NULL;
  if (step && tcpy_copy_string(step_uuid, "step_uuid", call.s2, sizeof call.s2, 1)) return NULL;
  return tcpy_call_run(&call);
}

/* client_get_task(task_uuid) -> the task with its execution summary and steps */
static PyObject *m_get_task(PyObject *self, PyObject *args) { return task_call(args, "O:client_get_task", get_task_fn, false); }
/* client_list_task_steps(task_uuid) -> list of steps */
static PyObject *m_list_task_steps(PyObject *self, PyObject *args) {
  return task_call(args, "O:client_list_task_steps", list_steps_fn, false);
}
/* client_cancel_task(task_uuid) -> {"cancelled": True, ...} */
static PyObject *m_cancel_task(PyObject *self, PyObject *args) { return task_call(args, "O:client_cancel_task", cancel_fn, false); }
/* client_get_step(task_uuid, step_uuid) -> the step */
static PyObject *m_get_step(PyObject *self, PyObject *args) { return task_call(args, "OO:client_get_step", get_step_fn, true); }
/* client_get_step_audit_history(task_uuid, step_uuid) -> list of entries, newest first */
static PyObject *m_get_step_audit_history(PyObject *self, PyObject *args) {
  return task_call(args, "OO:client_get_step_audit_history", audit_fn, true);
}

/* client_health_check() -> {"healthy", "status", "timestamp", ...} */
static PyObject *m_health_check(PyObject *self, PyObject *unused) {
  tcpy_call_t call = {.fn = health_fn, .rt = tcpy_runtime()};
  if (!call.rt) return NULL;
  return tcpy_call_run(&call);
}

typedef struct {
  tcpy_call_t call;
  int64_t limit, offset;
  bool has_ns, has_status, with_total;
  char ns[256];
  char status[64];
} list_call_t;

static int list_tasks_fn(tcpy_call_t *call) {
  list_call_t *lc = (list_call_t *)call;
  /* Seed 000's list_tasks filters by namespace and status only. */
  return tc_client_list_tasks(call->rt, lc->limit, lc->offset, lc->has_ns ? lc->ns : NULL, lc->has_status ? lc->status : NULL,
                              NULL, NULL, lc->with_total, &call->out, &call->err);
}

/* An int argument as int64_t: values beyond its range saturate (the core reports them as out of range). */
static int int_arg(PyObject *v, const char *what, int64_t *out) {
  if (!PyLong_Check(v) || PyBool_Check(v)) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s must be an int, got %s", what, Py_TYPE(v)->tp_name);
    tcpy_raise_validation(msg);
    return -1;
  }
  int overflow = 0;
  long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
  if (overflow) n = overflow < 0 ? INT64_MIN : INT64_MAX;
  *out = (int64_t)n;
  return 0;
}

/* client_list_tasks(limit, offset, namespace_or_None, status_or_None, with_total=True)
 * -> {"tasks", "pagination"} */
static PyObject *m_list_tasks(PyObject *self, PyObject *args) {
  PyObject *limit, *offset, *ns, *status;
  int with_total = 1;
  if (!PyArg_ParseTuple(args, "OOOO|p:client_list_tasks", &limit, &offset, &ns, &status, &with_total)) return NULL;
  list_call_t lc = {.call = {.fn = list_tasks_fn, .rt = tcpy_runtime()}, .with_total = with_total};
  if (!lc.call.rt || int_arg(limit, "limit", &lc.limit) || int_arg(offset, "offset", &lc.offset)) return NULL;
  if (ns != Py_None) {
    if (tcpy_copy_string(ns, "namespace", lc.ns, sizeof lc.ns, 0)) return NULL;
    lc.has_ns = true;
  }
  if (status != Py_None) {
    if (tcpy_copy_string(status, "status", lc.status, sizeof lc.status, 0)) return NULL;
    lc.has_status = true;
  }
  return tcpy_call_run(&lc.call);
}

PyMethodDef tcpy_client_methods[] = {
    {"client_create_task", m_create_task, METH_VARARGS, "client_create_task(request) -> dict"},
    {"client_create_tasks", m_create_tasks, METH_VARARGS, "client_create_tasks(requests) -> list"},
    {"client_get_task", m_get_task, METH_VARARGS, "client_get_task(task_uuid) -> dict"},
    {"client_list_tasks", m_list_tasks, METH_VARARGS,
     "client_list_tasks(limit, offset, namespace, status, with_total=True) -> dict"},
    {"client_cancel_task", m_cancel_task, METH_VARARGS, "client_cancel_task(task_uuid) -> dict"},
    {"client_list_task_steps", m_list_task_steps, METH_VARARGS, "client_list_task_steps(task_uuid) -> list"},
    {"client_get_step", m_get_step, METH_VARARGS, "client_get_step(task_uuid, step_uuid) -> dict"},
    {"client_get_step_audit_history", m_get_step_audit_history, METH_VARARGS,
     "client_get_step_audit_history(task_uuid, step_uuid) -> list"},
    {"client_health_check", m_health_check, METH_NOARGS, "client_health_check() -> dict"},
    {NULL, NULL, 0, NULL}};
