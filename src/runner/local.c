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
 * How the child is started: posix_spawn() (glibc runs it as
 * clone(CLONE_VM|CLONE_VFORK), so nothing of the node's address space is
 * copied) and a pidfd watched by a uv_poll_t tells when it exits.  A fork()
 * per step, as uv_spawn() does, cost the node about a third of its CPU per
 * `true` step: copying page tables, TLB shootdowns across the threadpool's
 * threads, and a copy-on-write fault on every page the loop touched next
 * (perf, bench part 2).  Where pidfd_open() is missing (kernel < 5.3, or a
 * seccomp filter) the runner falls back to uv_spawn(); the two behave the
 * same except that posix_spawn() does not run a script without a "#!"
 * line through /bin/sh (execvp's ENOEXEC fallback).
 *
 * Output normally never passes through the loop: the pipe is polled, and
 * when it is readable a threadpool job pulls what it holds into the log
 * file (wf_logfile_pull: read+write in a loop there, until the pipe stays
 * empty), while the pipe is not polled, so a child that writes faster than
 * the disk blocks on its full pipe.  A readable pipe with nothing in it is
 * EOF, known without a job.
 *
 * When the log masks secrets, the masker must see every byte on the loop:
 * output is then read into one scratch buffer shared by every run (the loop
 * reads one pipe at a time) and copied into the log file's queue, until a
 * run's reads come in big: from then on that run reads into 64 KiB buffers
 * of its own that go to the log file as they are (ownership passes, no
 * copy).  So a quiet step costs no allocation at all (a 64 KiB malloc and
 * free per step, for the EOF read alone, showed up in bench part 2), and a
 * chatty one no copy; when the log file's queue is full the pipe is no
 * longer read until it drains, so the child blocks on a full pipe and the
 * node's memory stays bounded.
 *
 * Handles: two timers, the process, the pipe, all embedded; the run is
 * freed, right after on_exit, in the close callback that brings the count
 * of open handles to zero (style.md rule 12).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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

  uv_process_t proc;  /* the uv_spawn() fallback */
  uv_poll_t pidpoll;  /* posix_spawn(): readable when the child exits */
  int pidfd;          /* -1 unless pidpoll is in use */
  uv_pipe_t out;      /* output read on the loop (masking needs the bytes) */
  uv_poll_t outpoll;  /* or: output pulled into the log by the threadpool */
  int outfd;          /* the pipe's read end while outpoll is in use, or -1 */
  int pull_mode;      /* outpoll, not out */
  int pulling;        /* a wf_logfile_pull() is in flight */
  int out_closing;    /* close_out() waits for that pull to end */
  uv_timer_t notify;  /* fires on_started on the tick after start() */
  uv_timer_t timer;   /* cancel grace; after the exit, the linger limit */
  int nhandles;       /* open handles; the last close frees the run */

  int pid;            /* 0 until spawned */
  int spawn_err;
  int proc_done;      /* exit seen, or spawn failed */
  int out_done;       /* EOF or read error seen, or the pipe never opened */
  int paused;         /* reading stopped for the log file's backpressure */
  int big_reads;      /* reads fill buffers: read into owned ones */
  int pipe_grown;     /* F_SETPIPE_SZ done (on the first output) */
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
  uv_close(h, h->type == UV_POLL ? on_poll_closed : on_handle_closed);
}

static void kill_group(wf_run_t *run, int sig) {
  /* ESRCH just means the whole group is gone already. */
  if (run->pid > 0 && kill(-run->pid, sig) < 0 && errno != ESRCH)
    wf_warn(run->step_key, "kill(-%d, %d): %s", run->pid, sig, strerror(errno));
}

static void close_out(wf_run_t *run) {
  if (run->out_done) return;
  if (run->pull_mode) {
    /* The threadpool is reading the fd: it closes when the pull ends. */
    if (run->pulling) {
      run->out_closing = 1;
      return;
    }
    run->out_done = 1;
    uv_poll_stop(&run->outpoll);
    close_handle(run, (uv_handle_t *)&run->outpoll);
    maybe_finish(run);
    return;
  }
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

/* A 1 MiB pipe (best effort: capped by fs.pipe-max-size and the user's
 * pipe quota) cuts wakeups about fourfold for chatty jobs; a 1 GiB output
 * measured about 20% faster than with the default 64 KiB.  Grown when the
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

/* Reads of at least this size switch a run to buffers of its own. */
#define BIG_READ ((size_t)16 << 10)

static char scratch[READ_BUF_SIZE];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  wf_run_t *run = h->data;
  if (run->big_reads)
    *buf = uv_buf_init(wf_malloc(READ_BUF_SIZE), (unsigned)READ_BUF_SIZE);
  else
    *buf = uv_buf_init(scratch, (unsigned)sizeof scratch);
}

