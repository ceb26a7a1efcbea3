/*
 * tcrb_call.c - runs engine calls without the GVL (their errors raise through tcrb_errors.c).
 */
#include <limits.h>
#include <string.h>

#include <ruby/encoding.h>

#include "tcrb.h"

/* Engine calls running without the GVL right now; shutdown waits for zero. Read and written
 * only with the GVL held. */
int tcrb_active_calls = 0;
/* Of those, the calls using the worker; replacing or freeing the worker waits for zero. */
int tcrb_worker_calls = 0;

static void *trampoline(void *arg) {
  tcrb_call_t *call = arg;
  call->ran = true;
  call->rc = call->fn(call);
  return NULL;
}

static VALUE call_body(VALUE arg) {
  tcrb_call_t *call = (tcrb_call_t *)arg;
  /* A pending interrupt may raise here before fn runs; the ensure below still cleans up. */
  call->counted = true;
  tcrb_active_calls++;
  if (call->worker) tcrb_worker_calls++;
  rb_thread_call_without_gvl(trampoline, call, call->ubf ? call->ubf : RUBY_UBF_IO, call);
  if (!call->ran) rb_thread_check_ints();
  if (call->rc != TC_OK) tcrb_raise(&call->err);
  VALUE result = call->convert ? call->convert(call) : tcrb_json_to_value(call->out);
  call->consumed = true;
  return result;
}

static VALUE call_cleanup(VALUE arg) {
  tcrb_call_t *call = (tcrb_call_t *)arg;
  if (call->counted) {
    tcrb_active_calls--;
    if (call->worker) tcrb_worker_calls--;
  }
  call->counted = false;
  json_object_put(call->in);
  call->in = NULL;
  if (call->out && !call->consumed && call->on_abandon) {
    call->on_abandon(call); /* Takes ownership of out. */
  } else {
    json_object_put(call->out);
  }
  call->out = NULL;
  return Qnil;
}

VALUE tcrb_call_run(tcrb_call_t *call) {
  return rb_ensure(call_body, (VALUE)call, call_cleanup, (VALUE)call);
}

static VALUE convert_body(VALUE arg) {
  tcrb_call_t *call = (tcrb_call_t *)arg;
  VALUE result = call->convert ? call->convert(call) : tcrb_json_to_value(call->out);
  call->consumed = true;
  return result;
}

VALUE tcrb_call_convert(tcrb_call_t *call) {
  return rb_ensure(convert_body, (VALUE)call, call_cleanup, (VALUE)call);
}

void tcrb_copy_string(VALUE v, const char *what, char *buf, size_t cap) {
  if (!RB_TYPE_P(v, T_STRING)) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s must be a String, got %s", what, rb_obj_classname(v));
    tcrb_raise_validation(msg);
  }
  if ((size_t)RSTRING_LEN(v) >= cap || memchr(RSTRING_PTR(v), '\0', (size_t)RSTRING_LEN(v))) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s is not valid (too long or contains NUL)", what);
    tcrb_raise_validation(msg);
  }
  rb_encoding *enc = rb_enc_get(v);
  bool utf8_like = enc == rb_utf8_encoding() || enc == rb_usascii_encoding();
  if (!rb_enc_str_asciionly_p(v) && (!utf8_like || rb_enc_str_coderange(v) == ENC_CODERANGE_BROKEN)) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s is not valid UTF-8 text", what);
    tcrb_raise_validation(msg);
  }
  memcpy(buf, RSTRING_PTR(v), (size_t)RSTRING_LEN(v));
  buf[RSTRING_LEN(v)] = '\0';
}

void tcrb_check_string(VALUE v, const char *what) {
  if (!RB_TYPE_P(v, T_STRING)) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s must be a String, got %s", what, rb_obj_classname(v));
    tcrb_raise_validation(msg);
  }
  if (memchr(RSTRING_PTR(v), '\0', (size_t)RSTRING_LEN(v)) || RSTRING_LEN(v) > INT_MAX) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s is not valid (contains NUL)", what);
    tcrb_raise_validation(msg);
  }
}

json_object *tcrb_string_json(VALUE v, const char *what) {
  tcrb_check_string(v, what);
  return json_object_new_string_len(RSTRING_PTR(v), (int)RSTRING_LEN(v));
}

void tcrb_copy_uuid(VALUE v, const char *what, char *buf, size_t cap) {
  tcrb_copy_string(v, what, buf, cap);
  /* UUIDs are compared and used as channel names in their canonical, lower-case text. */
  for (char *p = buf; *p; p++)
    if (*p >= 'A' && *p <= 'F') *p = (char)(*p - 'A' + 'a');
}
