/*
 * event_bench: pushes N step watch events through the agent's real path,
 * from the bytes on the socket to the work queue, and stops.
 *
 * The process is its own etcd gateway: a tiny HTTP/1.1 server on a loopback
 * port, on the same libuv loop as a real wf_etcd client and a real
 * wf_engine (informer + filter + cache + work queue + dispatch).  The
 * engine lists the steps prefix (answered: empty, revision 1) and watches it;
 * the watch reply is the "created" message followed by N one-event messages
 * (one chunk each, as etcd 3.4 sends them) and a last marker event.  The
 * action catalog's list is never answered, so the catalog never syncs and a
 * PENDDING step of this node stops in the waiting list instead of being
 * claimed: the path ends at the queued work item.
 *
 * Modes:
 *   other  N events of another node's PENDDING step (each agent sees most
 *          events of a shared etcd this way): HTTP chunk + line split +
 *          watch message parse + base64 + value parse + filter -> dropped;
 *   own    N events of this node's PENDDING steps: the same, then cache
 *          insert + queue + dispatch (parse again, status) -> waiting list.
 * N = 0 runs the fixed part only (start-up, list, watch set-up, marker).
 * bench/bench.py runs it under callgrind and divides the difference of the
 * instruction counts by N.
 *
 *   usage: event_bench other|own N
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "wf/engine.h"
#include "wf/etcd.h"
#include "wf/util.h"

#define NODE "bench-node"
#define PREFIX "b"

static uv_loop_t *loop;
static wf_engine_t *eng;
static long nevents;
static int own_mode;
static size_t want_cached;
static char steps_b64[128];
static char actions_b64[128];
static uv_check_t check;
static uv_prepare_t prepare;
static int finished;

typedef struct conn_s {
  uv_tcp_t tcp;
  char *in;
  size_t len, cap;
} conn_t;

static char *b64(const char *s, size_t n) {
  char *out = malloc(wf_b64_enc_len(n) + 1);
  wf_b64_encode(s, n, out);
  return out;
}

static void on_written(uv_write_t *w, int status) {
  free(w->data);
  free(w);
}

static void send_bytes(conn_t *c, char *data, size_t n) {
  uv_write_t *w = malloc(sizeof *w);
  w->data = data;
  uv_buf_t b = uv_buf_init(data, (unsigned)n);
  if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    free(data);
    free(w);
  }
}

/* Appends one chunk holding `line` + "\n" to buf. */
static size_t add_chunk(char *buf, const char *line) {
  size_t n = strlen(line) + 1;
  return (size_t)sprintf(buf, "%zx\r\n%s\n\r\n", n, line);
}

static const char *STEP_FMT =
    "{\"key\":\"%s\",\"create_type\":\"PIPELINE\",\"namespace\":\"ns1\","
    "\"pipeline_id\":\"c3r8psea0brhlbg0qdd0\",\"create_at\":1626770673846,\"update_at\":1626770681002,"
    "\"deploy_id\":\"\",\"resource_version\":831402,\"id\":1,\"name\":\"step1.1\",\"action\":\"go_build@v1\","
    "\"with\":{\"ENV1\":\"env1\",\"ENV2\":\"env2\"},\"is_parallel\":false,\"ignore_failed\":false,"
    "\"with_audit\":false,\"audit_params\":null,\"with_notify\":false,\"notify_params\":null,"
    "\"webhooks\":null,\"node_selector\":null,"
    "\"status\":{\"flow_number\":1,\"start_at\":0,\"end_at\":0,\"status\":\"%s\","
    "\"scheduled_node\":\"%s\",\"audit_at\":0,\"audit_response\":\"UOD\",\"audit_message\":\"\","
    "\"notify_at\":0,\"notify_error\":\"\",\"message\":\"\",\"response\":{}}}";

