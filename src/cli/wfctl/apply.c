/*
 * apply: `wfctl apply -f FILE` stores actions, pipelines and steps.  Every
 * document is loaded and prepared (apply-prep.c) before the loop exists, so
 * that a typo in the fifth document does not leave the first four applied;
 * then the documents are put one after the other, each printed as it lands.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wf/cli.h"
#include "wf/util.h"
#include "wf/yaml.h"
#include "wfctl-internal.h"

static void put_next(wf__ctl_t *c);

static void on_apply_put(int err, int64_t rev, void *data) {
  wf__ctl_t *c = data;
  if (c->finishing) return;
  if (err) {
    wf__ctl_fail(c, err, "writing %s", c->put_labels[c->iput]);
    wf__ctl_end(c, 1);
    return;
  }
  printf("%s applied\n", c->put_labels[c->iput]);
  wf__ctl_flush_stdout();
  c->iput++;
  put_next(c);
}

/* Puts the next prepared document; after the last one the command ends. */
static void put_next(wf__ctl_t *c) {
  if (c->iput >= c->nput) {
    wf__ctl_end(c, 0);
    return;
  }
  const char *k = c->put_keys[c->iput], *v = c->put_values[c->iput];
  int r = wf_etcd_put(c->etcd, k, strlen(k), v, strlen(v), 0, on_apply_put, c);
  if (r != 0) on_apply_put(r, 0, c);
}

void wf__apply_start(wf__ctl_t *c) { put_next(c); }

/* Standard input, whole (up to the YAML loader's limit), as documents. */
static json_t *read_stdin(char *err, size_t errlen) {
  wf_buf_t b;
  char chunk[65536];
  json_t *docs = NULL;
  wf_buf_init(&b, WF_YAML_MAX_FILE);
  for (;;) {
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      snprintf(err, errlen, "cannot read: %s", strerror(errno));
      goto out;
    }
    if (n == 0) break;
    if (wf_buf_append(&b, chunk, (size_t)n) != 0) {
      snprintf(err, errlen, "larger than %u bytes", (unsigned)WF_YAML_MAX_FILE);
      goto out;
    }
  }
  docs = wf_yaml_load_buf(b.data ? b.data : "", b.len, err, errlen);
out:
  wf_buf_finish(&b);
  return docs;
}

int wf__apply_load(wf__ctl_t *c) {
  char err[512];
  const char *fname = strcmp(c->file, "-") == 0 ? "<stdin>" : c->file;
  json_t *docs = strcmp(c->file, "-") == 0 ? read_stdin(err, sizeof err)
                                           : wf_yaml_load_file(c->file, err, sizeof err);
  if (!docs) {
    fprintf(stderr, "wfctl: %s: %s\n", fname, err);
    return 1;
  }
  size_t n = json_array_size(docs), i;
  json_t *doc;
  int bad = 0;
  c->put_keys = wf_calloc(n + 1, sizeof *c->put_keys);
  c->put_labels = wf_calloc(n + 1, sizeof *c->put_labels);
  c->put_values = wf_calloc(n + 1, sizeof *c->put_values);
  json_array_foreach(docs, i, doc) {
    if (json_is_null(doc)) continue;  /* an empty document ("---" at the end) */
    enum wf_cli_kind kind;
    char *key, *label;
    if (wf_cli_apply_prepare(doc, c->prefix, c->node, &kind, &key, &label, err,
                             sizeof err) != 0) {
      fprintf(stderr, "wfctl: %s: document %zu: %s\n", fname, i + 1, err);
      bad = 1;
      continue;
    }
    c->put_keys[c->nput] = key;
    c->put_labels[c->nput] = label;
    c->put_values[c->nput] = json_dumps(doc, JSON_COMPACT);
    c->nput++;
  }
  json_decref(docs);
  if (bad) return 1;
  if (c->nput == 0) {
    fprintf(stderr, "wfctl: %s: no documents\n", fname);
    return 1;
  }
  return 0;
}
