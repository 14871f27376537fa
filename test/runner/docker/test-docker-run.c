/*
 * test-docker-run: the DOCKER runner against a real dockerd (started by
 * with_docker.py): success with stdout and stderr in the log, a failing exit
 * code, a missing executable, env/workdir/user, the container-name conflict
 * rules, allowed and refused mounts, an OOM kill, request errors refused at
 * start, and list/remove.
 */
#include <fcntl.h>

#include "docker-test.h"

static uv_loop_t *loop;
static wf_runner_t *runner;
static const char *host, *image;
static char *tmp;
static char allowed[600];
static const char *node = "dtest-node";

/* Runs s to its end with a fresh log file; returns the log's content. */
static char *run_to_end(dt_step_t *s, dt_outcome_t *o) {
  dt_log_t log;
  char *text;
  fprintf(stderr, "step %s\n", s->key);
  dt_log_open(loop, &log, tmp, s->key, 0);
  s->log = log.f;
  if (dt_start(loop, runner, node, s, o)) dt_run_until(loop, &o->done);
  dt_log_close(loop, &log);
  text = dt_read_file(log.path);
  return text;
}

static void base_step(dt_step_t *s, const char *key, const char *cmd) {
  memset(s, 0, sizeof *s);
  s->key = key;
  s->grace_s = 2;
  dt_param(s, "IMAGE_URL", "wf/busybox");
  dt_param(s, "IMAGE_VERSION", "latest");
  dt_param(s, "IMAGE_CMD", cmd);
  dt_param(s, "CONTAINER_NETWORK", "none");
}

static void test_success(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;
  /* The pauses: Docker reads stdout and stderr through two pipes, so only
   * output that is apart in time keeps its order across the two. */
  base_step(&s, "t-success", "[\"sh\",\"-c\",\"echo out; sleep 0.2; echo err >&2; sleep 0.2; "
                             "echo v=$FOO, $WORKFLOW_STEP_KEY\"]");
  s.env[0] = "FOO=bar baz";
  s.env[1] = "WORKFLOW_STEP_KEY=t-success";
  log = run_to_end(&s, &o);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_EQ(o.exit_code, 0);
  ASSERT_EQ(o.canceled, 0);
  ASSERT_EQ(o.started, 1);
  ASSERT_EQ(strlen(o.container_id), 64);
  /* Output in the order produced: stdout and stderr share the file. */
  ASSERT_STR_EQ(log, "out\nerr\nv=bar baz, t-success\n");
  free(log);
  dt_assert_no_container(loop, runner, "t-success");
  ASSERT(wf_docker_runner_reachable(runner));  /* it answered, and says so */
}

static void test_exit_code(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;
  base_step(&s, "t-exit3", "sh,-c,echo about to fail; exit 3");
  log = run_to_end(&s, &o);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_EQ(o.exit_code, 3);
  ASSERT_STR_EQ(log, "about to fail\n");
  free(log);
  dt_assert_no_container(loop, runner, "t-exit3");
}

static void test_missing_executable(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;
  base_step(&s, "t-nobin", "/nonexistent,arg");
  log = run_to_end(&s, &o);
  /* Docker's own message, and the exit code a shell would give. */
  ASSERT(strstr(o.error, "start container:") != NULL);
  ASSERT(strstr(o.error, "/nonexistent") != NULL);
  ASSERT(strstr(o.error, "no such file or directory") != NULL);
  ASSERT_EQ(o.exit_code, 127);
  ASSERT_EQ(o.started, 0);
  free(log);
  dt_assert_no_container(loop, runner, "t-nobin");
}

static void test_workdir_user(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;
  base_step(&s, "t-wd", "sh,-c,pwd; id -u");
  dt_param(&s, "CONTAINER_WORKDIR", "/tmp");
  dt_param(&s, "CONTAINER_USER", "65534");
  dt_param(&s, "CONTAINER_CPUS", "0.5");
  log = run_to_end(&s, &o);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_STR_EQ(log, "/tmp\n65534\n");
  free(log);
}

