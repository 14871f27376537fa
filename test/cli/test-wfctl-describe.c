/*
 * test-wfctl-describe: the pure parts behind `wfctl get -o yaml` and
 * `wfctl describe`: the YAML emitter (exact text for the common shapes, and
 * a round trip through the YAML loader for strings a reader could mistype,
 * a step's outputs in status.response), the describe model (merged params
 * with their origin, outputs of earlier steps included, secrets masked by
 * name glob, by `secret: true` and inside other values, notes for what is
 * missing or over a bound, the timeline) and its text.  The etcd side is
 * covered by test/e2e/test_wfctl_people.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wf-test.h"
#include "wf/cli.h"
#include "wf/outputs.h"
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

/* A step's outputs as `get steps -o yaml` prints them: keys with a dot stay
 * plain, values of several lines are literal blocks (with the chomping and
 * indentation indicators their ends and starts need), and a value a block
 * cannot hold (trailing spaces, tabs, "\r") is double-quoted; every one
 * reads back as stored. */
static void test_yaml_outputs(void) {
  expect_yaml("{\"status\": {\"response\": {\"exit_code\": \"0\", \"output.IMAGE\": \"r/app:1\","
              " \"output.LOG\": \"built\\ntested\", \"output.NOTES\": \"a\\n\\n\","
              " \"output.IND\": \"  two\\nzero\\n\", \"output.TSV\": \"a\\tb\\nc\","
              " \"output.NO\": \"no\"}}}",
              "status:\n"
              "  response:\n"
              "    exit_code: '0'\n"
              "    output.IMAGE: r/app:1\n"
              "    output.LOG: |-\n      built\n      tested\n"
              "    output.NOTES: |+\n      a\n\n"
              "    output.IND: |2\n        two\n      zero\n"
              "    output.TSV: \"a\\tb\\nc\"\n"
              "    output.NO: 'no'\n");
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
  json_t *m = wf_cli_describe(step, action, NULL, NULL, "*PASSWORD*,*SECRET*,*TOKEN*", 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(m, "key")), "k1");
  ASSERT_NULL(json_object_get(m, "outputs_merged")); /* no run read */
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
  m = wf_cli_describe(step, action, NULL, NULL, "WHO", 0);
  expect_param(m, "WHO", "******", "step", 1);
  expect_param(m, "API_TOKEN", "abcd1234", "step", 0);
  expect_param(m, "KEYFILE", "******", "action default", 1);
  json_decref(m);

  /* No action in etcd: a note, the step's own params, glob secrets only. */
  m = wf_cli_describe(step, NULL, NULL, NULL, "*TOKEN*", 0);
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
  json_t *m = wf_cli_describe(step, action, pipe, NULL, "*PASSWORD*", 65000);
  expect_param(m, "WHO", "pipe", "pipeline", 0);
  expect_param(m, "X", "s", "step", 0);
  expect_param(m, "DB_PASSWORD", "******", "pipeline", 1);
  expect_param(m, "GREETING", "hello", "action default", 0);
  const json_t *tl = json_object_get(m, "timeline");
  ASSERT_EQ(json_integer_value(json_object_get(tl, "running_ms")), 60000);
  ASSERT_NULL(json_object_get(tl, "waited_ms")); /* no create_at */
  json_decref(m);
  /* The pipeline is gone: the node would fail the step; say so. */
  m = wf_cli_describe(step, action, NULL, NULL, "", 0);
  ASSERT(has_note(m, "pipeline ns/p1 not found"));
  json_decref(m);
  json_decref(step);
  json_decref(pipe);
  json_decref(action);
}

/* The run ns.p1 as etcd would hold it around step ns.p1.3.1: what two
 * earlier steps published (one of them a secret under a name the node that
 * stored it did not mask, one holding a secret param's value), a step that
 * failed and one of a later stage, which offer nothing. */
