#!/usr/bin/env python3
"""DOCKER runner across an agent restart, through the real binary, on a
private dockerd and etcd: kill -9 the agent while two containers print
numbered lines, then start it again:

- dr-run prints 60 lines over ~6 s and exits 7: it still runs when the agent
  comes back (re-attach and follow);
- dr-exit prints 15 lines over ~1.5 s and exits 5: it has exited by then
  (collect the rest of its output and its exit code).

Each ends FAILED naming its true exit code, and its log holds every line in
order (a line around the restart may repeat; none may be missing); the
containers are removed afterwards.  Also, while the agent is down:

- dr-gone's container (`sleep 600`) is removed behind its back: the step
  ends FAILED saying the node restarted;
- dr-cancel (`sleep 600`) is set CANCELING: it ends CANCELED and its
  container is removed;
- dr-quiet (`sleep 8; echo late; exit 2`) prints nothing until after the
  agent is back: it is followed through a logs stream whose response head
  only comes with the first byte (Podman sends none before), and ends FAILED
  with exit code 2 and "late" in its log."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, Skip, run, check, status_of, response_of, log, T  # noqa: E402
import docker  # noqa: E402
from docker import Dockerd, docker_action  # noqa: E402


def printer(n, code):
    return ["sh", "-c", "i=1; while [ $i -le %d ]; do echo line $i; i=$((i+1)); sleep 0.1; done; "
                        "exit %d" % (n, code)]


def check_lines(key, data, n):
    """Every line 'line 1'..'line n' is there, in order; repeats allowed."""
    lines = data.decode(errors="replace").split("\n")
    check(lines[-1] == "", "%s: log does not end with a newline: %r", key, data[-60:])
    want = 1
    dups = 0
    for l in lines[:-1]:
        m = re.fullmatch(r"line (\d+)", l)
        check(m, "%s: broken line %r in the log", key, l)
        v = int(m.group(1))
        if v == want:
            want += 1
        elif v < want:
            dups += 1  # repeated around the restart
        else:
            raise AssertionError("%s: line %d missing (next found: line %d)" % (key, want, v))
    check(want == n + 1, "%s: log ends at line %d, want %d", key, want - 1, n)
    return dups


def main():
    if not docker.available():
        raise Skip("dockerd or busybox-static not installed")
    with Dockerd(registry=False) as d, Scenario("docker-restart") as s:
        a = s.agent(args=["--docker-host", d.host])
        s.c.put(s.action_key("run"), docker_action("run", printer(60, 7), image=d.image))
        s.c.put(s.action_key("exit"), docker_action("exit", printer(15, 5), image=d.image))
        s.c.put(s.action_key("sleep"), docker_action("sleep", "sleep,600", image=d.image))
        s.c.put(s.action_key("quiet"), docker_action("quiet", ["sh", "-c", "sleep 8; echo late; "
                                                              "exit 2"], image=d.image))
        s.put_step("dr-run", "run@v1")
        s.put_step("dr-exit", "exit@v1")
        s.put_step("dr-gone", "sleep@v1")
        s.put_step("dr-cancel", "sleep@v1")
        s.put_step("dr-quiet", "quiet@v1")
        # kill -9 once both print (line 5 of dr-exit, line 1 of dr-run in
        # their logs) and the quiet ones run: five containers starting at once
        # can take a few seconds on a busy machine.
        def printed(key, line):
            p = s.log_file(key)
            return p and line in open(p, "rb").read()

        deadline = time.time() + T(60)
        while time.time() < deadline:
            s._alive_check()
            if printed("dr-exit", b"line 5\n") and printed("dr-run", b"line 1\n"):
                running = {c["Labels"]["workflow.step"] for c in
                           d.containers(label="workflow.node=" + s.node)
                           if c["State"] == "running"}
                if {"dr-gone", "dr-cancel", "dr-quiet"} <= running:
                    break
            time.sleep(0.02)
        else:
            raise AssertionError("dr-exit and dr-run never printed, or the sleepers never ran")
        a.kill9()
        log("agent killed with SIGKILL")
        # dr-exit has exited by now, dr-run still runs
        ids = {}
        deadline = time.time() + T(10)
        while time.time() < deadline:
            states = {c["Labels"]["workflow.step"]: c["State"]
                      for c in d.containers(label="workflow.node=" + s.node)}
            ids = {c["Labels"]["workflow.step"]: c["Id"]
                   for c in d.containers(label="workflow.node=" + s.node)}
            if states.get("dr-exit") == "exited":
                break
            time.sleep(0.1)
        log("containers while the agent is down: %s", states)
        check(states.get("dr-exit") == "exited", "dr-exit's container: %s", states.get("dr-exit"))
        check(states.get("dr-run") == "running", "dr-run's container: %s (the test is too slow?)",
              states.get("dr-run"))
        check(states.get("dr-gone") == "running" and states.get("dr-cancel") == "running" and
              states.get("dr-quiet") == "running",
              "dr-gone / dr-cancel / dr-quiet containers: %s", states)
        st, v = d.api("DELETE", "/containers/%s?force=1" % ids["dr-gone"])
        check(st == 204, "removing dr-gone's container: %s %s", st, v)
        s.set_status("dr-cancel", "CANCELING")
        a.start()
        ss = status_of(s.wait_step("dr-gone", timeout=60))
        log("dr-gone: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "FAILED" and "restart" in ss.get("message", ""),
              "dr-gone (container removed while the agent was down): %s %r", ss["status"],
              ss.get("message"))
        ss = status_of(s.wait_step("dr-cancel", timeout=60))
        log("dr-cancel: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "CANCELED", "dr-cancel (CANCELING while the agent was down): %s %r",
              ss["status"], ss.get("message"))
        st = s.wait_step("dr-quiet", timeout=60)
        ss = status_of(st)
        log("dr-quiet: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "FAILED" and str(response_of(st).get("exit_code")) == "2",
              "dr-quiet: %s %r", ss["status"], response_of(st))
        with open(response_of(st)["log_path"], "rb") as f:
            data = f.read()
        check(data == b"late\n", "dr-quiet log %r", data)
        for key, n, code in (("dr-run", 60, 7), ("dr-exit", 15, 5)):
            st = s.wait_step(key, timeout=60)
            ss, r = status_of(st), response_of(st)
            log("%s: %s %r", key, ss["status"], ss.get("message"))
            check(ss["status"] == "FAILED", "%s: %s", key, ss["status"])
            check(re.search(r"\b%d\b" % code, ss.get("message", "")) and
                  "restart" not in ss.get("message", ""),
                  "%s: message %r does not name the true exit code %d", key, ss.get("message"),
                  code)
            check(str(r.get("exit_code")) == str(code), "%s: response exit_code %r", key,
                  r.get("exit_code"))
            check(r.get("container_id") == ids.get(key), "%s: container_id %r, want %r", key,
                  r.get("container_id"), ids.get(key))
            with open(r["log_path"], "rb") as f:
                data = f.read()
            dups = check_lines(key, data, n)
            log("%s: all %d lines there (%d repeated around the restart)", key, n, dups)
        deadline = time.time() + T(10)
        while time.time() < deadline and d.containers(label="workflow.node=" + s.node):
            time.sleep(0.1)
        left = [c["Names"] for c in d.containers(label="workflow.node=" + s.node)]
        check(not left, "containers left after the recovered steps finished: %s", left)


run(main)
