/*
 * test-http: the HTTP/1.1 client (src/http/client.c, client-message.c,
 * origin.c) against a scripted fake server running on the same loop (a
 * uv_tcp server on 127.0.0.1:0 and a uv_pipe server on a temporary unix
 * path).  The server answers each request it parses with canned bytes from
 * a per-test script, optionally one byte per millisecond, optionally closing
 * afterwards, or never answering; that covers bytes a real etcd/dockerd will
 * not send on demand (truncation, garbage, stalls) as well as etcd's exact
 * chunked-with-trailer error reply.
 *
 * Every test counts its callbacks, asserts them, and ends with
 * wf_test_close_loop() (uv_loop_close() == 0).  Usage: test-http [name | --list].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "wf-test.h"
#include "wf/http.h"
#include "wf/util.h"

/* ---- scripted fake server ---------------------------------------------------------- */
/* Scripts list a step's fields up to the last one they use; the rest are 0. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

typedef struct step_s {
  const char *bytes; /* response; NULL = never answer */
  size_t len;        /* 0 = strlen(bytes) */
  int trickle;       /* 1 = one byte per millisecond */
  int close_after;   /* close the connection after the response */
  int close_now;     /* close the connection instead of answering */
  int early;         /* answer once the head is in, then drop the body as it comes */
  int stall;         /* with early: stop reading after the answer */
} step_t;

#define MAX_STEPS 16
#define MAX_SCONNS 64

typedef struct srv_s srv_t;

typedef struct sconn_s {
  srv_t *srv;
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } io;
  uv_timer_t trickle;
  int slot;
  int open;
  int closing;
  int nreq;
  char in[65536];
  size_t inlen;
  const char *out;
  size_t outlen, outpos;
  int close_after;
  size_t skip;       /* body bytes still to drop after an early answer */
} sconn_t;

struct srv_s {
  uv_loop_t *loop;
  int is_pipe;
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } lis;
  int port;
  char path[108];
  int accepted;
  int requests;
  int eofs;          /* connections the client closed */
  char last_req[65536];
  size_t last_req_len;
  step_t steps[MAX_STEPS];
  int nsteps;
  sconn_t *conns[MAX_SCONNS];
};

typedef struct wreq_s {
  uv_write_t w;
  char data[];
} wreq_t;

static void on_swrite(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static void sconn_write(sconn_t *sc, const char *p, size_t n) {
  wreq_t *wr = malloc(sizeof(*wr) + n);
  uv_buf_t b;
  ASSERT_NOT_NULL(wr);
  memcpy(wr->data, p, n);
  b = uv_buf_init(wr->data, (unsigned)n);
  if (uv_write(&wr->w, &sc->io.s, &b, 1, on_swrite) != 0) free(wr);
}

static void on_sconn_closed(uv_handle_t *h) {
  sconn_t *sc = h->data;
  if (--sc->open == 0) {
    sc->srv->conns[sc->slot] = NULL;
    free(sc);
  }
}

static void sconn_close(sconn_t *sc) {
  if (sc->closing) return;
  sc->closing = 1;
  uv_close((uv_handle_t *)&sc->trickle, on_sconn_closed);
  uv_close(&sc->io.h, on_sconn_closed);
}

static void on_trickle(uv_timer_t *t) {
  sconn_t *sc = t->data;
  if (sc->outpos < sc->outlen) {
    sconn_write(sc, sc->out + sc->outpos, 1);
    sc->outpos++;
  }
  if (sc->outpos == sc->outlen) {
    uv_timer_stop(t);
    if (sc->close_after) sconn_close(sc);
  }
}

static void sconn_respond(sconn_t *sc, const step_t *st) {
  size_t len;
  if (st->close_now) {
    sconn_close(sc);
    return;
  }
  if (!st->bytes) return;
  len = st->len ? st->len : strlen(st->bytes);
  if (st->trickle) {
    sc->out = st->bytes;
    sc->outlen = len;
    sc->outpos = 0;
    sc->close_after = st->close_after;
    uv_timer_start(&sc->trickle, on_trickle, 1, 1);
    return;
  }
  sconn_write(sc, st->bytes, len);
  if (st->close_after) sconn_close(sc);
}

/* Finds complete requests (head + Content-Length body) in sc->in. */
static void sconn_parse(sconn_t *sc) {
  srv_t *srv = sc->srv;
  for (;;) {
    char *end, *cl;
    size_t head, body = 0, total;
    const step_t *st;
    if (sc->skip) {
      if (sc->inlen == 0) return;
      size_t k = sc->skip < sc->inlen ? sc->skip : sc->inlen;
      memmove(sc->in, sc->in + k, sc->inlen - k);
      sc->inlen -= k;
      sc->skip -= k;
      continue;
    }
    if (sc->inlen == 0) return;
    sc->in[sc->inlen] = '\0';
    end = strstr(sc->in, "\r\n\r\n");
    if (!end) return;
    head = (size_t)(end - sc->in) + 4;
    cl = strcasestr(sc->in, "\r\nContent-Length:");
    if (cl && cl < end) body = strtoul(cl + 17, NULL, 10);
    total = head + body;
    st = &srv->steps[srv->requests < srv->nsteps ? srv->requests : srv->nsteps - 1];
    if (st->early && sc->inlen < total) {
      memcpy(srv->last_req, sc->in, head);
      srv->last_req[head] = '\0';
      srv->last_req_len = head;
      sc->skip = total - sc->inlen;
      sc->inlen = 0;
      srv->requests++;
      sc->nreq++;
      sconn_respond(sc, st);
      if (sc->closing) return;
      if (st->stall) {
        uv_read_stop(&sc->io.s);
        return;
      }
      continue;
    }
    if (sc->inlen < total) return;
    memcpy(srv->last_req, sc->in, total);
    srv->last_req[total] = '\0';
    srv->last_req_len = total;
    memmove(sc->in, sc->in + total, sc->inlen - total);
    sc->inlen -= total;
    srv->requests++;
    sc->nreq++;
    sconn_respond(sc, st);
    if (sc->closing) return;
  }
}

static void on_salloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  sconn_t *sc = h->data;
  (void)hint;
  *b = uv_buf_init(sc->in + sc->inlen, (unsigned)(sizeof(sc->in) - 1 - sc->inlen));
}

static void on_sread(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  sconn_t *sc = s->data;
  (void)b;
  if (n < 0) {
    sc->srv->eofs++;
    sconn_close(sc);
    return;
  }
  sc->inlen += (size_t)n;
  sconn_parse(sc);
}

static void on_sconnection(uv_stream_t *lis, int status) {
  srv_t *srv = lis->data;
  sconn_t *sc;
  int i;
  ASSERT_OK(status);
  sc = calloc(1, sizeof(*sc));
  ASSERT_NOT_NULL(sc);
  sc->srv = srv;
  for (i = 0; i < MAX_SCONNS && srv->conns[i]; i++) {
  }
  ASSERT(i < MAX_SCONNS);
  srv->conns[i] = sc;
  sc->slot = i;
  if (srv->is_pipe)
    ASSERT_OK(uv_pipe_init(srv->loop, &sc->io.pipe, 0));
  else
    ASSERT_OK(uv_tcp_init(srv->loop, &sc->io.tcp));
  uv_timer_init(srv->loop, &sc->trickle);
  sc->io.h.data = sc;
  sc->trickle.data = sc;
  sc->open = 2;
  ASSERT_OK(uv_accept(lis, &sc->io.s));
  if (!srv->is_pipe) uv_tcp_nodelay(&sc->io.tcp, 1);
  srv->accepted++;
  ASSERT_OK(uv_read_start(&sc->io.s, on_salloc, on_sread));
}

