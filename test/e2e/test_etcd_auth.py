#!/usr/bin/env python3
"""etcd authentication: etcd runs with auth enabled (user root) and "simple"
tokens that expire after 2 s without use.

* Flags: a password without a user, a user without a password, or both a
  password and a password file exit 2 naming the flag, never printing the
  password.
* An agent with a wrong password (from WORKFLOW_ETCD_PASSWORD) stays up,
  keeps retrying with a clear log line that never holds the password, and
  runs nothing: its step stays PENDDING.
* An agent with the right password (from --etcd-password-file, trailing
  newline stripped) registers and runs steps; between steps its token
  expires, and each step still runs exactly once.  Then etcd is frozen
  (SIGSTOP) for longer than the token TTL: with --etcd-watch-idle 3 the
  watches notice the stall and reconnect after the thaw, when etcd has
  dropped the token (a watch create with a stale token is answered
  "created" + "canceled: Unauthenticated"); steps written afterwards run.
  (A restart would not do: etcd replays authentications from its WAL, so
  tokens survive it.)  The password appears in no log line."""
import base64
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import (Scenario, run, check, sh, status_of, log, T, EtcdClient,  # noqa: E402
                 EtcdError, WORKFLOW_NODE)

TOKEN_TTL = 2
# Well above twice the token TTL: a simple token's TTL restarts with each
# use, and the agent's two watches (steps, actions) each probe when idle, at
# offsets of their own; with IDLE = 3 two interleaved probes could come
# every 1.5 s and keep the token alive for the whole test (seen under ASan).
IDLE = 6
FREEZE = 14  # > idle deadline + probe timeout, and > TOKEN_TTL
USER = "root"
PASSWORD = "s3cret-Pa55word-%d" % os.getpid()
WRONG = "wrong-Pa55word-%d" % os.getpid()


