/*
 * mask: secret values out of logs and messages (see mask.h).
 *
 * Stream masking keeps a carry buffer: each fed piece is appended to what
 * was held back, every complete occurrence is replaced, and the tail that
 * could still be the start of a value (up to longest-1 bytes) is held for
 * the next piece.  Memory is bounded by the longest value plus one piece.
 */
#include "wf/mask.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "wf/util.h"

struct wf_mask_s {
  char **values;
  size_t *lens;
  size_t n;
  size_t longest;
  wf_buf_t carry;   /* held-back tail + the piece being scanned */
};

wf_mask_t *wf_mask_create(const char *const *values, size_t n) {
  wf_mask_t *m = wf_calloc(1, sizeof *m);
  m->values = wf_calloc(n + 1, sizeof *m->values);
  m->lens = wf_calloc(n + 1, sizeof *m->lens);
  for (size_t i = 0; i < n; i++) {
    size_t l = values[i] ? strlen(values[i]) : 0;
    if (l < WF_MASK_MIN) continue;
    int dup = 0;
    for (size_t k = 0; k < m->n; k++) dup |= strcmp(m->values[k], values[i]) == 0;
    if (dup) continue;
    m->values[m->n] = wf_strdup(values[i]);
    m->lens[m->n] = l;
    if (l > m->longest) m->longest = l;
    m->n++;
  }
  if (!m->n) {
    wf_mask_destroy(m);
    return NULL;
  }
  wf_buf_init(&m->carry, SIZE_MAX / 2);
  return m;
}

void wf_mask_destroy(wf_mask_t *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n; i++) free(m->values[i]);
  free(m->values);
  free(m->lens);
  wf_buf_finish(&m->carry);
  free(m);
}

/* Earliest occurrence of any value in [p, p+n), preferring the longest value
 * at the same position; NULL if none. */
static const char *find_first(const wf_mask_t *m, const char *p, size_t n, size_t *len) {
  const char *best = NULL;
  for (size_t i = 0; i < m->n; i++) {
    const char *hit = memmem(p, n, m->values[i], m->lens[i]);
    if (hit && (!best || hit < best || (hit == best && m->lens[i] > *len))) {
      best = hit;
      *len = m->lens[i];
    }
  }
  return best;
}

/* Emits data[0..limit) masked; a match that starts before limit is emitted
 * whole even if it ends after it.  Returns how many bytes were consumed. */
static size_t emit(const wf_mask_t *m, const char *data, size_t len, size_t limit,
                   wf_mask_out_cb out, void *cbdata) {
  size_t pos = 0;
  while (pos < limit) {
    size_t mlen = 0;
    const char *hit = find_first(m, data + pos, len - pos, &mlen);
    if (!hit || (size_t)(hit - data) >= limit) {
      out(data + pos, limit - pos, cbdata);
      return limit;
    }
    size_t at = (size_t)(hit - data);
    if (at > pos) out(data + pos, at - pos, cbdata);
    out(WF_MASK_TEXT, sizeof WF_MASK_TEXT - 1, cbdata);
    pos = at + mlen;
  }
  return pos;
}

void wf_mask_feed(wf_mask_t *m, const char *p, size_t n, wf_mask_out_cb out, void *data) {
  if (!n) return;
  wf_buf_append(&m->carry, p, n);
  size_t len = m->carry.len;
  size_t hold = m->longest - 1;
  if (len <= hold) return;
  size_t used = emit(m, m->carry.data, len, len - hold, out, data);
  wf_buf_consume(&m->carry, used);
}

void wf_mask_flush(wf_mask_t *m, wf_mask_out_cb out, void *data) {
  if (!m->carry.len) return;
  emit(m, m->carry.data, m->carry.len, m->carry.len, out, data);
  wf_buf_reset(&m->carry);
}

size_t wf_mask_pending(const wf_mask_t *m) { return m ? m->carry.len : 0; }

static void to_buf(const char *p, size_t n, void *data) { wf_buf_append(data, p, n); }

char *wf_mask_string(const wf_mask_t *m, const char *s) {
  if (!m) return wf_strdup(s);
  wf_buf_t b;
  wf_buf_init(&b, SIZE_MAX / 2);
  size_t len = strlen(s);
  emit(m, s, len, len, to_buf, &b);
  char *r = b.data ? b.data : wf_strdup("");
  return r;
}

int wf_mask_name_matches(const char *patterns, const char *name) {
  if (!patterns || !*patterns) return 0;
  const char *p = patterns;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len) {
      char *pat = wf_strndup(p, len);
      int ok = fnmatch(pat, name, FNM_CASEFOLD) == 0;
      free(pat);
      if (ok) return 1;
    }
    if (!comma) return 0;
    p = comma + 1;
  }
}
