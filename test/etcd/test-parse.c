/*
 * test-parse: the pure half of the etcd client (src/etcd/parse.c,
 * parse-request.c, parse-stream.c) against the bytes docs/peers.md §1
 * recorded from etcd 3.4's gateway: base64 and int64-as-string edge cases,
 * omitted defaults, error bodies, the watch stream split at every chunk
 * boundary, fragments and the resume position; and the fast path on the
 * JSON scanner (model/jscan.c) against jansson on every cut and one-byte
 * change of sample answers.
 */
#include "src/etcd/etcd-internal.h"
#include "wf-test.h"

static void test_i64(void) {
  int64_t v;
  json_t *j;
#define I64_OK(txt, want)                           \
  j = json_loads(txt, JSON_DECODE_ANY, NULL);       \
  ASSERT_NOT_NULL(j);                               \
  ASSERT_OK(wf__etcd_i64(j, &v));                   \
  ASSERT(v == (int64_t)(want));                     \
  json_decref(j)
#define I64_BAD(txt)                                \
  j = json_loads(txt, JSON_DECODE_ANY, NULL);       \
  ASSERT_NOT_NULL(j);                               \
  ASSERT_EQ(wf__etcd_i64(j, &v), WF_EPROTO);        \
  json_decref(j)
  I64_OK("\"6\"", 6);
  I64_OK("\"0\"", 0);
  I64_OK("\"-1\"", -1);
  I64_OK("\"2324035650796077351\"", 2324035650796077351LL);
  I64_OK("\"9223372036854775807\"", INT64_MAX);
  I64_OK("\"-9223372036854775808\"", INT64_MIN);
  I64_OK("12345", 12345);
  I64_OK("null", 0);
  I64_BAD("\"9223372036854775808\"");
  I64_BAD("\"18251165009791698893\"");  /* a member_id: uint64, not ours */
  I64_BAD("\"\"");
  I64_BAD("\"-\"");
  I64_BAD("\"12a\"");
  I64_BAD("\" 1\"");
  I64_BAD("true");
  I64_BAD("1.5");
  ASSERT_OK(wf__etcd_i64(NULL, &v));  /* absent = default 0 */
  ASSERT_EQ(v, 0);
}

static void test_kv(void) {
  wf_etcd_kv_t kv;
  json_t *j = json_loads("{\"key\":\"L25vZGVzL2E=\",\"create_revision\":\"4\",\"mod_revision\":"
                         "\"6\",\"version\":\"2\",\"value\":\"aGVsbG8=\",\"lease\":\"12345\"}",
                         0, NULL);
  ASSERT_OK(wf__etcd_kv_parse(j, &kv));
  ASSERT_STR_EQ(kv.key, "/nodes/a");
  ASSERT_EQ(kv.key_len, 8);
  ASSERT_STR_EQ(kv.value, "hello");
  ASSERT_EQ(kv.value_len, 5);
  ASSERT_EQ(kv.create_revision, 4);
  ASSERT_EQ(kv.mod_revision, 6);
  ASSERT_EQ(kv.version, 2);
  ASSERT_EQ(kv.lease, 12345);
  wf_etcd_kv_t cp;
  wf__etcd_kv_copy(&cp, &kv);
  ASSERT_STR_EQ(cp.key, "/nodes/a");
  ASSERT(cp.key != kv.key);
  wf__etcd_kv_clear(&cp);
  wf__etcd_kv_clear(&kv);
  json_decref(j);

  /* A DELETE event's kv: key and mod_revision only; empty value omitted. */
  j = json_loads("{\"key\":\"L3cvb25l\",\"mod_revision\":\"12\"}", 0, NULL);
  ASSERT_OK(wf__etcd_kv_parse(j, &kv));
  ASSERT_STR_EQ(kv.key, "/w/one");
  ASSERT_STR_EQ(kv.value, "");
  ASSERT_EQ(kv.value_len, 0);
  ASSERT_EQ(kv.create_revision, 0);
  ASSERT_EQ(kv.mod_revision, 12);
  wf__etcd_kv_clear(&kv);
  json_decref(j);

  /* Binary values with NULs and every padding length. */
  static const struct { const char *b64; const char *raw; size_t n; } cases[] = {
      {"", "", 0},         {"AA==", "\0", 1},     {"AAA=", "\0\0", 2},
      {"AAAA", "\0\0\0", 3}, {"/w==", "\xff", 1}, {"YQBi", "a\0b", 3},
      {"+/+/", "\xfb\xff\xbf", 3},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *o = json_pack("{s:s,s:s}", "key", "a2V5", "value", cases[i].b64);
    ASSERT_OK(wf__etcd_kv_parse(o, &kv));
    ASSERT_EQ(kv.value_len, cases[i].n);
    ASSERT(memcmp(kv.value, cases[i].raw, cases[i].n) == 0);
    ASSERT_EQ(kv.value[kv.value_len], '\0');
    wf__etcd_kv_clear(&kv);
    json_decref(o);
  }
  static const char *bad[] = {"notbase64!!", "A", "AAAAA", "a-b_"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *o = json_pack("{s:s,s:s}", "key", "a2V5", "value", bad[i]);
    ASSERT_EQ(wf__etcd_kv_parse(o, &kv), WF_EPROTO);
    wf__etcd_kv_clear(&kv);
    json_decref(o);
  }
  j = json_loads("{\"key\":5}", 0, NULL);
  ASSERT_EQ(wf__etcd_kv_parse(j, &kv), WF_EPROTO);
  wf__etcd_kv_clear(&kv);
  json_decref(j);
  j = json_loads("{\"key\":\"a2V5\",\"version\":\"x\"}", 0, NULL);
  ASSERT_EQ(wf__etcd_kv_parse(j, &kv), WF_EPROTO);
  wf__etcd_kv_clear(&kv);
  json_decref(j);
}

