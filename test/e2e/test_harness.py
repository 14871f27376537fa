#!/usr/bin/env python3
"""The test harness itself against a real etcd: the gateway client (put, get,
paginated prefix list, txn, delete, watch, compaction cancel), etcd restart
on the same ports and data dir, and the cutting proxy.  No agent involved, so
a failure here is a harness (or etcd) problem, not an agent one."""
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, WatchCanceled, EtcdClient  # noqa: E402
from etcdclient import prefix_end  # noqa: E402
from proxy import TcpProxy  # noqa: E402


def main():
    with Scenario("harness") as s:
        c = s.c
        check(prefix_end("a/") == b"a0", "prefix_end")
        r1 = c.put("h/a", {"x": 1})
        check(c.get_json("h/a") == {"x": 1}, "get_json")
        check(c.get("h/none") is None, "missing key")
        c.put("h/b", b"\x00\xffbin")
        check(c.get("h/b")["value"] == b"\x00\xffbin", "binary value")
        # pagination at one revision
        c.put_many({"p/%04d" % i: "v%d" % i for i in range(250)}, per_txn=100)
        kvs = c.get_prefix("p/", page=64)
        check(len(kvs) == 250 and kvs[0]["key"] == "p/0000" and kvs[-1]["key"] == "p/0249",
              "paginated list: %d", len(kvs))
        # txn compare on mod_revision
        kv = c.get("h/a")
        check(kv["mod_revision"] == r1, "mod_revision")
        check(c.cas_put("h/a", {"x": 2}, r1), "cas on current revision")
        check(not c.cas_put("h/a", {"x": 3}, r1), "cas on stale revision must fail")
        check(c.cas_put("h/new", "n", 0) and not c.cas_put("h/new", "n", 0), "create-if-absent")
        c.update_json("h/a", lambda o: o.update(y=5))
        check(c.get_json("h/a") == {"x": 2, "y": 5}, "update_json")
        # watch: live events, delete, replay from a revision
        rev = c.revision()
        with c.watch("h/") as w:
            c.put("h/w", "1")
            c.delete("h/w")
            evs = w.collect(1.0)
            check([(e["type"], e["key"]) for e in evs] == [("PUT", "h/w"), ("DELETE", "h/w")],
                  "watch events: %r", evs)
        with c.watch("h/", start_revision=rev + 1) as w:
            evs = w.collect(0.5)
            check(len(evs) == 2, "replay: %r", evs)
        # compaction cancels a watch that starts before it
        cur = c.revision()
        c.compact(cur)
        with c.watch("h/", start_revision=rev) as w:
            try:
                w.collect(1.0)
                check(False, "watch from a compacted revision was not canceled")
            except WatchCanceled as e:
                check(e.compact_revision == cur, "compact_revision %d != %d",
                      e.compact_revision, cur)
        # etcd restart: same URL, same data, an open watch ends
        w = c.watch("h/")
        url = s.etcd.url
        s.etcd.restart()
        check(s.etcd.url == url, "restart changed the URL")
        try:
            w.collect(2.0)
            ended = False
        except (EOFError, OSError):
            ended = True
        w.close()
        check(ended, "watch survived an etcd restart")
        check(c.get_json("h/a") == {"x": 2, "y": 5}, "data lost across restart")
        # proxy: forwards, cuts, restores
        p = TcpProxy("127.0.0.1", s.etcd.client_port).start()
        pc = EtcdClient(p.url, timeout=2)
        check(pc.get_json("h/a") == {"x": 2, "y": 5}, "through proxy")
        pw = pc.watch("h/")
        p.cut()
        try:
            pw.collect(1.0)
            cut_ok = False
        except (EOFError, OSError):
            cut_ok = True
        check(cut_ok, "cut did not end the watch")
        try:
            pc.get("h/a")
            check(False, "request through a cut proxy succeeded")
        except OSError:
            pass
        p.restore()
        check(pc.get_json("h/a") == {"x": 2, "y": 5}, "after restore")
        p.close()
        # concurrency of the client (threads share nothing)
        errs = []

        def worker(i):
            try:
                for j in range(20):
                    c.put("t/%d/%d" % (i, j), "x")
            except Exception as e:  # noqa: BLE001
                errs.append(e)
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        check(not errs and len(c.get_prefix("t/")) == 80, "threaded puts: %r", errs)


run(main)
