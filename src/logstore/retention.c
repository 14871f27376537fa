/*
 * retention: one pass of log retention (wf/logretain.h) as a uv_work_t.
 *
 * Everything below work() runs on a threadpool thread and uses plain
 * blocking calls (openat, readdir, fstatat, unlinkat): the pass is one job,
 * and the loop hears of it once, in after_work(), so nothing here blocks the
 * loop (docs/house-rules.md, "Blocking the loop").  The pass owns copies of
 * everything it reads (dir, keep set), so the caller's memory may go at once.
 *
 * The walk goes through directory file descriptors (openat with O_NOFOLLOW
 * below the log dir), so a symbolic link named like a year or a day can
 * never lead the pass out of the log dir.  Files it may remove by size are
 * remembered as {mtime, size, inode, day, name}; names and day paths live in
 * fixed-size chunks so that their addresses stay put while the list grows.
 * Before a removal by size the file is looked at again: a different inode or
 * mtime means someone rewrote it since the walk, and it stays.
 *
 * Directories are remembered as they are entered (year, then its months,
 * then their days), and removed walking that list backwards, so each one is
 * tried after everything inside it.  rmdir() itself decides emptiness
 * (ENOTEMPTY = keep), so there is no window between "is it empty" and the
 * removal.
 */
#include "wf/logretain.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wf/util.h"

/* Names and day paths: a name is at most 255 bytes (NAME_MAX), a day path
 * three numbers of at most MAX_DIGITS digits. */
#define CHUNK_SIZE (64 * 1024)
#define MAX_DIGITS 10

typedef struct chunk_s {
  struct chunk_s *next;
  size_t used;
  char data[CHUNK_SIZE];
} chunk_t;

/* A file that may be removed by size. */
typedef struct entry_s {
  int64_t mtime_ns;
  uint64_t size;
  uint64_t ino;
  const char *day;   /* "Y/M/D", in a chunk */
  const char *name;  /* in a chunk */
} entry_t;

typedef struct pass_s {
  uv_work_t req;
  wf_logretain_cb cb;
  void *data;
  /* copies of the options */
  char *dir;
  int64_t max_age_ms;
  uint64_t max_bytes;
  int64_t now_ms;
  wf_map_t keep;
  /* the walk (threadpool only) */
  int rootfd;
  entry_t *ents;
  size_t nents, capents;
  const char **dirs; /* "Y", "Y/M", "Y/M/D" in the order entered */
  size_t ndirs, capdirs;
  chunk_t *chunks;
  int capped;        /* over WF_LOGRETAIN_MAX_FILES: stopped listing */
  int recent[3][3];  /* {year, month, day} of now_ms - 1 day, now_ms, now_ms + 1 day */
  uint64_t total_bytes; /* counted files present now (kept ones included) */
  wf_logretain_result_t res;
  char *error;       /* the first error's text */
} pass_t;

/* ---- small helpers ------------------------------------------------------------ */

static char *chunk_dup(pass_t *p, const char *s) {
  size_t n = strlen(s) + 1;
  if (!p->chunks || CHUNK_SIZE - p->chunks->used < n) {
    chunk_t *c = wf_malloc(sizeof *c);
    c->next = p->chunks;
    c->used = 0;
    p->chunks = c;
  }
  char *out = p->chunks->data + p->chunks->used;
  memcpy(out, s, n);
  p->chunks->used += n;
  return out;
}

/* "2026", "11": a name the log store could have made (leading zeros too). */
static int numeric(const char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if (s[n] < '0' || s[n] > '9') return 0;
  return n > 0 && n <= MAX_DIGITS;
}

static int64_t sat_mul_add(int64_t sec, int64_t mul, int64_t add) {
  if (sec > (INT64_MAX - add) / mul) return INT64_MAX;
  if (sec < INT64_MIN / mul + 1) return INT64_MIN;
  return sec * mul + add;
}

static int64_t mtime_ns(const struct stat *st) {
  return sat_mul_add((int64_t)st->st_mtim.tv_sec, 1000000000, (int64_t)st->st_mtim.tv_nsec);
}

