/*
 * map: a string-keyed chained hash table (FNV-1a).  It grows by doubling at a
 * load factor of 1 and never shrinks below 16 slots; the step cache and the
 * action catalog live in it.
 */
#include "wf/util.h"

#include <stdlib.h>
#include <string.h>

struct wf_map_entry_s {
  wf_map_entry_t *next;
  void *value;
  uint32_t hash;
  char key[];
};

static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

void wf_map_init(wf_map_t *m) {
  m->slots = NULL;
  m->nslots = 0;
  m->count = 0;
}

void wf_map_finish(wf_map_t *m) {
  for (size_t i = 0; i < m->nslots; i++) {
    wf_map_entry_t *e = m->slots[i];
    while (e) {
      wf_map_entry_t *n = e->next;
      free(e);
      e = n;
    }
  }
  free(m->slots);
  wf_map_init(m);
}

static wf_map_entry_t **find(const wf_map_t *m, const char *key, uint32_t h) {
  if (!m->nslots) return NULL;
  wf_map_entry_t **pp = &m->slots[h & (m->nslots - 1)];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0) return pp;
  return pp;
}

void *wf_map_get(const wf_map_t *m, const char *key) {
  wf_map_entry_t **pp = find(m, key, fnv1a(key));
  return pp && *pp ? (*pp)->value : NULL;
}

static void grow(wf_map_t *m) {
  size_t n = m->nslots ? m->nslots * 2 : 16;
  wf_map_entry_t **slots = wf_calloc(n, sizeof *slots);
  for (size_t i = 0; i < m->nslots; i++) {
    wf_map_entry_t *e = m->slots[i];
    while (e) {
      wf_map_entry_t *next = e->next;
      e->next = slots[e->hash & (n - 1)];
      slots[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  free(m->slots);
  m->slots = slots;
  m->nslots = n;
}

void *wf_map_put(wf_map_t *m, const char *key, void *value) {
  uint32_t h = fnv1a(key);
  wf_map_entry_t **pp = find(m, key, h);
  if (pp && *pp) {
    void *old = (*pp)->value;
    (*pp)->value = value;
    return old;
  }
  if (m->count + 1 > m->nslots) grow(m);
  size_t kl = strlen(key);
  wf_map_entry_t *e = wf_malloc(sizeof *e + kl + 1);
  memcpy(e->key, key, kl + 1);
  e->hash = h;
  e->value = value;
  size_t slot = h & (m->nslots - 1);
  e->next = m->slots[slot];
  m->slots[slot] = e;
  m->count++;
  return NULL;
}

void *wf_map_del(wf_map_t *m, const char *key) {
  wf_map_entry_t **pp = find(m, key, fnv1a(key));
  if (!pp || !*pp) return NULL;
  wf_map_entry_t *e = *pp;
  void *v = e->value;
  *pp = e->next;
  free(e);
  m->count--;
  return v;
}

void wf_map_iter_init(wf_map_iter_t *it) {
  it->slot = 0;
  it->next = NULL;
}

int wf_map_iter_next(const wf_map_t *m, wf_map_iter_t *it, const char **key, void **value) {
  /* it->next is fetched before returning an entry, so deleting the current
   * entry during iteration is safe. */
  while (!it->next) {
    if (it->slot >= m->nslots) return 0;
    it->next = m->slots[it->slot++];
  }
  wf_map_entry_t *e = it->next;
  it->next = e->next;
  *key = e->key;
  *value = e->value;
  return 1;
}
