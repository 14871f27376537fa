/*
 * fuzz-http-request: the bytes a client sends to the agent's HTTP server
 * (src/http/server.c, llhttp in request mode), end to end: the server's
 * read callback, head and body bounds, the parser callbacks that keep the
 * path, query and three headers, the handler call, synchronous and streamed
 * answers (wf_httpd_stream_*), shutdown and linger, and the connection's
 * teardown.  No TLS (tls.c has test/http/test-tls-server.c).
 *
 * One loop and two servers for the whole run (LLVMFuzzerInitialize), both
 * listening on 127.0.0.1:0 as the agent does, one with the default max_head
 * (8192) and one with 256.  Each input is one connection: a socketpair
 * whose one end the server takes through wf__httpd_adopt()
 * (src/http/http-internal.h: the same conn, parser and writes as an
 * accepted socket) and whose other end is the client, a uv_pipe_t on the
 * same loop.  Why not a TCP client of the listener: a connection per input
 * at thousands per second runs out of ephemeral ports in TIME_WAIT within
 * seconds, and only with the server's end of the socket in hand can the
 * client tell, exactly, that the server has read every byte (FIONREAD 0)
 * and now waits for more, which is when a client that has nothing more to
 * say half-closes.  Without that the harness would either wait for the
 * server's 10 s deadline or guess with a timer.  The loop is run with
 * UV_RUN_NOWAIT and never needs a timer: every step is a socket or a 0-tick
 * idle, so an input that needs more than MAX_ITERS iterations is a server
 * that hangs, and fails.
 *
 * Input layout:
 *   byte 0     bits 0-1: how the client ends (enum end); bit 2: the server
 *              with max_head 256
 *   bytes 1-3  cut points of the request (x/256 of its length): it is
 *              written in up to four pieces, one per loop iteration, so the
 *              server parses each on its own
 *   rest       the request
 * The handler picks its answer (enum act) by the byte after the path's '/'
 * (path[1], mod A_COUNT) and the size of a streamed body by path[2].
 *
 * Oracles:
 *   - the handler runs at most once, only for a whole GET or HEAD request,
 *     and never when the server answered an error; path has no '?' or '#',
 *     query no '#', a header value is NULL or at most 1024 bytes without CR
 *     or LF; tls and peer_verified are 0;
 *   - a stream: on_drain and on_close never inside a wf_httpd_stream_* call
 *     or the handler, no drain after on_close, on_close exactly once; every
 *     call made with a write in flight is refused (UV_EBUSY); a client that
 *     neither half-closes nor leaves gets completed = 1 unless the producer
 *     aborted or ended before a head;
 *   - what the client reads starts with a status line "HTTP/1.1 NNN
 *     Reason" (the reason the status has), and its head ends, holds
 *     Content-Type, Cache-Control: no-store, Connection: close and exactly
 *     one of Content-Length and Transfer-Encoding: chunked; an error answer
 *     (the handler not called) is 400, 405 (with Allow), 413 or 431 and
 *     counted in stats.bad; a synchronous answer or a completed stream that
 *     the client read to the end is exactly the status and the body the
 *     handler or producer gave (de-chunked, and nothing for HEAD); what a
 *     client that left saw is a prefix of it;
 *   - the connection is gone at the end (stats.open 0, no deadline fired)
 *     and the loop holds nothing but the two listeners and the idle handle.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "fuzz-check.h"
#include "src/http/http-internal.h"
#include "wf/httpd.h"
#include "wf/util.h"

#define FUZZ_MAX_INPUT 65536
#define MAX_ITERS 20000
#define MAX_HEADER_VALUE 1024 /* server.c's */

/* How the client ends, after its last byte. */
enum end {
  E_SETTLE, /* half-closes once the server has read everything, unless a stream runs */
  E_HALF,   /* half-closes right after its last byte */
  E_LEAVE,  /* closes at its first response byte, or once the server read everything */
  E_NOHALF, /* never half-closes: reads to the end, or leaves if no answer can come */
};

