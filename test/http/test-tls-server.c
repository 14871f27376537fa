/*
 * test-tls-server: server sessions of the TLS engine (src/http/tls.c:
 * wf__tls_server_ctx_create, wf__tls_accept_create, wf__tls_peer_verified),
 * with no socket at all.
 *
 * A client session and a server session are paired in memory: what one
 * queues (wf__tls_out_take) is fed to the other (wf__tls_feed) until
 * neither has anything to say, so every byte of the handshake, the data and
 * the alerts goes through the same calls server.c and client-tls.c make on
 * the loop.  The client is our own (wf__tls_ctx_create + wf__tls_create,
 * TLS 1.3 against OpenSSL 3) or, for what ours cannot do (offer ALPN, stop
 * at TLS 1.2, resume a session), a plain OpenSSL client on memory BIOs; the
 * program links OpenSSL for it, and tls.c's dlopen() then finds the same
 * library loaded.
 *
 * The certificates (tls-certs.h): a CA, a server certificate for 127.0.0.1,
 * a client certificate from the CA, one from an unrelated CA.
 * Usage: test-tls-server [name | --list]; skipped (77) without the openssl
 * CLI.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "src/http/tls-internal.h"
#include "tls-certs.h"
#include "wf-test.h"
#include "wf/util.h"

static char dir[64];
static char ca[128], ca2[128], srv_crt[128], srv_key[128];
static char cl_crt[128], cl_key[128], cl2_crt[128], cl2_key[128], enc_key[128], junk[128];

static void path(char *out, const char *name) { snprintf(out, 128, "%s/%s", dir, name); }

static void make_certs(void) {
  certs_dir(dir, sizeof(dir));
  make_ca(dir, "ca", "wf-test-ca");
  make_ca(dir, "ca2", "wf-other-ca");
  make_leaf(dir, "ca", "srv", "wf-test-server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n");
  make_leaf(dir, "ca", "cl", "wf-client", "extendedKeyUsage=clientAuth\\n");
  make_leaf(dir, "ca2", "cl2", "wf-stranger", "extendedKeyUsage=clientAuth\\n");
  sh("cd %s && openssl pkey -in srv.key -aes256 -passout pass:secret -out srv-enc.key", dir);
  path(ca, "ca.crt");
  path(ca2, "ca2.crt");
  path(srv_crt, "srv.crt");
  path(srv_key, "srv.key");
  path(cl_crt, "cl.crt");
  path(cl_key, "cl.key");
  path(cl2_crt, "cl2.crt");
  path(cl2_key, "cl2.key");
  path(enc_key, "srv-enc.key");
  path(junk, "srv.ext");
}

/* ---- our client and our server, in memory ------------------------------------------------ */
typedef struct pair_s {
  wf__tls_ctx_t *cctx, *sctx;
  wf__tls_t *c, *s;
  int cr, sr; /* the handshakes' last results: 1 going on, 0 done, WF_ETLS */
} pair_t;

/* Client with ca (and cl cert/key if given) against a listener with
 * srv_crt/srv_key and client_ca. */
static void pair_init(pair_t *p, const char *client_ca, const char *crt, const char *key) {
  wf_http_tls_opts_t o;
  char err[256];

  memset(p, 0, sizeof(*p));
  memset(&o, 0, sizeof(o));
  o.ca_file = ca;
  o.cert_file = crt;
  o.key_file = key;
  p->cctx = wf__tls_ctx_create(&o, err, sizeof(err));
  if (!p->cctx) WF_FAIL("client ctx: %s", err);
  p->sctx = wf__tls_server_ctx_create(srv_crt, srv_key, client_ca, err, sizeof(err));
  if (!p->sctx) WF_FAIL("server ctx: %s", err);
  p->c = wf__tls_create(p->cctx, "127.0.0.1", err, sizeof(err));
  if (!p->c) WF_FAIL("client session: %s", err);
  p->s = wf__tls_accept_create(p->sctx, err, sizeof(err));
  if (!p->s) WF_FAIL("server session: %s", err);
  p->cr = p->sr = 1;
}

static void pair_finish(pair_t *p) {
  wf__tls_destroy(p->c);
  wf__tls_destroy(p->s);
  wf__tls_ctx_destroy(p->cctx);
  wf__tls_ctx_destroy(p->sctx);
}

