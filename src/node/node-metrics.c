/*
 * node-metrics: the agent's metric set that the --listen endpoint serves on
 * /metrics (node.c), built on the registry of src/metrics/.
 *
 * Most of the agent's numbers are already counted where they happen (engine
 * stats, etcd client counters, the log store's byte count); the agent set
 * copies them into the registry at scrape time instead of having those
 * modules know about metrics.  Only the two histograms need every single
 * observation, and the engine hands those over through its observer.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node-internal.h"
#include "wf/logstore.h"
#include "wf/metrics.h"

struct wf__node_metrics_s {
  wf_metrics_t *reg;
  wf_engine_t *engine;
  wf_etcd_t *etcd;
  wf_metric_t *steps, *running, *waiting, *dispatch, *duration;
  wf_metric_t *etcd_req, *etcd_err, *etcd_http2, *reconnects, *relists, *log_bytes, *docker_err;
  wf_metric_t *rss, *fds;
  wf_metric_t *followers, *log_req, *log_refused, *log_aborted, *log_served;
  wf_metric_t *ret_passes, *ret_files, *ret_bytes, *ret_dirs, *ret_errors, *ret_kept_files,
      *ret_kept_bytes;
};

/* Dispatch latency is milliseconds when all is well and minutes when steps
 * wait for a --max-parallel slot; step durations run from seconds to hours. */
static const double dispatch_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                          1,     2.5,  5,     10,   30,  60,   300};
static const double duration_buckets[] = {0.1, 0.5, 1,   5,    10,   30,
                                           60,  300, 600, 1800, 3600, 10800};
#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static void on_observe(enum wf_engine_obs what, double seconds, void *data) {
  wf__node_metrics_t *nm = data;
  if (seconds < 0) seconds = 0; /* the wall clock stepped back */
  wf_metric_observe(what == WF_ENGINE_OBS_DISPATCH ? nm->dispatch : nm->duration, NULL, seconds);
}

wf__node_metrics_t *wf__node_metrics_create(wf_engine_t *engine, wf_etcd_t *etcd) {
  static const char *const status_l[] = {"status", NULL};
  static const char *const etcd_l[] = {"endpoint", "op", NULL};
  static const char *const endpoint_l[] = {"endpoint", NULL};
  wf__node_metrics_t *nm = wf_calloc(1, sizeof *nm);
  wf_metrics_t *r = nm->reg = wf_metrics_create();
  nm->engine = engine;
  nm->etcd = etcd;
  nm->steps = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_steps_total",
                             "Steps this node ended, by the final status it wrote.", status_l,
                             NULL, 0);
  /* Present from the start, so that increase() sees the first one. */
  static const char *const statuses[] = {"SUCCEEDED", "FAILED", "CANCELED"};
  for (size_t i = 0; i < 3; i++) wf_metric_set(nm->steps, (const char *const[]){statuses[i]}, 0);
  nm->running = wf_metrics_add(r, WF_METRIC_GAUGE, "workflow_steps_running",
                               "Steps holding a --max-parallel slot now.", NULL, NULL, 0);
  nm->waiting = wf_metrics_add(r, WF_METRIC_GAUGE, "workflow_steps_waiting",
                               "PENDDING steps of this node waiting for a slot.", NULL, NULL, 0);
  nm->dispatch = wf_metrics_add(
      r, WF_METRIC_HISTOGRAM, "workflow_dispatch_latency_seconds",
      "From a PENDDING step seen by the watch (or a list) to RUNNING written, slot wait included.",
      NULL, dispatch_buckets, NELEMS(dispatch_buckets));
  nm->duration = wf_metrics_add(r, WF_METRIC_HISTOGRAM, "workflow_step_duration_seconds",
                                "From RUNNING written (start_at) to the final status written.",
                                NULL, duration_buckets, NELEMS(duration_buckets));
  nm->etcd_req = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_etcd_requests_total",
                                "etcd unary requests (each attempt, list pages included).",
                                etcd_l, NULL, 0);
  nm->etcd_err = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_etcd_request_errors_total",
                                "etcd unary requests that failed on transport or got a non-2xx.",
                                etcd_l, NULL, 0);
  nm->etcd_http2 = wf_metrics_add(r, WF_METRIC_GAUGE, "workflow_etcd_http2",
                                  "1 when one HTTP/2 connection carries the endpoint's calls "
                                  "and watches, 0 for HTTP/1.1.", endpoint_l, NULL, 0);
  nm->reconnects = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_watch_reconnects_total",
                                  "etcd watch streams that broke and were retried.", NULL, NULL,
                                  0);
  nm->relists = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_relists_total",
                               "Full re-lists of the step cache (compaction, --resync).", NULL,
                               NULL, 0);
  nm->log_bytes = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_log_bytes_total",
                                 "Step log bytes written to disk.", NULL, NULL, 0);
  /* Registered now so that dashboards and alerts can be written before the
   * Docker runner lands; it stays 0 until then. */
  nm->docker_err = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_docker_api_errors_total",
                                  "Docker Engine API calls that failed.", NULL, NULL, 0);
  nm->rss = wf_metrics_add(r, WF_METRIC_GAUGE, "process_resident_memory_bytes",
                           "Resident memory size in bytes.", NULL, NULL, 0);
  nm->fds = wf_metrics_add(r, WF_METRIC_GAUGE, "process_open_fds",
                           "Number of open file descriptors.", NULL, NULL, 0);
  nm->followers = wf_metrics_add(r, WF_METRIC_GAUGE, "workflow_log_followers",
                                 "Log follow requests (follow=1) being served now.", NULL, NULL, 0);
  nm->log_req = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_log_requests_total",
                               "Step log requests served or refused after the target check.",
                               NULL, NULL, 0);
  nm->log_refused = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_log_follow_refused_total",
                                   "Follow requests refused (503) over --listen-max-followers.",
                                   NULL, NULL, 0);
  nm->log_aborted = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_log_responses_aborted_total",
                                   "Log responses cut before their end (client gone, stalled, "
                                   "read error).", NULL, NULL, 0);
  nm->log_served = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_log_served_bytes_total",
                                  "Step log bytes read for HTTP clients.", NULL, NULL, 0);
  nm->ret_passes = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_log_retention_passes_total",
                                  "Log retention passes run.", NULL, NULL, 0);
  nm->ret_files = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_log_retention_removed_files_total",
                                 "Step logs removed by retention.", NULL, NULL, 0);
  nm->ret_bytes = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_log_retention_removed_bytes_total",
                                 "Bytes of step logs removed by retention.", NULL, NULL, 0);
  nm->ret_dirs = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_log_retention_removed_dirs_total",
                                "Empty day, month and year directories removed.", NULL, NULL, 0);
  nm->ret_errors = wf_metrics_add(r, WF_METRIC_COUNTER, "workflow_log_retention_errors_total",
                                  "Files or directories a retention pass could not read or "
                                  "remove.", NULL, NULL, 0);
  nm->ret_kept_files = wf_metrics_add(r, WF_METRIC_GAUGE, "workflow_log_retention_kept_files",
                                      "Step logs the last retention pass kept.", NULL, NULL, 0);
  nm->ret_kept_bytes = wf_metrics_add(r, WF_METRIC_GAUGE, "workflow_log_retention_kept_bytes",
                                      "Bytes of step logs the last retention pass kept.", NULL,
                                      NULL, 0);
  if (engine) wf_engine_set_observer(engine, on_observe, nm);
  return nm;
}