static int64_t mtime_ms(const struct stat *st) {
  return sat_mul_add((int64_t)st->st_mtim.tv_sec, 1000, (int64_t)st->st_mtim.tv_nsec / 1000000);
}

/* Counts an error; the first one becomes the result's text:
 * "<op> <dir>[/<rel>][/<name>]: <strerror>". */
static void note_error(pass_t *p, const char *op, const char *rel, const char *name, int err) {
  p->res.errors++;
  if (p->error) return;
  char buf[256];
  const char *text = strerror_r(err, buf, sizeof buf);
  p->error = wf_asprintf("%s %s%s%s%s%s: %s", op, p->dir, rel && *rel ? "/" : "", rel ? rel : "",
                         name ? "/" : "", name ? name : "", text);
}

/* Room for one more remembered file or directory, under the cap. */
static int room(pass_t *p) {
  if (p->capped) return 0;
  if (p->nents + p->ndirs < WF_LOGRETAIN_MAX_FILES) return 1;
  p->capped = 1;
  p->res.errors++;
  if (!p->error)
    p->error = wf_asprintf("more than %d files and directories under %s: the size limit was "
                           "not applied, nor were directories past that count removed",
                           WF_LOGRETAIN_MAX_FILES, p->dir);
  return 0;
}

/* The directory "Y/M/D" (or "Y/M", "Y") under the log dir, opened one
 * component at a time without following links.  Returns a fd or -errno. */
static int open_rel(pass_t *p, const char *rel) {
  char comp[MAX_DIGITS + 1];
  int fd = p->rootfd;
  const char *s = rel;
  while (*s) {
    size_t n = strcspn(s, "/");
    int nfd;
    if (n > MAX_DIGITS) {
      nfd = -ENAMETOOLONG;
    } else {
      memcpy(comp, s, n);
      comp[n] = '\0';
      nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (nfd < 0) nfd = -errno;
    }
    if (fd != p->rootfd) close(fd);
    if (nfd < 0) return nfd;
    fd = nfd;
    s += n;
    if (*s == '/') s++;
  }
  return fd == p->rootfd ? dup(fd) : fd;
}

/* ---- the walk ------------------------------------------------------------------- */

static void take_file(pass_t *p, int dfd, const char *day, const char *name) {
  struct stat st;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT) note_error(p, "stat", day, name, errno);
    return;
  }
  if (!S_ISREG(st.st_mode)) return;
  uint64_t size = (uint64_t)st.st_size;
  int keep = wf_map_get(&p->keep, name) != NULL;
  if (!keep && p->max_age_ms > 0) {
    int64_t cutoff = p->now_ms < INT64_MIN + p->max_age_ms ? INT64_MIN
                                                           : p->now_ms - p->max_age_ms;
    if (mtime_ms(&st) < cutoff) {
      if (unlinkat(dfd, name, 0) == 0) {
        p->res.files_removed++;
        p->res.bytes_removed += size;
        return;
      }
      if (errno == ENOENT) return;
      note_error(p, "unlink", day, name, errno);
      /* still there: counted below, and not tried again by size */
      keep = 1;
    }
  }
  p->res.files_kept++;
  p->total_bytes += size;
  if (keep || p->max_bytes == 0 || !room(p)) return;
  /* Written at or after the moment the keep set was taken (less a second
   * for clock granularity): a step claimed since then, absent from the
   * keep set, may be writing it.  Never a candidate for removal by size. */
  if (mtime_ms(&st) >= p->now_ms - 1000) return;
  if (p->nents == p->capents) {
    p->capents = p->capents ? p->capents * 2 : 1024;
    p->ents = wf_realloc(p->ents, p->capents * sizeof *p->ents);
  }
  entry_t *e = &p->ents[p->nents++];
  e->mtime_ns = mtime_ns(&st);
  e->size = size;
  e->ino = (uint64_t)st.st_ino;
  e->day = day;
  e->name = chunk_dup(p, name);
}

/* depth 0: dfd is the log dir (its entries are years); 1: a year; 2: a
 * month; 3: a day (its entries are files).  Takes dfd over. */
