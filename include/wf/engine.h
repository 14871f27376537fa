/*
 * engine: the node's steps, from watch event to final status.
 *
 * It owns the step informer (filtered on status.scheduled_node), the action
 * catalog, the work queue and one explicit state machine per step it runs:
 *
 *   CLAIMING -> RESOLVING -> RUNNING -> ENDING -> FINISHING -> (done)
 *
 * CLAIMING is a txn on the step's mod_revision that writes RUNNING; a lost
 * compare means someone else changed the step: drop the job and decide again
 * from the newer value.  RESOLVING finds the action (catalog) and, for
 * pipeline steps, the pipeline (etcd).  RUNNING merges and validates params
 * and drives a runner (runner.h) whose output goes to a log file
 * (logstore.h); ENDING waits for that file to be on disk.  FINISHING writes
 * the outcome with a txn, re-applying the patch on a newer value after a
 * lost compare, and retrying with backoff while etcd is away: a final
 * status is never dropped (except when the key was deleted, which must not
 * be written back).  src/engine/engine-internal.h draws the machine whole.
 */
#ifndef WF_ENGINE_H
#define WF_ENGINE_H

#include <stdint.h>
#include <uv.h>

#include "wf/etcd.h"
#include "wf/runner.h"

typedef struct wf_engine_s wf_engine_t;

typedef struct wf_engine_cfg_s {
  const char *node_name;
  const char *prefix;
  const char *log_dir;
  /* Steps' output files go to <output_dir>/<step key>/ (made absolute at
   * create; NULL = "runner_output"). */
  const char *output_dir;
  const char *actions_dir;   /* may be NULL */
  unsigned max_parallel;
  unsigned step_timeout_s;   /* 0 = none */
  unsigned stop_grace_s;
  unsigned resync_s;         /* 0 = none */
  int64_t page_size;         /* list page size; 0 = default */
  const char *mask_params;   /* globs of secret param names (--mask-params); may be NULL */
  /* The runner instances (wf/runner.h), borrowed: created and closed by the
   * node around the engine.  A step runs in the one whose ops->type is its
   * action's runner_type; a type no instance serves fails the step.  The
   * array is copied. */
  wf_runner_t *const *runners;
  size_t nrunners;
  int keep_leftovers;        /* --keep-containers: leave orphaned runs alone too */
} wf_engine_cfg_t;

typedef struct wf_engine_stats_s {
  unsigned running;      /* jobs holding a --max-parallel slot */
  size_t waiting;        /* PENDDING steps waiting for a slot */
  size_t cached;         /* steps of this node in the cache */
  uint64_t started, succeeded, failed, canceled;
  uint64_t relists;      /* full re-lists of the step cache after the first one
                            (compaction, --resync); for /metrics */
} wf_engine_stats_t;

/* Creates the engine (strings in cfg are copied).  Loads --actions-dir now,
 * synchronously; returns NULL with err filled if that fails.  etcd is
 * borrowed and must outlive the engine. */
wf_engine_t *wf_engine_create(uv_loop_t *loop, wf_etcd_t *etcd, const wf_engine_cfg_t *cfg,
                              char *err, size_t errlen);
/* Lists and watches actions and steps; steps start running once the action
 * catalog is synced. */
void wf_engine_start(wf_engine_t *e);
/* Graceful drain: take no new steps, let running ones finish for up to
 * timeout_s, then stop them (they end FAILED, "node shut down ..."), and
 * call cb once every job has written its final status.  cb fires exactly
 * once: inside this call when no job is alive, else from a later
 * callback (the last job's). */
void wf_engine_drain(wf_engine_t *e, unsigned timeout_s, void (*cb)(void *data), void *data);
/* Closes everything (after a drain); jobs still alive are stopped and end
 * without a write.  cb (may be NULL) fires once, on a later iteration, when
 * every handle is closed and the engine is freed.  The runners are the
 * node's: close them after this. */
void wf_engine_close(wf_engine_t *e, void (*cb)(void *data), void *data);
void wf_engine_stats(const wf_engine_t *e, wf_engine_stats_t *out);
/* 1 while both watches (steps, actions) are live. */
int wf_engine_live(const wf_engine_t *e);

/* The log file of step key (the prefix taken off) while this engine holds
 * a job for it (claimed, running, or writing its outcome), else NULL.  The
 * job closes its log before it ends, so once this says NULL the file is
 * whole.  Borrowed: copy it before returning to the loop. */
const char *wf_engine_step_log(const wf_engine_t *e, const char *key);
/* The keys of every job alive now, as a NULL-terminated array the caller
 * frees with wf_strv_free() (for log retention: these logs are kept). */
char **wf_engine_job_keys(const wf_engine_t *e);
/* 1 once restart recovery is over: every step this node left RUNNING is
 * attached again (a job) or ended. */
int wf_engine_recovered(const wf_engine_t *e);

/* Durations the engine reports as they happen, for /metrics. */
enum wf_engine_obs {
  WF_ENGINE_OBS_DISPATCH, /* a PENDDING value seen (watch or list) -> RUNNING written */
  WF_ENGINE_OBS_STEP,     /* RUNNING written (start_at) -> final status written */
};
typedef void (*wf_engine_observe_cb)(enum wf_engine_obs what, double seconds, void *data);
/* Sets the observer (NULL clears it).  It is called from inside the
 * engine's callbacks and must only record the number, never call back into
 * the engine; data must stay valid until the engine is closed. */
void wf_engine_set_observer(wf_engine_t *e, wf_engine_observe_cb cb, void *data);

/* ---- reload (SIGHUP) ------------------------------------------------------------------
 * A set of --actions-dir actions, read off the loop. */
typedef struct wf_engine_actions_s wf_engine_actions_t;
/* Reads and checks every action file of dir (NULL: none).  Blocking and
 * independent of any engine: meant for a threadpool thread (uv_queue_work).
 * Returns NULL with err filled if the dir or one of its files is unusable. */
wf_engine_actions_t *wf_engine_actions_load(const char *dir, char *err, size_t errlen);
void wf_engine_actions_free(wf_engine_actions_t *a);  /* NULL is a no-op */
/* Applies the settings that can change while steps run: max_parallel,
 * step_timeout_s, stop_grace_s and mask_params (strings copied; cfg's other
 * fields are ignored), and replaces the file actions with `actions`
 * (consumed; NULL keeps the current ones).  Running steps keep what they
 * started with (timeout, grace, mask); steps started from now on get the new
 * values.  A larger max_parallel starts waiting steps at once; a smaller one
 * lets the running steps finish and holds new ones back. */
void wf_engine_reconfigure(wf_engine_t *e, const wf_engine_cfg_t *cfg,
                           wf_engine_actions_t *actions);

#endif