#define HDR "\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":" \
            "\"18251165009791698893\",\"revision\":\"6\",\"raft_term\":\"2\"}"

static int parse(enum wf__etcd_op op, const char *body, wf__etcd_resp_t *r) {
  char msg[256];
  return wf__etcd_resp_parse(op, body, strlen(body), r, msg, sizeof msg);
}

static void test_responses(void) {
  wf__etcd_resp_t r;
  ASSERT_OK(parse(WF__ETCD_RANGE,
                  "{" HDR ",\"kvs\":[{\"key\":\"L25vZGVzL2E=\",\"create_revision\":\"4\","
                  "\"mod_revision\":\"4\",\"version\":\"1\",\"value\":\"aGVsbG8=\"},{\"key\":"
                  "\"L25vZGVzL2I=\",\"create_revision\":\"5\",\"mod_revision\":\"6\",\"version\":"
                  "\"2\",\"value\":\"d29ybGQy\"}],\"more\":true,\"count\":\"2\"}",
                  &r));
  ASSERT_EQ(r.revision, 6);
  ASSERT_EQ(r.nkvs, 2);
  ASSERT_STR_EQ(r.kvs[1].key, "/nodes/b");
  ASSERT_STR_EQ(r.kvs[1].value, "world2");
  ASSERT_EQ(r.more, 1);
  ASSERT_EQ(r.count, 2);
  wf__etcd_resp_clear(&r);
  /* Missing key / count_only: no kvs, no count, no more. */
  ASSERT_OK(parse(WF__ETCD_RANGE, "{" HDR "}", &r));
  ASSERT_EQ(r.nkvs, 0);
  ASSERT_NULL(r.kvs);
  ASSERT_EQ(r.count, 0);
  ASSERT_EQ(r.more, 0);
  wf__etcd_resp_clear(&r);
  ASSERT_OK(parse(WF__ETCD_RANGE, "{" HDR ",\"count\":\"2\"}", &r));
  ASSERT_EQ(r.count, 2);
  wf__etcd_resp_clear(&r);
  ASSERT_EQ(parse(WF__ETCD_RANGE, "{" HDR ",\"kvs\":[{\"key\":\"!!\"}]}", &r), WF_EPROTO);
  ASSERT_NULL(r.kvs);
  ASSERT_EQ(parse(WF__ETCD_RANGE, "[1]", &r), WF_EPROTO);
  ASSERT_EQ(parse(WF__ETCD_RANGE, "{\"header\":", &r), WF_EPROTO);
  ASSERT_EQ(parse(WF__ETCD_RANGE, "{\"header\":{\"revision\":\"x\"}}", &r), WF_EPROTO);

  ASSERT_OK(parse(WF__ETCD_PUT, "{" HDR "}", &r));
  ASSERT_EQ(r.revision, 6);

  /* txn: success, failure with the current kv, failure on an absent key. */
  ASSERT_OK(parse(WF__ETCD_TXN, "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":"
                                "{\"header\":{\"revision\":\"8\"}}}]}", &r));
  ASSERT_EQ(r.succeeded, 1);
  ASSERT_EQ(r.nkvs, 0);
  wf__etcd_resp_clear(&r);
  ASSERT_OK(parse(WF__ETCD_TXN,
                  "{" HDR ",\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"8\"},"
                  "\"kvs\":[{\"key\":\"L2xvY2s=\",\"create_revision\":\"8\",\"mod_revision\":\"8\","
                  "\"version\":\"1\",\"value\":\"bWU=\"}],\"count\":\"1\"}}]}",
                  &r));
  ASSERT_EQ(r.succeeded, 0);
  ASSERT_EQ(r.nkvs, 1);
  ASSERT_STR_EQ(r.kvs[0].key, "/lock");
  ASSERT_STR_EQ(r.kvs[0].value, "me");
  ASSERT_EQ(r.kvs[0].mod_revision, 8);
  wf__etcd_resp_clear(&r);
  ASSERT_OK(parse(WF__ETCD_TXN, "{" HDR ",\"responses\":[{\"response_range\":{\"header\":"
                                "{\"revision\":\"8\"}}}]}", &r));
  ASSERT_EQ(r.succeeded, 0);
  ASSERT_EQ(r.nkvs, 0);
  wf__etcd_resp_clear(&r);

  ASSERT_OK(parse(WF__ETCD_DELETE, "{" HDR ",\"deleted\":\"1\",\"prev_kvs\":[]}", &r));
  ASSERT_EQ(r.deleted, 1);
  ASSERT_OK(parse(WF__ETCD_DELETE, "{" HDR "}", &r));
  ASSERT_EQ(r.deleted, 0);

  ASSERT_OK(parse(WF__ETCD_GRANT, "{" HDR ",\"ID\":\"2324035650796077349\",\"TTL\":\"5\"}", &r));
  ASSERT(r.id == 2324035650796077349LL);
  ASSERT_EQ(r.ttl, 5);
  /* keepalive: a stream, wrapped in result, blank lines after it. */
  ASSERT_OK(parse(WF__ETCD_KEEPALIVE,
                  "{\"result\":{" HDR ",\"ID\":\"2324035650796077351\",\"TTL\":\"5\"}}\n\n", &r));
  ASSERT(r.id == 2324035650796077351LL);
  ASSERT_EQ(r.ttl, 5);
  /* Unknown or expired lease: TTL omitted = gone. */
  ASSERT_OK(parse(WF__ETCD_KEEPALIVE, "{\"result\":{" HDR ",\"ID\":\"999\"}}\n", &r));
  ASSERT_EQ(r.id, 999);
  ASSERT_EQ(r.ttl, 0);
  char msg[256];
  const char *ka_err = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"transport "
                       "is closing\",\"http_status\":\"Service Unavailable\"}}";
  ASSERT_EQ(wf__etcd_resp_parse(WF__ETCD_KEEPALIVE, ka_err, strlen(ka_err), &r, msg, sizeof msg),
            WF_EETCD);
  ASSERT_STR_EQ(msg, "transport is closing");
  ASSERT_EQ(parse(WF__ETCD_KEEPALIVE, "{" HDR "}", &r), WF_EPROTO);
}

