/*
 * tc_test.c - the runner of the pure-C core's tests (test_*.c), with no Ruby in the process, so
 * valgrind and the sanitizers see only our code. Run by `rake ctest`, `rake memcheck` and
 * `rake asan`.
 *
 * Each test runs in its own forked process with a timeout: a test that crashes, hangs, or ends
 * with errors valgrind or the sanitizers found (its exit status) is reported as failed under its
 * name, and the run goes on with the next test. The tests share the database and run one after
 * the other, in the order of the table below.
 *
 *   tc_core_test [name...]      runs the named tests only (all by default)
 *   TASKER_TEST_DATABASE_URL    a database the tests may migrate and fill; without it only the
 *                               tests that need no database run
 *   TC_TEST_TIMEOUT             seconds one test may take (default 120)
 *   TC_TEST_NOFORK=1            runs the tests in this process instead (for a debugger)
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tc_test.h"

int tc_test_checks = 0;
int tc_test_failures = 0;

static const struct {
  const char *name;
  void (*fn)(const char *url);
  bool needs_db;
} tests[] = {
    {"uuid", test_uuid, false},
    {"templates", test_templates, false},
    {"unreachable", test_unreachable, false},
    {"redact", test_redact, false},
    {"worker", test_worker, true},
    {"flush", test_flush, true},
    {"step_event", test_step_event, true},
    {"client", test_client, true},
    {"client_statement", test_client_statement, true},
    {"session_options", test_session_options, true},
    {"observe", test_observe, true},
    {"events", test_events, true},
    {"events_concurrent_stop", test_events_concurrent_stop, true},
    {"domain", test_domain, true},
};

/* ---- helpers shared by the tests ---- */

json_object *parse(const char *text) {
  json_object *obj = json_tokener_parse(text);
  if (!obj) {
    fprintf(stderr, "bad test JSON: %s\n", text);
    exit(2);
  }
  return obj;
}

const char *str(json_object *obj, const char *key) {
  json_object *v = NULL;
  return json_object_object_get_ex(obj, key, &v) ? json_object_get_string(v) : NULL;
}

/* Takes the next step event, failing the test if none arrives in 5 s. */
json_object *next_step(tc_worker_t *w) {
  json_object *ev = NULL;
  tc_error_t err = {0};
  int rc = tc_worker_next_step(w, 5000, NULL, &ev, &err);
  CHECK_RC(rc, err);
  return ev;
}

/* Completes ev; returns the next step claimed in the same round trip (claim on complete), if any. */
json_object *complete(tc_worker_t *w, json_object *ev, const char *result_json, const char *expect_task) {
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
tc_runtime_t *test_runtime(const char *url, int pool_size) {
  char cfg_text[2048];
  snprintf(cfg_text, sizeof cfg_text, "{\"database_url\":\"%s\",\"pool_size\":%d,\"log_level\":\"off\"}", url,
           pool_size);
  return test_runtime_config(cfg_text);
}

tc_runtime_t *test_runtime_config(const char *config_json) {
  json_object *cfg = parse(config_json);
  tc_runtime_t *rt = NULL;
  tc_error_t err = {0};
  int rc = tc_runtime_new(cfg, &rt, &err);
  json_object_put(cfg);
  CHECK_RC(rc, err);
  return rc == TC_OK ? rt : NULL;
}

bool boolean(json_object *obj, const char *key) {
  json_object *v = NULL;
  return json_object_object_get_ex(obj, key, &v) && json_object_get_boolean(v);
}

int64_t integer(json_object *obj, const char *key) {
  json_object *v = NULL;
  return json_object_object_get_ex(obj, key, &v) ? json_object_get_int64(v) : -1;
}

/* ---- the runner ---- */

typedef struct {
  int checks, failures;
} counts_t;

/* Runs one test in a child process; returns true when it passed. *c: the child's counts. */
static bool run_forked(int i, const char *url, int timeout_s, counts_t *c) {
  int fds[2];
  if (pipe(fds) != 0) {
    fprintf(stderr, "FAIL %s: pipe: %s\n", tests[i].name, strerror(errno));
    return false;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "FAIL %s: fork: %s\n", tests[i].name, strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return false;
  }
  if (pid == 0) {
    close(fds[0]);
    tc_test_checks = tc_test_failures = 0;
    tests[i].fn(url);
    counts_t mine = {tc_test_checks, tc_test_failures};
    ssize_t w = write(fds[1], &mine, sizeof mine);
    close(fds[1]);
    exit(w == (ssize_t)sizeof mine && tc_test_failures == 0 ? 0 : 1);
  }
  close(fds[1]);
  int status = 0;
  bool timed_out = false;
  struct timespec nap = {0, 10 * 1000 * 1000};
  for (long waited_ms = 0;; waited_ms += 10) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      fprintf(stderr, "FAIL %s: waitpid: %s\n", tests[i].name, strerror(errno));
      close(fds[0]);
      return false;
    }
    if (waited_ms >= (long)timeout_s * 1000) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      timed_out = true;
      break;
    }
    nanosleep(&nap, NULL);
  }
  counts_t got = {0, 0};
  bool reported = read(fds[0], &got, sizeof got) == (ssize_t)sizeof got;
  close(fds[0]);
  *c = got;
  if (timed_out) {
    fprintf(stderr, "FAIL %s: timed out after %d s (TC_TEST_TIMEOUT)\n", tests[i].name, timeout_s);
    return false;
  }
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "FAIL %s: killed by signal %d (%s)\n", tests[i].name, WTERMSIG(status),
            strsignal(WTERMSIG(status)));
    return false;
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code != 0 || !reported || got.failures > 0) {
    if (reported && got.failures > 0)
      fprintf(stderr, "FAIL %s: %d of %d checks failed\n", tests[i].name, got.failures, got.checks);
    else
      fprintf(stderr, "FAIL %s: exit status %d (%s)\n", tests[i].name, code,
              reported ? "errors found by valgrind or a sanitizer" : "ended before reporting its checks");
    return false;
  }
  return true;
}

