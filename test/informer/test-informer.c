/*
 * test-informer: the informer (src/informer/) against a real etcd
 * (WF_TEST_ETCD): a paged list then the watch, in order; the filter's
 * verdicts (keep, meta-only, drop, skip unread, filter_raw, not JSON); a
 * delete reported as gone; writes landing between the pages of the pinned
 * list; a re-list after etcd compacted the watch's resume revision, which
 * must neither resurrect a deleted key nor roll back a newer value; the
 * periodic resync repairing what the watch missed; resync asked from inside
 * callbacks; and close, which calls its callback and leaves no handle.
 *
 * The informer runs on `loop` with an etcd client of its own (ic).  The test
 * writes through etcd-sync.h's client, which lives on a second loop
 * (t_loop), so a write never lets the informer run: the test decides when
 * the informer sees what (e.g. several writes and a compaction while its
 * watch is disconnected).  Every callback checks what the header promises:
 * never inside an informer call, never after close, the entry findable on
 * upsert and already gone on delete, and each key's revisions only growing
 * (a list value older than what was reported is a resurrection or a
 * rollback).
 */
#include <jansson.h>
#include <string.h>

#include "etcd/etcd-sync.h"
#include "src/etcd/etcd-internal.h"
#include "wf/informer.h"

/* ---- the informer's loop ------------------------------------------------------------- */

static uv_loop_t loop;
static wf_etcd_t *ic;   /* the informer's client: its only watch is the informer's */
static uv_timer_t tick; /* wakes the loop while a test waits */

static void on_tick(uv_timer_t *t) { (void)t; }

