/*
 * access: what wfctl needs to be let in.  Towards etcd, the agent's own
 * options with the agent's variables (docs/configuration.md): TLS files for
 * https:// endpoints (--etcd-cacert, --etcd-cert, --etcd-key) and
 * authentication (--etcd-user with --etcd-password-file, or the variable
 * WORKFLOW_ETCD_PASSWORD; no password flag, which ps would show), and
 * --etcd-http2 auto|off.  Towards a node's log endpoint (logs and run
 * only): --token-file, --cacert, --node-cert, --node-key.  They are
 * checked as the agent checks its own, before anything is sent, and a
 * mistake is a usage error (exit 2) naming the flag or the variable it
 * came from, never a secret.
 *
 * A TLS failure with etcd comes back from the etcd client as a bare
 * WF_ETLS; wf__access_explain_tls asks once more with a plain HTTP client
 * of the same files to print OpenSSL's reason.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "wf/cli.h"
#include "wf/http.h"
#include "wf/util.h"
#include "wfctl-internal.h"

#define EXIT_USAGE 2

static const struct {
  const char *flag;  /* NULL: a variable only */
  const char *env;
  int node;          /* read by logs and run only */
} acc_names[ACC_N] = {
    [ACC_ETCD_CACERT] = {"--etcd-cacert", "WORKFLOW_ETCD_CACERT", 0},
    [ACC_ETCD_CERT] = {"--etcd-cert", "WORKFLOW_ETCD_CERT", 0},
    [ACC_ETCD_KEY] = {"--etcd-key", "WORKFLOW_ETCD_KEY", 0},
    [ACC_ETCD_USER] = {"--etcd-user", "WORKFLOW_ETCD_USER", 0},
    [ACC_ETCD_PASSWORD_FILE] = {"--etcd-password-file", "WORKFLOW_ETCD_PASSWORD_FILE", 0},
    [ACC_ETCD_PASSWORD] = {NULL, "WORKFLOW_ETCD_PASSWORD", 0},
    [ACC_ETCD_HTTP2] = {"--etcd-http2", "WORKFLOW_ETCD_HTTP2", 0},
    [ACC_TOKEN_FILE] = {"--token-file", "WFCTL_TOKEN_FILE", 1},
    [ACC_CACERT] = {"--cacert", "WFCTL_CACERT", 1},
    [ACC_NODE_CERT] = {"--node-cert", "WFCTL_NODE_CERT", 1},
    [ACC_NODE_KEY] = {"--node-key", "WFCTL_NODE_KEY", 1},
};

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wf__ctl_vsay(fmt, ap);
  va_end(ap);
  return EXIT_USAGE;
}

static void wipe_free(char *s) {
  if (!s) return;
  for (volatile char *p = s; *p; p++) *p = 0;
  free(s);
}

/* The flag wins over the variable; an empty value is none. */
static void resolve(wf__ctl_t *c) {
  int node_cmd = c->cmd == CMD_LOGS || c->cmd == CMD_RUN;
  for (int i = 0; i < ACC_N; i++) {
    const char *v = c->acc_arg[i];
    const char *src = acc_names[i].flag;
    if (!v && (!acc_names[i].node || node_cmd)) {
      v = getenv(acc_names[i].env);
      src = acc_names[i].env;
    }
    c->acc[i] = v && v[0] ? v : NULL;
    c->acc_src[i] = src;
  }
  /* A password file given on the command line wins over a password in the
   * environment (both in the environment is a mistake, below). */
  if (c->acc_arg[ACC_ETCD_PASSWORD_FILE] && c->acc[ACC_ETCD_PASSWORD_FILE])
    c->acc[ACC_ETCD_PASSWORD] = NULL;
}

/* A certificate and its key come together; each file must be readable. */
static int check_pair_and_files(wf__ctl_t *c, int ca, int cert, int key) {
  if (c->acc[cert] && !c->acc[key])
    return usage("%s: needs %s (%s)", c->acc_src[cert], acc_names[key].flag, acc_names[key].env);
  if (c->acc[key] && !c->acc[cert])
    return usage("%s: needs %s (%s)", c->acc_src[key], acc_names[cert].flag, acc_names[cert].env);
  const int files[] = {ca, cert, key};
  for (size_t i = 0; i < 3; i++) {
    const char *f = c->acc[files[i]];
    if (f && access(f, R_OK) != 0)
      return usage("%s %.200s: %s", c->acc_src[files[i]], f,
                   errno == ENOENT ? "no such file" : strerror(errno));
  }
  return -1;
}

