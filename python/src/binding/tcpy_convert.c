/*
 * tcpy_convert.c - converts json-c values to Python objects and back, with the GIL held.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tcpy.h"

#define TCPY_MAX_DEPTH 100

PyObject *tcpy_json_to_py(json_object *obj) {
  switch (json_object_get_type(obj)) {
    case json_type_null:
      Py_RETURN_NONE;
    case json_type_boolean:
      return PyBool_FromLong(json_object_get_boolean(obj));
    case json_type_double:
      return PyFloat_FromDouble(json_object_get_double(obj));
    case json_type_int:
      return PyLong_FromLongLong((long long)json_object_get_int64(obj));
    case json_type_string:
      /* The engine's text is UTF-8; a broken byte becomes U+FFFD instead of failing a read. */
      return PyUnicode_DecodeUTF8(json_object_get_string(obj), json_object_get_string_len(obj), "replace");
    case json_type_array: {
      size_t n = json_object_array_length(obj);
      PyObject *list = PyList_New((Py_ssize_t)n);
      if (!list) return NULL;
      for (size_t i = 0; i < n; i++) {
        PyObject *item = tcpy_json_to_py(json_object_array_get_idx(obj, i));
        if (!item) {
          Py_DECREF(list);
          return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
      }
      return list;
    }
    case json_type_object: {
      PyObject *dict = PyDict_New();
      if (!dict) return NULL;
      json_object_object_foreach(obj, key, val) {
        PyObject *k = PyUnicode_DecodeUTF8(key, (Py_ssize_t)strlen(key), "replace");
        PyObject *v = k ? tcpy_json_to_py(val) : NULL;
        if (!v || PyDict_SetItem(dict, k, v) != 0) {
          Py_XDECREF(k);
          Py_XDECREF(v);
          Py_DECREF(dict);
          return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
      }
      return dict;
    }
  }
  Py_RETURN_NONE;
}

typedef struct {
  char path[512];
  char msg[1100];
  int depth;
  bool failed;
  bool nomem;
} conv_t;

static json_object *convert(PyObject *v, conv_t *c);

static void conv_fail(conv_t *c, const char *what) {
  if (c->failed) return;
  c->failed = true;
  snprintf(c->msg, sizeof c->msg, "%s %s", c->path, what);
}

static size_t path_push_key(conv_t *c, const char *key, size_t klen) {
  size_t len = strlen(c->path);
  size_t room = sizeof c->path - len;
  if (room > 1) {
    size_t take = klen < 200 ? klen : 200;
    /* A key cut short for the path ends on a whole character. */
    while (take < klen && take > 0 && ((unsigned char)key[take] & 0xC0) == 0x80) take--;
    snprintf(c->path + len, room, ".%.*s", (int)take, key);
  }
  return len;
}

static size_t path_push_index(conv_t *c, Py_ssize_t i) {
  size_t len = strlen(c->path);
  snprintf(c->path + len, sizeof c->path - len, "[%zd]", i);
  return len;
}

/* UTF-8 of a str, or NULL after conv_fail (lone surrogates, NUL). key: the message names a key. */
static const char *utf8_of(PyObject *s, Py_ssize_t *len, conv_t *c, bool key) {
  const char *text = PyUnicode_AsUTF8AndSize(s, len);
  if (!text) {
    PyErr_Clear();
    conv_fail(c, key ? "has a key that is not valid UTF-8 text (a lone surrogate)"
                     : "is not valid UTF-8 text (a lone surrogate)");
    return NULL;
  }
  if (memchr(text, '\0', (size_t)*len)) {
    conv_fail(c, key ? "has a key containing a NUL character, which PostgreSQL cannot store"
                     : "contains a NUL character, which PostgreSQL cannot store");
    return NULL;
  }
  return text;
}

static json_object *alloc_failed(conv_t *c) {
  c->nomem = true;
  conv_fail(c, "could not be allocated");
  return NULL;
}

