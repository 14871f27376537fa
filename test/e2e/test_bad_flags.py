#!/usr/bin/env python3
"""Bad flags: a bad flag, flag value, environment value or config file value
exits 2 with a message that names it; --help and --version exit 0."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import run, check, log, WORKFLOW_NODE  # noqa: E402
from agent import sanitizer_report  # noqa: E402

NOWHERE = ["--etcd", "http://127.0.0.1:9"]  # a port nothing listens on


def node(args, env=None, timeout=10):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("WORKFLOW_"):
            del e[k]
    if env:
        e.update(env)
    try:
        p = subprocess.run([WORKFLOW_NODE] + args, capture_output=True, text=True, env=e,
                           timeout=timeout, stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return None, "", "(still running after %ds)" % timeout
    return p.returncode, p.stdout, p.stderr


def main():
    check(os.access(WORKFLOW_NODE, os.X_OK), "no binary at %s", WORKFLOW_NODE)
    tmp = tempfile.mkdtemp(prefix="wf-e2e-bad_flags-")

    def conf(name, text):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    cases = [
        # (args, env, words stderr must contain)
        (["--max-parallel", "abc"], None, ["max-parallel", "abc"]),
        (["--max-parallel=abc"], None, ["max-parallel", "abc"]),
        (["--max-parallel", "0"], None, ["max-parallel"]),
        (["--bogus"], None, ["--bogus"]),
        (["--ttl", "0"], None, ["ttl"]),
        (["--ttl", "30x"], None, ["ttl", "30x"]),
        (["--stop-grace", "-1"], None, ["stop-grace"]),
        (["--resync", ""], None, ["resync"]),
        (["--max-parallel", "99999999999999999999"], None, ["max-parallel"]),
        (["--log-format", "xml"], None, ["log-format", "xml"]),
        (["--log-level", "loud"], None, ["log-level", "loud"]),
        (["--etcd-http2", "maybe"], None, ["--etcd-http2", "maybe", "auto, off"]),
        (["--name"], None, ["name"]),
        (["stray-argument"], None, ["stray-argument"]),
        (["--config", os.path.join(tmp, "missing.yaml")], None, ["missing.yaml"]),
        (["--config", conf("unknown.yaml", "name: n1\nbogus-key: 1\n")], None, ["bogus-key"]),
        (["--config", conf("badval.yaml", "max-parallel: abc\n")], None, ["max-parallel", "abc"]),
        (["--config", conf("badttl.yaml", "ttl: 0\n")], None, ["ttl"]),
        (["--config", conf("broken.yaml", "name: [unclosed\n")], None, ["broken.yaml"]),
        ([], {"WORKFLOW_CONFIG": conf("envconf.yaml", "log-format: xml\n")}, ["log-format"]),
    ]
    failures = []
    for args, env, words in cases:
        full = args if any(a.startswith("--etcd") for a in args) else NOWHERE + args
        rc, out, err = node(full, env)
        label = " ".join(args) + (" with env %s" % env if env else "")
        first = (err.strip().splitlines() or [""])[0]
        if sanitizer_report(err):
            failures.append("%s: %s" % (" ".join(args), sanitizer_report(err)))
        log("%-60s -> exit %s: %s", label[:60], rc, first[:150])
        if rc != 2:
            failures.append("%s: exit %s, want 2 (stderr: %s)" % (label, rc, err.strip()[:300]))
            continue
        for w in words:
            if w not in err:
                failures.append("%s: stderr does not name %r: %s" % (label, w, err.strip()[:300]))

    rc, out, err = node(["--help"])
    log("--help -> exit %s, %d bytes", rc, len(out))
    if rc != 0 or "--max-parallel" not in out or "--etcd" not in out:
        failures.append("--help: exit %s, output %r" % (rc, (out + err)[:300]))
    rc, out, err = node(["--version"])
    log("--version -> exit %s: %s", rc, out.strip())
    if rc != 0 or not any(ch.isdigit() for ch in out):
        failures.append("--version: exit %s, output %r" % (rc, (out + err)[:300]))
    # a good config file is accepted (the process runs until stopped)
    good = conf("good.yaml", "name: n1\nmax-parallel: 4\nttl: 10\nlog-format: json\n")
    rc, out, err = node(NOWHERE + ["--config", good], timeout=2)
    log("good config -> %s", "still running (ok)" if rc is None else "exit %s" % rc)
    if rc is not None:
        failures.append("a good config file made the node exit %s: %s" % (rc, err.strip()[:300]))
    shutil.rmtree(tmp, ignore_errors=True)
    check(not failures, "%d problem(s):\n  %s", len(failures), "\n  ".join(failures))


run(main)
