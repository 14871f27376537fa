/*
 * logstore: path rules, directory creation, byte-exact ordered writes,
 * backpressure, the error paths (open failure, mkdir failure, ENOSPC), and
 * pulling a pipe into the file (ordered with queued writes, into a plain and
 * an O_APPEND file, draining into a failed file).
 * Every case runs on a real loop and ends with wf_test_close_loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "wf-test.h"
#include "wf/logstore.h"
#include "wf/mask.h"
#include "wf/util.h"

static char tmpdir[] = "/tmp/wf-test-logstore-XXXXXX";

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(p);
}

static char *slurp(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  char *buf;
  long n;
  ASSERT_NOT_NULL(fp);
  ASSERT_OK(fseek(fp, 0, SEEK_END));
  n = ftell(fp);
  ASSERT(n >= 0);
  rewind(fp);
  buf = malloc((size_t)n + 1);
  ASSERT_NOT_NULL(buf);
  ASSERT_EQ(fread(buf, 1, (size_t)n, fp), n);
  buf[n] = '\0';
  fclose(fp);
  *len = (size_t)n;
  return buf;
}

/* ---- shared callbacks ---------------------------------------------------------- */

static int closed_called, error_called, drain_called;
static int closed_err, error_err;
static uint64_t closed_bytes;

static void on_closed(wf_logfile_t *f, int err, void *data) {
  closed_called++;
  closed_err = err;
  closed_bytes = wf_logfile_bytes(f);
}

static void on_error(wf_logfile_t *f, int err, void *data) {
  error_called++;
  error_err = err;
}

static const wf_logfile_cbs_t cbs = {on_closed, on_error};

static void reset(void) {
  closed_called = error_called = drain_called = 0;
  closed_err = error_err = 0;
  closed_bytes = 0;
}

/* ---- paths ---------------------------------------------------------------------- */

static int64_t local_ms(int y, int mon, int d) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  tm.tm_year = y - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = d;
  tm.tm_hour = 12;
  tm.tm_isdst = -1;
  return (int64_t)mktime(&tm) * 1000 + 123;
}

static void test_paths(void) {
  char out[4096], big[300];
  ASSERT_OK(wf_log_path(out, sizeof out, "runner_log", "ns1.c3r8psea0brhlbg0qdd0.1.1",
                        local_ms(2026, 11, 7)));
  ASSERT_STR_EQ(out, "runner_log/2026/11/7/ns1.c3r8psea0brhlbg0qdd0.1.1");
  ASSERT_OK(wf_log_path(out, sizeof out, "runner_log", "k", local_ms(2021, 7, 5)));
  ASSERT_STR_EQ(out, "runner_log/2021/7/5/k");
  ASSERT_OK(wf_log_path(out, sizeof out, "/var/log/wf/", "k", local_ms(2024, 12, 31)));
  ASSERT_STR_EQ(out, "/var/log/wf/2024/12/31/k");
  ASSERT_OK(wf_log_path(out, sizeof out, "/", "k", local_ms(2024, 1, 1)));
  ASSERT_STR_EQ(out, "//2024/1/1/k");

  ASSERT_EQ(wf_log_path(out, 10, "runner_log", "k", local_ms(2026, 11, 7)), UV_ENAMETOOLONG);
  ASSERT_EQ(wf_log_path(out, sizeof out, "runner_log", "a/b", 0), UV_EINVAL);
  ASSERT_EQ(wf_log_path(out, sizeof out, "runner_log", "..", 0), UV_EINVAL);
  ASSERT_EQ(wf_log_path(out, sizeof out, "", "k", 0), UV_EINVAL);

  ASSERT(!wf_log_key_safe(NULL));
  ASSERT(!wf_log_key_safe(""));
  ASSERT(!wf_log_key_safe("/"));
  ASSERT(!wf_log_key_safe("."));
  ASSERT(!wf_log_key_safe(".."));
  ASSERT(!wf_log_key_safe("a/b"));
  ASSERT(!wf_log_key_safe("../etc"));
  ASSERT(!wf_log_key_safe("a\nb"));
  ASSERT(!wf_log_key_safe("a\tb"));
  ASSERT(!wf_log_key_safe("\x01"));
  ASSERT(!wf_log_key_safe("a\x7f"));
  /* A NUL cannot be inside a C string: "a\0/" is just "a", which is fine. */
  ASSERT(wf_log_key_safe("a\0/"));
  ASSERT(wf_log_key_safe("a..b"));
  ASSERT(wf_log_key_safe("..."));
  ASSERT(wf_log_key_safe("ns1.c3r8psea0brhlbg0qdd0.1.1"));
  ASSERT(wf_log_key_safe("caf\xc3\xa9"));
  memset(big, 'k', sizeof big);
  big[255] = '\0';
  ASSERT(wf_log_key_safe(big));
  big[255] = 'k';
  big[256] = '\0';
  ASSERT(!wf_log_key_safe(big));
}

