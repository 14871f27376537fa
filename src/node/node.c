/*
 * node: the agent process (see node.h).
 *
 * Registration (docs/protocol.md §7): grant a lease of --ttl seconds, put the node
 * record at P/workflow/service/node/<name> under it, renew every ttl/3; a
 * renewal that answers without a TTL means the lease is gone, so grant a new
 * one and put the record again.  etcd being away is never fatal: every step
 * of this retries with capped backoff and says so in the log.
 *
 * Shutdown: the first SIGTERM/SIGINT drains (no new steps; running ones get
 * --drain-timeout, then are stopped and written FAILED), then deletes the
 * node key, revokes the lease and closes every handle so the loop ends by
 * itself.  A second signal cuts the drain short.
 *
 * Reload (SIGHUP): the config is loaded again from the same command line,
 * environment and --config file, and the --actions-dir files are read again,
 * both on the threadpool (file reads and YAML parsing stay off the loop);
 * the result is applied on the loop.  What can change under running steps
 * (log level and format, --max-parallel, --step-timeout, --stop-grace,
 * --drain-timeout, --mask-params, the file actions) is applied; a changed
 * setting the agent cannot switch live (name, etcd, prefix, log dir, ...)
 * is logged as needing a restart and keeps its running value.  A config or
 * action file that does not load changes nothing: the agent logs why and
 * goes on with what it has.  Running steps are never touched.
 *
 * HTTP endpoint (--listen, off by default): /healthz, /readyz and /metrics
 * on the same loop (http/server.c, node/node-metrics.c).  It is bound once
 * the engine exists but before anything starts, so a taken port stops the
 * agent before it registers or claims a step, and closed before the engine
 * and etcd client it reads from.
 */
#include "wf/node.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "node-internal.h"
#include "wf-version.h"
#include "wf/codec.h"
#include "wf/engine.h"
#include "wf/etcd.h"
#include "wf/httpd.h"
#include "wf/metrics.h"
#include "wf/runner-docker.h"
#include "wf/runner-local.h"
#include "wf/runner.h"
#include "wf/util.h"

enum reg_state { REG_IDLE, REG_GRANTING, REG_PUTTING, REG_ALIVE, REG_STOPPING, REG_DONE };

typedef struct node_s {
  uv_loop_t loop;
  const wf_node_opts_t *cfg;
  wf_etcd_t *etcd;
  wf_engine_t *engine;
  /* Every runner this node offers (the engine picks by runner type), closed
   * after the engine; nrunners_open counts the closes still due. */
  wf_runner_t *runners[2];
  size_t nrunners;
  size_t nrunners_open;
  int handles_ready;     /* timers and signals initialised (closed after etcd) */

  char *node_key;
  char *record;          /* node JSON */
  enum reg_state reg;
  int64_t lease;
  wf_backoff_t reg_backoff;
  uv_timer_t reg_timer;
  int reg_inflight;      /* an etcd call of the registration is pending */

  uv_signal_t sigterm, sigint;
  uv_timer_t deadline;   /* hard stop if the shutdown hangs */
  /* SIGHUP reload: how to load the settings again (NULL: reload off), the
   * reload in flight, and whether another SIGHUP came meanwhile.
   * drain_timeout and stop_grace are the live values. */
  uv_signal_t sighup;
  const wf_node_reload_t *reloader;
  struct reload_s *reload;
  int reload_again;
  unsigned drain_timeout, stop_grace;
  int signals;
  int stopping;
  int exit_code;

  /* HTTP endpoint (--listen); NULL / unused when off. */
  wf_httpd_t *httpd;
  wf__node_metrics_t *metrics;
  wf__logserve_t *logs;  /* GET /v1/steps/<key>/log */
  wf__node_retain_t *retain; /* log retention passes; NULL when off */
  char *token;           /* --listen-token-file's content; NULL = no token asked */
  size_t token_len;
  uv_timer_t tick;       /* loop liveness for /healthz */
  uint64_t tick_ns;      /* uv_hrtime() of the last tick */
  uint64_t lease_ok_ms;  /* wf_mono_ms() of the last successful put or renewal */
} node_t;

static void reg_grant(node_t *n);
static void shutdown_finish(node_t *n);

/* ---- registration ---------------------------------------------------------------------- */

static void reg_retry(node_t *n, void (*fn)(uv_timer_t *)) {
  uint64_t d = wf_backoff_next(&n->reg_backoff);
  uv_timer_start(&n->reg_timer, fn, d, 0);
}

