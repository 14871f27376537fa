/*
 * describe: `wfctl describe STEP_KEY` reads the step, then its action, then
 * for a pipeline step its pipeline and the other steps of its pipeline run
 * (one read at a time, each answer starting the next), and prints the model
 * of describe-model.c as text, JSON or YAML.  An action or pipeline that is
 * not in etcd is not an error: the model notes it.
 *
 * The run is read as the node reads it before it runs a step (engine/
 * outputs.c): one paged list of P/workflow/steps/<namespace>.<pipeline id>.,
 * each step fed to wf_offers_add_bytes, which keeps the earlier ones that
 * succeeded; wf_offers_finish merges them into the offers and, per name, the
 * step it came from.  So describe shows what the node would merge now.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/cli.h"
#include "wf/codec.h"
#include "wf/model.h"
#include "wf/outputs.h"
#include "wf/util.h"
#include "wfctl-internal.h"

/* Steps per page of the run's list, as the node asks for them
 * (engine/outputs.c says why 64). */
#define RUN_PAGE 64

/* A stored value for the describe model: the JSON, or a string (which the
 * codec refuses, so the model notes the object as invalid).  kv is
 * borrowed; the value is new. */
static json_t *load_stored(const wf_etcd_kv_t *kv) {
  json_t *v = json_loadb(kv->value, kv->value_len, 0, NULL);
  return v ? v : json_string("(not JSON)");
}

static void render(wf__ctl_t *c) {
  wf_cli_offers_t offers = {&c->d_offer_values, &c->d_offer_origins,
                            c->d_offers_err[0] ? c->d_offers_err : NULL};
  json_t *m = wf_cli_describe(c->d_step, c->d_action, c->d_pipeline,
                              c->d_listed ? &offers : NULL, c->mask_params, wf_now_ms());
  char *s = c->out == OUT_JSON   ? json_dumps(m, JSON_INDENT(2))
            : c->out == OUT_YAML ? wf_cli_yaml_dump(m)
                                 : wf_cli_describe_text(m);
  json_decref(m);
  if (!s) {
    fprintf(stderr, "wfctl: step \"%s\": cannot format it\n", c->step_key);
    wf__ctl_end(c, 1);
    return;
  }
  printf("%s%s", s, c->out == OUT_JSON ? "\n" : "");
  free(s);
  wf__ctl_end(c, 0);
}

/* A page of the run (kvs borrowed).  Once a bound is passed the rest is
 * skipped: the answer is the error. */
static void on_run_page(const wf_etcd_kv_t *kvs, size_t n, void *data) {
  wf__ctl_t *c = data;
  if (c->finishing) return;
  size_t plen = strlen(c->prefix) + strlen("/workflow/steps/");
  for (size_t i = 0; i < n && !c->d_offers_err[0]; i++) {
    /* Most steps publish nothing: skip them without a parse. */
    if (kvs[i].key_len <= plen ||
        !memmem(kvs[i].value, kvs[i].value_len, "\"" WF_OUTPUT_KEY_PREFIX,
                sizeof WF_OUTPUT_KEY_PREFIX))
      continue;
    wf_offers_add_bytes(c->d_offers, kvs[i].key + plen, kvs[i].value, kvs[i].value_len,
                        c->d_offers_err, sizeof c->d_offers_err);
  }
}

static void on_run_done(int err, int64_t revision, void *data) {
  wf__ctl_t *c = data;
  (void)revision;
  if (c->finishing) return;
  if (err) {
    wf_pipeline_pos_t pos;
    wf_pipeline_pos(c->step_key, &pos);
    wf__ctl_fail(c, err, "listing the steps of pipeline run \"%.*s\"", (int)pos.run_len,
                 pos.run);
    wf__ctl_end(c, 1);
    return;
  }
  if (!c->d_offers_err[0])
    wf_offers_finish(c->d_offers, &c->d_offer_values, &c->d_offer_origins, c->d_offers_err,
                     sizeof c->d_offers_err);
  wf_offers_destroy(c->d_offers);
  c->d_offers = NULL;
  c->d_listed = 1;
  render(c);
}

/* Lists the step's pipeline run when its key is a pipeline step's key
 * (<namespace>.<pipeline id>.<stage>.<step>), as the node does; else the
 * step is offered nothing. */
static void read_run(wf__ctl_t *c, int64_t flow) {
  wf_pipeline_pos_t pos;
  if (wf_pipeline_pos(c->step_key, &pos) != 0 ||
      !(c->d_offers = wf_offers_create(c->step_key, flow))) {
    render(c);
    return;
  }
  char *prefix = wf_asprintf("%s/workflow/steps/%.*s", c->prefix, (int)pos.run_len, pos.run);
  int r = wf_etcd_list(c->etcd, prefix, strlen(prefix), RUN_PAGE, on_run_page, on_run_done, c);
  free(prefix);
  if (r != 0) on_run_done(r, 0, c);
}

static void on_pipeline(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    wf__ctl_fail(c, err, "reading the pipeline of step \"%s\"", c->step_key);
    wf__ctl_end(c, 1);
    return;
  }
  if (kv) c->d_pipeline = load_stored(kv);
  /* The step's flow orders it among the steps of its own stage. */
  Wf__Step *st = (Wf__Step *)wf_codec_decode(&wf__step__descriptor, c->d_step, 0, NULL, 0);
  int64_t flow = st && st->status ? st->status->flow_number : 0;
  wf_codec_free((ProtobufCMessage *)st);
  read_run(c, flow);
}

static void on_action(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    wf__ctl_fail(c, err, "reading action \"%s\" of step \"%s\"", wf__jstr(c->d_step, "action"),
                 c->step_key);
    wf__ctl_end(c, 1);
    return;
  }
  if (kv) c->d_action = load_stored(kv);
  /* Pipeline steps merge the pipeline's `with` too (as engine.c does). */
  Wf__Step *st = (Wf__Step *)wf_codec_decode(&wf__step__descriptor, c->d_step, 0, NULL, 0);
  if (st && st->create_type == WF__STEP__CREATE__BY__PIPELINE) {
    char *key = wf_asprintf("%s/workflow/pipelines/%s/%s", c->prefix, st->namespace_,
                            st->pipeline_id);
    wf_codec_free((ProtobufCMessage *)st);
    wf__ctl_read_key(c, key, on_pipeline);
    free(key);
    return;
  }
  wf_codec_free((ProtobufCMessage *)st);
  render(c);
}

static void on_step(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (!wf__ctl_step_found(c, err, kv)) {
    wf__ctl_end(c, 1);
    return;
  }
  c->d_step = wf__ctl_parse_step(c, kv);
  if (!c->d_step) {
    wf__ctl_end(c, 1);
    return;
  }
  char *name, *version;
  wf_action_ref_split(wf__jstr(c->d_step, "action"), &name, &version);
  char *key = wf_asprintf("%s/workflow/actions/%s@%s", c->prefix, name, version);
  free(name);
  free(version);
  wf__ctl_read_key(c, key, on_action);
  free(key);
}

void wf__describe_start(wf__ctl_t *c) { wf__ctl_read_key(c, c->etcd_key, on_step); }
