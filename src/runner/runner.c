/*
 * runner: helpers shared by every runner type.  The runner vtables
 * themselves live one per file (local.c, and docker/k8s later).
 */
#include "wf/runner.h"

#include <string.h>

const char *wf_kv_get(const wf_kv_t *kv, size_t n, const char *key) {
  /* Later entries win, like every other merge in the node. */
  for (size_t i = n; i-- > 0;)
    if (kv[i].key && strcmp(kv[i].key, key) == 0) return kv[i].value;
  return NULL;
}
