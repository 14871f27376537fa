/*
 * config: the one configuration struct everything below cli/ takes, and the
 * loader that fills it from flags, environment and a YAML file
 * (precedence: flag > environment > config file > default; docs/protocol.md §8).
 */
#ifndef WF_CONFIG_H
#define WF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "wf/node.h"
#include "wf/util.h"

typedef struct wf_config_s {
  wf_node_opts_t node;     /* the agent's settings (wf/node.h) */
  char *config_file;      /* --config / WORKFLOW_CONFIG */
  char *etcd_password_file; /* --etcd-password-file / WORKFLOW_ETCD_PASSWORD_FILE */
} wf_config_t;

/* Every flag the node takes, with its env var and config key, for --help and
 * docs/configuration.md. */
enum wf_config_result { WF_CONFIG_OK = 0, WF_CONFIG_EXIT = 1, WF_CONFIG_BAD = 2 };

/*
 * Fills cfg from argv (argv[0] is the program), the environment (envp, may be
 * NULL for the process environment) and the config file named by --config /
 * WORKFLOW_CONFIG.  Returns WF_CONFIG_OK; WF_CONFIG_EXIT after printing
 * --help or --version to stdout (exit 0); WF_CONFIG_BAD with err naming the
 * flag/variable/key and the bad value (exit 2).  cfg must be released with
 * wf_config_finish() in every case.
 */
enum wf_config_result wf_config_load(wf_config_t *cfg, int argc, char **argv, char **envp,
                                     char *err, size_t errlen);
void wf_config_finish(wf_config_t *cfg);

#endif
