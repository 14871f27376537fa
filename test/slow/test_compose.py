#!/usr/bin/env python3
"""The container image and docker-compose.yml, for real (opt-in: suite 'slow',
`meson test -C build --suite slow`; a few minutes, most of it apt inside
`docker build`).

On a private dockerd (test/harness/docker.py: its own socket, started and
stopped by PID):

1. scripts/build-base-image.sh makes debian:bookworm-slim with debootstrap
   from the mirror apt on this host uses, and `docker import`s it (there is no
   registry to pull from here);
2. `docker build --network host` builds the agent image (the Dockerfile's last
   stage) and the compose etcd image (`--target etcd`); the private dockerd's
   containers have no route out, so the build's apt-get uses the host's;
3. `docker-compose up -d` (Debian's docker-compose v1) starts etcd and the
   agent, with the private socket mounted, WORKFLOW_NODE_NAME from the
   environment and the log dir on a named volume; the node registers and
   /readyz (published on 127.0.0.1) answers 200;
4. build/src/wfctl applies a LOCAL action `sh,-c,echo hello from compose`
   and a step for the node, against etcd's published port; the step ends
   SUCCEEDED and its log, read inside the agent container from the volume,
   holds the line;
5. `docker-compose down -v` removes containers, network and volumes; then
   dockerd is stopped by PID.

Needs root (debootstrap, dockerd), dockerd, debootstrap and docker-compose:
the last two are installed with apt-get here when missing (they are not in
scripts/install-deps.sh, which keeps CI's install lean).  Exit 77 = skipped."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("WF_SOURCE_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("WF_BUILD_ROOT") or os.path.join(SRC, "build")
WFCTL = os.path.join(BUILD, "src", "wfctl")
sys.path.insert(0, os.path.join(SRC, "test", "harness"))
import docker  # noqa: E402
from docker import Dockerd  # noqa: E402

T0 = time.monotonic()
NODE = "slow-compose-node"


def log(fmt, *args):
    print("[compose %6.1fs] %s" % (time.monotonic() - T0, fmt % args if args else fmt), flush=True)


def fail(fmt, *args):
    log("FAIL: " + fmt, *args)
    raise SystemExit(1)


def skip(why):
    log("SKIP: %s", why)
    raise SystemExit(77)


def sh(argv, env=None, timeout=900, input=None, check=True):
    """Runs argv; returns stdout.  On failure prints the tail of the output."""
    p = subprocess.run(argv, env=env, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=SRC)
    if check and p.returncode != 0:
        print("\n".join(p.stdout.splitlines()[-40:]))
        fail("%s exited %d", " ".join(argv[:4]), p.returncode)
    return p.stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ensure_packages():
    missing = [pkg for pkg, exe in (("debootstrap", "debootstrap"), ("docker-compose", "docker-compose"))
               if shutil.which(exe) is None and not os.path.exists("/usr/sbin/" + exe)]
    if not missing:
        return
    log("installing %s with apt-get", " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    p = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
        p = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        print(p.stdout[-2000:])
        skip("cannot install %s" % " ".join(missing))


def http_get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return None, str(e)


def wait(what, fn, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = fn()
        if ok:
            return last
        time.sleep(0.5)
    fail("%s: not within %d s (last: %s)", what, timeout, last)


def main():
    if os.geteuid() != 0:
        skip("needs root (debootstrap, a private dockerd)")
    if not docker.available():
        skip("dockerd or busybox-static not installed (scripts/install-deps.sh)")
    if not os.access(WFCTL, os.X_OK):
        fail("%s not built", WFCTL)
    ensure_packages()

    with Dockerd(registry=False) as d:
        log("private dockerd up: %s (pid %s)", d.host, d.dockerd_pid)
        tag = "wf-slow-%d" % os.getpid()
        agent_image = "workflow-node:" + tag
        etcd_image = "workflow-node-etcd:" + tag
        etcd_port, metrics_port = free_port(), free_port()
        env = dict(os.environ, DOCKER_HOST=d.host, DOCKER_BUILDKIT="0",
                   COMPOSE_PROJECT_NAME="wfslow%d" % os.getpid(),
                   WORKFLOW_NODE_NAME=NODE, DOCKER_SOCK=d.sock,
                   DOCKER_GID=str(os.stat(d.sock).st_gid),
                   ETCD_PORT=str(etcd_port), METRICS_PORT=str(metrics_port),
                   WORKFLOW_IMAGE=agent_image, ETCD_IMAGE=etcd_image)
        env.pop("WORKFLOW_ETCD", None)

        t = time.monotonic()
        sh(["bash", os.path.join(SRC, "scripts", "build-base-image.sh")], env=env, timeout=900)
        base = json.loads(sh(["docker", "image", "inspect", "debian:bookworm-slim"], env=env))[0]
        log("base image debian:bookworm-slim built with debootstrap in %.0f s (%d MB)",
            time.monotonic() - t, base["Size"] // 2**20)

        t = time.monotonic()
        sh(["docker", "build", "--network", "host", "-t", agent_image, "."], env=env, timeout=1200)
        sh(["docker", "build", "--network", "host", "--target", "etcd", "-t", etcd_image, "."],
           env=env, timeout=600)
        img = json.loads(sh(["docker", "image", "inspect", agent_image], env=env))[0]
        user = img["Config"].get("User")
        log("images built in %.0f s: %s (%d MB, user %r), %s", time.monotonic() - t,
            agent_image, img["Size"] // 2**20, user, etcd_image)
        if user in ("", "0", "root", None):
            fail("the agent image runs as root by default (User=%r)", user)
        version = sh(["docker", "run", "--rm", agent_image, "--version"], env=env).strip()
        log("docker run %s --version: %s", agent_image, version)

        compose = ["docker-compose", "-f", os.path.join(SRC, "docker-compose.yml")]
        up = False
        try:
            t = time.monotonic()
            sh(compose + ["up", "-d", "--no-build"], env=env, timeout=300)
            up = True
            log("docker-compose up -d: %s", " ".join(
                sh(compose + ["ps", "--services", "--filter", "status=running"], env=env).split()))

            etcd = "http://127.0.0.1:%d" % etcd_port
            wenv = dict(env, WORKFLOW_ETCD=etcd)

            def registered():
                p = subprocess.run([WFCTL, "get", "nodes", "-o", "name"], env=wenv,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                return p.returncode == 0 and NODE in p.stdout.split(), p.stdout.strip()
            wait("node %s registered in the compose etcd" % NODE, registered, 90)
            log("node %s registered in etcd %s after %.1f s", NODE, etcd, time.monotonic() - t)

            readyz = "http://127.0.0.1:%d/readyz" % metrics_port
            def ready():
                code, body = http_get(readyz)
                return code == 200, (code, body)
            wait("/readyz 200", ready, 60)
            log("GET %s: 200", readyz)

            objs = ("kind: Action\nname: hello\nversion: v1\nrunner_type: LOCAL\n"
                    "runner_params:\n  CMD: sh,-c,echo hello from compose\n---\n"
                    "kind: Step\nkey: compose-1\naction: hello@v1\n")
            out = sh([WFCTL, "apply", "-f", "-", "--node", NODE], env=wenv, input=objs)
            log("wfctl apply: %s", "; ".join(out.split("\n")).strip("; "))

            def final():
                p = subprocess.run([WFCTL, "get", "steps", "compose-1", "-o", "json"], env=wenv,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                try:
                    st = json.loads(p.stdout)
                except ValueError:
                    return False, p.stdout
                return st.get("status", {}).get("status") in ("SUCCEEDED", "FAILED", "CANCELED"), st
            st = wait("step compose-1 final", final, 60)
            status = st["status"]
            if status["status"] != "SUCCEEDED":
                fail("step compose-1 ended %s: %s", status["status"], status.get("message"))
            log("step compose-1 %s in %d ms on %s",
                status["status"], status["end_at"] - status["start_at"], status["scheduled_node"])
            print(sh([WFCTL, "get", "steps"], env=wenv), end="")

            path = status["response"]["log_path"]
            if not path.startswith("/var/lib/workflow-node/logs/"):
                fail("log path %s is not on the logs volume", path)
            text = sh(compose + ["exec", "-T", "agent", "cat", path], env=env)
            if "hello from compose" not in text:
                fail("log %s holds %r", path, text)
            log("step log %s (volume logs): %r", path, text.strip())
            vols = sh(["docker", "volume", "ls", "-q"], env=env).split()
            log("volumes: %s", " ".join(vols))
        except BaseException:
            if up:
                print(sh(compose + ["logs", "--no-color", "--tail", "40"], env=env, check=False)[-6000:])
            raise
        finally:
            if up:
                t = time.monotonic()
                sh(compose + ["down", "-v"], env=env, timeout=180, check=False)
                left = sh(["docker", "ps", "-aq"], env=env).split()
                vols = [v for v in sh(["docker", "volume", "ls", "-q"], env=env).split()
                        if v.startswith(env["COMPOSE_PROJECT_NAME"])]
                log("docker-compose down -v in %.1f s: %d containers, %d project volumes left",
                    time.monotonic() - t, len(left), len(vols))
                if left or vols:
                    fail("left behind: containers %s, volumes %s", left, vols)
    log("private dockerd stopped; PASS in %.0f s", time.monotonic() - T0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
