/*
 * mask: hides secret values.  A masker holds the values of a step's secret
 * params (4 bytes or longer; shorter ones would mask common text for no
 * gain) and replaces every occurrence with "******", in one-shot strings
 * (messages, the agent's own log lines) and in byte streams cut at arbitrary
 * places (step output), where a value split across two reads is still found:
 * the masker holds back the last (longest value - 1) bytes of each piece
 * until the next piece or the flush shows whether they start a secret.
 * Pure: no libuv.
 */
#ifndef WF_MASK_H
#define WF_MASK_H

#include <stddef.h>

#define WF_MASK_TEXT "******"
#define WF_MASK_MIN 4

typedef struct wf_mask_s wf_mask_t;

/* Copies the values; ignores those shorter than WF_MASK_MIN and duplicates.
 * Returns NULL when nothing is left to mask. */
wf_mask_t *wf_mask_create(const char *const *values, size_t n);
void wf_mask_destroy(wf_mask_t *m);  /* NULL is a no-op */

/* Output sink for the stream functions: masked bytes, in order. */
typedef void (*wf_mask_out_cb)(const char *p, size_t n, void *data);
/* Feeds a piece of the stream; calls out zero or more times. */
void wf_mask_feed(wf_mask_t *m, const char *p, size_t n, wf_mask_out_cb out, void *data);
/* Ends the stream: emits what was held back. */
void wf_mask_flush(wf_mask_t *m, wf_mask_out_cb out, void *data);
/* Bytes held back right now (at most the longest value - 1). */
size_t wf_mask_pending(const wf_mask_t *m);

/* One-shot: a malloc'd copy of s with every value replaced.  m may be NULL
 * (plain copy). */
char *wf_mask_string(const wf_mask_t *m, const char *s);

/* 1 if name matches one of the comma-separated glob patterns (fnmatch(3),
 * case-insensitive), e.g. "*PASSWORD*,*SECRET*,*TOKEN*". */
int wf_mask_name_matches(const char *patterns, const char *name);

#endif
