/*
 * job: the per-step state machine (see engine-internal.h for the states)
 * and its last phase, FINISHING: the final status txn.
 *
 * Every state change goes through wf__job_enter, which refuses a move the
 * diagram does not draw, and every event from outside (a cancel, a delete,
 * a move to another node, the drain deadline) through wf__job_stop, which
 * decides by the state what the event means.
 *
 * The final write patches status, end_at, message and response onto the
 * newest stored value, guarded by its mod_revision.  A lost compare re-reads:
 * a delete is never written back, a final status somebody else wrote is
 * kept, anything else gets our patch re-applied.  Transport errors retry
 * with backoff: the final status is not dropped while the agent lives.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"

static void job_write_final(wf__job_t *j);

/* ---- lifecycle ----------------------------------------------------------------------- */

wf__job_t *wf__job_create(wf_engine_t *e, wf_cache_entry_t *entry, enum wf__job_state state,
                          int take_slot) {
  wf__job_t *j = wf_calloc(1, sizeof *j);
  j->e = e;
  j->state = state;
  j->key = wf_strdup(entry->key);
  j->etcd_key = wf_asprintf("%s%s", e->steps_prefix, entry->key);
  j->json = entry->value ? wf_strndup(entry->value, entry->value_len) : NULL;
  j->mod_rev = entry->mod_revision;
  j->final_status = -1;
  wf_params_init(&j->response);
  wf_params_init(&j->offers);
  uv_timer_init(e->loop, &j->timer);
  j->timer.data = j;
  wf_backoff_init(&j->backoff, 100, 10000);
  entry->owner = j;
  j->next = e->jobs;
  if (e->jobs) e->jobs->prev = j;
  e->jobs = j;
  e->njobs++;
  if (take_slot) {
    j->holds_slot = 1;
    e->slots++;
  }
  return j;
}

static const char *state_name(enum wf__job_state s) {
  switch (s) {
    case JOB_CLAIMING: return "CLAIMING";
    case JOB_RESOLVING: return "RESOLVING";
    case JOB_RUNNING: return "RUNNING";
    case JOB_ENDING: return "ENDING";
    case JOB_FINISHING: return "FINISHING";
    case JOB_DONE: return "DONE";
  }
  return "?";
}

void wf__job_enter(wf__job_t *j, enum wf__job_state to) {
  int ok = 0;
  switch (j->state) {
    case JOB_CLAIMING:
      ok = to == JOB_RESOLVING || to == JOB_FINISHING || to == JOB_DONE;
      break;
    case JOB_RESOLVING:
      ok = to == JOB_RUNNING || to == JOB_FINISHING || to == JOB_DONE;
      break;
    case JOB_RUNNING:
      ok = to == JOB_ENDING;
      break;
    case JOB_ENDING:
      ok = to == JOB_FINISHING || to == JOB_DONE;
      break;
    case JOB_FINISHING:
      ok = to == JOB_FINISHING || to == JOB_DONE;  /* a retry writes again */
      break;
    case JOB_DONE:
      break;
  }
  if (!ok) {
    wf_error(j->key, "job: no move from %s to %s", state_name(j->state), state_name(to));
    abort();
  }
  j->state = to;
}

static void job_free(uv_handle_t *h) {
  wf__job_t *j = h->data;
  wf_engine_t *e = j->e;
  free(j->key);
  free(j->etcd_key);
  free(j->json);
  free(j->log_path);
  free(j->message);
  wf_params_finish(&j->response);
  wf_codec_free((ProtobufCMessage *)j->step);
  wf_codec_free((ProtobufCMessage *)j->action);
  wf_codec_free((ProtobufCMessage *)j->pipeline);
  wf_params_finish(&j->offers);
  free(j->out_dir);
  wf_mask_destroy(j->mask);
  free(j->attach_id);
  free(j);
  if (--e->njobs == 0) {
    /* The jobs count as one part of a closing engine (engine.c). */
    if (e->closing)
      wf__engine_part_closed(e);
    else
      wf__engine_maybe_drained(e);
  }
}

