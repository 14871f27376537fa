/*
 * test-docker-unit: the Docker client pieces that need no engine: the frame
 * demultiplexer fed canned streams split at every byte boundary (and one
 * byte at a time), Docker's error bodies, image references, registry auth
 * headers, size and CPU notations, and telling dockerd from Podman with
 * the answers where they differ (canned from both).  (The container spec has
 * its own test, test-docker-spec.c.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/runner/docker/client.h"
#include "wf-test.h"

/* ---- demuxer ------------------------------------------------------------------------ */
typedef struct sink_s {
  char out[4096];
  size_t len;
  char streams[4096]; /* stream of each byte, as '0'..'3' */
  int calls;
} sink_t;

static void sink_cb(int stream, const char *p, size_t n, void *data) {
  sink_t *s = data;
  ASSERT(s->len + n <= sizeof s->out);
  memcpy(s->out + s->len, p, n);
  memset(s->streams + s->len, '0' + stream, n);
  s->len += n;
  s->calls++;
}

static size_t frame(char *out, int stream, const char *payload, size_t n) {
  out[0] = (char)stream;
  out[1] = out[2] = out[3] = 0;
  out[4] = (char)(n >> 24);
  out[5] = (char)(n >> 16);
  out[6] = (char)(n >> 8);
  out[7] = (char)n;
  memcpy(out + 8, payload, n);
  return n + 8;
}

static void test_demux_splits(void) {
  char stream[512];
  size_t n = 0, cut, cut2;
  const char *want = "out 1\nerr 1\n\nlast";
  const char *want_streams = "111111222222" "" "1" "2222";

  n += frame(stream + n, 1, "out 1\n", 6);
  n += frame(stream + n, 2, "err 1\n", 6);
  n += frame(stream + n, 1, "", 0); /* empty frames are legal */
  n += frame(stream + n, 1, "\n", 1);
  n += frame(stream + n, 2, "last", 4);

  /* Every single split point, and every pair of split points. */
  for (cut = 0; cut <= n; cut++) {
    for (cut2 = cut; cut2 <= n; cut2++) {
      wf_docker_demux_t d;
      sink_t s;
      memset(&s, 0, sizeof s);
      wf_docker_demux_init(&d);
      ASSERT_OK(wf_docker_demux_feed(&d, stream, cut, sink_cb, &s));
      ASSERT_OK(wf_docker_demux_feed(&d, stream + cut, cut2 - cut, sink_cb, &s));
      ASSERT_OK(wf_docker_demux_feed(&d, stream + cut2, n - cut2, sink_cb, &s));
      ASSERT_EQ(s.len, strlen(want));
      ASSERT(memcmp(s.out, want, s.len) == 0);
      ASSERT(memcmp(s.streams, want_streams, s.len) == 0);
      ASSERT(wf_docker_demux_at_boundary(&d));
      ASSERT_EQ(d.frames, 5);
    }
  }
  /* One byte at a time. */
  {
    wf_docker_demux_t d;
    sink_t s;
    size_t i;
    memset(&s, 0, sizeof s);
    wf_docker_demux_init(&d);
    for (i = 0; i < n; i++) {
      ASSERT_OK(wf_docker_demux_feed(&d, stream + i, 1, sink_cb, &s));
      /* Boundaries only after whole frames. */
      if (i + 1 == 14 || i + 1 == 28 || i + 1 == 36 || i + 1 == 45 || i + 1 == n)
        ASSERT(wf_docker_demux_at_boundary(&d));
      else
        ASSERT(!wf_docker_demux_at_boundary(&d));
    }
    ASSERT_EQ(s.len, strlen(want));
    ASSERT(memcmp(s.out, want, s.len) == 0);
  }
}

static void test_demux_big_frame(void) {
  /* A size field with every byte in use (0x01020304 would be 16 MB: use a
   * frame of 0x00010203 = 66051 bytes fed in odd pieces). */
  size_t psize = 0x00010203, n = psize + 8, off = 0, step = 1;
  char *buf = wf_malloc(n);
  wf_docker_demux_t d;
  uint64_t got = 0;
  buf[0] = 2;
  buf[1] = buf[2] = buf[3] = 0;
  buf[4] = 0;
  buf[5] = 1;
  buf[6] = 2;
  buf[7] = 3;
  for (size_t i = 8; i < n; i++) buf[i] = (char)('a' + i % 26);
  wf_docker_demux_init(&d);
  while (off < n) {
    size_t k = step < n - off ? step : n - off;
    sink_t s;
    memset(&s, 0, sizeof s);
    /* The sink holds 4 KiB: count, check the bytes, do not keep them. */
    ASSERT(k <= sizeof s.out);
    ASSERT_OK(wf_docker_demux_feed(&d, buf + off, k, sink_cb, &s));
    for (size_t i = 0; i < s.len; i++) {
      ASSERT_EQ(s.out[i], 'a' + (got + 8 + i) % 26);
      ASSERT_EQ(s.streams[i], '2');
    }
    got += s.len;
    off += k;
    step = step * 3 % 4001 + 1;
  }
  ASSERT_EQ(got, psize);
  ASSERT(wf_docker_demux_at_boundary(&d));
  free(buf);
}

