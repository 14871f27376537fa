/*
 * claim: CLAIMING, the first phase of a job.  A txn compares the key's
 * mod_revision with the one the cache holds and puts the stored JSON
 * patched with RUNNING, start_at, update_at and the response keys known
 * now (log_driver, log_path, claim_id).  A lost compare drops the job; the
 * key is looked at again once the watch delivers the newer value, so two
 * agents with the same name never both run a step.
 *
 * A txn whose answer is lost (etcd restarted, the connection cut) may have
 * been applied: the key is read back, and the claim is ours exactly when
 * etcd holds our RUNNING with this process's claim_id.
 *
 * Also here: the checks a step passes before any job exists, and the jobs
 * that only write a status (bad input, recovery).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "wf/outputs.h"

static void on_claimed(int err, int ok, int64_t rev, const wf_etcd_kv_t *cur, void *data);
static void on_verify(int err, const wf_etcd_range_res_t *res, void *data);

void wf__write_only(wf_engine_t *e, wf_cache_entry_t *entry, int status, const char *msg) {
  wf__job_t *j = wf__job_create(e, entry, JOB_FINISHING, 0);
  wf__job_set_outcome(j, status, "%s", msg);
  wf__job_finish(j);
}

static void refuse(wf_engine_t *e, wf_cache_entry_t *entry, const char *msg) {
  wf_warn(entry->key, "%s", msg);
  wf__write_only(e, entry, WF__STEP__STATUS__FAILED, msg);
}

wf__job_t *wf__job_prepare(wf_engine_t *e, wf_cache_entry_t *entry, int64_t start_at, json_t *o,
                           enum wf__job_state state) {
  char err[300];
  Wf__Step *s = (Wf__Step *)wf_codec_decode(&wf__step__descriptor, o, 0, err, sizeof err);
  if (!s) {
    char *m = wf_asprintf("invalid step: %s", err);
    refuse(e, entry, m);
    free(m);
    return NULL;
  }
  if (!wf_log_key_safe(entry->key)) {
    wf_codec_free((ProtobufCMessage *)s);
    char *m = wf_asprintf("step key \"%s\" cannot be used as a log file name", entry->key);
    refuse(e, entry, m);
    free(m);
    return NULL;
  }
  char path[4096];
  if (wf_log_path(path, sizeof path, e->log_dir, entry->key, start_at) != 0) {
    wf_codec_free((ProtobufCMessage *)s);
    wf__write_only(e, entry, WF__STEP__STATUS__FAILED, "log path too long");
    return NULL;
  }
  wf__job_t *j = wf__job_create(e, entry, state, 1);
  j->step = s;
  j->log_path = wf_strdup(path);
  j->start_at = start_at;
  wf_params_set(&j->response, "log_driver", "local_file");
  wf_params_set(&j->response, "log_path", path);
  /* Tells this process's claim apart from a twin agent's (same node name,
   * same millisecond): a lost answer is resolved by comparing values. */
  wf_params_set(&j->response, "claim_id", e->claim_id);
  return j;
}

static void claim_send(wf__job_t *j) {
  wf_engine_t *e = j->e;
  if (wf_etcd_put_if(e->etcd, j->etcd_key, strlen(j->etcd_key), j->mod_rev, j->json,
                     strlen(j->json), on_claimed, j) != 0)
    wf__job_done(j);
}

static void on_verify_timer(uv_timer_t *t) {
  wf__job_t *j = t->data;
  wf_engine_t *e = j->e;
  if (wf_etcd_range(e->etcd, j->etcd_key, strlen(j->etcd_key), NULL, 0, NULL, on_verify, j) != 0)
    wf__job_done(j);
}

/* Drops the job and looks at the key again (now, or after the per-key
 * backoff when retry is set). */
static void drop_and_requeue(wf__job_t *j, int retry) {
  wf_engine_t *e = j->e;
  char *key = wf_strdup(j->key);
  wf__job_done(j);
  if (retry) {
    if (!e->closing) wf__queue_retry(e->queue, key);
  } else {
    wf__queue_add(e->queue, key);
  }
  free(key);
}

/* After a claim without an answer: ours if etcd holds exactly what we sent,
 * still to claim if the step is unchanged, someone else's change otherwise. */
