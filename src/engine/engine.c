/*
 * engine: the public face of the engine (include/wf/engine.h): creating it
 * around an etcd client and the node's runners, starting the catalog, the
 * step informer and recovery, draining, closing, stats and SIGHUP reloads.
 * What happens to each step is in the files beside this one
 * (engine-internal.h lists them).
 *
 * Closing counts parts: the work queue, the step informer, the catalog,
 * the drain and recovery timers, and the jobs as one part (the last job
 * freed closes it); the engine is freed when the last part is closed.
 */
#include "wf/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-internal.h"

static void catalog_synced(void *data) {
  wf_engine_t *e = data;
  wf__recover_settle(e);
  wf__pump_waiting(e);
}

/* dir as an absolute path (a step may change its working directory, and a
 * container needs one for its bind mount), without trailing slashes. */
static char *absolute_dir(const char *dir) {
  char cwd[4096];
  char *abs = dir[0] == '/' || !getcwd(cwd, sizeof cwd) ? wf_strdup(dir)
                                                           : wf_asprintf("%s/%s", cwd, dir);
  size_t n = strlen(abs);
  while (n > 1 && abs[n - 1] == '/') abs[--n] = '\0';
  return abs;
}

static void engine_free(wf_engine_t *e) {
  free(e->wait);
  wf_map_finish(&e->waiting);
  wf_map_finish(&e->complained);
  wf__recover_finish(e);
  free(e->runners);
  free(e->node_name);
  free(e->quoted_name);
  free(e->prefix);
  free(e->log_dir);
  free(e->output_dir);
  free(e->steps_prefix);
  free(e->mask_params);
  free(e);
}

wf_engine_t *wf_engine_create(uv_loop_t *loop, wf_etcd_t *etcd, const wf_engine_cfg_t *cfg,
                              char *err, size_t errlen) {
  wf_engine_t *e = wf_calloc(1, sizeof *e);
  e->loop = loop;
  e->etcd = etcd;
  e->node_name = wf_strdup(cfg->node_name);
  /* The skip test (dispatch.c) needs the name's bytes to appear verbatim in
   * any JSON that holds it: no character JSON must escape. */
  int plain = 1;
  for (const unsigned char *c = (const unsigned char *)e->node_name; *c; c++)
    if (*c < 0x20 || *c == '"' || *c == '\\' || *c == 0x7f) plain = 0;
  if (plain && *e->node_name) {
    e->quoted_name = wf_asprintf("\"%s\"", e->node_name);
    e->quoted_len = strlen(e->quoted_name);
  }
  e->prefix = wf_strdup(cfg->prefix);
  e->log_dir = wf_strdup(cfg->log_dir);
  e->output_dir = absolute_dir(cfg->output_dir ? cfg->output_dir : "runner_output");
  e->mask_params = wf_strdup(cfg->mask_params ? cfg->mask_params : "");
  e->steps_prefix = wf_asprintf("%s/workflow/steps/", cfg->prefix);
  e->max_parallel = cfg->max_parallel ? cfg->max_parallel : 16;
  e->step_timeout_s = cfg->step_timeout_s;
  e->stop_grace_s = cfg->stop_grace_s;
  e->start_ms = wf_now_ms();
  snprintf(e->claim_id, sizeof e->claim_id, "%ld.%lld", (long)getpid(), (long long)e->start_ms);
  e->runners = wf_calloc(cfg->nrunners + 1, sizeof *e->runners);
  for (size_t i = 0; i < cfg->nrunners; i++)
    if (cfg->runners[i]) e->runners[e->nrunners++] = cfg->runners[i];
  e->keep_leftovers = cfg->keep_leftovers;
  wf_map_init(&e->waiting);
  wf_map_init(&e->complained);
  e->catalog = wf__catalog_create(loop, etcd, cfg->prefix, cfg->actions_dir, cfg->resync_s,
                                  catalog_synced, e, err, errlen);
  if (!e->catalog) {
    /* No handle exists yet: freed at once. */
    wf_map_init(&e->leftovers);
    wf_map_init(&e->recover_keys);
    engine_free(e);
    return NULL;
  }
  wf__recover_init(e);
  e->steps = wf_informer_create(loop, etcd, e->steps_prefix, cfg->resync_s,
                                cfg->page_size ? cfg->page_size : 1000,
                                &wf__step_informer_cbs, e);
  e->queue = wf__queue_create(loop, wf__dispatch, e);
  uv_timer_init(loop, &e->drain_timer);
  e->drain_timer.data = e;
  return e;
}

void wf_engine_start(wf_engine_t *e) {
  wf__recover_start(e);
  wf__catalog_start(e->catalog);
  wf_informer_start(e->steps);
}

/* ---- drain ----------------------------------------------------------------------------------- */

void wf__engine_maybe_drained(wf_engine_t *e) {
  if (!e->draining || e->njobs || !e->drain_cb) return;
  uv_timer_stop(&e->drain_timer);
  void (*cb)(void *) = e->drain_cb;
  e->drain_cb = NULL;
  cb(e->drain_data);
}

