/*
 * dispatch: from a watch event to what the node does about the step.
 *
 * The step informer's callbacks keep only this node's steps (the filter),
 * cheaply: a value that plainly cannot name this node is dropped unread,
 * the head (status, scheduled node, start time) is read from the bytes when
 * the scanner is sure, and completed steps are remembered without their
 * value.  Every new revision of a kept key goes on the work queue, and the
 * queue calls wf__dispatch() once per key:
 *
 *   PENDDING             claim it if a --max-parallel slot is free and the
 *                        catalog has synced, else wait in arrival order
 *   RUNNING, unknown     recovery (recover.c), if it started before us
 *   CANCELING, no job    CANCELED
 *   a job holds it       CANCELING stops it; a final status from someone
 *                        else stops it without a write
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"

json_t *wf__load_obj(const char *s) {
  if (!s) return NULL;
  json_t *o = json_loads(s, 0, NULL);
  if (o && !json_is_object(o)) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static void complain_once(wf_engine_t *e, const char *key, int64_t rev, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void complain_once(wf_engine_t *e, const char *key, int64_t rev, const char *fmt, ...) {
  void *seen = wf_map_get(&e->complained, key);
  if (seen && (int64_t)(intptr_t)seen == rev) return;
  wf_map_put(&e->complained, key, (void *)(intptr_t)rev);
  va_list ap;
  va_start(ap, fmt);
  wf_logv(WF_LOG_WARN, key, fmt, ap);
  va_end(ap);
}

/* ---- the waiting list --------------------------------------------------------------------- */

static void wait_push(wf_engine_t *e, const char *key) {
  if (wf_map_get(&e->waiting, key)) return;
  if (e->wait_head + e->wait_len == e->wait_cap) {
    if (e->wait_head > e->wait_cap / 2) {
      memmove(e->wait, e->wait + e->wait_head, e->wait_len * sizeof *e->wait);
      e->wait_head = 0;
    } else {
      e->wait_cap = e->wait_cap ? e->wait_cap * 2 : 64;
      e->wait = wf_realloc(e->wait, e->wait_cap * sizeof *e->wait);
    }
  }
  e->wait[e->wait_head + e->wait_len++] = wf_strdup(key);
  /* The value is when the step was first seen waiting (metrics: dispatch
   * latency); "| 1" keeps it non-NULL. */
  wf_map_put(&e->waiting, key, (void *)(uintptr_t)(wf_mono_ms() | 1));
}

char *wf__wait_pop(wf_engine_t *e) {
  if (!e->wait_len) return NULL;
  char *k = e->wait[e->wait_head++];
  e->wait_len--;
  if (!e->wait_len) e->wait_head = 0;
  wf_map_del(&e->waiting, k);
  return k;
}

static int can_start(const wf_engine_t *e) {
  return !e->draining && !e->closing && wf__catalog_synced(e->catalog) &&
         e->slots < e->max_parallel;
}

void wf__pump_waiting(wf_engine_t *e) {
  while (e->wait_len && can_start(e)) {
    uint64_t seen = (uintptr_t)wf_map_get(&e->waiting, e->wait[e->wait_head]);
    char *k = wf__wait_pop(e);
    wf_cache_entry_t *entry = wf_informer_get(e->steps, k);
    free(k);
    if (!entry || entry->owner || !entry->value) continue;
    wf__claim(e, entry, seen, NULL);  /* if it is still PENDDING */
  }
}

/* ---- dispatch ------------------------------------------------------------------------------ */

/* A step we hold changed under us. */
static void dispatch_job(wf__job_t *j, const char *key, int status) {
  if (status == WF__STEP__STATUS__CANCELING) {
    wf_info(key, "cancel requested; stopping it");
    wf__job_stop(j, STOP_CANCEL);
  } else if (wf_status_is_final(status)) {
    wf_info(key, "set to %s by someone else; stopping it", wf_status_name(status));
    wf__job_stop(j, STOP_AWAY);
  }
}

/* key: the queue's (valid for the whole call); h and o (the parsed value,
 * or NULL) borrowed. */
static void dispatch_head(wf_engine_t *e, const char *key, wf_cache_entry_t *entry,
                          const wf_step_head_t *h, json_t *o) {
  switch (h->status) {
    case WF__STEP__STATUS__PENDDING:
      if (e->draining) return;
      if (can_start(e) && !e->wait_len) {
        wf__claim(e, entry, wf_mono_ms(), o);
      } else {
        wait_push(e, key);
        wf__pump_waiting(e);
      }
      break;
    case WF__STEP__STATUS__RUNNING:
      /* RUNNING but unknown: recover only what was running before this
       * process started; a step claimed since then belongs to another
       * process (e.g. a second agent misconfigured with our name). */
      if (h->start_at < e->start_ms) wf__recover_running(e, key, entry, h->start_at);
      break;
    case WF__STEP__STATUS__CANCELING:
      if (h->start_at == 0)
        wf__write_only(e, entry, WF__STEP__STATUS__CANCELED, "canceled before it ran");
      else if (h->start_at < e->start_ms)
        wf__recover_canceling(e, key, entry);
      break;
    default:
      break;
  }
}

