/*
 * local runner: real child processes on a real loop, output through a real
 * logfile.  Covers stream order, exit codes and signals, exact environment,
 * WORKDIR, spawn failure, cancel (plain, TERM-ignoring with the grace
 * period), background daemons, and a large output with bounded memory.
 */
#include <ftw.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wf-test.h"
#include "wf/logstore.h"
#include "wf/mask.h"
#include "wf/runner-local.h"
#include "wf/runner.h"
#include "wf/util.h"

static char tmpdir[256];
/* How the runner instances of this test start children: every case runs
 * with posix_spawn + pidfd (the default) and with the uv_spawn fallback for
 * kernels without pidfd_open (each_mode). */
static enum wf_local_spawn spawn_mode = WF_LOCAL_SPAWN_POSIX;

/* Live heap bytes, to bound the runner's memory while output streams (RSS
 * would not do: ASan keeps freed memory in quarantine). */
#if defined(__SANITIZE_ADDRESS__)
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void) {
  return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}
#endif

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(p);
}

/* One run: what the callbacks saw. */
typedef struct {
  uv_loop_t loop;
  wf_runner_t *runner;
  wf_logfile_t *log;
  wf_run_t *run;
  char path[512];
  int started, exited, closed, in_start;
  int exit_code, term_signal, canceled;
  char error[512];
  char pid[32];
  int log_err;
  uint64_t log_bytes;
  uint64_t t0, t_exit;
  unsigned cancel_after_ms;  /* 0 = never */
  uv_timer_t cancel_timer;
  uv_timer_t sample_timer;   /* samples heap_in_use() while the run goes */
  size_t heap_max;
  size_t max_queue;          /* for the log file; 0 = default */
  int masked;                /* a mask on the log: output read on the loop, not pulled */
  const char *log_path;      /* NULL = a fresh file under tmpdir */
  int log_error_ok;          /* the log file is expected to fail */
  int cancel_twice;
} ctx_t;

static void on_log_closed(wf_logfile_t *f, int err, void *data) {
  ctx_t *c = data;
  c->closed++;
  c->log_err = err;
  c->log_bytes = wf_logfile_bytes(f);
}

static void on_cancel_timer(uv_timer_t *t) {
  ctx_t *c = t->data;
  c->runner->ops->cancel(c->run);
  if (c->cancel_twice) c->runner->ops->cancel(c->run);  /* idempotent */
}

static void on_started(wf_run_t *run, const wf_kv_t *resp, size_t n, void *data) {
  ctx_t *c = data;
  ASSERT_EQ(c->in_start, 0);
  ASSERT_EQ(run, c->run);
  ASSERT_EQ(c->exited, 0);
  c->started++;
  ASSERT_EQ(n, 1);
  ASSERT_STR_EQ(resp[0].key, "pid");
  snprintf(c->pid, sizeof c->pid, "%s", resp[0].value);
  if (c->cancel_after_ms) uv_timer_start(&c->cancel_timer, on_cancel_timer, c->cancel_after_ms, 0);
}

static void on_exit_cb(wf_run_t *run, const wf_run_result_t *r, void *data) {
  ctx_t *c = data;
  ASSERT_EQ(c->in_start, 0);  /* never synchronously */
  ASSERT_EQ(run, c->run);
  c->exited++;
  c->t_exit = uv_hrtime();
  c->exit_code = r->exit_code;
  c->term_signal = r->term_signal;
  c->canceled = r->canceled;
  snprintf(c->error, sizeof c->error, "%s", r->error ? r->error : "");
  if (c->started) {
    ASSERT_EQ(r->nresponse, 1);
    ASSERT_STR_EQ(r->response[0].key, "pid");
    ASSERT_STR_EQ(r->response[0].value, c->pid);
  }
  uv_close((uv_handle_t *)&c->cancel_timer, NULL);
  uv_close((uv_handle_t *)&c->sample_timer, NULL);
  wf_logfile_close(c->log);  /* the engine's job, after on_exit */
  wf_runner_close(c->runner, NULL, NULL);
}

static const wf_run_cbs_t run_cbs = {on_started, on_exit_cb};

