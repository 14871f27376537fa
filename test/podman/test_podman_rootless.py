#!/usr/bin/env python3
"""DOCKER runner on rootless Podman: the real binary drives a non-root
user's `podman system service` socket, running as that user (the usual
rootless set-up: an agent of another user, root included, fails every step at
the create, because Podman, as the user, cannot reach the step's output
directory under the agent's 0700 --output-dir).

The test makes a user of its own (useradd, which also gives it subordinate
uid and gid ranges in /etc/subuid and /etc/subgid), starts the service as
that user with its storage, run root, runtime dir and socket in a temp dir,
imports the busybox image through the socket, and removes all of it again
(the service and its pause process by PID, then userdel).  Root is needed to
make the user, and uidmap (newuidmap) for the user's id ranges.

- a step with CONTAINER_NETWORK none SUCCEEDS, its output in the log, and a
  failing one ends FAILED with its exit code;
- CONTAINER_MEMORY on cgroup v1: rootless Podman applies no resource limit
  there, so the runner refuses such a step before it runs, saying why
  (on cgroup v2 the limit holds and the step is OOM-killed);
- a step on the default network: rootless Podman gives a container
  slirp4netns, which opens /dev/net/tun.  Where that device is root's alone
  (mode 0600, as on this project's machines) the step ends FAILED with
  Podman's "slirp4netns failed: open("/dev/net/tun"): Permission denied";
  where the user may open it, the step SUCCEEDS."""
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, Skip, run, check, status_of, response_of, log, T  # noqa: E402
from docker import docker_action  # noqa: E402

IMAGE = "wf/busybox:latest"


