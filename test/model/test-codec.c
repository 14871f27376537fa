/*
 * test-codec: the descriptor-driven JSON <-> protobuf-c codec.
 *
 * The anchor is the Go original's stored Step (docs/protocol.md
 * appendix A): decoding it and encoding it back in Go mode must give the same
 * bytes.  The rest pins the input leniency (enum case, numeric enums, int64
 * as strings, nulls, unknown keys), the error texts (they name the key
 * path), the encode flags, and the generic type walk on a test-only proto2
 * schema (data/codec-test.proto) that has every field type and label.
 * Everything decoded is freed with wf_codec_free, so ASan's leak check
 * proves decode lays memory out the way free_unpacked expects.
 */
#include <math.h>

#include "wf-test.h"
#include "wf/codec.h"
#include "model/codec-test.pb-c.h"

/* The §1.7 example, compact, in Go's key order. */
static const char ref_step[] =
    "{\"key\":\"ns1.c3r8psea0brhlbg0qdd0.1.1\",\"create_type\":\"PIPELINE\",\"namespace\":\"ns1\","
    "\"pipeline_id\":\"c3r8psea0brhlbg0qdd0\",\"create_at\":1626770673846,"
    "\"update_at\":1626770681002,\"deploy_id\":\"\",\"resource_version\":831402,\"id\":1,"
    "\"name\":\"step1.1\",\"action\":\"go_build@v1\",\"with\":{\"ENV1\":\"env1\",\"ENV2\":\"env2\"},"
    "\"is_parallel\":false,\"ignore_failed\":false,\"with_audit\":false,\"audit_params\":null,"
    "\"with_notify\":false,\"notify_params\":null,\"webhooks\":null,\"node_selector\":null,"
    "\"status\":{\"flow_number\":1,\"start_at\":1626770680990,\"end_at\":0,\"status\":\"RUNNING\","
    "\"scheduled_node\":\"node-01\",\"audit_at\":0,\"audit_response\":\"UOD\",\"audit_message\":\"\","
    "\"notify_at\":0,\"notify_error\":\"\",\"message\":\"\",\"response\":{\"container_id\":\"9f1c...\","
    "\"container_warn\":\"\",\"log_driver\":\"local_file\","
    "\"log_path\":\"runner_log/2021/7/20/ns1.c3r8psea0brhlbg0qdd0.1.1\"}}}";

static char err[256];

static ProtobufCMessage *dec(const ProtobufCMessageDescriptor *d, const char *json) {
  err[0] = 'x';
  ProtobufCMessage *m = wf_codec_decode_bytes(d, json, strlen(json), 0, err, sizeof(err));
  if (!m) WF_FAIL("decode failed: %s\n  input: %s", err, json);
  ASSERT_STR_EQ(err, "");
  return m;
}

static Wf__Step *dec_step(const char *json) {
  return (Wf__Step *)dec(&wf__step__descriptor, json);
}

/* Asserts that json fails to decode as d with exactly `want`. */
static void dec_err(const ProtobufCMessageDescriptor *d, const char *json, const char *want) {
  ProtobufCMessage *m = wf_codec_decode_bytes(d, json, strlen(json), 0, err, sizeof(err));
  if (m) WF_FAIL("decode of %s succeeded, wanted error %s", json, want);
  ASSERT_STR_EQ(err, want);
}

static void enc_eq(const void *msg, unsigned flags, const char *want) {
  char *s = wf_codec_encode_str(msg, flags);
  ASSERT_NOT_NULL(s);
  ASSERT_STR_EQ(s, want);
  free(s);
}

static void test_reference_roundtrip(void) {
  Wf__Step *s = dec_step(ref_step);
  ASSERT_STR_EQ(s->key, "ns1.c3r8psea0brhlbg0qdd0.1.1");
  ASSERT_EQ(s->create_type, WF__STEP__CREATE__BY__PIPELINE);
  ASSERT_EQ(s->create_at, 1626770673846LL);
  ASSERT_EQ(s->resource_version, 831402);
  ASSERT_EQ(s->id, 1);
  ASSERT_EQ(s->n_with, 2);
  ASSERT_STR_EQ(s->with[0]->key, "ENV1");
  ASSERT_STR_EQ(s->with[1]->value, "env2");
  ASSERT_EQ(s->n_webhooks, 0);
  ASSERT_NOT_NULL(s->status);
  ASSERT_EQ(s->status->status, WF__STEP__STATUS__RUNNING);
  ASSERT_STR_EQ(s->status->scheduled_node, "node-01");
  ASSERT_EQ(s->status->n_response, 4);
  ASSERT_EQ(s->status->n_context_map, 0);
  enc_eq(s, WF_CODEC_NULL_EMPTY, ref_step);

  /* Through a json_t too, and the message must pack (binary) cleanly. */
  json_t *j = wf_codec_encode(&s->base, WF_CODEC_NULL_EMPTY);
  ASSERT_NOT_NULL(j);
  Wf__Step *s2 = (Wf__Step *)wf_codec_decode(&wf__step__descriptor, j, 0, err, sizeof(err));
  ASSERT_NOT_NULL(s2);
  json_decref(j);
  ASSERT(protobuf_c_message_check(&s2->base));
  size_t n = protobuf_c_message_get_packed_size(&s2->base);
  uint8_t *buf = malloc(n);
  protobuf_c_message_pack(&s2->base, buf);
  Wf__Step *s3 = wf__step__unpack(NULL, n, buf);
  ASSERT_NOT_NULL(s3);
  enc_eq(s3, WF_CODEC_NULL_EMPTY, ref_step);
  wf__step__free_unpacked(s3, NULL);
  free(buf);
  wf_codec_free(&s2->base);
  wf_codec_free(&s->base);
}

