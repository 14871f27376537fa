/*
 * test-jscan: the JSON scanner (src/model/jscan.c) on its own: what each
 * reader accepts and where it declines, the two flags, the depth bound, the
 * object and array walkers' callback contract, and, on every cut and
 * one-byte change of a few documents, that a document the scanner accepts
 * is one jansson accepts too.  Its two users have differential tests of
 * their own (test/etcd/test-parse.c, test/model/test-headscan.c).  No loop.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf-test.h"
#include "wf/jscan.h"

#define D WF_JSCAN_DECLINE

static wf_jscan_t scan(const char *text, unsigned flags) {
  wf_jscan_t s;
  wf_jscan_init(&s, text, strlen(text), 8, flags);
  return s;
}

/* The whole text is one value the scanner accepts. */
static int accepts(const char *text, int max_depth, unsigned flags) {
  wf_jscan_t s;
  wf_jscan_init(&s, text, strlen(text), max_depth, flags);
  wf_jscan_ws(&s);
  return wf_jscan_skip(&s) == 0 && wf_jscan_end(&s) == 0;
}

static void test_ws_lit_end(void) {
  wf_jscan_t s = scan(" \t\r\n true  ", 0);
  wf_jscan_ws(&s);
  ASSERT_OK(wf_jscan_lit(&s, "true", 4));
  ASSERT_OK(wf_jscan_end(&s));
  s = scan("tru", 0);
  ASSERT_EQ(wf_jscan_lit(&s, "true", 4), D);
  s = scan("null x", 0);
  ASSERT_OK(wf_jscan_lit(&s, "null", 4));
  ASSERT_EQ(wf_jscan_end(&s), D);
  /* A form feed is not JSON whitespace. */
  s = scan("\f1", 0);
  wf_jscan_ws(&s);
  ASSERT_EQ(*s.p, '\f');
}

static void test_str(void) {
  const char *b;
  size_t n;
  wf_jscan_t s = scan("\"ab c\"x", 0);
  ASSERT_OK(wf_jscan_str(&s, &b, &n));
  ASSERT_EQ(n, 4);
  ASSERT(memcmp(b, "ab c", 4) == 0);
  ASSERT_EQ(*s.p, 'x');
  s = scan("\"\"", 0);
  ASSERT_OK(wf_jscan_str(&s, &b, &n));
  ASSERT_EQ(n, 0);
  /* Declined: escapes, control characters, non-ASCII, no closing quote,
   * not a string at all. */
  static const char *const bad[] = {"\"a\\\"b\"", "\"a\\u0041\"", "\"a\tb\"", "\"a\x01\"",
                                    "\"caf\xc3\xa9\"", "\"abc", "abc", ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    s = scan(bad[i], 0);
    if (wf_jscan_str(&s, &b, &n) != D) WF_FAIL("accepted string %s", bad[i]);
  }
}

static void test_printable_flag(void) {
  const char *b;
  size_t n;
  /* DEL is an ordinary byte by default, declined with WF_JSCAN_PRINTABLE. */
  wf_jscan_t s = scan("\"a\x7f\"", 0);
  ASSERT_OK(wf_jscan_str(&s, &b, &n));
  ASSERT_EQ(n, 2);
  s = scan("\"a\x7f\"", WF_JSCAN_PRINTABLE);
  ASSERT_EQ(wf_jscan_str(&s, &b, &n), D);
  s = scan("\"a~\"", WF_JSCAN_PRINTABLE);
  ASSERT_OK(wf_jscan_str(&s, &b, &n));
}

static void num_ok(const char *text, unsigned flags, long long want, int want_int) {
  int64_t v = 12345;
  int is_int = -1;
  wf_jscan_t s = scan(text, flags);
  if (wf_jscan_num(&s, &v, &is_int) != 0) WF_FAIL("declined number %s", text);
  ASSERT_EQ(is_int, want_int);
  if (want_int) ASSERT_EQ(v, want);
}

static void num_no(const char *text, unsigned flags) {
  int64_t v;
  int is_int;
  wf_jscan_t s = scan(text, flags);
  if (wf_jscan_num(&s, &v, &is_int) != D) WF_FAIL("accepted number %s", text);
}

