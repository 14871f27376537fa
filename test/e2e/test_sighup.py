#!/usr/bin/env python3
"""SIGHUP reloads the config file and the actions dir without dropping
running steps, and the systemd unit in contrib/ is valid:

1. the agent runs with --config (max-parallel 1) and --actions-dir; one
   `sleep` step RUNNING, a second one PENDDING behind it;
2. the config file gets max-parallel 2 and a changed restart-only setting
   (ttl), the actions dir a new action file; SIGHUP:
   - the second step starts at once while the first is still RUNNING,
   - the first step keeps running and SUCCEEDS with its whole output,
   - the new action works,
   - the ttl change is logged as needing a restart;
3. a broken config file on SIGHUP is logged and ignored; so is a broken
   action file (the old actions keep working); the agent keeps working;
4. log-format json takes effect on SIGHUP (the reload line is JSON);
5. the agent still stops cleanly (exit 0, no sanitizer report);
6. contrib/workflow-node.service passes `systemd-analyze verify` (when
   systemd-analyze is installed) and gives the drain time to finish.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, status_of, log, WORKFLOW_NODE, T  # noqa: E402
from agent import SOURCE_ROOT  # noqa: E402

SLEEPER = """\
name: sleeper
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,echo start; sleep $SECS; echo slept $SECS
run_params:
  - {key_name: SECS, default_value: "1"}
