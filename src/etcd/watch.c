/*
 * watch: one long-lived POST /v3/watch per watch, read as newline-delimited
 * JSON, reconnected for ever until cancelled.
 *
 * The gateway cannot do duplex over HTTP/1.1, so the whole create_request is
 * the request body and the only way to stop a stream is to drop its
 * connection.  States:
 *
 *   WAIT        no connection; the timer fires the next attempt (backoff)
 *   AUTH        no connection; waiting for a token (auth.c)
 *   CONNECTING  request sent, waiting for "created"; the timer bounds it
 *   LIVE        "created" seen, events flow; the timer is the idle deadline
 *   COMPACTED   etcd cancelled the watch: resume revision compacted; idle
 *               until wf_etcd_watch_restart()
 *   DEAD        cancelled; freed once its request and timer are closed
 *
 * Every connection gets a new generation number.  A callback into the owner
 * can cancel, restart or drop the watch; code that called out compares the
 * generation afterwards and stops touching the old stream if it changed
 * (the libuv "read_cb closed stream" check).  Requests that were abandoned
 * still get their on_done from http/; those are recognised because their
 * req pointer is no longer w->req, and only counted.
 *
 * Events are delivered per message, fragments included (see the resume
 * bookkeeping in etcd-internal.h for why that stays exactly-once).
 *
 * Stall detection (LIVE): etcd sends nothing on a quiet prefix, and a frozen
 * member (SIGSTOP, a disk that hangs) keeps the TCP connection open just as
 * silently.  Progress notifications would tell the two apart, but etcd sends
 * them only every 10 minutes by default.  So once the stream has been silent
 * for e->watch_idle_ms, the watch asks the same endpoint a count-only range
 * with a short timeout.  An answer (even an etcd error) proves the member
 * alive and the silence quiet; a transport failure or timeout, with still no
 * byte on the stream meanwhile, is a stall: logged once, the connection is
 * dropped and the watch resumes from its resume revision elsewhere or later,
 * through the same path as any other break.  Over HTTP/2 the probe is a
 * PING on the connection the stream shares (wf_http_client_ping).
 */
#include "etcd-internal.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_BASE_MS 100
#define BACKOFF_MAX_MS 5000
/* Bounds on the stall probe's timeout (half the idle deadline in between):
 * short enough to notice a frozen member soon, long enough for a busy one. */
#define PROBE_MIN_MS 1000

enum wstate { W_WAIT, W_AUTH, W_CONNECTING, W_LIVE, W_COMPACTED, W_DEAD };

struct wf_etcd_watch_s {
  wf_etcd_t *e;
  wf_etcd_watch_t *prev, *next;  /* e->watches */
  char *key;
  size_t klen;
  char *end;
  size_t elen;
  wf_etcd_watch_cbs_t cbs;
  void *data;
  enum wstate state;
  unsigned gen;           /* bumped whenever the current stream is abandoned */
  wf_http_req_t *req;     /* the current stream, or NULL */
  unsigned reqs;          /* requests whose on_done is still due */
  size_t ep;              /* endpoint of the current stream */
  int status;             /* its HTTP status */
  wf_buf_t errbody;       /* body of a non-200 answer (bounded) */
  wf__etcd_lines_t lines;
  wf__etcd_resume_t resume;
  wf_backoff_t backoff;
  size_t failovers;       /* transport failures since the last "created" */
  uv_timer_t timer;       /* backoff in WAIT, "created" deadline in CONNECTING,
                             idle deadline in LIVE */
  int timer_closed;
  int reported;           /* last `connected` given to on_state, -1 = none */
  /* Stall detection (LIVE). */
  uint64_t last_rx;       /* uv_now of the last byte of the current stream */
  uint64_t last_ok;       /* uv_now of the last probe etcd answered */
  uint64_t probe_sent;    /* uv_now when the probe in flight was sent */
  unsigned probe_gen;     /* gen of the stream the probe in flight is about */
  int probing;            /* a probe's callback is still due */
  /* Authentication. */
  wf__etcd_auth_waiter_t wt;
  int auth_waiting;       /* wt is queued: its callback is still due */
  unsigned token_gen;     /* token generation the current stream was sent with */
};

static void conn_start(wf_etcd_watch_t *w);
static void conn_fail(wf_etcd_watch_t *w, int err);

/* ---- lifetime --------------------------------------------------------------------------- */