static void test_errors(void) {
  char msg[256];
  int code;
  const char *b = "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
                  "\"etcdserver: requested lease not found\",\"code\":5}";
  ASSERT_EQ(wf__etcd_error_parse(404, b, strlen(b), msg, sizeof msg, &code), WF_EETCD);
  ASSERT_STR_EQ(msg, "etcdserver: requested lease not found");
  ASSERT_EQ(code, 5);
  b = "{\"error\":\"etcdserver: mvcc: required revision has been compacted\",\"message\":"
      "\"etcdserver: mvcc: required revision has been compacted\",\"code\":11}";
  ASSERT_EQ(wf__etcd_error_parse(400, b, strlen(b), msg, sizeof msg, &code), WF_ECOMPACTED);
  ASSERT_STR_EQ(msg, "etcdserver: mvcc: required revision has been compacted");
  b = "404 page not found\n";
  ASSERT_EQ(wf__etcd_error_parse(404, b, strlen(b), msg, sizeof msg, &code), WF_EHTTP);
  ASSERT_STR_EQ(msg, "HTTP 404: 404 page not found");
  ASSERT_EQ(code, -1);
  ASSERT_EQ(wf__etcd_error_parse(502, NULL, 0, msg, sizeof msg, &code), WF_EHTTP);
  ASSERT_STR_EQ(msg, "HTTP 502: ");
  b = "{\"error\":\"only error\"}";
  ASSERT_EQ(wf__etcd_error_parse(400, b, strlen(b), msg, sizeof msg, &code), WF_EETCD);
  ASSERT_STR_EQ(msg, "only error");
}

static void test_requests(void) {
  size_t n;
  char *s;
  wf_etcd_range_opts_t o = {.limit = 1000, .revision = 42, .keys_only = 1};
  s = wf__etcd_req_range("/nodes/", 7, "/nodes0", 7, &o, &n);
  ASSERT_STR_EQ(s, "{\"key\":\"L25vZGVzLw==\",\"range_end\":\"L25vZGVzMA==\",\"limit\":\"1000\","
                   "\"revision\":\"42\",\"keys_only\":true}");
  ASSERT_EQ(n, strlen(s));
  free(s);
  s = wf__etcd_req_range("a", 1, NULL, 0, NULL, &n);
  ASSERT_STR_EQ(s, "{\"key\":\"YQ==\"}");
  free(s);
  /* A key with a trailing NUL (the list's "next key"). */
  s = wf__etcd_req_range("a\0", 2, "\0", 1, NULL, &n);
  ASSERT_STR_EQ(s, "{\"key\":\"YQA=\",\"range_end\":\"AA==\"}");
  free(s);
  s = wf__etcd_req_put("/lease/k", 8, "v", 1, 2324035650796077351LL, &n);
  ASSERT_STR_EQ(s, "{\"key\":\"L2xlYXNlL2s=\",\"value\":\"dg==\",\"lease\":\"2324035650796077351\"}");
  free(s);
  s = wf__etcd_req_put("k", 1, "", 0, 0, &n);
  ASSERT_STR_EQ(s, "{\"key\":\"aw==\",\"value\":\"\"}");
  free(s);
  s = wf__etcd_req_put_if("/lock", 5, 0, "me", 2, &n);
  ASSERT_STR_EQ(s, "{\"compare\":[{\"key\":\"L2xvY2s=\",\"result\":\"EQUAL\",\"target\":\"CREATE\","
                   "\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"L2xvY2s=\","
                   "\"value\":\"bWU=\"}}],\"failure\":[{\"request_range\":{\"key\":\"L2xvY2s=\"}}]}");
  free(s);
  s = wf__etcd_req_put_if("/lock", 5, 17, "me", 2, &n);
  ASSERT(strstr(s, "\"target\":\"MOD\",\"mod_revision\":\"17\"") != NULL);
  free(s);
  s = wf__etcd_req_delete("/w/", 3, "/w0", 3, &n);
  ASSERT_STR_EQ(s, "{\"key\":\"L3cv\",\"range_end\":\"L3cw\"}");
  free(s);
  s = wf__etcd_req_compact(12, &n);
  ASSERT_STR_EQ(s, "{\"revision\":\"12\",\"physical\":true}");
  free(s);
  s = wf__etcd_req_lease_grant(5, &n);
  ASSERT_STR_EQ(s, "{\"TTL\":\"5\"}");
  free(s);
  s = wf__etcd_req_lease_id(-1, &n);
  ASSERT_STR_EQ(s, "{\"ID\":\"-1\"}");
  free(s);
  s = wf__etcd_req_watch("/w/", 3, "/w0", 3, 9, &n);
  ASSERT_STR_EQ(s, "{\"create_request\":{\"key\":\"L3cv\",\"range_end\":\"L3cw\",\"start_revision\":"
                   "\"9\",\"fragment\":true,\"progress_notify\":true}}");
  free(s);
  s = wf__etcd_req_watch("/w/", 3, "/w0", 3, 0, &n);
  ASSERT_STR_EQ(s, "{\"create_request\":{\"key\":\"L3cv\",\"range_end\":\"L3cw\",\"fragment\":true,"
                   "\"progress_notify\":true}}");
  free(s);
}

