/*
 * test-docker-recover: an agent restart in the middle of docker steps, on a
 * real dockerd.  The first runner is closed while its containers run (what a
 * dying agent leaves behind: the containers go on, the log file stops); a
 * second runner lists the node's containers and reattaches:
 *   - to one still running: the log goes on from where it stopped (a line
 *     around the restart may repeat, none is missing) and the true exit code
 *     comes back;
 *   - to one that exited meanwhile: the rest of its output and its exit code;
 *   - to one created but never started: it runs now;
 *   - to one that is gone: a clear error.
 */
#include "docker-test.h"

static uv_loop_t *loop;
static const char *host;
static char *tmp;
static const char *node = "dtest-recover";

static void step(dt_step_t *s, const char *key, const char *cmd) {
  memset(s, 0, sizeof *s);
  s->key = key;
  s->grace_s = 2;
  dt_param(s, "IMAGE_URL", "wf/busybox");
  dt_param(s, "IMAGE_CMD", cmd);
  dt_param(s, "CONTAINER_NETWORK", "none");
}

static void spin_ms(unsigned ms) {
  uint64_t t0 = wf_mono_ms();
  while (wf_mono_ms() - t0 < ms) {
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(10000);
  }
}

/* Checks that the log holds "<prefix> 0" .. "<prefix> last-1", each line
 * at least once, in order, where a line may repeat only as a re-read
 * stretch (going back, then forward again).  Returns the repeats. */
static int check_sequence(const char *text, const char *prefix, int last) {
  const char *line = text, *nl;
  int expect = 0, repeats = 0;
  size_t plen = strlen(prefix);
  while ((nl = strchr(line, '\n')) != NULL) {
    int v;
    if (strncmp(line, prefix, plen) != 0) WF_FAIL("unexpected line: %.*s", (int)(nl - line), line);
    v = atoi(line + plen);
    if (v == expect) {
      expect++;
    } else if (v < expect) {
      repeats++;
    } else {
      WF_FAIL("line %s %d missing (next seen: %d)\n%s", prefix, expect, v, text);
    }
    line = nl + 1;
  }
  ASSERT_EQ(*line, '\0');
  if (expect != last) WF_FAIL("log ends at %d, want %d:\n%s", expect, last, text);
  return repeats;
}

/* Finds the node's container for key in a fresh list. */
static int find(wf_runner_t *r, const char *key, dt_list_t *l) {
  dt_list(loop, r, l);
  ASSERT_OK(l->err);
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->keys[i], key) == 0) return (int)i;
  return -1;
}

