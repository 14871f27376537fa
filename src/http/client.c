/*
 * http/client.c: the HTTP/1.1 client behind include/wf/http.h, on libuv and
 * llhttp.  It talks to one origin (TCP, TLS over TCP, or a unix socket) and
 * knows nothing of etcd or Docker.  This file holds the client, its pool and
 * the request and connection state machines; the bytes of one exchange are
 * client-message.c's, TLS is client-tls.c's, origin parsing origin.c's
 * (http-internal.h says what they share).
 *
 * Design (shaped after h2o's lib/common/http1client.c):
 *
 * - Two objects.  A request (wf_http_req_t) lives from wf_http_request()
 *   until its on_done returns.  A connection (wf__http_conn_t) owns the uv
 *   stream, one uv_timer, the llhttp parser and a fixed 64 KiB read buffer;
 *   it serves one request at a time and then either returns to the client's
 *   idle pool or closes.  Each has an explicit state enum (req_state,
 *   conn_state).
 *
 * - Every completion, successful or not, goes through one queue on the client
 *   (client->done) drained by a uv_idle handle.  So on_done always runs on a
 *   later loop iteration than the event that finished the request, never
 *   inside wf_http_request/wf_http_req_cancel, and never while llhttp is on
 *   the stack.  A connection that finished cleanly is already back in the
 *   pool when on_done runs, so a follow-up request issued there reuses it.
 *
 * - Memory is freed only at safe points: a request after its on_done returns,
 *   a connection in the close callback of its last handle (and after its
 *   getaddrinfo, if any, came back), the client once its idle handle and all
 *   connections are gone (then close_cb runs).  User callbacks that fire
 *   while we are parsing (on_head, on_data) may cancel the request or close
 *   the client: they only mark state and uv_close handles, and the parser
 *   loop checks `conn->state` / `conn->req` after every call out.
 *
 * - Backpressure: wf_http_req_pause() makes the body callback return
 *   HPE_PAUSED, so llhttp stops exactly where the user stopped.  The bytes
 *   not yet parsed stay in the connection's read buffer (pend_off/pend_len)
 *   and reading is stopped, so that buffer is never overwritten and memory
 *   stays bounded.  Resume re-feeds those bytes from a 0 ms timer (the same
 *   per-connection timer, never re-entrantly from the resume call), then
 *   starts reading again.  The re-feed happens even when no byte is left:
 *   llhttp may still owe a callback (a Content-Length body that ended
 *   exactly where the user paused completes only on the next execute).
 *   wf__http_update_read_state() is the one place that decides whether the
 *   socket is read and what the timer waits for (h2o update_read_state).
 *
 * - The timer has one job at a time (timer_mode): connect timeout, response
 *   timeout (no byte for timeout_ms while waiting; re-armed per read), idle
 *   close of a pooled connection, or the resume drain above.
 *
 * - Keep-alive: pooled connections keep reading so that a server close (EOF)
 *   drops them at once.  A request written to a reused connection that fails
 *   before any response byte arrives (the server closed it while idle and we
 *   had not seen the FIN yet) is retried once on a fresh connection.
 *   Responses with bytes after their end, "Connection: close", a body ended
 *   by the close, or a request still being written when the answer came are
 *   never pooled (a plain connection whose write is still in flight waits
 *   for it in CONN_WRITE_WAIT instead).
 *
 * - TLS (https://): the socket is the same libuv stream; client-tls.c sits
 *   between it and the parser and runs the handshake while the connection
 *   is CONN_CONNECTING.
 *
 * - HTTP/2 (https:// in WF_HTTP2_AUTO): every request passes through
 *   wf__http_dispatch, where client-h2-route.c may take it: as a stream of
 *   the live session (a CONN_H2 connection, client-h2.c), or into the wait
 *   for the first handshake's ALPN answer.  What it does not take goes the
 *   HTTP/1.1 way below.
 *
 * - Errors: llhttp parse errors and a 101 are WF_EPROTO; head over
 *   max_header or buffered body over max_body are WF_ETOOBIG; a connection
 *   closed before the response ended is UV_EOF; a TLS failure is WF_ETLS
 *   (reason in wf_http_client_last_error, logged once per new reason); the
 *   rest are libuv's codes.  Zero in any client or request option means its
 *   documented default.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http-internal.h"

#define MAX_ADDRS 8
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_MAX_IDLE 4
#define DEFAULT_IDLE_CLOSE_MS 30000
#define DEFAULT_MAX_BODY (8u * 1024 * 1024)
#define DEFAULT_MAX_HEADER (64u * 1024)

static void start_connect(wf_http_client_t *c, wf_http_req_t *req,
                          struct sockaddr_storage *addrs, size_t naddrs, size_t idx);
static void on_timer(uv_timer_t *t);
static void client_maybe_free(wf_http_client_t *c);

/* ---- completion queue ------------------------------------------------------------ */
static void deliver(wf_http_req_t *req) {
  const char *body = NULL;
  size_t len = 0;

  req->state = REQ_DELIVERING;
  if (req->err == 0 && !req->stream) {
    body = req->body.data ? req->body.data : "";
    len = req->body.len;
  }
  req->cbs.on_done(req, req->err, req->status, body, len, req->data);
  wf__http_list_remove(&req->link);
  free(req->wbuf);
  wf_buf_finish(&req->held);
  wf_buf_finish(&req->body);
  wf_buf_finish(&req->headbuf);
  free(req->hoffs);
  free(req);
}

