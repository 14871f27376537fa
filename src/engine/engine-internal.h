/*
 * engine-internal: what the engine's files share (and tests may reach):
 *
 *   engine.c    the public API: create, start, drain, close, reconfigure
 *   dispatch.c  informer callbacks, the decision per step, the waiting list
 *   job.c       the job state machine: states, stops, outcome, final write
 *   claim.c     CLAIMING: the RUNNING txn and a lost answer verified
 *   resolve.c   RESOLVING: action and pipeline
 *   run.c       RUNNING: params, environment, runner, log file, timeout
 *   outputs.c   the step's output files: offers of earlier steps, its
 *               directory before the run, its files after it
 *   recover.c   after a restart: what the runners left, re-attach, orphans
 *   queue.c     the work queue
 *   catalog.c   the action catalog
 */
#ifndef WF_ENGINE_INTERNAL_H
#define WF_ENGINE_INTERNAL_H

#include <stdint.h>
#include <uv.h>

#include "wf/codec.h"
#include "wf/engine.h"
#include "wf/etcd.h"
#include "wf/informer.h"
#include "wf/logstore.h"
#include "wf/mask.h"
#include "wf/model.h"
#include "wf/runner.h"
#include "wf/util.h"

/* ---- work queue ----------------------------------------------------------------
 * Keys to look at, de-duplicated: a key added while already queued is queued
 * once.  Processing runs from a uv_idle handle, at most a bounded batch per
 * loop iteration, so a burst of 100,000 events cannot starve the loop.
 * wf__queue_retry re-adds a key after a per-key exponential backoff
 * (5 ms doubling to 30 s); wf__queue_forget resets it. */
typedef struct wf_queue_s wf_queue_t;
typedef void (*wf_queue_fn)(const char *key, void *data);
wf_queue_t *wf__queue_create(uv_loop_t *loop, wf_queue_fn fn, void *data);
void wf__queue_add(wf_queue_t *q, const char *key);
void wf__queue_retry(wf_queue_t *q, const char *key);
void wf__queue_forget(wf_queue_t *q, const char *key);
size_t wf__queue_len(const wf_queue_t *q);
/* Drops everything; frees after its handles close; cb may be NULL. */
void wf__queue_close(wf_queue_t *q, void (*cb)(void *), void *data);

/* ---- action catalog --------------------------------------------------------------
 * Actions by "name@version": the etcd catalog under P/workflow/actions/
 * (listed and watched through an informer) and the YAML/JSON files of
 * --actions-dir, loaded at start-up and again on SIGHUP.  An etcd action
 * wins over a file action of the same name@version. */
typedef struct wf_catalog_s wf_catalog_t;
/* dir may be NULL.  Returns NULL with err filled if the dir cannot be read
 * or a file in it is invalid (start-up error: the operator must fix it). */
wf_catalog_t *wf__catalog_create(uv_loop_t *loop, wf_etcd_t *etcd, const char *prefix,
                                 const char *dir, unsigned resync_s,
                                 void (*on_synced)(void *data), void *data, char *err,
                                 size_t errlen);
void wf__catalog_start(wf_catalog_t *c);
/* Reads the action files of dir (NULL: none) into a new set, for a reload.
 * Blocking and pure (no loop, no catalog): safe on a threadpool thread.
 * Returns NULL with err filled when the dir or a file in it is unusable. */
wf_engine_actions_t *wf__catalog_dir_load(const char *dir, char *err, size_t errlen);
void wf__catalog_dir_free(wf_engine_actions_t *a);  /* NULL is a no-op */
/* Replaces the catalog's file actions with a's (a is consumed); returns how
 * many there are now.  Pointers from wf__catalog_get die with the old set. */
size_t wf__catalog_dir_swap(wf_catalog_t *c, wf_engine_actions_t *a);
/* Borrowed; valid until the next loop iteration that handles an etcd event. */
const Wf__Action *wf__catalog_get(wf_catalog_t *c, const char *ref);
int wf__catalog_synced(const wf_catalog_t *c);
size_t wf__catalog_size(const wf_catalog_t *c);
int wf__catalog_live(const wf_catalog_t *c);
void wf__catalog_close(wf_catalog_t *c, void (*cb)(void *), void *data);

