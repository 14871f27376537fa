/*
 * run: RUNNING and ENDING.  The params merge (action defaults < pipeline
 * `with` < outputs of earlier steps < step `with`, then required params and
 * env names checked), the
 * secrets to mask are picked, the timeout read, and the runner that serves
 * the action's runner_type starts the step with the merged params plus
 * WORKFLOW_* as its environment and the step's log file as its output.
 *
 * The outcome is decided when the runner reports the exit, and written only
 * once the log file is closed (ENDING), so that a SUCCEEDED step's log is
 * on disk and a failed write of it fails the step.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"

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

/* Builds the environment: merged params, then the WORKFLOW_* variables,
 * which always win.  (The node's PATH goes as the request's host_path: a
 * process on the host gets it when no param sets PATH, a container keeps
 * its image's.) */
static char **build_env(wf__job_t *j, const wf_params_t *params) {
  wf_engine_t *e = j->e;
  const Wf__Step *s = j->step;
  size_t n = params->n + 8;
  char **env = wf_calloc(n, sizeof *env);
  size_t k = 0;
  static const char *const reserved[] = {"WORKFLOW_STEP_KEY",    "WORKFLOW_NODE_NAME",
                                         "WORKFLOW_NAMESPACE",   "WORKFLOW_PIPELINE_ID",
                                         "WORKFLOW_OUTPUT",      "WORKFLOW_SUMMARY"};
  size_t nreserved = sizeof reserved / sizeof reserved[0];
  for (size_t i = 0; i < params->n; i++) {
    int skip = 0;
    for (size_t r = 0; r < nreserved; r++) skip |= strcmp(params->kv[i].key, reserved[r]) == 0;
    if (!skip) env[k++] = wf_asprintf("%s=%s", params->kv[i].key, params->kv[i].value);
  }
  env[k++] = wf_asprintf("WORKFLOW_STEP_KEY=%s", j->key);
  env[k++] = wf_asprintf("WORKFLOW_NODE_NAME=%s", e->node_name);
  env[k++] = wf_asprintf("WORKFLOW_NAMESPACE=%s", s->namespace_ ? s->namespace_ : "");
  env[k++] = wf_asprintf("WORKFLOW_PIPELINE_ID=%s", s->pipeline_id ? s->pipeline_id : "");
  if (j->out_ready) {
    env[k++] = wf_asprintf("WORKFLOW_OUTPUT=%s/output", j->out_dir);
    env[k++] = wf_asprintf("WORKFLOW_SUMMARY=%s/summary", j->out_dir);
  }
  env[k] = NULL;
  return env;
}

/* The runner instance serving runner_type, or NULL. */
static wf_runner_t *runner_for(const wf_engine_t *e, int runner_type) {
  for (size_t i = 0; i < e->nrunners; i++)
    if (e->runners[i]->ops->type == runner_type) return e->runners[i];
  return NULL;
}

/* WORKFLOW_TIMEOUT (seconds), else --step-timeout.  -1 with *msg set
 * (malloc'd) for a value that is not a number of seconds. */
static int read_timeout(const wf_engine_t *e, const wf_params_t *params, unsigned *out,
                        char **msg) {
  const char *t = wf_params_get(params, "WORKFLOW_TIMEOUT");
  *out = e->step_timeout_s;
  if (!t || !t[0]) return 0;
  char *end;
  errno = 0;
  unsigned long v = strtoul(t, &end, 10);
  if (errno || *end || t[0] == '-' || v > 100u * 24 * 3600) {
    *msg = wf_asprintf("WORKFLOW_TIMEOUT: \"%s\" is not a number of seconds", t);
    return -1;
  }
  *out = (unsigned)v;
  return 0;
}

/* ---- ENDING ---------------------------------------------------------------------------------- */

static void on_log_closed(wf_logfile_t *f, int err, void *data) {
  wf__job_t *j = data;
  (void)f;
  j->log = NULL;
  if (err && !j->log_err) j->log_err = err;
  if (j->log_err && j->stop != STOP_DELETE && j->stop != STOP_AWAY)
    wf__job_set_outcome(j, WF__STEP__STATUS__FAILED, "writing the log %s failed: %s",
                        j->log_path, wf_strerror(j->log_err));
  wf__job_collect_outputs(j);
}

static void on_log_error(wf_logfile_t *f, int err, void *data) {
  wf__job_t *j = data;
  (void)f;
  if (!j->log_err) j->log_err = err;
  wf_error(j->key, "log file %s: %s; stopping the step", j->log_path, wf_strerror(err));
  wf__job_stop(j, STOP_LOGERR);
}

/* The outcome of a run that ended. */
static void judge(wf__job_t *j, const wf_run_result_t *r) {
  if (r->error)
    wf__job_set_outcome(j, WF__STEP__STATUS__FAILED, "%s", r->error);
  else if (j->stop == STOP_TIMEOUT)
    wf__job_set_outcome(j, WF__STEP__STATUS__FAILED, "timed out after %u s", j->timeout_s);
  else if (j->stop == STOP_CANCEL)
    wf__job_set_outcome(j, WF__STEP__STATUS__CANCELED, "canceled");
  else if (j->stop == STOP_DRAIN)
    wf__job_set_outcome(j, WF__STEP__STATUS__FAILED,
                        "node shut down before the step finished (drain timeout)");
  else if (r->exit_code == 0 && !r->term_signal)
    wf__job_set_outcome(j, WF__STEP__STATUS__SUCCEEDED, "%s", "");
  else if (r->term_signal)
    wf__job_set_outcome(j, WF__STEP__STATUS__FAILED, "process killed by signal %d (exit code %d)",
                        r->term_signal, r->exit_code);
  else
    wf__job_set_outcome(j, WF__STEP__STATUS__FAILED, "%s exited with exit code %d",
                        j->runner->ops->unit, r->exit_code);
}

