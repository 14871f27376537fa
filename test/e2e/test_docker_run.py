#!/usr/bin/env python3
"""DOCKER runner through the real binary, on a private dockerd and etcd:

- orphans: containers labelled workflow.node=<this node> whose step is
  complete or absent are removed when the agent starts; other nodes' and
  unlabelled containers are left alone;
- success: `sh -c 'echo out; echo err >&2; exit 0'` (the comma form of
  IMAGE_CMD) ends SUCCEEDED; the log holds both lines; the response has
  container_id, exit_code 0, log_driver, log_path; the container is removed;
- failure: exit 3 (the JSON-array form) ends FAILED naming exit code 3;
- mounts: a CONTAINER_MOUNTS host path outside --allow-mount (or a symlink
  inside it that leads out) ends FAILED naming the path; one inside works
  (the container reads a file from it);
- a missing executable ends FAILED with Docker's message; a container over
  CONTAINER_MEMORY 8m ends FAILED saying it was OOM-killed;
- attach before start: eight one-line containers at once each leave their
  line in their log (an output stream hooked up after the start would lose
  it);
- leftovers: a stopped container named after the step's key with our label
  does not block the step; one without our label fails it naming the
  conflict and is left alone."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, Skip, run, check, status_of, response_of, log, T  # noqa: E402
import docker  # noqa: E402
from docker import Dockerd, docker_action  # noqa: E402


def create_container(d, name, labels, cmd, start=True, wait_exit=False):
    """A container made behind the agent's back; returns its id."""
    q = "/containers/create" + ("?name=" + name if name else "")
    st, v = d.api("POST", q, {"Image": d.image, "Cmd": cmd, "Labels": labels,
                              "HostConfig": {"NetworkMode": "none"}})
    check(st == 201, "create %s: %s %s", name, st, v)
    cid = v["Id"]
    if start:
        st, v = d.api("POST", "/containers/%s/start" % cid)
        check(st == 204, "start %s: %s %s", name, st, v)
    if wait_exit:
        st, v = d.api("POST", "/containers/%s/wait" % cid)
        check(st == 200, "wait %s: %s %s", name, st, v)
    return cid


def exists(d, cid):
    st, _ = d.api("GET", "/containers/%s/json" % cid)
    return st == 200


def read_log(st):
    with open(response_of(st)["log_path"], "rb") as f:
        return f.read()


