/*
 * follow: a DOCKER run once its container exists (see run.c for the phases):
 * attach before start so that no byte of output is lost, start, stream the
 * demultiplexed output into the log file under its backpressure, wait for
 * the exit, stop and kill on cancel, tell a dockerd that went away from a
 * container that ended, and read the outcome (exit code, OOM kill).  Also
 * the way back into a container after an agent restart: inspect it, then
 * attach (never started) or follow its logs from where the log file ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"
#include "wf/util.h"

#define OP_TIMEOUT_MS WF__DRUN_OP_TIMEOUT_MS
/* After the stop grace, how long before the backstop kill. */
#define KILL_SLACK_MS 2000
#define PRIOR_POLL_MS 10

static void after_wait(wf__drun_t *run);
static int send_wait(wf__drun_t *run);

/* ---- output ---------------------------------------------------------------------------------- */
static void on_payload(int stream, const char *p, size_t n, void *data) {
  wf__drun_t *run = data;
  (void)stream; /* stdout and stderr share the one log, in arrival order */
  memcpy(run->obuf + run->olen, p, n);
  run->olen += n;
}

static void on_out_data(wf_http_req_t *req, const char *p, size_t n, void *data) {
  wf__drun_t *run = ((wf__drun_req_t *)data)->run;
  int r;

  if (run->out_status != 200) {
    size_t room = sizeof run->errbody - 1 - run->errlen;
    size_t k = n < room ? n : room;
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
  wf__drun_t *run = data;
  (void)f;
  if (!run->paused) return;
  run->paused = 0;
  if (run->out) wf_http_req_resume(run->out);
}

static void on_out_done(wf__drun_t *run, int err, int status, const char *body, size_t len) {
  (void)body;
  (void)len;
  run->out_done = 1;
  run->paused = 0;
  if (err && err != UV_ECANCELED)
    wf_warn(run->step_key, "output stream of container %.12s ended: %s", run->id,
            wf__drun_errtext(err));
  else if (!err && status == 200 && !wf_docker_demux_at_boundary(&run->demux))
    wf_warn(run->step_key, "output stream of container %.12s ended inside a frame", run->id);
  if (!err && status != 200 && status != 101) {
    char msg[512];
    wf_docker_errmsg(status, run->errbody, run->errlen, msg, sizeof msg);
    /* Podman creates the container's process (runc create) when the first
     * attach comes, so a missing executable is refused here, not at the
     * start: the same failure as dockerd's start, exit code and all. */
    int code = run->phase == PH_ATTACH && wf_docker_engine(run->r->d) == WF_DOCKER_ENGINE_PODMAN
                   ? wf_docker_podman_start_exit(run->errbody, run->errlen)
                   : -1;
    if (code >= 0) {
      run->exit_code = code;
      run->have_exit = 1;
      wf__drun_fail(run, "start container: %s", msg);
      return;
    }
    if (run->phase == PH_ATTACH) {
      wf__drun_fail(run, "attach to container %.12s: %s", run->id, msg);
      return;
    }
    wf_warn(run->step_key, "%s of container %.12s: %s", run->out_logs ? "logs" : "attach",
            run->id, msg);
  }
  if (run->phase == PH_ATTACH) {
    /* Ended before its head (engine gone, or cancelled). */
    if (wf__drun_retry_unreachable(run, err)) return;
    wf__drun_fail(run, "attach to container %.12s: %s", run->id, wf__drun_errtext(err));
    return;
  }
  if (run->wait_deferred && run->phase == PH_RUNNING) {
    wf__drun_ask_exit(run);
    return;
  }
  if (run->wait_done && run->phase == PH_RUNNING) {
    wf__drun_timer_disarm(run);
    after_wait(run);
  }
}

static void on_out_head(wf_http_req_t *req, int status, const wf_http_header_t *h, size_t nh,
                        void *data);

static const wf_http_cbs_t out_cbs = {
  .on_head = on_out_head,
  .on_data = on_out_data,
  .on_done = NULL,
};

/* Opens the output stream (attach, or logs after a restart) and hooks the
 * log file's drain to it. */
static int open_output(wf__drun_t *run, const char *method, const char *path) {
  wf_docker_demux_init(&run->demux);
  if (wf__drun_send(run, &run->out, method, path, NULL, &out_cbs, 0, on_out_done) < 0) {
    wf__drun_fail(run, "docker runner closed");
    return -1;
  }
  if (run->log) wf_logfile_set_drain_cb(run->log, on_log_drain, run);
  return 0;
}

/* ---- wait, stop, kill --------------------------------------------------------------------------- */
/* The wait (or Podman's inspect in its place) found no engine. */
static void wait_lost(wf__drun_t *run, int err) {
  if (wf_docker_err_unreachable(err)) wf_docker_note_down(run->r->d, err);
  wf__drun_set_error(run, "docker engine went away: %s while waiting for container %.12s",
                     wf__drun_errtext(err), run->id);
  /* Nothing to remove on an engine that is gone.  dockerd stopped the
   * container on its way out; under Podman it still runs, and goes when the
   * engine is back. */
  if (wf_docker_err_unreachable(err)) wf__docker_runner_reap(run->r, run->id);
  wf__drun_finish(run);
}

static void on_wait(wf__drun_t *run, int err, int status, const char *body, size_t len) {
  json_t *root;
  const char *werr;

  if (err) {
    wait_lost(run, err);
    return;
  }
  if (status != 200) {
    char msg[512];
    wf_docker_errmsg(status, body, len, msg, sizeof msg);
    wf__drun_fail(run, "wait for container %.12s: %s", run->id, msg);
    return;
  }
  root = json_loadb(body, len, 0, NULL);
  if (json_is_integer(json_object_get(root, "StatusCode"))) {
    run->exit_code = (int)json_integer_value(json_object_get(root, "StatusCode"));
    run->have_exit = 1;
  }
  werr = json_string_value(json_object_get(json_object_get(root, "Error"), "Message"));
  if (werr && *werr) wf__drun_set_error(run, "container %.12s: %s", run->id, werr);
  json_decref(root);
  run->wait_done = 1;
  wf__drun_timer_disarm(run); /* the kill backstop */
  wf_debug(run->step_key, "container %.12s exited with %d", run->id, run->exit_code);
  if (run->out_done)
    after_wait(run);
  else
    wf__drun_timer_arm(run, TM_LINGER, WF__DRUN_LINGER_MS);
}

static void on_stop_done(wf__drun_t *run, int err, int status, const char *body, size_t len) {
  if (err && err != UV_ECANCELED) {
    wf_warn(run->step_key, "stopping container %.12s: %s", run->id, wf__drun_errtext(err));
  } else if (!err && status >= 300 && status != 304) {
    char msg[512];
    wf_docker_errmsg(status, body, len, msg, sizeof msg);
    wf_warn(run->step_key, "stopping container %.12s: %s", run->id, msg);
  }
}

void wf__drun_send_stop(wf__drun_t *run) {
  char path[512], q[64];
  int was_checking = run->tmode == TM_EXIT;
  if (run->stop_sent) return;
  run->stop_sent = 1;
  snprintf(q, sizeof q, "/stop?t=%u", run->grace_s);
  wf__drun_cpath(run, path, sizeof path, q);
  wf_info(run->step_key, "stopping container %.12s (grace %u s)", run->id, run->grace_s);
  if (run->stop) wf_http_req_cancel(run->stop);
  wf__drun_send(run, &run->stop, "POST", path, NULL, NULL,
                (uint64_t)run->grace_s * 1000 + OP_TIMEOUT_MS, on_stop_done);
  wf__drun_timer_arm(run, TM_KILL, (uint64_t)run->grace_s * 1000 + KILL_SLACK_MS);
  /* Podman between two exit checks (its output over): the kill backstop
   * takes the timer, and the wait takes over from the checks. */
  if (was_checking) send_wait(run);
}

void wf__drun_send_kill(wf__drun_t *run) {
  char path[512];
  wf__drun_cpath(run, path, sizeof path, "/kill?signal=KILL");
  /* The stop call may still be waiting out its grace: this one replaces it. */
  if (run->stop) wf_http_req_cancel(run->stop);
  wf__drun_send(run, &run->stop, "POST", path, NULL, NULL, OP_TIMEOUT_MS, on_stop_done);
}

/* Podman, the output stream over: GET /json, whose State is the exit
 * (the stream ends when conmon sees the container end).  A wait there
 * takes 250 ms to over a second, while the container's cleanup process
 * holds it; an inspection, a few ms.  One time in ten the state still says
 * running at the first look: look again every 10 ms, 20 times at most.  A
 * container still running then (it closed its output and went on), or one
 * being stopped (the kill backstop owns the timer), gets the wait. */
#define EXIT_CHECKS 20
#define EXIT_CHECK_MS 10
static void on_exit_state(wf__drun_t *run, int err, int status, const char *body, size_t len) {
  json_t *root, *state;
  if (err) {
    wait_lost(run, err);
    return;
  }
  root = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
  state = json_object_get(root, "State");
  if (!json_is_false(json_object_get(state, "Running")) ||
      !json_is_integer(json_object_get(state, "ExitCode"))) {
    json_decref(root);
    if (status == 200 && !run->stop_sent && ++run->exit_checks < EXIT_CHECKS)
      wf__drun_timer_arm(run, TM_EXIT, EXIT_CHECK_MS);
    else
      send_wait(run);
    return;
  }
  run->exit_code = (int)json_integer_value(json_object_get(state, "ExitCode"));
  run->have_exit = 1;
  run->wait_done = 1;
  json_decref(root);
  wf__drun_timer_disarm(run); /* the kill backstop */
  wf_debug(run->step_key, "container %.12s exited with %d", run->id, run->exit_code);
  after_wait(run);
}

void wf__drun_ask_exit(wf__drun_t *run) {
  char path[512];
  run->wait_deferred = 0;
  wf__drun_cpath(run, path, sizeof path, "/json");
  if (wf__drun_send(run, &run->op, "GET", path, NULL, NULL, OP_TIMEOUT_MS, on_exit_state) < 0)
    wf__drun_fail(run, "docker runner closed");
}

/* POST /wait: 0, or -1 when the run failed instead. */
static int send_wait(wf__drun_t *run) {
  char path[512];
  run->wait_deferred = 0;
  wf__drun_cpath(run, path, sizeof path, "/wait?condition=not-running");
  if (wf__drun_send(run, &run->wait, "POST", path, NULL, NULL, 0, on_wait) < 0) {
    wf__drun_fail(run, "docker runner closed");
    return -1;
  }
  return 0;
}

/* The container runs (or ran): open the wait next to the output stream. */
static void enter_running(wf__drun_t *run) {
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
  if (wf_docker_engine(run->r->d) == WF_DOCKER_ENGINE_PODMAN) {
    /* While a wait is open, Podman 4.3's service polls the container so
     * hard that it burns several times the CPU of the output stream itself
     * (256 MiB: 14 s against 1.6 s) and the output crawls (18 MiB/s against
     * 58).  Its output stream ends when the container does (conmon closes
     * it): how the container ended is asked then (ask_exit). */
    if (run->out_done)
      wf__drun_ask_exit(run);
    else
      run->wait_deferred = 1;
    if (run->phase != PH_RUNNING) return;
  } else if (send_wait(run) < 0) {
    return;
  }
  if (run->canceled) wf__drun_send_stop(run);
}

/* ---- after the wait: ping, inspect ----------------------------------------------------------- */
static void on_ping(int err, void *data) {
  wf__drun_t *run = data;
  run->ping = NULL;
  run->npending--;
  if (run->phase == PH_DONE) {
    wf__drun_finish(run);
    return;
  }
  if (err && err != WF_EHTTP) {
    wf__drun_set_error(run,
                       "docker engine went away: dockerd stopped while container %.12s ran "
                       "(it ended with exit code %d when the engine shut it down)",
                       run->id, run->exit_code);
    wf__drun_finish(run);
    return;
  }
  wf__drun_inspect(run);
}

static void after_wait(wf__drun_t *run) {
  if (wf_docker_engine(run->r->d) == WF_DOCKER_ENGINE_PODMAN) {
    /* The ping tells a dockerd that stopped the container on its way out
     * from a container that ended.  Podman's service stops no container
     * when it goes (conmon keeps each), so a wait that answered is the
     * container's own end. */
    wf__drun_inspect(run);
    return;
  }
  run->phase = PH_PING;
  run->ping = wf_docker_ping(run->r->d, on_ping, run);
  if (!run->ping) {
    wf__drun_finish(run);
    return;
  }
  run->npending++;
}

/* The outcome the inspection tells: an OOM kill (flagged or inferred) or
 * the engine's own error text. */
static void judge_state(wf__drun_t *run, json_t *state) {
  const char *serr = json_string_value(json_object_get(state, "Error"));
  const char *mem = run->spec.mem_text;
  if (json_is_true(json_object_get(state, "OOMKilled")))
    wf__drun_set_error(run, "container was OOM-killed (%s%s), exit code %d",
                       mem ? "memory limit " : "no CONTAINER_MEMORY: the host ran out of memory",
                       mem ? mem : "", run->exit_code);
  else if (run->exit_code == 137 && mem && !run->canceled)
    /* SIGKILLed under a memory limit that nobody asked to stop: the OOM
     * killer, whose event dockerd missed (it happens on cgroup v1), or that
     * Podman 4.3 never flags (docs/docker.md, "Podman"). */
    wf__drun_set_error(run, "container was OOM-killed (memory limit %s), exit code 137 "
                       "(inferred: killed at its memory limit, %s did not flag it)", mem,
                       wf_docker_engine(run->r->d) == WF_DOCKER_ENGINE_PODMAN ? "podman"
                                                                               : "docker");
  else if (serr && *serr && !run->start_failed && run->exit_code != 0)
    wf__drun_set_error(run, "container %.12s: %s", run->id, serr);
}

static void on_inspect(wf__drun_t *run, int err, int status, const char *body, size_t len) {
  json_t *root, *state;

  if (err || status != 200) {
    char msg[512];
    if (err)
      snprintf(msg, sizeof msg, "%s", wf__drun_errtext(err));
    else
      wf_docker_errmsg(status, body, len, msg, sizeof msg);
    wf_warn(run->step_key, "inspecting container %.12s: %s", run->id, msg);
    wf__drun_remove(run);
    return;
  }
  root = json_loadb(body, len, 0, NULL);
  state = json_object_get(root, "State");
  if (!run->have_exit && json_is_integer(json_object_get(state, "ExitCode"))) {
    run->exit_code = (int)json_integer_value(json_object_get(state, "ExitCode"));
    run->have_exit = 1;
  }
  if (!json_is_true(json_object_get(state, "OOMKilled")) && run->exit_code == 137 &&
      run->spec.mem_text && !run->canceled && !run->reinspected &&
      wf_docker_engine(run->r->d) != WF_DOCKER_ENGINE_PODMAN) {
    /* Killed under a memory limit but not (yet) flagged: dockerd records
     * OOMKilled from the kernel's OOM event, which can arrive just after
     * the wait answered.  Look once more, a moment later. */
    run->reinspected = 1;
    json_decref(root);
    wf__drun_timer_arm(run, TM_REINSPECT, 300);
    return;
  }
  judge_state(run, state);
  json_decref(root);
  wf__drun_remove(run);
}

void wf__drun_inspect(wf__drun_t *run) {
  char path[512];
  run->phase = PH_INSPECT;
  wf__drun_cpath(run, path, sizeof path, "/json");
  if (wf__drun_send(run, &run->op, "GET", path, NULL, NULL, OP_TIMEOUT_MS, on_inspect) < 0)
    wf__drun_finish(run);
}

/* ---- attach, start ------------------------------------------------------------------------------ */
static void on_started_req(wf__drun_t *run, int err, int status, const char *body, size_t len) {
  if (err) {
    if (wf_docker_err_unreachable(err)) wf_docker_note_down(run->r->d, err);
    wf__drun_fail(run, "docker engine went away: %s while starting container %.12s",
                  wf__drun_errtext(err), run->id);
    return;
  }
  if (status != 204 && status != 304) {
    char msg[1024 - 64];
    wf_docker_errmsg(status, body, len, msg, sizeof msg);
    wf__drun_set_error(run, "start container: %s", msg);
    if (run->out) wf_http_req_cancel(run->out);
    /* dockerd's State.ExitCode says what a shell would (127: not found).
     * Podman leaves the container "created" with ExitCode 0: its error's
     * cause says it instead. */
    if (wf_docker_engine(run->r->d) == WF_DOCKER_ENGINE_PODMAN) {
      run->exit_code = wf_docker_podman_start_exit(body, len); /* -1: not known */
      run->have_exit = 1;
    }
    run->start_failed = 1;
    wf__drun_inspect(run);
    return;
  }
  wf_info(run->step_key, "container %.12s started (%s)", run->id, run->spec.img.ref);
  enter_running(run);
}

static void do_start(wf__drun_t *run) {
  char path[512];
  run->phase = PH_START;
  wf__drun_cpath(run, path, sizeof path, "/start");
  if (wf__drun_send(run, &run->op, "POST", path, NULL, NULL, OP_TIMEOUT_MS, on_started_req) < 0)
    wf__drun_fail(run, "docker runner closed");
}

/* The attach (or logs) head: for attach, Docker has joined our stream to the
 * container's output by now, so starting it can lose no byte. */
static void on_out_head(wf_http_req_t *req, int status, const wf_http_header_t *h, size_t nh,
                        void *data) {
  wf__drun_t *run = ((wf__drun_req_t *)data)->run;
  (void)h;
  (void)nh;
  run->out_status = status == 101 ? 200 : status;
  if (run->phase != PH_ATTACH || run->out_status != 200) return;
  if (run->canceled) {
    wf_http_req_cancel(req);
    wf__drun_remove(run);
    return;
  }
  do_start(run);
}

void wf__drun_attach(wf__drun_t *run) {
  char path[512];
  run->phase = PH_ATTACH;
  run->out_logs = 0;
  wf__drun_cpath(run, path, sizeof path, "/attach?stream=1&stdout=1&stderr=1");
  open_output(run, "POST", path);
}

/* ---- recovery: logs since the log file's mtime ------------------------------------------------ */
void wf__drun_begin_logs(wf__drun_t *run) {
  char path[512], q[160];
  uint64_t size = 0;
  int64_t mtime = 0;
  int st = run->log ? wf_logfile_prior(run->log, &size, &mtime) : UV_EINVAL;

  if (st == 0) {
    /* The append open has not reported yet. */
    run->phase = PH_PRIOR;
    wf__drun_timer_arm(run, TM_PRIOR, PRIOR_POLL_MS);
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
  wf__drun_cpath(run, path, sizeof path, q);
  run->out_logs = 1;
  if (open_output(run, "GET", path) < 0) return;
  enter_running(run);
}

static void on_inspect_recover(wf__drun_t *run, int err, int status, const char *body,
                               size_t len) {
  json_t *root, *state;
  const char *st, *started, *name;

  if (err) {
    if (wf__drun_retry_unreachable(run, err)) return;
    wf__drun_fail(run, "inspect container %.12s: %s", run->id, wf__drun_errtext(err));
    return;
  }
  if (status != 200) {
    char msg[512];
    wf_docker_errmsg(status, body, len, msg, sizeof msg);
    wf__drun_set_error(run, "container %.12s of this step is gone: %s", run->id, msg);
    run->id[0] = '\0';
    wf__drun_finish(run);
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
      wf__drun_remove(run);
    else
      wf__drun_attach(run);
    return;
  }
  json_decref(root);
  /* Running or exited: follow it; a cancel is a graceful stop from there. */
  wf__drun_begin_logs(run);
}

void wf__drun_recover(wf__drun_t *run) {
  char path[512];
  run->phase = PH_INSPECT_RECOVER;
  snprintf(run->id, sizeof run->id, "%s", run->attach_id);
  wf__drun_cpath(run, path, sizeof path, "/json");
  if (wf__drun_send(run, &run->op, "GET", path, NULL, NULL, OP_TIMEOUT_MS, on_inspect_recover) <
      0)
    wf__drun_fail(run, "docker runner closed");
}
