/*
 * resolve: RESOLVING, the phase between the claim and the run.  The action
 * comes from the catalog (etcd wins over --actions-dir); a miss is checked
 * against etcd itself, because the actions watch is another stream and may
 * lag behind the steps watch.  A pipeline step (create_type PIPELINE, or
 * missing: the proto3 zero value, as the original reads it) also reads
 * P/workflow/pipelines/<namespace>/<pipeline_id>.  Then outputs.c reads what
 * earlier steps offer and prepares the output directory, and run.c runs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"

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

/* Decodes the single value of an etcd lookup into a message of desc:
 * NULL with *msg set (malloc'd, naming what) when it failed, is missing or
 * is invalid. */
static ProtobufCMessage *lookup_decode(wf_engine_t *e, int err, const wf_etcd_range_res_t *res,
                                       const ProtobufCMessageDescriptor *desc, const char *kind,
                                       const char *ref, char **msg) {
  char derr[256];
  ProtobufCMessage *m = NULL;
  if (err) {
    *msg = wf_asprintf("describe step %s error, %s", kind, etcd_err(e, err));
  } else if (res->nkvs == 0) {
    /* Not in etcd either; for actions, the files of --actions-dir may not
     * have it (the catalog would have answered), so this is final. */
    *msg = wf_asprintf("%s \"%s\" not found", kind, ref);
  } else {
    m = wf_codec_decode_bytes(desc, res->kvs[0].value, res->kvs[0].value_len, 0, derr,
                              sizeof derr);
    if (!m) *msg = wf_asprintf("%s \"%s\" is invalid: %s", kind, ref, derr);
  }
  return m;
}

static void on_pipeline(int err, const wf_etcd_range_res_t *res, void *data) {
  wf__job_t *j = data;
  wf_engine_t *e = j->e;
  if (err == UV_ECANCELED && e->closing) {
    wf__job_done(j);
    return;
  }
  char *ref = wf_asprintf("%s/%s", j->step->namespace_, j->step->pipeline_id);
  char *m = NULL;
  Wf__Pipeline *p = (Wf__Pipeline *)lookup_decode(e, err, res, &wf__pipeline__descriptor,
                                                  "pipeline", ref, &m);
  free(ref);
  if (!p) {
    wf__job_fail_early(j, m);
    free(m);
    return;
  }
  j->pipeline = p;
  wf__job_prepare_outputs(j);
}

/* The action is known: read the pipeline for pipeline steps, then run. */
static void have_action(wf__job_t *j) {
  wf_engine_t *e = j->e;
  if (j->step->create_type != WF__STEP__CREATE__BY__PIPELINE) {
    wf__job_prepare_outputs(j);
    return;
  }
  char *k = wf_asprintf("%s/workflow/pipelines/%s/%s", e->prefix, j->step->namespace_,
                        j->step->pipeline_id);
  if (wf_etcd_range(e->etcd, k, strlen(k), NULL, 0, NULL, on_pipeline, j) != 0)
    wf__job_fail_early(j, "cannot start the pipeline lookup");
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
  wf__job_t *j = data;
  wf_engine_t *e = j->e;
  if (err == UV_ECANCELED && e->closing) {
    wf__job_done(j);
    return;
  }
  char *m = NULL;
  j->action = (Wf__Action *)lookup_decode(e, err, res, &wf__action__descriptor, "action",
                                          j->step->action, &m);
  if (!j->action) {
    wf__job_fail_early(j, m);
    free(m);
    return;
  }
  have_action(j);
}

void wf__job_resolve(wf__job_t *j) {
  wf_engine_t *e = j->e;
  if (j->state != JOB_RESOLVING) wf__job_enter(j, JOB_RESOLVING);
  char *ref = action_ref(j->step);
  const Wf__Action *a = wf__catalog_get(e->catalog, ref);
  if (a) {
    free(ref);
    j->action = action_copy(a);
    have_action(j);
    return;
  }
  char *k = wf_asprintf("%s/workflow/actions/%s", e->prefix, ref);
  free(ref);
  if (wf_etcd_range(e->etcd, k, strlen(k), NULL, 0, NULL, on_action, j) != 0)
    wf__job_fail_early(j, "cannot start the action lookup");
  free(k);
}
