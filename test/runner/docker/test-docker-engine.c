/*
 * test-docker-engine: the engine itself coming and going.
 *   - no engine at the address: a step waits --docker-wait seconds, then
 *     fails "docker engine unreachable at ..."; list fails too;
 *   - dockerd stopped (SIGTERM, through with_docker.py) while a step runs:
 *     the step fails "docker engine went away ..." (dockerd stops its
 *     containers and answers their waits on its way out, so the runner must
 *     not take that answer for the step's own exit);
 *   - a step started while dockerd is down waits for it and runs once it is
 *     back; the next steps run as usual.
 */
#include "docker-test.h"

static uv_loop_t *loop;
static char *tmp;
static const char *node = "dtest-engine";

static void step(dt_step_t *s, const char *key, const char *cmd) {
  memset(s, 0, sizeof *s);
  s->key = key;
  s->grace_s = 2;
  dt_param(s, "IMAGE_URL", "wf/busybox");
  dt_param(s, "IMAGE_CMD", cmd);
  dt_param(s, "CONTAINER_NETWORK", "none");
}

static char *run_to_end(wf_runner_t *r, dt_step_t *s, dt_outcome_t *o) {
  dt_log_t log;
  fprintf(stderr, "step %s\n", s->key);
  dt_log_open(loop, &log, tmp, s->key, 0);
  s->log = log.f;
  if (dt_start(loop, r, node, s, o)) dt_run_until(loop, &o->done);
  dt_log_close(loop, &log);
  return dt_read_file(log.path);
}

static void test_no_engine(void) {
  char host[700];
  wf_runner_t *r;
  dt_step_t s;
  dt_outcome_t o;
  dt_list_t l;
  uint64_t t0;
  char *text;

  snprintf(host, sizeof host, "unix://%s/no-such.sock", tmp);
  r = dt_runner(loop, host, node, NULL, 0, 2);
  step(&s, "e-noengine", "true");
  t0 = wf_mono_ms();
  text = run_to_end(r, &s, &o);
  ASSERT(strstr(o.error, "docker engine unreachable at unix://") != NULL);
  ASSERT(strstr(o.error, "no-such.sock") != NULL);
  ASSERT(o.t_exit_ms - t0 >= 1900);
  ASSERT(o.t_exit_ms - t0 < 4000);
  ASSERT_EQ(wf_docker_runner_reachable(r), 0);
  free(text);
  dt_list(loop, r, &l);
  ASSERT(l.err != 0);
  /* A cancel while waiting for the engine ends the step at once. */
  step(&s, "e-noengine-cancel", "true");
  {
    dt_log_t log;
    dt_log_open(loop, &log, tmp, s.key, 0);
    s.log = log.f;
    ASSERT_NOT_NULL(dt_start(loop, r, node, &s, &o));
    uv_run(loop, UV_RUN_NOWAIT);
    dt_cancel(o.run);
    dt_run_until(loop, &o.done);
    ASSERT_EQ(o.canceled, 1);
    ASSERT_STR_EQ(o.error, "");
    dt_log_close(loop, &log);
  }
  dt_runner_close(loop, r);

  /* Hosts that are not docker hosts are refused at creation. */
  {
    wf_docker_opts_t opts;
    char err[256];
    memset(&opts, 0, sizeof opts);
    opts.host = "http://example.com";
    opts.node_name = node;
    ASSERT_NULL(wf_docker_runner_create(loop, &opts, err, sizeof err));
    ASSERT(strstr(err, "--docker-host") != NULL);
  }
}

static void test_engine_restart(void) {
  wf_runner_t *r = dt_runner(loop, dt_env("WF_TEST_DOCKER_HOST"), node, NULL, 0, 60);
  dt_step_t s;
  dt_outcome_t o;
  dt_log_t log;
  char *text;

  /* A step runs; dockerd is stopped under it. */
  step(&s, "e-gone", "[\"sh\",\"-c\",\"trap 'exit 0' TERM; echo up; sleep 60 & wait\"]");
  dt_log_open(loop, &log, tmp, s.key, 0);
  s.log = log.f;
  ASSERT_NOT_NULL(dt_start(loop, r, node, &s, &o));
  while (!o.started && !o.done) uv_run(loop, UV_RUN_ONCE);
  ASSERT_EQ(o.done, 0);
  fprintf(stderr, "stopping dockerd\n");
  dt_ctl(SIGUSR1);
  dt_run_until(loop, &o.done);
  dt_log_close(loop, &log);
  ASSERT(strstr(o.error, "docker engine went away") != NULL);
  text = dt_read_file(log.path);
  ASSERT_STR_EQ(text, "up\n");
  free(text);
  dt_ctl_wait(loop);
  ASSERT_EQ(wf_docker_runner_reachable(r), 0);

  /* A step started while it is down waits for it... */
  step(&s, "e-waits", "echo,after the restart");
  dt_log_open(loop, &log, tmp, s.key, 0);
  s.log = log.f;
  ASSERT_NOT_NULL(dt_start(loop, r, node, &s, &o));
  {
    uint64_t t0 = wf_mono_ms();
    while (wf_mono_ms() - t0 < 1000) {
      uv_run(loop, UV_RUN_NOWAIT);
      usleep(10000);
    }
  }
  ASSERT_EQ(o.done, 0);
  fprintf(stderr, "starting dockerd again\n");
  dt_ctl(SIGUSR2);
  /* ...and runs once it is back. */
  dt_run_until(loop, &o.done);
  dt_log_close(loop, &log);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_EQ(o.exit_code, 0);
  text = dt_read_file(log.path);
  ASSERT_STR_EQ(text, "after the restart\n");
  free(text);
  dt_ctl_wait(loop);
  ASSERT_EQ(wf_docker_runner_reachable(r), 1);

  /* And the next ones as usual. */
  step(&s, "e-next", "echo,next");
  text = run_to_end(r, &s, &o);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_STR_EQ(text, "next\n");
  free(text);

  dt_runner_close(loop, r);
}

static const wf_test_t tests[] = {
    WF_TEST(no_engine), WF_TEST(engine_restart),
};

int main(int argc, char **argv) {
  loop = uv_default_loop();
  tmp = dt_tmpdir();
  int rc = WF_TEST_MAIN(argc, argv, tests);
  wf_test_close_loop(loop);
  dt_rmrf(tmp);
  free(tmp);
  return rc;
}
