/*
 * get: `wfctl get steps|actions|nodes [NAME...]` lists every object of the
 * kind (paged, at one etcd revision) or reads the named ones in turn, and
 * prints them as an aligned table for people, or for programs as JSON
 * lines, YAML documents or names (-o name is what the bash completion
 * reads).  A name that does not exist is reported and makes the exit
 * code 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wf/cli.h"
#include "wf/codec.h"
#include "wf/util.h"
#include "wfctl-internal.h"

#define PAGE_SIZE 500

/* One table cell, copied into c->cells. */
static void cells_push(wf__ctl_t *c, const char *s) {
  if (c->ncells == c->capcells) {
    c->capcells = c->capcells ? c->capcells * 2 : 64;
    c->cells = wf_realloc(c->cells, c->capcells * sizeof *c->cells);
  }
  /* One line per row, and a bounded width: messages can be long. */
  size_t n = strlen(s ? s : "");
  char *v = s && s[0] ? wf_strndup(s, n > WF__CTL_MAX_CELL ? WF__CTL_MAX_CELL : n) : wf_strdup("-");
  for (char *p = v; *p; p++)
    if ((unsigned char)*p < 0x20) *p = ' ';
  if (n > WF__CTL_MAX_CELL) {
    memcpy(v + WF__CTL_MAX_CELL - 3, "...", 3);
  }
  c->cells[c->ncells++] = v;
}

static const char *kind_word(enum wf__get_kind k) {
  return k == GET_STEPS ? "step" : k == GET_ACTIONS ? "action" : "node";
}

/* Where objects of the kind are stored, malloc'd. */
static char *kind_prefix(const wf__ctl_t *c) {
  switch (c->gk) {
  case GET_STEPS: return wf_asprintf("%s/workflow/steps/", c->prefix);
  case GET_ACTIONS: return wf_asprintf("%s/workflow/actions/", c->prefix);
  default: return wf_asprintf("%s/workflow/service/node/", c->prefix);
  }
}

/* Registration time for the table: UTC, to the second. */
static void fmt_time(int64_t ms, char *out, size_t len) {
  if (ms <= 0) {
    snprintf(out, len, "-");
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One object in a machine-readable form: a JSON line, a YAML document, or
 * its name as `get NAME` and the other commands take it. */
static void get_emit(wf__ctl_t *c, const json_t *o, const char *last) {
  char *s = NULL;
  switch (c->out) {
  case OUT_JSON:
    s = json_dumps(o, JSON_COMPACT);
    if (s) printf("%s\n", s);
    break;
  case OUT_YAML:
    s = wf_cli_yaml_dump(o);
    if (s) printf("%s%s", c->nprinted ? "---\n" : "", s);
    break;
  case OUT_NAME:
    /* An action's key ends in name@version; a step's and node's in their
     * name, which the stored object normally repeats. */
    if (c->gk == GET_STEPS && wf__jstr(o, "key")[0]) printf("%s\n", wf__jstr(o, "key"));
    else if (c->gk == GET_NODES && wf__jstr(o, "instance_name")[0])
      printf("%s\n", wf__jstr(o, "instance_name"));
    else printf("%s\n", last);
    break;
  case OUT_TABLE: break;
  }
  free(s);
  c->nprinted++;
}

/* One stored object (kv borrowed): a row of the table, or at once in the
 * other outputs. */
static void get_row(wf__ctl_t *c, const wf_etcd_kv_t *kv) {
  json_error_t je;
  json_t *o = json_loadb(kv->value, kv->value_len, 0, &je);
  if (!json_is_object(o)) {
    fprintf(stderr, "wfctl: skipping %s: not a JSON object (etcd %s)\n", kv->key,
            wf__ctl_endpoint(c));
    json_decref(o);
    return;
  }
  const char *last = strrchr(kv->key, '/');
  last = last ? last + 1 : kv->key;
  if (c->out != OUT_TABLE) {
    get_emit(c, o, last);
    json_decref(o);
    return;
  }
  switch (c->gk) {
  case GET_STEPS: {
    char *st = wf__status_name(o);
    cells_push(c, wf__jstr(o, "key")[0] ? wf__jstr(o, "key") : last);
    cells_push(c, wf__jstr(o, "action"));
    cells_push(c, wf__step_node(o));
    cells_push(c, st);
    cells_push(c, wf__step_message(o));
    free(st);
    break;
  }
  case GET_ACTIONS: {
    json_t *rt = json_object_get(o, "runner_type");
    const char *runner = "DOCKER"; /* the enum's zero, as the original reads a missing one */
    char num[32];
    if (json_is_string(rt)) runner = json_string_value(rt);
    else if (json_is_integer(rt)) {
      runner = wf_enum_name(&wf__runner__type__descriptor, (int)json_integer_value(rt));
      if (!runner) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(rt));
        runner = num;
      }
    }
    cells_push(c, wf__jstr(o, "name"));
    cells_push(c, wf__jstr(o, "version"));
    cells_push(c, runner);
    cells_push(c, wf__jstr(o, "description"));
    break;
  }
  case GET_NODES: {
    char when[32];
    json_t *on = json_object_get(o, "online");
    fmt_time(json_is_integer(on) ? json_integer_value(on) : 0, when, sizeof when);
    cells_push(c, wf__jstr(o, "instance_name")[0] ? wf__jstr(o, "instance_name") : last);
    cells_push(c, wf__jstr(o, "address"));
    cells_push(c, wf__jstr(o, "version"));
    cells_push(c, when);
    break;
  }
  }
  json_decref(o);
}