static void walk(pass_t *p, int dfd, const char *rel, int depth) {
  DIR *d = fdopendir(dfd);
  struct dirent *de;
  if (!d) {
    note_error(p, "open", rel, NULL, errno);
    close(dfd);
    return;
  }
  for (;;) {
    errno = 0;
    de = readdir(d);
    if (!de) {
      if (errno) note_error(p, "read", rel, NULL, errno);
      break;
    }
    const char *name = de->d_name;
    if (depth == 3) {
      if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) take_file(p, dirfd(d), rel, name);
      continue;
    }
    if (!numeric(name)) continue;
    struct stat st;
    if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) note_error(p, "stat", rel, name, errno);
      continue;
    }
    if (!S_ISDIR(st.st_mode)) continue;
    int cfd = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0) {
      if (errno != ENOENT) note_error(p, "open", rel, name, errno);
      continue;
    }
    char child[3 * (MAX_DIGITS + 1)];
    snprintf(child, sizeof child, "%.*s%s%.*s", 2 * MAX_DIGITS + 1, rel, *rel ? "/" : "",
             MAX_DIGITS, name);
    /* A remembered path must outlive this frame (the files of a day point
     * at it); past the cap nothing is remembered, and the stack will do. */
    const char *crel = child;
    if (room(p)) {
      crel = chunk_dup(p, child);
      if (p->ndirs == p->capdirs) {
        p->capdirs = p->capdirs ? p->capdirs * 2 : 64;
        p->dirs = wf_realloc(p->dirs, p->capdirs * sizeof *p->dirs);
      }
      p->dirs[p->ndirs++] = crel;
    }
    walk(p, cfd, crel, depth + 1);
  }
  closedir(d);
}

/* ---- removal by size -------------------------------------------------------------- */

static int cmp_entry(const void *a, const void *b) {
  const entry_t *x = a, *y = b;
  if (x->mtime_ns != y->mtime_ns) return x->mtime_ns < y->mtime_ns ? -1 : 1;
  int c = strcmp(x->day, y->day);
  return c ? c : strcmp(x->name, y->name);
}

