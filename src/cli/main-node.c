/*
 * workflow-node: the node agent's entry point: flags, environment and the
 * config file -> wf_config_t (config.c) -> the agent (node/).  SIGHUP loads
 * the same command line, environment and file again, through the reload
 * functions below, on a threadpool thread.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "wf/config.h"
#include "wf/node.h"
#include "wf/util.h"

typedef struct cmdline_s {
  int argc;
  char **argv;
} cmdline_t;

/* Threadpool: reads only the command line (which never changes), the
 * process environment and the config file. */
static void *reload_load(wf_node_opts_t *out, char *err, size_t errlen, void *data) {
  const cmdline_t *cl = data;
  wf_config_t *cfg = wf_calloc(1, sizeof *cfg);
  if (wf_config_load(cfg, cl->argc, cl->argv, NULL, err, errlen) != WF_CONFIG_OK) {
    wf_config_finish(cfg);
    free(cfg);
    return NULL;
  }
  *out = cfg->node;
  return cfg;
}

static void reload_release(void *loaded, void *data) {
  (void)data;
  wf_config_finish(loaded);
  free(loaded);
}

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
  wf_log_setup(cfg.node.log_level, cfg.node.log_json);
  cmdline_t cl = {argc, argv};
  wf_node_reload_t reload = {.load = reload_load, .release = reload_release, .data = &cl};
  int rc = wf_node_run(&cfg.node, &reload);
  wf_config_finish(&cfg);
  return rc;
}
