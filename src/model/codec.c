/*
 * codec: JSON (jansson) <-> protobuf-c messages, driven only by the
 * ProtobufCMessageDescriptor.  There is no per-field code: every message of
 * proto/workflow.proto (and any other protoc-c message) goes through the same
 * walk over desc->fields, switching on the field's type and label.
 *
 * Memory: decoded messages are laid out exactly as protobuf_c_message_unpack
 * would lay them out with the default allocator (malloc), so
 * protobuf_c_message_free_unpacked(msg, NULL) releases them.  Unset strings
 * point at the field's default_value (protobuf_c_empty_string in proto3),
 * which free_unpacked knows not to free; every other string, array, byte
 * buffer and sub-message is malloc'd.  Elements of repeated string fields are
 * always malloc'd, because free_unpacked frees each of them unconditionally.
 *
 * Maps are repeated *Entry messages.  protoc-c keeps no "map" flag, so a map
 * field is recognised by the shape protoc gives every map entry: a nested
 * message named CamelCase(field)+"Entry" whose only fields are key=1 and
 * value=2 (see is_map_field).
 *
 * Hostile input: decode recursion is bounded by WF_CODEC_MAX_DEPTH (jansson
 * bounds the depth of what it parses, but a caller may build a deeper json_t);
 * a string containing NUL is an error, never silently truncated; numbers are
 * range-checked for their field's C type.  Encode never emits invalid UTF-8:
 * bad bytes become U+FFFD, as Go's encoding/json does.
 */
#include "wf/codec.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/util.h"

/* Fields the Go structs tag `omitempty`, by full message name and field name
 * ("*" = every field of the message).  The descriptor cannot carry Go struct
 * tags, so this is the one piece of per-field knowledge; it is only consulted
 * in WF_CODEC_NULL_EMPTY (Go output) mode.  Source: reference-go-workflow.md
 * §1.1, §1.2, §2.1. */
static const char *const go_omitempty[] = {
  "wf.Step.key",
  "wf.Step.pipeline_id",
  "wf.Step.resource_version",
  "wf.Step.status",
  "wf.StepStatus.context_map",
  "wf.Node.*",
};

/* Key paths longer than this are cut; only error messages use them. */
#define PATH_MAX_LEN 256

typedef struct {
  unsigned flags;
  int depth;
  char *err;
  size_t errlen;
  char path[PATH_MAX_LEN];
  size_t plen;
} ctx_t;

/* ---- small helpers ------------------------------------------------------- */

