/*
 * tc_domain.c - domain events (SPEC 8.2): publishing to the outbox, leased reads and
 * acknowledgements by named consumers, purging, and the runtime's routing counters.
 *
 * A step's declared events travel in its result envelope and are written by complete_and_claim in
 * the transaction that stores the result (sql/functions/result.sql); this file serves everything else:
 * events published outside a result, and the consumer side. Fast events never reach the database:
 * the language's in-process bus delivers them and reports what it did through tc_domain_count, so
 * metrics_events (FFI and HTTP alike) shows one set of counters.
 */
#include <stdio.h>
#include <string.h>

#include "tc_internal.h"

static const char *const COUNTERS[TC_DOMAIN_COUNTERS] = {
    "durable_routed", "fast_routed", "broadcast_routed", "fast_delivery_errors", "routing_errors",
    "fast_dispatched", "fast_dropped", "subscriber_errors", "durable_delivered", "subscribers"};

bool tc_domain_event_name_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n < 3 || n > 128 || s[0] == '.' || s[n - 1] == '.' || !strchr(s, '.')) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (ch == '.' && s[i + 1] == '.') return false;
    if (!(ch == '.' || ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))) return false;
  }
  return true;
}

/* A consumer name: 1-64 characters of letters, digits, '_', '-', '.'. */
static bool consumer_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!(ch == '_' || ch == '-' || ch == '.' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9')))
      return false;
  }
  return true;
}

static bool is_object_or_absent(json_object *v) { return !v || json_object_is_type(v, json_type_object); }

int tc_domain_publish(tc_runtime_t *rt, json_object *event, json_object **out, tc_error_t *err) {
  if (!rt || !out) return tc_error_set(err, TC_EINVAL, "runtime and out are required");
  if (!event || !json_object_is_type(event, json_type_object))
    return tc_error_set(err, TC_EINVAL, "the domain event must be an object");
  const char *name = json_object_get_string(tc_json_get(event, "event_name"));
  if (!json_object_is_type(tc_json_get(event, "event_name"), json_type_string) || !tc_domain_event_name_valid(name))
    return tc_error_set(err, TC_EINVAL, "event_name must be a dotted lowercase name such as payment.processed");
  const char *id = json_object_get_string(tc_json_get(event, "event_id"));
  if (!json_object_is_type(tc_json_get(event, "event_id"), json_type_string) || !tc_uuid_valid(id))
    return tc_error_set(err, TC_EINVAL, "event_id must be a UUID");
  json_object *mode = tc_json_get(event, "delivery_mode");
  const char *m = mode ? json_object_get_string(mode) : "durable";
  if (mode && !json_object_is_type(mode, json_type_string))
    return tc_error_set(err, TC_EINVAL, "delivery_mode must be one of durable, broadcast");
  if (strcmp(m, "fast") == 0)
    return tc_error_set(err, TC_EINVAL, "delivery_mode fast is not stored: the in-process bus delivers it");
  if (strcmp(m, "durable") != 0 && strcmp(m, "broadcast") != 0)
    return tc_error_set(err, TC_EINVAL, "delivery_mode must be one of durable, broadcast");
  if (!is_object_or_absent(tc_json_get(event, "payload")))
    return tc_error_set(err, TC_EINVAL, "payload must be an object");
  json_object *meta = tc_json_get(event, "metadata");
  if (!is_object_or_absent(meta)) return tc_error_set(err, TC_EINVAL, "metadata must be an object");
  static const char *const uuids[] = {"task_uuid", "step_uuid"};
  for (size_t i = 0; i < 2; i++) {
    json_object *u = tc_json_get(meta, uuids[i]);
    if (u && !(json_object_is_type(u, json_type_string) && tc_uuid_valid(json_object_get_string(u))))
      return tc_error_set(err, TC_EINVAL, "metadata.%s must be a UUID", uuids[i]);
  }
  const char *params[] = {tc_json_str(event)};
  if (!params[0]) return tc_error_set(err, TC_ENOMEM, "out of memory");
  int rc = tc_rt_query_json(rt, "SELECT tasker.publish_domain_event($1::jsonb)", 1, params, out, err);
  /* Stored in the outbox: durable_routed, whatever the mode (a broadcast event's in-process half is
   * counted by the language bus as broadcast_routed). */
  if (rc == TC_OK && json_object_get_boolean(tc_json_get(*out, "written"))) tc_domain_count(rt, "durable_routed", 1);
  return rc;
}

/* Appends the Postgres array literal of modes (validated names) to buf. */
static int modes_literal(json_object *modes, char *buf, size_t cap, tc_error_t *err) {
  if (!modes) {
    snprintf(buf, cap, "{durable,broadcast}");
    return TC_OK;
  }
  if (!json_object_is_type(modes, json_type_array) || json_object_array_length(modes) == 0 ||
      json_object_array_length(modes) > 2)
    return tc_error_set(err, TC_EINVAL, "modes must be a list of durable, broadcast");
  size_t used = (size_t)snprintf(buf, cap, "{");
  for (size_t i = 0; i < json_object_array_length(modes); i++) {
    json_object *v = json_object_array_get_idx(modes, i);
    const char *s = json_object_get_string(v);
    if (!json_object_is_type(v, json_type_string) || (strcmp(s, "durable") != 0 && strcmp(s, "broadcast") != 0))
      return tc_error_set(err, TC_EINVAL, "modes must be a list of durable, broadcast");
    used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? "," : "", s);
  }
  snprintf(buf + used, cap - used, "}");
  return TC_OK;
}