static void on_idle_closed(uv_handle_t *h) {
  wf_http_client_t *c = h->data;
  c->idle_closed = 1;
  client_maybe_free(c);
}

static void on_idle(uv_idle_t *h) {
  wf_http_client_t *c = h->data;
  wf__http_link_t batch;

  /* PING results first: a watch that asked learns of a stall before its
   * stream fails with the connection (client-h2-route.c). */
  wf__http_h2_deliver_pings(c);
  /* Deliver only what was due when we started: requests finished from
   * inside an on_done wait for the next iteration. */
  wf__http_list_init(&batch);
  if (!wf__http_list_empty(&c->done)) {
    batch.next = c->done.next;
    batch.prev = c->done.prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    wf__http_list_init(&c->done);
  }
  while (!wf__http_list_empty(&batch)) {
    wf_http_req_t *req = container_of(batch.next, wf_http_req_t, done_link);
    wf__http_list_remove(&req->done_link);
    deliver(req);
  }
  if (wf__http_list_empty(&c->done) && !wf__http_h2_pings_due(c)) {
    uv_idle_stop(h);
    if (c->closing && !uv_is_closing((uv_handle_t *)h))
      uv_close((uv_handle_t *)h, on_idle_closed);
  }
}

void wf__http_kick(wf_http_client_t *c) { uv_idle_start(&c->idle, on_idle); }

void wf__http_queue_done(wf_http_req_t *req, int err) {
  wf_http_client_t *c = req->client;
  req->err = err;
  req->state = REQ_DONE;
  wf__http_list_push_back(&c->done, &req->done_link);
  uv_idle_start(&c->idle, on_idle);
  /* The request whose connection offers h2 failed before the answer: the
   * ones waiting for that answer learn it now. */
  if (req == c->h2_probe) wf__http_h2_probe_done(c, err);
}

/* ---- connections: lifetime ----------------------------------------------------- */
static void conn_maybe_free(wf__http_conn_t *conn) {
  wf_http_client_t *c = conn->client;
  if (conn->open_handles > 0 || conn->gai_pending) return;
  wf__http_list_remove(&conn->link);
  free(conn->addrs);
  wf__http_h2_free(conn);
  wf__tls_destroy(conn->tls);
  free(conn->cbuf);
  free(conn->wait_wbuf); /* NULL unless the write's callback never ran */
  free(conn);
  c->nconns--;
  client_maybe_free(c);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  wf__http_conn_t *conn = h->data;
  conn->open_handles--;
  conn_maybe_free(conn);
}

