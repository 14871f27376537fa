#!/usr/bin/env python3
"""DOCKER runner large output through the real binary, on a private dockerd
and etcd: a busybox container prints 1 GiB (`head -c 1073741824 /dev/zero`);
the step SUCCEEDS, its log file holds exactly that many zero bytes, and the
agent's VmRSS, sampled every 100 ms, stays under 32 MB throughout.  Under
WF_ASAN=1: 256 MiB and no RSS limit (the sanitizer's shadow memory)."""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, Skip, run, check, status_of, response_of, log, under_asan, T  # noqa: E402
import docker  # noqa: E402
from docker import Dockerd, docker_action  # noqa: E402

SIZE = (256 << 20) if under_asan() else (1 << 30)
RSS_LIMIT_KB = 32 * 1000  # 32 MB


def main():
    if not docker.available():
        raise Skip("dockerd or busybox-static not installed")
    if shutil.disk_usage("/tmp").free < 3 * SIZE:
        raise Skip("less than %d MiB free in /tmp" % (3 * SIZE >> 20))
    with Dockerd(registry=False) as d, Scenario("docker-large") as s:
        a = s.agent(args=["--docker-host", d.host])
        s.c.put(s.action_key("big"), docker_action("big", "head,-c,%d,/dev/zero" % SIZE,
                                                   image=d.image))
        rss0 = a.rss_kb()
        t0 = time.time()
        s.put_step("dl-big", "big@v1")
        peak = rss0
        samples = 0
        deadline = time.time() + T(240)
        st = None
        while time.time() < deadline:
            s._alive_check()
            rss = a.rss_kb()
            samples += 1
            peak = max(peak, rss)
            v = s.get_step("dl-big")
            if v and status_of(v).get("status") in ("SUCCEEDED", "FAILED", "CANCELED"):
                st = v
                break
            time.sleep(0.1)
        el = time.time() - t0
        check(st is not None, "dl-big did not finish within %.0fs", T(240))
        ss = status_of(st)
        log("dl-big: %s after %.1fs (%.0f MiB/s); agent VmRSS %d kB at start, peak %d kB over %d "
            "samples", ss["status"], el, SIZE / (1 << 20) / el, rss0, peak, samples)
        check(ss["status"] == "SUCCEEDED", "dl-big: %s %r", ss["status"], ss.get("message"))
        path = response_of(st)["log_path"]
        size = os.path.getsize(path)
        check(size == SIZE, "log file holds %d bytes, want %d", size, SIZE)
        zero = bytes(1 << 20)
        with open(path, "rb") as f:
            off = 0
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                check(b == zero[:len(b)], "non-zero byte in the log near offset %d", off)
                off += len(b)
        if under_asan():
            log("WF_ASAN=1: RSS limit not checked")
        else:
            check(peak < RSS_LIMIT_KB, "agent VmRSS peaked at %d kB, limit %d kB", peak,
                  RSS_LIMIT_KB)


run(main)
