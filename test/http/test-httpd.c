/*
 * test-httpd: the agent's HTTP server (src/http/server.c) on a real loop,
 * bound to 127.0.0.1:0.  Well-formed requests go through our own HTTP
 * client (include/wf/http.h, https:// included); the bytes a client library
 * will not send (an exact-size head, garbage, a head that never ends, a
 * head dribbled a few bytes at a time, a client that never reads or leaves
 * mid-stream) come from raw uv_tcp clients on the same loop.
 *
 * The cases, in the order of the list at the end:
 *   - synchronous answers: status codes, head and body bounds, garbage,
 *     deadlines, the connection limit, closing with connections open;
 *   - the request as the handler sees it (path, query, the few headers it
 *     keeps) and the extra response header lines;
 *   - streamed responses (wf_httpd_stream): Content-Length and chunked
 *     bodies written piece by piece, replies, HEAD, a client that leaves, a
 *     client that stops reading (the stall deadline), a stream that waits
 *     for its producer (no deadline), wf_httpd_close() and aborts;
 *   - TLS listeners (certificates made by tls-certs.h; those cases skip
 *     themselves, 77, without the openssl CLI).
 * One program because it is one behaviour area, the server on the wire:
 * every case drives the same handler, clients and helpers.
 *
 * Every test counts its callbacks, asserts them, and ends with
 * wf_test_close_loop() (uv_loop_close() == 0).  Usage: test-httpd [name | --list].
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "tls-certs.h"
#include "wf-test.h"
#include "wf/http.h"
#include "wf/httpd.h"
#include "wf/util.h"

static uv_loop_t loop;
static wf_httpd_t *srv;
static int handler_calls;
static int server_closed;

/* What the handler saw of the last request (copies: the request is borrowed). */
typedef struct seen_s {
  char path[512], query[512];
  char auth[2048], range[2048], inm[2048];
  int has_auth, has_range, has_inm;
  int head_only, tls, peer_verified;
} seen_t;
static seen_t seen;

static void keep(char *dst, size_t cap, const char *src, int *present) {
  if (present) *present = src != NULL;
  ASSERT(!src || strlen(src) < cap);
  snprintf(dst, cap, "%s", src ? src : "");
}

/* The stream cases set this: the handler hands them every request for a
 * path starting with /s. */
static void (*stream_req)(wf_httpd_req_t *req);
static int in_handler;

/* /hello answers "hello\n"; /big answers big_len bytes; /hdrs a 401 with
 * extra header lines; /s... goes to stream_req; the rest is 404. */
static size_t big_len;

static void handler(wf_httpd_req_t *req, wf_httpd_resp_t *r, void *data) {
  const char *path = req->path;
  handler_calls++;
  ASSERT_NOT_NULL(req->path);
  ASSERT_NOT_NULL(req->query);
  keep(seen.path, sizeof seen.path, req->path, NULL);
  keep(seen.query, sizeof seen.query, req->query, NULL);
  keep(seen.auth, sizeof seen.auth, req->authorization, &seen.has_auth);
  keep(seen.range, sizeof seen.range, req->range, &seen.has_range);
  keep(seen.inm, sizeof seen.inm, req->if_none_match, &seen.has_inm);
  seen.head_only = req->head_only;
  seen.tls = req->tls;
  seen.peer_verified = req->peer_verified;
  if (strncmp(path, "/s", 2) == 0 && stream_req) {
    in_handler = 1;
    stream_req(req);
    in_handler = 0;
  } else if (strcmp(path, "/hello") == 0) {
    wf_buf_printf(&r->body, "hello\n");
  } else if (strcmp(path, "/big") == 0) {
    char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    for (size_t n = 0; n < big_len; n += sizeof chunk)
      ASSERT_OK(wf_buf_append(&r->body, chunk, big_len - n < sizeof chunk ? big_len - n
                                                                          : sizeof chunk));
  } else if (strcmp(path, "/hdrs") == 0) {
    r->status = 401;
    r->content_type = "application/json";
    r->headers = "WWW-Authenticate: Bearer realm=\"wf\"\r\nX-Extra: two words\r\n";
    wf_buf_printf(&r->body, "{}");
  } else {
    r->status = 404;
    wf_buf_printf(&r->body, "no\n");
  }
}

static void on_server_closed(void *data) { server_closed++; }

static void reset_streams(void);

static void start_server_err(const wf_httpd_opts_t *o, char *err, size_t errlen) {
  ASSERT_OK(uv_loop_init(&loop));
  handler_calls = server_closed = 0;
  memset(&seen, 0, sizeof seen);
  reset_streams();
  int r = wf_httpd_start(&loop, "127.0.0.1:0", o, handler, NULL, &srv, err, errlen);
  if (r != 0) WF_FAIL("wf_httpd_start: %s: %s", wf_strerror(r), err ? err : "");
  ASSERT(wf_httpd_port(srv) > 0);
}

static void start_server(const wf_httpd_opts_t *o) { start_server_err(o, NULL, 0); }

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
  uv_shutdown_t sreq;
  uv_timer_t drip;   /* piece > 0: writes piece bytes every 2 ms */
  int handles;       /* tcp and drip, not yet closed */
  const char *send;
  size_t send_len;
  size_t piece;      /* 0: everything at once */
  size_t sent;
  int half_close;    /* shut down for writing after the request */
  int no_read;       /* never read: the server's write blocks */
  int connected;     /* 1 ok, < 0 error */
  int eof;           /* 1 after EOF or a read error */
  int left;          /* raw_close() called: the client went away */
  int read_err;
  char in[4096];
  size_t inlen;
  size_t total_in;
  uint64_t eof_at;   /* uv_hrtime() */
  int closed;
  void (*on_in)(struct raw_s *r);  /* after each read of response bytes */
} raw_t;

static int raws_eof, raws_closed;

static void on_raw_closed(uv_handle_t *h) {
  raw_t *r = h->data;
  if (--r->handles) return;
  r->closed = 1;
  raws_closed++;
}

/* The client goes away (or saw the end): closes what it has open. */
static void raw_close(raw_t *r) {
  if (r->left) return;
  r->left = 1;
  uv_close((uv_handle_t *)&r->tcp, on_raw_closed);
  if (r->piece && !uv_is_closing((uv_handle_t *)&r->drip))
    uv_close((uv_handle_t *)&r->drip, on_raw_closed);
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
    if (r->on_in) r->on_in(r);
    return;
  }
  if (n == 0) return;
  r->eof = 1;
  r->read_err = (int)n;
  r->eof_at = uv_hrtime();
  raws_eof++;
  raw_close(r);
}

static void on_raw_written(uv_write_t *w, int status) {}
static void on_raw_shut(uv_shutdown_t *s, int status) {}

/* One piece of the request per tick, so that the server reads each on its
 * own (loopback hands it over within the tick). */
static void on_raw_drip(uv_timer_t *t) {
  raw_t *r = t->data;
  size_t n = r->send_len - r->sent;
  if (n > r->piece) n = r->piece;
  if (n > 0) {
    uv_buf_t b = uv_buf_init((char *)r->send + r->sent, (unsigned)n);
    int w = uv_try_write((uv_stream_t *)&r->tcp, &b, 1);
    if (w > 0) r->sent += (size_t)w;
  }
  if (r->sent == r->send_len) {
    if (r->half_close) uv_shutdown(&r->sreq, (uv_stream_t *)&r->tcp, on_raw_shut);
    uv_close((uv_handle_t *)&r->drip, on_raw_closed);
  }
}

