#!/usr/bin/env python3
"""Few file descriptors: the agent runs under `ulimit -n 64` (RLIMIT_NOFILE)
with --max-parallel 100 and gets 100 steps of `sleep 0.2` at once.  Each
step needs a pipe, a log file and etcd connections, so descriptors run out.
Every step must still end SUCCEEDED, or FAILED with a message that says why
(e.g. "Too many open files"); none may stay PENDDING or RUNNING; the agent
must survive, and a final step afterwards must succeed.  No step runs
twice (a marker file per step counts its runs)."""
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log, T  # noqa: E402

NFILE = 64
N = 100


def main():
    with Scenario("fault_few_fds") as s:
        marks = os.path.join(s.tmp, "marks")
        os.makedirs(marks)
        s.put_action("nap", sh("echo run >> %s/$WORKFLOW_STEP_KEY; sleep 0.2" % marks))
        s.put_action("hello", sh("echo hello"))
        a = s.agent(args=["--max-parallel", str(N)], start=False)
        # The agent inherits the limit; this test process gets its own back
        # right after the fork.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (NFILE, hard))
        try:
            a.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        with open("/proc/%d/limits" % a.pid) as f:
            lim = [line for line in f if line.startswith("Max open files")]
        log("agent %s", lim[0].strip() if lim else "(limits unknown)")
        a.wait_registered(s.c, timeout=T(20))

        keys = ["nap%03d" % i for i in range(N)]
        t0 = time.time()
        s.c.put_many({s.step_key(k): s.step_obj(k, "nap@v1") for k in keys})
        got = s.wait_steps(keys, timeout=120, poll=0.5)
        wall = time.time() - t0
        ok = [k for k in keys if status_of(got[k])["status"] == "SUCCEEDED"]
        failed = {k: status_of(got[k]).get("message") or "" for k in keys
                  if status_of(got[k])["status"] != "SUCCEEDED"}
        log("%d steps in %.1fs: %d SUCCEEDED, %d FAILED", N, wall, len(ok), len(failed))
        msgs = sorted(set(failed.values()))
        for m in msgs[:5]:
            log("  failure message: %r", m)
        for k, m in failed.items():
            check(status_of(got[k])["status"] == "FAILED", "%s ended %s", k,
                  status_of(got[k])["status"])
            check(m.strip(), "%s FAILED without a message", k)
        a.assert_alive("after %d steps under ulimit -n %d" % (N, NFILE))
        for k in keys:
            try:
                with open(os.path.join(marks, k)) as f:
                    n = len(f.read().splitlines())
            except FileNotFoundError:
                n = 0
            check(n <= 1, "step %s ran %d times", k, n)
            check(n == 1 or k in failed, "step %s SUCCEEDED without running", k)

        s.put_step("final", "hello@v1")
        st = s.wait_step("final", timeout=60)
        check(status_of(st)["status"] == "SUCCEEDED", "final step: %s", status_of(st))
        a.assert_alive()


run(main)