void wf__dispatch(const char *key, void *data) {
  wf_engine_t *e = data;
  if (e->closing) return;
  wf_cache_entry_t *entry = wf_informer_get(e->steps, key);
  if (!entry || !entry->value) return;
  wf__job_t *j = entry->owner;
  if (j) {
    switch (j->state) {
      case JOB_CLAIMING:
      case JOB_FINISHING:
      case JOB_DONE:
        /* Mid-write, the job decides on the txn's answer: nothing to parse
         * (the echo of our own claim often comes before that answer). */
        return;
      case JOB_RESOLVING:
      case JOB_RUNNING:
      case JOB_ENDING:
        break;
    }
  }
  /* The head from the bytes when the scanner is sure; the tree otherwise
   * (a claim parses the value itself when it gets none). */
  wf_step_head_t h;
  char node[256];
  json_t *o = NULL;
  if (!wf_step_head_scan(entry->value, entry->value_len, &h, node, sizeof node)) {
    o = wf__load_obj(entry->value);
    if (!o) return;
    wf_step_head(o, &h);
  }
  if (j)
    dispatch_job(j, key, h.status);
  else
    dispatch_head(e, key, entry, &h, o);
  json_decref(o);
}

/* ---- informer callbacks -------------------------------------------------------------------- */

/* The verdict for a step whose head is known; -1 when the filter on the
 * parsed tree must decide (it words the complaint). */
static int step_verdict(wf_engine_t *e, wf_informer_t *inf, const char *key,
                        const wf_step_head_t *h) {
  if (strcmp(h->node, e->node_name) != 0) return WF_FILTER_DROP;
  if (h->status < 0) return -1;
  wf_map_del(&e->complained, key);
  /* Completed steps keep no value: they are only remembered, cheaply. */
  if (wf_status_is_final(h->status)) {
    wf_cache_entry_t *cur = wf_informer_get(inf, key);
    if (!cur || !cur->owner) return WF_FILTER_META;
  }
  return WF_FILTER_KEEP;
}

static int step_filter_raw(wf_informer_t *inf, const char *key, const char *value, size_t len,
                           int64_t rev, void *data) {
  wf_engine_t *e = data;
  wf_step_head_t h;
  char node[256];
  (void)rev;
  if (!wf_step_head_scan(value, len, &h, node, sizeof node)) return -1;
  return step_verdict(e, inf, key, &h);
}

static enum wf_filter_verdict step_filter(wf_informer_t *inf, const char *key, const json_t *obj,
                                          const char *errtext, int64_t rev, void *data) {
  wf_engine_t *e = data;
  if (!obj) {
    complain_once(e, key, rev, "value is not JSON (%s); left alone", errtext ? errtext : "?");
    return WF_FILTER_DROP;
  }
  if (!json_is_object(obj)) {
    complain_once(e, key, rev, "value is not a JSON object; left alone");
    return WF_FILTER_DROP;
  }
  wf_step_head_t h;
  wf_step_head(obj, &h);
  int v = step_verdict(e, inf, key, &h);
  if (v >= 0) return (enum wf_filter_verdict)v;
  json_t *st = json_object_get(json_object_get(obj, "status"), "status");
  char *txt = st ? json_dumps(st, JSON_ENCODE_ANY) : NULL;
  complain_once(e, key, rev, "status %s is not a STEP_STATUS; left alone",
                txt ? txt : "(missing)");
  free(txt);
  return WF_FILTER_DROP;
}

/* A value whose bytes hold no backslash (so no JSON string in it is
 * escaped) and never the node name as a JSON string ("name", quotes
 * included) cannot carry that name in status.scheduled_node: the filter
 * would drop it.  Skipping the parse for those is what makes other nodes'
 * steps cheap (one memchr and one memmem instead of a full JSON parse). */
static int step_skip(wf_informer_t *inf, const char *key, const char *value, size_t len,
                     void *data) {
  wf_engine_t *e = data;
  (void)inf;
  (void)key;
  if (!e->quoted_name || memchr(value, '\\', len)) return 0;
  return memmem(value, len, e->quoted_name, e->quoted_len) == NULL;
}

static void step_upsert(wf_informer_t *inf, wf_cache_entry_t *entry, void *data) {
  wf_engine_t *e = data;
  (void)inf;
  if (e->closing) return;
  if (entry->owner) wf__job_adopt(entry->owner, entry);
  wf__queue_add(e->queue, entry->key);
}

static void step_delete(wf_informer_t *inf, wf_cache_entry_t *entry, int deleted, void *data) {
  wf__job_t *j = entry->owner;
  (void)inf;
  (void)data;
  entry->owner = NULL;
  if (!j) return;
  switch (j->state) {
    case JOB_CLAIMING:
    case JOB_RESOLVING:
    case JOB_RUNNING:
    case JOB_ENDING:
      wf_info(entry->key, "%s; stopping it", deleted ? "key deleted" : "reassigned away");
      wf__job_stop(j, deleted ? STOP_DELETE : STOP_AWAY);
      break;
    case JOB_FINISHING:
    case JOB_DONE:
      /* The final txn finds the key gone (or moved) and writes nothing back. */
      break;
  }
}

static void step_synced(wf_informer_t *inf, int first, void *data) {
  wf_engine_t *e = data;
  if (!first) {
    e->stats.relists++;
    return;
  }
  wf_info(NULL, "step cache ready: %zu steps of node %s", wf_informer_size(inf), e->node_name);
  wf__recover_steps_synced(e);
}

const wf_informer_cbs_t wf__step_informer_cbs = {
  .filter = step_filter,
  .skip = step_skip,
  .filter_raw = step_filter_raw,
  .on_upsert = step_upsert,
  .on_delete = step_delete,
  .on_synced = step_synced,
};
