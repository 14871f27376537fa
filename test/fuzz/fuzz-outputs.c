/*
 * fuzz-outputs: the step output file parser (src/model/outputs.c:
 * wf_outputs_parse), the summary line (wf_summary_line) and the pipeline
 * key reader (wf_pipeline_pos), all on the same bytes.
 *
 * Oracles:
 *   parse: the error buffer is NUL-terminated within its size, holds only
 *   printable ASCII (it goes into a step's status.message) and nothing is
 *   written past it; a refused file leaves the list as it was; a truncated
 *   file is refused.  On success every name is an output name, every value
 *   within WF_OUTPUT_MAX_VALUE and a string jansson takes (UTF-8), at most
 *   WF_OUTPUT_MAX_NAMES names, the values within WF_OUTPUT_MAX_TOTAL; and
 *   the outputs written back, once all as heredocs (with a delimiter that
 *   does not occur in the value) and once as NAME=value wherever the value
 *   has no newline, parse again to the same set.
 *   summary: NULL exactly when the first line is empty; at most
 *   WF_SUMMARY_MAX bytes, UTF-8, no control character but tab (C1 ones
 *   included); a first line of printable ASCII within the bound comes back
 *   as it is.
 *   pipeline key (the first line, when it has no NUL): a key it accepts is
 *   "<run><stage>.<step>", written back the same.
 *
 * Input layout:
 *   byte 0  bits 0-6: the error buffer size (1..127 bytes, or 256 when 0);
 *           bit 7: truncated (the reader stopped at WF_OUTPUT_MAX_FILE)
 *   rest    the file (a heap copy of exactly its length, no NUL after it)
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/outputs.h"
#include "wf/util.h"
#include "fuzz-check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  wf_log_setup(WF_LOG_ERROR, 0);
  return 0;
}

/* A key no file can set (not a name), to see that a refusal leaves out alone. */
#define SENTINEL "0sentinel"

static int utf8_ok(const char *s, size_t n) {
  json_t *j = json_stringn(s, n);
  json_decref(j);
  return j != NULL;
}

/* The outputs written back as a file: heredoc form always (all = 1), or
 * NAME=value where the value has no "\n".  A line ending in "\r" gets
 * "\r\n", since the parser drops one trailing "\r". */
static void write_back(wf_buf_t *b, const wf_params_t *p, int all) {
  for (size_t i = 0; i < p->n; i++) {
    const char *k = p->kv[i].key, *v = p->kv[i].value;
    if (strcmp(k, SENTINEL) == 0) continue;
    size_t vl = strlen(v);
    if (!all && !memchr(v, '\n', vl)) {
      CHECK(wf_buf_printf(b, "%s=%s%s", k, v, vl && v[vl - 1] == '\r' ? "\r\n" : "\n") == 0);
      continue;
    }
    /* "EOF" and one 'x' more than the longest run of 'x' in the value:
     * that text occurs nowhere in it, so no line of it is the delimiter. */
    size_t run = 0, longest = 0;
    for (size_t j = 0; j < vl; j++) {
      run = v[j] == 'x' ? run + 1 : 0;
      if (run > longest) longest = run;
    }
    CHECK(wf_buf_printf(b, "%s<<EOF", k) == 0);
    for (size_t j = 0; j <= longest; j++) CHECK(wf_buf_append(b, "x", 1) == 0);
    CHECK(wf_buf_append(b, "\n", 1) == 0);
    const char *line = v;
    for (;;) {
      const char *nl = strchr(line, '\n');
      size_t n = nl ? (size_t)(nl - line) : strlen(line);
      int cr = n && line[n - 1] == '\r';
      CHECK(wf_buf_append(b, line, n) == 0);
      CHECK(wf_buf_append(b, &"\r\n"[!cr], cr ? 2 : 1) == 0);
      if (!nl) break;
      line = nl + 1;
    }
    CHECK(wf_buf_append(b, "EOF", 3) == 0);
    for (size_t j = 0; j <= longest; j++) CHECK(wf_buf_append(b, "x", 1) == 0);
    CHECK(wf_buf_append(b, "\n", 1) == 0);
  }
}

