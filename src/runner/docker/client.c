/*
 * client: the Docker Engine API client behind client.h: one
 * connection pool to one dockerd, its reachability, and the few calls that
 * are not part of a run (list, remove, ping).
 *
 * Reachability is a small state machine driven by one timer:
 *
 *   probing --GET /version ok, API 1.41 inside [Min, Max]--> up (and the
 *             engine is known: dockerd or Podman, compat.c; for Podman
 *             GET /info first, whether it applies resource limits)
 *   probing --anything else--> down: probe again after a capped backoff
 *   up --a request fails with a transport error (wf_docker_note_down),
 *        or a health probe fails--> down, probe again at once
 *   up --every HEALTH_MS--> probe (so an idle agent notices a dead engine)
 *
 * Probes and pings use fresh connections: a dockerd that is shutting down
 * closes its listener but keeps serving the connections it already has, so
 * a pooled connection would say "still there" to the very end.
 *
 * Waiters (runs that need the engine) are a list fired when a probe
 * succeeds, or from a 0 ms timer when the engine is up already, so a
 * waiter's callback never runs inside wf_docker_when_up().
 *
 * Lifetime: wf_docker_close() cancels everything, fires the remaining
 * waiters with UV_ECANCELED from the notify timer, closes both timers and
 * the HTTP client; the struct is freed when all three report closed.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "wf/util.h"

#define PROBE_TIMEOUT_MS 10000
#define PING_TIMEOUT_MS 5000
#define HEALTH_MS 30000
#define BACKOFF_BASE_MS 250
#define BACKOFF_MAX_MS 5000
/* A list of thousands of containers is ~1.5 KiB each in JSON. */
#define LIST_MAX_BODY ((size_t)32 << 20)

struct wf_docker_waiter_s {
  wf_docker_t *d;
  wf_docker_waiter_t *prev, *next;
  void (*cb)(int err, void *data);
  void *data;
};

struct wf_docker_s {
  uv_loop_t *loop;
  char *host;
  wf_http_client_t *http;
  uv_timer_t timer;   /* next probe (backoff while down, health while up) */
  uv_timer_t notify;  /* fires waiters on a later iteration */
  wf_backoff_t backoff;
  wf_http_req_t *probe;
  int up;
  int ever_up;
  enum wf_docker_engine engine; /* who answered the last successful probe */
  wf_docker_version_t pending;  /* Podman's /version while its /info is asked */
  int limits_ignored;           /* rootless Podman on cgroup v1 (GET /info) */
  int down_logged;    /* the current outage was logged at warn level */
  char last_error[256];
  wf_docker_waiter_t waiters; /* list head */

  int closing;
  int open_handles;
  int http_closed;
  void (*close_cb)(void *data);
  void *close_data;
};

static void start_probe(wf_docker_t *d);
static void start_info(wf_docker_t *d);
static void mark_up(wf_docker_t *d, const wf_docker_version_t *v, int limits_ignored);

/* ---- waiters -------------------------------------------------------------------- */
static void waiter_unlink(wf_docker_waiter_t *w) {
  w->prev->next = w->next;
  w->next->prev = w->prev;
  w->prev = w->next = w;
}

/* Fires every waiter that was queued when this started with err. */
static void fire_waiters(wf_docker_t *d, int err) {
  wf_docker_waiter_t batch;
  batch.prev = batch.next = &batch;
  if (d->waiters.next == &d->waiters) return;
  /* Move the list to a local head: callbacks may add waiters (they wait for
   * the next event) or cancel others (they unlink from the batch). */
  batch.next = d->waiters.next;
  batch.prev = d->waiters.prev;
  batch.next->prev = &batch;
  batch.prev->next = &batch;
  d->waiters.next = d->waiters.prev = &d->waiters;
  while (batch.next != &batch) {
    wf_docker_waiter_t *w = batch.next;
    waiter_unlink(w);
    w->cb(err, w->data);
    free(w);
  }
}

static void on_notify(uv_timer_t *t) {
  wf_docker_t *d = t->data;
  if (d->closing) {
    fire_waiters(d, UV_ECANCELED);
    return;
  }
  if (d->up) fire_waiters(d, 0);
}