static void srv_start(srv_t *srv, uv_loop_t *loop, int is_pipe) {
  memset(srv, 0, sizeof(*srv));
  srv->loop = loop;
  srv->is_pipe = is_pipe;
  if (is_pipe) {
    snprintf(srv->path, sizeof(srv->path), "/tmp/wf-test-http-%d.sock", (int)getpid());
    unlink(srv->path);
    ASSERT_OK(uv_pipe_init(loop, &srv->lis.pipe, 0));
    ASSERT_OK(uv_pipe_bind(&srv->lis.pipe, srv->path));
  } else {
    struct sockaddr_in sin;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    ASSERT_OK(uv_tcp_init(loop, &srv->lis.tcp));
    ASSERT_OK(uv_ip4_addr("127.0.0.1", 0, &sin));
    ASSERT_OK(uv_tcp_bind(&srv->lis.tcp, (const struct sockaddr *)&sin, 0));
    ASSERT_OK(uv_tcp_getsockname(&srv->lis.tcp, (struct sockaddr *)&ss, &len));
    srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  }
  srv->lis.h.data = srv;
  ASSERT_OK(uv_listen(&srv->lis.s, 16, on_sconnection));
}

static void srv_script(srv_t *srv, const step_t *steps, int n) {
  ASSERT(n > 0 && n <= MAX_STEPS);
  memcpy(srv->steps, steps, (size_t)n * sizeof(*steps));
  srv->nsteps = n;
}

static void srv_stop(srv_t *srv) {
  int i;
  for (i = 0; i < MAX_SCONNS; i++)
    if (srv->conns[i]) sconn_close(srv->conns[i]);
  uv_close(&srv->lis.h, NULL);
  if (srv->is_pipe) unlink(srv->path);
}

static char *origin_of(const srv_t *srv) {
  static char buf[160];
  if (srv->is_pipe)
    snprintf(buf, sizeof(buf), "unix://%s", srv->path);
  else
    snprintf(buf, sizeof(buf), "http://127.0.0.1:%d", srv->port);
  return buf;
}

/* ---- recording callbacks ---------------------------------------------------------- */
typedef struct rec_s {
  int head_called, data_called, done_called;
  int head_status;
  int status, err;
  char body[65536];
  size_t body_len;
  char content_type[128];
  char trailer_hdr[128];
  char empty_hdr[16];
  int nheaders;
  uint64_t done_at;
  /* actions */
  int cancel_in_head, cancel_in_data, close_in_data;
  int pause_in_data;
  int pause_in_head;
  int paused_now;     /* set while the test holds the request paused */
  int data_while_paused;
  wf_http_req_t *req;
  void (*next)(struct rec_s *r); /* called from on_done */
} rec_t;

static uv_loop_t loop;
static wf_http_client_t *client;
static srv_t srv;
static int in_request_call; /* set while inside wf_http_request */
static int close_cb_called;
static int close_cb_after_done_ok;
static int total_done;
static int expected_done_before_close;

static void on_client_closed(void *data) {
  (void)data;
  close_cb_called++;
  close_cb_after_done_ok = total_done >= expected_done_before_close;
}

static void free_handle(uv_handle_t *h) { free(h); }

static void resume_timer_cb(uv_timer_t *t) {
  rec_t *r = t->data;
  r->paused_now = 0;
  wf_http_req_resume(r->req);
  uv_close((uv_handle_t *)t, free_handle);
}

/* Pauses r's request and resumes it ms later from a timer. */
static void pause_for(rec_t *r, uint64_t ms) {
  uv_timer_t *t = malloc(sizeof(*t));
  ASSERT_NOT_NULL(t);
  wf_http_req_pause(r->req);
  wf_http_req_pause(r->req); /* idempotent */
  r->paused_now = 1;
  uv_timer_init(&loop, t);
  t->data = r;
  uv_timer_start(t, resume_timer_cb, ms, 0);
}

static void rec_on_head(wf_http_req_t *req, int status, const wf_http_header_t *h, size_t n,
                        void *data) {
  rec_t *r = data;
  size_t i;
  ASSERT(req == r->req || r->req == NULL);
  ASSERT_EQ(r->done_called, 0);
  r->head_called++;
  r->head_status = status;
  r->nheaders = (int)n;
  for (i = 0; i < n; i++) {
    if (strcasecmp(h[i].name, "Content-Type") == 0)
      snprintf(r->content_type, sizeof(r->content_type), "%s", h[i].value);
    if (strcasecmp(h[i].name, "X-Empty") == 0)
      snprintf(r->empty_hdr, sizeof(r->empty_hdr), "%s", h[i].value);
    if (strcasecmp(h[i].name, "Trailer") == 0)
      snprintf(r->trailer_hdr, sizeof(r->trailer_hdr), "%s", h[i].value);
  }
  if (r->cancel_in_head) wf_http_req_cancel(req);
  if (r->pause_in_head) pause_for(r, 5);
}

static void rec_on_data(wf_http_req_t *req, const char *p, size_t n, void *data) {
  rec_t *r = data;
  ASSERT_EQ(r->done_called, 0);
  ASSERT_EQ(r->head_called, 1);
  if (r->paused_now) r->data_while_paused++;
  r->data_called++;
  ASSERT(r->body_len + n < sizeof(r->body));
  memcpy(r->body + r->body_len, p, n);
  r->body_len += n;
  r->body[r->body_len] = '\0';
  if (r->cancel_in_data) wf_http_req_cancel(req);
  if (r->close_in_data) wf_http_client_close(client, on_client_closed, NULL);
  if (r->pause_in_data) pause_for(r, 5);
}

static void rec_on_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                        void *data) {
  rec_t *r = data;
  ASSERT(!in_request_call);
  ASSERT(req == r->req || r->req == NULL);
  r->done_called++;
  total_done++;
  r->err = err;
  r->status = status;
  r->done_at = uv_now(&loop);
  if (body) {
    ASSERT_EQ(err, 0);
    ASSERT(len < sizeof(r->body));
    ASSERT_EQ(body[len], '\0');
    memcpy(r->body, body, len);
    r->body[len] = '\0';
    r->body_len = len;
  }
  if (r->next) r->next(r);
}

static const wf_http_cbs_t rec_cbs = {rec_on_head, rec_on_data, rec_on_done};

static wf_http_req_t *start(rec_t *r, const wf_http_req_opts_t *o) {
  wf_http_req_t *req;
  in_request_call = 1;
  req = wf_http_request(client, o, &rec_cbs, r);
  in_request_call = 0;
  ASSERT_NOT_NULL(req);
  r->req = req;
  return req;
}

static wf_http_req_t *get(rec_t *r, const char *path) {
  wf_http_req_opts_t o;
  memset(&o, 0, sizeof(o));
  o.method = "GET";
  o.path = path;
  o.timeout_ms = 5000;
  return start(r, &o);
}

static void setup(int is_pipe, const step_t *steps, int nsteps, const wf_http_client_opts_t *co) {
  ASSERT_OK(uv_loop_init(&loop));
  srv_start(&srv, &loop, is_pipe);
  srv_script(&srv, steps, nsteps);
  client = wf_http_client_create(&loop, origin_of(&srv), co);
  ASSERT_NOT_NULL(client);
  close_cb_called = 0;
  total_done = 0;
  expected_done_before_close = 0;
}

/* Closes the client, the server and the loop; n clients were created. */
static void teardown_n(int n) {
  if (client) {
    wf_http_client_close(client, on_client_closed, NULL);
    client = NULL;
  }
  srv_stop(&srv);
  wf_test_close_loop(&loop);
  ASSERT_EQ(close_cb_called, n);
}

static void teardown(void) { teardown_n(1); }

/* Runs the loop until *flag becomes nonzero (pooled connections are unref'd,
 * the fake server is not, so UV_RUN_DEFAULT would never return). */
static void run_until(const int *flag) {
  uint64_t t0 = uv_now(&loop);
  while (!*flag) {
    uv_run(&loop, UV_RUN_ONCE);
    if (uv_now(&loop) - t0 > 10000) WF_FAIL("timed out waiting");
  }
}

static void noop_timer_cb(uv_timer_t *t) { (void)t; }

static void sleep_loop(uint64_t ms) {
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, noop_timer_cb, ms, 0);
  while (uv_is_active((uv_handle_t *)&t)) uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- canned responses -------------------------------------------------------------- */
