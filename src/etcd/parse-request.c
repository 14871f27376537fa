/*
 * parse-request: the JSON bodies of the etcd gateway's requests (range, put,
 * the compare-and-put txn, delete, compact, lease, watch create) and the
 * range end of a prefix.  The gateway wants bytes as base64 and int64 as
 * decimal strings.  The authenticate body, which carries the password, is
 * built in auth.c so that every copy of it is wiped.  Pure: no libuv.
 */
#include "etcd-internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- request bodies -------------------------------------------------------------- */

static json_t *b64_json(const char *p, size_t n) {
  char *s = wf_malloc(wf_b64_enc_len(n) + 1);
  wf_b64_encode(p, n, s);
  json_t *j = json_string_nocheck(s);
  free(s);
  return j;
}

/* proto3 JSON wants int64 as a string; the gateway accepts numbers too, but
 * strings keep every value exact whatever the JSON library does. */
static json_t *i64_json(int64_t v) {
  char s[32];
  snprintf(s, sizeof s, "%" PRId64, v);
  return json_string_nocheck(s);
}

/* Serialises and releases root (ownership passes, rule 15). */
static char *dump(json_t *root, size_t *len) {
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  if (!s) {
    /* Only an allocation failure makes jansson fail here. */
    wf_error(NULL, "etcd: out of memory serialising a request");
    abort();
  }
  *len = strlen(s);
  return s;
}

static void set_range(json_t *o, const char *key, size_t klen, const char *end, size_t elen) {
  json_object_set_new_nocheck(o, "key", b64_json(key, klen));
  if (end) json_object_set_new_nocheck(o, "range_end", b64_json(end, elen));
}

char *wf__etcd_req_range(const char *key, size_t klen, const char *end, size_t elen,
                         const wf_etcd_range_opts_t *o, size_t *len) {
  json_t *root = json_object();
  set_range(root, key, klen, end, elen);
  if (o && o->limit > 0) json_object_set_new_nocheck(root, "limit", i64_json(o->limit));
  if (o && o->revision > 0)
    json_object_set_new_nocheck(root, "revision", i64_json(o->revision));
  if (o && o->keys_only) json_object_set_new_nocheck(root, "keys_only", json_true());
  if (o && o->count_only) json_object_set_new_nocheck(root, "count_only", json_true());
  return dump(root, len);
}

char *wf__etcd_req_put(const char *key, size_t klen, const char *val, size_t vlen,
                       int64_t lease, size_t *len) {
  json_t *root = json_object();
  json_object_set_new_nocheck(root, "key", b64_json(key, klen));
  json_object_set_new_nocheck(root, "value", b64_json(val, vlen));
  if (lease != 0) json_object_set_new_nocheck(root, "lease", i64_json(lease));
  return dump(root, len);
}

/* Written directly rather than built as a jansson tree and dumped: the two
 * txns of every step (claim, final write) spent more time in jansson than
 * in anything else of the request (bench part 2).  Base64 and decimal
 * digits never need JSON escaping, so the text is exact as it is. */
char *wf__etcd_req_put_if(const char *key, size_t klen, int64_t mod_revision,
                          const char *val, size_t vlen, size_t *len) {
  size_t kb = wf_b64_enc_len(klen), vb = wf_b64_enc_len(vlen);
  size_t cap = 3 * kb + vb + 256;
  char *out = wf_malloc(cap), *k = wf_malloc(kb + 1), *p = out;
  wf_b64_encode(key, klen, k);
  /* An absent key has create_revision 0: "create if absent". */
  p += sprintf(p, "{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",", k);
  if (mod_revision == 0)
    p += sprintf(p, "\"target\":\"CREATE\",\"create_revision\":\"0\"}]");
  else
    p += sprintf(p, "\"target\":\"MOD\",\"mod_revision\":\"%" PRId64 "\"}]", mod_revision);
  p += sprintf(p, ",\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"", k);
  wf_b64_encode(val, vlen, p);
  p += vb;
  p += sprintf(p, "\"}}],\"failure\":[{\"request_range\":{\"key\":\"%s\"}}]}", k);
  free(k);
  *len = (size_t)(p - out);
  return out;
}

char *wf__etcd_req_delete(const char *key, size_t klen, const char *end, size_t elen,
                          size_t *len) {
  json_t *root = json_object();
  set_range(root, key, klen, end, elen);
  return dump(root, len);
}

char *wf__etcd_req_compact(int64_t revision, size_t *len) {
  json_t *root = json_object();
  json_object_set_new_nocheck(root, "revision", i64_json(revision));
  /* physical: answer only once the compaction is applied, so a watch or a
   * range at an older revision fails for sure afterwards. */
  json_object_set_new_nocheck(root, "physical", json_true());
  return dump(root, len);
}

char *wf__etcd_req_lease_grant(int64_t ttl, size_t *len) {
  json_t *root = json_object();
  json_object_set_new_nocheck(root, "TTL", i64_json(ttl));
  return dump(root, len);
}

char *wf__etcd_req_lease_id(int64_t id, size_t *len) {
  json_t *root = json_object();
  json_object_set_new_nocheck(root, "ID", i64_json(id));
  return dump(root, len);
}

char *wf__etcd_req_watch(const char *key, size_t klen, const char *end, size_t elen,
                         int64_t start_revision, size_t *len) {
  json_t *cr = json_object();
  set_range(cr, key, klen, end, elen);
  if (start_revision > 0)
    json_object_set_new_nocheck(cr, "start_revision", i64_json(start_revision));
  /* Large replays arrive as several messages, each far below the line bound. */
  json_object_set_new_nocheck(cr, "fragment", json_true());
  /* Progress notifications tell a quiet watch from a stalled one (watch.c). */
  json_object_set_new_nocheck(cr, "progress_notify", json_true());
  json_t *root = json_object();
  json_object_set_new_nocheck(root, "create_request", cr);
  return dump(root, len);
}

/* ---- prefix ---------------------------------------------------------------------------- */

size_t wf_etcd_prefix_end(const char *prefix, size_t plen, char *out) {
  /* etcd's GetPrefixRangeEnd: bump the last byte that is not 0xff and cut
   * after it.  A prefix of only 0xff bytes has no end: "\0" (every key from
   * the start key on) is what etcd means by that. */
  size_t n = plen;
  while (n > 0 && (unsigned char)prefix[n - 1] == 0xff) n--;
  if (n == 0) {
    if (plen == 0) return 0;
    out[0] = '\0';
    return 1;
  }
  memcpy(out, prefix, n);
  out[n - 1] = (char)((unsigned char)prefix[n - 1] + 1);
  return n;
}
