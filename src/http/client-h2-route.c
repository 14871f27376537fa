/*
 * http/client-h2-route.c: which requests of an https:// client go over
 * HTTP/2, and PINGs.  The session itself (streams, nghttp2, flow control)
 * is client-h2.c's.
 *
 * Negotiation.  A client in WF_HTTP2_AUTO offers ALPN "h2,http/1.1" on the
 * first connection it opens (the probe: client->h2_state H2_PROBING,
 * client->h2_probe its request) and holds every other request until that
 * handshake tells (client->h2_wait, in order).  If the server picks h2, the
 * connection becomes the client's session (H2_LIVE) and the waiting
 * requests its streams: one TCP connection per origin.  If it picks
 * HTTP/1.1 or nothing, the client speaks HTTP/1.1 for the rest of its life
 * (H2_DECLINED) and the waiting requests go out over it.  If the probe
 * fails first (connect, TLS, timeout) the waiting requests fail with the
 * same error, which each would have met; a cancelled probe hands the
 * question to the next waiting request.  When a session ends (failure,
 * GOAWAY, idle) the client is H2_UNKNOWN again and the next request probes.
 * etcd 3.4 picks h2 on its TLS port and serves the JSON gateway there
 * (docs/peers.md §4).
 *
 * PINGs (wf_http_client_ping, and the session's own check after a stream
 * timed out) live in the client's table, WF__HTTP_MAX_PINGS of them: an ACK
 * or the end of the session makes one due, and the client's idle handle
 * delivers the results before any request's on_done, so a callback never
 * runs inside the call that asked and never goes missing when the
 * connection closes.
 */
#include <stdio.h>
#include <string.h>

#include "http-internal.h"

/* ---- negotiation ------------------------------------------------------------------------ */
static void take_waiters(wf_http_client_t *c, wf__http_link_t *out) {
  wf__http_list_init(out);
  if (wf__http_list_empty(&c->h2_wait)) return;
  out->next = c->h2_wait.next;
  out->prev = c->h2_wait.prev;
  out->next->prev = out;
  out->prev->next = out;
  wf__http_list_init(&c->h2_wait);
}

static wf_http_req_t *next_waiter(wf__http_link_t *list) {
  wf_http_req_t *w = container_of(list->next, wf_http_req_t, h2_link);
  wf__http_list_remove(&w->h2_link);
  return w;
}

void wf__http_h2_start(wf__http_conn_t *conn) {
  wf_http_client_t *c = conn->client;
  wf_http_req_t *req = conn->req;
  wf__http_link_t waiters;

  conn->req = NULL;
  req->conn = NULL;
  if (wf__http_h2_become(conn) < 0) {
    conn->req = req;
    req->conn = conn;
    wf__http_conn_fail(conn, UV_ENOMEM);
    return;
  }
  /* Once per client at info (operators want to know which protocol runs);
   * every reconnect after that at debug. */
  wf_log(c->h2_said ? WF_LOG_DEBUG : WF_LOG_INFO, NULL,
         "http %s: HTTP/2 (ALPN h2): one connection carries every request", c->origin);
  c->h2_said = 1;
  take_waiters(c, &waiters);
  wf__http_h2_attach(conn, req);
  while (!wf__http_list_empty(&waiters)) {
    wf_http_req_t *w = next_waiter(&waiters);
    if (c->h2conn == conn)
      wf__http_h2_attach(conn, w);
    else
      wf__http_dispatch(c, w);
  }
  wf__http_h2_after(conn);
}

void wf__http_h2_declined(wf_http_client_t *c) {
  wf__http_link_t waiters;

  c->h2_state = H2_DECLINED;
  c->h2_probe = NULL;
  wf_info(NULL, "http %s: the server did not choose HTTP/2 (ALPN): HTTP/1.1", c->origin);
  take_waiters(c, &waiters);
  while (!wf__http_list_empty(&waiters)) wf__http_dispatch(c, next_waiter(&waiters));
}

void wf__http_h2_probe_done(wf_http_client_t *c, int err) {
  wf__http_link_t waiters;

  c->h2_probe = NULL;
  if (c->h2_state == H2_PROBING) c->h2_state = H2_UNKNOWN;
  take_waiters(c, &waiters);
  while (!wf__http_list_empty(&waiters)) {
    wf_http_req_t *w = next_waiter(&waiters);
    if (err == UV_ECANCELED && !c->closing)
      wf__http_dispatch(c, w);
    else
      wf__http_queue_done(w, err);
  }
}

int wf__http_h2_route(wf_http_client_t *c, wf_http_req_t *req) {
  switch (c->h2_state) {
    case H2_LIVE:
      wf__http_h2_attach(c->h2conn, req);
      if (req->conn && req->conn->state == CONN_H2) wf__http_h2_after(req->conn);
      return 1;
    case H2_PROBING:
      req->state = REQ_CONNECTING;
      req->conn = NULL;
      wf__http_list_push_back(&c->h2_wait, &req->h2_link);
      return 1;
    case H2_UNKNOWN:
      c->h2_state = H2_PROBING;
      c->h2_probe = req;
      return 0;
    case H2_DECLINED:
    case H2_OFF:
      return 0;
  }
  return 0;
}