/* Feeds to with everything from queued for it; the bytes moved. */
static size_t move(wf__tls_t *from, wf__tls_t *to) {
  char buf[1000]; /* smaller than a record: feeds arrive in pieces, as from a socket */
  size_t n, total = 0;

  while ((n = wf__tls_out_take(from, buf, sizeof(buf))) > 0) {
    ASSERT_OK(wf__tls_feed(to, buf, n));
    total += n;
  }
  ASSERT_EQ(wf__tls_out_pending(from), 0);
  return total;
}

/* Both handshakes until each is done or failed, or nothing moves any more
 * (one side failed and the other waits for bytes that will not come). */
static void pair_handshake(pair_t *p) {
  int i;

  for (i = 0; i < 50; i++) {
    size_t moved;

    if (p->cr == 1) p->cr = wf__tls_handshake(p->c);
    moved = move(p->c, p->s);
    if (p->sr == 1) p->sr = wf__tls_handshake(p->s);
    moved += move(p->s, p->c);
    if (p->cr != 1 && p->sr != 1) return;
    if (moved == 0) return;
  }
  WF_FAIL("the handshake did not settle in 50 rounds");
}

/* Reads exactly n bytes of plaintext from t (its ciphertext is all fed). */
static void read_all(wf__tls_t *t, char *buf, size_t n) {
  size_t got = 0;

  while (got < n) {
    ssize_t r = wf__tls_read(t, buf + got, n - got);
    if (r <= 0) WF_FAIL("read %zd after %zu of %zu bytes: %s", r, got, n, wf__tls_error(t));
    got += (size_t)r;
  }
}

/* n bytes from one side to the other and back, compared. */
static void exchange(pair_t *p, size_t n) {
  char *out = malloc(n), *in = malloc(n);
  size_t i;

  for (i = 0; i < n; i++) out[i] = (char)('a' + i % 23);
  ASSERT_OK(wf__tls_write(p->c, out, n));
  move(p->c, p->s);
  read_all(p->s, in, n);
  ASSERT_OK(memcmp(in, out, n));
  ASSERT_EQ(wf__tls_read(p->s, in, n), 0); /* nothing more: wait for the peer */

  out[0] = 'Z';
  ASSERT_OK(wf__tls_write(p->s, out, n));
  move(p->s, p->c);
  read_all(p->c, in, n);
  ASSERT_OK(memcmp(in, out, n));
  ASSERT_EQ(wf__tls_read(p->c, in, n), 0);
  ASSERT_EQ(wf__tls_buffered(p->c), 0);
  ASSERT_EQ(wf__tls_buffered(p->s), 0);
  free(out);
  free(in);
}

/* The error text of t contains want. */
static void assert_error(wf__tls_t *t, const char *want) {
  if (!strstr(wf__tls_error(t), want))
    WF_FAIL("error \"%s\" does not contain \"%s\"", wf__tls_error(t), want);
}

/* ---- cases: our client --------------------------------------------------------------------- */

/* No client CA: the handshake completes, data flows both ways in small and
 * multi-record writes, and close_notify from the client ends the server's
 * stream.  Nothing was asked of the client, so the server trusts nothing of
 * it; the client did verify the server. */
static void test_handshake_data(void) {
  pair_t p;
  char b[16];

  pair_init(&p, NULL, NULL, NULL);
  pair_handshake(&p);
  ASSERT_EQ(p.cr, 0);
  ASSERT_EQ(p.sr, 0);
  ASSERT_STR_EQ(wf__tls_error(p.s), "");
  ASSERT_EQ(wf__tls_peer_verified(p.s), 0);
  ASSERT_EQ(wf__tls_peer_verified(p.c), 1);
  exchange(&p, 5);
  exchange(&p, 100000); /* several 16 KiB records each way */

  wf__tls_shutdown(p.c);
  ASSERT(wf__tls_out_pending(p.c) > 0);
  move(p.c, p.s);
  ASSERT_EQ(wf__tls_read(p.s, b, sizeof(b)), UV_EOF);
  wf__tls_shutdown(p.s); /* answers it */
  move(p.s, p.c);
  ASSERT_EQ(wf__tls_read(p.c, b, sizeof(b)), UV_EOF);
  pair_finish(&p);
}

