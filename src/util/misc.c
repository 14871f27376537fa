/* misc: time, backoff, command-list parsing, env-name checks, key/value lookup,
 * and the duration and size values of flags. */
#include "wf/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t wf_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t wf_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void wf_backoff_init(wf_backoff_t *b, uint64_t base_ms, uint64_t max_ms) {
  b->base_ms = base_ms;
  b->max_ms = max_ms;
  b->attempt = 0;
}

uint64_t wf_backoff_next(wf_backoff_t *b) {
  /* Capped exponential with "equal jitter": half fixed, half random, so that
   * a fleet of agents that lost etcd together does not reconnect in step. */
  uint64_t d = b->base_ms;
  for (unsigned i = 0; i < b->attempt && d < b->max_ms; i++) d *= 2;
  if (d > b->max_ms) d = b->max_ms;
  if (b->attempt < 64) b->attempt++;
  uint64_t half = d / 2;
  return half + (half ? (uint64_t)rand() % (half + 1) : 0);
}

void wf_backoff_reset(wf_backoff_t *b) { b->attempt = 0; }

void wf_argv_free(char **argv) {
  if (!argv) return;
  for (char **p = argv; *p; p++) free(*p);
  free(argv);
}

char **wf_argv_parse(const char *s, char *err, size_t errlen) {
  char **argv = NULL;
  size_t n = 0;
  if (s[0] == '[') {
    json_error_t je;
    json_t *a = json_loads(s, 0, &je);
    if (!a || !json_is_array(a)) {
      snprintf(err, errlen, "command list is not a JSON array of strings: %s",
               a ? "not an array" : je.text);
      json_decref(a);
      return NULL;
    }
    n = json_array_size(a);
    argv = wf_calloc(n + 1, sizeof *argv);
    for (size_t i = 0; i < n; i++) {
      json_t *v = json_array_get(a, i);
      if (!json_is_string(v)) {
        snprintf(err, errlen, "command list element %zu is not a string", i);
        json_decref(a);
        wf_argv_free(argv);
        return NULL;
      }
      argv[i] = wf_strndup(json_string_value(v), json_string_length(v));
    }
    json_decref(a);
  } else {
    /* Comma-separated like the original: no quoting, no trimming. */
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    argv = wf_calloc(cap + 1, sizeof *argv);
    const char *start = s;
    for (const char *p = s;; p++) {
      if (*p == ',' || *p == '\0') {
        argv[n++] = wf_strndup(start, (size_t)(p - start));
        if (*p == '\0') break;
        start = p + 1;
      }
    }
  }
  if (n == 0 || argv[0][0] == '\0') {
    snprintf(err, errlen, "command list is empty");
    wf_argv_free(argv);
    return NULL;
  }
  return argv;
}

int wf_env_name_valid(const char *name) {
  if (!name || !*name) return 0;
  if (!((*name >= 'A' && *name <= 'Z') || (*name >= 'a' && *name <= 'z') || *name == '_'))
    return 0;
  for (const char *p = name + 1; *p; p++)
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
          *p == '_'))
      return 0;
  return 1;
}

const char *wf_kv_get(const wf_kv_t *kv, size_t n, const char *key) {
  for (size_t i = n; i-- > 0;)
    if (kv[i].key && strcmp(kv[i].key, key) == 0) return kv[i].value;
  return NULL;
}

/* ---- durations and sizes --------------------------------------------------------- */

/* The leading decimal digits of s as a uint64_t; *end after them.  -1 if
 * there are none or they overflow. */
static int parse_digits(const char *s, uint64_t *out, const char **end) {
  uint64_t v = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  if (p == s) return -1;
  *out = v;
  *end = p;
  return 0;
}

int wf_parse_duration_ms(const char *s, int64_t *out) {
  uint64_t n, unit_ms;
  const char *p;
  if (!s || parse_digits(s, &n, &p) != 0) return -1;
  switch (*p) {
  case '\0': unit_ms = 1000; break;
  case 's': unit_ms = 1000; break;
  case 'm': unit_ms = 60 * 1000; break;
  case 'h': unit_ms = 3600 * 1000; break;
  case 'd': unit_ms = 86400 * 1000; break;
  case 'w': unit_ms = 7 * 86400 * 1000; break;
  default: return -1;
  }
  if (*p && p[1] != '\0') return -1;
  if (n > (uint64_t)INT64_MAX / unit_ms) return -1;
  *out = (int64_t)(n * unit_ms);
  return 0;
}

int wf_parse_size_bytes(const char *s, uint64_t *out) {
  uint64_t n, mult = 1;
  const char *p;
  if (!s || parse_digits(s, &n, &p) != 0) return -1;
  if (p[0] == 'B' && p[1] == '\0') {
    p++;
  } else if (*p) {
    switch (*p) {
    case 'K': case 'k': mult = 1ull << 10; break;
    case 'M': case 'm': mult = 1ull << 20; break;
    case 'G': case 'g': mult = 1ull << 30; break;
    case 'T': case 't': mult = 1ull << 40; break;
    default: return -1;
    }
    p++;
    if (*p == 'i') {
      p++;
      if (*p == 'B') p++;
    }
  }
  if (*p != '\0') return -1;
  if (n > UINT64_MAX / mult) return -1;
  *out = n * mult;
  return 0;
}
