/*
 * test_flush.c - group commit (tc_flush.c): handler threads completing steps at once, each result
 * applied exactly once, each submitter given the next step claimed for it; with posting, results
 * joining another thread's flush without waiting and their next steps arriving through the queue.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tc_test.h"

#define FLUSH_TASKS 40
#define FLUSH_THREADS 6

typedef struct {
  tc_worker_t *worker;
  bool fail_second; /* the tasks' second steps fail for good (the flush's other results) */
  bool post;        /* as the Ruby binding: queued steps without waiting, results posted when possible */
  int completed;
  int failed;
  int posted;
} runner_t;


/* Runs steps until none arrives for a while: next step, complete it, run the one claimed with it. */
static void *runner(void *arg) {
  runner_t *r = arg;
  for (;;) {
    json_object *ev = NULL;
    tc_error_t err = {0};
    if (!(r->post && tc_worker_try_next_step(r->worker, &ev)) &&
        tc_worker_next_step(r->worker, 3000, NULL, &ev, &err) != TC_OK)
      return NULL;
    while (ev) {
      bool fail = r->fail_second && strcmp(str(ev, "handler_callable"), "S") == 0;
      json_object *result = parse(fail ? "{\"success\":false,\"status\":\"failed\",\"result\":null,\"error\":"
                                         "{\"message\":\"boom\",\"error_type\":\"PermanentError\",\"retryable\":false},"
                                         "\"metadata\":{\"retryable\":false}}"
                                       : "{\"success\":true,\"status\":\"completed\",\"result\":{\"ok\":1}}");
      json_object *out = NULL;
      bool posted = false;
      if (r->post) {
        int prc = tc_worker_post_step(r->worker, str(ev, "step_uuid"), str(ev, "claim_token"), result, &posted, &err);
        CHECK_RC(prc, err);
      }
      if (posted) {
        r->posted++;
        json_object_put(result);
        json_object_put(ev);
        break;
      }
      int rc = tc_worker_complete_step(r->worker, str(ev, "step_uuid"), str(ev, "claim_token"), result, &out, &err);
      json_object_put(result);
      json_object *next = NULL;
      if (rc == TC_OK && json_object_get_boolean(json_object_object_get(out, "applied"))) r->completed++;
      else r->failed++;
      json_object *list = out ? json_object_object_get(out, "next_steps") : NULL;
      if (list && json_object_array_length(list) > 0) next = json_object_get(json_object_array_get_idx(list, 0));
      json_object_put(out);
      json_object_put(ev);
      ev = next;
    }
  }
}

/* Runs FLUSH_TASKS two-step tasks through FLUSH_THREADS threads; with fail_second, every second step
 * fails for good, so its result goes through complete_results in the same flushes as the others'
 * successes, and every task ends in error. */
