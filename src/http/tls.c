/*
 * http/tls.c: OpenSSL between two memory BIOs, for the client's https://
 * connections (client-tls.c) and the sessions the agent's HTTP server
 * accepts (see tls-internal.h for the contract).
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
 * The binaries do not link OpenSSL: the first context (the first https://
 * origin or TLS listener) loads it with dlopen() (tls-dl.c), so that agents
 * on plain http:// never map its 1.65 MB.  Through tls-dl.h the OpenSSL names
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
  int server;   /* made by wf__tls_server_ctx_create: the errors name the client's certificate */
  int has_cert; /* client: a client certificate is configured (for the hint in fail) */
  int verifies; /* the peer's certificate is checked (always for a client) */
};

struct wf__tls_s {
  wf__tls_ctx_t *ctx; /* borrowed: the client (the server) outlives its connections */
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
  if (u) *(int *)u = 1;
  return -1;
}

/* Loads a certificate chain and its key into ctx; role names them in the
 * errors ("client certificate /c: ...", "listen key /k does not match
 * certificate /c").  0, or -1 with the reason in err. */
static int load_pair(SSL_CTX *ctx, const char *role, const char *cert_file, const char *key_file,
                     char *err, size_t errlen) {
  char what[32];
  int asked = 0; /* no_passphrase was called: the key is encrypted */
  int r = -1;

  /* The pointer to asked lives only for this call: it is taken away again
   * below, so a later prompt (there is none: keys are loaded only here)
   * would find NULL rather than a dead stack slot. */
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &asked);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    snprintf(what, sizeof(what), "%s certificate", role);
    file_err(what, cert_file, err, errlen);
    goto out;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
    /* OpenSSL checks the pair already here: say it in our words. */
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) goto mismatch;
    if (asked) {
      ERR_clear_error();
      snprintf(err, errlen, "%s key %s is encrypted: give it without a passphrase", role,
               key_file);
      goto out;
    }
    snprintf(what, sizeof(what), "%s key", role);
    file_err(what, key_file, err, errlen);
    goto out;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
  mismatch:
    ERR_clear_error();
    snprintf(err, errlen, "%s key %s does not match certificate %s", role, key_file, cert_file);
    goto out;
  }
  r = 0;
out:
  SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
  return r;
}

/* A context of either side with what both share: OpenSSL loaded (the first
 * TLS listener or https:// origin of the process loads it), TLS 1.2 at
 * least (1.0 and 1.1 are deprecated, RFC 8996; etcd speaks 1.2 and 1.3),
 * and no 34 KiB of record buffers kept by an idle connection.  NULL with
 * the reason in err. */
