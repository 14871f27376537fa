/*
 * config: fills wf_config_t from the command line, the environment and a
 * YAML config file, in that order of precedence (docs/protocol.md §8).
 *
 * Every option is one row of a table (flag, env var, default, kind, where it
 * lands in the struct), so --help, the three sources and the error messages
 * cannot drift apart.  Each source is first reduced to text; then the winning
 * text of each option is checked once, and an error names the source it came
 * from: the flag, the variable, or the file and key.  Nothing here runs on
 * the loop (it is start-up), so the file is read synchronously.
 *
 * Why this is one idea in one file of about 960 lines (over the house's
 * 900, docs/house-rules.md rule 1): the option table, the three sources
 * that fill it, and the checks that span options (TLS files, etcd auth,
 * --listen's files) all read the same table and name an error's source
 * through the same loader; split apart, each part would need the loader
 * laid open in a header.
 */
#include "wf/config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "wf-version.h"
#include "wf/cli.h"
#include "wf/http.h"
#include "wf/httpd.h"
#include "wf/yaml.h"

extern char **environ;

enum kind {
  K_NAME,    /* node name: a key segment */
  K_ETCD,    /* endpoint list */
  K_PREFIX,  /* key prefix: no '/' */
  K_PATH,    /* non-empty path */
  K_OPTPATH, /* path, empty = none */
  K_DOCKER,  /* unix:///path or tcp://host:port */
  K_UINT,    /* whole number in [min, max] */
  K_LEVEL,   /* debug|info|warn|error */
  K_FORMAT,  /* text|json */
  K_HTTP2,   /* auto|off: WF_HTTP2_AUTO or WF_HTTP2_OFF (int) */
  K_TEXT,    /* any text */
  K_BOOL,    /* --help, --version: no value */
  K_SWITCH,  /* on/off: --flag alone means true; --flag=false; env/file true|false */
  K_LIST,    /* repeatable: --flag A --flag B; env comma-separated; file string or list */
  K_SECRET,  /* any text, never echoed in a message; wiped when freed */
  K_LISTEN,  /* HOST:PORT with an IP literal or localhost; empty = off */
  K_DURATION, /* 90s, 30m, 12h, 7d, 2w or plain seconds (wf_parse_duration_ms); 0 = off */
  K_SIZE,    /* bytes, or 512K, 100M, 10G, 1T, powers of 1024 (wf_parse_size_bytes); 0 = off */
};

typedef struct opt_s {
  const char *flag;     /* long name without "--"; also the config key */
  const char *env;      /* NULL = none */
  enum kind kind;
  const char *def;      /* default as text (NULL = none / computed) */
  unsigned min, max;    /* K_UINT */
  size_t off;           /* offset in wf_config_t (K_UINT: unsigned; K_DURATION: int64_t
                           ms; K_SIZE: uint64_t; K_SWITCH, K_HTTP2: int; others char*) */
  const char *arg;      /* placeholder for --help */
  const char *help;
} opt_t;

#define OFF(f) offsetof(wf_config_t, f)
#define NO_OFF ((size_t)-1)

/* Upper bound for second counts: a year; only to keep ms arithmetic sane. */
#define MAX_SECONDS 31536000u