static void on_sample(uv_timer_t *t) {
  ctx_t *c = t->data;
  size_t n = heap_in_use();
  if (n > c->heap_max) c->heap_max = n;
}

static void ctx_init(ctx_t *c) {
  wf_local_opts_t o = {.spawn = spawn_mode};
  memset(c, 0, sizeof *c);
  ASSERT_OK(uv_loop_init(&c->loop));
  c->runner = wf_local_runner_create(&c->loop, &o);
  ASSERT_OK(uv_timer_init(&c->loop, &c->cancel_timer));
  ASSERT_OK(uv_timer_init(&c->loop, &c->sample_timer));
  c->cancel_timer.data = c;
  c->sample_timer.data = c;
  uv_timer_start(&c->sample_timer, on_sample, 1, 1);
}

/* Runs CMD (and WORKDIR if non-NULL) with env to completion on c's loop,
 * which it closes; returns the log's content (malloc'd), length in *len. */
static char *run_cmd(ctx_t *c, const char *cmd, const char *workdir, const char *const *env,
                     unsigned grace, size_t *len) {
  static int seq;
  wf_kv_t params[2] = {{"CMD", cmd}, {"WORKDIR", workdir}};
  wf_run_req_t req;
  wf_logfile_cbs_t lcbs = {on_log_closed, NULL};
  char err[256] = "";
  char *out;
  FILE *fp;
  long n;
  wf_mask_t *mask = NULL;

  if (c->log_path)
    snprintf(c->path, sizeof c->path, "%s", c->log_path);
  else
    snprintf(c->path, sizeof c->path, "%s/logs/step.%d", tmpdir, ++seq);
  c->log = wf_logfile_open(&c->loop, c->path, c->max_queue, &lcbs, c);
  if (c->masked) {
    static const char *const secret[] = {"not-in-any-output"};
    mask = wf_mask_create(secret, 1);
    wf_logfile_set_mask(c->log, mask);
  }
  memset(&req, 0, sizeof req);
  req.step_key = "ns.step";
  req.runner_params = params;
  req.nrunner_params = workdir ? 2 : 1;
  req.env = env;
  req.log = c->log;
  req.stop_grace_s = grace;
  c->t0 = uv_hrtime();
  c->in_start = 1;
  c->run = c->runner->ops->start(c->runner, &req, &run_cbs, c, err, sizeof err);
  c->in_start = 0;
  if (!c->run) WF_FAIL("start(%s): %s", cmd, err);
  ASSERT_EQ(c->exited, 0);
  wf_test_close_loop(&c->loop);
  wf_mask_destroy(mask);
  ASSERT_EQ(c->exited, 1);
  ASSERT_EQ(c->closed, 1);
  if (c->log_error_ok) {
    ASSERT(c->log_err < 0);
    *len = 0;
    return calloc(1, 1);
  }
  ASSERT_OK(c->log_err);

  fp = fopen(c->path, "rb");
  ASSERT_NOT_NULL(fp);
  ASSERT_OK(fseek(fp, 0, SEEK_END));
  n = ftell(fp);
  ASSERT_EQ(n, c->log_bytes);
  *len = (size_t)n;
  out = calloc(1, (size_t)n + 1);
  ASSERT_NOT_NULL(out);
  /* Large logs are checked by size only. */
  if (n <= (1 << 20)) {
    rewind(fp);
    ASSERT_EQ(fread(out, 1, (size_t)n, fp), n);
  }
  fclose(fp);
  return out;
}

static double elapsed_s(const ctx_t *c) {
  return (double)(c->t_exit - c->t0) / 1e9;
}

static void expect_output(const char *cmd, const char *const *env, const char *want,
                          int want_code) {
  ctx_t c;
  size_t len;
  char *out;
  ctx_init(&c);
  out = run_cmd(&c, cmd, NULL, env, 5, &len);
  ASSERT_STR_EQ(out, want);
  ASSERT_EQ(c.exit_code, want_code);
  ASSERT_EQ(c.started, 1);
  ASSERT_EQ(c.canceled, 0);
  ASSERT_STR_EQ(c.error, "");
  free(out);
}

static const char *const no_env[] = {NULL};

