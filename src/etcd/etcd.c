/*
 * etcd: the client object, its endpoints and every unary call (range, the
 * paginated list, put, put_if, delete, compact, leases) over the v3 JSON
 * gateway.  Watches live in watch.c; the JSON itself in parse.c.
 *
 * A call is one heap object that owns its request body and lives until its
 * callback has returned.  It is sent to the endpoint that worked last; a
 * transport failure (or a 503 "unavailable" member) moves it to the next
 * endpoint, once around, before the callback sees the error.  Because a put
 * that timed out may still have been applied, a retried put_if can report a
 * conflict whose `current` is the caller's own value: callers compare it.
 *
 * With authentication (auth.c) a call that finds no token waits for one
 * before it is sent, and a call refused as unauthenticated is sent once more
 * with a fresh token.  The authenticate request itself is a call too (op
 * WF__ETCD_AUTH), so it fails over like the others.
 *
 * Closing: wf_etcd_close() closes every http client, which fails each
 * in-flight request with UV_ECANCELED; each call's callback then fires with
 * UV_ECANCELED, and the client is freed once no call, watch or http client is
 * left (wf__etcd_maybe_finish).
 */
#include "etcd-internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct call_s {
  wf_etcd_t *e;
  wf__etcd_auth_waiter_t wt;  /* waiting for a token */
  unsigned token_gen;  /* token generation the current attempt was sent with */
  int auth_retried;    /* already resent once after "invalid auth token" */
  int pinned;          /* wf__etcd_probe: this endpoint only, no failover */
  uint64_t timeout_ms; /* 0 = e->request_timeout_ms */
  void (*auth_done)(wf_etcd_t *e, int err, char *token);  /* WF__ETCD_AUTH */
  enum wf__etcd_op op;
  const char *path;
  char *body;          /* owned; resent as is on failover */
  size_t body_len;
  wf_http_req_t *req;
  size_t ep;           /* endpoint of the current attempt */
  size_t tries;        /* endpoints tried for the current request */
  union {
    wf_etcd_range_cb range;
    wf_etcd_put_cb put;
    wf_etcd_txn_cb txn;
    wf_etcd_delete_cb del;
    wf_etcd_lease_cb lease;
  } cb;
  void *data;
  /* wf_etcd_list only (list != 0). */
  int list;
  wf_etcd_page_cb on_page;
  wf_etcd_list_done_cb on_done;
  char *end;           /* the prefix's range_end */
  size_t elen;
  int64_t page_size;
  int64_t list_rev;    /* the pinned revision, from the first page */
} call_t;

static const char *op_path(enum wf__etcd_op op) {
  switch (op) {
    case WF__ETCD_RANGE: return "/v3/kv/range";
    case WF__ETCD_PUT: return "/v3/kv/put";
    case WF__ETCD_TXN: return "/v3/kv/txn";
    case WF__ETCD_DELETE: return "/v3/kv/deleterange";
    case WF__ETCD_COMPACT: return "/v3/kv/compaction";
    case WF__ETCD_GRANT: return "/v3/lease/grant";
    case WF__ETCD_KEEPALIVE: return "/v3/lease/keepalive";
    case WF__ETCD_REVOKE: return "/v3/lease/revoke";
    case WF__ETCD_AUTH: return "/v3/auth/authenticate";
  }
  return "/";
}

/* ---- endpoints --------------------------------------------------------------------- */

int wf__etcd_transport_err(int err) {
  /* Everything the http layer reports except what says "the peer answered"
   * or "we gave up ourselves": refused, reset, EOF, timeouts, DNS, and
   * WF_EPROTO (whatever answered there does not speak HTTP). */
  return err < 0 && err != UV_ECANCELED && err != WF_ETOOBIG && err != WF_EHTTP &&
         err != WF_EETCD && err != WF_ECOMPACTED && err != WF_ECLOSED;
}

