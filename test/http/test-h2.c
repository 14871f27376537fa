/*
 * test-h2.c: the HTTP/2 client (src/http/client-h2.c) against a real etcd
 * 3.4 serving its JSON gateway over TLS with client certificates
 * (test/http/with_tls_etcd.py starts it).  Each case is its own process and
 * its own etcd.
 *
 * What is checked: ALPN picks h2 (and WF_HTTP2_OFF keeps HTTP/1.1); 200
 * concurrent calls and two watch streams share one TCP connection; a paused
 * watch holds at most its window while another watch keeps flowing, and
 * gets every byte after the resume; PING answered, and PING unanswered on
 * a frozen etcd (SIGSTOP) fails the ping first and then every stream with
 * UV_ETIMEDOUT; a stream's response timeout resets that stream only;
 * cancelling streams and closing the client with streams open leaves no
 * handle; a dead connection (etcd killed and restarted on the same port)
 * fails its streams and the next request opens a new session.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "wf-test.h"
#include "wf/http.h"
#include "wf/util.h"

static uv_loop_t loop;

typedef struct res_s {
  int done, err, status;
  char *body;
  size_t len;
  size_t streamed;
  int events; /* stream mode: "\"events\"" seen in pieces */
  int pause_first;
  wf_http_req_t *req;
} res_t;

static void on_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                    void *data) {
  res_t *r = data;
  (void)req;
  r->done = 1;
  r->err = err;
  r->status = status;
  if (body) {
    r->body = wf_malloc(len + 1);
    memcpy(r->body, body, len);
    r->body[len] = '\0';
    r->len = len;
  }
}

static void on_data(wf_http_req_t *req, const char *p, size_t n, void *data) {
  res_t *r = data;
  r->streamed += n;
  for (const char *q = p; (q = memmem(q, (size_t)(p + n - q), "\"kv\"", 4)) != NULL; q += 4)
    r->events++;
  if (r->pause_first) {
    r->pause_first = 0;
    wf_http_req_pause(req);
  }
}

static wf_http_client_t *client_idle(int http2, uint64_t idle_close_ms) {
  wf_http_tls_opts_t tls = {getenv("WF_TEST_ETCD_CA"), getenv("WF_TEST_ETCD_CERT"),
                            getenv("WF_TEST_ETCD_KEY")};
  wf_http_client_opts_t o = {.tls = &tls, .http2 = http2, .idle_close_ms = idle_close_ms};
  char err[256];
  const char *url = getenv("WF_TEST_ETCD_TLS");
  wf_http_client_t *c;
  if (!url) WF_FAIL("WF_TEST_ETCD_TLS not set: run under test/http/with_tls_etcd.py");
  c = wf_http_client_create_ex(&loop, url, &o, err, sizeof err);
  if (!c) WF_FAIL("client: %s", err);
  return c;
}

static wf_http_client_t *client(int http2) { return client_idle(http2, 60000); }

static void b64(const char *s, char *out) { wf_b64_encode(s, strlen(s), out); }

static wf_http_req_t *post(wf_http_client_t *c, const char *path, const char *body, res_t *r,
                           int stream, uint64_t timeout_ms) {
  wf_http_req_opts_t o = {.method = "POST", .path = path, .body = body,
                          .body_len = strlen(body), .stream = stream, .timeout_ms = timeout_ms};
  wf_http_cbs_t cbs = {.on_data = stream ? on_data : NULL, .on_done = on_done};
  memset(r, 0, sizeof(*r) - sizeof(r->req) - sizeof(r->pause_first) - sizeof(r->events));
  r->req = wf_http_request(c, &o, &cbs, r);
  ASSERT_NOT_NULL(r->req);
  return r->req;
}

static void put(wf_http_client_t *c, const char *key, const char *value) {
  char k[256], v[512 * 1024], body[700 * 1024];
  res_t r = {0};
  b64(key, k);
  b64(value, v);
  snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
  post(c, "/v3/kv/put", body, &r, 0, 5000);
  while (!r.done) uv_run(&loop, UV_RUN_ONCE);
  if (r.err || r.status != 200) WF_FAIL("put %s: err %d status %d", key, r.err, r.status);
  free(r.body);
}

/* From revision 1: a watch created after puts that raced it still sees
 * them. */
