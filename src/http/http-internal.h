/*
 * http-internal.h: what the files of the HTTP client share (docs/house-rules.md
 * rule 1).  The client behind include/wf/http.h is four files:
 *
 *   client.c          the client, its connection pool and completion queue,
 *                     and the request and connection state machines
 *                     (connect, attach, read/timer decisions, fail, close);
 *   client-message.c  one request's bytes out and its response in: the
 *                     request head, the llhttp callbacks, head and body
 *                     bounds, chunked bodies, the end of a response;
 *   client-tls.c      the glue between a connection and tls.c's memory-BIO
 *                     engine (handshake, ciphertext in, plaintext out,
 *                     flushes, close_notify);
 *   client-h2.c       HTTP/2: an https:// connection whose handshake chose
 *                     ALPN h2 becomes one nghttp2 session carrying every
 *                     request of the client as a stream;
 *   client-h2-route.c which requests go over HTTP/2 (the ALPN probe and
 *                     the requests waiting for it), and PINGs;
 *   origin.c          "http://host:port", "https://..." and "unix:///path"
 *                     parsed into a wf__http_origin_t (and the port parser
 *                     server.c shares).
 *
 * The types are open here because the state lives in two objects that all
 * three client files work on (a connection and its request); each field says
 * which file owns it where that is not client.c.  Functions named wf__http_*
 * cross files; everything else in them is static.  tls-internal.h stays the
 * interface of tls.c and tls-dl.c.  The server (server.c) shares nothing
 * with the client but the port parser and one test seam at the end.
 */
#ifndef WF_HTTP_INTERNAL_H
#define WF_HTTP_INTERNAL_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#include "tls-internal.h"
#include "wf/http.h"
#include "wf/httpd.h"
#include "wf/util.h"

/* Plaintext read buffer of a connection: what llhttp parses. */
#define WF__HTTP_READ_BUF_SIZE (64 * 1024)
/* Ciphertext read per socket read on a TLS connection: one full record
 * (16 KiB of payload plus header, MAC or tag and padding) per read. */
#define WF__HTTP_CIPHER_BUF_SIZE (16 * 1024 + 512)
#define WF__HTTP_TLS_ERR_LEN 256

/* As in libuv's uv-common.h. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- intrusive circular list (header-only, as libuv's uv__queue) ---------------- */
typedef struct wf__http_link_s {
  struct wf__http_link_s *prev, *next;
} wf__http_link_t;

static inline void wf__http_list_init(wf__http_link_t *h) { h->prev = h->next = h; }
static inline int wf__http_list_empty(const wf__http_link_t *h) { return h->next == h; }
static inline void wf__http_list_insert_after(wf__http_link_t *pos, wf__http_link_t *n) {
  n->prev = pos;
  n->next = pos->next;
  pos->next->prev = n;
  pos->next = n;
}
static inline void wf__http_list_push_front(wf__http_link_t *h, wf__http_link_t *n) {
  wf__http_list_insert_after(h, n);
}
static inline void wf__http_list_push_back(wf__http_link_t *h, wf__http_link_t *n) {
  wf__http_list_insert_after(h->prev, n);
}
static inline void wf__http_list_remove(wf__http_link_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}

/* ---- origin (origin.c) ---------------------------------------------------------- */
enum wf__http_origin_kind { ORIGIN_TCP, ORIGIN_UNIX }; /* https is ORIGIN_TCP with https set */

typedef struct wf__http_origin_s {
  enum wf__http_origin_kind kind;
  int https;         /* the origin is https:// */
  char *host;        /* TCP: name or address for getaddrinfo (no brackets) */
  char port_str[8];  /* TCP: the port in decimal, "80"/"443" when none was given */
  char *host_header; /* value of the Host header we send */
  char *path;        /* unix socket path */
  int have_addr;     /* host is a literal: addr is ready, no DNS */
  struct sockaddr_storage addr;
} wf__http_origin_t;

/* Parses origin ("http://host[:port][/]", "https://...", "unix:///path";
 * host a name, an IPv4 literal or a bracketed IPv6 literal) into *o, which
 * the caller zeroed.  0, or UV_EINVAL with *o holding nothing (whatever was
 * allocated is freed).  On success *o owns its strings: free them with
 * wf__http_origin_finish. */
