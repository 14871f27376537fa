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
 * value=2 (wf__codec_is_map_field).
 *
 * Hostile input: decode recursion is bounded by WF_CODEC_MAX_DEPTH (jansson
 * bounds the depth of what it parses, but a caller may build a deeper json_t);
 * a string containing NUL is an error, never silently truncated; numbers are
 * range-checked for their field's C type.  Encode never emits invalid UTF-8:
 * bad bytes become U+FFFD, as Go's encoding/json does.
 *
 * This file holds what decode and encode share (the error helper, the
 * descriptor helpers, the enum helpers) and the public entry points;
 * codec-decode.c is JSON -> message, codec-encode.c message -> JSON.
 */
#include "wf/codec.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "codec-internal.h"
#include "wf/util.h"

/* ---- errors ------------------------------------------------------------------- */

void wf__codec_set_err(wf__codec_ctx_t *c, const char *fmt, ...) {
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

/* ---- descriptors ---------------------------------------------------------------- */

size_t wf__codec_value_size(ProtobufCType t) {
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

int wf__codec_has_flag_field(const ProtobufCFieldDescriptor *f) {
  return f->label == PROTOBUF_C_LABEL_OPTIONAL && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
         f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE;
}

/* protoc names a map field's entry type like this (MapEntryName in
 * protobuf's descriptor.cc): drop '_', capitalise the letter after it and
 * the first letter, append "Entry". */
int wf__codec_is_map_field(const ProtobufCMessageDescriptor *parent,
                           const ProtobufCFieldDescriptor *f) {
  if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) return 0;
  const ProtobufCMessageDescriptor *md = f->descriptor;
  if (!md || md->n_fields != 2) return 0;
  const ProtobufCFieldDescriptor *k = &md->fields[0], *v = &md->fields[1];
  if (k->id != 1 || v->id != 2 || strcmp(k->name, "key") != 0 || strcmp(v->name, "value") != 0)
    return 0;
  if (k->label == PROTOBUF_C_LABEL_REPEATED || v->label == PROTOBUF_C_LABEL_REPEATED) return 0;
  char want[WF__CODEC_PATH_MAX];
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

int wf_ascii_casecmp(const char *a, const char *b) {
  for (;; a++, b++) {
    unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
    if (x >= 'A' && x <= 'Z') x = (unsigned char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = (unsigned char)(y - 'A' + 'a');
    if (x != y || x == '\0') return (int)x - (int)y;
  }
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

/* ---- entry points ------------------------------------------------------------ */

ProtobufCMessage *wf_codec_decode(const ProtobufCMessageDescriptor *desc, const json_t *obj,
                                  unsigned flags, char *err, size_t errlen) {
  wf__codec_ctx_t c = {.flags = flags, .err = err, .errlen = errlen};
  if (err && errlen) err[0] = '\0';
  if (!desc || !obj || !json_is_object(obj)) {
    wf__codec_set_err(&c, "expected an object");
    return NULL;
  }
  return wf__codec_decode_message(&c, desc, obj);
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

json_t *wf_codec_encode(const ProtobufCMessage *msg, unsigned flags) {
  if (!msg || !msg->descriptor) return NULL;
  wf__codec_ctx_t c = {.flags = flags};
  return wf__codec_encode_message(&c, msg);
}

char *wf_codec_encode_str(const ProtobufCMessage *msg, unsigned flags) {
  json_t *j = wf_codec_encode(msg, flags);
  if (!j) return NULL;
  /* jansson keeps object keys in insertion order, so the field-number order
   * that codec-encode.c built is what gets written. */
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return s;
}
