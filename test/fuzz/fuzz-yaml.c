/*
 * fuzz-yaml: the YAML loader (src/model/yaml.c: wf_yaml_load_all, or
 * wf_yaml_load_buf, which also takes JSON, as `wfctl apply -f -` does) and
 * then `wfctl apply`'s preparation of every document (src/cli/wfctl/apply-prep.c:
 * wf_cli_apply_prepare: kind, defaults, string coercion, validation).
 *
 * Oracles: every loaded document, written as JSON text, loads back as the
 * same value (JSON is YAML; this checks the scalar typing); a prepared
 * document must decode with the codec as its kind, and its key must start
 * with the prefix.
 *
 * Input layout:
 *   byte 0  bit 0: wf_yaml_load_buf instead of wf_yaml_load_all;  bit 1: a
 *           --node default;  bits 2-7: the error buffer size (1..64 bytes,
 *           or the 512 wfctl uses when 0)
 *   rest    the document(s)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/cli.h"
#include "wf/codec.h"
#include "wf/util.h"
#include "wf/yaml.h"
#include "fuzz-check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  wf_log_setup(WF_LOG_ERROR, 0);
  return 0;
}

/* 1 if s (UTF-8) holds a character that YAML does not take back as itself
 * inside a double-quoted scalar: DEL and the C1 controls are not printable
 * in YAML, NEL and U+2028/U+2029 are line breaks (folded), and BOM and
 * U+FFFE/U+FFFF are special or not printable. */
static int yaml_unsafe_text(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == 0x7f) return 1;
    if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) return 1;
    if (p[i] == 0xe2 && i + 2 < n && p[i + 1] == 0x80 && (p[i + 2] == 0xa8 || p[i + 2] == 0xa9))
      return 1;
    if (p[i] == 0xef && i + 2 < n && p[i + 1] == 0xbb && p[i + 2] == 0xbf) return 1;
    if (p[i] == 0xef && i + 2 < n && p[i + 1] == 0xbf && (p[i + 2] == 0xbe || p[i + 2] == 0xbf))
      return 1;
  }
  return 0;
}

/* 1 if the JSON text of v cannot be read back as YAML for reasons of YAML,
 * not of our loader: the characters above, or a mapping key longer than
 * libyaml's 1024-character bound on an implicit key. */
static int yaml_unsafe(const json_t *v, int depth) {
  if (depth > WF_YAML_MAX_DEPTH) return 1;
  if (json_is_string(v)) return yaml_unsafe_text(json_string_value(v), json_string_length(v));
  if (json_is_array(v)) {
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (yaml_unsafe(e, depth + 1)) return 1;
    return 0;
  }
  if (json_is_object(v)) {
    const char *k;
    json_t *e;
    json_object_foreach((json_t *)v, k, e) {
      size_t kl = strlen(k), esc = 0;
      for (size_t i = 0; i < kl; i++)
        esc += ((unsigned char)k[i] < 0x20 || k[i] == '"' || k[i] == '\\') ? 6 : 1;
      if (esc > 1000 || yaml_unsafe_text(k, kl) || yaml_unsafe(e, depth + 1)) return 1;
    }
  }
  return 0;
}

/* JSON is (nearly) YAML: a document written as JSON text must load back as
 * the same value, which checks the loader's scalar typing (quoted = string;
 * integers, reals, true/false/null as jansson writes them). */
static void roundtrip(const json_t *doc) {
  if (yaml_unsafe(doc, 0)) return;
  char *s = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
  CHECK(s != NULL);
  char err[256];
  json_t *back = wf_yaml_load_all(s, strlen(s), err, sizeof err);
  if (!back || json_array_size(back) != 1 || !json_equal(json_array_get(back, 0), doc)) {
    char *b = back ? json_dumps(back, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    fprintf(stderr, "YAML round trip differs:\n  in:  %s\n  out: %s\n", s, b ? b : err);
    free(b);
    CHECK(!"round trip");
  }
  json_decref(back);
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int use_buf = data[0] & 1;
  const char *node = (data[0] & 2) ? "node-01" : NULL;
  size_t errlen = (data[0] >> 2) ? (size_t)(data[0] >> 2) : 512;
  /* The loader gets exactly len bytes, no NUL after them. */
  size_t len = size - 1;
  char *buf = malloc(len ? len : 1);
  CHECK(buf);
  memcpy(buf, data + 1, len);
  char *err = malloc(errlen + 1);
  CHECK(err);
  memset(err, 'x', errlen + 1);

  json_t *docs = use_buf ? wf_yaml_load_buf(buf, len, err, errlen)
                         : wf_yaml_load_all(buf, len, err, errlen);
  if (!docs) {
    CHECK(memchr(err, '\0', errlen) != NULL);
  } else {
    CHECK(json_is_array(docs));
    char *s = json_dumps(docs, JSON_COMPACT | JSON_ENCODE_ANY);
    CHECK(s != NULL);
    free(s);
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc) {
      roundtrip(doc);
      if (json_is_null(doc)) continue;  /* as apply_load: an empty document */
      enum wf_cli_kind kind;
      char *key = NULL, *label = NULL;
      memset(err, 'x', errlen);
      int r = wf_cli_apply_prepare(doc, "/p", node, &kind, &key, &label, err, errlen);
      if (r != 0) {
        CHECK(r == -1 && key == NULL && label == NULL);
        CHECK(memchr(err, '\0', errlen) != NULL);
        continue;
      }
      CHECK(key != NULL && label != NULL);
      CHECK(strncmp(key, "/p/workflow/", 12) == 0);
      const ProtobufCMessageDescriptor *d = kind == WF_CLI_ACTION     ? &wf__action__descriptor
                                            : kind == WF_CLI_PIPELINE ? &wf__pipeline__descriptor
                                                                      : &wf__step__descriptor;
      char e2[256];
      ProtobufCMessage *m = wf_codec_decode(d, doc, 0, e2, sizeof e2);
      CHECK(m != NULL);
      wf_codec_free(m);
      /* What apply stores. */
      char *v = json_dumps(doc, JSON_COMPACT);
      CHECK(v != NULL);
      free(v);
      free(key);
      free(label);
    }
    json_decref(docs);
  }
  CHECK(err[errlen] == 'x');
  free(err);
  free(buf);
  return 0;
}
