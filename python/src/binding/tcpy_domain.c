/*
 * tcpy_domain.c - domain events (SPEC 8.2) of tasker_core._tasker_core: domain_publish,
 * domain_read, domain_ack. A step's declared events travel in its result envelope instead.
 */
#include "tcpy.h"

static int publish_fn(tcpy_call_t *call) { return tc_domain_publish(call->rt, call->in, &call->out, &call->err); }

/* domain_publish(event: dict) -> {"event_id", "written"} */
static PyObject *m_domain_publish(PyObject *self, PyObject *args) {
  PyObject *event;
  if (!PyArg_ParseTuple(args, "O!:domain_publish", &PyDict_Type, &event)) return NULL;
  tcpy_call_t call = {.fn = publish_fn, .rt = tcpy_runtime()};
  if (!call.rt || tcpy_py_to_json(event, "event", &call.in) != 0) return NULL;
  return tcpy_call_run(&call);
}

typedef struct {
  tcpy_call_t call;
  int limit, visibility;
} read_call_t;

static int read_fn(tcpy_call_t *call) {
  read_call_t *rc = (read_call_t *)call;
  return tc_domain_read(call->rt, call->s1, rc->limit, rc->visibility, call->in, &call->out, &call->err);
}

/* domain_read(consumer, limit, visibility_seconds, modes_or_None) -> list of leased DomainEvents */
static PyObject *m_domain_read(PyObject *self, PyObject *args) {
  PyObject *consumer, *modes = Py_None;
  int limit, visibility;
  if (!PyArg_ParseTuple(args, "Oii|O:domain_read", &consumer, &limit, &visibility, &modes)) return NULL;
  read_call_t rc = {.call = {.fn = read_fn, .rt = tcpy_runtime()}, .limit = limit, .visibility = visibility};
  if (!rc.call.rt || tcpy_copy_string(consumer, "consumer", rc.call.s1, sizeof rc.call.s1, 0)) return NULL;
  if (modes != Py_None) {
    if (!PyList_Check(modes)) return tcpy_raise_validation("modes must be a list of delivery modes");
    if (tcpy_py_to_json(modes, "modes", &rc.call.in) != 0) return NULL;
  }
  return tcpy_call_run(&rc.call);
}

static int ack_fn(tcpy_call_t *call) { return tc_domain_ack(call->rt, call->s1, call->in, &call->out, &call->err); }

/* domain_ack(consumer, event_ids) -> {"acknowledged": n} */
static PyObject *m_domain_ack(PyObject *self, PyObject *args) {
  PyObject *consumer, *ids;
  if (!PyArg_ParseTuple(args, "OO!:domain_ack", &consumer, &PyList_Type, &ids)) return NULL;
  tcpy_call_t call = {.fn = ack_fn, .rt = tcpy_runtime()};
  if (!call.rt || tcpy_copy_string(consumer, "consumer", call.s1, sizeof call.s1, 0)) return NULL;
  if (tcpy_py_to_json(ids, "event_ids", &call.in) != 0) return NULL;
  return tcpy_call_run(&call);
}

PyMethodDef tcpy_domain_methods[] = {
    {"domain_publish", m_domain_publish, METH_VARARGS, "domain_publish(event) -> dict"},
    {"domain_read", m_domain_read, METH_VARARGS, "domain_read(consumer, limit, visibility_seconds, modes=None) -> list"},
    {"domain_ack", m_domain_ack, METH_VARARGS, "domain_ack(consumer, event_ids) -> dict"},
    {NULL, NULL, 0, NULL}};
