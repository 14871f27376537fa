/*
 * model/headscan.c: wf_step_head straight from a stored value's bytes.
 *
 * Every watch event and every dispatch of a step starts by reading three
 * fields (status.status, status.scheduled_node, status.start_at); building
 * a jansson tree of the whole step for them was the largest user-space cost
 * per step after the spawn (bench part 2).  This scanner walks the bytes
 * once, checks that they are a JSON document jansson would accept, and
 * picks the three fields on the way.
 *
 * It only answers when it is certain: any backslash, byte >= 0x80, control
 * character, number that could overflow, nesting deeper than MAX_DEPTH,
 * repeated key among the ones it reads, or anything else unusual makes it
 * return 0, and the caller parses with jansson as before.  So the two can
 * only differ where this one declines; test/model/test-headscan.c checks
 * that on every cut and one-byte change of sample steps.
 */
#include <stdint.h>
#include <string.h>

#include "wf/codec.h"
#include "wf/model.h"
#include "workflow.pb-c.h"

#define MAX_DEPTH 32

typedef struct {
  const char *p, *end;
} scan_t;

static void ws(scan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

/* A string without escapes or non-ASCII bytes: its body in [*b, *b + *n). */
static int str(scan_t *s, const char **b, size_t *n) {
  if (s->p >= s->end || *s->p != '"') return 0;
  const char *q = ++s->p;
  while (s->p < s->end) {
    unsigned char c = (unsigned char)*s->p;
    if (c == '"') {
      *b = q;
      *n = (size_t)(s->p - q);
      s->p++;
      return 1;
    }
    if (c == '\\' || c < 0x20 || c >= 0x80) return 0;
    s->p++;
  }
  return 0;
}

/* A JSON number; *is_int and *v for an integer that surely fits int64. */
static int num(scan_t *s, int *is_int, int64_t *v) {
  const char *q = s->p;
  int neg = 0, digits = 0;
  int64_t acc = 0;
  if (s->p < s->end && *s->p == '-') {
    neg = 1;
    s->p++;
  }
  if (s->p >= s->end || *s->p < '0' || *s->p > '9') return 0;
  if (*s->p == '0') {
    s->p++;
    digits = 1;
  } else {
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
      if (++digits > 18) return 0;  /* might not fit: jansson decides */
      acc = acc * 10 + (*s->p++ - '0');
    }
  }
  *is_int = 1;
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9') return 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
    *is_int = 0;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) return 0;  /* may overflow */
  if (s->p - q > 40) return 0;
  *v = neg ? -acc : acc;
  return 1;
}

static int lit(scan_t *s, const char *w, size_t n) {
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return 0;
  s->p += n;
  return 1;
}

static int value(scan_t *s, int depth);

/* One member's value, at s->p (after the ':'); 1 to go on, 0 to decline. */
typedef int (*member_fn)(scan_t *s, const char *k, size_t kn, void *ctx, int depth);

/* The object or array at s->p ('{' or '['): for an object, member() reads
 * each member's value; for an array, value() each element. */
static int walk(scan_t *s, int depth, member_fn member, void *ctx) {
  char close = *s->p == '{' ? '}' : ']';
  const char *k = NULL;
  size_t kn = 0;
  if (++depth > MAX_DEPTH) return 0;
  s->p++;
  ws(s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    return 1;
  }
  for (;;) {
    ws(s);
    if (close == '}') {
      if (!str(s, &k, &kn)) return 0;
      ws(s);
      if (s->p >= s->end || *s->p++ != ':') return 0;
      ws(s);
      if (s->p >= s->end) return 0;
    }
    if (!(member && close == '}' ? member(s, k, kn, ctx, depth) : value(s, depth))) return 0;
    ws(s);
    if (s->p >= s->end) return 0;
    if (*s->p == close) {
      s->p++;
      return 1;
    }
    if (*s->p++ != ',') return 0;
  }
}

