#!/usr/bin/env python3
"""wfctl against a real etcd and a running agent: apply -f (multi-document
YAML actions, a JSON step), get actions|steps|nodes, run ACTION --with K=V
--node NAME (exit 0 only on SUCCEEDED), logs KEY [-f], cancel KEY."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, status_of, log, run_wfctl, WFCTL, T  # noqa: E402
from agent import sanitizer_report  # noqa: E402

ACTIONS_YAML = """\
kind: action
name: echo
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,echo "msg=$MSG"
run_params:
  - key_name: MSG
    required: true
---
kind: action
name: fail
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,echo failing; exit 4
---
kind: action
name: ticker
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,for i in 1 2 3; do echo tick $i; sleep 0.5; done
---
kind: action
name: sleeper
version: v1
runner_type: LOCAL
runner_params:
  CMD: sleep,60
"""


def main():
    with Scenario("wfctl") as s:
        check(os.access(WFCTL, os.X_OK), "no wfctl at %s", WFCTL)

        def ctl(*args, timeout=60):
            p = run_wfctl(list(args), s.etcd.url, s.prefix, timeout=T(timeout), cwd=s.tmp)
            log("wfctl %s -> exit %d%s%s", " ".join(args), p.returncode,
                ("\n  stdout: " + p.stdout.strip()[:400]) if p.stdout.strip() else "",
                ("\n  stderr: " + p.stderr.strip()[:400]) if p.stderr.strip() else "")
            rep = sanitizer_report(p.stderr)
            check(rep is None, "wfctl %s: %s", " ".join(args), rep)
            return p

        af = os.path.join(s.tmp, "actions.yaml")
        with open(af, "w") as f:
            f.write(ACTIONS_YAML)
        p = ctl("apply", "-f", af)
        check(p.returncode == 0, "apply actions: exit %d: %s", p.returncode, p.stderr)
        for name in ("echo", "fail", "ticker", "sleeper"):
            a = s.c.get_json(s.action_key(name))
            check(a and a.get("name") == name and a.get("runner_type") == "LOCAL"
                  and "kind" not in a, "action %s stored as %s", name, a)
        s.agent()

        sf = os.path.join(s.tmp, "step.json")
        with open(sf, "w") as f:
            json.dump({"kind": "step", "key": "applied1", "name": "applied", "action": "echo@v1",
                       "with": {"MSG": "from-apply"},
                       "status": {"scheduled_node": s.node}}, f)
        p = ctl("apply", "-f", sf)
        check(p.returncode == 0, "apply step: exit %d: %s", p.returncode, p.stderr)
        st = s.wait_step("applied1")
        check(status_of(st)["status"] == "SUCCEEDED", "applied step: %s", status_of(st))

        p = ctl("get", "actions")
        check(p.returncode == 0 and "echo" in p.stdout and "sleeper" in p.stdout,
              "get actions")
        p = ctl("get", "steps")
        check(p.returncode == 0 and "applied1" in p.stdout, "get steps")
        p = ctl("get", "nodes")
        check(p.returncode == 0 and s.node in p.stdout, "get nodes")

        p = ctl("logs", "applied1")
        check(p.returncode == 0 and p.stdout == "msg=from-apply\n", "logs: %r", p.stdout)

        before = set(s.c.get_prefix_json(s.step_key("")))
        p = ctl("run", "echo@v1", "--with", "MSG=hello world", "--node", s.node)
        check(p.returncode == 0, "run echo: exit %d", p.returncode)
        new = [k for k in s.c.get_prefix_json(s.step_key("")) if k not in before]
        check(len(new) == 1, "run created %d steps", len(new))
        st = s.c.get_json(new[0])
        check(status_of(st)["status"] == "SUCCEEDED" and st["with"].get("MSG") == "hello world"
              and st.get("create_type") == "USER" and status_of(st)["scheduled_node"] == s.node,
              "the step wfctl run created: %s", json.dumps(st)[:500])

        p = ctl("run", "fail@v1", "--node", s.node)
        check(p.returncode != 0, "run of a failing action exited 0")
        p = ctl("run", "echo@v1", "--node", s.node)
        check(p.returncode != 0, "run with a missing required param exited 0")

        # logs -f follows a running step to its end
        s.put_step("tick1", "ticker@v1")
        s.wait_step("tick1", ("RUNNING", "SUCCEEDED"), timeout=20)
        p = ctl("logs", "tick1", "-f", timeout=30)
        check(p.returncode == 0 and p.stdout == "tick 1\ntick 2\ntick 3\n",
              "logs -f: exit %d, %r", p.returncode, p.stdout)

        # cancel
        s.put_step("sleep1", "sleeper@v1")
        s.wait_step("sleep1", "RUNNING", timeout=20)
        t0 = time.time()
        p = ctl("cancel", "sleep1")
        check(p.returncode == 0, "cancel: exit %d", p.returncode)
        st = s.wait_step("sleep1", ("CANCELED", "FAILED", "SUCCEEDED"), timeout=20)
        check(status_of(st)["status"] == "CANCELED", "after wfctl cancel: %s", status_of(st))
        log("canceled in %.1fs", time.time() - t0)

        p = ctl("logs", "no-such-step")
        check(p.returncode != 0, "logs of a missing step exited 0")
        p = ctl("bogus-command")
        check(p.returncode == 2, "an unknown command must exit 2, got %d", p.returncode)
        p = subprocess.run([WFCTL, "--help"], capture_output=True, text=True, timeout=10)
        check(p.returncode == 0 and "apply" in p.stdout + p.stderr, "wfctl --help")


run(main)
