/*
 * metrics: a registry of counters, gauges and histograms and its
 * Prometheus text rendering (see include/wf/metrics.h).
 *
 * Plain memory, no libuv and nothing of the node: the agent's own metric
 * set, which fills a registry from the engine, etcd and /proc, is
 * src/node/node-metrics.c.
 */
#include "wf/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct series_s series_t;
struct series_s {
  series_t *next;
  char **values;       /* one per label of the family */
  double value;        /* counter, gauge */
  uint64_t *counts;    /* histogram: per bucket (not cumulative), +Inf last */
  double sum;
  uint64_t count;
};

struct wf_metric_s {
  wf_metric_t *next;
  enum wf_metric_type type;
  char *name, *help;
  char **labels;
  size_t nlabels;
  double *bounds;
  size_t nbounds;
  series_t *series, **tail;
};

struct wf_metrics_s {
  wf_metric_t *families, **tail;
};

/* ---- registry ----------------------------------------------------------------------- */

wf_metrics_t *wf_metrics_create(void) {
  wf_metrics_t *m = wf_calloc(1, sizeof *m);
  m->tail = &m->families;
  return m;
}

static void family_free(wf_metric_t *f) {
  series_t *s = f->series;
  while (s) {
    series_t *next = s->next;
    for (size_t i = 0; i < f->nlabels; i++) free(s->values[i]);
    free(s->values);
    free(s->counts);
    free(s);
    s = next;
  }
  for (size_t i = 0; i < f->nlabels; i++) free(f->labels[i]);
  free(f->labels);
  free(f->bounds);
  free(f->name);
  free(f->help);
  free(f);
}

void wf_metrics_destroy(wf_metrics_t *m) {
  if (!m) return;
  wf_metric_t *f = m->families;
  while (f) {
    wf_metric_t *next = f->next;
    family_free(f);
    f = next;
  }
  free(m);
}

static int name_ok(const char *s, int colon) {
  if (!s || !*s || (*s >= '0' && *s <= '9')) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_' || (colon && *s == ':')))
      return 0;
  return 1;
}

wf_metric_t *wf_metrics_add(wf_metrics_t *m, enum wf_metric_type type, const char *name,
                            const char *help, const char *const *labels, const double *buckets,
                            size_t nbuckets) {
  if (!m || !name_ok(name, 1)) return NULL;
  for (wf_metric_t *f = m->families; f; f = f->next)
    if (strcmp(f->name, name) == 0) return NULL;
  size_t nl = 0;
  for (; labels && labels[nl]; nl++) {
    if (!name_ok(labels[nl], 0) || strncmp(labels[nl], "__", 2) == 0) return NULL;
    if (type == WF_METRIC_HISTOGRAM && strcmp(labels[nl], "le") == 0) return NULL;
  }
  if (type == WF_METRIC_HISTOGRAM) {
    for (size_t i = 0; i < nbuckets; i++)
      if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) return NULL;
  } else {
    nbuckets = 0;
  }
  wf_metric_t *f = wf_calloc(1, sizeof *f);
  f->type = type;
  f->name = wf_strdup(name);
  f->help = wf_strdup(help ? help : "");
  f->nlabels = nl;
  f->labels = wf_calloc(nl + 1, sizeof *f->labels);
  for (size_t i = 0; i < nl; i++) f->labels[i] = wf_strdup(labels[i]);
  f->nbounds = nbuckets;
  if (nbuckets) {
    f->bounds = wf_malloc(nbuckets * sizeof *f->bounds);
    memcpy(f->bounds, buckets, nbuckets * sizeof *f->bounds);
  }
  f->tail = &f->series;
  *m->tail = f;
  m->tail = &f->next;
  return f;
}

/* The series for values, created on first use.  A linear search: families
 * here have at most a few dozen series. */
static series_t *series_get(wf_metric_t *f, const char *const *values) {
  for (series_t *s = f->series; s; s = s->next) {
    size_t i = 0;
    while (i < f->nlabels && strcmp(s->values[i], values[i] ? values[i] : "") == 0) i++;
    if (i == f->nlabels) return s;
  }
  series_t *s = wf_calloc(1, sizeof *s);
  s->values = wf_calloc(f->nlabels + 1, sizeof *s->values);
  for (size_t i = 0; i < f->nlabels; i++) s->values[i] = wf_strdup(values[i] ? values[i] : "");
  if (f->type == WF_METRIC_HISTOGRAM) s->counts = wf_calloc(f->nbounds + 1, sizeof *s->counts);
  *f->tail = s;
  f->tail = &s->next;
  return s;
}