static int value(scan_t *s, int depth) {
  const char *b;
  size_t n;
  int is_int;
  int64_t v;
  if (s->p >= s->end) return 0;
  switch (*s->p) {
    case '{':
    case '[': return walk(s, depth, NULL, NULL);
    case '"': return str(s, &b, &n);
    case 't': return lit(s, "true", 4);
    case 'f': return lit(s, "false", 5);
    case 'n': return lit(s, "null", 4);
    default: return num(s, &is_int, &v);
  }
}

#define KEYIS(k, kn, lit) ((kn) == sizeof(lit) - 1 && memcmp((k), lit, sizeof(lit) - 1) == 0)

typedef struct {
  wf_step_head_t *out;
  char *nodebuf;
  size_t nodecap;
  unsigned seen;  /* keys read once each: a repeat declines */
} head_ctx_t;

/* A member of the "status" object: picks the three fields. */
static int status_member(scan_t *s, const char *k, size_t kn, void *ctx, int depth) {
  head_ctx_t *h = ctx;
  wf_step_head_t *out = h->out;
  const char *b;
  size_t n;
  int is_int;
  int64_t v;
  if (KEYIS(k, kn, "scheduled_node")) {
    if (h->seen & 1) return 0;
    h->seen |= 1;
    if (*s->p != '"') return value(s, depth);
    if (!str(s, &b, &n) || n >= h->nodecap) return 0;
    memcpy(h->nodebuf, b, n);
    h->nodebuf[n] = '\0';
    out->node = h->nodebuf;
    return 1;
  }
  if (KEYIS(k, kn, "status")) {
    if (h->seen & 2) return 0;
    h->seen |= 2;
    out->status = -1;
    if (*s->p == '"') {
      char name[64];
      int e;
      if (!str(s, &b, &n)) return 0;
      if (n < sizeof name) {
        memcpy(name, b, n);
        name[n] = '\0';
        if (wf_enum_parse(&wf__step__status__descriptor, name, &e) == 0) out->status = e;
      }
      return 1;
    }
    if (*s->p == 'n') {
      if (!lit(s, "null", 4)) return 0;
      out->status = WF__STEP__STATUS__PENDDING; /* proto3 zero value */
      return 1;
    }
    if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) {
      if (!num(s, &is_int, &v)) return 0;
      /* (int) as wf_step_head casts jansson's integer: the same answer
       * for out-of-range values too. */
      if (is_int && wf_enum_name(&wf__step__status__descriptor, (int)v)) out->status = (int)v;
      return 1;
    }
    return value(s, depth);
  }
  if (KEYIS(k, kn, "start_at")) {
    if (h->seen & 4) return 0;
    h->seen |= 4;
    if (*s->p != '-' && (*s->p < '0' || *s->p > '9')) return value(s, depth);
    if (!num(s, &is_int, &v)) return 0;
    if (is_int) out->start_at = v;
    return 1;
  }
  return value(s, depth);
}

/* A top-level member: only "status" matters. */
static int top_member(scan_t *s, const char *k, size_t kn, void *ctx, int depth) {
  head_ctx_t *h = ctx;
  if (!KEYIS(k, kn, "status")) return value(s, depth);
  if (h->seen & 8) return 0;
  h->seen |= 8;
  if (*s->p != '{') return value(s, depth);
  if (!walk(s, depth, status_member, h)) return 0;
  /* absent: proto3 zero value */
  if (!(h->seen & 2)) h->out->status = WF__STEP__STATUS__PENDDING;
  return 1;
}

int wf_step_head_scan(const char *p, size_t n, wf_step_head_t *out, char *nodebuf,
                      size_t nodecap) {
  scan_t s = {p, p + n};
  head_ctx_t h = {out, nodebuf, nodecap, 0};
  if (!nodecap) return 0;
  out->node = "";
  out->status = -1;
  out->start_at = 0;
  ws(&s);
  if (s.p >= s.end || *s.p != '{') return 0;
  if (!walk(&s, 0, top_member, &h)) return 0;
  ws(&s);
  return s.p == s.end;
}
