/*
 * http/client-h2.c: an HTTP/2 session (libnghttp2) carrying every request
 * of an https:// client as a stream of one connection, behind the same
 * include/wf/http.h as HTTP/1.1: nothing above http/ knows which one
 * carries a request.  Which requests come here, and PINGs, are
 * client-h2-route.c's.
 *
 * nghttp2 owns the framing and never touches a socket: bytes read from the
 * connection (plaintext from OpenSSL, see client-tls.c) go into
 * nghttp2_session_mem_recv, and what nghttp2_session_mem_send hands out is
 * encrypted and uv_write'n.  So the session runs on the client's loop with
 * no thread.  nghttp2 must not be re-entered from its own callbacks: a
 * callback only records (stream state, fail_err), and sending happens once
 * mem_recv or mem_send has returned (wf__http_h2_after, guarded by in_recv
 * and in_send).
 *
 * Bounds.  Each stream's receive window is STREAM_WINDOW and the
 * connection's CONN_WINDOW, with automatic WINDOW_UPDATEs off: bytes are
 * given back (nghttp2_session_consume) once delivered, or dropped with
 * their stream.  A paused stream keeps what arrives in req->held, which its
 * window bounds, and its sender stops there while the other streams flow:
 * one slow watch cannot stall the rest until CONN_WINDOW / STREAM_WINDOW
 * of them are paused.  Output goes to the socket only while less than
 * WRITE_BOUND bytes are in flight.  A response head is bounded by the
 * request's max_header, a buffered body by max_body.
 *
 * Streams are found by id in the session's list (s->streams), never through
 * nghttp2's stream user data: a request can be cancelled while nghttp2 still
 * queues its HEADERS or DATA, and a lookup that finds nothing is safe where
 * a stale pointer is not.
 *
 * Failures.  A connection that dies (EOF, reset, TLS, a PING not answered,
 * a protocol error, nghttp2 ending the session) fails each of its streams
 * with that error, as HTTP/1.1 fails its request, so the etcd layer's
 * reconnect and resume rules apply unchanged; a stream that saw nothing of
 * its answer on a session that had already served is sent once more on a
 * new connection, like a request on a reused keep-alive connection.
 * RST_STREAM fails one stream with UV_ECONNRESET.  GOAWAY stops new streams
 * on the session: new requests open a new connection, the streams the
 * server will not process (REFUSED_STREAM, above its last stream id) are
 * sent again there, and the old connection closes after its last stream.
 * A stream that times out makes the session send a PING that must come
 * back within CHECK_PING_MS: a frozen peer is found then, for every stream.
 */
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http-internal.h"

#define STREAM_WINDOW (256 * 1024)
#define CONN_WINDOW (8 * 1024 * 1024)
#define WRITE_BOUND (256 * 1024)
#define CHECK_PING_MS 2000
#define MAX_NV 64

typedef struct wf__http_h2_s {
  nghttp2_session *ng;
  wf__http_conn_t *conn;
  wf__http_link_t streams; /* wf_http_req_t.h2_link */
  unsigned nstreams;
  wf_http_req_t *last;     /* lookup cache */
  int goaway;              /* no new streams (GOAWAY either way, ids exhausted) */
  int peer_goaway;         /* the server sent GOAWAY */
  int in_recv;             /* nghttp2_session_mem_recv is on the stack */
  int in_send;             /* nghttp2_session_mem_send is on the stack */
  int served;              /* a stream completed: the session is "reused" */
  int fail_err;            /* set inside a callback: fail the connection after */
  int kick;                /* held bytes are due for delivery */
  uint64_t idle_since;     /* uv_now when the last stream ended */
} wf__http_h2_t;

typedef struct plain_wreq_s {
  uv_write_t req;
  wf__http_conn_t *conn;
  size_t n;
  char data[];
} plain_wreq_t;

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

/* Gives len bytes of sid back to the windows (the connection's too when
 * the stream is closed already). */
static void consume(wf__http_h2_t *s, int32_t sid, size_t len) {
  if (len > 0) (void)nghttp2_session_consume(s->ng, sid, len);
}

/* The stream's held bytes will never be delivered: their window goes back.
 * The memory stays until the request is freed (client.c's deliver): an
 * on_data running from drain_held may still be reading it. */
