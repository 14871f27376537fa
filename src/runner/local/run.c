/*
 * local runner: runs a step as a child process of the node.
 *
 * The argv comes from the CMD runner param (comma list or JSON array) and is
 * exec'd directly, never through a shell.  The child gets exactly the
 * request's environment, WORKDIR as its cwd, /dev/null as stdin, and one
 * pipe as both stdout and stderr: one pipe, not two, because that is the
 * only way to keep the order in which the two streams were written.
 *
 * The child leads a session of its own (setsid), so it leads its own process
 * group and every signal goes to the group: a cancel stops the whole job,
 * and when the main process exits the group is SIGKILLed so that background
 * daemons it left behind, which still hold the pipe, die and let the pipe
 * reach EOF (what CI runners do at the end of a job).
 *
 * The child is started by spawn.c (posix_spawn() and a pidfd watched by a
 * uv_poll_t); where pidfd_open() is missing (kernel < 5.3, or a seccomp
 * filter) the runner falls back to uv_spawn().  The two behave the same
 * except that posix_spawn() does not run a script without a "#!" line
 * through /bin/sh (execvp's ENOEXEC fallback).
 *
 * A run has two directions, each with its own state: the process
 * (enum proc_state) and its output pipe (enum out_state); the run ends when
 * both have.  Output normally never passes through the loop: the pipe is
 * polled, and when it is readable a threadpool job pulls what it holds into
 * the log file (wf_logfile_pull: read+write in a loop there, until the pipe
 * stays empty), while the pipe is not polled, so a child that writes faster
 * than the disk blocks on its full pipe.  A readable pipe with nothing in it
 * is EOF, known without a job.
 *
 * When the log masks secrets, the masker must see every byte on the loop:
 * output is then read into the instance's scratch buffer (the loop reads one
 * pipe at a time) and copied into the log file's queue, until a run's reads
 * come in big: from then on that run reads into 64 KiB buffers of its own
 * that go to the log file as they are (ownership passes, no copy).  So a
 * quiet step costs no allocation at all, and a chatty one no copy; when the
 * log file's queue is full the pipe is no longer read until it drains, so
 * the child blocks on a full pipe and the node's memory stays bounded.
 *
 * Handles: two timers, the process (or its pidfd poll), the pipe, all
 * embedded; the run is freed, right after on_exit, in the close callback
 * that brings the count of open handles to zero (docs/house-rules.md rule 12).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "local-internal.h"
#include "workflow.pb-c.h"
#include "wf/runner-local.h"
#include "wf/util.h"

#define READ_BUF_SIZE ((size_t)64 << 10)
/* Reads of at least this size switch a run to buffers of its own. */
#define BIG_READ ((size_t)16 << 10)
#define PIPE_SIZE (1 << 20)
/* After the main process exits and its group was killed, how long a pipe
 * still held open (by a process that left the group) may keep the run
 * from ending. */
#define LINGER_MS 5000

typedef struct local_runner_s {
  wf_runner_t base;
  enum wf_local_spawn spawn;  /* AUTO until the first probe that settles it */
  wf__exe_cache_t exes;
  char *scratch;              /* READ_BUF_SIZE, allocated on the first masked read */
  struct wf_run_s *runs;      /* every run not yet freed (doubly linked) */
  int closing;
  uv_timer_t close_timer;     /* closed by close(): its callback frees the instance */
  int timer_closed;
  void (*close_cb)(void *data);
  void *close_data;
} local_runner_t;

/* The child process. */
enum proc_state {
  PROC_NONE,      /* it never ran (spawn failed) */
  PROC_RUNNING,
  PROC_STOPPING,  /* SIGTERM sent to its group; the grace timer leads to SIGKILL */
  PROC_EXITED,    /* reaped */
};

/* The output pipe. */
enum out_state {
  OUT_READING,    /* read on the loop (uv_pipe_t): the masker sees every byte */
  OUT_PAUSED,     /* loop reads stopped: the log file's queue is full */
  OUT_POLLING,    /* pulled by the threadpool: waiting for the pipe to turn readable */
  OUT_PULLING,    /* a wf_logfile_pull() job is moving the pipe into the log */
  OUT_CLOSING,    /* asked to close while a pull runs: closes when the job returns */
  OUT_DONE,       /* EOF, an error, or no pipe at all */
};

