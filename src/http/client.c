/*
 * http/client.c: the HTTP/1.1 client behind include/wf/http.h, on libuv and
 * llhttp.  It talks to one origin (TCP, TLS over TCP, or a unix socket) and
 * knows nothing of etcd or Docker.
 *
 * Design (shaped after h2o's lib/common/http1client.c):
 *
 * - Two objects.  A request (wf_http_req_t) lives from wf_http_request()
 *   until its on_done returns.  A connection (conn_t) owns the uv stream, one
 *   uv_timer, the llhttp parser and a fixed 64 KiB read buffer; it serves one
 *   request at a time and then either returns to the client's idle pool or
 *   closes.  Each has an explicit state enum (req_state, conn_state).
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
 *   update_read_state() is the one place that decides whether the socket is
 *   read and what the timer waits for (h2o update_read_state).
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
 *   never pooled.
 *
 * - TLS (https://, OpenSSL through tls.c): the socket is still a libuv
 *   stream on this loop; OpenSSL sits between two memory BIOs.  Ciphertext
 *   is read into a per-connection buffer (cbuf) and fed to OpenSSL, which
 *   hands back plaintext into rbuf for llhttp, so everything above (pause,
 *   drain, pooling) works on plaintext as before.  What OpenSSL queues for
 *   the peer is copied into a heap write request per flush (tls_wreq_t,
 *   freed in its callback) and uv_write'n; write_pending counts them.  The
 *   handshake runs after the TCP connect while the connection is still
 *   CONN_CONNECTING, under the same connect timer, and the request is
 *   attached only once it completed.  While a user pause stops llhttp, the
 *   ciphertext already read stays inside OpenSSL (tls_more) and the socket
 *   is not read, so memory stays bounded by one read plus one record.
 *   A connection closed in good health sends close_notify best-effort
 *   (uv_try_write: nothing waits for it); the SSL object dies with the
 *   connection, on every path, in conn_maybe_free.
 *
 * - Errors: llhttp parse errors and a 101 are WF_EPROTO; head over
 *   max_header or buffered body over max_body are WF_ETOOBIG; a connection
 *   closed before the response ended is UV_EOF; a TLS failure is WF_ETLS
 *   (reason in wf_http_client_last_error, logged once per new reason); the
 *   rest are libuv's codes.  Zero in any client or request option means its
 *   documented default.
 */
#include "wf/http.h"

#include <llhttp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tls-internal.h"
#include "wf/util.h"

#define READ_BUF_SIZE (64 * 1024)
/* Ciphertext read per socket read on a TLS connection: one full record
 * (16 KiB of payload plus header, MAC or tag and padding) per read. */
#define CIPHER_BUF_SIZE (16 * 1024 + 512)
#define TLS_ERR_LEN 256
#define MAX_ADDRS 8
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_MAX_IDLE 4
#define DEFAULT_IDLE_CLOSE_MS 30000
#define DEFAULT_MAX_BODY (8u * 1024 * 1024)
#define DEFAULT_MAX_HEADER (64u * 1024)
/* Bytes charged per header line on top of name and value (": " and CRLF). */
#define HEADER_LINE_OVERHEAD 4

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- intrusive circular list -------------------------------------------------- */
typedef struct link_s {
  struct link_s *prev, *next;
} link_t;

static void list_init(link_t *h) { h->prev = h->next = h; }
static int list_empty(const link_t *h) { return h->next == h; }
static void list_insert_after(link_t *pos, link_t *n) {
  n->prev = pos;
  n->next = pos->next;
  pos->next->prev = n;
  pos->next = n;
}
static void list_push_front(link_t *h, link_t *n) { list_insert_after(h, n); }
static void list_push_back(link_t *h, link_t *n) { list_insert_after(h->prev, n); }
static void list_remove(link_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}

/* ---- types ---------------------------------------------------------------------- */
enum origin_kind { ORIGIN_TCP, ORIGIN_UNIX };  /* https is ORIGIN_TCP with tls set */

enum conn_state {
  CONN_CONNECTING, /* resolving, connecting or in the TLS handshake, a request attached */
  CONN_ACTIVE,     /* request written (or being written), response being read */
  CONN_IDLE,       /* in the pool; read only to notice EOF */
  CONN_WRITE_WAIT, /* plain: response done, pooled once the write callback ran */
  CONN_CLOSING,    /* uv_close issued; freed when the last handle reports closed */
};

enum timer_mode {
  TM_NONE,
  TM_CONNECT,  /* connect (name resolution, TLS handshake) deadline */
  TM_RESPONSE, /* no response byte for timeout_ms */
  TM_IDLE,     /* pooled connection unused for idle_close_ms */
  TM_DRAIN,    /* 0 ms: re-feed bytes kept while the request was paused */
};

enum req_state {
  REQ_CONNECTING, /* waiting for its connection */
  REQ_HEAD,       /* written, waiting for the response head */
  REQ_BODY,       /* head delivered, reading the body */
  REQ_DONE,       /* on_done queued on client->done */
  REQ_DELIVERING, /* on_done running */
};

typedef struct conn_s conn_t;

struct wf_http_client_s {
  uv_loop_t *loop;
  char *origin;
  enum origin_kind kind;
  char *host;        /* TCP: name or address for getaddrinfo (no brackets) */
  char port_str[8];
  char *host_header; /* value of the Host header we send */
  char *path;        /* unix socket path */
  int have_addr;     /* host is a literal: addr is ready, no DNS */
  struct sockaddr_storage addr;
  int https;         /* the origin is https:// */
  wf__tls_ctx_t *tls; /* https: CA, client certificate and key, loaded at create */
  char tls_err[TLS_ERR_LEN];    /* wf_http_client_last_error */
  char tls_logged[TLS_ERR_LEN]; /* last reason logged at warn: repeats go to debug */

  uint64_t connect_timeout_ms;
  unsigned max_idle;
  uint64_t idle_close_ms;

  uv_idle_t idle;  /* delivers client->done */
  link_t reqs;     /* every request not yet freed */
  link_t done;     /* requests whose on_done is due */
  link_t conns;    /* every connection not yet freed */
  link_t pool;     /* idle connections, most recently used first */
  unsigned npool;
  unsigned nconns;