static void test_map_keys_sorted(void) {
  Wf__Step *s = dec_step("{\"with\":{\"b\":\"2\",\"a\":\"1\",\"B\":\"0\",\"\":\"e\"}}");
  enc_eq(s, WF_CODEC_OMIT_EMPTY, "{\"with\":{\"\":\"e\",\"B\":\"0\",\"a\":\"1\",\"b\":\"2\"}}");
  wf_codec_free(&s->base);
}

static void test_enum_any_case(void) {
  Wf__Step *s = dec_step("{\"create_type\":\"user\",\"status\":{\"status\":\"Succeeded\","
                         "\"audit_response\":\"aLLoW\"}}");
  ASSERT_EQ(s->create_type, WF__STEP__CREATE__BY__USER);
  ASSERT_EQ(s->status->status, WF__STEP__STATUS__SUCCEEDED);
  ASSERT_EQ(s->status->audit_response, WF__AUDIT__RESPONSE__ALLOW);
  /* Output is always the declared upper-case name. */
  enc_eq(s->status, WF_CODEC_OMIT_EMPTY, "{\"status\":\"SUCCEEDED\",\"audit_response\":\"ALLOW\"}");
  wf_codec_free(&s->base);

  int v = -1;
  ASSERT_OK(wf_enum_parse(&wf__step__status__descriptor, "schedule_failed", &v));
  ASSERT_EQ(v, 10);
  ASSERT_OK(wf_enum_parse(&wf__step__status__descriptor, "PENDDING", &v));
  ASSERT_EQ(v, 0);
  ASSERT_EQ(wf_enum_parse(&wf__step__status__descriptor, "PENDING", &v), -1);
  ASSERT_EQ(wf_enum_parse(&wf__step__status__descriptor, "", &v), -1);
  ASSERT_EQ(wf_enum_parse(&wf__step__status__descriptor, NULL, &v), -1);
  ASSERT_STR_EQ(wf_enum_name(&wf__step__status__descriptor, 6), "CANCELED");
  ASSERT_STR_EQ(wf_enum_name(&wf__runner__type__descriptor, 1), "K8S");
  ASSERT_NULL(wf_enum_name(&wf__step__status__descriptor, 2));
  ASSERT_NULL(wf_enum_name(&wf__step__status__descriptor, -1));
}

static void test_enum_numbers(void) {
  Wf__Step *s = dec_step("{\"create_type\":2,\"status\":{\"status\":3,\"audit_response\":2.0}}");
  ASSERT_EQ(s->create_type, WF__STEP__CREATE__BY__USER);
  ASSERT_EQ(s->status->status, WF__STEP__STATUS__SUCCEEDED);
  ASSERT_EQ(s->status->audit_response, WF__AUDIT__RESPONSE__DENY);
  wf_codec_free(&s->base);

  /* 2 is a hole in STEP_STATUS. */
  dec_err(&wf__step__descriptor, "{\"status\":{\"status\":2}}", "status.status: unknown STEP_STATUS 2");
  dec_err(&wf__step__descriptor, "{\"status\":{\"status\":-1}}", "status.status: unknown STEP_STATUS -1");
  dec_err(&wf__step__descriptor, "{\"status\":{\"status\":99999999999}}",
          "status.status: unknown STEP_STATUS 99999999999");
  dec_err(&wf__step__descriptor, "{\"status\":{\"status\":1.5}}",
          "status.status: unknown STEP_STATUS 1.5");

  /* STRICT_ENUM: names only, like the Go original. */
  const char *j = "{\"create_type\":1}";
  ASSERT_NULL(wf_codec_decode_bytes(&wf__step__descriptor, j, strlen(j), WF_CODEC_STRICT_ENUM,
                                    err, sizeof(err)));
  ASSERT_STR_EQ(err, "create_type: expected a STEP_CREATE_BY name");
}

static void test_enum_unknown(void) {
  dec_err(&wf__step__descriptor, "{\"status\":{\"status\":\"BOGUS\"}}",
          "status.status: unknown STEP_STATUS \"BOGUS\"");
  dec_err(&wf__step__descriptor, "{\"create_type\":\"\"}", "create_type: unknown STEP_CREATE_BY \"\"");
  dec_err(&wf__step__descriptor, "{\"create_type\":true}",
          "create_type: expected a STEP_CREATE_BY name or number");
  dec_err(&wf__step__descriptor, "{\"webhooks\":[{\"events\":[\"RUNNING\",\"nope\"]}]}",
          "webhooks[0].events[1]: unknown STEP_STATUS \"nope\"");
}

