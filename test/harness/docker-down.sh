#!/bin/bash
# docker-down.sh - stop what docker-up.sh started in WF_DOCKER_DIR, by the PIDs
# in its pid files (never by name).
#
# Env knobs:
#   WF_DOCKER_DIR  the state dir docker-up.sh used (required)
#   ONLY=dockerd   stop only dockerd (a test's "engine went away"); its
#                  containers are left to dockerd's own shutdown
#   KILL=1         SIGKILL instead of SIGTERM (a crash; dockerd's containers
#                  keep running under their shims)
#   CLEAN=1        also unmount our own leftover mounts and delete the dir
set -uo pipefail
: "${WF_DOCKER_DIR:?set WF_DOCKER_DIR to the state directory}"
[ -d "$WF_DOCKER_DIR" ] || exit 0
D=$(cd "$WF_DOCKER_DIR" && pwd)
SOCK=$D/docker.sock
ONLY=${ONLY:-}
log() { echo "[docker-down $(date +%T)] $*" >&2; }
# shellcheck source=engine-lib.sh
. "$(dirname "$0")/engine-lib.sh"

if [ -z "$ONLY" ]; then
  # Remove every container first so that dockerd does not spend its shutdown
  # timeout stopping them one by one.
  if [ -S "$SOCK" ] && curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; then
    for id in $(curl -s --unix-socket "$SOCK" 'http://d/v1.41/containers/json?all=1' |
                python3 -c 'import json,sys; print(" ".join(c["Id"] for c in json.load(sys.stdin)))'); do
      curl -s --unix-socket "$SOCK" -X DELETE "http://d/v1.41/containers/$id?force=1&v=1" >/dev/null
    done
  fi
  stop_pidfile "$D/registry.pid" docker-registry
  stop_pidfile "$D/auth-registry.pid" docker-registry-auth
fi
# dockerd stops its own containerd child on TERM.  A dockerd that died before
# writing its pid file is found through the PID docker-up.sh spawned.
[ -f "$D/dockerd.pid" ] || { [ -f "$D/dockerd.spawned" ] && cp "$D/dockerd.spawned" "$D/dockerd.pid"; }
stop_pidfile "$D/dockerd.pid" dockerd
if [ "${KILL:-0}" = 1 ]; then
  # containerd, a child of dockerd, outlives a SIGKILLed dockerd.
  cpid=$(cat "$D/exec/containerd/containerd.pid" 2>/dev/null || true)
  [ -n "$cpid" ] && kill -KILL "$cpid" 2>/dev/null
fi
rm -f "$D/dockerd.spawned" "$D/env"

if [ "${CLEAN:-0}" = 1 ]; then
  # A container whose dockerd was killed keeps running under its shim: kill
  # the processes of our containers (found by the cgroup named after each
  # container id in our data-root), then the shims that serve this instance
  # (their command line names our exec-root's containerd socket), so nothing
  # holds our mounts.
  kill_containers "$D/root/containers" "/docker/"
  kill_cmdline "$D/exec/containerd/containerd.sock"
  # dockerd normally unmounts what it mounted, but one that died early can
  # leave its data-root bind-mounted on itself, and killed containers leave
  # overlay and shm mounts: ours go, deepest first.
  remove_state
fi
exit 0