  int closing;
  int idle_closed;
  void (*close_cb)(void *data);
  void *close_data;
};

struct conn_s {
  wf_http_client_t *client;
  link_t link;      /* client->conns */
  link_t pool_link; /* client->pool while CONN_IDLE */
  enum conn_state state;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } io;
  uv_timer_t timer;
  enum timer_mode tmode;
  int open_handles;
  int io_inited;
  int gai_pending;
  int write_pending; /* uv_writes in flight (plain: at most one, wreq) */
  char *wait_wbuf;   /* CONN_WRITE_WAIT: the finished request's buffer, in wreq */
  int reading;
  int in_feed;  /* llhttp is on the stack: pause/resume only set flags */
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  uv_write_t wreq;
  struct sockaddr_storage *addrs; /* resolved addresses, tried in order */
  size_t naddrs, addr_idx;
  unsigned served; /* responses completed here; > 0 means reused */

  wf__tls_t *tls; /* https only, from the TCP connect on; freed with conn */
  char *cbuf;     /* https: ciphertext read buffer (CIPHER_BUF_SIZE) */
  int tls_more;   /* a pause stopped us reading plaintext out of OpenSSL */
  int tls_dead;   /* the session or the socket failed: no close_notify */

  wf_http_req_t *req;
  llhttp_t parser;
  /* per response */
  int got_bytes;    /* any byte of the response arrived */
  int head_done;
  int interim;      /* parsing a 1xx that is skipped */
  int res_complete; /* on_message_complete seen */
  int keep_alive;
  int cb_err;       /* error chosen inside a parser callback */
  size_t head_bytes, head_raw;
  size_t hdr_start;
  int parser_paused;         /* llhttp stopped by a user pause; drain before reading */
  size_t pend_off, pend_len; /* unparsed bytes in rbuf while parser_paused */
  char rbuf[READ_BUF_SIZE];
};

struct wf_http_req_s {
  wf_http_client_t *client;
  link_t link;      /* client->reqs */
  link_t done_link; /* client->done while REQ_DONE */
  enum req_state state;
  conn_t *conn;
  wf_http_cbs_t cbs;
  void *data;

  char *wbuf; /* the serialized request, kept for a retry */
  size_t wlen;
  uint64_t timeout_ms;
  size_t max_body, max_header;
  int stream;
  int fresh; /* never pooled: new connection, closed afterwards */
  int is_head;
  int paused;
  int retried;
  uint64_t connect_deadline;

  int err;
  int status;
  wf_buf_t body;
  wf_buf_t headbuf; /* "name\0value\0..." of the current head */
  size_t *hoffs;    /* name/value offsets into headbuf, 2 per header */
  size_t nhdr, hcap;
};

static void conn_close(conn_t *conn);
static void conn_fail(conn_t *conn, int err);
static void attach(conn_t *conn, wf_http_req_t *req);
static void start_connect(wf_http_client_t *c, wf_http_req_t *req,
                          struct sockaddr_storage *addrs, size_t naddrs, size_t idx);
static void update_read_state(conn_t *conn);
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
  list_remove(&req->link);
  free(req->wbuf);
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
  link_t batch;

  /* Deliver only what was due when we started: requests finished from
   * inside an on_done wait for the next iteration. */
  list_init(&batch);
  if (!list_empty(&c->done)) {
    batch.next = c->done.next;
    batch.prev = c->done.prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    list_init(&c->done);
  }
  while (!list_empty(&batch)) {
    wf_http_req_t *req = container_of(batch.next, wf_http_req_t, done_link);
    list_remove(&req->done_link);
    deliver(req);
  }
  if (list_empty(&c->done)) {
    uv_idle_stop(h);
    if (c->closing && !uv_is_closing((uv_handle_t *)h))
      uv_close((uv_handle_t *)h, on_idle_closed);
  }
}

static void queue_done(wf_http_req_t *req, int err) {
  wf_http_client_t *c = req->client;
  req->err = err;
  req->state = REQ_DONE;
  list_push_back(&c->done, &req->done_link);
  uv_idle_start(&c->idle, on_idle);
}

/* ---- connections: lifetime ----------------------------------------------------- */
static void conn_maybe_free(conn_t *conn) {
  wf_http_client_t *c = conn->client;
  if (conn->open_handles > 0 || conn->gai_pending) return;
  list_remove(&conn->link);
  free(conn->addrs);
  wf__tls_destroy(conn->tls);
  free(conn->cbuf);
  free(conn->wait_wbuf); /* NULL unless the write's callback never ran */
  free(conn);
  c->nconns--;
  client_maybe_free(c);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  conn_t *conn = h->data;
  conn->open_handles--;
  conn_maybe_free(conn);
}

