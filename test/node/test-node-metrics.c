/*
 * test-node-metrics: the node's metric set (src/node/node-metrics.c)
 * without an engine or etcd: every family the /metrics endpoint promises is
 * there, and the process gauges are filled from /proc.  No loop, no peer.
 */
#include <stdlib.h>
#include <string.h>

#include "src/node/node-internal.h"
#include "wf-test.h"
#include "wf/util.h"

/* The agent's set without engine or etcd: every family present, the
 * process gauges filled from /proc. */
static void test_node_set(void) {
  wf__node_metrics_t *nm = wf__node_metrics_create(NULL, NULL);
  wf_buf_t b;
  wf_buf_init(&b, 1u << 20);
  ASSERT_OK(wf__node_metrics_render(nm, &b));
  static const char *const want[] = {
      "# TYPE workflow_steps_total counter\n",
      "workflow_steps_total{status=\"SUCCEEDED\"} 0\n",
      "workflow_steps_total{status=\"FAILED\"} 0\n",
      "workflow_steps_total{status=\"CANCELED\"} 0\n",
      "# TYPE workflow_steps_running gauge\nworkflow_steps_running 0\n",
      "# TYPE workflow_steps_waiting gauge\nworkflow_steps_waiting 0\n",
      "# TYPE workflow_dispatch_latency_seconds histogram\n",
      "workflow_dispatch_latency_seconds_bucket{le=\"+Inf\"} 0\n",
      "# TYPE workflow_step_duration_seconds histogram\n",
      "# TYPE workflow_etcd_requests_total counter\n",
      "# TYPE workflow_etcd_request_errors_total counter\n",
      "workflow_watch_reconnects_total 0\n",
      "workflow_relists_total 0\n",
      "# TYPE workflow_log_bytes_total counter\n",
      "workflow_docker_api_errors_total 0\n",
      "# TYPE process_resident_memory_bytes gauge\n",
      "# TYPE process_open_fds gauge\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!strstr(b.data, want[i])) WF_FAIL("missing %s in:\n%s", want[i], b.data);
  double rss = 0, fds = 0;
  const char *p = strstr(b.data, "\nprocess_resident_memory_bytes ");
  ASSERT_NOT_NULL(p);
  rss = strtod(p + 31, NULL);
  p = strstr(b.data, "\nprocess_open_fds ");
  ASSERT_NOT_NULL(p);
  fds = strtod(p + 18, NULL);
  ASSERT(rss > 100000);
  ASSERT(fds >= 3 && fds < 1000);
  wf_buf_finish(&b);
  wf__node_metrics_destroy(nm);
}

static const wf_test_t tests[] = {WF_TEST(node_set)};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