/* ---- nested dirs, order, exact bytes ----------------------------------------------- */

static void test_nested_ordered(void) {
  uv_loop_t loop;
  char path[512];
  size_t total = 0, len, off = 0;
  char *expect, *got;
  wf_logfile_t *f;
  unsigned seed = 12345;

  reset();
  ASSERT_OK(uv_loop_init(&loop));
  snprintf(path, sizeof path, "%s/a//b/c/d/step.1", tmpdir);
  f = wf_logfile_open(&loop, path, 256 << 10, &cbs, NULL);
  ASSERT_NOT_NULL(f);

  /* Sizes from 1 byte to 200 KiB, through both entry points, each byte
   * numbered so that any reordering or loss shows. */
  expect = malloc(64 << 20);
  ASSERT_NOT_NULL(expect);
  for (int i = 0; i < 6000; i++) {
    size_t n;
    char *b;
    seed = seed * 1103515245 + 12345;
    switch (seed >> 28) {
    case 0: n = 200 << 10; break;
    case 1: case 2: n = 64 << 10; break;
    case 3: n = 17000; break;
    default: n = 1 + (seed >> 8) % 300; break;
    }
    if (total + n > (64u << 20)) break;
    b = malloc(n);
    for (size_t j = 0; j < n; j++) b[j] = (char)((total + j) * 7 + (total + j) / 251);
    memcpy(expect + total, b, n);
    total += n;
    if (i % 3 == 0) {
      ASSERT(wf_logfile_write_copy(f, b, n) >= 0);
      free(b);
    } else {
      ASSERT(wf_logfile_write(f, b, n) >= 0);  /* ownership passes */
    }
    /* Let some writes complete between bursts. */
    if (i % 500 == 0) uv_run(&loop, UV_RUN_ONCE);
  }
  ASSERT_EQ(wf_logfile_write(f, NULL, 0) >= 0, 1);
  wf_logfile_close(f);
  ASSERT_EQ(wf_logfile_write_copy(f, "x", 1), WF_ECLOSED);
  ASSERT_EQ(wf_logfile_write(f, strdup("x"), 1), WF_ECLOSED);
  ASSERT_EQ(closed_called, 0);  /* never from inside a call */
  wf_test_close_loop(&loop);

  ASSERT_EQ(closed_called, 1);
  ASSERT_OK(closed_err);
  ASSERT_EQ(error_called, 0);
  ASSERT_EQ(closed_bytes, total);
  got = slurp(path, &len);
  ASSERT_EQ(len, total);
  for (off = 0; off < total; off++)
    if (got[off] != expect[off]) WF_FAIL("byte %zu differs", off);
  free(got);
  free(expect);

  {
    struct stat st;
    ASSERT_OK(stat(path, &st));
    ASSERT_EQ(st.st_mode & 0777, 0644);  /* umask 022 */
    snprintf(path, sizeof path, "%s/a/b/c/d", tmpdir);
    ASSERT_OK(stat(path, &st));
    ASSERT(S_ISDIR(st.st_mode));
  }
}

