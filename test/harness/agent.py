"""Runs the real binaries of the build for the end-to-end tests.

The build dir comes from WF_BUILD_ROOT (meson test sets it, see
test/meson.build); without it, <source root>/build is used.

    a = Agent(etcd_url, "node-1", prefix="t1", log_dir="/tmp/x/runner_log",
              workdir="/tmp/x", args=["--max-parallel", "8"]).start()
    a.wait_registered(client)
    a.rss_kb(); a.mapped("/libssl.so"); a.pause(); a.resume(); a.kill9()
    a.tcp_connections(etcd.tls_port)   # inodes of its ESTABLISHED sockets there
    a.stop()      # SIGTERM, waits, checks exit status 0 and no sanitizer report
"""
import os
import re
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("WF_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
BUILD_ROOT = os.environ.get("WF_BUILD_ROOT") or os.path.join(SOURCE_ROOT, "build")
# WF_NODE_BINARY / WF_WFCTL_BINARY point the tests at other binaries (for
# example a stand-in while developing the tests).
WORKFLOW_NODE = os.environ.get("WF_NODE_BINARY") or os.path.join(BUILD_ROOT, "src", "workflow-node")
WFCTL = os.environ.get("WF_WFCTL_BINARY") or os.path.join(BUILD_ROOT, "src", "wfctl")

# What ASan, LSan and UBSan print when they find something.
# ... and what the agent prints when uv_loop_close() fails at exit (handles
# left open): every run must end with uv_loop_close() == 0.
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: |"
                          r"SUMMARY: (Address|Undefined|Leak)|"
                          r"event loop closed with live handles")


def sanitizer_report(text):
    """The first sanitizer report line in text, or None."""
    m = SANITIZER_RE.search(text)
    if not m:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    return text[start:end if end >= 0 else len(text)]


def under_asan():
    return os.environ.get("WF_ASAN") == "1"


class AgentError(AssertionError):
    pass