/* ---- the engine ---------------------------------------------------------------------- */
typedef struct wf__job_s wf__job_t;

/* One runner's answer to "what did you leave running?" after a restart. */
enum wf__recover_list_state {
  RL_ASKING,   /* list() in flight */
  RL_RETRY,    /* it failed; asked again when the recovery timer fires */
  RL_DONE,     /* answered, or given up on */
};

typedef struct wf__recover_list_s {
  wf_runner_t *runner;
  enum wf__recover_list_state state;
  unsigned attempts;
} wf__recover_list_t;

/* A run some runner left from before the restart, by step key. */
typedef struct wf__leftover_s {
  wf_runner_t *runner;
  char *id;
  int running;   /* 1 running, 0 ended, -1 claimed by a job (not an orphan) */
} wf__leftover_t;

struct wf_engine_s {
  uv_loop_t *loop;
  wf_etcd_t *etcd;
  char *node_name, *prefix, *log_dir, *steps_prefix, *mask_params;
  char *output_dir;          /* absolute; steps' output files in <output_dir>/<key>/ */
  char *quoted_name;         /* "\"<node name>\"", or NULL if JSON must escape the name */
  size_t quoted_len;
  unsigned max_parallel, step_timeout_s, stop_grace_s;
  int64_t start_ms;          /* steps RUNNING from before this are recovered */
  char claim_id[64];         /* "<pid>.<start_ms>": unique to this process */

  wf_runner_t **runners;     /* borrowed instances, by the action runner_type they serve */
  size_t nrunners;

  wf_informer_t *steps;
  wf_catalog_t *catalog;
  wf_queue_t *queue;

  wf__job_t *jobs;           /* all live jobs (doubly linked) */
  unsigned slots;            /* jobs holding a --max-parallel slot */
  unsigned njobs;

  /* PENDDING steps waiting for a slot (or for the catalog), in arrival order. */
  char **wait;
  size_t wait_head, wait_len, wait_cap;
  wf_map_t waiting;          /* key -> wf_mono_ms() when first seen waiting, | 1 */

  wf_map_t complained;       /* key -> revision already logged as bad input */

  int draining;
  uv_timer_t drain_timer;
  void (*drain_cb)(void *);
  void *drain_data;

  int closing;
  unsigned closing_parts;
  void (*close_cb)(void *);
  void *close_data;

  /* Recovery (recover.c): what the runners left, by step key, and the
   * RUNNING steps waiting for their lists. */
  int keep_leftovers;        /* --keep-containers: leave orphans alone too */
  wf__recover_list_t *lists;
  size_t nlists;
  wf_map_t leftovers;        /* step key -> wf__leftover_t* */
  wf_map_t recover_keys;     /* step key -> (void*)1 */
  int recover_ready;         /* every list is in (or given up on) and the catalog synced */
  int steps_synced;
  int outputs_swept;         /* wf__outputs_sweep ran */
  uv_timer_t recover_timer;

  wf_engine_stats_t stats;
  wf_engine_observe_cb observe;  /* metrics; may be NULL */
  void *observe_data;
};

/* engine.c: a part of a closing engine closed (the jobs are one part: the
 * last job freed closes it); the engine is freed after the last part. */
void wf__engine_part_closed(void *data);
/* Calls the drain callback once draining and no job is left. */
void wf__engine_maybe_drained(wf_engine_t *e);

/* ---- the job state machine (job.c) ---------------------------------------------------
 * A job exists for each step the node acts on: one it runs (from CLAIMING,
 * or from RESOLVING when it re-attaches to a run left from before a
 * restart), or one that only gets a status written (FINISHING at once).
 *
 *   CLAIMING --> RESOLVING --> RUNNING --> ENDING --> FINISHING --> DONE
 *
 * and the short cuts: CLAIMING and RESOLVING go to FINISHING when the step
 * fails before it runs or was stopped meanwhile; CLAIMING, RESOLVING and
 * ENDING go to DONE when nothing is to be written (a claim lost, a delete,
 * a move to another node, the engine closing); FINISHING goes to itself on
 * a retry.  A runner that refuses to start leads from RUNNING to ENDING
 * like a run that ended.
 */