int tc_domain_read(tc_runtime_t *rt, const char *consumer, int limit, int visibility_seconds, json_object *modes,
                   json_object **out, tc_error_t *err) {
  if (!rt || !out) return tc_error_set(err, TC_EINVAL, "runtime and out are required");
  if (!consumer_valid(consumer))
    return tc_error_set(err, TC_EINVAL, "consumer must be 1-64 letters, digits, '_', '-' or '.'");
  if (limit < 1 || limit > 1000) return tc_error_set(err, TC_EINVAL, "limit must be between 1 and 1000");
  if (visibility_seconds < 1 || visibility_seconds > 86400)
    return tc_error_set(err, TC_EINVAL, "visibility_seconds must be between 1 and 86400");
  char lit[40];
  int rc = modes_literal(modes, lit, sizeof lit, err);
  if (rc != TC_OK) return rc;
  char l[16], v[16];
  snprintf(l, sizeof l, "%d", limit);
  snprintf(v, sizeof v, "%d", visibility_seconds);
  const char *params[] = {consumer, l, v, lit};
  return tc_rt_query_json(rt, "SELECT tasker.read_domain_events($1, $2::integer, $3::integer, $4::text[])", 4,
                          params, out, err);
}

int tc_domain_ack(tc_runtime_t *rt, const char *consumer, json_object *event_ids, json_object **out,
                  tc_error_t *err) {
  if (!rt || !out) return tc_error_set(err, TC_EINVAL, "runtime and out are required");
  if (!consumer_valid(consumer))
    return tc_error_set(err, TC_EINVAL, "consumer must be 1-64 letters, digits, '_', '-' or '.'");
  if (!event_ids || !json_object_is_type(event_ids, json_type_array))
    return tc_error_set(err, TC_EINVAL, "event_ids must be a list of UUIDs");
  size_t n = json_object_array_length(event_ids);
  if (n > 1000) return tc_error_set(err, TC_EINVAL, "event_ids may hold at most 1000 UUIDs");
  char *lit = tc_malloc(n * 38 + 3);
  if (!lit) return tc_error_set(err, TC_ENOMEM, "out of memory");
  size_t used = 0;
  lit[used++] = '{';
  for (size_t i = 0; i < n; i++) {
    json_object *v = json_object_array_get_idx(event_ids, i);
    const char *s = json_object_get_string(v);
    if (!json_object_is_type(v, json_type_string) || !tc_uuid_valid(s)) {
      tc_free(lit);
      return tc_error_set(err, TC_EINVAL, "event_ids[%zu] must be a UUID", i);
    }
    if (i) lit[used++] = ',';
    memcpy(lit + used, s, 36);
    used += 36;
  }
  lit[used++] = '}';
  lit[used] = '\0';
  const char *params[] = {consumer, lit};
  int rc = tc_rt_query_json(rt,
                            "SELECT jsonb_build_object('acknowledged', tasker.ack_domain_events($1, $2::uuid[]))",
                            2, params, out, err);
  tc_free(lit);
  if (rc == TC_OK) tc_domain_count(rt, "durable_delivered", json_object_get_int64(tc_json_get(*out, "acknowledged")));
  return rc;
}

int tc_domain_purge(tc_runtime_t *rt, int older_than_seconds, json_object **out, tc_error_t *err) {
  if (!rt || !out) return tc_error_set(err, TC_EINVAL, "runtime and out are required");
  if (older_than_seconds < 0) return tc_error_set(err, TC_EINVAL, "older_than_seconds must not be negative");
  char s[16];
  snprintf(s, sizeof s, "%d", older_than_seconds);
  const char *params[] = {s};
  return tc_rt_query_json(rt,
                          "SELECT jsonb_build_object('purged', tasker.purge_domain_events("
                          "(clock_timestamp() AT TIME ZONE 'utc') - make_interval(secs => $1::integer)))",
                          1, params, out, err);
}

static int counter_index(const char *name) {
  for (int i = 0; name && i < TC_DOMAIN_COUNTERS; i++)
    if (strcmp(COUNTERS[i], name) == 0) return i;
  return -1;
}

int tc_domain_count(tc_runtime_t *rt, const char *name, int64_t delta) {
  int i = counter_index(name);
  if (!rt || i < 0) return TC_EINVAL;
  if (strcmp(name, "subscribers") == 0) __atomic_store_n(&rt->domain_counters[i], delta, __ATOMIC_RELAXED);
  else __atomic_add_fetch(&rt->domain_counters[i], delta, __ATOMIC_RELAXED);
  return TC_OK;
}

int tc_domain_counters(tc_runtime_t *rt, json_object **out) {
  if (!rt || !out) return TC_EINVAL;
  json_object *o = json_object_new_object();
  if (!o) return TC_ENOMEM;
  for (int i = 0; i < TC_DOMAIN_COUNTERS; i++) {
    json_object *v = json_object_new_int64(__atomic_load_n(&rt->domain_counters[i], __ATOMIC_RELAXED));
    if (!v || json_object_object_add(o, COUNTERS[i], v) != 0) {
      json_object_put(v);
      json_object_put(o);
      return TC_ENOMEM;
    }
  }
  *out = o;
  return TC_OK;
}
