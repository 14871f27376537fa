#!/usr/bin/env python3
"""The HTTP endpoint (--listen) and JSON logs.

The agent runs with --listen 127.0.0.1:<free port> and --log-format json.
Two steps succeed; then /metrics is validated by a real Prometheus parser
(`promtool check metrics` from Debian's prometheus package, and/or the
python3-prometheus-client text parser: whichever is installed, at least
one is required) and its counters are checked; /healthz and /readyz are
200; 404/405/HEAD behave; garbage, an oversized head and 100 idle
connections do not hurt the agent (it is still healthy and still runs a
step).  With etcd stopped /readyz turns 503 and says why, /healthz stays
200; with etcd back /readyz is 200 again.  Every stderr line of the agent
is one JSON object with ts, level and msg, and lines about a step name it
in `step`."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, T, log, Skip, TestFailure  # noqa: E402
from etcd import free_port  # noqa: E402
from agent import sanitizer_report  # noqa: E402


def http(base, path, method="GET", timeout=5):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(base + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def wait_http(base, path, want, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = http(base, path)
            if last[0] == want:
                return last
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise TestFailure("%s never answered %d within %.0f s; last: %r" % (path, want, timeout, last))


def parse_samples(text):
    """{(name, frozenset(labels)): value} with the python parser if present,
    else a strict-enough line parser (promtool has validated the syntax)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        text_string_to_metric_families = None
    out = {}
    if text_string_to_metric_families:
        for fam in text_string_to_metric_families(text):
            for smp in fam.samples:
                out[(smp.name, frozenset(smp.labels.items()))] = smp.value
        return out, True
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        if "{" in head:
            name, rest = head.split("{", 1)
            labels = []
            for part in rest.rstrip("}").split('",'):
                k, v = part.split("=", 1)
                labels.append((k, v.strip('"')))
            out[(name, frozenset(labels))] = float(value)
        else:
            out[(head, frozenset())] = float(value)
    return out, False


PY_PARSE = """
import sys
from prometheus_client.parser import text_string_to_metric_families
print(sum(len(f.samples) for f in text_string_to_metric_families(sys.stdin.read())))
"""


def validate(text):
    """Runs every parser available; returns the samples."""
    used = []
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        check(p.returncode == 0, "promtool check metrics failed (%d):\n%s%s\n--- text:\n%s",
              p.returncode, p.stdout, p.stderr, text)
        used.append("promtool")
    samples, py = parse_samples(text)
    if py:
        used.append("prometheus_client")
    elif os.path.exists("/usr/bin/python3"):
        # python3 on PATH may be another install (pyenv, venv) than the one
        # Debian's python3-prometheus-client belongs to.
        p = subprocess.run(["/usr/bin/python3", "-c", PY_PARSE], input=text, capture_output=True,
                           text=True, timeout=60)
        if p.returncode == 0:
            check(int(p.stdout) == len(samples), "prometheus_client read %s samples, we %d",
                  p.stdout.strip(), len(samples))
            used.append("prometheus_client (/usr/bin/python3)")
        elif "No module named" not in p.stderr:
            raise TestFailure("prometheus_client rejects /metrics:\n%s\n--- text:\n%s"
                              % (p.stderr, text))
    if not used:
        raise Skip("neither promtool (Debian: prometheus) nor python3-prometheus-client "
                   "is installed")
    log("/metrics validated by %s (%d samples)", " and ".join(used), len(samples))
    return samples


