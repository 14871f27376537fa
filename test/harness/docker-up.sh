#!/bin/bash
# docker-up.sh - start a private Docker Engine (API 1.41 on its own unix socket)
# with a busybox test image, plus private docker-registry instances on free
# loopback ports holding copies of it.  For the tests, the benchmark and
# the demo; based on docs/peers.md, but every path and port is
# a parameter so that several instances can run side by side.
#
# Everything lives under WF_DOCKER_DIR: the socket, data-root, exec-root, pid
# files and logs.  Processes are tracked by the PIDs in their pid files and
# stopped by docker-down.sh, never by name.  Idempotent: what is already alive
# (by its pid file) is left alone, so "docker-down.sh ONLY=dockerd" followed by
# this script restarts just dockerd.
#
# The template.  Importing busybox and pushing it to the registries through
# dockerd took seconds per instance, and every test case starts one.  So the
# first instance builds a template once (under a lock): the image as `docker
# save` wrote it, the storage of a registry holding wf/busybox:latest (pushed
# by dockerd, as before), that of one also holding wf/broken:1 without its
# layer blob, and the htpasswd file.  Every instance then loads the image and
# copies the storage into its own registries' dirs: each still has a private
# dockerd and private registries, with the same content as before (the local
# image is the one the registries hold).  The template lives in
# WF_DOCKER_CACHE, keyed by a hash of busybox-static and of the dockerd and
# docker-registry binaries; it is written to a temporary dir and renamed into
# place, so a build that crashed leaves no template (its temporary dir goes
# at the next build).
#
# Env knobs:
#   WF_DOCKER_DIR      state dir (required; created if missing; keep it short,
#                      containerd puts a unix socket under it)
#   WF_DOCKER_REGISTRY 1 = also run a registry without auth (default 1)
#   WF_DOCKER_AUTH     1 = also run a registry with htpasswd auth, user
#                      "wf", password "wfpass" (default 0)
#   WF_DOCKER_BROKEN   1 = the registry without auth (started for it) also
#                      holds "wf/broken:1" without its layer blob, so that
#                      pulling it fails inside the progress stream (default 0)
#   WF_DOCKER_CACHE    where the template is kept (default:
#                      $WF_BUILD_ROOT/harness-cache when WF_BUILD_ROOT is set,
#                      as meson test sets it; else, or when set to "",
#                      a template private to WF_DOCKER_DIR)
#   WF_DOCKER_TIMING   1 = print the time of each phase to stderr
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
TIMING_WHO=docker-up
# shellcheck source=engine-lib.sh
. "$HERE/engine-lib.sh"

WANT_REGISTRY=0
if [ "$WF_DOCKER_REGISTRY" = 1 ] || [ "$WF_DOCKER_BROKEN" = 1 ]; then WANT_REGISTRY=1; fi
WANT_AUTH=$WF_DOCKER_AUTH
missing=()
[ -x /usr/sbin/dockerd ] || missing+=(docker.io)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
command -v curl >/dev/null || missing+=(curl)
if [ "$WANT_REGISTRY" = 1 ] || [ "$WANT_AUTH" = 1 ]; then
  command -v docker-registry >/dev/null || missing+=(docker-registry)
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "missing packages: ${missing[*]} (scripts/install-deps.sh installs them)"
  exit 1
fi

phase preflight

# ---- dockerd, spawned first: it takes longest to answer ---------------------------
# spawn_dockerd FLAGS: starts dockerd (not waiting for it); its PID in
# $D/dockerd.spawned.  wait_dockerd: waits (up to 15 s) until it answers.
spawn_dockerd() {
  mkdir -p "$D/root" "$D/exec"
  # dockerd writes --pidfile itself and refuses to start if it exists.
  rm -f "$D/dockerd.pid"
  # shellcheck disable=SC2086
  setsid /usr/sbin/dockerd -H "unix://$SOCK" --data-root "$D/root" --exec-root "$D/exec" \
    --pidfile "$D/dockerd.pid" $1 >>"$D/dockerd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$D/dockerd.spawned"
}
wait_dockerd() {
  local pid
  pid=$(cat "$D/dockerd.spawned")
  for _ in $(seq 1 750); do
    curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && return 0
    pid_live "$pid" || return 1
    sleep 0.02
  done
  kill "$pid" 2>/dev/null
  return 1
}
SPAWNED=0
if alive "$D/dockerd.pid"; then
  log "dockerd already running (pid $(cat "$D/dockerd.pid"))"
else
  spawn_dockerd "$DOCKERD_FLAGS"
  SPAWNED=1
