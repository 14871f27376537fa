/*
 * parse: the gateway's JSON answers, read into wf_etcd_kv_t and the
 * wf__etcd_resp_t / wf__etcd_watch_msg_t of etcd-internal.h.  The gateway's
 * quirks live here: bytes are base64, int64 are strings, default values are
 * omitted (no "kvs" when empty, no "TTL" when 0, no "type" for a PUT event).
 * List pages, txn answers and watch messages are read first by a fast path
 * on the JSON scanner (model/jscan.c), with jansson as the reference it falls
 * back to.  Request bodies are in parse-request.c, the watch stream's line
 * splitter and resume position in parse-stream.c.  No libuv, no http/:
 * unit-tested on its own (test/etcd/test-parse.c).
 */
#include "etcd-internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/jscan.h"

/* ---- scalars ---------------------------------------------------------------------- */

int wf__etcd_i64(const json_t *v, int64_t *out) {
  *out = 0;
  if (!v || json_is_null(v)) return 0;
  if (json_is_integer(v)) {
    *out = (int64_t)json_integer_value(v);
    return 0;
  }
  if (!json_is_string(v)) return WF_EPROTO;
  const char *s = json_string_value(v);
  size_t n = json_string_length(v), i = 0;
  int neg = 0;
  if (n > 0 && s[0] == '-') {
    neg = 1;
    i = 1;
  }
  if (i == n) return WF_EPROTO;
  /* Accumulate negatively so INT64_MIN parses without overflow. */
  int64_t acc = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return WF_EPROTO;
    int d = s[i] - '0';
    if (acc < (INT64_MIN + d) / 10) return WF_EPROTO;
    acc = acc * 10 - d;
  }
  if (!neg) {
    if (acc == INT64_MIN) return WF_EPROTO;
    acc = -acc;
  }
  *out = acc;
  return 0;
}

int wf__etcd_bytes(const json_t *v, char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (!v || json_is_null(v)) {
    *out = wf_strdup("");
    return 0;
  }
  if (!json_is_string(v)) return WF_EPROTO;
  *out = wf_b64_decode(json_string_value(v), json_string_length(v), len);
  return *out ? 0 : WF_EPROTO;
}

/* A revision: like wf__etcd_i64, but only 0 (omitted) to INT64_MAX - 1.
 * etcd's revisions are positive and far from the top; callers resume a
 * watch at revision + 1, which must not overflow (signed overflow is UB). */
static int rev_field(const json_t *v, int64_t *out) {
  int r = wf__etcd_i64(v, out);
  if (r == 0 && (*out < 0 || *out == INT64_MAX)) r = WF_EPROTO;
  return r;
}

/* ---- KeyValue ---------------------------------------------------------------------- */

void wf__etcd_kv_clear(wf_etcd_kv_t *kv) {
  free((void *)kv->key);
  free((void *)kv->value);
  memset(kv, 0, sizeof *kv);
}

int wf__etcd_kv_parse(const json_t *o, wf_etcd_kv_t *kv) {
  char *key = NULL, *val = NULL;
  memset(kv, 0, sizeof *kv);
  if (!json_is_object(o)) return WF_EPROTO;
  int r = wf__etcd_bytes(json_object_get(o, "key"), &key, &kv->key_len);
  kv->key = key;
  if (r == 0) r = wf__etcd_bytes(json_object_get(o, "value"), &val, &kv->value_len);
  kv->value = val;
  if (r == 0) r = rev_field(json_object_get(o, "create_revision"), &kv->create_revision);
  if (r == 0) r = rev_field(json_object_get(o, "mod_revision"), &kv->mod_revision);
  if (r == 0) r = wf__etcd_i64(json_object_get(o, "version"), &kv->version);
  if (r == 0) r = wf__etcd_i64(json_object_get(o, "lease"), &kv->lease);
  return r;
}

void wf__etcd_kv_copy(wf_etcd_kv_t *dst, const wf_etcd_kv_t *src) {
  *dst = *src;
  char *k = wf_malloc(src->key_len + 1), *v = wf_malloc(src->value_len + 1);
  memcpy(k, src->key, src->key_len);
  k[src->key_len] = '\0';
  memcpy(v, src->value, src->value_len);
  v[src->value_len] = '\0';
  dst->key = k;
  dst->value = v;
}

