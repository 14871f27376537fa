#!/usr/bin/env python3
"""etcd restart: stop etcd under a running agent (a step finishes while etcd
is down), restart it on the same data dir and ports: the pending status
write lands, steps written afterwards run, the node is registered again, and
no step ever runs twice (a marker file per step counts the runs)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log, T  # noqa: E402


def main():
    with Scenario("etcd_restart") as s:
        marks = os.path.join(s.tmp, "marks")
        os.makedirs(marks)
        s.put_action("mark", sh("echo run >> %s/$WORKFLOW_STEP_KEY" % marks))
        s.put_action("slow", sh("echo run >> %s/$WORKFLOW_STEP_KEY; sleep 2" % marks))
        a = s.agent()
        s.put_step("before", "mark@v1")
        check(status_of(s.wait_step("before"))["status"] == "SUCCEEDED", "step before")
        s.put_step("across", "slow@v1")
        s.wait_step("across", "RUNNING", timeout=20)
        t0 = time.time()
        s.etcd.stop()
        log("etcd stopped; down for 4s while 'across' finishes")
        time.sleep(4)
        a.assert_alive("with etcd down")
        s.etcd.restart()
        log("etcd back after %.1fs on %s", time.time() - t0, s.etcd.url)
        st = s.wait_step("across", timeout=60)
        check(status_of(st)["status"] == "SUCCEEDED",
              "the step that ended during the outage: %s", status_of(st))
        keys = ["after%d" % i for i in range(10)]
        for k in keys:
            s.put_step(k, "mark@v1")
        got = s.wait_steps(keys, timeout=60)
        log("10 steps written after the restart ran in %.1fs", time.time() - t0)
        for k in keys:
            check(status_of(got[k])["status"] == "SUCCEEDED", "%s: %s", k, status_of(got[k]))
        # more outages, each right after a burst of steps, so that claims and
        # final writes are in flight when etcd goes away (etcd may apply a
        # write and still answer with an error)
        bursts = []
        for r in range(3):
            b = {"burst%d_%02d" % (r, i): s.step_obj("burst%d_%02d" % (r, i),
                                                     "slow@v1" if i % 4 == 0 else "mark@v1")
                 for i in range(20)}
            s.c.put_many({s.step_key(k): v for k, v in b.items()})
            time.sleep(0.005 * r)
            s.etcd.restart(down_seconds=0.5)
            bursts += list(b)
        got = s.wait_steps(bursts, timeout=60)
        for k in bursts:
            check(status_of(got[k])["status"] == "SUCCEEDED", "%s: %s", k, status_of(got[k]))
        keys += bursts
        time.sleep(T(2))
        deadline = time.time() + T(20)
        while s.c.get(s.node_key()) is None and time.time() < deadline:
            time.sleep(0.2)
        check(s.c.get(s.node_key()) is not None, "node key %s gone after the restarts",
              s.node_key())
        for k in ["before", "across"] + keys:
            with open(os.path.join(marks, k)) as f:
                n = len(f.read().splitlines())
            check(n == 1, "step %s ran %d times", k, n)
        a.assert_alive()


run(main)