static void test_num(void) {
  num_ok("0", 0, 0, 1);
  num_ok("-0", 0, 0, 1);
  num_ok("7,", 0, 7, 1);
  num_ok("-12}", 0, -12, 1);
  num_ok("999999999999999999", 0, 999999999999999999LL, 1);   /* 18 digits */
  num_ok("-999999999999999999", 0, -999999999999999999LL, 1);
  num_ok("2.5", 0, 2, 0);
  num_ok("-0.25", 0, 0, 0);
  num_no("9999999999999999999", 0);  /* 19 digits: might not fit */
  num_no("01", 0);
  num_no("-", 0);
  num_no("-a", 0);
  num_no("1.", 0);
  num_no(".5", 0);
  num_no("1e3", 0);
  num_no("1.5E3", 0);
  num_no("+1", 0);
  /* A number of 40 bytes is read, one of 41 is left to jansson. */
  char longest[42];
  memset(longest, '0', sizeof longest);
  memcpy(longest, "1.", 2);
  longest[39] = '1';
  longest[40] = '\0';
  num_ok(longest, 0, 1, 0);
  longest[40] = '1';
  longest[41] = '\0';
  num_no(longest, 0);
  /* WF_JSCAN_INT_ONLY: fractions decline, integers do not. */
  num_no("2.5", WF_JSCAN_INT_ONLY);
  num_ok("25", WF_JSCAN_INT_ONLY, 25, 1);
}

/* Records the members of an object: "k=<first byte of the value>;". */
typedef struct rec_s {
  char text[256];
  size_t len;
  int decline_at;  /* the member that declines (-1: none) */
  int n;
} rec_t;

static int rec_member(wf_jscan_t *s, const char *k, size_t kn, void *ctx) {
  rec_t *r = ctx;
  ASSERT(s->p < s->end);  /* the walker never calls at the end of the text */
  r->len += (size_t)snprintf(r->text + r->len, sizeof r->text - r->len, "%.*s=%c;", (int)kn, k,
                             *s->p);
  if (r->n++ == r->decline_at) return D;
  return wf_jscan_skip(s);
}

static int rec_elem(wf_jscan_t *s, void *ctx) {
  rec_t *r = ctx;
  ASSERT(s->p < s->end);
  r->len += (size_t)snprintf(r->text + r->len, sizeof r->text - r->len, "%c;", *s->p);
  if (r->n++ == r->decline_at) return D;
  return wf_jscan_skip(s);
}

static void test_object(void) {
  rec_t r = {.decline_at = -1};
  wf_jscan_t s = scan("{ \"a\" : 1 , \"bc\":{\"x\":[]},\"d\":\"s\" ,\"e\":null}", 0);
  ASSERT_OK(wf_jscan_object(&s, rec_member, &r));
  ASSERT_STR_EQ(r.text, "a=1;bc={;d=\";e=n;");
  ASSERT_EQ(s.depth, 0);
  ASSERT_OK(wf_jscan_end(&s));
  /* Only the top-level members reach the callback; skipped values are
   * walked by the scanner itself. */
  ASSERT_EQ(r.n, 4);

  rec_t e = {.decline_at = -1};
  s = scan("{ }", 0);
  ASSERT_OK(wf_jscan_object(&s, rec_member, &e));
  ASSERT_EQ(e.n, 0);

  /* A callback's decline stops the walk. */
  rec_t d = {.decline_at = 1};
  s = scan("{\"a\":1,\"b\":2,\"c\":3}", 0);
  ASSERT_EQ(wf_jscan_object(&s, rec_member, &d), D);
  ASSERT_EQ(d.n, 2);

  static const char *const bad[] = {"{\"a\":1,}", "{\"a\" 1}", "{\"a\":}", "{a:1}", "{\"a\":1",
                                    "{\"a\":1 \"b\":2}", "{,}", "[1]", "{\"a\":1]", "{\"a\":"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    rec_t x = {.decline_at = -1};
    s = scan(bad[i], 0);
    if (wf_jscan_object(&s, rec_member, &x) != D) WF_FAIL("accepted object %s", bad[i]);
  }
}

static void test_array(void) {
  rec_t r = {.decline_at = -1};
  wf_jscan_t s = scan("[1, \"a\" ,[2],{\"k\":true},false]", 0);
  ASSERT_OK(wf_jscan_array(&s, rec_elem, &r));
  ASSERT_STR_EQ(r.text, "1;\";[;{;f;");
  ASSERT_OK(wf_jscan_end(&s));
  rec_t e = {.decline_at = -1};
  s = scan("[]", 0);
  ASSERT_OK(wf_jscan_array(&s, rec_elem, &e));
  ASSERT_EQ(e.n, 0);
  static const char *const bad[] = {"[1,]", "[1 2]", "[", "[1", "{}", "[,1]", "[1}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    rec_t x = {.decline_at = -1};
    s = scan(bad[i], 0);
    if (wf_jscan_array(&s, rec_elem, &x) != D) WF_FAIL("accepted array %s", bad[i]);
  }
}

