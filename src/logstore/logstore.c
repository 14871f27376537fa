/*
 * logstore: per-step log files written through uv_fs.
 *
 * A logfile is a small state machine driven by ONE embedded uv_fs_t: open
 * (falling back to "mkdir -p" of the parent directories when the open says
 * ENOENT), then writes, then close.  Because there is only one request,
 * there is at most one fs operation in flight per file, so writes can never
 * land out of order on the threadpool (docs/house-rules.md rule 21).
 *
 * Producers hand over malloc'd buffers.  They sit in a ring queue; whenever
 * no write is in flight, the head of the queue (up to WRITE_MAX_BUFS buffers
 * and write_cap bytes) goes to disk in one vectored write, so a fast producer
 * costs one threadpool round trip per ~half a queue, not per buffer.  Small
 * buffers are copied into 64 KiB chunks instead, so that memory use follows
 * the byte count and a producer that emits many tiny pieces neither wastes
 * allocations nor one iovec per byte.
 *
 * The queue counts every byte not yet on disk (in flight included).  Above
 * max_queue, wf_logfile_write() returns 1 and the producer pauses; on_drain
 * fires once the count is back at or below half, which leaves the other
 * half to overlap the next disk write with the producer's reading.
 *
 * A pipe's bytes can also be pulled into the file by the threadpool
 * (wf_logfile_pull): one uv_work_t reads the pipe and writes the file in a
 * loop until the pipe stays empty or a budget is spent.  It is one more
 * kind of request in the same one-at-a-time state machine, so it starts
 * only once the queue ahead of it is on disk.  Why a job that loops rather
 * than a loop read and a pool write per buffer (a hand-off each way per
 * buffer), and why read+write rather than splice(2) (which holds the pipe's
 * mutex for the whole transfer, so the step's own writes spin on it): see
 * docs/benchmarks.md, part 3.
 *
 * A file opened for appending (a step that outlives an agent restart) adds
 * one fstat between the open and the first write, recording the size and
 * mtime the file had before this process wrote to it: the docker runner asks
 * the engine for the container's output since then.
 *
 * User callbacks never fire from inside a call into this module: failures
 * to even start a uv_fs request are fed back through the embedded timer
 * (like libuv's delayed_error), and on_closed fires from the timer's close
 * callback, after which the struct is freed.
 */
#include "wf/logstore.h"
#include "wf/mask.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wf/util.h"

#define DEFAULT_MAX_QUEUE ((size_t)1 << 20)
#define WRITE_MAX_BUFS 64
#define WRITE_MAX_BYTES ((size_t)1 << 20)
/* Writes up to this size are copied into a chunk rather than queued as is. */
#define SMALL_WRITE ((size_t)16 << 10)
#define CHUNK_SIZE ((size_t)64 << 10)
/* A pull job moves at most PULL_BUDGET, so that other files get their turn
 * on the pool, through a buffer of PULL_BUF on the pool thread's stack. */
#define PULL_BUDGET ((size_t)16 << 20)
#define PULL_BUF ((size_t)64 << 10)
/* How long a pull job waits for more from a pipe that was just busy, and
 * then lets it fill before reading again. */
#define PULL_LINGER_MS 2
#define PULL_BATCH_NS 200000

typedef struct qent_s {
  char *base;
  size_t len;   /* bytes of data in base */
  size_t off;   /* bytes of it already on disk (after a short write) */
  size_t cap;   /* > 0 only for our own chunks, which may still be appended to */
} qent_t;

struct wf_logfile_s {
  uv_loop_t *loop;
  char *path;
  wf_logfile_cbs_t cbs;
  void *data;
  void (*on_drain)(wf_logfile_t *f, void *data);
  void *drain_data;

  uv_fs_t req;        /* the one fs request: open, mkdir, write or close */
  uv_timer_t timer;   /* feeds back synchronous start failures; closed last */
  uv_fs_cb fake_cb;   /* handler the timer calls with req.result preset */
  uv_file fd;
  int busy;           /* req (or a fed-back failure) is in flight */
  int err;            /* first error, 0 if none */
  int close_requested;
  int closing;        /* the final close sequence has begun */
  int need_drain;     /* a write returned 1; on_drain owed */
  int mkdir_done;     /* parents created already; a second ENOENT is final */
  int append;         /* opened with wf_logfile_open_append */
  wf_mask_t *mask;    /* secret values to hide, or NULL (borrowed) */
  int prior_state;    /* append: 0 pending, 1 known, < 0 the open/fstat error */
  uint64_t prior_size;
  int64_t prior_mtime_ms;