static const char *const RUN[][2] = {
    {"ns.p1.1.1", "{\"name\": \"build\", \"status\": {\"status\": \"SUCCEEDED\", \"response\":"
                  " {\"exit_code\": \"0\", \"output.IMAGE\": \"img:1\", \"output.REQ\": \"r1\","
                  " \"output.DB_PASSWORD\": \"leaked-pw\","
                  " \"output.URL\": \"postgres://u:hunter22@db\","
                  " \"output.NOTE\": \"used s3cr3t-file\"}}}"},
    {"ns.p1.2.1", "{\"name\": \"test\", \"status\": {\"status\": \"SUCCEEDED\", \"response\":"
                  " {\"output.IMAGE\": \"img:2\", \"output.REPORT\": \"line1\\nline2\"}}}"},
    {"ns.p1.2.2", "{\"name\": \"lint\", \"status\": {\"status\": \"FAILED\", \"response\":"
                  " {\"output.IMAGE\": \"bad\", \"output.LINT\": \"bad\"}}}"},
    {"ns.p1.4.1", "{\"name\": \"deploy\", \"status\": {\"status\": \"SUCCEEDED\", \"response\":"
                  " {\"output.LATER\": \"bad\"}}}"},
};

static void test_describe_outputs(void) {
  json_t *step = js("{\"key\": \"ns.p1.3.1\", \"namespace\": \"ns\", \"pipeline_id\": \"p1\","
                    " \"name\": \"pkg\", \"action\": \"greet@v1\","
                    " \"with\": {\"REPORT\": \"mine\", \"API_TOKEN\": \"hunter22\","
                    "  \"OPT\": \"--pw=hunter22\"},"
                    " \"status\": {\"status\": \"SUCCEEDED\", \"message\": \"sent hunter22\","
                    "  \"response\": {\"output.MY_TOKEN\": \"t0k3n-value\","
                    "  \"output.LOG\": \"to postgres://u:hunter22@db\\nok\"}}}");
  json_t *pipe = js("{\"id\": \"p1\", \"namespace\": \"ns\","
                    " \"with\": {\"WHO\": \"pipe\", \"IMAGE\": \"from-pipe\"}}");
  json_t *action = js(ACTION);
  /* The offers as describe.c gathers them: the run fed in any order. */
  wf_offers_t *o = wf_offers_create("ns.p1.3.1", 0);
  ASSERT_NOT_NULL(o);
  char err[256];
  for (size_t i = sizeof RUN / sizeof RUN[0]; i-- > 0;) {
    json_t *st = js(RUN[i][1]);
    ASSERT_OK(wf_offers_add(o, RUN[i][0], st, err, sizeof err));
    json_decref(st);
  }
  wf_params_t values, origins;
  wf_params_init(&values);
  wf_params_init(&origins);
  ASSERT_OK(wf_offers_finish(o, &values, &origins, err, sizeof err));
  wf_offers_destroy(o);
  wf_cli_offers_t offers = {&values, &origins, NULL};

  json_t *m = wf_cli_describe(step, action, pipe, &offers, "*PASSWORD*,*TOKEN*", 0);
  ASSERT_EQ(json_array_size(json_object_get(m, "notes")), 0);
  ASSERT(json_is_true(json_object_get(m, "outputs_merged")));
  /* pipeline with < outputs (the later step wins) < step with */
  expect_param(m, "IMAGE", "img:2", "output of step test", 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(param(m, "IMAGE"), "output_of")), "test");
  expect_param(m, "build.IMAGE", "img:1", "output of step build", 0);
  expect_param(m, "test.IMAGE", "img:2", "output of step test", 0);
  expect_param(m, "REPORT", "mine", "step", 0);
  ASSERT_NULL(json_object_get(param(m, "REPORT"), "output_of"));
  expect_param(m, "test.REPORT", "line1\nline2", "output of step test", 0);
  expect_param(m, "WHO", "pipe", "pipeline", 0);
  expect_param(m, "GREETING", "hello", "action default", 0);
  /* An output satisfies a required param. */
  expect_param(m, "REQ", "r1", "output of step build", 0);
  ASSERT_NULL(json_object_get(m, "params_error"));
  /* Secrets: an output named like one (qualified too), a secret param's
   * value inside an output, inside another param, inside the step's own
   * outputs and message; the action's secret default inside an output. */
  expect_param(m, "DB_PASSWORD", "******", "output of step build", 1);
  expect_param(m, "build.DB_PASSWORD", "******", "output of step build", 1);
  expect_param(m, "URL", "postgres://u:******@db", "output of step build", 0);
  expect_param(m, "build.URL", "postgres://u:******@db", "output of step build", 0);
  expect_param(m, "NOTE", "used ******", "output of step build", 0);
  expect_param(m, "API_TOKEN", "******", "step", 1);
  expect_param(m, "OPT", "--pw=******", "step", 0);
  const json_t *shown = json_object_get(m, "step");
  const json_t *resp = json_object_get(json_object_get(shown, "status"), "response");
  ASSERT_STR_EQ(json_string_value(json_object_get(resp, "output.MY_TOKEN")), "******");
  ASSERT_STR_EQ(json_string_value(json_object_get(resp, "output.LOG")),
                "to postgres://u:******@db\nok");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(shown, "status"), "message")),
                "sent ******");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(shown, "with"), "OPT")),
                "--pw=******");
  /* What failed or comes later offers nothing. */
  ASSERT_NULL(param(m, "LINT"));
  ASSERT_NULL(param(m, "LATER"));
  char *dump = json_dumps(m, 0);
  const char *leaks[] = {"hunter22", "leaked-pw", "s3cr3t-file", "t0k3n-value", "bad", NULL};
  for (const char **l = leaks; *l; l++)
    if (strstr(dump, *l)) WF_FAIL("describe shows \"%s\": %s", *l, dump);
  free(dump);

  char *t = wf_cli_describe_text(m);
  const char *want[] = {
      "\nParams (action defaults < pipeline with < outputs of earlier steps < step with):\n",
      "   img:2                    output of step test\n",
      "   line1 line2              output of step test\n",
      "   postgres://u:******@db   output of step build\n",
      "    output.MY_TOKEN: '******'\n",
      NULL,
  };
  for (const char **w = want; *w; w++)
    if (!strstr(t, *w)) WF_FAIL("describe text lacks \"%s\":\n%s", *w, t);
  ASSERT(!strstr(t, "hunter22") && !strstr(t, "leaked-pw"));
  free(t);
  json_decref(m);

  /* Over a bound: the node would fail the step; the params are merged
   * without the outputs. */
  wf_cli_offers_t over = {&values, &origins,
                          "the outputs offered by the earlier steps add up to over 1048576 bytes"};
  m = wf_cli_describe(step, action, pipe, &over, "*TOKEN*", 0);
  ASSERT(has_note(m, "add up to over 1048576 bytes: the node would fail this step"));
  expect_param(m, "IMAGE", "from-pipe", "pipeline", 0);
  ASSERT_NULL(param(m, "build.IMAGE"));
  ASSERT_NULL(json_object_get(m, "outputs_merged"));
  ASSERT(strstr(json_string_value(json_object_get(m, "params_error")), "required param REQ"));
  json_decref(m);

  /* Nothing offered (a run of one step): the pipeline's value stands. */
  wf_params_t none;
  wf_params_init(&none);
  wf_cli_offers_t empty = {&none, &none, NULL};
  m = wf_cli_describe(step, action, pipe, &empty, "*TOKEN*", 0);
  expect_param(m, "IMAGE", "from-pipe", "pipeline", 0);
  json_decref(m);

  wf_params_finish(&values);
  wf_params_finish(&origins);
  json_decref(step);
  json_decref(pipe);
  json_decref(action);
}

static void test_describe_bad_step(void) {
  json_t *step = js("{\"key\": \"b\", \"action\": \"a@v1\", \"with\": {\"T\": 5},"
                    " \"status\": {\"status\": \"BOGUS\"}}");
  json_t *m = wf_cli_describe(step, NULL, NULL, NULL, "", 0);
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
  json_t *m = wf_cli_describe(step, action, NULL, NULL, "*TOKEN*", 0);
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
  m = wf_cli_describe(run, action, NULL, NULL, "", 1000 + 65000);
  t = wf_cli_describe_text(m);
  if (!strstr(t, "  ended     -   (running for 1m05s)\n")) WF_FAIL("running:\n%s", t);
  if (!strstr(t, "  created   -\n")) WF_FAIL("no create_at:\n%s", t);
  free(t);
  json_decref(m);
  json_decref(run);
  json_decref(step);
  json_decref(action);
}

static const wf_test_t tests[] = {
    WF_TEST(yaml_shapes), WF_TEST(yaml_round_trip), WF_TEST(yaml_outputs),
    WF_TEST(describe_model), WF_TEST(describe_pipeline), WF_TEST(describe_outputs),
    WF_TEST(describe_bad_step), WF_TEST(describe_text),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
