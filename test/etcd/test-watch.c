/*
 * test-watch: watches against a real etcd: put and delete events in order,
 * a replay from history, resuming after dropped connections with no event
 * missed or repeated, large fragmented replays, compaction and restart,
 * cancel from inside a callback, failover and closing the client under a
 * live watch.
 */
#include "etcd-sync.h"
#include "src/etcd/etcd-internal.h"

#define MAXEV 4096

typedef struct rec_s {
  int connected;        /* on_state(1) count */
  int disconnected;     /* on_state(0) count */
  int last_err;
  int state;            /* last `connected` */
  int compacted;
  int64_t compact_rev;
  int batches;
  size_t n;
  struct {
    int type;
    char key[64];
    char val[64];
    size_t vlen;
    int64_t mod;
  } ev[MAXEV];
  /* Behaviour knobs. */
  size_t drop_every;    /* drop the connection after every N events */
  size_t next_drop;
  int drop_once;        /* drop after the next batch */
  size_t n_at_drop;
  int drops;
  int cancel_on_event;
  int dead;             /* cancelled: any callback now is a bug */
} rec_t;

static void on_events(wf_etcd_watch_t *w, const wf_etcd_event_t *ev, size_t n, void *data) {
  rec_t *r = data;
  ASSERT(!t_in_call);
  ASSERT(!r->dead);
  ASSERT(n > 0);
  r->batches++;
  for (size_t i = 0; i < n; i++) {
    ASSERT(r->n < MAXEV);
    r->ev[r->n].type = ev[i].type;
    snprintf(r->ev[r->n].key, sizeof r->ev[r->n].key, "%s", ev[i].kv.key);
    snprintf(r->ev[r->n].val, sizeof r->ev[r->n].val, "%s", ev[i].kv.value);
    r->ev[r->n].vlen = ev[i].kv.value_len;
    r->ev[r->n].mod = ev[i].kv.mod_revision;
    r->n++;
  }
  /* Inside the callback the resume point already covers this batch (it is
   * the last revision itself after a fragment, which may continue it). */
  ASSERT(wf_etcd_watch_next_revision(w) >= ev[n - 1].kv.mod_revision);
  if (r->drop_once) {
    r->drop_once = 0;
    r->n_at_drop = r->n;
    r->drops++;
    wf__etcd_watch_drop(w);
  }
  if (r->drop_every && r->n >= r->next_drop) {
    r->next_drop = r->n + r->drop_every;
    r->drops++;
    wf__etcd_watch_drop(w);
  }
  if (r->cancel_on_event) {
    wf_etcd_watch_cancel(w);
    r->dead = 1;
  }
}

static void on_compacted(wf_etcd_watch_t *w, int64_t rev, void *data) {
  rec_t *r = data;
  ASSERT(!t_in_call);
  ASSERT(!r->dead);
  r->compacted++;
  r->compact_rev = rev;
}

static void on_state(wf_etcd_watch_t *w, int connected, int err, void *data) {
  rec_t *r = data;
  ASSERT(!t_in_call);
  ASSERT(!r->dead);
  ASSERT(connected != r->state);  /* changes only */
  r->state = connected;
  if (connected) {
    ASSERT_OK(err);
    r->connected++;
  } else {
    ASSERT(err != 0);
    r->disconnected++;
    r->last_err = err;
  }
}

static const wf_etcd_watch_cbs_t cbs = {on_events, on_compacted, on_state};

static rec_t *rec_new(void) {
  rec_t *r = wf_calloc(1, sizeof *r);
  r->state = -1;
  return r;
}

static wf_etcd_watch_t *watch(const char *prefix, int64_t rev, rec_t *r) {
  t_in_call = 1;
  wf_etcd_watch_t *w = wf_etcd_watch(t_etcd, prefix, strlen(prefix), rev, &cbs, r);
  t_in_call = 0;
  ASSERT_NOT_NULL(w);
  return w;
}

static void cancel(wf_etcd_watch_t *w, rec_t *r) {
  wf_etcd_watch_cancel(w);
  r->dead = 1;
}

static void expect(const rec_t *r, size_t i, int type, const char *key, const char *val,
                   int64_t mod) {
  ASSERT(i < r->n);
  ASSERT_EQ(r->ev[i].type, type);
  ASSERT_STR_EQ(r->ev[i].key, key);
  if (val) ASSERT_STR_EQ(r->ev[i].val, val);
  ASSERT_EQ(r->ev[i].mod, mod);
}

