#!/bin/bash
# podman-up.sh - start a private Podman service (`podman system service`:
# Docker API 1.41 on its own unix socket) with the same busybox test image and
# private docker-registry instances as docker-up.sh, so that the DOCKER
# runner's tests run against Podman as a second engine (WF_ENGINE=podman in
# test/harness/docker.py).  Debian's podman 4.3.1, as root.
#
# Everything lives under WF_DOCKER_DIR: the socket, Podman's storage (--root),
# run root, tmp dir, network config, containers.conf and registries.conf, pid
# files and logs.  Processes are tracked by their pid files and stopped by
# podman-down.sh, never by name.  Idempotent: what is already alive is left
# alone, so "podman-down.sh ONLY=dockerd" followed by this script restarts
# just the service (the containers keep running meanwhile: conmon, not the
# service, holds each of them).
#
# Why each setting (each was needed here):
#   default_ulimits = []  Podman's default RLIMIT_NOFILE (1048576) exceeds
#                         what this host allows: every container failed to
#                         start with an rlimit EPERM.
#   default_network       the compat API puts a container without NetworkMode
#                         on the default network; Podman's own ("podman", a
#                         CNI bridge) would create a host bridge and iptables
#                         rules.  A loopback-only CNI network of our own
#                         instead, as docker-up.sh runs dockerd --bridge=none.
#   registries.conf       the private registries speak plain HTTP: each is
#                         marked insecure (dockerd assumes that of
#                         127.0.0.0/8 by itself).  Written before the service
#                         starts: Podman caches the file.
#   a mount namespace     the service, conmon and the containers run in a
#                         mount namespace of their own ($D/ns/mnt, kept by a
#                         bind mount, slave to the host's), so that their
#                         mounts (each container's shm, /run/netns and its
#                         namespaces) never reach the host's table and go
#                         with it; podman-down.sh CLEAN=1 unmounts it.
#   vfs, cgroupfs, file   no overlay mounts, no systemd.
#   the service's cwd $D  conmon 2.1.6 writes its "oom" marker into its
#                         working directory, which it inherits from the
#                         service (Podman 4.3.1 looks for it in the bundle and
#                         never finds it: docs/docker.md, "Podman").
#
# Env knobs: WF_DOCKER_DIR (required), WF_DOCKER_REGISTRY, WF_DOCKER_AUTH,
# WF_DOCKER_BROKEN, REGISTRY_PORT, AUTH_REGISTRY_PORT, as for docker-up.sh.
# Output: the lines docker-up.sh prints (DOCKERD_PID is the service's PID),
# plus ENGINE=podman; also written to $WF_DOCKER_DIR/env.  $WF_DOCKER_DIR/pm
# runs the podman CLI on this instance (`$WF_DOCKER_DIR/pm ps -a`).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${WF_DOCKER_DIR:?set WF_DOCKER_DIR to a state directory}"
WF_DOCKER_REGISTRY=${WF_DOCKER_REGISTRY:-1}
WF_DOCKER_AUTH=${WF_DOCKER_AUTH:-0}
WF_DOCKER_BROKEN=${WF_DOCKER_BROKEN:-0}
mkdir -p "$WF_DOCKER_DIR"
D=$(cd "$WF_DOCKER_DIR" && pwd)
SOCK=$D/podman.sock
IMAGE=wf/busybox:latest
API=http://d/v1.41
cd "$D"
log() { echo "[podman-up $(date +%T)] $*" >&2; }
# shellcheck source=engine-lib.sh
. "$HERE/engine-lib.sh"

missing=()
command -v podman >/dev/null || missing+=(podman)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
command -v curl >/dev/null || missing+=(curl)
if [ "$WF_DOCKER_REGISTRY" = 1 ] || [ "$WF_DOCKER_AUTH" = 1 ] || [ "$WF_DOCKER_BROKEN" = 1 ]; then
  command -v docker-registry >/dev/null || missing+=(docker-registry)
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "missing packages: ${missing[*]} (scripts/install-deps.sh installs them)"
  exit 1
fi

# ---- registries first: registries.conf must name their ports --------------------
if [ "$WF_DOCKER_REGISTRY" = 1 ] || [ "$WF_DOCKER_BROKEN" = 1 ]; then
  start_registry registry "${REGISTRY_PORT:-$(free_port)}"
fi
if [ "$WF_DOCKER_AUTH" = 1 ]; then
  [ -f "$D/htpasswd" ] || write_htpasswd "$D/htpasswd"
  start_registry auth-registry "${AUTH_REGISTRY_PORT:-$(free_port)}" "$D/htpasswd"
fi

# ---- configuration ----------------------------------------------------------------
mkdir -p "$D/root" "$D/run" "$D/tmp" "$D/net" "$D/ns"
if ! mountpoint -q "$D/ns/mnt" 2>/dev/null; then
  # A namespace persists as a bind mount of its nsfs file, which must sit
  # on a private mount.
  mountpoint -q "$D/ns" || { mount --bind "$D/ns" "$D/ns" && mount --make-private "$D/ns"; }
  touch "$D/ns/mnt"
  unshare --mount="$D/ns/mnt" --propagation slave true \
    || { log "cannot make a mount namespace in $D/ns"; exit 1; }
