/*
 * test-lease: leases against a real etcd: grant, a key attached to a lease,
 * keepalive, revoke (the key goes), keepalive of a revoked and of an expired
 * lease (ttl 0 with no error: etcd omits TTL for a lease it does not know).
 */
#include "etcd-sync.h"

static void test_grant_keepalive_revoke(void) {
  t_res_t r = {0};
  CALL(wf_etcd_lease_grant(t_etcd, 30, t_lease_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT(r.id != 0);
  ASSERT_EQ(r.n, 30);
  int64_t id = r.id;

  memset(&r, 0, sizeof r);
  CALL(wf_etcd_put(t_etcd, "/lease/k", 8, "v", 1, id, t_put_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  t_get("/lease/k", &r);
  ASSERT_EQ(r.nkvs, 1);
  ASSERT(r.kvs[0].lease == id);
  t_res_free(&r);

  CALL(wf_etcd_lease_keepalive(t_etcd, id, t_lease_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT(r.id == id);
  ASSERT_EQ(r.n, 30);
  /* Several keepalives in flight at once, each its own short POST. */
  t_res_t many[5];
  memset(many, 0, sizeof many);
  for (int i = 0; i < 5; i++) CALL(wf_etcd_lease_keepalive(t_etcd, id, t_lease_cb, &many[i]));
  for (int i = 0; i < 5; i++) {
    RUN_UNTIL(many[i].done);
    ASSERT_OK(many[i].err);
    ASSERT_EQ(many[i].n, 30);
  }

  memset(&r, 0, sizeof r);
  CALL(wf_etcd_lease_revoke(t_etcd, id, t_put_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  t_get("/lease/k", &r);
  ASSERT_EQ(r.nkvs, 0);  /* revoking deletes the attached keys */
  t_res_free(&r);

  CALL(wf_etcd_lease_keepalive(t_etcd, id, t_lease_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  ASSERT_EQ(r.n, 0);  /* gone */

  /* Revoking it again: etcd's error, with its message. */
  memset(&r, 0, sizeof r);
  CALL(wf_etcd_lease_revoke(t_etcd, id, t_put_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_EQ(r.err, WF_EETCD);
  ASSERT(strstr(wf_etcd_errmsg(t_etcd), "lease not found") != NULL);
}

static void test_expired(void) {
  t_res_t r = {0};
  CALL(wf_etcd_lease_grant(t_etcd, 2, t_lease_cb, &r));  /* etcd's minimum */
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  int64_t id = r.id;
  memset(&r, 0, sizeof r);
  CALL(wf_etcd_put(t_etcd, "/lease/exp", 10, "v", 1, id, t_put_cb, &r));
  RUN_UNTIL(r.done);
  ASSERT_OK(r.err);
  /* Expiry is checked by etcd's lessor every 500 ms; wait it out. */
  for (int i = 0; i < 40; i++) {
    t_sleep_ms(250);
    memset(&r, 0, sizeof r);
    CALL(wf_etcd_lease_keepalive(t_etcd, id, t_lease_cb, &r));
    RUN_UNTIL(r.done);
    ASSERT_OK(r.err);
    if (r.n == 0) break;
    t_sleep_ms(2750);  /* let it lapse: keepalives would keep it alive */
  }
  ASSERT_EQ(r.n, 0);
  t_get("/lease/exp", &r);
  ASSERT_EQ(r.nkvs, 0);
  t_res_free(&r);
}

static const wf_test_t tests[] = {
    WF_TEST(grant_keepalive_revoke), WF_TEST(expired),
};

int main(int argc, char **argv) {
  t_setup();
  int rc = WF_TEST_MAIN(argc, argv, tests);
  t_teardown();
  return rc;
}
