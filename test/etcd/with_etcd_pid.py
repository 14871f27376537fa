#!/usr/bin/env python3
"""Runs a test program with a private etcd whose PID it may signal:
WF_TEST_ETCD=<url> and WF_TEST_ETCD_PID=<pid> in its env (test-stall
freezes etcd with SIGSTOP).  etcd sends watch progress notifications every
second (WF_TEST_ETCD_PROGRESS_MS=1000), not every 10 minutes.  etcd is sent
SIGCONT before it is stopped, so a test that died while etcd was frozen
still ends cleanly."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from etcd import Etcd  # noqa: E402

with Etcd(extra_args=["--experimental-watch-progress-notify-interval", "1s"]) as e:
    env = dict(os.environ, WF_TEST_ETCD=e.url, WF_TEST_ETCD_DIR=e.dir,
               WF_TEST_ETCD_PID=str(e.pid), WF_TEST_ETCD_PROGRESS_MS="1000")
    try:
        rc = subprocess.call(sys.argv[1:], env=env)
    finally:
        e.resume()
sys.exit(rc)
