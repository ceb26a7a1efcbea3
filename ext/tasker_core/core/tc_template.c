/*
 * tc_template.c - validates task templates into their normalized form and registers them.
 *
 * The normalized form is what the database stores in named_tasks.configuration and what the
 * SQL functions read: every step has name, type, handler {callable, method, initialization},
 * dependencies, retry {retryable, max_attempts, backoff, backoff_base_ms, max_backoff_ms} and
 * "initial" (created together with the task).
 */
#include <stdio.h>
#include <string.h>

#include "tc_internal.h"

#define TC_MAX_STALE_MINUTES 525600 /* a year, as the worker's staleness_threshold_minutes */

typedef struct {
  char label[TC_NAMESPACE_MAX + 4 * (TC_TEMPLATE_NAME_MAX + TC_TEMPLATE_VERSION_MAX) + 3]; /* "ns/name@version" */
  tc_error_t *err;
} ctx_t;

static int fail(ctx_t *c, const char *step, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ctx_t *c, const char *step, const char *fmt, ...) {
  char detail[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  if (step)
    return tc_error_set(c->err, TC_ETEMPLATE, "template %s, step '%s': %s", c->label, step, detail);
  return tc_error_set(c->err, TC_ETEMPLATE, "template %s: %s", c->label, detail);
}

static bool is_str(json_object *v) { return v && json_object_is_type(v, json_type_string); }

/* A string's length in characters, as the varchar columns count it. */
static size_t chars(json_object *v) {
  return tc_utf8_chars(json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

/* Adds key = a copy of src's value (a new reference) to dst when src has it. */
static int copy_key(json_object *dst, json_object *src, const char *key) {
  json_object *v = tc_json_get(src, key);
  if (!v) return 0;
  json_object *copy = NULL;
  if (json_object_deep_copy(v, &copy, NULL) != 0) return -1;
  return json_object_object_add(dst, key, copy);
}

static bool valid_identifier(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  if (!(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z'))) return false;
  for (size_t i = 1; i < n; i++) {
    char ch = s[i];
    if (!(ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
      return false;
  }
  return true;
}

/* Reads an optional integer within [lo, hi] into *value. */
static int opt_int(ctx_t *c, const char *step, json_object *obj, const char *key, int lo, int hi,
                   int *value) {
  json_object *v = tc_json_get(obj, key);
  if (!v) return TC_OK;
  if (!json_object_is_type(v, json_type_int))
    return fail(c, step, "%s must be an integer", key);
  int64_t n = json_object_get_int64(v);
  if (n < lo || n > hi) return fail(c, step, "%s must be between %d and %d (got %lld)", key, lo, hi, (long long)n);
  *value = (int)n;
  return TC_OK;
}

static const char *const step_types[] = {"standard", "decision", "deferred_convergence", "batchable",
                                         "batch_worker", NULL};
static const char *const backoffs[] = {"none", "linear", "exponential", "fibonacci", NULL};
static const char *const strategies[] = {"strict", "caller_provided", "always_unique", NULL};

static bool one_of(const char *s, const char *const *list) {
  for (; *list; list++)
    if (strcmp(s, *list) == 0) return true;
  return false;
}

static int normalize_retry(ctx_t *c, const char *step, json_object *raw, json_object **out) {
  int max_attempts = 3, base_ms = 1000, max_ms = 30000;
  bool retryable = true;
  const char *backoff = "exponential";
  if (raw) {
    if (!json_object_is_type(raw, json_type_object)) return fail(c, step, "retry must be a mapping");
    json_object *r = tc_json_get(raw, "retryable");
    if (r) {
      if (!json_object_is_type(r, json_type_boolean)) return fail(c, step, "retry.retryable must be true or false");
      retryable = json_object_get_boolean(r);
    }
    int rc;
    if ((rc = opt_int(c, step, raw, "max_attempts", 1, 100, &max_attempts)) != TC_OK) return rc;
    if ((rc = opt_int(c, step, raw, "backoff_base_ms", 100, 3600000, &base_ms)) != TC_OK) return rc;
    if ((rc = opt_int(c, step, raw, "max_backoff_ms", 1000, 3600000, &max_ms)) != TC_OK) return rc;
    json_object *b = tc_json_get(raw, "backoff");
    if (b) {
      if (!is_str(b) || !one_of(json_object_get_string(b), backoffs))
        return fail(c, step, "retry.backoff must be one of none, linear, exponential, fibonacci");
      backoff = json_object_get_string(b);
    }
  }
  json_object *retry = json_object_new_object();
  if (!retry) return tc_error_set(c->err, TC_ENOMEM, "out of memory");
  json_object_object_add(retry, "retryable", json_object_new_boolean(retryable));
  json_object_object_add(retry, "max_attempts", json_object_new_int(max_attempts));
  json_object_object_add(retry, "backoff", json_object_new_string(backoff));
  json_object_object_add(retry, "backoff_base_ms", json_object_new_int(base_ms));
  json_object_object_add(retry, "max_backoff_ms", json_object_new_int(max_ms));
  *out = retry;
  return TC_OK;
}

/* Normalizes one step (without cross-step checks). */
/* publishes_events (SPEC 8.2): each entry {name, description, condition (success), delivery_mode
 * (durable), schema, publisher}, with the defaults filled in; a name appears once per step. */
static int normalize_events(ctx_t *c, const char *sname, json_object *raw, json_object **out) {
  static const char *const conditions[] = {"success", "failure", "retryable_failure", "permanent_failure", "always", NULL};
  static const char *const modes[] = {"durable", "fast", "broadcast", NULL};
  *out = NULL;
  json_object *list = json_object_new_array();
  if (!list) return tc_error_set(c->err, TC_ENOMEM, "out of memory");
  size_t n = raw ? json_object_array_length(raw) : 0;
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx(raw, i);
    int rc = TC_OK;
    if (!e || !json_object_is_type(e, json_type_object)) {
      rc = fail(c, sname, "publishes_events[%zu] must be a mapping with a name", i);
    } else if (!is_str(tc_json_get(e, "name")) || !tc_domain_event_name_valid(json_object_get_string(tc_json_get(e, "name")))) {
      rc = fail(c, sname, "publishes_events[%zu].name must be a dotted lowercase name such as payment.processed", i);
    } else if (tc_json_get(e, "condition") &&
               (!is_str(tc_json_get(e, "condition")) || !one_of(json_object_get_string(tc_json_get(e, "condition")), conditions))) {
      rc = fail(c, sname, "publishes_events[%zu].condition must be one of success, failure, retryable_failure, "
                "permanent_failure, always", i);
    } else if (tc_json_get(e, "delivery_mode") &&
               (!is_str(tc_json_get(e, "delivery_mode")) || !one_of(json_object_get_string(tc_json_get(e, "delivery_mode")), modes))) {
      rc = fail(c, sname, "publishes_events[%zu].delivery_mode must be one of durable, fast, broadcast", i);
    } else if (tc_json_get(e, "schema") && !json_object_is_type(tc_json_get(e, "schema"), json_type_object) &&
               !json_object_is_type(tc_json_get(e, "schema"), json_type_boolean)) {
      rc = fail(c, sname, "publishes_events[%zu].schema must be a JSON Schema mapping", i);
    } else if (tc_json_get(e, "publisher") && !is_str(tc_json_get(e, "publisher"))) {
      rc = fail(c, sname, "publishes_events[%zu].publisher must be a class name", i);
    } else if (tc_json_get(e, "description") && !is_str(tc_json_get(e, "description"))) {
      rc = fail(c, sname, "publishes_events[%zu].description must be a string", i);
    } else {
      const char *name = json_object_get_string(tc_json_get(e, "name"));
      for (size_t j = 0; j < json_object_array_length(list); j++)
        if (strcmp(json_object_get_string(tc_json_get(json_object_array_get_idx(list, j), "name")), name) == 0)
          rc = fail(c, sname, "publishes_events lists '%s' twice", name);
    }
    json_object *ne = rc == TC_OK ? json_object_new_object() : NULL;
    if (rc == TC_OK && (!ne || json_object_array_add(list, ne) != 0)) {
      json_object_put(ne);
      rc = tc_error_set(c->err, TC_ENOMEM, "out of memory");
    }
    if (rc != TC_OK) {
      json_object_put(list);
      return rc;
    }
    int bad = copy_key(ne, e, "name") | copy_key(ne, e, "description") | copy_key(ne, e, "schema") |
              copy_key(ne, e, "publisher");
    json_object *given_cond = tc_json_get(e, "condition"), *given_mode = tc_json_get(e, "delivery_mode");
    json_object *cond = json_object_new_string(given_cond ? json_object_get_string(given_cond) : "success");
    json_object *mode = json_object_new_string(given_mode ? json_object_get_string(given_mode) : "durable");
    bad |= !cond || json_object_object_add(ne, "condition", cond) != 0;
    bad |= !mode || json_object_object_add(ne, "delivery_mode", mode) != 0;
    if (bad) {
      json_object_put(list);
      return tc_error_set(c->err, TC_ENOMEM, "out of memory");
    }
  }
  *out = list;
  return TC_OK;
}

static int normalize_step(ctx_t *c, json_object *raw, int index, json_object **out) {
  char fallback[32];
  snprintf(fallback, sizeof fallback, "#%d", index + 1);
  if (!json_object_is_type(raw, json_type_object))
    return fail(c, fallback, "each step must be a mapping");
  json_object *name = tc_json_get(raw, "name");
  if (!is_str(name) || json_object_get_string_len(name) == 0)
    return fail(c, fallback, "name is required and must be a string");
  const char *sname = json_object_get_string(name);
  if (chars(name) > TC_STEP_NAME_MAX) return fail(c, fallback, "name is longer than %d characters", TC_STEP_NAME_MAX);

  json_object *handler = tc_json_get(raw, "handler");
  if (!handler || !json_object_is_type(handler, json_type_object))
    return fail(c, sname, "handler is required and must be a mapping with a callable");
  json_object *callable = tc_json_get(handler, "callable");
  if (!is_str(callable) || json_object_get_string_len(callable) == 0)
    return fail(c, sname, "handler.callable is required");
  json_object *method = tc_json_get(handler, "method");
  if (method && (!is_str(method) || json_object_get_string_len(method) == 0))
    return fail(c, sname, "handler.method must be a non-empty string");
  if (method && chars(method) > TC_HANDLER_METHOD_MAX)
    return fail(c, sname, "handler.method is longer than %d characters", TC_HANDLER_METHOD_MAX);
  json_object *init = tc_json_get(handler, "initialization");
  if (init && !json_object_is_type(init, json_type_object))
    return fail(c, sname, "handler.initialization must be a mapping");

  json_object *type = tc_json_get(raw, "type");
  if (!type) type = tc_json_get(raw, "step_type");
  if (type && (!is_str(type) || !one_of(json_object_get_string(type), step_types)))
    return fail(c, sname,
                "type must be one of standard, decision, deferred_convergence, batchable, batch_worker");
  if (type && strcmp(json_object_get_string(type), "batch_worker") == 0 && chars(name) > TC_BATCH_WORKER_NAME_MAX)
    return fail(c, sname,
                "a batch_worker step's name is longer than %d characters (its workers are named <name>_<batch_id>, "
                "a batch_id has up to %d, a step name up to %d)", TC_BATCH_WORKER_NAME_MAX, TC_BATCH_ID_MAX,
                TC_STEP_NAME_MAX);

  json_object *deps = tc_json_get(raw, "dependencies");
  if (!deps) deps = tc_json_get(raw, "depends_on");
  if (deps && !json_object_is_type(deps, json_type_array))
    return fail(c, sname, "dependencies must be a list of step names");
  for (size_t i = 0; deps && i < json_object_array_length(deps); i++)
    if (!is_str(json_object_array_get_idx(deps, i)))
      return fail(c, sname, "dependencies must be a list of step names");

  json_object *timeout = tc_json_get(raw, "timeout_seconds");
  if (timeout && (!json_object_is_type(timeout, json_type_int) || json_object_get_int64(timeout) < 1))
    return fail(c, sname, "timeout_seconds must be a positive integer");
  json_object *events = tc_json_get(raw, "publishes_events");
  if (events && !json_object_is_type(events, json_type_array))
    return fail(c, sname, "publishes_events must be a list");
  json_object *batch = tc_json_get(raw, "batch_config");
  if (batch && !json_object_is_type(batch, json_type_object))
    return fail(c, sname, "batch_config must be a mapping");
  /* What the engine's SQL reads of batch_config (batches.sql). */
  static const char *const failure_strategies[] = {"continue_on_failure", "fail_fast", "isolate", NULL};
  json_object *strategy = batch ? tc_json_get(batch, "failure_strategy") : NULL;
  if (strategy && (!is_str(strategy) || !one_of(json_object_get_string(strategy), failure_strategies)))
    return fail(c, sname, "batch_config.failure_strategy must be one of continue_on_failure, fail_fast, isolate");
  json_object *cursor_field = batch ? tc_json_get(batch, "cursor_field") : NULL;
  if (cursor_field && (!is_str(cursor_field) || json_object_get_string_len(cursor_field) == 0))
    return fail(c, sname, "batch_config.cursor_field must be a non-empty string");

  json_object *retry = NULL;
  int rc = normalize_retry(c, sname, tc_json_get(raw, "retry"), &retry);
  if (rc != TC_OK) return rc;
  json_object *published = NULL;
  rc = normalize_events(c, sname, events, &published);
  if (rc != TC_OK) {
    json_object_put(retry);
    return rc;
  }

  json_object *step = json_object_new_object();
  json_object *h = json_object_new_object();
  json_object *dep_list = json_object_new_array();
  if (!step || !h || !dep_list) {
    json_object_put(step);
    json_object_put(h);
    json_object_put(dep_list);
    json_object_put(retry);
    json_object_put(published);
    return tc_error_set(c->err, TC_ENOMEM, "out of memory");
  }
  json_object_object_add(step, "name", json_object_new_string(sname));
  copy_key(step, raw, "description");
  json_object_object_add(step, "type", json_object_new_string(type ? json_object_get_string(type) : "standard"));
  json_object_object_add(h, "callable", json_object_new_string(json_object_get_string(callable)));
  json_object_object_add(h, "method", json_object_new_string(method ? json_object_get_string(method) : "call"));
  copy_key(h, handler, "resolver");
  if (init) {
    copy_key(h, handler, "initialization");
  } else {
    json_object_object_add(h, "initialization", json_object_new_object());
  }
  json_object_object_add(step, "handler", h);
  /* A dependency listed twice is refused by check_graph, which has the name index. */
  for (size_t i = 0; deps && i < json_object_array_length(deps); i++) {
    json_object *d = json_object_new_string(json_object_get_string(json_object_array_get_idx(deps, i)));
    if (!d || json_object_array_add(dep_list, d) != 0) {
      json_object_put(d);
      json_object_put(step);
      json_object_put(dep_list);
      json_object_put(retry);
      json_object_put(published);
      return tc_error_set(c->err, TC_ENOMEM, "out of memory");
    }
  }
  json_object_object_add(step, "dependencies", dep_list);
  json_object_object_add(step, "retry", retry);
  copy_key(step, raw, "timeout_seconds");
  copy_key(step, raw, "system_dependency");
  copy_key(step, raw, "batch_config");
  copy_key(step, raw, "result_schema");
  json_object_object_add(step, "publishes_events", published);
  *out = step;
  return TC_OK;
}

static const char *step_name(json_object *steps, int i) {
  return json_object_get_string(tc_json_get(json_object_array_get_idx(steps, (size_t)i), "name"));
}

static const char *step_type(json_object *steps, int i) {
  return json_object_get_string(tc_json_get(json_object_array_get_idx(steps, (size_t)i), "type"));
}

static json_object *step_deps(json_object *steps, int i) {
  return tc_json_get(json_object_array_get_idx(steps, (size_t)i), "dependencies");
}

/* The index of the step called name in the name index (a JSON object name -> position), or -1. */
static int lookup(json_object *index, const char *name) {
  json_object *v = NULL;
  return json_object_object_get_ex(index, name, &v) ? json_object_get_int(v) : -1;
}

/* Cross-step checks: duplicates, unknown dependencies, type rules, cycles; then marks "initial".
 * Linear in steps and edges: names are looked up in a hash index, each step's parents are
 * resolved to positions once (parent[]), and Kahn's algorithm walks adjacency lists (child[]). */
static int check_graph(ctx_t *c, json_object *steps) {
  int n = (int)json_object_array_length(steps);
  size_t edges = 0;
  for (int i = 0; i < n; i++) edges += json_object_array_length(step_deps(steps, i));
  json_object *index = json_object_new_object();
  int *indegree = tc_calloc((size_t)n, sizeof(int));
  int *order = tc_calloc((size_t)n, sizeof(int));
  int *mark = tc_calloc((size_t)n, sizeof(int));
  bool *initial = tc_calloc((size_t)n, sizeof(bool));
  size_t *first = tc_calloc((size_t)n + 1, sizeof(size_t)); /* parents of i: parent[first[i]..first[i+1]) */
  size_t *child_first = tc_calloc((size_t)n + 1, sizeof(size_t));
  int *parent = tc_calloc(edges ? edges : 1, sizeof(int));
  int *child = tc_calloc(edges ? edges : 1, sizeof(int));
  int rc = TC_OK;
  if (!index || !indegree || !order || !mark || !initial || !first || !child_first || !parent || !child) {
    rc = tc_error_set(c->err, TC_ENOMEM, "out of memory");
    goto done;
  }
  for (int i = 0; i < n; i++) {
    const char *name = step_name(steps, i);
    if (lookup(index, name) >= 0) {
      rc = fail(c, name, "step name is used more than once");
      goto done;
    }
    json_object *pos = json_object_new_int(i);
    if (!pos || json_object_object_add(index, name, pos) != 0) {
      json_object_put(pos);
      rc = tc_error_set(c->err, TC_ENOMEM, "out of memory");
      goto done;
    }
    mark[i] = -1;
  }
  size_t e = 0;
  for (int i = 0; i < n && rc == TC_OK; i++) {
    const char *name = step_name(steps, i);
    json_object *deps = step_deps(steps, i);
    first[i] = e;
    indegree[i] = (int)json_object_array_length(deps);
    for (size_t d = 0; d < json_object_array_length(deps); d++) {
      const char *dep = json_object_get_string(json_object_array_get_idx(deps, d));
      int p = lookup(index, dep);
      if (p == i) {
        rc = fail(c, name, "a step cannot depend on itself");
        break;
      }
      if (p < 0) {
        rc = fail(c, name, "dependency '%s' is not a step of this template", dep);
        break;
      }
      if (mark[p] == i) {
        rc = fail(c, name, "dependency '%s' is listed twice", dep);
        break;
      }
      mark[p] = i;
      parent[e++] = p;
      child_first[p + 1]++;
    }
    const char *type = step_type(steps, i);
    if (rc == TC_OK && strcmp(type, "decision") == 0 && indegree[i] == 0)
      rc = fail(c, name, "a decision step needs at least one dependency");
    if (rc == TC_OK && strcmp(type, "batchable") == 0) {
      json_object *batch = tc_json_get(json_object_array_get_idx(steps, (size_t)i), "batch_config");
      json_object *wt = tc_json_get(batch, "worker_template");
      int w = is_str(wt) ? lookup(index, json_object_get_string(wt)) : -1;
      if (!is_str(wt))
        rc = fail(c, name, "a batchable step needs batch_config.worker_template");
      else if (w < 0 || strcmp(step_type(steps, w), "batch_worker") != 0)
        rc = fail(c, name, "batch_config.worker_template '%s' must name a batch_worker step",
                  json_object_get_string(wt));
    }
  }
  if (rc != TC_OK) goto done;
  first[n] = e;

  /* Adjacency lists: the children of p are child[child_first[p]..child_first[p+1]). */
  for (int p = 0; p < n; p++) child_first[p + 1] += child_first[p];
  for (int p = 0; p < n; p++) mark[p] = (int)child_first[p]; /* next free slot of p's list */
  for (int i = 0; i < n; i++)
    for (size_t k = first[i]; k < first[i + 1]; k++) child[mark[parent[k]]++] = i;

  /* Kahn's algorithm: a topological order, or the steps left over form a cycle. */
  int head = 0, tail = 0;
  for (int i = 0; i < n; i++)
    if (indegree[i] == 0) order[tail++] = i;
  while (head < tail) {
    int cur = order[head++];
    for (size_t k = child_first[cur]; k < child_first[cur + 1]; k++)
      if (--indegree[child[k]] == 0) order[tail++] = child[k];
  }
  if (tail < n) {
    char cycle[600] = "";
    for (int i = 0; i < n; i++) {
      if (indegree[i] <= 0) continue;
      if (cycle[0]) strncat(cycle, ", ", sizeof cycle - strlen(cycle) - 1);
      strncat(cycle, step_name(steps, i), sizeof cycle - strlen(cycle) - 1);
    }
    rc = fail(c, NULL, "dependency cycle among steps: %s", cycle);
    goto done;
  }

  /* A step is created with the task unless it is created at run time (batch workers, deferred
   * convergence) or lies downstream of a decision or of such a step. */
  for (int k = 0; k < n; k++) {
    int i = order[k];
    const char *type = step_type(steps, i);
    bool init = strcmp(type, "batch_worker") != 0 && strcmp(type, "deferred_convergence") != 0;
    for (size_t d = first[i]; init && d < first[i + 1]; d++) {
      int p = parent[d];
      if (!initial[p] || strcmp(step_type(steps, p), "decision") == 0) init = false;
    }
    initial[i] = init;
    json_object *flag = json_object_new_boolean(init);
    if (!flag || json_object_object_add(json_object_array_get_idx(steps, (size_t)i), "initial", flag) != 0) {
      json_object_put(flag);
      rc = tc_error_set(c->err, TC_ENOMEM, "out of memory");
      goto done;
    }
  }
done:
  json_object_put(index);
  tc_free(indegree);
  tc_free(order);
  tc_free(mark);
  tc_free(initial);
  tc_free(first);
  tc_free(child_first);
  tc_free(parent);
  tc_free(child);
  return rc;
}

int tc_template_normalize(json_object *raw, json_object **out, tc_error_t *err) {
  ctx_t c = {.err = err};
  snprintf(c.label, sizeof c.label, "(unnamed)");
  if (!raw || !json_object_is_type(raw, json_type_object))
    return tc_error_set(err, TC_ETEMPLATE, "a template must be a mapping");
  json_object *name = tc_json_get(raw, "name"), *ns = tc_json_get(raw, "namespace_name");
  json_object *version = tc_json_get(raw, "version");
  snprintf(c.label, sizeof c.label, "%s/%s@%s", is_str(ns) ? json_object_get_string(ns) : "?",
           is_str(name) ? json_object_get_string(name) : "?",
           is_str(version) ? json_object_get_string(version) : "?");
  if (!is_str(name) || json_object_get_string_len(name) == 0 || chars(name) > TC_TEMPLATE_NAME_MAX)
    return fail(&c, NULL, "name is required (a string of 1 to %d characters)", TC_TEMPLATE_NAME_MAX);
  if (!is_str(ns) || !valid_identifier(json_object_get_string(ns), TC_NAMESPACE_MAX))
    return fail(&c, NULL,
                "namespace_name is required: up to %d letters, digits or underscores, not starting with a digit",
                TC_NAMESPACE_MAX);
  if (!is_str(version) || json_object_get_string_len(version) == 0 || chars(version) > TC_TEMPLATE_VERSION_MAX)
    return fail(&c, NULL, "version is required (a string of 1 to %d characters, quote it in YAML)",
                TC_TEMPLATE_VERSION_MAX);
  json_object *desc = tc_json_get(raw, "description");
  if (desc && !is_str(desc) && !json_object_is_type(desc, json_type_null))
    return fail(&c, NULL, "description must be a string");
  json_object *strategy = tc_json_get(raw, "identity_strategy");
  if (strategy && (!is_str(strategy) || !one_of(json_object_get_string(strategy), strategies)))
    return fail(&c, NULL, "identity_strategy must be one of strict, caller_provided, always_unique");
  json_object *schema = tc_json_get(raw, "input_schema");
  if (schema && !json_object_is_type(schema, json_type_object))
    return fail(&c, NULL, "input_schema must be a mapping (a JSON Schema)");
  /* lifecycle is stored as given, but the staleness detector casts max_steps_in_process_minutes
   * (operations.sql): a value it cannot use is refused here, naming the field. */
  json_object *lifecycle = tc_json_get(raw, "lifecycle");
  if (lifecycle && !json_object_is_type(lifecycle, json_type_object) && !json_object_is_type(lifecycle, json_type_null))
    return fail(&c, NULL, "lifecycle must be a mapping");
  json_object *max_minutes = lifecycle ? tc_json_get(lifecycle, "max_steps_in_process_minutes") : NULL;
  if (max_minutes && !json_object_is_type(max_minutes, json_type_null) &&
      (!json_object_is_type(max_minutes, json_type_int) || json_object_get_int64(max_minutes) < 1 ||
       json_object_get_int64(max_minutes) > TC_MAX_STALE_MINUTES))
    return fail(&c, NULL, "lifecycle.max_steps_in_process_minutes must be an integer between 1 and %d (got %s)",
                TC_MAX_STALE_MINUTES, tc_json_str(max_minutes));
  json_object *raw_steps = tc_json_get(raw, "steps");
  if (!raw_steps || !json_object_is_type(raw_steps, json_type_array) || json_object_array_length(raw_steps) == 0)
    return fail(&c, NULL, "steps is required and must be a non-empty list");
  if (json_object_array_length(raw_steps) > TC_TEMPLATE_STEPS_MAX)
    return fail(&c, NULL, "a template may have at most %d steps", TC_TEMPLATE_STEPS_MAX);

  json_object *tpl = json_object_new_object();
  json_object *steps = json_object_new_array();
  if (!tpl || !steps) {
    json_object_put(tpl);
    json_object_put(steps);
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  }
  json_object_object_add(tpl, "name", json_object_new_string(json_object_get_string(name)));
  json_object_object_add(tpl, "namespace_name", json_object_new_string(json_object_get_string(ns)));
  json_object_object_add(tpl, "version", json_object_new_string(json_object_get_string(version)));
  if (is_str(desc)) copy_key(tpl, raw, "description");
  json_object_object_add(tpl, "identity_strategy",
                         json_object_new_string(strategy ? json_object_get_string(strategy) : "strict"));
  static const char *const passthrough[] = {"metadata", "input_schema", "lifecycle", "environments",
                                            "domain_events", "system_dependencies", "task_handler", NULL};
  for (const char *const *k = passthrough; *k; k++) copy_key(tpl, raw, *k);
  json_object_object_add(tpl, "steps", steps);

  int rc = TC_OK;
  for (size_t i = 0; i < json_object_array_length(raw_steps) && rc == TC_OK; i++) {
    json_object *step = NULL;
    rc = normalize_step(&c, json_object_array_get_idx(raw_steps, i), (int)i, &step);
    if (rc == TC_OK) json_object_array_add(steps, step);
  }
  if (rc == TC_OK) rc = check_graph(&c, steps);
  if (rc != TC_OK) {
    json_object_put(tpl);
    return rc;
  }
  *out = tpl;
  return TC_OK;
}

int tc_template_register(tc_runtime_t *rt, json_object *raw, json_object **out, tc_error_t *err) {
  json_object *tpl = NULL;
  int rc = tc_template_normalize(raw, &tpl, err);
  if (rc != TC_OK) return rc;
  const char *params[] = {tc_json_str(tpl)};
  json_object *uuid = NULL;
  rc = tc_rt_query_json(rt, "SELECT to_jsonb(tasker.register_template($1::jsonb))", 1, params, &uuid, err);
  if (rc != TC_OK) {
    json_object_put(tpl);
    return rc;
  }
  json_object *res = json_object_new_object();
  if (!res) {
    json_object_put(tpl);
    json_object_put(uuid);
    return tc_error_set(err, TC_ENOMEM, "out of memory");
  }
  json_object_object_add(res, "named_task_uuid", uuid);
  copy_key(res, tpl, "namespace_name");
  copy_key(res, tpl, "name");
  copy_key(res, tpl, "version");
  json_object_object_add(res, "step_count",
                         json_object_new_int((int)json_object_array_length(tc_json_get(tpl, "steps"))));
  json_object_put(tpl);
  tc_log(rt, TC_LOG_DEBUG, "template_registered", "registered template %s/%s@%s",
         json_object_get_string(tc_json_get(res, "namespace_name")), json_object_get_string(tc_json_get(res, "name")),
         json_object_get_string(tc_json_get(res, "version")));
  *out = res;
  return TC_OK;
}
