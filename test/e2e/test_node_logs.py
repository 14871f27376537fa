#!/usr/bin/env python3
"""Step logs served by the node (docs/protocol.md §6.1), through the real
binary, a real etcd and real HTTP clients (python's http.client and ssl,
and curl where installed):

- the node record publishes `endpoint` with the bound port;
- follow=1 on a running LOCAL step streams every byte, in order, while it
  is written (the first bytes arrive before the step ends) and ends when
  the step ends; a follower that starts after the step ended gets it all;
- offset=BYTES and tail=LINES (a last line with and without its newline,
  more lines than the file has, 0), on a finished log and followed;
- a finished log: Content-Length, ETag, If-None-Match -> 304, Range -> 206
  with Content-Range, a range past the end -> 416, HEAD;
- 404 for unknown keys, `..` and `%2F` keys, another node's step; 400 for a
  bad query;
- with --listen-token-file: no token and a wrong token get 401 with
  WWW-Authenticate and no log byte; /healthz and /readyz stay open;
  /metrics needs the token;
- followers that stop reading: the step's throughput does not drop (it
  ends as fast as without them, give or take noise), the agent's RSS stays
  under 32 MB, and the log is served whole afterwards;
- more followers than --listen-max-followers get 503;
- TLS with --listen-cert/--listen-key/--listen-client-ca: no client
  certificate or one from another CA is refused in the handshake, the
  right one is served; the endpoint is https://."""
import hashlib
import http.client
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from certs import make_certs  # noqa: E402
from e2e import Scenario, run, check, sh, log, T, TestFailure  # noqa: E402
from etcd import free_port  # noqa: E402

TOKEN = "s3cret-token-for-logs"


def request(port, path, headers=None, method="GET", ctx=None, timeout=30):
    """(status, headers dict lower-cased, body bytes) of one request."""
    if ctx:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def auth():
    return {"Authorization": "Bearer " + TOKEN}


class Follower(threading.Thread):
    """Reads a followed log as it comes; records when the first byte came."""

    def __init__(self, port, path, headers=None, ctx=None):
        super().__init__(daemon=True)
        self.port, self.path, self.headers, self.ctx = port, path, headers, ctx
        self.data = b""
        self.first_at = None
        self.done_at = None
        self.status = None
        self.error = None

    def run(self):
        try:
            if self.ctx:
                c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=T(120),
                                                context=self.ctx)
            else:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=T(120))
            c.request("GET", self.path, headers=self.headers or {})
            r = c.getresponse()
            self.status = r.status
            self.chunked = r.getheader("Transfer-Encoding")
            while True:
                b = r.read1(65536)
                if not b:
                    break
                if self.first_at is None:
                    self.first_at = time.time()
                self.data += b
            self.done_at = time.time()
            c.close()
        except Exception as e:  # reported by the test
            self.error = e


def lines_script(n, pause):
    # n numbered lines, one every pause seconds, then a last line without \n.
    return sh("i=0; while [ $i -lt %d ]; do echo \"line $i of the log\"; i=$((i+1)); sleep %s; "
              "done; printf 'no newline at the end'" % (n, pause))


def expected_lines(n):
    return "".join("line %d of the log\n" % i for i in range(n)).encode() + \
        b"no newline at the end"