static void test_demux_garbage(void) {
  wf_docker_demux_t d;
  sink_t s;
  char bad[16] = {5, 0, 0, 0, 0, 0, 0, 1, 'x'};
  char pad[16] = {1, 0, 1, 0, 0, 0, 0, 1, 'x'};
  char good[16];
  size_t n = frame(good, 1, "ok", 2);

  memset(&s, 0, sizeof s);
  wf_docker_demux_init(&d);
  ASSERT_EQ(wf_docker_demux_feed(&d, bad, 9, sink_cb, &s), WF_EPROTO);
  /* Stuck once broken. */
  ASSERT_EQ(wf_docker_demux_feed(&d, good, n, sink_cb, &s), WF_EPROTO);
  ASSERT_EQ(s.len, 0);

  wf_docker_demux_init(&d);
  ASSERT_OK(wf_docker_demux_feed(&d, good, n, sink_cb, &s));
  ASSERT_EQ(wf_docker_demux_feed(&d, pad, 9, sink_cb, &s), WF_EPROTO);
  ASSERT_EQ(s.len, 2);

  /* A stream cut inside a header or a payload is not at a boundary. */
  wf_docker_demux_init(&d);
  ASSERT_OK(wf_docker_demux_feed(&d, good, 5, sink_cb, &s));
  ASSERT(!wf_docker_demux_at_boundary(&d));
  ASSERT_OK(wf_docker_demux_feed(&d, good + 5, 4, sink_cb, &s));
  ASSERT(!wf_docker_demux_at_boundary(&d));
}

/* ---- helpers --------------------------------------------------------------------------- */
static void test_errmsg(void) {
  char out[64];
  const char *b = "{\"message\":\"No such image: nosuch:latest\"}";
  wf_docker_errmsg(404, b, strlen(b), out, sizeof out);
  ASSERT_STR_EQ(out, "No such image: nosuch:latest");
  wf_docker_errmsg(502, "bad gateway\r\n", 13, out, sizeof out);
  ASSERT_STR_EQ(out, "bad gateway");
  wf_docker_errmsg(500, NULL, 0, out, sizeof out);
  ASSERT_STR_EQ(out, "HTTP 500");
  wf_docker_errmsg(500, "{}", 2, out, sizeof out);
  ASSERT_STR_EQ(out, "{}");
  /* Bounded. */
  b = "{\"message\":\"01234567890123456789012345678901234567890123456789\"}";
  wf_docker_errmsg(500, b, strlen(b), out, 8);
  ASSERT_STR_EQ(out, "0123456");
}

static void test_urlenc(void) {
  char out[64];
  ASSERT_OK(wf_docker_urlenc("127.0.0.1:5000/wf/busybox", out, sizeof out));
  ASSERT_STR_EQ(out, "127.0.0.1%3A5000%2Fwf%2Fbusybox");
  ASSERT_OK(wf_docker_urlenc("{\"label\":[\"a=b c\"]}", out, sizeof out));
  ASSERT_STR_EQ(out, "%7B%22label%22%3A%5B%22a%3Db%20c%22%5D%7D");
  ASSERT_EQ(wf_docker_urlenc("abcdef", out, 6), UV_ENAMETOOLONG);
  ASSERT_OK(wf_docker_urlenc("abcde", out, 6));
  ASSERT_EQ(wf_docker_urlenc("a/", out, 4), UV_ENAMETOOLONG);
}