class Conn(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("d", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class RootlessPodman:
    """A user of its own and its Podman service, all removed on exit."""

    def __init__(self):
        self.user = "wfrl%d" % os.getpid()
        self.dir = tempfile.mkdtemp(prefix="wfrl-", dir="/tmp")
        self.sock = os.path.join(self.dir, "run", "podman.sock")
        self.proc = None
        self.made_user = False

    def pm(self):
        d = self.dir
        return ["setpriv", "--reuid", str(self.uid), "--regid", str(self.gid), "--init-groups",
                "podman", "--root", d + "/storage", "--runroot", d + "/runroot",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file"]

    def env(self):
        d = self.dir
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": d + "/home",
                "XDG_RUNTIME_DIR": d + "/run", "CONTAINERS_CONF": d + "/containers.conf"}

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def start(self):
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", self.user],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.made_user = True
        pw = pwd.getpwnam(self.user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        with open("/etc/subuid") as f:
            check(any(l.startswith(self.user + ":") for l in f), "useradd gave %s no subuid range",
                  self.user)
        for sub in ("home", "run", "storage", "runroot"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o700)
        with open(os.path.join(self.dir, "containers.conf"), "w") as f:
            # As podman-up.sh: the default RLIMIT_NOFILE is more than this host allows.
            f.write("[containers]\ndefault_ulimits = []\n")
        for root, dirs, files in os.walk(self.dir):
            for n in dirs + files:
                os.chown(os.path.join(root, n), self.uid, self.gid)
        os.chown(self.dir, self.uid, self.gid)
        self.log = open(os.path.join(self.dir, "podman.log"), "wb")
        self.proc = subprocess.Popen(self.pm() + ["system", "service", "--time", "0",
                                                  "unix://" + self.sock],
                                     env=self.env(), cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + T(30)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("rootless podman service exited: %s" % self.tail())
            try:
                if self.api("GET", "/_ping", raw=True)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("rootless podman service never answered: %s" % self.tail())
        st, v = self.api("GET", "/version")
        log("rootless service up (user %s, uid %d): %s %s", self.user, self.uid,
            v["Components"][0]["Name"], v["Version"])
        self.import_image()

    def tail(self):
        try:
            with open(os.path.join(self.dir, "podman.log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def api(self, method, path, body=None, raw=False, ctype="application/json"):
        c = Conn(self.sock)
        try:
            headers = {"Host": "d"}
            if body is not None:
                headers["Content-Type"] = ctype
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
            c.request(method, path if raw else "/v1.41" + path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            try:
                return r.status, json.loads(data) if data else None
            except ValueError:
                return r.status, data
        finally:
            c.close()

    def import_image(self):
        rootfs = os.path.join(self.dir, "rootfs")
        for sub in ("bin", "tmp", "etc", "proc", "sys", "dev"):
            os.makedirs(os.path.join(rootfs, sub))
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
        for a in subprocess.run(["/bin/busybox", "--list"], stdout=subprocess.PIPE,
                                text=True).stdout.split():
            if a != "busybox":
                os.symlink("busybox", os.path.join(rootfs, "bin", a))
        tar = subprocess.run(["tar", "--numeric-owner", "--owner=0", "--group=0", "-C", rootfs,
                              "-cf", "-", "."], stdout=subprocess.PIPE, check=True).stdout
        st, v = self.api("POST", "/images/create?fromSrc=-&repo=%s&changes=CMD%%20%%5B%%22sh%%22%%5D"
                         % IMAGE, body=tar, ctype="application/x-tar")
        check(st == 200, "image import: %s %s", st, v)
        shutil.rmtree(rootfs)

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            try:
                st, v = self.api("GET", "/containers/json?all=1")
                for c in v if st == 200 else []:
                    self.api("DELETE", "/containers/%s?force=1&v=1" % c["Id"])
            except (OSError, http.client.HTTPException, ValueError):
                pass
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The user namespace's keeper ("podman pause"), by its pid file.
        try:
            with open(os.path.join(self.dir, "run", "libpod", "tmp", "pause.pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        if self.made_user:
            # Anything else still running as the user (a conmon the removal
            # missed), by PID: userdel refuses a user with processes.
            for p in os.listdir("/proc"):
                if p.isdigit():
                    try:
                        if os.stat("/proc/" + p).st_uid == self.uid:
                            os.kill(int(p), signal.SIGKILL)
                    except OSError:
                        pass
            time.sleep(0.2)
            subprocess.run(["userdel", self.user], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def cgroup_v2():
    return os.statvfs("/sys/fs/cgroup") and \
        subprocess.run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"], stdout=subprocess.PIPE,
                       text=True).stdout.strip() == "cgroup2fs"


def main():
    if os.geteuid() != 0:
        raise Skip("not root: cannot make the test's user")
    for tool in ("podman", "newuidmap", "setpriv", "useradd"):
        if not shutil.which(tool):
            raise Skip("%s not installed (scripts/install-deps.sh: podman uidmap)" % tool)
    with RootlessPodman() as p, Scenario("podman-rootless") as s:
        # The agent runs as the user too; its log and output dirs go under
        # the scenario's temp dir.
        os.chown(s.tmp, p.uid, p.gid)
        os.environ["WF_AGENT_WRAPPER"] = "setpriv --reuid %d --regid %d --init-groups" % (
            p.uid, p.gid)
        s.agent(args=["--docker-host", "unix://" + p.sock])
        none = {"CONTAINER_NETWORK": "none"}
        s.c.put(s.action_key("ok"), docker_action("ok", ["sh", "-c", "echo out; echo err >&2; id -u"],
                                                  image=IMAGE, **none))
        s.c.put(s.action_key("four"), docker_action("four", "sh,-c,exit 4", image=IMAGE, **none))
        s.c.put(s.action_key("mem"), docker_action(
            "mem", ["sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}"],
            image=IMAGE, CONTAINER_MEMORY="8m", **none))
        s.c.put(s.action_key("net"), docker_action("net", "echo,networked", image=IMAGE))
        s.put_step("rl-ok", "ok@v1")
        s.put_step("rl-four", "four@v1")
        s.put_step("rl-mem", "mem@v1")

        st = s.wait_step("rl-ok", timeout=90)
        ss = status_of(st)
        log("rl-ok: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "SUCCEEDED", "rl-ok: %s %r", ss["status"], ss.get("message"))
        with open(response_of(st)["log_path"], "rb") as f:
            data = f.read()
        # uid 0 inside: the user's own uid, mapped.
        check(sorted(data.split()) == [b"0", b"err", b"out"], "rl-ok log %r", data)

        ss = status_of(s.wait_step("rl-four", timeout=60))
        log("rl-four: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "FAILED" and "exit code 4" in ss.get("message", ""),
              "rl-four: %s %r", ss["status"], ss.get("message"))

        ss = status_of(s.wait_step("rl-mem", timeout=60))
        log("rl-mem: %s %r", ss["status"], ss.get("message"))
        if cgroup_v2():
            check(ss["status"] == "FAILED" and "OOM" in ss.get("message", ""),
                  "rl-mem (cgroup v2): %s %r", ss["status"], ss.get("message"))
        else:
            check(ss["status"] == "FAILED" and "cgroup v1" in ss.get("message", "") and
                  "CONTAINER_MEMORY" in ss.get("message", ""),
                  "rl-mem (cgroup v1): %s %r", ss["status"], ss.get("message"))

        # Last: after slirp4netns failed once, Podman fails every later
        # network set-up of this user ("failed to mount runtime directory
        # for rootless netns").
        s.put_step("rl-net", "net@v1")
        ss = status_of(s.wait_step("rl-net", timeout=60))
        log("rl-net: %s %r", ss["status"], ss.get("message"))
        tun = os.stat("/dev/net/tun") if os.path.exists("/dev/net/tun") else None
        if tun and tun.st_mode & (stat.S_IROTH | stat.S_IWOTH) == (stat.S_IROTH | stat.S_IWOTH):
            check(ss["status"] == "SUCCEEDED", "rl-net (/dev/net/tun open to all): %s %r",
                  ss["status"], ss.get("message"))
        else:
            check(ss["status"] == "FAILED" and "slirp4netns failed" in ss.get("message", "") and
                  "/dev/net/tun" in ss.get("message", ""),
                  "rl-net (/dev/net/tun %s): %s %r",
                  "mode %o" % stat.S_IMODE(tun.st_mode) if tun else "missing", ss["status"],
                  ss.get("message"))


run(main)