static wf__http_conn_t *conn_new(wf_http_client_t *c) {
  wf__http_conn_t *conn = wf_calloc(1, sizeof(*conn));
  int r;

  conn->client = c;
  wf__http_list_init(&conn->pool_link);
  wf__http_list_push_back(&c->conns, &conn->link);
  c->nconns++;
  conn->state = CONN_CONNECTING;
  uv_timer_init(c->loop, &conn->timer);
  conn->timer.data = conn;
  conn->open_handles = 1;
  if (c->o.kind == ORIGIN_UNIX)
    r = uv_pipe_init(c->loop, &conn->io.pipe, 0);
  else
    r = uv_tcp_init(c->loop, &conn->io.tcp);
  if (r == 0) {
    conn->io.handle.data = conn;
    conn->io_inited = 1;
    conn->open_handles++;
  }
  return conn;
}

/* Memory goes away in the handles' close callbacks. */
void wf__http_conn_close(wf__http_conn_t *conn) {
  if (conn->state == CONN_CLOSING) return;
  if (conn->state == CONN_IDLE) {
    wf__http_list_remove(&conn->pool_link);
    conn->client->npool--;
  }
  wf__http_tls_close_notify(conn);
  conn->state = CONN_CLOSING;
  conn->tmode = TM_NONE;
  if (conn->gai_pending) uv_cancel((uv_req_t *)&conn->gai);
  uv_close((uv_handle_t *)&conn->timer, on_conn_handle_closed);
  if (conn->io_inited) uv_close(&conn->io.handle, on_conn_handle_closed);
}

void wf__http_conn_drop(wf__http_conn_t *conn, const char *why) {
  wf_debug(NULL, "http %s: pooled connection dropped (%s)", conn->client->origin, why);
  wf__http_conn_close(conn);
}

static void detach(wf__http_conn_t *conn) {
  wf_http_req_t *req = conn->req;
  conn->req = NULL;
  if (req) req->conn = NULL;
}

/* ---- timer ------------------------------------------------------------------------- */
static void timer_arm(wf__http_conn_t *conn, enum wf__http_timer_mode mode, uint64_t ms) {
  conn->tmode = mode;
  uv_timer_start(&conn->timer, on_timer, ms, 0);
}

void wf__http_timer_arm(wf__http_conn_t *conn, enum wf__http_timer_mode mode, uint64_t ms) {
  timer_arm(conn, mode, ms);
}

static void timer_disarm(wf__http_conn_t *conn) {
  conn->tmode = TM_NONE;
  uv_timer_stop(&conn->timer);
}

/* ---- pool --------------------------------------------------------------------------- */
static void pool_put(wf__http_conn_t *conn) {
  wf_http_client_t *c = conn->client;

  conn->state = CONN_IDLE;
  conn->served++;
  conn->parser_paused = 0;
  conn->pend_len = conn->pend_off = 0;
  conn->tls_more = 0;
  wf__http_list_push_front(&c->pool, &conn->pool_link);
  c->npool++;
  while (c->npool > c->max_idle)
    wf__http_conn_close(container_of(c->pool.prev, wf__http_conn_t, pool_link));
  if (conn->state != CONN_IDLE) return;
  wf__http_update_read_state(conn);
  if (conn->state != CONN_IDLE) return;
  timer_arm(conn, TM_IDLE, c->idle_close_ms);
  /* An idle pool alone should not keep the loop running. */
  uv_unref(&conn->io.handle);
  uv_unref((uv_handle_t *)&conn->timer);
}

static wf__http_conn_t *pool_get(wf_http_client_t *c) {
  wf__http_conn_t *conn;
  if (wf__http_list_empty(&c->pool)) return NULL;
  conn = container_of(c->pool.next, wf__http_conn_t, pool_link);
  wf__http_list_remove(&conn->pool_link);
  c->npool--;
  uv_ref(&conn->io.handle);
  uv_ref((uv_handle_t *)&conn->timer);
  timer_disarm(conn);
  return conn;
}

