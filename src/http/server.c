/*
 * server: the agent's HTTP/1.1 server (see include/wf/httpd.h).
 *
 * Why this is one idea in one file of about 940 lines (over the house's
 * 900, docs/house-rules.md rule 1): it is one connection state machine.
 * Reading, answering, streaming and the TLS paths all move the same conn_t
 * through the same states below; split apart, each part would need the
 * others' transitions and the conn_t laid open in a header.
 *
 * One conn_t per accepted connection, with its uv_tcp_t and one uv_timer_t
 * (the deadline) embedded; it is freed in the close callback of whichever
 * of the two closes last.  A connection goes through
 *
 *   READ    llhttp (HTTP_REQUEST) parses what arrives, bounded by max_head
 *           (on TLS, after the handshake, which runs inside this state)
 *   WRITE   an answer the handler gave at once (head + body, one buffer)
 *           is being written
 *   STREAM  the handler took the response over (wf_httpd_stream): the
 *           producer writes pieces, one in flight, until it ends
 *   LINGER  written and shut down for writing; the peer's remaining bytes
 *           are read and dropped until it closes, so that closing does not
 *           send a RST that could destroy the response in flight
 *   CLOSED  uv_close() called; every callback checks for this first
 *
 * The deadline timer runs from accept to the end of the response in READ
 * and WRITE.  A stream has none while it waits for its producer (a followed
 * log can be quiet for hours); it runs only while a write is out, so a
 * client that stops reading is closed after stream_stall_ms.
 *
 * Writes: on a plain connection a response piece goes out as it is (chunk
 * framing in small buffers of the connection, the producer's bytes
 * borrowed).  On TLS every piece is encrypted and what OpenSSL queued is
 * written from a buffer of its own (tls_flush), together with anything the
 * handshake or OpenSSL itself wants to send.
 */
#include "wf/httpd.h"

#include <arpa/inet.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http-internal.h"

#define DEFAULT_MAX_CONNS 64
#define DEFAULT_MAX_HEAD 8192
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_STALL_MS 60000
/* After the response: how long the peer gets to close its side. */
#define LINGER_MS 2000
#define MAX_BODY ((size_t)16 << 20)
/* A header value the agent reads (a token, a range, an ETag). */
#define MAX_HEADER_VALUE 1024

enum cstate { C_READ, C_WRITE, C_STREAM, C_LINGER, C_CLOSED };

/* The request headers the server keeps (wf_httpd_req_t). */
enum hdr { H_NONE = -1, H_AUTHORIZATION, H_RANGE, H_IF_NONE_MATCH, H_COUNT };

typedef struct conn_s conn_t;

struct wf_httpd_stream_s {
  wf_httpd_stream_cbs_t cbs;
  void *data;
  int active;               /* taken over by a producer */
  int head_sent;
  int chunked;
  int ended;                /* wf_httpd_stream_end() called */
  int last_sent;            /* the last chunk is queued (its write may still be out) */
  int completed;            /* the end went out */
};

struct wf_httpd_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  wf_httpd_opts_t o;
  wf__tls_ctx_t *tls;       /* NULL: plain HTTP */
  wf_httpd_handler handler;
  void *data;
  conn_t *conns;            /* open connections (doubly linked) */
  unsigned nconns;
  unsigned handles;         /* listener + conns + rejected sockets not yet closed */
  int closing;
  void (*close_cb)(void *);
  void *close_data;
  wf_httpd_stats_t stats;
};

struct conn_s {
  wf_httpd_t *srv;
  conn_t *prev, *next;
  uv_tcp_t tcp;
  uv_timer_t timer;
  int handles;              /* of tcp and timer, not yet closed */
  enum cstate state;
  int peer_eof;
  llhttp_t parser;
  size_t head_bytes;        /* bytes fed to the parser before the head ended */
  size_t body_bytes;
  int head_done;
  int complete;             /* a whole request was parsed */
  int err_status;           /* set by a parser callback that refused the request */
  int head_only;
  wf_buf_t url;
  enum hdr cur_hdr;         /* the header whose value is being read */
  wf_buf_t hdr_name;        /* the current header's name, bounded */
  int hdr_name_over;        /* ... and it was longer than that */
  wf_buf_t hdr[H_COUNT];
  /* TLS */
  wf__tls_t *tls;
  int tls_ready;            /* handshake done */
  int close_after_flush;    /* a failed handshake: send the alert, then close */
  /* writing */
  int writing;              /* a response write is out */
  int shutting;             /* the last write is out; shut down after it */
  uv_write_t wreq;
  uv_shutdown_t sreq;
  wf_buf_t out;             /* the head (and a synchronous body) */
  char chunk_hdr[24];
  struct wf_httpd_stream_s st;
  wf_httpd_req_t req;
  char rbuf[WF__HTTP_CIPHER_BUF_SIZE];
};

