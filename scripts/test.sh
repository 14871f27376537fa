#!/bin/bash
# test.sh - the project's test command (CI runs it through .ci/run).
#
#   1. installs the Debian packages it needs (scripts/install-deps.sh);
#   2. builds build/ and runs every test suite there (meson test);
#   3. builds build-asan/ with ASan+UBSan and runs the same suites there
#      (WF_ASAN=1, longer time limits), except 'podman' (the DOCKER runner's
#      tests against Podman as a second engine, test/podman/): 1.5 to 2.5
#      minutes on 2 cores (93-150 s measured, by the load), and as long again
#      under ASan (131 s), which would take the whole run from about 16 to
#      about 20 minutes.  The code they reach runs under the sanitizers
#      against dockerd (suites docker, e2e), so 'podman' runs in build/ only;
#   4. prints one closing line: "N passed, N failed[, N skipped]" summed over
#      both runs, and exits non-zero if anything failed (or, with CI=true,
#      was skipped).
#
# Env knobs:
#   WF_TEST_SUITES="unit etcd"  run only these meson suites (default: all:
#                               unit, etcd, docker, e2e, podman)
#   WF_SKIP_ASAN=1              skip the sanitizer run (ignored when CI=true)
#   WF_TEST_ARGS="..."          extra arguments for `meson test`
#   WF_TEST_JOBS=N              tests run at once (default 4 in build/, 3 under
#                               ASan, on 2 cores: most end-to-end tests wait
#                               on etcd, tokens, timers and child processes
#                               rather than compute; the ones that measure
#                               time or memory are is_parallel: false and run
#                               alone)
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)

bash scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

PASSED=0 FAILED=0 SKIPPED=0
suite_args=()
for s in ${WF_TEST_SUITES:-}; do suite_args+=(--suite "$s"); done

# count DIR: adds the results of DIR/meson-logs/testlog.json to the totals.
count() {
  local log=$1/meson-logs/testlog.json
  if [ ! -s "$log" ]; then
    echo "test.sh: no test log in $1" >&2
    FAILED=$((FAILED + 1))
    return
  fi
  local c
  c=$(python3 - "$log" <<'PY'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line).get("result", "")
    if r in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif r == "SKIP":
        skip += 1
    else:
        fail += 1
print(ok, fail, skip)
PY
  ) || { FAILED=$((FAILED + 1)); return; }
  set -- $c
  PASSED=$((PASSED + $1)) FAILED=$((FAILED + $2)) SKIPPED=$((SKIPPED + $3))
  echo "test.sh: $dir: $1 passed, $2 failed, $3 skipped" >&2
}

# run DIR [meson options...]: configure (or reconfigure), build, test.
run() {
  local dir=$1
  shift
  local t0
  t0=$(date +%s)
  echo "==== $dir: setup $*" >&2
  local slog
  slog=$(mktemp /tmp/wf-meson-setup.XXXXXX)
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >"$slog" 2>&1
  else
    rm -rf "$dir"
    meson setup "$dir" "$@" >"$slog" 2>&1
  fi || { tail -30 "$slog" >&2; echo "test.sh: meson setup $dir failed" >&2
          rm -f "$slog"; FAILED=$((FAILED + 1)); return; }
  rm -f "$slog"
  echo "==== $dir: build" >&2
  # BUILD_ONLY (an ERE over `ninja -t targets all`): build just those
  # targets, for a run whose tests need no others (the fuzz smoke run).
  local targets=()
  if [ -n "${BUILD_ONLY:-}" ]; then
    mapfile -t targets < <(ninja -C "$dir" -t targets all | grep -E "$BUILD_ONLY" | cut -d: -f1)
  fi
  if ! ninja -C "$dir" "${targets[@]}" >&2; then
    echo "test.sh: build in $dir failed" >&2
    FAILED=$((FAILED + 1))
    return
  fi
  echo "==== $dir: test ${suite_args[*]:-(all suites)}" >&2
  rm -f "$dir/meson-logs/testlog.json"
  # shellcheck disable=SC2086
  meson test -C "$dir" --print-errorlogs --num-processes "${WF_TEST_JOBS:-$JOBS}" "${suite_args[@]}" \
    ${WF_TEST_ARGS:-} "${TEST_EXTRA[@]}" >&2
  count "$dir"
  echo "==== $dir: done in $(( $(date +%s) - t0 ))s" >&2
}

TEST_EXTRA=()
JOBS=4
run build
JOBS=3

if [ "${WF_SKIP_ASAN:-0}" = 1 ] && [ "${CI:-}" != true ]; then
  echo "==== build-asan: skipped (WF_SKIP_ASAN=1)" >&2
else
  export WF_ASAN=1
  TEST_EXTRA=(--timeout-multiplier 3 --no-suite podman)
  run build-asan -Db_sanitize=address,undefined -Db_lundef=false
  unset WF_ASAN
fi

# Fuzz smoke run: every libFuzzer target for 20 s on a copy of its seed
# corpus, in a clang ASan+UBSan build (docs/fuzzing.md).  WF_SKIP_FUZZ=1
# skips it locally.
if [ "${WF_SKIP_FUZZ:-0}" = 1 ] && [ "${CI:-}" != true ]; then
  echo "==== build-fuzz: skipped (WF_SKIP_FUZZ=1)" >&2
elif [ -n "${WF_TEST_SUITES:-}" ] && [[ " $WF_TEST_SUITES " != *" fuzz "* ]]; then
  echo "==== build-fuzz: not in WF_TEST_SUITES" >&2
else
  saved=("${suite_args[@]}")
  suite_args=(--suite fuzz)
  TEST_EXTRA=()
  # Only the targets: the tests and binaries of this build would never run.
  BUILD_ONLY='^test/fuzz/fuzz-[a-z0-9-]+: ' CC=clang \
    run build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
  suite_args=("${saved[@]}")
fi

echo "test.sh: total wall time $(( $(date +%s) - T0 ))s" >&2
line="$PASSED passed, $FAILED failed"
[ "$SKIPPED" -gt 0 ] && line="$line, $SKIPPED skipped"
echo "$line"
# A skip is a test that did not run.  Some skip on purpose where the machine
# cannot host them (no dockerd, no tmpfs mounts: a developer's laptop); in CI
# every peer is there, so a skip there is a failure, never a pass.
if [ "$SKIPPED" -gt 0 ] && [ "${CI:-}" = true ]; then
  echo "test.sh: $SKIPPED test(s) skipped under CI=true: failing" >&2
  exit 1
fi
[ "$FAILED" -eq 0 ]
