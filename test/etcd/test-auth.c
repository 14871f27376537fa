/*
 * test-auth: the etcd client against a real etcd with authentication on
 * (test/etcd/with_auth_etcd.py: user root, simple tokens that expire after
 * 2 s without use).  Calls without credentials and with a wrong password
 * fail with a clear message that never holds the password; concurrent calls
 * share one authenticate; calls and watches go on across token expiry and a
 * token etcd does not know; a watch whose create is refused for its token
 * reconnects with a new one and loses no event.
 */
#include "etcd-sync.h"
#include "src/etcd/etcd-internal.h"

#include <unistd.h>

static const char *user, *password;
static uint64_t ttl_ms;

static wf_etcd_t *connect_as(const char *u, const char *pw) {
  const char *ep = wf_test_etcd();
  wf_etcd_opts_t o;
  memset(&o, 0, sizeof o);
  o.endpoints = &ep;
  o.nendpoints = 1;
  o.request_timeout_ms = 5000;
  o.connect_timeout_ms = 2000;
  o.user = u;
  o.password = pw;
  wf_etcd_t *e = wf_etcd_create(&t_loop, &o);
  ASSERT_NOT_NULL(e);
  return e;
}

static void close_client(wf_etcd_t *e) {
  int closed = 0;
  wf_etcd_close(e, t_close_cb, &closed);
  RUN_UNTIL(closed);
}

static void get_with(wf_etcd_t *e, const char *k, t_res_t *r) {
  memset(r, 0, sizeof *r);
  CALL(wf_etcd_range(e, k, strlen(k), NULL, 0, NULL, t_range_cb, r));
  RUN_UNTIL(r->done);
}

/* Waits out a token's life: "simple" tokens expire after ttl without use. */
static void let_token_expire(void) { t_sleep_ms(ttl_ms + 1500); }

static void test_no_credentials(void) {
  wf_etcd_t *e = connect_as(NULL, NULL);
  t_res_t r;
  get_with(e, "/a/x", &r);
  ASSERT_EQ(r.err, WF_EETCD);
  ASSERT_NOT_NULL(strstr(wf_etcd_errmsg(e), "user name is empty"));
  t_res_free(&r);
  close_client(e);
}

static int wrong_connected;
static void wrong_on_events(wf_etcd_watch_t *w, const wf_etcd_event_t *ev, size_t n,
                            void *data) {
  WF_FAIL("event with a wrong password");
}
static void wrong_on_state(wf_etcd_watch_t *w, int connected, int err, void *data) {
  if (connected) wrong_connected++;
}

static void test_wrong_password(void) {
  const char *bad = "not-the-password-42";
  wf_etcd_t *e = connect_as(user, bad);
  for (int i = 0; i < 3; i++) {  /* refused again on each try, never stuck */
    t_res_t r;
    get_with(e, "/a/x", &r);
    ASSERT_EQ(r.err, WF_EETCD);
    const char *m = wf_etcd_errmsg(e);
    ASSERT_NOT_NULL(strstr(m, "authentication as root failed"));
    ASSERT_NOT_NULL(strstr(m, "invalid user ID or password"));
    ASSERT_NULL(strstr(m, bad));
    t_res_free(&r);
  }
  ASSERT_NULL(e->token);
  /* A watch keeps retrying, never reports itself connected. */
  wf_etcd_watch_cbs_t cbs = {wrong_on_events, NULL, wrong_on_state};
  wf_etcd_watch_t *w = wf_etcd_watch(e, "/a/", 3, 0, &cbs, NULL);
  ASSERT_NOT_NULL(w);
  t_sleep_ms(1500);
  ASSERT_EQ(wrong_connected, 0);
  wf_etcd_watch_cancel(w);
  close_client(e);
}

static int puts_done, puts_failed;
static void count_put_cb(int err, int64_t rev, void *data) {
  ASSERT(!t_in_call);
  puts_done++;
  if (err) puts_failed++;
}

/* Puts /a/burst00../a/burst19, all at once. */
static void put_burst(void) {
  puts_done = puts_failed = 0;
  for (int i = 0; i < 20; i++) {
    char k[32];
    snprintf(k, sizeof k, "/a/burst%02d", i);
    CALL(wf_etcd_put(t_etcd, k, strlen(k), "v", 1, 0, count_put_cb, NULL));
  }
  RUN_UNTIL(puts_done == 20);
  ASSERT_EQ(puts_failed, 0);
}

/* Twenty calls before any token: one authenticate serves them all. */
static void test_shared_authenticate(void) {
  ASSERT_EQ(t_etcd->token_gen, 0);
  put_burst();
  ASSERT_EQ(t_etcd->token_gen, 1);
  ASSERT_NOT_NULL(t_etcd->token);
  ASSERT(t_etcd->token[0] != '\0');
}

