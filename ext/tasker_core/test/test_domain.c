/*
 * test_domain.c - tests of domain events (tc_domain.c) against a database.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tc_test.h"

void test_domain(const char *url) {
  tc_runtime_t *rt = test_runtime(url, 2);
  if (!rt) return;
  tc_error_t err = {0};
  int rc;

  json_object *out = NULL;
  const char *bad[][2] = {
      {"{\"event_id\":\"00000000-0000-7000-8000-000000000001\",\"event_name\":\"NoDots\"}", "event_name"},
      {"{\"event_id\":\"nope\",\"event_name\":\"a.b\"}", "event_id"},
      {"{\"event_id\":\"00000000-0000-7000-8000-000000000001\",\"event_name\":\"a.b\",\"delivery_mode\":\"fast\"}", "fast"},
      {"{\"event_id\":\"00000000-0000-7000-8000-000000000001\",\"event_name\":\"a.b\",\"metadata\":{\"task_uuid\":1}}",
       "metadata.task_uuid"},
      {"{\"event_id\":\"00000000-0000-7000-8000-000000000001\",\"event_name\":\"a.b\",\"payload\":[1]}", "payload"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    json_object *e = parse(bad[i][0]);
    rc = tc_domain_publish(rt, e, &out, &err);
    json_object_put(e);
    CHECK(rc == TC_EINVAL && strstr(err.message, bad[i][1]), "bad event %zu: %s", i, err.message);
  }

  char id[37], consumer[40], text[512];
  tc_uuid_v7(id);
  snprintf(consumer, sizeof consumer, "c_%d", (int)getpid());
  snprintf(text, sizeof text, "{\"event_id\":\"%s\",\"event_name\":\"order.shipped\",\"payload\":{\"payload\":{\"n\":1}}}", id);
  json_object *e = parse(text);
  rc = tc_domain_publish(rt, e, &out, &err);
  json_object_put(e);
  CHECK_RC(rc, err);
  CHECK(out && json_object_get_boolean(json_object_object_get(out, "written")), "published");
  json_object_put(out);

  rc = tc_domain_read(rt, "bad consumer", 10, 30, NULL, &out, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "consumer"), "bad consumer: %s", err.message);
  rc = tc_domain_read(rt, consumer, 0, 30, NULL, &out, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "limit"), "bad limit: %s", err.message);
  rc = tc_domain_read(rt, consumer, 10, 30, NULL, &out, &err);
  CHECK_RC(rc, err);
  bool found = false;
  for (size_t i = 0; out && i < json_object_array_length(out); i++)
    if (strcmp(str(json_object_array_get_idx(out, i), "event_id"), id) == 0) found = true;
  CHECK(found, "published event read: %s", out ? json_object_to_json_string(out) : "null");
  json_object_put(out);
  rc = tc_domain_read(rt, consumer, 1000, 30, NULL, &out, &err);
  CHECK_RC(rc, err);
  for (size_t i = 0; out && i < json_object_array_length(out); i++)
    CHECK(strcmp(str(json_object_array_get_idx(out, i), "event_id"), id) != 0, "leased event read twice");
  json_object_put(out);

  snprintf(text, sizeof text, "[\"%s\"]", id);
  json_object *ids = parse(text);
  rc = tc_domain_ack(rt, consumer, ids, &out, &err);
  CHECK_RC(rc, err);
  CHECK(out && json_object_get_int(json_object_object_get(out, "acknowledged")) == 1, "acknowledged once");
  json_object_put(out);
  rc = tc_domain_ack(rt, consumer, ids, &out, &err);
  CHECK(rc == TC_OK && out && json_object_get_int(json_object_object_get(out, "acknowledged")) == 0, "acknowledged twice");
  json_object_put(out);
  json_object_put(ids);
  ids = parse("[\"x\"]");
  rc = tc_domain_ack(rt, consumer, ids, &out, &err);
  CHECK(rc == TC_EINVAL && strstr(err.message, "event_ids[0]"), "bad ack: %s", err.message);
  json_object_put(ids);

  CHECK(tc_domain_count(rt, "fast_routed", 2) == TC_OK && tc_domain_count(rt, "subscribers", 3) == TC_OK &&
            tc_domain_count(rt, "nope", 1) == TC_EINVAL, "counting");
  json_object *counters = NULL;
  CHECK(tc_domain_counters(rt, &counters) == TC_OK, "counters");
  CHECK(json_object_get_int64(json_object_object_get(counters, "fast_routed")) == 2 &&
            json_object_get_int64(json_object_object_get(counters, "subscribers")) == 3 &&
            json_object_get_int64(json_object_object_get(counters, "durable_routed")) == 1 &&
            json_object_get_int64(json_object_object_get(counters, "durable_delivered")) == 1,
        "counters: %s", json_object_to_json_string(counters));
  json_object_put(counters);

  rc = tc_domain_purge(rt, 0, &out, &err);
  CHECK(rc == TC_OK && out && json_object_get_int(json_object_object_get(out, "purged")) >= 1, "purged");
  json_object_put(out);
  tc_runtime_free(rt);
}
