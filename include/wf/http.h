/*
 * http: an HTTP client on libuv, over TCP, TLS or a unix socket: HTTP/1.1
 * (llhttp) everywhere, and HTTP/2 (nghttp2) on an https:// origin whose
 * server picks ALPN h2.  It knows nothing of etcd or Docker.
 *
 * A client is bound to one origin ("http://host:port", "https://host:port"
 * or "unix:///path").  Over HTTP/1.1 it keeps a small pool of idle
 * keep-alive connections; over HTTP/2 one connection carries every request
 * as a stream (see wf_http_client_opts_t.http2).  Each request either
 * buffers the whole body (bounded by max_body) and hands it to on_done, or
 * streams it through on_data as it arrives (chunked bodies are de-chunked;
 * trailers are accepted and ignored).  Every failure (connect refused, reset,
 * timeout, parse error, body too big) reaches on_done exactly once, always on
 * a later loop iteration than the call that started the request.
 */
#ifndef WF_HTTP_H
#define WF_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct wf_http_client_s wf_http_client_t;
typedef struct wf_http_req_s wf_http_req_t;

typedef struct wf_http_header_s {
  const char *name;
  const char *value;
} wf_http_header_t;

/* TLS for an https:// origin (OpenSSL, on the same loop: see client-tls.c).  The
 * server certificate is always verified, against ca_file and the origin's
 * host (DNS name, or IP address for an IP literal).  PEM files, read when
 * the client is created; paths are not kept. */
typedef struct wf_http_tls_opts_s {
  const char *ca_file;   /* CAs to trust; NULL = the system trust store */
  const char *cert_file; /* client certificate (chain) for servers that ask; NULL = none */
  const char *key_file;  /* its unencrypted private key; given with cert_file only */
} wf_http_tls_opts_t;

typedef struct wf_http_client_opts_s {
  uint64_t connect_timeout_ms; /* default 5000; for https it covers the TLS handshake */
  unsigned max_idle;           /* idle keep-alive connections kept; default 4 */
  uint64_t idle_close_ms;      /* an idle pooled connection is closed after this; default 30000 */
  /* Required for an https:// origin (an all-NULL struct is fine): a caller
   * opts in to TLS, so one that does not know about it never gets an https
   * client by accident.  Borrowed for the create call; ignored for other
   * origins. */
  const wf_http_tls_opts_t *tls;
  /* HTTP/2 (client-h2.c), for https:// origins only: WF_HTTP2_AUTO offers
   * ALPN "h2" and "http/1.1", and when the server picks h2 the client
   * carries every request as a stream of one connection; WF_HTTP2_OFF
   * offers HTTP/1.1 alone.  Plain http:// and unix:// stay HTTP/1.1. */
  int http2;
} wf_http_client_opts_t;

enum { WF_HTTP2_AUTO = 0, WF_HTTP2_OFF = 1 };

typedef struct wf_http_req_opts_s {
  const char *method;                /* "GET", "POST", "DELETE", ... */
  const char *path;                  /* origin-form target, e.g. "/v3/kv/range?x=1" */
  const wf_http_header_t *headers;   /* extra request headers (copied); may be NULL */
  size_t nheaders;
  const char *body;                  /* request body (copied); may be NULL */
  size_t body_len;
  uint64_t timeout_ms;   /* fails with UV_ETIMEDOUT when no byte arrives for this long
                            while waiting for the response; 0 = no timeout */
  size_t max_body;       /* buffered mode bound (default 8 MiB): larger -> WF_ETOOBIG */
  size_t max_header;     /* bound on the response head (default 64 KiB) */
  int stream;            /* 1: deliver the body through on_data, never buffer it */
  int fresh;             /* 1: open a new connection for this request and close it
                            afterwards (never a pooled one): tells whether the server
                            still accepts connections, not just serves old ones.
                            Ignored over HTTP/2: the request is a stream of the one
                            session (wf_http_client_ping asks whether it lives) */
} wf_http_req_opts_t;

