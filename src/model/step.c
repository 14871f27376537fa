/*
 * step: what the node reads from and writes into a stored step, plus the
 * parameter merge.  The node never re-encodes a step from its message: it
 * patches the stored JSON object, so keys it does not own (including keys
 * the schema does not know) keep their stored values (docs/protocol.md §3).
 */
#include "wf/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wf/util.h"

int wf_status_is_final(int s) {
  switch (s) {
    case WF__STEP__STATUS__SUCCEEDED:
    case WF__STEP__STATUS__FAILED:
    case WF__STEP__STATUS__CANCELED:
    case WF__STEP__STATUS__SKIP:
    case WF__STEP__STATUS__REFUSE:
    case WF__STEP__STATUS__AUDITING:
    case WF__STEP__STATUS__SCHEDULE_FAILED:
      return 1;
    default:
      return 0;
  }
}

const char *wf_status_name(int s) {
  const char *n = wf_enum_name(&wf__step__status__descriptor, s);
  return n ? n : "UNKNOWN";
}

void wf_step_head(const json_t *obj, wf_step_head_t *out) {
  out->node = "";
  out->status = -1;
  out->start_at = 0;
  json_t *st = json_object_get(obj, "status");
  if (!json_is_object(st)) return;
  json_t *n = json_object_get(st, "scheduled_node");
  if (json_is_string(n)) out->node = json_string_value(n);
  json_t *s = json_object_get(st, "status");
  int v;
  if (json_is_string(s)) {
    if (wf_enum_parse(&wf__step__status__descriptor, json_string_value(s), &v) == 0)
      out->status = v;
  } else if (json_is_integer(s)) {
    if (wf_enum_name(&wf__step__status__descriptor, (int)json_integer_value(s)))
      out->status = (int)json_integer_value(s);
  } else if (s == NULL || json_is_null(s)) {
    out->status = WF__STEP__STATUS__PENDDING; /* proto3 zero value */
  }
  json_t *sa = json_object_get(st, "start_at");
  if (json_is_integer(sa)) out->start_at = json_integer_value(sa);
}

/* Sets key on o after removing every other key that matches it ignoring
 * ASCII case.  The codec, like Go's encoding/json, takes a case-insensitive
 * match as the same field, the later key winning: a stored step holding both
 * "status" and "Status" would otherwise decode with the value the node did
 * not write (found by fuzz-codec). */
static void set_key(json_t *o, const char *key, json_t *v) {
  const char *k;
  json_t *x;
  void *tmp;
  json_object_foreach_safe(o, tmp, k, x) {
    if (strcmp(k, key) != 0 && wf_ascii_casecmp(k, key) == 0) json_object_del(o, k);
  }
  json_object_set_new(o, key, v);
}

int wf_step_apply_patch(json_t *obj, const wf_step_patch_t *p) {
  if (!json_is_object(obj)) return -1;
  json_t *st = json_object_get(obj, "status");
  if (!json_is_object(st)) {
    st = json_object();
    set_key(obj, "status", st);
  } else {
    json_incref(st);
    set_key(obj, "status", st);  /* drops a "Status" beside it */
  }
  set_key(st, "status", json_string(wf_status_name(p->status)));
  if (p->set_start_at) set_key(st, "start_at", json_integer(p->start_at));
  if (p->set_end_at) set_key(st, "end_at", json_integer(p->end_at));
  if (p->set_message) set_key(st, "message", json_string(p->message ? p->message : ""));
  if (p->drop_prefix) {
    json_t *r = json_object_get(st, "response");
    const char *k;
    json_t *x;
    void *tmp;
    size_t dl = strlen(p->drop_prefix);
    if (json_is_object(r))
      json_object_foreach_safe(r, tmp, k, x) {
        if (strncmp(k, p->drop_prefix, dl) == 0) json_object_del(r, k);
      }
  }
  if (p->nresponse) {
    json_t *r = json_object_get(st, "response");
    if (!json_is_object(r)) {
      r = json_object();
      set_key(st, "response", r);
    } else {
      json_incref(r);
      set_key(st, "response", r);
    }
    for (size_t i = 0; i < p->nresponse; i++)
      json_object_set_new(r, p->response[i].key, json_string(p->response[i].value));
  }
  set_key(obj, "update_at", json_integer(p->update_at));
  return 0;
}

void wf_action_ref_split(const char *ref, char **name, char **version) {
  const char *at = strchr(ref, '@');
  if (!at) {
    *name = wf_strdup(ref);
    *version = wf_strdup("");
    return;
  }
  *name = wf_strndup(ref, (size_t)(at - ref));
  const char *v = at + 1;
  const char *end = strchr(v, '@');
  *version = end ? wf_strndup(v, (size_t)(end - v)) : wf_strdup(v);
}

void wf_params_init(wf_params_t *p) {
  p->kv = NULL;
  p->n = p->cap = 0;
}

