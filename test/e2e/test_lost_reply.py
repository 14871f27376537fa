#!/usr/bin/env python3
"""Lost replies: etcd applies a write but its answer never reaches the agent
(a proxy swallows etcd's replies, then drops the connections), as when etcd
stops or the network breaks at the wrong moment.
  1. the claim txn: etcd holds RUNNING from this agent, the agent never
     heard so; the step must still end (not stay RUNNING forever) and run
     at most once;
  2. the final status txn: etcd holds SUCCEEDED, the agent never heard so;
     the agent must settle (keep it) and free the slot: with
     --max-parallel 1 the next step still runs;
  3. and 4. the same, but each request is answered with the 503 "transport
     is closing" error etcd sends while it shuts down (seen in the etcd
     restart test: etcd applied the claim and still answered with it)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log, T  # noqa: E402
from proxy import TcpProxy  # noqa: E402


def wait_etcd_status(s, key, statuses, timeout):
    deadline = time.time() + T(timeout)
    while time.time() < deadline:
        st = s.get_step(key)
        if st and status_of(st).get("status") in statuses:
            return st
        time.sleep(0.02)
    return s.get_step(key)


def lose_replies_until(s, p, key, statuses, timeout=10, mode="drop_responses"):
    setattr(p, mode, True)
    try:
        st = wait_etcd_status(s, key, statuses, timeout)
    finally:
        time.sleep(0.2)
        p.cut()
        time.sleep(0.3)
        setattr(p, mode, False)
        p.restore()
    return st


def runs(marks, key):
    path = os.path.join(marks, key)
    return len(open(path).read().splitlines()) if os.path.exists(path) else 0


def main():
    with Scenario("lost_reply") as s:
        marks = os.path.join(s.tmp, "marks")
        os.makedirs(marks)
        s.put_action("mark", sh("echo run >> %s/$WORKFLOW_STEP_KEY" % marks))
        s.put_action("slow", sh("echo run >> %s/$WORKFLOW_STEP_KEY; sleep 1" % marks))
        p = TcpProxy("127.0.0.1", s.etcd.client_port).start()
        a = s.agent(etcd_url=p.url, args=["--max-parallel", "1"])
        s.put_step("warm", "mark@v1")
        check(status_of(s.wait_step("warm"))["status"] == "SUCCEEDED", "warm-up step")

        for n, mode in ((1, "drop_responses"), (2, "error_replies")):
            # the claim's reply is lost / an error
            ck, fk, nk = "claim%d" % n, "final%d" % n, "next%d" % n
            s.put_step(ck, "mark@v1")
            st = lose_replies_until(s, p, ck, ("RUNNING", "SUCCEEDED", "FAILED"), mode=mode)
            log("%s: %s in etcd while replies were lost (%s)", ck, status_of(st).get("status"),
                mode)
            st = s.wait_step(ck, timeout=30)
            log("%s ended %s %r after %d run(s)", ck, status_of(st)["status"],
                status_of(st).get("message"), runs(marks, ck))
            check(runs(marks, ck) <= 1, "%s ran %d times", ck, runs(marks, ck))

            # the final write's reply is lost / an error
            s.put_step(fk, "slow@v1")
            s.wait_step(fk, "RUNNING", timeout=20)
            st = lose_replies_until(s, p, fk, ("SUCCEEDED", "FAILED"), timeout=15, mode=mode)
            log("%s: %s in etcd while replies were lost (%s)", fk, status_of(st).get("status"),
                mode)
            s.put_step(nk, "mark@v1")
            st = s.wait_step(nk, timeout=30)
            check(status_of(st)["status"] == "SUCCEEDED", "the step after a lost final reply: %s",
                  status_of(st))
            st = s.wait_step(fk, timeout=5)
            check(status_of(st)["status"] == "SUCCEEDED" and runs(marks, fk) == 1,
                  "%s: %s after %d run(s)", fk, status_of(st), runs(marks, fk))
        a.assert_alive()
        p.close()


run(main)
