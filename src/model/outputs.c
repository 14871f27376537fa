/*
 * outputs: step outputs (include/wf/outputs.h).  Checks the NAME=value /
 * NAME<<DELIM file a step wrote (GitHub Actions' GITHUB_OUTPUT format), cuts
 * the summary line, reads a pipeline step's key, and collects and merges
 * what the earlier steps of a pipeline run offer to a later one.  Pure: no
 * libuv, no I/O; the engine reads the files and stores the values.
 *
 * Everything this file accepts ends up in a JSON string (status.response,
 * status.message) that jansson must take, so values must be UTF-8 and the
 * error messages are printable ASCII whatever the file holds.
 */
#include "wf/outputs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/jscan.h"
#include "wf/util.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Writes the message into err (when there is room) and returns -1. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* [A-Za-z_][A-Za-z0-9_]* over n bytes (no NUL needed): the output name rule,
 * which is also what wf_env_name_valid accepts, so an output can become an
 * environment variable as it is. */
static int name_valid(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
             (i > 0 && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

/* [A-Za-z0-9_.-]+: a step name that can prefix an output name. */
static int step_name_valid(const char *s) {
  if (!s || !*s) return 0;
  for (; *s; s++) {
    char c = *s;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return 1;
}

/* The length of the well-formed UTF-8 sequence at p (1-4), or 0 when there
 * is none: the rules jansson applies (no overlong forms, no surrogates,
 * nothing above U+10FFFF), so that json_string() takes what passes. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t k;
  unsigned char lo = 0x80, hi = 0xbf;  /* the bounds of the second byte */
  if (c < 0xc2) return 0;  /* a continuation byte, or an overlong 2-byte form */
  if (c < 0xe0) {
    k = 2;
  } else if (c < 0xf0) {
    k = 3;
    if (c == 0xe0) lo = 0xa0;  /* overlong */
    if (c == 0xed) hi = 0x9f;  /* surrogates */
  } else if (c < 0xf5) {
    k = 4;
    if (c == 0xf0) lo = 0x90;  /* overlong */
    if (c == 0xf4) hi = 0x8f;  /* above U+10FFFF */
  } else {
    return 0;
  }
  if (n < k) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < k; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  return k;
}

static int utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq(p + i, n - i);
    if (k == 0) return 0;
    i += k;
  }
  return 1;
}

/* What an error message quotes from the file (a name that is not one, a
 * delimiter): at most 32 bytes, every byte that is not printable ASCII
 * shown as '?', so the message is short, one line and valid UTF-8. */
