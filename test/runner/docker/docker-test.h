/*
 * docker-test.h: what the docker integration tests share.  They run under
 * test/harness/with_docker.py, which starts a private dockerd, a registry
 * and the wf/busybox image; the helpers here run one step at a time on the
 * test's loop and collect its outcome, its log file and the engine's view.
 */
#ifndef WF_DOCKER_TEST_H
#define WF_DOCKER_TEST_H

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wf-test.h"
#include "src/runner/docker/docker-internal.h"
#include "wf/logstore.h"
#include "wf/util.h"

static inline const char *dt_env(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v) WF_FAIL("%s not set: run under test/harness/with_docker.py", name);
  return v;
}

/* 1 when the harness runs Podman instead of dockerd (WF_ENGINE=podman,
 * test/podman/meson.build): for the few set-ups a test makes behind the
 * runner's back, where the engines differ. */
static inline int dt_podman(void) {
  const char *e = getenv("WF_ENGINE");
  return e && strcmp(e, "podman") == 0;
}

/* ---- a step's outcome -------------------------------------------------------------- */
typedef struct dt_outcome_s {
  int done;
  int started;
  int exit_code;
  int canceled;
  char error[1024];
  char container_id[80];
  char warn[512];
  uint64_t t_exit_ms;  /* wf_mono_ms() when on_exit fired */
  wf_run_t *run;
} dt_outcome_t;

static inline void dt_on_started(wf_run_t *run, const wf_kv_t *kv, size_t n, void *data) {
  dt_outcome_t *o = data;
  (void)run;
  o->started++;
  for (size_t i = 0; i < n; i++)
    if (strcmp(kv[i].key, "container_id") == 0)
      snprintf(o->container_id, sizeof o->container_id, "%s", kv[i].value);
}

static inline void dt_on_exit(wf_run_t *run, const wf_run_result_t *r, void *data) {
  dt_outcome_t *o = data;
  (void)run;
  ASSERT_EQ(o->done, 0);
  o->done = 1;
  o->run = NULL;
  o->exit_code = r->exit_code;
  o->canceled = r->canceled;
  snprintf(o->error, sizeof o->error, "%s", r->error ? r->error : "");
  for (size_t i = 0; i < r->nresponse; i++) {
    if (strcmp(r->response[i].key, "container_id") == 0)
      snprintf(o->container_id, sizeof o->container_id, "%s", r->response[i].value);
    if (strcmp(r->response[i].key, "container_warn") == 0)
      snprintf(o->warn, sizeof o->warn, "%s", r->response[i].value);
  }
  o->t_exit_ms = wf_mono_ms();
  fprintf(stderr, "  -> exit %d canceled %d error \"%s\" container %.12s\n", o->exit_code,
          o->canceled, o->error, o->container_id);
}

static inline void dt_run_until(uv_loop_t *loop, const int *flag) {
  while (!*flag) uv_run(loop, UV_RUN_ONCE);
}

/* ---- log files ------------------------------------------------------------------------ */
typedef struct dt_log_s {
  wf_logfile_t *f;
  int closed;
  int err;
  char path[512];
} dt_log_t;

static inline void dt_on_log_closed(wf_logfile_t *f, int err, void *data) {
  dt_log_t *l = data;
  (void)f;
  l->closed = 1;
  l->err = err;
  l->f = NULL;
}

/* Opens <dir>/<name> (append = recovery). */
static inline void dt_log_open(uv_loop_t *loop, dt_log_t *l, const char *dir, const char *name,
                               int append) {
  wf_logfile_cbs_t cbs = {dt_on_log_closed, NULL};
  memset(l, 0, sizeof *l);
  snprintf(l->path, sizeof l->path, "%s/%s", dir, name);
  l->f = append ? wf_logfile_open_append(loop, l->path, 0, &cbs, l)
                : wf_logfile_open(loop, l->path, 0, &cbs, l);
  ASSERT_NOT_NULL(l->f);
}

static inline void dt_log_close(uv_loop_t *loop, dt_log_t *l) {
  if (!l->f) return;
  wf_logfile_close(l->f);
  dt_run_until(loop, &l->closed);
  ASSERT_OK(l->err);
}