static void test_basic(void) {
  rec_t *r = rec_new();
  wf_etcd_watch_t *w = watch("/w/", 0, r);
  ASSERT_EQ(wf_etcd_watch_next_revision(w), 0);
  RUN_UNTIL(r->connected == 1);
  int64_t start = wf_etcd_watch_next_revision(w);
  ASSERT(start > 0);
  int64_t r1 = t_put("/w/one", "1");
  ASSERT_EQ(r1, start);  /* the watch began right after the revision it saw */
  int64_t r2 = t_put("/w/one", "11");
  int64_t r3 = t_put("/w/two", "2");
  t_put("/other", "x");
  ASSERT_EQ(t_delete("/w/one", NULL), 1);
  int64_t r4 = r3 + 2;
  ASSERT_EQ(t_delete("/w/", "/w0"), 1);
  int64_t r5 = r4 + 1;
  RUN_UNTIL(r->n == 5);
  expect(r, 0, WF_ETCD_PUT, "/w/one", "1", r1);
  expect(r, 1, WF_ETCD_PUT, "/w/one", "11", r2);
  expect(r, 2, WF_ETCD_PUT, "/w/two", "2", r3);
  expect(r, 3, WF_ETCD_DELETE, "/w/one", "", r4);
  expect(r, 4, WF_ETCD_DELETE, "/w/two", "", r5);
  ASSERT_EQ(wf_etcd_watch_next_revision(w), r5 + 1);
  t_sleep_ms(200);
  ASSERT_EQ(r->n, 5);  /* nothing for /other */
  ASSERT_EQ(r->disconnected, 0);
  cancel(w, r);
  t_sleep_ms(50);
  free(r);
}

static void test_history(void) {
  int64_t r1 = t_put("/h/a", "1");
  t_put("/h/b", "2");
  t_delete("/h/a", NULL);
  int64_t r4 = t_put("/h/c", "3");
  rec_t *r = rec_new();
  wf_etcd_watch_t *w = watch("/h/", r1, r);
  RUN_UNTIL(r->n == 4);
  expect(r, 0, WF_ETCD_PUT, "/h/a", "1", r1);
  expect(r, 2, WF_ETCD_DELETE, "/h/a", "", r1 + 2);
  expect(r, 3, WF_ETCD_PUT, "/h/c", "3", r4);
  ASSERT_EQ(wf_etcd_watch_next_revision(w), r4 + 1);
  cancel(w, r);
  free(r);
}

/* ---- resume after broken connections ---------------------------------------------------- */

#define NRESUME 400

static void count_cb(int err, int64_t rev, void *data) {
  ASSERT_OK(err);
  (*(int *)data)++;
}

static void check_exactly_once(const rec_t *r, size_t n, const char *prefix) {
  ASSERT_EQ(r->n, n);
  char *seen = wf_calloc(n, 1);
  for (size_t i = 0; i < r->n; i++) {
    if (i > 0) ASSERT(r->ev[i].mod > r->ev[i - 1].mod);  /* in order, no repeat */
    ASSERT(strncmp(r->ev[i].key, prefix, strlen(prefix)) == 0);
    int v = atoi(r->ev[i].val);
    ASSERT(v >= 0 && (size_t)v < n);
    ASSERT(!seen[v]);
    seen[v] = 1;
  }
  free(seen);
}

static void test_resume_after_drop(void) {
  rec_t *r = rec_new();
  r->drop_every = 37;
  r->next_drop = 37;
  wf_etcd_watch_t *w = watch("/r/", 0, r);
  RUN_UNTIL(r->connected == 1);
  /* Writes keep landing while the watch is down and reconnecting.  How
   * many drops NRESUME writes cause depends on how fast this client keeps
   * up; keep writing (in steps of 20) until the watch was dropped at least
   * three times, so a replay after a drop is always exercised repeatedly. */
  int done = 0;
  int total = 0;
  char k[32], v[16];
  while (total < NRESUME || (r->drops < 3 && total < 4 * NRESUME)) {
    snprintf(k, sizeof k, "/r/k%d", total % 50);
    snprintf(v, sizeof v, "%d", total);
    CALL(wf_etcd_put(t_etcd, k, strlen(k), v, strlen(v), 0, count_cb, &done));
    total++;
    if (total % 20 == 0) RUN_UNTIL(done == total);
  }
  RUN_UNTIL(done == total);
  RUN_UNTIL(r->n >= (size_t)total);
  t_sleep_ms(300);
  check_exactly_once(r, (size_t)total, "/r/");
  ASSERT(r->drops >= 3);  /* replays after a drop come in big batches */
  ASSERT(r->disconnected >= 1);
  ASSERT_EQ(r->last_err, UV_ECONNRESET);
  RUN_UNTIL(r->state == 1);
  cancel(w, r);
  free(r);
}

