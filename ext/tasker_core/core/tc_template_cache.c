/*
 * tc_template_cache.c - the template services (template_get, template_validate, templates_list,
 * templates_cache_stats, templates_cache_clear, template_refresh) over a cache of the templates
 * read from the database, at most TC_TEMPLATE_CACHE_MAX, the oldest evicted first.
 *
 * Lock: o->cache.mu guards the cache; no database call runs under it.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "tc_observe.h"

#define TC_TEMPLATE_CACHE_MAX 256

int tc_template_cache_init(tc_template_cache_t *c) {
  memset(c, 0, sizeof *c);
  c->entries = tc_calloc(TC_TEMPLATE_CACHE_MAX, sizeof *c->entries);
  if (!c->entries) return -1;
  pthread_mutex_init(&c->mu, NULL);
  return 0;
}

static void entry_clear(tc_cache_entry_t *e) {
  json_object_put(e->value);
  tc_free(e->ns);
  tc_free(e->name);
  tc_free(e->version);
  memset(e, 0, sizeof *e);
}

static bool entry_is(const tc_cache_entry_t *e, const char *ns, const char *name, const char *version) {
  return strcmp(e->ns, ns) == 0 && strcmp(e->name, name) == 0 && strcmp(e->version, version) == 0;
}

void tc_template_cache_destroy(tc_template_cache_t *c) {
  if (!c->entries) return;
  for (int i = 0; i < c->n; i++) entry_clear(&c->entries[i]);
  tc_free(c->entries);
  c->entries = NULL;
  pthread_mutex_destroy(&c->mu);
}

static bool serves(json_object *status, const char *ns) {
  json_object *spaces = tc_json_get(status, "namespaces");
  for (size_t i = 0; spaces && i < json_object_array_length(spaces); i++)
    if (strcmp(json_object_get_string(json_object_array_get_idx(spaces, i)), ns) == 0) return true;
  return false;
}

json_object *tc_template_cache_stats(tc_obs_t *o) {
  json_object *st = NULL;
  tc_error_t e = {0};
  tc_worker_status(o->w, &st, &e);
  json_object *j = json_object_new_object();
  if (!j) {
    json_object_put(st);
    return NULL;
  }
  pthread_mutex_lock(&o->cache.mu);
  int64_t now = tc_now_ms(), oldest = 0;
  uint64_t accesses = 0;
  for (int i = 0; i < o->cache.n; i++) {
    if (now - o->cache.entries[i].cached_at > oldest) oldest = now - o->cache.entries[i].cached_at;
    accesses += o->cache.entries[i].access_count;
  }
  int n = o->cache.n;
  uint64_t hits = o->cache.hits, misses = o->cache.misses, evictions = o->cache.evictions;
  char maint[40];
  snprintf(maint, sizeof maint, "%s", o->cache.last_maintenance);
  pthread_mutex_unlock(&o->cache.mu);
  json_object_object_add(j, "total_cached", json_object_new_int(n));
  json_object_object_add(j, "cache_hits", json_object_new_int64((int64_t)hits));
  json_object_object_add(j, "cache_misses", json_object_new_int64((int64_t)misses));
  json_object_object_add(j, "cache_evictions", json_object_new_int64((int64_t)evictions));
  json_object_object_add(j, "oldest_entry_age_seconds", json_object_new_int64(oldest / 1000));
  json_object_object_add(j, "average_access_count", json_object_new_double(n ? (double)accesses / n : 0.0));
  json_object *spaces = tc_json_get(st, "namespaces");
  json_object_object_add(j, "supported_namespaces", spaces ? json_object_get(spaces) : json_object_new_array());
  json_object_object_add(j, "total_entries", json_object_new_int(n));
  json_object_object_add(j, "hits", json_object_new_int64((int64_t)hits));
  json_object_object_add(j, "misses", json_object_new_int64((int64_t)misses));
  json_object_object_add(j, "evictions", json_object_new_int64((int64_t)evictions));
  json_object_object_add(j, "last_maintenance", maint[0] ? json_object_new_string(maint) : NULL);
  json_object_put(st);
  return j;
}

static const char *arg_str(json_object *args, const char *key) {
  json_object *v = tc_json_get(args, key);
  return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int template_args(json_object *args, const char **ns, const char **name, const char **version,
                         tc_error_t *err) {
  *ns = arg_str(args, "namespace");
  *name = arg_str(args, "name");
  *version = arg_str(args, "version");
  if (!*ns || !**ns) return tc_error_set(err, TC_EINVAL, "namespace is required");
  if (!*name || !**name) return tc_error_set(err, TC_EINVAL, "name is required");
  if (!*version || !**version) return tc_error_set(err, TC_EINVAL, "version is required");
  return TC_OK;
}

/* Looks the template up in the cache, else reads it and caches it. *entry_out: a new reference;
 * *cached: whether it came from the cache; *age_ms, *accesses of the entry. */