static void case_order_and_codes(void) {
  ctx_t c;
  size_t len;
  char *out;

  /* stdout and stderr through one pipe keep their order. */
  expect_output("sh,-c,echo a; echo b >&2; echo c", no_env, "a\nb\nc\n", 0);
  expect_output("sh,-c,for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done", no_env,
                "out1\nerr1\nout2\nerr2\nout3\nerr3\nout4\nerr4\nout5\nerr5\n", 0);
  expect_output("sh,-c,echo partial; exit 3", no_env, "partial\n", 3);
  /* JSON array: arguments may contain commas. */
  expect_output("[\"sh\", \"-c\", \"echo one, two\"]", no_env, "one, two\n", 0);
  /* stdin is /dev/null: cat ends at once. */
  expect_output("cat", no_env, "", 0);

  /* Killed by a signal: 128+N, term_signal N. */
  ctx_init(&c);
  out = run_cmd(&c, "sh,-c,echo x; kill -9 $$", NULL, no_env, 5, &len);
  ASSERT_STR_EQ(out, "x\n");
  ASSERT_EQ(c.term_signal, 9);
  ASSERT_EQ(c.exit_code, 137);
  free(out);
}

static void case_env(void) {
  static const char *const env[] = {"FOO=bar", "WORKFLOW_STEP_KEY=ns.step", "EMPTY=",
                                    "SPACED=a b,c", NULL};
  /* Exactly the request's environment: not the node's (PATH, HOME...). */
  expect_output("/usr/bin/env", env, "FOO=bar\nWORKFLOW_STEP_KEY=ns.step\nEMPTY=\nSPACED=a b,c\n",
                0);
  expect_output("/usr/bin/env", no_env, "", 0);
  expect_output("/usr/bin/env", NULL, "", 0);  /* NULL env is empty, not inherited */
  /* Without PATH in the env, a bare name is still found the exec way. */
  expect_output("sh,-c,echo \"$FOO\"", env, "bar\n", 0);
}

static void write_script(const char *path, const char *body, mode_t mode) {
  FILE *fp = fopen(path, "w");
  ASSERT_NOT_NULL(fp);
  fputs(body, fp);
  fclose(fp);
  ASSERT_OK(chmod(path, mode));
}

/* A bare name is searched in the step's PATH, in order, skipping what is
 * not executable; a remembered answer that went away is searched again. */
static void case_path_search(void) {
  char a[PATH_MAX], b[PATH_MAX], pa[PATH_MAX + 16], pb[PATH_MAX + 16], pathenv[2 * PATH_MAX + 8];
  snprintf(a, sizeof a, "%s/bin-a", tmpdir);
  snprintf(b, sizeof b, "%s/bin-b", tmpdir);
  mkdir(a, 0755);
  mkdir(b, 0755);
  snprintf(pa, sizeof pa, "%s/wf-prog", a);
  snprintf(pb, sizeof pb, "%s/wf-prog", b);
  snprintf(pathenv, sizeof pathenv, "PATH=%s:%s", a, b);
  const char *const env[] = {pathenv, NULL};
  write_script(pa, "#!/bin/sh\necho A\n", 0755);
  write_script(pb, "#!/bin/sh\necho B\n", 0755);
  expect_output("wf-prog", env, "A\n", 0);
  expect_output("wf-prog", env, "A\n", 0);  /* remembered */
  ASSERT_OK(unlink(pa));                     /* within the cache's lifetime */
  expect_output("wf-prog", env, "B\n", 0);
  write_script(pa, "#!/bin/sh\necho A\n", 0644);  /* not executable: skipped */
  expect_output("wf-prog", env, "B\n", 0);
  unlink(pa);
  unlink(pb);
  rmdir(a);
  rmdir(b);
}

static void case_workdir(void) {
  ctx_t c;
  size_t len;
  char *out, real[PATH_MAX], want[PATH_MAX + 2];
  ASSERT_NOT_NULL(realpath(tmpdir, real));
  snprintf(want, sizeof want, "%s\n", real);
  ctx_init(&c);
  out = run_cmd(&c, "sh,-c,pwd", tmpdir, no_env, 5, &len);
  ASSERT_STR_EQ(out, want);
  ASSERT_EQ(c.exit_code, 0);
  free(out);

  ctx_init(&c);
  out = run_cmd(&c, "sh,-c,pwd", "/nonexistent-wf-dir", no_env, 5, &len);
  ASSERT_EQ(c.exit_code, 127);
  ASSERT(strncmp(c.error, "cannot run sh: ", 15) == 0);
  ASSERT(strstr(c.error, "/nonexistent-wf-dir") != NULL);
  free(out);
}