void wf__etcd_kvs_free(wf_etcd_kv_t *kvs, size_t n) {
  for (size_t i = 0; i < n; i++) wf__etcd_kv_clear(&kvs[i]);
  free(kvs);
}

int wf__etcd_kvs_parse(const json_t *arr, wf_etcd_kv_t **kvs, size_t *n) {
  *kvs = NULL;
  *n = 0;
  if (!arr || json_is_null(arr)) return 0;
  if (!json_is_array(arr)) return WF_EPROTO;
  size_t cnt = json_array_size(arr);
  if (cnt == 0) return 0;
  wf_etcd_kv_t *a = wf_calloc(cnt, sizeof *a);
  for (size_t i = 0; i < cnt; i++) {
    int r = wf__etcd_kv_parse(json_array_get(arr, i), &a[i]);
    if (r != 0) {
      wf__etcd_kvs_free(a, i + 1);
      return r;
    }
  }
  *kvs = a;
  *n = cnt;
  return 0;
}

/* ---- fast path for list pages, txn answers and watch messages ----------------------------
 * jansson spends about 100 instructions per byte, most of them in long
 * base64 strings, and a list page or a watch event is almost all base64: a
 * 1,000-key page of Go-format steps cost ~200 M instructions before the
 * values were even looked at.  The gateway's answers are machine-written and
 * regular, so these are first read with the JSON scanner (model/jscan.c),
 * which accepts only the plain case: strings of printable ASCII without
 * escapes, integers of at most 18 digits (no fractions, not even in fields
 * nobody reads), objects and arrays nested less than FAST_MAX_DEPTH deep, no
 * repeated key among those read here, nothing but whitespace after the
 * value.  On anything else, and wherever a field rule below would fail, the
 * readers answer WF_JSCAN_DECLINE (NO) and the jansson path parses the same
 * bytes, with the same results and errors as before.  So the fast path never
 * decides anything jansson would decide differently; it only decides faster.
 *
 * The fs_* readers run inside the scanner's member callbacks, where s->p is
 * at the first byte of a value, never at the end (jscan.h); so they may look
 * at *s->p without a bound check. */
#define FAST_MAX_DEPTH 16
#define FAST_FLAGS (WF_JSCAN_PRINTABLE | WF_JSCAN_INT_ONLY)
#define NO WF_JSCAN_DECLINE
#define KEYIS(lit) WF_JSCAN_KEYIS(k, kn, lit)

/* A switch for the differential tests, which parse the same bytes with the
 * fast path off to compare (test/etcd/test-parse.c and the etcd fuzz
 * targets).  It is process-wide rather than a member of wf_etcd_t because
 * the parsers are pure functions that no client is passed to, and because
 * nothing but those tests ever sets it: the agent always runs with 1. */
int wf__etcd_fast_json = 1;

/* json_is_true(): only the literal true counts; any other value is false. */
static int fs_bool(wf_jscan_t *s, int *out) {
  *out = *s->p == 't';
  return wf_jscan_skip(s);
}

/* The wf__etcd_i64 rules: a string of decimal digits (optional '-'), an
 * integer, or null (= 0).  Anything those rules refuse declines (jansson's
 * path then reports it). */
static int fs_i64(wf_jscan_t *s, int64_t *out) {
  *out = 0;
  if (*s->p == 'n') return wf_jscan_lit(s, "null", 4);
  if (*s->p == '"') {
    const char *b;
    size_t n, i = 0;
    if (wf_jscan_str(s, &b, &n)) return NO;
    int neg = 0;
    if (n > 0 && b[0] == '-') {
      neg = 1;
      i = 1;
    }
    if (i == n || n - i > 18) return NO;
    int64_t acc = 0;
    for (; i < n; i++) {
      if (b[i] < '0' || b[i] > '9') return NO;
      acc = acc * 10 + (b[i] - '0');
    }
    *out = neg ? -acc : acc;
    return 0;
  }
  int is_int;
  if (wf_jscan_num(s, out, &is_int) || !is_int) return NO;
  return 0;
}

/* rev_field(): 0 .. INT64_MAX - 1 (18 digits are far below). */
static int fs_rev(wf_jscan_t *s, int64_t *out) {
  if (fs_i64(s, out) || *out < 0) return NO;
  return 0;
}

