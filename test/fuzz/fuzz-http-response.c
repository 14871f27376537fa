/*
 * fuzz-http-response: the bytes of one HTTP/1.1 response, fed through the
 * real client code path (src/http/client.c and client-message.c: socket reads, llhttp, chunked
 * bodies, trailers, pause/resume, cancel, keep-alive reuse and retry).
 *
 * Each input runs on a fresh uv loop.  A tiny server in the same process
 * listens on a unix socket; the client (origin unix://<path>) sends one GET,
 * the server reads the request head and then writes the response in 1-3
 * pieces, one per loop iteration (so the client reads each piece on its own,
 * not all of them at once), and closes.  The loop must end with every handle
 * closed: uv_loop_close() == 0.
 *
 * Input layout:
 *   byte 0  flags: see F_* below
 *   byte 1  bits 0-1: pieces - 1 (3 counts as 1);  bits 2-3: which callback
 *           (on_head = 0, then each on_data) cancels or closes;  bits 4-7:
 *           small bound selector (max_body / max_header when F_SMALL)
 *   byte 2  first cut, as a fraction of the response (x/256)
 *   byte 3  second cut, the same
 *   rest    the response bytes
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "wf/http.h"
#include "wf/util.h"
#include "fuzz-check.h"

#define F_STREAM 0x01  /* deliver through on_data */
#define F_PAUSE 0x02   /* on_data pauses; a 0 ms timer resumes */
#define F_CANCEL 0x04  /* a callback cancels the request */
#define F_CLOSE 0x08   /* a callback closes the client instead */
#define F_HEAD 0x10    /* a HEAD request (no body whatever the headers say) */
#define F_SMALL 0x20   /* small max_body and max_header */
#define F_SECOND 0x40  /* after a clean first response, a second request (pool reuse / retry) */
#define F_TIMEOUT 0x80 /* a response timeout is armed (never expires: the server always closes) */

/* One accepted connection of the in-process server. */
typedef struct sconn_s {
  struct fuzz_s *f;
  uv_pipe_t pipe;
  uv_idle_t ticker; /* writes the next piece once per loop iteration */
  uv_write_t wreq;
  int handles;      /* open handles; freed when 0 */
  int closing;
  int got_head;     /* the request head was read */
  char rbuf[4096];
  size_t rlen;
  size_t next;      /* next piece to write */
  int writing;
} sconn_t;

typedef struct fuzz_s {
  uv_loop_t loop;
  uv_pipe_t server;
  int server_open;
  uv_timer_t resume; /* F_PAUSE: resumes the paused request */
  int resume_open;
  wf_http_client_t *client;
  int client_closing;
  int client_closed;

  unsigned flags;
  unsigned action_at; /* callback index that cancels/closes */
  size_t small;
  const uint8_t *resp;
  size_t resp_len;
  size_t cut[4]; /* piece i is [cut[i], cut[i+1]) */
  size_t npieces;

  /* per request */
  wf_http_req_t *req;
  unsigned nreq;
  unsigned ncb;  /* on_head + on_data calls of the current request */
  int head_seen, head_status, acted, done;
  size_t data_bytes;
  unsigned done_calls;
} fuzz_t;

static char sock_path[108];
/* WF_FUZZ_VERBOSE=1: one line per request (to check what a seed does). */
static int verbose;

/* ---- server ----------------------------------------------------------------- */
static void sconn_on_closed(uv_handle_t *h) {
  sconn_t *s = h->data;
  if (--s->handles == 0) free(s);
}

static void sconn_close(sconn_t *s) {
  if (s->closing) return;
  s->closing = 1;
  uv_close((uv_handle_t *)&s->ticker, sconn_on_closed);
  uv_close((uv_handle_t *)&s->pipe, sconn_on_closed);
}

static void sconn_on_write(uv_write_t *w, int status) {
  sconn_t *s = w->data;
  s->writing = 0;
  if (s->closing) return;
  if (status < 0 || s->next >= s->f->npieces) sconn_close(s);
}

static void sconn_on_tick(uv_idle_t *t) {
  sconn_t *s = t->data;
  fuzz_t *f = s->f;
  if (s->closing || s->writing) return;
  if (s->next >= f->npieces) {
    sconn_close(s);
    return;
  }
  size_t a = f->cut[s->next], b = f->cut[s->next + 1];
  s->next++;
  if (a == b) return; /* an empty piece: just one more iteration */
  uv_buf_t buf = uv_buf_init((char *)f->resp + a, (unsigned)(b - a));
  s->wreq.data = s;
  if (uv_write(&s->wreq, (uv_stream_t *)&s->pipe, &buf, 1, sconn_on_write) < 0) {
    sconn_close(s);
    return;
  }
  s->writing = 1;
}