/* Reads a whole (small) file into a malloc'd NUL-terminated string. */
static inline char *dt_read_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  char *buf;
  long n;
  ASSERT_NOT_NULL(fp);
  fseek(fp, 0, SEEK_END);
  n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  buf = wf_malloc((size_t)n + 1);
  ASSERT_EQ(fread(buf, 1, (size_t)n, fp), (size_t)n);
  buf[n] = '\0';
  fclose(fp);
  return buf;
}

static inline char *dt_tmpdir(void) {
  char tmpl[] = "/tmp/wf-dtest-XXXXXX";
  char *d = mkdtemp(tmpl);
  ASSERT_NOT_NULL(d);
  return wf_strdup(d);
}

static inline void dt_rmrf(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "warning: %s failed\n", cmd);
}

/* ---- running a step --------------------------------------------------------------------- */
#define DT_MAX_PARAMS 16

typedef struct dt_step_s {
  const char *key;
  wf_kv_t params[DT_MAX_PARAMS];
  size_t nparams;
  const char *env[8];
  unsigned grace_s;
  const char *attach_id;
  wf_logfile_t *log;
} dt_step_t;

static inline void dt_param(dt_step_t *s, const char *k, const char *v) {
  ASSERT(s->nparams < DT_MAX_PARAMS);
  s->params[s->nparams].key = k;
  s->params[s->nparams].value = v;
  s->nparams++;
}

/* Starts the step; o collects the outcome.  Returns the run, or NULL when
 * start refused the request (o->error then holds why and o->done is set). */
static inline wf_run_t *dt_start(uv_loop_t *loop, wf_runner_t *r, const char *node,
                                 dt_step_t *s, dt_outcome_t *o) {
  wf_run_req_t req;
  wf_run_cbs_t cbs = {dt_on_started, dt_on_exit};
  char err[1024];
  wf_run_t *run;

  memset(o, 0, sizeof *o);
  memset(&req, 0, sizeof req);
  req.step_key = s->key;
  req.runner_params = s->params;
  req.nrunner_params = s->nparams;
  req.env = s->env;
  req.log = s->log;
  req.stop_grace_s = s->grace_s;
  (void)loop;
  (void)node;  /* the runner labels with its own node name */
  req.attach_id = s->attach_id;
  err[0] = '\0';
  run = r->ops->start(r, &req, &cbs, o, err, sizeof err);
  if (!run) {
    o->done = 1;
    o->exit_code = -1;
    snprintf(o->error, sizeof o->error, "%s", err);
    fprintf(stderr, "  -> refused at start: %s\n", err);
  }
  o->run = run;
  return run;
}

/* Cancels a run through its runner's vtable, as the engine does. */
static inline void dt_cancel(wf_run_t *run) { run->r->base.ops->cancel(run); }

/* ---- the runner -------------------------------------------------------------------------- */
static int dt_runner_closed __attribute__((unused));
static inline void dt_on_runner_closed(void *data) {
  (void)data;
  dt_runner_closed = 1;
}

static inline wf_runner_t *dt_runner(uv_loop_t *loop, const char *host, const char *node,
                                            const char *const *allow, size_t nallow,
                                            unsigned wait_s) {
  wf_docker_opts_t o;
  char err[256];
  wf_runner_t *r;
  memset(&o, 0, sizeof o);
  o.host = host;
  o.node_name = node;
  o.allow_mounts = allow;
  o.nallow_mounts = nallow;
  o.docker_wait_s = wait_s;
  r = wf_docker_runner_create(loop, &o, err, sizeof err);
  if (!r) WF_FAIL("runner: %s", err);
  return r;
}

static inline void dt_runner_close(uv_loop_t *loop, wf_runner_t *r) {
  dt_runner_closed = 0;
  wf_runner_close(r, dt_on_runner_closed, NULL);
  dt_run_until(loop, &dt_runner_closed);
}

/* ---- listing -------------------------------------------------------------------------------- */
typedef struct dt_list_s {
  int done;
  int err;
  size_t n;
  char ids[32][80];
  char keys[32][128];
  int running[32];
  int exit_code[32];
} dt_list_t;