static void on_raw_connected(uv_connect_t *c, int status) {
  raw_t *r = c->data;
  r->connected = status == 0 ? 1 : status;
  if (status != 0) {
    r->eof = 1;
    r->eof_at = uv_hrtime();
    raws_eof++;
    raw_close(r);
    return;
  }
  if (r->piece) {
    uv_timer_start(&r->drip, on_raw_drip, 0, 2);
  } else {
    if (r->send_len) {
      uv_buf_t b = uv_buf_init((char *)r->send, (unsigned)r->send_len);
      uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, on_raw_written);
    }
    if (r->half_close) uv_shutdown(&r->sreq, (uv_stream_t *)&r->tcp, on_raw_shut);
  }
  if (!r->no_read) uv_read_start((uv_stream_t *)&r->tcp, on_raw_alloc, on_raw_read);
}

/* Connects and sends bytes (in pieces of piece bytes, 2 ms apart, when
 * piece > 0; bytes must outlive the exchange). */
static void raw_start_pieces(raw_t *r, const char *bytes, size_t len, size_t piece) {
  struct sockaddr_in a;
  memset(r, 0, sizeof *r);
  r->send = bytes;
  r->send_len = len;
  r->piece = piece;
  ASSERT_OK(uv_ip4_addr("127.0.0.1", wf_httpd_port(srv), &a));
  uv_tcp_init(&loop, &r->tcp);
  r->tcp.data = r;
  r->conn.data = r;
  r->handles = 1;
  if (piece) {
    uv_timer_init(&loop, &r->drip);
    r->drip.data = r;
    r->handles++;
  }
  ASSERT_OK(uv_tcp_connect(&r->conn, &r->tcp, (const struct sockaddr *)&a, on_raw_connected));
}

static void raw_start(raw_t *r, const char *bytes, size_t len) {
  raw_start_pieces(r, bytes, len, 0);
}

static void raw_req(raw_t *r, const char *req) { raw_start_pieces(r, req, strlen(req), 0); }

