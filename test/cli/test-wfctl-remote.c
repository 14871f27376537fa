/*
 * test-wfctl-remote: the pure parts of reading a step's log from its node
 * (docs/protocol.md §6.1): the request target (the key as one
 * percent-encoded segment, follow, offset), the node record's endpoint,
 * secret files (a bearer token, an etcd password) and what the status of an
 * answer means.  The request on the loop, against a real node, is covered
 * by test/e2e/test_remote_logs.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wf-test.h"
#include "wf/cli.h"
#include "wf/util.h"

static void expect_target(const char *key, int follow, int64_t off, const char *want) {
  char *t = wf_cli_log_target(key, follow, off);
  ASSERT_STR_EQ(t, want);
  free(t);
}

static void test_target(void) {
  expect_target("c16mhsddrei91m4ri0jg", 0, 0, "/v1/steps/c16mhsddrei91m4ri0jg/log");
  expect_target("ns1.c3r8psea0brhlbg0qdd0.1.1", 1, 0,
                "/v1/steps/ns1.c3r8psea0brhlbg0qdd0.1.1/log?follow=1");
  expect_target("k", 1, 12345, "/v1/steps/k/log?follow=1&offset=12345");
  expect_target("k", 0, 7, "/v1/steps/k/log?offset=7");
  /* offset 0 is the start: not sent */
  expect_target("k", 0, 0, "/v1/steps/k/log");
  /* everything but unreserved bytes, as one segment */
  expect_target("a b/c?d#e%f&g+h", 0, 0, "/v1/steps/a%20b%2Fc%3Fd%23e%25f%26g%2Bh/log");
  expect_target("x~y_z-0.9", 0, 0, "/v1/steps/x~y_z-0.9/log");
  expect_target("\xc3\xa9t\xc3\xa9", 0, 0, "/v1/steps/%C3%A9t%C3%A9/log");
  /* never a dot segment */
  expect_target(".", 0, 0, "/v1/steps/%2E/log");
  expect_target("..", 1, 0, "/v1/steps/%2E%2E/log?follow=1");
  expect_target("...", 0, 0, "/v1/steps/%2E%2E%2E/log");
  expect_target(".a", 0, 0, "/v1/steps/.a/log");
  /* the largest offset */
  expect_target("k", 1, INT64_MAX, "/v1/steps/k/log?follow=1&offset=9223372036854775807");
  /* a long key (200 bytes, all encoded) fits */
  char big[201];
  memset(big, ' ', 200);
  big[200] = '\0';
  char *t = wf_cli_log_target(big, 1, INT64_MAX);
  ASSERT_EQ(strlen(t), strlen("/v1/steps//log?follow=1&offset=9223372036854775807") + 600);
  free(t);
}

static int endpoint(const char *rec, char **origin, char *why) {
  *origin = NULL;
  why[0] = '\0';
  return wf_cli_node_endpoint(rec, strlen(rec), origin, why, 512);
}

static void test_endpoint(void) {
  char *o, why[512];
  ASSERT_EQ(endpoint("{\"instance_name\":\"n1\",\"endpoint\":\"http://10.0.0.5:8080\"}", &o, why),
            0);
  ASSERT_STR_EQ(o, "http://10.0.0.5:8080");
  free(o);
  ASSERT_EQ(endpoint("{\"endpoint\":\"https://node-1.example:9443/\"}", &o, why), 0);
  ASSERT_STR_EQ(o, "https://node-1.example:9443");
  free(o);
  ASSERT_EQ(endpoint("{\"endpoint\":\"http://[::1]:7000\"}", &o, why), 0);
  ASSERT_STR_EQ(o, "http://[::1]:7000");
  free(o);
  /* no endpoint: absent, null, empty */
  ASSERT_EQ(endpoint("{\"instance_name\":\"n1\",\"address\":\"10.0.0.5\"}", &o, why), 1);
  ASSERT_NULL(o);
  ASSERT_EQ(endpoint("{\"endpoint\":null}", &o, why), 1);
  ASSERT_EQ(endpoint("{\"endpoint\":\"\"}", &o, why), 1);
  /* broken */
  ASSERT_EQ(endpoint("not json", &o, why), -1);
  ASSERT(strstr(why, "not a JSON object"));
  ASSERT_EQ(endpoint("[1]", &o, why), -1);
  ASSERT_EQ(endpoint("{\"endpoint\":8080}", &o, why), -1);
  ASSERT(strstr(why, "not a string"));
  const char *bad[] = {"{\"endpoint\":\"10.0.0.5:8080\"}",
                       "{\"endpoint\":\"ftp://h:1\"}",
                       "{\"endpoint\":\"http://h\"}",
                       "{\"endpoint\":\"http://h:1/v1\"}",
                       "{\"endpoint\":\"http://a:1,http://b:2\"}",
                       "{\"endpoint\":\"http://h:99999\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_EQ(endpoint(bad[i], &o, why), -1);
    ASSERT_NULL(o);
    ASSERT(strstr(why, "is not an http://host:port or https://host:port URL"));
  }
}