  char *dirbuf;       /* scratch copy of path for the mkdir walk */
  size_t mkdir_pos;   /* where the next component starts in dirbuf */
  size_t mkdir_end;   /* index of the last '/' (end of the parent dir) */

  qent_t *q;          /* ring of queued buffers */
  size_t qcap, qhead, qlen;
  size_t ninflight;   /* first ninflight entries are in the current write */
  size_t queued;      /* bytes not yet on disk, in flight included */
  size_t max_queue;
  size_t write_cap;
  uv_buf_t iov[WRITE_MAX_BUFS];
  uint64_t written;

  /* pull: the pending or running request, and what the job found.  The
   * job touches only pl_* and fd, which the loop leaves alone meanwhile. */
  uv_work_t work;
  wf_logfile_pull_cb pl_cb;  /* set while a pull is pending or running */
  void *pl_data;
  int pl_fd;
  int pl_discard;     /* the file failed: drain the pipe, drop the bytes */
  size_t pl_moved;    /* job results */
  int pl_status;
  int pl_file_err;
};

/* ---- paths ---------------------------------------------------------------- */

int wf_log_key_safe(const char *key) {
  size_t n;
  if (!key || !*key) return 0;
  if (strcmp(key, ".") == 0 || strcmp(key, "..") == 0) return 0;
  for (n = 0; key[n]; n++) {
    unsigned char c = (unsigned char)key[n];
    if (c == '/' || c < 0x20 || c == 0x7f) return 0;
  }
  return n <= 255;
}

int wf_log_path(char *out, size_t outlen, const char *dir, const char *key, int64_t now_ms) {
  struct tm tm;
  time_t t = (time_t)(now_ms / 1000);
  size_t dlen;
  int n;
  if (!wf_log_key_safe(key) || !dir || !*dir) return UV_EINVAL;
  /* "logs/" and "logs" name the same place; keep the path free of "//". */
  dlen = strlen(dir);
  while (dlen > 1 && dir[dlen - 1] == '/') dlen--;
  if (!localtime_r(&t, &tm)) return UV_EINVAL;
  n = snprintf(out, outlen, "%.*s/%d/%d/%d/%s", (int)dlen, dir, tm.tm_year + 1900,
               tm.tm_mon + 1, tm.tm_mday, key);
  if (n < 0 || (size_t)n >= outlen) return UV_ENAMETOOLONG;
  return 0;
}

/* ---- queue ------------------------------------------------------------------ */

static qent_t *q_at(wf_logfile_t *f, size_t i) {
  return &f->q[(f->qhead + i) & (f->qcap - 1)];
}

static qent_t *q_push(wf_logfile_t *f) {
  if (f->qlen == f->qcap) {
    /* Grow by doubling and unwrap, so indices stay (qhead + i) & mask. */
    size_t ncap = f->qcap ? f->qcap * 2 : 16;
    qent_t *nq = wf_malloc(ncap * sizeof *nq);
    for (size_t i = 0; i < f->qlen; i++) nq[i] = *q_at(f, i);
    free(f->q);
    f->q = nq;
    f->qcap = ncap;
    f->qhead = 0;
  }
  f->qlen++;
  return q_at(f, f->qlen - 1);
}

static void q_pop(wf_logfile_t *f) {
  free(q_at(f, 0)->base);
  f->qhead = (f->qhead + 1) & (f->qcap - 1);
  f->qlen--;
}

static void q_drop_all(wf_logfile_t *f) {
  while (f->qlen) q_pop(f);
  f->queued = 0;
}

/* Queues len bytes: either takes `owned` (may be NULL) or copies `src`. */
static void enqueue(wf_logfile_t *f, char *owned, const char *src, size_t len) {
  qent_t *e;
  if (len <= SMALL_WRITE) {
    /* Append to the tail chunk if it is ours, not being written, and fits. */
    if (f->qlen > f->ninflight) {
      e = q_at(f, f->qlen - 1);
      if (e->cap > 0 && e->cap - e->len >= len) {
        memcpy(e->base + e->len, owned ? owned : src, len);
        e->len += len;
        free(owned);
        return;
      }
    }
    e = q_push(f);
    e->base = wf_malloc(CHUNK_SIZE);
    e->cap = CHUNK_SIZE;
    memcpy(e->base, owned ? owned : src, len);
    e->len = len;
    e->off = 0;
    free(owned);
    return;
  }
  e = q_push(f);
  if (owned) {
    e->base = owned;
  } else {
    e->base = wf_malloc(len);
    memcpy(e->base, src, len);
  }
  e->len = len;
  e->off = 0;
  e->cap = 0;
}

