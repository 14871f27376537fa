#!/usr/bin/env python3
"""wfctl reads a log from the node that ran the step when the file is not on
its machine (docs/wfctl.md "Logs from the node", docs/protocol.md §6.1).

The agent runs with a relative --log-dir, --listen 127.0.0.1:<port>,
--listen-token-file, and --address http://127.0.0.1:<proxy port>: a TCP
proxy in front of --listen (test/harness/proxy.py) that the node record
publishes as its endpoint, so that the test can cut wfctl's connection and
count the connections wfctl made.  wfctl runs in another working directory,
where the log_path the node published (relative) does not exist.

* logs -f KEY with the token follows a running LOCAL step (over 100 KB,
  written for 3 s) to its end: exit 0 and every byte of the file, in order;
  `run` prints the log of the step it created the same way.
* The proxy drops the follow connection mid-step: wfctl says it resumes at
  byte N, asks again with offset=N, and still prints every byte once.
* Without the token, or with a wrong one: exit 1, "node N refused the log:
  token missing or wrong (--token-file)", nothing on stdout (logs and
  logs -f).
* 404 (the node has no such file): "node N has no log for step K", exit 1.
* A node that publishes no endpoint, or has no record: exit 1 saying that
  the log is not on this machine and the node publishes no endpoint.
* The local path is unchanged: from the node's own working directory wfctl
  reads the file and makes no connection to the node; an absolute log_path
  outside --log-root goes to the node even when the file exists here.
* An https endpoint (--listen-cert, --listen-key, --listen-client-ca):
  wfctl with --cacert, --node-cert and --node-key reads the log; without the
  client certificate, or without the CA, it exits 1 naming the TLS reason.

Runs against the node's log endpoint: fails until the node serves it."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from certs import make_certs  # noqa: E402
from e2e import Scenario, run, check, sh, status_of, log, T, WFCTL  # noqa: E402
from etcd import free_port  # noqa: E402
from proxy import TcpProxy  # noqa: E402
from agent import sanitizer_report  # noqa: E402
from wfctl_access import clean_env  # noqa: E402

TOKEN = "remote-logs-token-%d" % os.getpid()

# ~130 KB of random base64 in 100-byte lines, over about 3 s.
BURST = ("i=0; while [ $i -lt 30 ]; do head -c 3300 /dev/urandom | base64 -w 100; "
         "sleep 0.1; i=$((i+1)); done")
# A numbered line every 0.1 s for 6 s.
SLOW = ("i=0; while [ $i -lt 60 ]; do echo \"line $i $(head -c 24 /dev/urandom | base64)\"; "
        "sleep 0.1; i=$((i+1)); done")
GREET = "echo hello; sleep 1; echo from; sleep 1; echo the node"


def scenario_env(s):
    return clean_env(dict(WORKFLOW_ETCD=s.etcd.url, WORKFLOW_PREFIX=s.prefix))


def main():
    with Scenario("remote_logs") as s:
        token_file = os.path.join(s.tmp, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        wrong_file = os.path.join(s.tmp, "wrong-token")
        with open(wrong_file, "w") as f:
            f.write("not-" + TOKEN + "\n")
        elsewhere = os.path.join(s.tmp, "elsewhere")
        os.makedirs(elsewhere)

        def start(*args, cwd=elsewhere, env=None):
            log("wfctl %s (in %s%s)", " ".join(a.replace(s.tmp, "$T") for a in args),
                cwd.replace(s.tmp, "$T"), "; env %s" % " ".join(env) if env else "")
            return subprocess.Popen([WFCTL] + list(args), env=dict(scenario_env(s), **(env or {})),
                                    cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def finish(p, timeout=60):
            out, err = p.communicate(timeout=T(timeout))
            err = err.decode(errors="replace")
            log("  -> exit %d, %d bytes on stdout%s", p.returncode, len(out),
                ("\n  stderr: " + err.strip()[:600]) if err.strip() else "")
            rep = sanitizer_report(err)
            check(rep is None, "wfctl: %s", rep)
            check(TOKEN not in err, "wfctl printed the token")
            return p.returncode, out, err

        def ctl(*args, cwd=elsewhere, env=None, timeout=60):
            return finish(start(*args, cwd=cwd, env=env), timeout)

        def file_of(key):
            path = s.log_file(key)
            check(path, "no log file for %s under %s", key, s.log_dir)
            with open(path, "rb") as f:
                return f.read()

        port = free_port()
        proxy = TcpProxy("127.0.0.1", port).start()
        s.agent(log_dir="runner_log",  # relative: not there from `elsewhere`
                args=["--listen", "127.0.0.1:%d" % port, "--listen-token-file", token_file,
                      "--address", proxy.url])
        rec = s.c.get_json(s.node_key())
        check(rec.get("endpoint") == proxy.url, "the node record's endpoint is %r, want %r",
              rec.get("endpoint"), proxy.url)
        s.put_action("burst", sh(BURST))
        s.put_action("slow", sh(SLOW))
        s.put_action("greet", sh(GREET))
        tok = ["--token-file", token_file]

        # -- logs -f follows a running step to its end, every byte ----------------
        s.put_step("burst1", "burst@v1")
        st = s.wait_step("burst1", ("RUNNING", "SUCCEEDED"), timeout=20)
        check(status_of(st)["status"] == "RUNNING", "burst1 ended before wfctl started")
        check(not os.path.exists(os.path.join(elsewhere, response_path(st))),
              "the log path exists from `elsewhere`")
        before = proxy.accepted
        rc, out, err = ctl("logs", "-f", "burst1", *tok)
        want = file_of("burst1")
        check(rc == 0, "logs -f burst1: exit %d: %s", rc, err)
        check(len(want) > 100000 and out == want,
              "logs -f burst1 printed %d bytes, the file has %d (first difference at %s)",
              len(out), len(want), first_diff(out, want))
        check(proxy.accepted > before, "logs -f burst1 did not ask the node")
        log("logs -f from elsewhere: all %d bytes of a running step, from the node", len(out))

        # -- a dropped connection: resumed at its offset, no byte lost or doubled ----
        s.put_step("slow1", "slow@v1")
        s.wait_step("slow1", "RUNNING", timeout=20)
        before = proxy.accepted
        p = start("logs", "-f", "slow1", *tok)
        deadline = time.time() + T(15)
        while proxy.accepted == before and time.time() < deadline:
            time.sleep(0.05)
        check(proxy.accepted > before, "wfctl did not connect to the node")
        time.sleep(1.5)  # some lines through
        check(status_of(s.get_step("slow1"))["status"] == "RUNNING", "slow1 ended too soon")
        proxy.cut()
        time.sleep(0.6)
        proxy.restore()
        rc, out, err = finish(p)
        want = file_of("slow1")
        check(rc == 0, "logs -f slow1 across a cut: exit %d: %s", rc, err)
        check(out == want, "logs -f slow1 across a cut printed %d bytes, the file has %d "
              "(first difference at %s)", len(out), len(want), first_diff(out, want))
        m = re.search(r"interrupted: .*; resuming at byte (\d+)", err)
        check(m and 0 < int(m.group(1)) < len(want), "no 'resuming at byte N' in %r", err)
        check(proxy.accepted >= before + 2, "no second connection (%d)", proxy.accepted - before)
        log("a cut at byte %s: resumed there, all %d bytes once", m.group(1), len(out))

        # -- run follows the log of the step it created ----------------------------------
        rc, out, err = ctl("run", "greet@v1", "--node", s.node, *tok)
        lines = out.decode().split("\n", 1)
        check(rc == 0 and len(lines) == 2, "run greet: exit %d %r", rc, out)
        key = lines[0]
        check(lines[1].encode() == file_of(key) == b"hello\nfrom\nthe node\n",
              "run printed %r", lines[1])
        log("run from elsewhere printed the log of step %s from the node", key)

        # -- the token ----------------------------------------------------------------
        refused = "node %s refused the log: token missing or wrong (--token-file)" % s.node
        for args in ([], ["--token-file", wrong_file]):
            rc, out, err = ctl("logs", "burst1", *args)
            check(rc == 1 and refused in err and out == b"",
                  "logs %s: exit %d, %d bytes, %r", args, rc, len(out), err)
        s.put_step("slow2", "slow@v1")
        s.wait_step("slow2", "RUNNING", timeout=20)
        rc, out, err = ctl("logs", "-f", "slow2", "--token-file", wrong_file)
        check(rc == 1 and refused in err and out == b"", "logs -f with a wrong token: exit "
              "%d, %r", rc, err)
        rc, out, err = ctl("logs", "-f", "slow2")
        check(rc == 1 and refused in err, "logs -f without a token: exit %d, %r", rc, err)
        rc, out, err = ctl("logs", "burst1", env={"WFCTL_TOKEN_FILE": token_file})
        check(rc == 0 and out == file_of("burst1"), "WFCTL_TOKEN_FILE: exit %d %r", rc, err)
        log("no token or a wrong one: exit 1 with %r; WFCTL_TOKEN_FILE works", refused)

        # -- 404, and nodes without an endpoint --------------------------------------------
        s.put_step("ghost", "greet@v1", status="SUCCEEDED")
        s.c.update_json(s.step_key("ghost"), lambda o: o["status"].update(
            response={"log_driver": "local_file", "log_path": "runner_log/2020/1/1/ghost"}))
        rc, out, err = ctl("logs", "ghost", *tok)
        check(rc == 1 and "node %s has no log for step ghost" % s.node in err,
              "404: exit %d %r", rc, err)
        s.c.put(s.node_key("node-noep"), {"instance_name": "node-noep", "type": "node",
                                          "service_name": "workflow", "address": "10.9.9.9"})
        for node, why in (("node-noep", "its record has no endpoint"),
                          ("node-gone", "it is not registered in etcd")):
            k = "on-" + node
            s.put_step(k, "greet@v1", node=node, status="SUCCEEDED")
            s.c.update_json(s.step_key(k), lambda o, k=k: o["status"].update(
                response={"log_driver": "local_file", "log_path": "runner_log/2020/1/1/" + k}))
            rc, out, err = ctl("logs", k, *tok)
            check(rc == 1 and "is not on this machine, and node %s publishes no endpoint" % node
                  in err and why in err and "--listen" in err and "--log-root" in err,
                  "%s: exit %d %r", node, rc, err)
        log("404 and nodes without an endpoint: exit 1, and why")

        # -- the local path is unchanged ------------------------------------------------------
        before = proxy.accepted
        rc, out, err = ctl("logs", "burst1", cwd=s.tmp)
        check(rc == 0 and out == file_of("burst1"), "logs in the node's directory: exit %d", rc)
        rc, out, err = ctl("logs", "burst1", "--log-root", s.tmp)
        check(rc == 0 and out == file_of("burst1"), "logs --log-root: exit %d", rc)
        check(proxy.accepted == before, "a local read asked the node")
        # an absolute log_path outside --log-root is another machine's, even if a file
        # by that name is here: the node is asked (and has no such file)
        s.put_step("abs1", "greet@v1", status="SUCCEEDED")
        s.c.update_json(s.step_key("abs1"), lambda o: o["status"].update(
            response={"log_driver": "local_file", "log_path": s.log_file("burst1")}))
        rc, out, err = ctl("logs", "abs1", cwd=s.tmp)
        check(rc == 0 and out == file_of("burst1"), "absolute log_path, no --log-root: %d", rc)
        check(proxy.accepted == before, "a local read asked the node")
        rc, out, err = ctl("logs", "abs1", "--log-root", elsewhere, *tok)
        check(rc == 1 and "node %s has no log for step abs1" % s.node in err,
              "absolute log_path outside --log-root: exit %d %r", rc, err)
        check(proxy.accepted > before, "outside --log-root, the node was not asked")
        log("local files are read here; outside --log-root the node is asked")

        # -- an https endpoint with client certificates ------------------------------------
        pem = make_certs(os.path.join(s.tmp, "pki"))
        tls_port = free_port()
        s.agent(name="node-tls", log_dir="runner_log_tls",
                args=["--listen", "127.0.0.1:%d" % tls_port, "--listen-token-file", token_file,
                      "--listen-cert", pem["server.crt"], "--listen-key", pem["server.key"],
                      "--listen-client-ca", pem["ca.crt"]])
        s.put_step("tls1", "greet@v1", node="node-tls")
        s.wait_step("tls1", timeout=30)
        with open(os.path.join(s.tmp, response_path(s.get_step("tls1"))), "rb") as f:
            want = f.read()
        certs = ["--cacert", pem["ca.crt"], "--node-cert", pem["client.crt"],
                 "--node-key", pem["client.key"]]
        rc, out, err = ctl("logs", "tls1", *tok, *certs)
        check(rc == 0 and out == want == b"hello\nfrom\nthe node\n",
              "https endpoint: exit %d %r %r", rc, out, err)
        rc, out, err = ctl("logs", "tls1", *tok, "--cacert", pem["ca.crt"])
        check(rc == 1 and "(see --cacert, --node-cert, --node-key)" in err,
              "https without a client certificate: exit %d %r", rc, err)
        rc, out, err = ctl("logs", "tls1", *tok, "--node-cert", pem["client.crt"],
                           "--node-key", pem["client.key"])
        check(rc == 1 and "certificate" in err, "https without --cacert: exit %d %r", rc, err)
        rc, out, err = ctl("logs", "tls1", *tok, "--node-cert", pem["client.crt"])
        check(rc == 2 and "--node-cert: needs --node-key (WFCTL_NODE_KEY)" in err,
              "--node-cert alone: exit %d %r", rc, err)
        log("https endpoint: read with --cacert/--node-cert/--node-key, refused without")
        proxy.close()


def response_path(step):
    return ((status_of(step).get("response") or {}).get("log_path")) or ""


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return "byte %d" % i
    return "byte %d (one is a prefix of the other)" % min(len(a), len(b))


run(main)
