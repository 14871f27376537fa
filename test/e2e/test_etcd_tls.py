#!/usr/bin/env python3
"""TLS to etcd: a real etcd serving https with --client-cert-auth, and
certificates made here with the openssl CLI (a CA, a server certificate for
127.0.0.1 and localhost, a client certificate, and an unrelated CA).

The harness keeps a plain http listener on the same etcd for its own client;
the agent only ever talks to the https one.

* Python's ssl module shows the https port is real: without a client
  certificate etcd refuses; with one it answers.
* Flags: a certificate without a key (and the reverse), a missing file, TLS
  files with no https endpoint, the same from the environment and the config
  file, exit 2 naming the flag; a key that does not match its certificate
  exits 2 with the reason.
* OpenSSL is loaded on the first https:// endpoint (src/http/tls-dl.c): a
  libssl that cannot be loaded exits 2 naming it; an agent on plain http://
  has no libssl or libcrypto mapped once registered.
* An agent with --etcd https://127.0.0.1:PORT --etcd-cacert --etcd-cert
  --etcd-key registers and runs a LOCAL step to SUCCEEDED, with libssl
  mapped; so does one on https://localhost:PORT (host name check and SNI).
* An agent without the client certificate, and one trusting the wrong CA,
  stay up, log a clear TLS error once per reason (not once per retry),
  register nothing and run nothing, and exit cleanly on SIGTERM."""
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from certs import make_certs  # noqa: E402
from e2e import Scenario, run, check, sh, status_of, log, T, WORKFLOW_NODE  # noqa: E402
from etcd import Etcd  # noqa: E402


def python_sees_client_cert_auth(url, pem):
    """etcd's https port answers with our client certificate, refuses without."""
    ctx = ssl.create_default_context(cafile=pem["ca.crt"])
    try:
        urllib.request.urlopen(url + "/health", timeout=5, context=ctx).read()
        check(False, "etcd answered https without a client certificate")
    except (OSError, ssl.SSLError) as e:
        log("without a client certificate python's ssl says: %s", e)
    ctx.load_cert_chain(pem["client.crt"], pem["client.key"])
    with urllib.request.urlopen(url + "/health", timeout=5, context=ctx) as r:
        body = r.read()
    check(b"true" in body, "etcd /health over https: %r", body)
    log("with the client certificate etcd answers over https: %s", body.decode().strip())


def bad_flags(s, pem):
    """Exit 2 naming the flag, variable or config key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    url = s.etcd.tls_url
    cfg = os.path.join(s.tmp, "tls-config.yaml")
    with open(cfg, "w") as f:
        f.write("etcd: %s\netcd-cert: %s\n" % (url, pem["client.crt"]))
    missing = os.path.join(s.tmp, "nope.pem")
    cases = [
        (["--etcd", url, "--etcd-cert", pem["client.crt"]], {},
         "--etcd-cert: needs --etcd-key"),
        (["--etcd", url, "--etcd-key", pem["client.key"]], {},
         "--etcd-key: needs --etcd-cert"),
        (["--etcd", url], {"WORKFLOW_ETCD_CERT": pem["client.crt"]},
         "WORKFLOW_ETCD_CERT: needs --etcd-key"),
        (["--config", cfg], {}, 'key "etcd-cert": needs --etcd-key'),
        (["--etcd", url, "--etcd-cert", missing, "--etcd-key", pem["client.key"]], {},
         "--etcd-cert %s: no such file" % missing),
        (["--etcd", url], {"WORKFLOW_ETCD_CACERT": missing},
         "WORKFLOW_ETCD_CACERT %s: no such file" % missing),
        (["--etcd", s.etcd.url, "--etcd-cacert", pem["ca.crt"]], {},
         "--etcd-cacert: no --etcd endpoint is https://"),
        # Readable but wrong: found when the etcd client loads them.
        (["--etcd", url, "--etcd-cacert", pem["ca.crt"], "--etcd-cert", pem["client.crt"],
          "--etcd-key", pem["server.key"]], {}, "does not match certificate"),
    ]
    for args, extra, want in cases:
        r = subprocess.run([WORKFLOW_NODE, "--name", "node-flags", "--prefix", s.prefix] + args,
                           env=dict(env, **extra), capture_output=True, text=True,
                           timeout=T(30), cwd=s.tmp)
        out = r.stdout + r.stderr
        check(r.returncode == 2, "%s %s: exit %d, want 2: %s", args, extra, r.returncode, out)
        check(want in out, "%s %s: %r does not say %r", args, extra, out, want)
    log("bad TLS flag combinations exit 2 naming the flag")


def libssl_soname():
    """The libssl soname the agent dlopen()s (a string in the binary)."""
    with open(WORKFLOW_NODE, "rb") as f:
        m = re.search(rb"libssl\.so\.[0-9.]*[0-9]\x00", f.read())
    check(m, "no libssl.so.N string in %s", WORKFLOW_NODE)
    return m.group(0)[:-1].decode()


def unloadable_libssl(s, pem):
    """An empty file under libssl's soname first on the loader's path: the
    https:// endpoint cannot be created; exit 2 naming the library."""
    soname = libssl_soname()
    d = os.path.join(s.tmp, "broken-lib")
    os.makedirs(d)
    open(os.path.join(d, soname), "w").close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env["LD_LIBRARY_PATH"] = d
    r = subprocess.run([WORKFLOW_NODE, "--name", "node-nolib", "--prefix", s.prefix,
                        "--etcd", s.etcd.tls_url, "--etcd-cacert", pem["ca.crt"]],
                       env=env, capture_output=True, text=True, timeout=T(30), cwd=s.tmp)
    out = r.stdout + r.stderr
    want = "cannot load OpenSSL (%s) for https://: %s/%s: " % (soname, d, soname)
    check(r.returncode == 2, "unloadable %s: exit %d, want 2: %s", soname, r.returncode, out)
    check(want in out and "no usable etcd endpoint" in out,
          "unloadable %s: %r does not say %r", soname, out, want)
    log("an unloadable %s exits 2: %s", soname,
        [l for l in out.splitlines() if want in l][0].strip())


