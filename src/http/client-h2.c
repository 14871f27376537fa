/*
 * http/client-h2.c: HTTP/2 for https:// origins (libnghttp2), behind the
 * same include/wf/http.h as HTTP/1.1: nothing above http/ knows which one
 * carries a request.
 *
 * Negotiation.  A client in WF_HTTP2_AUTO offers ALPN "h2,http/1.1" on the
 * first connection it opens (the probe; client->h2_state is H2_PROBING)
 * and holds every other request until that handshake tells (client->h2_wait).
 * If the server picks h2 the connection becomes the client's session
 * (H2_LIVE, CONN_H2) and every request from then on is a stream of it: one
 * TCP connection per origin.  If it picks HTTP/1.1 or nothing, the client
 * speaks HTTP/1.1 for the rest of its life (H2_DECLINED) and the waiting
 * requests go out over it.  etcd 3.4 answers h2 on its TLS port and serves
 * the JSON gateway there (docs/peers.md).
 *
 * nghttp2 owns the framing and never touches a socket: bytes read from the
 * connection (plaintext from OpenSSL, see client-tls.c) go into
 * nghttp2_session_mem_recv, and what nghttp2_session_mem_send hands out is
 * encrypted and uv_write'n.  So the session runs on the client's loop with
 * no thread.  nghttp2 must not be re-entered from its own callbacks: a
 * callback only records (stream state, fail_err), and sending happens after
 * mem_recv returns (h2_after).
 *
 * Bounds.  Each stream's receive window is STREAM_WINDOW and the
 * connection's CONN_WINDOW, with automatic WINDOW_UPDATEs off: bytes are
 * given back (nghttp2_session_consume) only once delivered.  A paused
 * stream keeps what arrives in req->held, which its window bounds, and its
 * sender stops there, while the other streams flow: one slow watch cannot
 * stall the rest until CONN_WINDOW / STREAM_WINDOW of them are paused.
 * Output goes to the socket only while less than WRITE_BOUND bytes are in
 * flight.  A response head is bounded by the request's max_header, a
 * buffered body by max_body, the PINGs in flight by MAX_PINGS.
 *
 * Streams are found by id in the session's list (s->streams), never through
 * nghttp2's stream user data: a request can be cancelled while nghttp2 still
 * queues its HEADERS or DATA, and a lookup that finds nothing is safe where
 * a stale pointer is not.
 *
 * Failures.  A connection that dies (EOF, reset, TLS, a PING not answered,
 * a protocol error) fails each of its streams with that error, as HTTP/1.1
 * fails its request, so the etcd layer's reconnect and resume rules apply
 * unchanged; a stream that saw nothing of its answer on a session that had
 * already served is sent once more on a new connection, like a request on a
 * reused keep-alive connection.  RST_STREAM fails one stream with
 * UV_ECONNRESET.  GOAWAY stops new streams on the session: new requests
 * open a new connection, the streams the server will not process
 * (REFUSED_STREAM, or above its last stream id) are sent again there, and
 * the old connection closes once its last stream ends.
 */
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http-internal.h"

#define STREAM_WINDOW (256 * 1024)
#define CONN_WINDOW (8 * 1024 * 1024)
#define WRITE_BOUND (256 * 1024)
#define MAX_PINGS 8
/* A stream timed out: the session is asked a PING answered within this, or
 * dropped (a frozen peer is found in 2 s, not at the next watch's probe). */
#define CHECK_PING_MS 2000
#define MAX_NV 64

typedef struct ping_s {
  void (*cb)(int err, void *data);
  void *data;
  uint64_t id;       /* the opaque data sent, echoed by the ACK */
  uint64_t deadline; /* uv_now after which it failed */
  int result;        /* 1 while waiting; 0 or an error once due for delivery */
} ping_t;

typedef struct wf__http_h2_s {
  nghttp2_session *ng;
  wf__http_conn_t *conn;
  wf__http_link_t streams; /* wf_http_req_t.h2_link */
  unsigned nstreams;
  wf_http_req_t *last;     /* lookup cache */
  int goaway;              /* no new streams (GOAWAY either way, ids exhausted) */
  int in_recv;             /* nghttp2_session_mem_recv is on the stack */
  int served;              /* a stream completed: the session is "reused" */
  int fail_err;            /* set inside a callback: fail the connection after */
  int kick;                /* deliveries are due (drains, PING results) */
  uint64_t idle_since;     /* uv_now when the last stream ended */
  ping_t pings[MAX_PINGS];
  uint64_t ping_seq;
} wf__http_h2_t;

typedef struct plain_wreq_s {
  uv_write_t req;
  wf__http_conn_t *conn;
  size_t n;
  char data[];
} plain_wreq_t;

static void h2_after(wf__http_conn_t *conn);

