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
  rc = tc_client_list_tasks(rt, 10, 0, ns, "steps_in_process", NULL, NULL, true, &list, &err);
  CHECK_RC(rc, err);
  if (list) {
    json_object *pagination = json_object_object_get(list, "pagination");
    CHECK(integer(pagination, "total_count") == 1 && integer(pagination, "page") == 1 && !boolean(pagination, "has_next"),
          "pagination: %s", json_object_to_json_string(pagination));
    CHECK(json_object_array_length(json_object_object_get(list, "tasks")) == 1, "one task listed");
  }
  json_object_put(list);
  list = NULL;
  rc = tc_client_list_tasks(rt, 0, 0, NULL, NULL, NULL, NULL, true, &list, &err);
  CHECK(rc == TC_EINVAL && list == NULL && strstr(err.message, "limit must be between 1 and 1000 (got 0)"), "%s", err.message);
  rc = tc_client_list_tasks(rt, 1001, 0, NULL, NULL, NULL, NULL, true, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "limit"), "%s", err.message);
  rc = tc_client_list_tasks(rt, 10, -1, NULL, NULL, NULL, NULL, true, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "offset"), "%s", err.message);
  rc = tc_client_list_tasks(rt, 10, 0, NULL, "finished", NULL, NULL, true, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "status must be one of") && strstr(err.message, "(got finished)"), "%s",
        err.message);
  rc = tc_client_list_tasks(rt, 10, 0, "", NULL, NULL, NULL, true, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "namespace"), "%s", err.message);
  rc = tc_client_list_tasks(rt, 10, 0, NULL, NULL, "", NULL, true, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "initiator must be 1 to 128 characters"), "%s", err.message);
  rc = tc_client_list_tasks_after(rt, 10, NULL, NULL, NULL, NULL, "", &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "source_system must be 1 to 128 characters"), "%s", err.message);

  /* The initiator filter: nobody of that name created a task of this namespace. */
  rc = tc_client_list_tasks(rt, 10, 0, ns, NULL, "nobody-of-that-name", NULL, true, &list, &err);
  CHECK_RC(rc, err);
  if (list) {
    CHECK(integer(json_object_object_get(list, "pagination"), "total_count") == 0 &&
              json_object_array_length(json_object_object_get(list, "tasks")) == 0,
          "initiator filter: %s", json_object_to_json_string(list));
  }
  json_object_put(list);
  list = NULL;

  /* Reports: the queue of this namespace, and an unknown report named. */
  rc = tc_report(rt, "queue_depth", 0, 0, &list, &err);
  CHECK(rc == TC_OK && list && json_object_is_type(list, json_type_array), "queue_depth: %d %s", rc, err.message);
  json_object_put(list);
  list = NULL;
  rc = tc_report(rt, "activity", 60, 5, &list, &err);
  CHECK(rc == TC_OK && list && json_object_array_length(json_object_object_get(list, "buckets")) == 12,
        "activity: %d %s", rc, err.message);
  json_object_put(list);
  list = NULL;
  rc = tc_report(rt, "activity", 60, 0, &list, &err);
  CHECK(rc == TC_EINVAL && list == NULL && strstr(err.message, "bucket_minutes"), "%s", err.message);
  rc = tc_report(rt, "everything", 0, 0, &list, &err);
  CHECK(rc == TC_EINVAL && list == NULL && strstr(err.message, "report must be one of"), "%s", err.message);

  /* A page without the total: nulls for total_count and total_pages, has_next from one row more. */
  rc = tc_client_list_tasks(rt, 1, 0, ns, NULL, NULL, NULL, false, &list, &err);
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

  /* Keyset pages: the first page, then after its last task (nothing more), and bad cursors. */
  rc = tc_client_list_tasks_after(rt, 1, NULL, ns, NULL, NULL, NULL, &list, &err);
  CHECK_RC(rc, err);
  char cursor[128] = "";
  if (list) {
    json_object *tasks = json_object_object_get(list, "tasks");
    json_object *next = NULL;
    CHECK(json_object_array_length(tasks) == 1 && !boolean(list, "has_next") &&
              json_object_object_get_ex(list, "next_cursor", &next) && next == NULL,
          "keyset first page: %s", json_object_to_json_string(list));
    if (json_object_array_length(tasks) == 1) {
      json_object *t = json_object_array_get_idx(tasks, 0);
      snprintf(cursor, sizeof cursor, "%s_%s", str(t, "created_at"), str(t, "task_uuid"));
    }
  }
  json_object_put(list);
  list = NULL;
  rc = tc_client_list_tasks_after(rt, 10, cursor, ns, "steps_in_process", NULL, NULL, &list, &err);
  CHECK(rc == TC_OK && list && json_object_array_length(json_object_object_get(list, "tasks")) == 0,
        "after the last task: %d %s", rc, err.message);
  json_object_put(list);
  list = NULL;
  rc = tc_client_list_tasks_after(rt, 10, "yesterday_x", NULL, NULL, NULL, NULL, &list, &err);
  CHECK(rc == TC_EINVAL && list == NULL && strstr(err.message, "cursor is not a cursor of the task list"), "%s", err.message);
  rc = tc_client_list_tasks_after(rt, 10, "", NULL, NULL, NULL, NULL, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "cursor must be"), "%s", err.message);
  rc = tc_client_list_tasks_after(rt, 1001, NULL, NULL, NULL, NULL, NULL, &list, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "limit"), "%s", err.message);

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