/* ---- fast path: KeyValue ---------------------------------------------------------------- */
typedef struct fkv_s {
  const char *key, *value;  /* spans of the base64 text; NULL = absent (or null) */
  size_t key_n, value_n;
  int64_t create_revision, mod_revision, version, lease;
  unsigned seen;            /* bit per extracted field: a repeat declines */
} fkv_t;

static int fs_b64_field(wf_jscan_t *s, const char **b, size_t *n) {
  *b = NULL;
  *n = 0;
  if (*s->p == 'n') return wf_jscan_lit(s, "null", 4);
  return wf_jscan_str(s, b, n);
}

static int kv_member(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  fkv_t *kv = ctx;
  if (KEYIS("key")) return wf_jscan_once(&kv->seen, 1) || fs_b64_field(s, &kv->key, &kv->key_n);
  if (KEYIS("value"))
    return wf_jscan_once(&kv->seen, 2) || fs_b64_field(s, &kv->value, &kv->value_n);
  if (KEYIS("create_revision"))
    return wf_jscan_once(&kv->seen, 4) || fs_rev(s, &kv->create_revision);
  if (KEYIS("mod_revision")) return wf_jscan_once(&kv->seen, 8) || fs_rev(s, &kv->mod_revision);
  if (KEYIS("version")) return wf_jscan_once(&kv->seen, 16) || fs_i64(s, &kv->version);
  if (KEYIS("lease")) return wf_jscan_once(&kv->seen, 32) || fs_i64(s, &kv->lease);
  return wf_jscan_skip(s);
}

/* Decodes what kv_member found into out (as wf__etcd_kv_parse would). */
static int fkv_finish(const fkv_t *f, wf_etcd_kv_t *out) {
  memset(out, 0, sizeof *out);
  char *k = f->key ? wf_b64_decode(f->key, f->key_n, &out->key_len) : wf_strdup("");
  char *v = f->value ? wf_b64_decode(f->value, f->value_n, &out->value_len) : wf_strdup("");
  out->key = k;
  out->value = v;
  if (!k || !v) {
    wf__etcd_kv_clear(out);
    return NO;
  }
  out->create_revision = f->create_revision;
  out->mod_revision = f->mod_revision;
  out->version = f->version;
  out->lease = f->lease;
  return 0;
}

/* A growable array of parsed kvs. */
typedef struct fkvs_s {
  wf_etcd_kv_t *kvs;
  size_t n, cap;
} fkvs_t;

static void fkvs_free(fkvs_t *a) {
  wf__etcd_kvs_free(a->kvs, a->n);
  a->kvs = NULL;
  a->n = a->cap = 0;
}

static int fs_kv(wf_jscan_t *s, wf_etcd_kv_t *out) {
  fkv_t f;
  memset(&f, 0, sizeof f);
  if (wf_jscan_object(s, kv_member, &f)) return NO;
  return fkv_finish(&f, out);
}

static int kv_elem(wf_jscan_t *s, void *ctx) {
  fkvs_t *a = ctx;
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 64;
    a->kvs = wf_realloc(a->kvs, a->cap * sizeof *a->kvs);
  }
  if (fs_kv(s, &a->kvs[a->n])) return NO;
  a->n++;
  return 0;
}

/* An array of KeyValue, or null (= none). */
static int fs_kvs(wf_jscan_t *s, fkvs_t *a) {
  if (*s->p == 'n') return wf_jscan_lit(s, "null", 4);
  return wf_jscan_array(s, kv_elem, a);
}

static int header_member(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  if (KEYIS("revision")) return fs_rev(s, ctx);
  return wf_jscan_skip(s);
}

/* "header": an object whose "revision" follows rev_field; a repeated
 * "revision" inside declines through the caller's seen bit. */
static int fs_header(wf_jscan_t *s, int64_t *rev) {
  return wf_jscan_object(s, header_member, rev);
}

/* ---- fast path: range answers ----------------------------------------------------------- */
typedef struct frange_s {
  int64_t revision, count;
  int more;
  fkvs_t kvs;
  unsigned seen;
} frange_t;

static int range_member(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  frange_t *r = ctx;
  if (KEYIS("header")) return wf_jscan_once(&r->seen, 1) || fs_header(s, &r->revision);
  if (KEYIS("kvs")) return wf_jscan_once(&r->seen, 2) || fs_kvs(s, &r->kvs);
  if (KEYIS("more")) return wf_jscan_once(&r->seen, 4) || fs_bool(s, &r->more);
  if (KEYIS("count")) return wf_jscan_once(&r->seen, 8) || fs_i64(s, &r->count);
  return wf_jscan_skip(s);
}

