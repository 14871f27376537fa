/*
 * logstore: the only code that writes step logs.  One file per step at
 * <dir>/<Y>/<M>/<D>/<step key> (month and day not zero-padded, local date),
 * written through uv_fs on libuv's threadpool with exactly one write in
 * flight per file and a bounded queue behind it.  Producers (runners) hand it
 * buffers; when the queue is over its high mark, wf_logfile_write() says so
 * and the producer stops reading its source until on_drain fires.
 */
#ifndef WF_LOGSTORE_H
#define WF_LOGSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct wf_logfile_s wf_logfile_t;

/* 1 if `key` may become a file name: non-empty, no '/', not "." or "..",
 * no NUL or control characters, at most 255 bytes. */
int wf_log_key_safe(const char *key);

/* Writes "<dir>/<Y>/<M>/<D>/<key>" for the local date of now_ms into out.
 * Returns 0, UV_EINVAL for an unsafe key, or UV_ENAMETOOLONG. */
int wf_log_path(char *out, size_t outlen, const char *dir, const char *key, int64_t now_ms);

typedef struct wf_logfile_cbs_s {
  /* The owner's: fires once when the file is closed after wf_logfile_close(),
   * with 0 or the first error any open/write/close hit (e.g. UV_ENOSPC).  The
   * logfile is freed after this returns. */
  void (*on_closed)(wf_logfile_t *f, int err, void *data);
  /* The owner's, optional: fires once, as soon as an open or write fails,
   * so the owner can stop the step early.  Later writes are dropped.  Not
   * after wf_logfile_close(): from then on the error comes only through
   * on_closed.  No callback of this module ever fires from inside a call
   * into it; they all come from the loop. */
  void (*on_error)(wf_logfile_t *f, int err, void *data);
} wf_logfile_cbs_t;

/* Opens (creates parent dirs 0755, then O_CREAT|O_TRUNC|O_WRONLY 0644) the
 * file at path, asynchronously; writes queue up meanwhile.  max_queue bounds
 * the queued bytes (0 = default 1 MiB).  path and cbs are copied. */
wf_logfile_t *wf_logfile_open(uv_loop_t *loop, const char *path, size_t max_queue,
                              const wf_logfile_cbs_t *cbs, void *data);

/* Like wf_logfile_open, but for a step whose output continues after an agent
 * restart: the file is opened O_APPEND (created if missing, never truncated),
 * and before the first write goes out its size and modification time are
 * recorded for wf_logfile_prior().  Writes queue up meanwhile, as usual. */
wf_logfile_t *wf_logfile_open_append(uv_loop_t *loop, const char *path, size_t max_queue,
                                     const wf_logfile_cbs_t *cbs, void *data);

/* What an append open found before this process wrote anything: returns 1
 * and fills size and mtime_ms (Unix ms; a file that did not exist reads as
 * size 0 and mtime of its creation), 0 while the open is still in flight, a
 * negative error if the open or fstat failed, or UV_EINVAL for a file from
 * wf_logfile_open.  size and mtime_ms may be NULL. */
int wf_logfile_prior(const wf_logfile_t *f, uint64_t *size, int64_t *mtime_ms);

/* Set by the producer: fires when the queue drains below half of max_queue
 * after a write returned 1.  May be changed at any time; NULL to clear.
 * Also fires (after on_error) when the file fails while the producer is
 * paused, so that it goes on draining its source; its writes then fail. */
void wf_logfile_set_drain_cb(wf_logfile_t *f, void (*on_drain)(wf_logfile_t *f, void *data),
                             void *data);

/* Queues buf (malloc'd; ownership passes to the logfile in every case) of len
 * bytes.  Returns 0 if the producer may go on, 1 if it should pause until
 * on_drain, or a negative error if the file already failed (buf freed), or
 * WF_ECLOSED after wf_logfile_close().  Small buffers (<= 16 KiB) are copied
 * into shared 64 KiB chunks, so memory follows the bytes queued. */
int wf_logfile_write(wf_logfile_t *f, char *buf, size_t len);

/* Copying variant for small writes (e.g. a line the node adds). */
int wf_logfile_write_copy(wf_logfile_t *f, const char *buf, size_t len);

/* pull: a pipe's bytes moved into the file by the threadpool (read+write
 * in a loop there), without passing through the loop thread or the queue.
 * wf_logfile_can_pull() says whether this file takes them (not with a mask:
 * a masker must see every byte on the loop).  wf_logfile_pull() moves what
 * the pipe fd (non-blocking, borrowed: keep it open until cb) holds into the
 * file, after everything queued before, up to a few MiB per call.  Once the
 * file has failed, the pipe is still drained and its bytes dropped, so that
 * the writer never blocks on a full pipe.  Returns 0, UV_EBUSY if a pull is
 * already pending, or WF_ECLOSED after wf_logfile_close() (cb will not
 * fire).  cb fires on a later tick, from the loop, with the bytes moved and
 * status: 0 the pipe is empty for now (poll it again), 1 the per-call budget
 * was reached (more may be there), UV_EOF every writer closed the pipe, or a
 * negative error of the pipe.  Errors of the file go to on_error as usual. */
typedef void (*wf_logfile_pull_cb)(wf_logfile_t *f, size_t moved, int status, void *data);
int wf_logfile_can_pull(const wf_logfile_t *f);
int wf_logfile_pull(wf_logfile_t *f, int fd, wf_logfile_pull_cb cb, void *data);

/* Hides secret values (wf/mask.h) in everything written from now on, even
 * when a value is split across two writes; the held-back tail is flushed at
 * close.  mask is borrowed and must outlive the file; NULL turns it off. */
struct wf_mask_s;
void wf_logfile_set_mask(wf_logfile_t *f, struct wf_mask_s *mask);

/* Flushes what is queued, closes the file, then fires on_closed.  No writes
 * after this. */
void wf_logfile_close(wf_logfile_t *f);

/* Bytes written to disk so far. */
uint64_t wf_logfile_bytes(const wf_logfile_t *f);

/* Bytes written to disk by every logfile of this process (for /metrics). */
uint64_t wf_logstore_bytes_total(void);

/* 1 while step output is being written: a pull job is on the threadpool or
 * a write completed less than window_ms ago (loop time).  Readers of logs
 * (the --listen endpoint) yield to writers while it says so, so that
 * serving a log never takes the disk, the threadpool or the CPU from the
 * steps writing theirs. */
int wf_logstore_hot(uv_loop_t *loop, uint64_t window_ms);

#endif
