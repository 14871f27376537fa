/*
 * tls-internal.h: the OpenSSL engine behind https:// origins (client-tls.c)
 * and behind the TLS sessions the agent's HTTP server accepts (server.c).
 *
 * OpenSSL never touches a socket here.  Each connection's SSL object sits
 * between two memory BIOs: client-tls.c writes the ciphertext it reads from
 * the libuv stream into the read BIO (wf__tls_feed), asks for plaintext
 * (wf__tls_read) or hands plaintext over (wf__tls_write), and sends whatever
 * OpenSSL queued in the write BIO (wf__tls_out_take) with uv_write.  So TLS
 * runs on the same loop as everything else, and no call here blocks.  A
 * server session is the same object in the other role: only its context and
 * its creation differ, and the calls below drive both.
 *
 * Errors: the functions that can fail return WF_ETLS and leave a one-line
 * reason (OpenSSL's, or the certificate check's) in wf__tls_error().
 */
#ifndef WF_HTTP_TLS_INTERNAL_H
#define WF_HTTP_TLS_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "wf/http.h"

/* One per https client or TLS listener: the SSL_CTX with the CA,
 * certificate and key loaded (files are read here, at start-up, never on
 * the loop).  It must outlive every session made from it. */
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
/* A listener's context: the certificate chain and key the server presents
 * (both required, read as PEM; an encrypted key is refused, never prompted
 * for), TLS 1.2 at least, and ALPN "http/1.1" when the client offers it; a
 * client that offers only other protocols (h2 alone) is served HTTP/1.1
 * without ALPN rather than refused with an alert it would not explain.
 * With client_ca_file (NULL: no client certificate is asked for) every
 * client must present a certificate that CA signed, and the CA's names are
 * sent so that a client holding several picks the right one.  NULL on
 * failure with the file and OpenSSL's reason in err: "listen certificate
 * /c: No such file or directory", "listen key /k does not match certificate
 * /c", "client CA file /ca: no certificate or crl found", or the OpenSSL
 * load error of wf__tls_ctx_create.  Borrows the paths for the call only. */
wf__tls_ctx_t *wf__tls_server_ctx_create(const char *cert_file, const char *key_file,
                                         const char *client_ca_file, char *err, size_t errlen);
/* NULL-tolerant.  Sessions made from ctx must be destroyed first. */
void wf__tls_ctx_destroy(wf__tls_ctx_t *ctx);

/* A client session that will verify the server certificate against host (a
 * name, checked with SNI, or an IP literal without brackets).  NULL only if
 * OpenSSL cannot allocate (reason in err).  Owns its SSL and BIOs. */
wf__tls_t *wf__tls_create(wf__tls_ctx_t *ctx, const char *host, char *err, size_t errlen);
/* Offers ALPN protocols on a client session before its handshake: protos
 * in the wire format ("\x02h2\x08http/1.1"; copied).  0, or WF_ETLS. */
int wf__tls_offer_alpn(wf__tls_t *t, const unsigned char *protos, size_t len);
/* 1 if the completed handshake selected ALPN protocol proto ("h2"), else 0
 * (another one, or none: a server without ALPN). */
int wf__tls_alpn_is(const wf__tls_t *t, const char *proto);
/* A server session of a listener's ctx (wf__tls_server_ctx_create), waiting
 * for the client's hello: feed it what the accepted socket reads and call
 * wf__tls_handshake as for a client.  A handshake that fails for the
 * client's certificate says so in wf__tls_error: "TLS handshake failed:
 * client certificate required" (none sent) or "... client certificate
 * verify failed: <the check that failed>"; flushing the output then sends
 * the client the alert that tells it.  NULL only if OpenSSL cannot allocate
 * (reason in err).  Owns its SSL and BIOs; borrows ctx. */
wf__tls_t *wf__tls_accept_create(wf__tls_ctx_t *ctx, char *err, size_t errlen);
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
/* 1 if the handshake completed and the peer presented a certificate that
 * verified against the context's CA, else 0.  For a server session, what
 * lets a request be trusted as coming from a holder of a client
 * certificate: always 0 on a listener without a client CA, which asks for
 * none and would check none. */
int wf__tls_peer_verified(const wf__tls_t *t);

#endif
