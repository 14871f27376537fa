#!/usr/bin/env python3
"""DOCKER runner image pulls through the real binary, on a private dockerd,
private registries and etcd:

- IMAGE_PULL_POLICY always from the local registry (no auth): the image is
  pulled, the step SUCCEEDS;
- from the registry behind htpasswd auth with IMAGE_PULL_SECRET wf:wfpass
  (if-not-present, image missing): pulled, SUCCEEDS; the password is in no
  log; without the secret it ends FAILED with Docker's message;
- a bad tag ends FAILED with Docker's message (manifest unknown / not found);
- never with the image missing ends FAILED naming the image;
- a blob the registry lost (an error inside the progress stream) and an
  unreachable registry end FAILED with Docker's message."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, Skip, run, check, status_of, response_of, log  # noqa: E402
import docker  # noqa: E402
from docker import Dockerd, docker_action  # noqa: E402

CMD = "sh,-c,echo pulled and ran"


def image_present(d, ref):
    st, _ = d.api("GET", "/images/%s/json" % ref)
    return st == 200


def main():
    if not docker.available():
        raise Skip("dockerd or busybox-static not installed")
    with Dockerd(auth=True, broken=True) as d, Scenario("docker-pull") as s:
        plain = "%s/wf/busybox" % d.registry
        authed = "%s/wf/busybox" % d.auth_registry
        check(not image_present(d, plain + ":latest"), "%s:latest is already local", plain)
        check(not image_present(d, authed + ":latest"), "%s:latest is already local", authed)
        s.agent(args=["--docker-host", d.host, "--pull-timeout", "120"])

        actions = {
            "always": docker_action("always", CMD, IMAGE_URL=plain, IMAGE_VERSION="latest",
                                    IMAGE_PULL_POLICY="always"),
            "auth": docker_action("auth", CMD, IMAGE_URL=authed, IMAGE_VERSION="latest",
                                  IMAGE_PULL_SECRET="wf:wfpass"),
            "noauth": docker_action("noauth", CMD, IMAGE_URL=authed, IMAGE_VERSION="latest",
                                    IMAGE_PULL_POLICY="always"),
            "badtag": docker_action("badtag", CMD, IMAGE_URL=plain, IMAGE_VERSION="nosuchtag"),
            "never": docker_action("never", CMD, IMAGE_URL="wf/absent", IMAGE_VERSION="1",
                                   IMAGE_PULL_POLICY="never"),
            "broken": docker_action("broken", CMD, image=d.broken_image),
            "noreg": docker_action("noreg", CMD, IMAGE_URL="127.0.0.1:1/wf/busybox",
                                   IMAGE_VERSION="latest"),
        }
        for name, a in actions.items():
            s.c.put(s.action_key(name), a)

        # The plain pull first, alone: the others must not find its layer
        # already there (the auth registry holds the same one).
        s.put_step("dp-always", "always@v1")
        st = s.wait_step("dp-always", timeout=90)
        ss = status_of(st)
        log("dp-always: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "SUCCEEDED", "pull (always, no auth): %s %r", ss["status"],
              ss.get("message"))
        with open(response_of(st)["log_path"], "rb") as f:
            check(f.read() == b"pulled and ran\n", "dp-always log")
        check(image_present(d, plain + ":latest"), "%s:latest was not pulled", plain)

        s.put_step("dp-noauth", "noauth@v1")
        ss = status_of(s.wait_step("dp-noauth", timeout=90))
        log("dp-noauth: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "FAILED", "pull from the auth registry without a secret: %s",
              ss["status"])
        check("auth" in ss.get("message", "").lower(), "dp-noauth: message %r says nothing of auth",
              ss.get("message"))

        s.put_step("dp-auth", "auth@v1")
        st = s.wait_step("dp-auth", timeout=90)
        ss = status_of(st)
        log("dp-auth: %s %r", ss["status"], ss.get("message"))
        check(ss["status"] == "SUCCEEDED", "pull with auth: %s %r", ss["status"], ss.get("message"))
        check(image_present(d, authed + ":latest"), "%s:latest was not pulled", authed)

        for k in ("badtag", "never", "broken", "noreg"):
            s.put_step("dp-" + k, k + "@v1")
        want = {
            # Docker: "manifest for REG/wf/busybox:nosuchtag not found: manifest unknown: ..."
            "badtag": ("nosuchtag", "manifest unknown"),
            "never": ("wf/absent:1",),
            # the registry lost the layer blob: "... blob unknown ..." or similar
            "broken": ("wf/broken",),
            "noreg": ("127.0.0.1:1", "connection refused"),
        }
        for k, needles in want.items():
            ss = status_of(s.wait_step("dp-" + k, timeout=90))
            msg = ss.get("message", "")
            log("dp-%s: %s %r", k, ss["status"], msg)
            check(ss["status"] == "FAILED", "dp-%s: %s", k, ss["status"])
            for n in needles:
                check(n in msg, "dp-%s: message %r does not hold %r", k, msg, n)
        for a in s.agents:
            check("wfpass" not in a.stderr_text(), "the registry password is in the agent's log")


run(main)