static void drop_held(wf__http_h2_t *s, wf_http_req_t *req) {
  if (req->sid > 0) consume(s, req->sid, req->held.len - req->held_off);
  req->held_off = req->held.len;
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
  drop_held(s, req);
  unlink_stream(s, req);
  if (err == 0) {
    s->served = 1;
    s->conn->client->tls_logged[0] = '\0';
  }
  wf__http_queue_done(req, err);
}

/* No new stream goes on this session. */
static void retire(wf__http_h2_t *s) {
  wf_http_client_t *c = s->conn->client;
  s->goaway = 1;
  if (c->h2conn == s->conn) {
    c->h2conn = NULL;
    c->h2_state = H2_UNKNOWN;
  }
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
 * fields go; names are lowercased (RFC 9113 §8.2); Host becomes :authority.
 * 0, UV_EINVAL (more than MAX_NV fields), or UV_EAGAIN (stream ids ran out). */
static int submit(wf__http_h2_t *s, wf_http_req_t *req) {
  nghttp2_nv nv[MAX_NV];
  size_t nnv = 4;
  char *head, *p, *line, *end;
  const char *authority = "";
  nghttp2_data_provider prd;
  int32_t sid;
  int has_body;

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
  while (p) {
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
    if (nnv == MAX_NV) {
      free(head);
      return UV_EINVAL;
    }
    nv[nnv++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value), 0};
  }
  nv[3] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)authority, 10, strlen(authority), 0};

  prd.source.ptr = NULL;
  prd.read_callback = read_body;
  /* A body-less GET or HEAD ends with its HEADERS; a POST always sends its
   * (maybe empty) body, as Content-Length: 0 does over HTTP/1.1. */
  has_body = req->wlen > req->body_off ||
             (strcmp(head, "GET") != 0 && strcmp(head, "HEAD") != 0);
  sid = nghttp2_submit_request(s->ng, NULL, nv, nnv, has_body ? &prd : NULL, NULL);
  free(head); /* nghttp2 copied the fields (no NO_COPY flags) */
  if (sid < 0) return sid == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? UV_EAGAIN : UV_EINVAL;
  req->sid = sid;
  return 0;
}

void wf__http_h2_attach(wf__http_conn_t *conn, wf_http_req_t *req) {
  wf__http_h2_t *s = conn->h2;
  wf_http_client_t *c = conn->client;
  int r;

  req->conn = conn;
  req->state = REQ_HEAD;
  req->sid = 0;
  req->h2_got = req->h2_ended = req->h2_eos = 0;
  req->h2_hbytes = 0;
  req->status = 0;
  req->held_off = 0;
  req->h2_rx = uv_now(c->loop);
  wf_buf_finish(&req->held);
  wf_buf_init(&req->held, 2 * STREAM_WINDOW);
  wf_buf_reset(&req->headbuf);
  req->nhdr = 0;
  wf__http_list_push_back(&s->streams, &req->h2_link);
  s->nstreams++;
  r = submit(s, req);
  if (r == UV_EAGAIN) {
    /* Stream ids ran out: this session takes no more. */
    retire(s);
    unlink_stream(s, req);
    wf__http_dispatch(c, req);
    return;
  }
  if (r < 0) {
    finish(s, req, r);
    return;
  }
  uv_ref(&conn->io.handle);
  uv_ref((uv_handle_t *)&conn->timer);
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
  }
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user) {
  wf__http_h2_t *s = user;
  wf_http_client_t *c = s->conn->client;
  wf_http_req_t *req;
  uint64_t id;
  (void)ng;

  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
      req = find(s, frame->hd.stream_id);
      if (!req) return 0;
      req->h2_got = 1;
      req->h2_rx = uv_now(c->loop);
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) req->h2_eos = 1;
      if (frame->hd.type == NGHTTP2_HEADERS && req->state == REQ_HEAD) on_head(s, req);
      break;
    case NGHTTP2_PING:
      if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
        memcpy(&id, frame->ping.opaque_data, sizeof(id));
        wf__http_h2_ping_acked(c, id);
      }
      break;
    case NGHTTP2_GOAWAY:
      retire(s);
      s->peer_goaway = 1;
      wf_info(NULL, "http %s: the server sent GOAWAY (last stream %" PRId32 ", %s): new "
              "requests go on a new connection", c->origin, frame->goaway.last_stream_id,
              nghttp2_http2_strerror(frame->goaway.error_code));
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
    /* Kept until the resume; the window (not given back) bounds it.  What
     * was delivered goes first, so a consumer that pauses at every piece
     * of the drain never grows the buffer. */
    if (req->held_off > 0) {
      wf_buf_consume(&req->held, req->held_off);
      req->held_off = 0;
    }
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

