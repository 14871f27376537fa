/*
 * codec: one descriptor-driven mapping between JSON (jansson) and protobuf-c
 * messages, for every message in proto/workflow.proto.  No per-field code:
 * the ProtobufCMessageDescriptor says what each key is.
 *
 * JSON rules (the Go original's encoding/json, see docs/protocol.md §3):
 *  - keys are the proto field names (snake_case, Node.resourceVersion);
 *  - enums are written as the upper-case value name; on input any case of the
 *    name is accepted, and so is a plain number that is a defined value;
 *  - int64/uint64 are JSON numbers on output; on input a number or a string of
 *    digits (etcd/proto3 style) is accepted;
 *  - maps are JSON objects of strings; `null` for a map, repeated field or
 *    message means empty/absent;
 *  - unknown keys are ignored on decode (callers that rewrite stored JSON
 *    keep them by patching the stored object, see model.h).
 *  - a wrong JSON type for a known key is an error that names the key path,
 *    e.g. "status.response: expected an object of strings".
 */
#ifndef WF_CODEC_H
#define WF_CODEC_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "workflow.pb-c.h"

/* Decode flags */
#define WF_CODEC_STRICT_ENUM 0x1u  /* reject numbers for enums: names only, as the Go original */

/* Encode flags */
#define WF_CODEC_OMIT_EMPTY 0x1u   /* omit zero scalars, empty strings/maps/arrays (Go omitempty) */
#define WF_CODEC_NULL_EMPTY 0x2u   /* empty maps and repeated fields as null (Go nil) */
/*
 * Encode output by flag, for a field holding "nothing":
 *
 *   field is                 | no flag | NULL_EMPTY (Go mode) | OMIT_EMPTY
 *   empty map / repeated     | {} / [] | null                 | omitted
 *   absent message/optional  | null    | null                 | omitted
 *   zero scalar, "" string   | written | written              | omitted
 *
 * In Go mode the fields whose Go struct tag says omitempty (Step.key,
 * pipeline_id, resource_version, status; StepStatus.context_map; every Node
 * field) are omitted when empty, so a Go-written object re-encodes byte for
 * byte.  A oneof member that is not set is always omitted.
 */

/* Messages nested deeper than this fail to decode ("nested too deeply") and
 * to encode (NULL).  workflow.proto nests at most 5 deep. */
#define WF_CODEC_MAX_DEPTH 64

/*
 * Decodes `obj` (borrowed; must be a JSON object) into a newly allocated
 * message of type `desc`.  Returns NULL on error and writes a message naming
 * the offending key into err (NUL-terminated, at most errlen bytes; err may
 * be NULL).  Free the result with wf_codec_free() (the same as
 * protobuf_c_message_free_unpacked(msg, NULL)).
 * A string value containing NUL ("\u0000") is an error, never truncated.
 * JSON keys match field names exactly or, failing that, case-insensitively
 * (as Go's encoding/json); when a key appears twice the later one wins.
 */
ProtobufCMessage *wf_codec_decode(const ProtobufCMessageDescriptor *desc, const json_t *obj,
                                  unsigned flags, char *err, size_t errlen);

/* The same from bytes: parses JSON first ("not JSON: ..." on failure). */
ProtobufCMessage *wf_codec_decode_bytes(const ProtobufCMessageDescriptor *desc, const char *buf,
                                        size_t len, unsigned flags, char *err, size_t errlen);

/* Encodes msg (borrowed) into a new JSON object (caller owns the reference).
 * Keys come out in field-number order, which for workflow.proto is the order
 * the Go original writes them; map keys are sorted bytewise (as Go does).
 * Invalid UTF-8 in strings becomes U+FFFD.  A uint64 above INT64_MAX is
 * written as a decimal string, NaN/Inf floats as "NaN"/"Infinity"/"-Infinity"
 * (decode accepts all of these).  NULL if msg is NULL, nests deeper than
 * WF_CODEC_MAX_DEPTH, or jansson runs out of memory. */
json_t *wf_codec_encode(const ProtobufCMessage *msg, unsigned flags);

/* Encodes to a malloc'd compact JSON string (caller frees). */
char *wf_codec_encode_str(const ProtobufCMessage *msg, unsigned flags);

/* Frees a message returned by wf_codec_decode*; NULL is a no-op. */
void wf_codec_free(ProtobufCMessage *msg);

/* Enum helpers shared by the codec and the engine. */
const char *wf_enum_name(const ProtobufCEnumDescriptor *d, int value); /* NULL if undefined */
int wf_enum_parse(const ProtobufCEnumDescriptor *d, const char *name, int *value); /* 0 / -1; any case */
/* strcmp ignoring ASCII case only: how the codec matches JSON keys to fields
 * when no key matches exactly (as Go's encoding/json does). */
int wf_ascii_casecmp(const char *a, const char *b);

#endif
