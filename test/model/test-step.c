/* Step helpers: head extraction, status patch keeps foreign keys, param merge. */
#include <jansson.h>

#include "wf-test.h"
#include "wf/model.h"
#include "wf/util.h"

static const char *stored =
    "{\"key\":\"k1\",\"create_type\":\"USER\",\"x_unknown\":{\"a\":[1,2]},"
    "\"with\":{\"A\":\"step\"},\"action\":\"a@v1\","
    "\"status\":{\"status\":\"pendding\",\"scheduled_node\":\"n1\",\"response\":null,"
    "\"audit_response\":\"UOD\"}}";

static void test_head(void) {
  json_t *o = json_loads(stored, 0, NULL);
  wf_step_head_t h;
  wf_step_head(o, &h);
  ASSERT_STR_EQ(h.node, "n1");
  ASSERT_EQ(h.status, WF__STEP__STATUS__PENDDING);
  json_object_set_new(json_object_get(o, "status"), "status", json_integer(5));
  wf_step_head(o, &h);
  ASSERT_EQ(h.status, WF__STEP__STATUS__CANCELING);
  json_object_set_new(json_object_get(o, "status"), "status", json_string("BOGUS"));
  wf_step_head(o, &h);
  ASSERT_EQ(h.status, -1);
  json_object_set_new(json_object_get(o, "status"), "status", json_integer(2)); /* undefined */
  wf_step_head(o, &h);
  ASSERT_EQ(h.status, -1);
  json_decref(o);
}

static void test_patch(void) {
  json_t *o = json_loads(stored, 0, NULL);
  wf_kv_t resp[] = {{"log_driver", "local_file"}, {"exit_code", "0"}};
  wf_step_patch_t p = {.status = WF__STEP__STATUS__SUCCEEDED, .set_end_at = 1, .end_at = 42,
                       .set_message = 1, .message = "", .response = resp, .nresponse = 2,
                       .update_at = 43};
  ASSERT_OK(wf_step_apply_patch(o, &p));
  char *s = json_dumps(o, JSON_COMPACT);
  ASSERT_STR_EQ(s,
                "{\"key\":\"k1\",\"create_type\":\"USER\",\"x_unknown\":{\"a\":[1,2]},"
                "\"with\":{\"A\":\"step\"},\"action\":\"a@v1\","
                "\"status\":{\"status\":\"SUCCEEDED\",\"scheduled_node\":\"n1\","
                "\"response\":{\"log_driver\":\"local_file\",\"exit_code\":\"0\"},"
                "\"audit_response\":\"UOD\",\"end_at\":42,\"message\":\"\"},\"update_at\":43}");
  free(s);
  json_decref(o);
  json_t *arr = json_array();
  ASSERT_EQ(wf_step_apply_patch(arr, &p), -1);
  json_decref(arr);

  /* Keys that differ only in case are one field to the codec (and to Go),
   * the later winning: the patch leaves only the key it writes. */
  o = json_loads("{\"status\":{\"status\":\"RUNNING\",\"Status\":\"PENDDING\","
                 "\"scheduled_node\":\"n1\"},\"STATUS\":{\"status\":\"FAILED\"},"
                 "\"Update_At\":1}", 0, NULL);
  ASSERT_NOT_NULL(o);
  ASSERT_OK(wf_step_apply_patch(o, &p));
  s = json_dumps(o, JSON_COMPACT);
  ASSERT_STR_EQ(s, "{\"status\":{\"status\":\"SUCCEEDED\",\"scheduled_node\":\"n1\","
                   "\"end_at\":42,\"message\":\"\",\"response\":{\"log_driver\":"
                   "\"local_file\",\"exit_code\":\"0\"}},\"update_at\":43}");
  Wf__Step *st = (Wf__Step *)wf_codec_decode(&wf__step__descriptor, o, 0, NULL, 0);
  ASSERT_NOT_NULL(st);
  ASSERT_EQ(st->status->status, WF__STEP__STATUS__SUCCEEDED);
  wf_codec_free(&st->base);
  free(s);
  json_decref(o);
}

