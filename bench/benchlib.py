"""Shared pieces of the benchmarks (bench/bench.py): a single-threaded
select() loop that drives etcd's JSON gateway over raw keep-alive sockets
(puts, txns) and reads one or more raw /v3/watch streams, timestamping every
watch line the moment recv() returns it; step objects; /proc readers;
percentiles.

Why raw sockets and one thread: the put and the watch share the loop, so a
watch event that arrives while a put reply is still on its way is stamped
when it arrives, not when a blocking client gets round to reading it.  The
same watcher measures etcd's own put -> watch-event latency (the floor) and
the agent's writes, so both carry the same client overhead.
"""
import base64
import json
import os
import re
import select
import socket
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(HERE)

now = time.perf_counter


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def prefix_end(prefix):
    p = bytearray(prefix.encode())
    p[-1] += 1
    return bytes(p)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


# ---- statistics ----------------------------------------------------------------

def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def median(xs):
    s = sorted(xs)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


# ---- /proc ---------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of pid (not its children), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_split(pid):
    """(utime, stime) of pid's main thread and of all its other threads
    (libuv's threadpool: file-system work), in seconds:
    {"main": (u, s), "pool": (u, s)}."""
    out = {"main": [0.0, 0.0], "pool": [0.0, 0.0]}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        k = "main" if int(tid) == pid else "pool"
        out[k][0] += int(fields[11]) / CLK_TCK
        out[k][1] += int(fields[12]) / CLK_TCK
    return out


def proc_status_kb(pid, field):
    """VmRSS / VmHWM / ... of pid in kB (0 if gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# ---- step objects ----------------------------------------------------------------------

def reference_step(key, node, status="SUCCEEDED", action="go_build@v1"):
    """The Go-format step of docs/protocol.md appendix A, with key, node,
    status and action replaced (a completed step carries end_at)."""
    o = {"key": key, "create_type": "PIPELINE", "namespace": "ns1",
         "pipeline_id": "c3r8psea0brhlbg0qdd0", "create_at": 1626770673846,
         "update_at": 1626770681002, "deploy_id": "", "resource_version": 831402, "id": 1,
         "name": "step1.1", "action": action, "with": {"ENV1": "env1", "ENV2": "env2"},
         "is_parallel": False, "ignore_failed": False, "with_audit": False,
         "audit_params": None, "with_notify": False, "notify_params": None, "webhooks": None,
         "node_selector": None,
         "status": {"flow_number": 1, "start_at": 1626770680990, "end_at": 0,
                    "status": status, "scheduled_node": node, "audit_at": 0,
                    "audit_response": "UOD", "audit_message": "", "notify_at": 0,
                    "notify_error": "", "message": "",
                    "response": {"container_id": "9f1c...", "container_warn": "",
                                 "log_driver": "local_file",
                                 "log_path": "runner_log/2021/7/20/" + key}}}
    if status in ("SUCCEEDED", "FAILED", "CANCELED"):
        o["status"]["end_at"] = 1626770690990
    return o


def user_step(key, node, action):
    """A PENDDING user step (no pipeline to resolve) as the e2e tests write it."""
    return {"key": key, "create_type": "USER", "name": "step-" + key, "action": action,
            "with": {}, "status": {"status": "PENDDING", "scheduled_node": node}}


def pipeline_step(key, node, action, namespace, pipeline_id, name, status="PENDDING",
                  response=None):
    """A step of pipeline run <namespace>.<pipeline_id> (key
    <namespace>.<pipeline_id>.<stage>.<step>), as the Go API writes one; a
    completed one carries its times and status.response."""
    o = {"key": key, "create_type": "PIPELINE", "namespace": namespace,
         "pipeline_id": pipeline_id, "name": name, "action": action, "with": {},
         "status": {"status": status, "scheduled_node": node}}
    if status in ("SUCCEEDED", "FAILED", "CANCELED"):
        o["status"].update({"start_at": 1626770680990, "end_at": 1626770690990,
                            "message": "", "response": dict(response or {})})
    return o


def pipeline(namespace, pipeline_id):
    """The pipeline object a pipeline step's node reads (its `with` empty)."""
    return {"id": pipeline_id, "namespace": namespace, "with": {}}