static const opt_t opts[] = {
  {"name", "WORKFLOW_NODE_NAME", K_NAME, NULL, 0, 0, OFF(node.name), "NAME",
   "node name: steps with this status.scheduled_node are ours"},
  {"etcd", "WORKFLOW_ETCD", K_ETCD, "http://127.0.0.1:2379", 0, 0, NO_OFF, "URL[,URL...]",
   "etcd endpoints, tried in turn"},
  {"prefix", "WORKFLOW_PREFIX", K_PREFIX, "inforboard", 0, 0, OFF(node.prefix), "P",
   "etcd key prefix (no '/')"},
  {"config", "WORKFLOW_CONFIG", K_PATH, NULL, 0, 0, OFF(config_file), "FILE",
   "YAML config file; keys are the long flag names"},
  {"log-dir", "WORKFLOW_LOG_DIR", K_PATH, "runner_log", 0, 0, OFF(node.log_dir), "DIR",
   "directory for step log files"},
  {"log-retention", "WORKFLOW_LOG_RETENTION", K_DURATION, "0", 0, 0, OFF(node.log_retention_ms),
   "DURATION", "remove step logs older than this (90s, 30m, 12h, 7d, 2w; 0 = off)"},
  {"log-max-bytes", "WORKFLOW_LOG_MAX_BYTES", K_SIZE, "0", 0, 0, OFF(node.log_max_bytes), "SIZE",
   "keep at most SIZE of step logs, oldest removed first (512M, 10G; 0 = off)"},
  {"output-dir", "WORKFLOW_OUTPUT_DIR", K_PATH, "runner_output", 0, 0, OFF(node.output_dir),
   "DIR", "directory for the files steps write their outputs to"},
  {"actions-dir", "WORKFLOW_ACTIONS_DIR", K_OPTPATH, NULL, 0, 0, OFF(node.actions_dir), "DIR",
   "directory of action YAML files (etcd actions win)"},
  {"docker-host", "DOCKER_HOST", K_DOCKER, "unix:///var/run/docker.sock", 0, 0,
   OFF(node.docker_host), "URL", "Docker Engine API address"},
  {"max-parallel", "WORKFLOW_MAX_PARALLEL", K_UINT, "16", 1, 10000, OFF(node.max_parallel), "N",
   "steps run at once; more wait in order"},
  {"step-timeout", "WORKFLOW_STEP_TIMEOUT", K_UINT, "0", 0, MAX_SECONDS, OFF(node.step_timeout),
   "SEC", "default step timeout, 0 = none"},
  {"stop-grace", "WORKFLOW_STOP_GRACE", K_UINT, "10", 0, 86400, OFF(node.stop_grace), "SEC",
   "time between the graceful stop signal and the kill"},
  {"resync", "WORKFLOW_RESYNC", K_UINT, "300", 0, MAX_SECONDS, OFF(node.resync), "SEC",
   "full re-list of steps every SEC, 0 = off"},
  {"ttl", "WORKFLOW_TTL", K_UINT, "30", 2, 86400, OFF(node.ttl), "SEC",
   "registration lease TTL"},
  {"drain-timeout", "WORKFLOW_DRAIN_TIMEOUT", K_UINT, "30", 0, MAX_SECONDS, OFF(node.drain_timeout),
   "SEC", "on SIGTERM, time running steps get before they are canceled"},
  {"log-level", "WORKFLOW_LOG_LEVEL", K_LEVEL, "info", 0, 0, NO_OFF, "LEVEL",
   "debug, info, warn or error"},
  {"log-format", "WORKFLOW_LOG_FORMAT", K_FORMAT, "text", 0, 0, NO_OFF, "FORMAT",
   "text or json"},
  {"address", "WORKFLOW_ADDRESS", K_TEXT, "", 0, 0, OFF(node.address), "ADDR",
   "address published in the node record"},
  {"allow-mount", "WORKFLOW_ALLOW_MOUNT", K_LIST, NULL, 0, 0, NO_OFF, "DIR",
   "host directory docker steps may mount (repeatable; env: comma list)"},
  {"docker-wait", "WORKFLOW_DOCKER_WAIT", K_UINT, "30", 0, 86400, OFF(node.docker_wait), "SEC",
   "how long a docker step waits for an unreachable engine"},
  {"pull-timeout", "WORKFLOW_PULL_TIMEOUT", K_UINT, "600", 1, 86400, OFF(node.pull_timeout), "SEC",
   "longest image pull"},
  {"keep-containers", "WORKFLOW_KEEP_CONTAINERS", K_SWITCH, "false", 0, 0,
   OFF(node.keep_containers), NULL, "keep finished containers (for debugging)"},
  {"mask-params", "WORKFLOW_MASK_PARAMS", K_TEXT, "*PASSWORD*,*SECRET*,*TOKEN*", 0, 0,
   OFF(node.mask_params), "GLOBS", "params whose values are masked in logs and messages"},
  {"etcd-user", "WORKFLOW_ETCD_USER", K_TEXT, NULL, 0, 0, OFF(node.etcd_user), "NAME",
   "etcd user (authentication); needs a password"},
  {"etcd-password", "WORKFLOW_ETCD_PASSWORD", K_SECRET, NULL, 0, 0, OFF(node.etcd_password), "PW",
   "password of --etcd-user (visible in ps: prefer the file or the env)"},
  {"etcd-password-file", "WORKFLOW_ETCD_PASSWORD_FILE", K_OPTPATH, NULL, 0, 0,
   OFF(etcd_password_file), "FILE", "file holding the password of --etcd-user"},
  {"etcd-cacert", "WORKFLOW_ETCD_CACERT", K_OPTPATH, NULL, 0, 0, OFF(node.etcd_cacert), "FILE",
   "CA certificates (PEM) for https:// etcd endpoints; default: the system trust store"},
  {"etcd-cert", "WORKFLOW_ETCD_CERT", K_OPTPATH, NULL, 0, 0, OFF(node.etcd_cert), "FILE",
   "client certificate (PEM) for etcd's --client-cert-auth; needs --etcd-key"},
  {"etcd-key", "WORKFLOW_ETCD_KEY", K_OPTPATH, NULL, 0, 0, OFF(node.etcd_key), "FILE",
   "private key (PEM, unencrypted) of --etcd-cert"},
  {"etcd-http2", "WORKFLOW_ETCD_HTTP2", K_HTTP2, "auto", 0, 0, OFF(node.etcd_http2), "auto|off",
   "auto: HTTP/2 with https:// etcd that offers it (one connection per endpoint); off: HTTP/1.1"},
  {"etcd-watch-idle", "WORKFLOW_ETCD_WATCH_IDLE", K_UINT, "10", 1, 86400, OFF(node.etcd_watch_idle),
   "SEC", "a watch silent this long probes etcd; reconnects if it does not answer"},
  {"listen", "WORKFLOW_LISTEN", K_LISTEN, NULL, 0, 0, OFF(node.listen), "ADDR:PORT",
   "serve /healthz, /readyz, /metrics and step logs there (e.g. 127.0.0.1:9464); default off"},
  {"listen-token-file", "WORKFLOW_LISTEN_TOKEN_FILE", K_OPTPATH, NULL, 0, 0,
   OFF(node.listen_token_file), "FILE",
   "bearer token (the file's content) that /metrics and step logs require"},
  {"listen-cert", "WORKFLOW_LISTEN_CERT", K_OPTPATH, NULL, 0, 0, OFF(node.listen_cert), "FILE",
   "certificate (PEM) of --listen: it then speaks TLS only; needs --listen-key"},
  {"listen-key", "WORKFLOW_LISTEN_KEY", K_OPTPATH, NULL, 0, 0, OFF(node.listen_key), "FILE",
   "private key (PEM, unencrypted) of --listen-cert"},
  {"listen-client-ca", "WORKFLOW_LISTEN_CLIENT_CA", K_OPTPATH, NULL, 0, 0,
   OFF(node.listen_client_ca), "FILE",
   "CA (PEM) whose client certificates --listen requires; needs --listen-cert"},
  {"listen-max-followers", "WORKFLOW_LISTEN_MAX_FOLLOWERS", K_UINT, "64", 1, 10000,
   OFF(node.listen_max_followers), "N", "log follow requests served at once; more get 503"},
  {"help", NULL, K_BOOL, NULL, 0, 0, NO_OFF, NULL, "print this help and exit"},
  {"version", NULL, K_BOOL, NULL, 0, 0, NO_OFF, NULL, "print the version and exit"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

/* Where an option's text came from, for the error message. */
enum source { SRC_NONE, SRC_FLAG, SRC_ENV, SRC_FILE, SRC_DEFAULT };

typedef struct slot_s {
  enum source src;
  char *val;        /* owned */
} slot_t;

typedef struct loader_s {
  slot_t slot[NOPTS];
  const char *file;  /* config file path, borrowed from a slot */
  char *err;
  size_t errlen;
} loader_t;

static const opt_t *find_opt(const char *name, size_t len) {
  for (size_t i = 0; i < NOPTS; i++)
    if (strlen(opts[i].flag) == len && strncmp(opts[i].flag, name, len) == 0) return &opts[i];
  return NULL;
}

/* Config keys are the long flag names; `max_parallel` is accepted too. */
static const opt_t *find_key(const char *key) {
  char norm[64];
  size_t n = strlen(key);
  if (n >= sizeof norm) return NULL;
  for (size_t i = 0; i <= n; i++) norm[i] = key[i] == '_' ? '-' : key[i];
  const opt_t *o = find_opt(norm, n);
  if (!o || o->kind == K_BOOL || strcmp(o->flag, "config") == 0) return NULL;
  return o;
}

static void slot_set(slot_t *s, enum source src, const char *val) {
  free(s->val);
  s->val = wf_strdup(val);
  s->src = src;
}

/* "--max-parallel", "WORKFLOW_MAX_PARALLEL" or `config F: key "max-parallel"`. */
static void source_name(const loader_t *l, const opt_t *o, enum source src, char *out,
                        size_t len) {
  switch (src) {
  case SRC_ENV: snprintf(out, len, "%s", o->env); break;
  case SRC_FILE: snprintf(out, len, "config %s: key \"%s\"", l->file, o->flag); break;
  case SRC_DEFAULT: snprintf(out, len, "default --%s", o->flag); break;
  default: snprintf(out, len, "--%s", o->flag); break;
  }
}

static void print_usage(FILE *out) {
  fprintf(out,
          "usage: workflow-node [flags]\n"
          "\n"
          "The node agent of the workflow CI/CD engine: runs the steps etcd assigns to\n"
          "this node.  Precedence: flag > environment > config file > default.\n"
          "Config file keys are the long flag names (max-parallel or max_parallel);\n"
          "etcd may be a string or a list.  Flags take --flag VALUE or --flag=VALUE.\n"
          "\n");
  for (size_t i = 0; i < NOPTS; i++) {
    const opt_t *o = &opts[i];
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s%s", o->flag, o->arg ? " " : "", o->arg ? o->arg : "",
             o->kind == K_LIST ? " ..." : "");
    fprintf(out, "  %-28s %s\n", left, o->help);
    if (o->env || o->def) {
      fprintf(out, "  %-28s", "");
      if (o->env) fprintf(out, " env %s", o->env);
      if (o->kind == K_NAME) fprintf(out, "%sdefault: host name", o->env ? "; " : " ");
      else if (o->def) fprintf(out, "%sdefault: %s", o->env ? "; " : " ",
                               o->def[0] ? o->def : "\"\"");
      if (o->kind == K_UINT) fprintf(out, " (%u..%u)", o->min, o->max);
      fprintf(out, "\n");
    }
  }
}

/* ---- sources --------------------------------------------------------------- */

static int bad(loader_t *l, const char *fmt, const char *a, const char *b) {
  snprintf(l->err, l->errlen, fmt, a, b ? b : "");
  return -1;
}

static int read_flags(loader_t *l, int argc, char **argv, int *help, int *version) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0) {
      *help = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
      if (a[0] == '-')
        return bad(l, "%s: unknown flag (see --help)%s", a, NULL);
      return bad(l, "unexpected argument \"%s\" (see --help)%s", a, NULL);
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const opt_t *o = find_opt(name, nlen);
    if (!o) {
      char f[128];
      snprintf(f, sizeof f, "--%.*s", (int)(nlen > 100 ? 100 : nlen), name);
      return bad(l, "%s: unknown flag (see --help)%s", f, NULL);
    }
    if (o->kind == K_BOOL) {
      if (eq) return bad(l, "--%s: takes no value%s", o->flag, NULL);
      if (strcmp(o->flag, "help") == 0) *help = 1;
      else *version = 1;
      continue;
    }
    const char *val;
    if (o->kind == K_SWITCH && !eq) {
      val = "true";
    } else if (eq) {
      val = eq + 1;
    } else {
      if (i + 1 >= argc) {
        snprintf(l->err, l->errlen, "--%s: needs a value (--%s %s)", o->flag, o->flag, o->arg);
        return -1;
      }
      val = argv[++i];
    }
    slot_t *sl = &l->slot[o - opts];
    if (o->kind == K_LIST && sl->src == SRC_FLAG) {
      /* Repeated: items are kept one per line. */
      char *joined = wf_asprintf("%s\n%s", sl->val, val);
      free(sl->val);
      sl->val = joined;
      continue;
    }
    slot_set(sl, SRC_FLAG, val);
  }
  return 0;
}

