/*
 * informer: list + watch + cache over one etcd prefix (see informer.h).
 *
 * Consistency: a re-list (start, compaction, resync) always runs with the
 * watch stopped, at one pinned revision R, and the watch then resumes from
 * R + 1.  Everything that happened after the snapshot is therefore replayed
 * by the watch, so the list never resurrects a key deleted after R and never
 * overwrites a newer value with an older one.  Within the watch, an event
 * whose mod_revision is not newer than the cached one is ignored (it is our
 * own write, already recorded with wf_informer_set_local).
 */
#include "wf/informer.h"

#include <stdlib.h>
#include <string.h>

#include "wf/util.h"

enum inf_state { INF_IDLE, INF_LISTING, INF_WATCHING, INF_CLOSING };

struct wf_informer_s {
  uv_loop_t *loop;
  wf_etcd_t *etcd;
  char *prefix;
  size_t plen;
  int64_t page_size;
  unsigned resync_s;
  wf_informer_cbs_t cbs;
  void *data;

  enum inf_state state;
  wf_map_t cache;            /* key -> wf_cache_entry_t* */
  unsigned gen;              /* current list generation */
  int synced_once;
  int relist_pending;        /* a re-list was asked for while one ran */
  int listing;               /* a wf_etcd_list is in flight */
  wf_backoff_t backoff;
  wf_etcd_watch_t *watch;
  int live;

  uv_timer_t timer;          /* resync period, and retry after a failed list */
  int timer_closed;
  void (*close_cb)(void *);
  void *close_data;
};

static void start_list(wf_informer_t *inf);

static void entry_free(wf_cache_entry_t *e) {
  if (!e) return;
  free(e->key);
  free(e->value);
  free(e);
}

static void entry_set_value(wf_cache_entry_t *e, const char *v, size_t n) {
  free(e->value);
  e->value = v ? wf_strndup(v, n) : NULL;
  e->value_len = v ? n : 0;
}

/* Applies one (key, value, revision) from a list or a put event. */
static void apply_put(wf_informer_t *inf, const char *key, const char *value, size_t vlen,
                      int64_t rev) {
  wf_cache_entry_t *e = wf_map_get(&inf->cache, key);
  if (e && e->mod_revision >= rev) {
    e->gen = inf->gen; /* still there, already known */
    return;
  }
  enum wf_filter_verdict v;
  if (inf->cbs.skip && inf->cbs.skip(inf, key, value, vlen, inf->data)) {
    v = WF_FILTER_DROP; /* certainly not kept: not even parsed */
  } else {
    int raw = inf->cbs.filter_raw ? inf->cbs.filter_raw(inf, key, value, vlen, rev, inf->data)
                                  : -1;
    if (raw >= 0) {
      v = (enum wf_filter_verdict)raw;
    } else {
      json_error_t je;
      json_t *obj = json_loadb(value, vlen, 0, &je);
      v = inf->cbs.filter(inf, key, obj, obj ? NULL : je.text, rev, inf->data);
      json_decref(obj);
    }
  }
  if (v == WF_FILTER_DROP) {
    if (e) {
      wf_map_del(&inf->cache, key);
      inf->cbs.on_delete(inf, e, 0, inf->data);
      entry_free(e);
    }
    return;
  }
  if (!e) {
    e = wf_calloc(1, sizeof *e);
    e->key = wf_strdup(key);
    wf_map_put(&inf->cache, e->key, e);
  }
  e->mod_revision = rev;
  e->gen = inf->gen;
  entry_set_value(e, v == WF_FILTER_KEEP ? value : NULL, vlen);
  inf->cbs.on_upsert(inf, e, inf->data);
}

static void apply_delete(wf_informer_t *inf, const char *key) {
  wf_cache_entry_t *e = wf_map_del(&inf->cache, key);
  if (!e) return;
  inf->cbs.on_delete(inf, e, 1, inf->data);
  entry_free(e);
}

/* Strips the prefix; NULL for keys outside it (cannot happen for a prefix
 * watch, but a hostile gateway could send anything). */
static const char *strip(const wf_informer_t *inf, const char *key, size_t klen) {
  if (klen < inf->plen || memcmp(key, inf->prefix, inf->plen) != 0) return NULL;
  return key + inf->plen;
}

