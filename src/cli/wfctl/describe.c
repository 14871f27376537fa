/*
 * describe: `wfctl describe STEP_KEY` reads the step, then its action, then
 * for a pipeline step its pipeline (one read at a time, each answer starting
 * the next), and prints the model of describe-model.c as text, JSON or
 * YAML.  An action or pipeline that is not in etcd is not an error: the
 * model notes it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "wf/cli.h"
#include "wf/codec.h"
#include "wf/model.h"
#include "wf/util.h"
#include "wfctl-internal.h"

/* A stored value for the describe model: the JSON, or a string (which the
 * codec refuses, so the model notes the object as invalid).  kv is
 * borrowed; the value is new. */
static json_t *load_stored(const wf_etcd_kv_t *kv) {
  json_t *v = json_loadb(kv->value, kv->value_len, 0, NULL);
  return v ? v : json_string("(not JSON)");
}

static void render(wf__ctl_t *c) {
  json_t *m = wf_cli_describe(c->d_step, c->d_action, c->d_pipeline, c->mask_params,
                              wf_now_ms());
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

static void on_pipeline(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    wf__ctl_fail(c, err, "reading the pipeline of step \"%s\"", c->step_key);
    wf__ctl_end(c, 1);
    return;
  }
  if (kv) c->d_pipeline = load_stored(kv);
  render(c);
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