/* ---- streams ------------------------------------------------------------------------- */
static wf_http_req_t *find(wf__http_h2_t *s, int32_t sid) {
  wf__http_link_t *l;
  if (s->last && s->last->sid == sid) return s->last;
  for (l = s->streams.next; l != &s->streams; l = l->next) {
    wf_http_req_t *req = container_of(l, wf_http_req_t, h2_link);
    if (req->sid == sid) return s->last = req;
  }
  return NULL;
}

static void unlink_stream(wf__http_h2_t *s, wf_http_req_t *req) {
  wf__http_list_remove(&req->h2_link);
  if (s->last == req) s->last = NULL;
  req->conn = NULL;
  s->nstreams--;
  if (s->nstreams == 0) s->idle_since = uv_now(s->conn->client->loop);
}

/* The stream is over for us (err 0: its response is complete). */
static void finish(wf__http_h2_t *s, wf_http_req_t *req, int err) {
  unlink_stream(s, req);
  wf_buf_finish(&req->held);
  if (err == 0) {
    s->served = 1;
    s->conn->client->tls_logged[0] = '\0';
  }
  wf__http_queue_done(req, err);
}

/* Gives len delivered bytes of sid back to the windows. */
static void consume(wf__http_h2_t *s, int32_t sid, size_t len) {
  if (len > 0) (void)nghttp2_session_consume(s->ng, sid, len);
}

/* The request's body, from wbuf (nghttp2 pulls it as DATA frames). */
static ssize_t read_body(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user) {
  wf__http_h2_t *s = user;
  wf_http_req_t *req = find(s, sid);
  size_t left, n;
  (void)ng;
  (void)src;

  if (!req) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* cancelled: reset it */
  left = req->wlen - req->body_off - req->body_sent;
  n = left < length ? left : length;
  memcpy(buf, req->wbuf + req->body_off + req->body_sent, n);
  req->body_sent += n;
  if (req->body_sent == req->wlen - req->body_off) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

/* Builds the HTTP/2 request from the HTTP/1.1 one in wbuf (client-message.c
 * wrote and checked it: "METHOD SP target SP HTTP/1.1", "Name: value"
 * lines, the blank line, the body) and submits it.  Connection-specific
 * fields go; names are lowercased (RFC 9113 §8.2); Host becomes :authority. */
static int submit(wf__http_h2_t *s, wf_http_req_t *req) {
  nghttp2_nv nv[MAX_NV];
  size_t nnv = 4;
  char *head, *p, *line, *end;
  const char *authority = "";
  nghttp2_data_provider prd;
  int32_t sid;

  end = memmem(req->wbuf, req->wlen, "\r\n\r\n", 4);
  if (!end) return UV_EINVAL;
  req->body_off = (size_t)(end - req->wbuf) + 4;
  req->body_sent = 0;
  head = wf_malloc((size_t)(end - req->wbuf) + 1);
  memcpy(head, req->wbuf, (size_t)(end - req->wbuf));
  head[end - req->wbuf] = '\0';

  line = head;
  p = strstr(line, "\r\n");
  if (p) *p = '\0';
  {
    char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strrchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2) {
      free(head);
      return UV_EINVAL;
    }
    *sp1 = *sp2 = '\0';
    nv[0] = (nghttp2_nv){(uint8_t *)":method", (uint8_t *)line, 7, strlen(line), 0};
    nv[1] = (nghttp2_nv){(uint8_t *)":path", (uint8_t *)sp1 + 1, 5, strlen(sp1 + 1), 0};
    nv[2] = (nghttp2_nv){(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0};
  }
  while (p && nnv < MAX_NV) {
    char *name = p + 2, *colon, *value;
    p = strstr(name, "\r\n");
    if (p) *p = '\0';
    colon = strchr(name, ':');
    if (!colon) continue;
    *colon = '\0';
    value = colon + 1;
    while (*value == ' ') value++;
    for (char *c = name; *c; c++)
      if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    if (strcmp(name, "host") == 0) {
      authority = value;
      continue;
    }
    if (strcmp(name, "connection") == 0 || strcmp(name, "keep-alive") == 0 ||
        strcmp(name, "transfer-encoding") == 0 || strcmp(name, "upgrade") == 0 ||
        strcmp(name, "proxy-connection") == 0 || strcmp(name, "te") == 0)
      continue;
    nv[nnv++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value), 0};
  }
  nv[3] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)authority, 10, strlen(authority), 0};

  prd.source.ptr = NULL;
  prd.read_callback = read_body;
  /* A body-less GET ends with its HEADERS; a POST always sends its (maybe
   * empty) body, as Content-Length: 0 does over HTTP/1.1. */
  sid = nghttp2_submit_request(s->ng, NULL, nv, nnv,
                               req->wlen > req->body_off || strncmp(head, "GET", 4) != 0 ? &prd
                                                                                        : NULL,
                               NULL);
  free(head); /* nghttp2 copied the fields (no NO_COPY flags) */
  if (sid < 0) return sid == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? UV_EAGAIN : UV_EINVAL;
  req->sid = sid;
  return 0;
}