/* Sends req again, on whatever the client has next: the server did not
 * process it (RFC 9113 §8.7). */
static int redispatch(wf__http_h2_t *s, wf_http_req_t *req) {
  wf_http_client_t *c = s->conn->client;
  if (req->h2_got || req->h2_redispatched >= 2 || c->closing) return 0;
  req->h2_redispatched++;
  drop_held(s, req);
  unlink_stream(s, req);
  wf__http_dispatch(c, req);
  return 1;
}

static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t code, void *user) {
  wf__http_h2_t *s = user;
  wf_http_req_t *req = find(s, sid);
  (void)ng;

  if (!req) return 0;
  if (code == NGHTTP2_NO_ERROR && req->state == REQ_BODY && req->h2_eos) {
    req->h2_ended = 1;
    if (req->held.len > req->held_off)
      s->kick = 1; /* completes once the held bytes are out */
    else
      finish(s, req, 0);
    return 0;
  }
  if (code == NGHTTP2_REFUSED_STREAM && redispatch(s, req)) return 0;
  wf_debug(NULL, "http %s: stream %" PRId32 " reset: %s", s->conn->client->origin, sid,
           nghttp2_http2_strerror(code));
  /* RST_STREAM(NO_ERROR) before END_STREAM cut the answer short. */
  finish(s, req, code == NGHTTP2_NO_ERROR ? UV_EOF : UV_ECONNRESET);
  return 0;
}

/* A request that could not start (GOAWAY came first, ids ran out): the
 * session takes no more, the request goes elsewhere. */
