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
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
dcurl() { curl -sf --unix-socket "$SOCK" "$@"; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

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
# make_rootfs DIR [EXTRA_FILE_CONTENT]: a rootfs with every busybox applet.
make_rootfs() {
  rm -rf "$1" && mkdir -p "$1"/bin "$1"/tmp "$1"/etc "$1"/proc "$1"/sys "$1"/dev "$1"/data
  cp /bin/busybox "$1/bin/busybox"
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"
  done
  chmod 1777 "$1/tmp"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$1/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>"$1/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$1/etc/group"
  [ -z "${2:-}" ] || echo "$2" >"$1/etc/wf-extra"
}
# import_image DIR REPO TAG
import_image() {
  tar --numeric-owner --owner=0 --group=0 -C "$1" -cf "$1.tar" .
  dcurl -X POST -H 'Content-Type: application/x-tar' --data-binary @"$1.tar" \
    "$API/images/create?fromSrc=-&repo=$2&tag=$3&changes=CMD%20%5B%22sh%22%5D" >/dev/null
  rm -f "$1.tar"
}
if ! dcurl "$API/images/$IMAGE/json" >/dev/null; then
  make_rootfs "$D/rootfs"
  import_image "$D/rootfs" wf/busybox latest
  rm -rf "$D/rootfs"
fi
log "image $IMAGE present"

# ---- registries ------------------------------------------------------------------
# start_registry NAME PORT [HTPASSWD]: one docker-registry on 127.0.0.1:PORT.
start_registry() {
  local name=$1 port=$2 htpasswd=${3:-}
  if ! alive "$D/$name.pid"; then
    mkdir -p "$D/$name-data"
    {
      echo "version: 0.1"
      echo "log: {level: warn}"
      echo "storage: {filesystem: {rootdirectory: $D/$name-data}, delete: {enabled: true}}"
      echo "http: {addr: 127.0.0.1:$port}"
      [ -z "$htpasswd" ] || echo "auth: {htpasswd: {realm: wf, path: $htpasswd}}"
    } >"$D/$name.yml"
    setsid docker-registry serve "$D/$name.yml" >"$D/$name.log" 2>&1 </dev/null &
    echo $! >"$D/$name.pid"
    echo "$port" >"$D/$name.port"
  fi
  port=$(cat "$D/$name.port")
  for _ in $(seq 1 100); do
    # 200 without auth, 401 with: either way it answers.
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
    [ "$code" = 200 ] || [ "$code" = 401 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || [ "$code" = 401 ] || { tail "$D/$name.log" >&2; log "$name failed"; exit 1; }
}
# push IMAGE REGISTRY REPO TAG AUTH: tag the local IMAGE as REGISTRY/REPO:TAG and push it.
push() {
  dcurl -X POST "$API/images/$1/tag?repo=$2/$3&tag=$4" >/dev/null
  dcurl -X POST -H "X-Registry-Auth: $5" "$API/images/$2/$3/push?tag=$4" | grep -q '"Digest"' \
    || { log "push of $2/$3:$4 failed"; exit 1; }
  # Only the registry keeps it: tests pull it back.
  dcurl -X DELETE "$API/images/$2/$3:$4" >/dev/null
}
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
  digest=$(curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/wf/broken/manifests/1" | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"].split(":")[1])')
  rm -f "$D/registry-data/docker/registry/v2/blobs/sha256/${digest:0:2}/$digest/data"
  log "registry holds wf/broken:1 without its layer blob"
fi
if [ "$WF_DOCKER_AUTH" = 1 ]; then
  python3 - "$D/htpasswd" <<'PY' 2>/dev/null
import crypt, sys
open(sys.argv[1], "w").write("wf:" + crypt.crypt("wfpass", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)) + "\n")
PY
  start_registry auth-registry "${AUTH_REGISTRY_PORT:-$(free_port)}" "$D/htpasswd"
  AUTH_REGISTRY=127.0.0.1:$(cat "$D/auth-registry.port")
  AUTH_REGISTRY_PID=$(cat "$D/auth-registry.pid")
  auth=$(printf '{"username":"wf","password":"wfpass","serveraddress":"%s"}' "$AUTH_REGISTRY" \
    | base64 -w0 | tr '+/' '-_')
  push "$IMAGE" "$AUTH_REGISTRY" wf/busybox latest "$auth"
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
