/*
 * retention: one pass of wf_logretain_run on real files: removal by age
 * (mtimes set with utimensat), by total size oldest first (ties by path),
 * the keep set under both limits, empty day/month/year directories removed
 * (not the ones around now, not the non-empty ones), foreign names, links
 * and files left alone and not counted, a missing dir, an error's text, and
 * bad arguments.  Every case runs on a real loop, checks the callback fired
 * once and never inside the call, and ends with wf_test_close_loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wf-test.h"
#include "wf/logretain.h"
#include "wf/util.h"

#define DAY_MS (86400 * (int64_t)1000)

#define TMP_TEMPLATE "/tmp/wf-test-retention-XXXXXX"
static char tmpdir[sizeof TMP_TEMPLATE];
static char logdir[256];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(p);
}

static void setup(void) {
  memcpy(tmpdir, TMP_TEMPLATE, sizeof TMP_TEMPLATE);
  ASSERT_NOT_NULL(mkdtemp(tmpdir));
  snprintf(logdir, sizeof logdir, "%s/logs", tmpdir);
  ASSERT_OK(mkdir(logdir, 0755));
}

static void teardown(void) {
  ASSERT_OK(nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS));
}

/* Local noon of a date, in Unix ms: the pass's now. */
static int64_t local_ms(int y, int mon, int d) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  tm.tm_year = y - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = d;
  tm.tm_hour = 12;
  tm.tm_isdst = -1;
  return (int64_t)mktime(&tm) * 1000;
}

static const char *at(const char *rel) {
  static char buf[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s/%s", logdir, rel);
  return buf[i];
}

/* mkdir -p of the directories in path (not its last component). */
static void mkparents(const char *path) {
  char tmp[512];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *s = tmp + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) WF_FAIL("mkdir %s: %s", tmp, strerror(errno));
    *s = '/';
  }
}

static void mkdirs(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/", at(rel));
  mkparents(p);
}