static void on_reg_timer_grant(uv_timer_t *t) { reg_grant(t->data); }

/* A registration call answered: no call is in flight any more.  Returns 1
 * when the node is shutting down, which this answer may have been waiting
 * for (shutdown_finish then runs here and the caller must stop). */
static int reg_answered(node_t *n) {
  n->reg_inflight = 0;
  if (!n->stopping) return 0;
  shutdown_finish(n);
  return 1;
}

static void on_keepalive(int err, int64_t id, int64_t ttl, void *data);

static void on_reg_timer_keepalive(uv_timer_t *t) {
  node_t *n = t->data;
  if (n->reg != REG_ALIVE || n->stopping) return;
  n->reg_inflight = 1;
  if (wf_etcd_lease_keepalive(n->etcd, n->lease, on_keepalive, n) != 0) n->reg_inflight = 0;
}

static uint64_t renew_ms(const node_t *n) {
  uint64_t ms = (uint64_t)n->cfg->ttl * 1000 / 3;
  return ms ? ms : 1000;
}

static void on_keepalive(int err, int64_t id, int64_t ttl, void *data) {
  node_t *n = data;
  if (reg_answered(n)) return;
  if (err) {
    wf_warn(NULL, "lease keepalive failed (%s); retrying", wf_strerror(err));
    /* Retry well inside the TTL; if the lease expires meanwhile, the next
     * answer says so and we register again. */
    uv_timer_start(&n->reg_timer, on_reg_timer_keepalive, 1000, 0);
    return;
  }
  if (ttl <= 0) {
    wf_warn(NULL, "lease %lld is gone; registering again", (long long)n->lease);
    n->lease = 0;
    reg_grant(n);
    return;
  }
  n->lease_ok_ms = wf_mono_ms();
  uv_timer_start(&n->reg_timer, on_reg_timer_keepalive, renew_ms(n), 0);
}

static void on_reg_put(int err, int64_t rev, void *data) {
  node_t *n = data;
  if (reg_answered(n)) return;
  if (err) {
    wf_warn(NULL, "registering %s failed (%s%s%s); retrying", n->node_key, wf_strerror(err),
            err == WF_EETCD ? ": " : "", err == WF_EETCD ? wf_etcd_errmsg(n->etcd) : "");
    /* "lease not found" and the like: start over with a new lease. */
    n->lease = 0;
    reg_retry(n, on_reg_timer_grant);
    return;
  }
  wf_backoff_reset(&n->reg_backoff);
  n->reg = REG_ALIVE;
  n->lease_ok_ms = wf_mono_ms();
  wf_info(NULL, "registered as %s (lease %lld, ttl %u s)", n->node_key, (long long)n->lease,
          n->cfg->ttl);
  uv_timer_start(&n->reg_timer, on_reg_timer_keepalive, renew_ms(n), 0);
}

static void on_grant(int err, int64_t id, int64_t ttl, void *data) {
  node_t *n = data;
  if (!err) n->lease = id;
  if (reg_answered(n)) return;
  if (err) {
    wf_warn(NULL, "cannot register with etcd at %s (%s); retrying", wf_etcd_endpoint(n->etcd),
            err == WF_EETCD ? wf_etcd_errmsg(n->etcd) : wf_strerror(err));
    reg_retry(n, on_reg_timer_grant);
    return;
  }
  n->reg = REG_PUTTING;
  n->reg_inflight = 1;
  if (wf_etcd_put(n->etcd, n->node_key, strlen(n->node_key), n->record, strlen(n->record),
                  n->lease, on_reg_put, n) != 0)
    n->reg_inflight = 0;
}

static void reg_grant(node_t *n) {
  if (n->stopping) return;
  n->reg = REG_GRANTING;
  n->reg_inflight = 1;
  if (wf_etcd_lease_grant(n->etcd, n->cfg->ttl, on_grant, n) != 0) n->reg_inflight = 0;
}

/* The base URL of --listen for the node record (docs/protocol.md §6.1), or
 * NULL without --listen.  port is the bound one (--listen may say 0). */
