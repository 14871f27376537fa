/*
 * wfctl: the companion command for people (spec.md §8): apply, get,
 * describe, logs, cancel and run, all straight against etcd through the same
 * client the node uses.
 *
 * One run of wfctl is one command driven on one uv loop: the command starts
 * a chain of etcd calls, each callback starts the next, and finish() closes
 * the client and the timers so that uv_run returns with the exit code set.
 * Callbacks that arrive after finish() (etcd fails pending calls with
 * UV_ECANCELED on close) check `finishing` first and do nothing.
 *
 * Reading the log file is plain read(2) from a 200 ms timer: wfctl is a
 * short-lived tool following one local file, so the node's no-blocking rule
 * (which protects many concurrent steps) buys nothing here.
 *
 * Output for people by default (aligned tables, `describe`'s sections), for
 * programs with -o json|yaml (get also -o name, which the bash completion
 * uses).  YAML is written with libyaml's emitter from the same JSON value
 * tree `-o json` prints, in the same key order, quoting every string a YAML
 * reader would otherwise take for a number, a date, a boolean or null.
 *
 * Exit codes: 0 done, 1 the command failed (or `run`'s step did not
 * succeed), 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <yaml.h>

#include "wf-version.h"
#include "wf/cli.h"
#include "wf/codec.h"
#include "wf/etcd.h"
#include "wf/mask.h"
#include "wf/model.h"
#include "wf/util.h"
#include "wf/yaml.h"

extern char **environ;

#define EXIT_USAGE 2
#define PAGE_SIZE 500
#define TICK_MS 200
/* logs -f re-reads the step every this many ticks (1 s). */
#define STEP_POLL_TICKS 5
#define CANCEL_TRIES 5
#define MAX_CELL 80
/* What `describe` hides, unless --mask-params or WORKFLOW_MASK_PARAMS say
 * otherwise: the node's default (config.c). */
#define DEFAULT_MASK "*PASSWORD*,*SECRET*,*TOKEN*"

enum cmd { CMD_APPLY, CMD_GET, CMD_LOGS, CMD_CANCEL, CMD_RUN, CMD_DESCRIBE };
enum get_kind { GET_STEPS, GET_ACTIONS, GET_NODES };
/* -o: table (get) or text (describe) is the default for people. */
enum out_fmt { OUT_TABLE, OUT_JSON, OUT_YAML, OUT_NAME };

typedef struct ctl_s ctl_t;
typedef void (*read_cb)(ctl_t *c, int err, const wf_etcd_kv_t *kv);

struct ctl_s {
  uv_loop_t loop;
  wf_etcd_t *etcd;
  char *prefix;
  char **endpoints;
  size_t nendpoints;
  int rc;
  int finishing;
  enum cmd cmd;

  /* options */
  const char *file;
  const char *node;
  const char *log_root;
  const char *action;
  const char *out_arg;  /* -o as given; checked per command */
  enum out_fmt out;
  const char *mask_params;
  int follow;
  unsigned timeout;
  json_t *with;
  const char **pos;   /* positional arguments after the command word */
  size_t npos;

  /* apply */
  char **put_keys, **put_labels, **put_values;
  size_t nput, iput;

  /* get */
  enum get_kind gk;
  size_t ncols;
  char **cells;       /* rows * ncols, owned */
  size_t ncells, capcells;
  size_t iname;
  int missing;
  size_t nprinted;    /* -o yaml: documents written (separators) */

  /* describe: what was read (owned; NULL = not found) */
  json_t *d_step, *d_action, *d_pipeline;

  /* one step being read / cancelled / followed */
  char *step_key;     /* as the user wrote it */
  char *etcd_key;     /* P/workflow/steps/<key> */
  read_cb on_read;
  int reading;
  char *last_status;
  int cancel_tries;
  int run_started;

  /* log tail */
  char *log_path;
  int fd;
  int64_t off;
  char *open_error;
  uv_timer_t tick;
  int tick_on;
  unsigned ticks;
  int final_seen;     /* the step is complete: drain the file, then stop */
  uv_timer_t deadline;
  int deadline_on;
  wf_etcd_watch_t *watch;
  int watch_lost;
};

/* ---- small helpers -------------------------------------------------------- */

static void usage(FILE *out) {
  fprintf(out,
          "usage: wfctl [--etcd URL[,URL...]] [--prefix P] COMMAND [ARGS]\n"
          "\n"
          "commands:\n"
          "  apply -f FILE [--node NAME]     store actions, pipelines, steps (YAML or JSON;\n"
          "                                  FILE - reads standard input)\n"
          "  get steps|actions|nodes [NAME...] [-o table|json|yaml|name]\n"
          "                                  list objects as a table, JSON lines, YAML\n"
          "                                  documents or names\n"
          "  describe STEP_KEY [-o text|json|yaml] [--mask-params GLOBS]\n"
          "                                  every field, the merged params (secrets\n"
          "                                  masked) and the timeline of a step\n"
          "  logs STEP_KEY [-f] [--log-root DIR]\n"
          "                                  print a step's log file (-f: follow to the end)\n"
          "  cancel STEP_KEY                 ask the step's node to cancel it\n"
          "  run ACTION --node NAME [--with K=V ...] [--timeout SEC] [--log-root DIR]\n"
          "                                  create a user step and follow it to its end;\n"
          "                                  exit 0 only if it SUCCEEDED\n"
          "  version                         print the version\n"
          "\n"
          "global flags:\n"
          "  --etcd URL[,URL...]   env WORKFLOW_ETCD; default http://127.0.0.1:2379\n"
          "  --prefix P            env WORKFLOW_PREFIX; default inforboard\n"
          "  -h, --help            this help\n");
}

static int usage_error(const char *fmt, const char *a) {
  fprintf(stderr, "wfctl: ");
  fprintf(stderr, fmt, a ? a : "");
  fprintf(stderr, "\n(see wfctl --help)\n");
  return EXIT_USAGE;
}

static const char *endpoint(const ctl_t *c) {
  const char *e = c->etcd ? wf_etcd_endpoint(c->etcd) : NULL;
  return e ? e : (c->nendpoints ? c->endpoints[0] : "?");
}

static const char *err_text(const ctl_t *c, int err) {
  if ((err == WF_EETCD || err == WF_EHTTP) && c->etcd) {
    const char *m = wf_etcd_errmsg(c->etcd);
    if (m && m[0]) return m;
  }
  return wf_strerror(err);
}

/* Prints "wfctl: <what>: <error> (etcd <url>)". */
static void etcd_fail(ctl_t *c, const char *what, int err) {
  fprintf(stderr, "wfctl: %s: %s (etcd %s)\n", what, err_text(c, err), endpoint(c));
}

static void cells_push(ctl_t *c, const char *s) {
  if (c->ncells == c->capcells) {
    c->capcells = c->capcells ? c->capcells * 2 : 64;
    c->cells = wf_realloc(c->cells, c->capcells * sizeof *c->cells);
  }
  /* One line per row, and a bounded width: messages can be long. */
  size_t n = strlen(s ? s : "");
  char *v = wf_strndup(s && s[0] ? s : "-", s && s[0] ? (n > MAX_CELL ? MAX_CELL : n) : 1);
  for (char *p = v; *p; p++)
    if ((unsigned char)*p < 0x20) *p = ' ';
  if (n > MAX_CELL) {
    memcpy(v + MAX_CELL - 3, "...", 3);
  }
  c->cells[c->ncells++] = v;
}

static const char *jstr(const json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s ? s : "";
}

/* The step's status name in upper case ("PENDDING" when absent, like the
 * original's default). */
static char *status_name(const json_t *step) {
  json_t *st = json_object_get(json_object_get(step, "status"), "status");
  if (json_is_integer(st)) {
    const char *n = wf_enum_name(&wf__step__status__descriptor, (int)json_integer_value(st));
    return wf_strdup(n ? n : "UNKNOWN");
  }
  if (!json_is_string(st)) return wf_strdup("PENDDING");
  char *s = wf_strdup(json_string_value(st));
  for (char *p = s; *p; p++)
    if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
  return s;
}

static int status_complete(const char *s) {
  static const char *const done[] = {"SUCCEEDED", "FAILED", "CANCELED", "SKIP", "REFUSE", NULL};
  for (const char *const *d = done; *d; d++)
    if (strcmp(s, *d) == 0) return 1;
  return 0;
}

static const char *step_message(const json_t *step) {
  return jstr(json_object_get(step, "status"), "message");
}

static const char *step_node(const json_t *step) {
  return jstr(json_object_get(step, "status"), "scheduled_node");
}

/* ---- ids and names --------------------------------------------------------- */

