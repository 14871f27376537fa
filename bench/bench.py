#!/usr/bin/env python3
"""The workflow-node benchmarks (issue 4).  Run through bench/run.sh, which
builds build-bench/ first; see bench/README.md for what each part measures.

    python3 bench/bench.py OUT.json

Starts one private etcd (and for part 6 a private dockerd, for part 10 a
private Podman service), runs the parts in order, prints the table and
writes it with the raw figures to OUT.json.  Every process it starts it stops by PID.

One file over 900 lines on purpose: the parts are methods of one Bench
that share its etcd, its agents' life cycle and its helpers (part 13 runs
parts 1, 2, 5 and 7's measures again over TLS), and each part reads on its
own; bench/README.md lists them, benchlib.py holds what has no state.
"""
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test", "harness"))

from benchlib import (Loop, Gateway, WatchStream, now, percentile, median, cpu_seconds, cpu_split,  # noqa: E402,E501
                      proc_status_kb, reference_step, user_step, pipeline_step, pipeline,
                      local_action, status_of_value, dumps, b64, SOURCE_ROOT, CLK_TCK,
                      ConnSampler)
from etcd import Etcd, free_port  # noqa: E402
from agent import Agent  # noqa: E402

BUILD = os.environ.get("BENCH_BUILD") or os.path.join(SOURCE_ROOT, "build-bench")
NODE_BIN = os.path.join(BUILD, "src", "workflow-node")
QUICK = os.environ.get("BENCH_QUICK") == "1"
FINAL = ("SUCCEEDED", "FAILED", "CANCELED")


def knob(name, full, quick):
    v = os.environ.get(name)
    if v:
        return type(full)(v)
    return quick if QUICK else full


N_DISPATCH = knob("BENCH_DISPATCH_N", 500, 150)
N_CLAIM_FLOOR = knob("BENCH_CLAIM_FLOOR_N", 300, 100)
N_THROUGHPUT = knob("BENCH_THROUGHPUT_N", 2000, 500)
THROUGHPUT_REPS = knob("BENCH_THROUGHPUT_REPS", 3, 1)
LOG_MIB = knob("BENCH_LOG_MIB", 1024, 256)
LOG_REPS = knob("BENCH_LOG_REPS", 5, 1)
N_MEM_LIST = knob("BENCH_MEM_LIST_N", 10000, 2000)
N_MEM_SLEEP = knob("BENCH_MEM_SLEEP_N", 200, 50)
N_RELIST = knob("BENCH_RELIST_N", 100000, 20000)
MANY_AGENTS = [int(x) for x in knob("BENCH_AGENTS", "1 10 25 50", "1 10 50").split()]
MANY_STEPS = knob("BENCH_MANY_STEPS", 5000, 1000)      # for the largest agent count
MANY_STEPS_SMALL = knob("BENCH_MANY_STEPS_SMALL", 1000, 300)  # for the other points
DOCKER_REPS = knob("BENCH_DOCKER_REPS", 10, 3)
DOCKER_LOG_MIB = knob("BENCH_DOCKER_LOG_MIB", 256, 64)
DOCKER_LOG_REPS = knob("BENCH_DOCKER_LOG_REPS", 3, 1)
CG_N = knob("BENCH_CALLGRIND_N", 1000, 200)
N_OUTPUTS_RUN = knob("BENCH_OUTPUTS_RUN_N", 500, 500)  # the big run, the measured step included
OUTPUTS_REPS = knob("BENCH_OUTPUTS_REPS", 30, 10)
FOLLOW_MIB = knob("BENCH_FOLLOW_MIB", 1024, 128)
FOLLOWERS = knob("BENCH_FOLLOWERS", 50, 10)
FOLLOW_REPS = knob("BENCH_FOLLOW_REPS", 1, 1)
FOLLOW_HASH = knob("BENCH_FOLLOW_HASH", 1, 1)  # 0: the followers count bytes only
ZLIB_MIB = knob("BENCH_ZLIB_MIB", 32, 8)        # part 12: each corpus
ZLIB_SERVE_MIB = knob("BENCH_ZLIB_SERVE_MIB", 256, 64)
# part 13: HTTP/2 against HTTP/1.1 to etcd over TLS (each count is per mode)
H2_DISPATCH_N = knob("BENCH_H2_DISPATCH_N", 500, 150)
H2_BURST_N = knob("BENCH_H2_BURST_N", 2000, 500)
H2_BURST_REPS = knob("BENCH_H2_BURST_REPS", 3, 1)
H2_RELIST_N = knob("BENCH_H2_RELIST_N", N_RELIST, N_RELIST)
H2_RELIST_REPS = knob("BENCH_H2_RELIST_REPS", 3, 2)
H2_AGENTS = knob("BENCH_H2_AGENTS", 50, 50)
H2_MANY_STEPS = knob("BENCH_H2_MANY_STEPS", 2000, 300)
H2_MANY_REPS = knob("BENCH_H2_MANY_REPS", 2, 1)
PARTS = os.environ.get("BENCH_PARTS", "1 2 3 4 5 6 7 8 9 10 11 12 13").split()


def log(fmt, *a):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), fmt % a if a else fmt))
    sys.stderr.flush()


def ms(x):
    return x * 1000.0


class PartError(Exception):
    pass