static void set_err(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(ctx_t *c, const char *fmt, ...) {
  if (!c->err || c->errlen == 0) return;
  size_t off = 0;
  if (c->plen > 0) {
    int n = snprintf(c->err, c->errlen, "%s: ", c->path);
    if (n < 0) n = 0;
    off = (size_t)n < c->errlen ? (size_t)n : c->errlen - 1;
  } else {
    c->err[0] = '\0';
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err + off, c->errlen - off, fmt, ap);
  va_end(ap);
}

/* Appends a path segment and returns the length to restore with path_pop. */
static size_t path_push(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t path_push(ctx_t *c, const char *fmt, ...) {
  size_t old = c->plen;
  size_t room = sizeof(c->path) - c->plen;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(c->path + c->plen, room, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  c->plen += (size_t)n < room ? (size_t)n : room - 1;
  return old;
}

static void path_pop(ctx_t *c, size_t old) {
  c->plen = old;
  c->path[old] = '\0';
}

static size_t path_push_field(ctx_t *c, const char *name) {
  return path_push(c, c->plen ? ".%s" : "%s", name);
}

#define MEMBER(msg, off) ((void *)((char *)(msg) + (off)))

static size_t value_size(ProtobufCType t) {
  switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      return sizeof(int32_t);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return sizeof(uint32_t);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      return sizeof(int64_t);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
      return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
      return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
      return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
      return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
      return sizeof(ProtobufCMessage *);
  }
  return 0;
}

/* A singular field with an explicit has_ flag: proto2 optional scalars and
 * bytes (optional strings and messages use NULL instead). */
static int has_flag_field(const ProtobufCFieldDescriptor *f) {
  return f->label == PROTOBUF_C_LABEL_OPTIONAL && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
         f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE;
}

/* protoc names a map field's entry type like this (MapEntryName in
 * protobuf's descriptor.cc): drop '_', capitalise the letter after it and
 * the first letter, append "Entry". */
static int is_map_field(const ProtobufCMessageDescriptor *parent,
                        const ProtobufCFieldDescriptor *f) {
  if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) return 0;
  const ProtobufCMessageDescriptor *md = f->descriptor;
  if (!md || md->n_fields != 2) return 0;
  const ProtobufCFieldDescriptor *k = &md->fields[0], *v = &md->fields[1];
  if (k->id != 1 || v->id != 2 || strcmp(k->name, "key") != 0 || strcmp(v->name, "value") != 0)
    return 0;
  if (k->label == PROTOBUF_C_LABEL_REPEATED || v->label == PROTOBUF_C_LABEL_REPEATED) return 0;
  char want[PATH_MAX_LEN];
  size_t n = 0;
  int cap_next = 1;
  for (const char *p = f->name; *p; p++) {
    if (n + sizeof("Entry") >= sizeof(want)) return 0;
    if (*p == '_') {
      cap_next = 1;
    } else if (cap_next) {
      want[n++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
      cap_next = 0;
    } else {
      want[n++] = *p;
    }
  }
  memcpy(want + n, "Entry", sizeof("Entry"));
  if (strcmp(md->short_name, want) != 0) return 0;
  /* ...and nested in the message that holds the field. */
  size_t pl = strlen(parent->name);
  return strncmp(md->name, parent->name, pl) == 0 && md->name[pl] == '.' &&
         strcmp(md->name + pl + 1, want) == 0;
}

static int is_go_omitempty(const ProtobufCMessageDescriptor *desc,
                           const ProtobufCFieldDescriptor *f) {
  size_t dl = strlen(desc->name);
  for (size_t i = 0; i < sizeof(go_omitempty) / sizeof(go_omitempty[0]); i++) {
    const char *e = go_omitempty[i];
    if (strncmp(e, desc->name, dl) == 0 && e[dl] == '.' &&
        (strcmp(e + dl + 1, "*") == 0 || strcmp(e + dl + 1, f->name) == 0))
      return 1;
  }
  return 0;
}

int wf_ascii_casecmp(const char *a, const char *b) {
  for (;; a++, b++) {
    unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
    if (x >= 'A' && x <= 'Z') x = (unsigned char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = (unsigned char)(y - 'A' + 'a');
    if (x != y || x == '\0') return (int)x - (int)y;
  }
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), or 0 if the byte at s starts none. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  if (c < 0xC2 || c > 0xF4) return 0;
  size_t need = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  if (n < need) return 0;
  for (size_t i = 1; i < need; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
  if (c == 0xED && s[1] >= 0xA0) return 0; /* UTF-16 surrogate */
  if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
  if (c == 0xF4 && s[1] >= 0x90) return 0; /* past U+10FFFF */
  return need;
}

/* Returns s as valid UTF-8: NULL if it already is, else a malloc'd copy in
 * which every byte that starts no valid sequence is U+FFFD (what Go's
 * encoding/json writes for such bytes). */
static char *utf8_fix(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    size_t k = utf8_seq(u + i, n - i);
    if (k == 0) break;
    i += k;
  }
  if (i == n) return NULL;
  char *out = wf_malloc(n * 3 + 1);
  size_t o = 0;
  for (i = 0; i < n;) {
    size_t k = utf8_seq(u + i, n - i);
    if (k == 0) {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    } else {
      memcpy(out + o, s + i, k);
      o += k;
      i += k;
    }
  }
  out[o] = '\0';
  return out;
}

static json_t *json_utf8(const char *s) {
  if (!s) s = "";
  size_t n = strlen(s);
  char *fixed = utf8_fix(s, n);
  if (!fixed) return json_stringn_nocheck(s, n);
  json_t *j = json_string_nocheck(fixed);
  free(fixed);
  return j;
}

/* ---- enums ----------------------------------------------------------------- */

const char *wf_enum_name(const ProtobufCEnumDescriptor *d, int value) {
  if (!d) return NULL;
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
  return v ? v->name : NULL;
}

int wf_enum_parse(const ProtobufCEnumDescriptor *d, const char *name, int *value) {
  if (!d || !name) return -1;
  /* Exact match first, so two names differing only in case (the Go
   * original's K8s/K8S) still resolve to the one spelled exactly. */
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(d, name);
  for (unsigned i = 0; !v && i < d->n_values; i++)
    if (wf_ascii_casecmp(d->values[i].name, name) == 0) v = &d->values[i];
  if (!v) return -1;
  if (value) *value = v->value;
  return 0;
}

/* ---- clearing a field -------------------------------------------------------
 * Used before a field is (re)written during decode: a JSON object may name
 * the same field twice (exact and case-folded key, like Go accepts) or two
 * members of one oneof, and the earlier value must not leak. */

static void free_value(const ProtobufCFieldDescriptor *f, void *slot, int elem) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
      char *s = *(char **)slot;
      if (s && (elem || s != (const char *)f->default_value)) free(s);
      *(char **)slot = elem ? NULL : (char *)f->default_value;
      break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
      ProtobufCBinaryData *b = slot;
      const ProtobufCBinaryData *def = elem ? NULL : f->default_value;
      if (b->data && (!def || def->data != b->data)) free(b->data);
      if (def) {
        *b = *def;
      } else {
        b->data = NULL;
        b->len = 0;
      }
      break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      ProtobufCMessage *m = *(ProtobufCMessage **)slot;
      if (m && (elem || m != f->default_value)) protobuf_c_message_free_unpacked(m, NULL);
      *(ProtobufCMessage **)slot = NULL;
      break;
    }
    default:
      if (!elem && f->default_value)
        memcpy(slot, f->default_value, value_size(f->type));
      else
        memset(slot, 0, value_size(f->type));
      break;
  }
}

