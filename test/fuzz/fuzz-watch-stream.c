/*
 * fuzz-watch-stream: the etcd watch stream after de-chunking, i.e. what
 * src/etcd/watch.c hands to the newline splitter (wf__etcd_lines_*), each
 * line parsed as a watch message (wf__etcd_watch_msg_parse) and its events
 * run through the resume bookkeeping (wf__etcd_resume_*) the way watch.c
 * does.
 *
 * The body is fed in arbitrary pieces (sizes taken from the input) and, as
 * an oracle, also in one piece to a second splitter: both must deliver the
 * same lines, stop at the same point, and agree on WF_ETOOBIG.  Each line is
 * also parsed with the fast path off (jansson only), which must give the
 * same message as the fast path's JSON scanner (model/jscan.c); and the
 * resume position never goes back.
 *
 * Input layout:
 *   byte 0     line bound selector: 0-127 -> 8 MiB (the real one),
 *              else a small bound of 1 + (byte0 & 127) * 4 bytes
 *   byte 1     the callback stops the feed (returns 1) at the line with
 *              this index (255 = never), as watch.c does when a line fails
 *              the stream
 *   bytes 2-9  piece sizes (each 1 + b), used cyclically
 *   rest       the stream
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/etcd/etcd-internal.h"
#include "fuzz-check.h"

#define MAX_LINES 4096

typedef struct rec_s {
  /* Lines as delivered: offsets into one growing record buffer. */
  wf_buf_t text;
  size_t off[MAX_LINES + 1];
  size_t n;
  unsigned stop_at;
  int overflow;
} rec_t;

/* The callback of the one-piece oracle: records only. */
static int on_line_rec(const char *line, size_t n, void *data) {
  rec_t *r = data;
  CHECK(n > 0);
  if (r->n >= MAX_LINES) {
    r->overflow = 1;
    return 1;
  }
  r->off[r->n] = r->text.len;
  CHECK(wf_buf_append(&r->text, line, n) == 0);
  r->n++;
  r->off[r->n] = r->text.len;
  return r->n - 1 == r->stop_at;
}

typedef struct ctx_s {
  rec_t rec;
  wf__etcd_resume_t resume;
  int created;
} ctx_t;

/* The line parsed with the fast path off gives the same message as m. */
static void check_jansson_agrees(const char *line, size_t n, int r, const wf__etcd_watch_msg_t *m) {
  wf__etcd_watch_msg_t m2;
  wf__etcd_fast_json = 0;
  int r2 = wf__etcd_watch_msg_parse(line, n, &m2);
  wf__etcd_fast_json = 1;
  CHECK(r2 == r);
  CHECK(strcmp(m2.msg, m->msg) == 0);
  if (r == 0) {
    CHECK(m2.error == m->error && m2.created == m->created && m2.canceled == m->canceled);
    CHECK(m2.fragment == m->fragment && m2.header_revision == m->header_revision);
    CHECK(m2.compact_revision == m->compact_revision && m2.nevents == m->nevents);
    for (size_t i = 0; i < m->nevents; i++) {
      const wf_etcd_kv_t *a = &m->events[i].kv, *b = &m2.events[i].kv;
      CHECK(m2.events[i].type == m->events[i].type);
      CHECK(a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0);
      CHECK(a->value_len == b->value_len && memcmp(a->value, b->value, a->value_len) == 0);
      CHECK(a->create_revision == b->create_revision && a->mod_revision == b->mod_revision);
      CHECK(a->version == b->version && a->lease == b->lease);
    }
  }
  wf__etcd_watch_msg_clear(&m2);
}

