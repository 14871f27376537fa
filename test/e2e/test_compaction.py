#!/usr/bin/env python3
"""Compaction: the agent is cut off (SIGSTOP, and its connections to etcd
dropped by a proxy), steps are written, overwritten and deleted, and etcd is
compacted past the agent's watch revision.  When it comes back, its watch
resumes from a compacted revision, so it must re-list: every step still
assigned to it runs once, with its latest value; a deleted one never runs."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log  # noqa: E402


def main():
    with Scenario("compaction") as s:
        marks = os.path.join(s.tmp, "marks")
        os.makedirs(marks)
        s.put_action("mark", sh('echo "$X" >> %s/$WORKFLOW_STEP_KEY' % marks),
                     run_params=[{"key_name": "X", "default_value": "default"}])
        p = s.etcd_proxy()   # in front of etcd's https listener with WF_E2E_ETCD=https
        a = s.agent(etcd_url=p.url)
        s.put_step("warm", "mark@v1")
        check(status_of(s.wait_step("warm"))["status"] == "SUCCEEDED", "warm-up step")
        rev_before = s.c.revision()

        a.pause()
        p.cut()
        log("agent stopped and cut off at revision %d", rev_before)
        keys = ["new%d" % i for i in range(10)]
        for k in keys:
            s.put_step(k, "mark@v1", with_={"X": "first"})
        for k in keys[:5]:                       # overwritten: the latest value counts
            s.put_step(k, "mark@v1", with_={"X": "second"})
        s.put_step("moved", "mark@v1", node="other-node")   # then assigned to us
        s.put_step("moved", "mark@v1", with_={"X": "moved"})
        s.put_step("gone", "mark@v1")                       # assigned to us, then deleted
        s.c.delete(s.step_key("gone"))
        s.put_step("away", "mark@v1")                       # ours, then given to another node
        s.put_step("away", "mark@v1", node="other-node")
        for i in range(20):
            s.c.put("%s/unrelated/%d" % (s.prefix, i), "x")
        rev = s.c.revision()
        s.c.compact(rev)
        log("compacted at revision %d (agent had seen <= %d)", rev, rev_before)

        p.restore()
        a.resume()
        t0 = time.time()
        got = s.wait_steps(keys + ["moved"], timeout=60)
        log("all re-listed steps done %.1fs after the agent came back", time.time() - t0)
        for k in keys + ["moved"]:
            check(status_of(got[k])["status"] == "SUCCEEDED", "%s: %s", k, status_of(got[k]))
        time.sleep(1)
        want = {k: ("second\n" if k in keys[:5] else "first\n") for k in keys}
        want["moved"] = "moved\n"
        want["warm"] = "default\n"
        for k, v in want.items():
            with open(os.path.join(marks, k)) as f:
                data = f.read()
            check(data == v, "step %s: marker %r, want %r (ran once, latest value)", k, data, v)
        check(not os.path.exists(os.path.join(marks, "gone")), "the deleted step ran")
        check(not os.path.exists(os.path.join(marks, "away")), "the reassigned step ran")
        st = s.get_step("away")
        check(status_of(st)["status"] == "PENDDING" and
              status_of(st)["scheduled_node"] == "other-node", "step 'away' was touched: %s",
              status_of(st))
        lines = [l for l in a.stderr_text().splitlines()
                 if not l.startswith("====") and
                 any(w in l.replace(s.prefix, "").replace(s.tmp, "").replace(s.node, "").lower() for w in ("compact", "re-list", "relist"))]
        log("agent log lines about compaction: %d%s", len(lines),
            (": " + lines[0]) if lines else "")
        p.close()


run(main)
