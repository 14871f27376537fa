/*
 * httpd: a small HTTP/1.1 server on libuv + llhttp for the agent's own
 * endpoints (/healthz, /readyz, /metrics).  It knows nothing of those paths:
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
 * Everything runs on the caller's loop; the handler is called from a read
 * callback and must answer synchronously.
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
} wf_httpd_opts_t;

/* What the handler fills in.  The server owns body (bounded at 16 MiB) and
 * frees it after the response is written. */
typedef struct wf_httpd_resp_s {
  int status;                 /* preset to 200 */
  const char *content_type;   /* preset to "text/plain; charset=utf-8"; must be static */
  wf_buf_t body;
} wf_httpd_resp_t;

/* Called once per GET or HEAD request with the path (the request target up
 * to any '?', NUL-terminated, borrowed for the call).  For HEAD the body is
 * computed and its length sent, but not the body itself.  The handler must
 * not call wf_httpd_close() (do it from any other callback). */
typedef void (*wf_httpd_handler)(const char *path, wf_httpd_resp_t *resp, void *data);

typedef struct wf_httpd_stats_s {
  uint64_t accepted;   /* connections served (not counting rejected ones) */
  uint64_t rejected;   /* connections closed at once: max_conns reached */
  uint64_t timeouts;   /* connections closed by the deadline */
  uint64_t bad;        /* requests answered 400/405/413/431 */
  unsigned open;       /* connections open now */
} wf_httpd_stats_t;

/* Parses "HOST:PORT" where HOST is an IPv4 literal, a bracketed IPv6
 * literal ("[::1]") or "localhost" (127.0.0.1), and PORT is 1..65535
 * (0 too when allow_port0, for tests that want an ephemeral port).
 * Returns 0 and fills out, or UV_EINVAL. */
int wf_httpd_parse_addr(const char *s, int allow_port0, struct sockaddr_storage *out);

/* Binds and listens on addr (wf_httpd_parse_addr with port 0 allowed).
 * opts may be NULL.  Returns 0 and sets *out, or a negative UV_E* code
 * (UV_EINVAL for a bad address, UV_EADDRINUSE, ...) with nothing left open.
 * The handler and data are kept until wf_httpd_close(). */
int wf_httpd_start(uv_loop_t *loop, const char *addr, const wf_httpd_opts_t *opts,
                   wf_httpd_handler handler, void *data, wf_httpd_t **out);

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