void wf_cli_xid(char out[21]) {
  static const char alphabet[] = "0123456789abcdefghijklmnopqrstuv";
  static unsigned char machine[3];
  static uint32_t counter;
  static int ready;
  unsigned char id[12];
  if (!ready) {
    unsigned char r[7];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
      /* No entropy source: time and pid still make ids unique enough for a
       * CLI that makes a handful of them. */
      uint64_t t = wf_mono_ms() ^ ((uint64_t)getpid() << 20);
      memcpy(r, &t, sizeof r);
    }
    memcpy(machine, r, 3);
    counter = (uint32_t)r[3] << 16 | (uint32_t)r[4] << 8 | r[5];
    ready = 1;
  }
  uint32_t t = (uint32_t)time(NULL);
  uint32_t pid = (uint32_t)getpid();
  uint32_t n = counter++ & 0xffffffu;
  id[0] = (unsigned char)(t >> 24);
  id[1] = (unsigned char)(t >> 16);
  id[2] = (unsigned char)(t >> 8);
  id[3] = (unsigned char)t;
  memcpy(id + 4, machine, 3);
  id[7] = (unsigned char)(pid >> 8);
  id[8] = (unsigned char)pid;
  id[9] = (unsigned char)(n >> 16);
  id[10] = (unsigned char)(n >> 8);
  id[11] = (unsigned char)n;
  /* base32hex without padding: 96 bits -> 20 characters, the last one
   * carrying 1 bit and 4 zero bits, as rs/xid encodes. */
  unsigned bits = 0, nbits = 0, o = 0;
  for (int i = 0; i < 12; i++) {
    bits = (bits << 8) | id[i];
    nbits += 8;
    while (nbits >= 5) {
      out[o++] = alphabet[(bits >> (nbits - 5)) & 31];
      nbits -= 5;
    }
  }
  out[o++] = alphabet[(bits << (5 - nbits)) & 31];
  out[o] = '\0';
}

int wf_cli_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 200 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f || *p == '/') return 0;
  return 1;
}

/* ---- apply: document preparation (pure, unit-tested) -------------------------- */

/* A required string field that must also work as a key segment. */
static int need_name(json_t *doc, const char *field, const char *forbid, char *err,
                     size_t errlen) {
  json_t *v = json_object_get(doc, field);
  if (!v || (json_is_string(v) && json_string_length(v) == 0)) {
    snprintf(err, errlen, "%s: missing (required)", field);
    return -1;
  }
  if (!json_is_string(v)) {
    snprintf(err, errlen, "%s: expected a string", field);
    return -1;
  }
  const char *s = json_string_value(v);
  if (!wf_cli_name_ok(s) || strpbrk(s, forbid)) {
    snprintf(err, errlen, "%s: \"%.100s\" is not usable in a key (no '/'%s%s, no control "
             "characters, 1 to 200 bytes)", field, s, forbid[1] ? ", " : "", forbid + 1);
    return -1;
  }
  return 0;
}

/* Sets doc[field] to a new id when it is missing or "". */
static void default_id(json_t *doc, const char *field) {
  json_t *v = json_object_get(doc, field);
  if (v && !(json_is_string(v) && json_string_length(v) == 0) && !json_is_null(v)) return;
  char id[21];
  wf_cli_xid(id);
  json_object_set_new(doc, field, json_string(id));
}

static void default_now(json_t *doc, const char *field) {
  json_t *v = json_object_get(doc, field);
  if (v && !json_is_null(v)) return;
  json_object_set_new(doc, field, json_integer(wf_now_ms()));
}

static int validate(json_t *doc, const ProtobufCMessageDescriptor *desc, char *err,
                    size_t errlen) {
  ProtobufCMessage *m = wf_codec_decode(desc, doc, 0, err, errlen);
  if (!m) return -1;
  wf_codec_free(m);
  return 0;
}

static int prepare_step(json_t *doc, const char *node, char *err, size_t errlen) {
  wf_yaml_coerce_strings(doc, &wf__step__descriptor);
  default_id(doc, "key");
  if (need_name(doc, "key", "/", err, errlen) != 0) return -1;
  json_t *action = json_object_get(doc, "action");
  if (!json_is_string(action) || json_string_length(action) == 0) {
    snprintf(err, errlen, "action: missing (required, name@version)");
    return -1;
  }
  json_t *name = json_object_get(doc, "name");
  if (!name || json_is_null(name) || (json_is_string(name) && !json_string_length(name))) {
    /* The original requires a name; the action's name is the obvious one. */
    const char *a = json_string_value(action);
    const char *at = strchr(a, '@');
    json_object_set_new(doc, "name", json_stringn(a, at ? (size_t)(at - a) : strlen(a)));
  }
  default_now(doc, "create_at");
  /* A step with no create_type counts as a pipeline step (the enum's zero);
   * one applied by hand with no pipeline is a user step. */
  json_t *ct = json_object_get(doc, "create_type");
  if ((!ct || json_is_null(ct)) && !json_string_length(json_object_get(doc, "pipeline_id")))
    json_object_set_new(doc, "create_type", json_string("USER"));
  json_t *st = json_object_get(doc, "status");
  if (!st || json_is_null(st)) {
    st = json_pack("{s:s}", "status", "PENDDING");
    json_object_set_new(doc, "status", st);
  }
  /* Spell out the zero value: readers that judge raw JSON need not guess. */
  if (json_is_object(st) && !json_object_get(st, "status"))
    json_object_set_new(st, "status", json_string("PENDDING"));
  if (node && node[0] && json_is_object(st)) {
    json_t *sn = json_object_get(st, "scheduled_node");
    if (!sn || json_is_null(sn) || (json_is_string(sn) && !json_string_length(sn)))
      json_object_set_new(st, "scheduled_node", json_string(node));
  }
  return validate(doc, &wf__step__descriptor, err, errlen);
}

int wf_cli_apply_prepare(json_t *doc, const char *prefix, const char *node,
                         enum wf_cli_kind *kind, char **etcd_key, char **label, char *err,
                         size_t errlen) {
  *etcd_key = *label = NULL;
  if (!json_is_object(doc)) {
    snprintf(err, errlen, "expected a mapping with a kind (Action, Pipeline or Step)");
    return -1;
  }
  json_t *k = json_object_get(doc, "kind");
  if (!json_is_string(k)) {
    snprintf(err, errlen, "kind: %s (Action, Pipeline or Step)",
             k ? "expected a string" : "missing");
    return -1;
  }
  const char *ks = json_string_value(k);
  if (strcasecmp(ks, "action") == 0) *kind = WF_CLI_ACTION;
  else if (strcasecmp(ks, "pipeline") == 0) *kind = WF_CLI_PIPELINE;
  else if (strcasecmp(ks, "step") == 0) *kind = WF_CLI_STEP;
  else {
    snprintf(err, errlen, "kind: \"%.60s\" is not Action, Pipeline or Step", ks);
    return -1;
  }
  json_object_del(doc, "kind");

  switch (*kind) {
  case WF_CLI_ACTION: {
    wf_yaml_coerce_strings(doc, &wf__action__descriptor);
    if (need_name(doc, "name", "/@", err, errlen) != 0) return -1;
    if (need_name(doc, "version", "/@", err, errlen) != 0) return -1;
    if (validate(doc, &wf__action__descriptor, err, errlen) != 0) return -1;
    const char *n = jstr(doc, "name"), *v = jstr(doc, "version");
    *etcd_key = wf_asprintf("%s/workflow/actions/%s@%s", prefix, n, v);
    *label = wf_asprintf("action/%s@%s", n, v);
    return 0;
  }
  case WF_CLI_PIPELINE: {
    wf_yaml_coerce_strings(doc, &wf__pipeline__descriptor);
    default_id(doc, "id");
    json_t *ns = json_object_get(doc, "namespace");
    if (!ns || json_is_null(ns) || (json_is_string(ns) && !json_string_length(ns)))
      json_object_set_new(doc, "namespace", json_string("default"));
    /* Step keys are <ns>.<id>.<stage>.<step>: neither part may hold a '.'. */
    if (need_name(doc, "id", "/.", err, errlen) != 0) return -1;
    if (need_name(doc, "namespace", "/.", err, errlen) != 0) return -1;
    default_now(doc, "create_at");
    if (validate(doc, &wf__pipeline__descriptor, err, errlen) != 0) return -1;
    const char *n = jstr(doc, "namespace"), *id = jstr(doc, "id");
    *etcd_key = wf_asprintf("%s/workflow/pipelines/%s/%s", prefix, n, id);
    *label = wf_asprintf("pipeline/%s/%s", n, id);
    return 0;
  }
  case WF_CLI_STEP: {
    if (prepare_step(doc, node, err, errlen) != 0) return -1;
    const char *key = jstr(doc, "key");
    *etcd_key = wf_asprintf("%s/workflow/steps/%s", prefix, key);
    *label = wf_asprintf("step/%s", key);
    return 0;
  }
  }
  return -1;
}

/* ---- YAML output (pure, unit-tested) --------------------------------------------------- */

/* libyaml picks the quoting style itself (it quotes "a: b", "#x", control
 * characters...), but it does not know which plain scalars a reader would
 * type as something else.  A string that could read back as a number, a
 * date, a boolean or null is therefore emitted quoted.  Any first character
 * that can start such a value counts, which quotes a few strings that did not
 * need it ("-x", "1st") and misses none. */
