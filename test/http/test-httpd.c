/*
 * test-httpd: the agent's HTTP server (src/http/server.c) on a real loop,
 * bound to 127.0.0.1:0.  Well-formed requests go through our own HTTP
 * client (include/wf/http.h); the bytes a client library will not send
 * (an exact-size head, garbage, a head that never ends, a client that never
 * reads) come from raw uv_tcp clients on the same loop.
 *
 * Every test counts its callbacks, asserts them, and ends with
 * wf_test_close_loop() (uv_loop_close() == 0).  Usage: test-httpd [name | --list].
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "wf-test.h"
#include "wf/http.h"
#include "wf/httpd.h"
#include "wf/util.h"

static uv_loop_t loop;
static wf_httpd_t *srv;
static int handler_calls;
static int server_closed;

/* /hello answers "hello\n"; /big answers big_len bytes; the rest is 404. */
static size_t big_len;

static void handler(wf_httpd_req_t *req, wf_httpd_resp_t *r, void *data) {
  const char *path = req->path;
  handler_calls++;
  if (strcmp(path, "/hello") == 0) {
    wf_buf_printf(&r->body, "hello\n");
  } else if (strcmp(path, "/big") == 0) {
    char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    for (size_t n = 0; n < big_len; n += sizeof chunk)
      ASSERT_OK(wf_buf_append(&r->body, chunk, big_len - n < sizeof chunk ? big_len - n
                                                                          : sizeof chunk));
  } else {
    r->status = 404;
    wf_buf_printf(&r->body, "no\n");
  }
}

static void on_server_closed(void *data) { server_closed++; }

static void start_server(const wf_httpd_opts_t *o) {
  ASSERT_OK(uv_loop_init(&loop));
  handler_calls = server_closed = 0;
  ASSERT_OK(wf_httpd_start(&loop, "127.0.0.1:0", o, handler, NULL, &srv, NULL, 0));
  ASSERT(wf_httpd_port(srv) > 0);
}

static void close_server(void) {
  wf_httpd_close(srv, on_server_closed, NULL);
  ASSERT_EQ(server_closed, 0); /* never from inside the call */
  wf_test_close_loop(&loop);
  ASSERT_EQ(server_closed, 1);
}

/* ---- requests through our client ------------------------------------------------- */

typedef struct creq_s {
  int done;
  int err;
  int status;
  char body[256];
  size_t len;
} creq_t;

static int creqs_done;

static void on_creq_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                         void *data) {
  creq_t *r = data;
  r->done++;
  r->err = err;
  r->status = status;
  r->len = len;
  if (body) snprintf(r->body, sizeof r->body, "%.*s", (int)len, body);
  creqs_done++;
}

static void client_request(wf_http_client_t *c, const char *method, const char *path,
                           const wf_http_header_t *hdrs, size_t nhdrs, creq_t *out) {
  wf_http_req_opts_t o;
  memset(&o, 0, sizeof o);
  o.method = method;
  o.path = path;
  o.headers = hdrs;
  o.nheaders = nhdrs;
  o.timeout_ms = 5000;
  wf_http_cbs_t cbs;
  memset(&cbs, 0, sizeof cbs);
  cbs.on_done = on_creq_done;
  memset(out, 0, sizeof *out);
  ASSERT_NOT_NULL(wf_http_request(c, &o, &cbs, out));
}

static wf_http_client_t *make_client(void) {
  char origin[64];
  snprintf(origin, sizeof origin, "http://127.0.0.1:%d", wf_httpd_port(srv));
  wf_http_client_t *c = wf_http_client_create(&loop, origin, NULL);
  ASSERT_NOT_NULL(c);
  return c;
}

static void run_until(int *counter, int want) {
  uint64_t deadline = uv_hrtime() + 10ull * 1000 * 1000 * 1000;
  while (*counter < want) {
    uv_run(&loop, UV_RUN_ONCE);
    if (uv_hrtime() > deadline) WF_FAIL("timed out: %d of %d", *counter, want);
  }
}

