/*
 * spawn: how the LOCAL runner starts a child: posix_spawn() and a pidfd.
 *
 * glibc runs posix_spawn() as clone(CLONE_VM|CLONE_VFORK), so nothing of the
 * node's address space is copied.  A fork() per step, as uv_spawn() does,
 * cost the node about a third of its CPU per `true` step: copying page
 * tables, TLB shootdowns across the threadpool's threads, and a
 * copy-on-write fault on every page the loop touched next (measured in
 * docs/benchmarks.md, part 2).  The pidfd tells the loop when the child
 * exits without SIGCHLD, which libuv owns.
 *
 * posix_spawnp() would search the node's PATH, but the contract is the
 * step's own PATH, so the search (execvp's rules) is done here, with its
 * answers cached for a moment.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "local-internal.h"
#include "wf/util.h"

static int pidfd_open_(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int wf__local_pidfd_probe(void) {
  int fd = pidfd_open_(getpid());
  if (fd >= 0) {
    close(fd);
    return 1;
  }
  if (errno == ENOSYS || errno == EPERM) {
    wf_info(NULL, "pidfd_open: %s; local steps are started with fork()", strerror(errno));
    return 0;
  }
  return -1;
}

/* execvp()'s search over path.  A name with a '/' is taken as it is
 * (relative to WORKDIR, which the child enters before the exec). */
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

static void exe_ent_clear(wf__exe_ent_t *e) {
  free(e->path_env);
  free(e->name);
  free(e->exe);
  memset(e, 0, sizeof *e);
}

void wf__exe_cache_finish(wf__exe_cache_t *c) {
  for (unsigned i = 0; i < WF__EXE_CACHE_N; i++) exe_ent_clear(&c->ent[i]);
}

/* argv[0] -> the file to exec, from the cache when fresh.  fresh: 1 to
 * skip the cache (a cached answer just failed). */
static int find_exe(wf__exe_cache_t *c, uint64_t now, const char *file, char *const *env,
                    int fresh, char *out, size_t outlen) {
  const char *path = "/bin:/usr/bin";
  wf__exe_ent_t *e;
  int r;
  if (strchr(file, '/') || !*file) return search_path(file, path, out, outlen);
  for (char *const *v = env; v && *v; v++)
    if (strncmp(*v, "PATH=", 5) == 0) {
      path = *v + 5;
      break;
    }
  for (unsigned i = 0; i < WF__EXE_CACHE_N; i++) {
    e = &c->ent[i];
    if (!e->exe || strcmp(e->name, file) != 0 || strcmp(e->path_env, path) != 0) continue;
    if (!fresh && now - e->at <= WF__EXE_CACHE_MS && strlen(e->exe) < outlen) {
      strcpy(out, e->exe);
      return 0;
    }
    exe_ent_clear(e);
  }
  r = search_path(file, path, out, outlen);
  if (r == 0) {
    e = &c->ent[c->next++ % WF__EXE_CACHE_N];
    exe_ent_clear(e);
    e->path_env = wf_strdup(path);
    e->name = wf_strdup(file);
    e->exe = wf_strdup(out);
    e->at = now;
  }
  return r;
}

void wf__local_kill_reap(int pid) {
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
}

int wf__local_spawn(wf__exe_cache_t *cache, uint64_t now_ms, char *const *argv, char *const *env,
                    const char *workdir, int outfd, int *pid_out, int *pidfd_out) {
  char exe[PATH_MAX];
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, all;
  pid_t pid;
  int r, fd, tries = 0;
again:
  r = find_exe(cache, now_ms, argv[0], env, tries > 0, exe, sizeof exe);
  if (r < 0) return r;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, outfd, 1);
  posix_spawn_file_actions_adddup2(&fa, outfd, 2);
  if (workdir) posix_spawn_file_actions_addchdir_np(&fa, workdir);
  posix_spawnattr_init(&at);
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                    POSIX_SPAWN_SETSIGDEF);
  r = posix_spawn(&pid, exe, &fa, &at, argv, env);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  /* A cached path that went away: search again, once.  (WORKDIR missing
   * also says ENOENT; the second search then finds the same file and
   * fails the same way.) */
  if ((r == ENOENT || r == EACCES) && !strchr(argv[0], '/') && tries++ == 0) goto again;
  if (r != 0) return -r;

  fd = pidfd_open_(pid);
  if (fd < 0) {
    /* Out of descriptors, most likely: without a pidfd nobody would ever
     * reap it, so it does not run at all (it cannot have done much yet). */
    int err = -errno;
    wf__local_kill_reap(pid);
    return err;
  }
  *pid_out = pid;
  *pidfd_out = fd;
  return 0;
}