static void test_prefix_end(void) {
  char out[16];
  ASSERT_EQ(wf_etcd_prefix_end("/nodes/", 7, out), 7);
  ASSERT(memcmp(out, "/nodes0", 7) == 0);
  ASSERT_EQ(wf_etcd_prefix_end("a\xff", 2, out), 1);
  ASSERT_EQ(out[0], 'b');
  ASSERT_EQ(wf_etcd_prefix_end("\xff\xff", 2, out), 1);
  ASSERT_EQ(out[0], '\0');
  ASSERT_EQ(wf_etcd_prefix_end("", 0, out), 0);
}

/* ---- the stream splitter ------------------------------------------------------------- */

/* What the gateway sent for a watch (docs/peers.md), including a blank line,
 * a CRLF and the bare error that ends a stream without a newline. */
static const char *stream_lines[] = {
    "{\"result\":{\"header\":{\"revision\":\"8\"},\"created\":true}}",
    "{\"result\":{\"header\":{\"revision\":\"9\"},\"events\":[{\"kv\":{\"key\":\"L3cvb25l\","
    "\"create_revision\":\"9\",\"mod_revision\":\"9\",\"version\":\"1\",\"value\":\"MQ==\"}}]}}",
    "{\"result\":{\"header\":{\"revision\":\"12\"},\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":"
    "\"L3cvb25l\",\"mod_revision\":\"12\"}}]}}",
    "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"transport is closing\","
    "\"http_status\":\"Service Unavailable\"}}",
};
#define NLINES (sizeof stream_lines / sizeof stream_lines[0])

typedef struct {
  size_t n;
  int stop_at;  /* return 1 from the callback at this line (-1 = never) */
  int ok;
} collect_t;

static int collect(const char *line, size_t n, void *data) {
  collect_t *c = data;
  if (c->n >= NLINES || n != strlen(stream_lines[c->n]) ||
      memcmp(line, stream_lines[c->n], n) != 0)
    c->ok = 0;
  c->n++;
  return (int)c->n - 1 == c->stop_at;
}

static size_t build_stream(char *buf, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < NLINES; i++) {
    size_t n = strlen(stream_lines[i]);
    ASSERT(o + n + 3 < cap);
    memcpy(buf + o, stream_lines[i], n);
    o += n;
    if (i == 1) buf[o++] = '\r';
    if (i + 1 < NLINES) buf[o++] = '\n';
    if (i == 0) buf[o++] = '\n';  /* a blank line */
  }
  return o;
}

static void run_split(const char *s, size_t len, const size_t *cuts, size_t ncuts) {
  wf__etcd_lines_t l;
  collect_t c = {0, -1, 1};
  wf__etcd_lines_init(&l, WF__ETCD_MAX_LINE);
  size_t prev = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : len;
    ASSERT_OK(wf__etcd_lines_feed(&l, s + prev, to - prev, collect, &c));
    prev = to;
  }
  ASSERT_EQ(c.n, NLINES - 1);  /* the last line has no newline yet */
  ASSERT_OK(wf__etcd_lines_flush(&l, collect, &c));
  ASSERT_EQ(c.n, NLINES);
  ASSERT(c.ok);
  ASSERT_OK(wf__etcd_lines_flush(&l, collect, &c));  /* nothing left */
  ASSERT_EQ(c.n, NLINES);
  wf__etcd_lines_finish(&l);
}

