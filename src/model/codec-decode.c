/*
 * codec-decode: a JSON object (jansson) into a protobuf-c message, by a walk
 * over the message descriptor (the codec's rules are in include/wf/codec.h,
 * its memory layout in codec.c).
 *
 * Keys match field names exactly or, failing that, ignoring ASCII case, and
 * a later key wins, as with Go's encoding/json; so a field is cleared before
 * it is written, and an earlier value never leaks.  Every error names the
 * key path it was found at ("status.response: expected an object of
 * strings").
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec-internal.h"
#include "wf/util.h"

/* ---- key paths ------------------------------------------------------------- */

/* Appends a path segment and returns the length to restore with path_pop. */
static size_t path_push(wf__codec_ctx_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static size_t path_push(wf__codec_ctx_t *c, const char *fmt, ...) {
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

static void path_pop(wf__codec_ctx_t *c, size_t old) {
  c->plen = old;
  c->path[old] = '\0';
}

static size_t path_push_field(wf__codec_ctx_t *c, const char *name) {
  return path_push(c, c->plen ? ".%s" : "%s", name);
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
        memcpy(slot, f->default_value, wf__codec_value_size(f->type));
      else
        memset(slot, 0, wf__codec_value_size(f->type));
      break;
  }
}

static void clear_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    size_t *n = WF__CODEC_MEMBER(msg, f->quantifier_offset);
    void **arr = WF__CODEC_MEMBER(msg, f->offset);
    size_t sz = wf__codec_value_size(f->type);
    for (size_t i = 0; *arr && i < *n; i++) free_value(f, (char *)*arr + i * sz, 1);
    free(*arr);
    *arr = NULL;
    *n = 0;
    return;
  }
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    uint32_t *which = WF__CODEC_MEMBER(msg, f->quantifier_offset);
    if (*which != f->id) return;  /* the union holds another member */
    *which = 0;
  } else if (wf__codec_has_flag_field(f)) {
    *(protobuf_c_boolean *)WF__CODEC_MEMBER(msg, f->quantifier_offset) = 0;
  }
  free_value(f, WF__CODEC_MEMBER(msg, f->offset), 0);
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
static int get_integral(wf__codec_ctx_t *c, const json_t *v, int *neg, uint64_t *mag) {
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    *neg = x < 0;
    *mag = x < 0 ? (uint64_t)(-(x + 1)) + 1 : (uint64_t)x;
    return 0;
  }
  if (json_is_real(v)) {
    double d = json_real_value(v);
    if (!isfinite(d) || d != trunc(d)) {
      wf__codec_set_err(c, "expected an integer");
      return -1;
    }
    if (d <= -18446744073709551616.0 || d >= 18446744073709551616.0) {
      wf__codec_set_err(c, "integer out of range");
      return -1;
    }
    *neg = d < 0;
    *mag = (uint64_t)(d < 0 ? -d : d);
    return 0;
  }
  if (json_is_string(v)) {
    int r = parse_dec(json_string_value(v), json_string_length(v), neg, mag);
    if (r == -1) wf__codec_set_err(c, "expected an integer");
    if (r == -2) wf__codec_set_err(c, "integer out of range");
    return r ? -1 : 0;
  }
  wf__codec_set_err(c, "expected an integer");
  return -1;
}

static int get_sint(wf__codec_ctx_t *c, const json_t *v, int64_t max, int64_t *out) {
  int neg;
  uint64_t mag;
  if (get_integral(c, v, &neg, &mag)) return -1;
  /* min is -(max+1), so a negative magnitude may reach max+1. */
  if ((!neg && mag > (uint64_t)max) || (neg && mag > (uint64_t)max + 1)) {
    wf__codec_set_err(c, "integer out of range");
    return -1;
  }
  *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
  return 0;
}

static int get_uint(wf__codec_ctx_t *c, const json_t *v, uint64_t max, uint64_t *out) {
  int neg;
  uint64_t mag;
  if (get_integral(c, v, &neg, &mag)) return -1;
  if ((neg && mag != 0) || mag > max) {
    wf__codec_set_err(c, "integer out of range");
    return -1;
  }
  *out = mag;
  return 0;
}

