/*
 * etcd: a client for etcd v3's JSON gateway (/v3/...) on top of http/.
 * It knows nothing of steps.  Keys and values are raw bytes here; base64 and
 * the gateway's int64-as-string quirks stay inside this module.
 *
 * Endpoints: several URLs fail over in turn.  A unary call that fails on
 * transport (refused, reset, timeout) is retried once on each other endpoint
 * before its callback reports the error; callers own any longer retry.
 *
 * Every callback fires exactly once, on a later loop iteration than the call
 * that started it, with err = 0 or a negative UV_E* / WF_E* code; with
 * UV_ECANCELED after wf_etcd_close().  Pointers handed to callbacks are
 * borrowed and valid only during the call.
 *
 * The starting functions return 0 when the call is under way (its callback
 * will fire), or, with no callback ever: UV_EINVAL for bad arguments,
 * WF_ECLOSED once wf_etcd_close() was called.  A 503 / gRPC "unavailable"
 * answer fails over like a transport error.  A retried put_if (first attempt
 * timed out but was applied) reports a conflict whose `current` is the
 * caller's own value.
 *
 * Authentication (opts user/password): the client gets a token from
 * /v3/auth/authenticate before its first call and sends it as
 * `Authorization` on every request, watches included.  Calls issued while no
 * token is held wait for the one authenticate in flight.  A call answered
 * "invalid auth token" (gRPC Unauthenticated / HTTP 401: the token expired or
 * etcd restarted) authenticates again and is resent once.  When etcd refuses
 * the credentials, the waiting calls fail with WF_EETCD and wf_etcd_errmsg()
 * says "etcd authentication as USER failed: ..."; the next call tries again.
 */
#ifndef WF_ETCD_H
#define WF_ETCD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct wf_etcd_s wf_etcd_t;
typedef struct wf_etcd_watch_s wf_etcd_watch_t;

typedef struct wf_etcd_opts_s {
  const char *const *endpoints;  /* "http://127.0.0.1:2379", ...; copied */
  size_t nendpoints;
  uint64_t request_timeout_ms;   /* unary calls; default 5000 */
  uint64_t connect_timeout_ms;   /* default 3000 */
  /* A watch that received nothing (no event, no progress notification) for
   * this long probes its endpoint; if the probe fails the watch reconnects
   * (see the watch section).  Default 10000; UINT64_MAX = never. */
  uint64_t watch_idle_ms;
  /* etcd authentication: both or neither (NULL).  Copied; the password copy
   * is wiped when the client is freed and never appears in a log or in
   * wf_etcd_errmsg(). */
  const char *user;
  const char *password;
  /* TLS for https:// endpoints (PEM files, read by wf_etcd_create): the CA
   * that signed etcd's certificate (NULL = the system trust store), and a
   * client certificate and key for --client-cert-auth (both or neither).
   * Ignored for http:// endpoints. */
  const char *tls_ca_file;
  const char *tls_cert_file;
  const char *tls_key_file;
  /* https:// endpoints: WF_HTTP2_AUTO (0) speaks HTTP/2 where etcd offers
   * it (one connection per endpoint), WF_HTTP2_OFF HTTP/1.1 only. */
  int http2;
} wf_etcd_opts_t;

typedef struct wf_etcd_kv_s {
  const char *key;    /* NUL-terminated (keys may not contain NUL here) */
  size_t key_len;
  const char *value;  /* NUL-terminated copy; value_len is exact */
  size_t value_len;
  int64_t create_revision;
  int64_t mod_revision;
  int64_t version;
  int64_t lease;
} wf_etcd_kv_t;

/* Creates the client; NULL if no endpoint parses. */
wf_etcd_t *wf_etcd_create(uv_loop_t *loop, const wf_etcd_opts_t *opts);
/* Fails every pending call with UV_ECANCELED, stops every watch (no further
 * watch callbacks), closes connections, frees the client, then calls cb
 * (may be NULL; never from inside this call).  Its watch handles are
 * released too: do not use them afterwards. */
void wf_etcd_close(wf_etcd_t *e, void (*cb)(void *data), void *data);
/* Text of the last etcd/HTTP error seen (e.g. "etcdserver: requested lease not
 * found"), valid during a callback that reported WF_EETCD/WF_EHTTP. */
const char *wf_etcd_errmsg(const wf_etcd_t *e);
/* The endpoint in use now (for logs). */
const char *wf_etcd_endpoint(const wf_etcd_t *e);

