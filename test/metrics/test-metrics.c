/*
 * test-metrics: the registry and its Prometheus text rendering
 * (src/node/metrics.c), compared byte for byte; the agent's metric set
 * without an engine or etcd; and the --listen flag of the config loader.
 * No loop, no peer.  Usage: test-metrics [name...].
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf-test.h"
#include "wf/config.h"
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

/* The agent's set without engine or etcd: every family present, the
 * process gauges filled from /proc. */
static void test_node_set(void) {
  wf_node_metrics_t *nm = wf_node_metrics_create(NULL, NULL);
  wf_buf_t b;
  wf_buf_init(&b, 1u << 20);
  ASSERT_OK(wf_node_metrics_render(nm, &b));
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
  wf_node_metrics_destroy(nm);
}

/* --listen: off by default; flag, env and file; bad values exit 2 naming it. */
static void test_listen_config(void) {
  wf_config_t cfg;
  char err[512];
  char *env0[] = {NULL};
  char *a0[] = {"workflow-node", "--name", "n1"};
  ASSERT_EQ(wf_config_load(&cfg, 3, a0, env0, err, sizeof err), WF_CONFIG_OK);
  ASSERT_NULL(cfg.node.listen);
  wf_config_finish(&cfg);

  char *a1[] = {"workflow-node", "--name", "n1", "--listen", "127.0.0.1:9464"};
  ASSERT_EQ(wf_config_load(&cfg, 5, a1, env0, err, sizeof err), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.listen, "127.0.0.1:9464");
  wf_config_finish(&cfg);

  char *env1[] = {"WORKFLOW_LISTEN=[::1]:9100", NULL};
  ASSERT_EQ(wf_config_load(&cfg, 3, a0, env1, err, sizeof err), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.listen, "[::1]:9100");
  wf_config_finish(&cfg);

  char *a2[] = {"workflow-node", "--name", "n1", "--listen=localhost:1"};
  ASSERT_EQ(wf_config_load(&cfg, 4, a2, env1, err, sizeof err), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.listen, "localhost:1"); /* the flag wins */
  wf_config_finish(&cfg);

  char path[] = "/tmp/wf-test-listen-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fprintf(f, "listen: 0.0.0.0:9464\n");
  fclose(f);
  char *a3[] = {"workflow-node", "--name", "n1", "--config", path};
  ASSERT_EQ(wf_config_load(&cfg, 5, a3, env0, err, sizeof err), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.listen, "0.0.0.0:9464");
  wf_config_finish(&cfg);

  f = fopen(path, "w");
  fprintf(f, "listen: example.com:80\n");
  fclose(f);
  ASSERT_EQ(wf_config_load(&cfg, 5, a3, env0, err, sizeof err), WF_CONFIG_BAD);
  ASSERT(strstr(err, "key \"listen\"") && strstr(err, "example.com:80"));
  wf_config_finish(&cfg);
  remove(path);

  static const char *const bad[] = {"127.0.0.1:0", "127.0.0.1:65536", "9464", "host:80",
                                    "127.0.0.1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *a[] = {"workflow-node", "--name", "n1", "--listen", (char *)bad[i]};
    ASSERT_EQ(wf_config_load(&cfg, 5, a, env0, err, sizeof err), WF_CONFIG_BAD);
    if (!strstr(err, "--listen") || !strstr(err, bad[i])) WF_FAIL("error text: %s", err);
    wf_config_finish(&cfg);
  }
  char *env2[] = {"WORKFLOW_LISTEN=127.0.0.1:99999", NULL};
  ASSERT_EQ(wf_config_load(&cfg, 3, a0, env2, err, sizeof err), WF_CONFIG_BAD);
  ASSERT(strstr(err, "WORKFLOW_LISTEN") != NULL);
  wf_config_finish(&cfg);
}

static const struct {
  const char *name;
  void (*fn)(void);
} tests[] = {
    {"counter_gauge", test_counter_gauge},
    {"histogram", test_histogram},
    {"labelled_histogram_and_escaping", test_labelled_histogram_and_escaping},
    {"bad_registrations", test_bad_registrations},
    {"node_set", test_node_set},
    {"listen_config", test_listen_config},
};

int main(int argc, char **argv) {
  int ran = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    int want = argc < 2;
    for (int j = 1; j < argc; j++)
      if (strcmp(argv[j], tests[i].name) == 0) want = 1;
    if (!want) continue;
    fprintf(stderr, "metrics: %s\n", tests[i].name);
    tests[i].fn();
    ran++;
  }
  if (ran == 0) WF_FAIL("no test matched");
  fprintf(stderr, "metrics: %d tests passed\n", ran);
  return 0;
}