int wf__http_origin_parse(wf__http_origin_t *o, const char *origin);
/* Frees what *o owns and zeroes the pointers; safe on a zeroed or finished *o. */
void wf__http_origin_finish(wf__http_origin_t *o);
/* The decimal port in s[0..n) (1 to 5 digits, nothing else): 1..65535, or 0
 * too when allow0.  Returns the port, or -1.  Shared with server.c's
 * wf_httpd_parse_addr. */
int wf__http_parse_port(const char *s, size_t n, int allow0);

/* ---- the state machines (client.c) ---------------------------------------------- */
enum wf__http_conn_state {
  CONN_CONNECTING, /* resolving, connecting or in the TLS handshake, a request attached */
  CONN_ACTIVE,     /* request written (or being written), response being read */
  CONN_IDLE,       /* in the pool; read only to notice EOF */
  CONN_WRITE_WAIT, /* plain: response done, pooled once the write callback ran */
  CONN_H2,         /* an HTTP/2 session (client-h2.c): streams, no conn->req */
  CONN_CLOSING,    /* uv_close issued; freed when the last handle reports closed */
};

enum wf__http_timer_mode {
  TM_NONE,
  TM_CONNECT,  /* connect (name resolution, TLS handshake) deadline */
  TM_RESPONSE, /* no response byte for timeout_ms */
  TM_IDLE,     /* pooled connection unused for idle_close_ms */
  TM_DRAIN,    /* 0 ms: re-feed bytes kept while the request was paused */
  TM_H2,       /* CONN_H2: client-h2.c's next deadline (streams, PINGs, idle) */
};

/* Whether the client's https:// requests go over HTTP/2 (client-h2.c). */
enum wf__http_h2_state {
  H2_UNKNOWN,  /* no session and no handshake under way that offers h2 */
  H2_PROBING,  /* h2_probe's connection offers h2; other requests wait */
  H2_LIVE,     /* h2conn is a session taking new streams */
  H2_DECLINED, /* the server chose HTTP/1.1 (or nothing): HTTP/1.1 from now on */
  H2_OFF,      /* not offered: http://, unix://, or WF_HTTP2_OFF */
};

enum wf__http_req_state {
  REQ_CONNECTING, /* waiting for its connection */
  REQ_HEAD,       /* written, waiting for the response head */
  REQ_BODY,       /* head delivered, reading the body */
  REQ_DONE,       /* on_done queued on client->done */
  REQ_DELIVERING, /* on_done running */
};

typedef struct wf__http_conn_s wf__http_conn_t;

/* An HTTP/2 PING in flight or answered (client-h2-route.c).  Kept by the
 * client, not the session: a session that closes marks its PINGs due with
 * the reason, and the client's idle handle delivers every result, so a
 * callback always runs on a later loop iteration and never goes missing. */
#define WF__HTTP_MAX_PINGS 8
enum wf__http_ping_state { PING_FREE, PING_WAITING, PING_DUE };
typedef struct wf__http_ping_s {
  enum wf__http_ping_state state;
  void (*cb)(int err, void *data); /* NULL: the session's own check (no one to tell) */
  void *data;
  wf__http_conn_t *conn; /* PING_WAITING: the session it went out on */
  uint64_t id;           /* the opaque data sent, echoed by the ACK */
  uint64_t deadline;     /* uv_now after which it failed */
  int result;            /* PING_DUE: 0 or the error */
} wf__http_ping_t;

struct wf_http_client_s {
  uv_loop_t *loop;
  char *origin;        /* as given to create, for wf_http_client_origin and logs */
  wf__http_origin_t o; /* parsed (origin.c) */
  wf__tls_ctx_t *tls;  /* https: CA, client certificate and key, loaded at create */
  char tls_err[WF__HTTP_TLS_ERR_LEN];    /* wf_http_client_last_error (client-tls.c) */
  char tls_logged[WF__HTTP_TLS_ERR_LEN]; /* last reason logged at warn: repeats go to debug */

  uint64_t connect_timeout_ms;
  unsigned max_idle;
  uint64_t idle_close_ms;

  uv_idle_t idle;        /* delivers client->done */
  wf__http_link_t reqs;  /* every request not yet freed */
  wf__http_link_t done;  /* requests whose on_done is due */
  wf__http_link_t conns; /* every connection not yet freed */
  wf__http_link_t pool;  /* idle connections, most recently used first */
  unsigned npool;
  unsigned nconns;