/* One request to the end: the server answered and closed, the client closed. */
static void raw_once(raw_t *r, const char *bytes, size_t piece) {
  raws_eof = raws_closed = 0;
  raw_start_pieces(r, bytes, strlen(bytes), piece);
  run_until(&raws_closed, 1);
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

/* ---- the request as the handler sees it ------------------------------------------------ */

static char *repeat(char c, size_t n) {
  char *s = wf_malloc(n + 1);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* Path and query split at '?' and '#', the three headers the server keeps
 * (names in any case, the last of a repeated one), whole or dribbled three
 * bytes at a time so that names and values arrive in pieces. */
static void test_request_fields(void) {
  start_server(NULL);
  raw_t r;
  static const char full[] = "GET /a/b%20c?x=1&y=?2#frag?not HTTP/1.1\r\n"
                             "Host: x\r\n"
                             "AUTHORIZATION: Bearer one\r\n"
                             "rAnGe: bytes=0-1\r\n"
                             "If-None-Match: \"e1\"\r\n"
                             "X-Authorization: no\r\n"
                             "Authorization-X: no\r\n"
                             "Authorization: Bearer two\r\n"
                             "\r\n";
  for (size_t piece = 0; piece <= 3; piece += 3) {
    memset(&seen, 0, sizeof seen);
    raw_once(&r, full, piece);
    ASSERT_EQ(status_of(&r), 404);
    ASSERT_STR_EQ(seen.path, "/a/b%20c");
    ASSERT_STR_EQ(seen.query, "x=1&y=?2");
    ASSERT(seen.has_auth && seen.has_range && seen.has_inm);
    ASSERT_STR_EQ(seen.auth, "Bearer two");
    ASSERT_STR_EQ(seen.range, "bytes=0-1");
    ASSERT_STR_EQ(seen.inm, "\"e1\"");
    ASSERT(!seen.head_only && !seen.tls && !seen.peer_verified);
  }
  /* A fragment ends the path before any '?'; no header: all NULL. */
  memset(&seen, 0, sizeof seen);
  raw_once(&r, "GET /p#f?q HTTP/1.1\r\n\r\n", 0);
  ASSERT_STR_EQ(seen.path, "/p");
  ASSERT_STR_EQ(seen.query, "");
  ASSERT(!seen.has_auth && !seen.has_range && !seen.has_inm);
  /* An empty query; an empty value is present; a repeat that is empty wins. */
  raw_once(&r,
           "HEAD /p? HTTP/1.1\r\nRange:\r\nIf-None-Match: \"x\"\r\nIf-None-Match:\r\n\r\n", 0);
  ASSERT_EQ(status_of(&r), 404);
  ASSERT(strstr(r.in, "\r\n\r\n")[4] == '\0'); /* HEAD: no body */
  ASSERT_STR_EQ(seen.path, "/p");
  ASSERT_STR_EQ(seen.query, "");
  ASSERT(seen.head_only);
  ASSERT(seen.has_range && seen.has_inm && !seen.has_auth);
  ASSERT_STR_EQ(seen.range, "");
  ASSERT_STR_EQ(seen.inm, "");
  ASSERT_EQ(handler_calls, 4);

  /* A value of 1024 bytes is kept whole; 1025 is 431 and never reaches the
   * handler, in one piece or in pieces of 100 bytes. */
  char *v1024 = repeat('v', 1024), *v1025 = repeat('w', 1025);
  char req[4096];
  snprintf(req, sizeof req, "GET /v HTTP/1.1\r\nAuthorization: %s\r\n\r\n", v1024);
  raw_once(&r, req, 0);
  ASSERT_EQ(status_of(&r), 404);
  ASSERT_EQ(strlen(seen.auth), 1024);
  ASSERT_STR_EQ(seen.auth, v1024);
  ASSERT_EQ(handler_calls, 5);
  for (size_t piece = 0; piece <= 100; piece += 100) {
    snprintf(req, sizeof req, "GET /v HTTP/1.1\r\nIf-None-Match: %s\r\n\r\n", v1025);
    raw_once(&r, req, piece);
    ASSERT_EQ(status_of(&r), 431);
    ASSERT_EQ(handler_calls, 5);
  }
  /* Header names over 64 bytes are ignored, also when they start or end
   * with a known name, and their values are not bounded by 1024 then; the
   * next header is read again. */
  char *v2000 = repeat('z', 2000), *xs = repeat('x', 52);
  snprintf(req, sizeof req,
           "GET /n HTTP/1.1\r\n"
           "Authorization-%.51s: Bearer long\r\n"
           "%.52sauthorization: %s\r\n"
           "Range: bytes=5-\r\n\r\n",
           xs, xs, v2000);
  ASSERT_EQ(strchr(req, ':') - strstr(req, "Authorization-"), 65);
  ASSERT_EQ(strstr(req, "authorization:") + 13 - (strstr(req, "Bearer long\r\n") + 13), 65);
  for (size_t piece = 0; piece <= 5; piece += 5) {
    memset(&seen, 0, sizeof seen);
    raw_once(&r, req, piece);
    ASSERT_EQ(status_of(&r), 404);
    ASSERT(!seen.has_auth && !seen.has_inm);
    ASSERT_STR_EQ(seen.range, "bytes=5-");
  }
  ASSERT_EQ(handler_calls, 7);
  free(v1024);
  free(v1025);
  free(v2000);
  free(xs);
  close_server();
}

/* resp->headers: the extra lines go out as given, before Connection. */
static void test_resp_headers(void) {
  start_server(NULL);
  raw_t r;
  raw_once(&r, "GET /hdrs HTTP/1.1\r\n\r\n", 0);
  ASSERT_EQ(status_of(&r), 401);
  ASSERT(strstr(r.in, "HTTP/1.1 401 Unauthorized\r\n") == r.in);
  ASSERT(strstr(r.in, "\r\nContent-Type: application/json\r\n") != NULL);
  ASSERT(strstr(r.in, "\r\nWWW-Authenticate: Bearer realm=\"wf\"\r\nX-Extra: two words\r\n"
                      "Connection: close\r\n\r\n{}") != NULL);
  ASSERT(strstr(r.in, "\r\nContent-Length: 2\r\n") != NULL);
  close_server();
}

/* ---- streamed responses ------------------------------------------------------------------ */

/* A producer: the test's side of one stream.  Every call on the stream goes
 * through the s_* wrappers below, which mark it, so that the callbacks can
 * check they never fire inside one (nor inside the handler or
 * wf_httpd_close()). */
typedef struct prod_s prod_t;
struct prod_s {
  wf_httpd_stream_t *st;
  int in_call;
  int takes, drains, closes, completed;
  int bad;                   /* a callback fired where it must not */
  void (*step)(prod_t *p);   /* what the producer does on each drain */
  const char *const *pieces; /* the body, for step_pieces and chunk_next */
  size_t npieces, next;
  char out[4096];            /* every body byte written */
  size_t written;
  int drained;               /* the last write drained, nothing written since */
  int ended;
  size_t client_seen;        /* body bytes the client reported (chunk_next) */
  uint64_t drained_at, closed_at; /* uv_now(): the loop time the deadlines use */
  uv_timer_t timer;
  int timer_open;
  void (*later)(prod_t *p);
};
static prod_t P[4];
static int in_close_call;

static void reset_streams(void) {
  memset(P, 0, sizeof P);
  stream_req = NULL;
  in_close_call = 0;
}

/* /s/<i> is P[i]; anything else P[0]. */
static prod_t *prod_for(const char *path) {
  if (strncmp(path, "/s/", 3) == 0 && path[3] >= '0' && path[3] <= '3') return &P[path[3] - '0'];
  return &P[0];
}

static void prod_on_drain(wf_httpd_stream_t *st, void *data) {
  prod_t *p = data;
  ASSERT(st == p->st);
  if (p->in_call || in_handler || in_close_call || p->closes) p->bad++;
  p->drains++;
  p->drained = 1;
  p->drained_at = uv_now(&loop);
  if (p->step) p->step(p);
}

static void prod_on_close(wf_httpd_stream_t *st, int completed, void *data) {
  prod_t *p = data;
  ASSERT(st == p->st);
  if (p->in_call || in_handler || in_close_call) p->bad++;
  p->closes++;
  p->completed = completed;
  p->closed_at = uv_now(&loop);
  if (p->timer_open) {
    p->timer_open = 0;
    uv_close((uv_handle_t *)&p->timer, NULL);
  }
}

static void prod_take(prod_t *p, wf_httpd_req_t *req) {
  static const wf_httpd_stream_cbs_t cbs = {.on_drain = prod_on_drain, .on_close = prod_on_close};
  p->takes++;
  p->st = wf_httpd_stream(req, &cbs, p);
  ASSERT_NOT_NULL(p->st);
  ASSERT_NULL(wf_httpd_stream(req, &cbs, p)); /* taken once */
}

static int s_head(prod_t *p, int status, int64_t len, const char *hdrs) {
  p->in_call++;
  int r = wf_httpd_stream_head(p->st, status, "text/x-test", len, hdrs);
  p->in_call--;
  if (r == 0) p->drained = 0;
  return r;
}

static int s_write(prod_t *p, const char *b, size_t n) {
  p->in_call++;
  int r = wf_httpd_stream_write(p->st, b, n);
  p->in_call--;
  if (r == 0) {
    if (n <= sizeof p->out && p->written <= sizeof p->out - n) memcpy(p->out + p->written, b, n);
    p->written += n;
    p->drained = 0;
  }
  return r;
}

static int s_reply(prod_t *p, int status, const char *body, const char *hdrs) {
  p->in_call++;
  int r = wf_httpd_stream_reply(p->st, status, body, strlen(body), hdrs);
  p->in_call--;
  return r;
}

static void s_end(prod_t *p) {
  p->ended = 1;
  p->in_call++;
  wf_httpd_stream_end(p->st);
  p->in_call--;
}

static void s_abort(prod_t *p) {
  p->in_call++;
  wf_httpd_stream_abort(p->st);
  p->in_call--;
}

static void on_prod_timer(uv_timer_t *t) {
  prod_t *p = t->data;
  p->later(p);
}

/* fn(p) in ms, from the loop (a producer woken by something else). */
static void prod_after(prod_t *p, uint64_t ms, void (*fn)(prod_t *)) {
  if (!p->timer_open) {
    uv_timer_init(&loop, &p->timer);
    p->timer.data = p;
    p->timer_open = 1;
  }
  p->later = fn;
  uv_timer_start(&p->timer, on_prod_timer, ms, 0);
}

/* On each drain the next piece, then the end; meanwhile every other call
 * is refused: one write in flight. */
static void step_pieces(prod_t *p) {
  if (p->next < p->npieces) {
    const char *s = p->pieces[p->next++];
    ASSERT_OK(s_write(p, s, strlen(s)));
    ASSERT_EQ(s_write(p, "x", 1), UV_EBUSY);
    ASSERT_EQ(s_head(p, 200, -1, NULL), UV_EBUSY);
    ASSERT_EQ(s_reply(p, 200, "x", NULL), UV_EBUSY);
  } else {
    s_end(p);
  }
}

static void step_end(prod_t *p) { s_end(p); }

/* The next piece only once the last one drained and the client has all of
 * it: each piece reaches the client before the next one exists, so the
 * exchange finishes only if the server sends every piece as it comes. */
static void chunk_next(prod_t *p) {
  if (!p->drained || p->ended || p->client_seen != p->written) return;
  if (p->next < p->npieces) {
    const char *s = p->pieces[p->next++];
    ASSERT_OK(s_write(p, s, strlen(s)));
  } else {
    s_end(p);
  }
}

/* ---- our client, capturing a response -------------------------------------------------- */

typedef struct cap_s {
  int done, err, status;
  char hdrs[1024];           /* "\nName: value" per header */
  wf_buf_t body;
  int datas;                 /* on_data calls */
  prod_t *prod;              /* chunk_next: told what arrived */
  int pause_on_head;
  wf_http_req_t *req;
} cap_t;
static int caps_done;

static void cap_on_head(wf_http_req_t *req, int status, const wf_http_header_t *h, size_t n,
                        void *data) {
  cap_t *c = data;
  c->status = status;
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(c->hdrs);
    snprintf(c->hdrs + l, sizeof c->hdrs - l, "\n%s: %s", h[i].name, h[i].value);
  }
  if (c->pause_on_head) wf_http_req_pause(req);
}

static void cap_on_data(wf_http_req_t *req, const char *p, size_t n, void *data) {
  cap_t *c = data;
  c->datas++;
  ASSERT_OK(wf_buf_append(&c->body, p, n));
  if (c->prod) {
    prod_t *pr = c->prod;
    /* Never more than was written, and exactly what was. */
    ASSERT(c->body.len <= pr->written);
    ASSERT(memcmp(c->body.data, pr->out, c->body.len) == 0);
    pr->client_seen = c->body.len;
    chunk_next(pr);
  }
}

static void cap_on_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                        void *data) {
  cap_t *c = data;
  c->done++;
  c->err = err;
  c->status = status;
  if (body) ASSERT_OK(wf_buf_append(&c->body, body, len));
  caps_done++;
}