static void clear_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    size_t *n = MEMBER(msg, f->quantifier_offset);
    void **arr = MEMBER(msg, f->offset);
    size_t sz = value_size(f->type);
    for (size_t i = 0; *arr && i < *n; i++) free_value(f, (char *)*arr + i * sz, 1);
    free(*arr);
    *arr = NULL;
    *n = 0;
    return;
  }
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    uint32_t *which = MEMBER(msg, f->quantifier_offset);
    if (*which != f->id) return;  /* the union holds another member */
    *which = 0;
  } else if (has_flag_field(f)) {
    *(protobuf_c_boolean *)MEMBER(msg, f->quantifier_offset) = 0;
  }
  free_value(f, MEMBER(msg, f->offset), 0);
}

/* ---- decode: scalars -------------------------------------------------------- */

/* Parses [-]digits into sign and magnitude: 0, -1 for bad syntax, -2 past
 * UINT64_MAX. */
static int parse_dec(const char *s, size_t n, int *neg, uint64_t *mag) {
  size_t i = 0;
  *neg = 0;
  *mag = 0;
  if (n > 0 && s[0] == '-') {
    *neg = 1;
    i = 1;
  }
  if (i == n) return -1;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (*mag > (UINT64_MAX - d) / 10) return -2;
    *mag = *mag * 10 + d;
  }
  return 0;
}

/* An integral JSON value as sign + magnitude: a JSON integer, a real with an
 * integral value (some writers emit 1.0e3), or a digit string (etcd and
 * proto3 JSON write 64-bit integers as strings). */
static int get_integral(ctx_t *c, const json_t *v, int *neg, uint64_t *mag) {
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    *neg = x < 0;
    *mag = x < 0 ? (uint64_t)(-(x + 1)) + 1 : (uint64_t)x;
    return 0;
  }
  if (json_is_real(v)) {
    double d = json_real_value(v);
    if (!isfinite(d) || d != trunc(d)) {
      set_err(c, "expected an integer");
      return -1;
    }
    if (d <= -18446744073709551616.0 || d >= 18446744073709551616.0) {
      set_err(c, "integer out of range");
      return -1;
    }
    *neg = d < 0;
    *mag = (uint64_t)(d < 0 ? -d : d);
    return 0;
  }
  if (json_is_string(v)) {
    int r = parse_dec(json_string_value(v), json_string_length(v), neg, mag);
    if (r == -1) set_err(c, "expected an integer");
    if (r == -2) set_err(c, "integer out of range");
    return r ? -1 : 0;
  }
  set_err(c, "expected an integer");
  return -1;
}

static int get_sint(ctx_t *c, const json_t *v, int64_t max, int64_t *out) {
  int neg;
  uint64_t mag;
  if (get_integral(c, v, &neg, &mag)) return -1;
  /* min is -(max+1), so a negative magnitude may reach max+1. */
  if ((!neg && mag > (uint64_t)max) || (neg && mag > (uint64_t)max + 1)) {
    set_err(c, "integer out of range");
    return -1;
  }
  *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
  return 0;
}

