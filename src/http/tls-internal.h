/*
 * tls-internal.h: the OpenSSL engine behind https:// origins, for
 * client-tls.c.
 *
 * OpenSSL never touches a socket here.  Each connection's SSL object sits
 * between two memory BIOs: client-tls.c writes the ciphertext it reads from
 * the libuv stream into the read BIO (wf__tls_feed), asks for plaintext
 * (wf__tls_read) or hands plaintext over (wf__tls_write), and sends whatever
 * OpenSSL queued in the write BIO (wf__tls_out_take) with uv_write.  So TLS
 * runs on the same loop as everything else, and no call here blocks.
 *
 * Errors: the functions that can fail return WF_ETLS and leave a one-line
 * reason (OpenSSL's, or the certificate check's) in wf__tls_error().
 */
#ifndef WF_HTTP_TLS_INTERNAL_H
#define WF_HTTP_TLS_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "wf/http.h"

/* One per https client: the SSL_CTX with the CA, client certificate and key
 * loaded (files are read here, at start-up, never on the loop). */
typedef struct wf__tls_ctx_s wf__tls_ctx_t;
/* One per connection. */
typedef struct wf__tls_s wf__tls_t;

/* Loads opts (NULL fields: system trust store, no client certificate).
 * NULL on failure with the reason in err, e.g. "CA file /x: No such file or
 * directory" or "client key /k does not match certificate /c".  The first
 * call of the process loads OpenSSL itself (tls-dl.c); when that fails,
 * every call fails with "cannot load OpenSSL (libssl.so.3) for https://:
 * <dlerror()>". */
wf__tls_ctx_t *wf__tls_ctx_create(const wf_http_tls_opts_t *opts, char *err, size_t errlen);
/* NULL-tolerant. */
void wf__tls_ctx_destroy(wf__tls_ctx_t *ctx);

/* A client session that will verify the server certificate against host (a
 * name, checked with SNI, or an IP literal without brackets).  NULL only if
 * OpenSSL cannot allocate (reason in err).  Owns its SSL and BIOs. */
wf__tls_t *wf__tls_create(wf__tls_ctx_t *ctx, const char *host, char *err, size_t errlen);
/* Frees the session (no close_notify: see wf__tls_shutdown).  NULL-tolerant. */
void wf__tls_destroy(wf__tls_t *t);

/* Ciphertext read from the socket.  0, or WF_ETLS when OpenSSL cannot take it. */
int wf__tls_feed(wf__tls_t *t, const char *p, size_t n);
/* Advances the handshake: 0 when it is complete, 1 when it needs more
 * ciphertext from the peer, WF_ETLS when it failed (certificate rejected,
 * alert, not TLS at all).  Flush the output afterwards in every case: a
 * failing handshake may have queued an alert for the peer. */
int wf__tls_handshake(wf__tls_t *t);
/* Plaintext into buf: > 0 bytes, 0 when more ciphertext is needed, UV_EOF
 * once the peer sent close_notify, WF_ETLS on an error (a fatal alert such as
 * "certificate required" after a TLS 1.3 handshake).  May queue output
 * (a key update answer): flush afterwards. */
ssize_t wf__tls_read(wf__tls_t *t, char *buf, size_t len);
/* Encrypts all n bytes into the output queue.  0 or WF_ETLS. */
int wf__tls_write(wf__tls_t *t, const char *p, size_t n);
/* Bytes queued for the peer, and taking them out (returns the count taken). */
size_t wf__tls_out_pending(const wf__tls_t *t);
size_t wf__tls_out_take(wf__tls_t *t, char *buf, size_t len);
/* Queues close_notify if the handshake finished and nothing failed; a no-op
 * otherwise or when already sent. */
void wf__tls_shutdown(wf__tls_t *t);
/* 1 if plaintext or ciphertext is still held inside (not yet read out). */
int wf__tls_buffered(const wf__tls_t *t);
/* The reason of the last WF_ETLS (borrowed; "" if none). */
const char *wf__tls_error(const wf__tls_t *t);

#endif