def plain_agent(s):
    """An agent on plain http:// never maps OpenSSL."""
    a = s.agent(name="node-plain", etcd_url=s.etcd.url)
    libs = a.mapped("/libssl.so") + a.mapped("/libcrypto.so")
    check(not libs, "an http:// agent has OpenSSL mapped: %s", libs)
    a.stop(timeout=T(60))
    log("node-plain on %s: registered with no libssl or libcrypto mapped", s.etcd.url)


def good_agent(s, name, url, pem, marks):
    a = s.agent(name=name, etcd_url=url,
                args=["--etcd-cacert", pem["ca.crt"], "--etcd-cert", pem["client.crt"],
                      "--etcd-key", pem["client.key"]])
    key = "ok-" + name
    s.put_step(key, "mark@v1", node=name)
    st = s.wait_step(key, timeout=30)
    check(status_of(st)["status"] == "SUCCEEDED", "%s: %s", key, status_of(st))
    with open(os.path.join(marks, key)) as f:
        check(f.read().splitlines() == ["run"], "step %s did not run exactly once", key)
    check(not a.stderr_lines_with("TLS"), "TLS complaints from a good agent:\n%s",
          a.stderr_tail())
    check(a.mapped("/libssl.so"), "%s talks https but has no libssl mapped", name)
    log("%s on %s ran its step to SUCCEEDED", name, url)
    return a


def refused_agent(s, name, args, want, marks):
    """An agent etcd refuses (or that refuses etcd): alive, clear, idle."""
    a = s.agent(name=name, etcd_url=s.etcd.tls_url, args=args, register=False)
    s.put_step("w-" + name, "mark@v1", node=name)
    deadline = time.time() + T(20)
    while not a.stderr_lines_with(want) and time.time() < deadline:
        a.assert_alive("while etcd refuses it")
        time.sleep(0.2)
    lines = a.stderr_lines_with(want)
    check(lines, "%s: no log line saying %r; stderr:\n%s", name, want, a.stderr_tail())
    log("%s: %s", name, lines[0].strip())
    time.sleep(T(3))  # several retries: the reason is logged once, not per retry
    a.assert_alive("after its TLS failures")
    n = len(a.stderr_lines_with(want))
    check(n <= 2, "%s: the TLS reason was logged %d times", name, n)
    check(s.c.get(s.node_key(name)) is None, "%s registered", name)
    check(status_of(s.get_step("w-" + name))["status"] == "PENDDING",
          "a step ran on %s: %s", name, status_of(s.get_step("w-" + name)))
    check(not os.path.exists(os.path.join(marks, "w-" + name)), "step w-%s ran" % name)
    # SIGTERM: shuts down cleanly even though etcd never let it in (it
    # cannot unregister; the exit status says so, no sanitizer report).
    rc = a.stop(timeout=T(60), expect_clean=False)
    a.check_sanitizers()
    check(rc is not None and rc >= 0, "%s died from signal %s", name, -rc if rc else rc)
    log("%s: alive throughout, ran nothing, exit status %s", name, rc)


def main():
    s = Scenario("etcd_tls")
    pem = make_certs(os.path.join(s.tmp, "tls"))
    s.etcd = Etcd(data_dir=os.path.join(s.tmp, "etcd"),
                  tls={"ca": pem["ca.crt"], "cert": pem["server.crt"], "key": pem["server.key"]})
    with s:
        log("etcd https listener %s (client certificates required)", s.etcd.tls_url)
        python_sees_client_cert_auth(s.etcd.tls_url, pem)
        bad_flags(s, pem)
        unloadable_libssl(s, pem)
        plain_agent(s)

        marks = os.path.join(s.tmp, "marks")
        os.makedirs(marks)
        s.put_action("mark", sh("echo run >> %s/$WORKFLOW_STEP_KEY" % marks))

        good_agent(s, "node-ip", s.etcd.tls_url, pem, marks)
        good_agent(s, "node-name", "https://localhost:%d" % s.etcd.tls_port, pem, marks)

        refused_agent(s, "node-nocert", ["--etcd-cacert", pem["ca.crt"]],
                      "bad certificate (the server wants a client certificate? none is "
                      "configured)", marks)
        refused_agent(s, "node-wrongca",
                      ["--etcd-cacert", pem["ca2.crt"], "--etcd-cert", pem["client.crt"],
                       "--etcd-key", pem["client.key"]],
                      "server certificate rejected: unable to get local issuer certificate",
                      marks)


run(main)