def plain_checks(s, port):
    log_path = "/v1/steps/%s/log"
    # -- the endpoint in the node record
    node = s.c.get_json(s.node_key())
    check(node.get("endpoint") == "http://127.0.0.1:%d" % port, "node record endpoint %r",
          node.get("endpoint"))

    # -- follow a running step from its first line to its end
    s.put_step("f1", "lines@v1")
    s.wait_step("f1", statuses=("RUNNING",), timeout=T(20))
    f = Follower(port, log_path % "f1" + "?follow=1", auth())
    f.start()
    done = s.wait_step("f1", timeout=T(60))
    ended = time.time()
    f.join(T(30))
    check(not f.is_alive(), "the follower did not end after the step ended")
    check(f.error is None and f.status == 200, "follow: %r %r", f.status, f.error)
    check(f.chunked == "chunked", "follow is not chunked: %r", f.chunked)
    want = expected_lines(30)
    check(f.data == want, "followed %d bytes, want %d; got %r", len(f.data), len(want),
          f.data[-200:])
    check(done["status"]["status"] == "SUCCEEDED", "f1: %s", done["status"])
    check(f.first_at < ended - 1.0, "the first byte came %.2f s before the step ended: not live",
          ended - f.first_at)
    log("followed f1 live: %d bytes, first byte %.1f s before the end", len(f.data),
        ended - f.first_at)
    with open(s.log_file("f1"), "rb") as fh:
        check(fh.read() == want, "the file differs from what was followed")

    # -- after the end: whole, follow ends at once
    st, h, body = request(port, log_path % "f1" + "?follow=1", auth())
    check(st == 200 and body == want, "follow after the end: %d %d bytes", st, len(body))

    # -- a finished log: length, ETag, 304, ranges, HEAD
    st, h, body = request(port, log_path % "f1", auth())
    check(st == 200 and body == want, "whole: %d", st)
    check(h.get("content-length") == str(len(want)), "Content-Length %r", h.get("content-length"))
    etag = h.get("etag")
    check(etag and etag.startswith('"'), "ETag %r", etag)
    check(h.get("accept-ranges") == "bytes", "Accept-Ranges %r", h.get("accept-ranges"))
    st, h, body = request(port, log_path % "f1", dict(auth(), **{"If-None-Match": etag}))
    check(st == 304 and body == b"", "If-None-Match: %d %r", st, body)
    st, h, body = request(port, log_path % "f1", dict(auth(), Range="bytes=5-14"))
    check(st == 206 and body == want[5:15], "range 5-14: %d %r", st, body)
    check(h.get("content-range") == "bytes 5-14/%d" % len(want), "Content-Range %r",
          h.get("content-range"))
    st, h, body = request(port, log_path % "f1", dict(auth(), Range="bytes=-21"))
    check(st == 206 and body == b"no newline at the end", "suffix range: %d %r", st, body)
    st, h, body = request(port, log_path % "f1", dict(auth(), Range="bytes=%d-" % len(want)))
    check(st == 416 and h.get("content-range") == "bytes */%d" % len(want), "416: %d %r",
          st, h)
    st, h, body = request(port, log_path % "f1", auth(), method="HEAD")
    check(st == 200 and body == b"" and h.get("content-length") == str(len(want)),
          "HEAD: %d %r", st, h)

    # a client that half-closes after its request (nc -N) still gets it all
    k = socket.create_connection(("127.0.0.1", port), timeout=10)
    k.sendall(("GET /v1/steps/f1/log HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
               % TOKEN).encode())
    k.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = k.recv(65536)
        if not b:
            break
        got += b
    k.close()
    check(got.startswith(b"HTTP/1.1 200") and got.endswith(want), "half-closed client got %r",
          got[:80])
    st, h, body = request(port, log_path % "f1", dict(auth(), **{"If-None-Match": etag}))
    check("content-length" not in h, "304 with a Content-Length: %r", h)

    # -- offset and tail on the finished log
    st, h, body = request(port, log_path % "f1" + "?offset=100", auth())
    check(st == 200 and body == want[100:], "offset=100: %d %d bytes", st, len(body))
    st, h, body = request(port, log_path % "f1" + "?offset=999999", auth())
    check(st == 200 and body == b"", "offset past the end: %d %r", st, body)
    st, h, body = request(port, log_path % "f1" + "?tail=3", auth())
    check(body == b"line 28 of the log\nline 29 of the log\nno newline at the end",
          "tail=3 (no final newline): %r", body)
    st, h, body = request(port, log_path % "f1" + "?tail=0", auth())
    check(st == 200 and body == b"", "tail=0: %r", body)
    st, h, body = request(port, log_path % "f1" + "?tail=1000", auth())
    check(body == want, "tail over the line count: %d bytes", len(body))
    st, h, body = request(port, log_path % "f1" + "?tail=2&follow=1", auth())
    check(body == b"line 29 of the log\nno newline at the end", "tail=2&follow=1: %r", body)

    # a log that ends with its newline
    s.put_step("f2", "newline@v1")
    s.wait_step("f2", timeout=T(30))
    st, h, body = request(port, log_path % "f2" + "?tail=2", auth())
    check(body == b"b\nc\n", "tail=2 with a final newline: %r", body)

    # -- offset while following a running step (a reconnect's resume)
    s.put_step("f3", "lines@v1")
    s.wait_step("f3", statuses=("RUNNING",), timeout=T(20))
    time.sleep(1)
    f = Follower(port, log_path % "f3" + "?follow=1&offset=19", auth())
    f.start()
    s.wait_step("f3", timeout=T(60))
    f.join(T(30))
    check(f.data == want[19:], "follow from offset 19: %d bytes %r", len(f.data), f.data[:40])

    # -- refusals
    for path, want_st in ((log_path % "nope", 404),
                          ("/v1/steps/..%2Ff1/log", 404),
                          ("/v1/steps/%2e%2e/log", 404),
                          ("/v1/steps/a%2Fb/log", 404),
                          ("/v1/steps/../log", 404),
                          (log_path % "f1" + "?tail=x", 400),
                          (log_path % "f1" + "?offset=-1", 400),
                          (log_path % "f1" + "?follow=yes", 400),
                          ("/v1/steps/f1/logs", 404)):
        st, h, body = request(port, path, auth())
        check(st == want_st, "%s: %d (want %d) %r", path, st, want_st, body)
        check(b"line 0" not in body, "%s served log bytes", path)
    # another node's step, with a log_path that points at a real file
    other = s.step_obj("o1", "lines@v1", node="someone-else")
    other["status"]["response"] = {"log_path": s.log_file("f1")}
    s.c.put(s.step_key("o1"), other)
    st, h, body = request(port, log_path % "o1", auth())
    check(st == 404 and b"not this node's" in body, "another node's step: %d %r", st, body)

    # -- the token
    for hdrs, what in (({}, "no token"), ({"Authorization": "Bearer wrong"}, "wrong token"),
                       ({"Authorization": "Bearer " + TOKEN + "x"}, "longer token"),
                       ({"Authorization": "Basic " + TOKEN}, "not bearer")):
        st, h, body = request(port, log_path % "f1", hdrs)
        check(st == 401, "%s: %d", what, st)
        check(h.get("www-authenticate", "").startswith("Bearer"), "%s: %r", what, h)
        check(b"line" not in body, "%s: log bytes served", what)
        st, h, body = request(port, "/metrics", hdrs)
        check(st == 401 and b"workflow_" not in body, "/metrics with %s: %d", what, st)
    for p in ("/healthz", "/readyz"):
        st, h, body = request(port, p)
        check(st == 200, "%s without a token: %d", p, st)
    st, h, body = request(port, "/metrics", auth())
    check(st == 200 and b"workflow_log_followers" in body, "/metrics with the token: %d", st)
    log("token: 401 without it or with a wrong one; probes open")


