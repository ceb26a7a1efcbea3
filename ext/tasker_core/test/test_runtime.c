/*
 * test_runtime.c - tests of the runtime (tc_runtime.c, tc_db.c): an unreachable server, a bad
 * configuration, the options every session runs with.
 */
#include <stdio.h>
#include <string.h>

#include "tc_test.h"

void test_unreachable(const char *url) {
  json_object *cfg = parse("{\"database_url\":\"postgresql://127.0.0.1:1/nothing\",\"connect_timeout_seconds\":1}");
  tc_runtime_t *rt = NULL;
  tc_error_t err = {0};
  int rc = tc_runtime_new(cfg, &rt, &err);
  json_object_put(cfg);
  CHECK_RC(rc, err);
  json_object *out = NULL;
  rc = tc_migrate(rt, &out, &err);
  CHECK(rc == TC_EDB && out == NULL, "migrate against nothing returned %s", tc_err_name(rc));
  CHECK(strstr(err.message, "connection") != NULL, "message: %s", err.message);
  /* The health check answers (unhealthy) instead of failing. */
  json_object *health = NULL;
  rc = tc_client_health_check(rt, &health, &err);
  CHECK(rc == TC_OK && health && !boolean(health, "healthy") && !boolean(health, "database_connected") &&
            strstr(str(health, "error"), "database connection failed") &&
            !json_object_object_get_ex(health, "schema_version", NULL),
        "health of nothing: %s", health ? json_object_to_json_string(health) : err.message);
  json_object_put(health);
  tc_runtime_free(rt);

  json_object *bad = parse("{\"pool_size\":3}");
  rc = tc_runtime_new(bad, &rt, &err);
  CHECK(rc == TC_ECONFIG && strstr(err.message, "database_url"), "%s", err.message);
  json_object_put(bad);
}

/* Every engine session runs with JIT and sequential scans off, and keeps the options its URL carries. */
void test_session_options(const char *url) {
  char cfg_text[2048];
  snprintf(cfg_text, sizeof cfg_text,
           "{\"database_url\":\"%s%soptions=-c%%20statement_timeout%%3D4321\",\"pool_size\":1,\"log_level\":\"off\"}",
           url, strchr(url, '?') ? "&" : "?");
  tc_runtime_t *rt = test_runtime_config(cfg_text);
  if (!rt) return;
  tc_error_t err = {0};
  int rc;
  json_object *out = NULL;
  rc = tc_rt_query_json(rt, "SELECT json_build_object('jit', current_setting('jit'), 'timeout', "
                            "current_setting('statement_timeout'), 'seqscan', current_setting('enable_seqscan'))",
                        0, NULL, &out, &err);
  CHECK_RC(rc, err);
  CHECK(out && strcmp(str(out, "jit"), "off") == 0, "jit is %s", out ? str(out, "jit") : "?");
  CHECK(out && strcmp(str(out, "seqscan"), "off") == 0, "enable_seqscan is %s", out ? str(out, "seqscan") : "?");
  CHECK(out && strcmp(str(out, "timeout"), "4321ms") == 0, "statement_timeout is %s",
        out ? str(out, "timeout") : "?");
  json_object_put(out);

  /* Every data exception (SQLSTATE class 22) is bad input, not a database failure. */
  const char *bad_data[][2] = {{"SELECT to_jsonb(1 / 0)", "22012"},
                               {"SELECT to_jsonb(convert_from('\\xff'::bytea, 'UTF8'))", "22021"},
                               {"SELECT to_jsonb('45m'::text::integer)", "22P02"}};
  for (size_t i = 0; i < sizeof bad_data / sizeof bad_data[0]; i++) {
    out = NULL;
    rc = tc_rt_query_json(rt, bad_data[i][0], 0, NULL, &out, &err);
    CHECK(rc == TC_EINVAL && strcmp(err.sqlstate, bad_data[i][1]) == 0, "%s: %s (%s) %s", bad_data[i][0],
          tc_err_name(rc), err.sqlstate, err.message);
    json_object_put(out);
  }
  tc_runtime_free(rt);
}
