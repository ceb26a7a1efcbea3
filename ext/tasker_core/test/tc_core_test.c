/*
 * tc_core_test.c - tests of the pure-C core, with no Ruby in the process, so valgrind and the
 * sanitizers see only our code. Run by `rake ctest`, `rake memcheck` and `rake asan`.
 *
 * Needs TASKER_TEST_DATABASE_URL (a database the test may migrate and fill).
 */
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tasker.h"
#include "tc_internal.h"

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

/* A runtime on url with pool_size connections and logging off; NULL (and a failed check) on error. */
static tc_runtime_t *test_runtime(const char *url, int pool_size) {
  char cfg_text[2048];
  snprintf(cfg_text, sizeof cfg_text, "{\"database_url\":\"%s\",\"pool_size\":%d,\"log_level\":\"off\"}", url,
           pool_size);
  json_object *cfg = parse(cfg_text);
  tc_runtime_t *rt = NULL;
  tc_error_t err = {0};
  int rc = tc_runtime_new(cfg, &rt, &err);
  json_object_put(cfg);
  CHECK_RC(rc, err);
  return rc == TC_OK ? rt : NULL;
}

static void test_engine(const char *url) {
  tc_runtime_t *rt = test_runtime(url, 4);
  if (!rt) return;
  tc_error_t err = {0};
  int rc;

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

  /* Listing registered templates: by namespace, and none for an unknown one. */
  json_object *listed = NULL;
  rc = tc_template_list(rt, ns, &listed, &err);
  CHECK(rc == TC_OK && json_object_array_length(listed) == 1, "template_list: %s", err.message);
  if (rc == TC_OK && json_object_array_length(listed) == 1) {
    json_object *entry = json_object_array_get_idx(listed, 0);
    json_object *count = NULL;
    CHECK(strcmp(str(entry, "name"), "pair") == 0 && json_object_object_get_ex(entry, "step_count", &count) &&
              json_object_get_int(count) == 2,
          "template_list entry: %s", json_object_to_json_string(entry));
  }
  json_object_put(listed);
  listed = NULL;
  rc = tc_template_list(rt, "no_such_namespace", &listed, &err);
  CHECK(rc == TC_OK && json_object_array_length(listed) == 0, "template_list of an unknown namespace: %s", err.message);
  json_object_put(listed);

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

static bool boolean(json_object *obj, const char *key) {
  json_object *v = NULL;
  return json_object_object_get_ex(obj, key, &v) && json_object_get_boolean(v);
}

static int64_t integer(json_object *obj, const char *key) {
  json_object *v = NULL;
  return json_object_object_get_ex(obj, key, &v) ? json_object_get_int64(v) : -1;
}

/* The client API (tc_client.c): creation answers with the whole task, lists, steps, audit history,
 * cancellation and the health check, with their refusals. */
static void test_client(const char *url) {
  tc_runtime_t *rt = test_runtime(url, 2);
  if (!rt) return;
  tc_error_t err = {0};
  int rc;
  json_object *out = NULL;
  rc = tc_migrate(rt, &out, &err);
  CHECK_RC(rc, err);
  json_object_put(out);
  out = NULL;

  char ns[32], text[1024];
  snprintf(ns, sizeof ns, "cclient_%d", (int)getpid());
  snprintf(text, sizeof text,
           "{\"name\":\"duo\",\"namespace_name\":\"%s\",\"version\":\"1.0.0\",\"steps\":["
           "{\"name\":\"one\",\"handler\":{\"callable\":\"A\"}},"
           "{\"name\":\"two\",\"dependencies\":[\"one\"],\"handler\":{\"callable\":\"B\"}}]}",
           ns);
  json_object *tpl = parse(text);
  rc = tc_template_register(rt, tpl, &out, &err);
  CHECK_RC(rc, err);
  json_object_put(out);
  out = NULL;
  json_object_put(tpl);

  /* Creation answers with the task, its summary and its steps; the same identity again is created: false. */
  snprintf(text, sizeof text, "{\"name\":\"duo\",\"namespace\":\"%s\",\"version\":\"1.0.0\",\"context\":{\"k\":1}}", ns);
  json_object *req = parse(text);
  json_object *task = NULL;
  rc = tc_client_create_task(rt, req, &task, &err);
  CHECK_RC(rc, err);
  char task_uuid[37] = "", step_uuid[37] = "";
  if (task) {
    snprintf(task_uuid, sizeof task_uuid, "%s", str(task, "task_uuid"));
    CHECK(boolean(task, "created") && integer(task, "step_count") == 2 && integer(task, "ready_steps") == 1,
          "create answer: %s", json_object_to_json_string(task));
    json_object *steps = json_object_object_get(task, "steps");
    CHECK(json_object_array_length(steps) == 2, "steps in the create answer");
    if (json_object_array_length(steps) == 2)
      snprintf(step_uuid, sizeof step_uuid, "%s", str(json_object_array_get_idx(steps, 0), "workflow_step_uuid"));
    CHECK(json_object_is_type(json_object_object_get(task, "completion_percentage"), json_type_double),
          "completion_percentage is not a double");
  }
  json_object_put(task);
  task = NULL;
  rc = tc_client_create_task(rt, req, &task, &err);
  CHECK(rc == TC_OK && task && !boolean(task, "created") && strcmp(str(task, "task_uuid"), task_uuid) == 0,
        "duplicate create: %s", err.message);
  json_object_put(task);
  json_object_put(req);

  /* Lists: a page of one namespace, and every refusal naming its field. */
  json_object *list = NULL;
  rc = tc_client_list_tasks(rt, 10, 0, ns, "steps_in_process", &list, &err);
  CHECK_RC(rc, err);
  if (list) {
    json_object *pagination = json_object_object_get(list, "pagination");
    CHECK(integer(pagination, "total_count") == 1 && integer(pagination, "page") == 1 && !boolean(pagination, "has_next"),
          "pagination: %s", json_object_to_json_string(pagination));
    CHECK(json_object_array_length(json_object_object_get(list, "tasks")) == 1, "one task listed");
  }
  json_object_put(list);
  list = NULL;
  rc = tc_client_list_tasks(rt, 0, 0, NULL, NULL, &list, &err);
  CHECK(rc == TC_EINVAL && list == NULL && strstr(err.message, "limit must be between 1 and 1000 (got 0)"), "%s", err.message);
  rc = tc_client_list_tasks(rt, 1001, 0, NULL, NULL, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "limit"), "%s", err.message);
  rc = tc_client_list_tasks(rt, 10, -1, NULL, NULL, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "offset"), "%s", err.message);
  rc = tc_client_list_tasks(rt, 10, 0, NULL, "finished", &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "status must be one of") && strstr(err.message, "(got finished)"), "%s",
        err.message);
  rc = tc_client_list_tasks(rt, 10, 0, "", NULL, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "namespace"), "%s", err.message);

  /* One step, its history, and steps that are not there. */
  json_object *step = NULL;
  rc = tc_client_get_step(rt, task_uuid, step_uuid, &step, &err);
  CHECK(rc == TC_OK && step && strcmp(str(step, "name"), "one") == 0, "get_step: %s", err.message);
  json_object_put(step);
  step = NULL;
  rc = tc_client_get_step(rt, task_uuid, "01a20000-0000-7000-8000-000000000009", &step, &err);
  CHECK(rc == TC_ENOTFOUND && step == NULL && strncmp(err.message, "step not found: 01a20000", 24) == 0, "%s",
        err.message);
  rc = tc_client_get_step(rt, task_uuid, "nope", &step, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "step_uuid: nope"), "%s", err.message);
  json_object *history = NULL;
  rc = tc_client_get_step_audit_history(rt, task_uuid, step_uuid, &history, &err);
  CHECK(rc == TC_OK && history && json_object_array_length(history) == 2, "history: %s", err.message);
  if (history && json_object_array_length(history) == 2)
    CHECK(strcmp(str(json_object_array_get_idx(history, 0), "to_state"), "enqueued") == 0, "newest first");
  json_object_put(history);
  history = NULL;
  rc = tc_client_get_step_audit_history(rt, "01a20000-0000-7000-8000-000000000008", step_uuid, &history, &err);
  CHECK(rc == TC_ENOTFOUND && strstr(err.message, "task not found"), "%s", err.message);

  /* Cancellation, once. */
  json_object *cancelled = NULL;
  rc = tc_client_cancel_task(rt, task_uuid, &cancelled, &err);
  CHECK(rc == TC_OK && cancelled && boolean(cancelled, "cancelled") && integer(cancelled, "cancelled_steps") == 2,
        "cancel: %s", err.message);
  json_object_put(cancelled);
  cancelled = NULL;
  rc = tc_client_cancel_task(rt, task_uuid, &cancelled, &err);
  CHECK(rc == TC_ESTATE && cancelled == NULL && strstr(err.message, "is cancelled") &&
            strcmp(err.sqlstate, "TK409") == 0,
        "second cancel: %s %s", tc_err_name(rc), err.message);
  rc = tc_client_cancel_task(rt, "01a20000-0000-7000-8000-000000000007", &cancelled, &err);
  CHECK(rc == TC_ENOTFOUND, "cancel of an unknown task: %s", tc_err_name(rc));
  rc = tc_client_cancel_task(rt, NULL, &cancelled, &err);
  CHECK(rc == TC_EINVAL, "cancel of NULL: %s", tc_err_name(rc));

  json_object *health = NULL;
  rc = tc_client_health_check(rt, &health, &err);
  CHECK(rc == TC_OK && health && boolean(health, "healthy") &&
            integer(health, "schema_version") == tc_schema_version(),
        "health: %s", health ? json_object_to_json_string(health) : err.message);
  json_object_put(health);
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
static void test_session_options(const char *url) {
  char cfg_text[2048];
  snprintf(cfg_text, sizeof cfg_text,
           "{\"database_url\":\"%s%soptions=-c%%20statement_timeout%%3D4321\",\"pool_size\":1,\"log_level\":\"off\"}",
           url, strchr(url, '?') ? "&" : "?");
  json_object *cfg = parse(cfg_text);
  tc_runtime_t *rt = NULL;
  tc_error_t err = {0};
  int rc = tc_runtime_new(cfg, &rt, &err);
  json_object_put(cfg);
  CHECK_RC(rc, err);
  if (!rt) return;
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
  tc_runtime_free(rt);
}

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

