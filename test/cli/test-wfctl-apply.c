/*
 * test-wfctl-apply: the pure parts of wfctl: xid generation, key-segment
 * checks, and how `wfctl apply` turns a document into a key and a value
 * (kind, defaults, string coercion, codec validation with the field named).
 * The etcd round trip is covered by the e2e tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf-test.h"
#include "wf/cli.h"
#include "wf/util.h"
#include "wf/yaml.h"

static json_t *yaml1(const char *text) {
  char err[256];
  json_t *docs = wf_yaml_load_all(text, strlen(text), err, sizeof err);
  if (!docs) WF_FAIL("yaml: %s", err);
  json_t *d = json_incref(json_array_get(docs, 0));
  json_decref(docs);
  return d;
}

static void test_xid(void) {
  char a[21], b[21];
  wf_cli_xid(a);
  wf_cli_xid(b);
  ASSERT_EQ(strlen(a), 20);
  ASSERT(strcmp(a, b) != 0);
  for (int i = 0; i < 20; i++)
    ASSERT((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'v'));
  /* The first 7 characters encode the time: ids sort by creation second. */
  ASSERT(strncmp(a, b, 6) == 0 || strcmp(a, b) < 0);
  /* The last character carries 1 bit and 4 zero bits. */
  ASSERT(a[19] == '0' || a[19] == 'g');
}

static void test_name_ok(void) {
  ASSERT(wf_cli_name_ok("ns1.c3r8psea0brhlbg0qdd0.1.1"));
  ASSERT(wf_cli_name_ok("a b"));
  ASSERT(!wf_cli_name_ok(""));
  ASSERT(!wf_cli_name_ok("."));
  ASSERT(!wf_cli_name_ok(".."));
  ASSERT(!wf_cli_name_ok("a/b"));
  ASSERT(!wf_cli_name_ok("a\nb"));
  ASSERT(!wf_cli_name_ok("a\x7f"));
  char big[300];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ASSERT(!wf_cli_name_ok(big));
}

/* Prepares text's first document; returns the stored JSON (compact). */
static char *prep(const char *text, const char *node, enum wf_cli_kind want_kind,
                  const char *want_key, const char *want_label) {
  json_t *d = yaml1(text);
  enum wf_cli_kind kind;
  char *key, *label, err[512];
  if (wf_cli_apply_prepare(d, "pfx", node, &kind, &key, &label, err, sizeof err) != 0)
    WF_FAIL("prepare failed: %s\n%s", err, text);
  ASSERT_EQ(kind, want_kind);
  if (want_key) ASSERT_STR_EQ(key, want_key);
  if (want_label) ASSERT_STR_EQ(label, want_label);
  char *s = json_dumps(d, JSON_COMPACT);
  free(key);
  free(label);
  json_decref(d);
  return s;
}

static void prep_fails(const char *text, const char *want) {
  json_t *d = yaml1(text);
  enum wf_cli_kind kind;
  char *key = (char *)"x", *label = (char *)"x", err[512] = "";
  if (wf_cli_apply_prepare(d, "pfx", NULL, &kind, &key, &label, err, sizeof err) == 0)
    WF_FAIL("expected failure (%s) for:\n%s", want, text);
  ASSERT_NULL(key);
  ASSERT_NULL(label);
  if (!strstr(err, want)) WF_FAIL("error \"%s\" lacks \"%s\"", err, want);
  json_decref(d);
}

static void test_action(void) {
  char *s = prep("kind: action\n"
                 "name: build\n"
                 "version: v1\n"
                 "runner_type: local\n"
                 "runner_params: {CMD: \"sh,-c,echo hi\", PORT: 8080}\n"
                 "run_params:\n"
                 "  - {key_name: A, required: true}\n"
                 "description: builds\n"
                 "x_unknown: kept\n",
                 NULL, WF_CLI_ACTION, "pfx/workflow/actions/build@v1", "action/build@v1");
  ASSERT_STR_EQ(s, "{\"name\":\"build\",\"version\":\"v1\",\"runner_type\":\"local\","
                   "\"runner_params\":{\"CMD\":\"sh,-c,echo hi\",\"PORT\":\"8080\"},"
                   "\"run_params\":[{\"key_name\":\"A\",\"required\":true}],"
                   "\"description\":\"builds\",\"x_unknown\":\"kept\"}");
  free(s);
  /* a YAML number for a version */
  s = prep("kind: Action\nname: b\nversion: 2\n", NULL, WF_CLI_ACTION,
           "pfx/workflow/actions/b@2", NULL);
  free(s);
  prep_fails("kind: Action\nversion: v1\n", "name: missing");
  prep_fails("kind: Action\nname: b\n", "version: missing");
  prep_fails("kind: Action\nname: a@b\nversion: v1\n", "name:");
  prep_fails("kind: Action\nname: a/b\nversion: v1\n", "name:");
  prep_fails("kind: Action\nname: [a]\nversion: v1\n", "name: expected a string");
  prep_fails("kind: Action\nname: a\nversion: v1\nrunner_type: PYTHON\n", "runner_type");
  prep_fails("kind: Action\nname: a\nversion: v1\nrunner_params: [1]\n", "runner_params");
}

