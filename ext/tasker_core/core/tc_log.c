/*
 * tc_log.c - leveled JSON-lines logging and the log buffer a language binding drains.
 *
 * tc_log formats one JSON object per line ({"ts","level","event","message","pid", extra fields})
 * and hands it to the runtime's sink, or writes it to stderr when no sink is installed (the C
 * tests, a runtime used without a binding).
 *
 * tc_log_buffer_t is a sink for a binding whose logger may only be called on its own threads:
 * engine threads append copies of their lines to a bounded FIFO, and one consumer thread of the
 * binding peeks at the oldest lines, hands them to its logger and acknowledges them. A line leaves
 * the buffer only when acknowledged, so a consumer interrupted between peek and ack loses nothing:
 * the next peek returns the same lines. A consumer may wait in tc_log_buffer_peek, or on a pipe it
 * gives with tc_log_buffer_set_wake_fd (a thread of a language runtime that must sleep in the
 * runtime's own waits, e.g. so that signals are still handled). Lines keep the order in which they were appended, hence
 * each thread's order. When the buffer is full an appender waits a little (the consumer may be
 * busy), then writes its line to stderr and counts it: no line is dropped. Once one appender gave
 * up, later ones write to stderr at once until the consumer takes lines again, so a consumer that
 * stopped (a killed thread) costs each engine thread at most one wait.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "tc_internal.h"

int tc_log_level_parse(const char *name) {
  static const char *names[] = {"trace", "debug", "info", "warn", "error", "off"};
  if (!name) return -1;
  for (int i = 0; i <= TC_LOG_OFF; i++)
    if (strcasecmp(name, names[i]) == 0) return i;
  if (strcasecmp(name, "warning") == 0) return TC_LOG_WARN;
  return -1;
}

const char *tc_log_level_name(tc_log_level_t level) {
  static const char *names[] = {"trace", "debug", "info", "warn", "error", "off"};
  return (level >= TC_LOG_TRACE && level <= TC_LOG_OFF) ? names[level] : "info";
}

void tc_runtime_set_log_sink(tc_runtime_t *rt, tc_log_sink_fn fn, void *data) {
  pthread_mutex_lock(&rt->log_mu);
  rt->sink = fn;
  rt->sink_data = data;
  pthread_mutex_unlock(&rt->log_mu);
}

int tc_runtime_set_log_level(tc_runtime_t *rt, const char *name) {
  int level = tc_log_level_parse(name);
  if (level < 0) return TC_EINVAL;
  rt->log_level = level;
  return TC_OK;
}

bool tc_log_enabled(tc_runtime_t *rt, tc_log_level_t level) {
  return !rt || (int)level >= rt->log_level;
}

/* Builds the line and hands it to the sink (or stderr). fields, when given, are copied into the
 * line after the standard keys. */
static void emit(tc_runtime_t *rt, tc_log_level_t level, const char *event, json_object *fields, const char *msg) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[64];
  snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

  json_object *line = json_object_new_object();
  if (!line) {
    /* Out of memory: the message still reaches someone. */
    fprintf(stderr, "tasker_core %s %s: %s\n", tc_log_level_name(level), event, msg);
    return;
  }
  json_object_object_add(line, "ts", json_object_new_string(when));
  json_object_object_add(line, "level", json_object_new_string(tc_log_level_name(level)));
  json_object_object_add(line, "event", json_object_new_string(event));
  json_object_object_add(line, "message", json_object_new_string(msg));
  json_object_object_add(line, "pid", json_object_new_int((int)getpid()));
  if (fields) {
    json_object_object_foreach(fields, key, val) {
      if (!json_object_object_get_ex(line, key, NULL)) json_object_object_add(line, key, json_object_get(val));
    }
  }
  const char *text = tc_json_str(line);

  tc_log_sink_fn sink = NULL;
  void *data = NULL;
  if (rt) {
    pthread_mutex_lock(&rt->log_mu);
    sink = rt->sink;
    data = rt->sink_data;
    pthread_mutex_unlock(&rt->log_mu);
  }
  if (sink && text) {
    sink(data, level, text);
  } else {
    fprintf(stderr, "%s\n", text ? text : msg);
  }
  json_object_put(line);
}

void tc_log(tc_runtime_t *rt, tc_log_level_t level, const char *event, const char *fmt, ...) {
  if (!tc_log_enabled(rt, level)) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(rt, level, event, NULL, msg);
}

void tc_log_fields(tc_runtime_t *rt, tc_log_level_t level, const char *event, json_object *fields,
                   const char *fmt, ...) {
  if (!tc_log_enabled(rt, level)) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(rt, level, event, fields, msg);
}

/* ---- The log buffer. ---- */

typedef struct entry {
  int level;
  char *line;
} entry_t;

struct tc_log_buffer {
  pthread_mutex_t mu;
  pthread_cond_t readable;   /* a line was appended, or a wait was interrupted */
  pthread_cond_t writable;   /* lines were acknowledged */
  entry_t *ring;
  int cap, head, count;
  int wait_ms;               /* how long a full buffer makes an appender wait */
  bool stalled;              /* an appender gave up since the last ack */
  int wake_fd;               /* written to when a line arrives in an empty buffer; -1 for none */
  uint64_t appended, acked, to_stderr, max_count;
};