static int reads_as_non_string(const char *s) {
  static const char *const words[] = {"null", "true", "false", "yes", "no", "on", "off", "y",
                                      "n", NULL};
  if (!s[0] || strchr("0123456789+-.~=<", s[0])) return 1;
  for (const char *const *w = words; *w; w++)
    if (strcasecmp(s, *w) == 0) return 1;
  return 0;
}

static int emit_event(yaml_emitter_t *em, yaml_event_t *ev, int ok) {
  return ok && yaml_emitter_emit(em, ev) ? 0 : -1;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, size_t len, int is_string) {
  yaml_event_t ev;
  int quote = is_string && reads_as_non_string(s);
  /* Multi-line text (logs, scripts) reads best as a literal block; libyaml
   * falls back to a quoted style where a block is not allowed. */
  yaml_scalar_style_t style =
      is_string && memchr(s, '\n', len) ? YAML_LITERAL_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;
  return emit_event(em, &ev, yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s,
                                                          (int)len, !quote, 1, style));
}

/* The shortest text that reads back as the same double, always with a '.'
 * (YAML 1.1 readers take "1e+20" for a string). */
static void real_text(double d, char *out, size_t len) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(out, len, "%.*g", prec, d);
    if (strtod(out, NULL) == d) break;
  }
  if (strpbrk(out, ".in")) return; /* has a point, or is inf/nan (JSON has neither) */
  char *e = strchr(out, 'e');
  char tail[32];
  snprintf(tail, sizeof tail, "%s", e ? e : "");
  size_t head = e ? (size_t)(e - out) : strlen(out);
  snprintf(out + head, len - head, ".0%s", tail);
}

static int emit_value(yaml_emitter_t *em, const json_t *v, int depth) {
  yaml_event_t ev;
  char num[64];
  if (depth > 512) return -1;
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *x;
    yaml_mapping_style_t st = json_object_size(v) ? YAML_BLOCK_MAPPING_STYLE
                                                  : YAML_FLOW_MAPPING_STYLE;
    if (emit_event(em, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, st)) != 0)
      return -1;
    /* Insertion order: the order of the stored JSON, as `-o json` prints. */
    json_object_foreach((json_t *)v, k, x) {
      if (emit_scalar(em, k, strlen(k), 1) != 0 || emit_value(em, x, depth + 1) != 0)
        return -1;
    }
    return emit_event(em, &ev, yaml_mapping_end_event_initialize(&ev));
  }
  case JSON_ARRAY: {
    size_t i;
    json_t *x;
    yaml_sequence_style_t st = json_array_size(v) ? YAML_BLOCK_SEQUENCE_STYLE
                                                  : YAML_FLOW_SEQUENCE_STYLE;
    if (emit_event(em, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, st)) != 0)
      return -1;
    json_array_foreach(v, i, x) {
      if (emit_value(em, x, depth + 1) != 0) return -1;
    }
    return emit_event(em, &ev, yaml_sequence_end_event_initialize(&ev));
  }
  case JSON_STRING:
    return emit_scalar(em, json_string_value(v), json_string_length(v), 1);
  case JSON_INTEGER:
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return emit_scalar(em, num, strlen(num), 0);
  case JSON_REAL:
    real_text(json_real_value(v), num, sizeof num);
    return emit_scalar(em, num, strlen(num), 0);
  case JSON_TRUE: return emit_scalar(em, "true", 4, 0);
  case JSON_FALSE: return emit_scalar(em, "false", 5, 0);
  case JSON_NULL: return emit_scalar(em, "null", 4, 0);
  }
  return -1;
}

static int yaml_out(void *data, unsigned char *p, size_t n) {
  return wf_buf_append(data, p, n) == 0;
}

char *wf_cli_yaml_dump(const json_t *v) {
  yaml_emitter_t em;
  yaml_event_t ev;
  wf_buf_t b;
  char *out = NULL;
  if (!v || !yaml_emitter_initialize(&em)) return NULL;
  wf_buf_init(&b, 1u << 30);
  yaml_emitter_set_output(&em, yaml_out, &b);
  yaml_emitter_set_unicode(&em, 1);
  yaml_emitter_set_indent(&em, 2);
  yaml_emitter_set_width(&em, -1);  /* never fold long lines */
  if (emit_event(&em, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING)) != 0 ||
      emit_event(&em, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1)) != 0 ||
      emit_value(&em, v, 0) != 0 ||
      emit_event(&em, &ev, yaml_document_end_event_initialize(&ev, 1)) != 0 ||
      emit_event(&em, &ev, yaml_stream_end_event_initialize(&ev)) != 0 ||
      !yaml_emitter_flush(&em))
    goto out;
  out = wf_strndup(b.data ? b.data : "", b.len);
out:
  yaml_emitter_delete(&em);
  wf_buf_finish(&b);
  return out;
}

/* ---- describe: the model and its text (pure, unit-tested) ------------------------------- */

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

/* Where a merged param's value came from (later wins, as in the merge). */
static const char *param_from(const Wf__Step *st, const Wf__Pipeline *p, const char *key) {
  for (size_t i = 0; i < st->n_with; i++)
    if (strcmp(st->with[i]->key, key) == 0) return "step";
  for (size_t i = 0; p && i < p->n_with; i++)
    if (strcmp(p->with[i]->key, key) == 0) return "pipeline";
  return "action default";
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
                        const char *mask_globs, int64_t now_ms) {
  char err[512];
  Wf__Action empty_action = WF__ACTION__INIT;
  Wf__Step *st = NULL;
  Wf__Action *a = NULL;
  Wf__Pipeline *p = NULL;
  json_t *m = json_object();
  char *status = status_name(step);
  json_object_set_new(m, "key", json_string(jstr(step, "key")));
  json_object_set_new(m, "status", json_string(status));
  json_object_set_new(m, "node", json_string(step_node(step)));
  json_object_set_new(m, "action", json_string(jstr(step, "action")));
  json_object_set_new(m, "notes", json_array());

  st = (Wf__Step *)wf_codec_decode(&wf__step__descriptor, step, 0, err, sizeof err);
  if (!st) note(m, "the step does not decode (%s): params not merged", err);
  if (action) {
    a = (Wf__Action *)wf_codec_decode(&wf__action__descriptor, action, 0, err, sizeof err);
    if (!a) note(m, "action %s is invalid (%s)", jstr(step, "action"), err);
  } else {
    note(m, "action %s is not in etcd (a node may have it in its --actions-dir): its "
         "defaults and secret flags are not known here", jstr(step, "action"));
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

  /* The stored step, every field, with secret `with` values hidden. */
  json_t *shown = json_deep_copy(step);
  json_t *with = json_object_get(shown, "with");
  const char *k;
  json_t *x;
  json_object_foreach(with, k, x) {
    if (param_secret(a, mask_globs, k)) json_object_set_new(with, k, json_string(secret_text));
  }
  json_object_set_new(m, "step", shown);

  if (st) {
    wf_params_t params;
    char *perr = NULL;
    wf_params_init(&params);
    wf_params_merge(a ? a : &empty_action, p, st, &params, &perr);
    json_t *arr = json_array();
    for (size_t i = 0; i < params.n; i++) {
      const char *name = params.kv[i].key;
      int secret = param_secret(a, mask_globs, name);
      json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b}", "name", name, "value",
                                           secret ? secret_text : params.kv[i].value, "from",
                                           param_from(st, p, name), "secret", secret));
    }
    json_object_set_new(m, "params", arr);
    if (perr) json_object_set_new(m, "params_error", json_string(perr));
    free(perr);
    wf_params_finish(&params);
  }

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
  else if (started > 0 && ended <= 0 && !status_complete(status) && now_ms >= started)
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
  const char *node = jstr(m, "node");
  wf_buf_printf(&b, "Step:     %s\nStatus:   %s%s%s\nAction:   %s", jstr(m, "key"),
                jstr(m, "status"), node[0] ? " on " : "", node, jstr(m, "action"));
  if (jstr(m, "runner")[0]) wf_buf_printf(&b, " (%s runner)", jstr(m, "runner"));
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

  wf_buf_printf(&b, "\nParams (action defaults < pipeline with < step with):\n");
  json_t *params = json_object_get(m, "params");
  if (!params) {
    wf_buf_printf(&b, "  (not merged)\n");
  } else if (json_array_size(params) == 0) {
    wf_buf_printf(&b, "  (none)\n");
  } else {
    size_t wn = 4, wv = 5;
    json_array_foreach(params, i, x) {
      size_t ln = strlen(jstr(x, "name")), lv = strlen(jstr(x, "value"));
      if (ln > wn) wn = ln;
      if (lv > wv) wv = lv > MAX_CELL ? MAX_CELL + 3 : lv;
    }
    wf_buf_printf(&b, "  %-*s   %-*s   %s\n", (int)wn, "NAME", (int)wv, "VALUE", "FROM");
    json_array_foreach(params, i, x) {
      wf_buf_t cell;
      wf_buf_init(&cell, 4096);
      put_clean(&cell, jstr(x, "value"), MAX_CELL);
      wf_buf_printf(&b, "  %-*s   %-*s   %s\n", (int)wn, jstr(x, "name"), (int)wv,
                    cell.data ? cell.data : "", jstr(x, "from"));
      wf_buf_finish(&cell);
    }
  }
  if (jstr(m, "params_error")[0]) wf_buf_printf(&b, "  error: %s\n", jstr(m, "params_error"));

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