static int get_uint(ctx_t *c, const json_t *v, uint64_t max, uint64_t *out) {
  int neg;
  uint64_t mag;
  if (get_integral(c, v, &neg, &mag)) return -1;
  if ((neg && mag != 0) || mag > max) {
    set_err(c, "integer out of range");
    return -1;
  }
  *out = mag;
  return 0;
}

static int get_double(ctx_t *c, const json_t *v, int is_float, double *out) {
  double d;
  if (json_is_number(v)) {
    d = json_number_value(v);
  } else if (json_is_string(v)) {
    /* JSON has no NaN/Infinity; these are the proto3 JSON spellings, which
     * the encoder also writes. */
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    char *end = NULL;
    if (strcmp(s, "NaN") == 0) {
      d = NAN;
    } else if (strcmp(s, "Infinity") == 0) {
      d = INFINITY;
    } else if (strcmp(s, "-Infinity") == 0) {
      d = -INFINITY;
    } else if (n > 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) &&
               (d = strtod(s, &end), end == s + n) && isfinite(d)) {
      /* d set by strtod */
    } else {
      set_err(c, "expected a number");
      return -1;
    }
  } else {
    set_err(c, "expected a number");
    return -1;
  }
  if (is_float && isfinite(d) && fabs(d) > FLT_MAX) {
    set_err(c, "number out of range");
    return -1;
  }
  *out = d;
  return 0;
}

static int get_enum(ctx_t *c, const ProtobufCEnumDescriptor *ed, const json_t *v, int *out) {
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) == n && wf_enum_parse(ed, s, out) == 0) return 0;
    set_err(c, "unknown %s \"%.64s\"", ed->short_name, s);
    return -1;
  }
  if (json_is_number(v)) {
    if (c->flags & WF_CODEC_STRICT_ENUM) {
      set_err(c, "expected a %s name", ed->short_name);
      return -1;
    }
    double d = json_number_value(v);
    if (d != trunc(d) || d < INT32_MIN || d > INT32_MAX ||
        !protobuf_c_enum_descriptor_get_value(ed, (int)d)) {
      if (json_is_integer(v))
        set_err(c, "unknown %s %" JSON_INTEGER_FORMAT, ed->short_name, json_integer_value(v));
      else
        set_err(c, "unknown %s %g", ed->short_name, d);
      return -1;
    }
    *out = (int)d;
    return 0;
  }
  set_err(c, "expected a %s name or number", ed->short_name);
  return -1;
}

/* ---- decode: values, messages, maps ------------------------------------------ */

static ProtobufCMessage *decode_message(ctx_t *c, const ProtobufCMessageDescriptor *desc,
                                        const json_t *obj);

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *m = wf_malloc(desc->sizeof_message);
  protobuf_c_message_init(desc, m);
  return m;
}

/*
 * Decodes one value of f's type from v into slot, which holds the cleared
 * value (the field's default, or zeroes for an array element).  `elem` is
 * set for array elements: there null still has to produce a value (a
 * malloc'd "" or an empty message), because a repeated field has no holes.
 */
