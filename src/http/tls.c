/*
 * http/tls.c: OpenSSL between two memory BIOs, for the client's https://
 * connections (client-tls.c; see tls-internal.h for the contract).
 *
 * Why memory BIOs: the socket stays a libuv stream read and written on the
 * loop like any other, so timeouts, backpressure, pooling and teardown are
 * the client's usual ones; OpenSSL only turns ciphertext into plaintext and
 * back.  An empty read BIO answers "retry" (never EOF), so OpenSSL reports
 * SSL_ERROR_WANT_READ and the caller waits for the next socket read; the
 * write BIO grows with what OpenSSL queues and is emptied after every call.
 *
 * OpenSSL keeps its errors on a per-thread queue that must be empty before
 * an I/O call for SSL_get_error() to be right, so every call here clears it
 * first and turns what it finds into text right away.
 *
 * The binaries do not link OpenSSL: the first wf__tls_ctx_create (the first
 * https:// origin) loads it with dlopen() (tls-dl.c), so that agents on
 * plain http:// never map its 1.65 MB.  Through tls-dl.h the OpenSSL names
 * below are calls through a table of pointers with the headers' types; a
 * context exists only once the load succeeded, so every other function here
 * can rely on the table.
 */
#include "tls-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "wf/util.h"

#include "tls-dl.h" /* last: turns OpenSSL's function names into table entries */

#define TLS_ERR_LEN 256

struct wf__tls_ctx_s {
  SSL_CTX *ctx;
  int has_cert; /* a client certificate is configured (for the hint below) */
};

struct wf__tls_s {
  wf__tls_ctx_t *ctx; /* borrowed: the client outlives its connections */
  SSL *ssl;
  BIO *rbio, *wbio;   /* owned by ssl */
  int failed;         /* a fatal error happened: no close_notify, no more I/O */
  char err[TLS_ERR_LEN];
};

/* The oldest queued OpenSSL error as text ("" if none), then an empty queue. */
static void queue_reason(char *out, size_t len) {
  unsigned long e = ERR_get_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;

  if (e && ERR_GET_LIB(e) == ERR_LIB_SYS)
    snprintf(out, len, "%s", strerror(ERR_GET_REASON(e)));
  else if (r)
    snprintf(out, len, "%s", r);
  else if (e)
    snprintf(out, len, "OpenSSL error %lx", e);
  else
    snprintf(out, len, "unknown TLS error");
  ERR_clear_error();
}

/* "what path: reason", for the load errors of wf__tls_ctx_create.  Opening
 * the file first gives errno's wording for the common mistakes (missing,
 * unreadable), which OpenSSL would bury under "system lib". */
static int file_err(const char *what, const char *path, char *err, size_t errlen) {
  char why[TLS_ERR_LEN / 2];
  FILE *f = fopen(path, "r");

  if (!f) {
    snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
    ERR_clear_error();
    return -1;
  }
  fclose(f);
  queue_reason(why, sizeof(why));
  snprintf(err, errlen, "%s %s: %s", what, path, why);
  return -1;
}

