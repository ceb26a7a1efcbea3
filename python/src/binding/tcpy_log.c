/*
 * tcpy_log.c - the engine's log lines for Python's logging: log_attach, log_next, log_interrupt.
 *
 * The engine's threads never call Python: log_attach installs the core's log buffer as the
 * runtime's sink, engine threads append their JSON lines to it, and the Python log thread
 * (tasker_core.engine_log) takes them with log_next, without the GIL while it waits, and hands
 * them to the logging module.
 *
 * The buffer is the process's: created at the first attach, kept across runtimes (lines written
 * while a runtime shuts down are still delivered after it is freed), and forgotten after fork (the
 * parent's engine threads and log thread do not exist in the child; the parent delivers its own).
 */
#include <string.h>
#include <unistd.h>

#include "tcpy.h"

#define LOG_CAPACITY 10000 /* lines held while Python's handlers are slow */
#define LOG_WAIT_MS 200    /* how long a full buffer makes an engine thread wait before stderr */
#define LOG_BATCH 256      /* lines handed to Python per log_next */

static tc_log_buffer_t *g_log = NULL;
static pid_t g_log_pid = 0;
static tc_cancel_t g_cancel; /* the current log_next's; log_interrupt fires it */

static tc_log_buffer_t *log_buffer(void) {
  if (g_log && g_log_pid != getpid()) g_log = NULL; /* the parent's: its memory is left alone */
  if (!g_log) {
    g_log = tc_log_buffer_new(LOG_CAPACITY, LOG_WAIT_MS);
    g_log_pid = getpid();
  }
  return g_log;
}

/* log_attach() -> True. Sends the running runtime's log to the buffer (log_next). */
static PyObject *m_log_attach(PyObject *self, PyObject *unused) {
  tc_runtime_t *rt = tcpy_runtime();
  if (!rt) return NULL;
  tc_log_buffer_t *b = log_buffer();
  if (!b) return PyErr_NoMemory();
  tc_runtime_set_log_sink(rt, tc_log_buffer_sink, b);
  Py_RETURN_TRUE;
}

/* log_next(timeout_seconds) -> [(level, json_line), ...]: the oldest lines, removed from the buffer
 * ([] when none arrived in time or log_interrupt fired). One caller at a time. */
static PyObject *m_log_next(PyObject *self, PyObject *args) {
  double seconds;
  if (!PyArg_ParseTuple(args, "d:log_next", &seconds)) return NULL;
  if (!(seconds >= 0 && seconds <= 3600)) return tcpy_raise_validation("timeout must be between 0 and 3600 seconds");
  tc_log_buffer_t *b = log_buffer();
  if (!b) return PyErr_NoMemory();
  tc_log_line_t lines[LOG_BATCH];
  int n = 0;
  g_cancel.fired = 0;
  Py_BEGIN_ALLOW_THREADS
  tc_log_buffer_peek(b, (int)(seconds * 1000), &g_cancel, lines, LOG_BATCH, &n);
  Py_END_ALLOW_THREADS
  PyObject *list = PyList_New(n);
  if (!list) return NULL; /* the lines stay buffered for the next call */
  for (int i = 0; i < n; i++) {
    PyObject *item = Py_BuildValue("(ss)", tc_log_level_name(lines[i].level), lines[i].line);
    if (!item) {
      PyErr_Clear(); /* a line that is not UTF-8 after all: delivered with its bad bytes replaced */
      item = Py_BuildValue("(sN)", tc_log_level_name(lines[i].level),
                           PyUnicode_DecodeUTF8(lines[i].line, (Py_ssize_t)strlen(lines[i].line), "replace"));
    }
    if (!item) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, i, item);
  }
  tc_log_buffer_ack(b, n);
  return list;
}

/* log_interrupt() -> None: wakes a waiting log_next (it answers []). */
static PyObject *m_log_interrupt(PyObject *self, PyObject *unused) {
  if (g_log && g_log_pid == getpid()) tc_log_buffer_interrupt(g_log, &g_cancel);
  Py_RETURN_NONE;
}

/* log_level(name) -> None: changes the running runtime's level ("trace".."off"). */
static PyObject *m_log_level(PyObject *self, PyObject *args) {
  const char *name;
  if (!PyArg_ParseTuple(args, "s:log_level", &name)) return NULL;
  tc_runtime_t *rt = tcpy_runtime();
  if (!rt) return NULL;
  if (tc_runtime_set_log_level(rt, name) != TC_OK) {
    return tcpy_raise_class("ConfigurationError", "log_level must be one of trace, debug, info, warn, error, off");
  }
  Py_RETURN_NONE;
}

PyMethodDef tcpy_log_methods[] = {
    {"log_attach", m_log_attach, METH_NOARGS, "log_attach() -> True"},
    {"log_next", m_log_next, METH_VARARGS, "log_next(timeout_seconds) -> list of (level, json_line)"},
    {"log_interrupt", m_log_interrupt, METH_NOARGS, "log_interrupt() -> None"},
    {"log_level", m_log_level, METH_VARARGS, "log_level(name) -> None"},
    {NULL, NULL, 0, NULL}};
