/*
 * tc_observe.c - the worker's observability services (SPEC 6-7): their lifecycle and dispatch by
 * name. Each service answers JSON (Prometheus text for metrics_prometheus) to the language binding
 * and to the web server (tc_web.c) alike: health (tc_health.c), metrics (tc_metrics_text.c),
 * templates (tc_template_cache.c) and configuration (tc_config.c), database calls through the
 * circuit breaker (tc_breaker.c).
 *
 * Threads: any number of threads may call tc_obs_call at once; the breaker and the template cache
 * have their own locks.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tc_observe.h"

void tc_obs_now_iso(char buf[40]) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, 40 - n, ".%06ldZ", ts.tv_nsec / 1000);
}

json_object *tc_obs_timestamp(void) {
  char buf[40];
  tc_obs_now_iso(buf);
  return json_object_new_string(buf);
}

/* Returns the serialized text as a new malloc'd string (the caller frees it with tc_obs_text_free). */
static int finish(json_object *obj, char **text, tc_error_t *err) {
  if (!obj) return tc_error_set(err, TC_ENOMEM, "out of memory building the response");
  const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  *text = s ? tc_strdup(s) : NULL;
  json_object_put(obj);
  return *text ? TC_OK : tc_error_set(err, TC_ENOMEM, "out of memory building the response");
}

void tc_obs_text_free(char *text) { tc_free(text); }

int tc_obs_new(tc_runtime_t *rt, tc_worker_t *w, json_object *options, tc_obs_t **out, tc_error_t *err) {
  if (!rt || !w) return tc_error_set(err, TC_EINVAL, "observability needs a runtime and a worker");
  if (options && !json_object_is_type(options, json_type_object))
    return tc_error_set(err, TC_ECONFIG, "observability options must be an object");
  int failures = 5, successes = 2, timeout_s = 30, degraded = 10000, unhealthy = 50000;
  json_object *cb = tc_json_get(options, "circuit_breaker");
  if (cb && !json_object_is_type(cb, json_type_object))
    return tc_error_set(err, TC_ECONFIG, "observability option circuit_breaker must be an object");
  const tc_int_opt_t breaker_ints[] = {{"failure_threshold", 1, 1000, &failures},
                                       {"success_threshold", 1, 1000, &successes},
                                       {"timeout_seconds", 1, 3600, &timeout_s}};
  const tc_int_opt_t queue_ints[] = {{"queue_depth_degraded", 1, 100000000, &degraded},
                                     {"queue_depth_unhealthy", 1, 100000000, &unhealthy}};
  int rc = tc_json_opt_ints(cb, breaker_ints, TC_COUNT(breaker_ints), TC_ECONFIG, "observability option ", err);
  if (rc == TC_OK)
    rc = tc_json_opt_ints(options, queue_ints, TC_COUNT(queue_ints), TC_ECONFIG, "observability option ", err);
  if (rc != TC_OK) return rc;
  json_object *env = tc_json_get(options, "environment"), *wid = tc_json_get(options, "worker_id");
  json_object *cfg = tc_json_get(options, "config");
  if (env && !json_object_is_type(env, json_type_string))
    return tc_error_set(err, TC_ECONFIG, "observability option environment must be a string");
  if (wid && !json_object_is_type(wid, json_type_string))
    return tc_error_set(err, TC_ECONFIG, "observability option worker_id must be a string");
  if (cfg && !json_object_is_type(cfg, json_type_object))
    return tc_error_set(err, TC_ECONFIG, "observability option config must be an object");
  tc_obs_t *o = tc_calloc(1, sizeof *o);
  if (!o) return tc_error_set(err, TC_ENOMEM, "out of memory creating the observability services");
  if (tc_template_cache_init(&o->cache) != 0 || (cfg && json_object_deep_copy(cfg, &o->config, NULL) != 0)) {
    tc_template_cache_destroy(&o->cache);
    tc_free(o);
    return tc_error_set(err, TC_ENOMEM, "out of memory creating the observability services");
  }
  o->rt = rt;
  o->w = w;
  json_object *st = NULL;
  tc_error_t e = {0};
  const char *uuid = "";
  if (tc_worker_status(w, &st, &e) == TC_OK) uuid = json_object_get_string(tc_json_get(st, "worker_uuid"));
  if (wid) snprintf(o->worker_id, sizeof o->worker_id, "%s", json_object_get_string(wid));
  else snprintf(o->worker_id, sizeof o->worker_id, "worker_%s", uuid);
  json_object_put(st);
  snprintf(o->environment, sizeof o->environment, "%s", env ? json_object_get_string(env) : "development");
  tc_breaker_init(&o->breaker, rt, failures, successes, (int64_t)timeout_s * 1000);
  o->queue_degraded = degraded;
  o->queue_unhealthy = unhealthy > degraded ? unhealthy : degraded + 1;
  *out = o;
  return TC_OK;
}

void tc_obs_free(tc_obs_t *o) {
  if (!o) return;
  tc_template_cache_destroy(&o->cache);
  json_object_put(o->config);
  tc_breaker_destroy(&o->breaker);
  tc_free(o);
}

int tc_obs_call(tc_obs_t *o, const char *service, json_object *args, char **text, tc_error_t *err) {
  if (!o || !service) return tc_error_set(err, TC_EINVAL, "service is required");
  if (args && !json_object_is_type(args, json_type_object)) return tc_error_set(err, TC_EINVAL, "args must be an object");
  json_object *j = NULL;
  tc_error_t local = {0};
  if (!err) err = &local;
  err->code = TC_OK;
  if (strcmp(service, "health_basic") == 0) j = tc_health_basic(o, "healthy");
  else if (strcmp(service, "health_live") == 0) j = tc_health_basic(o, "alive");
  else if (strcmp(service, "health_ready") == 0) j = tc_health_report(o, false);
  else if (strcmp(service, "health_detailed") == 0) j = tc_health_report(o, true);
  else if (strcmp(service, "metrics_worker") == 0) j = tc_metrics_text_worker(o, err);
  else if (strcmp(service, "metrics_prometheus") == 0) return tc_metrics_text_prometheus(o, text, err);
  else if (strcmp(service, "metrics_events") == 0) j = tc_metrics_text_events(o, err);
  else if (strcmp(service, "templates_list") == 0) j = tc_template_cache_list(o, args, err);
  else if (strcmp(service, "template_get") == 0) j = tc_template_cache_get(o, args, err);
  else if (strcmp(service, "template_validate") == 0) j = tc_template_cache_validate(o, args, err);
  else if (strcmp(service, "templates_cache_stats") == 0) j = tc_template_cache_stats(o);
  else if (strcmp(service, "templates_cache_clear") == 0) j = tc_template_cache_clear(o);
  else if (strcmp(service, "template_refresh") == 0) j = tc_template_cache_refresh(o, args);
  else if (strcmp(service, "config_runtime") == 0) j = tc_config_runtime(o, err);
  else if (strcmp(service, "config_environment") == 0) {
    *text = tc_strdup(o->environment);
    return *text ? TC_OK : tc_error_set(err, TC_ENOMEM, "out of memory");
  } else {
    return tc_error_set(err, TC_EINVAL, "unknown observability service %s", service);
  }
  if (!j) return err->code != TC_OK ? err->code : tc_error_set(err, TC_ENOMEM, "out of memory building the response");
  return finish(j, text, err);
}