/* ---- large replays: fragments ----------------------------------------------------------- */

#define NBIG 40
#define BIGVAL (100 * 1024)

static void test_fragments(void) {
  char *val = wf_malloc(BIGVAL);
  int done = 0;
  int64_t first = 0;
  char k[32];
  for (int i = 0; i < NBIG; i++) {
    /* The value starts with its index so check_exactly_once can read it. */
    memset(val, 'a' + i % 26, BIGVAL);
    int n = snprintf(val, 16, "%d", i);
    val[n] = ':';
    snprintf(k, sizeof k, "/big/k%02d", i);
    CALL(wf_etcd_put(t_etcd, k, strlen(k), val, BIGVAL, 0, count_cb, &done));
    RUN_UNTIL(done == i + 1);
    if (i == 0) {
      t_res_t g;
      t_get("/big/k00", &g);
      first = g.kvs[0].mod_revision;
      t_res_free(&g);
    }
  }
  free(val);
  /* ~4 MB of values (5.5 MB of JSON) in one replay: etcd splits it. */
  rec_t *r = rec_new();
  wf_etcd_watch_t *w = watch("/big/", first, r);
  RUN_UNTIL(r->n == NBIG);
  check_exactly_once(r, NBIG, "/big/");
  ASSERT_EQ(r->ev[0].vlen, BIGVAL);
  ASSERT(r->batches > 1);
  cancel(w, r);

  /* The same replay, broken after the first fragment. */
  rec_t *r2 = rec_new();
  r2->drop_once = 1;
  w = watch("/big/", first, r2);
  RUN_UNTIL(r2->n == NBIG);
  ASSERT_EQ(r2->drops, 1);
  ASSERT(r2->n_at_drop < NBIG);  /* it broke in the middle of the replay */
  t_sleep_ms(200);
  check_exactly_once(r2, NBIG, "/big/");
  ASSERT(r2->disconnected >= 1);
  cancel(w, r2);
  t_sleep_ms(50);
  free(r);
  free(r2);
}

/* ---- compaction -------------------------------------------------------------------------- */

static void test_compaction(void) {
  int64_t old = t_put("/c/a", "1");
  t_put("/c/a", "2");
  int64_t now = t_put("/c/b", "3");
  t_res_t res = {0};
  CALL(wf_etcd_compact(t_etcd, now, t_put_cb, &res));
  RUN_UNTIL(res.done);
  ASSERT_OK(res.err);

  rec_t *r = rec_new();
  wf_etcd_watch_t *w = watch("/c/", old, r);
  RUN_UNTIL(r->compacted == 1);
  ASSERT_EQ(r->compact_rev, now);
  ASSERT_EQ(r->state, 0);
  ASSERT_EQ(r->last_err, WF_ECOMPACTED);
  ASSERT_EQ(r->n, 0);
  /* Idle until restarted: writes now are not delivered... */
  int64_t later = t_put("/c/a", "4");
  t_sleep_ms(300);
  ASSERT_EQ(r->n, 0);
  ASSERT_EQ(r->compacted, 1);
  /* ...until the owner re-lists and restarts from its revision + 1. */
  wf_etcd_watch_restart(w, later);
  ASSERT_EQ(wf_etcd_watch_next_revision(w), later);
  RUN_UNTIL(r->n == 1);
  expect(r, 0, WF_ETCD_PUT, "/c/a", "4", later);
  int64_t more = t_put("/c/b", "5");
  RUN_UNTIL(r->n == 2);
  expect(r, 1, WF_ETCD_PUT, "/c/b", "5", more);
  ASSERT_EQ(r->state, 1);
  cancel(w, r);
  free(r);
}

/* ---- cancel and restart from callbacks --------------------------------------------------- */

