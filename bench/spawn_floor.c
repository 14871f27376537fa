/*
 * bench/spawn_floor.c: part 2's CPU baseline.  What the kernel and libc
 * charge a process, per step, for the least a LOCAL `true` step needs
 * without any etcd: a pipe, a child (posix_spawn, the way the agent starts
 * it, or fork+exec, the way uv_spawn does), waiting for its exit and its
 * EOF, and creating and closing its log file.  Sequential, one process, no
 * event loop; the figure is this process's own utime+stime per step
 * (children excluded), so it is a floor the agent cannot go below.
 *
 *   spawn_floor N DIR posix|fork   ->  {"mode":...,"n":N,"cpu_ms_per_step":X}
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char *const argv_true[] = {"true", NULL};
static char *const env_none[] = {NULL};

static pid_t spawn_posix(int outfd) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  pid_t pid;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, outfd, 1);
  posix_spawn_file_actions_adddup2(&fa, outfd, 2);
  posix_spawnattr_init(&at);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID);
  if (posix_spawn(&pid, "/bin/true", &fa, &at, argv_true, env_none) != 0) pid = -1;
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

static pid_t spawn_fork(int outfd) {
  pid_t pid = fork();
  if (pid == 0) {
    int nul = open("/dev/null", O_RDONLY);
    dup2(nul, 0);
    dup2(outfd, 1);
    dup2(outfd, 2);
    setsid();
    execve("/bin/true", argv_true, env_none);
    _exit(127);
  }
  return pid;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: spawn_floor N DIR posix|fork\n");
    return 2;
  }
  int n = atoi(argv[1]), use_fork = strcmp(argv[3], "fork") == 0;
  char path[4096], buf[4096];
  /* The agent holds about this much heap while it works; fork copies the
   * page tables that map it, so the fork figure would be flattered by a
   * tiny process. */
  size_t heap = (size_t)3 << 20;
  char *ballast = malloc(heap);
  memset(ballast, 1, heap);
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  for (int i = 0; i < n; i++) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return 1;
    pid_t pid = use_fork ? spawn_fork(fds[1]) : spawn_posix(fds[1]);
    if (pid < 0) return 1;
    close(fds[1]);
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    poll(&p, 1, -1);
    waitpid(pid, NULL, 0);
    close(pfd);
    while (read(fds[0], buf, sizeof buf) > 0) {}
    close(fds[0]);
    snprintf(path, sizeof path, "%s/f%d", argv[2], i);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return 1;
    close(fd);
    ballast[(size_t)i * 4096 % heap]++;  /* the agent writes its memory too */
  }
  getrusage(RUSAGE_SELF, &r1);
  double us = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1e6 +
              (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
              (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1e6 +
              (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
  printf("{\"mode\":\"%s\",\"n\":%d,\"cpu_ms_per_step\":%.4f}\n", argv[3], n, us / 1000.0 / n);
  free(ballast);
  return 0;
}