const char *wf_http_client_protocol(const wf_http_client_t *c) {
  return c && c->h2_state == H2_LIVE ? "h2" : "http/1.1";
}

/* ---- PINGs ------------------------------------------------------------------------------ */
static void due(wf_http_client_t *c, wf__http_ping_t *p, int result) {
  p->state = PING_DUE;
  p->result = result;
  p->conn = NULL;
  wf__http_kick(c);
}

void wf__http_h2_ping_acked(wf_http_client_t *c, uint64_t id) {
  for (int i = 0; i < WF__HTTP_MAX_PINGS; i++)
    if (c->h2_pings[i].state == PING_WAITING && c->h2_pings[i].id == id) due(c, &c->h2_pings[i], 0);
}

void wf__http_h2_pings_fail(wf_http_client_t *c, wf__http_conn_t *conn, int err) {
  for (int i = 0; i < WF__HTTP_MAX_PINGS; i++)
    if (c->h2_pings[i].state == PING_WAITING && c->h2_pings[i].conn == conn)
      due(c, &c->h2_pings[i], err);
}

uint64_t wf__http_h2_ping_deadline(const wf_http_client_t *c, const wf__http_conn_t *conn) {
  uint64_t d = UINT64_MAX;
  for (int i = 0; i < WF__HTTP_MAX_PINGS; i++)
    if (c->h2_pings[i].state == PING_WAITING && c->h2_pings[i].conn == conn &&
        c->h2_pings[i].deadline < d)
      d = c->h2_pings[i].deadline;
  return d;
}

int wf__http_h2_pings_expire(wf_http_client_t *c, wf__http_conn_t *conn, uint64_t now) {
  int n = 0;
  for (int i = 0; i < WF__HTTP_MAX_PINGS; i++)
    if (c->h2_pings[i].state == PING_WAITING && c->h2_pings[i].conn == conn &&
        now >= c->h2_pings[i].deadline) {
      due(c, &c->h2_pings[i], UV_ETIMEDOUT);
      n++;
    }
  return n;
}

int wf__http_h2_pings_waiting(const wf_http_client_t *c, const wf__http_conn_t *conn) {
  return wf__http_h2_ping_deadline(c, conn) != UINT64_MAX;
}

/* A free slot, taken for a PING on conn; NULL when all are in use. */
static wf__http_ping_t *ping_new(wf__http_conn_t *conn, uint64_t timeout_ms,
                                 void (*cb)(int, void *), void *data) {
  wf_http_client_t *c = conn->client;
  for (int i = 0; i < WF__HTTP_MAX_PINGS; i++) {
    wf__http_ping_t *p = &c->h2_pings[i];
    if (p->state != PING_FREE) continue;
    p->cb = cb;
    p->data = data;
    p->conn = conn;
    p->id = ++c->h2_ping_seq;
    p->deadline = uv_now(c->loop) + timeout_ms;
    if (wf__http_h2_send_ping(conn, p->id) != 0) return NULL;
    p->state = PING_WAITING;
    return p;
  }
  return NULL;
}

void wf__http_h2_check_ping(wf__http_conn_t *conn, uint64_t ms) {
  wf_http_client_t *c = conn->client;
  for (int i = 0; i < WF__HTTP_MAX_PINGS; i++)
    if (c->h2_pings[i].state == PING_WAITING && c->h2_pings[i].conn == conn &&
        !c->h2_pings[i].cb)
      return; /* one is out already */
  (void)ping_new(conn, ms, NULL, NULL);
}

int wf_http_client_ping(wf_http_client_t *c, uint64_t timeout_ms,
                        void (*cb)(int err, void *data), void *data) {
  if (!c || c->closing || !cb || c->h2_state != H2_LIVE || !c->h2conn) return UV_ENOTSUP;
  if (!ping_new(c->h2conn, timeout_ms, cb, data)) return UV_EBUSY;
  wf__http_h2_after(c->h2conn);
  return 0;
}

int wf__http_h2_pings_due(const wf_http_client_t *c) {
  for (int i = 0; i < WF__HTTP_MAX_PINGS; i++)
    if (c->h2_pings[i].state == PING_DUE) return 1;
  return 0;
}

void wf__http_h2_deliver_pings(wf_http_client_t *c) {
  for (int i = 0; i < WF__HTTP_MAX_PINGS; i++) {
    wf__http_ping_t *p = &c->h2_pings[i];
    void (*cb)(int, void *) = p->cb;
    if (p->state != PING_DUE) continue;
    p->state = PING_FREE;
    p->cb = NULL;
    if (cb) cb(p->result, p->data);
  }
}
