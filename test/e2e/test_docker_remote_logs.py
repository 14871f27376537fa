#!/usr/bin/env python3
"""`wfctl logs -f` reads a running DOCKER step's log from its node
(docs/protocol.md §6.1, docs/wfctl.md), through the real binaries, a
private dockerd and etcd:

The agent runs in its own directory with a relative --log-dir, so the
step's log_path ("runner_log/Y/M/D/key") names no file where wfctl runs:
wfctl starts in another directory, with no --log-root and nothing shared
but etcd, finds the node's endpoint in its record, and follows the log
over HTTP with the token.  A busybox container prints numbered lines for
a few seconds, then 300 KiB in one go; wfctl's output is the file's bytes,
every one, in order, and it ends 0 when the step ends SUCCEEDED.  Without
the token wfctl says the node refused it and ends 1."""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, Skip, run, check, log, T  # noqa: E402
import docker  # noqa: E402
from docker import Dockerd, docker_action  # noqa: E402
from agent import run_wfctl  # noqa: E402
from etcd import free_port  # noqa: E402

TOKEN = "docker-logs-token"
SCRIPT = ("i=0; while [ $i -lt 40 ]; do echo \"container line $i\"; i=$((i+1)); sleep 0.1; done; "
          "head -c 307200 /dev/zero | tr '\\0' d; echo; echo done >&2")


def main():
    if not docker.available():
        raise Skip("dockerd or busybox-static not installed")
    with Dockerd(registry=False) as d, Scenario("docker_remote_logs") as s:
        token = os.path.join(s.tmp, "token")
        with open(token, "w") as f:
            f.write(TOKEN + "\n")
        port = free_port()
        s.agent(log_dir="runner_log",
                args=["--docker-host", d.host, "--listen", "127.0.0.1:%d" % port,
                      "--listen-token-file", token])
        s.c.put(s.action_key("talk"), docker_action("talk", ["sh", "-c", SCRIPT], image=d.image))
        s.put_step("dk1", "talk@v1")
        st = s.wait_step("dk1", statuses=("RUNNING",), timeout=T(60))
        path = st["status"]["response"]["log_path"]
        check(not os.path.isabs(path), "log_path %r is not relative", path)
        elsewhere = tempfile.mkdtemp(prefix="wf-e2e-wfctl-")
        check(not os.path.exists(os.path.join(elsewhere, path)), "the log is visible from %s",
              elsewhere)
        t0 = time.time()
        p = run_wfctl(["logs", "-f", "dk1", "--token-file", token], s.etcd.url, s.prefix,
                      timeout=T(120), cwd=elsewhere)
        took = time.time() - t0
        check(p.returncode == 0, "wfctl logs -f: rc %d, stderr %s", p.returncode, p.stderr)
        done = s.get_step("dk1")
        check(done["status"]["status"] == "SUCCEEDED", "dk1: %s", done["status"])
        with open(os.path.join(s.tmp, path), "rb") as f:
            want = f.read()
        check(len(want) > 307200, "the file has %d bytes", len(want))
        check(p.stdout.encode() == want, "wfctl printed %d bytes, the file has %d; tail %r",
              len(p.stdout), len(want), p.stdout[-120:])
        check(took > 2.0, "wfctl ended after %.1f s: it did not follow a running step", took)
        log("wfctl logs -f from %s followed the DOCKER step over HTTP: %d bytes in %.1f s",
            elsewhere, len(want), took)

        p = run_wfctl(["logs", "dk1"], s.etcd.url, s.prefix, timeout=T(60), cwd=elsewhere)
        check(p.returncode == 1 and "refused" in p.stderr and "--token-file" in p.stderr,
              "without the token: rc %d, stderr %r", p.returncode, p.stderr)
        check("container line" not in p.stdout, "log bytes printed without the token")
        os.rmdir(elsewhere)


run(main)