/* Puts req on s as a stream. */
static void attach(wf__http_h2_t *s, wf_http_req_t *req) {
  wf_http_client_t *c = s->conn->client;
  int r;

  req->conn = s->conn;
  req->state = REQ_HEAD;
  req->h2_got = req->h2_ended = 0;
  req->h2_hbytes = 0;
  req->held_off = 0;
  req->h2_rx = uv_now(c->loop);
  wf_buf_init(&req->held, 2 * STREAM_WINDOW);
  wf_buf_reset(&req->headbuf);
  req->nhdr = 0;
  wf__http_list_push_back(&s->streams, &req->h2_link);
  s->nstreams++;
  r = submit(s, req);
  if (r == UV_EAGAIN) {
    /* Stream ids ran out: this session takes no more. */
    s->goaway = 1;
    if (c->h2conn == s->conn) {
      c->h2conn = NULL;
      c->h2_state = H2_UNKNOWN;
    }
    unlink_stream(s, req);
    wf__http_dispatch(c, req);
    return;
  }
  if (r < 0) {
    finish(s, req, r);
    return;
  }
  uv_ref(&s->conn->io.handle);
  uv_ref((uv_handle_t *)&s->conn->timer);
}

/* ---- nghttp2 callbacks ----------------------------------------------------------------- */
static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user) {
  wf__http_h2_t *s = user;
  wf_http_req_t *req;
  (void)ng;
  (void)flags;

  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  req = find(s, frame->hd.stream_id);
  if (!req || req->state != REQ_HEAD) return 0; /* trailers are ignored */
  req->h2_hbytes += namelen + valuelen + 4;
  if (req->h2_hbytes > req->max_header) {
    nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, req->sid, NGHTTP2_CANCEL);
    finish(s, req, WF_ETOOBIG);
    return 0;
  }
  if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
    int st = 0;
    for (size_t i = 0; i < valuelen && i < 3; i++) st = st * 10 + (value[i] - '0');
    req->status = valuelen == 3 ? st : 0;
    return 0;
  }
  if (2 * (req->nhdr + 1) > req->hcap) {
    req->hcap = req->hcap ? 2 * req->hcap : 32;
    req->hoffs = wf_realloc(req->hoffs, req->hcap * sizeof(*req->hoffs));
  }
  req->hoffs[2 * req->nhdr] = req->headbuf.len;
  wf_buf_append(&req->headbuf, (const char *)name, namelen);
  wf_buf_append(&req->headbuf, "", 1);
  req->hoffs[2 * req->nhdr + 1] = req->headbuf.len;
  wf_buf_append(&req->headbuf, (const char *)value, valuelen);
  wf_buf_append(&req->headbuf, "", 1);
  req->nhdr++;
  return 0;
}

/* A response head is complete (nghttp2 has joined its CONTINUATIONs). */
static void on_head(wf__http_h2_t *s, wf_http_req_t *req) {
  wf__http_conn_t *conn = s->conn;

  if (req->status < 100 || req->status > 999) {
    nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, req->sid, NGHTTP2_PROTOCOL_ERROR);
    finish(s, req, WF_EPROTO);
    return;
  }
  if (req->status < 200) {
    /* An interim answer: the real head follows. */
    wf_buf_reset(&req->headbuf);
    req->nhdr = 0;
    req->h2_hbytes = 0;
    return;
  }
  req->state = REQ_BODY;
  if (req->cbs.on_head) {
    wf_http_header_t *h = wf_calloc(req->nhdr ? req->nhdr : 1, sizeof(*h));
    for (size_t i = 0; i < req->nhdr; i++) {
      h[i].name = req->headbuf.data + req->hoffs[2 * i];
      h[i].value = req->headbuf.data + req->hoffs[2 * i + 1];
    }
    req->cbs.on_head(req, req->status, h, req->nhdr, req->data);
    free(h);
    (void)conn;
  }
}

static void ping_acked(wf__http_h2_t *s, const uint8_t *opaque) {
  uint64_t id;
  memcpy(&id, opaque, sizeof(id));
  for (int i = 0; i < MAX_PINGS; i++)
    if (s->pings[i].cb && s->pings[i].result == 1 && s->pings[i].id == id) {
      s->pings[i].result = 0;
      s->kick = 1;
    }
}