static void test_reattach(void) {
  wf_runner_t *r1, *r2;
  dt_step_t run_s, exit_s, s;
  dt_outcome_t run_o, exit_o, o;
  dt_log_t run_log, exit_log, log;
  dt_list_t l;
  int i, rep;
  char id_run[80], id_exit[80], *text;

  /* ---- agent #1 starts two steps ---- */
  r1 = dt_runner(loop, host, node, NULL, 0, 20);
  step(&run_s, "r-running",
       "sh,-c,i=0; while [ $i -lt 40 ]; do echo line $i; i=$((i+1)); sleep 0.1; done; exit 7");
  dt_log_open(loop, &run_log, tmp, run_s.key, 0);
  run_s.log = run_log.f;
  ASSERT_NOT_NULL(dt_start(loop, r1, node, &run_s, &run_o));
  step(&exit_s, "r-exited", "sh,-c,echo a 0; sleep 2; echo a 1; exit 4");
  dt_log_open(loop, &exit_log, tmp, exit_s.key, 0);
  exit_s.log = exit_log.f;
  ASSERT_NOT_NULL(dt_start(loop, r1, node, &exit_s, &exit_o));
  while (!run_o.started || !exit_o.started) uv_run(loop, UV_RUN_ONCE);
  spin_ms(1200);

  /* ---- agent #1 dies: its runs end, its containers go on ---- */
  dt_runner_close(loop, r1);
  ASSERT(run_o.done && exit_o.done);
  ASSERT(strstr(run_o.error, "docker runner closed") != NULL);
  ASSERT(strstr(exit_o.error, "docker runner closed") != NULL);
  dt_log_close(loop, &run_log);
  dt_log_close(loop, &exit_log);
  text = dt_read_file(run_log.path);
  fprintf(stderr, "before the restart: %d bytes of r-running\n", (int)strlen(text));
  ASSERT(strstr(text, "line 3\n") != NULL);
  ASSERT(strstr(text, "line 39\n") == NULL);
  free(text);
  /* Down for a while: more output goes only to Docker. */
  spin_ms(1500);

  /* ---- agent #2 recovers ---- */
  r2 = dt_runner(loop, host, node, NULL, 0, 20);
  i = find(r2, "r-running", &l);
  ASSERT(i >= 0);
  ASSERT_EQ(l.running[i], 1);
  snprintf(id_run, sizeof id_run, "%s", l.ids[i]);
  /* It exits 2 s after it started, while no agent runs: on a loaded
   * machine that may be a little after this point, so wait for it (10 s at
   * most) rather than race it. */
  for (rep = 0;; rep++) {
    i = find(r2, "r-exited", &l);
    ASSERT(i >= 0);
    if (!l.running[i] || rep == 100) break;
    spin_ms(100);
  }
  ASSERT_EQ(l.running[i], 0);
  ASSERT_EQ(l.exit_code[i], 4);
  snprintf(id_exit, sizeof id_exit, "%s", l.ids[i]);

  dt_log_open(loop, &run_log, tmp, "r-running", 1);
  run_s.log = run_log.f;
  run_s.attach_id = id_run;
  dt_log_open(loop, &exit_log, tmp, "r-exited", 1);
  exit_s.log = exit_log.f;
  exit_s.attach_id = id_exit;
  ASSERT_NOT_NULL(dt_start(loop, r2, node, &run_s, &run_o));
  ASSERT_NOT_NULL(dt_start(loop, r2, node, &exit_s, &exit_o));
  while (!run_o.done || !exit_o.done) uv_run(loop, UV_RUN_ONCE);
  dt_log_close(loop, &run_log);
  dt_log_close(loop, &exit_log);

  ASSERT_STR_EQ(run_o.error, "");
  ASSERT_EQ(run_o.exit_code, 7);
  ASSERT_EQ(run_o.started, 1);
  ASSERT_STR_EQ(run_o.container_id, id_run);
  text = dt_read_file(run_log.path);
  rep = check_sequence(text, "line ", 40);
  fprintf(stderr, "r-running: complete, %d line(s) repeated around the restart\n", rep);
  ASSERT(rep <= 15);
  free(text);

  ASSERT_STR_EQ(exit_o.error, "");
  ASSERT_EQ(exit_o.exit_code, 4);
  text = dt_read_file(exit_log.path);
  rep = check_sequence(text, "a ", 2);
  fprintf(stderr, "r-exited: complete, %d repeated\n", rep);
  free(text);

  /* Both removed after recovery. */
  ASSERT_EQ(find(r2, "r-running", &l), -1);
  ASSERT_EQ(find(r2, "r-exited", &l), -1);

  /* ---- created but never started (the agent died between the two) ---- */
  {
    dt_api_t a;
    char body[512];
    const char *p;
    /* As the runner would have made it: Podman has no "local" log driver. */
    snprintf(body, sizeof body,
             "{\"Image\":\"wf/busybox\",\"Cmd\":[\"echo\",\"fresh\"],\"Labels\":"
             "{\"workflow.step\":\"r-created\",\"workflow.node\":\"%s\"},"
             "\"HostConfig\":{\"NetworkMode\":\"none\",\"LogConfig\":{\"Type\":\"%s\"}}}",
             node, dt_podman() ? "k8s-file" : "local");
    ASSERT_EQ(dt_api(loop, host, "POST", "/v1.41/containers/create?name=r-created", body, &a),
              201);
    p = strstr(a.body, "\"Id\":\"");
    ASSERT_NOT_NULL(p);
    snprintf(id_run, sizeof id_run, "%.64s", p + 6);
  }
  step(&s, "r-created", "echo,fresh");
  dt_log_open(loop, &log, tmp, "r-created", 1);
  s.log = log.f;
  s.attach_id = id_run;
  ASSERT_NOT_NULL(dt_start(loop, r2, node, &s, &o));
  dt_run_until(loop, &o.done);
  dt_log_close(loop, &log);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_EQ(o.exit_code, 0);
  text = dt_read_file(log.path);
  ASSERT_STR_EQ(text, "fresh\n");
  free(text);

  /* ---- gone ---- */
  step(&s, "r-gone", "true");
  dt_log_open(loop, &log, tmp, "r-gone", 1);
  s.log = log.f;
  s.attach_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  ASSERT_NOT_NULL(dt_start(loop, r2, node, &s, &o));
  dt_run_until(loop, &o.done);
  dt_log_close(loop, &log);
  ASSERT(strstr(o.error, "is gone") != NULL);
  /* dockerd: "No such container: ..."; Podman: "no container with name or
   * ID ... found: no such container". */
  ASSERT(strcasestr(o.error, "No such container") != NULL);

  dt_runner_close(loop, r2);
}

static const wf_test_t tests[] = {
    WF_TEST(reattach),
};

int main(int argc, char **argv) {
  loop = uv_default_loop();
  host = dt_env("WF_TEST_DOCKER_HOST");
  tmp = dt_tmpdir();
  int rc = WF_TEST_MAIN(argc, argv, tests);
  wf_test_close_loop(loop);
  dt_rmrf(tmp);
  free(tmp);
  return rc;
}
