/*
 * tc_core_test.c - tests of the pure-C core, with no Ruby in the process, so valgrind and the
 * sanitizers see only our code. Run by `rake ctest`, `rake memcheck` and `rake asan`.
 *
 * Needs TASKER_TEST_DATABASE_URL (a database the test may migrate and fill).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tasker.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                               \
  do {                                                                 \
    checks++;                                                          \
    if (!(cond)) {                                                     \
      failures++;                                                      \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                    \
      fprintf(stderr, "\n");                                           \
    }                                                                  \
  } while (0)

#define CHECK_RC(rc, err) CHECK((rc) == TC_OK, "%s: %s", tc_err_name(rc), (err).message)

static json_object *parse(const char *text) {
  json_object *obj = json_tokener_parse(text);
  if (!obj) {
    fprintf(stderr, "bad test JSON: %s\n", text);
    exit(2);
  }
  return obj;
}

static const char *str(json_object *obj, const char *key) {
  json_object *v = NULL;
  return json_object_object_get_ex(obj, key, &v) ? json_object_get_string(v) : NULL;
}

static void test_uuid(void) {
  char a[37], b[37];
  tc_uuid_v7(a);
  tc_uuid_v7(b);
  CHECK(tc_uuid_valid(a), "%s", a);
  CHECK(a[14] == '7', "version nibble of %s", a);
  CHECK(strchr("89ab", a[19]) != NULL, "variant of %s", a);
  CHECK(strcmp(a, b) != 0, "two uuids are equal");
  CHECK(!tc_uuid_valid("not-a-uuid"), "accepted junk");
  CHECK(!tc_uuid_valid(NULL), "accepted NULL");
}

static void expect_template_error(const char *json, const char *fragment) {
  json_object *raw = parse(json);
  json_object *out = NULL;
  tc_error_t err = {0};
  int rc = tc_template_normalize(raw, &out, &err);
  CHECK(rc == TC_ETEMPLATE, "expected TC_ETEMPLATE for %s, got %s", json, tc_err_name(rc));
  CHECK(out == NULL, "out set on failure");
  CHECK(strstr(err.message, fragment) != NULL, "message '%s' lacks '%s'", err.message, fragment);
  json_object_put(raw);
}

static void test_templates(void) {
  json_object *raw = parse(
      "{\"name\":\"t\",\"namespace_name\":\"ns\",\"version\":\"1.0.0\",\"steps\":["
      "{\"name\":\"a\",\"handler\":{\"callable\":\"A\"}},"
      "{\"name\":\"d\",\"type\":\"decision\",\"dependencies\":[\"a\"],\"handler\":{\"callable\":\"D\"}},"
      "{\"name\":\"b\",\"dependencies\":[\"d\"],\"handler\":{\"callable\":\"B\"}},"
      "{\"name\":\"c\",\"type\":\"deferred_convergence\",\"dependencies\":[\"b\"],\"handler\":{\"callable\":\"C\"}}]}");
  json_object *out = NULL;
  tc_error_t err = {0};
  int rc = tc_template_normalize(raw, &out, &err);
  CHECK_RC(rc, err);
  if (out) {
    json_object *steps = json_object_object_get(out, "steps");
    const bool expected[] = {true, true, false, false};
    for (size_t i = 0; i < 4; i++) {
      json_object *initial = json_object_object_get(json_object_array_get_idx(steps, i), "initial");
      CHECK(json_object_get_boolean(initial) == expected[i], "step %zu initial", i);
    }
  }
  json_object_put(out);
  json_object_put(raw);

  expect_template_error("[]", "must be a mapping");
  expect_template_error("{\"name\":\"t\",\"namespace_name\":\"ns\",\"version\":\"1\",\"steps\":["
                        "{\"name\":\"a\",\"dependencies\":[\"zz\"],\"handler\":{\"callable\":\"A\"}}]}",
                        "step 'a': dependency 'zz' is not a step");
  expect_template_error("{\"name\":\"t\",\"namespace_name\":\"ns\",\"version\":\"1\",\"steps\":["
                        "{\"name\":\"a\",\"dependencies\":[\"b\"],\"handler\":{\"callable\":\"A\"}},"
                        "{\"name\":\"b\",\"dependencies\":[\"a\"],\"handler\":{\"callable\":\"B\"}}]}",
                        "dependency cycle among steps: a, b");
  expect_template_error("{\"name\":\"t\",\"namespace_name\":\"ns\",\"version\":\"1\",\"steps\":["
                        "{\"name\":\"a\",\"handler\":{}}]}",
                        "step 'a': handler.callable is required");
  expect_template_error("{\"name\":\"t\",\"namespace_name\":\"9ns\",\"version\":\"1\",\"steps\":[]}",
                        "namespace_name");
}

typedef struct {
  tc_worker_t *worker;
  tc_cancel_t cancel;
  int rc;
} waiter_t;

static void *wait_thread(void *arg) {
  waiter_t *w = arg;
  json_object *out = NULL;
  tc_error_t err = {0};
  w->rc = tc_worker_next_step(w->worker, 30000, &w->cancel, &out, &err);
  json_object_put(out);
  return NULL;
}

/* Takes the next step event, failing the test if none arrives in 5 s. */
static json_object *next_step(tc_worker_t *w) {
  json_object *ev = NULL;
  tc_error_t err = {0};
  int rc = tc_worker_next_step(w, 5000, NULL, &ev, &err);
  CHECK_RC(rc, err);
  return ev;
}

