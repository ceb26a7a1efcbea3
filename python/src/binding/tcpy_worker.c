/*
 * tcpy_worker.c - the worker functions of tasker_core._tasker_core: start, next_step,
 * complete_step, checkpoint_step, abandon_step, stop, status, and the observability services.
 *
 * Handler threads are Python threads: they wait in next_step with the GIL released (short waits,
 * so a stop or a signal is seen at once), run the handler with the GIL, and hand the result back
 * through complete_step. The engine's own threads never call Python.
 */
#include <string.h>

#include "tcpy.h"

static tc_worker_t *g_worker = NULL;
static tc_obs_t *g_obs = NULL; /* the worker's observability services; freed before the worker */
static tc_web_t *g_web = NULL; /* the worker's web server (options.web.enabled); stopped first */

void tcpy_worker_forget_after_fork(void) {
  tc_worker_abandon(g_worker);
  g_worker = NULL;
  g_obs = NULL; /* the parent's; its memory is left alone like the worker's */
  g_web = NULL; /* its threads do not exist in the child */
}

/* Stops and frees the current worker once no engine call uses it. The globals are taken before
 * the GIL is first released, so a second caller finds nothing to free twice. */
static void drop_worker(void) {
  if (!g_worker) return;
  tc_worker_t *w = g_worker;
  tc_web_t *web = g_web;
  tc_obs_t *obs = g_obs;
  g_worker = NULL;
  g_web = NULL;
  g_obs = NULL;
  Py_BEGIN_ALLOW_THREADS
  tc_worker_stop(w);
  Py_END_ALLOW_THREADS
  tcpy_wait_for_zero(&tcpy_worker_calls);
  Py_BEGIN_ALLOW_THREADS
  tc_web_stop(web); /* waits for requests in progress */
  tc_obs_free(obs);
  tc_worker_free(w);
  Py_END_ALLOW_THREADS
}

void tcpy_worker_shutdown(void) { drop_worker(); }

static tc_worker_t *current_worker(void) {
  if (!tcpy_runtime()) return NULL; /* forgets a forked parent's worker */
  if (!g_worker) tcpy_raise_class("WorkerStoppedError", "no worker has been started in this process");
  return g_worker;
}

/* Adds the web server's address to a worker status ({"enabled": false} without one). */
static void add_web(json_object *st) {
  json_object *web = json_object_new_object();
  if (!web) return;
  json_object_object_add(web, "enabled", json_object_new_boolean(g_web != NULL));
  if (g_web) {
    json_object_object_add(web, "bind_address", json_object_new_string(tc_web_bind_address(g_web)));
    json_object_object_add(web, "port", json_object_new_int(tc_web_port(g_web)));
  }
  json_object_object_add(st, "web", web);
}

static PyObject *status_of(tc_worker_t *w) {
  json_object *st = NULL;
  tc_error_t err = {0};
  if (tc_worker_status(w, &st, &err) != TC_OK) return tcpy_raise(&err);
  add_web(st);
  PyObject *result = tcpy_json_to_py(st);
  json_object_put(st);
  return result;
}

/* worker_start(options: dict) -> the worker's status. Replaces a stopped worker. options as
 * tc_worker_new's, plus "observability" (tc_obs_new's options) and "web" (tc_web_start's, with
 * "enabled"). */
static PyObject *m_worker_start(PyObject *self, PyObject *args) {
  PyObject *options;
  if (!PyArg_ParseTuple(args, "O!:worker_start", &PyDict_Type, &options)) return NULL;
  tc_runtime_t *rt = tcpy_runtime();
  if (!rt) return NULL;
  if (g_worker) {
    json_object *st = NULL;
    tc_error_t e = {0};
    bool running = tc_worker_status(g_worker, &st, &e) == TC_OK &&
                   json_object_get_boolean(json_object_object_get(st, "running"));
    json_object_put(st);
    if (running) return tcpy_raise_class("StateError", "a worker is already running in this process");
    drop_worker();
  }
  json_object *opts = NULL;
  if (tcpy_py_to_json(options, "options", &opts) != 0) return NULL;
  tc_error_t err = {0};
  tc_worker_t *w = NULL;
  tc_obs_t *obs = NULL;
  tc_web_t *web = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = tc_worker_new(rt, opts, &w, &err);
  if (rc == TC_OK) rc = tc_obs_new(rt, w, json_object_object_get(opts, "observability"), &obs, &err);
  json_object *web_opts = json_object_object_get(opts, "web");
  bool web_on = web_opts && json_object_get_boolean(json_object_object_get(web_opts, "enabled"));
  if (rc == TC_OK && web_on) rc = tc_web_start(rt, obs, web_opts, &web, &err);
  if (rc == TC_OK) rc = tc_worker_start(w, &err);
  if (rc != TC_OK) {
    tc_web_stop(web);
    tc_obs_free(obs);
    tc_worker_free(w);
  }
  Py_END_ALLOW_THREADS
  json_object_put(opts);
  if (rc != TC_OK) return tcpy_raise(&err);
  if (g_worker) { /* another thread started one while this one was starting */
    Py_BEGIN_ALLOW_THREADS
    tc_web_stop(web);
    tc_obs_free(obs);
    tc_worker_free(w);
    Py_END_ALLOW_THREADS
    return tcpy_raise_class("StateError", "a worker is already running in this process");
  }
  g_worker = w;
  g_obs = obs;
  g_web = web;
  return status_of(w);
}