/* Runs a statement of tc_client_create_task(s)_statement on conn; *text is a copy of its one value
 * (NULL on failure, with the SQLSTATE in state). */
static bool run_statement(PGconn *conn, json_object *st, char **text, char state[8]) {
  json_object *params = json_object_object_get(st, "params");
  const char *values[2] = {NULL, NULL};
  int n = (int)json_object_array_length(params);
  for (int i = 0; i < n && i < 2; i++) values[i] = json_object_get_string(json_object_array_get_idx(params, i));
  PGresult *res = PQexecParams(conn, str(st, "sql"), n, NULL, values, NULL, NULL, 0);
  *text = NULL;
  state[0] = '\0';
  bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
  if (ok) {
    *text = tc_strdup(PQgetvalue(res, 0, 0));
  } else if (res && PQresultErrorField(res, PG_DIAG_SQLSTATE)) {
    snprintf(state, 8, "%s", PQresultErrorField(res, PG_DIAG_SQLSTATE));
  }
  PQclear(res);
  return ok;
}

static void exec_ok(PGconn *conn, const char *sql) {
  PGresult *res = PQexec(conn, sql);
  CHECK(res && PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(conn));
  PQclear(res);
}

/* Creation on a connection of the caller's: the statement (validated first, nothing sent on a
 * refusal), run inside the caller's transaction on a session without the engine's settings;
 * invisible to others until the commit, gone after a rollback; the answer and the errors read as
 * the engine's own create reads them. */
