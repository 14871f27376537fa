/*
 * runner: the one interface through which the engine runs a step, whatever
 * runs it.  Each runner (runner/local/, runner/docker/, and any later one)
 * is a file set behind a wf_runner_ops_t; the node creates the instances it
 * is configured for and hands them to the engine, which picks one by the
 * action's runner_type and never names a runner itself.
 *
 * A runner never talks to etcd.  It gets a run request (merged params as
 * the environment, the action's runner params, a log file), writes the
 * step's output to that log file (respecting its backpressure), and reports
 * the run's start and exit through callbacks.  Runners whose runs outlive
 * the agent (a container keeps running when the agent is killed) also say
 * what they left running, re-attach to it, and remove what nobody wants.
 *
 * Callbacks never fire from inside the call that started the operation:
 * always on a later loop iteration (docs/house-rules.md rule 9).
 */
#ifndef WF_RUNNER_H
#define WF_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "wf/logstore.h"
#include "wf/util.h"

typedef struct wf_runner_s wf_runner_t;
typedef struct wf_run_s wf_run_t;

typedef struct wf_run_req_s {
  const char *step_key;          /* names the run in logs (and labels a container) */
  const wf_kv_t *runner_params;  /* the action's runner_params (non-empty values) */
  size_t nrunner_params;
  const char *const *env;        /* "KEY=VALUE" strings, NULL-terminated: merged params + WORKFLOW_*;
                                    the whole environment (NULL = empty, never the node's) */
  wf_logfile_t *log;             /* output sink, borrowed; the engine closes it after on_exit,
                                    never before (the runner writes to it until then) */
  unsigned stop_grace_s;         /* graceful stop -> kill delay for cancel */
  /* Recovery after an agent restart: attach to this run the runner left
   * behind (an id from its list operation) instead of starting a new one;
   * output continues in the same log file, which the engine opened for
   * appending.  NULL for a normal run. */
  const char *attach_id;
  /* The host directory of the step's output files (docs/protocol.md §4),
   * or NULL.  env names its files in WORKFLOW_OUTPUT and WORKFLOW_SUMMARY
   * as host paths; a runner whose step cannot see the host's files (a
   * container, a pod) makes the directory visible to it and rewrites those
   * two variables to the paths the step sees. */
  const char *output_dir;
  /* The PATH a process started on the host gets when env sets none (the
   * node's own, so that a bare "sh" resolves as operators expect), or NULL.
   * A runner whose step runs elsewhere (a container keeps its image's PATH)
   * ignores it. */
  const char *host_path;
} wf_run_req_t;

typedef struct wf_run_result_s {
  int exit_code;        /* process / container exit code; 128+N after signal N */
  int term_signal;      /* signal that ended it, or 0 */
  int canceled;         /* 1 if cancel() was called on the run */
  const char *error;    /* NULL, or why the runner could not run it (e.g. spawn failed) */
  const wf_kv_t *response; /* extra response keys (pid, container_id, ...) */
  size_t nresponse;
} wf_run_result_t;

typedef struct wf_run_cbs_s {
  /* Fires once when the process/container is running, with response keys to
   * record now (pid, ...).  Optional.  On a later loop iteration than
   * start(), and always before on_exit; never for a run that did not start. */
  void (*on_started)(wf_run_t *run, const wf_kv_t *response, size_t n, void *data);
  /* Fires exactly once, after the run ended AND its output was fully
   * handed to the log file (or the run could not start: result->error set).
   * Always on a later loop iteration than start().  The run object is freed
   * after this returns; everything in result is valid during the call only. */
  void (*on_exit)(wf_run_t *run, const wf_run_result_t *result, void *data);
} wf_run_cbs_t;

/* What a runner left running, or finished but not removed, before the agent
 * restarted.  Strings are valid during the list callback only. */
typedef struct wf_runner_leftover_s {
  const char *id;        /* the runner's own handle: pass as wf_run_req_t.attach_id */
  const char *step_key;  /* the step it ran ("" if it cannot tell) */
  int running;           /* 1 while it still runs */
} wf_runner_leftover_t;

/* Fires once, on a later iteration: err 0 and the leftovers, or err != 0
 * (runner unreachable) with n = 0. */
typedef void (*wf_runner_list_cb)(wf_runner_t *r, int err, const wf_runner_leftover_t *l,
                                  size_t n, void *data);

typedef struct wf_runner_ops_s {
  const char *name;   /* "local", "docker": for log lines */
  const char *unit;   /* what runs: "process", "container": for messages */
  int type;           /* the Action runner_type it serves (WF__RUNNER__TYPE__*) */

  /* Starts a run.  Returns NULL with err filled only for request errors found
   * before anything started (e.g. "CMD missing", a bad command list);
   * otherwise every outcome comes through cbs->on_exit.  req and cbs are
   * copied as needed; data is passed back to the callbacks. */
  wf_run_t *(*start)(wf_runner_t *r, const wf_run_req_t *req, const wf_run_cbs_t *cbs,
                     void *data, char *err, size_t errlen);
  /* Graceful stop (SIGTERM, docker stop), then a kill after req->stop_grace_s.
   * on_exit still fires once, with canceled = 1.  Idempotent. */
  void (*cancel)(wf_run_t *run);

  /* Recovery, NULL for runners whose runs die with the agent.  list: what
   * this node's instance left behind (returns 0, or a negative error and
   * then cb never fires).  remove: gets rid of one leftover; cb (may be
   * NULL) fires once with 0 when it is gone (also when it was gone
   * already) or the error; returns 0 or a negative error. */
  int (*list)(wf_runner_t *r, wf_runner_list_cb cb, void *data);
  int (*remove)(wf_runner_t *r, const char *id, void (*cb)(int err, void *data), void *data);

  /* Stops the instance: runs still going end (on_exit with an error), and
   * cb (may be NULL) fires once everything is freed, on a later iteration.
   * Runs should normally be finished or cancelled before. */
  void (*close)(wf_runner_t *r, void (*cb)(void *data), void *data);
} wf_runner_ops_t;

/* The head every runner instance starts with (embedded first, by value). */
struct wf_runner_s {
  const wf_runner_ops_t *ops;  /* read-only */
  uv_loop_t *loop;             /* read-only */
};

/* Closes r (NULL is a no-op); see wf_runner_ops_t.close. */
void wf_runner_close(wf_runner_t *r, void (*cb)(void *data), void *data);

#endif
