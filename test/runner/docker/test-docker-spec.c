/*
 * test-docker-spec: the container spec a DOCKER run asks for, built from
 * the run request alone (src/runner/docker/spec.c, pure): runner params,
 * env and labels in the create body, the pull policy and secret, the
 * settings that must be refused with the param named, container names,
 * mount paths normalised and checked against --allow-mount, and the Binds
 * the create body gets from resolved mounts.  The static helpers are
 * reached by including the source.
 */
#include "src/runner/docker/spec.c"

#include "wf-test.h"

static void test_paths(void) {
  static const char *cases[][2] = {
      {"/", "/"},           {"//", "/"},          {"/a", "/a"},
      {"/a/", "/a"},        {"/a//b/./c", "/a/b/c"}, {"/a/b/../c", "/a/c"},
      {"/a/../../b", "/b"}, {"/..", "/"},         {"/a/b/..", "/a"},
      {"/srv/data/../../etc", "/etc"}, {"/a/.../b", "/a/.../b"}, {"/a/..b", "/a/..b"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *n = wf__docker_normalize_path(cases[i][0]);
    if (strcmp(n, cases[i][1]) != 0) WF_FAIL("%s -> %s, want %s", cases[i][0], n, cases[i][1]);
    free(n);
  }
  ASSERT(under_dir("/srv/data", "/srv/data"));
  ASSERT(under_dir("/srv/data/x", "/srv/data"));
  ASSERT(!under_dir("/srv/database", "/srv/data"));
  ASSERT(under_dir("/anything", "/"));
}

static void test_names(void) {
  char *n = wf__docker_container_name("pipeline-1-step-a_b.c");
  ASSERT_STR_EQ(n, "pipeline-1-step-a_b.c");
  free(n);
  n = wf__docker_container_name("ns:step/1 x");
  ASSERT_STR_EQ(n, "ns_step_1_x");
  free(n);
  n = wf__docker_container_name("_x");
  ASSERT_STR_EQ(n, "wf-_x");
  free(n);
  n = wf__docker_container_name("a");
  ASSERT_STR_EQ(n, "wf-a");
  free(n);
}

static void test_mount_parse(void) {
  char *allow[] = {"/srv/ci", "/data"};
  size_t nallow = 2;
  wf__docker_mount_t *m = NULL;
  size_t n = 0;
  char err[256];
  ASSERT_OK(parse_mounts(allow, nallow, "/srv/ci/cache:/cache, /data/x/../y:/y:ro", &m, &n, err, sizeof err));
  ASSERT_EQ(n, 2);
  ASSERT_STR_EQ(m[0].host, "/srv/ci/cache");
  ASSERT_STR_EQ(m[0].cont, "/cache");
  ASSERT_EQ(m[0].ro, 0);
  ASSERT_STR_EQ(m[1].host, "/data/y");
  ASSERT_EQ(m[1].ro, 1);
  for (size_t i = 0; i < n; i++) {
    free(m[i].host);
    free(m[i].cont);
  }
  free(m);
  ASSERT_EQ(parse_mounts(allow, nallow, "/srv/ci/../../etc:/x", &m, &n, err, sizeof err), -1);
  ASSERT(strstr(err, "/srv/ci/../../etc") && strstr(err, "--allow-mount"));
  ASSERT_EQ(parse_mounts(allow, nallow, "/srv/cix:/x", &m, &n, err, sizeof err), -1);
  ASSERT_EQ(parse_mounts(allow, nallow, "/srv/ci", &m, &n, err, sizeof err), -1);
  ASSERT_EQ(parse_mounts(allow, nallow, "rel:/x", &m, &n, err, sizeof err), -1);
  ASSERT_EQ(parse_mounts(allow, nallow, "/srv/ci:/x:rx", &m, &n, err, sizeof err), -1);
  nallow = 0;
  ASSERT_EQ(parse_mounts(allow, nallow, "/srv/ci:/x", &m, &n, err, sizeof err), -1);
  ASSERT(strstr(err, "none is configured"));
}


/* A request with the given runner params and env. */
static wf_run_req_t req_of(const wf_kv_t *p, size_t n, const char *const *env) {
  wf_run_req_t r;
  memset(&r, 0, sizeof r);
  r.step_key = "ns.pipe.1.build";
  r.runner_params = p;
  r.nrunner_params = n;
  r.env = env;
  return r;
}

static char *const no_allow[] = {NULL};

static void test_body(void) {
  static const char *const env[] = {"A=1", "WORKFLOW_STEP_KEY=ns.pipe.1.build", NULL};
  wf_kv_t p[] = {{"IMAGE_URL", "127.0.0.1:5000/busybox"}, {"IMAGE_VERSION", "1.36"},
                 {"IMAGE_CMD", "sh,-c,echo hi"},          {"CONTAINER_WORKDIR", "/w"},
                 {"CONTAINER_USER", "1000"},              {"CONTAINER_NETWORK", "none"},
                 {"CONTAINER_MEMORY", "64m"},             {"CONTAINER_CPUS", "0.5"}};
  wf_run_req_t req = req_of(p, sizeof p / sizeof p[0], env);
  wf__docker_spec_t s;
  char err[256];
  ASSERT_OK(wf__docker_spec_init(&s, &req, "node-1", no_allow, 0, err, sizeof err));
  ASSERT_STR_EQ(s.img.ref, "127.0.0.1:5000/busybox:1.36");
  ASSERT_STR_EQ(s.image_url, "127.0.0.1:5000/busybox");
  ASSERT_STR_EQ(s.name, "ns.pipe.1.build");
  ASSERT_EQ(s.policy, WF__PULL_IF_NOT_PRESENT);
  ASSERT_NULL(s.auth);
  ASSERT_STR_EQ(s.mem_text, "64m");
  json_t *b = s.body, *host = json_object_get(b, "HostConfig");
  ASSERT_STR_EQ(json_string_value(json_object_get(b, "Image")), "127.0.0.1:5000/busybox:1.36");
  ASSERT_EQ(json_array_size(json_object_get(b, "Cmd")), 3);
  ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(b, "Cmd"), 2)), "echo hi");
  ASSERT_EQ(json_array_size(json_object_get(b, "Env")), 2);
  ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(b, "Env"), 0)), "A=1");
  json_t *labels = json_object_get(b, "Labels");
  ASSERT_STR_EQ(json_string_value(json_object_get(labels, "workflow.step")), "ns.pipe.1.build");
  ASSERT_STR_EQ(json_string_value(json_object_get(labels, "workflow.node")), "node-1");
  ASSERT(json_is_false(json_object_get(b, "Tty")));
  ASSERT(json_is_true(json_object_get(b, "AttachStdout")));
  ASSERT_STR_EQ(json_string_value(json_object_get(b, "WorkingDir")), "/w");
  ASSERT_STR_EQ(json_string_value(json_object_get(b, "User")), "1000");
  ASSERT_STR_EQ(json_string_value(json_object_get(host, "NetworkMode")), "none");
  ASSERT_EQ(json_integer_value(json_object_get(host, "Memory")), 64 << 20);
  ASSERT_EQ(json_integer_value(json_object_get(host, "MemorySwap")), 64 << 20);
  ASSERT_EQ(json_integer_value(json_object_get(host, "NanoCpus")), 500000000);
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(host, "LogConfig"), "Type")),
                "local");
  /* No mounts: no Binds in what is sent. */
  char *text = wf__docker_spec_create_body(&s, WF_DOCKER_ENGINE_DOCKER);
  ASSERT(strstr(text, "Binds") == NULL);
  free(text);
  /* Podman has no "local" log driver: k8s-file, bounded like Docker's. */
  text = wf__docker_spec_create_body(&s, WF_DOCKER_ENGINE_PODMAN);
  json_t *pb = json_loads(text, 0, NULL);
  json_t *plog = json_object_get(json_object_get(pb, "HostConfig"), "LogConfig");
  ASSERT_STR_EQ(json_string_value(json_object_get(plog, "Type")), "k8s-file");
  ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(plog, "Config"), "max-size")),
                "100m");
  /* Everything else as for Docker. */
  ASSERT_EQ(json_integer_value(json_object_get(json_object_get(pb, "HostConfig"), "Memory")),
            64 << 20);
  json_decref(pb);
  free(text);
  wf__docker_spec_finish(&s);
  ASSERT_NULL(s.body);
}