static wf_http_req_t *watch(wf_http_client_t *c, const char *key, res_t *r) {
  char k[256], body[512];
  b64(key, k);
  snprintf(body, sizeof body, "{\"create_request\":{\"key\":\"%s\",\"start_revision\":1}}",
           k);
  return post(c, "/v3/watch", body, r, 1, 0);
}

/* Runs the loop until cond or ms passed. */
#define RUN_UNTIL(cond, ms)                                                  \
  do {                                                                       \
    uint64_t t0_ = uv_hrtime();                                              \
    while (!(cond) && uv_hrtime() - t0_ < (uint64_t)(ms)*1000000ull)         \
      uv_run(&loop, UV_RUN_NOWAIT), usleep(1000);                            \
    if (!(cond)) WF_FAIL("timed out after %d ms waiting for %s", (int)(ms), #cond); \
  } while (0)

/* A range that must succeed (200). */
static void range_ok(wf_http_client_t *c) {
  res_t r;
  post(c, "/v3/kv/range", "{\"key\":\"eA==\"}", &r, 0, 5000);
  RUN_UNTIL(r.done, 5000);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.status, 200);
  free(r.body);
}

/* Established TCP connections of this process to port (via /proc). */
static int connections_to(int port) {
  char inodes[256][32];
  int ninodes = 0, n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *de;
  const char *files[] = {"/proc/self/net/tcp", "/proc/self/net/tcp6"};
  ASSERT_NOT_NULL(d);
  while ((de = readdir(d)) && ninodes < 256) {
    char p[300], t[64];
    ssize_t l;
    snprintf(p, sizeof p, "/proc/self/fd/%s", de->d_name);
    l = readlink(p, t, sizeof t - 1);
    if (l <= 0) continue;
    t[l] = '\0';
    if (sscanf(t, "socket:[%31[0-9]]", inodes[ninodes]) == 1) ninodes++;
  }
  closedir(d);
  for (int f = 0; f < 2; f++) {
    FILE *fp = fopen(files[f], "r");
    char line[512];
    if (!fp) continue;
    while (fgets(line, sizeof line, fp)) {
      char rem[64], st[8], inode[32];
      unsigned rport;
      if (sscanf(line, " %*s %*[^:]:%*x %63[^:]:%x %7s %*s %*s %*s %*s %*s %31s", rem, &rport, st,
                 inode) != 4)
        continue;
      if ((int)rport != port || strcmp(st, "01") != 0) continue;
      for (int i = 0; i < ninodes; i++)
        if (strcmp(inodes[i], inode) == 0) n++;
    }
    fclose(fp);
  }
  return n;
}

static int tls_port(void) {
  const char *u = getenv("WF_TEST_ETCD_TLS");
  const char *colon = strrchr(u, ':');
  return atoi(colon + 1);
}

static void closed_cb(void *data) { *(int *)data = 1; }

static void close_client(wf_http_client_t *c) {
  int closed = 0;
  wf_http_client_close(c, closed_cb, &closed);
  RUN_UNTIL(closed, 5000);
}

/* ---- cases ---------------------------------------------------------------------------- */
static void test_alpn(void) {
  wf_http_client_t *c = client(WF_HTTP2_AUTO), *o = client(WF_HTTP2_OFF);
  res_t r;
  ASSERT_STR_EQ(wf_http_client_protocol(c), "http/1.1"); /* nothing known yet */
  post(c, "/v3/kv/range", "{\"key\":\"eA==\"}", &r, 0, 5000);
  RUN_UNTIL(r.done, 5000);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.status, 200);
  ASSERT(strstr(r.body, "\"header\"") != NULL);
  free(r.body);
  ASSERT_STR_EQ(wf_http_client_protocol(c), "h2");
  range_ok(o);
  ASSERT_STR_EQ(wf_http_client_protocol(o), "http/1.1");
  /* A GET without a body (etcd's /health) ends with its HEADERS frame. */
  {
    wf_http_req_opts_t g = {.method = "GET", .path = "/health", .timeout_ms = 5000};
    wf_http_cbs_t cbs = {.on_done = on_done};
    memset(&r, 0, sizeof r);
    ASSERT_NOT_NULL(wf_http_request(c, &g, &cbs, &r));
    RUN_UNTIL(r.done, 5000);
    ASSERT_OK(r.err);
    ASSERT_EQ(r.status, 200);
    ASSERT(strstr(r.body, "true") != NULL);
    free(r.body);
  }
  close_client(c);
  close_client(o);
  wf_test_close_loop(&loop);
}