/* 0 with r filled, or NO (r untouched). */
static int fast_range(const char *body, size_t len, wf__etcd_resp_t *r) {
  wf_jscan_t s;
  frange_t f;
  memset(&f, 0, sizeof f);
  wf_jscan_init(&s, body, len, FAST_MAX_DEPTH, FAST_FLAGS);
  wf_jscan_ws(&s);
  if (wf_jscan_object(&s, range_member, &f) || wf_jscan_end(&s)) {
    fkvs_free(&f.kvs);
    return NO;
  }
  r->revision = f.revision;
  r->count = f.count;
  r->more = f.more;
  r->kvs = f.kvs.kvs;
  r->nkvs = f.kvs.n;
  if (!r->nkvs) {
    free(r->kvs);
    r->kvs = NULL;
  }
  return 0;
}

/* ---- fast path: txn answers ------------------------------------------------------------- */
/* Only the common case: succeeded true, whose "responses" (the put's own
 * header) nobody reads.  A failed txn carries the key's current value in a
 * response_range: rare (a conflict), so it goes to jansson. */
typedef struct ftxn_s {
  int64_t revision;
  int succeeded;
  unsigned seen;
} ftxn_t;

static int txn_member(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  ftxn_t *t = ctx;
  if (KEYIS("header")) return wf_jscan_once(&t->seen, 1) || fs_header(s, &t->revision);
  if (KEYIS("succeeded")) return wf_jscan_once(&t->seen, 2) || fs_bool(s, &t->succeeded);
  if (KEYIS("responses")) {
    if (wf_jscan_once(&t->seen, 4)) return NO;
    /* jansson's path wants an array (or nothing) here. */
    if (*s->p != '[' && *s->p != 'n') return NO;
  }
  return wf_jscan_skip(s);
}

static int fast_txn(const char *body, size_t len, wf__etcd_resp_t *r) {
  wf_jscan_t s;
  ftxn_t t;
  memset(&t, 0, sizeof t);
  wf_jscan_init(&s, body, len, FAST_MAX_DEPTH, FAST_FLAGS);
  wf_jscan_ws(&s);
  if (wf_jscan_object(&s, txn_member, &t) || wf_jscan_end(&s) || !t.succeeded) return NO;
  r->revision = t.revision;
  r->succeeded = 1;
  return 0;
}

/* ---- fast path: watch messages ---------------------------------------------------------- */
typedef struct fevent_s {
  int type;
  wf_etcd_kv_t kv;
  int have_kv;
  unsigned seen;
} fevent_t;

static int event_member(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  fevent_t *ev = ctx;
  if (KEYIS("type")) {
    if (wf_jscan_once(&ev->seen, 1)) return NO;
    if (*s->p == '"') {
      const char *b;
      size_t n;
      if (wf_jscan_str(s, &b, &n)) return NO;
      if (n == 3 && memcmp(b, "PUT", 3) == 0) ev->type = WF_ETCD_PUT;
      else if (n == 6 && memcmp(b, "DELETE", 6) == 0) ev->type = WF_ETCD_DELETE;
      else return NO;
      return 0;
    }
    int64_t v;
    int is_int;
    if (wf_jscan_num(s, &v, &is_int) || !is_int || v < 0 || v > 1) return NO;
    ev->type = v == 1 ? WF_ETCD_DELETE : WF_ETCD_PUT;
    return 0;
  }
  if (KEYIS("kv")) {
    if (wf_jscan_once(&ev->seen, 2) || fs_kv(s, &ev->kv)) return NO;
    ev->have_kv = 1;
    return 0;
  }
  return wf_jscan_skip(s);
}

typedef struct fwatch_s {
  wf__etcd_watch_msg_t *m;
  size_t cap;
  unsigned seen;
} fwatch_t;