static const char *env_get(char **envp, const char *name) {
  size_t n = strlen(name);
  for (char **e = envp; e && *e; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
  return NULL;
}

static void read_env(loader_t *l, char **envp) {
  for (size_t i = 0; i < NOPTS; i++) {
    if (!opts[i].env || l->slot[i].src != SRC_NONE) continue;
    const char *v = env_get(envp, opts[i].env);
    /* An empty variable counts as unset, as most tools treat DOCKER_HOST=. */
    if (v && v[0]) {
      slot_set(&l->slot[i], SRC_ENV, v);
      if (opts[i].kind == K_LIST)
        for (char *c = l->slot[i].val; *c; c++)
          if (*c == ',') *c = '\n';
    }
  }
}

/* A config file value as text.  Returns -1 (err set) for a type the key
 * cannot take; 1 for null (leave the option unset). */
static int file_value_text(loader_t *l, const opt_t *o, json_t *v, char **out) {
  char tmp[64];
  if (json_is_null(v)) return 1;
  if (json_is_string(v)) {
    *out = wf_strdup(json_string_value(v));
    return 0;
  }
  if (json_is_integer(v)) {
    snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  } else if (json_is_real(v)) {
    snprintf(tmp, sizeof tmp, "%g", json_real_value(v));
  } else if (json_is_boolean(v)) {
    /* YAML reads a bare `off` as false: for etcd-http2 that is the word
     * the docs show (`etcd-http2: off`), so it stays "off". */
    snprintf(tmp, sizeof tmp, "%s",
             json_is_true(v) ? "true" : o->kind == K_HTTP2 ? "off" : "false");
  } else if (json_is_array(v) && (o->kind == K_ETCD || o->kind == K_LIST)) {
    /* etcd may be a list; it becomes the comma-separated form. */
    wf_buf_t b;
    size_t i;
    json_t *e;
    wf_buf_init(&b, 1u << 20);
    json_array_foreach(v, i, e) {
      if (!json_is_string(e)) {
        wf_buf_finish(&b);
        snprintf(l->err, l->errlen, "config %s: key \"%s\": item %zu is not a string",
                 l->file, o->flag, i + 1);
        return -1;
      }
      if (i) wf_buf_append(&b, o->kind == K_LIST ? "\n" : ",", 1);
      wf_buf_append(&b, json_string_value(e), json_string_length(e));
    }
    *out = wf_strdup(b.data ? b.data : "");
    wf_buf_finish(&b);
    return 0;
  } else {
    snprintf(l->err, l->errlen, "config %s: key \"%s\": expected a single value%s", l->file,
             o->flag, o->kind == K_ETCD ? " or a list of URLs" : "");
    return -1;
  }
  *out = wf_strdup(tmp);
  return 0;
}

static int read_file(loader_t *l) {
  char yerr[256];
  json_t *docs = wf_yaml_load_file(l->file, yerr, sizeof yerr);
  if (!docs) {
    snprintf(l->err, l->errlen, "config %s: %s", l->file, yerr);
    return -1;
  }
  int rc = -1;
  json_t *root = json_array_size(docs) ? json_array_get(docs, 0) : NULL;
  if (json_array_size(docs) > 1) {
    snprintf(l->err, l->errlen, "config %s: holds %zu documents; expected one", l->file,
             json_array_size(docs));
    goto out;
  }
  if (root && !json_is_null(root) && !json_is_object(root)) {
    snprintf(l->err, l->errlen, "config %s: expected a mapping of flag names to values",
             l->file);
    goto out;
  }
  const char *key;
  json_t *v;
  /* Two spellings (max-parallel, max_parallel) of one key: refuse, since
   * which one wins would be an accident of ordering. */
  int seen[NOPTS] = {0};
  json_object_foreach(root, key, v) {
    const opt_t *o = find_key(key);
    if (!o) {
      snprintf(l->err, l->errlen, "config %s: key \"%.100s\" is unknown", l->file, key);
      goto out;
    }
    size_t idx = (size_t)(o - opts);
    if (seen[idx]++) {
      snprintf(l->err, l->errlen, "config %s: key \"%s\" is given twice", l->file, o->flag);
      goto out;
    }
    char *text = NULL;
    int r = file_value_text(l, o, v, &text);
    if (r < 0) goto out;
    if (r == 0) {
      if (l->slot[idx].src == SRC_NONE) slot_set(&l->slot[idx], SRC_FILE, text);
      free(text);
    }
  }
  rc = 0;
out:
  json_decref(docs);
  return rc;
}

/* ---- checks ------------------------------------------------------------------ */

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out) {
  if (!*s) return -1;
  unsigned long long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (unsigned)(*p - '0');
    if (v > UINT_MAX) return -1;
  }
  if (v < min || v > max) return -1;
  *out = (unsigned)v;
  return 0;
}