static void goaway(wf__http_h2_t *s, const nghttp2_goaway *g) {
  wf_http_client_t *c = s->conn->client;

  s->goaway = 1;
  if (c->h2conn == s->conn) {
    c->h2conn = NULL;
    c->h2_state = H2_UNKNOWN;
  }
  wf_info(NULL, "http %s: the server sent GOAWAY (last stream %" PRId32 ", %s): new requests "
          "go on a new connection", c->origin, g->last_stream_id,
          nghttp2_http2_strerror(g->error_code));
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user) {
  wf__http_h2_t *s = user;
  wf_http_req_t *req;
  (void)ng;

  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      req = find(s, frame->hd.stream_id);
      if (!req) return 0;
      req->h2_got = 1;
      req->h2_rx = uv_now(s->conn->client->loop);
      if (req->state == REQ_HEAD) on_head(s, req);
      break;
    case NGHTTP2_DATA:
      req = find(s, frame->hd.stream_id);
      if (req) req->h2_rx = uv_now(s->conn->client->loop);
      break;
    case NGHTTP2_PING:
      if (frame->hd.flags & NGHTTP2_FLAG_ACK) ping_acked(s, frame->ping.opaque_data);
      break;
    case NGHTTP2_GOAWAY:
      goaway(s, &frame->goaway);
      break;
    default:
      break;
  }
  if (s->conn->state == CONN_CLOSING) return NGHTTP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *user) {
  wf__http_h2_t *s = user;
  wf_http_req_t *req = find(s, sid);
  (void)ng;
  (void)flags;

  if (!req || req->state != REQ_BODY) {
    consume(s, sid, len); /* nobody wants it; the window must not shrink */
    return 0;
  }
  req->h2_got = 1;
  if (req->stream && (req->paused || req->held.len > req->held_off)) {
    /* Kept until resume; the window (not given back) bounds it. */
    if (wf_buf_append(&req->held, (const char *)data, len) != 0) {
      s->fail_err = WF_EPROTO; /* the server ignored our window */
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
  }
  if (req->stream) {
    if (len > 0 && req->cbs.on_data) req->cbs.on_data(req, (const char *)data, len, req->data);
    consume(s, sid, len);
  } else {
    consume(s, sid, len);
    if (wf_buf_append(&req->body, (const char *)data, len) != 0) {
      nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
      finish(s, req, WF_ETOOBIG);
    }
  }
  if (s->conn->state == CONN_CLOSING) return NGHTTP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t code, void *user) {
  wf__http_h2_t *s = user;
  wf_http_req_t *req = find(s, sid);
  wf_http_client_t *c = s->conn->client;
  (void)ng;

  if (!req) return 0;
  if (code == NGHTTP2_NO_ERROR && req->state == REQ_BODY) {
    req->h2_ended = 1;
    if (req->held.len > req->held_off)
      s->kick = 1; /* completes once the held bytes are out */
    else
      finish(s, req, 0);
    return 0;
  }
  if (code == NGHTTP2_REFUSED_STREAM && !req->h2_got && req->h2_redispatched < 2 && !c->closing) {
    /* Not processed (RFC 9113 §8.7): safe to send again, elsewhere. */
    req->h2_redispatched++;
    unlink_stream(s, req);
    wf__http_dispatch(c, req);
    return 0;
  }
  wf_debug(NULL, "http %s: stream %" PRId32 " reset: %s", c->origin, sid,
           nghttp2_http2_strerror(code));
  finish(s, req, code == NGHTTP2_NO_ERROR ? UV_EOF : UV_ECONNRESET);
  return 0;
}

/* A request that could not start (GOAWAY came first, ids ran out). */
static int on_frame_not_send(nghttp2_session *ng, const nghttp2_frame *frame, int lib_err,
                             void *user) {
  wf__http_h2_t *s = user;
  wf_http_req_t *req;
  wf_http_client_t *c = s->conn->client;
  (void)ng;

  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  req = find(s, frame->hd.stream_id);
  if (!req) return 0;
  if ((lib_err == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED ||
       lib_err == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) &&
      req->h2_redispatched < 2 && !c->closing) {
    req->h2_redispatched++;
    unlink_stream(s, req);
    wf__http_dispatch(c, req);
    return 0;
  }
  finish(s, req, WF_EPROTO);
  return 0;
}

/* ---- output -------------------------------------------------------------------------- */
static void on_plain_write(uv_write_t *w, int status) {
  plain_wreq_t *wr = container_of(w, plain_wreq_t, req);
  wf__http_conn_t *conn = wr->conn;

  conn->wbytes -= wr->n;
  conn->write_pending--;
  free(wr);
  if (conn->state != CONN_H2) return;
  if (status < 0) {
    wf__http_h2_fail(conn, status);
    return;
  }
  wf__http_h2_written(conn);
}

static int send_bytes(wf__http_conn_t *conn, const uint8_t *p, size_t n) {
  plain_wreq_t *wr;
  uv_buf_t b;
  int r;

  if (conn->tls) {
    if (wf__tls_write(conn->tls, (const char *)p, n) < 0) return WF_ETLS;
    return 0;
  }
  wr = wf_malloc(sizeof(*wr) + n);
  wr->conn = conn;
  wr->n = n;
  memcpy(wr->data, p, n);
  b = uv_buf_init(wr->data, (unsigned)n);
  r = uv_write(&wr->req, &conn->io.stream, &b, 1, on_plain_write);
  if (r < 0) {
    free(wr);
    return r;
  }
  conn->write_pending++;
  conn->wbytes += n;
  return 0;
}

/* Hands nghttp2's output to the socket while under WRITE_BOUND.  Never from
 * inside a callback.  0, or < 0 after conn was failed. */
static int flush(wf__http_conn_t *conn) {
  wf__http_h2_t *s = conn->h2;
  size_t batch = 0;
  int r = 0;

  while (conn->wbytes + batch < WRITE_BOUND) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(s->ng, &data);
    if (n < 0) {
      wf_warn(NULL, "http %s: HTTP/2: %s", conn->client->origin, nghttp2_strerror((int)n));
      r = WF_EPROTO;
      break;
    }
    if (n == 0) break;
    r = send_bytes(conn, data, (size_t)n);
    if (r < 0) break;
    batch += (size_t)n;
  }
  if (r < 0) {
    conn->tls_dead = 1;
    if (r == WF_ETLS)
      wf__http_tls_fail(conn, wf__tls_error(conn->tls));
    else
      wf__http_h2_fail(conn, r);
    return r;
  }
  if (conn->tls) return wf__http_tls_flush(conn);
  return 0;
}