static int event_elem(wf_jscan_t *s, void *ctx) {
  fwatch_t *w = ctx;
  wf__etcd_watch_msg_t *m = w->m;
  fevent_t ev;
  memset(&ev, 0, sizeof ev);
  if (wf_jscan_object(s, event_member, &ev) || !ev.have_kv) {
    if (ev.have_kv) wf__etcd_kv_clear(&ev.kv);
    return NO;
  }
  if (m->nevents == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 4;
    m->events = wf_realloc(m->events, w->cap * sizeof *m->events);
  }
  m->events[m->nevents].type = (enum wf_etcd_event_type)ev.type;
  m->events[m->nevents].kv = ev.kv;
  m->nevents++;
  return 0;
}

static int fs_events(wf_jscan_t *s, fwatch_t *w) {
  if (*s->p == 'n') return wf_jscan_lit(s, "null", 4);
  return wf_jscan_array(s, event_elem, w);
}

static int result_member(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  fwatch_t *w = ctx;
  wf__etcd_watch_msg_t *m = w->m;
  if (KEYIS("header")) return wf_jscan_once(&w->seen, 1) || fs_header(s, &m->header_revision);
  if (KEYIS("compact_revision"))
    return wf_jscan_once(&w->seen, 2) || fs_rev(s, &m->compact_revision);
  if (KEYIS("created")) return wf_jscan_once(&w->seen, 4) || fs_bool(s, &m->created);
  if (KEYIS("canceled")) return wf_jscan_once(&w->seen, 8) || fs_bool(s, &m->canceled);
  if (KEYIS("fragment")) return wf_jscan_once(&w->seen, 16) || fs_bool(s, &m->fragment);
  if (KEYIS("events")) return wf_jscan_once(&w->seen, 32) || fs_events(s, w);
  if (KEYIS("cancel_reason")) {
    if (wf_jscan_once(&w->seen, 64)) return NO;
    if (*s->p == '"') {
      const char *b;
      size_t n;
      if (wf_jscan_str(s, &b, &n)) return NO;
      snprintf(m->msg, sizeof m->msg, "%.*s", (int)n, b);
      return 0;
    }
    return wf_jscan_skip(s);
  }
  return wf_jscan_skip(s);
}

static int top_member(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  fwatch_t *w = ctx;
  if (KEYIS("result")) {
    if (wf_jscan_once(&w->seen, 128)) return NO;
    return wf_jscan_object(s, result_member, w);
  }
  if (KEYIS("error")) return NO; /* rare: the jansson path words it */
  return wf_jscan_skip(s);
}

/* 0 with m filled, or NO (m cleared). */
static int fast_watch_msg(const char *line, size_t n, wf__etcd_watch_msg_t *m) {
  wf_jscan_t s;
  fwatch_t w = {m, 0, 0};
  wf_jscan_init(&s, line, n, FAST_MAX_DEPTH, FAST_FLAGS);
  wf_jscan_ws(&s);
  if (wf_jscan_object(&s, top_member, &w) || wf_jscan_end(&s) || !(w.seen & 128)) {
    wf__etcd_watch_msg_clear(m);
    return NO;
  }
  return 0;
}

#undef KEYIS
#undef NO

/* ---- responses ---------------------------------------------------------------------- */

void wf__etcd_resp_clear(wf__etcd_resp_t *r) {
  wf__etcd_kvs_free(r->kvs, r->nkvs);
  free(r->token);
  memset(r, 0, sizeof *r);
}

static int header_rev(const json_t *o, int64_t *rev) {
  const json_t *h = json_object_get(o, "header");
  *rev = 0;
  if (!h) return 0;
  if (!json_is_object(h)) return WF_EPROTO;
  return rev_field(json_object_get(h, "revision"), rev);
}

/* An error object's text: {"error":"..."} / {"message":"..."} (unary) or
 * {"error":{"message":"..."}} (a stream's bare error). */
static void error_text(const json_t *o, char *msg, size_t msglen) {
  const json_t *err = json_object_get(o, "error");
  const json_t *m = json_object_get(o, "message");
  if (json_is_object(err)) m = json_object_get(err, "message");
  if (!json_is_string(m)) m = err;
  snprintf(msg, msglen, "%s", json_is_string(m) ? json_string_value(m) : "etcd error");
}