static int decode_value(ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *slot,
                        int elem) {
  int64_t i64;
  uint64_t u64;
  double d;
  if (json_is_null(v)) {
    if (elem && f->type == PROTOBUF_C_TYPE_STRING) *(char **)slot = wf_strdup("");
    if (elem && f->type == PROTOBUF_C_TYPE_MESSAGE)
      *(ProtobufCMessage **)slot = new_message(f->descriptor);
    return 0;
  }
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      if (get_sint(c, v, INT32_MAX, &i64)) return -1;
      *(int32_t *)slot = (int32_t)i64;
      return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      if (get_sint(c, v, INT64_MAX, &i64)) return -1;
      *(int64_t *)slot = i64;
      return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      if (get_uint(c, v, UINT32_MAX, &u64)) return -1;
      *(uint32_t *)slot = (uint32_t)u64;
      return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      if (get_uint(c, v, UINT64_MAX, &u64)) return -1;
      *(uint64_t *)slot = u64;
      return 0;
    case PROTOBUF_C_TYPE_FLOAT:
      if (get_double(c, v, 1, &d)) return -1;
      *(float *)slot = (float)d;
      return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
      if (get_double(c, v, 0, &d)) return -1;
      *(double *)slot = d;
      return 0;
    case PROTOBUF_C_TYPE_BOOL:
      if (!json_is_boolean(v)) {
        set_err(c, "expected a boolean");
        return -1;
      }
      *(protobuf_c_boolean *)slot = json_is_true(v);
      return 0;
    case PROTOBUF_C_TYPE_ENUM:
      return get_enum(c, f->descriptor, v, (int *)slot);
    case PROTOBUF_C_TYPE_STRING: {
      if (!json_is_string(v)) {
        set_err(c, "expected a string");
        return -1;
      }
      /* A C string cannot hold NUL; cutting the value there would store
       * something the writer never sent, so refuse it. */
      const char *s = json_string_value(v);
      size_t n = json_string_length(v);
      if (memchr(s, '\0', n)) {
        set_err(c, "string contains NUL");
        return -1;
      }
      *(char **)slot = wf_strndup(s, n);
      return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
      size_t n = 0;
      char *data = json_is_string(v)
                       ? wf_b64_decode(json_string_value(v), json_string_length(v), &n)
                       : NULL;
      if (!data) {
        set_err(c, "expected a base64 string");
        return -1;
      }
      ((ProtobufCBinaryData *)slot)->data = (uint8_t *)data;
      ((ProtobufCBinaryData *)slot)->len = n;
      return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      if (!json_is_object(v)) {
        set_err(c, "expected an object");
        return -1;
      }
      ProtobufCMessage *m = decode_message(c, f->descriptor, v);
      if (!m) return -1;
      *(ProtobufCMessage **)slot = m;
      return 0;
    }
  }
  set_err(c, "unsupported field type %d", (int)f->type);
  return -1;
}

/* Records that f now holds a value: its has_ flag, or its oneof case. */
static void mark_present(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    *(uint32_t *)MEMBER(msg, f->quantifier_offset) = f->id;
  else if (has_flag_field(f))
    *(protobuf_c_boolean *)MEMBER(msg, f->quantifier_offset) = 1;
}

static int decode_map(ctx_t *c, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                      const json_t *v) {
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
  int strings = vf->type == PROTOBUF_C_TYPE_STRING;
  if (!json_is_object(v)) {
    set_err(c, strings ? "expected an object of strings" : "expected an object");
    return -1;
  }
  size_t n = json_object_size(v);
  if (n == 0) return 0;
  /* Publish the zeroed array first: on error free_unpacked walks all n
   * slots, and NULL entries are no-ops for it. */
  ProtobufCMessage **arr = wf_calloc(n, sizeof(*arr));
  *(ProtobufCMessage ***)MEMBER(msg, f->offset) = arr;
  *(size_t *)MEMBER(msg, f->quantifier_offset) = n;
  size_t i = 0;
  const char *key;
  size_t klen;
  json_t *val;
  json_object_keylen_foreach((json_t *)v, key, klen, val) {
    if (i >= n) break;
    ProtobufCMessage *e = new_message(ed);
    arr[i++] = e;
    if (memchr(key, '\0', klen)) {
      set_err(c, "key contains NUL");
      return -1;
    }
    size_t saved = path_push(c, ".%.64s", key);
    int r = 0;
    if (kf->type == PROTOBUF_C_TYPE_STRING) {
      *(char **)MEMBER(e, kf->offset) = wf_strndup(key, klen);
    } else {
      /* JSON keys are strings; Go writes integer keys in decimal and bool
       * keys as true/false. */
      json_t *kj = kf->type == PROTOBUF_C_TYPE_BOOL
                       ? (strcmp(key, "true") == 0    ? json_true()
                          : strcmp(key, "false") == 0 ? json_false()
                                                      : json_string(key))
                       : json_string(key);
      r = decode_value(c, kf, kj, MEMBER(e, kf->offset), 0);
      json_decref(kj);
    }
    if (r == 0 && strings && !json_is_string(val) && !json_is_null(val)) {
      path_pop(c, saved);
      set_err(c, "expected an object of strings");
      return -1;
    }
    if (r == 0) r = decode_value(c, vf, val, MEMBER(e, vf->offset), 0);
    path_pop(c, saved);
    /* proto2 entries have has_ flags; without them pack() drops the pair. */
    mark_present(e, kf);
    mark_present(e, vf);
    if (r) return -1;
  }
  return 0;
}

