/*
 * test-tls: https:// in the HTTP client (src/http/client-tls.c + tls.c) on a
 * real loop, against real TLS peers.
 *
 * The certificates are made by the test with the openssl CLI in a temporary
 * directory: a CA, a server certificate for 127.0.0.1 and localhost, one for
 * another name only, a client certificate, and a second, unrelated CA.  The
 * peers are:
 *
 * - `openssl s_server -www` (spawned per case; -Verify 1 demands a client
 *   certificate): OpenSSL's own server, which answers HTTP/1.0 and ends the
 *   body by closing the connection (close_notify, then FIN);
 * - a small blocking OpenSSL server on a thread (tsrv) for what s_server
 *   cannot do: keep-alive, a long chunked body, closing a pooled connection,
 *   and a plain-HTTP port that does not speak TLS at all;
 * - a listening socket that never accepts, for the handshake timeout.
 *
 * Every case counts its callbacks and ends with wf_test_close_loop()
 * (uv_loop_close() == 0).  Usage: test-tls [name | --list]; skipped (77) when the
 * openssl CLI is missing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "tls-certs.h"
#include "wf-test.h"
#include "wf/http.h"
#include "wf/util.h"

static char dir[64];           /* the temp dir with the certificates */
static char ca[128], ca2[128]; /* our CA; an unrelated one */
static char srv_crt[128], srv_key[128], other_crt[128], other_key[128];
static char cl_crt[128], cl_key[128], cl_enc_key[128], junk[128];

/* ---- certificates (tls-certs.h) -------------------------------------------------------- */
static void path(char *out, const char *name) { snprintf(out, 128, "%s/%s", dir, name); }

static void make_certs(void) {
  certs_dir(dir, sizeof(dir));
  make_ca(dir, "ca", "wf-test-ca");
  make_ca(dir, "ca2", "wf-other-ca");
  /* clientAuth too: etcd's gateway presents the server certificate as a
   * client; kept the same here so the files match the e2e test's. */
  make_leaf(dir, "ca", "srv", "wf-test-server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth,clientAuth\\n");
  make_leaf(dir, "ca", "other", "wf-other-server",
            "subjectAltName=DNS:other.example\\nextendedKeyUsage=serverAuth\\n");
  make_leaf(dir, "ca", "cl", "wf-client", "extendedKeyUsage=clientAuth\\n");
  sh("cd %s && openssl pkey -in cl.key -aes256 -passout pass:secret -out cl-enc.key", dir);
  path(ca, "ca.crt");
  path(ca2, "ca2.crt");
  path(srv_crt, "srv.crt");
  path(srv_key, "srv.key");
  path(other_crt, "other.crt");
  path(other_key, "other.key");
  path(cl_crt, "cl.crt");
  path(cl_key, "cl.key");
  path(cl_enc_key, "cl-enc.key");
  path(junk, "srv.ext");
}

