/*
 * describe-model: what `wfctl describe` shows about a step (pure; the unit
 * tests call it with stored values and a fixed clock).  wf_cli_describe
 * builds one JSON object from the step, its action and its pipeline as
 * etcd holds them, and what the earlier steps of its pipeline run offer it
 * (describe.c gathers those): the header, notes on what cannot be known,
 * the step with its secrets masked, the params merged as the node merges
 * them with where each came from, and the timeline.  -o json and -o yaml
 * print that object; wf_cli_describe_text lays it out for people.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wf/cli.h"
#include "wf/codec.h"
#include "wf/mask.h"
#include "wf/model.h"
#include "wf/outputs.h"
#include "wf/util.h"
#include "wfctl-internal.h"

static const char *const secret_text = WF_MASK_TEXT;

/* Secret as the node decides it (engine.c build_mask): the name matches a
 * --mask-params glob, or the action marks the run param secret. */
static int param_secret(const Wf__Action *a, const char *globs, const char *name) {
  if (globs && globs[0] && wf_mask_name_matches(globs, name)) return 1;
  for (size_t k = 0; a && k < a->n_run_params; k++)
    if (a->run_params[k]->secret && a->run_params[k]->key_name &&
        strcmp(a->run_params[k]->key_name, name) == 0)
      return 1;
  return 0;
}

/* The secret values among the merged params, as the node picks them for
 * its masker (engine/run.c build_mask): describe hides them wherever they
 * appear, as the node hides them in what it writes.  NULL: none. */
static wf_mask_t *secrets_mask(const Wf__Action *a, const char *globs, const wf_params_t *p) {
  const char **vals = wf_calloc(p->n + 1, sizeof *vals);
  size_t n = 0;
  for (size_t i = 0; i < p->n; i++)
    if (param_secret(a, globs, p->kv[i].key)) vals[n++] = p->kv[i].value;
  wf_mask_t *m = wf_mask_create(vals, n);
  free(vals);
  return m;
}

/* s with every secret value replaced, as a new JSON string.  Masking keeps
 * UTF-8 valid (a valid needle only matches on character boundaries), so the
 * fallback is never expected; it errs on the hidden side. */
static json_t *masked(const wf_mask_t *mask, const char *s) {
  char *v = wf_mask_string(mask, s);
  json_t *j = json_string(v);
  free(v);
  return j ? j : json_string(secret_text);
}

/* Where a merged param's value came from, malloc'd: the merge's sources
 * from the one that wins (step with, outputs of earlier steps, pipeline
 * with, action defaults).  *step_name: the step whose output it is, else
 * NULL. */
static char *param_from(const Wf__Step *st, const Wf__Pipeline *p, const wf_params_t *origins,
                        const char *key, const char **step_name) {
  *step_name = NULL;
  for (size_t i = 0; i < st->n_with; i++)
    if (strcmp(st->with[i]->key, key) == 0) return wf_strdup("step");
  const char *o = origins ? wf_params_get(origins, key) : NULL;
  if (o) {
    *step_name = o;
    return wf_asprintf("output of step %s", o);
  }
  for (size_t i = 0; p && i < p->n_with; i++)
    if (strcmp(p->with[i]->key, key) == 0) return wf_strdup("pipeline");
  return wf_strdup("action default");
}

/* The stored step as describe shows it (a new copy): secret params in
 * `with` and outputs named like secrets in status.response as the mask
 * text, and the secret values masked inside every other `with` value,
 * response value and the message.  mask may be NULL (names only). */