static void check_ping_done(int err, void *data) {
  (void)err; /* an unanswered one drops the connection in on_timer */
  (void)data;
}

static int submit_ping(wf__http_h2_t *s, uint64_t timeout_ms, void (*cb)(int, void *),
                       void *data);

/* ---- the timer: deliveries, deadlines, idle -------------------------------------------- */
static void arm(wf__http_conn_t *conn) {
  wf__http_h2_t *s = conn->h2;
  wf_http_client_t *c = conn->client;
  uint64_t now = uv_now(c->loop), due = UINT64_MAX;
  wf__http_link_t *l;

  if (conn->state != CONN_H2) return;
  if (s->kick) due = now;
  for (int i = 0; i < MAX_PINGS; i++)
    if (s->pings[i].cb && s->pings[i].result == 1 && s->pings[i].deadline < due)
      due = s->pings[i].deadline;
  for (l = s->streams.next; l != &s->streams; l = l->next) {
    wf_http_req_t *req = container_of(l, wf_http_req_t, h2_link);
    if (req->timeout_ms && !req->paused && req->h2_rx + req->timeout_ms < due)
      due = req->h2_rx + req->timeout_ms;
  }
  if (s->nstreams == 0) {
    /* Like a pooled connection: it does not keep the loop alive, and goes
     * after idle_close_ms unused. */
    if (s->idle_since + c->idle_close_ms < due) due = s->idle_since + c->idle_close_ms;
    uv_unref(&conn->io.handle);
    uv_unref((uv_handle_t *)&conn->timer);
  }
  if (due == UINT64_MAX) {
    conn->tmode = TM_NONE;
    uv_timer_stop(&conn->timer);
    return;
  }
  wf__http_timer_arm(conn, TM_H2, due > now ? due - now : 0);
}

/* Delivers what a resume released, bounded per turn so that one stream
 * cannot hold the loop; returns 1 when some is left for the next turn. */
static int drain_held(wf__http_h2_t *s, wf_http_req_t *req) {
  wf__http_conn_t *conn = s->conn;
  size_t budget = STREAM_WINDOW;

  while (!req->paused && req->held.len > req->held_off && budget > 0) {
    size_t n = req->held.len - req->held_off;
    if (n > 16384) n = 16384;
    if (n > budget) n = budget;
    budget -= n;
    req->held_off += n;
    if (req->cbs.on_data) req->cbs.on_data(req, req->held.data + req->held_off - n, n, req->data);
    if (conn->state != CONN_H2) return 0;
    consume(s, req->sid, n);
    if (req->conn != conn) return 0; /* cancelled from on_data */
  }
  if (req->held_off == req->held.len) {
    wf_buf_reset(&req->held);
    req->held_off = 0;
    if (req->h2_ended) {
      finish(s, req, 0);
      return 0;
    }
  }
  return !req->paused && req->held.len > req->held_off;
}