/* Refuses every passphrase prompt: an encrypted key must fail at start-up
 * with a message, not wait for someone to type on the agent's terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  *(int *)u = 1;
  return -1;
}

wf__tls_ctx_t *wf__tls_ctx_create(const wf_http_tls_opts_t *opts, char *err, size_t errlen) {
  static const wf_http_tls_opts_t none;
  wf__tls_ctx_t *t = NULL;
  SSL_CTX *ctx = NULL;
  int asked = 0; /* no_passphrase was called: the key is encrypted */

  if (!opts) opts = &none;
  if (!opts->cert_file != !opts->key_file) {
    snprintf(err, errlen, "%s", opts->cert_file ? "a client certificate needs its key file"
                                                : "a client key needs its certificate file");
    return NULL;
  }
  /* The first https:// origin of the process loads OpenSSL. */
  if (wf__ossl_load(err, errlen) < 0) return NULL;
  ERR_clear_error();
  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    char why[TLS_ERR_LEN];
    queue_reason(why, sizeof(why));
    snprintf(err, errlen, "cannot create a TLS context: %s", why);
    return NULL;
  }
  /* TLS 1.0 and 1.1 are deprecated (RFC 8996); etcd speaks 1.2 and 1.3. */
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  /* Pooled idle connections keep no 34 KiB of record buffers each. */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &asked);
  if (opts->ca_file) {
    if (SSL_CTX_load_verify_locations(ctx, opts->ca_file, NULL) != 1) {
      file_err("CA file", opts->ca_file, err, errlen);
      goto fail;
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    char why[TLS_ERR_LEN];
    queue_reason(why, sizeof(why));
    snprintf(err, errlen, "system trust store: %s", why);
    goto fail;
  }
  if (opts->cert_file) {
    if (SSL_CTX_use_certificate_chain_file(ctx, opts->cert_file) != 1) {
      file_err("client certificate", opts->cert_file, err, errlen);
      goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, opts->key_file, SSL_FILETYPE_PEM) != 1) {
      /* OpenSSL checks the pair already here: say it in our words. */
      if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
        goto mismatch;
      if (asked) {
        ERR_clear_error();
        snprintf(err, errlen, "client key %s is encrypted: give it without a passphrase",
                 opts->key_file);
        goto fail;
      }
      file_err("client key", opts->key_file, err, errlen);
      goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
    mismatch:
      ERR_clear_error();
      snprintf(err, errlen, "client key %s does not match certificate %s", opts->key_file,
               opts->cert_file);
      goto fail;
    }
  }
  t = wf_calloc(1, sizeof(*t));
  t->ctx = ctx;
  t->has_cert = opts->cert_file != NULL;
  return t;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

void wf__tls_ctx_destroy(wf__tls_ctx_t *ctx) {
  if (!ctx) return;
  SSL_CTX_free(ctx->ctx);
  free(ctx);
}

static int is_ip_literal(const char *host) {
  unsigned char a[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

wf__tls_t *wf__tls_create(wf__tls_ctx_t *ctx, const char *host, char *err, size_t errlen) {
  wf__tls_t *t = wf_calloc(1, sizeof(*t));
  char why[TLS_ERR_LEN / 2];
  int ok;

  t->ctx = ctx;
  ERR_clear_error();
  t->ssl = SSL_new(ctx->ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rbio || !t->wbio) goto fail;
  /* Empty means "not yet", never end of stream: the socket says when the
   * peer is gone. */
  BIO_set_mem_eof_return(t->rbio, -1);
  BIO_set_mem_eof_return(t->wbio, -1);
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  SSL_set_connect_state(t->ssl);
  /* The certificate must name what the origin names: an IP literal is
   * matched against IP SANs (and gets no SNI, RFC 6066 §3), a name against
   * DNS SANs with SNI so that a shared front end picks the right one. */
  if (is_ip_literal(host)) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) == 1;
  } else {
    SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok = SSL_set1_host(t->ssl, host) == 1 && SSL_set_tlsext_host_name(t->ssl, host) == 1;
  }
  if (!ok) goto fail;
  return t;
fail:
  queue_reason(why, sizeof(why));
  snprintf(err, errlen, "cannot start a TLS session for %.100s: %s", host, why);
  /* Before SSL_set_bio the BIOs are ours to free; after it, the SSL's. */
  if (t->ssl && t->rbio && SSL_get_rbio(t->ssl) == t->rbio) t->rbio = t->wbio = NULL;
  SSL_free(t->ssl);
  BIO_free(t->rbio);
  BIO_free(t->wbio);
  free(t);
  return NULL;
}

void wf__tls_destroy(wf__tls_t *t) {
  if (!t) return;
  SSL_free(t->ssl); /* frees both BIOs */
  free(t);
}