/* Existing file is truncated; open+close with nothing written; close before
 * the open completes. */
static void test_truncate_empty(void) {
  uv_loop_t loop;
  char path[512];
  size_t len;
  char *got;
  FILE *fp;

  reset();
  snprintf(path, sizeof path, "%s/trunc", tmpdir);
  fp = fopen(path, "w");
  ASSERT_NOT_NULL(fp);
  fputs("old content that must go", fp);
  fclose(fp);
  ASSERT_OK(uv_loop_init(&loop));
  wf_logfile_close(wf_logfile_open(&loop, path, 0, &cbs, NULL));
  wf_test_close_loop(&loop);
  ASSERT_EQ(closed_called, 1);
  ASSERT_OK(closed_err);
  got = slurp(path, &len);
  ASSERT_EQ(len, 0);
  free(got);

  /* Small writes queued before the open, then closed at once: flushed. */
  reset();
  ASSERT_OK(uv_loop_init(&loop));
  {
    wf_logfile_t *f = wf_logfile_open(&loop, path, 0, &cbs, NULL);
    ASSERT_OK(wf_logfile_write_copy(f, "hello ", 6));
    ASSERT_OK(wf_logfile_write(f, strdup("world\n"), 6));
    wf_logfile_close(f);
    wf_logfile_close(f);  /* idempotent */
  }
  wf_test_close_loop(&loop);
  ASSERT_EQ(closed_called, 1);
  ASSERT_EQ(closed_bytes, 12);
  got = slurp(path, &len);
  ASSERT_STR_EQ(got, "hello world\n");
  free(got);
}

/* ---- backpressure ---------------------------------------------------------------- */

static struct {
  wf_logfile_t *f;
  size_t sent, goal, paused_writes, max_seen_queue;
  int paused;
  unsigned char next;
} bp;

static void bp_produce(void) {
  /* Produce until the logfile says stop, like a runner reading a pipe. */
  while (bp.sent < bp.goal) {
    size_t n = 48 << 10;
    char *b = malloc(n);
    int r;
    for (size_t i = 0; i < n; i++) b[i] = (char)bp.next++;
    bp.sent += n;
    r = wf_logfile_write(bp.f, b, n);
    ASSERT(r == 0 || r == 1);
    if (r == 1) {
      bp.paused = 1;
      bp.paused_writes++;
      return;
    }
  }
  wf_logfile_close(bp.f);
}

static void bp_on_drain(wf_logfile_t *f, void *data) {
  ASSERT_EQ(data, &bp);
  ASSERT(bp.paused);
  drain_called++;
  bp.paused = 0;
  bp_produce();
}

static void test_backpressure(void) {
  uv_loop_t loop;
  char path[512];
  size_t len;
  char *got;

  reset();
  memset(&bp, 0, sizeof bp);
  ASSERT_OK(uv_loop_init(&loop));
  snprintf(path, sizeof path, "%s/bp", tmpdir);
  bp.f = wf_logfile_open(&loop, path, 128 << 10, &cbs, NULL);
  bp.goal = 48 << 10 << 8;  /* 12 MiB */
  wf_logfile_set_drain_cb(bp.f, bp_on_drain, &bp);
  bp_produce();
  ASSERT_EQ(bp.paused, 1);  /* 3 x 48 KiB > 128 KiB already */
  ASSERT_EQ(drain_called, 0);
  wf_test_close_loop(&loop);
  ASSERT_EQ(closed_called, 1);
  ASSERT_OK(closed_err);
  ASSERT(drain_called > 10);
  ASSERT_EQ(drain_called, bp.paused_writes);
  ASSERT_EQ(closed_bytes, bp.goal);
  got = slurp(path, &len);
  ASSERT_EQ(len, bp.goal);
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)got[i] != (unsigned char)i) WF_FAIL("byte %zu differs", i);
  free(got);
}