static void test_status_codes(void) {
  start_server(NULL);
  wf_http_client_t *c = make_client();
  creq_t ok, query, missing, post, head, del;
  creqs_done = 0;
  client_request(c, "GET", "/hello", NULL, 0, &ok);
  client_request(c, "GET", "/hello?x=1&y=2", NULL, 0, &query);
  client_request(c, "GET", "/nope", NULL, 0, &missing);
  client_request(c, "POST", "/hello", NULL, 0, &post);
  client_request(c, "HEAD", "/hello", NULL, 0, &head);
  client_request(c, "DELETE", "/hello", NULL, 0, &del);
  run_until(&creqs_done, 6);
  ASSERT_OK(ok.err);
  ASSERT_EQ(ok.status, 200);
  ASSERT_STR_EQ(ok.body, "hello\n");
  ASSERT_EQ(query.status, 200);
  ASSERT_EQ(missing.status, 404);
  ASSERT_STR_EQ(missing.body, "no\n");
  ASSERT_EQ(post.status, 405);
  ASSERT_EQ(del.status, 405);
  ASSERT_OK(head.err);
  ASSERT_EQ(head.status, 200);
  ASSERT_EQ(head.len, 0);
  /* 405 never reaches the handler. */
  ASSERT_EQ(handler_calls, 4);
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.accepted, 6);
  ASSERT_EQ(st.bad, 2);
  wf_http_client_close(c, NULL, NULL);
  close_server();
}

/* A request header over the bound, through the client: 431. */
static void test_oversized_head_client(void) {
  start_server(NULL);
  wf_http_client_t *c = make_client();
  char *big = wf_malloc(9001);
  memset(big, 'a', 9000);
  big[9000] = '\0';
  wf_http_header_t h[] = {{"X-Big", big}};
  creq_t r;
  creqs_done = 0;
  client_request(c, "GET", "/hello", h, 1, &r);
  free(big);
  run_until(&creqs_done, 1);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.status, 431);
  ASSERT_EQ(handler_calls, 0);
  wf_http_client_close(c, NULL, NULL);
  close_server();
}

/* ---- raw clients ------------------------------------------------------------------- */

typedef struct raw_s {
  uv_tcp_t tcp;
  uv_connect_t conn;
  uv_write_t wreq;
  const char *send;
  size_t send_len;
  int no_read;       /* never read: the server's write blocks */
  int connected;     /* 1 ok, < 0 error */
  int eof;           /* 1 after EOF or a read error */
  int read_err;
  char in[2048];
  size_t inlen;
  size_t total_in;
  uint64_t eof_at;   /* uv_hrtime() */
  int closed;
} raw_t;

static int raws_eof, raws_closed;

static void on_raw_closed(uv_handle_t *h) {
  raw_t *r = h->data;
  r->closed = 1;
  raws_closed++;
}

static void on_raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  raw_t *r = h->data;
  static char sink[65536];
  if (r->inlen < sizeof r->in - 1)
    *buf = uv_buf_init(r->in + r->inlen, (unsigned)(sizeof r->in - 1 - r->inlen));
  else
    *buf = uv_buf_init(sink, sizeof sink);
}

static void on_raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  raw_t *r = s->data;
  if (n > 0) {
    if (buf->base == r->in + r->inlen) r->inlen += (size_t)n;
    r->in[r->inlen] = '\0';
    r->total_in += (size_t)n;
    return;
  }
  if (n == 0) return;
  r->eof = 1;
  r->read_err = (int)n;
  r->eof_at = uv_hrtime();
  raws_eof++;
  uv_close((uv_handle_t *)&r->tcp, on_raw_closed);
}

static void on_raw_written(uv_write_t *w, int status) {}

