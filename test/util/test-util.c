/* util: base64, map, buffer bound, argv parsing, env names, backoff, and the
 * duration and size parsers of flags. */
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

static void test_parse_duration(void) {
  static const struct { const char *s; int64_t ms; } good[] = {
      {"0", 0},
      {"3600", 3600000},
      {"90s", 90000},
      {"30m", 1800000},
      {"12h", 43200000},
      {"7d", 604800000},
      {"2w", 1209600000},
      {"007d", 604800000},
      {"0d", 0},
      {"9223372036854775s", 9223372036854775000},  /* the largest whole second */
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    int64_t v = -1;
    if (wf_parse_duration_ms(good[i].s, &v) != 0) WF_FAIL("\"%s\" refused", good[i].s);
    ASSERT_EQ(v, good[i].ms);
  }
  static const char *const bad[] = {
      "", "s", "-1", "-1d", "+1d", " 1d", "1d ", "1 d", "1.5h", "1D", "1M", "1y", "1ms",
      "1h30m", "1dd", "d7", "0x10", "9223372036854776s", "99999999999999999999",
      "15250284453w", "106751991168d",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t v = 123;
    if (wf_parse_duration_ms(bad[i], &v) == 0) WF_FAIL("\"%s\" accepted", bad[i]);
    ASSERT_EQ(v, 123); /* untouched */
  }
  int64_t v;
  ASSERT_EQ(wf_parse_duration_ms(NULL, &v), -1);
}

static void test_parse_size(void) {
  static const struct { const char *s; uint64_t n; } good[] = {
      {"0", 0},
      {"1048576", 1048576},
      {"512B", 512},
      {"512K", 524288},
      {"512k", 524288},
      {"512Ki", 524288},
      {"512KiB", 524288},
      {"100M", 104857600},
      {"100MiB", 104857600},
      {"10G", 10737418240ull},
      {"10gi", 10737418240ull},
      {"1T", 1099511627776ull},
      {"1TiB", 1099511627776ull},
      {"18446744073709551615", UINT64_MAX},
      {"16777215T", 16777215ull << 40},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint64_t n = 1;
    if (wf_parse_size_bytes(good[i].s, &n) != 0) WF_FAIL("\"%s\" refused", good[i].s);
    if (n != good[i].n) WF_FAIL("\"%s\" = %llu", good[i].s, (unsigned long long)n);
  }
  static const char *const bad[] = {
      "", "K", "-1", "-1K", "+1K", " 1K", "1K ", "1 K", "1.5G", "1KB", "1MB", "1GB", "1TB",
      "1P", "1KiBB", "1Kb", "1b", "1iB", "1X", "0x10", "18446744073709551616", "16777216T",
      "17179869184G",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t n = 123;
    if (wf_parse_size_bytes(bad[i], &n) == 0) WF_FAIL("\"%s\" accepted", bad[i]);
    ASSERT_EQ(n, 123);
  }
  uint64_t n;
  ASSERT_EQ(wf_parse_size_bytes(NULL, &n), -1);
}

static const wf_test_t tests[] = {
    WF_TEST(b64), WF_TEST(map), WF_TEST(buf), WF_TEST(argv), WF_TEST(env), WF_TEST(backoff),
    WF_TEST(parse_duration), WF_TEST(parse_size),
};

int main(int argc, char **argv) {
  int rc = WF_TEST_MAIN(argc, argv, tests);
  return rc;
}
