#!/usr/bin/env python3
"""Registration and shutdown: the node key lives under a lease that is
renewed, and re-granted and re-put when it is lost (revoked by someone
else).  On SIGTERM the agent takes no new step, lets running ones finish
for --drain-timeout, then stops the rest (CANCELED), deletes its key, revokes
its lease and exits 0.  SIGINT does the same."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log, T  # noqa: E402

DRAIN = 3
GRACE = 1
TTL = 3


def main():
    with Scenario("drain") as s:
        s.put_action("short", sh("sleep 1; echo short done"))
        s.put_action("long", sh("exec sleep 60"))
        s.put_action("quick", "true")
        a = s.agent(args=["--drain-timeout", str(DRAIN), "--stop-grace", str(GRACE),
                          "--ttl", str(TTL)])
        nk = s.node_key()
        kv = s.c.get(nk)
        rec = s.c.get_json(nk)
        log("node record: %s (lease %d)", rec, kv["lease"])
        check(kv["lease"] != 0, "the node key is not attached to a lease")
        check(rec.get("instance_name") == s.node and rec.get("service_name") == "workflow"
              and rec.get("type") == "node", "node record fields: %s", rec)

        # renewed: still there after more than one TTL
        time.sleep(TTL + 1.5)
        kv2 = s.c.get(nk)
        check(kv2 is not None and kv2["lease"] == kv["lease"], "node key after %ds: %s",
              TTL + 1.5, kv2)
        # lost lease: re-granted and re-put
        s.c.lease_revoke(kv["lease"])
        t0 = time.time()
        deadline = t0 + T(TTL + 5)
        kv3 = None
        while time.time() < deadline:
            kv3 = s.c.get(nk)
            if kv3 is not None and kv3["lease"] != kv["lease"]:
                break
            time.sleep(0.1)
        check(kv3 is not None and kv3["lease"] != kv["lease"],
              "the node key was not re-registered after its lease was revoked: %s", kv3)
        log("re-registered %.1fs after the lease was revoked (lease %d)", time.time() - t0,
            kv3["lease"])

        # drain
        s.put_step("short1", "short@v1")
        s.put_step("long1", "long@v1")
        s.wait_step("short1", "RUNNING", timeout=20)
        s.wait_step("long1", "RUNNING", timeout=20)
        t0 = time.time()
        a.signal(signal.SIGTERM)
        time.sleep(0.3)
        s.put_step("late1", "quick@v1")
        late_rev = s.c.get(s.step_key("late1"))["mod_revision"]
        rc = a.proc.wait(T(DRAIN + GRACE + 10))
        el = time.time() - t0
        log("agent exited %d after %.1fs (drain %ds, grace %ds)", rc, el, DRAIN, GRACE)
        a.check_sanitizers()
        check(rc == 0, "exit status %d after SIGTERM", rc)
        check(el >= DRAIN - 0.5, "exited after %.1fs, before the drain timeout of %ds", el, DRAIN)
        check(el <= DRAIN + GRACE + 3, "exited after %.1fs (drain %ds + grace %ds)", el, DRAIN,
              GRACE)
        st = s.get_step("short1")
        check(status_of(st)["status"] == "SUCCEEDED", "short1 (finishes within the drain): %s",
              status_of(st))
        st = s.get_step("long1")
        log("long1 after the drain: %s %r", status_of(st)["status"], status_of(st).get("message"))
        check(status_of(st)["status"] in ("CANCELED", "FAILED") and status_of(st).get("end_at"),
              "long1 (outlives the drain) must be stopped and ended: %s", status_of(st))
        kv = s.c.get(s.step_key("late1"))
        check(kv["mod_revision"] == late_rev, "a step written during the drain was touched: %s",
              kv["value"][:300])
        check(s.c.get(nk) is None, "node key still there after exit")
        check(s.c.lease_ttl(kv3["lease"]) == -1, "lease %d not revoked", kv3["lease"])

        # SIGINT: the same clean exit
        b = s.agent()
        b.signal(signal.SIGINT)
        rc = b.proc.wait(T(15))
        b.check_sanitizers()
        check(rc == 0 and s.c.get(nk) is None, "SIGINT: exit %d, node key %s", rc, s.c.get(nk))


run(main)
