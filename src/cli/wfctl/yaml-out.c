/*
 * yaml-out: a JSON value as one YAML document (pure), for `get -o yaml` and
 * `describe`.  It is written with libyaml's emitter from the same value
 * tree `-o json` prints, keys in the same order, quoting every string a
 * YAML reader would otherwise take for a number, a date, a boolean or null,
 * so reading the text back gives the same values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "wf/cli.h"
#include "wf/util.h"

/* libyaml picks the quoting style itself (it quotes "a: b", "#x", control
 * characters...), but it does not know which plain scalars a reader would
 * type as something else.  A string that could read back as a number, a
 * date, a boolean or null is therefore emitted quoted.  Any first character
 * that can start such a value counts, which quotes a few strings that did not
 * need it ("-x", "1st") and misses none. */
static int reads_as_non_string(const char *s) {
  static const char *const words[] = {"null", "true", "false", "yes", "no", "on", "off", "y",
                                      "n", NULL};
  if (!s[0] || strchr("0123456789+-.~=<", s[0])) return 1;
  for (const char *const *w = words; *w; w++)
    if (strcasecmp(s, *w) == 0) return 1;
  return 0;
}

static int emit_event(yaml_emitter_t *em, yaml_event_t *ev, int ok) {
  return ok && yaml_emitter_emit(em, ev) ? 0 : -1;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, size_t len, int is_string) {
  yaml_event_t ev;
  int quote = is_string && reads_as_non_string(s);
  /* Multi-line text (logs, scripts) reads best as a literal block; libyaml
   * falls back to a quoted style where a block is not allowed. */
  yaml_scalar_style_t style =
      is_string && memchr(s, '\n', len) ? YAML_LITERAL_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;
  return emit_event(em, &ev, yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s,
                                                          (int)len, !quote, 1, style));
}

/* The shortest text that reads back as the same double, always with a '.'
 * (YAML 1.1 readers take "1e+20" for a string). */
static void real_text(double d, char *out, size_t len) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(out, len, "%.*g", prec, d);
    if (strtod(out, NULL) == d) break;
  }
  if (strpbrk(out, ".in")) return; /* has a point, or is inf/nan (JSON has neither) */
  char *e = strchr(out, 'e');
  char tail[32];
  snprintf(tail, sizeof tail, "%s", e ? e : "");
  size_t head = e ? (size_t)(e - out) : strlen(out);
  snprintf(out + head, len - head, ".0%s", tail);
}

static int emit_value(yaml_emitter_t *em, const json_t *v, int depth) {
  yaml_event_t ev;
  char num[64];
  if (depth > 512) return -1;
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *x;
    yaml_mapping_style_t st = json_object_size(v) ? YAML_BLOCK_MAPPING_STYLE
                                                  : YAML_FLOW_MAPPING_STYLE;
    if (emit_event(em, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, st)) != 0)
      return -1;
    /* Insertion order: the order of the stored JSON, as `-o json` prints. */
    json_object_foreach((json_t *)v, k, x) {
      if (emit_scalar(em, k, strlen(k), 1) != 0 || emit_value(em, x, depth + 1) != 0)
        return -1;
    }
    return emit_event(em, &ev, yaml_mapping_end_event_initialize(&ev));
  }
  case JSON_ARRAY: {
    size_t i;
    json_t *x;
    yaml_sequence_style_t st = json_array_size(v) ? YAML_BLOCK_SEQUENCE_STYLE
                                                  : YAML_FLOW_SEQUENCE_STYLE;
    if (emit_event(em, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, st)) != 0)
      return -1;
    json_array_foreach(v, i, x) {
      if (emit_value(em, x, depth + 1) != 0) return -1;
    }
    return emit_event(em, &ev, yaml_sequence_end_event_initialize(&ev));
  }
  case JSON_STRING:
    return emit_scalar(em, json_string_value(v), json_string_length(v), 1);
  case JSON_INTEGER:
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return emit_scalar(em, num, strlen(num), 0);
  case JSON_REAL:
    real_text(json_real_value(v), num, sizeof num);
    return emit_scalar(em, num, strlen(num), 0);
  case JSON_TRUE: return emit_scalar(em, "true", 4, 0);
  case JSON_FALSE: return emit_scalar(em, "false", 5, 0);
  case JSON_NULL: return emit_scalar(em, "null", 4, 0);
  }
  return -1;
}

static int yaml_out(void *data, unsigned char *p, size_t n) {
  return wf_buf_append(data, p, n) == 0;
}

char *wf_cli_yaml_dump(const json_t *v) {
  yaml_emitter_t em;
  yaml_event_t ev;
  wf_buf_t b;
  char *out = NULL;
  if (!v || !yaml_emitter_initialize(&em)) return NULL;
  wf_buf_init(&b, 1u << 30);
  yaml_emitter_set_output(&em, yaml_out, &b);
  yaml_emitter_set_unicode(&em, 1);
  yaml_emitter_set_indent(&em, 2);
  yaml_emitter_set_width(&em, -1);  /* never fold long lines */
  if (emit_event(&em, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING)) != 0 ||
      emit_event(&em, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1)) != 0 ||
      emit_value(&em, v, 0) != 0 ||
      emit_event(&em, &ev, yaml_document_end_event_initialize(&ev, 1)) != 0 ||
      emit_event(&em, &ev, yaml_stream_end_event_initialize(&ev)) != 0 ||
      !yaml_emitter_flush(&em))
    goto out;
  out = wf_strndup(b.data ? b.data : "", b.len);
out:
  yaml_emitter_delete(&em);
  wf_buf_finish(&b);
  return out;
}