static void test_splitter(void) {
  char s[2048];
  size_t len = build_stream(s, sizeof s);
  /* One cut at every position, two cuts at every pair of positions. */
  for (size_t i = 0; i <= len; i++) run_split(s, len, &i, 1);
  for (size_t i = 0; i <= len; i += 1)
    for (size_t j = i; j <= len; j += 7) {
      size_t cuts[2] = {i, j};
      run_split(s, len, cuts, 2);
    }
  /* One byte at a time. */
  size_t *cuts = wf_malloc(len * sizeof *cuts);
  for (size_t i = 0; i < len; i++) cuts[i] = i;
  run_split(s, len, cuts, len);
  free(cuts);

  /* A callback that stops the feed: nothing more is delivered. */
  wf__etcd_lines_t l;
  collect_t c = {0, 1, 1};
  wf__etcd_lines_init(&l, WF__ETCD_MAX_LINE);
  ASSERT_EQ(wf__etcd_lines_feed(&l, s, len, collect, &c), 1);
  ASSERT_EQ(c.n, 2);
  wf__etcd_lines_finish(&l);

  /* The line bound: inside one chunk and across chunks. */
  wf__etcd_lines_init(&l, 16);
  c = (collect_t){0, -1, 1};
  ASSERT_EQ(wf__etcd_lines_feed(&l, "0123456789abcdefX\n", 18, collect, &c), WF_ETOOBIG);
  wf__etcd_lines_reset(&l);
  ASSERT_OK(wf__etcd_lines_feed(&l, "0123456789", 10, collect, &c));
  ASSERT_EQ(wf__etcd_lines_feed(&l, "abcdefX", 7, collect, &c), WF_ETOOBIG);
  wf__etcd_lines_reset(&l);
  ASSERT_OK(wf__etcd_lines_feed(&l, "0123456789", 10, collect, &c));
  ASSERT_EQ(wf__etcd_lines_feed(&l, "abcdefX\n", 8, collect, &c), WF_ETOOBIG);
  ASSERT_EQ(c.n, 0);
  /* Exactly at the bound is fine. */
  wf__etcd_lines_reset(&l);
  c = (collect_t){0, -1, 1};
  ASSERT_OK(wf__etcd_lines_feed(&l, "0123456789", 10, collect, &c));
  ASSERT_OK(wf__etcd_lines_feed(&l, "abcdef\n", 7, collect, &c));
  ASSERT_EQ(c.n, 1);
  wf__etcd_lines_finish(&l);
}

/* ---- watch messages --------------------------------------------------------------------- */

static void test_watch_msgs(void) {
  wf__etcd_watch_msg_t m;
  const char *s = stream_lines[0];
  ASSERT_OK(wf__etcd_watch_msg_parse(s, strlen(s), &m));
  ASSERT(m.created && !m.canceled && !m.error && !m.fragment);
  ASSERT_EQ(m.header_revision, 8);
  ASSERT_EQ(m.nevents, 0);
  wf__etcd_watch_msg_clear(&m);

  s = "{\"result\":{\"header\":{\"revision\":\"14\"},\"events\":[{\"kv\":{\"key\":\"L3cvb25l\","
      "\"create_revision\":\"9\",\"mod_revision\":\"9\",\"version\":\"1\",\"value\":\"MQ==\"}},"
      "{\"type\":\"DELETE\",\"kv\":{\"key\":\"L3cvb25l\",\"mod_revision\":\"12\"},\"prev_kv\":{"
      "\"key\":\"L3cvb25l\"}},{\"type\":\"PUT\",\"kv\":{\"key\":\"L3cvdHdv\",\"mod_revision\":"
      "\"13\",\"value\":\"Mg==\"}}],\"fragment\":true}}";
  ASSERT_OK(wf__etcd_watch_msg_parse(s, strlen(s), &m));
  ASSERT(!m.created && m.fragment);
  ASSERT_EQ(m.header_revision, 14);
  ASSERT_EQ(m.nevents, 3);
  ASSERT_EQ(m.events[0].type, WF_ETCD_PUT);
  ASSERT_STR_EQ(m.events[0].kv.key, "/w/one");
  ASSERT_STR_EQ(m.events[0].kv.value, "1");
  ASSERT_EQ(m.events[0].kv.mod_revision, 9);
  ASSERT_EQ(m.events[1].type, WF_ETCD_DELETE);
  ASSERT_EQ(m.events[1].kv.mod_revision, 12);
  ASSERT_EQ(m.events[1].kv.value_len, 0);
  ASSERT_EQ(m.events[2].type, WF_ETCD_PUT);
  ASSERT_STR_EQ(m.events[2].kv.value, "2");
  wf__etcd_watch_msg_clear(&m);

  /* Compaction cancel: no header.revision at all. */
  s = "{\"result\":{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":"
      "\"3319814642761637952\",\"raft_term\":\"2\"},\"canceled\":true,\"compact_revision\":\"12\"}}";
  ASSERT_OK(wf__etcd_watch_msg_parse(s, strlen(s), &m));
  ASSERT(m.canceled && !m.created);
  ASSERT_EQ(m.compact_revision, 12);
  ASSERT_EQ(m.header_revision, 0);
  wf__etcd_watch_msg_clear(&m);

  /* A progress notification: header only. */
  s = "{\"result\":{\"header\":{\"revision\":\"1\"}}}";
  ASSERT_OK(wf__etcd_watch_msg_parse(s, strlen(s), &m));
  ASSERT(!m.created && !m.canceled && !m.error && m.nevents == 0);
  wf__etcd_watch_msg_clear(&m);

  s = stream_lines[3];
  ASSERT_OK(wf__etcd_watch_msg_parse(s, strlen(s), &m));
  ASSERT(m.error);
  ASSERT_STR_EQ(m.msg, "transport is closing");
  wf__etcd_watch_msg_clear(&m);

  static const char *bad[] = {
      "{\"result\":{\"events\":[{\"kv\":{\"key\":\"!\"}}]}}",
      "{\"result\":{\"events\":[{\"type\":\"NOPE\",\"kv\":{\"key\":\"YQ==\"}}]}}",
      "{\"result\":{\"events\":{}}}",
      "{\"result\":7}",
      "{\"nothing\":1}",
      "{\"result\":{}",
      "[]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_EQ(wf__etcd_watch_msg_parse(bad[i], strlen(bad[i]), &m), WF_EPROTO);
    wf__etcd_watch_msg_clear(&m);
  }
}