def main():
    if not docker.available():
        raise Skip("dockerd or busybox-static not installed")
    with Dockerd(registry=False) as d, Scenario("docker-run") as s:
        node = s.node
        # ---- orphans, made before the agent starts ------------------------
        s.put_step("dr-done", "x@v1", status="SUCCEEDED")
        mine = {"workflow.node": node}
        orphan_running = create_container(d, None, dict(mine, **{"workflow.step": "dr-done"}),
                                          ["sleep", "600"])
        orphan_exited = create_container(d, None, dict(mine, **{"workflow.step": "dr-absent"}),
                                         ["true"], wait_exit=True)
        foreign = create_container(d, None, {"workflow.node": "other-node",
                                             "workflow.step": "dr-absent"}, ["sleep", "600"])
        unlabelled = create_container(d, None, {}, ["true"], wait_exit=True)

        allowed = os.path.join(s.tmp, "allowed")
        os.makedirs(os.path.join(allowed, "data"))
        with open(os.path.join(allowed, "data", "hello.txt"), "w") as f:
            f.write("hello from the host\n")
        outside = os.path.join(s.tmp, "outside")
        os.makedirs(outside)
        os.symlink(outside, os.path.join(allowed, "escape"))

        s.agent(args=["--docker-host", d.host, "--allow-mount", allowed])
        deadline = time.time() + T(15)
        while time.time() < deadline and (exists(d, orphan_running) or exists(d, orphan_exited)):
            time.sleep(0.1)
        check(not exists(d, orphan_running), "the running orphan (step complete) is still there")
        check(not exists(d, orphan_exited), "the exited orphan (step absent) is still there")
        check(exists(d, foreign), "another node's container was removed")
        check(exists(d, unlabelled), "an unlabelled container was removed")
        log("orphans removed at start-up, other containers kept")

        # ---- success and failure ------------------------------------------
        s.c.put(s.action_key("ok"), docker_action(
            "ok", "sh,-c,echo out; echo err >&2; exit 0", image=d.image))
        s.c.put(s.action_key("three"), docker_action(
            "three", ["sh", "-c", "echo before, exiting; exit 3"], image=d.image))
        s.put_step("dr-ok", "ok@v1")
        s.put_step("dr-three", "three@v1")
        st = s.wait_step("dr-ok", timeout=60)
        ss, r = status_of(st), response_of(st)
        log("dr-ok: %s", ss)
        check(ss["status"] == "SUCCEEDED", "dr-ok: %s %r", ss["status"], ss.get("message"))
        check(re.fullmatch(r"[0-9a-f]{64}", r.get("container_id", "")),
              "response container_id %r", r.get("container_id"))
        check(str(r.get("exit_code")) == "0", "response exit_code %r", r.get("exit_code"))
        check(r.get("log_driver") == "local_file", "response log_driver %r", r.get("log_driver"))
        check(r.get("log_path", "").startswith(s.log_dir + "/") and
              r["log_path"].endswith("/dr-ok"), "response log_path %r", r.get("log_path"))
        data = read_log(st)
        check(sorted(data.splitlines()) == [b"err", b"out"], "dr-ok log %r", data)
        check(ss.get("end_at", 0) >= ss.get("start_at", 1) > 0, "start_at/end_at: %s", ss)
        check(not exists(d, r["container_id"]), "dr-ok's container was not removed")

        st = s.wait_step("dr-three", timeout=60)
        ss, r = status_of(st), response_of(st)
        log("dr-three: %s", ss)
        check(ss["status"] == "FAILED", "dr-three: %s", ss["status"])
        check(re.search(r"\b3\b", ss.get("message", "")), "message %r does not name 3",
              ss.get("message"))
        check(str(r.get("exit_code")) == "3", "response exit_code %r", r.get("exit_code"))
        check(read_log(st) == b"before, exiting\n", "dr-three log %r", read_log(st))

        # ---- attach before start: no early byte lost ------------------------
        for i in range(8):
            s.c.put(s.action_key("one%d" % i), docker_action("one%d" % i, ["echo", "line %d" % i],
                                                             image=d.image))
            s.put_step("dr-one%d" % i, "one%d@v1" % i)
        for i in range(8):
            st = s.wait_step("dr-one%d" % i, timeout=60)
            check(status_of(st)["status"] == "SUCCEEDED", "dr-one%d: %s", i, status_of(st))
            check(read_log(st) == b"line %d\n" % i, "dr-one%d log %r (output lost before the "
                  "attach?)", i, read_log(st))
        log("eight one-line containers: every line in its log")

        # ---- a failed start, an OOM kill -------------------------------------
        s.c.put(s.action_key("noexec"), docker_action("noexec", "/no/such/binary", image=d.image))
        s.c.put(s.action_key("oom"), docker_action(
            "oom", ["sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}"],
            image=d.image, CONTAINER_MEMORY="8m"))
        s.put_step("dr-noexec", "noexec@v1")
        s.put_step("dr-oom", "oom@v1")
        ss = status_of(s.wait_step("dr-noexec", timeout=60))
        log("dr-noexec: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "FAILED" and "/no/such/binary" in ss.get("message", ""),
              "dr-noexec: %s %r", ss["status"], ss.get("message"))
        ss = status_of(s.wait_step("dr-oom", timeout=60))
        log("dr-oom: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "FAILED" and "OOM" in ss.get("message", ""),
              "dr-oom: %s %r", ss["status"], ss.get("message"))
        if d.podman:
            # Podman 4.3.1 never sets State.OOMKilled here (the memory
            # controller works: the kernel kills at 8m).  conmon 2.1.6 gets
            # the kernel's OOM event but writes its "oom" marker into its
            # working directory, and Podman looks for it in the container's
            # bundle.  The runner infers the kill and says so.
            check("inferred" in ss.get("message", "") and "podman did not flag it" in
                  ss.get("message", ""), "dr-oom under Podman: %r", ss.get("message"))

        # ---- mounts --------------------------------------------------------
        cases = [("dr-m-out", outside + ":/mnt", outside),
                 ("dr-m-dots", allowed + "/../outside:/mnt:ro", "outside"),
                 ("dr-m-link", allowed + "/escape:/mnt", "escape")]
        for key, mount, _ in cases:
            s.c.put(s.action_key(key), docker_action(key, "ls,/mnt", image=d.image,
                                                     CONTAINER_MOUNTS=mount))
            s.put_step(key, key + "@v1")
        s.c.put(s.action_key("m-in"), docker_action(
            "m-in", "cat,/mnt/hello.txt", image=d.image,
            CONTAINER_MOUNTS=os.path.join(allowed, "data") + ":/mnt:ro"))
        s.put_step("dr-m-in", "m-in@v1")
        for key, mount, named in cases:
            ss = status_of(s.wait_step(key, timeout=60))
            log("%s (%s): %s %r", key, mount, ss["status"], ss.get("message"))
            check(ss["status"] == "FAILED", "%s: mount %s: %s", key, mount, ss["status"])
            check(named in ss.get("message", ""), "%s: message %r does not name %s", key,
                  ss.get("message"), named)
        st = s.wait_step("dr-m-in", timeout=60)
        ss = status_of(st)
        check(ss["status"] == "SUCCEEDED", "dr-m-in: %s %r", ss["status"], ss.get("message"))
        check(read_log(st) == b"hello from the host\n", "dr-m-in log %r", read_log(st))

        # ---- leftover containers named after a step -------------------------
        left = create_container(d, "dr-left", dict(mine, **{"workflow.step": "dr-left"}),
                                ["true"], wait_exit=True)
        never_started = create_container(d, "dr-left2", dict(mine, **{"workflow.step": "dr-left2"}),
                                         ["true"], start=False)
        stranger = create_container(d, "dr-taken", {"owner": "somebody"}, ["true"],
                                    wait_exit=True)
        s.c.put(s.action_key("echo"), docker_action("echo", "sh,-c,echo ran $WORKFLOW_STEP_KEY",
                                                    image=d.image))
        for k in ("dr-left", "dr-left2", "dr-taken"):
            s.put_step(k, "echo@v1")
        for k, old in (("dr-left", left), ("dr-left2", never_started)):
            st = s.wait_step(k, timeout=60)
            ss = status_of(st)
            check(ss["status"] == "SUCCEEDED", "%s (leftover container): %s %r", k, ss["status"],
                  ss.get("message"))
            check(read_log(st) == b"ran %s\n" % k.encode(), "%s log %r", k, read_log(st))
            check(response_of(st).get("container_id") != old and not exists(d, old),
                  "%s: the leftover container %s was not replaced", k, old[:12])
        ss = status_of(s.wait_step("dr-taken", timeout=60))
        log("dr-taken: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "FAILED", "dr-taken: %s", ss["status"])
        check("dr-taken" in ss.get("message", "") and stranger[:12] in ss.get("message", ""),
              "dr-taken: message %r names neither the name nor the container", ss.get("message"))
        check(exists(d, stranger), "somebody else's container dr-taken was removed")

        # nothing of ours is left behind
        leftover = [c["Names"] for c in d.containers(label="workflow.node=" + node)]
        check(not leftover, "containers of this node left: %s", leftover)


run(main)
