#!/bin/bash
# bench/run.sh OUT.json - the agent's benchmarks (issue 4; bench/README.md).
#
#   1. installs what is missing (scripts/install-deps.sh; nothing else);
#   2. builds a release build in build-bench/ (its own dir, never build/),
#      the agent and the two callgrind drivers of part 8;
#   3. runs bench/bench.py: one private etcd on free loopback ports, every
#      part in turn, a table on stdout and the same as JSON in OUT.json.
#
# Never part of `meson test` or CI.  About 7 minutes on 2 busy cores (plus
# the build); BENCH_QUICK=1 scales every count down (about 2 minutes), BENCH_PARTS="1 5"
# runs only some parts; the other knobs are listed in bench/README.md.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
cd "$SRC"
if [ $# -ne 1 ]; then
  echo "usage: bench/run.sh OUT.json" >&2
  exit 2
fi
OUT=$(realpath -m "$1")

bash scripts/install-deps.sh

B=${BENCH_BUILD:-$SRC/build-bench}
echo "==== $B: release build" >&2
# -Dwerror=false: a new -O3 warning in code under work elsewhere must not
# stop a benchmark run (the debug builds of scripts/test.sh keep -Werror).
if [ -f "$B/build.ninja" ]; then
  meson setup --reconfigure "$B" -Dbuildtype=release -Dwerror=false >/dev/null
else
  meson setup "$B" -Dbuildtype=release -Dwerror=false >/dev/null
fi
ninja -C "$B" src/workflow-node src/wfctl >&2

# Part 8 drivers: linked exactly like workflow-node (its LINK_ARGS from
# build.ninja, relative to the build dir), nothing added to meson.
LINK_ARGS=$(sed -n '/^build src\/workflow-node:/,/^$/s/^ LINK_ARGS = //p' "$B/build.ninja")
mkdir -p "$B/bench"
for d in codec_bench event_bench; do
  # shellcheck disable=SC2086,SC2046
  (cd "$B" && cc -O2 -D_GNU_SOURCE -I"$SRC/include" -I. -Iproto \
     $(pkg-config --cflags libuv jansson libprotobuf-c) "$SRC/bench/$d.c" -o "bench/$d" $LINK_ARGS)
done

# Part 2's CPU floor: plain C, no libraries of ours.
cc -O2 -D_GNU_SOURCE "$SRC/bench/spawn_floor.c" -o "$B/bench/spawn_floor"

export BENCH_BUILD="$B"
exec python3 "$SRC/bench/bench.py" "$OUT"