static char *node_endpoint(const wf_node_opts_t *cfg, int port) {
  if (!cfg->listen) return NULL;
  const char *scheme = cfg->listen_cert ? "https" : "http";
  const char *a = cfg->address;
  if (a && strstr(a, "://")) return wf_strdup(a);
  if (a && *a) {
    /* A host with a port ("h:1", "[::1]:1") is taken whole; a bare host
     * gets --listen's port. */
    const char *rb = strrchr(a, ']');
    const char *colon = strrchr(rb ? rb : a, ':');
    int has_port = colon && (rb || strchr(a, ':') == colon);
    if (has_port) return wf_asprintf("%s://%s", scheme, a);
    if (strchr(a, ':') && a[0] != '[') return wf_asprintf("%s://[%s]:%d", scheme, a, port);
    return wf_asprintf("%s://%s:%d", scheme, a, port);
  }
  char host[256];
  const char *l = cfg->listen;
  const char *colon = strrchr(l, ':');
  size_t hl = (size_t)(colon - l);
  if (hl >= sizeof host) hl = sizeof host - 1;
  memcpy(host, l, hl);
  host[hl] = '\0';
  if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0) {
    /* Every address: the host name is what a peer can use. */
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
  }
  return wf_asprintf("%s://%s:%d", scheme, host, port);
}

static char *node_record(const wf_node_opts_t *cfg, const char *endpoint) {
  Wf__Node rec = WF__NODE__INIT;
  rec.instance_name = cfg->name;
  rec.service_name = "workflow";
  rec.type = "node";
  rec.address = cfg->address ? cfg->address : "";
  rec.version = WF_VERSION;
  rec.build_env = "C";
  rec.online = wf_now_ms();
  rec.endpoint = (char *)endpoint;
  return wf_codec_encode_str(&rec.base, WF_CODEC_OMIT_EMPTY);
}

/* ---- HTTP endpoint (--listen) ------------------------------------------------------------- */

/* /healthz fails when the loop went this long without running its timers. */
#define HEALTH_STALE_MS 5000

static void on_tick(uv_timer_t *t) {
  node_t *n = t->data;
  n->tick_ns = uv_hrtime();
}

/* Appends why the node is not ready, one reason per line; empty = ready. */
static void not_ready(node_t *n, wf_buf_t *why) {
  if (n->stopping) wf_buf_printf(why, "shutting down\n");
  if (!wf_etcd_reachable(n->etcd))
    wf_buf_printf(why, "etcd not reachable (endpoint %s)\n", wf_etcd_endpoint(n->etcd));
  if (!wf_engine_live(n->engine)) wf_buf_printf(why, "etcd watch not live\n");
  /* A lease is held for ttl seconds after its last renewal. */
  if (n->reg != REG_ALIVE || wf_mono_ms() - n->lease_ok_ms > (uint64_t)n->cfg->ttl * 1000)
    wf_buf_printf(why, "registration lease not held\n");
}

/* Compares the whole token whatever the first difference, so that the time
 * taken says nothing about how much of a guess was right. */
static int token_ok(const node_t *n, const char *auth) {
  static const char bearer[] = "Bearer ";
  if (!auth || strncasecmp(auth, bearer, sizeof bearer - 1) != 0) return 0;
  const char *t = auth + sizeof bearer - 1;
  size_t tl = strlen(t);
  unsigned char diff = tl != n->token_len;
  for (size_t i = 0; i < n->token_len; i++) diff |= (unsigned char)(n->token[i] ^ t[i < tl ? i : 0]);
  return diff == 0;
}