/* A connection over max_conns: accepted only to be closed. */
typedef struct rejected_s {
  wf_httpd_t *srv;
  uv_tcp_t tcp;
} rejected_t;

/* One write of ciphertext (TLS): the buffer lives with the request. */
typedef struct twrite_s {
  uv_write_t req;
  conn_t *c;
  int response;             /* completing it completes the response write */
  char data[];
} twrite_t;

static void write_done(conn_t *c, int status);
static void feed(conn_t *c, const char *p, size_t n);

/* ---- address ------------------------------------------------------------------------ */

int wf_httpd_parse_addr(const char *s, int allow_port0, struct sockaddr_storage *out) {
  char host[64];
  const char *colon, *hs, *he;
  if (!s || !out) return UV_EINVAL;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':') return UV_EINVAL;
    hs = s + 1;
    he = rb;
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon || memchr(s, ':', (size_t)(colon - s))) return UV_EINVAL;
    hs = s;
    he = colon;
  }
  size_t hlen = (size_t)(he - hs);
  if (hlen == 0 || hlen >= sizeof host) return UV_EINVAL;
  memcpy(host, hs, hlen);
  host[hlen] = '\0';
  int port = wf__http_parse_port(colon + 1, strlen(colon + 1), allow_port0);
  if (port < 0) return UV_EINVAL;
  memset(out, 0, sizeof *out);
  if (s[0] == '[') {
    return uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0 ? 0 : UV_EINVAL;
  }
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  /* inet_pton, not uv_ip4_addr: the latter accepts "1" or "1.2.3" via
   * inet_aton-style shorthand on some libcs. */
  struct sockaddr_in *a4 = (struct sockaddr_in *)out;
  if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) return UV_EINVAL;
  a4->sin_family = AF_INET;
  a4->sin_port = htons((uint16_t)port);
  return 0;
}

/* ---- teardown ------------------------------------------------------------------------- */

static void maybe_free(wf_httpd_t *s) {
  if (!s->closing || s->handles) return;
  void (*cb)(void *) = s->close_cb;
  void *data = s->close_data;
  wf__tls_ctx_destroy(s->tls);
  free(s);
  if (cb) cb(data);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  if (--c->handles) return;
  wf_httpd_t *s = c->srv;
  /* The producer learns here, from the loop, that its stream is over. */
  if (c->st.active && c->st.cbs.on_close) c->st.cbs.on_close(&c->st, c->st.completed, c->st.data);
  wf_buf_finish(&c->url);
  wf_buf_finish(&c->out);
  wf_buf_finish(&c->hdr_name);
  for (int i = 0; i < H_COUNT; i++) wf_buf_finish(&c->hdr[i]);
  wf__tls_destroy(c->tls);
  free(c);
  s->handles--;
  maybe_free(s);
}