static void test_int64_forms(void) {
  Wf__Step *s = dec_step("{\"create_at\":\"1626770673846\",\"update_at\":1.626770681002e12,"
                         "\"resource_version\":\"-5\",\"id\":\"7\","
                         "\"status\":{\"flow_number\":9223372036854775807,"
                         "\"start_at\":\"-9223372036854775808\"}}");
  ASSERT_EQ(s->create_at, 1626770673846LL);
  ASSERT_EQ(s->update_at, 1626770681002LL);
  ASSERT_EQ(s->resource_version, -5);
  ASSERT_EQ(s->id, 7);
  ASSERT(s->status->flow_number == INT64_MAX);
  ASSERT(s->status->start_at == INT64_MIN);
  /* Output: numbers, never strings. */
  enc_eq(s->status, WF_CODEC_OMIT_EMPTY,
         "{\"flow_number\":9223372036854775807,\"start_at\":-9223372036854775808}");
  wf_codec_free(&s->base);

  dec_err(&wf__step__descriptor, "{\"create_at\":\"12a\"}", "create_at: expected an integer");
  dec_err(&wf__step__descriptor, "{\"create_at\":\"\"}", "create_at: expected an integer");
  dec_err(&wf__step__descriptor, "{\"create_at\":\" 1\"}", "create_at: expected an integer");
  dec_err(&wf__step__descriptor, "{\"create_at\":1.5}", "create_at: expected an integer");
  dec_err(&wf__step__descriptor, "{\"create_at\":true}", "create_at: expected an integer");
  dec_err(&wf__step__descriptor, "{\"create_at\":\"9223372036854775808\"}",
          "create_at: integer out of range");
  dec_err(&wf__step__descriptor, "{\"create_at\":\"99999999999999999999999\"}",
          "create_at: integer out of range");
  dec_err(&wf__step__descriptor, "{\"create_at\":1e300}", "create_at: integer out of range");
  dec_err(&wf__step__descriptor, "{\"id\":2147483648}", "id: integer out of range");
  dec_err(&wf__step__descriptor, "{\"id\":-2147483649}", "id: integer out of range");
  s = dec_step("{\"id\":-2147483648}");
  ASSERT_EQ(s->id, INT32_MIN);
  wf_codec_free(&s->base);
}

static void test_nulls(void) {
  Wf__Step *s = dec_step("{\"key\":null,\"with\":null,\"webhooks\":null,\"status\":null,"
                         "\"create_at\":null,\"is_parallel\":null,\"create_type\":null,"
                         "\"node_selector\":{\"k\":null}}");
  ASSERT_STR_EQ(s->key, "");
  ASSERT_EQ(s->n_with, 0);
  ASSERT_NULL(s->with);
  ASSERT_EQ(s->n_webhooks, 0);
  ASSERT_NULL(s->status);
  ASSERT_EQ(s->create_at, 0);
  ASSERT_EQ(s->is_parallel, 0);
  ASSERT_EQ(s->n_node_selector, 1);
  ASSERT_STR_EQ(s->node_selector[0]->value, "");
  wf_codec_free(&s->base);

  /* Null elements still make elements: "" and an empty message. */
  Wf__Pipeline *p = (Wf__Pipeline *)dec(&wf__pipeline__descriptor,
                                        "{\"stages\":[null,{\"needs\":[null,\"a\"]}]}");
  ASSERT_EQ(p->n_stages, 2);
  ASSERT_NOT_NULL(p->stages[0]);
  ASSERT_EQ(p->stages[0]->n_steps, 0);
  ASSERT_STR_EQ(p->stages[1]->needs[0], "");
  ASSERT_STR_EQ(p->stages[1]->needs[1], "a");
  wf_codec_free(&p->base);
}

static void test_unknown_keys(void) {
  Wf__Step *s = dec_step("{\"bogus\":{\"deep\":[1,{\"x\":null}]},\"name\":\"n\",\"NAME2\":5,"
                         "\"status\":{\"extra\":true,\"status\":\"FAILED\"},\"Action\":\"a@v1\"}");
  ASSERT_STR_EQ(s->name, "n");
  ASSERT_EQ(s->status->status, WF__STEP__STATUS__FAILED);
  /* Go matches keys case-insensitively when there is no exact match. */
  ASSERT_STR_EQ(s->action, "a@v1");
  wf_codec_free(&s->base);

  /* Same field twice (exact and folded): the later key wins, nothing leaks. */
  s = dec_step("{\"name\":\"first\",\"NAME\":\"second\",\"with\":{\"a\":\"1\"},\"With\":{\"b\":\"2\"}}");
  ASSERT_STR_EQ(s->name, "second");
  ASSERT_EQ(s->n_with, 1);
  ASSERT_STR_EQ(s->with[0]->key, "b");
  wf_codec_free(&s->base);
}

