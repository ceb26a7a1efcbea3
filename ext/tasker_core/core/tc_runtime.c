/*
 * tc_runtime.c - the runtime handle: configuration, pool, log level.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tc_internal.h"

int tc_runtime_new(json_object *config, tc_runtime_t **out, tc_error_t *err) {
  if (!config || !json_object_is_type(config, json_type_object))
    return tc_error_set(err, TC_ECONFIG, "config must be an object");
  json_object *url = NULL;
  if (!json_object_object_get_ex(config, "database_url", &url) || !url ||
      !json_object_is_type(url, json_type_string) || json_object_get_string_len(url) == 0)
    return tc_error_set(err, TC_ECONFIG,
                        "config database_url is required (set TASKER_DATABASE_URL or DATABASE_URL)");

  int rc = tc_database_url_check(json_object_get_string(url), err);
  if (rc != TC_OK) return rc;

  int pool_size = 10, connect_timeout = 5, acquire_timeout = 10000;
  int log_level = TC_LOG_WARN;
  const tc_int_opt_t ints[] = {{"pool_size", 1, 500, &pool_size},
                               {"connect_timeout_seconds", 1, 300, &connect_timeout},
                               {"acquire_timeout_ms", 1, 600000, &acquire_timeout}};
  rc = tc_json_opt_ints(config, ints, TC_COUNT(ints), TC_ECONFIG, "config ", err);
  if (rc != TC_OK) return rc;
  json_object *lvl = NULL;
  if (json_object_object_get_ex(config, "log_level", &lvl) && lvl) {
    log_level = tc_log_level_parse(json_object_get_string(lvl));
    if (log_level < 0)
      return tc_error_set(err, TC_ECONFIG,
                          "config log_level must be one of trace, debug, info, warn, error, off");
  }

  tc_runtime_t *rt = tc_calloc(1, sizeof *rt);
  if (!rt) return tc_error_set(err, TC_ENOMEM, "out of memory creating the runtime");
  rt->database_url = tc_strdup(json_object_get_string(url));
  rt->log_level = log_level;
  rt->pid = getpid();
  pthread_mutex_init(&rt->log_mu, NULL);
  pthread_mutex_init(&rt->events_mu, NULL);
  if (!rt->database_url) {
    pthread_mutex_destroy(&rt->log_mu);
    pthread_mutex_destroy(&rt->events_mu);
    tc_free(rt);
    return tc_error_set(err, TC_ENOMEM, "out of memory creating the runtime");
  }
  rc = tc_pool_init(&rt->pool, rt, rt->database_url, pool_size, connect_timeout, acquire_timeout,
                    err);
  if (rc != TC_OK) {
    tc_free(rt->database_url);
    pthread_mutex_destroy(&rt->log_mu);
    pthread_mutex_destroy(&rt->events_mu);
    tc_free(rt);
    return rc;
  }
  *out = rt;
  return TC_OK;
}

void tc_runtime_free(tc_runtime_t *rt) {
  if (!rt) return;
  tc_events_free(rt->events);
  tc_pool_destroy(&rt->pool);
  pthread_mutex_destroy(&rt->log_mu);
  pthread_mutex_destroy(&rt->events_mu);
  tc_free(rt->database_url);
  tc_free(rt);
}

void tc_runtime_abandon(tc_runtime_t *rt) {
  if (!rt) return;
  rt->events = NULL; /* Its thread did not survive the fork; its memory is left behind. */
  tc_pool_abandon(&rt->pool);
}