enum wf__job_state {
  JOB_CLAIMING,   /* the RUNNING txn is in flight, or its lost answer being verified */
  JOB_RESOLVING,  /* action and pipeline lookups */
  JOB_RUNNING,    /* a runner runs it; its log file is open */
  JOB_ENDING,     /* the run ended; its log file is closing (the outcome waits for the disk) */
  JOB_FINISHING,  /* the final status txn is in flight, or waits for a retry */
  JOB_DONE,       /* settled: unlinked, its timer closing */
};

/* Why a step was stopped; decides the final write. */
enum wf__stop_reason {
  STOP_NONE,
  STOP_CANCEL,    /* status became CANCELING -> CANCELED */
  STOP_DELETE,    /* key deleted -> stop, never write */
  STOP_AWAY,      /* reassigned to another node or finished by someone else -> no write */
  STOP_TIMEOUT,   /* -> FAILED "timed out after N s" */
  STOP_DRAIN,     /* node shutting down -> FAILED */
  STOP_LOGERR,    /* the log file failed -> FAILED with the error */
};

/* A job owns its copies of the step's key and stored value, its log file,
 * its run and one uv_timer (step timeout, then retries); it is freed in
 * that timer's close callback.  The informer's cache entry for the key
 * points at the job (entry->owner) while it lives; the job never keeps the
 * entry pointer, it looks the key up again, because a delete frees the
 * entry. */
struct wf__job_s {
  wf_engine_t *e;
  wf__job_t *prev, *next;
  char *key;                 /* step key (prefix stripped) */
  char *etcd_key;
  char *json;                /* the stored value our next write patches */
  int64_t mod_rev;           /* ... and its mod_revision (txn compare) */
  enum wf__job_state state;
  enum wf__stop_reason stop;
  int holds_slot;

  Wf__Step *step;
  Wf__Action *action;        /* owned copy, resolved */
  Wf__Pipeline *pipeline;    /* owned, resolved for pipeline steps, else NULL */
  wf_params_t offers;        /* what earlier steps of the pipeline run offer */
  wf_runner_t *attach_runner; /* recovery: the runner that left the run ... */
  char *attach_id;           /* ... and its id, to re-attach to */
  wf_mask_t *mask;           /* secret param values, or NULL */
  char *log_path;
  int64_t start_at;
  unsigned timeout_s;

  wf_runner_t *runner;
  wf_run_t *run;
  wf_logfile_t *log;
  int log_err;

  /* The output files (outputs.c).  work runs on the threadpool twice: to
   * prepare out_dir before the run and to read it after; in between the
   * loop owns every out_* field. */
  char *out_dir;             /* <output_dir>/<key>, set in RESOLVING */
  int out_ready;             /* out_dir exists and is to be read (or discarded) */
  struct wf_offers_s *offers_in; /* collecting offers (the list in flight) */
  uv_work_t work;
  char out_err[300];
  char *out_text, *sum_text; /* the files as read, NUL-terminated */
  size_t out_len, sum_len;
  int out_trunc;             /* the output file was over its bound */
  int out_rm_failed;         /* errno of removing out_dir, or 0 */

  /* outcome */
  int final_status;
  char *message;
  wf_params_t response;

  uv_timer_t timer;
  wf_backoff_t backoff;
  uint64_t seen_ms;          /* metrics: wf_mono_ms() when the PENDDING value was seen */
};

/* job.c */
/* Creates a job for entry (its key, value and revision copied) in state
 * `state`, taking a --max-parallel slot if take_slot. */
wf__job_t *wf__job_create(wf_engine_t *e, wf_cache_entry_t *entry, enum wf__job_state state,
                          int take_slot);
/* Moves j to state `to`; a move the diagram above does not draw is a bug
 * (abort). */
void wf__job_enter(wf__job_t *j, enum wf__job_state to);
/* Something outside the job wants it stopped: records why (a delete or a
 * move away overrides an earlier reason) and, while it runs, cancels the
 * runner.  What happens next depends on the state (see job.c). */
