#!/usr/bin/env python3
"""Failure: a step that exits 3 ends FAILED, its message names exit code 3,
response exit_code is 3, and its output is still in the log file.  A command
that cannot be started (no such binary) ends FAILED with a message too.
The agent runs with --log-format json: every stderr line is a JSON object
with ts, level and msg, and the lines about a step carry its key."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, response_of, log  # noqa: E402


def main():
    with Scenario("failure") as s:
        s.put_action("fail3", sh("echo about to fail; echo oops >&2; exit 3"))
        s.put_action("nobin", "/nonexistent/binary-wf,arg")
        a = s.agent(args=["--log-format", "json", "--log-level", "debug"])
        s.put_step("f1", "fail3@v1")
        s.put_step("f2", "nobin@v1")
        st = s.wait_step("f1")
        ss = status_of(st)
        log("f1 status: %s", ss)
        check(ss["status"] == "FAILED", "status %s", ss["status"])
        check("exit code 3" in ss.get("message", ""), "message %r does not say 'exit code 3'",
              ss.get("message"))
        check(str(response_of(st).get("exit_code")) == "3", "response exit_code %r",
              response_of(st).get("exit_code"))
        check(ss.get("end_at", 0) >= ss.get("start_at", 1) > 0, "start_at/end_at: %s", ss)
        lp = response_of(st).get("log_path")
        check(lp and open(lp, "rb").read() == b"about to fail\noops\n",
              "log file %r content wrong", lp)
        st2 = s.wait_step("f2")
        ss2 = status_of(st2)
        log("f2 status: %s", ss2)
        check(ss2["status"] == "FAILED" and ss2.get("message"),
              "a command that cannot start must end FAILED with a message: %s", ss2)
        steps_seen = set()
        for line in a.stderr_text().splitlines():
            if line.startswith("===="):
                continue
            try:
                o = json.loads(line)
            except ValueError:
                check(False, "--log-format json: a line that is not JSON: %r", line[:200])
            check(isinstance(o, dict) and {"ts", "level", "msg"} <= set(o),
                  "--log-format json: line without ts/level/msg: %r", line[:200])
            check(o["level"] in ("debug", "info", "warn", "error"), "level %r", o["level"])
            if "step" in o:
                steps_seen.add(o["step"])
        check({"f1", "f2"} <= steps_seen, "JSON log lines name steps %s, want f1 and f2",
              sorted(steps_seen))


run(main)
