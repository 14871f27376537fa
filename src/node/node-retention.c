/*
 * node-retention: when the agent runs a log retention pass
 * (--log-retention, --log-max-bytes; the pass itself is
 * src/logstore/retention.c).  The first pass waits for restart recovery to
 * be over, so that a step left RUNNING by the last process is a job again
 * before its log can be judged; then one pass an hour.  The keep set of
 * each pass is the engine's jobs at that moment: a running step's log, and
 * a reattached one's, are never removed.  Passes never overlap.  New limits
 * (SIGHUP) run a pass at once, after the one running if any.
 */
#include <stdlib.h>
#include <string.h>

#include "node-internal.h"
#include "wf/logretain.h"

/* Before the first pass: how often to look whether recovery is over. */
#define RECOVERY_POLL_MS 1000
#define PERIOD_MS (3600 * 1000)

struct wf__node_retain_s {
  uv_loop_t *loop;
  wf_engine_t *engine;
  char *dir;
  int64_t max_age_ms;
  uint64_t max_bytes;
  uv_timer_t timer;
  int running;              /* a pass is on the threadpool */
  int again;                /* a pass was asked for while one ran */
  int closing;              /* freed when the pass and the timer are done */
  int timer_closed;
  wf__node_retain_figures_t fig;
};

static void maybe_free(wf__node_retain_t *r) {
  if (!r->closing || r->running || !r->timer_closed) return;
  free(r->dir);
  free(r);
}

static void on_timer_closed(uv_handle_t *h) {
  wf__node_retain_t *r = h->data;
  r->timer_closed = 1;
  maybe_free(r);
}

static void on_timer(uv_timer_t *t);

static void on_pass(const wf_logretain_result_t *res, void *data) {
  wf__node_retain_t *r = data;
  r->running = 0;
  r->fig.passes++;
  if (r->again && !r->closing) {
    r->again = 0;
    uv_timer_start(&r->timer, on_timer, 0, 0);
  }
  r->fig.files_removed += res->files_removed;
  r->fig.bytes_removed += res->bytes_removed;
  r->fig.dirs_removed += res->dirs_removed;
  r->fig.errors += res->errors;
  r->fig.files_kept = res->files_kept;
  r->fig.bytes_kept = res->bytes_kept;
  if (res->files_removed || res->dirs_removed)
    wf_info(NULL, "log retention: removed %llu logs (%llu bytes) and %llu empty directories; "
            "kept %llu logs (%llu bytes)", (unsigned long long)res->files_removed,
            (unsigned long long)res->bytes_removed, (unsigned long long)res->dirs_removed,
            (unsigned long long)res->files_kept, (unsigned long long)res->bytes_kept);
  if (res->errors)
    wf_warn(NULL, "log retention: %llu errors; the first: %s", (unsigned long long)res->errors,
            res->error ? res->error : "?");
  if (r->max_bytes && res->bytes_kept > r->max_bytes)
    wf_warn(NULL, "log retention: %llu bytes kept, over --log-max-bytes %llu (running steps' "
            "logs are never removed)", (unsigned long long)res->bytes_kept,
            (unsigned long long)r->max_bytes);
  maybe_free(r);
}

static void on_timer(uv_timer_t *t) {
  wf__node_retain_t *r = t->data;
  if (r->closing || r->running) return;
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
  if (rc == 0) r->running = 1;
  else wf_warn(NULL, "log retention: cannot start a pass: %s", uv_strerror(rc));
  uv_timer_start(&r->timer, on_timer, PERIOD_MS, 0);
}

wf__node_retain_t *wf__node_retain_start(uv_loop_t *loop, wf_engine_t *engine, const char *dir,
                                         int64_t max_age_ms, uint64_t max_bytes) {
  wf__node_retain_t *r = wf_calloc(1, sizeof *r);
  r->loop = loop;
  r->engine = engine;
  r->dir = wf_strdup(dir);
  r->max_age_ms = max_age_ms;
  r->max_bytes = max_bytes;
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  uv_timer_start(&r->timer, on_timer, 0, 0);
  return r;
}

void wf__node_retain_set(wf__node_retain_t *r, int64_t max_age_ms, uint64_t max_bytes) {
  if (!r || r->closing) return;
  r->max_age_ms = max_age_ms;
  r->max_bytes = max_bytes;
  /* An operator who changed the limits wants to see them applied now. */
  if (r->running) r->again = 1;
  else uv_timer_start(&r->timer, on_timer, 0, 0);
}

void wf__node_retain_figures(const wf__node_retain_t *r, wf__node_retain_figures_t *out) {
  if (r) *out = r->fig;
  else memset(out, 0, sizeof *out);
}

void wf__node_retain_close(wf__node_retain_t *r) {
  if (!r || r->closing) return;
  r->closing = 1;
  uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