def local_action(name, cmd, version="v1"):
    return {"name": name, "version": version, "runner_type": "LOCAL",
            "runner_params": {"CMD": cmd}, "run_params": []}


STATUS_RE = re.compile(rb'"status"\s*:\s*"([A-Za-z_]+)"')


def status_of_value(value):
    """status.status of a stored step (bytes): the first string-valued
    "status" key (the top-level "status" is an object)."""
    m = STATUS_RE.search(value)
    return m.group(1).decode() if m else None


# ---- the loop ----------------------------------------------------------------------------

class _HttpConn:
    """One keep-alive HTTP/1.1 connection: requests are sent one at a time,
    in order; cb(status, body, t_done) fires when the reply is complete."""

    def __init__(self, loop, host, port):
        self.loop = loop
        self.host = host
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.queue = []     # (bytes, cb) not yet sent
        self.inflight = None
        self.head = None
        self.buf = bytearray()
        self.out = b""
        loop.add(self)

    def request(self, path, body, cb):
        data = body if isinstance(body, bytes) else body.encode()
        head = ("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (path, self.host, len(data))).encode()
        self.queue.append((head + data, cb))
        self._pump()

    def _pump(self):
        if self.inflight is None and self.queue:
            data, cb = self.queue.pop(0)
            self.inflight = cb
            self.out += data
        self._flush()

    def _flush(self):
        while self.out:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                return
            self.out = self.out[n:]

    def wants_write(self):
        return bool(self.out)

    def on_writable(self):
        self._flush()

    def on_readable(self, t):
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        if not data:
            raise EOFError("etcd closed a unary connection")
        self.buf += data
        while self.inflight is not None:
            r = self._parse()
            if r is None:
                return
            status, body = r
            cb = self.inflight
            self.inflight = None
            self.head = None
            self._pump()
            cb(status, body, t)

    def _parse(self):
        """(status, body) once the reply is complete, else None.  The head
        is parsed once; a Content-Length body is only length-checked until
        it is all there (bodies of list pages are megabytes)."""
        if self.head is None:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return None
            head = bytes(self.buf[:i]).decode("latin-1").split("\r\n")
            hdrs = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            self.head = (int(head[0].split()[1]), hdrs, head)
            del self.buf[:i + 4]
        status, hdrs, head = self.head
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            if len(self.buf) < n:
                return None
            body = bytes(self.buf[:n])
            del self.buf[:n]
            return status, body
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            rest = self.buf
            body, pos = [], 0
            while True:
                j = rest.find(b"\r\n", pos)
                if j < 0:
                    return None
                size = int(bytes(rest[pos:j]).split(b";")[0], 16)
                if size == 0:
                    k = rest.find(b"\r\n\r\n", j)  # trailers end with an empty line
                    if k < 0:
                        return None
                    del self.buf[:k + 4]
                    return status, b"".join(body)
                if len(rest) < j + 2 + size + 2:
                    return None
                body.append(bytes(rest[j + 2:j + 2 + size]))
                pos = j + 2 + size + 2
        raise RuntimeError("unsupported etcd reply framing: %r" % head)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.loop.remove(self)
        self.sock.close()


class WatchStream:
    """A raw /v3/watch stream on prefix.  on_event(ev, t) gets each event as
    a dict {type, key (str), value (bytes), mod_revision (int)} and the
    perf_counter() time at which recv() returned the bytes that completed
    its line."""

    def __init__(self, loop, url, prefix, on_event, start_revision=None):
        u = urllib.parse.urlsplit(url)
        self.loop = loop
        self.on_event = on_event
        self.sock = socket.create_connection((u.hostname, u.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req = {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        if start_revision:
            req["start_revision"] = str(start_revision)
        body = dumps({"create_request": req}).encode()
        self.sock.sendall(("POST /v3/watch HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json"
                           "\r\nContent-Length: %d\r\n\r\n" % (u.hostname, len(body))).encode()
                          + body)
        self.sock.setblocking(False)
        self.raw = b""
        self.head_done = False
        self.lines = b""
        self.created = False
        self.nevents = 0
        loop.add(self)
        deadline = now() + 10
        while not self.created:
            if now() > deadline:
                raise RuntimeError("watch not created")
            loop.step(0.1)

    def wants_write(self):
        return False

    def fileno(self):
        return self.sock.fileno()

    def on_readable(self, t):
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        if not data:
            raise EOFError("watch stream ended")
        self.raw += data
        if not self.head_done:
            i = self.raw.find(b"\r\n\r\n")
            if i < 0:
                return
            if b" 200 " not in self.raw[:i].split(b"\r\n")[0]:
                raise RuntimeError("watch refused: %r" % self.raw[:300])
            self.raw = self.raw[i + 4:]
            self.head_done = True
        # de-chunk what is complete
        pos = 0
        raw = self.raw
        while True:
            j = raw.find(b"\r\n", pos)
            if j < 0:
                break
            size = int(raw[pos:j].split(b";")[0], 16)
            if len(raw) < j + 2 + size + 2:
                break
            self.lines += raw[j + 2:j + 2 + size]
            pos = j + 2 + size + 2
        self.raw = raw[pos:]
        while True:
            k = self.lines.find(b"\n")
            if k < 0:
                break
            line = self.lines[:k]
            self.lines = self.lines[k + 1:]
            if line.strip():
                self._message(json.loads(line), t)

    def _message(self, msg, t):
        if "error" in msg:
            raise EOFError("watch error: %r" % msg["error"])
        res = msg["result"]
        if res.get("created"):
            self.created = True
        if res.get("canceled"):
            raise RuntimeError("watch canceled: %r" % res)
        for ev in res.get("events") or ():
            kv = ev["kv"]
            self.nevents += 1
            self.on_event({"type": ev.get("type", "PUT"),
                           "key": base64.b64decode(kv["key"]).decode(),
                           "value": base64.b64decode(kv.get("value", "")),
                           "mod_revision": int(kv.get("mod_revision", 0))}, t)

    def close(self):
        self.loop.remove(self)
        self.sock.close()


class Loop:
    def __init__(self):
        self.objs = []

    def add(self, o):
        self.objs.append(o)

    def remove(self, o):
        if o in self.objs:
            self.objs.remove(o)

    def step(self, timeout):
        r = self.objs
        w = [o for o in self.objs if o.wants_write()]
        rr, ww, _ = select.select(r, w, [], max(0.0, timeout))
        t = now()
        for o in ww:
            o.on_writable()
        for o in rr:
            o.on_readable(t)
        return bool(rr or ww)

    def run_until(self, pred, timeout, what="condition"):
        deadline = now() + timeout
        while not pred():
            left = deadline - now()
            if left <= 0:
                raise TimeoutError("timed out after %.0fs waiting for %s" % (timeout, what))
            self.step(min(left, 0.5))


class Gateway:
    """Unary gateway calls over one keep-alive connection on the loop."""

    def __init__(self, loop, url):
        u = urllib.parse.urlsplit(url)
        self.loop = loop
        self.conn = _HttpConn(loop, u.hostname, u.port)

    def call_async(self, path, body, cb=None):
        def done(status, data, t):
            if status != 200:
                raise RuntimeError("etcd %s -> HTTP %d: %r" % (path, status, data[:300]))
            if cb:
                cb(json.loads(data or b"{}"), t)
        self.conn.request("/v3/" + path, dumps(body), done)

    def call(self, path, body, timeout=60):
        out = []
        self.call_async(path, body, lambda r, t: out.append(r))
        self.loop.run_until(lambda: out, timeout, "etcd " + path)
        return out[0]

    def put_async(self, key, value, cb=None):
        v = value if isinstance(value, bytes) else (value.encode() if isinstance(value, str)
                                                    else dumps(value).encode())
        self.call_async("kv/put", {"key": b64(key), "value": b64(v)}, cb)

    def txn_puts_body(self, items):
        ops = []
        for k, v in items:
            vb = v if isinstance(v, bytes) else dumps(v).encode()
            ops.append({"request_put": {"key": b64(k), "value": b64(vb)}})
        return {"compare": [], "success": ops, "failure": []}

    def put_many(self, items, per_txn=500):
        """Writes [(key, value), ...] in txns of per_txn puts (queued on the
        one connection, sent back to back); returns when all are
        acknowledged."""
        items = list(items)
        chunks = [items[i:i + per_txn] for i in range(0, len(items), per_txn)]
        done = [0]

        def ack(r, t):
            done[0] += 1
        for c in chunks:
            self.call_async("kv/txn", self.txn_puts_body(c), ack)
        self.loop.run_until(lambda: done[0] == len(chunks), 600, "bulk puts")

    def delete_prefix(self, prefix):
        return self.call("kv/deleterange", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})

    def close(self):
        self.conn.close()

    def list_floor(self, prefix, page=1000):
        """The gateway's own cost of a full paginated list of prefix (pages of
        `page` keys at one pinned revision, as the agent asks for them) with
        a reader that does nothing with the values: it only finds the
        revision, "more" and the last key.  Returns (seconds, bytes, pages)."""
        key_re = re.compile(rb'"key":"([^"]*)"')
        start, end = b64(prefix), b64(prefix_end(prefix))
        rev = None
        nbytes = pages = 0
        t0 = now()
        while True:
            body = {"key": start, "range_end": end, "limit": page}
            if rev:
                body["revision"] = rev
            out = []
            self.conn.request("/v3/kv/range", dumps(body), lambda s, d, t: out.append((s, d)))
            self.loop.run_until(lambda: out, 600, "a list page")
            status, d = out[0]
            if status != 200:
                raise RuntimeError("list page: HTTP %d %r" % (status, d[:300]))
            nbytes += len(d)
            pages += 1
            if rev is None:
                rev = re.search(rb'"revision":"(\d+)"', d).group(1).decode()
            if b'"more":true' not in d[-64:] and b'"more":true' not in d[:400]:
                break
            keys = key_re.findall(d[-4096:])
            start = b64(base64.b64decode(keys[-1]) + b"\0")
        return now() - t0, nbytes, pages


# ---- TCP connections ---------------------------------------------------------------------

from agent import socket_inodes  # noqa: E402,F401  (test/harness, on the path)


def established_to(port):
    """The inodes of every ESTABLISHED (state 01) TCP socket on this host
    whose remote port is port, from /proc/net/tcp and tcp6 (read once, so
    one sample of many processes costs one read of the tables)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)  # the header
                for line in f:
                    # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                    cols = line.split()
                    if len(cols) >= 10 and cols[3] == "01" and \
                            int(cols[2].rsplit(":", 1)[1], 16) == port:
                        out.add(cols[9])
        except OSError:
            pass
    return out


class ConnSampler:
    """Samples, every period seconds on a thread of its own, the ESTABLISHED
    TCP connections of a set of processes to one remote port (socket inodes
    in /proc/PID/fd matched in /proc/net/tcp{,6}).  Per pid: the most at
    once and every distinct socket seen; over all pids: the most at once.
    Pids are added with add(); figures are read after stop()."""

    def __init__(self, port, period=0.02):
        import threading
        self.port = port
        self.period = period
        self.pids = []
        self.max_at_once = {}   # pid -> int
        self.seen = {}          # pid -> set of inodes
        self.total_max = 0
        self.samples = 0
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def add(self, pid):
        with self.lock:
            self.pids.append(pid)
            self.max_at_once.setdefault(pid, 0)
            self.seen.setdefault(pid, set())

    def sample(self):
        with self.lock:
            pids = list(self.pids)
        if not pids:
            return
        est = established_to(self.port)
        total = 0
        for pid in pids:
            now_ = socket_inodes(pid) & est
            total += len(now_)
            self.seen[pid] |= now_
            self.max_at_once[pid] = max(self.max_at_once[pid], len(now_))
        self.total_max = max(self.total_max, total)
        self.samples += 1

    def _run(self):
        while not self.stop_ev.is_set():
            self.sample()
            self.stop_ev.wait(self.period)

    def stop(self):
        self.stop_ev.set()
        self.th.join()

    def figures(self, pids=None):
        """{"max_at_once": most of one pid at once, "distinct": most distinct
        sockets of one pid, "total_max": all pids at once, "samples": n}."""
        pids = self.pids if pids is None else pids
        return {"max_at_once": max([self.max_at_once[p] for p in pids] or [0]),
                "distinct": max([len(self.seen[p]) for p in pids] or [0]),
                "total_max": self.total_max, "samples": self.samples}