/* A file of size bytes under the log dir with mtime mtime_ms. */
static void mkfile(const char *rel, size_t size, int64_t mtime_ms) {
  const char *path = at(rel);
  mkparents(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT(fd >= 0);
  char buf[4096];
  memset(buf, 'x', sizeof buf);
  for (size_t left = size; left > 0;) {
    size_t n = left < sizeof buf ? left : sizeof buf;
    ASSERT_EQ(write(fd, buf, n), (long long)n);
    left -= n;
  }
  close(fd);
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = (time_t)(mtime_ms / 1000);
  ts[0].tv_nsec = ts[1].tv_nsec = (long)(mtime_ms % 1000) * 1000000;
  ASSERT_OK(utimensat(AT_FDCWD, path, ts, 0));
}

static int exists(const char *rel) {
  struct stat st;
  return lstat(at(rel), &st) == 0;
}

/* ---- running one pass ------------------------------------------------------------ */

static int cb_called;
static wf_logretain_result_t got;
static char *got_error;

static void on_done(const wf_logretain_result_t *r, void *data) {
  cb_called++;
  ASSERT_EQ((long long)(intptr_t)data, 42);
  got = *r;
  got.error = NULL;
  free(got_error);
  got_error = r->error ? strdup(r->error) : NULL;
}

static void run_pass(const wf_logretain_opts_t *o) {
  uv_loop_t loop;
  ASSERT_OK(uv_loop_init(&loop));
  cb_called = 0;
  memset(&got, 0, sizeof got);
  ASSERT_OK(wf_logretain_run(&loop, o, on_done, (void *)(intptr_t)42));
  ASSERT_EQ(cb_called, 0); /* never from inside the call */
  wf_test_close_loop(&loop);
  ASSERT_EQ(cb_called, 1);
  if (got.errors == 0) ASSERT_NULL(got_error);
  else ASSERT_NOT_NULL(got_error);
}

/* ---- cases ---------------------------------------------------------------------------- */

static void test_age(void) {
  int64_t now = local_ms(2026, 6, 15);
  setup();
  mkfile("2026/1/2/old.a", 100, now - 10 * DAY_MS);
  mkfile("2026/1/2/new.b", 200, now - 1 * DAY_MS);
  mkfile("2026/5/1/old.c", 300, now - 8 * DAY_MS);
  mkfile("2026/5/1/edge.d", 50, now - 7 * DAY_MS); /* exactly the limit: not older */
  mkfile("2026/5/2/old.e", 400, now - 30 * DAY_MS);
  /* The log dir may itself be a symbolic link. */
  char link[512];
  snprintf(link, sizeof link, "%s/logs-link", tmpdir);
  ASSERT_OK(symlink(logdir, link));
  wf_logretain_opts_t o = {.dir = link, .max_age_ms = 7 * DAY_MS, .now_ms = now};
  run_pass(&o);
  ASSERT_EQ(got.files_removed, 3);
  ASSERT_EQ(got.bytes_removed, 800);
  ASSERT_EQ(got.files_kept, 2);
  ASSERT_EQ(got.bytes_kept, 250);
  ASSERT_EQ(got.errors, 0);
  ASSERT(!exists("2026/1/2/old.a"));
  ASSERT(exists("2026/1/2/new.b"));
  ASSERT(!exists("2026/5/1/old.c"));
  ASSERT(exists("2026/5/1/edge.d"));
  ASSERT(!exists("2026/5/2"));
  ASSERT_EQ(got.dirs_removed, 1);

  /* No limits: nothing removed, everything counted. */
  wf_logretain_opts_t none = {.dir = logdir, .now_ms = now};
  run_pass(&none);
  ASSERT_EQ(got.files_removed, 0);
  ASSERT_EQ(got.files_kept, 2);
  ASSERT_EQ(got.bytes_kept, 250);
  ASSERT_EQ(got.dirs_removed, 0);
  teardown();
}

static void test_size_oldest_first(void) {
  int64_t now = local_ms(2026, 6, 15);
  setup();
  /* The oldest mtime sits in the newest directory: mtime decides, not the
   * date in the path. */
  mkfile("2025/12/31/x", 100, now - 40 * DAY_MS);
  mkfile("2025/3/1/z", 100, now - 30 * DAY_MS);
  mkfile("2025/3/1/y", 100, now - 30 * DAY_MS); /* same mtime as z: path order */
  mkfile("2025/1/1/w", 100, now - 20 * DAY_MS);
  mkfile("2026/6/15/today", 100, now - 1000);
  wf_logretain_opts_t o = {.dir = logdir, .max_bytes = 250, .now_ms = now};
  run_pass(&o);
  ASSERT_EQ(got.errors, 0);
  ASSERT_EQ(got.files_removed, 3);
  ASSERT_EQ(got.bytes_removed, 300);
  ASSERT_EQ(got.files_kept, 2);
  ASSERT_EQ(got.bytes_kept, 200);
  ASSERT(!exists("2025/12/31/x"));
  ASSERT(!exists("2025/3/1/y"));
  ASSERT(!exists("2025/3/1/z"));
  ASSERT(exists("2025/1/1/w"));
  ASSERT(exists("2026/6/15/today"));
  /* 2025/12/31 and 2025/12 emptied; 2025/3/1 and 2025/3 too. */
  ASSERT(!exists("2025/12"));
  ASSERT(!exists("2025/3"));
  ASSERT_EQ(got.dirs_removed, 4);

  /* Under the limit already: nothing to do. */
  wf_logretain_opts_t o2 = {.dir = logdir, .max_bytes = 200, .now_ms = now};
  run_pass(&o2);
  ASSERT_EQ(got.files_removed, 0);
  ASSERT_EQ(got.bytes_kept, 200);

  /* Ties broken by path: y before z, one byte over is enough to remove. */
  mkfile("2025/3/1/z", 100, now - 30 * DAY_MS);
  mkfile("2025/3/1/y", 100, now - 30 * DAY_MS);
  wf_logretain_opts_t o3 = {.dir = logdir, .max_bytes = 399, .now_ms = now};
  run_pass(&o3);
  ASSERT_EQ(got.files_removed, 1);
  ASSERT(!exists("2025/3/1/y"));
  ASSERT(exists("2025/3/1/z"));
  ASSERT_EQ(got.bytes_kept, 300);
  teardown();
}

static void test_keep_set(void) {
  int64_t now = local_ms(2026, 6, 15);
  setup();
  mkfile("2025/1/1/running.1", 300, now - 100 * DAY_MS);
  mkfile("2025/1/1/done.1", 100, now - 90 * DAY_MS);
  mkfile("2025/2/1/done.2", 100, now - 10 * DAY_MS);
  mkfile("2025/2/1/reattach.1", 50, now - 50 * DAY_MS);
  mkfile("2025/2/2/done.3", 100, now - 1 * DAY_MS);

  /* The keep set is copied by the call: freed before the pass runs. */
  char **keep = calloc(2, sizeof *keep);
  keep[0] = strdup("running.1");
  keep[1] = strdup("reattach.1");
  wf_logretain_opts_t o = {.dir = logdir, .max_age_ms = 30 * DAY_MS, .now_ms = now,
                           .keep = keep, .nkeep = 2};
  uv_loop_t loop;
  ASSERT_OK(uv_loop_init(&loop));
  cb_called = 0;
  ASSERT_OK(wf_logretain_run(&loop, &o, on_done, (void *)(intptr_t)42));
  free(keep[0]);
  free(keep[1]);
  free(keep);
  wf_test_close_loop(&loop);
  ASSERT_EQ(cb_called, 1);
  /* By age: done.1 goes; the two kept ones are older still and stay. */
  ASSERT_EQ(got.files_removed, 1);
  ASSERT(exists("2025/1/1/running.1"));
  ASSERT(!exists("2025/1/1/done.1"));
  ASSERT(exists("2025/2/1/reattach.1"));
  ASSERT_EQ(got.files_kept, 4);
  ASSERT_EQ(got.bytes_kept, 550);

  /* By size: the kept files count (350 bytes), so every other file goes and
   * the pass still ends above the limit. */
  char *keep2[] = {"running.1", "reattach.1"};
  wf_logretain_opts_t o2 = {.dir = logdir, .max_bytes = 300, .now_ms = now, .keep = keep2,
                            .nkeep = 2};
  run_pass(&o2);
  ASSERT_EQ(got.errors, 0);
  ASSERT_EQ(got.files_removed, 2);
  ASSERT_EQ(got.bytes_removed, 200);
  ASSERT_EQ(got.files_kept, 2);
  ASSERT_EQ(got.bytes_kept, 350);
  ASSERT(exists("2025/1/1/running.1"));
  ASSERT(exists("2025/2/1/reattach.1"));
  ASSERT(!exists("2025/2/1/done.2"));
  ASSERT(!exists("2025/2/2"));
  ASSERT_EQ(got.dirs_removed, 1);

  /* Both limits at once: still kept. */
  wf_logretain_opts_t o3 = {.dir = logdir, .max_age_ms = 1, .max_bytes = 1, .now_ms = now,
                            .keep = keep2, .nkeep = 2};
  run_pass(&o3);
  ASSERT_EQ(got.files_removed, 0);
  ASSERT_EQ(got.files_kept, 2);
  teardown();
}

static void test_empty_dirs(void) {
  int64_t now = local_ms(2026, 6, 15);
  setup();
  mkfile("2024/3/3/old", 10, now - 400 * DAY_MS);   /* emptied: day, month, year go */
  mkdirs("2023/7/7");                               /* empty already: goes too */
  mkfile("2025/1/1/old", 10, now - 400 * DAY_MS);   /* emptied, */
  mkfile("2025/1/2/new", 10, now - 1 * DAY_MS);     /* but its month is not */
  mkfile("2025/2/2/old", 10, now - 400 * DAY_MS);   /* emptied, */
  mkdirs("2025/2/2/sub");                           /* but holds a directory */
  mkdirs("2026/6/10");                              /* empty, this month: the day goes */
  mkdirs("2026/6/14");                              /* yesterday: stays */
  mkdirs("2026/6/15");                              /* today: stays */
  mkdirs("2026/6/16");                              /* tomorrow: stays */
  mkdirs("2026/5/31");                              /* empty, not near: goes */
  wf_logretain_opts_t o = {.dir = logdir, .max_age_ms = 30 * DAY_MS, .now_ms = now};
  run_pass(&o);
  ASSERT_EQ(got.errors, 0);
  ASSERT_EQ(got.files_removed, 3);
  ASSERT(!exists("2024"));
  ASSERT(!exists("2023"));
  ASSERT(!exists("2025/1/1"));
  ASSERT(exists("2025/1/2/new"));
  ASSERT(exists("2025/2/2/sub"));
  ASSERT(!exists("2026/6/10"));
  ASSERT(exists("2026/6/14"));
  ASSERT(exists("2026/6/15"));
  ASSERT(exists("2026/6/16"));
  ASSERT(!exists("2026/5"));
  /* 2024/3/3, 2024/3, 2024, 2023/7/7, 2023/7, 2023, 2025/1/1, 2026/6/10,
   * 2026/5/31, 2026/5 */
  ASSERT_EQ(got.dirs_removed, 10);

  /* Near a month's end the next month's directory is protected too. */
  mkdirs("2026/7/1");
  mkdirs("2026/7/2");
  wf_logretain_opts_t o2 = {.dir = logdir, .now_ms = local_ms(2026, 6, 30)};
  run_pass(&o2);
  ASSERT(exists("2026/7/1"));
  ASSERT(!exists("2026/7/2"));
  ASSERT(!exists("2026/6/14"));
  teardown();
}

static void test_foreign_untouched(void) {
  int64_t now = local_ms(2026, 6, 15);
  int64_t old = now - 400 * DAY_MS;
  char outside[512], link[512];
  setup();
  mkfile("README", 10, old);             /* a file at the top */
  mkfile("tmp/1/1/f", 10, old);          /* a non-numeric year */
  mkfile("2025x/1/1/f", 10, old);
  mkfile("2025/abc/1/f", 10, old);       /* a non-numeric month */
  mkfile("2025/1/-1/f", 10, old);        /* a non-numeric day */
  mkfile("2025/1/1/sub/f", 10, old);     /* a directory inside a day */
  mkfile("2025/1/notes", 10, old);       /* a file at the month level */
  mkfile("2022", 10, old);               /* a numeric file at the top */
  mkfile("2025/1/1/real", 10, old);      /* the only file the pass counts */
  /* Links are never followed: a year, and a file in a day. */
  snprintf(outside, sizeof outside, "%s/outside/1/1/f", tmpdir);
  mkparents(outside);
  int fd = open(outside, O_WRONLY | O_CREAT, 0644);
  ASSERT(fd >= 0);
  close(fd);
  struct timespec ts[2] = {{(time_t)(old / 1000), 0}, {(time_t)(old / 1000), 0}};
  ASSERT_OK(utimensat(AT_FDCWD, outside, ts, 0));
  snprintf(link, sizeof link, "%s/outside", tmpdir);
  ASSERT_OK(symlink(link, at("2023")));
  ASSERT_OK(symlink(outside, at("2025/1/1/link")));
  ASSERT_OK(utimensat(AT_FDCWD, at("2025/1/1/link"), ts, AT_SYMLINK_NOFOLLOW));

  wf_logretain_opts_t o = {.dir = logdir, .max_age_ms = DAY_MS, .max_bytes = 1, .now_ms = now};
  run_pass(&o);
  ASSERT_EQ(got.errors, 0);
  ASSERT_EQ(got.files_removed, 1);
  ASSERT_EQ(got.bytes_removed, 10);
  ASSERT_EQ(got.files_kept, 0);
  ASSERT_EQ(got.bytes_kept, 0);
  ASSERT(!exists("2025/1/1/real"));
  static const char *const left[] = {
      "README", "tmp/1/1/f", "2025x/1/1/f", "2025/abc/1/f", "2025/1/-1/f", "2025/1/1/sub/f",
      "2025/1/notes", "2022", "2023", "2025/1/1/link",
  };
  for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
    if (!exists(left[i])) WF_FAIL("%s was removed", left[i]);
  struct stat st;
  ASSERT_OK(stat(outside, &st));
  ASSERT_EQ(got.dirs_removed, 0);
  teardown();
}

static void test_missing_dir(void) {
  char missing[512];
  setup();
  snprintf(missing, sizeof missing, "%s/no/such/dir", tmpdir);
  wf_logretain_opts_t o = {.dir = missing, .max_age_ms = DAY_MS, .max_bytes = 1,
                           .now_ms = wf_now_ms()};
  run_pass(&o);
  ASSERT_EQ(got.errors, 0);
  ASSERT_EQ(got.files_kept, 0);
  ASSERT_EQ(got.files_removed, 0);
  ASSERT_EQ(got.dirs_removed, 0);
  teardown();
}

/* The first error's text names the operation, the path and the reason (as
 * root, permissions cannot make an unlink fail, so a file as the log dir). */
static void test_error_text(void) {
  char file[512], want[600];
  setup();
  snprintf(file, sizeof file, "%s/plain", tmpdir);
  int fd = open(file, O_WRONLY | O_CREAT, 0644);
  ASSERT(fd >= 0);
  close(fd);
  wf_logretain_opts_t o = {.dir = file, .max_age_ms = DAY_MS, .now_ms = wf_now_ms()};
  run_pass(&o);
  ASSERT_EQ(got.errors, 1);
  snprintf(want, sizeof want, "open %s: %s", file, strerror(ENOTDIR));
  ASSERT_STR_EQ(got_error, want);
  free(got_error);
  got_error = NULL;
  teardown();
}

static void test_bad_args(void) {
  uv_loop_t loop;
  ASSERT_OK(uv_loop_init(&loop));
  cb_called = 0;
  wf_logretain_opts_t o = {.dir = "runner_log", .now_ms = 1};
  ASSERT_EQ(wf_logretain_run(NULL, &o, on_done, NULL), UV_EINVAL);
  ASSERT_EQ(wf_logretain_run(&loop, NULL, on_done, NULL), UV_EINVAL);
  ASSERT_EQ(wf_logretain_run(&loop, &o, NULL, NULL), UV_EINVAL);
  o.dir = NULL;
  ASSERT_EQ(wf_logretain_run(&loop, &o, on_done, NULL), UV_EINVAL);
  o.dir = "";
  ASSERT_EQ(wf_logretain_run(&loop, &o, on_done, NULL), UV_EINVAL);
  o.dir = "runner_log";
  o.max_age_ms = -1;
  ASSERT_EQ(wf_logretain_run(&loop, &o, on_done, NULL), UV_EINVAL);
  o.max_age_ms = 0;
  o.nkeep = 1;
  ASSERT_EQ(wf_logretain_run(&loop, &o, on_done, NULL), UV_EINVAL);
  wf_test_close_loop(&loop);
  ASSERT_EQ(cb_called, 0);
}

static const wf_test_t tests[] = {
    WF_TEST(age),          WF_TEST(size_oldest_first), WF_TEST(keep_set),
    WF_TEST(empty_dirs),   WF_TEST(foreign_untouched), WF_TEST(missing_dir),
    WF_TEST(error_text),   WF_TEST(bad_args),
};

int main(int argc, char **argv) {
  int r = WF_TEST_MAIN(argc, argv, tests);
  free(got_error);
  return r;
}