void wf__job_done(wf__job_t *j) {
  wf_engine_t *e = j->e;
  wf__job_enter(j, JOB_DONE);
  wf_cache_entry_t *entry = e->steps ? wf_informer_get(e->steps, j->key) : NULL;
  if (entry && entry->owner == j) entry->owner = NULL;
  if (j->prev)
    j->prev->next = j->next;
  else
    e->jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  if (j->holds_slot) {
    j->holds_slot = 0;
    e->slots--;
  }
  uv_close((uv_handle_t *)&j->timer, job_free);
  if (!e->closing) wf__pump_waiting(e);
}

/* ---- events ------------------------------------------------------------------------------ */

void wf__job_stop(wf__job_t *j, enum wf__stop_reason why) {
  switch (j->state) {
    case JOB_CLAIMING:
    case JOB_RESOLVING:
    case JOB_ENDING:
      /* Nothing runs: the phase in flight looks at the reason when it
       * completes (and ENDING decides by it whether to write). */
      break;
    case JOB_RUNNING:
      break;
    case JOB_FINISHING:
    case JOB_DONE:
      return;  /* the outcome is decided already */
  }
  if (j->stop == STOP_NONE || why == STOP_DELETE || why == STOP_AWAY) j->stop = why;
  if (j->state == JOB_RUNNING && j->run) j->runner->ops->cancel(j->run);
}

void wf__job_adopt(wf__job_t *j, const wf_cache_entry_t *entry) {
  switch (j->state) {
    case JOB_CLAIMING:
      /* The claim's answer decides (an echo of our own claim often comes
       * before it). */
      return;
    case JOB_RESOLVING:
    case JOB_RUNNING:
    case JOB_ENDING:
    case JOB_FINISHING:
      break;
    case JOB_DONE:
      return;
  }
  if (!entry->value || entry->mod_revision <= j->mod_rev) return;
  /* Keep the job's base current so its final txn compares the right
   * revision and keeps the other writer's change. */
  free(j->json);
  j->json = wf_strndup(entry->value, entry->value_len);
  j->mod_rev = entry->mod_revision;
}

/* ---- outcome ------------------------------------------------------------------------------ */

void wf__job_set_outcome(wf__job_t *j, int status, const char *fmt, ...) {
  j->final_status = status;
  free(j->message);
  va_list ap;
  va_start(ap, fmt);
  char *m = NULL;
  if (vasprintf(&m, fmt, ap) < 0) m = NULL;
  va_end(ap);
  /* Messages reach etcd and the agent log: never with a secret in them. */
  j->message = m && j->mask ? wf_mask_string(j->mask, m) : m;
  if (m != j->message) free(m);
}

void wf__job_finish(wf__job_t *j) {
  uv_timer_stop(&j->timer);
  if (j->stop == STOP_DELETE || j->stop == STOP_AWAY) {
    wf_info(j->key, "stopped (%s); status not written",
            j->stop == STOP_DELETE ? "key deleted" : "no longer this node's");
    wf__job_done(j);
    return;
  }
  if (j->final_status < 0)
    wf__job_set_outcome(j, WF__STEP__STATUS__FAILED, "no outcome recorded");
  job_write_final(j);
}

void wf__job_fail_early(wf__job_t *j, const char *msg) {
  wf__job_set_outcome(j, WF__STEP__STATUS__FAILED, "%s", msg);
  wf__job_finish(j);
}

/* ---- FINISHING: the final write ----------------------------------------------------------- */

static void on_retry_timer(uv_timer_t *t) { job_write_final(t->data); }

