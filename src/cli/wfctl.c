/*
 * wfctl: the companion command for people (spec.md §8): apply, get, logs,
 * cancel and run, all straight against etcd through the same client the node
 * uses.
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

#include "wf-version.h"
#include "wf/cli.h"
#include "wf/codec.h"
#include "wf/etcd.h"
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

enum cmd { CMD_APPLY, CMD_GET, CMD_LOGS, CMD_CANCEL, CMD_RUN };
enum get_kind { GET_STEPS, GET_ACTIONS, GET_NODES };

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
  int json_out;
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
          "  get steps|actions|nodes [NAME...] [-o json]\n"
          "                                  list objects as a table or JSON lines\n"
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
    fprintf(stderr, "wfctl: step \"%s\": stored value is not a JSON object (%s)\n",
            c->step_key, s ? "wrong type" : je.text);
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
      fprintf(stderr, "wfctl: step \"%s\" was deleted\n", c->step_key);
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
      fprintf(stderr, "wfctl: step \"%s\" has no log yet (status %s)\n", c->step_key,
              c->last_status);
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
      fprintf(stderr, "wfctl: step %s was deleted\n", c->step_key);
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
    fprintf(stderr, "wfctl: step %s was deleted\n", c->step_key);
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

static void get_row(ctl_t *c, const wf_etcd_kv_t *kv) {
  json_error_t je;
  json_t *o = json_loadb(kv->value, kv->value_len, 0, &je);
  if (!json_is_object(o)) {
    fprintf(stderr, "wfctl: skipping %s: not a JSON object\n", kv->key);
    json_decref(o);
    return;
  }
  if (c->json_out) {
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(o);
    return;
  }
  const char *last = strrchr(kv->key, '/');
  last = last ? last + 1 : kv->key;
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
  if (c->json_out) return;
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
       F_TIMEOUT };

static const flag_t global_flags[] = {
    {"--etcd", NULL, 1, F_ETCD}, {"--prefix", NULL, 1, F_PREFIX},
    {"--help", "-h", 0, F_HELP}, {NULL, NULL, 0, 0},
};
static const flag_t apply_flags[] = {
    {"--filename", "-f", 1, F_FILE}, {"--file", NULL, 1, F_FILE}, {"--node", NULL, 1, F_NODE},
    {NULL, NULL, 0, 0},
};
static const flag_t get_flags[] = {{"--output", "-o", 1, F_OUTPUT}, {NULL, NULL, 0, 0}};
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
  case F_OUTPUT:
    if (strcmp(v, "json") == 0) c->json_out = 1;
    else if (strcmp(v, "table") == 0) c->json_out = 0;
    else return usage_error("-o: \"%s\" is not json or table", v);
    break;
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
