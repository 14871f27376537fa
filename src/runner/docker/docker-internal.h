/*
 * docker-internal: what the DOCKER runner's files share.
 *
 *   spec.c    the container spec: runner params, mounts and env -> the
 *             containers/create body (pure, no loop)
 *   run.c     the run object and the phases that get a container: mounts
 *             resolved, engine wait, pull, create (and name conflicts),
 *             plus finishing: remove, report, free
 *   follow.c  the phases that follow a container: attach, start, output,
 *             wait, stop and kill, ping, inspect; and re-attaching to one
 *             after an agent restart
 *   runner.c  the instance: settings, engine client, list/remove/close, and
 *             the wf_runner_ops_t the engine drives
 *
 * run.c's header comment draws the phases of a run.
 */
#ifndef WF_DOCKER_INTERNAL_H
#define WF_DOCKER_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "client.h"
#include "wf/runner-docker.h"
#include "wf/runner.h"

/* ---- the container spec (spec.c, pure) ----------------------------------------- */
enum wf__docker_policy { WF__PULL_IF_NOT_PRESENT, WF__PULL_ALWAYS, WF__PULL_NEVER };

typedef struct wf__docker_mount_s {
  char *host;   /* normalised, as checked lexically */
  char *cont;
  int ro;
  char *real;   /* resolved by uv_fs_realpath at run time (run.c) */
} wf__docker_mount_t;

/* Everything a run needs from its request, checked before anything runs. */
typedef struct wf__docker_spec_s {
  wf_docker_image_t img;
  char *image_url;     /* IMAGE_URL as given: the pull's fromImage */
  char *name;          /* container name derived from the step key */
  char *auth;          /* X-Registry-Auth value, or NULL; wiped when freed */
  enum wf__docker_policy policy;
  json_t *body;        /* containers/create body, without Binds (added at create) */
  char *mem_text;      /* CONTAINER_MEMORY as written (for the OOM message), or NULL */
  wf__docker_mount_t *mounts;
  size_t nmounts;
  char *output_dir;    /* req->output_dir, bound at WF__DOCKER_OUTPUT_MOUNT, or NULL */
} wf__docker_spec_t;

/* Where a container sees the step's output directory (wf_run_req_t
 * output_dir): WORKFLOW_OUTPUT and WORKFLOW_SUMMARY point into it. */
#define WF__DOCKER_OUTPUT_MOUNT "/workflow-output"

/* Builds s from req's runner params and env: image reference, pull policy
 * and secret, IMAGE_CMD, CONTAINER_* settings, labels workflow.step and
 * workflow.node (= node), env (WORKFLOW_OUTPUT and WORKFLOW_SUMMARY moved
 * under WF__DOCKER_OUTPUT_MOUNT when req->output_dir is set), and
 * CONTAINER_MOUNTS checked lexically
 * against allow[0..nallow) (resolved --allow-mount dirs).  Returns 0, or -1
 * with err filled ("docker runner: ...", naming the param) and s empty.
 * Strings are copied; free with wf__docker_spec_finish. */
int wf__docker_spec_init(wf__docker_spec_t *s, const wf_run_req_t *req, const char *node,
                         char *const *allow, size_t nallow, char *err, size_t errlen);
void wf__docker_spec_finish(wf__docker_spec_t *s);
/* The create body as JSON text (malloc'd), with HostConfig.Binds from the
 * mounts' resolved paths and the output directory, and the log driver the
 * engine has (Docker's "local", Podman's "k8s-file"). */
char *wf__docker_spec_create_body(const wf__docker_spec_t *s, enum wf_docker_engine engine);

/* The runner param that asks for a resource limit (CONTAINER_MEMORY, then
 * CONTAINER_CPUS), or NULL when the step sets none. */
const char *wf__docker_spec_limit_param(const wf__docker_spec_t *s);

/* Docker names are [a-zA-Z0-9][a-zA-Z0-9_.-]+: the step key with other bytes
 * as '_' (and "wf-" in front of a short or odd first byte).  malloc'd. */