static SSL_CTX *ctx_new(int server, char *err, size_t errlen) {
  if (wf__ossl_load(err, errlen) < 0) return NULL;
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx) {
    char why[TLS_ERR_LEN];
    queue_reason(why, sizeof(why));
    snprintf(err, errlen, "cannot create a TLS context: %s", why);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

wf__tls_ctx_t *wf__tls_ctx_create(const wf_http_tls_opts_t *opts, char *err, size_t errlen) {
  static const wf_http_tls_opts_t none;
  wf__tls_ctx_t *t = NULL;
  SSL_CTX *ctx = NULL;

  if (!opts) opts = &none;
  if (!opts->cert_file != !opts->key_file) {
    snprintf(err, errlen, "%s", opts->cert_file ? "a client certificate needs its key file"
                                                : "a client key needs its certificate file");
    return NULL;
  }
  ctx = ctx_new(0, err, errlen);
  if (!ctx) return NULL;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
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
  if (opts->cert_file && load_pair(ctx, "client", opts->cert_file, opts->key_file, err, errlen) < 0)
    goto fail;
  t = wf_calloc(1, sizeof(*t));
  t->ctx = ctx;
  t->has_cert = opts->cert_file != NULL;
  t->verifies = 1;
  return t;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

/* ALPN on the server: "http/1.1" when the client offers it (in is the
 * client's list, length-prefixed names).  A client that offers only other
 * protocols (h2 alone) still gets HTTP/1.1 without ALPN, which is what a
 * server without ALPN would give it, rather than a no_application_protocol
 * alert that tells the user nothing about the agent. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  static const unsigned char h11[] = "http/1.1";
  unsigned int i = 0;

  (void)ssl;
  (void)arg;
  while (i < inlen) {
    unsigned int n = in[i++];
    if (n > inlen - i) break; /* malformed: OpenSSL checks, but not our bytes to trust */
    if (n == sizeof(h11) - 1 && memcmp(in + i, h11, n) == 0) {
      *out = in + i;
      *outlen = (unsigned char)n;
      return SSL_TLSEXT_ERR_OK;
    }
    i += n;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

wf__tls_ctx_t *wf__tls_server_ctx_create(const char *cert_file, const char *key_file,
                                         const char *client_ca_file, char *err, size_t errlen) {
  /* Names the sessions of this agent for resumption; OpenSSL refuses to
   * resume a session without one when it verifies client certificates. */
  static const unsigned char sid_ctx[] = "workflow-node";
  wf__tls_ctx_t *t = NULL;
  SSL_CTX *ctx = NULL;

  if (!cert_file || !key_file) {
    snprintf(err, errlen, "%s", cert_file ? "a listen certificate needs its key file"
                                          : "TLS listening needs a certificate and its key file");
    return NULL;
  }
  ctx = ctx_new(1, err, errlen);
  if (!ctx) return NULL;
  /* A client may not make the agent redo handshakes on a connection (TLS
   * 1.2 renegotiation: CPU spent at the client's will, and nothing needs
   * it); OpenSSL 1.1.1 still allows it unless told. */
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
  if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1) {
    char why[TLS_ERR_LEN];
    queue_reason(why, sizeof(why));
    snprintf(err, errlen, "cannot create a TLS context: %s", why);
    goto fail;
  }
  if (load_pair(ctx, "listen", cert_file, key_file, err, errlen) < 0) goto fail;
  if (client_ca_file) {
    STACK_OF(X509_NAME) *names;

    if (SSL_CTX_load_verify_locations(ctx, client_ca_file, NULL) != 1) {
      file_err("client CA file", client_ca_file, err, errlen);
      goto fail;
    }
    /* The CA names go into the CertificateRequest, so a client holding
     * several certificates (a browser, curl with a store) picks the one
     * this CA signed.  The context owns the list from here. */
    names = SSL_load_client_CA_file(client_ca_file);
    if (!names) {
      file_err("client CA file", client_ca_file, err, errlen);
      goto fail;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  }
  t = wf_calloc(1, sizeof(*t));
  t->ctx = ctx;
  t->server = 1;
  t->verifies = client_ca_file != NULL;
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

/* A session of ctx between two fresh memory BIOs, or NULL (OpenSSL's
 * reason still queued) with nothing left allocated. */
static wf__tls_t *session_new(wf__tls_ctx_t *ctx) {
  wf__tls_t *t = wf_calloc(1, sizeof(*t));

  t->ctx = ctx;
  ERR_clear_error();
  t->ssl = SSL_new(ctx->ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rbio || !t->wbio) {
    SSL_free(t->ssl);
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    free(t);
    return NULL;
  }
  /* Empty means "not yet", never end of stream: the socket says when the
   * peer is gone. */
  BIO_set_mem_eof_return(t->rbio, -1);
  BIO_set_mem_eof_return(t->wbio, -1);
  SSL_set_bio(t->ssl, t->rbio, t->wbio); /* from here the SSL owns both */
  return t;
}

wf__tls_t *wf__tls_create(wf__tls_ctx_t *ctx, const char *host, char *err, size_t errlen) {
  wf__tls_t *t = session_new(ctx);
  char why[TLS_ERR_LEN / 2];
  int ok;

  if (!t) goto fail;
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
  wf__tls_destroy(t);
  return NULL;
}

int wf__tls_offer_alpn(wf__tls_t *t, const unsigned char *protos, size_t len) {
  /* SSL_set_alpn_protos returns 0 on success, unlike most of OpenSSL. */
  if (SSL_set_alpn_protos(t->ssl, protos, (unsigned)len) != 0) {
    queue_reason(t->err, sizeof(t->err));
    return WF_ETLS;
  }
  return 0;
}

int wf__tls_alpn_is(const wf__tls_t *t, const char *proto) {
  const unsigned char *p = NULL;
  unsigned n = 0;
  SSL_get0_alpn_selected(t->ssl, &p, &n);
  return p && n == strlen(proto) && memcmp(p, proto, n) == 0;
}

wf__tls_t *wf__tls_accept_create(wf__tls_ctx_t *ctx, char *err, size_t errlen) {
  wf__tls_t *t = session_new(ctx);
  char why[TLS_ERR_LEN / 2];

  if (!t) {
    queue_reason(why, sizeof(why));
    snprintf(err, errlen, "cannot start a TLS session: %s", why);
    return NULL;
  }
  SSL_set_accept_state(t->ssl);
  return t;
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
  unsigned long e = ERR_peek_error();
  char why[TLS_ERR_LEN / 2];

  t->failed = 1;
  if (v != X509_V_OK) {
    ERR_clear_error();
    snprintf(t->err, sizeof(t->err), "TLS %s failed: %s: %s", stage,
             t->ctx->server ? "client certificate verify failed" : "server certificate rejected",
             X509_verify_cert_error_string(v));
    return WF_ETLS;
  }
  /* OpenSSL's own words, "peer did not return a certificate", hide which
   * side wanted what. */
  if (t->ctx->server && ERR_GET_LIB(e) == ERR_LIB_SSL &&
      ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    ERR_clear_error();
    snprintf(t->err, sizeof(t->err), "TLS %s failed: client certificate required", stage);
    return WF_ETLS;
  }
  if (ssl_err == SSL_ERROR_SYSCALL && e == 0) {
    snprintf(why, sizeof(why), "unexpected end of stream");
  } else {
    queue_reason(why, sizeof(why));
  }
  /* A server that requires a client certificate says so with an alert
   * ("certificate required" from OpenSSL, "bad certificate" from Go, so
   * from etcd), after the handshake with TLS 1.3. */
  snprintf(t->err, sizeof(t->err), "TLS %s failed: %s%s", stage, why,
           !t->ctx->server && !t->ctx->has_cert && strstr(why, "alert") &&
                   strstr(why, "certificate")
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

int wf__tls_peer_verified(const wf__tls_t *t) {
  X509 *cert;
  int ok;

  /* Before the handshake completed, a certificate may be present that is
   * not yet (or never will be) checked; without verification configured
   * (a server with no client CA), one that arrived proves nothing. */
  if (!t->ctx->verifies || !SSL_is_init_finished(t->ssl)) return 0;
  cert = SSL_get1_peer_certificate(t->ssl);
  ok = cert && SSL_get_verify_result(t->ssl) == X509_V_OK;
  X509_free(cert);
  return ok;
}