static int has_ctl_or(const char *s, const char *extra) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f || strchr(extra, *p)) return 1;
  return 0;
}

/* unix:///abs/path, or tcp://host:port and http://host:port. */
static int docker_ok(const char *s) {
  if (strncmp(s, "unix://", 7) == 0) return s[7] == '/' && s[8] != '\0' && !has_ctl_or(s, "");
  const char *rest = NULL;
  if (strncmp(s, "tcp://", 6) == 0) rest = s + 6;
  else if (strncmp(s, "http://", 7) == 0) rest = s + 7;
  if (!rest) return 0;
  char *url = wf_asprintf("http://%s", rest);
  char **list = NULL;
  size_t n = 0;
  char why[8];
  int ok = strchr(rest, ',') == NULL && wf_cli_parse_etcd(url, &list, &n, why, sizeof why) == 0;
  wf_argv_free(list);
  free(url);
  return ok;
}

static int check(loader_t *l, wf_config_t *cfg, size_t i) {
  const opt_t *o = &opts[i];
  slot_t *s = &l->slot[i];
  const char *v = s->val;
  char src[512];
  char why[512];
  if (s->src == SRC_NONE) return 0;
  source_name(l, o, s->src, src, sizeof src);
  char **field = o->off != NO_OFF ? (char **)((char *)cfg + o->off) : NULL;
  switch (o->kind) {
  case K_NAME:
    if (!v[0] || strlen(v) > 200 || has_ctl_or(v, "/ \t"))
      goto bad_fmt_name;
    *field = wf_strdup(v);
    return 0;
  case K_ETCD:
    if (wf_cli_parse_etcd(v, &cfg->node.etcd, &cfg->node.netcd, why, sizeof why) != 0) {
      snprintf(l->err, l->errlen, "%s: %s", src, why);
      return -1;
    }
    return 0;
  case K_PREFIX:
    if (!v[0] || has_ctl_or(v, "/")) {
      snprintf(l->err, l->errlen, "%s: \"%.200s\" must be non-empty and contain no '/'", src,
               v);
      return -1;
    }
    *field = wf_strdup(v);
    return 0;
  case K_PATH:
    if (!v[0]) {
      snprintf(l->err, l->errlen, "%s: the path is empty", src);
      return -1;
    }
    *field = wf_strdup(v);
    return 0;
  case K_OPTPATH:
    *field = v[0] ? wf_strdup(v) : NULL;
    return 0;
  case K_DOCKER:
    if (!docker_ok(v)) {
      snprintf(l->err, l->errlen,
               "%s: \"%.200s\" is not a unix:///path, tcp://host:port or http://host:port URL",
               src, v);
      return -1;
    }
    *field = wf_strdup(v);
    return 0;
  case K_UINT: {
    unsigned n;
    if (parse_uint(v, o->min, o->max, &n) != 0) {
      snprintf(l->err, l->errlen, "%s: \"%.200s\" is not a whole number from %u to %u", src, v,
               o->min, o->max);
      return -1;
    }
    *(unsigned *)((char *)cfg + o->off) = n;
    return 0;
  }
  case K_LEVEL:
    if (wf_log_level_parse(v, &cfg->node.log_level) != 0) {
      snprintf(l->err, l->errlen, "%s: \"%.200s\" is not one of debug, info, warn, error", src,
               v);
      return -1;
    }
    return 0;
  case K_FORMAT:
    if (strcasecmp(v, "text") == 0) cfg->node.log_json = 0;
    else if (strcasecmp(v, "json") == 0) cfg->node.log_json = 1;
    else {
      snprintf(l->err, l->errlen, "%s: \"%.200s\" is not one of text, json", src, v);
      return -1;
    }
    return 0;
  case K_HTTP2:
    if (strcasecmp(v, "auto") == 0) *(int *)((char *)cfg + o->off) = WF_HTTP2_AUTO;
    else if (strcasecmp(v, "off") == 0) *(int *)((char *)cfg + o->off) = WF_HTTP2_OFF;
    else {
      snprintf(l->err, l->errlen, "%s: \"%.200s\" is not one of auto, off", src, v);
      return -1;
    }
    return 0;
  case K_TEXT:
  case K_SECRET:
    *field = wf_strdup(v);
    return 0;
  case K_LISTEN: {
    struct sockaddr_storage ss;
    if (!v[0]) return 0; /* empty: off, as when unset */
    if (wf_httpd_parse_addr(v, 0, &ss) != 0) {
      snprintf(l->err, l->errlen,
               "%s: \"%.200s\" is not HOST:PORT with an IP address or localhost and a port "
               "from 1 to 65535 (e.g. 127.0.0.1:9464, [::1]:9464)",
               src, v);
      return -1;
    }
    *field = wf_strdup(v);
    return 0;
  }
  case K_DURATION: {
    int64_t ms;
    if (wf_parse_duration_ms(v, &ms) != 0) {
      snprintf(l->err, l->errlen,
               "%s: \"%.200s\" is not a duration: a whole number of seconds, or one with a "
               "unit s, m, h, d or w (e.g. 7d); 0 = off",
               src, v);
      return -1;
    }
    *(int64_t *)((char *)cfg + o->off) = ms;
    return 0;
  }
  case K_SIZE: {
    uint64_t n;
    if (wf_parse_size_bytes(v, &n) != 0) {
      snprintf(l->err, l->errlen,
               "%s: \"%.200s\" is not a size: a whole number of bytes, or one with a unit K, "
               "M, G or T (powers of 1024; Ki, KiB... too; e.g. 10G); 0 = off",
               src, v);
      return -1;
    }
    *(uint64_t *)((char *)cfg + o->off) = n;
    return 0;
  }
  case K_BOOL:
    return 0;
  case K_SWITCH: {
    int b;
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
        !strcmp(v, "1"))
      b = 1;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") ||
             !strcmp(v, "0"))
      b = 0;
    else {
      snprintf(l->err, l->errlen, "%s: \"%.200s\" is not true or false", src, v);
      return -1;
    }
    *(int *)((char *)cfg + o->off) = b;
    return 0;
  }
  case K_LIST: {
    /* allow-mount is the only list: absolute directories. */
    char **items = NULL;
    size_t n = 0, cap = 0;
    const char *p = v;
    for (;;) {
      const char *nl = strchr(p, '\n');
      size_t len = nl ? (size_t)(nl - p) : strlen(p);
      if (len == 0 || p[0] != '/') {
        snprintf(l->err, l->errlen, "%s: \"%.*s\" is not an absolute directory path", src,
                 (int)(len > 200 ? 200 : len), p);
        for (size_t k = 0; k < n; k++) free(items[k]);
        free(items);
        return -1;
      }
      if (n + 2 > cap) {
        cap = cap ? cap * 2 : 4;
        items = wf_realloc(items, cap * sizeof *items);
      }
      items[n++] = wf_strndup(p, len);
      items[n] = NULL;
      if (!nl) break;
      p = nl + 1;
    }
    cfg->node.allow_mounts = items;
    cfg->node.nallow_mounts = n;
    return 0;
  }
  }
  return 0;
