#!/usr/bin/env python3
"""Frozen etcd: etcd is stopped with SIGSTOP for 20 s under a running agent.
Its connections stay open and silent, which a watch cannot tell from a quiet
prefix, so the agent's watch watchdog (--etcd-watch-idle, default 10 s)
must probe, notice the stall and log it.  Before the freeze a step starts
that finishes during it (its final status write times out and is retried);
nothing is written while etcd is frozen.  After SIGCONT: that step ends
SUCCEEDED, ten new steps all run, each step ran exactly once (a marker file
per step counts the runs), and the agent is still registered."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log, T  # noqa: E402

FREEZE_S = 20


def main():
    with Scenario("fault_frozen_etcd") as s:
        marks = os.path.join(s.tmp, "marks")
        os.makedirs(marks)
        s.put_action("mark", sh("echo run >> %s/$WORKFLOW_STEP_KEY" % marks))
        s.put_action("slow", sh("echo run >> %s/$WORKFLOW_STEP_KEY; sleep 4" % marks))
        # A lease that outlives the freeze keeps the node key's story simple.
        a = s.agent(args=["--ttl", "60"])
        s.put_step("before", "mark@v1")
        check(status_of(s.wait_step("before"))["status"] == "SUCCEEDED", "step before")
        s.put_step("across", "slow@v1")
        s.wait_step("across", "RUNNING", timeout=20)
        # RUNNING in etcd is the claim applied; the agent may still wait for
        # the claim's answer (a loaded host), and a freeze then would catch
        # the claim instead of the final write.  The step's own mark says the
        # agent has it running.
        deadline = time.time() + T(20)
        while not os.path.exists(os.path.join(marks, "across")) and time.time() < deadline:
            time.sleep(0.05)
        check(os.path.exists(os.path.join(marks, "across")), "step across did not start")
        stalls_before = len(a.stderr_lines_with("stalled"))
        t0 = time.time()
        s.etcd.pause()
        log("etcd frozen (SIGSTOP) for %ds; 'across' finishes meanwhile", FREEZE_S)
        try:
            while time.time() - t0 < FREEZE_S:
                a.assert_alive("with etcd frozen")
                time.sleep(0.5)
        finally:
            s.etcd.resume()
        log("etcd thawed (SIGCONT) after %.1fs", time.time() - t0)
        stalls = a.stderr_lines_with("stalled")[stalls_before:]
        check(stalls, "the agent did not log a stalled watch during the %ds freeze" % FREEZE_S)
        log("agent said: %s", stalls[0].strip())

        retries = a.stderr_lines_with("step=across writing status")
        check(retries, "the final write of 'across' did not fail during the freeze (it should "
              "have timed out and been retried)")
        log("during the freeze: %s", retries[0].strip())
        st = s.wait_step("across", timeout=60)
        check(status_of(st)["status"] == "SUCCEEDED",
              "the step that ended during the freeze: %s", status_of(st))
        log("'across' SUCCEEDED %.1fs after the thaw", time.time() - t0 - FREEZE_S)
        t1 = time.time()
        keys = ["after%d" % i for i in range(10)]
        for k in keys:
            s.put_step(k, "mark@v1")
        got = s.wait_steps(keys, timeout=60)
        for k in keys:
            check(status_of(got[k])["status"] == "SUCCEEDED", "%s: %s", k, status_of(got[k]))
        log("10 steps written after the thaw ran in %.1fs", time.time() - t1)
        deadline = time.time() + T(20)
        while s.c.get(s.node_key()) is None and time.time() < deadline:
            time.sleep(0.2)
        check(s.c.get(s.node_key()) is not None, "node key %s gone after the freeze",
              s.node_key())
        for k in ["before", "across"] + keys:
            with open(os.path.join(marks, k)) as f:
                n = len(f.read().splitlines())
            check(n == 1, "step %s ran %d times", k, n)
        a.assert_alive()


run(main)