static void cap_request(wf_http_client_t *cl, const char *method, const char *path, int stream,
                        cap_t *c) {
  wf_http_req_opts_t o;
  memset(&o, 0, sizeof o);
  o.method = method;
  o.path = path;
  o.timeout_ms = 5000;
  o.stream = stream;
  wf_http_cbs_t cbs = {.on_head = cap_on_head, .on_done = cap_on_done};
  if (stream) cbs.on_data = cap_on_data;
  prod_t *prod = c->prod;
  int pause = c->pause_on_head;
  memset(c, 0, sizeof *c);
  c->prod = prod;
  c->pause_on_head = pause;
  wf_buf_init(&c->body, 1 << 20);
  c->req = wf_http_request(cl, &o, &cbs, c);
  ASSERT_NOT_NULL(c->req);
}

static const char *cap_hdr(const cap_t *c, const char *name) {
  char key[64];
  snprintf(key, sizeof key, "\n%s: ", name);
  const char *h = strcasestr(c->hdrs, key);
  return h ? h + strlen(key) : NULL;
}

static int cap_hdr_is(const cap_t *c, const char *name, const char *value) {
  const char *v = cap_hdr(c, name);
  return v && strncmp(v, value, strlen(value)) == 0 && (v[strlen(value)] == '\n' ||
                                                        v[strlen(value)] == '\0');
}

/* ---- the stream cases ------------------------------------------------------------------- */

static const char *const abc[] = {"alpha-", "beta-", "gamma"};
static const char *const three[] = {"one\n", "two two\n", "three three three\n"};

static void take_length(wf_httpd_req_t *req) {
  prod_t *p = &P[0];
  prod_take(p, req);
  ASSERT_EQ(s_write(p, "x", 1), UV_EBUSY); /* no head yet */
  ASSERT_OK(s_head(p, 200, 16, "X-Stream: yes\r\n"));
  ASSERT_EQ(s_head(p, 200, 16, NULL), UV_EBUSY);
  ASSERT_EQ(s_write(p, "x", 1), UV_EBUSY); /* the head is in flight */
  ASSERT_EQ(s_reply(p, 200, "x", NULL), UV_EBUSY);
}

/* Content-Length: the head, three writes each after the drain of the one
 * before, the end; the client gets exactly those bytes. */
static void test_stream_length(void) {
  start_server(NULL);
  P[0].step = step_pieces;
  P[0].pieces = abc;
  P[0].npieces = 3;
  stream_req = take_length;
  wf_http_client_t *c = make_client();
  cap_t r = {0};
  cap_request(c, "GET", "/s", 0, &r);
  run_until(&caps_done, 1);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body.len, 16);
  ASSERT_STR_EQ(r.body.data, "alpha-beta-gamma");
  ASSERT(cap_hdr_is(&r, "Content-Length", "16"));
  ASSERT(cap_hdr_is(&r, "Content-Type", "text/x-test"));
  ASSERT(cap_hdr_is(&r, "X-Stream", "yes"));
  ASSERT(cap_hdr_is(&r, "Connection", "close"));
  ASSERT_NULL(cap_hdr(&r, "Transfer-Encoding"));
  run_until(&P[0].closes, 1);
  ASSERT_EQ(P[0].drains, 4); /* the head and each piece */
  ASSERT_EQ(P[0].completed, 1);
  ASSERT_EQ(P[0].bad, 0);
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.open, 0);
  ASSERT_EQ(st.timeouts, 0);
  wf_buf_finish(&r.body);
  wf_http_client_close(c, NULL, NULL);
  close_server();
  ASSERT_EQ(P[0].closes, 1);
}

static void take_chunked(wf_httpd_req_t *req) {
  prod_t *p = prod_for(req->path);
  prod_take(p, req);
  ASSERT_OK(s_head(p, 200, -1, NULL));
}

/* Run one chunked exchange on client c with P[0] as its producer. */
static void chunked_exchange(wf_http_client_t *c) {
  P[0].step = chunk_next;
  P[0].pieces = three;
  P[0].npieces = 3;
  stream_req = take_chunked;
  cap_t r = {.prod = &P[0]};
  caps_done = 0;
  cap_request(c, "GET", "/s/0", 1, &r);
  run_until(&caps_done, 1);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(r.body.data, "one\ntwo two\nthree three three\n");
  ASSERT(r.datas >= 3);
  ASSERT(cap_hdr_is(&r, "Transfer-Encoding", "chunked"));
  ASSERT_NULL(cap_hdr(&r, "Content-Length"));
  run_until(&P[0].closes, 1);
  ASSERT_EQ(P[0].drains, 4);
  ASSERT_EQ(P[0].completed, 1);
  ASSERT_EQ(P[0].bad, 0);
  wf_buf_finish(&r.body);
}

/* Chunked: each piece reaches the client before the producer writes the
 * next (chunk_next), then the last chunk. */
static void test_stream_chunked(void) {
  start_server(NULL);
  wf_http_client_t *c = make_client();
  chunked_exchange(c);
  /* The same bytes on the wire, raw: chunk framing and the last chunk. */
  memset(P, 0, sizeof P);
  P[0].step = step_pieces;
  P[0].pieces = three;
  P[0].npieces = 3;
  raw_t r;
  raw_once(&r, "GET /s/0 HTTP/1.1\r\n\r\n", 0);
  const char *body = strstr(r.in, "\r\n\r\n");
  ASSERT_NOT_NULL(body);
  ASSERT_STR_EQ(body + 4, "4\r\none\n\r\n8\r\ntwo two\n\r\n12\r\nthree three three\n\r\n0\r\n\r\n");
  run_until(&P[0].closes, 1);
  ASSERT_EQ(P[0].completed, 1);
  wf_http_client_close(c, NULL, NULL);
  close_server();
}

static void later_reply(prod_t *p) {
  ASSERT_OK(s_reply(p, 404, "gone\n", "X-Why: later\r\n"));
  ASSERT_EQ(s_reply(p, 200, "x", NULL), UV_EBUSY);
  ASSERT_EQ(s_write(p, "x", 1), UV_EBUSY);
  ASSERT_EQ(s_head(p, 200, 1, NULL), UV_EBUSY);
}

static void take_reply(wf_httpd_req_t *req) {
  prod_t *p = prod_for(req->path);
  prod_take(p, req);
  if (p == &P[0] || p == &P[3]) {
    prod_after(p, 20, later_reply); /* decided after the handler returned */
  } else if (p == &P[1]) {
    ASSERT_OK(s_reply(p, 503, "now\n", NULL)); /* from the handler */
  } else {
    ASSERT_OK(s_head(p, 200, 0, NULL));
    ASSERT_EQ(s_reply(p, 200, "x", NULL), UV_EBUSY); /* after a head */
    p->step = step_end;
  }
}

/* wf_httpd_stream_reply: status, headers and body, later or at once; not
 * after a head; HEAD gets its head only. */
