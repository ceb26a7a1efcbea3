/*
 * tc_migrate.c - the embedded schema: versioned migrations applied once, in order, and the
 * function files applied again whenever their text changes, each recorded with its checksum
 * (docs/architecture.md, "Migrations and functions").
 */
#include <stdio.h>
#include <string.h>

#include "tc_internal.h"
#include "tc_migrations.h" /* generated at build time from the sql directory */

#define TC_MIGRATION_LOCK_KEY "7305162488113021789"

int tc_schema_version(void) {
  int max = 0;
  for (size_t i = 0; i < sizeof tc_migrations / sizeof tc_migrations[0]; i++)
    if (tc_migrations[i].version > max) max = tc_migrations[i].version;
  return max;
}

/* Releases before the functions moved to sql/functions kept them in migrations 1-18; a database
 * with all 18 applied has exactly the schema of migration 1 here (a spec compares the two). */
#define TC_LEGACY_CHAIN_LAST 18

#define N_MIGRATIONS (sizeof tc_migrations / sizeof tc_migrations[0])
#define N_FUNCTION_FILES (sizeof tc_function_files / sizeof tc_function_files[0])

static void rollback(PGconn *conn) {
  tc_error_t ignored;
  tc_db_exec(conn, "ROLLBACK", 0, NULL, &ignored);
}

/* Applies one migration or function file and records it with its checksum, in one transaction. */
static int apply_one(PGconn *conn, const tc_migration_t *m, tc_error_t *err) {
  int rc = tc_db_exec(conn, "BEGIN", 0, NULL, err);
  if (rc != TC_OK) return rc;
  rc = tc_db_exec(conn, m->sql, 0, NULL, err);
  if (rc == TC_OK && m->version > 0) {
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name, m->checksum};
    rc = tc_db_exec(conn, "INSERT INTO tasker.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", 3,
                    params, err);
  } else if (rc == TC_OK) {
    const char *params[] = {m->name, m->checksum};
    rc = tc_db_exec(conn,
                    "INSERT INTO tasker.schema_functions (name, checksum) VALUES ($1, $2) "
                    "ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, "
                    "applied_at = (now() AT TIME ZONE 'utc')",
                    2, params, err);
  }
  if (rc == TC_OK) rc = tc_db_exec(conn, "COMMIT", 0, NULL, err);
  if (rc != TC_OK) {
    rollback(conn);
    if (err) {
      char detail[sizeof err->message];
      snprintf(detail, sizeof detail, "%s", err->message);
      if (m->version > 0)
        snprintf(err->message, sizeof err->message, "migration %04d_%s failed: %.900s", m->version, m->name, detail);
      else
        snprintf(err->message, sizeof err->message, "functions/%s.sql failed: %.900s", m->name, detail);
    }
  }
  return rc;
}

static const tc_migration_t *find_migration(int version) {
  for (size_t i = 0; i < N_MIGRATIONS; i++)
    if (tc_migrations[i].version == version) return &tc_migrations[i];
  return NULL;
}

/* A database migrated by a release whose chain defined functions in migrations: with the whole
 * chain applied it is recorded as migration 1 (its function files are applied next, as for any
 * database whose functions are not current); with part of it, it must finish that chain first. */