static void on_http(wf_httpd_req_t *req, wf_httpd_resp_t *r, void *data) {
  node_t *n = data;
  const char *path = req->path;
  if (strcmp(path, "/healthz") == 0) {
    /* The answer itself shows the loop turns; the tick age catches a loop
     * stuck in a long run of callbacks (it answers late, but says so). */
    uint64_t age_ms = (uv_hrtime() - n->tick_ns) / 1000000;
    if (age_ms > HEALTH_STALE_MS) {
      r->status = 503;
      wf_buf_printf(&r->body, "event loop stalled: last tick %llu ms ago\n",
                    (unsigned long long)age_ms);
    } else {
      wf_buf_printf(&r->body, "ok\n");
    }
    return;
  }
  if (strcmp(path, "/readyz") == 0) {
    not_ready(n, &r->body);
    if (r->body.len) r->status = 503;
    else wf_buf_printf(&r->body, "ok\n");
    return;
  }
  /* Probes stay open; what a step printed and the node's figures do not. */
  if (n->token && !token_ok(n, req->authorization)) {
    r->status = 401;
    r->headers = "WWW-Authenticate: Bearer realm=\"workflow-node\"\r\n";
    wf_buf_printf(&r->body, "a bearer token is required (Authorization: Bearer ...)\n");
    return;
  }
  if (strcmp(path, "/metrics") == 0) {
    wf__logserve_stats_t served;
    wf__node_retain_figures_t retained;
    wf__logserve_stats(n->logs, &served);
    wf__node_retain_figures(n->retain, &retained);
    wf__node_metrics_logs(n->metrics, &served, &retained);
    r->content_type = WF_METRICS_CONTENT_TYPE;
    if (wf__node_metrics_render(n->metrics, &r->body) != 0) {
      r->status = 500;
      r->content_type = "text/plain; charset=utf-8";
      wf_buf_reset(&r->body);
      wf_buf_printf(&r->body, "metrics too large\n");
    }
  } else if (strncmp(path, "/v1/steps/", 10) == 0) {
    wf__logserve_handle(n->logs, req, r);
  } else {
    r->status = 404;
    wf_buf_printf(&r->body, "not found; try /healthz, /readyz, /metrics or /v1/steps/<key>/log\n");
  }
}

/* Reads --listen-token-file (at start-up, before the loop runs). */
static int read_token(node_t *n) {
  const char *file = n->cfg->listen_token_file;
  FILE *fp = fopen(file, "re");
  if (!fp) {
    wf_error(NULL, "--listen-token-file %s: %s", file, strerror(errno));
    return -1;
  }
  char buf[4098];  /* 4095 bytes, and a CRLF, and one to see that there is more */
  size_t len = fread(buf, 1, sizeof buf, fp);
  int toolong = len == sizeof buf;
  fclose(fp);
  while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
  if (len > 4095) toolong = 1;
  if (toolong || len == 0 || memchr(buf, '\n', len)) {
    wf_error(NULL, "--listen-token-file %s: %s", file,
             toolong ? "longer than 4095 bytes" : len ? "more than one line" : "empty");
    explicit_bzero(buf, sizeof buf);
    return -1;
  }
  n->token = wf_strndup(buf, len);
  n->token_len = len;
  explicit_bzero(buf, sizeof buf);
  return 0;
}

static int http_start(node_t *n) {
  const wf_node_opts_t *cfg = n->cfg;
  if (cfg->listen_token_file && read_token(n) != 0) return -1;
  unsigned followers = cfg->listen_max_followers ? cfg->listen_max_followers : 64;
  /* Room for every follower and for the probes beside them. */
  wf_httpd_opts_t o = {.max_conns = followers + 32,
                       .cert_file = cfg->listen_cert,
                       .key_file = cfg->listen_key,
                       .client_ca_file = cfg->listen_client_ca};
  char err[512];
  int r = wf_httpd_start(&n->loop, cfg->listen, &o, on_http, n, &n->httpd, err, sizeof err);
  if (r != 0) {
    wf_error(NULL, "--listen %s: %s", cfg->listen, r == WF_ETLS ? err : uv_strerror(r));
    return r;
  }
  n->logs = wf__logserve_create(&n->loop, n->engine, n->etcd, cfg->log_dir, cfg->name,
                                cfg->prefix, followers);
  n->metrics = wf__node_metrics_create(n->engine, n->etcd);
  uv_timer_init(&n->loop, &n->tick);
  n->tick.data = n;
  n->tick_ns = uv_hrtime();
  uv_timer_start(&n->tick, on_tick, 1000, 1000);
  wf_info(NULL, "serving /healthz, /readyz, /metrics and step logs on %s%s%s%s",
          cfg->listen, cfg->listen_cert ? " (TLS" : "",
          cfg->listen_client_ca ? ", client certificates required)" : cfg->listen_cert ? ")" : "",
          n->token ? ", token required" : "");
  return 0;
}

static void on_handle_closed(uv_handle_t *h);

/* Before the engine and etcd client close: the handler reads both. */
static void http_stop(node_t *n) {
  if (!n->httpd) return;
  wf__logserve_close(n->logs);
  n->logs = NULL;
  wf_httpd_close(n->httpd, NULL, NULL);
  n->httpd = NULL;
  uv_close((uv_handle_t *)&n->tick, on_handle_closed);
}