#define SHOWN_MAX 32
static void shown(char *dst, const char *s, size_t n) {  /* dst: SHOWN_MAX + 4 bytes */
  size_t k = n > SHOWN_MAX ? SHOWN_MAX : n;
  for (size_t i = 0; i < k; i++) {
    unsigned char c = (unsigned char)s[i];
    dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  if (n > k) memcpy(dst + k, "...", 3), k += 3;
  dst[k] = '\0';
}

/* ---- the output file ------------------------------------------------------------ */

/* Lines of a buffer: split on "\n", one trailing "\r" dropped, a last line
 * without "\n" counted; no line after a final "\n". */
typedef struct lines_s {
  const char *buf;
  size_t len, pos;
  long line;  /* 1-based number of the line last returned */
} lines_t;

static int next_line(lines_t *l, const char **s, size_t *n) {
  if (l->pos >= l->len) return 0;
  const char *p = l->buf + l->pos;
  size_t rest = l->len - l->pos;
  const char *nl = memchr(p, '\n', rest);
  size_t k = nl ? (size_t)(nl - p) : rest;
  l->pos += nl ? k + 1 : k;
  l->line++;
  if (k > 0 && p[k - 1] == '\r') k--;
  *s = p;
  *n = k;
  return 1;
}

/* Reads a heredoc's body: the lines after line `open` up to one exactly
 * equal to the delimiter, joined with "\n", into v (WF_OUTPUT_MAX_VALUE
 * bytes).  The value's bound is checked on the line that passes it, so a
 * huge block fails without being copied. */
static int read_heredoc(lines_t *l, const char *name, const char *delim, size_t dn, long open,
                        char *v, size_t *vlen, char *err, size_t errlen) {
  const char *s;
  size_t n, len = 0;
  int first = 1;
  while (next_line(l, &s, &n)) {
    if (memchr(s, '\0', n)) return fail(err, errlen, "line %ld: a NUL byte", l->line);
    if (n == dn && memcmp(s, delim, dn) == 0) {
      *vlen = len;
      return 0;
    }
    size_t add = n + (first ? 0 : 1);
    if (add > WF_OUTPUT_MAX_VALUE - len)
      return fail(err, errlen, "line %ld: the value of %s is over %d bytes", l->line, name,
                  WF_OUTPUT_MAX_VALUE);
    /* A UTF-8 sequence never holds a '\n', so each line can be checked
     * alone, and the error names the line that breaks it. */
    if (!utf8_valid(s, n))
      return fail(err, errlen, "line %ld: the value of %s is not UTF-8", l->line, name);
    if (!first) v[len++] = '\n';
    memcpy(v + len, s, n);
    len += n;
    first = 0;
  }
  char d[SHOWN_MAX + 4];
  shown(d, delim, dn);
  return fail(err, errlen, "line %ld: no closing delimiter %s for %s (opened on line %ld)",
              l->line, d, name, open);
}

/* The value bound, counted over every value as it is parsed, a repeated
 * name's earlier values included: the simplest and strictest reading (a
 * file cannot make the node copy more than WF_OUTPUT_MAX_TOTAL bytes of
 * values by overwriting one name), and a file within it keeps within it
 * however its names repeat. */
static int store(wf_params_t *got, size_t *total, const char *name, const char *v, size_t vlen,
                 char *err, size_t errlen) {
  if (!wf_params_get(got, name) && got->n >= WF_OUTPUT_MAX_NAMES)
    return fail(err, errlen, "more than %d names", WF_OUTPUT_MAX_NAMES);
  *total += vlen;
  if (*total > WF_OUTPUT_MAX_TOTAL)
    return fail(err, errlen, "the values add up to over %d bytes", WF_OUTPUT_MAX_TOTAL);
  wf_params_set(got, name, v);
  return 0;
}

/*
 * Which form a line is: when the text before the first '=' is a name, it
 * is NAME=value (the value is everything after that '=', "<<" included);
 * else when the text before the first "<<" is a name, it is NAME<<DELIM
 * (the delimiter is everything after, '=' included); else an error.  As
 * names hold neither '=' nor '<', this is GitHub's rule (the form whose
 * marker comes first) for every line either accepts.  Values are also
 * checked to be UTF-8 (beyond the header's examples): status.response is
 * JSON, and jansson refuses any other string.  Parsed into a list of its
 * own, so out is left as it was when the file is refused.
 */
int wf_outputs_parse(const char *buf, size_t len, int truncated, wf_params_t *out, char *err,
                     size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (truncated) return fail(err, errlen, "the file is over %d bytes", WF_OUTPUT_MAX_FILE);
  wf_params_t got;
  wf_params_init(&got);
  char *v = wf_malloc(WF_OUTPUT_MAX_VALUE + 1);
  char *name = NULL;
  size_t total = 0;
  int r = 0;
  lines_t l = {buf, len, 0, 0};
  const char *s;
  size_t n;
  while (r == 0 && next_line(&l, &s, &n)) {
    long ln = l.line;
    if (memchr(s, '\0', n)) {
      r = fail(err, errlen, "line %ld: a NUL byte", ln);
      break;
    }
    if (n == 0) continue;
    const char *eqp = memchr(s, '=', n);
    size_t eq = eqp ? (size_t)(eqp - s) : n, hd = n;
    for (size_t i = 0; i + 1 < n; i++) {
      if (s[i] == '<' && s[i + 1] == '<') {
        hd = i;
        break;
      }
    }
    size_t vlen = 0;
    free(name);
    name = NULL;
    if (eq < n && name_valid(s, eq)) {
      name = wf_strndup(s, eq);
      vlen = n - eq - 1;
      if (vlen > WF_OUTPUT_MAX_VALUE) {
        r = fail(err, errlen, "line %ld: the value of %s is over %d bytes", ln, name,
                 WF_OUTPUT_MAX_VALUE);
        break;
      }
      if (!utf8_valid(s + eq + 1, vlen)) {
        r = fail(err, errlen, "line %ld: the value of %s is not UTF-8", ln, name);
        break;
      }
      memcpy(v, s + eq + 1, vlen);
    } else if (hd < n && name_valid(s, hd)) {
      name = wf_strndup(s, hd);
      if (hd + 2 == n) {
        r = fail(err, errlen, "line %ld: no delimiter after %s<<", ln, name);
        break;
      }
      r = read_heredoc(&l, name, s + hd + 2, n - hd - 2, ln, v, &vlen, err, errlen);
      if (r != 0) break;
    } else if (eq == n && hd == n) {
      r = fail(err, errlen, "line %ld: neither NAME=value nor NAME<<DELIMITER", ln);
      break;
    } else {
      char q[SHOWN_MAX + 4];
      shown(q, s, eq < hd ? eq : hd);
      r = fail(err, errlen, "line %ld: \"%s\" is not an output name ([A-Za-z_][A-Za-z0-9_]*)",
               ln, q);
      break;
    }
    v[vlen] = '\0';
    r = store(&got, &total, name, v, vlen, err, errlen);
  }
  if (r == 0)
    for (size_t i = 0; i < got.n; i++) wf_params_set(out, got.kv[i].key, got.kv[i].value);
  free(name);
  free(v);
  wf_params_finish(&got);
  return r;
}

/* ---- the summary line ---------------------------------------------------------- */

/* Beyond the header: a byte that starts no well-formed UTF-8 sequence
 * becomes '?' and a C1 control (U+0080..U+009F) a space, so that the line
 * is valid UTF-8 for the JSON it is stored in.  No replacement is longer
 * than what it replaces, so the cut can be decided on the output. */
char *wf_summary_line(const char *buf, size_t len) {
  const unsigned char *p = (const unsigned char *)buf;
  const char *nl = len ? memchr(buf, '\n', len) : NULL;
  size_t n = nl ? (size_t)(nl - buf) : len;
  if (n > 0 && p[n - 1] == '\r') n--;
  if (n == 0) return NULL;
  size_t cap = n < WF_SUMMARY_MAX ? n : WF_SUMMARY_MAX;
  char *out = wf_malloc(cap + 1);
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    size_t k = utf8_seq(p + i, n - i);
    const char *rep = NULL;
    if ((c < 0x20 && c != '\t') || c == 0x7f || (k == 2 && c == 0xc2 && p[i + 1] < 0xa0))
      rep = " ";
    else if (k == 0)
      rep = "?", k = 1;
    size_t w = rep ? 1 : k;
    if (o + w > cap) break;  /* a character that does not fit is not cut */
    memcpy(out + o, rep ? (const void *)rep : (const void *)(p + i), w);
    o += w;
    i += k;
  }
  out[o] = '\0';
  return out;
}

