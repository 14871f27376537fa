/*
 * wfctl-internal: what the files of the wfctl command share.
 *
 *   ctl.c             the context: flags, the loop and the etcd client,
 *                     dispatch to a command, finish, reading one key, and
 *                     the error lines every command prints
 *   access.c          the access options: etcd TLS and authentication, and
 *                     the token and TLS files for a node's log endpoint
 *   apply.c           apply: load and check every document, then put each
 *   get.c             get: list or read named objects; table, json, yaml, name
 *   describe.c        describe: read the step, its action and pipeline, and
 *                     the earlier steps of its pipeline run; print
 *   logs.c            logs [-f]
 *   run.c             run: create a step, watch it to its end, --timeout
 *   cancel.c          cancel (also the way out of run --timeout)
 *   tail.c            copying a growing log file to stdout from a timer,
 *                     and deciding whether the file is on this machine
 *   remote.c          reading a log from the node that ran the step (its
 *                     endpoint in the node record, docs/protocol.md §6.1)
 *
 * and the pure parts, which the unit tests call without a loop (their
 * public entry points are in include/wf/cli.h):
 *
 *   apply-prep.c      one apply document made ready to store
 *   yaml-out.c        a JSON value as a YAML document
 *   describe-model.c  what describe knows about a step, and its text
 *   ids.c             xids and key-segment checks
 *   step-view.c       a stored step's fields as wfctl shows them
 *   remote-req.c      a node log request's target, the node record's
 *                     endpoint, secret files, what an answer's status means
 *
 * One run of wfctl is one command on one uv loop (ctl.c says how it ends).
 * Every callback of a command gets the context, which lives on
 * wf_wfctl_main's stack for the whole run; a callback that arrives after
 * wf__ctl_end (etcd fails pending calls with UV_ECANCELED on close)
 * checks `finishing` first and does nothing.
 */
#ifndef WF_WFCTL_INTERNAL_H
#define WF_WFCTL_INTERNAL_H

#include <stdarg.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "wf/etcd.h"
#include "wf/http.h"
#include "wf/outputs.h"
#include "wf/util.h"

/* Long table cells (get's columns, describe's param values) are cut here. */
#define WF__CTL_MAX_CELL 80

enum wf__cmd { CMD_APPLY, CMD_GET, CMD_LOGS, CMD_CANCEL, CMD_RUN, CMD_DESCRIBE };
enum wf__get_kind { GET_STEPS, GET_ACTIONS, GET_NODES };
/* -o: table (get) or text (describe) is the default for people. */
enum wf__out { OUT_TABLE, OUT_JSON, OUT_YAML, OUT_NAME };

/* The access options (access.c): each a flag or an environment variable;
 * ACC_ETCD_PASSWORD is a variable only (a password on the command line is
 * visible in ps).  ACC_ETCD_HTTP2 is auto|off, not a file.  The node ones
 * are read by logs and run only. */
enum wf__acc {
  ACC_ETCD_CACERT, ACC_ETCD_CERT, ACC_ETCD_KEY, ACC_ETCD_USER, ACC_ETCD_PASSWORD_FILE,
  ACC_ETCD_PASSWORD, ACC_ETCD_HTTP2, ACC_TOKEN_FILE, ACC_CACERT, ACC_NODE_CERT, ACC_NODE_KEY,
  ACC_N
};

/* Where a step's log is (tail.c's answer). */
enum wf__log_where {
  LOG_NO_PATH,     /* no status.response.log_path yet */
  LOG_LOCAL,       /* the file is open here */
  LOG_NOT_YET,     /* missing here, but the node may not have created it yet */
  LOG_ELSEWHERE,   /* not on this machine: read it from the node */
  LOG_UNREADABLE,  /* here but cannot be opened (open_error says why) */
};

/* Reading a log from its node (remote.c); one explicit state. */
enum wf__remote_state {
  REMOTE_OFF,      /* not used: the log is local, or not known yet */
  REMOTE_RESOLVE,  /* reading the node record for its endpoint */
  REMOTE_STREAM,   /* GET .../log in flight */
  REMOTE_WAIT,     /* waiting (backoff timer) to try again */
  REMOTE_EOF,      /* follow: the node ended the stream; waiting for etcd to
                      say the step is complete (timer: then ask again) */
  REMOTE_DONE,     /* every byte printed */
  REMOTE_FAILED,   /* reported; nothing more is tried */
};

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

  /* access options as given on the command line (borrowed from argv), then
   * as used (access.c: the flag, else the environment), with the name of
   * where each came from for messages ("--etcd-cert", "WORKFLOW_ETCD_CERT") */
  const char *acc_arg[ACC_N];
  const char *acc[ACC_N];
  const char *acc_src[ACC_N];
  char *etcd_password;  /* read from the file or the environment; wiped */
  char *token;          /* the --token-file's content; wiped */
  /* etcd TLS failed in a call: the endpoint, for the diagnosis at the end */
  char *tls_failed_endpoint;

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
  char *log_node;     /* status.scheduled_node of the step that has log_path */
  int log_outside_root;  /* absolute log_path not under --log-root */
  int fd;
  int64_t off;
  char *open_error;
  int open_errno;
  unsigned missing_ticks;  /* ticks the file has been missing since log_path was set */
  /* Where the command goes when the log turns out to be elsewhere: the
   * remote read's end (see wf__remote_start); NULL = no remote reading. */
  void (*remote_done)(wf__ctl_t *c, int ok);
  int remote_follow;
  uv_timer_t tick;
  int tick_on;
  void (*tick_hook)(wf__ctl_t *c);  /* after each tick's copy; NULL for none */
  unsigned ticks;     /* logs -f: ticks since the start */

  /* remote log (remote.c) */
  enum wf__remote_state rstate;
  int r_follow;
  int r_complete;       /* the command saw the step complete */
  char *r_origin;       /* the node's endpoint the client is for */
  wf_http_client_t *r_client;
  wf_http_req_t *r_req;
  int r_status;         /* HTTP status of the answer in flight (0 before its head) */
  int r_regrab;         /* r_req was cancelled to ask again at once */
  int64_t r_off;        /* bytes of the log printed so far */
  int64_t r_att_bytes;  /* ... by the attempt in flight */
  unsigned r_attempts;  /* requests sent */
  unsigned r_fails;     /* attempts in a row that made no progress */
  unsigned r_404s;
  int r_said_lost;      /* the current outage was reported */
  wf_backoff_t r_backoff;
  uv_timer_t r_timer;
  int r_timer_on;
  char r_why[512];      /* why the last attempt failed */
  char r_errbody[200];  /* the start of a non-200 answer's body */
  size_t r_errlen;

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
/* "wfctl: " + the message + a newline on stderr (the one line format of
 * every message for people). */
