/*
 * test_client.c - tests of the client API (tc_client.c) against a database.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tc_test.h"

/* The client API (tc_client.c): creation answers with the whole task, lists, steps, audit history,
 * cancellation and the health check, with their refusals. */
void test_client(const char *url) {
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
  rc = tc_client_list_tasks(rt, 10, 0, ns, "steps_in_process", true, &list, &err);
  CHECK_RC(rc, err);
  if (list) {
    json_object *pagination = json_object_object_get(list, "pagination");
    CHECK(integer(pagination, "total_count") == 1 && integer(pagination, "page") == 1 && !boolean(pagination, "has_next"),
          "pagination: %s", json_object_to_json_string(pagination));
    CHECK(json_object_array_length(json_object_object_get(list, "tasks")) == 1, "one task listed");
  }
  json_object_put(list);
  list = NULL;
  rc = tc_client_list_tasks(rt, 0, 0, NULL, NULL, true, &list, &err);
  CHECK(rc == TC_EINVAL && list == NULL && strstr(err.message, "limit must be between 1 and 1000 (got 0)"), "%s", err.message);
  rc = tc_client_list_tasks(rt, 1001, 0, NULL, NULL, true, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "limit"), "%s", err.message);
  rc = tc_client_list_tasks(rt, 10, -1, NULL, NULL, true, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "offset"), "%s", err.message);
  rc = tc_client_list_tasks(rt, 10, 0, NULL, "finished", true, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "status must be one of") && strstr(err.message, "(got finished)"), "%s",
        err.message);
  rc = tc_client_list_tasks(rt, 10, 0, "", NULL, true, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "namespace"), "%s", err.message);

  /* A page without the total: nulls for total_count and total_pages, has_next from one row more. */
  rc = tc_client_list_tasks(rt, 1, 0, ns, NULL, false, &list, &err);
  CHECK_RC(rc, err);
  if (list) {
    json_object *pagination = json_object_object_get(list, "pagination");
    json_object *total = NULL;
    CHECK(json_object_object_get_ex(pagination, "total_count", &total) && total == NULL &&
              !boolean(pagination, "has_next") && json_object_array_length(json_object_object_get(list, "tasks")) == 1,
          "pagination without total: %s", json_object_to_json_string(list));
  }
  json_object_put(list);
  list = NULL;

  /* Counts: by namespace, by one or several states (repeats allowed), and the refusals. */
  int64_t count = -1;
  const char *in_process[] = {"steps_in_process"};
  const char *several[] = {"complete", "steps_in_process", "complete"};
  const char *finished[] = {"complete", "error"};
  const char *unknown[] = {"pending", "finished"};
  rc = tc_client_count_tasks(rt, ns, NULL, 0, &count, &err);
  CHECK(rc == TC_OK && count == 1, "count by namespace: %d %lld %s", rc, (long long)count, err.message);
  rc = tc_client_count_tasks(rt, ns, in_process, 1, &count, &err);
  CHECK(rc == TC_OK && count == 1, "count by state: %d %lld %s", rc, (long long)count, err.message);
  rc = tc_client_count_tasks(rt, ns, several, 3, &count, &err);
  CHECK(rc == TC_OK && count == 1, "count by states: %d %lld %s", rc, (long long)count, err.message);
  rc = tc_client_count_tasks(rt, ns, finished, 2, &count, &err);
  CHECK(rc == TC_OK && count == 0, "count of finished: %d %lld %s", rc, (long long)count, err.message);
  rc = tc_client_count_tasks(rt, NULL, NULL, 0, &count, &err);
  CHECK(rc == TC_OK && count >= 1, "count of all: %d %lld %s", rc, (long long)count, err.message);
  rc = tc_client_count_tasks(rt, ns, unknown, 2, &count, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "status must be one of") && strstr(err.message, "(got finished)"), "%s",
        err.message);
  rc = tc_client_count_tasks(rt, ns, finished, 0, &count, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "status must name at least one"), "%s", err.message);
  rc = tc_client_count_tasks(rt, "", NULL, 0, &count, &err);
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
  /* A batch: the repeated identity answers the existing task, the new one is created, in order;
   * a refused request names its index and nothing is sent; an empty batch; the limit. */
  snprintf(text, sizeof text,
           "[{\"name\":\"duo\",\"namespace\":\"%s\",\"context\":{\"k\":1}},"
           "{\"name\":\"duo\",\"namespace\":\"%s\",\"context\":{\"k\":2}},"
           "{\"name\":\"duo\",\"namespace\":\"%s\",\"context\":{\"k\":2}}]",
           ns, ns, ns);
  json_object *batch = parse(text);
  json_object *tasks = NULL;
  rc = tc_client_create_tasks(rt, batch, &tasks, &err);
  CHECK_RC(rc, err);
  if (tasks) {
    CHECK(json_object_array_length(tasks) == 3, "three answers");
    json_object *a = json_object_array_get_idx(tasks, 0), *b = json_object_array_get_idx(tasks, 1),
                *c = json_object_array_get_idx(tasks, 2);
    CHECK(a && b && c && !boolean(a, "created") && strcmp(str(a, "task_uuid"), task_uuid) == 0 && boolean(b, "created") &&
              integer(b, "step_count") == 2 && !boolean(c, "created") &&
              strcmp(str(b, "task_uuid"), str(c, "task_uuid")) == 0,
          "batch answers: %s", json_object_to_json_string(tasks));
  }
  json_object_put(tasks);
  tasks = NULL;
  json_object_array_add(batch, parse("{\"name\":\"duo\",\"context\":[1]}"));
  rc = tc_client_create_tasks(rt, batch, &tasks, &err);
  CHECK(rc == TC_EINVAL && tasks == NULL && strncmp(err.message, "requests[3]: context must be an object", 38) == 0,
        "%s", err.message);
  json_object_put(batch);
  batch = json_object_new_array();
  rc = tc_client_create_tasks(rt, batch, &tasks, &err);
  CHECK(rc == TC_OK && tasks && json_object_array_length(tasks) == 0, "empty batch");
  json_object_put(tasks);
  tasks = NULL;
  for (int i = 0; i <= TC_CLIENT_CREATE_TASKS_MAX; i++) json_object_array_add(batch, json_object_new_object());
  rc = tc_client_create_tasks(rt, batch, &tasks, &err);
  CHECK(rc == TC_EINVAL && tasks == NULL && strstr(err.message, "the limit is 10000"), "%s", err.message);
  json_object_put(batch);
  rc = tc_client_create_tasks(rt, NULL, &tasks, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "requests must be an array"), "%s", err.message);
  tc_runtime_free(rt);
}
