/*
 * tcpy_runtime.c - bootstrap/shutdown, migrations, UUIDs, templates and task waits.
 *
 * Global state: g_rt is the process's runtime, created by bootstrap and freed by shutdown; g_pid is
 * the process that created it, so a forked child abandons the parent's runtime (its threads and
 * sockets are the parent's) instead of sharing its connections.
 */
#include <string.h>
#include <unistd.h>

#include "tcpy.h"

static tc_runtime_t *g_rt = NULL;
static pid_t g_pid = 0;

static void forget_if_forked(void) {
  if (g_rt && g_pid != getpid()) {
    tcpy_worker_forget_after_fork();
    tc_runtime_abandon(g_rt);
    g_rt = NULL;
    tcpy_active_calls = 0; /* the threads that were inside calls do not exist here */
    tcpy_worker_calls = 0;
  }
}

tc_runtime_t *tcpy_runtime(void) {
  forget_if_forked();
  if (!g_rt) {
    tcpy_raise_class("FFIError", "the tasker_core runtime is not bootstrapped (call tasker_core.boot())");
    return NULL;
  }
  return g_rt;
}

/* bootstrap(config: dict) -> True, or False when a runtime is already running in this process. */
static PyObject *m_bootstrap(PyObject *self, PyObject *args) {
  PyObject *config;
  if (!PyArg_ParseTuple(args, "O!:bootstrap", &PyDict_Type, &config)) return NULL;
  forget_if_forked();
  if (g_rt) Py_RETURN_FALSE;
  json_object *cfg = NULL;
  if (tcpy_py_to_json(config, "config", &cfg) != 0) return NULL;
  tc_error_t err = {0};
  tc_runtime_t *rt = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = tc_runtime_new(cfg, &rt, &err);
  Py_END_ALLOW_THREADS
  json_object_put(cfg);
  if (rc != TC_OK) return tcpy_raise(&err);
  if (g_rt) { /* another thread bootstrapped meanwhile */
    tc_runtime_free(rt);
    Py_RETURN_FALSE;
  }
  g_rt = rt;
  g_pid = getpid();
  Py_RETURN_TRUE;
}

/* shutdown() -> True when a runtime was shut down: stops the worker, waits for engine calls in
 * flight on other threads, closes every connection. */
static PyObject *m_shutdown(PyObject *self, PyObject *unused) {
  forget_if_forked();
  if (!g_rt) Py_RETURN_FALSE;
  tc_runtime_t *rt = g_rt;
  g_rt = NULL; /* calls that start meanwhile raise FFIError instead of using it */
  tcpy_worker_shutdown();
  tcpy_wait_for_zero(&tcpy_active_calls);
  Py_BEGIN_ALLOW_THREADS
  tc_runtime_free(rt);
  Py_END_ALLOW_THREADS
  Py_RETURN_TRUE;
}

static PyObject *m_running(PyObject *self, PyObject *unused) {
  forget_if_forked();
  return PyBool_FromLong(g_rt != NULL);
}

static int migrate_fn(tcpy_call_t *call) { return tc_migrate(call->rt, &call->out, &call->err); }

static PyObject *m_migrate(PyObject *self, PyObject *unused) {
  tcpy_call_t call = {.fn = migrate_fn, .rt = tcpy_runtime()};
  if (!call.rt) return NULL;
  return tcpy_call_run(&call);
}

static PyObject *m_schema_version(PyObject *self, PyObject *unused) { return PyLong_FromLong(tc_schema_version()); }

static PyObject *m_uuid_v7(PyObject *self, PyObject *unused) {
  char buf[37];
  tc_uuid_v7(buf);
  return PyUnicode_FromString(buf);
}

/* database_url_check(url) -> True; ConfigurationError (never naming the URL) when libpq cannot parse it. */
static PyObject *m_database_url_check(PyObject *self, PyObject *args) {
  PyObject *url;
  if (!PyArg_ParseTuple(args, "O:database_url_check", &url)) return NULL;
  Py_ssize_t len = 0;
  const char *text = PyUnicode_Check(url) ? PyUnicode_AsUTF8AndSize(url, &len) : NULL;
  if (!text || memchr(text, '\0', (size_t)len)) {
    PyErr_Clear();
    return tcpy_raise_class("ConfigurationError", "database_url must be a str without NUL characters");
  }
  tc_error_t err = {0};
  if (tc_database_url_check(text, &err) != TC_OK) return tcpy_raise(&err);
  Py_RETURN_TRUE;
}