/* ---- watch ----------------------------------------------------------------- */

static void on_events(wf_etcd_watch_t *w, const wf_etcd_event_t *ev, size_t n, void *data) {
  wf_informer_t *inf = data;
  for (size_t i = 0; i < n && inf->state == INF_WATCHING; i++) {
    const char *k = strip(inf, ev[i].kv.key, ev[i].kv.key_len);
    if (!k) continue;
    if (ev[i].type == WF_ETCD_DELETE)
      apply_delete(inf, k);
    else
      apply_put(inf, k, ev[i].kv.value, ev[i].kv.value_len, ev[i].kv.mod_revision);
  }
}

static void on_compacted(wf_etcd_watch_t *w, int64_t rev, void *data) {
  wf_informer_t *inf = data;
  wf_warn(NULL, "watch on %s: revision compacted (at %lld); re-listing", inf->prefix,
          (long long)rev);
  wf_informer_resync(inf);
}

static void on_watch_state(wf_etcd_watch_t *w, int connected, int err, void *data) {
  wf_informer_t *inf = data;
  if (connected && !inf->live)
    wf_debug(NULL, "watch on %s is live", inf->prefix);
  else if (!connected && inf->live)
    wf_warn(NULL, "watch on %s dropped (%s); reconnecting from revision %lld", inf->prefix,
            wf_strerror(err), (long long)wf_etcd_watch_next_revision(w));
  inf->live = connected;
}

static void start_watch(wf_informer_t *inf, int64_t from) {
  if (inf->watch) {
    wf_etcd_watch_restart(inf->watch, from);
    return;
  }
  wf_etcd_watch_cbs_t cbs = {.on_events = on_events, .on_compacted = on_compacted,
                             .on_state = on_watch_state};
  inf->watch = wf_etcd_watch(inf->etcd, inf->prefix, inf->plen, from, &cbs, inf);
}

/* ---- list ------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t) {
  wf_informer_t *inf = t->data;
  if (inf->state == INF_CLOSING) return;
  wf_informer_resync(inf);
}

static void arm_resync(wf_informer_t *inf) {
  if (inf->resync_s) uv_timer_start(&inf->timer, on_timer, (uint64_t)inf->resync_s * 1000, 0);
}

static void on_page(const wf_etcd_kv_t *kvs, size_t n, void *data) {
  wf_informer_t *inf = data;
  if (inf->state != INF_LISTING) return;
  for (size_t i = 0; i < n; i++) {
    const char *k = strip(inf, kvs[i].key, kvs[i].key_len);
    if (k) apply_put(inf, k, kvs[i].value, kvs[i].value_len, kvs[i].mod_revision);
  }
}

static void maybe_free(wf_informer_t *inf);

static void on_list_done(int err, int64_t revision, void *data) {
  wf_informer_t *inf = data;
  if (inf->state == INF_CLOSING) {
    inf->listing = 0;
    maybe_free(inf);
    return;
  }
  if (err) {
    inf->listing = 0;
    uint64_t d = wf_backoff_next(&inf->backoff);
    wf_warn(NULL, "listing %s failed (%s%s%s); retrying in %llu ms", inf->prefix,
            wf_strerror(err), err == WF_EETCD ? ": " : "",
            err == WF_EETCD ? wf_etcd_errmsg(inf->etcd) : "", (unsigned long long)d);
    uv_timer_start(&inf->timer, on_timer, d, 0);
    return;
  }
  wf_backoff_reset(&inf->backoff);
  /* Whatever the snapshot did not hold is gone.  The sweep runs with
   * `listing` still set, so a resync asked for from on_delete waits
   * (relist_pending) instead of starting a list in the middle of it: that
   * would bump the generation and make every key not yet swept look gone. */
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *k;
  void *v;
  while (wf_map_iter_next(&inf->cache, &it, &k, &v)) {
    wf_cache_entry_t *e = v;
    if (e->gen != inf->gen) {
      wf_map_del(&inf->cache, k);
      inf->cbs.on_delete(inf, e, 1, inf->data);
      entry_free(e);
    }
  }
  inf->listing = 0;
  int first = !inf->synced_once;
  inf->synced_once = 1;
  inf->state = INF_WATCHING;
  start_watch(inf, revision + 1);
  arm_resync(inf);
  if (inf->cbs.on_synced) inf->cbs.on_synced(inf, first, inf->data);
  if (inf->relist_pending && inf->state == INF_WATCHING) {
    inf->relist_pending = 0;
    wf_informer_resync(inf);
  }
}

