#!/usr/bin/env python3
"""Parameters: action defaults < pipeline `with` (pipeline steps only, and a
step without create_type is a pipeline step) < step `with`; WORKFLOW_*
variables; a missing required param ends FAILED naming each missing one; an
unknown action ends FAILED naming the action; a bad env key ends FAILED
naming it; --actions-dir actions run, and an etcd action of the same
name@version wins over the file."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, response_of, log  # noqa: E402

PRINT = sh('printf "A=%s B=%s C=%s D=%s ns=%s pid=%s key=%s node=%s" "$A" "$B" "$C" "$D" '
           '"$WORKFLOW_NAMESPACE" "$WORKFLOW_PIPELINE_ID" "$WORKFLOW_STEP_KEY" '
           '"$WORKFLOW_NODE_NAME"')


def logtext(st):
    with open(response_of(st)["log_path"], "rb") as f:
        return f.read().decode()


def main():
    with Scenario("params") as s:
        adir = os.path.join(s.tmp, "actions")
        os.makedirs(adir)
        with open(os.path.join(adir, "file.yaml"), "w") as f:
            f.write("name: fromfile\nversion: v1\nrunner_type: LOCAL\nrunner_params:\n"
                    "  CMD: sh,-c,printf file-action\n---\n"
                    "name: p\nversion: v1\nrunner_type: LOCAL\nrunner_params:\n"
                    "  CMD: sh,-c,printf shadowed-by-etcd\n")
        s.agent(args=["--actions-dir", adir])
        # an action written just before its step is found, also right after
        # the agent started (its catalog must not lag behind the steps into
        # a "not found")
        fresh = []
        for i in range(20):
            s.put_action("fresh%d" % i, "true")
            s.put_step("fresh%d" % i, "fresh%d@v1" % i)
            fresh.append("fresh%d" % i)
        got = s.wait_steps(fresh, timeout=30)
        bad = {k: status_of(v).get("message") for k, v in got.items()
               if status_of(v)["status"] != "SUCCEEDED"}
        check(not bad, "%d of 20 steps whose action was written just before them failed: %s",
              len(bad), bad)

        s.put_action("p", PRINT, run_params=[
            {"key_name": "A", "default_value": "a-action"},
            {"key_name": "B", "default_value": "b-action"},
            {"key_name": "C", "default_value": "c-action"},
            {"key_name": "D", "default_value": ""},  # empty default: not set
        ])
        s.put_action("req", sh("echo should not run"), run_params=[
            {"key_name": "R1", "required": True},
            {"key_name": "R2", "required": True, "default_value": ""},
            {"key_name": "R3", "required": True, "default_value": "has-default"},
            {"key_name": "R4", "required": True},
        ])
        ns, pid = "ns1", "c3r8psea0brhlbg0qdd0"
        s.c.put(s.pipeline_key(ns, pid), {
            "id": pid, "namespace": ns, "name": "pipe", "with": {"B": "b-pipe", "C": "c-pipe"},
            "stages": [{"id": 1, "name": "s1", "steps": [{"name": "x", "action": "p@v1"}]}]})
        k_pipe = "%s.%s.1.1" % (ns, pid)
        k_nocreate = "%s.%s.1.2" % (ns, pid)
        s.put_step(k_pipe, "p@v1", create_type="PIPELINE", namespace=ns, pipeline_id=pid,
                   with_={"C": "c-step"})
        s.put_step(k_nocreate, "p@v1", create_type=None, namespace=ns, pipeline_id=pid,
                   with_={})
        s.put_step("user1", "p@v1", with_={"C": "c-step", "D": "d-step"})
        s.put_step("req1", "req@v1", with_={"R2": "", "R4": "given"})
        s.put_step("unknown1", "nosuchaction@v9")
        s.put_step("badenv1", "p@v1", with_={"BAD-KEY": "x"})
        s.put_step("file1", "fromfile@v1")

        st = s.wait_step(k_pipe)
        check(status_of(st)["status"] == "SUCCEEDED", "pipeline step: %s", status_of(st))
        got = logtext(st)
        want = ("A=a-action B=b-pipe C=c-step D= ns=%s pid=%s key=%s node=%s"
                % (ns, pid, k_pipe, s.node))
        check(got == want, "pipeline step env:\n got  %r\n want %r", got, want)

        st = s.wait_step("file1")
        check(status_of(st)["status"] == "SUCCEEDED" and logtext(st) == "file-action",
              "--actions-dir action: %s", status_of(st))

        st = s.wait_step(k_nocreate)
        check(status_of(st)["status"] == "SUCCEEDED", "step without create_type: %s",
              status_of(st))
        got = logtext(st)
        check(got.startswith("A=a-action B=b-pipe C=c-pipe D= "),
              "a step without create_type is a pipeline step and gets the pipeline's with: %r",
              got)

        st = s.wait_step("user1")
        check(status_of(st)["status"] == "SUCCEEDED", "user step: %s", status_of(st))
        got = logtext(st)
        check(got.startswith("A=a-action B=b-action C=c-step D=d-step "),
              "a USER step does not get pipeline params: %r", got)

        st = s.wait_step("req1")
        msg = status_of(st).get("message", "")
        log("req1: %s / %r", status_of(st)["status"], msg)
        check(status_of(st)["status"] == "FAILED", "missing params: status %s",
              status_of(st)["status"])
        for p in ("R1", "R2"):
            check("required param " + p in msg, "message %r does not name %s", msg, p)
        for p in ("R3", "R4"):
            check(p not in msg, "message %r names %s, which is present", msg, p)
        lp = response_of(st).get("log_path")
        check(not lp or not os.path.exists(lp) or b"should not run" not in open(lp, "rb").read(),
              "the step ran although params were missing")

        st = s.wait_step("unknown1")
        msg = status_of(st).get("message", "")
        log("unknown1: %s / %r", status_of(st)["status"], msg)
        check(status_of(st)["status"] == "FAILED", "unknown action: status %s",
              status_of(st)["status"])
        check("nosuchaction@v9" in msg and "not found" in msg,
              "message %r does not name the action nosuchaction@v9 as not found", msg)

        st = s.wait_step("badenv1")
        msg = status_of(st).get("message", "")
        log("badenv1: %s / %r", status_of(st)["status"], msg)
        check(status_of(st)["status"] == "FAILED" and "BAD-KEY" in msg,
              "a param key that is not a valid env name must end FAILED naming it: %s",
              status_of(st))


run(main)
