/*
 * parse: the pure half of the etcd client.  It turns calls into gateway JSON
 * and gateway JSON back into wf_etcd_kv_t, splits the watch stream into
 * lines, and keeps the watch's resume position.  The gateway's quirks live
 * here: bytes are base64, int64 are strings, default values are omitted
 * (no "kvs" when empty, no "TTL" when 0, no "type" for a PUT event).
 * No libuv, no http/: unit-tested on its own (test/etcd/test-parse.c).
 */
#include "etcd-internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static json_t *b64_json(const char *p, size_t n) {
  char *s = wf_malloc(wf_b64_enc_len(n) + 1);
  wf_b64_encode(p, n, s);
  json_t *j = json_string_nocheck(s);
  free(s);
  return j;
}

/* proto3 JSON wants int64 as a string; the gateway accepts numbers too, but
 * strings keep every value exact whatever the JSON library does. */
static json_t *i64_json(int64_t v) {
  char s[32];
  snprintf(s, sizeof s, "%" PRId64, v);
  return json_string_nocheck(s);
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

/* ---- request bodies -------------------------------------------------------------- */

/* Serialises and releases root (ownership passes, rule 15). */
static char *dump(json_t *root, size_t *len) {
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  if (!s) {
    /* Only an allocation failure makes jansson fail here. */
    wf_error(NULL, "etcd: out of memory serialising a request");
    abort();
  }
  *len = strlen(s);
  return s;
}

static void set_range(json_t *o, const char *key, size_t klen, const char *end, size_t elen) {
  json_object_set_new_nocheck(o, "key", b64_json(key, klen));
  if (end) json_object_set_new_nocheck(o, "range_end", b64_json(end, elen));
}

char *wf__etcd_req_range(const char *key, size_t klen, const char *end, size_t elen,
                         const wf_etcd_range_opts_t *o, size_t *len) {
  json_t *root = json_object();
  set_range(root, key, klen, end, elen);
  if (o && o->limit > 0) json_object_set_new_nocheck(root, "limit", i64_json(o->limit));
  if (o && o->revision > 0)
    json_object_set_new_nocheck(root, "revision", i64_json(o->revision));
  if (o && o->keys_only) json_object_set_new_nocheck(root, "keys_only", json_true());
  if (o && o->count_only) json_object_set_new_nocheck(root, "count_only", json_true());
  return dump(root, len);
}

char *wf__etcd_req_put(const char *key, size_t klen, const char *val, size_t vlen,
                       int64_t lease, size_t *len) {
  json_t *root = json_object();
  json_object_set_new_nocheck(root, "key", b64_json(key, klen));
  json_object_set_new_nocheck(root, "value", b64_json(val, vlen));
  if (lease != 0) json_object_set_new_nocheck(root, "lease", i64_json(lease));
  return dump(root, len);
}

/* Written directly rather than built as a jansson tree and dumped: the two
 * txns of every step (claim, final write) spent more time in jansson than
 * in anything else of the request (bench part 2).  Base64 and decimal
 * digits never need JSON escaping, so the text is exact as it is. */
char *wf__etcd_req_put_if(const char *key, size_t klen, int64_t mod_revision,
                          const char *val, size_t vlen, size_t *len) {
  size_t kb = wf_b64_enc_len(klen), vb = wf_b64_enc_len(vlen);
  size_t cap = 3 * kb + vb + 256;
  char *out = wf_malloc(cap), *k = wf_malloc(kb + 1), *p = out;
  wf_b64_encode(key, klen, k);
  /* An absent key has create_revision 0: "create if absent". */
  p += sprintf(p, "{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",", k);
  if (mod_revision == 0)
    p += sprintf(p, "\"target\":\"CREATE\",\"create_revision\":\"0\"}]");
  else
    p += sprintf(p, "\"target\":\"MOD\",\"mod_revision\":\"%" PRId64 "\"}]", mod_revision);
  p += sprintf(p, ",\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"", k);
  wf_b64_encode(val, vlen, p);
  p += vb;
  p += sprintf(p, "\"}}],\"failure\":[{\"request_range\":{\"key\":\"%s\"}}]}", k);
  free(k);
  *len = (size_t)(p - out);
  return out;
}

char *wf__etcd_req_delete(const char *key, size_t klen, const char *end, size_t elen,
                          size_t *len) {
  json_t *root = json_object();
  set_range(root, key, klen, end, elen);
  return dump(root, len);
}

char *wf__etcd_req_compact(int64_t revision, size_t *len) {
  json_t *root = json_object();
  json_object_set_new_nocheck(root, "revision", i64_json(revision));
  /* physical: answer only once the compaction is applied, so a watch or a
   * range at an older revision fails for sure afterwards. */
  json_object_set_new_nocheck(root, "physical", json_true());
  return dump(root, len);
}

char *wf__etcd_req_lease_grant(int64_t ttl, size_t *len) {
  json_t *root = json_object();
  json_object_set_new_nocheck(root, "TTL", i64_json(ttl));
  return dump(root, len);
}

char *wf__etcd_req_lease_id(int64_t id, size_t *len) {
  json_t *root = json_object();
  json_object_set_new_nocheck(root, "ID", i64_json(id));
  return dump(root, len);
}

char *wf__etcd_req_watch(const char *key, size_t klen, const char *end, size_t elen,
                         int64_t start_revision, size_t *len) {
  json_t *cr = json_object();
  set_range(cr, key, klen, end, elen);
  if (start_revision > 0)
    json_object_set_new_nocheck(cr, "start_revision", i64_json(start_revision));
  /* Large replays arrive as several messages, each far below the line bound. */
  json_object_set_new_nocheck(cr, "fragment", json_true());
  /* Progress notifications tell a quiet watch from a stalled one (watch.c). */
  json_object_set_new_nocheck(cr, "progress_notify", json_true());
  json_t *root = json_object();
  json_object_set_new_nocheck(root, "create_request", cr);
  return dump(root, len);
}

/* ---- fast path for list pages and watch messages ---------------------------------------
 * jansson spends about 100 instructions per byte, most of them in long
 * base64 strings, and a list page or a watch event is almost all base64: a
 * 1,000-key page of Go-format steps cost ~200 M instructions before the
 * values were even looked at.  The gateway's answers are machine-written and
 * regular, so these two are first read by the one-pass scanner below, which
 * accepts only the plain case: strings of printable ASCII without escapes,
 * integers of at most 18 digits, nesting below FAST_MAX_DEPTH, no repeated
 * key among those it extracts, nothing but whitespace after the value.  On
 * anything else, and wherever a field rule below would fail, it answers
 * FAST_NO and the jansson path parses the same bytes, with the same results
 * and errors as before.  So it never decides anything jansson would decide
 * differently; it only decides faster. */
#define FAST_NO 1
#define FAST_MAX_DEPTH 16

int wf__etcd_fast_json = 1;

typedef struct fscan_s {
  const char *p, *end;
} fscan_t;

static void fs_ws(fscan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static int fs_lit(fscan_t *s, const char *lit, size_t n) {
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) return FAST_NO;
  s->p += n;
  return 0;
}

/* A plain string; *b / *n: its bytes without the quotes. */
static int fs_str(fscan_t *s, const char **b, size_t *n) {
  if (s->p >= s->end || *s->p != '"') return FAST_NO;
  const char *q = ++s->p;
  const char *end = s->end;
  for (;; q++) {
    if (q >= end) return FAST_NO;
    unsigned char c = (unsigned char)*q;
    if (c == '"') break;
    if (c == '\\' || c < 0x20 || c >= 0x7f) return FAST_NO;
  }
  *b = s->p;
  *n = (size_t)(q - s->p);
  s->p = q + 1;
  return 0;
}

/* A JSON integer of at most 18 digits (*is_int = 1, its value in *v);
 * every other number is FAST_NO. */
static int fs_num(fscan_t *s, int64_t *v, int *is_int) {
  const char *q = s->p;
  int neg = 0;
  if (q < s->end && *q == '-') {
    neg = 1;
    q++;
  }
  const char *d0 = q;
  while (q < s->end && *q >= '0' && *q <= '9') q++;
  size_t nd = (size_t)(q - d0);
  if (nd == 0 || (nd > 1 && *d0 == '0')) return FAST_NO;
  int frac = 0;
  if (q < s->end && *q == '.') {
    frac = 1;
    const char *f = ++q;
    while (q < s->end && *q >= '0' && *q <= '9') q++;
    if (q == f) return FAST_NO;
  }
  if (q < s->end && (*q == 'e' || *q == 'E')) {
    frac = 1;
    q++;
    if (q < s->end && (*q == '+' || *q == '-')) q++;
    const char *f = q;
    while (q < s->end && *q >= '0' && *q <= '9') q++;
    if (q == f) return FAST_NO;
  }
  /* Fractions and exponents never occur in the gateway's answers; jansson
   * would also refuse some of them (overflow), so leave them to it. */
  if (frac || nd > 18) return FAST_NO;
  *is_int = !frac;
  if (!frac) {
    int64_t acc = 0;
    for (const char *c = d0; c < d0 + nd; c++) acc = acc * 10 + (*c - '0');
    *v = neg ? -acc : acc;
  }
  s->p = q;
  return 0;
}

static int fs_skip(fscan_t *s, int depth);

/* Calls on_key for each member of an object (s->p at '{'); on_key must
 * consume the value (fs_skip it if it does not want it). */
typedef int (*fs_member_cb)(fscan_t *s, const char *k, size_t kn, void *ctx, int depth);
static int fs_object(fscan_t *s, int depth, fs_member_cb on_key, void *ctx) {
  if (depth >= FAST_MAX_DEPTH || s->p >= s->end || *s->p != '{') return FAST_NO;
  s->p++;
  fs_ws(s);
  if (s->p < s->end && *s->p == '}') {
    s->p++;
    return 0;
  }
  for (;;) {
    const char *k;
    size_t kn;
    fs_ws(s);
    if (fs_str(s, &k, &kn)) return FAST_NO;
    fs_ws(s);
    if (s->p >= s->end || *s->p != ':') return FAST_NO;
    s->p++;
    fs_ws(s);
    if (on_key(s, k, kn, ctx, depth + 1)) return FAST_NO;
    fs_ws(s);
    if (s->p >= s->end) return FAST_NO;
    if (*s->p == '}') {
      s->p++;
      return 0;
    }
    if (*s->p != ',') return FAST_NO;
    s->p++;
  }
}

/* Calls on_elem for each element of an array (s->p at '['); on_elem must
 * consume the element. */
typedef int (*fs_elem_cb)(fscan_t *s, void *ctx, int depth);
static int fs_array(fscan_t *s, int depth, fs_elem_cb on_elem, void *ctx) {
  if (depth >= FAST_MAX_DEPTH || s->p >= s->end || *s->p != '[') return FAST_NO;
  s->p++;
  fs_ws(s);
  if (s->p < s->end && *s->p == ']') {
    s->p++;
    return 0;
  }
  for (;;) {
    fs_ws(s);
    if (on_elem(s, ctx, depth + 1)) return FAST_NO;
    fs_ws(s);
    if (s->p >= s->end) return FAST_NO;
    if (*s->p == ']') {
      s->p++;
      return 0;
    }
    if (*s->p != ',') return FAST_NO;
    s->p++;
  }
}

static int skip_elem(fscan_t *s, void *ctx, int depth) { return fs_skip(s, depth); }

static int skip_member(fscan_t *s, const char *k, size_t kn, void *ctx, int depth) {
  return fs_skip(s, depth);
}

static int fs_skip(fscan_t *s, int depth) {
  if (depth >= FAST_MAX_DEPTH || s->p >= s->end) return FAST_NO;
  const char *b;
  size_t n;
  int64_t v;
  int is_int;
  switch (*s->p) {
    case '"':
      return fs_str(s, &b, &n);
    case '{':
      return fs_object(s, depth, skip_member, NULL);
    case '[':
      return fs_array(s, depth, skip_elem, NULL);
    case 't':
      return fs_lit(s, "true", 4);
    case 'f':
      return fs_lit(s, "false", 5);
    case 'n':
      return fs_lit(s, "null", 4);
    default:
      return fs_num(s, &v, &is_int);
  }
}

/* json_is_true(): only the literal true counts; any other value is false. */
static int fs_bool(fscan_t *s, int *out, int depth) {
  *out = s->p < s->end && *s->p == 't';
  return fs_skip(s, depth);
}

/* The wf__etcd_i64 rules: a string of decimal digits (optional '-'), an
 * integer, or null (= 0).  Anything those rules refuse is FAST_NO (jansson's
 * path then reports it). */
static int fs_i64(fscan_t *s, int64_t *out, int depth) {
  *out = 0;
  if (s->p >= s->end) return FAST_NO;
  if (*s->p == 'n') return fs_lit(s, "null", 4);
  if (*s->p == '"') {
    const char *b;
    size_t n, i = 0;
    if (fs_str(s, &b, &n)) return FAST_NO;
    int neg = 0;
    if (n > 0 && b[0] == '-') {
      neg = 1;
      i = 1;
    }
    if (i == n || n - i > 18) return FAST_NO;
    int64_t acc = 0;
    for (; i < n; i++) {
      if (b[i] < '0' || b[i] > '9') return FAST_NO;
      acc = acc * 10 + (b[i] - '0');
    }
    *out = neg ? -acc : acc;
    return 0;
  }
  int is_int;
  if (fs_num(s, out, &is_int) || !is_int) return FAST_NO;
  return 0;
}

/* rev_field(): 0 .. INT64_MAX - 1 (18 digits are far below). */
static int fs_rev(fscan_t *s, int64_t *out, int depth) {
  if (fs_i64(s, out, depth) || *out < 0) return FAST_NO;
  return 0;
}

/* ---- KeyValue -------------------------------------------------------------------------- */
typedef struct fkv_s {
  const char *key, *value;  /* spans of the base64 text; NULL = absent (or null) */
  size_t key_n, value_n;
  int64_t create_revision, mod_revision, version, lease;
  unsigned seen;            /* bit per extracted field: a repeat is FAST_NO */
} fkv_t;

static int fs_seen(unsigned *seen, unsigned bit) {
  if (*seen & bit) return FAST_NO;
  *seen |= bit;
  return 0;
}

static int fs_b64_field(fscan_t *s, const char **b, size_t *n) {
  *b = NULL;
  *n = 0;
  if (s->p < s->end && *s->p == 'n') return fs_lit(s, "null", 4);
  return fs_str(s, b, n);
}

#define KEYIS(lit) (kn == sizeof(lit) - 1 && memcmp(k, lit, kn) == 0)

static int kv_member(fscan_t *s, const char *k, size_t kn, void *ctx, int depth) {
  fkv_t *kv = ctx;
  if (KEYIS("key")) return fs_seen(&kv->seen, 1) || fs_b64_field(s, &kv->key, &kv->key_n);
  if (KEYIS("value")) return fs_seen(&kv->seen, 2) || fs_b64_field(s, &kv->value, &kv->value_n);
  if (KEYIS("create_revision"))
    return fs_seen(&kv->seen, 4) || fs_rev(s, &kv->create_revision, depth);
  if (KEYIS("mod_revision")) return fs_seen(&kv->seen, 8) || fs_rev(s, &kv->mod_revision, depth);
  if (KEYIS("version")) return fs_seen(&kv->seen, 16) || fs_i64(s, &kv->version, depth);
  if (KEYIS("lease")) return fs_seen(&kv->seen, 32) || fs_i64(s, &kv->lease, depth);
  return fs_skip(s, depth);
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
    return FAST_NO;
  }
  out->create_revision = f->create_revision;
  out->mod_revision = f->mod_revision;
  out->version = f->version;
  out->lease = f->lease;
  return 0;
}

/* A growable array of parsed kvs / events. */
typedef struct fkvs_s {
  wf_etcd_kv_t *kvs;
  size_t n, cap;
} fkvs_t;

static void fkvs_free(fkvs_t *a) {
  wf__etcd_kvs_free(a->kvs, a->n);
  a->kvs = NULL;
  a->n = a->cap = 0;
}

static int fs_kv(fscan_t *s, wf_etcd_kv_t *out, int depth) {
  fkv_t f;
  memset(&f, 0, sizeof f);
  if (fs_object(s, depth, kv_member, &f)) return FAST_NO;
  return fkv_finish(&f, out);
}

static int kv_elem(fscan_t *s, void *ctx, int depth) {
  fkvs_t *a = ctx;
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 64;
    a->kvs = wf_realloc(a->kvs, a->cap * sizeof *a->kvs);
  }
  if (fs_kv(s, &a->kvs[a->n], depth)) return FAST_NO;
  a->n++;
  return 0;
}

/* An array of KeyValue, or null (= none). */
static int fs_kvs(fscan_t *s, fkvs_t *a, int depth) {
  if (s->p < s->end && *s->p == 'n') return fs_lit(s, "null", 4);
  return fs_array(s, depth, kv_elem, a);
}

static int header_member(fscan_t *s, const char *k, size_t kn, void *ctx, int depth) {
  if (KEYIS("revision")) return fs_rev(s, ctx, depth);
  return fs_skip(s, depth);
}

/* "header": an object whose "revision" follows rev_field; a repeated
 * "revision" inside is FAST_NO through the caller's seen bit. */
static int fs_header(fscan_t *s, int64_t *rev, int depth) {
  if (s->p < s->end && *s->p != '{') return FAST_NO;
  return fs_object(s, depth, header_member, rev);
}

/* The whole text is one value followed by whitespace only. */
static int fs_end(fscan_t *s) {
  fs_ws(s);
  return s->p == s->end ? 0 : FAST_NO;
}

/* ---- range answers ---------------------------------------------------------------------------- */
typedef struct frange_s {
  int64_t revision, count;
  int more;
  fkvs_t kvs;
  unsigned seen;
} frange_t;

static int range_member(fscan_t *s, const char *k, size_t kn, void *ctx, int depth) {
  frange_t *r = ctx;
  if (KEYIS("header")) return fs_seen(&r->seen, 1) || fs_header(s, &r->revision, depth);
  if (KEYIS("kvs")) return fs_seen(&r->seen, 2) || fs_kvs(s, &r->kvs, depth);
  if (KEYIS("more")) return fs_seen(&r->seen, 4) || fs_bool(s, &r->more, depth);
  if (KEYIS("count")) return fs_seen(&r->seen, 8) || fs_i64(s, &r->count, depth);
  return fs_skip(s, depth);
}

/* 0 with r filled, or FAST_NO (r untouched). */
static int fast_range(const char *body, size_t len, wf__etcd_resp_t *r) {
  fscan_t s = {body, body + len};
  frange_t f;
  memset(&f, 0, sizeof f);
  fs_ws(&s);
  if (fs_object(&s, 0, range_member, &f) || fs_end(&s)) {
    fkvs_free(&f.kvs);
    return FAST_NO;
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

/* ---- txn answers ------------------------------------------------------------------------------- */
/* Only the common case: succeeded true, whose "responses" (the put's own
 * header) nobody reads.  A failed txn carries the key's current value in a
 * response_range: rare (a conflict), so it goes to jansson. */
typedef struct ftxn_s {
  int64_t revision;
  int succeeded;
  unsigned seen;
} ftxn_t;

static int txn_member(fscan_t *s, const char *k, size_t kn, void *ctx, int depth) {
  ftxn_t *t = ctx;
  if (KEYIS("header")) return fs_seen(&t->seen, 1) || fs_header(s, &t->revision, depth);
  if (KEYIS("succeeded")) return fs_seen(&t->seen, 2) || fs_bool(s, &t->succeeded, depth);
  if (KEYIS("responses")) {
    if (fs_seen(&t->seen, 4)) return FAST_NO;
    /* jansson's path wants an array (or nothing) here. */
    fs_ws(s);
    if (s->p < s->end && *s->p != '[' && *s->p != 'n') return FAST_NO;
  }
  return fs_skip(s, depth);
}

static int fast_txn(const char *body, size_t len, wf__etcd_resp_t *r) {
  fscan_t s = {body, body + len};
  ftxn_t t;
  memset(&t, 0, sizeof t);
  fs_ws(&s);
  if (fs_object(&s, 0, txn_member, &t) || fs_end(&s) || !t.succeeded) return FAST_NO;
  r->revision = t.revision;
  r->succeeded = 1;
  return 0;
}

/* ---- watch messages ------------------------------------------------------------------------------ */
typedef struct fevent_s {
  int type;
  wf_etcd_kv_t kv;
  int have_kv;
  unsigned seen;
} fevent_t;

static int event_member(fscan_t *s, const char *k, size_t kn, void *ctx, int depth) {
  fevent_t *ev = ctx;
  if (KEYIS("type")) {
    if (fs_seen(&ev->seen, 1)) return FAST_NO;
    if (s->p < s->end && *s->p == '"') {
      const char *b;
      size_t n;
      if (fs_str(s, &b, &n)) return FAST_NO;
      if (n == 3 && memcmp(b, "PUT", 3) == 0) ev->type = WF_ETCD_PUT;
      else if (n == 6 && memcmp(b, "DELETE", 6) == 0) ev->type = WF_ETCD_DELETE;
      else return FAST_NO;
      return 0;
    }
    int64_t v;
    int is_int;
    if (fs_num(s, &v, &is_int) || !is_int || v < 0 || v > 1) return FAST_NO;
    ev->type = v == 1 ? WF_ETCD_DELETE : WF_ETCD_PUT;
    return 0;
  }
  if (KEYIS("kv")) {
    if (fs_seen(&ev->seen, 2) || fs_kv(s, &ev->kv, depth)) return FAST_NO;
    ev->have_kv = 1;
    return 0;
  }
  return fs_skip(s, depth);
}

typedef struct fwatch_s {
  wf__etcd_watch_msg_t *m;
  size_t cap;
  unsigned seen;
} fwatch_t;

static int event_elem(fscan_t *s, void *ctx, int depth) {
  fwatch_t *w = ctx;
  wf__etcd_watch_msg_t *m = w->m;
  fevent_t ev;
  memset(&ev, 0, sizeof ev);
  if (fs_object(s, depth, event_member, &ev) || !ev.have_kv) {
    if (ev.have_kv) wf__etcd_kv_clear(&ev.kv);
    return FAST_NO;
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

static int fs_events(fscan_t *s, fwatch_t *w, int depth) {
  if (s->p < s->end && *s->p == 'n') return fs_lit(s, "null", 4);
  return fs_array(s, depth, event_elem, w);
}

static int result_member(fscan_t *s, const char *k, size_t kn, void *ctx, int depth) {
  fwatch_t *w = ctx;
  wf__etcd_watch_msg_t *m = w->m;
  if (KEYIS("header")) return fs_seen(&w->seen, 1) || fs_header(s, &m->header_revision, depth);
  if (KEYIS("compact_revision"))
    return fs_seen(&w->seen, 2) || fs_rev(s, &m->compact_revision, depth);
  if (KEYIS("created")) return fs_seen(&w->seen, 4) || fs_bool(s, &m->created, depth);
  if (KEYIS("canceled")) return fs_seen(&w->seen, 8) || fs_bool(s, &m->canceled, depth);
  if (KEYIS("fragment")) return fs_seen(&w->seen, 16) || fs_bool(s, &m->fragment, depth);
  if (KEYIS("events")) return fs_seen(&w->seen, 32) || fs_events(s, w, depth);
  if (KEYIS("cancel_reason")) {
    if (fs_seen(&w->seen, 64)) return FAST_NO;
    if (s->p < s->end && *s->p == '"') {
      const char *b;
      size_t n;
      if (fs_str(s, &b, &n)) return FAST_NO;
      snprintf(m->msg, sizeof m->msg, "%.*s", (int)n, b);
      return 0;
    }
    return fs_skip(s, depth);
  }
  return fs_skip(s, depth);
}

static int top_member(fscan_t *s, const char *k, size_t kn, void *ctx, int depth) {
  fwatch_t *w = ctx;
  if (KEYIS("result")) {
    if (fs_seen(&w->seen, 128)) return FAST_NO;
    if (s->p >= s->end || *s->p != '{') return FAST_NO;
    return fs_object(s, depth, result_member, w);
  }
  if (KEYIS("error")) return FAST_NO; /* rare: the jansson path words it */
  return fs_skip(s, depth);
}

/* 0 with m filled, or FAST_NO (m cleared). */
static int fast_watch_msg(const char *line, size_t n, wf__etcd_watch_msg_t *m) {
  fscan_t s = {line, line + n};
  fwatch_t w = {m, 0, 0};
  fs_ws(&s);
  if (fs_object(&s, 0, top_member, &w) || fs_end(&s) || !(w.seen & 128)) {
    wf__etcd_watch_msg_clear(m);
    return FAST_NO;
  }
  return 0;
}

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

/* ---- line splitter ---------------------------------------------------------------- */

void wf__etcd_lines_init(wf__etcd_lines_t *l, size_t max) { wf_buf_init(&l->buf, max); }
void wf__etcd_lines_finish(wf__etcd_lines_t *l) { wf_buf_finish(&l->buf); }
void wf__etcd_lines_reset(wf__etcd_lines_t *l) { wf_buf_reset(&l->buf); }

static int deliver(const char *p, size_t n, wf__etcd_line_cb cb, void *data) {
  if (n > 0 && p[n - 1] == '\r') n--;
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r')) i++;
  if (i == n) return 0;
  return cb(p, n, data);
}

int wf__etcd_lines_feed(wf__etcd_lines_t *l, const char *p, size_t n, wf__etcd_line_cb cb,
                        void *data) {
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    if (!nl) return wf_buf_append(&l->buf, p, n);
    size_t k = (size_t)(nl - p);
    int r;
    if (l->buf.len == 0) {
      /* The common case, a whole line inside one chunk: no copy. */
      if (k > l->buf.max) return WF_ETOOBIG;
      r = deliver(p, k, cb, data);
    } else {
      r = wf_buf_append(&l->buf, p, k);
      if (r != 0) return r;
      r = deliver(l->buf.data, l->buf.len, cb, data);
      /* On r != 0 the owner drops the stream and resets us: leave buf. */
      if (r == 0) wf_buf_reset(&l->buf);
    }
    if (r != 0) return r;
    p = nl + 1;
    n -= k + 1;
  }
  return 0;
}

int wf__etcd_lines_flush(wf__etcd_lines_t *l, wf__etcd_line_cb cb, void *data) {
  if (l->buf.len == 0) return 0;
  int r = deliver(l->buf.data, l->buf.len, cb, data);
  if (r == 0) wf_buf_reset(&l->buf);
  return r;
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

/* ---- resume position -------------------------------------------------------------- */

void wf__etcd_resume_init(wf__etcd_resume_t *r, int64_t rev) {
  r->rev = rev > 0 ? rev : 0;
  r->skip = 0;
  r->drop_left = 0;
}

void wf__etcd_resume_connect(wf__etcd_resume_t *r) { r->drop_left = r->skip; }

void wf__etcd_resume_created(wf__etcd_resume_t *r, int64_t header_revision) {
  /* Watching from "now": the watch starts after the revision it was created
   * at, so a reconnect must ask for exactly that + 1. */
  if (r->rev == 0) {
    r->rev = header_revision + 1;
    r->skip = r->drop_left = 0;
  }
}

int wf__etcd_resume_event(wf__etcd_resume_t *r, int64_t rev) {
  if (rev < r->rev) return 0;  /* already past it (never sent by etcd) */
  if (rev == r->rev && r->drop_left > 0) {
    r->drop_left--;
    return 0;
  }
  if (rev == r->rev) {
    r->skip++;
  } else {
    r->rev = rev;
    r->skip = 1;
    r->drop_left = 0;
  }
  return 1;
}

void wf__etcd_resume_msg_end(wf__etcd_resume_t *r, int fragment) {
  /* The last message of a response ends on a revision boundary: what was
   * partly delivered is now whole, resume after it. */
  if (!fragment && r->skip > 0) {
    r->rev++;
    r->skip = 0;
    r->drop_left = 0;
  }
}

/* ---- prefix ---------------------------------------------------------------------------- */

size_t wf_etcd_prefix_end(const char *prefix, size_t plen, char *out) {
  /* etcd's GetPrefixRangeEnd: bump the last byte that is not 0xff and cut
   * after it.  A prefix of only 0xff bytes has no end: "\0" (every key from
   * the start key on) is what etcd means by that. */
  size_t n = plen;
  while (n > 0 && (unsigned char)prefix[n - 1] == 0xff) n--;
  if (n == 0) {
    if (plen == 0) return 0;
    out[0] = '\0';
    return 1;
  }
  memcpy(out, prefix, n);
  out[n - 1] = (char)((unsigned char)prefix[n - 1] + 1);
  return n;
}
