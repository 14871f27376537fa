/*
 * client: the Docker Engine API (1.41) client the DOCKER runner is built on,
 * private to src/runner/docker/ (and its tests).
 *
 * One wf_docker_t per engine address.  It talks to dockerd over our own
 * HTTP/1.1 client (wf/http.h), never through the docker CLI.  It probes the
 * engine with GET /version at start-up and whenever a request finds it gone,
 * with capped backoff, and tells waiters when it answers again; it never
 * treats an unreachable engine as fatal.  Around it: the demultiplexer of
 * Docker's 8-byte framed output streams (demux.c), image pulls with their
 * progress stream (pull.c), listing and removing containers (client.c), and
 * small pure helpers: error bodies, image references, registry auth
 * (helpers.c).
 *
 * Callbacks never fire from inside the call that starts an operation: always
 * on a later loop iteration.  Strings handed in are copied unless a comment
 * says otherwise.
 */
#ifndef WF_DOCKER_CLIENT_H
#define WF_DOCKER_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "wf/http.h"
#include "wf/util.h"

/* The API version every path carries ("/v1.41/...") and the lowest engine
 * maximum we accept. */
#define WF_DOCKER_API "1.41"

/* ---- frame demultiplexer ----------------------------------------------------
 * Attach and logs streams (Tty off) carry frames: an 8-byte header
 * [stream, 0, 0, 0, size as big-endian uint32] and size payload bytes, with
 * stream 0 stdin, 1 stdout, 2 stderr, 3 an engine error.  Frames split or merge
 * freely across reads; the demuxer keeps only the header bytes it has seen and
 * the payload still owed, so it needs no buffer of its own. */
typedef struct wf_docker_demux_s {
  unsigned char hdr[8];
  unsigned hlen;   /* header bytes collected so far (0..7) */
  uint32_t left;   /* payload bytes of the current frame not yet seen */
  int stream;      /* the current frame's stream */
  uint64_t frames; /* frames whose header was complete */
} wf_docker_demux_t;

/* Payload piece of `stream` (valid during the call only). */
typedef void (*wf_docker_demux_cb)(int stream, const char *p, size_t n, void *data);

void wf_docker_demux_init(wf_docker_demux_t *d);
/* Feeds n bytes, calling cb for every payload piece in order (pieces of one
 * frame may come in several calls).  Returns 0, or WF_EPROTO at a header that
 * is not a frame header (stream > 3 or non-zero padding); the demuxer is then
 * stuck and every later call returns WF_EPROTO. */
int wf_docker_demux_feed(wf_docker_demux_t *d, const char *p, size_t n, wf_docker_demux_cb cb,
                         void *data);
/* 1 if the bytes fed so far end exactly at a frame boundary (a stream that
 * ends elsewhere was cut short). */
int wf_docker_demux_at_boundary(const wf_docker_demux_t *d);

/* ---- helpers (pure) -------------------------------------------------------- */
/* Docker's reason for a non-2xx answer: the "message" of its JSON body, else
 * the body itself (trimmed, bounded), else "HTTP <status>".  Always writes a
 * NUL-terminated string into out. */
void wf_docker_errmsg(int status, const char *body, size_t len, char *out, size_t outlen);

/* Percent-encodes s for a query string into out.  Returns 0 or
 * UV_ENAMETOOLONG when it does not fit. */
int wf_docker_urlenc(const char *s, char *out, size_t outlen);

/* Image reference parts, from the IMAGE_URL and IMAGE_VERSION runner params
 * (version may be NULL or empty; "sha256:..." versions are digests).
 *   ref:  what containers/create gets ("url", "url:version" or "url@digest");
 *   tag:  the pull's tag parameter: the version, "latest" when the url has
 *         neither tag nor digest (an empty tag would pull every tag), or ""
 *         when the url carries its own;
 *   registry: the registry host ("127.0.0.1:5000", or "docker.io").
 * Returns 0, UV_EINVAL for an empty url, UV_ENAMETOOLONG. */
typedef struct wf_docker_image_s {
  char ref[512];
  char tag[160];
  char registry[256];
} wf_docker_image_t;
int wf_docker_image_parse(const char *url, const char *version, wf_docker_image_t *out);

