/*
 * runner: what every runner shares: the wf_runner_t head and its close.
 * The runners themselves are file sets in the folders beside this one
 * (local/, docker/), each behind its own wf_runner_ops_t.
 */
#include "wf/runner.h"

#include <stddef.h>

void wf_runner_close(wf_runner_t *r, void (*cb)(void *data), void *data) {
  if (r) r->ops->close(r, cb, data);
}