tc_log_buffer_t *tc_log_buffer_new(int capacity, int wait_ms) {
  if (capacity < 1) capacity = 1;
  if (wait_ms < 0) wait_ms = 0;
  tc_log_buffer_t *b = tc_calloc(1, sizeof *b);
  if (!b) return NULL;
  b->ring = tc_calloc((size_t)capacity, sizeof *b->ring);
  if (!b->ring) {
    tc_free(b);
    return NULL;
  }
  b->cap = capacity;
  b->wait_ms = wait_ms;
  b->wake_fd = -1;
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->readable, NULL);
  pthread_cond_init(&b->writable, NULL);
  return b;
}

void tc_log_buffer_free(tc_log_buffer_t *b) {
  if (!b) return;
  for (int i = 0; i < b->count; i++) tc_free(b->ring[(b->head + i) % b->cap].line);
  tc_free(b->ring);
  pthread_cond_destroy(&b->readable);
  pthread_cond_destroy(&b->writable);
  pthread_mutex_destroy(&b->mu);
  tc_free(b);
}

void tc_log_buffer_sink(void *data, tc_log_level_t level, const char *json_line) {
  tc_log_buffer_t *b = data;
  char *copy = tc_strdup(json_line);
  pthread_mutex_lock(&b->mu);
  if (copy && b->count == b->cap && !b->stalled && b->wait_ms > 0) {
    struct timespec deadline;
    tc_deadline(&deadline, b->wait_ms);
    while (b->count == b->cap && !b->stalled) {
      if (pthread_cond_timedwait(&b->writable, &b->mu, &deadline) != 0) break;
    }
  }
  if (copy && b->count < b->cap) {
    b->ring[(b->head + b->count) % b->cap] = (entry_t){.level = level, .line = copy};
    b->count++;
    b->appended++;
    if ((uint64_t)b->count > b->max_count) b->max_count = (uint64_t)b->count;
    pthread_cond_signal(&b->readable);
    /* A consumer waiting on the fd waits only once it saw the buffer empty: one byte per
     * empty -> non-empty transition wakes it. A full pipe already holds a wake-up. */
    if (b->count == 1 && b->wake_fd >= 0) {
      ssize_t w = write(b->wake_fd, "x", 1);
      TC_UNUSED(w);
    }
    pthread_mutex_unlock(&b->mu);
    return;
  }
  /* Full after the wait, or out of memory: stderr, counted. */
  if (copy) b->stalled = true;
  b->to_stderr++;
  pthread_mutex_unlock(&b->mu);
  fprintf(stderr, "%s\n", json_line);
  tc_free(copy);
}

int tc_log_buffer_peek(tc_log_buffer_t *b, int timeout_ms, tc_cancel_t *cancel, tc_log_line_t *out, int max,
                       int *n) {
  *n = 0;
  struct timespec deadline;
  tc_deadline(&deadline, timeout_ms < 0 ? 0 : timeout_ms);
  int rc = TC_OK;
  pthread_mutex_lock(&b->mu);
  while (b->count == 0) {
    if (cancel && cancel->fired) {
      rc = TC_ECANCELED;
      break;
    }
    if (pthread_cond_timedwait(&b->readable, &b->mu, &deadline) != 0 && b->count == 0) {
      rc = TC_ETIMEDOUT;
      break;
    }
  }
  if (rc == TC_OK) {
    /* The entries stay in the ring until acknowledged; appenders only write behind them. */
    int k = b->count < max ? b->count : max;
    for (int i = 0; i < k; i++) {
      entry_t *e = &b->ring[(b->head + i) % b->cap];
      out[i].level = (tc_log_level_t)e->level;
      out[i].line = e->line;
    }
    *n = k;
  }
  pthread_mutex_unlock(&b->mu);
  return rc;
}

void tc_log_buffer_ack(tc_log_buffer_t *b, int n) {
  pthread_mutex_lock(&b->mu);
  if (n > b->count) n = b->count;
  for (int i = 0; i < n; i++) {
    tc_free(b->ring[b->head].line);
    b->ring[b->head].line = NULL;
    b->head = (b->head + 1) % b->cap;
  }
  b->count -= n;
  b->acked += (uint64_t)n;
  if (n > 0) {
    b->stalled = false;
    pthread_cond_broadcast(&b->writable);
  }
  pthread_mutex_unlock(&b->mu);
}

void tc_log_buffer_set_wake_fd(tc_log_buffer_t *b, int fd) {
  pthread_mutex_lock(&b->mu);
  b->wake_fd = fd;
  pthread_mutex_unlock(&b->mu);
}

void tc_log_buffer_interrupt(tc_log_buffer_t *b, tc_cancel_t *cancel) {
  if (cancel) cancel->fired = 1;
  pthread_mutex_lock(&b->mu);
  pthread_cond_broadcast(&b->readable);
  pthread_mutex_unlock(&b->mu);
}

void tc_log_buffer_stats(tc_log_buffer_t *b, tc_log_buffer_stats_t *st) {
  pthread_mutex_lock(&b->mu);
  st->capacity = b->cap;
  st->buffered = b->count;
  st->appended = b->appended;
  st->acked = b->acked;
  st->to_stderr = b->to_stderr;
  st->max_buffered = b->max_count;
  pthread_mutex_unlock(&b->mu);
}
