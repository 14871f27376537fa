#!/usr/bin/env python3
"""HTTP/2 to etcd (issue 16): one TCP connection per endpoint.

A real etcd serves https with --client-cert-auth (certificates from
test/harness/certs.py); its JSON gateway accepts h2 by ALPN on that port.

* An agent on the https URL with default flags (--etcd-http2 auto) and
  --ttl 2 registers, watches, runs 100 LOCAL steps and renews its lease for
  at least 4 TTLs.  Its ESTABLISHED TCP sockets to etcd's https port are
  sampled every 100 ms from the start of the process (socket inodes in
  /proc/PID/fd matched in /proc/PID/net/tcp{,6}): at most one at any moment
  and one distinct socket over the whole run, i.e. every watch, unary call
  and keepalive went over one connection.  All 100 steps SUCCEEDED, each
  ran once, and the node key stayed registered under one lease throughout.
* A second agent (another node name) with --etcd-http2 off on the same URL
  runs 30 steps with --max-parallel 8: it uses more than one connection
  (HTTP/1.1 needs one per watch and per concurrent call), which shows that
  the sampler sees the difference.

The connection figures and steps/s of both are logged; the assertions on
them come last so that both sets of figures are always printed."""
import os
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, log, T, WORKFLOW_NODE  # noqa: E402
from etcd import free_port  # noqa: E402

TTL = 2
MIN_RUN = 4 * TTL     # the first agent lives at least this long (several keepalives)
N1, N2 = 100, 30
PERIOD = 0.1


class ConnSampler:
    """Samples an agent's ESTABLISHED sockets to port every PERIOD s, and
    the node key (its presence and lease) on the test's own plain client."""

    def __init__(self, s, agent, port, node):
        self.s, self.agent, self.port, self.node = s, agent, port, node
        self.seen = set()
        self.max_at_once = 0
        self.samples = 0
        self.leases = set()
        self.key_missing = 0     # samples after registration with no node key
        self.registered = False
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.th.start()
        return self

    def _run(self):
        last_key = 0.0
        while not self.stop_ev.is_set():
            now = self.agent.tcp_connections(self.port)
            self.samples += 1
            self.seen |= now
            self.max_at_once = max(self.max_at_once, len(now))
            if time.time() - last_key >= 0.5:
                last_key = time.time()
                self._check_key()
            self.stop_ev.wait(PERIOD)

    def _check_key(self):
        try:
            kv = self.s.c.get(self.s.node_key(self.node))
        except OSError:
            kv = None
        if kv:
            self.registered = True
            self.leases.add(kv["lease"])
        elif self.registered:
            self.key_missing += 1

    def stop(self):
        self.stop_ev.set()
        self.th.join()
        self._check_key()

    def figures(self):
        return "%d distinct connection(s), at most %d at once (%d samples)" % (
            len(self.seen), self.max_at_once, self.samples)


def run_steps(s, prefix, n, node, marks):
    """Writes n steps for node at once; returns (seconds, {key: step})."""
    keys = ["%s%03d" % (prefix, i) for i in range(n)]
    t0 = time.time()
    s.c.put_many({s.step_key(k): s.step_obj(k, "mark@v1", node=node) for k in keys},
                 per_txn=50)
    got = s.wait_steps(keys, timeout=120, poll=0.1)
    wall = time.time() - t0
    bad = [k for k in keys if status_of(got[k])["status"] != "SUCCEEDED"]
    check(not bad, "%d of %d steps on %s did not succeed, e.g. %s: %s", len(bad), n, node,
          bad[:1], bad and status_of(got[bad[0]]))
    for k in keys:
        with open(os.path.join(marks, k)) as f:
            runs = len(f.read().splitlines())
        check(runs == 1, "step %s ran %d times", k, runs)
    return wall, got