static void maybe_free(wf_etcd_watch_t *w) {
  if (w->state != W_DEAD || w->reqs > 0 || !w->timer_closed || w->probing || w->auth_waiting)
    return;
  wf_etcd_t *e = w->e;
  if (w->prev) w->prev->next = w->next;
  else e->watches = w->next;
  if (w->next) w->next->prev = w->prev;
  wf__etcd_lines_finish(&w->lines);
  wf_buf_finish(&w->errbody);
  free(w->key);
  free(w->end);
  free(w);
  e->nwatches--;
  wf__etcd_maybe_finish(e);
}

static void on_timer_close(uv_handle_t *h) {
  wf_etcd_watch_t *w = h->data;
  w->timer_closed = 1;
  maybe_free(w);
}

static void notify(wf_etcd_watch_t *w, int connected, int err) {
  if (w->reported == connected) return;
  w->reported = connected;
  if (w->cbs.on_state) w->cbs.on_state(w, connected, err, w->data);
}

static void idle_check(wf_etcd_watch_t *w);

static void on_timer(uv_timer_t *t) {
  wf_etcd_watch_t *w = t->data;
  if (w->state == W_WAIT) {
    conn_start(w);
  } else if (w->state == W_LIVE) {
    idle_check(w);
  } else if (w->state == W_CONNECTING) {
    /* No "created" in time: the endpoint hangs (stopped process, black
     * hole).  Treat it like a transport failure. */
    wf__etcd_endpoint_failed(w->e, w->ep);
    conn_fail(w, UV_ETIMEDOUT);
  }
}

/* Abandons the current stream (if any) and schedules the next attempt.
 * logged: the caller already said why, loudly; stay quiet here. */
static void conn_fail_x(wf_etcd_watch_t *w, int err, int logged) {
  if (w->req) {
    wf_http_req_cancel(w->req);
    w->req = NULL;
  }
  w->gen++;
  w->state = W_WAIT;
  w->e->watch_reconnects++;  /* metrics */
  /* An endpoint that failed on transport: try the others at once (once
   * around), then back off. */
  uint64_t delay;
  if (wf__etcd_transport_err(err) && ++w->failovers < w->e->n)
    delay = 0;
  else
    delay = wf_backoff_next(&w->backoff);
  uv_timer_start(&w->timer, on_timer, delay, 0);
  /* Loud once per outage, quiet while it lasts. */
  enum wf_log_level lvl = w->reported == 1 && !logged ? WF_LOG_WARN : WF_LOG_DEBUG;
  if (wf_log_enabled(lvl))
    wf_log(lvl, NULL, "etcd watch %.*s: %s%s%s; retrying from revision %" PRId64 " in %" PRIu64
           " ms", (int)w->klen, w->key, wf_strerror(err),
           err == WF_EETCD || err == WF_EHTTP ? ": " : "",
           err == WF_EETCD || err == WF_EHTTP ? w->e->errmsg : "", w->resume.rev, delay);
  notify(w, 0, err);
}

static void conn_fail(wf_etcd_watch_t *w, int err) { conn_fail_x(w, err, 0); }

/* ---- stall detection ------------------------------------------------------------------- */

static void idle_arm(wf_etcd_watch_t *w, uint64_t delay) {
  if (w->e->watch_idle_ms == UINT64_MAX) return;
  uv_timer_start(&w->timer, on_timer, delay, 0);
}

static void on_probe(int err, const wf_etcd_range_res_t *res, void *data) {
  wf_etcd_watch_t *w = data;
  wf_etcd_t *e = w->e;
  w->probing = 0;
  if (w->state == W_DEAD) {
    maybe_free(w);
    return;
  }
  /* The stream it asked about is gone already (broke, restarted). */
  if (w->state != W_LIVE || w->gen != w->probe_gen) return;
  uint64_t now = uv_now(e->loop);
  /* Any answer, an etcd error too, means the member serves requests. */
  if (!wf__etcd_transport_err(err)) {
    w->last_ok = now;
    return;
  }
  if (w->last_rx >= w->probe_sent) return;  /* the stream spoke meanwhile */
  uint64_t quiet_since = w->last_rx > w->last_ok ? w->last_rx : w->last_ok;
  wf_warn(NULL, "etcd watch %.*s: stalled: silent for %.1f s and %s did not answer a probe "
          "(%s); reconnecting from revision %" PRId64, (int)w->klen, w->key,
          (double)(now - quiet_since) / 1000.0, e->urls[w->ep], wf_strerror(err),
          w->resume.rev);
  wf__etcd_endpoint_failed(e, w->ep);
  conn_fail_x(w, err, 1);
}

