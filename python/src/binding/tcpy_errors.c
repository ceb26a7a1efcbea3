/*
 * tcpy_errors.c - engine errors as Python exceptions: TC_E* codes map to tasker_core.errors classes.
 */
#include "tcpy.h"

/* tasker_core.errors.<name> (a new reference), or NULL with the import's exception set. */
static PyObject *error_class(const char *name) {
  PyObject *module = PyImport_ImportModule("tasker_core.errors");
  if (!module) return NULL;
  PyObject *cls = PyObject_GetAttrString(module, name);
  Py_DECREF(module);
  return cls;
}

/* Sets an instance of cls(message) with code and sqlstate attributes (NULL: left as the class's). */
static PyObject *raise_with(const char *name, const char *msg, const char *code, const char *sqlstate) {
  PyObject *cls = error_class(name);
  if (!cls) return NULL;
  PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
  PyObject *exc = text ? PyObject_CallOneArg(cls, text) : NULL;
  Py_XDECREF(text);
  if (exc && code) {
    PyObject *c = PyUnicode_FromString(code);
    PyObject *s = sqlstate && sqlstate[0] ? PyUnicode_FromString(sqlstate) : (Py_INCREF(Py_None), Py_None);
    if (!c || !s || PyObject_SetAttrString(exc, "code", c) != 0 || PyObject_SetAttrString(exc, "sqlstate", s) != 0) {
      Py_CLEAR(exc);
    }
    Py_XDECREF(c);
    Py_XDECREF(s);
  }
  if (exc) PyErr_SetObject(cls, exc);
  Py_XDECREF(exc);
  Py_DECREF(cls);
  return NULL;
}

PyObject *tcpy_raise(const tc_error_t *err) {
  if (err->code == TC_ENOMEM) return PyErr_NoMemory();
  return raise_with(tc_err_class(err->code), err->message, tc_err_name(err->code), err->sqlstate);
}

PyObject *tcpy_raise_class(const char *name, const char *msg) { return raise_with(name, msg, NULL, NULL); }

PyObject *tcpy_raise_validation(const char *msg) { return raise_with("ValidationError", msg, NULL, NULL); }
