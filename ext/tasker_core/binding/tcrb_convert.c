/*
 * tcrb_convert.c - converts json-c values to Ruby objects and back, with the GVL held.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <ruby/encoding.h>

#include "tcrb.h"

#define TCRB_MAX_DEPTH 100

VALUE tcrb_json_to_value(json_object *obj) {
  switch (json_object_get_type(obj)) {
    case json_type_null:
      return Qnil;
    case json_type_boolean:
      return json_object_get_boolean(obj) ? Qtrue : Qfalse;
    case json_type_double:
      return DBL2NUM(json_object_get_double(obj));
    case json_type_int:
      return LL2NUM(json_object_get_int64(obj));
    case json_type_string:
      return rb_utf8_str_new(json_object_get_string(obj), json_object_get_string_len(obj));
    case json_type_array: {
      size_t n = json_object_array_length(obj);
      VALUE ary = rb_ary_new_capa((long)n);
      for (size_t i = 0; i < n; i++) rb_ary_push(ary, tcrb_json_to_value(json_object_array_get_idx(obj, i)));
      return ary;
    }
    case json_type_object: {
      VALUE hash = rb_hash_new();
      /* Keys as interned frozen strings: the Hash stores them as they are (no copy per key). */
      json_object_object_foreach(obj, key, val) {
        rb_hash_aset(hash, rb_enc_interned_str_cstr(key, rb_utf8_encoding()), tcrb_json_to_value(val));
      }
      return hash;
    }
  }
  return Qnil;
}

typedef struct {
  char path[512];
  char *msg;
  size_t msg_len;
  int depth;
  bool failed;
} conv_t;

typedef struct {
  conv_t *c;
  json_object *obj;
} hash_iter_t;

static json_object *convert(VALUE v, conv_t *c);

static void conv_fail(conv_t *c, const char *fmt, const char *detail) {
  if (c->failed) return;
  c->failed = true;
  char what[256];
  snprintf(what, sizeof what, fmt, detail);
  snprintf(c->msg, c->msg_len, "%s %s", c->path, what);
}

/* Appends a path segment, returning the previous length to restore. */
static size_t path_push(conv_t *c, const char *fmt, const char *seg, long idx) {
  size_t len = strlen(c->path);
  if (seg) snprintf(c->path + len, sizeof c->path - len, fmt, seg);
  else snprintf(c->path + len, sizeof c->path - len, fmt, idx);
  return len;
}

/* Whether str is text PostgreSQL can store: UTF-8 (or ASCII) without NUL; the message names a Hash
 * key (key) or a value. */
static bool storable_text(VALUE str, conv_t *c, bool key) {
  rb_encoding *enc = rb_enc_get(str);
  bool utf8_like = enc == rb_utf8_encoding() || enc == rb_usascii_encoding() ||
                   (enc == rb_ascii8bit_encoding() && rb_enc_str_asciionly_p(str));
  if (!utf8_like && !rb_enc_str_asciionly_p(str)) {
    conv_fail(c, key ? "has a key that is a String in %s; only UTF-8 text can be stored"
                     : "is a String in %s; only UTF-8 text can be stored", rb_enc_name(enc));
    return false;
  }
  if (rb_enc_str_coderange(str) == ENC_CODERANGE_BROKEN) {
    conv_fail(c, key ? "has a key that is not valid UTF-8%s" : "is not valid UTF-8%s", "");
    return false;
  }
  if (memchr(RSTRING_PTR(str), '\0', (size_t)RSTRING_LEN(str))) {
    conv_fail(c, key ? "has a key containing a NUL character, which PostgreSQL cannot store%s"
                     : "contains a NUL character, which PostgreSQL cannot store%s", "");
    return false;
  }
  return true;
}

static json_object *convert_string(VALUE str, conv_t *c) {
  if (!storable_text(str, c, false)) return NULL;
  json_object *o = json_object_new_string_len(RSTRING_PTR(str), (int)RSTRING_LEN(str));
  if (!o) conv_fail(c, "could not be allocated%s", "");
  return o;
}

