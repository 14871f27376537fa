/*
 * httpd: a small HTTP/1.1 server on libuv + llhttp for the agent's own
 * endpoints (/healthz, /readyz, /metrics, step logs).  It knows nothing of those paths:
 * a handler maps a path to a status and a body.
 *
 * It serves GET and HEAD only, one request per connection (every response
 * says "Connection: close"), and bounds what a client can hold:
 *
 *   - at most max_conns connections at once; more are accepted and closed
 *     at once, so the kernel's backlog never fills up with them;
 *   - a request head of at most max_head bytes (431 and close), a body of
 *     at most max_head bytes too (413), anything llhttp rejects gets 400;
 *   - one deadline per connection (timeout_ms from accept): a client that
 *     sends its head slowly, never reads the response, or keeps the
 *     connection open is closed when it passes.
 *
 * Everything runs on the caller's loop.  The handler is called from a read
 * callback and either answers at once, or takes the response over as a
 * stream that a producer writes piece by piece (a followed log), with one
 * write in flight and a deadline on writes the client does not take.
 *
 * With a certificate and key it speaks TLS (OpenSSL through memory BIOs, on
 * the same loop), optionally asking for client certificates.
 */
#ifndef WF_HTTPD_H
#define WF_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "wf/util.h"

typedef struct wf_httpd_s wf_httpd_t;

typedef struct wf_httpd_opts_s {
  unsigned max_conns;   /* open connections; default 64 */
  size_t max_head;      /* request head bound in bytes; default 8192 */
  uint64_t timeout_ms;  /* per-connection deadline from accept; default 10000 */
  /* A streamed response (wf_httpd_stream) has no deadline while it waits
   * for its producer; a write the client does not take within this many ms
   * closes it.  Default 60000. */
  uint64_t stream_stall_ms;
  /* TLS (all three borrowed for the call to wf_httpd_start only): with
   * cert_file and key_file the server speaks TLS only; with client_ca_file
   * too, a client must present a certificate that CA signed.  The files are
   * read at start, and OpenSSL is loaded then (tls-dl). */
  const char *cert_file;
  const char *key_file;
  const char *client_ca_file;
} wf_httpd_opts_t;

/* One request, as the handler sees it: borrowed for the handler call (and,
 * for a stream, until its on_close). */
typedef struct wf_httpd_req_s {
  int head_only;              /* HEAD: the body is computed but not sent */
  const char *path;           /* the target up to '?' or '#', not decoded */
  const char *query;          /* after '?', up to '#'; "" when none */
  /* The few request headers the agent reads, NULL when absent (a repeated
   * header keeps its last value). */
  const char *authorization;
  const char *range;
  const char *if_none_match;
  int tls;                    /* came over TLS */
  int peer_verified;          /* TLS with a client certificate the CA signed */
} wf_httpd_req_t;

/* What the handler fills in.  The server owns body (bounded at 16 MiB) and
 * frees it after the response is written. */
typedef struct wf_httpd_resp_s {
  int status;                 /* preset to 200 */
  const char *content_type;   /* preset to "text/plain; charset=utf-8"; must be static */
  wf_buf_t body;
  /* Extra header lines, each ending in "\r\n" (e.g. WWW-Authenticate);
   * must be static or outlive the handler call.  NULL = none. */
  const char *headers;
} wf_httpd_resp_t;

/* Called once per GET or HEAD request.  It answers either synchronously,
 * through resp, or by taking the response over with wf_httpd_stream()
 * (then resp is ignored).  The handler must not call wf_httpd_close() (do
 * it from any other callback). */
typedef void (*wf_httpd_handler)(wf_httpd_req_t *req, wf_httpd_resp_t *resp, void *data);

/* ---- streamed responses -------------------------------------------------------------- */

/* A response written piece by piece by a producer (a log follower), with one
 * write in flight at a time, so that its memory is the producer's one
 * buffer.  Nothing of it is copied on a plain connection; over TLS each
 * piece is encrypted into a buffer of its size. */
typedef struct wf_httpd_stream_s wf_httpd_stream_t;

typedef struct wf_httpd_stream_cbs_s {
  /* The last write finished: the producer's buffer is free again and it
   * may write the next piece.  Fires from the loop, never from inside a
   * wf_httpd_stream_* call. */
  void (*on_drain)(wf_httpd_stream_t *st, void *data);
  /* Fires exactly once, when the connection is gone: after the response
   * ended and went out, or the client left, or the stall deadline or
   * wf_httpd_close() closed it.  No call on st after this; the producer
   * frees its own state here.  Never from inside a wf_httpd_* call. */
  void (*on_close)(wf_httpd_stream_t *st, int completed, void *data);
} wf_httpd_stream_cbs_t;

