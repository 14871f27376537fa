/*
 * yaml: turns YAML (through libyaml's event parser) or JSON text into
 * jansson values.  Used at start-up (the config file, --actions-dir) and by
 * wfctl, never on the node's loop: everything here is synchronous.
 *
 * Input may be hostile (an operator's typo, or a file someone else wrote), so
 * the builder never recurses: it keeps an explicit stack of open collections
 * bounded by WF_YAML_MAX_DEPTH, refuses anchors and aliases (the "billion
 * laughs" expansion needs them), and checks every jansson allocation.
 */
#include "wf/yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <protobuf-c/protobuf-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "wf/util.h"

/* One open sequence or mapping.  A mapping alternates key and value events;
 * `key` holds the key until its value arrives. */
typedef struct frame_s {
  json_t *node;
  char *key;
  size_t key_line;
} frame_t;

typedef struct builder_s {
  frame_t stack[WF_YAML_MAX_DEPTH + 1];
  int depth;        /* number of open collections */
  json_t *docs;     /* the result array */
  json_t *root;     /* the current document's value */
  char *err;
  size_t errlen;
} builder_t;

/* ---- scalar typing ------------------------------------------------------- */

static int is_one_of(const char *s, const char *const *words) {
  for (; *words; words++)
    if (strcmp(s, *words) == 0) return 1;
  return 0;
}

static const char *const null_words[] = {"~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                         "on", "On", "ON", NULL};
static const char *const false_words[] = {"false", "False", "FALSE", "no", "No", "NO",
                                          "off", "Off", "OFF", NULL};

/* Decimal integer without a leading zero, or 0x hex.  Returns 1 and the value
 * when s is one that fits int64; 0 otherwise (then it stays a string). */
static int parse_int(const char *s, json_int_t *out) {
  const char *p = s;
  int neg = 0;
  if (*p == '-' || *p == '+') neg = (*p++ == '-');
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    p += 2;
    if (!*p) return 0;
    uint64_t v = 0;
    for (; *p; p++) {
      int d;
      if (*p >= '0' && *p <= '9') d = *p - '0';
      else if (*p >= 'a' && *p <= 'f') d = *p - 'a' + 10;
      else if (*p >= 'A' && *p <= 'F') d = *p - 'A' + 10;
      else return 0;
      if (v > (UINT64_MAX >> 4)) return 0;
      v = v * 16 + (uint64_t)d;
    }
    if (v > (uint64_t)INT64_MAX) return 0;
    *out = neg ? -(json_int_t)v : (json_int_t)v;
    return 1;
  }
  if (!*p) return 0;
  if (p[0] == '0' && p[1]) return 0;  /* leading zero: keep the text */
  uint64_t v = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9') return 0;
    if (v > (UINT64_MAX - 9) / 10) return 0;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return 0;
  *out = neg ? (json_int_t)(0 - v) : (json_int_t)v;
  return 1;
}

/* [-+]? (digits [. digits?] | . digits) ([eE] [-+]? digits)?, with at least a
 * '.' or an exponent (otherwise it was an integer or a string). */
static int parse_real(const char *s, double *out) {
  const char *p = s;
  int digits = 0, dot = 0, exp = 0;
  if (*p == '-' || *p == '+') p++;
  for (; *p >= '0' && *p <= '9'; p++) digits++;
  if (*p == '.') {
    dot = 1;
    for (p++; *p >= '0' && *p <= '9'; p++) digits++;
  }
  if (!digits) return 0;
  if (*p == 'e' || *p == 'E') {
    int ed = 0;
    exp = 1;
    p++;
    if (*p == '-' || *p == '+') p++;
    for (; *p >= '0' && *p <= '9'; p++) ed++;
    if (!ed) return 0;
  }
  if (*p || (!dot && !exp)) return 0;
  char *end;
  errno = 0;
  double d = strtod(s, &end);
  if (*end || !isfinite(d)) return 0;
  *out = d;
  return 1;
}

/* The JSON value of a scalar event (NULL only if jansson cannot allocate or
 * the text is not valid UTF-8). */
