/*
 * fuzz-http2: the bytes an HTTP/2 server sends to the client, through our
 * glue around nghttp2 (src/http/client-h2.c): the header, data, close,
 * GOAWAY, PING and not-sent callbacks, the stream lookup, held bytes of a
 * paused stream and their drain, bounds on heads and bodies, redispatch
 * after a refusal, and the connection's failure and teardown.  nghttp2's own
 * framing is under test only as far as our callbacks see it.  No TLS
 * (client-tls.c's share is the same as for HTTP/1.1, which
 * fuzz-http-response covers).
 *
 * One loop and one https:// client for the whole run.  Each input is one
 * connection: a socketpair whose one end becomes the client's session
 * through wf__http_h2_adopt() (src/http/http-internal.h: HTTP/2 with prior
 * knowledge, the same session code as after ALPN h2), the other end is the
 * server, written from here.  Three requests go out on it at once (stream 1
 * a buffered POST with a 4 KiB max_body, stream 3 a streamed POST, stream 5
 * a HEAD with a 512-byte max_header), then the input is written in up to
 * four pieces, one per loop turn, what the client sends is read and
 * dropped, and the server end is shut for writing, so that every stream
 * ends one way or another.  The loop runs with UV_RUN_NOWAIT; an input
 * needing more than MAX_ITERS turns is a client that hangs, and fails.
 *
 * Input layout:
 *   byte 0     bit 0: pause stream 3 at its first piece (resumed a turn
 *              later); bit 1: cancel stream 1 at its head; bit 2: cancel
 *              stream 3 at its second piece
 *   bytes 1-3  cut points (x/256 of the rest)
 *   rest       the server's bytes (its SETTINGS first, as a server sends)
 *
 * Oracles: on_done exactly once per request, last; on_head at most once,
 * before any on_data, with a status of 200..999; no on_data while paused
 * or after a cancel; a request that succeeded has a status, a buffered body
 * within max_body; the connection is gone at the end and the client has
 * no request left (the loop holds only the client's idle handle).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "fuzz-check.h"
#include "src/http/http-internal.h"
#include "wf/http.h"
#include "wf/util.h"

#define MAX_ITERS 20000
#define NREQ 3

typedef struct r_s {
  wf_http_req_t *req;
  int done, heads, err, status;
  int paused, cancelled, pieces;
  size_t len;
  int pause_first, cancel_head, cancel_second;
} r_t;

static uv_loop_t loop;
static wf_http_client_t *client;
static r_t rs[NREQ];
static int turn, resume_at;

static void on_head(wf_http_req_t *req, int status, const wf_http_header_t *h, size_t n,
                    void *data) {
  r_t *r = data;
  CHECK(!r->done && !r->cancelled);
  CHECK(r->heads == 0 && r->pieces == 0);
  CHECK(status >= 200 && status <= 999);
  for (size_t i = 0; i < n; i++) CHECK(h[i].name && h[i].value);
  r->heads++;
  if (r->cancel_head) {
    r->cancelled = 1;
    wf_http_req_cancel(req);
  }
}

static void on_data(wf_http_req_t *req, const char *p, size_t n, void *data) {
  r_t *r = data;
  CHECK(!r->done && !r->cancelled && !r->paused);
  CHECK(r->heads == 1);
  CHECK(n > 0 && p);
  r->pieces++;
  r->len += n;
  if (r->pause_first && r->pieces == 1) {
    r->paused = 1;
    resume_at = turn + 1;
    wf_http_req_pause(req);
  } else if (r->cancel_second && r->pieces == 2) {
    r->cancelled = 1;
    wf_http_req_cancel(req);
  }
}

static void on_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                    void *data) {
  r_t *r = data;
  (void)req;
  CHECK(!r->done);
  r->done = 1;
  r->err = err;
  r->status = status;
  if (r->cancelled) CHECK(err == UV_ECANCELED);
  if (err == 0) {
    CHECK(status >= 200 && r->heads == 1);
    if (body) CHECK(len <= 4096);
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  wf_http_tls_opts_t tls = {0};
  wf_http_client_opts_t o = {.tls = &tls};
  char err[256];
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  wf_log_setup(WF_LOG_ERROR, 0);
  uv_loop_init(&loop);
  /* The TLS context is loaded (system trust store) but no session is made:
   * adopted connections speak HTTP/2 in the clear. */
  client = wf_http_client_create_ex(&loop, "https://127.0.0.1:9", &o, err, sizeof err);
  if (!client) {
    fprintf(stderr, "fuzz-http2: %s\n", err);
    abort();
  }
  return 0;
}