/* Writes n bytes to a new temporary file; returns its path (malloc'd). */
static char *temp_file(const char *data, size_t n) {
  char *path = wf_strdup("/tmp/wf-test-secret-XXXXXX");
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, data, n), (ssize_t)n);
  close(fd);
  return path;
}

static int secret(const char *data, size_t n, int printable, char **out, char *why) {
  char *path = temp_file(data, n);
  *out = NULL;
  int r = wf_cli_read_secret(path, printable, out, why, 512);
  unlink(path);
  free(path);
  return r;
}

static void test_secret(void) {
  char *v, why[512];
  ASSERT_OK(secret("s3cret\n", 7, 1, &v, why));
  ASSERT_STR_EQ(v, "s3cret");
  free(v);
  ASSERT_OK(secret("s3cret\r\n", 8, 1, &v, why));
  ASSERT_STR_EQ(v, "s3cret");
  free(v);
  ASSERT_OK(secret("s3cret", 6, 1, &v, why));
  ASSERT_STR_EQ(v, "s3cret");
  free(v);
  /* only one newline goes: the second is part of the value */
  ASSERT_EQ(secret("tok\n\n", 5, 1, &v, why), -1);
  ASSERT(strstr(why, "control character"));
  ASSERT_OK(secret("pass word\t!\n\n", 13, 0, &v, why));
  ASSERT_STR_EQ(v, "pass word\t!\n");
  free(v);
  ASSERT_EQ(secret("a\tb", 3, 1, &v, why), -1);
  ASSERT_EQ(secret("\n", 1, 0, &v, why), -1);
  ASSERT(strstr(why, "is empty"));
  ASSERT_EQ(secret("", 0, 0, &v, why), -1);
  ASSERT_EQ(secret("a\0b", 3, 0, &v, why), -1);
  ASSERT(strstr(why, "NUL"));
  ASSERT_NULL(v);
  /* the file is 4096 bytes at most (as the agent's password file) */
  char *big = wf_malloc(4097);
  memset(big, 'x', 4097);
  big[4095] = '\n';
  ASSERT_OK(secret(big, 4096, 1, &v, why));
  ASSERT_EQ(strlen(v), 4095);
  free(v);
  big[4095] = 'x';
  ASSERT_OK(secret(big, 4096, 1, &v, why));
  ASSERT_EQ(strlen(v), 4096);
  free(v);
  ASSERT_EQ(secret(big, 4097, 1, &v, why), -1);
  ASSERT(strstr(why, "longer than 4096 bytes"));
  free(big);
  /* a missing file names itself, and the reason */
  ASSERT_EQ(wf_cli_read_secret("/nonexistent/tok", 1, &v, why, sizeof why), -1);
  ASSERT_STR_EQ(why, "cannot read \"/nonexistent/tok\": No such file or directory");
  /* the content is never in a message */
  ASSERT_EQ(secret("hunter2\x01", 8, 1, &v, why), -1);
  ASSERT(!strstr(why, "hunter2"));
}

static void test_answer(void) {
  char msg[512];
  ASSERT_EQ(wf_cli_log_answer(200, "n1", "k", NULL, msg, sizeof msg), WF_CLI_LOG_OK);
  ASSERT_EQ(wf_cli_log_answer(401, "n1", "k", "", msg, sizeof msg), WF_CLI_LOG_FAIL);
  ASSERT_STR_EQ(msg, "node n1 refused the log: token missing or wrong (--token-file)");
  ASSERT_EQ(wf_cli_log_answer(404, "n1", "k1", "not found\n", msg, sizeof msg), WF_CLI_LOG_FAIL);
  ASSERT_STR_EQ(msg, "node n1 has no log for step k1");
  ASSERT_EQ(wf_cli_log_answer(503, "n1", "k", "too many followers\n", msg, sizeof msg),
            WF_CLI_LOG_RETRY);
  ASSERT_STR_EQ(msg, "node n1 is busy or failing (HTTP 503: too many followers)");
  ASSERT_EQ(wf_cli_log_answer(500, "n1", "k", NULL, msg, sizeof msg), WF_CLI_LOG_RETRY);
  ASSERT_EQ(wf_cli_log_answer(429, "n1", "k", NULL, msg, sizeof msg), WF_CLI_LOG_RETRY);
  ASSERT_EQ(wf_cli_log_answer(400, "n1", "k", "bad offset", msg, sizeof msg), WF_CLI_LOG_FAIL);
  ASSERT_STR_EQ(msg, "node n1 answered HTTP 400 for the log of step k: bad offset");
  /* a body that is not one short line of text is left out */
  ASSERT_EQ(wf_cli_log_answer(403, "n1", "k", "<html>\x01</html>", msg, sizeof msg),
            WF_CLI_LOG_FAIL);
  ASSERT_STR_EQ(msg, "node n1 answered HTTP 403 for the log of step k");
  ASSERT_EQ(wf_cli_log_answer(416, "n1", "k", "", msg, sizeof msg), WF_CLI_LOG_FAIL);
  ASSERT_STR_EQ(msg, "node n1 answered HTTP 416 for the log of step k");
}

static const wf_test_t tests[] = {WF_TEST(target), WF_TEST(endpoint), WF_TEST(secret),
                                  WF_TEST(answer)};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