static void test_stream_reply(void) {
  start_server(NULL);
  stream_req = take_reply;
  wf_http_client_t *c = make_client();
  cap_t r0 = {0}, r1 = {0}, r2 = {0};
  cap_request(c, "GET", "/s/0", 0, &r0);
  cap_request(c, "GET", "/s/1", 0, &r1);
  cap_request(c, "GET", "/s/2", 0, &r2);
  run_until(&caps_done, 3);
  ASSERT_OK(r0.err);
  ASSERT_EQ(r0.status, 404);
  ASSERT_STR_EQ(r0.body.data, "gone\n");
  ASSERT(cap_hdr_is(&r0, "X-Why", "later"));
  ASSERT(cap_hdr_is(&r0, "Content-Length", "5"));
  ASSERT_EQ(r1.status, 503);
  ASSERT_STR_EQ(r1.body.data, "now\n");
  ASSERT_EQ(r2.status, 200);
  ASSERT_EQ(r2.body.len, 0);
  raw_t h;
  raw_once(&h, "HEAD /s/3 HTTP/1.1\r\n\r\n", 0);
  ASSERT_EQ(status_of(&h), 404);
  ASSERT(strstr(h.in, "\r\nContent-Length: 5\r\n") != NULL);
  ASSERT(strstr(h.in, "\r\nX-Why: later\r\n") != NULL);
  ASSERT_EQ(strstr(h.in, "\r\n\r\n") + 4 - h.in, (long)h.inlen); /* no body */
  for (int i = 0; i < 4; i++) {
    run_until(&P[i].closes, 1);
    ASSERT_EQ(P[i].completed, 1);
    ASSERT_EQ(P[i].bad, 0);
    ASSERT_EQ(P[i].drains, i == 2 ? 1 : 0);
  }
  wf_buf_finish(&r0.body);
  wf_buf_finish(&r1.body);
  wf_buf_finish(&r2.body);
  wf_http_client_close(c, NULL, NULL);
  close_server();
}

static void take_head(wf_httpd_req_t *req) {
  prod_t *p = prod_for(req->path);
  prod_take(p, req);
  ASSERT(req->head_only);
  ASSERT_OK(s_head(p, 200, p == &P[0] ? 10 : -1, NULL));
  ASSERT_EQ(s_write(p, "0123456789", 10), UV_EBUSY);
}

/* HEAD on a stream: the head is the whole answer (no last chunk either),
 * and the stream completes without a drain. */
static void test_stream_head_request(void) {
  start_server(NULL);
  stream_req = take_head;
  raw_t r;
  raw_once(&r, "HEAD /s/0 HTTP/1.1\r\n\r\n", 0);
  ASSERT_EQ(status_of(&r), 200);
  ASSERT(strstr(r.in, "\r\nContent-Length: 10\r\n") != NULL);
  ASSERT_EQ(strstr(r.in, "\r\n\r\n") + 4 - r.in, (long)r.inlen);
  raw_once(&r, "HEAD /s/1 HTTP/1.1\r\n\r\n", 0);
  ASSERT_EQ(status_of(&r), 200);
  ASSERT(strstr(r.in, "\r\nTransfer-Encoding: chunked\r\n") != NULL);
  ASSERT_EQ(strstr(r.in, "\r\n\r\n") + 4 - r.in, (long)r.inlen);
  for (int i = 0; i < 2; i++) {
    run_until(&P[i].closes, 1);
    ASSERT_EQ(P[i].completed, 1);
    ASSERT_EQ(P[i].drains, 0);
    ASSERT_EQ(P[i].bad, 0);
  }
  close_server();
}

static void take_gone(wf_httpd_req_t *req) {
  prod_t *p = prod_for(req->path);
  prod_take(p, req);
  ASSERT_OK(s_head(p, 200, -1, NULL));
  /* P[1] sends nothing after its head: its client leaves while it waits
   * (a chunked follow; one without a head outlives a half-close). */
}

static void step_first_only(prod_t *p) {
  if (p->next++ == 0) ASSERT_OK(s_write(p, "first\n", 6));
}

static void leave_after_first(raw_t *r) {
  if (strstr(r->in, "first\n")) raw_close(r);
}

static int ticks;
static void on_tick(uv_timer_t *t) { ticks++; }

/* Lets the loop run for ms. */
static void run_for(uint64_t ms) {
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  ticks = 0;
  uv_timer_start(&t, on_tick, ms, 0);
  run_until(&ticks, 1);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* The client goes away mid-stream (after a piece, or before the head):
 * on_close(completed = 0) once, from the loop; no drain after it. */
static void test_stream_client_gone(void) {
  start_server(NULL);
  stream_req = take_gone;
  P[0].step = step_first_only;
  raw_t a, b;
  raws_closed = 0;
  raw_req(&a, "GET /s/0 HTTP/1.1\r\n\r\n");
  a.on_in = leave_after_first;
  run_until(&P[0].closes, 1);
  ASSERT(a.left);
  ASSERT_EQ(P[0].completed, 0);
  ASSERT_EQ(P[0].drains, 2);
  raw_req(&b, "GET /s/1 HTTP/1.1\r\n\r\n");
  run_until(&P[1].takes, 1);
  raw_close(&b);
  run_until(&P[1].closes, 1);
  ASSERT_EQ(P[1].completed, 0);
  ASSERT(P[1].drains <= 1); /* the head's, if it went out before the EOF came */
  run_for(100);
  for (int i = 0; i < 2; i++) {
    ASSERT_EQ(P[i].closes, 1);
    ASSERT_EQ(P[i].bad, 0);
  }
  ASSERT_EQ(P[0].drains, 2);
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.open, 0);
  close_server();
}

static char bigpiece[1 << 20];
static void step_big(prod_t *p) { ASSERT_OK(s_write(p, bigpiece, sizeof bigpiece)); }

static void take_big(wf_httpd_req_t *req) {
  prod_t *p = prod_for(req->path);
  prod_take(p, req);
  ASSERT_OK(s_head(p, 200, -1, NULL));
  p->step = step_big;
}

/* A client that stops reading: big pieces fill the socket, and stall_ms
 * after the write that does not drain the connection is closed. */
static void test_stream_stall(void) {
  wf_httpd_opts_t o = {.stream_stall_ms = 200};
  start_server(&o);
  stream_req = take_big;
  raw_t r;
  raws_closed = 0;
  raw_req(&r, "GET /s/0 HTTP/1.1\r\n\r\n");
  r.no_read = 1;
  run_until(&P[0].closes, 1);
  ASSERT_EQ(P[0].completed, 0);
  ASSERT_EQ(P[0].bad, 0);
  ASSERT(P[0].drains >= 1);
  uint64_t ms = P[0].closed_at - P[0].drained_at;
  fprintf(stderr, "  %d drains, closed %" PRIu64 " ms after the last\n", P[0].drains, ms);
  ASSERT(ms >= 200 && ms < 3000);
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.timeouts, 1);
  ASSERT_EQ(st.open, 0);
  uv_read_start((uv_stream_t *)&r.tcp, on_raw_alloc, on_raw_read);
  run_until(&raws_closed, 1);
  close_server();
}

static void late_write(prod_t *p) { ASSERT_OK(s_write(p, "late\n", 5)); }
static void late_ok(prod_t *p) { ASSERT_OK(s_reply(p, 200, "late reply\n", NULL)); }

static void step_idle(prod_t *p) {
  if (p->drains == 1) prod_after(p, 400, late_write);
  else s_end(p);
}

