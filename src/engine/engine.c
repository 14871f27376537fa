/*
 * engine: the per-step state machine and the dispatch around it (see
 * include/wf/engine.h for the states).
 *
 * Ownership: a job is created for a step the node acts on (run, or a single
 * status write for a step it will not run) and lives on the engine's job
 * list until its final write is settled; it owns its log file, runner and
 * one uv_timer (step timeout, then write retries), and is freed in that
 * timer's close callback.  The informer's cache entry for the key points at
 * the job (entry->owner) while it lives; the job never keeps the entry
 * pointer, it looks the key up again, because a delete frees the entry.
 */
#include "wf/engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-internal.h"
#include "wf/docker.h"
#include "wf/informer.h"
#include "wf/logstore.h"
#include "wf/mask.h"
#include "wf/model.h"
#include "wf/runner.h"
#include "wf/util.h"

enum job_state { J_CLAIMING, J_RESOLVING, J_RUNNING, J_FINISHING, J_DONE };

/* Why a running step was stopped; decides the final write. */
enum stop_reason {
  STOP_NONE,
  STOP_CANCEL,    /* status became CANCELING -> CANCELED */
  STOP_DELETE,    /* key deleted -> stop, never write */
  STOP_AWAY,      /* reassigned to another node or finished by someone else -> no write */
  STOP_TIMEOUT,   /* -> FAILED "timed out after N s" */
  STOP_DRAIN,     /* node shutting down -> FAILED */
  STOP_LOGERR,    /* the log file failed -> FAILED with the error */
};

typedef struct job_s job_t;

struct wf_engine_s {
  uv_loop_t *loop;
  wf_etcd_t *etcd;
  char *node_name, *prefix, *log_dir, *steps_prefix, *mask_params;
  char *quoted_name;         /* "\"<node name>\"", or NULL if JSON must escape the name */
  size_t quoted_len;
  unsigned max_parallel, step_timeout_s, stop_grace_s;
  int64_t start_ms;          /* steps RUNNING from before this are recovered */
  char claim_id[64];         /* "<pid>.<start_ms>": unique to this process */

  wf_informer_t *steps;
  wf_catalog_t *catalog;
  wf_queue_t *queue;

  job_t *jobs;               /* all live jobs (doubly linked) */
  unsigned slots;            /* jobs holding a --max-parallel slot */
  unsigned njobs;

  /* PENDDING steps waiting for a slot (or for the catalog), in arrival order. */
  char **wait;
  size_t wait_head, wait_len, wait_cap;
  wf_map_t waiting;          /* key -> (void*)1 */

  wf_map_t complained;       /* key -> revision already logged as bad input */

  int draining;
  uv_timer_t drain_timer;
  void (*drain_cb)(void *);
  void *drain_data;

  int closing;
  unsigned closing_parts;
  void (*close_cb)(void *);
  void *close_data;

  /* Docker recovery (see recover_settle): containers of this node found at
   * start-up, by step key, and the RUNNING steps waiting for that list. */
  wf_docker_runner_t *docker;
  int keep_containers;
  wf_map_t containers;       /* step key -> container_t* */
  wf_map_t recover_keys;     /* step key -> (void*)1 */
  int recover_ready;         /* the list is in (or given up on) and the catalog synced */
  int docker_listed;         /* the container list answered or was given up on */
  int steps_synced;
  unsigned list_attempts;
  uv_timer_t docker_timer;

  wf_engine_stats_t stats;
  wf_engine_observe_cb observe;  /* metrics; may be NULL */
  void *observe_data;
};

struct job_s {
  wf_engine_t *e;
  job_t *prev, *next;
  char *key;                 /* step key (prefix stripped) */
  char *etcd_key;
  char *json;                /* the stored value our next write patches */
  int64_t mod_rev;           /* ... and its mod_revision (txn compare) */
  enum job_state state;
  enum stop_reason stop;
  int holds_slot;

  Wf__Step *step;
  Wf__Action *action;        /* owned copy, resolved */
  char *attach_id;           /* recovery: the container to re-attach to */
  wf_mask_t *mask;           /* secret param values, or NULL */
  char *log_path;
  int64_t start_at;
  unsigned timeout_s;

  const wf_runner_ops_t *ops;
  wf_run_t *run;
  wf_logfile_t *log;
  int log_err;

  /* outcome */
  int final_status;
  char *message;
  wf_params_t response;

  uv_timer_t timer;
  wf_backoff_t backoff;
  uint64_t seen_ms;          /* metrics: wf_mono_ms() when the PENDDING value was seen */
};

static void job_finish(job_t *j);
static void job_write_final(job_t *j);
static void pump_waiting(wf_engine_t *e);
static void maybe_drained(wf_engine_t *e);
static void part_closed(void *data);

/* ---- helpers ---------------------------------------------------------------------- */

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