/* ---- helpers ------------------------------------------------------------------------ */
static int free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
  ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static int can_connect(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

typedef struct sserver_s {
  pid_t pid;
  int port;
} sserver_t;

/* Spawns `openssl s_server -www` on a free port with cert/key; with a CA it
 * demands a client certificate signed by it.  Waits until it accepts. */
static void s_server_start(sserver_t *s, const char *crt, const char *key, const char *client_ca) {
  char accept[32], log[128];
  int i;

  s->port = free_port();
  snprintf(accept, sizeof(accept), "127.0.0.1:%d", s->port);
  snprintf(log, sizeof(log), "%s/s_server-%d.log", dir, s->port);
  s->pid = fork();
  ASSERT(s->pid >= 0);
  if (s->pid == 0) {
    int in = open("/dev/null", O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (client_ca)
      execlp("openssl", "openssl", "s_server", "-accept", accept, "-cert", crt, "-key", key,
             "-www", "-Verify", "1", "-CAfile", client_ca, (char *)NULL);
    else
      execlp("openssl", "openssl", "s_server", "-accept", accept, "-cert", crt, "-key", key,
             "-www", (char *)NULL);
    _exit(127);
  }
  for (i = 0; i < 500 && !can_connect(s->port); i++) usleep(10000);
  if (i == 500) WF_FAIL("openssl s_server on port %d did not come up (see %s)", s->port, log);
}

static void s_server_stop(sserver_t *s) {
  int st;
  kill(s->pid, SIGTERM);
  ASSERT_EQ(waitpid(s->pid, &st, 0), s->pid);
}

/* ---- the threaded OpenSSL server (tsrv) ------------------------------------------------ */
#define BIG_CHUNKS 256
#define BIG_CHUNK 4096

typedef struct tsrv_s {
  int lfd, port;
  SSL_CTX *ctx;   /* NULL: plain TCP that answers an HTTP 400 to anything */
  int close_idle; /* 0: keep-alive; n: close (close_notify + FIN) n - 1 ms after each answer */
  uv_thread_t tid;
  int stop;
  /* Read with __atomic_load_n from the loop thread. */
  int conns, requests, close_notifies;
} tsrv_t;

static void ssl_write_all(SSL *ssl, const char *p, size_t n) {
  while (n > 0) {
    int r = SSL_write(ssl, p, (int)n);
    if (r <= 0) return;
    p += r;
    n -= (size_t)r;
  }
}

/* Serves one TLS connection, request after request, until the client goes. */
static void tsrv_conn(tsrv_t *s, int fd) {
  SSL *ssl = SSL_new(s->ctx);
  char in[8192];
  int id, nreq = 0;

  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) != 1) goto out;
  id = __atomic_add_fetch(&s->conns, 1, __ATOMIC_SEQ_CST);
  for (;;) {
    size_t len = 0;
    char path_[64] = "", out[256];
    while (!memmem(in, len, "\r\n\r\n", 4)) {
      int r = len < sizeof(in) - 1 ? SSL_read(ssl, in + len, (int)(sizeof(in) - 1 - len)) : 0;
      if (r <= 0) {
        if (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN)
          __atomic_add_fetch(&s->close_notifies, 1, __ATOMIC_SEQ_CST);
        goto out;
      }
      len += (size_t)r;
    }
    in[len] = '\0';
    sscanf(in, "GET %63s ", path_);
    nreq++;
    __atomic_add_fetch(&s->requests, 1, __ATOMIC_SEQ_CST);
    if (strcmp(path_, "/big") == 0) {
      static char chunk[BIG_CHUNK + 16];
      int i;
      static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
      ssl_write_all(ssl, head, sizeof(head) - 1);
      for (i = 0; i < BIG_CHUNKS; i++) {
        int h = snprintf(chunk, sizeof(chunk), "%x\r\n", BIG_CHUNK);
        memset(chunk + h, 'a' + i % 26, BIG_CHUNK);
        memcpy(chunk + h + BIG_CHUNK, "\r\n", 2);
        ssl_write_all(ssl, chunk, (size_t)h + BIG_CHUNK + 2);
      }
      ssl_write_all(ssl, "0\r\n\r\n", 5);
    } else if (strcmp(path_, "/close") == 0) {
      snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n"
                                 "\r\nbye");
      ssl_write_all(ssl, out, strlen(out));
      SSL_shutdown(ssl);
      goto out;
    } else {
      char body[64];
      int bl = snprintf(body, sizeof(body), "conn=%d req=%d", id, nreq);
      snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", bl, body);
      ssl_write_all(ssl, out, strlen(out));
      if (s->close_idle) {
        /* Later than the answer, so that it reaches a pooled connection. */
        usleep((useconds_t)(s->close_idle - 1) * 1000);
        SSL_shutdown(ssl);
        goto out;
      }
    }
  }
out:
  SSL_free(ssl);
  close(fd);
}

static void tsrv_main(void *arg) {
  tsrv_t *s = arg;
  while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
    struct pollfd p = {s->lfd, POLLIN, 0};
    struct timeval tv = {10, 0};
    int fd, one = 1;
    if (poll(&p, 1, 20) <= 0) continue;
    fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) continue;
    /* Never wedge the test: a silent client is dropped after 10 s.  No
     * Nagle: it would hold an answer back until the client's delayed ACK,
     * and the test's timing with it (etcd's Go server does the same). */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (s->ctx) {
      tsrv_conn(s, fd);
    } else {
      char buf[512];
      static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
      (void)!read(fd, buf, sizeof(buf));
      (void)!write(fd, bad, sizeof(bad) - 1);
      __atomic_add_fetch(&s->conns, 1, __ATOMIC_SEQ_CST);
      close(fd);
    }
  }
}

