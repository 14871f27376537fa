/*
 * test-metrics: the registry and its Prometheus text rendering
 * (src/metrics/metrics.c), compared byte for byte, and the registrations
 * it refuses.  No loop, no peer.  The node's metric set is tested in
 * test/node/, the --listen flag in test/cli/.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf-test.h"
#include "wf/metrics.h"
#include "wf/util.h"

static char *render(const wf_metrics_t *m) {
  wf_buf_t b;
  wf_buf_init(&b, 1u << 20);
  ASSERT_OK(wf_metrics_render(m, &b));
  char *s = wf_strdup(b.data ? b.data : "");
  wf_buf_finish(&b);
  return s;
}

static void test_counter_gauge(void) {
  wf_metrics_t *m = wf_metrics_create();
  static const char *const st[] = {"status", NULL};
  wf_metric_t *steps = wf_metrics_add(m, WF_METRIC_COUNTER, "workflow_steps_total",
                                      "Steps by final status.", st, NULL, 0);
  wf_metric_t *run = wf_metrics_add(m, WF_METRIC_GAUGE, "workflow_steps_running",
                                    "Running now.", NULL, NULL, 0);
  wf_metric_t *empty = wf_metrics_add(m, WF_METRIC_COUNTER, "x_total", "Unset.", NULL, NULL, 0);
  ASSERT_NOT_NULL(steps);
  ASSERT_NOT_NULL(run);
  ASSERT_NOT_NULL(empty);
  wf_metric_set(steps, (const char *const[]){"SUCCEEDED"}, 2);
  wf_metric_add(steps, (const char *const[]){"FAILED"}, 1);
  wf_metric_add(steps, (const char *const[]){"SUCCEEDED"}, 1);
  wf_metric_add(steps, (const char *const[]){"FAILED"}, -5); /* counters never go down */
  wf_metric_set(run, NULL, 7);
  wf_metric_add(run, NULL, -2.5);
  wf_metric_observe(run, NULL, 1); /* wrong type: ignored */
  char *s = render(m);
  ASSERT_STR_EQ(s,
                "# HELP workflow_steps_total Steps by final status.\n"
                "# TYPE workflow_steps_total counter\n"
                "workflow_steps_total{status=\"SUCCEEDED\"} 3\n"
                "workflow_steps_total{status=\"FAILED\"} 1\n"
                "# HELP workflow_steps_running Running now.\n"
                "# TYPE workflow_steps_running gauge\n"
                "workflow_steps_running 4.5\n"
                "# HELP x_total Unset.\n"
                "# TYPE x_total counter\n"
                "x_total 0\n");
  free(s);
  wf_metrics_destroy(m);
}

static void test_histogram(void) {
  wf_metrics_t *m = wf_metrics_create();
  static const double b[] = {0.005, 0.1, 1, 2.5};
  wf_metric_t *h = wf_metrics_add(m, WF_METRIC_HISTOGRAM, "workflow_dispatch_latency_seconds",
                                  "Dispatch latency.", NULL, b, 4);
  ASSERT_NOT_NULL(h);
  char *s0 = render(m);
  ASSERT_STR_EQ(s0,
                "# HELP workflow_dispatch_latency_seconds Dispatch latency.\n"
                "# TYPE workflow_dispatch_latency_seconds histogram\n"
                "workflow_dispatch_latency_seconds_bucket{le=\"0.005\"} 0\n"
                "workflow_dispatch_latency_seconds_bucket{le=\"0.1\"} 0\n"
                "workflow_dispatch_latency_seconds_bucket{le=\"1\"} 0\n"
                "workflow_dispatch_latency_seconds_bucket{le=\"2.5\"} 0\n"
                "workflow_dispatch_latency_seconds_bucket{le=\"+Inf\"} 0\n"
                "workflow_dispatch_latency_seconds_sum 0\n"
                "workflow_dispatch_latency_seconds_count 0\n");
  free(s0);
  /* Upper bounds are inclusive: 0.1 lands in le="0.1". */
  wf_metric_observe(h, NULL, 0.001);
  wf_metric_observe(h, NULL, 0.1);
  wf_metric_observe(h, NULL, 0.25);
  wf_metric_observe(h, NULL, 30);
  wf_metric_observe(h, NULL, NAN); /* ignored */
  char *s = render(m);
  ASSERT_STR_EQ(s,
                "# HELP workflow_dispatch_latency_seconds Dispatch latency.\n"
                "# TYPE workflow_dispatch_latency_seconds histogram\n"
                "workflow_dispatch_latency_seconds_bucket{le=\"0.005\"} 1\n"
                "workflow_dispatch_latency_seconds_bucket{le=\"0.1\"} 2\n"
                "workflow_dispatch_latency_seconds_bucket{le=\"1\"} 3\n"
                "workflow_dispatch_latency_seconds_bucket{le=\"2.5\"} 3\n"
                "workflow_dispatch_latency_seconds_bucket{le=\"+Inf\"} 4\n"
                "workflow_dispatch_latency_seconds_sum 30.351\n"
                "workflow_dispatch_latency_seconds_count 4\n");
  free(s);
  wf_metrics_destroy(m);
}