#define OK_HELLO "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"

static const char etcd_err_body[] =
    "{\"error\":\"etcdserver: key is not provided\",\"message\":\"etcdserver: key is not "
    "provided\",\"code\":3}";
static char etcd_err_reply[2048];

/* Exactly what etcd 3.4's gateway sent for an empty put (docs/peers.md). */
static void make_etcd_err_reply(void) {
  snprintf(etcd_err_reply, sizeof(etcd_err_reply),
           "HTTP/1.1 400 Bad Request\r\n"
           "Access-Control-Allow-Headers: accept, content-type, authorization\r\n"
           "Access-Control-Allow-Methods: POST, GET, OPTIONS, PUT, DELETE\r\n"
           "Access-Control-Allow-Origin: *\r\n"
           "Content-Type: application/json\r\n"
           "Trailer: Grpc-Trailer-Content-Type\r\n"
           "Date: Fri, 27 Nov 2026 10:00:41 GMT\r\n"
           "Transfer-Encoding: chunked\r\n"
           "\r\n"
           "%zx\r\n%s\r\n"
           "0\r\n"
           "Grpc-Trailer-Content-Type: application/grpc\r\n"
           "\r\n",
           strlen(etcd_err_body), etcd_err_body);
}

/* ---- tests -------------------------------------------------------------------------- */
static void test_content_length(void) {
  static const step_t steps[] = {
      {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Empty:\r\nContent-Length: 11\r\n\r\n"
       "{\"ok\":true}",
       0, 0, 0, 0},
  };
  static const char body[] = "{\"key\":\"L25vZGVzL2E=\",\"value\":\"aGVsbG8=\"}";
  wf_http_header_t hdrs[] = {{"Content-Type", "application/json"},
                             {"Content-Length", "999"}};
  wf_http_req_opts_t o;
  rec_t r;
  char want[128];

  memset(&r, 0, sizeof(r));
  strcpy(r.empty_hdr, "unset");
  setup(0, steps, 1, NULL);
  memset(&o, 0, sizeof(o));
  o.method = "POST";
  o.path = "/v3/kv/put";
  o.headers = hdrs;
  o.nheaders = 2;
  o.body = body;
  o.body_len = strlen(body);
  o.timeout_ms = 2000;
  start(&r, &o);
  ASSERT_EQ(r.done_called, 0); /* never synchronous */
  run_until(&r.done_called);
  ASSERT_EQ(r.done_called, 1);
  ASSERT_EQ(r.head_called, 1);
  ASSERT_EQ(r.head_status, 200);
  ASSERT_EQ(r.nheaders, 3);
  ASSERT_STR_EQ(r.empty_hdr, "");
  ASSERT_STR_EQ(r.content_type, "application/json");
  ASSERT_OK(r.err);
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(r.body, "{\"ok\":true}");
  ASSERT_EQ(r.data_called, 0);
  /* What went on the wire. */
  ASSERT(strncmp(srv.last_req, "POST /v3/kv/put HTTP/1.1\r\n", 26) == 0);
  snprintf(want, sizeof(want), "\r\nHost: 127.0.0.1:%d\r\n", srv.port);
  ASSERT_NOT_NULL(strstr(srv.last_req, want));
  ASSERT_NOT_NULL(strstr(srv.last_req, "\r\nConnection: keep-alive\r\n"));
  ASSERT_NOT_NULL(strstr(srv.last_req, "\r\nContent-Type: application/json\r\n"));
  snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n", strlen(body));
  ASSERT_NOT_NULL(strstr(srv.last_req, want));
  ASSERT_NULL(strstr(srv.last_req, "Content-Length: 999"));
  ASSERT(strcmp(srv.last_req + srv.last_req_len - strlen(body), body) == 0);
  expected_done_before_close = 1;
  teardown();
  ASSERT(close_cb_after_done_ok);
}

