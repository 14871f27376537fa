/*
 * server: the agent's HTTP/1.1 server (see include/wf/httpd.h).
 *
 * One conn_t per accepted connection, with its uv_tcp_t and one uv_timer_t
 * (the deadline) embedded; it is freed in the close callback of whichever
 * of the two closes last.  A connection goes through
 *
 *   READ    llhttp (HTTP_REQUEST) parses what arrives, bounded by max_head
 *   WRITE   the response (head + body in one buffer) is being written
 *   LINGER  written and shut down for writing; the peer's remaining bytes
 *           are read and dropped until it closes, so that closing does not
 *           send a RST that could destroy the response in flight
 *   CLOSED  uv_close() called; every callback checks for this first
 *
 * The deadline timer runs from accept to close and closes the connection in
 * any state.  The server itself is freed once its listener and every
 * connection (and every rejected socket) have reported closed.
 */
#include "wf/httpd.h"

#include <arpa/inet.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http-internal.h"

#define DEFAULT_MAX_CONNS 64
#define DEFAULT_MAX_HEAD 8192
#define DEFAULT_TIMEOUT_MS 10000
/* After the response: how long the peer gets to close its side. */
#define LINGER_MS 2000
#define MAX_BODY ((size_t)16 << 20)

enum cstate { C_READ, C_WRITE, C_LINGER, C_CLOSED };

typedef struct conn_s conn_t;

struct wf_httpd_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  wf_httpd_opts_t o;
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
  wf_buf_t url;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  wf_buf_t out;
  char rbuf[4096];
};

/* A connection over max_conns: accepted only to be closed. */
typedef struct rejected_s {
  wf_httpd_t *srv;
  uv_tcp_t tcp;
} rejected_t;

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
  free(s);
  if (cb) cb(data);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  if (--c->handles) return;
  wf_httpd_t *s = c->srv;
  wf_buf_finish(&c->url);
  wf_buf_finish(&c->out);
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
  /* A pending write or shutdown completes with UV_ECANCELED before the
   * close callbacks run; both callbacks check C_CLOSED and do nothing. */
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_deadline(uv_timer_t *t) {
  conn_t *c = t->data;
  if (c->state == C_READ || c->state == C_WRITE) c->srv->stats.timeouts++;
  conn_close(c);
}

/* ---- responding ------------------------------------------------------------------------- */

static const char *reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
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

static void on_written(uv_write_t *req, int status) {
  conn_t *c = req->data;
  if (c->state == C_CLOSED) return;
  wf_buf_finish(&c->out);
  if (status < 0 || c->peer_eof) {
    conn_close(c);
    return;
  }
  c->sreq.data = c;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c);
}

/* Sends status + body (body not sent for HEAD) and ends the connection. */
static void respond(conn_t *c, int status, const char *ctype, const char *body, size_t blen,
                    int head_only) {
  wf_buf_init(&c->out, MAX_BODY + 1024);
  int r = wf_buf_printf(&c->out,
                        "HTTP/1.1 %d %s\r\n"
                        "Content-Type: %s\r\n"
                        "Content-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n"
                        "%s"
                        "Connection: close\r\n\r\n",
                        status, reason(status), ctype, blen,
                        status == 405 ? "Allow: GET, HEAD\r\n" : "");
  if (r == 0 && !head_only && blen) r = wf_buf_append(&c->out, body, blen);
  if (r != 0) {
    conn_close(c);
    return;
  }
  c->state = C_WRITE;
  uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) conn_close(c);
}

static void respond_error(conn_t *c, int status) {
  char msg[96];
  int n = snprintf(msg, sizeof msg, "%d %s\n", status, reason(status));
  c->srv->stats.bad++;
  respond(c, status, "text/plain; charset=utf-8", msg, (size_t)n, 0);
}

static void serve(conn_t *c) {
  wf_httpd_t *s = c->srv;
  int head_only = llhttp_get_method(&c->parser) == HTTP_HEAD;
  /* The path is the target up to a query or fragment. */
  char none[] = "";
  char *path = c->url.data ? c->url.data : none;
  path[strcspn(path, "?#")] = '\0';
  wf_httpd_resp_t resp;
  resp.status = 200;
  resp.content_type = "text/plain; charset=utf-8";
  wf_buf_init(&resp.body, MAX_BODY);
  s->handler(path, &resp, s->data);
  respond(c, resp.status, resp.content_type, resp.body.data, resp.body.len, head_only);
  wf_buf_finish(&resp.body);
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

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = st->data;
  if (c->state == C_CLOSED || nread == 0) return;
  if (nread < 0) {
    c->peer_eof = 1;
    uv_read_stop(st);
    /* While writing, let the response go out (a client may half-close after
     * its request); otherwise there is nothing left to do. */
    if (c->state != C_WRITE) conn_close(c);
    return;
  }
  if (c->state == C_READ) feed(c, buf->base, (size_t)nread);
  /* WRITE and LINGER: the bytes are dropped. */
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
  conn_t *c = wf_calloc(1, sizeof *c);
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  s->handles++;
  wf_buf_init(&c->url, s->o.max_head);
  llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
  c->parser.data = c;
  c->next = s->conns;
  if (c->next) c->next->prev = c;
  s->conns = c;
  s->nconns++;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  s->stats.accepted++;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_timer_start(&c->timer, on_deadline, s->o.timeout_ms, 0);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c);
}

/* ---- public ---------------------------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h) {
  wf_httpd_t *s = h->data;
  s->handles--;
  maybe_free(s);
}

int wf_httpd_start(uv_loop_t *loop, const char *addr, const wf_httpd_opts_t *opts,
                   wf_httpd_handler handler, void *data, wf_httpd_t **out) {
  struct sockaddr_storage ss;
  if (!loop || !handler || !out) return UV_EINVAL;
  int r = wf_httpd_parse_addr(addr, 1, &ss);
  if (r != 0) return r;
  wf_httpd_t *s = wf_calloc(1, sizeof *s);
  s->loop = loop;
  s->handler = handler;
  s->data = data;
  if (opts) s->o = *opts;
  if (!s->o.max_conns) s->o.max_conns = DEFAULT_MAX_CONNS;
  if (!s->o.max_head) s->o.max_head = DEFAULT_MAX_HEAD;
  if (!s->o.timeout_ms) s->o.timeout_ms = DEFAULT_TIMEOUT_MS;
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