def value(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    check(key in samples, "no sample %s%r in /metrics", name, labels)
    return samples[key]


def raw(port, data, read=True, timeout=5):
    """Sends data on a new connection; returns what the server answered."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if data:
            s.sendall(data)
        got = b""
        if read:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got += b
        return got
    finally:
        s.close()


def check_json_logs(agent, keys):
    lines = [l for l in agent.stderr_text().splitlines() if l and not l.startswith("==== ")]
    check(lines, "the agent logged nothing")
    objs = []
    for l in lines:
        try:
            o = json.loads(l)
        except ValueError as e:
            raise TestFailure("log line is not JSON (%s): %r" % (e, l))
        check(isinstance(o, dict), "log line is not an object: %r", l)
        for k in ("ts", "level", "msg"):
            check(isinstance(o.get(k), str) and o[k], "log line without %s: %r", k, l)
        check(o["level"] in ("debug", "info", "warn", "error"), "level %r", o["level"])
        try:
            time.strptime(o["ts"][:19], "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise TestFailure("ts %r is not RFC 3339" % o["ts"])
        check(o["ts"].endswith("Z"), "ts %r is not UTC", o["ts"])
        if "step" in o:
            check(o["step"] in keys, "step %r is not one of %r: %r", o["step"], keys, l)
        objs.append(o)
    # Each step's own lines (running, SUCCEEDED) name it in "step".
    for k in keys:
        mine = [o["msg"] for o in objs if o.get("step") == k]
        check(any(m.startswith("running") for m in mine) and "SUCCEEDED" in mine,
              "step %s: lines with step=%s are %r", k, k, mine)
    log("%d JSON log lines, %d about steps", len(objs), sum("step" in o for o in objs))


def main():
    with Scenario("metrics") as s:
        s.put_action("hello", sh("printf 'hello from %s\\n' \"$WORKFLOW_STEP_KEY\"; sleep 0.3"))
        port = free_port()
        base = "http://127.0.0.1:%d" % port
        agent = s.agent(args=["--listen", "127.0.0.1:%d" % port, "--log-format", "json"])

        st, hdr, body = wait_http(base, "/healthz", 200, T(10))
        check(body == "ok\n", "/healthz body %r", body)
        wait_http(base, "/readyz", 200, T(20))

        keys = ["m1", "m2"]
        for k in keys:
            s.put_step(k, "hello@v1")
        done = s.wait_steps(keys, timeout=T(30))
        for k in keys:
            check(done[k]["status"]["status"] == "SUCCEEDED", "%s: %s", k, done[k]["status"])

        st, hdr, text = http(base, "/metrics")
        check(st == 200, "/metrics status %d", st)
        ctype = {k.lower(): v for k, v in hdr.items()}.get("content-type", "")
        check(ctype.startswith("text/plain; version=0.0.4"), "Content-Type %r", ctype)
        m = validate(text)
        check(value(m, "workflow_steps_total", status="SUCCEEDED") == 2,
              "SUCCEEDED = %r", value(m, "workflow_steps_total", status="SUCCEEDED"))
        check(value(m, "workflow_steps_total", status="FAILED") == 0, "FAILED moved")
        check(value(m, "workflow_steps_total", status="CANCELED") == 0, "CANCELED moved")
        check(value(m, "workflow_steps_running") == 0, "steps still running")
        check(value(m, "workflow_steps_waiting") == 0, "steps still waiting")
        check(value(m, "workflow_dispatch_latency_seconds_count") == 2, "dispatch latency count")
        check(value(m, "workflow_dispatch_latency_seconds_bucket", le="+Inf") == 2, "+Inf bucket")
        check(value(m, "workflow_dispatch_latency_seconds_sum") < 10, "dispatch took > 10 s")
        check(value(m, "workflow_step_duration_seconds_count") == 2, "step duration count")
        check(value(m, "workflow_step_duration_seconds_sum") >= 0.5, "steps sleep 0.3 s each")
        want_log = sum(len("hello from %s\n" % k) for k in keys)
        check(value(m, "workflow_log_bytes_total") == want_log, "log bytes %r, want %d",
              value(m, "workflow_log_bytes_total"), want_log)
        ep = s.etcd.url
        check(value(m, "workflow_etcd_requests_total", endpoint=ep, op="txn") >= 4,
              "2 claims + 2 final writes are txns")
        check(value(m, "workflow_etcd_requests_total", endpoint=ep, op="lease_grant") >= 1,
              "the lease grant")
        check(value(m, "workflow_etcd_request_errors_total", endpoint=ep, op="txn") == 0,
              "txn errors")
        check(value(m, "workflow_watch_reconnects_total") == 0, "watch reconnected")
        check(value(m, "workflow_relists_total") == 0, "re-listed")
        check(value(m, "workflow_docker_api_errors_total") == 0, "docker errors")
        check(value(m, "process_resident_memory_bytes") > 1 << 20, "RSS")
        check(value(m, "process_open_fds") >= 5, "open fds")

        st, hdr, body = http(base, "/metrics", method="HEAD")
        check(st == 200 and body == "", "HEAD /metrics: %d %r", st, body)
        check(http(base, "/nope")[0] == 404, "/nope is not 404")
        check(http(base, "/metrics", method="POST")[0] == 405, "POST is not 405")

        # Clients that break the rules.
        g = raw(port, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n")
        check(g.startswith(b"HTTP/1.1 400 "), "garbage got %r", g[:40])
        big = raw(port, b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        check(big.startswith(b"HTTP/1.1 431 "), "oversized head got %r", big[:40])
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
        slow = idle[0]
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")  # never finished
        time.sleep(0.5)
        agent.assert_alive("with 100 idle connections")
        # The engine does not care: a step still runs while they hang on.
        s.put_step("m3", "hello@v1")
        st3 = s.wait_step("m3", timeout=T(30))
        check(st3["status"]["status"] == "SUCCEEDED", "m3: %s", st3["status"])
        # The server closes them by itself (10 s deadline); then it serves again.
        t0 = time.time()
        slow.settimeout(T(20))
        check(slow.recv(100) == b"", "the slow client got an answer")
        log("slow client closed by the agent after %.1f s", time.time() - t0)
        for c in idle:
            c.close()
        wait_http(base, "/healthz", 200, T(10))
        keys.append("m3")

        # etcd away: not ready, but alive; etcd back: ready again.
        s.etcd.stop()
        st, hdr, body = wait_http(base, "/readyz", 503, T(20))
        log("/readyz with etcd stopped: %r", body)
        check("watch not live" in body or "not reachable" in body, "/readyz reason %r", body)
        check(http(base, "/healthz")[0] == 200, "/healthz failed while etcd is down")
        st, hdr, text = http(base, "/metrics")
        check(st == 200, "/metrics with etcd down: %d", st)
        m = validate(text)
        check(value(m, "workflow_watch_reconnects_total") >= 1, "no watch reconnect counted")
        s.etcd.restart()
        wait_http(base, "/readyz", 200, T(30))

        check_json_logs(agent, keys)

    # Bad --listen values stop the agent with exit status 2, naming the flag.
    with Scenario("metrics-flags", start_etcd=False) as s:
        for bad in ("127.0.0.1:0", "127.0.0.1:70000", "example.com:80", "9464"):
            p = subprocess.run([agent.binary, "--name", "n", "--listen", bad],
                               capture_output=True, text=True, timeout=30)
            check(p.returncode == 2 and "--listen" in p.stderr and bad in p.stderr,
                  "--listen %s: exit %d, stderr %r", bad, p.returncode, p.stderr)
        # A port in use stops the agent at start-up (exit 1), cleanly.
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        addr = "127.0.0.1:%d" % taken.getsockname()[1]
        p = subprocess.run([agent.binary, "--name", "n", "--etcd", "http://127.0.0.1:1",
                            "--log-dir", os.path.join(s.tmp, "logs"), "--listen", addr],
                           capture_output=True, text=True, timeout=60)
        taken.close()
        check(p.returncode == 1 and ("--listen %s: address already in use" % addr) in p.stderr,
              "port in use: exit %d, stderr %r", p.returncode, p.stderr)
        check(sanitizer_report(p.stderr) is None, "port in use: %s", p.stderr)


run(main)
