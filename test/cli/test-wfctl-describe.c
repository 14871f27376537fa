/*
 * test-wfctl-describe: the pure parts behind `wfctl get -o yaml` and
 * `wfctl describe`: the YAML emitter (exact text for the common shapes, and
 * a round trip through the YAML loader for strings a reader could mistype),
 * the describe model (merged params with their origin, secrets masked by
 * name glob and by `secret: true`, notes for what is missing, the timeline)
 * and its text.  The etcd side is covered by test/e2e/test_wfctl_people.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wf-test.h"
#include "wf/cli.h"
#include "wf/yaml.h"

static json_t *js(const char *text) {
  json_error_t e;
  json_t *v = json_loads(text, 0, &e);
  if (!v) WF_FAIL("bad test JSON: %s: %s", e.text, text);
  return v;
}

/* Dumps v, reads the text back with the project's loader and compares. */
static void round_trip(const json_t *v) {
  char *y = wf_cli_yaml_dump(v);
  ASSERT_NOT_NULL(y);
  char err[256];
  json_t *docs = wf_yaml_load_all(y, strlen(y), err, sizeof err);
  if (!docs) WF_FAIL("emitted YAML does not load (%s):\n%s", err, y);
  ASSERT_EQ(json_array_size(docs), 1);
  if (!json_equal(json_array_get(docs, 0), v)) {
    char *a = json_dumps(v, JSON_ENCODE_ANY), *b = json_dumps(json_array_get(docs, 0),
                                                             JSON_ENCODE_ANY);
    WF_FAIL("round trip changed the value:\n  in:  %s\n  out: %s\nyaml:\n%s", a, b, y);
  }
  json_decref(docs);
  free(y);
}

static void expect_yaml(const char *json_text, const char *want) {
  json_t *v = js(json_text);
  char *y = wf_cli_yaml_dump(v);
  ASSERT_STR_EQ(y, want);
  free(y);
  round_trip(v);
  json_decref(v);
}

static void test_yaml_shapes(void) {
  /* Key order is the object's own (the stored order), not sorted. */
  expect_yaml("{\"z\": 1, \"a\": \"x\", \"m\": true}", "z: 1\na: x\nm: true\n");
  expect_yaml("{\"a\": {}, \"b\": [], \"c\": null}", "a: {}\nb: []\nc: null\n");
  expect_yaml("{\"with\": {\"PORT\": \"8080\", \"V\": \"1.21\", \"OK\": \"yes\"}}",
              "with:\n  PORT: '8080'\n  V: '1.21'\n  OK: 'yes'\n");
  expect_yaml("{\"l\": [1, \"two\", {\"k\": \"v\"}]}", "l:\n- 1\n- two\n- k: v\n");
  expect_yaml("{\"s\": \"line 1\\nline 2\\n\"}", "s: |\n  line 1\n  line 2\n");
  expect_yaml("{\"r\": 1.5, \"i\": -3, \"n\": 0}", "r: 1.5\ni: -3\n'n': 0\n");
}

static void test_yaml_round_trip(void) {
  /* Strings a YAML 1.1 reader would take for something else, and strings
   * that need quoting for their characters. */
  static const char *const tricky[] = {
      "", "~", "null", "Null", "NULL", "true", "False", "yes", "No", "on", "OFF", "y", "n",
      "8080", "007", "0x1F", "1.21", "1e3", ".5", "-1", "+1", ".inf", ".NaN", "2026-01-02",
      "12:30:00", "-x", "- x", "a: b", "a:b", "#c", "a #c", "[x]", "{x}", "*ref", "&anchor",
      "!tag", "|", ">", "'q'", "\"dq\"", "%x", "@x", "`x`", "<<", "=", "?", "? x",
      " lead", "trail ", "tab\there", "x\001y", "multi\nline", "ends\n", "\n", "ünï ☃",
      "C:\\path", "a,b", "sh,-c,echo hi", NULL,
  };
  json_t *obj = json_object(), *arr = json_array();
  for (size_t i = 0; tricky[i]; i++) {
    json_array_append_new(arr, json_string(tricky[i]));
    /* ... and as keys: keys always load as strings, but must load at all. */
    json_object_set_new(obj, tricky[i], json_string(tricky[i]));
  }
  round_trip(arr);
  round_trip(obj);
  json_t *nums = js("[0, -0.5, 0.1, 1e20, 1.5e-7, 123456789012345, -9007199254740993, "
                    "3.141592653589793, true, false, null, {\"a\": [[], {}, [{}]]}]");
  round_trip(nums);
  json_decref(arr);
  json_decref(obj);
  json_decref(nums);
  /* A scalar document too. */
  json_t *s = json_string("1.0");
  round_trip(s);
  json_decref(s);
  ASSERT_NULL(wf_cli_yaml_dump(NULL));
}