static void test_image_parse(void) {
  wf_docker_image_t im;
  ASSERT_OK(wf_docker_image_parse("busybox", NULL, &im));
  ASSERT_STR_EQ(im.ref, "busybox");
  ASSERT_STR_EQ(im.tag, "latest");
  ASSERT_STR_EQ(im.registry, "docker.io");

  ASSERT_OK(wf_docker_image_parse("busybox", "1.36", &im));
  ASSERT_STR_EQ(im.ref, "busybox:1.36");
  ASSERT_STR_EQ(im.tag, "1.36");

  ASSERT_OK(wf_docker_image_parse("127.0.0.1:5000/wf/busybox", "", &im));
  ASSERT_STR_EQ(im.ref, "127.0.0.1:5000/wf/busybox");
  ASSERT_STR_EQ(im.tag, "latest");
  ASSERT_STR_EQ(im.registry, "127.0.0.1:5000");

  ASSERT_OK(wf_docker_image_parse("127.0.0.1:5000/wf/busybox:1", NULL, &im));
  ASSERT_STR_EQ(im.ref, "127.0.0.1:5000/wf/busybox:1");
  ASSERT_STR_EQ(im.tag, "");

  ASSERT_OK(wf_docker_image_parse("localhost/x", "sha256:abcd", &im));
  ASSERT_STR_EQ(im.ref, "localhost/x@sha256:abcd");
  ASSERT_STR_EQ(im.registry, "localhost");

  ASSERT_OK(wf_docker_image_parse("library/alpine@sha256:ff", NULL, &im));
  ASSERT_STR_EQ(im.tag, "");
  ASSERT_STR_EQ(im.registry, "docker.io");

  ASSERT_OK(wf_docker_image_parse("registry.example.com/team/app", "v2", &im));
  ASSERT_STR_EQ(im.registry, "registry.example.com");

  ASSERT_EQ(wf_docker_image_parse("", NULL, &im), UV_EINVAL);
}

static void test_auth(void) {
  char err[256];
  char *h, *dec;
  size_t n;
  h = wf_docker_auth_header("wf:pa:ss", "127.0.0.1:5000", err, sizeof err);
  ASSERT_NOT_NULL(h);
  /* URL alphabet only, padded, decodes to the JSON. */
  ASSERT(strchr(h, '+') == NULL && strchr(h, '/') == NULL);
  for (char *p = h; *p; p++) *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
  dec = wf_b64_decode(h, strlen(h), &n);
  ASSERT_NOT_NULL(dec);
  ASSERT_STR_EQ(dec,
                "{\"username\":\"wf\",\"password\":\"pa:ss\",\"serveraddress\":\"127.0.0.1:5000\"}");
  free(dec);
  free(h);

  h = wf_docker_auth_header("u:p", "docker.io", err, sizeof err);
  ASSERT_NOT_NULL(h);
  for (char *p = h; *p; p++) *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
  dec = wf_b64_decode(h, strlen(h), &n);
  ASSERT(strstr(dec, "https://index.docker.io/v1/") != NULL);
  free(dec);
  free(h);

  /* base64 JSON, standard alphabet without padding: passed on re-encoded. */
  {
    const char *json = "{\"username\":\"a?>\",\"password\":\"b\"}";
    char enc[128];
    wf_b64_encode(json, strlen(json), enc);
    while (enc[strlen(enc) - 1] == '=') enc[strlen(enc) - 1] = '\0';
    h = wf_docker_auth_header(enc, "x", err, sizeof err);
    ASSERT_NOT_NULL(h);
    for (char *p = h; *p; p++) *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    dec = wf_b64_decode(h, strlen(h), &n);
    ASSERT_STR_EQ(dec, json);
    free(dec);
    free(h);
  }
  ASSERT_NULL(wf_docker_auth_header("bm90IGpzb24=", "x", err, sizeof err)); /* "not json" */
  ASSERT(strstr(err, "neither") != NULL);
  ASSERT_NULL(wf_docker_auth_header("", "x", err, sizeof err));
}

static void test_sizes(void) {
  int64_t v;
  ASSERT_OK(wf_docker_parse_bytes("8388608", &v));
  ASSERT_EQ(v, 8388608);
  ASSERT_OK(wf_docker_parse_bytes("512m", &v));
  ASSERT_EQ(v, 512LL << 20);
  ASSERT_OK(wf_docker_parse_bytes("1g", &v));
  ASSERT_EQ(v, 1LL << 30);
  ASSERT_OK(wf_docker_parse_bytes("1GiB", &v));
  ASSERT_EQ(v, 1LL << 30);
  ASSERT_OK(wf_docker_parse_bytes("64KB", &v));
  ASSERT_EQ(v, 64 << 10);
  ASSERT_OK(wf_docker_parse_bytes("1.5g", &v));
  ASSERT_EQ(v, 3LL << 29);
  ASSERT_EQ(wf_docker_parse_bytes("", &v), -1);
  ASSERT_EQ(wf_docker_parse_bytes("-1m", &v), -1);
  ASSERT_EQ(wf_docker_parse_bytes("12x", &v), -1);
  ASSERT_EQ(wf_docker_parse_bytes("0x10", &v), -1);
  ASSERT_EQ(wf_docker_parse_bytes("1e9", &v), -1);
  ASSERT_EQ(wf_docker_parse_bytes("0", &v), -1);
  ASSERT_EQ(wf_docker_parse_bytes("1.2.3m", &v), -1);

  ASSERT_OK(wf_docker_parse_cpus("1", &v));
  ASSERT_EQ(v, 1000000000LL);
  ASSERT_OK(wf_docker_parse_cpus("0.5", &v));
  ASSERT_EQ(v, 500000000LL);
  ASSERT_OK(wf_docker_parse_cpus(".25", &v));
  ASSERT_EQ(v, 250000000LL);
  ASSERT_EQ(wf_docker_parse_cpus("0", &v), -1);
  ASSERT_EQ(wf_docker_parse_cpus("two", &v), -1);
  ASSERT_EQ(wf_docker_parse_cpus("nan", &v), -1);
  ASSERT_EQ(wf_docker_parse_cpus(".", &v), -1);
}