/* ---- lifecycle ---------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static void on_etcd_closed(void *data) { (void)data; }

static void tail_stop(ctl_t *c);

/* Ends the command with exit code rc: everything still in flight is
 * cancelled, and uv_run returns once the client's sockets are closed. */
static void finish(ctl_t *c, int rc) {
  if (c->finishing) return;
  c->finishing = 1;
  c->rc = rc;
  tail_stop(c);
  if (c->deadline_on) {
    c->deadline_on = 0;
    uv_close((uv_handle_t *)&c->deadline, on_handle_closed);
  }
  if (c->watch) {
    wf_etcd_watch_cancel(c->watch);
    c->watch = NULL;
  }
  if (c->etcd) {
    wf_etcd_close(c->etcd, on_etcd_closed, c);
    c->etcd = NULL;
  }
}

/* ---- reading one key ------------------------------------------------------------- */

static void on_range(int err, const wf_etcd_range_res_t *res, void *data) {
  ctl_t *c = data;
  c->reading = 0;
  if (c->finishing) return;
  c->on_read(c, err, err == 0 && res->nkvs ? &res->kvs[0] : NULL);
}

static void read_key(ctl_t *c, const char *key, read_cb cb) {
  wf_etcd_range_opts_t o = {0};
  c->on_read = cb;
  c->reading = 1;
  int r = wf_etcd_range(c->etcd, key, strlen(key), NULL, 0, &o, on_range, c);
  if (r != 0) {
    c->reading = 0;
    cb(c, r, NULL);
  }
}

/* Parses a step read from etcd; reports and returns NULL when it is not a
 * JSON object. */
static json_t *parse_step(ctl_t *c, const wf_etcd_kv_t *kv) {
  json_error_t je;
  json_t *s = json_loadb(kv->value, kv->value_len, 0, &je);
  if (!json_is_object(s)) {
    fprintf(stderr, "wfctl: step \"%s\": stored value is not a JSON object (%s) (etcd %s)\n",
            c->step_key, s ? "wrong type" : je.text, endpoint(c));
    json_decref(s);
    return NULL;
  }
  return s;
}

static void step_not_found(ctl_t *c) {
  fprintf(stderr, "wfctl: step \"%s\" not found (etcd %s)\n", c->step_key, endpoint(c));
}

static void set_step_key(ctl_t *c, const char *key) {
  c->step_key = wf_strdup(key);
  c->etcd_key = wf_asprintf("%s/workflow/steps/%s", c->prefix, key);
}

/* ---- log tail --------------------------------------------------------------------- */

/* Copies whatever the log file holds past our offset to stdout.  Returns 0,
 * or -1 when the file cannot be opened (open_error says why). */
static int tail_pump(ctl_t *c) {
  if (!c->log_path) return -1;
  if (c->fd < 0) {
    c->fd = open(c->log_path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0) {
      free(c->open_error);
      c->open_error = wf_strdup(strerror(errno));
      return -1;
    }
  }
  struct stat st;
  if (fstat(c->fd, &st) == 0 && st.st_size < c->off) {
    /* Truncated under us (rewritten); start over rather than print nothing. */
    c->off = 0;
  }
  char buf[65536];
  /* Bounded per tick so a huge file does not starve the loop's timers. */
  for (int i = 0; i < 256; i++) {
    ssize_t n = pread(c->fd, buf, sizeof buf, c->off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    fwrite(buf, 1, (size_t)n, stdout);
    c->off += n;
  }
  fflush(stdout);
  return 0;
}

/* Reads the file to its end (the step is over, nothing more will come). */
static int tail_drain(ctl_t *c) {
  if (tail_pump(c) != 0) return -1;
  for (;;) {
    int64_t before = c->off;
    tail_pump(c);
    if (c->off == before) return 0;
  }
}

static void tail_stop(ctl_t *c) {
  if (c->tick_on) {
    c->tick_on = 0;
    uv_close((uv_handle_t *)&c->tick, on_handle_closed);
  }
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
}

/* log_path from the step, with --log-root in front of a relative one. */
static void tail_set_path(ctl_t *c, const json_t *step) {
  const char *p = jstr(json_object_get(json_object_get(step, "status"), "response"),
                       "log_path");
  if (!p[0]) return;
  char *full = (p[0] != '/' && c->log_root) ? wf_asprintf("%s/%s", c->log_root, p)
                                            : wf_strdup(p);
  if (c->log_path && strcmp(c->log_path, full) == 0) {
    free(full);
    return;
  }
  free(c->log_path);
  c->log_path = full;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->off = 0;
}

static void on_tick(uv_timer_t *t);

static void tail_start(ctl_t *c) {
  if (c->tick_on) return;
  uv_timer_init(&c->loop, &c->tick);
  c->tick.data = c;
  c->tick_on = 1;
  uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
}

/* ---- logs ---------------------------------------------------------------------------- */

static void logs_on_step(ctl_t *c, int err, const wf_etcd_kv_t *kv);

/* The step is over (or gone): print the rest and end. */
static void logs_end(ctl_t *c, int rc) {
  if (c->log_path && tail_drain(c) != 0) {
    fprintf(stderr, "wfctl: step \"%s\": cannot read log %s: %s\n", c->step_key, c->log_path,
            c->open_error);
    rc = 1;
  } else if (!c->log_path && rc == 0) {
    fprintf(stderr, "wfctl: step \"%s\" ended (%s) without a log\n", c->step_key,
            c->last_status ? c->last_status : "?");
  }
  finish(c, rc);
}

static void logs_on_step(ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    char what[300];
    snprintf(what, sizeof what, "reading step \"%s\"", c->step_key);
    etcd_fail(c, what, err);
    /* While following, a blip is not the end: try again next poll. */
    if (!c->follow || !c->tick_on) finish(c, 1);
    return;
  }
  if (!kv) {
    if (c->tick_on) {
      fprintf(stderr, "wfctl: step \"%s\" was deleted (etcd %s)\n", c->step_key, endpoint(c));
      logs_end(c, 1);
    } else {
      step_not_found(c);
      finish(c, 1);
    }
    return;
  }
  json_t *step = parse_step(c, kv);
  if (!step) {
    finish(c, 1);
    return;
  }
  tail_set_path(c, step);
  free(c->last_status);
  c->last_status = status_name(step);
  int complete = status_complete(c->last_status);
  json_decref(step);

  if (!c->follow) {
    if (!c->log_path) {
      fprintf(stderr, "wfctl: step \"%s\" has no log yet (status %s) (etcd %s)\n", c->step_key,
              c->last_status, endpoint(c));
      finish(c, 1);
      return;
    }
    logs_end(c, 0);
    return;
  }
  if (complete) {
    logs_end(c, 0);
    return;
  }
  tail_pump(c);
  tail_start(c);
}

/* ---- run: following the step through its watch -------------------------------------- */

static void run_on_status(ctl_t *c, const json_t *step);

static void run_on_events(wf_etcd_watch_t *w, const wf_etcd_event_t *ev, size_t n,
                          void *data) {
  ctl_t *c = data;
  for (size_t i = 0; i < n && !c->finishing; i++) {
    if (strcmp(ev[i].kv.key, c->etcd_key) != 0) continue;  /* a longer key, same prefix */
    if (ev[i].type == WF_ETCD_DELETE) {
      tail_drain(c);
      fprintf(stderr, "wfctl: step %s was deleted (etcd %s)\n", c->step_key, endpoint(c));
      finish(c, 1);
      return;
    }
    json_t *step = parse_step(c, &ev[i].kv);
    if (!step) continue;
    run_on_status(c, step);
    json_decref(step);
  }
}

static void run_on_reread(ctl_t *c, int err, const wf_etcd_kv_t *kv);

static void run_on_compacted(wf_etcd_watch_t *w, int64_t rev, void *data) {
  ctl_t *c = data;
  /* Events were lost to compaction: read the step as it is now, then watch
   * on.  (A read in flight is the timeout's cancel: nothing to resume.) */
  if (c->finishing || c->reading) return;
  read_key(c, c->etcd_key, run_on_reread);
}

static void run_on_state(wf_etcd_watch_t *w, int connected, int err, void *data) {
  ctl_t *c = data;
  if (c->finishing) return;
  /* Say it once per outage, not once per reconnect attempt. */
  if (!connected && !c->watch_lost) {
    c->watch_lost = 1;
    fprintf(stderr, "wfctl: watch on step %s lost: %s (etcd %s); reconnecting\n", c->step_key,
            err ? err_text(c, err) : "disconnected", endpoint(c));
  } else if (connected && c->watch_lost) {
    c->watch_lost = 0;
    fprintf(stderr, "wfctl: watch on step %s resumed (etcd %s)\n", c->step_key, endpoint(c));
  }
}

