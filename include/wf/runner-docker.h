/*
 * runner-docker: the DOCKER runner (src/runner/docker/): a step runs as a
 * container of a Docker Engine (API 1.41 over its unix socket, on the node's
 * loop; never the docker CLI).  docs/docker.md describes what a run does,
 * step by step.  Runs are driven through wf_runner_ops_t (wf/runner.h),
 * including the recovery operations: list this node's containers, re-attach
 * to one (wf_run_req_t.attach_id = its id), remove one.  This header only
 * creates the instance.
 */
#ifndef WF_RUNNER_DOCKER_H
#define WF_RUNNER_DOCKER_H

#include <stddef.h>
#include <uv.h>

#include "wf/runner.h"

typedef struct wf_docker_opts_s {
  const char *host;          /* --docker-host / DOCKER_HOST: "unix:///path" or "tcp://h:p" */
  const char *node_name;     /* label workflow.node on every container; list() finds them by it */
  const char *const *allow_mounts; /* --allow-mount DIR (repeatable) */
  size_t nallow_mounts;
  unsigned docker_wait_s;    /* --docker-wait: how long a step waits for an unreachable
                                engine before it fails (0 = default 30) */
  unsigned pull_timeout_s;   /* --pull-timeout (0 = default 600) */
  int keep_containers;       /* --keep-containers: never remove a finished container */
} wf_docker_opts_t;

/* Creates the runner instance and starts probing the engine (GET /version,
 * API 1.41 checked; an unreachable engine is logged and retried with backoff,
 * never fatal).  opts is copied; the --allow-mount directories are resolved
 * here (realpath, synchronously: call it before uv_run, with the config).
 * Returns NULL only for a host it cannot parse (err says why).  Close it with
 * wf_runner_close(): every run still going then ends (on_exit with the error
 * "docker runner closed", its container left as it is). */
wf_runner_t *wf_docker_runner_create(uv_loop_t *loop, const wf_docker_opts_t *opts, char *err,
                                     size_t errlen);

/* 1 when the engine answered its last probe or request (r is a DOCKER
 * runner instance). */
int wf_docker_runner_reachable(const wf_runner_t *r);

#endif
