/*
 * catalog: the actions a node can run, by "name@version" (see
 * engine-internal.h).  The etcd part rides on an informer over
 * P/workflow/actions/; each value is decoded once when it changes, not per
 * step.  The --actions-dir part is read synchronously at start-up (before
 * the loop runs), so a broken file stops the agent with a clear message
 * instead of failing steps later.  On SIGHUP the node reads the dir again
 * off the loop (wf__catalog_dir_load on the threadpool) and swaps the new set
 * in whole; a broken file then keeps the old set.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "wf/informer.h"
#include "wf/util.h"
#include "wf/yaml.h"

struct wf_catalog_s {
  wf_informer_t *inf;
  wf_map_t etcd_actions;  /* ref -> Wf__Action* */
  wf_map_t dir_actions;   /* ref -> Wf__Action* */
  int synced;
  void (*on_synced)(void *);
  void *data;
  void (*close_cb)(void *);
  void *close_data;
};

static void free_actions(wf_map_t *m) {
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *k;
  void *v;
  while (wf_map_iter_next(m, &it, &k, &v)) wf_codec_free(v);
  wf_map_finish(m);
}

static enum wf_filter_verdict filter(wf_informer_t *inf, const char *key, const json_t *obj,
                                     const char *errtext, int64_t rev, void *data) {
  wf_catalog_t *c = data;
  char err[256];
  ProtobufCMessage *m = NULL;
  if (!obj)
    snprintf(err, sizeof err, "not JSON: %s", errtext ? errtext : "?");
  else
    m = wf_codec_decode(&wf__action__descriptor, obj, 0, err, sizeof err);
  Wf__Action *old = wf_map_del(&c->etcd_actions, key);
  wf_codec_free((ProtobufCMessage *)old);
  if (!m) {
    wf_warn(NULL, "action %s (revision %lld) is invalid and ignored: %s", key, (long long)rev,
            err);
    return WF_FILTER_DROP;
  }
  wf_map_put(&c->etcd_actions, key, m);
  /* The decoded message is what we use; the informer keeps no text. */
  return WF_FILTER_META;
}

static void on_upsert(wf_informer_t *inf, wf_cache_entry_t *e, void *data) {
  wf_debug(NULL, "action %s loaded from etcd", e->key);
}

static void on_delete(wf_informer_t *inf, wf_cache_entry_t *e, int deleted, void *data) {
  wf_catalog_t *c = data;
  Wf__Action *old = wf_map_del(&c->etcd_actions, e->key);
  wf_codec_free((ProtobufCMessage *)old);
}

static void on_synced(wf_informer_t *inf, int first, void *data) {
  wf_catalog_t *c = data;
  if (first) {
    c->synced = 1;
    wf_info(NULL, "action catalog ready: %zu from etcd, %zu from files",
            c->etcd_actions.count, c->dir_actions.count);
    if (c->on_synced) c->on_synced(c->data);
  }
}

/* A set of --actions-dir actions, loaded apart from any catalog. */
struct wf_engine_actions_s {
  wf_map_t map;  /* ref -> Wf__Action* */
};

/* Reads every action file of dir into m (ref -> Wf__Action*).  Touches
 * nothing but m, so it may run on a threadpool thread. */