static void run_on_reread(ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    char what[300];
    snprintf(what, sizeof what, "reading step \"%s\"", c->step_key);
    etcd_fail(c, what, err);
    finish(c, 1);
    return;
  }
  if (!kv) {
    tail_drain(c);
    fprintf(stderr, "wfctl: step %s was deleted (etcd %s)\n", c->step_key, endpoint(c));
    finish(c, 1);
    return;
  }
  json_t *step = parse_step(c, kv);
  if (step) {
    run_on_status(c, step);
    json_decref(step);
  }
  if (!c->finishing && c->watch) wf_etcd_watch_restart(c->watch, kv->mod_revision + 1);
}

static void run_on_status(ctl_t *c, const json_t *step) {
  char *st = status_name(step);
  tail_set_path(c, step);
  if (!c->last_status || strcmp(c->last_status, st) != 0) {
    const char *msg = step_message(step);
    const char *node = step_node(step);
    fprintf(stderr, "wfctl: step %s %s%s%s%s%s\n", c->step_key, st, node[0] ? " on " : "", node,
            msg[0] ? ": " : "", msg);
    free(c->last_status);
    c->last_status = st;
  } else {
    free(st);
  }
  tail_pump(c);
  if (status_complete(c->last_status)) {
    if (c->log_path && tail_drain(c) != 0)
      fprintf(stderr, "wfctl: log %s is not readable here: %s\n", c->log_path, c->open_error);
    finish(c, strcmp(c->last_status, "SUCCEEDED") == 0 ? 0 : 1);
  }
}

/* ---- cancel (also run --timeout) -------------------------------------------------------- */

static void cancel_on_read(ctl_t *c, int err, const wf_etcd_kv_t *kv);

static void cancel_done(ctl_t *c, int ok) {
  /* run --timeout cancels on its way out: its exit code is a failure anyway. */
  finish(c, c->cmd == CMD_RUN ? 1 : (ok ? 0 : 1));
}

static void cancel_decide(ctl_t *c, const wf_etcd_kv_t *kv);

static void on_cancel_put(int err, int succeeded, int64_t rev, const wf_etcd_kv_t *cur,
                          void *data) {
  ctl_t *c = data;
  if (c->finishing) return;
  if (err) {
    char what[300];
    snprintf(what, sizeof what, "canceling step \"%s\"", c->step_key);
    etcd_fail(c, what, err);
    cancel_done(c, 0);
    return;
  }
  if (succeeded) {
    /* run's stdout is the key and the log; its notes go to stderr. */
    FILE *out = c->cmd == CMD_RUN ? stderr : stdout;
    fprintf(out, "%sstep/%s %s\n", c->cmd == CMD_RUN ? "wfctl: " : "", c->step_key,
            c->last_status);
    fflush(out);
    cancel_done(c, 1);
    return;
  }
  /* Someone (the node, the scheduler) wrote the step between our read and
   * our write: decide again on what is there now. */
  if (++c->cancel_tries >= CANCEL_TRIES) {
    fprintf(stderr, "wfctl: step \"%s\" kept changing; cancel not written (etcd %s)\n",
            c->step_key, endpoint(c));
    cancel_done(c, 0);
    return;
  }
  if (!cur) {
    step_not_found(c);
    cancel_done(c, 0);
    return;
  }
  cancel_decide(c, cur);
}

static void cancel_decide(ctl_t *c, const wf_etcd_kv_t *kv) {
  json_t *step = parse_step(c, kv);
  if (!step) {
    cancel_done(c, 0);
    return;
  }
  char *st = status_name(step);
  if (status_complete(st)) {
    fprintf(stderr, "wfctl: step \"%s\" is already %s; nothing to cancel\n", c->step_key, st);
    free(st);
    json_decref(step);
    cancel_done(c, 0);
    return;
  }
  if (strcmp(st, "CANCELING") == 0) {
    printf("step/%s is already being canceled\n", c->step_key);
    free(st);
    json_decref(step);
    cancel_done(c, 1);
    return;
  }
  free(st);
  json_t *status = json_object_get(step, "status");
  if (!json_is_object(status)) {
    status = json_object();
    json_object_set_new(step, "status", status);
  }
  /* A step no node holds has nobody to turn CANCELING into CANCELED: end it
   * here.  Otherwise its node stops the runner and writes CANCELED. */
  int unassigned = step_node(step)[0] == '\0';
  free(c->last_status);
  c->last_status = wf_strdup(unassigned ? "CANCELED" : "CANCELING");
  json_object_set_new(status, "status", json_string(c->last_status));
  json_object_set_new(status, "message", json_string("step canceled by user"));
  if (unassigned) json_object_set_new(status, "end_at", json_integer(wf_now_ms()));
  char *val = json_dumps(step, JSON_COMPACT);
  json_decref(step);
  int r = wf_etcd_put_if(c->etcd, c->etcd_key, strlen(c->etcd_key), kv->mod_revision, val,
                         strlen(val), on_cancel_put, c);
  free(val);
  if (r != 0) {
    on_cancel_put(r, 0, 0, NULL, c);
  }
}

static void cancel_on_read(ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    char what[300];
    snprintf(what, sizeof what, "reading step \"%s\"", c->step_key);
    etcd_fail(c, what, err);
    cancel_done(c, 0);
    return;
  }
  if (!kv) {
    step_not_found(c);
    cancel_done(c, 0);
    return;
  }
  cancel_decide(c, kv);
}

/* ---- timers -------------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t) {
  ctl_t *c = t->data;
  if (c->finishing) return;
  tail_pump(c);
  /* logs -f learns that the step ended by polling it; run has its watch. */
  if (c->cmd == CMD_LOGS && !c->reading && ++c->ticks % STEP_POLL_TICKS == 0)
    read_key(c, c->etcd_key, logs_on_step);
}

static void on_deadline(uv_timer_t *t) {
  ctl_t *c = t->data;
  if (c->finishing) return;
  fprintf(stderr, "wfctl: step %s did not end within %u s (status %s); canceling it\n",
          c->step_key, c->timeout, c->last_status ? c->last_status : "?");
  if (c->watch) {
    wf_etcd_watch_cancel(c->watch);
    c->watch = NULL;
  }
  read_key(c, c->etcd_key, cancel_on_read);
}

/* ---- run ---------------------------------------------------------------------------------- */

static void on_run_put(int err, int succeeded, int64_t rev, const wf_etcd_kv_t *cur,
                       void *data) {
  ctl_t *c = data;
  if (c->finishing) return;
  if (err || !succeeded) {
    char what[300];
    snprintf(what, sizeof what, "creating step \"%s\"", c->step_key);
    if (err) etcd_fail(c, what, err);
    else fprintf(stderr, "wfctl: %s: the key already exists (etcd %s)\n", what, endpoint(c));
    finish(c, 1);
    return;
  }
  printf("%s\n", c->step_key);
  fflush(stdout);
  c->last_status = wf_strdup("PENDDING");
  fprintf(stderr, "wfctl: step %s PENDDING for node %s\n", c->step_key, c->node);
  wf_etcd_watch_cbs_t cbs = {run_on_events, run_on_compacted, run_on_state};
  /* From the revision after our put: every later change is seen, none twice. */
  c->watch = wf_etcd_watch(c->etcd, c->etcd_key, strlen(c->etcd_key), rev + 1, &cbs, c);
  if (!c->watch) {
    fprintf(stderr, "wfctl: cannot watch step %s (etcd %s)\n", c->step_key, endpoint(c));
    finish(c, 1);
    return;
  }
  tail_start(c);
  if (c->timeout) {
    uv_timer_init(&c->loop, &c->deadline);
    c->deadline.data = c;
    c->deadline_on = 1;
    uv_timer_start(&c->deadline, on_deadline, (uint64_t)c->timeout * 1000, 0);
  }
}

static int run_start(ctl_t *c) {
  char id[21];
  wf_cli_xid(id);
  set_step_key(c, id);
  const char *at = strchr(c->action, '@');
  json_t *step = json_pack("{s:s, s:s, s:s, s:I, s:s%, s:s, s:O, s:{s:s, s:s}}",
                           "key", id, "create_type", "USER", "namespace", "",
                           "create_at", (json_int_t)wf_now_ms(),
                           "name", c->action, at ? (size_t)(at - c->action) : strlen(c->action),
                           "action", c->action, "with", c->with,
                           "status", "status", "PENDDING", "scheduled_node", c->node);
  if (!step) {
    fprintf(stderr, "wfctl: cannot build the step (invalid UTF-8 in an argument?)\n");
    return 1;
  }
  char *val = json_dumps(step, JSON_COMPACT);
  json_decref(step);
  int r = wf_etcd_put_if(c->etcd, c->etcd_key, strlen(c->etcd_key), 0, val, strlen(val),
                         on_run_put, c);
  free(val);
  if (r != 0) on_run_put(r, 0, 0, NULL, c);
  return 0;
}