static int get_double(wf__codec_ctx_t *c, const json_t *v, int is_float, double *out) {
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
      wf__codec_set_err(c, "expected a number");
      return -1;
    }
  } else {
    wf__codec_set_err(c, "expected a number");
    return -1;
  }
  if (is_float && isfinite(d) && fabs(d) > FLT_MAX) {
    wf__codec_set_err(c, "number out of range");
    return -1;
  }
  *out = d;
  return 0;
}

static int get_enum(wf__codec_ctx_t *c, const ProtobufCEnumDescriptor *ed, const json_t *v,
                    int *out) {
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) == n && wf_enum_parse(ed, s, out) == 0) return 0;
    wf__codec_set_err(c, "unknown %s \"%.64s\"", ed->short_name, s);
    return -1;
  }
  if (json_is_number(v)) {
    if (c->flags & WF_CODEC_STRICT_ENUM) {
      wf__codec_set_err(c, "expected a %s name", ed->short_name);
      return -1;
    }
    double d = json_number_value(v);
    if (d != trunc(d) || d < INT32_MIN || d > INT32_MAX ||
        !protobuf_c_enum_descriptor_get_value(ed, (int)d)) {
      if (json_is_integer(v))
        wf__codec_set_err(c, "unknown %s %" JSON_INTEGER_FORMAT, ed->short_name,
                          json_integer_value(v));
      else
        wf__codec_set_err(c, "unknown %s %g", ed->short_name, d);
      return -1;
    }
    *out = (int)d;
    return 0;
  }
  wf__codec_set_err(c, "expected a %s name or number", ed->short_name);
  return -1;
}

/* ---- decode: values, messages, maps ------------------------------------------ */

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
static int decode_value(wf__codec_ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v,
                        void *slot, int elem) {
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
        wf__codec_set_err(c, "expected a boolean");
        return -1;
      }
      *(protobuf_c_boolean *)slot = json_is_true(v);
      return 0;
    case PROTOBUF_C_TYPE_ENUM:
      return get_enum(c, f->descriptor, v, (int *)slot);
    case PROTOBUF_C_TYPE_STRING: {
      if (!json_is_string(v)) {
        wf__codec_set_err(c, "expected a string");
        return -1;
      }
      /* A C string cannot hold NUL; cutting the value there would store
       * something the writer never sent, so refuse it. */
      const char *s = json_string_value(v);
      size_t n = json_string_length(v);
      if (memchr(s, '\0', n)) {
        wf__codec_set_err(c, "string contains NUL");
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
        wf__codec_set_err(c, "expected a base64 string");
        return -1;
      }
      ((ProtobufCBinaryData *)slot)->data = (uint8_t *)data;
      ((ProtobufCBinaryData *)slot)->len = n;
      return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      if (!json_is_object(v)) {
        wf__codec_set_err(c, "expected an object");
        return -1;
      }
      ProtobufCMessage *m = wf__codec_decode_message(c, f->descriptor, v);
      if (!m) return -1;
      *(ProtobufCMessage **)slot = m;
      return 0;
    }
  }
  wf__codec_set_err(c, "unsupported field type %d", (int)f->type);
  return -1;
}

/* Records that f now holds a value: its has_ flag, or its oneof case. */
static void mark_present(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    *(uint32_t *)WF__CODEC_MEMBER(msg, f->quantifier_offset) = f->id;
  else if (wf__codec_has_flag_field(f))
    *(protobuf_c_boolean *)WF__CODEC_MEMBER(msg, f->quantifier_offset) = 1;
}