static void on_ping(int err, void *data) { on_probe(err, NULL, data); }

/* The LIVE timer fired: probe if the stream has been silent long enough. */
static void idle_check(wf_etcd_watch_t *w) {
  wf_etcd_t *e = w->e;
  uint64_t now = uv_now(e->loop);
  uint64_t quiet_since = w->last_rx > w->last_ok ? w->last_rx : w->last_ok;
  uint64_t idle = now - quiet_since;
  if (idle < e->watch_idle_ms) {
    idle_arm(w, e->watch_idle_ms - idle);
    return;
  }
  idle_arm(w, e->watch_idle_ms);
  if (w->probing) return;  /* its own timeout decides */
  uint64_t tmo = e->watch_idle_ms / 2;
  if (tmo < PROBE_MIN_MS) tmo = PROBE_MIN_MS;
  if (tmo > e->request_timeout_ms) tmo = e->request_timeout_ms;
  w->probe_sent = now;
  w->probe_gen = w->gen;
  /* Over HTTP/2 the stream shares its connection with every other call, so
   * a PING on it asks the same question for the price of 17 bytes, and a
   * PING not answered drops the connection for every stream on it. */
  if (wf_http_client_ping(e->clients[w->ep], tmo, on_ping, w) == 0) {
    w->probing = 1;
    return;
  }
  if (wf__etcd_probe(e, w->ep, w->key, w->klen, tmo, on_probe, w) == 0) w->probing = 1;
}

/* ---- messages ---------------------------------------------------------------------------- */

static void compacted(wf_etcd_watch_t *w, int64_t compact_revision) {
  /* etcd leaves the HTTP stream open after cancelling; close it ourselves. */
  if (w->req) {
    wf_http_req_cancel(w->req);
    w->req = NULL;
  }
  w->gen++;
  w->state = W_COMPACTED;
  uv_timer_stop(&w->timer);
  wf_info(NULL, "etcd watch %.*s: revision %" PRId64 " is compacted (compact revision %" PRId64
          "); waiting for a restart", (int)w->klen, w->key, w->resume.rev, compact_revision);
  unsigned gen = w->gen;
  notify(w, 0, WF_ECOMPACTED);
  if (w->gen == gen && w->cbs.on_compacted) w->cbs.on_compacted(w, compact_revision, w->data);
}

static void handle_msg(wf_etcd_watch_t *w, wf__etcd_watch_msg_t *m) {
  wf_etcd_t *e = w->e;
  unsigned gen = w->gen;
  if (m->error) {
    /* The gateway lost its gRPC stream: this member is going away. */
    wf__etcd_set_errmsg(e, m->msg);
    wf__etcd_endpoint_failed(e, w->ep);
    conn_fail(w, WF_EETCD);
    return;
  }
  /* "created" together with "canceled" is a create that etcd refused (bad
   * token, no permission): not live. */
  if (m->created && !m->canceled) {
    if (w->state == W_CONNECTING) uv_timer_stop(&w->timer);
    w->state = W_LIVE;
    w->last_ok = uv_now(e->loop);
    idle_arm(w, e->watch_idle_ms);
    wf_backoff_reset(&w->backoff);
    w->failovers = 0;
    wf__etcd_resume_created(&w->resume, m->header_revision);
    e->cur = w->ep;
    notify(w, 1, 0);
    if (w->gen != gen) return;
  }
  if (m->canceled) {
    if (m->compact_revision > 0) {
      compacted(w, m->compact_revision);
    } else {
      /* A token that expired between our last call and this connect: the
       * reconnect gets a new one (conn_start waits for it). */
      if (e->user && wf__etcd_auth_rejected(0, -1, m->msg))
        wf__etcd_auth_invalidate(e, w->token_gen);
      wf__etcd_set_errmsg(e, m->msg[0] ? m->msg : "watch canceled by etcd");
      conn_fail(w, WF_EETCD);
    }
    return;
  }
  if (m->nevents == 0) return;  /* a progress notification */
  /* Drop what a reconnect replays, keep the rest in order.  Swapping keeps
   * every parsed kv owned by m, so one clear frees them all. */
  size_t k = 0;
  for (size_t i = 0; i < m->nevents; i++) {
    if (!wf__etcd_resume_event(&w->resume, m->events[i].kv.mod_revision)) continue;
    if (k != i) {
      wf_etcd_event_t t = m->events[k];
      m->events[k] = m->events[i];
      m->events[i] = t;
    }
    k++;
  }
  /* Before the callback, so that wf_etcd_watch_next_revision() is current
   * inside it and a restart from inside it is not overwritten. */
  wf__etcd_resume_msg_end(&w->resume, m->fragment);
  if (k > 0) w->cbs.on_events(w, m->events, k, w->data);
}