char *wf__docker_container_name(const char *key);
/* Lexical normalisation of an absolute path ("//", "/./" and "x/.." go).
 * malloc'd. */
char *wf__docker_normalize_path(const char *p);
/* The entry of allow[0..n) that path lies under, or NULL (borrowed). */
const char *wf__docker_allowed_by(char *const *allow, size_t n, const char *path);

/* ---- the instance (runner.c) ----------------------------------------------------- */
/* A DOCKER run: wf_run_t as this runner defines it (each runner defines
 * struct wf_run_s in its own files; the engine only holds the pointer). */
typedef struct wf_run_s wf__drun_t;

typedef struct wf__docker_runner_s {
  wf_runner_t base;
  wf_docker_t *d;
  char *node;
  char **allow;  /* resolved --allow-mount dirs */
  size_t nallow;
  unsigned wait_s, pull_timeout_s;
  int keep;
  wf__drun_t *runs;  /* doubly linked, every run not yet freed */
  int closing;
  int d_closed;
  void (*close_cb)(void *data);
  void *close_data;
} wf__docker_runner_t;

/* Frees the instance once it is closing, its client closed and its last run
 * freed (called by both). */
void wf__docker_runner_maybe_free(wf__docker_runner_t *r);
/* Podman: a container whose run ended because the engine went away is still
 * running (conmon, not the service, keeps it): force-removes it once the
 * engine answers again (unless --keep-containers).  Nothing for dockerd,
 * which stops its containers when it shuts down.  id is copied. */
void wf__docker_runner_reap(wf__docker_runner_t *r, const char *id);

/* ---- a run (run.c, follow.c) -------------------------------------------------------- */
enum wf__drun_phase {
  PH_REALPATH,
  PH_ENGINE,
  PH_PULL,
  PH_CREATE,
  PH_CONFLICT,
  PH_REMOVE_OLD,
  PH_INSPECT_RECOVER,
  PH_PRIOR,
  PH_ATTACH,
  PH_START,
  PH_RUNNING,
  PH_PING,
  PH_INSPECT,
  PH_REMOVE,
  PH_DONE,
};

/* What the run's one timer is armed for. */
enum wf__drun_tmode {
  TM_NONE, TM_ENGINE, TM_PULL, TM_KILL, TM_LINGER, TM_PRIOR, TM_REINSPECT, TM_EXIT,
};

#define WF__DRUN_ERRBODY_MAX 4096
/* A short call (create, start, inspect, remove...) may take this long. */
#define WF__DRUN_OP_TIMEOUT_MS 60000
/* After the wait answered, how long the output stream may take to end. */
#define WF__DRUN_LINGER_MS 10000

struct wf_run_s {
  wf__docker_runner_t *r;
  wf__drun_t *prev, *next;
  uv_loop_t *loop;
  wf_run_cbs_t cbs;
  void *data;
  char *step_key;
  char *attach_id;  /* recovery: the container to follow */
  wf__docker_spec_t spec;
  size_t mount_idx;
  uv_fs_t fsreq;
  int fs_pending;
  wf_logfile_t *log;
  unsigned grace_s;

  enum wf__drun_phase phase;
  uv_timer_t timer;
  enum wf__drun_tmode tmode;
  int reinspected;    /* the OOM re-check was done */
  int timer_closed;
  uint64_t engine_deadline;  /* uv_now() ms */
  wf_docker_waiter_t *waiter;
  wf_docker_pull_t *pull;
  int pull_timed_out;
  int pulled;
  int conflict_tries;
  wf_http_req_t *op;     /* the one short call in flight */
  wf_http_req_t *out;    /* attach or logs stream */
  wf_http_req_t *wait;
  wf_http_req_t *ping;
  wf_http_req_t *stop;   /* stop, then kill */
  int npending;          /* requests and fs ops whose callback is still due */

  char id[80];
  char warn[512];
  int start_failed;      /* inspect after a failed start, for its exit code */