fi

# ---- the template: where, and its key ---------------------------------------------
# Bump TEMPLATE_RECIPE when what build_template makes changes.
TEMPLATE_RECIPE=1
if [ -z "${WF_DOCKER_CACHE+set}" ] && [ -n "${WF_BUILD_ROOT:-}" ]; then
  WF_DOCKER_CACHE=$WF_BUILD_ROOT/harness-cache
fi
CACHE=${WF_DOCKER_CACHE:-$D/template}
TMPL=
if command -v docker-registry >/dev/null; then
  key=$({ echo "recipe $TEMPLATE_RECIPE"
          stat -L -c '%n %s %Y' /usr/sbin/dockerd "$(command -v docker-registry)"
          sha256sum </bin/busybox; } | sha256sum | cut -c1-16)
  mkdir -p "$CACHE"
  CACHE=$(cd "$CACHE" && pwd)
  TMPL=$CACHE/docker-$key
fi
# Complete: build_template writes "complete" last, then renames the dir.
template_ok() { [ -n "$TMPL" ] && [ -f "$TMPL/complete" ]; }

# seed_registry NAME TEMPLATE_PART PORT [HTPASSWD]: the registry NAME gets a
# copy of the template's storage TEMPLATE_PART and is started (not waited
# for); nothing if it is alive already.
seed_registry() {
  alive "$D/$1.pid" && return 0
  rm -rf "${D:?}/$1-data"
  cp -a --reflink=auto "$TMPL/$2" "$D/$1-data"
  spawn_registry "$1" "$3" "${4:-}"
}
PORTS=()
seed_registries() {
  local plain=busybox
  if [ "$WF_DOCKER_BROKEN" = 1 ]; then plain=busybox+broken; fi
  [ ${#PORTS[@]} -gt 0 ] || mapfile -t PORTS < <(free_ports 2)
  if [ "$WANT_REGISTRY" = 1 ]; then
    seed_registry registry "$plain" "${REGISTRY_PORT:-${PORTS[0]}}"
  fi
  if [ "$WANT_AUTH" = 1 ]; then
    [ -f "$D/htpasswd" ] || cp "$TMPL/htpasswd" "$D/htpasswd"
    seed_registry auth-registry busybox "${AUTH_REGISTRY_PORT:-${PORTS[1]}}" "$D/htpasswd"
  fi
}
# With a template at hand the registries start now, while dockerd starts.
SEEDED=0
if template_ok && { [ "$WANT_REGISTRY" = 1 ] || [ "$WANT_AUTH" = 1 ]; }; then
  seed_registries
  SEEDED=1
fi
phase "template check, registries spawned"

if [ "$SPAWNED" = 1 ] && ! wait_dockerd; then
  log "dockerd failed with '$DOCKERD_FLAGS'; retrying with vfs storage"
  tail -5 "$D/dockerd.log" >&2
  spawn_dockerd "$DOCKERD_FLAGS --storage-driver=vfs"
  wait_dockerd || { tail -20 "$D/dockerd.log" >&2; log "dockerd failed"; exit 1; }
fi
phase "dockerd ready"
# The pid file may lag the socket by a moment.
for _ in $(seq 1 250); do [ -s "$D/dockerd.pid" ] && break; sleep 0.02; done
[ -s "$D/dockerd.pid" ] || cp "$D/dockerd.spawned" "$D/dockerd.pid"
phase "dockerd pid file"
log "dockerd up: unix://$SOCK (pid $(cat "$D/dockerd.pid"))"

# ---- building the template (needs this dockerd) -----------------------------------
# build_template: imports busybox-static as a one-layer image into this
# dockerd (kept: this instance's test image), saves it, and pushes it to two
# scratch registries, one of which also gets wf/broken:1 and then loses that
# image's layer blob; their storage becomes the template.  Called with the
# lock held and no complete template.
build_template() {
  local tmp=$TMPL.tmp.$$ ports
  # Left by a build that crashed (we hold the lock: no other is running).
  rm -rf "$TMPL" "$TMPL".tmp.*
  mkdir -p "$tmp"
  make_rootfs "$D/rootfs"
  import_image "$D/rootfs" wf/busybox latest
  rm -rf "$D/rootfs"
  dcurl "$API/images/$IMAGE/get" -o "$tmp/image.tar"
  phase "template: image"
  mapfile -t ports < <(free_ports 2)
  rm -rf "$D/tmpl-busybox-data" "$D/tmpl-broken-data"
  spawn_registry tmpl-busybox "${ports[0]}"
  spawn_registry tmpl-broken "${ports[1]}"
  wait_registry tmpl-busybox
  wait_registry tmpl-broken
  # dockerd treats 127.0.0.0/8 registries as insecure (plain HTTP) by default.
  push "$IMAGE" "127.0.0.1:${ports[0]}" wf/busybox latest e30=
  push "$IMAGE" "127.0.0.1:${ports[1]}" wf/busybox latest e30=
  phase "template: push busybox"
  # A layer of its own (an extra file), so that the pull cannot reuse the
  # busybox layer dockerd already has; then its blob goes from the registry.
  make_rootfs "$D/rootfs-broken" broken
  import_image "$D/rootfs-broken" wf/broken 1
  rm -rf "$D/rootfs-broken"
  push wf/broken:1 "127.0.0.1:${ports[1]}" wf/broken 1 e30=
  dcurl -X DELETE "$API/images/wf/broken:1" >/dev/null
  # The registry stores the compressed layer under the digest its manifest
  # names: delete just that blob's data.
  break_image "127.0.0.1:${ports[1]}" wf/broken 1 "$D/tmpl-broken-data"
  phase "template: broken image"
  stop_pidfile "$D/tmpl-busybox.pid" docker-registry-template
  stop_pidfile "$D/tmpl-broken.pid" docker-registry-template
  mv "$D/tmpl-busybox-data" "$tmp/busybox"
  mv "$D/tmpl-broken-data" "$tmp/busybox+broken"
  rm -f "$D"/tmpl-busybox.* "$D"/tmpl-broken.*
  write_htpasswd "$tmp/htpasswd"
  [ -s "$tmp/htpasswd" ] || { log "cannot write htpasswd (python3 crypt)"; exit 1; }
  touch "$tmp/complete"
  mv -T "$tmp" "$TMPL"
  phase "template: stored"
  log "template built: $TMPL"
}

# ensure_template: a complete template, built here (under the lock) unless
# it is there or another instance builds it meanwhile.
ensure_template() {
  template_ok && return 0
  exec 9>>"$TMPL.lock"
  flock -w 100 9 || { log "no lock on $TMPL.lock within 100 s"; exit 1; }
  phase "template: lock"
  template_ok || build_template
  exec 9>&-
}

# ---- test image: busybox-static as a one-layer image, no registry needed --------
if ! dcurl "$API/images/$IMAGE/json" >/dev/null; then
  if [ -z "$TMPL" ]; then
    # No docker-registry (so no registry wanted either): import it directly.
    make_rootfs "$D/rootfs"
    import_image "$D/rootfs" wf/busybox latest
    rm -rf "$D/rootfs"
  else
    ensure_template
    # (Already there when build_template just imported it.)
    dcurl "$API/images/$IMAGE/json" >/dev/null \
      || dcurl -X POST -H 'Content-Type: application/x-tar' -T "$TMPL/image.tar" \
        "$API/images/load?quiet=1" >/dev/null \
      || { log "docker load of $TMPL/image.tar failed"; exit 1; }
  fi
fi
phase "image"
log "image $IMAGE present"

# ---- registries ------------------------------------------------------------------
REGISTRY= REGISTRY_PID= AUTH_REGISTRY= AUTH_REGISTRY_PID=
if [ "$WANT_REGISTRY" = 1 ] || [ "$WANT_AUTH" = 1 ]; then
  # (Made above if the image was missing, as it is on the first run in a
  # state dir; not if a state dir is reused after the template's key changed.)
  ensure_template
  [ "$SEEDED" = 1 ] || seed_registries
fi
if [ "$WANT_REGISTRY" = 1 ]; then
  wait_registry registry
  REGISTRY=127.0.0.1:$(cat "$D/registry.port")
  REGISTRY_PID=$(cat "$D/registry.pid")
  log "registry up: $REGISTRY (pid $REGISTRY_PID), holds wf/busybox:latest"
  if [ "$WF_DOCKER_BROKEN" = 1 ]; then log "registry holds wf/broken:1 without its layer blob"; fi
fi
if [ "$WANT_AUTH" = 1 ]; then
  wait_registry auth-registry
  AUTH_REGISTRY=127.0.0.1:$(cat "$D/auth-registry.port")
  AUTH_REGISTRY_PID=$(cat "$D/auth-registry.pid")
  log "auth registry up: $AUTH_REGISTRY (pid $AUTH_REGISTRY_PID, user wf), holds wf/busybox:latest"
fi
phase "registries ready"

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
phase total