static json_t *shown_step(const json_t *step, const Wf__Action *a, const char *globs,
                          const wf_mask_t *mask) {
  json_t *shown = json_deep_copy(step);
  json_t *with = json_object_get(shown, "with");
  const char *k;
  json_t *x;
  json_object_foreach(with, k, x) {
    if (param_secret(a, globs, k)) json_object_set_new(with, k, json_string(secret_text));
    else if (json_is_string(x)) json_object_set_new(with, k, masked(mask, json_string_value(x)));
  }
  json_t *status = json_object_get(shown, "status");
  json_t *resp = json_object_get(status, "response");
  const size_t plen = strlen(WF_OUTPUT_KEY_PREFIX);
  json_object_foreach(resp, k, x) {
    /* The node stored these masked already, with its own --mask-params;
     * describe's globs may name more. */
    if (strncmp(k, WF_OUTPUT_KEY_PREFIX, plen) == 0 && param_secret(a, globs, k + plen))
      json_object_set_new(resp, k, json_string(secret_text));
    else if (json_is_string(x)) json_object_set_new(resp, k, masked(mask, json_string_value(x)));
  }
  json_t *msg = json_object_get(status, "message");
  if (json_is_string(msg))
    json_object_set_new(status, "message", masked(mask, json_string_value(msg)));
  return shown;
}