static void on_run_exit(wf_run_t *run, const wf_run_result_t *r, void *data) {
  wf__job_t *j = data;
  char num[32];
  (void)run;
  j->run = NULL;
  snprintf(num, sizeof num, "%d", r->exit_code);
  wf_params_set(&j->response, "exit_code", num);
  for (size_t i = 0; i < r->nresponse; i++)
    wf_params_set(&j->response, r->response[i].key, r->response[i].value);
  judge(j, r);
  /* The outcome is final once the log is on disk: close it first. */
  wf__job_enter(j, JOB_ENDING);
  if (j->log)
    wf_logfile_close(j->log);
  else
    wf__job_finish(j);
}

static void on_timeout(uv_timer_t *t) {
  wf__job_t *j = t->data;
  if (j->state == JOB_RUNNING && j->stop == STOP_NONE) {
    wf_warn(j->key, "timed out after %u s; stopping it", j->timeout_s);
    wf__job_stop(j, STOP_TIMEOUT);
  }
}

/* ---- RUNNING --------------------------------------------------------------------------------- */

/* Starts the runner on the merged params. */
static void start_run(wf__job_t *j, const Wf__Action *action, const wf_params_t *params) {
  wf_engine_t *e = j->e;
  /* A run left from before a restart continues in the runner that has it,
   * and so does its log file. */
  const char *attach = j->attach_id && j->attach_runner == j->runner ? j->attach_id : NULL;
  wf_logfile_cbs_t lcbs = {.on_closed = on_log_closed, .on_error = on_log_error};
  j->log = j->attach_id ? wf_logfile_open_append(e->loop, j->log_path, 0, &lcbs, j)
                        : wf_logfile_open(e->loop, j->log_path, 0, &lcbs, j);
  /* j->mask outlives the file: it is freed with the job. */
  if (j->mask) wf_logfile_set_mask(j->log, j->mask);
  char **env = build_env(j, params);
  const char *host_path = getenv("PATH");
  size_t nrp;
  wf_kv_t *rp = wf_action_runner_params(action, &nrp);
  wf_run_req_t req = {
      .step_key = j->key,
      .runner_params = rp,
      .nrunner_params = nrp,
      .env = (const char *const *)env,
      .log = j->log,
      .stop_grace_s = e->stop_grace_s,
      .attach_id = attach,
      .output_dir = j->out_ready ? j->out_dir : NULL,
      .host_path = host_path ? host_path : "/usr/local/bin:/usr/bin:/bin",
  };
  wf_run_cbs_t rcbs = {.on_exit = on_run_exit};
  char rerr[512] = "";
  wf__job_enter(j, JOB_RUNNING);
  j->run = j->runner->ops->start(j->runner, &req, &rcbs, j, rerr, sizeof rerr);
  wf_argv_free(env);
  free(rp);
  if (!j->run) {
    wf__job_set_outcome(j, WF__STEP__STATUS__FAILED, "%s",
                        rerr[0] ? rerr : "runner failed to start");
    wf__job_enter(j, JOB_ENDING);
    wf_logfile_close(j->log);
    return;
  }
  e->stats.started++;
  wf_info(j->key, "running (%s runner%s)", j->runner->ops->name,
          j->timeout_s ? ", with timeout" : "");
  if (j->timeout_s) uv_timer_start(&j->timer, on_timeout, (uint64_t)j->timeout_s * 1000, 0);
}

void wf__job_run(wf__job_t *j) {
  wf_engine_t *e = j->e;
  const Wf__Action *action = j->action;
  wf_params_t params;
  char *err = NULL;
  if (j->stop != STOP_NONE) {
    /* Canceled or deleted while we resolved. */
    if (j->stop == STOP_CANCEL) wf__job_set_outcome(j, WF__STEP__STATUS__CANCELED, "canceled");
    wf__job_discard_outputs(j);
    wf__job_finish(j);
    return;
  }
  wf_params_init(&params);
  if (wf_params_merge(action, j->pipeline, &j->offers, j->step, &params, &err) != 0) goto fail;
  j->mask = build_mask(e, action, &params);
  if (read_timeout(e, &params, &j->timeout_s, &err) != 0) goto fail;
  j->runner = runner_for(e, action->runner_type);
  if (!j->runner) {
    const char *name = wf_enum_name(&wf__runner__type__descriptor, action->runner_type);
    err = wf_asprintf("runner type %s is not supported by this node yet", name ? name : "UNKNOWN");
    goto fail;
  }
  start_run(j, action, &params);
  wf_params_finish(&params);
  return;
fail:
  wf__job_discard_outputs(j);
  wf__job_fail_early(j, err);
  free(err);
  wf_params_finish(&params);
}
