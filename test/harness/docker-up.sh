#!/bin/bash
# docker-up.sh - start a private Docker Engine (API 1.41 on its own unix socket)
# with a busybox test image, plus private docker-registry instances on free
# loopback ports holding pushed copies of it.  For the tests, the benchmark and
# the demo; based on docs/peers.md, but every path and port is
# a parameter so that several instances can run side by side.
#
# Everything lives under WF_DOCKER_DIR: the socket, data-root, exec-root, pid
# files and logs.  Processes are tracked by the PIDs in their pid files and
# stopped by docker-down.sh, never by name.  Idempotent: what is already alive
# (by its pid file) is left alone, so "docker-down.sh ONLY=dockerd" followed by
# this script restarts just dockerd.
#
# Env knobs:
#   WF_DOCKER_DIR      state dir (required; created if missing; keep it short,
#                      containerd puts a unix socket under it)
#   WF_DOCKER_REGISTRY 1 = also run a registry without auth (default 1)
#   WF_DOCKER_AUTH     1 = also run a registry with htpasswd auth, user
#                      "wf", password "wfpass" (default 0)
#   WF_DOCKER_BROKEN   1 = also push "wf/broken:1" to the plain registry and
#                      delete its layer blob there, so that pulling it fails
#                      inside the progress stream (default 0)
#   REGISTRY_PORT, AUTH_REGISTRY_PORT   ports (default: free ones)
#   DOCKERD_FLAGS      dockerd flags (default: no bridge, no iptables, so that
#                      several dockerds never fight over docker0 or the
#                      firewall); if dockerd fails with them it is retried
#                      with vfs storage too
# Output: shell-sourceable lines (also written to $WF_DOCKER_DIR/env):
#   DOCKER_HOST DOCKER_SOCK DOCKERD_PID TEST_IMAGE REGISTRY REGISTRY_PID
#   AUTH_REGISTRY AUTH_REGISTRY_PID
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${WF_DOCKER_DIR:?set WF_DOCKER_DIR to a state directory}"
WF_DOCKER_REGISTRY=${WF_DOCKER_REGISTRY:-1}
WF_DOCKER_AUTH=${WF_DOCKER_AUTH:-0}
WF_DOCKER_BROKEN=${WF_DOCKER_BROKEN:-0}
DOCKERD_FLAGS=${DOCKERD_FLAGS:---bridge=none --iptables=false --ip-masq=false}
mkdir -p "$WF_DOCKER_DIR"
D=$(cd "$WF_DOCKER_DIR" && pwd)
SOCK=$D/docker.sock
IMAGE=wf/busybox:latest
API=http://d/v1.41
cd "$D"
log() { echo "[docker-up $(date +%T)] $*" >&2; }
# shellcheck source=engine-lib.sh
. "$HERE/engine-lib.sh"

missing=()
[ -x /usr/sbin/dockerd ] || missing+=(docker.io)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
command -v curl >/dev/null || missing+=(curl)
if [ "$WF_DOCKER_REGISTRY" = 1 ] || [ "$WF_DOCKER_AUTH" = 1 ]; then
  command -v docker-registry >/dev/null || missing+=(docker-registry)
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "missing packages: ${missing[*]} (scripts/install-deps.sh installs them)"
  exit 1
fi

# ---- dockerd ----------------------------------------------------------------------
start_dockerd() {
  mkdir -p "$D/root" "$D/exec"
  # dockerd writes --pidfile itself and refuses to start if it exists.
  rm -f "$D/dockerd.pid"
  # shellcheck disable=SC2086
  setsid /usr/sbin/dockerd -H "unix://$SOCK" --data-root "$D/root" --exec-root "$D/exec" \
    --pidfile "$D/dockerd.pid" $1 >>"$D/dockerd.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$D/dockerd.spawned"
  for _ in $(seq 1 150); do
    curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  kill "$pid" 2>/dev/null
  return 1
}
if alive "$D/dockerd.pid"; then
  log "dockerd already running (pid $(cat "$D/dockerd.pid"))"
