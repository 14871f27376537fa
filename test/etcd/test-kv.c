/*
 * test-kv: unary calls against a real etcd (WF_TEST_ETCD): put/range/delete
 * with every range option, put_if (create-if-absent, success, conflict with
 * the current kv), compaction errors, etcd error messages, endpoint failover
 * and closing with calls in flight.
 */
#include "etcd-sync.h"

static void test_put_range_delete(void) {
  int64_t r1 = t_put("/kv/a", "hello");
  /* A value with NUL bytes and 0xff survives base64 both ways. */
  t_res_t r = {0};
  static const char bin[] = {'x', '\0', 'y', (char)0xff};
  CALL(wf_etcd_put(t_etcd, "/kv/b", 5, bin, sizeof bin, 0, t_put_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.rev, r1 + 1);
  int64_t r3 = t_put("/kv/a", "world");
  t_put("/kw", "outside");

  t_get("/kv/a", &r);
  ASSERT_EQ(r.nkvs, 1);
  ASSERT_STR_EQ(r.kvs[0].key, "/kv/a");
  ASSERT_STR_EQ(r.kvs[0].value, "world");
  ASSERT_EQ(r.kvs[0].create_revision, r1);
  ASSERT_EQ(r.kvs[0].mod_revision, r3);
  ASSERT_EQ(r.kvs[0].version, 2);
  ASSERT_EQ(r.count, 1);
  t_res_free(&r);

  /* The prefix, its options, and an old revision. */
  char end[8];
  size_t elen = wf_etcd_prefix_end("/kv/", 4, end);
  end[elen] = '\0';
  CALL(wf_etcd_range(t_etcd, "/kv/", 4, end, elen, NULL, t_range_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.nkvs, 2);
  ASSERT_STR_EQ(r.kvs[1].key, "/kv/b");
  ASSERT_EQ(r.kvs[1].value_len, sizeof bin);
  ASSERT(memcmp(r.kvs[1].value, bin, sizeof bin) == 0);
  ASSERT_EQ(r.more, 0);
  t_res_free(&r);

  wf_etcd_range_opts_t o = {.limit = 1};
  CALL(wf_etcd_range(t_etcd, "/kv/", 4, end, elen, &o, t_range_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.nkvs, 1);
  ASSERT_EQ(r.more, 1);
  ASSERT_EQ(r.count, 2);
  t_res_free(&r);

  o = (wf_etcd_range_opts_t){.keys_only = 1};
  CALL(wf_etcd_range(t_etcd, "/kv/", 4, end, elen, &o, t_range_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_EQ(r.nkvs, 2);
  ASSERT_EQ(r.kvs[0].value_len, 0);
  ASSERT_STR_EQ(r.kvs[0].value, "");
  t_res_free(&r);

  o = (wf_etcd_range_opts_t){.count_only = 1};
  CALL(wf_etcd_range(t_etcd, "/kv/", 4, end, elen, &o, t_range_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_EQ(r.nkvs, 0);
  ASSERT_EQ(r.count, 2);
  t_res_free(&r);

  o = (wf_etcd_range_opts_t){.revision = r1};
  CALL(wf_etcd_range(t_etcd, "/kv/a", 5, NULL, 0, &o, t_range_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.nkvs, 1);
  ASSERT_STR_EQ(r.kvs[0].value, "hello");
  ASSERT(r.rev > r3);  /* header.revision is the store's, not the asked one */
  t_res_free(&r);

  /* A missing key: no kvs, no error. */
  t_get("/kv/nope", &r);
  ASSERT_EQ(r.nkvs, 0);
  ASSERT_EQ(r.count, 0);
  t_res_free(&r);

  ASSERT_EQ(t_delete("/kv/a", NULL), 1);
  ASSERT_EQ(t_delete("/kv/a", NULL), 0);
  t_put("/kv/c", "3");
  ASSERT_EQ(t_delete("/kv/", end), 2);
  t_get("/kw", &r);
  ASSERT_EQ(r.nkvs, 1);  /* outside the prefix */
  t_res_free(&r);
}

static void test_put_if(void) {
  t_res_t r = {0};
  /* Create-if-absent. */
  CALL(wf_etcd_put_if(t_etcd, "/lock", 5, 0, "me", 2, t_txn_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.succeeded, 1);
  ASSERT_EQ(r.has_current, 0);
  int64_t created = r.rev;
  t_res_free(&r);
  t_res_t g;
  t_get("/lock", &g);
  ASSERT_EQ(g.kvs[0].mod_revision, created);  /* revision = the key's new mod_revision */
  t_res_free(&g);

  /* Again: it exists now, the answer carries its value. */
  CALL(wf_etcd_put_if(t_etcd, "/lock", 5, 0, "you", 3, t_txn_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.succeeded, 0);
  ASSERT_EQ(r.has_current, 1);
  ASSERT_STR_EQ(r.current, "me");
  ASSERT_EQ(r.current_mod, created);
  t_res_free(&r);

  /* Compare-and-swap on the right mod_revision. */
  CALL(wf_etcd_put_if(t_etcd, "/lock", 5, created, "me2", 3, t_txn_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.succeeded, 1);
  int64_t second = r.rev;
  t_res_free(&r);

  /* A stale mod_revision: conflict, current is the newer value. */
  CALL(wf_etcd_put_if(t_etcd, "/lock", 5, created, "stale", 5, t_txn_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.succeeded, 0);
  ASSERT_STR_EQ(r.current, "me2");
  ASSERT_EQ(r.current_mod, second);
  t_res_free(&r);

  /* The key is gone: conflict with no current. */
  ASSERT_EQ(t_delete("/lock", NULL), 1);
  CALL(wf_etcd_put_if(t_etcd, "/lock", 5, second, "x", 1, t_txn_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.succeeded, 0);
  ASSERT_EQ(r.has_current, 0);
  t_res_free(&r);
}

/* ---- paginated list ---------------------------------------------------------------------- */

#define NKEYS 2500
#define NEW_WRITES 50

static struct {
  int pages;
  size_t total;
  int64_t revision;
  int done;
  int err;
  char last_key[64];
  int bad_order;
  int bad_value;
  int writes_started;
  int writes_done;
  int64_t max_write_rev;
} lst;

static void list_write_cb(int err, int64_t rev, void *data) {
  ASSERT_OK(err);
  lst.writes_done++;
  if (rev > lst.max_write_rev) lst.max_write_rev = rev;
}

/* Writes that land while the list is in progress: new keys inside and
 * after the range already listed, and changes to keys still to come. */
static void list_concurrent_writes(void) {
  char k[64], v[64];
  for (int i = 0; i < NEW_WRITES; i++) {
    if (i % 2)
      snprintf(k, sizeof k, "/list/k%05d", NKEYS - 1 - i);  /* a later page's key */
    else
      snprintf(k, sizeof k, "/list/k%05dnew", i * 40);
    snprintf(v, sizeof v, "late-%d", i);
    CALL(wf_etcd_put(t_etcd, k, strlen(k), v, strlen(v), 0, list_write_cb, NULL));
    lst.writes_started++;
  }
}

static void list_page_cb(const wf_etcd_kv_t *kvs, size_t n, void *data) {
  ASSERT(!t_in_call);
  lst.pages++;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(kvs[i].key, lst.last_key) <= 0) lst.bad_order++;
    snprintf(lst.last_key, sizeof lst.last_key, "%s", kvs[i].key);
    /* Every value is the one written before the list began. */
    if (strncmp(kvs[i].value, "v", 1) != 0 || strstr(kvs[i].key, "new")) lst.bad_value++;
  }
  lst.total += n;
  if (lst.pages == 1) {
    ASSERT_EQ(n, 1000);
    list_concurrent_writes();
  }
}

static void list_done_cb(int err, int64_t revision, void *data) {
  ASSERT(!t_in_call);
  lst.done = 1;
  lst.err = err;
  lst.revision = revision;
}

static void fill_cb(int err, int64_t rev, void *data) {
  ASSERT_OK(err);
  (*(int *)data)++;
}

static void test_list(void) {
  /* Fill 2,500 keys, 100 in flight at a time. */
  int done = 0;
  char k[64], v[64];
  for (int i = 0; i < NKEYS; i++) {
    snprintf(k, sizeof k, "/list/k%05d", i);
    snprintf(v, sizeof v, "v%d", i);
    CALL(wf_etcd_put(t_etcd, k, strlen(k), v, strlen(v), 0, fill_cb, &done));
    if (i - done >= 100) RUN_UNTIL(i - done < 50);
  }
  RUN_UNTIL(done == NKEYS);
  t_put("/lisu", "outside");  /* just past the prefix */
  int64_t before = t_put("/list", "the prefix without its slash");

  CALL(wf_etcd_list(t_etcd, "/list/", 6, 1000, list_page_cb, list_done_cb, NULL));
  RUN_UNTIL(lst.done);
  ASSERT_OK(lst.err);
  ASSERT_EQ(lst.pages, 3);
  ASSERT_EQ(lst.total, NKEYS);
  ASSERT_EQ(lst.bad_order, 0);
  ASSERT_EQ(lst.bad_value, 0);
  ASSERT_EQ(lst.revision, before);  /* the snapshot is the first page's */
  RUN_UNTIL(lst.writes_done == lst.writes_started);
  ASSERT(lst.max_write_rev > before);

  /* The late writes are really there: the list did not miss them by chance. */
  t_res_t r;
  t_get("/list/k00000new", &r);
  ASSERT_EQ(r.nkvs, 1);
  t_res_free(&r);

  /* A page size larger than the prefix, and an empty prefix range. */
  memset(&lst, 0, sizeof lst);
  CALL(wf_etcd_list(t_etcd, "/nothing/", 9, 1000, list_page_cb, list_done_cb, NULL));
  RUN_UNTIL(lst.done);
  ASSERT_OK(lst.err);
  ASSERT_EQ(lst.pages, 0);
  ASSERT(lst.revision >= before);

  char end[8];
  end[wf_etcd_prefix_end("/list/", 6, end)] = '\0';
  ASSERT_EQ(t_delete("/list/", end), NKEYS + NEW_WRITES / 2);
}

/* ---- errors ----------------------------------------------------------------------------- */

static void test_errors(void) {
  int64_t old = t_put("/cmp/k", "1");
  int64_t now = t_put("/cmp/k", "2");
  t_res_t r = {0};
  CALL(wf_etcd_compact(t_etcd, now, t_put_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  t_res_free(&r);
  wf_etcd_range_opts_t o = {.revision = old};
  CALL(wf_etcd_range(t_etcd, "/cmp/k", 6, NULL, 0, &o, t_range_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_EQ(r.err, WF_ECOMPACTED);
  ASSERT(strstr(wf_etcd_errmsg(t_etcd), "compacted") != NULL);
  t_res_free(&r);

  /* A lease that does not exist: etcd's own words come through. */
  CALL(wf_etcd_put(t_etcd, "/cmp/l", 6, "v", 1, 999, t_put_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_EQ(r.err, WF_EETCD);
  ASSERT_STR_EQ(wf_etcd_errmsg(t_etcd), "etcdserver: requested lease not found");
  t_res_free(&r);

  /* An empty key is refused by etcd (not by us). */
  CALL(wf_etcd_put(t_etcd, "", 0, "v", 1, 0, t_put_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_EQ(r.err, WF_EETCD);
  ASSERT(strstr(wf_etcd_errmsg(t_etcd), "key is not provided") != NULL);
  t_res_free(&r);

  /* Argument errors return at once and never call back. */
  ASSERT_EQ(wf_etcd_put(t_etcd, NULL, 3, "v", 1, 0, t_put_cb, &r), UV_EINVAL);
  ASSERT_EQ(wf_etcd_put(t_etcd, "k", 1, "v", 1, 0, NULL, &r), UV_EINVAL);
  ASSERT_EQ(wf_etcd_put_if(t_etcd, "k", 1, -1, "v", 1, t_txn_cb, &r), UV_EINVAL);
}

/* ---- endpoints -------------------------------------------------------------------------- */

static void test_failover(void) {
  const char *eps[] = {"http://127.0.0.1:1", wf_test_etcd()};
  wf_etcd_t *main_etcd = t_etcd;
  t_etcd = t_connect(eps, 2);
  ASSERT_STR_EQ(wf_etcd_endpoint(t_etcd), "http://127.0.0.1:1");
  t_put("/fo/k", "v");
  ASSERT_STR_EQ(wf_etcd_endpoint(t_etcd), wf_test_etcd());  /* remembered */
  t_res_t r;
  t_get("/fo/k", &r);
  ASSERT_STR_EQ(r.kvs[0].value, "v");
  t_res_free(&r);
  int closed = 0;
  wf_etcd_close(t_etcd, t_close_cb, &closed);
  RUN_UNTIL(closed);

  /* No endpoint works: the transport error, after trying each. */
  const char *bad[] = {"http://127.0.0.1:1", "127.0.0.1:2"};
  t_etcd = t_connect(bad, 2);
  memset(&r, 0, sizeof r);
  CALL(wf_etcd_put(t_etcd, "/fo/k", 5, "v", 1, 0, t_put_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_EQ(r.err, UV_ECONNREFUSED);
  closed = 0;
  wf_etcd_close(t_etcd, t_close_cb, &closed);
  RUN_UNTIL(closed);

  /* Nothing parses: no client. */
  const char *junk[] = {"", NULL};
  wf_etcd_opts_t o = {.endpoints = junk, .nendpoints = 2};
  ASSERT_NULL(wf_etcd_create(&t_loop, &o));
  t_etcd = main_etcd;
}

/* ---- closing with calls in flight ------------------------------------------------------- */

static int close_order[8];
static int nclose_order;

static void order_put_cb(int err, int64_t rev, void *data) {
  ASSERT_EQ(err, UV_ECANCELED);
  close_order[nclose_order++] = 1;
}

static void order_list_done(int err, int64_t rev, void *data) {
  ASSERT_EQ(err, UV_ECANCELED);
  close_order[nclose_order++] = 2;
}

static void order_close_cb(void *data) { close_order[nclose_order++] = 3; }

static void no_page(const wf_etcd_kv_t *kvs, size_t n, void *data) { WF_FAIL("page after close"); }

static void test_close_pending(void) {
  const char *ep = wf_test_etcd();
  wf_etcd_t *e = t_connect(&ep, 1);
  ASSERT_OK(wf_etcd_put(e, "/x", 2, "v", 1, 0, order_put_cb, NULL));
  ASSERT_OK(wf_etcd_list(e, "/", 1, 10, no_page, order_list_done, NULL));
  wf_etcd_close(e, order_close_cb, NULL);
  ASSERT_EQ(nclose_order, 0);
  RUN_UNTIL(nclose_order == 3);
  ASSERT_EQ(close_order[2], 3);  /* the client's own callback comes last */
}

static void test_closed_refuses(void) {
  const char *ep = wf_test_etcd();
  wf_etcd_t *e = t_connect(&ep, 1);
  int closed = 0;
  wf_etcd_close(e, t_close_cb, &closed);
  t_res_t r = {0};
  ASSERT_EQ(wf_etcd_put(e, "/x", 2, "v", 1, 0, t_put_cb, &r), WF_ECLOSED);
  RUN_UNTIL(closed);
  ASSERT(!r.done);
}

static const wf_test_t tests[] = {
    WF_TEST(put_range_delete), WF_TEST(put_if), WF_TEST(list), WF_TEST(errors),
    WF_TEST(failover), WF_TEST(close_pending), WF_TEST(closed_refuses),
};

int main(int argc, char **argv) {
  t_setup();
  int rc = WF_TEST_MAIN(argc, argv, tests);
  t_teardown();
  return rc;
}
