/*
 * test_worker.c - tests of the worker (tc_worker.c, tc_claimer.c) against a database: claims, results,
 * claim on complete, retries, cancellation of waits, stop.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tc_test.h"

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

void test_worker(const char *url) {
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
  char loud[37];
  for (int i = 0; i < 37; i++) loud[i] = (char)(task_uuid[i] >= 'a' && task_uuid[i] <= 'f' ? task_uuid[i] - 32 : task_uuid[i]);
  wstatus[0] = '\0';
  rc = tc_task_wait(rt, loud, 1000, NULL, wstatus, &err);
  CHECK(rc == TC_OK && strcmp(wstatus, "complete") == 0, "wait with an upper-case uuid: %s %s", tc_err_name(rc), wstatus);
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

  /* The host's handler threads: not reported until the host counts them, then with the lost ones;
   * abandoning a claim that is not in flight changes nothing. */
  json_object *st = NULL;
  tc_worker_status(w, &st, &err);
  CHECK(st && json_object_object_get(st, "handler_threads") == NULL, "handler_threads before any was declared");
  json_object_put(st);
  tc_worker_handler_threads(w, 2, false);
  tc_worker_handler_threads(w, -1, true);
  tc_worker_abandon_step(w, "01a20000-0000-7000-8000-000000000004");
  st = NULL;
  tc_worker_status(w, &st, &err);
  CHECK(st && json_object_get_int(json_object_object_get(st, "handler_threads")) == 1 &&
            json_object_get_int(json_object_object_get(st, "handler_threads_lost")) == 1 &&
            json_object_get_int(json_object_object_get(st, "in_flight")) == 0,
        "handler threads: %s", json_object_to_json_string(st));
  json_object_put(st);

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
