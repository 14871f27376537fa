/*
 * local runner: runs a step as a child process of the node.
 *
 * The argv comes from the CMD runner param (comma list or JSON array) and is
 * exec'd directly, never through a shell.  The child gets exactly the
 * request's environment, WORKDIR as its cwd, /dev/null as stdin, and one
 * pipe as both stdout and stderr: one pipe, not two, because that is the
 * only way to keep the order in which the two streams were written.
 *
 * The child is spawned detached (setsid), so it leads its own process group
 * and every signal goes to the group: a cancel stops the whole job, and when
 * the main process exits the group is SIGKILLed so that background daemons
 * it left behind, which still hold the pipe, die and let the pipe reach EOF
 * (what CI runners do at the end of a job).
 *
 * Output is read in 64 KiB buffers that go to the log file as they are
 * (ownership passes); when the log file's queue is full the pipe is no
 * longer read until it drains, so the child blocks on a full pipe and the
 * node's memory stays bounded.
 *
 * Handles: two timers, the process, the pipe, all embedded; the run is
 * freed, right after on_exit, in the close callback that brings the count
 * of open handles to zero (style.md rule 12).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wf/runner.h"
#include "wf/util.h"

#define READ_BUF_SIZE ((size_t)64 << 10)
#define PIPE_SIZE (1 << 20)
/* After the main process exits and its group was killed, how long a pipe
 * still held open (by a process that left the group) may keep the run
 * from ending. */
#define LINGER_MS 5000

struct wf_run_s {
  uv_loop_t *loop;
  wf_run_cbs_t cbs;
  void *data;
  char *step_key;
  char **argv;
  char **env;
  char *workdir;
  wf_logfile_t *log;
  unsigned stop_grace_s;

  uv_process_t proc;
  uv_pipe_t out;
  uv_timer_t notify;  /* fires on_started on the tick after start() */
  uv_timer_t timer;   /* cancel grace; after the exit, the linger limit */
  int nhandles;       /* open handles; the last close frees the run */

  int pid;            /* 0 until spawned */
  int spawn_err;
  int proc_done;      /* exit seen, or spawn failed */
  int out_done;       /* EOF or read error seen, or the pipe never opened */
  int paused;         /* reading stopped for the log file's backpressure */
  int canceled;
  int started_fired;
  int finishing;      /* timers are closing; on_exit comes next */
  int64_t exit_status;
  int term_signal;

  char pidstr[24];
  wf_kv_t resp[1];
  char errmsg[512];
};

static void maybe_finish(wf_run_t *run);

static char **strv_dup(const char *const *v) {
  size_t n = 0;
  char **out;
  if (v)
    while (v[n]) n++;
  out = wf_calloc(n + 1, sizeof *out);
  for (size_t i = 0; i < n; i++) out[i] = wf_strdup(v[i]);
  return out;
}

static void on_handle_closed(uv_handle_t *h) {
  wf_run_t *run = h->data;
  wf_run_result_t res;
  if (--run->nhandles > 0) return;

  /* The log file outlives the run (the engine closes it after on_exit): it
   * must not call back into freed memory. */
  if (run->log) wf_logfile_set_drain_cb(run->log, NULL, NULL);
  if (run->pid > 0 && !run->started_fired) {
    run->started_fired = 1;
    if (run->cbs.on_started) run->cbs.on_started(run, run->resp, 1, run->data);
  }

  memset(&res, 0, sizeof res);
  res.canceled = run->canceled;
  if (run->spawn_err) {
    res.exit_code = 127;  /* what a shell says for a command it cannot run */
    res.error = run->errmsg;
  } else if (run->term_signal) {
    res.term_signal = run->term_signal;
    res.exit_code = 128 + run->term_signal;
  } else {
    res.exit_code = (int)run->exit_status;
  }
  if (run->pid > 0) {
    res.response = run->resp;
    res.nresponse = 1;
  }
  if (run->cbs.on_exit) run->cbs.on_exit(run, &res, run->data);

  wf_argv_free(run->argv);
  wf_argv_free(run->env);
  free(run->workdir);
  free(run->step_key);
  free(run);
}

static void close_handle(wf_run_t *run, uv_handle_t *h) {
  uv_close(h, on_handle_closed);
}

static void kill_group(wf_run_t *run, int sig) {
  /* ESRCH just means the whole group is gone already. */
  if (run->pid > 0 && kill(-run->pid, sig) < 0 && errno != ESRCH)
    wf_warn(run->step_key, "kill(-%d, %d): %s", run->pid, sig, strerror(errno));
}