/* ---- counters (for /metrics) ---------------------------------------------------
 * Every HTTP attempt of a unary call counts as one request of its endpoint
 * and operation (a failover retry and each list page are attempts of their
 * own); it is an error when it failed on transport or etcd answered non-2xx
 * (a failed txn compare is an answer, not an error).  Watches are not
 * requests here; their reconnects are counted apart. */
typedef void (*wf_etcd_stat_cb)(const char *endpoint, const char *op, uint64_t requests,
                                uint64_t errors, void *data);
/* Calls cb once per endpoint and operation ("range", "put", "txn",
 * "deleterange", "compaction", "lease_grant", "lease_keepalive",
 * "lease_revoke"), zeros included; strings borrowed for the call. */
void wf_etcd_stats(const wf_etcd_t *e, wf_etcd_stat_cb cb, void *data);
/* Calls cb once per endpoint with the protocol its requests go over now:
 * "h2" (one HTTP/2 connection carries them all) or "http/1.1"; strings
 * borrowed for the call. */
typedef void (*wf_etcd_endpoint_cb)(const char *endpoint, const char *protocol, void *data);
void wf_etcd_endpoints(const wf_etcd_t *e, wf_etcd_endpoint_cb cb, void *data);
/* Watch streams that broke (or never became live) and were retried. */
uint64_t wf_etcd_watch_reconnects(const wf_etcd_t *e);
/* 1 if the last unary attempt got an answer from etcd that is not a 5xx
 * (an etcd error such as "lease not found" counts as an answer); 0 if it
 * failed on transport or with a 5xx, or none was made yet. */
int wf_etcd_reachable(const wf_etcd_t *e);

/* Prefix helper: writes the range_end for a prefix (last byte + 1) into out
 * (plen bytes).  Returns its length.  A prefix of only 0xff bytes gives "\0"
 * (length 1: no upper bound); the empty prefix gives 0 (nothing written:
 * use "\0", as wf_etcd_list and wf_etcd_watch do). */
size_t wf_etcd_prefix_end(const char *prefix, size_t plen, char *out);

/* ---- range -------------------------------------------------------------- */
typedef struct wf_etcd_range_opts_s {
  int64_t limit;       /* 0 = no limit */
  int64_t revision;    /* 0 = latest */
  int keys_only;
  int count_only;
} wf_etcd_range_opts_t;

typedef struct wf_etcd_range_res_s {
  int64_t revision;    /* header.revision */
  const wf_etcd_kv_t *kvs;
  size_t nkvs;
  int more;
  int64_t count;
} wf_etcd_range_res_t;

typedef void (*wf_etcd_range_cb)(int err, const wf_etcd_range_res_t *res, void *data);
/* range_end NULL = the single key; res is NULL when err != 0. */
int wf_etcd_range(wf_etcd_t *e, const char *key, size_t klen, const char *range_end,
                  size_t relen, const wf_etcd_range_opts_t *opts, wf_etcd_range_cb cb,
                  void *data);

/* ---- paginated list of a prefix, at one pinned revision -----------------
 * Pages of page_size keys: the first page's header.revision is sent as
 * `revision` on every later page so the pages form one snapshot.  on_page
 * fires per page (kvs borrowed); on_done fires last with the snapshot
 * revision (watch from revision + 1). */
typedef void (*wf_etcd_page_cb)(const wf_etcd_kv_t *kvs, size_t n, void *data);
typedef void (*wf_etcd_list_done_cb)(int err, int64_t revision, void *data);
int wf_etcd_list(wf_etcd_t *e, const char *prefix, size_t plen, int64_t page_size,
                 wf_etcd_page_cb on_page, wf_etcd_list_done_cb on_done, void *data);

/* ---- writes ----------------------------------------------------------------- */
typedef void (*wf_etcd_put_cb)(int err, int64_t revision, void *data);
/* lease 0 = none. */
int wf_etcd_put(wf_etcd_t *e, const char *key, size_t klen, const char *value, size_t vlen,
                int64_t lease, wf_etcd_put_cb cb, void *data);

/* Compare-and-put: succeeds only if the key's mod_revision equals
 * `mod_revision` (0 = the key must not exist).  On a failed compare,
 * `current` is the key's present value (NULL if it is gone).  revision is the
 * header revision (for a success: the key's new mod_revision). */
typedef void (*wf_etcd_txn_cb)(int err, int succeeded, int64_t revision,
                               const wf_etcd_kv_t *current, void *data);
int wf_etcd_put_if(wf_etcd_t *e, const char *key, size_t klen, int64_t mod_revision,
                   const char *value, size_t vlen, wf_etcd_txn_cb cb, void *data);