static void tsrv_start(tsrv_t *s, int tls, int close_idle) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);

  memset(s, 0, sizeof(*s));
  s->close_idle = close_idle;
  if (tls) {
    s->ctx = SSL_CTX_new(TLS_server_method());
    ASSERT_NOT_NULL(s->ctx);
    ASSERT_EQ(SSL_CTX_use_certificate_chain_file(s->ctx, srv_crt), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey_file(s->ctx, srv_key, SSL_FILETYPE_PEM), 1);
  }
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)));
  ASSERT_OK(listen(s->lfd, 16));
  ASSERT_OK(getsockname(s->lfd, (struct sockaddr *)&a, &len));
  s->port = ntohs(a.sin_port);
  ASSERT_OK(uv_thread_create(&s->tid, tsrv_main, s));
}

static void tsrv_stop(tsrv_t *s) {
  __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
  ASSERT_OK(uv_thread_join(&s->tid));
  close(s->lfd);
  SSL_CTX_free(s->ctx);
}

static int tsrv_get(tsrv_t *s, int *field) {
  (void)s;
  return __atomic_load_n(field, __ATOMIC_SEQ_CST);
}

/* ---- the client side -------------------------------------------------------------------- */
static uv_loop_t loop;
static int close_cb_called;

typedef struct res_s {
  int done;
  int err;
  int status;
  char body[1024];
  size_t len;
  size_t streamed;
  int bad_byte;
  int data_calls;
} res_t;

static void on_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                    void *data) {
  res_t *r = data;
  (void)req;
  r->done++;
  r->err = err;
  r->status = status;
  if (body) {
    r->len = len;
    snprintf(r->body, sizeof(r->body), "%.*s", (int)(len < 1000 ? len : 1000), body);
  }
}

static void on_client_closed(void *data) {
  (void)data;
  close_cb_called++;
}

static wf_http_client_t *client_new(const char *origin, const char *cafile, const char *crt,
                                    const char *key, uint64_t connect_timeout_ms) {
  wf_http_tls_opts_t t = {cafile, crt, key};
  wf_http_client_opts_t o;
  char err[512];
  wf_http_client_t *c;

  memset(&o, 0, sizeof(o));
  o.tls = &t;
  o.connect_timeout_ms = connect_timeout_ms;
  c = wf_http_client_create_ex(&loop, origin, &o, err, sizeof(err));
  if (!c) WF_FAIL("create %s: %s", origin, err);
  return c;
}

/* One GET, run on the loop until its on_done. */
static void fetch(wf_http_client_t *c, const char *path_, res_t *r) {
  wf_http_req_opts_t o;
  wf_http_cbs_t cbs;
  memset(&o, 0, sizeof(o));
  memset(&cbs, 0, sizeof(cbs));
  memset(r, 0, sizeof(*r));
  o.method = "GET";
  o.path = path_;
  o.timeout_ms = 10000;
  cbs.on_done = on_done;
  ASSERT_NOT_NULL(wf_http_request(c, &o, &cbs, r));
  while (!r->done) uv_run(&loop, UV_RUN_ONCE);
  ASSERT_EQ(r->done, 1);
}

static void finish(wf_http_client_t *c) {
  close_cb_called = 0;
  wf_http_client_close(c, on_client_closed, NULL);
  wf_test_close_loop(&loop);
  ASSERT_EQ(close_cb_called, 1);
}