static const char chunked_resp[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    "8\r\n{\"a\":1}\n\r\n"
    "18\r\n{\"b\":\"two\",\"c\":[1,2,3]}\n\r\n"
    "3;ext=1\r\nxyz\r\n"
    "0\r\n\r\n";
static const char chunked_body[] = "{\"a\":1}\n{\"b\":\"two\",\"c\":[1,2,3]}\nxyz";

static void test_chunked_trickle(void) {
  static const step_t steps[] = {
      {chunked_resp, 0, 1, 0, 0},
      {chunked_resp, 0, 1, 0, 0},
  };
  wf_http_req_opts_t o;
  rec_t r1, r2;

  memset(&r1, 0, sizeof(r1));
  memset(&r2, 0, sizeof(r2));
  setup(0, steps, 2, NULL);
  get(&r1, "/buffered");
  run_until(&r1.done_called);
  ASSERT_OK(r1.err);
  ASSERT_EQ(r1.status, 200);
  ASSERT_STR_EQ(r1.body, chunked_body);
  ASSERT_EQ(r1.head_called, 1);

  memset(&o, 0, sizeof(o));
  o.method = "POST";
  o.path = "/v3/watch";
  o.body = "{}";
  o.body_len = 2;
  o.stream = 1;
  o.timeout_ms = 2000;
  start(&r2, &o);
  run_until(&r2.done_called);
  ASSERT_OK(r2.err);
  ASSERT_EQ(r2.status, 200);
  ASSERT_STR_EQ(r2.body, chunked_body);
  ASSERT(r2.data_called > 3); /* it really arrived in pieces */
  ASSERT_EQ(srv.accepted, 1);
  teardown();
}

static void test_etcd_trailer(void) {
  static step_t steps[] = {
      {etcd_err_reply, 0, 0, 0, 0},
      {etcd_err_reply, 0, 1, 0, 0},
      {OK_HELLO, 0, 0, 0, 0},
  };
  rec_t r[3];
  int i;

  memset(r, 0, sizeof(r));
  setup(0, steps, 3, NULL);
  for (i = 0; i < 3; i++) {
    wf_http_req_opts_t o;
    memset(&o, 0, sizeof(o));
    o.method = "POST";
    o.path = "/v3/kv/put";
    o.body = "{\"value\":\"eA==\"}";
    o.body_len = strlen(o.body);
    o.timeout_ms = 2000;
    start(&r[i], &o);
    run_until(&r[i].done_called);
    ASSERT_EQ(r[i].done_called, 1);
    ASSERT_OK(r[i].err);
  }
  for (i = 0; i < 2; i++) {
    ASSERT_EQ(r[i].status, 400);
    ASSERT_STR_EQ(r[i].body, etcd_err_body);
    ASSERT_STR_EQ(r[i].trailer_hdr, "Grpc-Trailer-Content-Type");
    ASSERT_STR_EQ(r[i].content_type, "application/json");
    ASSERT_EQ(r[i].nheaders, 7);
  }
  ASSERT_EQ(r[2].status, 200);
  ASSERT_STR_EQ(r[2].body, "hello");
  /* The trailer was consumed exactly: the connection served all three. */
  ASSERT_EQ(srv.accepted, 1);
  ASSERT_EQ(srv.requests, 3);
  teardown();
}

static rec_t ka[4];
static void ka_next(rec_t *r) {
  /* Issued from on_done: the connection is already back in the pool. */
  if (r == &ka[0]) {
    ka[1].next = ka_next;
    get(&ka[1], "/two");
  }
}

static void test_keepalive_reuse(void) {
  static const step_t steps[] = {{OK_HELLO, 0, 0, 0, 0}};
  rec_t p1, p2, p3;

  memset(ka, 0, sizeof(ka));
  memset(&p1, 0, sizeof(p1));
  memset(&p2, 0, sizeof(p2));
  memset(&p3, 0, sizeof(p3));
  setup(0, steps, 1, NULL);
  ka[0].next = ka_next;
  get(&ka[0], "/one");
  run_until(&ka[1].done_called);
  ASSERT_OK(ka[0].err);
  ASSERT_OK(ka[1].err);
  ASSERT_STR_EQ(ka[1].body, "hello");
  ASSERT_EQ(srv.accepted, 1);
  ASSERT_EQ(srv.requests, 2);

  /* Two at once need two connections; afterwards both are pooled. */
  get(&p1, "/p1");
  get(&p2, "/p2");
  run_until(&p1.done_called);
  run_until(&p2.done_called);
  ASSERT_OK(p1.err);
  ASSERT_OK(p2.err);
  ASSERT_EQ(srv.accepted, 2);
  get(&p3, "/p3");
  run_until(&p3.done_called);
  ASSERT_OK(p3.err);
  ASSERT_EQ(srv.accepted, 2);
  teardown();
}

/* PUT /upload with an 8 MiB body: more than the socket buffers take, so the
 * write is still in flight when an early answer arrives. */
static void put_big(rec_t *r) {
  static char big[8 << 20];
  wf_http_req_opts_t o;
  memset(big, 'x', sizeof big);
  memset(&o, 0, sizeof(o));
  o.method = "PUT";
  o.path = "/upload";
  o.body = big;
  o.body_len = sizeof big;
  o.timeout_ms = 5000;
  start(r, &o);
}

/* The answer arrives while the request body is still being written (a
 * server may answer early): the connection goes back to the pool once the
 * upload is done, and the next request reuses it. */
static void test_answer_before_upload_done(void) {
  static const step_t steps[] = {{OK_HELLO, 0, 0, 0, 0, 1}, {OK_HELLO, 0, 0, 0, 0, 0}};
  rec_t p1, p2;

  memset(&p1, 0, sizeof(p1));
  memset(&p2, 0, sizeof(p2));
  setup(0, steps, 2, NULL);
  put_big(&p1);
  run_until(&p1.done_called);
  ASSERT_OK(p1.err);
  ASSERT_STR_EQ(p1.body, "hello");
  /* The answer came first; the upload is still going: let it end. */
  sleep_loop(300);
  get(&p2, "/after");
  run_until(&p2.done_called);
  ASSERT_OK(p2.err);
  ASSERT_STR_EQ(p2.body, "hello");
  ASSERT_EQ(srv.accepted, 1);
  ASSERT_EQ(srv.requests, 2);
  teardown();
}

/* The same, but the server stops reading after its early answer: the
 * upload never ends, and the connection is closed at the idle deadline
 * rather than kept (with its 8 MiB buffer) forever. */
static void test_answer_then_stall(void) {
  static const step_t steps[] = {{OK_HELLO, 0, 0, 0, 0, 1, 1}};
  wf_http_client_opts_t co;
  rec_t p1;

  memset(&p1, 0, sizeof(p1));
  memset(&co, 0, sizeof(co));
  co.idle_close_ms = 200;
  setup(0, steps, 1, &co);
  put_big(&p1);
  run_until(&p1.done_called);
  ASSERT_OK(p1.err);
  ASSERT_STR_EQ(p1.body, "hello");
  ASSERT_EQ(srv.eofs, 0);
  sleep_loop(600);
  /* The server reads again: what the client sent before its deadline,
   * then the EOF of its close. */
  ASSERT_NOT_NULL(srv.conns[0]);
  ASSERT_OK(uv_read_start(&srv.conns[0]->io.s, on_salloc, on_sread));
  sleep_loop(100); /* < idle_close_ms: a pooled connection would still be open */
  ASSERT_EQ(srv.eofs, 1);
  teardown();
}

static void test_server_closes_idle(void) {
  /* No "Connection: close": the client pools it, then sees the FIN. */
  static const step_t steps[] = {{OK_HELLO, 0, 0, 1, 0}, {OK_HELLO, 0, 0, 0, 0}};
  rec_t r1, r2;

  memset(&r1, 0, sizeof(r1));
  memset(&r2, 0, sizeof(r2));
  setup(0, steps, 2, NULL);
  get(&r1, "/a");
  run_until(&r1.done_called);
  ASSERT_OK(r1.err);
  sleep_loop(50);
  get(&r2, "/b");
  run_until(&r2.done_called);
  ASSERT_OK(r2.err);
  ASSERT_STR_EQ(r2.body, "hello");
  ASSERT_EQ(srv.accepted, 2);
  ASSERT_EQ(srv.requests, 2);
  teardown();
}

static rec_t rt[2];
static void rt_next(rec_t *r) {
  if (r == &rt[0]) get(&rt[1], "/second");
}

static void test_retry_on_reused(void) {
  /* The second request lands on the pooled connection, which the server
   * closes without answering: the client retries once on a fresh one. */
  static const step_t steps[] = {
      {OK_HELLO, 0, 0, 0, 0},
      {NULL, 0, 0, 0, 1},
      {OK_HELLO, 0, 0, 0, 0},
  };
  memset(rt, 0, sizeof(rt));
  setup(0, steps, 3, NULL);
  rt[0].next = rt_next;
  get(&rt[0], "/first");
  run_until(&rt[1].done_called);
  ASSERT_OK(rt[0].err);
  ASSERT_OK(rt[1].err);
  ASSERT_EQ(rt[1].status, 200);
  ASSERT_STR_EQ(rt[1].body, "hello");
  ASSERT_EQ(srv.accepted, 2);
  ASSERT_EQ(srv.requests, 3);
  teardown();
}

static void test_fresh_conn_closed_no_retry(void) {
  /* A fresh connection closed without an answer is an error, not retried. */
  static const step_t steps[] = {{NULL, 0, 0, 0, 1}};
  rec_t r;
  memset(&r, 0, sizeof(r));
  setup(0, steps, 1, NULL);
  get(&r, "/x");
  run_until(&r.done_called);
  ASSERT(r.err == UV_EOF || r.err == UV_ECONNRESET);
  ASSERT_EQ(r.status, 0);
  ASSERT_EQ(r.head_called, 0);
  ASSERT_EQ(srv.accepted, 1);
  teardown();
}

static void test_refused(void) {
  static const step_t steps[] = {{OK_HELLO, 0, 0, 0, 0}};
  uv_tcp_t t;
  struct sockaddr_in sin;
  struct sockaddr_storage ss;
  int len = sizeof(ss), port;
  char origin[64];
  rec_t r;

  memset(&r, 0, sizeof(r));
  setup(0, steps, 1, NULL);
  /* A port nobody listens on: bind one, note it, close it. */
  ASSERT_OK(uv_tcp_init(&loop, &t));
  ASSERT_OK(uv_ip4_addr("127.0.0.1", 0, &sin));
  ASSERT_OK(uv_tcp_bind(&t, (const struct sockaddr *)&sin, 0));
  ASSERT_OK(uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len));
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  wf_http_client_close(client, on_client_closed, NULL);
  snprintf(origin, sizeof(origin), "http://127.0.0.1:%d", port);
  client = wf_http_client_create(&loop, origin, NULL);
  ASSERT_NOT_NULL(client);
  get(&r, "/");
  run_until(&r.done_called);
  ASSERT_EQ(r.err, UV_ECONNREFUSED);
  ASSERT_EQ(r.status, 0);
  ASSERT_EQ(r.head_called, 0);
  wf_http_client_close(client, on_client_closed, NULL);
  client = NULL;
  srv_stop(&srv);
  wf_test_close_loop(&loop);
  ASSERT_EQ(close_cb_called, 2);
}

static void test_timeout(void) {
  static const step_t steps[] = {{NULL, 0, 0, 0, 0}}; /* accepts, never answers */
  wf_http_req_opts_t o;
  rec_t r;
  uint64_t t0;

  memset(&r, 0, sizeof(r));
  setup(0, steps, 1, NULL);
  memset(&o, 0, sizeof(o));
  o.method = "GET";
  o.path = "/stall";
  o.timeout_ms = 100;
  t0 = uv_now(&loop);
  start(&r, &o);
  run_until(&r.done_called);
  ASSERT_EQ(r.err, UV_ETIMEDOUT);
  ASSERT_EQ(r.status, 0);
  ASSERT(r.done_at - t0 >= 95);
  ASSERT(r.done_at - t0 < 2000);
  ASSERT_EQ(srv.requests, 1);
  teardown();
}

