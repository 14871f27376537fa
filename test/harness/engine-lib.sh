# engine-lib.sh - what docker-up.sh and podman-up.sh share: the busybox test
# image, private docker-registry instances, and pushing to them through the
# engine's own (Docker-compatible) API; and what docker-down.sh and
# podman-down.sh share: stopping by pid file and removing a state dir.
# Sourced, never run; the caller sets D (its state dir), SOCK (the engine's
# socket) and API (http://d/v1.41) where it uses them, and defines log().

# phase NAME: with WF_DOCKER_TIMING=1, prints to stderr the wall time since
# the previous phase mark (or since the script started), charged to NAME;
# "phase total" prints the time since the start.
_t_first=${EPOCHREALTIME//[!0-9]/} _t_last=${EPOCHREALTIME//[!0-9]/}
phase() {
  [ "${WF_DOCKER_TIMING:-0}" = 1 ] || return 0
  local now from
  now=${EPOCHREALTIME//[!0-9]/}
  from=$_t_last
  [ "$1" = total ] && from=$_t_first
  printf '[%s timing] %-24s %5d ms\n' "${TIMING_WHO:-engine}" "$1" $(((now - from) / 1000)) >&2
  _t_last=$now
}

# pid_live PID: the process exists and is not a zombie.  What these scripts
# start runs in its own session and, once the script exits, is a child of
# PID 1, which may reap its zombies only seconds later (here: about 1.5 s):
# `kill -0` would call such a process alive although it has exited.
pid_live() {
  local st
  [ -n "$1" ] && read -r st 2>/dev/null <"/proc/$1/stat" || return 1
  st=${st##*) }  # the state follows "(comm) "; comm itself may hold ") "
  [ "${st:0:1}" != Z ] && [ "${st:0:1}" != X ]
}
# The system's python3 when there is one: the one-liners here need only the
# standard library, and a pyenv shim first in PATH takes some 0.3 s a start
# (0.03 s for /usr/bin/python3).
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

alive() { [ -f "$1" ] && pid_live "$(cat "$1")"; }
# wait_gone PID TICKS: waits until PID is gone (or a zombie), polling every
# 20 ms, at most TICKS times; fails if it is still there.
wait_gone() {
  local i
  for ((i = 0; i < $2; i++)); do pid_live "$1" || return 0; sleep 0.02; done
  ! pid_live "$1"
}
dcurl() { curl -sf --unix-socket "$SOCK" "$@"; }
# free_ports N: N free loopback ports, one a line (one python for all).
free_ports() {
  "$PY" -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
free_port() { free_ports 1; }

# make_rootfs DIR [EXTRA_FILE_CONTENT]: a rootfs with every busybox applet.
make_rootfs() {
  rm -rf "$1" && mkdir -p "$1"/bin "$1"/tmp "$1"/etc "$1"/proc "$1"/sys "$1"/dev "$1"/data
  cp /bin/busybox "$1/bin/busybox"
  # One process for the ~400 links (an ln each took 1.5 s).
  /bin/busybox --list | "$PY" -c '
import os, sys
for a in sys.stdin.read().split():
    if a != "busybox":
        os.symlink("busybox", os.path.join(sys.argv[1], "bin", a))' "$1"
  chmod 1777 "$1/tmp"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$1/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>"$1/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$1/etc/group"
  [ -z "${2:-}" ] || echo "$2" >"$1/etc/wf-extra"
}

# import_image DIR REPO TAG: DIR as a one-layer image (POST /images/create
# fromSrc; both engines name it docker.io/REPO:TAG, as a pull would).  The
# tag goes in repo: Podman ignores the tag parameter of an import.
import_image() {
  tar --numeric-owner --owner=0 --group=0 -C "$1" -cf "$1.tar" .
  dcurl -X POST -H 'Content-Type: application/x-tar' --data-binary @"$1.tar" \
    "$API/images/create?fromSrc=-&repo=$2:$3&changes=CMD%20%5B%22sh%22%5D" >/dev/null
  rm -f "$1.tar"
}

# spawn_registry NAME PORT [HTPASSWD]: starts one docker-registry on
# 127.0.0.1:PORT with its storage in $D/NAME-data (what is there is served),
# without waiting for it; nothing if it is alive already.
spawn_registry() {
  local name=$1 port=$2 htpasswd=${3:-}
  alive "$D/$name.pid" && return 0
  mkdir -p "$D/$name-data"
  {
    echo "version: 0.1"
    echo "log: {level: warn}"
    echo "storage: {filesystem: {rootdirectory: $D/$name-data}, delete: {enabled: true}}"
    echo "http: {addr: 127.0.0.1:$port}"
    [ -z "$htpasswd" ] || echo "auth: {htpasswd: {realm: wf, path: $htpasswd}}"
  } >"$D/$name.yml"
  # 9>&-: not the lock docker-up.sh may hold while it builds its template.
  setsid docker-registry serve "$D/$name.yml" >"$D/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$D/$name.pid"
  echo "$port" >"$D/$name.port"
}

# wait_registry NAME: waits (up to 10 s) until the registry NAME answers.
wait_registry() {
  local name=$1 port code=
  port=$(cat "$D/$name.port")
  for _ in $(seq 1 500); do
    # 200 without auth, 401 with: either way it answers.
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
    [ "$code" = 200 ] || [ "$code" = 401 ] && return 0
    alive "$D/$name.pid" || break
    sleep 0.02
  done
  tail "$D/$name.log" >&2
  log "$name failed"
  exit 1
}

# start_registry NAME PORT [HTPASSWD]: spawn_registry, then wait_registry.
start_registry() {
  spawn_registry "$@"
  wait_registry "$1"
}

# write_htpasswd FILE: user wf, password wfpass.
write_htpasswd() {
  "$PY" - "$1" <<'PY' 2>/dev/null
import crypt, sys
open(sys.argv[1], "w").write("wf:" + crypt.crypt("wfpass", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)) + "\n")
PY
}

# registry_auth REGISTRY: the X-Registry-Auth value for user wf there.
registry_auth() {
  printf '{"username":"wf","password":"wfpass","serveraddress":"%s"}' "$1" | base64 -w0 | tr '+/' '-_'
}

# push IMAGE REGISTRY REPO TAG AUTH: tag the local IMAGE as REGISTRY/REPO:TAG and push it.
push() {
  dcurl -X POST "$API/images/$1/tag?repo=$2/$3&tag=$4" >/dev/null
  # dockerd ends a push with {"aux":{"Digest":..}}, Podman with "TAG: digest: sha256:...".
  dcurl -X POST -H "X-Registry-Auth: $5" "$API/images/$2/$3/push?tag=$4" | grep -qi 'digest' \
    || { log "push of $2/$3:$4 failed"; exit 1; }
  # Only the registry keeps it: tests pull it back.
  dcurl -X DELETE "$API/images/$2/$3:$4" >/dev/null
}

# break_image REGISTRY REPO TAG [STORAGE]: delete the layer blob of REPO:TAG
# from the registry's storage (default: the plain registry's,
# $D/registry-data), so that pulling it fails inside the progress stream.
break_image() {
  local digest storage=${4:-$D/registry-data}
  digest=$(curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$1/v2/$2/manifests/$3" | "$PY" -c \
    'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"].split(":")[1])')
  [ -n "$digest" ] || { log "no manifest for $1/$2:$3"; exit 1; }
  rm -f "$storage/docker/registry/v2/blobs/sha256/${digest:0:2}/$digest/data"
}

# ---- tear-down (docker-down.sh, podman-down.sh) ----------------------------

# stop_pidfile FILE NAME: TERM (or KILL with KILL=1), wait up to 20 s, then
# KILL.  Gone means gone or a zombie (pid_live).
stop_pidfile() {
  [ -f "$1" ] || return 0
  local pid
  pid=$(cat "$1")
  if pid_live "$pid"; then
    if [ "${KILL:-0}" = 1 ]; then kill -KILL "$pid"; else kill -TERM "$pid"; fi
    if ! wait_gone "$pid" 1000; then
      log "$2 ($pid) ignored TERM for 20s, sending KILL"
      kill -KILL "$pid"
      wait_gone "$pid" 250
    fi
    log "$2 stopped (pid $pid)"
  fi
  rm -f "$1"
}

# kill_containers DIR PREFIX: SIGKILL every process whose cgroup path ends in
# PREFIX<id>, for each container id that is a name in DIR (the engine's own
# list of its containers).
kill_containers() {
  [ -d "$1" ] || return 0
  local id p
  for id in $(ls "$1"); do
    for p in /proc/[0-9]*; do
      if grep -qs -- "$2$id\$" "$p/cgroup"; then kill -KILL "${p#/proc/}" 2>/dev/null; fi
    done
  done
}

# kill_cmdline PATTERN: SIGKILL every process whose command line (its
# arguments joined by spaces) matches the extended regular expression
# PATTERN (a container monitor that names our state dir).  Bash builtins
# only: a tr and a grep for each of a few hundred processes took a second.
kill_cmdline() {
  local p args
  for p in /proc/[0-9]*; do
    args=()
    mapfile -d '' -t args 2>/dev/null <"$p/cmdline" || continue
    [ ${#args[@]} -gt 0 ] || continue
    [[ "${args[*]}" =~ $1 ]] && kill -KILL "${p#/proc/}" 2>/dev/null
  done
  return 0
}

# remove_state: unmounts whatever is mounted under $D, deepest first, then
# deletes $D; exits 1 (keeping $D) if a mount stays.
remove_state() {
  local mounts m
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
}