void wf__etcd_endpoint_failed(wf_etcd_t *e, size_t ep) {
  if (e->n > 1 && e->cur == ep) {
    e->cur = (ep + 1) % e->n;
    wf_warn(NULL, "etcd: endpoint %s failed, trying %s", e->urls[ep], e->urls[e->cur]);
  }
}

void wf__etcd_set_errmsg(wf_etcd_t *e, const char *msg) {
  snprintf(e->errmsg, sizeof e->errmsg, "%s", msg);
}

/* "127.0.0.1:2379" and "http://h:2379/" are common in flags; the http client
 * wants an origin. */
static char *normalise_url(const char *u) {
  char *s = strstr(u, "://") ? wf_strdup(u) : wf_asprintf("http://%s", u);
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == '/') s[--n] = '\0';
  return s;
}

/* How many idle keep-alive connections to keep per endpoint.  Every running
 * step has a txn in flight now and then (claim, final write): with only 4
 * idle ones, a burst of --max-parallel 32 steps opened and closed a TCP
 * connection, and a gateway stream in etcd, for 1.3 of its requests per step
 * (strace, bench part 2).  But idle sockets hold descriptors that steps need
 * for their pipes and log files (64 of them starved every step under
 * `ulimit -n 64`, e2e-fault_few_fds), so the pool is 1/16 of the descriptor
 * limit, between 4 and 64.  Idle ones still close after idle_close_ms. */
static unsigned idle_pool_size(void) {
  struct rlimit rl;
  rlim_t n = 64;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) n = rl.rlim_cur / 16;
  return n < 4 ? 4 : n > 64 ? 64 : (unsigned)n;
}

wf_etcd_t *wf_etcd_create(uv_loop_t *loop, const wf_etcd_opts_t *opts) {
  if (!loop || !opts || !opts->endpoints || opts->nendpoints == 0) return NULL;
  wf_etcd_t *e = wf_calloc(1, sizeof *e);
  e->loop = loop;
  e->request_timeout_ms = opts->request_timeout_ms ? opts->request_timeout_ms : 5000;
  e->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 3000;
  e->watch_idle_ms = opts->watch_idle_ms ? opts->watch_idle_ms : 10000;
  e->auth_tail = &e->auth_waiters;
  if (opts->user && opts->password) {
    e->user = wf_strdup(opts->user);
    e->password = wf_strdup(opts->password);
  }
  e->urls = wf_calloc(opts->nendpoints, sizeof *e->urls);
  e->clients = wf_calloc(opts->nendpoints, sizeof *e->clients);
  e->nreq = wf_calloc(opts->nendpoints * WF__ETCD_NOPS, sizeof *e->nreq);
  e->nerr = wf_calloc(opts->nendpoints * WF__ETCD_NOPS, sizeof *e->nerr);
  wf_http_client_opts_t ho = {0};
  ho.connect_timeout_ms = e->connect_timeout_ms;
  ho.max_idle = idle_pool_size();
  wf_http_tls_opts_t tls = {opts->tls_ca_file, opts->tls_cert_file, opts->tls_key_file};
  ho.tls = &tls;  /* used by https:// endpoints only */
  ho.http2 = opts->http2;
  for (size_t i = 0; i < opts->nendpoints; i++) {
    if (!opts->endpoints[i] || !*opts->endpoints[i]) continue;
    char *u = normalise_url(opts->endpoints[i]);
    char why[512];
    wf_http_client_t *c = wf_http_client_create_ex(loop, u, &ho, why, sizeof why);
    if (!c) {
      wf_warn(NULL, "etcd: ignoring endpoint \"%s\": %s", opts->endpoints[i], why);
      free(u);
      continue;
    }
    e->urls[e->n] = u;
    e->clients[e->n++] = c;
  }
  if (e->n == 0) {
    wf__etcd_auth_free(e);
    free(e->urls);
    free(e->clients);
    free(e->nreq);
    free(e->nerr);
    free(e);
    return NULL;
  }
  return e;
}