/* What the handler does (path[1] mod A_COUNT). */
enum act {
  A_SYNC,          /* 200 through resp, a body of what it saw, an extra header line */
  A_STATUS,        /* another status through resp, empty body or not */
  A_LENGTH,        /* stream: Content-Length head in the handler, a piece per drain, end */
  A_CHUNKED,       /* stream: chunked head from a later tick, a piece per drain, end */
  A_REPLY_LATER,   /* stream: wf_httpd_stream_reply a few ticks later */
  A_REPLY_NOW,     /* stream: reply from the handler */
  A_ABORT_NOW,     /* stream: abort in the handler */
  A_ABORT_LATER,   /* stream: chunked head and one piece, abort at the next tick */
  A_END_NO_HEAD,   /* stream: end before any head (closes, not completed) */
  A_END_IN_FLIGHT, /* stream: chunked, end right after the last write, before its drain */
  A_HEAD_END,      /* stream: head with Content-Length 0, end, both in the handler */
  A_COUNT
};

typedef struct run_s {
  /* the input */
  enum end end;
  const char *req;
  size_t len;
  size_t cut[5];   /* piece i is [cut[i], cut[i+1]) */
  size_t npieces, piece, sent;
  /* the client */
  uv_pipe_t pipe;
  int pipe_state;  /* 0 none, 1 open, 2 closing, 3 closed */
  int half_closed, left, eof;
  char in[FUZZ_MAX_INPUT];
  size_t inlen;
  int in_over;
  /* the server */
  wf_httpd_t *srv;
  uv_os_sock_t sfd; /* the server's end, valid while the connection is open */
  int cfd;          /* the client's end (the pipe's) */
  wf_httpd_stats_t before;
  int calls, in_handler, head_only;
  enum act act;
  unsigned seed;
  int sync;         /* answered through resp */
  int sync_status;
  char sync_body[1024];
  size_t sync_len;
  /* the stream */
  wf_httpd_stream_t *st;
  int in_call, drains, closes, completed;
  int aborted, ended, end_no_head, replied, head_sent, chunked;
  int status;
  int64_t clen;
  size_t npieces_out, next;
  char body[1024];  /* every body byte written (or the reply's body) */
  size_t blen;
  int ticks;        /* idle ticks until later() */
  void (*later)(void);
} run_t;

static run_t R;
static uv_loop_t loop;
static wf_httpd_t *servers[2];
static uv_idle_t tick;
static const char text[] =
    "The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopqrstuvwxyz "
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ, pack my box with five dozen liquor jugs.\n"
    "Sphinx of black quartz, judge my vow!  How vexingly quick daft zebras jump.\n"
    "0123456789012345678901234567890123456789";

/* ---- the producer ---------------------------------------------------------------------- */

static size_t piece_len(size_t k) { return 1 + (R.seed * 31 + k * 17) % 200; }
static const char *piece_at(size_t k) { return text + (k * 13) % 50; }

static void on_tick(uv_idle_t *t);

/* fn() after ticks loop iterations (a producer woken by something else). */
static void later(void (*fn)(void), int ticks) {
  R.later = fn;
  R.ticks = ticks;
  uv_idle_start(&tick, on_tick);
}

static int st_head(int status, int64_t clen) {
  R.in_call++;
  int r = wf_httpd_stream_head(R.st, status, "text/plain", clen, "X-Stream: 1\r\n");
  R.in_call--;
  CHECK(r == 0 || r == WF_ECLOSED);
  if (r == 0) {
    R.head_sent = 1;
    R.status = status;
    R.clen = clen;
    R.chunked = clen < 0;
    /* One write in flight: everything else waits for its drain. */
    R.in_call++;
    CHECK(wf_httpd_stream_write(R.st, "x", 1) == UV_EBUSY);
    CHECK(wf_httpd_stream_head(R.st, 200, NULL, 0, NULL) == UV_EBUSY);
    CHECK(wf_httpd_stream_reply(R.st, 200, "x", 1, NULL) == UV_EBUSY);
    R.in_call--;
  }
  return r;
}

