/*
 * docker runner: runs a step as a container of the Docker Engine, through
 * the engine client in src/docker/ (API 1.41 over the unix socket, on the
 * node's loop; never the docker CLI).
 *
 * A run is one state machine (enum phase), one timer and at most a handful
 * of HTTP requests in flight:
 *
 *   REALPATH  resolve each CONTAINER_MOUNTS host path (uv_fs_realpath) and
 *             check it against the --allow-mount directories
 *   ENGINE    wait for the engine to answer, at most --docker-wait seconds
 *             counted from the start of the run
 *   PULL      POST /images/create, per IMAGE_PULL_POLICY, under --pull-timeout
 *   CREATE    POST /containers/create?name=<step key>; a 409 leads to
 *   CONFLICT  GET the holder of the name: ours (label workflow.step) and not
 *             running -> REMOVE_OLD and CREATE again; anything else fails
 *   ATTACH    POST /containers/{id}/attach?stream=1&stdout=1&stderr=1, and
 *             only once its head arrived (Docker has hooked our stream into
 *             the container's output by then)
 *   START     POST /containers/{id}/start
 *   RUNNING   the output stream and POST /containers/{id}/wait both open;
 *             output frames are demultiplexed straight into the log file,
 *             with the log file's backpressure pausing the socket
 *   PING      the wait answered: a fresh connection tells whether dockerd is
 *             still there (one that shuts down stops its containers and
 *             answers the wait before it goes)
 *   INSPECT   exit code, OOMKilled, State.Error
 *   REMOVE    DELETE /containers/{id}?force=1 unless --keep-containers
 *   DONE      everything in flight is cancelled; on_exit fires from the
 *             timer's close callback, the run is freed once the last
 *             request reported back
 *
 * Recovery (req->attach_id): ENGINE, then INSPECT_RECOVER of that container.
 * One that never started goes through ATTACH/START like a new one; one that
 * runs or has exited is followed with GET /containers/{id}/logs?follow=1
 * from one second before the log file's mtime (PRIOR waits for the log
 * store to report it), so a line around the restart may repeat but none is
 * lost; the wait then returns its exit code as usual.
 *
 * Cancel: before the container runs, the run just stops at the next step
 * (removing a container it created).  While it runs: POST /stop?t=grace,
 * and POST /kill if the wait has not answered grace + 2 s later.
 *
 * Errors are reported once (the first wins) through result->error; a cancel
 * is not an error.  Transport errors before the container started send the
 * run back to ENGINE (within the same --docker-wait budget), because they
 * mean the engine went away between the probe and the call.  Once it runs,
 * a lost engine is "docker engine went away: ...".
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/docker.h"
#include "wf/util.h"

#define DEFAULT_WAIT_S 30
#define DEFAULT_PULL_TIMEOUT_S 600
#define OP_TIMEOUT_MS 60000
#define OP_MAX_BODY ((size_t)4 << 20)
/* After the wait answered, how long the output stream may take to end. */
#define LINGER_MS 10000
/* After the stop grace, how long before the backstop kill. */
#define KILL_SLACK_MS 2000
#define PRIOR_POLL_MS 10
#define ERRBODY_MAX 4096
#define MAX_CONFLICT_TRIES 3

typedef struct mount_s {
  char *host;   /* as given */
  char *cont;
  int ro;
  char *real;   /* resolved by uv_fs_realpath */
} mount_t;

struct wf_docker_runner_s {
  uv_loop_t *loop;
  wf_docker_t *d;
  char *node;
  char **allow;  /* resolved --allow-mount dirs */
  size_t nallow;
  unsigned wait_s, pull_timeout_s;
  int keep;
  wf_run_t *runs;  /* doubly linked, every run not yet freed */
  int closing;
  int d_closed;
  void (*close_cb)(void *data);
  void *close_data;
};

enum phase {
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

enum tmode { TM_NONE, TM_ENGINE, TM_PULL, TM_KILL, TM_LINGER, TM_PRIOR, TM_REINSPECT };

enum policy { PULL_IF_NOT_PRESENT, PULL_ALWAYS, PULL_NEVER };

struct wf_run_s {
  wf_docker_runner_t *r;
  wf_run_t *prev, *next;
  uv_loop_t *loop;
  wf_run_cbs_t cbs;
  void *data;
  char *step_key;
  char *name;       /* container name derived from the step key */
  char *attach_id;  /* recovery: the container to follow */
  wf_docker_image_t img;
  char *image_url;
  char *auth;       /* X-Registry-Auth value */
  enum policy policy;
  json_t *spec;     /* containers/create body, Binds added at CREATE */
  char *mem_text;   /* CONTAINER_MEMORY as written, for the OOM message */
  mount_t *mounts;
  size_t nmounts, mount_idx;
  uv_fs_t fsreq;
  int fs_pending;
  wf_logfile_t *log;
  unsigned grace_s;

  enum phase phase;
  uv_timer_t timer;
  enum tmode tmode;
  int reinspected;    /* the OOM re-check below was done */
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
  char errbody[ERRBODY_MAX];
  size_t errlen;
  uint64_t out_bytes;