/* 200 puts issued at once, before the first handshake completed, and two
 * watches: one connection carries all of them. */
static void test_one_connection(void) {
  enum { N = 200 };
  wf_http_client_t *c = client(WF_HTTP2_AUTO);
  static res_t r[N];
  res_t w1, w2;
  char body[256], k[64], v[64];
  int max_conns = 0, ok = 0;

  watch(c, "one/a", &w1);
  watch(c, "one/b", &w2);
  for (int i = 0; i < N; i++) {
    char key[32];
    snprintf(key, sizeof key, "one/%c", i % 2 ? 'a' : 'b');
    b64(key, k);
    b64("v", v);
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
    post(c, "/v3/kv/put", body, &r[i], 0, 10000);
  }
  for (;;) {
    int done = 0, cn;
    uv_run(&loop, UV_RUN_NOWAIT);
    cn = connections_to(tls_port());
    if (cn > max_conns) max_conns = cn;
    for (int i = 0; i < N; i++) done += r[i].done;
    if (done == N) break;
    usleep(1000);
  }
  for (int i = 0; i < N; i++) {
    ok += r[i].err == 0 && r[i].status == 200;
    free(r[i].body);
  }
  ASSERT_EQ(ok, N);
  RUN_UNTIL(w1.events >= N / 2 && w2.events >= N / 2, 10000);
  ASSERT_EQ(max_conns, 1);
  ASSERT_EQ(connections_to(tls_port()), 1);
  ASSERT_STR_EQ(wf_http_client_protocol(c), "h2");
  fprintf(stderr, "%d puts and 2 watches (%d + %d events) over %d connection\n", N, w1.events,
          w2.events, max_conns);
  close_client(c);
  ASSERT(w1.done && w1.err == UV_ECANCELED);
  ASSERT(w2.done && w2.err == UV_ECANCELED);
  wf_test_close_loop(&loop);
}

/* A paused watch: the values put on its key (4 MiB) stop at its window,
 * while another watch on the same connection gets its events; after the
 * resume every byte arrives. */
static void test_flow_control(void) {
  wf_http_client_t *c = client(WF_HTTP2_AUTO), *plain;
  res_t slow, fast;
  static char big[100 * 1024];
  size_t held_at_pause;

  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  /* The puts go over a client of their own, so that the watches' session is
   * what flow control acts on. */
  plain = client(WF_HTTP2_AUTO);
  slow.pause_first = 1;
  slow.events = 0;
  watch(c, "fc/slow", &slow);
  fast.pause_first = 0;
  fast.events = 0;
  watch(c, "fc/fast", &fast);
  RUN_UNTIL(slow.streamed > 0 && fast.streamed > 0, 5000); /* "created" on both */
  ASSERT_EQ(slow.events, 0);
  for (int i = 0; i < 40; i++) put(plain, "fc/slow", big);
  put(plain, "fc/fast", "ping");
  RUN_UNTIL(fast.events == 1, 5000);
  held_at_pause = slow.streamed;
  /* Paused since its first piece: nothing more was delivered. */
  ASSERT_EQ(slow.events, 0);
  fprintf(stderr, "while paused: fast watch got its event; slow delivered %zu bytes\n",
          held_at_pause);
  wf_http_req_resume(slow.req);
  /* 40 values of 100 KiB, 136,532 bytes each in base64: over 5 MiB pass a
   * 256 KiB window (an event is counted at its start, so wait for the
   * bytes too). */
  RUN_UNTIL(slow.events == 40 && slow.streamed >= 40 * 136532, 20000);
  fprintf(stderr, "slow streamed %zu bytes in all\n", slow.streamed);
  put(plain, "fc/fast", "pong");
  RUN_UNTIL(fast.events == 2, 5000);
  close_client(c);
  close_client(plain);
  wf_test_close_loop(&loop);
}

/* SIGSTOP is delivered asynchronously: until every thread of etcd is
 * stopped it may still answer. */
static void wait_stopped(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  for (int i = 0; i < 2000; i++) {
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    char *rp;
    if (f) fclose(f);
    buf[n] = '\0';
    rp = strrchr(buf, ')');
    if (rp && rp[1] == ' ' && rp[2] == 'T') {
      usleep(50 * 1000); /* and a little more for the other threads */
      return;
    }
    usleep(1000);
  }
  WF_FAIL("etcd (pid %d) did not stop", (int)pid);
}