static void on_raw_connected(uv_connect_t *c, int status) {
  raw_t *r = c->data;
  r->connected = status == 0 ? 1 : status;
  if (status != 0) {
    r->eof = 1;
    r->eof_at = uv_hrtime();
    raws_eof++;
    uv_close((uv_handle_t *)&r->tcp, on_raw_closed);
    return;
  }
  if (r->send_len) {
    uv_buf_t b = uv_buf_init((char *)r->send, (unsigned)r->send_len);
    uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, on_raw_written);
  }
  if (!r->no_read) uv_read_start((uv_stream_t *)&r->tcp, on_raw_alloc, on_raw_read);
}

static void raw_start(raw_t *r, const char *bytes, size_t len) {
  struct sockaddr_in a;
  memset(r, 0, sizeof *r);
  r->send = bytes;
  r->send_len = len;
  ASSERT_OK(uv_ip4_addr("127.0.0.1", wf_httpd_port(srv), &a));
  uv_tcp_init(&loop, &r->tcp);
  r->tcp.data = r;
  r->conn.data = r;
  ASSERT_OK(uv_tcp_connect(&r->conn, &r->tcp, (const struct sockaddr *)&a, on_raw_connected));
}

static int status_of(const raw_t *r) {
  int st = 0;
  if (sscanf(r->in, "HTTP/1.1 %d", &st) != 1) return 0;
  return st;
}

/* A request head of exactly max_head bytes is served; one byte more is 431. */
static void test_head_bound_exact(void) {
  wf_httpd_opts_t o = {.max_head = 512};
  start_server(&o);
  char exact[512 + 1], over[513 + 1];
  const char *pre = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  size_t fill = 512 - strlen(pre) - 4;
  snprintf(exact, sizeof exact, "%s%.*s\r\n\r\n", pre, (int)fill,
           "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
           "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
           "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
           "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
           "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
           "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
  ASSERT_EQ(strlen(exact), 512);
  snprintf(over, sizeof over, "%s%.*sz\r\n\r\n", pre, (int)fill, exact + strlen(pre));
  ASSERT_EQ(strlen(over), 513);
  raw_t a, b;
  raws_eof = raws_closed = 0;
  raw_start(&a, exact, 512);
  raw_start(&b, over, 513);
  run_until(&raws_closed, 2);
  ASSERT_EQ(status_of(&a), 200);
  ASSERT(strstr(a.in, "\r\n\r\nhello\n") != NULL);
  ASSERT(strstr(a.in, "Connection: close\r\n") != NULL);
  ASSERT_EQ(status_of(&b), 431);
  ASSERT_EQ(handler_calls, 1);
  close_server();
}

/* A 100 KiB head sent in one go: 431 while the rest is still arriving, and
 * the response survives the close (no RST eats it). */
static void test_oversized_head_raw(void) {
  start_server(NULL);
  size_t n = 100 * 1024;
  char *req = wf_malloc(n);
  memset(req, 'h', n);
  memcpy(req, "GET /hello HTTP/1.1\r\nX-Long: ", 29);
  raw_t r;
  raws_eof = raws_closed = 0;
  raw_start(&r, req, n);
  run_until(&raws_closed, 1);
  ASSERT_EQ(status_of(&r), 431);
  ASSERT_EQ(handler_calls, 0);
  free(req);
  close_server();
}

static void test_garbage(void) {
  start_server(NULL);
  static const char g1[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
  static const char g2[] = "GET /hello HTTP/9.9\r\n\r\n";
  static const char g3[] = "GET /hello HTTP/1.1\r\nBad Header Without Colon\r\n\r\n";
  static const char g4[] = "GET /hello HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
  raw_t r[4];
  raws_eof = raws_closed = 0;
  raw_start(&r[0], g1, sizeof g1 - 1);
  raw_start(&r[1], g2, sizeof g2 - 1);
  raw_start(&r[2], g3, sizeof g3 - 1);
  raw_start(&r[3], g4, sizeof g4 - 1);
  run_until(&raws_closed, 4);
  for (int i = 0; i < 4; i++) ASSERT_EQ(status_of(&r[i]), 400);
  ASSERT_EQ(handler_calls, 0);
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.bad, 4);
  /* The server sees the clients' close after they saw its own. */
  while (st.open) {
    uv_run(&loop, UV_RUN_ONCE);
    wf_httpd_stats(srv, &st);
  }
  close_server();
}

/* A head that never ends is closed at the deadline, without an answer; a
 * well-behaved client meanwhile is served at once. */
static void test_slow_client(void) {
  wf_httpd_opts_t o = {.timeout_ms = 300};
  start_server(&o);
  static const char part[] = "GET /hello HTTP/1.1\r\nHost: x\r\n";
  static const char full[] = "GET /hello HTTP/1.1\r\n\r\n";
  raw_t slow, fast;
  raws_eof = raws_closed = 0;
  uint64_t t0 = uv_hrtime();
  raw_start(&slow, part, sizeof part - 1);
  raw_start(&fast, full, sizeof full - 1);
  run_until(&raws_closed, 2);
  ASSERT_EQ(status_of(&fast), 200);
  ASSERT(fast.eof_at < slow.eof_at);
  ASSERT_EQ(slow.inlen, 0);
  uint64_t ms = (slow.eof_at - t0) / 1000000;
  ASSERT(ms >= 290 && ms < 3000);
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.timeouts, 1);
  close_server();
}