static void expect_tls_error(const char *origin, const char *cafile, const char *crt,
                             const char *key, const char *want) {
  wf_http_client_t *c;
  res_t r;

  ASSERT_OK(uv_loop_init(&loop));
  c = client_new(origin, cafile, crt, key, 0);
  ASSERT_STR_EQ(wf_http_client_last_error(c), "");
  fetch(c, "/", &r);
  ASSERT_EQ(r.err, WF_ETLS);
  ASSERT_EQ(r.status, 0);
  if (!strstr(wf_http_client_last_error(c), want))
    WF_FAIL("%s: last error \"%s\" does not say \"%s\"", origin, wf_http_client_last_error(c),
            want);
  fprintf(stderr, "  %s: %s\n", origin, wf_http_client_last_error(c));
  finish(c);
}

/* ---- cases ------------------------------------------------------------------------------ */

/* Client certificate, IP and DNS name checks: a full exchange with
 * s_server, whose HTTP/1.0 body ends with its close_notify. */
static void test_s_server_ok(void) {
  sserver_t s;
  char origin[64];
  const char *hosts[] = {"127.0.0.1", "localhost"};
  size_t i;

  s_server_start(&s, srv_crt, srv_key, ca);
  for (i = 0; i < 2; i++) {
    wf_http_client_t *c;
    res_t r;
    ASSERT_OK(uv_loop_init(&loop));
    snprintf(origin, sizeof(origin), "https://%s:%d", hosts[i], s.port);
    c = client_new(origin, ca, cl_crt, cl_key, 0);
    fetch(c, "/", &r);
    ASSERT_OK(r.err);
    ASSERT_EQ(r.status, 200);
    ASSERT(strstr(r.body, "<HTML>") != NULL);
    /* The close-delimited response ended the connection: a second request
     * needs a new one (and gets it). */
    fetch(c, "/", &r);
    ASSERT_OK(r.err);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(wf_http_client_last_error(c), "");
    finish(c);
  }
  s_server_stop(&s);
}

static void test_no_client_cert(void) {
  sserver_t s;
  char origin[64];
  s_server_start(&s, srv_crt, srv_key, ca);
  snprintf(origin, sizeof(origin), "https://127.0.0.1:%d", s.port);
  /* TLS 1.3: our side of the handshake completes, then the server's alert
   * arrives with (instead of) the response. */
  expect_tls_error(origin, ca, NULL, NULL, "certificate required");
  s_server_stop(&s);
}

static void test_wrong_ca(void) {
  sserver_t s;
  char origin[64];
  s_server_start(&s, srv_crt, srv_key, NULL);
  snprintf(origin, sizeof(origin), "https://127.0.0.1:%d", s.port);
  expect_tls_error(origin, ca2, cl_crt, cl_key, "unable to get local issuer certificate");
  /* No CA file: the system trust store, which does not know our CA. */
  expect_tls_error(origin, NULL, NULL, NULL, "server certificate rejected");
  s_server_stop(&s);
}

static void test_wrong_host(void) {
  sserver_t s;
  char origin[64];
  s_server_start(&s, other_crt, other_key, NULL);
  snprintf(origin, sizeof(origin), "https://127.0.0.1:%d", s.port);
  expect_tls_error(origin, ca, NULL, NULL, "IP address mismatch");
  snprintf(origin, sizeof(origin), "https://localhost:%d", s.port);
  expect_tls_error(origin, ca, NULL, NULL, "hostname mismatch");
  s_server_stop(&s);
}