/* Migrates the test database once, so any test may run alone. Done before any fork, and the
 * runtime is freed before the first child starts. */
static bool migrate(const char *url) {
  tc_runtime_t *rt = test_runtime(url, 1);
  if (!rt) return false;
  json_object *report = NULL;
  tc_error_t err = {0};
  int rc = tc_migrate(rt, &report, &err);
  json_object_put(report);
  tc_runtime_free(rt);
  if (rc != TC_OK) fprintf(stderr, "could not migrate the test database: %s: %s\n", tc_err_name(rc), err.message);
  return rc == TC_OK;
}

static bool selected(const char *name, int argc, char **argv) {
  if (argc < 2) return true;
  for (int k = 1; k < argc; k++)
    if (strcmp(argv[k], name) == 0) return true;
  return false;
}

int main(int argc, char **argv) {
  const char *url = getenv("TASKER_TEST_DATABASE_URL");
  if (url && !*url) url = NULL;
  const char *t = getenv("TC_TEST_TIMEOUT");
  int timeout_s = t && atoi(t) > 0 ? atoi(t) : 120;
  const char *nf = getenv("TC_TEST_NOFORK");
  bool nofork = nf && *nf && strcmp(nf, "0") != 0;
  if (!url) fprintf(stderr, "TASKER_TEST_DATABASE_URL is not set: skipping the engine tests\n");
  for (int k = 1; k < argc; k++) {
    bool known = false;
    for (size_t i = 0; i < TC_COUNT(tests); i++) known = known || strcmp(tests[i].name, argv[k]) == 0;
    if (!known) {
      fprintf(stderr, "unknown test %s\n", argv[k]);
      return 2;
    }
  }
  if (url && !migrate(url)) return 1;
  int passed = 0, failed = 0, checks = 0, failed_checks = 0;
  for (size_t i = 0; i < TC_COUNT(tests); i++) {
    if (!selected(tests[i].name, argc, argv) || (tests[i].needs_db && !url)) continue;
    int64_t t0 = tc_now_ms();
    bool ok;
    counts_t c = {0, 0};
    if (nofork) {
      int before_checks = tc_test_checks, before_failures = tc_test_failures;
      tests[i].fn(url);
      c.checks = tc_test_checks - before_checks;
      c.failures = tc_test_failures - before_failures;
      ok = c.failures == 0;
      if (!ok) fprintf(stderr, "FAIL %s: %d of %d checks failed\n", tests[i].name, c.failures, c.checks);
    } else {
      ok = run_forked((int)i, url, timeout_s, &c);
    }
    checks += c.checks;
    failed_checks += c.failures;
    if (ok) passed++;
    else failed++;
    printf("%s %s (%d checks, %lld ms)\n", ok ? "ok  " : "FAIL", tests[i].name, c.checks,
           (long long)(tc_now_ms() - t0));
    fflush(stdout);
  }
  printf("%d tests passed, %d failed; %d checks passed, %d failed\n", passed, failed, checks - failed_checks,
         failed_checks);
  return failed ? 1 : 0;
}