static int on_frame_not_send(nghttp2_session *ng, const nghttp2_frame *frame, int lib_err,
                             void *user) {
  wf__http_h2_t *s = user;
  wf_http_req_t *req;
  (void)ng;

  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  req = find(s, frame->hd.stream_id);
  if (!req) return 0;
  if (lib_err == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED ||
      lib_err == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
    retire(s);
    if (redispatch(s, req)) return 0;
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

/* TLS: into OpenSSL's queue (sent by the flush after); plain (the test
 * seam): a write of its own. */
static int send_bytes(wf__http_conn_t *conn, const uint8_t *p, size_t n) {
  plain_wreq_t *wr;
  uv_buf_t b;
  int r;

  if (conn->tls) return wf__tls_write(conn->tls, (const char *)p, n) < 0 ? WF_ETLS : 0;
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
  size_t queued = 0; /* TLS: encrypted but not yet in a uv_write */
  int r = 0;

  s->in_send = 1;
  while (conn->wbytes + queued < WRITE_BOUND) {
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
    if (conn->tls) queued += (size_t)n;
  }
  s->in_send = 0;
  if (conn->state != CONN_H2) return UV_ECANCELED;
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

/* ---- the timer: held bytes, deadlines, idle ---------------------------------------------- */
static void arm(wf__http_conn_t *conn) {
  wf__http_h2_t *s = conn->h2;
  wf_http_client_t *c = conn->client;
  uint64_t now = uv_now(c->loop), due;
  wf__http_link_t *l;
  int pinging;

  if (conn->state != CONN_H2) return;
  due = wf__http_h2_ping_deadline(c, conn);
  pinging = due != UINT64_MAX;
  if (s->kick) due = now;
  for (l = s->streams.next; l != &s->streams; l = l->next) {
    wf_http_req_t *req = container_of(l, wf_http_req_t, h2_link);
    if (req->timeout_ms && !req->paused && req->h2_rx + req->timeout_ms < due)
      due = req->h2_rx + req->timeout_ms;
  }
  if (s->nstreams == 0 && !pinging) {
    /* Like a pooled connection: it does not keep the loop alive, and goes
     * after idle_close_ms unused. */
    if (s->idle_since + c->idle_close_ms < due) due = s->idle_since + c->idle_close_ms;
    uv_unref(&conn->io.handle);
    uv_unref((uv_handle_t *)&conn->timer);
  } else {
    uv_ref(&conn->io.handle);
    uv_ref((uv_handle_t *)&conn->timer);
  }
  if (due == UINT64_MAX) {
    conn->tmode = TM_NONE;
    uv_timer_stop(&conn->timer);
    return;
  }
  wf__http_timer_arm(conn, TM_H2, due > now ? due - now : 0);
}

/* Delivers held bytes after a resume, at most a window per turn so that one
 * stream cannot hold the loop; 1 when some are left for the next turn. */
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
    if (conn->state != CONN_H2 || req->conn != conn) return 0; /* closed, cancelled */
    consume(s, req->sid, n);
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
  wf__http_link_t *l;
  int timed_out = 0;

  s->kick = 0;
  if (wf__http_h2_pings_expire(c, conn, now) > 0) {
    wf_warn(NULL, "http %s: HTTP/2 PING not answered: dropping the connection", c->origin);
    wf__http_h2_fail(conn, UV_ETIMEDOUT);
    return;
  }
  for (l = s->streams.next; l != &s->streams && conn->state == CONN_H2;) {
    wf_http_req_t *req = container_of(l, wf_http_req_t, h2_link);
    if (req->held.len > req->held_off) {
      if (!req->paused && drain_held(s, req)) s->kick = 1;
      /* on_data may have cancelled this stream or others: go on after it
       * if it is still here, else start over (finished ones have no held
       * bytes, so this ends). */
      l = req->conn == conn ? req->h2_link.next : s->streams.next;
      continue;
    }
    l = l->next;
    if (req->timeout_ms && !req->paused && now >= req->h2_rx + req->timeout_ms) {
      nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, req->sid, NGHTTP2_CANCEL);
      finish(s, req, UV_ETIMEDOUT);
      timed_out = 1;
    }
  }
  if (conn->state != CONN_H2) return;
  /* A slow answer, or a dead peer holding the connection open (a frozen
   * etcd): one PING tells them apart for every stream at once. */
  if (timed_out) wf__http_h2_check_ping(conn, CHECK_PING_MS);
  if (s->nstreams == 0 && !s->kick && !wf__http_h2_pings_waiting(c, conn) &&
      (s->goaway || now >= s->idle_since + c->idle_close_ms)) {
    wf__http_h2_fail(conn, UV_ECANCELED); /* an idle session: nothing fails */
    return;
  }
  wf__http_h2_after(conn);
}

void wf__http_h2_after(wf__http_conn_t *conn) {
  wf__http_h2_t *s = conn->h2;
  int want_write, done;

  if (conn->state != CONN_H2 || s->in_recv || s->in_send) return;
  if (flush(conn) < 0 || conn->state != CONN_H2) return;
  want_write = nghttp2_session_want_write(s->ng);
  /* nghttp2 wants nothing more: after a GOAWAY either way with no stream
   * left, or when it ended the session itself over a connection error it
   * answered with GOAWAY (then nothing will come for the streams). */
  done = !nghttp2_session_want_read(s->ng) && !want_write;
  if (done && !s->peer_goaway && !s->goaway) {
    wf_warn(NULL, "http %s: HTTP/2 session ended by a protocol error: dropping the connection",
            conn->client->origin);
    wf__http_h2_fail(conn, WF_EPROTO);
    return;
  }
  /* A retired session closes after its last stream (and its held bytes). */
  if (s->nstreams == 0 && !want_write &&
      (done || (s->goaway && !wf__http_h2_pings_waiting(conn->client, conn)))) {
    wf__http_h2_fail(conn, UV_ECANCELED);
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

int wf__http_h2_become(wf__http_conn_t *conn) {
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
  wf__http_h2_after(conn); /* the preface and our SETTINGS */
  return 0;
}

int wf__http_h2_send_ping(wf__http_conn_t *conn, uint64_t id) {
  uint8_t opaque[8];
  memcpy(opaque, &id, sizeof(opaque));
  return nghttp2_submit_ping(conn->h2->ng, NGHTTP2_FLAG_NONE, opaque) == 0 ? 0 : UV_ENOMEM;
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
  /* SETTINGS ACKs, WINDOW_UPDATEs and RSTs the frames asked for go now. */
  wf__http_h2_after(conn);
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
  wf__http_h2_after(conn);
}

void wf__http_h2_fail(wf__http_conn_t *conn, int err) {
  wf__http_h2_t *s = conn->h2;
  wf_http_client_t *c = conn->client;
  wf__http_link_t gone;

  if (conn->state != CONN_H2) return;
  retire(s);
  if (err != UV_ECANCELED || s->nstreams > 0)
    wf_debug(NULL, "http %s: HTTP/2 connection ends: %s (%u streams)", c->origin,
             wf__http_errstr(err), s->nstreams);
  wf__http_h2_pings_fail(c, conn, err);
  /* The streams leave the session first (a cancel from now on finds them
   * through h2_link alone, as a waiting request), then the connection
   * closes, then each is failed or sent again: no user code runs here. */
  wf__http_list_init(&gone);
  while (!wf__http_list_empty(&s->streams)) {
    wf_http_req_t *req = container_of(s->streams.next, wf_http_req_t, h2_link);
    drop_held(s, req);
    wf__http_list_remove(&req->h2_link);
    wf__http_list_push_back(&gone, &req->h2_link);
    req->conn = NULL;
  }
  s->nstreams = 0;
  s->last = NULL;
  wf__http_conn_close(conn);
  while (!wf__http_list_empty(&gone)) {
    wf_http_req_t *req = container_of(gone.next, wf_http_req_t, h2_link);
    wf__http_list_remove(&req->h2_link);
    if (!req->h2_got && s->served && !req->retried && !c->closing && wf__http_retryable(err)) {
      req->retried = 1;
      wf__http_dispatch(c, req);
    } else {
      wf__http_queue_done(req, err);
    }
  }
}

void wf__http_h2_written(wf__http_conn_t *conn) {
  if (conn->state == CONN_H2 && nghttp2_session_want_write(conn->h2->ng))
    wf__http_h2_after(conn);
}

void wf__http_h2_resume(wf_http_req_t *req) {
  wf__http_conn_t *conn = req->conn;
  if (!conn || conn->state != CONN_H2) return;
  /* The response timeout counts from the resume, as over HTTP/1.1. */
  req->h2_rx = uv_now(conn->client->loop);
  conn->h2->kick = 1;
  arm(conn);
}

int wf__http_h2_cancel(wf_http_req_t *req) {
  wf__http_conn_t *conn = req->conn;
  wf_http_client_t *c = req->client;

  if (!conn) {
    if (wf__http_list_empty(&req->h2_link)) return 0;
    /* Waiting for the probe, or between a session's end and its retry. */
    wf__http_list_remove(&req->h2_link);
    wf__http_queue_done(req, UV_ECANCELED);
    return 1;
  }
  if (conn->state != CONN_H2) return 0;
  /* RST_STREAM is what ends a watch inside etcd (docs/peers.md §4). */
  if (req->sid > 0)
    nghttp2_submit_rst_stream(conn->h2->ng, NGHTTP2_FLAG_NONE, req->sid, NGHTTP2_CANCEL);
  drop_held(conn->h2, req);
  unlink_stream(conn->h2, req);
  wf__http_queue_done(req, UV_ECANCELED);
  if (!c->closing) wf__http_h2_after(conn);
  return 1;
}

void wf__http_h2_client_closing(wf_http_client_t *c) {
  wf__http_link_t *l, *next;
  for (l = c->conns.next; l != &c->conns; l = next) {
    wf__http_conn_t *conn = container_of(l, wf__http_conn_t, link);
    next = l->next;
    if (conn->state != CONN_H2) continue;
    /* A polite GOAWAY, best effort, unless nghttp2 is on the stack (the
     * client closed from a callback): the connection closes right after. */
    nghttp2_session_terminate_session(conn->h2->ng, NGHTTP2_NO_ERROR);
    if (!conn->h2->in_recv && !conn->h2->in_send) (void)flush(conn);
    if (conn->state == CONN_H2) wf__http_h2_fail(conn, UV_ECANCELED);
  }
  c->h2conn = NULL; /* each session's PINGs became due in wf__http_h2_fail */
}

void wf__http_h2_free(wf__http_conn_t *conn) {
  if (!conn->h2) return;
  nghttp2_session_del(conn->h2->ng);
  free(conn->h2);
  conn->h2 = NULL;
}