static int parse_txn(const json_t *o, wf__etcd_resp_t *r) {
  r->succeeded = json_is_true(json_object_get(o, "succeeded"));
  if (r->succeeded) return 0;
  /* The failure branch is one request_range of the key. */
  const json_t *resps = json_object_get(o, "responses");
  if (!resps) return 0;
  if (!json_is_array(resps)) return WF_EPROTO;
  const json_t *rr = json_object_get(json_array_get(resps, 0), "response_range");
  if (!rr) return 0;
  if (!json_is_object(rr)) return WF_EPROTO;
  int e = wf__etcd_kvs_parse(json_object_get(rr, "kvs"), &r->kvs, &r->nkvs);
  if (e == 0 && r->nkvs > 1) e = WF_EPROTO;
  return e;
}

int wf__etcd_resp_parse(enum wf__etcd_op op, const char *body, size_t len,
                        wf__etcd_resp_t *r, char *msg, size_t msglen) {
  json_error_t je;
  memset(r, 0, sizeof *r);
  msg[0] = '\0';
  if (op == WF__ETCD_RANGE && wf__etcd_fast_json && fast_range(body, len, r) == 0) return 0;
  if (op == WF__ETCD_TXN && wf__etcd_fast_json && fast_txn(body, len, r) == 0) return 0;
  /* A keepalive answer is a stream: one {"result":...} line, then maybe blank
   * lines.  Read just the first value. */
  size_t flags = op == WF__ETCD_KEEPALIVE ? JSON_DISABLE_EOF_CHECK : 0;
  json_t *root = json_loadb(body, len, flags, &je);
  if (!root) {
    snprintf(msg, msglen, "bad JSON from etcd: %s", je.text);
    return WF_EPROTO;
  }
  int e = 0;
  const json_t *o = root;
  if (!json_is_object(o)) {
    snprintf(msg, msglen, "etcd answer is not an object");
    e = WF_EPROTO;
    goto out;
  }
  if (op == WF__ETCD_KEEPALIVE) {
    if (json_object_get(o, "error")) {
      error_text(o, msg, msglen);
      e = WF_EETCD;
      goto out;
    }
    o = json_object_get(o, "result");
    if (!json_is_object(o)) {
      snprintf(msg, msglen, "keepalive answer without result");
      e = WF_EPROTO;
      goto out;
    }
  }
  e = header_rev(o, &r->revision);
  if (e != 0) goto bad;
  switch (op) {
    case WF__ETCD_RANGE:
      e = wf__etcd_kvs_parse(json_object_get(o, "kvs"), &r->kvs, &r->nkvs);
      if (e == 0) e = wf__etcd_i64(json_object_get(o, "count"), &r->count);
      r->more = json_is_true(json_object_get(o, "more"));
      break;
    case WF__ETCD_TXN:
      e = parse_txn(o, r);
      break;
    case WF__ETCD_DELETE:
      e = wf__etcd_i64(json_object_get(o, "deleted"), &r->deleted);
      break;
    case WF__ETCD_GRANT:
    case WF__ETCD_KEEPALIVE:
      e = wf__etcd_i64(json_object_get(o, "ID"), &r->id);
      /* No TTL = 0: for a keepalive, the lease is gone. */
      if (e == 0) e = wf__etcd_i64(json_object_get(o, "TTL"), &r->ttl);
      break;
    case WF__ETCD_AUTH: {
      /* The token goes into a header line: printable ASCII only. */
      const json_t *t = json_object_get(o, "token");
      const char *ts = json_string_value(t);
      if (!ts || !ts[0]) e = WF_EPROTO;
      for (const char *q = ts; e == 0 && *q; q++)
        if (*q <= 0x20 || *q >= 0x7f) e = WF_EPROTO;
      if (e == 0) r->token = wf_strdup(ts);
      break;
    }
    case WF__ETCD_PUT:
    case WF__ETCD_COMPACT:
    case WF__ETCD_REVOKE:
      break;
  }
bad:
  if (e != 0) {
    wf__etcd_kvs_free(r->kvs, r->nkvs);
    r->kvs = NULL;
    r->nkvs = 0;
    snprintf(msg, msglen, "malformed etcd answer");
  }
out:
  json_decref(root);
  return e;
}