/* The run as its owner sees it. */
enum run_state {
  RUN_STARTING,   /* on_started has not fired yet */
  RUN_STARTED,
  RUN_FINISHING,  /* both directions ended; the timers close; on_exit comes next */
};

struct wf_run_s {
  local_runner_t *lr;
  struct wf_run_s *prev, *next;
  uv_loop_t *loop;
  wf_run_cbs_t cbs;
  void *data;
  char *step_key;
  char **argv;
  char **env;
  char *workdir;
  wf_logfile_t *log;
  unsigned stop_grace_s;

  enum run_state state;
  enum proc_state proc_state;
  enum out_state out_state;
  int canceled;       /* cancel() was called (reported in the result) */
  int owned_bufs;     /* reads came in big: read into buffers of the run's own */
  int pipe_grown;     /* F_SETPIPE_SZ done (on the first output) */

  uv_process_t proc;  /* the uv_spawn() fallback */
  uv_poll_t pidpoll;  /* posix_spawn(): readable when the child exits */
  int pidfd;          /* -1 unless pidpoll is in use */
  uv_pipe_t out;      /* output read on the loop ... */
  uv_poll_t outpoll;  /* ... or pulled into the log by the threadpool */
  int outfd;          /* the pipe's read end while outpoll is in use, or -1 */
  uv_timer_t notify;  /* fires on_started on the tick after start() */
  uv_timer_t timer;   /* cancel grace; after the exit, the linger limit */
  int nhandles;       /* open handles; the last close frees the run */

  int pid;            /* 0 until spawned */
  int spawn_err;
  int64_t exit_status;
  int term_signal;

  char pidstr[24];
  wf_kv_t resp[1];
  char errmsg[512];
};

static void maybe_finish(wf_run_t *run);
static void runner_maybe_free(local_runner_t *lr);

/* A copy of the request's environment, with host_path (wf_run_req_t) as
 * PATH when it has none. */
static char **env_dup(const char *const *v, const char *host_path) {
  size_t n = 0;
  int has_path = 0;
  char **out;
  if (v)
    for (; v[n]; n++) has_path |= strncmp(v[n], "PATH=", 5) == 0;
  out = wf_calloc(n + 2, sizeof *out);
  for (size_t i = 0; i < n; i++) out[i] = wf_strdup(v[i]);
  if (!has_path && host_path) out[n] = wf_asprintf("PATH=%s", host_path);
  return out;
}

static int pull_mode(const wf_run_t *run) { return run->outfd >= 0; }

static void fire_started(wf_run_t *run) {
  run->state = RUN_STARTED;
  if (run->cbs.on_started) run->cbs.on_started(run, run->resp, 1, run->data);
}

static void on_handle_closed(uv_handle_t *h) {
  wf_run_t *run = h->data;
  local_runner_t *lr = run->lr;
  wf_run_result_t res;
  if (--run->nhandles > 0) return;

  /* The log file outlives the run (the engine closes it after on_exit): it
   * must not call back into freed memory. */
  if (run->log) wf_logfile_set_drain_cb(run->log, NULL, NULL);

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

  if (run->prev)
    run->prev->next = run->next;
  else
    lr->runs = run->next;
  if (run->next) run->next->prev = run->prev;
  wf_argv_free(run->argv);
  wf_argv_free(run->env);
  free(run->workdir);
  free(run->step_key);
  free(run);
  runner_maybe_free(lr);
}

/* For the two poll handles, whose fds are ours: closed only now, once
 * libuv has forgotten them. */
static void on_poll_closed(uv_handle_t *h) {
  wf_run_t *run = h->data;
  int *fd = h == (uv_handle_t *)&run->pidpoll ? &run->pidfd : &run->outfd;
  close(*fd);
  *fd = -1;
  on_handle_closed(h);
}