/* Bad TLS material fails at create, with the file and the reason. */
static void test_bad_files(void) {
  static const struct {
    const char *ca, *crt, *key, *want;
  } cases[] = {
      {"/nonexistent/ca.pem", NULL, NULL, "CA file /nonexistent/ca.pem: No such file"},
      {NULL, "/nonexistent/c.pem", "/nonexistent/k.pem",
       "client certificate /nonexistent/c.pem: No such file"},
      {NULL, cl_crt, NULL, "needs its key"},
      {NULL, NULL, cl_key, "needs its certificate"},
      {NULL, cl_crt, "/nonexistent/k.pem", "client key /nonexistent/k.pem: No such file"},
      {NULL, cl_crt, srv_key, "does not match certificate"},
      {junk, NULL, NULL, "CA file"},
      {NULL, junk, cl_key, "client certificate"},
      {NULL, cl_crt, cl_enc_key, "is encrypted"}, /* refused, never prompts */
  };
  wf_http_tls_opts_t t;
  wf_http_client_opts_t o;
  char err[512];
  size_t i;

  ASSERT_OK(uv_loop_init(&loop));
  memset(&o, 0, sizeof(o));
  o.tls = &t;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    t.ca_file = cases[i].ca;
    t.cert_file = cases[i].crt;
    t.key_file = cases[i].key;
    err[0] = '\0';
    ASSERT_NULL(wf_http_client_create_ex(&loop, "https://127.0.0.1:2379", &o, err, sizeof(err)));
    if (!strstr(err, cases[i].want)) WF_FAIL("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].want);
    fprintf(stderr, "  %s\n", err);
  }
  /* https needs TLS options; http ignores them; defaults (system store). */
  ASSERT_NULL(wf_http_client_create_ex(&loop, "https://127.0.0.1:2379", NULL, err, sizeof(err)));
  ASSERT(strstr(err, "needs TLS options") != NULL);
  ASSERT_NULL(wf_http_client_create(&loop, "https://127.0.0.1:2379", NULL));
  ASSERT_NULL(wf_http_client_create_ex(&loop, "ftp://x", &o, err, sizeof(err)));
  ASSERT(strstr(err, "is not an http://") != NULL);
  memset(&t, 0, sizeof(t));
  {
    wf_http_client_t *a = wf_http_client_create(&loop, "https://127.0.0.1:2379", &o);
    wf_http_client_t *b = wf_http_client_create(&loop, "https://[::1]", &o);
    wf_http_client_t *h = wf_http_client_create(&loop, "http://127.0.0.1:2379", &o);
    ASSERT_NOT_NULL(a);
    ASSERT_NOT_NULL(b);
    ASSERT_NOT_NULL(h);
    close_cb_called = 0;
    wf_http_client_close(a, on_client_closed, NULL);
    wf_http_client_close(b, on_client_closed, NULL);
    wf_http_client_close(h, on_client_closed, NULL);
  }
  wf_test_close_loop(&loop);
  ASSERT_EQ(close_cb_called, 3);
}

/* Two requests share one TLS connection; closing the client sends
 * close_notify on it. */
static void test_keepalive(void) {
  tsrv_t s;
  char origin[64];
  wf_http_client_t *c;
  res_t r;

  tsrv_start(&s, 1, 0);
  ASSERT_OK(uv_loop_init(&loop));
  snprintf(origin, sizeof(origin), "https://127.0.0.1:%d", s.port);
  c = client_new(origin, ca, NULL, NULL, 0);
  fetch(c, "/a", &r);
  ASSERT_OK(r.err);
  ASSERT_STR_EQ(r.body, "conn=1 req=1");
  fetch(c, "/b", &r);
  ASSERT_OK(r.err);
  ASSERT_STR_EQ(r.body, "conn=1 req=2");
  finish(c);
  tsrv_stop(&s);
  ASSERT_EQ(tsrv_get(&s, &s.conns), 1);
  ASSERT_EQ(tsrv_get(&s, &s.requests), 2);
  ASSERT_EQ(tsrv_get(&s, &s.close_notifies), 1);
}

static void on_spin(uv_timer_t *t) { uv_close((uv_handle_t *)t, NULL); }

/* Runs the loop for ms (pooled connections alone do not keep it alive). */
static void spin(uint64_t ms) {
  uv_timer_t t;
  ASSERT_OK(uv_timer_init(&loop, &t));
  ASSERT_OK(uv_timer_start(&t, on_spin, ms, 0));
  uv_run(&loop, UV_RUN_DEFAULT);
}

/* "Connection: close" and a server that closes its idle connection right
 * after answering: the next request opens a new one and succeeds. */