/* Splitter callback: non-zero stops the feed once the stream was abandoned. */
static int on_line(const char *line, size_t n, void *data) {
  wf_etcd_watch_t *w = data;
  unsigned gen = w->gen;
  wf__etcd_watch_msg_t m;
  if (wf__etcd_watch_msg_parse(line, n, &m) != 0) {
    wf__etcd_set_errmsg(w->e, m.msg);
    wf__etcd_watch_msg_clear(&m);
    conn_fail(w, WF_EPROTO);
    return 1;
  }
  handle_msg(w, &m);
  wf__etcd_watch_msg_clear(&m);
  return w->gen != gen;
}

/* ---- the stream -------------------------------------------------------------------------- */

static void on_head(wf_http_req_t *req, int status, const wf_http_header_t *headers,
                    size_t nheaders, void *data) {
  wf_etcd_watch_t *w = data;
  if (req == w->req) w->status = status;
}

static void on_data(wf_http_req_t *req, const char *p, size_t n, void *data) {
  wf_etcd_watch_t *w = data;
  if (req != w->req) return;
  w->last_rx = uv_now(w->e->loop);  /* any byte, progress notifications too */
  if (w->status != 200) {
    /* Keep what fits for the error message; the rest is noise. */
    size_t room = w->errbody.max - w->errbody.len;
    wf_buf_append(&w->errbody, p, n < room ? n : room);
    return;
  }
  unsigned gen = w->gen;
  int r = wf__etcd_lines_feed(&w->lines, p, n, on_line, w);
  if (r == WF_ETOOBIG && w->gen == gen) {
    wf__etcd_set_errmsg(w->e, "watch message over the line bound");
    conn_fail(w, WF_ETOOBIG);
  }
}

static void on_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                    void *data) {
  wf_etcd_watch_t *w = data;
  wf_etcd_t *e = w->e;
  w->reqs--;
  if (req != w->req) {
    maybe_free(w);  /* an abandoned stream: already handled */
    return;
  }
  w->req = NULL;
  unsigned gen = w->gen;
  if (err == 0 && w->status == 200) {
    /* etcd ends a stream with a bare {"error":...} and no newline. */
    wf__etcd_lines_flush(&w->lines, on_line, w);
    if (w->gen != gen) return;  /* that line already failed the stream */
    wf__etcd_set_errmsg(e, "watch stream ended");
    err = UV_EOF;
  } else if (err == 0) {
    int grpc;
    err = wf__etcd_error_parse(w->status, w->errbody.data, w->errbody.len, e->errmsg,
                               sizeof e->errmsg, &grpc);
    if (grpc == 14 || w->status == 503) wf__etcd_endpoint_failed(e, w->ep);
  } else if (err == UV_ECANCELED) {
    /* Only wf__etcd_watch_drop cancels the current stream and keeps it
     * current: it stands for a connection the peer broke. */
    err = UV_ECONNRESET;
  }
  if (wf__etcd_transport_err(err)) wf__etcd_endpoint_failed(e, w->ep);
  conn_fail(w, err);
}

static void on_token(wf__etcd_auth_waiter_t *wt, int err) {
  wf_etcd_watch_t *w = (wf_etcd_watch_t *)((char *)wt - offsetof(wf_etcd_watch_t, wt));
  w->auth_waiting = 0;
  if (w->state == W_DEAD) {
    maybe_free(w);
    return;
  }
  /* Restarted meanwhile: its timer connects (and finds the token). */
  if (w->state != W_AUTH) return;
  if (err) conn_fail(w, err);  /* logged by auth.c; back off and try again */
  else conn_start(w);
}