static int ping_err = 1, pings_done = 0;
static void on_ping(int err, void *data) {
  res_t *w = data;
  ping_err = err;
  pings_done++;
  /* The ping's answer comes before the connection's streams fail. */
  if (w) ASSERT(!w->done);
}

static void test_ping(void) {
  wf_http_client_t *c = client(WF_HTTP2_AUTO), *o = client(WF_HTTP2_OFF);
  res_t w, r;
  pid_t pid = (pid_t)atoi(getenv("WF_TEST_ETCD_PID"));
  uint64_t t0;

  /* No session yet, and never one on an HTTP/1.1 client. */
  ASSERT_EQ(wf_http_client_ping(c, 1000, on_ping, NULL), UV_ENOTSUP);
  post(o, "/v3/kv/range", "{\"key\":\"eA==\"}", &r, 0, 5000);
  RUN_UNTIL(r.done, 5000);
  free(r.body);
  ASSERT_EQ(wf_http_client_ping(o, 1000, on_ping, NULL), UV_ENOTSUP);

  watch(c, "ping/k", &w);
  RUN_UNTIL(w.streamed > 0, 5000);
  ASSERT_OK(wf_http_client_ping(c, 2000, on_ping, NULL));
  RUN_UNTIL(pings_done == 1, 3000);
  ASSERT_OK(ping_err);

  /* A frozen etcd answers nothing: the ping fails, then the watch. */
  ASSERT_OK(kill(pid, SIGSTOP));
  wait_stopped(pid);
  uv_update_time(&loop); /* the deadline counts from the loop's time */
  t0 = uv_hrtime();
  ASSERT_OK(wf_http_client_ping(c, 500, on_ping, &w));
  RUN_UNTIL(pings_done == 2, 3000);
  ASSERT_EQ(ping_err, UV_ETIMEDOUT);
  ASSERT(uv_hrtime() - t0 >= 450 * 1000000ull);
  RUN_UNTIL(w.done, 1000);
  ASSERT_EQ(w.err, UV_ETIMEDOUT);
  ASSERT_OK(kill(pid, SIGCONT));
  /* The next request opens a new session. */
  range_ok(c);
  ASSERT_STR_EQ(wf_http_client_protocol(c), "h2");
  close_client(c);
  close_client(o);
  wf_test_close_loop(&loop);
}

/* A watch with a response timeout and no event times out alone; the
 * connection and a stream beside it live on. */
static void test_stream_timeout(void) {
  wf_http_client_t *c = client(WF_HTTP2_AUTO);
  res_t quiet, other, r;
  char k[64], body[256];

  watch(c, "to/other", &other);
  b64("to/quiet", k);
  snprintf(body, sizeof body, "{\"create_request\":{\"key\":\"%s\"}}", k);
  post(c, "/v3/watch", body, &quiet, 1, 0);
  RUN_UNTIL(quiet.streamed > 0, 5000);
  wf_http_req_cancel(quiet.req);
  RUN_UNTIL(quiet.done, 1000);
  ASSERT_EQ(quiet.err, UV_ECANCELED);
  /* Now one that waits 300 ms for a byte after "created" never comes: a
   * fresh watch gets "created" at once, so time out a range on a frozen
   * path instead: a watch with timeout whose key sees no event. */
  post(c, "/v3/watch", body, &quiet, 1, 300);
  RUN_UNTIL(quiet.done, 3000);
  ASSERT_EQ(quiet.err, UV_ETIMEDOUT);
  put(c, "to/other", "v");
  RUN_UNTIL(other.events == 1, 5000);
  ASSERT(!other.done);
  post(c, "/v3/kv/range", "{\"key\":\"eA==\"}", &r, 0, 5000);
  RUN_UNTIL(r.done, 5000);
  ASSERT_OK(r.err);
  free(r.body);
  ASSERT_EQ(connections_to(tls_port()), 1);
  close_client(c);
  wf_test_close_loop(&loop);
}

/* Requests cancelled while they wait for the first handshake, and streams
 * cancelled mid-flight; then the client closed with streams open. */
