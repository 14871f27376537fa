/*
 * wfctl-internal: what the files of the wfctl command share.
 *
 *   ctl.c             the context: flags, the loop and the etcd client,
 *                     dispatch to a command, finish, reading one key, and
 *                     the error lines every command prints
 *   apply.c           apply: load and check every document, then put each
 *   get.c             get: list or read named objects; table, json, yaml, name
 *   describe.c        describe: read the step, its action and pipeline, and
 *                     the earlier steps of its pipeline run; print
 *   logs.c            logs [-f]
 *   run.c             run: create a step, watch it to its end, --timeout
 *   cancel.c          cancel (also the way out of run --timeout)
 *   tail.c            copying a growing log file to stdout from a timer
 *
 * and the pure parts, which the unit tests call without a loop (their
 * public entry points are in include/wf/cli.h):
 *
 *   apply-prep.c      one apply document made ready to store
 *   yaml-out.c        a JSON value as a YAML document
 *   describe-model.c  what describe knows about a step, and its text
 *   ids.c             xids and key-segment checks
 *   step-view.c       a stored step's fields as wfctl shows them
 *
 * One run of wfctl is one command on one uv loop (ctl.c says how it ends).
 * Every callback of a command gets the context, which lives on
 * wf_wfctl_main's stack for the whole run; a callback that arrives after
 * wf__ctl_end (etcd fails pending calls with UV_ECANCELED on close)
 * checks `finishing` first and does nothing.
 */
#ifndef WF_WFCTL_INTERNAL_H
#define WF_WFCTL_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "wf/etcd.h"
#include "wf/outputs.h"

/* Long table cells (get's columns, describe's param values) are cut here. */
#define WF__CTL_MAX_CELL 80

enum wf__cmd { CMD_APPLY, CMD_GET, CMD_LOGS, CMD_CANCEL, CMD_RUN, CMD_DESCRIBE };
enum wf__get_kind { GET_STEPS, GET_ACTIONS, GET_NODES };
/* -o: table (get) or text (describe) is the default for people. */
enum wf__out { OUT_TABLE, OUT_JSON, OUT_YAML, OUT_NAME };

typedef struct wf__ctl_s wf__ctl_t;
/* A read of one key answered: err 0 and kv NULL when the key is absent.
 * kv is borrowed for the call. */
typedef void (*wf__ctl_read_cb)(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv);

/* The context of one run: ctl.c fills the options and owns every member;
 * each command's state is in its own group, freed by ctl.c at the end. */
struct wf__ctl_s {
  uv_loop_t loop;
  wf_etcd_t *etcd;
  char *prefix;
  char **endpoints;
  size_t nendpoints;
  int rc;
  int finishing;
  enum wf__cmd cmd;

  /* options (borrowed from argv or the environment, except `with`) */
  const char *file;
  const char *node;
  const char *log_root;
  const char *action;
  const char *out_arg;  /* -o as given; checked per command */
  enum wf__out out;
  const char *mask_params;
  int follow;
  unsigned timeout;
  json_t *with;
  const char **pos;   /* positional arguments after the command word */
  size_t npos;

  /* apply: the prepared documents, in order */
  char **put_keys, **put_labels, **put_values;
  size_t nput, iput;

  /* get */
  enum wf__get_kind gk;
  size_t ncols;
  char **cells;       /* rows * ncols, owned */
  size_t ncells, capcells;
  size_t iname;
  int missing;
  size_t nprinted;    /* -o yaml: documents written (separators) */

  /* describe: what was read (owned; NULL = not found) */
  json_t *d_step, *d_action, *d_pipeline;
  /* ... and what the earlier steps of a pipeline step's run offer it:
   * collected while the run is listed, then merged (d_listed set). */
  wf_offers_t *d_offers;
  wf_params_t d_offer_values, d_offer_origins;
  char d_offers_err[320];
  int d_listed;

  /* one step being read / cancelled / followed */
  char *step_key;     /* as the user wrote it */
  char *etcd_key;     /* P/workflow/steps/<key> */
  wf__ctl_read_cb on_read;
  int reading;
  char *last_status;
  int cancel_tries;

  /* log tail (tail.c) */
  char *log_path;
  int fd;
  int64_t off;
  char *open_error;
  uv_timer_t tick;
  int tick_on;
  void (*tick_hook)(wf__ctl_t *c);  /* after each tick's copy; NULL for none */
  unsigned ticks;     /* logs -f: ticks since the start */

  /* run */
  uv_timer_t deadline;
  int deadline_on;
  wf_etcd_watch_t *watch;
  int watch_lost;
};