static void take_idle(wf_httpd_req_t *req) {
  prod_t *p = prod_for(req->path);
  prod_take(p, req);
  if (p == &P[0]) {
    ASSERT_OK(s_head(p, 200, -1, NULL));
    p->step = step_idle;
  } else {
    prod_after(p, 400, late_ok);
  }
}

/* A stream waiting for its producer has no deadline: neither timeout_ms
 * (100 ms) nor the stall deadline (100 ms) closes it in 400 ms, with its
 * head out or before it. */
static void test_stream_idle(void) {
  wf_httpd_opts_t o = {.timeout_ms = 100, .stream_stall_ms = 100};
  start_server(&o);
  stream_req = take_idle;
  wf_http_client_t *c = make_client();
  cap_t r0 = {0}, r1 = {0};
  uint64_t t0 = uv_hrtime();
  cap_request(c, "GET", "/s/0", 0, &r0);
  cap_request(c, "GET", "/s/1", 0, &r1);
  run_until(&caps_done, 2);
  ASSERT((uv_hrtime() - t0) / 1000000 >= 400);
  ASSERT_OK(r0.err);
  ASSERT_STR_EQ(r0.body.data, "late\n");
  ASSERT_OK(r1.err);
  ASSERT_STR_EQ(r1.body.data, "late reply\n");
  for (int i = 0; i < 2; i++) {
    run_until(&P[i].closes, 1);
    ASSERT_EQ(P[i].completed, 1);
    ASSERT_EQ(P[i].bad, 0);
  }
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.timeouts, 0);
  wf_buf_finish(&r0.body);
  wf_buf_finish(&r1.body);
  wf_http_client_close(c, NULL, NULL);
  close_server();
}

static void take_mixed(wf_httpd_req_t *req) {
  prod_t *p = prod_for(req->path);
  prod_take(p, req);
  if (p == &P[0]) ASSERT_OK(s_head(p, 200, -1, NULL)); /* then waits */
  if (p == &P[2]) {
    ASSERT_OK(s_head(p, 200, -1, NULL));
    p->step = step_big; /* to a client that does not read */
  }
  /* P[1]: no head yet. */
}

/* wf_httpd_close() with streams open (waiting after the head, waiting
 * before it, a write that cannot drain): each on_close fires once, none
 * inside the call, and the loop closes clean. */
static void test_close_with_streams(void) {
  start_server(NULL);
  stream_req = take_mixed;
  raw_t a, b, c;
  raws_closed = 0;
  raw_req(&a, "GET /s/0 HTTP/1.1\r\n\r\n");
  raw_req(&b, "GET /s/1 HTTP/1.1\r\n\r\n");
  raw_req(&c, "GET /s/2 HTTP/1.1\r\n\r\n");
  c.no_read = 1;
  run_until(&P[0].drains, 1);
  run_until(&P[1].takes, 1);
  run_until(&P[2].drains, 1);
  run_for(100); /* P[2] fills the socket */
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.open, 3);
  in_close_call = 1;
  wf_httpd_close(srv, on_server_closed, NULL);
  in_close_call = 0;
  for (int i = 0; i < 3; i++) ASSERT_EQ(P[i].closes, 0);
  ASSERT_EQ(server_closed, 0);
  uv_read_start((uv_stream_t *)&c.tcp, on_raw_alloc, on_raw_read);
  run_until(&raws_closed, 3);
  wf_test_close_loop(&loop);
  ASSERT_EQ(server_closed, 1);
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(P[i].closes, 1);
    ASSERT_EQ(P[i].completed, 0);
    ASSERT_EQ(P[i].bad, 0);
  }
}

static void close_server_in_callback(prod_t *p) {
  in_close_call = 1;
  wf_httpd_close(srv, on_server_closed, NULL);
  in_close_call = 0;
  ASSERT_EQ(server_closed, 0);
}

static void take_close_cb(wf_httpd_req_t *req) {
  prod_t *p = prod_for(req->path);
  prod_take(p, req);
  ASSERT_OK(s_head(p, 200, -1, NULL));
  if (p == &P[0]) p->step = close_server_in_callback; /* from its own on_drain */
}

/* wf_httpd_close() from a stream's own on_drain: the connection whose write
 * just finished and the others close, each on_close once, never inside. */
static void test_close_from_drain(void) {
  start_server(NULL);
  stream_req = take_close_cb;
  raw_t a, b;
  raws_closed = 0;
  raw_req(&b, "GET /s/1 HTTP/1.1\r\n\r\n");
  run_until(&P[1].drains, 1);
  raw_req(&a, "GET /s/0 HTTP/1.1\r\n\r\n");
  run_until(&P[0].drains, 1);
  run_until(&raws_closed, 2);
  wf_test_close_loop(&loop);
  ASSERT_EQ(server_closed, 1);
  for (int i = 0; i < 2; i++) {
    ASSERT_EQ(P[i].closes, 1);
    ASSERT_EQ(P[i].completed, 0);
    ASSERT_EQ(P[i].bad, 0);
    ASSERT_EQ(P[i].drains, 1);
  }
}

static void on_close_closes_server(wf_httpd_stream_t *st, int completed, void *data) {
  prod_on_close(st, completed, data);
  close_server_in_callback(data);
}

static void take_close_on_close(wf_httpd_req_t *req) {
  static const wf_httpd_stream_cbs_t cbs = {.on_drain = prod_on_drain,
                                            .on_close = on_close_closes_server};
  prod_t *p = &P[0];
  p->takes++;
  p->st = wf_httpd_stream(req, &cbs, p);
  ASSERT_NOT_NULL(p->st);
  /* A follow waiting for its producer: its client's EOF ends it (a stream
   * without a head yet, or of known length, outlives a half-close). */
  ASSERT_OK(wf_httpd_stream_head(p->st, 200, NULL, -1, NULL));
}

/* wf_httpd_close() from on_close (the client left a waiting chunked
 * stream), with another connection still reading its head. */
static void test_close_from_on_close(void) {
  start_server(NULL);
  stream_req = take_close_on_close;
  raw_t a, b;
  raws_closed = 0;
  raw_req(&b, "GET /s/1 HTTP/1.1\r\n"); /* a head that does not end */
  raw_req(&a, "GET /s/0 HTTP/1.1\r\n\r\n");
  run_until(&P[0].takes, 1);
  raw_close(&a);
  run_until(&P[0].closes, 1);
  run_until(&raws_closed, 2);
  wf_test_close_loop(&loop);
  ASSERT_EQ(server_closed, 1);
  ASSERT_EQ(P[0].closes, 1);
  ASSERT_EQ(P[0].bad, 0);
  ASSERT(b.eof);
}

static void take_abort_now(wf_httpd_req_t *req) {
  prod_t *p = &P[0];
  prod_take(p, req);
  s_abort(p);
  /* Gone, but on_close comes from the loop; until then every call says so. */
  ASSERT_EQ(p->closes, 0);
  ASSERT_EQ(s_head(p, 200, -1, NULL), WF_ECLOSED);
  ASSERT_EQ(s_write(p, "x", 1), WF_ECLOSED);
  ASSERT_EQ(s_reply(p, 200, "x", NULL), WF_ECLOSED);
  s_end(p);
  s_abort(p);
  ASSERT_EQ(p->closes, 0);
}

