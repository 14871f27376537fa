/*
 * test-outputs: step outputs (src/model/outputs.c): every rule of the
 * output file with its message and its bounds exactly at and one past the
 * limit, the summary line's cut and replacements, pipeline keys, and the
 * collection and merge of what earlier steps offer (order, flows, status,
 * other runs, qualified names, origins, bounds).  No loop.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf-test.h"
#include "wf/outputs.h"
#include "wf/util.h"

/* ---- the output file ------------------------------------------------------------ */

static int parse_n(const char *s, size_t n, wf_params_t *out, char *err) {
  memset(err, 'x', 255);
  err[255] = '\0';
  return wf_outputs_parse(s, n, 0, out, err, 256);
}

static int parse(const char *s, wf_params_t *out, char *err) {
  return parse_n(s, strlen(s), out, err);
}

/* The file is refused with exactly this message, and out is left alone. */
static void refused_n(const char *s, size_t n, const char *msg) {
  wf_params_t out;
  wf_params_init(&out);
  wf_params_set(&out, "KEEP", "1");
  char err[256];
  ASSERT_EQ(parse_n(s, n, &out, err), -1);
  ASSERT_STR_EQ(err, msg);
  ASSERT_EQ(out.n, 1);
  ASSERT_STR_EQ(wf_params_get(&out, "KEEP"), "1");
  wf_params_finish(&out);
}

static void refused(const char *s, const char *msg) { refused_n(s, strlen(s), msg); }

