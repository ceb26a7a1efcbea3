/*
 * test_step_event.c - the step event built in the worker from the claim's row (tc_step_event.c):
 * the same nested event the handler always saw, the step's definition from the cache, and rows
 * that cannot be built refused with an error instead of a crash.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tc_test.h"

static json_object *claim_rows(tc_runtime_t *rt, const char *ns) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT tasker.claim_steps('01a20000-0000-7000-8000-0000000000ee', ARRAY['%s'], 10, 30)", ns);
  json_object *rows = NULL;
  tc_error_t err = {0};
  int rc = tc_rt_query_json_rows(rt, sql, 0, NULL, &rows, &err);
  CHECK_RC(rc, err);
  return rows;
}

void test_step_event(const char *url) {
  tc_runtime_t *rt = test_runtime(url, 2);
  if (!rt) return;
  tc_error_t err = {0};
  char ns[32], text[1024];
  snprintf(ns, sizeof ns, "cevent_%d", (int)getpid());
  snprintf(text, sizeof text,
           "{\"name\":\"one\",\"namespace_name\":\"%s\",\"version\":\"1.0.0\",\"identity_strategy\":\"always_unique\","
           "\"steps\":[{\"name\":\"only\",\"handler\":{\"callable\":\"Only\",\"initialization\":{\"k\":7}}}]}",
           ns);
  json_object *tpl = parse(text), *registered = NULL;
  int rc = tc_template_register(rt, tpl, &registered, &err);
  CHECK_RC(rc, err);
  json_object_put(registered);
  json_object_put(tpl);
  snprintf(text, sizeof text, "{\"name\":\"one\",\"namespace\":\"%s\",\"context\":{\"n\":3},\"tags\":[\"t\"]}", ns);
  json_object *req = parse(text), *task = NULL;
  rc = tc_client_create_task(rt, req, &task, &err);
  CHECK_RC(rc, err);
  json_object_put(req);

  tc_step_defs_t *defs = NULL;
  rc = tc_step_defs_new(&defs, &err);
  CHECK_RC(rc, err);
  json_object *rows = claim_rows(rt, ns);
  CHECK(rows && json_object_array_length(rows) == 1, "one claimed row");
  if (defs && rows && json_object_array_length(rows) == 1) {
    json_object *row = json_object_array_get_idx(rows, 0);
    /* Twice: from the database, then from the cache. */
    for (int i = 0; i < 2; i++) {
      json_object *ev = NULL;
      rc = tc_step_event_build(defs, rt, row, &ev, &err);
      CHECK_RC(rc, err);
      if (rc != TC_OK) break;
      CHECK(strcmp(str(ev, "task_uuid"), str(task, "task_uuid")) == 0, "task_uuid %s", str(ev, "task_uuid"));
      CHECK(strcmp(str(ev, "event_id"), str(ev, "claim_token")) == 0, "event_id is the claim token");
      CHECK(strcmp(str(ev, "handler_callable"), "Only") == 0, "handler_callable");
      json_object *tss = json_object_object_get(ev, "task_sequence_step");
      json_object *def = json_object_object_get(tss, "step_definition");
      CHECK(def && strcmp(str(def, "name"), "only") == 0, "definition of the step");
      json_object *init = json_object_object_get(json_object_object_get(def, "handler"), "initialization");
      CHECK(integer(init, "k") == 7, "handler.initialization");
      json_object *wrap = json_object_object_get(tss, "task");
      CHECK(strcmp(str(wrap, "namespace_name"), ns) == 0 && strcmp(str(wrap, "task_name"), "one") == 0,
            "task wrapper");
      json_object *t = json_object_object_get(wrap, "task");
      CHECK(integer(json_object_object_get(t, "context"), "n") == 3, "context");
      CHECK(json_object_array_length(json_object_object_get(t, "tags")) == 1, "tags");
      json_object *step = json_object_object_get(tss, "workflow_step");
      CHECK(integer(step, "attempts") == 0 && strcmp(str(step, "name"), "only") == 0, "step row");
      CHECK(json_object_object_length(json_object_object_get(tss, "dependency_results")) == 0,
            "no ancestors");
      json_object_put(ev);
    }

    /* A row of another shape, and one whose template does not exist, are refused. */
    json_object *bad = parse("[1, 2, 3]"), *ev = NULL;
    rc = tc_step_event_build(defs, rt, bad, &ev, &err);
    CHECK(rc == TC_EDB && ev == NULL, "a short row is refused: %s", tc_err_name(rc));
    json_object_put(bad);
    json_object *copy = NULL;
    CHECK(json_object_deep_copy(row, &copy, NULL) == 0, "copy");
    json_object_array_put_idx(copy, 8, json_object_new_string("01a20000-0000-7000-8000-0000000000ff"));
    rc = tc_step_event_build(defs, rt, copy, &ev, &err);
    CHECK(rc == TC_EDB && ev == NULL && strstr(err.message, "no step definitions"),
          "an unknown template is refused: %s %s", tc_err_name(rc), err.message);
    json_object_put(copy);
  }
  json_object_put(rows);
  tc_step_defs_free(defs);
  json_object_put(task);
  tc_runtime_free(rt);
}
