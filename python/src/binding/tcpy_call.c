/*
 * tcpy_call.c - runs engine calls without the GIL (their errors raise through tcpy_errors.c).
 */
#include <string.h>
#include <time.h>

#include "tcpy.h"

int tcpy_active_calls = 0;
int tcpy_worker_calls = 0;

PyObject *tcpy_call_run(tcpy_call_t *call) {
  tcpy_active_calls++;
  if (call->worker) tcpy_worker_calls++;
  Py_BEGIN_ALLOW_THREADS
  call->rc = call->fn(call);
  Py_END_ALLOW_THREADS
  tcpy_active_calls--;
  if (call->worker) tcpy_worker_calls--;
  json_object_put(call->in);
  call->in = NULL;
  PyObject *result = NULL;
  if (call->rc != TC_OK) {
    tcpy_raise(&call->err);
  } else {
    result = tcpy_json_to_py(call->out);
  }
  if (!result && call->out && call->on_abandon) {
    call->on_abandon(call); /* takes ownership of out */
  } else {
    json_object_put(call->out);
  }
  call->out = NULL;
  return result;
}

void tcpy_wait_for_zero(int *counter) {
  while (*counter > 0) {
    Py_BEGIN_ALLOW_THREADS
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    Py_END_ALLOW_THREADS
  }
}

int tcpy_copy_string(PyObject *v, const char *what, char *buf, size_t cap, int uuid) {
  char msg[200];
  if (!PyUnicode_Check(v)) {
    snprintf(msg, sizeof msg, "%s must be a str, got %s", what, Py_TYPE(v)->tp_name);
    tcpy_raise_validation(msg);
    return -1;
  }
  Py_ssize_t len = 0;
  const char *text = PyUnicode_AsUTF8AndSize(v, &len);
  if (!text) {
    PyErr_Clear();
    snprintf(msg, sizeof msg, "%s is not valid UTF-8 text", what);
    tcpy_raise_validation(msg);
    return -1;
  }
  if ((size_t)len >= cap || memchr(text, '\0', (size_t)len)) {
    snprintf(msg, sizeof msg, "%s is not valid (too long or contains NUL)", what);
    tcpy_raise_validation(msg);
    return -1;
  }
  memcpy(buf, text, (size_t)len);
  buf[len] = '\0';
  if (uuid)
    for (char *p = buf; *p; p++)
      if (*p >= 'A' && *p <= 'F') *p = (char)(*p - 'A' + 'a');
  return 0;
}
