#!/usr/bin/env python3
"""Runs a test program with a private etcd: WF_TEST_ETCD=<url> in its env."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from etcd import Etcd  # noqa: E402

with Etcd() as e:
    env = dict(os.environ, WF_TEST_ETCD=e.url, WF_TEST_ETCD_DIR=e.dir)
    rc = subprocess.call(sys.argv[1:], env=env)
sys.exit(rc)