static int check_etcd_tls(wf__ctl_t *c) {
  int rc = check_pair_and_files(c, ACC_ETCD_CACERT, ACC_ETCD_CERT, ACC_ETCD_KEY);
  if (rc >= 0) return rc;
  int https = 0;
  for (size_t i = 0; i < c->nendpoints; i++)
    if (strncmp(c->endpoints[i], "https://", 8) == 0) https = 1;
  for (int i = ACC_ETCD_CACERT; i <= ACC_ETCD_KEY; i++)
    if (c->acc[i] && !https)
      return usage("%s: no --etcd endpoint is https://, so it would not be used",
                   c->acc_src[i]);
  return -1;
}

/* User and password come together, as for the agent (config.c). */
static int check_etcd_auth(wf__ctl_t *c) {
  const char *user = c->acc[ACC_ETCD_USER];
  const char *pwfile = c->acc[ACC_ETCD_PASSWORD_FILE];
  const char *pw = c->acc[ACC_ETCD_PASSWORD];
  char why[512];
  if (user) {
    for (const unsigned char *p = (const unsigned char *)user; *p; p++)
      if (*p < 0x20 || *p == 0x7f)
        return usage("%s: the user name holds a control character", c->acc_src[ACC_ETCD_USER]);
  }
  if (pw && pwfile)
    return usage("%s and %s: give the password one way only", c->acc_src[ACC_ETCD_PASSWORD],
                 c->acc_src[ACC_ETCD_PASSWORD_FILE]);
  if (pwfile) {
    if (wf_cli_read_secret(pwfile, 0, &c->etcd_password, why, sizeof why) != 0)
      return usage("%s: %s", c->acc_src[ACC_ETCD_PASSWORD_FILE], why);
  } else if (pw) {
    c->etcd_password = wf_strdup(pw);
  }
  if (c->etcd_password && !user)
    return usage("%s: needs --etcd-user (WORKFLOW_ETCD_USER)",
                 pwfile ? c->acc_src[ACC_ETCD_PASSWORD_FILE] : c->acc_src[ACC_ETCD_PASSWORD]);
  if (user && !c->etcd_password)
    return usage("%s: needs --etcd-password-file (WORKFLOW_ETCD_PASSWORD_FILE, or the "
                 "password in WORKFLOW_ETCD_PASSWORD)", c->acc_src[ACC_ETCD_USER]);
  return -1;
}

/* --etcd-http2 as the agent reads it (config.c): auto (also when unset or
 * empty) or off, in any case; -1 for anything else. */
static int http2_mode(const wf__ctl_t *c) {
  const char *v = c->acc[ACC_ETCD_HTTP2];
  if (!v || strcasecmp(v, "auto") == 0) return WF_HTTP2_AUTO;
  if (strcasecmp(v, "off") == 0) return WF_HTTP2_OFF;
  return -1;
}

static int check_node(wf__ctl_t *c) {
  int rc = check_pair_and_files(c, ACC_CACERT, ACC_NODE_CERT, ACC_NODE_KEY);
  if (rc >= 0) return rc;
  char why[512];
  if (c->acc[ACC_TOKEN_FILE] &&
      wf_cli_read_secret(c->acc[ACC_TOKEN_FILE], 1, &c->token, why, sizeof why) != 0)
    return usage("%s: %s", c->acc_src[ACC_TOKEN_FILE], why);
  return -1;
}

int wf__access_setup(wf__ctl_t *c, wf_etcd_opts_t *eo) {
  int rc;
  resolve(c);
  if ((rc = check_etcd_tls(c)) >= 0) return rc;
  if ((rc = check_etcd_auth(c)) >= 0) return rc;
  if ((rc = check_node(c)) >= 0) return rc;
  if (http2_mode(c) < 0)
    return usage("%s: \"%.200s\" is not one of auto, off", c->acc_src[ACC_ETCD_HTTP2],
                 c->acc[ACC_ETCD_HTTP2]);
  eo->http2 = http2_mode(c);
  eo->tls_ca_file = c->acc[ACC_ETCD_CACERT];
  eo->tls_cert_file = c->acc[ACC_ETCD_CERT];
  eo->tls_key_file = c->acc[ACC_ETCD_KEY];
  eo->user = c->etcd_password ? c->acc[ACC_ETCD_USER] : NULL;
  eo->password = c->etcd_password;
  return -1;
}

