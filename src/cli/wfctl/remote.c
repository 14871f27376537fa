/*
 * remote: reading a step's log from the node that ran it, for `logs` and
 * `run`, when the file is not on this machine (tail.c decides).  The node
 * publishes its HTTP endpoint in its record (docs/protocol.md §6.1, §7):
 *
 *   read P/workflow/service/node/<status.scheduled_node>, take `endpoint`
 *   GET <endpoint>/v1/steps/<key>/log[?follow=1][&offset=N]
 *       Authorization: Bearer <--token-file>       (when given)
 *
 * and the body goes to stdout as it arrives, never buffered (the HTTP
 * client streams it; stdout is written before the next read).
 *
 * Every attempt starts from the node record again, so a node that came
 * back on another port is found.  An attempt that ends without the whole
 * log (the connection dropped, a 5xx, or a follow stream that ended while
 * etcd still says the step runs) is tried again with offset=<bytes printed
 * so far>, so no byte is lost or printed twice; with capped exponential
 * backoff, and at most MAX_FAILS attempts in a row that printed nothing.
 * What cannot get better (401, 404, a node with no endpoint, TLS) is said
 * once and ends the remote read.
 *
 * The state machine (enum wf__remote_state in wfctl-internal.h):
 *
 *   OFF -> RESOLVE -> STREAM -> DONE                      (all of it)
 *           |  |         |-> EOF -> DONE                  (follow: etcd says complete)
 *           |  |         |    `--> RESOLVE                (still running: ask again)
 *           |  |         `-> WAIT -> RESOLVE              (dropped, 5xx)
 *           |  `-> WAIT                                   (etcd error reading the record)
 *           `-> OFF                                       (no endpoint, and the file
 *                                                          appeared here: read it here)
 *   any -> FAILED                                         (reported)
 *
 * One timer, armed only while waiting: the backoff in WAIT, etcd's lag in
 * EOF, the grace a complete step's stream gets to end in STREAM, and the
 * delivery of remote_done in DONE and FAILED (on a later iteration, never
 * inside the call that decided it).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf/cli.h"
#include "wf/http.h"
#include "wf/util.h"
#include "wfctl-internal.h"

#define BACKOFF_BASE_MS 250
#define BACKOFF_MAX_MS 4000
/* Attempts in a row that printed nothing before giving up (about 20 s of
 * backoff: a node restarting comes back within that). */
#define MAX_FAILS 8
/* A 404 while the step runs and nothing came yet: the node may still be
 * creating the file; asked again this many times. */
#define MAX_404 3
/* After a follow stream ended: how long etcd gets to say the step is
 * complete before the node is asked again. */
#define EOF_WAIT_MS 2000
/* Once etcd says the step is complete, its stream should end; one that
 * then goes this long without a byte is dropped and asked again from its
 * offset (a long rest of a log still coming is not cut: each byte re-arms
 * it). */
#define END_GRACE_MS 5000
/* Without follow: an answer silent for this long fails the attempt. */
#define READ_TIMEOUT_MS 30000

static void resolve(wf__ctl_t *c);

static const char *node_name(const wf__ctl_t *c) { return c->log_node ? c->log_node : ""; }

int wf__remote_busy(const wf__ctl_t *c) {
  return c->rstate == REMOTE_RESOLVE || c->rstate == REMOTE_STREAM || c->rstate == REMOTE_WAIT ||
         c->rstate == REMOTE_EOF;
}

static void on_timer(uv_timer_t *t);

static void timer_arm(wf__ctl_t *c, uint64_t ms) {
  if (c->r_timer_on) uv_timer_start(&c->r_timer, on_timer, ms, 0);
}

static void timer_disarm(wf__ctl_t *c) {
  if (c->r_timer_on) uv_timer_stop(&c->r_timer);
}

/* The end: remote_done fires from the timer. */
static void finish(wf__ctl_t *c, int ok) {
  c->rstate = ok ? REMOTE_DONE : REMOTE_FAILED;
  timer_arm(c, 0);
}