  /* client-h2.c */
  enum wf__http_h2_state h2_state;
  wf__http_conn_t *h2conn; /* H2_LIVE: the session new requests go on */
  wf_http_req_t *h2_probe; /* H2_PROBING: the request whose connection offers h2 */
  wf__http_link_t h2_wait; /* H2_PROBING: requests waiting to know (req->h2_link) */
  int h2_said;             /* the first session was logged at info */
  wf__http_ping_t h2_pings[WF__HTTP_MAX_PINGS];
  uint64_t h2_ping_seq;

  int closing;
  int idle_closed;
  void (*close_cb)(void *data);
  void *close_data;
};

struct wf__http_conn_s {
  wf_http_client_t *client;
  wf__http_link_t link;      /* client->conns */
  wf__http_link_t pool_link; /* client->pool while CONN_IDLE */
  enum wf__http_conn_state state;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } io;
  uv_timer_t timer;
  enum wf__http_timer_mode tmode;
  int open_handles;
  int io_inited;
  int gai_pending;
  int write_pending; /* uv_writes in flight (plain: at most one, wreq; TLS: one per flush) */
  char *wait_wbuf;   /* CONN_WRITE_WAIT: the finished request's buffer, in wreq */
  int reading;
  int in_feed;  /* llhttp is on the stack: pause/resume only set flags */
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  uv_write_t wreq;
  struct sockaddr_storage *addrs; /* resolved addresses, tried in order */
  size_t naddrs, addr_idx;
  unsigned served; /* responses completed here; > 0 means reused */

  /* client-tls.c */
  wf__tls_t *tls; /* https only, from the TCP connect on; freed with conn */
  char *cbuf;     /* https: ciphertext read buffer (WF__HTTP_CIPHER_BUF_SIZE) */
  int tls_more;   /* a pause stopped us reading plaintext out of OpenSSL */
  int tls_dead;   /* the session or the socket failed: no close_notify */
  size_t wbytes;  /* https: bytes in uv_writes not yet called back */

  /* client-h2.c */
  int h2_offer;                 /* this handshake offers ALPN h2 (the client's probe) */
  struct wf__http_h2_s *h2;     /* CONN_H2: the session; freed with conn */

  wf_http_req_t *req;
  /* per response (client-message.c; reset by wf__http_response_begin) */
  llhttp_t parser;
  int got_bytes;    /* any byte of the response arrived */
  int head_done;
  int interim;      /* parsing a 1xx that is skipped */
  int res_complete; /* on_message_complete seen */
  int keep_alive;
  int cb_err;       /* error chosen inside a parser callback */
  size_t head_bytes, head_raw;
  size_t hdr_start;
  int parser_paused;         /* llhttp stopped by a user pause; drain before reading */
  size_t pend_off, pend_len; /* unparsed bytes in rbuf while parser_paused */
  char rbuf[WF__HTTP_READ_BUF_SIZE];
};

struct wf_http_req_s {
  wf_http_client_t *client;
  wf__http_link_t link;      /* client->reqs */
  wf__http_link_t done_link; /* client->done while REQ_DONE */
  enum wf__http_req_state state;
  wf__http_conn_t *conn;
  wf_http_cbs_t cbs;
  void *data;

  char *wbuf; /* the serialized request (client-message.c), kept for a retry */
  size_t wlen;
  uint64_t timeout_ms;
  size_t max_body, max_header;
  int stream;
  int fresh; /* never pooled: new connection, closed afterwards */
  int is_head;
  int paused;
  int retried;
  uint64_t connect_deadline;

  int err;
  int status;
  wf_buf_t body;    /* buffered mode: the body so far, bounded by max_body */
  wf_buf_t headbuf; /* "name\0value\0..." of the current head */
  size_t *hoffs;    /* name/value offsets into headbuf, 2 per header */
  size_t nhdr, hcap;

