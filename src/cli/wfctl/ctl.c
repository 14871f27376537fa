/*
 * ctl: the context of one wfctl run.  It reads the command line (flags may
 * come before or after the command word; environment defaults for --etcd,
 * --prefix and --mask-params, and for the access options access.c checks),
 * creates the loop and the etcd client the node uses (with its TLS and
 * authentication options), starts the command and runs the loop until the
 * command calls wf__ctl_end, which closes the client, the timers and a
 * remote log read so that uv_run returns with the exit code set.  It also
 * holds what every command shares: reading one key, and the error lines
 * that name the object and the etcd endpoint in use.
 *
 * Exit codes: 0 done, 1 the command failed (or `run`'s step did not
 * succeed), 2 usage error.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "wf-version.h"
#include "wf/cli.h"
#include "wf/etcd.h"
#include "wf/util.h"
#include "wfctl-internal.h"

#define EXIT_USAGE 2
/* What `describe` hides, unless --mask-params or WORKFLOW_MASK_PARAMS say
 * otherwise: the node's default (config.c). */
#define DEFAULT_MASK "*PASSWORD*,*SECRET*,*TOKEN*"

/* ---- output shared by the commands ---------------------------------------------- */

const char *wf__ctl_endpoint(const wf__ctl_t *c) {
  const char *e = c->etcd ? wf_etcd_endpoint(c->etcd) : NULL;
  return e ? e : (c->nendpoints ? c->endpoints[0] : "?");
}

const char *wf__ctl_err_text(const wf__ctl_t *c, int err) {
  if ((err == WF_EETCD || err == WF_EHTTP) && c->etcd) {
    const char *m = wf_etcd_errmsg(c->etcd);
    /* etcd with authentication on answers a request without a token so. */
    if (m && strstr(m, "user name is empty") && !c->etcd_password)
      return "etcd requires authentication: give --etcd-user and --etcd-password-file "
             "(etcdserver: user name is empty)";
    if (m && m[0]) return m;
  }
  return wf_strerror(err);
}