/* ---- shutdown ----------------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {}

static void on_etcd_closed(void *data) {
  node_t *n = data;
  uv_close((uv_handle_t *)&n->reg_timer, on_handle_closed);
  uv_close((uv_handle_t *)&n->sigterm, on_handle_closed);
  uv_close((uv_handle_t *)&n->sigint, on_handle_closed);
  uv_close((uv_handle_t *)&n->sighup, on_handle_closed);
  uv_close((uv_handle_t *)&n->deadline, on_handle_closed);
}

static void on_runner_closed(void *data) {
  node_t *n = data;
  if (--n->nrunners_open == 0)
    wf_etcd_close(n->etcd, n->handles_ready ? on_etcd_closed : NULL, n);
}

/* Closes every runner, then the etcd client (on_runner_closed). */
static void close_runners(node_t *n) {
  n->nrunners_open = n->nrunners;
  for (size_t i = 0; i < n->nrunners; i++) wf_runner_close(n->runners[i], on_runner_closed, n);
}

static void on_engine_closed(void *data) {
  node_t *n = data;
  n->engine = NULL;
  /* After the engine: its runs are over (or left to be re-attached). */
  close_runners(n);
}

static void on_revoked(int err, int64_t rev, void *data) {
  node_t *n = data;
  if (err) wf_warn(NULL, "revoking lease failed (%s); it expires by itself", wf_strerror(err));
  n->reg = REG_DONE;
  wf_info(NULL, "unregistered; bye");
  wf__node_retain_close(n->retain);
  n->retain = NULL;
  http_stop(n);
  wf_engine_close(n->engine, on_engine_closed, n);
}

static void on_unregistered(int err, int64_t deleted, int64_t rev, void *data) {
  node_t *n = data;
  if (err) wf_warn(NULL, "deleting %s failed (%s)", n->node_key, wf_strerror(err));
  if (n->lease) {
    wf_etcd_lease_revoke(n->etcd, n->lease, on_revoked, n);
  } else {
    on_revoked(0, 0, n);
  }
}

/* Runs once the engine drained and no registration call is in flight. */
static void shutdown_finish(node_t *n) {
  if (n->reg_inflight || n->reg == REG_STOPPING || n->reg == REG_DONE) return;
  if (n->stopping < 2) return; /* engine not drained yet */
  n->reg = REG_STOPPING;
  uv_timer_stop(&n->reg_timer);
  if (n->lease)
    wf_etcd_delete(n->etcd, n->node_key, strlen(n->node_key), NULL, 0, on_unregistered, n);
  else
    on_unregistered(0, 0, 0, n);
}

static void on_drained(void *data) {
  node_t *n = data;
  wf_info(NULL, "drained");
  n->stopping = 2;
  uv_timer_stop(&n->reg_timer);
  shutdown_finish(n);
}

static void on_deadline(uv_timer_t *t) {
  wf_error(NULL, "shutdown did not finish in time (etcd unreachable?); exiting");
  exit(1);
}

static void on_signal(uv_signal_t *s, int signum) {
  node_t *n = s->data;
  n->signals++;
  if (n->signals == 1) {
    wf_info(NULL, "%s: stopping (drain timeout %u s)", signum == SIGINT ? "SIGINT" : "SIGTERM",
            n->drain_timeout);
    n->stopping = 1;
    uv_timer_start(&n->deadline, on_deadline,
                   ((uint64_t)n->drain_timeout + (uint64_t)n->stop_grace + 15) * 1000, 0);
    wf_engine_drain(n->engine, n->drain_timeout, on_drained, n);
  } else if (n->signals == 2) {
    wf_warn(NULL, "second signal: stopping running steps now");
    wf_engine_drain(n->engine, 0, on_drained, n);
  }
}

/* ---- reload (SIGHUP) ---------------------------------------------------------------------- */

/* One reload in flight: loaded on the threadpool, applied on the loop. */
typedef struct reload_s {
  uv_work_t req;
  node_t *n;
  wf_node_opts_t cfg;
  void *loaded;          /* owns cfg's memory (the reloader's) */
  int ok;
  wf_engine_actions_t *actions;
  char err[1024];
} reload_t;

/* Threadpool: touches only r and what the reloader's load touches. */
static void reload_work(uv_work_t *req) {
  reload_t *r = req->data;
  const wf_node_reload_t *rl = r->n->reloader;
  r->loaded = rl->load(&r->cfg, r->err, sizeof r->err, rl->data);
  if (!r->loaded) return;
  r->actions = wf_engine_actions_load(r->cfg.actions_dir, r->err, sizeof r->err);
  r->ok = r->actions != NULL;
}