typedef void (*wf_etcd_delete_cb)(int err, int64_t deleted, int64_t revision, void *data);
/* range_end NULL = the single key. */
int wf_etcd_delete(wf_etcd_t *e, const char *key, size_t klen, const char *range_end,
                   size_t relen, wf_etcd_delete_cb cb, void *data);

/* For tests and tools: compact the history up to revision. */
int wf_etcd_compact(wf_etcd_t *e, int64_t revision, wf_etcd_put_cb cb, void *data);

/* ---- leases ------------------------------------------------------------------ */
typedef void (*wf_etcd_lease_cb)(int err, int64_t id, int64_t ttl, void *data);
int wf_etcd_lease_grant(wf_etcd_t *e, int64_t ttl, wf_etcd_lease_cb cb, void *data);
/* One renewal.  ttl == 0 in the callback (with err == 0) means the lease is
 * gone: etcd answers an unknown lease with no TTL. */
int wf_etcd_lease_keepalive(wf_etcd_t *e, int64_t id, wf_etcd_lease_cb cb, void *data);
int wf_etcd_lease_revoke(wf_etcd_t *e, int64_t id, wf_etcd_put_cb cb, void *data);

/* ---- watch ---------------------------------------------------------------------
 * One HTTP/1.1 connection per watch (the gateway cannot do duplex over 1.1).
 * The stream is newline-delimited JSON, read across chunk boundaries with a
 * bounded line buffer; the watch asks for fragmented responses so no message
 * outgrows it.  After any disconnect or a bare {"error":...} it reconnects by
 * itself (capped exponential backoff with jitter, failing over endpoints) and
 * resumes from the last seen mod_revision + 1, so no event is lost or
 * repeated.  When etcd says the resume revision is compacted, the watch stops
 * and on_compacted fires: the owner must re-list and call
 * wf_etcd_watch_restart() with the list's revision + 1.
 *
 * Stalls: a frozen etcd (SIGSTOP, a hung disk) or a black-holed connection
 * keeps a watch open and silent, which looks exactly like a quiet prefix.
 * So the watch asks for progress notifications and, since etcd sends those
 * only every 10 minutes by default, keeps its own deadline: after
 * opts.watch_idle_ms without a byte it sends a cheap probe (a count-only
 * range of the prefix key) to the same endpoint with a short timeout.  If
 * the probe fails on transport, the watch logs the stall once, drops the
 * connection and reconnects from its resume revision like after any break. */
enum wf_etcd_event_type { WF_ETCD_PUT = 0, WF_ETCD_DELETE = 1 };

typedef struct wf_etcd_event_s {
  enum wf_etcd_event_type type;
  wf_etcd_kv_t kv;     /* DELETE: only key and mod_revision are set */
} wf_etcd_event_t;

typedef struct wf_etcd_watch_cbs_s {
  /* A batch of events in revision order (borrowed). */
  void (*on_events)(wf_etcd_watch_t *w, const wf_etcd_event_t *ev, size_t n, void *data);
  /* The resume revision is compacted; the watch is idle until restarted. */
  void (*on_compacted)(wf_etcd_watch_t *w, int64_t compact_revision, void *data);
  /* Optional: connection state changes, for logs and readiness.  connected=1
   * once etcd confirmed the watch ("created"); 0 with the error when it drops. */
  void (*on_state)(wf_etcd_watch_t *w, int connected, int err, void *data);
} wf_etcd_watch_cbs_t;

/* Watches every key with `prefix` from start_revision (0 = now).  cbs copied;
 * on_events is required.  NULL for bad arguments or a closing client.
 * Events are delivered per gateway message as they arrive, fragments too
 * (the resume position then remembers how many events of a partly delivered
 * revision were seen, so a break inside one revision neither loses nor
 * repeats any).  on_state fires only on changes: 1 on each "created" after a
 * 0 (or first), 0 once per outage, not per retry. */
wf_etcd_watch_t *wf_etcd_watch(wf_etcd_t *e, const char *prefix, size_t plen,
                               int64_t start_revision, const wf_etcd_watch_cbs_t *cbs,
                               void *data);
/* Drops the current connection (if any) and watches again from start_revision. */
void wf_etcd_watch_restart(wf_etcd_watch_t *w, int64_t start_revision);
/* Stops the watch: no callback fires after this returns; memory is released
 * once its connection is closed. */
void wf_etcd_watch_cancel(wf_etcd_watch_t *w);
/* The next revision the watch will ask for when it (re)connects; already
 * past the batch inside on_events (at its last revision if the batch was a
 * fragment that may continue).  0 before the first "created" of a watch
 * from "now". */
int64_t wf_etcd_watch_next_revision(const wf_etcd_watch_t *w);

#endif