  /* outcome */
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

static void finish(wf_run_t *run);
static void begin_engine(wf_run_t *run);
static void engine_ready(wf_run_t *run);
static void do_create(wf_run_t *run);
static void do_attach(wf_run_t *run);
static void do_remove(wf_run_t *run);
static void do_inspect(wf_run_t *run);
static void runner_maybe_free(wf_docker_runner_t *r);

static const char *errtext(int err) {
  return err <= WF_EPROTO ? wf_strerror(err) : uv_strerror(err);
}

/* Records the first error; later ones only go to the agent log. */
static void set_error(wf_run_t *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(wf_run_t *run, const char *fmt, ...) {
  char buf[sizeof run->errmsg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (run->errmsg[0]) {
    wf_warn(run->step_key, "docker: also: %s", buf);
    return;
  }
  snprintf(run->errmsg, sizeof run->errmsg, "%s", buf);
  wf_info(run->step_key, "docker: %s", buf);
}

/* Fails the run: record why, then clean up the container (if any). */
static void fail(wf_run_t *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(wf_run_t *run, const char *fmt, ...) {
  char buf[sizeof run->errmsg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  set_error(run, "%s", buf);
  if (run->out) wf_http_req_cancel(run->out);
  do_remove(run);
}

/* ---- requests --------------------------------------------------------------------------- */
typedef void (*done_fn)(wf_run_t *run, int err, int status, const char *body, size_t len);

/* Every request of a run carries the run and which handler completes it;
 * one allocation per request, freed in its on_done (style.md rule 14). */
typedef struct rctx_s {
  wf_run_t *run;
  wf_http_req_t **slot;  /* the run's pointer to this request, cleared on done */
  done_fn fn;
} rctx_t;

static void on_req_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                        void *data) {
  rctx_t *x = data;
  wf_run_t *run = x->run;
  (void)req;
  if (x->slot && *x->slot == req) *x->slot = NULL;
  run->npending--;
  if (run->phase == PH_DONE) {
    finish(run); /* frees once nothing is pending */
  } else {
    x->fn(run, err, status, body, len);
  }
  free(x);
}

/* Sends a request whose answer goes to fn.  Returns 0, or -1 when the
 * engine client is closing (the runner is being closed). */
static int send_req(wf_run_t *run, wf_http_req_t **slot, const char *method, const char *path,
                    const char *body, const wf_http_cbs_t *stream_cbs, uint64_t timeout_ms,
                    done_fn fn) {
  wf_http_header_t hdr[1] = {{"Content-Type", "application/json"}};
  wf_http_req_opts_t o;
  wf_http_cbs_t cbs;
  wf_http_req_t *req;
  rctx_t *x;

  memset(&o, 0, sizeof o);
  memset(&cbs, 0, sizeof cbs);
  o.method = method;
  o.path = path;
  if (body) {
    o.body = body;
    o.body_len = strlen(body);
    o.headers = hdr;
    o.nheaders = 1;
  }
  o.timeout_ms = timeout_ms;
  o.max_body = OP_MAX_BODY;
  if (stream_cbs) {
    cbs = *stream_cbs;
    o.stream = 1;
  }
  cbs.on_done = on_req_done;
  x = wf_calloc(1, sizeof *x);
  x->run = run;
  x->slot = slot;
  x->fn = fn;
  req = wf_http_request(wf_docker_http(run->r->d), &o, &cbs, x);
  if (!req) {
    free(x);
    return -1;
  }
  run->npending++;
  if (slot) *slot = req;
  return 0;
}

/* The path "/v1.41/containers/<id><suffix>". */
static void cpath(const wf_run_t *run, char *out, size_t outlen, const char *suffix) {
  int n = snprintf(out, outlen, "/v" WF_DOCKER_API "/containers/%s%s", run->id, suffix);
  /* Cannot happen (ids are 64 hex digits, suffixes ours); never send half a path. */
  if (n < 0 || (size_t)n >= outlen) snprintf(out, outlen, "/invalid-path");
}

static void docker_msg(int status, const char *body, size_t len, char *out, size_t outlen) {
  wf_docker_errmsg(status, body, len, out, outlen);
}

/* A transport error before the container started: the engine vanished
 * between the probe and this call; wait for it again within the budget. */
#define MAX_ENGINE_RETRIES 5
static int retry_unreachable(wf_run_t *run, int err) {
  if (!wf_docker_err_unreachable(err)) return 0;
  wf_docker_note_down(run->r->d, err);
  if (run->engine_retries++ >= MAX_ENGINE_RETRIES) return 0;
  /* A fresh --docker-wait budget: the engine was there a moment ago. */
  run->engine_deadline = uv_now(run->loop) + (uint64_t)run->r->wait_s * 1000;
  wf_info(run->step_key, "docker engine unreachable (%s); waiting for it", errtext(err));
  begin_engine(run);
  return 1;
}

/* ---- timer -------------------------------------------------------------------------------- */
static void on_timer(uv_timer_t *t);

static void timer_arm(wf_run_t *run, enum tmode mode, uint64_t ms) {
  run->tmode = mode;
  uv_timer_start(&run->timer, on_timer, ms, 0);
}

static void timer_disarm(wf_run_t *run) {
  run->tmode = TM_NONE;
  uv_timer_stop(&run->timer);
}

static void send_kill(wf_run_t *run);
static void after_wait(wf_run_t *run);
static void do_inspect(wf_run_t *run);
static void begin_logs(wf_run_t *run);

static void on_timer(uv_timer_t *t) {
  wf_run_t *run = t->data;
  enum tmode mode = run->tmode;
  run->tmode = TM_NONE;
  switch (mode) {
    case TM_ENGINE:
      wf_docker_waiter_cancel(run->waiter);
      run->waiter = NULL;
      fail(run, "docker engine unreachable at %s: %s (waited %u s)", wf_docker_host(run->r->d),
           wf_docker_last_error(run->r->d), run->r->wait_s);
      break;
    case TM_PULL:
      run->pull_timed_out = 1;
      wf_docker_pull_cancel(run->pull);
      break;
    case TM_REINSPECT:
      do_inspect(run);
      break;
    case TM_KILL:
      if (!run->wait_done) {
        wf_info(run->step_key, "container %.12s still running %u s after stop: killing it",
                run->id, run->grace_s);
        send_kill(run);
      }
      break;
    case TM_LINGER:
      /* While paused for the disk the stream holds output the step wrote:
       * wait for the disk instead. */
      if (run->paused) {
        timer_arm(run, TM_LINGER, LINGER_MS);
        break;
      }
      wf_warn(run->step_key, "output stream still open %d s after the container exited; "
              "not waiting for it", LINGER_MS / 1000);
      if (run->out) wf_http_req_cancel(run->out);
      break;
    case TM_PRIOR:
      begin_logs(run);
      break;
    case TM_NONE:
      break;
  }
}

/* ---- finishing ------------------------------------------------------------------------------ */
static void report(wf_run_t *run) {
  wf_run_result_t res;
  size_t nresp = 0;

  run->reported = 1;
  if (run->id[0]) {
    run->resp[0].key = "container_id";
    run->resp[0].value = run->id;
    run->resp[1].key = "container_warn";
    run->resp[1].value = run->warn;
    nresp = 2;
  }
  memset(&res, 0, sizeof res);
  res.canceled = run->canceled;
  res.exit_code = run->have_exit ? run->exit_code : -1;
  res.error = run->errmsg[0] ? run->errmsg : NULL;
  res.response = nresp ? run->resp : NULL;
  res.nresponse = nresp;
  if (run->cbs.on_exit) run->cbs.on_exit(run, &res, run->data);
}

static void run_free(wf_run_t *run) {
  wf_docker_runner_t *r = run->r;
  size_t i;
  if (run->prev) run->prev->next = run->next;
  else r->runs = run->next;
  if (run->next) run->next->prev = run->prev;
  for (i = 0; i < run->nmounts; i++) {
    free(run->mounts[i].host);
    free(run->mounts[i].cont);
    free(run->mounts[i].real);
  }
  free(run->mounts);
  json_decref(run->spec);
  if (run->auth) memset(run->auth, 0, strlen(run->auth));
  free(run->auth);
  free(run->obuf);
  free(run->mem_text);
  free(run->image_url);
  free(run->attach_id);
  free(run->name);
  free(run->step_key);
  free(run);
  runner_maybe_free(r);
}

static void on_timer_closed(uv_handle_t *h) {
  wf_run_t *run = h->data;
  run->timer_closed = 1;
  report(run);
  finish(run);
}

/* Enters DONE (cancelling whatever is in flight), and frees the run once
 * the timer is closed, on_exit has fired and no callback is due any more.
 * Called again by each late callback. */
static void finish(wf_run_t *run) {
  if (run->phase != PH_DONE) {
    run->phase = PH_DONE;
    if (run->log) wf_logfile_set_drain_cb(run->log, NULL, NULL);
    wf_docker_waiter_cancel(run->waiter);
    run->waiter = NULL;
    if (run->pull) wf_docker_pull_cancel(run->pull);
    if (run->op) wf_http_req_cancel(run->op);
    if (run->out) wf_http_req_cancel(run->out);
    if (run->wait) wf_http_req_cancel(run->wait);
    if (run->ping) wf_http_req_cancel(run->ping);
    if (run->stop) wf_http_req_cancel(run->stop);
    run->tmode = TM_NONE;
    uv_close((uv_handle_t *)&run->timer, on_timer_closed);
    return;
  }
  if (run->timer_closed && run->reported && run->npending == 0 && !run->fs_pending)
    run_free(run);
}

/* ---- remove ------------------------------------------------------------------------------- */
static void on_removed(wf_run_t *run, int err, int status, const char *body, size_t len) {
  if (err) {
    wf_warn(run->step_key, "removing container %.12s: %s", run->id, errtext(err));
  } else if (status >= 300 && status != 404) {
    char msg[512];
    docker_msg(status, body, len, msg, sizeof msg);
    wf_warn(run->step_key, "removing container %.12s: %s", run->id, msg);
  } else {
    wf_debug(run->step_key, "removed container %.12s", run->id);
  }
  finish(run);
}

/* Removes our container (unless --keep-containers or there is none), then
 * finishes. */
static void do_remove(wf_run_t *run) {
  char path[512];
  if (run->phase == PH_DONE) return;
  if (!run->id[0] || run->r->keep || run->r->closing) {
    finish(run);
    return;
  }
  run->phase = PH_REMOVE;
  timer_disarm(run);
  cpath(run, path, sizeof path, "?force=1&v=1");
  if (send_req(run, &run->op, "DELETE", path, NULL, NULL, OP_TIMEOUT_MS, on_removed) < 0)
    finish(run);
}

/* ---- running: output ------------------------------------------------------------------------ */
static void on_payload(int stream, const char *p, size_t n, void *data) {
  wf_run_t *run = data;
  (void)stream; /* stdout and stderr share the one log, in arrival order */
  memcpy(run->obuf + run->olen, p, n);
  run->olen += n;
}

static void on_out_head(wf_http_req_t *req, int status, const wf_http_header_t *h, size_t nh,
                        void *data);

static void on_out_data(wf_http_req_t *req, const char *p, size_t n, void *data) {
  wf_run_t *run = ((rctx_t *)data)->run;
  int r;

  if (run->out_status != 200) {
    size_t k = n < sizeof run->errbody - 1 - run->errlen ? n : sizeof run->errbody - 1 - run->errlen;
    memcpy(run->errbody + run->errlen, p, k);
    run->errlen += k;
    return;
  }
  /* Payload is never longer than what came in: one buffer per read, handed
   * to the log file whole (ownership passes). */
  run->obuf = wf_malloc(n);
  run->olen = 0;
  if (wf_docker_demux_feed(&run->demux, p, n, on_payload, run) < 0) {
    wf_warn(run->step_key, "output stream of container %.12s is not framed; dropping the rest",
            run->id);
    free(run->obuf);
    run->obuf = NULL;
    wf_http_req_cancel(req);
    return;
  }
  run->out_bytes += run->olen;
  if (run->olen == 0 || !run->log) {
    free(run->obuf);
    run->obuf = NULL;
    return;
  }
  r = wf_logfile_write(run->log, run->obuf, run->olen);
  run->obuf = NULL;
  /* A negative result means the log file failed; its owner hears of it and
   * decides.  Keep draining the stream meanwhile, never wedge on it. */
  if (r == 1) {
    run->paused = 1;
    wf_http_req_pause(req);
  }
}

static void on_log_drain(wf_logfile_t *f, void *data) {
  wf_run_t *run = data;
  (void)f;
  if (!run->paused) return;
  run->paused = 0;
  if (run->out) wf_http_req_resume(run->out);
}

static void on_out_done(wf_run_t *run, int err, int status, const char *body, size_t len) {
  (void)body;
  (void)len;
  run->out_done = 1;
  run->paused = 0;
  if (err && err != UV_ECANCELED)
    wf_warn(run->step_key, "output stream of container %.12s ended: %s", run->id, errtext(err));
  else if (!err && status == 200 && !wf_docker_demux_at_boundary(&run->demux))
    wf_warn(run->step_key, "output stream of container %.12s ended inside a frame", run->id);
  if (!err && status != 200 && status != 101) {
    char msg[512];
    docker_msg(status, run->errbody, run->errlen, msg, sizeof msg);
    if (run->phase == PH_ATTACH) {
      fail(run, "attach to container %.12s: %s", run->id, msg);
      return;
    }
    wf_warn(run->step_key, "%s of container %.12s: %s", run->out_logs ? "logs" : "attach",
            run->id, msg);
  }
  if (run->phase == PH_ATTACH) {
    /* Ended before its head (engine gone, or cancelled). */
    if (retry_unreachable(run, err)) return;
    fail(run, "attach to container %.12s: %s", run->id, errtext(err));
    return;
  }
  if (run->wait_done && run->phase == PH_RUNNING) {
    timer_disarm(run);
    after_wait(run);
  }
}

static const wf_http_cbs_t out_cbs = {
  .on_head = on_out_head,
  .on_data = on_out_data,
  .on_done = NULL,
};

/* ---- running: wait, stop, kill --------------------------------------------------------------- */
static void on_wait(wf_run_t *run, int err, int status, const char *body, size_t len) {
  json_t *root;
  const char *werr;

  if (err) {
    if (wf_docker_err_unreachable(err)) wf_docker_note_down(run->r->d, err);
    set_error(run, "docker engine went away: %s while waiting for container %.12s",
              errtext(err), run->id);
    finish(run); /* nothing to remove on an engine that is gone */
    return;
  }
  if (status != 200) {
    char msg[512];
    docker_msg(status, body, len, msg, sizeof msg);
    fail(run, "wait for container %.12s: %s", run->id, msg);
    return;
  }
  root = json_loadb(body, len, 0, NULL);
  if (json_is_integer(json_object_get(root, "StatusCode"))) {
    run->exit_code = (int)json_integer_value(json_object_get(root, "StatusCode"));
    run->have_exit = 1;
  }
  werr = json_string_value(json_object_get(json_object_get(root, "Error"), "Message"));
  if (werr && *werr) set_error(run, "container %.12s: %s", run->id, werr);
  json_decref(root);
  run->wait_done = 1;
  timer_disarm(run); /* the kill backstop */
  wf_debug(run->step_key, "container %.12s exited with %d", run->id, run->exit_code);
  if (run->out_done)
    after_wait(run);
  else
    timer_arm(run, TM_LINGER, LINGER_MS);
}

static void on_stop_done(wf_run_t *run, int err, int status, const char *body, size_t len) {
  if (err && err != UV_ECANCELED) {
    wf_warn(run->step_key, "stopping container %.12s: %s", run->id, errtext(err));
  } else if (!err && status >= 300 && status != 304) {
    char msg[512];
    docker_msg(status, body, len, msg, sizeof msg);
    wf_warn(run->step_key, "stopping container %.12s: %s", run->id, msg);
  }
}

static void send_stop(wf_run_t *run) {
  char path[512], q[64];
  if (run->stop_sent) return;
  run->stop_sent = 1;
  snprintf(q, sizeof q, "/stop?t=%u", run->grace_s);
  cpath(run, path, sizeof path, q);
  wf_info(run->step_key, "stopping container %.12s (grace %u s)", run->id, run->grace_s);
  if (run->stop) wf_http_req_cancel(run->stop);
  send_req(run, &run->stop, "POST", path, NULL, NULL,
           (uint64_t)run->grace_s * 1000 + OP_TIMEOUT_MS, on_stop_done);
  timer_arm(run, TM_KILL, (uint64_t)run->grace_s * 1000 + KILL_SLACK_MS);
}

static void send_kill(wf_run_t *run) {
  char path[512];
  cpath(run, path, sizeof path, "/kill?signal=KILL");
  /* The stop call may still be waiting out its grace: this one replaces it. */
  if (run->stop) wf_http_req_cancel(run->stop);
  send_req(run, &run->stop, "POST", path, NULL, NULL, OP_TIMEOUT_MS, on_stop_done);
}

/* The container runs (or ran): open the wait next to the output stream. */
static void enter_running(wf_run_t *run) {
  char path[512];
  run->phase = PH_RUNNING;
  run->resp[0].key = "container_id";
  run->resp[0].value = run->id;
  run->resp[1].key = "container_warn";
  run->resp[1].value = run->warn;
  if (!run->started_fired) {
    run->started_fired = 1;
    if (run->cbs.on_started) run->cbs.on_started(run, run->resp, 2, run->data);
    if (run->phase != PH_RUNNING) return; /* the engine cancelled or closed us */
  }
  cpath(run, path, sizeof path, "/wait?condition=not-running");
  if (send_req(run, &run->wait, "POST", path, NULL, NULL, 0, on_wait) < 0) {
    fail(run, "docker runner closed");
    return;
  }
  if (run->canceled) send_stop(run);
}

/* ---- after the wait: ping, inspect ----------------------------------------------------------- */
static void on_ping(int err, void *data) {
  wf_run_t *run = data;
  run->ping = NULL;
  run->npending--;
  if (run->phase == PH_DONE) {
    finish(run);
    return;
  }
  if (err && err != WF_EHTTP) {
    set_error(run,
              "docker engine went away: dockerd stopped while container %.12s ran "
              "(it ended with exit code %d when the engine shut it down)",
              run->id, run->exit_code);
    finish(run);
    return;
  }
  do_inspect(run);
}

static void after_wait(wf_run_t *run) {
  run->phase = PH_PING;
  run->ping = wf_docker_ping(run->r->d, on_ping, run);
  if (!run->ping) {
    finish(run);
    return;
  }
  run->npending++;
}

static void on_inspect(wf_run_t *run, int err, int status, const char *body, size_t len) {
  json_t *root, *state;
  const char *serr;

  if (err || status != 200) {
    char msg[512];
    if (err)
      snprintf(msg, sizeof msg, "%s", errtext(err));
    else
      docker_msg(status, body, len, msg, sizeof msg);
    wf_warn(run->step_key, "inspecting container %.12s: %s", run->id, msg);
    do_remove(run);
    return;
  }
  root = json_loadb(body, len, 0, NULL);
  state = json_object_get(root, "State");
  if (!run->have_exit && json_is_integer(json_object_get(state, "ExitCode"))) {
    run->exit_code = (int)json_integer_value(json_object_get(state, "ExitCode"));
    run->have_exit = 1;
  }
  serr = json_string_value(json_object_get(state, "Error"));
  if (!json_is_true(json_object_get(state, "OOMKilled")) && run->exit_code == 137 &&
      run->mem_text && !run->canceled && !run->reinspected) {
    /* Killed under a memory limit but not (yet) flagged: dockerd records
     * OOMKilled from the kernel's OOM event, which can arrive just after
     * the wait answered.  Look once more, a moment later. */
    run->reinspected = 1;
    json_decref(root);
    timer_arm(run, TM_REINSPECT, 300);
    return;
  }
  if (json_is_true(json_object_get(state, "OOMKilled")))
    set_error(run, "container was OOM-killed (%s%s), exit code %d",
              run->mem_text ? "memory limit " : "no CONTAINER_MEMORY: the host ran out of memory",
              run->mem_text ? run->mem_text : "", run->exit_code);
  else if (run->exit_code == 137 && run->mem_text && !run->canceled)
    /* SIGKILLed under a memory limit that nobody asked to stop: the OOM
     * killer, whose event dockerd missed (it happens on cgroup v1). */
    set_error(run, "container was OOM-killed (memory limit %s), exit code 137 (inferred: "
              "killed at its memory limit, docker did not flag it)", run->mem_text);
  else if (serr && *serr && !run->start_failed && run->exit_code != 0)
    set_error(run, "container %.12s: %s", run->id, serr);
  json_decref(root);
  do_remove(run);
}

static void do_inspect(wf_run_t *run) {
  char path[512];
  run->phase = PH_INSPECT;
  cpath(run, path, sizeof path, "/json");
  if (send_req(run, &run->op, "GET", path, NULL, NULL, OP_TIMEOUT_MS, on_inspect) < 0)
    finish(run);
}

/* ---- start ------------------------------------------------------------------------------------ */
static void on_started_req(wf_run_t *run, int err, int status, const char *body, size_t len) {
  if (err) {
    if (wf_docker_err_unreachable(err)) wf_docker_note_down(run->r->d, err);
    fail(run, "docker engine went away: %s while starting container %.12s", errtext(err),
         run->id);
    return;
  }
  if (status != 204 && status != 304) {
    char msg[1024 - 64];
    docker_msg(status, body, len, msg, sizeof msg);
    set_error(run, "start container: %s", msg);
    if (run->out) wf_http_req_cancel(run->out);
    /* Its State.ExitCode says what a shell would (127: not found). */
    run->start_failed = 1;
    do_inspect(run);
    return;
  }
  wf_info(run->step_key, "container %.12s started (%s)", run->id, run->img.ref);
  enter_running(run);
}

static void do_start(wf_run_t *run) {
  char path[512];
  run->phase = PH_START;
  cpath(run, path, sizeof path, "/start");
  if (send_req(run, &run->op, "POST", path, NULL, NULL, OP_TIMEOUT_MS, on_started_req) < 0)
    fail(run, "docker runner closed");
}

/* The attach (or logs) head: for attach, Docker has joined our stream to the
 * container's output by now, so starting it can lose no byte. */
static void on_out_head(wf_http_req_t *req, int status, const wf_http_header_t *h, size_t nh,
                        void *data) {
  wf_run_t *run = ((rctx_t *)data)->run;
  (void)req;
  (void)h;
  (void)nh;
  run->out_status = status == 101 ? 200 : status;
  if (run->phase != PH_ATTACH || run->out_status != 200) return;
  if (run->canceled) {
    wf_http_req_cancel(req);
    do_remove(run);
    return;
  }
  do_start(run);
}

static void do_attach(wf_run_t *run) {
  char path[512];
  run->phase = PH_ATTACH;
  run->out_logs = 0;
  wf_docker_demux_init(&run->demux);
  cpath(run, path, sizeof path, "/attach?stream=1&stdout=1&stderr=1");
  if (send_req(run, &run->out, "POST", path, NULL, &out_cbs, 0, on_out_done) < 0) {
    fail(run, "docker runner closed");
    return;
  }
  if (run->log) wf_logfile_set_drain_cb(run->log, on_log_drain, run);
}

/* ---- recovery: logs since the log file's mtime ------------------------------------------------ */
static void begin_logs(wf_run_t *run) {
  char path[512], q[160];
  uint64_t size = 0;
  int64_t mtime = 0;
  int st = run->log ? wf_logfile_prior(run->log, &size, &mtime) : UV_EINVAL;

  if (st == 0) {
    /* The append open has not reported yet. */
    run->phase = PH_PRIOR;
    timer_arm(run, TM_PRIOR, PRIOR_POLL_MS);
    return;
  }
  if (st == 1 && size > 0 && mtime > 1000) {
    /* One second of overlap: a line may repeat, none may be lost. */
    int64_t since = mtime - 1000;
    snprintf(q, sizeof q, "/logs?follow=1&stdout=1&stderr=1&since=%lld.%03lld",
             (long long)(since / 1000), (long long)(since % 1000));
    wf_info(run->step_key, "reattached to container %.12s; its output since %lld.%03lld follows",
            run->id, (long long)(since / 1000), (long long)(since % 1000));
  } else {
    snprintf(q, sizeof q, "/logs?follow=1&stdout=1&stderr=1");
    wf_info(run->step_key, "reattached to container %.12s; all its output follows", run->id);
  }
  cpath(run, path, sizeof path, q);
  run->out_logs = 1;
  wf_docker_demux_init(&run->demux);
  if (send_req(run, &run->out, "GET", path, NULL, &out_cbs, 0, on_out_done) < 0) {
    fail(run, "docker runner closed");
    return;
  }
  if (run->log) wf_logfile_set_drain_cb(run->log, on_log_drain, run);
  enter_running(run);
}

static void on_inspect_recover(wf_run_t *run, int err, int status, const char *body, size_t len) {
  json_t *root, *state;
  const char *st, *started, *name;

  if (err) {
    if (retry_unreachable(run, err)) return;
    fail(run, "inspect container %.12s: %s", run->id, errtext(err));
    return;
  }
  if (status != 200) {
    char msg[512];
    docker_msg(status, body, len, msg, sizeof msg);
    set_error(run, "container %.12s of this step is gone: %s", run->id, msg);
    run->id[0] = '\0';
    finish(run);
    return;
  }
  root = json_loadb(body, len, 0, NULL);
  state = json_object_get(root, "State");
  st = json_string_value(json_object_get(state, "Status"));
  started = json_string_value(json_object_get(state, "StartedAt"));
  name = json_string_value(json_object_get(root, "Name"));
  if (json_is_string(json_object_get(root, "Id")))
    snprintf(run->id, sizeof run->id, "%s", json_string_value(json_object_get(root, "Id")));
  wf_info(run->step_key, "recovering container %.12s%s (%s)", run->id, name ? name : "",
          st ? st : "?");
  if (st && strcmp(st, "created") == 0 && (!started || strncmp(started, "0001-", 5) == 0)) {
    /* Created but never started before the agent died: run it now (or,
     * cancelled meanwhile, never). */
    json_decref(root);
    if (run->canceled)
      do_remove(run);
    else
      do_attach(run);
    return;
  }
  json_decref(root);
  /* Running or exited: follow it; a cancel is a graceful stop from there. */
  begin_logs(run);
}

/* ---- create ------------------------------------------------------------------------------------ */
static void start_pull(wf_run_t *run);

static void on_removed_old(wf_run_t *run, int err, int status, const char *body, size_t len) {
  if (err) {
    if (retry_unreachable(run, err)) return;
    fail(run, "removing the leftover container %s: %s", run->name, errtext(err));
    return;
  }
  if (status >= 300 && status != 404) {
    char msg[512];
    docker_msg(status, body, len, msg, sizeof msg);
    fail(run, "removing the leftover container %s: %s", run->name, msg);
    return;
  }
  if (run->canceled) {
    finish(run);
    return;
  }
  do_create(run);
}

static void on_conflict_inspect(wf_run_t *run, int err, int status, const char *body,
                                size_t len) {
  json_t *root;
  const char *label, *id;
  int running;
  char path[512];

  if (err) {
    if (retry_unreachable(run, err)) return;
    fail(run, "inspect container %s: %s", run->name, errtext(err));
    return;
  }
  if (run->canceled) {
    finish(run);
    return;
  }
  if (status == 404) { /* gone meanwhile: try again */
    do_create(run);
    return;
  }
  if (status != 200) {
    char msg[512];
    docker_msg(status, body, len, msg, sizeof msg);
    fail(run, "inspect container %s: %s", run->name, msg);
    return;
  }
  root = json_loadb(body, len, 0, NULL);
  label = json_string_value(
      json_object_get(json_object_get(json_object_get(root, "Config"), "Labels"), "workflow.step"));
  id = json_string_value(json_object_get(root, "Id"));
  running = json_is_true(json_object_get(json_object_get(root, "State"), "Running"));
  if (!label || strcmp(label, run->step_key) != 0) {
    fail(run,
         "container name %s is taken by container %.12s, which is not this step's (label "
         "workflow.step %s%s%s); remove or rename it",
         run->name, id ? id : "?", label ? "= \"" : "missing", label ? label : "",
         label ? "\"" : "");
  } else if (running) {
    fail(run,
         "container name %s is taken by container %.12s of this step, which is still "
         "running",
         run->name, id ? id : "?");
  } else if (run->conflict_tries++ >= MAX_CONFLICT_TRIES) {
    fail(run, "container name %s stays taken after %d removals", run->name, MAX_CONFLICT_TRIES);
  } else {
    wf_info(run->step_key, "removing leftover container %.12s of this step (not running)",
            id ? id : "?");
    run->phase = PH_REMOVE_OLD;
    snprintf(path, sizeof path, "/v" WF_DOCKER_API "/containers/%s?force=1&v=1", id ? id : run->name);
    if (send_req(run, &run->op, "DELETE", path, NULL, NULL, OP_TIMEOUT_MS, on_removed_old) < 0)
      fail(run, "docker runner closed");
  }
  json_decref(root);
}

static void on_created(wf_run_t *run, int err, int status, const char *body, size_t len) {
  char msg[800];
  json_t *root, *w;

  if (err) {
    if (retry_unreachable(run, err)) return;
    fail(run, "create container: %s", errtext(err));
    return;
  }
  if (status == 201) {
    size_t i;
    root = json_loadb(body, len, 0, NULL);
    snprintf(run->id, sizeof run->id, "%s",
             json_string_value(json_object_get(root, "Id")) ? json_string_value(
                 json_object_get(root, "Id")) : "");
    w = json_object_get(root, "Warnings");
    run->warn[0] = '\0';
    /* Joined with "," like the original. */
    for (i = 0; json_is_array(w) && i < json_array_size(w); i++) {
      const char *s = json_string_value(json_array_get(w, i));
      size_t o = strlen(run->warn);
      if (s) snprintf(run->warn + o, sizeof run->warn - o, "%s%s", o ? "," : "", s);
    }
    json_decref(root);
    if (!run->id[0]) {
      fail(run, "create container: no Id in Docker's answer");
      return;
    }
    wf_debug(run->step_key, "created container %.12s as %s", run->id, run->name);
    if (run->warn[0]) wf_warn(run->step_key, "docker create warnings: %s", run->warn);
    if (run->canceled) {
      do_remove(run);
      return;
    }
    do_attach(run);
    return;
  }
  if (run->canceled) {
    finish(run);
    return;
  }
  docker_msg(status, body, len, msg, sizeof msg);
  if (status == 404 && strncmp(msg, "No such image", 13) == 0) {
    if (run->policy == PULL_NEVER) {
      fail(run, "image %s is not present and IMAGE_PULL_POLICY is never: %s", run->img.ref, msg);
      return;
    }
    if (!run->pulled) {
      start_pull(run);
      return;
    }
  }
  if (status == 409) {
    char path[512];
    run->phase = PH_CONFLICT;
    snprintf(path, sizeof path, "/v" WF_DOCKER_API "/containers/%s/json", run->name);
    if (send_req(run, &run->op, "GET", path, NULL, NULL, OP_TIMEOUT_MS, on_conflict_inspect) < 0)
      fail(run, "docker runner closed");
    return;
  }
  fail(run, "create container: %s", msg);
}

static void do_create(wf_run_t *run) {
  char path[512];
  json_t *body = json_deep_copy(run->spec);
  char *text;
  int r;

  run->phase = PH_CREATE;
  if (run->nmounts > 0) {
    json_t *binds = json_array();
    size_t i;
    for (i = 0; i < run->nmounts; i++) {
      char *b = wf_asprintf("%s:%s%s", run->mounts[i].real, run->mounts[i].cont,
                            run->mounts[i].ro ? ":ro" : "");
      json_array_append_new(binds, json_string(b));
      free(b);
    }
    json_object_set_new(json_object_get(body, "HostConfig"), "Binds", binds);
  }
  text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  snprintf(path, sizeof path, "/v" WF_DOCKER_API "/containers/create?name=%s", run->name);
  r = send_req(run, &run->op, "POST", path, text ? text : "{}", NULL, OP_TIMEOUT_MS, on_created);
  free(text);
  if (r < 0) fail(run, "docker runner closed");
}

/* ---- pull ------------------------------------------------------------------------------------- */
static void on_pulled(int err, const char *msg, void *data) {
  wf_run_t *run = data;
  run->pull = NULL;
  run->npending--;
  if (run->phase == PH_DONE) {
    finish(run);
    return;
  }
  timer_disarm(run);
  if (run->canceled) {
    finish(run);
    return;
  }
  if (err == UV_ECANCELED && run->pull_timed_out) {
    fail(run, "pull %s: timed out after %u s (--pull-timeout)", run->img.ref,
         run->r->pull_timeout_s);
    return;
  }
  if (err) {
    if (err != WF_EHTTP && retry_unreachable(run, err)) return;
    fail(run, "pull %s: %s", run->img.ref, msg);
    return;
  }
  run->pulled = 1;
  do_create(run);
}

static void start_pull(wf_run_t *run) {
  wf_docker_pull_opts_t o;
  memset(&o, 0, sizeof o);
  o.image = run->image_url;
  o.tag = run->img.tag;
  o.auth = run->auth;
  o.log_step = run->step_key;
  o.ref = run->img.ref;
  run->phase = PH_PULL;
  run->pull_timed_out = 0;
  run->pull = wf_docker_pull(run->r->d, &o, on_pulled, run);
  if (!run->pull) {
    fail(run, "docker runner closed");
    return;
  }
  run->npending++;
  timer_arm(run, TM_PULL, (uint64_t)run->r->pull_timeout_s * 1000);
}

/* ---- engine wait ------------------------------------------------------------------------------ */
static void engine_ready(wf_run_t *run) {
  char path[512];
  timer_disarm(run);
  if (run->canceled) {
    finish(run);
    return;
  }
  if (run->id[0] && !run->attach_id) {
    /* Created already; the engine dropped the attach: attach again. */
    do_attach(run);
    return;
  }
  if (run->attach_id) {
    run->phase = PH_INSPECT_RECOVER;
    snprintf(run->id, sizeof run->id, "%s", run->attach_id);
    cpath(run, path, sizeof path, "/json");
    if (send_req(run, &run->op, "GET", path, NULL, NULL, OP_TIMEOUT_MS, on_inspect_recover) < 0)
      fail(run, "docker runner closed");
    return;
  }
  if (run->policy == PULL_ALWAYS && !run->pulled) {
    start_pull(run);
    return;
  }
  do_create(run);
}

static void on_engine_up(int err, void *data) {
  wf_run_t *run = data;
  run->waiter = NULL;
  if (err) {
    fail(run, "docker runner closed");
    return;
  }
  engine_ready(run);
}

static void begin_engine(wf_run_t *run) {
  uint64_t now = uv_now(run->loop);
  run->phase = PH_ENGINE;
  if (run->canceled) {
    finish(run);
    return;
  }
  if (wf_docker_reachable(run->r->d)) {
    engine_ready(run);
    return;
  }
  if (!run->waiter) run->waiter = wf_docker_when_up(run->r->d, on_engine_up, run);
  /* Said only when the engine is known to be away, not while the first
   * probe after start-up is still on its way. */
  if (strcmp(wf_docker_last_error(run->r->d), "not probed yet") != 0)
    wf_info(run->step_key, "waiting up to %u s for the docker engine at %s",
            (unsigned)((run->engine_deadline > now ? run->engine_deadline - now : 0) / 1000),
            wf_docker_host(run->r->d));
  timer_arm(run, TM_ENGINE, run->engine_deadline > now ? run->engine_deadline - now : 0);
}

/* ---- mounts ----------------------------------------------------------------------------------- */
/* Lexical normalisation of an absolute path: "//", "/./" and "x/.." go. */
static char *normalize_path(const char *p) {
  size_t n = strlen(p), o = 0, i = 0;
  char *out = wf_malloc(n + 2);
  while (i < n) {
    size_t j;
    while (i < n && p[i] == '/') i++;
    for (j = i; j < n && p[j] != '/'; j++) {}
    if (j == i) break;
    if (j - i == 2 && p[i] == '.' && p[i + 1] == '.') {
      /* Back to the previous '/', which goes too ("/a/b" -> "/a"). */
      while (o > 0 && out[o - 1] != '/') o--;
      if (o > 0) o--;
    } else if (!(j - i == 1 && p[i] == '.')) {
      out[o++] = '/';
      memcpy(out + o, p + i, j - i);
      o += j - i;
    }
    i = j;
  }
  if (o == 0) out[o++] = '/';
  out[o] = '\0';
  return out;
}

static int under_dir(const char *path, const char *dir) {
  size_t n = strlen(dir);
  if (strcmp(dir, "/") == 0) return 1;
  return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static const char *allowed_by(const wf_docker_runner_t *r, const char *path) {
  size_t i;
  for (i = 0; i < r->nallow; i++)
    if (under_dir(path, r->allow[i])) return r->allow[i];
  return NULL;
}

static void refuse_mount(wf_run_t *run, const char *path, const char *why) {
  fail(run, "CONTAINER_MOUNTS: host path %s %s", path, why);
}

static void next_realpath(wf_run_t *run);

static void on_realpath(uv_fs_t *req) {
  wf_run_t *run = req->data;
  mount_t *m = &run->mounts[run->mount_idx];
  int r = (int)req->result;

  run->fs_pending = 0;
  if (r == 0 && req->ptr) m->real = wf_strdup(req->ptr);
  uv_fs_req_cleanup(req);
  if (run->phase == PH_DONE) {
    finish(run);
    return;
  }
  if (run->canceled) {
    finish(run);
    return;
  }
  if (r < 0) {
    char why[160];
    snprintf(why, sizeof why, "cannot be resolved: %s", uv_strerror(r));
    refuse_mount(run, m->host, why);
    return;
  }
  /* The check that counts: symlinks resolved, so none leads out. */
  if (!allowed_by(run->r, m->real)) {
    char why[600];
    snprintf(why, sizeof why, "resolves to %s, which is not under an --allow-mount directory",
             m->real);
    refuse_mount(run, m->host, why);
    return;
  }
  run->mount_idx++;
  next_realpath(run);
}

static void next_realpath(wf_run_t *run) {
  int r;
  if (run->mount_idx >= run->nmounts) {
    begin_engine(run);
    return;
  }
  run->phase = PH_REALPATH;
  run->fsreq.data = run;
  r = uv_fs_realpath(run->loop, &run->fsreq, run->mounts[run->mount_idx].host, on_realpath);
  if (r < 0) {
    /* Cannot even start it: fail on a later tick, through the timer path. */
    char why[160];
    snprintf(why, sizeof why, "cannot be resolved: %s", uv_strerror(r));
    refuse_mount(run, run->mounts[run->mount_idx].host, why);
    return;
  }
  run->fs_pending = 1;
}

/* Parses CONTAINER_MOUNTS ("host:container[:ro|:rw]", comma list) and checks
 * each host path lexically; the resolved check follows at run time. */
static int parse_mounts(const wf_docker_runner_t *r, const char *s, mount_t **out, size_t *nout,
                        char *err, size_t errlen) {
  char *copy = wf_strdup(s), *save = NULL, *tok;
  mount_t *v = NULL;
  size_t n = 0;
  int rc = 0;

  for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *host = tok, *cont, *mode, *norm;
    const char *dir;
    while (*host == ' ') host++;
    if (!*host) continue;
    cont = strchr(host, ':');
    if (!cont) {
      snprintf(err, errlen, "CONTAINER_MOUNTS: \"%s\" is not host:container[:ro]", host);
      rc = -1;
      break;
    }
    *cont++ = '\0';
    mode = strchr(cont, ':');
    if (mode) *mode++ = '\0';
    if (host[0] != '/' || cont[0] != '/') {
      snprintf(err, errlen, "CONTAINER_MOUNTS: both paths of \"%s:%s\" must be absolute", host,
               cont);
      rc = -1;
      break;
    }
    if (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0) {
      snprintf(err, errlen, "CONTAINER_MOUNTS: mode \"%s\" of %s is neither ro nor rw", mode,
               host);
      rc = -1;
      break;
    }
    norm = normalize_path(host);
    dir = allowed_by(r, norm);
    if (!dir) {
      snprintf(err, errlen,
               "CONTAINER_MOUNTS: host path %s is not under an --allow-mount directory%s", host,
               r->nallow ? "" : " (none is configured)");
      free(norm);
      rc = -1;
      break;
    }
    v = wf_realloc(v, (n + 1) * sizeof *v);
    memset(&v[n], 0, sizeof v[n]);
    v[n].host = norm;
    v[n].cont = wf_strdup(cont);
    v[n].ro = mode && strcmp(mode, "ro") == 0;
    n++;
  }
  free(copy);
  if (rc < 0) {
    size_t i;
    for (i = 0; i < n; i++) {
      free(v[i].host);
      free(v[i].cont);
    }
    free(v);
    return -1;
  }
  *out = v;
  *nout = n;
  return 0;
}

/* ---- start ------------------------------------------------------------------------------------ */
/* Docker names are [a-zA-Z0-9][a-zA-Z0-9_.-]+; a step key is freer.  Other
 * bytes become '_'; the label keeps the real key (and tells two keys that
 * map to the same name apart, as a conflict). */
static char *container_name(const char *key) {
  size_t n = strlen(key), i;
  int ok_first = (key[0] >= 'a' && key[0] <= 'z') || (key[0] >= 'A' && key[0] <= 'Z') ||
                 (key[0] >= '0' && key[0] <= '9');
  char *out = wf_malloc(n + 4);
  char *p = out;
  if (!ok_first || n < 2) {
    memcpy(p, "wf-", 3);
    p += 3;
  }
  for (i = 0; i < n; i++) {
    char c = key[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == '-';
    *p++ = ok ? c : '_';
  }
  *p = '\0';
  return out;
}

/* json_string() refuses invalid UTF-8; say which param carried it. */
static int set_str(json_t *o, const char *key, const char *value, const char *what, char *err,
                   size_t errlen) {
  json_t *s = json_string(value);
  if (!s) {
    snprintf(err, errlen, "docker runner: %s is not valid UTF-8", what);
    return -1;
  }
  json_object_set_new(o, key, s);
  return 0;
}

static json_t *build_spec(const wf_docker_runner_t *r, const wf_run_req_t *req,
                          const wf_docker_image_t *img, char **argv, char *err, size_t errlen) {
  const wf_kv_t *p = req->runner_params;
  size_t np = req->nrunner_params, i;
  const char *workdir = wf_kv_get(p, np, "CONTAINER_WORKDIR");
  const char *user = wf_kv_get(p, np, "CONTAINER_USER");
  const char *network = wf_kv_get(p, np, "CONTAINER_NETWORK");
  const char *memory = wf_kv_get(p, np, "CONTAINER_MEMORY");
  const char *cpus = wf_kv_get(p, np, "CONTAINER_CPUS");
  json_t *spec = json_object(), *host = json_object(), *labels = json_object();
  json_t *env = json_array(), *log = json_object();

  json_object_set_new(spec, "Image", json_string(img->ref));
  if (argv) {
    json_t *cmd = json_array();
    for (i = 0; argv[i]; i++) {
      json_t *s = json_string(argv[i]);
      if (!s) {
        snprintf(err, errlen, "docker runner: IMAGE_CMD is not valid UTF-8");
        goto fail;
      }
      json_array_append_new(cmd, s);
    }
    json_object_set_new(spec, "Cmd", cmd);
  }
  for (i = 0; req->env && req->env[i]; i++) {
    json_t *s = json_string(req->env[i]);
    if (!s) {
      snprintf(err, errlen, "docker runner: the value of env %.*s is not valid UTF-8",
               (int)strcspn(req->env[i], "="), req->env[i]);
      goto fail;
    }
    json_array_append_new(env, s);
  }
  json_object_set(spec, "Env", env);
  if (set_str(labels, "workflow.step", req->step_key, "the step key", err, errlen) < 0 ||
      set_str(labels, "workflow.node", r->node, "the node name", err, errlen) < 0)
    goto fail;
  json_object_set(spec, "Labels", labels);
  json_object_set_new(spec, "AttachStdin", json_false());
  json_object_set_new(spec, "AttachStdout", json_true());
  json_object_set_new(spec, "AttachStderr", json_true());
  json_object_set_new(spec, "OpenStdin", json_false());
  json_object_set_new(spec, "Tty", json_false());
  if (workdir && *workdir &&
      set_str(spec, "WorkingDir", workdir, "CONTAINER_WORKDIR", err, errlen) < 0)
    goto fail;
  if (user && *user && set_str(spec, "User", user, "CONTAINER_USER", err, errlen) < 0) goto fail;
  if (network && *network &&
      set_str(host, "NetworkMode", network, "CONTAINER_NETWORK", err, errlen) < 0)
    goto fail;
  if (memory && *memory) {
    int64_t bytes;
    if (wf_docker_parse_bytes(memory, &bytes) < 0) {
      snprintf(err, errlen, "docker runner: CONTAINER_MEMORY \"%s\" is not bytes or 512m/1g",
               memory);
      goto fail;
    }
    json_object_set_new(host, "Memory", json_integer(bytes));
    /* No swap on top: a memory limit that is hit is an OOM kill, not a
     * container that crawls through swap. */
    json_object_set_new(host, "MemorySwap", json_integer(bytes));
  }
  if (cpus && *cpus) {
    int64_t nano;
    if (wf_docker_parse_cpus(cpus, &nano) < 0) {
      snprintf(err, errlen, "docker runner: CONTAINER_CPUS \"%s\" is not a positive number",
               cpus);
      goto fail;
    }
    json_object_set_new(host, "NanoCpus", json_integer(nano));
  }
  /* Docker keeps its own copy of the output only so that a restarted agent
   * can read what it missed: the "local" driver bounds it (5 x 20 MB per
   * container) and supports reading it back. */
  json_object_set_new(log, "Type", json_string("local"));
  json_object_set(host, "LogConfig", log);
  json_object_set(spec, "HostConfig", host);
  json_decref(host);
  json_decref(labels);
  json_decref(env);
  json_decref(log);
  return spec;
fail:
  json_decref(spec);
  json_decref(host);
  json_decref(labels);
  json_decref(env);
  json_decref(log);
  return NULL;
}

static wf_run_t *docker_start(uv_loop_t *loop, const wf_run_req_t *req, const wf_run_cbs_t *cbs,
                              void *data, char *err, size_t errlen) {
  wf_docker_runner_t *r = req->ctx;
  const wf_kv_t *p = req->runner_params;
  size_t np = req->nrunner_params;
  const char *url = wf_kv_get(p, np, "IMAGE_URL");
  const char *version = wf_kv_get(p, np, "IMAGE_VERSION");
  const char *cmd = wf_kv_get(p, np, "IMAGE_CMD");
  const char *policy = wf_kv_get(p, np, "IMAGE_PULL_POLICY");
  const char *secret = wf_kv_get(p, np, "IMAGE_PULL_SECRET");
  const char *mounts = wf_kv_get(p, np, "CONTAINER_MOUNTS");
  const char *memory = wf_kv_get(p, np, "CONTAINER_MEMORY");
  wf_docker_image_t img;
  char perr[256];
  char **argv = NULL;
  wf_run_t *run;
  json_t *spec;
  mount_t *mv = NULL;
  size_t nm = 0;
  enum policy pol = PULL_IF_NOT_PRESENT;
  char *auth = NULL;

  if (!r || r->closing) {
    snprintf(err, errlen, "docker runner: not configured on this node");
    return NULL;
  }
  if (!req->step_key || !*req->step_key) {
    snprintf(err, errlen, "docker runner: the step key is empty");
    return NULL;
  }
  if (!url || !*url) {
    snprintf(err, errlen, "docker runner: runner param IMAGE_URL is missing");
    return NULL;
  }
  if (wf_docker_image_parse(url, version, &img) < 0) {
    snprintf(err, errlen, "docker runner: IMAGE_URL/IMAGE_VERSION too long");
    return NULL;
  }
  if (policy && *policy) {
    if (strcmp(policy, "if-not-present") == 0 || strcmp(policy, "IfNotPresent") == 0)
      pol = PULL_IF_NOT_PRESENT;
    else if (strcmp(policy, "always") == 0 || strcmp(policy, "Always") == 0)
      pol = PULL_ALWAYS;
    else if (strcmp(policy, "never") == 0 || strcmp(policy, "Never") == 0)
      pol = PULL_NEVER;
    else {
      snprintf(err, errlen,
               "docker runner: IMAGE_PULL_POLICY \"%s\" is not if-not-present, always or never",
               policy);
      return NULL;
    }
  }
  if (cmd && *cmd) {
    argv = wf_argv_parse(cmd, perr, sizeof perr);
    if (!argv) {
      snprintf(err, errlen, "docker runner: bad IMAGE_CMD: %s", perr);
      return NULL;
    }
  }
  if (mounts && *mounts && parse_mounts(r, mounts, &mv, &nm, err, errlen) < 0) {
    wf_argv_free(argv);
    return NULL;
  }
  spec = build_spec(r, req, &img, argv, err, errlen);
  wf_argv_free(argv);
  if (spec && secret && *secret) {
    auth = wf_docker_auth_header(secret, img.registry, perr, sizeof perr);
    if (!auth) {
      snprintf(err, errlen, "docker runner: %s", perr);
      json_decref(spec);
      spec = NULL;
    }
  }
  if (!spec) {
    for (size_t i = 0; i < nm; i++) {
      free(mv[i].host);
      free(mv[i].cont);
    }
    free(mv);
    return NULL;
  }

  run = wf_calloc(1, sizeof *run);
  run->r = r;
  run->loop = loop;
  if (cbs) run->cbs = *cbs;
  run->data = data;
  run->step_key = wf_strdup(req->step_key);
  run->name = container_name(req->step_key);
  run->attach_id = req->attach_id && *req->attach_id ? wf_strdup(req->attach_id) : NULL;
  run->img = img;
  run->image_url = wf_strdup(url);
  run->auth = auth;
  run->policy = pol;
  run->spec = spec;
  run->mem_text = memory && *memory ? wf_strdup(memory) : NULL;
  run->mounts = mv;
  run->nmounts = nm;
  run->log = req->log;
  run->grace_s = req->stop_grace_s;
  run->exit_code = -1;
  run->next = r->runs;
  if (r->runs) r->runs->prev = run;
  r->runs = run;
  uv_timer_init(loop, &run->timer);
  run->timer.data = run;
  run->engine_deadline = uv_now(loop) + (uint64_t)r->wait_s * 1000;
  wf_debug(run->step_key, "docker run: image %s, container name %s%s%s", img.ref, run->name,
           run->attach_id ? ", reattaching to " : "", run->attach_id ? run->attach_id : "");
  /* Every path from here reports through callbacks on later iterations:
   * realpath and HTTP requests always complete asynchronously. */
  next_realpath(run);
  return run;
}

static void docker_cancel(wf_run_t *run) {
  if (run->canceled || run->phase == PH_DONE) return;
  run->canceled = 1;
  wf_debug(run->step_key, "docker run: cancel in phase %d", (int)run->phase);
  switch (run->phase) {
    case PH_ENGINE:
      wf_docker_waiter_cancel(run->waiter);
      run->waiter = NULL;
      timer_disarm(run);
      finish(run);
      break;
    case PH_PULL:
      wf_docker_pull_cancel(run->pull);
      break;
    case PH_RUNNING:
      if (!run->wait_done) send_stop(run);
      break;
    default:
      /* The step in flight checks the flag when it completes. */
      break;
  }
}

const wf_runner_ops_t wf_runner_docker = {
  .name = "docker",
  .start = docker_start,
  .cancel = docker_cancel,
};

/* ---- the runner instance -------------------------------------------------------------------- */
wf_docker_runner_t *wf_docker_runner_create(uv_loop_t *loop, const wf_docker_opts_t *opts,
                                            char *err, size_t errlen) {
  wf_docker_runner_t *r;
  size_t i;

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
  r->loop = loop;
  r->node = wf_strdup(opts->node_name);
  r->wait_s = opts->docker_wait_s ? opts->docker_wait_s : DEFAULT_WAIT_S;
  r->pull_timeout_s = opts->pull_timeout_s ? opts->pull_timeout_s : DEFAULT_PULL_TIMEOUT_S;
  r->keep = opts->keep_containers;
  r->allow = wf_calloc(opts->nallow_mounts + 1, sizeof *r->allow);
  for (i = 0; i < opts->nallow_mounts; i++) {
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
      r->allow[r->nallow++] = normalize_path(dir);
    }
  }
  return r;
}

int wf_docker_runner_list(wf_docker_runner_t *r, wf_docker_list_cb cb, void *data) {
  if (!r || r->closing) return UV_EINVAL;
  return wf_docker_list(r->d, r->node, cb, data);
}

int wf_docker_runner_remove(wf_docker_runner_t *r, const char *id,
                            void (*cb)(int err, void *data), void *data) {
  if (!r || r->closing) return UV_EINVAL;
  return wf_docker_remove(r->d, id, cb, data);
}

int wf_docker_runner_reachable(const wf_docker_runner_t *r) {
  return r && wf_docker_reachable(r->d);
}

static void runner_maybe_free(wf_docker_runner_t *r) {
  void (*cb)(void *);
  void *data;
  size_t i;
  if (!r->closing || !r->d_closed || r->runs) return;
  cb = r->close_cb;
  data = r->close_data;
  for (i = 0; i < r->nallow; i++) free(r->allow[i]);
  free(r->allow);
  free(r->node);
  free(r);
  if (cb) cb(data);
}

static void on_d_closed(void *data) {
  wf_docker_runner_t *r = data;
  r->d_closed = 1;
  runner_maybe_free(r);
}

void wf_docker_runner_close(wf_docker_runner_t *r, void (*cb)(void *data), void *data) {
  wf_run_t *run, *next;
  if (!r || r->closing) return;
  r->closing = 1;
  r->close_cb = cb;
  r->close_data = data;
  for (run = r->runs; run; run = next) {
    next = run->next;
    if (run->phase == PH_DONE) continue;
    set_error(run, "docker runner closed");
    finish(run);
  }
  wf_docker_close(r->d, on_d_closed, r);
}