/* ---- engines: dockerd and Podman (compat.c) ------------------------------------------- */
static void test_engine_version(void) {
  wf_docker_version_t v;
  char why[256];
  /* dockerd 26 (as Debian's docker.io answers; Components trimmed). */
  const char *docker = "{\"Platform\":{\"Name\":\"\"},\"Components\":[{\"Name\":\"Engine\","
                       "\"Version\":\"26.1.5\"},{\"Name\":\"containerd\",\"Version\":\"1.6\"}],"
                       "\"Version\":\"26.1.5\",\"ApiVersion\":\"1.45\",\"MinAPIVersion\":\"1.24\"}";
  /* Podman 4.3.1 (Debian 12): Docker's shape, plus its own name in Components. */
  const char *podman = "{\"Platform\":{\"Name\":\"linux/amd64/debian-12\"},\"Components\":["
                       "{\"Name\":\"Podman Engine\",\"Version\":\"4.3.1\",\"Details\":{"
                       "\"APIVersion\":\"4.3.1\",\"MinAPIVersion\":\"4.0.0\"}},{\"Name\":\"Conmon\","
                       "\"Version\":\"conmon version 2.1.6\"}],\"Version\":\"4.3.1\","
                       "\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.24\"}";
  /* A Podman answer without a top-level ApiVersion, its MinAPIVersion being
   * libpod's (as reported of some builds). */
  const char *podman_bare = "{\"Components\":[{\"Name\":\"Podman Engine\",\"Version\":\"4.3.1\"}],"
                            "\"Version\":\"4.3.1\",\"MinAPIVersion\":\"4.0.0\"}";
  const char *podman3 = "{\"Components\":[{\"Name\":\"Podman Engine\",\"Version\":\"3.4.4\"}],"
                        "\"Version\":\"3.4.4\"}";
  const char *old = "{\"Version\":\"1.13\",\"ApiVersion\":\"1.26\",\"MinAPIVersion\":\"1.12\"}";

  ASSERT_OK(wf_docker_version_parse(docker, strlen(docker), &v, why, sizeof why));
  ASSERT_EQ(v.engine, WF_DOCKER_ENGINE_DOCKER);
  ASSERT_STR_EQ(v.version, "26.1.5");
  ASSERT_STR_EQ(v.api, "1.45");
  ASSERT_EQ(v.api_assumed, 0);
  ASSERT_STR_EQ(wf_docker_engine_name(v.engine), "Docker");

  ASSERT_OK(wf_docker_version_parse(podman, strlen(podman), &v, why, sizeof why));
  ASSERT_EQ(v.engine, WF_DOCKER_ENGINE_PODMAN);
  ASSERT_STR_EQ(v.version, "4.3.1");
  ASSERT_STR_EQ(v.api, "1.41");
  ASSERT_STR_EQ(v.min_api, "1.24");
  ASSERT_STR_EQ(wf_docker_engine_name(v.engine), "Podman");

  ASSERT_OK(wf_docker_version_parse(podman_bare, strlen(podman_bare), &v, why, sizeof why));
  ASSERT_EQ(v.engine, WF_DOCKER_ENGINE_PODMAN);
  ASSERT_STR_EQ(v.api, WF_DOCKER_API);
  ASSERT_STR_EQ(v.min_api, "");  /* libpod's 4.0.0 is no Docker API version */
  ASSERT_EQ(v.api_assumed, 1);

  ASSERT_EQ(wf_docker_version_parse(podman3, strlen(podman3), &v, why, sizeof why), -1);
  ASSERT(strstr(why, "Podman 3.4.4") && strstr(why, "Podman 4 or later"));
  ASSERT_EQ(wf_docker_version_parse(old, strlen(old), &v, why, sizeof why), -1);
  ASSERT_STR_EQ(why, "engine speaks API 1.12 to 1.26, this agent needs 1.41");
  const char *noapi = "{\"Version\":\"x\"}";
  ASSERT_EQ(wf_docker_version_parse(noapi, strlen(noapi), &v, why, sizeof why), -1);
  ASSERT_STR_EQ(why, "GET /version: no ApiVersion in the answer");
  ASSERT_EQ(wf_docker_version_parse("<html>", 6, &v, why, sizeof why), -1);

  ASSERT(wf_docker_api_cmp("1.9", "1.41") < 0);
  ASSERT(wf_docker_api_cmp("1.41", "1.41") == 0);
  ASSERT(wf_docker_api_cmp("2.0", "1.41") > 0);
}

