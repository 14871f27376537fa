#!/usr/bin/env python3
"""wfctl against etcd with authentication enabled, with the agent's flags
and variables: --etcd-user with --etcd-password-file (WORKFLOW_ETCD_USER,
WORKFLOW_ETCD_PASSWORD_FILE, or the password itself in
WORKFLOW_ETCD_PASSWORD; there is no password flag, which ps would show).

* The agent and wfctl both authenticate as root; wfctl applies actions and a
  step, waits for the step with get, reads its log, follows a running one
  with logs -f, and runs one with run.  The variables work as the flags do.
* Without credentials wfctl exits 1 saying that etcd requires
  authentication and which flags give it; with a wrong password it exits 1
  with etcd's refusal.  Neither prints the password.
* A user without a password, a password without a user, a password in the
  variable and a file at once, and an unreadable or empty password file exit
  2 naming the flag or the variable."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, log, T, WFCTL, TestFailure  # noqa: E402
from agent import sanitizer_report  # noqa: E402
from wfctl_access import ACTIONS_YAML, clean_env  # noqa: E402

USER = "root"
PASSWORD = "s3cret-Pa55word-%d" % os.getpid()
WRONG = "wrong-Pa55word-%d" % os.getpid()


def main():
    with Scenario("wfctl_etcd_auth") as s:
        s.etcd.enable_auth(USER, PASSWORD)
        pwfile = os.path.join(s.tmp, "etcd-password")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        conn = ["--etcd", s.etcd.url, "--prefix", s.prefix]
        auth = ["--etcd-user", USER, "--etcd-password-file", pwfile]

        def ctl(*args, env=None, timeout=60, quiet=False):
            p = subprocess.run([WFCTL] + list(args), env=clean_env(env), cwd=s.tmp,
                               capture_output=True, text=True, timeout=T(timeout))
            if not quiet:
                log("wfctl %s%s -> exit %d%s%s",
                    " ".join(a.replace(s.tmp, "$T") for a in args),
                    " (env %s)" % " ".join(sorted(env)) if env else "", p.returncode,
                    ("\n  stdout: " + p.stdout.strip()[:300]) if p.stdout.strip() else "",
                    ("\n  stderr: " + p.stderr.strip()[:600]) if p.stderr.strip() else "")
            rep = sanitizer_report(p.stderr)
            check(rep is None, "wfctl %s: %s", " ".join(args), rep)
            check(PASSWORD not in p.stdout + p.stderr and WRONG not in p.stdout + p.stderr,
                  "wfctl %s printed a password", " ".join(args))
            return p

        def wait_status(key, statuses, timeout=30):
            deadline = time.time() + T(timeout)
            last = None
            while time.time() < deadline:
                p = ctl(*conn, *auth, "get", "steps", key, "-o", "json", quiet=True)
                if p.returncode == 0:
                    last = json.loads(p.stdout)
                    if (last.get("status") or {}).get("status") in statuses:
                        return last
                time.sleep(0.2)
            raise TestFailure("step %s did not reach %s: %s" % (key, statuses, last))

        # -- the agent, with the same credentials ------------------------------------
        s.agent(args=auth, register=False)
        deadline = time.time() + T(20)
        while True:
            p = ctl(*conn, *auth, "get", "nodes", "-o", "name", quiet=True)
            if p.returncode == 0 and p.stdout.split() == [s.node]:
                break
            check(time.time() < deadline, "the agent did not register: %s", p.stderr)
            time.sleep(0.2)
        log("wfctl with --etcd-user/--etcd-password-file sees the node registered")

        # -- everything works with credentials --------------------------------------
        af = os.path.join(s.tmp, "actions.yaml")
        with open(af, "w") as f:
            f.write(ACTIONS_YAML)
        p = ctl(*conn, *auth, "apply", "-f", af)
        check(p.returncode == 0, "apply with auth: exit %d: %s", p.returncode, p.stderr)
        sf = os.path.join(s.tmp, "step.json")
        with open(sf, "w") as f:
            json.dump({"kind": "step", "key": "auth1", "action": "echo@v1",
                       "with": {"MSG": "with-auth"}, "status": {"scheduled_node": s.node}}, f)
        p = ctl(*conn, *auth, "apply", "-f", sf)
        check(p.returncode == 0, "apply step with auth: exit %d", p.returncode)
        st = wait_status("auth1", ("SUCCEEDED", "FAILED"))
        check(st["status"]["status"] == "SUCCEEDED", "auth1: %s", st["status"])
        p = ctl(*conn, *auth, "get", "actions", "-o", "name")
        check(p.returncode == 0 and p.stdout.split() == ["echo@v1", "ticker@v1"],
              "get actions with auth: %r", p.stdout)
        p = ctl(*conn, *auth, "logs", "auth1")
        check(p.returncode == 0 and p.stdout == "msg=with-auth\n", "logs with auth: %r",
              p.stdout)

        tf = os.path.join(s.tmp, "tick.json")
        with open(tf, "w") as f:
            json.dump({"kind": "step", "key": "tick1", "action": "ticker@v1"}, f)
        p = ctl(*conn, *auth, "apply", "-f", tf, "--node", s.node)
        check(p.returncode == 0, "apply tick1: exit %d", p.returncode)
        wait_status("tick1", ("RUNNING", "SUCCEEDED"))
        p = ctl(*conn, *auth, "logs", "-f", "tick1")
        check(p.returncode == 0 and p.stdout == "tick 1\ntick 2\ntick 3\n",
              "logs -f with auth: exit %d %r", p.returncode, p.stdout)

        p = ctl(*conn, *auth, "run", "echo@v1", "--with", "MSG=run-auth", "--node", s.node)
        lines = p.stdout.splitlines()
        check(p.returncode == 0 and len(lines) == 2 and lines[1] == "msg=run-auth",
              "run with auth: exit %d %r", p.returncode, p.stdout)

        # the agent's variables: the file, or the password itself
        for env in ({"WORKFLOW_ETCD_USER": USER, "WORKFLOW_ETCD_PASSWORD_FILE": pwfile},
                    {"WORKFLOW_ETCD_USER": USER, "WORKFLOW_ETCD_PASSWORD": PASSWORD}):
            env = dict(env, WORKFLOW_ETCD=s.etcd.url, WORKFLOW_PREFIX=s.prefix)
            p = ctl("get", "steps", "auth1", "-o", "name", env=env)
            check(p.returncode == 0 and p.stdout == "auth1\n", "with %s: exit %d",
                  sorted(env), p.returncode)
        # a password file on the command line wins over the variable
        p = ctl(*conn, *auth, "get", "nodes", env={"WORKFLOW_ETCD_PASSWORD": WRONG})
        check(p.returncode == 0, "--etcd-password-file did not win over WORKFLOW_ETCD_PASSWORD")
        log("apply, get, logs, logs -f and run work with authentication, from flags and "
            "variables")

        # -- refused: exit 1, saying why ------------------------------------------------
        for cmd in (["get", "steps"], ["logs", "auth1"], ["apply", "-f", sf]):
            p = ctl(*conn, *cmd)
            check(p.returncode == 1 and "etcd requires authentication: give --etcd-user and "
                  "--etcd-password-file" in p.stderr,
                  "%s without credentials: exit %d %r", cmd[0], p.returncode, p.stderr)
        wrongfile = os.path.join(s.tmp, "wrong-password")
        with open(wrongfile, "w") as f:
            f.write(WRONG + "\n")
        p = ctl(*conn, "--etcd-user", USER, "--etcd-password-file", wrongfile, "get", "steps")
        check(p.returncode == 1 and "authentication as root failed" in p.stderr,
              "a wrong password: exit %d %r", p.returncode, p.stderr)
        log("without credentials and with a wrong password: exit 1, and why")

        # -- usage errors ----------------------------------------------------------------
        empty = os.path.join(s.tmp, "empty-password")
        open(empty, "w").close()
        cases = [
            (["--etcd-user", USER], {},
             "--etcd-user: needs --etcd-password-file (WORKFLOW_ETCD_PASSWORD_FILE"),
            ([], {"WORKFLOW_ETCD_USER": USER}, "WORKFLOW_ETCD_USER: needs --etcd-password-file"),
            (["--etcd-password-file", pwfile], {},
             "--etcd-password-file: needs --etcd-user (WORKFLOW_ETCD_USER)"),
            ([], {"WORKFLOW_ETCD_PASSWORD": PASSWORD},
             "WORKFLOW_ETCD_PASSWORD: needs --etcd-user"),
            (["--etcd-user", USER], {"WORKFLOW_ETCD_PASSWORD": PASSWORD,
                                     "WORKFLOW_ETCD_PASSWORD_FILE": pwfile},
             "WORKFLOW_ETCD_PASSWORD and WORKFLOW_ETCD_PASSWORD_FILE: give the password one "
             "way only"),
            (["--etcd-user", USER, "--etcd-password-file", pwfile + ".missing"], {},
             "--etcd-password-file: cannot read \"%s.missing\"" % pwfile),
            (["--etcd-user", USER, "--etcd-password-file", empty], {},
             "--etcd-password-file: \"%s\" is empty" % empty),
            (["--etcd-password", PASSWORD], {}, "--etcd-password: unknown flag"),
        ]
        for args, extra, want in cases:
            p = ctl(*conn, *args, "get", "steps", env=extra)
            out = p.stdout + p.stderr
            check(p.returncode == 2, "%s %s: exit %d, want 2", args, sorted(extra),
                  p.returncode)
            check(want in out, "%s %s: %r does not say %r", args, sorted(extra), out, want)
        log("bad flag combinations exit 2 naming the flag or variable, no password printed")


run(main)