void wf__http_h2_on_timer(wf__http_conn_t *conn) {
  wf__http_h2_t *s = conn->h2;
  wf_http_client_t *c = conn->client;
  uint64_t now = uv_now(c->loop);
  wf__http_link_t *l, *next;
  int expired = 0;

  s->kick = 0;
  /* PING results first: a watch that asked learns of the stall before its
   * stream fails with the connection. */
  for (int i = 0; i < MAX_PINGS && conn->state == CONN_H2; i++) {
    ping_t *p = &s->pings[i];
    if (!p->cb) continue;
    if (p->result == 1 && now < p->deadline) continue;
    if (p->result == 1) {
      p->result = UV_ETIMEDOUT;
      expired = 1;
    }
    {
      void (*cb)(int, void *) = p->cb;
      int err = p->result;
      p->cb = NULL;
      cb(err, p->data);
    }
  }
  if (conn->state != CONN_H2) return;
  if (expired) {
    wf_warn(NULL, "http %s: HTTP/2 PING not answered: dropping the connection", c->origin);
    wf__http_h2_fail(conn, UV_ETIMEDOUT);
    return;
  }
  for (l = s->streams.next; l != &s->streams && conn->state == CONN_H2; l = next) {
    wf_http_req_t *req = container_of(l, wf_http_req_t, h2_link);
    next = l->next;
    if (req->timeout_ms && !req->paused && now >= req->h2_rx + req->timeout_ms) {
      int asking = 0;
      nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, req->sid, NGHTTP2_CANCEL);
      finish(s, req, UV_ETIMEDOUT);
      /* A slow answer, or a dead peer that keeps the connection open (a
       * frozen etcd): a PING tells them apart for every stream at once. */
      for (int i = 0; i < MAX_PINGS; i++)
        asking |= s->pings[i].cb == check_ping_done && s->pings[i].result == 1;
      if (!asking) (void)submit_ping(s, CHECK_PING_MS, check_ping_done, NULL);
      continue;
    }
    if (req->held.len > req->held_off && !req->paused) {
      /* next may be cancelled from on_data: restart from the head after. */
      if (drain_held(s, req)) s->kick = 1;
      if (conn->state != CONN_H2) return;
      next = s->streams.next;
      if (req->conn == conn) {
        /* Still on the list: go on after it. */
        next = req->h2_link.next;
      }
    }
  }
  if (conn->state != CONN_H2) return;
  if (s->nstreams == 0 && (s->goaway || now >= s->idle_since + c->idle_close_ms) &&
      !s->kick) {
    wf__http_conn_close(conn);
    return;
  }
  h2_after(conn);
}

/* After nghttp2 ran or a user call changed something: send, then re-arm. */
static void h2_after(wf__http_conn_t *conn) {
  wf__http_h2_t *s = conn->h2;
  if (conn->state != CONN_H2) return;
  if (s->in_recv) return; /* the pump calls again when mem_recv returned */
  if (flush(conn) < 0 || conn->state != CONN_H2) return;
  if (s->goaway && s->nstreams == 0 && !nghttp2_session_want_write(s->ng)) {
    wf__http_conn_close(conn);
    return;
  }
  arm(conn);
}

/* ---- the session's life ------------------------------------------------------------------- */
static nghttp2_session *session_new(wf__http_h2_t *s) {
  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  nghttp2_session *ng = NULL;
  nghttp2_settings_entry iv[] = {
    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024},
  };

  if (nghttp2_session_callbacks_new(&cbs) != 0) return NULL;
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    return NULL;
  }
  /* Windows are given back as bytes are delivered (consume). */
  nghttp2_option_set_no_auto_window_update(opt, 1);
  if (nghttp2_session_client_new2(&ng, cbs, s, opt) != 0) ng = NULL;
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (!ng) return NULL;
  if (nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
      nghttp2_session_set_local_window_size(ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0) {
    nghttp2_session_del(ng);
    return NULL;
  }
  return ng;
}

/* conn (CONN_CONNECTING, no TLS or through its handshake) becomes c's session. */
static int become_session(wf__http_conn_t *conn) {
  wf_http_client_t *c = conn->client;
  wf__http_h2_t *s = wf_calloc(1, sizeof(*s));

  s->conn = conn;
  wf__http_list_init(&s->streams);
  s->idle_since = uv_now(c->loop);
  s->ng = session_new(s);
  if (!s->ng) {
    free(s);
    return UV_ENOMEM;
  }
  conn->h2 = s;
  conn->state = CONN_H2;
  conn->tmode = TM_NONE;
  uv_timer_stop(&conn->timer);
  c->h2_state = H2_LIVE;
  c->h2conn = conn;
  c->h2_probe = NULL;
  return 0;
}

static void take_waiters(wf_http_client_t *c, wf__http_link_t *out) {
  wf__http_list_init(out);
  if (wf__http_list_empty(&c->h2_wait)) return;
  out->next = c->h2_wait.next;
  out->prev = c->h2_wait.prev;
  out->next->prev = out;
  out->prev->next = out;
  wf__http_list_init(&c->h2_wait);
}

