/*
 * jscan: the one byte-level JSON scanner of the hot readers, shared by the
 * etcd answers' fast path (src/etcd/parse.c: list pages, txn answers, watch
 * messages) and the step head scanner (src/model/headscan.c).
 *
 * It walks the bytes once, builds no tree and allocates nothing.  It reads
 * only the plain case that machine-written JSON almost always is, and on
 * anything unusual it declines: a backslash, a byte >= 0x80, a control
 * character, a number that might not fit an int64 or that has an exponent,
 * nesting deeper than the caller's bound, or a malformed document.  A
 * decline is not an error: it means "not sure", and the caller parses the
 * same bytes with jansson, whose answer stays the reference.  So a reader on
 * top of it may only ever differ from jansson by declining.  Repeated keys
 * are the reader's business (wf_jscan_once), since only it knows which keys
 * it takes.
 *
 * Every function returns 0 when it has read what was asked (s->p then just
 * past it) or WF_JSCAN_DECLINE; after a decline s is in no defined state
 * and the scan is abandoned.  Pure: no libuv, no jansson.
 */
#ifndef WF_JSCAN_H
#define WF_JSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* What every function returns when it is not sure. */
#define WF_JSCAN_DECLINE 1

/* Flags of wf_jscan_init: each makes the scanner decline more.  The two
 * readers were written with different rules, and each keeps its own. */
#define WF_JSCAN_PRINTABLE 0x1u /* strings: printable ASCII only (decline 0x7f too) */
#define WF_JSCAN_INT_ONLY 0x2u  /* numbers: decline fractions too, even skipped ones */

typedef struct wf_jscan_s {
  const char *p;   /* the next byte */
  const char *end; /* one past the last byte */
  int depth;       /* objects and arrays open around p */
  int max_depth;   /* an object or array opened at this depth declines */
  unsigned flags;  /* WF_JSCAN_* */
} wf_jscan_t;

/* The scanner over [p, p + n) (borrowed; it need not be NUL-terminated).
 * The top-level value is at depth 0, so max_depth 1 allows one object of
 * scalars. */
void wf_jscan_init(wf_jscan_t *s, const char *p, size_t n, int max_depth, unsigned flags);

/* Skips JSON whitespace (space, tab, LF, CR); never declines. */
void wf_jscan_ws(wf_jscan_t *s);
/* The exact bytes lit[0..n) ("true", "false", "null"). */
int wf_jscan_lit(wf_jscan_t *s, const char *lit, size_t n);
/* A string without escapes: *b / *n its bytes between the quotes, pointing
 * into the scanned text. */
int wf_jscan_str(wf_jscan_t *s, const char **b, size_t *n);
/* A number: an integer of at most 18 digits (*is_int = 1, *v its value) or,
 * unless WF_JSCAN_INT_ONLY, a fraction such as 2.5 (*is_int = 0, *v its
 * integer part) of at most 40 bytes.  Exponents, leading zeros ("01") and
 * longer integers decline: jansson decides whether they fit. */
int wf_jscan_num(wf_jscan_t *s, int64_t *v, int *is_int);

/* The object at s->p: for each member, cb is called with its key (bytes
 * into the text, no quotes) and s->p at the first byte of its value (never
 * at the end of the text).  cb must consume the value (wf_jscan_skip what it
 * does not want) and return 0, or WF_JSCAN_DECLINE to stop the scan. */
typedef int (*wf_jscan_member_cb)(wf_jscan_t *s, const char *k, size_t kn, void *ctx);
int wf_jscan_object(wf_jscan_t *s, wf_jscan_member_cb cb, void *ctx);
/* The array at s->p: cb once per element, s->p at its first byte; the same
 * contract as wf_jscan_object's cb. */
typedef int (*wf_jscan_elem_cb)(wf_jscan_t *s, void *ctx);
int wf_jscan_array(wf_jscan_t *s, wf_jscan_elem_cb cb, void *ctx);

/* Any value at s->p, checked and passed over. */
int wf_jscan_skip(wf_jscan_t *s);
/* The end of the document: whitespace only up to s->end. */
int wf_jscan_end(wf_jscan_t *s);

/* Repeated keys: jansson keeps the last of a repeated key and a reader that
 * takes the first would answer differently, so a reader marks each key it
 * takes in a bit set and declines a repeat.  0 the first time bit is set in
 * *seen, WF_JSCAN_DECLINE after. */
int wf_jscan_once(unsigned *seen, unsigned bit);

/* 1 if the key [k, k + kn) is the string literal lit. */
#define WF_JSCAN_KEYIS(k, kn, lit) \
  ((kn) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

#endif