/* Abort from inside the handler: no byte goes out, on_close(0) once. */
static void test_abort_in_handler(void) {
  start_server(NULL);
  stream_req = take_abort_now;
  raw_t r;
  raw_once(&r, "GET /s HTTP/1.1\r\n\r\n", 0);
  ASSERT(r.eof);
  ASSERT_EQ(r.inlen, 0);
  run_until(&P[0].closes, 1);
  ASSERT_EQ(P[0].completed, 0);
  ASSERT_EQ(P[0].bad, 0);
  ASSERT_EQ(P[0].drains, 0);
  close_server();
  ASSERT_EQ(P[0].closes, 1);
}

static void abort_now(prod_t *p) { s_abort(p); }

static void step_abort_later(prod_t *p) {
  if (p->drains == 1) ASSERT_OK(s_write(p, "piece\n", 6));
  else prod_after(p, 10, abort_now);
}

static void step_abort_in_flight(prod_t *p) {
  ASSERT_OK(s_write(p, "piece\n", 6));
  s_abort(p); /* the write is still out */
  ASSERT_EQ(s_write(p, "x", 1), WF_ECLOSED);
}

static void take_abort_later(wf_httpd_req_t *req) {
  prod_t *p = prod_for(req->path);
  prod_take(p, req);
  ASSERT_OK(s_head(p, 200, -1, NULL));
  p->step = p == &P[0] ? step_abort_later : step_abort_in_flight;
}

/* Abort from a later callback (a timer after a piece drained; on_drain with
 * a write in flight): the response is cut (no last chunk), on_close(0) once,
 * no drain after the abort. */
static void test_abort_later(void) {
  start_server(NULL);
  stream_req = take_abort_later;
  raw_t r;
  raw_once(&r, "GET /s/0 HTTP/1.1\r\n\r\n", 0);
  ASSERT_EQ(status_of(&r), 200);
  ASSERT(strstr(r.in, "\r\n\r\n6\r\npiece\n\r\n") != NULL);
  ASSERT_NULL(strstr(r.in, "0\r\n\r\n"));
  run_until(&P[0].closes, 1);
  ASSERT_EQ(P[0].completed, 0);
  ASSERT_EQ(P[0].drains, 2);
  raw_once(&r, "GET /s/1 HTTP/1.1\r\n\r\n", 0);
  ASSERT_NULL(strstr(r.in, "0\r\n\r\n"));
  run_until(&P[1].closes, 1);
  ASSERT_EQ(P[1].completed, 0);
  ASSERT_EQ(P[1].drains, 1);
  for (int i = 0; i < 2; i++) ASSERT_EQ(P[i].bad, 0);
  close_server();
}

/* The server's end of its one open connection: the socket of this process
 * whose local port is the server's and that has a peer. */
static int server_conn_fd(void) {
  int port = wf_httpd_port(srv), found = -1;
  for (int fd = 3; fd < 4096; fd++) {
    struct sockaddr_in a, b;
    socklen_t la = sizeof a, lb = sizeof b;
    if (getsockname(fd, (struct sockaddr *)&a, &la) != 0 || a.sin_family != AF_INET) continue;
    if (ntohs(a.sin_port) != port || getpeername(fd, (struct sockaddr *)&b, &lb) != 0) continue;
    ASSERT_EQ(found, -1); /* only one */
    found = fd;
  }
  ASSERT(found >= 0);
  return found;
}

/* Fills the kernel's buffers between the server and a client that does not
 * read, behind the server's back, so that its next write, however small,
 * cannot go out: what a client that stops reading at the wrong moment does,
 * made exact.  The junk lands in a response nobody checks. */
static void fill_server_socket(void) {
  int fd = server_conn_fd();
  static char junk[65536];
  size_t total = 0;
  for (size_t len = sizeof junk; len > 0;) {
    ssize_t n = send(fd, junk, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      total += (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      len /= 2; /* down to single bytes: no room is left at all */
    } else {
      WF_FAIL("send: %s", strerror(errno));
    }
  }
  ASSERT(total > 0);
}

static void step_fill_end(prod_t *p) {
  fill_server_socket();
  s_end(p); /* the last chunk cannot go out */
  if (p == &P[1]) s_abort(p);
}

static void take_fill(wf_httpd_req_t *req) {
  prod_t *p = prod_for(req->path);
  prod_take(p, req);
  ASSERT_OK(s_head(p, 200, -1, NULL));
  p->step = step_fill_end;
}

/* The end that did not go out is not completed: a chunked stream whose last
 * chunk is stuck in a full socket, closed by the stall deadline (P[0]) or
 * aborted (P[1]), reports completed = 0. */
static void test_end_not_out(void) {
  wf_httpd_opts_t o = {.stream_stall_ms = 200};
  start_server(&o);
  stream_req = take_fill;
  for (int i = 0; i < 2; i++) {
    raw_t r;
    char req[64];
    snprintf(req, sizeof req, "GET /s/%d HTTP/1.1\r\n\r\n", i);
    raws_closed = 0;
    raw_start(&r, req, strlen(req));
    r.no_read = 1;
    run_until(&P[i].closes, 1);
    ASSERT_EQ(P[i].drains, 1);
    ASSERT(P[i].ended);
    ASSERT_EQ(P[i].completed, 0);
    ASSERT_EQ(P[i].bad, 0);
    uv_read_start((uv_stream_t *)&r.tcp, on_raw_alloc, on_raw_read);
    run_until(&raws_closed, 1);
  }
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.timeouts, 1);
  close_server();
}

/* ---- TLS listeners ------------------------------------------------------------------------ */

static char tdir[64], t_ca[128], t_srv_crt[128], t_srv_key[128], t_cl_crt[128], t_cl_key[128];

static void tpath(char *out, const char *name) { snprintf(out, 128, "%s/%s", tdir, name); }

/* A CA, a server certificate for 127.0.0.1 and a client certificate from
 * it (tls-certs.h); the case is skipped (77) without the openssl CLI. */
static void tls_certs(void) {
  if (system("openssl version >/dev/null 2>&1") != 0) {
    fprintf(stderr, "the openssl CLI is missing: skipped\n");
    exit(77);
  }
  certs_dir(tdir, sizeof tdir);
  make_ca(tdir, "ca", "wf-test-ca");
  make_leaf(tdir, "ca", "srv", "wf-test-server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n");
  make_leaf(tdir, "ca", "cl", "wf-client", "extendedKeyUsage=clientAuth\\n");
  tpath(t_ca, "ca.crt");
  tpath(t_srv_crt, "srv.crt");
  tpath(t_srv_key, "srv.key");
  tpath(t_cl_crt, "cl.crt");
  tpath(t_cl_key, "cl.key");
}

static void tls_certs_remove(void) {
  if (!getenv("WF_KEEP_TMP")) sh("rm -rf %s", tdir);
}

static void start_tls_server(const char *client_ca, uint64_t stall_ms) {
  wf_httpd_opts_t o = {.cert_file = t_srv_crt, .key_file = t_srv_key,
                       .client_ca_file = client_ca, .stream_stall_ms = stall_ms};
  char err[256];
  start_server_err(&o, err, sizeof err);
}

static wf_http_client_t *make_tls_client(int with_cert) {
  wf_http_tls_opts_t t = {.ca_file = t_ca};
  if (with_cert) {
    t.cert_file = t_cl_crt;
    t.key_file = t_cl_key;
  }
  wf_http_client_opts_t o = {.tls = &t};
  char origin[64], err[256];
  snprintf(origin, sizeof origin, "https://127.0.0.1:%d", wf_httpd_port(srv));
  wf_http_client_t *c = wf_http_client_create_ex(&loop, origin, &o, err, sizeof err);
  if (!c) WF_FAIL("https client: %s", err);
  return c;
}