static json_object *convert_dict(PyObject *v, conv_t *c) {
  json_object *obj = json_object_new_object();
  if (!obj) return alloc_failed(c);
  c->depth++;
  PyObject *key, *val;
  Py_ssize_t pos = 0;
  while (!c->failed && PyDict_Next(v, &pos, &key, &val)) {
    PyObject *name = NULL;
    if (PyUnicode_Check(key)) {
      name = key;
      Py_INCREF(name);
    } else if (PyLong_Check(key) && !PyBool_Check(key)) {
      name = PyObject_Str(key); /* json.dumps writes int keys as text too */
      if (!name) {
        PyErr_Clear();
        alloc_failed(c);
        break;
      }
    } else {
      char what[200];
      snprintf(what, sizeof what, "has a key of type %s; keys must be str", Py_TYPE(key)->tp_name);
      conv_fail(c, what);
      break;
    }
    Py_ssize_t klen = 0;
    const char *k = utf8_of(name, &klen, c, true);
    if (k) {
      size_t mark = path_push_key(c, k, (size_t)klen);
      json_object *child = convert(val, c);
      if (!c->failed && json_object_object_add(obj, k, child) != 0) {
        json_object_put(child);
        alloc_failed(c);
      }
      c->path[mark] = '\0';
    }
    Py_DECREF(name);
  }
  c->depth--;
  if (c->failed) {
    json_object_put(obj);
    return NULL;
  }
  return obj;
}

static json_object *convert_seq(PyObject *v, conv_t *c) {
  Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
  json_object *arr = json_object_new_array_ext((int)n);
  if (!arr) return alloc_failed(c);
  c->depth++;
  PyObject **items = PySequence_Fast_ITEMS(v);
  for (Py_ssize_t i = 0; i < n && !c->failed; i++) {
    size_t mark = path_push_index(c, i);
    json_object *child = convert(items[i], c);
    if (!c->failed && json_object_array_add(arr, child) != 0) {
      json_object_put(child);
      alloc_failed(c);
    }
    c->path[mark] = '\0';
  }
  c->depth--;
  if (c->failed) {
    json_object_put(arr);
    return NULL;
  }
  return arr;
}

static json_object *convert(PyObject *v, conv_t *c) {
  if (c->depth > TCPY_MAX_DEPTH) {
    conv_fail(c, "is nested deeper than 100 levels");
    return NULL;
  }
  if (v == Py_None) return NULL;
  if (PyBool_Check(v)) return json_object_new_boolean(v == Py_True);
  if (PyLong_Check(v)) {
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (n == -1 && PyErr_Occurred())) {
      PyErr_Clear();
      conv_fail(c, "is an int outside the 64-bit range");
      return NULL;
    }
    json_object *o = json_object_new_int64((int64_t)n);
    return o ? o : alloc_failed(c);
  }
  if (PyFloat_Check(v)) {
    double d = PyFloat_AS_DOUBLE(v);
    if (!isfinite(d)) {
      conv_fail(c, isnan(d) ? "is NaN, which JSON cannot represent" : "is Infinity, which JSON cannot represent");
      return NULL;
    }
    json_object *o = json_object_new_double(d);
    return o ? o : alloc_failed(c);
  }
  if (PyUnicode_Check(v)) {
    Py_ssize_t len = 0;
    const char *text = utf8_of(v, &len, c, false);
    if (!text) return NULL;
    if (len > INT32_MAX) {
      conv_fail(c, "is a str longer than 2 GB");
      return NULL;
    }
    json_object *o = json_object_new_string_len(text, (int)len);
    return o ? o : alloc_failed(c);
  }
  if (PyDict_Check(v)) return convert_dict(v, c);
  if (PyList_Check(v) || PyTuple_Check(v)) return convert_seq(v, c);
  char what[300];
  snprintf(what, sizeof what,
           "is a %s; only dict, list, tuple, str, int, float, bool and None can be stored", Py_TYPE(v)->tp_name);
  conv_fail(c, what);
  return NULL;
}

int tcpy_py_to_json(PyObject *v, const char *root, json_object **out) {
  conv_t c = {0};
  snprintf(c.path, sizeof c.path, "%s", root);
  json_object *obj = convert(v, &c);
  if (c.failed) {
    json_object_put(obj);
    if (c.nomem) PyErr_NoMemory();
    else tcpy_raise_validation(c.msg);
    return -1;
  }
  *out = obj;
  return 0;
}