class AuthClient(EtcdClient):
    """The harness client with a token: authenticates lazily and once more
    when etcd says the token is invalid (expired, or etcd restarted)."""

    def __init__(self, url, user, password, **kw):
        super().__init__(url, **kw)
        self.user, self.password, self.token = user, password, None

    def _post(self, path, body, token):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        req = urllib.request.Request(self.url + "/v3/" + path, data=json.dumps(body).encode(),
                                     method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise EtcdError(e.code, e.read().decode(errors="replace")) from None

    def call(self, path, body, retry_for=0.0):
        deadline = time.time() + retry_for
        for attempt in range(2):
            while True:
                try:
                    if not self.token:
                        self.token = self._post("auth/authenticate",
                                                {"name": self.user, "password": self.password},
                                                None)["token"]
                    return self._post(path, body, self.token)
                except EtcdError as e:
                    if attempt == 0 and (e.status == 401 or "invalid auth token" in e.body):
                        self.token = None
                        break
                    raise
                except (OSError, http.client.HTTPException):
                    if time.time() >= deadline:
                        raise
                    time.sleep(0.1)
        raise EtcdError(401, "token refused twice")


def bad_flags(s):
    """Exit 2 naming the flag; the password never echoed."""
    pwfile = os.path.join(s.tmp, "pw-for-flags")
    with open(pwfile, "w") as f:
        f.write(PASSWORD + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    cases = [
        (["--etcd-password", PASSWORD], {}, "--etcd-password: needs --etcd-user"),
        ([], {"WORKFLOW_ETCD_PASSWORD": PASSWORD}, "WORKFLOW_ETCD_PASSWORD: needs --etcd-user"),
        (["--etcd-password-file", pwfile], {}, "--etcd-password-file: needs --etcd-user"),
        (["--etcd-user", USER], {}, "--etcd-user: needs --etcd-password"),
        (["--etcd-user", USER, "--etcd-password", PASSWORD, "--etcd-password-file", pwfile], {},
         "give the password one way only"),
        (["--etcd-user", USER, "--etcd-password-file", pwfile + ".missing"], {},
         "--etcd-password-file: cannot read"),
    ]
    for args, extra, want in cases:
        r = subprocess.run([WORKFLOW_NODE, "--etcd", s.etcd.url] + args, env=dict(env, **extra),
                           capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        check(r.returncode == 2, "%s %s: exit %d, want 2: %s", args, extra, r.returncode, out)
        check(want in out, "%s %s: %r does not say %r", args, extra, out, want)
        check(PASSWORD not in out, "%s %s: the password is printed: %r", args, extra, out)
    log("bad flag combinations exit 2 without printing the password")


def main():
    with Scenario("etcd_auth", etcd_args=["--auth-token", "simple",
                                          "--auth-token-ttl", str(TOKEN_TTL)]) as s:
        s.etcd.enable_auth(USER, PASSWORD)
        s.tls_client_without_cn()   # WF_E2E_ETCD=https: etcd refuses a CN with auth on
        s.c = AuthClient(s.etcd.url, USER, PASSWORD)
        check(s.c.get("anything") is None, "the authenticated test client works")
        try:  # auth really is on: a request without a token is refused
            EtcdClient(s.etcd.url).get("anything")
            check(False, "etcd answered a request without a token")
        except EtcdError as e:
            log("without a token etcd says: HTTP %d %s", e.status, e.body.strip()[:100])

        bad_flags(s)
        marks = os.path.join(s.tmp, "marks")
        os.makedirs(marks)
        s.put_action("mark", sh("echo run >> %s/$WORKFLOW_STEP_KEY" % marks))

        # -- a wrong password -------------------------------------------------
        wrong = s.agent(name="node-wrong", args=["--etcd-user", USER],
                        env={"WORKFLOW_ETCD_PASSWORD": WRONG}, register=False)
        s.put_step("w1", "mark@v1", node="node-wrong")
        time.sleep(T(5))
        wrong.assert_alive("with a wrong password")
        lines = wrong.stderr_lines_with("authentication as root failed")
        check(lines, "no clear log line about the refused password; stderr:\n%s",
              wrong.stderr_tail())
        log("wrong password: %s", lines[0].strip())
        check(WRONG not in wrong.stderr_text(), "the wrong password is in the agent's log")
        check(status_of(s.get_step("w1"))["status"] == "PENDDING",
              "a step ran with a wrong password: %s", status_of(s.get_step("w1")))
        check(not os.path.exists(os.path.join(marks, "w1")), "step w1 ran")
        check(s.c.get(s.node_key("node-wrong")) is None,
              "the node registered with a wrong password")
        rc = wrong.stop(timeout=T(30), expect_clean=False)
        check(rc == 0, "the agent with the wrong password exited %s on SIGTERM", rc)
        wrong.check_sanitizers()
        log("the agent with the wrong password ran nothing and exited (status %s)",
            wrong.proc.returncode)

        # -- the right password, from a file ----------------------------------
        pwfile = os.path.join(s.tmp, "etcd-password")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")  # `echo pw > file`: the newline is not part of it
        os.chmod(pwfile, 0o600)
        a = s.agent(args=["--etcd-user", USER, "--etcd-password-file", pwfile,
                          "--log-level", "debug", "--etcd-watch-idle", str(IDLE)])
        keys = []
        for i in range(3):
            k = "ok%d" % i
            s.put_step(k, "mark@v1")
            st = s.wait_step(k, timeout=30)
            check(status_of(st)["status"] == "SUCCEEDED", "%s: %s", k, status_of(st))
            keys.append(k)
            time.sleep(IDLE + 1.5)  # the agent's token expires while it is idle
        refused = a.stderr_lines_with("auth token was refused")
        check(refused, "the agent's token never expired during the test; stderr:\n%s",
              a.stderr_tail())
        log("the agent got a new token %d times", len(refused))

        stalls = len(a.stderr_lines_with("stalled"))
        s.etcd.pause()
        time.sleep(FREEZE)
        s.etcd.resume()
        log("etcd frozen for %ds: the agent's token expired meanwhile", FREEZE)
        check(len(a.stderr_lines_with("stalled")) > stalls, "no stalled watch logged")
        for i in range(3):
            k = "after%d" % i
            s.put_step(k, "mark@v1")
            keys.append(k)
        got = s.wait_steps(keys[3:], timeout=60)
        for k in keys[3:]:
            check(status_of(got[k])["status"] == "SUCCEEDED", "%s: %s", k, status_of(got[k]))
        deadline = time.time() + T(20)
        while s.c.get(s.node_key()) is None and time.time() < deadline:
            time.sleep(0.2)
        check(s.c.get(s.node_key()) is not None, "node not registered after the restart")
        for k in keys:
            with open(os.path.join(marks, k)) as f:
                n = len(f.read().splitlines())
            check(n == 1, "step %s ran %d times", k, n)
        check(PASSWORD not in a.stderr_text(), "the password is in the agent's log")
        check(base64.b64encode(PASSWORD.encode()).decode() not in a.stderr_text(),
              "the password (base64) is in the agent's log")
        a.assert_alive()


run(main)
