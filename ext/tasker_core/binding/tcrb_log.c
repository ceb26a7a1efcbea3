/*
 * tcrb_log.c - TaskerCore::FFI engine log: log_attach, log_wake_fd, log_next, log_ack,
 * log_stats, log_level=.
 *
 * The engine's threads never call Ruby: FFI.log_attach installs the core's log buffer as the
 * runtime's sink, engine threads append their JSON lines to it, and the Ruby log thread
 * (TaskerCore::EngineLog) takes them with log_next, hands them to the Ruby logger with the GVL,
 * then acknowledges them with log_ack. Lines are removed only when acknowledged, so a thread
 * killed between the two loses none.
 *
 * The log thread waits for lines on a pipe (log_wake_fd) with IO#wait_readable, not in a C wait
 * of its own: Ruby hands signals (SIGINT, SIGTERM) to the main thread through a thread sleeping
 * in one of Ruby's waits, and a process whose main thread waits in the engine (next_step) while
 * the log thread also waited in C would not see a signal until one of the waits ended. Ruby's
 * IO wait releases the GVL and is woken by Thread#kill, shutdown and exit. log_next can also wait
 * in C without the GVL (timeout > 0, with an unblocking function) for callers that do not mind.
 *
 * The buffer is the process's: created at the first attach, kept across runtimes (lines written
 * while a runtime shuts down are still delivered after it is freed), and forgotten after fork (the
 * parent's engine threads and its log thread do not exist in the child; the parent delivers its
 * own lines).
 */
#include <fcntl.h>
#include <unistd.h>

#include "tcrb.h"

#define LOG_CAPACITY 10000  /* lines held while the Ruby logger is slow */
#define LOG_WAIT_MS 200     /* how long a full buffer makes an engine thread wait before stderr */
#define LOG_BATCH 256       /* lines handed to Ruby per log_next */

static tc_log_buffer_t *g_log = NULL;
static pid_t g_log_pid = 0;
static int g_wake[2] = {-1, -1}; /* the pipe the buffer writes to when a line arrives */

static void close_wake(void) {
  for (int i = 0; i < 2; i++) {
    if (g_wake[i] >= 0) close(g_wake[i]);
    g_wake[i] = -1;
  }
}

static int open_wake(void) {
  if (pipe(g_wake) != 0) {
    g_wake[0] = g_wake[1] = -1;
    return -1;
  }
  for (int i = 0; i < 2; i++) {
    fcntl(g_wake[i], F_SETFD, FD_CLOEXEC);
    fcntl(g_wake[i], F_SETFL, fcntl(g_wake[i], F_GETFL) | O_NONBLOCK);
  }
  return 0;
}

/* The buffer of this process, created on first use; NULL when out of memory or out of fds. */
static tc_log_buffer_t *log_buffer(void) {
  if (g_log && g_log_pid != getpid()) {
    /* The parent's: its memory is left alone (no engine thread of the parent runs here), its
     * pipe is closed (the parent keeps its own copy). */
    g_log = NULL;
    close_wake();
  }
  if (!g_log) {
    if (open_wake() != 0) return NULL;
    g_log = tc_log_buffer_new(LOG_CAPACITY, LOG_WAIT_MS);
    if (!g_log) {
      close_wake();
      return NULL;
    }
    tc_log_buffer_set_wake_fd(g_log, g_wake[1]);
    g_log_pid = getpid();
  }
  return g_log;
}

/* FFI.log_attach -> true. Sends the running runtime's log to the buffer (log_next). */
static VALUE tcrb_log_m_attach(VALUE self) {
  tc_runtime_t *rt = tcrb_runtime();
  tc_log_buffer_t *b = log_buffer();
  if (!b) rb_raise(rb_eNoMemError, "could not create the engine log buffer (out of memory or file descriptors)");
  tc_runtime_set_log_sink(rt, tc_log_buffer_sink, b);
  return Qtrue;
}

/* FFI.log_wake_fd -> the read end of the pipe that gets a byte when a line arrives in the empty
 * buffer (owned by the binding: wrap it with IO.for_fd(fd, autoclose: false)). */
static VALUE tcrb_log_m_wake_fd(VALUE self) {
  if (!log_buffer()) rb_raise(rb_eNoMemError, "could not create the engine log buffer (out of memory or file descriptors)");
  return INT2NUM(g_wake[0]);
}

typedef struct {
  tc_log_buffer_t *b;
  int timeout_ms;
  tc_cancel_t cancel;
  tc_log_line_t lines[LOG_BATCH];
  int n;
  int rc;
} peek_t;

