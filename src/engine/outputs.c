/*
 * outputs: a step's output files around its run (docs/protocol.md §4,
 * "Step outputs").
 *
 * Before the run (still RESOLVING): a pipeline step of a fresh run reads
 * what the earlier steps of its pipeline run offer, in one paged list of
 * the run's key prefix (model/outputs.c decides what counts and merges it),
 * and the step's directory <output dir>/<key>/ is made ready on the
 * threadpool.  After the run (ENDING, once the log file is closed): the two
 * files are read and checked on the threadpool, the directory is removed,
 * and the values go into the outcome: status.response "output.NAME", masked
 * like everything else the node writes, and the summary as the message of
 * a step that succeeded.
 *
 * The threadpool functions touch only the job's out_* fields and strings
 * that do not change while they run; the loop reads their results in the
 * after-work callbacks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine-internal.h"
#include "wf/outputs.h"

/* Steps per page of the run's list: one round trip per page is most of a
 * big run's cost (bench part 9), and a step holds at most 320 KiB of
 * outputs, so a page stays far below the etcd client's 64 MiB bound on a
 * response even when every step is at its bound. */
#define OFFER_PAGE 64
/* What is read of the summary file: its first line is cut far below this. */
#define SUMMARY_READ (4 * WF_SUMMARY_MAX)

/* ---- threadpool helpers ----------------------------------------------------------------- */