/* A JSON key names a field by its exact name; failing that, Go's
 * encoding/json accepts a case-insensitive match, and so do we. */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *desc,
                                                  const char *key, size_t klen) {
  if (strlen(key) != klen) return NULL;
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, key);
  for (unsigned i = 0; !f && i < desc->n_fields; i++)
    if (wf_ascii_casecmp(desc->fields[i].name, key) == 0) f = &desc->fields[i];
  return f;
}

static int decode_field(ctx_t *c, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                        const json_t *v) {
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    /* Members of a oneof share storage: drop the member set before, if any
     * (later key wins, as Go's last-key-wins). */
    uint32_t which = *(uint32_t *)MEMBER(msg, f->quantifier_offset);
    const ProtobufCFieldDescriptor *prev =
        which ? protobuf_c_message_descriptor_get_field(desc, which) : NULL;
    if (prev) clear_field(msg, prev);
  }
  clear_field(msg, f);
  if (json_is_null(v)) return 0;  /* null: empty/absent/zero */

  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    if (is_map_field(desc, f)) return decode_map(c, msg, f, v);
    if (!json_is_array(v)) {
      set_err(c, "expected an array");
      return -1;
    }
    size_t n = json_array_size(v);
    if (n == 0) return 0;
    size_t sz = value_size(f->type);
    char *arr = wf_calloc(n, sz);
    /* Published before filling, see decode_map. */
    *(void **)MEMBER(msg, f->offset) = arr;
    *(size_t *)MEMBER(msg, f->quantifier_offset) = n;
    for (size_t i = 0; i < n; i++) {
      size_t saved = path_push(c, "[%zu]", i);
      int r = decode_value(c, f, json_array_get(v, i), arr + i * sz, 1);
      path_pop(c, saved);
      if (r) return -1;
    }
    return 0;
  }

  if (decode_value(c, f, v, MEMBER(msg, f->offset), 0)) return -1;
  mark_present(msg, f);
  return 0;
}

static ProtobufCMessage *decode_message(ctx_t *c, const ProtobufCMessageDescriptor *desc,
                                        const json_t *obj) {
  if (c->depth >= WF_CODEC_MAX_DEPTH) {
    set_err(c, "nested too deeply");
    return NULL;
  }
  c->depth++;
  ProtobufCMessage *msg = new_message(desc);
  const char *key;
  size_t klen;
  json_t *v;
  json_object_keylen_foreach((json_t *)obj, key, klen, v) {
    const ProtobufCFieldDescriptor *f = find_field(desc, key, klen);
    if (!f) continue;  /* unknown keys are ignored, as Go does */
    size_t saved = path_push_field(c, f->name);
    int r = decode_field(c, msg, f, v);
    path_pop(c, saved);
    if (r) {
      protobuf_c_message_free_unpacked(msg, NULL);
      c->depth--;
      return NULL;
    }
  }
  c->depth--;
  return msg;
}

ProtobufCMessage *wf_codec_decode(const ProtobufCMessageDescriptor *desc, const json_t *obj,
                                  unsigned flags, char *err, size_t errlen) {
  ctx_t c = {.flags = flags, .err = err, .errlen = errlen};
  if (err && errlen) err[0] = '\0';
  if (!desc || !obj || !json_is_object(obj)) {
    set_err(&c, "expected an object");
    return NULL;
  }
  return decode_message(&c, desc, obj);
}