static void on_verify(int err, const wf_etcd_range_res_t *res, void *data) {
  wf__job_t *j = data;
  wf_engine_t *e = j->e;
  if (e->closing || j->stop != STOP_NONE) {
    wf__job_done(j);
    return;
  }
  if (err) {
    uv_timer_start(&j->timer, on_verify_timer, wf_backoff_next(&j->backoff), 0);
    return;
  }
  if (res->nkvs == 0) {
    wf__job_done(j);
    return;
  }
  const wf_etcd_kv_t *kv = &res->kvs[0];
  json_t *o = wf__load_obj(kv->value);
  wf_step_head_t h = {.node = "", .status = -1};
  if (o) wf_step_head(o, &h);
  json_t *cid = json_object_get(json_object_get(json_object_get(o, "status"), "response"),
                                "claim_id");
  int ours = strcmp(h.node, e->node_name) == 0 && h.start_at == j->start_at &&
             json_is_string(cid) && strcmp(json_string_value(cid), e->claim_id) == 0 &&
             (h.status == WF__STEP__STATUS__RUNNING || h.status == WF__STEP__STATUS__CANCELING);
  json_decref(o);
  if (ours) {
    /* Our RUNNING is there (maybe changed since, e.g. canceled). */
    wf_info(j->key, "the claim went through although its answer was lost");
    free(j->json);
    j->json = wf_strndup(kv->value, kv->value_len);
    on_claimed(0, 1, kv->mod_revision, NULL, j);
    if (h.status == WF__STEP__STATUS__CANCELING) wf__queue_add(e->queue, j->key);
  } else if (kv->mod_revision == j->mod_rev) {
    claim_send(j);
  } else {
    drop_and_requeue(j, 0);
  }
}

static void on_claimed(int err, int ok, int64_t rev, const wf_etcd_kv_t *cur, void *data) {
  wf__job_t *j = data;
  wf_engine_t *e = j->e;
  if (!err && !ok && cur && cur->value_len == strlen(j->json) &&
      memcmp(cur->value, j->json, cur->value_len) == 0) {
    /* A retried txn whose first attempt was applied: the value is ours. */
    ok = 1;
    rev = cur->mod_revision;
  }
  if (err && !(err == UV_ECANCELED && e->closing) && j->stop == STOP_NONE) {
    /* The answer is lost, not necessarily the claim: etcd may have applied
     * it.  Read the key back before deciding (on_verify). */
    uint64_t d = wf_backoff_next(&j->backoff);
    wf_warn(j->key, "claim got no answer (%s%s%s); checking the step again in %llu ms",
            wf_strerror(err), err == WF_EETCD ? ": " : "",
            err == WF_EETCD ? wf_etcd_errmsg(e->etcd) : "", (unsigned long long)d);
    uv_timer_start(&j->timer, on_verify_timer, d, 0);
    return;
  }
  if (err || !ok) {
    if (!err)
      wf_debug(j->key, "claim lost: the step changed (now revision %lld)",
               cur ? (long long)cur->mod_revision : 0LL);
    /* Decide again once the watch has the newer value (or etcd is back). */
    drop_and_requeue(j, 1);
    return;
  }
  wf__queue_forget(e->queue, j->key);
  if (e->observe) /* metrics */
    e->observe(WF_ENGINE_OBS_DISPATCH, (double)(wf_mono_ms() - j->seen_ms) / 1000.0,
               e->observe_data);
  j->mod_rev = rev;
  wf_cache_entry_t *entry = e->steps ? wf_informer_get(e->steps, j->key) : NULL;
  if (entry) wf_informer_set_local(e->steps, entry, j->json, strlen(j->json), rev);
  if (entry && entry->value && entry->mod_revision > rev) {
    /* The watch brought a change made after our claim (a cancel, say)
     * before the claim's answer: adopt it and look at it again. */
    free(j->json);
    j->json = wf_strndup(entry->value, entry->value_len);
    j->mod_rev = entry->mod_revision;
    wf__queue_add(e->queue, j->key);
  }
  if (j->stop != STOP_NONE) {
    if (j->stop == STOP_CANCEL) wf__job_set_outcome(j, WF__STEP__STATUS__CANCELED, "canceled");
    wf__job_finish(j);
    return;
  }
  wf__job_resolve(j);
}

void wf__claim(wf_engine_t *e, wf_cache_entry_t *entry, uint64_t seen_ms, json_t *o) {
  if (o) {
    json_incref(o);
  } else {
    o = wf__load_obj(entry->value);
    if (!o) return; /* filtered already; cannot happen */
    wf_step_head_t h;
    wf_step_head(o, &h);
    if (h.status != WF__STEP__STATUS__PENDDING) {
      json_decref(o);
      return;
    }
  }
  int64_t now = wf_now_ms();
  wf__job_t *j = wf__job_prepare(e, entry, now, o, JOB_CLAIMING);
  if (!j) {
    json_decref(o);
    return;
  }
  j->seen_ms = seen_ms;
  wf_step_patch_t p = {
      .status = WF__STEP__STATUS__RUNNING,
      .set_start_at = 1,
      .start_at = now,
      .set_message = 1,
      .message = "",
      .response = j->response.kv,
      .nresponse = j->response.n,
      .drop_prefix = WF_OUTPUT_KEY_PREFIX,
      .update_at = now,
  };
  wf_step_apply_patch(o, &p);
  free(j->json);
  j->json = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  claim_send(j);
}
