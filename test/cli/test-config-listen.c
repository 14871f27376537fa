/*
 * test-config-listen: the --listen setting of the config loader
 * (src/cli/config.c): off by default; flag, environment and file, the flag
 * winning; a bad address exits 2 naming the flag, key or variable and the
 * value.  No loop, no peer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static const wf_test_t tests[] = {WF_TEST(listen_config)};

int main(int argc, char **argv) { return WF_TEST_MAIN(argc, argv, tests); }