static int str_differs(const char *a, const char *b) {
  return strcmp(a ? a : "", b ? b : "") != 0;
}

static int list_differs(char **a, char **b) {
  for (; a && b && *a && *b; a++, b++)
    if (strcmp(*a, *b) != 0) return 1;
  return (a && *a) || (b && *b);
}

static void note_if(wf_buf_t *names, int changed, const char *flag) {
  if (changed) wf_buf_printf(names, "%s%s", names->len ? ", " : "", flag);
}

/* Settings the running agent is built on (its key, its connections, the
 * docker runner): a new value is reported, not applied. */
static void note_restart_only(const node_t *n, const wf_node_opts_t *c) {
  const wf_node_opts_t *o = n->cfg;
  wf_buf_t names;
  wf_buf_init(&names, 4096);
  note_if(&names, str_differs(o->name, c->name), "--name");
  note_if(&names, list_differs(o->etcd, c->etcd), "--etcd");
  note_if(&names, str_differs(o->prefix, c->prefix), "--prefix");
  note_if(&names, str_differs(o->log_dir, c->log_dir), "--log-dir");
  note_if(&names, str_differs(o->output_dir, c->output_dir), "--output-dir");
  note_if(&names, str_differs(o->docker_host, c->docker_host), "--docker-host");
  note_if(&names, str_differs(o->listen, c->listen), "--listen");
  note_if(&names, str_differs(o->listen_token_file, c->listen_token_file), "--listen-token-file");
  note_if(&names, str_differs(o->listen_cert, c->listen_cert), "--listen-cert");
  note_if(&names, str_differs(o->listen_key, c->listen_key), "--listen-key");
  note_if(&names, str_differs(o->listen_client_ca, c->listen_client_ca), "--listen-client-ca");
  note_if(&names, o->listen_max_followers != c->listen_max_followers, "--listen-max-followers");
  note_if(&names, o->ttl != c->ttl, "--ttl");
  note_if(&names, o->resync != c->resync, "--resync");
  note_if(&names, str_differs(o->address, c->address), "--address");
  note_if(&names, list_differs(o->allow_mounts, c->allow_mounts), "--allow-mount");
  note_if(&names, o->docker_wait != c->docker_wait, "--docker-wait");
  note_if(&names, o->pull_timeout != c->pull_timeout, "--pull-timeout");
  note_if(&names, o->keep_containers != c->keep_containers, "--keep-containers");
  note_if(&names, str_differs(o->etcd_user, c->etcd_user), "--etcd-user");
  /* Only that it changed, never the value. */
  note_if(&names, str_differs(o->etcd_password, c->etcd_password), "--etcd-password");
  note_if(&names, o->etcd_watch_idle != c->etcd_watch_idle, "--etcd-watch-idle");
  note_if(&names, str_differs(o->etcd_cacert, c->etcd_cacert), "--etcd-cacert");
  note_if(&names, str_differs(o->etcd_cert, c->etcd_cert), "--etcd-cert");
  note_if(&names, str_differs(o->etcd_key, c->etcd_key), "--etcd-key");
  note_if(&names, o->etcd_http2 != c->etcd_http2, "--etcd-http2");
  if (names.len)
    wf_warn(NULL, "SIGHUP: %s changed; that needs a restart (the running value stays)",
            names.data);
  wf_buf_finish(&names);
}

static void reload_apply(node_t *n, reload_t *r) {
  static const char *const levels[] = {"debug", "info", "warn", "error"};
  const wf_node_opts_t *c = &r->cfg;
  note_restart_only(n, c);
  wf_log_setup(c->log_level, c->log_json);
  wf_engine_cfg_t ec = {
      .max_parallel = c->max_parallel,
      .step_timeout_s = c->step_timeout,
      .stop_grace_s = c->stop_grace,
      .mask_params = c->mask_params,
  };
  wf_engine_reconfigure(n->engine, &ec, r->actions);
  r->actions = NULL;
  n->drain_timeout = c->drain_timeout;
  n->stop_grace = c->stop_grace;
  /* New retention limits run a pass now; both 0 pause the schedule (the
   * object stays, so that two passes can never overlap). */
  if (n->retain) {
    wf__node_retain_set(n->retain, c->log_retention_ms, c->log_max_bytes);
  } else if (c->log_retention_ms || c->log_max_bytes) {
    n->retain = wf__node_retain_create(&n->loop, n->engine, n->cfg->log_dir, c->log_retention_ms,
                                      c->log_max_bytes);
  }
  wf_info(NULL, "SIGHUP: configuration reloaded: max parallel %u, step timeout %u s, stop grace "
          "%u s, drain timeout %u s, log level %s, log format %s", c->max_parallel,
          c->step_timeout, c->stop_grace, c->drain_timeout, levels[c->log_level],
          c->log_json ? "json" : "text");
}