static void test_depth(void) {
  /* max_depth 3: objects and arrays may open at depths 0, 1 and 2; one
   * opened at depth 3 declines, even an empty one; a scalar at depth 3 is
   * fine. */
  ASSERT(accepts("[[[1]]]", 3, 0));
  ASSERT(accepts("{\"a\":{\"b\":[\"c\",2]}}", 3, 0));
  ASSERT(!accepts("[[[[]]]]", 3, 0));
  ASSERT(!accepts("{\"a\":{\"b\":[{}]}}", 3, 0));
  ASSERT(accepts("1", 0, 0));  /* a scalar opens nothing */
  ASSERT(!accepts("{}", 0, 0));
  ASSERT(accepts("{}", 1, 0));
  /* Hostile nesting declines without recursing further. */
  size_t n = 100000;
  char *deep = malloc(2 * n + 1);
  ASSERT_NOT_NULL(deep);
  memset(deep, '[', n);
  memset(deep + n, ']', n);
  deep[2 * n] = '\0';
  ASSERT(!accepts(deep, 64, 0));
  free(deep);
}

static void test_once(void) {
  unsigned seen = 0;
  ASSERT_OK(wf_jscan_once(&seen, 1));
  ASSERT_OK(wf_jscan_once(&seen, 4));
  ASSERT_EQ(wf_jscan_once(&seen, 1), D);
  ASSERT_EQ(wf_jscan_once(&seen, 4), D);
  ASSERT_OK(wf_jscan_once(&seen, 2));
  ASSERT_EQ(seen, 7);
  ASSERT(WF_JSCAN_KEYIS("status", 6, "status"));
  ASSERT(!WF_JSCAN_KEYIS("statu", 5, "status"));
  ASSERT(!WF_JSCAN_KEYIS("statuses", 8, "status"));
}

/* Whatever the scanner accepts, jansson accepts: on every cut and every
 * one-byte change of a few documents, under both flag sets. */
static void test_agrees_with_jansson(void) {
  static const char *const docs[] = {
      "{\"header\":{\"revision\":\"12\"},"
      "\"kvs\":[{\"key\":\"YS8x\",\"mod_revision\":\"9\"}],"
      "\"more\":true,\"count\":\"5000\"}",
      " {\"status\" : { \"status\" : 3 , \"start_at\" : -12.5 , \"node\" : null } } \n",
      "[[],{},[1,-0,0.25,\"x\",true,false,null],{\"a\":[{\"b\":{}}]}]",
  };
  static const char subst[] = "\"\\{}[],:0-9a \x01\x7f\xc3tfn.eE+";
  long accepted = 0;
  for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
    size_t n = strlen(docs[i]);
    char *buf = malloc(n + 1);
    ASSERT_NOT_NULL(buf);
    for (size_t v = 0; v <= n * (sizeof subst - 1) + n; v++) {
      size_t len = n;
      memcpy(buf, docs[i], n);
      if (v < n) {
        len = v;  /* a cut */
      } else if (v > n) {
        size_t k = v - n - 1;
        buf[k / (sizeof subst - 1)] = subst[k % (sizeof subst - 1)];
      }
      buf[len] = '\0';
      for (unsigned flags = 0; flags <= (WF_JSCAN_PRINTABLE | WF_JSCAN_INT_ONLY); flags++) {
        wf_jscan_t s;
        wf_jscan_init(&s, buf, len, 4, flags);
        wf_jscan_ws(&s);
        if (wf_jscan_skip(&s) || wf_jscan_end(&s)) continue;
        accepted++;
        json_error_t je;
        json_t *j = json_loadb(buf, len, JSON_DECODE_ANY, &je);
        if (!j) WF_FAIL("scanner accepted what jansson rejects (%s): %.*s", je.text, (int)len, buf);
        json_decref(j);
      }
    }
    free(buf);
  }
  /* Most variants are plain JSON: the point is to accept them. */
  ASSERT(accepted > 1000);
}

static const wf_test_t tests[] = {
    WF_TEST(ws_lit_end),   WF_TEST(str),   WF_TEST(printable_flag), WF_TEST(num),
    WF_TEST(object),       WF_TEST(array), WF_TEST(depth),          WF_TEST(once),
    WF_TEST(agrees_with_jansson),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
