/*
 * etcd-internal.h: what etcd.c, watch.c, auth.c and the parse*.c files
 * share, and what the unit tests reach past the public header for.
 *
 * The parse*.c files are pure (jansson, model/jscan and util/; no libuv, no
 * http/): parse.c reads the answers, parse-request.c writes the request
 * bodies, parse-stream.c holds the newline-delimited stream splitter and the
 * watch resume bookkeeping.  Keeping them apart lets test-etcd-parse test
 * them without a loop.
 */
#ifndef WF_ETCD_INTERNAL_H
#define WF_ETCD_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "wf/etcd.h"
#include "wf/http.h"
#include "wf/util.h"

/* A watch message is one line; with "fragment":true etcd splits responses
 * bigger than its --max-request-bytes (1.5 MiB) so a line stays far below. */
#define WF__ETCD_MAX_LINE ((size_t)8 << 20)
/* Bound on a buffered unary response (a range page).  Callers that list big
 * prefixes page them (wf_etcd_list); one unpaginated range of 100k steps is
 * ~170 MB and would fail with WF_ETOOBIG, by design. */
#define WF__ETCD_MAX_RESPONSE ((size_t)64 << 20)
/* Bound on an error body kept for the message. */
#define WF__ETCD_MAX_ERRBODY ((size_t)64 << 10)
#define WF__ETCD_ERRMSG_LEN 512

/* ---- authentication (auth.c) ------------------------------------------------
 * Something that needs a token and has none waits on this list; the one
 * authenticate in flight completes every waiter with 0 (e->token is set) or
 * an error (WF_EETCD with e->errmsg, a transport error, UV_ECANCELED on
 * close).  The callback always runs on a later loop iteration. */
typedef struct wf__etcd_auth_waiter_s wf__etcd_auth_waiter_t;
struct wf__etcd_auth_waiter_s {
  wf__etcd_auth_waiter_t *next;
  void (*cb)(wf__etcd_auth_waiter_t *wt, int err);
};

/* ---- the client (etcd.c), shared with watch.c ----------------------------- */
struct wf_etcd_s {
  uv_loop_t *loop;
  char **urls;
  wf_http_client_t **clients;  /* one per endpoint, same index as urls */
  size_t n;
  size_t cur;                  /* endpoint that worked last; calls start here */
  uint64_t request_timeout_ms;
  uint64_t connect_timeout_ms;
  uint64_t watch_idle_ms;      /* UINT64_MAX = no stall detection */
  char errmsg[WF__ETCD_ERRMSG_LEN];
  /* Authentication: user == NULL means none. */
  char *user;
  char *password;              /* wiped before it is freed */
  char *token;                 /* NULL while none is held; "" = etcd has auth off */
  unsigned token_gen;          /* bumped with every new token */
  int auth_inflight;           /* an authenticate call is under way */
  wf__etcd_auth_waiter_t *auth_waiters, **auth_tail;
  uint64_t auth_warned_ms;     /* last failure logged at warn (rate limit) */
  int auth_failing;            /* the last authenticate was refused */
  unsigned ncalls;             /* unary calls whose callback is still due */
  unsigned nwatches;           /* watches not yet freed */
  wf_etcd_watch_t *watches;    /* every live watch (for wf_etcd_close) */
  size_t clients_open;         /* http clients whose close_cb is still due */
  int closing;
  void (*close_cb)(void *data);
  void *close_data;
  /* Counters for wf_etcd_stats() (metrics): n * WF__ETCD_NOPS each, indexed
   * [endpoint * WF__ETCD_NOPS + op]; only ever incremented. */
  uint64_t *nreq, *nerr;
  uint64_t watch_reconnects;   /* watch.c conn_fail */
  int reachable;               /* the last unary attempt got a non-5xx answer */
};

/* 1 if err (from an http on_done) says the endpoint is unusable, so another
 * endpoint should be tried: refused, reset, timeout, garbage... */
