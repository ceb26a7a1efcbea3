/*
 * test_observe.c - tests of the observability services (tc_observe.c and the files it dispatches to),
 * secret redaction and the web server (tc_web.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tc_test.h"

/* Observability services: redaction, the database breaker against an unreachable server, and
 * every service of a running worker against a real database. */
static char *obs_text(tc_obs_t *o, const char *service, json_object *args, int expect_rc) {
  char *text = NULL;
  tc_error_t err = {0};
  int rc = tc_obs_call(o, service, args, &text, &err);
  CHECK(rc == expect_rc, "%s returned %s: %s", service, tc_err_name(rc), err.message);
  CHECK(rc != TC_OK || (text && *text), "%s answered nothing", service);
  return text;
}

void test_redact(const char *url) {
  json_object *in = parse("{\"database\":{\"url\":\"postgres://u:pw@h/db\",\"pool\":5},\"auth\":{\"api_keys\":[\"k1\",\"\"],"
                          "\"enabled\":true,\"jwt_private_key\":\"\"},\"Password\":12,\"name\":\"x\"}");
  json_object *out = NULL, *paths = NULL;
  tc_error_t err = {0};
  int rc = tc_redact(in, &out, &paths, &err);
  CHECK_RC(rc, err);
  const char *text = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  CHECK(strstr(text, "pw@") == NULL && strstr(text, "k1") == NULL && strstr(text, "12") == NULL, "%s", text);
  CHECK(strstr(text, "\"enabled\":true") && strstr(text, "\"jwt_private_key\":\"\"") && strstr(text, "\"name\":\"x\""),
        "%s", text);
  const char *p = json_object_to_json_string_ext(paths, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  CHECK(strcmp(p, "[\"database.url\",\"auth.api_keys[0]\",\"Password\"]") == 0, "paths %s", p);
  json_object_put(in);
  json_object_put(out);
  json_object_put(paths);
  /* By shape, under any key. */
  static const char *const cases[][2] = {
      {"postgres://u:pw@h/db", "postgres://***REDACTED***@h/db"},
      {"see https://tok@git.example/x and http://plain.example/y", "see https://***REDACTED***@git.example/x and http://plain.example/y"},
      {"host=h password=p%w dbname=x", "host=h password=***REDACTED*** dbname=x"},
      {"redis://h:1/0?token=abc&db=1", "redis://h:1/0?token=***REDACTED***&db=1"},
      {"Key (name)=(x) already exists", NULL},
      {"mailto:someone@example.com a=b", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bool oom = true;
    char *masked = tc_redact_text(cases[i][0], &oom);
    CHECK(!oom, "out of memory");
    CHECK(cases[i][1] ? masked && strcmp(masked, cases[i][1]) == 0 : masked == NULL, "%s -> %s", cases[i][0],
          masked ? masked : "(unchanged)");
    tc_free(masked);
  }
  /* libpq's messages lose the connection's password wherever it appears, and their newline. */
  PGconn *conn = PQconnectdb("postgresql://app:pw-s3cret@127.0.0.1:1/db?connect_timeout=1");
  char msg[128];
  tc_pg_scrub(conn, "could not read \"pw-s3cret\" from postgres://app:pw-s3cret@h/db\n", msg, sizeof msg);
  CHECK(strcmp(msg, "could not read \"***REDACTED***\" from postgres://***REDACTED***@h/db") == 0, "%s", msg);
  PQfinish(conn);
  tc_error_t bad = {0};
  CHECK(tc_database_url_check("postgresql://app:s3c%ret@h/db", &bad) == TC_ECONFIG && !strstr(bad.message, "s3c"),
        "%s", bad.message);
  CHECK(tc_database_url_check("postgresql://app:s3c%25ret@h/db", &bad) == TC_OK, "a valid URL was refused");
}

/* Sends one HTTP request to 127.0.0.1:port and returns the response (static buffer). */
static const char *http_raw(int port, const char *request) {
  static char buf[65536];
  buf[0] = '\0';
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (fd >= 0) close(fd);
    return buf;
  }
  if (write(fd, request, strlen(request)) < 0) {
    close(fd);
    return buf;
  }
  size_t n = 0;
  ssize_t r;
  while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
  buf[n] = '\0';
  close(fd);
  return buf;
}

static void test_web(tc_runtime_t *rt, tc_obs_t *o) {
  json_object *opts = parse("{\"bind_address\":\"127.0.0.1:0\"}");
  tc_web_t *web = NULL;
  tc_error_t err = {0};
  int rc = tc_web_start(rt, o, opts, &web, &err);
  json_object_put(opts);
  CHECK_RC(rc, err);
  if (!web) return;
  int port = tc_web_port(web);
  CHECK(port > 0, "port %d", port);
  const char *r = http_raw(port, "GET /health HTTP/1.0\r\n\r\n");
  CHECK(strncmp(r + 9, "200", 3) == 0 && strstr(r, "\"status\":\"healthy\""), "%.200s", r);
  r = http_raw(port, "GET /templates/ctest_obs/obs/1.0.0/validate HTTP/1.0\r\n\r\n");
  CHECK(strncmp(r + 9, "200", 3) == 0 && strstr(r, "\"valid\":true"), "%.300s", r);
  r = http_raw(port, "GET /metrics HTTP/1.0\r\n\r\n");
  CHECK(strncmp(r + 9, "200", 3) == 0 && strstr(r, "tasker_worker_info{"), "%.200s", r);
  r = http_raw(port, "DELETE /health HTTP/1.0\r\n\r\n");
  CHECK(strncmp(r + 9, "405", 3) == 0 && strstr(r, "method_not_allowed"), "%.200s", r);
  r = http_raw(port, "GET /nope HTTP/1.0\r\n\r\n");
  CHECK(strncmp(r + 9, "404", 3) == 0 && strstr(r, "\"request_id\""), "%.200s", r);
  tc_web_stop(web);
  opts = parse("{\"bind_address\":\"127.0.0.1:99999\"}");
  rc = tc_web_start(rt, o, opts, &web, &err);
  json_object_put(opts);
  CHECK(rc == TC_ECONFIG && strstr(err.message, "bind_address"), "%s", err.message);
}

void test_observe(const char *url) {
  for (int live = 0; live < 2; live++) {
    char cfg_text[2048];
    snprintf(cfg_text, sizeof cfg_text, "{\"database_url\":\"%s\",\"pool_size\":2,\"log_level\":\"off\",\"connect_timeout_seconds\":1}",
             live ? url : "postgresql://127.0.0.1:1/nothing");
    tc_runtime_t *rt = test_runtime_config(cfg_text);
    if (!rt) return;
    tc_error_t err = {0};
    int rc;
    json_object *wopts = parse("{\"namespaces\":[\"ctest_obs\"],\"concurrency\":2,\"staleness_check_interval_seconds\":0}");
    tc_worker_t *w = NULL;
    rc = tc_worker_new(rt, wopts, &w, &err);
    json_object_put(wopts);
    CHECK_RC(rc, err);
    json_object *oopts = parse("{\"environment\":\"test\",\"circuit_breaker\":{\"failure_threshold\":2,\"timeout_seconds\":60},"
                               "\"config\":{\"common\":{\"telemetry\":{\"token\":\"planted-secret\"}}}}");
    tc_obs_t *o = NULL;
    rc = tc_obs_new(rt, w, oopts, &o, &err);
    json_object_put(oopts);
    CHECK_RC(rc, err);
    if (!o || !w) {
      tc_worker_free(w);
      tc_runtime_free(rt);
      return;
    }
    if (!live) {
      char *t1 = obs_text(o, "health_ready", NULL, TC_OK);
      CHECK(t1 && strstr(t1, "\"status\":\"not_ready\""), "%s", t1);
      tc_obs_text_free(t1);
      tc_obs_text_free(obs_text(o, "health_ready", NULL, TC_OK));
      char *t3 = obs_text(o, "health_detailed", NULL, TC_OK);
      CHECK(t3 && strstr(t3, "circuit breaker is open") && strstr(t3, "database: open"), "%s", t3);
      tc_obs_text_free(t3);
    } else {
      rc = tc_worker_start(w, &err);
      CHECK_RC(rc, err);
      json_object *tpl = parse("{\"name\":\"obs\",\"namespace_name\":\"ctest_obs\",\"version\":\"1.0.0\","
                               "\"steps\":[{\"name\":\"a\",\"handler\":{\"callable\":\"A\"}}]}");
      json_object *reg = NULL;
      rc = tc_template_register(rt, tpl, &reg, &err);
      CHECK_RC(rc, err);
      json_object_put(reg);
      json_object_put(tpl);
      json_object *args = parse("{\"namespace\":\"ctest_obs\",\"name\":\"obs\",\"version\":\"1.0.0\"}");
      const char *services[] = {"health_basic", "health_live", "health_ready", "health_detailed", "metrics_worker",
                                "metrics_prometheus", "metrics_events", "templates_list", "template_get",
                                "template_validate", "templates_cache_stats", "template_refresh",
                                "templates_cache_clear", "config_runtime", "config_environment"};
      for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
        char *t = obs_text(o, services[i], args, TC_OK);
        CHECK(t && strstr(t, "planted-secret") == NULL, "%s leaked the secret", services[i]);
        tc_obs_text_free(t);
      }
      json_object *missing = parse("{\"namespace\":\"ctest_obs\",\"name\":\"none\",\"version\":\"1.0.0\"}");
      tc_obs_text_free(obs_text(o, "template_get", missing, TC_ENOTFOUND));
      char *refresh = obs_text(o, "template_refresh", missing, TC_OK);
      CHECK(refresh && strstr(refresh, "\"success\":false"), "%s", refresh);
      tc_obs_text_free(refresh);
      tc_obs_text_free(obs_text(o, "nothing", NULL, TC_EINVAL));
      char *ready = obs_text(o, "health_ready", NULL, TC_OK);
      CHECK(ready && strstr(ready, "\"status\":\"ready\""), "%s", ready);
      tc_obs_text_free(ready);
      json_object_put(missing);
      json_object_put(args);
      test_web(rt, o);
    }
    tc_obs_free(o);
    tc_worker_free(w);
    tc_runtime_free(rt);
  }
}