static json_t *scalar_value(const yaml_event_t *ev) {
  const char *s = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  int force_str = tag && (strcmp(tag, YAML_STR_TAG) == 0 || strcmp(tag, "!") == 0);
  if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !force_str &&
      strlen(s) == len) {
    json_int_t i;
    double d;
    if (len == 0 || is_one_of(s, null_words)) return json_null();
    if (is_one_of(s, true_words)) return json_true();
    if (is_one_of(s, false_words)) return json_false();
    if (parse_int(s, &i)) return json_integer(i);
    if (parse_real(s, &d)) return json_real(d);
  }
  return json_stringn(s, len);
}

/* ---- builder ------------------------------------------------------------- */

static void set_err(builder_t *b, const yaml_mark_t *m, const char *fmt, const char *arg) {
  char msg[256];
  snprintf(msg, sizeof msg, fmt, arg ? arg : "");
  snprintf(b->err, b->errlen, "line %zu, column %zu: %s", m->line + 1, m->column + 1, msg);
}

/* Hands a finished value to whatever is open: the enclosing collection, or
 * the document.  Takes the reference to v in every case. */
static int attach(builder_t *b, json_t *v, const yaml_mark_t *m) {
  if (b->depth == 0) {
    b->root = v;
    return 0;
  }
  frame_t *f = &b->stack[b->depth - 1];
  if (json_is_array(f->node)) {
    if (json_array_append_new(f->node, v) != 0) {
      set_err(b, m, "out of memory", NULL);
      return -1;
    }
    return 0;
  }
  /* A mapping: the key was taken by add_key() before. */
  int r = json_object_set_new(f->node, f->key, v);
  free(f->key);
  f->key = NULL;
  if (r != 0) {
    set_err(b, m, "cannot store the value (invalid key)", NULL);
    return -1;
  }
  return 0;
}

/* 1 when the next node of the innermost open mapping is a key. */
static int expecting_key(const builder_t *b) {
  if (b->depth == 0) return 0;
  const frame_t *f = &b->stack[b->depth - 1];
  return json_is_object(f->node) && f->key == NULL;
}

static int add_key(builder_t *b, const yaml_event_t *ev) {
  frame_t *f = &b->stack[b->depth - 1];
  const char *s = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  if (strlen(s) != len) {
    set_err(b, &ev->start_mark, "a mapping key contains a NUL byte", NULL);
    return -1;
  }
  if (json_object_get(f->node, s)) {
    char q[128];
    snprintf(q, sizeof q, "%.100s", s);
    set_err(b, &ev->start_mark, "duplicate key \"%s\"", q);
    return -1;
  }
  f->key = wf_strndup(s, len);
  f->key_line = ev->start_mark.line;
  return 0;
}

static int open_collection(builder_t *b, const yaml_event_t *ev, json_t *node) {
  if (!node) {
    set_err(b, &ev->start_mark, "out of memory", NULL);
    return -1;
  }
  if (expecting_key(b)) {
    set_err(b, &ev->start_mark, "a mapping key must be a plain value, not a %s",
            json_is_array(node) ? "sequence" : "mapping");
    json_decref(node);
    return -1;
  }
  if (b->depth >= WF_YAML_MAX_DEPTH) {
    json_decref(node);
    char n[16];
    snprintf(n, sizeof n, "%d", WF_YAML_MAX_DEPTH);
    set_err(b, &ev->start_mark, "nested deeper than %s levels", n);
    return -1;
  }
  b->stack[b->depth].node = node;
  b->stack[b->depth].key = NULL;
  b->depth++;
  return 0;
}

static int close_collection(builder_t *b, const yaml_event_t *ev) {
  if (b->depth == 0) {
    set_err(b, &ev->start_mark, "unbalanced end of collection", NULL);
    return -1;
  }
  frame_t *f = &b->stack[--b->depth];
  json_t *node = f->node;
  f->node = NULL;
  if (f->key) {  /* cannot happen with libyaml, but stay safe */
    free(f->key);
    f->key = NULL;
  }
  return attach(b, node, &ev->start_mark);
}