static inline void dt_on_list(int err, const wf_docker_container_t *c, size_t n, void *data) {
  dt_list_t *l = data;
  l->done = 1;
  l->err = err;
  l->n = 0;
  for (size_t i = 0; i < n && i < 32; i++) {
    snprintf(l->ids[i], sizeof l->ids[i], "%s", c[i].id);
    snprintf(l->keys[i], sizeof l->keys[i], "%s", c[i].step_key);
    l->running[i] = c[i].running;
    l->exit_code[i] = c[i].exit_code;
    l->n++;
  }
}

/* Lists this node's containers through the runner's engine client (which
 * also says each one's state and exit code). */
static inline void dt_list(uv_loop_t *loop, wf_runner_t *r, dt_list_t *l) {
  wf__docker_runner_t *dr = (wf__docker_runner_t *)r;
  memset(l, 0, sizeof *l);
  ASSERT_OK(wf_docker_list(dr->d, dr->node, dt_on_list, l));
  dt_run_until(loop, &l->done);
}

/* Fails the test if a container of this node with that step key is left. */
static inline void dt_assert_no_container(uv_loop_t *loop, wf_runner_t *r, const char *key) {
  dt_list_t l;
  dt_list(loop, r, &l);
  ASSERT_OK(l.err);
  for (size_t i = 0; i < l.n; i++)
    if (strcmp(l.keys[i], key) == 0) WF_FAIL("container %s of %s left behind", l.ids[i], key);
}

/* ---- raw API calls (for set-ups the runner must meet, e.g. a foreign container) -------- */
typedef struct dt_api_s {
  int done;
  int err;
  int status;
  char body[8192];
} dt_api_t;

static inline void dt_on_api(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                      void *data) {
  dt_api_t *a = data;
  (void)req;
  a->done = 1;
  a->err = err;
  a->status = status;
  snprintf(a->body, sizeof a->body, "%.*s", (int)len, body ? body : "");
}

static inline int dt_api(uv_loop_t *loop, const char *host, const char *method, const char *path,
                         const char *body, dt_api_t *a) {
  wf_http_client_t *c = wf_http_client_create(loop, host, NULL);
  wf_http_header_t h[1] = {{"Content-Type", "application/json"}};
  wf_http_req_opts_t o;
  wf_http_cbs_t cbs;
  memset(a, 0, sizeof *a);
  memset(&o, 0, sizeof o);
  memset(&cbs, 0, sizeof cbs);
  ASSERT_NOT_NULL(c);
  o.method = method;
  o.path = path;
  if (body) {
    o.body = body;
    o.body_len = strlen(body);
    o.headers = h;
    o.nheaders = 1;
  }
  o.timeout_ms = 60000;
  cbs.on_done = dt_on_api;
  ASSERT_NOT_NULL(wf_http_request(c, &o, &cbs, a));
  dt_run_until(loop, &a->done);
  wf_http_client_close(c, NULL, NULL);
  return a->status;
}

/* ---- harness control: stop / start dockerd --------------------------------------------- */
static int dt_ctl_count __attribute__((unused));

/* Asks with_docker.py to stop (sig = SIGUSR1) or start (SIGUSR2) dockerd;
 * returns at once.  dt_ctl_wait() runs the loop until it is done. */
static inline void dt_ctl(int sig) {
  pid_t pid = (pid_t)atoi(dt_env("WF_TEST_DOCKER_CTL_PID"));
  dt_ctl_count++;
  ASSERT_OK(kill(pid, sig));
}

static inline int dt_ctl_done(int n) {
  char path[600];
  struct stat st;
  snprintf(path, sizeof path, "%s/ctl-done-%d", dt_env("WF_TEST_DOCKER_DIR"), n);
  return stat(path, &st) == 0;
}

static inline void dt_ctl_wait(uv_loop_t *loop) {
  int n = dt_ctl_count;
  uint64_t t0 = wf_mono_ms();
  while (!dt_ctl_done(n)) {
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(20000);
    if (wf_mono_ms() - t0 > 120000) WF_FAIL("harness did not act on request %d", n);
  }
}

static inline long dt_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

#endif