static const char *kind_name(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

/* Reads at most max bytes of path into *out (malloc'd, NUL-terminated),
 * *trunc = 1 when there was more.  A missing file is no error (*out NULL).
 * Anything but a regular file is refused before it is opened, and again
 * after (O_NOFOLLOW, fstat), so a file swapped in between is refused too:
 * opening a FIFO or a device could block or have effects. */
static int read_bounded(const char *path, const char *what, size_t max, char **out, size_t *len,
                        int *trunc, char *err, size_t errlen) {
  struct stat st;
  *out = NULL;
  *len = 0;
  *trunc = 0;
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT) return 0;
    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s is %s: refused", what, kind_name(st.st_mode));
    return -1;
  }
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", what,
             errno == ELOOP ? "is a symbolic link: refused" : strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s is %s: refused", what, kind_name(st.st_mode));
    close(fd);
    return -1;
  }
  char *buf = wf_malloc(max + 2);
  size_t n = 0;
  /* One byte past the bound tells a file that is too large. */
  while (n < max + 1) {
    ssize_t r = read(fd, buf + n, max + 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      snprintf(err, errlen, "%s: %s", what, strerror(errno));
      free(buf);
      close(fd);
      return -1;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  if (n > max) {
    *trunc = 1;
    n = max;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (flag == FTW_DP) return rmdir(path) != 0 && errno != ENOENT;
  return unlink(path) != 0 && errno != ENOENT;
}

/* Removes dir and what the step left in it, never following a link. */
static int remove_tree(const char *dir) {
  int r = nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return r != 0 && errno != ENOENT ? -1 : 0;
}

/* mkdir that takes an existing directory as success. */
static int mkdir_ok(const char *path, mode_t mode) {
  if (mkdir(path, mode) == 0) return 0;
  struct stat st;
  return errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* ---- before the run: the directory ------------------------------------------------------ */

static void prep_work(uv_work_t *req) {
  wf__job_t *j = req->data;
  const char *root = j->e->output_dir;
  j->out_err[0] = '\0';
  /* The root is the node's own (0700): host users other than the agent's
   * cannot reach a step's files.  The step's directory is 0777 so that a
   * container running as another user can write its files (it sees only
   * its own directory, through the bind mount). */
  char *parent = wf_strdup(root);
  for (char *p = parent + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    mkdir_ok(parent, 0755);
    *p = '/';
  }
  free(parent);
  if (mkdir_ok(root, 0700) != 0 || mkdir_ok(j->out_dir, 0777) != 0 ||
      chmod(j->out_dir, 0777) != 0) {
    snprintf(j->out_err, sizeof j->out_err, "cannot prepare the output directory %s: %s",
             j->out_dir, strerror(errno));
    return;
  }
  if (j->attach_id) return;  /* the run it re-attaches to may have written them already */
  /* A fresh run starts without what an earlier attempt of the step left. */
  char *f = wf_asprintf("%s/output", j->out_dir);
  if (unlink(f) != 0 && errno != ENOENT)
    snprintf(j->out_err, sizeof j->out_err, "cannot remove %s: %s", f, strerror(errno));
  free(f);
  f = wf_asprintf("%s/summary", j->out_dir);
  if (!j->out_err[0] && unlink(f) != 0 && errno != ENOENT)
    snprintf(j->out_err, sizeof j->out_err, "cannot remove %s: %s", f, strerror(errno));
  free(f);
}

static void after_prep(uv_work_t *req, int status) {
  wf__job_t *j = req->data;
  (void)status;
  if (j->out_err[0]) {
    wf__job_fail_early(j, j->out_err);
    return;
  }
  j->out_ready = 1;
  wf__job_run(j);
}

static void prepare_dir(wf__job_t *j) {
  j->work.data = j;
  uv_queue_work(j->e->loop, &j->work, prep_work, after_prep);
}

/* ---- before the run: what earlier steps offer ------------------------------------------- */

static void on_offer_page(const wf_etcd_kv_t *kvs, size_t n, void *data) {
  wf__job_t *j = data;
  wf_engine_t *e = j->e;
  size_t plen = strlen(e->steps_prefix);
  for (size_t i = 0; i < n && !j->out_err[0]; i++) {
    /* Most steps publish nothing: skip them without a parse. */
    if (!memmem(kvs[i].value, kvs[i].value_len, "\"" WF_OUTPUT_KEY_PREFIX,
                sizeof WF_OUTPUT_KEY_PREFIX))
      continue;
    if (kvs[i].key_len <= plen) continue;
    wf_offers_add_bytes(j->offers_in, kvs[i].key + plen, kvs[i].value, kvs[i].value_len,
                        j->out_err, sizeof j->out_err);
  }
}

static void on_offer_done(int err, int64_t revision, void *data) {
  wf__job_t *j = data;
  wf_engine_t *e = j->e;
  (void)revision;
  wf_offers_t *in = j->offers_in;
  j->offers_in = NULL;
  if (err == UV_ECANCELED && e->closing) {
    wf_offers_destroy(in);
    wf__job_done(j);
    return;
  }
  if (err) {
    snprintf(j->out_err, sizeof j->out_err, "reading the outputs of earlier steps failed: %s",
             err == WF_EETCD ? wf_etcd_errmsg(e->etcd) : wf_strerror(err));
  } else if (!j->out_err[0]) {
    wf_params_t *all = &j->offers;
    if (wf_offers_finish(in, all, NULL, j->out_err, sizeof j->out_err) == 0) {
      /* A guarded name reaches the step only qualified (wf/outputs.h);
       * dropped in place, the keys being unique. */
      size_t k = 0;
      for (size_t i = 0; i < all->n; i++) {
        if (!strchr(all->kv[i].key, '.') && wf_output_name_guarded(all->kv[i].key)) {
          free((char *)all->kv[i].key);
          free((char *)all->kv[i].value);
          continue;
        }
        all->kv[k++] = all->kv[i];
      }
      all->n = k;
    }
  }
  wf_offers_destroy(in);
  if (j->out_err[0]) {
    wf__job_fail_early(j, j->out_err);
    return;
  }
  prepare_dir(j);
}

void wf__job_prepare_outputs(wf__job_t *j) {
  wf_engine_t *e = j->e;
  j->out_dir = wf_asprintf("%s/%s", e->output_dir, j->key);
  j->out_err[0] = '\0';
  wf_pipeline_pos_t pos;
  int64_t flow = j->step->status ? j->step->status->flow_number : 0;
  /* A re-attached run got its environment when it started. */
  if (!j->attach_id && j->step->create_type == WF__STEP__CREATE__BY__PIPELINE &&
      wf_pipeline_pos(j->key, &pos) == 0 && (j->offers_in = wf_offers_create(j->key, flow))) {
    char *prefix = wf_asprintf("%s%.*s", e->steps_prefix, (int)pos.run_len, pos.run);
    int r = wf_etcd_list(e->etcd, prefix, strlen(prefix), OFFER_PAGE, on_offer_page,
                         on_offer_done, j);
    free(prefix);
    if (r != 0) {
      wf_offers_destroy(j->offers_in);
      j->offers_in = NULL;
      wf__job_fail_early(j, "cannot start reading the outputs of earlier steps");
    }
    return;
  }
  prepare_dir(j);
}

/* ---- after the run -------------------------------------------------------------------- */

static void collect_work(uv_work_t *req) {
  wf__job_t *j = req->data;
  char *path = wf_asprintf("%s/output", j->out_dir);
  j->out_err[0] = '\0';
  if (read_bounded(path, "WORKFLOW_OUTPUT", WF_OUTPUT_MAX_FILE, &j->out_text, &j->out_len,
                   &j->out_trunc, j->out_err, sizeof j->out_err) != 0)
    j->out_text = NULL;
  free(path);
  path = wf_asprintf("%s/summary", j->out_dir);
  int trunc;
  char serr[256];
  /* A summary that cannot be read is left out, not a failure: it is only
   * a nicer message. */
  if (read_bounded(path, "WORKFLOW_SUMMARY", SUMMARY_READ, &j->sum_text, &j->sum_len, &trunc,
                   serr, sizeof serr) != 0)
    j->sum_text = NULL;
  free(path);
  j->out_rm_failed = remove_tree(j->out_dir) != 0 ? errno : 0;
}

/* An output file that breaks a rule fails a step that succeeded; a step
 * that failed keeps its own reason. */
static void outputs_refused(wf__job_t *j, const char *why) {
  if (j->final_status == WF__STEP__STATUS__SUCCEEDED)
    wf__job_set_outcome(j, WF__STEP__STATUS__FAILED, "%s", why);
  else
    wf_warn(j->key, "%s", why);
}

/* Records the checked outputs in the outcome, masked. */
static void record_outputs(wf__job_t *j) {
  wf_engine_t *e = j->e;
  wf_params_t out;
  char err[300];
  wf_params_init(&out);
  if (wf_outputs_parse(j->out_text, j->out_len, j->out_trunc, &out, err, sizeof err) != 0) {
    char *m = wf_asprintf("WORKFLOW_OUTPUT: %s", err);
    outputs_refused(j, m);
    free(m);
    wf_params_finish(&out);
    return;
  }
  for (size_t i = 0; i < out.n; i++) {
    if (strncmp(out.kv[i].key, "WORKFLOW_", 9) == 0) {
      char *m = wf_asprintf("WORKFLOW_OUTPUT: %s: names starting with WORKFLOW_ are reserved",
                            out.kv[i].key);
      outputs_refused(j, m);
      free(m);
      wf_params_finish(&out);
      return;
    }
  }
  for (size_t i = 0; i < out.n; i++) {
    char *key = wf_asprintf(WF_OUTPUT_KEY_PREFIX "%s", out.kv[i].key);
    /* A secret never reaches etcd: an output named like a secret param
     * is stored as the mask, and a secret param's value inside any
     * output is masked where it appears. */
    if (wf_mask_name_matches(e->mask_params, out.kv[i].key)) {
      wf_params_set(&j->response, key, WF_MASK_TEXT);
    } else if (j->mask) {
      char *v = wf_mask_string(j->mask, out.kv[i].value);
      wf_params_set(&j->response, key, v);
      free(v);
    } else {
      wf_params_set(&j->response, key, out.kv[i].value);
    }
    free(key);
  }
  wf_params_finish(&out);
}

static void after_collect(uv_work_t *req, int status) {
  wf__job_t *j = req->data;
  (void)status;
  if (j->out_rm_failed)
    wf_warn(j->key, "could not remove the output directory %s: %s", j->out_dir,
            strerror(j->out_rm_failed));
  if (j->stop != STOP_DELETE && j->stop != STOP_AWAY) {
    if (j->out_err[0])
      outputs_refused(j, j->out_err);
    else if (j->out_text)
      record_outputs(j);
    if (j->sum_text && j->final_status == WF__STEP__STATUS__SUCCEEDED) {
      char *line = wf_summary_line(j->sum_text, j->sum_len);
      /* set_outcome masks it. */
      if (line) wf__job_set_outcome(j, WF__STEP__STATUS__SUCCEEDED, "%s", line);
      free(line);
    }
  }
  free(j->out_text);
  free(j->sum_text);
  j->out_text = j->sum_text = NULL;
  wf__job_finish(j);
}

void wf__job_collect_outputs(wf__job_t *j) {
  if (!j->out_ready) {
    wf__job_finish(j);
    return;
  }
  j->out_ready = 0;
  j->work.data = j;
  uv_queue_work(j->e->loop, &j->work, collect_work, after_collect);
}

/* ---- a run that never started --------------------------------------------------------- */

static void discard_work(uv_work_t *req) {
  char *dir = req->data;
  remove_tree(dir);
}

static void after_discard(uv_work_t *req, int status) {
  (void)status;
  free(req->data);
  free(req);
}

void wf__job_discard_outputs(wf__job_t *j) {
  if (!j->out_ready) return;
  j->out_ready = 0;
  /* The job may be freed before this runs: the request owns a copy. */
  uv_work_t *req = wf_calloc(1, sizeof *req);
  req->data = wf_strdup(j->out_dir);
  uv_queue_work(j->e->loop, req, discard_work, after_discard);
}

/* ---- after a restart: what the previous process left ---------------------------------- */

/* The output directories of steps that ended while no agent ran, or that
 * recovery ended FAILED or CANCELED, would stay for ever: once recovery has
 * decided, everything under the output root goes, but for the directories
 * of jobs that have one now and of the runs being re-attached (their step
 * is still RUNNING), and those changed in the last seconds (a job that
 * prepared its directory after this snapshot: prepare always chmods, so its
 * ctime is new). */
typedef struct sweep_s {
  uv_work_t req;
  char *root;
  char **keep;       /* sorted */
  size_t nkeep;
  time_t since;      /* directories changed at or after this stay */
  unsigned removed;
} sweep_t;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sweep_work(uv_work_t *req) {
  sweep_t *w = req->data;
  DIR *d = opendir(w->root);
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d))) {
    const char *name = de->d_name;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
    if (bsearch(&name, w->keep, w->nkeep, sizeof *w->keep, cmp_str)) continue;
    char *path = wf_asprintf("%s/%s", w->root, name);
    struct stat st;
    if (lstat(path, &st) == 0 && st.st_ctime < w->since && remove_tree(path) == 0) w->removed++;
    free(path);
  }
  closedir(d);
}