static void fail(wf__ctl_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(wf__ctl_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wf__ctl_vsay(fmt, ap);
  va_end(ap);
  finish(c, 0);
}

/* An attempt that got bytes was progress: the count of failures starts over. */
static void account(wf__ctl_t *c) {
  if (c->r_att_bytes > 0) {
    c->r_fails = 0;
    c->r_said_lost = 0;
    wf_backoff_reset(&c->r_backoff);
  }
  c->r_att_bytes = 0;
}

/* The attempt failed in a way the next one may not (r_why says how). */
static void attempt_failed(wf__ctl_t *c, int quiet) {
  account(c);
  if (++c->r_fails > MAX_FAILS) {
    fail(c, "cannot read the log of step %s from node %s: %s (gave up after %u attempts in a "
         "row; %" PRId64 " bytes printed)", c->step_key, node_name(c), c->r_why, MAX_FAILS,
         c->r_off);
    return;
  }
  if (!quiet && !c->r_said_lost) {
    c->r_said_lost = 1;
    if (c->r_off > 0)
      fprintf(stderr, "wfctl: log of step %s from node %s interrupted: %s; resuming at byte %"
              PRId64 "\n", c->step_key, node_name(c), c->r_why, c->r_off);
    else
      fprintf(stderr, "wfctl: log of step %s from node %s: %s; trying again\n", c->step_key,
              node_name(c), c->r_why);
  }
  c->rstate = REMOTE_WAIT;
  timer_arm(c, wf_backoff_next(&c->r_backoff));
}

/* ---- the request --------------------------------------------------------------- */

static void on_head(wf_http_req_t *req, int status, const wf_http_header_t *h, size_t nh,
                    void *data) {
  (void)req, (void)h, (void)nh;
  wf__ctl_t *c = data;
  c->r_status = status;
}

static void on_data(wf_http_req_t *req, const char *p, size_t n, void *data) {
  (void)req;
  wf__ctl_t *c = data;
  if (c->finishing) return;
  if (c->r_status != 200) {
    /* An error answer: keep its start for the message. */
    size_t room = sizeof c->r_errbody - 1 - c->r_errlen;
    if (n > room) n = room;
    memcpy(c->r_errbody + c->r_errlen, p, n);
    c->r_errlen += n;
    return;
  }
  fwrite(p, 1, n, stdout);
  wf__ctl_flush_stdout();
  c->r_off += (int64_t)n;
  c->r_att_bytes += (int64_t)n;
  if (c->r_follow && c->r_complete && c->rstate == REMOTE_STREAM) timer_arm(c, END_GRACE_MS);
}

static void on_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                    void *data) {
  (void)req, (void)body, (void)len;
  wf__ctl_t *c = data;
  c->r_req = NULL;
  if (c->finishing || c->rstate != REMOTE_STREAM) return;
  timer_disarm(c);
  const char *url = c->r_origin;
  if (err == UV_ECANCELED && c->r_regrab) {
    /* The step is complete but its stream did not end: ask again. */
    c->r_regrab = 0;
    snprintf(c->r_why, sizeof c->r_why, "node %s did not end the stream of a complete step",
             node_name(c));
    account(c);
    if (++c->r_fails > MAX_FAILS) {
      fail(c, "cannot read the log of step %s from node %s: %s", c->step_key, node_name(c),
           c->r_why);
      return;
    }
    resolve(c);
    return;
  }
  if (err == WF_ETLS) {
    fail(c, "node %s (%s): %s (see --cacert, --node-cert, --node-key)", node_name(c), url,
         wf_http_client_last_error(c->r_client));
    return;
  }
  if (err != 0) {
    snprintf(c->r_why, sizeof c->r_why, "%s: %s", url, wf_strerror(err));
    attempt_failed(c, 0);
    return;
  }
  char msg[512];
  c->r_errbody[c->r_errlen] = '\0';
  switch (wf_cli_log_answer(status, node_name(c), c->step_key, c->r_errbody, msg, sizeof msg)) {
  case WF_CLI_LOG_OK:
    if (!c->r_follow || c->r_complete) {
      finish(c, 1);
      return;
    }
    /* The node ends a follow stream once the step ended there; etcd will
     * say so in a moment.  If it does not, the node is asked again. */
    if (c->r_att_bytes == 0 && c->r_fails + 1 > MAX_FAILS) {
      fail(c, "node %s keeps ending the log stream of step %s, but etcd says the step is "
           "still running", node_name(c), c->step_key);
      return;
    }
    if (c->r_att_bytes == 0) c->r_fails++;
    account(c);
    c->rstate = REMOTE_EOF;
    timer_arm(c, EOF_WAIT_MS);
    return;
  case WF_CLI_LOG_RETRY:
    snprintf(c->r_why, sizeof c->r_why, "%.300s (%.200s)", msg, url);
    attempt_failed(c, 0);
    return;
  case WF_CLI_LOG_FAIL:
    if (status == 404 && c->r_follow && !c->r_complete && c->r_off == 0 &&
        c->r_404s < MAX_404) {
      c->r_404s++;
      snprintf(c->r_why, sizeof c->r_why, "%.300s (%.200s)", msg, url);
      attempt_failed(c, 1);
      return;
    }
    fail(c, "%s (endpoint %s)", msg, url);
    return;
  }
}