wf_docker_waiter_t *wf_docker_when_up(wf_docker_t *d, void (*cb)(int err, void *data),
                                      void *data) {
  wf_docker_waiter_t *w;
  if (!d || !cb) return NULL;
  w = wf_calloc(1, sizeof *w);
  w->d = d;
  w->cb = cb;
  w->data = data;
  w->prev = d->waiters.prev;
  w->next = &d->waiters;
  d->waiters.prev->next = w;
  d->waiters.prev = w;
  if (d->up || d->closing) uv_timer_start(&d->notify, on_notify, 0, 0);
  return w;
}

void wf_docker_waiter_cancel(wf_docker_waiter_t *w) {
  if (!w) return;
  waiter_unlink(w);
  free(w);
}

/* ---- reachability ----------------------------------------------------------------- */
int wf_docker_err_unreachable(int err) {
  return err == UV_ENOENT || err == UV_ECONNREFUSED || err == UV_ECONNRESET || err == UV_EOF ||
         err == UV_EPIPE || err == UV_ETIMEDOUT || err == UV_ECONNABORTED ||
         err == UV_ENOTCONN || err == UV_EACCES;
}

static const char *errtext(int err) {
  return err <= WF_EPROTO ? wf_strerror(err) : uv_strerror(err);
}

static void on_timer(uv_timer_t *t) {
  wf_docker_t *d = t->data;
  if (!d->closing && !d->probe) start_probe(d);
}

static void went_down(wf_docker_t *d, const char *why) {
  uint64_t delay;
  int changed = strcmp(d->last_error, why) != 0;
  snprintf(d->last_error, sizeof d->last_error, "%s", why);
  if (d->up || !d->down_logged || changed) {
    wf_warn(NULL, "docker engine at %s %s: %s; retrying in the background", d->host,
            d->up ? "went away" : "unreachable", why);
    d->down_logged = 1;
  } else {
    wf_debug(NULL, "docker engine at %s still unreachable: %s", d->host, why);
  }
  d->up = 0;
  delay = wf_backoff_next(&d->backoff);
  uv_timer_start(&d->timer, on_timer, delay, 0);
}

static void on_probe_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                          void *data) {
  wf_docker_t *d = data;
  wf_docker_version_t v;
  char why[256];
  (void)req;

  d->probe = NULL;
  if (d->closing) return;
  if (err) {
    snprintf(why, sizeof why, "GET /version: %s", errtext(err));
    went_down(d, why);
    return;
  }
  if (status != 200) {
    char msg[200];
    wf_docker_errmsg(status, body, len, msg, sizeof msg);
    snprintf(why, sizeof why, "GET /version: HTTP %d: %s", status, msg);
    went_down(d, why);
    return;
  }
  if (wf_docker_version_parse(body, len, &v, why, sizeof why) < 0) {
    went_down(d, why);
    return;
  }
  if (v.engine == WF_DOCKER_ENGINE_PODMAN) {
    /* Rootless Podman on cgroup v1 drops every resource limit without a
     * word: GET /info tells, before any run may use the engine. */
    d->pending = v;
    start_info(d);
    return;
  }
  mark_up(d, &v, 0);
}

static void mark_up(wf_docker_t *d, const wf_docker_version_t *v, int limits_ignored) {
  if (!d->up || v->engine != d->engine || limits_ignored != d->limits_ignored) {
    wf_info(NULL, "docker engine at %s: %s %s, API %s%s (using %s)", d->host,
            wf_docker_engine_name(v->engine), v->version[0] ? v->version : "?", v->api,
            v->api_assumed ? " (assumed: Podman 4 names none)" : "", WF_DOCKER_API);
    if (limits_ignored)
      wf_warn(NULL, "docker engine at %s: rootless Podman on cgroup v1 applies no resource "
              "limits: steps with CONTAINER_MEMORY or CONTAINER_CPUS fail", d->host);
  }
  d->engine = v->engine;
  d->limits_ignored = limits_ignored;
  d->up = d->ever_up = 1;
  d->down_logged = 0;
  d->last_error[0] = '\0';
  wf_backoff_reset(&d->backoff);
  uv_timer_start(&d->timer, on_timer, HEALTH_MS, 0);
  /* The timer keeps the loop alive only while something waits. */
  fire_waiters(d, 0);
}