class Agent:
    def __init__(self, etcd_url, name, prefix=None, log_dir=None, workdir=None, args=(),
                 env=None, stderr_path=None, binary=None):
        self.etcd_url = etcd_url
        self.name = name
        self.prefix = prefix
        self.log_dir = log_dir
        self.workdir = workdir or os.getcwd()
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.pop("WORKFLOW_CONFIG", None)
        if env:
            self.env.update(env)
        self.binary = binary or WORKFLOW_NODE
        self.stderr_path = stderr_path or os.path.join(self.workdir, "agent-%s.stderr" % name)
        self.proc = None
        self.starts = 0
        self.checked_upto = 0  # stderr offset already checked for sanitizer reports

    def argv(self):
        # WF_AGENT_WRAPPER runs the agent under a tool, e.g. valgrind.
        wrap = os.environ.get("WF_AGENT_WRAPPER", "").split()
        a = wrap + [self.binary, "--name", self.name, "--etcd", self.etcd_url]
        if self.prefix:
            a += ["--prefix", self.prefix]
        if self.log_dir:
            a += ["--log-dir", self.log_dir]
        return a + self.args

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        if not os.access(self.binary, os.X_OK):
            raise AgentError("no agent binary at %s (build first)" % self.binary)
        self.starts += 1
        with open(self.stderr_path, "ab") as f:
            f.write(b"==== start %d: %s\n" % (self.starts, " ".join(self.argv()).encode()))
            f.flush()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=f, cwd=self.workdir, env=self.env)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self, what=""):
        if not self.alive():
            rc = self.proc.returncode if self.proc else None
            raise AgentError("agent %s is not running%s (exit status %s); stderr tail:\n%s"
                             % (self.name, " " + what if what else "", rc, self.stderr_tail()))

    def wait_registered(self, client, timeout=20):
        """Waits until the node key exists under the prefix (the agent is up
        and talking to etcd)."""
        key = "%s/workflow/service/node/%s" % (self.prefix or "inforboard", self.name)
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.assert_alive("while waiting for its registration")
            try:
                if client.get(key):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AgentError("agent %s did not register %s within %ds; stderr tail:\n%s"
                         % (self.name, key, timeout, self.stderr_tail()))

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def pause(self):
        self.signal(signal.SIGSTOP)

    def resume(self):
        self.signal(signal.SIGCONT)

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.check_sanitizers()

    def stop(self, timeout=60, expect_clean=True):
        """SIGTERM and wait.  With expect_clean, the exit status must be 0
        and stderr must hold no sanitizer report.  Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if expect_clean:
                    raise AgentError("agent %s did not exit within %ds of SIGTERM; stderr tail:\n%s"
                                     % (self.name, timeout, self.stderr_tail()))
        rc = self.proc.returncode
        if expect_clean:
            self.check_sanitizers()
            if rc != 0:
                raise AgentError("agent %s exited with status %s after SIGTERM; stderr tail:\n%s"
                                 % (self.name, rc, self.stderr_tail()))
        return rc

    def check_sanitizers(self):
        text = self.stderr_text()
        rep = sanitizer_report(text[self.checked_upto:])
        self.checked_upto = len(text)
        if rep:
            raise AgentError("sanitizer/exit report in agent %s stderr: %s\n%s"
                             % (self.name, rep, self.stderr_tail(80)))

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stderr_tail(self, n=40):
        return "\n".join(self.stderr_text().splitlines()[-n:])

    def stderr_lines_with(self, needle):
        return [l for l in self.stderr_text().splitlines() if needle in l]

    def mapped(self, needle):
        """Paths of the files mapped into the agent whose path contains
        needle (from /proc/PID/maps; [] if it is gone)."""
        paths = set()
        try:
            with open("/proc/%d/maps" % self.proc.pid) as f:
                for line in f:
                    parts = line.split(None, 5)
                    if len(parts) == 6 and needle in parts[5]:
                        paths.add(parts[5].strip())
        except (OSError, AttributeError):
            pass
        return sorted(paths)

    def tcp_connections(self, remote_port):
        """The inodes of the agent's ESTABLISHED TCP sockets to remote_port
        on any address (from /proc/PID/fd and /proc/net/tcp{,6}; an empty
        set if it is gone).  Sampled often, this counts the connections an
        agent keeps to one etcd listener."""
        return tcp_connections(self.proc.pid if self.proc else None, remote_port)

    def rss_kb(self):
        """VmRSS of the agent process in kB (0 if it is gone)."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, AttributeError):
            pass
        return 0


def socket_inodes(pid):
    """The inodes of pid's sockets (from /proc/PID/fd; empty if it is gone)."""
    fd_dir = "/proc/%d/fd" % pid
    out = set()
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def tcp_connections(pid, remote_port):
    """See Agent.tcp_connections: ESTABLISHED sockets of pid to remote_port."""
    if not pid:
        return set()
    inodes = socket_inodes(pid)
    if not inodes:
        return set()
    found = set()
    # The process's own network namespace, in case it differs from ours.
    for table in ("/proc/%d/net/tcp" % pid, "/proc/%d/net/tcp6" % pid):
        try:
            with open(table) as f:
                next(f, None)  # the header
                for line in f:
                    cols = line.split()
                    # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                    if len(cols) < 10 or cols[3] != "01":
                        continue
                    if int(cols[2].rsplit(":", 1)[1], 16) == remote_port and cols[9] in inodes:
                        found.add(cols[9])
        except OSError:
            pass
    return found


def run_wfctl(args, etcd_url, prefix, timeout=60, env=None, cwd=None, stdin_data=None):
    """Runs wfctl with WORKFLOW_ETCD / WORKFLOW_PREFIX set (and --etcd /
    --prefix on the command line); returns CompletedProcess (text)."""
    e = dict(os.environ, WORKFLOW_ETCD=etcd_url, WORKFLOW_PREFIX=prefix)
    if env:
        e.update(env)
    return subprocess.run([WFCTL] + list(args), env=e, cwd=cwd, timeout=timeout,
                          input=stdin_data, capture_output=True, text=True)
