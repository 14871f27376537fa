/*
 * logs: `wfctl logs STEP_KEY [-f]` prints the step's log.  Without -f it
 * reads the step once and copies the file as it is.  With -f it follows
 * the file (tail.c) and learns that the step ended by re-reading the step
 * every second; once it is complete, the rest of the file is printed and
 * the command ends 0.  A step deleted meanwhile ends it 1.
 *
 * A log that is not on this machine (tail.c decides) is read from the node
 * that ran the step (remote.c), following it with -f; the step is still
 * re-read every second, which tells the remote read when the step is
 * complete, and ends the command when the step is deleted.
 */
#include <stdio.h>
#include <stdlib.h>

#include "wfctl-internal.h"

/* logs -f re-reads the step every this many ticks of the tail (1 s). */
#define STEP_POLL_TICKS 5

static void on_step(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv);

/* The step is over (or gone): print the rest and end. */
static void logs_end(wf__ctl_t *c, int rc) {
  if (c->rstate == REMOTE_OFF && c->log_path && wf__tail_drain(c) != 0) {
    fprintf(stderr, "wfctl: step \"%s\": cannot read log %s: %s\n", c->step_key, c->log_path,
            c->open_error);
    rc = 1;
  } else if (!c->log_path && rc == 0) {
    fprintf(stderr, "wfctl: step \"%s\" ended (%s) without a log\n", c->step_key,
            c->last_status ? c->last_status : "?");
  }
  wf__ctl_end(c, rc);
}

/* The node's log was printed whole (ok), or its reading failed and said why. */
static void on_remote_done(wf__ctl_t *c, int ok) { wf__ctl_end(c, ok ? 0 : 1); }

/* Complete, or read once without -f: the rest of the file here, or all of
 * it from the node. */
static void logs_last(wf__ctl_t *c) {
  if (c->rstate == REMOTE_OFF && wf__tail_where(c, 0) == LOG_ELSEWHERE) {
    wf__remote_start(c);
    wf__remote_step(c, 1);
    return;
  }
  if (wf__remote_busy(c)) {
    wf__remote_step(c, 1);
    return;
  }
  logs_end(c, 0);
}

/* On the tail's tick, after the copy: one read of the step at a time. */
static void on_tick(wf__ctl_t *c) {
  if (!c->reading && ++c->ticks % STEP_POLL_TICKS == 0)
    wf__ctl_read_key(c, c->etcd_key, on_step);
}

static void on_step(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    wf__ctl_fail(c, err, "reading step \"%s\"", c->step_key);
    /* While following, a blip is not the end: try again next poll. */
    if (!c->follow || !c->tick_on) wf__ctl_end(c, 1);
    return;
  }
  if (!kv) {
    if (c->tick_on) {
      fprintf(stderr, "wfctl: step \"%s\" was deleted (etcd %s)\n", c->step_key,
              wf__ctl_endpoint(c));
      logs_end(c, 1);
    } else {
      wf__ctl_step_not_found(c);
      wf__ctl_end(c, 1);
    }
    return;
  }
  json_t *step = wf__ctl_parse_step(c, kv);
  if (!step) {
    wf__ctl_end(c, 1);
    return;
  }
  if (c->rstate == REMOTE_OFF) wf__tail_set_path(c, step);
  free(c->last_status);
  c->last_status = wf__status_name(step);
  int complete = wf__status_complete(c->last_status);
  json_decref(step);
  if (c->rstate == REMOTE_DONE || c->rstate == REMOTE_FAILED) return;  /* on_remote_done ends */

  if (!c->follow) {
    if (!c->log_path) {
      fprintf(stderr, "wfctl: step \"%s\" has no log yet (status %s) (etcd %s)\n", c->step_key,
              c->last_status, wf__ctl_endpoint(c));
      wf__ctl_end(c, 1);
      return;
    }
    /* Without -f the file as it is now, here or from the node. */
    c->remote_follow = 0;
    logs_last(c);
    return;
  }
  if (complete) {
    logs_last(c);
    return;
  }
  /* An absolute path outside --log-root is elsewhere at once; a missing
   * file gets the tail's grace first. */
  if (c->rstate == REMOTE_OFF && wf__tail_where(c, 1) == LOG_ELSEWHERE) wf__remote_start(c);
  wf__tail_pump(c);
  wf__tail_start(c, on_tick);
}

void wf__logs_start(wf__ctl_t *c) {
  c->remote_done = on_remote_done;
  c->remote_follow = 1;
  wf__ctl_read_key(c, c->etcd_key, on_step);
}