static void on_info_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                         void *data) {
  wf_docker_t *d = data;
  char why[256];
  (void)req;

  d->probe = NULL;
  if (d->closing) return;
  if (err) {
    snprintf(why, sizeof why, "GET /info: %s", errtext(err));
    went_down(d, why);
    return;
  }
  if (status != 200) {
    /* The engine answers; only what it would do with limits is unknown. */
    wf_warn(NULL, "docker engine at %s: GET /info: HTTP %d; assuming resource limits hold",
            d->host, status);
    mark_up(d, &d->pending, 0);
    return;
  }
  mark_up(d, &d->pending, wf_docker_podman_limits_ignored(body, len));
}

static void start_info(wf_docker_t *d) {
  wf_http_req_opts_t o;
  wf_http_cbs_t cbs;
  memset(&o, 0, sizeof o);
  memset(&cbs, 0, sizeof cbs);
  o.method = "GET";
  o.path = "/v" WF_DOCKER_API "/info";
  o.timeout_ms = PROBE_TIMEOUT_MS;
  o.max_body = 1 << 20;
  o.fresh = 1;
  cbs.on_done = on_info_done;
  d->probe = wf_http_request(d->http, &o, &cbs, d);
}

static void start_probe(wf_docker_t *d) {
  wf_http_req_opts_t o;
  wf_http_cbs_t cbs;
  memset(&o, 0, sizeof o);
  memset(&cbs, 0, sizeof cbs);
  o.method = "GET";
  o.path = "/version";  /* unversioned: an older engine still says what it speaks */
  o.timeout_ms = PROBE_TIMEOUT_MS;
  o.max_body = 64 << 10;
  o.fresh = 1;
  cbs.on_done = on_probe_done;
  uv_timer_stop(&d->timer);
  d->probe = wf_http_request(d->http, &o, &cbs, d);
}

void wf_docker_note_down(wf_docker_t *d, int err) {
  char why[256];
  if (!d || d->closing) return;
  snprintf(why, sizeof why, "%s", errtext(err));
  if (d->up) {
    wf_warn(NULL, "docker engine at %s went away: %s; probing it again", d->host, why);
    d->down_logged = 1;
    snprintf(d->last_error, sizeof d->last_error, "%s", why);
    d->up = 0;
    wf_backoff_reset(&d->backoff);
  }
  if (!d->probe) start_probe(d);
}

int wf_docker_reachable(const wf_docker_t *d) { return d && d->up; }
enum wf_docker_engine wf_docker_engine(const wf_docker_t *d) {
  return d ? d->engine : WF_DOCKER_ENGINE_DOCKER;
}
int wf_docker_limits_ignored(const wf_docker_t *d) { return d && d->limits_ignored; }
const char *wf_docker_host(const wf_docker_t *d) { return d ? d->host : ""; }
const char *wf_docker_last_error(const wf_docker_t *d) {
  if (!d) return "";
  if (!d->up && !d->last_error[0]) return "not probed yet";
  return d->last_error;
}
wf_http_client_t *wf_docker_http(wf_docker_t *d) { return d ? d->http : NULL; }

/* ---- ping --------------------------------------------------------------------------- */
typedef struct cbctx_s {
  wf_docker_t *d;
  void (*cb)(int err, void *data);
  void *data;
  wf_docker_list_cb list_cb;
  char *id;
} cbctx_t;

/* One buffered request on the engine's client whose answer goes to on_done
 * with x (a cbctx_t it then owns and frees).  Returns the request, or NULL
 * (x and x->id freed) when the client refused it. */
static wf_http_req_t *send_simple(wf_docker_t *d, const char *method, const char *path,
                                  uint64_t timeout_ms, size_t max_body, int fresh,
                                  void (*on_done)(wf_http_req_t *, int, int, const char *,
                                                  size_t, void *),
                                  cbctx_t *x) {
  wf_http_req_opts_t o;
  wf_http_cbs_t cbs;
  memset(&o, 0, sizeof o);
  memset(&cbs, 0, sizeof cbs);
  o.method = method;
  o.path = path;
  o.timeout_ms = timeout_ms;
  o.max_body = max_body;
  o.fresh = fresh;
  cbs.on_done = on_done;
  wf_http_req_t *req = wf_http_request(d->http, &o, &cbs, x);
  if (!req) {
    free(x->id);
    free(x);
  }
  return req;
}