bad_fmt_name:
  snprintf(l->err, l->errlen,
           "%s: \"%.200s\" must be 1 to 200 characters with no '/', space or control "
           "character",
           src, v);
  return -1;
}

/* ---- etcd authentication ------------------------------------------------------------ */

/* Overwrites a secret before it is freed (volatile: a memset right before
 * free may be optimised away). */
static void wipe_free(char *s) {
  if (!s) return;
  for (volatile char *p = s; *p; p++) *p = 0;
  free(s);
}

/* The password file's content, one trailing newline ("\n" or "\r\n")
 * stripped: what `echo pw > file` writes.  Read synchronously (start-up). */
static int read_password_file(loader_t *l, const char *src, const char *path, char **out) {
  char buf[4097];
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(l->err, l->errlen, "%s: cannot read \"%.200s\": %s", src, path, strerror(errno));
    return -1;
  }
  size_t n = fread(buf, 1, sizeof buf, f);
  int rerr = ferror(f);
  fclose(f);
  int rc = -1;
  if (rerr) {
    snprintf(l->err, l->errlen, "%s: cannot read \"%.200s\"", src, path);
  } else if (n == sizeof buf) {
    snprintf(l->err, l->errlen, "%s: \"%.200s\" is longer than 4096 bytes", src, path);
  } else {
    if (n > 0 && buf[n - 1] == '\n') n--;
    if (n > 0 && buf[n - 1] == '\r') n--;
    if (n == 0)
      snprintf(l->err, l->errlen, "%s: \"%.200s\" is empty", src, path);
    else if (memchr(buf, '\0', n))
      snprintf(l->err, l->errlen, "%s: \"%.200s\" holds a NUL byte", src, path);
    else
      rc = 0;
  }
  if (rc == 0) *out = wf_strndup(buf, n);
  for (volatile char *p = buf; p < buf + sizeof buf; p++) *p = 0;
  return rc;
}

