/*
 * tc_redact.c - secret redaction (SPEC 6.2): a copy of a configuration whose secret-looking
 * values are replaced, with the paths it replaced. Used by config_runtime (tc_config.c), the
 * template services (tc_template_cache.c) and the database's error messages (tc_db.c).
 *
 * Two rules:
 *  - by name: a value under a key that names a secret (password, token, dsn, webhook, ...), and
 *    everything below such a key, is replaced whole;
 *  - by shape: in any other string, the userinfo of a URL ("scheme://user:pass@host") and the value
 *    of a secret-named key=value pair ("password=...", "?token=...") are replaced, the rest kept.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tc_internal.h"

#define REDACTED "***REDACTED***"

static const char *const secret_words[] = {
    "password", "passwd", "pwd", "secret", "token", "key", "credential", "auth", "bearer", "cookie",
    "signature", "private", "dsn", "webhook", "url", "conninfo", "connection_string", "salt", NULL};

static bool secret_key(const char *k) {
  for (int i = 0; secret_words[i]; i++)
    if (strcasestr(k, secret_words[i])) return true;
  return false;
}

static bool name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.'; }

/* Appends n bytes to the growing buffer; false when out of memory. */
typedef struct {
  char *s;
  size_t len, cap;
} buf_t;

static bool put(buf_t *b, const char *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->len + n + 1) * 2;
    char *s = tc_realloc(b->s, cap);
    if (!s) return false;
    b->s = s;
    b->cap = cap;
  }
  memcpy(b->s + b->len, p, n);
  b->len += n;
  b->s[b->len] = '\0';
  return true;
}

char *tc_redact_text(const char *s, bool *oom) {
  *oom = false;
  if (!s) return NULL;
  buf_t b = {0};
  bool changed = false, ok = true;
  size_t n = strlen(s), i = 0;
  while (i < n && ok) {
    if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
      /* A URL: its authority runs to the first '/', '?', '#' or space; userinfo ends at its last '@'. */
      size_t start = i + 3, end = start, at = 0;
      while (end < n && !strchr("/?#", s[end]) && !isspace((unsigned char)s[end])) {
        if (s[end] == '@') at = end;
        end++;
      }
      ok = put(&b, s + i, 3);
      if (ok && at > start) {
        ok = put(&b, REDACTED, strlen(REDACTED));
        changed = true;
        i = at;
      } else {
        i = start;
      }
      continue;
    }
    if (s[i] == '=' && i > 0 && name_char(s[i - 1])) {
      size_t k = i;
      while (k > 0 && name_char(s[k - 1])) k--;
      char name[64];
      size_t len = i - k < sizeof name - 1 ? i - k : sizeof name - 1;
      memcpy(name, s + k, len);
      name[len] = '\0';
      size_t end = i + 1;
      while (end < n && !strchr("&; \t\r\n#\"',", s[end])) end++;
      ok = put(&b, "=", 1);
      if (ok && end > i + 1 && secret_key(name)) {
        ok = put(&b, REDACTED, strlen(REDACTED));
        changed = true;
        i = end;
      } else {
        i++;
      }
      continue;
    }
    ok = put(&b, s + i, 1);
    i++;
  }
  if (!ok || !changed) {
    tc_free(b.s);
    *oom = !ok;
    return NULL;
  }
  return b.s;
}

typedef struct {
  json_object *paths;
  const char *names_under; /* NULL: secret names count everywhere; else only below a key of this name */
  bool oom;
} walk_t;

static bool scalar(json_object *v) {
  return (json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0) ||
         json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

/* The replacement of v at path: REDACTED when secret, the string with its secrets masked when it
 * has any, else NULL (v stays). Records the path of a replacement. */
static json_object *replacement(walk_t *w, json_object *v, const char *path, bool secret) {
  json_object *r = NULL;
  if (secret && scalar(v)) {
    r = json_object_new_string(REDACTED);
  } else if (json_object_is_type(v, json_type_string)) {
    bool oom = false;
    char *masked = tc_redact_text(json_object_get_string(v), &oom);
    w->oom |= oom;
    if (!masked) return NULL;
    r = json_object_new_string(masked);
    tc_free(masked);
  } else {
    return NULL;
  }
  json_object *p = json_object_new_string(path);
  if (!r || !p || json_object_array_add(w->paths, p) != 0) {
    json_object_put(r);
    json_object_put(p);
    w->oom = true;
    return NULL;
  }
  return r;
}

static void redact_walk(walk_t *w, json_object *v, const char *path, bool secret, bool names) {
  if (json_object_is_type(v, json_type_object)) {
    json_object_object_foreach(v, k, child) {
      char sub[512];
      snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", k);
      bool on = names || (w->names_under && strcmp(k, w->names_under) == 0);
      bool s = secret || (on && secret_key(k));
      json_object *r = replacement(w, child, sub, s);
      if (r) json_object_object_add(v, k, r);
      else redact_walk(w, child, sub, s, on);
    }
  } else if (json_object_is_type(v, json_type_array)) {
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
      json_object *child = json_object_array_get_idx(v, i);
      char sub[512];
      snprintf(sub, sizeof sub, "%s[%zu]", path, i);
      json_object *r = replacement(w, child, sub, secret);
      if (r) json_object_array_put_idx(v, i, r);
      else redact_walk(w, child, sub, secret, names);
    }
  }
}

int tc_redact_in_place(json_object *v, const char *names_under, json_object *paths, tc_error_t *err) {
  walk_t w = {.paths = paths, .names_under = names_under};
  redact_walk(&w, v, "", false, names_under == NULL);
  return w.oom ? tc_error_set(err, TC_ENOMEM, "out of memory redacting secrets") : TC_OK;
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
  int rc = tc_redact_in_place(copy, NULL, p, err);
  if (rc != TC_OK) {
    json_object_put(copy);
    json_object_put(p);
    return rc;
  }
  *out = copy;
  *paths = p;
  return TC_OK;
}
