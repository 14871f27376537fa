/*
 * test-yaml: YAML -> JSON typing rules, multi-document streams, JSON input,
 * errors with line numbers, refused aliases/anchors and depth, the
 * schema-guided string coercion, and that garbage never crashes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "wf-test.h"
#include "wf/codec.h"
#include "wf/util.h"
#include "wf/yaml.h"

static json_t *load1(const char *text) {
  char err[256];
  json_t *docs = wf_yaml_load_all(text, strlen(text), err, sizeof err);
  if (!docs) WF_FAIL("load failed: %s\n--- input:\n%s", err, text);
  ASSERT_EQ(json_array_size(docs), 1);
  json_t *d = json_incref(json_array_get(docs, 0));
  json_decref(docs);
  return d;
}

/* Loads text expecting an error that contains `want`. */
static void load_fails(const char *text, size_t len, const char *want) {
  char err[256] = "";
  json_t *docs = wf_yaml_load_all(text, len, err, sizeof err);
  if (docs) {
    char *s = json_dumps(docs, JSON_COMPACT | JSON_ENCODE_ANY);
    WF_FAIL("expected failure (%s) but got %s", want, s);
  }
  if (!strstr(err, want)) WF_FAIL("error \"%s\" lacks \"%s\"", err, want);
}

static void expect_json(const json_t *v, const char *want) {
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  ASSERT_STR_EQ(s, want);
  free(s);
}

static void test_typing(void) {
  json_t *d = load1(
      "i: 42\n"
      "neg: -7\n"
      "plus: +3\n"
      "hex: 0x1F\n"
      "zero: 0\n"
      "lead: 007\n"
      "octal: 0755\n"
      "big: 99999999999999999999\n"
      "real: 1.5\n"
      "exp: 2e3\n"
      "dot: .5\n"
      "inf: .inf\n"
      "t1: true\n"
      "t2: Yes\n"
      "t3: ON\n"
      "f1: false\n"
      "f2: no\n"
      "f3: Off\n"
      "y: y\n"
      "mixed: tRuE\n"
      "n1: ~\n"
      "n2: null\n"
      "n3:\n"
      "q1: \"42\"\n"
      "q2: 'true'\n"
      "q3: \"\"\n"
      "tag: !!str 12\n"
      "str: hello world\n"
      "ver: v1\n"
      "ip: 10.0.0.1\n"
      "time: 12:30\n");
  expect_json(d,
              "{\"i\":42,\"neg\":-7,\"plus\":3,\"hex\":31,\"zero\":0,\"lead\":\"007\","
              "\"octal\":\"0755\",\"big\":\"99999999999999999999\",\"real\":1.5,"
              "\"exp\":2000.0,\"dot\":0.5,\"inf\":\".inf\",\"t1\":true,\"t2\":true,"
              "\"t3\":true,\"f1\":false,\"f2\":false,\"f3\":false,\"y\":\"y\","
              "\"mixed\":\"tRuE\",\"n1\":null,\"n2\":null,\"n3\":null,\"q1\":\"42\","
              "\"q2\":\"true\",\"q3\":\"\",\"tag\":\"12\",\"str\":\"hello world\","
              "\"ver\":\"v1\",\"ip\":\"10.0.0.1\",\"time\":\"12:30\"}");
  json_decref(d);

  /* int64 edges */
  d = load1("[9223372036854775807, -9223372036854775808, 9223372036854775808]");
  expect_json(d, "[9223372036854775807,-9223372036854775808,\"9223372036854775808\"]");
  json_decref(d);

  /* keys stay text, whatever they look like */
  d = load1("1: a\ntrue: b\n~: c\n\"q\": d\n");
  expect_json(d, "{\"1\":\"a\",\"true\":\"b\",\"~\":\"c\",\"q\":\"d\"}");
  json_decref(d);
}

static void test_structures(void) {
  json_t *d = load1(
      "name: build\n"
      "runner_params:\n"
      "  IMAGE_URL: busybox\n"
      "  CMD: [sh, -c, \"echo hi, there\"]\n"
      "run_params:\n"
      "  - key_name: A\n"
      "    required: true\n"
      "  - {key_name: B, default_value: x}\n"
      "empty_map: {}\n"
      "empty_seq: []\n"
      "block: |\n"
      "  line1\n"
      "  line2\n"
      "folded: >\n"
      "  a\n"
      "  b\n");
  expect_json(d,
              "{\"name\":\"build\",\"runner_params\":{\"IMAGE_URL\":\"busybox\","
              "\"CMD\":[\"sh\",\"-c\",\"echo hi, there\"]},\"run_params\":[{\"key_name\":\"A\","
              "\"required\":true},{\"key_name\":\"B\",\"default_value\":\"x\"}],"
              "\"empty_map\":{},\"empty_seq\":[],\"block\":\"line1\\nline2\\n\","
              "\"folded\":\"a b\\n\"}");
  json_decref(d);
}