static void create_container(const char *name, const char *labels_json, int start) {
  dt_api_t a;
  char path[256], body[1024];
  snprintf(path, sizeof path, "/v1.41/containers/create?name=%s", name);
  snprintf(body, sizeof body,
           "{\"Image\":\"%s\",\"Cmd\":[\"sleep\",\"300\"],\"Labels\":%s,"
           "\"HostConfig\":{\"NetworkMode\":\"none\"}}",
           image, labels_json);
  ASSERT_EQ(dt_api(loop, host, "POST", path, body, &a), 201);
  if (start) {
    snprintf(path, sizeof path, "/v1.41/containers/%s/start", name);
    ASSERT_EQ(dt_api(loop, host, "POST", path, NULL, &a), 204);
  }
}

static void remove_container(const char *name) {
  dt_api_t a;
  char path[256];
  snprintf(path, sizeof path, "/v1.41/containers/%s?force=1", name);
  dt_api(loop, host, "DELETE", path, NULL, &a);
}

static void test_conflicts(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;

  /* A stopped leftover of this very step (a crash before its removal):
   * removed and replaced. */
  create_container("t-leftover", "{\"workflow.step\":\"t-leftover\",\"workflow.node\":\"x\"}", 0);
  base_step(&s, "t-leftover", "echo,replaced");
  log = run_to_end(&s, &o);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_STR_EQ(log, "replaced\n");
  free(log);

  /* Somebody else's container with that name: never touched. */
  create_container("t-foreign", "{\"owner\":\"someone\"}", 0);
  base_step(&s, "t-foreign", "echo,never");
  log = run_to_end(&s, &o);
  ASSERT(strstr(o.error, "container name t-foreign is taken by container") != NULL);
  ASSERT(strstr(o.error, "not this step's") != NULL);
  ASSERT_EQ(o.started, 0);
  ASSERT_STR_EQ(log, "");
  free(log);
  {
    dt_api_t a;
    ASSERT_EQ(dt_api(loop, host, "GET", "/v1.41/containers/t-foreign/json", NULL, &a), 200);
  }
  remove_container("t-foreign");

  /* Ours, but still running: not ours to kill. */
  create_container("t-busy", "{\"workflow.step\":\"t-busy\"}", 1);
  base_step(&s, "t-busy", "echo,never");
  log = run_to_end(&s, &o);
  ASSERT(strstr(o.error, "still running") != NULL);
  free(log);
  remove_container("t-busy");
}

static void test_mounts(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log, dir[700], file[800], spec[1600], link[700];
  int fd;

  snprintf(dir, sizeof dir, "%s/data", allowed);
  ASSERT_OK(mkdir(dir, 0755));
  snprintf(file, sizeof file, "%s/hello.txt", dir);
  fd = open(file, O_CREAT | O_WRONLY, 0644);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, "hello from the host\n", 20), 20);
  close(fd);

  /* Allowed, read-only: readable, not writable. */
  snprintf(spec, sizeof spec, "%s/./data:/data:ro", allowed);
  base_step(&s, "t-mount-ok", "sh,-c,cat /data/hello.txt; touch /data/x 2>/dev/null || echo read-only");
  dt_param(&s, "CONTAINER_MOUNTS", spec);
  log = run_to_end(&s, &o);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_STR_EQ(log, "hello from the host\nread-only\n");
  free(log);

  /* Outside every --allow-mount dir: refused before anything starts. */
  base_step(&s, "t-mount-etc", "echo,never");
  dt_param(&s, "CONTAINER_MOUNTS", "/etc:/x");
  ASSERT_NULL(dt_start(loop, runner, node, &s, &o));
  ASSERT(strstr(o.error, "/etc") != NULL);
  ASSERT(strstr(o.error, "--allow-mount") != NULL);

  /* ".." out of the allowed dir: refused the same way. */
  snprintf(spec, sizeof spec, "%s/../..:/x", allowed);
  base_step(&s, "t-mount-dots", "echo,never");
  dt_param(&s, "CONTAINER_MOUNTS", spec);
  ASSERT_NULL(dt_start(loop, runner, node, &s, &o));
  ASSERT(strstr(o.error, "--allow-mount") != NULL);

  /* A symlink inside the allowed dir that leads out: refused once resolved. */
  snprintf(link, sizeof link, "%s/escape", allowed);
  ASSERT_OK(symlink("/etc", link));
  snprintf(spec, sizeof spec, "%s:/x", link);
  base_step(&s, "t-mount-link", "echo,never");
  dt_param(&s, "CONTAINER_MOUNTS", spec);
  log = run_to_end(&s, &o);
  ASSERT(strstr(o.error, "resolves to /etc") != NULL);
  ASSERT_EQ(o.started, 0);
  free(log);

  /* A host path that does not exist. */
  snprintf(spec, sizeof spec, "%s/missing:/x", allowed);
  base_step(&s, "t-mount-missing", "echo,never");
  dt_param(&s, "CONTAINER_MOUNTS", spec);
  log = run_to_end(&s, &o);
  ASSERT(strstr(o.error, "cannot be resolved") != NULL);
  free(log);
}

