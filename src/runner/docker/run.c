/*
 * run: a DOCKER run, from the request to a container that exists, and its
 * end (remove, report, free).  follow.c drives the container once it is
 * there; spec.c built what the run asks Docker for.
 *
 * A run is one state machine (enum wf__drun_phase), one timer and at most a
 * handful of HTTP requests in flight:
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
 *             the container's output by then)                   (follow.c)
 *   START     POST /containers/{id}/start                        (follow.c)
 *   RUNNING   the output stream and POST /containers/{id}/wait both open;
 *             output frames are demultiplexed straight into the log file,
 *             with the log file's backpressure pausing the socket (follow.c)
 *   PING      the wait answered: a fresh connection tells whether dockerd is
 *             still there (one that shuts down stops its containers and
 *             answers the wait before it goes)                   (follow.c)
 *   INSPECT   exit code, OOMKilled, State.Error                  (follow.c)
 *   REMOVE    DELETE /containers/{id}?force=1 unless --keep-containers
 *   DONE      everything in flight is cancelled; on_exit fires from the
 *             timer's close callback, the run is freed once the last
 *             request reported back
 *
 * Recovery (req->attach_id): ENGINE, then INSPECT_RECOVER of that container
 * (follow.c).  One that never started goes through ATTACH/START like a new
 * one; one that runs or has exited is followed with
 * GET /containers/{id}/logs?follow=1 from one second before the log file's
 * mtime (PRIOR waits for the log store to report it), so a line around the
 * restart may repeat but none is lost; the wait then returns its exit code
 * as usual.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"
#include "wf/util.h"

#define OP_MAX_BODY ((size_t)4 << 20)
#define MAX_CONFLICT_TRIES 3
/* Transport errors before the container started that send the run back to
 * waiting for the engine, at most. */
#define MAX_ENGINE_RETRIES 5

static void begin_engine(wf__drun_t *run);
static void do_create(wf__drun_t *run);

const char *wf__drun_errtext(int err) {
  return err <= WF_EPROTO ? wf_strerror(err) : uv_strerror(err);
}

static void vset_error(wf__drun_t *run, const char *fmt, va_list ap) {
  char buf[sizeof run->errmsg];
  vsnprintf(buf, sizeof buf, fmt, ap);
  if (run->errmsg[0]) {
    wf_warn(run->step_key, "docker: also: %s", buf);
    return;
  }
  snprintf(run->errmsg, sizeof run->errmsg, "%s", buf);
  wf_info(run->step_key, "docker: %s", buf);
}

void wf__drun_set_error(wf__drun_t *run, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vset_error(run, fmt, ap);
  va_end(ap);
}

void wf__drun_fail(wf__drun_t *run, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vset_error(run, fmt, ap);
  va_end(ap);
  if (run->out) wf_http_req_cancel(run->out);
  wf__drun_remove(run);
}

/* ---- requests --------------------------------------------------------------------------- */
static void on_req_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                        void *data) {
  wf__drun_req_t *x = data;
  wf__drun_t *run = x->run;
  if (x->slot && *x->slot == req) *x->slot = NULL;
  run->npending--;
  if (run->phase == PH_DONE)
    wf__drun_finish(run); /* frees once nothing is pending */
  else
    x->fn(run, err, status, body, len);
  free(x);
}