void wf__node_metrics_destroy(wf__node_metrics_t *nm) {
  if (!nm) return;
  wf_metrics_destroy(nm->reg);
  free(nm);
}

void wf__node_metrics_logs(wf__node_metrics_t *nm, const wf__logserve_stats_t *served,
                           const wf__node_retain_figures_t *retained) {
  if (served) {
    wf_metric_set(nm->followers, NULL, served->followers);
    wf_metric_set(nm->log_req, NULL, (double)served->requests);
    wf_metric_set(nm->log_refused, NULL, (double)served->refused);
    wf_metric_set(nm->log_aborted, NULL, (double)served->aborted);
    wf_metric_set(nm->log_served, NULL, (double)served->bytes);
  }
  if (retained) {
    wf_metric_set(nm->ret_passes, NULL, (double)retained->passes);
    wf_metric_set(nm->ret_files, NULL, (double)retained->files_removed);
    wf_metric_set(nm->ret_bytes, NULL, (double)retained->bytes_removed);
    wf_metric_set(nm->ret_dirs, NULL, (double)retained->dirs_removed);
    wf_metric_set(nm->ret_errors, NULL, (double)retained->errors);
    wf_metric_set(nm->ret_kept_files, NULL, (double)retained->files_kept);
    wf_metric_set(nm->ret_kept_bytes, NULL, (double)retained->bytes_kept);
  }
}

static void on_etcd_stat(const char *endpoint, const char *op, uint64_t requests,
                         uint64_t errors, void *data) {
  wf__node_metrics_t *nm = data;
  const char *const v[] = {endpoint, op};
  wf_metric_set(nm->etcd_req, v, (double)requests);
  wf_metric_set(nm->etcd_err, v, (double)errors);
}

static void on_etcd_endpoint(const char *endpoint, const char *protocol, void *data) {
  wf__node_metrics_t *nm = data;
  wf_metric_set(nm->etcd_http2, (const char *const[]){endpoint}, strcmp(protocol, "h2") == 0);
}

/* Synchronous file I/O on the loop, which the agent avoids everywhere else:
 * acceptable here because /proc files are generated by the kernel without
 * touching a disk, and it runs only when something scrapes /metrics (every
 * 15 s or so), bounded by the connection limit of the server. */
static void collect_process(wf__node_metrics_t *nm) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    unsigned long size, resident;
    if (fscanf(f, "%lu %lu", &size, &resident) == 2)
      wf_metric_set(nm->rss, NULL, (double)resident * (double)sysconf(_SC_PAGESIZE));
    fclose(f);
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
      if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d)) n++;
    closedir(d);
    wf_metric_set(nm->fds, NULL, (double)n);
  }
}

int wf__node_metrics_render(wf__node_metrics_t *nm, wf_buf_t *out) {
  if (nm->engine) {
    wf_engine_stats_t st;
    wf_engine_stats(nm->engine, &st);
    wf_metric_set(nm->steps, (const char *const[]){"SUCCEEDED"}, (double)st.succeeded);
    wf_metric_set(nm->steps, (const char *const[]){"FAILED"}, (double)st.failed);
    wf_metric_set(nm->steps, (const char *const[]){"CANCELED"}, (double)st.canceled);
    wf_metric_set(nm->running, NULL, st.running);
    wf_metric_set(nm->waiting, NULL, (double)st.waiting);
    wf_metric_set(nm->relists, NULL, (double)st.relists);
  }
  if (nm->etcd) {
    wf_etcd_stats(nm->etcd, on_etcd_stat, nm);
    wf_etcd_endpoints(nm->etcd, on_etcd_endpoint, nm);
    wf_metric_set(nm->reconnects, NULL, (double)wf_etcd_watch_reconnects(nm->etcd));
  }
  wf_metric_set(nm->log_bytes, NULL, (double)wf_logstore_bytes_total());
  collect_process(nm);
  return wf_metrics_render(nm->reg, out);
}
