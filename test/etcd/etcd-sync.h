/*
 * etcd-sync.h: blocking-looking wrappers for the etcd integration tests.
 * Each starts one call and runs the loop until its callback fired; every
 * callback also asserts it did not fire inside the call that started it.
 * The tests run one per process, so the loop and the client are file-static.
 */
#ifndef WF_TEST_ETCD_SYNC_H
#define WF_TEST_ETCD_SYNC_H

#include "wf/etcd.h"
#include "wf/util.h"
#include "wf-test.h"

static uv_loop_t t_loop;
static wf_etcd_t *t_etcd;
static int t_in_call;  /* set around every API call: callbacks must not see it */

#define CALL(expr)    \
  do {                \
    t_in_call = 1;    \
    int r_ = (expr);  \
    t_in_call = 0;    \
    ASSERT_OK(r_);    \
  } while (0)

/* Runs the loop until cond holds; an idle loop before that is a failure. */
#define RUN_UNTIL(cond)                                                   \
  do {                                                                    \
    while (!(cond)) {                                                     \
      if (uv_run(&t_loop, UV_RUN_ONCE) == 0 && !(cond))                   \
        WF_FAIL("loop went idle before: %s", #cond);                      \
    }                                                                     \
  } while (0)

typedef struct t_res_s {
  int done;
  int err;
  int64_t rev;
  int64_t n;        /* deleted / ttl */
  int64_t id;
  int succeeded;
  int has_current;
  char current[256];
  int64_t current_mod;
  size_t nkvs;
  int more;
  int64_t count;
  wf_etcd_kv_t kvs[16];  /* copies of the first kvs (key/value strdup'd) */
} t_res_t;

static inline void t_res_free(t_res_t *r) {
  for (size_t i = 0; i < r->nkvs && i < 16; i++) {
    free((void *)r->kvs[i].key);
    free((void *)r->kvs[i].value);
  }
  memset(r, 0, sizeof *r);
}

static inline void t_copy_kv(wf_etcd_kv_t *d, const wf_etcd_kv_t *s) {
  *d = *s;
  char *k = malloc(s->key_len + 1), *v = malloc(s->value_len + 1);
  memcpy(k, s->key, s->key_len + 1);
  memcpy(v, s->value, s->value_len + 1);
  d->key = k;
  d->value = v;
}

static inline void t_done(t_res_t *r, int err) {
  ASSERT(!t_in_call);
  ASSERT(!r->done);
  r->done = 1;
  r->err = err;
}

static inline void t_put_cb(int err, int64_t rev, void *data) {
  t_res_t *r = data;
  t_done(r, err);
  r->rev = rev;
}

static inline void t_range_cb(int err, const wf_etcd_range_res_t *res, void *data) {
  t_res_t *r = data;
  t_done(r, err);
  if (err) {
    ASSERT_NULL(res);
    return;
  }
  r->rev = res->revision;
  r->nkvs = res->nkvs;
  r->more = res->more;
  r->count = res->count;
  for (size_t i = 0; i < res->nkvs && i < 16; i++) t_copy_kv(&r->kvs[i], &res->kvs[i]);
}

static inline void t_txn_cb(int err, int succeeded, int64_t rev, const wf_etcd_kv_t *cur,
                            void *data) {
  t_res_t *r = data;
  t_done(r, err);
  r->succeeded = succeeded;
  r->rev = rev;
  if (cur) {
    r->has_current = 1;
    snprintf(r->current, sizeof r->current, "%s", cur->value);
    r->current_mod = cur->mod_revision;
  }
}

static inline void t_delete_cb(int err, int64_t deleted, int64_t rev, void *data) {
  t_res_t *r = data;
  t_done(r, err);
  r->n = deleted;
  r->rev = rev;
}

static inline void t_lease_cb(int err, int64_t id, int64_t ttl, void *data) {
  t_res_t *r = data;
  t_done(r, err);
  r->id = id;
  r->n = ttl;
}

static inline int64_t t_put(const char *k, const char *v) {
  t_res_t r = {0};
  CALL(wf_etcd_put(t_etcd, k, strlen(k), v, strlen(v), 0, t_put_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT(r.rev > 0);
  return r.rev;
}

static inline int64_t t_delete(const char *k, const char *end) {
  t_res_t r = {0};
  CALL(wf_etcd_delete(t_etcd, k, strlen(k), end, end ? strlen(end) : 0, t_delete_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  return r.n;
}

/* The range of one key; r must be freed with t_res_free. */
static inline void t_get(const char *k, t_res_t *r) {
  memset(r, 0, sizeof *r);
  CALL(wf_etcd_range(t_etcd, k, strlen(k), NULL, 0, NULL, t_range_cb, r));
  RUN_UNTIL(r->done);
  ASSERT_OK(r->err);
}

static inline void t_timer_cb(uv_timer_t *t) { *(int *)t->data = 1; }
static inline void t_timer_close_cb(uv_handle_t *h) { (void)h; }

static inline void t_sleep_ms(uint64_t ms) {
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(&t_loop, &t);
  t.data = &fired;
  uv_timer_start(&t, t_timer_cb, ms, 0);
  RUN_UNTIL(fired);
  uv_close((uv_handle_t *)&t, t_timer_close_cb);
  uv_run(&t_loop, UV_RUN_NOWAIT);
}

static inline void t_close_cb(void *data) { *(int *)data = 1; }

static inline wf_etcd_t *t_connect(const char *const *eps, size_t n) {
  wf_etcd_opts_t o;
  memset(&o, 0, sizeof o);
  o.endpoints = eps;
  o.nendpoints = n;
  o.request_timeout_ms = 5000;
  o.connect_timeout_ms = 2000;
  wf_etcd_t *e = wf_etcd_create(&t_loop, &o);
  ASSERT_NOT_NULL(e);
  return e;
}

static inline void t_setup(void) {
  ASSERT_OK(uv_loop_init(&t_loop));
  const char *ep = wf_test_etcd();
  t_etcd = t_connect(&ep, 1);
}

/* Closes t_etcd and proves every handle is gone. */
static inline void t_teardown(void) {
  int closed = 0;
  wf_etcd_close(t_etcd, t_close_cb, &closed);
  ASSERT(!closed);  /* never from inside wf_etcd_close */
  RUN_UNTIL(closed);
  t_etcd = NULL;
  wf_test_close_loop(&t_loop);
}

#endif