static const char *const ACTION =
    "{\"name\": \"greet\", \"version\": \"v1\", \"runner_type\": \"LOCAL\","
    " \"runner_params\": {\"CMD\": \"sh,-c,echo hi\"},"
    " \"run_params\": [{\"key_name\": \"WHO\", \"default_value\": \"world\"},"
    "  {\"key_name\": \"GREETING\", \"default_value\": \"hello\"},"
    "  {\"key_name\": \"KEYFILE\", \"default_value\": \"s3cr3t-file\", \"secret\": true},"
    "  {\"key_name\": \"REQ\", \"required\": true}]}";

static const char *const STEP =
    "{\"key\": \"k1\", \"create_type\": \"USER\", \"name\": \"greet\", \"action\": \"greet@v1\","
    " \"with\": {\"WHO\": \"you\", \"API_TOKEN\": \"abcd1234\", \"X\": \"1\"},"
    " \"create_at\": 1000000, \"update_at\": 1004100, \"custom\": \"kept\","
    " \"status\": {\"status\": \"FAILED\", \"scheduled_node\": \"n1\", \"start_at\": 1001500,"
    "  \"end_at\": 1004000, \"message\": \"validate run params error, required param REQ\"}}";

/* The params entry named name, or NULL. */
static const json_t *param(const json_t *m, const char *name) {
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(m, "params"), i, p) {
    if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0) return p;
  }
  return NULL;
}

static void expect_param(const json_t *m, const char *name, const char *value,
                         const char *from, int secret) {
  const json_t *p = param(m, name);
  if (!p) WF_FAIL("no param %s", name);
  ASSERT_STR_EQ(json_string_value(json_object_get(p, "value")), value);
  ASSERT_STR_EQ(json_string_value(json_object_get(p, "from")), from);
  ASSERT_EQ(json_is_true(json_object_get(p, "secret")), secret);
}

static int has_note(const json_t *m, const char *needle) {
  size_t i;
  json_t *n;
  json_array_foreach(json_object_get(m, "notes"), i, n) {
    if (strstr(json_string_value(n), needle)) return 1;
  }
  return 0;
}

static void test_describe_model(void) {
  json_t *step = js(STEP), *action = js(ACTION);
  json_t *m = wf_cli_describe(step, action, NULL, "*PASSWORD*,*SECRET*,*TOKEN*", 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(m, "key")), "k1");
  ASSERT_STR_EQ(json_string_value(json_object_get(m, "status")), "FAILED");
  ASSERT_STR_EQ(json_string_value(json_object_get(m, "node")), "n1");
  ASSERT_STR_EQ(json_string_value(json_object_get(m, "runner")), "LOCAL");
  ASSERT_EQ(json_array_size(json_object_get(m, "notes")), 0);
  /* Action defaults < step with; secrets by glob and by `secret: true`. */
  expect_param(m, "WHO", "you", "step", 0);
  expect_param(m, "GREETING", "hello", "action default", 0);
  expect_param(m, "KEYFILE", "******", "action default", 1);
  expect_param(m, "API_TOKEN", "******", "step", 1);
  expect_param(m, "X", "1", "step", 0);
  ASSERT_NULL(param(m, "REQ"));
  ASSERT(strstr(json_string_value(json_object_get(m, "params_error")), "required param REQ"));
  /* Every stored field, unknown ones too, with the secret hidden. */
  const json_t *shown = json_object_get(m, "step");
  ASSERT_STR_EQ(json_string_value(json_object_get(shown, "custom")), "kept");
  const json_t *w = json_object_get(shown, "with");
  ASSERT_STR_EQ(json_string_value(json_object_get(w, "API_TOKEN")), "******");
  ASSERT_STR_EQ(json_string_value(json_object_get(w, "WHO")), "you");
  /* The caller's object is not touched. */
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(step, "with"), "API_TOKEN")),
                "abcd1234");
  const json_t *tl = json_object_get(m, "timeline");
  ASSERT_EQ(json_integer_value(json_object_get(tl, "create_at")), 1000000);
  ASSERT_EQ(json_integer_value(json_object_get(tl, "waited_ms")), 1500);
  ASSERT_EQ(json_integer_value(json_object_get(tl, "ran_ms")), 2500);
  ASSERT_NULL(json_object_get(tl, "running_ms"));
  char *dump = json_dumps(m, 0);
  ASSERT(!strstr(dump, "abcd1234") && !strstr(dump, "s3cr3t-file"));
  free(dump);
  json_decref(m);

  /* Other globs: WHO becomes secret, API_TOKEN no longer is. */
  m = wf_cli_describe(step, action, NULL, "WHO", 0);
  expect_param(m, "WHO", "******", "step", 1);
  expect_param(m, "API_TOKEN", "abcd1234", "step", 0);
  expect_param(m, "KEYFILE", "******", "action default", 1);
  json_decref(m);

  /* No action in etcd: a note, the step's own params, glob secrets only. */
  m = wf_cli_describe(step, NULL, NULL, "*TOKEN*", 0);
  ASSERT(has_note(m, "greet@v1 is not in etcd"));
  ASSERT_NULL(json_object_get(m, "runner"));
  expect_param(m, "API_TOKEN", "******", "step", 1);
  ASSERT_NULL(param(m, "GREETING"));
  ASSERT_NULL(json_object_get(m, "params_error"));
  json_decref(m);
  json_decref(step);
  json_decref(action);
}