static void test_multidoc(void) {
  char err[256];
  const char *text = "kind: Action\nname: a\n---\nkind: Step\n---\n---\n- 1\n...\n";
  json_t *docs = wf_yaml_load_all(text, strlen(text), err, sizeof err);
  ASSERT_NOT_NULL(docs);
  expect_json(docs, "[{\"kind\":\"Action\",\"name\":\"a\"},{\"kind\":\"Step\"},null,[1]]");
  json_decref(docs);

  /* An empty stream is zero documents; a bare scalar is one. */
  docs = wf_yaml_load_all("", 0, err, sizeof err);
  ASSERT_NOT_NULL(docs);
  ASSERT_EQ(json_array_size(docs), 0);
  json_decref(docs);
  docs = wf_yaml_load_all("# only a comment\n", 17, err, sizeof err);
  ASSERT_NOT_NULL(docs);
  ASSERT_EQ(json_array_size(docs), 0);
  json_decref(docs);
  docs = wf_yaml_load_all("hello", 5, err, sizeof err);
  ASSERT_NOT_NULL(docs);
  expect_json(docs, "[\"hello\"]");
  json_decref(docs);
}

static void test_errors(void) {
  load_fails("a: 1\nb: [1, 2\n", 13, "line 3");
  load_fails("a: 1\n  b: 2\n", 11, "line 2");
  load_fails("a: 1\nb:\n\t- x\n", 13, "line 3");
  load_fails("a: 1\na: 2\n", 10, "duplicate key \"a\"");
  load_fails("a: 1\na: 2\n", 10, "line 2");
  load_fails("base: &b {x: 1}\nother: *b\n", 26, "anchors");
  load_fails("- *x\n", 5, "aliases");
  load_fails("a: &x 1\n", 8, "anchors (&x)");
  load_fails("? [1, 2]\n: v\n", 13, "mapping key must be a plain value");
  load_fails("? {a: 1}\n: v\n", 13, "mapping key");
  load_fails("\"a\\0b\": 1\n", 10, "NUL byte");
  load_fails("a: \"\xff\"\n", 7, "line 1");

  /* depth: 64 levels are fine, 65 are not */
  char deep[512];
  size_t n = 0;
  for (int i = 0; i < WF_YAML_MAX_DEPTH; i++) deep[n++] = '[';
  for (int i = 0; i < WF_YAML_MAX_DEPTH; i++) deep[n++] = ']';
  char err[256];
  json_t *docs = wf_yaml_load_all(deep, n, err, sizeof err);
  ASSERT_NOT_NULL(docs);
  json_decref(docs);
  n = 0;
  for (int i = 0; i <= WF_YAML_MAX_DEPTH; i++) deep[n++] = '[';
  for (int i = 0; i <= WF_YAML_MAX_DEPTH; i++) deep[n++] = ']';
  load_fails(deep, n, "nested deeper than 64");

  /* Very deep nesting must not recurse or blow up either. */
  size_t big = 1u << 20;
  char *huge = wf_malloc(big);
  memset(huge, '[', big);
  load_fails(huge, big, "nested deeper");
  for (size_t i = 0; i < big; i += 2) {
    huge[i] = '{';
    huge[i + 1] = 'a';
  }
  docs = wf_yaml_load_all(huge, big, err, sizeof err);
  ASSERT_NULL(docs);
  free(huge);
}

static void test_json_and_files(void) {
  char err[256];
  json_t *docs = wf_yaml_load_buf("  {\"a\": 1}", 10, err, sizeof err);
  ASSERT_NOT_NULL(docs);
  expect_json(docs, "[{\"a\":1}]");
  json_decref(docs);
  docs = wf_yaml_load_buf("\n[{\"a\": 1}, {\"b\": \"x\"}]\n", 24, err, sizeof err);
  ASSERT_NOT_NULL(docs);
  expect_json(docs, "[{\"a\":1},{\"b\":\"x\"}]");
  json_decref(docs);
  /* JSON errors name the line, counting the leading blank lines. */
  docs = wf_yaml_load_buf("\n\n{\"a\": 1,\n \"b\" 2}", 18, err, sizeof err);
  ASSERT_NULL(docs);
  ASSERT(strstr(err, "line 4") != NULL);
  docs = wf_yaml_load_buf("{\"a\": 1, \"a\": 2}", 16, err, sizeof err);
  ASSERT_NULL(docs);

  char path[] = "/tmp/wf-test-yaml-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  const char *y = "\xEF\xBB\xBFkind: Step\nkey: k1\n";
  ASSERT_EQ(write(fd, y, strlen(y)), (long long)strlen(y));
  close(fd);
  docs = wf_yaml_load_file(path, err, sizeof err);
  ASSERT_NOT_NULL(docs);
  expect_json(docs, "[{\"kind\":\"Step\",\"key\":\"k1\"}]");
  json_decref(docs);
  fd = open(path, O_WRONLY | O_TRUNC);
  ASSERT_EQ(write(fd, "[1, 2]", 6), 6);
  close(fd);
  docs = wf_yaml_load_file(path, err, sizeof err);
  ASSERT_NOT_NULL(docs);
  expect_json(docs, "[1,2]");
  json_decref(docs);
  unlink(path);
  docs = wf_yaml_load_file(path, err, sizeof err);
  ASSERT_NULL(docs);
  ASSERT(strstr(err, "No such file") != NULL);
  docs = wf_yaml_load_file("/tmp", err, sizeof err);
  ASSERT_NULL(docs);
}