void wf__etcd_maybe_finish(wf_etcd_t *e) {
  if (!e->closing || e->ncalls || e->nwatches || e->clients_open) return;
  void (*cb)(void *) = e->close_cb;
  void *data = e->close_data;
  for (size_t i = 0; i < e->n; i++) free(e->urls[i]);
  wf__etcd_auth_free(e);
  free(e->urls);
  free(e->clients);
  free(e->nreq);
  free(e->nerr);
  free(e);
  if (cb) cb(data);
}

static void on_client_closed(void *data) {
  wf_etcd_t *e = data;
  e->clients_open--;
  wf__etcd_maybe_finish(e);
}

void wf_etcd_close(wf_etcd_t *e, void (*cb)(void *data), void *data) {
  if (!e || e->closing) return;
  e->closing = 1;
  e->close_cb = cb;
  e->close_data = data;
  wf__etcd_watch_cancel_all(e);
  /* Counted before the loop: a close_cb that fired at once must not find
   * zero and free e under us. */
  e->clients_open = e->n;
  for (size_t i = 0; i < e->n; i++) wf_http_client_close(e->clients[i], on_client_closed, e);
}

const char *wf_etcd_errmsg(const wf_etcd_t *e) { return e->errmsg; }
const char *wf_etcd_endpoint(const wf_etcd_t *e) { return e->urls[e->cur]; }

/* ---- calls ------------------------------------------------------------------------- */

static void call_on_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                         void *data);
static void call_on_token(wf__etcd_auth_waiter_t *wt, int err);

/* Sends the current attempt, or parks the call until a token arrives (the
 * authenticate call itself never waits).  0 when something is under way. */
static int call_send(call_t *c) {
  wf_etcd_t *e = c->e;
  if (c->op != WF__ETCD_AUTH && wf__etcd_auth_needed(e)) {
    c->wt.cb = call_on_token;
    return wf__etcd_auth_wait(e, &c->wt);
  }
  /* Copied by http/, so a stack array is fine. */
  wf_http_header_t hdrs[2];
  size_t nh = wf__etcd_auth_headers(e, hdrs, c->op != WF__ETCD_AUTH, &c->token_gen);
  wf_http_req_opts_t o;
  memset(&o, 0, sizeof o);
  o.method = "POST";
  o.path = c->path;
  o.headers = hdrs;
  o.nheaders = nh;
  o.body = c->body;
  o.body_len = c->body_len;
  o.timeout_ms = c->timeout_ms ? c->timeout_ms : e->request_timeout_ms;
  o.max_body = WF__ETCD_MAX_RESPONSE;
  wf_http_cbs_t cbs;
  memset(&cbs, 0, sizeof cbs);
  cbs.on_done = call_on_done;
  c->req = wf_http_request(e->clients[c->ep], &o, &cbs, c);
  return c->req ? 0 : UV_EINVAL;
}

static void call_free(call_t *c) {
  wf_etcd_t *e = c->e;
  if (c->op == WF__ETCD_AUTH) wf__etcd_wipe_free(c->body);
  else free(c->body);
  free(c->end);
  free(c);
  e->ncalls--;
  wf__etcd_maybe_finish(e);
}

/* Takes ownership of body (freed on failure too). */
static int call_start(wf_etcd_t *e, call_t *c, enum wf__etcd_op op, char *body, size_t blen) {
  c->e = e;
  c->op = op;
  c->path = op_path(op);
  c->body = body;
  c->body_len = blen;
  c->ep = e->cur;
  e->ncalls++;
  int r = call_send(c);
  if (r != 0) call_free(c);
  return r;
}

static call_t *call_new(void *data) {
  call_t *c = wf_calloc(1, sizeof *c);
  c->data = data;
  return c;
}

