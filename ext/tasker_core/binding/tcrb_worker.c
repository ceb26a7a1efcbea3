/*
 * tcrb_worker.c - TaskerCore::FFI worker functions: start, next_step, complete_step, stop.
 *
 * Handler threads are Ruby threads: they block in next_step without the GVL (an unblocking
 * function fires the wait's cancel token, so Thread#kill and Ctrl-C land at once), run the
 * handler with the GVL, and hand the result back through complete_step. The engine's own
 * threads never call Ruby.
 */
#include <unistd.h>

#include "tcrb.h"

static tc_worker_t *g_worker = NULL;
static tc_obs_t *g_obs = NULL; /* the worker's observability services; freed before the worker */
static tc_web_t *g_web = NULL; /* the worker's web server (worker.web.enabled); stopped first */

void tcrb_worker_forget_after_fork(void) {
  tc_worker_abandon(g_worker);
  g_worker = NULL;
  g_obs = NULL; /* the parent's; its memory is left alone like the worker's */
  g_web = NULL; /* its threads do not exist in the child */
}

static void *stop_nogvl(void *w) {
  tc_worker_stop(w);
  return NULL;
}

static void add_web(json_object *st);

static void *web_stop_nogvl(void *web) {
  tc_web_stop(web); /* waits for requests in progress */
  return NULL;
}

static void *free_nogvl(void *w) {
  tc_worker_free(w);
  return NULL;
}

/* Stops and frees the current worker once no engine call is using it. The globals are taken
 * while the GVL is held, before it is first released: a second caller (another thread stopping
 * or replacing the worker meanwhile) finds nothing to drop instead of freeing it twice. */
static void drop_worker(void) {
  if (!g_worker) return;
  tc_worker_t *w = g_worker;
  tc_web_t *web = g_web;
  tc_obs_t *obs = g_obs;
  g_worker = NULL;
  g_web = NULL;
  g_obs = NULL;
  rb_thread_call_without_gvl(stop_nogvl, w, RUBY_UBF_IO, NULL);
  while (tcrb_worker_calls > 0) rb_thread_wait_for(rb_time_interval(DBL2NUM(0.001)));
  rb_thread_call_without_gvl(web_stop_nogvl, web, RUBY_UBF_IO, NULL);
  tc_obs_free(obs);
  rb_thread_call_without_gvl(free_nogvl, w, RUBY_UBF_IO, NULL);
}

void tcrb_worker_shutdown(void) { drop_worker(); }

static tc_worker_t *current_worker(void) {
  tcrb_runtime(); /* Raises when not bootstrapped; forgets a forked parent's worker. */
  if (!g_worker) {
    tcrb_raise_class("WorkerStoppedError", "no worker has been started in this process");
  }
  return g_worker;
}

/* FFI.worker_start(options) -> worker status Hash. Replaces a stopped worker. */
static VALUE tcrb_worker_m_start(VALUE self, VALUE options) {
  tc_runtime_t *rt = tcrb_runtime();
  if (!RB_TYPE_P(options, T_HASH)) tcrb_raise_validation("worker options must be a Hash");
  if (g_worker) {
    json_object *st = NULL;
    tc_error_t e = {0};
    bool running = tc_worker_status(g_worker, &st, &e) == TC_OK &&
                   json_object_get_boolean(json_object_object_get(st, "running"));
    json_object_put(st);
    if (running) {
      tcrb_raise_class("StateError", "a worker is already running in this process");
    }
    drop_worker();
  }
  char msg[700];
  json_object *opts = NULL;
  if (tcrb_value_to_json(options, "options", &opts, msg, sizeof msg) != 0) tcrb_raise_validation(msg);
  tc_error_t err = {0};
  tc_worker_t *w = NULL;
  int rc = tc_worker_new(rt, opts, &w, &err);
  tc_obs_t *obs = NULL;
  tc_web_t *web = NULL;
  if (rc == TC_OK) rc = tc_obs_new(rt, w, json_object_object_get(opts, "observability"), &obs, &err);
  json_object *web_opts = json_object_object_get(opts, "web");
  bool web_on = web_opts && json_object_get_boolean(json_object_object_get(web_opts, "enabled"));
  if (rc == TC_OK && web_on) rc = tc_web_start(rt, obs, web_opts, &web, &err);
  json_object_put(opts);
  if (rc == TC_OK) rc = tc_worker_start(w, &err);
  if (rc != TC_OK) {
    tc_web_stop(web);
    tc_obs_free(obs);
    tc_worker_free(w);
    tcrb_raise(&err);
  }
  g_worker = w;
  g_obs = obs;
  g_web = web;
  json_object *st = NULL;
  if (tc_worker_status(w, &st, &err) != TC_OK) tcrb_raise(&err);
  add_web(st);
  VALUE result = tcrb_json_to_value(st);
  json_object_put(st);
  return result;
}

