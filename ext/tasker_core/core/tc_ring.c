/*
 * tc_ring.c - a bounded FIFO of json values (the worker's step queue, the events buffer). The
 * owner locks around every call.
 */
#include "tc_internal.h"

int tc_ring_init(tc_ring_t *r, int cap) {
  r->items = tc_calloc((size_t)cap, sizeof *r->items);
  r->cap = r->items ? cap : 0;
  r->head = r->count = 0;
  return r->items ? 0 : -1;
}

void tc_ring_free(tc_ring_t *r) {
  json_object *v;
  while ((v = tc_ring_pop(r)) != NULL) json_object_put(v);
  tc_free(r->items);
  r->items = NULL;
  r->cap = 0;
}

bool tc_ring_push(tc_ring_t *r, json_object *v) {
  if (r->count == r->cap) return false;
  r->items[(r->head + r->count) % r->cap] = v;
  r->count++;
  return true;
}

bool tc_ring_push_front(tc_ring_t *r, json_object *v) {
  if (r->count == r->cap) return false;
  r->head = (r->head - 1 + r->cap) % r->cap;
  r->items[r->head] = v;
  r->count++;
  return true;
}

json_object *tc_ring_pop(tc_ring_t *r) {
  if (r->count == 0) return NULL;
  json_object *v = r->items[r->head];
  r->items[r->head] = NULL;
  r->head = (r->head + 1) % r->cap;
  r->count--;
  return v;
}

json_object *tc_ring_at(const tc_ring_t *r, int i) { return r->items[(r->head + i) % r->cap]; }