static void test_pipeline(void) {
  char *s = prep("kind: Pipeline\nid: p1\nnamespace: ns\nname: pl\ncreate_at: 5\n"
                 "with: {A: 1}\nstages: [{id: 1, name: s1, steps: [{name: x, action: a@v1}]}]\n",
                 NULL, WF_CLI_PIPELINE, "pfx/workflow/pipelines/ns/p1", "pipeline/ns/p1");
  ASSERT(strstr(s, "\"with\":{\"A\":\"1\"}") != NULL);
  free(s);
  s = prep("kind: PIPELINE\nname: pl\n", NULL, WF_CLI_PIPELINE, NULL, NULL);
  json_t *o = json_loads(s, 0, NULL);
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "namespace")), "default");
  ASSERT_EQ(json_string_length(json_object_get(o, "id")), 20);
  ASSERT(json_integer_value(json_object_get(o, "create_at")) > 1600000000000LL);
  json_decref(o);
  free(s);
  prep_fails("kind: Pipeline\nid: a.b\n", "id:");
  prep_fails("kind: Pipeline\nnamespace: a/b\n", "namespace:");
  prep_fails("kind: Pipeline\nstages: 3\n", "stages");
}

static void test_step(void) {
  char *s = prep("kind: Step\nkey: k1\nname: n\naction: build@v1\ncreate_at: 7\n", "node-1",
                 WF_CLI_STEP, "pfx/workflow/steps/k1", "step/k1");
  ASSERT_STR_EQ(s, "{\"key\":\"k1\",\"name\":\"n\",\"action\":\"build@v1\",\"create_at\":7,"
                   "\"create_type\":\"USER\",\"status\":{\"status\":\"PENDDING\","
                   "\"scheduled_node\":\"node-1\"}}");
  free(s);

  /* Generated key; name from the action; node fills an empty scheduled_node
   * but never replaces one; a pipeline step keeps its (absent) create_type. */
  s = prep("kind: step\naction: build@v1\npipeline_id: p1\nstatus: {scheduled_node: \"\"}\n",
           "n2", WF_CLI_STEP, NULL, NULL);
  json_t *o = json_loads(s, 0, NULL);
  ASSERT_EQ(json_string_length(json_object_get(o, "key")), 20);
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "name")), "build");
  ASSERT_NULL(json_object_get(o, "create_type"));
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(o, "status"), "status")),
                "PENDDING");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(o, "status"),
                                                  "scheduled_node")), "n2");
  json_decref(o);
  free(s);
  s = prep("kind: Step\nkey: k2\naction: a\nstatus: {status: RUNNING, scheduled_node: n0}\n",
           "n2", WF_CLI_STEP, NULL, NULL);
  ASSERT(strstr(s, "\"scheduled_node\":\"n0\"") != NULL);
  ASSERT(strstr(s, "\"status\":\"RUNNING\"") != NULL);
  free(s);

  prep_fails("kind: Step\nkey: k\n", "action: missing");
  prep_fails("kind: Step\nkey: a/b\naction: a\n", "key:");
  prep_fails("kind: Step\nkey: ..\naction: a\n", "key:");
  prep_fails("kind: Step\naction: a\nstatus: {status: BOGUS}\n", "status.status");
  prep_fails("kind: Step\naction: a\nwith: [1]\n", "with");
  prep_fails("kind: Step\naction: a\nid: x\n", "id");
}

static void test_kind(void) {
  prep_fails("name: x\n", "kind: missing");
  prep_fails("kind: Job\n", "\"Job\" is not Action, Pipeline or Step");
  prep_fails("kind: [Step]\n", "kind: expected a string");
  prep_fails("- 1\n", "expected a mapping");
}

static const wf_test_t tests[] = {
    WF_TEST(xid), WF_TEST(name_ok), WF_TEST(action), WF_TEST(pipeline), WF_TEST(step),
    WF_TEST(kind),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