  /* client-h2.c: the request as a stream (conn is then a CONN_H2), or
   * waiting in client->h2_wait (conn NULL) */
  wf__http_link_t h2_link; /* the session's streams, or client->h2_wait */
  int32_t sid;             /* stream id; 0 before it was submitted */
  wf_buf_t held;           /* stream body that came while paused (< its window) */
  size_t held_off;
  size_t body_off;         /* where the body starts in wbuf */
  size_t body_sent;
  size_t h2_hbytes;        /* head bytes so far, against max_header */
  uint64_t h2_rx;          /* uv_now of submit or of its last frame */
  int h2_got;              /* a frame of the response arrived */
  int h2_eos;              /* a frame with END_STREAM arrived */
  int h2_ended;            /* the stream ended; on_done once held is delivered */
  int h2_redispatched;     /* sent again after a GOAWAY or refusal */
};

/* 1 when a user callback (or what it called) cancelled req or closed the
 * client: conn is no longer req's active connection.  Checked after every
 * call out of the parser (docs/house-rules.md rule 10). */
static inline int wf__http_gone(const wf__http_conn_t *conn, const wf_http_req_t *req) {
  return conn->state != CONN_ACTIVE || conn->req != req;
}

/* A transport error after which a request that saw nothing of its answer,
 * on a connection that had served before, is sent once more (the server
 * closed the idle connection under it). */
static inline int wf__http_retryable(int err) {
  return err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE || err == UV_ECONNABORTED;
}

/* Text for our log lines: WF_E* codes and libuv's own. */
static inline const char *wf__http_errstr(int err) {
  return err <= WF_EPROTO ? wf_strerror(err) : uv_strerror(err);
}

/* Each of these may close conn (its memory stays until the handles' close
 * callbacks, a later loop turn) and queue req's on_done, which always runs on
 * a later loop iteration; none calls a user callback itself.  Callers look
 * at conn->state afterwards. */

/* Closes conn; it must have no request attached.  A no-op when already
 * closing.  Safe from any callback. */
void wf__http_conn_close(wf__http_conn_t *conn);
/* A pooled (idle) connection turned out unusable (EOF, an error, bytes nobody
 * asked for, why): logs why at debug and closes it. */
void wf__http_conn_drop(wf__http_conn_t *conn, const char *why);
/* A transport or protocol failure on conn: fails its request with err, or
 * retries it once on a fresh connection when a reused connection died before
 * answering; closes conn either way (just closes it without a request). */
void wf__http_conn_fail(wf__http_conn_t *conn, int err);
/* The response on conn ended (err 0) or failed: queues the request's
 * on_done and pools or closes conn. */
void wf__http_complete_req(wf__http_conn_t *conn, int err);
/* conn is connected (and through its handshake): disarms the connect or idle
 * timer, puts req on it and sends the request.  req stays owned by the
 * client; conn holds it until the response ends. */
void wf__http_attach(wf__http_conn_t *conn, wf_http_req_t *req);
/* The one place that decides whether conn's socket is read and what its
 * timer waits for (docs/house-rules.md, the traps).  May fail conn. */
void wf__http_update_read_state(wf__http_conn_t *conn);
/* uv_read_start on conn's stream with the client's read callbacks (which
 * hand TLS connections to wf__http_tls_on_read).  0, or the libuv error
 * after conn was failed with it. */
int wf__http_start_reading(wf__http_conn_t *conn);

/* ---- one message (client-message.c) --------------------------------------------- */
/* Checks opts (method, path and header names are tokens without blanks or
 * controls, values hold no CR or LF, pointers match their counts, the body
 * fits a uv_buf_t) and writes the whole request into out (initialised here;
 * the caller owns out->data on success, nothing on failure).  host_header is
 * sent as Host unless opts has one.  0, or UV_EINVAL. */
int wf__http_request_build(const char *host_header, const wf_http_req_opts_t *opts,
                           wf_buf_t *out);
/* A request goes out on conn: a fresh parser and fresh per-response state. */
void wf__http_response_begin(wf__http_conn_t *conn);
/* Parses n response bytes at p, which lie in conn->rbuf (the caller keeps
 * them there: a user pause leaves the unparsed rest in place for the drain).
 * User callbacks (on_head, on_data) run inside; the response's end completes
 * the request (wf__http_complete_req), a parse error or a bound fails conn. */
void wf__http_feed(wf__http_conn_t *conn, const char *p, size_t n);
/* The stream ended (UV_EOF, or close_notify over TLS) or failed (err) under
 * an active request: completes a body delimited by the close, else fails
 * conn with err. */
void wf__http_on_eof(wf__http_conn_t *conn, int err);

