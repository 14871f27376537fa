/*
 * fuzz-etcd-response: the unary response parsers of src/etcd/parse.c, i.e.
 * what etcd.c does with a buffered gateway answer: wf__etcd_resp_parse for
 * a 2xx body of each operation (range, put, txn, delete, compact, lease
 * grant, keepalive, revoke) and wf__etcd_error_parse for any other status.
 *
 * Oracles: a parse fails with WF_EPROTO only (WF_EETCD for a keepalive
 * stream's error), leaves nothing to free, and writes a NUL-terminated
 * message within its buffer; every kv is NUL-terminated and copies exactly.
 * A range or txn answer, which the fast path reads with the JSON scanner
 * (model/jscan.c) first, parses to the same result with the fast path off
 * (jansson only).
 *
 * Input layout:
 *   byte 0  bits 0-3: operation (0-8, see below; 9-15 = the error parser);  bits 4-7: the
 *           message buffer size selector (1, 2, 8, 32, ... up to 512 bytes,
 *           as etcd.c passes WF__ETCD_ERRMSG_LEN)
 *   byte 1  HTTP status for the error parser (200 + byte: 400, 404, 412...)
 *   rest    the body
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/etcd/etcd-internal.h"
#include "fuzz-check.h"

static const size_t msg_sizes[16] = {1, 2, 8, 32, 64, 100, 128, 200,
                                     256, 300, 400, 511, 512, 512, 512, 512};

static void check_kv(const wf_etcd_kv_t *kv) {
  CHECK(kv->key != NULL && kv->value != NULL);
  CHECK(kv->key[kv->key_len] == '\0' && kv->value[kv->value_len] == '\0');
}

static int same_kv(const wf_etcd_kv_t *a, const wf_etcd_kv_t *b) {
  return a->key_len == b->key_len && a->value_len == b->value_len &&
         memcmp(a->key, b->key, a->key_len) == 0 &&
         memcmp(a->value, b->value, a->value_len) == 0 &&
         a->create_revision == b->create_revision && a->mod_revision == b->mod_revision &&
         a->version == b->version && a->lease == b->lease;
}

/* The same body with the fast path off gives the same answer (e, r and,
 * for a failure, the message). */
static void check_jansson_agrees(unsigned op, const char *body, size_t len, int e,
                                 const wf__etcd_resp_t *r, const char *msg, size_t msglen) {
  wf__etcd_resp_t r2;
  char *msg2 = malloc(msglen);
  CHECK(msg2);
  wf__etcd_fast_json = 0;
  int e2 = wf__etcd_resp_parse((enum wf__etcd_op)op, body, len, &r2, msg2, msglen);
  wf__etcd_fast_json = 1;
  CHECK(e2 == e);
  if (e == 0) {
    CHECK(r2.revision == r->revision && r2.more == r->more && r2.count == r->count);
    CHECK(r2.succeeded == r->succeeded && r2.nkvs == r->nkvs);
    for (size_t i = 0; i < r->nkvs; i++) CHECK(same_kv(&r->kvs[i], &r2.kvs[i]));
  } else {
    CHECK(strcmp(msg, msg2) == 0);
  }
  wf__etcd_resp_clear(&r2);
  free(msg2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  /* 0-8: the operations of enum wf__etcd_op, by number (8 is the auth
   * token answer where the header has it; a number the parser does not know
   * only parses the header); 9-15: the error parser. */
  unsigned op = data[0] & 15;
  size_t msglen = msg_sizes[data[0] >> 4];
  int status = 200 + data[1];
  /* The body as etcd.c has it: a heap buffer of exactly len bytes (the
   * http client NUL-terminates, but the parsers must not rely on it). */
  size_t len = size - 2;
  char *body = malloc(len ? len : 1);
  CHECK(body);
  memcpy(body, data + 2, len);
  /* A guard byte after the message buffer catches an overflow. */
  char *msg = malloc(msglen + 1);
  CHECK(msg);
  memset(msg, 'x', msglen + 1);

  if (op <= 8) {
    wf__etcd_resp_t r;
    int e = wf__etcd_resp_parse((enum wf__etcd_op)op, body, len, &r, msg, msglen);
    CHECK(e == 0 || e == WF_EPROTO || (e == WF_EETCD && op == WF__ETCD_KEEPALIVE));
    CHECK(memchr(msg, '\0', msglen) != NULL);
    if (e == 0) {
      CHECK(r.nkvs == 0 || r.kvs != NULL);
      for (size_t i = 0; i < r.nkvs; i++) {
        check_kv(&r.kvs[i]);
        wf_etcd_kv_t copy;
        wf__etcd_kv_copy(&copy, &r.kvs[i]);
        CHECK(copy.key_len == r.kvs[i].key_len && copy.value_len == r.kvs[i].value_len);
        CHECK(memcmp(copy.key, r.kvs[i].key, copy.key_len) == 0);
        CHECK(memcmp(copy.value, r.kvs[i].value, copy.value_len) == 0);
        wf__etcd_kv_clear(&copy);
      }
      if (op == WF__ETCD_TXN) CHECK(r.nkvs <= 1);
      if (op != WF__ETCD_RANGE && op != WF__ETCD_TXN) CHECK(r.nkvs == 0);
    } else {
      /* A failure leaves nothing to free. */
      CHECK(r.kvs == NULL && r.nkvs == 0);
    }
    if (op == WF__ETCD_RANGE || op == WF__ETCD_TXN)
      check_jansson_agrees(op, body, len, e, &r, msg, msglen);
    wf__etcd_resp_clear(&r);
  } else {
    int grpc = 0;
    int e = wf__etcd_error_parse(status, len ? body : NULL, len, msg, msglen, &grpc);
    CHECK(e == WF_EHTTP || e == WF_EETCD || e == WF_ECOMPACTED);
    CHECK(memchr(msg, '\0', msglen) != NULL);
    if (e == WF_EHTTP) CHECK(grpc == -1);
    if (e == WF_ECOMPACTED) CHECK(grpc == 11);
  }
  CHECK(msg[msglen] == 'x');
  free(msg);
  free(body);
  return 0;
}