int wf__drun_send(wf__drun_t *run, wf_http_req_t **slot, const char *method, const char *path,
                  const char *body, const wf_http_cbs_t *stream_cbs, uint64_t timeout_ms,
                  wf__drun_done_fn fn) {
  wf_http_header_t hdr[1] = {{"Content-Type", "application/json"}};
  wf_http_req_opts_t o;
  wf_http_cbs_t cbs;
  wf_http_req_t *req;
  wf__drun_req_t *x;

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

void wf__drun_cpath(const wf__drun_t *run, char *out, size_t outlen, const char *suffix) {
  int n = snprintf(out, outlen, "/v" WF_DOCKER_API "/containers/%s%s", run->id, suffix);
  /* Cannot happen (ids are 64 hex digits, suffixes ours); never send half a path. */
  if (n < 0 || (size_t)n >= outlen) snprintf(out, outlen, "/invalid-path");
}

/* The engine vanished between the probe and this call: wait for it again
 * within the budget. */
int wf__drun_retry_unreachable(wf__drun_t *run, int err) {
  if (!wf_docker_err_unreachable(err)) return 0;
  wf_docker_note_down(run->r->d, err);
  if (run->engine_retries++ >= MAX_ENGINE_RETRIES) return 0;
  /* A fresh --docker-wait budget: the engine was there a moment ago. */
  run->engine_deadline = uv_now(run->loop) + (uint64_t)run->r->wait_s * 1000;
  wf_info(run->step_key, "docker engine unreachable (%s); waiting for it", wf__drun_errtext(err));
  begin_engine(run);
  return 1;
}

/* ---- timer -------------------------------------------------------------------------------- */
static void on_timer(uv_timer_t *t);

void wf__drun_timer_arm(wf__drun_t *run, enum wf__drun_tmode mode, uint64_t ms) {
  run->tmode = mode;
  uv_timer_start(&run->timer, on_timer, ms, 0);
}

void wf__drun_timer_disarm(wf__drun_t *run) {
  run->tmode = TM_NONE;
  uv_timer_stop(&run->timer);
}

static void on_timer(uv_timer_t *t) {
  wf__drun_t *run = t->data;
  enum wf__drun_tmode mode = run->tmode;
  run->tmode = TM_NONE;
  switch (mode) {
    case TM_ENGINE:
      wf_docker_waiter_cancel(run->waiter);
      run->waiter = NULL;
      wf__drun_fail(run, "docker engine unreachable at %s: %s (waited %u s)",
                    wf_docker_host(run->r->d), wf_docker_last_error(run->r->d), run->r->wait_s);
      break;
    case TM_PULL:
      run->pull_timed_out = 1;
      wf_docker_pull_cancel(run->pull);
      break;
    case TM_REINSPECT:
      wf__drun_inspect(run);
      break;
    case TM_EXIT:
      wf__drun_ask_exit(run);
      break;
    case TM_KILL:
      if (!run->wait_done) {
        wf_info(run->step_key, "container %.12s still running %u s after stop: killing it",
                run->id, run->grace_s);
        wf__drun_send_kill(run);
      }
      break;
    case TM_LINGER:
      /* While paused for the disk the stream holds output the step wrote:
       * wait for the disk instead. */
      if (run->paused) {
        wf__drun_timer_arm(run, TM_LINGER, WF__DRUN_LINGER_MS);
        break;
      }
      wf_warn(run->step_key, "output stream still open %d s after the container exited; "
              "not waiting for it", WF__DRUN_LINGER_MS / 1000);
      if (run->out) wf_http_req_cancel(run->out);
      break;
    case TM_PRIOR:
      wf__drun_begin_logs(run);
      break;
    case TM_NONE:
      break;
  }
}

/* ---- finishing ------------------------------------------------------------------------------ */
static void report(wf__drun_t *run) {
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

static void run_free(wf__drun_t *run) {
  wf__docker_runner_t *r = run->r;
  if (run->prev)
    run->prev->next = run->next;
  else
    r->runs = run->next;
  if (run->next) run->next->prev = run->prev;
  wf__docker_spec_finish(&run->spec);
  free(run->obuf);
  free(run->attach_id);
  free(run->step_key);
  free(run);
  wf__docker_runner_maybe_free(r);
}

static void on_timer_closed(uv_handle_t *h) {
  wf__drun_t *run = h->data;
  run->timer_closed = 1;
  report(run);
  wf__drun_finish(run);
}

void wf__drun_finish(wf__drun_t *run) {
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
static void on_removed(wf__drun_t *run, int err, int status, const char *body, size_t len) {
  if (err) {
    wf_warn(run->step_key, "removing container %.12s: %s", run->id, wf__drun_errtext(err));
    if (wf_docker_err_unreachable(err)) {
      wf_docker_note_down(run->r->d, err);
      wf__docker_runner_reap(run->r, run->id);
    }
  } else if (status >= 300 && status != 404) {
    char msg[512];
    wf_docker_errmsg(status, body, len, msg, sizeof msg);
    wf_warn(run->step_key, "removing container %.12s: %s", run->id, msg);
  } else {
    wf_debug(run->step_key, "removed container %.12s", run->id);
  }
  wf__drun_finish(run);
}

void wf__drun_remove(wf__drun_t *run) {
  char path[512];
  if (run->phase == PH_DONE) return;
  if (!run->id[0] || run->r->keep || run->r->closing) {
    wf__drun_finish(run);
    return;
  }
  run->phase = PH_REMOVE;
  wf__drun_timer_disarm(run);
  wf__drun_cpath(run, path, sizeof path, "?force=1&v=1");
  if (wf__drun_send(run, &run->op, "DELETE", path, NULL, NULL, WF__DRUN_OP_TIMEOUT_MS, on_removed) < 0)
    wf__drun_finish(run);
}

/* ---- create ------------------------------------------------------------------------------------ */
static void start_pull(wf__drun_t *run);

static void on_removed_old(wf__drun_t *run, int err, int status, const char *body, size_t len) {
  if (err) {
    if (wf__drun_retry_unreachable(run, err)) return;
    wf__drun_fail(run, "removing the leftover container %s: %s", run->spec.name,
                  wf__drun_errtext(err));
    return;
  }
  if (status >= 300 && status != 404) {
    char msg[512];
    wf_docker_errmsg(status, body, len, msg, sizeof msg);
    wf__drun_fail(run, "removing the leftover container %s: %s", run->spec.name, msg);
    return;
  }
  if (run->canceled) {
    wf__drun_finish(run);
    return;
  }
  do_create(run);
}

static void on_conflict_inspect(wf__drun_t *run, int err, int status, const char *body,
                                size_t len) {
  const char *name = run->spec.name;
  json_t *root;
  const char *label, *id;
  int running;
  char path[512];

  if (err) {
    if (wf__drun_retry_unreachable(run, err)) return;
    wf__drun_fail(run, "inspect container %s: %s", name, wf__drun_errtext(err));
    return;
  }
  if (run->canceled) {
    wf__drun_finish(run);
    return;
  }
  if (status == 404) { /* gone meanwhile: try again */
    do_create(run);
    return;
  }
  if (status != 200) {
    char msg[512];
    wf_docker_errmsg(status, body, len, msg, sizeof msg);
    wf__drun_fail(run, "inspect container %s: %s", name, msg);
    return;
  }
  root = json_loadb(body, len, 0, NULL);
  label = json_string_value(
      json_object_get(json_object_get(json_object_get(root, "Config"), "Labels"), "workflow.step"));
  id = json_string_value(json_object_get(root, "Id"));
  running = json_is_true(json_object_get(json_object_get(root, "State"), "Running"));
  if (!label || strcmp(label, run->step_key) != 0) {
    wf__drun_fail(run,
                  "container name %s is taken by container %.12s, which is not this step's "
                  "(label workflow.step %s%s%s); remove or rename it",
                  name, id ? id : "?", label ? "= \"" : "missing", label ? label : "",
                  label ? "\"" : "");
  } else if (running) {
    wf__drun_fail(run,
                  "container name %s is taken by container %.12s of this step, which is still "
                  "running",
                  name, id ? id : "?");
  } else if (run->conflict_tries++ >= MAX_CONFLICT_TRIES) {
    wf__drun_fail(run, "container name %s stays taken after %d removals", name,
                  MAX_CONFLICT_TRIES);
  } else {
    wf_info(run->step_key, "removing leftover container %.12s of this step (not running)",
            id ? id : "?");
    run->phase = PH_REMOVE_OLD;
    snprintf(path, sizeof path, "/v" WF_DOCKER_API "/containers/%s?force=1&v=1", id ? id : name);
    if (wf__drun_send(run, &run->op, "DELETE", path, NULL, NULL, WF__DRUN_OP_TIMEOUT_MS,
                      on_removed_old) < 0)
      wf__drun_fail(run, "docker runner closed");
  }
  json_decref(root);
}

/* Keeps Docker's answer to the create: the id and its warnings. */
static void take_created(wf__drun_t *run, const char *body, size_t len) {
  json_t *root = json_loadb(body, len, 0, NULL), *w;
  const char *id = json_string_value(json_object_get(root, "Id"));
  snprintf(run->id, sizeof run->id, "%s", id ? id : "");
  w = json_object_get(root, "Warnings");
  run->warn[0] = '\0';
  /* Joined with "," like the original. */
  for (size_t i = 0; json_is_array(w) && i < json_array_size(w); i++) {
    const char *s = json_string_value(json_array_get(w, i));
    size_t o = strlen(run->warn);
    if (s) snprintf(run->warn + o, sizeof run->warn - o, "%s%s", o ? "," : "", s);
  }
  json_decref(root);
}

static void on_created(wf__drun_t *run, int err, int status, const char *body, size_t len) {
  char msg[800];

  if (err) {
    if (wf__drun_retry_unreachable(run, err)) return;
    wf__drun_fail(run, "create container: %s", wf__drun_errtext(err));
    return;
  }
  if (status == 201) {
    take_created(run, body, len);
    if (!run->id[0]) {
      wf__drun_fail(run, "create container: no Id in Docker's answer");
      return;
    }
    wf_debug(run->step_key, "created container %.12s as %s", run->id, run->spec.name);
    if (run->warn[0]) wf_warn(run->step_key, "docker create warnings: %s", run->warn);
    if (run->canceled) {
      wf__drun_remove(run);
      return;
    }
    wf__drun_attach(run);
    return;
  }
  if (run->canceled) {
    wf__drun_finish(run);
    return;
  }
  wf_docker_errmsg(status, body, len, msg, sizeof msg);
  if (wf_docker_image_missing(status, msg)) {
    if (run->spec.policy == WF__PULL_NEVER) {
      wf__drun_fail(run, "image %s is not present and IMAGE_PULL_POLICY is never: %s",
                    run->spec.img.ref, msg);
      return;
    }
    if (!run->pulled) {
      start_pull(run);
      return;
    }
  }
  if (wf_docker_name_conflict(status, msg)) {
    char path[512];
    run->phase = PH_CONFLICT;
    snprintf(path, sizeof path, "/v" WF_DOCKER_API "/containers/%s/json", run->spec.name);
    if (wf__drun_send(run, &run->op, "GET", path, NULL, NULL, WF__DRUN_OP_TIMEOUT_MS,
                      on_conflict_inspect) < 0)
      wf__drun_fail(run, "docker runner closed");
    return;
  }
  wf__drun_fail(run, "create container: %s", msg);
}

static void do_create(wf__drun_t *run) {
  char path[512];
  char *text = wf__docker_spec_create_body(&run->spec, wf_docker_engine(run->r->d));
  int r;
  run->phase = PH_CREATE;
  snprintf(path, sizeof path, "/v" WF_DOCKER_API "/containers/create?name=%s", run->spec.name);
  r = wf__drun_send(run, &run->op, "POST", path, text, NULL, WF__DRUN_OP_TIMEOUT_MS, on_created);
  free(text);
  if (r < 0) wf__drun_fail(run, "docker runner closed");
}

/* ---- pull ------------------------------------------------------------------------------------- */
static void on_pulled(int err, const char *msg, void *data) {
  wf__drun_t *run = data;
  run->pull = NULL;
  run->npending--;
  if (run->phase == PH_DONE) {
    wf__drun_finish(run);
    return;
  }
  wf__drun_timer_disarm(run);
  if (run->canceled) {
    wf__drun_finish(run);
    return;
  }
  if (err == UV_ECANCELED && run->pull_timed_out) {
    wf__drun_fail(run, "pull %s: timed out after %u s (--pull-timeout)", run->spec.img.ref,
                  run->r->pull_timeout_s);
    return;
  }
  if (err) {
    if (err != WF_EHTTP && wf__drun_retry_unreachable(run, err)) return;
    wf__drun_fail(run, "pull %s: %s", run->spec.img.ref, msg);
    return;
  }
  run->pulled = 1;
  do_create(run);
}

static void start_pull(wf__drun_t *run) {
  wf_docker_pull_opts_t o;
  memset(&o, 0, sizeof o);
  o.image = run->spec.image_url;
  o.tag = run->spec.img.tag;
  o.auth = run->spec.auth;
  o.log_step = run->step_key;
  o.ref = run->spec.img.ref;
  run->phase = PH_PULL;
  run->pull_timed_out = 0;
  run->pull = wf_docker_pull(run->r->d, &o, on_pulled, run);
  if (!run->pull) {
    wf__drun_fail(run, "docker runner closed");
    return;
  }
  run->npending++;
  wf__drun_timer_arm(run, TM_PULL, (uint64_t)run->r->pull_timeout_s * 1000);
}

/* ---- engine wait ------------------------------------------------------------------------------ */
static void engine_ready(wf__drun_t *run) {
  wf__drun_timer_disarm(run);
  if (run->canceled) {
    wf__drun_finish(run);
    return;
  }
  if (run->id[0] && !run->attach_id) {
    /* Created already; the engine dropped the attach: attach again. */
    wf__drun_attach(run);
    return;
  }
  if (run->attach_id) {
    wf__drun_recover(run);
    return;
  }
  if (wf_docker_limits_ignored(run->r->d) && wf__docker_spec_limit_param(&run->spec)) {
    /* Podman would run it, silently without the limit the step asked for. */
    wf__drun_fail(run, "%s: the engine at %s is rootless Podman on cgroup v1, which applies no "
                  "resource limits; run this step on a node whose engine can",
                  wf__docker_spec_limit_param(&run->spec), wf_docker_host(run->r->d));
    return;
  }
  if (run->spec.policy == WF__PULL_ALWAYS && !run->pulled) {
    start_pull(run);
    return;
  }
  do_create(run);
}

static void on_engine_up(int err, void *data) {
  wf__drun_t *run = data;
  run->waiter = NULL;
  if (err) {
    wf__drun_fail(run, "docker runner closed");
    return;
  }
  engine_ready(run);
}

static void begin_engine(wf__drun_t *run) {
  uint64_t now = uv_now(run->loop);
  uint64_t left = run->engine_deadline > now ? run->engine_deadline - now : 0;
  run->phase = PH_ENGINE;
  if (run->canceled) {
    wf__drun_finish(run);
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
            (unsigned)(left / 1000), wf_docker_host(run->r->d));
  wf__drun_timer_arm(run, TM_ENGINE, left);
}

/* ---- mounts, resolved ------------------------------------------------------------------------- */
static void refuse_mount(wf__drun_t *run, const char *path, const char *why) {
  wf__drun_fail(run, "CONTAINER_MOUNTS: host path %s %s", path, why);
}

static void next_realpath(wf__drun_t *run);

static void on_realpath(uv_fs_t *req) {
  wf__drun_t *run = req->data;
  wf__docker_mount_t *m = &run->spec.mounts[run->mount_idx];
  int r = (int)req->result;

  run->fs_pending = 0;
  if (r == 0 && req->ptr) m->real = wf_strdup(req->ptr);
  uv_fs_req_cleanup(req);
  if (run->phase == PH_DONE || run->canceled) {
    wf__drun_finish(run);
    return;
  }
  if (r < 0) {
    char why[160];
    snprintf(why, sizeof why, "cannot be resolved: %s", uv_strerror(r));
    refuse_mount(run, m->host, why);
    return;
  }
  /* The check that counts: symlinks resolved, so none leads out. */
  if (!wf__docker_allowed_by(run->r->allow, run->r->nallow, m->real)) {
    char why[600];
    snprintf(why, sizeof why, "resolves to %s, which is not under an --allow-mount directory",
             m->real);
    refuse_mount(run, m->host, why);
    return;
  }
  run->mount_idx++;
  next_realpath(run);
}

static void next_realpath(wf__drun_t *run) {
  int r;
  if (run->mount_idx >= run->spec.nmounts) {
    begin_engine(run);
    return;
  }
  run->phase = PH_REALPATH;
  run->fsreq.data = run;
  r = uv_fs_realpath(run->loop, &run->fsreq, run->spec.mounts[run->mount_idx].host, on_realpath);
  if (r < 0) {
    char why[160];
    snprintf(why, sizeof why, "cannot be resolved: %s", uv_strerror(r));
    refuse_mount(run, run->spec.mounts[run->mount_idx].host, why);
    return;
  }
  run->fs_pending = 1;
}

/* ---- start, cancel ------------------------------------------------------------------------------ */
wf_run_t *wf__drun_start(wf_runner_t *base, const wf_run_req_t *req, const wf_run_cbs_t *cbs,
                         void *data, char *err, size_t errlen) {
  wf__docker_runner_t *r = (wf__docker_runner_t *)base;
  wf__docker_spec_t spec;
  wf__drun_t *run;

  if (r->closing) {
    snprintf(err, errlen, "docker runner: not configured on this node");
    return NULL;
  }
  if (wf__docker_spec_init(&spec, req, r->node, r->allow, r->nallow, err, errlen) < 0)
    return NULL;

  run = wf_calloc(1, sizeof *run);
  run->r = r;
  run->loop = base->loop;
  if (cbs) run->cbs = *cbs;
  run->data = data;
  run->step_key = wf_strdup(req->step_key);
  run->attach_id = req->attach_id && *req->attach_id ? wf_strdup(req->attach_id) : NULL;
  run->spec = spec;
  run->log = req->log;
  run->grace_s = req->stop_grace_s;
  run->exit_code = -1;
  run->next = r->runs;
  if (r->runs) r->runs->prev = run;
  r->runs = run;
  uv_timer_init(run->loop, &run->timer);
  run->timer.data = run;
  run->engine_deadline = uv_now(run->loop) + (uint64_t)r->wait_s * 1000;
  wf_debug(run->step_key, "docker run: image %s, container name %s%s%s", spec.img.ref, spec.name,
           run->attach_id ? ", reattaching to " : "", run->attach_id ? run->attach_id : "");
  /* Every path from here reports through callbacks on later iterations:
   * realpath and HTTP requests always complete asynchronously. */
  next_realpath(run);
  return run;
}

void wf__drun_cancel(wf_run_t *run) {
  if (run->canceled || run->phase == PH_DONE) return;
  run->canceled = 1;
  wf_debug(run->step_key, "docker run: cancel in phase %d", (int)run->phase);
  switch (run->phase) {
    case PH_ENGINE:
      wf_docker_waiter_cancel(run->waiter);
      run->waiter = NULL;
      wf__drun_timer_disarm(run);
      wf__drun_finish(run);
      break;
    case PH_PULL:
      wf_docker_pull_cancel(run->pull);
      break;
    case PH_RUNNING:
      if (!run->wait_done) wf__drun_send_stop(run);
      break;
    default:
      /* The step in flight checks the flag when it completes. */
      break;
  }
}
