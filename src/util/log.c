/*
 * log: the agent's own log lines on stderr, as text or one JSON object per
 * line.  Each line is built whole and written with one write(2), so lines
 * never interleave even when stderr is shared with children.
 */
#include "wf/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum wf_log_level min_level = WF_LOG_INFO;
static int log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void wf_log_setup(enum wf_log_level min, int json) {
  min_level = min;
  log_json = json;
}

int wf_log_enabled(enum wf_log_level lvl) { return lvl >= min_level; }

int wf_log_level_parse(const char *s, enum wf_log_level *out) {
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, level_names[i]) == 0) {
      *out = (enum wf_log_level)i;
      return 0;
    }
  }
  if (strcasecmp(s, "warning") == 0) {
    *out = WF_LOG_WARN;
    return 0;
  }
  return -1;
}

/* Copies s into out with control characters (and backslashes) escaped as
 * \xNN / \\, truncating to fit. */
static void escape_ctl(const char *s, char *out, size_t outlen) {
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < outlen; p++) {
    if (*p < 0x20 || *p == 0x7f) {
      o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", *p);
    } else if (*p == '\\') {
      out[o++] = '\\';
      out[o++] = '\\';
    } else {
      out[o++] = (char)*p;
    }
  }
  out[o] = '\0';
}

/* A malloc'd copy of s in which every byte that does not start a valid
 * UTF-8 sequence is replaced by U+FFFD. */
static char *utf8_clean(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(n * 3 + 1);
  if (!out) return NULL;
  size_t o = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    size_t len = 0;
    if (*p < 0x80) len = 1;
    else if ((*p & 0xe0) == 0xc0 && *p >= 0xc2) len = 2;
    else if ((*p & 0xf0) == 0xe0) len = 3;
    else if ((*p & 0xf8) == 0xf0 && *p <= 0xf4) len = 4;
    int ok = len > 0;
    for (size_t k = 1; ok && k < len; k++) ok = (p[k] & 0xc0) == 0x80;
    if (ok && len == 3) ok = !(p[0] == 0xe0 && p[1] < 0xa0) && !(p[0] == 0xed && p[1] >= 0xa0);
    if (ok && len == 4) ok = !(p[0] == 0xf0 && p[1] < 0x90) && !(p[0] == 0xf4 && p[1] >= 0x90);
    if (ok) {
      memcpy(out + o, p, len);
      o += len;
      p += len;
    } else {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3;
      p++;
    }
  }
  out[o] = '\0';
  return out;
}

void wf_logv(enum wf_log_level lvl, const char *step, const char *fmt, va_list ap) {
  if (lvl < min_level) return;
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[64];
  snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", (tm.tm_year + 1900) % 10000,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000) % 1000);

  char line[4096];
  int n;
  char safe_step[512], safe_msg[2048];
  if (!log_json) {
    /* Text lines must stay one line each: a step key or a message quoting
     * outside input could otherwise forge log lines. */
    if (step) {
      escape_ctl(step, safe_step, sizeof safe_step);
      step = safe_step;
    }
    escape_ctl(msg, safe_msg, sizeof safe_msg);
  }
  if (log_json) {
    /* jansson refuses invalid UTF-8 (the key would vanish): replace it. */
    char *m8 = utf8_clean(msg), *s8 = step ? utf8_clean(step) : NULL;
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_string(when));
    json_object_set_new(o, "level", json_string(level_names[lvl]));
    json_object_set_new(o, "msg", json_string(m8));
    if (s8) json_object_set_new(o, "step", json_string(s8));
    free(m8);
    free(s8);
    /* Built on the heap whole: a cut JSON line would not parse. */
    char *js = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (js) {
      size_t len = strlen(js);
      js[len] = '\n';
      ssize_t w = write(2, js, len + 1);
      (void)w;
      free(js);
    }
    return;
  } else if (step) {
    n = snprintf(line, sizeof line, "%s %-5s step=%s %s\n", when, level_names[lvl], step,
                 safe_msg);
  } else {
    n = snprintf(line, sizeof line, "%s %-5s %s\n", when, level_names[lvl], safe_msg);
  }
  if (n < 0) return;
  if ((size_t)n >= sizeof line) {
    n = sizeof line - 1;
    line[n - 1] = '\n';
  }
  /* One write so that lines stay whole; a failing stderr is not our problem. */
  ssize_t w = write(2, line, (size_t)n);
  (void)w;
}

void wf_log(enum wf_log_level lvl, const char *step, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wf_logv(lvl, step, fmt, ap);
  va_end(ap);
}