static void test_wrong_shape(void) {
  const ProtobufCMessageDescriptor *d = &wf__step__descriptor;
  dec_err(d, "{\"with\":[1]}", "with: expected an object of strings");
  dec_err(d, "{\"with\":{\"a\":1}}", "with: expected an object of strings");
  dec_err(d, "{\"status\":{\"response\":{\"a\":{}}}}", "status.response: expected an object of strings");
  dec_err(d, "{\"status\":\"RUNNING\"}", "status: expected an object");
  dec_err(d, "{\"webhooks\":{}}", "webhooks: expected an array");
  dec_err(d, "{\"webhooks\":[{},{\"url\":5}]}", "webhooks[1].url: expected a string");
  dec_err(d, "{\"webhooks\":[{\"status\":{\"cost\":\"x\"}}]}",
          "webhooks[0].status.cost: expected an integer");
  dec_err(d, "{\"webhooks\":[7]}", "webhooks[0]: expected an object");
  dec_err(d, "{\"is_parallel\":\"true\"}", "is_parallel: expected a boolean");
  dec_err(d, "{\"is_parallel\":1}", "is_parallel: expected a boolean");
  dec_err(d, "{\"name\":[]}", "name: expected a string");
  dec_err(d, "[]", "expected an object");
  dec_err(&wf__pipeline__descriptor, "{\"stages\":[{\"steps\":[{\"status\":{\"status\":\"x\"}}]}]}",
          "stages[0].steps[0].status.status: unknown STEP_STATUS \"x\"");

  ASSERT_NULL(wf_codec_decode_bytes(d, "{\"a\":", 5, 0, err, sizeof(err)));
  ASSERT(strncmp(err, "not JSON: ", 10) == 0);
  ASSERT_NULL(wf_codec_decode_bytes(d, "", 0, 0, err, sizeof(err)));
  ASSERT(strncmp(err, "not JSON: ", 10) == 0);
  ASSERT_NULL(wf_codec_decode(d, NULL, 0, err, sizeof(err)));
  /* err may be absent or tiny. */
  ASSERT_NULL(wf_codec_decode_bytes(d, "[]", 2, 0, NULL, 0));
  char small[5];
  ASSERT_NULL(wf_codec_decode_bytes(d, "{\"name\":1}", 10, 0, small, sizeof(small)));
  ASSERT_STR_EQ(small, "name");
}

static void test_hostile(void) {
  const ProtobufCMessageDescriptor *d = &wf__step__descriptor;
  /* NUL inside a string: jansson refuses it when parsing bytes... */
  const char *nul = "{\"name\":\"a\\u0000b\"}";
  ASSERT_NULL(wf_codec_decode_bytes(d, nul, strlen(nul), 0, err, sizeof(err)));
  ASSERT(strncmp(err, "not JSON: ", 10) == 0);
  /* ...and the codec refuses it in a json_t built by hand. */
  json_t *o = json_object();
  json_object_set_new(o, "name", json_stringn("a\0b", 3));
  ASSERT_NULL(wf_codec_decode(d, o, 0, err, sizeof(err)));
  ASSERT_STR_EQ(err, "name: string contains NUL");
  json_object_clear(o);
  json_t *m = json_object();
  json_object_setn_new(m, "k\0x", 3, json_string("v"));
  json_object_set_new(o, "with", m);
  ASSERT_NULL(wf_codec_decode(d, o, 0, err, sizeof(err)));
  ASSERT_STR_EQ(err, "with: key contains NUL");
  json_object_clear(o);
  /* A key with NUL never matches a field (it is not "name"). */
  json_object_setn_new(o, "name\0x", 6, json_integer(1));
  ProtobufCMessage *ok = wf_codec_decode(d, o, 0, err, sizeof(err));
  ASSERT_NOT_NULL(ok);
  wf_codec_free(ok);
  json_decref(o);

  /* Deep nesting in an ignored key: jansson's own depth limit, no crash. */
  size_t depth = 100000;
  char *deep = malloc(depth * 2 + 16);
  size_t n = 0;
  n += (size_t)sprintf(deep, "{\"x\":");
  for (size_t i = 0; i < depth; i++) deep[n++] = '[';
  for (size_t i = 0; i < depth; i++) deep[n++] = ']';
  deep[n++] = '}';
  ASSERT_NULL(wf_codec_decode_bytes(d, deep, n, 0, err, sizeof(err)));
  ASSERT(strncmp(err, "not JSON: ", 10) == 0);
  free(deep);

  /* A large array is fine. */
  json_t *arr = json_array();
  for (int i = 0; i < 100000; i++) json_array_append_new(arr, json_string("s"));
  o = json_pack("{s:{s:o}}", "mount", "files", json_null());
  json_decref(o);
  o = json_pack("{s:[{s:o}]}", "stages", "needs", arr);
  Wf__Pipeline *p = (Wf__Pipeline *)wf_codec_decode(&wf__pipeline__descriptor, o, 0, err,
                                                   sizeof(err));
  ASSERT_NOT_NULL(p);
  ASSERT_EQ(p->stages[0]->n_needs, 100000);
  wf_codec_free(&p->base);
  json_decref(o);

  /* An error half-way through a big message frees what was built. */
  dec_err(&wf__pipeline__descriptor,
          "{\"with\":{\"a\":\"b\"},\"stages\":[{\"steps\":[{\"with\":{\"x\":\"y\"},\"webhooks\":"
          "[{\"header\":{\"h\":\"v\"},\"events\":[\"RUNNING\",2]}]}]}]}",
          "stages[0].steps[0].webhooks[0].events[1]: unknown STEP_STATUS 2");

  /* Invalid UTF-8 set by code is written as U+FFFD, never as bad JSON. */
  Wf__Step s = WF__STEP__INIT;
  char bad[] = "a\xff" "b\xc3";
  s.name = bad;
  enc_eq(&s, WF_CODEC_OMIT_EMPTY, "{\"name\":\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD\"}");
}