static void test_connect_timeout(void) {
  /* A blackhole: a listener with backlog 0 that never accepts, its queue
   * filled by two raw connects, so our SYN goes unanswered. */
  static const step_t steps[] = {{OK_HELLO, 0, 0, 0, 0}};
  struct sockaddr_in sin;
  socklen_t slen = sizeof(sin);
  int lfd, fill[2], i;
  char origin[64];
  wf_http_client_opts_t co;
  wf_http_req_opts_t o;
  rec_t r;
  uint64_t t0;

  memset(&r, 0, sizeof(r));
  setup(0, steps, 1, NULL);
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT(lfd >= 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)));
  ASSERT_OK(listen(lfd, 0));
  ASSERT_OK(getsockname(lfd, (struct sockaddr *)&sin, &slen));
  for (i = 0; i < 2; i++) {
    fill[i] = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fill[i] >= 0);
    fcntl(fill[i], F_SETFL, O_NONBLOCK);
    connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
  }
  wf_http_client_close(client, on_client_closed, NULL);
  snprintf(origin, sizeof(origin), "http://127.0.0.1:%d", ntohs(sin.sin_port));
  memset(&co, 0, sizeof(co));
  co.connect_timeout_ms = 100;
  client = wf_http_client_create(&loop, origin, &co);
  ASSERT_NOT_NULL(client);
  memset(&o, 0, sizeof(o));
  o.method = "GET";
  o.path = "/";
  o.timeout_ms = 100; /* should the SYN get through after all */
  t0 = uv_now(&loop);
  start(&r, &o);
  run_until(&r.done_called);
  ASSERT_EQ(r.err, UV_ETIMEDOUT);
  ASSERT_EQ(r.status, 0);
  ASSERT(r.done_at - t0 >= 95);
  teardown_n(2);
  close(fill[0]);
  close(fill[1]);
  close(lfd);
}

static void test_timeout_mid_body(void) {
  /* The head arrives, then nothing: the timer re-arms per byte and fires. */
  static const step_t steps[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, 0, 0, 0}};
  wf_http_req_opts_t o;
  rec_t r;

  memset(&r, 0, sizeof(r));
  setup(0, steps, 1, NULL);
  memset(&o, 0, sizeof(o));
  o.method = "GET";
  o.path = "/";
  o.timeout_ms = 80;
  start(&r, &o);
  run_until(&r.done_called);
  ASSERT_EQ(r.err, UV_ETIMEDOUT);
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.head_called, 1);
  teardown();
}

static void test_truncated(void) {
  static const step_t steps[] = {
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 0, 0, 1, 0},
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, 0, 1, 0},
      {"HTTP/1.1 200 OK\r\nContent-Le", 0, 0, 1, 0},
  };
  rec_t r[3];
  int i;

  memset(r, 0, sizeof(r));
  setup(0, steps, 3, NULL);
  for (i = 0; i < 3; i++) {
    get(&r[i], "/");
    run_until(&r[i].done_called);
    ASSERT_EQ(r[i].err, UV_EOF);
    ASSERT_EQ(r[i].done_called, 1);
  }
  ASSERT_EQ(r[0].status, 200);
  ASSERT_EQ(r[1].status, 200);
  ASSERT_EQ(r[2].status, 0);
  ASSERT_EQ(r[2].head_called, 0);
  ASSERT_EQ(srv.accepted, 3);
  teardown();
}

static void test_garbage(void) {
  static const step_t steps[] = {
      {"GARBAGE NOT HTTP\r\n\r\n", 0, 0, 0, 0},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n", 0, 0, 0, 0},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", 0, 0, 0, 0},
      /* bytes after a complete response: answered, but never pooled */
      {OK_HELLO "junk", 0, 0, 0, 0},
      {OK_HELLO, 0, 0, 0, 0},
  };
  rec_t r[5];
  int i;

  memset(r, 0, sizeof(r));
  setup(0, steps, 5, NULL);
  for (i = 0; i < 5; i++) {
    get(&r[i], "/");
    run_until(&r[i].done_called);
  }
  ASSERT_EQ(r[0].err, WF_EPROTO);
  ASSERT_EQ(r[0].status, 0);
  ASSERT_EQ(r[1].err, WF_EPROTO);
  ASSERT_EQ(r[1].status, 200);
  ASSERT_EQ(r[2].err, WF_EPROTO);
  ASSERT_EQ(r[2].head_called, 0);
  ASSERT_OK(r[3].err);
  ASSERT_STR_EQ(r[3].body, "hello");
  ASSERT_OK(r[4].err);
  ASSERT_EQ(srv.accepted, 5);
  teardown();
}

/* Found by fuzz-http-response: llhttp accepts 1- and 2-digit status codes,
 * and "HTTP/1.1 0 OK" completed with err 0 and status 0 ("no head").  A
 * status below 100 is a protocol error; no head is delivered. */
static void test_bad_status(void) {
  static const step_t steps[] = {
      {"HTTP/1.1 0 OK\r\nContent-Length: 0\r\n\r\n", 0, 0, 0, 0},
      {"HTTP/1.1 04 Not Found\r\nContent-Length: 2\r\n\r\nno", 0, 0, 0, 0},
      {"HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n", 0, 0, 0, 0},
      {OK_HELLO, 0, 0, 0, 0},
  };
  rec_t r[4];
  int i;

  memset(r, 0, sizeof(r));
  setup(0, steps, 4, NULL);
  for (i = 0; i < 4; i++) {
    get(&r[i], "/");
    run_until(&r[i].done_called);
  }
  for (i = 0; i < 3; i++) {
    ASSERT_EQ(r[i].err, WF_EPROTO);
    ASSERT_EQ(r[i].status, 0);
    ASSERT_EQ(r[i].head_called, 0);
  }
  ASSERT_OK(r[3].err);
  ASSERT_EQ(r[3].status, 200);
  ASSERT_STR_EQ(r[3].body, "hello");
  teardown();
}

/* Found by fuzz-http-response: llhttp reads a body for a 1xx other than
 * 100-103 when it has framing headers; those bytes reached on_data before
 * any on_head, or the front of the buffered body.  A 1xx has no body: what
 * follows its head is the next response. */