static int st_write(size_t k) {
  const char *p = piece_at(k);
  size_t n = piece_len(k);
  R.in_call++;
  int r = wf_httpd_stream_write(R.st, p, n);
  R.in_call--;
  CHECK(r == 0 || r == WF_ECLOSED);
  if (r == 0) {
    CHECK(R.blen + n <= sizeof R.body);
    memcpy(R.body + R.blen, p, n);
    R.blen += n;
    R.in_call++;
    CHECK(wf_httpd_stream_write(R.st, p, n) == UV_EBUSY);
    R.in_call--;
  }
  return r;
}

static void st_reply(int status) {
  static const char msg[] = "a reply decided by the producer\n";
  size_t n = R.seed % sizeof msg;
  R.in_call++;
  int r = wf_httpd_stream_reply(R.st, status, msg, n, "X-Reply: 1\r\n");
  R.in_call--;
  CHECK(r == 0 || r == WF_ECLOSED);
  if (r == 0) {
    R.replied = R.head_sent = R.ended = 1;
    R.status = status;
    R.clen = (int64_t)n;
    memcpy(R.body, msg, n);
    R.blen = n;
  }
}

static void st_end(void) {
  if (!R.head_sent) R.end_no_head = 1;
  R.ended = 1;
  R.in_call++;
  wf_httpd_stream_end(R.st);
  R.in_call--;
}

static void st_abort(void) {
  R.aborted = 1;
  R.in_call++;
  wf_httpd_stream_abort(R.st);
  R.in_call--;
}

static void later_chunked_head(void) { st_head(200, -1); }
static void later_reply(void) { st_reply(R.seed & 1 ? 404 : 200); }

/* The next step of the producer, on each drain. */
static void produce(void) {
  switch (R.act) {
    case A_LENGTH:
    case A_CHUNKED:
    case A_END_IN_FLIGHT:
      if (R.next < R.npieces_out) {
        if (st_write(R.next++) != 0) return;
        if (R.act == A_END_IN_FLIGHT && R.next == R.npieces_out) st_end();
      } else if (!R.ended) {
        st_end();
      }
      break;
    case A_ABORT_LATER:
      if (R.next++ == 0) {
        if (st_write(0) == 0) later(st_abort, 1);
      }
      break;
    case A_HEAD_END:
      CHECK(!"a drain after the end");
      break;
    default:
      CHECK(!"a drain without a write");
  }
}

static void on_drain(wf_httpd_stream_t *st, void *data) {
  CHECK(st == R.st && data == &R);
  CHECK(R.in_call == 0 && !R.in_handler);
  CHECK(R.closes == 0);
  R.drains++;
  produce();
}

static void on_close(wf_httpd_stream_t *st, int completed, void *data) {
  CHECK(st == R.st && data == &R);
  CHECK(R.in_call == 0 && !R.in_handler);
  CHECK(R.closes == 0);
  R.closes++;
  R.completed = completed;
  uv_idle_stop(&tick);
}

static void on_tick(uv_idle_t *t) {
  if (--R.ticks > 0) return;
  uv_idle_stop(t);
  CHECK(R.closes == 0);
  R.later();
}

/* ---- the handler --------------------------------------------------------------------- */

static void check_value(const char *v) {
  if (!v) return;
  size_t n = strlen(v);
  CHECK(n <= MAX_HEADER_VALUE);
  CHECK(!memchr(v, '\r', n) && !memchr(v, '\n', n));
}