static int adopt_legacy_chain(tc_runtime_t *rt, PGconn *conn, json_object *rows, tc_error_t *err) {
  size_t n = json_object_array_length(rows);
  int legacy = 0, max = 0;
  for (size_t i = 0; i < n; i++) {
    json_object *row = json_object_array_get_idx(rows, i);
    int v = json_object_get_int(json_object_array_get_idx(row, 0));
    if (json_object_array_get_idx(row, 2) == NULL) legacy++;
    if (v > max) max = v;
  }
  if (legacy == 0) return TC_OK;
  if (legacy != (int)n || max != TC_LEGACY_CHAIN_LAST || (int)n != TC_LEGACY_CHAIN_LAST)
    return tc_error_set(err, TC_ESTATE,
                        "the tasker schema holds %d of the %d migrations of an earlier release (up to version %d): "
                        "migrate it with that release first",
                        legacy, TC_LEGACY_CHAIN_LAST, max);
  const tc_migration_t *first = find_migration(1);
  const char *params[] = {first->name, first->checksum};
  int rc = tc_db_exec(conn, "BEGIN", 0, NULL, err);
  if (rc == TC_OK)
    rc = tc_db_exec(conn, "DELETE FROM tasker.schema_migrations WHERE version > 1 AND checksum IS NULL", 0, NULL, err);
  if (rc == TC_OK)
    rc = tc_db_exec(conn, "UPDATE tasker.schema_migrations SET name = $1, checksum = $2 WHERE version = 1", 2,
                    params, err);
  if (rc == TC_OK) rc = tc_db_exec(conn, "COMMIT", 0, NULL, err);
  if (rc != TC_OK) {
    rollback(conn);
    return rc;
  }
  json_object *row = json_object_array_get_idx(rows, 0);
  json_object_array_put_idx(row, 2, json_object_new_string(first->checksum));
  json_object_array_del_idx(rows, 1, n - 1);
  tc_log(rt, TC_LOG_INFO, "migration_adopted",
         "recorded the earlier release's migrations 1-%d as migration 0001_%s", TC_LEGACY_CHAIN_LAST, first->name);
  return TC_OK;
}

/* Every applied migration must be one of this library's, unchanged; none may be missing below the
 * newest applied one. Sets *pending_from to the first version still to apply. */
static int check_applied(json_object *rows, int *pending_from, tc_error_t *err) {
  int max = 0;
  size_t n = json_object_array_length(rows);
  for (size_t i = 0; i < n; i++) {
    json_object *row = json_object_array_get_idx(rows, i);
    int v = json_object_get_int(json_object_array_get_idx(row, 0));
    const char *checksum = json_object_get_string(json_object_array_get_idx(row, 2));
    const tc_migration_t *m = find_migration(v);
    if (!m)
      return tc_error_set(err, TC_ESTATE,
                          "the tasker schema has migration %04d, which this library (up to %04d) does not have: "
                          "it was migrated by a newer release",
                          v, tc_schema_version());
    if (!checksum || strcmp(checksum, m->checksum) != 0)
      return tc_error_set(err, TC_ESTATE,
                          "migration %04d_%s was changed after it was applied (checksum %.12s recorded, %.12s in "
                          "this library)",
                          v, m->name, checksum ? checksum : "none", m->checksum);
    if (v > max) max = v;
  }
  if ((int)n != max)
    return tc_error_set(err, TC_ESTATE, "the tasker schema has %zu migrations applied up to version %04d: one is missing",
                        n, max);
  *pending_from = max + 1;
  return TC_OK;
}

const char *tc_schema_stale_function_file(json_object *recorded) {
  for (size_t i = 0; i < N_FUNCTION_FILES; i++) {
    json_object *have = NULL;
    if (!recorded || !json_object_object_get_ex(recorded, tc_function_files[i].name, &have) ||
        strcmp(json_object_get_string(have), tc_function_files[i].checksum) != 0)
      return tc_function_files[i].name;
  }
  return NULL;
}

typedef struct {
  tc_runtime_t *rt;
  json_object *applied;
  json_object *functions;
} migrate_args_t;

/* Applies the function file f when the database's record of it differs from its text. */
static int apply_function_file(migrate_args_t *m, PGconn *conn, json_object *recorded, const tc_migration_t *f,
                               tc_error_t *err) {
  json_object *have = NULL;
  if (recorded && json_object_object_get_ex(recorded, f->name, &have) &&
      strcmp(json_object_get_string(have), f->checksum) == 0)
    return TC_OK;
  int rc = apply_one(conn, f, err);
  if (rc != TC_OK) return rc;
  if (json_object_array_add(m->functions, json_object_new_string(f->name)) != 0)
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  tc_log(m->rt, TC_LOG_INFO, "functions_applied", "applied functions/%s.sql", f->name);
  return TC_OK;
}

