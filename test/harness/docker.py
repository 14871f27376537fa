"""A private Docker Engine for tests: its own socket, data-root and exec-root
under a temporary dir, the wf/busybox:latest image imported from
busybox-static, and private docker-registry instances on free loopback ports
holding pushed copies of it.  Started and stopped by PID through
docker-up.sh / docker-down.sh (the same scripts people and the demo use), so
several can run side by side.  Used by with_docker.py (C tests) and by the
end-to-end tests.

    with Dockerd(auth=True) as d:
        d.host            # "unix:///tmp/wf-docker-XXXX/docker.sock"
        d.image           # "wf/busybox:latest" (present locally)
        d.registry        # "127.0.0.1:PORT": holds wf/busybox:latest
        d.auth_registry   # same behind htpasswd auth (user wf, password wfpass)
        d.broken_image    # REGISTRY/wf/broken:1: pulling it fails mid-stream
        d.stop_dockerd()  # SIGTERM, like an engine restart (kill=True: SIGKILL)
        d.start_dockerd() # back on the same socket and data
"""
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
UP = os.path.join(HERE, "docker-up.sh")
DOWN = os.path.join(HERE, "docker-down.sh")


class Dockerd:
    def __init__(self, state_dir=None, registry=True, auth=False, broken=False):
        self.owns_dir = state_dir is None
        # Short: containerd puts a unix socket (108-byte limit) under it.
        self.dir = state_dir or tempfile.mkdtemp(prefix="wfd-", dir="/tmp")
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
        p = subprocess.run(["bash", UP], env=self._script_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, text=True)
        if p.returncode != 0:
            log = ""
            try:
                with open(os.path.join(self.dir, "dockerd.log"), errors="replace") as f:
                    log = f.read()[-3000:]
            except OSError:
                pass
            raise RuntimeError("docker-up.sh failed (%d): %s\n%s" % (p.returncode, p.stderr, log))
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
        return self.env.get("DOCKER_HOST", "unix://%s/docker.sock" % self.dir)

    @property
    def sock(self):
        return os.path.join(self.dir, "docker.sock")

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
            with open(os.path.join(self.dir, "dockerd.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop_dockerd(self, kill=False):
        """Stops only dockerd (its registries stay), by PID."""
        subprocess.run(["bash", DOWN], env=self._script_env(ONLY="dockerd",
                                                            KILL="1" if kill else "0"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def start_dockerd(self):
        """Starts dockerd again on the same socket and data (and anything else
        that is not alive)."""
        return self.start()

    def cleanup(self):
        subprocess.run(["bash", DOWN], env=self._script_env(CLEAN="1" if self.owns_dir else "0"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        if self.owns_dir and os.path.isdir(self.dir):
            # docker-down.sh refused (mounts left): at least say so.
            print("docker harness: %s left behind (mounts?)" % self.dir)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()


def available():
    """True when dockerd and busybox-static are installed (else tests skip)."""
    return os.access("/usr/sbin/dockerd", os.X_OK) and os.path.exists("/bin/busybox") \
        and shutil.which("curl") is not None
