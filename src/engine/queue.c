/*
 * queue: the engine's work queue (see engine-internal.h): a FIFO of keys with
 * a membership map for de-duplication, drained in bounded batches from a
 * uv_idle handle, plus per-key backoff timers for retries.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "wf/util.h"

#ifndef container_of
#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))
#endif

#define BATCH 256

typedef struct qnode_s {
  struct qnode_s *next;
  char key[];
} qnode_t;

typedef struct retry_s {
  wf_queue_t *q;
  uv_timer_t timer;
  unsigned attempt;
  int armed;
  char *key;
} retry_t;

struct wf_queue_s {
  uv_loop_t *loop;
  wf_queue_fn fn;
  void *data;
  qnode_t *head, *tail;
  size_t len;
  wf_map_t queued;   /* key -> (void*)1 while queued */
  wf_map_t retries;  /* key -> retry_t* */
  uv_idle_t idle;
  int idle_on;
  int closing;
  unsigned open_handles;
  void (*close_cb)(void *);
  void *close_data;
};

static void on_idle(uv_idle_t *h);

wf_queue_t *wf__queue_create(uv_loop_t *loop, wf_queue_fn fn, void *data) {
  wf_queue_t *q = wf_calloc(1, sizeof *q);
  q->loop = loop;
  q->fn = fn;
  q->data = data;
  wf_map_init(&q->queued);
  wf_map_init(&q->retries);
  uv_idle_init(loop, &q->idle);
  q->idle.data = q;
  q->open_handles = 1;
  return q;
}

void wf__queue_add(wf_queue_t *q, const char *key) {
  if (q->closing || wf_map_get(&q->queued, key)) return;
  size_t kl = strlen(key);
  qnode_t *n = wf_malloc(sizeof *n + kl + 1);
  memcpy(n->key, key, kl + 1);
  n->next = NULL;
  if (q->tail)
    q->tail->next = n;
  else
    q->head = n;
  q->tail = n;
  q->len++;
  wf_map_put(&q->queued, key, (void *)1);
  if (!q->idle_on) {
    uv_idle_start(&q->idle, on_idle);
    q->idle_on = 1;
  }
}

static void on_idle(uv_idle_t *h) {
  wf_queue_t *q = h->data;
  for (int i = 0; i < BATCH && q->head && !q->closing; i++) {
    qnode_t *n = q->head;
    q->head = n->next;
    if (!q->head) q->tail = NULL;
    q->len--;
    wf_map_del(&q->queued, n->key);
    q->fn(n->key, q->data);
    free(n);
  }
  if (!q->head && q->idle_on) {
    uv_idle_stop(&q->idle);
    q->idle_on = 0;
  }
}

static void on_retry(uv_timer_t *t) {
  retry_t *r = t->data;
  r->armed = 0;
  wf__queue_add(r->q, r->key);
}

void wf__queue_retry(wf_queue_t *q, const char *key) {
  if (q->closing) return;
  retry_t *r = wf_map_get(&q->retries, key);
  if (!r) {
    r = wf_calloc(1, sizeof *r);
    r->q = q;
    r->key = wf_strdup(key);
    uv_timer_init(q->loop, &r->timer);
    r->timer.data = r;
    q->open_handles++;
    wf_map_put(&q->retries, key, r);
  }
  uint64_t d = 5;
  for (unsigned i = 0; i < r->attempt && d < 30000; i++) d *= 2;
  if (d > 30000) d = 30000;
  if (r->attempt < 32) r->attempt++;
  if (!r->armed) {
    r->armed = 1;
    uv_timer_start(&r->timer, on_retry, d, 0);
  }
}

static void handle_closed(uv_handle_t *h) {
  wf_queue_t *q = h->data;
  if (--q->open_handles == 0) {
    void (*cb)(void *) = q->close_cb;
    void *cd = q->close_data;
    free(q);
    if (cb) cb(cd);
  }
}

static void retry_closed(uv_handle_t *h) {
  retry_t *r = container_of(h, retry_t, timer);
  wf_queue_t *q = r->q;
  free(r);
  if (--q->open_handles == 0) {
    void (*cb)(void *) = q->close_cb;
    void *cd = q->close_data;
    free(q);
    if (cb) cb(cd);
  }
}

void wf__queue_forget(wf_queue_t *q, const char *key) {
  retry_t *r = wf_map_del(&q->retries, key);
  if (!r) return;
  free(r->key);
  uv_close((uv_handle_t *)&r->timer, retry_closed);
}

size_t wf__queue_len(const wf_queue_t *q) { return q->len; }

void wf__queue_close(wf_queue_t *q, void (*cb)(void *), void *data) {
  q->closing = 1;
  q->close_cb = cb;
  q->close_data = data;
  while (q->head) {
    qnode_t *n = q->head;
    q->head = n->next;
    free(n);
  }
  q->tail = NULL;
  q->len = 0;
  wf_map_finish(&q->queued);
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *k;
  void *v;
  while (wf_map_iter_next(&q->retries, &it, &k, &v)) {
    retry_t *r = v;
    free(r->key);
    uv_close((uv_handle_t *)&r->timer, retry_closed);
  }
  wf_map_finish(&q->retries);
  uv_close((uv_handle_t *)&q->idle, handle_closed);
}