int wf__etcd_transport_err(int err);
/* The endpoint ep failed on transport: move the shared "current" endpoint on
 * if it still points there, so the next call or reconnect tries another. */
void wf__etcd_endpoint_failed(wf_etcd_t *e, size_t ep);
/* Sets e->errmsg (truncated). */
void wf__etcd_set_errmsg(wf_etcd_t *e, const char *msg);
/* Frees the client once it is closing and nothing is left in flight. */
void wf__etcd_maybe_finish(wf_etcd_t *e);

/* auth.c.  1 if a request must wait for a token (auth configured, none
 * held). */
int wf__etcd_auth_needed(const wf_etcd_t *e);
/* Queues wt; starts an authenticate unless one is in flight.  0, or the
 * error of starting it (wt is not queued then and its cb never fires). */
int wf__etcd_auth_wait(wf_etcd_t *e, wf__etcd_auth_waiter_t *wt);
/* A request sent with token generation `gen` was refused as
 * unauthenticated: forget that token (not a newer one). */
void wf__etcd_auth_invalidate(wf_etcd_t *e, unsigned gen);
/* 1 if an error reply means "your token is not (or no longer) valid". */
int wf__etcd_auth_rejected(int status, int grpc_code, const char *msg);
/* Fills hdrs with the JSON content type and, when with_token and a token
 * is held, its Authorization header; records the token generation the
 * request carries in *gen.  Returns the number of headers.  hdrs[1].value
 * borrows e->token: send the request before the token can change. */
size_t wf__etcd_auth_headers(const wf_etcd_t *e, wf_http_header_t hdrs[2], int with_token,
                             unsigned *gen);
/* Frees the auth state (wf__etcd_maybe_finish). */
void wf__etcd_auth_free(wf_etcd_t *e);
/* {"name":...,"password":...}, malloc'd; built here rather than with jansson
 * so that every copy of the password is one we wipe (wf__etcd_wipe_free). */
char *wf__etcd_req_auth(const char *user, const char *password, size_t *len);
void wf__etcd_wipe_free(char *s);
/* etcd.c, for auth.c: starts POST /v3/auth/authenticate (never waits for a
 * token itself); done fires once with 0 and the malloc'd token, or an error.
 * The body is wiped after use. */
int wf__etcd_authenticate(wf_etcd_t *e, void (*done)(wf_etcd_t *e, int err, char *token));

/* etcd.c, for watch.c: a count-only range of one key on endpoint ep only
 * (no failover: the question is whether *that* member answers), with its own
 * timeout.  The callback fires like wf_etcd_range's. */
int wf__etcd_probe(wf_etcd_t *e, size_t ep, const char *key, size_t klen, uint64_t timeout_ms,
                   wf_etcd_range_cb cb, void *data);

/* watch.c: stops every watch silently (wf_etcd_close). */
void wf__etcd_watch_cancel_all(wf_etcd_t *e);
/* Test hook: aborts the watch's current connection as if the peer had broken
 * it; the watch reconnects and resumes like after any other disconnect. */
void wf__etcd_watch_drop(wf_etcd_watch_t *w);

/* ---- JSON scalars and KVs (parse.c) ------------------------------------------ */
/* int64 from the gateway: a JSON string of decimal digits (what it sends), a
 * JSON integer (accepted too), or absent/null (= 0, proto3 omits defaults).
 * 0 or WF_EPROTO. */
int wf__etcd_i64(const json_t *v, int64_t *out);
/* Decodes a base64 bytes field; absent = empty.  *out is malloc'd and
 * NUL-terminated.  0 or WF_EPROTO. */
int wf__etcd_bytes(const json_t *v, char **out, size_t *len);
/* Parses one mvccpb.KeyValue into kv (key/value malloc'd; free with
 * wf__etcd_kv_clear, also after a failure).  0 or WF_EPROTO. */