/* Runs the informer's loop until cond holds, failing after ms. */
#define LOOP_UNTIL(cond, ms)                                                        \
  do {                                                                              \
    uv_update_time(&loop);                                                          \
    uint64_t dl_ = uv_now(&loop) + (ms);                                            \
    uv_timer_start(&tick, on_tick, 10, 10);                                         \
    while (!(cond)) {                                                               \
      if (uv_now(&loop) > dl_) WF_FAIL("timed out after %d ms: %s", (int)(ms), #cond); \
      uv_run(&loop, UV_RUN_ONCE);                                                   \
    }                                                                               \
    uv_timer_stop(&tick);                                                           \
  } while (0)

static void loop_for(uint64_t ms) {
  uv_update_time(&loop);
  uint64_t end = uv_now(&loop) + ms;
  uv_timer_start(&tick, on_tick, 10, 10);
  while (uv_now(&loop) < end) uv_run(&loop, UV_RUN_ONCE);
  uv_timer_stop(&tick);
}

/* ---- what the callbacks saw ---------------------------------------------------------- */

#define MAXEV 512
#define MAXKEYS 128

typedef struct ev_s {
  char type;        /* 'U' upsert, 'D' delete, 'S' first sync, 'R' a later sync */
  char key[32];
  char val[96];
  int has_val;      /* 0 for a meta-only entry */
  int64_t mod;
  int deleted;
} ev_t;

typedef struct keyst_s {
  char key[32];
  int64_t last;     /* highest mod_revision reported */
  int present;
} keyst_t;

static struct {
  ev_t ev[MAXEV];
  size_t n;
  int synced, resynced;
  int in_call;      /* set around informer calls: no callback may see it */
  int closed;       /* set at close: no callback may fire after it */
  int filter_calls, raw_calls, skip_calls, skipped;
  int nonjson_calls;
  keyst_t keys[MAXKEYS];
  size_t nkeys;
  /* Test-specific actions, run at the end of a callback. */
  void (*upsert_hook)(wf_informer_t *inf, wf_cache_entry_t *e);
  void (*delete_hook)(wf_informer_t *inf, wf_cache_entry_t *e, int deleted);
  void (*synced_hook)(wf_informer_t *inf, int first);
} R;

static keyst_t *keyst(const char *key) {
  for (size_t i = 0; i < R.nkeys; i++)
    if (strcmp(R.keys[i].key, key) == 0) return &R.keys[i];
  ASSERT(R.nkeys < MAXKEYS);
  keyst_t *k = &R.keys[R.nkeys++];
  snprintf(k->key, sizeof k->key, "%s", key);
  return k;
}

static ev_t *record(char type, const char *key) {
  ASSERT(R.n < MAXEV);
  ev_t *e = &R.ev[R.n++];
  memset(e, 0, sizeof *e);
  e->type = type;
  if (key) snprintf(e->key, sizeof e->key, "%s", key);
  return e;
}

/* The test's values are JSON objects {"node": N, ...}: kept when N is "me",
 * meta-only when also "done": true, dropped otherwise.  A value holding the
 * string "skip" is dropped unread by the skip callback; a key starting with
 * "raw" is kept by filter_raw without a parse (whatever its value). */
static int verdict_json(const json_t *o) {
  if (!json_is_object(o)) return WF_FILTER_DROP;
  const char *node = json_string_value(json_object_get(o, "node"));
  if (!node || strcmp(node, "me") != 0) return WF_FILTER_DROP;
  return json_is_true(json_object_get(o, "done")) ? WF_FILTER_META : WF_FILTER_KEEP;
}

static int is_skip(const char *v, size_t n) { return memmem(v, n, "\"skip\"", 6) != NULL; }
static int is_raw(const char *key) { return strncmp(key, "raw", 3) == 0; }

/* What the informer should hold for (key, value): the test's oracle. */
static int oracle(const char *key, const char *v, size_t n) {
  if (is_skip(v, n)) return WF_FILTER_DROP;
  if (is_raw(key)) return WF_FILTER_KEEP;
  json_t *o = json_loadb(v, n, 0, NULL);
  int r = verdict_json(o);
  json_decref(o);
  return r;
}

static enum wf_filter_verdict cb_filter(wf_informer_t *inf, const char *key, const json_t *obj,
                                        const char *errtext, int64_t rev, void *data) {
  ASSERT(data == &R);
  ASSERT(!R.in_call);
  ASSERT(!R.closed);
  ASSERT(rev > 0);
  ASSERT(!is_raw(key)); /* filter_raw decided those */
  R.filter_calls++;
  if (!obj) {
    ASSERT_NOT_NULL(errtext);
    ASSERT(errtext[0] != '\0');
    R.nonjson_calls++;
    return WF_FILTER_DROP;
  }
  const char *node = json_string_value(json_object_get(obj, "node"));
  ASSERT(!node || strcmp(node, "skip") != 0); /* skip dropped those unread */
  return (enum wf_filter_verdict)verdict_json(obj);
}

static int cb_skip(wf_informer_t *inf, const char *key, const char *value, size_t len,
                   void *data) {
  ASSERT(!R.in_call);
  ASSERT(!R.closed);
  R.skip_calls++;
  int s = is_skip(value, len);
  R.skipped += s;
  return s;
}

static int cb_filter_raw(wf_informer_t *inf, const char *key, const char *value, size_t len,
                         int64_t rev, void *data) {
  ASSERT(!R.in_call);
  ASSERT(!R.closed);
  ASSERT(!is_skip(value, len)); /* skip comes first */
  R.raw_calls++;
  return is_raw(key) ? WF_FILTER_KEEP : -1;
}

static void cb_upsert(wf_informer_t *inf, wf_cache_entry_t *e, void *data) {
  ASSERT(data == &R);
  ASSERT(!R.in_call);
  ASSERT(!R.closed);
  ASSERT(wf_informer_get(inf, e->key) == e);
  keyst_t *k = keyst(e->key);
  /* Never a value older than (or as old as) one already reported. */
  if (e->mod_revision <= k->last)
    WF_FAIL("%s: upsert at revision %lld after revision %lld was reported", e->key,
            (long long)e->mod_revision, (long long)k->last);
  k->last = e->mod_revision;
  k->present = 1;
  ev_t *ev = record('U', e->key);
  ev->mod = e->mod_revision;
  if (e->value) {
    ASSERT_EQ(strlen(e->value), e->value_len);
    ASSERT_EQ(oracle(e->key, e->value, e->value_len), WF_FILTER_KEEP);
    snprintf(ev->val, sizeof ev->val, "%s", e->value);
    ev->has_val = 1;
  }
  if (R.upsert_hook) R.upsert_hook(inf, e);
}

static void cb_delete(wf_informer_t *inf, wf_cache_entry_t *e, int deleted, void *data) {
  ASSERT(data == &R);
  ASSERT(!R.in_call);
  ASSERT(!R.closed);
  ASSERT_NULL(wf_informer_get(inf, e->key)); /* gone from the cache already */
  keyst_t *k = keyst(e->key);
  ASSERT(k->present); /* only keys that were reported */
  k->present = 0;
  ev_t *ev = record('D', e->key);
  ev->mod = e->mod_revision;
  ev->deleted = deleted;
  if (R.delete_hook) R.delete_hook(inf, e, deleted);
}

static void cb_synced(wf_informer_t *inf, int first, void *data) {
  ASSERT(data == &R);
  ASSERT(!R.in_call);
  ASSERT(!R.closed);
  if (first) {
    ASSERT_EQ(R.synced, 0);
    R.synced++;
  } else {
    ASSERT_EQ(R.synced, 1);
    R.resynced++;
  }
  record(first ? 'S' : 'R', NULL);
  if (R.synced_hook) R.synced_hook(inf, first);
}

static const wf_informer_cbs_t cbs = {
    .filter = cb_filter,
    .on_upsert = cb_upsert,
    .on_delete = cb_delete,
    .skip = cb_skip,
    .filter_raw = cb_filter_raw,
    .on_synced = cb_synced,
};

/* ---- set-up ------------------------------------------------------------------------- */

static wf_etcd_t *connect_on_loop(const char *ep) {
  wf_etcd_opts_t o;
  memset(&o, 0, sizeof o);
  o.endpoints = &ep;
  o.nendpoints = 1;
  o.request_timeout_ms = 5000;
  o.connect_timeout_ms = 2000;
  wf_etcd_t *e = wf_etcd_create(&loop, &o);
  ASSERT_NOT_NULL(e);
  return e;
}

static void setup(void) {
  memset(&R, 0, sizeof R);
  t_setup(); /* the writer: t_loop, t_etcd */
  ASSERT_OK(uv_loop_init(&loop));
  ASSERT_OK(uv_timer_init(&loop, &tick));
  ic = connect_on_loop(wf_test_etcd());
}

static void on_closed(void *data) {
  ASSERT(!R.in_call);
  (*(int *)data)++;
}

static void teardown(void) {
  int closed = 0;
  wf_etcd_close(ic, on_closed, &closed);
  LOOP_UNTIL(closed == 1, 5000);
  ic = NULL;
  uv_close((uv_handle_t *)&tick, NULL);
  wf_test_close_loop(&loop); /* uv_loop_close() == 0 */
  t_teardown();
}

static wf_informer_t *inf_start(const char *prefix, unsigned resync_s, int64_t page_size) {
  R.in_call = 1;
  wf_informer_t *inf = wf_informer_create(&loop, ic, prefix, resync_s, page_size, &cbs, &R);
  ASSERT_NOT_NULL(inf);
  wf_informer_start(inf);
  R.in_call = 0;
  ASSERT_EQ(R.n, 0); /* nothing from inside the calls */
  ASSERT_STR_EQ(wf_informer_prefix(inf), prefix);
  return inf;
}

/* Closes inf: its callback fires once, later, and nothing else after. */
static void inf_close(wf_informer_t *inf) {
  int closed = 0;
  R.closed = 1;
  R.in_call = 1;
  wf_informer_close(inf, on_closed, &closed);
  R.in_call = 0;
  ASSERT_EQ(closed, 0);
  LOOP_UNTIL(closed == 1, 5000);
  loop_for(50);
  ASSERT_EQ(closed, 1);
}

static void resync(wf_informer_t *inf) {
  R.in_call = 1;
  wf_informer_resync(inf);
  R.in_call = 0;
}

/* The informer's current watch (test hook: ic serves no other watch, and
 * the newest watch is the head of its list). */
static wf_etcd_watch_t *inf_watch(void) {
  ASSERT_NOT_NULL(ic->watches);
  return ic->watches;
}

/* ---- writing (on the writer's loop: the informer does not run meanwhile) ----------- */

static char *val_of(const char *node, int v, int done) {
  static char buf[96];
  snprintf(buf, sizeof buf, "{\"node\":\"%s\",\"v\":%d%s}", node, v, done ? ",\"done\":true" : "");
  return buf;
}

static int64_t put_node(const char *key, const char *node, int v) {
  return t_put(key, val_of(node, v, 0));
}

/* Deletes one key (or [key, end)); returns the revision of the delete. */
static int64_t del(const char *key, const char *end) {
  t_res_t r = {0};
  CALL(wf_etcd_delete(t_etcd, key, strlen(key), end, end ? strlen(end) : 0, t_delete_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT(r.n >= 1);
  return r.rev;
}

static void compact(int64_t rev) {
  t_res_t r = {0};
  CALL(wf_etcd_compact(t_etcd, rev, t_put_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
}

/* Every kv under a prefix, as etcd holds it now. */
typedef struct kvs_s {
  int done;
  int err;
  int64_t rev;
  size_t n;
  struct {
    char key[64];
    char *val;
    size_t vlen;
    int64_t mod;
  } kv[MAXKEYS];
} kvs_t;

static void kvs_cb(int err, const wf_etcd_range_res_t *res, void *data) {
  kvs_t *k = data;
  ASSERT(!t_in_call);
  k->done = 1;
  k->err = err;
  if (err) return;
  ASSERT(res->nkvs <= MAXKEYS);
  k->rev = res->revision;
  for (size_t i = 0; i < res->nkvs; i++) {
    snprintf(k->kv[i].key, sizeof k->kv[i].key, "%s", res->kvs[i].key);
    k->kv[i].val = wf_strndup(res->kvs[i].value, res->kvs[i].value_len);
    k->kv[i].vlen = res->kvs[i].value_len;
    k->kv[i].mod = res->kvs[i].mod_revision;
  }
  k->n = res->nkvs;
}

static int64_t now_rev(void) {
  kvs_t k = {0};
  wf_etcd_range_opts_t o = {.count_only = 1};
  CALL(wf_etcd_range(t_etcd, "/", 1, NULL, 0, &o, kvs_cb, &k));
  RUN_UNTIL(k.done);
  ASSERT_OK(k.err);
  return k.rev;
}

/* The cache holds exactly what the oracle keeps of etcd under prefix: each
 * kept key with etcd's revision (and value, unless meta-only), nothing else. */
static void check_matches_etcd(wf_informer_t *inf, const char *prefix) {
  kvs_t *k = wf_calloc(1, sizeof *k);
  char end[64];
  size_t plen = strlen(prefix);
  size_t elen = wf_etcd_prefix_end(prefix, plen, end);
  CALL(wf_etcd_range(t_etcd, prefix, plen, end, elen, NULL, kvs_cb, k));
  RUN_UNTIL(k->done);
  ASSERT_OK(k->err);
  size_t kept = 0;
  for (size_t i = 0; i < k->n; i++) {
    const char *key = k->kv[i].key + plen;
    int v = oracle(key, k->kv[i].val, k->kv[i].vlen);
    wf_cache_entry_t *e = wf_informer_get(inf, key);
    if (v == WF_FILTER_DROP) {
      if (e) WF_FAIL("%s: cached, but the filter drops its value %s", key, k->kv[i].val);
    } else {
      if (!e) WF_FAIL("%s: in etcd (%s), missing from the cache", key, k->kv[i].val);
      kept++;
      ASSERT_EQ(e->mod_revision, k->kv[i].mod);
      if (v == WF_FILTER_KEEP) {
        ASSERT_NOT_NULL(e->value);
        ASSERT_STR_EQ(e->value, k->kv[i].val);
      } else {
        ASSERT_NULL(e->value);
      }
      ASSERT(keyst(key)->present);
      ASSERT_EQ(keyst(key)->last, k->kv[i].mod);
    }
    free(k->kv[i].val);
  }
  ASSERT_EQ(wf_informer_size(inf), kept);
  /* ...and every key reported present is one of them. */
  size_t present = 0;
  for (size_t i = 0; i < R.nkeys; i++) present += R.keys[i].present;
  ASSERT_EQ(present, kept);
  free(k);
}

static size_t count_type(char t, size_t from) {
  size_t n = 0;
  for (size_t i = from; i < R.n; i++) n += R.ev[i].type == t;
  return n;
}

static void expect_ev(size_t i, char type, const char *key, const char *val, int64_t mod) {
  if (i >= R.n) WF_FAIL("event %zu expected (%c %s), only %zu events", i, type, key, R.n);
  const ev_t *e = &R.ev[i];
  if (e->type != type || (key && strcmp(e->key, key) != 0))
    WF_FAIL("event %zu: got %c %s, want %c %s", i, e->type, e->key, type, key ? key : "");
  if (val) {
    ASSERT(e->has_val);
    ASSERT_STR_EQ(e->val, val);
  }
  if (mod) ASSERT_EQ(e->mod, mod);
}

/* The index of the only event of type t for key from `from` on; fails if
 * there is none or more than one. */
static size_t find_one(char t, const char *key, size_t from) {
  size_t at = (size_t)-1;
  for (size_t i = from; i < R.n; i++) {
    if (R.ev[i].type != t || strcmp(R.ev[i].key, key) != 0) continue;
    if (at != (size_t)-1) WF_FAIL("two %c events for %s (%zu and %zu)", t, key, at, i);
    at = i;
  }
  if (at == (size_t)-1) WF_FAIL("no %c event for %s after event %zu", t, key, from);
  return at;
}

/* ---- list, then watch ---------------------------------------------------------------- */

/* A paged list at start delivers every kept key once, in key order, with
 * its value and revision, then the first sync; then the watch delivers each
 * later write in revision order, the filter applied to each. */
static void test_list_then_watch(void) {
  setup();
  int64_t rev[25];
  char k[32];
  for (int i = 0; i < 25; i++) {
    snprintf(k, sizeof k, "/lw/k%02d", i);
    rev[i] = put_node(k, "me", i);
    if (i % 5 == 0) {
      snprintf(k, sizeof k, "/lw/o%d", i / 5);
      put_node(k, "you", i); /* another node's: never reported */
    }
  }
  put_node("/lwx", "me", 0); /* shares the prefix's bytes but not "/lw/" */
  wf_informer_t *inf = inf_start("/lw/", 0, 4); /* 33 keys in pages of 4 */
  LOOP_UNTIL(R.synced == 1, 5000);
  ASSERT_EQ(R.n, 26);
  for (int i = 0; i < 25; i++) {
    snprintf(k, sizeof k, "k%02d", i);
    expect_ev((size_t)i, 'U', k, val_of("me", i, 0), rev[i]);
  }
  expect_ev(25, 'S', NULL, NULL, 0);
  ASSERT_EQ(wf_informer_size(inf), 25);
  ASSERT_NULL(wf_informer_get(inf, "o0"));
  ASSERT_EQ(R.filter_calls, 30); /* every value of the prefix, once */
  LOOP_UNTIL(wf_informer_live(inf), 5000);

  int64_t w1 = put_node("/lw/k05", "me", 105);
  int64_t w2 = put_node("/lw/k30", "me", 130);
  int64_t w3 = put_node("/lw/o1", "me", 201); /* now ours */
  put_node("/lw/o2", "you", 202);             /* still not */
  int64_t w4 = put_node("/lw/k05", "me", 305);
  put_node("/lwx", "me", 1);
  LOOP_UNTIL(R.n == 30, 5000);
  expect_ev(26, 'U', "k05", val_of("me", 105, 0), w1);
  expect_ev(27, 'U', "k30", val_of("me", 130, 0), w2);
  expect_ev(28, 'U', "o1", val_of("me", 201, 0), w3);
  expect_ev(29, 'U', "k05", val_of("me", 305, 0), w4);
  loop_for(200);
  ASSERT_EQ(R.n, 30); /* nothing more: o2 is not ours, /lwx not under the prefix */
  ASSERT_EQ(wf_informer_size(inf), 27);
  ASSERT_STR_EQ(wf_informer_get(inf, "k05")->value, val_of("me", 305, 0));
  check_matches_etcd(inf, "/lw/");
  ASSERT_EQ(R.resynced, 0);
  inf_close(inf);
  teardown();
}

/* ---- the filter ---------------------------------------------------------------------- */

/* Each verdict: KEEP caches the value, META only the revision, DROP
 * nothing; skip drops without filter_raw or filter seeing the value;
 * filter_raw decides without a parse; a value that is not JSON reaches the
 * filter as NULL with the parser's text.  A kept key whose new value is
 * dropped (by the filter or by skip) is reported gone (deleted = 0). */
static void test_filter(void) {
  setup();
  int64_t rk = put_node("/f/keep", "me", 1);
  int64_t rm = t_put("/f/meta", val_of("me", 2, 1));
  put_node("/f/other", "you", 3);
  put_node("/f/skip", "skip", 4);
  int64_t rr = t_put("/f/raw1", "not JSON, kept by filter_raw");
  t_put("/f/bad", "{not json");
  t_put("/f/arr", "[1,2,3]");
  wf_informer_t *inf = inf_start("/f/", 0, 1000);
  LOOP_UNTIL(R.synced == 1, 5000);
  ASSERT_EQ(wf_informer_size(inf), 3);
  wf_cache_entry_t *e = wf_informer_get(inf, "keep");
  ASSERT_NOT_NULL(e);
  ASSERT_STR_EQ(e->value, val_of("me", 1, 0));
  ASSERT_EQ(e->mod_revision, rk);
  e = wf_informer_get(inf, "meta");
  ASSERT_NOT_NULL(e);
  ASSERT_NULL(e->value);
  ASSERT_EQ(e->value_len, 0);
  ASSERT_EQ(e->mod_revision, rm);
  e = wf_informer_get(inf, "raw1");
  ASSERT_NOT_NULL(e);
  ASSERT_STR_EQ(e->value, "not JSON, kept by filter_raw");
  ASSERT_EQ(e->mod_revision, rr);
  ASSERT_NULL(wf_informer_get(inf, "other"));
  ASSERT_NULL(wf_informer_get(inf, "skip"));
  ASSERT_NULL(wf_informer_get(inf, "bad"));
  ASSERT_NULL(wf_informer_get(inf, "arr"));
  /* 7 values: skip saw all, dropped 1; filter_raw saw 6, kept 1; the
   * filter parsed the other 5, one of them not JSON. */
  ASSERT_EQ(R.skip_calls, 7);
  ASSERT_EQ(R.skipped, 1);
  ASSERT_EQ(R.raw_calls, 6);
  ASSERT_EQ(R.filter_calls, 5);
  ASSERT_EQ(R.nonjson_calls, 1);
  LOOP_UNTIL(wf_informer_live(inf), 5000);

  size_t base = R.n;
  put_node("/f/keep", "you", 5);             /* kept -> dropped by the filter */
  int64_t ro = put_node("/f/other", "me", 6); /* dropped -> kept */
  int64_t rm2 = put_node("/f/meta", "me", 7); /* meta-only -> kept with its value */
  t_put("/f/raw1", "still raw");             /* filter_raw again */
  del("/f/bad", NULL);                       /* never cached: nothing to say */
  put_node("/f/other", "skip", 8);           /* kept -> dropped unread */
  LOOP_UNTIL(R.n == base + 5, 5000);
  expect_ev(base, 'D', "keep", NULL, 0);
  ASSERT_EQ(R.ev[base].deleted, 0);
  expect_ev(base + 1, 'U', "other", val_of("me", 6, 0), ro);
  expect_ev(base + 2, 'U', "meta", val_of("me", 7, 0), rm2);
  expect_ev(base + 3, 'U', "raw1", "still raw", 0);
  expect_ev(base + 4, 'D', "other", NULL, 0);
  ASSERT_EQ(R.ev[base + 4].deleted, 0);
  loop_for(200);
  ASSERT_EQ(R.n, base + 5);
  ASSERT_EQ(R.skipped, 2);
  ASSERT_EQ(R.filter_calls, 5 + 3);
  ASSERT_EQ(wf_informer_size(inf), 2); /* meta, raw1 */
  check_matches_etcd(inf, "/f/");
  inf_close(inf);
  teardown();
}

/* ---- deletes ---------------------------------------------------------------------------- */

/* A kept key deleted in etcd is reported gone with deleted = 1 and leaves
 * the cache; a range delete reports each kept key; deleting a key the
 * filter dropped says nothing; a key put again after its delete comes back
 * as new. */
static void test_delete(void) {
  setup();
  put_node("/d/a", "me", 1);
  put_node("/d/b", "me", 2);
  t_put("/d/m", val_of("me", 3, 1));
  put_node("/d/x", "you", 4);
  put_node("/d/z", "me", 5);
  wf_informer_t *inf = inf_start("/d/", 0, 1000);
  LOOP_UNTIL(R.synced == 1, 5000);
  ASSERT_EQ(wf_informer_size(inf), 4);
  LOOP_UNTIL(wf_informer_live(inf), 5000);

  size_t base = R.n;
  del("/d/a", NULL);
  del("/d/x", NULL); /* not ours */
  del("/d/b", "/d/n"); /* b and m: one revision */
  LOOP_UNTIL(R.n == base + 3, 5000);
  expect_ev(base, 'D', "a", NULL, 0);
  expect_ev(base + 1, 'D', "b", NULL, 0);
  expect_ev(base + 2, 'D', "m", NULL, 0);
  for (size_t i = base; i < base + 3; i++) ASSERT_EQ(R.ev[i].deleted, 1);
  loop_for(200);
  ASSERT_EQ(R.n, base + 3);
  ASSERT_EQ(wf_informer_size(inf), 1);
  ASSERT_NULL(wf_informer_get(inf, "a"));
  ASSERT_NULL(wf_informer_get(inf, "m"));
  ASSERT_NOT_NULL(wf_informer_get(inf, "z"));

  int64_t ra = put_node("/d/a", "me", 10);
  LOOP_UNTIL(R.n == base + 4, 5000);
  expect_ev(base + 3, 'U', "a", val_of("me", 10, 0), ra);
  check_matches_etcd(inf, "/d/");
  inf_close(inf);
  teardown();
}

/* ---- the pinned list -------------------------------------------------------------------- */

/* Writes that land while the list is between pages: the later pages still
 * show the snapshot (a key deleted meanwhile is listed, a key created
 * meanwhile is not), and the watch from the snapshot's revision + 1 then
 * brings every change, in order.  Nothing is lost, nothing is out of order. */
static int64_t pin_w[3];

static void pin_hook(wf_informer_t *inf, wf_cache_entry_t *e) {
  if (strcmp(e->key, "p1") != 0 || pin_w[0]) return;
  /* Inside the first page's callback; the writer's loop runs, ours waits. */
  pin_w[0] = put_node("/p/p2", "me", 22);
  pin_w[1] = del("/p/p3", NULL);
  pin_w[2] = put_node("/p/p5", "me", 55);
}

static void test_pinned_list(void) {
  setup();
  memset(pin_w, 0, sizeof pin_w);
  int64_t r1 = put_node("/p/p1", "me", 1);
  int64_t r2 = put_node("/p/p2", "me", 2);
  int64_t r3 = put_node("/p/p3", "me", 3);
  int64_t r4 = put_node("/p/p4", "me", 4);
  R.upsert_hook = pin_hook;
  wf_informer_t *inf = inf_start("/p/", 0, 1); /* one key per page */
  LOOP_UNTIL(R.synced == 1, 5000);
  ASSERT(pin_w[2] > 0);
  expect_ev(0, 'U', "p1", val_of("me", 1, 0), r1);
  expect_ev(1, 'U', "p2", val_of("me", 2, 0), r2); /* the snapshot's value */
  expect_ev(2, 'U', "p3", NULL, r3);               /* deleted since, still listed */
  expect_ev(3, 'U', "p4", NULL, r4);
  expect_ev(4, 'S', NULL, NULL, 0);                /* p5 is not in the snapshot */
  LOOP_UNTIL(R.n == 8, 5000);
  expect_ev(5, 'U', "p2", val_of("me", 22, 0), pin_w[0]);
  expect_ev(6, 'D', "p3", NULL, 0);
  ASSERT_EQ(R.ev[6].deleted, 1);
  expect_ev(7, 'U', "p5", val_of("me", 55, 0), pin_w[2]);
  loop_for(200);
  ASSERT_EQ(R.n, 8);
  check_matches_etcd(inf, "/p/");
  inf_close(inf);
  teardown();
}

/* ---- compaction ------------------------------------------------------------------------- */

/* The watch breaks; meanwhile a key gets two new values, another is
 * deleted, a third is created, and etcd compacts past the watch's resume
 * revision.  The watch cannot resume: the informer re-lists and watches on.
 * It reports the newest value only (the compacted middle value never), the
 * delete, the new key, nothing for the unchanged key, and the watch works
 * again after it. */
static void test_compaction(void) {
  setup();
  put_node("/c/a", "me", 1);
  put_node("/c/b", "me", 1);
  int64_t rc = put_node("/c/c", "me", 1);
  wf_informer_t *inf = inf_start("/c/", 0, 2);
  LOOP_UNTIL(R.synced == 1, 5000);
  LOOP_UNTIL(wf_informer_live(inf), 5000);
  ASSERT_EQ(R.n, 4);

  /* Break the watch's connection; the informer's loop does not run until
   * the writes and the compaction are done, so it cannot reconnect early. */
  wf__etcd_watch_drop(inf_watch());
  put_node("/c/a", "me", 2);
  int64_t rdel = del("/c/b", NULL);
  int64_t rd = put_node("/c/d", "me", 1);
  put_node("/c/x", "you", 1);
  int64_t ra3 = put_node("/c/a", "me", 3);
  compact(now_rev());
  LOOP_UNTIL(R.resynced == 1, 10000);
  ASSERT_EQ(R.ev[R.n - 1].type, 'R');
  /* Between the first sync and the re-list: exactly a = 3, b gone, d new. */
  ASSERT_EQ(R.n - 5, 3);
  size_t ia = find_one('U', "a", 4);
  ASSERT_STR_EQ(R.ev[ia].val, val_of("me", 3, 0));
  ASSERT_EQ(R.ev[ia].mod, ra3);
  size_t ib = find_one('D', "b", 4);
  ASSERT_EQ(R.ev[ib].deleted, 1);
  size_t id = find_one('U', "d", 4);
  ASSERT_EQ(R.ev[id].mod, rd);
  ASSERT_EQ(wf_informer_get(inf, "c")->mod_revision, rc);
  ASSERT(rdel > 0);

  /* The watch resumed right after the re-list's snapshot. */
  LOOP_UNTIL(wf_informer_live(inf), 5000);
  int64_t re = put_node("/c/e", "me", 1);
  del("/c/c", NULL);
  LOOP_UNTIL(R.n == 10, 5000);
  expect_ev(8, 'U', "e", val_of("me", 1, 0), re);
  expect_ev(9, 'D', "c", NULL, 0);
  loop_for(200);
  ASSERT_EQ(R.n, 10);
  ASSERT_EQ(R.resynced, 1);
  check_matches_etcd(inf, "/c/");
  inf_close(inf);
  teardown();
}

/* ---- resync ----------------------------------------------------------------------------- */

/* A watch that missed events (here: moved past them by hand) leaves the
 * cache behind etcd; the periodic resync (every 2 s) repairs it, reporting
 * only what differs, and the watch it starts afterwards works.  A resync
 * that finds nothing changed reports nothing. */
static void test_resync_repairs(void) {
  setup();
  put_node("/r/a", "me", 1);
  put_node("/r/b", "me", 1);
  int64_t rc = put_node("/r/c", "me", 1);
  t_put("/r/m", val_of("me", 1, 1));
  wf_informer_t *inf = inf_start("/r/", 2, 2);
  LOOP_UNTIL(R.synced == 1, 5000);
  LOOP_UNTIL(wf_informer_live(inf), 5000);
  ASSERT_EQ(R.n, 5);

  /* Make the watch skip what comes next. */
  wf_etcd_watch_restart(inf_watch(), now_rev() + 1000);
  int64_t ra = put_node("/r/a", "me", 2);
  del("/r/b", NULL);
  int64_t rd = put_node("/r/d", "me", 1);
  int64_t rm = put_node("/r/m", "me", 2); /* meta-only -> kept */
  loop_for(300);
  ASSERT_EQ(R.n, 5);          /* missed indeed */
  ASSERT_EQ(R.resynced, 0);   /* the period is not over yet */
  LOOP_UNTIL(R.resynced == 1, 5000);
  ASSERT_EQ(R.n, 5 + 4 + 1);
  size_t i = find_one('U', "a", 5);
  ASSERT_EQ(R.ev[i].mod, ra);
  ASSERT_STR_EQ(R.ev[i].val, val_of("me", 2, 0));
  ASSERT_EQ(R.ev[find_one('D', "b", 5)].deleted, 1);
  ASSERT_EQ(R.ev[find_one('U', "d", 5)].mod, rd);
  ASSERT_EQ(R.ev[find_one('U', "m", 5)].mod, rm);
  ASSERT_EQ(count_type('U', 5) + count_type('D', 5), 4); /* c unchanged: not reported */
  ASSERT_EQ(wf_informer_get(inf, "c")->mod_revision, rc);
  check_matches_etcd(inf, "/r/");

  /* The new watch delivers; the next periodic resync changes nothing. */
  LOOP_UNTIL(wf_informer_live(inf), 5000);
  size_t base = R.n;
  int64_t re = put_node("/r/e", "me", 1);
  LOOP_UNTIL(R.n == base + 1, 5000);
  expect_ev(base, 'U', "e", NULL, re);
  LOOP_UNTIL(R.resynced == 2, 5000);
  ASSERT_EQ(R.n, base + 2); /* only the 'R' marker */
  check_matches_etcd(inf, "/r/");
  inf_close(inf);
  teardown();
}

/* Resync asked from inside the callbacks, which the header allows: during
 * the first list (it runs again right after), from a synced callback, and
 * from a watch event in the middle of a batch (the rest of the batch is
 * left to the list).  Each key is still reported exactly once per change,
 * and the cache ends equal to etcd. */
static int rcb_phase;

static void rcb_upsert(wf_informer_t *inf, wf_cache_entry_t *e) {
  if (rcb_phase == 0 && strcmp(e->key, "a") == 0) {
    rcb_phase = 1;
    wf_informer_resync(inf); /* during the first list */
  }
}

static void rcb_synced(wf_informer_t *inf, int first) {
  if (rcb_phase == 1 && !first) {
    rcb_phase = 2;
    wf_informer_resync(inf); /* from the synced callback */
  }
}

static void rcb_delete(wf_informer_t *inf, wf_cache_entry_t *e, int deleted) {
  if (rcb_phase == 3 && strcmp(e->key, "b") == 0) {
    rcb_phase = 4;
    wf_informer_resync(inf); /* from the watch, mid-batch (b, c, d share a revision) */
  }
}

static void test_resync_in_callback(void) {
  setup();
  rcb_phase = 0;
  put_node("/rc/a", "me", 1);
  put_node("/rc/b", "me", 1);
  put_node("/rc/c", "me", 1);
  put_node("/rc/d", "me", 1);
  put_node("/rc/e", "me", 1);
  R.upsert_hook = rcb_upsert;
  R.synced_hook = rcb_synced;
  R.delete_hook = rcb_delete;
  wf_informer_t *inf = inf_start("/rc/", 0, 2);
  LOOP_UNTIL(R.resynced == 2, 5000);
  ASSERT_EQ(rcb_phase, 2);
  ASSERT_EQ(count_type('U', 0), 5); /* re-lists of unchanged keys report nothing */
  ASSERT_EQ(count_type('D', 0), 0);
  LOOP_UNTIL(wf_informer_live(inf), 5000);
  loop_for(100);
  ASSERT_EQ(R.resynced, 2);

  rcb_phase = 3;
  size_t base = R.n;
  del("/rc/b", "/rc/e"); /* b, c, d in one revision */
  LOOP_UNTIL(R.resynced == 3, 5000);
  ASSERT_EQ(rcb_phase, 4);
  ASSERT_EQ(R.ev[find_one('D', "b", base)].deleted, 1);
  ASSERT_EQ(R.ev[find_one('D', "c", base)].deleted, 1);
  ASSERT_EQ(R.ev[find_one('D', "d", base)].deleted, 1);
  ASSERT_EQ(count_type('U', base), 0);
  ASSERT_EQ(count_type('D', base), 3);
  LOOP_UNTIL(wf_informer_live(inf), 5000);
  int64_t rf = put_node("/rc/f", "me", 1);
  LOOP_UNTIL(count_type('U', base) == 1, 5000);
  ASSERT_EQ(R.ev[find_one('U', "f", base)].mod, rf);
  check_matches_etcd(inf, "/rc/");
  inf_close(inf);
  teardown();
}

/* Resync asked from on_delete while a re-list reports a key that vanished
 * (the sweep after the list's last page): the other keys did not vanish
 * and must not be reported gone, nor reported again as new.  Before the
 * fix in on_list_done (the sweep runs with `listing` set, so the resync
 * waits), the resync bumped the generation mid-sweep, the rest of the sweep
 * reported every other key gone, the informer went WATCHING while the new
 * list ran, on_page ignored that list's pages, and the cache stayed empty
 * although etcd was not. */
static void vanish_delete(wf_informer_t *inf, wf_cache_entry_t *e, int deleted) {
  if (strcmp(e->key, "v1") == 0) wf_informer_resync(inf);
}

static void test_resync_in_vanish(void) {
  setup();
  put_node("/v/v1", "me", 1);
  put_node("/v/v2", "me", 1);
  put_node("/v/v3", "me", 1);
  wf_informer_t *inf = inf_start("/v/", 0, 1000);
  LOOP_UNTIL(R.synced == 1, 5000);
  LOOP_UNTIL(wf_informer_live(inf), 5000);
  ASSERT_EQ(R.n, 4);
  /* The watch misses the delete; the forced re-list finds v1 gone. */
  wf_etcd_watch_restart(inf_watch(), now_rev() + 1000);
  del("/v/v1", NULL);
  R.delete_hook = vanish_delete;
  resync(inf);
  LOOP_UNTIL(R.resynced == 2, 5000);
  ASSERT_EQ(R.ev[find_one('D', "v1", 4)].deleted, 1);
  ASSERT_EQ(count_type('D', 4), 1);
  ASSERT_EQ(count_type('U', 4), 0);
  LOOP_UNTIL(wf_informer_live(inf), 5000);
  int64_t r4 = put_node("/v/v4", "me", 1);
  LOOP_UNTIL(count_type('U', 4) == 1, 5000);
  ASSERT_EQ(R.ev[find_one('U', "v4", 4)].mod, r4);
  check_matches_etcd(inf, "/v/");
  inf_close(inf);
  teardown();
}

/* ---- close ------------------------------------------------------------------------------ */

/* Close while the first list is in flight, during a forced re-list, and
 * with a live watch:
 * the callback fires once, on a later iteration, nothing else fires after
 * close (the test's callbacks assert it), writes after it reach nobody,
 * and the loop closes with no handle left. */
static void test_close(void) {
  setup();
  put_node("/cl/a", "me", 1);
  wf_informer_t *inf = inf_start("/cl/", 1, 1000);
  inf_close(inf); /* before the list answered */
  ASSERT_EQ(R.n, 0);

  R.closed = 0;
  inf = inf_start("/cl/", 1, 1000);
  LOOP_UNTIL(R.synced == 1, 5000);
  ASSERT_EQ(R.n, 2);
  resync(inf);
  inf_close(inf); /* during a forced re-list */
  ASSERT_EQ(R.n, 2);

  memset(&R, 0, sizeof R);
  inf = inf_start("/cl/", 1, 1000);
  LOOP_UNTIL(R.synced == 1, 5000);
  LOOP_UNTIL(wf_informer_live(inf), 5000);
  ASSERT_EQ(R.n, 2);
  inf_close(inf); /* with a live watch */
  put_node("/cl/a", "me", 2);
  del("/cl/a", NULL);
  loop_for(1200); /* past the resync period too */
  ASSERT_EQ(R.n, 2);
  ASSERT_EQ(ic->nwatches, 0); /* its watch is released */
  teardown();
}

/* An informer whose etcd is unreachable keeps retrying its list (nothing
 * reported, not live) and still closes cleanly with its retry timer armed. */
static void test_close_unreachable(void) {
  setup();
  wf_etcd_t *good = ic;
  ic = connect_on_loop("http://127.0.0.1:1");
  wf_informer_t *inf = inf_start("/u/", 0, 1000);
  loop_for(600);
  ASSERT_EQ(R.n, 0);
  ASSERT(!wf_informer_live(inf));
  ASSERT_EQ(wf_informer_size(inf), 0);
  inf_close(inf);
  int closed = 0;
  wf_etcd_close(ic, on_closed, &closed);
  LOOP_UNTIL(closed == 1, 5000);
  ic = good;
  teardown();
}

static const wf_test_t tests[] = {
    WF_TEST(list_then_watch),    WF_TEST(filter),
    WF_TEST(delete),             WF_TEST(pinned_list),
    WF_TEST(compaction),         WF_TEST(resync_repairs),
    WF_TEST(resync_in_callback), WF_TEST(resync_in_vanish),
    WF_TEST(close),              WF_TEST(close_unreachable),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