static void conn_close(conn_t *c) {
  if (c->state == C_CLOSED) return;
  wf_httpd_t *s = c->srv;
  c->state = C_CLOSED;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nconns--;
  /* Pending writes and a pending shutdown complete with UV_ECANCELED before
   * the close callbacks run; their callbacks check C_CLOSED. */
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_deadline(uv_timer_t *t) {
  conn_t *c = t->data;
  if (c->state == C_READ || c->state == C_WRITE || c->state == C_STREAM) c->srv->stats.timeouts++;
  conn_close(c);
}

/* ---- writing ---------------------------------------------------------------------------- */

static void on_twrite(uv_write_t *req, int status) {
  twrite_t *w = req->data;
  conn_t *c = w->c;
  int response = w->response;
  free(w);
  if (c->state == C_CLOSED) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (response) write_done(c, 0);
  else if (c->close_after_flush) conn_close(c);
}

/* Writes what OpenSSL queued for the peer.  response: this write carries
 * (the end of) a response piece, whose completion is write_done.  0, or a
 * negative error (the connection is then to be closed). */
static int tls_flush(conn_t *c, int response) {
  size_t n = wf__tls_out_pending(c->tls);
  if (n == 0) {
    if (response) write_done(c, 0);  /* nothing to send: never for a real piece */
    return 0;
  }
  twrite_t *w = malloc(sizeof *w + n);
  if (!w) return UV_ENOMEM;
  w->c = c;
  w->response = response;
  w->req.data = w;
  n = wf__tls_out_take(c->tls, w->data, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_twrite);
  if (r != 0) free(w);
  return r;
}

static void on_plain_written(uv_write_t *req, int status) {
  conn_t *c = req->data;
  if (c->state == C_CLOSED) return;
  write_done(c, status);
}

/* Sends n buffers (borrowed until write_done) as one response write. */
static int conn_send(conn_t *c, uv_buf_t *bufs, unsigned n) {
  c->writing = 1;
  if (c->state == C_STREAM) uv_timer_start(&c->timer, on_deadline, c->srv->o.stream_stall_ms, 0);
  if (!c->tls) {
    c->wreq.data = c;
    return uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, n, on_plain_written);
  }
  for (unsigned i = 0; i < n; i++)
    if (bufs[i].len && wf__tls_write(c->tls, bufs[i].base, bufs[i].len) != 0) return WF_ETLS;
  return tls_flush(c, 1);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn_t *c = req->data;
  if (c->state == C_CLOSED) return;
  if (status < 0 || c->peer_eof) {
    conn_close(c);
    return;
  }
  /* Keep reading (and dropping) until the peer closes or LINGER_MS pass. */
  c->state = C_LINGER;
  uv_timer_start(&c->timer, on_deadline, LINGER_MS, 0);
}

/* The whole response went out: say goodbye (close_notify on TLS), then
 * shut down for writing. */
static void finish(conn_t *c) {
  if (c->tls && !c->shutting) {
    c->shutting = 1;
    wf__tls_shutdown(c->tls);
    c->writing = 1;
    /* The close_notify is a write the client may not take either, and a
     * stream has no deadline here (write_done stopped it): without one, a
     * client that stops reading just after the body holds the connection,
     * and the producer's on_close, forever. */
    if (c->state == C_STREAM) uv_timer_start(&c->timer, on_deadline, c->srv->o.stream_stall_ms, 0);
    if (tls_flush(c, 1) != 0) conn_close(c);
    return;
  }
  if (c->peer_eof) {
    conn_close(c);
    return;
  }
  c->sreq.data = c;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c);
}

static const char last_chunk[] = "0\r\n\r\n";

static void write_done(conn_t *c, int status) {
  c->writing = 0;
  wf_buf_finish(&c->out);
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->state == C_WRITE || c->shutting) {
    finish(c);
    return;
  }
  /* C_STREAM: no deadline while the producer has the word. */
  uv_timer_stop(&c->timer);
  struct wf_httpd_stream_s *st = &c->st;
  if (st->ended) {
    /* completed only once the last chunk's write is done: one stuck in a
     * full socket when the stall deadline, an abort or the client's leaving
     * closes the connection is no completed response (last_sent says it is
     * queued). */
    if (st->chunked && !st->last_sent && !c->head_only) {
      st->last_sent = 1;
      uv_buf_t b = uv_buf_init((char *)last_chunk, sizeof last_chunk - 1);
      if (conn_send(c, &b, 1) != 0) conn_close(c);
      return;
    }
    st->completed = 1;
    finish(c);
    return;
  }
  /* A follow whose client half-closed before its head went out (see
   * peer_done): gone too. */
  if (c->peer_eof && st->chunked) {
    conn_close(c);
    return;
  }
  if (st->cbs.on_drain) st->cbs.on_drain(st, st->data);
}

/* ---- synchronous answers ------------------------------------------------------------------ */