void wf_params_finish(wf_params_t *p) {
  for (size_t i = 0; i < p->n; i++) {
    free((char *)p->kv[i].key);
    free((char *)p->kv[i].value);
  }
  free(p->kv);
  wf_params_init(p);
}

static void params_append(wf_params_t *p, const char *key, const char *value);

void wf_params_set(wf_params_t *p, const char *key, const char *value) {
  for (size_t i = 0; i < p->n; i++) {
    if (strcmp(p->kv[i].key, key) == 0) {
      free((char *)p->kv[i].value);
      p->kv[i].value = wf_strdup(value);
      return;
    }
  }
  params_append(p, key, value);
}

static void params_append(wf_params_t *p, const char *key, const char *value) {
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 8;
    p->kv = wf_realloc(p->kv, p->cap * sizeof *p->kv);
  }
  p->kv[p->n].key = wf_strdup(key);
  p->kv[p->n].value = wf_strdup(value);
  p->n++;
}

const char *wf_params_get(const wf_params_t *p, const char *key) {
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->kv[i].key, key) == 0) return p->kv[i].value;
  return NULL;
}

/* wf_params_set through an index of out's keys (key -> position + 1), so
 * that merging thousands of offered outputs stays linear. */
static void merge_set(wf_params_t *out, wf_map_t *idx, const char *key, const char *value) {
  size_t at = (size_t)(uintptr_t)wf_map_get(idx, key);
  if (at) {
    free((char *)out->kv[at - 1].value);
    out->kv[at - 1].value = wf_strdup(value);
    return;
  }
  params_append(out, key, value);
  wf_map_put(idx, key, (void *)(uintptr_t)out->n);
}

/* Appends "name" to msg unless it is an environment name. */
static void check_env_name(wf_buf_t *msg, const char *name) {
  if (!wf_env_name_valid(name))
    wf_buf_printf(msg, "%s\"%s\"", msg->len ? "," : "invalid parameter name (not an environment name): ",
                  name);
}

int wf_params_merge(const Wf__Action *action, const Wf__Pipeline *pipeline,
                    const wf_params_t *offers, const Wf__Step *step, wf_params_t *out,
                    char **err) {
  *err = NULL;
  wf_map_t idx;
  wf_map_init(&idx);
  for (size_t i = 0; i < out->n; i++) wf_map_put(&idx, out->kv[i].key, (void *)(uintptr_t)(i + 1));
  for (size_t i = 0; i < action->n_run_params; i++) {
    const Wf__RunParamDesc *d = action->run_params[i];
    if (d->key_name && d->key_name[0] && d->default_value && d->default_value[0])
      merge_set(out, &idx, d->key_name, d->default_value);
  }
  if (pipeline)
    for (size_t i = 0; i < pipeline->n_with; i++)
      merge_set(out, &idx, pipeline->with[i]->key, pipeline->with[i]->value);
  if (offers)
    for (size_t i = 0; i < offers->n; i++)
      merge_set(out, &idx, offers->kv[i].key, offers->kv[i].value);
  for (size_t i = 0; i < step->n_with; i++)
    merge_set(out, &idx, step->with[i]->key, step->with[i]->value);
  wf_map_finish(&idx);

  wf_buf_t msg;
  wf_buf_init(&msg, 64 * 1024);
  for (size_t i = 0; i < action->n_run_params; i++) {
    const Wf__RunParamDesc *d = action->run_params[i];
    if (!d->required || !d->key_name || !d->key_name[0]) continue;
    const char *v = wf_params_get(out, d->key_name);
    if (v && v[0]) continue;
    wf_buf_printf(&msg, "%srequired param %s",
                  msg.len ? "," : "validate run params error, ", d->key_name);
  }
  if (msg.len) {
    *err = msg.data;
    return -1;
  }
  /* The names the action, the pipeline and the step chose; an offer's
   * names were checked when its step stored them. */
  for (size_t i = 0; i < action->n_run_params; i++) {
    const Wf__RunParamDesc *d = action->run_params[i];
    if (d->key_name && d->key_name[0] && d->default_value && d->default_value[0])
      check_env_name(&msg, d->key_name);
  }
  if (pipeline)
    for (size_t i = 0; i < pipeline->n_with; i++) check_env_name(&msg, pipeline->with[i]->key);
  for (size_t i = 0; i < step->n_with; i++) check_env_name(&msg, step->with[i]->key);
  if (msg.len) {
    *err = msg.data;
    return -1;
  }
  wf_buf_finish(&msg);
  return 0;
}

wf_kv_t *wf_action_runner_params(const Wf__Action *action, size_t *n) {
  wf_kv_t *kv = wf_calloc(action->n_runner_params + 1, sizeof *kv);
  size_t k = 0;
  for (size_t i = 0; i < action->n_runner_params; i++) {
    const char *v = action->runner_params[i]->value;
    if (!v || !v[0]) continue;
    kv[k].key = action->runner_params[i]->key;
    kv[k].value = v;
    k++;
  }
  *n = k;
  return kv;
}
