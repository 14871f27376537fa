#!/bin/bash
# podman-down.sh - stop what podman-up.sh started in WF_DOCKER_DIR, by the
# PIDs in its pid files (never by name).
#
# Env knobs:
#   WF_DOCKER_DIR  the state dir podman-up.sh used (required)
#   ONLY=dockerd   stop only the service (a test's "engine went away"; the
#                  name is docker-down.sh's).  Its containers keep running:
#                  conmon, not the service, holds each of them
#   KILL=1         SIGKILL instead of SIGTERM
#   CLEAN=1        also remove every container of this instance, kill what
#                  is left of them, unmount our mounts and delete the dir
set -uo pipefail
: "${WF_DOCKER_DIR:?set WF_DOCKER_DIR to the state directory}"
[ -d "$WF_DOCKER_DIR" ] || exit 0
D=$(cd "$WF_DOCKER_DIR" && pwd)
ONLY=${ONLY:-}
log() { echo "[podman-down $(date +%T)] $*" >&2; }
# shellcheck source=engine-lib.sh
. "$(dirname "$0")/engine-lib.sh"

if [ -z "$ONLY" ] && [ -x "$D/pm" ] && mountpoint -q "$D/ns/mnt"; then
  # The CLI works without the service: every container goes, its conmon,
  # mounts and network namespace with it.
  timeout 120 "$D/pm" rm -af -t 0 >/dev/null 2>>"$D/podman.log"
fi
stop_pidfile "$D/podman.pid" "podman service"
if [ -z "$ONLY" ]; then
  stop_pidfile "$D/registry.pid" docker-registry
  stop_pidfile "$D/auth-registry.pid" docker-registry-auth
fi
rm -f "$D/env"

if [ "${CLEAN:-0}" = 1 ]; then
  # Anything the rm missed: the processes of our containers (their cgroup is
  # named after the container id in our storage), then the conmon monitors
  # of this instance (their command line names our storage).
  kill_containers "$D/root/vfs-containers" "libpod-"
  kill_cmdline "^/usr/bin/conmon .*$D/root/"
  # Our mounts: the mount namespace's (everything the containers mounted
  # lives in it and goes with it), deepest first.
  remove_state
fi
exit 0
