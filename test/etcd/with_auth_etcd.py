#!/usr/bin/env python3
"""Runs a test program with a private etcd that has authentication enabled.

etcd runs with --auth-token simple and a 2 s --auth-token-ttl, so a token
really expires while the test sleeps (a simple token expires after that
long without use).  The script adds user "root" with a random password,
grants it the root role and enables auth through the gateway, then runs the
program with:

    WF_TEST_ETCD=<url>  WF_TEST_ETCD_USER=root  WF_TEST_ETCD_PASSWORD=<pw>
    WF_TEST_ETCD_PID=<etcd pid>
"""
import os
import secrets
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from etcd import Etcd  # noqa: E402

TOKEN_TTL = "2"

with Etcd(auth_token_ttl=TOKEN_TTL) as e:
    password = "pw-" + secrets.token_hex(8)
    e.enable_auth("root", password)
    env = dict(os.environ, WF_TEST_ETCD=e.url, WF_TEST_ETCD_DIR=e.dir,
               WF_TEST_ETCD_USER="root", WF_TEST_ETCD_PASSWORD=password,
               WF_TEST_ETCD_TOKEN_TTL=TOKEN_TTL, WF_TEST_ETCD_PID=str(e.pid))
    try:
        rc = subprocess.call(sys.argv[1:], env=env)
    finally:
        e.resume()  # in case the test left it stopped
sys.exit(rc)
