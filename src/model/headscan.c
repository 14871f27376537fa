/*
 * model/headscan.c: wf_step_head straight from a stored value's bytes.
 *
 * Every watch event and every dispatch of a step starts by reading three
 * fields (status.status, status.scheduled_node, status.start_at); building
 * a jansson tree of the whole step for them was the largest user-space cost
 * per step after the spawn (bench part 2).  This reader walks the bytes once
 * with the JSON scanner (model/jscan.c), which checks that they are a JSON
 * document jansson would accept, and picks the three fields on the way.
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
#include "wf/jscan.h"
#include "wf/model.h"
#include "workflow.pb-c.h"

/* An object or array opened 32 levels deep declines.  Stored steps nest a
 * few levels; the bound only keeps hostile input from recursing far. */
#define MAX_DEPTH 32

typedef struct {
  wf_step_head_t *out;
  char *nodebuf;
  size_t nodecap;
  unsigned seen;  /* keys read once each: a repeat declines */
} head_ctx_t;

/* A member of the "status" object: picks the three fields. */
static int status_member(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  head_ctx_t *h = ctx;
  wf_step_head_t *out = h->out;
  const char *b;
  size_t n;
  int is_int;
  int64_t v;
  if (WF_JSCAN_KEYIS(k, kn, "scheduled_node")) {
    if (wf_jscan_once(&h->seen, 1)) return WF_JSCAN_DECLINE;
    if (*s->p != '"') return wf_jscan_skip(s);
    if (wf_jscan_str(s, &b, &n) || n >= h->nodecap) return WF_JSCAN_DECLINE;
    memcpy(h->nodebuf, b, n);
    h->nodebuf[n] = '\0';
    out->node = h->nodebuf;
    return 0;
  }
  if (WF_JSCAN_KEYIS(k, kn, "status")) {
    if (wf_jscan_once(&h->seen, 2)) return WF_JSCAN_DECLINE;
    out->status = -1;
    if (*s->p == '"') {
      char name[64];
      int e;
      if (wf_jscan_str(s, &b, &n)) return WF_JSCAN_DECLINE;
      if (n < sizeof name) {
        memcpy(name, b, n);
        name[n] = '\0';
        if (wf_enum_parse(&wf__step__status__descriptor, name, &e) == 0) out->status = e;
      }
      return 0;
    }
    if (*s->p == 'n') {
      if (wf_jscan_lit(s, "null", 4)) return WF_JSCAN_DECLINE;
      out->status = WF__STEP__STATUS__PENDDING; /* proto3 zero value */
      return 0;
    }
    if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) {
      if (wf_jscan_num(s, &v, &is_int)) return WF_JSCAN_DECLINE;
      /* (int) as wf_step_head casts jansson's integer: the same answer
       * for out-of-range values too. */
      if (is_int && wf_enum_name(&wf__step__status__descriptor, (int)v)) out->status = (int)v;
      return 0;
    }
    return wf_jscan_skip(s);
  }
  if (WF_JSCAN_KEYIS(k, kn, "start_at")) {
    if (wf_jscan_once(&h->seen, 4)) return WF_JSCAN_DECLINE;
    if (*s->p != '-' && (*s->p < '0' || *s->p > '9')) return wf_jscan_skip(s);
    if (wf_jscan_num(s, &v, &is_int)) return WF_JSCAN_DECLINE;
    if (is_int) out->start_at = v;
    return 0;
  }
  return wf_jscan_skip(s);
}

/* A top-level member: only "status" matters. */
static int top_member(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  head_ctx_t *h = ctx;
  if (!WF_JSCAN_KEYIS(k, kn, "status")) return wf_jscan_skip(s);
  if (wf_jscan_once(&h->seen, 8)) return WF_JSCAN_DECLINE;
  if (*s->p != '{') return wf_jscan_skip(s);
  if (wf_jscan_object(s, status_member, h)) return WF_JSCAN_DECLINE;
  /* absent: proto3 zero value */
  if (!(h->seen & 2)) h->out->status = WF__STEP__STATUS__PENDDING;
  return 0;
}

int wf_step_head_scan(const char *p, size_t n, wf_step_head_t *out, char *nodebuf,
                      size_t nodecap) {
  wf_jscan_t s;
  head_ctx_t h = {out, nodebuf, nodecap, 0};
  if (!nodecap) return 0;
  out->node = "";
  out->status = -1;
  out->start_at = 0;
  /* The head scanner's own rules: 0x7f is an ordinary byte in a node name,
   * and a fraction (a webhook's cost) is a value like any other. */
  wf_jscan_init(&s, p, n, MAX_DEPTH, 0);
  wf_jscan_ws(&s);
  if (s.p >= s.end || *s.p != '{') return 0;
  if (wf_jscan_object(&s, top_member, &h) || wf_jscan_end(&s)) return 0;
  return 1;
}