static void case_spawn_failure(void) {
  ctx_t c;
  size_t len;
  char *out;
  ctx_init(&c);
  out = run_cmd(&c, "/nonexistent/wf-prog,arg", NULL, no_env, 5, &len);
  ASSERT_STR_EQ(c.error, "cannot run /nonexistent/wf-prog: no such file or directory");
  ASSERT_EQ(c.exit_code, 127);
  ASSERT_EQ(c.started, 0);
  ASSERT_EQ(len, 0);
  free(out);

  ctx_init(&c);
  out = run_cmd(&c, "wf-no-such-program-anywhere", NULL, no_env, 5, &len);
  ASSERT_STR_EQ(c.error, "cannot run wf-no-such-program-anywhere: no such file or directory");
  ASSERT_EQ(c.exit_code, 127);
  free(out);

  ctx_init(&c);
  out = run_cmd(&c, "/etc/passwd", NULL, no_env, 5, &len);  /* not executable */
  ASSERT_STR_EQ(c.error, "cannot run /etc/passwd: permission denied");
  ASSERT_EQ(c.exit_code, 127);
  free(out);
}

static void test_request_errors(void) {
  uv_loop_t loop;
  wf_kv_t none[1] = {{"WORKDIR", "/tmp"}};
  wf_kv_t bad[1] = {{"CMD", "[\"sh\", 1]"}};
  wf_kv_t empty[1] = {{"CMD", ""}};
  wf_run_req_t req;
  char err[256];
  ASSERT_OK(uv_loop_init(&loop));
  wf_runner_t *r = wf_local_runner_create(&loop, NULL);
  memset(&req, 0, sizeof req);
  req.runner_params = none;
  req.nrunner_params = 1;
  ASSERT_NULL(r->ops->start(r, &req, &run_cbs, NULL, err, sizeof err));
  ASSERT(strstr(err, "CMD") != NULL);
  req.runner_params = empty;
  ASSERT_NULL(r->ops->start(r, &req, &run_cbs, NULL, err, sizeof err));
  ASSERT(strstr(err, "CMD") != NULL);
  req.runner_params = bad;
  ASSERT_NULL(r->ops->start(r, &req, &run_cbs, NULL, err, sizeof err));
  ASSERT(strstr(err, "bad CMD") != NULL);
  ASSERT_STR_EQ(r->ops->name, "local");
  ASSERT_STR_EQ(r->ops->unit, "process");
  ASSERT_NULL(r->ops->list);  /* nothing of a local run survives the agent */
  wf_runner_close(r, NULL, NULL);

  {
    wf_kv_t kv[3] = {{"A", "1"}, {"B", "2"}, {"A", "3"}};
    ASSERT_STR_EQ(wf_kv_get(kv, 3, "B"), "2");
    ASSERT_STR_EQ(wf_kv_get(kv, 3, "A"), "3");
    ASSERT_NULL(wf_kv_get(kv, 3, "C"));
    ASSERT_NULL(wf_kv_get(NULL, 0, "C"));
  }
  wf_test_close_loop(&loop);
}

