/*
 * test-stall: a watch on a frozen etcd (SIGSTOP, through
 * test/etcd/with_etcd_pid.py, whose etcd sends progress notifications every
 * second).  A quiet but healthy watch is left alone (its idle probes are
 * answered); with an idle deadline above the progress interval it sends no
 * probe at all; a frozen member is noticed within the idle deadline plus the
 * probe timeout, the watch drops its stream, keeps trying while etcd is
 * frozen, and after SIGCONT resumes with no event missed or repeated.
 */
#include "etcd-sync.h"
#include "src/etcd/etcd-internal.h"

#include <signal.h>
#include <sys/types.h>

#define IDLE_MS 500

static pid_t etcd_pid;
static wf_etcd_t *fast;  /* the client under test: short idle deadline */

typedef struct rec_s {
  int connected, disconnected, last_err;
  size_t n;
  char keys[16][32];
} rec_t;

static void on_events(wf_etcd_watch_t *w, const wf_etcd_event_t *ev, size_t n, void *data) {
  rec_t *r = data;
  ASSERT(!t_in_call);
  for (size_t i = 0; i < n; i++) {
    ASSERT(r->n < 16);
    snprintf(r->keys[r->n++], sizeof r->keys[0], "%s", ev[i].kv.key);
  }
}

static void on_state(wf_etcd_watch_t *w, int connected, int err, void *data) {
  rec_t *r = data;
  if (connected) {
    r->connected++;
  } else {
    r->disconnected++;
    r->last_err = err;
  }
}

static const wf_etcd_watch_cbs_t cbs = {on_events, NULL, on_state};

static void thaw(void) {
  if (etcd_pid > 0) kill(etcd_pid, SIGCONT);
}

/* Nothing happens for many idle periods: probes are answered, the stream
 * stays up, and events still arrive on it afterwards. */
static void test_quiet(void) {
  rec_t r;
  memset(&r, 0, sizeof r);
  wf_etcd_watch_t *w = wf_etcd_watch(fast, "/q/", 3, 0, &cbs, &r);
  ASSERT_NOT_NULL(w);
  RUN_UNTIL(r.connected == 1);
  t_sleep_ms(IDLE_MS * 6);
  ASSERT_EQ(r.disconnected, 0);
  t_put("/q/a", "1");
  RUN_UNTIL(r.n == 1);
  ASSERT_EQ(r.connected, 1);
  wf_etcd_watch_cancel(w);
}

/* Range requests sent by a client so far (the metrics counters count every
 * attempt, probes included). */
static uint64_t ranges(const wf_etcd_t *e) { return e->nreq[WF__ETCD_RANGE]; }

/* Progress notifications count as traffic: with an idle deadline longer
 * than etcd's progress interval, a quiet watch never needs a probe. */
static void test_progress_notifications(void) {
  const char *ep = wf_test_etcd();
  const char *pms = getenv("WF_TEST_ETCD_PROGRESS_MS");
  ASSERT_NOT_NULL(pms);
  wf_etcd_opts_t o;
  memset(&o, 0, sizeof o);
  o.endpoints = &ep;
  o.nendpoints = 1;
  o.watch_idle_ms = (uint64_t)atoi(pms) * 5 / 2;
  wf_etcd_t *e = wf_etcd_create(&t_loop, &o);
  ASSERT_NOT_NULL(e);
  rec_t r;
  memset(&r, 0, sizeof r);
  wf_etcd_watch_t *w = wf_etcd_watch(e, "/p/", 3, 0, &cbs, &r);
  ASSERT_NOT_NULL(w);
  RUN_UNTIL(r.connected == 1);
  uint64_t before = ranges(e);
  t_sleep_ms(o.watch_idle_ms * 2);
  ASSERT_EQ(ranges(e), before);
  ASSERT_EQ(r.disconnected, 0);
  /* ... while the fast client's watch (deadline under the interval) does
   * probe: the counter moves there. */
  rec_t r2;
  memset(&r2, 0, sizeof r2);
  wf_etcd_watch_t *w2 = wf_etcd_watch(fast, "/p2/", 4, 0, &cbs, &r2);
  RUN_UNTIL(r2.connected == 1);
  uint64_t fbefore = ranges(fast);
  t_sleep_ms(IDLE_MS * 4);
  ASSERT(ranges(fast) > fbefore);
  ASSERT_EQ(r2.disconnected, 0);
  wf_etcd_watch_cancel(w2);
  wf_etcd_watch_cancel(w);
  int closed = 0;
  wf_etcd_close(e, t_close_cb, &closed);
  RUN_UNTIL(closed);
}