static size_t list_keys;
static int list_done, list_err;
static void list_page_cb(const wf_etcd_kv_t *kvs, size_t n, void *data) { list_keys += n; }
static void list_done_cb(int err, int64_t rev, void *data) {
  ASSERT(!t_in_call);
  list_done = 1;
  list_err = err;
}

/* The token expires: the next calls (five at once) get one new token and
 * succeed, each sent twice at most. */
static void test_expiry(void) {
  put_burst();  /* the keys the calls below read */
  unsigned gen = t_etcd->token_gen;
  let_token_expire();
  t_res_t r[5];
  for (int i = 0; i < 5; i++) {
    memset(&r[i], 0, sizeof r[i]);
    CALL(wf_etcd_range(t_etcd, "/a/burst00", 10, NULL, 0, NULL, t_range_cb, &r[i]));
  }
  for (int i = 0; i < 5; i++) {
    RUN_UNTIL(r[i].done);
    ASSERT_OK(r[i].err);
    ASSERT_EQ(r[i].nkvs, 1);
    t_res_free(&r[i]);
  }
  ASSERT_EQ(t_etcd->token_gen, gen + 1);
  /* A paged list runs through the same path. */
  let_token_expire();
  list_keys = 0;
  list_done = 0;
  CALL(wf_etcd_list(t_etcd, "/a/", 3, 6, list_page_cb, list_done_cb, NULL));
  RUN_UNTIL(list_done);
  ASSERT_OK(list_err);
  ASSERT_EQ(list_keys, 20);
  ASSERT_EQ(t_etcd->token_gen, gen + 2);
}

/* A token etcd never issued (or forgot in a restart): 401, re-auth, resend. */
static void test_unknown_token(void) {
  unsigned gen = t_etcd->token_gen;
  wf__etcd_wipe_free(t_etcd->token);
  t_etcd->token = wf_strdup("forged.token.1");
  t_put("/a/forged", "y");
  ASSERT_EQ(t_etcd->token_gen, gen + 1);
  ASSERT(strcmp(t_etcd->token, "forged.token.1") != 0);
}

/* ---- watch ---------------------------------------------------------------------------------- */

static int w_connected, w_disconnected;
static size_t w_n;
static char w_keys[8][32];

static void w_on_events(wf_etcd_watch_t *w, const wf_etcd_event_t *ev, size_t n, void *data) {
  ASSERT(!t_in_call);
  for (size_t i = 0; i < n; i++) {
    ASSERT(w_n < 8);
    snprintf(w_keys[w_n++], sizeof w_keys[0], "%s", ev[i].kv.key);
  }
}
static void w_on_state(wf_etcd_watch_t *w, int connected, int err, void *data) {
  if (connected) w_connected++;
  else w_disconnected++;
}

static void test_watch_across_expiry(void) {
  wf_etcd_watch_cbs_t cbs = {w_on_events, NULL, w_on_state};
  wf_etcd_watch_t *w = wf_etcd_watch(t_etcd, "/w/", 3, 0, &cbs, NULL);
  ASSERT_NOT_NULL(w);
  RUN_UNTIL(w_connected == 1);
  /* An open stream outlives its token (etcd checks it at create only). */
  let_token_expire();
  t_put("/w/one", "1");
  RUN_UNTIL(w_n == 1);
  ASSERT_STR_EQ(w_keys[0], "/w/one");
  /* Reconnecting with an expired token: etcd answers created+canceled
   * (Unauthenticated).  That is not "connected"; a new token is fetched and
   * the watch resumes after /w/one. */
  let_token_expire();
  unsigned gen = t_etcd->token_gen;
  wf__etcd_watch_drop(w);
  RUN_UNTIL(w_disconnected == 1);
  RUN_UNTIL(w_connected == 2);
  ASSERT_EQ(t_etcd->token_gen, gen + 1);
  t_put("/w/two", "2");
  RUN_UNTIL(w_n == 2);
  ASSERT_STR_EQ(w_keys[1], "/w/two");
  t_sleep_ms(300);
  ASSERT_EQ(w_n, 2);
  ASSERT_EQ(w_connected, 2);
  wf_etcd_watch_cancel(w);
}

static const wf_test_t tests[] = {
    WF_TEST(no_credentials), WF_TEST(wrong_password), WF_TEST(shared_authenticate),
    WF_TEST(expiry), WF_TEST(unknown_token), WF_TEST(watch_across_expiry),
};

int main(int argc, char **argv) {
  user = getenv("WF_TEST_ETCD_USER");
  password = getenv("WF_TEST_ETCD_PASSWORD");
  const char *ttl = getenv("WF_TEST_ETCD_TOKEN_TTL");
  if (!user || !password || !ttl) WF_FAIL("run under test/etcd/with_auth_etcd.py");
  ttl_ms = (uint64_t)atoi(ttl) * 1000;
  ASSERT_OK(uv_loop_init(&t_loop));
  t_etcd = connect_as(user, password);
  int rc = WF_TEST_MAIN(argc, argv, tests);
  t_teardown();
  return rc;
}