/* template_normalize(dict) -> the normalized template; TemplateError names template and step. */
static PyObject *m_template_normalize(PyObject *self, PyObject *args) {
  PyObject *tpl;
  if (!PyArg_ParseTuple(args, "O!:template_normalize", &PyDict_Type, &tpl)) return NULL;
  json_object *raw = NULL, *out = NULL;
  if (tcpy_py_to_json(tpl, "template", &raw) != 0) return NULL;
  tc_error_t err = {0};
  int rc = tc_template_normalize(raw, &out, &err);
  json_object_put(raw);
  if (rc != TC_OK) return tcpy_raise(&err);
  PyObject *result = tcpy_json_to_py(out);
  json_object_put(out);
  return result;
}

static int register_fn(tcpy_call_t *call) { return tc_template_register(call->rt, call->in, &call->out, &call->err); }

/* template_register(dict) -> {named_task_uuid, namespace_name, name, version, step_count} */
static PyObject *m_template_register(PyObject *self, PyObject *args) {
  PyObject *tpl;
  if (!PyArg_ParseTuple(args, "O!:template_register", &PyDict_Type, &tpl)) return NULL;
  tcpy_call_t call = {.fn = register_fn, .rt = tcpy_runtime()};
  if (!call.rt) return NULL;
  if (tcpy_py_to_json(tpl, "template", &call.in) != 0) return NULL;
  return tcpy_call_run(&call);
}

typedef struct {
  tcpy_call_t call;
  char ns[256], name[1024], version[256];
} template_call_t;

static int template_get_fn(tcpy_call_t *call) {
  template_call_t *tc = (template_call_t *)call;
  return tc_template_get(call->rt, tc->ns, tc->name, tc->version, &call->out, &call->err);
}

/* template_get(namespace, name, version) -> the registered template */
static PyObject *m_template_get(PyObject *self, PyObject *args) {
  PyObject *ns, *name, *version;
  if (!PyArg_ParseTuple(args, "OOO:template_get", &ns, &name, &version)) return NULL;
  template_call_t tc = {.call = {.fn = template_get_fn, .rt = tcpy_runtime()}};
  if (!tc.call.rt) return NULL;
  if (tcpy_copy_string(ns, "namespace", tc.ns, sizeof tc.ns, 0) || tcpy_copy_string(name, "name", tc.name, sizeof tc.name, 0) ||
      tcpy_copy_string(version, "version", tc.version, sizeof tc.version, 0))
    return NULL;
  return tcpy_call_run(&tc.call);
}

static int wait_fn(tcpy_call_t *call) {
  int rc = tc_task_wait(call->rt, call->s1, call->timeout_ms, &call->cancel, call->s2, &call->err);
  if (rc == TC_ETIMEDOUT || rc == TC_ECANCELED) {
    call->s2[0] = '\0';
    return TC_OK;
  }
  if (rc != TC_OK) return rc;
  call->out = json_object_new_string(call->s2);
  if (!call->out) {
    call->err.code = TC_ENOMEM;
    return TC_ENOMEM;
  }
  return TC_OK;
}

/* task_wait(task_uuid, timeout_seconds) -> the terminal status, or None when the wait ran out */
static PyObject *m_task_wait(PyObject *self, PyObject *args) {
  PyObject *uuid;
  double seconds;
  if (!PyArg_ParseTuple(args, "Od:task_wait", &uuid, &seconds)) return NULL;
  tcpy_call_t call = {.fn = wait_fn, .rt = tcpy_runtime()};
  if (!call.rt) return NULL;
  if (tcpy_copy_string(uuid, "task_uuid", call.s1, sizeof call.s1, 1)) return NULL;
  if (!(seconds >= 0 && seconds <= 86400)) return tcpy_raise_validation("timeout must be between 0 and 86400 seconds");
  call.timeout_ms = (int)(seconds * 1000);
  return tcpy_call_run(&call);
}

PyMethodDef tcpy_runtime_methods[] = {
    {"bootstrap", m_bootstrap, METH_VARARGS, "bootstrap(config) -> bool"},
    {"shutdown", m_shutdown, METH_NOARGS, "shutdown() -> bool"},
    {"running", m_running, METH_NOARGS, "running() -> bool"},
    {"migrate", m_migrate, METH_NOARGS, "migrate() -> dict"},
    {"schema_version", m_schema_version, METH_NOARGS, "schema_version() -> int"},
    {"uuid_v7", m_uuid_v7, METH_NOARGS, "uuid_v7() -> str"},
    {"database_url_check", m_database_url_check, METH_VARARGS, "database_url_check(url) -> True"},
    {"template_normalize", m_template_normalize, METH_VARARGS, "template_normalize(dict) -> dict"},
    {"template_register", m_template_register, METH_VARARGS, "template_register(dict) -> dict"},
    {"template_get", m_template_get, METH_VARARGS, "template_get(namespace, name, version) -> dict"},
    {"task_wait", m_task_wait, METH_VARARGS, "task_wait(task_uuid, timeout_seconds) -> str or None"},
    {NULL, NULL, 0, NULL}};
