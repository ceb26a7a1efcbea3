/*
 * tcrb_observe.c - TaskerCore::FFI's 15 observability functions (SPEC 6.1): each runs one of the
 * core's services (tc_obs_call) without the GVL and returns its text: JSON, Prometheus text for
 * metrics_prometheus, the environment name for config_environment.
 */
#include <stdio.h>

#include "tcrb.h"

/* The services handle travels in the call's rt slot (the call owns nothing of it). */
static int obs_fn(tcrb_call_t *call) {
  char *text = NULL;
  int rc = tc_obs_call((tc_obs_t *)call->rt, call->s1, call->in, &text, &call->err);
  if (rc != TC_OK) return rc;
  call->out = json_object_new_string(text);
  tc_obs_text_free(text);
  if (!call->out) {
    call->err.code = TC_ENOMEM;
    snprintf(call->err.message, sizeof call->err.message, "out of memory");
    return TC_ENOMEM;
  }
  return TC_OK;
}

static VALUE obs_convert(tcrb_call_t *call) {
  return rb_utf8_str_new(json_object_get_string(call->out), json_object_get_string_len(call->out));
}

/* Runs service; takes ownership of args. The caller looked the services up (which may raise)
 * before building args. */
static VALUE run_on(tc_obs_t *obs, tc_worker_t *w, const char *service, json_object *args) {
  tcrb_call_t call = {.fn = obs_fn, .convert = obs_convert, .worker = w, .rt = (tc_runtime_t *)obs, .in = args};
  snprintf(call.s1, sizeof call.s1, "%s", service);
  return tcrb_call_run(&call);
}

static VALUE run(const char *service, json_object *args) {
  tc_worker_t *w = NULL;
  tc_obs_t *obs = tcrb_current_obs(&w);
  return run_on(obs, w, service, args);
}

/* {namespace, name, version} for the template services; no fixed buffer, so every name the template
 * validator accepts gets through (an unknown one is the service's NotFoundError). */
json_object *tcrb_template_args(VALUE ns, VALUE name, VALUE version) {
  tcrb_check_string(ns, "namespace");
  tcrb_check_string(name, "name");
  tcrb_check_string(version, "version");
  json_object *args = json_object_new_object();
  json_object *a = tcrb_string_json(ns, "namespace"), *b = tcrb_string_json(name, "name");
  json_object *c = tcrb_string_json(version, "version");
  if (!args || !a || !b || !c) {
    json_object_put(args);
    json_object_put(a);
    json_object_put(b);
    json_object_put(c);
    rb_raise(rb_eNoMemError, "out of memory");
  }
  json_object_object_add(args, "namespace", a);
  json_object_object_add(args, "name", b);
  json_object_object_add(args, "version", c);
  return args;
}

static VALUE m_health_basic(VALUE self) { return run("health_basic", NULL); }
static VALUE m_health_live(VALUE self) { return run("health_live", NULL); }
static VALUE m_health_ready(VALUE self) { return run("health_ready", NULL); }
static VALUE m_health_detailed(VALUE self) { return run("health_detailed", NULL); }
static VALUE m_metrics_worker(VALUE self) { return run("metrics_worker", NULL); }
static VALUE m_metrics_prometheus(VALUE self) { return run("metrics_prometheus", NULL); }
static VALUE m_metrics_events(VALUE self) { return run("metrics_events", NULL); }
static VALUE m_templates_cache_stats(VALUE self) { return run("templates_cache_stats", NULL); }
static VALUE m_templates_cache_clear(VALUE self) { return run("templates_cache_clear", NULL); }
static VALUE m_config_runtime(VALUE self) { return run("config_runtime", NULL); }
static VALUE m_config_environment(VALUE self) { return run("config_environment", NULL); }

/* FFI.templates_list(include_cache_stats = false, namespace = nil) */
static VALUE m_templates_list(int argc, VALUE *argv, VALUE self) {
  VALUE incl, ns;
  rb_scan_args(argc, argv, "02", &incl, &ns);
  if (!NIL_P(ns)) tcrb_check_string(ns, "namespace");
  tc_worker_t *w = NULL;
  tc_obs_t *obs = tcrb_current_obs(&w);
  json_object *args = json_object_new_object();
  json_object *filter = !NIL_P(ns) && RSTRING_LEN(ns) > 0 ? tcrb_string_json(ns, "namespace") : NULL;
  json_object *incl_j = json_object_new_boolean(RTEST(incl));
  if (!args || !incl_j || (!NIL_P(ns) && RSTRING_LEN(ns) > 0 && !filter)) {
    json_object_put(args);
    json_object_put(filter);
    json_object_put(incl_j);
    rb_raise(rb_eNoMemError, "out of memory");
  }
  json_object_object_add(args, "include_cache_stats", incl_j);
  if (filter) json_object_object_add(args, "namespace", filter);
  return run_on(obs, w, "templates_list", args);
}

static VALUE run_template(const char *service, VALUE ns, VALUE name, VALUE version) {
  tc_worker_t *w = NULL;
  tc_obs_t *obs = tcrb_current_obs(&w);
  return run_on(obs, w, service, tcrb_template_args(ns, name, version));
}
static VALUE m_template_get(VALUE self, VALUE ns, VALUE name, VALUE version) {
  return run_template("template_get", ns, name, version);
}
static VALUE m_template_validate(VALUE self, VALUE ns, VALUE name, VALUE version) {
  return run_template("template_validate", ns, name, version);
}
static VALUE m_template_refresh(VALUE self, VALUE ns, VALUE name, VALUE version) {
  return run_template("template_refresh", ns, name, version);
}

void tcrb_observe_init(void) {
  rb_define_module_function(tcrb_mFFI, "health_basic", m_health_basic, 0);
  rb_define_module_function(tcrb_mFFI, "health_live", m_health_live, 0);
  rb_define_module_function(tcrb_mFFI, "health_ready", m_health_ready, 0);
  rb_define_module_function(tcrb_mFFI, "health_detailed", m_health_detailed, 0);
  rb_define_module_function(tcrb_mFFI, "metrics_worker", m_metrics_worker, 0);
  rb_define_module_function(tcrb_mFFI, "metrics_prometheus", m_metrics_prometheus, 0);
  rb_define_module_function(tcrb_mFFI, "metrics_events", m_metrics_events, 0);
  rb_define_module_function(tcrb_mFFI, "templates_list", m_templates_list, -1);
  rb_define_module_function(tcrb_mFFI, "template_get", m_template_get, 3);
  rb_define_module_function(tcrb_mFFI, "template_validate", m_template_validate, 3);
  rb_define_module_function(tcrb_mFFI, "templates_cache_stats", m_templates_cache_stats, 0);
  rb_define_module_function(tcrb_mFFI, "templates_cache_clear", m_templates_cache_clear, 0);
  rb_define_module_function(tcrb_mFFI, "template_refresh", m_template_refresh, 3);
  rb_define_module_function(tcrb_mFFI, "config_runtime", m_config_runtime, 0);
  rb_define_module_function(tcrb_mFFI, "config_environment", m_config_environment, 0);
}
