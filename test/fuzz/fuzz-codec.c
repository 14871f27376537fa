/*
 * fuzz-codec: the JSON codec (src/model/codec.c, codec-decode.c,
 * codec-encode.c) on Step, Action, Pipeline and Node, the node's patch of a
 * stored step (src/model/step.c), and the step head scanner
 * (src/model/headscan.c on jscan.c).
 *
 * Oracles: wf_step_head_scan, when it answers, reads the same head as
 * jansson + wf_step_head, and never answers for bytes jansson rejects or
 * that are not an object; when the first decode succeeds, its encoding must decode again
 * (with names-only enums too) and re-encode to the very same text; the patch
 * must write what it was asked to (status, start_at, the scheduled node kept)
 * and must not turn a step the codec accepted into one it rejects.
 *
 * Input layout:
 *   byte 0  bits 0-1: message (Step, Action, Pipeline, Node);  bit 2: decode
 *           with WF_CODEC_STRICT_ENUM;  bits 3-4: encode flags (OMIT_EMPTY,
 *           NULL_EMPTY);  bit 5: run the step patch (Step only)
 *   byte 1  the patch: bits 0-3 status (mod the defined values), bit 4
 *           start_at, bit 5 end_at, bit 6 message, bit 7 response keys
 *   rest    the JSON; the patch's message is its first (byte1 & 31) bytes
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/codec.h"
#include "wf/model.h"
#include "fuzz-check.h"

static const ProtobufCMessageDescriptor *const descs[4] = {
    &wf__step__descriptor, &wf__action__descriptor, &wf__pipeline__descriptor,
    &wf__node__descriptor};

/* Decode -> encode -> decode -> encode: the two encodings must be equal. */
static void roundtrip(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m,
                      unsigned dflags, unsigned eflags) {
  char err[256];
  char *e1 = wf_codec_encode_str(m, eflags);
  CHECK(e1 != NULL);
  ProtobufCMessage *m2 = wf_codec_decode_bytes(d, e1, strlen(e1), dflags | WF_CODEC_STRICT_ENUM,
                                               err, sizeof err);
  if (!m2) {
    fprintf(stderr, "re-decode failed: %s\n%s\n", err, e1);
    CHECK(m2 != NULL);
  }
  char *e2 = wf_codec_encode_str(m2, eflags);
  CHECK(e2 != NULL);
  if (strcmp(e1, e2) != 0) {
    fprintf(stderr, "re-encode differs:\n%s\n%s\n", e1, e2);
    CHECK(strcmp(e1, e2) == 0);
  }
  /* The binary form of a decoded message packs and unpacks. */
  size_t n = protobuf_c_message_get_packed_size(m2);
  uint8_t *bin = malloc(n ? n : 1);
  CHECK(bin);
  CHECK(protobuf_c_message_pack(m2, bin) == n);
  ProtobufCMessage *m3 = protobuf_c_message_unpack(d, NULL, n, bin);
  CHECK(m3 != NULL);
  char *e3 = wf_codec_encode_str(m3, eflags);
  CHECK(e3 != NULL && strcmp(e2, e3) == 0);
  free(e3);
  protobuf_c_message_free_unpacked(m3, NULL);
  free(bin);
  free(e2);
  wf_codec_free(m2);
  free(e1);
}

static const int statuses[] = {
    WF__STEP__STATUS__PENDDING, WF__STEP__STATUS__RUNNING,  WF__STEP__STATUS__SUCCEEDED,
    WF__STEP__STATUS__FAILED,   WF__STEP__STATUS__CANCELING, WF__STEP__STATUS__CANCELED,
    WF__STEP__STATUS__SKIP,     WF__STEP__STATUS__AUDITING, WF__STEP__STATUS__REFUSE,
    WF__STEP__STATUS__SCHEDULE_FAILED};

static void patch(json_t *root, int decoded, unsigned pf, const char *text, size_t tlen) {
  json_t *obj = json_deep_copy(root);
  CHECK(obj != NULL);
  wf_step_head_t h0;
  wf_step_head(obj, &h0);
  char *node0 = strdup(h0.node);
  int64_t start0 = h0.start_at;

  size_t mlen = pf & 31;
  if (mlen > tlen) mlen = tlen;
  char *msg = strndup(text, mlen);
  wf_kv_t resp[3] = {{"container_id", "9f1c"}, {"exit_code", "0"}, {"output", msg}};
  wf_step_patch_t p;
  memset(&p, 0, sizeof p);
  p.status = statuses[(pf & 15) % (sizeof statuses / sizeof statuses[0])];
  p.set_start_at = (pf >> 4) & 1;
  p.start_at = 1626770680990;
  p.set_end_at = (pf >> 5) & 1;
  p.end_at = 1626770690000;
  p.set_message = (pf >> 6) & 1;
  p.message = msg;
  if (pf & 128) {
    p.response = resp;
    p.nresponse = 3;
  }
  p.update_at = 1626770681002;
  CHECK(wf_step_apply_patch(obj, &p) == 0);

  wf_step_head_t h1;
  wf_step_head(obj, &h1);
  CHECK(h1.status == p.status);
  CHECK(strcmp(h1.node, node0) == 0);
  CHECK(h1.start_at == (p.set_start_at ? p.start_at : start0));

  if (decoded) {
    char err[256];
    ProtobufCMessage *m = wf_codec_decode(&wf__step__descriptor, obj, 0, err, sizeof err);
    if (!m) {
      char *s = json_dumps(obj, JSON_COMPACT);
      fprintf(stderr, "patched step no longer decodes: %s\n%s\n", err, s ? s : "?");
      free(s);
      CHECK(m != NULL);
    }
    Wf__Step *st = (Wf__Step *)m;
    CHECK(st->status != NULL);
    CHECK((int)st->status->status == p.status);
    CHECK(st->update_at == p.update_at);
    wf_codec_free(m);
  }
  free(msg);
  free(node0);
  json_decref(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  unsigned which = data[0] & 3;
  unsigned dflags = (data[0] & 4) ? WF_CODEC_STRICT_ENUM : 0;
  unsigned eflags = ((data[0] >> 3) & 1 ? WF_CODEC_OMIT_EMPTY : 0) |
                    ((data[0] >> 4) & 1 ? WF_CODEC_NULL_EMPTY : 0);
  const char *text = (const char *)data + 2;
  size_t len = size - 2;
  const ProtobufCMessageDescriptor *d = descs[which];

  json_error_t je;
  json_t *root = json_loadb(text, len, 0, &je);
  wf_step_head_t hs, ht;
  char node[64];
  if (wf_step_head_scan(text, len, &hs, node, sizeof node)) {
    CHECK(root != NULL && json_is_object(root));
    wf_step_head(root, &ht);
    CHECK(hs.status == ht.status && hs.start_at == ht.start_at && strcmp(hs.node, ht.node) == 0);
  }
  if (!root) return 0;

  char err[128];
  ProtobufCMessage *m = wf_codec_decode(d, root, dflags, err, sizeof err);
  int ok = m != NULL;
  CHECK(memchr(err, '\0', sizeof err) != NULL);
  if (m) {
    roundtrip(d, m, dflags, eflags);
    wf_codec_free(m);
  }
  /* The bytes entry point agrees with the object one. */
  ProtobufCMessage *mb = wf_codec_decode_bytes(d, text, len, dflags, err, sizeof err);
  CHECK((mb != NULL) == ok);
  wf_codec_free(mb);

  if (which == 0 && (data[0] & 32) && json_is_object(root))
    patch(root, ok, data[1], text, len);
  json_decref(root);
  return 0;
}
