/*
 * run: `wfctl run ACTION --node NAME` creates a user step (create-only put)
 * and follows it to its end like a one-shot job: the key on stdout, each
 * status change on stderr, the log file (tail.c) on stdout as it grows.
 * The step is followed through a watch from the revision after our own
 * put, so every later change is seen and none twice; a compaction is
 * bridged by reading the step as it is now and watching on from there.
 * --timeout SEC cancels the step (cancel.c) when it has not ended by then.
 * The exit code is 0 only when the step ends SUCCEEDED.
 *
 * A log that is not on this machine is followed from the node that runs
 * the step (remote.c); at the step's end the command waits for the rest of
 * it.  A log that cannot be read is reported and does not change the exit
 * code, which says how the step ended.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/cli.h"
#include "wf/util.h"
#include "wfctl-internal.h"

static void on_status(wf__ctl_t *c, const json_t *step);

static void run_end(wf__ctl_t *c) {
  wf__ctl_end(c, strcmp(c->last_status, "SUCCEEDED") == 0 ? 0 : 1);
}

/* The node's log was printed whole, or its reading failed and said why. */
static void on_remote_done(wf__ctl_t *c, int ok) {
  (void)ok;
  if (wf__status_complete(c->last_status)) run_end(c);
}

/* The step is gone: what the log holds is printed, and the run failed. */
static void run_deleted(wf__ctl_t *c) {
  wf__tail_drain(c);
  fprintf(stderr, "wfctl: step %s was deleted (etcd %s)\n", c->step_key, wf__ctl_endpoint(c));
  wf__ctl_end(c, 1);
}

/* A new value of the step (borrowed); one that is not a JSON object is
 * reported and passed over. */
static void on_value(wf__ctl_t *c, const wf_etcd_kv_t *kv) {
  json_t *step = wf__ctl_parse_step(c, kv);
  if (!step) return;
  on_status(c, step);
  json_decref(step);
}

static void on_events(wf_etcd_watch_t *w, const wf_etcd_event_t *ev, size_t n, void *data) {
  wf__ctl_t *c = data;
  for (size_t i = 0; i < n && !c->finishing; i++) {
    if (strcmp(ev[i].kv.key, c->etcd_key) != 0) continue;  /* a longer key, same prefix */
    if (ev[i].type == WF_ETCD_DELETE) {
      run_deleted(c);
      return;
    }
    on_value(c, &ev[i].kv);
  }
}

static void on_reread(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    wf__ctl_fail(c, err, "reading step \"%s\"", c->step_key);
    wf__ctl_end(c, 1);
    return;
  }
  if (!kv) {
    run_deleted(c);
    return;
  }
  on_value(c, kv);
  if (!c->finishing && c->watch) wf_etcd_watch_restart(c->watch, kv->mod_revision + 1);
}

static void on_compacted(wf_etcd_watch_t *w, int64_t rev, void *data) {
  wf__ctl_t *c = data;
  /* Events were lost to compaction: read the step as it is now, then watch
   * on.  (A read in flight is the timeout's cancel: nothing to resume.) */
  if (c->finishing || c->reading) return;
  wf__ctl_read_key(c, c->etcd_key, on_reread);
}

static void on_watch_state(wf_etcd_watch_t *w, int connected, int err, void *data) {
  wf__ctl_t *c = data;
  if (c->finishing) return;
  /* Say it once per outage, not once per reconnect attempt. */
  if (!connected && !c->watch_lost) {
    c->watch_lost = 1;
    fprintf(stderr, "wfctl: watch on step %s lost: %s (etcd %s); reconnecting\n", c->step_key,
            err ? wf__ctl_err_text(c, err) : "disconnected", wf__ctl_endpoint(c));
  } else if (connected && c->watch_lost) {
    c->watch_lost = 0;
    fprintf(stderr, "wfctl: watch on step %s resumed (etcd %s)\n", c->step_key,
            wf__ctl_endpoint(c));
  }
}