static void test_oom(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;
  /* busybox tail keeps its last lines in memory; 100 MB without a newline
   * is one line, far over the limit. */
  base_step(&s, "t-oom", "sh,-c,echo start; head -c 100m /dev/zero | tail");
  dt_param(&s, "CONTAINER_MEMORY", "8m");
  log = run_to_end(&s, &o);
  ASSERT(strstr(o.error, "container was OOM-killed (memory limit 8m)") != NULL);
  ASSERT(strstr(log, "start\n") == log);
  free(log);
  dt_assert_no_container(loop, runner, "t-oom");
}

static void test_refused(void) {
  dt_step_t s;
  dt_outcome_t o;
  memset(&s, 0, sizeof s);
  s.key = "t-refused";
  ASSERT_NULL(dt_start(loop, runner, node, &s, &o));
  ASSERT(strstr(o.error, "IMAGE_URL") != NULL);

  base_step(&s, "t-refused", "true");
  dt_param(&s, "IMAGE_PULL_POLICY", "sometimes");
  ASSERT_NULL(dt_start(loop, runner, node, &s, &o));
  ASSERT(strstr(o.error, "IMAGE_PULL_POLICY") != NULL);

  base_step(&s, "t-refused", "true");
  dt_param(&s, "CONTAINER_MEMORY", "lots");
  ASSERT_NULL(dt_start(loop, runner, node, &s, &o));
  ASSERT(strstr(o.error, "CONTAINER_MEMORY") != NULL);

  base_step(&s, "t-refused", "[\"sh\",");
  ASSERT_NULL(dt_start(loop, runner, node, &s, &o));
  ASSERT(strstr(o.error, "IMAGE_CMD") != NULL);

  base_step(&s, "t-refused", "true");
  dt_param(&s, "IMAGE_PULL_SECRET", "%%%");
  ASSERT_NULL(dt_start(loop, runner, node, &s, &o));
  ASSERT(strstr(o.error, "IMAGE_PULL_SECRET") != NULL);
  ASSERT(strstr(o.error, "%%%") == NULL); /* never echo a secret */
}

static void test_bad_create(void) {
  dt_step_t s;
  dt_outcome_t o;
  char *log;
  /* Docker's message for what only the engine can check. */
  base_step(&s, "t-badnet", "true");
  s.nparams--; /* drop NetworkMode none */
  dt_param(&s, "CONTAINER_NETWORK", "no-such-network");
  log = run_to_end(&s, &o);
  ASSERT(strstr(o.error, "no-such-network") != NULL);
  free(log);
  dt_assert_no_container(loop, runner, "t-badnet");
}

static int rm_done, rm_err;
static void on_rm(int err, void *data) {
  (void)data;
  rm_done++;
  rm_err = err;
}

