/*
 * test-node-logs: the pure parts of the node's log endpoint
 * (src/node/node-logs.c): the request target and its query, and one
 * "bytes=" range against a file size.  No loop, no peer (the served bytes
 * are checked end to end by test/e2e/test_node_logs.py).
 */
#include <stdint.h>
#include <string.h>

#include "src/node/node-internal.h"
#include "wf-test.h"

static int parse(const char *path, const char *query, wf__logs_target_t *t) {
  char why[256];
  return wf__logserve_parse(path, query, t, why, sizeof why);
}

/* Keys are one percent-decoded path segment, checked as log file names. */
static void test_target(void) {
  wf__logs_target_t t;
  ASSERT_EQ(parse("/v1/steps/ns1.p1.1.1/log", "", &t), 0);
  ASSERT_STR_EQ(t.key, "ns1.p1.1.1");
  ASSERT_EQ(t.follow, 0);
  ASSERT_EQ(t.offset, -1);
  ASSERT_EQ(t.tail, -1);
  ASSERT_EQ(parse("/v1/steps/a%20b%2Ec/log", "", &t), 0);
  ASSERT_STR_EQ(t.key, "a b.c");
  static const char *const not_found[] = {
      "/v1/steps//log", "/v1/steps/../log", "/v1/steps/%2e%2e/log", "/v1/steps/a%2Fb/log",
      "/v1/steps/a/b/log", "/v1/steps/a%00b/log", "/v1/steps/a%0ab/log", "/v1/steps/a%zz/log",
      "/v1/steps/a%2/log", "/v1/steps/a/logs", "/v1/steps/log", "/v1/step/a/log", "/", ""};
  for (size_t i = 0; i < sizeof not_found / sizeof not_found[0]; i++)
    if (parse(not_found[i], "", &t) != 404) WF_FAIL("%s: not a 404", not_found[i]);
  char longkey[400] = "/v1/steps/";
  memset(longkey + 10, 'k', 300);
  strcpy(longkey + 310, "/log");
  ASSERT_EQ(parse(longkey, "", &t), 404);
}

static void test_query(void) {
  wf__logs_target_t t;
  ASSERT_EQ(parse("/v1/steps/k/log", "follow=1&offset=100", &t), 0);
  ASSERT_EQ(t.follow, 1);
  ASSERT_EQ(t.offset, 100);
  ASSERT_EQ(parse("/v1/steps/k/log", "follow=true&tail=5&offset=9", &t), 0);
  ASSERT_EQ(t.tail, 5);
  ASSERT_EQ(t.offset, -1); /* tail wins */
  ASSERT_EQ(parse("/v1/steps/k/log", "follow=0&x=y&&tail=100000", &t), 0);
  ASSERT_EQ(t.follow, 0);
  ASSERT_EQ(t.tail, 100000);
  static const char *const bad[] = {"follow=yes", "follow=", "offset=-1", "offset=1x",
                                    "offset=", "tail=100001", "tail=a",
                                    "offset=99999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (parse("/v1/steps/k/log", bad[i], &t) != 400) WF_FAIL("%s: not a 400", bad[i]);
}

static void test_range(void) {
  uint64_t a = 0, b = 0;
  ASSERT_EQ(wf__logserve_range("bytes=5-14", 100, &a, &b), 1);
  ASSERT_EQ(a, 5);
  ASSERT_EQ(b, 15);
  ASSERT_EQ(wf__logserve_range("bytes=90-", 100, &a, &b), 1);
  ASSERT_EQ(a, 90);
  ASSERT_EQ(b, 100);
  ASSERT_EQ(wf__logserve_range("bytes=90-500", 100, &a, &b), 1);
  ASSERT_EQ(b, 100);
  ASSERT_EQ(wf__logserve_range("bytes=-10", 100, &a, &b), 1);
  ASSERT_EQ(a, 90);
  ASSERT_EQ(wf__logserve_range("bytes=-500", 100, &a, &b), 1);
  ASSERT_EQ(a, 0);
  ASSERT_EQ(b, 100);
  /* past the end, or nothing to take: 416 */
  ASSERT_EQ(wf__logserve_range("bytes=100-", 100, &a, &b), -1);
  ASSERT_EQ(wf__logserve_range("bytes=-0", 100, &a, &b), -1);
  ASSERT_EQ(wf__logserve_range("bytes=-5", 0, &a, &b), -1);
  ASSERT_EQ(wf__logserve_range("bytes=0-", 0, &a, &b), -1);
  /* not one range this server reads: the whole file */
  ASSERT_EQ(wf__logserve_range(NULL, 100, &a, &b), 0);
  ASSERT_EQ(wf__logserve_range("bytes=1-2,5-6", 100, &a, &b), 0);
  ASSERT_EQ(wf__logserve_range("bytes=9-5", 100, &a, &b), 0);
  ASSERT_EQ(wf__logserve_range("items=1-2", 100, &a, &b), 0);
  ASSERT_EQ(wf__logserve_range("bytes=-", 100, &a, &b), 0);
  ASSERT_EQ(wf__logserve_range("bytes=x-1", 100, &a, &b), 0);
}

static const wf_test_t tests[] = {WF_TEST(target), WF_TEST(query), WF_TEST(range)};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