static void test_cancel_in_callback(void) {
  rec_t *r = rec_new();
  r->cancel_on_event = 1;
  wf_etcd_watch_t *w = watch("/x/", 0, r);
  RUN_UNTIL(r->connected == 1);
  int done = 0;
  for (int i = 0; i < 20; i++) CALL(wf_etcd_put(t_etcd, "/x/k", 4, "v", 1, 0, count_cb, &done));
  RUN_UNTIL(done == 20);
  t_sleep_ms(200);
  ASSERT_EQ(r->batches, 1);
  (void)w;
  free(r);
}

/* Restarting from inside on_events: the rest of that stream is ignored. */
typedef struct {
  rec_t rec;
  int64_t restart_at;
  int restarted;
} rrec_t;

static void on_events_restart(wf_etcd_watch_t *w, const wf_etcd_event_t *ev, size_t n,
                              void *data) {
  rrec_t *rr = data;
  on_events(w, ev, n, &rr->rec);
  if (!rr->restarted) {
    rr->restarted = 1;
    wf_etcd_watch_restart(w, rr->restart_at);
  }
}

static void test_restart_in_callback(void) {
  int64_t a = t_put("/rs/a", "1");
  t_put("/rs/b", "2");
  int64_t c = t_put("/rs/c", "3");
  rrec_t *rr = wf_calloc(1, sizeof *rr);
  rr->rec.state = -1;
  rr->restart_at = c;
  wf_etcd_watch_cbs_t rcbs = {on_events_restart, on_compacted, on_state};
  wf_etcd_watch_t *w = wf_etcd_watch(t_etcd, "/rs/", 4, a, &rcbs, rr);
  ASSERT_NOT_NULL(w);
  /* First batch: the replay a..c; after the restart, c again. */
  RUN_UNTIL(rr->restarted && rr->rec.n >= 4);
  t_sleep_ms(200);
  ASSERT_EQ(rr->rec.n, 4);
  expect(&rr->rec, 3, WF_ETCD_PUT, "/rs/c", "3", c);
  wf_etcd_watch_cancel(w);
  rr->rec.dead = 1;
  t_sleep_ms(50);
  free(rr);
}

/* ---- endpoints and closing -------------------------------------------------------------- */

static void test_failover_and_close(void) {
  const char *eps[] = {"http://127.0.0.1:1", wf_test_etcd()};
  wf_etcd_t *main_etcd = t_etcd;
  wf_etcd_t *e2 = t_connect(eps, 2);
  rec_t *r = rec_new();
  t_in_call = 1;
  wf_etcd_watch_t *w = wf_etcd_watch(e2, "/f/", 3, 0, &cbs, r);
  t_in_call = 0;
  ASSERT_NOT_NULL(w);
  RUN_UNTIL(r->connected == 1);
  ASSERT_STR_EQ(wf_etcd_endpoint(e2), wf_test_etcd());
  int64_t rev = t_put("/f/k", "v");
  RUN_UNTIL(r->n == 1);
  expect(r, 0, WF_ETCD_PUT, "/f/k", "v", rev);
  /* Closing the client stops its watches: no callback after this. */
  int closed = 0;
  wf_etcd_close(e2, t_close_cb, &closed);
  r->dead = 1;
  t_put("/f/k", "again");
  RUN_UNTIL(closed);
  t_sleep_ms(100);
  free(r);

  /* A watch that never reaches etcd reports it once and keeps trying. */
  const char *bad = "http://127.0.0.1:1";
  t_etcd = t_connect(&bad, 1);
  r = rec_new();
  w = watch("/f/", 0, r);
  RUN_UNTIL(r->disconnected == 1);
  ASSERT_EQ(r->last_err, UV_ECONNREFUSED);
  t_sleep_ms(600);
  ASSERT_EQ(r->disconnected, 1);
  closed = 0;
  wf_etcd_close(t_etcd, t_close_cb, &closed);
  r->dead = 1;
  RUN_UNTIL(closed);
  free(r);
  t_etcd = main_etcd;
}

static const wf_test_t tests[] = {
    WF_TEST(basic), WF_TEST(history), WF_TEST(resume_after_drop), WF_TEST(fragments),
    WF_TEST(cancel_in_callback), WF_TEST(restart_in_callback), WF_TEST(failover_and_close),
    WF_TEST(compaction),
};

int main(int argc, char **argv) {
  t_setup();
  int rc = WF_TEST_MAIN(argc, argv, tests);
  t_teardown();
  return rc;
}