void wf__http_h2_start(wf__http_conn_t *conn) {
  wf_http_client_t *c = conn->client;
  wf_http_req_t *req = conn->req;
  wf__http_link_t waiters;

  conn->req = NULL;
  req->conn = NULL;
  if (become_session(conn) < 0) {
    conn->req = req;
    req->conn = conn;
    wf__http_conn_fail(conn, UV_ENOMEM);
    return;
  }
  /* Said once per client at info (operators want to know which protocol
   * runs); every reconnect after that at debug. */
  wf_log(c->h2_said ? WF_LOG_DEBUG : WF_LOG_INFO, NULL,
         "http %s: HTTP/2 (ALPN h2): one connection carries every request", c->origin);
  c->h2_said = 1;
  take_waiters(c, &waiters);
  attach(conn->h2, req);
  while (!wf__http_list_empty(&waiters)) {
    wf_http_req_t *w = container_of(waiters.next, wf_http_req_t, h2_link);
    wf__http_list_remove(&w->h2_link);
    if (conn->state == CONN_H2 && !conn->h2->goaway)
      attach(conn->h2, w);
    else
      wf__http_dispatch(c, w);
  }
  h2_after(conn);
}

void wf__http_h2_declined(wf_http_client_t *c) {
  wf__http_link_t waiters;

  c->h2_state = H2_DECLINED;
  c->h2_probe = NULL;
  wf_info(NULL, "http %s: the server did not choose HTTP/2 (ALPN): HTTP/1.1", c->origin);
  take_waiters(c, &waiters);
  while (!wf__http_list_empty(&waiters)) {
    wf_http_req_t *w = container_of(waiters.next, wf_http_req_t, h2_link);
    wf__http_list_remove(&w->h2_link);
    wf__http_dispatch(c, w);
  }
}

void wf__http_h2_probe_done(wf_http_client_t *c, int err) {
  wf__http_link_t waiters;

  c->h2_probe = NULL;
  if (c->h2_state == H2_PROBING) c->h2_state = H2_UNKNOWN;
  take_waiters(c, &waiters);
  while (!wf__http_list_empty(&waiters)) {
    wf_http_req_t *w = container_of(waiters.next, wf_http_req_t, h2_link);
    wf__http_list_remove(&w->h2_link);
    /* A cancelled probe said nothing about the server: the next one asks.
     * Any other failure is what each waiter would have met. */
    if (err == UV_ECANCELED && !c->closing)
      wf__http_dispatch(c, w);
    else
      wf__http_queue_done(w, err);
  }
}

