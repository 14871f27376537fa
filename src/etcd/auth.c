/*
 * auth: etcd user/password authentication for the client (etcd.h).
 *
 * etcd's gateway takes a token in the `Authorization` header; the token comes
 * from POST /v3/auth/authenticate {"name","password"} -> {"token"}.  A
 * "simple" token lives in the member's memory only: it expires after
 * --auth-token-ttl seconds without use and dies with the process, so any
 * call may be refused with "invalid auth token" (gRPC Unauthenticated, HTTP
 * 401) at any time.  The client therefore holds at most one token, lets every
 * request that finds none wait for a single authenticate in flight (a burst
 * of calls after an expiry costs one bcrypt on etcd, not one each), and
 * resends a refused call once after getting a new token (etcd.c, watch.c).
 *
 * The password is copied once when the client is created and wiped before it
 * is freed; the request body that carries it is built here, not with jansson,
 * so that no copy outlives its request unwiped.  Log lines and
 * wf_etcd_errmsg() name the user, never the password.
 */
#include "etcd-internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Repeat a failure at warn level at most this often (a wrong password makes
 * every caller's retry fail again). */
#define AUTH_WARN_EVERY_MS 60000

int wf__etcd_auth_needed(const wf_etcd_t *e) { return e->user != NULL && e->token == NULL; }

int wf__etcd_auth_rejected(int status, int grpc_code, const char *msg) {
  if (status == 401 || grpc_code == 16) return 1;
  /* A watch reports it as its cancel_reason text; "user name is empty" is
   * what etcd says to a request with no token once auth got enabled. */
  return msg && (strstr(msg, "invalid auth token") || strstr(msg, "Unauthenticated") ||
                 strstr(msg, "user name is empty"));
}

void wf__etcd_auth_invalidate(wf_etcd_t *e, unsigned gen) {
  if (!e->token || gen != e->token_gen) return;  /* a newer token is already held */
  wf_debug(NULL, "etcd: the auth token was refused (expired or etcd restarted); "
           "authenticating as %s again", e->user);
  wf__etcd_wipe_free(e->token);
  e->token = NULL;
}

static void auth_done(wf_etcd_t *e, int err, char *token) {
  e->auth_inflight = 0;
  if (err == WF_EETCD && strstr(e->errmsg, "authentication is not enabled")) {
    /* etcd runs without auth: go on without a token ("" sends none).  If
     * auth gets enabled later, "user name is empty" brings us back here. */
    wf_warn(NULL, "etcd: authentication is not enabled on %s; ignoring the credentials of %s",
            wf_etcd_endpoint(e), e->user);
    token = wf_strdup("");
    err = 0;
  }
  if (err == 0) {
    if (e->auth_failing || e->token_gen == 0)
      wf_info(NULL, "etcd: authenticated as %s", e->user);
    else
      wf_debug(NULL, "etcd: authenticated as %s (new token)", e->user);
    wf__etcd_wipe_free(e->token);
    e->token = token;
    e->token_gen++;
    e->auth_failing = 0;
  } else if (err != UV_ECANCELED) {
    /* Bigger than errmsg so that the compiler sees room; set_errmsg cuts. */
    char msg[WF__ETCD_ERRMSG_LEN + 256];
    int peer = err == WF_EETCD || err == WF_EHTTP;
    snprintf(msg, sizeof msg, "etcd authentication as %.200s failed: %s", e->user,
             peer ? e->errmsg : wf_strerror(err));
    wf__etcd_set_errmsg(e, msg);
    uint64_t now = wf_mono_ms();
    int loud = !e->auth_failing || now - e->auth_warned_ms >= AUTH_WARN_EVERY_MS;
    if (loud) e->auth_warned_ms = now;
    wf_log(loud ? WF_LOG_WARN : WF_LOG_DEBUG, NULL, "%s; will retry", msg);
    e->auth_failing = 1;
  }
  /* Detach the list first: a waiter's callback may queue a new waiter (a
   * caller retrying at once), which belongs to the next round. */
  wf__etcd_auth_waiter_t *wt = e->auth_waiters;
  e->auth_waiters = NULL;
  e->auth_tail = &e->auth_waiters;
  while (wt) {
    /* Read next first: the callback may free its waiter (and, once nothing
     * is left, the client; then no waiter follows). */
    wf__etcd_auth_waiter_t *next = wt->next;
    wt->next = NULL;
    wt->cb(wt, err);
    wt = next;
  }
}

int wf__etcd_auth_wait(wf_etcd_t *e, wf__etcd_auth_waiter_t *wt) {
  if (!e->auth_inflight) {
    int r = wf__etcd_authenticate(e, auth_done);
    if (r != 0) return r;
    e->auth_inflight = 1;
  }
  wt->next = NULL;
  *e->auth_tail = wt;
  e->auth_tail = &wt->next;
  return 0;
}

void wf__etcd_wipe_free(char *s) {
  if (!s) return;
  /* volatile: a plain memset before free is a dead store the compiler may
   * drop. */
  for (volatile char *p = s; *p; p++) *p = 0;
  free(s);
}

void wf__etcd_auth_free(wf_etcd_t *e) {
  free(e->user);
  wf__etcd_wipe_free(e->password);
  wf__etcd_wipe_free(e->token);
  e->user = e->password = e->token = NULL;
}

/* Appends s as a JSON string body (quotes included). */
static void json_str(wf_buf_t *b, const char *s) {
  wf_buf_append(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*p;
      wf_buf_append(b, esc, 2);
    } else if (*p < 0x20 || *p == 0x7f) {
      snprintf(esc, sizeof esc, "\\u%04x", *p);
      wf_buf_append(b, esc, 6);
    } else {
      wf_buf_append(b, p, 1);
    }
  }
  wf_buf_append(b, "\"", 1);
}

char *wf__etcd_req_auth(const char *user, const char *password, size_t *len) {
  /* Sized up front so the buffer never grows: a realloc would leave a copy
   * of the password behind in freed memory. */
  size_t cap = 32 + 6 * (strlen(user) + strlen(password));
  wf_buf_t b;
  wf_buf_init(&b, cap);
  b.data = wf_malloc(cap);
  b.cap = cap;
  b.data[0] = '\0';
  wf_buf_append(&b, "{\"name\":", 8);
  json_str(&b, user);
  wf_buf_append(&b, ",\"password\":", 12);
  json_str(&b, password);
  wf_buf_append(&b, "}", 1);
  *len = b.len;
  return b.data;
}

size_t wf__etcd_auth_headers(const wf_etcd_t *e, wf_http_header_t hdrs[2], int with_token,
                             unsigned *gen) {
  hdrs[0].name = "Content-Type";
  hdrs[0].value = "application/json";
  hdrs[1].name = "Authorization";
  hdrs[1].value = "";
  *gen = e->token_gen;
  if (!with_token || !e->token || !e->token[0]) return 1;
  hdrs[1].value = e->token;
  return 2;
}
