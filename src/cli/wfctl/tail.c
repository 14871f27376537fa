/*
 * tail: copying a step's log file to stdout as it grows, for `logs` and
 * `run`.  The file is read with plain pread(2) from a 200 ms timer: wfctl is
 * a short-lived tool following one local file, so the node's no-blocking
 * rule (which protects many concurrent steps) buys nothing here.  The path
 * comes from the step's status.response.log_path as the node wrote it.
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

int wf__tail_pump(wf__ctl_t *c) {
  if (!c->log_path) return -1;
  if (c->fd < 0) {
    c->fd = open(c->log_path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0) {
      free(c->open_error);
      c->open_error = wf_strdup(strerror(errno));
      return -1;
    }
  }
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
  fflush(stdout);
  return 0;
}

int wf__tail_drain(wf__ctl_t *c) {
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
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->off = 0;
}

static void on_tick(uv_timer_t *t) {
  wf__ctl_t *c = t->data;
  if (c->finishing) return;
  wf__tail_pump(c);
  if (c->tick_hook) c->tick_hook(c);
}

void wf__tail_start(wf__ctl_t *c, void (*hook)(wf__ctl_t *c)) {
  c->tick_hook = hook;
  wf__ctl_timer_start(c, &c->tick, &c->tick_on, on_tick, TICK_MS, TICK_MS);
}