static void test_redact(void) {
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

static void test_observe(const char *url) {
  for (int live = 0; live < 2; live++) {
    char cfg_text[2048];
    snprintf(cfg_text, sizeof cfg_text, "{\"database_url\":\"%s\",\"pool_size\":2,\"log_level\":\"off\",\"connect_timeout_seconds\":1}",
             live ? url : "postgresql://127.0.0.1:1/nothing");
    json_object *cfg = parse(cfg_text);
    tc_runtime_t *rt = NULL;
    tc_error_t err = {0};
    int rc = tc_runtime_new(cfg, &rt, &err);
    json_object_put(cfg);
    CHECK_RC(rc, err);
    if (!rt) return;
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

/* Lifecycle events: the catalogue names, and a feeder that reports a new task's transitions in order
 * through a bounded buffer that drops (and counts) what does not fit. */
static void test_events(const char *url) {
  const char *names[3];
  CHECK(tc_events_names("task", "blocked_by_failures", "error", names) == 2 && strcmp(names[0], "task.failed") == 0,
        "task failure names");
  CHECK(tc_events_names("step", NULL, "pending", names) == 1 && strcmp(names[0], "step.initialize_requested") == 0,
        "step creation name");
  CHECK(tc_events_names("step", "error", "pending", names) == 1 && strcmp(names[0], "step.retry_requested") == 0,
        "step retry name");
  CHECK(tc_events_names("other", NULL, "pending", names) == 0, "unknown kind named");

  tc_runtime_t *rt = test_runtime(url, 2);
  if (!rt) return;
  tc_error_t err = {0};
  int rc;

  json_object *bad = parse("{\"buffer_size\":0}");
  tc_events_t *ev = NULL;
  rc = tc_events_start(rt, bad, &ev, &err);
  json_object_put(bad);
  CHECK(rc == TC_EINVAL && ev == NULL && strstr(err.message, "buffer_size"), "bad buffer_size: %s", err.message);

  json_object *opts = parse("{\"buffer_size\":3,\"poll_interval_ms\":5}");
  rc = tc_events_start(rt, opts, &ev, &err);
  json_object_put(opts);
  CHECK_RC(rc, err);
  if (!ev) {
    tc_runtime_free(rt);
    return;
  }
  tc_events_t *again = NULL;
  rc = tc_events_start(rt, NULL, &again, &err);
  CHECK(rc == TC_ESTATE && again == NULL, "a second feeder started: %s", tc_err_name(rc));

  char ns[32], tpl_text[1024];
  snprintf(ns, sizeof ns, "cevents_%d", (int)getpid());
  snprintf(tpl_text, sizeof tpl_text,
           "{\"name\":\"solo\",\"namespace_name\":\"%s\",\"version\":\"1.0.0\",\"identity_strategy\":\"always_unique\","
           "\"steps\":[{\"name\":\"a\",\"handler\":{\"callable\":\"A\"}},{\"name\":\"b\",\"handler\":{\"callable\":\"B\"}}]}",
           ns);
  json_object *tpl = parse(tpl_text), *registered = NULL;
  rc = tc_template_register(rt, tpl, &registered, &err);
  CHECK_RC(rc, err);
  json_object_put(registered);
  json_object_put(tpl);
  char req_text[256];
  snprintf(req_text, sizeof req_text, "{\"name\":\"solo\",\"namespace\":\"%s\",\"version\":\"1.0.0\"}", ns);
  json_object *req = parse(req_text), *created = NULL;
  rc = tc_client_create_task(rt, req, &created, &err);
  json_object_put(req);
  CHECK_RC(rc, err);
  char task_uuid[37] = "";
  if (created) snprintf(task_uuid, sizeof task_uuid, "%s", str(created, "task_uuid"));
  json_object_put(created);

  /* The buffer holds the first three events; the rest of the task's creation is dropped. */
  const char *expected[] = {"task.initialize_requested", "workflow.task_started", "task.steps_discovery_completed"};
  for (int i = 0; i < 3; i++) {
    json_object *e = NULL;
    rc = tc_events_next(ev, 5000, NULL, &e, &err);
    CHECK_RC(rc, err);
    if (!e) break;
    CHECK(strcmp(str(e, "event_name"), expected[i]) == 0, "event %d is %s", i, str(e, "event_name"));
    CHECK(strcmp(str(e, "task_uuid"), task_uuid) == 0 && strcmp(str(e, "task_id"), task_uuid) == 0, "task ids");
    CHECK(strcmp(str(e, "namespace"), ns) == 0 && strcmp(str(e, "task_name"), "solo") == 0, "names");
    json_object_put(e);
  }
  json_object *stats = NULL;
  CHECK(tc_events_stats(rt, &stats) == TC_OK, "stats");
  CHECK(json_object_get_int64(json_object_object_get(stats, "dropped")) > 0, "nothing dropped: %s", json_object_to_json_string(stats));
  CHECK(json_object_get_int64(json_object_object_get(stats, "delivered")) == 3, "delivered: %s", json_object_to_json_string(stats));
  json_object_put(stats);

  tc_cancel_t cancel = {0};
  tc_events_interrupt(ev, &cancel);
  json_object *none = NULL;
  rc = tc_events_next(ev, 5000, &cancel, &none, &err);
  CHECK((rc == TC_ECANCELED && none == NULL) || (rc == TC_OK && none), "cancelled wait: %s", tc_err_name(rc));
  json_object_put(none);
  tc_events_stop(ev);
  for (;;) { /* what is buffered drains, then the stop is reported */
    none = NULL;
    rc = tc_events_next(ev, 100, NULL, &none, &err);
    json_object_put(none);
    if (rc != TC_OK) break;
  }
  CHECK(rc == TC_ESTOPPED, "after stop: %s", tc_err_name(rc));
  tc_events_free(ev);
  CHECK(tc_events_stats(rt, &stats) == TC_OK && !json_object_get_boolean(json_object_object_get(stats, "running")),
        "stats after free");
  json_object_put(stats);
  tc_runtime_free(rt);
}

typedef struct {
  tc_runtime_t *rt;
  tc_events_t *ev;
  bool alive_after_stop;
} stopper_t;

/* Stops the feeder, then looks whether its thread is still running (it must not be). */
static void *stop_thread(void *arg) {
  stopper_t *s = arg;
  tc_events_stop(s->ev);
  json_object *stats = NULL;
  if (tc_events_stats(s->rt, &stats) == TC_OK)
    s->alive_after_stop = json_object_get_boolean(json_object_object_get(stats, "feeder_alive"));
  json_object_put(stats);
  return NULL;
}

/* Several threads stop one feeder at once: one joins it, the others return only after that join. */
static void test_events_concurrent_stop(const char *url) {
  tc_runtime_t *rt = test_runtime(url, 2);
  if (!rt) return;
  tc_error_t err = {0};
  int rc;
  for (int round = 0; round < 5; round++) {
    tc_events_t *ev = NULL;
    json_object *opts = parse("{\"poll_interval_ms\":1}");
    rc = tc_events_start(rt, opts, &ev, &err);
    json_object_put(opts);
    CHECK_RC(rc, err);
    if (!ev) break;
    pthread_t t[4];
    stopper_t stoppers[4];
    for (int i = 0; i < 4; i++) {
      stoppers[i] = (stopper_t){rt, ev, false};
      CHECK(pthread_create(&t[i], NULL, stop_thread, &stoppers[i]) == 0, "stopper thread %d", i);
    }
    for (int i = 0; i < 4; i++) {
      pthread_join(t[i], NULL);
      CHECK(!stoppers[i].alive_after_stop, "round %d: stopper %d returned while the feeder ran", round, i);
    }
    tc_events_free(ev);
  }
  tc_runtime_free(rt);
}

static void test_domain(const char *url) {
  tc_runtime_t *rt = test_runtime(url, 2);
  if (!rt) return;
  tc_error_t err = {0};
  int rc;

  json_object *out = NULL;
  const char *bad[][2] = {
      {"{\"event_id\":\"00000000-0000-7000-8000-000000000001\",\"event_name\":\"NoDots\"}", "event_name"},
      {"{\"event_id\":\"nope\",\"event_name\":\"a.b\"}", "event_id"},
      {"{\"event_id\":\"00000000-0000-7000-8000-000000000001\",\"event_name\":\"a.b\",\"delivery_mode\":\"fast\"}", "fast"},
      {"{\"event_id\":\"00000000-0000-7000-8000-000000000001\",\"event_name\":\"a.b\",\"metadata\":{\"task_uuid\":1}}",
       "metadata.task_uuid"},
      {"{\"event_id\":\"00000000-0000-7000-8000-000000000001\",\"event_name\":\"a.b\",\"payload\":[1]}", "payload"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    json_object *e = parse(bad[i][0]);
    rc = tc_domain_publish(rt, e, &out, &err);
    json_object_put(e);
    CHECK(rc == TC_EINVAL && strstr(err.message, bad[i][1]), "bad event %zu: %s", i, err.message);
  }

  char id[37], consumer[40], text[512];
  tc_uuid_v7(id);
  snprintf(consumer, sizeof consumer, "c_%d", (int)getpid());
  snprintf(text, sizeof text, "{\"event_id\":\"%s\",\"event_name\":\"order.shipped\",\"payload\":{\"payload\":{\"n\":1}}}", id);
  json_object *e = parse(text);
  rc = tc_domain_publish(rt, e, &out, &err);
  json_object_put(e);
  CHECK_RC(rc, err);
  CHECK(out && json_object_get_boolean(json_object_object_get(out, "written")), "published");
  json_object_put(out);

  rc = tc_domain_read(rt, "bad consumer", 10, 30, NULL, &out, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "consumer"), "bad consumer: %s", err.message);
  rc = tc_domain_read(rt, consumer, 0, 30, NULL, &out, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "limit"), "bad limit: %s", err.message);
  rc = tc_domain_read(rt, consumer, 10, 30, NULL, &out, &err);
  CHECK_RC(rc, err);
  bool found = false;
  for (size_t i = 0; out && i < json_object_array_length(out); i++)
    if (strcmp(str(json_object_array_get_idx(out, i), "event_id"), id) == 0) found = true;
  CHECK(found, "published event read: %s", out ? json_object_to_json_string(out) : "null");
  json_object_put(out);
  rc = tc_domain_read(rt, consumer, 1000, 30, NULL, &out, &err);
  CHECK_RC(rc, err);
  for (size_t i = 0; out && i < json_object_array_length(out); i++)
    CHECK(strcmp(str(json_object_array_get_idx(out, i), "event_id"), id) != 0, "leased event read twice");
  json_object_put(out);

  snprintf(text, sizeof text, "[\"%s\"]", id);
  json_object *ids = parse(text);
  rc = tc_domain_ack(rt, consumer, ids, &out, &err);
  CHECK_RC(rc, err);
  CHECK(out && json_object_get_int(json_object_object_get(out, "acknowledged")) == 1, "acknowledged once");
  json_object_put(out);
  rc = tc_domain_ack(rt, consumer, ids, &out, &err);
  CHECK(rc == TC_OK && out && json_object_get_int(json_object_object_get(out, "acknowledged")) == 0, "acknowledged twice");
  json_object_put(out);
  json_object_put(ids);
  ids = parse("[\"x\"]");
  rc = tc_domain_ack(rt, consumer, ids, &out, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "event_ids[0]"), "bad ack: %s", err.message);
  json_object_put(ids);

  CHECK(tc_domain_count(rt, "fast_routed", 2) == TC_OK && tc_domain_count(rt, "subscribers", 3) == TC_OK &&
            tc_domain_count(rt, "nope", 1) == TC_EINVAL, "counting");
  json_object *counters = NULL;
  CHECK(tc_domain_counters(rt, &counters) == TC_OK, "counters");
  CHECK(json_object_get_int64(json_object_object_get(counters, "fast_routed")) == 2 &&
            json_object_get_int64(json_object_object_get(counters, "subscribers")) == 3 &&
            json_object_get_int64(json_object_object_get(counters, "durable_routed")) == 1 &&
            json_object_get_int64(json_object_object_get(counters, "durable_delivered")) == 1,
        "counters: %s", json_object_to_json_string(counters));
  json_object_put(counters);

  rc = tc_domain_purge(rt, 0, &out, &err);
  CHECK(rc == TC_OK && out && json_object_get_int(json_object_object_get(out, "purged")) >= 1, "purged");
  json_object_put(out);
  tc_runtime_free(rt);
}

int main(void) {
  test_uuid();
  test_templates();
  test_unreachable();
  test_redact();
  const char *url = getenv("TASKER_TEST_DATABASE_URL");
  if (url && *url) {
    test_engine(url);
    test_client(url);
    test_session_options(url);
    test_observe(url);
    test_events(url);
    test_events_concurrent_stop(url);
    test_domain(url);
  } else {
    fprintf(stderr, "TASKER_TEST_DATABASE_URL is not set: skipping the engine tests\n");
  }
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
