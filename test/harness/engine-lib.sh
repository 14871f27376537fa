# engine-lib.sh - what docker-up.sh and podman-up.sh share: the busybox test
# image, private docker-registry instances, and pushing to them through the
# engine's own (Docker-compatible) API; and what docker-down.sh and
# podman-down.sh share: stopping by pid file and removing a state dir.
# Sourced, never run; the caller sets D (its state dir), SOCK (the engine's
# socket) and API (http://d/v1.41) where it uses them, and defines log().

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
dcurl() { curl -sf --unix-socket "$SOCK" "$@"; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

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

# import_image DIR REPO TAG: DIR as a one-layer image (POST /images/create
# fromSrc; both engines name it docker.io/REPO:TAG, as a pull would).  The
# tag goes in repo: Podman ignores the tag parameter of an import.
import_image() {
  tar --numeric-owner --owner=0 --group=0 -C "$1" -cf "$1.tar" .
  dcurl -X POST -H 'Content-Type: application/x-tar' --data-binary @"$1.tar" \
    "$API/images/create?fromSrc=-&repo=$2:$3&changes=CMD%20%5B%22sh%22%5D" >/dev/null
  rm -f "$1.tar"
}

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

# write_htpasswd FILE: user wf, password wfpass.
write_htpasswd() {
  python3 - "$1" <<'PY' 2>/dev/null
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

# break_image REGISTRY REPO TAG: delete the layer blob of REPO:TAG from the
# plain registry's storage, so that pulling it fails inside the progress
# stream.
break_image() {
  local digest
  digest=$(curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$1/v2/$2/manifests/$3" | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"].split(":")[1])')
  rm -f "$D/registry-data/docker/registry/v2/blobs/sha256/${digest:0:2}/$digest/data"
}

# ---- tear-down (docker-down.sh, podman-down.sh) ----------------------------

# stop_pidfile FILE NAME: TERM (or KILL with KILL=1), wait up to 20 s, then KILL.
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

# kill_cmdline PATTERN: SIGKILL every process whose command line matches the
# grep PATTERN (a container monitor that names our state dir).
kill_cmdline() {
  local p
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "$1"; then
      kill -KILL "${p#/proc/}" 2>/dev/null
    fi
  done
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
