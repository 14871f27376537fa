/*
 * informer: a lister + watcher + cache over one etcd prefix, with a filter
 * (docs/protocol.md §4: a node keeps only the steps whose status.scheduled_node is its
 * own name).  It turns etcd's list and watch into "this key now has this
 * value" and "this key is gone" for the keys the filter keeps, and repairs
 * itself: on compaction, and every `resync` seconds, it stops the watch,
 * re-lists at one pinned revision, adds what was missed, drops what vanished,
 * reconciles what changed, then watches again from the list's revision + 1.
 *
 * The cache maps the key (with the prefix stripped) to (stored JSON,
 * mod_revision).  Values of entries the filter marks "meta only" (e.g.
 * completed steps) are not kept, to keep memory small.
 */
#ifndef WF_INFORMER_H
#define WF_INFORMER_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "wf/etcd.h"

typedef struct wf_informer_s wf_informer_t;

typedef struct wf_cache_entry_s {
  char *key;        /* key with the prefix stripped (owned by the informer) */
  char *value;      /* stored JSON, NUL-terminated; NULL when meta-only */
  size_t value_len;
  int64_t mod_revision;
  unsigned gen;     /* list generation that last saw it (informer-private) */
  void *owner;      /* free for the informer's user (the engine hangs its job here) */
} wf_cache_entry_t;

enum wf_filter_verdict {
  WF_FILTER_DROP = 0,  /* not ours: not cached (and removed if it was) */
  WF_FILTER_KEEP = 1,  /* cache key, revision and value */
  WF_FILTER_META = 2,  /* cache key and revision only (value == NULL) */
};

/* When the callbacks fire: always from the loop, inside the etcd client's
 * list and watch callbacks, so on a later loop iteration than the call that
 * started the list or watch (wf_informer_start, wf_informer_resync) and never
 * inside any wf_informer_* call.  The order for one key is the order of its
 * revisions.  A callback may call wf_informer_set_local, wf_informer_get and
 * wf_informer_resync, but not wf_informer_close (a list page is delivered
 * in one go: close from a later loop turn, e.g. a timer or an idle handle).
 * After wf_informer_close nothing fires but its cb. */
typedef struct wf_informer_cbs_s {
  /* Decides on one value.  obj is the parsed JSON (NULL if the value is not
   * JSON; errtext says why), borrowed.  Required. */
  enum wf_filter_verdict (*filter)(wf_informer_t *inf, const char *key, const json_t *obj,
                                   const char *errtext, int64_t mod_revision, void *data);
  /* A kept key is new or has a new revision.  entry is borrowed (stable
   * until on_delete of that key). */
  void (*on_upsert)(wf_informer_t *inf, wf_cache_entry_t *entry, void *data);
  /* A kept key was deleted in etcd, vanished in a re-list, or the filter
   * dropped it.  deleted = 1 when etcd deleted the key.  entry is freed after
   * this returns. */
  void (*on_delete)(wf_informer_t *inf, wf_cache_entry_t *entry, int deleted, void *data);
  /* Optional: a cheap look at the raw value before it is parsed.  Returns 1
   * when the filter would certainly say DROP, so the value is dropped
   * without being parsed (an entry cached under that key is removed, as for
   * a DROP); 0 to parse it and ask the filter.  Most values a node sees on a
   * shared etcd are other nodes' steps: this is what keeps their cost low. */
  int (*skip)(wf_informer_t *inf, const char *key, const char *value, size_t len, void *data);
  /* Optional: decides on the raw value without a parsed tree, when it can.
   * Returns a verdict, or -1 to have the value parsed and filter asked.
   * The engine reads a step's few fields with a scanner (model/headscan.c)
   * instead of building a jansson tree per event. */
  int (*filter_raw)(wf_informer_t *inf, const char *key, const char *value, size_t len,
                    int64_t mod_revision, void *data);
  /* A full list finished (the first one: the cache is warm).  Optional. */
  void (*on_synced)(wf_informer_t *inf, int first, void *data);
} wf_informer_cbs_t;

/* prefix is copied and must end with '/'.  resync_s 0 = no periodic re-list.
 * page_size for lists (e.g. 1000). */
wf_informer_t *wf_informer_create(uv_loop_t *loop, wf_etcd_t *etcd, const char *prefix,
                                  unsigned resync_s, int64_t page_size,
                                  const wf_informer_cbs_t *cbs, void *data);
/* Lists, then watches. */
void wf_informer_start(wf_informer_t *inf);
/* Forces a re-list now (as the resync timer does). */
void wf_informer_resync(wf_informer_t *inf);
/* Stops everything; frees the cache (no on_delete) and, once its timer is
 * closed, the informer.  cb (may be NULL) fires once, on a later loop
 * iteration, after the informer is freed. */
void wf_informer_close(wf_informer_t *inf, void (*cb)(void *data), void *data);

wf_cache_entry_t *wf_informer_get(wf_informer_t *inf, const char *key);
/* Records a value the user itself just wrote (txn result) so that the watch
 * event for the same revision is not reported back as a change.  value is
 * copied; NULL keeps meta only. */
void wf_informer_set_local(wf_informer_t *inf, wf_cache_entry_t *entry, const char *value,
                           size_t len, int64_t mod_revision);
/* Number of cached entries. */
size_t wf_informer_size(const wf_informer_t *inf);
/* 1 while the watch is confirmed live. */
int wf_informer_live(const wf_informer_t *inf);
const char *wf_informer_prefix(const wf_informer_t *inf);

#endif