void wf__job_stop(wf__job_t *j, enum wf__stop_reason why);
/* A newer stored value of the job's step arrived through the watch. */
void wf__job_adopt(wf__job_t *j, const wf_cache_entry_t *entry);
/* Sets the outcome (status and a printf message, masked). */
void wf__job_set_outcome(wf__job_t *j, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The run (or the attempt) is over: writes the outcome (FINISHING), or
 * settles without a write after a delete or a move away. */
void wf__job_finish(wf__job_t *j);
/* Fails a claimed step before it ran. */
void wf__job_fail_early(wf__job_t *j, const char *msg);
/* Settles the job: unlinks it, gives back its slot, lets waiting steps in. */
void wf__job_done(wf__job_t *j);

/* claim.c */
/* Claims a PENDDING step: o is the entry's value parsed by the caller,
 * borrowed (patched in place), or NULL to parse it here and claim it only
 * if it is still PENDDING.  seen_ms: when the PENDDING value was seen. */
void wf__claim(wf_engine_t *e, wf_cache_entry_t *entry, uint64_t seen_ms, json_t *o);
/* Checks a step before the node takes it (codec, key, log path) and creates
 * its job in `state`, with a slot.  NULL (after writing FAILED where that
 * is the answer) when it cannot run. */
wf__job_t *wf__job_prepare(wf_engine_t *e, wf_cache_entry_t *entry, int64_t start_at, json_t *o,
                           enum wf__job_state state);
/* Writes a status to a step this node will not run (bad input, recovery). */
void wf__write_only(wf_engine_t *e, wf_cache_entry_t *entry, int status, const char *msg);

/* resolve.c: finds the action and (pipeline steps) the pipeline, then runs. */
void wf__job_resolve(wf__job_t *j);

/* run.c: merges params (j->action, j->pipeline, j->offers) and starts the
 * runner. */
void wf__job_run(wf__job_t *j);

/* outputs.c (docs/protocol.md §4, "Step outputs") */
/* RESOLVING, once action and pipeline are known: reads what the earlier
 * steps of a pipeline run offer (a fresh run of a pipeline step), prepares
 * the step's output directory on the threadpool, then calls wf__job_run;
 * or fails the step early (etcd error, a bound, a full disk). */
void wf__job_prepare_outputs(wf__job_t *j);
/* ENDING, once the log file is closed: reads and checks the output files on
 * the threadpool, removes the directory, puts the outputs and the summary
 * into the outcome, then calls wf__job_finish. */
void wf__job_collect_outputs(wf__job_t *j);
/* A prepared directory whose run never started: removed in the background
 * (no callback; the job may be freed meanwhile). */
void wf__job_discard_outputs(wf__job_t *j);
/* Once after a restart, when recovery has decided: removes, in the
 * background, the output directories the previous process left, keeping
 * those of live jobs and of runs being re-attached. */
void wf__outputs_sweep(wf_engine_t *e);

/* dispatch.c */
json_t *wf__load_obj(const char *s);  /* NULL unless s is a JSON object */
/* Starts waiting steps, oldest first, while slots are free. */
void wf__pump_waiting(wf_engine_t *e);
/* The oldest waiting key (malloc'd), or NULL. */
char *wf__wait_pop(wf_engine_t *e);
/* The work queue's function: decides what to do about key now. */
void wf__dispatch(const char *key, void *data);
/* Informer callbacks for the steps prefix. */
extern const wf_informer_cbs_t wf__step_informer_cbs;

/* recover.c */
void wf__recover_init(wf_engine_t *e);
void wf__recover_start(wf_engine_t *e);
/* The catalog or the step cache became ready: decide what waited. */
void wf__recover_settle(wf_engine_t *e);
void wf__recover_steps_synced(wf_engine_t *e);
/* A step RUNNING (or CANCELING) since before this process started. */
void wf__recover_running(wf_engine_t *e, const char *key, wf_cache_entry_t *entry,
                         int64_t start_at);
void wf__recover_canceling(wf_engine_t *e, const char *key, wf_cache_entry_t *entry);
/* Closes the recovery timer: one part of a closing engine. */
void wf__recover_close(wf_engine_t *e);
/* Frees what recovery holds (with the engine). */
void wf__recover_finish(wf_engine_t *e);

#endif