static const char *reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

static int print_head(wf_buf_t *out, int status, const char *ctype, const char *length_line,
                      const char *headers) {
  return wf_buf_printf(out,
                       "HTTP/1.1 %d %s\r\n"
                       "Content-Type: %s\r\n"
                       "%s"
                       "Cache-Control: no-store\r\n"
                       "%s%s"
                       "Connection: close\r\n\r\n",
                       status, reason(status), ctype, length_line,
                       status == 405 ? "Allow: GET, HEAD\r\n" : "", headers ? headers : "");
}

/* Sends status + body (body not sent for HEAD) and ends the connection. */
static void respond(conn_t *c, int status, const char *ctype, const char *body, size_t blen,
                    const char *headers) {
  char len_line[48];
  snprintf(len_line, sizeof len_line, "Content-Length: %zu\r\n", blen);
  wf_buf_init(&c->out, MAX_BODY + 2048);
  int r = print_head(&c->out, status, ctype, len_line, headers);
  if (r == 0 && !c->head_only && blen) r = wf_buf_append(&c->out, body, blen);
  if (r != 0) {
    conn_close(c);
    return;
  }
  c->state = C_WRITE;
  uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
  if (conn_send(c, &b, 1) != 0) conn_close(c);
}

static void respond_error(conn_t *c, int status) {
  char msg[96];
  int n = snprintf(msg, sizeof msg, "%d %s\n", status, reason(status));
  c->srv->stats.bad++;
  respond(c, status, "text/plain; charset=utf-8", msg, (size_t)n, NULL);
}

static void serve(conn_t *c) {
  wf_httpd_t *s = c->srv;
  c->head_only = llhttp_get_method(&c->parser) == HTTP_HEAD;
  /* The path is the target up to a query or fragment. */
  char none[] = "";
  char *path = c->url.data ? c->url.data : none;
  char *frag = strchr(path, '#');
  if (frag) *frag = '\0';
  char *q = strchr(path, '?');
  if (q) *q++ = '\0';
  wf_httpd_req_t *req = &c->req;
  memset(req, 0, sizeof *req);
  req->head_only = c->head_only;
  req->path = path;
  req->query = q ? q : "";
  req->authorization = c->hdr[H_AUTHORIZATION].data;
  req->range = c->hdr[H_RANGE].data;
  req->if_none_match = c->hdr[H_IF_NONE_MATCH].data;
  req->tls = c->tls != NULL;
  req->peer_verified = c->tls && wf__tls_peer_verified(c->tls);
  wf_httpd_resp_t resp;
  resp.status = 200;
  resp.content_type = "text/plain; charset=utf-8";
  resp.headers = NULL;
  wf_buf_init(&resp.body, MAX_BODY);
  s->handler(req, &resp, s->data);
  if (!c->st.active)
    respond(c, resp.status, resp.content_type, resp.body.data, resp.body.len, resp.headers);
  wf_buf_finish(&resp.body);
}

/* ---- streamed answers ---------------------------------------------------------------------- */

wf_httpd_stream_t *wf_httpd_stream(wf_httpd_req_t *req, const wf_httpd_stream_cbs_t *cbs,
                                   void *data) {
  if (!req) return NULL;
  conn_t *c = container_of(req, conn_t, req);
  if (c->state != C_READ || c->st.active) return NULL;
  c->st.active = 1;
  if (cbs) c->st.cbs = *cbs;
  c->st.data = data;
  c->state = C_STREAM;
  /* The request deadline ends here; writes carry their own. */
  uv_timer_stop(&c->timer);
  return &c->st;
}