static char *event_line(const char *key, const char *status, const char *node, long rev) {
  char full[256], value[4096];
  snprintf(full, sizeof full, PREFIX "/workflow/steps/%s", key);
  snprintf(value, sizeof value, STEP_FMT, key, status, node);
  char *k64 = b64(full, strlen(full)), *v64 = b64(value, strlen(value));
  size_t cap = strlen(k64) + strlen(v64) + 512;
  char *line = malloc(cap);
  snprintf(line, cap,
           "{\"result\":{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
           "\"10276657743932975437\",\"revision\":\"%ld\",\"raft_term\":\"2\"},\"events\":[{\"kv\":"
           "{\"key\":\"%s\",\"create_revision\":\"%ld\",\"mod_revision\":\"%ld\",\"version\":\"1\","
           "\"value\":\"%s\"}}]}}",
           rev, k64, rev, rev, v64);
  free(k64);
  free(v64);
  return line;
}

static const char *HEAD =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nGrpc-Metadata-Content-Type: "
    "application/grpc\r\nTransfer-Encoding: chunked\r\n\r\n";
static const char *CREATED =
    "{\"result\":{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
    "\"10276657743932975437\",\"revision\":\"1\",\"raft_term\":\"2\"},\"created\":true}}";

static void serve_steps_watch(conn_t *c) {
  /* head + created + N events + marker, in one write */
  size_t cap = 4096 + (size_t)(nevents + 1) * 4096;
  char *buf = malloc(cap);
  size_t n = (size_t)sprintf(buf, "%s", HEAD);
  n += add_chunk(buf + n, CREATED);
  long rev = 2;
  for (long i = 0; i < nevents; i++, rev++) {
    char key[64];
    snprintf(key, sizeof key, "ns1.e%07ld", i);
    char *line = event_line(key, "PENDDING", own_mode ? NODE : "other-node", rev);
    n += add_chunk(buf + n, line);
    free(line);
  }
  /* The marker: a completed step of this node, kept as (key, revision). */
  char *line = event_line("zz-marker", "SUCCEEDED", NODE, rev);
  n += add_chunk(buf + n, line);
  free(line);
  send_bytes(c, buf, n);
}

static void reply(conn_t *c, const char *body) {
  char *buf = malloc(strlen(body) + 256);
  size_t n = (size_t)sprintf(buf,
                             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\n\r\n%s",
                             strlen(body), body);
  send_bytes(c, buf, n);
}

static void handle(conn_t *c, const char *path, const char *body) {
  if (strcmp(path, "/v3/watch") == 0) {
    if (strstr(body, steps_b64)) {
      serve_steps_watch(c);
    } else {
      char *buf = malloc(1024);
      size_t n = (size_t)sprintf(buf, "%s", HEAD);
      n += add_chunk(buf + n, CREATED);
      send_bytes(c, buf, n);
    }
  } else if (strcmp(path, "/v3/kv/range") == 0) {
    if (strstr(body, actions_b64)) return; /* never answered: the catalog stays unsynced */
    reply(c, "{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
             "\"10276657743932975437\",\"revision\":\"1\",\"raft_term\":\"2\"}}");
  } else {
    reply(c, "{}");
  }
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  conn_t *c = h->data;
  if (c->cap - c->len < 65536) {
    c->cap = c->cap * 2 + 65536;
    c->in = realloc(c->in, c->cap);
  }
  *b = uv_buf_init(c->in + c->len, (unsigned)(c->cap - c->len));
}

static void on_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  free(c->in);
  free(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  conn_t *c = s->data;
  if (nread < 0) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  c->len += (size_t)nread;
  for (;;) {
    char *end = memmem(c->in, c->len, "\r\n\r\n", 4);
    if (!end) return;
    size_t hlen = (size_t)(end - c->in) + 4;
    size_t clen = 0;
    for (char *p = c->in; p < end; p++) {
      if (strncasecmp(p, "\ncontent-length:", 16) == 0) clen = strtoul(p + 16, NULL, 10);
    }
    if (c->len < hlen + clen) return;
    char path[256] = "";
    sscanf(c->in, "%*s %255s", path);
    char *body = malloc(clen + 1);
    memcpy(body, c->in + hlen, clen);
    body[clen] = '\0';
    memmove(c->in, c->in + hlen + clen, c->len - hlen - clen);
    c->len -= hlen + clen;
    handle(c, path, body);
    free(body);
  }
}

