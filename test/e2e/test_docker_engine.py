#!/usr/bin/env python3
"""DOCKER runner when the engine goes away, through the real binary, on a
private dockerd and etcd:

- dockerd stopped (SIGTERM) while a step runs: that step ends FAILED with a
  message saying the engine went away (not a plain exit code);
- a step written while dockerd is down waits for it (--docker-wait 60) and,
  once dockerd is back, runs and SUCCEEDS; so does a step written after;
- a node with --docker-wait 2 fails such a step "docker engine unreachable
  at <host>";
- dockerd killed (SIGKILL) while a step runs: the same FAILED "went away",
  and the next step after it is back SUCCEEDS.

Under WF_ENGINE=podman "dockerd" is the Podman service: stopping it stops no
container (conmon holds each), so the two containers of the steps that
failed "went away" still run while it is down; the runner removes them once
the service is back (with dockerd they stay, exited, until the agent's next
start)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, Skip, run, check, status_of, log, T  # noqa: E402
import docker  # noqa: E402
from docker import Dockerd, docker_action  # noqa: E402


def wait_running(s, d, key, timeout=60):
    deadline = time.time() + T(timeout)
    while time.time() < deadline:
        s._alive_check()
        for c in d.containers(label="workflow.step=" + key):
            if c.get("State") == "running":
                p = s.log_file(key)
                if p and b"tick" in open(p, "rb").read():
                    return c["Id"]
        time.sleep(0.05)
    raise AssertionError("step %s never ran its container (and printed)" % key)


def expect_went_away(s, key, what):
    st = s.wait_step(key, timeout=60)
    ss = status_of(st)
    log("%s (%s): %s %r", key, what, ss["status"], ss.get("message"))
    check(ss["status"] == "FAILED", "%s: %s after %s", key, ss["status"], what)
    check("went away" in ss.get("message", ""), "%s: message %r does not say the engine went "
          "away", key, ss.get("message"))


def expect_ok(s, key, timeout=90):
    ss = status_of(s.wait_step(key, timeout=timeout))
    log("%s: %s %r", key, ss["status"], ss.get("message"))
    check(ss["status"] == "SUCCEEDED", "%s: %s %r", key, ss["status"], ss.get("message"))


def main():
    if not docker.available():
        raise Skip("dockerd or busybox-static not installed")
    with Dockerd(registry=False) as d, Scenario("docker-engine") as s:
        s.agent(args=["--docker-host", d.host, "--docker-wait", "60"])
        impatient = s.node + "-b"
        s.agent(impatient, args=["--docker-host", d.host, "--docker-wait", "2"])
        # Exits at once on SIGTERM, so that dockerd's shutdown is quick.
        s.c.put(s.action_key("ticker"), docker_action(
            "ticker", ["sh", "-c", "trap 'exit 143' TERM; while :; do echo tick; sleep 0.2; done"],
            image=d.image))
        s.c.put(s.action_key("ok"), docker_action("ok", "echo,fine", image=d.image))

        # ---- SIGTERM ------------------------------------------------------------
        s.put_step("de-term", "ticker@v1")
        wait_running(s, d, "de-term")
        t0 = time.time()
        d.stop_dockerd()
        log("%s stopped (SIGTERM) in %.1fs", d.engine, time.time() - t0)
        expect_went_away(s, "de-term", "dockerd SIGTERM")
        s.put_step("de-while-down", "ok@v1")
        s.put_step("de-impatient", "ok@v1", node=impatient)
        ss = status_of(s.wait_step("de-impatient", timeout=30))
        log("de-impatient: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "FAILED" and "docker engine unreachable at " + d.host
              in ss.get("message", ""), "de-impatient (--docker-wait 2): %s %r", ss["status"],
              ss.get("message"))
        time.sleep(1)
        check(status_of(s.get_step("de-while-down"))["status"] in ("PENDDING", "RUNNING"),
              "de-while-down did not wait for the engine: %s", status_of(s.get_step("de-while-down")))
        t0 = time.time()
        d.start_dockerd()
        log("%s back in %.1fs", d.engine, time.time() - t0)
        expect_ok(s, "de-while-down")
        s.put_step("de-after", "ok@v1")
        expect_ok(s, "de-after")

        # ---- SIGKILL ------------------------------------------------------------
        s.put_step("de-kill", "ticker@v1")
        wait_running(s, d, "de-kill")
        d.stop_dockerd(kill=True)
        log("dockerd killed (SIGKILL)")
        expect_went_away(s, "de-kill", "dockerd SIGKILL")
        d.start_dockerd()
        s.put_step("de-after-kill", "ok@v1")
        expect_ok(s, "de-after-kill")
        left = [(c["Labels"].get("workflow.step"), c["State"]) for c in
                d.containers(label="workflow.node=" + s.node)]
        log("containers of this node now: %s", left)
        if d.podman:
            # Still running after the service stopped: removed once it was back.
            deadline = time.time() + T(15)
            while time.time() < deadline and left:
                time.sleep(0.2)
                left = [(c["Labels"].get("workflow.step"), c["State"]) for c in
                        d.containers(label="workflow.node=" + s.node)]
            check(not left, "containers the Podman service left running were not removed "
                  "after it came back: %s", left)


run(main)