int wf__etcd_kv_parse(const json_t *o, wf_etcd_kv_t *kv);
void wf__etcd_kv_clear(wf_etcd_kv_t *kv);
/* Deep copy (for callers that keep a kv past a callback). */
void wf__etcd_kv_copy(wf_etcd_kv_t *dst, const wf_etcd_kv_t *src);
/* An array of KeyValue (absent = none).  *kvs malloc'd (NULL when n == 0). */
int wf__etcd_kvs_parse(const json_t *arr, wf_etcd_kv_t **kvs, size_t *n);
void wf__etcd_kvs_free(wf_etcd_kv_t *kvs, size_t n);

/* ---- request bodies (parse-request.c): malloc'd compact JSON, *len set ------------------- */
char *wf__etcd_req_range(const char *key, size_t klen, const char *end, size_t elen,
                         const wf_etcd_range_opts_t *o, size_t *len);
char *wf__etcd_req_put(const char *key, size_t klen, const char *val, size_t vlen,
                       int64_t lease, size_t *len);
char *wf__etcd_req_put_if(const char *key, size_t klen, int64_t mod_revision,
                          const char *val, size_t vlen, size_t *len);
char *wf__etcd_req_delete(const char *key, size_t klen, const char *end, size_t elen,
                          size_t *len);
char *wf__etcd_req_compact(int64_t revision, size_t *len);
char *wf__etcd_req_lease_grant(int64_t ttl, size_t *len);
char *wf__etcd_req_lease_id(int64_t id, size_t *len);  /* keepalive, revoke */
char *wf__etcd_req_watch(const char *key, size_t klen, const char *end, size_t elen,
                         int64_t start_revision, size_t *len);

/* ---- fast path (parse.c) -------------------------------------------------------------------
 * List pages (RANGE answers), txn answers and watch messages are first read
 * with the JSON scanner (model/jscan.c), which accepts only plain gateway
 * JSON and otherwise hands the text to jansson, whose results and errors stay
 * the reference.  The differential tests (test/etcd/test-parse.c, the etcd
 * fuzz targets) set this to 0 to compare the two paths; nothing else touches
 * it.  It is a process-wide switch, not a member of wf_etcd_t, because the
 * parsers are pure functions that take no client. */
extern int wf__etcd_fast_json;

/* ---- responses (parse.c) ------------------------------------------------------------ */
enum wf__etcd_op {
  WF__ETCD_RANGE, WF__ETCD_PUT, WF__ETCD_TXN, WF__ETCD_DELETE, WF__ETCD_COMPACT,
  WF__ETCD_GRANT, WF__ETCD_KEEPALIVE, WF__ETCD_REVOKE, WF__ETCD_AUTH,
};
/* Room for every op above, for the metrics counters (etcd.c checks). */
#define WF__ETCD_NOPS 16

typedef struct wf__etcd_resp_s {
  int64_t revision;   /* header.revision */
  wf_etcd_kv_t *kvs;  /* RANGE: the kvs; TXN: the current kv on a failed compare */
  size_t nkvs;
  int more;           /* RANGE */
  int64_t count;      /* RANGE */
  int succeeded;      /* TXN */
  int64_t deleted;    /* DELETE */
  int64_t id, ttl;    /* GRANT, KEEPALIVE (ttl 0 = the lease is gone) */
  char *token;        /* AUTH: malloc'd, printable ASCII only */
} wf__etcd_resp_t;

/* Parses a 2xx body for op.  0, WF_EPROTO (msg says why) or, for a keepalive
 * stream that carried a bare {"error":{...}}, WF_EETCD (msg = its message). */
int wf__etcd_resp_parse(enum wf__etcd_op op, const char *body, size_t len,
                        wf__etcd_resp_t *r, char *msg, size_t msglen);
void wf__etcd_resp_clear(wf__etcd_resp_t *r);

/* Classifies a non-2xx reply: {"error","message","code"} -> WF_EETCD, or
 * WF_ECOMPACTED for gRPC code 11 (OutOfRange); anything else -> WF_EHTTP.
 * msg gets the text.  *grpc_code gets the code (-1 when none). */