static void close_out(wf_run_t *run) {
  if (run->out_done) return;
  run->out_done = 1;
  run->paused = 0;
  uv_read_stop((uv_stream_t *)&run->out);
  close_handle(run, (uv_handle_t *)&run->out);
  maybe_finish(run);
}

/* Both ends reached: the process exited and all its output went to the log
 * file.  Close the timers; on_exit fires when the last handle is closed. */
static void maybe_finish(wf_run_t *run) {
  if (!run->proc_done || !run->out_done || run->finishing) return;
  run->finishing = 1;
  close_handle(run, (uv_handle_t *)&run->notify);
  close_handle(run, (uv_handle_t *)&run->timer);
}

/* ---- output ------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  *buf = uv_buf_init(wf_malloc(READ_BUF_SIZE), (unsigned)READ_BUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wf_run_t *run = s->data;
  if (nread > 0) {
    int r;
    if (!run->log) {
      free(buf->base);
      return;
    }
    /* Ownership of the buffer passes here, whatever the result.  On a
     * negative result the log file has failed and reported it to its
     * owner; keep draining the pipe anyway so the child never blocks on
     * it, and let the engine decide whether to stop the step. */
    r = wf_logfile_write(run->log, buf->base, (size_t)nread);
    if (r == 1) {
      run->paused = 1;
      uv_read_stop(s);
    }
    return;
  }
  free(buf->base);
  if (nread == 0) return;  /* EAGAIN, not EOF */
  if (nread != UV_EOF)
    wf_warn(run->step_key, "reading step output: %s", uv_strerror((int)nread));
  if (run->proc_done) uv_timer_stop(&run->timer);  /* the linger limit */
  close_out(run);
}

static void on_log_drain(wf_logfile_t *f, void *data) {
  wf_run_t *run = data;
  if (!run->paused || run->out_done) return;
  run->paused = 0;
  uv_read_start((uv_stream_t *)&run->out, on_alloc, on_read);
}

/* ---- process ------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t) {
  wf_run_t *run = t->data;
  if (!run->proc_done) {
    /* Cancel grace is over. */
    wf_info(run->step_key, "pid %d did not stop within %us: SIGKILL to its group", run->pid,
            run->stop_grace_s);
    kill_group(run, SIGKILL);
    return;
  }
  /* Linger limit after the exit.  While paused for the log file, the pipe
   * holds output the job legitimately wrote: wait for the disk instead. */
  if (run->paused) {
    uv_timer_start(&run->timer, on_timer, LINGER_MS, 0);
    return;
  }
  wf_warn(run->step_key,
          "output pipe still open %ds after pid %d exited (a process left its group); "
          "not waiting for it",
          LINGER_MS / 1000, run->pid);
  close_out(run);
}

static void on_proc_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
  wf_run_t *run = p->data;
  run->exit_status = exit_status;
  run->term_signal = term_signal;
  run->proc_done = 1;
  /* Reap whatever the job left running in its group: daemons that hold the
   * pipe open would otherwise keep the run from ever reaching EOF. */
  kill_group(run, SIGKILL);
  close_handle(run, (uv_handle_t *)p);
  if (!run->out_done) {
    uv_timer_start(&run->timer, on_timer, LINGER_MS, 0);
  } else {
    uv_timer_stop(&run->timer);
  }
  maybe_finish(run);
}

static void on_notify(uv_timer_t *t) {
  wf_run_t *run = t->data;
  if (run->started_fired) return;
  run->started_fired = 1;
  if (run->cbs.on_started) run->cbs.on_started(run, run->resp, 1, run->data);
}