static void test_node_omit_empty(void) {
  Wf__Node nd = WF__NODE__INIT;
  nd.instance_name = "host-1";
  nd.service_name = "workflow";
  nd.type = "node";
  nd.online = 1626770673846LL;
  enc_eq(&nd, WF_CODEC_OMIT_EMPTY,
         "{\"instance_name\":\"host-1\",\"service_name\":\"workflow\",\"type\":\"node\","
         "\"online\":1626770673846}");
  /* Go mode knows every Node field is omitempty. */
  enc_eq(&nd, WF_CODEC_NULL_EMPTY,
         "{\"instance_name\":\"host-1\",\"service_name\":\"workflow\",\"type\":\"node\","
         "\"online\":1626770673846}");
  Wf__Node__TagEntry t = WF__NODE__TAG_ENTRY__INIT, *tp = &t;
  t.key = "zone";
  t.value = "a";
  nd.n_tag = 1;
  nd.tag = &tp;
  nd.resourceversion = 12;
  enc_eq(&nd, WF_CODEC_OMIT_EMPTY,
         "{\"resourceVersion\":12,\"instance_name\":\"host-1\",\"service_name\":\"workflow\","
         "\"type\":\"node\",\"online\":1626770673846,\"tag\":{\"zone\":\"a\"}}");

  Wf__Node *n = (Wf__Node *)dec(&wf__node__descriptor,
                                "{\"resourceVersion\":3,\"instance_name\":\"h\",\"tag\":{}}");
  ASSERT_EQ(n->resourceversion, 3);
  ASSERT_STR_EQ(n->instance_name, "h");
  ASSERT_EQ(n->n_tag, 0);
  wf_codec_free(&n->base);
}

static void test_action_run_params(void) {
  static const char json[] =
      "{\"id\":\"a1\",\"name\":\"build\",\"version\":\"v1\",\"visiable_mode\":\"global\","
      "\"runner_type\":\"LOCAL\",\"runner_params\":{\"CMD\":\"sh,-c,echo hi\"},"
      "\"run_params\":[{\"required\":true,\"key_name\":\"CMD\",\"key_desc\":\"command\"},"
      "{\"key_name\":\"WORKDIR\",\"default_value\":\"/tmp\"}],\"tags\":null}";
  Wf__Action *a = (Wf__Action *)dec(&wf__action__descriptor, json);
  ASSERT_EQ(a->runner_type, WF__RUNNER__TYPE__LOCAL);
  ASSERT_EQ(a->visiable_mode, WF__VISIABLE__MODE__GLOBAL);
  ASSERT_EQ(a->n_runner_params, 1);
  ASSERT_STR_EQ(a->runner_params[0]->value, "sh,-c,echo hi");
  ASSERT_EQ(a->n_run_params, 2);
  ASSERT_EQ(a->run_params[0]->required, 1);
  ASSERT_STR_EQ(a->run_params[0]->key_name, "CMD");
  ASSERT_EQ(a->run_params[1]->required, 0);
  ASSERT_STR_EQ(a->run_params[1]->default_value, "/tmp");
  enc_eq(a, WF_CODEC_OMIT_EMPTY,
         "{\"id\":\"a1\",\"name\":\"build\",\"version\":\"v1\",\"visiable_mode\":\"GLOBAL\","
         "\"runner_type\":\"LOCAL\",\"runner_params\":{\"CMD\":\"sh,-c,echo hi\"},"
         "\"run_params\":[{\"required\":true,\"key_name\":\"CMD\",\"key_desc\":\"command\"},"
         "{\"key_name\":\"WORKDIR\",\"default_value\":\"/tmp\"}]}");
  /* No flags: every key, empty containers as {} and []. */
  char *s = wf_codec_encode_str(&a->base, 0);
  ASSERT_NOT_NULL(strstr(s, "\"tags\":{}"));
  ASSERT_NOT_NULL(strstr(s, "\"logo\":\"\""));
  ASSERT_NOT_NULL(strstr(s, "\"resource_version\":0"));
  free(s);
  wf_codec_free(&a->base);
}

static void test_pipeline_stages(void) {
  static const char json[] =
      "{\"id\":\"p1\",\"namespace\":\"ns1\",\"with\":{\"G\":\"g\"},"
      "\"mount\":{\"root\":\"/w\",\"files\":[{\"name\":\"f\",\"unpack\":true}]},"
      "\"on\":{\"events\":[\"push\"],\"branches\":[\"main\",\"dev\"]},"
      "\"status\":{\"current_flow\":2,\"status\":\"executing\"},"
      "\"stages\":[{\"id\":1,\"name\":\"s1\",\"steps\":[{\"id\":1,\"name\":\"a\",\"action\":\"x@v1\"}]},"
      "{\"id\":2,\"name\":\"s2\",\"needs\":[\"s1\"],\"steps\":[{\"id\":1,\"name\":\"b\",\"action\":\"y@v1\","
      "\"with\":{\"K\":\"V\"}},{\"id\":2,\"name\":\"c\",\"action\":\"z@v1\",\"is_parallel\":true}]}]}";
  Wf__Pipeline *p = (Wf__Pipeline *)dec(&wf__pipeline__descriptor, json);
  ASSERT_EQ(p->n_stages, 2);
  ASSERT_EQ(p->stages[1]->n_steps, 2);
  ASSERT_STR_EQ(p->stages[1]->steps[0]->name, "b");
  ASSERT_STR_EQ(p->stages[1]->steps[0]->with[0]->value, "V");
  ASSERT_EQ(p->stages[1]->steps[1]->is_parallel, 1);
  ASSERT_STR_EQ(p->stages[1]->needs[0], "s1");
  ASSERT_EQ(p->mount->n_files, 1);
  ASSERT_EQ(p->mount->files[0]->unpack, 1);
  ASSERT_EQ(p->on->n_branches, 2);
  ASSERT_EQ(p->status->status, WF__PIPELINE__STATUS__EXECUTING);

  /* Encode, decode again, encode again: a fixed point in every mode. */
  unsigned modes[] = {0, WF_CODEC_OMIT_EMPTY, WF_CODEC_NULL_EMPTY};
  for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
    char *a = wf_codec_encode_str(&p->base, modes[i]);
    ProtobufCMessage *q = dec(&wf__pipeline__descriptor, a);
    char *b = wf_codec_encode_str(q, modes[i]);
    ASSERT_STR_EQ(a, b);
    free(a);
    free(b);
    wf_codec_free(q);
  }
  enc_eq(p->stages[0], WF_CODEC_NULL_EMPTY,
         "{\"id\":1,\"name\":\"s1\",\"needs\":null,\"steps\":[{\"create_type\":\"PIPELINE\","
         "\"namespace\":\"\",\"create_at\":0,\"update_at\":0,\"deploy_id\":\"\",\"id\":1,\"name\":\"a\","
         "\"action\":\"x@v1\",\"with\":null,\"is_parallel\":false,\"ignore_failed\":false,"
         "\"with_audit\":false,\"audit_params\":null,\"with_notify\":false,\"notify_params\":null,"
         "\"webhooks\":null,\"node_selector\":null}]}");
  wf_codec_free(&p->base);
}