static void on_drain_timeout(uv_timer_t *t) {
  wf_engine_t *e = t->data;
  if (e->njobs) wf_warn(NULL, "drain timeout: stopping %u running steps", e->slots);
  for (wf__job_t *j = e->jobs; j; j = j->next) wf__job_stop(j, STOP_DRAIN);
}

void wf_engine_drain(wf_engine_t *e, unsigned timeout_s, void (*cb)(void *data), void *data) {
  e->draining = 1;
  e->drain_cb = cb;
  e->drain_data = data;
  /* Waiting steps stay PENDDING in etcd for the next node or restart. */
  char *k;
  while ((k = wf__wait_pop(e))) free(k);
  if (e->njobs) {
    wf_info(NULL, "draining: waiting up to %u s for %u running steps", timeout_s, e->slots);
    uv_timer_start(&e->drain_timer, on_drain_timeout, (uint64_t)timeout_s * 1000, 0);
  }
  wf__engine_maybe_drained(e);
}

/* ---- close ------------------------------------------------------------------------------------ */

void wf__engine_part_closed(void *data) {
  wf_engine_t *e = data;
  if (--e->closing_parts) return;
  void (*cb)(void *) = e->close_cb;
  void *cd = e->close_data;
  engine_free(e);
  if (cb) cb(cd);
}

static void on_drain_timer_closed(uv_handle_t *h) { wf__engine_part_closed(h->data); }

void wf_engine_close(wf_engine_t *e, void (*cb)(void *data), void *data) {
  e->closing = 1;
  e->close_cb = cb;
  e->close_data = data;
  char *k;
  while ((k = wf__wait_pop(e))) free(k);
  /* Jobs still alive (close without drain) are stopped; their callbacks
   * arrive with UV_ECANCELED once the etcd client closes, and they finish
   * then.  A normal shutdown drains first, so there are none. */
  for (wf__job_t *j = e->jobs; j; j = j->next) wf__job_stop(j, STOP_DRAIN);
  /* queue, informer, catalog, drain timer, recovery timer, and the jobs. */
  e->closing_parts = 5 + (e->njobs ? 1 : 0);
  wf__queue_close(e->queue, wf__engine_part_closed, e);
  wf_informer_t *inf = e->steps;
  e->steps = NULL;
  wf_informer_close(inf, wf__engine_part_closed, e);
  wf__catalog_close(e->catalog, wf__engine_part_closed, e);
  uv_close((uv_handle_t *)&e->drain_timer, on_drain_timer_closed);
  wf__recover_close(e);
}

/* ---- stats, observer ------------------------------------------------------------------------- */

void wf_engine_stats(const wf_engine_t *e, wf_engine_stats_t *out) {
  *out = e->stats;
  out->running = e->slots;
  out->waiting = e->wait_len;
  out->cached = wf_informer_size(e->steps);
}

int wf_engine_live(const wf_engine_t *e) {
  return wf_informer_live(e->steps) && wf__catalog_live(e->catalog);
}

const char *wf_engine_step_log(const wf_engine_t *e, const char *key) {
  for (const wf__job_t *j = e->jobs; j; j = j->next)
    if (j->state != JOB_DONE && strcmp(j->key, key) == 0) return j->log_path;
  return NULL;
}

char **wf_engine_job_keys(const wf_engine_t *e) {
  char **v = wf_calloc((size_t)e->njobs + 1, sizeof *v);
  size_t n = 0;
  for (const wf__job_t *j = e->jobs; j && n < e->njobs; j = j->next) v[n++] = wf_strdup(j->key);
  return v;
}

int wf_engine_recovered(const wf_engine_t *e) { return e->recover_ready; }

void wf_engine_set_observer(wf_engine_t *e, wf_engine_observe_cb cb, void *data) {
  e->observe = cb;
  e->observe_data = data;
}

/* ---- reload (SIGHUP) ------------------------------------------------------------------------- */

wf_engine_actions_t *wf_engine_actions_load(const char *dir, char *err, size_t errlen) {
  return wf__catalog_dir_load(dir, err, errlen);
}

void wf_engine_actions_free(wf_engine_actions_t *a) { wf__catalog_dir_free(a); }

void wf_engine_reconfigure(wf_engine_t *e, const wf_engine_cfg_t *cfg,
                           wf_engine_actions_t *actions) {
  if (e->closing) {
    wf__catalog_dir_free(actions);
    return;
  }
  /* Read where a job starts (run.c, dispatch.c), so running jobs keep the
   * values they started with. */
  e->max_parallel = cfg->max_parallel ? cfg->max_parallel : 16;
  e->step_timeout_s = cfg->step_timeout_s;
  e->stop_grace_s = cfg->stop_grace_s;
  free(e->mask_params);
  e->mask_params = wf_strdup(cfg->mask_params ? cfg->mask_params : "");
  if (actions) {
    size_t n = wf__catalog_dir_swap(e->catalog, actions);
    wf_info(NULL, "actions dir reloaded: %zu actions from files", n);
  }
  /* More slots: start waiting steps now rather than at the next event. */
  wf__pump_waiting(e);
}