int wf__etcd_error_parse(int status, const char *body, size_t len, char *msg, size_t msglen,
                         int *grpc_code);

/* ---- newline-delimited stream splitter (parse-stream.c) --------------------------------------
 * Feeds arbitrary chunks; calls cb once per complete line (without "\n" and
 * a trailing "\r"; blank lines skipped).  A line that would outgrow max makes
 * feed return WF_ETOOBIG.  A non-zero return from cb stops the feed at once
 * and is returned: the owner uses it when the callback dropped the stream,
 * and must reset the splitter before feeding it a new one. */
typedef int (*wf__etcd_line_cb)(const char *line, size_t n, void *data);
typedef struct wf__etcd_lines_s {
  wf_buf_t buf;  /* the unterminated tail of the previous chunks */
} wf__etcd_lines_t;
void wf__etcd_lines_init(wf__etcd_lines_t *l, size_t max);
void wf__etcd_lines_finish(wf__etcd_lines_t *l);
void wf__etcd_lines_reset(wf__etcd_lines_t *l);
int wf__etcd_lines_feed(wf__etcd_lines_t *l, const char *p, size_t n, wf__etcd_line_cb cb,
                        void *data);
/* End of stream: delivers an unterminated last line (etcd ends a stream with
 * a bare {"error":...} and no newline). */
int wf__etcd_lines_flush(wf__etcd_lines_t *l, wf__etcd_line_cb cb, void *data);

/* ---- watch messages (parse.c) ------------------------------------------------------------ */
typedef struct wf__etcd_watch_msg_s {
  int error;            /* a bare {"error":{...}} (server shutting down...) */
  int created;
  int canceled;
  int fragment;         /* more fragments of this response follow */
  int64_t header_revision;
  int64_t compact_revision;
  wf_etcd_event_t *events;
  size_t nevents;
  char msg[256];        /* error message / cancel_reason */
} wf__etcd_watch_msg_t;
/* 0 or WF_EPROTO.  Clear m afterwards in both cases. */
int wf__etcd_watch_msg_parse(const char *line, size_t n, wf__etcd_watch_msg_t *m);
void wf__etcd_watch_msg_clear(wf__etcd_watch_msg_t *m);

/* ---- watch resume bookkeeping (parse-stream.c) -----------------------------------------------------
 * Events are delivered per message, fragments included, as they arrive.  A
 * fragment can end in the middle of a revision (one txn or deleterange
 * touching many keys), so "last mod_revision + 1" is not always a safe resume
 * point: resuming there would lose the rest of that revision, resuming at it
 * would repeat what was delivered.  So the position is (rev, skip): ask etcd
 * for `rev` and drop the first `skip` events of revision rev, which were
 * delivered before the break (etcd replays a revision's events in the same
 * order).  A message without "fragment" ends at a revision boundary (etcd's
 * batching splits only between revisions), which sets skip back to 0. */
typedef struct wf__etcd_resume_s {
  int64_t rev;        /* 0 = "now" (before the first "created") */
  int64_t skip;       /* events of rev already delivered */
  int64_t drop_left;  /* replayed events of rev still to drop on this stream */
} wf__etcd_resume_t;
void wf__etcd_resume_init(wf__etcd_resume_t *r, int64_t rev);
/* A new stream asks for r->rev: arm the replay filter. */
void wf__etcd_resume_connect(wf__etcd_resume_t *r);
/* "created": a watch from "now" resumes after the revision it started at. */
void wf__etcd_resume_created(wf__etcd_resume_t *r, int64_t header_revision);
/* One event with mod_revision rev: 1 to deliver it, 0 if already delivered. */
int wf__etcd_resume_event(wf__etcd_resume_t *r, int64_t rev);
/* The end of a message with events. */
void wf__etcd_resume_msg_end(wf__etcd_resume_t *r, int fragment);
/* The revision a reconnect asks for. */
static inline int64_t wf__etcd_resume_rev(const wf__etcd_resume_t *r) { return r->rev; }

#endif