/* Hands the outcome to the caller; err != 0 means r holds nothing. */
static void call_complete(call_t *c, int err, const wf__etcd_resp_t *r) {
  static const wf__etcd_resp_t none;
  if (err != 0) r = &none;
  switch (c->op) {
    case WF__ETCD_RANGE: {
      wf_etcd_range_res_t res;
      res.revision = r->revision;
      res.kvs = r->kvs;
      res.nkvs = r->nkvs;
      res.more = r->more;
      res.count = r->count;
      c->cb.range(err, err ? NULL : &res, c->data);
      break;
    }
    case WF__ETCD_PUT:
    case WF__ETCD_COMPACT:
    case WF__ETCD_REVOKE:
      c->cb.put(err, r->revision, c->data);
      break;
    case WF__ETCD_TXN:
      c->cb.txn(err, r->succeeded, r->revision, r->nkvs ? &r->kvs[0] : NULL, c->data);
      break;
    case WF__ETCD_DELETE:
      c->cb.del(err, r->deleted, r->revision, c->data);
      break;
    case WF__ETCD_GRANT:
    case WF__ETCD_KEEPALIVE:
      c->cb.lease(err, r->id, r->ttl, c->data);
      break;
    case WF__ETCD_AUTH:
      break;  /* call_finish hands the token over */
  }
}

/* A list page arrived: ask for the next one, then hand this one over, so
 * that etcd builds page n+1 while the caller digests page n.  Returns 1 if
 * the call goes on (a request is in flight), 0 when it is finished. */
static int list_page(call_t *c, int *err, const wf__etcd_resp_t *r) {
  wf_etcd_t *e = c->e;
  if (c->list_rev == 0) c->list_rev = r->revision;
  int more = r->more && r->nkvs > 0 && !e->closing;
  if (more) {
    /* The next page starts just after the last key: key + "\0" is the
     * smallest key above it. */
    const wf_etcd_kv_t *last = &r->kvs[r->nkvs - 1];
    char *next = wf_malloc(last->key_len + 1);
    memcpy(next, last->key, last->key_len);
    next[last->key_len] = '\0';
    wf_etcd_range_opts_t o;
    memset(&o, 0, sizeof o);
    o.limit = c->page_size;
    o.revision = c->list_rev;
    free(c->body);
    c->body = wf__etcd_req_range(next, last->key_len + 1, c->end, c->elen, &o, &c->body_len);
    free(next);
    c->tries = 0;
    c->auth_retried = 0;  /* a long list may outlive more than one token */
    c->ep = e->cur;
    *err = call_send(c);
    if (*err) more = 0;
  }
  /* In flight or not, this page is whole: hand it over.  If the caller
   * closes the client from here, the request in flight ends with
   * UV_ECANCELED through the usual path. */
  if (r->nkvs > 0 && *err == 0) c->on_page(r->kvs, r->nkvs, c->data);
  if (!more && e->closing && *err == 0) *err = UV_ECANCELED;
  return more;
}

/* The call's outcome is known (err, or the 2xx body): parse it, hand it to
 * the caller (or ask for the next page) and free the call. */
static void call_finish(call_t *c, int err, const char *body, size_t len) {
  wf_etcd_t *e = c->e;
  wf__etcd_resp_t r;
  memset(&r, 0, sizeof r);
  if (err == 0) {
    err = wf__etcd_resp_parse(c->op, body, len, &r, e->errmsg, sizeof e->errmsg);
    if (err == WF_EPROTO) wf_warn(NULL, "etcd %s: %s", c->path, e->errmsg);
  }
  if (c->op == WF__ETCD_AUTH) {
    char *token = r.token;
    r.token = NULL;
    c->auth_done(e, err, err ? NULL : token);
    if (err) free(token);
  } else if (c->list) {
    if (err == 0 && list_page(c, &err, &r)) {
      wf__etcd_resp_clear(&r);
      return;
    }
    c->on_done(err, err ? 0 : c->list_rev, c->data);
  } else {
    call_complete(c, err, &r);
  }
  wf__etcd_resp_clear(&r);
  call_free(c);
}