static void roundtrip(const wf_params_t *out, int all) {
  wf_buf_t b;
  wf_buf_init(&b, (size_t)64 << 20);
  write_back(&b, out, all);
  wf_params_t again;
  wf_params_init(&again);
  char err[256];
  int r = wf_outputs_parse(b.data ? b.data : "", b.len, 0, &again, err, sizeof err);
  if (r != 0) {
    fprintf(stderr, "written back (%s), refused: %s\n", all ? "heredocs" : "mixed", err);
    CHECK(!"round trip refused");
  }
  CHECK(again.n + 1 == out->n);
  for (size_t i = 0; i < out->n; i++) {
    if (strcmp(out->kv[i].key, SENTINEL) == 0) continue;
    const char *v = wf_params_get(&again, out->kv[i].key);
    CHECK(v != NULL && strcmp(v, out->kv[i].value) == 0);
  }
  wf_params_finish(&again);
  wf_buf_finish(&b);
}

static void check_parse(const char *buf, size_t len, int truncated, size_t errlen) {
  char *err = malloc(errlen + 1);
  CHECK(err);
  memset(err, 'x', errlen + 1);
  wf_params_t out;
  wf_params_init(&out);
  wf_params_set(&out, SENTINEL, "s");
  int r = wf_outputs_parse(buf, len, truncated, &out, err, errlen);
  CHECK(r == 0 || r == -1);
  CHECK(err[errlen] == 'x');
  CHECK(memchr(err, '\0', errlen) != NULL);
  for (const char *e = err; *e; e++) CHECK(*e >= 0x20 && *e < 0x7f);
  if (truncated) CHECK(r == -1);
  if (r != 0) {
    CHECK(out.n == 1 && strcmp(out.kv[0].value, "s") == 0);
  } else {
    CHECK(out.n >= 1 && out.n <= WF_OUTPUT_MAX_NAMES + 1);
    size_t total = 0;
    for (size_t i = 0; i < out.n; i++) {
      const char *k = out.kv[i].key, *v = out.kv[i].value;
      if (strcmp(k, SENTINEL) == 0) continue;
      CHECK(wf_env_name_valid(k));
      size_t vl = strlen(v);
      CHECK(vl <= WF_OUTPUT_MAX_VALUE);
      CHECK(utf8_ok(v, vl));
      total += vl;
    }
    CHECK(total <= WF_OUTPUT_MAX_TOTAL);
    roundtrip(&out, 1);
    roundtrip(&out, 0);
  }
  wf_params_finish(&out);
  free(err);
}

static void check_summary(const char *buf, size_t len) {
  const char *nl = memchr(buf, '\n', len);
  size_t n = nl ? (size_t)(nl - buf) : len;
  if (n && buf[n - 1] == '\r') n--;
  char *s = wf_summary_line(buf, len);
  if (n == 0) {
    CHECK(s == NULL);
    return;
  }
  CHECK(s != NULL);
  size_t sl = strlen(s);
  CHECK(sl > 0 && sl <= WF_SUMMARY_MAX && sl <= n);
  CHECK(utf8_ok(s, sl));
  for (size_t i = 0; i < sl; i++) {
    unsigned char c = (unsigned char)s[i];
    CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
    CHECK(!(c == 0xc2 && i + 1 < sl && (unsigned char)s[i + 1] < 0xa0));
  }
  int plain = n <= WF_SUMMARY_MAX;
  for (size_t i = 0; plain && i < n; i++) plain = buf[i] >= 0x20 && buf[i] < 0x7f;
  if (plain) CHECK(sl == n && memcmp(s, buf, n) == 0);
  free(s);
}

static void check_pipeline_pos(const char *buf, size_t len) {
  const char *nl = memchr(buf, '\n', len);
  size_t n = nl ? (size_t)(nl - buf) : len;
  if (n > 256 || memchr(buf, '\0', n)) return;
  char key[257];
  memcpy(key, buf, n);
  key[n] = '\0';
  wf_pipeline_pos_t p;
  if (wf_pipeline_pos(key, &p) != 0) return;
  CHECK(p.run == key && p.run_len >= 4 && key[p.run_len - 1] == '.');
  CHECK(p.stage >= 1 && p.step >= 1);
  char back[300];
  snprintf(back, sizeof back, "%.*s%" PRId64 ".%" PRId64, (int)p.run_len, key, p.stage, p.step);
  CHECK(strcmp(back, key) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t errlen = (data[0] & 0x7f) ? (size_t)(data[0] & 0x7f) : 256;
  int truncated = data[0] >> 7;
  size_t len = size - 1;
  char *buf = malloc(len ? len : 1);
  CHECK(buf);
  memcpy(buf, data + 1, len);
  check_parse(buf, len, truncated, errlen);
  check_summary(buf, len);
  check_pipeline_pos(buf, len);
  free(buf);
  return 0;
}