static void release(const uv_buf_t *buf) {
  if (buf->base != scratch) free(buf->base);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wf_run_t *run = s->data;
  if (nread > 0) {
    int r;
    if (!run->log) {
      release(buf);
      return;
    }
    /* On a negative result the log file has failed and reported it to its
     * owner; keep draining the pipe anyway so the child never blocks on
     * it, and let the engine decide whether to stop the step. */
    grow_pipe(run, uv_fileno_((uv_handle_t *)s));
    if (buf->base == scratch) {
      r = wf_logfile_write_copy(run->log, buf->base, (size_t)nread);
      if ((size_t)nread >= BIG_READ) run->big_reads = 1;
    } else {
      r = wf_logfile_write(run->log, buf->base, (size_t)nread);  /* takes it */
    }
    if (r == 1) {
      run->paused = 1;
      uv_read_stop(s);
    }
    return;
  }
  release(buf);
  if (nread == 0) return;  /* EAGAIN, not EOF */
  if (nread != UV_EOF)
    wf_warn(run->step_key, "reading step output: %s", uv_strerror((int)nread));
  if (run->proc_done) uv_timer_stop(&run->timer);  /* the linger limit */
  close_out(run);
}

/* ---- output, pulled by the threadpool ----------------------------------------------- */

static void on_outpoll(uv_poll_t *h, int status, int events);

static void on_pulled(wf_logfile_t *f, size_t moved, int status, void *data) {
  wf_run_t *run = data;
  run->pulling = 0;
  if (run->out_closing || status == UV_EOF || status < 0) {
    if (status < 0 && status != UV_EOF)
      wf_warn(run->step_key, "reading step output: %s", uv_strerror(status));
    if (run->proc_done && !run->out_closing) uv_timer_stop(&run->timer);  /* the linger limit */
    close_out(run);
    return;
  }
  /* 0: the pipe is empty for now; 1: the budget was spent, and the poll
   * says at once whether more is there. */
  uv_poll_start(&run->outpoll, UV_READABLE, on_outpoll);
}

