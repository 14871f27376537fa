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
     restart test: etcd applied the claim and still answered with it).
With WF_E2E_ETCD=https (e2e-h2-lost_reply) the proxy only sees TLS records:
it cannot tell a watch from a unary call (over HTTP/2 they share one
connection anyway), so every reply is lost, watch events included, until
the cut; and it cannot inject a 503 into TLS, so 3. and 4. are left out.
For 1. it lets etcd's next bytes through (the watch event of the new step)
and the agent's next request (its claim), then loses every reply."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log, T  # noqa: E402
from proxy import TcpProxy  # noqa: E402


class TlsProxy(TcpProxy):
    """The TcpProxy for TLS (and HTTP/2) between agent and etcd: only
    drop_responses, which loses every reply on every connection, and
    arm_claim(): pass etcd's next bytes and the agent's next request, then
    drop_responses.  Requests always reach etcd."""

    def __init__(self, host, port):
        super().__init__(host, port)
        self.arm = 0           # 1: waiting for etcd's bytes, 2: for the agent's request
        self.arm_lock = threading.Lock()

    def arm_claim(self):
        with self.arm_lock:
            self.arm = 1

    def disarm(self):
        with self.arm_lock:
            self.arm = 0
        self.drop_responses = False

    def _forward(self, src, dst, data, is_response):
        if is_response and self.drop_responses:
            return
        dst.sendall(data)
        with self.arm_lock:
            if is_response and self.arm == 1:
                self.arm = 2
            elif not is_response and self.arm == 2:
                self.arm = 0
                self.drop_responses = True


def wait_etcd_status(s, key, statuses, timeout):
    deadline = time.time() + T(timeout)
    while time.time() < deadline:
        st = s.get_step(key)
        if st and status_of(st).get("status") in statuses:
            return st
        time.sleep(0.02)
    return s.get_step(key)


def lose_replies_until(s, p, key, statuses, timeout=10, mode="drop_responses", armed=False):
    """armed: p (a TlsProxy) starts dropping by itself after arm_claim()."""
    if not armed:
        setattr(p, mode, True)
    try:
        st = wait_etcd_status(s, key, statuses, timeout)
    finally:
        time.sleep(0.2)
        p.cut()
        time.sleep(0.3)
        setattr(p, mode, False)
        if armed:
            p.disarm()
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
        p = s.etcd_proxy(TlsProxy if s.tls else None)
        a = s.agent(etcd_url=p.url, args=["--max-parallel", "1"])
        s.put_step("warm", "mark@v1")
        check(status_of(s.wait_step("warm"))["status"] == "SUCCEEDED", "warm-up step")

        modes = ((1, "drop_responses"), (2, "error_replies"))
        if s.tls:
            modes = modes[:1]
            log("TLS mode: the proxy loses every reply (it cannot see which stream is a "
                "watch) and cannot inject etcd's 503 into TLS: error_replies left out")
        for n, mode in modes:
            # the claim's reply is lost / an error
            ck, fk, nk = "claim%d" % n, "final%d" % n, "next%d" % n
            if s.tls:
                # Let the echo of the last write reach the agent first: the
                # proxy arms on etcd's next bytes, whatever they carry.
                time.sleep(0.3)
                p.arm_claim()   # the watch event through, then the claim's reply lost
            s.put_step(ck, "mark@v1")
            st = lose_replies_until(s, p, ck, ("RUNNING", "SUCCEEDED", "FAILED"), mode=mode,
                                    armed=s.tls)
            log("%s: %s in etcd while replies were lost (%s)", ck, status_of(st).get("status"),
                mode)
            if s.tls and status_of(st).get("status") == "PENDDING":
                log("note: the proxy armed on other traffic, so the watch event was lost "
                    "rather than the claim's reply")
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
