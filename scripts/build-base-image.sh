#!/bin/bash
# build-base-image.sh - build debian:bookworm-slim from Debian packages with
# debootstrap and `docker import` it into the Docker Engine at DOCKER_HOST, for
# hosts that cannot pull from a registry (the slow compose test, air-gapped
# builders).  The mirror is the one apt on this host already uses.
#
#   DOCKER_HOST=unix:///tmp/wfd-x/docker.sock scripts/build-base-image.sh [TAG]
#
# TAG defaults to debian:bookworm-slim.  Env knobs:
#   MIRROR=URL    Debian mirror (default: read from /etc/apt/sources.list{,.d})
#   WORK_DIR=DIR  where the rootfs is built (default: a temporary dir, removed)
#   FORCE=1       rebuild even if TAG is already in the engine
# Needs root (debootstrap chroots), debootstrap and a docker client.
set -euo pipefail
TAG=${1:-debian:bookworm-slim}
SUITE=bookworm
log() { echo "[build-base-image $(date +%T)] $*" >&2; }

: "${DOCKER_HOST:?set DOCKER_HOST to the target engine (unix:///path/docker.sock)}"
export DOCKER_HOST
command -v debootstrap >/dev/null || { log "debootstrap missing (apt-get install debootstrap)"; exit 1; }
command -v docker >/dev/null || { log "docker client missing (apt-get install docker.io)"; exit 1; }

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG already present"
  exit 0
fi

# The mirror apt uses for $SUITE: deb822 .sources files first, then one-line lists.
find_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # Each stanza: URIs + Suites; pick the first stanza whose Suites has $SUITE.
    awk -v s="$SUITE" '
      /^[[:space:]]*$/ { if (u != "" && ok) { print u; exit } u=""; ok=0; next }
      /^URIs:/ { u=$2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok=1 }
      END { if (u != "" && ok) print u }' "$f"
  done | head -1
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v s="$SUITE" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == s) print $i; break } }' "$f"
  done | head -1
}
MIRROR=${MIRROR:-$(find_mirror | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
log "mirror $MIRROR"

own_dir=0
if [ -z "${WORK_DIR:-}" ]; then
  WORK_DIR=$(mktemp -d /tmp/wf-base-XXXXXX)
  own_dir=1
fi
ROOT=$WORK_DIR/rootfs
cleanup() {
  # debootstrap may leave /proc etc. mounted inside the rootfs if it fails.
  awk -v d="$ROOT/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  [ "$own_dir" = 1 ] && rm -rf "$WORK_DIR"
  return 0
}
trap cleanup EXIT

rm -rf "$ROOT"
log "debootstrap --variant=minbase $SUITE (a few minutes)"
if ! debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$WORK_DIR/debootstrap.log" 2>&1; then
  tail -20 "$WORK_DIR/debootstrap.log" >&2
  [ -f "$ROOT/debootstrap/debootstrap.log" ] && tail -20 "$ROOT/debootstrap/debootstrap.log" >&2
  log "debootstrap failed"
  exit 1
fi

# Slim it the way the official -slim images are: no apt lists, docs, man pages.
# apt in the image uses the same mirror, and drops downloaded .debs.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/var/log/*.log
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$ROOT/etc/apt/sources.list"
echo 'APT::Install-Recommends "false";' >"$ROOT/etc/apt/apt.conf.d/99wf-no-recommends"
echo 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };' >"$ROOT/etc/apt/apt.conf.d/99wf-clean"
: >"$ROOT/etc/hostname"
rm -f "$ROOT/etc/resolv.conf"   # docker provides it per container

log "importing as $TAG"
tar --numeric-owner -C "$ROOT" -c . | docker import \
  --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$TAG" >/dev/null
log "$TAG imported ($(docker image inspect -f '{{.Size}}' "$TAG") bytes)"
