#!/usr/bin/env python3
"""Large output: a step that prints 1 GiB leaves all of it in its log file,
and the agent's RSS (VmRSS, sampled every 100 ms) stays under 32 MB
meanwhile.  Under ASan (WF_ASAN=1) it prints 256 MiB and the RSS bound is
not asserted (the sanitizer's shadow memory and quarantine dominate)."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, response_of, log, Skip, under_asan  # noqa

SIZE = int(os.environ.get("WF_LARGE_BYTES") or (256 << 20 if under_asan() else 1 << 30))
LIMIT_KB = 32 * 1024
LINE = b"0123456789abcdef\n"


def main():
    with Scenario("large_output") as s:
        st = os.statvfs(s.tmp)
        if st.f_bavail * st.f_frsize < SIZE + (200 << 20):
            raise Skip("not enough free space in %s for %d bytes" % (s.tmp, SIZE))
        s.put_action("big", sh("yes 0123456789abcdef | head -c %d" % SIZE))
        a = s.agent()
        base = a.rss_kb()
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append(a.rss_kb())
                time.sleep(0.1)
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t0 = time.time()
        s.put_step("big1", "big@v1")
        try:
            res = s.wait_step("big1", timeout=240, poll=0.2)
        finally:
            stop.set()
            th.join()
        wall = time.time() - t0
        ss = status_of(res)
        check(ss["status"] == "SUCCEEDED", "status %s: %r", ss["status"], ss.get("message"))
        path = response_of(res)["log_path"]
        size = os.path.getsize(path)
        peak = max(samples) if samples else 0
        log("%d bytes in %.1fs (%.0f MB/s), file %d bytes; agent VmRSS before %.1f MB, peak "
            "%.1f MB over %d samples%s", SIZE, wall, SIZE / wall / 1e6, size, base / 1024.0,
            peak / 1024.0, len(samples), " (ASan: bound not asserted)" if under_asan() else "")
        check(size == SIZE, "log file holds %d bytes, want %d", size, SIZE)
        with open(path, "rb") as f:
            head = f.read(1 << 20)
            f.seek(SIZE - (1 << 20))
            tail = f.read()
        check(head == (LINE * ((1 << 20) // len(LINE) + 1))[:1 << 20], "start of the file differs")
        off = (SIZE - (1 << 20)) % len(LINE)
        check(tail == (LINE * ((1 << 20) // len(LINE) + 2))[off:off + (1 << 20)],
              "end of the file differs")
        os.unlink(path)
        if not under_asan():
            check(peak < LIMIT_KB, "agent VmRSS peaked at %.1f MB (limit 32 MB)", peak / 1024.0)


run(main)