static void test_interim_with_length(void) {
  static const step_t steps[] = {
      {"HTTP/1.1 199 Odd\r\nContent-Length: 5\r\n\r\n"
       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, 0, 0, 0},
      {"HTTP/1.1 150 Odd\r\nTransfer-Encoding: chunked\r\n\r\n"
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0, 0, 0},
      {"HTTP/1.1 104 Odd\r\nTransfer-Encoding: gzip\r\n\r\n"
       "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 0, 0, 0, 0},
  };
  static const char *const want[] = {"hello", "ok", "abc"};
  rec_t r[3];
  int i;

  memset(r, 0, sizeof(r));
  setup(0, steps, 3, NULL);
  for (i = 0; i < 3; i++) {
    get(&r[i], "/");
    run_until(&r[i].done_called);
    ASSERT_OK(r[i].err);
    ASSERT_EQ(r[i].status, 200);
    ASSERT_EQ(r[i].head_called, 1);
    ASSERT_STR_EQ(r[i].body, want[i]);
  }
  teardown();
}

static char big_resp[512];
static char big_hdr_resp[1024];

static void test_too_big(void) {
  static step_t steps[] = {
      {big_resp, 0, 0, 0, 0},
      {big_resp, 0, 0, 0, 0},
      {big_hdr_resp, 0, 0, 0, 0},
      {big_hdr_resp, 0, 0, 0, 0},
  };
  char body[101];
  char hv[301];
  wf_http_req_opts_t o;
  rec_t r[4];
  int i;

  memset(body, 'b', 100);
  body[100] = '\0';
  snprintf(big_resp, sizeof(big_resp), "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n%s", body);
  memset(hv, 'h', 300);
  hv[300] = '\0';
  snprintf(big_hdr_resp, sizeof(big_hdr_resp),
           "HTTP/1.1 200 OK\r\nX-Long: %s\r\nContent-Length: 2\r\n\r\nok", hv);
  memset(r, 0, sizeof(r));
  setup(0, steps, 4, NULL);
  for (i = 0; i < 4; i++) {
    memset(&o, 0, sizeof(o));
    o.method = "GET";
    o.path = "/";
    o.max_body = i == 0 ? 10 : 100; /* exactly at the limit passes */
    o.max_header = i == 2 ? 64 : 0;
    start(&r[i], &o);
    run_until(&r[i].done_called);
  }
  ASSERT_EQ(r[0].err, WF_ETOOBIG);
  ASSERT_EQ(r[0].status, 200);
  ASSERT_OK(r[1].err);
  ASSERT_EQ(r[1].body_len, 100);
  ASSERT_EQ(r[2].err, WF_ETOOBIG);
  ASSERT_EQ(r[2].head_called, 0);
  ASSERT_OK(r[3].err);
  ASSERT_STR_EQ(r[3].body, "ok");
  teardown();
}

static void test_stream_pause_resume(void) {
  /* All chunks arrive in one segment; pausing in every on_data leaves the
   * rest in the read buffer, delivered only after each resume. */
  static const step_t steps[] = {{chunked_resp, 0, 0, 0, 0}, {OK_HELLO, 0, 0, 0, 0}};
  wf_http_req_opts_t o;
  rec_t r, r2;

  memset(&r, 0, sizeof(r));
  memset(&r2, 0, sizeof(r2));
  setup(0, steps, 2, NULL);
  memset(&o, 0, sizeof(o));
  o.method = "POST";
  o.path = "/v3/watch";
  o.body = "{}";
  o.body_len = 2;
  o.stream = 1;
  o.timeout_ms = 30; /* must not fire while paused */
  r.pause_in_data = 1;
  start(&r, &o);
  run_until(&r.done_called);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(r.body, chunked_body);
  ASSERT_EQ(r.data_called, 3);
  ASSERT_EQ(r.data_while_paused, 0);
  /* The parser and connection are consistent afterwards. */
  get(&r2, "/after");
  run_until(&r2.done_called);
  ASSERT_OK(r2.err);
  ASSERT_STR_EQ(r2.body, "hello");
  ASSERT_EQ(srv.accepted, 1);
  teardown();
}

static void test_pause_at_message_end(void) {
  /* Paused exactly where the body ends (or in on_head of a bodiless
   * response): llhttp still owes on_message_complete, which must come on
   * resume although no further byte will ever arrive. */
  static const step_t steps[] = {
      {OK_HELLO, 0, 0, 0, 0},
      {"HTTP/1.1 204 No Content\r\n\r\n", 0, 0, 0, 0},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 0, 0, 0},
      {chunked_resp, 0, 0, 0, 0},
  };
  wf_http_req_opts_t o;
  rec_t r[4];
  int i;

  memset(r, 0, sizeof(r));
  setup(0, steps, 4, NULL);
  for (i = 0; i < 4; i++) {
    memset(&o, 0, sizeof(o));
    o.method = "GET";
    o.path = "/";
    o.stream = i != 2; /* pausing works in buffered mode too */
    o.timeout_ms = 1000;
    r[i].pause_in_data = i == 0;
    r[i].pause_in_head = i != 0;
    start(&r[i], &o);
    run_until(&r[i].done_called);
    ASSERT_OK(r[i].err);
    ASSERT_EQ(r[i].head_called, 1);
    ASSERT_EQ(r[i].data_while_paused, 0);
  }
  ASSERT_STR_EQ(r[0].body, "hello");
  ASSERT_EQ(r[1].status, 204);
  ASSERT_EQ(r[2].body_len, 0);
  ASSERT_STR_EQ(r[3].body, chunked_body);
  ASSERT_EQ(srv.accepted, 1);
  teardown();
}

static void resume_cb(uv_timer_t *t) {
  rec_t *r = t->data;
  r->paused_now = 0;
  wf_http_req_resume(r->req);
  wf_http_req_resume(r->req); /* idempotent */
}

static void test_pause_from_outside(void) {
  /* Paused before the connection exists; nothing is read until resume. */
  static const step_t steps[] = {{chunked_resp, 0, 0, 0, 0}};
  wf_http_req_opts_t o;
  uv_timer_t t;
  rec_t r;
  uint64_t t0;

  memset(&r, 0, sizeof(r));
  setup(0, steps, 1, NULL);
  memset(&o, 0, sizeof(o));
  o.method = "GET";
  o.path = "/";
  o.stream = 1;
  o.timeout_ms = 20;
  t0 = uv_now(&loop);
  start(&r, &o);
  wf_http_req_pause(r.req);
  r.paused_now = 1;
  uv_timer_init(&loop, &t);
  t.data = &r;
  uv_timer_start(&t, resume_cb, 100, 0);
  run_until(&r.done_called);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.head_called, 1);
  ASSERT_EQ(r.data_while_paused, 0);
  ASSERT_STR_EQ(r.body, chunked_body);
  ASSERT(r.done_at - t0 >= 100);
  uv_close((uv_handle_t *)&t, NULL);
  teardown();
}

static void test_cancel_in_callbacks(void) {
  static const step_t steps[] = {
      /* an endless stream: the chunked body never terminates */
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
       "4\r\nabcd\r\n4\r\nefgh\r\n4\r\nijkl\r\n",
       0, 0, 0, 0},
  };
  wf_http_req_opts_t o;
  rec_t r1, r2;

  memset(&r1, 0, sizeof(r1));
  memset(&r2, 0, sizeof(r2));
  setup(0, steps, 1, NULL);
  memset(&o, 0, sizeof(o));
  o.method = "POST";
  o.path = "/v3/watch";
  o.stream = 1;
  r1.cancel_in_data = 1;
  start(&r1, &o);
  r2.cancel_in_head = 1;
  start(&r2, &o);
  run_until(&r1.done_called);
  run_until(&r2.done_called);
  ASSERT_EQ(r1.head_called, 1);
  ASSERT_EQ(r1.data_called, 1);
  ASSERT_STR_EQ(r1.body, "abcd");
  ASSERT_EQ(r1.err, UV_ECANCELED);
  ASSERT_EQ(r2.head_called, 1);
  ASSERT_EQ(r2.data_called, 0);
  ASSERT_EQ(r2.err, UV_ECANCELED);
  sleep_loop(20);
  ASSERT_EQ(r1.done_called, 1);
  ASSERT_EQ(r2.done_called, 1);
  teardown();
}

static void test_cancel_sync(void) {
  static const step_t steps[] = {{OK_HELLO, 0, 0, 0, 0}};
  rec_t r1, r2;

  memset(&r1, 0, sizeof(r1));
  memset(&r2, 0, sizeof(r2));
  setup(0, steps, 1, NULL);
  get(&r1, "/");
  wf_http_req_cancel(r1.req);
  wf_http_req_cancel(r1.req); /* idempotent until on_done */
  ASSERT_EQ(r1.done_called, 0);
  run_until(&r1.done_called);
  ASSERT_EQ(r1.err, UV_ECANCELED);
  ASSERT_EQ(r1.head_called, 0);
  /* The client is fine afterwards. */
  get(&r2, "/");
  run_until(&r2.done_called);
  ASSERT_OK(r2.err);
  ASSERT_STR_EQ(r2.body, "hello");
  sleep_loop(20);
  ASSERT_EQ(r1.done_called, 1);
  teardown();
}

static rec_t cl[4];

/* The client closes with 3 requests in flight (the server has them and never
 * answers) and a 4th still connecting. */