/* A client certificate from the listener's CA: verified, and data flows. */
static void test_client_cert_ok(void) {
  pair_t p;

  pair_init(&p, ca, cl_crt, cl_key);
  ASSERT_EQ(wf__tls_peer_verified(p.s), 0); /* nothing yet */
  pair_handshake(&p);
  ASSERT_EQ(p.cr, 0);
  ASSERT_EQ(p.sr, 0);
  ASSERT_EQ(wf__tls_peer_verified(p.s), 1);
  exchange(&p, 3000);
  ASSERT_EQ(wf__tls_peer_verified(p.s), 1);
  pair_finish(&p);
}

/* The listener wants a certificate and the client has none: the server's
 * handshake fails and says so, and the alert it queued reaches the client,
 * whose TLS 1.3 handshake had already completed: its first read fails. */
static void test_client_cert_missing(void) {
  pair_t p;
  char b[16];

  pair_init(&p, ca, NULL, NULL);
  pair_handshake(&p);
  ASSERT_EQ(p.sr, WF_ETLS);
  ASSERT_STR_EQ(wf__tls_error(p.s), "TLS handshake failed: client certificate required");
  ASSERT_EQ(wf__tls_peer_verified(p.s), 0);
  ASSERT_EQ(p.cr, 0);
  ASSERT_EQ(wf__tls_read(p.c, b, sizeof(b)), WF_ETLS);
  assert_error(p.c, "alert certificate required");
  assert_error(p.c, "none is configured"); /* the client's hint */
  /* A failed session stays failed and queues nothing more. */
  ASSERT_EQ(wf__tls_handshake(p.s), WF_ETLS);
  ASSERT_EQ(wf__tls_write(p.s, "x", 1), WF_ETLS);
  wf__tls_shutdown(p.s);
  ASSERT_EQ(wf__tls_out_pending(p.s), 0);
  pair_finish(&p);
}

/* A client certificate from another CA is refused with the failed check. */
static void test_client_cert_other_ca(void) {
  pair_t p;
  char b[16];

  pair_init(&p, ca, cl2_crt, cl2_key);
  pair_handshake(&p);
  ASSERT_EQ(p.sr, WF_ETLS);
  ASSERT_STR_EQ(wf__tls_error(p.s),
                "TLS handshake failed: client certificate verify failed: "
                "unable to get local issuer certificate");
  ASSERT_EQ(wf__tls_peer_verified(p.s), 0);
  ASSERT_EQ(p.cr, 0);
  ASSERT_EQ(wf__tls_read(p.c, b, sizeof(b)), WF_ETLS);
  assert_error(p.c, "alert unknown ca");
  pair_finish(&p);
}

/* A listener with the other CA refuses our CA's client certificate, and a
 * client that trusts only the other CA refuses our server: each side
 * checks against its own CA. */
static void test_wrong_ca_both_ways(void) {
  pair_t p;

  pair_init(&p, ca2, cl_crt, cl_key);
  pair_handshake(&p);
  ASSERT_EQ(p.sr, WF_ETLS);
  assert_error(p.s, "client certificate verify failed");
  pair_finish(&p);

  {
    wf_http_tls_opts_t o = {.ca_file = ca2};
    char err[256];
    memset(&p, 0, sizeof(p));
    p.cctx = wf__tls_ctx_create(&o, err, sizeof(err));
    p.sctx = wf__tls_server_ctx_create(srv_crt, srv_key, NULL, err, sizeof(err));
    ASSERT_NOT_NULL(p.cctx);
    ASSERT_NOT_NULL(p.sctx);
    p.c = wf__tls_create(p.cctx, "127.0.0.1", err, sizeof(err));
    p.s = wf__tls_accept_create(p.sctx, err, sizeof(err));
    p.cr = p.sr = 1;
  }
  pair_handshake(&p);
  ASSERT_EQ(p.cr, WF_ETLS);
  assert_error(p.c, "server certificate rejected");
  ASSERT_EQ(p.sr, WF_ETLS); /* the client's alert */
  assert_error(p.s, "alert unknown ca");
  ASSERT_EQ(wf__tls_peer_verified(p.c), 0);
  pair_finish(&p);
}

