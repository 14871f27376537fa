/*
 * node-logs: serves the logs of this node's steps on the --listen endpoint
 * (docs/protocol.md §6.1): GET /v1/steps/<key>/log, whole or from an
 * offset or the last lines, with ETag and Range for a finished log, or
 * followed (follow=1) until the step ends here.
 *
 * Every request becomes a follower_t that reads the file through uv_fs on
 * the threadpool into one 64 KiB buffer and hands it to the HTTP stream,
 * one piece in flight: a reader that is slower than the step simply falls
 * behind and catches up from the file, and neither the step nor the loop
 * ever waits for it.  At the end of the file a followed log waits
 * FOLLOW_POLL_MS and reads again, until the engine holds no job for the
 * step any more; the job closes its log before it ends, so a read that
 * started after that and finds nothing more has sent every byte.
 *
 * A follower goes through
 *
 *   LOOKUP  not running here: the step is read from etcd (is it this
 *           node's, and where is its log?)
 *   OPEN    uv_fs_open, then STAT (uv_fs_fstat: size, mtime for the ETag)
 *   TAIL    reading back from the end to find where the last N lines start
 *   YIELD   a read waits because steps are writing their logs right now:
 *           serving logs never competes with writing them (a follower of
 *           a step that prints fast falls behind and catches up after)
 *   QUEUED  a read waits for one of the MAX_READS threadpool slots
 *   READ    a uv_fs_read is out
 *   WRITE   a piece (or the head) is out to the client; on_drain goes on
 *   WAIT    at the end of a followed, running step's file: the poll timer
 *   END     the response is complete or given up; the stream's on_close
 *           follows
 *
 * and is freed once its stream is closed, nothing of uv_fs or etcd is out,
 * its file is closed and its timer too.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node-internal.h"
#include "wf/logstore.h"

#define PIECE (64 * 1024)
#define FOLLOW_POLL_MS 100
/* Reads yield to step output being written (wf_logstore_hot): while some
 * log was written less than HOT_WINDOW_MS ago, a reader waits YIELD_MS at a
 * time, but reads at least once every FLOOR_MS (64 KiB / 50 ms: about
 * 1.3 MB/s each), so that it never starves behind a step that prints for
 * hours. */
#define HOT_WINDOW_MS 20
/* Reads on the threadpool at once, for all followers: the pool is shared
 * with the log store's writes and pull jobs, which would otherwise wait in
 * its queue behind 64 followers' reads. */
#define MAX_READS 2
#define YIELD_MS 25
#define FLOOR_MS 250
#define MAX_TAIL_LINES 100000

enum fstate {
  F_LOOKUP, F_OPEN, F_STAT, F_TAIL, F_YIELD, F_QUEUED, F_READ, F_WRITE, F_WAIT, F_END
};

typedef struct follower_s follower_t;

struct wf__logserve_s {
  uv_loop_t *loop;
  wf_engine_t *engine;
  wf_etcd_t *etcd;
  char *log_dir;
  char *node_name;
  char *steps_prefix;
  unsigned max_followers;
  unsigned followers;       /* follow=1 streams open */
  unsigned alive;           /* follower_t not yet freed */
  unsigned reads;           /* follower reads on the threadpool (<= MAX_READS) */
  follower_t *qhead, *qtail; /* followers waiting for a read slot, in order */
  int closing;
  wf__logserve_stats_t stats;
};

struct follower_s {
  wf__logserve_t *ls;
  wf_httpd_stream_t *st;
  enum fstate state;
  char *key;
  char *path;
  char *range;              /* the request's Range / If-None-Match, copied */
  char *inm;
  int follow;
  int64_t offset;           /* -1 = not asked */
  long tail;                /* -1 = not asked */
  int head_sent;
  int live;                 /* the engine held a job for the step when the read started */
  int closed;               /* the stream's on_close fired */
  int busy;                 /* a uv_fs request or an etcd call is out */
  int timer_closed;
  uv_file fd;               /* -1 = not open */
  uv_fs_t req;
  uv_timer_t timer;
  uint64_t size;            /* at STAT */
  int64_t mtime_ns;
  uint64_t pos;             /* next byte to read */
  uint64_t end;             /* snapshot: read up to here; follow: unused */
  uint64_t scan;            /* TAIL: bytes before this are still to scan */
  uint64_t last_read_ms;    /* loop time of the last read (the yield floor) */
  int holds_slot;           /* its READ counts in ls->reads */
  follower_t *qnext;        /* in ls's slot queue (state QUEUED) */
  long lines;               /* TAIL: newlines still to find */
  char buf[PIECE];
};