static void drain_client_bytes(int fd) {
  char buf[65536];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int sv[2];
  size_t cuts[5], npieces = 0, off = 0;
  const uint8_t *in;
  size_t n;
  int iter = 0;

  if (size < 4 || size > 65536) return 0;
  in = data + 4;
  n = size - 4;
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  CHECK(wf__http_h2_adopt(client, sv[0]) == 0);

  memset(rs, 0, sizeof rs);
  rs[1].pause_first = data[0] & 1;
  rs[0].cancel_head = (data[0] >> 1) & 1;
  rs[1].cancel_second = (data[0] >> 2) & 1;
  {
    wf_http_header_t hdr = {"Content-Type", "application/json"};
    wf_http_req_opts_t o1 = {.method = "POST", .path = "/v3/kv/range", .headers = &hdr,
                             .nheaders = 1, .body = "{}", .body_len = 2, .max_body = 4096};
    wf_http_req_opts_t o3 = {.method = "POST", .path = "/v3/watch", .body = "{\"a\":1}",
                             .body_len = 7, .stream = 1};
    wf_http_req_opts_t o5 = {.method = "HEAD", .path = "/health", .max_header = 512};
    wf_http_cbs_t cb = {.on_head = on_head, .on_data = on_data, .on_done = on_done};
    rs[0].req = wf_http_request(client, &o1, &cb, &rs[0]);
    rs[1].req = wf_http_request(client, &o3, &cb, &rs[1]);
    rs[2].req = wf_http_request(client, &o5, &cb, &rs[2]);
    for (int i = 0; i < NREQ; i++) CHECK(rs[i].req != NULL);
  }
  /* Cut points, sorted, then the end. */
  for (int i = 1; i <= 3; i++) {
    size_t c = n * data[i] / 256, j = npieces;
    while (j > 0 && cuts[j - 1] > c) {
      cuts[j] = cuts[j - 1];
      j--;
    }
    cuts[j] = c;
    npieces++;
  }
  cuts[npieces++] = n;

  turn = 0;
  resume_at = -1;
  for (size_t p = 0; p < npieces; p++) {
    while (off < cuts[p]) {
      ssize_t w = write(sv[1], in + off, cuts[p] - off);
      if (w < 0 && errno == EAGAIN) {
        drain_client_bytes(sv[1]);
        uv_run(&loop, UV_RUN_NOWAIT);
        CHECK(++iter < MAX_ITERS);
        continue;
      }
      if (w <= 0) break; /* the client closed: the rest has no reader */
      off += (size_t)w;
    }
    if (off < cuts[p]) break;
    drain_client_bytes(sv[1]);
    uv_run(&loop, UV_RUN_NOWAIT);
    turn++;
    if (resume_at >= 0 && turn >= resume_at && rs[1].paused && !rs[1].done) {
      rs[1].paused = 0;
      wf_http_req_resume(rs[1].req);
    }
  }
  shutdown(sv[1], SHUT_WR);
  for (;;) {
    int done = 0;
    for (int i = 0; i < NREQ; i++) done += rs[i].done;
    if (done == NREQ && client->nconns == 0) break;
    drain_client_bytes(sv[1]);
    if (rs[1].paused && !rs[1].done) {
      rs[1].paused = 0;
      wf_http_req_resume(rs[1].req);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(++iter < MAX_ITERS);
  }
  close(sv[1]);
  CHECK(wf__http_list_empty(&client->reqs));
  CHECK(client->h2_state == H2_UNKNOWN && client->h2conn == NULL);
  return 0;
}