/* Plain HTTP to the TLS listener fails the handshake with OpenSSL's reason. */
static void test_not_tls(void) {
  static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  wf__tls_ctx_t *ctx;
  wf__tls_t *s;
  char err[256];

  ctx = wf__tls_server_ctx_create(srv_crt, srv_key, NULL, err, sizeof(err));
  ASSERT_NOT_NULL(ctx);
  s = wf__tls_accept_create(ctx, err, sizeof(err));
  ASSERT_NOT_NULL(s);
  ASSERT_EQ(wf__tls_handshake(s), 1); /* nothing yet: waits for the hello */
  ASSERT_EQ(wf__tls_out_pending(s), 0);
  ASSERT_OK(wf__tls_feed(s, req, sizeof(req) - 1));
  ASSERT_EQ(wf__tls_handshake(s), WF_ETLS);
  assert_error(s, "TLS handshake failed: http request");
  ASSERT_EQ(wf__tls_peer_verified(s), 0);
  wf__tls_destroy(s);
  wf__tls_ctx_destroy(ctx);
  wf__tls_destroy(NULL);
  wf__tls_ctx_destroy(NULL);
}

/* Context errors name the file and the reason. */
static void test_bad_files(void) {
  char mismatch[512], junk_cert[512], junk_ca[512], enc[512];
  struct {
    const char *crt, *key, *client_ca, *want;
  } cases[] = {
      {"/nonexistent/c.pem", srv_key, NULL,
       "listen certificate /nonexistent/c.pem: No such file or directory"},
      {srv_crt, "/nonexistent/k.pem", NULL,
       "listen key /nonexistent/k.pem: No such file or directory"},
      {srv_crt, cl_key, NULL, mismatch},
      {junk, srv_key, NULL, junk_cert},
      {srv_crt, enc_key, NULL, enc},
      {srv_crt, srv_key, "/nonexistent/ca.pem",
       "client CA file /nonexistent/ca.pem: No such file or directory"},
      {srv_crt, srv_key, junk, junk_ca},
      {srv_crt, NULL, NULL, "a listen certificate needs its key file"},
      {NULL, NULL, NULL, "TLS listening needs a certificate and its key file"},
  };
  size_t i;

  snprintf(mismatch, sizeof(mismatch), "listen key %s does not match certificate %s", cl_key,
           srv_crt);
  snprintf(junk_cert, sizeof(junk_cert), "listen certificate %s: ", junk);
  snprintf(junk_ca, sizeof(junk_ca), "client CA file %s: ", junk);
  snprintf(enc, sizeof(enc), "listen key %s is encrypted: give it without a passphrase",
           enc_key);
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char err[256] = "";
    wf__tls_ctx_t *ctx =
        wf__tls_server_ctx_create(cases[i].crt, cases[i].key, cases[i].client_ca, err, sizeof(err));
    ASSERT_NULL(ctx);
    fprintf(stderr, "  %s\n", err);
    if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
      WF_FAIL("case %zu: \"%s\" does not start with \"%s\"", i, err, cases[i].want);
    /* A reason after the file, not an empty one. */
    ASSERT(strlen(err) > strlen(cases[i].want) || strcmp(err, cases[i].want) == 0);
  }
  /* The client ctx loads its pair through the same code: same words. */
  {
    wf_http_tls_opts_t o = {.ca_file = ca, .cert_file = srv_crt, .key_file = cl_key};
    char err[256] = "";
    ASSERT_NULL(wf__tls_ctx_create(&o, err, sizeof(err)));
    snprintf(mismatch, sizeof(mismatch), "client key %s does not match certificate %s", cl_key,
             srv_crt);
    ASSERT_STR_EQ(err, mismatch);
  }
}

/* ---- cases: a plain OpenSSL client ---------------------------------------------------------- */
typedef struct raw_s {
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *rb, *wb; /* owned by ssl */
  int r;        /* handshake: 1 going on, 0 done, -1 failed */
} raw_t;

/* A session of ctx (referenced), with alpn (wire format, NULL: none),
 * resuming session unless NULL. */
static void raw_start(raw_t *r, SSL_CTX *ctx, const unsigned char *alpn, unsigned alpn_len,
                      SSL_SESSION *session) {
  memset(r, 0, sizeof(*r));
  ASSERT_EQ(SSL_CTX_up_ref(ctx), 1);
  r->ctx = ctx;
  r->ssl = SSL_new(r->ctx);
  ASSERT_NOT_NULL(r->ssl);
  if (alpn) ASSERT_OK(SSL_set_alpn_protos(r->ssl, alpn, alpn_len));
  if (session) ASSERT_EQ(SSL_set_session(r->ssl, session), 1);
  r->rb = BIO_new(BIO_s_mem());
  r->wb = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(r->rb, -1);
  SSL_set_bio(r->ssl, r->rb, r->wb);
  SSL_set_connect_state(r->ssl);
  r->r = 1;
}