/* ---- pipeline keys ------------------------------------------------------------- */

/* A decimal id >= 1 in its canonical form: digits only, no leading zero
 * (so that one step has one key), not above INT64_MAX. */
static int parse_id(const char *s, size_t n, int64_t *out) {
  if (n == 0 || s[0] == '0') return -1;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    int d = s[i] - '0';
    if (v > (INT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int wf_pipeline_pos(const char *key, wf_pipeline_pos_t *pos) {
  if (!key) return -1;
  const char *dot[3];
  int nd = 0;
  for (const char *p = key; *p; p++) {
    if (*p != '.') continue;
    if (nd == 3) return -1;  /* a fifth part */
    dot[nd++] = p;
  }
  if (nd != 3) return -1;
  const char *end = key + strlen(key);
  /* namespace and pipeline id non-empty */
  if (dot[0] == key || dot[1] == dot[0] + 1) return -1;
  wf_pipeline_pos_t p;
  if (parse_id(dot[1] + 1, (size_t)(dot[2] - dot[1] - 1), &p.stage) != 0) return -1;
  if (parse_id(dot[2] + 1, (size_t)(end - dot[2] - 1), &p.step) != 0) return -1;
  p.run = key;
  p.run_len = (size_t)(dot[1] - key) + 1;
  *pos = p;
  return 0;
}

/* ---- offers ---------------------------------------------------------------------- */

/* One earlier step that succeeded with outputs. */
typedef struct kept_s {
  int64_t stage, flow, step;  /* flow 0: none */
  char *origin;     /* what origins names it by: its name, else its key */
  int qualified;    /* its name can prefix its outputs */
  wf_kv_t *kv;      /* owned NAME -> value */
  size_t n;
  size_t bytes;     /* what it counts towards WF_OFFERS_MAX_KEPT */
} kept_t;

struct wf_offers_s {
  char *key;
  wf_pipeline_pos_t pos;  /* points into key */
  int64_t flow;
  kept_t *k;
  size_t n, cap;
  size_t bytes;
};

static void kept_finish(kept_t *k) {
  for (size_t i = 0; i < k->n; i++) {
    free((char *)k->kv[i].key);
    free((char *)k->kv[i].value);
  }
  free(k->kv);
  free(k->origin);
}

wf_offers_t *wf_offers_create(const char *key, int64_t flow) {
  wf_pipeline_pos_t pos;
  if (wf_pipeline_pos(key, &pos) != 0) return NULL;
  wf_offers_t *o = wf_calloc(1, sizeof *o);
  o->key = wf_strdup(key);
  wf_pipeline_pos(o->key, &o->pos);
  o->flow = flow > 0 ? flow : 0;
  return o;
}

void wf_offers_destroy(wf_offers_t *o) {
  if (!o) return;
  for (size_t i = 0; i < o->n; i++) kept_finish(&o->k[i]);
  free(o->k);
  free(o->key);
  free(o);
}

/* Drops what was kept of the step at (stage, step): a step fed twice (a
 * list and then a watch event) counts once, as its latest version. */
static void drop_kept(wf_offers_t *o, int64_t stage, int64_t step) {
  for (size_t i = 0; i < o->n; i++) {
    if (o->k[i].stage != stage || o->k[i].step != step) continue;
    o->bytes -= o->k[i].bytes;
    kept_finish(&o->k[i]);
    o->k[i] = o->k[--o->n];
    return;
  }
}

/* The key is the argument (where the step is stored); the object's "key"
 * only when the argument is NULL.  What is kept is counted as the bytes of
 * names and values, the memory it takes. */
int wf_offers_add(wf_offers_t *o, const char *key, const json_t *step, char *err,
                  size_t errlen) {
  if (!o || !json_is_object(step)) return 0;
  if (!key) key = json_string_value(json_object_get(step, "key"));
  wf_pipeline_pos_t p;
  if (wf_pipeline_pos(key, &p) != 0) return 0;
  if (p.run_len != o->pos.run_len || memcmp(p.run, o->pos.run, p.run_len) != 0) return 0;
  if (p.stage == o->pos.stage && p.step == o->pos.step) return 0;  /* the step itself */
  drop_kept(o, p.stage, p.step);
  json_t *st = json_object_get(step, "status");
  json_t *fn = json_object_get(st, "flow_number");
  int64_t flow = json_is_integer(fn) && json_integer_value(fn) > 0 ? json_integer_value(fn) : 0;
  int earlier = p.stage < o->pos.stage ||
                (p.stage == o->pos.stage && flow > 0 && o->flow > 0 && flow < o->flow);
  if (!earlier) return 0;
  wf_step_head_t head;
  wf_step_head(step, &head);
  if (head.status != WF__STEP__STATUS__SUCCEEDED) return 0;
  json_t *resp = json_object_get(st, "response");
  if (!json_is_object(resp)) return 0;

  const size_t plen = strlen(WF_OUTPUT_KEY_PREFIX);
  const char *k;
  json_t *v;
  size_t n = 0, bytes = 0;
  json_object_foreach(resp, k, v) {
    const char *name = k + plen;
    /* A value holding a NUL (\u0000) is not one a step could write. */
    if (strncmp(k, WF_OUTPUT_KEY_PREFIX, plen) != 0 || !name_valid(name, strlen(name)) ||
        !json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
      continue;
    n++;
    bytes += strlen(name) + json_string_length(v);
  }
  if (n == 0) return 0;
  const char *sname = json_string_value(json_object_get(step, "name"));
  const char *origin = sname && *sname ? sname : key;
  bytes += strlen(origin);
  if (bytes > WF_OFFERS_MAX_KEPT - o->bytes)
    return fail(err, errlen, "the outputs of the earlier steps add up to over %d bytes",
                WF_OFFERS_MAX_KEPT);

  kept_t kp = {.stage = p.stage, .flow = flow, .step = p.step, .origin = wf_strdup(origin),
               .qualified = step_name_valid(sname), .kv = wf_calloc(n, sizeof(wf_kv_t)),
               .bytes = bytes};
  json_object_foreach(resp, k, v) {
    const char *name = k + plen;
    if (strncmp(k, WF_OUTPUT_KEY_PREFIX, plen) != 0 || !name_valid(name, strlen(name)) ||
        !json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
      continue;
    kp.kv[kp.n].key = wf_strdup(name);
    kp.kv[kp.n].value = wf_strdup(json_string_value(v));
    kp.n++;
  }
  if (o->n == o->cap) {
    o->cap = o->cap ? o->cap * 2 : 8;
    o->k = wf_realloc(o->k, o->cap * sizeof *o->k);
  }
  o->k[o->n++] = kp;
  o->bytes += bytes;
  return 0;
}

/* ---- the fields of a stored step, from its bytes ---------------------------------- */

/* Read the way jansson would (the scanner declines whatever it is unsure
 * of), into {"name", "status": {"status", "flow_number", "response": {only
 * output.* strings}}}: the members wf_offers_add looks at, of the types it
 * takes.  A member of another type is left out, which wf_offers_add reads
 * as jansson's value of the wrong type. */
typedef struct fast_s {
  json_t *top, *status, *response;
  unsigned seen_top, seen_status;
} fast_t;

static int fast_response(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  fast_t *f = ctx;
  const size_t plen = sizeof WF_OUTPUT_KEY_PREFIX - 1;
  const char *b;
  size_t n;
  if (kn <= plen || memcmp(k, WF_OUTPUT_KEY_PREFIX, plen) != 0 || *s->p != '"')
    return wf_jscan_skip(s);
  json_t *v;
  if (wf_jscan_str(s, &b, &n) == 0) {
    v = json_stringn(b, n);
  } else {
    /* Escapes (a value of several lines) or UTF-8: jansson reads the
     * string alone, so it is decoded exactly as in the whole document. */
    const char *q = s->p + 1;
    while (q < s->end && *q != '"') q += *q == '\\' ? 2 : 1;
    if (q >= s->end) return WF_JSCAN_DECLINE;
    v = json_loadb(s->p, (size_t)(q + 1 - s->p), JSON_DECODE_ANY, NULL);
    if (!json_is_string(v)) {
      json_decref(v);
      return WF_JSCAN_DECLINE;
    }
    s->p = q + 1;
  }
  /* A repeated key: the later value wins, as in jansson. */
  char *key = wf_strndup(k, kn);
  json_object_set_new(f->response, key, v);
  free(key);
  return 0;
}

static int fast_status(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  fast_t *f = ctx;
  const char *b;
  size_t n;
  int64_t v;
  int is_int;
  if (WF_JSCAN_KEYIS(k, kn, "status")) {
    if (wf_jscan_once(&f->seen_status, 1)) return WF_JSCAN_DECLINE;
    if (*s->p == '"') {
      if (wf_jscan_str(s, &b, &n)) return WF_JSCAN_DECLINE;
      json_object_set_new(f->status, "status", json_stringn(b, n));
      return 0;
    }
    if (*s->p == 'n') return wf_jscan_lit(s, "null", 4);  /* as missing */
    if (wf_jscan_num(s, &v, &is_int) || !is_int) return WF_JSCAN_DECLINE;
    json_object_set_new(f->status, "status", json_integer(v));
    return 0;
  }
  if (WF_JSCAN_KEYIS(k, kn, "flow_number")) {
    if (wf_jscan_once(&f->seen_status, 2)) return WF_JSCAN_DECLINE;
    if (*s->p != '-' && (*s->p < '0' || *s->p > '9')) return wf_jscan_skip(s);
    if (wf_jscan_num(s, &v, &is_int)) return WF_JSCAN_DECLINE;
    if (is_int) json_object_set_new(f->status, "flow_number", json_integer(v));
    return 0;
  }
  if (WF_JSCAN_KEYIS(k, kn, "response")) {
    if (wf_jscan_once(&f->seen_status, 4)) return WF_JSCAN_DECLINE;
    if (*s->p != '{') return wf_jscan_skip(s);
    f->response = json_object();
    json_object_set_new(f->status, "response", f->response);
    return wf_jscan_object(s, fast_response, f);
  }
  return wf_jscan_skip(s);
}

static int fast_top(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  fast_t *f = ctx;
  const char *b;
  size_t n;
  if (WF_JSCAN_KEYIS(k, kn, "name")) {
    if (wf_jscan_once(&f->seen_top, 1)) return WF_JSCAN_DECLINE;
    if (*s->p != '"') return wf_jscan_skip(s);
    if (wf_jscan_str(s, &b, &n)) return WF_JSCAN_DECLINE;
    json_object_set_new(f->top, "name", json_stringn(b, n));
    return 0;
  }
  if (WF_JSCAN_KEYIS(k, kn, "status")) {
    if (wf_jscan_once(&f->seen_top, 2)) return WF_JSCAN_DECLINE;
    if (*s->p != '{') return wf_jscan_skip(s);
    f->status = json_object();
    json_object_set_new(f->top, "status", f->status);
    return wf_jscan_object(s, fast_status, f);
  }
  return wf_jscan_skip(s);
}

int wf_offers_add_bytes(wf_offers_t *o, const char *key, const char *p, size_t n, char *err,
                        size_t errlen) {
  wf_jscan_t s;
  fast_t f = {.top = json_object()};
  wf_jscan_init(&s, p, n, 32, 0);
  wf_jscan_ws(&s);
  json_t *obj = f.top;
  if (s.p >= s.end || *s.p != '{' || wf_jscan_object(&s, fast_top, &f) || wf_jscan_end(&s)) {
    json_decref(f.top);
    obj = json_loadb(p, n, 0, NULL);
  }
  int r = json_is_object(obj) ? wf_offers_add(o, key, obj, err, errlen) : 0;
  json_decref(obj);
  return r;
}

static int cmp_i64(int64_t a, int64_t b) { return a < b ? -1 : a > b; }

static int kept_cmp(const void *a, const void *b) {
  const kept_t *x = a, *y = b;
  int c = cmp_i64(x->stage, y->stage);
  if (!c) c = cmp_i64(x->flow, y->flow);
  if (!c) c = cmp_i64(x->step, y->step);
  return c;
}

/* The merge: keys in the order they first appear, each with the value and
 * origin of the last step that set it.  A hash map finds a key, so the
 * merge stays linear however many outputs the earlier steps have. */
typedef struct merged_s {
  char *key;
  const char *value, *origin;  /* borrowed from the kept steps */
} merged_t;

typedef struct merge_s {
  wf_map_t index;  /* key -> position + 1 */
  merged_t *e;
  size_t n, cap;
} merge_t;

/* key: malloc'd, taken. */
static void merge_put(merge_t *m, char *key, const char *value, const char *origin) {
  uintptr_t at = (uintptr_t)wf_map_get(&m->index, key);
  if (at) {
    free(key);
    m->e[at - 1].value = value;
    m->e[at - 1].origin = origin;
    return;
  }
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 16;
    m->e = wf_realloc(m->e, m->cap * sizeof *m->e);
  }
  m->e[m->n] = (merged_t){key, value, origin};
  wf_map_put(&m->index, key, (void *)(uintptr_t)(m->n + 1));
  m->n++;
}

/* wf_params_set for every merged key, in linear time: a list already
 * holding keys gets them replaced in place, as wf_params_set would. */
static void params_put_all(wf_params_t *p, const merge_t *m, int origins) {
  wf_map_t have;
  wf_map_init(&have);
  for (size_t i = 0; i < p->n; i++) wf_map_put(&have, p->kv[i].key, (void *)(uintptr_t)(i + 1));
  if (p->cap < p->n + m->n) {
    p->cap = p->n + m->n;
    p->kv = wf_realloc(p->kv, p->cap * sizeof *p->kv);
  }
  for (size_t i = 0; i < m->n; i++) {
    const char *v = origins ? m->e[i].origin : m->e[i].value;
    uintptr_t at = (uintptr_t)wf_map_get(&have, m->e[i].key);
    if (at) {
      free((char *)p->kv[at - 1].value);
      p->kv[at - 1].value = wf_strdup(v);
    } else {
      p->kv[p->n].key = wf_strdup(m->e[i].key);
      p->kv[p->n].value = wf_strdup(v);
      p->n++;
    }
  }
  wf_map_finish(&have);
}

/* The merged bound counts every offered key and value (NAME and
 * <step name>.NAME alike): what may end up in a process's environment. */
int wf_offers_finish(wf_offers_t *o, wf_params_t *offers, wf_params_t *origins, char *err,
                     size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (o->n) qsort(o->k, o->n, sizeof *o->k, kept_cmp); /* qsort(NULL, 0) is undefined */
  merge_t m = {.e = NULL, .n = 0, .cap = 0};
  wf_map_init(&m.index);
  for (size_t i = 0; i < o->n; i++) {
    const kept_t *k = &o->k[i];
    for (size_t j = 0; j < k->n; j++) {
      merge_put(&m, wf_strdup(k->kv[j].key), k->kv[j].value, k->origin);
      if (k->qualified)
        merge_put(&m, wf_asprintf("%s.%s", k->origin, k->kv[j].key), k->kv[j].value, k->origin);
    }
  }
  size_t total = 0;
  for (size_t i = 0; i < m.n; i++) total += strlen(m.e[i].key) + strlen(m.e[i].value);
  int r = 0;
  if (total > WF_OFFERS_MAX_TOTAL) {
    r = fail(err, errlen, "the outputs offered by the earlier steps add up to over %d bytes",
             WF_OFFERS_MAX_TOTAL);
  } else {
    params_put_all(offers, &m, 0);
    if (origins) params_put_all(origins, &m, 1);
  }
  for (size_t i = 0; i < m.n; i++) free(m.e[i].key);
  free(m.e);
  wf_map_finish(&m.index);
  return r;
}

int wf_output_name_guarded(const char *name) {
  static const char *const exact[] = {
      "PATH", "HOME", "SHELL", "USER", "LOGNAME", "IFS", "ENV", "BASH_ENV", "SHELLOPTS",
      "BASHOPTS", "PS4", "PROMPT_COMMAND", "CDPATH", "GLOBIGNORE", "TMPDIR", "GCONV_PATH",
      "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "GLIBC_TUNABLES",
      "PERL5OPT", "PERL5LIB", "PERLLIB", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
      "PYTHONINSPECT", "NODE_OPTIONS", "NODE_PATH", "RUBYOPT", "RUBYLIB",
      "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "GIT_SSH", "GIT_SSH_COMMAND",
      "GIT_EXEC_PATH", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "SSL_CERT_FILE", "SSL_CERT_DIR",
  };
  static const char *const prefix[] = {"LD_", "DYLD_", "MALLOC_", "BASH_FUNC_"};
  for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
    if (strcmp(name, exact[i]) == 0) return 1;
  for (size_t i = 0; i < sizeof prefix / sizeof prefix[0]; i++)
    if (strncmp(name, prefix[i], strlen(prefix[i])) == 0) return 1;
  return 0;
}
