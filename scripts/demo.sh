#!/bin/bash
# demo.sh - the node agent end to end, on this machine, in well under a minute:
# installs what is missing, builds, starts a private etcd (free port, temp
# dir) and, when dockerd is installed, a private Docker Engine with a busybox
# image (test/harness/docker-up.sh: own socket and data under the temp dir, no
# registry); writes a LOCAL action and a DOCKER action with one USER step each,
# assigned to node "demo-node", runs build/src/workflow-node, waits for the
# steps to finish, prints their log files and final statuses, then stops the
# agent, dockerd and etcd (by PID).  Without a usable dockerd it runs the
# LOCAL step only and says why.  Exits 0 iff every step it ran SUCCEEDED.
# Keeps nothing but build/.
#
# Env knobs: WF_NODE_BINARY (run another agent binary, no build),
#            WF_DEMO_DOCKER=0 (LOCAL step only).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B= N=; fi
say() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }

say "dependencies"
bash scripts/install-deps.sh

TMP=$(mktemp -d /tmp/wf-demo.XXXXXX)
ETCD_PID= AGENT_PID= UP_PID=
DOCKER_DIR=$TMP/d   # short: containerd puts unix sockets under it
cleanup() {
  if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
    kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
  fi
  if [ -n "$UP_PID" ]; then wait "$UP_PID" 2>/dev/null || true; fi
  if [ -d "$DOCKER_DIR" ]; then
    WF_DOCKER_DIR=$DOCKER_DIR CLEAN=1 bash test/harness/docker-down.sh 2>/dev/null || true
  fi
  if [ -n "$ETCD_PID" ] && kill -0 "$ETCD_PID" 2>/dev/null; then
    kill -TERM "$ETCD_PID"; wait "$ETCD_PID" 2>/dev/null || true
  fi
  if [ -d "$DOCKER_DIR" ]; then
    echo "demo: $DOCKER_DIR still holds mounts; left in place" >&2
    find "$TMP" -mindepth 1 -maxdepth 1 ! -path "$DOCKER_DIR" -exec rm -rf {} +
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT

# The Docker Engine starts while the build runs (it takes several seconds).
if [ "${WF_DEMO_DOCKER:-1}" != 0 ] && [ -x /usr/sbin/dockerd ]; then
  WF_DOCKER_DIR=$DOCKER_DIR WF_DOCKER_REGISTRY=0 WF_DOCKER_AUTH=0 \
    bash test/harness/docker-up.sh >"$TMP/docker.env" 2>"$TMP/docker-up.log" </dev/null &
  UP_PID=$!
fi

say "build"
[ -f build/build.ninja ] || meson setup build >/dev/null || { echo "meson setup build failed" >&2; exit 1; }
if [ -z "${WF_NODE_BINARY:-}" ]; then   # WF_NODE_BINARY: run another agent binary
  ninja -C build >/tmp/wf-demo-build.log 2>&1 ||
    { tail -40 /tmp/wf-demo-build.log >&2; echo "build failed: ninja -C build" >&2; exit 1; }
  rm -f /tmp/wf-demo-build.log
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
PEER=$(free_port)
URL=http://127.0.0.1:$PORT

say "etcd on $URL (data in $TMP/etcd)"
etcd --name demo --data-dir "$TMP/etcd" --logger=zap --log-outputs=stderr --log-level=warn \
  --listen-client-urls "$URL" --advertise-client-urls "$URL" \
  --listen-peer-urls "http://127.0.0.1:$PEER" --initial-advertise-peer-urls "http://127.0.0.1:$PEER" \
  --initial-cluster "demo=http://127.0.0.1:$PEER" >"$TMP/etcd.log" 2>&1 </dev/null &
ETCD_PID=$!
for _ in $(seq 1 100); do curl -sf "$URL/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "$URL/health" >/dev/null || { tail -20 "$TMP/etcd.log"; echo "etcd did not start" >&2; exit 1; }
echo "etcd pid $ETCD_PID: $(curl -s "$URL/version")"

b64() { printf '%s' "$1" | base64 -w0; }
put() {  # put KEY JSON
  curl -sf -X POST "$URL/v3/kv/put" -d "{\"key\":\"$(b64 "$1")\",\"value\":\"$(b64 "$2")\"}" >/dev/null
}
get() {  # get KEY -> value on stdout (empty if absent)
  curl -sf -X POST "$URL/v3/kv/range" -d "{\"key\":\"$(b64 "$1")\"}" |
    jq -r '.kvs[0].value // empty' | base64 -d
}

# Docker: use the private engine if it came up, else say why and go on
# with the LOCAL step alone.
DOCKER_HOST_URL=
if [ -n "$UP_PID" ]; then
  say "docker engine (private dockerd in $DOCKER_DIR)"
  if wait "$UP_PID"; then
    DOCKER_HOST_URL=$(sed -n 's/^DOCKER_HOST=//p' "$TMP/docker.env")
    sed 's/^/  | /' "$TMP/docker-up.log"
    echo "dockerd pid $(sed -n 's/^DOCKERD_PID=//p' "$TMP/docker.env") on $DOCKER_HOST_URL"
  else
    sed 's/^/  | /' "$TMP/docker-up.log" | tail -15
    echo "dockerd could not start: running the LOCAL step only"
  fi
  UP_PID=
elif [ "${WF_DEMO_DOCKER:-1}" = 0 ]; then
  say "docker: skipped (WF_DEMO_DOCKER=0); running the LOCAL step only"
else
  say "docker: /usr/sbin/dockerd is not installed; running the LOCAL step only"
fi

P=inforboard
NODE=demo-node
KEY=demo-$(date +%s)
ACTION='{"name":"demo","version":"v1","runner_type":"LOCAL","runner_params":{"CMD":"sh,-c,echo hello from $WORKFLOW_STEP_KEY; for i in 1 2 3; do echo step output $i; sleep 0.3; done; echo done >&2"},"run_params":[{"key_name":"GREETING","default_value":"hi"}]}'
# The same script in a busybox container (the image docker-up.sh imported).
DACTION='{"name":"demo-docker","version":"v1","runner_type":"DOCKER","runner_params":{"IMAGE_URL":"wf/busybox","IMAGE_VERSION":"latest","IMAGE_PULL_POLICY":"never","IMAGE_CMD":"sh,-c,echo hello from $WORKFLOW_STEP_KEY in container $(hostname); for i in 1 2 3; do echo step output $i; sleep 0.3; done; echo done >&2"},"run_params":[]}'
step() {  # step KEY ACTION -> the step JSON
  jq -cn --arg key "$1" --arg action "$2" --arg node "$NODE" '{key:$key, create_type:"USER",
    name:"demo step", action:$action, with:{GREETING:"hello"},
    status:{status:"PENDDING", scheduled_node:$node}}'
}
KEYS=("$KEY")