/* Sends req the way the client sends a new request: over the live h2
 * session, into the wait for one, or over HTTP/1.1 (pool or a new
 * connection).  For client-h2.c's retries and released waiters. */
void wf__http_dispatch(wf_http_client_t *c, wf_http_req_t *req);
/* Starts the client's idle handle, which delivers what is due (PING
 * results, then on_done). */
void wf__http_kick(wf_http_client_t *c);
/* Queues req's on_done with err (later iteration); it must hold no connection. */
void wf__http_queue_done(wf_http_req_t *req, int err);
/* Arms conn's one timer. */
void wf__http_timer_arm(wf__http_conn_t *conn, enum wf__http_timer_mode mode, uint64_t ms);

/* ---- TLS glue (client-tls.c) ---------------------------------------------------- */
/* TCP is up on an https connection (CONN_CONNECTING, the request attached
 * and the connect timer running): starts the session and its handshake;
 * wf__http_attach follows once it completes, from a later read callback.  A
 * TLS failure fails conn with WF_ETLS, its reason kept for
 * wf_http_client_last_error. */
void wf__http_tls_start(wf__http_conn_t *conn);
/* A read on a TLS connection: client.c's read callback hands over every one
 * but nread == 0 and those after the close began.  buf holds ciphertext in
 * conn->cbuf (the connection's; consumed during the call). */
void wf__http_tls_on_read(wf__http_conn_t *conn, ssize_t nread, const uv_buf_t *buf);
/* Moves plaintext OpenSSL holds into the parser until it needs more
 * ciphertext, the user pauses, or the response ends; conn is CONN_ACTIVE.
 * For the drain after a resume. */
void wf__http_tls_pump(wf__http_conn_t *conn);
/* Encrypts n bytes (borrowed: the plaintext stays the caller's) and sends
 * them.  0, or < 0 after conn was failed. */
int wf__http_tls_send(wf__http_conn_t *conn, const char *p, size_t n);
/* The TLS session of conn failed (why: its reason): kept for
 * wf_http_client_last_error, logged once per new reason, and conn fails
 * with WF_ETLS. */
void wf__http_tls_fail(wf__http_conn_t *conn, const char *why);
/* Sends what OpenSSL has queued for the peer.  0, or < 0 after conn was
 * failed. */
int wf__http_tls_flush(wf__http_conn_t *conn);
/* Best-effort close_notify before conn closes in good health; sends now or
 * never (uv_try_write).  A no-op for plain connections and failed sessions. */
void wf__http_tls_close_notify(wf__http_conn_t *conn);

/* ---- HTTP/2: negotiation and PINGs (client-h2-route.c) ------------------------ */
/* The next request of an https:// client in WF_HTTP2_AUTO: 1 when it was
 * taken (a stream of the live session, or a wait for the probe's ALPN), 0
 * when it goes over HTTP/1.1 (then, in H2_PROBING, it is the probe:
 * client->h2_probe). */
int wf__http_h2_route(wf_http_client_t *c, wf_http_req_t *req);
/* conn (CONN_CONNECTING, conn->req attached) finished its TLS handshake and
 * the server chose h2: conn becomes the client's session, conn->req and the
 * waiting requests its first streams. */
void wf__http_h2_start(wf__http_conn_t *conn);
/* The probe's handshake ended without h2: HTTP/1.1 from now on, the waiting
 * requests are dispatched over it. */
void wf__http_h2_declined(wf_http_client_t *c);
/* The probe request finished (err) before the server's answer to the offer
 * was known: the waiting requests fail with err, or after a cancel the next
 * one probes. */
void wf__http_h2_probe_done(wf_http_client_t *c, int err);
/* PINGs of session conn: an ACK with id came (0 if it was none of ours);
 * every one waiting on conn is due with err (the session is going); the
 * earliest deadline of those waiting (UINT64_MAX: none); those past their
 * deadline at now become due with UV_ETIMEDOUT (returns how many); 1 if
 * any waits on conn. */
void wf__http_h2_ping_acked(wf_http_client_t *c, uint64_t id);
void wf__http_h2_pings_fail(wf_http_client_t *c, wf__http_conn_t *conn, int err);
uint64_t wf__http_h2_ping_deadline(const wf_http_client_t *c, const wf__http_conn_t *conn);
int wf__http_h2_pings_expire(wf_http_client_t *c, wf__http_conn_t *conn, uint64_t now);
int wf__http_h2_pings_waiting(const wf_http_client_t *c, const wf__http_conn_t *conn);
/* The session's own check after a stream timed out: a PING that must come
 * back within ms, unless one such is out already. */