/* A client that never reads a big response is cut off at the deadline. */
static void test_never_reads(void) {
  wf_httpd_opts_t o = {.timeout_ms = 300};
  start_server(&o);
  big_len = 12u << 20; /* more than loopback buffers take from a non-reader */
  static const char req[] = "GET /big HTTP/1.1\r\n\r\n";
  raw_t r;
  raws_eof = raws_closed = 0;
  raw_start(&r, req, sizeof req - 1);
  r.no_read = 1;
  uint64_t deadline = uv_hrtime() + 5ull * 1000 * 1000 * 1000;
  wf_httpd_stats_t st;
  do {
    uv_run(&loop, UV_RUN_ONCE);
    wf_httpd_stats(srv, &st);
    if (uv_hrtime() > deadline) WF_FAIL("the server never timed the reader out");
  } while (st.timeouts == 0);
  ASSERT_EQ(st.open, 0);
  /* Now read: what arrives is a cut response, then EOF (or a reset). */
  uv_read_start((uv_stream_t *)&r.tcp, on_raw_alloc, on_raw_read);
  run_until(&raws_closed, 1);
  ASSERT(r.total_in < big_len);
  close_server();
}

/* 100 connections at once with a limit of 64: 64 are served, 36 closed at
 * once, and the server is fine afterwards. */
static void test_many_connections(void) {
  start_server(NULL);
  wf_http_client_t *c = make_client();
  enum { N = 100 };
  static creq_t r[N];
  creqs_done = 0;
  for (int i = 0; i < N; i++) client_request(c, "GET", "/hello", NULL, 0, &r[i]);
  run_until(&creqs_done, N);
  int ok = 0, failed = 0;
  for (int i = 0; i < N; i++) {
    ASSERT_EQ(r[i].done, 1);
    if (r[i].err == 0 && r[i].status == 200) ok++;
    else if (r[i].err != 0) failed++;
  }
  ASSERT_EQ(ok + failed, N);
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.accepted + st.rejected, N);
  ASSERT(st.accepted >= 64);
  ASSERT_EQ((uint64_t)ok, st.accepted);
  fprintf(stderr, "  %d served, %d rejected\n", ok, failed);
  /* Still serving. */
  creq_t after;
  creqs_done = 0;
  client_request(c, "GET", "/hello", NULL, 0, &after);
  run_until(&creqs_done, 1);
  ASSERT_EQ(after.status, 200);
  wf_http_client_close(c, NULL, NULL);
  close_server();
}

/* Closing with connections in every state: reading a head, writing to a
 * client that does not read, idle after connect. */