elif ! start_dockerd "$DOCKERD_FLAGS"; then
  log "dockerd failed with '$DOCKERD_FLAGS'; retrying with vfs storage"
  tail -5 "$D/dockerd.log" >&2
  start_dockerd "$DOCKERD_FLAGS --storage-driver=vfs" \
    || { tail -20 "$D/dockerd.log" >&2; log "dockerd failed"; exit 1; }
fi
# The pid file may lag the socket by a moment.
for _ in $(seq 1 50); do [ -s "$D/dockerd.pid" ] && break; sleep 0.1; done
[ -s "$D/dockerd.pid" ] || cp "$D/dockerd.spawned" "$D/dockerd.pid"
log "dockerd up: unix://$SOCK (pid $(cat "$D/dockerd.pid"))"

# ---- test image: busybox-static as a one-layer image, no registry needed --------
if ! dcurl "$API/images/$IMAGE/json" >/dev/null; then
  make_rootfs "$D/rootfs"
  import_image "$D/rootfs" wf/busybox latest
  rm -rf "$D/rootfs"
fi
log "image $IMAGE present"

# ---- registries ------------------------------------------------------------------
REGISTRY= REGISTRY_PID= AUTH_REGISTRY= AUTH_REGISTRY_PID=
if [ "$WF_DOCKER_REGISTRY" = 1 ] || [ "$WF_DOCKER_BROKEN" = 1 ]; then
  start_registry registry "${REGISTRY_PORT:-$(free_port)}"
  REGISTRY=127.0.0.1:$(cat "$D/registry.port")
  REGISTRY_PID=$(cat "$D/registry.pid")
  # dockerd treats 127.0.0.0/8 registries as insecure (plain HTTP) by default.
  push "$IMAGE" "$REGISTRY" wf/busybox latest e30=
  log "registry up: $REGISTRY (pid $REGISTRY_PID), holds wf/busybox:latest"
fi
if [ "$WF_DOCKER_BROKEN" = 1 ]; then
  # A layer of its own (an extra file), so that the pull cannot reuse the
  # busybox layer dockerd already has; then its blob goes from the registry.
  make_rootfs "$D/rootfs-broken" broken
  import_image "$D/rootfs-broken" wf/broken 1
  rm -rf "$D/rootfs-broken"
  push wf/broken:1 "$REGISTRY" wf/broken 1 e30=
  dcurl -X DELETE "$API/images/wf/broken:1" >/dev/null
  # The registry stores the compressed layer under the digest its manifest
  # names: delete just that blob's data.
  break_image "$REGISTRY" wf/broken 1
  log "registry holds wf/broken:1 without its layer blob"
fi
if [ "$WF_DOCKER_AUTH" = 1 ]; then
  write_htpasswd "$D/htpasswd"
  start_registry auth-registry "${AUTH_REGISTRY_PORT:-$(free_port)}" "$D/htpasswd"
  AUTH_REGISTRY=127.0.0.1:$(cat "$D/auth-registry.port")
  AUTH_REGISTRY_PID=$(cat "$D/auth-registry.pid")
  push "$IMAGE" "$AUTH_REGISTRY" wf/busybox latest "$(registry_auth "$AUTH_REGISTRY")"
  log "auth registry up: $AUTH_REGISTRY (pid $AUTH_REGISTRY_PID, user wf), holds wf/busybox:latest"
fi

cat >"$D/env" <<EOF
DOCKER_HOST=unix://$SOCK
DOCKER_SOCK=$SOCK
DOCKERD_PID=$(cat "$D/dockerd.pid")
TEST_IMAGE=$IMAGE
REGISTRY=$REGISTRY
REGISTRY_PID=$REGISTRY_PID
AUTH_REGISTRY=$AUTH_REGISTRY
AUTH_REGISTRY_PID=$AUTH_REGISTRY_PID
EOF
cat "$D/env"