static int on_event(builder_t *b, const yaml_event_t *ev) {
  switch (ev->type) {
  case YAML_DOCUMENT_START_EVENT:
    b->root = NULL;
    return 0;
  case YAML_DOCUMENT_END_EVENT:
    if (json_array_append_new(b->docs, b->root ? b->root : json_null()) != 0) {
      b->root = NULL;
      set_err(b, &ev->start_mark, "out of memory", NULL);
      return -1;
    }
    b->root = NULL;
    return 0;
  case YAML_ALIAS_EVENT:
    set_err(b, &ev->start_mark, "aliases (*%s) are not supported",
            (const char *)ev->data.alias.anchor);
    return -1;
  case YAML_SCALAR_EVENT: {
    if (ev->data.scalar.anchor) {
      set_err(b, &ev->start_mark, "anchors (&%s) are not supported",
              (const char *)ev->data.scalar.anchor);
      return -1;
    }
    if (expecting_key(b)) return add_key(b, ev);
    json_t *v = scalar_value(ev);
    if (!v) {
      set_err(b, &ev->start_mark, "a value is not valid UTF-8", NULL);
      return -1;
    }
    return attach(b, v, &ev->start_mark);
  }
  case YAML_SEQUENCE_START_EVENT:
    if (ev->data.sequence_start.anchor) {
      set_err(b, &ev->start_mark, "anchors (&%s) are not supported",
              (const char *)ev->data.sequence_start.anchor);
      return -1;
    }
    return open_collection(b, ev, json_array());
  case YAML_MAPPING_START_EVENT:
    if (ev->data.mapping_start.anchor) {
      set_err(b, &ev->start_mark, "anchors (&%s) are not supported",
              (const char *)ev->data.mapping_start.anchor);
      return -1;
    }
    return open_collection(b, ev, json_object());
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT:
    return close_collection(b, ev);
  default:
    return 0;  /* stream start/end, nothing to build */
  }
}

static void builder_finish(builder_t *b) {
  while (b->depth > 0) {
    frame_t *f = &b->stack[--b->depth];
    json_decref(f->node);
    free(f->key);
  }
  json_decref(b->root);
  b->root = NULL;
}

json_t *wf_yaml_load_all(const char *buf, size_t len, char *err, size_t errlen) {
  yaml_parser_t parser;
  builder_t b;
  memset(&b, 0, sizeof b);
  b.err = err;
  b.errlen = errlen;
  if (errlen) err[0] = '\0';
  if (!yaml_parser_initialize(&parser)) {
    snprintf(err, errlen, "cannot initialise the YAML parser");
    return NULL;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
  b.docs = json_array();
  int done = 0, failed = !b.docs;
  while (!done && !failed) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      const yaml_mark_t *m = &parser.problem_mark;
      snprintf(err, errlen, "line %zu, column %zu: %s%s%s", m->line + 1, m->column + 1,
               parser.problem ? parser.problem : "invalid YAML",
               parser.context ? " " : "", parser.context ? parser.context : "");
      failed = 1;
      break;
    }
    if (ev.type == YAML_STREAM_END_EVENT) done = 1;
    if (on_event(&b, &ev) != 0) failed = 1;
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  builder_finish(&b);
  if (failed) {
    json_decref(b.docs);
    return NULL;
  }
  return b.docs;
}

static const char *first_nonspace(const char *buf, size_t len) {
  for (size_t i = 0; i < len; i++) {
    /* A UTF-8 byte order mark does not count. */
    if (i + 2 < len && (unsigned char)buf[i] == 0xEF && (unsigned char)buf[i + 1] == 0xBB &&
        (unsigned char)buf[i + 2] == 0xBF) {
      i += 2;
      continue;
    }
    if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r' && buf[i] != '\n') return buf + i;
  }
  return NULL;
}

