/*
 * tc_json.c - small json-c helpers shared by the core's files.
 */
#include "tc_internal.h"

const char *tc_json_str(json_object *obj) {
  return json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

json_object *tc_json_get(json_object *obj, const char *key) {
  json_object *v = NULL;
  return obj && json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

int tc_json_opt_int(json_object *obj, const char *key, int lo, int hi, int *value, int code, const char *what,
                    tc_error_t *err) {
  json_object *v = tc_json_get(obj, key);
  if (!v) return TC_OK;
  if (!json_object_is_type(v, json_type_int))
    return tc_error_set(err, code, "%s%s must be an integer between %d and %d", what, key, lo, hi);
  int64_t n = json_object_get_int64(v);
  if (n < lo || n > hi)
    return tc_error_set(err, code, "%s%s must be an integer between %d and %d (got %lld)", what, key, lo, hi,
                        (long long)n);
  *value = (int)n;
  return TC_OK;
}

int tc_json_opt_ints(json_object *obj, const tc_int_opt_t *opts, size_t n, int code, const char *what,
                     tc_error_t *err) {
  for (size_t i = 0; i < n; i++) {
    int rc = tc_json_opt_int(obj, opts[i].key, opts[i].lo, opts[i].hi, opts[i].value, code, what, err);
    if (rc != TC_OK) return rc;
  }
  return TC_OK;
}