void test_client_statement(const char *url) {
  tc_runtime_t *rt = test_runtime(url, 2);
  if (!rt) return;
  tc_error_t err = {0};
  json_object *out = NULL;
  int rc = tc_migrate(rt, &out, &err);
  CHECK_RC(rc, err);
  json_object_put(out);
  out = NULL;
  char ns[32], text[1024];
  snprintf(ns, sizeof ns, "cstmt_%d", (int)getpid());
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

  /* Refusals come before any statement exists. */
  json_object *st = NULL;
  json_object *bad = parse("{\"name\":\"duo\",\"context\":[1]}");
  rc = tc_client_create_task_statement(bad, &st, &err);
  CHECK(rc == TC_EINVAL && st == NULL && strstr(err.message, "context must be an object"), "%s", err.message);
  json_object *bad_batch = json_object_new_array();
  json_object_array_add(bad_batch, parse("{\"name\":\"duo\"}"));
  json_object_array_add(bad_batch, bad);
  rc = tc_client_create_tasks_statement(bad_batch, &st, &err);
  CHECK(rc == TC_EINVAL && st == NULL && strncmp(err.message, "requests[1]: context must be an object", 38) == 0,
        "%s", err.message);
  json_object_put(bad_batch);

  PGconn *conn = PQconnectdb(url);
  CHECK(PQstatus(conn) == CONNECTION_OK, "connect: %s", PQerrorMessage(conn));
  if (PQstatus(conn) != CONNECTION_OK) {
    PQfinish(conn);
    tc_runtime_free(rt);
    return;
  }
  exec_ok(conn, "SET search_path TO pg_catalog");

  /* Rolled back: nothing left. */
  snprintf(text, sizeof text, "{\"name\":\"duo\",\"namespace\":\"%s\",\"context\":{\"k\":1}}", ns);
  json_object *req = parse(text);
  rc = tc_client_create_task_statement(req, &st, &err);
  CHECK_RC(rc, err);
  char *answer = NULL, state[8];
  char task_uuid[37] = "";
  exec_ok(conn, "BEGIN");
  bool ran = st && run_statement(conn, st, &answer, state);
  CHECK(ran, "create_task statement: %s", PQerrorMessage(conn));
  json_object *task = NULL;
  rc = tc_client_create_task_answer(answer, &task, &err);
  CHECK(rc == TC_OK && task && boolean(task, "created") && integer(task, "step_count") == 2, "answer: %s", err.message);
  if (task) snprintf(task_uuid, sizeof task_uuid, "%s", str(task, "task_uuid"));
  json_object_put(task);
  task = NULL;
  tc_free(answer);
  rc = tc_client_get_task(rt, task_uuid, &task, &err);
  CHECK(rc == TC_ENOTFOUND && task == NULL, "the open transaction's task is visible: %s", tc_err_name(rc));
  exec_ok(conn, "ROLLBACK");
  rc = tc_client_get_task(rt, task_uuid, &task, &err);
  CHECK(rc == TC_ENOTFOUND && task == NULL, "a rolled back task remains: %s", tc_err_name(rc));

  /* The same statement run again, committed: the task, with the uuid the statement carries. */
  exec_ok(conn, "BEGIN");
  ran = run_statement(conn, st, &answer, state);
  CHECK(ran, "create_task statement: %s", PQerrorMessage(conn));
  exec_ok(conn, "COMMIT");
  json_object_put(st);
  st = NULL;
  rc = tc_client_create_task_answer(answer, &task, &err);
  tc_free(answer);
  CHECK(rc == TC_OK && task && strcmp(str(task, "task_uuid"), task_uuid) == 0, "committed answer: %s", err.message);
  json_object_put(task);
  task = NULL;
  rc = tc_client_get_task(rt, task_uuid, &task, &err);
  CHECK(rc == TC_OK && task && integer(task, "ready_steps") == 1, "the committed task: %s", err.message);
  json_object_put(task);
  task = NULL;

  /* A batch: the existing identity answers its task, the new one is created. */
  json_object *batch = json_object_new_array();
  json_object_array_add(batch, json_object_get(req));
  snprintf(text, sizeof text, "{\"name\":\"duo\",\"namespace\":\"%s\",\"context\":{\"k\":2}}", ns);
  json_object_array_add(batch, parse(text));
  rc = tc_client_create_tasks_statement(batch, &st, &err);
  CHECK_RC(rc, err);
  ran = st && run_statement(conn, st, &answer, state);
  CHECK(ran, "create_tasks statement: %s", PQerrorMessage(conn));
  json_object *tasks = NULL;
  rc = tc_client_create_tasks_answer(answer, 2, &tasks, &err);
  CHECK(rc == TC_OK && tasks && !boolean(json_object_array_get_idx(tasks, 0), "created") &&
            boolean(json_object_array_get_idx(tasks, 1), "created"),
        "batch answer: %s", err.message);
  json_object_put(tasks);
  tasks = NULL;
  rc = tc_client_create_tasks_answer(answer, 3, &tasks, &err);
  CHECK(rc == TC_EDB && tasks == NULL && strstr(err.message, "one task per request"), "%s", err.message);
  tc_free(answer);
  json_object_put(st);
  st = NULL;
  json_object_put(batch);

  /* Errors on the caller's connection read as the engine's: an unknown template is TC_ENOTFOUND. */
  json_object *unknown = parse("{\"name\":\"nope\"}");
  rc = tc_client_create_task_statement(unknown, &st, &err);
  CHECK_RC(rc, err);
  ran = st && run_statement(conn, st, &answer, state);
  CHECK(!ran && strcmp(state, "TK404") == 0, "unknown template: %s", state);
  rc = tc_client_statement_error(state, "task template not found: namespace=default, name=nope, version=1.0.0", &err);
  CHECK(rc == TC_ENOTFOUND && strncmp(err.message, "task template not found", 23) == 0 &&
            strcmp(err.sqlstate, "TK404") == 0,
        "%s", err.message);
  json_object_put(st);
  st = NULL;
  json_object_put(unknown);
  json_object_put(req);
  rc = tc_client_statement_error("3F000", "schema \"tasker\" does not exist", &err);
  CHECK(rc == TC_ECONFIG && strstr(err.message, "no tasker schema"), "%s", err.message);
  rc = tc_client_statement_error("40001", "could not serialize access due to concurrent update", &err);
  CHECK(rc == TC_EDB && strstr(err.message, "retry the whole transaction") && strcmp(err.sqlstate, "40001") == 0,
        "%s", err.message);
  rc = tc_client_statement_error(NULL, NULL, &err);
  CHECK(rc == TC_EDB && strstr(err.message, "unknown error") && err.sqlstate[0] == '\0', "%s", err.message);
  rc = tc_client_create_task_answer(NULL, &task, &err);
  CHECK(rc == TC_EDB && task == NULL, "NULL answer: %s", err.message);
  rc = tc_client_create_task_answer("{\"x\":", &task, &err);
  CHECK(rc == TC_EDB && task == NULL && strstr(err.message, "invalid JSON"), "%s", err.message);
  PQfinish(conn);
  tc_runtime_free(rt);
}
