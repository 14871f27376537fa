/*
 * parse-stream: the watch stream's two pure helpers.  The line splitter cuts
 * the gateway's newline-delimited stream (after HTTP de-chunking, in chunks
 * of any size) into whole messages under a size bound; the resume position
 * says which revision a reconnect asks for and which replayed events to drop
 * (etcd-internal.h explains the (rev, skip) pair).  Pure: no libuv, no
 * jansson; watch.c drives both.
 */
#include "etcd-internal.h"

#include <string.h>

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