static void on_outpoll(uv_poll_t *h, int status, int events) {
  wf_run_t *run = h->data;
  int r;
  uv_poll_stop(h);
  if (status < 0) {
    wf_warn(run->step_key, "reading step output: %s", uv_strerror(status));
    close_out(run);
    return;
  }
  /* Readable with nothing to read: every writer is gone (EOF).  Most steps
   * end that way after little or no output; knowing it here saves a
   * threadpool job that would only find EOF. */
  int avail = -1;
  if (ioctl(run->outfd, FIONREAD, &avail) == 0 && avail == 0) {
    if (run->proc_done) uv_timer_stop(&run->timer);  /* the linger limit */
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
  run->pulling = 1;
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
  /* Linger limit after the exit.  While paused for the log file (or
   * pulled into it), the pipe holds output the job legitimately wrote:
   * wait for the disk instead. */
  if (run->paused || run->pulling) {
    uv_timer_start(&run->timer, on_timer, LINGER_MS, 0);
    return;
  }
  wf_warn(run->step_key,
          "output pipe still open %ds after pid %d exited (a process left its group); "
          "not waiting for it",
          LINGER_MS / 1000, run->pid);
  close_out(run);
}

static void proc_exited(wf_run_t *run, uv_handle_t *h, int64_t exit_status, int term_signal) {
  run->exit_status = exit_status;
  run->term_signal = term_signal;
  run->proc_done = 1;
  /* Reap whatever the job left running in its group: daemons that hold the
   * pipe open would otherwise keep the run from ever reaching EOF. */
  kill_group(run, SIGKILL);
  close_handle(run, h);
  if (!run->out_done) {
    uv_timer_start(&run->timer, on_timer, LINGER_MS, 0);
  } else {
    uv_timer_stop(&run->timer);
  }
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

static int spawn_mode = -1;  /* -1 not probed yet, 1 posix_spawn + pidfd, 0 uv_spawn */

void wf_runner_local_set_spawn_mode(int mode) { spawn_mode = mode; }

static int pidfd_open_(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

static int use_pidfd(void) {
  if (spawn_mode < 0) {
    int fd = pidfd_open_(getpid());
    if (fd >= 0) {
      close(fd);
      spawn_mode = 1;
    } else if (errno == ENOSYS || errno == EPERM) {
      wf_info(NULL, "pidfd_open: %s; local steps are started with fork()", strerror(errno));
      spawn_mode = 0;
    } else {
      return 1;  /* EMFILE and the like: decide on a later step */
    }
  }
  return spawn_mode;
}

/* execvp()'s search, done here because posix_spawnp() would search the
 * node's PATH and the contract is the step's: PATH from the request's
 * environment, "/bin:/usr/bin" without one.  A name with a '/' is taken as
 * it is (relative to WORKDIR, which the child enters before the exec). */
static int search_path(const char *file, const char *path, char *out, size_t outlen) {
  int err = UV_ENOENT;
  if (strchr(file, '/')) {
    if (strlen(file) >= outlen) return UV_ENAMETOOLONG;
    strcpy(out, file);
    return 0;
  }
  if (!*file) return UV_ENOENT;
  while (1) {
    const char *end = strchrnul(path, ':');
    size_t dlen = (size_t)(end - path);
    struct stat st;
    int n = snprintf(out, outlen, "%.*s%s%s", (int)dlen, path, dlen ? "/" : "", file);
    if (n > 0 && (size_t)n < outlen && stat(out, &st) == 0 && !S_ISDIR(st.st_mode)) {
      if (access(out, X_OK) == 0) return 0;
      err = UV_EACCES;  /* as execvp: go on, report EACCES if nothing else is found */
    }
    if (!*end) return err;
    path = end + 1;
  }
}

/* The search costs a stat() per PATH entry before the hit (16 of them per
 * `true` with a long PATH), so recent answers are kept, as a shell's hash
 * table does, but only for EXE_CACHE_MS: a program installed earlier in
 * PATH is seen within that time.  A cached path that fails to run with
 * ENOENT or EACCES is searched again at once (see spawn_posix). */
#define EXE_CACHE_N 16
#define EXE_CACHE_MS 2000

typedef struct {
  char *path_env;  /* the PATH searched */
  char *name;      /* argv[0] */
  char *exe;       /* what was found */
  uint64_t at;     /* uv_now() of the search */
} exe_ent_t;

static exe_ent_t exe_cache[EXE_CACHE_N];
static unsigned exe_next;  /* FIFO replacement */

static void exe_ent_clear(exe_ent_t *e) {
  free(e->path_env);
  free(e->name);
  free(e->exe);
  memset(e, 0, sizeof *e);
}

/* argv[0] -> the file to exec, from the cache when fresh.  fresh: 1 to
 * skip the cache (a cached answer just failed). */
static int find_exe(uv_loop_t *loop, const char *file, char *const *env, int fresh, char *out,
                    size_t outlen) {
  const char *path = "/bin:/usr/bin";
  uint64_t now = uv_now(loop);
  exe_ent_t *e;
  int r;
  if (strchr(file, '/') || !*file) return search_path(file, path, out, outlen);
  for (char *const *v = env; v && *v; v++)
    if (strncmp(*v, "PATH=", 5) == 0) {
      path = *v + 5;
      break;
    }
  for (unsigned i = 0; i < EXE_CACHE_N; i++) {
    e = &exe_cache[i];
    if (!e->exe || strcmp(e->name, file) != 0 || strcmp(e->path_env, path) != 0) continue;
    if (!fresh && now - e->at <= EXE_CACHE_MS && strlen(e->exe) < outlen) {
      strcpy(out, e->exe);
      return 0;
    }
    exe_ent_clear(e);
  }
  r = search_path(file, path, out, outlen);
  if (r == 0) {
    e = &exe_cache[exe_next++ % EXE_CACHE_N];
    exe_ent_clear(e);
    e->path_env = wf_strdup(path);
    e->name = wf_strdup(file);
    e->exe = wf_strdup(out);
    e->at = now;
  }
  return r;
}

void wf_runner_local_cleanup(void) {
  for (unsigned i = 0; i < EXE_CACHE_N; i++) exe_ent_clear(&exe_cache[i]);
}

/* posix_spawn() with what uv_spawn() would give the child: /dev/null as
 * stdin, outfd as stdout and stderr, WORKDIR, a session of its own, an
 * empty signal mask and every signal at its default.  Then a pidfd for the
 * exit.  Returns 0 or a negative uv error (nothing left running). */
static int spawn_posix(wf_run_t *run, int outfd) {
  char exe[PATH_MAX];
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, all;
  pid_t pid;
  int r, tries = 0;
again:
  r = find_exe(run->loop, run->argv[0], run->env, tries > 0, exe, sizeof exe);
  if (r < 0) return r;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, outfd, 1);
  posix_spawn_file_actions_adddup2(&fa, outfd, 2);
  if (run->workdir) posix_spawn_file_actions_addchdir_np(&fa, run->workdir);
  posix_spawnattr_init(&at);
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                    POSIX_SPAWN_SETSIGDEF);
  r = posix_spawn(&pid, exe, &fa, &at, run->argv, run->env);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  /* A cached path that went away: search again, once.  (WORKDIR missing
   * also says ENOENT; the second search then finds the same file and
   * fails the same way.) */
  if ((r == ENOENT || r == EACCES) && !strchr(run->argv[0], '/') && tries++ == 0) goto again;
  if (r != 0) return -r;

  run->pidfd = pidfd_open_(pid);
  if (run->pidfd < 0) {
    /* Out of descriptors, most likely: without a pidfd nobody would ever
     * reap it, so it does not run at all (it cannot have done much yet). */
    int err = -errno;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    return err;
  }
  r = uv_poll_init(run->loop, &run->pidpoll, run->pidfd);
  if (r != 0) {
    /* uv_poll_init fails before the handle exists: nothing to close. */
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    close(run->pidfd);
    run->pidfd = -1;
    return r;
  }
  run->pidpoll.data = run;
  run->nhandles++;
  r = uv_poll_start(&run->pidpoll, UV_READABLE, on_pidfd);
  if (r != 0) {
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    close_handle(run, (uv_handle_t *)&run->pidpoll);  /* closes the pidfd too */
    return r;
  }
  run->pid = pid;
  return 0;
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
  run->pidfd = -1;
  run->outfd = -1;
  run->outpoll.data = run;
  uv_timer_init(loop, &run->notify);
  uv_timer_init(loop, &run->timer);
  run->nhandles = 2;

  /* Blocking ends (flags 0): the child's stdout must behave like any
   * ordinary pipe; uv_pipe_open makes the parent's end non-blocking.  Both
   * ends are close-on-exec, so no other child inherits the write end. */
  r = uv_pipe(fds, 0, 0);
  if (r == 0 && use_pidfd()) {
    r = spawn_posix(run, fds[1]);
    close(fds[1]);  /* only the child writes; EOF needs every writer gone */
    fds[1] = -1;
  } else if (r == 0) {
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
    if (r != 0) close_handle(run, (uv_handle_t *)&run->proc);
    close(fds[1]);  /* only the child writes; EOF needs every writer gone */
    fds[1] = -1;
  }
  if (r == 0) {
    if (run->pidfd < 0) run->pid = run->proc.pid;
    snprintf(run->pidstr, sizeof run->pidstr, "%d", run->pid);
    run->resp[0].key = "pid";
    run->resp[0].value = run->pidstr;
    if (run->log && wf_logfile_can_pull(run->log) &&
        uv_poll_init(loop, &run->outpoll, fds[0]) == 0) {
      /* uv_poll_init made the fd non-blocking, as the pull wants it. */
      run->pull_mode = 1;
      run->outfd = fds[0];
      fds[0] = -1;
      run->nhandles++;
      r = uv_poll_start(&run->outpoll, UV_READABLE, on_outpoll);
    } else {
      uv_pipe_init(loop, &run->out, 0);
      run->nhandles++;
      r = uv_pipe_open(&run->out, fds[0]);
      if (r == 0) {
        fds[0] = -1;
        r = uv_read_start((uv_stream_t *)&run->out, on_alloc, on_read);
      }
    }
    if (r != 0) {
      /* Cannot happen with a fresh pipe; the job then runs with its output
       * going nowhere rather than hanging on a pipe nobody reads. */
      wf_error(run->step_key, "reading step output: %s", uv_strerror(r));
      if (fds[0] >= 0) close(fds[0]);
      close_out(run);
    }
    if (run->log && !run->pull_mode) wf_logfile_set_drain_cb(run->log, on_log_drain, run);
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
