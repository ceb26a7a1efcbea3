/*
 * tc_redact.c - secret redaction (SPEC 6.2): a copy of a configuration whose secret-looking
 * values are replaced, with the paths it replaced. Used by config_runtime (tc_config.c).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tc_internal.h"

#define REDACTED "***REDACTED***"

static const char *const secret_words[] = {"password", "secret", "token", "key", "api_key", "private_key",
                                           "jwt_private_key", "jwt_public_key", "auth_token", "credentials",
                                           "database_url", "url", NULL};

static bool secret_key(const char *k) {
  for (int i = 0; secret_words[i]; i++)
    if (strcasestr(k, secret_words[i])) return true;
  return false;
}

static void redact_walk(json_object *v, const char *path, bool secret, json_object *paths) {
  if (json_object_is_type(v, json_type_object)) {
    json_object_object_foreach(v, k, child) {
      char sub[512];
      snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", k);
      bool s = secret || secret_key(k);
      if (s && ((json_object_is_type(child, json_type_string) && json_object_get_string_len(child) > 0) ||
                json_object_is_type(child, json_type_int) || json_object_is_type(child, json_type_double))) {
        json_object_object_add(v, k, json_object_new_string(REDACTED));
        json_object_array_add(paths, json_object_new_string(sub));
      } else {
        redact_walk(child, sub, s, paths);
      }
    }
  } else if (json_object_is_type(v, json_type_array)) {
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
      json_object *child = json_object_array_get_idx(v, i);
      char sub[512];
      snprintf(sub, sizeof sub, "%s[%zu]", path, i);
      if (secret && ((json_object_is_type(child, json_type_string) && json_object_get_string_len(child) > 0) ||
                     json_object_is_type(child, json_type_int) || json_object_is_type(child, json_type_double))) {
        json_object_array_put_idx(v, i, json_object_new_string(REDACTED));
        json_object_array_add(paths, json_object_new_string(sub));
      } else {
        redact_walk(child, sub, secret, paths);
      }
    }
  }
}

int tc_redact(json_object *in, json_object **out, json_object **paths, tc_error_t *err) {
  json_object *copy = NULL;
  if (json_object_deep_copy(in, &copy, NULL) != 0 || !copy)
    return tc_error_set(err, TC_ENOMEM, "out of memory copying the configuration");
  json_object *p = json_object_new_array();
  if (!p) {
    json_object_put(copy);
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  }
  redact_walk(copy, "", false, p);
  *out = copy;
  *paths = p;
  return TC_OK;
}