static void handler(wf_httpd_req_t *req, wf_httpd_resp_t *resp, void *data) {
  static const wf_httpd_stream_cbs_t cbs = {.on_drain = on_drain, .on_close = on_close};
  static const int statuses[] = {304, 404, 416, 503, 299, 401, 206, 500};
  CHECK(data == &R);
  CHECK(!R.in_handler && R.in_call == 0);
  R.calls++;
  CHECK(R.calls == 1);
  CHECK(req->path && req->query);
  CHECK(!strchr(req->path, '?') && !strchr(req->path, '#'));
  CHECK(!strchr(req->query, '#'));
  check_value(req->authorization);
  check_value(req->range);
  check_value(req->if_none_match);
  CHECK(!req->tls && !req->peer_verified);
  R.head_only = req->head_only;
  const unsigned char *p = (const unsigned char *)req->path;
  unsigned a = p[0] ? p[1] : 0;
  R.act = (enum act)(a % A_COUNT);
  R.seed = p[0] && p[1] ? p[2] : 0;
  R.in_handler = 1;
  if (R.act == A_SYNC || R.act == A_STATUS) {
    R.sync = 1;
    if (R.act == A_SYNC) {
      CHECK(wf_buf_printf(&resp->body, "path=%.200s query=%.200s auth=%zu range=%zu inm=%zu\n",
                          req->path, req->query,
                          req->authorization ? strlen(req->authorization) + 1 : 0,
                          req->range ? strlen(req->range) + 1 : 0,
                          req->if_none_match ? strlen(req->if_none_match) + 1 : 0) == 0);
      resp->headers = "X-Fuzz: 1\r\nX-Other: a b\r\n";
    } else {
      resp->status = statuses[R.seed % (sizeof statuses / sizeof statuses[0])];
      resp->content_type = "application/json";
      if (R.seed & 1) CHECK(wf_buf_printf(&resp->body, "{\"status\":%d}", resp->status) == 0);
    }
    R.sync_status = resp->status;
    CHECK(resp->body.len <= sizeof R.sync_body);
    if (resp->body.len) memcpy(R.sync_body, resp->body.data, resp->body.len);
    R.sync_len = resp->body.len;
    R.in_handler = 0;
    return;
  }
  R.st = wf_httpd_stream(req, &cbs, &R);
  CHECK(R.st != NULL);
  CHECK(wf_httpd_stream(req, &cbs, &R) == NULL);
  R.npieces_out = 1 + R.seed % 4;
  switch (R.act) {
    case A_LENGTH: {
      int64_t total = 0;
      for (size_t k = 0; k < R.npieces_out; k++) total += (int64_t)piece_len(k);
      st_head(200, total);
      break;
    }
    case A_CHUNKED:
      later(later_chunked_head, 1 + (int)(R.seed % 3));
      break;
    case A_REPLY_LATER:
      later(later_reply, 1 + (int)(R.seed % 3));
      break;
    case A_REPLY_NOW:
      st_reply(503);
      break;
    case A_ABORT_NOW:
      st_abort();
      R.in_call++;
      CHECK(wf_httpd_stream_head(R.st, 200, NULL, -1, NULL) == WF_ECLOSED);
      CHECK(wf_httpd_stream_write(R.st, "x", 1) == WF_ECLOSED);
      R.in_call--;
      break;
    case A_ABORT_LATER:
    case A_END_IN_FLIGHT:
      st_head(206, -1);
      break;
    case A_END_NO_HEAD:
      st_end();
      break;
    case A_HEAD_END:
      if (st_head(200, 0) == 0) st_end();
      break;
    default:
      CHECK(!"unreachable");
  }
  R.in_handler = 0;
}

/* ---- the client ------------------------------------------------------------------------ */

static void on_pipe_closed(uv_handle_t *h) { R.pipe_state = 3; }

