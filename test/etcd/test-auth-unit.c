/*
 * test-auth-unit: the pure parts of etcd authentication: the authenticate
 * body (escaping of any password), the token parse (only what can go into a
 * header line), and which error replies mean "get a new token".
 */
#include "src/etcd/etcd-internal.h"
#include "wf-test.h"

static void test_body(void) {
  size_t n;
  char *s = wf__etcd_req_auth("root", "pw", &n);
  ASSERT_STR_EQ(s, "{\"name\":\"root\",\"password\":\"pw\"}");
  ASSERT_EQ(n, strlen(s));
  wf__etcd_wipe_free(s);
  /* Quotes, backslashes, control characters and UTF-8: valid JSON that
   * decodes to the same bytes. */
  const char *pw = "a\"b\\c\n\t\x01\x7f\xc3\xbc";
  s = wf__etcd_req_auth("us\"er", pw, &n);
  json_error_t je;
  json_t *o = json_loads(s, 0, &je);
  ASSERT_NOT_NULL(o);
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "name")), "us\"er");
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "password")), pw);
  json_decref(o);
  wf__etcd_wipe_free(s);
  /* Long values: the buffer is sized up front (no realloc copies). */
  char big[3000];
  memset(big, '"', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  s = wf__etcd_req_auth("root", big, &n);
  ASSERT_EQ(n, strlen("{\"name\":\"root\",\"password\":\"\"}") + 2 * (sizeof big - 1));
  wf__etcd_wipe_free(s);
}

static int parse_token(const char *body, char **token) {
  wf__etcd_resp_t r;
  char msg[256];
  int e = wf__etcd_resp_parse(WF__ETCD_AUTH, body, strlen(body), &r, msg, sizeof msg);
  *token = r.token;
  r.token = NULL;
  wf__etcd_resp_clear(&r);
  return e;
}

static void test_token(void) {
  char *t;
  ASSERT_OK(parse_token("{\"header\":{\"revision\":\"1\"},\"token\":\"MasogKZkNIiCChaq.9\"}", &t));
  ASSERT_STR_EQ(t, "MasogKZkNIiCChaq.9");
  free(t);
  /* A JWT is printable ASCII too. */
  ASSERT_OK(parse_token("{\"token\":\"eyJhbGciOiJSUzI1NiJ9.e30.c2ln\"}", &t));
  free(t);
  /* Nothing that could split or extend a header line, and no empty token. */
  const char *bad[] = {"{\"token\":\"a\\r\\nX-Evil: 1\"}", "{\"token\":\"a b\"}",
                       "{\"token\":\"\"}", "{\"token\":5}", "{}", "{\"token\":\"\\u00fc\"}",
                       "{\"token\":\"a\\u0000b\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_EQ(parse_token(bad[i], &t), WF_EPROTO);
    ASSERT_NULL(t);
  }
}

static void test_rejected(void) {
  /* What etcd 3.4's gateway sends for a token it does not know. */
  ASSERT(wf__etcd_auth_rejected(401, 16, "etcdserver: invalid auth token"));
  ASSERT(wf__etcd_auth_rejected(401, -1, ""));
  /* A watch create refused for its token (cancel_reason). */
  ASSERT(wf__etcd_auth_rejected(0, -1, "rpc error: code = Unauthenticated desc = etcdserver: "
                                       "invalid auth token"));
  /* A request without a token once auth got enabled. */
  ASSERT(wf__etcd_auth_rejected(400, 3, "etcdserver: user name is empty"));
  /* Not a token problem: no new token would help. */
  ASSERT(!wf__etcd_auth_rejected(400, 3, "etcdserver: authentication failed, invalid user ID "
                                         "or password"));
  ASSERT(!wf__etcd_auth_rejected(403, 7, "etcdserver: permission denied"));
  ASSERT(!wf__etcd_auth_rejected(404, 5, "etcdserver: requested lease not found"));
}

static const wf_test_t tests[] = {
    WF_TEST(body), WF_TEST(token), WF_TEST(rejected),
};

int main(int argc, char **argv) {
  int rc = WF_TEST_MAIN(argc, argv, tests);
  return rc;
}