static void call_on_token(wf__etcd_auth_waiter_t *wt, int err) {
  call_t *c = (call_t *)((char *)wt - offsetof(call_t, wt));
  if (err == 0 && c->e->closing) err = UV_ECANCELED;
  if (err == 0) err = call_send(c);
  if (err != 0) call_finish(c, err, NULL, 0);
}

static void call_on_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                         void *data) {
  call_t *c = data;
  wf_etcd_t *e = c->e;
  int grpc = -1;
  c->req = NULL;
  if (e->closing) err = UV_ECANCELED;
  if (err == 0 && (status < 200 || status > 299))
    err = wf__etcd_error_parse(status, body, len, e->errmsg, sizeof e->errmsg, &grpc);
  if (!e->closing && c->op < WF__ETCD_NOPS) { /* metrics: one attempt of this endpoint, op */
    e->nreq[c->ep * WF__ETCD_NOPS + c->op]++;
    if (err) e->nerr[c->ep * WF__ETCD_NOPS + c->op]++;
    e->reachable = status != 0 && status < 500;
  }
  /* gRPC Unavailable (HTTP 503): that member cannot serve (no leader,
   * stopping); another one may. */
  int failover = wf__etcd_transport_err(err) || grpc == 14 || status == 503;
  if (c->pinned) {
    /* A probe asks about this endpoint only; the watch that sent it decides. */
    if (failover && err != WF_EETCD && err != WF_EHTTP)
      snprintf(e->errmsg, sizeof e->errmsg, "%s: %s", e->urls[c->ep], wf_strerror(err));
  } else if (failover && !e->closing) {
    if (err != WF_EETCD && err != WF_EHTTP)
      snprintf(e->errmsg, sizeof e->errmsg, "%s: %s", e->urls[c->ep], wf_strerror(err));
    wf__etcd_endpoint_failed(e, c->ep);
    if (++c->tries < e->n) {
      c->ep = (c->ep + 1) % e->n;
      if (call_send(c) == 0) return;
    }
  } else if (status != 0 && !e->closing) {
    e->cur = c->ep;  /* it answered: stay with it */
  }
  /* The token expired or etcd restarted (simple tokens live in its memory):
   * get a new one and send the same request again, once. */
  if ((err == WF_EETCD || err == WF_EHTTP) && e->user && c->op != WF__ETCD_AUTH &&
      !c->auth_retried && !e->closing && wf__etcd_auth_rejected(status, grpc, e->errmsg)) {
    c->auth_retried = 1;
    wf__etcd_auth_invalidate(e, c->token_gen);
    if (call_send(c) == 0) return;
  }
  call_finish(c, err, body, len);
}

/* ---- the API ------------------------------------------------------------------------- */

static int check(const wf_etcd_t *e, int has_cb, const char *key, size_t klen) {
  if (!e || !has_cb || (!key && klen)) return UV_EINVAL;
  if (e->closing) return WF_ECLOSED;
  return 0;
}

int wf_etcd_range(wf_etcd_t *e, const char *key, size_t klen, const char *range_end,
                  size_t relen, const wf_etcd_range_opts_t *opts, wf_etcd_range_cb cb,
                  void *data) {
  int r = check(e, cb != NULL, key, klen);
  if (r) return r;
  call_t *c = call_new(data);
  c->cb.range = cb;
  size_t blen;
  char *body = wf__etcd_req_range(key, klen, range_end, relen, opts, &blen);
  return call_start(e, c, WF__ETCD_RANGE, body, blen);
}

