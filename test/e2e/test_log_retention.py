#!/usr/bin/env python3
"""Log retention (--log-retention, --log-max-bytes; docs/operations.md),
through the real binary and a real etcd.

The log dir is laid out before the agent starts: a log 30 days old in a
2020 day directory, three finished logs of 100 KiB written 3, 2 and 1
hours ago in today's directory, and things retention must not touch (a
file at the top, a non-numeric directory, a file at the month level).
The agent starts with --config and no limits; a LOCAL step prints 200 KiB
and keeps running.  Then, through SIGHUP reloads of the config file:

1. log-retention 7d, log-max-bytes 320K: the old log goes (age), with its
   empty day, month and year directories; of the three finished logs the
   oldest two go (size, oldest first) and the newest stays; the running
   step's log stays; the foreign entries stay;
2. log-max-bytes 150K: the last finished log goes; the running step's log
   (200 KiB, over the limit on its own) stays, and the agent says that it
   kept more than the limit;
3. the step ends; its log is whole; /metrics counts the passes, the files
   and bytes removed, and what the last pass kept.
A bad value in the file is refused on reload and nothing is removed."""
import os
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, log, T, TestFailure  # noqa: E402
from etcd import free_port  # noqa: E402

KIB = 1024


def write(path, size, age_s):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"l" * size)
    t = time.time() - age_s
    os.utime(path, (t, t))


def metric(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise TestFailure("no %s in /metrics" % name)


def wait_metric(port, name, want, timeout):
    deadline = time.time() + timeout
    v = None
    while time.time() < deadline:
        v = metric(port, name)
        if v >= want:
            return v
        time.sleep(0.1)
    raise TestFailure("%s stayed %r (want >= %r)" % (name, v, want))


def main():
    with Scenario("log-retention") as s:
        lt = time.localtime()
        today = os.path.join(s.log_dir, str(lt.tm_year), str(lt.tm_mon), str(lt.tm_mday))
        ancient = os.path.join(s.log_dir, "2020", "1", "5", "ancient")
        write(ancient, 10 * KIB, 30 * 86400)
        done = {k: os.path.join(today, k) for k in ("done-a", "done-b", "done-c")}
        for i, k in enumerate(("done-a", "done-b", "done-c")):
            write(done[k], 100 * KIB, (3 - i) * 3600)
        foreign = [os.path.join(s.log_dir, "README"),
                   os.path.join(s.log_dir, "archive", "2019", "old"),
                   os.path.join(s.log_dir, "2020", "notes.txt")]
        for p in foreign:
            write(p, 10, 40 * 86400)

        cfg = os.path.join(s.tmp, "node.yaml")
        with open(cfg, "w") as f:
            f.write("log-level: info\n")
        s.put_action("writer", sh("head -c 204800 /dev/zero | tr '\\0' w; sleep 600"))
        port = free_port()
        agent = s.agent(args=["--config", cfg, "--listen", "127.0.0.1:%d" % port])
        s.put_step("live", "writer@v1")
        s.wait_step("live", statuses=("RUNNING",), timeout=T(20))
        deadline = time.time() + T(20)
        live = None
        while time.time() < deadline and (not live or os.path.getsize(live) < 200 * KIB):
            live = s.log_file("live")
            time.sleep(0.05)
        check(os.path.getsize(live) == 200 * KIB, "the running step wrote %d bytes",
              os.path.getsize(live))
        check(metric(port, "workflow_log_retention_passes_total") == 0, "a pass without limits")

        # A bad value is refused on reload: nothing happens.
        with open(cfg, "w") as f:
            f.write("log-retention: 7 days\n")
        agent.signal(signal.SIGHUP)
        deadline = time.time() + T(10)
        while time.time() < deadline and not agent.stderr_lines_with("log-retention"):
            time.sleep(0.05)
        check(agent.stderr_lines_with("log-retention"), "the bad value was not reported")
        time.sleep(0.5)
        check(os.path.exists(ancient), "a refused reload removed a log")

        # 1. age and size
        with open(cfg, "w") as f:
            f.write("log-retention: 7d\nlog-max-bytes: 320K\n")
        agent.signal(signal.SIGHUP)
        wait_metric(port, "workflow_log_retention_passes_total", 1, T(20))
        check(not os.path.exists(ancient), "the 30-day-old log is still there")
        check(not os.path.exists(os.path.join(s.log_dir, "2020", "1")),
              "the empty 2020/1 directories are still there")
        check(os.path.exists(os.path.join(s.log_dir, "2020", "notes.txt")),
              "a file at the month level was removed")
        for p in foreign:
            check(os.path.exists(p), "%s (not a log) was removed", p)
        check(not os.path.exists(done["done-a"]) and not os.path.exists(done["done-b"]),
              "the two oldest finished logs are still there")
        check(os.path.exists(done["done-c"]), "the newest finished log was removed")
        check(os.path.exists(live), "the running step's log was removed")
        check(metric(port, "workflow_log_retention_removed_files_total") == 3,
              "removed files %r", metric(port, "workflow_log_retention_removed_files_total"))
        check(metric(port, "workflow_log_retention_removed_bytes_total") == 210 * KIB,
              "removed bytes %r", metric(port, "workflow_log_retention_removed_bytes_total"))
        log("pass 1: by age the 2020 log and its directories, by size the two oldest")

        # 2. a limit below the running step's log alone
        with open(cfg, "w") as f:
            f.write("log-retention: 7d\nlog-max-bytes: 150K\n")
        agent.signal(signal.SIGHUP)
        wait_metric(port, "workflow_log_retention_passes_total", 2, T(20))
        check(not os.path.exists(done["done-c"]), "the last finished log is still there")
        check(os.path.exists(live) and os.path.getsize(live) == 200 * KIB,
              "the running step's log was touched")
        check(metric(port, "workflow_log_retention_kept_bytes") == 200 * KIB,
              "kept bytes %r", metric(port, "workflow_log_retention_kept_bytes"))
        check(agent.stderr_lines_with("over --log-max-bytes"), "no warning about the limit")
        log("pass 2: the running step's log kept over the limit, with a warning")

        # 3. the step ends whole
        s.c.update_json(s.step_key("live"), lambda o: o["status"].update(status="CANCELING"))
        d = s.wait_step("live", timeout=T(30))
        check(d["status"]["status"] == "CANCELED", "live: %s", d["status"])
        with open(live, "rb") as f:
            check(f.read(204800) == b"w" * 204800, "the running step's log lost bytes")


run(main)
