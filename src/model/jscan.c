/*
 * model/jscan.c: the byte-level JSON scanner that the etcd answers' fast
 * path and the step head scanner share (include/wf/jscan.h says what it
 * accepts and what it declines).
 *
 * Why a scanner of our own: jansson spends about 100 instructions per byte
 * building a tree, and the hot readers want three to ten fields out of
 * kilobytes of base64 or step JSON (bench part 2, docs/benchmarks.md).  Why
 * it declines so much: whatever it accepts, jansson must accept with the same
 * meaning, and the cheapest way to be sure of that is to read only the plain
 * case and leave every other input to jansson.  Recursion is bounded by the
 * caller's max_depth, so hostile nesting cannot exhaust the stack.
 */
#include "wf/jscan.h"

void wf_jscan_init(wf_jscan_t *s, const char *p, size_t n, int max_depth, unsigned flags) {
  s->p = p;
  s->end = p + n;
  s->depth = 0;
  s->max_depth = max_depth;
  s->flags = flags;
}

void wf_jscan_ws(wf_jscan_t *s) {
  const char *q = s->p, *end = s->end;
  /* Most of what the readers see is compact JSON: no white space at all. */
  while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
  s->p = q;
}

int wf_jscan_lit(wf_jscan_t *s, const char *lit, size_t n) {
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) return WF_JSCAN_DECLINE;
  s->p += n;
  return 0;
}

/* The bytes a string scan stops at: the closing quote, and every byte it
 * declines: a backslash, control characters, and 0x80 and up (jansson checks
 * UTF-8, we do not); 0x7f too for a reader that wants printable text.  A
 * table, four bytes a turn: the strings are kilobytes of base64 (watch
 * events, list pages), and this loop was the scanner's largest cost
 * (bench part 8). */
static const unsigned char stop_any[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 1};
static const unsigned char stop_printable[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x7f ... 0xff] = 1};