/* ---- errors -------------------------------------------------------------------------- */

static void expect_open_failure(const char *path, int want) {
  uv_loop_t loop;
  wf_logfile_t *f;
  reset();
  ASSERT_OK(uv_loop_init(&loop));
  f = wf_logfile_open(&loop, path, 0, &cbs, NULL);
  ASSERT_OK(wf_logfile_write_copy(f, "queued before the failure\n", 26));
  uv_run(&loop, UV_RUN_DEFAULT);  /* runs until the open fails */
  ASSERT_EQ(error_called, 1);
  ASSERT(error_err < 0);
  if (want) ASSERT_EQ(error_err, want);
  ASSERT_EQ(closed_called, 0);
  ASSERT_EQ(wf_logfile_write_copy(f, "x", 1), error_err);
  ASSERT_EQ(wf_logfile_write(f, strdup("x"), 1), error_err);  /* freed, not leaked */
  wf_logfile_close(f);
  wf_test_close_loop(&loop);
  ASSERT_EQ(error_called, 1);
  ASSERT_EQ(closed_called, 1);
  ASSERT_EQ(closed_err, error_err);
  ASSERT_EQ(closed_bytes, 0);
}

static void test_errors(void) {
  char path[512], file[512], link[512];
  FILE *fp;

  /* A parent component is a regular file: the open itself fails. */
  snprintf(file, sizeof file, "%s/plainfile", tmpdir);
  fp = fopen(file, "w");
  ASSERT_NOT_NULL(fp);
  fclose(fp);
  snprintf(path, sizeof path, "%s/plainfile/sub/key", tmpdir);
  expect_open_failure(path, UV_ENOTDIR);

  /* Missing parent that mkdir cannot create. */
  expect_open_failure("/proc/wf-no-such-dir/x/key", 0);

  /* A dangling symlink as the parent: mkdir says EEXIST, the second open
   * still says ENOENT, and that is final (no loop). */
  snprintf(link, sizeof link, "%s/dangling", tmpdir);
  ASSERT_OK(symlink("/nonexistent-wf-target/x", link));
  snprintf(path, sizeof path, "%s/dangling/key", tmpdir);
  expect_open_failure(path, UV_ENOENT);

  /* The file is a directory. */
  expect_open_failure(tmpdir, UV_EISDIR);
}

/* ENOSPC on a real device: /dev/full opens fine and fails every write.  A
 * paused producer is released by on_drain so it never wedges. */
static void enospc_drain(wf_logfile_t *f, void *data) {
  drain_called++;
  ASSERT_EQ(error_called, 1);  /* on_error first */
  ASSERT_EQ(wf_logfile_write_copy(f, "y", 1), UV_ENOSPC);
  wf_logfile_close(f);
}

static void test_enospc(void) {
  uv_loop_t loop;
  wf_logfile_t *f;
  int r = 0;

  reset();
  ASSERT_OK(uv_loop_init(&loop));
  f = wf_logfile_open(&loop, "/dev/full", 64 << 10, &cbs, NULL);
  wf_logfile_set_drain_cb(f, enospc_drain, NULL);
  for (int i = 0; i < 10 && r != 1; i++) r = wf_logfile_write(f, calloc(1, 20000), 20000);
  ASSERT_EQ(r, 1);
  wf_test_close_loop(&loop);
  ASSERT_EQ(error_called, 1);
  ASSERT_EQ(error_err, UV_ENOSPC);
  ASSERT_EQ(drain_called, 1);
  ASSERT_EQ(closed_called, 1);
  ASSERT_EQ(closed_err, UV_ENOSPC);
}

/* on_error may close the file from inside the callback. */
static void close_in_error(wf_logfile_t *f, int err, void *data) {
  error_called++;
  error_err = err;
  wf_logfile_close(f);
}