int wf_httpd_stream_head(wf_httpd_stream_t *st, int status, const char *content_type,
                         int64_t content_length, const char *headers) {
  conn_t *c = container_of(st, conn_t, st);
  if (c->state != C_STREAM) return WF_ECLOSED;
  if (c->writing || st->head_sent) return UV_EBUSY;
  char len_line[64];
  if (content_length >= 0)
    snprintf(len_line, sizeof len_line, "Content-Length: %lld\r\n", (long long)content_length);
  else
    snprintf(len_line, sizeof len_line, "Transfer-Encoding: chunked\r\n");
  st->chunked = content_length < 0;
  st->head_sent = 1;
  wf_buf_init(&c->out, 8192);
  if (print_head(&c->out, status, content_type ? content_type : "text/plain; charset=utf-8",
                 len_line, headers) != 0) {
    conn_close(c);
    return WF_ECLOSED;
  }
  /* HEAD: the head is the whole answer. */
  if (c->head_only) st->ended = 1;
  uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
  if (conn_send(c, &b, 1) != 0) {
    conn_close(c);
    return WF_ECLOSED;
  }
  return 0;
}

int wf_httpd_stream_reply(wf_httpd_stream_t *st, int status, const char *body, size_t len,
                          const char *headers) {
  conn_t *c = container_of(st, conn_t, st);
  if (c->state != C_STREAM) return WF_ECLOSED;
  if (c->writing || st->head_sent) return UV_EBUSY;
  st->head_sent = st->ended = 1;
  st->chunked = 0;
  char len_line[48] = "";
  /* A 304 has no body, and a Content-Length there would have to be the
   * full answer's (RFC 9110 §8.6): none is sent. */
  if (status != 304) snprintf(len_line, sizeof len_line, "Content-Length: %zu\r\n", len);
  wf_buf_init(&c->out, MAX_BODY + 2048);
  int r = print_head(&c->out, status, "text/plain; charset=utf-8", len_line, headers);
  if (r == 0 && !c->head_only && len) r = wf_buf_append(&c->out, body, len);
  uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
  if (r != 0 || conn_send(c, &b, 1) != 0) {
    conn_close(c);
    return WF_ECLOSED;
  }
  return 0;
}

static const char crlf[] = "\r\n";

int wf_httpd_stream_write(wf_httpd_stream_t *st, const char *buf, size_t len) {
  conn_t *c = container_of(st, conn_t, st);
  if (c->state != C_STREAM) return WF_ECLOSED;
  if (c->writing || !st->head_sent || st->ended) return UV_EBUSY;
  if (len == 0 || c->head_only) return 0;
  uv_buf_t b[3];
  unsigned n = 0;
  if (st->chunked) {
    int hl = snprintf(c->chunk_hdr, sizeof c->chunk_hdr, "%zx\r\n", len);
    b[n++] = uv_buf_init(c->chunk_hdr, (unsigned)hl);
  }
  b[n++] = uv_buf_init((char *)buf, (unsigned)len);
  if (st->chunked) b[n++] = uv_buf_init((char *)crlf, 2);
  if (conn_send(c, b, n) != 0) {
    conn_close(c);
    return WF_ECLOSED;
  }
  return 0;
}

void wf_httpd_stream_end(wf_httpd_stream_t *st) {
  conn_t *c = container_of(st, conn_t, st);
  if (c->state != C_STREAM || st->ended) return;
  st->ended = 1;
  if (c->writing) return;  /* write_done goes on from there */
  if (!st->head_sent) {
    conn_close(c);
    return;
  }
  if (st->chunked && !c->head_only) {
    st->last_sent = 1; /* completed when it is written (write_done) */
    uv_buf_t b = uv_buf_init((char *)last_chunk, sizeof last_chunk - 1);
    if (conn_send(c, &b, 1) != 0) conn_close(c);
    return;
  }
  st->completed = 1;
  finish(c);
}

void wf_httpd_stream_abort(wf_httpd_stream_t *st) {
  conn_close(container_of(st, conn_t, st));
}

/* ---- parsing ---------------------------------------------------------------------------- */

static int on_url_cb(llhttp_t *p, const char *at, size_t n) {
  conn_t *c = p->data;
  /* The head bound covers the URL too; this only keeps the copy bounded. */
  if (wf_buf_append(&c->url, at, n) != 0) {
    c->err_status = 431;
    return HPE_USER;
  }
  return 0;
}

static int on_header_field_cb(llhttp_t *p, const char *at, size_t n) {
  conn_t *c = p->data;
  /* A name longer than the buffer is none the server reads: ignore it. */
  if (wf_buf_append(&c->hdr_name, at, n) != 0) c->hdr_name_over = 1;
  return 0;
}