void wf_metric_set(wf_metric_t *f, const char *const *values, double v) {
  if (!f || f->type == WF_METRIC_HISTOGRAM) return;
  series_get(f, values)->value = v;
}

void wf_metric_add(wf_metric_t *f, const char *const *values, double delta) {
  if (!f || f->type == WF_METRIC_HISTOGRAM) return;
  if (f->type == WF_METRIC_COUNTER && !(delta >= 0)) return;
  series_get(f, values)->value += delta;
}

void wf_metric_observe(wf_metric_t *f, const char *const *values, double x) {
  if (!f || f->type != WF_METRIC_HISTOGRAM || isnan(x)) return;
  series_t *s = series_get(f, values);
  size_t i = 0;
  while (i < f->nbounds && x > f->bounds[i]) i++;
  s->counts[i]++;
  s->sum += x;
  s->count++;
}

/* ---- rendering ------------------------------------------------------------------------ */

/* The shortest of %.15g / %.17g that reads back as v ("0.1", not
 * "0.10000000000000001"), and the format's spellings of the specials. */
static void fmt_num(double v, char *out, size_t len) {
  if (isnan(v)) {
    snprintf(out, len, "NaN");
  } else if (isinf(v)) {
    snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
  } else {
    snprintf(out, len, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, len, "%.17g", v);
  }
}

/* HELP text escapes \ and newline; label values escape " too. */
static int append_escaped(wf_buf_t *b, const char *s, int quote) {
  int r = 0;
  for (; *s && r == 0; s++) {
    if (*s == '\\') r = wf_buf_append(b, "\\\\", 2);
    else if (*s == '\n') r = wf_buf_append(b, "\\n", 2);
    else if (quote && *s == '"') r = wf_buf_append(b, "\\\"", 2);
    else r = wf_buf_append(b, s, 1);
  }
  return r;
}

/* name{l1="v1",...[,le="x"]} value\n */
static int sample(wf_buf_t *b, const wf_metric_t *f, const series_t *s, const char *suffix,
                  const char *le, double v) {
  char num[40];
  int r = wf_buf_printf(b, "%s%s", f->name, suffix);
  size_t nl = s ? f->nlabels : 0;
  if (r == 0 && (nl || le)) {
    r = wf_buf_append(b, "{", 1);
    for (size_t i = 0; i < nl && r == 0; i++) {
      r = wf_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
      if (r == 0) r = append_escaped(b, s->values[i], 1);
      if (r == 0) r = wf_buf_append(b, "\"", 1);
    }
    if (r == 0 && le) r = wf_buf_printf(b, "%sle=\"%s\"", nl ? "," : "", le);
    if (r == 0) r = wf_buf_append(b, "}", 1);
  }
  fmt_num(v, num, sizeof num);
  if (r == 0) r = wf_buf_printf(b, " %s\n", num);
  return r;
}

static int render_series(wf_buf_t *b, const wf_metric_t *f, const series_t *s) {
  if (f->type != WF_METRIC_HISTOGRAM) return sample(b, f, s, "", NULL, s ? s->value : 0);
  char le[40];
  uint64_t cum = 0;
  int r = 0;
  for (size_t i = 0; i <= f->nbounds && r == 0; i++) {
    cum += s ? s->counts[i] : 0;
    if (i < f->nbounds)
      fmt_num(f->bounds[i], le, sizeof le);
    else
      snprintf(le, sizeof le, "+Inf");
    r = sample(b, f, s, "_bucket", le, (double)cum);
  }
  if (r == 0) r = sample(b, f, s, "_sum", NULL, s ? s->sum : 0);
  if (r == 0) r = sample(b, f, s, "_count", NULL, s ? (double)s->count : 0);
  return r;
}

int wf_metrics_render(const wf_metrics_t *m, wf_buf_t *out) {
  static const char *const types[] = {"counter", "gauge", "histogram"};
  int r = 0;
  for (const wf_metric_t *f = m->families; f && r == 0; f = f->next) {
    r = wf_buf_printf(out, "# HELP %s ", f->name);
    if (r == 0) r = append_escaped(out, f->help, 0);
    if (r == 0) r = wf_buf_printf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
    /* A family without labels always has its one sample, 0 until set: a
     * counter that exists from the start is what rate() needs. */
    if (r == 0 && !f->series && f->nlabels == 0) r = render_series(out, f, NULL);
    for (const series_t *s = f->series; s && r == 0; s = s->next) r = render_series(out, f, s);
  }
  return r;
}
