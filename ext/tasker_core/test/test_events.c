/*
 * test_events.c - tests of lifecycle events (tc_events.c) against a database.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tc_test.h"

/* Lifecycle events: the catalogue names, and a feeder that reports a new task's transitions in order
 * through a bounded buffer that drops (and counts) what does not fit. */
void test_events(const char *url) {
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
void test_events_concurrent_stop(const char *url) {
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