/* ---- state machine ------------------------------------------------------------ */

static void pump(wf_logfile_t *f);
static void on_open(uv_fs_t *req);
static void start_pull(wf_logfile_t *f);

/* A uv_fs_* call failed before it started: deliver err to handler on a
 * later tick, as if the request had completed with it. */
static void on_fake(uv_timer_t *t) {
  wf_logfile_t *f = t->data;
  f->fake_cb(&f->req);
}

static void feed_error(wf_logfile_t *f, uv_fs_cb handler, int err) {
  f->busy = 1;
  f->req.result = err;
  f->fake_cb = handler;
  uv_timer_start(&f->timer, on_fake, 0, 0);
}

static void maybe_drain(wf_logfile_t *f) {
  if (!f->need_drain || f->close_requested || f->queued > f->max_queue / 2) return;
  f->need_drain = 0;
  if (f->on_drain) f->on_drain(f, f->drain_data);
}

/* Records the first failure: the queue is dropped and later writes refused.
 * A paused producer is released (its writes now fail fast), so that it
 * keeps draining its source and never wedges on a dead file. */
static void fail(wf_logfile_t *f, int err) {
  if (f->err) return;
  f->err = err;
  q_drop_all(f);
  if (f->close_requested) return;  /* the owner hears it in on_closed */
  if (f->cbs.on_error) f->cbs.on_error(f, err, f->data);
  maybe_drain(f);
}

static void start_open(wf_logfile_t *f) {
  int r;
  f->busy = 1;
  r = uv_fs_open(f->loop, &f->req, f->path,
                 O_CREAT | O_WRONLY | O_CLOEXEC | (f->append ? O_APPEND : O_TRUNC), 0644, on_open);
  if (r < 0) feed_error(f, on_open, r);
}

static void on_mkdir(uv_fs_t *req);

/* Append mode: what the file held before our first write.  A failure here
 * is not the file's: writes go on, only the runner learns nothing. */
static void on_fstat(uv_fs_t *req) {
  wf_logfile_t *f = req->data;
  int r = (int)req->result;
  if (r >= 0) {
    f->prior_size = req->statbuf.st_size;
    f->prior_mtime_ms = (int64_t)req->statbuf.st_mtim.tv_sec * 1000 +
                        (int64_t)req->statbuf.st_mtim.tv_nsec / 1000000;
    f->prior_state = 1;
  } else {
    f->prior_state = r;
  }
  uv_fs_req_cleanup(req);
  f->busy = 0;
  pump(f);
}

static void start_fstat(wf_logfile_t *f) {
  int r;
  f->busy = 1;
  r = uv_fs_fstat(f->loop, &f->req, f->fd, on_fstat);
  if (r < 0) feed_error(f, on_fstat, r);
}

/* Creates the next missing component of the parent directory, or opens the
 * file once every component exists. */
static void next_mkdir(wf_logfile_t *f) {
  size_t i;
  int r;
  /* Skip empty components ("a//b", a leading '/'). */
  while (f->mkdir_pos < f->mkdir_end && f->dirbuf[f->mkdir_pos] == '/') f->mkdir_pos++;
  if (f->mkdir_pos >= f->mkdir_end) {
    f->mkdir_done = 1;
    start_open(f);
    return;
  }
  for (i = f->mkdir_pos; i < f->mkdir_end && f->dirbuf[i] != '/'; i++) {}
  f->mkdir_pos = i + 1;
  f->busy = 1;
  /* uv_fs_mkdir copies the path, so the '/' can go back at once. */
  f->dirbuf[i] = '\0';
  r = uv_fs_mkdir(f->loop, &f->req, f->dirbuf, 0755, on_mkdir);
  f->dirbuf[i] = '/';
  if (r < 0) feed_error(f, on_mkdir, r);
}

