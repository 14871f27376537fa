/*
 * model/headscan: wf_step_head_scan must agree with jansson + wf_step_head
 * whenever it answers.  Sample steps, every truncation, and every one-byte
 * change to a character that matters to JSON or to the three fields; plus
 * the cases it must decline (escapes, non-ASCII, big numbers, repeated
 * keys) and that it must answer (plain Go and user steps).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf-test.h"
#include "wf/model.h"

static long answered, declined;

/* The scan's answer, when it gives one, equals the tree's; a value jansson
 * rejects, or that is not an object, is never answered. */
static void same(const char *p, size_t n) {
  wf_step_head_t a, b;
  char node[64];
  int r = wf_step_head_scan(p, n, &a, node, sizeof node);
  json_error_t je;
  json_t *o = json_loadb(p, n, 0, &je);
  if (!r) {
    declined++;
    json_decref(o);
    return;
  }
  answered++;
  if (!o || !json_is_object(o))
    WF_FAIL("scan answered for what jansson %s: %.*s", o ? "reads as a non-object" : "rejects",
            (int)n, p);
  wf_step_head(o, &b);
  if (a.status != b.status || a.start_at != b.start_at || strcmp(a.node, b.node) != 0)
    WF_FAIL("scan (%d %lld %s) != tree (%d %lld %s) on %.*s", a.status, (long long)a.start_at,
            a.node, b.status, (long long)b.start_at, b.node, (int)n, p);
  json_decref(o);
}

static const char *const SAMPLES[] = {
    /* docs/protocol.md appendix A, as the Go original stores it */
    "{\"key\":\"ns1.c3r8psea0brhlbg0qdd0.1.1\",\"create_type\":\"PIPELINE\",\"namespace\":\"ns1\","
    "\"pipeline_id\":\"c3r8psea0brhlbg0qdd0\",\"create_at\":1626770673846,"
    "\"update_at\":1626770681002,\"deploy_id\":\"\",\"resource_version\":831402,\"id\":1,"
    "\"name\":\"step1.1\",\"action\":\"go_build@v1\",\"with\":{\"ENV1\":\"env1\",\"ENV2\":\"env2\"},"
    "\"is_parallel\":false,\"ignore_failed\":false,\"audit_params\":null,\"webhooks\":null,"
    "\"status\":{\"flow_number\":1,\"start_at\":1626770680990,\"end_at\":0,\"status\":\"RUNNING\","
    "\"scheduled_node\":\"node-01\",\"audit_response\":\"UOD\",\"message\":\"\",\"response\":"
    "{\"log_driver\":\"local_file\",\"log_path\":\"runner_log/2021/7/20/x\"}}}",
    /* a user step, PENDDING, webhooks with nested status objects */
    "{\"key\":\"k1\",\"name\":\"n\",\"action\":\"build@v1\",\"create_at\":7,\"create_type\":\"USER\","
    "\"status\":{\"status\":\"PENDDING\",\"scheduled_node\":\"node-1\"},\"webhooks\":[{\"url\":"
    "\"http://hook\",\"events\":[\"FAILED\",\"SUCCEEDED\"],\"status\":{\"start_at\":1,\"cost\":2.5,"
    "\"success\":true}}]}",
    /* numbers for the enum, no status inside, odd spacing */
    " {\"status\" : { \"status\" : 3 , \"start_at\" : -12 , \"scheduled_node\" : null } } \n",
    "{\"status\":{\"start_at\":1.5,\"scheduled_node\":\"n\"},\"x\":[[],{},[1,-0,0.25]]}",
    "{\"status\":\"RUNNING\"}",
    "{}",
};

static void test_samples(void) {
  static const char subst[] = "\"\\{}[],:0-9a \x01\xc3tfn.eE+";
  answered = declined = 0;
  for (size_t i = 0; i < sizeof SAMPLES / sizeof *SAMPLES; i++) {
    const char *s = SAMPLES[i];
    size_t n = strlen(s);
    char *buf = malloc(n + 1);
    wf_step_head_t h;
    char node[64];
    ASSERT_NOT_NULL(buf);
    /* Plain samples are answered, not left to jansson. */
    if (!wf_step_head_scan(s, n, &h, node, sizeof node)) WF_FAIL("declined sample %zu", i);
    for (size_t cut = 0; cut <= n; cut++) same(s, cut);
    for (size_t pos = 0; pos < n; pos++) {
      for (const char *c = subst; *c; c++) {
        memcpy(buf, s, n);
        buf[pos] = *c;
        same(buf, n);
      }
    }
    free(buf);
  }
  printf("samples: %ld answered, %ld declined\n", answered, declined);
  /* The point is to answer: most variants are plain JSON. */
  ASSERT(answered > declined / 4);
}

static void expect(const char *s, int want_r, int status, long long start_at, const char *node) {
  wf_step_head_t h;
  char buf[64];
  int r = wf_step_head_scan(s, strlen(s), &h, buf, sizeof buf);
  same(s, strlen(s));
  if (r != want_r) WF_FAIL("scan of %s returned %d, want %d", s, r, want_r);
  if (!r) return;
  ASSERT_EQ(h.status, status);
  ASSERT_EQ(h.start_at, start_at);
  ASSERT_STR_EQ(h.node, node);
}

static void test_cases(void) {
  expect("{\"status\":{\"status\":\"succeeded\",\"scheduled_node\":\"a\"}}", 1, 3, 0, "a");
  expect("{\"status\":{}}", 1, 0, 0, "");            /* absent status: PENDDING */
  expect("{\"status\":{\"status\":null}}", 1, 0, 0, "");
  expect("{\"status\":{\"status\":\"NOPE\"}}", 1, -1, 0, "");
  expect("{\"status\":{\"status\":true}}", 1, -1, 0, "");
  expect("{\"status\":{\"status\":99}}", 1, -1, 0, "");
  expect("{\"status\":{\"start_at\":\"5\"}}", 1, 0, 0, "");  /* a string is not an integer */
  /* Declined: left to jansson. */
  expect("{\"status\":{\"scheduled_node\":\"n\\u0031\"}}", 0, 0, 0, "");
  expect("{\"status\":{\"scheduled_node\":\"n\xc3\xa9\"}}", 0, 0, 0, "");
  expect("{\"status\":{\"start_at\":12345678901234567890}}", 0, 0, 0, "");
  expect("{\"status\":{\"start_at\":1e3}}", 0, 0, 0, "");
  expect("{\"status\":{\"status\":\"RUNNING\",\"status\":\"FAILED\"}}", 0, 0, 0, "");
  expect("{\"status\":{},\"status\":{}}", 0, 0, 0, "");
  expect("{\"status\":{\"scheduled_node\":\"0123456789012345678901234567890123456789"
         "0123456789012345678901234567890123456789\"}}", 0, 0, 0, "");  /* > nodebuf */
  expect("[]", 0, 0, 0, "");
  expect("{\"a\":1} x", 0, 0, 0, "");
  expect("{\"a\":01}", 0, 0, 0, "");
  expect("", 0, 0, 0, "");
}

static const wf_test_t tests[] = {WF_TEST(cases), WF_TEST(samples)};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
