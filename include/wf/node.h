/*
 * node: the agent process.  Wires the etcd client, the runners, the engine
 * and the node registration to one uv loop, handles SIGTERM/SIGINT with a
 * graceful drain and SIGHUP with a reload, and returns the process exit
 * code.  It takes its settings as a wf_node_opts_t and never reads flags or
 * files itself (cli/ does, and hands a reload function for SIGHUP).
 */
#ifndef WF_NODE_H
#define WF_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "wf/util.h"

/* The settings the agent runs with (docs/configuration.md names the flag,
 * environment variable and config key of each).  Strings belong to whoever
 * filled the struct (cli/config.c's loader). */
typedef struct wf_node_opts_s {
  char *name;             /* --name / WORKFLOW_NODE_NAME; default host name */
  char **etcd;            /* --etcd / WORKFLOW_ETCD, split on ','; NULL-terminated */
  size_t netcd;
  char *prefix;           /* --prefix / WORKFLOW_PREFIX; default "inforboard" */
  char *log_dir;          /* --log-dir / WORKFLOW_LOG_DIR; default "runner_log" */
  int64_t log_retention_ms; /* --log-retention DURATION: remove step logs older than
                               this (wf/logretain.h); 0 = off (the default) */
  uint64_t log_max_bytes; /* --log-max-bytes SIZE: keep at most this many bytes of step
                             logs, oldest removed first; 0 = off (the default) */
  char *output_dir;       /* --output-dir / WORKFLOW_OUTPUT_DIR; default "runner_output" */
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
                             (one trailing newline stripped); wiped when freed */
  char *etcd_cacert;      /* --etcd-cacert / WORKFLOW_ETCD_CACERT: CA for https:// endpoints;
                             NULL = the system trust store */
  char *etcd_cert;        /* --etcd-cert / WORKFLOW_ETCD_CERT: client certificate (with key) */
  char *etcd_key;         /* --etcd-key / WORKFLOW_ETCD_KEY: its private key */
  int etcd_http2;         /* --etcd-http2 auto|off: WF_HTTP2_AUTO (0, the default) or
                             WF_HTTP2_OFF (wf/http.h), the etcd client's `http2` */
  unsigned etcd_watch_idle; /* --etcd-watch-idle seconds: probe a silent watch; default 10 */
  char *listen;           /* --listen / WORKFLOW_LISTEN: HOST:PORT of /healthz, /readyz,
                             /metrics and step logs; NULL = off (the default) */
  char *listen_token_file; /* --listen-token-file: bearer token /metrics and logs need */
  char *listen_cert;      /* --listen-cert / --listen-key: TLS on --listen */
  char *listen_key;
  char *listen_client_ca; /* --listen-client-ca: client certificates required */
  unsigned listen_max_followers; /* --listen-max-followers; default 64 */
} wf_node_opts_t;

/* How SIGHUP loads the settings again (NULL in wf_node_run: SIGHUP is logged
 * and ignored). */
typedef struct wf_node_reload_s {
  /* Runs on a threadpool thread, so it must touch nothing but its own data
   * and *out.  Fills *out with the settings loaded again and returns what
   * owns their memory (handed to release later), or NULL with err filled
   * (then out is left as it is). */
  void *(*load)(wf_node_opts_t *out, char *err, size_t errlen, void *data);
  /* Frees what load returned (on the loop, once the reload is applied or
   * dropped). */
  void (*release)(void *loaded, void *data);
  void *data;
} wf_node_reload_t;

/* Runs the agent until it is told to stop.  opts (and reload, may be NULL)
 * are borrowed for the whole run.  Returns 0 after a clean shutdown, 2 for
 * a start-up configuration error (e.g. a bad --actions-dir file), 1
 * otherwise. */
int wf_node_run(const wf_node_opts_t *opts, const wf_node_reload_t *reload);

#endif
