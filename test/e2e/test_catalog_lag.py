#!/usr/bin/env python3
"""Catalog lag: the agent's watch on the actions prefix runs behind its watch
on the steps (a proxy holds back each message of the actions watch by 1 s).
An action written before its step (a lower revision) must still be found:
the step SUCCEEDS instead of ending FAILED "action not found".  A truly
missing action still ends FAILED naming it.  (Seen without the proxy too,
under load: steps right after the agent started ended "not found".)"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, status_of, log  # noqa: E402
from etcdclient import b64  # noqa: E402
from proxy import TcpProxy  # noqa: E402


def main():
    with Scenario("catalog_lag") as s:
        p = TcpProxy("127.0.0.1", s.etcd.client_port).start()
        p.delay_watch(b64(s.prefix + "/workflow/actions/").encode(), 1.0)
        s.agent(etcd_url=p.url)
        keys = []
        for i in range(5):
            s.put_action("late%d" % i, "true")
            s.put_step("late%d" % i, "late%d@v1" % i)
            keys.append("late%d" % i)
        s.put_step("missing", "missing@v1")
        got = s.wait_steps(keys + ["missing"], timeout=30)
        for k in keys:
            ss = status_of(got[k])
            log("%s: %s %r", k, ss["status"], ss.get("message"))
        bad = {k: status_of(got[k]).get("message") for k in keys
               if status_of(got[k])["status"] != "SUCCEEDED"}
        check(not bad, "%d of %d steps whose action was written before them failed: %s",
              len(bad), len(keys), bad)
        ss = status_of(got["missing"])
        check(ss["status"] == "FAILED" and "missing@v1" in ss.get("message", ""),
              "a missing action: %s", ss)
        p.close()


run(main)
