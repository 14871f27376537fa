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

# stop_pidfile FILE NAME: TERM (or KILL), wait up to 20 s, then KILL.
stop_pidfile() {
  [ -f "$1" ] || return 0
  local pid
  pid=$(cat "$1")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    if [ "${KILL:-0}" = 1 ]; then kill -KILL "$pid"; else kill -TERM "$pid"; fi
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$2 ($pid) ignored TERM for 20s, sending KILL"
      kill -KILL "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    log "$2 stopped (pid $pid)"
  fi
  rm -f "$1"
}

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
  if [ -d "$D/root/vfs-containers" ]; then
    for id in $(ls "$D/root/vfs-containers"); do
      for p in /proc/[0-9]*; do
        if grep -qs -- "libpod-$id\$" "$p/cgroup"; then kill -KILL "${p#/proc/}" 2>/dev/null; fi
      done
    done
  fi
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "^/usr/bin/conmon .*$D/root/"; then
      kill -KILL "${p#/proc/}" 2>/dev/null
    fi
  done
  # Our mounts: the mount namespace's (everything the containers mounted
  # lives in it and goes with it), deepest first.
  for _ in 1 2 3; do
    mounts=$(awk -v d="$D/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
    [ -z "$mounts" ] && break
    for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  done
  if awk -v d="$D/" 'index($2, d) == 1 {f=1} END {exit !f}' /proc/self/mounts; then
    log "mounts still present under $D, not deleting it"
    exit 1
  fi
  rm -rf "$D"
  log "state removed"
fi
exit 0