static void sconn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  sconn_t *s = h->data;
  (void)hint;
  *buf = uv_buf_init(s->rbuf + s->rlen, (unsigned)(sizeof(s->rbuf) - s->rlen - 1));
}

static void sconn_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  sconn_t *s = st->data;
  (void)buf;
  if (n == 0 || s->closing) return;
  if (n < 0) {
    sconn_close(s);
    return;
  }
  s->rlen += (size_t)n;
  s->rbuf[s->rlen] = '\0';
  if (strstr(s->rbuf, "\r\n\r\n")) {
    /* A GET/HEAD has no body: the request is all here. */
    s->got_head = 1;
    uv_read_stop(st);
    uv_idle_start(&s->ticker, sconn_on_tick);
  } else if (s->rlen + 1 >= sizeof(s->rbuf)) {
    sconn_close(s);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  fuzz_t *f = server->data;
  CHECK(status == 0);
  sconn_t *s = calloc(1, sizeof(*s));
  CHECK(s);
  s->f = f;
  uv_pipe_init(&f->loop, &s->pipe, 0);
  uv_idle_init(&f->loop, &s->ticker);
  s->pipe.data = s->ticker.data = s;
  s->handles = 2;
  CHECK(uv_accept(server, (uv_stream_t *)&s->pipe) == 0);
  CHECK(uv_read_start((uv_stream_t *)&s->pipe, sconn_alloc, sconn_on_read) == 0);
}

/* ---- client ----------------------------------------------------------------- */
static void on_client_closed(void *data) {
  fuzz_t *f = data;
  f->client_closed = 1;
  /* No more connections come: stop listening. */
  if (f->server_open) {
    f->server_open = 0;
    uv_close((uv_handle_t *)&f->server, NULL);
  }
  if (f->resume_open) {
    f->resume_open = 0;
    uv_close((uv_handle_t *)&f->resume, NULL);
  }
}

static void close_client(fuzz_t *f) {
  if (f->client_closing) return;
  f->client_closing = 1;
  wf_http_client_close(f->client, on_client_closed, f);
}

/* F_CANCEL/F_CLOSE: the chosen callback cancels or closes. */
static int maybe_act(fuzz_t *f, wf_http_req_t *req) {
  unsigned i = f->ncb++;
  if (f->acted || i != f->action_at) return 0;
  if (f->flags & F_CLOSE) {
    f->acted = 1;
    close_client(f);
    return 1;
  }
  if (f->flags & F_CANCEL) {
    f->acted = 1;
    wf_http_req_cancel(req);
    return 1;
  }
  return 0;
}

static void on_head(wf_http_req_t *req, int status, const wf_http_header_t *h, size_t n,
                    void *data) {
  fuzz_t *f = data;
  CHECK(req == f->req && !f->done);
  CHECK(!f->head_seen);
  CHECK(status >= 200 && status <= 999);
  f->head_seen = 1;
  f->head_status = status;
  for (size_t i = 0; i < n; i++) {
    /* Every header is two NUL-terminated strings (ASan checks the reads). */
    volatile size_t l = strlen(h[i].name) + strlen(h[i].value);
    (void)l;
  }
  maybe_act(f, req);
}

static void on_resume(uv_timer_t *t) {
  fuzz_t *f = t->data;
  if (f->req && !f->done) wf_http_req_resume(f->req);
}

static void on_data(wf_http_req_t *req, const char *p, size_t n, void *data) {
  fuzz_t *f = data;
  CHECK(req == f->req && !f->done);
  CHECK(f->flags & F_STREAM);
  CHECK(f->head_seen);
  CHECK(n > 0);
  f->data_bytes += n;
  /* De-chunking only removes bytes. */
  CHECK(f->data_bytes <= f->resp_len);
  volatile char first = p[0], last = p[n - 1];
  (void)first;
  (void)last;
  if (maybe_act(f, req)) return;
  if (f->flags & F_PAUSE) {
    wf_http_req_pause(req);
    uv_timer_start(&f->resume, on_resume, 0, 0);
  }
}

static void start_request(fuzz_t *f);