/* The table, columns aligned to the widest cell (the other outputs are
 * printed as they come). */
static void get_print(wf__ctl_t *c) {
  static const char *const heads[3][5] = {
      {"KEY", "ACTION", "NODE", "STATUS", "MESSAGE"},
      {"NAME", "VERSION", "RUNNER", "DESCRIPTION", NULL},
      {"NAME", "ADDRESS", "VERSION", "ONLINE", NULL},
  };
  if (c->out != OUT_TABLE) return;
  size_t nrows = c->ncells / c->ncols;
  if (nrows == 0) {
    if (!c->missing) fprintf(stderr, "wfctl: no %ss found\n", kind_word(c->gk));
    return;
  }
  size_t w[5] = {0};
  for (size_t j = 0; j < c->ncols; j++) w[j] = strlen(heads[c->gk][j]);
  for (size_t i = 0; i < c->ncells; i++) {
    size_t l = strlen(c->cells[i]);
    if (l > w[i % c->ncols]) w[i % c->ncols] = l;
  }
  for (size_t r = 0; r <= nrows; r++) {
    for (size_t j = 0; j < c->ncols; j++) {
      const char *s = r == 0 ? heads[c->gk][j] : c->cells[(r - 1) * c->ncols + j];
      if (j + 1 < c->ncols) printf("%-*s   ", (int)w[j], s);
      else printf("%s\n", s);
    }
  }
}

/* A page of the listing: its keys and values are borrowed for the call. */
static void on_get_page(const wf_etcd_kv_t *kvs, size_t n, void *data) {
  wf__ctl_t *c = data;
  if (c->finishing) return;
  for (size_t i = 0; i < n; i++) get_row(c, &kvs[i]);
}

static void on_get_done(int err, int64_t rev, void *data) {
  wf__ctl_t *c = data;
  if (c->finishing) return;
  if (err) {
    wf__ctl_fail(c, err, "listing %ss", kind_word(c->gk));
    wf__ctl_end(c, 1);
    return;
  }
  get_print(c);
  wf__ctl_end(c, 0);
}

static void get_next_name(wf__ctl_t *c);

static void get_on_one(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv) {
  const char *name = c->pos[c->iname - 1];
  if (err) {
    wf__ctl_fail(c, err, "reading %s \"%s\"", kind_word(c->gk), name);
    wf__ctl_end(c, 1);
    return;
  }
  if (!kv) {
    fprintf(stderr, "wfctl: %s \"%s\" not found (etcd %s)\n", kind_word(c->gk), name,
            wf__ctl_endpoint(c));
    c->missing = 1;
  } else {
    get_row(c, kv);
  }
  get_next_name(c);
}

/* Reads the next named object, or prints what was found and ends. */
static void get_next_name(wf__ctl_t *c) {
  if (c->iname >= c->npos) {
    get_print(c);
    wf__ctl_end(c, c->missing ? 1 : 0);
    return;
  }
  const char *name = c->pos[c->iname++];
  char *pfx = kind_prefix(c);
  char *key = wf_asprintf("%s%s", pfx, name);
  free(pfx);
  wf__ctl_read_key(c, key, get_on_one);
  free(key);
}

void wf__get_start(wf__ctl_t *c) {
  c->ncols = c->gk == GET_STEPS ? 5 : 4;
  if (c->npos > 0) {
    get_next_name(c);
    return;
  }
  char *pfx = kind_prefix(c);
  int r = wf_etcd_list(c->etcd, pfx, strlen(pfx), PAGE_SIZE, on_get_page, on_get_done, c);
  free(pfx);
  if (r != 0) on_get_done(r, 0, c);
}