static void test_coerce(void) {
  json_t *d = load1(
      "name: build\n"
      "version: 1.0\n"
      "is_latest: true\n"
      "create_at: 1700000000000\n"
      "runner_params: {PORT: 8080, DEBUG: yes, RATIO: 0.25, NAME: x, NONE: ~}\n"
      "run_params:\n"
      "  - {key_name: 5, required: true, default_value: 10}\n"
      "tags: {a: 1}\n");
  wf_yaml_coerce_strings(d, &wf__action__descriptor);
  expect_json(d,
              "{\"name\":\"build\",\"version\":\"1.0\",\"is_latest\":true,"
              "\"create_at\":1700000000000,\"runner_params\":{\"PORT\":\"8080\","
              "\"DEBUG\":\"true\",\"RATIO\":\"0.25\",\"NAME\":\"x\",\"NONE\":null},"
              "\"run_params\":[{\"key_name\":\"5\",\"required\":true,\"default_value\":\"10\"}],"
              "\"tags\":{\"a\":\"1\"}}");
  json_decref(d);

  d = load1("with: {N: 3}\nstatus: {scheduled_node: 7, response: {exit_code: 0}}\n"
            "webhooks: [{url: 1, events: [RUNNING]}]\n");
  wf_yaml_coerce_strings(d, &wf__step__descriptor);
  expect_json(d,
              "{\"with\":{\"N\":\"3\"},\"status\":{\"scheduled_node\":\"7\",\"response\":"
              "{\"exit_code\":\"0\"}},\"webhooks\":[{\"url\":\"1\",\"events\":[\"RUNNING\"]}]}");
  json_decref(d);

  /* Wrong shapes are left alone for the codec to report. */
  d = load1("with: [1, 2]\nstatus: 3\n");
  wf_yaml_coerce_strings(d, &wf__step__descriptor);
  expect_json(d, "{\"with\":[1,2],\"status\":3}");
  json_decref(d);
}

/* Random and mutated input: no crash, no leak (ASan), either result or err. */
static void test_garbage(void) {
  static const char *const seeds[] = {
      "a: [1, {b: c}]\n- x\n", "? a\n: b\n", "--- !foo\n&a [*a]\n", "\"\\u00e9\\x00\": 1",
      "a: |\n  x\n b\n", "{a: 1, a: 1}", "- - - - -\n", "%YAML 1.1\n---\na: b\n",
      "%TAG ! tag:x,1:\n--- !a b\n", "a: 'it''s'\n", "[\n", "}\n", "\x01\x02\x03",
  };
  unsigned seed = 12345;
  char buf[256];
  char err[256];
  for (int iter = 0; iter < 20000; iter++) {
    const char *s = seeds[iter % (sizeof seeds / sizeof seeds[0])];
    size_t n = strlen(s);
    memcpy(buf, s, n);
    int muts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 6;
    for (int m = 0; m < muts; m++) {
      seed = seed * 1103515245u + 12345u;
      size_t pos = (seed >> 8) % (n + 1);
      char ch = (char)(seed >> 20);
      if (pos < n && (seed & 1)) buf[pos] = ch;
      else if (n < sizeof buf - 1) {
        memmove(buf + pos + 1, buf + pos, n - pos);
        buf[pos] = ch;
        n++;
      }
    }
    err[0] = '\0';
    json_t *docs = wf_yaml_load_buf(buf, n, err, sizeof err);
    if (docs) json_decref(docs);
    else ASSERT(err[0] != '\0');
  }
}

static const wf_test_t tests[] = {
    WF_TEST(typing), WF_TEST(structures), WF_TEST(multidoc), WF_TEST(errors),
    WF_TEST(json_and_files), WF_TEST(coerce), WF_TEST(garbage),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