static int migrate_locked(migrate_args_t *m, PGconn *conn, tc_error_t *err) {
  int rc = tc_db_exec(conn,
                      "SET client_min_messages = warning;"
                      "CREATE SCHEMA IF NOT EXISTS tasker;"
                      "CREATE TABLE IF NOT EXISTS tasker.schema_migrations ("
                      "  version integer PRIMARY KEY, name text NOT NULL,"
                      "  applied_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'));"
                      "ALTER TABLE tasker.schema_migrations ADD COLUMN IF NOT EXISTS checksum text;"
                      "CREATE TABLE IF NOT EXISTS tasker.schema_functions ("
                      "  name text PRIMARY KEY, checksum text NOT NULL,"
                      "  applied_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'))",
                      0, NULL, err);
  json_object *rows = NULL, *recorded = NULL;
  if (rc == TC_OK)
    rc = tc_db_query_json(conn,
                          "SELECT coalesce(jsonb_agg(jsonb_build_array(version, name, checksum) ORDER BY version), "
                          "'[]') FROM tasker.schema_migrations",
                          0, NULL, &rows, err);
  if (rc == TC_OK && !rows) rc = tc_error_set(err, TC_EDB, "reading tasker.schema_migrations returned nothing");
  if (rc == TC_OK)
    rc = tc_db_query_json(conn, "SELECT jsonb_object_agg(name, checksum) FROM tasker.schema_functions", 0, NULL,
                          &recorded, err);
  if (rc == TC_OK) rc = adopt_legacy_chain(m->rt, conn, rows, err);
  int pending_from = 1;
  if (rc == TC_OK) rc = check_applied(rows, &pending_from, err);
  /* util.sql first: the migrations' DDL calls its functions. */
  if (rc == TC_OK) rc = apply_function_file(m, conn, recorded, &tc_function_files[0], err);
  for (size_t i = 0; rc == TC_OK && i < N_MIGRATIONS; i++) {
    const tc_migration_t *mig = &tc_migrations[i];
    if (mig->version < pending_from) continue;
    rc = apply_one(conn, mig, err);
    if (rc == TC_OK) {
      json_object_array_add(m->applied, json_object_new_int(mig->version));
      tc_log(m->rt, TC_LOG_INFO, "migration_applied", "applied migration %04d_%s", mig->version, mig->name);
    }
  }
  for (size_t i = 1; rc == TC_OK && i < N_FUNCTION_FILES; i++)
    rc = apply_function_file(m, conn, recorded, &tc_function_files[i], err);
  json_object_put(rows);
  json_object_put(recorded);
  return rc;
}

static int migrate_on(PGconn *conn, void *arg, tc_error_t *err) {
  /* A session advisory lock serializes concurrent migrators (several processes booting at once). */
  int rc = tc_db_exec(conn, "SELECT pg_advisory_lock(" TC_MIGRATION_LOCK_KEY ")", 0, NULL, err);
  if (rc != TC_OK) return rc;
  rc = migrate_locked(arg, conn, err);
  tc_error_t ignored;
  if (PQstatus(conn) == CONNECTION_OK)
    tc_db_exec(conn, "SELECT pg_advisory_unlock(" TC_MIGRATION_LOCK_KEY ")", 0, NULL, &ignored);
  return rc;
}

int tc_migrate(tc_runtime_t *rt, json_object **out, tc_error_t *err) {
  json_object *report = json_object_new_object();
  json_object *applied = json_object_new_array();
  json_object *functions = json_object_new_array();
  if (!report || !applied || !functions) {
    json_object_put(report);
    json_object_put(applied);
    json_object_put(functions);
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  }
  json_object_object_add(report, "applied", applied);
  json_object_object_add(report, "functions", functions);
  migrate_args_t m = {rt, applied, functions};
  int rc = tc_rt_with_conn(rt, migrate_on, &m, err);
  if (rc != TC_OK) {
    json_object_put(report);
    return rc;
  }
  json_object_object_add(report, "current_version", json_object_new_int(tc_schema_version()));
  *out = report;
  return TC_OK;
}