"""

# What a step inherits: SIGHUP must not be ignored in it (the agent ignores
# SIGHUP only until its loop handles it, see main-node.c).
SIGIGN = """\
name: sigign
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,grep SigIgn /proc/self/status
"""

HELLO = """\
name: hello
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,echo hello from a reloaded action
"""


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)  # the agent never reads half a file


def main():
    with Scenario("sighup") as s:
        adir = os.path.join(s.tmp, "actions")
        os.makedirs(adir)
        write(os.path.join(adir, "sleeper.yaml"), SLEEPER)
        write(os.path.join(adir, "sigign.yaml"), SIGIGN)
        cfg = os.path.join(s.tmp, "agent.yaml")
        write(cfg, "max-parallel: 1\nactions-dir: %s\n" % adir)
        a = s.agent(args=["--config", cfg])

        def wait_log(needle, since, timeout=20):
            deadline = time.time() + T(timeout)
            while time.time() < deadline:
                a.assert_alive("while waiting for %r" % needle)
                text = a.stderr_text()[since:]
                for line in text.splitlines():
                    if needle in line:
                        return line
                time.sleep(0.05)
            raise AssertionError("no log line with %r within %.0fs; stderr tail:\n%s"
                                 % (needle, T(timeout), a.stderr_tail()))

        def hup():
            mark = len(a.stderr_text())
            a.signal(signal.SIGHUP)
            return mark

        s.put_step("sigs", "sigign@v1")
        check(s.wait_step("sigs")["status"]["status"] == "SUCCEEDED", "sigs step")
        with open(s.log_file("sigs")) as f:
            mask = int(f.read().split()[1], 16)
        check(not mask & (1 << (signal.SIGHUP - 1)), "steps inherit an ignored SIGHUP: %x", mask)

        # 1. one step running, one waiting for the only slot
        s.put_step("long", "sleeper@v1", with_={"SECS": str(int(T(6)))})
        s.wait_step("long", "RUNNING", timeout=20)
        s.put_step("second", "sleeper@v1", with_={"SECS": "1"})
        time.sleep(T(1))
        check(status_of(s.get_step("second"))["status"] == "PENDDING",
              "second step should wait for the slot (max-parallel 1): %s",
              status_of(s.get_step("second")))

        # 2. more slots, a restart-only change, a new action file
        write(cfg, "max-parallel: 2\nactions-dir: %s\nttl: 20\n" % adir)
        write(os.path.join(adir, "hello.yaml"), HELLO)
        mark = hup()
        line = wait_log("SIGHUP: configuration reloaded", mark)
        check("max parallel 2" in line, "reload line: %s", line)
        wait_log("actions dir reloaded: 3 actions from files", mark)
        restart = wait_log("needs a restart", mark)
        check("--ttl" in restart and "--max-parallel" not in restart,
              "restart-only line: %s", restart)
        st = s.wait_step("second", ("RUNNING", "SUCCEEDED"), timeout=10)
        check(status_of(s.get_step("long"))["status"] == "RUNNING",
              "the long step must still run when the second starts: %s",
              status_of(s.get_step("long")))
        log("second step started after SIGHUP (%s) while long runs", status_of(st)["status"])
        s.put_step("hello1", "hello@v1")
        st = s.wait_step("hello1", timeout=20)
        check(status_of(st)["status"] == "SUCCEEDED", "the reloaded action: %s", status_of(st))
        with open(s.log_file("hello1")) as f:
            check(f.read() == "hello from a reloaded action\n", "hello1 log")
        st = s.wait_step("long", timeout=30)
        check(status_of(st)["status"] == "SUCCEEDED", "long step after SIGHUP: %s",
              status_of(st))
        with open(s.log_file("long")) as f:
            text = f.read()
        check(text == "start\nslept %d\n" % int(T(6)), "long step log: %r", text)
        check(s.wait_step("second")["status"]["status"] == "SUCCEEDED", "second step")

        # 3a. a broken config: logged, ignored, the agent keeps working
        write(cfg, "max-parallel: lots\nactions-dir: %s\n" % adir)
        mark = hup()
        line = wait_log("configuration not reloaded", mark)
        check("max-parallel" in line and "lots" in line, "broken config line: %s", line)
        write(cfg, "max-parallel: 2\nactions-dir: %s\nbogus-key: 1\n" % adir)
        mark = hup()
        line = wait_log("configuration not reloaded", mark)
        check("bogus-key" in line, "unknown key line: %s", line)
        s.put_step("after-bad", "hello@v1")
        check(s.wait_step("after-bad")["status"]["status"] == "SUCCEEDED",
              "a step after a bad reload")

        # 3b. a broken action file: the old set stays
        write(cfg, "max-parallel: 2\nactions-dir: %s\n" % adir)
        write(os.path.join(adir, "broken.yaml"), "name: broken\nversion: [v1\n")
        mark = hup()
        line = wait_log("configuration not reloaded", mark)
        check("broken.yaml" in line, "broken action file line: %s", line)
        s.put_step("after-broken", "hello@v1")
        check(s.wait_step("after-broken")["status"]["status"] == "SUCCEEDED",
              "the old actions must keep working")
        os.unlink(os.path.join(adir, "broken.yaml"))

        # 4. the log format changes live; the reload line is already JSON
        write(cfg, "max-parallel: 2\nactions-dir: %s\nlog-format: json\n" % adir)
        mark = hup()
        line = wait_log("configuration reloaded", mark)
        obj = json.loads(line)
        check(obj.get("level") == "info" and "ts" in obj and
              obj["msg"].startswith("SIGHUP: configuration reloaded") and
              "log format json" in obj["msg"], "json reload line: %s", line)
        s.put_step("json1", "hello@v1")
        check(s.wait_step("json1")["status"]["status"] == "SUCCEEDED", "json1")
        line = wait_log('"step":"json1"', mark)
        json.loads(line)

        # several SIGHUPs at once coalesce; the agent stays up
        mark = len(a.stderr_text())
        for _ in range(5):
            a.signal(signal.SIGHUP)
        wait_log("configuration reloaded", mark)
        time.sleep(T(0.5))
        a.assert_alive("after a burst of SIGHUPs")
        a.stop(timeout=T(30))

    systemd_unit()


def systemd_unit():
    unit = os.path.join(SOURCE_ROOT, "contrib", "workflow-node.service")
    with open(unit) as f:
        text = f.read()
    keys = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    check(keys.get("Type") == "simple" and keys.get("KillSignal") == "SIGTERM"
          and keys.get("KillMode") == "mixed" and keys.get("Restart") == "on-failure"
          and keys.get("EnvironmentFile") == "-/etc/default/workflow-node"
          and keys.get("ExecReload", "").endswith("-HUP $MAINPID"), "unit keys: %s", keys)
    # default --drain-timeout 30 + --stop-grace 10 + the agent's own 15 s
    check(int(keys["TimeoutStopSec"]) > 30 + 10 + 15, "TimeoutStopSec too short")
    sa = shutil.which("systemd-analyze")
    if not sa:
        log("systemd-analyze not installed: unit syntax not checked")
        return
    # verify needs an existing binary and user: point it at this build, as root
    tmpd = os.path.join("/tmp", "wf-unit-%d" % os.getpid())
    os.makedirs(tmpd, exist_ok=True)
    try:
        copy = os.path.join(tmpd, "workflow-node.service")
        with open(copy, "w") as f:
            f.write(re.sub(r"^ExecStart=\S+", "ExecStart=" + WORKFLOW_NODE,
                           re.sub(r"^(User|Group)=.*$", r"\1=root", text, flags=re.M),
                           flags=re.M))
        p = subprocess.run([sa, "verify", "--man=no", copy], capture_output=True, text=True,
                           timeout=60)
        check(p.returncode == 0 and not p.stderr.strip() and not p.stdout.strip(),
              "systemd-analyze verify: exit %d\n%s%s", p.returncode, p.stdout, p.stderr)
        log("systemd-analyze verify: clean")
    finally:
        shutil.rmtree(tmpd, ignore_errors=True)


run(main)