static void start_list(wf_informer_t *inf) {
  inf->state = INF_LISTING;
  inf->gen++;
  inf->listing = 1;
  if (wf_etcd_list(inf->etcd, inf->prefix, inf->plen, inf->page_size, on_page, on_list_done,
                   inf) != 0) {
    inf->listing = 0;
    on_list_done(UV_EINVAL, 0, inf);
  }
}

/* ---- public ------------------------------------------------------------------ */

wf_informer_t *wf_informer_create(uv_loop_t *loop, wf_etcd_t *etcd, const char *prefix,
                                  unsigned resync_s, int64_t page_size,
                                  const wf_informer_cbs_t *cbs, void *data) {
  wf_informer_t *inf = wf_calloc(1, sizeof *inf);
  inf->loop = loop;
  inf->etcd = etcd;
  inf->prefix = wf_strdup(prefix);
  inf->plen = strlen(prefix);
  inf->resync_s = resync_s;
  inf->page_size = page_size > 0 ? page_size : 1000;
  inf->cbs = *cbs;
  inf->data = data;
  wf_map_init(&inf->cache);
  wf_backoff_init(&inf->backoff, 200, 10000);
  uv_timer_init(loop, &inf->timer);
  inf->timer.data = inf;
  return inf;
}

void wf_informer_start(wf_informer_t *inf) {
  if (inf->state == INF_IDLE) start_list(inf);
}

void wf_informer_resync(wf_informer_t *inf) {
  if (inf->state == INF_CLOSING) return;
  if (inf->listing) {
    inf->relist_pending = 1;
    return;
  }
  uv_timer_stop(&inf->timer);
  /* Stop the watch first: the list at R then the watch from R+1 must not
   * overlap with events of the old watch (see the header of this file). */
  if (inf->watch) {
    wf_etcd_watch_cancel(inf->watch);
    inf->watch = NULL;
  }
  inf->live = 0;
  start_list(inf);
}

/* The informer is freed once its timer is closed and no list is in flight
 * (the etcd client answers an in-flight list, with UV_ECANCELED at the
 * latest, before it is closed). */
static void maybe_free(wf_informer_t *inf) {
  if (!inf->timer_closed || inf->listing) return;
  void (*cb)(void *) = inf->close_cb;
  void *cd = inf->close_data;
  free(inf->prefix);
  free(inf);
  if (cb) cb(cd);
}

static void on_timer_closed(uv_handle_t *h) {
  wf_informer_t *inf = h->data;
  inf->timer_closed = 1;
  maybe_free(inf);
}

void wf_informer_close(wf_informer_t *inf, void (*cb)(void *data), void *data) {
  inf->state = INF_CLOSING;
  if (inf->watch) {
    wf_etcd_watch_cancel(inf->watch);
    inf->watch = NULL;
  }
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *k;
  void *v;
  while (wf_map_iter_next(&inf->cache, &it, &k, &v)) entry_free(v);
  wf_map_finish(&inf->cache);
  inf->close_cb = cb;
  inf->close_data = data;
  uv_close((uv_handle_t *)&inf->timer, on_timer_closed);
}

wf_cache_entry_t *wf_informer_get(wf_informer_t *inf, const char *key) {
  return wf_map_get(&inf->cache, key);
}

void wf_informer_set_local(wf_informer_t *inf, wf_cache_entry_t *e, const char *value,
                           size_t len, int64_t rev) {
  /* The watch may already have brought a newer value; never roll it back. */
  if (rev < e->mod_revision) return;
  e->mod_revision = rev;
  entry_set_value(e, value, len);
}

size_t wf_informer_size(const wf_informer_t *inf) { return inf->cache.count; }
int wf_informer_live(const wf_informer_t *inf) { return inf->live; }
const char *wf_informer_prefix(const wf_informer_t *inf) { return inf->prefix; }
