/*
 * tcrb_init.c - Init_tasker_core: defines TaskerCore::FFI and calls each area's init.
 */
#include "tcrb.h"

VALUE tcrb_mTaskerCore;
VALUE tcrb_mFFI;

__attribute__((visibility("default"))) void Init_tasker_core(void) {
  tcrb_mTaskerCore = rb_define_module("TaskerCore");
  tcrb_mFFI = rb_define_module_under(tcrb_mTaskerCore, "FFI");
  rb_define_const(tcrb_mFFI, "CORE_VERSION", rb_str_new_cstr(TC_VERSION));
  tcrb_runtime_init();
  tcrb_client_init();
  tcrb_worker_init();
  tcrb_operations_init();
  tcrb_observe_init();
  tcrb_events_init();
  tcrb_domain_init();
  tcrb_log_init();
}