static void on_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                    void *data) {
  fuzz_t *f = data;
  CHECK(req == f->req && !f->done);
  f->done = 1;
  f->done_calls++;
  f->req = NULL;
  if (verbose)
    fprintf(stderr, "request %u: err %d (%s) status %d body %zu streamed %zu\n", f->nreq, err,
            err ? wf_strerror(err) : "ok", status, len, f->data_bytes);
  CHECK(err <= 0);
  if (f->head_seen) CHECK(status == f->head_status);
  if (err == 0) {
    CHECK(f->head_seen);
    CHECK(status >= 200);
    if (f->flags & F_STREAM) {
      CHECK(body == NULL && len == 0);
    } else {
      CHECK(body != NULL);
      CHECK(body[len] == '\0');
      CHECK(len <= f->resp_len);
      if (f->flags & F_SMALL) CHECK(len <= f->small);
      if (f->flags & F_HEAD) CHECK(len == 0);
    }
  } else {
    CHECK(body == NULL && len == 0);
  }
  if (f->acted && (f->flags & F_CANCEL) && !(f->flags & F_CLOSE)) CHECK(err == UV_ECANCELED);
  if (f->client_closing) return;
  if (err == 0 && (f->flags & F_SECOND) && f->nreq < 2) {
    start_request(f);
    return;
  }
  close_client(f);
}

static void start_request(fuzz_t *f) {
  static const wf_http_header_t hdr[] = {{"Accept", "*/*"}};
  wf_http_req_opts_t o;
  wf_http_cbs_t cbs = {on_head, on_data, on_done};

  memset(&o, 0, sizeof(o));
  o.method = (f->flags & F_HEAD) ? "HEAD" : "GET";
  o.path = "/v3/watch";
  o.headers = hdr;
  o.nheaders = 1;
  o.stream = (f->flags & F_STREAM) != 0;
  o.timeout_ms = (f->flags & F_TIMEOUT) ? 60000 : 0;
  if (f->flags & F_SMALL) {
    o.max_body = f->small;
    o.max_header = f->small * 4;
  }
  f->ncb = 0;
  f->head_seen = f->head_status = f->done = 0;
  f->data_bytes = 0;
  f->nreq++;
  f->req = wf_http_request(f->client, &o, &cbs, f);
  CHECK(f->req != NULL);
}

static void on_exit_unlink(void) { unlink(sock_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* Writes to a peer that is gone must fail with EPIPE, not kill us. */
  signal(SIGPIPE, SIG_IGN);
  wf_log_setup(WF_LOG_ERROR, 0);
  verbose = getenv("WF_FUZZ_VERBOSE") != NULL;
  snprintf(sock_path, sizeof(sock_path), "/tmp/wf-fuzz-http-%d.sock", (int)getpid());
  atexit(on_exit_unlink);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_t f;
  char origin[128];

  if (size < 4) return 0;
  memset(&f, 0, sizeof(f));
  f.flags = data[0];
  f.npieces = (data[1] & 3) == 3 ? 1 : (size_t)(data[1] & 3) + 1;
  f.action_at = (data[1] >> 2) & 3;
  f.small = 16 + ((size_t)(data[1] >> 4) << 6);
  f.resp = data + 4;
  f.resp_len = size - 4;
  {
    size_t c1 = f.resp_len * data[2] / 256, c2 = f.resp_len * data[3] / 256;
    if (c1 > c2) {
      size_t t = c1;
      c1 = c2;
      c2 = t;
    }
    f.cut[0] = 0;
    if (f.npieces == 1) {
      f.cut[1] = f.resp_len;
    } else if (f.npieces == 2) {
      f.cut[1] = c1;
      f.cut[2] = f.resp_len;
    } else {
      f.cut[1] = c1;
      f.cut[2] = c2;
      f.cut[3] = f.resp_len;
    }
  }

  CHECK(uv_loop_init(&f.loop) == 0);
  CHECK(uv_pipe_init(&f.loop, &f.server, 0) == 0);
  f.server.data = &f;
  unlink(sock_path);
  CHECK(uv_pipe_bind(&f.server, sock_path) == 0);
  CHECK(uv_listen((uv_stream_t *)&f.server, 8, on_connection) == 0);
  f.server_open = 1;
  CHECK(uv_timer_init(&f.loop, &f.resume) == 0);
  f.resume.data = &f;
  f.resume_open = 1;

  snprintf(origin, sizeof(origin), "unix://%s", sock_path);
  f.client = wf_http_client_create(&f.loop, origin, NULL);
  CHECK(f.client != NULL);
  start_request(&f);

  uv_run(&f.loop, UV_RUN_DEFAULT);
  CHECK(f.client_closed);
  CHECK(f.done_calls == f.nreq);
  if (uv_loop_close(&f.loop) != 0) {
    uv_print_all_handles(&f.loop, stderr);
    CHECK(!"handles left open");
  }
  unlink(sock_path);
  return 0;
}