static int decode_map(wf__codec_ctx_t *c, ProtobufCMessage *msg,
                      const ProtobufCFieldDescriptor *f, const json_t *v) {
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
  int strings = vf->type == PROTOBUF_C_TYPE_STRING;
  if (!json_is_object(v)) {
    wf__codec_set_err(c, strings ? "expected an object of strings" : "expected an object");
    return -1;
  }
  size_t n = json_object_size(v);
  if (n == 0) return 0;
  /* Publish the zeroed array first: on error free_unpacked walks all n
   * slots, and NULL entries are no-ops for it. */
  ProtobufCMessage **arr = wf_calloc(n, sizeof(*arr));
  *(ProtobufCMessage ***)WF__CODEC_MEMBER(msg, f->offset) = arr;
  *(size_t *)WF__CODEC_MEMBER(msg, f->quantifier_offset) = n;
  size_t i = 0;
  const char *key;
  size_t klen;
  json_t *val;
  json_object_keylen_foreach((json_t *)v, key, klen, val) {
    if (i >= n) break;
    ProtobufCMessage *e = new_message(ed);
    arr[i++] = e;
    if (memchr(key, '\0', klen)) {
      wf__codec_set_err(c, "key contains NUL");
      return -1;
    }
    size_t saved = path_push(c, ".%.64s", key);
    int r = 0;
    if (kf->type == PROTOBUF_C_TYPE_STRING) {
      *(char **)WF__CODEC_MEMBER(e, kf->offset) = wf_strndup(key, klen);
    } else {
      /* JSON keys are strings; Go writes integer keys in decimal and bool
       * keys as true/false. */
      json_t *kj = kf->type == PROTOBUF_C_TYPE_BOOL
                       ? (strcmp(key, "true") == 0    ? json_true()
                          : strcmp(key, "false") == 0 ? json_false()
                                                      : json_string(key))
                       : json_string(key);
      r = decode_value(c, kf, kj, WF__CODEC_MEMBER(e, kf->offset), 0);
      json_decref(kj);
    }
    if (r == 0 && strings && !json_is_string(val) && !json_is_null(val)) {
      path_pop(c, saved);
      wf__codec_set_err(c, "expected an object of strings");
      return -1;
    }
    if (r == 0) r = decode_value(c, vf, val, WF__CODEC_MEMBER(e, vf->offset), 0);
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

static int decode_field(wf__codec_ctx_t *c, ProtobufCMessage *msg,
                        const ProtobufCFieldDescriptor *f, const json_t *v) {
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    /* Members of a oneof share storage: drop the member set before, if any
     * (later key wins, as Go's last-key-wins). */
    uint32_t which = *(uint32_t *)WF__CODEC_MEMBER(msg, f->quantifier_offset);
    const ProtobufCFieldDescriptor *prev =
        which ? protobuf_c_message_descriptor_get_field(desc, which) : NULL;
    if (prev) clear_field(msg, prev);
  }
  clear_field(msg, f);
  if (json_is_null(v)) return 0;  /* null: empty/absent/zero */

  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    if (wf__codec_is_map_field(desc, f)) return decode_map(c, msg, f, v);
    if (!json_is_array(v)) {
      wf__codec_set_err(c, "expected an array");
      return -1;
    }
    size_t n = json_array_size(v);
    if (n == 0) return 0;
    size_t sz = wf__codec_value_size(f->type);
    char *arr = wf_calloc(n, sz);
    /* Published before filling, see decode_map. */
    *(void **)WF__CODEC_MEMBER(msg, f->offset) = arr;
    *(size_t *)WF__CODEC_MEMBER(msg, f->quantifier_offset) = n;
    for (size_t i = 0; i < n; i++) {
      size_t saved = path_push(c, "[%zu]", i);
      int r = decode_value(c, f, json_array_get(v, i), arr + i * sz, 1);
      path_pop(c, saved);
      if (r) return -1;
    }
    return 0;
  }

  if (decode_value(c, f, v, WF__CODEC_MEMBER(msg, f->offset), 0)) return -1;
  mark_present(msg, f);
  return 0;
}

ProtobufCMessage *wf__codec_decode_message(wf__codec_ctx_t *c,
                                           const ProtobufCMessageDescriptor *desc,
                                           const json_t *obj) {
  if (c->depth >= WF_CODEC_MAX_DEPTH) {
    wf__codec_set_err(c, "nested too deeply");
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
