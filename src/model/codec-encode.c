/*
 * codec-encode: a protobuf-c message into a JSON object (jansson), by a walk
 * over the message descriptor (the codec's rules are in include/wf/codec.h).
 *
 * Keys come out in field-number order, which is the order the Go original
 * writes them; map keys are sorted bytewise as Go sorts them; strings that
 * are not valid UTF-8 get U+FFFD where Go's encoding/json puts it; and in Go
 * mode (WF_CODEC_NULL_EMPTY) the fields whose Go struct tag says omitempty
 * are left out when empty, so that a Go-written object re-encodes byte for
 * byte.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec-internal.h"
#include "wf/util.h"

/* ---- Go's omitempty and UTF-8 -------------------------------------------------- */

/* Fields the Go structs tag `omitempty`, by full message name and field name
 * ("*" = every field of the message).  The descriptor cannot carry Go struct
 * tags, so this is the one piece of per-field knowledge; it is only consulted
 * in WF_CODEC_NULL_EMPTY (Go output) mode.  Source: the Go original's
 * struct tags, as docs/protocol.md §3 and appendix A describe them. */
static const char *const go_omitempty[] = {
  "wf.Step.key",
  "wf.Step.pipeline_id",
  "wf.Step.resource_version",
  "wf.Step.status",
  "wf.StepStatus.context_map",
  "wf.Node.*",
};

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

/* ---- values, maps, fields, messages --------------------------------------------- */

static json_t *encode_value(wf__codec_ctx_t *c, const ProtobufCFieldDescriptor *f,
                            const void *slot) {
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
      return m ? wf__codec_encode_message(c, m) : json_null();
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
      return memcmp(slot, zero, wf__codec_value_size(f->type)) == 0;
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
static json_t *encode_map(wf__codec_ctx_t *c, const ProtobufCFieldDescriptor *f,
                          ProtobufCMessage *const *arr, size_t n) {
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
  map_key_t *keys = wf_calloc(n, sizeof(*keys));
  size_t nk = 0;
  json_t *obj = json_object();
  for (size_t i = 0; i < n; i++) {
    const ProtobufCMessage *e = arr[i];
    if (!e) continue;
    const void *ks = WF__CODEC_MEMBER(e, kf->offset);
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
    json_t *v = encode_value(c, vf, WF__CODEC_MEMBER(arr[keys[i].idx], vf->offset));
    if (!v || json_object_set_new_nocheck(obj, keys[i].key, v)) {
      json_decref(obj);
      obj = NULL;
    }
  }
  for (size_t i = 0; i < nk; i++) free(keys[i].key);
  free(keys);
  return obj;
}

static json_t *encode_array(wf__codec_ctx_t *c, const ProtobufCFieldDescriptor *f,
                            const char *arr, size_t n) {
  size_t sz = wf__codec_value_size(f->type);
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
static int encode_field(wf__codec_ctx_t *c, json_t *obj, const ProtobufCMessage *msg,
                        const ProtobufCFieldDescriptor *f) {
  const void *slot = WF__CODEC_MEMBER(msg, f->offset);
  int go = (c->flags & WF_CODEC_NULL_EMPTY) != 0;
  int omit = (c->flags & WF_CODEC_OMIT_EMPTY) || (go && is_go_omitempty(msg->descriptor, f));
  json_t *v;

  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    size_t n = *(const size_t *)WF__CODEC_MEMBER(msg, f->quantifier_offset);
    const void *arr = *(void *const *)slot;
    int map = wf__codec_is_map_field(msg->descriptor, f);
    if (n == 0 || !arr) {
      if (omit) return 0;
      v = go ? json_null() : map ? json_object() : json_array();
    } else {
      v = map ? encode_map(c, f, arr, n) : encode_array(c, f, arr, n);
    }
  } else {
    int explicit_presence = 0, absent = 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      if (*(const uint32_t *)WF__CODEC_MEMBER(msg, f->quantifier_offset) != f->id) return 0;
      explicit_presence = 1;
    } else if (wf__codec_has_flag_field(f)) {
      explicit_presence = 1;
      absent = !*(const protobuf_c_boolean *)WF__CODEC_MEMBER(msg, f->quantifier_offset);
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

json_t *wf__codec_encode_message(wf__codec_ctx_t *c, const ProtobufCMessage *msg) {
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
