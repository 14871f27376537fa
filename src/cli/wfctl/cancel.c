/*
 * cancel: `wfctl cancel STEP_KEY`, and `run --timeout` on its way out.  The
 * step is read and written back with status CANCELING and a message,
 * nothing else changed, by a compare-and-put on the revision read; when the
 * step changed in between (the node claimed or finished it), the answer's
 * current value is decided on again, up to CANCEL_TRIES times.  The node
 * that holds the step stops its runner and writes CANCELED; a step no node
 * holds is written CANCELED here, since nobody else would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/util.h"
#include "wfctl-internal.h"

#define CANCEL_TRIES 5

static void cancel_done(wf__ctl_t *c, int ok) {
  /* run --timeout cancels on its way out: its exit code is a failure anyway. */
  wf__ctl_end(c, c->cmd == CMD_RUN ? 1 : (ok ? 0 : 1));
}

static void cancel_decide(wf__ctl_t *c, const wf_etcd_kv_t *kv);

static void on_cancel_put(int err, int succeeded, int64_t rev, const wf_etcd_kv_t *cur,
                          void *data) {
  wf__ctl_t *c = data;
  if (c->finishing) return;
  if (err) {
    wf__ctl_fail(c, err, "canceling step \"%s\"", c->step_key);
    cancel_done(c, 0);
    return;
  }
  if (succeeded) {
    /* run's stdout is the key and the log; its notes go to stderr. */
    FILE *out = c->cmd == CMD_RUN ? stderr : stdout;
    fprintf(out, "%sstep/%s %s\n", c->cmd == CMD_RUN ? "wfctl: " : "", c->step_key,
            c->last_status);
    fflush(out);
    cancel_done(c, 1);
    return;
  }
  /* Someone (the node, the scheduler) wrote the step between our read and
   * our write: decide again on what is there now. */
  if (++c->cancel_tries >= CANCEL_TRIES) {
    fprintf(stderr, "wfctl: step \"%s\" kept changing; cancel not written (etcd %s)\n",
            c->step_key, wf__ctl_endpoint(c));
    cancel_done(c, 0);
    return;
  }
  if (!cur) {
    wf__ctl_step_not_found(c);
    cancel_done(c, 0);
    return;
  }
  cancel_decide(c, cur);
}

/* kv is the step as stored now (borrowed). */
static void cancel_decide(wf__ctl_t *c, const wf_etcd_kv_t *kv) {
  json_t *step = wf__ctl_parse_step(c, kv);
  if (!step) {
    cancel_done(c, 0);
    return;
  }
  char *st = wf__status_name(step);
  if (wf__status_complete(st)) {
    fprintf(stderr, "wfctl: step \"%s\" is already %s; nothing to cancel\n", c->step_key, st);
    free(st);
    json_decref(step);
    cancel_done(c, 0);
    return;
  }
  if (strcmp(st, "CANCELING") == 0) {
    printf("step/%s is already being canceled\n", c->step_key);
    free(st);
    json_decref(step);
    cancel_done(c, 1);
    return;
  }
  free(st);
  json_t *status = json_object_get(step, "status");
  if (!json_is_object(status)) {
    status = json_object();
    json_object_set_new(step, "status", status);
  }
  /* A step no node holds has nobody to turn CANCELING into CANCELED: end it
   * here.  Otherwise its node stops the runner and writes CANCELED. */
  int unassigned = wf__step_node(step)[0] == '\0';
  free(c->last_status);
  c->last_status = wf_strdup(unassigned ? "CANCELED" : "CANCELING");
  json_object_set_new(status, "status", json_string(c->last_status));
  json_object_set_new(status, "message", json_string("step canceled by user"));
  if (unassigned) json_object_set_new(status, "end_at", json_integer(wf_now_ms()));
  char *val = json_dumps(step, JSON_COMPACT);
  json_decref(step);
  int r = wf_etcd_put_if(c->etcd, c->etcd_key, strlen(c->etcd_key), kv->mod_revision, val,
                         strlen(val), on_cancel_put, c);
  free(val);
  if (r != 0) {
    on_cancel_put(r, 0, 0, NULL, c);
  }
}

static void on_read(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (!wf__ctl_step_found(c, err, kv)) {
    cancel_done(c, 0);
    return;
  }
  cancel_decide(c, kv);
}

void wf__cancel_start(wf__ctl_t *c) { wf__ctl_read_key(c, c->etcd_key, on_read); }
