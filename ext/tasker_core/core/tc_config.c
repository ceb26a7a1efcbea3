/*
 * tc_config.c - the config_runtime service: the worker's effective configuration (pool, breaker,
 * worker options, merged with the host's view of it), secrets redacted (tc_redact.c).
 */
#include "tc_observe.h"

static void merge_into(json_object *dst, json_object *src) {
  json_object_object_foreach(src, k, v) {
    json_object *cur = tc_json_get(dst, k);
    if (cur && json_object_is_type(cur, json_type_object) && json_object_is_type(v, json_type_object)) merge_into(cur, v);
    else json_object_object_add(dst, k, json_object_get(v));
  }
}

static json_object *obj(void) { return json_object_new_object(); }

json_object *tc_config_runtime(tc_obs_t *o, tc_error_t *err) {
  json_object *st = NULL;
  if (tc_worker_status(o->w, &st, err) != TC_OK) return NULL;
  json_object *full = obj(), *common = obj(), *db = obj(), *pool = obj(), *cbs = obj(), *sys = obj(), *worker = obj();
  if (!full || !common || !db || !pool || !cbs || !sys || !worker) {
    json_object *all[] = {full, common, db, pool, cbs, sys, worker, st};
    for (size_t i = 0; i < 8; i++) json_object_put(all[i]);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  json_object_object_add(db, "url", json_object_new_string(o->rt->database_url));
  json_object_object_add(pool, "max_connections", json_object_new_int(o->rt->pool.max));
  json_object_object_add(pool, "connect_timeout_seconds", json_object_new_int(o->rt->pool.connect_timeout_s));
  json_object_object_add(pool, "acquire_timeout_ms", json_object_new_int(o->rt->pool.acquire_timeout_ms));
  json_object_object_add(db, "pool", pool);
  json_object_object_add(common, "database", db);
  json_object *dbcb = tc_breaker_json(&o->breaker);
  json_object_object_add(cbs, "database", dbcb);
  json_object_object_add(common, "circuit_breakers", cbs);
  json_object_object_add(common, "telemetry", obj());
  json_object_object_add(sys, "version", json_object_new_string(TC_VERSION));
  json_object_object_add(sys, "schema_version", json_object_new_int(tc_schema_version()));
  json_object_object_add(common, "system", sys);
  json_object_object_add(common, "backoff", obj());
  json_object_object_add(common, "task_templates", obj());
  json_object_object_add(worker, "worker_id", json_object_new_string(o->worker_id));
  json_object_object_add(worker, "worker_type", json_object_new_string("command_processor"));
  const char *keys[] = {"namespaces", "concurrency", "deployment_mode", "poll_interval_ms"};
  for (size_t i = 0; i < 4; i++) json_object_object_add(worker, keys[i], json_object_get(tc_json_get(st, keys[i])));
  json_object_object_add(full, "environment", json_object_new_string(o->environment));
  json_object_object_add(full, "common", common);
  json_object_object_add(full, "worker", worker);
  if (o->config) merge_into(full, o->config);
  json_object_put(st);
  json_object *red = NULL, *paths = NULL;
  int rc = tc_redact(full, &red, &paths, err);
  json_object_put(full);
  if (rc != TC_OK) return NULL;
  json_object *meta = obj();
  if (!meta) {
    json_object_put(red);
    json_object_put(paths);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  json_object_object_add(meta, "timestamp", tc_obs_timestamp());
  json_object_object_add(meta, "source", json_object_new_string("runtime"));
  json_object_object_add(meta, "redacted_fields", paths);
  json_object_object_add(red, "environment", json_object_new_string(o->environment));
  json_object_object_add(red, "metadata", meta);
  return red;
}