static void test_encode_empty(void) {
  Wf__Step s = WF__STEP__INIT;
  enc_eq(&s, WF_CODEC_OMIT_EMPTY, "{}");
  enc_eq(&s, WF_CODEC_NULL_EMPTY,
         "{\"create_type\":\"PIPELINE\",\"namespace\":\"\",\"create_at\":0,\"update_at\":0,"
         "\"deploy_id\":\"\",\"id\":0,\"name\":\"\",\"action\":\"\",\"with\":null,\"is_parallel\":false,"
         "\"ignore_failed\":false,\"with_audit\":false,\"audit_params\":null,\"with_notify\":false,"
         "\"notify_params\":null,\"webhooks\":null,\"node_selector\":null}");
  enc_eq(&s, 0,
         "{\"key\":\"\",\"create_type\":\"PIPELINE\",\"namespace\":\"\",\"pipeline_id\":\"\","
         "\"create_at\":0,\"update_at\":0,\"deploy_id\":\"\",\"resource_version\":0,\"id\":0,"
         "\"name\":\"\",\"action\":\"\",\"with\":{},\"is_parallel\":false,\"ignore_failed\":false,"
         "\"with_audit\":false,\"audit_params\":{},\"with_notify\":false,\"notify_params\":{},"
         "\"webhooks\":[],\"node_selector\":{},\"status\":null}");
  /* An empty but present sub-message is written (Go: non-nil pointer). */
  Wf__StepStatus st = WF__STEP_STATUS__INIT;
  s.status = &st;
  enc_eq(&s, WF_CODEC_OMIT_EMPTY, "{\"status\":{}}");
  Wf__MountData md = WF__MOUNT_DATA__INIT;
  enc_eq(&md, 0, "{\"root\":\"\",\"files\":[]}");
  ASSERT_NULL(wf_codec_encode(NULL, 0));
  ASSERT_NULL(wf_codec_encode_str(NULL, 0));
  wf_codec_free(NULL);

  /* Decoding {} gives the proto3 defaults, freeable as is. */
  Wf__Step *d = dec_step("{}");
  ASSERT_STR_EQ(d->key, "");
  ASSERT_NULL(d->status);
  enc_eq(d, WF_CODEC_OMIT_EMPTY, "{}");
  wf_codec_free(&d->base);
}

/* ---- the generic walk, on data/codec-test.proto ------------------------------- */