static void test_server_closes(void) {
  tsrv_t s;
  char origin[64];
  wf_http_client_t *c;
  res_t r;
  int i;

  tsrv_start(&s, 1, 0);
  ASSERT_OK(uv_loop_init(&loop));
  snprintf(origin, sizeof(origin), "https://127.0.0.1:%d", s.port);
  c = client_new(origin, ca, NULL, NULL, 0);
  fetch(c, "/close", &r);
  ASSERT_OK(r.err);
  ASSERT_STR_EQ(r.body, "bye");
  fetch(c, "/x", &r);
  ASSERT_OK(r.err);
  ASSERT_STR_EQ(r.body, "conn=2 req=1");
  finish(c);
  tsrv_stop(&s);

  tsrv_start(&s, 1, 31);
  ASSERT_OK(uv_loop_init(&loop));
  snprintf(origin, sizeof(origin), "https://127.0.0.1:%d", s.port);
  c = client_new(origin, ca, NULL, NULL, 0);
  for (i = 1; i <= 3; i++) {
    char want[32];
    fetch(c, "/x", &r);
    ASSERT_OK(r.err);
    snprintf(want, sizeof(want), "conn=%d req=1", i);
    ASSERT_STR_EQ(r.body, want);
    /* The server's close_notify and FIN reach the pooled connection: the
     * first time while the loop runs (the pool drops it), the second time
     * while it does not (the request goes out on it, fails before any
     * response byte and is retried once on a fresh connection). */
    if (i == 1)
      spin(100);
    else
      usleep(100000);
  }
  finish(c);
  tsrv_stop(&s);
  ASSERT_EQ(tsrv_get(&s, &s.conns), 3);

  /* close_notify right behind the answer, often in the same read: the
   * connection is judged before anyone reuses it (or the retry covers). */
  tsrv_start(&s, 1, 1);
  ASSERT_OK(uv_loop_init(&loop));
  snprintf(origin, sizeof(origin), "https://127.0.0.1:%d", s.port);
  c = client_new(origin, ca, NULL, NULL, 0);
  for (i = 1; i <= 5; i++) {
    char want[32];
    fetch(c, "/x", &r);
    ASSERT_OK(r.err);
    snprintf(want, sizeof(want), "conn=%d req=1", i);
    ASSERT_STR_EQ(r.body, want);
  }
  finish(c);
  tsrv_stop(&s);
  ASSERT_EQ(tsrv_get(&s, &s.conns), 5);
}

/* A 1 MiB chunked body streamed over TLS, paused at every piece and resumed
 * from a timer: nothing lost, nothing repeated, in order. */
static uv_timer_t resume_timer;

static void on_resume(uv_timer_t *t) { wf_http_req_resume(t->data); }

static void on_data_pause(wf_http_req_t *req, const char *p, size_t n, void *data) {
  res_t *r = data;
  size_t i;
  for (i = 0; i < n; i++) {
    size_t pos = r->streamed + i;
    if (p[i] != 'a' + (int)((pos / BIG_CHUNK) % 26)) r->bad_byte = 1;
  }
  r->streamed += n;
  r->data_calls++;
  wf_http_req_pause(req);
  resume_timer.data = req;
  uv_timer_start(&resume_timer, on_resume, 0, 0);
}

static void test_stream_pause(void) {
  tsrv_t s;
  char origin[64];
  wf_http_client_t *c;
  wf_http_req_opts_t o;
  wf_http_cbs_t cbs;
  res_t r;

  tsrv_start(&s, 1, 0);
  ASSERT_OK(uv_loop_init(&loop));
  ASSERT_OK(uv_timer_init(&loop, &resume_timer));
  snprintf(origin, sizeof(origin), "https://127.0.0.1:%d", s.port);
  c = client_new(origin, ca, NULL, NULL, 0);
  memset(&o, 0, sizeof(o));
  memset(&cbs, 0, sizeof(cbs));
  memset(&r, 0, sizeof(r));
  o.method = "GET";
  o.path = "/big";
  o.stream = 1;
  o.timeout_ms = 10000;
  cbs.on_data = on_data_pause;
  cbs.on_done = on_done;
  ASSERT_NOT_NULL(wf_http_request(c, &o, &cbs, &r));
  while (!r.done) uv_run(&loop, UV_RUN_ONCE);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.streamed, (size_t)BIG_CHUNKS * BIG_CHUNK);
  ASSERT_EQ(r.bad_byte, 0);
  ASSERT(r.data_calls >= BIG_CHUNKS);
  /* The connection went back to the pool: the next request reuses it. */
  fetch(c, "/after", &r);
  ASSERT_STR_EQ(r.body, "conn=1 req=2");
  uv_close((uv_handle_t *)&resume_timer, NULL);
  finish(c);
  tsrv_stop(&s);
}