static int next_fn(tcrb_call_t *call) {
  int rc = tc_worker_next_step(call->worker, call->timeout_ms, &call->cancel, &call->out, &call->err);
  /* Timeouts, stops and cancellations are answers, not errors, for the Ruby loop. */
  if (rc == TC_ETIMEDOUT || rc == TC_ECANCELED || rc == TC_ESTOPPED) {
    call->s1[0] = rc == TC_ESTOPPED ? 's' : 't';
    return TC_OK;
  }
  return rc;
}

static void next_ubf(void *arg) { tc_cancel_fire(&((tcrb_call_t *)arg)->cancel); }

static void next_abandon(tcrb_call_t *call) { tc_worker_requeue(call->worker, call->out); }

static VALUE next_convert(tcrb_call_t *call) {
  if (!call->out) return call->s1[0] == 's' ? Qfalse : Qnil;
  return tcrb_json_to_value(call->out);
}

/* FFI.next_step(timeout_seconds) -> step event Hash, nil on timeout, false once the worker stopped. */
static VALUE tcrb_worker_m_next_step(VALUE self, VALUE timeout) {
  tc_worker_t *w = current_worker();
  double seconds = NUM2DBL(timeout);
  if (!(seconds >= 0 && seconds <= 3600)) tcrb_raise_validation("timeout must be between 0 and 3600 seconds");
  /* A step already queued is taken without giving up the GVL: no thread switch per step under load. */
  json_object *ev = NULL;
  if (tc_worker_try_next_step(w, &ev)) {
    tcrb_call_t call = {.convert = next_convert, .on_abandon = next_abandon, .worker = w, .out = ev};
    return tcrb_call_convert(&call);
  }
  tcrb_call_t call = {.fn = next_fn, .convert = next_convert, .on_abandon = next_abandon, .worker = w,
                      .timeout_ms = (int)(seconds * 1000), .ubf = next_ubf};
  return tcrb_call_run(&call);
}

static int complete_fn(tcrb_call_t *call) {
  return tc_worker_complete_step(call->worker, call->s1, call->s2, call->in, &call->out, &call->err);
}

/* A next step claimed with the result but never handed to Ruby goes to the worker's queue. */
static void complete_abandon(tcrb_call_t *call) {
  json_object *next = json_object_object_get(call->out, "next_steps");
  if (next && json_object_array_length(next) > 0)
    tc_worker_requeue(call->worker, json_object_get(json_object_array_get_idx(next, 0)));
  json_object_put(call->out);
}

/* The answer to a result posted to another thread's flush: {"posted": true, "next_steps": []}
 * (frozen, shared). */
static VALUE posted_answer = Qnil;

/* FFI.complete_step(step_uuid, claim_token, result) -> {"applied", "step_status", "task_status",
 * "enqueued", "next_steps"}; an event in next_steps is the caller's to run. A plain result that
 * joined another thread's flush answers {"posted": true, "next_steps": []} at once: its outcome
 * is the engine's to apply, and its slot's next step goes to the queue. */
static VALUE tcrb_worker_m_complete_step(VALUE self, VALUE step_uuid, VALUE claim_token, VALUE result) {
  tc_worker_t *w = current_worker();
  tcrb_call_t call = {.fn = complete_fn, .on_abandon = complete_abandon, .worker = w};
  tcrb_copy_uuid(step_uuid, "step_uuid", call.s1, sizeof call.s1);
  tcrb_copy_uuid(claim_token, "claim_token", call.s2, sizeof call.s2);
  if (!RB_TYPE_P(result, T_HASH)) tcrb_raise_validation("the step result must be a Hash");
  char msg[700];
  if (tcrb_value_to_json(result, "result", &call.in, msg, sizeof msg) != 0) tcrb_raise_validation(msg);
  /* While another thread leads a flush, a plain result joins it without waiting (the GVL kept). */
  bool posted = false;
  tc_error_t err = {0};
  if (tc_worker_post_step(w, call.s1, call.s2, call.in, &posted, &err) != TC_OK) {
    json_object_put(call.in);
    tcrb_raise(&err);
  }
  if (posted) {
    json_object_put(call.in);
    return posted_answer;
  }
  return tcrb_call_run(&call);
}

static int checkpoint_fn(tcrb_call_t *call) {
  return tc_worker_checkpoint_step(call->worker, call->s1, call->s2, call->in, &call->out, &call->err);
}