static void send_request(wf__ctl_t *c) {
  char *target = wf_cli_log_target(c->step_key, c->r_follow, c->r_off);
  char auth[4200];
  wf_http_header_t h[1];
  size_t nh = 0;
  if (c->token) {
    snprintf(auth, sizeof auth, "Bearer %s", c->token);
    h[nh++] = (wf_http_header_t){"Authorization", auth};
  }
  wf_http_req_opts_t ro = {
      .method = "GET",
      .path = target,
      .headers = h,
      .nheaders = nh,
      .stream = 1,
      /* A quiet step sends nothing for as long as it likes. */
      .timeout_ms = c->r_follow ? 0 : READ_TIMEOUT_MS,
  };
  wf_http_cbs_t cbs = {.on_head = on_head, .on_data = on_data, .on_done = on_done};
  c->r_status = 0;
  c->r_errlen = 0;
  c->r_att_bytes = 0;
  c->r_attempts++;
  c->rstate = REMOTE_STREAM;
  c->r_req = wf_http_request(c->r_client, &ro, &cbs, c);
  for (volatile char *p = auth; p < auth + sizeof auth; p++) *p = 0;
  free(target);
  if (!c->r_req) {
    fail(c, "node %s (%s): cannot send the log request", node_name(c), c->r_origin);
    return;
  }
  if (c->r_follow && c->r_complete) timer_arm(c, END_GRACE_MS);
}

/* ---- the node record ------------------------------------------------------------ */

/* The node has no endpoint (or no record).  While the step runs, a file
 * that appeared here meanwhile (a node on this machine, slow to create it)
 * is followed here after all. */
static void no_endpoint(wf__ctl_t *c, const char *why) {
  if (c->r_follow && !c->r_complete && wf__tail_where(c, 0) == LOG_LOCAL) {
    c->rstate = REMOTE_OFF;
    return;
  }
  fail(c, "the log of step %s (%s) is not on this machine, and node %s publishes no endpoint "
       "to read it from (%s): use --log-root DIR where the file is, or run the node with "
       "--listen", c->step_key, c->log_path, node_name(c), why);
}

static int use_origin(wf__ctl_t *c, const char *origin) {
  if (c->r_client && strcmp(c->r_origin, origin) == 0) return 0;
  if (c->r_client) wf_http_client_close(c->r_client, NULL, NULL);
  c->r_client = NULL;
  free(c->r_origin);
  c->r_origin = wf_strdup(origin);
  wf_http_tls_opts_t tls = wf__access_node_tls(c);
  wf_http_client_opts_t ho = {.max_idle = 1, .tls = &tls};
  char why[512];
  c->r_client = wf_http_client_create_ex(&c->loop, origin, &ho, why, sizeof why);
  if (!c->r_client) {
    fail(c, "node %s's endpoint %s: %s", node_name(c), origin, why);
    return -1;
  }
  return 0;
}