class Bench:
    def __init__(self, out):
        self.out = out
        self.rows = []
        self.details = {}
        self.errors = {}
        # The agents' log files and the baselines' output go under the build
        # dir by default: on this machine /tmp is a directory where ext4
        # spends ~0.6 ms of kernel time creating one file (40x elsewhere on
        # the same disk), which would be billed to the agent.
        tmp_base = os.environ.get("BENCH_TMP") or os.path.join(BUILD, "bench-tmp")
        os.makedirs(tmp_base, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="run-", dir=tmp_base)
        # etcd's data dir: tmpfs unless BENCH_ETCD_DISK=1, so that the
        # virtual disk's fsync jitter does not swamp what the agent adds.
        if os.environ.get("BENCH_ETCD_DISK") != "1" and os.path.isdir("/dev/shm"):
            self.etcd_dir = tempfile.mkdtemp(prefix="wf-bench-etcd-", dir="/dev/shm")
            self.etcd_on = "tmpfs (/dev/shm)"
        else:
            self.etcd_dir = os.path.join(self.tmp, "etcd")
            self.etcd_on = "disk (%s)" % self.tmp
        self.etcd = None
        self.agents = []
        self.extra_pids = []  # other processes we started (etcdctl...)
        self.loop = None
        self.gw = None

    # ---- lifetime ---------------------------------------------------------------
    def start(self):
        # Part 13 needs etcd's https listener too (test/harness/etcd.py: a
        # second listener with --client-cert-auth; the bench's own client
        # stays on the plain one).  Only when part 13 runs, so that the
        # other parts alone run on the etcd they always had.
        tls = None
        self.pem, self.tls_error = None, None
        if "13" in PARTS:
            try:
                from certs import make_certs  # imports e2e (for Skip)
                self.pem = make_certs(os.path.join(self.tmp, "tls"))
                tls = {"ca": self.pem["ca.crt"], "cert": self.pem["server.crt"],
                       "key": self.pem["server.key"]}
            except Exception as e:  # e2e.Skip: no openssl
                self.tls_error = "%s: %s" % (type(e).__name__, e)
        self.etcd = Etcd(data_dir=self.etcd_dir, extra_args=[
            "--max-txn-ops", "1000", "--quota-backend-bytes", str(8 << 30),
            "--auto-compaction-retention", "0"], tls=tls)
        os.makedirs(self.etcd_dir, exist_ok=True)
        self.etcd.start()
        self.loop = Loop()
        self.gw = Gateway(self.loop, self.etcd.url)
        log("etcd %s%s pid %d, data on %s; tmp %s", self.etcd.url,
            " and " + self.etcd.tls_url if tls else "", self.etcd.pid, self.etcd_on, self.tmp)

    def tls_args(self, http2):
        """The agent's flags for etcd's https listener (client certificate
        for --client-cert-auth) with --etcd-http2 http2 (auto or off)."""
        return ["--etcd-cacert", self.pem["ca.crt"], "--etcd-cert", self.pem["client.crt"],
                "--etcd-key", self.pem["client.key"], "--etcd-http2", http2]

    def stop(self):
        for a in self.agents:
            try:
                a.stop(timeout=20, expect_clean=False)
            except Exception:
                pass
        for pid in self.extra_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.etcd:
            self.etcd.cleanup()
        shutil.rmtree(self.etcd_dir, ignore_errors=True)
        if os.environ.get("BENCH_KEEP") == "1":
            log("kept %s", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- helpers -----------------------------------------------------------------
    def row(self, part, figure, value, unit, baseline=None, base_desc="", ratio=None,
            ratio_desc="", target="", met=None, note=""):
        r = {"part": part, "figure": figure, "value": value, "unit": unit,
             "baseline": baseline, "baseline_desc": base_desc, "ratio": ratio,
             "ratio_desc": ratio_desc, "target": target, "met": met, "note": note}
        self.rows.append(r)
        log("  %s: %s %s%s", figure, fmt_num(value), unit,
            "" if met is None else ("  (met)" if met else "  (MISSED)"))
        return r

    def agent(self, name, prefix, args=(), ready=True, timeout=120, log_dir=None, url=None):
        """Starts an agent on etcd's plain URL, or on url (part 13: the
        https one, with tls_args() in args)."""
        a = Agent(url or self.etcd.url, name, prefix=prefix,
                  log_dir=log_dir or os.path.join(self.tmp, "logs", name),
                  workdir=self.tmp, args=["--stop-grace", "1", "--drain-timeout", "1"] + list(args),
                  binary=NODE_BIN, stderr_path=os.path.join(self.tmp, "agent-%s.stderr" % name))
        try:
            a.ready_from = os.path.getsize(a.stderr_path)
        except OSError:
            a.ready_from = 0
        a.start()
        self.agents.append(a)
        if ready:
            self.wait_ready(a, timeout)
        return a

    def wait_ready(self, a, timeout=120, poll=0.002):
        """Waits until the agent logged that both caches are warm."""
        deadline = time.time() + timeout
        while True:
            t = a.stderr_text()[a.ready_from:]
            if "step cache ready" in t and "action catalog ready" in t:
                return
            a.assert_alive("while starting")
            if time.time() > deadline:
                raise PartError("agent %s not ready after %ds:\n%s" % (a.name, timeout,
                                                                        a.stderr_tail()))
            time.sleep(poll)

    def stop_agent(self, a):
        rc = a.stop(timeout=30, expect_clean=False)
        if a in self.agents:
            self.agents.remove(a)
        return rc

    def clean_etcd(self, prefix):
        """Deletes prefix, compacts etcd's history and defragments it, so
        that a later part does not pay for an earlier part's 100,000 keys
        (etcd's per-write CPU was 3x higher after part 5 without this)."""
        self.gw.delete_prefix(prefix)
        rev = int(self.gw.call("kv/range", {"key": b64("\0"), "count_only": True})
                  ["header"]["revision"])
        self.gw.call("kv/compaction", {"revision": str(rev), "physical": True})
        self.gw.call("maintenance/defragment", {}, timeout=120)

    def steps_prefix(self, prefix):
        return "%s/workflow/steps/" % prefix

    def put_action(self, prefix, name, cmd):
        self.gw.call("kv/put", {"key": b64("%s/workflow/actions/%s@v1" % (prefix, name)),
                                "value": b64(dumps(local_action(name, cmd)))})

    def timed_step(self, a, seen, full, step, timeout=20):
        """One step as part 1 measures it: puts the PENDDING step (a dict)
        at full, a key under the prefix watch_statuses(...) watches, and runs
        the loop until that watcher has seen it final.  Returns put ->
        PENDDING, RUNNING and SUCCEEDED in ms, as the watcher stamped them
        (a is the agent expected to run it, for the error)."""
        body = dumps({"key": b64(full), "value": b64(dumps(step))})
        t0 = now()
        self.gw.conn.request("/v3/kv/put", body, lambda s, d, t: None)
        self.loop.run_until(lambda: any(s in seen.get(full, ()) for s in FINAL), timeout,
                            "step %s to finish" % full)
        d = seen[full]
        if "SUCCEEDED" not in d or "RUNNING" not in d or "PENDDING" not in d:
            raise PartError("step %s: statuses seen %s\n%s" % (full, sorted(d), a.stderr_tail()))
        return ms(d["PENDDING"] - t0), ms(d["RUNNING"] - t0), ms(d["SUCCEEDED"] - t0)

    def dispatch_step(self, a, seen, P, node, key):
        """Part 1's measure of one step (also part 13's): a PENDDING LOCAL
        `true@v1` user step for node at key under P's steps prefix, which
        watch_statuses(P) records in seen; see timed_step."""
        return self.timed_step(a, seen, self.steps_prefix(P) + key,
                               user_step(key, node, "true@v1"))

    def watch_statuses(self, prefix):
        """A watch on the steps prefix recording, per key, when each status
        was first seen: {key: {status: t}}."""
        seen = {}
        counts = {}

        def on_ev(ev, t):
            if ev["type"] != "PUT":
                return
            st = status_of_value(ev["value"])
            d = seen.setdefault(ev["key"], {})
            if st not in d:
                d[st] = t
                counts[st] = counts.get(st, 0) + 1
        w = WatchStream(self.loop, self.etcd.url, self.steps_prefix(prefix), on_ev)
        return w, seen, counts

    def children_of(self, pid):
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
                if int(s[s.rindex(")") + 2:].split()[1]) == pid:
                    out.append(int(d))
            except (OSError, ValueError):
                pass
        return out

    def etcdctl(self, args, stdout=subprocess.DEVNULL):
        """Runs etcdctl; returns (seconds, peak RSS kB, exit status)."""
        env = dict(os.environ, ETCDCTL_API="3")
        t0 = now()
        p = subprocess.Popen(["etcdctl", "--endpoints", self.etcd.url] + args, env=env,
                             stdout=stdout, stderr=subprocess.PIPE)
        self.extra_pids.append(p.pid)
        _, status, ru = os.wait4(p.pid, 0)
        dt = now() - t0
        self.extra_pids.remove(p.pid)
        p.returncode = os.waitstatus_to_exitcode(status)
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
        if p.returncode != 0:
            raise PartError("etcdctl %s failed: %s" % (" ".join(args), err[-500:]))
        return dt, ru.ru_maxrss, p.returncode

    # ---- part 1: dispatch latency ----------------------------------------------------
    def part1(self):
        P, node = "b1", "bench-1"
        self.put_action(P, "true", "true")
        a = self.agent(node, P)
        w, seen, _ = self.watch_statuses(P)

        def one(i):
            return self.dispatch_step(a, seen, P, node, "d%05d" % i)

        for i in range(10):  # warm-up: connections, page cache
            one(100000 + i)
        floor, running, succeeded = [], [], []
        for i in range(N_DISPATCH):
            f, r, s = one(i)
            floor.append(f)
            running.append(r)
            succeeded.append(s)
        w.close()
        self.stop_agent(a)
        claim = self.claim_floor(N_CLAIM_FLOOR)
        fp50, fp99 = percentile(floor, 50), percentile(floor, 99)
        cp50, cp99 = percentile(claim, 50), percentile(claim, 99)
        rp50, rp99 = percentile(running, 50), percentile(running, 99)
        sp50, sp99 = percentile(succeeded, 50), percentile(succeeded, 99)
        self.details["1"] = {"n": N_DISPATCH, "floor_ms": summary(floor),
                             "claim_floor_ms": summary(claim), "running_ms": summary(running),
                             "succeeded_ms": summary(succeeded)}
        self.row("1", "put -> RUNNING p50", rp50, "ms", fp50, "etcd put -> watch event p50",
                 rp50 / fp50, "x floor", "<= 3x floor", rp50 <= 3 * fp50,
                 note="an instant claimer (the bench itself) needs p50 %.2f ms" % cp50)
        # RUNNING needs two commits (the put, then the claim txn) and two
        # watch deliveries: its floor is the instant claimer's.  Where 10 ms
        # is below 1.5x that floor's p99, read the target as <= 1.5x it.
        self.row("1", "put -> RUNNING p99", rp99, "ms", cp99,
                 "instant claimer: put -> RUNNING p99", rp99 / cp99, "x floor",
                 "< 10 ms, or <= 1.5x floor when 10 ms is below it",
                 rp99 < 10 or (cp99 * 1.5 >= 10 and rp99 / cp99 <= 1.5),
                 note="one put -> event p99: %.2f ms" % fp99)
        self.row("1", "put -> SUCCEEDED p50 (LOCAL true)", sp50, "ms", fp50,
                 "etcd put -> watch event p50", sp50 / fp50, "x floor", "< 6 ms", sp50 < 6)
        self.row("1", "put -> SUCCEEDED p99 (LOCAL true)", sp99, "ms", fp99,
                 "etcd put -> watch event p99", sp99 / fp99, "x floor", "(report)", None)

    def claim_floor(self, n):
        """What RUNNING costs with no agent at all: the bench watches, and the
        moment it sees the PENDDING put it sends the claim txn (compare
        mod_revision, put the RUNNING value), like the agent does.  Returns
        put -> RUNNING-event latencies in ms."""
        P = "b1c"
        sp = self.steps_prefix(P)
        pending = {}

        def on_ev(ev, t):
            if ev["type"] != "PUT":
                return
            st = status_of_value(ev["value"])
            d = seen.setdefault(ev["key"], {})
            d.setdefault(st, t)
            if st == "PENDDING":
                v = json.loads(ev["value"])
                v["status"]["status"] = "RUNNING"
                body = {"compare": [{"key": b64(ev["key"]), "target": "MOD", "result": "EQUAL",
                                     "mod_revision": str(ev["mod_revision"])}],
                        "success": [{"request_put": {"key": b64(ev["key"]),
                                                     "value": b64(dumps(v))}}]}
                claimer.conn.request("/v3/kv/txn", dumps(body), lambda s, dd, tt: None)
        seen = {}
        claimer = Gateway(self.loop, self.etcd.url)
        w = WatchStream(self.loop, self.etcd.url, sp, on_ev)
        out = []
        try:
            for i in range(n + 10):
                key = "c%05d" % i
                full = sp + key
                body = dumps({"key": b64(full), "value": b64(dumps(user_step(key, "nobody", "x@v1")))})
                t0 = now()
                self.gw.conn.request("/v3/kv/put", body, lambda s, d, t: None)
                self.loop.run_until(lambda: "RUNNING" in seen.get(full, ()), 20, "claim of " + key)
                if i >= 10:
                    out.append(ms(seen[full]["RUNNING"] - t0))
        finally:
            w.close()
            claimer.close()
        self.gw.delete_prefix(sp)
        return out

    # ---- part 2: throughput and CPU ---------------------------------------------------
    def part2(self):
        P, node = "b2", "bench-2"
        with self.burst_log_root() as (root, on_disk):
            self._part2(P, node, root, on_disk)

    @contextlib.contextmanager
    def burst_log_root(self):
        """(root, on_disk): the log dir of part 2's (and part 13's) bursts.
        On tmpfs, as in part 3: on this VM's ext4, after earlier parts (and
        runs) created and deleted thousands of files, ext4's inode allocator
        (find_inode_bit / recently_deleted in perf) cost 0.02 to 0.8 ms of
        kernel time per new file from one run to the next, in the
        threadpool, whoever creates the file.  Part 2's floor still
        measures a file creation in the same dir."""
        on_disk = os.environ.get("BENCH_LOG_DISK") == "1"
        root = os.path.join(self.tmp, "logs") if on_disk else \
            tempfile.mkdtemp(prefix="wf-bench-logs-", dir="/dev/shm")
        try:
            yield root, on_disk
        finally:
            if not on_disk:
                shutil.rmtree(root, ignore_errors=True)

    def _part2(self, P, node, root, on_disk):
        self.put_action(P, "true", "true")
        a = self.agent(node, P, ["--max-parallel", "32"], log_dir=os.path.join(root, node))
        w, seen, counts = self.watch_statuses(P)
        # THROUGHPUT_REPS rounds of N steps on the same agent; medians are
        # reported (one round's figure swung 20% with the machine's load).
        reps = [self.burst(a, P, node, "r%d-" % r, N_THROUGHPUT, seen, counts)
                for r in range(THROUGHPUT_REPS)]
        rss = proc_status_kb(a.pid, "VmRSS")
        failed = counts.get("FAILED", 0) + counts.get("CANCELED", 0)
        w.close()
        self.stop_agent(a)
        rate = median([x["rate"] for x in reps])
        cpu_ms = median([x["cpu_ms"] for x in reps])
        etcd_ms = median([x["etcd_ms"] for x in reps])
        split = {k: [median([x["split"][k][i] for x in reps]) for i in (0, 1)]
                 for k in reps[0]["split"]}
        # baseline: how fast this machine forks+execs `true`, 32 at a time.
        t = now()
        subprocess.run(["xargs", "-P", "32", "-n", "1", "true"], input=b"x\n" * N_THROUGHPUT,
                       check=True)
        spawn_rate = N_THROUGHPUT / (now() - t)
        # and what creating one small file costs the kernel in that dir
        fdir = os.path.join(root, "create-floor")
        os.makedirs(fdir)
        import resource
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        for i in range(N_THROUGHPUT):
            fd = os.open(os.path.join(fdir, "f%d" % i), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            os.write(fd, b"x")
            os.close(fd)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        create_ms = ms(r1.ru_stime - r0.ru_stime) / N_THROUGHPUT
        shutil.rmtree(fdir, ignore_errors=True)
        # and the CPU floor of a step without etcd: pipe, posix_spawn of
        # `true`, pidfd wait, EOF, log file create+close, in plain C
        # (bench/spawn_floor.c; fork+exec for comparison).
        floor = {}
        drv = os.path.join(BUILD, "bench", "spawn_floor")
        for mode in ("posix", "fork"):
            os.makedirs(fdir)
            out = subprocess.run([drv, str(N_THROUGHPUT), fdir, mode], check=True,
                                 stdout=subprocess.PIPE).stdout
            floor[mode] = json.loads(out)["cpu_ms_per_step"]
            shutil.rmtree(fdir, ignore_errors=True)
        self.details["2"] = {"n": N_THROUGHPUT, "reps": reps, "failed": failed,
                             "etcd_cpu_ms_per_step": etcd_ms,
                             "spawn_floor_per_s": spawn_rate, "agent_rss_kb": rss,
                             "file_create_sys_ms": create_ms,
                             "spawn_floor_cpu_ms": floor,
                             "log_dir_on": "disk" if on_disk else "tmpfs",
                             "agent_cpu_ms_per_step_split": split}
        if failed:
            raise PartError("%d steps did not succeed" % failed)
        self.row("2", "steps/s (%d LOCAL true, --max-parallel 32; median of %d rounds: %s)"
                 % (N_THROUGHPUT, len(reps), " / ".join("%.0f" % x["rate"] for x in reps)),
                 rate, "/s",
                 spawn_rate, "xargs -P32 true: spawns/s", rate / spawn_rate, "of spawn floor",
                 ">= 400/s", rate >= 400)
        self.row("2", "agent CPU per step (user+sys, log dir on %s; median of rounds: %s)"
                 % ("disk" if on_disk else "tmpfs",
                    " / ".join("%.3f" % x["cpu_ms"] for x in reps)), cpu_ms, "ms", floor["posix"],
                 "spawn floor: pipe + posix_spawn + reap + log file, no etcd (fork+exec: %.3f)"
                 % floor["fork"], cpu_ms / floor["posix"], "x floor",
                 "<= 0.3 ms", cpu_ms <= 0.3,
                 note="loop thread user %.3f + sys %.3f, threadpool (log files) user %.3f + sys "
                      "%.3f (creating a file there costs the kernel %.3f); etcd %.3f ms/step"
                      % (split["main"][0], split["main"][1], split["pool"][0], split["pool"][1],
                         create_ms, etcd_ms))

    def burst(self, a, P, node, tag, n, seen, counts):
        """One round of part 2 (also part 13's): n LOCAL `true` steps for
        agent a (node, prefix P) written at once in txns of 100 (keys
        <tag>t<i>), run until watch_statuses(P)'s seen/counts show all of
        them final.  Returns {"rate": steps/s from the first write to the
        last final status, "cpu_ms": the agent's CPU per step, "etcd_ms":
        etcd's, "split": the agent's loop / threadpool CPU per step}."""
        sp = self.steps_prefix(P)
        items = [(sp + "%st%05d" % (tag, i), user_step("%st%05d" % (tag, i), node, "true@v1"))
                 for i in range(n)]
        bodies = [dumps(self.gw.txn_puts_body(items[i:i + 100]))
                  for i in range(0, len(items), 100)]
        goal = sum(counts.get(s, 0) for s in FINAL) + n
        done = lambda: sum(counts.get(s, 0) for s in FINAL) >= goal  # noqa: E731
        cpu0, ecpu0 = cpu_seconds(a.pid), cpu_seconds(self.etcd.pid)
        split0 = cpu_split(a.pid)
        t0 = now()
        for b in bodies:
            self.gw.conn.request("/v3/kv/txn", b, lambda s, d, t: None)
        self.loop.run_until(done, 600, "%d steps to finish" % n)
        keys = dict(items)
        t_end = max(min(v[s] for s in FINAL if s in v) for k, v in seen.items() if k in keys)
        time.sleep(0.3)  # let the agent digest the echo of its last writes
        cpu1, ecpu1 = cpu_seconds(a.pid), cpu_seconds(self.etcd.pid)
        split1 = cpu_split(a.pid)
        return {"rate": n / (t_end - t0),
                "cpu_ms": ms(cpu1 - cpu0) / n,
                "etcd_ms": ms(ecpu1 - ecpu0) / n,
                "split": {k: [ms(split1[k][i] - split0[k][i]) / n for i in (0, 1)]
                          for k in split0}}

    # ---- part 3: log throughput ---------------------------------------------------------
    def part3(self):
        P, node = "b3", "bench-3"
        size = LOG_MIB << 20
        # tmpfs by default: on this VM's shared disk, dirty-page writeback
        # made identical 1 GiB writes vary 5x between reps (whoever writes
        # when the kernel starts throttling pays), which said nothing about
        # the agent.  BENCH_LOG_DISK=1 measures on disk instead.
        on_disk = os.environ.get("BENCH_LOG_DISK") == "1"
        root = os.path.join(self.tmp, "logs") if on_disk else \
            tempfile.mkdtemp(prefix="wf-bench-logs-", dir="/dev/shm")
        logdir = os.path.join(root, node)
        try:
            self.put_action(P, "dump", "head,-c,%d,/dev/zero" % size)
            a = self.agent(node, P, log_dir=logdir)
            w, seen, _ = self.watch_statuses(P)
            sp = self.steps_prefix(P)
            agent_s, base_s = [], []
            for r in range(LOG_REPS):
                # baseline: the same command, redirected to a file by the shell
                f = os.path.join(root, "baseline.out")
                t = now()
                subprocess.run(["sh", "-c", "head -c %d /dev/zero > %s" % (size, f)], check=True)
                base_s.append(now() - t)
                os.unlink(f)
                key = "log%d" % r
                self.gw.call("kv/put", {"key": b64(sp + key),
                                        "value": b64(dumps(user_step(key, node, "dump@v1")))})
                self.loop.run_until(lambda: any(s in seen.get(sp + key, ()) for s in FINAL), 600,
                                    "the log step")
                d = seen[sp + key]
                if "SUCCEEDED" not in d:
                    raise PartError("log step: %s\n%s" % (sorted(d), a.stderr_tail()))
                agent_s.append(d["SUCCEEDED"] - d["RUNNING"])
                path = None
                for dirpath, _, files in os.walk(logdir):
                    if key in files:
                        path = os.path.join(dirpath, key)
                got = os.path.getsize(path) if path else -1
                if got != size:
                    raise PartError("log file of %s holds %d bytes, not %d" % (key, got, size))
                os.unlink(path)
            hwm = proc_status_kb(a.pid, "VmHWM")
            w.close()
            self.stop_agent(a)
        finally:
            if not on_disk:
                shutil.rmtree(root, ignore_errors=True)
        ratios = [b / a_ for a_, b in zip(agent_s, base_s)]
        am, bm, rm = median(agent_s), median(base_s), median(ratios)
        self.details["3"] = {"mib": LOG_MIB, "reps": LOG_REPS, "on": "disk" if on_disk else "tmpfs",
                             "agent_s": agent_s, "shell_s": base_s, "pair_ratios": ratios,
                             "agent_vmhwm_kb": hwm}
        self.row("3", "log throughput (%d MiB to stdout, log dir on %s)"
                 % (LOG_MIB, "disk" if on_disk else "tmpfs"), LOG_MIB / am, "MiB/s", LOG_MIB / bm,
                 "sh: cmd > file", rm, "of shell (median of pairs)", ">= 0.8x shell", rm >= 0.8)
        self.row("3", "agent peak RSS during it (VmHWM)", hwm / 1024.0, "MB", None, "", None, "",
                 "< 32 MB", hwm < 32 * 1024)

    # ---- part 4: memory -------------------------------------------------------------------
    def part4(self):
        P, node = "b4", "bench-4"
        # idle
        a = self.agent(node, P)
        time.sleep(1.0)
        idle = proc_status_kb(a.pid, "VmRSS")
        idle_anon = proc_status_kb(a.pid, "RssAnon")
        idle_libs = rss_of_mappings(a.pid, ("libcrypto", "libssl"))
        self.stop_agent(a)
        # baseline: a Go etcd client (etcdctl) watching the same prefix, idle
        env = dict(os.environ, ETCDCTL_API="3")
        p = subprocess.Popen(["etcdctl", "--endpoints", self.etcd.url, "watch", "--prefix",
                              self.steps_prefix(P)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.extra_pids.append(p.pid)
        time.sleep(1.0)
        go_idle = proc_status_kb(p.pid, "VmRSS")
        p.kill()
        p.wait()
        self.extra_pids.remove(p.pid)
        self.row("4", "RSS idle", idle / 1024.0, "MB", go_idle / 1024.0,
                 "etcdctl watch (Go client), idle", idle / go_idle, "x Go client", "< 4 MB",
                 idle < 4 * 1024,
                 note="of which anonymous %.2f MB; OpenSSL's mapped pages %.2f MB"
                      % (idle_anon / 1024.0, idle_libs / 1024.0))

        # after listing N of its own completed steps + N of other nodes
        sp = self.steps_prefix(P)
        items = []
        for i in range(N_MEM_LIST):
            items.append((sp + "own%05d" % i, reference_step("own%05d" % i, node)))
            items.append((sp + "oth%05d" % i, reference_step("oth%05d" % i, "other-%d" % (i % 10))))
        self.gw.put_many(items)
        a = self.agent(node, P)
        time.sleep(0.5)
        listed = proc_status_kb(a.pid, "VmRSS")
        listed_hwm = proc_status_kb(a.pid, "VmHWM")
        cache = re.findall(r"step cache ready: (\d+) steps", a.stderr_text()[a.ready_from:])
        self.stop_agent(a)
        _, go_list_kb, _ = self.etcdctl(["get", "--prefix", sp])
        self.details["4"] = {"idle_kb": idle, "idle_anon_kb": idle_anon,
                             "idle_openssl_kb": idle_libs, "go_idle_kb": go_idle,
                             "listed_kb": listed,
                             "listed_hwm_kb": listed_hwm, "cache_ready": cache,
                             "etcdctl_get_maxrss_kb": go_list_kb}
        self.row("4", "RSS after listing %d own + %d other completed steps" % (N_MEM_LIST, N_MEM_LIST),
                 listed / 1024.0, "MB", go_list_kb / 1024.0, "etcdctl get --prefix (Go), peak",
                 listed / go_list_kb, "x Go client", "< 16 MB", listed < 16 * 1024,
                 note="agent peak during the list (VmHWM) %.1f MB" % (listed_hwm / 1024.0))

        # N `sleep 30` steps running at once
        P2 = "b4s"
        self.put_action(P2, "sleep", "sleep,30")
        a = self.agent(node, P2, ["--max-parallel", str(max(N_MEM_SLEEP, 16))])
        w, seen, counts = self.watch_statuses(P2)
        sp2 = self.steps_prefix(P2)
        kids = []
        try:
            self.gw.put_many([(sp2 + "s%04d" % i, user_step("s%04d" % i, node, "sleep@v1"))
                              for i in range(N_MEM_SLEEP)], per_txn=200)
            self.loop.run_until(lambda: counts.get("RUNNING", 0) >= N_MEM_SLEEP, 120,
                                "%d sleeps RUNNING" % N_MEM_SLEEP)
            deadline = time.time() + 30
            while time.time() < deadline:
                kids = self.children_of(a.pid)
                if len(kids) >= N_MEM_SLEEP:
                    break
                time.sleep(0.1)
            time.sleep(1.0)
            running = proc_status_kb(a.pid, "VmRSS")
            nkids = len(self.children_of(a.pid))
            # delete the keys: the agent stops the steps and writes nothing
            self.gw.delete_prefix(sp2)
            deadline = time.time() + 30
            while self.children_of(a.pid) and time.time() < deadline:
                self.loop.step(0.1)
        finally:
            for k in kids:  # anything the agent did not stop
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass
        w.close()
        self.stop_agent(a)
        self.clean_etcd("%s/" % P)
        self.details["4"].update({"running_kb": running, "running_children": nkids})
        gitlab = 50 + 2.5 * N_MEM_SLEEP
        self.row("4", "RSS with %d `sleep 30` steps running" % N_MEM_SLEEP, running / 1024.0, "MB",
                 None, "", None, "", "< 24 MB", running < 24 * 1024,
                 note="%d children seen; reference (not measured): GitLab sizing %.0f MB, "
                      "Go agents ~30 MB idle" % (nkids, gitlab))

    # ---- part 5: re-list at scale ---------------------------------------------------------
    def part5(self):
        P, node = "b5", "bench-5"
        own = self.relist_fill(P, node, N_RELIST)
        sp = self.steps_prefix(P)
        # floors: the gateway's own paginated list (pages of 1000, pinned
        # revision, values not even decoded) and the Go client (etcdctl, gRPC)
        gw_floor, floor, go_kb = [], [], []
        for _ in range(3):
            dt, nbytes, pages = self.gw.list_floor(sp, 1000)
            gw_floor.append(dt)
            dt, kb, _ = self.etcdctl(["get", "--prefix", sp])
            floor.append(dt)
            go_kb.append(kb)
        # start-up list
        startup, hwm_start, startup_cpu = [], [], []
        for r in range(3):
            dt, cpu, hwm = self.relist_startup(P, node, own)
            startup.append(dt)
            startup_cpu.append(cpu)
            hwm_start.append(hwm)
        resync, hwm_resync = self.relist_resync(P, node, 6)
        gm, fm, sm, rm = median(gw_floor), median(floor), median(startup), median(resync)
        hwm = max(hwm_start + [hwm_resync])
        self.details["5"] = {"n": N_RELIST, "own": own, "gateway_list_s": gw_floor,
                             "gateway_list_bytes": nbytes, "gateway_list_pages": pages,
                             "etcdctl_s": floor, "etcdctl_maxrss_kb": go_kb,
                             "startup_s": startup, "startup_cpu_s": startup_cpu,
                             "startup_vmhwm_kb": hwm_start,
                             "resync_s": resync, "resync_vmhwm_kb": hwm_resync}
        # 2 s sits below what the gateway itself needs here: read it as a
        # ratio to that floor (docs/protocol.md §2), at most 1.5x.
        for what, v in (("start-up", sm), ("--resync", rm)):
            self.row("5", "re-list at %s (%d steps, %d ours)" % (what, N_RELIST, own), v, "s", gm,
                     "gateway paged list, values unread", v / gm, "x floor",
                     "< 2 s, or <= 1.5x floor when 2 s is below it",
                     v < 2.0 or (gm * 1.5 >= 2.0 and v / gm <= 1.5),
                     note="etcdctl (gRPC) %.2f s: %.1fx%s" % (
                         fm, v / fm, "; agent CPU for it %.2f s" % median(startup_cpu)
                         if what == "start-up" else ""))
        self.row("5", "agent peak RSS over the re-lists (VmHWM)", hwm / 1024.0, "MB",
                 median(go_kb) / 1024.0, "etcdctl get peak RSS", hwm / median(go_kb),
                 "x Go client", "< 32 MB", hwm < 32 * 1024)
        self.clean_etcd("%s/" % P)

    def relist_fill(self, P, node, n):
        """Part 5's steps (also part 13's): n completed Go-format steps under
        P, 1 % of them node's; returns how many are node's."""
        sp = self.steps_prefix(P)
        own = 0
        t = now()
        batch = []
        for i in range(n):
            k = "ns1.s%06d" % i
            nd = node if i % 100 == 0 else "other-%d" % (i % 97)
            own += nd == node
            batch.append((sp + k, reference_step(k, nd, "SUCCEEDED" if i % 3 else "FAILED")))
            if len(batch) == 5000:
                self.gw.put_many(batch)
                batch = []
        if batch:
            self.gw.put_many(batch)
        log("  wrote %d steps (%d of %s) in %.1fs", n, own, node, now() - t)
        return own

    def relist_startup(self, P, node, own, args=(), url=None):
        """Part 5's start-up list: an agent started on P's steps, from exec
        to "step cache ready" (which must count own steps).  Returns
        (seconds, the agent's CPU seconds by then, its VmHWM kB); the agent
        is stopped."""
        t0 = now()
        a = self.agent(node, P, args, ready=False, url=url)
        self.wait_ready(a, 300, poll=0.001)
        dt = now() - t0
        cpu = cpu_seconds(a.pid)
        cache = re.findall(r"step cache ready: (\d+) steps", a.stderr_text()[a.ready_from:])
        hwm = proc_status_kb(a.pid, "VmHWM")
        self.stop_agent(a)
        if not cache or int(cache[-1]) != own:
            raise PartError("step cache ready says %s, want %d" % (cache, own))
        return dt, cpu, hwm

    def relist_resync(self, P, node, want, args=(), url=None):
        """Part 5's re-list under --resync 1: the informer logs "watch on P
        is live" (debug) at the end of every list; consecutive lines are
        1 s + one list apart.  Runs one agent until it has logged want such
        lines; returns (the re-lists' seconds, the first interval skipped
        as start-up, and the agent's VmHWM kB); the agent is stopped."""
        sp = self.steps_prefix(P)
        a = self.agent(node, P, ["--resync", "1", "--log-level", "debug"] + list(args),
                       ready=True, timeout=300, url=url)
        deadline = time.time() + 120
        pat = re.compile(r"^(\S+) debug watch on %s is live" % re.escape(sp), re.M)
        while time.time() < deadline:
            stamps = pat.findall(a.stderr_text()[a.ready_from:])
            if len(stamps) >= want:
                break
            time.sleep(0.2)
        hwm = proc_status_kb(a.pid, "VmHWM")
        self.stop_agent(a)
        stamps = [parse_stamp(s) for s in pat.findall(a.stderr_text()[a.ready_from:])]
        resync = [b - a_ - 1.0 for a_, b in zip(stamps, stamps[1:])][1:]  # skip start-up
        if not resync:
            raise PartError("no re-list seen with --resync 1")
        return resync, hwm

    # ---- part 6: docker --------------------------------------------------------------------
    def part6(self):
        import docker as dk  # test/harness/docker.py
        if not dk.available():
            why = "dockerd or busybox-static not installed"
            self.details["6"] = {"skipped": why}
            self.row("6", "docker step vs docker run --rm", None, "", None, "", None, "",
                     "<= 1.1x", None, note="skipped: " + why)
            return
        self.engine_part("6", dk.Dockerd(state_dir=tempfile.mkdtemp(prefix="wfb-", dir="/tmp"),
                                          registry=False),
                         "b6", "bench-6", "docker", lambda d: ["docker", "-H", d.host], "docker")

    # ---- part 10: the DOCKER runner on Podman -----------------------------------------------
    def part10(self):
        """Part 6 on Podman (Debian's podman 4.3.1, `podman system service`
        from test/harness/podman-up.sh, rootful, vfs): a `true` step and
        DOCKER_LOG_MIB of output through the agent, against `podman run` on
        the same private instance in the same run (the CLI is daemonless: it
        runs the container itself, attached through conmon like the
        service)."""
        import docker as dk  # test/harness/docker.py
        if not dk.available("podman"):
            why = "podman or busybox-static not installed"
            self.details["10"] = {"skipped": why}
            self.row("10", "docker step on Podman vs podman run --rm", None, "", None, "", None,
                     "", "<= 1.1x", None, note="skipped: " + why)
            return
        # The podman CLI on the same storage, in the instance's mount namespace
        # (podman-up.sh writes this wrapper: nsenter + flags).
        self.engine_part("10", dk.Dockerd(state_dir=tempfile.mkdtemp(prefix="wfbp-", dir="/tmp"),
                                           registry=False, engine="podman"),
                         "b10", "bench-10", "podman", lambda d: [os.path.join(d.dir, "pm")],
                         "podman", on=" on Podman")

    def engine_part(self, part, d, P, node, what, cli_of, cli_name, on=""):
        """Parts 6 and 10: a `true` step and DOCKER_LOG_MIB of output through
        the agent on engine d (started here, cleaned up at the end), against
        the engine's own CLI (cli_of(d): its argv prefix) on the same
        instance, interleaved in one run."""
        import docker as dk  # test/harness/docker.py
        size = DOCKER_LOG_MIB << 20
        d.owns_dir = True
        try:
            d.start(timeout=300)
            img = d.image
            for name, argv in (("etrue", ["true"]),
                               ("edump", ["head", "-c", str(size), "/dev/zero"])):
                self.gw.call("kv/put", {"key": b64("%s/workflow/actions/%s@v1" % (P, name)),
                                        "value": b64(dumps(dk.docker_action(name, argv, image=img)))})
            a = self.agent(node, P, ["--docker-host", d.host])
            w, seen, _ = self.watch_statuses(P)
            sp = self.steps_prefix(P)
            cli = cli_of(d)
            logdir = os.path.join(self.tmp, "logs", node)

            def step(key, action):
                t0 = now()
                self.gw.call("kv/put", {"key": b64(sp + key),
                                        "value": b64(dumps(user_step(key, node, action)))})
                self.loop.run_until(lambda: any(s in seen.get(sp + key, ()) for s in FINAL), 600,
                                    "%s step %s" % (what, key))
                dd = seen[sp + key]
                if "SUCCEEDED" not in dd:
                    raise PartError("%s step %s: %s\n%s" % (what, key, sorted(dd), a.stderr_tail()))
                return dd["SUCCEEDED"] - t0, dd["SUCCEEDED"] - dd["RUNNING"]

            subprocess.run(cli + ["run", "--rm", img, "true"], check=True,
                           stdout=subprocess.DEVNULL)  # warm-up
            step("warm", "etrue@v1")
            agent_true, cli_true = [], []
            for i in range(DOCKER_REPS):
                t = now()
                subprocess.run(cli + ["run", "--rm", img, "true"], check=True,
                               stdout=subprocess.DEVNULL)
                cli_true.append(now() - t)
                agent_true.append(step("t%d" % i, "etrue@v1")[0])
            agent_log, cli_log = [], []
            out = os.path.join(self.tmp, "logs", "%s-cli.out" % what)
            for i in range(DOCKER_LOG_REPS):
                t = now()
                with open(out, "wb") as f:
                    subprocess.run(cli + ["run", "--rm", img, "head", "-c", str(size), "/dev/zero"],
                                   check=True, stdout=f)
                cli_log.append(now() - t)
                got = os.path.getsize(out)
                os.unlink(out)
                if got != size:
                    raise PartError("%s CLI wrote %d bytes, not %d" % (what, got, size))
                key = "log%d" % i
                agent_log.append(step(key, "edump@v1")[1])
                path = None
                for root, _, files in os.walk(logdir):
                    if key in files:
                        path = os.path.join(root, key)
                got = os.path.getsize(path) if path else -1
                if got != size:
                    raise PartError("%s step log holds %d bytes, not %d" % (what, got, size))
                os.unlink(path)
            hwm = proc_status_kb(a.pid, "VmHWM")
            w.close()
            self.stop_agent(a)
        finally:
            d.cleanup()
        at, ct = median(agent_true), median(cli_true)
        al, cl = median(agent_log), median(cli_log)
        self.details[part] = {"reps": DOCKER_REPS, "agent_true_s": agent_true,
                              "cli_true_s": cli_true, "log_mib": DOCKER_LOG_MIB,
                              "agent_log_s": agent_log, "cli_log_s": cli_log,
                              "agent_vmhwm_kb": hwm}
        self.row(part, "docker `true` step%s, put -> SUCCEEDED" % on, ms(at), "ms", ms(ct),
                 "%s run --rm IMAGE true (CLI)" % cli_name, at / ct, "x CLI", "<= 1.1x CLI",
                 at / ct <= 1.1)
        self.row(part, "docker log throughput%s (%d MiB, attached)" % (on, DOCKER_LOG_MIB),
                 DOCKER_LOG_MIB / al, "MiB/s", DOCKER_LOG_MIB / cl,
                 "%s run ... > file (CLI)" % cli_name, cl / al, "x CLI", ">= 1.0x CLI",
                 cl / al >= 1.0, note="agent peak RSS %.1f MB" % (hwm / 1024.0))

    # ---- part 11: 50 followers of one 1 GiB LOCAL step ------------------------------------------
    def part11(self):
        """A LOCAL step writes FOLLOW_MIB to stdout (part 3's `head -c`) with
        no follower, then the same step with FOLLOWERS clients following its
        log on --listen (docs/protocol.md §6.1: GET /v1/steps/<key>/log?
        follow=1, chunked, bearer token), each a process of its own
        (bench/follow_reader.py) started the moment the watch shows the step
        RUNNING.  The step's MiB/s (RUNNING -> SUCCEEDED, as part 3) against
        the step without followers run just before and just after it on the
        same agent; every follower's bytes and sha256 against the file; the
        agent's peak RSS, sampled every 5 ms and its VmHWM."""
        P, node = "b11", "bench-11"
        size = FOLLOW_MIB << 20
        on_disk = os.environ.get("BENCH_LOG_DISK") == "1"
        root = os.path.join(self.tmp, "logs") if on_disk else \
            tempfile.mkdtemp(prefix="wf-bench-logs-", dir="/dev/shm")
        logdir = os.path.join(root, node)
        port = free_port()
        tok = os.path.join(self.tmp, "listen-token")
        with open(tok, "w") as f:
            f.write("bench-11-%d\n" % os.getpid())
        reader_py = os.path.join(HERE, "follow_reader.py")
        readers = []
        try:
            self.put_action(P, "dump", "head,-c,%d,/dev/zero" % size)
            a = self.agent(node, P, ["--listen", "127.0.0.1:%d" % port,
                                     "--listen-token-file", tok], log_dir=logdir)
            w, seen, _ = self.watch_statuses(P)
            sp = self.steps_prefix(P)

            def log_file(key):
                for dirpath, _, files in os.walk(logdir):
                    if key in files:
                        return os.path.join(dirpath, key)
                return None

            def run_step(key, on_running=None):
                full = sp + key
                self.gw.call("kv/put", {"key": b64(full),
                                        "value": b64(dumps(user_step(key, node, "dump@v1")))})
                if on_running:
                    self.loop.run_until(lambda: "RUNNING" in seen.get(full, ()) or
                                        any(s in seen.get(full, ()) for s in FINAL), 60,
                                        "the log step to run")
                    on_running()
                self.loop.run_until(lambda: any(s in seen.get(full, ()) for s in FINAL), 900,
                                    "the log step")
                d = seen[full]
                if "SUCCEEDED" not in d or "RUNNING" not in d:
                    raise PartError("log step %s: %s\n%s" % (key, sorted(d), a.stderr_tail()))
                return d["RUNNING"], d["SUCCEEDED"]

            def alone(key):
                c0 = cpu_seconds(a.pid), child_cpu(a.pid)
                t_run, t_ok = run_step(key)
                alone_cpu.append((cpu_seconds(a.pid) - c0[0], child_cpu(a.pid) - c0[1]))
                path = log_file(key)
                got = os.path.getsize(path) if path else -1
                if got != size:
                    raise PartError("log file of %s holds %d bytes, not %d" % (key, got, size))
                os.unlink(path)
                return t_ok - t_run

            alone_cpu = []  # (agent, step's process) CPU seconds of each step alone
            alone_s = [alone("a0")]
            reps = []
            for r in range(FOLLOW_REPS):
                reps.append(self._followed(a, run_step, log_file, "f%d" % r, size, port, tok,
                                           reader_py, readers))
                alone_s.append(alone("a%d" % (r + 1)))
            hwm = proc_status_kb(a.pid, "VmHWM")
            w.close()
            self.stop_agent(a)
        finally:
            for p in readers:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                if p.pid in self.extra_pids:
                    self.extra_pids.remove(p.pid)
            if not on_disk:
                shutil.rmtree(root, ignore_errors=True)
        for i, rp in enumerate(reps):
            rp["alone_s"] = (alone_s[i] + alone_s[i + 1]) / 2
            rp["ratio"] = rp["alone_s"] / rp["step_s"]
        rm = median([rp["ratio"] for rp in reps])
        fs, base = median([rp["step_s"] for rp in reps]), median([rp["alone_s"] for rp in reps])
        peak = max(rp["rss_peak_kb"] for rp in reps)
        last = reps[-1]
        self.details["11"] = {"mib": FOLLOW_MIB, "followers": FOLLOWERS, "hash": FOLLOW_HASH,
                              "on": "disk" if on_disk else "tmpfs", "alone_s": alone_s,
                              "alone_cpu_s": alone_cpu, "reps": reps, "agent_vmhwm_kb": hwm}
        self.row("11", "step log throughput with %d followers (%d MiB LOCAL step, log dir on %s)"
                 % (FOLLOWERS, FOLLOW_MIB, "disk" if on_disk else "tmpfs"), FOLLOW_MIB / fs,
                 "MiB/s", FOLLOW_MIB / base, "the same step, no follower (before and after)", rm,
                 "of no follower", ">= 0.8x", rm >= 0.8,
                 note="%d/%d followers had their head before the step ended; during the step the "
                      "agent used %.2f s CPU (loop %.2f, threadpool %.2f), the step's process %.2f s; "
                      "alone: agent %.2f s, step %.2f s"
                      % (last["heads_while_running"], FOLLOWERS, last["agent_cpu_step"]["total"],
                         last["agent_cpu_step"]["main"], last["agent_cpu_step"]["pool"],
                         last["child_cpu_step"], median([c[0] for c in alone_cpu]),
                         median([c[1] for c in alone_cpu])))
        ok = all(rp["complete"] == FOLLOWERS for rp in reps)
        self.row("11", "followers complete: bytes%s equal to the file" %
                 (" and sha256" if FOLLOW_HASH else ""), last["complete"], "of %d" % FOLLOWERS,
                 None, "", None, "", "all", ok,
                 note="last follower done %.1f s after the step ended (%.0f MiB/s served in all, "
                      "go -> last follower done); followers' CPU %.1f s, agent's %.1f s (loop %.1f, "
                      "threadpool %.1f) from RUNNING to the last follower"
                      % (last["last_done_after_s"], last["served_mib_s"], last["readers_cpu"],
                         last["agent_cpu_all"]["total"], last["agent_cpu_all"]["main"],
                         last["agent_cpu_all"]["pool"]))
        self.row("11", "agent peak RSS with %d followers (VmRSS sampled every 5 ms)" % FOLLOWERS,
                 peak / 1024.0, "MB", None, "", None, "", "< 32 MB", peak < 32 * 1024,
                 note="VmHWM over the whole part %.1f MB" % (hwm / 1024.0))

    def _followed(self, a, run_step, log_file, key, size, port, tok, reader_py, readers):
        """One step with FOLLOWERS followers (part 11); returns its figures."""
        import hashlib
        import threading
        mine = []
        for i in range(FOLLOWERS):
            p = subprocess.Popen([sys.executable, reader_py, str(port), key, tok,
                                  str(FOLLOW_HASH)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)
            readers.append(p)
            mine.append(p)
            self.extra_pids.append(p.pid)
        for p in mine:
            if p.stdout.readline().strip() != b"ready":
                raise PartError("a follower did not start")
        peak = [0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], proc_status_kb(a.pid, "VmRSS"))
                stop.wait(0.005)
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t_go = [None]
        cpu = {}

        def cpu_now():
            sp_ = cpu_split(a.pid)
            return {"main": sum(sp_["main"]), "pool": sum(sp_["pool"]), "child": child_cpu(a.pid)}

        def go():
            t_go[0] = now()
            for p in mine:
                p.stdin.write(b"go\n")
                p.stdin.flush()
            cpu["run"] = cpu_now()
        c0 = cpu_now()
        t_run, t_ok = run_step(key, go)
        cpu["ok"] = cpu_now()
        res = []
        try:
            for p in mine:
                out, _ = p.communicate(timeout=max(60, 900 - (now() - t_go[0])))
                res.append(json.loads(out.decode().strip().splitlines()[-1]))
                self.extra_pids.remove(p.pid)
        except subprocess.TimeoutExpired:
            raise PartError("followers still reading after 900 s")
        finally:
            cpu["end"] = cpu_now()
            stop.set()
            th.join()
        path = log_file(key)
        got = os.path.getsize(path) if path else -1
        if got != size:
            raise PartError("log file of %s holds %d bytes, not %d" % (key, got, size))
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        want = h.hexdigest()
        os.unlink(path)
        bad = [r for r in res if r["status"] != 200 or r["bytes"] != size or not r["complete"] or
               (FOLLOW_HASH and r["sha256"] != want)]
        if bad:
            log("  part 11: %d followers incomplete, e.g. %s", len(bad), bad[0])
        t_last = max(r["t_end"] for r in res)

        def d(x, y):
            return {"main": y["main"] - x["main"], "pool": y["pool"] - x["pool"],
                    "total": y["main"] - x["main"] + y["pool"] - x["pool"]}
        return {"step_s": t_ok - t_run, "t_go_after_running_ms": ms(t_go[0] - t_run),
                "heads_while_running": sum(1 for r in res if r["t_head"] < t_ok),
                "complete": FOLLOWERS - len(bad), "bad": bad[:3],
                "last_done_after_s": t_last - t_ok,
                "served_mib_s": FOLLOWERS * (size >> 20) / (t_last - t_go[0]),
                "follower_s": summary([r["t_end"] - r["t_go"] for r in res]),
                "readers_cpu": sum(sum(r["cpu"]) for r in res),
                "agent_cpu_step": d(cpu["run"], cpu["ok"]),
                "child_cpu_step": cpu["ok"]["child"] - c0["child"],
                "agent_cpu_all": d(cpu["run"], cpu["end"]),
                "rss_peak_kb": peak[0]}

    # ---- part 12: does compressing finished logs pay? --------------------------------------------
    def part12(self):
        """zlib (Debian's libz through Python's zlib module) on five log
        corpora (bench/logcorpus.py) at levels 1, 6 and 9: size ratio,
        compress and inflate MB/s per CPU second, fed 64 KiB at a time as
        the log store gets output; then what serving the last 1 MiB of a
        ZLIB_SERVE_MIB log costs when the file is one gzip stream (inflate
        from byte 0: offset=, tail= and Range all need it), when it is
        compressed in 1 MiB blocks with a full flush and an index, and when
        it is plain (open + pread), at level 1, files on tmpfs, median of 3."""
        import logcorpus as lc
        size = ZLIB_MIB << 20
        cache = os.path.join(BUILD, "bench", "corpus-build.log")
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        res = {}
        for name in ("build", "docker", "tests", "base64", "x"):
            data = lc.corpus(name, size, BUILD, cache)
            res[name] = {}
            for level in (1, 6, 9):
                z, c_cpu, _ = lc.compress(data, level)
                d_cpu = lc.decompress_cpu(z, size)
                mb = size / 1e6
                r = {"ratio": size / len(z), "compress_mb_s": mb / c_cpu,
                     "inflate_mb_s": mb / d_cpu, "core_pct_per_mb_s": 100.0 * c_cpu / mb}
                res[name][level] = r
                real = name in ("build", "docker", "tests")
                ok = r["ratio"] >= 3 and r["core_pct_per_mb_s"] <= 2.0
                self.row("12", "zlib -%d, %s log (%d MiB): size ratio" % (level, name, ZLIB_MIB),
                         r["ratio"], "x smaller", None, "", None, "",
                         ">= 3x at <= 2 % of a core per MB/s" if real else "(report)",
                         ok if real else None,
                         note="compress %.0f MB/s = %.2f %% of a core per MB/s logged; "
                              "inflate %.0f MB/s" % (r["compress_mb_s"], r["core_pct_per_mb_s"],
                                                    r["inflate_mb_s"]))
            del data
        serve = {}
        # Level 1: the one at which all three realistic corpora meet the
        # disk and CPU criteria (docs/benchmarks.md, part 12).
        SERVE_LEVEL = 1
        big = ZLIB_SERVE_MIB << 20
        want = 1 << 20
        d = tempfile.mkdtemp(prefix="wf-bench-zlib-", dir="/dev/shm")
        try:
            for name in ("tests", "build"):
                data = lc.corpus(name, big, BUILD, cache)
                plain = os.path.join(d, "plain")
                with open(plain, "wb") as f:
                    f.write(data)
                z, c_cpu, _ = lc.compress(data, SERVE_LEVEL)
                zs = os.path.join(d, "stream.gz")
                with open(zs, "wb") as f:
                    f.write(z)
                zb, cb_cpu, index = lc.compress(data, SERVE_LEVEL, block=1 << 20)
                zbp = os.path.join(d, "blocked.gz")
                with open(zbp, "wb") as f:
                    f.write(zb)
                tail = data[big - want:]
                del data
                t_plain, t_stream, t_block = [], [], []
                for _ in range(3):
                    for fn, out in ((lambda: lc.serve_plain(plain, big - want, want), t_plain),
                                    (lambda: lc.serve_stream(zs, big - want, want), t_stream),
                                    (lambda: lc.serve_blocked(zbp, index, big - want, want),
                                     t_block)):
                        dt, got = fn()
                        if got != tail:
                            raise PartError("serving the last MiB of %s gave other bytes" % name)
                        out.append(dt)
                serve[name] = {"stream_ratio": big / len(z), "blocked_ratio": big / len(zb),
                               "stream_compress_cpu_s": c_cpu, "blocked_compress_cpu_s": cb_cpu,
                               "plain_s": t_plain, "stream_s": t_stream, "blocked_s": t_block,
                               "index_entries": len(index)}
                for f in (plain, zs, zbp):
                    os.unlink(f)
                p, s, b = median(t_plain), median(t_stream), median(t_block)
                self.row("12", "last 1 MiB of a %d MiB %s log, one gzip stream (-%d)"
                         % (ZLIB_SERVE_MIB, name, SERVE_LEVEL), ms(s), "ms", ms(p), "plain file: open + pread",
                         s / p, "x plain", "<= 50 ms at any offset", ms(s) <= 50,
                         note="inflates the whole file first; %.1fx smaller" % (big / len(z)))
                self.row("12", "last 1 MiB of a %d MiB %s log, 1 MiB blocks (full flush + index, -%d)"
                         % (ZLIB_SERVE_MIB, name, SERVE_LEVEL), ms(b), "ms", ms(p), "plain file: open + pread",
                         b / p, "x plain", "<= 50 ms at any offset", ms(b) <= 50,
                         note="%.1fx smaller (one stream: %.1fx); %d index entries"
                              % (big / len(zb), big / len(z), len(index)))
        finally:
            shutil.rmtree(d, ignore_errors=True)
        self.details["12"] = {"mib": ZLIB_MIB, "zlib": lc.zlib.ZLIB_RUNTIME_VERSION,
                              "levels": res, "serve_mib": ZLIB_SERVE_MIB,
                              "serve_level": SERVE_LEVEL, "serve": serve}

    # ---- part 13: HTTP/2 against HTTP/1.1 to etcd over TLS ----------------------------------
    H2_MODES = ("off", "auto")   # --etcd-http2; "auto" is HTTP/2 (ALPN h2) on etcd 3.4

    def h2_teardown(self, watches, samplers, agents):
        """Part 13's measures end alike: their watch streams closed, their
        connection samplers stopped, their agents stopped."""
        for m in watches:
            watches[m][0].close()
        for m in samplers:
            samplers[m].stop()
        for a in agents.values():
            self.stop_agent(a)

    @staticmethod
    def h2_order(i):
        """The two modes, first one then the other: repetition i of an
        interleaved measure runs them in this order (off first on even i)."""
        return Bench.H2_MODES if i % 2 == 0 else Bench.H2_MODES[::-1]

    def part13(self):
        """Parts 1, 2 (with the connections counted), 5 and 7's 50-agent point
        with the agents on etcd's https listener (client certificates), once
        with --etcd-http2 off (HTTP/1.1: a keep-alive pool, a connection
        per concurrent request and per watch) and once with auto (HTTP/2:
        one connection), interleaved repetition by repetition on the same
        etcd.  Each row: HTTP/2's figure, HTTP/1.1's as the baseline, the
        ratio h2/h1."""
        if not self.pem:
            raise PartError("no TLS listener for etcd: %s" % self.tls_error)
        url, port = self.etcd.tls_url, self.etcd.tls_port
        self.details["13"] = {"url": url}
        try:
            self._h2_dispatch(url, port)
            self._h2_burst(url, port)
            self._h2_relist(url)
            self._h2_many(url, port)
        finally:
            issues = self.h2_stderr_check()
            self.details["13"]["stderr"] = issues
        bad = {m: v for m, v in issues.items() if v["warn_error_lines"] or v["problems"]}
        for m, v in bad.items():
            for l in v["problems"] + v["warn_error_lines"][:20]:
                log("  part 13 (%s): %s", m, l)
        a, o = issues["auto"], issues["off"]
        nlines = sum(len(v["warn_error_lines"]) for v in issues.values())
        self.row("13", "agent starts with auto that logged \"HTTP/2 (ALPN h2)\"", a["h2_said"],
                 "of %d" % a["starts"], target="all with auto, none with off, no warn/error",
                 met=not bad and a["h2_said"] == a["starts"] > 0,
                 note="with off: %d of %d; warn/error lines: %d (without Docker's %d)%s"
                 % (o["h2_said"], o["starts"], nlines,
                    sum(v["no_docker_warnings"] for v in issues.values()),
                    "".join("; %s: %s" % (m, (v["problems"] + v["warn_error_lines"])[0][:160])
                            for m, v in bad.items())))

    def h2_row(self, figure, res, key, unit, target="(report)", met=None, note=""):
        """A row of part 13: res[mode][key] for auto as the value, for off as
        the baseline, the ratio h2/h1."""
        h2, h1 = res["auto"][key], res["off"][key]
        return self.row("13", figure, h2, unit, h1, "HTTP/1.1 (--etcd-http2 off)",
                        h2 / h1 if h1 else None, "x h1 (h2/h1)", target, met, note=note)

    def _h2_dispatch(self, url, port):
        """Part 1 on the two modes: two agents (one per mode, each its own
        prefix, so that the other's steps never reach it), the steps
        alternating between them one by one."""
        agents, watches, samplers = {}, {}, {}
        try:
            for m in self.H2_MODES:
                P, node = "b13d-" + m, "bench-13d-" + m
                self.put_action(P, "true", "true")
                samplers[m] = ConnSampler(port)
                agents[m] = self.agent(node, P, self.tls_args(m), ready=False, url=url)
                samplers[m].add(agents[m].pid)
                self.wait_ready(agents[m])
                watches[m] = self.watch_statuses(P)
            res = {m: {"floor": [], "running": [], "succeeded": []} for m in self.H2_MODES}
            for i in range(10):  # warm-up, as part 1
                for m in self.H2_MODES:
                    self.dispatch_step(agents[m], watches[m][1], "b13d-" + m, agents[m].name,
                                       "w%05d" % i)
            for i in range(H2_DISPATCH_N):
                for m in self.h2_order(i):
                    f, r, s = self.dispatch_step(agents[m], watches[m][1], "b13d-" + m,
                                                 agents[m].name, "d%05d" % i)
                    res[m]["floor"].append(f)
                    res[m]["running"].append(r)
                    res[m]["succeeded"].append(s)
        finally:
            self.h2_teardown(watches, samplers, agents)
        for m in self.H2_MODES:
            x = res[m]
            x.update({"running_p50": percentile(x["running"], 50),
                      "running_p99": percentile(x["running"], 99),
                      "succeeded_p50": percentile(x["succeeded"], 50),
                      "succeeded_p99": percentile(x["succeeded"], 99),
                      "conns": samplers[m].figures()})
        floor = res["off"]["floor"] + res["auto"]["floor"]
        self.details["13"]["dispatch"] = {
            "n": H2_DISPATCH_N, "floor_ms": summary(floor),
            **{m: {"running_ms": summary(res[m]["running"]),
                   "succeeded_ms": summary(res[m]["succeeded"]),
                   "conns": res[m]["conns"]} for m in self.H2_MODES}}
        fl = "put -> watch event on the plain listener p50 %.2f / p99 %.2f ms" % (
            percentile(floor, 50), percentile(floor, 99))
        c = {m: res[m]["conns"] for m in self.H2_MODES}
        self.h2_row("put -> RUNNING p50, over TLS (%d steps each, alternating)" % H2_DISPATCH_N,
                    res, "running_p50", "ms", note=fl)
        self.h2_row("put -> RUNNING p99, over TLS", res, "running_p99", "ms",
                    note="connections while one step at a time runs, at most at once: h2 %d, "
                         "h1 %d" % (c["auto"]["max_at_once"], c["off"]["max_at_once"]))
        self.h2_row("put -> SUCCEEDED p50 (LOCAL true), over TLS", res, "succeeded_p50", "ms")
        self.h2_row("put -> SUCCEEDED p99 (LOCAL true), over TLS", res, "succeeded_p99", "ms")

    def _h2_burst(self, url, port):
        """Part 2 on the two modes, with the agents' connections to etcd's
        https port sampled every 20 ms from their start: two agents with
        --max-parallel 32 (one per mode, each its own prefix), H2_BURST_REPS
        rounds each, alternating."""
        agents, watches, samplers, reps = {}, {}, {}, {m: [] for m in self.H2_MODES}
        with self.burst_log_root() as (root, on_disk):
            try:
                for m in self.H2_MODES:
                    P, node = "b13b-" + m, "bench-13b-" + m
                    self.put_action(P, "true", "true")
                    samplers[m] = ConnSampler(port)
                    agents[m] = self.agent(node, P, ["--max-parallel", "32"] + self.tls_args(m),
                                           ready=False, url=url, log_dir=os.path.join(root, node))
                    samplers[m].add(agents[m].pid)
                    self.wait_ready(agents[m])
                    watches[m] = self.watch_statuses(P)
                for r in range(H2_BURST_REPS):
                    for m in self.h2_order(r):
                        reps[m].append(self.burst(agents[m], "b13b-" + m, agents[m].name,
                                                  "r%d-" % r, H2_BURST_N, watches[m][1],
                                                  watches[m][2]))
                failed = {m: watches[m][2].get("FAILED", 0) + watches[m][2].get("CANCELED", 0)
                          for m in self.H2_MODES}
                rss = {m: proc_status_kb(agents[m].pid, "VmRSS") for m in self.H2_MODES}
            finally:
                self.h2_teardown(watches, samplers, agents)
        res = {m: {"rate": median([x["rate"] for x in reps[m]]),
                   "cpu_ms": median([x["cpu_ms"] for x in reps[m]]),
                   "etcd_ms": median([x["etcd_ms"] for x in reps[m]]),
                   "conns": samplers[m].figures(), "rss_kb": rss[m]} for m in self.H2_MODES}
        for m in self.H2_MODES:
            res[m]["max_at_once"] = res[m]["conns"]["max_at_once"]
        self.details["13"]["burst"] = {"n": H2_BURST_N, "reps": reps, "failed": failed,
                                       "log_dir_on": "disk" if on_disk else "tmpfs",
                                       **{m: public(res[m]) for m in self.H2_MODES}}
        if any(failed.values()):
            raise PartError("burst: steps did not succeed: %s" % failed)
        c = {m: res[m]["conns"] for m in self.H2_MODES}
        self.h2_row("connections per agent to etcd's TLS port, most at once (a burst of %d "
                    "steps, --max-parallel 32; sampled every 20 ms from exec)" % H2_BURST_N,
                    res, "max_at_once", "conns", target="1 with auto",
                    met=c["auto"]["max_at_once"] == 1,
                    note="distinct connections over the agent's life: h2 %d, h1 %d (%d / %d "
                         "samples)" % (c["auto"]["distinct"], c["off"]["distinct"],
                                       c["auto"]["samples"], c["off"]["samples"]))
        self.h2_row("steps/s over TLS (%d LOCAL true, --max-parallel 32; median of %d rounds: "
                    "h2 %s, h1 %s)" % (H2_BURST_N, H2_BURST_REPS,
                                       " / ".join("%.0f" % x["rate"] for x in reps["auto"]),
                                       " / ".join("%.0f" % x["rate"] for x in reps["off"])),
                    res, "rate", "/s")
        self.h2_row("agent CPU per step over TLS (user+sys, the same bursts)", res, "cpu_ms", "ms",
                    note="etcd CPU per step: h2 %.3f, h1 %.3f ms; agent VmRSS after: h2 %.1f, "
                         "h1 %.1f MB" % (res["auto"]["etcd_ms"], res["off"]["etcd_ms"],
                                         res["auto"]["rss_kb"] / 1024.0,
                                         res["off"]["rss_kb"] / 1024.0))

    def _h2_relist(self, url):
        """Part 5 on the two modes, on one set of H2_RELIST_N steps: the
        start-up list H2_RELIST_REPS times per mode and --resync 1 in
        blocks of 3 re-lists, alternating."""
        P, node = "b13r", "bench-13r"
        own = self.relist_fill(P, node, H2_RELIST_N)
        res = {m: {"startup": [], "startup_cpu": [], "hwm": [], "resync": []}
               for m in self.H2_MODES}
        for r in range(H2_RELIST_REPS):
            for m in self.h2_order(r):
                dt, cpu, hwm = self.relist_startup(P, node, own, self.tls_args(m), url)
                res[m]["startup"].append(dt)
                res[m]["startup_cpu"].append(cpu)
                res[m]["hwm"].append(hwm)
        for r in range(max(1, H2_RELIST_REPS - 1)):
            for m in self.h2_order(r):
                resync, hwm = self.relist_resync(P, node, 5, self.tls_args(m), url)
                res[m]["resync"] += resync
                res[m]["hwm"].append(hwm)
        for m in self.H2_MODES:
            x = res[m]
            x.update({"startup_s": median(x["startup"]), "resync_s": median(x["resync"]),
                      "cpu_s": median(x["startup_cpu"]), "hwm_kb": max(x["hwm"])})
        self.details["13"]["relist"] = {"n": H2_RELIST_N, "own": own,
                                        **{m: res[m] for m in self.H2_MODES}}
        self.h2_row("re-list at start-up over TLS (%d steps, %d ours; median of %d each)"
                    % (H2_RELIST_N, own, H2_RELIST_REPS), res, "startup_s", "s",
                    note="agent CPU for it: h2 %.2f, h1 %.2f s" % (res["auto"]["cpu_s"],
                                                                   res["off"]["cpu_s"]))
        self.h2_row("re-list at --resync over TLS (median of %d / %d)"
                    % (len(res["auto"]["resync"]), len(res["off"]["resync"])), res, "resync_s",
                    "s", note="agent peak RSS over the re-lists (VmHWM): h2 %.1f, h1 %.1f MB"
                    % (res["auto"]["hwm_kb"] / 1024.0, res["off"]["hwm_kb"] / 1024.0))
        self.clean_etcd("%s/" % P)

    def _h2_many(self, url, port):
        """Part 7's largest point on the two modes: H2_AGENTS agents, their
        steps in H2_MANY_REPS blocks per mode (each block its own agents
        and prefix), alternating; the agents' connections sampled every
        100 ms."""
        blocks = {m: [] for m in self.H2_MODES}
        per = max(1, H2_MANY_STEPS // H2_MANY_REPS)
        for r in range(H2_MANY_REPS):
            for m in self.h2_order(r):
                blocks[m].append(self.many(H2_AGENTS, per, P="b13m-%s-%d" % (m, r),
                                           args=self.tls_args(m), url=url, conns_port=port))
        res = {}
        for m in self.H2_MODES:
            b = blocks[m]
            raw = [x for p in b for x in p["_raw"]]
            running = [x[1] for x in raw]
            n = len(raw)
            res[m] = {"running_p50": percentile(running, 50),
                      "running_p99": percentile(running, 99),
                      "floor_p50": percentile([x[0] for x in raw], 50),
                      "etcd_ms": sum(p["etcd_cpu_ms_per_step"] * p["steps"] for p in b) / n,
                      "agents_ms": sum(p["agents_cpu_ms_per_step"] * p["steps"] for p in b) / n,
                      "total_conns": max(p["conns"]["total_max"] for p in b),
                      "per_agent_max": max(p["conns"]["max_at_once"] for p in b),
                      "steps": n}
        self.details["13"]["many"] = {"agents": H2_AGENTS,
                                      **{m: {"summary": res[m],
                                             "blocks": [public(p) for p in blocks[m]]}
                                         for m in self.H2_MODES}}
        self.h2_row("%d agents over TLS: put -> RUNNING p50 (%d steps each, %d block(s))"
                    % (H2_AGENTS, res["auto"]["steps"], H2_MANY_REPS), res, "running_p50", "ms",
                    note="put -> watch event on the plain listener p50: h2 run %.2f, h1 run "
                         "%.2f ms" % (res["auto"]["floor_p50"], res["off"]["floor_p50"]))
        self.h2_row("%d agents over TLS: put -> RUNNING p99" % H2_AGENTS, res, "running_p99", "ms")
        self.h2_row("%d agents over TLS: etcd CPU per step" % H2_AGENTS, res, "etcd_ms", "ms",
                    note="all agents' CPU per step: h2 %.3f, h1 %.3f ms"
                    % (res["auto"]["agents_ms"], res["off"]["agents_ms"]))
        self.h2_row("%d agents over TLS: connections at etcd's TLS port, most at once (all "
                    "agents)" % H2_AGENTS, res, "total_conns", "conns",
                    target="<= %d with auto" % H2_AGENTS,
                    met=res["auto"]["total_conns"] <= H2_AGENTS,
                    note="one agent at most: h2 %d, h1 %d" % (res["auto"]["per_agent_max"],
                                                              res["off"]["per_agent_max"]))

    def h2_stderr_check(self):
        """Every part-13 agent's stderr (the sections of agent-*.stderr whose
        "==== start" line has --etcd-http2), per mode: its warn and error
        lines, and problems: an auto start that never said "HTTP/2 (ALPN
        h2)", an off start that did.  The two warnings of an agent without
        a Docker engine (the bench starts none here) are only counted."""
        out = {m: {"starts": 0, "h2_said": 0, "warn_error_lines": [], "problems": [],
                   "no_docker_warnings": 0} for m in self.H2_MODES}
        lvl = re.compile(r"^\S+ (warn|error) ")
        no_docker = re.compile(r"docker engine at \S+ unreachable|cannot list this node's "
                               r"containers")
        for fn in sorted(os.listdir(self.tmp)):
            if not (fn.startswith("agent-") and fn.endswith(".stderr")):
                continue
            try:
                with open(os.path.join(self.tmp, fn), errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            for sec in text.split("==== start ")[1:]:
                head, _, body = sec.partition("\n")
                mm = re.search(r"--etcd-http2 (\S+)", head)
                if not mm or mm.group(1) not in out:
                    continue
                m = mm.group(1)
                o = out[m]
                o["starts"] += 1
                said = "HTTP/2 (ALPN h2)" in body
                o["h2_said"] += said
                who = fn[len("agent-"):-len(".stderr")]
                if m == "auto" and not said:
                    o["problems"].append("%s: no \"HTTP/2 (ALPN h2)\" line with auto" % who)
                if m == "off" and said:
                    o["problems"].append("%s: HTTP/2 with --etcd-http2 off" % who)
                for l in body.splitlines():
                    if not lvl.match(l):
                        continue
                    if no_docker.search(l):
                        o["no_docker_warnings"] += 1
                    else:
                        o["warn_error_lines"].append("%s: %s" % (who, l))
        return out

    # ---- part 7: many agents ------------------------------------------------------------------
    def part7(self):
        points = []
        for n in MANY_AGENTS:
            nsteps = MANY_STEPS if n == max(MANY_AGENTS) else MANY_STEPS_SMALL
            points.append(self.many(n, nsteps))
        self.details["7"] = {"points": [public(p) for p in points]}
        base = points[0]
        for p in points:
            self.row("7", "%d agents: put -> RUNNING p50 (%d steps)" % (p["agents"], p["steps"]),
                     p["running_p50_ms"], "ms", base["running_p50_ms"],
                     "%d agent(s), same run" % base["agents"],
                     p["running_p50_ms"] / base["running_p50_ms"], "x", "(report)", None)
            self.row("7", "%d agents: put -> RUNNING p99" % p["agents"], p["running_p99_ms"], "ms",
                     base["running_p99_ms"], "%d agent(s), same run" % base["agents"],
                     p["running_p99_ms"] / base["running_p99_ms"], "x", "(report)", None)
            self.row("7", "%d agents: etcd CPU per step" % p["agents"], p["etcd_cpu_ms_per_step"],
                     "ms", base["etcd_cpu_ms_per_step"], "%d agent(s), same run" % base["agents"],
                     p["etcd_cpu_ms_per_step"] / base["etcd_cpu_ms_per_step"], "x", "(report)",
                     None, note="all agents' CPU per step %.3f ms" % p["agents_cpu_ms_per_step"])

    def many(self, nagents, nsteps, P=None, args=(), url=None, conns_port=None):
        """Part 7's point (also part 13's): nagents agents on prefix P (one
        node name each; args and url as for agent()), nsteps sequential
        steps round-robin, each timed as part 1 times one.  With conns_port,
        the agents' ESTABLISHED connections to that port are sampled while
        they run.  Returns the point's figures; the raw latencies in ms
        under "_raw" ((floor, running, succeeded) per step)."""
        stem = "m%d" % nagents if P is None else P  # the agents' node names: <stem>-<i>
        P = P or "b7n%d" % nagents
        self.put_action(P, "true", "true")
        agents = []
        sampler = ConnSampler(conns_port, period=0.1) if conns_port else None
        log("  %s: %d agents, %d steps%s", P, nagents, nsteps,
            " (" + " ".join(args) + ")" if args else "")
        try:
            for i in range(nagents):
                agents.append(self.agent("%s-%02d" % (stem, i), P, args, ready=False, url=url))
                if sampler:
                    sampler.add(agents[-1].pid)
            for a in agents:
                self.wait_ready(a, 120, poll=0.02)
            time.sleep(0.5)
            w, seen, _ = self.watch_statuses(P)
            sp = self.steps_prefix(P)
            names = [a.name for a in agents]

            def one(i):
                key = "r%05d" % i
                full = sp + key
                body = dumps({"key": b64(full),
                              "value": b64(dumps(user_step(key, names[i % nagents], "true@v1")))})
                t0 = now()
                self.gw.conn.request("/v3/kv/put", body, lambda s, d, t: None)
                self.loop.run_until(lambda: any(s in seen.get(full, ()) for s in FINAL), 30,
                                    "step %s" % key)
                d = seen[full]
                if "SUCCEEDED" not in d:
                    raise PartError("step %s: %s" % (key, sorted(d)))
                return ms(d["PENDDING"] - t0), ms(d["RUNNING"] - t0), ms(d["SUCCEEDED"] - t0)
            for i in range(min(nagents, 20)):
                one(90000 + i)  # warm-up
            cpu0 = sum(cpu_seconds(a.pid) for a in agents)
            e0 = cpu_seconds(self.etcd.pid)
            t0 = now()
            res = [one(i) for i in range(nsteps)]
            wall = now() - t0
            e1 = cpu_seconds(self.etcd.pid)
            cpu1 = sum(cpu_seconds(a.pid) for a in agents)
            rss = [proc_status_kb(a.pid, "VmRSS") for a in agents]
            w.close()
        finally:
            if sampler:
                sampler.stop()
            for a in agents:
                self.stop_agent(a)
        self.clean_etcd("%s/" % P)
        floor = [r[0] for r in res]
        running = [r[1] for r in res]
        succ = [r[2] for r in res]
        out = {"agents": nagents, "steps": nsteps, "seconds": wall,
               "floor_p50_ms": percentile(floor, 50), "floor_p99_ms": percentile(floor, 99),
               "running_p50_ms": percentile(running, 50),
               "running_p99_ms": percentile(running, 99),
               "succeeded_p50_ms": percentile(succ, 50), "succeeded_p99_ms": percentile(succ, 99),
               "etcd_cpu_ms_per_step": ms(e1 - e0) / nsteps,
               "agents_cpu_ms_per_step": ms(cpu1 - cpu0) / nsteps,
               "agent_rss_kb_median": median(rss), "_raw": res}
        if sampler:
            out["conns"] = sampler.figures()
        return out

    # ---- part 8: instruction counts ---------------------------------------------------------------
    def part8(self):
        if not shutil.which("valgrind"):
            raise PartError("valgrind not found")
        drv = os.path.join(BUILD, "bench")
        res = {}

        def instr(argv):
            out = os.path.join(self.tmp, "cg.out")
            p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + argv,
                               capture_output=True, text=True, timeout=900)
            m = re.search(r"Collected : (\d+)", p.stderr)
            if p.returncode != 0 or not m:
                raise PartError("callgrind %s failed (%d): %s" % (" ".join(argv), p.returncode,
                                                                   p.stderr[-1500:]))
            os.unlink(out)
            return int(m.group(1))

        codec = os.path.join(drv, "codec_bench")
        c0, c1 = instr([codec, "100"]), instr([codec, str(100 + CG_N)])
        res["codec_roundtrip"] = (c1 - c0) / CG_N
        ev = os.path.join(drv, "event_bench")
        e0 = instr([ev, "other", "0"])
        eo = instr([ev, "other", str(CG_N)])
        ep = instr([ev, "own", str(CG_N)])
        res["event_other_node"] = (eo - e0) / CG_N
        res["event_own_pending"] = (ep - e0) / CG_N
        self.details["8"] = {"n": CG_N, "instructions": res,
                             "raw": {"codec": [c0, c1], "event": [e0, eo, ep]}}
        self.row("8", "decode + re-encode reference step (§1.7)", res["codec_roundtrip"], "instr",
                 None, "", None, "", "(report)", None,
                 note="json_loadb + wf_codec_decode + wf_codec_encode + json_dumps")
        self.row("8", "watch event -> queued item, another node's step", res["event_other_node"],
                 "instr", None, "", None, "", "(report)", None,
                 note="HTTP chunk + line split + watch msg parse + base64 + value parse + filter (drop)")
        self.row("8", "watch event -> queued item, own PENDDING step", res["event_own_pending"],
                 "instr", None, "", None, "", "(report)", None,
                 note="... + cache insert + queue + dispatch to the waiting list")

    # ---- part 9: a step's start in a big pipeline run -------------------------------------------
    def part9(self):
        """Before a pipeline step runs, the node reads what the earlier steps
        of its run offer (engine/outputs.c: one paged list of the run's key
        prefix, 64 steps a page, each step with outputs parsed, then the
        merge into its environment).  Measured as part 1 measures a step:
        put -> SUCCEEDED of a LOCAL `true` step in the last stage of a run
        whose N - 1 earlier steps SUCCEEDED with 3 outputs each, against the
        same step alone in a run of its own (a new pipeline id each time),
        the two interleaved in one run on one agent."""
        P, node, ns, big = "b9", "bench-9", "ns9", "bigrun"
        sp = self.steps_prefix(P)
        warm, per_stage = 3, 10
        n_earlier = N_OUTPUTS_RUN - 1
        last = (n_earlier + per_stage - 1) // per_stage + 1  # the measured steps' stage
        ml = ("%-49s\n" % "a value of several lines") * 4    # 200 bytes, 4 lines
        items = [("%s/workflow/pipelines/%s/%s" % (P, ns, big), pipeline(ns, big))]
        for i in range(n_earlier):
            key = "%s.%s.%d.%d" % (ns, big, i // per_stage + 1, i % per_stage + 1)
            resp = {"log_driver": "local_file", "log_path": "runner_log/2026/12/7/" + key,
                    "exit_code": "0", "pid": str(10000 + i), "output.A_%d" % i: "a-%d" % i,
                    "output.COMMON": "from step %d" % i, "output.ML": ml}
            items.append((sp + key, pipeline_step(key, node, "true@v1", ns, big, "s%d" % i,
                                                  "SUCCEEDED", resp)))
        run_bytes = sum(len(dumps(v)) for _, v in items[1:])
        solo = ["solo%03d" % r for r in range(warm + OUTPUTS_REPS)]
        items += [("%s/workflow/pipelines/%s/%s" % (P, ns, pid), pipeline(ns, pid)) for pid in solo]
        self.gw.put_many(items, per_txn=100)
        self.put_action(P, "true", "true")
        # What the last earlier step offers must reach the environment: a
        # check after the measurement (sh, so not the measured command).
        self.put_action(P, "check9", 'sh,-c,test "$COMMON" = "from step %d"' % (n_earlier - 1))
        a = self.agent(node, P)
        w, seen, _ = self.watch_statuses(P)
        cpu = {"big": 0.0, "solo": 0.0}

        def one(kind, pid, step_id):
            key = "%s.%s.%d.%d" % (ns, pid, last, step_id)
            c0 = cpu_seconds(a.pid)
            r = self.timed_step(a, seen, sp + key,
                                pipeline_step(key, node, "true@v1", ns, pid, "consumer"))
            cpu[kind] += cpu_seconds(a.pid) - c0
            return r

        for i in range(warm):
            one("solo", solo[i], 1)
            one("big", big, 1000 + i)
        cpu["big"] = cpu["solo"] = 0.0
        bigs, solos = [], []
        for r in range(OUTPUTS_REPS):
            # Each goes first every other time, so neither always follows the other.
            pair = [("big", big, r + 1, bigs), ("solo", solo[warm + r], 1, solos)]
            for kind, pid, sid, out in (pair if r % 2 == 0 else pair[::-1]):
                out.append(one(kind, pid, sid)[2])
        key = "%s.%s.%d.%d" % (ns, big, last, 2000)
        try:
            self.timed_step(a, seen, sp + key,
                            pipeline_step(key, node, "check9@v1", ns, big, "check"))
        except PartError as e:
            raise PartError("a step of the big run was not offered COMMON of step %d: %s"
                            % (n_earlier - 1, e))
        w.close()
        self.stop_agent(a)
        self.clean_etcd("%s/" % P)
        b50, s50 = percentile(bigs, 50), percentile(solos, 50)

        def pages(nkeys):  # the run's keys when a measured step lists it (itself included)
            return -(-nkeys // 64)
        # NAME and <step name>.NAME for each output; COMMON and ML shared.
        offered = n_earlier * 4 + 2
        self.details["9"] = {"run_steps": N_OUTPUTS_RUN, "reps": OUTPUTS_REPS,
                             "run_bytes": run_bytes, "names_offered": offered,
                             "big_succeeded_ms": summary(bigs),
                             "alone_succeeded_ms": summary(solos),
                             "agent_cpu_ms_per_step": {k: ms(v) / OUTPUTS_REPS
                                                       for k, v in cpu.items()}}
        self.row("9", "put -> SUCCEEDED p50, LOCAL true step after %d earlier steps with 3 "
                 "outputs each (%d reps)" % (n_earlier, OUTPUTS_REPS), b50, "ms", s50,
                 "the same step alone in its run", b50 / s50, "x alone", "<= 1.5x alone",
                 b50 <= 1.5 * s50,
                 note="run %.0f KiB in etcd, read in %d to %d pages of 64; %d names offered; "
                      "p90 %.2f vs %.2f ms; agent CPU per step %.2f vs %.2f ms" % (
                          run_bytes / 1024.0, pages(n_earlier + warm + 1),
                          pages(n_earlier + warm + OUTPUTS_REPS), offered,
                          percentile(bigs, 90), percentile(solos, 90),
                          ms(cpu["big"]) / OUTPUTS_REPS, ms(cpu["solo"]) / OUTPUTS_REPS))

    # ---- running --------------------------------------------------------------------------------
    def run(self):
        t_all = time.time()
        self.start()
        try:
            for p in PARTS:
                fn = getattr(self, "part" + p, None)
                if not fn:
                    continue
                log("part %s", p)
                t = time.time()
                try:
                    fn()
                except Exception as e:
                    traceback.print_exc()
                    self.errors[p] = "%s: %s" % (type(e).__name__, e)
                    self.row(p, "part %s failed" % p, None, "", None, "", None, "", "", False,
                             note=str(e)[:200])
                    for a in list(self.agents):
                        self.stop_agent(a)
                log("part %s done in %.1fs", p, time.time() - t)
        finally:
            self.stop()
        doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "host": platform.node(),
               "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(), "quick": QUICK,
               "etcd_data": self.etcd_on, "seconds": time.time() - t_all,
               "command": "bench/run.sh " + os.path.basename(self.out),
               "rows": self.rows, "details": self.details, "errors": self.errors}
        with open(self.out, "w") as f:
            json.dump(doc, f, indent=1)
        print(table(self.rows))
        print("\n%s; %d CPUs, load at end %.1f; etcd data on %s; %.0f s%s; JSON: %s" % (
            doc["date"], doc["cpus"], doc["load_avg_at_end"][0], self.etcd_on, doc["seconds"],
            " (BENCH_QUICK)" if QUICK else "", self.out))


def public(d):
    """d without its keys that start with "_" (raw figures, objects)."""
    return {k: v for k, v in d.items() if not k.startswith("_")}


def rss_of_mappings(pid, names):
    """Rss (kB) of the mappings of pid whose path contains one of names."""
    total, cur = 0, False
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                parts = line.split()
                if parts and "-" in parts[0] and not parts[0].endswith(":"):
                    cur = len(parts) > 5 and any(n in parts[5] for n in names)
                elif cur and parts and parts[0] == "Rss:":
                    total += int(parts[1])
    except OSError:
        pass
    return total


def child_cpu(pid):
    """cutime + cstime of pid: the CPU of the children it has reaped (a
    LOCAL step's process), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[13]) + int(fields[14])) / CLK_TCK


def parse_stamp(s):
    # 2026-01-02T03:04:05.678Z
    import calendar
    base, frac = s.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1000.0


def summary(xs):
    return {"p50": percentile(xs, 50), "p90": percentile(xs, 90), "p99": percentile(xs, 99),
            "max": max(xs), "min": min(xs)}


def fmt_num(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if abs(v) >= 1000:
            return "%.0f" % v
        if abs(v) >= 10:
            return "%.1f" % v
        if abs(v) >= 1:
            return "%.2f" % v
        return "%.3f" % v
    return str(v)


def table(rows):
    out = [("part", "figure", "value", "baseline (same run)", "ratio", "target", "met?")]
    for r in rows:
        val = "%s %s" % (fmt_num(r["value"]), r["unit"]) if r["value"] is not None else "-"
        base = "-"
        if r["baseline"] is not None:
            base = "%s %s (%s)" % (fmt_num(r["baseline"]), r["unit"], r["baseline_desc"])
        ratio = "-" if r["ratio"] is None else "%s %s" % (fmt_num(r["ratio"]), r["ratio_desc"])
        met = {None: "-", True: "yes", False: "NO"}[r["met"]]
        fig = r["figure"] + (" [%s]" % r["note"] if r["note"] else "")
        out.append((r["part"], fig, val, base, ratio, r["target"], met))
    lines = ["| " + " | ".join(c) + " |" for c in out]
    lines.insert(1, "|" + "---|" * len(out[0]))
    return "\n".join(lines)


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: bench.py OUT.json\n")
        sys.exit(2)
    if not os.access(NODE_BIN, os.X_OK):
        sys.stderr.write("no %s: run bench/run.sh (it builds build-bench first)\n" % NODE_BIN)
        sys.exit(2)
    Bench(os.path.abspath(sys.argv[1])).run()


if __name__ == "__main__":
    main()
