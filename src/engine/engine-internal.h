/*
 * engine-internal: the work queue and the action catalog, used only by
 * engine.c (and tests).
 */
#ifndef WF_ENGINE_INTERNAL_H
#define WF_ENGINE_INTERNAL_H

#include <stdint.h>
#include <uv.h>

#include "wf/codec.h"
#include "wf/engine.h"
#include "wf/etcd.h"

/* ---- work queue ----------------------------------------------------------------
 * Keys to look at, de-duplicated: a key added while already queued is queued
 * once.  Processing runs from a uv_idle handle, at most a bounded batch per
 * loop iteration, so a burst of 100,000 events cannot starve the loop.
 * wf__queue_retry re-adds a key after a per-key exponential backoff
 * (5 ms doubling to 30 s); wf__queue_forget resets it. */
typedef struct wf_queue_s wf_queue_t;
typedef void (*wf_queue_fn)(const char *key, void *data);
wf_queue_t *wf__queue_create(uv_loop_t *loop, wf_queue_fn fn, void *data);
void wf__queue_add(wf_queue_t *q, const char *key);
void wf__queue_retry(wf_queue_t *q, const char *key);
void wf__queue_forget(wf_queue_t *q, const char *key);
size_t wf__queue_len(const wf_queue_t *q);
/* Drops everything; frees after its handles close; cb may be NULL. */
void wf__queue_close(wf_queue_t *q, void (*cb)(void *), void *data);

/* ---- action catalog --------------------------------------------------------------
 * Actions by "name@version": the etcd catalog under P/workflow/actions/
 * (listed and watched through an informer) and the YAML/JSON files of
 * --actions-dir, loaded at start-up and again on SIGHUP.  An etcd action
 * wins over a file action of the same name@version. */
typedef struct wf_catalog_s wf_catalog_t;
/* dir may be NULL.  Returns NULL with err filled if the dir cannot be read
 * or a file in it is invalid (start-up error: the operator must fix it). */
wf_catalog_t *wf__catalog_create(uv_loop_t *loop, wf_etcd_t *etcd, const char *prefix,
                                 const char *dir, unsigned resync_s,
                                 void (*on_synced)(void *data), void *data, char *err,
                                 size_t errlen);
void wf__catalog_start(wf_catalog_t *c);
/* Reads the action files of dir (NULL: none) into a new set, for a reload.
 * Blocking and pure (no loop, no catalog): safe on a threadpool thread.
 * Returns NULL with err filled when the dir or a file in it is unusable. */
wf_engine_actions_t *wf__catalog_dir_load(const char *dir, char *err, size_t errlen);
void wf__catalog_dir_free(wf_engine_actions_t *a);  /* NULL is a no-op */
/* Replaces the catalog's file actions with a's (a is consumed); returns how
 * many there are now.  Pointers from wf__catalog_get die with the old set. */
size_t wf__catalog_dir_swap(wf_catalog_t *c, wf_engine_actions_t *a);
/* Borrowed; valid until the next loop iteration that handles an etcd event. */
const Wf__Action *wf__catalog_get(wf_catalog_t *c, const char *ref);
int wf__catalog_synced(const wf_catalog_t *c);
size_t wf__catalog_size(const wf_catalog_t *c);
int wf__catalog_live(const wf_catalog_t *c);
void wf__catalog_close(wf_catalog_t *c, void (*cb)(void *), void *data);

#endif