static void on_status(wf__ctl_t *c, const json_t *step) {
  char *st = wf__status_name(step);
  if (c->rstate == REMOTE_OFF) wf__tail_set_path(c, step);
  if (!c->last_status || strcmp(c->last_status, st) != 0) {
    const char *msg = wf__step_message(step);
    const char *node = wf__step_node(step);
    fprintf(stderr, "wfctl: step %s %s%s%s%s%s\n", c->step_key, st, node[0] ? " on " : "", node,
            msg[0] ? ": " : "", msg);
    free(c->last_status);
    c->last_status = st;
  } else {
    free(st);
  }
  wf__tail_pump(c);
  if (!wf__status_complete(c->last_status)) return;
  if (wf__remote_busy(c)) {
    wf__remote_step(c, 1);  /* on_remote_done ends, after the rest of the log */
    return;
  }
  if (c->rstate == REMOTE_OFF && c->log_path) {
    enum wf__log_where w = wf__tail_where(c, 0);
    if (w == LOG_ELSEWHERE) {
      wf__remote_start(c);
      wf__remote_step(c, 1);
      return;
    }
    if (w != LOG_LOCAL || wf__tail_drain(c) != 0)
      fprintf(stderr, "wfctl: log %s is not readable here: %s\n", c->log_path, c->open_error);
  }
  run_end(c);
}

static void on_deadline(uv_timer_t *t) {
  wf__ctl_t *c = t->data;
  if (c->finishing) return;
  fprintf(stderr, "wfctl: step %s did not end within %u s (status %s); canceling it\n",
          c->step_key, c->timeout, c->last_status ? c->last_status : "?");
  wf__ctl_watch_stop(c);
  wf__cancel_start(c);
}

static void on_put(int err, int succeeded, int64_t rev, const wf_etcd_kv_t *cur, void *data) {
  wf__ctl_t *c = data;
  if (c->finishing) return;
  if (err || !succeeded) {
    if (err) wf__ctl_fail(c, err, "creating step \"%s\"", c->step_key);
    else fprintf(stderr, "wfctl: creating step \"%s\": the key already exists (etcd %s)\n",
                 c->step_key, wf__ctl_endpoint(c));
    wf__ctl_end(c, 1);
    return;
  }
  printf("%s\n", c->step_key);
  wf__ctl_flush_stdout();
  c->last_status = wf_strdup("PENDDING");
  fprintf(stderr, "wfctl: step %s PENDDING for node %s\n", c->step_key, c->node);
  wf_etcd_watch_cbs_t cbs = {on_events, on_compacted, on_watch_state};
  /* From the revision after our put: every later change is seen, none twice. */
  c->watch = wf_etcd_watch(c->etcd, c->etcd_key, strlen(c->etcd_key), rev + 1, &cbs, c);
  if (!c->watch) {
    fprintf(stderr, "wfctl: cannot watch step %s (etcd %s)\n", c->step_key, wf__ctl_endpoint(c));
    wf__ctl_end(c, 1);
    return;
  }
  wf__tail_start(c, NULL);
  if (c->timeout)
    wf__ctl_timer_start(c, &c->deadline, &c->deadline_on, on_deadline,
                        (uint64_t)c->timeout * 1000, 0);
}

void wf__run_start(wf__ctl_t *c) {
  char id[21];
  c->remote_done = on_remote_done;
  c->remote_follow = 1;
  wf_cli_xid(id);
  wf__ctl_set_step_key(c, id);
  const char *at = strchr(c->action, '@');
  json_t *step = json_pack("{s:s, s:s, s:s, s:I, s:s%, s:s, s:O, s:{s:s, s:s}}",
                           "key", id, "create_type", "USER", "namespace", "",
                           "create_at", (json_int_t)wf_now_ms(),
                           "name", c->action, at ? (size_t)(at - c->action) : strlen(c->action),
                           "action", c->action, "with", c->with,
                           "status", "status", "PENDDING", "scheduled_node", c->node);
  if (!step) {
    fprintf(stderr, "wfctl: cannot build the step (invalid UTF-8 in an argument?)\n");
    wf__ctl_end(c, 1);
    return;
  }
  char *val = json_dumps(step, JSON_COMPACT);
  json_decref(step);
  int r = wf_etcd_put_if(c->etcd, c->etcd_key, strlen(c->etcd_key), 0, val, strlen(val),
                         on_put, c);
  free(val);
  if (r != 0) on_put(r, 0, 0, NULL, c);
}
