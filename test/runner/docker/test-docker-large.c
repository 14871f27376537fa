/*
 * test-docker-large: output volume through the attach stream on a real
 * dockerd.  200,000 lines on stdout and stderr arrive complete and in order;
 * 1 GiB of output lands in the log file byte for byte while the process's
 * RSS stays under 32 MB (the log file's backpressure pauses the socket, so
 * dockerd and then the container wait instead of our memory growing).  The
 * throughput is printed: dockerd's attach path, not this agent, sets it
 * (about the same as `docker run` attached, measured here).  The
 * RSS bound is checked in the normal build only: ASan's shadow memory and
 * quarantine are not the agent's.
 */
#include <fcntl.h>

#include "docker-test.h"

static uv_loop_t *loop;
static wf_runner_t *runner;
static char *tmp;
static const char *node = "dtest-large";
static long max_rss_kb;
static uv_timer_t rss_timer;

static void on_rss(uv_timer_t *t) {
  long kb = dt_rss_kb();
  (void)t;
  if (kb > max_rss_kb) max_rss_kb = kb;
}

static void step(dt_step_t *s, const char *key, const char *cmd) {
  memset(s, 0, sizeof *s);
  s->key = key;
  s->grace_s = 2;
  dt_param(s, "IMAGE_URL", "wf/busybox");
  dt_param(s, "IMAGE_CMD", cmd);
  dt_param(s, "CONTAINER_NETWORK", "none");
}

static void test_lines(void) {
  dt_step_t s;
  dt_outcome_t o;
  dt_log_t log;
  char *text, *want, *p;
  int i;

  /* Docker reads stdout and stderr through two pipes and copies whatever
   * each holds, so output written to both at the same moment interleaves
   * at any byte (seq's stdout is block-buffered: lines split).  The pauses
   * keep the stderr line apart; the order within stdout is exact. */
  step(&s, "l-lines", "sh,-c,seq 1 100000; sleep 0.3; echo err >&2; sleep 0.3; seq 100001 200000");
  dt_log_open(loop, &log, tmp, s.key, 0);
  s.log = log.f;
  ASSERT_NOT_NULL(dt_start(loop, runner, node, &s, &o));
  dt_run_until(loop, &o.done);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_EQ(o.exit_code, 0);
  dt_log_close(loop, &log);
  text = dt_read_file(log.path);
  want = wf_malloc(2000000);
  p = want;
  for (i = 1; i <= 200000; i++) {
    p += sprintf(p, "%d\n", i);
    if (i == 100000) p += sprintf(p, "err\n");
  }
  ASSERT_EQ(strlen(text), (size_t)(p - want));
  ASSERT(strcmp(text, want) == 0);
  free(text);
  free(want);
}

static void test_gib(void) {
  int asan = getenv("WF_ASAN") != NULL;
  uint64_t bytes = (uint64_t)1 << 30;
  char cmd[128];
  dt_step_t s;
  dt_outcome_t o;
  dt_log_t log;
  uint64_t t0, ms;
  struct stat st;
  char *buf;
  int fd;
  ssize_t n;
  uint64_t total = 0;

  snprintf(cmd, sizeof cmd, "sh,-c,head -c %llu /dev/zero; echo; echo done",
           (unsigned long long)bytes);
  step(&s, "l-gib", cmd);
  dt_log_open(loop, &log, tmp, s.key, 0);
  s.log = log.f;
  max_rss_kb = dt_rss_kb();
  fprintf(stderr, "RSS before: %ld kB\n", max_rss_kb);
  uv_timer_init(loop, &rss_timer);
  uv_timer_start(&rss_timer, on_rss, 20, 20);
  t0 = wf_mono_ms();
  ASSERT_NOT_NULL(dt_start(loop, runner, node, &s, &o));
  dt_run_until(loop, &o.done);
  dt_log_close(loop, &log);
  ms = wf_mono_ms() - t0;
  uv_close((uv_handle_t *)&rss_timer, NULL);
  on_rss(NULL);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_EQ(o.exit_code, 0);
  fprintf(stderr, "1 GiB in %llu ms (%.0f MiB/s), max RSS %ld kB%s\n", (unsigned long long)ms,
          1024.0 * 1000 / (double)(ms ? ms : 1), max_rss_kb, asan ? " (ASan build)" : "");

  ASSERT_OK(stat(log.path, &st));
  ASSERT_EQ((uint64_t)st.st_size, bytes + 6);
  /* Every byte: zeros, then "\ndone\n". */
  fd = open(log.path, O_RDONLY);
  ASSERT(fd >= 0);
  buf = wf_malloc(1 << 20);
  while ((n = read(fd, buf, 1 << 20)) > 0) {
    for (ssize_t i = 0; i < n; i++) {
      uint64_t at = total + (uint64_t)i;
      char want = at < bytes ? 0 : "\ndone\n"[at - bytes];
      if (buf[i] != want) WF_FAIL("byte %llu is %d, want %d", (unsigned long long)at, buf[i], want);
    }
    total += (uint64_t)n;
  }
  close(fd);
  free(buf);
  ASSERT_EQ(total, bytes + 6);
  if (!asan) ASSERT(max_rss_kb < 32 * 1024);
  unlink(log.path);
}

static const wf_test_t tests[] = {
    WF_TEST(lines), WF_TEST(gib),
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
