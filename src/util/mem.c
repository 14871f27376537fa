/*
 * mem: allocation wrappers (fatal on exhaustion), the bounded byte buffer,
 * and error texts.
 */
#include "wf/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n) {
  fprintf(stderr, "workflow-node: out of memory allocating %zu bytes\n", n);
  abort();
}

void *wf_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}

void *wf_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) oom(n * size);
  return p;
}

void *wf_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

char *wf_strdup(const char *s) { return wf_strndup(s, strlen(s)); }

char *wf_strndup(const char *s, size_t n) {
  char *p = wf_malloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

/* vasprintf that never fails (it exits like wf_malloc on no memory); the
 * length goes to *len when len is not NULL. */
static char *vformat(size_t *len, const char *fmt, va_list ap) {
  char *s = NULL;
  int n = vasprintf(&s, fmt, ap);
  if (n < 0) oom(0);
  if (len) *len = (size_t)n;
  return s;
}

char *wf_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = vformat(NULL, fmt, ap);
  va_end(ap);
  return s;
}

void wf_buf_init(wf_buf_t *b, size_t max) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->max = max;
}

void wf_buf_finish(wf_buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int wf_buf_append(wf_buf_t *b, const void *p, size_t n) {
  if (n > b->max || b->len > b->max - n) return WF_ETOOBIG;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    b->data = wf_realloc(b->data, cap);
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int wf_buf_printf(wf_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t n;
  char *s = vformat(&n, fmt, ap);
  va_end(ap);
  int r = wf_buf_append(b, s, n);
  free(s);
  return r;
}

void wf_buf_consume(wf_buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
  } else {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
  }
  if (b->data) b->data[b->len] = '\0';
}

void wf_buf_reset(wf_buf_t *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

const char *wf_strerror(int err) {
  switch (err) {
    case 0: return "success";
    case WF_EPROTO: return "protocol error";
    case WF_EHTTP: return "unexpected HTTP status";
    case WF_EETCD: return "etcd error";
    case WF_ECOMPACTED: return "revision compacted";
    case WF_ETOOBIG: return "message too large";
    case WF_ECLOSED: return "closed";
    case WF_ETLS: return "TLS error";
    default: break;
  }
  /* libuv's codes are negated errnos, except these two ranges (util/ stays
   * free of libuv, so they are spelled out here). */
  if (err == -4095) return "connection closed by peer (end of file)";
  if (err <= -3000 && err > -3030) return "host name lookup failed";
  if (err < 0 && err > -4096) return strerror(-err);
  return "unknown error";
}

void wf_strv_free(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}