  /* output */
  wf_docker_demux_t demux;
  int out_status;
  int out_logs;          /* the stream is /logs (recovery), not /attach */
  int paused;
  int out_done;
  char *obuf;            /* payload gathered from one read */
  size_t olen;
  char errbody[WF__DRUN_ERRBODY_MAX];
  size_t errlen;
  uint64_t out_bytes;

  /* outcome */
  int wait_deferred;     /* Podman: the wait goes out when the output stream ends */
  int exit_checks;       /* Podman: inspections after the output stream ended */
  int wait_done;
  int exit_code;
  int have_exit;
  int canceled;
  int stop_sent;
  int engine_retries;
  int started_fired;
  int reported;
  char errmsg[1024];
  wf_kv_t resp[2];
};

/* Completes a request of a run: err, HTTP status and the buffered body. */
typedef void (*wf__drun_done_fn)(wf__drun_t *run, int err, int status, const char *body,
                                 size_t len);

/* Every request of a run carries the run and which handler completes it;
 * one allocation per request, freed in its on_done (docs/house-rules.md rule 14). */
typedef struct wf__drun_req_s {
  wf__drun_t *run;
  wf_http_req_t **slot;  /* the run's pointer to this request, cleared on done */
  wf__drun_done_fn fn;
} wf__drun_req_t;

/* run.c: the vtable's start and cancel. */
wf_run_t *wf__drun_start(wf_runner_t *r, const wf_run_req_t *req, const wf_run_cbs_t *cbs,
                         void *data, char *err, size_t errlen);
void wf__drun_cancel(wf_run_t *run);

/* run.c: plumbing shared with follow.c. */
const char *wf__drun_errtext(int err);
/* Records the first error of the run (later ones only go to the agent log). */
void wf__drun_set_error(wf__drun_t *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fails the run: records why, then removes its container (if any) and finishes. */
void wf__drun_fail(wf__drun_t *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends a request whose answer goes to fn (stream_cbs: a streamed body, may
 * be NULL; its callbacks get a wf__drun_req_t* as data).  *slot (may be
 * NULL) holds the request until it completes.  Returns 0, or -1 when the
 * engine client is closing. */
int wf__drun_send(wf__drun_t *run, wf_http_req_t **slot, const char *method, const char *path,
                  const char *body, const wf_http_cbs_t *stream_cbs, uint64_t timeout_ms,
                  wf__drun_done_fn fn);
/* "/v1.41/containers/<id><suffix>" into out. */
void wf__drun_cpath(const wf__drun_t *run, char *out, size_t outlen, const char *suffix);
/* A transport error before the container started: 1 if the run went back
 * to waiting for the engine (within its budget), 0 if the caller fails it. */
int wf__drun_retry_unreachable(wf__drun_t *run, int err);
void wf__drun_timer_arm(wf__drun_t *run, enum wf__drun_tmode mode, uint64_t ms);
void wf__drun_timer_disarm(wf__drun_t *run);
/* Removes the run's container (unless --keep-containers or there is none),
 * then finishes. */
void wf__drun_remove(wf__drun_t *run);
/* Enters DONE (cancelling what is in flight); on_exit fires from the timer's
 * close callback and the run is freed once nothing is due.  Called again by
 * every late callback. */
void wf__drun_finish(wf__drun_t *run);

/* follow.c: the phases after create, entered from run.c. */
void wf__drun_attach(wf__drun_t *run);
void wf__drun_inspect(wf__drun_t *run);
/* Recovery: GET /containers/{attach_id}/json, then follow what it says. */
void wf__drun_recover(wf__drun_t *run);
void wf__drun_begin_logs(wf__drun_t *run);
void wf__drun_send_stop(wf__drun_t *run);
/* Podman, the output stream over: how did the container end (inspect). */
void wf__drun_ask_exit(wf__drun_t *run);
void wf__drun_send_kill(wf__drun_t *run);

#endif