static int hash_entry(VALUE key, VALUE val, VALUE arg) {
  hash_iter_t *it = (hash_iter_t *)arg;
  conv_t *c = it->c;
  VALUE name;
  if (RB_TYPE_P(key, T_STRING)) name = key;
  else if (RB_TYPE_P(key, T_SYMBOL)) name = rb_sym2str(key);
  else if (RB_INTEGER_TYPE_P(key)) name = rb_Integer(key), name = rb_funcall(name, rb_intern("to_s"), 0);
  else {
    conv_fail(c, "has a key of class %s; keys must be Strings or Symbols", rb_obj_classname(key));
    return ST_STOP;
  }
  /* A key is text like a value (checked before it joins the path of messages). */
  if (!storable_text(name, c, true)) return ST_STOP;
  char keybuf[200];
  long klen = RSTRING_LEN(name) < (long)sizeof keybuf - 1 ? RSTRING_LEN(name) : (long)sizeof keybuf - 1;
  /* A key cut short for the path ends on a whole character. */
  while (klen < RSTRING_LEN(name) && klen > 0 && ((unsigned char)RSTRING_PTR(name)[klen] & 0xC0) == 0x80) klen--;
  memcpy(keybuf, RSTRING_PTR(name), (size_t)klen);
  keybuf[klen] = '\0';
  size_t mark = path_push(c, ".%s", keybuf, 0);
  json_object *child = convert(val, c);
  if (!c->failed) {
    /* json-c copies the key, which holds no NUL (checked above). */
    VALUE zkey = rb_str_new(RSTRING_PTR(name), RSTRING_LEN(name));
    if (json_object_object_add(it->obj, StringValueCStr(zkey), child) != 0) {
      json_object_put(child);
      conv_fail(c, "could not be allocated%s", "");
    }
  }
  c->path[mark] = '\0';
  return c->failed ? ST_STOP : ST_CONTINUE;
}

static json_object *convert(VALUE v, conv_t *c) {
  if (c->depth > TCRB_MAX_DEPTH) {
    conv_fail(c, "is nested deeper than %s levels", "100");
    return NULL;
  }
  switch (rb_type(v)) {
    case T_NIL:
      return NULL;
    case T_TRUE:
      return json_object_new_boolean(1);
    case T_FALSE:
      return json_object_new_boolean(0);
    case T_FIXNUM:
      return json_object_new_int64(FIX2LONG(v));
    case T_BIGNUM: {
      int overflow = 0;
      /* 64 bits signed: one 64-bit word and no overflow of the sign bit. */
      size_t words = rb_absint_numwords(v, 63, NULL);
      if (words != 1) overflow = 1;
      if (overflow) {
        conv_fail(c, "is an Integer outside the 64-bit range%s", "");
        return NULL;
      }
      return json_object_new_int64(NUM2LL(v));
    }
    case T_FLOAT: {
      double d = RFLOAT_VALUE(v);
      if (!isfinite(d)) {
        conv_fail(c, "is %s, which JSON cannot represent", isnan(d) ? "NaN" : "Infinity");
        return NULL;
      }
      return json_object_new_double(d);
    }
    case T_STRING:
      return convert_string(v, c);
    case T_SYMBOL:
      return convert_string(rb_sym2str(v), c);
    case T_ARRAY: {
      json_object *arr = json_object_new_array_ext((int)RARRAY_LEN(v));
      if (!arr) {
        conv_fail(c, "could not be allocated%s", "");
        return NULL;
      }
      c->depth++;
      for (long i = 0; i < RARRAY_LEN(v) && !c->failed; i++) {
        size_t mark = path_push(c, "[%ld]", NULL, i);
        json_object *child = convert(RARRAY_AREF(v, i), c);
        if (!c->failed && json_object_array_add(arr, child) != 0) {
          json_object_put(child);
          conv_fail(c, "could not be allocated%s", "");
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
    case T_HASH: {
      json_object *obj = json_object_new_object();
      if (!obj) {
        conv_fail(c, "could not be allocated%s", "");
        return NULL;
      }
      hash_iter_t it = {c, obj};
      c->depth++;
      rb_hash_foreach(v, hash_entry, (VALUE)&it);
      c->depth--;
      if (c->failed) {
        json_object_put(obj);
        return NULL;
      }
      return obj;
    }
    default:
      conv_fail(c,
                "is a %s; only Hash, Array, String, Symbol, Integer, Float, true, false and nil can be stored",
                rb_obj_classname(v));
      return NULL;
  }
}

int tcrb_value_to_json(VALUE v, const char *root, json_object **out, char *msg, size_t msg_len) {
  conv_t c = {.msg = msg, .msg_len = msg_len};
  snprintf(c.path, sizeof c.path, "%s", root);
  json_object *obj = convert(v, &c);
  if (c.failed) {
    json_object_put(obj);
    return -1;
  }
  *out = obj;
  return 0;
}