/* ---- resume ------------------------------------------------------------------------------ */

/* Feeds one message of events (their revisions) and returns how many would
 * be delivered. */
static size_t feed(wf__etcd_resume_t *r, const int64_t *revs, size_t n, int fragment) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += (size_t)wf__etcd_resume_event(r, revs[i]);
  wf__etcd_resume_msg_end(r, fragment);
  return k;
}

static void test_resume(void) {
  wf__etcd_resume_t r;
  /* From "now": created at 8 -> resume at 9. */
  wf__etcd_resume_init(&r, 0);
  wf__etcd_resume_connect(&r);
  ASSERT_EQ(wf__etcd_resume_rev(&r), 0);
  wf__etcd_resume_created(&r, 8);
  ASSERT_EQ(wf__etcd_resume_rev(&r), 9);
  /* A later created (a reconnect) does not move it. */
  wf__etcd_resume_created(&r, 20);
  ASSERT_EQ(wf__etcd_resume_rev(&r), 9);
  int64_t a[] = {9, 10, 10};
  ASSERT_EQ(feed(&r, a, 3, 0), 3);
  ASSERT_EQ(wf__etcd_resume_rev(&r), 11);
  /* A replay from a historical revision: header.revision is irrelevant. */
  int64_t b[] = {11, 12, 13};
  ASSERT_EQ(feed(&r, b, 3, 0), 3);
  ASSERT_EQ(wf__etcd_resume_rev(&r), 14);

  /* Revision 20 has 5 events (one txn); the stream breaks after a fragment
   * that carried 3 of them. */
  wf__etcd_resume_init(&r, 20);
  wf__etcd_resume_connect(&r);
  int64_t f1[] = {20, 20, 20};
  ASSERT_EQ(feed(&r, f1, 3, 1), 3);
  ASSERT_EQ(wf__etcd_resume_rev(&r), 20);  /* not 21: two events of 20 are due */
  /* Reconnect from 20: the replay repeats the first three; drop them. */
  wf__etcd_resume_connect(&r);
  int64_t f2[] = {20, 20, 20, 20, 20, 21};
  ASSERT_EQ(feed(&r, f2, 6, 0), 3);
  ASSERT_EQ(wf__etcd_resume_rev(&r), 22);
  /* And again, fragmented on the replay too. */
  wf__etcd_resume_init(&r, 30);
  wf__etcd_resume_connect(&r);
  int64_t g1[] = {30, 31, 31};
  ASSERT_EQ(feed(&r, g1, 3, 1), 3);  /* 31 partial, skip 2 */
  wf__etcd_resume_connect(&r);
  int64_t g2[] = {31};
  ASSERT_EQ(feed(&r, g2, 1, 1), 0);   /* replayed */
  int64_t g3[] = {31, 31, 32};
  ASSERT_EQ(feed(&r, g3, 3, 1), 2);   /* one replayed, 31's third, then 32 */
  ASSERT_EQ(wf__etcd_resume_rev(&r), 32);
  int64_t g4[] = {32};
  ASSERT_EQ(feed(&r, g4, 1, 0), 1);
  ASSERT_EQ(wf__etcd_resume_rev(&r), 33);
  /* A fragment that ended on a revision boundary: the resumed stream has
   * nothing to drop but the rest of that revision would never show up. */
  wf__etcd_resume_init(&r, 40);
  wf__etcd_resume_connect(&r);
  int64_t h1[] = {40, 40};
  ASSERT_EQ(feed(&r, h1, 2, 1), 2);
  wf__etcd_resume_connect(&r);
  int64_t h2[] = {40, 40, 41};
  ASSERT_EQ(feed(&r, h2, 3, 0), 1);
  ASSERT_EQ(wf__etcd_resume_rev(&r), 42);
  /* Events older than the resume point are dropped. */
  int64_t old[] = {39, 41};
  ASSERT_EQ(feed(&r, old, 2, 0), 0);
}

/* Found by fuzz-watch-stream (UBSan): a revision of INT64_MAX made the
 * resume position overflow (header.revision + 1 on "created", rev++ at a
 * message end), and callers resume at mod_revision + 1.  Revisions outside
 * 0..INT64_MAX-1 are malformed, in every place one is parsed. */