static void close_handle(wf_run_t *run, uv_handle_t *h) {
  (void)run;
  uv_close(h, h->type == UV_POLL ? on_poll_closed : on_handle_closed);
}

static void kill_group(wf_run_t *run, int sig) {
  /* ESRCH just means the whole group is gone already. */
  if (run->pid > 0 && kill(-run->pid, sig) < 0 && errno != ESRCH)
    wf_warn(run->step_key, "kill(-%d, %d): %s", run->pid, sig, strerror(errno));
}

/* Ends the output direction (EOF, an error, or giving up on a pipe that a
 * process outside the group keeps open). */
static void close_out(wf_run_t *run) {
  switch (run->out_state) {
    case OUT_DONE:
    case OUT_CLOSING:
      return;
    case OUT_PULLING:
      /* The threadpool is reading the fd: it closes when the pull ends. */
      run->out_state = OUT_CLOSING;
      return;
    case OUT_POLLING:
      run->out_state = OUT_DONE;
      uv_poll_stop(&run->outpoll);
      close_handle(run, (uv_handle_t *)&run->outpoll);
      break;
    case OUT_READING:
    case OUT_PAUSED:
      run->out_state = OUT_DONE;
      uv_read_stop((uv_stream_t *)&run->out);
      close_handle(run, (uv_handle_t *)&run->out);
      break;
  }
  maybe_finish(run);
}

static int proc_ended(const wf_run_t *run) {
  return run->proc_state == PROC_EXITED || run->proc_state == PROC_NONE;
}

/* Both directions ended: the process exited and all its output went to the
 * log file.  Close the timers; on_exit fires when the last handle is
 * closed. */
static void maybe_finish(wf_run_t *run) {
  if (!proc_ended(run) || run->out_state != OUT_DONE) return;
  switch (run->state) {
    case RUN_FINISHING:
      return;
    case RUN_STARTING:
      /* Ended before the notify tick: on_started still comes first.  Never
       * inside start() itself: a run that reaches this point there never
       * spawned (pid 0). */
      if (run->pid > 0) fire_started(run);
      break;
    case RUN_STARTED:
      break;
  }
  run->state = RUN_FINISHING;
  close_handle(run, (uv_handle_t *)&run->notify);
  close_handle(run, (uv_handle_t *)&run->timer);
}

/* ---- output ------------------------------------------------------------------ */

/* A 1 MiB pipe (best effort: capped by fs.pipe-max-size and the user's
 * pipe quota) lets a chatty job write more between two wakeups of ours
 * (docs/benchmarks.md, part 3).  Grown when the
 * first output arrives, not at spawn: most steps print little, and the
 * resize costs the kernel an allocation per pipe. */
static void grow_pipe(wf_run_t *run, int fd) {
  if (run->pipe_grown || fd < 0) return;
  run->pipe_grown = 1;
  (void)fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE);
}

static int uv_fileno_(uv_handle_t *h) {
  uv_os_fd_t fd;
  return uv_fileno(h, &fd) == 0 ? fd : -1;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  wf_run_t *run = h->data;
  local_runner_t *lr = run->lr;
  (void)suggested;
  if (run->owned_bufs) {
    *buf = uv_buf_init(wf_malloc(READ_BUF_SIZE), (unsigned)READ_BUF_SIZE);
    return;
  }
  if (!lr->scratch) lr->scratch = wf_malloc(READ_BUF_SIZE);
  *buf = uv_buf_init(lr->scratch, (unsigned)READ_BUF_SIZE);
}

static void release(const wf_run_t *run, const uv_buf_t *buf) {
  if (buf->base != run->lr->scratch) free(buf->base);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wf_run_t *run = s->data;
  if (nread > 0) {
    int r;
    if (!run->log) {
      release(run, buf);
      return;
    }
    /* On a negative result the log file has failed and reported it to its
     * owner; keep draining the pipe anyway so the child never blocks on
     * it, and let the engine decide whether to stop the step. */
    grow_pipe(run, uv_fileno_((uv_handle_t *)s));
    if (buf->base == run->lr->scratch) {
      r = wf_logfile_write_copy(run->log, buf->base, (size_t)nread);
      if ((size_t)nread >= BIG_READ) run->owned_bufs = 1;
    } else {
      r = wf_logfile_write(run->log, buf->base, (size_t)nread);  /* takes it */
    }
    if (r == 1) {
      run->out_state = OUT_PAUSED;
      uv_read_stop(s);
    }
    return;
  }
  release(run, buf);
  if (nread == 0) return;  /* EAGAIN, not EOF */
  if (nread != UV_EOF)
    wf_warn(run->step_key, "reading step output: %s", uv_strerror((int)nread));
  if (proc_ended(run)) uv_timer_stop(&run->timer);  /* the linger limit */
  close_out(run);
}