static void test_all_types(void) {
  static const char json[] =
      "{\"i32\":-5,\"s32\":-6,\"sf32\":-7,\"u32\":4294967295,\"f32\":\"8\",\"i64\":\"-9\","
      "\"s64\":-10,\"sf64\":-11,\"u64\":\"18446744073709551615\",\"f64\":12,"
      "\"fl\":1.5,\"db\":\"-Infinity\",\"b\":true,\"color\":\"blue\",\"str\":\"s\","
      "\"by\":\"aGVsbG8=\",\"child\":{\"i32\":1,\"child\":{\"str\":\"deep\"}},"
      "\"ri32\":[1,-2,\"3\"],\"ru64\":[0,\"18446744073709551615\"],\"rb\":[true,false,null],"
      "\"rcolor\":[\"RED\",5,\"green\"],\"rstr\":[\"a\",null,\"\"],\"rby\":[\"\",\"AA==\"],"
      "\"rchild\":[{},null,{\"u32\":1,\"rchild\":[{}]}],\"imap\":{\"-3\":\"m3\",\"10\":\"ten\",\"2\":\"two\"},"
      "\"mmap\":{\"x\":{\"i32\":1},\"n\":null},\"bmap\":{\"true\":\"1\",\"false\":0},"
      "\"o_int\":4,\"rdb\":[0.25,\"NaN\",1024.5]}";
  Wftest__Types *t = (Wftest__Types *)dec(&wftest__types__descriptor, json);
  ASSERT(t->has_i32 && t->i32 == -5);
  ASSERT(t->has_s32 && t->s32 == -6);
  ASSERT(t->has_sf32 && t->sf32 == -7);
  ASSERT(t->has_u32 && t->u32 == UINT32_MAX);
  ASSERT(t->has_f32 && t->f32 == 8);
  ASSERT(t->has_i64 && t->i64 == -9);
  ASSERT(t->has_s64 && t->s64 == -10);
  ASSERT(t->has_sf64 && t->sf64 == -11);
  ASSERT(t->has_u64 && t->u64 == UINT64_MAX);
  ASSERT(t->has_f64 && t->f64 == 12);
  ASSERT(t->has_fl && t->fl == 1.5f);
  ASSERT(t->has_db && isinf(t->db) && t->db < 0);
  ASSERT(t->has_b && t->b);
  ASSERT(t->has_color && t->color == WFTEST__COLOR__BLUE);
  ASSERT_STR_EQ(t->str, "s");
  ASSERT(t->has_by && t->by.len == 5 && memcmp(t->by.data, "hello", 5) == 0);
  ASSERT_STR_EQ(t->child->child->str, "deep");
  ASSERT_EQ(t->n_ri32, 3);
  ASSERT_EQ(t->ri32[2], 3);
  ASSERT(t->ru64[1] == UINT64_MAX);
  ASSERT_EQ(t->n_rb, 3);
  ASSERT_EQ(t->rb[2], 0);
  ASSERT_EQ(t->rcolor[2], WFTEST__COLOR__GREEN);
  ASSERT_STR_EQ(t->rstr[1], "");
  ASSERT_EQ(t->rby[0].len, 0);
  ASSERT(t->rby[1].len == 1 && t->rby[1].data[0] == 0);
  ASSERT_NOT_NULL(t->rchild[1]);
  ASSERT_EQ(t->n_imap, 3);
  ASSERT_EQ(t->n_mmap, 2);
  ASSERT_EQ(t->n_bmap, 2);
  ASSERT_EQ(t->choice_case, WFTEST__TYPES__CHOICE_O_INT);
  ASSERT_EQ(t->o_int, 4);
  ASSERT(isnan(t->rdb[1]));
  ASSERT_NULL(t->plain);
  ASSERT(protobuf_c_message_check(&t->base));

  /* Map keys sort as strings, as Go sorts map keys after formatting them.
   * Absent proto2 optionals are left out; unset oneof members too. */
  static const char want[] =
      "{\"i32\":-5,\"s32\":-6,\"sf32\":-7,\"u32\":4294967295,\"f32\":8,\"i64\":-9,\"s64\":-10,\"sf64\":-11,"
      "\"u64\":\"18446744073709551615\",\"f64\":12,\"fl\":1.5,\"db\":\"-Infinity\",\"b\":true,"
      "\"color\":\"BLUE\",\"str\":\"s\",\"by\":\"aGVsbG8=\",\"child\":{\"i32\":1,\"str\":\"dflt\","
      "\"child\":{\"str\":\"deep\"}},\"ri32\":[1,-2,3],\"ru64\":[0,\"18446744073709551615\"],\"rb\":[true,"
      "false,false],\"rcolor\":[\"RED\",\"BLUE\",\"GREEN\"],\"rstr\":[\"a\",\"\",\"\"],\"rby\":[\"\",\"AA==\"],"
      "\"rchild\":[{\"str\":\"dflt\"},{\"str\":\"dflt\"},{\"u32\":1,\"str\":\"dflt\","
      "\"rchild\":[{\"str\":\"dflt\"}]}],\"imap\":{\"-3\":\"m3\",\"10\":\"ten\",\"2\":\"two\"},\"mmap\":{\"n\":null,"
      "\"x\":{\"i32\":1,\"str\":\"dflt\"}},\"bmap\":{\"false\":0,\"true\":1},\"o_int\":4,\"rdb\":[0.25,\"NaN\","
      "1024.5]}";
  char *s = wf_codec_encode_str(&t->base, WF_CODEC_OMIT_EMPTY);
  ASSERT_STR_EQ(s, want);
  free(s);
  /* No flags: absent optionals are null, empty containers {} / []. */
  s = wf_codec_encode_str(&t->child->child->base, 0);
  ASSERT_STR_EQ(s, "{\"i32\":null,\"s32\":null,\"sf32\":null,\"u32\":null,\"f32\":null,\"i64\":null,"
                     "\"s64\":null,\"sf64\":null,\"u64\":null,\"f64\":null,\"fl\":null,\"db\":null,\"b\":null,"
                     "\"color\":null,\"str\":\"deep\",\"by\":null,\"child\":null,\"ri32\":[],\"ru64\":[],"
                     "\"rb\":[],\"rcolor\":[],\"rstr\":[],\"rby\":[],\"rchild\":[],\"imap\":{},\"mmap\":{},"
                     "\"bmap\":{},\"rdb\":[],\"plain\":null}");
  free(s);

  /* Binary round trip: the decoded layout is what protobuf-c expects. */
  size_t n = protobuf_c_message_get_packed_size(&t->base);
  uint8_t *buf = malloc(n);
  protobuf_c_message_pack(&t->base, buf);
  Wftest__Types *u = wftest__types__unpack(NULL, n, buf);
  ASSERT_NOT_NULL(u);
  char *a = wf_codec_encode_str(&t->base, WF_CODEC_OMIT_EMPTY);
  char *b = wf_codec_encode_str(&u->base, WF_CODEC_OMIT_EMPTY);
  ASSERT_STR_EQ(a, b);
  free(a);
  free(b);
  wftest__types__free_unpacked(u, NULL);
  free(buf);
  wf_codec_free(&t->base);
}

