/*
 * node-internal.h: what the files of src/node/ share.  node.c serves
 * /metrics from the node's metric set (node-metrics.c), which is built on
 * the registry of src/metrics/, and step logs through node-logs.c.
 */
#ifndef WF_NODE_INTERNAL_H
#define WF_NODE_INTERNAL_H

#include <uv.h>

#include "wf/engine.h"
#include "wf/etcd.h"
#include "wf/httpd.h"
#include "wf/util.h"

/* ---- the node's metric set (node-metrics.c) --------------------------------------
 * Registers the families docs/operations.md lists and hooks the engine's
 * observer (wf_engine_set_observer) for the two histograms.  engine and etcd
 * are borrowed: they must outlive every wf__node_metrics_render() call, and
 * the wf__node_metrics_t must outlive the engine (its observer points here).
 * Either may be NULL (their families then stay at 0), for tests.  The
 * caller owns the result; destroy(NULL) is a no-op. */
typedef struct wf__node_metrics_s wf__node_metrics_t;
wf__node_metrics_t *wf__node_metrics_create(wf_engine_t *engine, wf_etcd_t *etcd);
void wf__node_metrics_destroy(wf__node_metrics_t *nm);
/* Collects the current values (engine and etcd counters, log bytes, and
 * /proc/self for RSS and open fds) and appends them to out (the caller's)
 * in the text format of wf_metrics_render(), with its return value. */
int wf__node_metrics_render(wf__node_metrics_t *nm, wf_buf_t *out);

/* ---- step logs over HTTP (node-logs.c, docs/protocol.md §6.1) ---------------------- */
typedef struct wf__logserve_s wf__logserve_t;

typedef struct wf__logserve_stats_s {
  uint64_t requests;   /* log requests that got past the target check */
  uint64_t refused;    /* follow requests over the bound (503) */
  uint64_t aborted;    /* responses that ended before their end (client gone, error) */
  uint64_t bytes;      /* log bytes read for clients */
  unsigned followers;  /* follow streams open now */
} wf__logserve_stats_t;

/* What a log request's target asks for (pure; for tests). */
typedef struct wf__logs_target_s {
  char key[256];       /* decoded, checked with wf_log_key_safe */
  int follow;
  int64_t offset;      /* -1 = not asked */
  long tail;           /* -1 = not asked */
} wf__logs_target_t;

/* Parses "/v1/steps/<key>/log" and its query.  0, or 404 / 400 with a line
 * for the client in why. */
int wf__logserve_parse(const char *path, const char *query, wf__logs_target_t *t, char *why,
                       size_t whylen);
/* One "bytes=" range of a file of size bytes: 1 with [*start, *end), 0 when
 * the header is absent or not one range this server reads (serve it all),
 * -1 when it starts past the end (416). */
int wf__logserve_range(const char *h, uint64_t size, uint64_t *start, uint64_t *end);

/* engine and etcd are borrowed and must outlive the calls to
 * wf__logserve_handle (close this first); strings are copied.
 * max_followers 0 = 64. */
wf__logserve_t *wf__logserve_create(uv_loop_t *loop, wf_engine_t *engine, wf_etcd_t *etcd,
                                    const char *log_dir, const char *node_name,
                                    const char *prefix, unsigned max_followers);
/* Answers one request for a log path (from the httpd handler): at once for
 * a bad target or too many followers, else by taking the response over as
 * a stream (wf_httpd_stream) that lives until its on_close. */
void wf__logserve_handle(wf__logserve_t *ls, wf_httpd_req_t *req, wf_httpd_resp_t *resp);
void wf__logserve_stats(const wf__logserve_t *ls, wf__logserve_stats_t *out);
/* From now on, no follower touches the engine or etcd again, and streams
 * still open end at their next turn (close the httpd too, which ends them
 * at once).  ls is freed once the last follower is; NULL-tolerant. */
void wf__logserve_close(wf__logserve_t *ls);

/* ---- log retention passes (node-retention.c) ----------------------------------------- */
typedef struct wf__node_retain_s wf__node_retain_t;

typedef struct wf__node_retain_figures_s {
  uint64_t passes, files_removed, bytes_removed, dirs_removed, errors;  /* since start */
  uint64_t files_kept, bytes_kept;                                      /* the last pass */
} wf__node_retain_figures_t;

/* Starts the schedule: the first pass once wf_engine_recovered(), then one
 * an hour.  dir is copied; engine is borrowed (close this before it).
 * Both limits 0: created paused. */
wf__node_retain_t *wf__node_retain_create(uv_loop_t *loop, wf_engine_t *engine, const char *dir,
                                         int64_t max_age_ms, uint64_t max_bytes);
/* New limits (SIGHUP): a pass with them runs now (after the pass running,
 * if any; before recovery is over, once it is).  Both 0 pause the passes. */
void wf__node_retain_set(wf__node_retain_t *r, int64_t max_age_ms, uint64_t max_bytes);
void wf__node_retain_figures(const wf__node_retain_t *r, wf__node_retain_figures_t *out);
/* No pass starts after this; a pass on the threadpool ends first (the loop
 * waits for it), then r is freed.  NULL-tolerant. */
void wf__node_retain_close(wf__node_retain_t *r);

/* The figures /metrics shows beside the node set's own (either may be NULL). */
void wf__node_metrics_logs(wf__node_metrics_t *nm, const wf__logserve_stats_t *served,
                           const wf__node_retain_figures_t *retained);

#endif