static void test_cancel_and_close(void) {
  wf_http_client_t *c = client(WF_HTTP2_AUTO);
  res_t a, b, d, w;

  post(c, "/v3/kv/range", "{\"key\":\"eA==\"}", &a, 0, 5000);
  post(c, "/v3/kv/range", "{\"key\":\"eA==\"}", &b, 0, 5000); /* waits for a's ALPN */
  wf_http_req_cancel(b.req);
  wf_http_req_cancel(a.req); /* the probe: the next one asks again */
  post(c, "/v3/kv/range", "{\"key\":\"eA==\"}", &d, 0, 5000);
  RUN_UNTIL(a.done && b.done && d.done, 5000);
  ASSERT_EQ(a.err, UV_ECANCELED);
  ASSERT_EQ(b.err, UV_ECANCELED);
  ASSERT_OK(d.err);
  ASSERT_EQ(d.status, 200);
  free(d.body);
  watch(c, "cc/k", &w);
  RUN_UNTIL(w.streamed > 0, 5000);
  close_client(c);
  ASSERT(w.done);
  ASSERT_EQ(w.err, UV_ECANCELED);
  wf_test_close_loop(&loop);
}

/* etcd killed under an open watch: the stream fails as a transport error;
 * etcd restarted on the same port: the next request opens a new session. */
static void test_dead_connection(void) {
  wf_http_client_t *c = client(WF_HTTP2_AUTO);
  res_t w, r;
  pid_t pid = (pid_t)atoi(getenv("WF_TEST_ETCD_PID"));

  watch(c, "dead/k", &w);
  RUN_UNTIL(w.streamed > 0, 5000);
  ASSERT_OK(kill(pid, SIGKILL));
  RUN_UNTIL(w.done, 5000);
  ASSERT(w.err == UV_EOF || w.err == UV_ECONNRESET);
  post(c, "/v3/kv/range", "{\"key\":\"eA==\"}", &r, 0, 2000);
  RUN_UNTIL(r.done, 5000);
  ASSERT(r.err == UV_ECONNREFUSED);
  ASSERT_STR_EQ(wf_http_client_protocol(c), "http/1.1");
  close_client(c);
  wf_test_close_loop(&loop);
}

/* A session with no stream closes after idle_close_ms; the client is then
 * back to "no session", and the next request opens a new one (the old one
 * is freed: ASan would see a request put on it). */
static void on_keep(uv_timer_t *t) { (void)t; }

static void test_idle_close(void) {
  wf_http_client_t *c = client_idle(WF_HTTP2_AUTO, 200);
  res_t r;
  uv_timer_t keep;
  /* An idle session does not keep the loop alive (like a pooled
   * connection); something else must for its timer to run. */
  uv_timer_init(&loop, &keep);
  uv_timer_start(&keep, on_keep, 10, 10);
  for (int round = 0; round < 2; round++) {
    post(c, "/v3/kv/range", "{\"key\":\"eA==\"}", &r, 0, 5000);
    RUN_UNTIL(r.done, 5000);
    ASSERT_OK(r.err);
    ASSERT_EQ(r.status, 200);
    free(r.body);
    ASSERT_STR_EQ(wf_http_client_protocol(c), "h2");
    ASSERT_EQ(connections_to(tls_port()), 1);
    RUN_UNTIL(connections_to(tls_port()) == 0, 3000);
    ASSERT_STR_EQ(wf_http_client_protocol(c), "http/1.1");
  }
  uv_close((uv_handle_t *)&keep, NULL);
  close_client(c);
  wf_test_close_loop(&loop);
}

/* A PING in flight when the client closes is answered (UV_ECANCELED, or 0
 * if the ACK won), never lost; so is one whose session closes idle. */
static void test_ping_close(void) {
  wf_http_client_t *c = client_idle(WF_HTTP2_AUTO, 100);
  res_t r;
  int closed = 0;

  post(c, "/v3/kv/range", "{\"key\":\"eA==\"}", &r, 0, 5000);
  RUN_UNTIL(r.done, 5000);
  free(r.body);
  pings_done = 0;
  ping_err = 1;
  ASSERT_OK(wf_http_client_ping(c, 5000, on_ping, NULL));
  ASSERT_EQ(pings_done, 0); /* never inside the call */
  wf_http_client_close(c, closed_cb, &closed);
  ASSERT_EQ(pings_done, 0);
  RUN_UNTIL(closed, 5000);
  ASSERT_EQ(pings_done, 1);
  ASSERT(ping_err == UV_ECANCELED || ping_err == 0);
  /* The session may close idle (100 ms) while a PING waits: it waits for
   * the answer first. */
  c = client_idle(WF_HTTP2_AUTO, 100);
  post(c, "/v3/kv/range", "{\"key\":\"eA==\"}", &r, 0, 5000);
  RUN_UNTIL(r.done, 5000);
  free(r.body);
  ASSERT_OK(wf_http_client_ping(c, 5000, on_ping, NULL));
  RUN_UNTIL(pings_done == 2, 5000);
  ASSERT_OK(ping_err);
  close_client(c);
  wf_test_close_loop(&loop);
}