static int on_header_field_complete_cb(llhttp_t *p) {
  conn_t *c = p->data;
  static const char *const names[H_COUNT] = {"authorization", "range", "if-none-match"};
  c->cur_hdr = H_NONE;
  for (int i = 0; i < H_COUNT && !c->hdr_name_over; i++)
    if (c->hdr_name.data && c->hdr_name.len == strlen(names[i]) &&
        strncasecmp(c->hdr_name.data, names[i], c->hdr_name.len) == 0)
      c->cur_hdr = (enum hdr)i;
  wf_buf_reset(&c->hdr_name);
  c->hdr_name_over = 0;
  if (c->cur_hdr != H_NONE) wf_buf_reset(&c->hdr[c->cur_hdr]);
  return 0;
}

static int on_header_value_cb(llhttp_t *p, const char *at, size_t n) {
  conn_t *c = p->data;
  if (c->cur_hdr == H_NONE) return 0;
  if (wf_buf_append(&c->hdr[c->cur_hdr], at, n) != 0) {
    c->err_status = 431;
    return HPE_USER;
  }
  return 0;
}

static int on_header_value_complete_cb(llhttp_t *p) {
  conn_t *c = p->data;
  /* An empty value still reads as present. */
  if (c->cur_hdr != H_NONE && !c->hdr[c->cur_hdr].data) (void)wf_buf_append(&c->hdr[c->cur_hdr], "", 0);
  c->cur_hdr = H_NONE;
  return 0;
}

static int on_headers_complete_cb(llhttp_t *p) {
  conn_t *c = p->data;
  c->head_done = 1;
  int m = llhttp_get_method(p);
  if (m != HTTP_GET && m != HTTP_HEAD) {
    /* Refuse before reading any body it may announce. */
    c->err_status = 405;
    return -1;
  }
  return 0;
}

static int on_body_cb(llhttp_t *p, const char *at, size_t n) {
  conn_t *c = p->data;
  c->body_bytes += n;
  if (c->body_bytes > c->srv->o.max_head) {
    c->err_status = 413;
    return HPE_USER;
  }
  return 0;
}

static int on_message_complete_cb(llhttp_t *p) {
  conn_t *c = p->data;
  c->complete = 1;
  /* One request per connection: whatever follows is not parsed. */
  return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_url = on_url_cb,
    .on_header_field = on_header_field_cb,
    .on_header_field_complete = on_header_field_complete_cb,
    .on_header_value = on_header_value_cb,
    .on_header_value_complete = on_header_value_complete_cb,
    .on_headers_complete = on_headers_complete_cb,
    .on_body = on_body_cb,
    .on_message_complete = on_message_complete_cb,
};

/* Feeds n bytes; answers once the request is complete or refused. */
static void feed(conn_t *c, const char *p, size_t n) {
  size_t max_head = c->srv->o.max_head;
  while (n > 0 && c->state == C_READ) {
    /* While the head is open, feed no more than its bound allows, so a head
     * of max_head + 1 bytes is refused however the bytes are split. */
    size_t take = n;
    if (!c->head_done && take > max_head - c->head_bytes) take = max_head - c->head_bytes;
    llhttp_errno_t e = take ? llhttp_execute(&c->parser, p, take) : HPE_OK;
    if (c->complete) {
      serve(c);
      return;
    }
    if (e != HPE_OK) {
      respond_error(c, c->err_status ? c->err_status : 400);
      return;
    }
    if (!c->head_done) {
      c->head_bytes += take;
      if (c->head_bytes >= max_head) {
        respond_error(c, 431);
        return;
      }
    }
    p += take;
    n -= take;
  }
}

/* ---- reading ------------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  conn_t *c = h->data;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

/* The peer is done sending (EOF, or close_notify on TLS). */
static void peer_done(conn_t *c) {
  c->peer_eof = 1;
  uv_read_stop((uv_stream_t *)&c->tcp);
  /* While writing an answer, let it go out: a client may half-close after
   * its request (nc -N, socat), and an answer of known length (a stream
   * before its head, or with Content-Length) ends by itself.  A chunked
   * stream is a follow that may last for hours: a client that leaves it is
   * gone, and must not hold a follower's slot until the next write fails. */
  int keep = c->state == C_WRITE ||
             (c->state == C_STREAM && (c->st.ended || !c->st.head_sent || !c->st.chunked));
  if (!keep) conn_close(c);
}