def slow_follower(s, port):
    """A follower that stops reading does not slow the step; RSS bounded."""
    path = "/v1/steps/%s/log?follow=1"
    # Alone first, then with as many stalled followers as the agent takes
    # (--listen-max-followers 3): each has asked for the log and reads
    # nothing, with a 4 KiB receive buffer.
    s.put_step("big0", "big@v1")
    d = s.wait_step("big0", timeout=T(120))
    alone = (d["status"]["end_at"] - d["status"]["start_at"]) / 1000.0
    socks = []
    s.put_step("big1", "big@v1")
    s.wait_step("big1", statuses=("RUNNING",), timeout=T(30))
    for _ in range(3):
        k = socket.create_connection(("127.0.0.1", port), timeout=10)
        k.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        k.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                   % (path % "big1", TOKEN)).encode())
        socks.append(k)
    agent = s.agents[0]
    peak = 0
    while True:
        peak = max(peak, agent.rss_kb())
        st = s.get_step("big1")["status"]["status"]
        if st not in ("PENDDING", "RUNNING"):
            break
        time.sleep(0.05)
    d = s.get_step("big1")
    with_stalled = (d["status"]["end_at"] - d["status"]["start_at"]) / 1000.0
    log("64 MiB step alone %.2f s, with 3 stalled followers %.2f s; agent peak RSS %.1f MB",
        alone, with_stalled, peak / 1024.0)
    check(d["status"]["status"] == "SUCCEEDED", "big1: %s", d["status"])
    if os.environ.get("WF_AGENT_WRAPPER"):
        # Under valgrind the agent's speed and RSS are the tool's: only the
        # paths and the log's bytes are checked.
        log("agent under %s: throughput and RSS not judged",
            os.environ["WF_AGENT_WRAPPER"].split()[0])
    else:
        judge_slow(alone, with_stalled, peak)
    for k in socks:
        k.close()
    with open(s.log_file("big1"), "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    st, h, body = request(port, "/v1/steps/big1/log", auth(), timeout=T(60))
    check(hashlib.sha256(body).hexdigest() == digest, "big1 served differs from the file")


def judge_slow(alone, with_stalled, peak):
    # Generous: the point is that it is not held back by the readers (a
    # held-back step would never end).
    check(with_stalled < alone * 3 + 2, "stalled followers slowed the step: %.2f s vs %.2f s",
          with_stalled, alone)
    check(peak < 32 * 1024, "agent RSS %.1f MB with stalled followers", peak / 1024.0)


def follower_bound(s, port):
    s.put_step("long", "sleepy@v1")
    s.wait_step("long", statuses=("RUNNING",), timeout=T(20))
    fs = [Follower(port, "/v1/steps/long/log?follow=1", auth()) for _ in range(3)]
    for f in fs:
        f.start()
    deadline = time.time() + T(10)
    while time.time() < deadline:
        st, h, body = request(port, "/metrics", auth())
        if b"\nworkflow_log_followers 3\n" in body:
            break
        time.sleep(0.1)
    check(b"\nworkflow_log_followers 3\n" in body, "3 followers never showed in /metrics")
    st, h, body = request(port, "/v1/steps/long/log?follow=1", auth(), timeout=10)
    check(st == 503 and b"too many followers" in body, "4th follower: %d %r", st, body)
    st, h, body = request(port, "/v1/steps/long/log", auth())
    check(st == 200, "a plain read beside 3 followers: %d", st)
    s.c.update_json(s.step_key("long"), lambda o: o["status"].update(status="CANCELING"))
    s.wait_step("long", timeout=T(30))
    for f in fs:
        f.join(T(20))
        check(not f.is_alive() and f.status == 200, "a follower did not end: %r", f.status)
    log("the 4th follower got 503; the three ended with the canceled step")


def tls_checks(tmp, s):
    pem = make_certs(os.path.join(tmp, "pki"))
    port = free_port()
    a = s.agent(name="tls-node", args=["--listen", "127.0.0.1:%d" % port,
                                       "--listen-cert", pem["server.crt"],
                                       "--listen-key", pem["server.key"],
                                       "--listen-client-ca", pem["ca.crt"]])
    node = s.c.get_json(s.node_key("tls-node"))
    check(node.get("endpoint") == "https://127.0.0.1:%d" % port, "endpoint %r",
          node.get("endpoint"))
    s.put_step("t1", "newline@v1", node="tls-node")
    s.wait_step("t1", timeout=T(30))
    good = ssl.create_default_context(cafile=pem["ca.crt"])
    good.load_cert_chain(pem["client.crt"], pem["client.key"])
    st, h, body = request(port, "/v1/steps/t1/log", ctx=good)
    check(st == 200 and body == b"a\nb\nc\n", "TLS with the client certificate: %d %r", st, body)
    f = Follower(port, "/v1/steps/t1/log?follow=1", ctx=good)
    f.run()
    check(f.data == b"a\nb\nc\n", "TLS follow: %r %r", f.data, f.error)
    nocert = ssl.create_default_context(cafile=pem["ca.crt"])
    try:
        st, h, body = request(port, "/v1/steps/t1/log", ctx=nocert)
        raise TestFailure("served without a client certificate: %d" % st)
    except (ssl.SSLError, ConnectionError, OSError) as e:
        log("no client certificate: %s", e)
    # A certificate of another CA: make one signed by ca2.
    import subprocess
    d = os.path.dirname(pem["ca.crt"])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "rogue.key", "-out",
                    "rogue.crt", "-days", "1", "-subj", "/CN=rogue"], cwd=d, check=True,
                   capture_output=True)
    rogue = ssl.create_default_context(cafile=pem["ca.crt"])
    rogue.load_cert_chain(os.path.join(d, "rogue.crt"), os.path.join(d, "rogue.key"))
    try:
        st, h, body = request(port, "/v1/steps/t1/log", ctx=rogue)
        raise TestFailure("served to a certificate of another CA: %d" % st)
    except (ssl.SSLError, ConnectionError, OSError) as e:
        log("foreign client certificate: %s", e)
    # plain HTTP on the TLS port gets nothing
    try:
        st, h, body = request(port, "/healthz", timeout=5)
        raise TestFailure("plain HTTP answered on the TLS port: %d" % st)
    except (http.client.HTTPException, ConnectionError, OSError) as e:
        log("plain HTTP on the TLS port: %s", e)
    st, h, body = request(port, "/healthz", ctx=good)
    check(st == 200, "/healthz over TLS: %d", st)
    a.stop(timeout=T(30))
    log("TLS: client certificate required and checked; endpoint https")


def main():
    with Scenario("node-logs") as s:
        s.put_action("lines", lines_script(30, "0.1"))
        s.put_action("newline", sh("printf 'a\\nb\\nc\\n'"))
        s.put_action("sleepy", sh("echo start; sleep 60"))
        s.put_action("big", sh("head -c 67108864 /dev/zero | tr '\\0' x; echo"))
        token_file = os.path.join(s.tmp, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        port = free_port()
        s.agent(args=["--listen", "127.0.0.1:%d" % port, "--listen-token-file", token_file,
                      "--listen-max-followers", "3"])
        plain_checks(s, port)
        follower_bound(s, port)
        slow_follower(s, port)
        tls_checks(s.tmp, s)


run(main)
