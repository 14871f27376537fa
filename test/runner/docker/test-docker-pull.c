/*
 * test-docker-pull: IMAGE_PULL_POLICY and IMAGE_PULL_SECRET against a real
 * dockerd and real docker-registry instances (with_docker.py --auth): never
 * with the image missing, always, if-not-present pulling what is missing,
 * an unknown tag, an unreachable registry, an error inside the progress
 * stream, a registry with auth (without, with, and with a wrong secret), a
 * pull slower than --pull-timeout, and a cancel during a pull.  Every
 * failure must carry Docker's own message.
 */
#include "docker-test.h"

static uv_loop_t *loop;
static wf_runner_t *runner;
static const char *host, *registry, *auth_registry;
static char *tmp;
static const char *node = "dtest-pull";

static char *run_to_end(wf_runner_t *r, dt_step_t *s, dt_outcome_t *o) {
  dt_log_t log;
  char *text;
  fprintf(stderr, "step %s\n", s->key);
  dt_log_open(loop, &log, tmp, s->key, 0);
  s->log = log.f;
  if (dt_start(loop, r, node, s, o)) dt_run_until(loop, &o->done);
  dt_log_close(loop, &log);
  text = dt_read_file(log.path);
  return text;
}

static void step(dt_step_t *s, const char *key, const char *url, const char *version,
                 const char *policy) {
  memset(s, 0, sizeof *s);
  s->key = key;
  s->grace_s = 2;
  dt_param(s, "IMAGE_URL", url);
  if (version) dt_param(s, "IMAGE_VERSION", version);
  if (policy) dt_param(s, "IMAGE_PULL_POLICY", policy);
  dt_param(s, "IMAGE_CMD", "echo,pulled and ran");
  dt_param(s, "CONTAINER_NETWORK", "none");
}

static void delete_image(const char *ref) {
  dt_api_t a;
  char path[600];
  snprintf(path, sizeof path, "/v1.41/images/%s?force=1", ref);
  dt_api(loop, host, "DELETE", path, NULL, &a);
}

static void test_never_missing(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;
  step(&s, "p-never", "wf/absent", "1", "never");
  log = run_to_end(runner, &s, &o);
  ASSERT(strstr(o.error, "IMAGE_PULL_POLICY is never") != NULL);
  /* The engine's own text: Podman names the image it resolved to. */
  ASSERT(strstr(o.error, dt_podman() ? "no such image: docker.io/wf/absent:1"
                                     : "No such image: wf/absent:1") != NULL);
  free(log);
  /* never with the image present runs it */
  step(&s, "p-never-ok", "wf/busybox", NULL, "never");
  log = run_to_end(runner, &s, &o);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_STR_EQ(log, "pulled and ran\n");
  free(log);
}

static void test_always(void) {
  dt_step_t s;
  dt_outcome_t o;
  char url[300], ref[400];
  char *log;
  snprintf(url, sizeof url, "%s/wf/busybox", registry);
  snprintf(ref, sizeof ref, "%s:latest", url);
  delete_image(ref);
  step(&s, "p-always", url, NULL, "always");
  log = run_to_end(runner, &s, &o);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_STR_EQ(log, "pulled and ran\n");
  free(log);
  /* if-not-present with the image missing pulls it too */
  delete_image(ref);
  step(&s, "p-ifnot", url, "latest", NULL);
  log = run_to_end(runner, &s, &o);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_STR_EQ(log, "pulled and ran\n");
  free(log);
}

static void test_unknown_tag(void) {
  dt_step_t s;
  dt_outcome_t o;
  char url[300];
  char *log;
  snprintf(url, sizeof url, "%s/wf/busybox", registry);
  step(&s, "p-badtag", url, "nope", "always");
  log = run_to_end(runner, &s, &o);
  ASSERT(strstr(o.error, "pull ") == o.error);
  ASSERT(strstr(o.error, ":nope") != NULL);
  ASSERT(strstr(o.error, "manifest unknown") != NULL);
  ASSERT_EQ(o.started, 0);
  free(log);
  /* if-not-present: the same message through the create -> pull path */
  step(&s, "p-badtag2", url, "nope2", NULL);
  log = run_to_end(runner, &s, &o);
  ASSERT(strstr(o.error, "manifest unknown") != NULL);
  free(log);
}

static void test_unreachable_registry(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;
  /* Port 1 on loopback: nothing listens there. */
  step(&s, "p-noreg", "127.0.0.1:1/wf/busybox", "latest", "always");
  log = run_to_end(runner, &s, &o);
  ASSERT(strstr(o.error, "127.0.0.1:1") != NULL);
  ASSERT(strstr(o.error, "connection refused") != NULL);
  free(log);
}

static void test_in_stream_error(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;
  const char *broken = dt_env("WF_TEST_BROKEN_IMAGE");
  step(&s, "p-broken", broken, NULL, "always");
  log = run_to_end(runner, &s, &o);
  /* 200 first, then {"errorDetail":{"message":"unknown blob"}} (dockerd), or
   * "reading blob sha256:...: Error fetching blob: invalid status code from
   * registry 404 (Not Found)" (Podman). */
  ASSERT(strstr(o.error, dt_podman() ? "Error fetching blob" : "unknown blob") != NULL);
  free(log);
}