/* Records why the last call failed: a rejected certificate says which check
 * failed; anything else is OpenSSL's reason (a received alert reads
 * "tlsv13 alert certificate required", talking TLS to a plain HTTP port
 * "wrong version number"). */
static int fail(wf__tls_t *t, int ssl_err, const char *stage) {
  long v = SSL_get_verify_result(t->ssl);
  char why[TLS_ERR_LEN / 2];

  t->failed = 1;
  if (v != X509_V_OK) {
    ERR_clear_error();
    snprintf(t->err, sizeof(t->err), "TLS %s failed: server certificate rejected: %s", stage,
             X509_verify_cert_error_string(v));
    return WF_ETLS;
  }
  if (ssl_err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    snprintf(why, sizeof(why), "unexpected end of stream");
  } else {
    queue_reason(why, sizeof(why));
  }
  /* A server that requires a client certificate says so with an alert
   * ("certificate required" from OpenSSL, "bad certificate" from Go, so
   * from etcd), after the handshake with TLS 1.3. */
  snprintf(t->err, sizeof(t->err), "TLS %s failed: %s%s", stage, why,
           !t->ctx->has_cert && strstr(why, "alert") && strstr(why, "certificate")
               ? " (the server wants a client certificate? none is configured)"
               : "");
  return WF_ETLS;
}

int wf__tls_feed(wf__tls_t *t, const char *p, size_t n) {
  if (n == 0) return 0;
  if (n > INT32_MAX || BIO_write(t->rbio, p, (int)n) != (int)n) {
    t->failed = 1;
    ERR_clear_error();
    snprintf(t->err, sizeof(t->err), "TLS: cannot buffer %zu bytes", n);
    return WF_ETLS;
  }
  return 0;
}

int wf__tls_handshake(wf__tls_t *t) {
  int r, e;

  if (t->failed) return WF_ETLS;
  ERR_clear_error();
  r = SSL_do_handshake(t->ssl);
  if (r == 1) return 0;
  e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ) return 1;
  return fail(t, e, "handshake");
}

ssize_t wf__tls_read(wf__tls_t *t, char *buf, size_t len) {
  int r, e;

  if (t->failed) return WF_ETLS;
  if (len > INT32_MAX) len = INT32_MAX;
  ERR_clear_error();
  r = SSL_read(t->ssl, buf, (int)len);
  if (r > 0) return r;
  e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ) return 0;
  if (e == SSL_ERROR_ZERO_RETURN) return UV_EOF;
  return fail(t, e, "read");
}

int wf__tls_write(wf__tls_t *t, const char *p, size_t n) {
  int r;

  if (t->failed) return WF_ETLS;
  /* Callers bound n far below this (wf_http_request refuses bigger bodies). */
  if (n == 0 || n > INT32_MAX) return n == 0 ? 0 : WF_ETLS;
  ERR_clear_error();
  /* A memory BIO takes everything, so one call writes all of it. */
  r = SSL_write(t->ssl, p, (int)n);
  if (r == (int)n) return 0;
  return fail(t, SSL_get_error(t->ssl, r), "write");
}

size_t wf__tls_out_pending(const wf__tls_t *t) { return BIO_ctrl_pending(t->wbio); }

size_t wf__tls_out_take(wf__tls_t *t, char *buf, size_t len) {
  int r;
  if (len > INT32_MAX) len = INT32_MAX;
  r = BIO_read(t->wbio, buf, (int)len);
  return r > 0 ? (size_t)r : 0;
}

void wf__tls_shutdown(wf__tls_t *t) {
  /* OpenSSL forbids SSL_shutdown after a fatal error; before the handshake
   * finished there is no session to close. */
  if (t->failed || !SSL_is_init_finished(t->ssl)) return;
  if (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN) return;
  ERR_clear_error();
  SSL_shutdown(t->ssl);
  ERR_clear_error();
}

int wf__tls_buffered(const wf__tls_t *t) {
  return SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0;
}

const char *wf__tls_error(const wf__tls_t *t) { return t->err; }
