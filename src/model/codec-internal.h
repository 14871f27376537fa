/*
 * codec-internal.h: what the three files of the JSON codec share.  codec.c
 * holds the descriptor helpers and the public entry points, codec-decode.c
 * turns a JSON object into a message, codec-encode.c a message into a JSON
 * object; include/wf/codec.h is the contract all three implement.
 */
#ifndef WF_CODEC_INTERNAL_H
#define WF_CODEC_INTERNAL_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "wf/codec.h"

/* Key paths longer than this are cut; only error messages use them. */
#define WF__CODEC_PATH_MAX 256

/* One decode or encode call: its flags, the message nesting so far
 * (bounded by WF_CODEC_MAX_DEPTH) and, for decode, the caller's error buffer
 * and the key path of the value being read ("status.response"). */
typedef struct wf__codec_ctx_s {
  unsigned flags;
  int depth;
  char *err;
  size_t errlen;
  char path[WF__CODEC_PATH_MAX];
  size_t plen;
} wf__codec_ctx_t;

/* The field at byte offset `off` of a message. */
#define WF__CODEC_MEMBER(msg, off) ((void *)((char *)(msg) + (off)))

/* Writes "<path>: <message>" into c->err (nothing when the caller passed no
 * buffer). */
void wf__codec_set_err(wf__codec_ctx_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The size of one value of type t in a message or a repeated field's array. */
size_t wf__codec_value_size(ProtobufCType t);
/* 1 for a singular field with an explicit has_ flag: proto2 optional scalars
 * and bytes (optional strings and messages use NULL instead). */
int wf__codec_has_flag_field(const ProtobufCFieldDescriptor *f);
/* 1 if f, a field of parent, is a map (a repeated *Entry message). */
int wf__codec_is_map_field(const ProtobufCMessageDescriptor *parent,
                           const ProtobufCFieldDescriptor *f);

/* codec-decode.c: obj (borrowed, a JSON object) as a new message of type
 * desc, or NULL with c->err set. */
ProtobufCMessage *wf__codec_decode_message(wf__codec_ctx_t *c,
                                           const ProtobufCMessageDescriptor *desc,
                                           const json_t *obj);
/* codec-encode.c: msg (borrowed) as a new JSON object, or NULL when it nests
 * too deep or jansson fails to allocate. */
json_t *wf__codec_encode_message(wf__codec_ctx_t *c, const ProtobufCMessage *msg);

#endif
