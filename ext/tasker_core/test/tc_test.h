/*
 * tc_test.h - the harness of the pure-C core's tests: checks, JSON helpers, and the tests each
 * test_*.c file defines. tc_test.c runs every test in its own process (see there).
 */
#ifndef TC_TEST_H
#define TC_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tasker.h"
#include "tc_internal.h"

/* Checks made and failed by the test running in this process. */
extern int tc_test_checks;
extern int tc_test_failures;

#define CHECK(cond, ...)                                               \
  do {                                                                 \
    tc_test_checks++;                                                  \
    if (!(cond)) {                                                     \
      tc_test_failures++;                                              \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                    \
      fprintf(stderr, "\n");                                           \
    }                                                                  \
  } while (0)

#define CHECK_RC(rc, err) CHECK((rc) == TC_OK, "%s: %s", tc_err_name(rc), (err).message)

/* Parses test JSON; exits the test (status 2) when the text is not JSON. */
json_object *parse(const char *text);
/* obj[key] as a string, boolean (false when absent) or integer (-1 when absent). */
const char *str(json_object *obj, const char *key);
bool boolean(json_object *obj, const char *key);
int64_t integer(json_object *obj, const char *key);
/* A runtime on url with pool_size connections and logging off; NULL (and a failed check) on error. */
tc_runtime_t *test_runtime(const char *url, int pool_size);
/* A runtime from a configuration object's JSON text; NULL (and a failed check) on error. */
tc_runtime_t *test_runtime_config(const char *config_json);
/* Takes the next step event, failing the test if none arrives in 5 s. */
json_object *next_step(tc_worker_t *w);
/* Completes ev; returns the next step claimed in the same round trip (claim on complete), if any. */
json_object *complete(tc_worker_t *w, json_object *ev, const char *result_json, const char *expect_task);

/* The tests; url is the test database (NULL for the tests that need none). */
void test_uuid(const char *url);              /* test_util.c */
void test_templates(const char *url);         /* test_template.c */
void test_unreachable(const char *url);       /* test_runtime.c */
void test_session_options(const char *url);
void test_redact(const char *url);            /* test_observe.c */
void test_observe(const char *url);
void test_worker(const char *url);            /* test_worker.c */
void test_flush(const char *url);             /* test_flush.c */
void test_step_event(const char *url);        /* test_step_event.c */
void test_client(const char *url);            /* test_client.c */
void test_client_statement(const char *url);
void test_events(const char *url);            /* test_events.c */
void test_events_concurrent_stop(const char *url);
void test_domain(const char *url);            /* test_domain.c */

#endif /* TC_TEST_H */