static int cache_fetch(tc_obs_t *o, const char *ns, const char *name, const char *version, json_object **out,
                       bool *cached, int64_t *age_ms, uint64_t *accesses, tc_error_t *err) {
  pthread_mutex_lock(&o->cache.mu);
  for (int i = 0; i < o->cache.n; i++) {
    if (entry_is(&o->cache.entries[i], ns, name, version)) {
      o->cache.hits++;
      o->cache.entries[i].access_count++;
      *out = json_object_get(o->cache.entries[i].value);
      *cached = true;
      *age_ms = tc_now_ms() - o->cache.entries[i].cached_at;
      *accesses = o->cache.entries[i].access_count;
      pthread_mutex_unlock(&o->cache.mu);
      return TC_OK;
    }
  }
  o->cache.misses++;
  pthread_mutex_unlock(&o->cache.mu);
  json_object *value = NULL;
  int rc = tc_template_get(o->rt, ns, name, version, &value, err);
  if (rc != TC_OK) return rc;
  /* The key's copies are made before the lock; without memory the answer is simply not cached. */
  tc_cache_entry_t fresh = {.ns = tc_strdup(ns), .name = tc_strdup(name), .version = tc_strdup(version)};
  if (!fresh.ns || !fresh.name || !fresh.version) {
    entry_clear(&fresh);
  } else {
    fresh.value = json_object_get(value);
    fresh.cached_at = tc_now_ms();
    fresh.access_count = 1;
    pthread_mutex_lock(&o->cache.mu);
    int slot = -1;
    for (int i = 0; i < o->cache.n; i++)
      if (entry_is(&o->cache.entries[i], ns, name, version)) slot = i; /* another thread cached it meanwhile */
    if (slot < 0 && o->cache.n == TC_TEMPLATE_CACHE_MAX) {
      slot = 0;
      for (int i = 1; i < o->cache.n; i++)
        if (o->cache.entries[i].cached_at < o->cache.entries[slot].cached_at) slot = i;
      o->cache.evictions++;
    }
    if (slot < 0) slot = o->cache.n++;
    else entry_clear(&o->cache.entries[slot]);
    o->cache.entries[slot] = fresh;
    pthread_mutex_unlock(&o->cache.mu);
  }
  *out = value;
  *cached = false;
  *age_ms = 0;
  *accesses = 1;
  return TC_OK;
}

static json_object *handler_metadata(json_object *tpl) {
  json_object *cfg = tc_json_get(tpl, "configuration");
  json_object *hm = json_object_new_object();
  if (!hm) return NULL;
  json_object_object_add(hm, "namespace", json_object_get(tc_json_get(tpl, "namespace_name")));
  json_object_object_add(hm, "name", json_object_get(tc_json_get(tpl, "name")));
  json_object_object_add(hm, "version", json_object_get(tc_json_get(tpl, "version")));
  json_object *th = tc_json_get(cfg, "task_handler");
  json_object *callable = th ? tc_json_get(th, "callable") : NULL;
  json_object_object_add(hm, "handler_class", callable ? json_object_get(callable) : json_object_new_string(""));
  json_object *schema = tc_json_get(cfg, "input_schema");
  if (schema) json_object_object_add(hm, "config_schema", json_object_get(schema));
  json_object_object_add(hm, "registered_at", json_object_get(tc_json_get(tpl, "registered_at")));
  return hm;
}