static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *d, const char *s) {
  char err[256];
  ProtobufCMessage *m = wf_codec_decode_bytes(d, s, strlen(s), 0, err, sizeof err);
  if (!m) WF_FAIL("decode: %s", err);
  return m;
}

static void test_merge(void) {
  Wf__Action *a = (Wf__Action *)decode(
      &wf__action__descriptor,
      "{\"name\":\"a\",\"version\":\"v1\",\"run_params\":["
      "{\"key_name\":\"A\",\"default_value\":\"action\"},"
      "{\"key_name\":\"B\",\"default_value\":\"action\"},"
      "{\"key_name\":\"C\",\"default_value\":\"action\"},"
      "{\"key_name\":\"R1\",\"required\":true},{\"key_name\":\"R2\",\"required\":true}]}");
  ASSERT_NOT_NULL(a);
  const char *ps = "{\"with\":{\"A\":\"pipe\",\"B\":\"pipe\"}}";
  Wf__Pipeline *p =
      (Wf__Pipeline *)decode(&wf__pipeline__descriptor, ps);
  ASSERT_NOT_NULL(p);
  const char *ss = "{\"with\":{\"A\":\"step\",\"R1\":\"x\"}}";
  Wf__Step *s = (Wf__Step *)decode(&wf__step__descriptor, ss);
  ASSERT_NOT_NULL(s);

  wf_params_t out;
  wf_params_init(&out);
  char *err = NULL;
  ASSERT_EQ(wf_params_merge(a, p, NULL, s, &out, &err), -1);
  ASSERT_STR_EQ(err, "validate run params error, required param R2");
  free(err);
  ASSERT_STR_EQ(wf_params_get(&out, "A"), "step");
  ASSERT_STR_EQ(wf_params_get(&out, "B"), "pipe");
  ASSERT_STR_EQ(wf_params_get(&out, "C"), "action");
  wf_params_finish(&out);

  /* Both missing: both named. */
  const char *s2 = "{\"with\":{\"bad-name\":\"v\"}}";
  Wf__Step *st2 = (Wf__Step *)decode(&wf__step__descriptor, s2);
  wf_params_init(&out);
  ASSERT_EQ(wf_params_merge(a, NULL, NULL, st2, &out, &err), -1);
  ASSERT_STR_EQ(err, "validate run params error, required param R1,required param R2");
  free(err);
  wf_params_finish(&out);
  wf_codec_free((ProtobufCMessage *)st2);

  /* All present, but a key is not an environment name. */
  const char *s3 = "{\"with\":{\"R1\":\"1\",\"R2\":\"2\",\"bad-name\":\"v\"}}";
  Wf__Step *st3 = (Wf__Step *)decode(&wf__step__descriptor, s3);
  wf_params_init(&out);
  ASSERT_EQ(wf_params_merge(a, NULL, NULL, st3, &out, &err), -1);
  ASSERT(strstr(err, "bad-name") != NULL);
  free(err);
  wf_params_finish(&out);
  wf_codec_free((ProtobufCMessage *)st3);

  wf_codec_free((ProtobufCMessage *)a);
  wf_codec_free((ProtobufCMessage *)p);
  wf_codec_free((ProtobufCMessage *)s);
}

static void test_ref(void) {
  char *n, *v;
  wf_action_ref_split("go_build@v1", &n, &v);
  ASSERT_STR_EQ(n, "go_build");
  ASSERT_STR_EQ(v, "v1");
  free(n);
  free(v);
  wf_action_ref_split("x", &n, &v);
  ASSERT_STR_EQ(n, "x");
  ASSERT_STR_EQ(v, "");
  free(n);
  free(v);
  wf_action_ref_split("a@b@c", &n, &v);
  ASSERT_STR_EQ(n, "a");
  ASSERT_STR_EQ(v, "b");
  free(n);
  free(v);
}

static const wf_test_t tests[] = {
    WF_TEST(head), WF_TEST(patch), WF_TEST(merge), WF_TEST(ref),
};

int main(int argc, char **argv) {
  int rc = WF_TEST_MAIN(argc, argv, tests);
  return rc;
}