static void test_frozen(void) {
  rec_t r;
  memset(&r, 0, sizeof r);
  wf_etcd_watch_t *w = wf_etcd_watch(fast, "/s/", 3, 0, &cbs, &r);
  ASSERT_NOT_NULL(w);
  RUN_UNTIL(r.connected == 1);
  t_put("/s/a", "1");
  RUN_UNTIL(r.n == 1);

  uint64_t t0 = wf_mono_ms();
  ASSERT_OK(kill(etcd_pid, SIGSTOP));
  RUN_UNTIL(r.disconnected == 1);
  uint64_t took = wf_mono_ms() - t0;
  /* idle deadline + probe timeout (1 s), with room for a slow machine */
  fprintf(stderr, "stall noticed after %" PRIu64 " ms\n", took);
  ASSERT(took >= IDLE_MS);
  ASSERT(took < IDLE_MS + 1000 + 3000);
  /* Stay frozen through a few reconnect attempts. */
  t_sleep_ms(3000);
  ASSERT_EQ(r.connected, 1);
  ASSERT_OK(kill(etcd_pid, SIGCONT));

  RUN_UNTIL(r.connected == 2);
  t_put("/s/b", "2");
  t_put("/s/c", "3");
  RUN_UNTIL(r.n == 3);
  t_sleep_ms(300);
  ASSERT_EQ(r.n, 3);
  ASSERT_STR_EQ(r.keys[0], "/s/a");
  ASSERT_STR_EQ(r.keys[1], "/s/b");
  ASSERT_STR_EQ(r.keys[2], "/s/c");
  ASSERT_EQ(r.disconnected, 1);
  wf_etcd_watch_cancel(w);
}

/* Frozen while a change is already committed but not yet sent can't be
 * staged from outside; what can: a change made right before the freeze is
 * delivered exactly once even though the stream is dropped around it. */
static void test_write_then_freeze(void) {
  rec_t r;
  memset(&r, 0, sizeof r);
  wf_etcd_watch_t *w = wf_etcd_watch(fast, "/f/", 3, 0, &cbs, &r);
  ASSERT_NOT_NULL(w);
  RUN_UNTIL(r.connected == 1);
  t_put("/f/a", "1");
  ASSERT_OK(kill(etcd_pid, SIGSTOP));
  RUN_UNTIL(r.disconnected == 1);
  ASSERT_OK(kill(etcd_pid, SIGCONT));
  RUN_UNTIL(r.connected == 2);
  t_put("/f/b", "2");
  RUN_UNTIL(r.n == 2);
  t_sleep_ms(300);
  ASSERT_EQ(r.n, 2);
  ASSERT_STR_EQ(r.keys[0], "/f/a");
  ASSERT_STR_EQ(r.keys[1], "/f/b");
  wf_etcd_watch_cancel(w);
}

static const wf_test_t tests[] = {
    WF_TEST(quiet), WF_TEST(progress_notifications), WF_TEST(frozen),
    WF_TEST(write_then_freeze),
};

int main(int argc, char **argv) {
  const char *pid = getenv("WF_TEST_ETCD_PID");
  if (!pid) WF_FAIL("run under test/etcd/with_etcd_pid.py");
  etcd_pid = (pid_t)atoi(pid);
  atexit(thaw);  /* an ASSERT abort() skips atexit; the wrapper thaws too */
  t_setup();
  const char *ep = wf_test_etcd();
  wf_etcd_opts_t o;
  memset(&o, 0, sizeof o);
  o.endpoints = &ep;
  o.nendpoints = 1;
  o.request_timeout_ms = 1000;
  o.connect_timeout_ms = 1000;
  o.watch_idle_ms = IDLE_MS;
  fast = wf_etcd_create(&t_loop, &o);
  ASSERT_NOT_NULL(fast);
  int rc = WF_TEST_MAIN(argc, argv, tests);
  int closed = 0;
  wf_etcd_close(fast, t_close_cb, &closed);
  RUN_UNTIL(closed);
  t_teardown();
  return rc;
}