int wf_jscan_str(wf_jscan_t *s, const char **b, size_t *n) {
  if (s->p >= s->end || *s->p != '"') return WF_JSCAN_DECLINE;
  const unsigned char *stop = (s->flags & WF_JSCAN_PRINTABLE) ? stop_printable : stop_any;
  const unsigned char *q = (const unsigned char *)s->p + 1;
  const unsigned char *end = (const unsigned char *)s->end;
  while (end - q >= 4 && !(stop[q[0]] | stop[q[1]] | stop[q[2]] | stop[q[3]])) q += 4;
  while (q < end && !stop[*q]) q++;
  if (q >= end || *q != '"') return WF_JSCAN_DECLINE;
  *b = s->p + 1;
  *n = (size_t)((const char *)q - (s->p + 1));
  s->p = (const char *)q + 1;
  return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int wf_jscan_num(wf_jscan_t *s, int64_t *v, int *is_int) {
  const char *q = s->p;
  int neg = 0;
  if (q < s->end && *q == '-') {
    neg = 1;
    q++;
  }
  const char *d0 = q;
  while (q < s->end && is_digit(*q)) q++;
  size_t nd = (size_t)(q - d0);
  /* 18 digits always fit an int64; 19 may not, and jansson decides. */
  if (nd == 0 || (nd > 1 && *d0 == '0') || nd > 18) return WF_JSCAN_DECLINE;
  int frac = 0;
  if (q < s->end && *q == '.') {
    const char *f = ++q;
    while (q < s->end && is_digit(*q)) q++;
    if (q == f) return WF_JSCAN_DECLINE;
    frac = 1;
  }
  /* An exponent may overflow a double, which jansson refuses. */
  if (q < s->end && (*q == 'e' || *q == 'E')) return WF_JSCAN_DECLINE;
  if (frac && (s->flags & WF_JSCAN_INT_ONLY)) return WF_JSCAN_DECLINE;
  if (q - s->p > 40) return WF_JSCAN_DECLINE;
  int64_t acc = 0;
  for (const char *c = d0; c < d0 + nd; c++) acc = acc * 10 + (*c - '0');
  *v = neg ? -acc : acc;
  *is_int = !frac;
  s->p = q;
  return 0;
}

/* Opens the object or array at s->p if it is `open` and the depth allows. */
static int enter(wf_jscan_t *s, char open) {
  if (s->p >= s->end || *s->p != open || s->depth >= s->max_depth) return WF_JSCAN_DECLINE;
  s->depth++;
  s->p++;
  return 0;
}

/* After a member or element: 0 and *done = 1 at the closing byte, 0 after a
 * comma, or a decline. */
static int next(wf_jscan_t *s, char close, int *done) {
  wf_jscan_ws(s);
  if (s->p >= s->end) return WF_JSCAN_DECLINE;
  if (*s->p == close) {
    s->p++;
    s->depth--;
    *done = 1;
    return 0;
  }
  if (*s->p != ',') return WF_JSCAN_DECLINE;
  s->p++;
  return 0;
}

int wf_jscan_object(wf_jscan_t *s, wf_jscan_member_cb cb, void *ctx) {
  int done = 0;
  if (enter(s, '{')) return WF_JSCAN_DECLINE;
  wf_jscan_ws(s);
  if (s->p < s->end && *s->p == '}') return next(s, '}', &done);
  while (!done) {
    const char *k;
    size_t kn;
    wf_jscan_ws(s);
    if (wf_jscan_str(s, &k, &kn)) return WF_JSCAN_DECLINE;
    wf_jscan_ws(s);
    if (s->p >= s->end || *s->p != ':') return WF_JSCAN_DECLINE;
    s->p++;
    wf_jscan_ws(s);
    /* The callbacks may look at *s->p without checking the end. */
    if (s->p >= s->end || cb(s, k, kn, ctx)) return WF_JSCAN_DECLINE;
    if (next(s, '}', &done)) return WF_JSCAN_DECLINE;
  }
  return 0;
}

int wf_jscan_array(wf_jscan_t *s, wf_jscan_elem_cb cb, void *ctx) {
  int done = 0;
  if (enter(s, '[')) return WF_JSCAN_DECLINE;
  wf_jscan_ws(s);
  if (s->p < s->end && *s->p == ']') return next(s, ']', &done);
  while (!done) {
    wf_jscan_ws(s);
    if (s->p >= s->end || cb(s, ctx)) return WF_JSCAN_DECLINE;
    if (next(s, ']', &done)) return WF_JSCAN_DECLINE;
  }
  return 0;
}

static int skip_member(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  (void)k;
  (void)kn;
  (void)ctx;
  return wf_jscan_skip(s);
}

static int skip_elem(wf_jscan_t *s, void *ctx) {
  (void)ctx;
  return wf_jscan_skip(s);
}

int wf_jscan_skip(wf_jscan_t *s) {
  const char *b;
  size_t n;
  int64_t v;
  int is_int;
  if (s->p >= s->end) return WF_JSCAN_DECLINE;
  switch (*s->p) {
    case '"': return wf_jscan_str(s, &b, &n);
    case '{': return wf_jscan_object(s, skip_member, NULL);
    case '[': return wf_jscan_array(s, skip_elem, NULL);
    case 't': return wf_jscan_lit(s, "true", 4);
    case 'f': return wf_jscan_lit(s, "false", 5);
    case 'n': return wf_jscan_lit(s, "null", 4);
    default: return wf_jscan_num(s, &v, &is_int);
  }
}

int wf_jscan_end(wf_jscan_t *s) {
  wf_jscan_ws(s);
  return s->p == s->end ? 0 : WF_JSCAN_DECLINE;
}

int wf_jscan_once(unsigned *seen, unsigned bit) {
  if (*seen & bit) return WF_JSCAN_DECLINE;
  *seen |= bit;
  return 0;
}