static json_t *load_obj(const char *s) {
  if (!s) return NULL;
  json_t *o = json_loads(s, 0, NULL);
  if (o && !json_is_object(o)) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static void job_set_outcome(job_t *j, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_set_outcome(job_t *j, int status, const char *fmt, ...) {
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

/* The values of the step's secret params: names matching --mask-params, and
 * run params the action marks secret. */
static wf_mask_t *build_mask(const wf_engine_t *e, const Wf__Action *a, const wf_params_t *p) {
  const char **vals = wf_calloc(p->n + 1, sizeof *vals);
  size_t n = 0;
  for (size_t i = 0; i < p->n; i++) {
    int secret = wf_mask_name_matches(e->mask_params, p->kv[i].key);
    for (size_t k = 0; !secret && k < a->n_run_params; k++)
      secret = a->run_params[k]->secret && a->run_params[k]->key_name &&
               strcmp(a->run_params[k]->key_name, p->kv[i].key) == 0;
    if (secret) vals[n++] = p->kv[i].value;
  }
  wf_mask_t *m = wf_mask_create(vals, n);
  free(vals);
  return m;
}

/* ---- job lifecycle ----------------------------------------------------------------- */

static job_t *job_create(wf_engine_t *e, wf_cache_entry_t *entry, int take_slot) {
  job_t *j = wf_calloc(1, sizeof *j);
  j->e = e;
  j->key = wf_strdup(entry->key);
  j->etcd_key = wf_asprintf("%s%s", e->steps_prefix, entry->key);
  j->json = entry->value ? wf_strndup(entry->value, entry->value_len) : NULL;
  j->mod_rev = entry->mod_revision;
  j->final_status = -1;
  wf_params_init(&j->response);
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

static void job_free(uv_handle_t *h) {
  job_t *j = h->data;
  wf_engine_t *e = j->e;
  free(j->key);
  free(j->etcd_key);
  free(j->json);
  free(j->log_path);
  free(j->message);
  wf_params_finish(&j->response);
  wf_codec_free((ProtobufCMessage *)j->step);
  wf_codec_free((ProtobufCMessage *)j->action);
  wf_mask_destroy(j->mask);
  free(j->attach_id);
  free(j);
  if (--e->njobs == 0) {
    if (e->closing)
      part_closed(e);
    else
      maybe_drained(e);
  }
}

/* The job is settled: unlink it, give back its slot, let waiting steps in. */
static void job_done(job_t *j) {
  wf_engine_t *e = j->e;
  j->state = J_DONE;
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
  if (!e->closing) pump_waiting(e);
}

/* ---- final write ---------------------------------------------------------------------- */

static void on_retry_timer(uv_timer_t *t) {
  job_t *j = t->data;
  job_write_final(j);
}

static void on_final_written(int err, int ok, int64_t rev, const wf_etcd_kv_t *cur, void *data) {
  job_t *j = data;
  wf_engine_t *e = j->e;
  if (err == UV_ECANCELED && e->closing) {
    job_done(j);
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
      job_done(j);
      return;
    }
    /* Someone changed the step meanwhile (a cancel, an edit).  Decide again
     * on the newer value: never overwrite a final status someone else wrote,
     * otherwise re-apply our patch on top of their change. */
    json_t *o = load_obj(cur->value);
    wf_step_head_t h;
    if (o) wf_step_head(o, &h);
    if (!o || wf_status_is_final(h.status) || strcmp(h.node, e->node_name) != 0) {
      wf_info(j->key, "step changed by someone else before its final write (%s); leaving it",
              o ? wf_status_name(h.status) : "not JSON");
      json_decref(o);
      job_done(j);
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
  /* metrics: only claimed jobs have a start_at (write_only ones do not run). */
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
  job_done(j);
}

static void job_write_final(job_t *j) {
  wf_engine_t *e = j->e;
  j->state = J_FINISHING;
  json_t *o = load_obj(j->json);
  if (!o) {
    /* Only reachable for a value that stopped being a JSON object while we
     * ran it; there is nothing safe to patch. */
    wf_warn(j->key, "stored value is not a JSON object; final status %s not written",
            wf_status_name(j->final_status));
    job_done(j);
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
    job_done(j);
  }
  free(s);
}

/* Decides the outcome of a run that ended, then writes it. */
static void job_finish(job_t *j) {
  uv_timer_stop(&j->timer);
  if (j->stop == STOP_DELETE || j->stop == STOP_AWAY) {
    wf_info(j->key, "stopped (%s); status not written",
            j->stop == STOP_DELETE ? "key deleted" : "no longer this node's");
    job_done(j);
    return;
  }
  if (j->final_status < 0) job_set_outcome(j, WF__STEP__STATUS__FAILED, "no outcome recorded");
  job_write_final(j);
}

/* ---- running ------------------------------------------------------------------------------ */

static void on_log_closed(wf_logfile_t *f, int err, void *data) {
  job_t *j = data;
  j->log = NULL;
  if (err && !j->log_err) j->log_err = err;
  if (j->log_err && j->stop != STOP_DELETE && j->stop != STOP_AWAY)
    job_set_outcome(j, WF__STEP__STATUS__FAILED, "writing the log %s failed: %s", j->log_path,
                    wf_strerror(j->log_err));
  job_finish(j);
}

static void on_log_error(wf_logfile_t *f, int err, void *data) {
  job_t *j = data;
  if (!j->log_err) j->log_err = err;
  wf_error(j->key, "log file %s: %s; stopping the step", j->log_path, wf_strerror(err));
  if (j->stop == STOP_NONE) j->stop = STOP_LOGERR;
  if (j->run) j->ops->cancel(j->run);
}

static void on_run_exit(wf_run_t *run, const wf_run_result_t *r, void *data) {
  job_t *j = data;
  j->run = NULL;
  char num[32];
  snprintf(num, sizeof num, "%d", r->exit_code);
  wf_params_set(&j->response, "exit_code", num);
  for (size_t i = 0; i < r->nresponse; i++)
    wf_params_set(&j->response, r->response[i].key, r->response[i].value);

  if (r->error)
    job_set_outcome(j, WF__STEP__STATUS__FAILED, "%s", r->error);
  else if (j->stop == STOP_TIMEOUT)
    job_set_outcome(j, WF__STEP__STATUS__FAILED, "timed out after %u s", j->timeout_s);
  else if (j->stop == STOP_CANCEL)
    job_set_outcome(j, WF__STEP__STATUS__CANCELED, "canceled");
  else if (j->stop == STOP_DRAIN)
    job_set_outcome(j, WF__STEP__STATUS__FAILED,
                    "node shut down before the step finished (drain timeout)");
  else if (r->exit_code == 0 && !r->term_signal)
    job_set_outcome(j, WF__STEP__STATUS__SUCCEEDED, "%s", "");
  else if (r->term_signal)
    job_set_outcome(j, WF__STEP__STATUS__FAILED, "process killed by signal %d (exit code %d)",
                    r->term_signal, r->exit_code);
  else
    job_set_outcome(j, WF__STEP__STATUS__FAILED, "%s exited with exit code %d",
                    j->ops == &wf_runner_docker ? "container" : "process", r->exit_code);
  /* The outcome is final once the log is on disk: close it first. */
  if (j->log)
    wf_logfile_close(j->log);
  else
    job_finish(j);
}

static void on_timeout(uv_timer_t *t) {
  job_t *j = t->data;
  if (j->run && j->stop == STOP_NONE) {
    wf_warn(j->key, "timed out after %u s; stopping it", j->timeout_s);
    j->stop = STOP_TIMEOUT;
    j->ops->cancel(j->run);
  }
}

static void job_stop(job_t *j, enum stop_reason why) {
  if (j->stop == STOP_NONE || why == STOP_DELETE || why == STOP_AWAY) j->stop = why;
  if (j->run) j->ops->cancel(j->run);
}

/* Builds the environment: merged params, PATH from the agent unless a param
 * sets it (so that a bare "sh" resolves as operators expect), then the
 * WORKFLOW_* variables, which always win. */
static char **build_env(job_t *j, const wf_params_t *params) {
  wf_engine_t *e = j->e;
  const Wf__Step *s = j->step;
  size_t n = params->n + 6;
  char **env = wf_calloc(n, sizeof *env);
  size_t k = 0;
  static const char *const reserved[] = {"WORKFLOW_STEP_KEY", "WORKFLOW_NODE_NAME",
                                         "WORKFLOW_NAMESPACE", "WORKFLOW_PIPELINE_ID"};
  for (size_t i = 0; i < params->n; i++) {
    int skip = 0;
    for (size_t r = 0; r < 4; r++) skip |= strcmp(params->kv[i].key, reserved[r]) == 0;
    if (!skip) env[k++] = wf_asprintf("%s=%s", params->kv[i].key, params->kv[i].value);
  }
  if (!wf_params_get(params, "PATH")) {
    const char *path = getenv("PATH");
    env[k++] = wf_asprintf("PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
  }
  env[k++] = wf_asprintf("WORKFLOW_STEP_KEY=%s", j->key);
  env[k++] = wf_asprintf("WORKFLOW_NODE_NAME=%s", e->node_name);
  env[k++] = wf_asprintf("WORKFLOW_NAMESPACE=%s", s->namespace_ ? s->namespace_ : "");
  env[k++] = wf_asprintf("WORKFLOW_PIPELINE_ID=%s", s->pipeline_id ? s->pipeline_id : "");
  env[k] = NULL;
  return env;
}

/* Fails a claimed step before it ran. */
static void job_fail_early(job_t *j, const char *msg) {
  job_set_outcome(j, WF__STEP__STATUS__FAILED, "%s", msg);
  job_finish(j);
}

static void job_run(job_t *j, const Wf__Action *action, const Wf__Pipeline *pipeline) {
  wf_engine_t *e = j->e;
  if (j->stop != STOP_NONE) {
    /* Canceled or deleted while we resolved. */
    if (j->stop == STOP_CANCEL) job_set_outcome(j, WF__STEP__STATUS__CANCELED, "canceled");
    job_finish(j);
    return;
  }
  wf_params_t params;
  wf_params_init(&params);
  char *err = NULL;
  if (wf_params_merge(action, pipeline, j->step, &params, &err) != 0) {
    job_fail_early(j, err);
    free(err);
    wf_params_finish(&params);
    return;
  }
  j->mask = build_mask(e, action, &params);
  j->timeout_s = e->step_timeout_s;
  const char *t = wf_params_get(&params, "WORKFLOW_TIMEOUT");
  if (t && t[0]) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(t, &end, 10);
    if (errno || *end || t[0] == '-' || v > 100u * 24 * 3600) {
      char *m = wf_asprintf("WORKFLOW_TIMEOUT: \"%s\" is not a number of seconds", t);
      job_fail_early(j, m);
      free(m);
      wf_params_finish(&params);
      return;
    }
    j->timeout_s = (unsigned)v;
  }
  switch (action->runner_type) {
    case WF__RUNNER__TYPE__LOCAL: j->ops = &wf_runner_local; break;
    case WF__RUNNER__TYPE__DOCKER:
      if (e->docker) {
        j->ops = &wf_runner_docker;
        break;
      }
      __attribute__((fallthrough)); /* no docker runner on this node */
    default: {
      char *m = wf_asprintf("runner type %s is not supported by this node yet",
                            wf_enum_name(&wf__runner__type__descriptor, action->runner_type)
                                ?: "UNKNOWN");
      job_fail_early(j, m);
      free(m);
      wf_params_finish(&params);
      return;
    }
  }

  wf_logfile_cbs_t lcbs = {.on_closed = on_log_closed, .on_error = on_log_error};
  /* A re-attached container continues the log it was writing. */
  j->log = j->attach_id ? wf_logfile_open_append(e->loop, j->log_path, 0, &lcbs, j)
                        : wf_logfile_open(e->loop, j->log_path, 0, &lcbs, j);
  /* j->mask outlives the file: it is freed with the job. */
  if (j->mask) wf_logfile_set_mask(j->log, j->mask);
  char **env = build_env(j, &params);
  size_t nrp;
  wf_kv_t *rp = wf_action_runner_params(action, &nrp);
  wf_run_req_t req = {
      .step_key = j->key,
      .runner_params = rp,
      .nrunner_params = nrp,
      .env = (const char *const *)env,
      .log = j->log,
      .stop_grace_s = e->stop_grace_s,
      .ctx = j->ops == &wf_runner_docker ? (void *)e->docker : NULL,
      .node_name = e->node_name,
      .attach_id = j->attach_id,
  };
  wf_run_cbs_t rcbs = {.on_exit = on_run_exit};
  char rerr[512] = "";
  j->state = J_RUNNING;
  j->run = j->ops->start(e->loop, &req, &rcbs, j, rerr, sizeof rerr);
  wf_argv_free(env);
  free(rp);
  wf_params_finish(&params);
  if (!j->run) {
    job_set_outcome(j, WF__STEP__STATUS__FAILED, "%s", rerr[0] ? rerr : "runner failed to start");
    wf_logfile_close(j->log);
    return;
  }
  e->stats.started++;
  wf_info(j->key, "running (%s runner%s)", j->ops->name, j->timeout_s ? ", with timeout" : "");
  if (j->timeout_s) uv_timer_start(&j->timer, on_timeout, (uint64_t)j->timeout_s * 1000, 0);
}

/* ---- resolving ------------------------------------------------------------------------------ */

/* A copy the job owns: catalog entries may change while a pipeline is read. */
static Wf__Action *action_copy(const Wf__Action *a) {
  size_t n = protobuf_c_message_get_packed_size(&a->base);
  uint8_t *buf = wf_malloc(n ? n : 1);
  protobuf_c_message_pack(&a->base, buf);
  Wf__Action *c = wf__action__unpack(NULL, n, buf);
  free(buf);
  return c;
}

static const char *etcd_err(wf_engine_t *e, int err) {
  return err == WF_EETCD ? wf_etcd_errmsg(e->etcd) : wf_strerror(err);
}

static void on_pipeline(int err, const wf_etcd_range_res_t *res, void *data) {
  job_t *j = data;
  wf_engine_t *e = j->e;
  char *ref = wf_asprintf("%s/%s", j->step->namespace_, j->step->pipeline_id);
  if (err == UV_ECANCELED && e->closing) {
    free(ref);
    job_done(j);
    return;
  }
  char *m = NULL;
  Wf__Pipeline *p = NULL;
  if (err) {
    m = wf_asprintf("describe step pipeline error, %s", etcd_err(e, err));
  } else if (res->nkvs == 0) {
    m = wf_asprintf("pipeline \"%s\" not found", ref);
  } else {
    char derr[256];
    p = (Wf__Pipeline *)wf_codec_decode_bytes(&wf__pipeline__descriptor, res->kvs[0].value,
                                              res->kvs[0].value_len, 0, derr, sizeof derr);
    if (!p) m = wf_asprintf("pipeline \"%s\" is invalid: %s", ref, derr);
  }
  free(ref);
  if (m) {
    job_fail_early(j, m);
    free(m);
    return;
  }
  job_run(j, j->action, p);
  wf_codec_free((ProtobufCMessage *)p);
}

/* The action is known: read the pipeline for pipeline steps, then run. */
static void job_have_action(job_t *j) {
  wf_engine_t *e = j->e;
  /* A missing create_type is PIPELINE (the proto3 zero value), like the original. */
  if (j->step->create_type != WF__STEP__CREATE__BY__PIPELINE) {
    job_run(j, j->action, NULL);
    return;
  }
  char *k = wf_asprintf("%s/workflow/pipelines/%s/%s", e->prefix, j->step->namespace_,
                        j->step->pipeline_id);
  if (wf_etcd_range(e->etcd, k, strlen(k), NULL, 0, NULL, on_pipeline, j) != 0)
    job_fail_early(j, "cannot start the pipeline lookup");
  free(k);
}

static char *action_ref(const Wf__Step *s) {
  char *name, *version;
  wf_action_ref_split(s->action, &name, &version);
  char *ref = wf_asprintf("%s@%s", name, version);
  free(name);
  free(version);
  return ref;
}

static void on_action(int err, const wf_etcd_range_res_t *res, void *data) {
  job_t *j = data;
  wf_engine_t *e = j->e;
  if (err == UV_ECANCELED && e->closing) {
    job_done(j);
    return;
  }
  char *m = NULL;
  if (err) {
    m = wf_asprintf("describe step action error, %s", etcd_err(e, err));
  } else if (res->nkvs == 0) {
    /* Not in etcd either; the files of --actions-dir may still have it
     * (the catalog would have answered), so this is final. */
    m = wf_asprintf("action \"%s\" not found", j->step->action);
  } else {
    char derr[256];
    j->action = (Wf__Action *)wf_codec_decode_bytes(
        &wf__action__descriptor, res->kvs[0].value, res->kvs[0].value_len, 0, derr, sizeof derr);
    if (!j->action) m = wf_asprintf("action \"%s\" is invalid: %s", j->step->action, derr);
  }
  if (m) {
    job_fail_early(j, m);
    free(m);
    return;
  }
  job_have_action(j);
}

static void job_resolve(job_t *j) {
  wf_engine_t *e = j->e;
  j->state = J_RESOLVING;
  char *ref = action_ref(j->step);
  const Wf__Action *a = wf__catalog_get(e->catalog, ref);
  if (a) {
    free(ref);
    j->action = action_copy(a);
    job_have_action(j);
    return;
  }
  /* The actions watch may lag behind the steps watch (it is another
   * stream), so a miss is checked against etcd itself before it fails. */
  char *k = wf_asprintf("%s/workflow/actions/%s", e->prefix, ref);
  free(ref);
  if (wf_etcd_range(e->etcd, k, strlen(k), NULL, 0, NULL, on_action, j) != 0)
    job_fail_early(j, "cannot start the action lookup");
  free(k);
}

/* ---- claiming ---------------------------------------------------------------------------------- */

static void on_claimed(int err, int ok, int64_t rev, const wf_etcd_kv_t *cur, void *data);

static void claim_send(job_t *j) {
  wf_engine_t *e = j->e;
  if (wf_etcd_put_if(e->etcd, j->etcd_key, strlen(j->etcd_key), j->mod_rev, j->json,
                     strlen(j->json), on_claimed, j) != 0)
    job_done(j);
}

static void on_verify(int err, const wf_etcd_range_res_t *res, void *data);

static void on_verify_timer(uv_timer_t *t) {
  job_t *j = t->data;
  wf_engine_t *e = j->e;
  if (wf_etcd_range(e->etcd, j->etcd_key, strlen(j->etcd_key), NULL, 0, NULL, on_verify, j) != 0)
    job_done(j);
}

/* After a claim without an answer: ours if etcd holds exactly what we sent,
 * still to claim if the step is unchanged, someone else's change otherwise. */
static void on_verify(int err, const wf_etcd_range_res_t *res, void *data) {
  job_t *j = data;
  wf_engine_t *e = j->e;
  if (e->closing || j->stop != STOP_NONE) {
    job_done(j);
    return;
  }
  if (err) {
    uv_timer_start(&j->timer, on_verify_timer, wf_backoff_next(&j->backoff), 0);
    return;
  }
  if (res->nkvs == 0) {
    job_done(j);
    return;
  }
  const wf_etcd_kv_t *kv = &res->kvs[0];
  json_t *o = load_obj(kv->value);
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
    char *key = wf_strdup(j->key);
    job_done(j);
    wf__queue_add(e->queue, key);
    free(key);
  }
}

static void on_claimed(int err, int ok, int64_t rev, const wf_etcd_kv_t *cur, void *data) {
  job_t *j = data;
  wf_engine_t *e = j->e;
  if (!err && !ok && cur && cur->value_len == strlen(j->json) &&
      memcmp(cur->value, j->json, cur->value_len) == 0) {
    /* A retried txn whose first attempt was applied: the value is ours. */
    ok = 1;
    rev = cur->mod_revision;
  }
  if (err && !(err == UV_ECANCELED && e->closing) && j->stop == STOP_NONE) {
    /* The answer is lost, not necessarily the claim: etcd may have applied
     * it.  Read the key back before deciding (verify_claim). */
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
    char *key = wf_strdup(j->key);
    job_done(j);
    /* Decide again once the watch has the newer value (or etcd is back). */
    if (!e->closing) wf__queue_retry(e->queue, key);
    free(key);
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
    if (j->stop == STOP_CANCEL) job_set_outcome(j, WF__STEP__STATUS__CANCELED, "canceled");
    job_finish(j);
    return;
  }
  job_resolve(j);
}

/* Writes a status to a step this node will not run (bad input, recovery). */
static void write_only(wf_engine_t *e, wf_cache_entry_t *entry, int status, const char *msg) {
  job_t *j = job_create(e, entry, 0);
  job_set_outcome(j, status, "%s", msg);
  job_write_final(j);
}

/* Checks a step before the node takes it, and creates its job.  Returns
 * NULL (after writing FAILED where that is the answer) when it cannot run. */
static job_t *prepare(wf_engine_t *e, wf_cache_entry_t *entry, int64_t start_at, json_t *o) {
  char err[300];
  Wf__Step *s = (Wf__Step *)wf_codec_decode(&wf__step__descriptor, o, 0, err, sizeof err);
  if (!s) {
    char *m = wf_asprintf("invalid step: %s", err);
    wf_warn(entry->key, "%s", m);
    write_only(e, entry, WF__STEP__STATUS__FAILED, m);
    free(m);
    return NULL;
  }
  if (!wf_log_key_safe(entry->key)) {
    wf_codec_free((ProtobufCMessage *)s);
    char *m = wf_asprintf("step key \"%s\" cannot be used as a log file name", entry->key);
    wf_warn(entry->key, "%s", m);
    write_only(e, entry, WF__STEP__STATUS__FAILED, m);
    free(m);
    return NULL;
  }
  char path[4096];
  if (wf_log_path(path, sizeof path, e->log_dir, entry->key, start_at) != 0) {
    wf_codec_free((ProtobufCMessage *)s);
    write_only(e, entry, WF__STEP__STATUS__FAILED, "log path too long");
    return NULL;
  }
  job_t *j = job_create(e, entry, 1);
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

/* seen_ms: when the PENDDING value was seen (wf_mono_ms), for metrics. */
/* o: the entry's value parsed by the caller, borrowed (patched in place),
 * or NULL to parse it here and claim it only if it is still PENDDING. */
static void claim(wf_engine_t *e, wf_cache_entry_t *entry, uint64_t seen_ms, json_t *o) {
  if (o) {
    json_incref(o);
  } else {
    o = load_obj(entry->value);
    if (!o) return; /* filtered already; cannot happen */
    wf_step_head_t h;
    wf_step_head(o, &h);
    if (h.status != WF__STEP__STATUS__PENDDING) {
      json_decref(o);
      return;
    }
  }
  int64_t now = wf_now_ms();
  job_t *j = prepare(e, entry, now, o);
  if (!j) {
    json_decref(o);
    return;
  }
  j->seen_ms = seen_ms;
  j->state = J_CLAIMING;
  wf_step_patch_t p = {
      .status = WF__STEP__STATUS__RUNNING,
      .set_start_at = 1,
      .start_at = now,
      .set_message = 1,
      .message = "",
      .response = j->response.kv,
      .nresponse = j->response.n,
      .update_at = now,
  };
  wf_step_apply_patch(o, &p);
  free(j->json);
  j->json = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  claim_send(j);
}

/* ---- dispatch ------------------------------------------------------------------------------------ */

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

static char *wait_pop(wf_engine_t *e) {
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

/* Starts waiting steps, oldest first, while slots are free. */
static void pump_waiting(wf_engine_t *e) {
  while (e->wait_len && can_start(e)) {
    uint64_t seen = (uintptr_t)wf_map_get(&e->waiting, e->wait[e->wait_head]);
    char *k = wait_pop(e);
    wf_cache_entry_t *entry = wf_informer_get(e->steps, k);
    free(k);
    if (!entry || entry->owner || !entry->value) continue;
    claim(e, entry, seen, NULL);  /* if it is still PENDDING */
  }
}

/* ---- docker recovery ---------------------------------------------------------------------------
 * After a restart, a RUNNING docker step may still have its container: the
 * engine lists this node's containers once, waits for the action catalog,
 * then decides each RUNNING step it does not know: re-attach to its
 * container, or FAILED when there is none.  Containers whose step is
 * complete or gone are removed (orphans). */

typedef struct container_s {
  char *id;
  int running;
} container_t;

/* The step is ours and its container is there: run the job from RESOLVING
 * on, attached to the container instead of a new one. */
static void resume_attach(wf_engine_t *e, wf_cache_entry_t *entry, int64_t start_at,
                          container_t *c) {
  json_t *o = load_obj(entry->value);
  if (!o) return;
  job_t *j = prepare(e, entry, start_at, o);
  json_decref(o);
  if (!j) return;
  wf_info(entry->key, "re-attaching to container %.12s after the restart", c->id);
  j->attach_id = wf_strdup(c->id);
  j->start_at = start_at;
  c->running = -1; /* claimed by a job: not an orphan */
  job_resolve(j);
}

static void remove_orphans(wf_engine_t *e) {
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *k;
  void *v;
  while (wf_map_iter_next(&e->containers, &it, &k, &v)) {
    container_t *c = v;
    if (c->running < 0) continue;
    wf_cache_entry_t *entry = wf_informer_get(e->steps, k);
    int live = 0;
    if (entry && entry->value) {
      json_t *o = load_obj(entry->value);
      wf_step_head_t h = {.node = "", .status = -1};
      if (o) wf_step_head(o, &h);
      live = h.status == WF__STEP__STATUS__RUNNING;
      json_decref(o);
    }
    if (live) continue;
    if (e->keep_containers) {
      wf_info(k, "container %.12s left over (--keep-containers)", c->id);
      continue;
    }
    wf_info(k, "removing left-over container %.12s", c->id);
    wf_docker_runner_remove(e->docker, c->id, NULL, NULL);
  }
}

/* Recovery decisions can be made once the container list is in (or given up
 * on) and the catalog is synced; then the waiting RUNNING steps are looked
 * at again. */
static void recover_settle(wf_engine_t *e) {
  if (e->recover_ready || e->closing || !e->docker_listed || !wf__catalog_synced(e->catalog))
    return;
  e->recover_ready = 1;
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *k;
  void *v;
  while (wf_map_iter_next(&e->recover_keys, &it, &k, &v)) wf__queue_add(e->queue, k);
  wf_map_finish(&e->recover_keys);
  if (e->docker && e->steps_synced) remove_orphans(e);
}

static void list_containers(wf_engine_t *e);

static void on_docker_timer(uv_timer_t *t) { list_containers(t->data); }

static void on_containers(int err, const wf_docker_container_t *c, size_t n, void *data) {
  wf_engine_t *e = data;
  if (e->closing) return;
  if (err) {
    /* An engine that is restarting with us gets a few seconds; a node
     * without docker must not hold its LOCAL recoveries for long. */
    if (++e->list_attempts < 4) {
      uv_timer_start(&e->docker_timer, on_docker_timer, 1000, 0);
      return;
    }
    wf_warn(NULL, "cannot list this node's containers (%s); RUNNING docker steps from before "
            "the restart end FAILED", wf_strerror(err));
  } else {
    for (size_t i = 0; i < n; i++) {
      if (!c[i].step_key || !c[i].step_key[0]) continue;
      container_t *ct = wf_calloc(1, sizeof *ct);
      ct->id = wf_strdup(c[i].id);
      ct->running = c[i].running;
      container_t *old = wf_map_put(&e->containers, c[i].step_key, ct);
      if (old) {
        /* Two containers claim one step: keep the newest listed, drop the
         * other as an orphan. */
        wf_docker_runner_remove(e->docker, old->id, NULL, NULL);
        free(old->id);
        free(old);
      }
    }
    if (n) wf_info(NULL, "found %zu containers of this node from before", n);
  }
  e->docker_listed = 1;
  recover_settle(e);
}

static void list_containers(wf_engine_t *e) {
  if (e->closing) return;
  if (wf_docker_runner_list(e->docker, on_containers, e) != 0) on_containers(UV_EINVAL, NULL, 0, e);
}

static void dispatch_head(wf_engine_t *e, const char *key, wf_cache_entry_t *entry,
                          const wf_step_head_t *h, json_t *o);

static void dispatch(const char *key, void *data) {
  wf_engine_t *e = data;
  if (e->closing) return;
  wf_cache_entry_t *entry = wf_informer_get(e->steps, key);
  if (!entry || !entry->value) return;
  job_t *j = entry->owner;
  /* Mid-write, the job decides on the txn's answer: nothing to parse (the
   * echo of our own claim often comes before that answer). */
  if (j && (j->state == J_CLAIMING || j->state == J_FINISHING || j->state == J_DONE)) return;
  /* The head from the bytes when the scanner is sure; the tree otherwise
   * (a claim parses the value itself when it gets none). */
  wf_step_head_t h;
  char node[256];
  json_t *o = NULL;
  if (!wf_step_head_scan(entry->value, entry->value_len, &h, node, sizeof node)) {
    o = load_obj(entry->value);
    if (!o) return;
    wf_step_head(o, &h);
  }
  dispatch_head(e, key, entry, &h, o);
  json_decref(o);
}

/* key: the queue's (valid for the whole call); h and o (the parsed value,
 * or NULL) borrowed. */
static void dispatch_head(wf_engine_t *e, const char *key, wf_cache_entry_t *entry,
                          const wf_step_head_t *h, json_t *o) {
  job_t *j = entry->owner;
  int status = h->status;
  int64_t start_at = h->start_at;

  if (j) {
    /* A step we hold changed under us. */
    if (status == WF__STEP__STATUS__CANCELING) {
      wf_info(key, "cancel requested; stopping it");
      job_stop(j, STOP_CANCEL);
    } else if (wf_status_is_final(status)) {
      wf_info(key, "set to %s by someone else; stopping it", wf_status_name(status));
      job_stop(j, STOP_AWAY);
    }
    return;
  }
  switch (status) {
    case WF__STEP__STATUS__PENDDING:
      if (e->draining) return;
      if (can_start(e) && !e->wait_len) {
        claim(e, entry, wf_mono_ms(), o);
      } else {
        wait_push(e, key);
        pump_waiting(e);
      }
      break;
    case WF__STEP__STATUS__RUNNING: {
      /* RUNNING but unknown: recover only what was running before this
       * process started; a step claimed since then belongs to another
       * process (e.g. a second agent misconfigured with our name). */
      if (start_at >= e->start_ms) break;
      if (!e->recover_ready) {
        wf_map_put(&e->recover_keys, key, (void *)1);
        break;
      }
      container_t *c = wf_map_get(&e->containers, key);
      if (c) {
        resume_attach(e, entry, start_at, c);
        break;
      }
      wf_warn(key, "was RUNNING when this node (re)started; marking it FAILED");
      write_only(e, entry, WF__STEP__STATUS__FAILED, "node restarted while the step was running");
      break;
    }
    case WF__STEP__STATUS__CANCELING:
      if (start_at == 0) {
        write_only(e, entry, WF__STEP__STATUS__CANCELED, "canceled before it ran");
      } else if (start_at < e->start_ms) {
        if (!e->recover_ready) {
          wf_map_put(&e->recover_keys, key, (void *)1);
          break;
        }
        /* Its container (if any) is an orphan now: removed in recover_settle. */
        write_only(e, entry, WF__STEP__STATUS__CANCELED,
                   "canceled; the node restarted while the step was running");
      }
      break;
    default:
      break;
  }
}

/* ---- informer callbacks -------------------------------------------------------------------------- */

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
  if (!e->quoted_name || memchr(value, '\\', len)) return 0;
  return memmem(value, len, e->quoted_name, e->quoted_len) == NULL;
}

static void step_upsert(wf_informer_t *inf, wf_cache_entry_t *entry, void *data) {
  wf_engine_t *e = data;
  if (e->closing) return;
  job_t *j = entry->owner;
  if (j && j->state != J_CLAIMING && entry->value && entry->mod_revision > j->mod_rev) {
    /* Keep the job's base current so its final txn compares the right
     * revision and keeps the other writer's change. */
    free(j->json);
    j->json = wf_strndup(entry->value, entry->value_len);
    j->mod_rev = entry->mod_revision;
  }
  wf__queue_add(e->queue, entry->key);
}

static void step_delete(wf_informer_t *inf, wf_cache_entry_t *entry, int deleted, void *data) {
  job_t *j = entry->owner;
  entry->owner = NULL;
  if (!j) return;
  if (j->state == J_RUNNING || j->state == J_RESOLVING || j->state == J_CLAIMING) {
    wf_info(entry->key, "%s; stopping it", deleted ? "key deleted" : "reassigned away");
    job_stop(j, deleted ? STOP_DELETE : STOP_AWAY);
  }
}

static void step_synced(wf_informer_t *inf, int first, void *data) {
  wf_engine_t *e = data;
  if (!first) e->stats.relists++;
  if (first) {
    wf_info(NULL, "step cache ready: %zu steps of node %s", wf_informer_size(inf), e->node_name);
    e->steps_synced = 1;
    if (e->recover_ready && e->docker) remove_orphans(e);
  }
}

static void catalog_synced(void *data) {
  wf_engine_t *e = data;
  recover_settle(e);
  pump_waiting(e);
}

/* ---- public ---------------------------------------------------------------------------------------- */

wf_engine_t *wf_engine_create(uv_loop_t *loop, wf_etcd_t *etcd, const wf_engine_cfg_t *cfg,
                              char *err, size_t errlen) {
  wf_engine_t *e = wf_calloc(1, sizeof *e);
  e->loop = loop;
  e->etcd = etcd;
  e->node_name = wf_strdup(cfg->node_name);
  /* The skip test needs the name's bytes to appear verbatim in any JSON
   * that holds it: no character JSON must escape. */
  int plain = 1;
  for (const unsigned char *c = (const unsigned char *)e->node_name; *c; c++)
    if (*c < 0x20 || *c == '"' || *c == '\\' || *c == 0x7f) plain = 0;
  if (plain && *e->node_name) {
    e->quoted_name = wf_asprintf("\"%s\"", e->node_name);
    e->quoted_len = strlen(e->quoted_name);
  }
  e->prefix = wf_strdup(cfg->prefix);
  e->log_dir = wf_strdup(cfg->log_dir);
  e->mask_params = wf_strdup(cfg->mask_params ? cfg->mask_params : "");
  e->steps_prefix = wf_asprintf("%s/workflow/steps/", cfg->prefix);
  e->max_parallel = cfg->max_parallel ? cfg->max_parallel : 16;
  e->step_timeout_s = cfg->step_timeout_s;
  e->stop_grace_s = cfg->stop_grace_s;
  e->start_ms = wf_now_ms();
  snprintf(e->claim_id, sizeof e->claim_id, "%ld.%lld", (long)getpid(), (long long)e->start_ms);
  wf_map_init(&e->waiting);
  wf_map_init(&e->complained);
  wf_map_init(&e->containers);
  wf_map_init(&e->recover_keys);
  e->docker = cfg->docker;
  e->keep_containers = cfg->keep_containers;
  e->catalog = wf__catalog_create(loop, etcd, cfg->prefix, cfg->actions_dir, cfg->resync_s,
                                  catalog_synced, e, err, errlen);
  if (!e->catalog) {
    free(e->mask_params);
    free(e->node_name);
    free(e->quoted_name);
    free(e->prefix);
    free(e->log_dir);
    free(e->steps_prefix);
    free(e);
    return NULL;
  }
  wf_informer_cbs_t cbs = {.filter = step_filter, .skip = step_skip, .filter_raw = step_filter_raw,
                           .on_upsert = step_upsert,
                           .on_delete = step_delete, .on_synced = step_synced};
  e->steps = wf_informer_create(loop, etcd, e->steps_prefix, cfg->resync_s,
                                cfg->page_size ? cfg->page_size : 1000, &cbs, e);
  e->queue = wf__queue_create(loop, dispatch, e);
  uv_timer_init(loop, &e->drain_timer);
  e->drain_timer.data = e;
  uv_timer_init(loop, &e->docker_timer);
  e->docker_timer.data = e;
  return e;
}

void wf_engine_start(wf_engine_t *e) {
  if (e->docker)
    list_containers(e);
  else
    e->docker_listed = 1;
  wf__catalog_start(e->catalog);
  wf_informer_start(e->steps);
}

static void maybe_drained(wf_engine_t *e) {
  if (!e->draining || e->njobs || !e->drain_cb) return;
  uv_timer_stop(&e->drain_timer);
  void (*cb)(void *) = e->drain_cb;
  e->drain_cb = NULL;
  cb(e->drain_data);
}

static void on_drain_timeout(uv_timer_t *t) {
  wf_engine_t *e = t->data;
  if (e->njobs) wf_warn(NULL, "drain timeout: stopping %u running steps", e->slots);
  for (job_t *j = e->jobs; j; j = j->next) job_stop(j, STOP_DRAIN);
}

void wf_engine_drain(wf_engine_t *e, unsigned timeout_s, void (*cb)(void *data), void *data) {
  e->draining = 1;
  e->drain_cb = cb;
  e->drain_data = data;
  /* Waiting steps stay PENDDING in etcd for the next node or restart. */
  char *k;
  while ((k = wait_pop(e))) free(k);
  if (e->njobs) {
    wf_info(NULL, "draining: waiting up to %u s for %u running steps", timeout_s, e->slots);
    uv_timer_start(&e->drain_timer, on_drain_timeout, (uint64_t)timeout_s * 1000, 0);
  }
  maybe_drained(e);
}

static void part_closed(void *data) {
  wf_engine_t *e = data;
  if (--e->closing_parts) return;
  void (*cb)(void *) = e->close_cb;
  void *cd = e->close_data;
  free(e->wait);
  wf_map_finish(&e->waiting);
  wf_map_finish(&e->complained);
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *k;
  void *v;
  while (wf_map_iter_next(&e->containers, &it, &k, &v)) {
    free(((container_t *)v)->id);
    free(v);
  }
  wf_map_finish(&e->containers);
  wf_map_finish(&e->recover_keys);
  free(e->node_name);
  free(e->quoted_name);
  free(e->prefix);
  free(e->log_dir);
  free(e->steps_prefix);
  free(e->mask_params);
  free(e);
  if (cb) cb(cd);
}

static void on_drain_timer_closed(uv_handle_t *h) { part_closed(h->data); }

void wf_engine_close(wf_engine_t *e, void (*cb)(void *data), void *data) {
  e->closing = 1;
  e->close_cb = cb;
  e->close_data = data;
  char *k;
  while ((k = wait_pop(e))) free(k);
  /* Jobs still alive (close without drain) are stopped; their callbacks
   * arrive with UV_ECANCELED once the etcd client closes, and they finish
   * then.  A normal shutdown drains first, so there are none. */
  for (job_t *j = e->jobs; j; j = j->next) job_stop(j, STOP_DRAIN);
  /* The jobs count as one part: the last job_free closes it. */
  e->closing_parts = 5 + (e->njobs ? 1 : 0);
  wf__queue_close(e->queue, part_closed, e);
  wf_informer_t *inf = e->steps;
  e->steps = NULL;
  wf_informer_close(inf, part_closed, e);
  wf__catalog_close(e->catalog, part_closed, e);
  uv_close((uv_handle_t *)&e->drain_timer, on_drain_timer_closed);
  uv_close((uv_handle_t *)&e->docker_timer, on_drain_timer_closed);
}

void wf_engine_stats(const wf_engine_t *e, wf_engine_stats_t *out) {
  *out = e->stats;
  out->running = e->slots;
  out->waiting = e->wait_len;
  out->cached = wf_informer_size(e->steps);
}

int wf_engine_live(const wf_engine_t *e) {
  return wf_informer_live(e->steps) && wf__catalog_live(e->catalog);
}

void wf_engine_set_observer(wf_engine_t *e, wf_engine_observe_cb cb, void *data) {
  e->observe = cb;
  e->observe_data = data;
}

/* ---- reload (SIGHUP) -------------------------------------------------------------------------------- */

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
  /* Read where a job starts (job_run, can_start), so running jobs keep the
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
  pump_waiting(e);
}