/* User and password come together: one without the other is a mistake that
 * would otherwise show only as refused requests at run time.  Messages name
 * the flag, variable or key, never the password. */
static int check_etcd_auth(loader_t *l, wf_config_t *cfg) {
  size_t ui = (size_t)(find_opt("etcd-user", 9) - opts);
  size_t pi = (size_t)(find_opt("etcd-password", 13) - opts);
  size_t fi = (size_t)(find_opt("etcd-password-file", 18) - opts);
  char us[512], ps[512], fs[512];
  source_name(l, &opts[ui], l->slot[ui].src, us, sizeof us);
  source_name(l, &opts[pi], l->slot[pi].src, ps, sizeof ps);
  source_name(l, &opts[fi], l->slot[fi].src, fs, sizeof fs);
  if (cfg->node.etcd_user && (!cfg->node.etcd_user[0] || has_ctl_or(cfg->node.etcd_user, ""))) {
    snprintf(l->err, l->errlen, "%s: the user name is empty or holds a control character", us);
    return -1;
  }
  if (cfg->node.etcd_password && cfg->etcd_password_file) {
    snprintf(l->err, l->errlen, "%s and %s: give the password one way only", ps, fs);
    return -1;
  }
  if (cfg->etcd_password_file &&
      read_password_file(l, fs, cfg->etcd_password_file, &cfg->node.etcd_password) != 0)
    return -1;
  if (cfg->node.etcd_password && !cfg->node.etcd_password[0]) {
    snprintf(l->err, l->errlen, "%s: the password is empty", ps);
    return -1;
  }
  if (cfg->node.etcd_password && !cfg->node.etcd_user) {
    snprintf(l->err, l->errlen, "%s: needs --etcd-user (WORKFLOW_ETCD_USER)",
             cfg->etcd_password_file ? fs : ps);
    return -1;
  }
  if (cfg->node.etcd_user && !cfg->node.etcd_password) {
    snprintf(l->err, l->errlen,
             "%s: needs --etcd-password or --etcd-password-file (WORKFLOW_ETCD_PASSWORD, "
             "WORKFLOW_ETCD_PASSWORD_FILE)", us);
    return -1;
  }
  return 0;
}