/* A run of c, n bytes long, malloc'd (NUL after it). */
static char *run(char c, size_t n) {
  char *s = wf_malloc(n + 1);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

static void test_basic(void) {
  wf_params_t out;
  wf_params_init(&out);
  char err[256];
  ASSERT_OK(parse("A=1\nlong_name_2=hello world\n_x=\xc3\xa9t\xc3\xa9\n", &out, err));
  ASSERT_STR_EQ(err, "");
  ASSERT_EQ(out.n, 3);
  ASSERT_STR_EQ(out.kv[0].key, "A");
  ASSERT_STR_EQ(out.kv[0].value, "1");
  ASSERT_STR_EQ(wf_params_get(&out, "long_name_2"), "hello world");
  ASSERT_STR_EQ(wf_params_get(&out, "_x"), "\xc3\xa9t\xc3\xa9");
  wf_params_finish(&out);

  /* A last line without "\n" counts; the values join what out held. */
  wf_params_set(&out, "OLD", "o");
  wf_params_set(&out, "B", "old");
  ASSERT_OK(parse("A=1\nB=2", &out, err));
  ASSERT_EQ(out.n, 3);
  ASSERT_STR_EQ(wf_params_get(&out, "B"), "2");
  ASSERT_STR_EQ(wf_params_get(&out, "OLD"), "o");
  wf_params_finish(&out);

  /* Nothing at all, or only empty lines: no outputs. */
  ASSERT_OK(parse_n("", 0, &out, err));
  ASSERT_OK(parse("\n\n\r\n", &out, err));
  ASSERT_EQ(out.n, 0);
  wf_params_finish(&out);
}

static void test_value_forms(void) {
  wf_params_t out;
  wf_params_init(&out);
  char err[256];
  /* Everything after the first '=' is the value, "<<" and '=' included;
   * spaces are kept; "A=" is an empty value. */
  ASSERT_OK(parse("A=b=c\nB=x<<y\nC= sp \nD=\nE==\n", &out, err));
  ASSERT_STR_EQ(wf_params_get(&out, "A"), "b=c");
  ASSERT_STR_EQ(wf_params_get(&out, "B"), "x<<y");
  ASSERT_STR_EQ(wf_params_get(&out, "C"), " sp ");
  ASSERT_STR_EQ(wf_params_get(&out, "D"), "");
  ASSERT_STR_EQ(wf_params_get(&out, "E"), "=");
  wf_params_finish(&out);
}

static void test_repeat_later_wins(void) {
  wf_params_t out;
  wf_params_init(&out);
  char err[256];
  ASSERT_OK(parse("A=1\nB=b\nA=2\nA<<E\n3\nE\nA=4\n", &out, err));
  ASSERT_EQ(out.n, 2);
  ASSERT_STR_EQ(out.kv[0].key, "A");
  ASSERT_STR_EQ(out.kv[0].value, "4");
  wf_params_finish(&out);
  ASSERT_OK(parse("A=1\nA<<E\nx\ny\nE", &out, err));
  ASSERT_STR_EQ(wf_params_get(&out, "A"), "x\ny");
  wf_params_finish(&out);
}

static void test_heredoc(void) {
  wf_params_t out;
  wf_params_init(&out);
  char err[256];
  /* Lines up to the delimiter, joined with "\n"; empty lines inside are
   * part of the value; a line that only starts with the delimiter is not
   * the end; the delimiter may hold '=' and spaces. */
  ASSERT_OK(parse("LOG<<EOF\nline 1\n\nA=not an output\nEOFX\n EOF\nEOF\nB<<X=Y Z\nv\nX=Y Z\n"
                  "C=3\n",
                  &out, err));
  ASSERT_EQ(out.n, 3);
  ASSERT_STR_EQ(wf_params_get(&out, "LOG"), "line 1\n\nA=not an output\nEOFX\n EOF");
  ASSERT_STR_EQ(wf_params_get(&out, "B"), "v");
  ASSERT_STR_EQ(wf_params_get(&out, "C"), "3");
  ASSERT_NULL(wf_params_get(&out, "A"));
  wf_params_finish(&out);
  /* "A<<B=C": the text before '=' is no name, before "<<" it is. */
  ASSERT_OK(parse("A<<B=C\nx\nB=C", &out, err));
  ASSERT_STR_EQ(wf_params_get(&out, "A"), "x");
  wf_params_finish(&out);
}

static void test_heredoc_empty(void) {
  wf_params_t out;
  wf_params_init(&out);
  char err[256];
  ASSERT_OK(parse("A<<EOF\nEOF\nB<<EOF\n\nEOF\nC<<EOF\n\n\nEOF", &out, err));
  ASSERT_STR_EQ(wf_params_get(&out, "A"), "");
  ASSERT_STR_EQ(wf_params_get(&out, "B"), "");  /* one empty line */
  ASSERT_STR_EQ(wf_params_get(&out, "C"), "\n");
  wf_params_finish(&out);
}

static void test_heredoc_unclosed(void) {
  refused("A=1\nLOG<<EOF\nx\n\ny\nEOF \n", "line 6: no closing delimiter EOF for LOG (opened on line 2)");
  refused("LOG<<EOF", "line 1: no closing delimiter EOF for LOG (opened on line 1)");
  refused("LOG<<EOF\n", "line 1: no closing delimiter EOF for LOG (opened on line 1)");
  /* The delimiter is quoted printable and short. */
  refused("L<<\x01" "0123456789012345678901234567890123456789\n",
          "line 1: no closing delimiter ?0123456789012345678901234567890... for L (opened on "
          "line 1)");
  refused("A<<\nx\n", "line 1: no delimiter after A<<");
  refused("A<<\r\nx\n", "line 1: no delimiter after A<<");
}

static void test_crlf(void) {
  wf_params_t out;
  wf_params_init(&out);
  char err[256];
  ASSERT_OK(parse("A=1\r\n\r\nB<<E\r\nx\r\n\r\ny\r\nE\r\nC=a\rb\r\nD=2\r", &out, err));
  ASSERT_STR_EQ(wf_params_get(&out, "A"), "1");
  ASSERT_STR_EQ(wf_params_get(&out, "B"), "x\n\ny");
  ASSERT_STR_EQ(wf_params_get(&out, "C"), "a\rb");  /* only a trailing "\r" goes */
  ASSERT_STR_EQ(wf_params_get(&out, "D"), "2");
  wf_params_finish(&out);
  /* One "\r" only. */
  ASSERT_OK(parse("A=x\r\r\n", &out, err));
  ASSERT_STR_EQ(wf_params_get(&out, "A"), "x\r");
  wf_params_finish(&out);
}

static void test_names(void) {
  refused("A=1\nB=2\n1X=3\n", "line 3: \"1X\" is not an output name ([A-Za-z_][A-Za-z0-9_]*)");
  refused("A-B=1", "line 1: \"A-B\" is not an output name ([A-Za-z_][A-Za-z0-9_]*)");
  refused("=x", "line 1: \"\" is not an output name ([A-Za-z_][A-Za-z0-9_]*)");
  refused("<<EOF\nx\nEOF", "line 1: \"\" is not an output name ([A-Za-z_][A-Za-z0-9_]*)");
  refused(" A=1", "line 1: \" A\" is not an output name ([A-Za-z_][A-Za-z0-9_]*)");
  refused("A B<<E\nE", "line 1: \"A B\" is not an output name ([A-Za-z_][A-Za-z0-9_]*)");
  refused("\xc3\xa9=1", "line 1: \"??\" is not an output name ([A-Za-z_][A-Za-z0-9_]*)");
  /* "A<B=1": the text before '=' is the name that is not one. */
  refused("A<B=1", "line 1: \"A<B\" is not an output name ([A-Za-z_][A-Za-z0-9_]*)");
  refused("A\tB0123456789012345678901234567890123=1",
          "line 1: \"A?B01234567890123456789012345678...\" is not an output name "
          "([A-Za-z_][A-Za-z0-9_]*)");
  /* Neither form. */
  refused("A=1\n\nhello\n", "line 3: neither NAME=value nor NAME<<DELIMITER");
  refused("A<B", "line 1: neither NAME=value nor NAME<<DELIMITER");
  refused(" ", "line 1: neither NAME=value nor NAME<<DELIMITER");
}

static void test_nul(void) {
  refused_n("A=1\nB=x\0y\n", 10, "line 2: a NUL byte");
  refused_n("A<<E\nx\n\0\nE\n", 11, "line 3: a NUL byte");
  refused_n("\0", 1, "line 1: a NUL byte");
  refused_n("A=1\n\0\n", 6, "line 2: a NUL byte");
}

static void test_utf8(void) {
  wf_params_t out;
  wf_params_init(&out);
  char err[256];
  ASSERT_OK(parse("A=\xe2\x82\xac \xf0\x9f\x98\x80\nB=\x01\x7f\t\n", &out, err));
  ASSERT_STR_EQ(wf_params_get(&out, "A"), "\xe2\x82\xac \xf0\x9f\x98\x80");
  ASSERT_STR_EQ(wf_params_get(&out, "B"), "\x01\x7f\t");
  wf_params_finish(&out);
  refused("A=\xff", "line 1: the value of A is not UTF-8");
  refused("A=\xc0\xaf", "line 1: the value of A is not UTF-8");          /* overlong */
  refused("A=\xed\xa0\x80", "line 1: the value of A is not UTF-8");      /* surrogate */
  refused("A=\xf4\x90\x80\x80", "line 1: the value of A is not UTF-8");  /* > U+10FFFF */
  refused("A=\xe2\x82", "line 1: the value of A is not UTF-8");          /* cut */
  refused("A<<E\nok\n\xe2\x82\nE", "line 3: the value of A is not UTF-8");
}

static void test_value_bound(void) {
  wf_params_t out;
  wf_params_init(&out);
  char err[256];
  char *v = run('v', WF_OUTPUT_MAX_VALUE + 1);
  char *s = wf_asprintf("A=1\nBIG=%s\n", v);
  v[WF_OUTPUT_MAX_VALUE] = '\0';
  char *at = wf_asprintf("A=1\nBIG=%s\n", v);
  ASSERT_OK(parse(at, &out, err));
  ASSERT_EQ(strlen(wf_params_get(&out, "BIG")), WF_OUTPUT_MAX_VALUE);
  wf_params_finish(&out);
  refused(s, "line 2: the value of BIG is over 65536 bytes");
  free(s);
  free(at);

  /* A heredoc: two lines and the "\n" between them, exactly at the bound;
   * a byte more fails on the line that passes it. */
  size_t half = WF_OUTPUT_MAX_VALUE / 2;
  char *l1 = run('a', half - 1), *l2 = run('b', half), *l2x = run('b', half + 1);
  at = wf_asprintf("LOG<<EOF\n%s\n%s\nEOF\n", l1, l2);
  ASSERT_OK(parse(at, &out, err));
  const char *got = wf_params_get(&out, "LOG");
  ASSERT_EQ(strlen(got), WF_OUTPUT_MAX_VALUE);
  ASSERT_EQ(got[half - 1], '\n');
  wf_params_finish(&out);
  s = wf_asprintf("LOG<<EOF\n%s\n%s\nEOF\n", l1, l2x);
  refused(s, "line 3: the value of LOG is over 65536 bytes");
  free(s);
  s = wf_asprintf("LOG<<EOF\n%s\n%s\n\nEOF\n", l1, l2);  /* the "\n" of an empty line */
  refused(s, "line 4: the value of LOG is over 65536 bytes");
  free(s);
  free(at);
  free(l1);
  free(l2);
  free(l2x);
  free(v);
}

static void test_total_bound(void) {
  wf_params_t out;
  wf_params_init(&out);
  char err[256];
  char *v = run('v', WF_OUTPUT_MAX_VALUE);
  /* Four full values are the bound exactly. */
  char *at = wf_asprintf("A=%s\nB=%s\nC<<E\n%s\nE\nD=%s\nE=\n", v, v, v, v);
  ASSERT_OK(parse(at, &out, err));
  ASSERT_EQ(out.n, 5);
  wf_params_finish(&out);
  char *s = wf_asprintf("A=%s\nB=%s\nC=%s\nD=%s\nE=x\n", v, v, v, v);
  refused(s, "the values add up to over 262144 bytes");
  free(s);
  /* Every value counts as it is parsed, a repeated name's earlier ones
   * included (the strictest reading). */
  s = wf_asprintf("A=%s\nA=%s\nA=%s\nA=%s\nA=x\n", v, v, v, v);
  refused(s, "the values add up to over 262144 bytes");
  free(s);
  free(at);
  free(v);
}

static void test_names_bound(void) {
  wf_params_t out;
  wf_params_init(&out);
  char err[256];
  wf_buf_t b;
  wf_buf_init(&b, 1 << 20);
  for (int i = 0; i < WF_OUTPUT_MAX_NAMES; i++) wf_buf_printf(&b, "N%d=%d\n", i, i);
  wf_buf_printf(&b, "N0=again\nN99<<E\nx\nE\n");  /* repeated names are not new ones */
  ASSERT_OK(parse(b.data, &out, err));
  ASSERT_EQ(out.n, WF_OUTPUT_MAX_NAMES);
  ASSERT_STR_EQ(wf_params_get(&out, "N0"), "again");
  ASSERT_STR_EQ(wf_params_get(&out, "N99"), "x");
  wf_params_finish(&out);
  wf_buf_printf(&b, "N100=1\n");
  refused(b.data, "more than 100 names");
  wf_buf_finish(&b);
}

static void test_truncated(void) {
  wf_params_t out;
  wf_params_init(&out);
  char err[64];
  ASSERT_EQ(wf_outputs_parse("A=1\n", 4, 1, &out, err, sizeof err), -1);
  ASSERT_STR_EQ(err, "the file is over 327680 bytes");
  ASSERT_EQ(out.n, 0);
  /* A short error buffer gets a cut, terminated message. */
  char small[8];
  ASSERT_EQ(wf_outputs_parse("1X=1", 4, 0, &out, small, sizeof small), -1);
  ASSERT_STR_EQ(small, "line 1:");
  ASSERT_EQ(wf_outputs_parse("1X=1", 4, 0, &out, NULL, 0), -1);
}

/* ---- the summary line ---------------------------------------------------------- */

static void summary_is(const char *in, size_t n, const char *want) {
  char *s = wf_summary_line(in, n);
  if (!want) {
    ASSERT_NULL(s);
    return;
  }
  ASSERT_STR_EQ(s, want);
  free(s);
}

static void test_summary(void) {
  summary_is("built 3 images\nmore\n", 21, "built 3 images");
  summary_is("ok\r\nmore", 8, "ok");
  summary_is("ok", 2, "ok");
  summary_is("ok\r", 3, "ok");
  summary_is("", 0, NULL);
  summary_is("\nsecond", 7, NULL);
  summary_is("\r\nsecond", 8, NULL);
  /* Control characters but tab become spaces, C1 controls too; a byte
   * that is not UTF-8 becomes '?'. */
  summary_is("a\tb\x01" "c\x7f" "d\x1b[0m", 11, "a\tb c d [0m");
  summary_is("x\0y", 3, "x y");
  summary_is("\xc2\x85|\xc2\xa0|\xff|\xe2\x82", 10, " |\xc2\xa0|?|??");
  summary_is("\xc3\xa9t\xc3\xa9", 5, "\xc3\xa9t\xc3\xa9");
}

static void test_summary_cut(void) {
  char buf[WF_SUMMARY_MAX + 16];
  /* Exactly the bound, and one byte over it. */
  memset(buf, 'a', sizeof buf);
  char *s = wf_summary_line(buf, WF_SUMMARY_MAX);
  ASSERT_EQ(strlen(s), WF_SUMMARY_MAX);
  free(s);
  s = wf_summary_line(buf, WF_SUMMARY_MAX + 1);
  ASSERT_EQ(strlen(s), WF_SUMMARY_MAX);
  free(s);
  /* A 2-byte and a 4-byte character across the bound are left out whole. */
  memcpy(buf + WF_SUMMARY_MAX - 1, "\xc3\xa9", 2);
  s = wf_summary_line(buf, sizeof buf);
  ASSERT_EQ(strlen(s), WF_SUMMARY_MAX - 1);
  free(s);
  memset(buf, 'a', sizeof buf);
  memcpy(buf + WF_SUMMARY_MAX - 2, "\xf0\x9f\x98\x80", 4);
  s = wf_summary_line(buf, sizeof buf);
  ASSERT_EQ(strlen(s), WF_SUMMARY_MAX - 2);
  free(s);
  /* One that ends on the bound is kept. */
  memset(buf, 'a', sizeof buf);
  memcpy(buf + WF_SUMMARY_MAX - 3, "\xe2\x82\xac", 3);
  s = wf_summary_line(buf, sizeof buf);
  ASSERT_EQ(strlen(s), WF_SUMMARY_MAX);
  ASSERT_OK(memcmp(s + WF_SUMMARY_MAX - 3, "\xe2\x82\xac", 3));
  free(s);
  /* The cut is after the line's end, not before. */
  memset(buf, 'a', sizeof buf);
  buf[10] = '\n';
  s = wf_summary_line(buf, sizeof buf);
  ASSERT_EQ(strlen(s), 10);
  free(s);
}

/* ---- pipeline keys ------------------------------------------------------------- */

static void test_pipeline_pos(void) {
  wf_pipeline_pos_t p;
  const char *k = "ns1.c3r8psea0brhlbg0qdd0.2.13";
  ASSERT_OK(wf_pipeline_pos(k, &p));
  ASSERT(p.run == k);
  ASSERT_EQ(p.run_len, strlen("ns1.c3r8psea0brhlbg0qdd0."));
  ASSERT_EQ(p.stage, 2);
  ASSERT_EQ(p.step, 13);
  ASSERT_OK(wf_pipeline_pos("a.b.9223372036854775807.1", &p));
  ASSERT_EQ(p.stage, INT64_MAX);
  const char *bad[] = {
      "a.b.1",       "a.b.1.2.3", "a.b.x.1",  "a.b.1.x",    "a.b.1.2x",  "a.b.0.1",
      "a.b.1.0",     "a.b.01.1",  "a.b.1.01", ".b.1.1",     "a..1.1",    "a.b..1",
      "a.b.1.",      "a.b.-1.1",  "a.b.+1.1", "a.b. 1.1",   "k1",        "",
      "a.b.9223372036854775808.1",  "a.b.1.99999999999999999999",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    p.stage = 77;
    if (wf_pipeline_pos(bad[i], &p) != -1) WF_FAIL("accepted \"%s\"", bad[i]);
    ASSERT_EQ(p.stage, 77);  /* untouched */
  }
  ASSERT_EQ(wf_pipeline_pos(NULL, &p), -1);
}

/* ---- offers ---------------------------------------------------------------------- */

/* A stored step; resp is the JSON of status.response (NULL: none). */
static json_t *mkstep(const char *name, const char *status, int64_t flow, const char *resp) {
  json_t *st = json_object();
  if (status) json_object_set_new(st, "status", json_string(status));
  if (flow) json_object_set_new(st, "flow_number", json_integer(flow));
  if (resp) {
    json_error_t je;
    json_t *r = json_loads(resp, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
    if (!r) WF_FAIL("bad JSON in the test: %s", je.text);
    json_object_set_new(st, "response", r);
  }
  json_t *o = json_object();
  if (name) json_object_set_new(o, "name", json_string(name));
  json_object_set_new(o, "status", st);
  return o;
}

static void add(wf_offers_t *o, const char *key, json_t *step) {
  char err[256];
  ASSERT_OK(wf_offers_add(o, key, step, err, sizeof err));
  json_decref(step);
}

static void finish(wf_offers_t *o, wf_params_t *offers, wf_params_t *origins) {
  char err[256];
  wf_params_init(offers);
  if (origins) wf_params_init(origins);
  ASSERT_OK(wf_offers_finish(o, offers, origins, err, sizeof err));
}

static void test_offers_order(void) {
  wf_offers_t *o = wf_offers_create("ns.p.3.1", 0);
  ASSERT_NOT_NULL(o);
  /* Fed in any order; merged by (stage, flow, step): later wins. */
  add(o, "ns.p.2.1", mkstep("b", "SUCCEEDED", 0, "{\"output.X\":\"b\",\"log_path\":\"l\"}"));
  add(o, "ns.p.1.2", mkstep("c", "SUCCEEDED", 0, "{\"output.X\":\"c\",\"output.Z\":\"c\"}"));
  add(o, "ns.p.1.1", mkstep("a", "SUCCEEDED", 0, "{\"output.X\":\"a\",\"output.Y\":\"a\"}"));
  wf_params_t offers, origins;
  finish(o, &offers, &origins);
  ASSERT_STR_EQ(wf_params_get(&offers, "X"), "b");
  ASSERT_STR_EQ(wf_params_get(&offers, "Y"), "a");
  ASSERT_STR_EQ(wf_params_get(&offers, "Z"), "c");
  ASSERT_STR_EQ(wf_params_get(&offers, "a.X"), "a");
  ASSERT_STR_EQ(wf_params_get(&offers, "a.Y"), "a");
  ASSERT_STR_EQ(wf_params_get(&offers, "c.X"), "c");
  ASSERT_STR_EQ(wf_params_get(&offers, "c.Z"), "c");
  ASSERT_STR_EQ(wf_params_get(&offers, "b.X"), "b");
  ASSERT_NULL(wf_params_get(&offers, "log_path"));
  ASSERT_EQ(offers.n, 8);
  /* Keys in the order they first came: step a's first. */
  ASSERT_STR_EQ(offers.kv[0].key, "X");
  ASSERT_STR_EQ(offers.kv[1].key, "a.X");
  ASSERT_EQ(origins.n, 8);
  ASSERT_STR_EQ(wf_params_get(&origins, "X"), "b");
  ASSERT_STR_EQ(wf_params_get(&origins, "Y"), "a");
  ASSERT_STR_EQ(wf_params_get(&origins, "Z"), "c");
  ASSERT_STR_EQ(wf_params_get(&origins, "c.X"), "c");
  wf_params_finish(&offers);
  wf_params_finish(&origins);

  /* Finishing into lists that hold keys already replaces them in place. */
  wf_params_init(&offers);
  wf_params_set(&offers, "W", "w");
  wf_params_set(&offers, "X", "old");
  char err[256];
  ASSERT_OK(wf_offers_finish(o, &offers, NULL, err, sizeof err));
  ASSERT_EQ(offers.n, 9);
  ASSERT_STR_EQ(offers.kv[1].key, "X");
  ASSERT_STR_EQ(offers.kv[1].value, "b");
  ASSERT_STR_EQ(wf_params_get(&offers, "W"), "w");
  wf_params_finish(&offers);
  wf_offers_destroy(o);
}

static void test_offers_flows(void) {
  wf_offers_t *o = wf_offers_create("ns.p.2.3", 3);
  /* An earlier stage comes first whatever its flow. */
  add(o, "ns.p.1.1", mkstep("s1", "SUCCEEDED", 9, "{\"output.X\":\"s1\",\"output.S\":\"s1\"}"));
  /* The same stage: lower flows, merged by flow before step id. */
  add(o, "ns.p.2.1", mkstep("f2", "SUCCEEDED", 2, "{\"output.X\":\"f2\"}"));
  add(o, "ns.p.2.2", mkstep("f1", "SUCCEEDED", 1, "{\"output.X\":\"f1\",\"output.F\":\"f1\"}"));
  /* Not earlier: the same flow (parallel), a later flow, no flow. */
  add(o, "ns.p.2.4", mkstep("par", "SUCCEEDED", 3, "{\"output.X\":\"par\",\"output.P\":\"1\"}"));
  add(o, "ns.p.2.5", mkstep("late", "SUCCEEDED", 4, "{\"output.X\":\"late\",\"output.L\":\"1\"}"));
  add(o, "ns.p.2.6", mkstep("none", "SUCCEEDED", 0, "{\"output.X\":\"none\",\"output.N\":\"1\"}"));
  wf_params_t offers, origins;
  finish(o, &offers, &origins);
  ASSERT_STR_EQ(wf_params_get(&offers, "X"), "f2");
  ASSERT_STR_EQ(wf_params_get(&origins, "X"), "f2");
  ASSERT_STR_EQ(wf_params_get(&offers, "S"), "s1");
  ASSERT_STR_EQ(wf_params_get(&offers, "F"), "f1");
  ASSERT_NULL(wf_params_get(&offers, "P"));
  ASSERT_NULL(wf_params_get(&offers, "par.X"));
  ASSERT_NULL(wf_params_get(&offers, "L"));
  ASSERT_NULL(wf_params_get(&offers, "N"));
  ASSERT_EQ(offers.n, 8);  /* X S F, and s1.X s1.S f2.X f1.X f1.F */
  wf_params_finish(&offers);
  wf_params_finish(&origins);
  wf_offers_destroy(o);

  /* A consuming step without a flow gets nothing from its own stage. */
  o = wf_offers_create("ns.p.2.3", 0);
  add(o, "ns.p.2.1", mkstep("f1", "SUCCEEDED", 1, "{\"output.X\":\"f1\"}"));
  add(o, "ns.p.1.1", mkstep("s1", "SUCCEEDED", 0, "{\"output.Y\":\"s1\"}"));
  finish(o, &offers, NULL);
  ASSERT_EQ(offers.n, 2);
  ASSERT_STR_EQ(wf_params_get(&offers, "Y"), "s1");
  wf_params_finish(&offers);
  wf_offers_destroy(o);
}

static void test_offers_status(void) {
  wf_offers_t *o = wf_offers_create("ns.p.9.1", 0);
  const char *not_offered[] = {"FAILED", "RUNNING", "CANCELED", "SKIP", "PENDDING", "BOGUS", NULL};
  for (int i = 0; not_offered[i]; i++) {
    char key[32];
    snprintf(key, sizeof key, "ns.p.1.%d", i + 1);
    add(o, key, mkstep("s", not_offered[i], 0, "{\"output.BAD\":\"1\"}"));
  }
  add(o, "ns.p.2.1", mkstep("s", NULL, 0, "{\"output.BAD\":\"1\"}"));  /* no status */
  /* SUCCEEDED in any case, or as its number. */
  add(o, "ns.p.3.1", mkstep("low", "succeeded", 0, "{\"output.A\":\"1\"}"));
  json_t *num = mkstep("num", NULL, 0, "{\"output.B\":\"1\"}");
  json_object_set_new(json_object_get(num, "status"), "status", json_integer(3));
  add(o, "ns.p.3.2", num);
  wf_params_t offers;
  finish(o, &offers, NULL);
  ASSERT_NULL(wf_params_get(&offers, "BAD"));
  ASSERT_STR_EQ(wf_params_get(&offers, "A"), "1");
  ASSERT_STR_EQ(wf_params_get(&offers, "B"), "1");
  ASSERT_EQ(offers.n, 4);
  wf_params_finish(&offers);
  wf_offers_destroy(o);
}

static void test_offers_other_keys(void) {
  wf_offers_t *o = wf_offers_create("ns.p.3.1", 5);
  const char *out = "{\"output.X\":\"x\"}";
  add(o, "ns.q.1.1", mkstep("q", "SUCCEEDED", 0, out));    /* another pipeline */
  add(o, "ns2.p.1.1", mkstep("n2", "SUCCEEDED", 0, out));  /* another namespace */
  add(o, "n.p.1.1", mkstep("n", "SUCCEEDED", 0, out));     /* a prefix of it */
  add(o, "ns.p.1", mkstep("k3", "SUCCEEDED", 0, out));     /* not a pipeline key */
  add(o, "ns.p.1.1.1", mkstep("k5", "SUCCEEDED", 0, out));
  add(o, "ns.p.3.1", mkstep("self", "SUCCEEDED", 1, out)); /* the step itself */
  add(o, "ns.p.4.1", mkstep("later", "SUCCEEDED", 1, out));
  add(o, NULL, mkstep("nokey", "SUCCEEDED", 0, out));      /* no key at all */
  wf_params_t offers;
  finish(o, &offers, NULL);
  ASSERT_EQ(offers.n, 0);
  wf_params_finish(&offers);
  /* Without a key argument, the object's key. */
  json_t *s = mkstep("own", "SUCCEEDED", 0, out);
  json_object_set_new(s, "key", json_string("ns.p.1.1"));
  add(o, NULL, s);
  /* Not objects: ignored. */
  json_t *arr = json_array();
  add(o, "ns.p.1.2", arr);
  add(o, "ns.p.1.3", NULL);
  finish(o, &offers, NULL);
  ASSERT_STR_EQ(wf_params_get(&offers, "own.X"), "x");
  ASSERT_EQ(offers.n, 2);
  wf_params_finish(&offers);
  wf_offers_destroy(o);

  ASSERT_NULL(wf_offers_create("k1", 0));
  ASSERT_NULL(wf_offers_create("ns.p.0.1", 0));
  wf_offers_destroy(NULL);
}

static void test_offers_response_keys(void) {
  wf_offers_t *o = wf_offers_create("ns.p.2.1", 0);
  add(o, "ns.p.1.1",
      mkstep("s", "SUCCEEDED", 0,
             "{\"output.OK\":\"1\",\"output.1X\":\"no\",\"output.\":\"no\",\"outputX\":\"no\","
             "\"output.A-B\":\"no\",\"output.NUM\":7,\"output.NUL\":\"a\\u0000b\","
             "\"output.NULL\":null,\"output.E\":\"\",\"exit_code\":\"0\"}"));
  /* Steps with no outputs, or no response object. */
  add(o, "ns.p.1.2", mkstep("t", "SUCCEEDED", 0, "{\"exit_code\":\"0\"}"));
  add(o, "ns.p.1.3", mkstep("u", "SUCCEEDED", 0, "\"text\""));
  add(o, "ns.p.1.4", mkstep("v", "SUCCEEDED", 0, NULL));
  wf_params_t offers;
  finish(o, &offers, NULL);
  ASSERT_EQ(offers.n, 4);
  ASSERT_STR_EQ(wf_params_get(&offers, "OK"), "1");
  ASSERT_STR_EQ(wf_params_get(&offers, "E"), "");
  ASSERT_STR_EQ(wf_params_get(&offers, "s.OK"), "1");
  ASSERT_STR_EQ(wf_params_get(&offers, "s.E"), "");
  wf_params_finish(&offers);
  wf_offers_destroy(o);
}

static void test_offers_qualified(void) {
  wf_offers_t *o = wf_offers_create("ns.p.5.1", 0);
  add(o, "ns.p.1.1", mkstep("build-1.x_Y", "SUCCEEDED", 0, "{\"output.A\":\"1\"}"));
  add(o, "ns.p.2.1", mkstep("has space", "SUCCEEDED", 0, "{\"output.B\":\"2\"}"));
  add(o, "ns.p.3.1", mkstep(NULL, "SUCCEEDED", 0, "{\"output.C\":\"3\"}"));
  add(o, "ns.p.4.1", mkstep("", "SUCCEEDED", 0, "{\"output.D\":\"4\"}"));
  wf_params_t offers, origins;
  finish(o, &offers, &origins);
  ASSERT_EQ(offers.n, 5);
  ASSERT_STR_EQ(wf_params_get(&offers, "build-1.x_Y.A"), "1");
  ASSERT_STR_EQ(wf_params_get(&offers, "B"), "2");
  ASSERT_STR_EQ(wf_params_get(&offers, "C"), "3");
  ASSERT_STR_EQ(wf_params_get(&offers, "D"), "4");
  /* Origins: the step's name; its key when it has none. */
  ASSERT_EQ(origins.n, 5);
  ASSERT_STR_EQ(wf_params_get(&origins, "build-1.x_Y.A"), "build-1.x_Y");
  ASSERT_STR_EQ(wf_params_get(&origins, "A"), "build-1.x_Y");
  ASSERT_STR_EQ(wf_params_get(&origins, "B"), "has space");
  ASSERT_STR_EQ(wf_params_get(&origins, "C"), "ns.p.3.1");
  ASSERT_STR_EQ(wf_params_get(&origins, "D"), "ns.p.4.1");
  wf_params_finish(&offers);
  wf_params_finish(&origins);
  wf_offers_destroy(o);
}

static void test_offers_fed_twice(void) {
  wf_offers_t *o = wf_offers_create("ns.p.2.1", 0);
  add(o, "ns.p.1.1", mkstep("a", "SUCCEEDED", 0, "{\"output.X\":\"old\",\"output.Y\":\"y\"}"));
  add(o, "ns.p.1.1", mkstep("a", "SUCCEEDED", 0, "{\"output.X\":\"new\"}"));
  wf_params_t offers;
  finish(o, &offers, NULL);
  ASSERT_EQ(offers.n, 2);
  ASSERT_STR_EQ(wf_params_get(&offers, "X"), "new");
  wf_params_finish(&offers);
  /* A later version that did not succeed takes the step's outputs away. */
  add(o, "ns.p.1.1", mkstep("a", "FAILED", 0, "{\"output.X\":\"new\"}"));
  finish(o, &offers, NULL);
  ASSERT_EQ(offers.n, 0);
  wf_params_finish(&offers);
  wf_offers_destroy(o);
}

/* A step whose one output's value is n bytes long (name "V", step "s": two
 * bytes more to keep). */
static json_t *big_step(size_t n) {
  json_t *s = mkstep("s", "SUCCEEDED", 0, "{}");
  char *v = run('v', n);
  json_object_set_new(json_object_get(json_object_get(s, "status"), "response"), "output.V",
                      json_string(v));
  free(v);
  return s;
}

static void test_offers_kept_bound(void) {
  char err[256];
  wf_offers_t *o = wf_offers_create("ns.p.9.1", 0);
  /* Names, values and the step's name are kept: exactly the bound. */
  add(o, "ns.p.1.1", big_step(WF_OFFERS_MAX_KEPT - 2 - 2));
  add(o, "ns.p.1.2", mkstep("t", "SUCCEEDED", 0, "{\"output.W\":\"\"}"));
  json_t *s = mkstep("u", "SUCCEEDED", 0, "{\"output.Z\":\"\"}");
  ASSERT_EQ(wf_offers_add(o, "ns.p.1.3", s, err, sizeof err), -1);
  ASSERT_STR_EQ(err, "the outputs of the earlier steps add up to over 8388608 bytes");
  /* Not kept; and a step fed again is counted once. */
  add(o, "ns.p.1.2", mkstep("t", "SUCCEEDED", 0, "{\"output.W\":\"\"}"));
  ASSERT_EQ(wf_offers_add(o, "ns.p.1.3", s, err, sizeof err), -1);
  json_decref(s);
  wf_offers_destroy(o);

  o = wf_offers_create("ns.p.9.1", 0);
  s = big_step(WF_OFFERS_MAX_KEPT - 2 + 1);  /* one byte over */
  ASSERT_EQ(wf_offers_add(o, "ns.p.1.1", s, err, sizeof err), -1);
  json_decref(s);
  wf_params_t offers;
  finish(o, &offers, NULL);
  ASSERT_EQ(offers.n, 0);
  wf_params_finish(&offers);
  wf_offers_destroy(o);
}

static void test_offers_total_bound(void) {
  char err[256];
  /* "V" and "s.V", each with the value: 1 + 3 + 2 * n bytes. */
  size_t n = (WF_OFFERS_MAX_TOTAL - 4) / 2;
  wf_offers_t *o = wf_offers_create("ns.p.9.1", 0);
  add(o, "ns.p.1.1", big_step(n));
  wf_params_t offers;
  finish(o, &offers, NULL);
  ASSERT_EQ(offers.n, 2);
  ASSERT_EQ(strlen(wf_params_get(&offers, "s.V")), n);
  wf_params_finish(&offers);
  wf_offers_destroy(o);

  o = wf_offers_create("ns.p.9.1", 0);
  add(o, "ns.p.1.1", big_step(n + 1));
  wf_params_t origins;
  wf_params_init(&offers);
  wf_params_init(&origins);
  wf_params_set(&offers, "KEEP", "1");
  ASSERT_EQ(wf_offers_finish(o, &offers, &origins, err, sizeof err), -1);
  ASSERT_STR_EQ(err, "the outputs offered by the earlier steps add up to over 1048576 bytes");
  ASSERT_EQ(offers.n, 1);
  ASSERT_EQ(origins.n, 0);
  wf_params_finish(&offers);
  wf_offers_destroy(o);

  /* A value overwritten in the merge counts once: its last value. */
  o = wf_offers_create("ns.p.9.1", 0);
  add(o, "ns.p.1.1", big_step(n));
  add(o, "ns.p.1.2", big_step(n));
  finish(o, &offers, NULL);
  ASSERT_EQ(offers.n, 2);
  wf_params_finish(&offers);
  wf_offers_destroy(o);
}

/* Many small outputs over many steps merge in linear time (a quadratic
 * merge would take minutes here). */
static void test_offers_many(void) {
  wf_offers_t *o = wf_offers_create("ns.p.999.1", 0);
  wf_buf_t b;
  wf_buf_init(&b, 1 << 20);
  for (int step = 1; step <= 500; step++) {
    wf_buf_reset(&b);
    wf_buf_printf(&b, "{");
    for (int i = 0; i < 100; i++)
      wf_buf_printf(&b, "%s\"output.N%d_%d\":\"v\"", i ? "," : "", step, i);
    wf_buf_printf(&b, "}");
    char key[32], name[16];
    snprintf(key, sizeof key, "ns.p.1.%d", step);
    snprintf(name, sizeof name, "s%d", step);
    add(o, key, mkstep(name, "SUCCEEDED", 0, b.data));
  }
  wf_buf_finish(&b);
  wf_params_t offers;
  finish(o, &offers, NULL);
  ASSERT_EQ(offers.n, 100000);
  ASSERT_STR_EQ(wf_params_get(&offers, "s500.N500_99"), "v");
  wf_params_finish(&offers);
  wf_offers_destroy(o);
}

/* wf_offers_add_bytes answers as wf_offers_add on jansson's parse, for
 * values its scanner reads and for values it declines. */
static void test_offers_bytes(void) {
  static const char *const vals[] = {
      "{\"name\":\"b\",\"status\":{\"status\":\"SUCCEEDED\",\"flow_number\":2,"
      "\"response\":{\"output.A\":\"1\",\"exit_code\":\"0\",\"output.B\":\"x y\"}}}",
      "{\"name\":\"b\",\"status\":{\"status\":3,\"response\":{\"output.A\":\"1\"}}}",
      "{\"name\":\"b\",\"status\":{\"status\":\"succeeded\",\"response\":"
      "{\"output.A\":\"1\",\"output.A\":\"2\"}}}",
      "{\"name\":7,\"status\":{\"status\":\"SUCCEEDED\",\"flow_number\":1.5,"
      "\"response\":{\"output.A\":5,\"output.C\":\"c\"}}}",
      "{\"name\":\"b\",\"status\":{\"status\":\"SUCCEEDED\",\"response\":"
      "{\"output.ML\":\"l1\\nl2\"}}}",
      "{\"name\":\"b\",\"status\":{\"status\":\"FAILED\",\"response\":{\"output.A\":\"1\"}}}",
      "{\"name\":\"b\",\"status\":{\"status\":null,\"response\":{\"output.A\":\"1\"}}}",
      "{\"status\":{\"status\":\"SUCCEEDED\",\"status\":\"FAILED\",\"response\":"
      "{\"output.A\":\"1\"}}}",
      "{\"name\":\"b\",\"status\":[1],\"x\":{\"y\":[true,null,-1.25]}}",
      "{\"name\":\"b\",\"status\":{\"status\":\"SUCCEEDED\",\"response\":"
      "{\"output.A\":\"caf\u00e9\"}}}",
      "{\"name\":\"b\",\"status\":{\"status\":\"SUCCEEDED\",\"response\":{\"output.A\":\"1\"}}",
      "[1,2]",
      "",
  };
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    wf_offers_t *a = wf_offers_create("ns.p.2.1", 0), *b = wf_offers_create("ns.p.2.1", 0);
    char ea[256] = "", eb[256] = "";
    json_t *o = json_loads(vals[i], 0, NULL);
    int ra = json_is_object(o) ? wf_offers_add(a, "ns.p.1.1", o, ea, sizeof ea) : 0;
    json_decref(o);
    int rb = wf_offers_add_bytes(b, "ns.p.1.1", vals[i], strlen(vals[i]), eb, sizeof eb);
    ASSERT_EQ(ra, rb);
    wf_params_t pa, pb, oa, ob;
    wf_params_init(&pa);
    wf_params_init(&pb);
    wf_params_init(&oa);
    wf_params_init(&ob);
    ASSERT_EQ(wf_offers_finish(a, &pa, &oa, ea, sizeof ea), wf_offers_finish(b, &pb, &ob, eb, sizeof eb));
    if (pa.n != pb.n) WF_FAIL("value %zu: %zu offers from jansson, %zu from the bytes", i, pa.n, pb.n);
    for (size_t k = 0; k < pa.n; k++) {
      ASSERT_STR_EQ(pa.kv[k].key, pb.kv[k].key);
      ASSERT_STR_EQ(pa.kv[k].value, pb.kv[k].value);
      ASSERT_STR_EQ(oa.kv[k].value, ob.kv[k].value);
    }
    wf_params_finish(&pa);
    wf_params_finish(&pb);
    wf_params_finish(&oa);
    wf_params_finish(&ob);
    wf_offers_destroy(a);
    wf_offers_destroy(b);
  }
}

/* Names that change how programs start are guarded (offered only
 * qualified); ordinary ones and near misses are not. */
static void test_guarded(void) {
  static const char *const yes[] = {"PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV",
                                    "SHELLOPTS", "IFS", "PYTHONPATH", "NODE_OPTIONS",
                                    "BASH_FUNC_x%%", "JAVA_TOOL_OPTIONS", "HOME"};
  static const char *const no[] = {"IMAGE", "PATHS", "MY_PATH", "LD", "path", "TAG", "HOMEDIR"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
    if (!wf_output_name_guarded(yes[i])) WF_FAIL("%s is not guarded", yes[i]);
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    if (wf_output_name_guarded(no[i])) WF_FAIL("%s is guarded", no[i]);
}

static const wf_test_t tests[] = {
    WF_TEST(basic),          WF_TEST(value_forms),       WF_TEST(repeat_later_wins),
    WF_TEST(heredoc),        WF_TEST(heredoc_empty),     WF_TEST(heredoc_unclosed),
    WF_TEST(crlf),           WF_TEST(names),             WF_TEST(nul),
    WF_TEST(utf8),           WF_TEST(value_bound),       WF_TEST(total_bound),
    WF_TEST(names_bound),    WF_TEST(truncated),         WF_TEST(summary),
    WF_TEST(summary_cut),    WF_TEST(pipeline_pos),      WF_TEST(offers_order),
    WF_TEST(offers_flows),   WF_TEST(offers_status),     WF_TEST(offers_other_keys),
    WF_TEST(offers_response_keys), WF_TEST(offers_qualified), WF_TEST(offers_fed_twice),
    WF_TEST(offers_kept_bound), WF_TEST(offers_total_bound), WF_TEST(offers_many),
    WF_TEST(guarded),        WF_TEST(offers_bytes),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