static void reload_start(node_t *n);

static void on_reload_done(uv_work_t *req, int status) {
  reload_t *r = req->data;
  node_t *n = r->n;
  n->reload = NULL;
  /* From the first SIGTERM on, the engine is draining or gone: drop it. */
  if (status == 0 && !n->stopping && n->engine) {
    if (r->ok)
      reload_apply(n, r);
    else
      wf_error(NULL, "SIGHUP: configuration not reloaded: %s; keeping the running "
               "configuration", r->err[0] ? r->err : "unusable command line");
  }
  wf_engine_actions_free(r->actions);
  if (r->loaded) n->reloader->release(r->loaded, n->reloader->data);
  free(r);
  if (n->reload_again && !n->stopping && n->engine) {
    n->reload_again = 0;
    reload_start(n);
  }
}

static void reload_start(node_t *n) {
  if (n->reload) {
    /* The files may have changed after that load read them: once more. */
    n->reload_again = 1;
    return;
  }
  reload_t *r = wf_calloc(1, sizeof *r);
  r->n = n;
  r->req.data = r;
  int rc = uv_queue_work(&n->loop, &r->req, reload_work, on_reload_done);
  if (rc != 0) {
    wf_error(NULL, "SIGHUP: cannot start the reload (%s)", uv_strerror(rc));
    free(r);
    return;
  }
  n->reload = r;
}

static void on_sighup(uv_signal_t *s, int signum) {
  node_t *n = s->data;
  if (n->stopping) {
    wf_info(NULL, "SIGHUP ignored: shutting down");
    return;
  }
  if (!n->reloader) {
    wf_warn(NULL, "SIGHUP ignored: the agent was started without a way to reload its settings");
    return;
  }
  wf_info(NULL, "SIGHUP: reloading the configuration and the actions dir");
  reload_start(n);
}

/* ---- run ------------------------------------------------------------------------------------ */

/* The runners this node offers: LOCAL always, DOCKER with its settings.
 * Returns 0, or -1 with err filled (a --docker-host it cannot parse). */
static int runners_create(node_t *n, char *err, size_t errlen) {
  const wf_node_opts_t *cfg = n->cfg;
  /* The docker runner resolves --allow-mount dirs now, before the loop runs;
   * an unreachable engine is not an error (it is probed in the background). */
  wf_docker_opts_t dopts = {
      .host = cfg->docker_host,
      .node_name = cfg->name,
      .allow_mounts = (const char *const *)cfg->allow_mounts,
      .nallow_mounts = cfg->nallow_mounts,
      .docker_wait_s = cfg->docker_wait,
      .pull_timeout_s = cfg->pull_timeout,
      .keep_containers = cfg->keep_containers,
  };
  wf_runner_t *docker = wf_docker_runner_create(&n->loop, &dopts, err, errlen);
  if (!docker) return -1;
  n->runners[n->nrunners++] = wf_local_runner_create(&n->loop, NULL);
  n->runners[n->nrunners++] = docker;
  return 0;
}

