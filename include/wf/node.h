/*
 * node: the agent process.  Wires the etcd client, the engine and the node
 * registration to one uv loop, handles SIGTERM/SIGINT with a graceful drain,
 * and returns the process exit code.
 */
#ifndef WF_NODE_H
#define WF_NODE_H

#include "wf/config.h"

/* Runs the agent until it is told to stop.  cfg is borrowed for the whole
 * run.  Returns 0 after a clean shutdown, 2 for a start-up configuration
 * error (e.g. a bad --actions-dir file), 1 otherwise. */
int wf_node_run(const wf_config_t *cfg);
/* The same, with SIGHUP reloading the configuration: wf_config_load() runs
 * again on argc/argv (borrowed for the whole run; cfg must have come from
 * them) and the process environment.  wf_node_run is this with argv NULL,
 * where SIGHUP is logged and ignored. */
int wf_node_run2(const wf_config_t *cfg, int argc, char **argv);

#endif
