#!/usr/bin/env python3
"""Step outputs with the DOCKER runner (docs/protocol.md §4, "Step outputs";
docs/docker.md), through the real binary, on a private dockerd and etcd:

- a container step of a pipeline (busybox) sees WORKFLOW_OUTPUT and
  WORKFLOW_SUMMARY under /workflow-output, publishes a value and a
  multi-line value and a summary (its message); a LOCAL step of the next
  stage is offered them (NAME and <step name>.NAME);
- a DOCKER step of a later stage is offered an earlier LOCAL step's outputs
  (and the container's), names with a dot included, in its environment;
- a container running as another user (CONTAINER_USER 1000:1000) can write
  its files;
- a symlink (to /etc/passwd) or a FIFO made inside the container as
  WORKFLOW_OUTPUT ends the step FAILED naming the kind;
- a container step that outlives a kill -9 of the agent is re-attached and
  its outputs, written before and after the restart, are recorded;
- the output directory of every step is gone afterwards, and no container
  of this node is left."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, Skip, run, check, status_of, response_of, log, T  # noqa: E402
import docker  # noqa: E402
from docker import Dockerd, docker_action  # noqa: E402

NS = "ns1"
PY = sys.executable or "/usr/bin/python3"
# A LOCAL step without a shell: runs SCRIPT (if any) with sh, then prints
# its environment as JSON after a marker (names with a dot, values of
# several lines come through).
WRAPPER = r"""
import json, os, subprocess, sys
sh = os.environ.get("SCRIPT")
rc = subprocess.call(["sh", "-c", sh]) if sh else 0
sys.stdout.write("\n@@ENV@@" + json.dumps(dict(os.environ), sort_keys=True) + "\n")
sys.exit(rc)
"""


def log_text(st):
    with open(response_of(st)["log_path"], "rb") as f:
        return f.read().decode("utf-8", "replace")


def local_env(st):
    data = log_text(st)
    i = data.rfind("@@ENV@@")
    check(i >= 0, "%s: no environment in the log: %r", st.get("key"), data[-300:])
    return json.loads(data[i + len("@@ENV@@"):].strip())


def outputs_of(st):
    return {k[len("output."):]: v for k, v in response_of(st).items() if k.startswith("output.")}


def main():
    if not docker.available():
        raise Skip("dockerd or busybox-static not installed")
    with Dockerd(registry=False) as d, Scenario("docker_outputs") as s:
        out_root = os.path.join(s.tmp, "runner_output")  # the agent runs in s.tmp
        agent = s.agent(args=["--docker-host", d.host])
        s.c.put(s.action_key("local"), s.action_obj("local", json.dumps([PY, "-c", WRAPPER])))

        def dact(name, argv, **params):
            s.c.put(s.action_key(name), docker_action(name, argv, image=d.image, **params))
            return name + "@v1"

        pipes = set()

        def pstep(pid, stage, step, name, action, with_=None):
            if pid not in pipes:
                s.c.put(s.pipeline_key(NS, pid), {"id": pid, "namespace": NS, "name": pid,
                                                  "with": {}, "stages": []})
                pipes.add(pid)
            key = "%s.%s.%d.%d" % (NS, pid, stage, step)
            s.put_step(key, action, with_=with_ or {}, create_type="PIPELINE", namespace=NS,
                       pipeline_id=pid, name=name)
            return key

        def done(key, want="SUCCEEDED", timeout=90):
            st = s.wait_step(key, timeout=timeout)
            ss = status_of(st)
            check(ss["status"] == want, "%s: %s (want %s), message %r", key, ss["status"], want,
                  ss.get("message"))
            d_ = os.path.join(out_root, key)
            check(not os.path.lexists(d_), "%s: the output directory %s is still there: %s",
                  key, d_, os.listdir(d_) if os.path.isdir(d_) else "")
            return st

        # ---- a container publishes, a LOCAL step consumes --------------------------------
        produce = dact("dbuild", ["sh", "-c",
                                  'echo "IMAGE=reg/app:9" >> "$WORKFLOW_OUTPUT"; '
                                  'printf "ML<<EOF\\nl1\\n\\nl 2\\nEOF\\n" >> "$WORKFLOW_OUTPUT"; '
                                  'echo "built in a container" > "$WORKFLOW_SUMMARY"; '
                                  'echo "files $WORKFLOW_OUTPUT $WORKFLOW_SUMMARY"; '
                                  'ls -d /workflow-output'])
        k11 = pstep("pd", 1, 1, "dbuild", produce)
        st = done(k11)
        text = log_text(st)
        log("%s: %s / log %r", k11, status_of(st), text)
        check("files /workflow-output/output /workflow-output/summary\n" in text,
              "the container's WORKFLOW_OUTPUT/SUMMARY: %r", text)
        check(status_of(st).get("message") == "built in a container", "summary as message: %r",
              status_of(st).get("message"))
        check(outputs_of(st) == {"IMAGE": "reg/app:9", "ML": "l1\n\nl 2"},
              "the container's outputs: %r", outputs_of(st))

        k21 = pstep("pd", 2, 1, "lbuild", "local@v1", with_={
            "SCRIPT": 'echo "LV=from-local" >> "$WORKFLOW_OUTPUT"; '
                      'echo "IMAGE=reg/app:10" >> "$WORKFLOW_OUTPUT"'})
        st = done(k21, timeout=30)
        env = local_env(st)
        want = {"IMAGE": "reg/app:9", "dbuild.IMAGE": "reg/app:9", "ML": "l1\n\nl 2",
                "dbuild.ML": "l1\n\nl 2"}
        bad = {k: (env.get(k), v) for k, v in want.items() if env.get(k) != v}
        check(not bad, "the LOCAL consumer of a container's outputs (got, want): %s", bad)
        check(outputs_of(st) == {"LV": "from-local", "IMAGE": "reg/app:10"},
              "the LOCAL step's outputs %r", outputs_of(st))
        log("a LOCAL step got the container's outputs")

        # ---- a DOCKER step consumes (no shell: env prints dotted names too) -----------------
        k31 = pstep("pd", 3, 1, "dconsume", dact("denv", ["env"]))
        st = done(k31)
        lines = log_text(st)
        log("%s env: %r", k31, lines)
        # whole lines ("\n" first: IMAGE=... must not match lbuild.IMAGE=...)
        for want_line in ("LV=from-local", "lbuild.LV=from-local", "IMAGE=reg/app:10",
                          "dbuild.IMAGE=reg/app:9", "lbuild.IMAGE=reg/app:10",
                          "ML=l1\n\nl 2", "dbuild.ML=l1\n\nl 2",
                          "WORKFLOW_OUTPUT=/workflow-output/output",
                          "WORKFLOW_SUMMARY=/workflow-output/summary"):
            check("\n" + want_line + "\n" in "\n" + lines, "the DOCKER consumer's env lacks %r",
                  want_line)
        check(s.tmp not in lines, "the container saw a host path: %r", lines)
        log("a DOCKER step got the LOCAL step's and the container's outputs")

        # ---- another user in the container ----------------------------------------------
        kuser = pstep("pu", 1, 1, "asuser", dact(
            "asuser", ["sh", "-c", 'id -u; echo "UID_WAS=$(id -u)" >> "$WORKFLOW_OUTPUT"; '
                                   'echo "as $(id -u)" > "$WORKFLOW_SUMMARY"'],
            CONTAINER_USER="1000:1000"))
        st = done(kuser)
        check(outputs_of(st) == {"UID_WAS": "1000"} and status_of(st)["message"] == "as 1000",
              "a container as user 1000: outputs %r message %r", outputs_of(st),
              status_of(st)["message"])

        # ---- refused kinds made inside the container ---------------------------------------
        cases = {
            "pr-link": ('ln -s /etc/passwd "$WORKFLOW_OUTPUT"',
                        "WORKFLOW_OUTPUT is a symbolic link: refused"),
            "pr-fifo": ('mkfifo "$WORKFLOW_OUTPUT"', "WORKFLOW_OUTPUT is a FIFO: refused"),
        }
        for key, (script, _) in cases.items():
            s.put_step(key, dact(key, ["sh", "-c", script + '; echo "not this" > '
                                       '"$WORKFLOW_SUMMARY"']), name=key)
        for key, (_, needle) in cases.items():
            st = done(key, "FAILED")
            msg = status_of(st).get("message", "")
            log("%s: %r", key, msg)
            check(needle in msg, "%s: message %r does not hold %r", key, msg, needle)
            check(not outputs_of(st) and "root:" not in json.dumps(st),
                  "%s: recorded %s", key, outputs_of(st))
            ss = status_of(st)
            check(ss["end_at"] - ss["start_at"] < T(30) * 1000, "%s took %d ms", key,
                  ss["end_at"] - ss["start_at"])

        # ---- re-attached after kill -9: outputs from before and after ----------------------
        slow = dact("dslow", ["sh", "-c",
                              'echo "BEFORE=1" >> "$WORKFLOW_OUTPUT"; echo started; sleep 4; '
                              'echo "AFTER=2" >> "$WORKFLOW_OUTPUT"; echo "after restart" > '
                              '"$WORKFLOW_SUMMARY"'])
        s.put_step("dr-slow", slow, name="dr-slow")
        ready = os.path.join(out_root, "dr-slow", "output")
        deadline = time.time() + T(60)
        while not (os.path.exists(ready) and os.path.getsize(ready) > 0):
            check(time.time() < deadline, "dr-slow did not write BEFORE")
            time.sleep(0.1)
        agent.kill9()
        log("agent killed with dr-slow running")
        agent.start()
        st = done("dr-slow", timeout=90)
        check(outputs_of(st) == {"BEFORE": "1", "AFTER": "2"} and
              status_of(st).get("message") == "after restart",
              "re-attached: outputs %r message %r", outputs_of(st), status_of(st).get("message"))
        check(agent.stderr_lines_with("re-attaching"), "the agent did not re-attach")
        log("re-attached step: outputs and summary recorded")

        left = os.listdir(out_root)
        check(not left, "left in %s: %s", out_root, left)
        deadline = time.time() + T(10)
        while d.containers(label="workflow.node=" + s.node) and time.time() < deadline:
            time.sleep(0.2)
        leftover = [c["Names"] for c in d.containers(label="workflow.node=" + s.node)]
        check(not leftover, "containers of this node left: %s", leftover)


run(main)
