#!/usr/bin/env python3
"""Secret masking: values of params whose names match --mask-params, or that
the action marks `secret`, never reach the step log, the agent's log or
messages written to etcd, even when the step prints a value in two pieces
that reach the agent in two reads."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log  # noqa: E402

PW = "hunter2-hunter2"      # matched by the default *PASSWORD* glob
KEY = "k3y-val-0123456789"  # marked secret by the action
PLAIN = "visible-value"

# The password is printed in two halves with a pause between them, so the
# agent reads them separately; the key in one piece; stderr too.
SCRIPT = ("printf 'pw=%s' \"${DB_PASSWORD%%-*}\"; sleep 0.3; printf -- '-%s\\n' "
          "\"${DB_PASSWORD#*-}\"; echo \"key=$API_KEY\" >&2; echo \"plain=$PLAIN\"")


def main():
    with Scenario("secrets") as s:
        s.put_action("leaky", sh(SCRIPT),
                     run_params=[{"key_name": "API_KEY", "secret": True},
                                 {"key_name": "PLAIN"}])
        s.put_action("badtimeout", "true")
        agent = s.agent(args=["--mask-params", "*PASSWORD*,*SECRET*,*TOKEN*,WORKFLOW_TIMEOUT"])
        s.put_step("sec1", "leaky@v1",
                   with_={"DB_PASSWORD": PW, "API_KEY": KEY, "PLAIN": PLAIN})
        st = s.wait_step("sec1", timeout=30)
        check(status_of(st)["status"] == "SUCCEEDED", "status %s", status_of(st))
        with open(s.log_file("sec1"), "rb") as f:
            data = f.read().decode()
        log("step log: %r", data)
        check(PW not in data and "hunter2" not in data.replace("******", ""),
              "password leaked into the step log: %r", data)
        check(KEY not in data, "secret run param leaked into the step log: %r", data)
        check("pw=******" in data or "pw=hunter2******" not in data, "unexpected masking: %r", data)
        check("key=******" in data, "secret param not masked in place: %r", data)
        check("plain=" + PLAIN in data, "a plain param was masked: %r", data)

        # A message that would quote a secret value: WORKFLOW_TIMEOUT made secret
        # by --mask-params, with a value that is not a number.
        secret_timeout = "not-a-number-s3cr3t"
        s.put_step("sec2", "badtimeout@v1", with_={"WORKFLOW_TIMEOUT": secret_timeout})
        st2 = s.wait_step("sec2", timeout=30)
        msg = status_of(st2).get("message", "")
        check(status_of(st2)["status"] == "FAILED", "status %s", status_of(st2))
        check(secret_timeout not in msg and "******" in msg, "message not masked: %r", msg)
        agent.stop()
        text = agent.stderr_text()
        for v in (PW, KEY, secret_timeout):
            check(v not in text, "secret %r in the agent's log", v)


if __name__ == "__main__":
    run(main)