static void test_labelled_histogram_and_escaping(void) {
  wf_metrics_t *m = wf_metrics_create();
  static const char *const l[] = {"endpoint", "op", NULL};
  static const double b[] = {1};
  wf_metric_t *h = wf_metrics_add(m, WF_METRIC_HISTOGRAM, "h_seconds",
                                  "Help with \\ and\nnewline \"kept\".", l, b, 1);
  wf_metric_t *c = wf_metrics_add(m, WF_METRIC_COUNTER, "c_total", "C.", l, NULL, 0);
  ASSERT_NOT_NULL(h);
  ASSERT_NOT_NULL(c);
  wf_metric_observe(h, (const char *const[]){"http://a:1", "range"}, 2);
  wf_metric_set(c, (const char *const[]){"say \"hi\"\\\n", "put"}, 1e20);
  wf_metric_set(c, (const char *const[]){"x", "y"}, 0.1);
  wf_metric_set(c, (const char *const[]){"x", "z"}, INFINITY);
  char *s = render(m);
  ASSERT_STR_EQ(s,
                "# HELP h_seconds Help with \\\\ and\\nnewline \"kept\".\n"
                "# TYPE h_seconds histogram\n"
                "h_seconds_bucket{endpoint=\"http://a:1\",op=\"range\",le=\"1\"} 0\n"
                "h_seconds_bucket{endpoint=\"http://a:1\",op=\"range\",le=\"+Inf\"} 1\n"
                "h_seconds_sum{endpoint=\"http://a:1\",op=\"range\"} 2\n"
                "h_seconds_count{endpoint=\"http://a:1\",op=\"range\"} 1\n"
                "# HELP c_total C.\n"
                "# TYPE c_total counter\n"
                "c_total{endpoint=\"say \\\"hi\\\"\\\\\\n\",op=\"put\"} 1e+20\n"
                "c_total{endpoint=\"x\",op=\"y\"} 0.1\n"
                "c_total{endpoint=\"x\",op=\"z\"} +Inf\n");
  free(s);
  wf_metrics_destroy(m);
}

static void test_bad_registrations(void) {
  wf_metrics_t *m = wf_metrics_create();
  static const double up[] = {1, 2}, down[] = {2, 1}, inf[] = {1, INFINITY};
  static const char *const le[] = {"le", NULL}, *const under[] = {"__x", NULL},
                           *const dash[] = {"a-b", NULL};
  ASSERT_NOT_NULL(wf_metrics_add(m, WF_METRIC_COUNTER, "ok:name_total", "", NULL, NULL, 0));
  ASSERT_NULL(wf_metrics_add(m, WF_METRIC_COUNTER, "ok:name_total", "", NULL, NULL, 0));
  ASSERT_NULL(wf_metrics_add(m, WF_METRIC_COUNTER, "1abc", "", NULL, NULL, 0));
  ASSERT_NULL(wf_metrics_add(m, WF_METRIC_COUNTER, "a-b", "", NULL, NULL, 0));
  ASSERT_NULL(wf_metrics_add(m, WF_METRIC_COUNTER, "", "", NULL, NULL, 0));
  ASSERT_NULL(wf_metrics_add(m, WF_METRIC_GAUGE, "g", "", under, NULL, 0));
  ASSERT_NULL(wf_metrics_add(m, WF_METRIC_GAUGE, "g", "", dash, NULL, 0));
  ASSERT_NOT_NULL(wf_metrics_add(m, WF_METRIC_GAUGE, "g", "", le, NULL, 0));
  ASSERT_NULL(wf_metrics_add(m, WF_METRIC_HISTOGRAM, "h", "", le, up, 2));
  ASSERT_NULL(wf_metrics_add(m, WF_METRIC_HISTOGRAM, "h", "", NULL, down, 2));
  ASSERT_NULL(wf_metrics_add(m, WF_METRIC_HISTOGRAM, "h", "", NULL, inf, 2));
  ASSERT_NOT_NULL(wf_metrics_add(m, WF_METRIC_HISTOGRAM, "h", "", NULL, up, 2));
  wf_metrics_destroy(m);
  wf_metrics_destroy(NULL);
}

static const wf_test_t tests[] = {
    WF_TEST(counter_gauge),
    WF_TEST(histogram),
    WF_TEST(labelled_histogram_and_escaping),
    WF_TEST(bad_registrations),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
