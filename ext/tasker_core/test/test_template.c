/*
 * test_template.c - tests of template validation and normalization (tc_template.c), without a database.
 */
#include <stdio.h>
#include <string.h>

#include "tc_test.h"

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

void test_templates(const char *url) {
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