static void test_revision_bounds(void) {
  wf__etcd_watch_msg_t m;
  wf__etcd_resp_t r;
  wf_etcd_kv_t kv;
  char msg[128];
  static const char *const bad_lines[] = {
      "{\"result\":{\"header\":{\"revision\":\"9223372036854775807\"},\"created\":true}}",
      "{\"result\":{\"header\":{\"revision\":\"-1\"},\"created\":true}}",
      "{\"result\":{\"header\":{\"revision\":\"5\"},\"events\":[{\"kv\":{\"key\":"
      "\"YQ==\",\"mod_revision\":\"9223372036854775807\"}}]}}",
      "{\"result\":{\"header\":{},\"canceled\":true,\"compact_revision\":"
      "9223372036854775807}}",
  };
  for (size_t i = 0; i < sizeof bad_lines / sizeof bad_lines[0]; i++) {
    ASSERT_EQ(wf__etcd_watch_msg_parse(bad_lines[i], strlen(bad_lines[i]), &m), WF_EPROTO);
    wf__etcd_watch_msg_clear(&m);
  }
  /* The largest usable one still parses. */
  const char *ok = "{\"result\":{\"header\":{\"revision\":\"9223372036854775806\"},"
                   "\"created\":true}}";
  ASSERT_OK(wf__etcd_watch_msg_parse(ok, strlen(ok), &m));
  ASSERT(m.header_revision == INT64_MAX - 1);
  wf__etcd_watch_msg_clear(&m);

  const char *range = "{\"header\":{\"revision\":\"9223372036854775807\"}}";
  ASSERT_EQ(wf__etcd_resp_parse(WF__ETCD_RANGE, range, strlen(range), &r, msg, sizeof msg),
            WF_EPROTO);
  wf__etcd_resp_clear(&r);
  json_t *j = json_loads("{\"key\":\"YQ==\",\"create_revision\":\"-3\"}", 0, NULL);
  ASSERT_EQ(wf__etcd_kv_parse(j, &kv), WF_EPROTO);
  wf__etcd_kv_clear(&kv);
  json_decref(j);
}

/* ---- the fast path agrees with jansson ---------------------------------------------------------- */

/* One parse with the fast path on or off, rendered to text so that two
 * outcomes compare with strcmp: the error code, then every field. */
static char *render_watch(const char *p, size_t n, int fast) {
  wf__etcd_fast_json = fast;
  wf__etcd_watch_msg_t m;
  int e = wf__etcd_watch_msg_parse(p, n, &m);
  wf__etcd_fast_json = 1;
  wf_buf_t b;
  wf_buf_init(&b, (size_t)1 << 24);
  wf_buf_printf(&b, "e=%d", e);
  if (e == 0) {
    wf_buf_printf(&b, " err=%d cr=%d ca=%d fr=%d hr=%lld cmp=%lld msg=%s n=%zu", m.error,
                  m.created, m.canceled, m.fragment, (long long)m.header_revision,
                  (long long)m.compact_revision, m.msg, m.nevents);
    for (size_t i = 0; i < m.nevents; i++) {
      const wf_etcd_kv_t *kv = &m.events[i].kv;
      wf_buf_printf(&b, " [%d %zu:%.*s %zu:", (int)m.events[i].type, kv->key_len,
                    (int)kv->key_len, kv->key, kv->value_len);
      wf_buf_append(&b, kv->value, kv->value_len);
      wf_buf_printf(&b, " %lld %lld %lld %lld]", (long long)kv->create_revision,
                    (long long)kv->mod_revision, (long long)kv->version, (long long)kv->lease);
    }
  }
  wf__etcd_watch_msg_clear(&m);
  wf_buf_append(&b, "", 1);
  return b.data;
}

static char *render_range(const char *p, size_t n, int fast) {
  wf__etcd_fast_json = fast;
  wf__etcd_resp_t r;
  char msg[256];
  int e = wf__etcd_resp_parse(WF__ETCD_RANGE, p, n, &r, msg, sizeof msg);
  wf__etcd_fast_json = 1;
  wf_buf_t b;
  wf_buf_init(&b, (size_t)1 << 24);
  wf_buf_printf(&b, "e=%d", e);
  if (e == 0) {
    wf_buf_printf(&b, " rev=%lld more=%d count=%lld n=%zu", (long long)r.revision, r.more,
                  (long long)r.count, r.nkvs);
    for (size_t i = 0; i < r.nkvs; i++) {
      const wf_etcd_kv_t *kv = &r.kvs[i];
      wf_buf_printf(&b, " [%zu:%.*s %zu:", kv->key_len, (int)kv->key_len, kv->key,
                    kv->value_len);
      wf_buf_append(&b, kv->value, kv->value_len);
      wf_buf_printf(&b, " %lld %lld %lld %lld]", (long long)kv->create_revision,
                    (long long)kv->mod_revision, (long long)kv->version, (long long)kv->lease);
    }
  }
  wf__etcd_resp_clear(&r);
  wf_buf_append(&b, "", 1);
  return b.data;
}

static char *render_txn(const char *p, size_t n, int fast) {
  wf__etcd_fast_json = fast;
  wf__etcd_resp_t r;
  char msg[256];
  int e = wf__etcd_resp_parse(WF__ETCD_TXN, p, n, &r, msg, sizeof msg);
  wf__etcd_fast_json = 1;
  wf_buf_t b;
  wf_buf_init(&b, (size_t)1 << 24);
  wf_buf_printf(&b, "e=%d", e);
  if (e == 0) {
    wf_buf_printf(&b, " rev=%lld ok=%d n=%zu", (long long)r.revision, r.succeeded, r.nkvs);
    for (size_t i = 0; i < r.nkvs; i++)
      wf_buf_printf(&b, " [%.*s %lld]", (int)r.kvs[i].key_len, r.kvs[i].key,
                    (long long)r.kvs[i].mod_revision);
  }
  wf__etcd_resp_clear(&r);
  wf_buf_append(&b, "", 1);
  return b.data;
}