int wf__http_h2_route(wf_http_client_t *c, wf_http_req_t *req) {
  switch (c->h2_state) {
    case H2_LIVE:
      attach(c->h2conn->h2, req);
      if (req->conn) h2_after(req->conn);
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

void wf__http_h2_recv_plain(wf__http_conn_t *conn, const char *p, size_t n) {
  wf__http_h2_t *s = conn->h2;
  ssize_t r;

  s->in_recv = 1;
  r = nghttp2_session_mem_recv(s->ng, (const uint8_t *)p, n);
  s->in_recv = 0;
  if (conn->state != CONN_H2) return;
  if (r < 0 || s->fail_err) {
    int err = s->fail_err ? s->fail_err : WF_EPROTO;
    wf_warn(NULL, "http %s: HTTP/2 protocol error: %s", conn->client->origin,
            s->fail_err ? wf_strerror(s->fail_err) : nghttp2_strerror((int)r));
    (void)flush(conn); /* the GOAWAY nghttp2 queued, if it can go */
    if (conn->state == CONN_H2) wf__http_h2_fail(conn, err);
    return;
  }
}

void wf__http_h2_pump(wf__http_conn_t *conn) {
  for (;;) {
    ssize_t n = wf__tls_read(conn->tls, conn->rbuf, sizeof(conn->rbuf));
    if (n == 0) break;
    if (n < 0) {
      /* An alert may be queued for the peer (a TLS 1.3 server's refusal of
       * our certificate comes after the handshake, as an alert read here). */
      if (wf__http_tls_flush(conn) != 0 || conn->state != CONN_H2) return;
      conn->tls_dead = 1;
      if (n == UV_EOF)
        wf__http_h2_fail(conn, UV_EOF);
      else
        wf__http_tls_fail(conn, wf__tls_error(conn->tls));
      return;
    }
    wf__http_h2_recv_plain(conn, conn->rbuf, (size_t)n);
    if (conn->state != CONN_H2) return;
  }
  h2_after(conn);
}

void wf__http_h2_fail(wf__http_conn_t *conn, int err) {
  wf__http_h2_t *s = conn->h2;
  wf_http_client_t *c = conn->client;

  if (conn->state != CONN_H2) return;
  if (c->h2conn == conn) {
    c->h2conn = NULL;
    c->h2_state = H2_UNKNOWN;
  }
  wf_debug(NULL, "http %s: HTTP/2 connection failed: %s (%u streams)", c->origin,
           wf__http_errstr(err), s->nstreams);
  for (int i = 0; i < MAX_PINGS && conn->state == CONN_H2; i++) {
    ping_t *p = &s->pings[i];
    void (*cb)(int, void *) = p->cb;
    if (!cb) continue;
    p->cb = NULL;
    cb(p->result == 1 ? err : p->result, p->data);
  }
  /* A callback may have closed the client, and with it this connection. */
  if (conn->state != CONN_H2) return;
  conn->state = CONN_CLOSING; /* no stream goes back on it */
  while (!wf__http_list_empty(&s->streams)) {
    wf_http_req_t *req = container_of(s->streams.next, wf_http_req_t, h2_link);
    int again = !req->h2_got && s->served && !req->retried && !c->closing &&
                (err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE ||
                 err == UV_ECONNABORTED);
    unlink_stream(s, req);
    wf_buf_finish(&req->held);
    if (again) {
      req->retried = 1;
      wf__http_dispatch(c, req);
    } else {
      wf__http_queue_done(req, err);
    }
  }
  conn->state = CONN_H2;
  wf__http_conn_close(conn);
}

void wf__http_h2_written(wf__http_conn_t *conn) {
  if (conn->state == CONN_H2 && nghttp2_session_want_write(conn->h2->ng)) h2_after(conn);
}

void wf__http_h2_pause(wf_http_req_t *req) {
  (void)req; /* arriving DATA is held (on_data_chunk); the timer stops counting */
}

void wf__http_h2_resume(wf_http_req_t *req) {
  wf__http_conn_t *conn = req->conn;
  if (!conn || conn->state != CONN_H2) return;
  conn->h2->kick = 1;
  if (!conn->h2->in_recv) arm(conn);
}

int wf__http_h2_cancel(wf_http_req_t *req) {
  wf__http_conn_t *conn = req->conn;
  wf_http_client_t *c = req->client;

  if (!conn) {
    if (wf__http_list_empty(&req->h2_link)) return 0;
    wf__http_list_remove(&req->h2_link); /* was waiting for the probe */
    wf__http_queue_done(req, UV_ECANCELED);
    return 1;
  }
  if (conn->state != CONN_H2) return 0;
  if (req->sid > 0)
    nghttp2_submit_rst_stream(conn->h2->ng, NGHTTP2_FLAG_NONE, req->sid, NGHTTP2_CANCEL);
  unlink_stream(conn->h2, req);
  wf_buf_finish(&req->held);
  wf__http_queue_done(req, UV_ECANCELED);
  if (!c->closing) h2_after(conn);
  return 1;
}

void wf__http_h2_client_closing(wf_http_client_t *c) {
  wf__http_link_t *l, *next;
  for (l = c->conns.next; l != &c->conns; l = next) {
    wf__http_conn_t *conn = container_of(l, wf__http_conn_t, link);
    next = l->next;
    if (conn->state != CONN_H2) continue;
    /* A polite GOAWAY, best effort: the connection closes right after. */
    nghttp2_session_terminate_session(conn->h2->ng, NGHTTP2_NO_ERROR);
    (void)flush(conn);
    if (conn->state == CONN_H2) wf__http_h2_fail(conn, UV_ECANCELED);
  }
  c->h2conn = NULL;
}

void wf__http_h2_free(wf__http_conn_t *conn) {
  if (!conn->h2) return;
  nghttp2_session_del(conn->h2->ng);
  free(conn->h2);
  conn->h2 = NULL;
}

/* ---- PING ---------------------------------------------------------------------------- */
int wf_http_client_ping(wf_http_client_t *c, uint64_t timeout_ms,
                        void (*cb)(int err, void *data), void *data) {
  wf__http_conn_t *conn;
  wf__http_h2_t *s;
  int r;

  if (!c || c->closing || !cb || c->h2_state != H2_LIVE || !c->h2conn) return UV_ENOTSUP;
  conn = c->h2conn;
  s = conn->h2;
  r = submit_ping(s, timeout_ms, cb, data);
  if (r == 0) h2_after(conn);
  return r;
}

static int submit_ping(wf__http_h2_t *s, uint64_t timeout_ms, void (*cb)(int, void *),
                       void *data) {
  uint8_t opaque[8];
  for (int i = 0; i < MAX_PINGS; i++) {
    ping_t *p = &s->pings[i];
    if (p->cb) continue;
    p->cb = cb;
    p->data = data;
    p->id = ++s->ping_seq;
    p->deadline = uv_now(s->conn->client->loop) + timeout_ms;
    p->result = 1;
    memcpy(opaque, &p->id, sizeof(opaque));
    if (nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, opaque) != 0) {
      p->cb = NULL;
      return UV_ENOMEM;
    }
    return 0;
  }
  return UV_EBUSY;
}

const char *wf_http_client_protocol(const wf_http_client_t *c) {
  return c && c->h2_state == H2_LIVE ? "h2" : "http/1.1";
}

/* ---- test seam ------------------------------------------------------------------------ */
int wf__http_h2_become(wf__http_conn_t *conn) {
  int r = become_session(conn);
  if (r < 0) return r;
  h2_after(conn); /* the preface and our SETTINGS */
  return 0;
}