static void test_policy_and_secret(void) {
  wf_kv_t p[] = {{"IMAGE_URL", "registry.example.com/team/app"},
                 {"IMAGE_PULL_POLICY", "Always"},
                 {"IMAGE_PULL_SECRET", "user:pa:ss"}};
  wf_run_req_t req = req_of(p, 3, NULL);
  wf__docker_spec_t s;
  char err[256];
  ASSERT_OK(wf__docker_spec_init(&s, &req, "n", no_allow, 0, err, sizeof err));
  ASSERT_EQ(s.policy, WF__PULL_ALWAYS);
  ASSERT_NOT_NULL(s.auth);
  ASSERT_NULL(json_object_get(s.body, "Cmd"));  /* the image's own command */
  wf__docker_spec_finish(&s);
  p[1].value = "never";
  ASSERT_OK(wf__docker_spec_init(&s, &req, "n", no_allow, 0, err, sizeof err));
  ASSERT_EQ(s.policy, WF__PULL_NEVER);
  wf__docker_spec_finish(&s);
}

/* Each bad request is refused before anything runs, naming what is wrong. */
static void test_refusals(void) {
  static const struct {
    wf_kv_t p[3];
    const char *want;
  } cases[] = {
      {{{"IMAGE_VERSION", "1"}}, "IMAGE_URL is missing"},
      {{{"IMAGE_URL", "busybox"}, {"IMAGE_PULL_POLICY", "sometimes"}}, "IMAGE_PULL_POLICY"},
      {{{"IMAGE_URL", "busybox"}, {"IMAGE_CMD", "[\"sh\", 1]"}}, "bad IMAGE_CMD"},
      {{{"IMAGE_URL", "busybox"}, {"IMAGE_CMD", "echo,\xff"}}, "IMAGE_CMD is not valid UTF-8"},
      {{{"IMAGE_URL", "busybox"}, {"CONTAINER_MEMORY", "lots"}}, "CONTAINER_MEMORY"},
      {{{"IMAGE_URL", "busybox"}, {"CONTAINER_CPUS", "-1"}}, "CONTAINER_CPUS"},
      {{{"IMAGE_URL", "busybox"}, {"CONTAINER_USER", "\xc3"}}, "CONTAINER_USER is not valid"},
      {{{"IMAGE_URL", "busybox"}, {"IMAGE_PULL_SECRET", "bm90IGpzb24="}}, "docker runner: "},
      {{{"IMAGE_URL", "busybox"}, {"CONTAINER_MOUNTS", "/etc:/x"}}, "--allow-mount"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = 0;
    while (n < 3 && cases[i].p[n].key) n++;
    wf_run_req_t req = req_of(cases[i].p, n, NULL);
    wf__docker_spec_t s;
    char err[256] = "";
    ASSERT_EQ(wf__docker_spec_init(&s, &req, "n", no_allow, 0, err, sizeof err), -1);
    if (!strstr(err, cases[i].want)) WF_FAIL("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].want);
    ASSERT_NULL(s.body);
  }
  /* An env value that is not UTF-8 names the variable, not its value. */
  static const char *const env[] = {"TOKEN=\xff\xfe", NULL};
  wf_kv_t p[] = {{"IMAGE_URL", "busybox"}};
  wf_run_req_t req = req_of(p, 1, env);
  wf__docker_spec_t s;
  char err[256];
  ASSERT_EQ(wf__docker_spec_init(&s, &req, "n", no_allow, 0, err, sizeof err), -1);
  ASSERT(strstr(err, "env TOKEN") != NULL);
  req.step_key = "";
  req.env = NULL;
  ASSERT_EQ(wf__docker_spec_init(&s, &req, "n", no_allow, 0, err, sizeof err), -1);
  ASSERT(strstr(err, "step key is empty") != NULL);
}

static void test_binds(void) {
  char *allow[] = {"/srv/ci"};
  wf_kv_t p[] = {{"IMAGE_URL", "busybox"},
                 {"CONTAINER_MOUNTS", "/srv/ci/cache:/cache,/srv/ci/src:/src:ro"}};
  wf_run_req_t req = req_of(p, 2, NULL);
  wf__docker_spec_t s;
  char err[256];
  ASSERT_OK(wf__docker_spec_init(&s, &req, "n", allow, 1, err, sizeof err));
  ASSERT_EQ(s.nmounts, 2);
  /* What run.c's realpath found goes into Binds. */
  s.mounts[0].real = wf_strdup("/srv/ci/cache-real");
  s.mounts[1].real = wf_strdup("/srv/ci/src");
  char *text = wf__docker_spec_create_body(&s, WF_DOCKER_ENGINE_DOCKER);
  json_t *b = json_loads(text, 0, NULL);
  json_t *binds = json_object_get(json_object_get(b, "HostConfig"), "Binds");
  ASSERT_EQ(json_array_size(binds), 2);
  ASSERT_STR_EQ(json_string_value(json_array_get(binds, 0)), "/srv/ci/cache-real:/cache");
  ASSERT_STR_EQ(json_string_value(json_array_get(binds, 1)), "/srv/ci/src:/src:ro");
  json_decref(b);
  free(text);
  /* The template itself is left as it was. */
  ASSERT_NULL(json_object_get(json_object_get(s.body, "HostConfig"), "Binds"));
  wf__docker_spec_finish(&s);
}

static const wf_test_t tests[] = {
    WF_TEST(paths),  WF_TEST(names),    WF_TEST(mount_parse), WF_TEST(body),
    WF_TEST(policy_and_secret), WF_TEST(refusals), WF_TEST(binds),
};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