void wf__http_h2_check_ping(wf__http_conn_t *conn, uint64_t ms);
/* Runs the callbacks of every due PING; from the client's idle handle,
 * before the requests' on_done (a watch that asked learns of the stall
 * before its stream fails with the connection). */
void wf__http_h2_deliver_pings(wf_http_client_t *c);
/* 1 while a PING result waits for delivery. */
int wf__http_h2_pings_due(const wf_http_client_t *c);

/* ---- HTTP/2: the session (client-h2.c) ------------------------------------------ */
/* Makes conn (connected; through its TLS handshake, or plain in the test
 * seam) the client's session and sends the preface.  0 or UV_ENOMEM. */
int wf__http_h2_become(wf__http_conn_t *conn);
/* Puts req on session conn as a stream (or, when the session cannot take
 * it, dispatches it again). */
void wf__http_h2_attach(wf__http_conn_t *conn, wf_http_req_t *req);
/* After a change from outside nghttp2's callbacks: sends what is queued and
 * re-arms the timer; closes a session that is done. */
void wf__http_h2_after(wf__http_conn_t *conn);
/* Queues a PING with opaque data id on session conn.  0 or UV_ENOMEM. */
int wf__http_h2_send_ping(wf__http_conn_t *conn, uint64_t id);
/* Plaintext OpenSSL holds for a CONN_H2: into nghttp2, until none is left. */
void wf__http_h2_pump(wf__http_conn_t *conn);
/* n bytes of plaintext read on a CONN_H2 (the pump's, or a plain socket's
 * in the test seam) into nghttp2; a protocol error fails conn. */
void wf__http_h2_recv_plain(wf__http_conn_t *conn, const char *p, size_t n);
/* The session on conn ends (its transport failed: EOF, a read or write
 * error, TLS, a PING not answered, a protocol error; or it is done): no new
 * stream goes on it, its PINGs are due with err, each stream fails with err
 * or, when it saw nothing of its answer on a session that had served
 * before, is sent again once; conn closes. */
void wf__http_h2_fail(wf__http_conn_t *conn, int err);
/* A uv_write of a CONN_H2 completed: nghttp2 may send more. */
void wf__http_h2_written(wf__http_conn_t *conn);
/* The TM_H2 deadline of conn came. */
void wf__http_h2_on_timer(wf__http_conn_t *conn);
/* wf_http_req_resume/cancel for a stream or a waiting request; cancel
 * returns 1 when req was one (and is no longer), 0 otherwise. */
void wf__http_h2_resume(wf_http_req_t *req);
int wf__http_h2_cancel(wf_http_req_t *req);
/* wf_http_client_close: every session ends, every PING is due. */
void wf__http_h2_client_closing(wf_http_client_t *c);
/* Frees conn->h2 (conn_maybe_free). */
void wf__http_h2_free(wf__http_conn_t *conn);
/* Test seam (test/fuzz/fuzz-http2.c): makes fd, a connected stream socket,
 * a CONN_H2 of c without TLS (HTTP/2 with prior knowledge) so that what the
 * other end writes is parsed as a server's frames.  c must be an https://
 * client in WF_HTTP2_AUTO with no connection yet (client.c).  0, or a libuv
 * error (fd is then closed). */
int wf__http_h2_adopt(wf_http_client_t *c, uv_os_sock_t fd);

/* ---- the server's test seam (server.c) ------------------------------------------ */
/* Serves a connection on fd, a connected stream socket (a TCP socket, or one
 * end of socketpair(AF_UNIX, SOCK_STREAM)), exactly as one the listener
 * accepted: the same conn, deadline, parser, handler and writes.  For
 * test/fuzz/fuzz-http-request.c, which feeds each input through a
 * socketpair: no port and no TIME_WAIT per input, and it knows the server's
 * end (to see that the server has read every byte).  fd is the server's
 * from the call on, also on failure (then closed).  0, UV_EBUSY (closing,
 * or max_conns open), UV_EINVAL (no s), or uv_tcp_open's error. */
int wf__httpd_adopt(wf_httpd_t *s, uv_os_sock_t fd);

#endif
