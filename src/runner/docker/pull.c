/*
 * pull: POST /images/create?fromImage=...&tag=... and its progress
 * stream.
 *
 * Docker answers a pull in one of two ways.  An error it finds before it
 * starts (unknown manifest, registry unreachable, no credentials) is an HTTP
 * error status with {"message": ...}.  Otherwise it answers 200 at once and
 * streams newline-delimited JSON progress objects; an error that happens
 * later (a missing blob, a failed extraction) arrives as an object with
 * "errorDetail"/"error" inside that stream, and the HTTP response still ends
 * normally.  Both become WF_EHTTP with Docker's own text.
 *
 * The stream is split into lines in a fixed-size buffer (an over-long line
 * is skipped, never buffered whole).  Progress goes to the agent's log at
 * most once a second, plus the final "Status: ..." line, so a pull of a big
 * image does not flood the log with its hundreds of progress updates.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "wf/util.h"

#define LINE_MAX_BYTES (64 * 1024)
#define LOG_EVERY_MS 1000
#define MSG_MAX 1024

struct wf_docker_pull_s {
  wf_docker_t *d;
  wf_http_req_t *req;
  void (*cb)(int err, const char *msg, void *data);
  void *data;
  char *step;
  char *ref;
  int status;
  int overlong;         /* skipping the rest of a line longer than the buffer */
  uint64_t last_log_ms;
  size_t llen;
  char line[LINE_MAX_BYTES];
  char msg[MSG_MAX];    /* first error Docker reported in the stream */
  size_t elen;          /* error body (non-200) collected in line[] */
};

static void on_head(wf_http_req_t *req, int status, const wf_http_header_t *h, size_t nh,
                    void *data) {
  wf_docker_pull_t *p = data;
  (void)req;
  (void)h;
  (void)nh;
  p->status = status;
}

static void progress_line(wf_docker_pull_t *p, const char *s, size_t n) {
  json_t *o;
  const char *status, *id, *prog, *error;
  uint64_t now;

  if (n == 0) return;
  o = json_loadb(s, n, 0, NULL);
  if (!json_is_object(o)) {
    json_decref(o);
    return;
  }
  error = json_string_value(json_object_get(json_object_get(o, "errorDetail"), "message"));
  if (!error) error = json_string_value(json_object_get(o, "error"));
  if (error) {
    if (!p->msg[0]) snprintf(p->msg, sizeof p->msg, "%s", error);
    json_decref(o);
    return;
  }
  status = json_string_value(json_object_get(o, "status"));
  id = json_string_value(json_object_get(o, "id"));
  prog = json_string_value(json_object_get(o, "progress"));
  now = wf_mono_ms();
  if (status && strncmp(status, "Status:", 7) == 0) {
    wf_info(p->step, "pull %s: %s", p->ref, status);
  } else if (status && now - p->last_log_ms >= LOG_EVERY_MS) {
    p->last_log_ms = now;
    wf_info(p->step, "pull %s: %s%s%s%s%s", p->ref, status, id ? " " : "", id ? id : "",
            prog ? " " : "", prog ? prog : "");
  }
  json_decref(o);
}

static void on_data(wf_http_req_t *req, const char *s, size_t n, void *data) {
  wf_docker_pull_t *p = data;
  (void)req;
  if (p->status != 200) {
    /* An error answer: keep its start for the message. */
    size_t k = n < sizeof p->line - 1 - p->elen ? n : sizeof p->line - 1 - p->elen;
    memcpy(p->line + p->elen, s, k);
    p->elen += k;
    return;
  }
  while (n > 0) {
    const char *nl = memchr(s, '\n', n);
    size_t k = nl ? (size_t)(nl - s) : n;
    if (!p->overlong) {
      if (p->llen + k > sizeof p->line) {
        p->overlong = 1;
        p->llen = 0;
      } else {
        memcpy(p->line + p->llen, s, k);
        p->llen += k;
      }
    }
    if (!nl) break;
    if (!p->overlong) progress_line(p, p->line, p->llen);
    p->overlong = 0;
    p->llen = 0;
    s = nl + 1;
    n -= k + 1;
  }
}

static void on_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                    void *data) {
  wf_docker_pull_t *p = data;
  char msg[MSG_MAX];
  (void)req;
  (void)body;
  (void)len;

  if (err == 0 && status == 200 && p->llen > 0 && !p->overlong)
    progress_line(p, p->line, p->llen); /* a last line without its newline */
  if (err) {
    if (wf_docker_err_unreachable(err)) wf_docker_note_down(p->d, err);
    snprintf(msg, sizeof msg, "%s", err <= WF_EPROTO ? wf_strerror(err) : uv_strerror(err));
  } else if (status != 200) {
    wf_docker_errmsg(status, p->line, p->elen, msg, sizeof msg);
    err = WF_EHTTP;
  } else if (p->msg[0]) {
    snprintf(msg, sizeof msg, "%s", p->msg);
    err = WF_EHTTP;
  } else {
    msg[0] = '\0';
  }
  if (err && err != UV_ECANCELED) wf_debug(p->step, "pull %s failed: %s", p->ref, msg);
  p->cb(err, msg, p->data);
  free(p->step);
  free(p->ref);
  free(p);
}

wf_docker_pull_t *wf_docker_pull(wf_docker_t *d, const wf_docker_pull_opts_t *o,
                                 void (*cb)(int err, const char *msg, void *data), void *data) {
  char img[1024], tag[400], path[1600];
  wf_http_header_t hdr[1];
  wf_http_req_opts_t ro;
  wf_http_cbs_t cbs;
  wf_docker_pull_t *p;

  if (!d || !o || !o->image || !cb) return NULL;
  if (wf_docker_urlenc(o->image, img, sizeof img) < 0 ||
      wf_docker_urlenc(o->tag ? o->tag : "", tag, sizeof tag) < 0)
    return NULL;
  if (tag[0])
    snprintf(path, sizeof path, "/v" WF_DOCKER_API "/images/create?fromImage=%s&tag=%s", img, tag);
  else
    snprintf(path, sizeof path, "/v" WF_DOCKER_API "/images/create?fromImage=%s", img);
  memset(&ro, 0, sizeof ro);
  memset(&cbs, 0, sizeof cbs);
  ro.method = "POST";
  ro.path = path;
  ro.stream = 1;
  /* A registry that stops sending gets cut; the caller's deadline covers
   * one that trickles. */
  ro.timeout_ms = 5 * 60 * 1000;
  if (o->auth) {
    hdr[0].name = "X-Registry-Auth";
    hdr[0].value = o->auth;
    ro.headers = hdr;
    ro.nheaders = 1;
  }
  cbs.on_head = on_head;
  cbs.on_data = on_data;
  cbs.on_done = on_done;
  p = wf_calloc(1, sizeof *p);
  p->d = d;
  p->cb = cb;
  p->data = data;
  p->step = o->log_step ? wf_strdup(o->log_step) : NULL;
  p->ref = wf_strdup(o->ref ? o->ref : o->image);
  p->last_log_ms = 0;
  wf_info(p->step, "pulling %s", p->ref);
  p->req = wf_http_request(wf_docker_http(d), &ro, &cbs, p);
  if (!p->req) {
    free(p->step);
    free(p->ref);
    free(p);
    return NULL;
  }
  return p;
}

/* Only before cb fired: the pull is freed right after it. */
void wf_docker_pull_cancel(wf_docker_pull_t *p) {
  if (p) wf_http_req_cancel(p->req);
}
