/*
 * config: the one configuration struct everything below cli/ takes, and the
 * loader that fills it from flags, environment and a YAML file
 * (precedence: flag > environment > config file > default; spec.md §8).
 */
#ifndef WF_CONFIG_H
#define WF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "wf/util.h"

typedef struct wf_config_s {
  char *name;             /* --name / WORKFLOW_NODE_NAME; default host name */
  char **etcd;            /* --etcd / WORKFLOW_ETCD, split on ','; NULL-terminated */
  size_t netcd;
  char *prefix;           /* --prefix / WORKFLOW_PREFIX; default "inforboard" */
  char *config_file;      /* --config / WORKFLOW_CONFIG */
  char *log_dir;          /* --log-dir / WORKFLOW_LOG_DIR; default "runner_log" */
  char *actions_dir;      /* --actions-dir / WORKFLOW_ACTIONS_DIR; NULL = none */
  char *docker_host;      /* --docker-host / DOCKER_HOST; default unix:///var/run/docker.sock */
  unsigned max_parallel;  /* --max-parallel; default 16, 1..10000 */
  unsigned step_timeout;  /* --step-timeout seconds; 0 = none */
  unsigned stop_grace;    /* --stop-grace seconds; default 10 */
  unsigned resync;        /* --resync seconds; default 300; 0 = off */
  unsigned ttl;           /* --ttl seconds; default 30, >= 2 */
  unsigned drain_timeout; /* --drain-timeout seconds; default 30 */
  enum wf_log_level log_level; /* --log-level debug|info|warn|error; default info */
  int log_json;           /* --log-format text|json; default text */
  char *address;          /* --address: registered in the node record; default "" */
  char **allow_mounts;    /* --allow-mount DIR (repeatable): host dirs docker steps may mount */
  size_t nallow_mounts;
  unsigned docker_wait;   /* --docker-wait seconds; default 30 */
  unsigned pull_timeout;  /* --pull-timeout seconds; default 600 */
  int keep_containers;    /* --keep-containers; default off */
  char *mask_params;      /* --mask-params: comma-separated globs of secret param names */
  char *etcd_user;        /* --etcd-user / WORKFLOW_ETCD_USER; NULL = no etcd auth */
  char *etcd_password;    /* --etcd-password, or the content of --etcd-password-file
                             (one trailing newline stripped); wiped by wf_config_finish */
  char *etcd_password_file; /* --etcd-password-file / WORKFLOW_ETCD_PASSWORD_FILE */
  char *etcd_cacert;      /* --etcd-cacert / WORKFLOW_ETCD_CACERT: CA for https:// endpoints;
                             NULL = the system trust store */
  char *etcd_cert;        /* --etcd-cert / WORKFLOW_ETCD_CERT: client certificate (with key) */
  char *etcd_key;         /* --etcd-key / WORKFLOW_ETCD_KEY: its private key */
  unsigned etcd_watch_idle; /* --etcd-watch-idle seconds: probe a silent watch; default 10 */
  char *listen;           /* --listen / WORKFLOW_LISTEN: HOST:PORT of /healthz, /readyz,
                             /metrics; NULL = off (the default) */
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
