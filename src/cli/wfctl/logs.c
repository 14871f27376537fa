/*
 * logs: `wfctl logs STEP_KEY [-f]` prints the step's log file.  Without -f
 * it reads the step once and copies the file as it is.  With -f it follows
 * the file (tail.c) and learns that the step ended by re-reading the step
 * every second; once it is complete, the rest of the file is printed and
 * the command ends 0.  A step deleted meanwhile ends it 1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "wfctl-internal.h"

/* logs -f re-reads the step every this many ticks of the tail (1 s). */
#define STEP_POLL_TICKS 5

static void on_step(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv);

/* The step is over (or gone): print the rest and end. */
static void logs_end(wf__ctl_t *c, int rc) {
  if (c->log_path && wf__tail_drain(c) != 0) {
    fprintf(stderr, "wfctl: step \"%s\": cannot read log %s: %s\n", c->step_key, c->log_path,
            c->open_error);
    rc = 1;
  } else if (!c->log_path && rc == 0) {
    fprintf(stderr, "wfctl: step \"%s\" ended (%s) without a log\n", c->step_key,
            c->last_status ? c->last_status : "?");
  }
  wf__ctl_end(c, rc);
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
  wf__tail_set_path(c, step);
  free(c->last_status);
  c->last_status = wf__status_name(step);
  int complete = wf__status_complete(c->last_status);
  json_decref(step);

  if (!c->follow) {
    if (!c->log_path) {
      fprintf(stderr, "wfctl: step \"%s\" has no log yet (status %s) (etcd %s)\n", c->step_key,
              c->last_status, wf__ctl_endpoint(c));
      wf__ctl_end(c, 1);
      return;
    }
    logs_end(c, 0);
    return;
  }
  if (complete) {
    logs_end(c, 0);
    return;
  }
  wf__tail_pump(c);
  wf__tail_start(c, on_tick);
}

void wf__logs_start(wf__ctl_t *c) { wf__ctl_read_key(c, c->etcd_key, on_step); }