int wf_node_run(const wf_node_opts_t *cfg, const wf_node_reload_t *reload) {
  node_t n;
  memset(&n, 0, sizeof n);
  n.cfg = cfg;
  n.reloader = reload;
  n.drain_timeout = cfg->drain_timeout;
  n.stop_grace = cfg->stop_grace;
  /* A step's pipe or a peer's socket closing must be an error, not a kill. */
  signal(SIGPIPE, SIG_IGN);
  srand((unsigned)(wf_now_ms() ^ (int64_t)getpid()));
  if (uv_loop_init(&n.loop) != 0) {
    wf_error(NULL, "cannot create the event loop");
    return 1;
  }
  wf_etcd_opts_t eo = {.endpoints = (const char *const *)cfg->etcd, .nendpoints = cfg->netcd};
  eo.watch_idle_ms = (uint64_t)cfg->etcd_watch_idle * 1000;
  eo.user = cfg->etcd_user;  /* config.c checked: both or neither */
  eo.password = cfg->etcd_password;
  eo.tls_ca_file = cfg->etcd_cacert;  /* https:// endpoints; config.c checked */
  eo.tls_cert_file = cfg->etcd_cert;
  eo.tls_key_file = cfg->etcd_key;
  eo.http2 = cfg->etcd_http2;  /* same values: WF_HTTP2_AUTO, WF_HTTP2_OFF */
  n.etcd = wf_etcd_create(&n.loop, &eo);
  if (!n.etcd) {
    wf_error(NULL, "no usable etcd endpoint");
    uv_loop_close(&n.loop);
    return 2;
  }
  char err[1024];
  if (runners_create(&n, err, sizeof err) != 0) {
    fprintf(stderr, "workflow-node: --docker-host: %s\n", err);
    wf_etcd_close(n.etcd, NULL, NULL);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    uv_loop_close(&n.loop);
    return 2;
  }
  wf_engine_cfg_t ec = {
      .runners = n.runners,
      .nrunners = n.nrunners,
      .keep_leftovers = cfg->keep_containers,
      .node_name = cfg->name,
      .prefix = cfg->prefix,
      .log_dir = cfg->log_dir,
      .output_dir = cfg->output_dir,
      .actions_dir = cfg->actions_dir,
      .max_parallel = cfg->max_parallel,
      .step_timeout_s = cfg->step_timeout,
      .stop_grace_s = cfg->stop_grace,
      .resync_s = cfg->resync,
      .mask_params = cfg->mask_params,
  };
  n.engine = wf_engine_create(&n.loop, n.etcd, &ec, err, sizeof err);
  if (!n.engine) {
    fprintf(stderr, "workflow-node: %s\n", err);
    n.exit_code = 2;
    close_runners(&n);  /* then the etcd client */
    uv_run(&n.loop, UV_RUN_DEFAULT);
    uv_loop_close(&n.loop);
    return 2;
  }
  n.node_key = wf_asprintf("%s/workflow/service/node/%s", cfg->prefix, cfg->name);
  wf_backoff_init(&n.reg_backoff, 250, 10000);
  uv_timer_init(&n.loop, &n.reg_timer);
  n.reg_timer.data = &n;
  uv_timer_init(&n.loop, &n.deadline);
  n.deadline.data = &n;
  uv_signal_init(&n.loop, &n.sigterm);
  uv_signal_init(&n.loop, &n.sigint);
  uv_signal_init(&n.loop, &n.sighup);
  n.sigterm.data = n.sigint.data = n.sighup.data = &n;
  uv_signal_start(&n.sigterm, on_signal, SIGTERM);
  uv_signal_start(&n.sigint, on_signal, SIGINT);
  uv_signal_start(&n.sighup, on_sighup, SIGHUP);
  n.handles_ready = 1;

  wf_info(NULL, "workflow-node %s starting: node %s, etcd %s, prefix %s, log dir %s, "
          "max parallel %u", WF_VERSION, cfg->name, wf_etcd_endpoint(n.etcd), cfg->prefix,
          cfg->log_dir, cfg->max_parallel);
  if (cfg->listen && http_start(&n) != 0) {
    /* Nothing started yet: close what exists through the usual path. */
    n.exit_code = 1;
    wf_engine_close(n.engine, on_engine_closed, &n);
  } else {
    char *endpoint = node_endpoint(cfg, n.httpd ? wf_httpd_port(n.httpd) : 0);
    n.record = node_record(cfg, endpoint);
    free(endpoint);
    reg_grant(&n);
    wf_engine_start(n.engine);
    if (cfg->log_retention_ms || cfg->log_max_bytes)
      n.retain = wf__node_retain_create(&n.loop, n.engine, cfg->log_dir, cfg->log_retention_ms,
                                       cfg->log_max_bytes);
  }

  uv_run(&n.loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&n.loop);
  if (rc != 0) {
    wf_error(NULL, "event loop closed with live handles (%s)", uv_strerror(rc));
    uv_print_all_handles(&n.loop, stderr);
    n.exit_code = 1;
  }
  free(n.node_key);
  free(n.record);
  if (n.token) explicit_bzero(n.token, n.token_len);
  free(n.token);
  wf__node_metrics_destroy(n.metrics);  /* after the engine: it was its observer */
  return n.exit_code;
}