static void step(follower_t *f);
static void f_read(follower_t *f);

/* ---- read slots ----------------------------------------------------------------------------- */

static void q_remove(follower_t *f) {
  wf__logserve_t *ls = f->ls;
  follower_t **pp = &ls->qhead, *prev = NULL;
  while (*pp && *pp != f) {
    prev = *pp;
    pp = &(*pp)->qnext;
  }
  if (!*pp) return;
  *pp = f->qnext;
  if (ls->qtail == f) ls->qtail = prev;
  f->qnext = NULL;
}

/* A read ended: its slot goes to the followers waiting, in order. */
static void release_slot(follower_t *f) {
  wf__logserve_t *ls = f->ls;
  if (!f->holds_slot) return;
  f->holds_slot = 0;
  ls->reads--;
  while (ls->reads < MAX_READS && ls->qhead) {
    follower_t *next = ls->qhead;
    ls->qhead = next->qnext;
    if (!ls->qhead) ls->qtail = NULL;
    next->qnext = NULL;
    f_read(next);
  }
}

/* ---- the request's target ------------------------------------------------------------------- */

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes n bytes into out (NUL-terminated).  -1 on a bad escape,
 * an encoded NUL, or when out is too small. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int ch = (unsigned char)s[i];
    if (ch == '%') {
      if (i + 2 >= n) return -1;
      int h = hexval((unsigned char)s[i + 1]);
      int l = hexval((unsigned char)s[i + 2]);
      if (h < 0 || l < 0) return -1;
      ch = h * 16 + l;
      if (ch == 0) return -1;
      i += 2;
    }
    if (o + 1 >= outlen) return -1;
    out[o++] = (char)ch;
  }
  out[o] = '\0';
  return 0;
}

static int parse_count(const char *v, size_t n, int64_t max, int64_t *out) {
  if (n == 0 || n > 19) return -1;
  int64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    x = x * 10 + (v[i] - '0');
  }
  if (x > max) return -1;
  *out = x;
  return 0;
}

int wf__logserve_parse(const char *path, const char *query, wf__logs_target_t *t, char *why,
                       size_t whylen) {
  static const char pre[] = "/v1/steps/", post[] = "/log";
  memset(t, 0, sizeof *t);
  t->offset = -1;
  t->tail = -1;
  size_t plen = strlen(path);
  if (strncmp(path, pre, sizeof pre - 1) != 0 || plen < sizeof pre - 1 + sizeof post - 1 ||
      strcmp(path + plen - (sizeof post - 1), post) != 0) {
    snprintf(why, whylen, "not found; logs are at /v1/steps/<key>/log\n");
    return 404;
  }
  const char *seg = path + sizeof pre - 1;
  size_t slen = plen - (sizeof pre - 1) - (sizeof post - 1);
  if (slen == 0 || memchr(seg, '/', slen) ||
      pct_decode(seg, slen, t->key, sizeof t->key) != 0 || !wf_log_key_safe(t->key)) {
    snprintf(why, whylen, "no such step log\n");
    return 404;
  }
  for (const char *q = query; *q;) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    const char *eq = memchr(q, '=', n);
    size_t kl = eq ? (size_t)(eq - q) : n;
    const char *v = eq ? eq + 1 : q + n;
    size_t vl = eq ? n - kl - 1 : 0;
    int64_t x;
    if (kl == 6 && strncmp(q, "follow", 6) == 0) {
      if (vl == 1 && (*v == '1' || *v == '0')) t->follow = *v == '1';
      else if (vl == 4 && strncmp(v, "true", 4) == 0) t->follow = 1;
      else if (vl == 5 && strncmp(v, "false", 5) == 0) t->follow = 0;
      else goto bad;
    } else if (kl == 6 && strncmp(q, "offset", 6) == 0) {
      if (parse_count(v, vl, INT64_MAX / 2, &x) != 0) goto bad;
      t->offset = x;
    } else if (kl == 4 && strncmp(q, "tail", 4) == 0) {
      if (parse_count(v, vl, MAX_TAIL_LINES, &x) != 0) goto bad;
      t->tail = (long)x;
    }
    /* Other parameters are ignored, as a cache-buster would be. */
    q += n;
    if (*q == '&') q++;
    continue;
  bad:
    snprintf(why, whylen, "bad query parameter \"%.*s\": follow=0|1, offset=BYTES, tail=LINES (at most %d)\n",
             (int)(n > 64 ? 64 : n), q, MAX_TAIL_LINES);
    return 400;
  }
  if (t->tail >= 0) t->offset = -1;
  return 0;
}