static int next_fn(tcpy_call_t *call) {
  int rc = tc_worker_next_step(call->worker, call->timeout_ms, &call->cancel, &call->out, &call->err);
  /* Timeouts, stops and cancellations are answers, not errors, for the Python loop. */
  if (rc == TC_ETIMEDOUT || rc == TC_ECANCELED || rc == TC_ESTOPPED) {
    call->s1[0] = rc == TC_ESTOPPED ? 's' : 't';
    return TC_OK;
  }
  return rc;
}

static void next_abandon(tcpy_call_t *call) { tc_worker_requeue(call->worker, call->out); }

/* next_step(timeout_seconds) -> step event dict, None on timeout, False once the worker stopped. */
static PyObject *m_next_step(PyObject *self, PyObject *args) {
  double seconds;
  if (!PyArg_ParseTuple(args, "d:next_step", &seconds)) return NULL;
  tc_worker_t *w = current_worker();
  if (!w) return NULL;
  if (!(seconds >= 0 && seconds <= 3600)) return tcpy_raise_validation("timeout must be between 0 and 3600 seconds");
  /* A step already queued is taken without releasing the GIL: no thread switch per step under load. */
  json_object *ev = NULL;
  if (tc_worker_try_next_step(w, &ev)) {
    PyObject *queued = tcpy_json_to_py(ev);
    if (queued) json_object_put(ev);
    else tc_worker_requeue(w, ev);
    return queued;
  }
  tcpy_call_t call = {.fn = next_fn, .on_abandon = next_abandon, .worker = w, .timeout_ms = (int)(seconds * 1000)};
  PyObject *event = tcpy_call_run(&call);
  if (event == Py_None && call.s1[0] == 's') {
    Py_DECREF(event);
    Py_RETURN_FALSE;
  }
  return event;
}

static int complete_fn(tcpy_call_t *call) {
  return tc_worker_complete_step(call->worker, call->s1, call->s2, call->in, &call->out, &call->err);
}

/* A next step claimed with the result but never handed to Python goes back to the worker's queue. */
static void complete_abandon(tcpy_call_t *call) {
  json_object *next = json_object_object_get(call->out, "next_steps");
  if (next && json_object_is_type(next, json_type_array) && json_object_array_length(next) > 0)
    tc_worker_requeue(call->worker, json_object_get(json_object_array_get_idx(next, 0)));
  json_object_put(call->out);
}

/* Parses (step_uuid, claim_token, dict) into call; what names the dict in messages. */
static int step_args(PyObject *args, const char *format, const char *what, tcpy_call_t *call) {
  PyObject *step_uuid, *claim_token, *data;
  if (!PyArg_ParseTuple(args, format, &step_uuid, &claim_token, &data)) return -1;
  if (tcpy_copy_string(step_uuid, "step_uuid", call->s1, sizeof call->s1, 1) ||
      tcpy_copy_string(claim_token, "claim_token", call->s2, sizeof call->s2, 1))
    return -1;
  if (!PyDict_Check(data)) {
    char msg[100];
    snprintf(msg, sizeof msg, "the step %s must be a dict", what);
    tcpy_raise_validation(msg);
    return -1;
  }
  return tcpy_py_to_json(data, what, &call->in);
}

/* complete_step(step_uuid, claim_token, result) -> {"applied", "step_status", "task_status",
 * "enqueued", "next_steps"}; an event in next_steps is the caller's to run. A plain result that
 * joined another thread's flush answers {"posted": True, "next_steps": []} at once (its slot's next
 * step goes to the queue). */
static PyObject *m_complete_step(PyObject *self, PyObject *args) {
  tc_worker_t *w = current_worker();
  if (!w) return NULL;
  tcpy_call_t call = {.fn = complete_fn, .on_abandon = complete_abandon, .worker = w};
  if (step_args(args, "OOO:complete_step", "result", &call) != 0) {
    json_object_put(call.in);
    return NULL;
  }
  bool posted = false;
  tc_error_t err = {0};
  int rc = tc_worker_post_step(w, call.s1, call.s2, call.in, &posted, &err);
  if (rc != TC_OK || posted) {
    json_object_put(call.in);
    if (rc != TC_OK) return tcpy_raise(&err);
    return Py_BuildValue("{s:O,s:[]}", "posted", Py_True, "next_steps");
  }
  return tcpy_call_run(&call);
}

static int checkpoint_fn(tcpy_call_t *call) {
  return tc_worker_checkpoint_step(call->worker, call->s1, call->s2, call->in, &call->out, &call->err);
}