static void on_mkdir(uv_fs_t *req) {
  wf_logfile_t *f = req->data;
  int r = (int)req->result;
  uv_fs_req_cleanup(req);
  f->busy = 0;
  if (r < 0 && r != UV_EEXIST) {
    /* e.g. ENOTDIR when a component is a file, EACCES, ENOSPC. */
    fail(f, r);
    pump(f);
    return;
  }
  next_mkdir(f);
}

static void on_open(uv_fs_t *req) {
  wf_logfile_t *f = req->data;
  int r = (int)req->result;
  uv_fs_req_cleanup(req);
  f->busy = 0;
  if (r == UV_ENOENT && !f->mkdir_done) {
    /* Opening first makes the common case (directory of the day exists)
     * one request; only a missing parent pays for the mkdir -p walk. */
    char *slash = strrchr(f->path, '/');
    if (slash && slash != f->path) {
      f->dirbuf = wf_strdup(f->path);
      f->mkdir_pos = 0;
      f->mkdir_end = (size_t)(slash - f->path);
      next_mkdir(f);
      return;
    }
  }
  if (r < 0) {
    if (f->append) f->prior_state = r;
    fail(f, r);
  } else {
    f->fd = r;
    if (f->append) {
      start_fstat(f);
      return;
    }
  }
  pump(f);
}

/* Bytes every logfile of this process wrote, for the metric
 * workflow_log_bytes_total.  Process-wide on purpose: the log store has no
 * object of its own (a wf_logfile_t lives and dies with one step), and the
 * metric is the sum over every step the process ever ran, including the
 * files already closed.  Only loop callbacks add to it (on_write,
 * on_pull_done; never a threadpool function), and the process has one loop,
 * so no lock is needed. */
static uint64_t bytes_total;
/* For wf_logstore_hot(): pull jobs on the threadpool now, and the loop time
 * of the last write that completed (same single-loop reasoning). */
static unsigned pulls_running;
static uint64_t last_write_ms;

static void on_write(uv_fs_t *req) {
  wf_logfile_t *f = req->data;
  ssize_t r = req->result;
  uv_fs_req_cleanup(req);
  f->busy = 0;
  f->ninflight = 0;
  if (r <= 0) {
    /* A regular file never takes 0 bytes of a non-empty write; do not spin. */
    fail(f, r < 0 ? (int)r : UV_EIO);
  } else {
    size_t done = (size_t)r;
    f->written += done;
    bytes_total += done;  /* metrics */
    last_write_ms = uv_now(f->loop);
    f->queued -= done;
    /* A short write leaves the rest of an entry queued, with off advanced;
     * the next write resumes exactly there. */
    while (done > 0) {
      qent_t *e = q_at(f, 0);
      size_t avail = e->len - e->off;
      if (done >= avail) {
        done -= avail;
        q_pop(f);
      } else {
        e->off += done;
        done = 0;
      }
    }
  }
  pump(f);
  maybe_drain(f);
}

static void start_write(wf_logfile_t *f) {
  size_t n = 0, bytes = 0;
  int r;
  while (n < f->qlen && n < WRITE_MAX_BUFS) {
    qent_t *e = q_at(f, n);
    size_t len = e->len - e->off;
    /* uv_buf_t lengths are unsigned int; a huge buffer goes in slices and
     * the short-write path picks up the rest. */
    if (len > ((size_t)1 << 30)) len = (size_t)1 << 30;
    if (n > 0 && bytes + len > f->write_cap) break;
    f->iov[n] = uv_buf_init(e->base + e->off, (unsigned)len);
    bytes += len;
    n++;
  }
  f->ninflight = n;
  f->busy = 1;
  r = uv_fs_write(f->loop, &f->req, f->fd, f->iov, (unsigned)n, -1, on_write);
  if (r < 0) feed_error(f, on_write, r);
}

static void on_timer_closed(uv_handle_t *h) {
  wf_logfile_t *f = h->data;
  if (f->cbs.on_closed) f->cbs.on_closed(f, f->err, f->data);
  q_drop_all(f);
  free(f->q);
  free(f->dirbuf);
  free(f->path);
  free(f);
}

/* Last step: closing the timer makes on_closed fire on a later tick even
 * when there was no fd to close. */
