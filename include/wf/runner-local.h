/*
 * runner-local: the LOCAL runner (src/runner/local/): a step runs as a child
 * process of the node, its argv from the CMD runner param, its output in
 * the step's log file.  The run itself is driven through wf_runner_ops_t
 * (wf/runner.h); this header only creates the instance.
 */
#ifndef WF_RUNNER_LOCAL_H
#define WF_RUNNER_LOCAL_H

#include <uv.h>

#include "wf/runner.h"

/* How children are started. */
enum wf_local_spawn {
  WF_LOCAL_SPAWN_AUTO,   /* posix_spawn() + a pidfd where the kernel has pidfd_open, else fork */
  WF_LOCAL_SPAWN_POSIX,  /* posix_spawn() + a pidfd (tests) */
  WF_LOCAL_SPAWN_FORK,   /* uv_spawn(), which forks: the fallback (tests) */
};

typedef struct wf_local_opts_s {
  enum wf_local_spawn spawn;
} wf_local_opts_t;

/* Creates the instance on loop (opts may be NULL: the defaults).  Never
 * fails.  Close it with wf_runner_close() once its runs have ended; a run
 * still going then is killed (SIGKILL to its group) and reports through
 * on_exit before the close callback fires. */
wf_runner_t *wf_local_runner_create(uv_loop_t *loop, const wf_local_opts_t *opts);

#endif