static void test_close_in_error(void) {
  uv_loop_t loop;
  wf_logfile_cbs_t c = {on_closed, close_in_error};
  wf_logfile_t *f;
  reset();
  ASSERT_OK(uv_loop_init(&loop));
  f = wf_logfile_open(&loop, "/dev/full", 0, &c, NULL);
  ASSERT_OK(wf_logfile_write_copy(f, "abc", 3));
  wf_test_close_loop(&loop);
  ASSERT_EQ(error_called, 1);
  ASSERT_EQ(closed_called, 1);
  ASSERT_EQ(closed_err, UV_ENOSPC);
}

/* A file-size limit makes the kernel take part of a write and refuse the
 * rest: the short write is accounted for exactly, then EFBIG fails the file. */
static void test_short_write(void) {
  wf_logfile_cbs_t c = {on_closed, close_in_error};
  uv_loop_t loop;
  struct rlimit old, lim;
  char path[512];
  wf_logfile_t *f;
  size_t len;
  char *got;

  reset();
  signal(SIGXFSZ, SIG_IGN);
  ASSERT_OK(getrlimit(RLIMIT_FSIZE, &old));
  lim = old;
  lim.rlim_cur = 100000;
  ASSERT_OK(setrlimit(RLIMIT_FSIZE, &lim));
  ASSERT_OK(uv_loop_init(&loop));
  snprintf(path, sizeof path, "%s/fsize", tmpdir);
  /* Closed from on_error: once close is asked for, a failure is reported
   * only through on_closed. */
  f = wf_logfile_open(&loop, path, 1 << 20, &c, NULL);
  for (int i = 0; i < 5; i++) {
    char *b = malloc(60000);
    memset(b, 'a' + i, 60000);
    ASSERT_OK(wf_logfile_write(f, b, 60000));
  }
  wf_test_close_loop(&loop);
  ASSERT_OK(setrlimit(RLIMIT_FSIZE, &old));
  signal(SIGXFSZ, SIG_DFL);
  ASSERT_EQ(error_called, 1);
  ASSERT_EQ(error_err, UV_EFBIG);
  ASSERT_EQ(closed_err, UV_EFBIG);
  ASSERT_EQ(closed_bytes, 100000);
  got = slurp(path, &len);
  ASSERT_EQ(len, 100000);
  ASSERT_EQ(got[59999], 'a');
  ASSERT_EQ(got[60000], 'b');
  ASSERT_EQ(got[99999], 'b');
  free(got);
}

/* ---- pull ------------------------------------------------------------------------ */

static size_t sp_moved;
static int sp_status, sp_calls;

static void on_pulled(wf_logfile_t *f, size_t moved, int status, void *data) {
  sp_moved += moved;
  sp_status = status;
  sp_calls++;
}

/* A non-blocking pipe holding n bytes of a pattern; the write end is closed
 * when close_w, else returned in *w. */
static int pattern_pipe(size_t n, int close_w, int *w) {
  int fds[2];
  char buf[4096];
  ASSERT_OK(pipe2(fds, O_NONBLOCK | O_CLOEXEC));
  ASSERT(fcntl(fds[0], F_SETPIPE_SZ, 1 << 20) >= (int)n);
  for (size_t done = 0; done < n;) {
    size_t k = n - done < sizeof buf ? n - done : sizeof buf;
    for (size_t i = 0; i < k; i++) buf[i] = (char)('a' + (done + i) % 26);
    ASSERT_EQ(write(fds[1], buf, k), (ssize_t)k);
    done += k;
  }
  if (close_w) {
    close(fds[1]);
  } else {
    *w = fds[1];
  }
  return fds[0];
}

static void check_pattern(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (char)('a' + i % 26)) WF_FAIL("byte %zu is %d", i, p[i]);
}

/* Pulled bytes land after what was queued before and before what is
 * queued after; an empty pipe with a live writer says 0, a closed one EOF. */