static conn_t *conn_new(wf_http_client_t *c) {
  conn_t *conn = wf_calloc(1, sizeof(*conn));
  int r;

  conn->client = c;
  list_init(&conn->pool_link);
  list_push_back(&c->conns, &conn->link);
  c->nconns++;
  conn->state = CONN_CONNECTING;
  uv_timer_init(c->loop, &conn->timer);
  conn->timer.data = conn;
  conn->open_handles = 1;
  if (c->kind == ORIGIN_UNIX)
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

/* Tells a TLS peer we are done (close_notify), best-effort: uv_try_write
 * sends it now or never, so the close waits for nothing.  Not after a
 * failure: the session or the socket is already gone then. */
static void tls_close_notify(conn_t *conn) {
  char buf[256];
  size_t n;
  uv_buf_t b;

  if (!conn->tls || conn->tls_dead || !conn->io_inited) return;
  wf__tls_shutdown(conn->tls);
  n = wf__tls_out_pending(conn->tls);
  if (n == 0 || n > sizeof(buf)) return;
  n = wf__tls_out_take(conn->tls, buf, n);
  b = uv_buf_init(buf, (unsigned)n);
  (void)uv_try_write(&conn->io.stream, &b, 1);
}

/* Closes the connection; it must have no request attached.  Safe from any
 * callback: memory goes away in the handles' close callbacks. */
static void conn_close(conn_t *conn) {
  if (conn->state == CONN_CLOSING) return;
  if (conn->state == CONN_IDLE) {
    list_remove(&conn->pool_link);
    conn->client->npool--;
  }
  tls_close_notify(conn);
  conn->state = CONN_CLOSING;
  conn->tmode = TM_NONE;
  if (conn->gai_pending) uv_cancel((uv_req_t *)&conn->gai);
  uv_close((uv_handle_t *)&conn->timer, on_conn_handle_closed);
  if (conn->io_inited) uv_close(&conn->io.handle, on_conn_handle_closed);
}

static void detach(conn_t *conn) {
  wf_http_req_t *req = conn->req;
  conn->req = NULL;
  if (req) req->conn = NULL;
}

/* ---- timer ------------------------------------------------------------------------- */
static void on_timer(uv_timer_t *t);

static void timer_arm(conn_t *conn, enum timer_mode mode, uint64_t ms) {
  conn->tmode = mode;
  uv_timer_start(&conn->timer, on_timer, ms, 0);
}

static void timer_disarm(conn_t *conn) {
  conn->tmode = TM_NONE;
  uv_timer_stop(&conn->timer);
}

/* ---- pool --------------------------------------------------------------------------- */
static void pool_put(conn_t *conn) {
  wf_http_client_t *c = conn->client;

  conn->state = CONN_IDLE;
  conn->served++;
  conn->parser_paused = 0;
  conn->pend_len = conn->pend_off = 0;
  conn->tls_more = 0;
  list_push_front(&c->pool, &conn->pool_link);
  c->npool++;
  while (c->npool > c->max_idle)
    conn_close(container_of(c->pool.prev, conn_t, pool_link));
  if (conn->state != CONN_IDLE) return;
  update_read_state(conn);
  if (conn->state != CONN_IDLE) return;
  timer_arm(conn, TM_IDLE, c->idle_close_ms);
  /* An idle pool alone should not keep the loop running. */
  uv_unref(&conn->io.handle);
  uv_unref((uv_handle_t *)&conn->timer);
}

static conn_t *pool_get(wf_http_client_t *c) {
  conn_t *conn;
  if (list_empty(&c->pool)) return NULL;
  conn = container_of(c->pool.next, conn_t, pool_link);
  list_remove(&conn->pool_link);
  c->npool--;
  uv_ref(&conn->io.handle);
  uv_ref((uv_handle_t *)&conn->timer);
  timer_disarm(conn);
  return conn;
}

/* ---- request completion --------------------------------------------------------- */
/* Finishes the attached request with err and disposes of the connection. */
static void complete_req(conn_t *conn, int err) {
  wf_http_req_t *req = conn->req;
  wf_http_client_t *c = conn->client;
  int reuse = err == 0 && conn->keep_alive && !c->closing && !req->fresh &&
              (!conn->write_pending || !conn->tls);

  /* TLS works again: the next failure is news and is logged at warn. */
  if (err == 0 && conn->tls) c->tls_logged[0] = '\0';
  detach(conn);
  queue_done(req, err);
  if (!reuse) {
    conn_close(conn);
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

/* Text for our log lines: WF_E* codes and libuv's own. */
static const char *errstr(int err) {
  return err <= WF_EPROTO ? wf_strerror(err) : uv_strerror(err);
}

static int retryable(int err) {
  return err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE || err == UV_ECONNABORTED;
}

/* A transport or protocol failure on conn.  A reused connection that died
 * before answering was most likely closed by the server while idle, so the
 * request gets one more try on a fresh connection. */
static void conn_fail(conn_t *conn, int err) {
  wf_http_req_t *req = conn->req;
  wf_http_client_t *c = conn->client;

  if (!req) {
    conn_close(conn);
    return;
  }
  if (retryable(err) && conn->served > 0 && !conn->got_bytes && !req->retried && !c->closing) {
    wf_debug(NULL, "http %s: reused connection failed (%s), retrying", c->origin,
             errstr(err));
    detach(conn);
    conn_close(conn);
    req->retried = 1;
    req->connect_deadline = uv_now(c->loop) + c->connect_timeout_ms;
    start_connect(c, req, NULL, 0, 0);
    return;
  }
  wf_debug(NULL, "http %s: request failed: %s", c->origin, errstr(err));
  complete_req(conn, err);
}

/* ---- parser callbacks -------------------------------------------------------------- */
/* 1 when a user callback cancelled the request or closed the client. */
static int gone(conn_t *conn, wf_http_req_t *req) {
  return conn->state != CONN_ACTIVE || conn->req != req;
}

static int head_charge(conn_t *conn, size_t n) {
  conn->head_bytes += n;
  if (conn->head_bytes > conn->req->max_header) {
    conn->cb_err = WF_ETOOBIG;
    return -1;
  }
  return 0;
}

static int on_message_begin_cb(llhttp_t *p) {
  conn_t *conn = p->data;
  wf_http_req_t *req = conn->req;
  wf_buf_reset(&req->headbuf);
  req->nhdr = 0;
  conn->hdr_start = 0;
  return 0;
}

static int on_status_cb(llhttp_t *p, const char *at, size_t n) {
  (void)at;
  return head_charge(p->data, n);
}

static int on_header_span(llhttp_t *p, const char *at, size_t n) {
  conn_t *conn = p->data;
  if (head_charge(conn, n)) return -1;
  /* After the head these are trailers: bounded, accepted and ignored. */
  if (conn->head_done) return 0;
  wf_buf_append(&conn->req->headbuf, at, n);
  return 0;
}

static int on_header_field_complete_cb(llhttp_t *p) {
  conn_t *conn = p->data;
  wf_http_req_t *req = conn->req;
  if (head_charge(conn, HEADER_LINE_OVERHEAD)) return -1;
  if (conn->head_done) return 0;
  if (2 * (req->nhdr + 1) > req->hcap) {
    req->hcap = req->hcap ? 2 * req->hcap : 32;
    req->hoffs = wf_realloc(req->hoffs, req->hcap * sizeof(*req->hoffs));
  }
  req->hoffs[2 * req->nhdr] = conn->hdr_start;
  wf_buf_append(&req->headbuf, "", 1);
  conn->hdr_start = req->headbuf.len;
  return 0;
}

static int on_header_value_complete_cb(llhttp_t *p) {
  conn_t *conn = p->data;
  wf_http_req_t *req = conn->req;
  if (conn->head_done) return 0;
  req->hoffs[2 * req->nhdr + 1] = conn->hdr_start;
  wf_buf_append(&req->headbuf, "", 1);
  conn->hdr_start = req->headbuf.len;
  req->nhdr++;
  return 0;
}

static int on_headers_complete_cb(llhttp_t *p) {
  conn_t *conn = p->data;
  wf_http_req_t *req = conn->req;
  int status = llhttp_get_status_code(p);

  /* llhttp takes a status of 1 to 3 digits; HTTP has exactly 3 (RFC 9110
   * §15).  "HTTP/1.1 0 OK" would otherwise complete with status 0, which
   * on_done reserves for "no head arrived". */
  if (status < 100) {
    conn->cb_err = WF_EPROTO;
    return -1;
  }
  if (status < 200) {
    /* 100 Continue and friends precede the real response; we never ask
     * for an upgrade, so 101 is a broken peer. */
    if (status == 101) {
      conn->cb_err = WF_EPROTO;
      return -1;
    }
    conn->interim = 1;
    /* A 1xx ends with its head (RFC 9110 §15.2), whatever Content-Length
     * or Transfer-Encoding it carries; llhttp would read a body for it
     * (all but 100-103), which would reach on_data before any on_head or
     * land in front of the real body.  1 = "no body follows". */
    return 1;
  }
  conn->head_done = 1;
  req->status = status;
  req->state = REQ_BODY;
  if (req->cbs.on_head) {
    wf_http_header_t *h = wf_calloc(req->nhdr ? req->nhdr : 1, sizeof(*h));
    size_t i;
    for (i = 0; i < req->nhdr; i++) {
      h[i].name = req->headbuf.data + req->hoffs[2 * i];
      h[i].value = req->headbuf.data + req->hoffs[2 * i + 1];
    }
    req->cbs.on_head(req, status, h, req->nhdr, req->data);
    free(h);
    if (gone(conn, req)) return -1;
  }
  if (req->is_head) return 1; /* no body follows whatever the headers say */
  if (req->paused) return HPE_PAUSED;
  return 0;
}

static int on_body_cb(llhttp_t *p, const char *at, size_t n) {
  conn_t *conn = p->data;
  wf_http_req_t *req = conn->req;

  if (req->stream) {
    if (n > 0 && req->cbs.on_data) {
      req->cbs.on_data(req, at, n, req->data);
      if (gone(conn, req)) return -1;
    }
  } else if (wf_buf_append(&req->body, at, n) != 0) {
    conn->cb_err = WF_ETOOBIG;
    return -1;
  }
  /* llhttp resumes right after this span, so the rest of the read buffer
   * stays unparsed until wf_http_req_resume. */
  return req->paused ? HPE_PAUSED : 0;
}

static int on_message_complete_cb(llhttp_t *p) {
  conn_t *conn = p->data;
  if (conn->interim) {
    conn->interim = 0;
    conn->head_bytes = 0;
    conn->head_raw = 0;
    return 0;
  }
  /* Read now: llhttp resets the flags this depends on after we return. */
  conn->keep_alive = llhttp_should_keep_alive(p);
  conn->res_complete = 1;
  /* Stop here: bytes after the response belong to no request. */
  return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
  .on_message_begin = on_message_begin_cb,
  .on_status = on_status_cb,
  .on_header_field = on_header_span,
  .on_header_value = on_header_span,
  .on_header_field_complete = on_header_field_complete_cb,
  .on_header_value_complete = on_header_value_complete_cb,
  .on_headers_complete = on_headers_complete_cb,
  .on_body = on_body_cb,
  .on_message_complete = on_message_complete_cb,
};

/* ---- reading ----------------------------------------------------------------------- */
/* Parses n bytes at p (which lies in conn->rbuf). */
static void feed(conn_t *conn, const char *p, size_t n) {
  wf_http_req_t *req = conn->req;
  llhttp_errno_t e;
  const char *stop;

  conn->in_feed = 1;
  e = llhttp_execute(&conn->parser, p, n);
  conn->in_feed = 0;
  if (gone(conn, req)) return;
  if (e == HPE_OK) {
    if (!conn->head_done) {
      conn->head_raw += n;
      if (conn->head_raw > req->max_header) conn_fail(conn, WF_ETOOBIG);
    }
    return;
  }
  if (e != HPE_PAUSED) {
    wf_debug(NULL, "http %s: parse error %s: %s", conn->client->origin, llhttp_errno_name(e),
             llhttp_get_error_reason(&conn->parser));
    conn_fail(conn, conn->cb_err ? conn->cb_err : WF_EPROTO);
    return;
  }
  stop = llhttp_get_error_pos(&conn->parser);
  if (conn->res_complete) {
    /* Bytes after the response belong to no request: such a connection is
     * not reused.  (Over TLS, records still inside OpenSSL are looked at
     * once the connection is pooled: see tls_pump.) */
    if (stop != p + n) conn->keep_alive = 0;
    complete_req(conn, 0);
    return;
  }
  /* The user paused: keep what llhttp has not seen for wf_http_req_resume. */
  llhttp_resume(&conn->parser);
  conn->parser_paused = 1;
  conn->pend_off = (size_t)(stop - conn->rbuf);
  conn->pend_len = (size_t)(p + n - stop);
}

static void on_eof(conn_t *conn, int err) {
  wf_http_req_t *req = conn->req;

  if (err == UV_EOF && conn->got_bytes) {
    /* A body delimited by the close completes here; anything else was cut. */
    conn->in_feed = 1;
    llhttp_finish(&conn->parser);
    conn->in_feed = 0;
    if (gone(conn, req)) return;
    if (conn->res_complete) {
      conn->keep_alive = 0;
      complete_req(conn, 0);
      return;
    }
  }
  conn_fail(conn, err);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  conn_t *conn = h->data;
  (void)hint;
  /* Reading is stopped while parser_paused, so the buffer is free here.
   * TLS reads ciphertext apart: rbuf then holds the plaintext OpenSSL
   * hands out. */
  if (conn->cbuf)
    *buf = uv_buf_init(conn->cbuf, CIPHER_BUF_SIZE);
  else
    *buf = uv_buf_init(conn->rbuf, sizeof(conn->rbuf));
}

/* ---- TLS ---------------------------------------------------------------------------- */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* One flush of what OpenSSL queued for the peer; owns its bytes (freed in
 * on_tls_write, which libuv calls for every write, with UV_ECANCELED after
 * uv_close, and before the close callback that frees the connection). */
typedef struct tls_wreq_s {
  uv_write_t req;
  conn_t *conn;
  char data[];
} tls_wreq_t;

static void on_tls_write(uv_write_t *w, int status) {
  tls_wreq_t *wr = container_of(w, tls_wreq_t, req);
  conn_t *conn = wr->conn;

  free(wr);
  conn->write_pending--;
  if (conn->state == CONN_CLOSING) return;
  if (status < 0) {
    conn->tls_dead = 1;
    conn_fail(conn, status); /* closes an idle one, fails a request */
    return;
  }
  /* The response timeout counts from the end of a (possibly long) upload. */
  if (conn->state == CONN_ACTIVE && conn->write_pending == 0 && !conn->in_feed)
    update_read_state(conn);
}

/* Sends what OpenSSL queued (handshake flights, the request, alerts).
 * Returns 0, or the uv_write error after the connection was failed with it. */
static int tls_flush(conn_t *conn) {
  tls_wreq_t *wr;
  uv_buf_t b;
  size_t n;
  int r;

  if (conn->state == CONN_CLOSING) return 0;
  n = wf__tls_out_pending(conn->tls);
  if (n == 0) return 0;
  wr = wf_malloc(sizeof(*wr) + n);
  wr->conn = conn;
  n = wf__tls_out_take(conn->tls, wr->data, n);
  b = uv_buf_init(wr->data, (unsigned)n);
  r = uv_write(&wr->req, &conn->io.stream, &b, 1, on_tls_write);
  if (r < 0) {
    free(wr);
    conn->tls_dead = 1;
    conn_fail(conn, r);
    return r;
  }
  conn->write_pending++;
  return 0;
}

/* The TLS session failed (why: its reason): keep it for
 * wf_http_client_last_error, log it, and fail the connection with WF_ETLS.
 * Each new reason is logged once at warn; a repeat (every reconnect of a
 * watch to a server that keeps refusing us) goes to debug until a request
 * succeeds over TLS again. */
static void tls_fail(conn_t *conn, const char *why) {
  wf_http_client_t *c = conn->client;

  conn->tls_dead = 1;
  snprintf(c->tls_err, sizeof(c->tls_err), "%s", why);
  if (!conn->req) {
    wf_debug(NULL, "http %s: pooled connection dropped (%s)", c->origin, why);
    conn_close(conn);
    return;
  }
  if (strcmp(c->tls_logged, why) != 0) {
    snprintf(c->tls_logged, sizeof(c->tls_logged), "%s", why);
    wf_warn(NULL, "http %s: %s", c->origin, why);
  } else {
    wf_debug(NULL, "http %s: %s", c->origin, why);
  }
  conn_fail(conn, WF_ETLS);
}

/* A record arrived on a pooled connection: session tickets and key updates
 * keep it usable; data, close_notify or an error do not. */
static void tls_idle_read(conn_t *conn) {
  ssize_t n = wf__tls_read(conn->tls, conn->rbuf, sizeof(conn->rbuf));

  if (tls_flush(conn) != 0 || conn->state != CONN_IDLE) return;
  if (n == 0) return;
  conn->tls_dead = n < 0;
  wf_debug(NULL, "http %s: pooled connection dropped (%s)", conn->client->origin,
           n > 0 ? "unexpected bytes" : n == UV_EOF ? "close_notify" : wf__tls_error(conn->tls));
  conn_close(conn);
}

/* Moves plaintext out of OpenSSL into llhttp until OpenSSL needs more
 * ciphertext, the user pauses (tls_more: resumed through drain), or the
 * response ends. */
static void tls_pump(conn_t *conn) {
  wf_http_req_t *req = conn->req;
  ssize_t n;

  conn->tls_more = 0;
  for (;;) {
    if (req->paused || conn->parser_paused) {
      conn->tls_more = 1;
      break;
    }
    n = wf__tls_read(conn->tls, conn->rbuf, sizeof(conn->rbuf));
    if (n == 0) break;
    if (n < 0) {
      /* A fatal error may have queued an alert for the peer. */
      if (tls_flush(conn) != 0) return;
      if (n == UV_EOF) {
        /* close_notify: a body delimited by the close ends here. */
        conn->tls_dead = 1;
        on_eof(conn, UV_EOF);
      } else {
        tls_fail(conn, wf__tls_error(conn->tls));
      }
      return;
    }
    conn->got_bytes = 1;
    feed(conn, conn->rbuf, (size_t)n);
    if (gone(conn, req)) break;
  }
  /* The response ended and the connection is pooled, but the same read
   * brought more records (typically the server's close_notify right behind
   * its answer): judge them now, as if they came while idle, rather than
   * hand out a connection that is already closed. */
  if (conn->state == CONN_IDLE && wf__tls_buffered(conn->tls)) {
    tls_idle_read(conn);
    return;
  }
  tls_flush(conn);
}

/* Advances the handshake; once it is done the request goes out. */
static void tls_handshake_step(conn_t *conn) {
  int r = wf__tls_handshake(conn->tls);

  if (tls_flush(conn) != 0) return;
  if (r == 1) return; /* more from the server; the connect timer still runs */
  if (r < 0) {
    tls_fail(conn, wf__tls_error(conn->tls));
    return;
  }
  timer_disarm(conn);
  wf_debug(NULL, "http %s: TLS session established", conn->client->origin);
  attach(conn, conn->req);
}

static void tls_on_read(conn_t *conn, ssize_t nread, const uv_buf_t *buf) {
  if (nread < 0) {
    conn->tls_dead = 1;
    if (conn->state == CONN_IDLE) {
      wf_debug(NULL, "http %s: pooled connection dropped (%s)", conn->client->origin,
               errstr((int)nread));
      conn_close(conn);
    } else if (conn->state == CONN_CONNECTING && nread == UV_EOF) {
      /* Typically a server that does not speak TLS on this port, or one
       * that refused our hello without an alert. */
      tls_fail(conn, "TLS handshake failed: the server closed the connection");
    } else if (conn->state == CONN_CONNECTING) {
      conn_fail(conn, (int)nread);
    } else {
      on_eof(conn, (int)nread);
    }
    return;
  }
  if (wf__tls_feed(conn->tls, buf->base, (size_t)nread) < 0) {
    tls_fail(conn, wf__tls_error(conn->tls));
    return;
  }
  switch (conn->state) {
    case CONN_CONNECTING:
      tls_handshake_step(conn);
      break;
    case CONN_IDLE:
      tls_idle_read(conn);
      break;
    case CONN_ACTIVE:
      tls_pump(conn);
      if (conn->state == CONN_ACTIVE) update_read_state(conn);
      break;
    case CONN_WRITE_WAIT: /* plain connections only */
    case CONN_CLOSING:
      break;
  }
}

/* TCP is up on an https connection: start the session and its handshake.
 * Reading starts now (update_read_state only reads for a request or the
 * pool); the connect timer keeps running until the handshake is done. */
static void tls_start(conn_t *conn) {
  wf_http_client_t *c = conn->client;
  char err[TLS_ERR_LEN];
  int r;

  conn->tls = wf__tls_create(c->tls, c->host, err, sizeof(err));
  if (!conn->tls) {
    tls_fail(conn, err);
    return;
  }
  conn->cbuf = wf_malloc(CIPHER_BUF_SIZE);
  r = uv_read_start(&conn->io.stream, on_alloc, on_read);
  if (r < 0) {
    conn_fail(conn, r);
    return;
  }
  conn->reading = 1;
  tls_handshake_step(conn);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *conn = s->data;

  if (nread == 0 || conn->state == CONN_CLOSING) return;
  if (conn->tls) {
    tls_on_read(conn, nread, buf);
    return;
  }
  if (conn->state == CONN_IDLE || conn->state == CONN_WRITE_WAIT) {
    /* EOF, an error or bytes nobody asked for: unusable either way. */
    wf_debug(NULL, "http %s: pooled connection dropped (%s)", conn->client->origin,
             nread < 0 ? errstr((int)nread) : "unexpected bytes");
    conn_close(conn);
    return;
  }
  if (nread < 0) {
    on_eof(conn, (int)nread);
    return;
  }
  conn->got_bytes = 1;
  feed(conn, buf->base, (size_t)nread);
  if (conn->state == CONN_ACTIVE) update_read_state(conn);
}

/* The one place that decides whether the socket is read and what the timer
 * waits for, given the connection state and the request's pause flag. */
static void update_read_state(conn_t *conn) {
  wf_http_req_t *req = conn->req;
  int want;

  if (conn->state == CONN_IDLE)
    want = 1;
  else if (conn->state == CONN_ACTIVE)
    want = !req->paused && !conn->parser_paused && !conn->tls_more;
  else
    return;
  if (want && !conn->reading) {
    int r = uv_read_start(&conn->io.stream, on_alloc, on_read);
    if (r < 0) {
      conn_fail(conn, r);
      return;
    }
    conn->reading = 1;
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

static void drain(conn_t *conn) {
  if (conn->parser_paused) {
    const char *p = conn->rbuf + conn->pend_off;
    size_t n = conn->pend_len;

    conn->parser_paused = 0;
    conn->pend_off = conn->pend_len = 0;
    feed(conn, p, n);
  }
  /* Then the plaintext OpenSSL still holds from reads before the pause. */
  if (conn->state == CONN_ACTIVE && conn->tls) tls_pump(conn);
  if (conn->state == CONN_ACTIVE) update_read_state(conn);
}

static void on_timer(uv_timer_t *t) {
  conn_t *conn = t->data;
  enum timer_mode mode = conn->tmode;

  conn->tmode = TM_NONE;
  switch (mode) {
    case TM_CONNECT:
    case TM_RESPONSE:
      conn_fail(conn, UV_ETIMEDOUT);
      break;
    case TM_IDLE:
      conn_close(conn);
      break;
    case TM_DRAIN:
      drain(conn);
      break;
    case TM_NONE:
      break;
  }
}

/* ---- writing and connecting ------------------------------------------------------- */
static void on_write(uv_write_t *w, int status) {
  conn_t *conn = container_of(w, conn_t, wreq);

  conn->write_pending--;
  free(conn->wait_wbuf);
  conn->wait_wbuf = NULL;
  if (conn->state == CONN_WRITE_WAIT) {
    timer_disarm(conn);
    if (status < 0 || conn->client->closing)
      conn_close(conn);
    else
      pool_put(conn);
    return;
  }
  if (conn->state != CONN_ACTIVE) return;
  if (status < 0) {
    conn_fail(conn, status);
    return;
  }
  /* The response timeout counts from the end of a (possibly long) upload. */
  if (!conn->in_feed) update_read_state(conn);
}

/* Puts req on a connected conn and sends it. */
static void attach(conn_t *conn, wf_http_req_t *req) {
  uv_buf_t b;
  int r;

  conn->state = CONN_ACTIVE;
  conn->req = req;
  req->conn = conn;
  req->state = REQ_HEAD;
  llhttp_init(&conn->parser, HTTP_RESPONSE, &parser_settings);
  conn->parser.data = conn;
  conn->got_bytes = conn->head_done = conn->interim = 0;
  conn->res_complete = conn->keep_alive = conn->cb_err = 0;
  conn->head_bytes = conn->head_raw = conn->hdr_start = 0;
  conn->parser_paused = 0;
  conn->pend_off = conn->pend_len = 0;
  conn->tls_more = 0;
  if (conn->tls) {
    /* Encrypted into OpenSSL's queue, then sent by tls_flush; the plain
     * request stays in req->wbuf for a retry. */
    if (wf__tls_write(conn->tls, req->wbuf, req->wlen) < 0) {
      tls_fail(conn, wf__tls_error(conn->tls));
      return;
    }
    if (tls_flush(conn) != 0) return;
    update_read_state(conn);
    return;
  }
  b = uv_buf_init(req->wbuf, (unsigned)req->wlen);
  r = uv_write(&conn->wreq, &conn->io.stream, &b, 1, on_write);
  if (r < 0) {
    conn_fail(conn, r);
    return;
  }
  conn->write_pending++;
  update_read_state(conn);
}

static void connect_next(conn_t *conn);

/* A connect attempt failed: try the next resolved address, if any. */
static void connect_failed(conn_t *conn, int err) {
  if (err != UV_ETIMEDOUT && conn->addrs && conn->addr_idx + 1 < conn->naddrs) {
    connect_next(conn);
    return;
  }
  conn_fail(conn, err);
}

static void on_connect(uv_connect_t *cr, int status) {
  conn_t *conn = container_of(cr, conn_t, creq);

  if (conn->state == CONN_CLOSING) return;
  if (status < 0) {
    connect_failed(conn, status);
    return;
  }
  if (conn->client->kind == ORIGIN_TCP) uv_tcp_nodelay(&conn->io.tcp, 1);
  if (conn->client->tls) {
    tls_start(conn);
    return;
  }
  timer_disarm(conn);
  attach(conn, conn->req);
}

static void connect_addr(conn_t *conn, const struct sockaddr *sa) {
  int r = uv_tcp_connect(&conn->creq, &conn->io.tcp, sa, on_connect);
  if (r < 0) connect_failed(conn, r);
}

/* A libuv tcp handle cannot connect twice, so each address gets its own
 * connection; the request and the address list move over. */
static void connect_next(conn_t *conn) {
  wf_http_req_t *req = conn->req;
  struct sockaddr_storage *addrs = conn->addrs;

  conn->addrs = NULL;
  detach(conn);
  conn_close(conn);
  start_connect(conn->client, req, addrs, conn->naddrs, conn->addr_idx + 1);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res) {
  conn_t *conn = container_of(g, conn_t, gai);
  struct addrinfo *ai;
  size_t n = 0;

  conn->gai_pending = 0;
  if (conn->state == CONN_CLOSING) {
    if (res) uv_freeaddrinfo(res);
    conn_maybe_free(conn);
    return;
  }
  if (status < 0) {
    conn_fail(conn, status);
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
    conn_fail(conn, UV_EAI_NONAME);
    return;
  }
  connect_addr(conn, (const struct sockaddr *)&conn->addrs[0]);
}

/* Opens a fresh connection for req.  addrs (owned, may be NULL) continues an
 * address list at idx. */
static void start_connect(wf_http_client_t *c, wf_http_req_t *req,
                          struct sockaddr_storage *addrs, size_t naddrs, size_t idx) {
  conn_t *conn = conn_new(c);
  uint64_t now = uv_now(c->loop);
  int r;

  conn->req = req;
  req->conn = conn;
  req->state = REQ_CONNECTING;
  conn->addrs = addrs;
  conn->naddrs = naddrs;
  conn->addr_idx = idx;
  if (!conn->io_inited) {
    conn_fail(conn, UV_ENOMEM);
    return;
  }
  timer_arm(conn, TM_CONNECT, req->connect_deadline > now ? req->connect_deadline - now : 1);
  if (c->kind == ORIGIN_UNIX) {
    /* Errors (ENOENT, ECONNREFUSED) come back through on_connect. */
    uv_pipe_connect(&conn->creq, &conn->io.pipe, c->path, on_connect);
    return;
  }
  if (addrs) {
    connect_addr(conn, (const struct sockaddr *)&addrs[idx]);
    return;
  }
  if (c->have_addr) {
    connect_addr(conn, (const struct sockaddr *)&c->addr);
    return;
  }
  {
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    r = uv_getaddrinfo(c->loop, &conn->gai, on_resolved, c->host, c->port_str, &hints);
    if (r < 0) {
      conn_fail(conn, r);
      return;
    }
    conn->gai_pending = 1;
  }
}

/* ---- origin parsing ---------------------------------------------------------------- */
static int parse_port(const char *s, size_t n, char *out, size_t outlen) {
  unsigned long v = 0;
  size_t i;
  if (n == 0 || n > 5) return -1;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (unsigned long)(s[i] - '0');
  }
  if (v == 0 || v > 65535) return -1;
  snprintf(out, outlen, "%lu", v);
  return 0;
}

static int parse_origin(wf_http_client_t *c, const char *origin) {
  const char *auth, *end, *host, *port = NULL;
  size_t hostlen, portlen = 0;

  if (strncmp(origin, "unix://", 7) == 0) {
    struct sockaddr_un sun;
    const char *path = origin + 7;
    if (path[0] != '/' || strlen(path) >= sizeof(sun.sun_path)) return -1;
    c->kind = ORIGIN_UNIX;
    c->path = wf_strdup(path);
    /* dockerd needs a Host header but ignores its value. */
    c->host_header = wf_strdup("localhost");
    return 0;
  }
  if (strncasecmp(origin, "http://", 7) == 0) {
    auth = origin + 7;
  } else if (strncasecmp(origin, "https://", 8) == 0) {
    auth = origin + 8;
    c->https = 1;
  } else {
    return -1;
  }
  end = auth + strlen(auth);
  if (end > auth && end[-1] == '/') end--;
  if (memchr(auth, '/', (size_t)(end - auth)) || memchr(auth, '@', (size_t)(end - auth)))
    return -1;
  if (auth[0] == '[') {
    const char *rb = memchr(auth, ']', (size_t)(end - auth));
    if (!rb) return -1;
    host = auth + 1;
    hostlen = (size_t)(rb - host);
    if (rb + 1 < end) {
      if (rb[1] != ':') return -1;
      port = rb + 2;
      portlen = (size_t)(end - port);
    }
  } else {
    const char *colon = memchr(auth, ':', (size_t)(end - auth));
    host = auth;
    if (colon) {
      hostlen = (size_t)(colon - auth);
      port = colon + 1;
      portlen = (size_t)(end - port);
    } else {
      hostlen = (size_t)(end - auth);
    }
  }
  if (hostlen == 0) return -1;
  if (port) {
    if (parse_port(port, portlen, c->port_str, sizeof(c->port_str)) < 0) return -1;
  } else {
    strcpy(c->port_str, c->https ? "443" : "80");
  }
  c->kind = ORIGIN_TCP;
  c->host = wf_strndup(host, hostlen);
  c->host_header = wf_strndup(auth, (size_t)(end - auth));
  if (uv_ip4_addr(c->host, atoi(c->port_str), (struct sockaddr_in *)&c->addr) == 0 ||
      uv_ip6_addr(c->host, atoi(c->port_str), (struct sockaddr_in6 *)&c->addr) == 0)
    c->have_addr = 1;
  else if (auth[0] == '[')
    return -1; /* brackets hold only an IPv6 literal */
  return 0;
}

/* ---- public API --------------------------------------------------------------------- */
static void client_free(wf_http_client_t *c) {
  wf__tls_ctx_destroy(c->tls);
  free(c->origin);
  free(c->host);
  free(c->host_header);
  free(c->path);
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
  if (parse_origin(c, origin) < 0) {
    snprintf(err, errlen, "\"%.200s\" is not an http://host:port, https://host:port or "
             "unix:///path origin", origin);
    client_free(c);
    return NULL;
  }
  if (c->https) {
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
  list_init(&c->reqs);
  list_init(&c->done);
  list_init(&c->conns);
  list_init(&c->pool);
  uv_idle_init(loop, &c->idle);
  c->idle.data = c;
  return c;
}

const char *wf_http_client_origin(const wf_http_client_t *c) { return c ? c->origin : NULL; }

const char *wf_http_client_last_error(const wf_http_client_t *c) { return c ? c->tls_err : ""; }

/* 1 if s is non-empty and holds none of the bytes in bad (nor controls). */
static int clean_token(const char *s, const char *bad) {
  const unsigned char *p;
  if (!s || !*s) return 0;
  for (p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f || strchr(bad, *p)) return 0;
  return 1;
}

static int clean_value(const char *s) {
  const unsigned char *p;
  if (!s) return 0;
  for (p = (const unsigned char *)s; *p; p++)
    if (*p == '\r' || *p == '\n') return 0;
  return 1;
}

static int method_has_body(const char *m) {
  return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

wf_http_req_t *wf_http_request(wf_http_client_t *c, const wf_http_req_opts_t *opts,
                               const wf_http_cbs_t *cbs, void *data) {
  wf_http_req_t *req;
  wf_buf_t w;
  int has_host = 0;
  size_t i;
  conn_t *conn;

  if (!c || c->closing || !opts || !cbs || !cbs->on_done) return NULL;
  if (!clean_token(opts->method, " \t:") || !clean_token(opts->path, " \t")) return NULL;
  if (!opts->body && opts->body_len > 0) return NULL;
  if (!opts->headers && opts->nheaders > 0) return NULL;
  /* uv_buf_t's length is an unsigned int; leave room for the head. */
  if (opts->body_len > (size_t)INT32_MAX) return NULL;
  for (i = 0; i < opts->nheaders; i++) {
    const wf_http_header_t *h = &opts->headers[i];
    if (!clean_token(h->name, " \t:") || !clean_value(h->value)) return NULL;
    if (strcasecmp(h->name, "Host") == 0) has_host = 1;
  }

  wf_buf_init(&w, SIZE_MAX);
  wf_buf_printf(&w, "%s %s HTTP/1.1\r\n", opts->method, opts->path);
  if (!has_host) wf_buf_printf(&w, "Host: %s\r\n", c->host_header);
  for (i = 0; i < opts->nheaders; i++) {
    const wf_http_header_t *h = &opts->headers[i];
    /* Framing and connection handling are ours. */
    if (strcasecmp(h->name, "Content-Length") == 0 || strcasecmp(h->name, "Connection") == 0)
      continue;
    wf_buf_printf(&w, "%s: %s\r\n", h->name, h->value);
  }
  wf_buf_printf(&w, "Connection: keep-alive\r\n");
  if (opts->body || method_has_body(opts->method))
    wf_buf_printf(&w, "Content-Length: %zu\r\n", opts->body_len);
  wf_buf_append(&w, "\r\n", 2);
  if (opts->body_len > 0) wf_buf_append(&w, opts->body, opts->body_len);

  req = wf_calloc(1, sizeof(*req));
  req->client = c;
  list_init(&req->done_link);
  list_push_back(&c->reqs, &req->link);
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
  wf_buf_init(&req->headbuf, SIZE_MAX); /* bounded by head_charge */

  /* Neither path calls back into the user: failures are queued. */
  conn = req->fresh ? NULL : pool_get(c);
  if (conn)
    attach(conn, req);
  else
    start_connect(c, req, NULL, 0, 0);
  return req;
}

void wf_http_req_pause(wf_http_req_t *req) {
  if (!req || req->paused) return;
  req->paused = 1;
  /* Inside the parser the body callback sees the flag and stops llhttp;
   * feed() then stops reading. */
  if (req->conn && req->conn->state == CONN_ACTIVE && !req->conn->in_feed)
    update_read_state(req->conn);
}

void wf_http_req_resume(wf_http_req_t *req) {
  if (!req || !req->paused) return;
  req->paused = 0;
  if (req->conn && req->conn->state == CONN_ACTIVE && !req->conn->in_feed)
    update_read_state(req->conn);
}

void wf_http_req_cancel(wf_http_req_t *req) {
  conn_t *conn;

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
  conn = req->conn;
  if (conn) {
    detach(conn);
    conn_close(conn);
  }
  queue_done(req, UV_ECANCELED);
}

void wf_http_client_close(wf_http_client_t *c, void (*close_cb)(void *data), void *data) {
  link_t *l;

  if (!c || c->closing) return;
  c->closing = 1;
  c->close_cb = close_cb;
  c->close_data = data;
  for (l = c->reqs.next; l != &c->reqs; l = l->next)
    wf_http_req_cancel(container_of(l, wf_http_req_t, link));
  while (!list_empty(&c->pool))
    conn_close(container_of(c->pool.next, conn_t, pool_link));
  /* on_idle delivers every on_done, then closes the idle handle; the last
   * handle's close callback frees the client. */
  uv_idle_start(&c->idle, on_idle);
}
