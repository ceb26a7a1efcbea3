/*
 * tcrb_errors.c - engine errors as Ruby exceptions: TC_E* codes map to TaskerCore::Errors classes.
 */
#include "tcrb.h"

static VALUE error_class(const char *name) {
  VALUE errors = rb_const_get(tcrb_mTaskerCore, rb_intern("Errors"));
  return rb_const_get(errors, rb_intern(name));
}

/* An error message as a Ruby String: UTF-8 (the engine's messages are), any broken bytes replaced. */
static VALUE message_string(const char *msg) {
  VALUE str = rb_utf8_str_new_cstr(msg);
  VALUE scrubbed = rb_str_scrub(str, Qnil);
  return NIL_P(scrubbed) ? str : scrubbed;
}

VALUE tcrb_error_new(const tc_error_t *err) {
  if (err->code == TC_ENOMEM) return rb_exc_new_cstr(rb_eNoMemError, err->message);
  VALUE klass = error_class(tc_err_class(err->code));
  VALUE exc = rb_exc_new_str(klass, message_string(err->message));
  rb_iv_set(exc, "@code", rb_str_new_cstr(tc_err_name(err->code)));
  rb_iv_set(exc, "@sqlstate", err->sqlstate[0] ? rb_str_new_cstr(err->sqlstate) : Qnil);
  return exc;
}

void tcrb_raise(const tc_error_t *err) { rb_exc_raise(tcrb_error_new(err)); }

void tcrb_raise_validation(const char *msg) {
  rb_exc_raise(rb_exc_new_str(error_class("ValidationError"), message_string(msg)));
}

void tcrb_raise_class(const char *name, const char *msg) { rb_exc_raise(rb_exc_new_str(error_class(name), message_string(msg))); }