int wf__logserve_range(const char *h, uint64_t size, uint64_t *start, uint64_t *end) {
  /* One range only: "bytes=a-b", "bytes=a-" or "bytes=-n".  Anything else
   * is ignored (the whole file is served), as RFC 9110 allows. */
  if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ',')) return 0;
  const char *p = h + 6, *dash = strchr(p, '-');
  if (!dash) return 0;
  int64_t a = -1, b = -1;
  if (dash > p && parse_count(p, (size_t)(dash - p), INT64_MAX / 2, &a) != 0) return 0;
  if (dash[1] && parse_count(dash + 1, strlen(dash + 1), INT64_MAX / 2, &b) != 0) return 0;
  if (a < 0 && b < 0) return 0;
  if (a < 0) {  /* suffix: the last b bytes */
    if (b == 0 || size == 0) return -1;
    *start = (uint64_t)b >= size ? 0 : size - (uint64_t)b;
    *end = size;
  } else {
    if (b >= 0 && b < a) return 0;
    if ((uint64_t)a >= size) return -1;
    *start = (uint64_t)a;
    *end = b < 0 || (uint64_t)b >= size ? size : (uint64_t)b + 1;
  }
  return 1;
}

/* ---- life and death ------------------------------------------------------------------------- */

static void ls_release(wf__logserve_t *ls) {
  if (--ls->alive || !ls->closing) return;
  free(ls->log_dir);
  free(ls->node_name);
  free(ls->steps_prefix);
  free(ls);
}

static void on_timer_closed(uv_handle_t *h) {
  follower_t *f = h->data;
  wf__logserve_t *ls = f->ls;
  free(f->key);
  free(f->path);
  free(f->range);
  free(f->inm);
  free(f);
  ls_release(ls);
}

static void on_fd_closed(uv_fs_t *r) {
  follower_t *f = r->data;
  uv_fs_req_cleanup(r);
  f->busy = 0;
  f->fd = -1;
  step(f);
}