static void case_cancel(void) {
  ctx_t c;
  size_t len;
  char *out;

  /* Plain cancel: SIGTERM ends it at once, well before the grace. */
  ctx_init(&c);
  c.cancel_after_ms = 100;
  c.cancel_twice = 1;
  out = run_cmd(&c, "sleep,60", NULL, no_env, 10, &len);
  ASSERT_EQ(c.canceled, 1);
  ASSERT_EQ(c.term_signal, 15);
  ASSERT_EQ(c.exit_code, 143);
  ASSERT(elapsed_s(&c) < 2.0);
  free(out);

  /* A job that ignores SIGTERM (and so does its child) dies by SIGKILL
   * after the grace. */
  ctx_init(&c);
  c.cancel_after_ms = 300;
  out = run_cmd(&c, "sh,-c,trap '' TERM; echo trapped; sleep 60", NULL, no_env, 1, &len);
  ASSERT_STR_EQ(out, "trapped\n");
  ASSERT_EQ(c.canceled, 1);
  ASSERT_EQ(c.term_signal, 9);
  ASSERT(elapsed_s(&c) >= 1.2);
  ASSERT(elapsed_s(&c) < 4.0);
  free(out);

  /* The whole group is signalled: a grandchild holding the pipe goes too. */
  ctx_init(&c);
  c.cancel_after_ms = 200;
  out = run_cmd(&c, "sh,-c,sleep 60; echo never", NULL, no_env, 10, &len);
  ASSERT_EQ(c.canceled, 1);
  ASSERT(elapsed_s(&c) < 2.0);
  ASSERT_STR_EQ(out, "");
  free(out);
}

static void case_daemon(void) {
  ctx_t c;
  size_t len;
  char *out;
  /* The background sleep keeps the pipe open; the run still ends when sh
   * exits, because the group is killed then. */
  ctx_init(&c);
  out = run_cmd(&c, "sh,-c,sleep 60 & echo started", NULL, no_env, 10, &len);
  ASSERT_STR_EQ(out, "started\n");
  ASSERT_EQ(c.exit_code, 0);
  ASSERT_EQ(c.canceled, 0);
  ASSERT(elapsed_s(&c) < 2.0);
  free(out);
}

/* A process that left the group (setsid) holds the pipe open after the job
 * exited: the run gives up on it after the linger limit (5 s) instead of
 * hanging. */
static void case_escaped_daemon(void) {
  ctx_t c;
  size_t len;
  char *out, cmd[512], pidfile[300];
  FILE *fp;
  int pid = 0;
  snprintf(pidfile, sizeof pidfile, "%s/escaped.pid", tmpdir);
  snprintf(cmd, sizeof cmd,
           "sh,-c,setsid sh -c 'echo $$ > %s; exec sleep 60' & sleep 0.3; echo done", pidfile);
  ctx_init(&c);
  out = run_cmd(&c, cmd, NULL, no_env, 10, &len);
  ASSERT_STR_EQ(out, "done\n");
  ASSERT_EQ(c.exit_code, 0);
  ASSERT(elapsed_s(&c) >= 4.5);
  ASSERT(elapsed_s(&c) < 10.0);
  free(out);
  fp = fopen(pidfile, "r");
  ASSERT_NOT_NULL(fp);
  ASSERT_EQ(fscanf(fp, "%d", &pid), 1);
  fclose(fp);
  ASSERT(pid > 0);
  ASSERT_OK(kill(pid, SIGKILL));  /* still alive: it really escaped */
}

static void case_large(int masked) {
  ctx_t c;
  size_t len;
  char *out;
  struct rusage before, after;
  size_t heap0 = heap_in_use();
  const char *big = getenv("WF_TEST_LOCAL_BYTES");
  unsigned long long bytes = big ? strtoull(big, NULL, 10) : 200000000ull;
  char cmd[128];
  double secs;

  snprintf(cmd, sizeof cmd, "head,-c,%llu,/dev/zero", bytes);
  ASSERT_OK(getrusage(RUSAGE_SELF, &before));
  ctx_init(&c);
  c.masked = masked;
  out = run_cmd(&c, cmd, NULL, no_env, 10, &len);
  ASSERT_OK(getrusage(RUSAGE_SELF, &after));
  ASSERT_EQ(c.exit_code, 0);
  ASSERT_EQ(len, bytes);
  secs = elapsed_s(&c);
  printf("large (%s): %llu bytes in %.2f s = %.0f MiB/s; max RSS %ld -> %ld KiB; "
         "heap peak +%zu KiB\n",
         masked ? "read, masked" : "pulled", bytes, secs, (double)bytes / secs / 1048576.0,
         before.ru_maxrss, after.ru_maxrss, (c.heap_max - heap0) / 1024);
  /* The log queue holds ~1 MiB (in buffers of up to 64 KiB each): the
   * heap must not follow the output's size. */
  if (c.heap_max - heap0 > (8u << 20)) WF_FAIL("heap grew by %zu KiB", (c.heap_max - heap0) / 1024);
  free(out);
  remove(c.path);
}