/* ---- request completion --------------------------------------------------------- */
void wf__http_complete_req(wf__http_conn_t *conn, int err) {
  wf_http_req_t *req = conn->req;
  wf_http_client_t *c = conn->client;
  int reuse = err == 0 && conn->keep_alive && !c->closing && !req->fresh &&
              (!conn->write_pending || !conn->tls);

  /* TLS works again: the next failure is news and is logged at warn. */
  if (err == 0 && conn->tls) c->tls_logged[0] = '\0';
  detach(conn);
  wf__http_queue_done(req, err);
  if (!reuse) {
    wf__http_conn_close(conn);
  } else if (conn->write_pending) {
    /* The answer came in before libuv ran our write's callback (it runs on
     * the next loop turn): the connection is fine, it only cannot go to the
     * pool with a uv_write_t outstanding.  Closing it instead had opened a
     * new TCP connection for one etcd request in eight under load (bench
     * part 2). */
    /* A server that answered early and stopped reading would hold the
     * write (and its buffer) forever: the idle deadline closes it. */
    timer_arm(conn, TM_IDLE, c->idle_close_ms);
    conn->state = CONN_WRITE_WAIT;
    /* libuv still writes from the request's buffer: the connection keeps
     * it until the callback, the request is delivered and freed without. */
    conn->wait_wbuf = req->wbuf;
    req->wbuf = NULL;
  } else {
    pool_put(conn);
  }
}

/* A reused connection that died before answering was most likely closed by
 * the server while idle, so the request gets one more try on a fresh
 * connection. */
void wf__http_conn_fail(wf__http_conn_t *conn, int err) {
  wf_http_req_t *req = conn->req;
  wf_http_client_t *c = conn->client;

  if (conn->state == CONN_H2) {
    wf__http_h2_fail(conn, err);
    return;
  }
  if (!req) {
    wf__http_conn_close(conn);
    return;
  }
  if (wf__http_retryable(err) && conn->served > 0 && !conn->got_bytes && !req->retried &&
      !c->closing) {
    wf_debug(NULL, "http %s: reused connection failed (%s), retrying", c->origin,
             wf__http_errstr(err));
    detach(conn);
    wf__http_conn_close(conn);
    req->retried = 1;
    req->connect_deadline = uv_now(c->loop) + c->connect_timeout_ms;
    start_connect(c, req, NULL, 0, 0);
    return;
  }
  wf_debug(NULL, "http %s: request failed: %s", c->origin, wf__http_errstr(err));
  wf__http_complete_req(conn, err);
}