static void test_describe_pipeline(void) {
  json_t *step = js("{\"key\": \"ns.p1.1.1\", \"namespace\": \"ns\", \"pipeline_id\": \"p1\","
                    " \"action\": \"greet@v1\", \"with\": {\"X\": \"s\"},"
                    " \"status\": {\"status\": \"RUNNING\", \"start_at\": 5000}}");
  json_t *pipe = js("{\"id\": \"p1\", \"namespace\": \"ns\","
                    " \"with\": {\"WHO\": \"pipe\", \"X\": \"p\", \"DB_PASSWORD\": \"pw\"}}");
  json_t *action = js(ACTION);
  json_t *m = wf_cli_describe(step, action, pipe, "*PASSWORD*", 65000);
  expect_param(m, "WHO", "pipe", "pipeline", 0);
  expect_param(m, "X", "s", "step", 0);
  expect_param(m, "DB_PASSWORD", "******", "pipeline", 1);
  expect_param(m, "GREETING", "hello", "action default", 0);
  const json_t *tl = json_object_get(m, "timeline");
  ASSERT_EQ(json_integer_value(json_object_get(tl, "running_ms")), 60000);
  ASSERT_NULL(json_object_get(tl, "waited_ms")); /* no create_at */
  json_decref(m);
  /* The pipeline is gone: the node would fail the step; say so. */
  m = wf_cli_describe(step, action, NULL, "", 0);
  ASSERT(has_note(m, "pipeline ns/p1 not found"));
  json_decref(m);
  json_decref(step);
  json_decref(pipe);
  json_decref(action);
}

static void test_describe_bad_step(void) {
  json_t *step = js("{\"key\": \"b\", \"action\": \"a@v1\", \"with\": {\"T\": 5},"
                    " \"status\": {\"status\": \"BOGUS\"}}");
  json_t *m = wf_cli_describe(step, NULL, NULL, "", 0);
  ASSERT(has_note(m, "does not decode"));
  ASSERT_NULL(json_object_get(m, "params"));
  char *t = wf_cli_describe_text(m);
  ASSERT(strstr(t, "(not merged)"));
  ASSERT(strstr(t, "Status:   BOGUS"));
  free(t);
  json_decref(m);
  json_decref(step);
}

static void test_describe_text(void) {
  setenv("TZ", "UTC", 1);
  tzset();
  json_t *step = js(STEP), *action = js(ACTION);
  json_t *m = wf_cli_describe(step, action, NULL, "*TOKEN*", 0);
  char *t = wf_cli_describe_text(m);
  const char *want[] = {
      "Step:     k1\n",
      "Status:   FAILED on n1\n",
      "Action:   greet@v1 (LOCAL runner)\n",
      "\nFields:\n  key: k1\n  create_type: USER\n",
      "  with:\n    WHO: you\n    API_TOKEN: '******'\n    X: '1'\n",
      "  custom: kept\n",
      "\nParams (action defaults < pipeline with < step with):\n",
      "  NAME        VALUE    FROM\n",
      "  API_TOKEN   ******   step\n",
      "  KEYFILE     ******   action default\n",
      "  GREETING    hello    action default\n",
      "  error: validate run params error, required param REQ\n",
      "\nTimeline (local time):\n",
      "  created   1970-01-01 00:16:40.000 UTC\n",
      "  started   1970-01-01 00:16:41.500 UTC   (waited 1.5s)\n",
      "  ended     1970-01-01 00:16:44.000 UTC   (ran 2.5s)\n",
      "  updated   1970-01-01 00:16:44.100 UTC\n",
      NULL,
  };
  for (const char **w = want; *w; w++)
    if (!strstr(t, *w)) WF_FAIL("describe text lacks \"%s\":\n%s", *w, t);
  ASSERT(!strstr(t, "abcd1234") && !strstr(t, "s3cr3t-file"));
  free(t);
  json_decref(m);

  /* A running step: no end, the time it has run so far. */
  json_t *run = js("{\"key\": \"r\", \"action\": \"greet@v1\", \"create_type\": \"USER\","
                   " \"status\": {\"status\": \"RUNNING\", \"start_at\": 1000}}");
  m = wf_cli_describe(run, action, NULL, "", 1000 + 65000);
  t = wf_cli_describe_text(m);
  if (!strstr(t, "  ended     -   (running for 1m05s)\n")) WF_FAIL("running:\n%s", t);
  if (!strstr(t, "  created   -\n")) WF_FAIL("no create_at:\n%s", t);
  free(t);
  json_decref(m);
  json_decref(run);
  json_decref(step);
  json_decref(action);
}

int main(void) {
  test_yaml_shapes();
  test_yaml_round_trip();
  test_describe_model();
  test_describe_pipeline();
  test_describe_bad_step();
  test_describe_text();
  printf("ok\n");
  return 0;
}
