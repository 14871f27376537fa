#!/usr/bin/env python3
"""Bad input under the steps prefix, written both before the agent starts
(seen by the list) and while it runs (seen by the watch):
  - a value that is not JSON;
  - JSON of the wrong shape ("with": 5) assigned to the node;
  - a 1 MB value;
  - an unknown enum name ("status": "BOGUS", "create_type": "BOGUS");
  - keys with ".." or "/" segments, an empty key, a control character.
Each is logged (not over and over), the step is left alone or ends FAILED with
a message (wrong shape and bad keys: FAILED, since they are PENDDING and this
node's), nothing escapes the log dir, the agent keeps running and other steps
still run."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log, T  # noqa: E402

PAD = 1024 * 1024
# a key with a newline must not forge a line in the agent's log
FORGED = "1999-01-01T00:00:00.000Z info  step=forged SUCCEEDED "


def bad_set(s, sfx, marks):
    """Writes one set of bad inputs; returns {key: (kind, mod_revision)}."""
    out = {}

    def put_raw(key, raw, kind):
        s.c.put(s.step_key(key), raw)
        out[key] = (kind, s.c.get(s.step_key(key))["mod_revision"])

    put_raw("notjson" + sfx, b'this is {not json "' + s.node.encode() + b'"', "alone")
    o = s.step_obj("shape" + sfx, "mark@v1")
    o["with"] = 5
    put_raw("shape" + sfx, json.dumps(o), "failed")
    o = s.step_obj("big" + sfx, "mark@v1")
    o["x_pad"] = "p" * PAD
    put_raw("big" + sfx, json.dumps(o), "big")
    o = s.step_obj("enum" + sfx, "mark@v1", status="BOGUS")
    put_raw("enum" + sfx, json.dumps(o), "alone_or_failed")
    o = s.step_obj("enumct" + sfx, "mark@v1", create_type="BOGUS")
    put_raw("enumct" + sfx, json.dumps(o), "alone_or_failed")
    bad_keys = ["a/../b" + sfx, "x/y" + sfx, "../esc" + sfx, "ctl\x01" + sfx,
                "nl\n" + FORGED + sfx]
    if sfx == "A":
        bad_keys += ["..", ""]
    for k in bad_keys:
        put_raw(k, json.dumps(s.step_obj(k, "mark@v1")), "failed")
    return out


def main():
    with Scenario("bad_input") as s:
        marks = os.path.join(s.tmp, "marks")
        os.makedirs(marks)
        s.put_action("mark", sh("echo run >> %s/runs; echo $WORKFLOW_STEP_KEY >> %s/runs"
                                % (marks, marks)))
        s.put_action("ok", sh("echo fine"))
        bad = bad_set(s, "A", marks)
        s.put_step("goodA", "ok@v1")
        a = s.agent()
        check(status_of(s.wait_step("goodA"))["status"] == "SUCCEEDED", "goodA")
        bad.update(bad_set(s, "B", marks))
        s.put_step("goodB", "ok@v1")
        check(status_of(s.wait_step("goodB"))["status"] == "SUCCEEDED", "goodB")
        for k, (kind, _) in bad.items():
            if kind == "failed":
                st = s.wait_step(k, ("FAILED", "SUCCEEDED", "CANCELED"), timeout=20)
                ss = status_of(st)
                log("%r: %s %r", k, ss["status"], ss.get("message"))
                check(ss["status"] == "FAILED" and ss.get("message"),
                      "%r must end FAILED with a message: %s", k, ss)
        time.sleep(T(2))
        a.assert_alive("after the bad input")
        for k, (kind, rev) in bad.items():
            kv = s.c.get(s.step_key(k))
            check(kv is not None, "%r was deleted", k)
            if kind in ("alone", "alone_or_failed", "big"):
                if kv["mod_revision"] == rev:
                    log("%r: left alone", k)
                    continue
                check(kind != "alone", "%r (not JSON) was rewritten: %r", k, kv["value"][:200])
                st = json.loads(kv["value"])
                ss = status_of(st)
                log("%r: %s %r", k, ss.get("status"), ss.get("message"))
                if kind == "big":
                    check(ss.get("status") in ("SUCCEEDED", "FAILED"),
                          "the 1 MB step is stuck in %s", ss.get("status"))
                    check(len(st.get("x_pad", "")) == PAD, "the 1 MB step lost its unknown key")
                else:
                    check(ss.get("status") == "FAILED" and ss.get("message"),
                          "%r: an unknown enum must leave the step alone or FAIL it with a "
                          "message: %s", k, ss)
        # nothing ran for the bad keys, and nothing escaped the log dir
        with open(os.path.join(marks, "runs")) if os.path.exists(os.path.join(marks, "runs")) \
                else open(os.devnull) as f:
            ran = f.read().split("\n")[1::2]
        for k, (kind, _) in bad.items():
            if kind == "failed":
                check(k not in ran, "bad step %r ran", k)
        allowed = {"goodA", "goodB", "bigA", "bigB", "enumA", "enumB", "enumctA", "enumctB"}
        for root, dirs, files in os.walk(s.log_dir):
            for f in files:
                check(f in allowed, "unexpected file in the log dir: %s",
                      os.path.join(root, f))
        for f in os.listdir(s.tmp):
            check(f in ("runner_log", "runner_output", "marks", "etcd") or f.startswith("agent-"),
                  "unexpected file next to the log dir: %s", f)
        # every step ended, so every step's output directory is gone
        outroot = os.path.join(s.tmp, "runner_output")
        left = os.listdir(outroot) if os.path.isdir(outroot) else []
        check(not left, "output directories left behind: %s", left)
        # logged, but not over and over, and control characters do not reach
        # the log raw
        text = a.stderr_text()
        forged = [l for l in text.splitlines() if l.startswith(FORGED[:20])]
        check(not forged, "a step key with a newline forged a log line: %r", forged[:1])
        raw = [l for l in text.splitlines() if "\x01" in l]
        check(not raw, "a control character from a step key reached the log raw: %r", raw[:1])
        for k, (kind, _) in bad.items():
            if not k or "\x01" in k or "\n" in k or k == "..":
                continue
            n = sum(1 for line in text.splitlines() if k in line)
            log("%r: %d log lines", k, n)
            check(n >= 1, "%r was never logged", k)
            check(n <= 4, "%r logged %d times", k, n)
        s.put_step("goodC", "ok@v1")
        check(status_of(s.wait_step("goodC"))["status"] == "SUCCEEDED", "goodC")


run(main)
