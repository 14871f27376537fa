/*
 * recover: RUNNING steps from before a restart.
 *
 * Each runner whose runs can outlive the agent (one with a list operation:
 * a container keeps running when the agent dies) is asked once, at start,
 * what it left behind for this node; a failed list is asked again a few
 * times, a second apart, so that an engine restarting with the agent is
 * waited for while a node without one does not hold its other recoveries
 * for long.  Once every list is in (or given up on) and the action catalog
 * has synced, each RUNNING step this process does not know is decided:
 *
 *   its run is there    re-attach: the job starts at RESOLVING, and the
 *                       runner follows the run and continues its log file
 *   nothing is there    FAILED, "node restarted while the step was running"
 *   it is CANCELING     CANCELED (its run, if any, is an orphan now)
 *
 * Leftovers whose step is complete or gone are removed (orphans), unless
 * --keep-containers says to leave them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"

#define LIST_ATTEMPTS 4
#define LIST_RETRY_MS 1000

void wf__recover_init(wf_engine_t *e) {
  wf_map_init(&e->leftovers);
  wf_map_init(&e->recover_keys);
  uv_timer_init(e->loop, &e->recover_timer);
  e->recover_timer.data = e;
}

static void leftover_free(wf__leftover_t *l) {
  if (!l) return;
  free(l->id);
  free(l);
}

static int lists_done(const wf_engine_t *e) {
  for (size_t i = 0; i < e->nlists; i++)
    if (e->lists[i].state != RL_DONE) return 0;
  return 1;
}

static void ask(wf_engine_t *e, wf__recover_list_t *l);

static void on_recover_timer(uv_timer_t *t) {
  wf_engine_t *e = t->data;
  for (size_t i = 0; i < e->nlists; i++)
    if (e->lists[i].state == RL_RETRY) ask(e, &e->lists[i]);
}

static void list_result(wf_engine_t *e, wf__recover_list_t *l, int err,
                        const wf_runner_leftover_t *v, size_t n) {
  const wf_runner_ops_t *ops = l->runner->ops;
  if (err) {
    if (++l->attempts < LIST_ATTEMPTS) {
      l->state = RL_RETRY;
      if (!uv_is_active((uv_handle_t *)&e->recover_timer))
        uv_timer_start(&e->recover_timer, on_recover_timer, LIST_RETRY_MS, 0);
      return;
    }
    wf_warn(NULL, "cannot list this node's %ss (%s); RUNNING %s steps from before the restart "
            "end FAILED", ops->unit, wf_strerror(err), ops->name);
  } else {
    for (size_t i = 0; i < n; i++) {
      if (!v[i].step_key || !v[i].step_key[0]) continue;
      wf__leftover_t *c = wf_calloc(1, sizeof *c);
      c->runner = l->runner;
      c->id = wf_strdup(v[i].id);
      c->running = v[i].running;
      wf__leftover_t *old = wf_map_put(&e->leftovers, v[i].step_key, c);
      if (old) {
        /* Two runs claim one step: keep the newest listed, drop the other
         * as an orphan. */
        old->runner->ops->remove(old->runner, old->id, NULL, NULL);
        leftover_free(old);
      }
    }
    if (n) wf_info(NULL, "found %zu %ss of this node from before", n, ops->unit);
  }
  l->state = RL_DONE;
  wf__recover_settle(e);
}

static void on_list(wf_runner_t *r, int err, const wf_runner_leftover_t *v, size_t n,
                    void *data) {
  wf_engine_t *e = data;
  if (e->closing) return;
  for (size_t i = 0; i < e->nlists; i++)
    if (e->lists[i].runner == r && e->lists[i].state == RL_ASKING) {
      list_result(e, &e->lists[i], err, v, n);
      return;
    }
}

static void ask(wf_engine_t *e, wf__recover_list_t *l) {
  if (e->closing) return;
  l->state = RL_ASKING;
  if (l->runner->ops->list(l->runner, on_list, e) != 0) list_result(e, l, UV_EINVAL, NULL, 0);
}

void wf__recover_start(wf_engine_t *e) {
  e->lists = wf_calloc(e->nrunners + 1, sizeof *e->lists);
  for (size_t i = 0; i < e->nrunners; i++)
    if (e->runners[i]->ops->list) e->lists[e->nlists++].runner = e->runners[i];
  /* Asked after the array is complete: an answer may settle at once. */
  for (size_t i = 0; i < e->nlists; i++) ask(e, &e->lists[i]);
}

