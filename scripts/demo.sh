#!/bin/bash
# demo.sh - the node agent end to end, on this machine, in about 20 seconds:
# installs what is missing, builds, starts a private etcd (free port, temp
# dir), writes a LOCAL action and a USER step assigned to node "demo-node",
# runs build/src/workflow-node, waits for the step to finish, prints its log
# file and its final status, then stops the agent and etcd (by PID).
# Exits 0 iff the step SUCCEEDED.  Keeps nothing but build/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B= N=; fi
say() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }

say "dependencies"
bash scripts/install-deps.sh

say "build"
[ -f build/build.ninja ] || meson setup build >/dev/null || { echo "meson setup build failed" >&2; exit 1; }
if [ -z "${WF_NODE_BINARY:-}" ]; then   # WF_NODE_BINARY: run another agent binary
  ninja -C build >/tmp/wf-demo-build.log 2>&1 ||
    { tail -40 /tmp/wf-demo-build.log >&2; echo "build failed: ninja -C build" >&2; exit 1; }
  rm -f /tmp/wf-demo-build.log
fi

TMP=$(mktemp -d /tmp/wf-demo.XXXXXX)
ETCD_PID= AGENT_PID=
cleanup() {
  if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
    kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
  fi
  if [ -n "$ETCD_PID" ] && kill -0 "$ETCD_PID" 2>/dev/null; then
    kill -TERM "$ETCD_PID"; wait "$ETCD_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

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

P=inforboard
NODE=demo-node
KEY=demo-$(date +%s)
ACTION='{"name":"demo","version":"v1","runner_type":"LOCAL","runner_params":{"CMD":"sh,-c,echo hello from $WORKFLOW_STEP_KEY; for i in 1 2 3; do echo step output $i; sleep 0.3; done; echo done >&2"},"run_params":[{"key_name":"GREETING","default_value":"hi"}]}'
STEP=$(jq -cn --arg key "$KEY" --arg node "$NODE" '{key:$key, create_type:"USER", name:"demo step",
  action:"demo@v1", with:{GREETING:"hello"}, status:{status:"PENDDING", scheduled_node:$node}}')

say "action $P/workflow/actions/demo@v1"
put "$P/workflow/actions/demo@v1" "$ACTION"
echo "$ACTION" | jq .
say "step $P/workflow/steps/$KEY"
put "$P/workflow/steps/$KEY" "$STEP"
echo "$STEP" | jq .

NODE_BIN=${WF_NODE_BINARY:-build/src/workflow-node}
say "agent: $NODE_BIN --name $NODE --etcd $URL --log-dir $TMP/runner_log"
"$NODE_BIN" --name "$NODE" --etcd "$URL" --log-dir "$TMP/runner_log" \
  --stop-grace 2 --drain-timeout 5 2>"$TMP/agent.log" </dev/null &
AGENT_PID=$!
echo "agent pid $AGENT_PID"

STATUS=
for _ in $(seq 1 300); do
  STATUS=$(get "$P/workflow/steps/$KEY" | jq -r '.status.status // empty' 2>/dev/null || true)
  case "$STATUS" in SUCCEEDED|FAILED|CANCELED) break ;; esac
  kill -0 "$AGENT_PID" 2>/dev/null || { echo "the agent exited:" >&2; cat "$TMP/agent.log" >&2; exit 1; }
  sleep 0.1
done

FINAL=$(get "$P/workflow/steps/$KEY")
LOG=$(printf '%s' "$FINAL" | jq -r '.status.response.log_path // empty')
say "step log file ${LOG:-(none)}"
[ -n "$LOG" ] && [ -f "$LOG" ] && cat "$LOG"
say "final step value"
printf '%s' "$FINAL" | jq .

say "stopping the agent (SIGTERM) and etcd"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" && rc=0 || rc=$?
echo "agent exited with status $rc; its log:"
sed 's/^/  | /' "$TMP/agent.log"
AGENT_PID=

if [ "$STATUS" = SUCCEEDED ]; then
  say "demo OK: the step SUCCEEDED"
  exit 0
fi
say "demo FAILED: the step ended ${STATUS:-without a final status}"
exit 1