static cbctx_t *cbctx_new(wf_docker_t *d, void (*cb)(int err, void *data), void *data) {
  cbctx_t *x = wf_calloc(1, sizeof *x);
  x->d = d;
  x->cb = cb;
  x->data = data;
  return x;
}

static void on_ping_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                         void *data) {
  cbctx_t *x = data;
  (void)req;
  (void)body;
  (void)len;
  if (err && wf_docker_err_unreachable(err)) wf_docker_note_down(x->d, err);
  if (!err && status != 200) err = WF_EHTTP;
  x->cb(err, x->data);
  free(x);
}

wf_http_req_t *wf_docker_ping(wf_docker_t *d, void (*cb)(int err, void *data), void *data) {
  if (!d || d->closing || !cb) return NULL;
  return send_simple(d, "GET", "/_ping", PING_TIMEOUT_MS, 4096, 1, on_ping_done,
                     cbctx_new(d, cb, data));
}

/* ---- list ----------------------------------------------------------------------------- */
/* "Exited (3) 5 seconds ago" -> 3; the list has no exit code field. */
static int exit_from_status(const char *s) {
  const char *p = s ? strstr(s, "Exited (") : NULL;
  char *end;
  long v;
  if (!p) return -1;
  v = strtol(p + 8, &end, 10);
  return *end == ')' ? (int)v : -1;
}

static void on_list_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                         void *data) {
  cbctx_t *x = data;
  json_t *root = NULL;
  wf_docker_container_t *v = NULL;
  size_t n = 0, i;
  (void)req;

  if (err) {
    if (wf_docker_err_unreachable(err)) wf_docker_note_down(x->d, err);
    x->list_cb(err, NULL, 0, x->data);
    goto out;
  }
  if (status != 200) {
    char msg[256];
    wf_docker_errmsg(status, body, len, msg, sizeof msg);
    wf_warn(NULL, "docker: listing containers: %s", msg);
    x->list_cb(WF_EHTTP, NULL, 0, x->data);
    goto out;
  }
  root = json_loadb(body, len, 0, NULL);
  if (!json_is_array(root)) {
    x->list_cb(WF_EPROTO, NULL, 0, x->data);
    goto out;
  }
  v = wf_calloc(json_array_size(root) + 1, sizeof *v);
  for (i = 0; i < json_array_size(root); i++) {
    json_t *c = json_array_get(root, i);
    const char *id = json_string_value(json_object_get(c, "Id"));
    const char *state = json_string_value(json_object_get(c, "State"));
    const char *step =
        json_string_value(json_object_get(json_object_get(c, "Labels"), "workflow.step"));
    if (!id) continue;
    v[n].id = id;
    v[n].step_key = step ? step : "";
    v[n].state = state ? state : "";
    v[n].running = state && (strcmp(state, "running") == 0 || strcmp(state, "paused") == 0 ||
                             strcmp(state, "restarting") == 0);
    v[n].exit_code = exit_from_status(json_string_value(json_object_get(c, "Status")));
    n++;
  }
  x->list_cb(0, v, n, x->data);
out:
  free(v);
  json_decref(root);
  free(x);
}

int wf_docker_list(wf_docker_t *d, const char *node, wf_docker_list_cb cb, void *data) {
  char label[1024], filt[1200], enc[4000], path[4200];
  json_t *f;
  char *ftext;
  cbctx_t *x;
  int n;

  if (!d || d->closing || !node || !*node || !cb) return UV_EINVAL;
  n = snprintf(label, sizeof label, "workflow.node=%s", node);
  if (n < 0 || (size_t)n >= sizeof label) return UV_EINVAL;
  f = json_pack("{s:[s]}", "label", label);
  ftext = f ? json_dumps(f, JSON_COMPACT) : NULL;
  json_decref(f);
  if (!ftext) return UV_EINVAL;
  n = snprintf(filt, sizeof filt, "%s", ftext);
  free(ftext);
  if (n < 0 || (size_t)n >= sizeof filt || wf_docker_urlenc(filt, enc, sizeof enc) < 0)
    return UV_EINVAL;
  snprintf(path, sizeof path, "/v" WF_DOCKER_API "/containers/json?all=1&filters=%s", enc);

  x = cbctx_new(d, NULL, data);
  x->list_cb = cb;
  return send_simple(d, "GET", path, 60000, LIST_MAX_BODY, 0, on_list_done, x) ? 0 : UV_EINVAL;
}

