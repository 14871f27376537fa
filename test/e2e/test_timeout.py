#!/usr/bin/env python3
"""Timeout: WORKFLOW_TIMEOUT (step with, or action default) or the node's
--step-timeout stops a step like a cancel and ends it FAILED with a message
that says it timed out; WORKFLOW_TIMEOUT wins over --step-timeout."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log  # noqa: E402

GRACE = 2


def main():
    with Scenario("timeout") as s:
        node_a, node_b = s.node, s.node + "-b"
        s.put_action("sleep30", sh("echo start; exec sleep 30"))
        s.put_action("sleep2", sh("sleep 2; echo done"))
        s.put_action("sleep30d", sh("exec sleep 30"),
                     run_params=[{"key_name": "WORKFLOW_TIMEOUT", "default_value": "1"}])
        s.agent(node_a, args=["--stop-grace", str(GRACE)])
        s.agent(node_b, args=["--stop-grace", str(GRACE), "--step-timeout", "1"])
        t0 = time.time()
        s.put_step("t1", "sleep30@v1", node=node_a, with_={"WORKFLOW_TIMEOUT": "1"})
        s.put_step("t2", "sleep30d@v1", node=node_a)
        s.put_step("t3", "sleep30@v1", node=node_b)
        s.put_step("t4", "sleep2@v1", node=node_b, with_={"WORKFLOW_TIMEOUT": "30"})
        s.put_step("t5", "sleep2@v1", node=node_a, with_={"WORKFLOW_TIMEOUT": "10"})
        for k in ("t1", "t2", "t3"):
            st = s.wait_step(k, timeout=20)
            ss = status_of(st)
            el = time.time() - t0
            log("%s: %s after %.1fs: %r", k, ss["status"], el, ss.get("message"))
            check(ss["status"] == "FAILED", "%s: status %s, want FAILED (timed out)", k,
                  ss["status"])
            check("timed out" in ss.get("message", ""), "%s: message %r does not say timed out",
                  k, ss.get("message"))
            check(el < 15, "%s: took %.1fs for a 1 s timeout", k, el)
        for k in ("t4", "t5"):
            st = s.wait_step(k, timeout=20)
            check(status_of(st)["status"] == "SUCCEEDED", "%s: %s", k, status_of(st))


run(main)