/* Leftovers whose step is not RUNNING any more (complete, gone, never
 * ours) and that no job re-attached to. */
static void remove_orphans(wf_engine_t *e) {
  if (!e->outputs_swept) {
    e->outputs_swept = 1;
    wf__outputs_sweep(e);
  }
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *k;
  void *v;
  while (wf_map_iter_next(&e->leftovers, &it, &k, &v)) {
    wf__leftover_t *c = v;
    const wf_runner_ops_t *ops = c->runner->ops;
    if (c->running < 0) continue;
    wf_cache_entry_t *entry = wf_informer_get(e->steps, k);
    int live = 0;
    if (entry && entry->value) {
      json_t *o = wf__load_obj(entry->value);
      wf_step_head_t h = {.node = "", .status = -1};
      if (o) wf_step_head(o, &h);
      live = h.status == WF__STEP__STATUS__RUNNING;
      json_decref(o);
    }
    if (live) continue;
    if (e->keep_leftovers) {
      wf_info(k, "%s %.12s left over (--keep-containers)", ops->unit, c->id);
      continue;
    }
    wf_info(k, "removing left-over %s %.12s", ops->unit, c->id);
    ops->remove(c->runner, c->id, NULL, NULL);
  }
}

void wf__recover_settle(wf_engine_t *e) {
  if (e->recover_ready || e->closing || !e->lists || !lists_done(e) ||
      !wf__catalog_synced(e->catalog))
    return;
  e->recover_ready = 1;
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *k;
  void *v;
  while (wf_map_iter_next(&e->recover_keys, &it, &k, &v)) wf__queue_add(e->queue, k);
  wf_map_finish(&e->recover_keys);  /* empty again: later steps are decided at once */
  if (e->steps_synced) remove_orphans(e);
}

void wf__recover_steps_synced(wf_engine_t *e) {
  e->steps_synced = 1;
  if (e->recover_ready) remove_orphans(e);
}

/* The step is ours and its run is there: a job from RESOLVING on, attached
 * to that run instead of a new one. */
static void resume_attach(wf_engine_t *e, wf_cache_entry_t *entry, int64_t start_at,
                          wf__leftover_t *c) {
  json_t *o = wf__load_obj(entry->value);
  if (!o) return;
  wf__job_t *j = wf__job_prepare(e, entry, start_at, o, JOB_RESOLVING);
  json_decref(o);
  if (!j) return;
  wf_info(entry->key, "re-attaching to %s %.12s after the restart", c->runner->ops->unit, c->id);
  j->attach_runner = c->runner;
  j->attach_id = wf_strdup(c->id);
  c->running = -1; /* claimed by a job: not an orphan */
  wf__job_resolve(j);
}

void wf__recover_running(wf_engine_t *e, const char *key, wf_cache_entry_t *entry,
                         int64_t start_at) {
  if (!e->recover_ready) {
    wf_map_put(&e->recover_keys, key, (void *)1);
    return;
  }
  wf__leftover_t *c = wf_map_get(&e->leftovers, key);
  if (c) {
    resume_attach(e, entry, start_at, c);
    return;
  }
  wf_warn(key, "was RUNNING when this node (re)started; marking it FAILED");
  wf__write_only(e, entry, WF__STEP__STATUS__FAILED, "node restarted while the step was running");
}

void wf__recover_canceling(wf_engine_t *e, const char *key, wf_cache_entry_t *entry) {
  if (!e->recover_ready) {
    wf_map_put(&e->recover_keys, key, (void *)1);
    return;
  }
  /* Its run (if any) is an orphan now: removed in remove_orphans. */
  wf__write_only(e, entry, WF__STEP__STATUS__CANCELED,
                 "canceled; the node restarted while the step was running");
}

static void on_recover_timer_closed(uv_handle_t *h) { wf__engine_part_closed(h->data); }

void wf__recover_close(wf_engine_t *e) {
  uv_close((uv_handle_t *)&e->recover_timer, on_recover_timer_closed);
}

void wf__recover_finish(wf_engine_t *e) {
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *k;
  void *v;
  while (wf_map_iter_next(&e->leftovers, &it, &k, &v)) leftover_free(v);
  wf_map_finish(&e->leftovers);
  wf_map_finish(&e->recover_keys);
  free(e->lists);
}