static void same(char *(*render)(const char *, size_t, int), const char *p, size_t n) {
  char *a = render(p, n, 1), *b = render(p, n, 0);
  if (strcmp(a, b) != 0)
    WF_FAIL("fast and jansson paths differ on %.*s:\n fast    %s\n jansson %s", (int)n, p, a, b);
  free(a);
  free(b);
}

static const char *const WATCH_SAMPLES[] = {
    "{\"result\":{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
    "\"10276657743932975437\",\"revision\":\"8\",\"raft_term\":\"2\"},\"created\":true}}",
    "{\"result\":{\"header\":{\"revision\":\"12\"},\"events\":[{\"kv\":{\"key\":\"L3cveA==\","
    "\"create_revision\":\"9\",\"mod_revision\":\"12\",\"version\":\"4\",\"value\":\"eyJhIjoxfQ==\","
    "\"lease\":\"7587\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"L3cveQ==\",\"mod_revision\":\"12\"},"
    "\"prev_kv\":{\"key\":\"L3cveQ==\",\"value\":\"MQ==\"}}],\"fragment\":true}}",
    "{\"result\":{\"header\":{\"revision\":\"14\"},\"canceled\":true,\"compact_revision\":\"11\","
    "\"cancel_reason\":\"mvcc: required revision has been compacted\"}}",
    "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"transport is closing\","
    "\"http_status\":\"Service Unavailable\"}}",
    "{\"result\":{\"events\":[{\"type\":1,\"kv\":{\"key\":\"YQ==\"}},{\"type\":0,\"kv\":{}}]}}",
    " {\"result\":{\"header\":{},\"events\":null,\"created\":false}} \n",
};

static const char *const RANGE_SAMPLES[] = {
    "{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"100\",\"raft_term\":\"2\"},"
    "\"kvs\":[{\"key\":\"YS8x\",\"create_revision\":\"3\",\"mod_revision\":\"9\",\"version\":\"2\","
    "\"value\":\"eyJzdGF0dXMiOnt9fQ==\"},{\"key\":\"YS8y\",\"create_revision\":\"4\","
    "\"mod_revision\":\"4\",\"version\":\"1\"}],\"more\":true,\"count\":\"5000\"}",
    "{\"header\":{\"revision\":\"7\"}}",
    "{\"header\":{\"revision\":\"7\"},\"kvs\":null,\"count\":0,\"more\":false}",
};

static const char *const TXN_SAMPLES[] = {
    "{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"41\",\"raft_term\":"
    "\"2\"},\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":{\"revision\":\"41\"}}}]}",
    "{\"header\":{\"revision\":\"40\"},\"responses\":[{\"response_range\":{\"header\":{},\"kvs\":"
    "[{\"key\":\"YQ==\",\"mod_revision\":\"39\",\"value\":\"eA==\"}],\"count\":\"1\"}}]}",
    "{\"succeeded\":true,\"responses\":null,\"header\":{\"revision\":3}}",
};

static void test_fast_path(void) {
  /* The samples, every truncation, and every one-byte change to a
   * character that matters to JSON, must parse the same both ways. */
  static const char subst[] = "\"\\{}[],:0-9a \x01\xc3tfn.eE+";
  for (int kind = 0; kind < 3; kind++) {
    const char *const *samples = kind == 2 ? TXN_SAMPLES : kind ? RANGE_SAMPLES : WATCH_SAMPLES;
    size_t ns = kind == 2 ? sizeof TXN_SAMPLES / sizeof *TXN_SAMPLES
                : kind    ? sizeof RANGE_SAMPLES / sizeof *RANGE_SAMPLES
                          : sizeof WATCH_SAMPLES / sizeof *WATCH_SAMPLES;
    char *(*render)(const char *, size_t, int) =
        kind == 2 ? render_txn : kind ? render_range : render_watch;
    for (size_t i = 0; i < ns; i++) {
      const char *s = samples[i];
      size_t n = strlen(s);
      char *buf = malloc(n + 1);
      for (size_t cut = 0; cut <= n; cut++) same(render, s, cut);
      for (size_t pos = 0; pos < n; pos++) {
        for (const char *c = subst; *c; c++) {
          memcpy(buf, s, n);
          buf[pos] = *c;
          same(render, buf, n);
        }
      }
      free(buf);
    }
  }
  /* Repeated keys: jansson keeps the last; the fast path leaves them to it. */
  const char *dup = "{\"result\":{\"created\":false,\"created\":true}}";
  same(render_watch, dup, strlen(dup));
  const char *dupkv = "{\"header\":{\"revision\":\"3\"},\"kvs\":[{\"key\":\"YQ==\",\"key\":\"Yg==\"}]}";
  same(render_range, dupkv, strlen(dupkv));
  const char *duptx = "{\"succeeded\":false,\"succeeded\":true}";
  same(render_txn, duptx, strlen(duptx));
}

static const wf_test_t tests[] = {
    WF_TEST(revision_bounds), WF_TEST(i64), WF_TEST(kv), WF_TEST(responses), WF_TEST(errors),
    WF_TEST(requests), WF_TEST(prefix_end), WF_TEST(splitter), WF_TEST(watch_msgs),
    WF_TEST(resume), WF_TEST(fast_path),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