def metric_line(port, name):
    """The first sample line of metric name on the agent's /metrics."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return line
    return ""


def has_http2_flag():
    r = subprocess.run([WORKFLOW_NODE, "--help"], capture_output=True, text=True, timeout=30)
    return "--etcd-http2" in r.stdout + r.stderr


def transport_lines(s, a):
    """The agent's log lines about the transport (HTTP/2, ALPN, GOAWAY,
    reconnects), with the prefix and temp dir (which may hold "http2")
    taken out before matching."""
    words = ("http/2", "http2", " h2", "alpn", "goaway", "rst_stream", "nghttp2",
             "reconnect", "connection")
    out = []
    for l in a.stderr_text().splitlines():
        if l.startswith("===="):
            continue
        bare = l.replace(s.prefix, "").replace(s.tmp, "").lower()
        if any(w in bare for w in words):
            out.append(l)
    return out


def agent_phase(s, name, args, n, marks, key_prefix, min_run=0.0):
    a = s.agent(name=name, args=args, start=False)
    a.start()
    smp = ConnSampler(s, a, s.etcd.tls_port, name).start()
    t_start = time.time()
    a.wait_registered(s.c, timeout=T(20))
    wall, _ = run_steps(s, key_prefix, n, name, marks)
    rest = min_run - (time.time() - t_start)
    if rest > 0:
        log("%s: idle for %.1fs more so that its lease (--ttl %d) is renewed several times",
            name, rest, TTL)
        time.sleep(rest)
    a.assert_alive()
    smp.stop()
    lived = time.time() - t_start
    log("%s (%s): %d steps SUCCEEDED in %.2fs (%.1f steps/s); over %.1fs: %s; node key "
        "leases %s, missing in %d samples", name, " ".join(args) or "default flags", n, wall,
        n / wall, lived, smp.figures(), sorted(smp.leases), smp.key_missing)
    return a, smp, lived


def main():
    with Scenario("etcd_http2", etcd_tls=True) as s:
        marks = os.path.join(s.tmp, "marks")
        os.makedirs(marks)
        s.put_action("mark", sh("echo run >> %s/$WORKFLOW_STEP_KEY" % marks))
        check(has_http2_flag(), "workflow-node --help does not list --etcd-http2")

        # 1. default flags: HTTP/2 over one connection
        port1 = free_port()
        a1, smp1, lived1 = agent_phase(s, "node-h2", ["--ttl", str(TTL), "--listen",
                                                      "127.0.0.1:%d" % port1], N1, marks, "h",
                                       min_run=MIN_RUN)
        for l in transport_lines(s, a1)[:10]:
            log("node-h2 stderr: %s", l.strip())
        said = [l for l in a1.stderr_lines_with("HTTP/2 (ALPN h2)") if " info " in l]
        check(said, "node-h2 did not say at info that it speaks HTTP/2 to etcd")
        gauge = metric_line(port1, "workflow_etcd_http2")
        check(gauge.endswith(" 1") and s.etcd.tls_url in gauge,
              "node-h2's /metrics: %r, want workflow_etcd_http2{endpoint=%s} 1", gauge,
              s.etcd.tls_url)
        log("node-h2: %s; /metrics: %s", said[0].strip(), gauge)
        a1.stop(timeout=T(60))

        # 2. --etcd-http2 off: HTTP/1.1, a connection per watch and per call
        port2 = free_port()
        args2 = ["--etcd-http2", "off", "--ttl", str(TTL), "--max-parallel", "8", "--listen",
                 "127.0.0.1:%d" % port2]
        a2, smp2, _ = agent_phase(s, "node-h1", args2, N2, marks, "o")
        gauge = metric_line(port2, "workflow_etcd_http2")
        check(gauge.endswith(" 0"), "node-h1's /metrics: %r, want workflow_etcd_http2 0", gauge)
        a2.stop(timeout=T(60))

        log("connections to etcd's https port %d: node-h2 %s; node-h1 %s",
            s.etcd.tls_port, smp1.figures(), smp2.figures())

        check(smp1.registered and smp1.key_missing == 0 and len(smp1.leases) == 1,
              "node-h2's key did not stay registered under one lease over %.1fs (--ttl %d): "
              "leases %s, missing in %d samples", lived1, TTL, sorted(smp1.leases),
              smp1.key_missing)
        check(smp1.max_at_once == 1,
              "node-h2 (default flags, https) had %d connections to etcd at once, want 1 "
              "(HTTP/2: every watch and call on one connection)", smp1.max_at_once)
        check(len(smp1.seen) == 1,
              "node-h2 (default flags, https) used %d distinct connections over %.1fs, want 1",
              len(smp1.seen), lived1)
        check(len(smp2.seen) > 1,
              "node-h1 (%s) used %d connection(s): the sampler cannot tell HTTP/1.1 from "
              "HTTP/2", " ".join(args2), len(smp2.seen))


run(main)