static void case_pull(int append) {
  uv_loop_t loop;
  char path[512];
  const size_t n = 300000;
  size_t len;
  char *got;
  int w, rd;
  wf_logfile_t *f;
  reset();
  sp_moved = 0;
  sp_calls = 0;
  snprintf(path, sizeof path, "%s/pull/%s", tmpdir, append ? "append" : "plain");
  ASSERT_OK(uv_loop_init(&loop));
  f = append ? wf_logfile_open_append(&loop, path, 0, &cbs, NULL)
             : wf_logfile_open(&loop, path, 0, &cbs, NULL);
  ASSERT_EQ(wf_logfile_can_pull(f), 1);
  ASSERT_OK(wf_logfile_write_copy(f, "head\n", 5));

  /* A live writer, an empty pipe: status 0, nothing moved. */
  rd = pattern_pipe(0, 0, &w);
  ASSERT_OK(wf_logfile_pull(f, rd, on_pulled, NULL));
  ASSERT_EQ(wf_logfile_pull(f, rd, on_pulled, NULL), UV_EBUSY);
  ASSERT_EQ(sp_calls, 0);  /* never from inside the call */
  while (sp_calls < 1) uv_run(&loop, UV_RUN_ONCE);
  ASSERT_EQ(sp_status, 0);
  ASSERT_EQ(sp_moved, 0);
  close(w);
  close(rd);

  /* n bytes, then EOF. */
  rd = pattern_pipe(n, 1, NULL);
  ASSERT_OK(wf_logfile_pull(f, rd, on_pulled, NULL));
  while (sp_calls < 2) uv_run(&loop, UV_RUN_ONCE);
  ASSERT_EQ(sp_status, UV_EOF);
  ASSERT_EQ(sp_moved, n);
  close(rd);
  ASSERT_OK(wf_logfile_write_copy(f, "tail\n", 5));
  wf_logfile_close(f);
  ASSERT_EQ(wf_logfile_pull(f, 0, on_pulled, NULL), WF_ECLOSED);
  wf_test_close_loop(&loop);
  ASSERT_EQ(closed_called, 1);
  ASSERT_OK(closed_err);
  ASSERT_EQ(closed_bytes, n + 10);
  got = slurp(path, &len);
  ASSERT_EQ(len, n + 10);
  ASSERT(memcmp(got, "head\n", 5) == 0);
  check_pattern(got + 5, n);
  ASSERT(memcmp(got + 5 + n, "tail\n", 5) == 0);
  free(got);
}

/* Into a file that fails (ENOSPC): the pipe is still drained, the bytes
 * dropped, the owner told once; a masked file does not take pulls. */
static void test_pull_failed_file(void) {
  uv_loop_t loop;
  const char *secret[] = {"hunter2"};
  wf_mask_t *m = wf_mask_create(secret, 1);
  char buf[16];
  int rd;
  wf_logfile_t *f;
  reset();
  sp_moved = 0;
  sp_calls = 0;
  ASSERT_OK(uv_loop_init(&loop));
  f = wf_logfile_open(&loop, "/dev/full", 0, &cbs, NULL);
  wf_logfile_set_mask(f, m);
  ASSERT_EQ(wf_logfile_can_pull(f), 0);
  wf_logfile_set_mask(f, NULL);
  ASSERT_EQ(wf_logfile_can_pull(f), 1);
  rd = pattern_pipe(200000, 1, NULL);
  ASSERT_OK(wf_logfile_pull(f, rd, on_pulled, NULL));
  while (sp_calls < 1) uv_run(&loop, UV_RUN_ONCE);
  ASSERT_EQ(sp_status, UV_EOF);
  ASSERT_EQ(sp_moved, 0);
  ASSERT_EQ(error_called, 1);
  ASSERT_EQ(error_err, UV_ENOSPC);
  ASSERT_EQ(read(rd, buf, sizeof buf), 0);  /* drained to EOF */
  close(rd);
  wf_logfile_close(f);
  wf_test_close_loop(&loop);
  ASSERT_EQ(closed_err, UV_ENOSPC);
  wf_mask_destroy(m);
}

