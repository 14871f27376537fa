/*
 * http/client-message.c: one HTTP/1.1 exchange's bytes, for client.c.  Out:
 * the request head and body, checked and serialized once
 * (wf__http_request_build) so that a retry sends the same bytes.  In: the
 * response through llhttp (wf__http_feed): the head gathered into the
 * request and handed to on_head, interim 1xx responses skipped, the body
 * (llhttp de-chunks it; trailers are accepted and ignored) buffered up to
 * max_body or streamed to on_data, the user's pause turned into llhttp's,
 * and the end of the response found, also when the close delimits it
 * (wf__http_on_eof).
 *
 * A file of its own because this is the protocol, apart from the transport:
 * nothing here touches a socket, a timer or the pool.  It reports to the
 * state machines in client.c (wf__http_complete_req, wf__http_conn_fail),
 * which decide what the connection does next, and is fed the same way
 * whether the bytes came straight from the socket or out of OpenSSL
 * (client-tls.c).
 *
 * Bounds: the response head (status line, headers, and trailers after the
 * body) is charged to max_header as llhttp hands it out, plus a per-line
 * overhead; the raw bytes of the reads that end inside the head are counted
 * against it too, so bytes llhttp skips count as well: over it is
 * WF_ETOOBIG.  A buffered body
 * over max_body is WF_ETOOBIG; a parse error, a status below 100 and a 101
 * are WF_EPROTO.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http-internal.h"

/* Bytes charged per header line on top of name and value (": " and CRLF). */
#define HEADER_LINE_OVERHEAD 4

/* ---- the request ------------------------------------------------------------------ */
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

int wf__http_request_build(const char *host_header, const wf_http_req_opts_t *opts,
                           wf_buf_t *out) {
  int has_host = 0;
  size_t i;

  if (!clean_token(opts->method, " \t:") || !clean_token(opts->path, " \t")) return UV_EINVAL;
  if (!opts->body && opts->body_len > 0) return UV_EINVAL;
  if (!opts->headers && opts->nheaders > 0) return UV_EINVAL;
  /* uv_buf_t's length is an unsigned int; leave room for the head. */
  if (opts->body_len > (size_t)INT32_MAX) return UV_EINVAL;
  for (i = 0; i < opts->nheaders; i++) {
    const wf_http_header_t *h = &opts->headers[i];
    if (!clean_token(h->name, " \t:") || !clean_value(h->value)) return UV_EINVAL;
    if (strcasecmp(h->name, "Host") == 0) has_host = 1;
  }

  wf_buf_init(out, SIZE_MAX);
  wf_buf_printf(out, "%s %s HTTP/1.1\r\n", opts->method, opts->path);
  if (!has_host) wf_buf_printf(out, "Host: %s\r\n", host_header);
  for (i = 0; i < opts->nheaders; i++) {
    const wf_http_header_t *h = &opts->headers[i];
    /* Framing and connection handling are ours. */
    if (strcasecmp(h->name, "Content-Length") == 0 || strcasecmp(h->name, "Connection") == 0)
      continue;
    wf_buf_printf(out, "%s: %s\r\n", h->name, h->value);
  }
  wf_buf_printf(out, "Connection: keep-alive\r\n");
  if (opts->body || method_has_body(opts->method))
    wf_buf_printf(out, "Content-Length: %zu\r\n", opts->body_len);
  wf_buf_append(out, "\r\n", 2);
  if (opts->body_len > 0) wf_buf_append(out, opts->body, opts->body_len);
  return 0;
}

/* ---- parser callbacks ------------------------------------------------------------- */
static int head_charge(wf__http_conn_t *conn, size_t n) {
  conn->head_bytes += n;
  if (conn->head_bytes > conn->req->max_header) {
    conn->cb_err = WF_ETOOBIG;
    return -1;
  }
  return 0;
}

static int on_message_begin_cb(llhttp_t *p) {
  wf__http_conn_t *conn = p->data;
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
  wf__http_conn_t *conn = p->data;
  if (head_charge(conn, n)) return -1;
  /* After the head these are trailers: bounded, accepted and ignored. */
  if (conn->head_done) return 0;
  wf_buf_append(&conn->req->headbuf, at, n);
  return 0;
}