/* A watch with a response timeout, paused for longer than it: the resume
 * restarts the clock (as over HTTP/1.1), the held bytes come, then the
 * next event. */
static res_t pt;
static void on_pt_resume(uv_timer_t *t) {
  wf_http_req_resume(pt.req);
  uv_close((uv_handle_t *)t, NULL);
}

static void test_pause_past_timeout(void) {
  wf_http_client_t *c = client(WF_HTTP2_AUTO), *p = client(WF_HTTP2_AUTO);
  uv_timer_t t;
  char k[64], body[256];

  b64("ppt/k", k);
  snprintf(body, sizeof body, "{\"create_request\":{\"key\":\"%s\"}}", k);
  pt.pause_first = 1;
  pt.events = 0;
  post(c, "/v3/watch", body, &pt, 1, 400);
  RUN_UNTIL(pt.streamed > 0, 5000); /* "created", then paused */
  put(p, "ppt/k", "held");
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, on_pt_resume, 900, 0);
  RUN_UNTIL(pt.events == 1, 3000); /* delivered after the resume */
  ASSERT(!pt.done);
  /* Within 400 ms of the resume another event keeps it alive... */
  put(p, "ppt/k", "again");
  RUN_UNTIL(pt.events == 2, 3000);
  ASSERT(!pt.done);
  /* ...and 400 ms of silence ends it. */
  RUN_UNTIL(pt.done, 3000);
  ASSERT_EQ(pt.err, UV_ETIMEDOUT);
  close_client(c);
  close_client(p);
  wf_test_close_loop(&loop);
}

/* A consumer that pauses at every piece and resumes on the next loop turn
 * (backpressure as a log writer does it) reads 6 MiB through a 256 KiB
 * window without the held bytes growing past it. */
static res_t pe;
static uv_timer_t pe_timer;
static void on_pe_tick(uv_timer_t *t) {
  (void)t;
  if (pe.req && !pe.done) wf_http_req_resume(pe.req);
}
static void on_pe_data(wf_http_req_t *req, const char *p, size_t n, void *data) {
  on_data(req, p, n, data);
  wf_http_req_pause(req);
}

static void test_pause_every_piece(void) {
  wf_http_client_t *c = client(WF_HTTP2_AUTO), *p = client(WF_HTTP2_AUTO);
  static char big[150 * 1024];
  char k[64], body[256];
  wf_http_req_opts_t o = {.method = "POST", .path = "/v3/watch", .body = body, .stream = 1};
  wf_http_cbs_t cbs = {.on_data = on_pe_data, .on_done = on_done};

  memset(big, 'p', sizeof big - 1);
  b64("pe/k", k);
  snprintf(body, sizeof body, "{\"create_request\":{\"key\":\"%s\"}}", k);
  o.body_len = strlen(body);
  memset(&pe, 0, sizeof pe);
  pe.req = wf_http_request(c, &o, &cbs, &pe);
  uv_timer_init(&loop, &pe_timer);
  uv_timer_start(&pe_timer, on_pe_tick, 1, 1);
  RUN_UNTIL(pe.streamed > 0, 5000);
  for (int i = 0; i < 30; i++) put(p, "pe/k", big);
  RUN_UNTIL(pe.events == 30, 30000);
  ASSERT(!pe.done);
  ASSERT(pe.streamed > 30 * 150 * 1024);
  uv_close((uv_handle_t *)&pe_timer, NULL);
  close_client(c);
  close_client(p);
  wf_test_close_loop(&loop);
}

static const wf_test_t tests[] = {
    WF_TEST(alpn),   WF_TEST(one_connection), WF_TEST(flow_control),       WF_TEST(ping),
    WF_TEST(stream_timeout), WF_TEST(cancel_and_close), WF_TEST(dead_connection),
    WF_TEST(idle_close), WF_TEST(ping_close), WF_TEST(pause_past_timeout),
    WF_TEST(pause_every_piece),
};

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  if (getenv("WF_TEST_DEBUG")) wf_log_setup(WF_LOG_DEBUG, 0);
  return WF_TEST_MAIN(argc, argv, tests);
}