/* What watch.c's on_line/handle_msg do with a line. */
static void handle(ctx_t *c, const char *line, size_t n) {
  wf__etcd_watch_msg_t m;
  int r = wf__etcd_watch_msg_parse(line, n, &m);
  CHECK(r == 0 || r == WF_EPROTO);
  CHECK(memchr(m.msg, '\0', sizeof(m.msg)) != NULL);
  check_jansson_agrees(line, n, r, &m);
  if (r == 0 && !m.error) {
    if (m.created) wf__etcd_resume_created(&c->resume, m.header_revision);
    if (!m.canceled && m.nevents > 0) {
      for (size_t i = 0; i < m.nevents; i++) {
        const wf_etcd_kv_t *kv = &m.events[i].kv;
        CHECK(kv->key != NULL && kv->value != NULL);
        CHECK(kv->key[kv->key_len] == '\0' && kv->value[kv->value_len] == '\0');
        CHECK(m.events[i].type == WF_ETCD_PUT || m.events[i].type == WF_ETCD_DELETE);
        int64_t before = wf__etcd_resume_rev(&c->resume);
        wf__etcd_resume_event(&c->resume, kv->mod_revision);
        /* The resume point never goes back. */
        CHECK(wf__etcd_resume_rev(&c->resume) >= before);
      }
      wf__etcd_resume_msg_end(&c->resume, m.fragment);
    }
  } else {
    CHECK(m.nevents == 0 || m.events != NULL);
  }
  wf__etcd_watch_msg_clear(&m);
  CHECK(m.events == NULL && m.nevents == 0);
}

static int on_line(const char *line, size_t n, void *data) {
  ctx_t *c = data;
  int stop = on_line_rec(line, n, &c->rec);
  handle(c, line, n);
  return stop;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 10) return 0;
  size_t max = data[0] < 128 ? WF__ETCD_MAX_LINE : 1 + (size_t)(data[0] & 127) * 4;
  unsigned stop_at = data[1] == 255 ? (unsigned)-1 : data[1];
  const uint8_t *sizes = data + 2;
  const char *body = (const char *)data + 10;
  size_t len = size - 10;

  /* Pieces. */
  ctx_t c;
  memset(&c, 0, sizeof(c));
  wf_buf_init(&c.rec.text, SIZE_MAX);
  c.rec.stop_at = stop_at;
  wf__etcd_resume_init(&c.resume, 0);
  wf__etcd_resume_connect(&c.resume);
  wf__etcd_lines_t lines;
  wf__etcd_lines_init(&lines, max);
  int r = 0;
  size_t off = 0, k = 0;
  while (off < len) {
    size_t n = 1 + (size_t)sizes[k++ % 8];
    if (n > len - off) n = len - off;
    r = wf__etcd_lines_feed(&lines, body + off, n, on_line, &c);
    off += n;
    if (r != 0) break;
  }
  if (r == 0) r = wf__etcd_lines_flush(&lines, on_line, &c);
  CHECK(r == 0 || r == 1 || r == WF_ETOOBIG);

  /* One piece. */
  rec_t whole;
  memset(&whole, 0, sizeof(whole));
  wf_buf_init(&whole.text, SIZE_MAX);
  whole.stop_at = stop_at;
  wf__etcd_lines_t l2;
  wf__etcd_lines_init(&l2, max);
  int r2 = wf__etcd_lines_feed(&l2, body, len, on_line_rec, &whole);
  if (r2 == 0) r2 = wf__etcd_lines_flush(&l2, on_line_rec, &whole);

  if (!c.rec.overflow && !whole.overflow) {
    /* Same lines up to where either stopped, and the same outcome. */
    CHECK(r == r2);
    CHECK(c.rec.n == whole.n);
    CHECK(c.rec.text.len == whole.text.len);
    if (whole.text.len) CHECK(memcmp(c.rec.text.data, whole.text.data, whole.text.len) == 0);
    for (size_t i = 0; i <= whole.n; i++) CHECK(c.rec.off[i] == whole.off[i]);
    for (size_t i = 0; i < whole.n; i++) CHECK(whole.off[i + 1] - whole.off[i] <= max);
  }

  /* After a stop the owner resets and feeds a new stream. */
  wf__etcd_lines_reset(&lines);
  CHECK(lines.buf.len == 0);

  wf__etcd_lines_finish(&lines);
  wf__etcd_lines_finish(&l2);
  wf_buf_finish(&c.rec.text);
  wf_buf_finish(&whole.text);
  return 0;
}