/* A client trusting ca, with max_version (0: any), alpn and optionally a
 * certificate. */
static void raw_init(raw_t *r, int max_version, const unsigned char *alpn, unsigned alpn_len,
                     const char *crt, const char *key) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

  ASSERT_NOT_NULL(ctx);
  ASSERT_EQ(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  if (max_version) ASSERT_EQ(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
  if (crt) {
    ASSERT_EQ(SSL_CTX_use_certificate_chain_file(ctx, crt), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
  }
  raw_start(r, ctx, alpn, alpn_len, NULL);
  SSL_CTX_free(ctx); /* r holds it */
}

static void raw_finish(raw_t *r) {
  SSL_free(r->ssl);
  SSL_CTX_free(r->ctx);
}

/* Moves bytes both ways between the raw client and our server once. */
static size_t raw_move(raw_t *r, wf__tls_t *s) {
  char buf[4096];
  size_t total = 0;
  int n;

  while ((n = BIO_read(r->wb, buf, sizeof(buf))) > 0) {
    ASSERT_OK(wf__tls_feed(s, buf, (size_t)n));
    total += (size_t)n;
  }
  while ((n = (int)wf__tls_out_take(s, buf, sizeof(buf))) > 0) {
    ASSERT_EQ(BIO_write(r->rb, buf, n), n);
    total += (size_t)n;
  }
  return total;
}

static void raw_handshake(raw_t *r, wf__tls_t *s, int *sr) {
  int i;

  *sr = 1;
  for (i = 0; i < 50; i++) {
    size_t moved;
    if (r->r == 1) {
      int x = SSL_do_handshake(r->ssl);
      if (x == 1)
        r->r = 0;
      else if (SSL_get_error(r->ssl, x) != SSL_ERROR_WANT_READ)
        r->r = -1;
    }
    if (*sr == 1) *sr = wf__tls_handshake(s);
    moved = raw_move(r, s);
    if (r->r != 1 && *sr != 1) break;
    if (moved == 0) break;
  }
  ERR_clear_error();
  /* Let the client take what came after its Finished (TLS 1.3 tickets). */
  if (r->r == 0) {
    char b[1];
    ASSERT(SSL_read(r->ssl, b, 1) <= 0);
    ERR_clear_error();
  }
}

/* A server session of a listener on srv_crt with client_ca. */
static wf__tls_t *server(wf__tls_ctx_t **ctx, const char *client_ca) {
  char err[256];
  wf__tls_t *s;

  *ctx = wf__tls_server_ctx_create(srv_crt, srv_key, client_ca, err, sizeof(err));
  if (!*ctx) WF_FAIL("server ctx: %s", err);
  s = wf__tls_accept_create(*ctx, err, sizeof(err));
  if (!s) WF_FAIL("server session: %s", err);
  return s;
}

/* ALPN: http/1.1 is chosen among the client's offers; a client offering
 * only h2, or nothing, still gets through, without ALPN. */
static void test_alpn(void) {
  static const unsigned char both[] = "\x02h2\x08http/1.1", h2[] = "\x02h2";
  struct {
    const unsigned char *alpn;
    unsigned len;
    const char *want; /* NULL: none selected */
  } cases[] = {
      {both, sizeof(both) - 1, "http/1.1"},
      {h2, sizeof(h2) - 1, NULL},
      {NULL, 0, NULL},
  };
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wf__tls_ctx_t *ctx;
    wf__tls_t *s = server(&ctx, NULL);
    const unsigned char *sel = NULL;
    unsigned sel_len = 0;
    raw_t r;
    int sr;

    raw_init(&r, 0, cases[i].alpn, cases[i].len, NULL, NULL);
    raw_handshake(&r, s, &sr);
    ASSERT_EQ(sr, 0);
    ASSERT_EQ(r.r, 0);
    SSL_get0_alpn_selected(r.ssl, &sel, &sel_len);
    if (cases[i].want) {
      ASSERT_EQ(sel_len, strlen(cases[i].want));
      ASSERT_OK(memcmp(sel, cases[i].want, sel_len));
    } else {
      ASSERT_EQ(sel_len, 0);
    }
    raw_finish(&r);
    wf__tls_destroy(s);
    wf__tls_ctx_destroy(ctx);
  }
}

/* TLS 1.2, where the client learns of a refusal inside its handshake: no
 * certificate and a foreign one fail as with 1.3, a good one verifies. */
static void test_tls12(void) {
  struct {
    const char *crt, *key, *want; /* want NULL: succeeds */
  } cases[] = {
      {NULL, NULL, "TLS handshake failed: client certificate required"},
      {cl2_crt, cl2_key, "TLS handshake failed: client certificate verify failed: "},
      {cl_crt, cl_key, NULL},
  };
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wf__tls_ctx_t *ctx;
    wf__tls_t *s = server(&ctx, ca);
    raw_t r;
    int sr;

    raw_init(&r, TLS1_2_VERSION, NULL, 0, cases[i].crt, cases[i].key);
    raw_handshake(&r, s, &sr);
    if (cases[i].want) {
      ASSERT_EQ(sr, WF_ETLS);
      assert_error(s, cases[i].want);
      ASSERT_EQ(r.r, -1);
      ASSERT_EQ(wf__tls_peer_verified(s), 0);
    } else {
      ASSERT_EQ(sr, 0);
      ASSERT_EQ(r.r, 0);
      ASSERT_EQ(SSL_version(r.ssl), TLS1_2_VERSION);
      ASSERT_EQ(wf__tls_peer_verified(s), 1);
    }
    raw_finish(&r);
    wf__tls_destroy(s);
    wf__tls_ctx_destroy(ctx);
  }
}

