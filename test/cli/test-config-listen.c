/*
 * test-config-listen: the --listen setting of the config loader
 * (src/cli/config.c): off by default; flag, environment and file, the flag
 * winning; a bad address exits 2 naming the flag, key or variable and the
 * value.  No loop, no peer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wf-test.h"
#include "wf/config.h"

/* --listen: off by default; flag, env and file; bad values exit 2 naming it. */
static void test_listen_config(void) {
  wf_config_t cfg;
  char err[512];
  char *env0[] = {NULL};
  char *a0[] = {"workflow-node", "--name", "n1"};
  ASSERT_EQ(wf_config_load(&cfg, 3, a0, env0, err, sizeof err), WF_CONFIG_OK);
  ASSERT_NULL(cfg.node.listen);
  wf_config_finish(&cfg);

  char *a1[] = {"workflow-node", "--name", "n1", "--listen", "127.0.0.1:9464"};
  ASSERT_EQ(wf_config_load(&cfg, 5, a1, env0, err, sizeof err), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.listen, "127.0.0.1:9464");
  wf_config_finish(&cfg);

  char *env1[] = {"WORKFLOW_LISTEN=[::1]:9100", NULL};
  ASSERT_EQ(wf_config_load(&cfg, 3, a0, env1, err, sizeof err), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.listen, "[::1]:9100");
  wf_config_finish(&cfg);

  char *a2[] = {"workflow-node", "--name", "n1", "--listen=localhost:1"};
  ASSERT_EQ(wf_config_load(&cfg, 4, a2, env1, err, sizeof err), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.listen, "localhost:1"); /* the flag wins */
  wf_config_finish(&cfg);

  char path[] = "/tmp/wf-test-listen-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fprintf(f, "listen: 0.0.0.0:9464\n");
  fclose(f);
  char *a3[] = {"workflow-node", "--name", "n1", "--config", path};
  ASSERT_EQ(wf_config_load(&cfg, 5, a3, env0, err, sizeof err), WF_CONFIG_OK);
  ASSERT_STR_EQ(cfg.node.listen, "0.0.0.0:9464");
  wf_config_finish(&cfg);

  f = fopen(path, "w");
  fprintf(f, "listen: example.com:80\n");
  fclose(f);
  ASSERT_EQ(wf_config_load(&cfg, 5, a3, env0, err, sizeof err), WF_CONFIG_BAD);
  ASSERT(strstr(err, "key \"listen\"") && strstr(err, "example.com:80"));
  wf_config_finish(&cfg);
  remove(path);

  static const char *const bad[] = {"127.0.0.1:0", "127.0.0.1:65536", "9464", "host:80",
                                    "127.0.0.1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *a[] = {"workflow-node", "--name", "n1", "--listen", (char *)bad[i]};
    ASSERT_EQ(wf_config_load(&cfg, 5, a, env0, err, sizeof err), WF_CONFIG_BAD);
    if (!strstr(err, "--listen") || !strstr(err, bad[i])) WF_FAIL("error text: %s", err);
    wf_config_finish(&cfg);
  }
  char *env2[] = {"WORKFLOW_LISTEN=127.0.0.1:99999", NULL};
  ASSERT_EQ(wf_config_load(&cfg, 3, a0, env2, err, sizeof err), WF_CONFIG_BAD);
  ASSERT(strstr(err, "WORKFLOW_LISTEN") != NULL);
  wf_config_finish(&cfg);
}

/* One load of argv (NULL-terminated); returns the result, err filled. */
static enum wf_config_result load_args(wf_config_t *cfg, char *err, size_t errlen, char **argv) {
  int argc = 0;
  while (argv[argc]) argc++;
  char *env0[] = {NULL};
  return wf_config_load(cfg, argc, argv, env0, err, errlen);
}

/* --listen's token, TLS files, follower bound and an --address URL: each
 * needs what it works with, a missing file is named, and an --address
 * URL must be one wfctl can use as the endpoint. */
static void test_listen_files(void) {
  wf_config_t cfg;
  char err[512];
  char path[] = "/tmp/wf-test-listen-file-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  close(fd);
  struct {
    const char *args[10];
    const char *want; /* NULL: accepted */
  } cases[] = {
      {{"--listen-token-file", path}, "--listen-token-file"},
      {{"--listen", "127.0.0.1:9464", "--listen-token-file", "/nonexistent/t"}, "no such file"},
      {{"--listen", "127.0.0.1:9464", "--listen-token-file", path}, NULL},
      {{"--listen", "127.0.0.1:9464", "--listen-cert", path}, "needs --listen-key"},
      {{"--listen", "127.0.0.1:9464", "--listen-key", path}, "needs --listen-cert"},
      {{"--listen", "127.0.0.1:9464", "--listen-client-ca", path}, "needs --listen-cert"},
      {{"--listen", "127.0.0.1:9464", "--listen-cert", path, "--listen-key", path,
        "--listen-client-ca", path}, NULL},
      {{"--listen", "127.0.0.1:9464", "--listen-max-followers", "0"}, "--listen-max-followers"},
      {{"--listen", "127.0.0.1:9464", "--listen-max-followers", "10001"}, "10001"},
      {{"--address", "https://build-01.example"}, "a URL must be"},
      {{"--address", "ftp://build-01.example:21"}, "a URL must be"},
      {{"--address", "https://build-01.example:9464/"}, NULL},
      {{"--address", "build-01.example"}, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *argv[16] = {"workflow-node", "--name", "n1"};
    int n = 3;
    for (int k = 0; cases[i].args[k]; k++) argv[n++] = (char *)cases[i].args[k];
    argv[n] = NULL;
    enum wf_config_result r = load_args(&cfg, err, sizeof err, argv);
    if (cases[i].want) {
      if (r != WF_CONFIG_BAD || !strstr(err, cases[i].want))
        WF_FAIL("case %zu: result %d, error \"%s\" (want \"%s\")", i, (int)r, err, cases[i].want);
    } else if (r != WF_CONFIG_OK) {
      WF_FAIL("case %zu refused: %s", i, err);
    }
    wf_config_finish(&cfg);
  }
  remove(path);
}

static const wf_test_t tests[] = {WF_TEST(listen_config), WF_TEST(listen_files)};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
