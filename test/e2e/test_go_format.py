#!/usr/bin/env python3
"""Go format: a step written byte for byte as the Go original writes it
(docs/protocol.md appendix A, with status PENDDING and this node)
runs, with its pipeline's params.  Afterwards every key the node does not
own has the same value, including keys the schema does not know, and what
the node wrote is still Go's JSON (enum names, int64 as numbers)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, sh, status_of, response_of, log  # noqa: E402

NODE = "node-go_format"
# reference section 1.7, compact as Go's encoding/json writes it; only
# "status" (RUNNING -> PENDDING) and "scheduled_node" differ.
GO_STEP = (
    '{"key":"ns1.c3r8psea0brhlbg0qdd0.1.1","create_type":"PIPELINE","namespace":"ns1",'
    '"pipeline_id":"c3r8psea0brhlbg0qdd0","create_at":1626770673846,"update_at":1626770681002,'
    '"deploy_id":"","resource_version":831402,"id":1,"name":"step1.1","action":"go_build@v1",'
    '"with":{"ENV1":"env1","ENV2":"env2"},"is_parallel":false,"ignore_failed":false,'
    '"with_audit":false,"audit_params":null,"with_notify":false,"notify_params":null,'
    '"webhooks":null,"node_selector":null,'
    '"status":{"flow_number":1,"start_at":1626770680990,"end_at":0,"status":"PENDDING",'
    '"scheduled_node":"' + NODE + '","audit_at":0,"audit_response":"UOD","audit_message":"",'
    '"notify_at":0,"notify_error":"","message":"",'
    '"response":{"container_id":"9f1c...","container_warn":"","log_driver":"local_file",'
    '"log_path":"runner_log/2021/7/20/ns1.c3r8psea0brhlbg0qdd0.1.1"}}}')

PIPELINE = {"id": "c3r8psea0brhlbg0qdd0", "namespace": "ns1", "name": "p",
            "with": {"ENV2": "pipe2", "PIPE_ONLY": "pipe-only"},
            "stages": [{"id": 1, "name": "s1",
                        "steps": [{"name": "step1.1", "action": "go_build@v1"}]}]}

OWNED_TOP = {"status", "update_at"}
# status fields that are the scheduler's or the API's, not the node's
NOT_OWNED_STATUS = ("flow_number", "scheduled_node", "audit_at", "audit_response",
                    "audit_message", "notify_at", "notify_error")


def check_preserved(before, after, label):
    check(set(after) == set(before), "%s: top-level keys changed: added %s, removed %s",
          label, sorted(set(after) - set(before)), sorted(set(before) - set(after)))
    for k in before:
        if k in OWNED_TOP:
            continue
        check(after[k] == before[k] and type(after[k]) is type(before[k]),
              "%s: key %r changed from %s to %s", label, k, json.dumps(before[k]),
              json.dumps(after[k]))
    for k in NOT_OWNED_STATUS:
        if k in before["status"]:
            check(after["status"].get(k) == before["status"][k],
                  "%s: status.%s changed from %r to %r", label, k, before["status"][k],
                  after["status"].get(k))
    st = after["status"]
    check(isinstance(after["create_at"], int) and isinstance(st["start_at"], int)
          and isinstance(st["end_at"], int) and isinstance(after["update_at"], int),
          "%s: times must be JSON numbers: %s", label, json.dumps(after)[:400])
    check(after["create_type"] == "PIPELINE" and st.get("audit_response") == "UOD",
          "%s: enums must stay names: create_type %r audit_response %r", label,
          after["create_type"], st.get("audit_response"))


def main():
    with Scenario("go_format") as s:
        check(s.node == NODE, "node name")
        s.put_action("go_build", sh('printf "%s|%s|%s" "$ENV1" "$ENV2" "$PIPE_ONLY"'))
        s.c.put(s.pipeline_key("ns1", "c3r8psea0brhlbg0qdd0"), PIPELINE)
        s.agent()

        k1 = "ns1.c3r8psea0brhlbg0qdd0.1.1"
        k2 = "ns1.c3r8psea0brhlbg0qdd0.1.2"
        v2 = GO_STEP.replace(k1, k2)[:-1] + ',"x_extra":{"a":[1,2]},"x_null":null}'
        r1 = s.c.put(s.step_key(k1), GO_STEP.encode())
        s.c.put(s.step_key(k2), v2.encode())
        check(s.c.get(s.step_key(k1), revision=r1)["value"] == GO_STEP.encode(),
              "etcd did not keep the bytes")

        for key, raw in ((k1, GO_STEP), (k2, v2)):
            before = json.loads(raw)
            after = s.wait_step(key)
            ss = status_of(after)
            log("%s: %s", key, json.dumps(ss))
            check(ss["status"] == "SUCCEEDED", "%s: status %s, message %r", key, ss["status"],
                  ss.get("message"))
            check(ss["start_at"] > before["status"]["start_at"], "%s: start_at not set at claim",
                  key)
            check(ss["end_at"] >= ss["start_at"], "%s: end_at %r", key, ss["end_at"])
            check(after["update_at"] > before["update_at"], "%s: update_at not updated", key)
            r = response_of(after)
            check(r.get("log_driver") == "local_file" and str(r.get("exit_code")) == "0"
                  and r.get("log_path", "").endswith("/" + key),
                  "%s: response %s", key, r)
            with open(r["log_path"], "rb") as f:
                out = f.read()
            check(out == b"env1|env2|pipe-only",
                  "%s: params: got %r, want step ENV1, step ENV2 over the pipeline's, pipeline"
                  " PIPE_ONLY", key, out)
            check_preserved(before, after, key)
        raw2 = s.c.get(s.step_key(k2))["value"]
        check(b'"x_extra":{"a":[1,2]}' in raw2.replace(b" ", b""),
              "unknown key x_extra not kept verbatim: %r", raw2[-200:])


run(main)
