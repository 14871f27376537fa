#!/usr/bin/env python3
"""Runs a test program with a private etcd that the test can restart: the
test sends SIGUSR1 to WF_TEST_ETCD_RESTART_PID and this script stops etcd
with SIGTERM (so the gateway ends open watches the way a real shutdown
does), keeps it down for a second, and starts it again on the same ports
and data dir.  Otherwise like test/harness/with_etcd.py."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from etcd import Etcd  # noqa: E402

requests = []
signal.signal(signal.SIGUSR1, lambda *_: requests.append(1))

with Etcd() as e:
    env = dict(os.environ, WF_TEST_ETCD=e.url, WF_TEST_ETCD_DIR=e.dir,
               WF_TEST_ETCD_RESTART_PID=str(os.getpid()))
    proc = subprocess.Popen(sys.argv[1:], env=env)
    while proc.poll() is None:
        if requests:
            requests.pop()
            e.restart(down_seconds=1.0)
        time.sleep(0.05)
    rc = proc.returncode
sys.exit(rc)