static void on_log_drain(wf_logfile_t *f, void *data) {
  wf_run_t *run = data;
  (void)f;
  if (run->out_state != OUT_PAUSED) return;
  run->out_state = OUT_READING;
  uv_read_start((uv_stream_t *)&run->out, on_alloc, on_read);
}

/* ---- output, pulled by the threadpool ----------------------------------------------- */

static void on_outpoll(uv_poll_t *h, int status, int events);

static void on_pulled(wf_logfile_t *f, size_t moved, int status, void *data) {
  wf_run_t *run = data;
  int asked_to_close = run->out_state == OUT_CLOSING;
  (void)f;
  (void)moved;
  run->out_state = OUT_POLLING;
  if (asked_to_close || status == UV_EOF || status < 0) {
    if (status < 0 && status != UV_EOF)
      wf_warn(run->step_key, "reading step output: %s", uv_strerror(status));
    if (proc_ended(run) && !asked_to_close) uv_timer_stop(&run->timer);  /* the linger limit */
    close_out(run);
    return;
  }
  /* 0: the pipe is empty for now; 1: the budget was spent, and the poll
   * says at once whether more is there. */
  uv_poll_start(&run->outpoll, UV_READABLE, on_outpoll);
}

static void on_outpoll(uv_poll_t *h, int status, int events) {
  wf_run_t *run = h->data;
  int r, avail = -1;
  (void)events;
  uv_poll_stop(h);
  if (status < 0) {
    wf_warn(run->step_key, "reading step output: %s", uv_strerror(status));
    close_out(run);
    return;
  }
  /* Readable with nothing to read: every writer is gone (EOF).  Most steps
   * end that way after little or no output; knowing it here saves a
   * threadpool job that would only find EOF. */
  if (ioctl(run->outfd, FIONREAD, &avail) == 0 && avail == 0) {
    if (proc_ended(run)) uv_timer_stop(&run->timer);  /* the linger limit */
    close_out(run);
    return;
  }
  grow_pipe(run, run->outfd);
  r = wf_logfile_pull(run->log, run->outfd, on_pulled, run);
  if (r < 0) {
    /* Closed under us (cannot happen: the engine closes the file after
     * on_exit); stop reading rather than spin. */
    wf_warn(run->step_key, "reading step output: %s", uv_strerror(r));
    close_out(run);
    return;
  }
  run->out_state = OUT_PULLING;
}

/* ---- process ------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t) {
  wf_run_t *run = t->data;
  switch (run->proc_state) {
    case PROC_STOPPING:
      wf_info(run->step_key, "pid %d did not stop within %us: SIGKILL to its group", run->pid,
              run->stop_grace_s);
      kill_group(run, SIGKILL);
      return;
    case PROC_EXITED:
      break;
    case PROC_NONE:
    case PROC_RUNNING:
      return;  /* never armed in these states */
  }
  /* The linger limit after the exit.  While paused for the log file (or
   * pulled into it), the pipe holds output the job legitimately wrote:
   * wait for the disk instead. */
  switch (run->out_state) {
    case OUT_PAUSED:
    case OUT_PULLING:
    case OUT_CLOSING:
      uv_timer_start(&run->timer, on_timer, LINGER_MS, 0);
      return;
    case OUT_READING:
    case OUT_POLLING:
      wf_warn(run->step_key,
              "output pipe still open %ds after pid %d exited (a process left its group); "
              "not waiting for it",
              LINGER_MS / 1000, run->pid);
      close_out(run);
      return;
    case OUT_DONE:
      return;
  }
}