static void test_oneof_and_defaults(void) {
  /* Later oneof member replaces the earlier one (and frees it). */
  Wftest__Types *t = (Wftest__Types *)dec(&wftest__types__descriptor,
                                          "{\"o_msg\":{\"str\":\"x\"},\"o_str\":\"later\"}");
  ASSERT_EQ(t->choice_case, WFTEST__TYPES__CHOICE_O_STR);
  ASSERT_STR_EQ(t->o_str, "later");
  enc_eq(t, WF_CODEC_OMIT_EMPTY, "{\"str\":\"dflt\",\"o_str\":\"later\"}");
  wf_codec_free(&t->base);
  t = (Wftest__Types *)dec(&wftest__types__descriptor, "{\"o_str\":\"x\",\"o_msg\":{}}");
  ASSERT_EQ(t->choice_case, WFTEST__TYPES__CHOICE_O_MSG);
  enc_eq(t, WF_CODEC_OMIT_EMPTY, "{\"str\":\"dflt\",\"o_msg\":{\"str\":\"dflt\"}}");
  wf_codec_free(&t->base);
  /* null on a proto2 field: unset, back to its default. */
  t = (Wftest__Types *)dec(&wftest__types__descriptor,
                           "{\"color\":null,\"str\":null,\"i32\":0,\"o_str\":null}");
  ASSERT(!t->has_color && t->color == WFTEST__COLOR__GREEN);
  ASSERT_STR_EQ(t->str, "dflt");
  ASSERT(t->has_i32 && t->i32 == 0);
  ASSERT_EQ(t->choice_case, WFTEST__TYPES__CHOICE__NOT_SET);
  /* Explicitly set zero survives OMIT_EMPTY: it has presence. */
  enc_eq(t, WF_CODEC_OMIT_EMPTY, "{\"i32\":0,\"str\":\"dflt\"}");
  wf_codec_free(&t->base);
}

static void test_type_errors(void) {
  const ProtobufCMessageDescriptor *d = &wftest__types__descriptor;
  dec_err(d, "{\"u32\":-1}", "u32: integer out of range");
  dec_err(d, "{\"u32\":4294967296}", "u32: integer out of range");
  dec_err(d, "{\"u64\":\"-1\"}", "u64: integer out of range");
  dec_err(d, "{\"u64\":\"18446744073709551616\"}", "u64: integer out of range");
  dec_err(d, "{\"fl\":1e300}", "fl: number out of range");
  dec_err(d, "{\"db\":\"1x\"}", "db: expected a number");
  dec_err(d, "{\"db\":true}", "db: expected a number");
  dec_err(d, "{\"by\":\"!!!\"}", "by: expected a base64 string");
  dec_err(d, "{\"by\":5}", "by: expected a base64 string");
  dec_err(d, "{\"imap\":{\"x\":\"y\"}}", "imap.x: expected an integer");
  dec_err(d, "{\"imap\":{\"1\":2}}", "imap: expected an object of strings");
  dec_err(d, "{\"bmap\":{\"yes\":1}}", "bmap.yes: expected a boolean");
  dec_err(d, "{\"mmap\":{\"k\":{\"i32\":\"q\"}}}", "mmap.k.i32: expected an integer");
  dec_err(d, "{\"mmap\":[]}", "mmap: expected an object");
  dec_err(d, "{\"rchild\":[{},{\"rchild\":[{\"rcolor\":[\"PINK\"]}]}]}",
          "rchild[1].rchild[0].rcolor[0]: unknown Color \"PINK\"");

  /* Depth: a hand-built json_t can nest past jansson's parser limit. */
  json_t *root = json_object(), *cur = root;
  for (int i = 0; i < WF_CODEC_MAX_DEPTH + 5; i++) {
    json_t *c = json_object();
    json_object_set_new(cur, "child", c);
    cur = c;
  }
  char big[1024];  /* the path (cut at 255 bytes) comes first */
  ASSERT_NULL(wf_codec_decode(d, root, 0, big, sizeof(big)));
  if (!strstr(big, ": nested too deeply")) WF_FAIL("err: %s", big);
  ASSERT(strncmp(big, "child.child.child", 17) == 0);
  json_decref(root);

  /* Encode refuses a message nested past the limit instead of recursing on. */
  Wftest__Types nodes[WF_CODEC_MAX_DEPTH + 1];
  for (int i = 0; i <= WF_CODEC_MAX_DEPTH; i++) {
    Wftest__Types init = WFTEST__TYPES__INIT;
    nodes[i] = init;
    if (i) nodes[i - 1].child = &nodes[i];
  }
  ASSERT_NULL(wf_codec_encode(&nodes[0].base, 0));
}

static const wf_test_t tests[] = {
    WF_TEST(reference_roundtrip), WF_TEST(map_keys_sorted), WF_TEST(enum_any_case),
    WF_TEST(enum_numbers), WF_TEST(enum_unknown), WF_TEST(int64_forms), WF_TEST(nulls),
    WF_TEST(unknown_keys), WF_TEST(wrong_shape), WF_TEST(hostile), WF_TEST(node_omit_empty),
    WF_TEST(action_run_params), WF_TEST(pipeline_stages), WF_TEST(encode_empty),
    WF_TEST(all_types), WF_TEST(oneof_and_defaults), WF_TEST(type_errors),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
