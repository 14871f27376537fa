#!/usr/bin/env python3
"""wfctl against etcd over TLS with client certificates (--client-cert-auth),
with the agent's flags and variables: --etcd-cacert, --etcd-cert,
--etcd-key (WORKFLOW_ETCD_CACERT, WORKFLOW_ETCD_CERT, WORKFLOW_ETCD_KEY).

The harness keeps etcd's plain http listener for itself and the agent;
wfctl only ever talks to the https one.

* apply (YAML actions, a JSON step), get steps|actions|nodes, logs, logs -f
  and run work over https://127.0.0.1:PORT, and get over
  https://localhost:PORT (host name check); the same from the variables.
* Bad flag combinations exit 2 naming the flag or the variable: a
  certificate without a key and the reverse, a missing file, TLS files with
  no https:// endpoint, a key that does not match its certificate.
* Without a client certificate, trusting the wrong CA, or trusting only the
  system store, every command exits 1 and says why TLS failed (OpenSSL's
  reason) and which flags to look at."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from certs import make_certs  # noqa: E402
from e2e import Scenario, run, check, sh, status_of, log, T, WFCTL  # noqa: E402
from etcd import Etcd  # noqa: E402
from agent import sanitizer_report  # noqa: E402
from wfctl_access import ACTIONS_YAML, clean_env  # noqa: E402


def main():
    s = Scenario("wfctl_etcd_tls")
    pem = make_certs(os.path.join(s.tmp, "tls"))
    s.etcd = Etcd(data_dir=os.path.join(s.tmp, "etcd"),
                  tls={"ca": pem["ca.crt"], "cert": pem["server.crt"], "key": pem["server.key"]})
    with s:
        url = s.etcd.tls_url
        good = ["--etcd", url, "--etcd-cacert", pem["ca.crt"], "--etcd-cert", pem["client.crt"],
                "--etcd-key", pem["client.key"], "--prefix", s.prefix]

        def ctl(*args, env=None, timeout=60):
            p = subprocess.run([WFCTL] + list(args), env=clean_env(env), cwd=s.tmp,
                               capture_output=True, text=True, timeout=T(timeout))
            log("wfctl %s%s -> exit %d%s%s", " ".join(a.replace(s.tmp, "$T") for a in args),
                " (env %s)" % " ".join(sorted(env)) if env else "", p.returncode,
                ("\n  stdout: " + p.stdout.strip()[:300]) if p.stdout.strip() else "",
                ("\n  stderr: " + p.stderr.strip()[:600]) if p.stderr.strip() else "")
            rep = sanitizer_report(p.stderr)
            check(rep is None, "wfctl %s: %s", " ".join(args), rep)
            return p

        log("etcd https listener %s (client certificates required)", url)
        s.agent()  # on the plain listener: this test is about wfctl

        # -- everything works with the three files -------------------------------
        af = os.path.join(s.tmp, "actions.yaml")
        with open(af, "w") as f:
            f.write(ACTIONS_YAML)
        p = ctl(*good, "apply", "-f", af)
        check(p.returncode == 0, "apply over TLS: exit %d: %s", p.returncode, p.stderr)
        check((s.c.get_json(s.action_key("echo")) or {}).get("name") == "echo",
              "apply over TLS stored nothing")
        sf = os.path.join(s.tmp, "step.json")
        with open(sf, "w") as f:
            json.dump({"kind": "step", "key": "tls1", "action": "echo@v1",
                       "with": {"MSG": "over-tls"}, "status": {"scheduled_node": s.node}}, f)
        p = ctl(*good, "apply", "-f", sf)
        check(p.returncode == 0, "apply step over TLS: exit %d", p.returncode)
        st = s.wait_step("tls1")
        check(status_of(st)["status"] == "SUCCEEDED", "tls1: %s", status_of(st))

        p = ctl(*good, "get", "steps", "-o", "name")
        check(p.returncode == 0 and "tls1" in p.stdout.split(), "get steps over TLS")
        p = ctl(*good, "get", "actions")
        check(p.returncode == 0 and "echo" in p.stdout and "ticker" in p.stdout,
              "get actions over TLS")
        p = ctl(*good, "get", "nodes", "-o", "name")
        check(p.returncode == 0 and p.stdout.split() == [s.node], "get nodes over TLS")
        p = ctl(*good, "logs", "tls1")
        check(p.returncode == 0 and p.stdout == "msg=over-tls\n", "logs over TLS: %r", p.stdout)

        s.put_step("tick1", "ticker@v1")
        s.wait_step("tick1", ("RUNNING", "SUCCEEDED"), timeout=20)
        p = ctl(*good, "logs", "-f", "tick1")
        check(p.returncode == 0 and p.stdout == "tick 1\ntick 2\ntick 3\n",
              "logs -f over TLS: exit %d %r", p.returncode, p.stdout)

        p = ctl(*good, "run", "echo@v1", "--with", "MSG=run-tls", "--node", s.node)
        lines = p.stdout.splitlines()
        check(p.returncode == 0 and len(lines) == 2 and lines[1] == "msg=run-tls",
              "run over TLS: exit %d %r", p.returncode, p.stdout)

        # the host name is checked (and sent as SNI) too
        byname = ["--etcd", "https://localhost:%d" % s.etcd.tls_port] + good[2:]
        p = ctl(*byname, "get", "nodes", "-o", "name")
        check(p.returncode == 0 and s.node in p.stdout, "https://localhost: exit %d",
              p.returncode)

        # the agent's variables
        env = {"WORKFLOW_ETCD": url, "WORKFLOW_PREFIX": s.prefix,
               "WORKFLOW_ETCD_CACERT": pem["ca.crt"], "WORKFLOW_ETCD_CERT": pem["client.crt"],
               "WORKFLOW_ETCD_KEY": pem["client.key"]}
        p = ctl("get", "steps", "tls1", "-o", "json", env=env)
        check(p.returncode == 0 and json.loads(p.stdout)["key"] == "tls1",
              "get with WORKFLOW_ETCD_* variables: exit %d", p.returncode)
        log("apply, get, logs, logs -f and run work over TLS, from flags and variables")

        # -- usage errors: exit 2 naming the flag --------------------------------
        missing = os.path.join(s.tmp, "nope.pem")
        cases = [
            (["--etcd", url, "--etcd-cert", pem["client.crt"]], {},
             "--etcd-cert: needs --etcd-key (WORKFLOW_ETCD_KEY)"),
            (["--etcd", url, "--etcd-key", pem["client.key"]], {},
             "--etcd-key: needs --etcd-cert (WORKFLOW_ETCD_CERT)"),
            (["--etcd", url], {"WORKFLOW_ETCD_CERT": pem["client.crt"]},
             "WORKFLOW_ETCD_CERT: needs --etcd-key"),
            (["--etcd", url, "--etcd-cert", missing, "--etcd-key", pem["client.key"]], {},
             "--etcd-cert %s: no such file" % missing),
            (["--etcd", url], {"WORKFLOW_ETCD_CACERT": missing},
             "WORKFLOW_ETCD_CACERT %s: no such file" % missing),
            (["--etcd", s.etcd.url, "--etcd-cacert", pem["ca.crt"]], {},
             "--etcd-cacert: no --etcd endpoint is https://, so it would not be used"),
            (["--etcd", url, "--etcd-cacert", pem["ca.crt"], "--etcd-cert", pem["client.crt"],
              "--etcd-key", pem["server.key"]], {}, "does not match certificate"),
        ]
        for args, extra, want in cases:
            p = ctl(*args, "get", "steps", env=extra)
            out = p.stdout + p.stderr
            check(p.returncode == 2, "%s %s: exit %d, want 2", args, extra, p.returncode)
            check(want in out, "%s %s: %r does not say %r", args, extra, out, want)
        # the flag wins over the variable
        p = ctl(*good, "get", "nodes", "-o", "name", env={"WORKFLOW_ETCD_CERT": missing})
        check(p.returncode == 0, "--etcd-cert did not win over WORKFLOW_ETCD_CERT")
        log("bad TLS flag combinations exit 2 naming the flag or variable")

        # -- refused: exit 1 with OpenSSL's reason -----------------------------------
        refused = [
            ("no client certificate", ["--etcd", url, "--etcd-cacert", pem["ca.crt"]],
             "the server wants a client certificate? none is configured"),
            ("the wrong CA", ["--etcd", url, "--etcd-cacert", pem["ca2.crt"], "--etcd-cert",
                              pem["client.crt"], "--etcd-key", pem["client.key"]],
             "unable to get local issuer certificate"),
            ("the system trust store", ["--etcd", url, "--etcd-cert", pem["client.crt"],
                                        "--etcd-key", pem["client.key"]],
             "server certificate rejected"),
        ]
        for what, args, want in refused:
            for cmd in (["get", "steps"], ["logs", "tls1"], ["apply", "-f", af]):
                p = ctl(*args, "--prefix", s.prefix, *cmd)
                check(p.returncode == 1, "%s, %s: exit %d, want 1", what, cmd[0], p.returncode)
                check("TLS with etcd %s: " % url in p.stderr and want in p.stderr and
                      "--etcd-cacert, --etcd-cert, --etcd-key" in p.stderr,
                      "%s, %s: %r does not say %r", what, cmd[0], p.stderr, want)
            log("%s: exit 1, %s", what,
                [ln for ln in p.stderr.splitlines() if "TLS with etcd" in ln][0])


run(main)