static void on_record(int err, const wf_etcd_range_res_t *res, void *data) {
  wf__ctl_t *c = data;
  if (c->finishing || c->rstate != REMOTE_RESOLVE) return;
  if (err) {
    snprintf(c->r_why, sizeof c->r_why, "reading the record of node %s: %s (etcd %s)",
             node_name(c), wf__ctl_err_text(c, err), wf__ctl_endpoint(c));
    attempt_failed(c, 0);
    return;
  }
  /* A node between two lives has no record, or one without its endpoint
   * yet: only the first look is final. */
  int first = c->r_attempts == 0;
  const char *gone = NULL;
  char *origin = NULL;
  char why[512];
  if (res->nkvs == 0) {
    gone = "it is not registered in etcd";
  } else {
    int r = wf_cli_node_endpoint(res->kvs[0].value, res->kvs[0].value_len, &origin, why,
                                 sizeof why);
    if (r < 0) {
      fail(c, "node %s: %s (etcd %s)", node_name(c), why, wf__ctl_endpoint(c));
      return;
    }
    if (r == 1) gone = "its record has no endpoint";
  }
  if (gone) {
    if (first) {
      no_endpoint(c, gone);
    } else {
      snprintf(c->r_why, sizeof c->r_why, "node %s publishes no endpoint (%s)", node_name(c),
               gone);
      attempt_failed(c, 0);
    }
    return;
  }
  int r = use_origin(c, origin);
  free(origin);
  if (r == 0) send_request(c);
}

static void resolve(wf__ctl_t *c) {
  const char *node = node_name(c);
  if (!node[0]) {
    fail(c, "the log of step %s (%s) is not on this machine, and the step names no node to "
         "read it from: use --log-root DIR where the file is", c->step_key, c->log_path);
    return;
  }
  if (!wf_cli_name_ok(node)) {
    fail(c, "step %s names node \"%s\", which is not a node name", c->step_key, node);
    return;
  }
  c->rstate = REMOTE_RESOLVE;
  char *key = wf_asprintf("%s/workflow/service/node/%s", c->prefix, node);
  wf_etcd_range_opts_t o = {0};
  int r = wf_etcd_range(c->etcd, key, strlen(key), NULL, 0, &o, on_record, c);
  free(key);
  if (r != 0) {
    snprintf(c->r_why, sizeof c->r_why, "reading the record of node %s: %s", node,
             wf_strerror(r));
    attempt_failed(c, 0);
  }
}

/* ---- the timer and the command's side ----------------------------------------- */

static void on_timer(uv_timer_t *t) {
  wf__ctl_t *c = t->data;
  if (c->finishing) return;
  switch (c->rstate) {
  case REMOTE_WAIT:
  case REMOTE_EOF:  /* etcd did not say complete: the node may have more */
    resolve(c);
    break;
  case REMOTE_STREAM:  /* complete, and the stream still open after the grace */
    c->r_regrab = 1;
    wf_http_req_cancel(c->r_req);
    break;
  case REMOTE_DONE:
  case REMOTE_FAILED:
    c->remote_done(c, c->rstate == REMOTE_DONE);
    break;
  case REMOTE_OFF:
  case REMOTE_RESOLVE:
    break;
  }
}

void wf__remote_start(wf__ctl_t *c) {
  if (c->rstate != REMOTE_OFF || !c->remote_done || c->finishing) return;
  if (!c->r_timer_on) {
    uv_timer_init(&c->loop, &c->r_timer);
    c->r_timer.data = c;
    c->r_timer_on = 1;
    wf_backoff_init(&c->r_backoff, BACKOFF_BASE_MS, BACKOFF_MAX_MS);
  }
  /* tail.c never opened the file (an open file stays local). */
  c->r_off = 0;
  c->r_follow = c->remote_follow;
  resolve(c);
}

void wf__remote_step(wf__ctl_t *c, int complete) {
  if (!complete || c->r_complete) return;
  c->r_complete = 1;
  if (c->rstate == REMOTE_EOF) {
    timer_disarm(c);
    finish(c, 1);
  } else if (c->rstate == REMOTE_STREAM && c->r_follow) {
    timer_arm(c, END_GRACE_MS);
  }
}

void wf__remote_stop(wf__ctl_t *c) {
  wf__ctl_timer_stop(&c->r_timer, &c->r_timer_on);
  if (c->r_client) wf_http_client_close(c->r_client, NULL, NULL);
  c->r_client = NULL;
  c->r_req = NULL;
}
