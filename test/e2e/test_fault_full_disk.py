#!/usr/bin/env python3
"""Full disk: the agent's log dir is a 1 MB tmpfs.  A step that prints 2 MB
ends FAILED with the write error's text ("No space left on device") in its
message, the agent stays up, and once the big log file is deleted a small
step on the same agent SUCCEEDS with its exact output.  Needs root (mount);
skipped (exit 77) when mounting a tmpfs is not permitted.  The tmpfs is
unmounted whatever happens."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, response_of, log, Skip  # noqa: E402

BIG = 2 << 20


def mount_tmpfs():
    mnt = tempfile.mkdtemp(prefix="wf-e2e-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        raise Skip("cannot mount a 1 MB tmpfs (needs root or CAP_SYS_ADMIN): %s"
                   % (r.stderr.strip() or "mount exit status %d" % r.returncode))
    return mnt


def unmount(mnt):
    if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", mnt], capture_output=True)  # still busy: detach
    try:
        os.rmdir(mnt)
    except OSError as e:
        log("could not remove %s: %s", mnt, e)


def main():
    mnt = mount_tmpfs()
    try:
        with Scenario("fault_full_disk") as s:
            s.put_action("big", sh("yes 0123456789abcdef | head -c %d" % BIG))
            s.put_action("small", sh("echo small output"))
            a = s.agent(log_dir=mnt)
            s.put_step("big1", "big@v1")
            st = s.wait_step("big1", timeout=60)
            ss = status_of(st)
            log("big step: %s, message %r", ss["status"], ss.get("message"))
            check(ss["status"] == "FAILED", "a step that filled the disk ended %s (message %r)",
                  ss["status"], ss.get("message"))
            check("No space left on device" in (ss.get("message") or ""),
                  "the message does not name ENOSPC: %r", ss.get("message"))
            path = response_of(st).get("log_path", "")
            check(path.startswith(mnt + "/"), "log_path %r is not under the tmpfs", path)
            size = os.path.getsize(path)
            log("its log file kept %d bytes of %d", size, BIG)
            check(0 < size < BIG, "log file size %d", size)
            a.assert_alive("after the disk filled up")

            os.unlink(path)  # free the space; the agent keeps serving
            s.put_step("small1", "small@v1")
            st = s.wait_step("small1", timeout=30)
            ss = status_of(st)
            check(ss["status"] == "SUCCEEDED", "small step after freeing space: %s (%r)",
                  ss["status"], ss.get("message"))
            with open(response_of(st)["log_path"], "rb") as f:
                data = f.read()
            check(data == b"small output\n", "small step's log: %r", data)
            a.assert_alive()
    finally:
        unmount(mnt)


run(main)
