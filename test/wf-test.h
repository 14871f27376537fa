/*
 * wf-test.h: assertions that stay compiled in (never assert.h), and the
 * loop-closing check every async test ends with.
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

#endif