typedef struct wf_http_cbs_s {
  /* Optional.  Fires once when the response head is parsed.  Header pointers
   * are valid only during the call. */
  void (*on_head)(wf_http_req_t *req, int status, const wf_http_header_t *headers,
                  size_t nheaders, void *data);
  /* Stream mode only: a piece of the (de-chunked) body, valid during the call.
   * The callee may call wf_http_req_pause()/wf_http_req_cancel() from here. */
  void (*on_data)(wf_http_req_t *req, const char *p, size_t n, void *data);
  /* Always fires exactly once, last.  err is 0 when the response completed
   * (whatever its status), else a negative UV_E* / WF_E* code
   * (UV_ECANCELED after wf_http_req_cancel or wf_http_client_close;
   * WF_ETLS for a TLS failure, whose text is wf_http_client_last_error).
   * status is the HTTP status or 0 if no head arrived.  In buffered mode
   * body/len hold the whole body (NUL-terminated, valid during the call);
   * in stream mode they are NULL/0.  The request is freed after this returns. */
  void (*on_done)(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                  void *data);
} wf_http_cbs_t;

/* Creates a client for `origin` ("http://127.0.0.1:2379", "http://localhost:2379",
 * "https://etcd-1:2379", "unix:///run/docker.sock").  Returns NULL if the
 * origin cannot be parsed, or is https:// without opts->tls, or its TLS files
 * cannot be used.  opts may be NULL for defaults. */
wf_http_client_t *wf_http_client_create(uv_loop_t *loop, const char *origin,
                                        const wf_http_client_opts_t *opts);
/* The same, and on failure writes why into err (errlen bytes; may be NULL/0):
 * "not an http://, https:// or unix:// origin", "an https:// origin needs
 * TLS options", or which TLS file failed and OpenSSL's reason
 * ("CA file /x: No such file or directory", "client key /k does not match
 * certificate /c").  Runs before the loop: it reads those files. */
wf_http_client_t *wf_http_client_create_ex(uv_loop_t *loop, const char *origin,
                                           const wf_http_client_opts_t *opts, char *err,
                                           size_t errlen);

/* Starts a request.  Returns NULL only for argument errors (NULL method/path,
 * client closing); every runtime failure goes to cbs->on_done later.  cbs is
 * copied; data is passed back untouched. */
wf_http_req_t *wf_http_request(wf_http_client_t *c, const wf_http_req_opts_t *opts,
                               const wf_http_cbs_t *cbs, void *data);

/* Stops reading from the socket (backpressure for stream mode); idempotent. */
void wf_http_req_pause(wf_http_req_t *req);
/* Resumes reading after wf_http_req_pause; idempotent. */
void wf_http_req_resume(wf_http_req_t *req);

/* Aborts a request: its connection is closed (never reused) and on_done fires
 * with UV_ECANCELED on a later iteration.  No other callback fires for it
 * after this returns.  Safe to call from inside its own callbacks; a no-op
 * after on_done. */
void wf_http_req_cancel(wf_http_req_t *req);

/* Cancels every request (each gets on_done(UV_ECANCELED)), closes every
 * connection and frees the client; close_cb (may be NULL) fires once all
 * handles are closed.  The client must not be used after this call. */
void wf_http_client_close(wf_http_client_t *c, void (*close_cb)(void *data), void *data);

/* The origin string the client was created with (borrowed). */
const char *wf_http_client_origin(const wf_http_client_t *c);

/* The protocol of the client's live connections: "h2" once an HTTP/2
 * session is up, "http/1.1" otherwise (plain origins, WF_HTTP2_OFF, a server
 * that declined h2, or no connection yet).  A static string. */
const char *wf_http_client_protocol(const wf_http_client_t *c);

/* Sends an HTTP/2 PING on the client's live session and calls cb once, on a
 * later loop iteration: err 0 when the ACK came, UV_ETIMEDOUT when none came
 * within timeout_ms (the connection is then dropped and its streams fail
 * with UV_ETIMEDOUT, after cb), UV_ECANCELED when the connection or the
 * client closed first.  Returns 0, or UV_ENOTSUP when there is no live h2
 * session (nothing is called back: ask the server something instead). */
int wf_http_client_ping(wf_http_client_t *c, uint64_t timeout_ms,
                        void (*cb)(int err, void *data), void *data);

/* Text of the last TLS failure on this client (what a WF_ETLS on_done was
 * about), e.g. "TLS handshake failed: server certificate rejected: unable to
 * get local issuer certificate"; "" if none yet.  Borrowed, overwritten by
 * the next failure.  The client also logs each new reason once (warn). */
const char *wf_http_client_last_error(const wf_http_client_t *c);

#endif