static void trim_to_size(pass_t *p) {
  const char *open_day = NULL;
  int dfd = -1;
  if (p->nents == 0) return;  /* qsort must not get a NULL base */
  qsort(p->ents, p->nents, sizeof *p->ents, cmp_entry);
  for (size_t i = 0; i < p->nents && p->total_bytes > p->max_bytes; i++) {
    const entry_t *e = &p->ents[i];
    struct stat st;
    if (e->day != open_day) {
      if (dfd >= 0) close(dfd);
      open_day = e->day;
      dfd = open_rel(p, e->day);
      if (dfd < 0) {
        if (dfd != -ENOENT) note_error(p, "open", e->day, NULL, -dfd);
        continue;
      }
    }
    if (dfd < 0) continue;
    if (fstatat(dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) { /* gone since the walk: no longer there to count */
        p->res.files_kept--;
        p->total_bytes -= e->size;
      } else {
        note_error(p, "stat", e->day, e->name, errno);
      }
      continue;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_ino != e->ino || mtime_ns(&st) != e->mtime_ns) {
      /* rewritten since the walk (a step run again): kept, at its new size */
      p->total_bytes = p->total_bytes - e->size + (S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
      continue;
    }
    if (unlinkat(dfd, e->name, 0) != 0) {
      if (errno == ENOENT) {
        p->res.files_kept--;
        p->total_bytes -= e->size;
      } else {
        note_error(p, "unlink", e->day, e->name, errno);
      }
      continue;
    }
    p->res.files_kept--;
    p->total_bytes -= e->size;
    p->res.files_removed++;
    p->res.bytes_removed += e->size;
  }
  if (dfd >= 0) close(dfd);
}

/* ---- empty directories ----------------------------------------------------------- */

/* 1 if rel ("Y", "Y/M", "Y/M/D") holds a date the log store may be using. */
static int is_recent(const pass_t *p, const char *rel) {
  unsigned long v[3] = {0, 0, 0};
  int n = 0;
  for (const char *s = rel; *s && n < 3; n++) {
    char *end;
    v[n] = strtoul(s, &end, 10);
    s = *end == '/' ? end + 1 : end;
  }
  for (int i = 0; i < 3; i++) {
    int match = 1;
    for (int k = 0; k < n; k++)
      if (v[k] != (unsigned long)p->recent[i][k]) match = 0;
    if (match) return 1;
  }
  return 0;
}

static void remove_empty_dirs(pass_t *p) {
  for (size_t i = p->ndirs; i-- > 0;) {
    const char *rel = p->dirs[i];
    if (is_recent(p, rel)) continue;
    const char *slash = strrchr(rel, '/');
    const char *leaf = slash ? slash + 1 : rel;
    int pfd;
    if (slash) {
      char parent[3 * (MAX_DIGITS + 1)];
      snprintf(parent, sizeof parent, "%.*s", (int)(slash - rel), rel);
      pfd = open_rel(p, parent);
    } else {
      pfd = dup(p->rootfd);
      if (pfd < 0) pfd = -errno;
    }
    if (pfd < 0) {
      if (pfd != -ENOENT) note_error(p, "open", rel, NULL, -pfd);
      continue;
    }
    if (unlinkat(pfd, leaf, AT_REMOVEDIR) == 0)
      p->res.dirs_removed++;
    else if (errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
      note_error(p, "rmdir", rel, NULL, errno);
    close(pfd);
  }
}

/* ---- the job ------------------------------------------------------------------------ */

static void work(uv_work_t *req) {
  pass_t *p = req->data;
  for (int i = 0; i < 3; i++) {
    time_t t = (time_t)((p->now_ms + (int64_t)(i - 1) * 86400000) / 1000);
    struct tm tm;
    if (localtime_r(&t, &tm)) {
      p->recent[i][0] = tm.tm_year + 1900;
      p->recent[i][1] = tm.tm_mon + 1;
      p->recent[i][2] = tm.tm_mday;
    }
  }
  p->rootfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (p->rootfd < 0) {
    if (errno != ENOENT) note_error(p, "open", NULL, NULL, errno);
    return;
  }
  int wfd = dup(p->rootfd);
  if (wfd < 0) {
    note_error(p, "open", NULL, NULL, errno);
  } else {
    walk(p, wfd, "", 0);
    if (p->max_bytes > 0 && !p->capped && p->total_bytes > p->max_bytes) trim_to_size(p);
    remove_empty_dirs(p);
  }
  close(p->rootfd);
  p->rootfd = -1;
}

static void pass_free(pass_t *p) {
  while (p->chunks) {
    chunk_t *c = p->chunks;
    p->chunks = c->next;
    free(c);
  }
  free(p->ents);
  free(p->dirs);
  wf_map_finish(&p->keep);
  free(p->error);
  free(p->dir);
  free(p);
}

static void after_work(uv_work_t *req, int status) {
  pass_t *p = req->data;
  if (status < 0) { /* UV_ECANCELED: nobody cancels it today, but say so if it happens */
    p->res.errors++;
    if (!p->error) p->error = wf_asprintf("log retention in %s: %s", p->dir, uv_strerror(status));
  }
  p->res.bytes_kept = p->total_bytes;
  p->res.error = p->error;
  p->cb(&p->res, p->data);
  pass_free(p);
}

int wf_logretain_run(uv_loop_t *loop, const wf_logretain_opts_t *o, wf_logretain_cb cb,
                     void *data) {
  if (!loop || !o || !cb || !o->dir || !o->dir[0] || o->max_age_ms < 0 ||
      (o->nkeep > 0 && !o->keep))
    return UV_EINVAL;
  pass_t *p = wf_calloc(1, sizeof *p);
  p->cb = cb;
  p->data = data;
  p->dir = wf_strdup(o->dir);
  p->max_age_ms = o->max_age_ms;
  p->max_bytes = o->max_bytes;
  p->now_ms = o->now_ms;
  p->rootfd = -1;
  wf_map_init(&p->keep);
  for (size_t i = 0; i < o->nkeep; i++)
    if (o->keep[i]) wf_map_put(&p->keep, o->keep[i], p);
  p->req.data = p;
  int r = uv_queue_work(loop, &p->req, work, after_work);
  if (r < 0) pass_free(p);
  return r;
}