ProtobufCMessage *wf_codec_decode_bytes(const ProtobufCMessageDescriptor *desc, const char *buf,
                                        size_t len, unsigned flags, char *err, size_t errlen) {
  json_error_t je;
  json_t *root = json_loadb(buf, len, 0, &je);
  if (!root) {
    if (err && errlen)
      snprintf(err, errlen, "not JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    return NULL;
  }
  ProtobufCMessage *m = wf_codec_decode(desc, root, flags, err, errlen);
  json_decref(root);
  return m;
}

void wf_codec_free(ProtobufCMessage *msg) {
  protobuf_c_message_free_unpacked(msg, NULL);
}

/* ---- encode ------------------------------------------------------------------ */

static json_t *encode_message(ctx_t *c, const ProtobufCMessage *msg);

static json_t *encode_value(ctx_t *c, const ProtobufCFieldDescriptor *f, const void *slot) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      return json_integer(*(const int32_t *)slot);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      return json_integer(*(const int64_t *)slot);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return json_integer(*(const uint32_t *)slot);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
      uint64_t u = *(const uint64_t *)slot;
      if (u <= (uint64_t)INT64_MAX) return json_integer((json_int_t)u);
      /* jansson integers are signed 64-bit; a decimal string keeps the
       * value exact, and decode accepts it back. */
      char buf[24];
      snprintf(buf, sizeof(buf), "%" PRIu64, u);
      return json_string(buf);
    }
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
      double d = f->type == PROTOBUF_C_TYPE_FLOAT ? *(const float *)slot : *(const double *)slot;
      if (isnan(d)) return json_string("NaN");
      if (isinf(d)) return json_string(d > 0 ? "Infinity" : "-Infinity");
      return json_real(d);
    }
    case PROTOBUF_C_TYPE_BOOL:
      return json_boolean(*(const protobuf_c_boolean *)slot);
    case PROTOBUF_C_TYPE_ENUM: {
      int e = *(const int *)slot;
      const char *name = wf_enum_name(f->descriptor, e);
      return name ? json_string(name) : json_integer(e);
    }
    case PROTOBUF_C_TYPE_STRING:
      return json_utf8(*(char *const *)slot);
    case PROTOBUF_C_TYPE_BYTES: {
      const ProtobufCBinaryData *b = slot;
      char *out = wf_malloc(wf_b64_enc_len(b->len) + 1);
      wf_b64_encode(b->data, b->len, out);
      json_t *j = json_string(out);
      free(out);
      return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      const ProtobufCMessage *m = *(ProtobufCMessage *const *)slot;
      return m ? encode_message(c, m) : json_null();
    }
  }
  return NULL;
}

static int is_zero(const ProtobufCFieldDescriptor *f, const void *slot) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
      const char *s = *(char *const *)slot;
      return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
      return ((const ProtobufCBinaryData *)slot)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
      return *(ProtobufCMessage *const *)slot == NULL;
    case PROTOBUF_C_TYPE_FLOAT:
      return *(const float *)slot == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
      return *(const double *)slot == 0;
    default: {
      /* Integers, bools and enums: all bytes zero. */
      static const char zero[8];
      return memcmp(slot, zero, value_size(f->type)) == 0;
    }
  }
}

typedef struct {
  char *key;
  size_t idx;
} map_key_t;

static int map_key_cmp(const void *a, const void *b) {
  const map_key_t *x = a, *y = b;
  int r = strcmp(x->key, y->key);
  if (r) return r;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* A map as a JSON object with its keys sorted bytewise, as Go writes maps.
 * Duplicate keys (possible in a hand-built message) keep the last value, as
 * protobuf does. */
static json_t *encode_map(ctx_t *c, const ProtobufCFieldDescriptor *f,
                          ProtobufCMessage *const *arr, size_t n) {
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
  map_key_t *keys = wf_calloc(n, sizeof(*keys));
  size_t nk = 0;
  json_t *obj = json_object();
  for (size_t i = 0; i < n; i++) {
    const ProtobufCMessage *e = arr[i];
    if (!e) continue;
    const void *ks = MEMBER(e, kf->offset);
    char buf[24];
    const char *k = buf;
    switch (kf->type) {
      case PROTOBUF_C_TYPE_STRING:
        k = *(char *const *)ks ? *(char *const *)ks : "";
        break;
      case PROTOBUF_C_TYPE_BOOL:
        k = *(const protobuf_c_boolean *)ks ? "true" : "false";
        break;
      case PROTOBUF_C_TYPE_INT32:
      case PROTOBUF_C_TYPE_SINT32:
      case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(buf, sizeof(buf), "%" PRId32, *(const int32_t *)ks);
        break;
      case PROTOBUF_C_TYPE_UINT32:
      case PROTOBUF_C_TYPE_FIXED32:
        snprintf(buf, sizeof(buf), "%" PRIu32, *(const uint32_t *)ks);
        break;
      case PROTOBUF_C_TYPE_UINT64:
      case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)ks);
        break;
      default:
        snprintf(buf, sizeof(buf), "%" PRId64, *(const int64_t *)ks);
        break;
    }
    char *fixed = utf8_fix(k, strlen(k));
    keys[nk].key = fixed ? fixed : wf_strdup(k);
    keys[nk].idx = i;
    nk++;
  }
  qsort(keys, nk, sizeof(*keys), map_key_cmp);
  for (size_t i = 0; obj && i < nk; i++) {
    json_t *v = encode_value(c, vf, MEMBER(arr[keys[i].idx], vf->offset));
    if (!v || json_object_set_new_nocheck(obj, keys[i].key, v)) {
      json_decref(obj);
      obj = NULL;
    }
  }
  for (size_t i = 0; i < nk; i++) free(keys[i].key);
  free(keys);
  return obj;
}