json_t *wf_yaml_load_buf(const char *buf, size_t len, char *err, size_t errlen) {
  const char *p = first_nonspace(buf, len);
  if (!p || (*p != '{' && *p != '[')) return wf_yaml_load_all(buf, len, err, errlen);
  /* JSON: jansson reports line and column itself. */
  json_error_t je;
  json_t *v = json_loadb(p, len - (size_t)(p - buf), JSON_REJECT_DUPLICATES, &je);
  if (!v) {
    size_t skipped_lines = 0;
    for (const char *q = buf; q < p; q++) skipped_lines += (*q == '\n');
    snprintf(err, errlen, "line %d, column %d: %s", je.line + (int)skipped_lines,
             je.column, je.text);
    return NULL;
  }
  if (json_is_array(v)) return v;
  json_t *docs = json_array();
  if (!docs || json_array_append_new(docs, v) != 0) {
    json_decref(docs);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  return docs;
}

json_t *wf_yaml_load_file(const char *path, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open: %s", strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "not a regular file");
    close(fd);
    return NULL;
  }
  /* Read up to the cap (+1 to notice a file that is larger); the size from
   * fstat is only a hint, the file may change while we read it. */
  wf_buf_t b;
  wf_buf_init(&b, WF_YAML_MAX_FILE + 1);
  char chunk[65536];
  json_t *res = NULL;
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      snprintf(err, errlen, "cannot read: %s", strerror(errno));
      goto out;
    }
    if (n == 0) break;
    if (wf_buf_append(&b, chunk, (size_t)n) != 0 || b.len > WF_YAML_MAX_FILE) {
      snprintf(err, errlen, "larger than %u bytes", (unsigned)WF_YAML_MAX_FILE);
      goto out;
    }
  }
  res = wf_yaml_load_buf(b.data ? b.data : "", b.len, err, errlen);
out:
  close(fd);
  wf_buf_finish(&b);
  return res;
}

/* ---- schema-guided string coercion -------------------------------------- */

/* The text of a scalar that YAML typed but the schema wants as a string;
 * NULL when v is not such a scalar (left to the codec). */
static json_t *scalar_text(const json_t *v) {
  char tmp[64];
  if (json_is_integer(v)) {
    snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  } else if (json_is_real(v)) {
    /* The shortest form that reads back as the same double. */
    double d = json_real_value(v);
    for (int prec = 1; prec <= 17; prec++) {
      snprintf(tmp, sizeof tmp, "%.*g", prec, d);
      if (strtod(tmp, NULL) == d) break;
    }
    if (!strpbrk(tmp, ".eEn")) strncat(tmp, ".0", sizeof tmp - strlen(tmp) - 1);
  } else if (json_is_boolean(v)) {
    snprintf(tmp, sizeof tmp, "%s", json_is_true(v) ? "true" : "false");
  } else {
    return NULL;
  }
  return json_string(tmp);
}

static int is_string_map(const ProtobufCFieldDescriptor *f) {
  if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) return 0;
  const ProtobufCMessageDescriptor *e = f->descriptor;
  if (!e || e->n_fields != 2) return 0;
  /* protoc-c names map entries <Field>Entry with fields key=1, value=2. */
  size_t nl = strlen(e->name);
  if (nl < 5 || strcmp(e->name + nl - 5, "Entry") != 0) return 0;
  return e->fields[1].type == PROTOBUF_C_TYPE_STRING;
}

static void coerce(json_t *obj, const ProtobufCMessageDescriptor *desc, int depth) {
  if (!json_is_object(obj) || !desc || depth > WF_YAML_MAX_DEPTH) return;
  for (unsigned i = 0; i < desc->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &desc->fields[i];
    json_t *v = json_object_get(obj, f->name);
    if (!v) continue;
    if (is_string_map(f)) {
      const char *k;
      json_t *mv;
      json_object_foreach(v, k, mv) {
        json_t *s = scalar_text(mv);
        if (s) json_object_set_new(v, k, s);
      }
    } else if (f->label == PROTOBUF_C_LABEL_REPEATED && json_is_array(v)) {
      for (size_t j = 0; j < json_array_size(v); j++) {
        json_t *e = json_array_get(v, j);
        if (f->type == PROTOBUF_C_TYPE_STRING) {
          json_t *s = scalar_text(e);
          if (s) json_array_set_new(v, j, s);
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
          coerce(e, f->descriptor, depth + 1);
        }
      }
    } else if (f->type == PROTOBUF_C_TYPE_STRING) {
      json_t *s = scalar_text(v);
      if (s) json_object_set_new(obj, f->name, s);
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
      coerce(v, f->descriptor, depth + 1);
    }
  }
}

void wf_yaml_coerce_strings(json_t *obj, const struct ProtobufCMessageDescriptor *desc) {
  coerce(obj, desc, 0);
}