int wf__etcd_error_parse(int status, const char *body, size_t len, char *msg, size_t msglen,
                         int *grpc_code) {
  json_error_t je;
  *grpc_code = -1;
  json_t *root = body && len ? json_loadb(body, len, 0, &je) : NULL;
  if (!json_is_object(root) || !json_object_get(root, "error")) {
    /* Not the gateway's error object (a proxy, "404 page not found"...):
     * keep the first line for the log. */
    size_t n = 0;
    while (body && n < len && n < 200 && body[n] != '\n' && body[n] != '\r') n++;
    snprintf(msg, msglen, "HTTP %d: %.*s", status, (int)n, body ? body : "");
    json_decref(root);
    return WF_EHTTP;
  }
  error_text(root, msg, msglen);
  const json_t *code = json_object_get(root, "code");
  if (json_is_integer(code)) *grpc_code = (int)json_integer_value(code);
  json_decref(root);
  /* gRPC OutOfRange is what etcd uses for "required revision has been
   * compacted" (mvcc.ErrCompacted). */
  return *grpc_code == 11 ? WF_ECOMPACTED : WF_EETCD;
}

/* ---- watch messages ------------------------------------------------------------------ */

void wf__etcd_watch_msg_clear(wf__etcd_watch_msg_t *m) {
  for (size_t i = 0; i < m->nevents; i++) wf__etcd_kv_clear(&m->events[i].kv);
  free(m->events);
  memset(m, 0, sizeof *m);
}

static int parse_events(const json_t *arr, wf__etcd_watch_msg_t *m) {
  if (!arr || json_is_null(arr)) return 0;
  if (!json_is_array(arr)) return WF_EPROTO;
  size_t cnt = json_array_size(arr);
  if (cnt == 0) return 0;
  m->events = wf_calloc(cnt, sizeof *m->events);
  for (size_t i = 0; i < cnt; i++) {
    const json_t *ev = json_array_get(arr, i);
    m->nevents = i + 1;  /* so a failure clears what was parsed */
    if (!json_is_object(ev)) return WF_EPROTO;
    const json_t *t = json_object_get(ev, "type");
    if (!t || (json_is_string(t) && strcmp(json_string_value(t), "PUT") == 0))
      m->events[i].type = WF_ETCD_PUT;
    else if (json_is_string(t) && strcmp(json_string_value(t), "DELETE") == 0)
      m->events[i].type = WF_ETCD_DELETE;
    else if (json_is_integer(t) && json_integer_value(t) >= 0 &&
             json_integer_value(t) <= 1)
      m->events[i].type = json_integer_value(t) == 1 ? WF_ETCD_DELETE : WF_ETCD_PUT;
    else
      return WF_EPROTO;
    int r = wf__etcd_kv_parse(json_object_get(ev, "kv"), &m->events[i].kv);
    if (r != 0) return r;
  }
  return 0;
}

int wf__etcd_watch_msg_parse(const char *line, size_t n, wf__etcd_watch_msg_t *m) {
  json_error_t je;
  memset(m, 0, sizeof *m);
  if (wf__etcd_fast_json && fast_watch_msg(line, n, m) == 0) return 0;
  json_t *root = json_loadb(line, n, 0, &je);
  int e = 0;
  if (!json_is_object(root)) {
    snprintf(m->msg, sizeof m->msg, "bad watch message: %s", root ? "not an object" : je.text);
    e = WF_EPROTO;
    goto out;
  }
  if (json_object_get(root, "error")) {
    /* Stream-level failure, not wrapped in "result": the gateway lost its
     * gRPC stream (etcd shutting down...). */
    m->error = 1;
    error_text(root, m->msg, sizeof m->msg);
    goto out;
  }
  const json_t *res = json_object_get(root, "result");
  if (!json_is_object(res)) {
    snprintf(m->msg, sizeof m->msg, "watch message without result");
    e = WF_EPROTO;
    goto out;
  }
  e = header_rev(res, &m->header_revision);
  if (e == 0) e = rev_field(json_object_get(res, "compact_revision"), &m->compact_revision);
  if (e != 0) goto out;
  m->created = json_is_true(json_object_get(res, "created"));
  m->canceled = json_is_true(json_object_get(res, "canceled"));
  m->fragment = json_is_true(json_object_get(res, "fragment"));
  const json_t *reason = json_object_get(res, "cancel_reason");
  if (json_is_string(reason)) snprintf(m->msg, sizeof m->msg, "%s", json_string_value(reason));
  e = parse_events(json_object_get(res, "events"), m);
  if (e != 0) snprintf(m->msg, sizeof m->msg, "malformed watch event");
out:
  json_decref(root);
  return e;
}