/* Completes ev; returns the next step claimed in the same round trip (claim on complete), if any. */
static json_object *complete(tc_worker_t *w, json_object *ev, const char *result_json, const char *expect_task) {
  json_object *next = NULL;
  json_object *result = parse(result_json);
  json_object *out = NULL;
  tc_error_t err = {0};
  int rc = tc_worker_complete_step(w, str(ev, "step_uuid"), str(ev, "claim_token"), result, &out, &err);
  CHECK_RC(rc, err);
  if (out) {
    CHECK(json_object_get_boolean(json_object_object_get(out, "applied")), "result not applied");
    CHECK(strcmp(str(out, "task_status"), expect_task) == 0, "task is %s, expected %s", str(out, "task_status"),
          expect_task);
    json_object *steps = json_object_object_get(out, "next_steps");
    if (steps && json_object_array_length(steps) > 0) next = json_object_get(json_object_array_get_idx(steps, 0));
  }
  json_object_put(out);
  json_object_put(result);
  return next;
}

static void test_engine(const char *url) {
  char cfg_text[2048];
  snprintf(cfg_text, sizeof cfg_text, "{\"database_url\":\"%s\",\"pool_size\":4,\"log_level\":\"off\"}", url);
  json_object *cfg = parse(cfg_text);
  tc_runtime_t *rt = NULL;
  tc_error_t err = {0};
  int rc = tc_runtime_new(cfg, &rt, &err);
  json_object_put(cfg);
  CHECK_RC(rc, err);
  if (!rt) return;

  json_object *report = NULL;
  rc = tc_migrate(rt, &report, &err);
  CHECK_RC(rc, err);
  json_object_put(report);

  char ns[32], tpl_text[1024];
  snprintf(ns, sizeof ns, "ctest_%d", (int)getpid());
  snprintf(tpl_text, sizeof tpl_text,
           "{\"name\":\"pair\",\"namespace_name\":\"%s\",\"version\":\"1.0.0\",\"identity_strategy\":\"always_unique\","
           "\"steps\":[{\"name\":\"first\",\"handler\":{\"callable\":\"F\"}},"
           "{\"name\":\"second\",\"dependencies\":[\"first\"],\"handler\":{\"callable\":\"S\"}}]}",
           ns);
  json_object *tpl = parse(tpl_text);
  json_object *registered = NULL;
  rc = tc_template_register(rt, tpl, &registered, &err);
  CHECK_RC(rc, err);
  json_object_put(registered);
  json_object_put(tpl);

  char req_text[512];
  snprintf(req_text, sizeof req_text, "{\"name\":\"pair\",\"namespace\":\"%s\",\"version\":\"1.0.0\",\"context\":{\"n\":1}}", ns);
  json_object *req = parse(req_text);
  json_object *created = NULL;
  rc = tc_client_create_task(rt, req, &created, &err);
  json_object_put(req);
  CHECK_RC(rc, err);
  char task_uuid[37] = "";
  if (created) snprintf(task_uuid, sizeof task_uuid, "%s", str(created, "task_uuid"));
  json_object_put(created);

  /* Bad requests fail cleanly. */
  json_object *bad = parse("{\"name\":\"pair\",\"context\":[1]}");
  json_object *none = NULL;
  rc = tc_client_create_task(rt, bad, &none, &err);
  CHECK(rc == TC_EINVAL && none == NULL && strstr(err.message, "context must be an object"), "%s", err.message);
  json_object_put(bad);
  rc = tc_client_get_task(rt, "01a20000-0000-7000-8000-000000000000", &none, &err);
  CHECK(rc == TC_ENOTFOUND, "get of an unknown task: %s", tc_err_name(rc));

  char opts_text[256];
  snprintf(opts_text, sizeof opts_text, "{\"namespaces\":[\"%s\"],\"concurrency\":2,\"poll_interval_ms\":200}", ns);
  json_object *opts = parse(opts_text);
  tc_worker_t *w = NULL;
  rc = tc_worker_new(rt, opts, &w, &err);
  json_object_put(opts);
  CHECK_RC(rc, err);
  if (!w) {
    tc_runtime_free(rt);
    return;
  }
  rc = tc_worker_start(w, &err);
  CHECK_RC(rc, err);

  char first_step[37] = "";
  json_object *ev = next_step(w);
  if (ev) snprintf(first_step, sizeof first_step, "%s", str(ev, "step_uuid"));
  if (ev) {
    /* A result presented with a wrong claim token is refused and changes nothing. */
    json_object *result = parse("{\"success\":true,\"result\":1}");
    json_object *out = NULL;
    rc = tc_worker_complete_step(w, str(ev, "step_uuid"), "01a20000-0000-7000-8000-000000000001", result, &out, &err);
    CHECK(rc == TC_OK && out && !json_object_get_boolean(json_object_object_get(out, "applied")), "stale accepted");
    json_object_put(out);
    json_object_put(result);
    json_object *claimed = complete(w, ev, "{\"success\":true,\"result\":{\"v\":1}}", "steps_in_process");
    json_object_put(ev);
    ev = claimed;
    CHECK(ev != NULL, "the second step did not come back with the first one's completion");
  }
  if (!ev) ev = next_step(w);
  if (ev) {
    json_object *deps = json_object_object_get(json_object_object_get(ev, "task_sequence_step"), "dependency_results");
    CHECK(json_object_object_get(deps, "first") != NULL, "second step lacks first's result");
    json_object_put(complete(w, ev, "{\"success\":true,\"result\":{\"v\":2}}", "complete"));
    json_object_put(ev);
  }

  json_object *task = NULL;
  rc = tc_client_get_task(rt, task_uuid, &task, &err);
  CHECK_RC(rc, err);
  CHECK(task && strcmp(str(task, "status"), "complete") == 0, "task not complete");
  json_object_put(task);

  json_object *fetched = NULL;
  rc = tc_template_get(rt, ns, "pair", "1.0.0", &fetched, &err);
  CHECK(rc == TC_OK && fetched && strcmp(str(fetched, "name"), "pair") == 0, "template_get: %s", err.message);
  json_object_put(fetched);
  rc = tc_template_get(rt, ns, "pair", "9.9", &fetched, &err);
  CHECK(rc == TC_ENOTFOUND && strstr(err.message, "version=9.9"), "%s", err.message);

  /* Waiting for a task: finished already, unknown, and a timeout. */
  char wstatus[32] = "";
  rc = tc_task_wait(rt, task_uuid, 1000, NULL, wstatus, &err);
  CHECK(rc == TC_OK && strcmp(wstatus, "complete") == 0, "wait: %s %s", tc_err_name(rc), wstatus);
  rc = tc_task_wait(rt, "01a20000-0000-7000-8000-000000000003", 100, NULL, wstatus, &err);
  CHECK(rc == TC_ENOTFOUND, "wait on an unknown task: %s", tc_err_name(rc));

  /* Operations: typed refusals, the staleness detector and the DLQ answer. */
  json_object *op = NULL;
  rc = tc_step_operate(rt, task_uuid, task_uuid, "explode", NULL, &op, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "action_type"), "%s", err.message);
  rc = tc_step_operate(rt, task_uuid, "01a20000-0000-7000-8000-000000000002", "resolve_manually", NULL, &op, &err);
  CHECK(rc == TC_ENOTFOUND, "operate on an unknown step: %s", tc_err_name(rc));
  rc = tc_step_operate(rt, task_uuid, first_step, "reset_for_retry", NULL, &op, &err);
  CHECK(rc == TC_ESTATE && strstr(err.message, "is complete"), "%s", err.message);
  json_object *stale_opts = parse("{\"dry_run\":true,\"threshold_minutes\":0}");
  rc = tc_detect_stale_tasks(rt, stale_opts, &op, &err);
  CHECK_RC(rc, err);
  CHECK(op && json_object_is_type(op, json_type_array), "detector answer");
  json_object_put(op);
  op = NULL;
  json_object_put(stale_opts);
  rc = tc_dlq_list(rt, NULL, NULL, 10, 0, &op, &err);
  CHECK_RC(rc, err);
  json_object_put(op);
  rc = tc_dlq_list(rt, NULL, NULL, 0, 0, &op, &err);
  CHECK(rc == TC_EINVAL, "limit 0 accepted");

  /* A cancelled wait returns TC_ECANCELED promptly. */
  waiter_t waiter = {.worker = w};
  pthread_t th;
  pthread_create(&th, NULL, wait_thread, &waiter);
  usleep(50000);
  tc_cancel_fire(&waiter.cancel);
  pthread_join(th, NULL);
  CHECK(waiter.rc == TC_ECANCELED, "cancelled wait returned %s", tc_err_name(waiter.rc));

  /* Claimed but unstarted steps go back to the queue when the worker stops. */
  snprintf(req_text, sizeof req_text, "{\"name\":\"pair\",\"namespace\":\"%s\",\"version\":\"1.0.0\"}", ns);
  req = parse(req_text);
  rc = tc_client_create_task(rt, req, &created, &err);
  CHECK_RC(rc, err);
  json_object_put(created);
  json_object_put(req);
  usleep(300000);
  json_object *status = NULL;
  tc_worker_status(w, &status, &err);
  CHECK(json_object_get_int(json_object_object_get(status, "queued")) == 1, "expected one queued step: %s",
        json_object_to_json_string(status));
  json_object_put(status);
  tc_worker_stop(w);
  tc_worker_status(w, &status, &err);
  CHECK(json_object_get_int(json_object_object_get(status, "released_total")) == 1, "not released: %s",
        json_object_to_json_string(status));
  json_object_put(status);
  tc_worker_free(w);
  tc_runtime_free(rt);
}

static void test_unreachable(void) {
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
  tc_runtime_free(rt);

  json_object *bad = parse("{\"pool_size\":3}");
  rc = tc_runtime_new(bad, &rt, &err);
  CHECK(rc == TC_ECONFIG && strstr(err.message, "database_url"), "%s", err.message);
  json_object_put(bad);
}

int main(void) {
  test_uuid();
  test_templates();
  test_unreachable();
  const char *url = getenv("TASKER_TEST_DATABASE_URL");
  if (url && *url) {
    test_engine(url);
  } else {
    fprintf(stderr, "TASKER_TEST_DATABASE_URL is not set: skipping the engine tests\n");
  }
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