static void count_outcome(wf__job_t *j) {
  wf_engine_t *e = j->e;
  /* metrics: only claimed jobs have a start_at (write-only ones do not run). */
  if (e->observe && j->start_at)
    e->observe(WF_ENGINE_OBS_STEP, (double)(wf_now_ms() - j->start_at) / 1000.0,
               e->observe_data);
  switch (j->final_status) {
    case WF__STEP__STATUS__SUCCEEDED: e->stats.succeeded++; break;
    case WF__STEP__STATUS__CANCELED: e->stats.canceled++; break;
    default: e->stats.failed++; break;
  }
  if (j->final_status == WF__STEP__STATUS__SUCCEEDED)
    wf_info(j->key, "SUCCEEDED");
  else
    wf_info(j->key, "%s: %s", wf_status_name(j->final_status), j->message ? j->message : "");
}

static void on_final_written(int err, int ok, int64_t rev, const wf_etcd_kv_t *cur, void *data) {
  wf__job_t *j = data;
  wf_engine_t *e = j->e;
  if (err == UV_ECANCELED && e->closing) {
    wf__job_done(j);
    return;
  }
  if (err) {
    uint64_t d = wf_backoff_next(&j->backoff);
    wf_warn(j->key, "writing status %s failed (%s%s%s); retrying in %llu ms",
            wf_status_name(j->final_status), wf_strerror(err), err == WF_EETCD ? ": " : "",
            err == WF_EETCD ? wf_etcd_errmsg(e->etcd) : "", (unsigned long long)d);
    uv_timer_start(&j->timer, on_retry_timer, d, 0);
    return;
  }
  if (!ok) {
    if (!cur) {
      wf_info(j->key, "step was deleted before its status %s was written; not writing it back",
              wf_status_name(j->final_status));
      wf__job_done(j);
      return;
    }
    /* Someone changed the step meanwhile (a cancel, an edit).  Decide again
     * on the newer value: never overwrite a final status someone else wrote,
     * otherwise re-apply our patch on top of their change. */
    json_t *o = wf__load_obj(cur->value);
    wf_step_head_t h;
    if (o) wf_step_head(o, &h);
    if (!o || wf_status_is_final(h.status) || strcmp(h.node, e->node_name) != 0) {
      wf_info(j->key, "step changed by someone else before its final write (%s); leaving it",
              o ? wf_status_name(h.status) : "not JSON");
      json_decref(o);
      wf__job_done(j);
      return;
    }
    json_decref(o);
    free(j->json);
    j->json = wf_strndup(cur->value, cur->value_len);
    j->mod_rev = cur->mod_revision;
    job_write_final(j);
    return;
  }
  wf_cache_entry_t *entry = e->steps ? wf_informer_get(e->steps, j->key) : NULL;
  if (entry) wf_informer_set_local(e->steps, entry, NULL, 0, rev);
  count_outcome(j);
  wf__job_done(j);
}

static void job_write_final(wf__job_t *j) {
  wf_engine_t *e = j->e;
  wf__job_enter(j, JOB_FINISHING);
  json_t *o = wf__load_obj(j->json);
  if (!o) {
    /* Only reachable for a value that stopped being a JSON object while we
     * ran it; there is nothing safe to patch. */
    wf_warn(j->key, "stored value is not a JSON object; final status %s not written",
            wf_status_name(j->final_status));
    wf__job_done(j);
    return;
  }
  int64_t now = wf_now_ms();
  wf_step_patch_t p = {
      .status = j->final_status,
      .set_end_at = 1,
      .end_at = now,
      .set_message = 1,
      .message = j->message ? j->message : "",
      .response = j->response.kv,
      .nresponse = j->response.n,
      .update_at = now,
  };
  wf_step_apply_patch(o, &p);
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (wf_etcd_put_if(e->etcd, j->etcd_key, strlen(j->etcd_key), j->mod_rev, s, strlen(s),
                     on_final_written, j) != 0) {
    wf_error(j->key, "cannot start the status write");
    wf__job_done(j);
  }
  free(s);
}
