#!/usr/bin/env python3
"""Agent restart: kill -9 the agent while a step is RUNNING, start it again:
that step ends FAILED with a message saying the node restarted; steps
written while the agent was down run once it is back (each exactly once)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log  # noqa: E402


def main():
    with Scenario("restart") as s:
        marks = os.path.join(s.tmp, "marks")
        os.makedirs(marks)
        pidfile = os.path.join(s.tmp, "long.pid")
        s.pid_files.append(pidfile)
        s.put_action("long", sh("echo $$ > %s; echo run >> %s/$WORKFLOW_STEP_KEY; exec sleep 60"
                                % (pidfile, marks)))
        s.put_action("mark", sh("echo run >> %s/$WORKFLOW_STEP_KEY" % marks))
        a = s.agent()
        s.put_step("r1", "long@v1")
        s.wait_step("r1", "RUNNING", timeout=20)
        deadline = time.time() + 10
        while not os.path.exists(os.path.join(marks, "r1")) and time.time() < deadline:
            time.sleep(0.05)
        a.kill9()
        log("agent killed with SIGKILL")
        # the orphaned sleep is not the agent's any more; stop it ourselves
        s.kill_pid_files()
        for i in range(5):
            s.put_step("down%d" % i, "mark@v1")
        time.sleep(0.5)
        a.start()
        st = s.wait_step("r1", timeout=30)
        ss = status_of(st)
        log("r1 after restart: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "FAILED", "r1: status %s, want FAILED", ss["status"])
        check("restart" in ss.get("message", ""), "r1: message %r does not mention the restart",
              ss.get("message"))
        check(ss.get("end_at", 0) > 0, "r1: no end_at")
        keys = ["down%d" % i for i in range(5)]
        got = s.wait_steps(keys, timeout=30)
        for k in keys:
            check(status_of(got[k])["status"] == "SUCCEEDED", "%s: %s", k, status_of(got[k]))
        s.put_step("after", "mark@v1")
        check(status_of(s.wait_step("after"))["status"] == "SUCCEEDED", "step after restart")
        for k in keys + ["after", "r1"]:
            with open(os.path.join(marks, k)) as f:
                n = len(f.read().splitlines())
            check(n == 1, "step %s ran %d times", k, n)


run(main)
