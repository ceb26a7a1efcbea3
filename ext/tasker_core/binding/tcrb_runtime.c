/*
 * tcrb_runtime.c - TaskerCore::FFI bootstrap/shutdown, migrations, UUIDs and templates.
 *
 * Global state: the one documented exception to "no globals". g_rt is the process's runtime,
 * created by FFI.bootstrap and freed by FFI.shutdown; g_pid is the process that created it, so a
 * forked child abandons the parent's runtime instead of sharing its connections.
 */
#include <string.h>
#include <unistd.h>

#include "tcrb.h"

static tc_runtime_t *g_rt = NULL;
static pid_t g_pid = 0;

/* Drops a runtime inherited through fork. */
static void forget_if_forked(void) {
  if (g_rt && g_pid != getpid()) {
    tcrb_worker_forget_after_fork();
    tcrb_events_forget_after_fork();
    tc_runtime_abandon(g_rt);
    g_rt = NULL;
    tcrb_active_calls = 0; /* The threads that were inside calls do not exist here. */
    tcrb_worker_calls = 0;
  }
}

tc_runtime_t *tcrb_runtime(void) {
  forget_if_forked();
  if (!g_rt) {
    tcrb_raise_class("FFIError",
                     "the TaskerCore runtime is not bootstrapped (call TaskerCore.boot! or TaskerCore::FFI.bootstrap)");
  }
  return g_rt;
}

/* Converts a Ruby argument to JSON or raises ValidationError naming the bad path. */
static json_object *arg_to_json(VALUE v, const char *root) {
  char msg[700];
  json_object *obj = NULL;
  if (tcrb_value_to_json(v, root, &obj, msg, sizeof msg) != 0) tcrb_raise_validation(msg);
  return obj;
}

/* FFI.bootstrap(config) -> true, or false when a runtime is already running in this process. */
static VALUE tcrb_runtime_m_bootstrap(VALUE self, VALUE config) {
  forget_if_forked();
  if (g_rt) return Qfalse;
  Check_Type(config, T_HASH);
  json_object *cfg = arg_to_json(config, "config");
  tc_error_t err = {0};
  tc_runtime_t *rt = NULL;
  int rc = tc_runtime_new(cfg, &rt, &err);
  json_object_put(cfg);
  if (rc != TC_OK) tcrb_raise(&err);
  g_rt = rt;
  g_pid = getpid();
  return Qtrue;
}

static void *free_runtime_nogvl(void *rt) {
  tc_runtime_free(rt);
  return NULL;
}

/* FFI.shutdown -> true when a runtime was shut down. Stops the worker, waits for engine calls in
 * flight on other threads, then closes every connection. */
void tcrb_worker_shutdown(void);
static VALUE tcrb_runtime_m_shutdown(VALUE self) {
  forget_if_forked();
  if (!g_rt) return Qfalse;
  /* Taken first, while the GVL is held: calls that start while this one waits (it releases the
   * GVL) raise FFIError instead of starting a worker or a feeder on a runtime about to be freed. */
  tc_runtime_t *rt = g_rt;
  g_rt = NULL;
  tcrb_worker_shutdown();
  tcrb_events_shutdown();
  while (tcrb_active_calls > 0) rb_thread_wait_for(rb_time_interval(DBL2NUM(0.001)));
  rb_thread_call_without_gvl(free_runtime_nogvl, rt, RUBY_UBF_IO, NULL);
  return Qtrue;
}

static VALUE tcrb_runtime_m_running_p(VALUE self) {
  forget_if_forked();
  return g_rt ? Qtrue : Qfalse;
}

static int migrate_fn(tcrb_call_t *call) { return tc_migrate(call->rt, &call->out, &call->err); }

static VALUE tcrb_runtime_m_migrate(VALUE self) {
  tcrb_call_t call = {.fn = migrate_fn, .rt = tcrb_runtime()};
  return tcrb_call_run(&call);
}

static VALUE tcrb_runtime_m_uuid_v7(VALUE self) {
  char buf[37];
  tc_uuid_v7(buf);
  return rb_str_new_cstr(buf);
}

static VALUE tcrb_runtime_m_schema_version(VALUE self) { return INT2NUM(tc_schema_version()); }

/* FFI.template_normalize(hash) -> normalized template Hash; raises TemplateError. No database. */
static VALUE tcrb_runtime_m_template_normalize(VALUE self, VALUE tpl) {
  json_object *raw = arg_to_json(tpl, "template");
  json_object *out = NULL;
  tc_error_t err = {0};
  int rc = tc_template_normalize(raw, &out, &err);
  json_object_put(raw);
  if (rc != TC_OK) tcrb_raise(&err);
  VALUE result = tcrb_json_to_value(out); /* Plain data: conversion cannot raise but for NoMemory. */
  json_object_put(out);
  return result;
}

static int register_fn(tcrb_call_t *call) {
  return tc_template_register(call->rt, call->in, &call->out, &call->err);
}

static VALUE tcrb_runtime_m_template_register(VALUE self, VALUE tpl) {
  tc_runtime_t *rt = tcrb_runtime();
  tcrb_call_t call = {.fn = register_fn, .rt = rt, .in = arg_to_json(tpl, "template")};
  return tcrb_call_run(&call);
}

/* FFI.database_url_check(url) -> true; raises ConfigurationError (never naming the URL) when libpq
 * cannot parse it. No database. */
static VALUE tcrb_runtime_m_database_url_check(VALUE self, VALUE url) {
  if (!RB_TYPE_P(url, T_STRING) || memchr(RSTRING_PTR(url), '\0', (size_t)RSTRING_LEN(url)))
    tcrb_raise_class("ConfigurationError", "database_url must be a String without NUL bytes");
  tc_error_t err = {0};
  if (tc_database_url_check(StringValueCStr(url), &err) != TC_OK) tcrb_raise(&err);
  return Qtrue;
}

void tcrb_runtime_init(void) {
  rb_define_module_function(tcrb_mFFI, "bootstrap", tcrb_runtime_m_bootstrap, 1);
  rb_define_module_function(tcrb_mFFI, "shutdown", tcrb_runtime_m_shutdown, 0);
  rb_define_module_function(tcrb_mFFI, "running?", tcrb_runtime_m_running_p, 0);
  rb_define_module_function(tcrb_mFFI, "migrate", tcrb_runtime_m_migrate, 0);
  rb_define_module_function(tcrb_mFFI, "uuid_v7", tcrb_runtime_m_uuid_v7, 0);
  rb_define_module_function(tcrb_mFFI, "schema_version", tcrb_runtime_m_schema_version, 0);
  rb_define_module_function(tcrb_mFFI, "template_normalize", tcrb_runtime_m_template_normalize, 1);
  rb_define_module_function(tcrb_mFFI, "template_register", tcrb_runtime_m_template_register, 1);
  rb_define_module_function(tcrb_mFFI, "database_url_check", tcrb_runtime_m_database_url_check, 1);
}