static int64_t jint(const json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void note(json_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(json_t *m, const char *fmt, ...) {
  va_list ap;
  char buf[1024];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  json_array_append_new(json_object_get(m, "notes"), json_string(buf));
}

static void set_ms(json_t *o, const char *key, int64_t v) {
  if (v > 0) json_object_set_new(o, key, json_integer(v));
}

json_t *wf_cli_describe(const json_t *step, const json_t *action, const json_t *pipeline,
                        const wf_cli_offers_t *offers, const char *mask_globs, int64_t now_ms) {
  char err[512];
  Wf__Action empty_action = WF__ACTION__INIT;
  Wf__Step *st = NULL;
  Wf__Action *a = NULL;
  Wf__Pipeline *p = NULL;
  json_t *m = json_object();
  char *status = wf__status_name(step);
  json_object_set_new(m, "key", json_string(wf__jstr(step, "key")));
  json_object_set_new(m, "status", json_string(status));
  json_object_set_new(m, "node", json_string(wf__step_node(step)));
  json_object_set_new(m, "action", json_string(wf__jstr(step, "action")));
  json_object_set_new(m, "notes", json_array());

  st = (Wf__Step *)wf_codec_decode(&wf__step__descriptor, step, 0, err, sizeof err);
  if (!st) note(m, "the step does not decode (%s): params not merged", err);
  if (action) {
    a = (Wf__Action *)wf_codec_decode(&wf__action__descriptor, action, 0, err, sizeof err);
    if (!a) note(m, "action %s is invalid (%s)", wf__jstr(step, "action"), err);
  } else {
    note(m, "action %s is not in etcd (a node may have it in its --actions-dir): its "
         "defaults and secret flags are not known here", wf__jstr(step, "action"));
  }
  if (a) {
    const char *rt = wf_enum_name(&wf__runner__type__descriptor, a->runner_type);
    json_object_set_new(m, "runner", json_string(rt ? rt : "UNKNOWN"));
  }
  /* Pipeline steps (create_type PIPELINE, the zero value) take the
   * pipeline's `with` too; the caller read it, or found nothing. */
  if (st && st->create_type == WF__STEP__CREATE__BY__PIPELINE) {
    if (pipeline) {
      p = (Wf__Pipeline *)wf_codec_decode(&wf__pipeline__descriptor, pipeline, 0, err,
                                          sizeof err);
      if (!p) note(m, "pipeline %s/%s is invalid (%s)", st->namespace_, st->pipeline_id, err);
    } else {
      note(m, "pipeline %s/%s not found: the node would fail this step", st->namespace_,
           st->pipeline_id);
    }
  }

  /* Offers over a bound: the node would fail the step before any merge;
   * describe says so and shows the rest merged without them. */
  const wf_params_t *offered = NULL, *origins = NULL;
  if (offers && offers->error)
    note(m, "the outputs of the earlier steps of the pipeline run: %s: the node would fail "
         "this step", offers->error);
  else if (offers)
    offered = offers->values, origins = offers->origins;

  /* The params as the node merges them (wf_params_merge fills them even
   * when its checks fail), and the secret values among them. */
  wf_params_t params;
  char *perr = NULL;
  wf_mask_t *mask = NULL;
  wf_params_init(&params);
  if (st) {
    wf_params_merge(a ? a : &empty_action, p, offered, st, &params, &perr);
    mask = secrets_mask(a, mask_globs, &params);
  }

  /* The stored step, every field, with the secrets hidden. */
  json_object_set_new(m, "step", shown_step(step, a, mask_globs, mask));

  if (st) {
    json_t *arr = json_array();
    for (size_t i = 0; i < params.n; i++) {
      const char *name = params.kv[i].key, *origin;
      int secret = param_secret(a, mask_globs, name);
      char *from = param_from(st, p, origins, name, &origin);
      json_t *e = json_pack("{s:s, s:o, s:s, s:b}", "name", name, "value",
                            secret ? json_string(secret_text) : masked(mask, params.kv[i].value),
                            "from", from, "secret", secret);
      if (origin) json_object_set_new(e, "output_of", json_string(origin));
      json_array_append_new(arr, e);
      free(from);
    }
    json_object_set_new(m, "params", arr);
    if (offered) json_object_set_new(m, "outputs_merged", json_true());
    if (perr) json_object_set_new(m, "params_error", json_string(perr));
  }
  free(perr);
  wf_mask_destroy(mask);
  wf_params_finish(&params);

  /* Timeline: the stored times (Unix ms) and the spans between them. */
  json_t *tl = json_object();
  const json_t *sj = json_object_get(step, "status");
  int64_t created = st ? st->create_at : jint(step, "create_at");
  int64_t updated = st ? st->update_at : jint(step, "update_at");
  int64_t started = st && st->status ? st->status->start_at : jint(sj, "start_at");
  int64_t ended = st && st->status ? st->status->end_at : jint(sj, "end_at");
  set_ms(tl, "create_at", created);
  set_ms(tl, "start_at", started);
  set_ms(tl, "end_at", ended);
  set_ms(tl, "update_at", updated);
  if (created > 0 && started >= created) set_ms(tl, "waited_ms", started - created);
  if (started > 0 && ended >= started) set_ms(tl, "ran_ms", ended - started);
  else if (started > 0 && ended <= 0 && !wf__status_complete(status) && now_ms >= started)
    set_ms(tl, "running_ms", now_ms - started);
  json_object_set_new(m, "timeline", tl);

  free(status);
  wf_codec_free((ProtobufCMessage *)st);
  wf_codec_free((ProtobufCMessage *)a);
  wf_codec_free((ProtobufCMessage *)p);
  return m;
}

/* "850ms", "12.3s", "4m05s", "2h03m", "3d04h". */
static void fmt_duration(int64_t ms, char *out, size_t len) {
  int64_t s = ms / 1000;
  if (ms < 1000) snprintf(out, len, "%lldms", (long long)ms);
  else if (ms < 60000) snprintf(out, len, "%.1fs", (double)ms / 1000.0);
  else if (s < 3600) snprintf(out, len, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else if (s < 86400)
    snprintf(out, len, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
  else snprintf(out, len, "%lldd%02lldh", (long long)(s / 86400), (long long)(s / 3600 % 24));
}

/* Local time with milliseconds and the zone's name. */
static void fmt_local(int64_t ms, char *out, size_t len) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  char a[32], z[16];
  localtime_r(&t, &tm);
  strftime(a, sizeof a, "%Y-%m-%d %H:%M:%S", &tm);
  strftime(z, sizeof z, "%Z", &tm);
  snprintf(out, len, "%s.%03d %s", a, (int)(ms % 1000), z);
}

/* One line of text for a table cell or a header: no control characters. */
static void put_clean(wf_buf_t *b, const char *s, size_t max) {
  size_t n = strlen(s);
  for (size_t i = 0; i < n && i < max; i++)
    wf_buf_printf(b, "%c", (unsigned char)s[i] < 0x20 ? ' ' : s[i]);
  if (n > max) wf_buf_printf(b, "...");
}

char *wf_cli_describe_text(const json_t *m) {
  wf_buf_t b;
  wf_buf_init(&b, 1u << 30);
  const char *node = wf__jstr(m, "node");
  wf_buf_printf(&b, "Step:     %s\nStatus:   %s%s%s\nAction:   %s", wf__jstr(m, "key"),
                wf__jstr(m, "status"), node[0] ? " on " : "", node, wf__jstr(m, "action"));
  if (wf__jstr(m, "runner")[0]) wf_buf_printf(&b, " (%s runner)", wf__jstr(m, "runner"));
  wf_buf_printf(&b, "\n");
  size_t i;
  json_t *x;
  json_array_foreach(json_object_get(m, "notes"), i, x) {
    wf_buf_printf(&b, "Note:     %s\n", json_string_value(x));
  }

  /* Every field, as YAML, indented under its heading. */
  wf_buf_printf(&b, "\nFields:\n");
  char *y = wf_cli_yaml_dump(json_object_get(m, "step"));
  for (const char *line = y; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) : strlen(line);
    wf_buf_printf(&b, "  %.*s\n", (int)n, line);
    line += n + (nl ? 1 : 0);
  }
  free(y);

  /* The merge's order; the outputs level only where it took part (a
   * pipeline step whose run was read), the only steps offered any. */
  wf_buf_printf(&b, "\nParams (action defaults < pipeline with < %sstep with):\n",
                json_is_true(json_object_get(m, "outputs_merged")) ? "outputs of earlier steps < "
                                                                    : "");
  json_t *params = json_object_get(m, "params");
  if (!params) {
    wf_buf_printf(&b, "  (not merged)\n");
  } else if (json_array_size(params) == 0) {
    wf_buf_printf(&b, "  (none)\n");
  } else {
    size_t wn = 4, wv = 5;
    json_array_foreach(params, i, x) {
      size_t ln = strlen(wf__jstr(x, "name")), lv = strlen(wf__jstr(x, "value"));
      if (ln > wn) wn = ln;
      if (lv > wv) wv = lv > WF__CTL_MAX_CELL ? WF__CTL_MAX_CELL + 3 : lv;
    }
    wf_buf_printf(&b, "  %-*s   %-*s   %s\n", (int)wn, "NAME", (int)wv, "VALUE", "FROM");
    json_array_foreach(params, i, x) {
      wf_buf_t cell;
      wf_buf_init(&cell, 4096);
      put_clean(&cell, wf__jstr(x, "value"), WF__CTL_MAX_CELL);
      wf_buf_printf(&b, "  %-*s   %-*s   %s\n", (int)wn, wf__jstr(x, "name"), (int)wv,
                    cell.data ? cell.data : "", wf__jstr(x, "from"));
      wf_buf_finish(&cell);
    }
  }
  const char *perr = wf__jstr(m, "params_error");
  if (perr[0]) wf_buf_printf(&b, "  error: %s\n", perr);

  wf_buf_printf(&b, "\nTimeline (local time):\n");
  const json_t *tl = json_object_get(m, "timeline");
  static const char *const rows[][3] = {
      {"created", "create_at", NULL}, {"started", "start_at", "waited_ms"},
      {"ended", "end_at", "ran_ms"}, {"updated", "update_at", NULL},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    int64_t at = jint(tl, rows[r][1]);
    char when[64] = "-", span[32];
    if (at > 0) fmt_local(at, when, sizeof when);
    wf_buf_printf(&b, "  %-9s %s", rows[r][0], when);
    const char *sk = rows[r][2];
    if (sk && json_object_get(tl, sk)) {
      fmt_duration(jint(tl, sk), span, sizeof span);
      wf_buf_printf(&b, "   (%s %s)", strcmp(sk, "ran_ms") == 0 ? "ran" : "waited", span);
    } else if (r == 2 && json_object_get(tl, "running_ms")) {
      fmt_duration(jint(tl, "running_ms"), span, sizeof span);
      wf_buf_printf(&b, "   (running for %s)", span);
    }
    wf_buf_printf(&b, "\n");
  }
  char *out = wf_strndup(b.data ? b.data : "", b.len);
  wf_buf_finish(&b);
  return out;
}
