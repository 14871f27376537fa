/*
 * test-restart: a watch across a real etcd restart (SIGTERM, down for a
 * second, started again on the same data; test/etcd/with_restartable_etcd.py
 * does it on SIGUSR1).  The gateway ends the open stream with a bare
 * {"error":...}; the watch must report the drop once, keep retrying with
 * backoff while etcd is down, reconnect by itself, and replay what was
 * written before it got back: every event exactly once, in order.
 */
#include <signal.h>

#include "etcd-sync.h"

static struct {
  int connected, disconnected, last_err;
  char last_msg[256];
  size_t n;
  int64_t mod[64];
  int val[64];
} rec;

static void on_events(wf_etcd_watch_t *w, const wf_etcd_event_t *ev, size_t n, void *data) {
  ASSERT(!t_in_call);
  for (size_t i = 0; i < n; i++) {
    ASSERT(rec.n < 64);
    ASSERT_EQ(ev[i].type, WF_ETCD_PUT);
    rec.mod[rec.n] = ev[i].kv.mod_revision;
    rec.val[rec.n] = atoi(ev[i].kv.value);
    rec.n++;
  }
}

static void on_state(wf_etcd_watch_t *w, int connected, int err, void *data) {
  ASSERT(!t_in_call);
  if (connected) {
    rec.connected++;
  } else {
    rec.disconnected++;
    rec.last_err = err;
    snprintf(rec.last_msg, sizeof rec.last_msg, "%s", wf_etcd_errmsg(t_etcd));
  }
}

static void put_n(int i, t_res_t *r) {
  char v[16];
  snprintf(v, sizeof v, "%d", i);
  memset(r, 0, sizeof *r);
  CALL(wf_etcd_put(t_etcd, "/s/k", 4, v, strlen(v), 0, t_put_cb, r));
  RUN_UNTIL(r->done);
}

static void test_watch_across_restart(void) {
  const char *pid_s = getenv("WF_TEST_ETCD_RESTART_PID");
  if (!pid_s) WF_FAIL("run under test/etcd/with_restartable_etcd.py");
  t_setup();
  wf_etcd_watch_cbs_t cbs = {on_events, NULL, on_state};
  wf_etcd_watch_t *w = wf_etcd_watch(t_etcd, "/s/", 3, 0, &cbs, NULL);
  ASSERT_NOT_NULL(w);
  RUN_UNTIL(rec.connected == 1);
  t_res_t r;
  for (int i = 0; i < 10; i++) {
    put_n(i, &r);
    ASSERT_OK(r.err);
  }
  RUN_UNTIL(rec.n == 10);

  ASSERT_OK(kill((pid_t)atoi(pid_s), SIGUSR1));
  RUN_UNTIL(rec.disconnected == 1);
  fprintf(stderr, "watch dropped: %s (%s)\n", wf_strerror(rec.last_err), rec.last_msg);

  /* Unary calls fail while etcd is down, then work again; the first write
   * that lands usually beats the watch's backoff, so the watch has to
   * replay it after reconnecting. */
  int failures = 0;
  for (;;) {
    put_n(10, &r);
    if (r.err == 0) break;
    ASSERT(r.err != UV_ECANCELED);
    failures++;
    ASSERT(failures < 200);
    t_sleep_ms(50);
  }
  ASSERT(failures > 0);
  RUN_UNTIL(rec.connected == 2);
  ASSERT_EQ(rec.disconnected, 1);  /* one report per outage, not per retry */
  for (int i = 11; i < 20; i++) {
    put_n(i, &r);
    ASSERT_OK(r.err);
  }
  RUN_UNTIL(rec.n == 20);
  t_sleep_ms(200);
  ASSERT_EQ(rec.n, 20);
  for (size_t i = 0; i < rec.n; i++) {
    ASSERT_EQ(rec.val[i], (int)i);
    if (i) ASSERT(rec.mod[i] > rec.mod[i - 1]);
  }
  wf_etcd_watch_cancel(w);
  t_teardown();
}

static const wf_test_t tests[] = {WF_TEST(watch_across_restart)};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
