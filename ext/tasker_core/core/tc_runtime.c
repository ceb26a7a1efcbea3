/*
 * tc_runtime.c - the runtime handle (configuration, pool, log level) and schema migrations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tc_internal.h"
#include "tc_migrations.h" /* generated at build time from the sql directory */

#define TC_MIGRATION_LOCK_KEY "7305162488113021789"

int tc_runtime_new(json_object *config, tc_runtime_t **out, tc_error_t *err) {
  if (!config || !json_object_is_type(config, json_type_object))
    return tc_error_set(err, TC_ECONFIG, "config must be an object");
  json_object *url = NULL;
  if (!json_object_object_get_ex(config, "database_url", &url) || !url ||
      !json_object_is_type(url, json_type_string) || json_object_get_string_len(url) == 0)
    return tc_error_set(err, TC_ECONFIG,
                        "config database_url is required (set TASKER_DATABASE_URL or DATABASE_URL)");

  int pool_size = 10, connect_timeout = 5, acquire_timeout = 10000;
  int log_level = TC_LOG_WARN;
  const tc_int_opt_t ints[] = {{"pool_size", 1, 500, &pool_size},
                               {"connect_timeout_seconds", 1, 300, &connect_timeout},
                               {"acquire_timeout_ms", 1, 600000, &acquire_timeout}};
  int rc = tc_json_opt_ints(config, ints, TC_COUNT(ints), TC_ECONFIG, "config ", err);
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

int tc_schema_version(void) {
  int max = 0;
  for (size_t i = 0; i < sizeof tc_migrations / sizeof tc_migrations[0]; i++)
    if (tc_migrations[i].version > max) max = tc_migrations[i].version;
  return max;
}

/* Applies one migration and records it, in one transaction. */
static int apply_one(PGconn *conn, const tc_migration_t *m, tc_error_t *err) {
  int rc = tc_db_exec(conn, "BEGIN", 0, NULL, err);
  if (rc != TC_OK) return rc;
  rc = tc_db_exec(conn, m->sql, 0, NULL, err);
  if (rc == TC_OK) {
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name};
    rc = tc_db_exec(conn, "INSERT INTO tasker.schema_migrations (version, name) VALUES ($1, $2)", 2,
                    params, err);
  }
  if (rc == TC_OK) rc = tc_db_exec(conn, "COMMIT", 0, NULL, err);
  if (rc != TC_OK) {
    tc_error_t ignored;
    tc_db_exec(conn, "ROLLBACK", 0, NULL, &ignored);
    if (err) {
      char detail[sizeof err->message];
      snprintf(detail, sizeof detail, "%s", err->message);
      snprintf(err->message, sizeof err->message, "migration %04d_%s failed: %.900s", m->version,
               m->name, detail);
    }
  }
  return rc;
}

typedef struct {
  tc_runtime_t *rt;
  json_object *applied;
} migrate_args_t;

static int migrate_on(PGconn *conn, void *arg, tc_error_t *err) {
  migrate_args_t *m = arg;
  /* A session advisory lock serializes concurrent migrators (several processes booting at once). */
  int rc = tc_db_exec(conn, "SELECT pg_advisory_lock(" TC_MIGRATION_LOCK_KEY ")", 0, NULL, err);
  if (rc != TC_OK) return rc;
  rc = tc_db_exec(conn,
                  "SET client_min_messages = warning;"
                  "CREATE SCHEMA IF NOT EXISTS tasker;"
                  "CREATE TABLE IF NOT EXISTS tasker.schema_migrations ("
                  "  version integer PRIMARY KEY, name text NOT NULL,"
                  "  applied_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'))",
                  0, NULL, err);
  json_object *done = NULL;
  if (rc == TC_OK)
    rc = tc_db_query_json(conn, "SELECT coalesce(jsonb_agg(version), '[]') FROM tasker.schema_migrations", 0, NULL,
                          &done, err);
  for (size_t i = 0; rc == TC_OK && i < sizeof tc_migrations / sizeof tc_migrations[0]; i++) {
    const tc_migration_t *mig = &tc_migrations[i];
    bool present = false;
    for (size_t j = 0; done && j < json_object_array_length(done); j++)
      if (json_object_get_int(json_object_array_get_idx(done, j)) == mig->version) present = true;
    if (present) continue;
    rc = apply_one(conn, mig, err);
    if (rc == TC_OK) {
      json_object_array_add(m->applied, json_object_new_int(mig->version));
      tc_log(m->rt, TC_LOG_INFO, "migration_applied", "applied migration %04d_%s", mig->version, mig->name);
    }
  }
  json_object_put(done);
  tc_error_t ignored;
  if (PQstatus(conn) == CONNECTION_OK)
    tc_db_exec(conn, "SELECT pg_advisory_unlock(" TC_MIGRATION_LOCK_KEY ")", 0, NULL, &ignored);
  return rc;
}

int tc_migrate(tc_runtime_t *rt, json_object **out, tc_error_t *err) {
  json_object *applied = json_object_new_array();
  if (!applied) return tc_error_set(err, TC_ENOMEM, "out of memory");
  migrate_args_t m = {rt, applied};
  int rc = tc_rt_with_conn(rt, migrate_on, &m, err);
  if (rc != TC_OK) {
    json_object_put(applied);
    return rc;
  }
  json_object *report = json_object_new_object();
  if (!report) {
    json_object_put(applied);
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  }
  json_object_object_add(report, "applied", applied);
  json_object_object_add(report, "current_version", json_object_new_int(tc_schema_version()));
  *out = report;
  return TC_OK;
}