/* ---- describe ------------------------------------------------------------------------------ */

/* A stored value for the describe model: the JSON, or a string (which the
 * codec refuses, so the model notes the object as invalid). */
static json_t *load_stored(const wf_etcd_kv_t *kv) {
  json_t *v = json_loadb(kv->value, kv->value_len, 0, NULL);
  return v ? v : json_string("(not JSON)");
}

static void describe_render(ctl_t *c) {
  json_t *m = wf_cli_describe(c->d_step, c->d_action, c->d_pipeline, c->mask_params,
                              wf_now_ms());
  char *s = c->out == OUT_JSON   ? json_dumps(m, JSON_INDENT(2))
            : c->out == OUT_YAML ? wf_cli_yaml_dump(m)
                                 : wf_cli_describe_text(m);
  json_decref(m);
  if (!s) {
    fprintf(stderr, "wfctl: step \"%s\": cannot format it\n", c->step_key);
    finish(c, 1);
    return;
  }
  printf("%s%s", s, c->out == OUT_JSON ? "\n" : "");
  free(s);
  finish(c, 0);
}

static void describe_on_pipeline(ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    char what[600];
    snprintf(what, sizeof what, "reading the pipeline of step \"%s\"", c->step_key);
    etcd_fail(c, what, err);
    finish(c, 1);
    return;
  }
  if (kv) c->d_pipeline = load_stored(kv);
  describe_render(c);
}

static void describe_on_action(ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    char what[600];
    snprintf(what, sizeof what, "reading action \"%s\" of step \"%s\"",
             jstr(c->d_step, "action"), c->step_key);
    etcd_fail(c, what, err);
    finish(c, 1);
    return;
  }
  if (kv) c->d_action = load_stored(kv);
  /* Pipeline steps merge the pipeline's `with` too (as engine.c does). */
  Wf__Step *st = (Wf__Step *)wf_codec_decode(&wf__step__descriptor, c->d_step, 0, NULL, 0);
  if (st && st->create_type == WF__STEP__CREATE__BY__PIPELINE) {
    char *key = wf_asprintf("%s/workflow/pipelines/%s/%s", c->prefix, st->namespace_,
                            st->pipeline_id);
    wf_codec_free((ProtobufCMessage *)st);
    read_key(c, key, describe_on_pipeline);
    free(key);
    return;
  }
  wf_codec_free((ProtobufCMessage *)st);
  describe_render(c);
}

static void describe_on_step(ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    char what[300];
    snprintf(what, sizeof what, "reading step \"%s\"", c->step_key);
    etcd_fail(c, what, err);
    finish(c, 1);
    return;
  }
  if (!kv) {
    step_not_found(c);
    finish(c, 1);
    return;
  }
  c->d_step = parse_step(c, kv);
  if (!c->d_step) {
    finish(c, 1);
    return;
  }
  char *name, *version;
  wf_action_ref_split(jstr(c->d_step, "action"), &name, &version);
  char *key = wf_asprintf("%s/workflow/actions/%s@%s", c->prefix, name, version);
  free(name);
  free(version);
  read_key(c, key, describe_on_action);
  free(key);
}

/* ---- get ----------------------------------------------------------------------------------- */

static const char *kind_word(enum get_kind k) {
  return k == GET_STEPS ? "step" : k == GET_ACTIONS ? "action" : "node";
}

static char *kind_prefix(const ctl_t *c) {
  switch (c->gk) {
  case GET_STEPS: return wf_asprintf("%s/workflow/steps/", c->prefix);
  case GET_ACTIONS: return wf_asprintf("%s/workflow/actions/", c->prefix);
  default: return wf_asprintf("%s/workflow/service/node/", c->prefix);
  }
}

static void fmt_time(int64_t ms, char *out, size_t len) {
  if (ms <= 0) {
    snprintf(out, len, "-");
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One object in a machine-readable form: a JSON line, a YAML document, or
 * its name as `get NAME` and the other commands take it. */
static void get_emit(ctl_t *c, const json_t *o, const char *last) {
  char *s = NULL;
  switch (c->out) {
  case OUT_JSON:
    s = json_dumps(o, JSON_COMPACT);
    if (s) printf("%s\n", s);
    break;
  case OUT_YAML:
    s = wf_cli_yaml_dump(o);
    if (s) printf("%s%s", c->nprinted ? "---\n" : "", s);
    break;
  case OUT_NAME:
    /* An action's key ends in name@version; a step's and node's in their
     * name, which the stored object normally repeats. */
    if (c->gk == GET_STEPS && jstr(o, "key")[0]) printf("%s\n", jstr(o, "key"));
    else if (c->gk == GET_NODES && jstr(o, "instance_name")[0])
      printf("%s\n", jstr(o, "instance_name"));
    else printf("%s\n", last);
    break;
  case OUT_TABLE: break;
  }
  free(s);
  c->nprinted++;
}

static void get_row(ctl_t *c, const wf_etcd_kv_t *kv) {
  json_error_t je;
  json_t *o = json_loadb(kv->value, kv->value_len, 0, &je);
  if (!json_is_object(o)) {
    fprintf(stderr, "wfctl: skipping %s: not a JSON object (etcd %s)\n", kv->key, endpoint(c));
    json_decref(o);
    return;
  }
  const char *last = strrchr(kv->key, '/');
  last = last ? last + 1 : kv->key;
  if (c->out != OUT_TABLE) {
    get_emit(c, o, last);
    json_decref(o);
    return;
  }
  switch (c->gk) {
  case GET_STEPS: {
    char *st = status_name(o);
    cells_push(c, jstr(o, "key")[0] ? jstr(o, "key") : last);
    cells_push(c, jstr(o, "action"));
    cells_push(c, step_node(o));
    cells_push(c, st);
    cells_push(c, step_message(o));
    free(st);
    break;
  }
  case GET_ACTIONS: {
    json_t *rt = json_object_get(o, "runner_type");
    const char *runner = "DOCKER"; /* the enum's zero, as the original reads a missing one */
    char num[32];
    if (json_is_string(rt)) runner = json_string_value(rt);
    else if (json_is_integer(rt)) {
      runner = wf_enum_name(&wf__runner__type__descriptor, (int)json_integer_value(rt));
      if (!runner) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(rt));
        runner = num;
      }
    }
    cells_push(c, jstr(o, "name"));
    cells_push(c, jstr(o, "version"));
    cells_push(c, runner);
    cells_push(c, jstr(o, "description"));
    break;
  }
  case GET_NODES: {
    char when[32];
    json_t *on = json_object_get(o, "online");
    fmt_time(json_is_integer(on) ? json_integer_value(on) : 0, when, sizeof when);
    cells_push(c, jstr(o, "instance_name")[0] ? jstr(o, "instance_name") : last);
    cells_push(c, jstr(o, "address"));
    cells_push(c, jstr(o, "version"));
    cells_push(c, when);
    break;
  }
  }
  json_decref(o);
}

static void get_print(ctl_t *c) {
  static const char *const heads[3][5] = {
      {"KEY", "ACTION", "NODE", "STATUS", "MESSAGE"},
      {"NAME", "VERSION", "RUNNER", "DESCRIPTION", NULL},
      {"NAME", "ADDRESS", "VERSION", "ONLINE", NULL},
  };
  if (c->out != OUT_TABLE) return;
  size_t nrows = c->ncells / c->ncols;
  if (nrows == 0) {
    if (!c->missing) fprintf(stderr, "wfctl: no %ss found\n", kind_word(c->gk));
    return;
  }
  size_t w[5] = {0};
  for (size_t j = 0; j < c->ncols; j++) w[j] = strlen(heads[c->gk][j]);
  for (size_t i = 0; i < c->ncells; i++) {
    size_t l = strlen(c->cells[i]);
    if (l > w[i % c->ncols]) w[i % c->ncols] = l;
  }
  for (size_t r = 0; r <= nrows; r++) {
    for (size_t j = 0; j < c->ncols; j++) {
      const char *s = r == 0 ? heads[c->gk][j] : c->cells[(r - 1) * c->ncols + j];
      if (j + 1 < c->ncols) printf("%-*s   ", (int)w[j], s);
      else printf("%s\n", s);
    }
  }
}

static void on_get_page(const wf_etcd_kv_t *kvs, size_t n, void *data) {
  ctl_t *c = data;
  if (c->finishing) return;
  for (size_t i = 0; i < n; i++) get_row(c, &kvs[i]);
}

static void on_get_done(int err, int64_t rev, void *data) {
  ctl_t *c = data;
  if (c->finishing) return;
  if (err) {
    char what[64];
    snprintf(what, sizeof what, "listing %ss", kind_word(c->gk));
    etcd_fail(c, what, err);
    finish(c, 1);
    return;
  }
  get_print(c);
  finish(c, 0);
}

static void get_next_name(ctl_t *c);

