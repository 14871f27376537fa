#!/usr/bin/env python3
"""Step misbehaviour, on the local runner:
* a step that closes its stdout early and exits 0 later ends SUCCEEDED;
* a step that leaves a daemon behind holding the output pipe open ends
  promptly (well before the daemon would), and the daemon is gone afterwards:
  the runner kills the step's process group when its main process exits;
* a step that prints 100 MB without a single newline ends SUCCEEDED with a
  log of exactly that size, and the agent's RSS stays under 32 MB meanwhile
  (not asserted under ASan, whose shadow memory dominates)."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, response_of, log, T, Skip, under_asan  # noqa

BIG = 100 << 20
RSS_LIMIT_KB = 32 * 1024


def pid_gone(pid):
    """True once pid no longer runs (a zombie waiting for its reaper counts
    as gone: it holds no pipe and runs nothing)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True
    return False


def main():
    with Scenario("fault_step_misbehaviour") as s:
        st = os.statvfs(s.tmp)
        if st.f_bavail * st.f_frsize < BIG + (100 << 20):
            raise Skip("not enough free space in %s for a %d-byte log" % (s.tmp, BIG))
        pidfile = os.path.join(s.tmp, "daemon.pid")
        s.pid_files.append(pidfile)  # killed at the end whatever happens
        s.put_action("closer", sh("echo before; exec >&-; sleep 1; exit 0"))
        s.put_action("forker", sh("sleep 300 & echo $! > %s; echo started" % pidfile))
        s.put_action("nonl", sh("head -c %d /dev/zero" % BIG))
        a = s.agent()

        # 1. stdout closed early
        s.put_step("closer1", "closer@v1")
        res = s.wait_step("closer1", timeout=30)
        ss = status_of(res)
        check(ss["status"] == "SUCCEEDED", "closer: %s (%r)", ss["status"], ss.get("message"))
        with open(response_of(res)["log_path"], "rb") as f:
            data = f.read()
        check(data == b"before\n", "closer's log: %r", data)
        check(ss["end_at"] - ss["start_at"] >= 900, "closer ended after %d ms, it sleeps 1 s",
              ss["end_at"] - ss["start_at"])

        # 2. a daemon keeps the pipe open
        t0 = time.time()
        s.put_step("forker1", "forker@v1")
        res = s.wait_step("forker1", timeout=30)
        took = time.time() - t0
        ss = status_of(res)
        check(ss["status"] == "SUCCEEDED", "forker: %s (%r)", ss["status"], ss.get("message"))
        log("forker ended %s after %.1fs (step time %d ms)", ss["status"], took,
            ss["end_at"] - ss["start_at"])
        check(ss["end_at"] - ss["start_at"] < 10000, "forker took %d ms: the daemon's pipe held "
              "it", ss["end_at"] - ss["start_at"])
        with open(pidfile) as f:
            dpid = int(f.read().strip())
        with open(response_of(res)["log_path"], "rb") as f:
            data = f.read()
        check(data == b"started\n", "forker's log: %r", data)
        deadline = time.time() + T(5)
        while not pid_gone(dpid) and time.time() < deadline:
            time.sleep(0.05)
        check(pid_gone(dpid), "the daemon (pid %d) survived its step", dpid)
        log("daemon pid %d is gone", dpid)

        # 3. 100 MB without a newline
        base = a.rss_kb()
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append(a.rss_kb())
                time.sleep(0.05)
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t0 = time.time()
        s.put_step("nonl1", "nonl@v1")
        try:
            res = s.wait_step("nonl1", timeout=120, poll=0.2)
        finally:
            stop.set()
            th.join()
        ss = status_of(res)
        check(ss["status"] == "SUCCEEDED", "nonl: %s (%r)", ss["status"], ss.get("message"))
        path = response_of(res)["log_path"]
        size = os.path.getsize(path)
        peak = max(samples) if samples else 0
        log("100 MB without newline in %.1fs: log %d bytes; agent VmRSS before %.1f MB, peak "
            "%.1f MB over %d samples%s", time.time() - t0, size, base / 1024.0, peak / 1024.0,
            len(samples), " (ASan: bound not asserted)" if under_asan() else "")
        check(size == BIG, "log file holds %d bytes, want %d", size, BIG)
        with open(path, "rb") as f:
            f.seek(BIG - (1 << 20))
            check(f.read() == b"\0" * (1 << 20), "the end of the log is not the step's zeros")
        if not under_asan():
            check(peak < RSS_LIMIT_KB, "agent VmRSS peaked at %.1f MB (limit %d MB)",
                  peak / 1024.0, RSS_LIMIT_KB // 1024)
        a.assert_alive()


run(main)
