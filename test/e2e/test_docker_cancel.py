#!/usr/bin/env python3
"""DOCKER runner cancel, timeout and delete through the real binary, on a
private dockerd and etcd (--stop-grace 3):

- CANCELING on a container whose PID 1 ignores SIGTERM (`sleep 600`) ends
  CANCELED within the grace period plus 2 s, and the container is gone;
- CANCELING on one that traps SIGTERM ends CANCELED at once, and its log
  shows it got the signal;
- WORKFLOW_TIMEOUT 2 on `sleep 600` ends FAILED "timed out";
- deleting a running step's key stops and removes its container, and the key
  is never written back."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, Skip, run, check, status_of, response_of, log, T  # noqa: E402
import docker  # noqa: E402
from docker import Dockerd, docker_action  # noqa: E402

GRACE = 3


def wait_container_running(s, d, key, timeout=60):
    """Waits until the step's container runs; returns its id."""
    deadline = time.time() + T(timeout)
    while time.time() < deadline:
        s._alive_check()
        for c in d.containers(label="workflow.step=" + key):
            if c.get("State") == "running":
                return c["Id"]
        time.sleep(0.05)
    raise AssertionError("no running container for step %s within %.0fs" % (key, T(timeout)))


def gone(d, cid):
    return d.api("GET", "/containers/%s/json" % cid)[0] == 404


def main():
    if not docker.available():
        raise Skip("dockerd or busybox-static not installed")
    with Dockerd(registry=False) as d, Scenario("docker-cancel") as s:
        s.agent(args=["--docker-host", d.host, "--stop-grace", str(GRACE)])
        s.c.put(s.action_key("sleep"), docker_action("sleep", "sleep,600", image=d.image))
        s.c.put(s.action_key("trap"), docker_action(
            "trap", ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo ready; "
                                 "while :; do sleep 0.1; done"], image=d.image))

        # ---- cancel: SIGTERM ignored, killed after the grace ----------------
        s.put_step("dc-stubborn", "sleep@v1")
        s.put_step("dc-trap", "trap@v1")
        stubborn = wait_container_running(s, d, "dc-stubborn")
        trap = wait_container_running(s, d, "dc-trap")
        # "ready" in the log: the trap is set
        deadline = time.time() + T(20)
        path = None
        while time.time() < deadline:
            path = s.log_file("dc-trap")
            if path and b"ready" in open(path, "rb").read():
                break
            time.sleep(0.05)
        t0 = time.time()
        s.set_status("dc-stubborn", "CANCELING")
        s.set_status("dc-trap", "CANCELING")
        st = s.wait_step("dc-stubborn", ("CANCELED", "FAILED", "SUCCEEDED"), timeout=30, poll=0.02)
        el = time.time() - t0
        ss = status_of(st)
        log("dc-stubborn: %s after %.1fs (grace %d): %r", ss["status"], el, GRACE, ss.get("message"))
        check(ss["status"] == "CANCELED", "dc-stubborn: %s %r", ss["status"], ss.get("message"))
        check(el <= T(GRACE + 2), "dc-stubborn: CANCELED after %.1fs, want <= grace %d + 2 s",
              el, GRACE)
        check(response_of(st).get("container_id") == stubborn, "dc-stubborn: container_id %r",
              response_of(st).get("container_id"))
        st = s.wait_step("dc-trap", ("CANCELED", "FAILED", "SUCCEEDED"), timeout=30)
        ss = status_of(st)
        log("dc-trap: %s: %r", ss["status"], ss.get("message"))
        check(ss["status"] == "CANCELED", "dc-trap: %s %r", ss["status"], ss.get("message"))
        with open(response_of(st)["log_path"], "rb") as f:
            data = f.read()
        check(data == b"ready\ngot TERM\n", "dc-trap log %r", data)
        deadline = time.time() + T(10)
        while time.time() < deadline and not (gone(d, stubborn) and gone(d, trap)):
            time.sleep(0.1)
        check(gone(d, stubborn) and gone(d, trap), "canceled containers were not removed")

        # ---- timeout ------------------------------------------------------------
        t0 = time.time()
        s.put_step("dc-timeout", "sleep@v1", with_={"WORKFLOW_TIMEOUT": "2"})
        st = s.wait_step("dc-timeout", timeout=60)
        el = time.time() - t0
        ss = status_of(st)
        log("dc-timeout: %s after %.1fs: %r", ss["status"], el, ss.get("message"))
        check(ss["status"] == "FAILED", "dc-timeout: %s", ss["status"])
        check("timed out" in ss.get("message", ""), "dc-timeout: message %r",
              ss.get("message"))
        check(el <= T(2 + GRACE + 2 + 10), "dc-timeout took %.1fs", el)

        # ---- delete ---------------------------------------------------------------
        s.put_step("dc-del", "sleep@v1")
        cid = wait_container_running(s, d, "dc-del")
        t0 = time.time()
        s.c.delete(s.step_key("dc-del"))
        deadline = time.time() + T(GRACE + 5)
        while time.time() < deadline and not gone(d, cid):
            time.sleep(0.05)
        log("dc-del: container gone %.1fs after the delete", time.time() - t0)
        check(gone(d, cid), "dc-del: the container is still there after the key was deleted")
        time.sleep(1.5)
        check(s.get_step("dc-del") is None, "dc-del was written back: %s", s.get_step("dc-del"))


run(main)
