/*
 * local-internal: what the LOCAL runner's two files share: run.c (the run:
 * pipe, output, exit, cancel) and spawn.c (starting the child with
 * posix_spawn() and a pidfd, and the PATH search that needs).
 */
#ifndef WF_LOCAL_INTERNAL_H
#define WF_LOCAL_INTERNAL_H

#include <stdint.h>

/* The PATH search costs a stat() per PATH entry before the hit (16 of them
 * per `true` with a long PATH), so recent answers are kept, as a shell's
 * hash table does, but only for WF__EXE_CACHE_MS: a program installed
 * earlier in PATH is seen within that time.  One cache per runner
 * instance. */
#define WF__EXE_CACHE_N 16
#define WF__EXE_CACHE_MS 2000

typedef struct wf__exe_ent_s {
  char *path_env;  /* the PATH searched */
  char *name;      /* argv[0] */
  char *exe;       /* what was found */
  uint64_t at;     /* uv_now() of the search */
} wf__exe_ent_t;

typedef struct wf__exe_cache_s {
  wf__exe_ent_t ent[WF__EXE_CACHE_N];
  unsigned next;   /* FIFO replacement */
} wf__exe_cache_t;

/* Frees every entry (the cache itself is the caller's). */
void wf__exe_cache_finish(wf__exe_cache_t *c);

/* 1 if pidfd_open() works here, 0 if the kernel or a seccomp filter refuses
 * it for good (ENOSYS, EPERM: fall back to uv_spawn), -1 if it failed for
 * a passing reason (EMFILE and the like: ask again on a later step). */
int wf__local_pidfd_probe(void);

/*
 * Starts argv[0] (searched in env's PATH, "/bin:/usr/bin" without one;
 * through the cache, now_ms being the loop's time) with posix_spawn(),
 * giving the child what uv_spawn() would: /dev/null as stdin, outfd as
 * stdout and stderr, workdir (may be NULL) as its cwd, a session of its
 * own, an empty signal mask and every signal at its default.  Then opens a
 * pidfd for its exit.  Returns 0 with *pid and *pidfd set (both the
 * caller's now), or a negative uv error with nothing left running.
 * Blocking only as long as posix_spawn() is (a vfork-style clone).
 */
int wf__local_spawn(wf__exe_cache_t *cache, uint64_t now_ms, char *const *argv, char *const *env,
                    const char *workdir, int outfd, int *pid, int *pidfd);

/* SIGKILLs pid and reaps it (blocking for the moment that takes): for a
 * child that must not run after all. */
void wf__local_kill_reap(int pid);

#endif