static void test_close_with_open_connections(void) {
  start_server(NULL);
  big_len = 8u << 20;
  static const char part[] = "GET /hello HTTP/1.1\r\n";
  static const char bigreq[] = "GET /big HTTP/1.1\r\n\r\n";
  raw_t a, b, c;
  raws_eof = raws_closed = 0;
  raw_start(&a, part, sizeof part - 1);
  raw_start(&b, bigreq, sizeof bigreq - 1);
  b.no_read = 1;
  raw_start(&c, NULL, 0);
  wf_httpd_stats_t st;
  uint64_t deadline = uv_hrtime() + 5ull * 1000 * 1000 * 1000;
  do {
    uv_run(&loop, UV_RUN_ONCE);
    wf_httpd_stats(srv, &st);
    if (uv_hrtime() > deadline) WF_FAIL("connections not up");
  } while (st.accepted < 3 || handler_calls < 1);
  ASSERT_EQ(st.open, 3);
  wf_httpd_close(srv, on_server_closed, NULL);
  uv_read_start((uv_stream_t *)&b.tcp, on_raw_alloc, on_raw_read);
  run_until(&raws_closed, 3);
  ASSERT(a.eof && b.eof && c.eof);
  ASSERT_EQ(a.inlen, 0);
  wf_test_close_loop(&loop);
  ASSERT_EQ(server_closed, 1);
}

static void test_addresses(void) {
  struct sockaddr_storage ss;
  ASSERT_OK(wf_httpd_parse_addr("127.0.0.1:9464", 0, &ss));
  ASSERT_EQ(ss.ss_family, AF_INET);
  ASSERT_EQ(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9464);
  ASSERT_OK(wf_httpd_parse_addr("0.0.0.0:1", 0, &ss));
  ASSERT_OK(wf_httpd_parse_addr("localhost:65535", 0, &ss));
  ASSERT_EQ(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
  ASSERT_OK(wf_httpd_parse_addr("[::1]:9464", 0, &ss));
  ASSERT_EQ(ss.ss_family, AF_INET6);
  ASSERT_OK(wf_httpd_parse_addr("[::]:80", 0, &ss));
  ASSERT_OK(wf_httpd_parse_addr("127.0.0.1:0", 1, &ss));
  static const char *const bad[] = {
      "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1", ":9464", "127.0.0.1:", "127.0.0.1:+1",
      "127.0.0.1:99999999", "1.2.3:80", "example.com:80", "::1:9464", "[::1]9464",
      "[::1:9464", "[nothost]:80", "127.0.0.1:80x", "127.0.0.1 :80", "", "256.0.0.1:80",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (wf_httpd_parse_addr(bad[i], 0, &ss) == 0) WF_FAIL("accepted \"%s\"", bad[i]);
  ASSERT_EQ(wf_httpd_parse_addr(NULL, 0, &ss), UV_EINVAL);
}

/* A port in use is reported by start, and nothing stays open. */
static void test_port_in_use(void) {
  start_server(NULL);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", wf_httpd_port(srv));
  wf_httpd_t *second = NULL;
  ASSERT_EQ(wf_httpd_start(&loop, addr, NULL, handler, NULL, &second, NULL, 0), UV_EADDRINUSE);
  ASSERT_NULL(second);
  ASSERT_EQ(wf_httpd_start(&loop, "nonsense", NULL, handler, NULL, &second, NULL, 0), UV_EINVAL);
  close_server();
}

static const wf_test_t tests[] = {
    WF_TEST(status_codes), WF_TEST(oversized_head_client), WF_TEST(head_bound_exact),
    WF_TEST(oversized_head_raw), WF_TEST(garbage), WF_TEST(slow_client), WF_TEST(never_reads),
    WF_TEST(many_connections), WF_TEST(close_with_open_connections), WF_TEST(addresses),
    WF_TEST(port_in_use),
};

int main(int argc, char **argv) {
  if (getenv("WF_TEST_DEBUG")) wf_log_setup(WF_LOG_DEBUG, 0);
  return WF_TEST_MAIN(argc, argv, tests);
}