/* ---- etcd TLS ----------------------------------------------------------------------- */

/* A certificate needs its key and the reverse; each file must be readable
 * now (the etcd client loads them before the loop; this names the flag).
 * TLS files with no https:// endpoint would be silently unused: refused. */
static int check_etcd_tls(loader_t *l, wf_config_t *cfg) {
  static const char *const names[] = {"etcd-cacert", "etcd-cert", "etcd-key"};
  char *const vals[] = {cfg->node.etcd_cacert, cfg->node.etcd_cert, cfg->node.etcd_key};
  char src[3][512];
  int https = 0;
  for (size_t i = 0; i < 3; i++) {
    size_t k = (size_t)(find_opt(names[i], strlen(names[i])) - opts);
    source_name(l, &opts[k], l->slot[k].src, src[i], sizeof src[i]);
  }
  if (cfg->node.etcd_cert && !cfg->node.etcd_key) {
    snprintf(l->err, l->errlen, "%s: needs --etcd-key (WORKFLOW_ETCD_KEY)", src[1]);
    return -1;
  }
  if (cfg->node.etcd_key && !cfg->node.etcd_cert) {
    snprintf(l->err, l->errlen, "%s: needs --etcd-cert (WORKFLOW_ETCD_CERT)", src[2]);
    return -1;
  }
  for (size_t i = 0; i < cfg->node.netcd; i++)
    if (strncmp(cfg->node.etcd[i], "https://", 8) == 0) https = 1;
  for (size_t i = 0; i < 3; i++) {
    if (!vals[i]) continue;
    if (access(vals[i], R_OK) != 0) {
      snprintf(l->err, l->errlen, "%s %.200s: %s", src[i], vals[i],
               errno == ENOENT ? "no such file" : strerror(errno));
      return -1;
    }
    if (!https) {
      snprintf(l->err, l->errlen, "%s: no --etcd endpoint is https://, so it would not be used",
               src[i]);
      return -1;
    }
  }
  return 0;
}

/* ---- --listen's TLS and token ------------------------------------------------------- */

static int etcd_url_ok(const char *s, size_t n, char **out);

/* The files are read at start; each must be there now, and none may be
 * given without the listener that uses it.  An --address that is a URL is
 * published as the endpoint (docs/protocol.md §6.1): it must be one that
 * wfctl can use. */
static int check_listen_files(loader_t *l, wf_config_t *cfg) {
  const char *a = cfg->node.address;
  char *norm = NULL;
  if (a && strstr(a, "://")) {
    if (!etcd_url_ok(a, strlen(a), &norm)) {
      size_t k = (size_t)(find_opt("address", 7) - opts);
      char asrc[512];
      source_name(l, &opts[k], l->slot[k].src, asrc, sizeof asrc);
      snprintf(l->err, l->errlen,
               "%s \"%.200s\": a URL must be http://HOST:PORT or https://HOST:PORT (it is "
               "published as the node's endpoint)", asrc, a);
      return -1;
    }
    free(norm);
  }
  static const char *const names[] = {"listen-token-file", "listen-cert", "listen-key",
                                      "listen-client-ca"};
  char *const vals[] = {cfg->node.listen_token_file, cfg->node.listen_cert,
                        cfg->node.listen_key, cfg->node.listen_client_ca};
  char src[4][512];
  for (size_t i = 0; i < 4; i++) {
    size_t k = (size_t)(find_opt(names[i], strlen(names[i])) - opts);
    source_name(l, &opts[k], l->slot[k].src, src[i], sizeof src[i]);
  }
  for (size_t i = 0; i < 4; i++) {
    if (!vals[i]) continue;
    if (!cfg->node.listen) {
      snprintf(l->err, l->errlen, "%s: needs --listen (WORKFLOW_LISTEN)", src[i]);
      return -1;
    }
    if (access(vals[i], R_OK) != 0) {
      snprintf(l->err, l->errlen, "%s %.200s: %s", src[i], vals[i],
               errno == ENOENT ? "no such file" : strerror(errno));
      return -1;
    }
  }
  if (cfg->node.listen_cert && !cfg->node.listen_key) {
    snprintf(l->err, l->errlen, "%s: needs --listen-key (WORKFLOW_LISTEN_KEY)", src[1]);
    return -1;
  }
  if (cfg->node.listen_key && !cfg->node.listen_cert) {
    snprintf(l->err, l->errlen, "%s: needs --listen-cert (WORKFLOW_LISTEN_CERT)", src[2]);
    return -1;
  }
  if (cfg->node.listen_client_ca && !cfg->node.listen_cert) {
    snprintf(l->err, l->errlen, "%s: needs --listen-cert and --listen-key (TLS)", src[3]);
    return -1;
  }
  return 0;
}

/* ---- etcd endpoint lists ------------------------------------------------------------ */

/* One http://host:port[/] or https://host:port[/] item; the normalised copy
 * goes to *out. */
