/*
 * tc_util.c - allocation wrappers, errors, clocks and UUID v7 (logging: tc_log.c).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "tc_internal.h"

void *tc_malloc(size_t n) { return malloc(n ? n : 1); }
void *tc_calloc(size_t count, size_t n) { return calloc(count ? count : 1, n ? n : 1); }
void *tc_realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }
void tc_free(void *p) { free(p); }

char *tc_strdup(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *copy = tc_malloc(n);
  if (copy) memcpy(copy, s, n);
  return copy;
}

const char *tc_err_name(int code) {
  switch (code) {
    case TC_OK: return "TC_OK";
    case TC_EINVAL: return "TC_EINVAL";
    case TC_ENOMEM: return "TC_ENOMEM";
    case TC_EDB: return "TC_EDB";
    case TC_ENOTFOUND: return "TC_ENOTFOUND";
    case TC_ETEMPLATE: return "TC_ETEMPLATE";
    case TC_ECONFIG: return "TC_ECONFIG";
    case TC_ESTATE: return "TC_ESTATE";
    case TC_ETIMEDOUT: return "TC_ETIMEDOUT";
    case TC_ECANCELED: return "TC_ECANCELED";
    case TC_ESTOPPED: return "TC_ESTOPPED";
    default: return "TC_EUNKNOWN";
  }
}

const char *tc_err_class(int code) {
  switch (code) {
    case TC_EINVAL: return "ValidationError";
    case TC_ENOTFOUND: return "NotFoundError";
    case TC_EDB: return "DatabaseError";
    case TC_ETEMPLATE: return "TemplateError";
    case TC_ECONFIG: return "ConfigurationError";
    case TC_ESTATE: return "StateError";
    case TC_ETIMEDOUT: return "TimeoutError";
    case TC_ESTOPPED: return "WorkerStoppedError";
    default: return "FFIError";
  }
}

int tc_error_set(tc_error_t *err, int code, const char *fmt, ...) {
  if (err) {
    err->code = code;
    err->sqlstate[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* Maps a SQLSTATE to an engine error code: our TKxxx codes, bad input (every data exception, class
 * 22: bad text, numbers, dates, JSON; a check constraint; a statement too complex), else TC_EDB. */
static int code_for_sqlstate(const char *state) {
  if (!state || !*state) return TC_EDB;
  if (strcmp(state, "TK404") == 0) return TC_ENOTFOUND;
  if (strcmp(state, "TK422") == 0) return TC_EINVAL;
  if (strcmp(state, "TK409") == 0) return TC_ESTATE;
  if (strncmp(state, "22", 2) == 0 || strcmp(state, "23514") == 0 || strcmp(state, "54001") == 0) return TC_EINVAL;
  return TC_EDB;
}

int tc_error_from_pg(tc_error_t *err, PGconn *conn, PGresult *res, const char *what) {
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *raw = primary ? primary : (conn ? PQerrorMessage(conn) : "no connection");
  char msg[900];
  tc_pg_scrub(conn, raw, msg, sizeof msg); /* also trims libpq's trailing newline */
  return tc_error_from_state(err, state, what, msg);
}

int tc_error_from_state(tc_error_t *err, const char *state, const char *what, const char *raw) {
  int code = code_for_sqlstate(state);
  if (err) {
    char msg[900];
    /* Credentials in URLs or key=value pairs are masked, and a trailing newline trimmed. */
    tc_pg_scrub(NULL, raw ? raw : "unknown error", msg, sizeof msg);
    tc_error_set(err, code, "%s: %s", what, msg);
    if (state) snprintf(err->sqlstate, sizeof err->sqlstate, "%s", state);
  }
  return code;
}

int64_t tc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tc_deadline(struct timespec *ts, int64_t ms_from_now) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms_from_now / 1000;
  ts->tv_nsec += (ms_from_now % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec += 1;
    ts->tv_nsec -= 1000000000L;
  }
}

static void fill_random(unsigned char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(buf + got, n - got, 0);
    if (r > 0) {
      got += (size_t)r;
    } else if (r < 0 && errno != EINTR) {
      /* getrandom cannot fail on a supported kernel; fall back to a weak source rather than
       * leave bytes unset. */
      for (; got < n; got++) buf[got] = (unsigned char)(rand() & 0xff);
    }
  }
}

void tc_uuid_v7(char buf[37]) {
  unsigned char b[16];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)(ts.tv_nsec / 1000000);
  fill_random(b + 6, 10);
  for (int i = 0; i < 6; i++) b[i] = (unsigned char)(ms >> (40 - 8 * i));
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  static const char hex[] = "0123456789abcdef";
  int p = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) buf[p++] = '-';
    buf[p++] = hex[b[i] >> 4];
    buf[p++] = hex[b[i] & 15];
  }
  buf[p] = '\0';
}

bool tc_uuid_valid(const char *s) {
  if (!s || strlen(s) != 36) return false;
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!isxdigit((unsigned char)s[i])) {
      return false;
    }
  }
  return true;
}

size_t tc_utf8_chars(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) n++; /* every byte but a continuation byte starts one */
  return n;
}