/* The X-Registry-Auth value for IMAGE_PULL_SECRET: "user:password" becomes
 * {"username","password","serveraddress"} JSON; anything else must be base64
 * (standard or URL alphabet, padded or not) of a JSON object, passed on in the
 * URL alphabet Docker decodes.  Returns a malloc'd string, or NULL with err
 * filled (the secret itself is never quoted in err). */
char *wf_docker_auth_header(const char *secret, const char *registry, char *err, size_t errlen);

/* Parses CONTAINER_MEMORY: bytes, or a number with k/m/g/t (binary units,
 * optional "b"/"ib", any case), e.g. "512m", "1g", "8388608".  0 or -1. */
int wf_docker_parse_bytes(const char *s, int64_t *out);
/* Parses CONTAINER_CPUS ("1", "0.5", "2.25") into NanoCpus.  0 or -1. */
int wf_docker_parse_cpus(const char *s, int64_t *nano);

/* ---- engines (compat.c, pure) -------------------------------------------------
 * `podman system service` serves the same API as dockerd on a unix socket.
 * The client tells the two apart by GET /version; the runner handles each
 * place where Podman answers differently (docs/docker.md, "Podman"). */
enum wf_docker_engine { WF_DOCKER_ENGINE_DOCKER, WF_DOCKER_ENGINE_PODMAN };

typedef struct wf_docker_version_s {
  enum wf_docker_engine engine; /* Podman: Components[].Name "Podman Engine" */
  char version[64];             /* the engine's own version ("26.1.5", "4.3.1") */
  char api[16];                 /* the Docker API version it serves at most */
  char min_api[16];             /* ... at least ("" when not said) */
  int api_assumed;              /* api was not in the answer: from Podman's version */
} wf_docker_version_t;

/* Reads a GET /version answer into v.  Returns 0 when the engine serves
 * WF_DOCKER_API, else -1 with why filled (v as far as it was read). */
int wf_docker_version_parse(const char *body, size_t len, wf_docker_version_t *v, char *why,
                            size_t whylen);
/* "Docker" or "Podman", for log lines and messages. */
const char *wf_docker_engine_name(enum wf_docker_engine e);
/* Compares "1.41"-style API versions numerically: <0, 0, >0. */
int wf_docker_api_cmp(const char *a, const char *b);
/* 1 when a create's error answer (status, message) says the name is taken:
 * dockerd answers 409, Podman 500 "... is already in use ...". */
int wf_docker_name_conflict(int status, const char *msg);
/* 1 when a create's error answer says the image is not there: 404 "No such
 * image" from dockerd, "no such image" from Podman. */
int wf_docker_image_missing(int status, const char *msg);
/* A start that Podman refused leaves the container "created" with ExitCode
 * 0.  From the error body's "cause": 127 for a command that was not found,
 * 126 for one that may not be executed (what `podman run` and a shell
 * say), else -1. */
int wf_docker_podman_start_exit(const char *body, size_t len);
/* From a GET /info answer: 1 when Podman runs rootless ("Rootless": true,
 * or SecurityOptions "name=rootless") on cgroup v1 (CgroupVersion "1"),
 * where it drops memory and CPU limits without an error or a warning; else
 * 0. */
int wf_docker_podman_limits_ignored(const char *body, size_t len);

/* ---- engine client ----------------------------------------------------------- */
typedef struct wf_docker_s wf_docker_t;

/* Creates the client for host ("unix:///path", or "tcp://host:port" for an
 * engine on plain TCP) and starts probing it at once.  Returns NULL for a
 * host it cannot parse.  Log lines about the engine go to the agent log. */
wf_docker_t *wf_docker_create(uv_loop_t *loop, const char *host);

/* 1 when the last probe or request found the engine answering with a usable
 * API version. */
int wf_docker_reachable(const wf_docker_t *d);
/* Which engine answered the last successful probe (Docker until one did). */
enum wf_docker_engine wf_docker_engine(const wf_docker_t *d);
/* 1 when the engine would run a container without its resource limits
 * (rootless Podman on cgroup v1), as its GET /info said at the last probe. */
int wf_docker_limits_ignored(const wf_docker_t *d);
/* The host string as given, and why the engine is unreachable ("" if it is
 * not); both borrowed, the latter valid until the next loop iteration. */
const char *wf_docker_host(const wf_docker_t *d);
const char *wf_docker_last_error(const wf_docker_t *d);