void wf__ctl_vsay(const char *fmt, va_list ap);
/* fflush(stdout); when the reader is gone (EPIPE: `wfctl logs -f | head`)
 * wfctl dies of SIGPIPE, as it would have without ignoring it.  wfctl
 * ignores SIGPIPE so that a socket closed by a peer (etcd refusing a
 * certificate after a TLS 1.3 handshake) is an error, not a kill; stdout
 * gets the old behaviour back here. */
void wf__ctl_flush_stdout(void);

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

/* ---- access.c -----------------------------------------------------------------
 * Resolves the access options (the flag, else its environment variable;
 * the node ones only for logs and run), checks them as the node checks its
 * own (a certificate needs its key, files must be readable, TLS files need
 * an https:// endpoint, a user needs a password and the reverse), reads the
 * password and the token, and fills eo's TLS and auth members (borrowing
 * from c).  Returns -1 to go on, or 2 after printing why. */
int wf__access_setup(wf__ctl_t *c, wf_etcd_opts_t *eo);
/* With the loop: loads the node TLS files once so that a key that does not
 * match its certificate is a usage error now, not when a log is read.
 * Returns -1 to go on, or 2 after printing why. */
int wf__access_check_node_tls(wf__ctl_t *c);
/* wf_etcd_create refused every endpoint: prints why (a TLS file OpenSSL
 * refuses, a key that does not match its certificate, an OpenSSL that
 * cannot be loaded) and returns 2.  With the loop. */
int wf__access_explain_create(wf__ctl_t *c);
/* The TLS options for a node's https:// endpoint (borrowed from c). */
wf_http_tls_opts_t wf__access_node_tls(const wf__ctl_t *c);
/* After a call failed with WF_ETLS: asks the endpoint once more with a
 * plain request to learn OpenSSL's reason, and prints it with the flags
 * to look at.  Runs the loop (the command has ended). */
void wf__access_explain_tls(wf__ctl_t *c);
/* Wipes and frees the secrets. */
void wf__access_finish(wf__ctl_t *c);

/* ---- tail.c -------------------------------------------------------------------
 * Copies whatever the log file holds past the offset to stdout, a bounded
 * amount per call.  Returns 0, or -1 when there is no path or the file
 * cannot be opened (open_error says why).  Does nothing (0) once the log is
 * read from its node. */
int wf__tail_pump(wf__ctl_t *c);
/* Reads the file to its end (the step is over, nothing more will come). */
int wf__tail_drain(wf__ctl_t *c);
/* Takes log_path from the step (borrowed), with --log-root in front of a
 * relative one, and the node that writes it; a new path starts over at
 * offset 0. */
void wf__tail_set_path(wf__ctl_t *c, const json_t *step);
/* Where the log is, opening it if it is here.  may_wait: the step is still
 * running, so a file missing here may yet be created by a node on this
 * machine (the node publishes log_path just before it opens the file):
 * LOG_NOT_YET until it has been missing for a second of ticks. */
enum wf__log_where wf__tail_where(wf__ctl_t *c, int may_wait);
/* Pumps every 200 ms, then calls hook (may be NULL) on the same tick.
 * When remote_done is set and the file turns out to be on another machine,
 * a tick starts reading it from the node (wf__remote_start). */
void wf__tail_start(wf__ctl_t *c, void (*hook)(wf__ctl_t *c));
/* Closes the timer and the file. */
void wf__tail_stop(wf__ctl_t *c);

/* ---- remote.c -----------------------------------------------------------------
 * Reads the step's log (c->log_path, not on this machine) from the node
 * that wrote it, c->log_node: its record's `endpoint`, then GET
 * <endpoint>/v1/steps/<key>/log (follow=1 when c->remote_follow), the body
 * copied to stdout as it arrives.  A dropped connection, a 5xx, or (when
 * following) an ended stream while the step is not complete is asked again
 * with offset=<bytes printed>, with backoff, at most a few times in a row
 * without progress.  c->remote_done(c, ok) fires once, on a later loop
 * iteration: ok 1 when every byte was printed (following: the stream ended
 * and the command said the step is complete), 0 after the reason was
 * printed (401, 404, no endpoint, TLS, retries spent).  Not at all once the
 * command ended. */
void wf__remote_start(wf__ctl_t *c);
/* The command learned the step's state (each read or watch event).  Once
 * complete: an ended stream finishes; a stream still open after a grace is
 * asked again from its offset (a node that never ends it). */
void wf__remote_step(wf__ctl_t *c, int complete);
/* 1 while the remote read is under way (not OFF, DONE or FAILED). */
int wf__remote_busy(const wf__ctl_t *c);
/* Stops everything (the request, the timer, the client). */
void wf__remote_stop(wf__ctl_t *c);

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