static void finish(wf_logfile_t *f) {
  f->closing = 1;
  uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

static void on_fclose(uv_fs_t *req) {
  wf_logfile_t *f = req->data;
  int r = (int)req->result;
  uv_fs_req_cleanup(req);
  f->busy = 0;
  f->fd = -1;
  if (r < 0 && !f->err) f->err = r;
  finish(f);
}

/* ---- pull ------------------------------------------------------------------------ */

/* Writes all of buf to fd (a regular file: short only on error). */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -errno : UV_EIO;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* On the threadpool.  Touches only the pl_* fields and fd. */
static void pull_work(uv_work_t *w) {
  wf_logfile_t *f = w->data;
  char buf[PULL_BUF];
  size_t moved = 0, seen = 0;  /* seen: dropped bytes too, for the budget */
  int status = 1;
  while (seen < PULL_BUDGET) {
    ssize_t n = read(f->pl_fd, buf, sizeof buf);
    if (n > 0) {
      seen += (size_t)n;
      if (f->pl_discard) continue;
      int r = write_all(f->fd, buf, (size_t)n);
      if (r < 0) {
        /* These bytes are lost with the file, as queued ones are; the
         * pipe is still drained. */
        f->pl_file_err = r;
        f->pl_discard = 1;
        continue;
      }
      moved += (size_t)n;
      continue;
    }
    if (n == 0) {
      status = UV_EOF;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN) {
      /* The writer is mid-stream: a moment's wait on the pool thread is
       * far cheaper than the hand-off back to the loop, a poll, and a new
       * job.  A pipe that stays quiet returns at once. */
      struct pollfd pfd = {.fd = f->pl_fd, .events = POLLIN};
      if (seen > 0 && poll(&pfd, 1, PULL_LINGER_MS) > 0) {
        /* Woken by the first bytes: let the pipe fill a little, so that a
         * writer of small pieces does not cost a read each. */
        struct timespec ts = {0, PULL_BATCH_NS};
        nanosleep(&ts, NULL);
        continue;
      }
      status = 0;
    } else {
      status = -errno;
    }
    break;
  }
  f->pl_moved = moved;
  f->pl_status = status;
}

static void on_pull_done(uv_work_t *w, int status) {
  wf_logfile_t *f = w->data;
  wf_logfile_pull_cb cb = f->pl_cb;
  void *data = f->pl_data;
  f->busy = 0;
  f->pl_cb = NULL;
  f->written += f->pl_moved;
  bytes_total += f->pl_moved;  /* metrics */
  pulls_running--;
  if (f->pl_moved) last_write_ms = uv_now(f->loop);
  if (f->pl_file_err) fail(f, f->pl_file_err);
  cb(f, f->pl_moved, status < 0 ? status : f->pl_status, data);
  pump(f);
}

static void start_pull(wf_logfile_t *f) {
  int r;
  f->pl_discard = f->err != 0;
  f->pl_file_err = 0;
  f->pl_moved = 0;
  f->busy = 1;
  pulls_running++;
  r = uv_queue_work(f->loop, &f->work, pull_work, on_pull_done);
  if (r < 0) {
    /* Cannot happen (only for a NULL work_cb); report it as the pipe's. */
    f->pl_status = r;
    on_pull_done(&f->work, r);
  }
}

int wf_logfile_can_pull(const wf_logfile_t *f) { return !f->mask; }

int wf_logfile_pull(wf_logfile_t *f, int fd, wf_logfile_pull_cb cb, void *data) {
  if (f->close_requested) return WF_ECLOSED;
  if (f->pl_cb) return UV_EBUSY;
  f->pl_cb = cb;
  f->pl_data = data;
  f->pl_fd = fd;
  pump(f);
  return 0;
}

/* Decides the next request, whenever none is in flight.  Safe to call from
 * anywhere, any number of times. */
static void pump(wf_logfile_t *f) {
  if (f->busy || f->closing) return;
  if (f->fd >= 0 && !f->err && f->qlen > 0) {
    start_write(f);
    return;
  }
  if (f->pl_cb && (f->fd >= 0 || f->err)) {
    start_pull(f);
    return;
  }
  if (!f->close_requested) return;
  if (f->fd >= 0) {
    int r;
    f->busy = 1;
    f->closing = 1;
    r = uv_fs_close(f->loop, &f->req, f->fd, on_fclose);
    if (r < 0) feed_error(f, on_fclose, r);
  } else {
    finish(f);
  }
}

/* ---- public ------------------------------------------------------------------ */

static wf_logfile_t *open_file(uv_loop_t *loop, const char *path, size_t max_queue,
                               const wf_logfile_cbs_t *cbs, void *data, int append) {
  wf_logfile_t *f = wf_calloc(1, sizeof *f);
  f->append = append;
  f->loop = loop;
  f->path = wf_strdup(path);
  if (cbs) f->cbs = *cbs;
  f->data = data;
  f->fd = -1;
  f->max_queue = max_queue ? max_queue : DEFAULT_MAX_QUEUE;
  /* At most half the queue per write: the other half keeps the producer
   * busy while the write runs, instead of the two taking turns. */
  f->write_cap = f->max_queue / 2;
  if (f->write_cap > WRITE_MAX_BYTES) f->write_cap = WRITE_MAX_BYTES;
  f->req.data = f;
  f->work.data = f;
  uv_timer_init(loop, &f->timer);
  f->timer.data = f;
  start_open(f);
  return f;
}

wf_logfile_t *wf_logfile_open(uv_loop_t *loop, const char *path, size_t max_queue,
                              const wf_logfile_cbs_t *cbs, void *data) {
  return open_file(loop, path, max_queue, cbs, data, 0);
}

wf_logfile_t *wf_logfile_open_append(uv_loop_t *loop, const char *path, size_t max_queue,
                                     const wf_logfile_cbs_t *cbs, void *data) {
  return open_file(loop, path, max_queue, cbs, data, 1);
}

int wf_logfile_prior(const wf_logfile_t *f, uint64_t *size, int64_t *mtime_ms) {
  if (!f->append) return UV_EINVAL;
  if (f->prior_state == 1) {
    if (size) *size = f->prior_size;
    if (mtime_ms) *mtime_ms = f->prior_mtime_ms;
  }
  return f->prior_state;
}

void wf_logfile_set_drain_cb(wf_logfile_t *f, void (*on_drain)(wf_logfile_t *f, void *data),
                             void *data) {
  f->on_drain = on_drain;
  f->drain_data = data;
}

static void masked_out(const char *p, size_t n, void *data) {
  wf_logfile_t *f = data;
  if (!n) return;
  enqueue(f, NULL, p, n);
  f->queued += n;
}

void wf_logfile_set_mask(wf_logfile_t *f, wf_mask_t *mask) { f->mask = mask; }

int wf_logfile_write(wf_logfile_t *f, char *buf, size_t len) {
  if (f->close_requested) {
    free(buf);
    return WF_ECLOSED;
  }
  if (f->err) {
    free(buf);
    return f->err;
  }
  if (len > 0 && f->mask) {
    /* Secrets are replaced before anything is queued; the masker holds back
     * a value's worth of bytes so a value split across writes is found. */
    wf_mask_feed(f->mask, buf, len, masked_out, f);
    free(buf);
    pump(f);
  } else if (len > 0) {
    enqueue(f, buf, NULL, len);
    f->queued += len;
    pump(f);
  } else {
    free(buf);
  }
  if (f->queued > f->max_queue) {
    f->need_drain = 1;
    return 1;
  }
  return 0;
}

int wf_logfile_write_copy(wf_logfile_t *f, const char *buf, size_t len) {
  if (f->close_requested) return WF_ECLOSED;
  if (f->err) return f->err;
  if (len > 0 && f->mask) {
    wf_mask_feed(f->mask, buf, len, masked_out, f);
    pump(f);
  } else if (len > 0) {
    enqueue(f, NULL, buf, len);
    f->queued += len;
    pump(f);
  }
  if (f->queued > f->max_queue) {
    f->need_drain = 1;
    return 1;
  }
  return 0;
}

void wf_logfile_close(wf_logfile_t *f) {
  if (f->close_requested) return;
  if (f->mask && !f->err) wf_mask_flush(f->mask, masked_out, f);
  f->close_requested = 1;
  pump(f);
}

uint64_t wf_logfile_bytes(const wf_logfile_t *f) {
  return f->written;
}

uint64_t wf_logstore_bytes_total(void) { return bytes_total; }

int wf_logstore_hot(uv_loop_t *loop, uint64_t window_ms) {
  return pulls_running > 0 || (last_write_ms && uv_now(loop) - last_write_ms < window_ms);
}