static wf_run_t *local_start(uv_loop_t *loop, const wf_run_req_t *req, const wf_run_cbs_t *cbs,
                             void *data, char *err, size_t errlen) {
  const char *cmd = wf_kv_get(req->runner_params, req->nrunner_params, "CMD");
  const char *workdir = wf_kv_get(req->runner_params, req->nrunner_params, "WORKDIR");
  uv_process_options_t opts;
  uv_stdio_container_t stdio[3];
  char perr[256];
  char **argv;
  wf_run_t *run;
  int fds[2] = {-1, -1};
  int r;

  if (!cmd || !*cmd) {
    snprintf(err, errlen, "local runner: runner param CMD is missing");
    return NULL;
  }
  argv = wf_argv_parse(cmd, perr, sizeof perr);
  if (!argv) {
    snprintf(err, errlen, "local runner: bad CMD: %s", perr);
    return NULL;
  }

  run = wf_calloc(1, sizeof *run);
  run->loop = loop;
  if (cbs) run->cbs = *cbs;
  run->data = data;
  run->step_key = req->step_key ? wf_strdup(req->step_key) : NULL;
  run->argv = argv;
  /* NULL env would make libuv inherit the node's own environment; the
   * contract is the request's environment and nothing else. */
  run->env = strv_dup(req->env);
  run->workdir = workdir && *workdir ? wf_strdup(workdir) : NULL;
  run->log = req->log;
  run->stop_grace_s = req->stop_grace_s;
  run->proc.data = run;
  run->out.data = run;
  run->notify.data = run;
  run->timer.data = run;
  uv_timer_init(loop, &run->notify);
  uv_timer_init(loop, &run->timer);
  run->nhandles = 2;

  /* Blocking ends (flags 0): the child's stdout must behave like any
   * ordinary pipe; uv_pipe_open makes the parent's end non-blocking.  Both
   * ends are close-on-exec, so no other child inherits the write end. */
  r = uv_pipe(fds, 0, 0);
  /* A 1 MiB pipe (best effort: capped by fs.pipe-max-size and the user's
   * pipe quota) cuts wakeups about fourfold for chatty jobs; a 1 GiB output
   * measured about 20% faster than with the default 64 KiB. */
  if (r == 0) (void)fcntl(fds[0], F_SETPIPE_SZ, PIPE_SIZE);
  if (r == 0) {
    memset(&opts, 0, sizeof opts);
    memset(stdio, 0, sizeof stdio);
    stdio[0].flags = UV_IGNORE;  /* /dev/null */
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = fds[1];
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = fds[1];
    opts.exit_cb = on_proc_exit;
    opts.file = run->argv[0];
    opts.args = run->argv;
    opts.env = run->env;
    opts.cwd = run->workdir;
    opts.flags = UV_PROCESS_DETACHED;  /* setsid: own process group */
    opts.stdio_count = 3;
    opts.stdio = stdio;
    r = uv_spawn(loop, &run->proc, &opts);
    /* uv_spawn initialises the handle even when it fails. */
    run->nhandles++;
    close(fds[1]);  /* only the child writes; EOF needs every writer gone */
    fds[1] = -1;
  }
  if (r == 0) {
    run->pid = run->proc.pid;
    snprintf(run->pidstr, sizeof run->pidstr, "%d", run->pid);
    run->resp[0].key = "pid";
    run->resp[0].value = run->pidstr;
    uv_pipe_init(loop, &run->out, 0);
    run->nhandles++;
    r = uv_pipe_open(&run->out, fds[0]);
    if (r == 0) {
      fds[0] = -1;
      r = uv_read_start((uv_stream_t *)&run->out, on_alloc, on_read);
    }
    if (r != 0) {
      /* Cannot happen with a fresh pipe; the job then runs with its output
       * going nowhere rather than hanging on a pipe nobody reads. */
      wf_error(run->step_key, "reading step output: %s", uv_strerror(r));
      if (fds[0] >= 0) close(fds[0]);
      close_out(run);
    }
    if (run->log) wf_logfile_set_drain_cb(run->log, on_log_drain, run);
    wf_debug(run->step_key, "spawned %s as pid %d", run->argv[0], run->pid);
    uv_timer_start(&run->notify, on_notify, 0, 0);
    return run;
  }

  /* Could not run it: report through on_exit, on a later tick. */
  if (fds[0] >= 0) close(fds[0]);
  run->spawn_err = r;
  if (run->workdir)
    snprintf(run->errmsg, sizeof run->errmsg, "cannot run %s: %s (WORKDIR %s)", run->argv[0],
             uv_strerror(r), run->workdir);
  else
    snprintf(run->errmsg, sizeof run->errmsg, "cannot run %s: %s", run->argv[0],
             uv_strerror(r));
  run->out_done = 1;
  run->proc_done = 1;
  if (run->nhandles == 3) close_handle(run, (uv_handle_t *)&run->proc);
  maybe_finish(run);
  return run;
}

static void local_cancel(wf_run_t *run) {
  if (run->canceled) return;
  run->canceled = 1;
  if (run->pid <= 0 || run->proc_done) return;
  wf_info(run->step_key, "stopping pid %d: SIGTERM to its group, SIGKILL in %us", run->pid,
          run->stop_grace_s);
  kill_group(run, SIGTERM);
  uv_timer_start(&run->timer, on_timer, (uint64_t)run->stop_grace_s * 1000, 0);
}

const wf_runner_ops_t wf_runner_local = {
  .name = "local",
  .start = local_start,
  .cancel = local_cancel,
};