int wf_etcd_list(wf_etcd_t *e, const char *prefix, size_t plen, int64_t page_size,
                 wf_etcd_page_cb on_page, wf_etcd_list_done_cb on_done, void *data) {
  int r = check(e, on_done != NULL, prefix, plen);
  if (r) return r;
  if (!on_page || page_size < 0) return UV_EINVAL;
  call_t *c = call_new(data);
  c->list = 1;
  c->on_page = on_page;
  c->on_done = on_done;
  c->page_size = page_size;
  c->end = wf_malloc(plen + 1);
  c->elen = wf_etcd_prefix_end(prefix, plen, c->end);
  if (c->elen == 0) {
    /* The empty prefix: every key ("\0" = no upper bound). */
    c->end[0] = '\0';
    c->elen = 1;
  }
  wf_etcd_range_opts_t o;
  memset(&o, 0, sizeof o);
  o.limit = page_size;
  size_t blen;
  char *body = wf__etcd_req_range(prefix ? prefix : "", plen, c->end, c->elen, &o, &blen);
  return call_start(e, c, WF__ETCD_RANGE, body, blen);
}

int wf_etcd_put(wf_etcd_t *e, const char *key, size_t klen, const char *value, size_t vlen,
                int64_t lease, wf_etcd_put_cb cb, void *data) {
  int r = check(e, cb != NULL, key, klen);
  if (r) return r;
  if (!value && vlen) return UV_EINVAL;
  call_t *c = call_new(data);
  c->cb.put = cb;
  size_t blen;
  char *body = wf__etcd_req_put(key, klen, value ? value : "", vlen, lease, &blen);
  return call_start(e, c, WF__ETCD_PUT, body, blen);
}

int wf_etcd_put_if(wf_etcd_t *e, const char *key, size_t klen, int64_t mod_revision,
                   const char *value, size_t vlen, wf_etcd_txn_cb cb, void *data) {
  int r = check(e, cb != NULL, key, klen);
  if (r) return r;
  if ((!value && vlen) || mod_revision < 0) return UV_EINVAL;
  call_t *c = call_new(data);
  c->cb.txn = cb;
  size_t blen;
  char *body = wf__etcd_req_put_if(key, klen, mod_revision, value ? value : "", vlen, &blen);
  return call_start(e, c, WF__ETCD_TXN, body, blen);
}

int wf_etcd_delete(wf_etcd_t *e, const char *key, size_t klen, const char *range_end,
                   size_t relen, wf_etcd_delete_cb cb, void *data) {
  int r = check(e, cb != NULL, key, klen);
  if (r) return r;
  call_t *c = call_new(data);
  c->cb.del = cb;
  size_t blen;
  char *body = wf__etcd_req_delete(key, klen, range_end, relen, &blen);
  return call_start(e, c, WF__ETCD_DELETE, body, blen);
}

int wf_etcd_compact(wf_etcd_t *e, int64_t revision, wf_etcd_put_cb cb, void *data) {
  int r = check(e, cb != NULL, "", 0);
  if (r) return r;
  call_t *c = call_new(data);
  c->cb.put = cb;
  size_t blen;
  char *body = wf__etcd_req_compact(revision, &blen);
  return call_start(e, c, WF__ETCD_COMPACT, body, blen);
}

int wf_etcd_lease_grant(wf_etcd_t *e, int64_t ttl, wf_etcd_lease_cb cb, void *data) {
  int r = check(e, cb != NULL, "", 0);
  if (r) return r;
  call_t *c = call_new(data);
  c->cb.lease = cb;
  size_t blen;
  char *body = wf__etcd_req_lease_grant(ttl, &blen);
  return call_start(e, c, WF__ETCD_GRANT, body, blen);
}

int wf_etcd_lease_keepalive(wf_etcd_t *e, int64_t id, wf_etcd_lease_cb cb, void *data) {
  int r = check(e, cb != NULL, "", 0);
  if (r) return r;
  call_t *c = call_new(data);
  c->cb.lease = cb;
  size_t blen;
  /* The keepalive endpoint is a stream; with one request object in the body
   * etcd answers once and ends the response, so a buffered POST fits. */
  char *body = wf__etcd_req_lease_id(id, &blen);
  return call_start(e, c, WF__ETCD_KEEPALIVE, body, blen);
}