/* A tiny log queue: the runner pauses and resumes reading thousands of
 * times, and every byte still lands, in order. */
static void case_backpressure(int masked) {
  ctx_t c;
  size_t len;
  char *out, want[64];
  ctx_init(&c);
  c.masked = masked;
  c.max_queue = 4096;
  out = run_cmd(&c, "sh,-c,seq 1 100000", NULL, no_env, 5, &len);
  ASSERT_EQ(c.exit_code, 0);
  ASSERT_EQ(len, 588895);
  ASSERT(strncmp(out, "1\n2\n3\n", 6) == 0);
  snprintf(want, sizeof want, "\n99999\n100000\n");
  ASSERT_STR_EQ(out + len - strlen(want), want);
  free(out);

  ctx_init(&c);
  c.masked = masked;
  c.max_queue = 4096;
  out = run_cmd(&c, "head,-c,30000000,/dev/zero", NULL, no_env, 5, &len);
  ASSERT_EQ(len, 30000000);
  free(out);
}

/* The log file fails (ENOSPC): the runner keeps draining the pipe, so the
 * job is not wedged on a full pipe and still ends normally. */
static void case_log_failure(int masked) {
  ctx_t c;
  size_t len;
  char *out;
  ctx_init(&c);
  c.masked = masked;
  c.log_path = "/dev/full";
  c.log_error_ok = 1;
  c.max_queue = 4096;
  out = run_cmd(&c, "head,-c,10000000,/dev/zero", NULL, no_env, 5, &len);
  ASSERT_EQ(c.exit_code, 0);
  ASSERT_EQ(c.log_err, UV_ENOSPC);
  free(out);
}

/* Runs fn once per way of starting children. */
static void each_mode(void (*fn)(void)) {
  spawn_mode = WF_LOCAL_SPAWN_POSIX;
  fn();
  spawn_mode = WF_LOCAL_SPAWN_FORK;
  fn();
  spawn_mode = WF_LOCAL_SPAWN_POSIX;
}

/* Output pulled into the log by the threadpool (the default), and read
 * through the loop (a mask on the log file needs to see the bytes). */
static void each_read_path(void (*fn)(int masked)) {
  fn(0);
  fn(1);
}

static void test_order_and_codes(void) { each_mode(case_order_and_codes); }
static void test_env(void) { each_mode(case_env); }
static void test_path_search(void) { each_mode(case_path_search); }
static void test_workdir(void) { each_mode(case_workdir); }
static void test_spawn_failure(void) { each_mode(case_spawn_failure); }
static void test_cancel(void) { each_mode(case_cancel); }
static void test_daemon(void) { each_mode(case_daemon); }
static void test_escaped_daemon(void) { each_mode(case_escaped_daemon); }
static void test_backpressure(void) { each_read_path(case_backpressure); }
static void test_log_failure(void) { each_read_path(case_log_failure); }
static void test_large(void) { each_read_path(case_large); }

static const wf_test_t tests[] = {
    WF_TEST(order_and_codes), WF_TEST(env),         WF_TEST(path_search),
    WF_TEST(workdir),         WF_TEST(spawn_failure), WF_TEST(cancel),
    WF_TEST(daemon),          WF_TEST(escaped_daemon), WF_TEST(request_errors),
    WF_TEST(backpressure),    WF_TEST(log_failure),  WF_TEST(large),
};

int main(int argc, char **argv) {
  wf_log_setup(WF_LOG_WARN, 0);
  /* WF_TEST_TMP: where logs go (e.g. a tmpfs, to time the runner alone). */
  snprintf(tmpdir, sizeof tmpdir, "%s/wf-test-local-XXXXXX",
           getenv("WF_TEST_TMP") ? getenv("WF_TEST_TMP") : "/tmp");
  ASSERT_NOT_NULL(mkdtemp(tmpdir));
  int rc = WF_TEST_MAIN(argc, argv, tests);
  nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  return rc;
}
