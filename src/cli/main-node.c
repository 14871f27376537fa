/* workflow-node: the node agent's entry point (flags -> config -> node). */
#include <signal.h>
#include <stdio.h>

#include "wf/config.h"
#include "wf/node.h"
#include "wf/util.h"

int main(int argc, char **argv) {
  /* SIGHUP means "reload" once the loop runs (node.c); until then it must
   * not kill the agent (a `systemctl reload` right after the start). */
  signal(SIGHUP, SIG_IGN);
  wf_config_t cfg;
  char err[1024];
  enum wf_config_result r = wf_config_load(&cfg, argc, argv, NULL, err, sizeof err);
  if (r != WF_CONFIG_OK) {
    if (r == WF_CONFIG_BAD) fprintf(stderr, "workflow-node: %s\n", err);
    wf_config_finish(&cfg);
    return r == WF_CONFIG_BAD ? 2 : 0;
  }
  wf_log_setup(cfg.log_level, cfg.log_json);
  int rc = wf_node_run2(&cfg, argc, argv);
  wf_config_finish(&cfg);
  return rc;
}
