/*
 * runner: one vtable that the engine drives for every runner type (local
 * process now, docker and k8s later).  A runner never talks to etcd: it gets
 * a run request, writes output to the log file it is handed (respecting its
 * backpressure), and reports its exit through a callback.
 */
#ifndef WF_RUNNER_H
#define WF_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "wf/logstore.h"

typedef struct wf_run_s wf_run_t;

typedef struct wf_kv_s {
  const char *key;
  const char *value;
} wf_kv_t;

typedef struct wf_run_req_s {
  const char *step_key;          /* for logs */
  const wf_kv_t *runner_params;  /* the action's runner_params (non-empty values) */
  size_t nrunner_params;
  const char *const *env;        /* "KEY=VALUE" strings, NULL-terminated: merged params + WORKFLOW_*;
                                    the whole environment (NULL = empty, never the node's) */
  wf_logfile_t *log;             /* output sink, borrowed; the engine closes it after on_exit,
                                    never before (the runner writes to it until then) */
  unsigned stop_grace_s;         /* graceful stop -> kill delay for cancel */
  void *ctx;                     /* the runner instance (docker: wf_docker_runner_t*); NULL for local */
  const char *node_name;         /* this node's name (docker labels) */
  /* Recovery after an agent restart: attach to this existing container (id)
   * instead of creating one; output continues in the same log file, opened
   * for appending.  NULL for a normal run.  Only runners with recovery
   * (docker) look at it. */
  const char *attach_id;
} wf_run_req_t;

typedef struct wf_run_result_s {
  int exit_code;        /* process / container exit code; 128+N after signal N */
  int term_signal;      /* signal that ended it, or 0 */
  int canceled;         /* 1 if wf_runner_ops.cancel stopped it */
  const char *error;    /* NULL, or why the runner could not run it (e.g. spawn failed) */
  const wf_kv_t *response; /* extra response keys (pid, container_id, ...) */
  size_t nresponse;
} wf_run_result_t;

typedef struct wf_run_cbs_s {
  /* Fires once when the process/container is running, with response keys to
   * record now (pid, ...).  Optional.  On a later loop iteration than
   * start(), and always before on_exit; never for a run that did not start. */
  void (*on_started)(wf_run_t *run, const wf_kv_t *response, size_t n, void *data);
  /* Fires exactly once, after the process exited AND its output was fully
   * handed to the log file (or the run could not start: result->error set).
   * Always on a later loop iteration than start().  The run object is freed
   * after this returns. */
  void (*on_exit)(wf_run_t *run, const wf_run_result_t *result, void *data);
} wf_run_cbs_t;

typedef struct wf_runner_ops_s {
  const char *name;   /* "local", "docker", ... */
  /* Starts a run.  Returns NULL with err filled only for request errors found
   * before anything started (e.g. "CMD missing", bad command list); otherwise
   * every outcome comes through cbs->on_exit.  req is copied as needed. */
  wf_run_t *(*start)(uv_loop_t *loop, const wf_run_req_t *req, const wf_run_cbs_t *cbs,
                     void *data, char *err, size_t errlen);
  /* Graceful stop (SIGTERM / docker stop), then kill after req->stop_grace_s.
   * on_exit still fires once, with canceled = 1.  Idempotent. */
  void (*cancel)(wf_run_t *run);
} wf_runner_ops_t;

extern const wf_runner_ops_t wf_runner_local;

/* How the local runner starts children: 1 posix_spawn() + a pidfd (the
 * default where the kernel has pidfd_open), 0 uv_spawn() (fork).  For tests,
 * which run both; call before the first step. */
void wf_runner_local_set_spawn_mode(int mode);

/* Frees the local runner's cache of PATH searches (at exit, so that leak
 * checkers see nothing). */
void wf_runner_local_cleanup(void);

/* Looks up a runner param by key (NULL if absent). */
const char *wf_kv_get(const wf_kv_t *kv, size_t n, const char *key);

#endif