/* Takes over the response of req; call it from the handler only.  cbs is
 * copied; data is the producer's.  Then send the head with
 * wf_httpd_stream_head() (from the handler or later).  NULL if req is not
 * a live request (never for a request the handler was given). */
wf_httpd_stream_t *wf_httpd_stream(wf_httpd_req_t *req, const wf_httpd_stream_cbs_t *cbs,
                                   void *data);

/* The status line and headers.  content_length >= 0 sends it as
 * Content-Length (the producer must then write exactly that many bytes);
 * -1 sends the body chunked.  headers: extra header lines ending in
 * "\r\n" (copied), or NULL.  For HEAD the head is all that goes out: the
 * response ends there (on_close follows).  0, or UV_EBUSY when a write is
 * in flight, or WF_ECLOSED when the connection is gone. */
int wf_httpd_stream_head(wf_httpd_stream_t *st, int status, const char *content_type,
                         int64_t content_length, const char *headers);

/* Writes len > 0 bytes of body.  buf is borrowed until on_drain (or
 * on_close).  0, UV_EBUSY when the previous write has not drained, or
 * WF_ECLOSED. */
int wf_httpd_stream_write(wf_httpd_stream_t *st, const char *buf, size_t len);

/* A whole small answer instead of a head and pieces: status, Content-Length
 * and body (copied; not sent for HEAD), then the end (on_close follows).
 * For answers decided after the handler returned (a 404 once etcd said
 * so).  0, UV_EBUSY after a head was sent, or WF_ECLOSED. */
int wf_httpd_stream_reply(wf_httpd_stream_t *st, int status, const char *body, size_t len,
                          const char *headers);

/* Ends the body (the last chunk when chunked) and closes the connection
 * once it went out; on_close follows with completed = 1.  May be called
 * while a write is in flight (it goes after it). */
void wf_httpd_stream_end(wf_httpd_stream_t *st);

/* Gives up: closes the connection now; on_close follows (completed = 0). */
void wf_httpd_stream_abort(wf_httpd_stream_t *st);

typedef struct wf_httpd_stats_s {
  uint64_t accepted;   /* connections served (not counting rejected ones) */
  uint64_t rejected;   /* connections closed at once: max_conns reached */
  uint64_t timeouts;   /* connections closed by the deadline */
  uint64_t bad;        /* requests answered 400/405/413/431 */
  uint64_t tls_failed; /* TLS handshakes that failed (no or bad client certificate, ...) */
  unsigned open;       /* connections open now */
} wf_httpd_stats_t;

/* Parses "HOST:PORT" where HOST is an IPv4 literal, a bracketed IPv6
 * literal ("[::1]") or "localhost" (127.0.0.1), and PORT is 1..65535
 * (0 too when allow_port0, for tests that want an ephemeral port).
 * Returns 0 and fills out, or UV_EINVAL. */
int wf_httpd_parse_addr(const char *s, int allow_port0, struct sockaddr_storage *out);

/* Binds and listens on addr (wf_httpd_parse_addr with port 0 allowed).
 * opts may be NULL.  Returns 0 and sets *out, or a negative UV_E* code
 * (UV_EINVAL for a bad address, UV_EADDRINUSE, ...) or WF_ETLS (a TLS file
 * that cannot be loaded; the reason in err, which may be NULL) with nothing
 * left open.  The handler and data are kept until wf_httpd_close(). */
int wf_httpd_start(uv_loop_t *loop, const char *addr, const wf_httpd_opts_t *opts,
                   wf_httpd_handler handler, void *data, wf_httpd_t **out, char *err,
                   size_t errlen);

/* The port the listener is bound to (useful after port 0). */
int wf_httpd_port(const wf_httpd_t *s);

void wf_httpd_stats(const wf_httpd_t *s, wf_httpd_stats_t *out);

/* Stops listening and closes every connection, answered or not (pending
 * writes end with UV_ECANCELED inside the server).  The handler is never
 * called after this returns.  cb (may be NULL) fires once every handle is
 * closed and the server is freed, never from inside this call.  s may be
 * NULL (then nothing happens and cb is not called). */
void wf_httpd_close(wf_httpd_t *s, void (*cb)(void *data), void *data);

#endif