static void tls_fail(conn_t *c) {
  wf_debug(NULL, "http server: TLS: %s", wf__tls_error(c->tls));
  if (!c->tls_ready) c->srv->stats.tls_failed++;
  /* Send the alert OpenSSL queued, then close. */
  c->close_after_flush = 1;
  if (c->writing || wf__tls_out_pending(c->tls) == 0 || tls_flush(c, 0) != 0) conn_close(c);
}

/* Ciphertext arrived: handshake, then plaintext into the parser. */
static void tls_input(conn_t *c, const char *p, size_t n) {
  if (wf__tls_feed(c->tls, p, n) != 0) {
    tls_fail(c);
    return;
  }
  if (!c->tls_ready) {
    int r = wf__tls_handshake(c->tls);
    if (r < 0) {
      tls_fail(c);
      return;
    }
    if (!c->writing && tls_flush(c, 0) != 0) {
      conn_close(c);
      return;
    }
    if (r == 1) return;
    c->tls_ready = 1;
  }
  char plain[4096];
  for (;;) {
    ssize_t m = wf__tls_read(c->tls, plain, sizeof plain);
    if (m == 0) break;
    if (m == UV_EOF) {
      peer_done(c);
      return;
    }
    if (m < 0) {
      tls_fail(c);
      return;
    }
    if (c->state == C_READ) feed(c, plain, (size_t)m);
    if (c->state == C_CLOSED) return;
  }
  /* OpenSSL may answer on its own (a key update); not while a response
   * write is out, whose flush takes it along. */
  if (!c->writing && c->state != C_CLOSED && wf__tls_out_pending(c->tls) && tls_flush(c, 0) != 0)
    conn_close(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = st->data;
  if (c->state == C_CLOSED || nread == 0) return;
  if (nread < 0) {
    peer_done(c);
    return;
  }
  if (c->tls) {
    if (c->state != C_LINGER) tls_input(c, buf->base, (size_t)nread);
    return;
  }
  if (c->state == C_READ) feed(c, buf->base, (size_t)nread);
  /* WRITE, STREAM and LINGER: the bytes are dropped. */
}

/* ---- accepting ---------------------------------------------------------------------------- */

static void on_rejected_closed(uv_handle_t *h) {
  rejected_t *r = h->data;
  wf_httpd_t *s = r->srv;
  free(r);
  s->handles--;
  maybe_free(s);
}

static void reject(wf_httpd_t *s) {
  rejected_t *r = wf_calloc(1, sizeof *r);
  r->srv = s;
  uv_tcp_init(s->loop, &r->tcp);
  r->tcp.data = r;
  s->handles++;
  /* Accepting takes it out of the backlog; closing it at once tells the
   * client at once, instead of leaving it to time out. */
  (void)uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&r->tcp);
  s->stats.rejected++;
  uv_close((uv_handle_t *)&r->tcp, on_rejected_closed);
}

/* A connection on a fresh uv_tcp_t, linked and counted; the caller gives it
 * its socket (uv_accept), then conn_start(). */
static conn_t *conn_new(wf_httpd_t *s) {
  conn_t *c = wf_calloc(1, sizeof *c);
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  s->handles++;
  wf_buf_init(&c->url, s->o.max_head);
  wf_buf_init(&c->hdr_name, 64);
  for (int i = 0; i < H_COUNT; i++) wf_buf_init(&c->hdr[i], MAX_HEADER_VALUE);
  c->cur_hdr = H_NONE;
  llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
  c->parser.data = c;
  c->next = s->conns;
  if (c->next) c->next->prev = c;
  s->conns = c;
  s->nconns++;
  return c;
}

/* The socket is c's: its TLS session, the deadline, reading. */
static void conn_start(conn_t *c) {
  wf_httpd_t *s = c->srv;
  if (s->tls) {
    char err[WF__HTTP_TLS_ERR_LEN];
    c->tls = wf__tls_accept_create(s->tls, err, sizeof err);
    if (!c->tls) {
      wf_warn(NULL, "http server: TLS: %s", err);
      conn_close(c);
      return;
    }
  }
  s->stats.accepted++;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_timer_start(&c->timer, on_deadline, s->o.timeout_ms, 0);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c);
}