void wf__ctl_fail(wf__ctl_t *c, int err, const char *fmt, ...) {
  char what[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  fprintf(stderr, "wfctl: %s: %s (etcd %s)\n", what, wf__ctl_err_text(c, err),
          wf__ctl_endpoint(c));
  /* The etcd client does not say why TLS failed: ask once at the end. */
  if (err == WF_ETLS && !c->tls_failed_endpoint)
    c->tls_failed_endpoint = wf_strdup(wf__ctl_endpoint(c));
}

void wf__ctl_step_not_found(wf__ctl_t *c) {
  fprintf(stderr, "wfctl: step \"%s\" not found (etcd %s)\n", c->step_key,
          wf__ctl_endpoint(c));
}

/* ---- lifecycle ---------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static void on_etcd_closed(void *data) { (void)data; }

void wf__ctl_timer_start(wf__ctl_t *c, uv_timer_t *t, int *on, uv_timer_cb cb,
                         uint64_t timeout, uint64_t repeat) {
  if (*on) return;
  uv_timer_init(&c->loop, t);
  t->data = c;
  *on = 1;
  uv_timer_start(t, cb, timeout, repeat);
}

void wf__ctl_timer_stop(uv_timer_t *t, int *on) {
  if (!*on) return;
  *on = 0;
  uv_close((uv_handle_t *)t, on_handle_closed);
}

void wf__ctl_watch_stop(wf__ctl_t *c) {
  if (!c->watch) return;
  wf_etcd_watch_cancel(c->watch);
  c->watch = NULL;
}

void wf__ctl_end(wf__ctl_t *c, int rc) {
  if (c->finishing) return;
  c->finishing = 1;
  c->rc = rc;
  wf__tail_stop(c);
  wf__remote_stop(c);
  wf__ctl_timer_stop(&c->deadline, &c->deadline_on);
  wf__ctl_watch_stop(c);
  if (c->etcd) {
    wf_etcd_close(c->etcd, on_etcd_closed, c);
    c->etcd = NULL;
  }
}

/* ---- reading one key ------------------------------------------------------------- */

static void on_range(int err, const wf_etcd_range_res_t *res, void *data) {
  wf__ctl_t *c = data;
  c->reading = 0;
  if (c->finishing) return;
  c->on_read(c, err, err == 0 && res->nkvs ? &res->kvs[0] : NULL);
}

void wf__ctl_read_key(wf__ctl_t *c, const char *key, wf__ctl_read_cb cb) {
  wf_etcd_range_opts_t o = {0};
  c->on_read = cb;
  c->reading = 1;
  int r = wf_etcd_range(c->etcd, key, strlen(key), NULL, 0, &o, on_range, c);
  if (r != 0) {
    c->reading = 0;
    cb(c, r, NULL);
  }
}

json_t *wf__ctl_parse_step(wf__ctl_t *c, const wf_etcd_kv_t *kv) {
  json_error_t je;
  json_t *s = json_loadb(kv->value, kv->value_len, 0, &je);
  if (!json_is_object(s)) {
    fprintf(stderr, "wfctl: step \"%s\": stored value is not a JSON object (%s) (etcd %s)\n",
            c->step_key, s ? "wrong type" : je.text, wf__ctl_endpoint(c));
    json_decref(s);
    return NULL;
  }
  return s;
}

int wf__ctl_step_found(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  if (err) {
    wf__ctl_fail(c, err, "reading step \"%s\"", c->step_key);
    return 0;
  }
  if (!kv) {
    wf__ctl_step_not_found(c);
    return 0;
  }
  return 1;
}

void wf__ctl_set_step_key(wf__ctl_t *c, const char *key) {
  c->step_key = wf_strdup(key);
  c->etcd_key = wf_asprintf("%s/workflow/steps/%s", c->prefix, key);
}

/* ---- command line ---------------------------------------------------------------- */

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
          "  logs STEP_KEY [-f] [--log-root DIR] [NODE ACCESS]\n"
          "                                  print a step's log (-f: follow to the end);\n"
          "                                  from its node when the file is not here\n"
          "  cancel STEP_KEY                 ask the step's node to cancel it\n"
          "  run ACTION --node NAME [--with K=V ...] [--timeout SEC] [--log-root DIR]\n"
          "      [NODE ACCESS]               create a user step and follow it to its end;\n"
          "                                  exit 0 only if it SUCCEEDED\n"
          "  version                         print the version\n"
          "\n"
          "global flags:\n"
          "  --etcd URL[,URL...]         env WORKFLOW_ETCD; default http://127.0.0.1:2379\n"
          "  --prefix P                  env WORKFLOW_PREFIX; default inforboard\n"
          "  --etcd-cacert FILE          env WORKFLOW_ETCD_CACERT; CA (PEM) for https://\n"
          "                              endpoints; default: the system trust store\n"
          "  --etcd-cert FILE            env WORKFLOW_ETCD_CERT; client certificate (PEM)\n"
          "                              for etcd's --client-cert-auth; needs --etcd-key\n"
          "  --etcd-key FILE             env WORKFLOW_ETCD_KEY; its private key (PEM)\n"
          "  --etcd-user NAME            env WORKFLOW_ETCD_USER; etcd user (authentication)\n"
          "  --etcd-password-file FILE   env WORKFLOW_ETCD_PASSWORD_FILE; the user's password\n"
          "                              (or the password itself in WORKFLOW_ETCD_PASSWORD)\n"
          "  --etcd-http2 auto|off       env WORKFLOW_ETCD_HTTP2; default auto: HTTP/2 with\n"
          "                              https:// etcd that offers it; off: HTTP/1.1 only\n"
          "  -h, --help                  this help\n"
          "\n"
          "node access (logs, run: reading a log from the node's --listen endpoint):\n"
          "  --token-file FILE           env WFCTL_TOKEN_FILE; sent as Authorization: Bearer\n"
          "  --cacert FILE               env WFCTL_CACERT; CA (PEM) for an https:// endpoint\n"
          "  --node-cert FILE            env WFCTL_NODE_CERT; client certificate (PEM) for\n"
          "                              the node; needs --node-key\n"
          "  --node-key FILE             env WFCTL_NODE_KEY; its private key (PEM)\n");
}

