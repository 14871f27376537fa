/*
 * node-retention: when the agent runs a log retention pass
 * (--log-retention, --log-max-bytes; the pass itself is
 * src/logstore/retention.c).  The first pass waits for restart recovery to
 * be over, so that a step left RUNNING by the last process is a job again
 * before its log can be judged; then one pass an hour.  The keep set of
 * each pass is the engine's jobs at that moment (a step claimed later is
 * protected by the pass itself: it never removes by size a file written
 * after the keep set was taken).  Passes never overlap; new limits
 * (SIGHUP) run a pass at once, after the one running if any; both limits
 * 0 pause the schedule.
 *
 *   IDLE     the timer is armed for the next pass (or paused: limits 0)
 *   RUNNING  a pass is on the threadpool; `again` asks for one more after it
 *   CLOSING  no pass starts; freed once the pass (if any) and the timer end
 */
#include <stdlib.h>
#include <string.h>

#include "node-internal.h"
#include "wf/logretain.h"

/* Before the first pass: how often to look whether recovery is over. */
#define RECOVERY_POLL_MS 1000
#define PERIOD_MS (3600 * 1000)

enum rstate { R_IDLE, R_RUNNING, R_CLOSING };

struct wf__node_retain_s {
  uv_loop_t *loop;
  wf_engine_t *engine;
  char *dir;
  int64_t max_age_ms;
  uint64_t max_bytes;
  uv_timer_t timer;
  enum rstate state;
  int again;                /* RUNNING: a pass was asked for meanwhile */
  int pass_out;             /* CLOSING: the pass's callback is still due */
  int timer_closed;
  wf__node_retain_figures_t fig;
};

static void on_timer(uv_timer_t *t);

static void maybe_free(wf__node_retain_t *r) {
  if (r->state != R_CLOSING || r->pass_out || !r->timer_closed) return;
  free(r->dir);
  free(r);
}

static void on_timer_closed(uv_handle_t *h) {
  wf__node_retain_t *r = h->data;
  r->timer_closed = 1;
  maybe_free(r);
}

static void report(const wf__node_retain_t *r, const wf_logretain_result_t *res) {
  if (res->files_removed || res->dirs_removed)
    wf_info(NULL, "log retention: removed %llu logs (%llu bytes) and %llu empty directories; "
            "kept %llu logs (%llu bytes)", (unsigned long long)res->files_removed,
            (unsigned long long)res->bytes_removed, (unsigned long long)res->dirs_removed,
            (unsigned long long)res->files_kept, (unsigned long long)res->bytes_kept);
  if (res->errors)
    wf_warn(NULL, "log retention: %llu errors; the first: %s", (unsigned long long)res->errors,
            res->error ? res->error : "?");
  if (r->max_bytes && res->bytes_kept > r->max_bytes)
    wf_warn(NULL, "log retention: %llu bytes kept, over --log-max-bytes %llu (the logs of "
            "running steps and of steps just started are never removed)",
            (unsigned long long)res->bytes_kept, (unsigned long long)r->max_bytes);
}

static void on_pass(const wf_logretain_result_t *res, void *data) {
  wf__node_retain_t *r = data;
  r->fig.passes++;
  r->fig.files_removed += res->files_removed;
  r->fig.bytes_removed += res->bytes_removed;
  r->fig.dirs_removed += res->dirs_removed;
  r->fig.errors += res->errors;
  r->fig.files_kept = res->files_kept;
  r->fig.bytes_kept = res->bytes_kept;
  switch (r->state) {
    case R_RUNNING:
      report(r, res);
      r->state = R_IDLE;
      if (r->again) {
        r->again = 0;
        uv_timer_start(&r->timer, on_timer, 0, 0);
      }
      break;
    case R_CLOSING:
      r->pass_out = 0;
      maybe_free(r);
      break;
    case R_IDLE:
      break;  /* cannot happen: a pass is out only in RUNNING or CLOSING */
  }
}

static void on_timer(uv_timer_t *t) {
  wf__node_retain_t *r = t->data;
  switch (r->state) {
    case R_RUNNING:
      /* A pass longer than the period: one more right after it. */
      r->again = 1;
      return;
    case R_CLOSING:
      return;
    case R_IDLE:
      break;
  }
  if (!r->max_age_ms && !r->max_bytes) return;  /* paused */
  if (!wf_engine_recovered(r->engine)) {
    uv_timer_start(&r->timer, on_timer, RECOVERY_POLL_MS, 0);
    return;
  }
  char **keep = wf_engine_job_keys(r->engine);
  size_t n = 0;
  while (keep[n]) n++;
  wf_logretain_opts_t o = {.dir = r->dir,
                           .max_age_ms = r->max_age_ms,
                           .max_bytes = r->max_bytes,
                           .now_ms = wf_now_ms(),
                           .keep = keep,
                           .nkeep = n};
  int rc = wf_logretain_run(r->loop, &o, on_pass, r);
  wf_strv_free(keep);
  if (rc == 0) r->state = R_RUNNING;
  else wf_warn(NULL, "log retention: cannot start a pass: %s", uv_strerror(rc));
  uv_timer_start(&r->timer, on_timer, PERIOD_MS, 0);
}

wf__node_retain_t *wf__node_retain_create(uv_loop_t *loop, wf_engine_t *engine, const char *dir,
                                          int64_t max_age_ms, uint64_t max_bytes) {
  wf__node_retain_t *r = wf_calloc(1, sizeof *r);
  r->loop = loop;
  r->engine = engine;
  r->dir = wf_strdup(dir);
  r->max_age_ms = max_age_ms;
  r->max_bytes = max_bytes;
  r->state = R_IDLE;
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  uv_timer_start(&r->timer, on_timer, 0, 0);
  return r;
}

void wf__node_retain_set(wf__node_retain_t *r, int64_t max_age_ms, uint64_t max_bytes) {
  if (!r) return;
  r->max_age_ms = max_age_ms;
  r->max_bytes = max_bytes;
  switch (r->state) {
    case R_RUNNING:
      r->again = 1;
      break;
    case R_IDLE:
      /* An operator who changed the limits wants to see them applied now. */
      uv_timer_start(&r->timer, on_timer, 0, 0);
      break;
    case R_CLOSING:
      break;
  }
}

void wf__node_retain_figures(const wf__node_retain_t *r, wf__node_retain_figures_t *out) {
  if (r) *out = r->fig;
  else memset(out, 0, sizeof *out);
}

void wf__node_retain_close(wf__node_retain_t *r) {
  if (!r || r->state == R_CLOSING) return;
  r->pass_out = r->state == R_RUNNING;
  r->state = R_CLOSING;
  uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