/* Frees f once nothing of it is out any more. */
static void maybe_free(follower_t *f) {
  if (!f->closed || f->busy || f->timer_closed) return;
  if (f->fd >= 0) {
    f->busy = 1;
    f->req.data = f;
    if (uv_fs_close(f->ls->loop, &f->req, f->fd, on_fd_closed) == 0) return;
    f->busy = 0;
    f->fd = -1;
  }
  f->timer_closed = 1;
  uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

static void on_stream_close(wf_httpd_stream_t *st, int completed, void *data) {
  follower_t *f = data;
  (void)st;
  f->closed = 1;
  f->st = NULL;
  if (f->state == F_QUEUED) q_remove(f);
  if (f->follow) f->ls->followers--;
  if (!completed) f->ls->stats.aborted++;
  uv_timer_stop(&f->timer);
  maybe_free(f);
}

/* Ends the response with a small answer (an error found after the handler
 * returned). */
static void reply(follower_t *f, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply(follower_t *f, int status, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
  f->state = F_END;
  if (wf_httpd_stream_reply(f->st, status, msg, (size_t)n, NULL) != 0) wf_httpd_stream_abort(f->st);
}

static void give_up(follower_t *f, const char *what, int err) {
  wf_warn(f->key, "serving the log %s: %s: %s", f->path ? f->path : "", what, uv_strerror(err));
  f->state = F_END;
  wf_httpd_stream_abort(f->st);
}

/* ---- finding the file ----------------------------------------------------------------------- */

static void f_open(follower_t *f);
static void on_stat(uv_fs_t *r);

static void on_lookup(int err, const wf_etcd_range_res_t *res, void *data) {
  follower_t *f = data;
  f->busy = 0;
  if (f->closed || f->ls->closing) {
    maybe_free(f);
    return;
  }
  wf__logserve_t *ls = f->ls;
  if (err) {
    reply(f, 503, "cannot read step \"%s\" from etcd: %s\n", f->key,
          err == WF_EETCD ? wf_etcd_errmsg(ls->etcd) : wf_strerror(err));
    return;
  }
  /* A job may have started while etcd answered. */
  const char *live = wf_engine_step_log(ls->engine, f->key);
  if (live) {
    f->path = wf_strdup(live);
    f_open(f);
    return;
  }
  if (!res || res->nkvs == 0) {
    reply(f, 404, "no step \"%s\"\n", f->key);
    return;
  }
  json_error_t jerr;
  json_t *step = json_loadb(res->kvs[0].value, res->kvs[0].value_len, 0, &jerr);
  json_t *status = step ? json_object_get(step, "status") : NULL;
  const char *node = json_string_value(json_object_get(status, "scheduled_node"));
  const char *path =
      json_string_value(json_object_get(json_object_get(status, "response"), "log_path"));
  size_t dl = strlen(ls->log_dir), pl = path ? strlen(path) : 0, kl = strlen(f->key);
  if (!node || strcmp(node, ls->node_name) != 0) {
    reply(f, 404, "step \"%s\" is not this node's (scheduled on \"%s\")\n", f->key,
          node ? node : "");
  } else if (!path || !*path) {
    reply(f, 404, "step \"%s\" has no log yet\n", f->key);
  } else if (pl <= dl + kl + 1 || strncmp(path, ls->log_dir, dl) != 0 || path[dl] != '/' ||
             strcmp(path + pl - kl, f->key) != 0 || path[pl - kl - 1] != '/' ||
             strstr(path, "/../")) {
    /* Only files of our own log dir named after the key: a record that
     * says otherwise is not followed anywhere. */
    reply(f, 404, "step \"%s\" has no log under %s\n", f->key, ls->log_dir);
  } else {
    f->path = wf_strdup(path);
    f_open(f);
  }
  json_decref(step);
}

static void on_open(uv_fs_t *r) {
  follower_t *f = r->data;
  ssize_t res = r->result;
  uv_fs_req_cleanup(r);
  f->busy = 0;
  if (f->closed) {
    if (res >= 0) f->fd = (uv_file)res;
    maybe_free(f);
    return;
  }
  if (res == UV_ENOENT && f->follow && (f->live || f->head_sent)) {
    /* The job has not created it yet: wait for it as for more bytes (or,
     * if the job ended without one meanwhile, end). */
    if (!f->live) {
      f->state = F_END;
      wf_httpd_stream_end(f->st);
      return;
    }
    f->size = 0;
    f->state = f->head_sent ? F_WAIT : F_STAT;
    step(f);
    return;
  }
  if (res < 0) {
    if (res == UV_ENOENT) reply(f, 404, "the log of step \"%s\" is gone\n", f->key);
    else reply(f, 500, "cannot open the log of step \"%s\": %s\n", f->key, uv_strerror((int)res));
    return;
  }
  f->fd = (uv_file)res;
  if (f->head_sent) {  /* opened at last, after a wait */
    f->state = F_WRITE;
    f_read(f);
    return;
  }
  f->state = F_STAT;
  f->busy = 1;
  f->req.data = f;
  if (uv_fs_fstat(f->ls->loop, &f->req, f->fd, on_stat) != 0) {
    f->busy = 0;
    give_up(f, "fstat", UV_EIO);
  }
}

static void on_stat(uv_fs_t *r) {
  follower_t *f = r->data;
  int res = (int)r->result;
  f->busy = 0;
  f->size = (uint64_t)r->statbuf.st_size;
  f->mtime_ns = (int64_t)r->statbuf.st_mtim.tv_sec * 1000000000 + r->statbuf.st_mtim.tv_nsec;
  uv_fs_req_cleanup(r);
  if (f->closed) {
    maybe_free(f);
    return;
  }
  if (res < 0) {
    give_up(f, "fstat", res);
    return;
  }
  step(f);
}

static void f_open(follower_t *f) {
  if (f->ls->closing) {
    wf_httpd_stream_abort(f->st);
    return;
  }
  f->live = wf_engine_step_log(f->ls->engine, f->key) != NULL;
  f->state = F_OPEN;
  f->busy = 1;
  f->req.data = f;
  if (uv_fs_open(f->ls->loop, &f->req, f->path, O_RDONLY | O_CLOEXEC, 0, on_open) != 0) {
    f->busy = 0;
    give_up(f, "open", UV_EIO);
  }
}

/* ---- the head ------------------------------------------------------------------------------- */

/* STAT is done: decide what to send and send the head. */
static void f_head(follower_t *f) {
  f->head_sent = 1;
  char hdr[256];
  char etag[64];
  int finished = !f->live;
  snprintf(etag, sizeof etag, "\"%" PRIx64 "-%" PRIx64 "\"", f->size, (uint64_t)f->mtime_ns);
  uint64_t start = 0, end = f->size;
  int status = 200;
  hdr[0] = '\0';
  /* A snapshot stops at the size it has; a follower may start past it (a
   * resume, or a file that is still to be created) and waits there. */
  if (f->offset >= 0)
    start = f->follow || (uint64_t)f->offset <= f->size ? (uint64_t)f->offset : f->size;
  if (f->tail >= 0) start = f->pos;  /* found by TAIL */
  if (f->follow) {
    f->pos = start;
    f->state = F_WRITE;
    if (wf_httpd_stream_head(f->st, 200, "text/plain; charset=utf-8", -1,
                             "X-Content-Type-Options: nosniff\r\n") != 0)
      wf_httpd_stream_abort(f->st);
    return;
  }
  if (finished && f->offset < 0 && f->tail < 0) {
    if (f->inm && strstr(f->inm, etag)) {
      snprintf(hdr, sizeof hdr, "ETag: %s\r\n", etag);
      f->state = F_END;
      if (wf_httpd_stream_reply(f->st, 304, "", 0, hdr) != 0) wf_httpd_stream_abort(f->st);
      return;
    }
    int r = wf__logserve_range(f->range, f->size, &start, &end);
    if (r < 0) {
      snprintf(hdr, sizeof hdr, "Content-Range: bytes */%" PRIu64 "\r\n", f->size);
      f->state = F_END;
      const char msg[] = "range not satisfiable\n";
      if (wf_httpd_stream_reply(f->st, 416, msg, sizeof msg - 1, hdr) != 0)
        wf_httpd_stream_abort(f->st);
      return;
    }
    if (r > 0) {
      status = 206;
      snprintf(hdr, sizeof hdr, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n",
               start, end - 1, f->size);
    }
  }
  size_t hl = strlen(hdr);
  if (finished) snprintf(hdr + hl, sizeof hdr - hl, "ETag: %s\r\nAccept-Ranges: bytes\r\n", etag);
  hl = strlen(hdr);
  snprintf(hdr + hl, sizeof hdr - hl, "X-Content-Type-Options: nosniff\r\n");
  f->pos = start;
  f->end = end;
  f->state = F_WRITE;
  if (wf_httpd_stream_head(f->st, status, "text/plain; charset=utf-8", (int64_t)(end - start), hdr) != 0)
    wf_httpd_stream_abort(f->st);
}

/* ---- reading ------------------------------------------------------------------------------- */

static void on_tail_read(uv_fs_t *r) {
  follower_t *f = r->data;
  ssize_t n = r->result;
  uv_fs_req_cleanup(r);
  f->busy = 0;
  if (f->closed) {
    maybe_free(f);
    return;
  }
  if (n <= 0) {
    give_up(f, "read", n < 0 ? (int)n : UV_EIO);
    return;
  }
  /* The bytes [scan - n, scan) are in buf: count newlines back from the end. */
  if (f->scan == f->size && f->buf[n - 1] != '\n') f->lines--;
  for (ssize_t i = n - 1; i >= 0; i--) {
    if (f->buf[i] == '\n' && --f->lines == 0) {
      f->pos = f->scan - (uint64_t)n + (uint64_t)i + 1;
      f_head(f);
      return;
    }
  }
  f->scan -= (uint64_t)n;
  step(f);
}

static void on_read(uv_fs_t *r) {
  follower_t *f = r->data;
  ssize_t n = r->result;
  uv_fs_req_cleanup(r);
  f->busy = 0;
  release_slot(f);
  if (f->closed) {
    maybe_free(f);
    return;
  }
  if (n < 0) {
    give_up(f, "read", (int)n);
    return;
  }
  if (n == 0) {
    if (!f->follow) {
      /* Shorter than its head said: the file was cut under us. */
      give_up(f, "read", UV_EIO);
      return;
    }
    if (!f->live) {
      /* The job had ended before this read began: every byte is out. */
      f->state = F_END;
      wf_httpd_stream_end(f->st);
      return;
    }
    f->state = F_WAIT;
    step(f);
    return;
  }
  f->pos += (uint64_t)n;
  f->ls->stats.bytes += (uint64_t)n;
  f->state = F_WRITE;
  if (wf_httpd_stream_write(f->st, f->buf, (size_t)n) != 0) wf_httpd_stream_abort(f->st);
}

static void f_read(follower_t *f) {
  size_t want = PIECE;
  if (f->ls->closing) {  /* the engine may be gone */
    wf_httpd_stream_abort(f->st);
    return;
  }
  if (!f->follow) {
    if (f->pos >= f->end) {
      f->state = F_END;
      wf_httpd_stream_end(f->st);
      return;
    }
    if (f->end - f->pos < want) want = (size_t)(f->end - f->pos);
  }
  if (f->fd < 0) {  /* followed before the job created the file */
    f->state = F_WAIT;
    step(f);
    return;
  }
  uint64_t now = uv_now(f->ls->loop);
  if (wf_logstore_hot(f->ls->loop, HOT_WINDOW_MS) && now - f->last_read_ms < FLOOR_MS) {
    f->state = F_YIELD;
    step(f);
    return;
  }
  wf__logserve_t *ls = f->ls;
  if (ls->reads >= MAX_READS) {
    f->state = F_QUEUED;
    f->qnext = NULL;
    if (ls->qtail) ls->qtail->qnext = f;
    else ls->qhead = f;
    ls->qtail = f;
    return;
  }
  ls->reads++;
  f->holds_slot = 1;
  f->last_read_ms = now;
  /* Whether the job is alive is taken before the read, so that a read that
   * finds nothing after it ended has seen the whole file. */
  f->live = f->follow && wf_engine_step_log(f->ls->engine, f->key) != NULL;
  f->state = F_READ;
  f->busy = 1;
  f->req.data = f;
  uv_buf_t b = uv_buf_init(f->buf, (unsigned)want);
  if (uv_fs_read(f->ls->loop, &f->req, f->fd, &b, 1, (int64_t)f->pos, on_read) != 0) {
    f->busy = 0;
    release_slot(f);
    give_up(f, "read", UV_EIO);
  }
}

static void on_yield(uv_timer_t *t) {
  follower_t *f = t->data;
  if (f->closed || f->state != F_YIELD) return;
  f_read(f);
}

static void on_poll(uv_timer_t *t) {
  follower_t *f = t->data;
  if (f->closed || f->state != F_WAIT) return;
  if (f->ls->closing) {
    wf_httpd_stream_abort(f->st);
    return;
  }
  if (f->fd < 0) {
    /* Still no file: open it now, or end if the job is gone meanwhile. */
    f_open(f);
    return;
  }
  f_read(f);
}

/* Moves f on from the state it is in (after an answer, a drain, a poll). */
static void step(follower_t *f) {
  if (f->closed) {
    maybe_free(f);
    return;
  }
  switch (f->state) {
    case F_LOOKUP:
    case F_OPEN:
    case F_QUEUED:
    case F_READ:
    case F_END:
      /* An answer is awaited; its callback moves on. */
      break;
    case F_STAT:
      if (f->tail >= 0 && f->size > 0) {
        f->state = F_TAIL;
        f->scan = f->size;
        /* The last line's own newline is found first; on_tail_read counts
         * one less when the file ends without one. */
        f->lines = f->tail + 1;
        f->pos = f->size;
        if (f->tail == 0) {
          f_head(f);
          return;
        }
        step(f);
        return;
      }
      if (f->tail >= 0) f->pos = 0;
      f_head(f);
      break;
    case F_TAIL: {
      if (f->scan == 0) {
        f->pos = 0;
        f_head(f);
        return;
      }
      size_t want = f->scan < PIECE ? (size_t)f->scan : PIECE;
      f->busy = 1;
      f->req.data = f;
      uv_buf_t b = uv_buf_init(f->buf, (unsigned)want);
      if (uv_fs_read(f->ls->loop, &f->req, f->fd, &b, 1, (int64_t)(f->scan - want), on_tail_read) != 0) {
        f->busy = 0;
        give_up(f, "read", UV_EIO);
      }
      break;
    }
    case F_WRITE:
      f_read(f);
      break;
    case F_YIELD:
      uv_timer_start(&f->timer, on_yield, YIELD_MS, 0);
      break;
    case F_WAIT:
      uv_timer_start(&f->timer, on_poll, FOLLOW_POLL_MS, 0);
      break;
  }
}

static void on_drain(wf_httpd_stream_t *st, void *data) {
  follower_t *f = data;
  (void)st;
  step(f);
}

/* ---- public --------------------------------------------------------------------------------- */

wf__logserve_t *wf__logserve_create(uv_loop_t *loop, wf_engine_t *engine, wf_etcd_t *etcd,
                                    const char *log_dir, const char *node_name,
                                    const char *prefix, unsigned max_followers) {
  wf__logserve_t *ls = wf_calloc(1, sizeof *ls);
  ls->loop = loop;
  ls->engine = engine;
  ls->etcd = etcd;
  /* The engine writes log paths as "<log dir>/Y/M/D/key": compare with the
   * dir as given, without a trailing slash. */
  ls->log_dir = wf_strdup(log_dir);
  size_t dl = strlen(ls->log_dir);
  while (dl > 1 && ls->log_dir[dl - 1] == '/') ls->log_dir[--dl] = '\0';
  ls->node_name = wf_strdup(node_name);
  ls->steps_prefix = wf_asprintf("%s/workflow/steps/", prefix);
  ls->max_followers = max_followers ? max_followers : 64;
  ls->alive = 1;  /* the server's own reference, dropped by close */
  return ls;
}

void wf__logserve_handle(wf__logserve_t *ls, wf_httpd_req_t *req, wf_httpd_resp_t *resp) {
  wf__logs_target_t t;
  char why[256];
  int status = wf__logserve_parse(req->path, req->query, &t, why, sizeof why);
  if (status) {
    resp->status = status;
    wf_buf_printf(&resp->body, "%s", why);
    return;
  }
  if (ls->closing) {
    resp->status = 503;
    wf_buf_printf(&resp->body, "shutting down\n");
    return;
  }
  if (t.follow && ls->followers >= ls->max_followers) {
    ls->stats.refused++;
    resp->status = 503;
    wf_buf_printf(&resp->body, "too many followers (%u, --listen-max-followers)\n",
                  ls->max_followers);
    return;
  }
  follower_t *f = wf_calloc(1, sizeof *f);
  wf_httpd_stream_cbs_t cbs = {.on_drain = on_drain, .on_close = on_stream_close};
  f->st = wf_httpd_stream(req, &cbs, f);
  if (!f->st) {
    free(f);
    resp->status = 500;
    wf_buf_printf(&resp->body, "cannot stream\n");
    return;
  }
  f->ls = ls;
  ls->alive++;
  ls->stats.requests++;
  f->fd = -1;
  f->key = wf_strdup(t.key);
  f->follow = t.follow;
  f->offset = t.offset;
  f->tail = t.tail;
  if (req->range) f->range = wf_strdup(req->range);
  if (req->if_none_match) f->inm = wf_strdup(req->if_none_match);
  if (f->follow) ls->followers++;
  uv_timer_init(ls->loop, &f->timer);
  f->timer.data = f;
  const char *live = wf_engine_step_log(ls->engine, f->key);
  if (live) {
    f->path = wf_strdup(live);
    f_open(f);
    return;
  }
  char *key = wf_asprintf("%s%s", ls->steps_prefix, f->key);
  f->state = F_LOOKUP;
  f->busy = 1;
  int r = wf_etcd_range(ls->etcd, key, strlen(key), NULL, 0, NULL, on_lookup, f);
  free(key);
  if (r != 0) {
    f->busy = 0;
    reply(f, 503, "cannot read step \"%s\" from etcd: %s\n", f->key, wf_strerror(r));
  }
}

void wf__logserve_stats(const wf__logserve_t *ls, wf__logserve_stats_t *out) {
  if (!ls) {
    memset(out, 0, sizeof *out);
    return;
  }
  *out = ls->stats;
  out->followers = ls->followers;
}

void wf__logserve_close(wf__logserve_t *ls) {
  if (!ls) return;
  ls->closing = 1;
  ls_release(ls);
}