/* ---- remove --------------------------------------------------------------------------- */
static void on_remove_done(wf_http_req_t *req, int err, int status, const char *body, size_t len,
                           void *data) {
  cbctx_t *x = data;
  (void)req;
  if (err) {
    if (wf_docker_err_unreachable(err)) wf_docker_note_down(x->d, err);
    wf_warn(NULL, "docker: removing container %.12s: %s", x->id, errtext(err));
  } else if (status == 404) {
    err = 0; /* gone already: what the caller wanted */
  } else if (status >= 300) {
    char msg[256];
    wf_docker_errmsg(status, body, len, msg, sizeof msg);
    wf_warn(NULL, "docker: removing container %.12s: %s", x->id, msg);
    err = WF_EHTTP;
  }
  if (x->cb) x->cb(err, x->data);
  free(x->id);
  free(x);
}

int wf_docker_remove(wf_docker_t *d, const char *id, void (*cb)(int err, void *data),
                     void *data) {
  char enc[512], path[600];
  cbctx_t *x;

  if (!d || d->closing || !id || !*id || wf_docker_urlenc(id, enc, sizeof enc) < 0)
    return UV_EINVAL;
  snprintf(path, sizeof path, "/v" WF_DOCKER_API "/containers/%s?force=1&v=1", enc);
  x = cbctx_new(d, cb, data);
  x->id = wf_strdup(id);
  return send_simple(d, "DELETE", path, 60000, 64 << 10, 0, on_remove_done, x) ? 0 : UV_EINVAL;
}

/* ---- lifetime ------------------------------------------------------------------------- */
wf_docker_t *wf_docker_create(uv_loop_t *loop, const char *host) {
  wf_docker_t *d;
  char *origin;
  wf_http_client_opts_t ho;

  if (!loop || !host) return NULL;
  if (strncmp(host, "unix://", 7) == 0)
    origin = wf_strdup(host);
  else if (strncmp(host, "tcp://", 6) == 0)
    origin = wf_asprintf("http://%s", host + 6);
  else
    return NULL;
  memset(&ho, 0, sizeof ho);
  /* Every running step holds two connections (output, wait) and a few
   * short calls come and go around them. */
  ho.max_idle = 8;
  d = wf_calloc(1, sizeof *d);
  d->http = wf_http_client_create(loop, origin, &ho);
  free(origin);
  if (!d->http) {
    free(d);
    return NULL;
  }
  d->loop = loop;
  d->host = wf_strdup(host);
  d->waiters.prev = d->waiters.next = &d->waiters;
  wf_backoff_init(&d->backoff, BACKOFF_BASE_MS, BACKOFF_MAX_MS);
  uv_timer_init(loop, &d->timer);
  uv_timer_init(loop, &d->notify);
  d->timer.data = d->notify.data = d;
  d->open_handles = 2;
  /* The health probe alone must not keep the loop alive. */
  uv_unref((uv_handle_t *)&d->timer);
  start_probe(d);
  return d;
}

static void maybe_free(wf_docker_t *d) {
  void (*cb)(void *);
  void *data;
  if (d->open_handles > 0 || !d->http_closed) return;
  cb = d->close_cb;
  data = d->close_data;
  free(d->host);
  free(d);
  if (cb) cb(data);
}

static void on_handle_closed(uv_handle_t *h) {
  wf_docker_t *d = h->data;
  d->open_handles--;
  maybe_free(d);
}

static void on_http_closed(void *data) {
  wf_docker_t *d = data;
  d->http_closed = 1;
  maybe_free(d);
}

static void on_close_notify(uv_timer_t *t) {
  wf_docker_t *d = t->data;
  fire_waiters(d, UV_ECANCELED);
  uv_close((uv_handle_t *)&d->timer, on_handle_closed);
  uv_close((uv_handle_t *)&d->notify, on_handle_closed);
  wf_http_client_close(d->http, on_http_closed, d);
}

void wf_docker_close(wf_docker_t *d, void (*cb)(void *data), void *data) {
  if (!d || d->closing) return;
  d->closing = 1;
  d->close_cb = cb;
  d->close_data = data;
  uv_timer_stop(&d->timer);
  /* Waiters hear UV_ECANCELED on the next iteration, then everything closes. */
  uv_timer_start(&d->notify, on_close_notify, 0, 0);
}
