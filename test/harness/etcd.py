"""A private etcd for one test: free loopback ports, a temporary data dir,
started and stopped by PID.  Used by with_etcd.py (C integration tests) and
by the end-to-end tests in test/e2e/.

    Etcd(auth_token_ttl="2")          # --auth-token simple --auth-token-ttl 2
    e.enable_auth("root", "secret")   # user root (role root), then auth enable
    e.pause(); e.resume()             # SIGSTOP / SIGCONT: a frozen member
    Etcd(tls={"ca": CA, "cert": CRT, "key": KEY})
        # also serves https on e.tls_url (e.tls_port) with that server
        # certificate and --client-cert-auth (clients need a certificate
        # signed by CA); e.url stays plain http for the harness itself
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Etcd:
    def __init__(self, data_dir=None, extra_args=(), auth_token_ttl=None, tls=None):
        self.owns_dir = data_dir is None
        self.tls = tls
        self.dir = data_dir or tempfile.mkdtemp(prefix="wf-etcd-")
        self._pick_ports()
        self.extra_args = list(extra_args)
        if auth_token_ttl is not None:
            # "simple" tokens live in etcd's memory and expire after this
            # many seconds without use: short values let tests see expiry.
            self.extra_args += ["--auth-token", "simple", "--auth-token-ttl", str(auth_token_ttl)]
        self.proc = None
        self.log = None
        self.started_once = False
        self.log_path = os.path.join(self.dir, "etcd.log")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=20, _retries=3):
        """Starts etcd and waits for /health.  On the first start a port that
        another process took between free_port() and the bind is replaced by
        a new free one (up to _retries times); restart() keeps the ports."""
        try:
            return self._start(timeout)
        except RuntimeError as e:
            self.stop()
            if _retries > 0 and "address already in use" in str(e) and not self.started_once:
                self._pick_ports()
                return self.start(timeout, _retries - 1)
            raise

    def _pick_ports(self):
        self.client_port = free_port()
        self.peer_port = free_port()
        while self.peer_port == self.client_port:
            self.peer_port = free_port()
        self.url = "http://127.0.0.1:%d" % self.client_port
        self.tls_port, self.tls_url = None, None
        if getattr(self, "tls", None):
            self.tls_port = free_port()
            while self.tls_port in (self.client_port, self.peer_port):
                self.tls_port = free_port()
            self.tls_url = "https://127.0.0.1:%d" % self.tls_port

    def _start(self, timeout):
        peer = "http://127.0.0.1:%d" % self.peer_port
        client_urls = self.url
        tls_args = []
        if self.tls_url:
            # One plain listener (health checks, the tests' own client) and
            # one https listener that demands a client certificate.
            client_urls += "," + self.tls_url
            tls_args = ["--cert-file", self.tls["cert"], "--key-file", self.tls["key"],
                        "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"]
        args = [
            shutil.which("etcd") or "/usr/bin/etcd",
            "--name", "wf", "--data-dir", os.path.join(self.dir, "data"),
            "--logger=zap", "--log-outputs=stderr", "--log-level=warn",
            "--listen-client-urls", client_urls, "--advertise-client-urls", client_urls,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "wf=" + peer,
        ] + tls_args + self.extra_args
        self.log = open(self.log_path, "ab")
        log_start = self.log.tell()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                with open(self.log_path, errors="replace") as f:
                    f.seek(log_start)
                    raise RuntimeError("etcd exited: " + f.read()[-2000:])
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if b"true" in r.read():
                        self.started_once = True
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("etcd did not become healthy")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused etcd cannot act on sig
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def restart(self, down_seconds=0.0, sig=signal.SIGTERM, timeout=20):
        """Stops etcd (by PID), optionally stays down for down_seconds, then
        starts it again on the same data dir and the same ports (the https
        one too: agents in WF_E2E_ETCD=https mode reconnect to tls_url)."""
        self.stop(sig)
        if down_seconds:
            time.sleep(down_seconds)
        deadline = time.time() + timeout
        while True:  # the old listener may take a moment to release the port
            try:
                return self._start(max(1.0, deadline - time.time()))
            except RuntimeError as e:
                self.stop()
                if "address already in use" not in str(e) or time.time() > deadline:
                    raise
                time.sleep(0.2)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def _v3(self, path, body):
        req = urllib.request.Request(self.url + "/v3/" + path, data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def enable_auth(self, user, password):
        """Adds user with password, grants it the root role and enables
        authentication.  etcd refuses to enable auth without a user named
        root, so pass "root" (or add root first).  From then on every
        request needs a token from POST /v3/auth/authenticate."""
        self._v3("auth/user/add", {"name": user, "password": password})
        self._v3("auth/user/grant", {"user": user, "role": "root"})
        self._v3("auth/enable", {})

    def cleanup(self):
        self.stop()
        if self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