int wf_etcd_lease_revoke(wf_etcd_t *e, int64_t id, wf_etcd_put_cb cb, void *data) {
  int r = check(e, cb != NULL, "", 0);
  if (r) return r;
  call_t *c = call_new(data);
  c->cb.put = cb;
  size_t blen;
  char *body = wf__etcd_req_lease_id(id, &blen);
  return call_start(e, c, WF__ETCD_REVOKE, body, blen);
}

/* ---- internal calls (watch.c, auth.c) -------------------------------------------------- */

int wf__etcd_probe(wf_etcd_t *e, size_t ep, const char *key, size_t klen, uint64_t timeout_ms,
                   wf_etcd_range_cb cb, void *data) {
  int r = check(e, cb != NULL, key, klen);
  if (r) return r;
  if (ep >= e->n) return UV_EINVAL;
  call_t *c = call_new(data);
  c->cb.range = cb;
  c->pinned = 1;
  c->timeout_ms = timeout_ms;
  wf_etcd_range_opts_t o;
  memset(&o, 0, sizeof o);
  o.count_only = 1;
  size_t blen;
  char *body = wf__etcd_req_range(key, klen, NULL, 0, &o, &blen);
  c->e = e;
  c->op = WF__ETCD_RANGE;
  c->path = op_path(WF__ETCD_RANGE);
  c->body = body;
  c->body_len = blen;
  c->ep = ep;
  e->ncalls++;
  r = call_send(c);
  if (r != 0) call_free(c);
  return r;
}

int wf__etcd_authenticate(wf_etcd_t *e, void (*done)(wf_etcd_t *e, int err, char *token)) {
  if (e->closing) return WF_ECLOSED;
  if (!e->user) return UV_EINVAL;
  call_t *c = call_new(NULL);
  c->auth_done = done;
  size_t blen;
  char *body = wf__etcd_req_auth(e->user, e->password, &blen);
  return call_start(e, c, WF__ETCD_AUTH, body, blen);
}

/* ---- counters ---------------------------------------------------------------------------- */

/* The op label of the metrics; NULL for ops not reported (yet). */
static const char *op_label(enum wf__etcd_op op) {
  switch (op) {
    case WF__ETCD_RANGE: return "range";
    case WF__ETCD_PUT: return "put";
    case WF__ETCD_TXN: return "txn";
    case WF__ETCD_DELETE: return "deleterange";
    case WF__ETCD_COMPACT: return "compaction";
    case WF__ETCD_GRANT: return "lease_grant";
    case WF__ETCD_KEEPALIVE: return "lease_keepalive";
    case WF__ETCD_REVOKE: return "lease_revoke";
    default: return NULL;
  }
}

void wf_etcd_stats(const wf_etcd_t *e, wf_etcd_stat_cb cb, void *data) {
  for (size_t i = 0; i < e->n; i++)
    for (size_t op = 0; op < WF__ETCD_NOPS; op++) {
      const char *name = op_label((enum wf__etcd_op)op);
      if (name)
        cb(e->urls[i], name, e->nreq[i * WF__ETCD_NOPS + op], e->nerr[i * WF__ETCD_NOPS + op],
           data);
    }
}

void wf_etcd_endpoints(const wf_etcd_t *e, wf_etcd_endpoint_cb cb, void *data) {
  for (size_t i = 0; i < e->n; i++) cb(e->urls[i], wf_http_client_protocol(e->clients[i]), data);
}

uint64_t wf_etcd_watch_reconnects(const wf_etcd_t *e) { return e->watch_reconnects; }
int wf_etcd_reachable(const wf_etcd_t *e) { return e->reachable; }