/* The HTTP client to send requests on (borrowed; paths carry "/v" WF_DOCKER_API). */
wf_http_client_t *wf_docker_http(wf_docker_t *d);

/* A request found the engine gone (connect refused, socket missing, cut
 * connection): mark it unreachable and probe again now.  err is logged. */
void wf_docker_note_down(wf_docker_t *d, int err);
/* 1 for the transport errors that mean "no engine at that address". */
int wf_docker_err_unreachable(int err);

typedef struct wf_docker_waiter_s wf_docker_waiter_t;
/* Calls cb(0, data) once the engine answers a probe (on a later iteration,
 * even when it is reachable already), or cb(UV_ECANCELED, data) when the
 * client closes first.  The waiter is freed after cb returns, or by
 * wf_docker_waiter_cancel, after which cb never fires. */
wf_docker_waiter_t *wf_docker_when_up(wf_docker_t *d, void (*cb)(int err, void *data),
                                      void *data);
void wf_docker_waiter_cancel(wf_docker_waiter_t *w);

/* GET /_ping on a NEW connection (never a pooled one: a dockerd that is
 * shutting down keeps serving the connections it has but accepts no new
 * ones, so only a fresh connect tells whether it is still there).  cb fires
 * once with 0 or the error; a failure also marks the engine down.  Returns
 * the request (for wf_http_req_cancel) or NULL if the client is closing. */
wf_http_req_t *wf_docker_ping(wf_docker_t *d, void (*cb)(int err, void *data), void *data);

typedef struct wf_docker_container_s {
  const char *id;
  const char *step_key;  /* label workflow.step ("" if absent) */
  const char *state;     /* "created", "running", "paused", "restarting", "exited", "dead", ... */
  int running;           /* 1 for running, paused and restarting */
  int exit_code;         /* for exited containers; -1 when unknown */
} wf_docker_container_t;
typedef void (*wf_docker_list_cb)(int err, const wf_docker_container_t *c, size_t n, void *data);

/* Lists every container (all states) labelled workflow.node=<node>.  cb fires
 * once, later: err 0 and the list (valid during the call), or err != 0 with
 * n = 0 when the engine is unreachable or answered an error.  Returns 0, or
 * UV_EINVAL for bad arguments (then cb never fires). */
int wf_docker_list(wf_docker_t *d, const char *node, wf_docker_list_cb cb, void *data);

/* Force-removes a container (and its anonymous volumes).  cb (may be NULL)
 * fires once, later, with 0 when it is gone (including when it was gone
 * already) or the error.  Returns 0 or UV_EINVAL. */
int wf_docker_remove(wf_docker_t *d, const char *id, void (*cb)(int err, void *data),
                     void *data);

/* Pulls an image through POST /images/create, following its progress stream
 * and logging it (for log_step) at most about once a second.  cb fires once,
 * later: err 0 on success; WF_EHTTP with Docker's own message in msg for
 * every answer Docker gives (an HTTP error status, or an errorDetail inside
 * the stream); a transport code otherwise (msg = its text); UV_ECANCELED
 * after wf_docker_pull_cancel.  msg is valid during the call.  The caller
 * enforces any deadline by cancelling.  Returns NULL if the client is closing. */
typedef struct wf_docker_pull_s wf_docker_pull_t;
typedef struct wf_docker_pull_opts_s {
  const char *image;     /* fromImage: the url part of wf_docker_image_t's input */
  const char *tag;       /* wf_docker_image_t.tag ("" = none) */
  const char *auth;      /* X-Registry-Auth value or NULL */
  const char *log_step;  /* step key for the agent's log lines, may be NULL */
  const char *ref;       /* name for log lines and messages */
} wf_docker_pull_opts_t;
wf_docker_pull_t *wf_docker_pull(wf_docker_t *d, const wf_docker_pull_opts_t *o,
                                 void (*cb)(int err, const char *msg, void *data), void *data);
void wf_docker_pull_cancel(wf_docker_pull_t *p);

/* Cancels every request (their callbacks fire with UV_ECANCELED), fails
 * every waiter with UV_ECANCELED, stops probing and frees the client; cb
 * (may be NULL) fires once everything is closed. */
void wf_docker_close(wf_docker_t *d, void (*cb)(void *data), void *data);

#endif
