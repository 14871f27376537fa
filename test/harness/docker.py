"""A private Docker Engine for tests: its own socket, data-root and exec-root
under a temporary dir, the wf/busybox:latest image made from busybox-static,
and private docker-registry instances on free loopback ports holding copies
of it (pushed once per build dir, then copied: docker-up.sh's template).  Started and stopped by PID through
docker-up.sh / docker-down.sh (the same scripts people and the demo use), so
several can run side by side.  Used by with_docker.py (C tests) and by the
end-to-end tests.

WF_ENGINE=podman makes it a private Podman service instead (podman-up.sh /
podman-down.sh: the same image, registries and API on its own socket), so
that the same tests run against both engines (test/podman/meson.build).
Where the engines differ in a way a test can see, the test asks
ENGINE / d.podman.

    with Dockerd(auth=True) as d:
        d.host            # "unix:///tmp/wf-docker-XXXX/docker.sock"
        d.image           # "wf/busybox:latest" (present locally)
        d.registry        # "127.0.0.1:PORT": holds wf/busybox:latest
        d.auth_registry   # same behind htpasswd auth (user wf, password wfpass)
        d.broken_image    # REGISTRY/wf/broken:1: pulling it fails mid-stream
        d.stop_dockerd()  # SIGTERM, like an engine restart (kill=True: SIGKILL)
        d.start_dockerd() # back on the same socket and data
        d.api("GET", "/containers/json?all=1")  # -> (status, parsed JSON or text)
        d.containers(label="workflow.node=n1")  # the list, all states
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
# "docker" (dockerd) or "podman" (`podman system service`).
ENGINE = os.environ.get("WF_ENGINE", "docker") or "docker"
if ENGINE not in ("docker", "podman"):
    raise SystemExit("WF_ENGINE=%s: want docker or podman" % ENGINE)
# Per engine: its scripts, its pid file and log (<name>.pid, <name>.log) and
# its socket in the state dir.
_DAEMON = {"docker": "dockerd", "podman": "podman"}
_SOCK = {"docker": "docker.sock", "podman": "podman.sock"}
# WF_DOCKER_TIMING=1: the scripts print the time of each phase, passed on to
# our stderr.
_TIMING = os.environ.get("WF_DOCKER_TIMING") == "1"


class Dockerd:
    def __init__(self, state_dir=None, registry=True, auth=False, broken=False, engine=None):
        self.owns_dir = state_dir is None
        # engine: "docker" or "podman" (default: WF_ENGINE, else docker).
        self.engine = engine or ENGINE
        self.podman = self.engine == "podman"
        self.up_script = os.path.join(HERE, "%s-up.sh" % self.engine)
        self.down_script = os.path.join(HERE, "%s-down.sh" % self.engine)
        # Short: containerd puts a unix socket (108-byte limit) under it.
        self.dir = state_dir or tempfile.mkdtemp(prefix="wfd-" if not self.podman else "wfp-",
                                                 dir="/tmp")
        self.want_registry = registry
        self.want_auth = auth
        self.want_broken = broken
        self.env = {}

    def _script_env(self, **extra):
        env = dict(os.environ, WF_DOCKER_DIR=self.dir,
                   WF_DOCKER_REGISTRY="1" if self.want_registry else "0",
                   WF_DOCKER_AUTH="1" if self.want_auth else "0",
                   WF_DOCKER_BROKEN="1" if self.want_broken else "0")
        env.update(extra)
        return env

    def start(self, timeout=120):
        """Runs docker-up.sh (idempotent: starts only what is not alive)."""
        p = subprocess.run(["bash", self.up_script], env=self._script_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, text=True)
        if p.returncode != 0:
            log = ""
            try:
                with open(os.path.join(self.dir, _DAEMON[self.engine] + ".log"),
                          errors="replace") as f:
                    log = f.read()[-3000:]
            except OSError:
                pass
            raise RuntimeError("%s failed (%d): %s\n%s" % (os.path.basename(self.up_script),
                                                             p.returncode, p.stderr, log))
        if _TIMING:
            sys.stderr.write("".join(l + "\n" for l in p.stderr.splitlines() if "timing]" in l))
        env = {}
        for line in p.stdout.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
        self.env = env
        return self

    # The values docker-up.sh printed.
    @property
    def host(self):
        return "unix://" + self.sock

    @property
    def sock(self):
        return os.path.join(self.dir, _SOCK[self.engine])

    @property
    def image(self):
        return self.env.get("TEST_IMAGE", "wf/busybox:latest")

    @property
    def registry(self):
        return self.env.get("REGISTRY", "")

    @property
    def auth_registry(self):
        return self.env.get("AUTH_REGISTRY", "")

    @property
    def broken_image(self):
        return "%s/wf/broken:1" % self.registry if self.want_broken and self.registry else ""

    @property
    def dockerd_pid(self):
        try:
            with open(os.path.join(self.dir, _DAEMON[self.engine] + ".pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop_dockerd(self, kill=False):
        """Stops only the engine (its registries stay), by PID.  Podman's
        containers keep running meanwhile (conmon holds them)."""
        subprocess.run(["bash", self.down_script], env=self._script_env(ONLY="dockerd",
                                                            KILL="1" if kill else "0"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def start_dockerd(self):
        """Starts dockerd again on the same socket and data (and anything else
        that is not alive)."""
        return self.start()

    def api(self, method, path, body=None, timeout=60):
        """One Engine API 1.41 request on the socket: (status, JSON or text)."""
        conn = _UnixHTTPConnection(self.sock, timeout)
        try:
            headers = {"Host": "d"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, "/v1.41" + path, body=data, headers=headers)
            r = conn.getresponse()
            raw = r.read().decode(errors="replace")
            try:
                return r.status, json.loads(raw) if raw else None
            except ValueError:
                return r.status, raw
        finally:
            conn.close()

    def containers(self, label=None):
        """Every container (running or not), optionally only those with label
        ("key=value")."""
        q = "/containers/json?all=1"
        if label:
            q += "&filters=" + urllib.parse.quote(json.dumps({"label": [label]}))
        st, v = self.api("GET", q)
        if st != 200:
            raise RuntimeError("containers/json: %s %s" % (st, v))
        return v

    def cleanup(self):
        _live.discard(self)
        subprocess.run(["bash", self.down_script],
                       env=self._script_env(CLEAN="1" if self.owns_dir else "0"),
                       stdout=subprocess.DEVNULL, stderr=None if _TIMING else subprocess.DEVNULL,
                       timeout=120)
        if self.owns_dir and os.path.isdir(self.dir):
            # docker-down.sh refused (mounts left): at least say so.
            print("docker harness: %s left behind (mounts?)" % self.dir)

    def __enter__(self):
        _cleanup_on_sigterm(self)
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()


# meson test's timeout sends SIGTERM to the test's process group and SIGKILL
# 0.5 s later, which would leave dockerd (in its own session) running.  A
# process that has no SIGTERM handler of its own gets one: it hands every live
# Dockerd's cleanup to docker-down.sh in a new session, then exits 124.
_live = set()


def _on_sigterm(*_):
    for d in list(_live):
        _live.discard(d)
        subprocess.Popen(["bash", d.down_script], env=d._script_env(CLEAN="1" if d.owns_dir else "0"),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        d.cleanup = lambda: None  # the detached docker-down.sh does it
    sys.exit(124)


def _cleanup_on_sigterm(d):
    _live.add(d)
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        pass


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("d", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


# ---- for the end-to-end tests (test/e2e/test_docker_*.py) -----------------------------

def docker_action(name, argv=None, image=None, version="v1", **params):
    """An action object for the DOCKER runner: IMAGE_URL (+ IMAGE_VERSION if
    the image has a ":tag"), IMAGE_CMD as a JSON array (argv a list) or
    verbatim (argv a string: the comma form), plus any other runner params."""
    rp = {}
    if image:
        repo, _, tag = image.rpartition(":")
        if repo and "/" not in tag:
            rp["IMAGE_URL"], rp["IMAGE_VERSION"] = repo, tag
        else:
            rp["IMAGE_URL"] = image
    if argv is not None:
        rp["IMAGE_CMD"] = argv if isinstance(argv, str) else json.dumps(argv)
    rp.update(params)
    return {"name": name, "version": version, "runner_type": "DOCKER",
            "runner_params": rp, "run_params": []}


def available(engine=None):
    """True when the engine (dockerd, or podman under WF_ENGINE=podman) and
    busybox-static are installed (else tests skip)."""
    if (engine or ENGINE) == "podman":
        have = shutil.which("podman") is not None
    else:
        have = os.access("/usr/sbin/dockerd", os.X_OK)
    return have and os.path.exists("/bin/busybox") and shutil.which("curl") is not None