static void test_close_in_flight(void) {
  static const step_t steps[] = {{NULL, 0, 0, 0, 0}};
  wf_http_req_opts_t o;
  uv_timer_t t;
  int i;

  memset(cl, 0, sizeof(cl));
  setup(0, steps, 1, NULL);
  memset(&o, 0, sizeof(o));
  o.method = "GET";
  o.path = "/";
  o.stream = 1;
  for (i = 0; i < 3; i++) {
    o.stream = i == 1;
    start(&cl[i], &o);
  }
  /* Until the server has received all 3 (a fixed delay is too short under
   * ASan on a loaded machine); the timer bounds the wait and wakes the loop. */
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, noop_timer_cb, 5000, 0);
  while (srv.requests < 3 && uv_is_active((uv_handle_t *)&t)) uv_run(&loop, UV_RUN_ONCE);
  if (srv.requests < 3)
    WF_FAIL("the server received %d of the 3 requests in 5 s", srv.requests);
  uv_close((uv_handle_t *)&t, NULL);
  ASSERT_EQ(total_done, 0);
  /* One more request, still connecting when the client closes. */
  get(&cl[3], "/late");
  wf_http_client_close(client, on_client_closed, NULL);
  client = NULL;
  ASSERT_EQ(total_done, 0);
  expected_done_before_close = 4;
  while (!close_cb_called) uv_run(&loop, UV_RUN_ONCE);
  for (i = 0; i < 4; i++) {
    ASSERT_EQ(cl[i].done_called, 1);
    ASSERT_EQ(cl[i].err, UV_ECANCELED);
    ASSERT_EQ(cl[i].head_called, 0);
  }
  ASSERT(close_cb_after_done_ok);
  ASSERT_EQ(srv.requests, 3);
  srv_stop(&srv);
  wf_test_close_loop(&loop);
  ASSERT_EQ(close_cb_called, 1);
}

static void test_close_in_on_data(void) {
  static const step_t steps[] = {
      {OK_HELLO, 0, 0, 0, 0},
      {OK_HELLO, 0, 0, 0, 0},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n4\r\nefgh\r\n", 0, 0,
       0, 0},
  };
  wf_http_req_opts_t o;
  rec_t r, idle[2];

  memset(&r, 0, sizeof(r));
  memset(idle, 0, sizeof(idle));
  setup(0, steps, 3, NULL);
  /* Two at once leave two pooled connections; one stays idle below. */
  get(&idle[0], "/pooled");
  get(&idle[1], "/pooled");
  run_until(&idle[0].done_called);
  run_until(&idle[1].done_called);
  memset(&o, 0, sizeof(o));
  o.method = "GET";
  o.path = "/";
  o.stream = 1;
  r.close_in_data = 1;
  start(&r, &o);
  expected_done_before_close = 3;
  while (!close_cb_called) uv_run(&loop, UV_RUN_ONCE);
  client = NULL;
  ASSERT_EQ(srv.accepted, 2);
  ASSERT_EQ(r.data_called, 1);
  ASSERT_EQ(r.done_called, 1);
  ASSERT_EQ(r.err, UV_ECANCELED);
  ASSERT(close_cb_after_done_ok);
  srv_stop(&srv);
  wf_test_close_loop(&loop);
  ASSERT_EQ(close_cb_called, 1);
}

static rec_t cd[3];
static void cd_next(rec_t *r) {
  int i;
  (void)r;
  /* The first on_done closes the client: the others are cancelled even if
   * they already completed and wait in the same delivery batch. */
  for (i = 0; i < 3; i++) cd[i].next = NULL;
  wf_http_client_close(client, on_client_closed, NULL);
  client = NULL;
}

static void test_close_in_on_done(void) {
  static const step_t steps[] = {{OK_HELLO, 0, 0, 0, 0}};
  int i, ok = 0;

  memset(cd, 0, sizeof(cd));
  setup(0, steps, 1, NULL);
  for (i = 0; i < 3; i++) {
    cd[i].next = cd_next;
    get(&cd[i], "/");
  }
  expected_done_before_close = 3;
  while (!close_cb_called) uv_run(&loop, UV_RUN_ONCE);
  for (i = 0; i < 3; i++) {
    ASSERT_EQ(cd[i].done_called, 1);
    ASSERT(cd[i].err == 0 || cd[i].err == UV_ECANCELED);
    ok += cd[i].err == 0;
  }
  ASSERT_EQ(ok, 1);
  ASSERT(close_cb_after_done_ok);
  srv_stop(&srv);
  wf_test_close_loop(&loop);
  ASSERT_EQ(close_cb_called, 1);
}

static void test_many(void) {
  static const step_t steps[] = {{OK_HELLO, 0, 0, 0, 0}};
  static rec_t r[40];
  int i;

  memset(r, 0, sizeof(r));
  setup(0, steps, 1, NULL);
  for (i = 0; i < 20; i++) get(&r[i], "/");
  for (i = 0; i < 20; i++) run_until(&r[i].done_called);
  ASSERT_EQ(srv.accepted, 20);
  /* max_idle (4) stayed pooled; 16 more are needed. */
  for (i = 20; i < 40; i++) get(&r[i], "/");
  for (i = 20; i < 40; i++) run_until(&r[i].done_called);
  ASSERT_EQ(srv.accepted, 36);
  for (i = 0; i < 40; i++) {
    ASSERT_OK(r[i].err);
    ASSERT_EQ(r[i].done_called, 1);
    ASSERT_STR_EQ(r[i].body, "hello");
  }
  teardown();
}

static void test_unix_socket(void) {
  static const step_t steps[] = {
      {"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: text/plain; charset=utf-8\r\n"
       "Content-Length: 2\r\n\r\nOK",
       0, 0, 0, 0},
      {"HTTP/1.1 204 No Content\r\nApi-Version: 1.41\r\nServer: Docker/20.10.24+dfsg1 "
       "(linux)\r\n\r\n",
       0, 0, 0, 0},
      {chunked_resp, 0, 1, 0, 0},
  };
  rec_t r[3];
  int i;

  memset(r, 0, sizeof(r));
  setup(1, steps, 3, NULL);
  get(&r[0], "/_ping");
  run_until(&r[0].done_called);
  ASSERT_OK(r[0].err);
  ASSERT_STR_EQ(r[0].body, "OK");
  ASSERT(strncmp(srv.last_req, "GET /_ping HTTP/1.1\r\n", 21) == 0);
  ASSERT_NOT_NULL(strstr(srv.last_req, "\r\nHost: localhost\r\n"));
  ASSERT_NULL(strstr(srv.last_req, "Content-Length"));
  {
    wf_http_req_opts_t o;
    memset(&o, 0, sizeof(o));
    o.method = "POST"; /* no body: still framed with Content-Length: 0 */
    o.path = "/v1.41/containers/x/start";
    start(&r[1], &o);
    run_until(&r[1].done_called);
    ASSERT_NOT_NULL(strstr(srv.last_req, "\r\nContent-Length: 0\r\n"));
  }
  /* 204 carries no body and no length: done without waiting for a close. */
  ASSERT_OK(r[1].err);
  ASSERT_EQ(r[1].status, 204);
  ASSERT_EQ(r[1].body_len, 0);
  get(&r[2], "/logs");
  run_until(&r[2].done_called);
  ASSERT_OK(r[2].err);
  ASSERT_STR_EQ(r[2].body, chunked_body);
  ASSERT_EQ(srv.accepted, 1);
  for (i = 0; i < 3; i++) ASSERT_EQ(r[i].done_called, 1);
  teardown();
}

static void test_unix_missing(void) {
  static const step_t steps[] = {{OK_HELLO, 0, 0, 0, 0}};
  rec_t r;
  memset(&r, 0, sizeof(r));
  setup(0, steps, 1, NULL);
  wf_http_client_close(client, on_client_closed, NULL);
  client = wf_http_client_create(&loop, "unix:///nonexistent/wf-test.sock", NULL);
  ASSERT_NOT_NULL(client);
  get(&r, "/_ping");
  run_until(&r.done_called);
  ASSERT_EQ(r.err, UV_ENOENT);
  wf_http_client_close(client, on_client_closed, NULL);
  client = NULL;
  srv_stop(&srv);
  wf_test_close_loop(&loop);
  ASSERT_EQ(close_cb_called, 2);
}