/* checkpoint_step(step_uuid, claim_token, checkpoint) -> {"applied", "event"} */
static PyObject *m_checkpoint_step(PyObject *self, PyObject *args) {
  tc_worker_t *w = current_worker();
  if (!w) return NULL;
  tcpy_call_t call = {.fn = checkpoint_fn, .worker = w};
  if (step_args(args, "OOO:checkpoint_step", "checkpoint", &call) != 0) return NULL;
  return tcpy_call_run(&call);
}

/* abandon_step(claim_token) -> None: stop keeping a step whose result cannot be submitted. */
static PyObject *m_abandon_step(PyObject *self, PyObject *args) {
  PyObject *claim_token;
  if (!PyArg_ParseTuple(args, "O:abandon_step", &claim_token)) return NULL;
  tc_worker_t *w = current_worker();
  if (!w) return NULL;
  char token[80];
  if (tcpy_copy_string(claim_token, "claim_token", token, sizeof token, 1)) return NULL;
  tc_worker_abandon_step(w, token);
  Py_RETURN_NONE;
}

/* worker_handler_threads(delta, lost) -> None: a handler thread started (+1) or ended (-1; lost
 * when the worker was still running). Nothing without a worker. */
static PyObject *m_handler_threads(PyObject *self, PyObject *args) {
  int delta, lost;
  if (!PyArg_ParseTuple(args, "ip:worker_handler_threads", &delta, &lost)) return NULL;
  if (g_worker) tc_worker_handler_threads(g_worker, delta, lost);
  Py_RETURN_NONE;
}

/* worker_stop() -> True when a worker was stopped. Running handlers may still complete. */
static PyObject *m_worker_stop(PyObject *self, PyObject *unused) {
  if (!tcpy_runtime()) return NULL;
  if (!g_worker) Py_RETURN_FALSE;
  tc_worker_t *w = g_worker;
  tcpy_worker_calls++; /* a concurrent drop frees the worker only after this stop */
  Py_BEGIN_ALLOW_THREADS
  tc_worker_stop(w);
  Py_END_ALLOW_THREADS
  tcpy_worker_calls--;
  Py_RETURN_TRUE;
}

/* worker_status() -> the status dict, or None without a worker. */
static PyObject *m_worker_status(PyObject *self, PyObject *unused) {
  if (!tcpy_runtime()) return NULL;
  if (!g_worker) Py_RETURN_NONE;
  return status_of(g_worker);
}

typedef struct {
  tcpy_call_t call;
  char service[64];
  char *text;
} obs_call_t;

static int obs_fn(tcpy_call_t *call) {
  obs_call_t *oc = (obs_call_t *)call;
  return tc_obs_call(g_obs, oc->service, call->in, &oc->text, &call->err);
}

/* obs_call(service, args_or_None) -> the service's answer as text (JSON, or Prometheus text). */
static PyObject *m_obs_call(PyObject *self, PyObject *args) {
  PyObject *service, *service_args = Py_None;
  if (!PyArg_ParseTuple(args, "O|O:obs_call", &service, &service_args)) return NULL;
  if (!tcpy_runtime()) return NULL;
  if (!g_worker || !g_obs) return tcpy_raise_class("WorkerStoppedError", "Worker system not running");
  obs_call_t oc = {.call = {.fn = obs_fn, .worker = g_worker}};
  if (tcpy_copy_string(service, "service", oc.service, sizeof oc.service, 0)) return NULL;
  if (service_args != Py_None) {
    if (!PyDict_Check(service_args)) return tcpy_raise_validation("args must be a dict");
    if (tcpy_py_to_json(service_args, "args", &oc.call.in) != 0) return NULL;
  }
  PyObject *none = tcpy_call_run(&oc.call);
  if (!none) {
    tc_obs_text_free(oc.text);
    return NULL;
  }
  Py_DECREF(none);
  PyObject *text = PyUnicode_DecodeUTF8(oc.text ? oc.text : "", oc.text ? (Py_ssize_t)strlen(oc.text) : 0, "replace");
  tc_obs_text_free(oc.text);
  return text;
}

PyMethodDef tcpy_worker_methods[] = {
    {"worker_start", m_worker_start, METH_VARARGS, "worker_start(options) -> dict"},
    {"next_step", m_next_step, METH_VARARGS, "next_step(timeout_seconds) -> dict, None or False"},
    {"complete_step", m_complete_step, METH_VARARGS, "complete_step(step_uuid, claim_token, result) -> dict"},
    {"checkpoint_step", m_checkpoint_step, METH_VARARGS, "checkpoint_step(step_uuid, claim_token, checkpoint) -> dict"},
    {"abandon_step", m_abandon_step, METH_VARARGS, "abandon_step(claim_token) -> None"},
    {"worker_handler_threads", m_handler_threads, METH_VARARGS, "worker_handler_threads(delta, lost) -> None"},
    {"worker_stop", m_worker_stop, METH_NOARGS, "worker_stop() -> bool"},
    {"worker_status", m_worker_status, METH_NOARGS, "worker_status() -> dict or None"},
    {"obs_call", m_obs_call, METH_VARARGS, "obs_call(service, args=None) -> str"},
    {NULL, NULL, 0, NULL}};