static void client_close(void) {
  if (R.pipe_state != 1) return;
  R.pipe_state = 2;
  uv_close((uv_handle_t *)&R.pipe, on_pipe_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  static char sink[65536];
  if (R.inlen < sizeof R.in) *buf = uv_buf_init(R.in + R.inlen, (unsigned)(sizeof R.in - R.inlen));
  else *buf = uv_buf_init(sink, sizeof sink);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  if (n == 0) return;
  if (n < 0) {
    R.eof = 1;
    client_close();
    return;
  }
  if (buf->base == R.in + R.inlen) R.inlen += (size_t)n;
  else R.in_over = 1;
  if (R.end == E_LEAVE) {
    R.left = 1;
    client_close();
  }
}

static size_t pending(int fd) {
  int n = 0;
  CHECK(ioctl(fd, FIONREAD, &n) == 0);
  return (size_t)n;
}

/* One step of the client before each loop iteration. */
static void client_step(void) {
  if (R.pipe_state != 1 || R.half_closed) return;
  if (R.piece < R.npieces) {
    size_t b = R.cut[R.piece + 1];
    if (R.sent < b) {
      uv_buf_t buf = uv_buf_init((char *)R.req + R.sent, (unsigned)(b - R.sent));
      int w = uv_try_write((uv_stream_t *)&R.pipe, &buf, 1);
      if (w > 0) {
        R.sent += (size_t)w;
      } else if (w != UV_EAGAIN) {
        /* The server closed already (an error answer, then its close). */
        CHECK(w == UV_EPIPE || w == UV_ECONNRESET);
        R.piece = R.npieces;
        R.sent = R.len;
        return;
      }
    }
    if (R.sent == b) R.piece++;
    return; /* one piece per iteration */
  }
  if (R.end == E_HALF) {
    R.half_closed = 1;
    CHECK(shutdown(R.cfd, SHUT_WR) == 0);
    return;
  }
  /* Settled: the server has read every byte and nothing is on its way to
   * the client, so the server now waits for more. */
  wf_httpd_stats_t st;
  wf_httpd_stats(R.srv, &st);
  if (st.open == 0 || pending(R.sfd) || pending(R.cfd)) return;
  int streaming = R.st && R.closes == 0;
  if (R.end == E_SETTLE && !streaming) {
    R.half_closed = 1;
    CHECK(shutdown(R.cfd, SHUT_WR) == 0);
  } else if (R.end == E_LEAVE || (R.end == E_NOHALF && R.calls == 0 && R.inlen == 0)) {
    R.left = 1;
    client_close();
  }
}

/* ---- checking the answer --------------------------------------------------------------- */

static const char *reason_of(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

/* The value of header name in head[0..n) ("" if absent: no header the
 * server sends is empty). */
static const char *head_value(const char *head, size_t n, const char *name, char *out,
                              size_t cap) {
  char key[64];
  int kl = snprintf(key, sizeof key, "\r\n%s: ", name);
  out[0] = '\0';
  const char *h = memmem(head, n, key, (size_t)kl);
  if (!h) return out;
  h += kl;
  const char *e = memmem(h, n - (size_t)(h - head), "\r\n", 2);
  CHECK(e != NULL);
  CHECK((size_t)(e - h) < cap);
  memcpy(out, h, (size_t)(e - h));
  out[e - h] = '\0';
  return out;
}

/* De-chunks b[0..n) as the server frames it ("%zx\r\n", data, "\r\n", and
 * "0\r\n\r\n"); into out.  Returns 1 at the last chunk, 0 when the bytes end
 * before it (a cut response); malformed framing fails. */
static int dechunk(const char *b, size_t n, char *out, size_t cap, size_t *outlen) {
  size_t i = 0;
  *outlen = 0;
  for (;;) {
    size_t size = 0, digits = 0;
    while (i < n && ((b[i] >= '0' && b[i] <= '9') || (b[i] >= 'a' && b[i] <= 'f'))) {
      size = size * 16 + (size_t)(b[i] <= '9' ? b[i] - '0' : b[i] - 'a' + 10);
      i++;
      digits++;
      CHECK(digits <= 8);
    }
    if (i == n) return 0;
    CHECK(digits > 0);
    if (i + 2 > n) return 0;
    CHECK(b[i] == '\r' && b[i + 1] == '\n');
    i += 2;
    if (size == 0) {
      if (i + 2 > n) return 0;
      CHECK(b[i] == '\r' && b[i + 1] == '\n');
      CHECK(i + 2 == n); /* nothing after the last chunk */
      return 1;
    }
    size_t take = size < n - i ? size : n - i;
    CHECK(*outlen + take <= cap);
    memcpy(out + *outlen, b + i, take);
    *outlen += take;
    if (take < size) return 0;
    i += size;
    if (i + 2 > n) return 0;
    CHECK(b[i] == '\r' && b[i + 1] == '\n');
    i += 2;
  }
}

static void check_answer(unsigned bad) {
  const char *in = R.in;
  size_t n = R.inlen;
  int whole = !R.left && !R.in_over; /* the client read to the end */
  if (n == 0) {
    /* Synchronous answers go out whatever the client does next. */
    CHECK(!R.sync && !bad);
    if (R.st && R.completed) CHECK(R.left);
    return;
  }
  CHECK(R.sync || bad || R.head_sent);
  CHECK(n >= 12 && memcmp(in, "HTTP/1.1 ", 9) == 0);
  CHECK(in[9] >= '1' && in[9] <= '9' && in[10] >= '0' && in[10] <= '9' && in[11] >= '0' &&
        in[11] <= '9');
  int status = (in[9] - '0') * 100 + (in[10] - '0') * 10 + (in[11] - '0');
  const char *reason = reason_of(status);
  size_t rl = strlen(reason);
  CHECK(n >= 13 + rl + 2 && in[12] == ' ' && memcmp(in + 13, reason, rl) == 0 &&
        memcmp(in + 13 + rl, "\r\n", 2) == 0);
  /* The head went out in one write, so the client has all of it. */
  const char *end = memmem(in, n, "\r\n\r\n", 4);
  CHECK(end != NULL);
  size_t hl = (size_t)(end - in) + 2; /* up to the last header's CRLF */
  const char *body = end + 4;
  size_t blen = n - (size_t)(body - in);
  char v[128], cl[32], te[32];
  CHECK(head_value(in, hl, "Content-Type", v, sizeof v)[0]);
  CHECK(strcmp(head_value(in, hl, "Cache-Control", v, sizeof v), "no-store") == 0);
  CHECK(strcmp(head_value(in, hl, "Connection", v, sizeof v), "close") == 0);
  head_value(in, hl, "Content-Length", cl, sizeof cl);
  head_value(in, hl, "Transfer-Encoding", te, sizeof te);
  CHECK(!cl[0] != !te[0]);
  if (te[0]) CHECK(strcmp(te, "chunked") == 0);
  if (status == 405) CHECK(strcmp(head_value(in, hl, "Allow", v, sizeof v), "GET, HEAD") == 0);

  const char *want;
  size_t want_len;
  int head_only = R.head_only;
  if (bad) {
    /* An error answer: the handler never ran; its body says the status. */
    static char msg[96];
    CHECK(!R.calls);
    CHECK(status == 400 || status == 405 || status == 413 || status == 431);
    want_len = (size_t)snprintf(msg, sizeof msg, "%d %s\n", status, reason);
    want = msg;
    head_only = 0; /* the method was not looked at */
  } else if (R.sync) {
    CHECK(status == R.sync_status);
    want = R.sync_body;
    want_len = R.sync_len;
  } else {
    CHECK(R.head_sent);
    CHECK(status == R.status);
    if (R.chunked) {
      CHECK(te[0] && !R.replied);
      char dec[sizeof R.body];
      size_t dl;
      int last = dechunk(body, blen, dec, sizeof dec, &dl);
      CHECK(dl <= R.blen && memcmp(dec, R.body, dl) == 0);
      if (head_only) CHECK(blen == 0);
      if (R.completed && whole && !head_only) CHECK(last && dl == R.blen);
      if (last) CHECK(R.ended);
      return;
    }
    want = R.body;
    want_len = R.blen;
    CHECK(R.clen >= 0);
    if (R.completed && !head_only) CHECK((int64_t)want_len == R.clen);
  }
  /* Content-Length: the body, or a prefix of it for a client that left. */
  CHECK(cl[0]);
  CHECK(strtoull(cl, NULL, 10) == (unsigned long long)(R.sync || bad ? want_len : (size_t)R.clen));
  if (head_only) {
    CHECK(blen == 0);
    return;
  }
  CHECK(blen <= want_len && memcmp(body, want, blen) == 0);
  if (whole && (R.sync || bad || R.completed)) CHECK(blen == want_len);
}

/* ---- the run ---------------------------------------------------------------------------- */

static void count_handle(uv_handle_t *h, void *arg) { (*(int *)arg)++; }

static wf_httpd_t *start(size_t max_head) {
  wf_httpd_opts_t o = {.max_head = max_head, .timeout_ms = 600000, .stream_stall_ms = 600000};
  wf_httpd_t *s = NULL;
  char err[256];
  CHECK(wf_httpd_start(&loop, "127.0.0.1:0", &o, handler, &R, &s, err, sizeof err) == 0);
  return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  wf_log_setup(WF_LOG_ERROR, 0);
  CHECK(uv_loop_init(&loop) == 0);
  servers[0] = start(0);
  servers[1] = start(256);
  uv_idle_init(&loop, &tick);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4 || size > FUZZ_MAX_INPUT) return 0;
  memset(&R, 0, sizeof R);
  R.end = (enum end)(data[0] & 3);
  R.srv = servers[(data[0] >> 2) & 1];
  R.req = (const char *)data + 4;
  R.len = size - 4;
  /* Up to four pieces at the three cut points, in order. */
  size_t c[3];
  for (int i = 0; i < 3; i++) c[i] = R.len * data[1 + i] / 256;
  for (int i = 0; i < 3; i++)
    for (int j = i + 1; j < 3; j++)
      if (c[j] < c[i]) {
        size_t t = c[i];
        c[i] = c[j];
        c[j] = t;
      }
  R.cut[0] = 0;
  R.npieces = 0;
  for (int i = 0; i < 3; i++)
    if (c[i] > R.cut[R.npieces]) R.cut[++R.npieces] = c[i];
  if (R.len > R.cut[R.npieces] || R.npieces == 0) R.cut[++R.npieces] = R.len;

  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  wf_httpd_stats(R.srv, &R.before);
  R.sfd = sv[0];
  R.cfd = sv[1];
  CHECK(wf__httpd_adopt(R.srv, sv[0]) == 0);
  CHECK(uv_pipe_init(&loop, &R.pipe, 0) == 0);
  CHECK(uv_pipe_open(&R.pipe, sv[1]) == 0);
  R.pipe_state = 1;
  CHECK(uv_read_start((uv_stream_t *)&R.pipe, on_alloc, on_read) == 0);

  wf_httpd_stats_t st;
  for (int iter = 0;; iter++) {
    CHECK(iter < MAX_ITERS); /* a server that waits for a deadline: it hangs */
    client_step();
    uv_run(&loop, UV_RUN_NOWAIT);
    wf_httpd_stats(R.srv, &st);
    if (R.pipe_state == 3 && st.open == 0 && (!R.st || R.closes) && !uv_is_active((uv_handle_t *)&tick))
      break;
  }
  /* The connection's close callbacks (it is freed in the last). */
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_run(&loop, UV_RUN_NOWAIT);
  int handles = 0;
  uv_walk(&loop, count_handle, &handles);
  CHECK(handles == 3); /* two listeners and the idle handle */

  CHECK(st.open == 0);
  CHECK(st.accepted == R.before.accepted + 1);
  CHECK(st.timeouts == R.before.timeouts);
  CHECK(st.rejected == R.before.rejected);
  CHECK(st.bad >= R.before.bad && st.bad <= R.before.bad + 1);
  unsigned bad = (unsigned)(st.bad - R.before.bad);
  CHECK(R.calls <= 1);
  if (bad) CHECK(R.calls == 0);
  if (R.st) {
    CHECK(R.closes == 1);
    /* A client that stays to the end sees every stream complete but those
     * the producer gave up. */
    if (R.end == E_SETTLE || R.end == E_NOHALF)
      CHECK(R.completed == !(R.aborted || R.end_no_head));
    if (R.aborted || R.end_no_head) CHECK(!R.completed);
  }
  check_answer(bad);
  return 0;
}
