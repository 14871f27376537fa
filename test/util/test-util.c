/* util: base64, map, buffer bound, argv parsing, env names, backoff. */
#include "wf-test.h"
#include "wf/util.h"

static void test_b64(void) {
  const char *cases[][2] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
                            {"/nodes/a", "L25vZGVzL2E="}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[64];
    wf_b64_encode(cases[i][0], strlen(cases[i][0]), out);
    ASSERT_STR_EQ(out, cases[i][1]);
    size_t n;
    char *d = wf_b64_decode(cases[i][1], strlen(cases[i][1]), &n);
    ASSERT_NOT_NULL(d);
    ASSERT_EQ(n, strlen(cases[i][0]));
    ASSERT_STR_EQ(d, cases[i][0]);
    free(d);
  }
  size_t n;
  ASSERT_NULL(wf_b64_decode("notbase64!!", 11, &n));
  ASSERT_NULL(wf_b64_decode("Z", 1, &n));
}

static void test_map(void) {
  wf_map_t m;
  wf_map_init(&m);
  char k[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(k, sizeof k, "key%d", i);
    ASSERT_NULL(wf_map_put(&m, k, (void *)(intptr_t)(i + 1)));
  }
  ASSERT_EQ(m.count, 1000);
  ASSERT_EQ((intptr_t)wf_map_get(&m, "key500"), 501);
  ASSERT_EQ((intptr_t)wf_map_put(&m, "key500", (void *)7), 501);
  ASSERT_EQ((intptr_t)wf_map_del(&m, "key500"), 7);
  ASSERT_NULL(wf_map_get(&m, "key500"));
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *key;
  void *v;
  int n = 0;
  while (wf_map_iter_next(&m, &it, &key, &v)) {
    wf_map_del(&m, key); /* deleting the current entry is allowed */
    n++;
  }
  ASSERT_EQ(n, 999);
  ASSERT_EQ(m.count, 0);
  wf_map_finish(&m);
}

static void test_buf(void) {
  wf_buf_t b;
  wf_buf_init(&b, 10);
  ASSERT_OK(wf_buf_append(&b, "0123456789", 10));
  ASSERT_EQ(wf_buf_append(&b, "x", 1), WF_ETOOBIG);
  wf_buf_consume(&b, 4);
  ASSERT_STR_EQ(b.data, "456789");
  wf_buf_finish(&b);
}

static void test_argv(void) {
  char err[128];
  char **a = wf_argv_parse("sh,-c,echo hi", err, sizeof err);
  ASSERT_NOT_NULL(a);
  ASSERT_STR_EQ(a[0], "sh");
  ASSERT_STR_EQ(a[2], "echo hi");
  ASSERT_NULL(a[3]);
  wf_argv_free(a);
  a = wf_argv_parse("[\"sh\",\"-c\",\"echo a,b\"]", err, sizeof err);
  ASSERT_NOT_NULL(a);
  ASSERT_STR_EQ(a[2], "echo a,b");
  wf_argv_free(a);
  ASSERT_NULL(wf_argv_parse("[1,2]", err, sizeof err));
  ASSERT_NULL(wf_argv_parse("[\"sh\"", err, sizeof err));
  ASSERT_NULL(wf_argv_parse("", err, sizeof err));
}

static void test_env(void) {
  ASSERT(wf_env_name_valid("A_1"));
  ASSERT(wf_env_name_valid("_x"));
  ASSERT(!wf_env_name_valid("1A"));
  ASSERT(!wf_env_name_valid("A-B"));
  ASSERT(!wf_env_name_valid(""));
}

static void test_backoff(void) {
  wf_backoff_t b;
  wf_backoff_init(&b, 100, 1000);
  for (int i = 0; i < 20; i++) {
    uint64_t d = wf_backoff_next(&b);
    ASSERT(d <= 1000);
  }
  uint64_t d = wf_backoff_next(&b);
  ASSERT(d >= 500); /* capped, half fixed */
  wf_backoff_reset(&b);
  ASSERT(wf_backoff_next(&b) <= 100);
}

static const wf_test_t tests[] = {
    WF_TEST(b64), WF_TEST(map), WF_TEST(buf), WF_TEST(argv), WF_TEST(env), WF_TEST(backoff),
};

int main(int argc, char **argv) {
  int rc = WF_TEST_MAIN(argc, argv, tests);
  return rc;
}