static void on_conn(uv_stream_t *server, int status) {
  conn_t *c = calloc(1, sizeof *c);
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Runs after each poll (check) and before each poll (prepare): the queue
 * drains from an idle handle, and the loop may block right after it. */
static void done_yet(void) {
  wf_engine_stats_t st;
  wf_engine_stats(eng, &st);
  size_t have = st.cached;
  /* own: every step must also have been dispatched to the waiting list */
  if (have >= want_cached && st.waiting >= (size_t)(own_mode ? nevents : 0) && !finished) {
    finished = 1;
    printf("%ld %s events handled: %zu cached, %zu waiting\n", nevents, own_mode ? "own" : "other",
           have, st.waiting);
    fflush(stdout);
    exit(0);
  }
}

static void on_check(uv_check_t *h) { done_yet(); }
static void on_prepare(uv_prepare_t *h) { done_yet(); }

static void on_deadline(uv_timer_t *t) {
  wf_engine_stats_t st;
  wf_engine_stats(eng, &st);
  fprintf(stderr, "event_bench: timed out with %zu of %zu cached\n", st.cached, want_cached);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "own") && strcmp(argv[1], "other"))) {
    fprintf(stderr, "usage: event_bench other|own N\n");
    return 2;
  }
  own_mode = strcmp(argv[1], "own") == 0;
  nevents = atol(argv[2]);
  want_cached = (size_t)(own_mode ? nevents : 0) + 1;
  wf_log_setup(WF_LOG_WARN, 0);

  const char *sp = PREFIX "/workflow/steps/", *ap = PREFIX "/workflow/actions/";
  wf_b64_encode(sp, strlen(sp), steps_b64);
  wf_b64_encode(ap, strlen(ap), actions_b64);

  loop = uv_default_loop();
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) != 0 ||
      uv_listen((uv_stream_t *)&server, 16, on_conn) != 0) {
    fprintf(stderr, "event_bench: cannot listen\n");
    return 1;
  }
  struct sockaddr_in bound;
  int blen = sizeof bound;
  uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &blen);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(bound.sin_port));

  const char *eps[] = {url};
  wf_etcd_opts_t eo;
  memset(&eo, 0, sizeof eo);
  eo.endpoints = eps;
  eo.nendpoints = 1;
  eo.request_timeout_ms = 3600 * 1000;
  eo.watch_idle_ms = UINT64_MAX;
  wf_etcd_t *etcd = wf_etcd_create(loop, &eo);

  wf_engine_cfg_t cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.node_name = NODE;
  cfg.prefix = PREFIX;
  cfg.log_dir = "/tmp";
  cfg.max_parallel = 16;
  char err[256];
  eng = wf_engine_create(loop, etcd, &cfg, err, sizeof err);
  if (!eng) {
    fprintf(stderr, "event_bench: engine: %s\n", err);
    return 1;
  }
  uv_check_init(loop, &check);
  uv_check_start(&check, on_check);
  uv_prepare_init(loop, &prepare);
  uv_prepare_start(&prepare, on_prepare);
  uv_timer_t deadline;
  uv_timer_init(loop, &deadline);
  uv_timer_start(&deadline, on_deadline, 600 * 1000, 0);
  uv_unref((uv_handle_t *)&deadline);
  wf_engine_start(eng);
  uv_run(loop, UV_RUN_DEFAULT);
  fprintf(stderr, "event_bench: loop ended early\n");
  return 1;
}