static void run_pairs(const char *url, bool fail_second, bool post) {
  tc_runtime_t *rt = test_runtime(url, 4);
  if (!rt) return;
  tc_error_t err = {0};
  char ns[32], text[1024];
  snprintf(ns, sizeof ns, "cflush%s%s_%d", fail_second ? "_fail" : "", post ? "_post" : "", (int)getpid());
  snprintf(text, sizeof text,
           "{\"name\":\"pair\",\"namespace_name\":\"%s\",\"version\":\"1.0.0\",\"identity_strategy\":\"always_unique\","
           "\"steps\":[{\"name\":\"first\",\"handler\":{\"callable\":\"F\"}},"
           "{\"name\":\"second\",\"dependencies\":[\"first\"],\"handler\":{\"callable\":\"S\"}}]}",
           ns);
  json_object *tpl = parse(text), *registered = NULL;
  int rc = tc_template_register(rt, tpl, &registered, &err);
  CHECK_RC(rc, err);
  json_object_put(registered);
  json_object_put(tpl);

  for (int i = 0; i < FLUSH_TASKS; i++) {
    snprintf(text, sizeof text, "{\"name\":\"pair\",\"namespace\":\"%s\",\"version\":\"1.0.0\",\"context\":{\"i\":%d}}",
             ns, i);
    json_object *req = parse(text), *created = NULL;
    rc = tc_client_create_task(rt, req, &created, &err);
    CHECK_RC(rc, err);
    json_object_put(req);
    json_object_put(created);
  }

  snprintf(text, sizeof text, "{\"namespaces\":[\"%s\"],\"concurrency\":%d,\"poll_interval_ms\":50}", ns, FLUSH_THREADS);
  json_object *opts = parse(text);
  tc_worker_t *w = NULL;
  rc = tc_worker_new(rt, opts, &w, &err);
  json_object_put(opts);
  CHECK_RC(rc, err);
  if (rc != TC_OK) {
    tc_runtime_free(rt);
    return;
  }
  rc = tc_worker_start(w, &err);
  CHECK_RC(rc, err);

  pthread_t threads[FLUSH_THREADS];
  runner_t runners[FLUSH_THREADS];
  for (int i = 0; i < FLUSH_THREADS; i++) {
    runners[i] = (runner_t){.worker = w, .fail_second = fail_second, .post = post};
    pthread_create(&threads[i], NULL, runner, &runners[i]);
  }
  int completed = 0, failed = 0, posted = 0;
  for (int i = 0; i < FLUSH_THREADS; i++) {
    pthread_join(threads[i], NULL);
    completed += runners[i].completed;
    failed += runners[i].failed;
    posted += runners[i].posted;
  }
  /* A posted result's outcome reaches the worker's counters, not the thread. */
  CHECK(completed + posted == 2 * FLUSH_TASKS, "completed %d steps and posted %d, expected %d", completed, posted,
        2 * FLUSH_TASKS);
  CHECK(failed == 0, "%d results were not applied", failed);

  json_object *status = NULL;
  rc = tc_worker_status(w, &status, &err);
  CHECK_RC(rc, err);
  long long done_total = json_object_get_int64(json_object_object_get(status, "completed_total")) +
                         json_object_get_int64(json_object_object_get(status, "failed_total"));
  CHECK(done_total == 2 * FLUSH_TASKS, "the worker counted %lld applied results, expected %d", done_total,
        2 * FLUSH_TASKS);
  CHECK(json_object_get_int(json_object_object_get(status, "in_flight")) == 0 &&
            json_object_get_int(json_object_object_get(status, "queued")) == 0 &&
            json_object_get_int(json_object_object_get(status, "flush_waiting")) == 0,
        "slots still taken after the run: %s", tc_json_str(status));
  if (post) printf("    posted %d of %d results\n", posted, 2 * FLUSH_TASKS);
  long long flushed = json_object_get_int64(json_object_object_get(status, "flushed_results"));
  long long flushes = json_object_get_int64(json_object_object_get(status, "flushes"));
  CHECK(flushed == 2 * FLUSH_TASKS, "flushed %lld results, expected %d", flushed, 2 * FLUSH_TASKS);
  CHECK(flushes >= 1 && flushes <= flushed, "%lld flushes for %lld results", flushes, flushed);
  json_object_put(status);

  snprintf(text, sizeof text,
           "SELECT jsonb_build_object('complete', count(*) FILTER (WHERE t.status = 'complete'), "
           "'error', count(*) FILTER (WHERE t.status = 'error'), 'audit', "
           "(SELECT count(*) FROM tasker.workflow_step_result_audit a JOIN tasker.tasks x USING (task_uuid) "
           "WHERE x.namespace_name = '%s' AND a.applied)) FROM tasker.tasks t WHERE t.namespace_name = '%s'",
           ns, ns);
  json_object *counts = NULL;
  rc = tc_rt_query_json(rt, text, 0, NULL, &counts, &err);
  CHECK_RC(rc, err);
  CHECK(json_object_get_int(json_object_object_get(counts, "complete")) == (fail_second ? 0 : FLUSH_TASKS),
        "tasks complete: %s", tc_json_str(counts));
  CHECK(json_object_get_int(json_object_object_get(counts, "error")) == (fail_second ? FLUSH_TASKS : 0),
        "tasks in error: %s", tc_json_str(counts));
  CHECK(json_object_get_int(json_object_object_get(counts, "audit")) == 2 * FLUSH_TASKS, "applied results: %s",
        tc_json_str(counts));
  json_object_put(counts);

  tc_worker_stop(w);
  tc_worker_free(w);
  tc_runtime_free(rt);
}

void test_flush(const char *url) {
  run_pairs(url, false, false);
  run_pairs(url, true, false);
  run_pairs(url, false, true);
  run_pairs(url, true, true);
}