/* https to a port that speaks plain HTTP: a TLS error, not a hang. */
static void test_not_tls(void) {
  tsrv_t s;
  char origin[64];
  tsrv_start(&s, 0, 0);
  snprintf(origin, sizeof(origin), "https://127.0.0.1:%d", s.port);
  expect_tls_error(origin, ca, NULL, NULL, "TLS handshake failed");
  tsrv_stop(&s);
}

/* A server that accepts TCP but never answers the hello: the connect
 * timeout covers the handshake.  Then a client closed in mid-handshake. */
static void test_handshake_timeout(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  char origin[64];
  wf_http_client_t *c;
  wf_http_req_opts_t o;
  wf_http_cbs_t cbs;
  res_t r;
  uint64_t t0;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(lfd, (struct sockaddr *)&a, sizeof(a)));
  ASSERT_OK(listen(lfd, 16)); /* the kernel completes connects; nobody reads */
  ASSERT_OK(getsockname(lfd, (struct sockaddr *)&a, &len));
  snprintf(origin, sizeof(origin), "https://127.0.0.1:%d", ntohs(a.sin_port));

  ASSERT_OK(uv_loop_init(&loop));
  c = client_new(origin, ca, NULL, NULL, 300);
  /* The connect timer starts from the loop's clock, which is the time of
   * uv_loop_init until the loop runs: bring it up to date, for client_new
   * may have just loaded OpenSSL (the case's first https client when it
   * runs alone; tens of ms under ASan). */
  uv_update_time(&loop);
  t0 = uv_hrtime();
  fetch(c, "/", &r);
  ASSERT_EQ(r.err, UV_ETIMEDOUT);
  ASSERT((uv_hrtime() - t0) / 1000000 >= 250);
  finish(c);

  ASSERT_OK(uv_loop_init(&loop));
  c = client_new(origin, ca, NULL, NULL, 0);
  memset(&o, 0, sizeof(o));
  memset(&cbs, 0, sizeof(cbs));
  memset(&r, 0, sizeof(r));
  o.method = "GET";
  o.path = "/";
  cbs.on_done = on_done;
  ASSERT_NOT_NULL(wf_http_request(c, &o, &cbs, &r));
  /* Run until the TCP connect is through and the hello is out. */
  t0 = uv_hrtime();
  while (uv_hrtime() - t0 < 100 * 1000000ull) uv_run(&loop, UV_RUN_NOWAIT);
  ASSERT_EQ(r.done, 0);
  finish(c);
  ASSERT_EQ(r.done, 1);
  ASSERT_EQ(r.err, UV_ECANCELED);
  close(lfd);
}

/* ---- runner ---------------------------------------------------------------------------- */
static const wf_test_t tests[] = {
    WF_TEST(s_server_ok), WF_TEST(no_client_cert), WF_TEST(wrong_ca), WF_TEST(wrong_host),
    WF_TEST(bad_files), WF_TEST(keepalive), WF_TEST(server_closes), WF_TEST(stream_pause),
    WF_TEST(not_tls), WF_TEST(handshake_timeout),
};

int main(int argc, char **argv) {
  int rc;

  if (argc > 1 && strcmp(argv[1], "--list") == 0) return WF_TEST_MAIN(argc, argv, tests);
  if (system("openssl version >/dev/null 2>&1") != 0) {
    fprintf(stderr, "tls: the openssl CLI is missing; skipped\n");
    return 77;
  }
  /* The threaded server writes to clients that may have gone. */
  signal(SIGPIPE, SIG_IGN);
  if (getenv("WF_TEST_DEBUG")) wf_log_setup(WF_LOG_DEBUG, 0);
  make_certs();
  rc = WF_TEST_MAIN(argc, argv, tests);
  if (!getenv("WF_KEEP_TMP")) sh("rm -rf %s", dir);
  return rc;
}
