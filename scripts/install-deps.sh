#!/bin/bash
# install-deps.sh - install every Debian package that the build, the tests and
# the demo need.  Idempotent: asks dpkg which of them are missing, and only if
# some are runs `apt-get update` once and installs exactly those.
# Runs as root, or through sudo when not root.  Prints what it installs.
set -euo pipefail

PKGS=(
  build-essential meson ninja-build pkg-config            # toolchain
  libuv1-dev node-llhttp protobuf-c-compiler libprotobuf-c-dev libjansson-dev libyaml-dev
  etcd-server etcd-client                                   # the tests' and the demo's etcd
  curl jq python3                                           # scripts and e2e tests
  clang libclang-rt-14-dev valgrind                         # fuzz targets, memory checks
  docker.io busybox-static docker-registry                  # the Docker runner's tests and demo
  podman uidmap slirp4netns                                 # the same tests against Podman, rootless too (test/podman/)
  prometheus python3-prometheus-client                      # /metrics checked by real parsers
  libssl-dev openssl                                        # https:// etcd; the TLS tests' certificates
  libnghttp2-dev                                            # HTTP/2 to https:// etcd (src/http/client-h2.c)
  scdoc python3-yaml                                        # man pages; wfctl -o yaml read back
)

missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$st" in ii*) ;; *) missing+=("$p") ;; esac
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present" >&2
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/wf-install-deps.XXXXXX)
if ! { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
         -o Dpkg::Use-Pty=0 "${missing[@]}"; } >"$log" 2>&1 </dev/null; then
  tail -30 "$log" >&2
  echo "install-deps: apt-get failed (full log: $log)" >&2
  exit 1
fi
rm -f "$log"
echo "install-deps: installed ${missing[*]}" >&2
