/*
 * tc_log_test.c - tests of the core's logging: the JSON lines, the log buffer a binding drains,
 * and server notices routed through the log. Run by `rake ctest`, `rake memcheck` and `rake asan`
 * next to tc_core_test. The notice test needs TASKER_TEST_DATABASE_URL; the rest need no database.
 */
#include <fcntl.h>
#include <pthread.h>
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

/* Runs fn with stderr sent to /dev/null (lines the test makes fall back to stderr). */
static void quietly(void (*fn)(void *), void *arg) {
  fflush(stderr);
  int saved = dup(2);
  int null = open("/dev/null", O_WRONLY);
  if (saved < 0 || null < 0) {
    fn(arg);
  } else {
    dup2(null, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
  }
  if (null >= 0) close(null);
  if (saved >= 0) close(saved);
}

static tc_runtime_t *offline_runtime(const char *url, const char *level) {
  char cfg[512];
  snprintf(cfg, sizeof cfg, "{\"database_url\":\"%s\",\"pool_size\":2,\"log_level\":\"%s\"}", url, level);
  json_object *config = json_tokener_parse(cfg);
  tc_runtime_t *rt = NULL;
  tc_error_t err = {0};
  int rc = tc_runtime_new(config, &rt, &err);
  json_object_put(config);
  if (rc != TC_OK) {
    fprintf(stderr, "runtime: %s\n", err.message);
    exit(2);
  }
  return rt;
}

/* Takes every buffered line as parsed JSON (acknowledged). */
static int drain(tc_log_buffer_t *b, json_object **out, int max) {
  int total = 0;
  tc_log_line_t lines[16];
  int n = 0;
  while (total < max && tc_log_buffer_peek(b, 0, NULL, lines, 16, &n) == TC_OK && n > 0) {
    int k = n < max - total ? n : max - total;
    for (int i = 0; i < k; i++) out[total++] = json_tokener_parse(lines[i].line);
    tc_log_buffer_ack(b, k);
  }
  return total;
}

static const char *field(json_object *obj, const char *key) {
  json_object *v = NULL;
  return json_object_object_get_ex(obj, key, &v) ? json_object_get_string(v) : NULL;
}

static void test_lines_through_sink(void) {
  tc_runtime_t *rt = offline_runtime("postgresql://nowhere.invalid/db", "info");
  tc_log_buffer_t *b = tc_log_buffer_new(8, 1000);
  CHECK(b != NULL, "buffer");
  tc_runtime_set_log_sink(rt, tc_log_buffer_sink, b);
  tc_log(rt, TC_LOG_DEBUG, "below_level", "not written");
  tc_log(rt, TC_LOG_INFO, "first", "one %d", 1);
  json_object *extra = json_object_new_object();
  json_object_object_add(extra, "sqlstate", json_object_new_string("00000"));
  json_object_object_add(extra, "level", json_object_new_string("must not replace the level"));
  tc_log_fields(rt, TC_LOG_WARN, "second", extra, "two");
  json_object_put(extra);
  CHECK(tc_runtime_set_log_level(rt, "debug") == TC_OK, "set level");
  CHECK(tc_runtime_set_log_level(rt, "loud") == TC_EINVAL, "unknown level accepted");
  tc_log(rt, TC_LOG_DEBUG, "third", "now written");

  json_object *got[8] = {0};
  int n = drain(b, got, 8);
  CHECK(n == 3, "%d lines", n);
  if (n == 3) {
    CHECK(strcmp(field(got[0], "event"), "first") == 0, "%s", field(got[0], "event"));
    CHECK(strcmp(field(got[0], "message"), "one 1") == 0, "%s", field(got[0], "message"));
    CHECK(strcmp(field(got[0], "level"), "info") == 0, "%s", field(got[0], "level"));
    CHECK(field(got[0], "ts") && field(got[0], "pid"), "ts and pid");
    CHECK(strcmp(field(got[1], "event"), "second") == 0, "%s", field(got[1], "event"));
    CHECK(strcmp(field(got[1], "level"), "warn") == 0, "%s", field(got[1], "level"));
    CHECK(field(got[1], "sqlstate") && strcmp(field(got[1], "sqlstate"), "00000") == 0, "extra field");
    CHECK(strcmp(field(got[2], "event"), "third") == 0, "%s", field(got[2], "event"));
  }
  for (int i = 0; i < n; i++) json_object_put(got[i]);
  tc_runtime_set_log_sink(rt, NULL, NULL);
  tc_runtime_free(rt);
  tc_log_buffer_free(b);
}

static void test_peek_until_ack(void) {
  tc_log_buffer_t *b = tc_log_buffer_new(4, 1000);
  tc_log_buffer_sink(b, TC_LOG_INFO, "{\"n\":1}");
  tc_log_buffer_sink(b, TC_LOG_WARN, "{\"n\":2}");
  tc_log_line_t lines[4];
  int n = 0;
  CHECK(tc_log_buffer_peek(b, 0, NULL, lines, 4, &n) == TC_OK && n == 2, "n %d", n);
  CHECK(tc_log_buffer_peek(b, 0, NULL, lines, 1, &n) == TC_OK && n == 1, "max respected: %d", n);
  CHECK(strcmp(lines[0].line, "{\"n\":1}") == 0, "unacknowledged line is shown again: %s", lines[0].line);
  tc_log_buffer_ack(b, 1);
  CHECK(tc_log_buffer_peek(b, 0, NULL, lines, 4, &n) == TC_OK && n == 1, "n %d", n);
  CHECK(lines[0].level == TC_LOG_WARN && strcmp(lines[0].line, "{\"n\":2}") == 0, "%s", lines[0].line);
  tc_log_buffer_ack(b, 1);
  CHECK(tc_log_buffer_peek(b, 10, NULL, lines, 4, &n) == TC_ETIMEDOUT && n == 0, "empty buffer times out");
  tc_log_buffer_sink(b, TC_LOG_INFO, "{\"n\":3}");  /* left in the buffer: freed with it */
  tc_log_buffer_free(b);
}

/* The wake fd gets one byte per empty -> non-empty transition. */
static void test_wake_fd(void) {
  int fds[2];
  CHECK(pipe(fds) == 0, "pipe");
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  fcntl(fds[1], F_SETFL, O_NONBLOCK);
  tc_log_buffer_t *b = tc_log_buffer_new(4, 10);
  tc_log_buffer_set_wake_fd(b, fds[1]);
  char buf[16];
  tc_log_buffer_sink(b, TC_LOG_INFO, "{\"n\":1}");
  tc_log_buffer_sink(b, TC_LOG_INFO, "{\"n\":2}");
  CHECK(read(fds[0], buf, sizeof buf) == 1, "one byte for two lines");
  tc_log_buffer_ack(b, 2);
  CHECK(read(fds[0], buf, sizeof buf) < 0, "no byte without a line");
  tc_log_buffer_sink(b, TC_LOG_INFO, "{\"n\":3}");
  CHECK(read(fds[0], buf, sizeof buf) == 1, "a byte once the buffer was empty again");
  tc_log_buffer_free(b);
  close(fds[0]);
  close(fds[1]);
}

static void fill_past_capacity(void *arg) {
  tc_log_buffer_t *b = arg;
  for (int i = 0; i < 7; i++) tc_log_buffer_sink(b, TC_LOG_INFO, "{\"filler\":true}");
}

static void test_full_buffer_falls_back_and_counts(void) {
  tc_log_buffer_t *b = tc_log_buffer_new(4, 20);
  quietly(fill_past_capacity, b);
  tc_log_buffer_stats_t st;
  tc_log_buffer_stats(b, &st);
  CHECK(st.appended == 4 && st.to_stderr == 3 && st.buffered == 4, "appended %llu to_stderr %llu buffered %d",
        (unsigned long long)st.appended, (unsigned long long)st.to_stderr, st.buffered);
  tc_log_buffer_ack(b, 2);
  tc_log_buffer_sink(b, TC_LOG_INFO, "{\"after\":true}");
  tc_log_buffer_stats(b, &st);
  CHECK(st.appended == 5 && st.acked == 2 && st.buffered == 3, "space is used again once acknowledged");
  tc_log_buffer_free(b);
}

typedef struct {
  tc_log_buffer_t *b;
  int id;
  int lines;
} producer_t;

static void *produce(void *arg) {
  producer_t *p = arg;
  char line[64];
  for (int i = 0; i < p->lines; i++) {
    snprintf(line, sizeof line, "{\"t\":%d,\"i\":%d}", p->id, i);
    tc_log_buffer_sink(p->b, TC_LOG_INFO, line);
  }
  return NULL;
}

/* Four threads append through a small buffer while one consumer drains it: nothing is lost and
 * each thread's lines arrive in its order. */
static void test_concurrent_order(void) {
  enum { THREADS = 4, LINES = 3000 };
  tc_log_buffer_t *b = tc_log_buffer_new(32, 5000);
  pthread_t th[THREADS];
  producer_t p[THREADS];
  for (int t = 0; t < THREADS; t++) {
    p[t] = (producer_t){.b = b, .id = t, .lines = LINES};
    pthread_create(&th[t], NULL, produce, &p[t]);
  }
  int next[THREADS] = {0};
  int total = 0, out_of_order = 0;
  while (total < THREADS * LINES) {
    tc_log_line_t lines[8];
    int n = 0;
    if (tc_log_buffer_peek(b, 2000, NULL, lines, 8, &n) != TC_OK) break;
    for (int i = 0; i < n; i++) {
      int t = -1, k = -1;
      if (sscanf(lines[i].line, "{\"t\":%d,\"i\":%d}", &t, &k) != 2 || t < 0 || t >= THREADS || k != next[t]++)
        out_of_order++;
    }
    tc_log_buffer_ack(b, n);
    total += n;
  }
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  tc_log_buffer_stats_t st;
  tc_log_buffer_stats(b, &st);
  CHECK(total == THREADS * LINES, "received %d", total);
  CHECK(out_of_order == 0, "%d lines out of order", out_of_order);
  CHECK(st.to_stderr == 0 && st.acked == (uint64_t)(THREADS * LINES), "to_stderr %llu",
        (unsigned long long)st.to_stderr);
  CHECK(st.max_buffered <= 32, "max_buffered %llu", (unsigned long long)st.max_buffered);
  tc_log_buffer_free(b);
}

typedef struct {
  tc_log_buffer_t *b;
  tc_cancel_t cancel;
  int rc;
} waiter_t;

static void *wait_for_lines(void *arg) {
  waiter_t *w = arg;
  tc_log_line_t lines[4];
  int n = 0;
  w->rc = tc_log_buffer_peek(w->b, 30000, &w->cancel, lines, 4, &n);
  return NULL;
}

static void test_interrupt(void) {
  tc_log_buffer_t *b = tc_log_buffer_new(4, 10);
  waiter_t w = {.b = b};
  pthread_t th;
  pthread_create(&th, NULL, wait_for_lines, &w);
  usleep(20000);
  int64_t start = tc_now_ms();
  tc_log_buffer_interrupt(b, &w.cancel);
  pthread_join(th, NULL);
  CHECK(w.rc == TC_ECANCELED, "rc %s", tc_err_name(w.rc));
  CHECK(tc_now_ms() - start < 5000, "the interrupted wait returned late");
  tc_log_buffer_free(b);
}

/* A NOTICE raised by the server arrives as a pg_notice line with its severity and SQLSTATE. */
static void test_server_notice(const char *url) {
  tc_runtime_t *rt = offline_runtime(url, "info");
  tc_log_buffer_t *b = tc_log_buffer_new(16, 1000);
  tc_runtime_set_log_sink(rt, tc_log_buffer_sink, b);
  PGconn *conn = NULL;
  tc_error_t err = {0};
  int rc = tc_pool_acquire(&rt->pool, &conn, &err);
  CHECK(rc == TC_OK, "%s", err.message);
  if (rc == TC_OK) {
    rc = tc_db_exec(conn, "DO $$ BEGIN RAISE NOTICE 'hello from the server'; RAISE WARNING 'careful'; END $$", 0,
                    NULL, &err);
    CHECK(rc == TC_OK, "%s", err.message);
    tc_pool_release(&rt->pool, conn);
  }
  json_object *got[16] = {0};
  int n = drain(b, got, 16);
  int notices = 0;
  for (int i = 0; i < n; i++) {
    if (strcmp(field(got[i], "event") ? field(got[i], "event") : "", "pg_notice") != 0) continue;
    if (notices == 0) {
      CHECK(strcmp(field(got[i], "message"), "hello from the server") == 0, "%s", field(got[i], "message"));
      CHECK(strcmp(field(got[i], "level"), "info") == 0, "%s", field(got[i], "level"));
      CHECK(strcmp(field(got[i], "pg_severity"), "NOTICE") == 0, "%s", field(got[i], "pg_severity"));
      CHECK(strcmp(field(got[i], "sqlstate"), "00000") == 0, "%s", field(got[i], "sqlstate"));
    } else {
      CHECK(strcmp(field(got[i], "message"), "careful") == 0, "%s", field(got[i], "message"));
      CHECK(strcmp(field(got[i], "level"), "warn") == 0, "%s", field(got[i], "level"));
    }
    notices++;
  }
  CHECK(notices == 2, "%d notices among %d lines", notices, n);
  for (int i = 0; i < n; i++) json_object_put(got[i]);
  tc_runtime_set_log_sink(rt, NULL, NULL);
  tc_runtime_free(rt);
  tc_log_buffer_free(b);
}

int main(void) {
  test_lines_through_sink();
  test_peek_until_ack();
  test_wake_fd();
  test_full_buffer_falls_back_and_counts();
  test_concurrent_order();
  test_interrupt();
  const char *url = getenv("TASKER_TEST_DATABASE_URL");
  if (url && *url) test_server_notice(url);
  else fprintf(stderr, "TASKER_TEST_DATABASE_URL is not set: skipping the notice test\n");
  printf("log tests: %d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