/* FFI.checkpoint_step(step_uuid, claim_token, checkpoint) -> {"applied", "event"} */
static VALUE tcrb_worker_m_checkpoint_step(VALUE self, VALUE step_uuid, VALUE claim_token, VALUE checkpoint) {
  tc_worker_t *w = current_worker();
  tcrb_call_t call = {.fn = checkpoint_fn, .worker = w};
  tcrb_copy_uuid(step_uuid, "step_uuid", call.s1, sizeof call.s1);
  tcrb_copy_uuid(claim_token, "claim_token", call.s2, sizeof call.s2);
  if (!RB_TYPE_P(checkpoint, T_HASH)) tcrb_raise_validation("the checkpoint must be a Hash");
  char msg[700];
  if (tcrb_value_to_json(checkpoint, "checkpoint", &call.in, msg, sizeof msg) != 0) tcrb_raise_validation(msg);
  return tcrb_call_run(&call);
}

/* FFI.abandon_step(claim_token) -> nil: stop keeping a step whose result cannot be submitted. */
static VALUE tcrb_worker_m_abandon_step(VALUE self, VALUE claim_token) {
  tc_worker_t *w = current_worker();
  char token[80];
  tcrb_copy_uuid(claim_token, "claim_token", token, sizeof token);
  tc_worker_abandon_step(w, token);
  return Qnil;
}

/* FFI.worker_handler_threads(delta, lost) -> nil: a handler thread started (+1) or ended (-1; lost
 * when the worker was still running). Nothing without a worker (a thread ending after the drop). */
static VALUE tcrb_worker_m_handler_threads(VALUE self, VALUE delta, VALUE lost) {
  if (!g_worker) return Qnil;
  tc_worker_handler_threads(g_worker, NUM2INT(delta), RTEST(lost));
  return Qnil;
}

static VALUE stop_body(VALUE w) {
  rb_thread_call_without_gvl(stop_nogvl, (void *)w, RUBY_UBF_IO, NULL);
  return Qtrue;
}

static VALUE stop_done(VALUE unused) {
  (void)unused;
  tcrb_worker_calls--;
  return Qnil;
}

/* FFI.worker_stop -> true when a worker was stopped. Running handlers may still complete. The
 * stop counts as a call in flight, so a concurrent drop_worker frees the worker only after it. */
static VALUE tcrb_worker_m_stop(VALUE self) {
  tcrb_runtime();
  if (!g_worker) return Qfalse;
  tcrb_worker_calls++;
  return rb_ensure(stop_body, (VALUE)g_worker, stop_done, Qnil);
}

/* Adds the web server's address to a worker status ({"enabled": false} without one). */
static void add_web(json_object *st) {
  json_object *web = json_object_new_object();
  if (!web) return;
  json_object_object_add(web, "enabled", json_object_new_boolean(g_web != NULL));
  if (g_web) {
    json_object_object_add(web, "bind_address", json_object_new_string(tc_web_bind_address(g_web)));
    json_object_object_add(web, "port", json_object_new_int(tc_web_port(g_web)));
  }
  json_object_object_add(st, "web", web);
}

static VALUE tcrb_worker_m_status(VALUE self) {
  tcrb_runtime();
  if (!g_worker) return Qnil;
  json_object *st = NULL;
  tc_error_t err = {0};
  if (tc_worker_status(g_worker, &st, &err) != TC_OK) tcrb_raise(&err);
  add_web(st);
  VALUE result = tcrb_json_to_value(st);
  json_object_put(st);
  return result;
}

tc_obs_t *tcrb_current_obs(tc_worker_t **w) {
  tcrb_runtime();
  if (!g_worker || !g_obs) {
    tcrb_raise_class("WorkerStoppedError", "Worker system not running");
  }
  *w = g_worker;
  return g_obs;
}

void tcrb_worker_init(void) {
  posted_answer = rb_hash_new();
  rb_hash_aset(posted_answer, rb_str_freeze(rb_str_new_cstr("posted")), Qtrue);
  rb_hash_aset(posted_answer, rb_str_freeze(rb_str_new_cstr("next_steps")), rb_ary_freeze(rb_ary_new()));
  rb_obj_freeze(posted_answer);
  rb_gc_register_mark_object(posted_answer);
  rb_define_module_function(tcrb_mFFI, "worker_start", tcrb_worker_m_start, 1);
  rb_define_module_function(tcrb_mFFI, "next_step", tcrb_worker_m_next_step, 1);
  rb_define_module_function(tcrb_mFFI, "complete_step", tcrb_worker_m_complete_step, 3);
  rb_define_module_function(tcrb_mFFI, "worker_stop", tcrb_worker_m_stop, 0);
  rb_define_module_function(tcrb_mFFI, "abandon_step", tcrb_worker_m_abandon_step, 1);
  rb_define_module_function(tcrb_mFFI, "checkpoint_step", tcrb_worker_m_checkpoint_step, 3);
  rb_define_module_function(tcrb_mFFI, "worker_status", tcrb_worker_m_status, 0);
  rb_define_module_function(tcrb_mFFI, "worker_handler_threads", tcrb_worker_m_handler_threads, 2);
}
