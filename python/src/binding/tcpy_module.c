/*
 * tcpy_module.c - PyInit__tasker_core: the module tasker_core._tasker_core, made of each area's
 * functions.
 */
#include "tcpy.h"

static PyMethodDef no_methods[] = {{NULL, NULL, 0, NULL}};

static struct PyModuleDef tcpy_module = {
    PyModuleDef_HEAD_INIT, "tasker_core._tasker_core",
    "The tasker_core engine (C, on libpq and json-c): plain dicts and lists in and out.", -1, no_methods};

PyMODINIT_FUNC PyInit__tasker_core(void) {
  PyObject *m = PyModule_Create(&tcpy_module);
  if (!m) return NULL;
  PyMethodDef *tables[] = {tcpy_runtime_methods, tcpy_client_methods, tcpy_worker_methods, tcpy_log_methods,
                           tcpy_domain_methods};
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
    if (PyModule_AddFunctions(m, tables[t]) != 0) {
      Py_DECREF(m);
      return NULL;
    }
  }
  if (PyModule_AddStringConstant(m, "CORE_VERSION", TC_VERSION) != 0 ||
      PyModule_AddIntConstant(m, "CREATE_TASKS_MAX", TC_CLIENT_CREATE_TASKS_MAX) != 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