/* ---- reading ----------------------------------------------------------------------- */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  wf__http_conn_t *conn = h->data;
  (void)hint;
  /* Reading is stopped while parser_paused, so the buffer is free here.
   * TLS reads ciphertext apart: rbuf then holds the plaintext OpenSSL
   * hands out. */
  if (conn->cbuf)
    *buf = uv_buf_init(conn->cbuf, WF__HTTP_CIPHER_BUF_SIZE);
  else
    *buf = uv_buf_init(conn->rbuf, sizeof(conn->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wf__http_conn_t *conn = s->data;

  if (nread == 0 || conn->state == CONN_CLOSING) return;
  if (conn->tls) {
    wf__http_tls_on_read(conn, nread, buf);
    return;
  }
  if (conn->state == CONN_H2) { /* the test seam: HTTP/2 without TLS */
    if (nread < 0)
      wf__http_h2_fail(conn, (int)nread);
    else
      wf__http_h2_recv_plain(conn, buf->base, (size_t)nread);
    return;
  }
  if (conn->state == CONN_IDLE || conn->state == CONN_WRITE_WAIT) {
    /* EOF, an error or bytes nobody asked for: unusable either way. */
    wf__http_conn_drop(conn, nread < 0 ? wf__http_errstr((int)nread) : "unexpected bytes");
    return;
  }
  if (nread < 0) {
    wf__http_on_eof(conn, (int)nread);
    return;
  }
  conn->got_bytes = 1;
  wf__http_feed(conn, buf->base, (size_t)nread);
  if (conn->state == CONN_ACTIVE) wf__http_update_read_state(conn);
}

int wf__http_start_reading(wf__http_conn_t *conn) {
  int r = uv_read_start(&conn->io.stream, on_alloc, on_read);
  if (r < 0) {
    wf__http_conn_fail(conn, r);
    return r;
  }
  conn->reading = 1;
  return 0;
}

/* Decides by the connection state and the request's pause flag. */
void wf__http_update_read_state(wf__http_conn_t *conn) {
  wf_http_req_t *req = conn->req;
  int want;

  if (conn->state == CONN_IDLE)
    want = 1;
  else if (conn->state == CONN_ACTIVE)
    want = !req->paused && !conn->parser_paused && !conn->tls_more;
  else
    return;
  if (want && !conn->reading) {
    if (wf__http_start_reading(conn) < 0) return;
  } else if (!want && conn->reading) {
    uv_read_stop(&conn->io.stream);
    conn->reading = 0;
  }
  if (conn->state != CONN_ACTIVE) return;
  if (!req->paused && (conn->parser_paused || conn->tls_more))
    timer_arm(conn, TM_DRAIN, 0);
  else if (want && req->timeout_ms > 0)
    timer_arm(conn, TM_RESPONSE, req->timeout_ms);
  else
    timer_disarm(conn);
}

static void drain(wf__http_conn_t *conn) {
  if (conn->parser_paused) {
    const char *p = conn->rbuf + conn->pend_off;
    size_t n = conn->pend_len;

    conn->parser_paused = 0;
    conn->pend_off = conn->pend_len = 0;
    wf__http_feed(conn, p, n);
  }
  /* Then the plaintext OpenSSL still holds from reads before the pause. */
  if (conn->state == CONN_ACTIVE && conn->tls) wf__http_tls_pump(conn);
  if (conn->state == CONN_ACTIVE) wf__http_update_read_state(conn);
}

static void on_timer(uv_timer_t *t) {
  wf__http_conn_t *conn = t->data;
  enum wf__http_timer_mode mode = conn->tmode;

  conn->tmode = TM_NONE;
  switch (mode) {
    case TM_CONNECT:
    case TM_RESPONSE:
      wf__http_conn_fail(conn, UV_ETIMEDOUT);
      break;
    case TM_IDLE:
      wf__http_conn_close(conn);
      break;
    case TM_DRAIN:
      drain(conn);
      break;
    case TM_H2:
      wf__http_h2_on_timer(conn);
      break;
    case TM_NONE:
      break;
  }
}

/* ---- writing and connecting ------------------------------------------------------- */
static void on_write(uv_write_t *w, int status) {
  wf__http_conn_t *conn = container_of(w, wf__http_conn_t, wreq);

  conn->write_pending--;
  free(conn->wait_wbuf);
  conn->wait_wbuf = NULL;
  if (conn->state == CONN_WRITE_WAIT) {
    timer_disarm(conn);
    if (status < 0 || conn->client->closing)
      wf__http_conn_close(conn);
    else
      pool_put(conn);
    return;
  }
  if (conn->state != CONN_ACTIVE) return;
  if (status < 0) {
    wf__http_conn_fail(conn, status);
    return;
  }
  /* The response timeout counts from the end of a (possibly long) upload. */
  if (!conn->in_feed) wf__http_update_read_state(conn);
}

void wf__http_attach(wf__http_conn_t *conn, wf_http_req_t *req) {
  uv_buf_t b;
  int r;

  timer_disarm(conn);
  conn->state = CONN_ACTIVE;
  conn->req = req;
  req->conn = conn;
  req->state = REQ_HEAD;
  wf__http_response_begin(conn);
  if (conn->tls) {
    /* The plain request stays in req->wbuf for a retry. */
    if (wf__http_tls_send(conn, req->wbuf, req->wlen) != 0) return;
    wf__http_update_read_state(conn);
    return;
  }
  b = uv_buf_init(req->wbuf, (unsigned)req->wlen);
  r = uv_write(&conn->wreq, &conn->io.stream, &b, 1, on_write);
  if (r < 0) {
    wf__http_conn_fail(conn, r);
    return;
  }
  conn->write_pending++;
  wf__http_update_read_state(conn);
}

static void connect_next(wf__http_conn_t *conn);

/* A connect attempt failed: try the next resolved address, if any. */
static void connect_failed(wf__http_conn_t *conn, int err) {
  if (err != UV_ETIMEDOUT && conn->addrs && conn->addr_idx + 1 < conn->naddrs) {
    connect_next(conn);
    return;
  }
  wf__http_conn_fail(conn, err);
}

static void on_connect(uv_connect_t *cr, int status) {
  wf__http_conn_t *conn = container_of(cr, wf__http_conn_t, creq);

  if (conn->state == CONN_CLOSING) return;
  if (status < 0) {
    connect_failed(conn, status);
    return;
  }
  if (conn->client->o.kind == ORIGIN_TCP) uv_tcp_nodelay(&conn->io.tcp, 1);
  if (conn->client->tls) {
    wf__http_tls_start(conn);
    return;
  }
  wf__http_attach(conn, conn->req);
}

static void connect_addr(wf__http_conn_t *conn, const struct sockaddr *sa) {
  int r = uv_tcp_connect(&conn->creq, &conn->io.tcp, sa, on_connect);
  if (r < 0) connect_failed(conn, r);
}

/* A libuv tcp handle cannot connect twice, so each address gets its own
 * connection; the request and the address list move over. */
static void connect_next(wf__http_conn_t *conn) {
  wf_http_req_t *req = conn->req;
  struct sockaddr_storage *addrs = conn->addrs;

  conn->addrs = NULL;
  detach(conn);
  wf__http_conn_close(conn);
  start_connect(conn->client, req, addrs, conn->naddrs, conn->addr_idx + 1);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res) {
  wf__http_conn_t *conn = container_of(g, wf__http_conn_t, gai);
  struct addrinfo *ai;
  size_t n = 0;

  conn->gai_pending = 0;
  if (conn->state == CONN_CLOSING) {
    if (res) uv_freeaddrinfo(res);
    conn_maybe_free(conn);
    return;
  }
  if (status < 0) {
    wf__http_conn_fail(conn, status);
    return;
  }
  conn->addrs = wf_calloc(MAX_ADDRS, sizeof(*conn->addrs));
  for (ai = res; ai && n < MAX_ADDRS; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    memcpy(&conn->addrs[n++], ai->ai_addr, ai->ai_addrlen);
  }
  uv_freeaddrinfo(res);
  conn->naddrs = n;
  conn->addr_idx = 0;
  if (n == 0) {
    wf__http_conn_fail(conn, UV_EAI_NONAME);
    return;
  }
  connect_addr(conn, (const struct sockaddr *)&conn->addrs[0]);
}

/* Opens a fresh connection for req.  addrs (owned, may be NULL) continues an
 * address list at idx. */
static void start_connect(wf_http_client_t *c, wf_http_req_t *req,
                          struct sockaddr_storage *addrs, size_t naddrs, size_t idx) {
  wf__http_conn_t *conn = conn_new(c);
  uint64_t now = uv_now(c->loop);
  int r;

  conn->req = req;
  req->conn = conn;
  req->state = REQ_CONNECTING;
  conn->addrs = addrs;
  conn->naddrs = naddrs;
  conn->addr_idx = idx;
  conn->h2_offer = req == c->h2_probe;
  if (!conn->io_inited) {
    wf__http_conn_fail(conn, UV_ENOMEM);
    return;
  }
  timer_arm(conn, TM_CONNECT, req->connect_deadline > now ? req->connect_deadline - now : 1);
  if (c->o.kind == ORIGIN_UNIX) {
    /* Errors (ENOENT, ECONNREFUSED) come back through on_connect. */
    uv_pipe_connect(&conn->creq, &conn->io.pipe, c->o.path, on_connect);
    return;
  }
  if (addrs) {
    connect_addr(conn, (const struct sockaddr *)&addrs[idx]);
    return;
  }
  if (c->o.have_addr) {
    connect_addr(conn, (const struct sockaddr *)&c->o.addr);
    return;
  }
  {
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    r = uv_getaddrinfo(c->loop, &conn->gai, on_resolved, c->o.host, c->o.port_str, &hints);
    if (r < 0) {
      wf__http_conn_fail(conn, r);
      return;
    }
    conn->gai_pending = 1;
  }
}

/* ---- public API --------------------------------------------------------------------- */
static void client_free(wf_http_client_t *c) {
  wf__tls_ctx_destroy(c->tls);
  wf__http_origin_finish(&c->o);
  free(c->origin);
  free(c);
}

static void client_maybe_free(wf_http_client_t *c) {
  void (*cb)(void *);
  void *data;
  if (!c->closing || !c->idle_closed || c->nconns > 0) return;
  cb = c->close_cb;
  data = c->close_data;
  client_free(c);
  if (cb) cb(data);
}

wf_http_client_t *wf_http_client_create(uv_loop_t *loop, const char *origin,
                                        const wf_http_client_opts_t *opts) {
  return wf_http_client_create_ex(loop, origin, opts, NULL, 0);
}

wf_http_client_t *wf_http_client_create_ex(uv_loop_t *loop, const char *origin,
                                           const wf_http_client_opts_t *opts, char *err,
                                           size_t errlen) {
  wf_http_client_t *c;
  char scratch[1];

  if (!err || errlen == 0) {
    err = scratch;
    errlen = sizeof(scratch);
  }
  err[0] = '\0';
  if (!loop || !origin) {
    snprintf(err, errlen, "no loop or no origin");
    return NULL;
  }
  c = wf_calloc(1, sizeof(*c));
  if (wf__http_origin_parse(&c->o, origin) < 0) {
    snprintf(err, errlen, "\"%.200s\" is not an http://host:port, https://host:port or "
             "unix:///path origin", origin);
    client_free(c);
    return NULL;
  }
  if (c->o.https) {
    if (!opts || !opts->tls) {
      snprintf(err, errlen, "%.200s: an https:// origin needs TLS options", origin);
      client_free(c);
      return NULL;
    }
    /* The files are read here, before the loop runs (start-up), and never
     * again: every connection shares the loaded context. */
    c->tls = wf__tls_ctx_create(opts->tls, err, errlen);
    if (!c->tls) {
      client_free(c);
      return NULL;
    }
  }
  c->loop = loop;
  c->origin = wf_strdup(origin);
  c->connect_timeout_ms = opts && opts->connect_timeout_ms ? opts->connect_timeout_ms
                                                           : DEFAULT_CONNECT_TIMEOUT_MS;
  c->max_idle = opts && opts->max_idle ? opts->max_idle : DEFAULT_MAX_IDLE;
  c->idle_close_ms = opts && opts->idle_close_ms ? opts->idle_close_ms : DEFAULT_IDLE_CLOSE_MS;
  c->h2_state = c->o.https && opts->http2 != WF_HTTP2_OFF ? H2_UNKNOWN : H2_OFF;
  wf__http_list_init(&c->h2_wait);
  wf__http_list_init(&c->reqs);
  wf__http_list_init(&c->done);
  wf__http_list_init(&c->conns);
  wf__http_list_init(&c->pool);
  uv_idle_init(loop, &c->idle);
  c->idle.data = c;
  return c;
}

const char *wf_http_client_origin(const wf_http_client_t *c) { return c ? c->origin : NULL; }

const char *wf_http_client_last_error(const wf_http_client_t *c) { return c ? c->tls_err : ""; }

wf_http_req_t *wf_http_request(wf_http_client_t *c, const wf_http_req_opts_t *opts,
                               const wf_http_cbs_t *cbs, void *data) {
  wf_http_req_t *req;
  wf_buf_t w;
  if (!c || c->closing || !opts || !cbs || !cbs->on_done) return NULL;
  if (wf__http_request_build(c->o.host_header, opts, &w) < 0) return NULL;

  req = wf_calloc(1, sizeof(*req));
  req->client = c;
  wf__http_list_init(&req->done_link);
  wf__http_list_init(&req->h2_link);
  wf__http_list_push_back(&c->reqs, &req->link);
  req->cbs = *cbs;
  req->data = data;
  req->wbuf = w.data;
  req->wlen = w.len;
  req->timeout_ms = opts->timeout_ms;
  req->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
  req->max_header = opts->max_header ? opts->max_header : DEFAULT_MAX_HEADER;
  req->stream = opts->stream != 0;
  req->fresh = opts->fresh != 0;
  req->is_head = strcmp(opts->method, "HEAD") == 0;
  req->connect_deadline = uv_now(c->loop) + c->connect_timeout_ms;
  wf_buf_init(&req->body, req->max_body);
  wf_buf_init(&req->headbuf, SIZE_MAX); /* bounded by head_charge, or max_header over h2 */
  wf__http_dispatch(c, req);
  return req;
}

/* No path calls back into the user: failures are queued. */
void wf__http_dispatch(wf_http_client_t *c, wf_http_req_t *req) {
  wf__http_conn_t *conn;

  req->connect_deadline = uv_now(c->loop) + c->connect_timeout_ms;
  if (c->h2_state != H2_OFF && c->h2_state != H2_DECLINED && wf__http_h2_route(c, req)) return;
  conn = req->fresh ? NULL : pool_get(c);
  if (conn)
    wf__http_attach(conn, req);
  else
    start_connect(c, req, NULL, 0, 0);
}

void wf_http_req_pause(wf_http_req_t *req) {
  if (!req || req->paused) return;
  req->paused = 1;
  /* Over HTTP/2 the DATA that arrives is held (client-h2.c) and the
   * stream's window, not given back, stops the server. */
  if (req->conn && req->conn->state == CONN_H2) return;
  /* Inside the parser the body callback sees the flag and stops llhttp;
   * the read callback then stops reading. */
  if (req->conn && req->conn->state == CONN_ACTIVE && !req->conn->in_feed)
    wf__http_update_read_state(req->conn);
}

void wf_http_req_resume(wf_http_req_t *req) {
  if (!req || !req->paused) return;
  req->paused = 0;
  if (req->conn && req->conn->state == CONN_H2) {
    wf__http_h2_resume(req);
    return;
  }
  if (req->conn && req->conn->state == CONN_ACTIVE && !req->conn->in_feed)
    wf__http_update_read_state(req->conn);
}

void wf_http_req_cancel(wf_http_req_t *req) {
  wf__http_conn_t *conn;

  if (!req) return;
  switch (req->state) {
    case REQ_DELIVERING:
      return;
    case REQ_DONE:
      /* Already finished but not yet reported: report the cancel. */
      req->err = UV_ECANCELED;
      return;
    case REQ_CONNECTING:
    case REQ_HEAD:
    case REQ_BODY:
      break;
  }
  if (wf__http_h2_cancel(req)) return; /* a stream, or waiting for the h2 probe */
  conn = req->conn;
  if (conn) {
    detach(conn);
    wf__http_conn_close(conn);
  }
  wf__http_queue_done(req, UV_ECANCELED);
}

void wf_http_client_close(wf_http_client_t *c, void (*close_cb)(void *data), void *data) {
  wf__http_link_t *l;

  if (!c || c->closing) return;
  c->closing = 1;
  c->close_cb = close_cb;
  c->close_data = data;
  for (l = c->reqs.next; l != &c->reqs; l = l->next)
    wf_http_req_cancel(container_of(l, wf_http_req_t, link));
  while (!wf__http_list_empty(&c->pool))
    wf__http_conn_close(container_of(c->pool.next, wf__http_conn_t, pool_link));
  wf__http_h2_client_closing(c);
  /* on_idle delivers every on_done, then closes the idle handle; the last
   * handle's close callback frees the client. */
  uv_idle_start(&c->idle, on_idle);
}

/* ---- test seam ------------------------------------------------------------------------- */
int wf__http_h2_adopt(wf_http_client_t *c, uv_os_sock_t fd) {
  wf__http_conn_t *conn;
  int r;

  if (!c || c->closing || c->h2_state != H2_UNKNOWN || c->nconns > 0) {
    close(fd);
    return UV_EINVAL;
  }
  conn = conn_new(c);
  r = conn->io_inited ? uv_tcp_open(&conn->io.tcp, fd) : UV_ENOMEM;
  if (r == 0) r = wf__http_h2_become(conn);
  if (r == 0) r = wf__http_start_reading(conn);
  if (r < 0) {
    if (conn->state != CONN_CLOSING) wf__http_conn_close(conn);
    close(fd);
    return r;
  }
  return 0;
}
