"""A small etcd v3 JSON-gateway client for the tests (stdlib only).

Keys and values are base64 on the wire and int64s come back as strings
(docs/peers.md); this module hides both: keys are str, values
are bytes (put also takes str, or a dict/list that it encodes as compact
JSON), and revisions are ints.

    c = EtcdClient("http://127.0.0.1:2379")
    rev = c.put("a/b", {"x": 1})
    kv = c.get("a/b")            # None, or {"key","value","mod_revision",...}
    c.get_json("a/b")            # {"x": 1}
    c.get_prefix("a/")           # [kv, ...], paginated, one revision
    c.cas_put("a/b", v, kv["mod_revision"])   # True if the compare held
    c.txn_put_many({"k1": v1, "k2": v2})      # one txn (<= 128 ops)
    c.compact(c.revision())
    with c.watch("a/", start_revision=rev) as w:
        for ev in w.events(timeout=5): ...
"""
import base64
import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def unb64(s):
    return base64.b64decode(s) if s else b""


def prefix_end(prefix):
    """range_end for a prefix: the prefix with its last byte incremented."""
    p = bytearray(prefix.encode() if isinstance(prefix, str) else prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return b"\0"


def encode_value(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()


def _kv(raw):
    return {
        "key": unb64(raw.get("key")).decode(errors="surrogateescape"),
        "value": unb64(raw.get("value")),
        "create_revision": int(raw.get("create_revision", 0)),
        "mod_revision": int(raw.get("mod_revision", 0)),
        "version": int(raw.get("version", 0)),
        "lease": int(raw.get("lease", 0)),
    }


class EtcdError(Exception):
    def __init__(self, status, body):
        super().__init__("etcd HTTP %s: %s" % (status, body[:300]))
        self.status = status
        self.body = body


class EtcdClient:
    def __init__(self, url, timeout=10):
        self.url = url.split(",")[0].rstrip("/")
        self.timeout = timeout

    # -- plumbing -------------------------------------------------------
    def call(self, path, body, retry_for=0.0):
        """POSTs body (a dict) to /v3/<path>; returns the decoded JSON.
        With retry_for > 0, connection errors are retried for that many
        seconds (useful right after an etcd restart)."""
        data = json.dumps(body).encode()
        deadline = time.time() + retry_for
        while True:
            req = urllib.request.Request(self.url + "/v3/" + path, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return json.loads(r.read() or b"{}")
            except urllib.error.HTTPError as e:
                raise EtcdError(e.code, e.read().decode(errors="replace")) from None
            except (OSError, http.client.HTTPException):
                if time.time() >= deadline:
                    raise
                time.sleep(0.1)

    # -- kv -------------------------------------------------------------
    def put(self, key, value, lease=None, prev_kv=False):
        """Returns the new revision (or (revision, prev kv) with prev_kv)."""
        body = {"key": b64(key), "value": b64(encode_value(value))}
        if lease:
            body["lease"] = str(lease)
        if prev_kv:
            body["prev_kv"] = True
        r = self.call("kv/put", body)
        rev = int(r["header"]["revision"])
        if prev_kv:
            return rev, (_kv(r["prev_kv"]) if "prev_kv" in r else None)
        return rev

    def get(self, key, revision=None):
        body = {"key": b64(key)}
        if revision:
            body["revision"] = str(revision)
        r = self.call("kv/range", body)
        kvs = r.get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def get_json(self, key):
        kv = self.get(key)
        return json.loads(kv["value"]) if kv else None

    def get_prefix(self, prefix, page=500, keys_only=False):
        """Every kv under prefix, read in pages at one pinned revision."""
        end = b64(prefix_end(prefix))
        start = b64(prefix)
        rev = None
        out = []
        while True:
            body = {"key": start, "range_end": end, "limit": page}
            if keys_only:
                body["keys_only"] = True
            if rev:
                body["revision"] = str(rev)
            r = self.call("kv/range", body)
            if rev is None:
                rev = int(r["header"]["revision"])
            kvs = [_kv(x) for x in r.get("kvs") or []]
            out.extend(kvs)
            if not r.get("more") or not kvs:
                return out
            start = b64(kvs[-1]["key"].encode(errors="surrogateescape") + b"\0")

    def get_prefix_json(self, prefix):
        """{key: parsed JSON (or None if not JSON)} under prefix."""
        out = {}
        for kv in self.get_prefix(prefix):
            try:
                out[kv["key"]] = json.loads(kv["value"])
            except ValueError:
                out[kv["key"]] = None
        return out

    def delete(self, key):
        r = self.call("kv/deleterange", {"key": b64(key)})
        return int(r.get("deleted", 0))

    def delete_rev(self, key):
        """Deletes key; returns the revision of the delete."""
        r = self.call("kv/deleterange", {"key": b64(key)})
        return int(r["header"]["revision"])

    def delete_prefix(self, prefix):
        r = self.call("kv/deleterange", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        return int(r.get("deleted", 0))

    def revision(self):
        r = self.call("kv/range", {"key": b64("\0"), "count_only": True})
        return int(r["header"]["revision"])

    # -- txn ------------------------------------------------------------
    def txn(self, compare, success, failure=()):
        """Raw txn: lists of gateway dicts (keys already base64)."""
        return self.call("kv/txn", {"compare": list(compare), "success": list(success),
                                    "failure": list(failure)})

    def cas_put(self, key, value, mod_revision):
        """Puts value if key's mod_revision is still mod_revision (0: absent)."""
        if mod_revision:
            cmp = {"key": b64(key), "target": "MOD", "result": "EQUAL",
                   "mod_revision": str(mod_revision)}
        else:
            cmp = {"key": b64(key), "target": "CREATE", "result": "EQUAL",
                   "create_revision": "0"}
        r = self.txn([cmp], [{"request_put": {"key": b64(key), "value": b64(encode_value(value))}}])
        return bool(r.get("succeeded"))

    def update_json(self, key, fn, retries=50):
        """Read-modify-write of a JSON value guarded by mod_revision.
        fn(obj) changes obj in place (or returns a new one)."""
        for _ in range(retries):
            kv = self.get(key)
            if kv is None:
                raise KeyError(key)
            obj = json.loads(kv["value"])
            new = fn(obj)
            if new is None:
                new = obj
            if self.cas_put(key, new, kv["mod_revision"]):
                return new
        raise RuntimeError("update_json(%s): too many conflicts" % key)

    def txn_put_many(self, items):
        """Puts {key: value} in one txn (etcd allows 128 ops per txn by
        default); returns the revision."""
        ops = [{"request_put": {"key": b64(k), "value": b64(encode_value(v))}}
               for k, v in items.items()]
        r = self.txn([], ops)
        return int(r["header"]["revision"])

    def put_many(self, items, per_txn=100):
        """Puts many keys in as few txns as etcd allows."""
        items = list(items.items()) if isinstance(items, dict) else list(items)
        rev = 0
        for i in range(0, len(items), per_txn):
            rev = self.txn_put_many(dict(items[i:i + per_txn]))
        return rev

    # -- maintenance ----------------------------------------------------
    def compact(self, revision, physical=True):
        return self.call("kv/compaction", {"revision": str(revision), "physical": physical})

    # -- leases -----------------------------------------------------------
    def lease_grant(self, ttl):
        return int(self.call("lease/grant", {"TTL": ttl})["ID"])

    def lease_ttl(self, lease_id):
        r = self.call("lease/timetolive", {"ID": str(lease_id)})
        return int(r.get("TTL", 0))

    def lease_revoke(self, lease_id):
        return self.call("lease/revoke", {"ID": str(lease_id)})

    # -- watch ----------------------------------------------------------
    def watch(self, prefix, start_revision=None, prev_kv=False):
        return Watch(self.url, prefix, start_revision, prev_kv)


class Watch:
    """One /v3/watch stream over HTTP/1.1 (one connection per watch).

    events(timeout) yields event dicts {"type": "PUT"|"DELETE", "key",
    "value", "mod_revision", ...} until timeout seconds pass with nothing
    new; it raises WatchCanceled on a compaction cancel and EOFError when the
    stream ends (for example because etcd stopped)."""

    def __init__(self, url, prefix, start_revision=None, prev_kv=False):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        req = {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        if start_revision:
            req["start_revision"] = str(start_revision)
        if prev_kv:
            req["prev_kv"] = True
        self.conn.request("POST", "/v3/watch", body=json.dumps({"create_request": req}),
                          headers={"Content-Type": "application/json"})
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise EtcdError(self.resp.status, self.resp.read().decode(errors="replace"))
        first = self._message(10)
        if not first or not first.get("created"):
            raise RuntimeError("watch not created: %r" % first)
        self.revision = int(first.get("header", {}).get("revision", 0))

    def _message(self, timeout):
        self.conn.sock.settimeout(timeout)
        try:
            line = self.resp.readline()
        except (socket.timeout, TimeoutError):
            return None
        if not line:
            raise EOFError("watch stream ended")
        msg = json.loads(line)
        if "error" in msg:
            raise EOFError("watch stream error: %r" % msg["error"])
        return msg["result"]

    def batch(self, timeout):
        """The events of the next message ([] for a progress message), or
        None if nothing arrives within timeout seconds."""
        msg = self._message(timeout)
        if msg is None:
            return None
        if msg.get("canceled"):
            raise WatchCanceled(int(msg.get("compact_revision", 0)))
        out = []
        for ev in msg.get("events") or []:
            e = _kv(ev["kv"])
            e["type"] = ev.get("type", "PUT")
            if "prev_kv" in ev:
                e["prev_kv"] = _kv(ev["prev_kv"])
            out.append(e)
        return out

    def events(self, timeout=1.0):
        """Yields events until timeout seconds pass without a message."""
        while True:
            b = self.batch(timeout)
            if b is None:
                return
            yield from b

    def collect(self, seconds):
        """All events that arrive within the next `seconds` seconds."""
        out = []
        deadline = time.time() + seconds
        while True:
            left = deadline - time.time()
            if left <= 0:
                return out
            b = self.batch(left)
            if b is None:
                return out
            out.extend(b)

    def close(self):
        try:
            self.conn.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class WatchCanceled(Exception):
    def __init__(self, compact_revision):
        super().__init__("watch canceled, compact_revision=%d" % compact_revision)
        self.compact_revision = compact_revision