static void *peek_nogvl(void *arg) {
  peek_t *p = arg;
  p->rc = tc_log_buffer_peek(p->b, p->timeout_ms, &p->cancel, p->lines, LOG_BATCH, &p->n);
  return NULL;
}

static void peek_ubf(void *arg) {
  peek_t *p = arg;
  tc_log_buffer_interrupt(p->b, &p->cancel);
}

/* FFI.log_next(timeout_seconds) -> [[level, json_line], ...] (the oldest unacknowledged lines,
 * level an Integer 0 trace .. 4 error), or nil when none came within the timeout or the wait was
 * interrupted. The lines stay in the buffer until FFI.log_ack(count). One caller at a time. */
static VALUE tcrb_log_m_next(VALUE self, VALUE timeout) {
  double seconds = NUM2DBL(timeout);
  if (!(seconds >= 0 && seconds <= 3600)) tcrb_raise_validation("timeout must be between 0 and 3600 seconds");
  tc_log_buffer_t *b = log_buffer();
  if (!b) rb_raise(rb_eNoMemError, "could not create the engine log buffer (out of memory or file descriptors)");
  peek_t peek = {.b = b, .timeout_ms = (int)(seconds * 1000), .rc = TC_ETIMEDOUT};
  peek_t *p = &peek;
  /* Interrupts are not checked here after the wait: lines are never removed by a peek, and Ruby
   * checks them at its next safe point anyway. */
  rb_thread_call_without_gvl2(peek_nogvl, p, peek_ubf, p);
  if (p->rc != TC_OK || p->n == 0) return Qnil;
  /* The strings are copied while the lines are still in the buffer: only log_ack removes them,
   * and it is called by this same consumer. */
  VALUE out = rb_ary_new_capa(p->n);
  for (int i = 0; i < p->n; i++) {
    VALUE pair = rb_ary_new_capa(2);
    rb_ary_push(pair, INT2NUM((int)p->lines[i].level));
    rb_ary_push(pair, rb_utf8_str_new_cstr(p->lines[i].line));
    rb_ary_push(out, pair);
  }
  return out;
}

/* FFI.log_ack(count) -> nil. Removes the count oldest lines (delivered). */
static VALUE tcrb_log_m_ack(VALUE self, VALUE count) {
  int n = NUM2INT(count);
  if (n < 0 || n > LOG_BATCH) tcrb_raise_validation("count must be between 0 and the lines of one log_next");
  tc_log_buffer_t *b = log_buffer();
  if (b) tc_log_buffer_ack(b, n);
  return Qnil;
}

/* FFI.log_stats -> {"capacity", "buffered", "appended", "acked", "to_stderr", "max_buffered"}. */
static VALUE tcrb_log_m_stats(VALUE self) {
  tc_log_buffer_stats_t st = {0};
  tc_log_buffer_t *b = log_buffer();
  if (b) tc_log_buffer_stats(b, &st);
  VALUE h = rb_hash_new();
  rb_hash_aset(h, rb_str_new_cstr("capacity"), INT2NUM(st.capacity));
  rb_hash_aset(h, rb_str_new_cstr("buffered"), INT2NUM(st.buffered));
  rb_hash_aset(h, rb_str_new_cstr("appended"), ULL2NUM(st.appended));
  rb_hash_aset(h, rb_str_new_cstr("acked"), ULL2NUM(st.acked));
  rb_hash_aset(h, rb_str_new_cstr("to_stderr"), ULL2NUM(st.to_stderr));
  rb_hash_aset(h, rb_str_new_cstr("max_buffered"), ULL2NUM(st.max_buffered));
  return h;
}

/* FFI.log_level = name: changes the running runtime's level ("trace".."off"). */
static VALUE tcrb_log_m_set_level(VALUE self, VALUE level) {
  char name[16];
  tcrb_copy_string(rb_obj_as_string(level), "log_level", name, sizeof name);
  if (tc_runtime_set_log_level(tcrb_runtime(), name) != TC_OK)
    tcrb_raise_validation("log_level must be one of trace, debug, info, warn, error, off");
  return level;
}

void tcrb_log_init(void) {
  rb_define_module_function(tcrb_mFFI, "log_attach", tcrb_log_m_attach, 0);
  rb_define_module_function(tcrb_mFFI, "log_wake_fd", tcrb_log_m_wake_fd, 0);
  rb_define_module_function(tcrb_mFFI, "log_next", tcrb_log_m_next, 1);
  rb_define_module_function(tcrb_mFFI, "log_ack", tcrb_log_m_ack, 1);
  rb_define_module_function(tcrb_mFFI, "log_stats", tcrb_log_m_stats, 0);
  rb_define_module_function(tcrb_mFFI, "log_level=", tcrb_log_m_set_level, 1);
}