static void conn_start(wf_etcd_watch_t *w) {
  wf_etcd_t *e = w->e;
  if (wf__etcd_auth_needed(e)) {
    /* No stream without a token: etcd would refuse the create. */
    if (!w->auth_waiting) {
      w->wt.cb = on_token;
      if (wf__etcd_auth_wait(e, &w->wt) != 0) {
        w->state = W_WAIT;
        uv_timer_start(&w->timer, on_timer, wf_backoff_next(&w->backoff), 0);
        return;
      }
      w->auth_waiting = 1;
    }
    w->state = W_AUTH;
    return;
  }
  w->gen++;
  w->ep = e->cur;
  w->status = 0;
  wf_buf_reset(&w->errbody);
  wf__etcd_lines_reset(&w->lines);
  wf__etcd_resume_connect(&w->resume);
  size_t blen;
  char *body = wf__etcd_req_watch(w->key, w->klen, w->end, w->elen, w->resume.rev, &blen);
  wf_http_header_t hdrs[2];
  size_t nh = wf__etcd_auth_headers(e, hdrs, 1, &w->token_gen);
  wf_http_req_opts_t o;
  memset(&o, 0, sizeof o);
  o.method = "POST";
  o.path = "/v3/watch";
  o.headers = hdrs;
  o.nheaders = nh;
  o.body = body;
  o.body_len = blen;
  o.timeout_ms = 0;  /* a quiet watch is normal; the timer bounds "created" */
  o.stream = 1;
  wf_http_cbs_t cbs;
  memset(&cbs, 0, sizeof cbs);
  cbs.on_head = on_head;
  cbs.on_data = on_data;
  cbs.on_done = on_done;
  w->req = wf_http_request(e->clients[w->ep], &o, &cbs, w);
  free(body);
  if (!w->req) {
    /* Only a closing http client refuses; wf_etcd_close cancels us next. */
    w->state = W_WAIT;
    uv_timer_start(&w->timer, on_timer, wf_backoff_next(&w->backoff), 0);
    return;
  }
  w->reqs++;
  w->state = W_CONNECTING;
  uv_timer_start(&w->timer, on_timer, e->connect_timeout_ms + e->request_timeout_ms, 0);
}

/* ---- the API ---------------------------------------------------------------------------- */

wf_etcd_watch_t *wf_etcd_watch(wf_etcd_t *e, const char *prefix, size_t plen,
                               int64_t start_revision, const wf_etcd_watch_cbs_t *cbs,
                               void *data) {
  if (!e || e->closing || !cbs || !cbs->on_events || (!prefix && plen)) return NULL;
  wf_etcd_watch_t *w = wf_calloc(1, sizeof *w);
  w->e = e;
  w->cbs = *cbs;
  w->data = data;
  w->key = wf_malloc(plen + 1);
  if (plen) memcpy(w->key, prefix, plen);
  w->key[plen] = '\0';
  w->klen = plen;
  w->end = wf_malloc(plen + 1);
  w->elen = wf_etcd_prefix_end(w->key, plen, w->end);
  if (w->elen == 0) {
    w->end[0] = '\0';  /* the empty prefix: every key */
    w->elen = 1;
  }
  w->reported = -1;
  wf_buf_init(&w->errbody, WF__ETCD_MAX_ERRBODY);
  wf__etcd_lines_init(&w->lines, WF__ETCD_MAX_LINE);
  wf__etcd_resume_init(&w->resume, start_revision);
  wf_backoff_init(&w->backoff, BACKOFF_BASE_MS, BACKOFF_MAX_MS);
  uv_timer_init(e->loop, &w->timer);
  w->timer.data = w;
  w->next = e->watches;
  if (w->next) w->next->prev = w;
  e->watches = w;
  e->nwatches++;
  conn_start(w);
  return w;
}

void wf_etcd_watch_restart(wf_etcd_watch_t *w, int64_t start_revision) {
  if (!w || w->state == W_DEAD) return;
  if (w->req) {
    wf_http_req_cancel(w->req);
    w->req = NULL;
  }
  w->gen++;
  wf__etcd_resume_init(&w->resume, start_revision);
  wf_backoff_reset(&w->backoff);
  /* Connect from the loop, not from inside the caller (often a callback of
   * this very watch). */
  w->state = W_WAIT;
  uv_timer_start(&w->timer, on_timer, 0, 0);
}

void wf_etcd_watch_cancel(wf_etcd_watch_t *w) {
  if (!w || w->state == W_DEAD) return;
  w->state = W_DEAD;
  w->gen++;
  if (w->req) {
    wf_http_req_cancel(w->req);
    w->req = NULL;
  }
  uv_close((uv_handle_t *)&w->timer, on_timer_close);
}

int64_t wf_etcd_watch_next_revision(const wf_etcd_watch_t *w) {
  return wf__etcd_resume_rev(&w->resume);
}

void wf__etcd_watch_cancel_all(wf_etcd_t *e) {
  for (wf_etcd_watch_t *w = e->watches; w; w = w->next) wf_etcd_watch_cancel(w);
}

void wf__etcd_watch_drop(wf_etcd_watch_t *w) {
  if (w && w->req) wf_http_req_cancel(w->req);
}