static int on_header_field_complete_cb(llhttp_t *p) {
  wf__http_conn_t *conn = p->data;
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
  wf__http_conn_t *conn = p->data;
  wf_http_req_t *req = conn->req;
  if (conn->head_done) return 0;
  req->hoffs[2 * req->nhdr + 1] = conn->hdr_start;
  wf_buf_append(&req->headbuf, "", 1);
  conn->hdr_start = req->headbuf.len;
  req->nhdr++;
  return 0;
}

static int on_headers_complete_cb(llhttp_t *p) {
  wf__http_conn_t *conn = p->data;
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
    if (wf__http_gone(conn, req)) return -1;
  }
  if (req->is_head) return 1; /* no body follows whatever the headers say */
  if (req->paused) return HPE_PAUSED;
  return 0;
}

static int on_body_cb(llhttp_t *p, const char *at, size_t n) {
  wf__http_conn_t *conn = p->data;
  wf_http_req_t *req = conn->req;

  if (req->stream) {
    if (n > 0 && req->cbs.on_data) {
      req->cbs.on_data(req, at, n, req->data);
      if (wf__http_gone(conn, req)) return -1;
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
  wf__http_conn_t *conn = p->data;
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

/* ---- the response ------------------------------------------------------------------- */
void wf__http_response_begin(wf__http_conn_t *conn) {
  llhttp_init(&conn->parser, HTTP_RESPONSE, &parser_settings);
  conn->parser.data = conn;
  conn->got_bytes = conn->head_done = conn->interim = 0;
  conn->res_complete = conn->keep_alive = conn->cb_err = 0;
  conn->head_bytes = conn->head_raw = conn->hdr_start = 0;
  conn->parser_paused = 0;
  conn->pend_off = conn->pend_len = 0;
  conn->tls_more = 0;
}

void wf__http_feed(wf__http_conn_t *conn, const char *p, size_t n) {
  wf_http_req_t *req = conn->req;
  llhttp_errno_t e;
  const char *stop;

  conn->in_feed = 1;
  e = llhttp_execute(&conn->parser, p, n);
  conn->in_feed = 0;
  if (wf__http_gone(conn, req)) return;
  if (e == HPE_OK) {
    if (!conn->head_done) {
      conn->head_raw += n;
      if (conn->head_raw > req->max_header) wf__http_conn_fail(conn, WF_ETOOBIG);
    }
    return;
  }
  if (e != HPE_PAUSED) {
    wf_debug(NULL, "http %s: parse error %s: %s", conn->client->origin, llhttp_errno_name(e),
             llhttp_get_error_reason(&conn->parser));
    wf__http_conn_fail(conn, conn->cb_err ? conn->cb_err : WF_EPROTO);
    return;
  }
  stop = llhttp_get_error_pos(&conn->parser);
  if (conn->res_complete) {
    /* Bytes after the response belong to no request: such a connection is
     * not reused.  (Over TLS, records still inside OpenSSL are looked at
     * once the connection is pooled: see client-tls.c's pump.) */
    if (stop != p + n) conn->keep_alive = 0;
    wf__http_complete_req(conn, 0);
    return;
  }
  /* The user paused: keep what llhttp has not seen for wf_http_req_resume. */
  llhttp_resume(&conn->parser);
  conn->parser_paused = 1;
  conn->pend_off = (size_t)(stop - conn->rbuf);
  conn->pend_len = (size_t)(p + n - stop);
}

void wf__http_on_eof(wf__http_conn_t *conn, int err) {
  wf_http_req_t *req = conn->req;

  if (err == UV_EOF && conn->got_bytes) {
    /* A body delimited by the close completes here; anything else was cut. */
    conn->in_feed = 1;
    llhttp_finish(&conn->parser);
    conn->in_feed = 0;
    if (wf__http_gone(conn, req)) return;
    if (conn->res_complete) {
      conn->keep_alive = 0;
      wf__http_complete_req(conn, 0);
      return;
    }
  }
  wf__http_conn_fail(conn, err);
}
