/* mask: one-shot and streaming replacement, values split at every byte. */
#include "wf-test.h"
#include "wf/mask.h"
#include "wf/util.h"

static void to_buf(const char *p, size_t n, void *data) { wf_buf_append(data, p, n); }

static char *stream(wf_mask_t *m, const char *s, const size_t *cuts, size_t ncuts) {
  wf_buf_t b;
  wf_buf_init(&b, 1 << 20);
  size_t prev = 0, len = strlen(s);
  for (size_t i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    wf_mask_feed(m, s + prev, end - prev, to_buf, &b);
    prev = end;
  }
  wf_mask_flush(m, to_buf, &b);
  ASSERT_EQ(wf_mask_pending(m), 0);
  char *r = wf_strdup(b.data ? b.data : "");
  wf_buf_finish(&b);
  return r;
}

static void test_strings_and_streams(void) {
  const char *vals[] = {"hunter2!", "abc", "tok3n", "hunter2!xyz", NULL};
  wf_mask_t *m = wf_mask_create(vals, 4);
  ASSERT_NOT_NULL(m);
  ASSERT_NULL(wf_mask_create(vals + 1, 1)); /* only a short value: nothing to mask */

  char *s = wf_mask_string(m, "pw=hunter2! t=tok3ntok3n abc hunter2!xyz.");
  ASSERT_STR_EQ(s, "pw=****** t=************ abc ******.");
  free(s);
  s = wf_mask_string(NULL, "plain");
  ASSERT_STR_EQ(s, "plain");
  free(s);

  /* Every single cut point, and every pair of cut points. */
  const char *in = "a hunter2! b tok3n c hunter2!xyz d";
  const char *want = "a ****** b ****** c ****** d";
  size_t len = strlen(in);
  for (size_t i = 0; i <= len; i++) {
    size_t c1[] = {i};
    char *r = stream(m, in, c1, 1);
    if (strcmp(r, want) != 0) WF_FAIL("cut %zu: %s", i, r);
    free(r);
    for (size_t k = i; k <= len; k++) {
      size_t c2[] = {i, k};
      r = stream(m, in, c2, 2);
      if (strcmp(r, want) != 0) WF_FAIL("cuts %zu,%zu: %s", i, k, r);
      free(r);
    }
  }
  /* Byte by byte. */
  size_t cuts[64];
  for (size_t i = 0; i < len; i++) cuts[i] = i + 1;
  char *r = stream(m, in, cuts, len - 1);
  ASSERT_STR_EQ(r, want);
  free(r);
  wf_mask_destroy(m);

  ASSERT(wf_mask_name_matches("*PASSWORD*,*SECRET*,*TOKEN*", "DB_PASSWORD"));
  ASSERT(wf_mask_name_matches("*PASSWORD*,*SECRET*,*TOKEN*", "github_token"));
  ASSERT(!wf_mask_name_matches("*PASSWORD*,*SECRET*,*TOKEN*", "USER"));
  ASSERT(!wf_mask_name_matches("", "USER"));
}

static const wf_test_t tests[] = {WF_TEST(strings_and_streams)};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