say "action $P/workflow/actions/demo@v1 (LOCAL)"
put "$P/workflow/actions/demo@v1" "$ACTION"
echo "$ACTION" | jq .
say "step $P/workflow/steps/$KEY"
put "$P/workflow/steps/$KEY" "$(step "$KEY" demo@v1)"
step "$KEY" demo@v1 | jq .
AGENT_ARGS=()
if [ -n "$DOCKER_HOST_URL" ]; then
  KEYS+=("$KEY-docker")
  AGENT_ARGS=(--docker-host "$DOCKER_HOST_URL")
  say "action $P/workflow/actions/demo-docker@v1 (DOCKER)"
  put "$P/workflow/actions/demo-docker@v1" "$DACTION"
  echo "$DACTION" | jq .
  say "step $P/workflow/steps/$KEY-docker"
  put "$P/workflow/steps/$KEY-docker" "$(step "$KEY-docker" demo-docker@v1)"
  step "$KEY-docker" demo-docker@v1 | jq .
fi

NODE_BIN=${WF_NODE_BINARY:-build/src/workflow-node}
say "agent: $NODE_BIN --name $NODE --etcd $URL --log-dir $TMP/runner_log ${AGENT_ARGS[*]:-}"
"$NODE_BIN" --name "$NODE" --etcd "$URL" --log-dir "$TMP/runner_log" \
  --stop-grace 2 --drain-timeout 5 ${AGENT_ARGS[@]+"${AGENT_ARGS[@]}"} 2>"$TMP/agent.log" </dev/null &
AGENT_PID=$!
echo "agent pid $AGENT_PID"

declare -A STATUS=()
for _ in $(seq 1 450); do
  done_n=0
  for k in "${KEYS[@]}"; do
    STATUS[$k]=$(get "$P/workflow/steps/$k" | jq -r '.status.status // empty' 2>/dev/null || true)
    case "${STATUS[$k]}" in SUCCEEDED|FAILED|CANCELED) done_n=$((done_n + 1)) ;; esac
  done
  [ "$done_n" -eq "${#KEYS[@]}" ] && break
  kill -0 "$AGENT_PID" 2>/dev/null || { echo "the agent exited:" >&2; cat "$TMP/agent.log" >&2; exit 1; }
  sleep 0.1
done

for k in "${KEYS[@]}"; do
  FINAL=$(get "$P/workflow/steps/$k")
  LOG=$(printf '%s' "$FINAL" | jq -r '.status.response.log_path // empty')
  say "step $k: log file ${LOG:-(none)}"
  [ -n "$LOG" ] && [ -f "$LOG" ] && cat "$LOG"
  say "step $k: final value"
  printf '%s' "$FINAL" | jq .
done

say "stopping the agent (SIGTERM), dockerd and etcd"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" && rc=0 || rc=$?
echo "agent exited with status $rc; its log:"
sed 's/^/  | /' "$TMP/agent.log"
AGENT_PID=

ok=1
summary=
for k in "${KEYS[@]}"; do
  summary="$summary $k=${STATUS[$k]:-(none)}"
  [ "${STATUS[$k]:-}" = SUCCEEDED ] || ok=0
done
if [ -z "$DOCKER_HOST_URL" ]; then summary="$summary (LOCAL only: no docker engine)"; fi
if [ "$ok" = 1 ]; then
  say "demo OK:$summary"
  exit 0
fi
say "demo FAILED:$summary"
exit 1