static void test_interim_and_until_close(void) {
  static const step_t steps[] = {
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 1, 0, 0},
      {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc", 0, 0, 1, 0},
      {"HTTP/1.0 200 OK\r\n\r\nold", 0, 0, 1, 0},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye", 0, 0, 0, 0},
      {OK_HELLO, 0, 0, 0, 0},
  };
  rec_t r[5];
  int i;

  memset(r, 0, sizeof(r));
  setup(0, steps, 5, NULL);
  for (i = 0; i < 5; i++) {
    get(&r[i], "/");
    run_until(&r[i].done_called);
    ASSERT_OK(r[i].err);
    ASSERT_EQ(r[i].status, 200);
    ASSERT_EQ(r[i].head_called, 1);
    ASSERT_EQ(r[i].head_status, 200);
  }
  ASSERT_STR_EQ(r[0].body, "ok");
  ASSERT_STR_EQ(r[1].body, "abc");
  ASSERT_STR_EQ(r[2].body, "old");
  ASSERT_STR_EQ(r[3].body, "bye");
  /* 1: after the 100; 2, 3: ended by close; 4: Connection: close. */
  ASSERT_EQ(srv.accepted, 4);
  teardown();
}

static void test_head_method(void) {
  static const step_t steps[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 0, 0, 0, 0},
      {OK_HELLO, 0, 0, 0, 0},
  };
  wf_http_req_opts_t o;
  rec_t r1, r2;

  memset(&r1, 0, sizeof(r1));
  memset(&r2, 0, sizeof(r2));
  setup(0, steps, 2, NULL);
  memset(&o, 0, sizeof(o));
  o.method = "HEAD";
  o.path = "/";
  o.timeout_ms = 1000;
  start(&r1, &o);
  run_until(&r1.done_called);
  ASSERT_OK(r1.err);
  ASSERT_EQ(r1.body_len, 0);
  get(&r2, "/");
  run_until(&r2.done_called);
  ASSERT_STR_EQ(r2.body, "hello");
  ASSERT_EQ(srv.accepted, 1);
  teardown();
}

static void test_idle_close_and_max_idle(void) {
  static const step_t steps[] = {{OK_HELLO, 0, 0, 0, 0}};
  wf_http_client_opts_t co;
  rec_t r[7];
  int i;

  memset(&co, 0, sizeof(co));
  co.max_idle = 1;
  co.idle_close_ms = 60;
  memset(r, 0, sizeof(r));
  setup(0, steps, 1, &co);
  for (i = 0; i < 3; i++) get(&r[i], "/");
  for (i = 0; i < 3; i++) run_until(&r[i].done_called);
  ASSERT_EQ(srv.accepted, 3);
  /* Only one stayed pooled. */
  for (i = 3; i < 5; i++) get(&r[i], "/");
  for (i = 3; i < 5; i++) run_until(&r[i].done_called);
  ASSERT_EQ(srv.accepted, 4);
  /* Idle longer than idle_close_ms: the pooled one is gone. */
  sleep_loop(150);
  get(&r[5], "/");
  run_until(&r[5].done_called);
  ASSERT_EQ(srv.accepted, 5);
  for (i = 0; i < 6; i++) ASSERT_OK(r[i].err);
  teardown();
}

static void test_localhost_name(void) {
  static const step_t steps[] = {{OK_HELLO, 0, 0, 0, 0}};
  char origin[64];
  rec_t r;

  memset(&r, 0, sizeof(r));
  setup(0, steps, 1, NULL);
  wf_http_client_close(client, on_client_closed, NULL);
  snprintf(origin, sizeof(origin), "http://localhost:%d/", srv.port);
  client = wf_http_client_create(&loop, origin, NULL);
  ASSERT_NOT_NULL(client);
  ASSERT_STR_EQ(wf_http_client_origin(client), origin);
  get(&r, "/");
  run_until(&r.done_called);
  ASSERT_OK(r.err);
  ASSERT_STR_EQ(r.body, "hello");
  snprintf(origin, sizeof(origin), "\r\nHost: localhost:%d\r\n", srv.port);
  ASSERT_NOT_NULL(strstr(srv.last_req, origin));
  teardown_n(2);
}

static void test_origins_and_args(void) {
  static const char *good[] = {"http://127.0.0.1:2379", "http://localhost:2379",
                               "http://[::1]:2379", "http://etcd", "unix:///run/docker.sock",
                               "http://127.0.0.1:2379/"};
  static const char *bad[] = {"https://127.0.0.1:2379", "127.0.0.1:2379", "http://",
                              "http://:80", "http://h:0", "http://h:99999", "http://h:x",
                              "unix://relative", "http://h:80/path", "http://[nope]:1",
                              "http://[::1"};
  wf_http_cbs_t cbs = rec_cbs;
  wf_http_req_opts_t o;
  wf_http_header_t evil = {"X-Evil", "a\r\nInjected: 1"};
  size_t i;

  ASSERT_OK(uv_loop_init(&loop));
  close_cb_called = 0;
  for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    wf_http_client_t *c = wf_http_client_create(&loop, good[i], NULL);
    if (!c) WF_FAIL("rejected %s", good[i]);
    wf_http_client_close(c, on_client_closed, NULL);
  }
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (wf_http_client_create(&loop, bad[i], NULL)) WF_FAIL("accepted %s", bad[i]);
  client = wf_http_client_create(&loop, "http://127.0.0.1:1", NULL);
  memset(&o, 0, sizeof(o));
  ASSERT_NULL(wf_http_request(client, &o, &cbs, NULL));
  o.method = "GET";
  ASSERT_NULL(wf_http_request(client, &o, &cbs, NULL));
  o.path = "/a b";
  ASSERT_NULL(wf_http_request(client, &o, &cbs, NULL));
  o.path = "/";
  o.headers = &evil;
  o.nheaders = 1;
  ASSERT_NULL(wf_http_request(client, &o, &cbs, NULL));
  o.nheaders = 0;
  o.body_len = 3;
  ASSERT_NULL(wf_http_request(client, &o, &cbs, NULL));
  wf_http_client_close(client, on_client_closed, NULL);
  ASSERT_NULL(wf_http_request(client, &o, &cbs, NULL)); /* closing */
  client = NULL;
  wf_test_close_loop(&loop);
  ASSERT_EQ(close_cb_called, (int)(sizeof(good) / sizeof(good[0])) + 1);
}

/* ---- runner ---------------------------------------------------------------------------- */
static const wf_test_t tests[] = {
    WF_TEST(content_length), WF_TEST(chunked_trickle), WF_TEST(etcd_trailer),
    WF_TEST(keepalive_reuse), WF_TEST(answer_before_upload_done), WF_TEST(answer_then_stall),
    WF_TEST(server_closes_idle), WF_TEST(retry_on_reused), WF_TEST(fresh_conn_closed_no_retry),
    WF_TEST(refused), WF_TEST(timeout), WF_TEST(connect_timeout), WF_TEST(timeout_mid_body),
    WF_TEST(truncated), WF_TEST(garbage), WF_TEST(bad_status), WF_TEST(interim_with_length),
    WF_TEST(too_big), WF_TEST(stream_pause_resume), WF_TEST(pause_from_outside),
    WF_TEST(pause_at_message_end), WF_TEST(cancel_in_callbacks), WF_TEST(cancel_sync),
    WF_TEST(close_in_flight), WF_TEST(close_in_on_data), WF_TEST(close_in_on_done),
    WF_TEST(many), WF_TEST(unix_socket), WF_TEST(unix_missing),
    WF_TEST(interim_and_until_close), WF_TEST(head_method), WF_TEST(idle_close_and_max_idle),
    WF_TEST(localhost_name), WF_TEST(origins_and_args),
};

int main(int argc, char **argv) {
  make_etcd_err_reply();
  if (getenv("WF_TEST_DEBUG")) wf_log_setup(WF_LOG_DEBUG, 0);
  return WF_TEST_MAIN(argc, argv, tests);
}
