#!/usr/bin/env python3
"""Cancel: a running `sleep 60` set to CANCELING ends CANCELED within the
grace period plus 1 s; a process that ignores SIGTERM is killed after the
grace period (not before); a step whose key is deleted while it runs is
stopped and its key stays deleted."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log, T, under_asan  # noqa: E402

GRACE = 2


def read_pid(path, timeout=15):
    deadline = time.time() + T(timeout)
    while time.time() < deadline:
        try:
            with open(path) as f:
                txt = f.read().strip()
            if txt:
                return int(txt.split()[0])
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError("the step never wrote its pid to %s" % path)


def dead(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")
    except OSError:
        return True


def wait_dead(pid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if dead(pid):
            return True
        time.sleep(0.05)
    return dead(pid)


def main():
    slack = 1.0 + (1.0 if under_asan() else 0.0)
    with Scenario("cancel") as s:
        pf = {k: os.path.join(s.tmp, k + ".pid") for k in ("c1", "c2", "c3")}
        s.pid_files.extend(pf.values())
        s.put_action("sleeper", sh("echo $$ > %s/$WORKFLOW_STEP_KEY.pid; exec sleep 60" % s.tmp))
        s.put_action("stubborn", sh("trap '' TERM; echo $$ > %s/$WORKFLOW_STEP_KEY.pid; "
                                    "while true; do sleep 0.2; done" % s.tmp))
        s.put_action("quick", "true")
        s.agent(args=["--stop-grace", str(GRACE)])
        s.put_step("c1", "sleeper@v1")
        s.put_step("c2", "stubborn@v1")
        s.put_step("c3", "sleeper@v1")
        pids = {}
        for k in ("c1", "c2", "c3"):
            s.wait_step(k, "RUNNING", timeout=20)
            pids[k] = read_pid(pf[k])
        time.sleep(0.3)  # let the shells set their traps

        # 1. CANCELING -> CANCELED within grace + 1 s, process gone
        t0 = time.time()
        s.set_status("c1", "CANCELING")
        # 2. TERM-ignoring process: killed after the grace period
        t0b = time.time()
        s.set_status("c2", "CANCELING")
        # 3. key deleted while running
        t0c = time.time()
        del_rev = s.c.delete_rev(s.step_key("c3"))
        w = s.c.watch(s.step_key("c3"), start_revision=del_rev + 1)

        st = s.wait_step("c1", ("CANCELED", "FAILED", "SUCCEEDED"), timeout=GRACE + 10)
        el = time.time() - t0
        log("c1: %s after %.2fs: %s", status_of(st)["status"], el, status_of(st))
        check(status_of(st)["status"] == "CANCELED", "c1 ended %s", status_of(st))
        check(el <= GRACE + slack, "c1 took %.2fs to be CANCELED (grace %ds + 1s)", el, GRACE)
        check(status_of(st).get("end_at", 0) > 0, "c1: no end_at")
        check(wait_dead(pids["c1"], 1), "c1's process %d still runs", pids["c1"])

        st = s.wait_step("c2", ("CANCELED", "FAILED", "SUCCEEDED"), timeout=GRACE + 10)
        el = time.time() - t0b
        log("c2 (ignores TERM): %s after %.2fs", status_of(st)["status"], el)
        check(status_of(st)["status"] == "CANCELED", "c2 ended %s", status_of(st))
        check(GRACE - 0.3 <= el <= GRACE + slack,
              "c2 (ignores SIGTERM) CANCELED after %.2fs; want the kill after the grace "
              "period of %ds, within 1s", el, GRACE)
        check(wait_dead(pids["c2"], 1), "c2's process %d (ignores TERM) still runs", pids["c2"])

        check(wait_dead(pids["c3"], GRACE + slack - (time.time() - t0c)) or dead(pids["c3"]),
              "c3's process %d still runs %.1fs after its key was deleted", pids["c3"],
              time.time() - t0c)
        log("c3 process gone %.2fs after the delete", time.time() - t0c)
        evs = w.collect(T(3))
        w.close()
        check(not evs, "the deleted key c3 was written again: %s",
              [(e["type"], e["value"][:200]) for e in evs])
        check(s.c.get(s.step_key("c3")) is None, "c3 exists again")

        # the agent still works
        s.put_step("after", "quick@v1")
        check(status_of(s.wait_step("after"))["status"] == "SUCCEEDED", "a later step failed")


run(main)
