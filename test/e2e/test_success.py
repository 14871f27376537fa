#!/usr/bin/env python3
"""Success: a USER step for a LOCAL action that prints to stdout and stderr
and exits 0 ends SUCCEEDED with start_at, end_at, response exit_code 0,
log_driver local_file, log_path, pid, and a log file that holds exactly the
printed bytes (output lands in the file while the step runs)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, now_ms, status_of, response_of, T, log  # noqa: E402

# printf with octal escapes: the bytes include UTF-8, a tab, a CR and no final newline.
SCRIPT = ("printf 'out one\\n'; sleep 0.2; printf 'err one\\n' >&2; sleep 0.2; "
          "printf 'gr\\303\\274\\303\\237e\\ttab\\r\\n'; sleep 0.2; "
          "printf 'err two\\n' >&2; sleep 0.2; printf 'hello from %s' \"$WORKFLOW_STEP_KEY\"; "
          "sleep 1.5; printf ' [node=%s]' \"$WORKFLOW_NODE_NAME\"")
EXPECTED = ("out one\nerr one\ngr\u00fc\u00dfe\ttab\r\nerr two\nhello from %s"
            " [node=%s]")


def main():
    with Scenario("success") as s:
        s.put_action("hello", sh(SCRIPT))
        agent = s.agent()
        key = "succ1"
        t0 = now_ms()
        s.put_step(key, "hello@v1")
        running = s.wait_step(key, ("RUNNING", "SUCCEEDED", "FAILED"), timeout=20)
        check(status_of(running)["status"] == "RUNNING",
              "step skipped RUNNING (or finished too early): %s", status_of(running))
        check(status_of(running).get("start_at", 0) >= t0 - 1000,
              "RUNNING without start_at: %s", status_of(running))
        # output must reach the file while the step still runs
        seen_live = False
        deadline = time.time() + T(10)
        while time.time() < deadline:
            path = s.log_file(key)
            if path and os.path.exists(path):
                with open(path, "rb") as f:
                    if b"hello from" in f.read():
                        seen_live = s.get_step(key)["status"]["status"] == "RUNNING"
                        break
            time.sleep(0.05)
        check(seen_live, "the log file did not hold the output while the step was RUNNING")

        st = s.wait_step(key, timeout=30)
        t1 = now_ms()
        ss = status_of(st)
        log("final status: %s", ss)
        check(ss["status"] == "SUCCEEDED", "status %s, message %r", ss["status"], ss.get("message"))
        check(t0 - 1000 <= ss.get("start_at", 0) <= ss.get("end_at", 0) <= t1 + 1000,
              "start_at/end_at wrong: start %s end %s (test window %d..%d)",
              ss.get("start_at"), ss.get("end_at"), t0, t1)
        check(ss.get("end_at", 0) - ss.get("start_at", 0) >= 2000,
              "end_at - start_at = %d ms, the step takes > 2 s",
              ss.get("end_at", 0) - ss.get("start_at", 0))
        check(not ss.get("message"), "message on success: %r", ss.get("message"))
        check(ss.get("scheduled_node") == s.node, "scheduled_node changed: %r",
              ss.get("scheduled_node"))
        r = response_of(st)
        check(str(r.get("exit_code")) == "0", "response exit_code %r", r.get("exit_code"))
        check(r.get("log_driver") == "local_file", "response log_driver %r", r.get("log_driver"))
        lp = r.get("log_path", "")
        t = time.localtime(ss["start_at"] / 1000)
        want_suffix = "/%d/%d/%d/%s" % (t.tm_year, t.tm_mon, t.tm_mday, key)
        check(lp.startswith(s.log_dir + "/") and lp.endswith(want_suffix),
              "log_path %r is not <log dir>/<Y>/<M>/<D>/<key> = %s%s", lp, s.log_dir, want_suffix)
        check(str(r.get("pid", "")).isdigit(), "response pid %r", r.get("pid"))
        check(st.get("update_at", 0) >= ss["end_at"] - 1000, "update_at %r not refreshed",
              st.get("update_at"))
        with open(lp, "rb") as f:
            data = f.read()
        want = (EXPECTED % (key, s.node)).encode()
        check(data == want, "log file bytes differ:\n got  %r\n want %r", data, want)
        # all of the step's log lines name it
        lines = [l for l in agent.stderr_text().splitlines() if "succ1" in l]
        check(lines, "the agent's log never names the step key")


run(main)
