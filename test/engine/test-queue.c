/* Work queue: de-duplication, order, retries with backoff, clean close. */
#include "../../src/engine/engine-internal.h"
#include "wf-test.h"
#include "wf/util.h"

static uv_loop_t loop;
static wf_queue_t *q;
static char seen[64][16];
static int nseen;
static int closed;

static void on_key(const char *key, void *data) {
  ASSERT(nseen < 64);
  snprintf(seen[nseen++], sizeof seen[0], "%s", key);
  if (nseen == 3) wf__queue_retry(q, "r"); /* comes back after a backoff */
}

static uv_timer_t stop;
static void on_stop(uv_timer_t *t) {
  uv_close((uv_handle_t *)&stop, NULL);
  wf__queue_retry(q, "pending-at-close");
  wf__queue_close(q, NULL, NULL);
  closed = 1;
}

static void test_dedup_order_retry(void) {
  ASSERT_OK(uv_loop_init(&loop));
  q = wf__queue_create(&loop, on_key, NULL);
  wf__queue_add(q, "a");
  wf__queue_add(q, "b");
  wf__queue_add(q, "a"); /* de-duplicated */
  wf__queue_add(q, "c");
  ASSERT_EQ(wf__queue_len(q), 3);
  uv_timer_init(&loop, &stop);
  uv_timer_start(&stop, on_stop, 200, 0);
  wf_test_close_loop(&loop);
  ASSERT_EQ(closed, 1);
  ASSERT_EQ(nseen, 4);
  ASSERT_STR_EQ(seen[0], "a");
  ASSERT_STR_EQ(seen[1], "b");
  ASSERT_STR_EQ(seen[2], "c");
  ASSERT_STR_EQ(seen[3], "r");
}

static const wf_test_t tests[] = {WF_TEST(dedup_order_retry)};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