static void test_auth(void) {
  dt_step_t s;
  dt_outcome_t o;
  char url[300];
  char *log;
  snprintf(url, sizeof url, "%s/wf/busybox", auth_registry);

  step(&s, "p-noauth", url, "latest", "always");
  log = run_to_end(runner, &s, &o);
  /* Each engine's words for it. */
  ASSERT(strstr(o.error, dt_podman() ? "unauthorized: authentication required"
                                     : "no basic auth credentials") != NULL);
  free(log);

  step(&s, "p-wrongauth", url, "latest", "always");
  dt_param(&s, "IMAGE_PULL_SECRET", "wf:not-the-password");
  log = run_to_end(runner, &s, &o);
  ASSERT(o.error[0] != '\0');
  ASSERT(strstr(o.error, "not-the-password") == NULL);
  free(log);

  step(&s, "p-auth", url, "latest", "always");
  dt_param(&s, "IMAGE_PULL_SECRET", "wf:wfpass");
  log = run_to_end(runner, &s, &o);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_STR_EQ(log, "pulled and ran\n");
  free(log);

  /* The base64 JSON form. */
  {
    char json[300], b64[500];
    snprintf(json, sizeof json, "{\"username\":\"wf\",\"password\":\"wfpass\",\"serveraddress\":\"%s\"}",
             auth_registry);
    wf_b64_encode(json, strlen(json), b64);
    step(&s, "p-auth-b64", url, "latest", "always");
    dt_param(&s, "IMAGE_PULL_SECRET", b64);
    log = run_to_end(runner, &s, &o);
    ASSERT_STR_EQ(o.error, "");
    free(log);
  }
}

/* ---- a registry that accepts connections and never answers ------------------------ */
static uv_tcp_t hole;
static uv_tcp_t hole_conns[16];
static int nhole;

static void on_hole_conn(uv_stream_t *srv, int status) {
  if (status < 0 || nhole >= 16) return;
  uv_tcp_init(loop, &hole_conns[nhole]);
  if (uv_accept(srv, (uv_stream_t *)&hole_conns[nhole]) == 0) nhole++;
  else uv_close((uv_handle_t *)&hole_conns[nhole], NULL);
}

static void test_pull_timeout_and_cancel(void) {
  wf_docker_opts_t opts;
  wf_runner_t *slow;
  struct sockaddr_in addr;
  struct sockaddr_storage name;
  int namelen = sizeof name;
  char err[256], url[128];
  dt_step_t s;
  dt_outcome_t o;
  uint64_t t0;
  char *log;

  uv_tcp_init(loop, &hole);
  uv_ip4_addr("127.0.0.1", 0, &addr);
  ASSERT_OK(uv_tcp_bind(&hole, (const struct sockaddr *)&addr, 0));
  ASSERT_OK(uv_listen((uv_stream_t *)&hole, 16, on_hole_conn));
  uv_tcp_getsockname(&hole, (struct sockaddr *)&name, &namelen);
  snprintf(url, sizeof url, "127.0.0.1:%d/wf/slow", ntohs(((struct sockaddr_in *)&name)->sin_port));

  memset(&opts, 0, sizeof opts);
  opts.host = host;
  opts.node_name = node;
  opts.pull_timeout_s = 2;
  slow = wf_docker_runner_create(loop, &opts, err, sizeof err);
  ASSERT_NOT_NULL(slow);

  step(&s, "p-timeout", url, "1", "always");
  t0 = wf_mono_ms();
  log = run_to_end(slow, &s, &o);
  ASSERT(strstr(o.error, "timed out after 2 s") != NULL);
  ASSERT(o.t_exit_ms - t0 < 6000);
  free(log);

  /* A cancel during a pull ends the run at once, canceled, without error. */
  step(&s, "p-cancel", url, "2", "always");
  {
    dt_log_t l;
    dt_log_open(loop, &l, tmp, s.key, 0);
    s.log = l.f;
    ASSERT_NOT_NULL(dt_start(loop, slow, node, &s, &o));
    for (int i = 0; i < 20; i++) uv_run(loop, UV_RUN_NOWAIT);
    usleep(300000);
    uv_run(loop, UV_RUN_NOWAIT);
    t0 = wf_mono_ms();
    dt_cancel(o.run);
    dt_run_until(loop, &o.done);
    ASSERT(o.t_exit_ms - t0 < 1000);
    ASSERT_EQ(o.canceled, 1);
    ASSERT_STR_EQ(o.error, "");
    dt_log_close(loop, &l);
  }
  dt_runner_close(loop, slow);
  for (int i = 0; i < nhole; i++) uv_close((uv_handle_t *)&hole_conns[i], NULL);
  uv_close((uv_handle_t *)&hole, NULL);
}

static const wf_test_t tests[] = {
    WF_TEST(never_missing), WF_TEST(always), WF_TEST(unknown_tag),
    WF_TEST(unreachable_registry), WF_TEST(in_stream_error), WF_TEST(auth),
    WF_TEST(pull_timeout_and_cancel),
};

int main(int argc, char **argv) {
  loop = uv_default_loop();
  host = dt_env("WF_TEST_DOCKER_HOST");
  registry = dt_env("WF_TEST_REGISTRY");
  auth_registry = dt_env("WF_TEST_AUTH_REGISTRY");
  tmp = dt_tmpdir();
  runner = dt_runner(loop, host, node, NULL, 0, 20);

  int rc = WF_TEST_MAIN(argc, argv, tests);

  dt_runner_close(loop, runner);
  wf_test_close_loop(loop);
  dt_rmrf(tmp);
  free(tmp);
  return rc;
}