static void on_connection(uv_stream_t *l, int status) {
  wf_httpd_t *s = l->data;
  if (status < 0) {
    wf_debug(NULL, "http server: accept failed: %s", uv_strerror(status));
    return;
  }
  if (s->closing) return;
  if (s->nconns >= s->o.max_conns) {
    reject(s);
    return;
  }
  conn_t *c = conn_new(s);
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  conn_start(c);
}

int wf__httpd_adopt(wf_httpd_t *s, uv_os_sock_t fd) {
  if (!s || s->closing || s->nconns >= s->o.max_conns) {
    close(fd);
    return s ? UV_EBUSY : UV_EINVAL;
  }
  conn_t *c = conn_new(s);
  int r = uv_tcp_open(&c->tcp, fd);
  if (r != 0) {
    close(fd); /* not the handle's: uv_close below does not close it */
    conn_close(c);
    return r;
  }
  conn_start(c);
  return 0;
}

/* ---- public ---------------------------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h) {
  wf_httpd_t *s = h->data;
  s->handles--;
  maybe_free(s);
}

int wf_httpd_start(uv_loop_t *loop, const char *addr, const wf_httpd_opts_t *opts,
                   wf_httpd_handler handler, void *data, wf_httpd_t **out, char *err,
                   size_t errlen) {
  struct sockaddr_storage ss;
  char ebuf[WF__HTTP_TLS_ERR_LEN];
  if (!err) {
    err = ebuf;
    errlen = sizeof ebuf;
  }
  if (errlen) err[0] = '\0';
  if (!loop || !handler || !out) return UV_EINVAL;
  int r = wf_httpd_parse_addr(addr, 1, &ss);
  if (r != 0) return r;
  wf__tls_ctx_t *tls = NULL;
  if (opts && (opts->cert_file || opts->key_file)) {
    if (!opts->cert_file || !opts->key_file) {
      snprintf(err, errlen, "a TLS listener needs both a certificate and a key");
      return WF_ETLS;
    }
    tls = wf__tls_server_ctx_create(opts->cert_file, opts->key_file, opts->client_ca_file, err,
                                    errlen);
    if (!tls) return WF_ETLS;
  } else if (opts && opts->client_ca_file) {
    snprintf(err, errlen, "client certificates need a TLS listener (a certificate and a key)");
    return WF_ETLS;
  }
  wf_httpd_t *s = wf_calloc(1, sizeof *s);
  s->loop = loop;
  s->handler = handler;
  s->data = data;
  s->tls = tls;
  if (opts) s->o = *opts;
  s->o.cert_file = s->o.key_file = s->o.client_ca_file = NULL;  /* borrowed for this call only */
  if (!s->o.max_conns) s->o.max_conns = DEFAULT_MAX_CONNS;
  if (!s->o.max_head) s->o.max_head = DEFAULT_MAX_HEAD;
  if (!s->o.timeout_ms) s->o.timeout_ms = DEFAULT_TIMEOUT_MS;
  if (!s->o.stream_stall_ms) s->o.stream_stall_ms = DEFAULT_STALL_MS;
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  s->handles = 1;
  r = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
  /* libuv reports some bind errors (EADDRINUSE) only at listen. */
  if (r == 0) r = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
  if (r != 0) {
    /* Closed through the normal path so the caller's loop ends clean. */
    s->closing = 1;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    return r;
  }
  *out = s;
  return 0;
}

int wf_httpd_port(const wf_httpd_t *s) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) != 0) return -1;
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void wf_httpd_stats(const wf_httpd_t *s, wf_httpd_stats_t *out) {
  *out = s->stats;
  out->open = s->nconns;
}

void wf_httpd_close(wf_httpd_t *s, void (*cb)(void *data), void *data) {
  if (!s || s->closing) return;
  s->closing = 1;
  s->close_cb = cb;
  s->close_data = data;
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
  while (s->conns) conn_close(s->conns);
}
