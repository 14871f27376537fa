/*
 * node-internal.h: what the files of src/node/ share.  node.c serves
 * /metrics from the node's metric set (node-metrics.c), which is built on
 * the registry of src/metrics/.
 */
#ifndef WF_NODE_INTERNAL_H
#define WF_NODE_INTERNAL_H

#include "wf/engine.h"
#include "wf/etcd.h"
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

#endif