static int load_dir(wf_map_t *m, const char *dir, char *err, size_t errlen) {
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(err, errlen, "--actions-dir %s: %s", dir, strerror(errno));
    return -1;
  }
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d))) {
    size_t n = strlen(de->d_name);
    int yaml = (n > 5 && strcmp(de->d_name + n - 5, ".yaml") == 0) ||
               (n > 4 && strcmp(de->d_name + n - 4, ".yml") == 0);
    int json = n > 5 && strcmp(de->d_name + n - 5, ".json") == 0;
    if (!yaml && !json) continue;
    char *path = wf_asprintf("%s/%s", dir, de->d_name);
    char e2[512];
    json_t *docs = wf_yaml_load_file(path, e2, sizeof e2);
    if (!docs) {
      snprintf(err, errlen, "action file %s: %s", path, e2);
      rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < json_array_size(docs); i++) {
      json_t *doc = json_array_get(docs, i);
      if (json_is_null(doc)) continue;
      json_t *copy = json_deep_copy(doc);
      json_object_del(copy, "kind"); /* wfctl's apply format is accepted too */
      /* YAML types `PORT: 8080` as a number; the schema wants text. */
      wf_yaml_coerce_strings(copy, &wf__action__descriptor);
      Wf__Action *a =
          (Wf__Action *)wf_codec_decode(&wf__action__descriptor, copy, 0, e2, sizeof e2);
      json_decref(copy);
      if (!a) {
        snprintf(err, errlen, "action file %s, document %zu: %s", path, i + 1, e2);
        rc = -1;
      } else if (!a->name[0]) {
        snprintf(err, errlen, "action file %s, document %zu: name is empty", path, i + 1);
        wf_codec_free((ProtobufCMessage *)a);
        rc = -1;
      } else {
        char *ref = wf_asprintf("%s@%s", a->name, a->version);
        wf_codec_free(wf_map_put(m, ref, a));
        free(ref);
      }
    }
    json_decref(docs);
    free(path);
  }
  closedir(d);
  return rc;
}

wf_catalog_t *wf__catalog_create(uv_loop_t *loop, wf_etcd_t *etcd, const char *prefix,
                                 const char *dir, unsigned resync_s,
                                 void (*synced_cb)(void *data), void *data, char *err,
                                 size_t errlen) {
  wf_catalog_t *c = wf_calloc(1, sizeof *c);
  wf_map_init(&c->etcd_actions);
  wf_map_init(&c->dir_actions);
  c->on_synced = synced_cb;
  c->data = data;
  if (dir && load_dir(&c->dir_actions, dir, err, errlen) != 0) {
    free_actions(&c->dir_actions);
    free(c);
    return NULL;
  }
  char *p = wf_asprintf("%s/workflow/actions/", prefix);
  wf_informer_cbs_t cbs = {.filter = filter, .on_upsert = on_upsert, .on_delete = on_delete,
                           .on_synced = on_synced};
  c->inf = wf_informer_create(loop, etcd, p, resync_s, 1000, &cbs, c);
  free(p);
  return c;
}

void wf__catalog_start(wf_catalog_t *c) { wf_informer_start(c->inf); }

wf_engine_actions_t *wf__catalog_dir_load(const char *dir, char *err, size_t errlen) {
  wf_engine_actions_t *a = wf_calloc(1, sizeof *a);
  wf_map_init(&a->map);
  if (dir && load_dir(&a->map, dir, err, errlen) != 0) {
    wf__catalog_dir_free(a);
    return NULL;
  }
  return a;
}

void wf__catalog_dir_free(wf_engine_actions_t *a) {
  if (!a) return;
  free_actions(&a->map);
  free(a);
}

size_t wf__catalog_dir_swap(wf_catalog_t *c, wf_engine_actions_t *a) {
  /* Jobs copy the action they resolve (engine.c action_copy), so no job
   * holds a pointer into the set freed here. */
  free_actions(&c->dir_actions);
  c->dir_actions = a->map;
  free(a);
  return c->dir_actions.count;
}

const Wf__Action *wf__catalog_get(wf_catalog_t *c, const char *ref) {
  const Wf__Action *a = wf_map_get(&c->etcd_actions, ref);
  return a ? a : wf_map_get(&c->dir_actions, ref);
}

int wf__catalog_synced(const wf_catalog_t *c) { return c->synced; }
size_t wf__catalog_size(const wf_catalog_t *c) {
  return c->etcd_actions.count + c->dir_actions.count;
}
int wf__catalog_live(const wf_catalog_t *c) { return wf_informer_live(c->inf); }

static void on_inf_closed(void *data) {
  wf_catalog_t *c = data;
  void (*cb)(void *) = c->close_cb;
  void *cd = c->close_data;
  free(c);
  if (cb) cb(cd);
}

void wf__catalog_close(wf_catalog_t *c, void (*cb)(void *), void *data) {
  free_actions(&c->etcd_actions);
  free_actions(&c->dir_actions);
  c->close_cb = cb;
  c->close_data = data;
  wf_informer_close(c->inf, on_inf_closed, c);
}
