/*
 * runner: the DOCKER runner instance: the operator's settings, one engine
 * client, every run not yet freed, and the wf_runner_ops_t the engine drives
 * (start and cancel in run.c; the recovery operations here: list this
 * node's containers, remove one).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"
#include "workflow.pb-c.h"
#include "wf/util.h"

#define DEFAULT_WAIT_S 30
#define DEFAULT_PULL_TIMEOUT_S 600

/* ---- recovery -------------------------------------------------------------------------------- */
typedef struct list_ctx_s {
  wf__docker_runner_t *r;
  wf_runner_list_cb cb;
  void *data;
} list_ctx_t;

static void on_list(int err, const wf_docker_container_t *c, size_t n, void *data) {
  list_ctx_t *x = data;
  wf_runner_leftover_t *l = n ? wf_calloc(n, sizeof *l) : NULL;
  for (size_t i = 0; i < n; i++) {
    l[i].id = c[i].id;
    l[i].step_key = c[i].step_key ? c[i].step_key : "";
    l[i].running = c[i].running;
  }
  x->cb(&x->r->base, err, l, err ? 0 : n, x->data);
  free(l);
  free(x);
}

/* The containers labelled workflow.node=<this node>, in every state. */
static int docker_list(wf_runner_t *base, wf_runner_list_cb cb, void *data) {
  wf__docker_runner_t *r = (wf__docker_runner_t *)base;
  list_ctx_t *x;
  int rc;
  if (r->closing) return UV_EINVAL;
  x = wf_calloc(1, sizeof *x);
  x->r = r;
  x->cb = cb;
  x->data = data;
  rc = wf_docker_list(r->d, r->node, on_list, x);
  if (rc != 0) free(x);
  return rc;
}

static int docker_remove(wf_runner_t *base, const char *id, void (*cb)(int err, void *data),
                         void *data) {
  wf__docker_runner_t *r = (wf__docker_runner_t *)base;
  if (r->closing) return UV_EINVAL;
  return wf_docker_remove(r->d, id, cb, data);
}

/* ---- Podman's orphans of an engine restart ------------------------------------------------- */
typedef struct reap_s {
  wf__docker_runner_t *r;
  char id[80];
} reap_t;

static void on_reap_up(int err, void *data) {
  reap_t *x = data;
  /* UV_ECANCELED: the runner is closing; the agent's next start removes the
   * container as an orphan instead. */
  if (!err && !x->r->closing) {
    wf_info(NULL, "removing container %.12s, left running when the engine went away", x->id);
    wf_docker_remove(x->r->d, x->id, NULL, NULL);
  }
  free(x);
}

void wf__docker_runner_reap(wf__docker_runner_t *r, const char *id) {
  reap_t *x;
  if (r->closing || r->keep || !id || !*id ||
      wf_docker_engine(r->d) != WF_DOCKER_ENGINE_PODMAN)
    return;
  x = wf_calloc(1, sizeof *x);
  x->r = r;
  snprintf(x->id, sizeof x->id, "%s", id);
  /* The waiter is freed after on_reap_up; the client fires it with
   * UV_ECANCELED when it closes, before the runner can be freed. */
  wf_docker_when_up(r->d, on_reap_up, x);
}

int wf_docker_runner_reachable(const wf_runner_t *base) {
  const wf__docker_runner_t *r = (const wf__docker_runner_t *)base;
  return r && wf_docker_reachable(r->d);
}

/* ---- lifetime -------------------------------------------------------------------------------- */
void wf__docker_runner_maybe_free(wf__docker_runner_t *r) {
  void (*cb)(void *);
  void *data;
  if (!r->closing || !r->d_closed || r->runs) return;
  cb = r->close_cb;
  data = r->close_data;
  for (size_t i = 0; i < r->nallow; i++) free(r->allow[i]);
  free(r->allow);
  free(r->node);
  free(r);
  if (cb) cb(data);
}

static void on_d_closed(void *data) {
  wf__docker_runner_t *r = data;
  r->d_closed = 1;
  wf__docker_runner_maybe_free(r);
}

static void docker_close(wf_runner_t *base, void (*cb)(void *data), void *data) {
  wf__docker_runner_t *r = (wf__docker_runner_t *)base;
  wf__drun_t *run, *next;
  if (r->closing) return;
  r->closing = 1;
  r->close_cb = cb;
  r->close_data = data;
  for (run = r->runs; run; run = next) {
    next = run->next;
    if (run->phase == PH_DONE) continue;
    wf__drun_set_error(run, "docker runner closed");
    wf__drun_finish(run);
  }
  wf_docker_close(r->d, on_d_closed, r);
}

static const wf_runner_ops_t docker_ops = {
  .name = "docker",
  .unit = "container",
  .type = WF__RUNNER__TYPE__DOCKER,
  .start = wf__drun_start,
  .cancel = wf__drun_cancel,
  .list = docker_list,
  .remove = docker_remove,
  .close = docker_close,
};

wf_runner_t *wf_docker_runner_create(uv_loop_t *loop, const wf_docker_opts_t *opts, char *err,
                                     size_t errlen) {
  wf__docker_runner_t *r;

  if (!loop || !opts || !opts->host || !opts->node_name) {
    snprintf(err, errlen, "docker runner: host and node name are required");
    return NULL;
  }
  r = wf_calloc(1, sizeof *r);
  r->d = wf_docker_create(loop, opts->host);
  if (!r->d) {
    snprintf(err, errlen, "--docker-host %s: not unix:///path or tcp://host:port", opts->host);
    free(r);
    return NULL;
  }
  r->base.ops = &docker_ops;
  r->base.loop = loop;
  r->node = wf_strdup(opts->node_name);
  r->wait_s = opts->docker_wait_s ? opts->docker_wait_s : DEFAULT_WAIT_S;
  r->pull_timeout_s = opts->pull_timeout_s ? opts->pull_timeout_s : DEFAULT_PULL_TIMEOUT_S;
  r->keep = opts->keep_containers;
  r->allow = wf_calloc(opts->nallow_mounts + 1, sizeof *r->allow);
  for (size_t i = 0; i < opts->nallow_mounts; i++) {
    const char *dir = opts->allow_mounts[i];
    char resolved[PATH_MAX];
    if (!dir || dir[0] != '/') {
      wf_warn(NULL, "--allow-mount %s: not an absolute path; ignored", dir ? dir : "(null)");
      continue;
    }
    /* Resolved once, here, before the loop runs (like the config files):
     * mounts are compared with their own resolved paths. */
    if (realpath(dir, resolved)) {
      r->allow[r->nallow++] = wf_strdup(resolved);
    } else {
      wf_warn(NULL, "--allow-mount %s: cannot be resolved (%s); using it as written", dir,
              strerror(errno));
      r->allow[r->nallow++] = wf__docker_normalize_path(dir);
    }
  }
  return &r->base;
}
