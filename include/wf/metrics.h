/*
 * metrics: a small registry of counters, gauges and histograms and its
 * rendering in the Prometheus text exposition format 0.0.4.  It knows
 * nothing of the agent: the node's metric set that /metrics serves is built
 * on it in src/node/node-metrics.c.
 *
 * The registry is plain memory: no libuv, no locking (one loop).  A family
 * (one metric name) has fixed label names; a series (one label-value tuple)
 * is created the first time a value is set for it and lives as long as the
 * registry.  Families render in registration order, series in creation
 * order, so the output is stable and testable byte for byte.
 */
#ifndef WF_METRICS_H
#define WF_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "wf/util.h"

typedef struct wf_metrics_s wf_metrics_t;
typedef struct wf_metric_s wf_metric_t;

enum wf_metric_type { WF_METRIC_COUNTER, WF_METRIC_GAUGE, WF_METRIC_HISTOGRAM };

/* A new, empty registry, owned by the caller. */
wf_metrics_t *wf_metrics_create(void);
/* Frees the registry and every family in it; NULL is a no-op. */
void wf_metrics_destroy(wf_metrics_t *m);

/*
 * Registers a family and returns it (owned by the registry), or NULL when
 * name is not [a-zA-Z_:][a-zA-Z0-9_:]* or already registered, a label name
 * is not [a-zA-Z_][a-zA-Z0-9_]* (or starts with "__", or is "le" on a
 * histogram), or the buckets of a histogram are not strictly ascending
 * finite numbers.  labels is a NULL-terminated array (NULL = no labels);
 * buckets are the upper bounds without +Inf, which is implied.  Every string
 * and the bucket array are copied.  help is one line of text.
 */
wf_metric_t *wf_metrics_add(wf_metrics_t *m, enum wf_metric_type type, const char *name,
                            const char *help, const char *const *labels, const double *buckets,
                            size_t nbuckets);

/* values: one per label name of the family, in order (NULL for a family
 * without labels); copied when the series is new.  Each call fails silently
 * (does nothing) when the family has another type. */
/* Counter or gauge: sets the value.  A counter copied from a source that
 * counts by itself is set this way; it must never go down. */
void wf_metric_set(wf_metric_t *f, const char *const *values, double v);
/* Counter or gauge: adds delta (a counter only takes delta >= 0). */
void wf_metric_add(wf_metric_t *f, const char *const *values, double delta);
/* Histogram: counts one observation x. */
void wf_metric_observe(wf_metric_t *f, const char *const *values, double x);

/* Appends every family to out in the text format 0.0.4 (# HELP, # TYPE,
 * then the samples; histograms as cumulative _bucket{le=...}, _sum and
 * _count).  A family without any series renders one sample of 0 when it
 * has no labels, and only its HELP/TYPE lines otherwise.  Returns 0 or
 * WF_ETOOBIG if out's bound was hit (out then holds a truncated text). */
int wf_metrics_render(const wf_metrics_t *m, wf_buf_t *out);

/* Content-Type of the rendered text. */
#define WF_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
