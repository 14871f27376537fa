#!/usr/bin/env python3
"""Ownership: steps assigned to another node, or to no node, are never
touched, whatever their status: same mod_revision afterwards and their
command never runs."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, T  # noqa: E402


def main():
    with Scenario("ownership") as s:
        marks = os.path.join(s.tmp, "marks")
        os.makedirs(marks)
        s.put_action("mark", sh("echo ran >> %s/$WORKFLOW_STEP_KEY" % marks))
        foreign = {}
        for i, (node, status) in enumerate([
                ("other-node", "PENDDING"), ("other-node", "RUNNING"),
                ("other-node", "CANCELING"), ("", "PENDDING"),
                (s.node + "-2", "PENDDING"), (s.node.upper(), "PENDDING"),
                (s.node + " ", "PENDDING"), ("other-node", "SUCCEEDED")]):
            key = "foreign%d" % i
            s.put_step(key, "mark@v1", node=node, status=status)
            foreign[key] = s.c.get(s.step_key(key))["mod_revision"]
        # a step with no status object at all
        s.c.put(s.step_key("nostatus"), {"key": "nostatus", "create_type": "USER",
                                         "name": "n", "action": "mark@v1", "with": {}})
        foreign["nostatus"] = s.c.get(s.step_key("nostatus"))["mod_revision"]

        s.agent()
        s.put_step("mine1", "mark@v1")
        # the same foreign steps, written while the agent watches
        for i in range(3):
            key = "late%d" % i
            s.put_step(key, "mark@v1", node="other-node")
            foreign[key] = s.c.get(s.step_key(key))["mod_revision"]
        s.put_step("mine2", "mark@v1")
        st = s.wait_step("mine1")
        check(status_of(st)["status"] == "SUCCEEDED", "own step: %s", status_of(st))
        st = s.wait_step("mine2")
        check(status_of(st)["status"] == "SUCCEEDED", "own step 2: %s", status_of(st))
        time.sleep(T(2))
        for key, rev in foreign.items():
            kv = s.c.get(s.step_key(key))
            check(kv is not None and kv["mod_revision"] == rev,
                  "foreign step %s was touched: mod_revision %s -> %s, value %s", key, rev,
                  kv and kv["mod_revision"], kv and kv["value"][:300])
            check(not os.path.exists(os.path.join(marks, key)), "foreign step %s ran", key)
        check(sorted(os.listdir(marks)) == ["mine1", "mine2"], "marks: %s", os.listdir(marks))


run(main)