wf_http_tls_opts_t wf__access_node_tls(const wf__ctl_t *c) {
  wf_http_tls_opts_t t = {c->acc[ACC_CACERT], c->acc[ACC_NODE_CERT], c->acc[ACC_NODE_KEY]};
  return t;
}

int wf__access_check_node_tls(wf__ctl_t *c) {
  if (!c->acc[ACC_CACERT] && !c->acc[ACC_NODE_CERT]) return -1;
  wf_http_tls_opts_t tls = wf__access_node_tls(c);
  wf_http_client_opts_t ho = {.tls = &tls};
  char why[512];
  /* Never connected: creating the client loads the files. */
  wf_http_client_t *h = wf_http_client_create_ex(&c->loop, "https://localhost:1", &ho, why,
                                                 sizeof why);
  if (!h)
    return usage("%s: %s", c->acc[ACC_NODE_CERT] ? "--node-cert/--node-key" : c->acc_src[ACC_CACERT],
                 why);
  wf_http_client_close(h, NULL, NULL);
  return -1;
}

int wf__access_explain_create(wf__ctl_t *c) {
  wf_http_tls_opts_t tls = {c->acc[ACC_ETCD_CACERT], c->acc[ACC_ETCD_CERT], c->acc[ACC_ETCD_KEY]};
  wf_http_client_opts_t ho = {.tls = &tls, .http2 = http2_mode(c)};
  char why[512] = "";
  for (size_t i = 0; i < c->nendpoints && !why[0]; i++) {
    wf_http_client_t *h = wf_http_client_create_ex(&c->loop, c->endpoints[i], &ho, why,
                                                   sizeof why);
    if (h) wf_http_client_close(h, NULL, NULL);
  }
  return usage("cannot use the etcd endpoints %s: %s", c->endpoints[0],
               why[0] ? why : "no endpoint is usable");
}

/* ---- explaining a TLS failure with etcd ------------------------------------------- */

typedef struct explain_s {
  wf_http_client_t *h;
  int err;
  int done;
} explain_t;

static void on_explain_done(wf_http_req_t *req, int err, int status, const char *body,
                            size_t len, void *data) {
  (void)req, (void)status, (void)body, (void)len;
  explain_t *x = data;
  x->err = err;
  x->done = 1;
}

void wf__access_explain_tls(wf__ctl_t *c) {
  const char *url = c->tls_failed_endpoint;
  if (!url || strncmp(url, "https://", 8) != 0) return;
  wf_http_tls_opts_t tls = {c->acc[ACC_ETCD_CACERT], c->acc[ACC_ETCD_CERT], c->acc[ACC_ETCD_KEY]};
  /* The same ALPN offer as the etcd client made, so the same handshake. */
  wf_http_client_opts_t ho = {.connect_timeout_ms = 5000, .tls = &tls, .http2 = http2_mode(c)};
  char why[512] = "";
  explain_t x = {0};
  x.h = wf_http_client_create_ex(&c->loop, url, &ho, why, sizeof why);
  if (x.h) {
    wf_http_req_opts_t ro = {.method = "GET", .path = "/health", .timeout_ms = 5000};
    wf_http_cbs_t cbs = {.on_done = on_explain_done};
    if (wf_http_request(x.h, &ro, &cbs, &x)) uv_run(&c->loop, UV_RUN_DEFAULT);
    if (x.done && x.err == WF_ETLS)
      snprintf(why, sizeof why, "%s", wf_http_client_last_error(x.h));
    wf_http_client_close(x.h, NULL, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
  }
  fprintf(stderr, "wfctl: TLS with etcd %s: %s (see --etcd-cacert, --etcd-cert, --etcd-key)\n",
          url, why[0] ? why : "the handshake failed");
}

void wf__access_finish(wf__ctl_t *c) {
  wipe_free(c->etcd_password);
  wipe_free(c->token);
  c->etcd_password = c->token = NULL;
  free(c->tls_failed_endpoint);
}