static void test_engine_answers(void) {
  /* Name conflicts: dockerd's 409, Podman's 500 (text of Podman 4.3.1). */
  ASSERT(wf_docker_name_conflict(409, "Conflict. The container name \"/x\" is already in use"));
  ASSERT(wf_docker_name_conflict(500, "container create: creating container storage: the "
                                      "container name \"x\" is already in use by 63f0. You have "
                                      "to remove that container to be able to reuse that name: "
                                      "that name is already in use"));
  ASSERT(!wf_docker_name_conflict(500, "invalid log driver: invalid argument"));
  ASSERT(!wf_docker_name_conflict(404, "is already in use"));
  /* Missing images: both spellings, only on 404. */
  ASSERT(wf_docker_image_missing(404, "No such image: wf/absent:1"));
  ASSERT(wf_docker_image_missing(404, "no such image: docker.io/wf/absent:1: image not known"));
  ASSERT(!wf_docker_image_missing(404, "No such container: x"));
  ASSERT(!wf_docker_image_missing(500, "no such image: x"));
  /* Podman's refused starts: the exit code its own CLI and a shell give. */
  const char *nf = "{\"cause\":\"OCI runtime attempted to invoke a command that was not found\","
                   "\"message\":\"runc: runc create failed: unable to start container process: "
                   "exec: \\\"/no/such\\\": stat /no/such: no such file or directory\","
                   "\"response\":500}";
  const char *pd = "{\"cause\":\"OCI permission denied\",\"message\":\"...\",\"response\":500}";
  const char *other = "{\"cause\":\"OCI runtime error\",\"message\":\"...\",\"response\":500}";
  ASSERT_EQ(wf_docker_podman_start_exit(nf, strlen(nf)), 127);
  ASSERT_EQ(wf_docker_podman_start_exit(pd, strlen(pd)), 126);
  ASSERT_EQ(wf_docker_podman_start_exit(other, strlen(other)), -1);
  ASSERT_EQ(wf_docker_podman_start_exit("oops", 4), -1);
  /* GET /info: rootless on cgroup v1 drops limits; rootful or v2 keeps them. */
  const char *rl1 = "{\"CgroupVersion\":\"1\",\"SecurityOptions\":[\"name=seccomp,profile=default\","
                    "\"name=rootless\"]}";
  const char *rl2 = "{\"CgroupVersion\":\"2\",\"SecurityOptions\":[\"name=rootless\"]}";
  const char *root1 = "{\"CgroupVersion\":\"1\",\"SecurityOptions\":[\"name=seccomp,profile=default\"]}";
  /* Podman 4.3.1 rootless on cgroup v1, as it answers (trimmed). */
  const char *p431 = "{\"CgroupDriver\":\"cgroupfs\",\"CgroupVersion\":\"1\",\"MemoryLimit\":true,"
                     "\"SecurityOptions\":[\"name=seccomp,profile=default\"],\"Rootless\":true}";
  ASSERT_EQ(wf_docker_podman_limits_ignored(p431, strlen(p431)), 1);
  ASSERT_EQ(wf_docker_podman_limits_ignored(rl1, strlen(rl1)), 1);
  ASSERT_EQ(wf_docker_podman_limits_ignored(rl2, strlen(rl2)), 0);
  ASSERT_EQ(wf_docker_podman_limits_ignored(root1, strlen(root1)), 0);
  ASSERT_EQ(wf_docker_podman_limits_ignored("[]", 2), 0);
}

static const wf_test_t tests[] = {
    WF_TEST(demux_splits), WF_TEST(demux_big_frame), WF_TEST(demux_garbage),
    WF_TEST(errmsg),       WF_TEST(urlenc),          WF_TEST(image_parse),
    WF_TEST(auth),         WF_TEST(sizes),           WF_TEST(engine_version),
    WF_TEST(engine_answers),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