/* A pipe pulled into a fresh file and into one opened for appending. */
static void test_pull(void) {
  case_pull(0);
  case_pull(1);
}

/* ---- append open (docker recovery continues a log file) -------------------------------- */
static int closed_count;
static void on_append_closed(wf_logfile_t *f, int err, void *data) {
  (void)f;
  (void)data;
  ASSERT_OK(err);
  closed_count++;
}

static void test_append_open(void) {
  uv_loop_t loop;
  char dir[] = "/tmp/wf-append-XXXXXX";
  char path[256], path2[256];
  wf_logfile_cbs_t acbs = {on_append_closed, NULL};
  struct timeval tv[2];
  wf_logfile_t *f;
  uint64_t size = 99;
  int64_t mtime = 0;
  FILE *fp;
  char buf[64];
  size_t n;

  ASSERT_OK(uv_loop_init(&loop));
  ASSERT_NOT_NULL(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/log", dir);
  fp = fopen(path, "w");
  fputs("abc", fp);
  fclose(fp);
  tv[0].tv_sec = tv[1].tv_sec = 1000000000;
  tv[0].tv_usec = tv[1].tv_usec = 500000;
  ASSERT_OK(utimes(path, tv));

  closed_count = 0;
  f = wf_logfile_open_append(&loop, path, 0, &acbs, NULL);
  /* Never known synchronously; the first write waits behind the fstat. */
  ASSERT_EQ(wf_logfile_prior(f, &size, &mtime), 0);
  ASSERT_OK(wf_logfile_write_copy(f, "def", 3));
  while (wf_logfile_prior(f, &size, &mtime) == 0) uv_run(&loop, UV_RUN_ONCE);
  ASSERT_EQ(wf_logfile_prior(f, &size, &mtime), 1);
  ASSERT_EQ(size, 3);
  ASSERT_EQ(mtime, 1000000000500LL);
  wf_logfile_close(f);
  while (closed_count < 1) uv_run(&loop, UV_RUN_ONCE);
  fp = fopen(path, "r");
  n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = '\0';
  fclose(fp);
  ASSERT_STR_EQ(buf, "abcdef");

  /* A file (and directory) that is not there yet: created, size 0. */
  snprintf(path2, sizeof path2, "%s/new/dir/log", dir);
  f = wf_logfile_open_append(&loop, path2, 0, &acbs, NULL);
  ASSERT_OK(wf_logfile_write_copy(f, "x", 1));
  while (wf_logfile_prior(f, &size, &mtime) == 0) uv_run(&loop, UV_RUN_ONCE);
  ASSERT_EQ(wf_logfile_prior(f, &size, NULL), 1);
  ASSERT_EQ(size, 0);
  wf_logfile_close(f);
  while (closed_count < 2) uv_run(&loop, UV_RUN_ONCE);

  /* A plain open has nothing to say. */
  f = wf_logfile_open(&loop, path, 0, &acbs, NULL);
  ASSERT_EQ(wf_logfile_prior(f, NULL, NULL), UV_EINVAL);
  wf_logfile_close(f);
  while (closed_count < 3) uv_run(&loop, UV_RUN_ONCE);

  wf_test_close_loop(&loop);
  unlink(path2);
  unlink(path);
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  ASSERT_OK(system(path));
}

static const wf_test_t tests[] = {
    WF_TEST(paths), WF_TEST(nested_ordered), WF_TEST(truncate_empty), WF_TEST(backpressure),
    WF_TEST(errors), WF_TEST(enospc), WF_TEST(close_in_error), WF_TEST(short_write),
    WF_TEST(pull_failed_file), WF_TEST(pull), WF_TEST(append_open),
};

int main(int argc, char **argv) {
  ASSERT_NOT_NULL(mkdtemp(tmpdir));
  umask(022);
  int rc = WF_TEST_MAIN(argc, argv, tests);
  nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  return rc;
}