/* ---- ctl.c ------------------------------------------------------------------
 * Ends the command with exit code rc: the tail and the timers stop, the
 * watch is cancelled and the etcd client closed, so uv_run returns once its
 * sockets are closed.  Only the first call counts. */
void wf__ctl_end(wf__ctl_t *c, int rc);

/* Reads one key (borrowed; copied by the client).  cb fires once, on a
 * later loop iteration, or inside this call when the read cannot start;
 * not at all when the command finished meanwhile.  `reading` is set while
 * the read is in flight. */
void wf__ctl_read_key(wf__ctl_t *c, const char *key, wf__ctl_read_cb cb);

/* The etcd endpoint in use, for error lines (never NULL). */
const char *wf__ctl_endpoint(const wf__ctl_t *c);
/* err as text: the client's own message for etcd and HTTP errors. */
const char *wf__ctl_err_text(const wf__ctl_t *c, int err);
/* Prints "wfctl: <what>: <error> (etcd <url>)", what from fmt. */
void wf__ctl_fail(wf__ctl_t *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Remembers the step a command is about: step_key and etcd_key. */
void wf__ctl_set_step_key(wf__ctl_t *c, const char *key);
/* A step read from etcd as a new JSON object; NULL (reported) when the
 * stored value is not one.  kv is borrowed. */
json_t *wf__ctl_parse_step(wf__ctl_t *c, const wf_etcd_kv_t *kv);
void wf__ctl_step_not_found(wf__ctl_t *c);
/* The usual answer to reading c->etcd_key: 1 when kv is there; 0 after
 * reporting the error or the missing step (the caller ends the command). */
int wf__ctl_step_found(wf__ctl_t *c, int err, const wf_etcd_kv_t *kv);

/* One timer of the context (t is a member of c): started with c as its
 * data and *on set; stopping closes it and clears *on.  Both are no-ops
 * when the timer is already in that state. */
void wf__ctl_timer_start(wf__ctl_t *c, uv_timer_t *t, int *on, uv_timer_cb cb,
                         uint64_t timeout, uint64_t repeat);
void wf__ctl_timer_stop(uv_timer_t *t, int *on);
/* Cancels run's watch, if any: no watch callback fires after this. */
void wf__ctl_watch_stop(wf__ctl_t *c);

/* ---- the commands -------------------------------------------------------------
 * Each start function begins its command on the loop; the command ends in
 * wf__ctl_end with its exit code.  Errors are reported through that,
 * never returned. */

/* apply.c: loads -f and prepares every document before the loop exists.
 * Returns 0, or 1 after reporting what is wrong (nothing is written). */
int wf__apply_load(wf__ctl_t *c);
void wf__apply_start(wf__ctl_t *c);
void wf__get_start(wf__ctl_t *c);
void wf__describe_start(wf__ctl_t *c);
void wf__logs_start(wf__ctl_t *c);
void wf__cancel_start(wf__ctl_t *c);
void wf__run_start(wf__ctl_t *c);

/* ---- tail.c -------------------------------------------------------------------
 * Copies whatever the log file holds past the offset to stdout, a bounded
 * amount per call.  Returns 0, or -1 when there is no path or the file
 * cannot be opened (open_error says why). */
int wf__tail_pump(wf__ctl_t *c);
/* Reads the file to its end (the step is over, nothing more will come). */
int wf__tail_drain(wf__ctl_t *c);
/* Takes log_path from the step (borrowed), with --log-root in front of a
 * relative one; a new path starts over at offset 0. */
void wf__tail_set_path(wf__ctl_t *c, const json_t *step);
/* Pumps every 200 ms, then calls hook (may be NULL) on the same tick. */
void wf__tail_start(wf__ctl_t *c, void (*hook)(wf__ctl_t *c));
/* Closes the timer and the file. */
void wf__tail_stop(wf__ctl_t *c);

/* ---- step-view.c (pure) ---------------------------------------------------------
 * Fields of stored objects (borrowed) as wfctl shows them; a missing one is
 * "".  The returned strings point into the object. */
const char *wf__jstr(const json_t *obj, const char *key);
/* The step's status name in upper case ("PENDDING" when absent, like the
 * original's default), malloc'd. */
char *wf__status_name(const json_t *step);
/* 1 for SUCCEEDED, FAILED, CANCELED, SKIP and REFUSE. */
int wf__status_complete(const char *status);
const char *wf__step_message(const json_t *step);
const char *wf__step_node(const json_t *step);

#endif
