/*
 * wf-test.h: assertions that stay compiled in (never assert.h), the
 * loop-closing check every async test ends with, and the test list.
 *
 * A test program lists its cases, each a `static void test_<name>(void)`:
 *
 *   static const wf_test_t tests[] = {WF_TEST(order), WF_TEST(env)};
 *   int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
 *
 * `prog NAME` runs one case, `prog` all of them in order, `prog --list`
 * prints the names.  test/meson.build reads the WF_TEST(...) entries from
 * the source (with meson's fs.read) and registers each case as its own
 * meson test, so one failure does not hide the rest and
 * `meson test PROG/NAME` runs one behaviour.
 */
#ifndef WF_TEST_H
#define WF_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define WF_FAIL(...)                                                    \
  do {                                                                  \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                     \
    fprintf(stderr, __VA_ARGS__);                                       \
    fprintf(stderr, "\n");                                              \
    abort();                                                            \
  } while (0)

#define ASSERT(c) \
  do { if (!(c)) WF_FAIL("assertion failed: %s", #c); } while (0)
#define ASSERT_EQ(a, b)                                                            \
  do {                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                            \
    if (a_ != b_) WF_FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);               \
  } while (0)
#define ASSERT_OK(a) ASSERT_EQ(a, 0)
#define ASSERT_STR_EQ(a, b)                                                        \
  do {                                                                             \
    const char *a_ = (a), *b_ = (b);                                               \
    if (!a_ || !b_ || strcmp(a_, b_) != 0)                                         \
      WF_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",            \
              b_ ? b_ : "(null)");                                                 \
  } while (0)
#define ASSERT_NOT_NULL(p) \
  do { if ((p) == NULL) WF_FAIL("%s is NULL", #p); } while (0)
#define ASSERT_NULL(p) \
  do { if ((p) != NULL) WF_FAIL("%s is not NULL", #p); } while (0)

/* Every test ends here: closes what is left and proves no handle leaked. */
static inline void wf_test_close_loop(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  int r = uv_loop_close(loop);
  if (r != 0) {
    fprintf(stderr, "uv_loop_close() = %d: handles leaked:\n", r);
    uv_print_all_handles(loop, stderr);
    abort();
  }
}

/* The etcd URL the harness started (test/harness/with_etcd.py). */
static inline const char *wf_test_etcd(void) {
  const char *u = getenv("WF_TEST_ETCD");
  if (!u) WF_FAIL("WF_TEST_ETCD not set: run under test/harness/with_etcd.py");
  return u;
}

/* ---- the test list ---------------------------------------------------------- */
typedef struct wf_test_s {
  const char *name;
  void (*fn)(void);
} wf_test_t;

#define WF_TEST(name) {#name, test_##name}
#define WF_TEST_MAIN(argc, argv, tests) \
  wf_test_main((argc), (argv), (tests), sizeof(tests) / sizeof((tests)[0]))

static inline int wf_test_main(int argc, char **argv, const wf_test_t *tests, size_t n) {
  if (argc > 1 && strcmp(argv[1], "--list") == 0) {
    for (size_t i = 0; i < n; i++) printf("%s\n", tests[i].name);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (argc > 1 && strcmp(argv[1], tests[i].name) != 0) continue;
    fprintf(stderr, "-- %s\n", tests[i].name);
    tests[i].fn();
    if (argc > 1) {
      printf("ok %s\n", tests[i].name);
      return 0;
    }
  }
  if (argc > 1) {
    fprintf(stderr, "no test named \"%s\"; --list shows them\n", argv[1]);
    return 2;
  }
  printf("ok (%zu tests)\n", n);
  return 0;
}

#endif