/* A client resumes its session on a listener that verifies client
 * certificates (OpenSSL refuses that unless the context has a session id
 * context), and the resumed session still counts as verified: the
 * certificate came with the session. */
static void test_resume(void) {
  int versions[] = {TLS1_2_VERSION, 0};
  size_t i;

  for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
    wf__tls_ctx_t *ctx;
    wf__tls_t *s = server(&ctx, ca), *s2;
    SSL_SESSION *sess;
    char err[256];
    raw_t r, r2;
    int sr;

    raw_init(&r, versions[i], NULL, 0, cl_crt, cl_key);
    raw_handshake(&r, s, &sr);
    ASSERT_EQ(sr, 0);
    ASSERT_EQ(r.r, 0);
    sess = SSL_get1_session(r.ssl);
    ASSERT_NOT_NULL(sess);
    ASSERT_EQ(SSL_SESSION_is_resumable(sess), 1);

    s2 = wf__tls_accept_create(ctx, err, sizeof(err));
    ASSERT_NOT_NULL(s2);
    raw_start(&r2, r.ctx, NULL, 0, sess); /* the session belongs to r's SSL_CTX */
    raw_handshake(&r2, s2, &sr);
    if (sr != 0) WF_FAIL("resumption: %s", wf__tls_error(s2));
    ASSERT_EQ(r2.r, 0);
    ASSERT_EQ(SSL_session_reused(r2.ssl), 1);
    ASSERT_EQ(wf__tls_peer_verified(s2), 1);

    SSL_SESSION_free(sess);
    raw_finish(&r2);
    raw_finish(&r);
    wf__tls_destroy(s2);
    wf__tls_destroy(s);
    wf__tls_ctx_destroy(ctx);
  }
}

/* ---- runner ---------------------------------------------------------------------------- */
static const wf_test_t tests[] = {
    WF_TEST(handshake_data), WF_TEST(client_cert_ok), WF_TEST(client_cert_missing),
    WF_TEST(client_cert_other_ca), WF_TEST(wrong_ca_both_ways), WF_TEST(not_tls),
    WF_TEST(bad_files), WF_TEST(alpn), WF_TEST(tls12), WF_TEST(resume),
};

int main(int argc, char **argv) {
  int rc;

  if (argc > 1 && strcmp(argv[1], "--list") == 0) return WF_TEST_MAIN(argc, argv, tests);
  if (system("openssl version >/dev/null 2>&1") != 0) {
    fprintf(stderr, "tls-server: the openssl CLI is missing; skipped\n");
    return 77;
  }
  make_certs();
  rc = WF_TEST_MAIN(argc, argv, tests);
  if (!getenv("WF_KEEP_TMP")) sh("rm -rf %s", dir);
  return rc;
}