/* A synchronous answer, then a chunked stream, over TLS. */
static void tls_exchanges(wf_http_client_t *c, int verified) {
  cap_t r = {0};
  caps_done = 0;
  cap_request(c, "GET", "/hello?q", 0, &r);
  run_until(&caps_done, 1);
  if (r.err) WF_FAIL("GET /hello: %s (%s)", wf_strerror(r.err), wf_http_client_last_error(c));
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(r.body.data, "hello\n");
  ASSERT(seen.tls);
  ASSERT_EQ(seen.peer_verified, verified);
  ASSERT_STR_EQ(seen.query, "q");
  wf_buf_finish(&r.body);
  memset(P, 0, sizeof P);
  chunked_exchange(c);
  ASSERT(seen.tls);
  ASSERT_EQ(seen.peer_verified, verified);
}

/* A listener with a certificate and key: our https client gets a
 * synchronous answer and a chunked stream. */
static void test_tls_answers(void) {
  tls_certs();
  start_tls_server(NULL, 0);
  wf_http_client_t *c = make_tls_client(0);
  tls_exchanges(c, 0);
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.tls_failed, 0);
  ASSERT_EQ(st.bad, 0);
  wf_http_client_close(c, NULL, NULL);
  close_server();
  tls_certs_remove();
}

/* With a client CA: a client with a certificate of that CA is served (and
 * peer_verified); one without a certificate fails its request, the handler
 * never runs, and tls_failed counts it. */
static void test_tls_client_ca(void) {
  tls_certs();
  start_tls_server(t_ca, 0);
  wf_http_client_t *c = make_tls_client(1);
  tls_exchanges(c, 1);
  wf_http_client_t *anon = make_tls_client(0);
  int calls = handler_calls;
  cap_t r = {0};
  caps_done = 0;
  cap_request(anon, "GET", "/hello", 0, &r);
  run_until(&caps_done, 1);
  ASSERT(r.err != 0);
  ASSERT_EQ(r.status, 0);
  fprintf(stderr, "  without a certificate: %s: %s\n", wf_strerror(r.err),
          wf_http_client_last_error(anon));
  ASSERT_EQ(handler_calls, calls);
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.tls_failed, 1);
  wf_buf_finish(&r.body);
  wf_http_client_close(c, NULL, NULL);
  wf_http_client_close(anon, NULL, NULL);
  close_server();
  tls_certs_remove();
}

/* TLS files that cannot be used: WF_ETLS, the reason (and the file) in err,
 * nothing left open. */
static void test_tls_bad_files(void) {
  tls_certs();
  ASSERT_OK(uv_loop_init(&loop));
  struct {
    const char *cert, *key, *ca, *want;
  } bad[] = {
      {"/nonexistent/srv.crt", t_srv_key, NULL, "/nonexistent/srv.crt"},
      {t_srv_crt, "/nonexistent/srv.key", NULL, "/nonexistent/srv.key"},
      {t_srv_crt, t_cl_key, NULL, "does not match"},
      {t_srv_crt, NULL, NULL, "key"},
      {NULL, t_srv_key, NULL, "certificate"},
      {NULL, NULL, t_ca, "certificate"},
      {t_srv_crt, t_srv_key, "/nonexistent/ca.crt", "/nonexistent/ca.crt"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    wf_httpd_opts_t o = {.cert_file = bad[i].cert, .key_file = bad[i].key,
                         .client_ca_file = bad[i].ca};
    char err[256] = "unset";
    wf_httpd_t *s = NULL;
    ASSERT_EQ(wf_httpd_start(&loop, "127.0.0.1:0", &o, handler, NULL, &s, err, sizeof err),
              WF_ETLS);
    ASSERT_NULL(s);
    fprintf(stderr, "  %s\n", err);
    if (!strstr(err, bad[i].want)) WF_FAIL("case %zu: \"%s\" does not say \"%s\"", i, err, bad[i].want);
    ASSERT_EQ(wf_httpd_start(&loop, "127.0.0.1:0", &o, handler, NULL, &s, NULL, 0), WF_ETLS);
  }
  wf_test_close_loop(&loop);
  tls_certs_remove();
}

static void step_hello_fill_end(prod_t *p) {
  if (p->drains == 1) {
    ASSERT_OK(s_write(p, "hello", 5));
  } else {
    fill_server_socket();
    s_end(p); /* the body is out: close_notify is what cannot go */
  }
}

static void take_tls_stall(wf_httpd_req_t *req) {
  prod_t *p = &P[0];
  prod_take(p, req);
  ASSERT_OK(s_head(p, 200, 5, NULL));
  p->step = step_hello_fill_end;
}

/* A TLS stream whose client stops reading right after the body: the
 * close_notify that follows the end cannot go out, and the stall deadline
 * still closes the connection (completed: the body went out). */
static void test_tls_stall_after_end(void) {
  tls_certs();
  start_tls_server(NULL, 200);
  stream_req = take_tls_stall;
  wf_http_client_t *c = make_tls_client(0);
  cap_t r = {.pause_on_head = 1};
  cap_request(c, "GET", "/s", 1, &r);
  run_until(&P[0].closes, 1);
  ASSERT_EQ(P[0].drains, 2);
  ASSERT_EQ(P[0].completed, 1);
  ASSERT_EQ(P[0].bad, 0);
  uint64_t ms = P[0].closed_at - P[0].drained_at;
  ASSERT(ms >= 200 && ms < 3000);
  wf_httpd_stats_t st;
  wf_httpd_stats(srv, &st);
  ASSERT_EQ(st.timeouts, 1);
  wf_http_req_cancel(r.req);
  run_until(&caps_done, 1);
  wf_buf_finish(&r.body);
  wf_http_client_close(c, NULL, NULL);
  close_server();
  tls_certs_remove();
}

static const wf_test_t tests[] = {
    WF_TEST(status_codes), WF_TEST(oversized_head_client), WF_TEST(head_bound_exact),
    WF_TEST(oversized_head_raw), WF_TEST(garbage), WF_TEST(slow_client), WF_TEST(never_reads),
    WF_TEST(many_connections), WF_TEST(close_with_open_connections), WF_TEST(addresses),
    WF_TEST(port_in_use), WF_TEST(request_fields), WF_TEST(resp_headers),
    WF_TEST(stream_length), WF_TEST(stream_chunked), WF_TEST(stream_reply),
    WF_TEST(stream_head_request), WF_TEST(stream_client_gone), WF_TEST(stream_stall),
    WF_TEST(stream_idle), WF_TEST(close_with_streams), WF_TEST(close_from_drain),
    WF_TEST(close_from_on_close), WF_TEST(abort_in_handler),
    WF_TEST(abort_later), WF_TEST(end_not_out), WF_TEST(tls_answers), WF_TEST(tls_client_ca),
    WF_TEST(tls_bad_files), WF_TEST(tls_stall_after_end),
};

int main(int argc, char **argv) {
  if (getenv("WF_TEST_DEBUG")) wf_log_setup(WF_LOG_DEBUG, 0);
  /* As the agent does (src/node/node.c): a write to a client that left is
   * an error to handle, not a signal. */
  signal(SIGPIPE, SIG_IGN);
  return WF_TEST_MAIN(argc, argv, tests);
}