static json_t *encode_array(ctx_t *c, const ProtobufCFieldDescriptor *f, const char *arr,
                            size_t n) {
  size_t sz = value_size(f->type);
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++) {
    json_t *v = encode_value(c, f, arr + i * sz);
    if (!v || json_array_append_new(a, v)) {
      json_decref(a);
      a = NULL;
    }
  }
  return a;
}

/*
 * Adds f to obj, or leaves it out.  Three kinds of "nothing":
 *  - absent (unset oneof member: always left out; unset optional, NULL
 *    message): left out when omitting, else null (Go's nil pointer);
 *  - empty map/array: left out when omitting, null in Go mode, else {}/[];
 *  - zero scalar: left out when omitting.
 * "Omitting" is WF_CODEC_OMIT_EMPTY, or Go mode for a field whose Go struct
 * tag says omitempty.  Returns -1 only when jansson fails to allocate.
 */
static int encode_field(ctx_t *c, json_t *obj, const ProtobufCMessage *msg,
                        const ProtobufCFieldDescriptor *f) {
  const void *slot = MEMBER(msg, f->offset);
  int go = (c->flags & WF_CODEC_NULL_EMPTY) != 0;
  int omit = (c->flags & WF_CODEC_OMIT_EMPTY) || (go && is_go_omitempty(msg->descriptor, f));
  json_t *v;

  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    size_t n = *(const size_t *)MEMBER(msg, f->quantifier_offset);
    const void *arr = *(void *const *)slot;
    int map = is_map_field(msg->descriptor, f);
    if (n == 0 || !arr) {
      if (omit) return 0;
      v = go ? json_null() : map ? json_object() : json_array();
    } else {
      v = map ? encode_map(c, f, arr, n) : encode_array(c, f, arr, n);
    }
  } else {
    int explicit_presence = 0, absent = 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      if (*(const uint32_t *)MEMBER(msg, f->quantifier_offset) != f->id) return 0;
      explicit_presence = 1;
    } else if (has_flag_field(f)) {
      explicit_presence = 1;
      absent = !*(const protobuf_c_boolean *)MEMBER(msg, f->quantifier_offset);
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
      absent = *(ProtobufCMessage *const *)slot == NULL;
    } else if (f->type == PROTOBUF_C_TYPE_STRING && f->label == PROTOBUF_C_LABEL_OPTIONAL) {
      absent = *(char *const *)slot == NULL;
      explicit_presence = 1;
    }
    if (absent) {
      if (omit) return 0;
      v = json_null();
    } else if (omit && !explicit_presence && f->type != PROTOBUF_C_TYPE_MESSAGE &&
               is_zero(f, slot)) {
      return 0;
    } else {
      v = encode_value(c, f, slot);
    }
  }
  if (!v) return -1;
  return json_object_set_new_nocheck(obj, f->name, v);
}

static json_t *encode_message(ctx_t *c, const ProtobufCMessage *msg) {
  if (c->depth >= WF_CODEC_MAX_DEPTH) return NULL;
  c->depth++;
  json_t *obj = json_object();
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  /* desc->fields is sorted by field number, which is the key order the Go
   * structs (and so the stored JSON) use. */
  for (unsigned i = 0; obj && i < desc->n_fields; i++) {
    if (encode_field(c, obj, msg, &desc->fields[i])) {
      json_decref(obj);
      obj = NULL;
    }
  }
  c->depth--;
  return obj;
}

json_t *wf_codec_encode(const ProtobufCMessage *msg, unsigned flags) {
  if (!msg || !msg->descriptor) return NULL;
  ctx_t c = {.flags = flags};
  return encode_message(&c, msg);
}

char *wf_codec_encode_str(const ProtobufCMessage *msg, unsigned flags) {
  json_t *j = wf_codec_encode(msg, flags);
  if (!j) return NULL;
  /* jansson keeps object keys in insertion order, so the field-number order
   * built above is what gets written. */
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return s;
}
