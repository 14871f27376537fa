#!/usr/bin/env python3
"""Load: 1,000 steps of `true` written at once (100 per txn) all end
SUCCEEDED with --max-parallel 8, and never more than 8 run at one moment:
each step's command registers itself in a shared directory and records how
many are registered.  Prints the wall time, the peak concurrency and the
agent's peak RSS."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log  # noqa: E402

N = int(os.environ.get("WF_LOAD_STEPS", "1000"))
PAR = 8


def main():
    with Scenario("load") as s:
        d = os.path.join(s.tmp, "running")
        counts = os.path.join(s.tmp, "counts")
        os.makedirs(d)
        s.put_action("true", "true")
        s.put_action("conc", sh("touch %s/$WORKFLOW_STEP_KEY; ls %s | wc -l >> %s; sleep 0.05; "
                                "rm %s/$WORKFLOW_STEP_KEY" % (d, d, counts, d)))
        a = s.agent(args=["--max-parallel", str(PAR)])
        rss = [a.rss_kb()]
        running_seen = [0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                rss.append(a.rss_kb())
                time.sleep(0.1)
        th = threading.Thread(target=sample, daemon=True)
        th.start()

        # 1. N steps of plain `true`
        steps = {s.step_key("t%04d" % i): s.step_obj("t%04d" % i, "true@v1") for i in range(N)}
        t0 = time.time()
        s.c.put_many(steps, per_txn=100)
        t_written = time.time() - t0
        keys = ["t%04d" % i for i in range(N)]
        deadline = time.time() + 300
        while True:
            vals = s.c.get_prefix_json(s.step_key("t"))
            sts = [status_of(v).get("status") for v in vals.values()]
            running_seen[0] = max(running_seen[0], sts.count("RUNNING"))
            if all(x in ("SUCCEEDED", "FAILED", "CANCELED") for x in sts) and len(sts) == N:
                break
            check(time.time() < deadline, "%d steps not done after 300s",
                  sum(1 for x in sts if x not in ("SUCCEEDED", "FAILED")))
            a.assert_alive()
            time.sleep(0.2)
        wall = time.time() - t0
        bad = [k for k in keys if status_of(vals[s.step_key(k)]).get("status") != "SUCCEEDED"]
        check(not bad, "%d steps did not succeed, e.g. %s: %s", len(bad), bad[:1],
              bad and status_of(vals[s.step_key(bad[0])]))
        ends = [status_of(v)["end_at"] for v in vals.values()]
        starts = [status_of(v)["start_at"] for v in vals.values()]
        log("%d x `true`, --max-parallel %d: written in %.2fs, all SUCCEEDED after %.1fs wall "
            "(%.0f steps/s; first start to last end %.1fs); peak RUNNING in etcd %d",
            N, PAR, t_written, wall, N / wall, (max(ends) - min(starts)) / 1000.0,
            running_seen[0])

        # 2. concurrency measured by the processes themselves
        ckeys = ["c%04d" % i for i in range(200)]
        t1 = time.time()
        s.c.put_many({s.step_key(k): s.step_obj(k, "conc@v1") for k in ckeys}, per_txn=100)
        got = s.wait_steps(ckeys, timeout=180)
        wall2 = time.time() - t1
        stop.set()
        th.join()
        for k in ckeys:
            check(status_of(got[k])["status"] == "SUCCEEDED", "%s: %s", k, status_of(got[k]))
        with open(counts) as f:
            nums = [int(x) for x in f.read().split()]
        check(len(nums) == len(ckeys), "%d runs recorded for %d steps", len(nums), len(ckeys))
        log("200 concurrency probes in %.1fs: peak %d running at once (limit %d); "
            "agent peak RSS %.1f MB", wall2, max(nums), PAR, max(rss) / 1024.0)
        check(max(nums) <= PAR, "%d steps ran at once with --max-parallel %d", max(nums), PAR)
        check(max(nums) >= 2, "no parallelism at all (peak %d)", max(nums))


run(main)