static void proc_exited(wf_run_t *run, uv_handle_t *h, int64_t exit_status, int term_signal) {
  run->exit_status = exit_status;
  run->term_signal = term_signal;
  run->proc_state = PROC_EXITED;
  /* Reap whatever the job left running in its group: daemons that hold the
   * pipe open would otherwise keep the run from ever reaching EOF. */
  kill_group(run, SIGKILL);
  close_handle(run, h);
  if (run->out_state != OUT_DONE)
    uv_timer_start(&run->timer, on_timer, LINGER_MS, 0);
  else
    uv_timer_stop(&run->timer);
  maybe_finish(run);
}

static void on_proc_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
  proc_exited(p->data, (uv_handle_t *)p, exit_status, term_signal);
}

/* The pidfd turned readable: the child is a zombie now, so this waitpid()
 * does not block.  It reaps only our own pid, never anyone else's. */
static void on_pidfd(uv_poll_t *h, int status, int events) {
  wf_run_t *run = h->data;
  int st = 0;
  pid_t r;
  (void)status;
  (void)events;
  do {
    r = waitpid(run->pid, &st, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return;  /* spurious wakeup */
  uv_poll_stop(h);
  if (r < 0) {
    /* ECHILD: somebody else reaped it (a SIGCHLD set to SIG_IGN); the
     * status is lost, which the engine must not take for success. */
    wf_warn(run->step_key, "waitpid(%d): %s", run->pid, strerror(errno));
    proc_exited(run, (uv_handle_t *)h, 0, SIGKILL);
    return;
  }
  if (WIFSIGNALED(st))
    proc_exited(run, (uv_handle_t *)h, 0, WTERMSIG(st));
  else
    proc_exited(run, (uv_handle_t *)h, WEXITSTATUS(st), 0);
}

/* ---- spawning ------------------------------------------------------------------ */

static int use_pidfd(local_runner_t *lr) {
  switch (lr->spawn) {
    case WF_LOCAL_SPAWN_POSIX: return 1;
    case WF_LOCAL_SPAWN_FORK: return 0;
    case WF_LOCAL_SPAWN_AUTO: break;
  }
  switch (wf__local_pidfd_probe()) {
    case 1: lr->spawn = WF_LOCAL_SPAWN_POSIX; return 1;
    case 0: lr->spawn = WF_LOCAL_SPAWN_FORK; return 0;
    default: return 1;  /* EMFILE and the like: decide on a later step */
  }
}

/* posix_spawn() and a poll on the child's pidfd.  Returns 0 or a negative
 * uv error (nothing left running). */
static int spawn_posix(wf_run_t *run, int outfd) {
  int pid, fd, r;
  r = wf__local_spawn(&run->lr->exes, uv_now(run->loop), run->argv, run->env, run->workdir,
                      outfd, &pid, &fd);
  if (r != 0) return r;
  r = uv_poll_init(run->loop, &run->pidpoll, fd);
  if (r != 0) {
    /* uv_poll_init fails before the handle exists: nothing to close. */
    wf__local_kill_reap(pid);
    close(fd);
    return r;
  }
  run->pidfd = fd;
  run->pidpoll.data = run;
  run->nhandles++;
  r = uv_poll_start(&run->pidpoll, UV_READABLE, on_pidfd);
  if (r != 0) {
    wf__local_kill_reap(pid);
    close_handle(run, (uv_handle_t *)&run->pidpoll);  /* closes the pidfd too */
    return r;
  }
  run->pid = pid;
  return 0;
}

/* uv_spawn() (a fork): the fallback where pidfds are not to be had. */
static int spawn_fork(wf_run_t *run, int outfd) {
  uv_process_options_t opts;
  uv_stdio_container_t stdio[3];
  int r;
  memset(&opts, 0, sizeof opts);
  memset(stdio, 0, sizeof stdio);
  stdio[0].flags = UV_IGNORE;  /* /dev/null */
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = outfd;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = outfd;
  opts.exit_cb = on_proc_exit;
  opts.file = run->argv[0];
  opts.args = run->argv;
  opts.env = run->env;
  opts.cwd = run->workdir;
  opts.flags = UV_PROCESS_DETACHED;  /* setsid: own process group */
  opts.stdio_count = 3;
  opts.stdio = stdio;
  r = uv_spawn(run->loop, &run->proc, &opts);
  /* uv_spawn initialises the handle even when it fails. */
  run->nhandles++;
  if (r != 0) {
    close_handle(run, (uv_handle_t *)&run->proc);
    return r;
  }
  run->pid = run->proc.pid;
  return 0;
}

/* Starts reading the pipe's read end fd (the run's from now on): pulled by
 * the threadpool where the log file can take it, read on the loop
 * otherwise. */
static void watch_output(wf_run_t *run, int fd) {
  int r;
  if (run->log && wf_logfile_can_pull(run->log) && uv_poll_init(run->loop, &run->outpoll, fd) == 0) {
    /* uv_poll_init made the fd non-blocking, as the pull wants it. */
    run->outfd = fd;
    run->out_state = OUT_POLLING;
    run->nhandles++;
    r = uv_poll_start(&run->outpoll, UV_READABLE, on_outpoll);
  } else {
    uv_pipe_init(run->loop, &run->out, 0);
    run->out_state = OUT_READING;
    run->nhandles++;
    r = uv_pipe_open(&run->out, fd);
    if (r == 0) {
      fd = -1;
      r = uv_read_start((uv_stream_t *)&run->out, on_alloc, on_read);
    }
  }
  if (r != 0) {
    /* Cannot happen with a fresh pipe; the job then runs with its output
     * going nowhere rather than hanging on a pipe nobody reads. */
    wf_error(run->step_key, "reading step output: %s", uv_strerror(r));
    if (fd >= 0 && !pull_mode(run)) close(fd);
    close_out(run);
  }
  if (run->log && !pull_mode(run)) wf_logfile_set_drain_cb(run->log, on_log_drain, run);
}

static void on_notify(uv_timer_t *t) {
  wf_run_t *run = t->data;
  if (run->state == RUN_STARTING) fire_started(run);
}

static wf_run_t *local_start(wf_runner_t *r, const wf_run_req_t *req, const wf_run_cbs_t *cbs,
                             void *data, char *err, size_t errlen) {
  local_runner_t *lr = (local_runner_t *)r;
  const char *cmd = wf_kv_get(req->runner_params, req->nrunner_params, "CMD");
  const char *workdir = wf_kv_get(req->runner_params, req->nrunner_params, "WORKDIR");
  char perr[256];
  char **argv;
  wf_run_t *run;
  int fds[2] = {-1, -1};
  int rc;

  if (lr->closing) {
    snprintf(err, errlen, "local runner: closed");
    return NULL;
  }
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
  run->lr = lr;
  run->loop = r->loop;
  if (cbs) run->cbs = *cbs;
  run->data = data;
  run->step_key = req->step_key ? wf_strdup(req->step_key) : NULL;
  run->argv = argv;
  /* NULL env would make libuv inherit the node's own environment; the
   * contract is the request's environment and nothing else. */
  run->env = env_dup(req->env, req->host_path);
  run->workdir = workdir && *workdir ? wf_strdup(workdir) : NULL;
  run->log = req->log;
  run->stop_grace_s = req->stop_grace_s;
  run->state = RUN_STARTING;
  run->proc_state = PROC_NONE;
  run->out_state = OUT_DONE;
  run->proc.data = run;
  run->out.data = run;
  run->notify.data = run;
  run->timer.data = run;
  run->outpoll.data = run;
  run->pidfd = -1;
  run->outfd = -1;
  uv_timer_init(run->loop, &run->notify);
  uv_timer_init(run->loop, &run->timer);
  run->nhandles = 2;
  run->next = lr->runs;
  if (lr->runs) lr->runs->prev = run;
  lr->runs = run;

  /* Blocking ends (flags 0): the child's stdout must behave like any
   * ordinary pipe; uv_pipe_open makes the parent's end non-blocking.  Both
   * ends are close-on-exec, so no other child inherits the write end. */
  rc = uv_pipe(fds, 0, 0);
  if (rc == 0) {
    rc = use_pidfd(lr) ? spawn_posix(run, fds[1]) : spawn_fork(run, fds[1]);
    close(fds[1]);  /* only the child writes; EOF needs every writer gone */
    fds[1] = -1;
  }
  if (rc == 0) {
    run->proc_state = PROC_RUNNING;
    snprintf(run->pidstr, sizeof run->pidstr, "%d", run->pid);
    run->resp[0].key = "pid";
    run->resp[0].value = run->pidstr;
    watch_output(run, fds[0]);
    wf_debug(run->step_key, "spawned %s as pid %d", run->argv[0], run->pid);
    uv_timer_start(&run->notify, on_notify, 0, 0);
    return run;
  }

  /* Could not run it: report through on_exit, on a later tick. */
  if (fds[0] >= 0) close(fds[0]);
  run->spawn_err = rc;
  if (run->workdir)
    snprintf(run->errmsg, sizeof run->errmsg, "cannot run %s: %s (WORKDIR %s)", run->argv[0],
             uv_strerror(rc), run->workdir);
  else
    snprintf(run->errmsg, sizeof run->errmsg, "cannot run %s: %s", run->argv[0],
             uv_strerror(rc));
  maybe_finish(run);
  return run;
}

static void local_cancel(wf_run_t *run) {
  if (run->canceled) return;
  run->canceled = 1;
  if (run->proc_state != PROC_RUNNING) return;
  run->proc_state = PROC_STOPPING;
  wf_info(run->step_key, "stopping pid %d: SIGTERM to its group, SIGKILL in %us", run->pid,
          run->stop_grace_s);
  kill_group(run, SIGTERM);
  uv_timer_start(&run->timer, on_timer, (uint64_t)run->stop_grace_s * 1000, 0);
}

/* ---- the instance ------------------------------------------------------------------ */

static void runner_maybe_free(local_runner_t *lr) {
  void (*cb)(void *);
  void *data;
  if (!lr->closing || !lr->timer_closed || lr->runs) return;
  cb = lr->close_cb;
  data = lr->close_data;
  wf__exe_cache_finish(&lr->exes);
  free(lr->scratch);
  free(lr);
  if (cb) cb(data);
}

static void on_close_timer_closed(uv_handle_t *h) {
  local_runner_t *lr = h->data;
  lr->timer_closed = 1;
  runner_maybe_free(lr);
}

static void local_close(wf_runner_t *r, void (*cb)(void *data), void *data) {
  local_runner_t *lr = (local_runner_t *)r;
  if (lr->closing) return;
  lr->closing = 1;
  lr->close_cb = cb;
  lr->close_data = data;
  /* Runs still going (the engine normally ends them first) die now; each
   * reports through on_exit as its pipe reaches EOF. */
  for (wf_run_t *run = lr->runs; run; run = run->next) {
    run->canceled = 1;
    if (run->proc_state == PROC_RUNNING || run->proc_state == PROC_STOPPING)
      kill_group(run, SIGKILL);
  }
  /* The close callback comes on a later iteration, as callers expect. */
  uv_close((uv_handle_t *)&lr->close_timer, on_close_timer_closed);
}

static const wf_runner_ops_t local_ops = {
  .name = "local",
  .unit = "process",
  .type = WF__RUNNER__TYPE__LOCAL,
  .start = local_start,
  .cancel = local_cancel,
  .list = NULL,    /* a child cannot be re-attached: its pipe died with the agent */
  .remove = NULL,
  .close = local_close,
};

wf_runner_t *wf_local_runner_create(uv_loop_t *loop, const wf_local_opts_t *opts) {
  local_runner_t *lr = wf_calloc(1, sizeof *lr);
  lr->base.ops = &local_ops;
  lr->base.loop = loop;
  lr->spawn = opts ? opts->spawn : WF_LOCAL_SPAWN_AUTO;
  uv_timer_init(loop, &lr->close_timer);
  lr->close_timer.data = lr;
  return &lr->base;
}
