/*
 * logretain: removes old step logs so that --log-dir does not grow without
 * end (--log-retention, --log-max-bytes).  One pass walks the log store's
 * layout, <dir>/<Y>/<M>/<D>/<file> (wf/logstore.h), entirely on libuv's
 * threadpool, and reports what it kept and removed on the loop.
 *
 * What a pass touches: only directories whose names are all digits at the
 * year, month and day levels, and only regular files inside day directories.
 * Anything else (other names, symbolic links, which are never followed below
 * <dir>, files at the year or month level, directories inside a day) is left
 * alone and not counted.  A pass:
 *   1. removes every counted file whose mtime is older than max_age_ms;
 *   2. then, if the bytes of the counted files left exceed max_bytes, removes
 *      files oldest first (mtime, ties by path) until they no longer do;
 *   3. then removes the day directories that are empty, and the month and
 *      year directories that this leaves empty.
 * A file named in the keep set (the step keys of running and reattachable
 * steps) is never removed, and neither by size is a file modified within a
 * second of now_ms or later (a step claimed after the keep set was taken);
 * they still count toward max_bytes, so a pass can end above the limit
 * (bytes_kept says so).  A file whose inode or mtime
 * changed between the walk and its removal (a step run again rewrote it) is
 * kept.  The directories of the dates around now_ms (the day before to the
 * day after, local time, and their months and years) are never removed,
 * even when empty: the log store may be creating them for a new file at
 * that moment, and a directory removed between its mkdir and its open would
 * fail the step.
 *
 * Memory: a pass lists the files it may remove in size order, so its memory
 * follows the files on disk: about 40 bytes plus the name per file, at most
 * WF_LOGRETAIN_MAX_FILES of them (with the day directories).  Beyond that it
 * goes on counting and removing by age, but does not apply max_bytes
 * (it cannot know which files are oldest) and reports an error.
 *
 * The walk holds one threadpool thread for as long as it runs (one readdir
 * entry and one fstatat per file; log writes share the pool meanwhile), and a
 * loop that is stopping waits for it to end: there is no cancel.
 */
#ifndef WF_LOGRETAIN_H
#define WF_LOGRETAIN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define WF_LOGRETAIN_MAX_FILES 1000000

typedef struct wf_logretain_opts_s {
  const char *dir;       /* the log dir (--log-dir); a symbolic link to a directory is fine */
  int64_t max_age_ms;    /* remove files older than this; 0 = no age limit */
  uint64_t max_bytes;    /* keep at most this many bytes of logs; 0 = no size limit */
  int64_t now_ms;        /* Unix ms the ages are measured from (wf_now_ms()) */
  char **keep;           /* file names (step keys) never removed; NULL when nkeep is 0 */
  size_t nkeep;
} wf_logretain_opts_t;

typedef struct wf_logretain_result_s {
  uint64_t files_kept;     /* counted files left after the pass (keep set included) */
  uint64_t bytes_kept;     /* their bytes (st_size) */
  uint64_t files_removed;
  uint64_t bytes_removed;
  uint64_t dirs_removed;   /* day, month and year directories */
  uint64_t errors;         /* failed opendir, stat, unlink, rmdir; the file cap */
  /* The first error as text, e.g. "unlink runner_log/2026/1/2/x: Permission
   * denied"; NULL when errors is 0.  Owned by the module, valid only during
   * the callback. */
  const char *error;
} wf_logretain_result_t;

typedef void (*wf_logretain_cb)(const wf_logretain_result_t *r, void *data);

/*
 * Starts one pass.  o and everything it points to (dir, keep and its
 * strings) are copied: the caller may free them when this returns.  cb
 * (required) fires exactly once, on the loop, on a later iteration (never
 * inside this call), when the pass has finished; r is borrowed for the
 * callback.  Errors met during the pass are counted in r, never fatal: the
 * pass goes on with the next file.  A missing dir is no error (everything
 * 0).  Returns 0, or UV_EINVAL (NULL loop, cb or o, an empty dir, a negative
 * max_age_ms, keep NULL with nkeep > 0) and then cb never fires.  Passes may
 * run at the same time, but two on the same dir race each other (counts
 * would be off, nothing worse): the caller runs one at a time.
 */
int wf_logretain_run(uv_loop_t *loop, const wf_logretain_opts_t *o, wf_logretain_cb cb,
                     void *data);

/* The flag parsers wf_parse_duration_ms and wf_parse_size_bytes are in
 * wf/util.h. */

#endif