static void test_list_remove(void) {
  dt_list_t l;
  int found = -1;
  char labels[256], id[80];
  snprintf(labels, sizeof labels, "{\"workflow.step\":\"t-orphan\",\"workflow.node\":\"%s\"}",
           node);
  create_container("t-orphan", labels, 0);
  create_container("t-other-node", "{\"workflow.step\":\"x\",\"workflow.node\":\"other\"}", 0);
  dt_list(loop, runner, &l);
  ASSERT_OK(l.err);
  for (size_t i = 0; i < l.n; i++) {
    ASSERT(strcmp(l.keys[i], "x") != 0); /* only this node's */
    if (strcmp(l.keys[i], "t-orphan") == 0) found = (int)i;
  }
  ASSERT(found >= 0);
  ASSERT_EQ(l.running[found], 0);
  ASSERT_EQ(l.exit_code[found], -1); /* created, never ran */
  snprintf(id, sizeof id, "%s", l.ids[found]);
  rm_done = 0;
  ASSERT_OK(runner->ops->remove(runner, id, on_rm, NULL));
  dt_run_until(loop, &rm_done);
  ASSERT_OK(rm_err);
  /* Gone already is success too. */
  rm_done = 0;
  ASSERT_OK(runner->ops->remove(runner, id, on_rm, NULL));
  dt_run_until(loop, &rm_done);
  ASSERT_OK(rm_err);
  /* And without a callback. */
  ASSERT_OK(runner->ops->remove(runner, id, NULL, NULL));
  dt_assert_no_container(loop, runner, "t-orphan");
  remove_container("t-other-node");
}

/* --keep-containers: the finished container stays for debugging. */
static void test_keep(void) {
  wf_docker_opts_t opts;
  wf_runner_t *keep, *saved = runner;
  char err[256];
  dt_step_t s;
  dt_outcome_t o;
  dt_list_t l;
  char *log;
  int found = 0;

  memset(&opts, 0, sizeof opts);
  opts.host = host;
  opts.node_name = node;
  opts.keep_containers = 1;
  keep = wf_docker_runner_create(loop, &opts, err, sizeof err);
  ASSERT_NOT_NULL(keep);
  runner = keep;
  base_step(&s, "t-keep", "sh,-c,echo kept; exit 2");
  log = run_to_end(&s, &o);
  ASSERT_EQ(o.exit_code, 2);
  free(log);
  dt_list(loop, keep, &l);
  for (size_t i = 0; i < l.n; i++) {
    if (strcmp(l.keys[i], "t-keep") != 0) continue;
    found = 1;
    ASSERT_STR_EQ(l.ids[i], o.container_id);
    ASSERT_EQ(l.running[i], 0);
    ASSERT_EQ(l.exit_code[i], 2);
  }
  ASSERT(found);
  /* A re-run of the same step replaces its kept leftover. */
  log = run_to_end(&s, &o);
  ASSERT_STR_EQ(o.error, "");
  ASSERT_EQ(o.exit_code, 2);
  free(log);
  dt_runner_close(loop, keep);
  runner = saved;
  remove_container("t-keep");
}

static const wf_test_t tests[] = {
    WF_TEST(success), WF_TEST(exit_code), WF_TEST(missing_executable), WF_TEST(workdir_user),
    WF_TEST(conflicts), WF_TEST(mounts), WF_TEST(oom), WF_TEST(refused), WF_TEST(bad_create),
    WF_TEST(list_remove), WF_TEST(keep),
};

int main(int argc, char **argv) {
  const char *allow[1];
  loop = uv_default_loop();
  host = dt_env("WF_TEST_DOCKER_HOST");
  image = dt_env("WF_TEST_IMAGE");
  tmp = dt_tmpdir();
  snprintf(allowed, sizeof allowed, "%s/allowed", tmp);
  ASSERT_OK(mkdir(allowed, 0755));
  allow[0] = allowed;
  runner = dt_runner(loop, host, node, allow, 1, 20);

  int rc = WF_TEST_MAIN(argc, argv, tests);

  dt_runner_close(loop, runner);
  wf_test_close_loop(loop);
  dt_rmrf(tmp);
  free(tmp);
  return rc;
}
