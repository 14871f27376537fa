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
#   WF_DOCKER_TIMING=1  print the time of each phase to stderr
set -uo pipefail
: "${WF_DOCKER_DIR:?set WF_DOCKER_DIR to the state directory}"
[ -d "$WF_DOCKER_DIR" ] || exit 0
D=$(cd "$WF_DOCKER_DIR" && pwd)
SOCK=$D/docker.sock
ONLY=${ONLY:-}
log() { echo "[docker-down $(date +%T)] $*" >&2; }
TIMING_WHO=docker-down
# shellcheck source=engine-lib.sh
. "$(dirname "$0")/engine-lib.sh"

# stop_dockerd: TERM, then wait for dockerd to exit.  Once it has logged the
# end of its shutdown and its containerd has exited, all that is left of it
# is a wait for containerd in 1 s steps (libcontainerd's stopDaemon), so it
# gets a KILL then.  Only for the final stop: a test's "engine went away"
# (ONLY=dockerd) gets the whole orderly exit.
stop_dockerd() {
  local pid cpid off i
  [ -f "$D/dockerd.pid" ] || return 0
  pid=$(cat "$D/dockerd.pid")
  if pid_live "$pid"; then
    cpid=$(cat "$D/exec/containerd/containerd.pid" 2>/dev/null || true)
    off=$(stat -c %s "$D/dockerd.log" 2>/dev/null || echo 0)
    kill -TERM "$pid"
    for ((i = 0; i < 1000; i++)); do
      pid_live "$pid" || break
      if ! pid_live "$cpid" &&
         tail -c +$((off + 1)) "$D/dockerd.log" 2>/dev/null | grep -q 'Daemon shutdown complete'; then
        kill -KILL "$pid" 2>/dev/null
        wait_gone "$pid" 250
        break
      fi
      sleep 0.02
    done
    pid_live "$pid" || log "dockerd stopped (pid $pid)"
  fi
  # Whatever is left (TERM ignored for 20 s): stop_pidfile's KILL.
  stop_pidfile "$D/dockerd.pid" dockerd
}

if [ -z "$ONLY" ]; then
  # Remove every container first so that dockerd does not spend its shutdown
  # timeout stopping them one by one.  dockerd keeps a dir for each of its
  # containers in root/containers: none there, no request.
  if compgen -G "$D/root/containers/*" >/dev/null && [ -S "$SOCK" ] &&
     curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; then
    for id in $(curl -s --unix-socket "$SOCK" 'http://d/v1.41/containers/json?all=1' |
                grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4); do
      curl -s --unix-socket "$SOCK" -X DELETE "http://d/v1.41/containers/$id?force=1&v=1" >/dev/null &
    done
    wait
  fi
  phase "remove containers"
  stop_pidfile "$D/registry.pid" docker-registry
  stop_pidfile "$D/auth-registry.pid" docker-registry-auth
  # The scratch registries of a template build that did not finish.
  for f in "$D"/tmpl-*.pid; do [ -e "$f" ] && stop_pidfile "$f" docker-registry-template; done
  phase "registries stop"
fi
# dockerd stops its own containerd child on TERM.  A dockerd that died before
# writing its pid file is found through the PID docker-up.sh spawned.
[ -f "$D/dockerd.pid" ] || { [ -f "$D/dockerd.spawned" ] && cp "$D/dockerd.spawned" "$D/dockerd.pid"; }
if [ -z "$ONLY" ] && [ "${KILL:-0}" != 1 ]; then
  stop_dockerd
else
  stop_pidfile "$D/dockerd.pid" dockerd
fi
phase "dockerd stop"
if [ "${KILL:-0}" = 1 ]; then
  # containerd, a child of dockerd, outlives a SIGKILLed dockerd.  Once it is
  # dead its pid file goes: until PID 1 reaps it, a restarted dockerd would
  # take the zombie for a running containerd and wait for it.
  cpid=$(cat "$D/exec/containerd/containerd.pid" 2>/dev/null || true)
  if [ -n "$cpid" ]; then
    kill -KILL "$cpid" 2>/dev/null
    wait_gone "$cpid" 250 && rm -f "$D/exec/containerd/containerd.pid"
  fi
fi
rm -f "$D/dockerd.spawned" "$D/env"

if [ "${CLEAN:-0}" = 1 ]; then
  # A container whose dockerd was killed keeps running under its shim: kill
  # the processes of our containers (found by the cgroup named after each
  # container id in our data-root), then the shims that serve this instance
  # (their command line names our exec-root's containerd socket), so nothing
  # holds our mounts.
  kill_containers "$D/root/containers" "/docker/"
  phase "kill containers"
  kill_cmdline "$D/exec/containerd/containerd.sock"
  phase "kill shims"
  # dockerd normally unmounts what it mounted, but one that died early can
  # leave its data-root bind-mounted on itself, and killed containers leave
  # overlay and shm mounts: ours go, deepest first.
  remove_state
  phase "remove state"
fi
phase total
exit 0