static int etcd_url_ok(const char *s, size_t n, char **out) {
  size_t skip = n > 8 && strncmp(s, "https://", 8) == 0 ? 8 : 7;
  if (n < skip + 1 || (skip == 7 && strncmp(s, "http://", 7) != 0)) return 0;
  const char *p = s + skip, *end = s + n;
  if (end[-1] == '/') end--;
  const char *host = p;
  if (*p == '[') {
    for (p++; p < end && *p != ']'; p++)
      if (!strchr("0123456789abcdefABCDEF:.", *p)) return 0;
    if (p >= end || p == host + 1) return 0;
    p++;
  } else {
    for (; p < end && *p != ':'; p++)
      if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_'))
        return 0;
    if (p == host) return 0;
  }
  if (p >= end || *p != ':') return 0;
  p++;
  unsigned port = 0;
  const char *digits = p;
  for (; p < end; p++) {
    if (*p < '0' || *p > '9') return 0;
    port = port * 10 + (unsigned)(*p - '0');
    if (port > 65535) return 0;
  }
  if (p == digits || port == 0) return 0;
  *out = wf_strndup(s, (size_t)(end - s));
  return 1;
}

int wf_cli_parse_etcd(const char *list, char ***out, size_t *n, char *why, size_t whylen) {
  size_t cap = 1, cnt = 0;
  for (const char *p = list; *p; p++) cap += (*p == ',');
  char **v = wf_calloc(cap + 1, sizeof *v);
  const char *p = list;
  for (;;) {
    const char *comma = strchr(p, ',');
    const char *e = comma ? comma : p + strlen(p);
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    const char *q = e;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t')) q--;
    if (q == p) {
      snprintf(why, whylen, "\"%.200s\" has an empty endpoint; expected "
               "http://host:port[,http://host:port...]", list);
      goto fail;
    }
    if (!etcd_url_ok(p, (size_t)(q - p), &v[cnt])) {
      snprintf(why, whylen, "\"%.*s\" is not an http://host:port or https://host:port URL",
               (int)((q - p) > 200 ? 200 : (q - p)), p);
      goto fail;
    }
    cnt++;
    if (!comma) break;
    p = comma + 1;
  }
  *out = v;
  *n = cnt;
  return 0;
fail:
  wf_argv_free(v);
  return -1;
}

/* ---- entry points ------------------------------------------------------------- */

enum wf_config_result wf_config_load(wf_config_t *cfg, int argc, char **argv, char **envp,
                                     char *err, size_t errlen) {
  loader_t l;
  int help = 0, version = 0;
  enum wf_config_result rc = WF_CONFIG_BAD;
  memset(cfg, 0, sizeof *cfg);
  memset(&l, 0, sizeof l);
  l.err = err;
  l.errlen = errlen;
  if (errlen) err[0] = '\0';

  if (read_flags(&l, argc, argv, &help, &version) != 0) goto out;
  if (help) {
    print_usage(stdout);
    rc = WF_CONFIG_EXIT;
    goto out;
  }
  if (version) {
    printf("workflow-node %s\n", WF_VERSION);
    rc = WF_CONFIG_EXIT;
    goto out;
  }
  read_env(&l, envp ? envp : environ);

  /* The config file can come from a flag or the environment only. */
  size_t ci = (size_t)(find_opt("config", 6) - opts);
  if (l.slot[ci].src != SRC_NONE) {
    if (check(&l, cfg, ci) != 0) goto out;
    l.file = l.slot[ci].val;
    if (read_file(&l) != 0) goto out;
  }
  for (size_t i = 0; i < NOPTS; i++)
    if (l.slot[i].src == SRC_NONE && opts[i].def) slot_set(&l.slot[i], SRC_DEFAULT, opts[i].def);
  for (size_t i = 0; i < NOPTS; i++)
    if (i != ci && check(&l, cfg, i) != 0) goto out;
  if (check_etcd_auth(&l, cfg) != 0) goto out;
  if (check_etcd_tls(&l, cfg) != 0) goto out;
  if (check_listen_files(&l, cfg) != 0) goto out;

  if (!cfg->node.name) {
    char host[256];
    if (gethostname(host, sizeof host) != 0 || !host[0]) {
      snprintf(err, errlen, "--name: the host name is unknown; set --name or WORKFLOW_NODE_NAME");
      goto out;
    }
    host[sizeof host - 1] = '\0';
    cfg->node.name = wf_strdup(host);
  }
  rc = WF_CONFIG_OK;
out:
  for (size_t i = 0; i < NOPTS; i++) {
    if (opts[i].kind == K_SECRET) wipe_free(l.slot[i].val);
    else free(l.slot[i].val);
  }
  return rc;
}

void wf_config_finish(wf_config_t *cfg) {
  if (!cfg) return;
  free(cfg->node.name);
  wf_argv_free(cfg->node.etcd);
  free(cfg->node.prefix);
  free(cfg->config_file);
  free(cfg->node.log_dir);
  free(cfg->node.output_dir);
  free(cfg->node.actions_dir);
  free(cfg->node.docker_host);
  free(cfg->node.address);
  free(cfg->node.listen);
  free(cfg->node.listen_token_file);
  free(cfg->node.listen_cert);
  free(cfg->node.listen_key);
  free(cfg->node.listen_client_ca);
  wf_argv_free(cfg->node.allow_mounts);
  free(cfg->node.mask_params);
  free(cfg->node.etcd_user);
  wipe_free(cfg->node.etcd_password);
  free(cfg->etcd_password_file);
  free(cfg->node.etcd_cacert);
  free(cfg->node.etcd_cert);
  free(cfg->node.etcd_key);
  memset(cfg, 0, sizeof *cfg);
}