static void after_sweep(uv_work_t *req, int status) {
  sweep_t *w = req->data;
  (void)status;
  if (w->removed)
    wf_info(NULL, "removed %u output directories left by steps that ended while the node was down",
            w->removed);
  for (size_t i = 0; i < w->nkeep; i++) free(w->keep[i]);
  free(w->keep);
  free(w->root);
  free(w);
}

void wf__outputs_sweep(wf_engine_t *e) {
  sweep_t *w = wf_calloc(1, sizeof *w);
  w->root = wf_strdup(e->output_dir);
  w->since = time(NULL) - 2;
  size_t cap = e->njobs + e->leftovers.count + 1;
  w->keep = wf_calloc(cap, sizeof *w->keep);
  for (wf__job_t *j = e->jobs; j; j = j->next)
    if (j->out_dir && w->nkeep < cap) w->keep[w->nkeep++] = wf_strdup(j->key);
  wf_map_iter_t it;
  wf_map_iter_init(&it);
  const char *k;
  void *v;
  while (wf_map_iter_next(&e->leftovers, &it, &k, &v) && w->nkeep < cap) {
    wf_cache_entry_t *entry = wf_informer_get(e->steps, k);
    wf_step_head_t h = {.node = "", .status = -1};
    json_t *o = entry && entry->value ? wf__load_obj(entry->value) : NULL;
    if (o) wf_step_head(o, &h);
    json_decref(o);
    if (h.status == WF__STEP__STATUS__RUNNING) w->keep[w->nkeep++] = wf_strdup(k);
  }
  qsort(w->keep, w->nkeep, sizeof *w->keep, cmp_str);
  w->req.data = w;
  uv_queue_work(e->loop, &w->req, sweep_work, after_sweep);
}