static void get_on_one(ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  const char *name = c->pos[c->iname - 1];
  if (err) {
    char what[300];
    snprintf(what, sizeof what, "reading %s \"%s\"", kind_word(c->gk), name);
    etcd_fail(c, what, err);
    finish(c, 1);
    return;
  }
  if (!kv) {
    fprintf(stderr, "wfctl: %s \"%s\" not found (etcd %s)\n", kind_word(c->gk), name,
            endpoint(c));
    c->missing = 1;
  } else {
    get_row(c, kv);
  }
  get_next_name(c);
}

static void get_next_name(ctl_t *c) {
  if (c->iname >= c->npos) {
    get_print(c);
    finish(c, c->missing ? 1 : 0);
    return;
  }
  const char *name = c->pos[c->iname++];
  char *pfx = kind_prefix(c);
  char *key = wf_asprintf("%s%s", pfx, name);
  free(pfx);
  read_key(c, key, get_on_one);
  free(key);
}

static int get_start(ctl_t *c) {
  c->ncols = c->gk == GET_STEPS ? 5 : 4;
  if (c->npos > 0) {
    get_next_name(c);
    return 0;
  }
  char *pfx = kind_prefix(c);
  int r = wf_etcd_list(c->etcd, pfx, strlen(pfx), PAGE_SIZE, on_get_page, on_get_done, c);
  free(pfx);
  if (r != 0) on_get_done(r, 0, c);
  return 0;
}

/* ---- apply ---------------------------------------------------------------------------------- */

static void apply_next(ctl_t *c);

static void on_apply_put(int err, int64_t rev, void *data) {
  ctl_t *c = data;
  if (c->finishing) return;
  if (err) {
    char what[300];
    snprintf(what, sizeof what, "writing %s", c->put_labels[c->iput]);
    etcd_fail(c, what, err);
    finish(c, 1);
    return;
  }
  printf("%s applied\n", c->put_labels[c->iput]);
  fflush(stdout);
  c->iput++;
  apply_next(c);
}

static void apply_next(ctl_t *c) {
  if (c->iput >= c->nput) {
    finish(c, 0);
    return;
  }
  const char *k = c->put_keys[c->iput], *v = c->put_values[c->iput];
  int r = wf_etcd_put(c->etcd, k, strlen(k), v, strlen(v), 0, on_apply_put, c);
  if (r != 0) on_apply_put(r, 0, c);
}

static json_t *read_stdin(char *err, size_t errlen) {
  wf_buf_t b;
  char chunk[65536];
  json_t *docs = NULL;
  wf_buf_init(&b, WF_YAML_MAX_FILE);
  for (;;) {
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      snprintf(err, errlen, "cannot read: %s", strerror(errno));
      goto out;
    }
    if (n == 0) break;
    if (wf_buf_append(&b, chunk, (size_t)n) != 0) {
      snprintf(err, errlen, "larger than %u bytes", (unsigned)WF_YAML_MAX_FILE);
      goto out;
    }
  }
  docs = wf_yaml_load_buf(b.data ? b.data : "", b.len, err, errlen);
out:
  wf_buf_finish(&b);
  return docs;
}

/* Loads and checks every document before writing any, so that a typo in the
 * fifth document does not leave the first four applied. */
static int apply_load(ctl_t *c) {
  char err[512];
  const char *fname = strcmp(c->file, "-") == 0 ? "<stdin>" : c->file;
  json_t *docs = strcmp(c->file, "-") == 0 ? read_stdin(err, sizeof err)
                                           : wf_yaml_load_file(c->file, err, sizeof err);
  if (!docs) {
    fprintf(stderr, "wfctl: %s: %s\n", fname, err);
    return 1;
  }
  size_t n = json_array_size(docs), i;
  json_t *doc;
  int bad = 0;
  c->put_keys = wf_calloc(n + 1, sizeof *c->put_keys);
  c->put_labels = wf_calloc(n + 1, sizeof *c->put_labels);
  c->put_values = wf_calloc(n + 1, sizeof *c->put_values);
  json_array_foreach(docs, i, doc) {
    if (json_is_null(doc)) continue;  /* an empty document ("---" at the end) */
    enum wf_cli_kind kind;
    char *key, *label;
    if (wf_cli_apply_prepare(doc, c->prefix, c->node, &kind, &key, &label, err,
                             sizeof err) != 0) {
      fprintf(stderr, "wfctl: %s: document %zu: %s\n", fname, i + 1, err);
      bad = 1;
      continue;
    }
    c->put_keys[c->nput] = key;
    c->put_labels[c->nput] = label;
    c->put_values[c->nput] = json_dumps(doc, JSON_COMPACT);
    c->nput++;
  }
  json_decref(docs);
  if (bad) return 1;
  if (c->nput == 0) {
    fprintf(stderr, "wfctl: %s: no documents\n", fname);
    return 1;
  }
  return 0;
}

/* ---- command line ---------------------------------------------------------------------------- */

typedef struct flag_s {
  const char *lng;   /* "--name" */
  const char *shrt;  /* "-f" or NULL */
  int value;         /* takes a value */
  int id;
} flag_t;

enum { F_ETCD, F_PREFIX, F_HELP, F_FILE, F_NODE, F_OUTPUT, F_FOLLOW, F_LOGROOT, F_WITH,
       F_TIMEOUT, F_MASK };

static const flag_t global_flags[] = {
    {"--etcd", NULL, 1, F_ETCD}, {"--prefix", NULL, 1, F_PREFIX},
    {"--help", "-h", 0, F_HELP}, {NULL, NULL, 0, 0},
};
static const flag_t apply_flags[] = {
    {"--filename", "-f", 1, F_FILE}, {"--file", NULL, 1, F_FILE}, {"--node", NULL, 1, F_NODE},
    {NULL, NULL, 0, 0},
};
static const flag_t get_flags[] = {{"--output", "-o", 1, F_OUTPUT}, {NULL, NULL, 0, 0}};
static const flag_t describe_flags[] = {
    {"--output", "-o", 1, F_OUTPUT}, {"--mask-params", NULL, 1, F_MASK}, {NULL, NULL, 0, 0},
};
static const flag_t logs_flags[] = {
    {"--follow", "-f", 0, F_FOLLOW}, {"--log-root", NULL, 1, F_LOGROOT}, {NULL, NULL, 0, 0},
};
static const flag_t run_flags[] = {
    {"--with", NULL, 1, F_WITH}, {"--node", NULL, 1, F_NODE}, {"--timeout", NULL, 1, F_TIMEOUT},
    {"--log-root", NULL, 1, F_LOGROOT}, {NULL, NULL, 0, 0},
};
static const flag_t none_flags[] = {{NULL, NULL, 0, 0}};

/* Matches argv[*i] against a flag table.  Returns the flag (value in *val,
 * *i advanced past it), NULL if not in the table; *bad set when it is but
 * its value is missing or it takes none. */
static const flag_t *match_flag(const flag_t *tab, int argc, char **argv, int *i,
                                const char **val, int *bad) {
  const char *a = argv[*i];
  for (const flag_t *f = tab; f->lng; f++) {
    size_t ll = strlen(f->lng);
    const char *inline_val = NULL;
    int hit = 0;
    if (strcmp(a, f->lng) == 0 || (f->shrt && strcmp(a, f->shrt) == 0)) hit = 1;
    else if (strncmp(a, f->lng, ll) == 0 && a[ll] == '=') hit = 1, inline_val = a + ll + 1;
    if (!hit) continue;
    *val = NULL;
    if (!f->value) {
      if (inline_val) *bad = 1;
      return f;
    }
    if (inline_val) *val = inline_val;
    else if (*i + 1 < argc) *val = argv[++*i];
    else *bad = 1;
    return f;
  }
  return NULL;
}

static int parse_uint_arg(const char *s, unsigned max, unsigned *out) {
  if (!*s) return -1;
  unsigned long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (unsigned)(*p - '0');
    if (v > max) return -1;
  }
  *out = (unsigned)v;
  return 0;
}

/* Applies one flag; returns 0 or an exit code. */
static int set_flag(ctl_t *c, const flag_t *f, const char *v, const char **etcd_arg,
                    const char **prefix_arg, int *help) {
  switch (f->id) {
  case F_ETCD: *etcd_arg = v; break;
  case F_PREFIX: *prefix_arg = v; break;
  case F_HELP: *help = 1; break;
  case F_FILE: c->file = v; break;
  case F_NODE: c->node = v; break;
  case F_FOLLOW: c->follow = 1; break;
  case F_LOGROOT: c->log_root = v; break;
  case F_OUTPUT: c->out_arg = v; break;  /* checked with the command */
  case F_MASK: c->mask_params = v; break;
  case F_TIMEOUT:
    if (parse_uint_arg(v, 31536000u, &c->timeout) != 0)
      return usage_error("--timeout: \"%s\" is not a whole number of seconds", v);
    break;
  case F_WITH: {
    const char *eq = strchr(v, '=');
    if (!eq) return usage_error("--with: \"%s\" is not KEY=VALUE", v);
    char *k = wf_strndup(v, (size_t)(eq - v));
    int ok = wf_env_name_valid(k);
    if (ok) json_object_set_new(c->with, k, json_string(eq + 1));
    free(k);
    if (!ok) return usage_error("--with: the key in \"%s\" is not a valid variable name", v);
    break;
  }
  }
  return 0;
}