fi
cat >"$D/containers.conf" <<EOF
[containers]
default_ulimits = []
[network]
default_network = "wf-lo"
EOF
cat >"$D/net/wf-lo.conflist" <<'EOF'
{"cniVersion": "0.4.0", "name": "wf-lo", "plugins": [{"type": "loopback"}]}
EOF
{
  echo 'unqualified-search-registries = []'
  for r in registry auth-registry; do
    [ -f "$D/$r.port" ] || continue
    printf '[[registry]]\nlocation = "127.0.0.1:%s"\ninsecure = true\n' "$(cat "$D/$r.port")"
  done
} >"$D/registries.conf"
cat >"$D/pm" <<EOF
#!/bin/sh
# The podman CLI on the instance in $D (written by podman-up.sh), in its
# mount namespace, working in $D.
export CONTAINERS_CONF=$D/containers.conf CONTAINERS_REGISTRIES_CONF=$D/registries.conf
exec nsenter --mount=$D/ns/mnt --wd=$D podman --root $D/root --runroot $D/run --tmpdir $D/tmp \\
  --network-config-dir $D/net --storage-driver vfs --cgroup-manager cgroupfs \\
  --events-backend file "\$@"
EOF
chmod +x "$D/pm"

# ---- the service ------------------------------------------------------------------
if alive "$D/podman.pid"; then
  log "podman service already running (pid $(cat "$D/podman.pid"))"
else
  rm -f "$SOCK"
  # --time 0: no idle exit.  setsid: its own session, so that a test's
  # process group signals do not reach it; stopped by PID only.
  setsid "$D/pm" system service --time 0 "unix://$SOCK" >>"$D/podman.log" 2>&1 </dev/null &
  echo $! >"$D/podman.pid"
  ok=0
  for _ in $(seq 1 150); do
    if curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; then ok=1; break; fi
    alive "$D/podman.pid" || break
    sleep 0.1
  done
  [ $ok = 1 ] || { tail -20 "$D/podman.log" >&2; log "podman service failed"; exit 1; }
fi
log "podman service up: unix://$SOCK (pid $(cat "$D/podman.pid"))"

# ---- test image and pushes ---------------------------------------------------------
if ! dcurl "$API/images/$IMAGE/json" >/dev/null; then
  make_rootfs "$D/rootfs"
  import_image "$D/rootfs" wf/busybox latest
  rm -rf "$D/rootfs"
fi
log "image $IMAGE present"

REGISTRY= REGISTRY_PID= AUTH_REGISTRY= AUTH_REGISTRY_PID=
if [ -f "$D/registry.port" ]; then
  REGISTRY=127.0.0.1:$(cat "$D/registry.port")
  REGISTRY_PID=$(cat "$D/registry.pid")
  if [ ! -f "$D/registry.pushed" ]; then
    push "$IMAGE" "$REGISTRY" wf/busybox latest e30=
    touch "$D/registry.pushed"
  fi
  log "registry up: $REGISTRY (pid $REGISTRY_PID), holds wf/busybox:latest"
fi
if [ "$WF_DOCKER_BROKEN" = 1 ] && [ ! -f "$D/broken.pushed" ]; then
  # A layer of its own (an extra file), so that the pull cannot reuse the
  # busybox layer; then its blob goes from the registry.
  make_rootfs "$D/rootfs-broken" broken
  import_image "$D/rootfs-broken" wf/broken 1
  rm -rf "$D/rootfs-broken"
  push wf/broken:1 "$REGISTRY" wf/broken 1 e30=
  dcurl -X DELETE "$API/images/wf/broken:1" >/dev/null
  break_image "$REGISTRY" wf/broken 1
  touch "$D/broken.pushed"
  log "registry holds wf/broken:1 without its layer blob"
fi
if [ -f "$D/auth-registry.port" ]; then
  AUTH_REGISTRY=127.0.0.1:$(cat "$D/auth-registry.port")
  AUTH_REGISTRY_PID=$(cat "$D/auth-registry.pid")
  if [ ! -f "$D/auth-registry.pushed" ]; then
    push "$IMAGE" "$AUTH_REGISTRY" wf/busybox latest "$(registry_auth "$AUTH_REGISTRY")"
    touch "$D/auth-registry.pushed"
  fi
  log "auth registry up: $AUTH_REGISTRY (pid $AUTH_REGISTRY_PID, user wf), holds wf/busybox:latest"
fi

cat >"$D/env" <<EOF
ENGINE=podman
DOCKER_HOST=unix://$SOCK
DOCKER_SOCK=$SOCK
DOCKERD_PID=$(cat "$D/podman.pid")
TEST_IMAGE=$IMAGE
REGISTRY=$REGISTRY
REGISTRY_PID=$REGISTRY_PID
AUTH_REGISTRY=$AUTH_REGISTRY
AUTH_REGISTRY_PID=$AUTH_REGISTRY_PID
EOF
cat "$D/env"