json_object *tc_template_cache_get(tc_obs_t *o, json_object *args, tc_error_t *err) {
  const char *ns, *name, *version;
  if (template_args(args, &ns, &name, &version, err) != TC_OK) return NULL;
  json_object *tpl = NULL;
  bool cached = false;
  int64_t age = 0;
  uint64_t accesses = 0;
  if (cache_fetch(o, ns, name, version, &tpl, &cached, &age, &accesses, err) != TC_OK) return NULL;
  json_object *j = json_object_new_object(), *t = json_object_new_object();
  if (!j || !t) {
    json_object_put(j);
    json_object_put(t);
    json_object_put(tpl);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  /* handler.initialization carries credentials (API keys, tokens, URLs with passwords): the
   * answer gets a redacted copy, the cache and the handlers keep the real values. */
  json_object *cfg = tc_json_get(tpl, "configuration");
  json_object *shown = NULL, *paths = json_object_new_array();
  if (!paths || (cfg && json_object_deep_copy(cfg, &shown, NULL) != 0) ||
      tc_redact_in_place(shown, "initialization", paths, err) != TC_OK) {
    json_object_put(paths);
    json_object_put(shown);
    json_object_put(j);
    json_object_put(t);
    json_object_put(tpl);
    if (err && err->code == TC_OK) tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  json_object_put(paths);
  json_object_object_add(t, "template", shown);
  json_object_object_add(t, "environment", json_object_new_string(o->environment));
  json_object_object_add(t, "resolved_at", tc_obs_timestamp());
  json_object_object_add(j, "template", t);
  json_object_object_add(j, "handler_metadata", handler_metadata(tpl));
  json_object_object_add(j, "cached", json_object_new_boolean(cached));
  json_object_object_add(j, "cache_age_seconds", json_object_new_int64(age / 1000));
  json_object_object_add(j, "access_count", json_object_new_int64((int64_t)accesses));
  json_object_put(tpl);
  return j;
}

/* A handler callable the host can look up: a class name, a registered key or a dotted path, so
 * any non-empty name without spaces or control characters (the host checks it resolves). */
static bool callable_name(const char *s) {
  if (!s || !*s) return false;
  for (const char *p = s; *p; p++)
    if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) return false;
  return true;
}

json_object *tc_template_cache_validate(tc_obs_t *o, json_object *args, tc_error_t *err) {
  const char *ns, *name, *version;
  if (template_args(args, &ns, &name, &version, err) != TC_OK) return NULL;
  json_object *tpl = NULL;
  bool cached;
  int64_t age;
  uint64_t accesses;
  if (cache_fetch(o, ns, name, version, &tpl, &cached, &age, &accesses, err) != TC_OK) return NULL;
  json_object *errors = json_object_new_array(), *handlers = json_object_new_array(), *caps = json_object_new_array();
  json_object *j = json_object_new_object();
  if (!errors || !handlers || !caps || !j) {
    json_object_put(errors);
    json_object_put(handlers);
    json_object_put(caps);
    json_object_put(j);
    json_object_put(tpl);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  json_object *cfg = tc_json_get(tpl, "configuration");
  json_object *normalized = NULL;
  tc_error_t verr = {0};
  if (tc_template_normalize(cfg, &normalized, &verr) != TC_OK) json_object_array_add(errors, json_object_new_string(verr.message));
  json_object_put(normalized);
  json_object *steps = tc_json_get(cfg, "steps");
  bool decision = false, batch = false;
  for (size_t i = 0; steps && i < json_object_array_length(steps); i++) {
    json_object *step = json_object_array_get_idx(steps, i);
    const char *callable = json_object_get_string(tc_json_get(tc_json_get(step, "handler"), "callable"));
    const char *type = json_object_get_string(tc_json_get(step, "type"));
    if (type && strcmp(type, "decision") == 0) decision = true;
    if (type && (strcmp(type, "batchable") == 0 || strcmp(type, "batch_worker") == 0)) batch = true;
    bool seen = false;
    for (size_t k = 0; callable && k < json_object_array_length(handlers); k++)
      if (strcmp(json_object_get_string(json_object_array_get_idx(handlers, k)), callable) == 0) seen = true;
    if (callable && !seen) json_object_array_add(handlers, json_object_new_string(callable));
    if (!callable_name(callable)) {
      char msg[400];
      snprintf(msg, sizeof msg, "step %s: handler callable %s is not a handler name", json_object_get_string(tc_json_get(step, "name")),
               callable ? callable : "(missing)");
      json_object_array_add(errors, json_object_new_string(msg));
    }
  }
  json_object *st = NULL;
  tc_error_t e = {0};
  if (tc_worker_status(o->w, &st, &e) == TC_OK && !serves(st, ns)) {
    char msg[200];
    snprintf(msg, sizeof msg, "namespace %s is not served by this worker", ns);
    json_object_array_add(errors, json_object_new_string(msg));
  }
  json_object_put(st);
  json_object_array_add(caps, json_object_new_string("step_execution"));
  if (decision) json_object_array_add(caps, json_object_new_string("decision_points"));
  if (batch) json_object_array_add(caps, json_object_new_string("batch_processing"));
  bool valid = json_object_array_length(errors) == 0;
  json_object_object_add(j, "valid", json_object_new_boolean(valid));
  json_object_object_add(j, "errors", errors);
  json_object_object_add(j, "issues", json_object_get(errors));
  json_object_object_add(j, "required_capabilities", caps);
  json_object_object_add(j, "step_handlers", handlers);
  json_object_object_add(j, "namespace", json_object_new_string(ns));
  json_object_object_add(j, "name", json_object_new_string(name));
  json_object_object_add(j, "version", json_object_new_string(version));
  json_object_object_add(j, "handler_count", json_object_new_int((int)json_object_array_length(handlers)));
  json_object_object_add(j, "handler_metadata", handler_metadata(tpl));
  json_object_put(tpl);
  return j;
}

json_object *tc_template_cache_list(tc_obs_t *o, json_object *args, tc_error_t *err) {
  const char *filter = arg_str(args, "namespace");
  json_object *incl = tc_json_get(args, "include_cache_stats");
  json_object *all = NULL;
  if (tc_template_list(o->rt, filter && *filter ? filter : NULL, &all, err) != TC_OK) return NULL;
  json_object *st = NULL;
  if (tc_worker_status(o->w, &st, err) != TC_OK) {
    json_object_put(all);
    return NULL;
  }
  json_object *mine = json_object_new_array(), *j = json_object_new_object(), *caps = json_object_new_array();
  if (!mine || !j || !caps) {
    json_object_put(mine);
    json_object_put(j);
    json_object_put(caps);
    json_object_put(all);
    json_object_put(st);
    tc_error_set(err, TC_ENOMEM, "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < json_object_array_length(all); i++) {
    json_object *t = json_object_array_get_idx(all, i);
    if (serves(st, json_object_get_string(tc_json_get(t, "namespace_name")))) json_object_array_add(mine, json_object_get(t));
  }
  const char *cap_names[] = {"step_execution", "decision_points", "batch_processing", "checkpoints", "retries"};
  for (size_t i = 0; i < 5; i++) json_object_array_add(caps, json_object_new_string(cap_names[i]));
  json_object *spaces = tc_json_get(st, "namespaces");
  json_object_object_add(j, "supported_namespaces", spaces ? json_object_get(spaces) : json_object_new_array());
  json_object_object_add(j, "template_count", json_object_new_int((int)json_object_array_length(mine)));
  json_object_object_add(j, "templates", mine);
  if (incl && json_object_get_boolean(incl)) json_object_object_add(j, "cache_stats", tc_template_cache_stats(o));
  json_object_object_add(j, "worker_capabilities", caps);
  json_object_put(all);
  json_object_put(st);
  return j;
}

static json_object *cache_operation(tc_obs_t *o, const char *op, bool success, const char *message) {
  json_object *j = json_object_new_object();
  if (!j) return NULL;
  json_object_object_add(j, "operation", json_object_new_string(op));
  json_object_object_add(j, "success", json_object_new_boolean(success));
  json_object_object_add(j, "message", json_object_new_string(message));
  json_object_object_add(j, "timestamp", tc_obs_timestamp());
  json_object_object_add(j, "cache_stats", tc_template_cache_stats(o));
  return j;
}

json_object *tc_template_cache_clear(tc_obs_t *o) {
  pthread_mutex_lock(&o->cache.mu);
  int n = o->cache.n;
  for (int i = 0; i < n; i++) entry_clear(&o->cache.entries[i]);
  o->cache.n = 0;
  o->cache.evictions += (uint64_t)n;
  tc_obs_now_iso(o->cache.last_maintenance);
  pthread_mutex_unlock(&o->cache.mu);
  char msg[128];
  snprintf(msg, sizeof msg, "cleared %d cached templates", n);
  return cache_operation(o, "clear", true, msg);
}

json_object *tc_template_cache_refresh(tc_obs_t *o, json_object *args) {
  const char *ns, *name, *version;
  tc_error_t e = {0};
  if (template_args(args, &ns, &name, &version, &e) != TC_OK) return cache_operation(o, "refresh", false, e.message);
  pthread_mutex_lock(&o->cache.mu);
  for (int i = 0; i < o->cache.n; i++) {
    if (entry_is(&o->cache.entries[i], ns, name, version)) {
      entry_clear(&o->cache.entries[i]);
      o->cache.entries[i] = o->cache.entries[--o->cache.n];
      memset(&o->cache.entries[o->cache.n], 0, sizeof o->cache.entries[0]);
      o->cache.evictions++;
      break;
    }
  }
  tc_obs_now_iso(o->cache.last_maintenance);
  pthread_mutex_unlock(&o->cache.mu);
  json_object *tpl = NULL;
  bool cached;
  int64_t age;
  uint64_t accesses;
  if (cache_fetch(o, ns, name, version, &tpl, &cached, &age, &accesses, &e) != TC_OK)
    return cache_operation(o, "refresh", false, e.message);
  json_object_put(tpl);
  char msg[400];
  snprintf(msg, sizeof msg, "template %.29s/%.255s@%.50s reloaded from the database", ns, name, version);
  return cache_operation(o, "refresh", true, msg);
}