static void ctl_finish(ctl_t *c) {
  for (size_t i = 0; i < c->nput; i++) {
    free(c->put_keys[i]);
    free(c->put_labels[i]);
    free(c->put_values[i]);
  }
  free(c->put_keys);
  free(c->put_labels);
  free(c->put_values);
  for (size_t i = 0; i < c->ncells; i++) free(c->cells[i]);
  free(c->cells);
  free(c->pos);
  free(c->step_key);
  free(c->etcd_key);
  free(c->last_status);
  free(c->log_path);
  free(c->open_error);
  free(c->prefix);
  json_decref(c->d_step);
  json_decref(c->d_action);
  json_decref(c->d_pipeline);
  wf_argv_free(c->endpoints);
  json_decref(c->with);
  if (c->fd >= 0) close(c->fd);
}

static const char *env_or(const char *name, const char *def) {
  const char *v = getenv(name);
  return v && v[0] ? v : def;
}

/* Parses the command line into c; returns -1 to go on, or an exit code. */
static int parse_args(ctl_t *c, int argc, char **argv) {
  const char *etcd_arg = NULL, *prefix_arg = NULL, *cmdword = NULL;
  int help = 0, i, rc;
  const flag_t *cmd_flags = none_flags;
  c->pos = wf_calloc((size_t)argc + 1, sizeof *c->pos);
  for (i = 1; i < argc; i++) {
    const char *v;
    int bad = 0;
    const flag_t *f = match_flag(global_flags, argc, argv, &i, &v, &bad);
    if (!f && cmdword) f = match_flag(cmd_flags, argc, argv, &i, &v, &bad);
    if (bad) return usage_error("%s: needs a value (or takes none)", argv[i]);
    if (f) {
      if ((rc = set_flag(c, f, v, &etcd_arg, &prefix_arg, &help)) != 0) return rc;
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1] != '\0')
      return usage_error("%s: unknown flag", argv[i]);
    if (!cmdword) {
      cmdword = argv[i];
      if (strcmp(cmdword, "apply") == 0) c->cmd = CMD_APPLY, cmd_flags = apply_flags;
      else if (strcmp(cmdword, "get") == 0) c->cmd = CMD_GET, cmd_flags = get_flags;
      else if (strcmp(cmdword, "logs") == 0) c->cmd = CMD_LOGS, cmd_flags = logs_flags;
      else if (strcmp(cmdword, "cancel") == 0) c->cmd = CMD_CANCEL;
      else if (strcmp(cmdword, "run") == 0) c->cmd = CMD_RUN, cmd_flags = run_flags;
      else if (strcmp(cmdword, "describe") == 0) c->cmd = CMD_DESCRIBE, cmd_flags = describe_flags;
      else if (strcmp(cmdword, "version") == 0 || strcmp(cmdword, "help") == 0) {
        /* handled below */
      } else {
        return usage_error("\"%s\" is not a command", cmdword);
      }
      continue;
    }
    c->pos[c->npos++] = argv[i];
  }
  if (help || !cmdword || strcmp(cmdword, "help") == 0) {
    usage(help || cmdword ? stdout : stderr);
    return help || cmdword ? 0 : EXIT_USAGE;
  }
  if (strcmp(cmdword, "version") == 0) {
    printf("wfctl %s\n", WF_VERSION);
    return 0;
  }

  char why[512];
  const char *el = etcd_arg ? etcd_arg : env_or("WORKFLOW_ETCD", "http://127.0.0.1:2379");
  if (wf_cli_parse_etcd(el, &c->endpoints, &c->nendpoints, why, sizeof why) != 0) {
    fprintf(stderr, "wfctl: %s: %s\n", etcd_arg ? "--etcd" : "WORKFLOW_ETCD", why);
    return EXIT_USAGE;
  }
  const char *p = prefix_arg ? prefix_arg : env_or("WORKFLOW_PREFIX", "inforboard");
  if (!p[0] || strchr(p, '/')) {
    fprintf(stderr, "wfctl: %s: \"%s\" must be non-empty and contain no '/'\n",
            prefix_arg ? "--prefix" : "WORKFLOW_PREFIX", p);
    return EXIT_USAGE;
  }
  c->prefix = wf_strdup(p);
  if (!c->mask_params) c->mask_params = env_or("WORKFLOW_MASK_PARAMS", DEFAULT_MASK);
  if (c->out_arg) {
    /* get: table|json|yaml|name; describe: text|json|yaml. */
    const char *o = c->out_arg;
    int is_get = c->cmd == CMD_GET;
    if (strcmp(o, "json") == 0) c->out = OUT_JSON;
    else if (strcmp(o, "yaml") == 0) c->out = OUT_YAML;
    else if (is_get && strcmp(o, "name") == 0) c->out = OUT_NAME;
    else if (strcmp(o, is_get ? "table" : "text") == 0) c->out = OUT_TABLE;
    else
      return usage_error(is_get ? "-o: \"%s\" is not table, json, yaml or name"
                                : "-o: \"%s\" is not text, json or yaml", o);
  }

  switch (c->cmd) {
  case CMD_APPLY:
    if (!c->file) return usage_error("apply: -f FILE is required%s", NULL);
    if (c->npos) return usage_error("apply: unexpected argument \"%s\"", c->pos[0]);
    break;
  case CMD_GET:
    if (c->npos == 0) return usage_error("get: say what: steps, actions or nodes%s", NULL);
    if (strcmp(c->pos[0], "steps") == 0 || strcmp(c->pos[0], "step") == 0) c->gk = GET_STEPS;
    else if (strcmp(c->pos[0], "actions") == 0 || strcmp(c->pos[0], "action") == 0)
      c->gk = GET_ACTIONS;
    else if (strcmp(c->pos[0], "nodes") == 0 || strcmp(c->pos[0], "node") == 0)
      c->gk = GET_NODES;
    else return usage_error("get: \"%s\" is not steps, actions or nodes", c->pos[0]);
    memmove(c->pos, c->pos + 1, c->npos * sizeof *c->pos);
    c->npos--;
    for (size_t k = 0; k < c->npos; k++)
      if (!wf_cli_name_ok(c->pos[k])) return usage_error("get: bad name \"%s\"", c->pos[k]);
    break;
  case CMD_LOGS:
  case CMD_CANCEL:
  case CMD_DESCRIBE:
    if (c->npos != 1) return usage_error("%s: expects one STEP_KEY", cmdword);
    if (!wf_cli_name_ok(c->pos[0]))
      return usage_error("\"%s\" is not a valid step key", c->pos[0]);
    set_step_key(c, c->pos[0]);
    break;
  case CMD_RUN:
    if (c->npos != 1) return usage_error("run: expects one ACTION (name@version)%s", NULL);
    c->action = c->pos[0];
    if (!c->action[0]) return usage_error("run: the action is empty%s", NULL);
    if (!c->node || !c->node[0]) return usage_error("run: --node NAME is required%s", NULL);
    break;
  }
  return -1;
}

int wf_wfctl_main(int argc, char **argv) {
  ctl_t c;
  memset(&c, 0, sizeof c);
  c.fd = -1;
  c.with = json_object();
  /* The etcd client logs its retries; wfctl reports what matters itself. */
  wf_log_setup(WF_LOG_ERROR, 0);
  int rc = parse_args(&c, argc, argv);
  if (rc >= 0) goto out;

  if (c.cmd == CMD_APPLY && apply_load(&c) != 0) {
    rc = 1;
    goto out;
  }
  uv_loop_init(&c.loop);
  wf_etcd_opts_t eo = {.endpoints = (const char *const *)c.endpoints, .nendpoints = c.nendpoints};
  c.etcd = wf_etcd_create(&c.loop, &eo);
  if (!c.etcd) {
    fprintf(stderr, "wfctl: cannot use etcd endpoints %s\n", c.endpoints[0]);
    rc = 1;
  } else {
    c.rc = 1;
    switch (c.cmd) {
    case CMD_APPLY: apply_next(&c); break;
    case CMD_GET: get_start(&c); break;
    case CMD_LOGS: read_key(&c, c.etcd_key, logs_on_step); break;
    case CMD_CANCEL: read_key(&c, c.etcd_key, cancel_on_read); break;
    case CMD_DESCRIBE: read_key(&c, c.etcd_key, describe_on_step); break;
    case CMD_RUN:
      if (run_start(&c) != 0) finish(&c, 1);
      break;
    }
    uv_run(&c.loop, UV_RUN_DEFAULT);
    rc = c.rc;
  }
  /* Whatever is left (nothing, normally) is closed before the loop goes. */
  if (c.etcd) finish(&c, rc);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  uv_loop_close(&c.loop);
out:
  ctl_finish(&c);
  return rc;
}
