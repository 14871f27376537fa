#!/usr/bin/env python3
"""Runs a test program with a private dockerd (test/harness/docker.py; a
private Podman service under WF_ENGINE=podman).

The program finds it through its environment:
  WF_TEST_DOCKER_HOST     unix:///.../docker.sock
  WF_TEST_DOCKER_DIR      the harness's state dir
  WF_TEST_IMAGE           wf/busybox:latest (present locally)
  WF_TEST_REGISTRY        127.0.0.1:PORT holding wf/busybox:latest (with --registry)
  WF_TEST_AUTH_REGISTRY   the same behind auth (user wf, password wfpass), with --auth
  WF_TEST_BROKEN_IMAGE    an image whose pull fails inside the progress stream
                          (with --registry)
  WF_TEST_DOCKER_CTL_PID  this script: SIGUSR1 stops dockerd (SIGTERM, by PID),
                          SIGUSR2 starts it again; each is acknowledged by
                          touching $WF_TEST_DOCKER_DIR/ctl-done-<n> (n counts from 1)

Usage: with_docker.py [--registry] [--auth] PROGRAM [ARGS...].  The
registries cost two more processes per start, so only the programs that pull
ask for them.  Exits 77 (skipped) when dockerd is not installed.
WF_DOCKER_TIMING=1 prints the time of each phase of docker-up.sh and
docker-down.sh to stderr."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docker as docker_harness  # noqa: E402
from docker import Dockerd, available  # noqa: E402

args = sys.argv[1:]
registry = auth = False
while args and args[0] in ("--registry", "--auth"):
    registry = True
    auth = auth or args[0] == "--auth"
    args = args[1:]
if not available():
    print("with_docker: %s or busybox-static not installed; skipping"
          % ("podman" if docker_harness.ENGINE == "podman" else "dockerd"))
    sys.exit(77)

requests = []
signal.signal(signal.SIGUSR1, lambda *_: requests.append("stop"))
signal.signal(signal.SIGUSR2, lambda *_: requests.append("start"))
proc = None


def on_term(*_):
    # meson's timeout: stop the test, then hand dockerd's cleanup to a
    # detached docker-down.sh (meson's SIGKILL follows within a second, too
    # soon for an orderly stop here; dockerd runs in its own session).
    if proc and proc.poll() is None:
        proc.kill()
    docker_harness._on_sigterm()


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

with Dockerd(registry=registry, auth=auth, broken=registry) as d:
    env = dict(os.environ, WF_TEST_DOCKER_HOST=d.host, WF_TEST_DOCKER_DIR=d.dir,
               WF_TEST_IMAGE=d.image, WF_TEST_REGISTRY=d.registry,
               WF_TEST_AUTH_REGISTRY=d.auth_registry, WF_TEST_BROKEN_IMAGE=d.broken_image,
               WF_TEST_DOCKER_CTL_PID=str(os.getpid()))
    proc = subprocess.Popen(args, env=env)
    done = 0
    while proc.poll() is None:
        if requests:
            what = requests.pop(0)
            if what == "stop":
                d.stop_dockerd()
            else:
                d.start_dockerd()
            done += 1
            open(os.path.join(d.dir, "ctl-done-%d" % done), "w").close()
        time.sleep(0.05)
    rc = proc.returncode
sys.exit(rc)