void wf__ctl_vsay(const char *fmt, va_list ap) {
  fprintf(stderr, "wfctl: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
}

static int usage_error(const char *fmt, const char *a) {
  fprintf(stderr, "wfctl: ");
  fprintf(stderr, fmt, a ? a : "");
  fprintf(stderr, "\n(see wfctl --help)\n");
  return EXIT_USAGE;
}

typedef struct flag_s {
  const char *lng;   /* "--name" */
  const char *shrt;  /* "-f" or NULL */
  int value;         /* takes a value */
  int id;
} flag_t;

enum { F_ETCD, F_PREFIX, F_HELP, F_FILE, F_NODE, F_OUTPUT, F_FOLLOW, F_LOGROOT, F_WITH,
       F_TIMEOUT, F_MASK, F_ACC /* + enum wf__acc: an access option (access.c) */ };

static const flag_t global_flags[] = {
    {"--etcd", NULL, 1, F_ETCD}, {"--prefix", NULL, 1, F_PREFIX},
    {"--etcd-cacert", NULL, 1, F_ACC + ACC_ETCD_CACERT},
    {"--etcd-cert", NULL, 1, F_ACC + ACC_ETCD_CERT},
    {"--etcd-key", NULL, 1, F_ACC + ACC_ETCD_KEY},
    {"--etcd-user", NULL, 1, F_ACC + ACC_ETCD_USER},
    {"--etcd-password-file", NULL, 1, F_ACC + ACC_ETCD_PASSWORD_FILE},
    {"--etcd-http2", NULL, 1, F_ACC + ACC_ETCD_HTTP2},
    {"--help", "-h", 0, F_HELP}, {NULL, NULL, 0, 0},
};
/* Reading a log from its node (logs, run). */
#define NODE_ACCESS_FLAGS                                                                      \
  {"--token-file", NULL, 1, F_ACC + ACC_TOKEN_FILE}, {"--cacert", NULL, 1, F_ACC + ACC_CACERT}, \
      {"--node-cert", NULL, 1, F_ACC + ACC_NODE_CERT},                                         \
      {"--node-key", NULL, 1, F_ACC + ACC_NODE_KEY}
static const flag_t apply_flags[] = {
    {"--filename", "-f", 1, F_FILE}, {"--file", NULL, 1, F_FILE}, {"--node", NULL, 1, F_NODE},
    {NULL, NULL, 0, 0},
};
static const flag_t get_flags[] = {{"--output", "-o", 1, F_OUTPUT}, {NULL, NULL, 0, 0}};
static const flag_t describe_flags[] = {
    {"--output", "-o", 1, F_OUTPUT}, {"--mask-params", NULL, 1, F_MASK}, {NULL, NULL, 0, 0},
};
static const flag_t logs_flags[] = {
    {"--follow", "-f", 0, F_FOLLOW}, {"--log-root", NULL, 1, F_LOGROOT}, NODE_ACCESS_FLAGS,
    {NULL, NULL, 0, 0},
};
static const flag_t run_flags[] = {
    {"--with", NULL, 1, F_WITH}, {"--node", NULL, 1, F_NODE}, {"--timeout", NULL, 1, F_TIMEOUT},
    {"--log-root", NULL, 1, F_LOGROOT}, NODE_ACCESS_FLAGS, {NULL, NULL, 0, 0},
};
static const flag_t none_flags[] = {{NULL, NULL, 0, 0}};

/* The commands: their flags (besides the global ones) and where each
 * starts once the loop and the etcd client exist. */
static const struct command {
  const char *word;
  const flag_t *flags;
  void (*start)(wf__ctl_t *c);
} commands[] = {
    [CMD_APPLY] = {"apply", apply_flags, wf__apply_start},
    [CMD_GET] = {"get", get_flags, wf__get_start},
    [CMD_LOGS] = {"logs", logs_flags, wf__logs_start},
    [CMD_CANCEL] = {"cancel", none_flags, wf__cancel_start},
    [CMD_RUN] = {"run", run_flags, wf__run_start},
    [CMD_DESCRIBE] = {"describe", describe_flags, wf__describe_start},
};

static const struct command *find_command(const char *word) {
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].word, word) == 0) return &commands[i];
  return NULL;
}

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
static int set_flag(wf__ctl_t *c, const flag_t *f, const char *v, const char **etcd_arg,
                    const char **prefix_arg, int *help) {
  if (f->id >= F_ACC) {
    c->acc_arg[f->id - F_ACC] = v;
    return 0;
  }
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

static void ctl_finish(wf__ctl_t *c) {
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
  free(c->log_node);
  free(c->r_origin);
  free(c->open_error);
  wf__access_finish(c);
  free(c->prefix);
  json_decref(c->d_step);
  json_decref(c->d_action);
  json_decref(c->d_pipeline);
  wf_offers_destroy(c->d_offers);
  wf_params_finish(&c->d_offer_values);
  wf_params_finish(&c->d_offer_origins);
  wf_argv_free(c->endpoints);
  json_decref(c->with);
  if (c->fd >= 0) close(c->fd);
}

static const char *env_or(const char *name, const char *def) {
  const char *v = getenv(name);
  return v && v[0] ? v : def;
}

/* Parses the command line into c; returns -1 to go on, or an exit code. */
static int parse_args(wf__ctl_t *c, int argc, char **argv) {
  const char *etcd_arg = NULL, *prefix_arg = NULL, *cmdword = NULL;
  int help = 0, i, rc;
  const flag_t *cmd_flags = none_flags;
  c->pos = wf_calloc((size_t)argc + 1, sizeof *c->pos);
  for (i = 1; i < argc; i++) {
    const char *v;
    int bad = 0;
    const flag_t *f = match_flag(global_flags, argc, argv, &i, &v, &bad);
    if (!f && cmdword) f = match_flag(cmd_flags, argc, argv, &i, &v, &bad);
    if (bad) {
      fprintf(stderr, "wfctl: %.*s: needs a value (or takes none)\n(see wfctl --help)\n",
              (int)strcspn(argv[i], "="), argv[i]);
      return EXIT_USAGE;
    }
    if (f) {
      if ((rc = set_flag(c, f, v, &etcd_arg, &prefix_arg, &help)) != 0) return rc;
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1] != '\0') {
      /* The name only: a value may be a secret (--etcd-password=...). */
      fprintf(stderr, "wfctl: %.*s: unknown flag\n(see wfctl --help)\n",
              (int)strcspn(argv[i], "="), argv[i]);
      return EXIT_USAGE;
    }
    if (!cmdword) {
      cmdword = argv[i];
      const struct command *cmd = find_command(cmdword);
      if (cmd) {
        c->cmd = (enum wf__cmd)(cmd - commands);
        cmd_flags = cmd->flags;
      } else if (strcmp(cmdword, "version") != 0 && strcmp(cmdword, "help") != 0) {
        return usage_error("\"%s\" is not a command", cmdword);
      } /* else: handled below */
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
    wf__ctl_set_step_key(c, c->pos[0]);
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

void wf__ctl_flush_stdout(void) {
  if (fflush(stdout) == 0 || errno != EPIPE) return;
  signal(SIGPIPE, SIG_DFL);
  raise(SIGPIPE);
}

int wf_wfctl_main(int argc, char **argv) {
  wf__ctl_t c;
  memset(&c, 0, sizeof c);
  c.fd = -1;
  c.with = json_object();
  wf_params_init(&c.d_offer_values);
  wf_params_init(&c.d_offer_origins);
  /* The etcd client logs its retries; wfctl reports what matters itself. */
  wf_log_setup(WF_LOG_ERROR, 0);
  signal(SIGPIPE, SIG_IGN);
  int rc = parse_args(&c, argc, argv);
  if (rc >= 0) goto out;
  wf_etcd_opts_t eo = {.endpoints = (const char *const *)c.endpoints, .nendpoints = c.nendpoints};
  if ((rc = wf__access_setup(&c, &eo)) >= 0) goto out;

  if (c.cmd == CMD_APPLY && wf__apply_load(&c) != 0) {
    rc = 1;
    goto out;
  }
  uv_loop_init(&c.loop);
  if ((rc = wf__access_check_node_tls(&c)) >= 0) {
    /* nothing started: the loop only closes the probe */
  } else if (!(c.etcd = wf_etcd_create(&c.loop, &eo))) {
    rc = wf__access_explain_create(&c);
  } else {
    c.rc = 1;
    commands[c.cmd].start(&c);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    rc = c.rc;
  }
  /* Whatever is left (nothing, normally) is closed before the loop goes. */
  if (c.etcd) wf__ctl_end(&c, rc);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  if (c.tls_failed_endpoint) wf__access_explain_tls(&c);
  uv_loop_close(&c.loop);
out:
  ctl_finish(&c);
  return rc;
}
