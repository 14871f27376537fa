#!/usr/bin/env python3
"""Runs a test program with a private etcd that also serves https with
client certificates (test/harness/certs.py makes them): WF_TEST_ETCD=<http
url>, WF_TEST_ETCD_TLS=<https url>, WF_TEST_ETCD_CA, WF_TEST_ETCD_CERT,
WF_TEST_ETCD_KEY (PEM paths) and WF_TEST_ETCD_PID in its env.  etcd is sent
SIGCONT before it is stopped, so a test that died while etcd was frozen
still ends cleanly."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Skip  # noqa: E402
from certs import make_certs  # noqa: E402
from etcd import Etcd  # noqa: E402

tmp = tempfile.mkdtemp(prefix="wf-h2-")
try:
    try:
        pem = make_certs(os.path.join(tmp, "tls"))
    except Skip as e:
        print("skipped: %s" % e)
        sys.exit(77)
    with Etcd(tls={"ca": pem["ca.crt"], "cert": pem["server.crt"], "key": pem["server.key"]}) as e:
        env = dict(os.environ, WF_TEST_ETCD=e.url, WF_TEST_ETCD_TLS=e.tls_url,
                   WF_TEST_ETCD_CA=pem["ca.crt"], WF_TEST_ETCD_CERT=pem["client.crt"],
                   WF_TEST_ETCD_KEY=pem["client.key"], WF_TEST_ETCD_PID=str(e.pid))
        try:
            rc = subprocess.call(sys.argv[1:], env=env)
        finally:
            e.resume()
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(rc)
