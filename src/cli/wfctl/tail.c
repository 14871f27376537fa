/*
 * tail: copying a step's log file to stdout as it grows, for `logs` and
 * `run`, and deciding whether that file is on this machine at all.  The
 * file is read with plain pread(2) from a 200 ms timer: wfctl is a
 * short-lived tool following one local file, so the node's no-blocking rule
 * (which protects many concurrent steps) buys nothing here.  The path comes
 * from the step's status.response.log_path as the node wrote it.
 *
 * A log that is not here (the file does not exist, or it is an absolute
 * path outside the --log-root given) is read from its node instead
 * (remote.c).  The node publishes log_path in the same write that makes the
 * step RUNNING, just before it creates the file, so while the step runs a
 * missing file gets a second of ticks before it counts as elsewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wf/util.h"
#include "wfctl-internal.h"

#define TICK_MS 200
/* Ticks a missing file may take to appear while the step runs (1 s). */
#define MISSING_TICKS 5

static int tail_open(wf__ctl_t *c) {
  if (c->fd >= 0) return 0;
  c->fd = open(c->log_path, O_RDONLY | O_CLOEXEC);
  if (c->fd < 0) {
    c->open_errno = errno;
    free(c->open_error);
    c->open_error = wf_strdup(strerror(errno));
    return -1;
  }
  return 0;
}

int wf__tail_pump(wf__ctl_t *c) {
  if (c->rstate != REMOTE_OFF) return 0;
  if (!c->log_path) return -1;
  if (c->log_outside_root) {
    free(c->open_error);
    c->open_error = wf_strdup("not under --log-root");
    return -1;
  }
  if (tail_open(c) != 0) return -1;
  struct stat st;
  if (fstat(c->fd, &st) == 0 && st.st_size < c->off) {
    /* Truncated under us (rewritten); start over rather than print nothing. */
    c->off = 0;
  }
  char buf[65536];
  /* Bounded per tick so a huge file does not starve the loop's timers. */
  for (int i = 0; i < 256; i++) {
    ssize_t n = pread(c->fd, buf, sizeof buf, c->off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    fwrite(buf, 1, (size_t)n, stdout);
    c->off += n;
  }
  wf__ctl_flush_stdout();
  return 0;
}

int wf__tail_drain(wf__ctl_t *c) {
  if (c->rstate != REMOTE_OFF) return 0;
  if (wf__tail_pump(c) != 0) return -1;
  for (;;) {
    int64_t before = c->off;
    wf__tail_pump(c);
    if (c->off == before) return 0;
  }
}

void wf__tail_stop(wf__ctl_t *c) {
  wf__ctl_timer_stop(&c->tick, &c->tick_on);
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
}

/* 1 when path (absolute) lies under root: textually, or under the root's
 * real path (a root given as a relative path or through a symbolic link). */
static int under_root(const char *path, const char *root) {
  char *real = realpath(root, NULL);
  const char *roots[2] = {root, real};
  int in = 0;
  for (int i = 0; i < 2 && !in; i++) {
    if (!roots[i]) continue;
    size_t n = strlen(roots[i]);
    while (n > 1 && roots[i][n - 1] == '/') n--;
    in = strncmp(path, roots[i], n) == 0 && (path[n] == '/' || (n == 1 && roots[i][0] == '/'));
  }
  free(real);
  return in;
}

void wf__tail_set_path(wf__ctl_t *c, const json_t *step) {
  const char *p = wf__jstr(json_object_get(json_object_get(step, "status"), "response"),
                           "log_path");
  if (!p[0]) return;
  char *full = (p[0] != '/' && c->log_root) ? wf_asprintf("%s/%s", c->log_root, p)
                                            : wf_strdup(p);
  if (c->log_path && strcmp(c->log_path, full) == 0) {
    free(full);
    return;
  }
  free(c->log_path);
  c->log_path = full;
  free(c->log_node);
  c->log_node = wf_strdup(wf__step_node(step));
  /* --log-root says where the node's logs are: an absolute path elsewhere
   * is another machine's (the node's --log-dir), whatever is here. */
  c->log_outside_root = p[0] == '/' && c->log_root && !under_root(p, c->log_root);
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->off = 0;
  c->missing_ticks = 0;
}

enum wf__log_where wf__tail_where(wf__ctl_t *c, int may_wait) {
  if (!c->log_path) return LOG_NO_PATH;
  if (c->log_outside_root) return LOG_ELSEWHERE;
  if (tail_open(c) == 0) return LOG_LOCAL;
  if (c->open_errno != ENOENT && c->open_errno != ENOTDIR) return LOG_UNREADABLE;
  if (may_wait && c->missing_ticks < MISSING_TICKS) return LOG_NOT_YET;
  return LOG_ELSEWHERE;
}

static void on_tick(uv_timer_t *t) {
  wf__ctl_t *c = t->data;
  if (c->finishing) return;
  if (c->rstate == REMOTE_OFF && wf__tail_pump(c) != 0 && c->log_path && c->remote_done) {
    c->missing_ticks++;
    if (wf__tail_where(c, 1) == LOG_ELSEWHERE) wf__remote_start(c);
  }
  if (c->tick_hook) c->tick_hook(c);
}

void wf__tail_start(wf__ctl_t *c, void (*hook)(wf__ctl_t *c)) {
  c->tick_hook = hook;
  wf__ctl_timer_start(c, &c->tick, &c->tick_on, on_tick, TICK_MS, TICK_MS);
}
