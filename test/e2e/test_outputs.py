#!/usr/bin/env python3
"""Step outputs (docs/protocol.md §4, "Step outputs"), LOCAL runner, through
the real binary and a real etcd:

- a three-stage pipeline run: stage 3 sees what stages 1 and 2 published
  (a multi-line value too), as NAME and <step name>.NAME; a name published
  in stage 1 and stage 2 resolves to stage 2's; inside stage 1 a lower flow
  is seen by a higher one, and between two flows of a stage the higher flow
  wins whatever the step ids;
- steps of one parallel flow (same stage, same flow_number, or no flow
  number) do not see each other's outputs;
- the step's own `with` wins over an output of the same name;
- secrets: an output named like --mask-params is stored as ******, a
  secret param's value inside an output is masked; no secret in etcd, in
  the step logs, in the agent's log, in `wfctl describe step`;
- every bound and refused kind ends FAILED naming the rule or the line
  (name, value 64 KiB exact/over, heredoc over, total 256 KiB exact/over,
  100/101 names, file 320 KiB exact/over, missing heredoc delimiter, NUL,
  not UTF-8, neither form, WORKFLOW_ name, symlink, FIFO (promptly),
  directory, socket); nothing of a refused file is recorded; the summary
  of a refused step does not replace the reason; the output directory is
  removed after every step (the link targets are left alone);
- a FAILED step (exit 3) keeps its outputs in status.response but offers
  them to nobody, and keeps its own message over its summary;
- a Go-format pipeline step pair written with etcdctl (every Go field, null
  maps) publishes and consumes outputs;
- the outputs survive a rewrite of the producing step by a client that
  keeps only the Go schema's fields (appendix A);
- a step run again (PENDDING again) loses the outputs of its earlier run;
- the summary: first line only, cut at 1024 bytes on a UTF-8 boundary,
  control characters shown as spaces;
- the merge order: action default < pipeline `with` < outputs < step
  `with`, and an output satisfies a required param;
- canceled, timed-out and drain-cut steps keep their outputs and their own
  message; a deleted step's directory goes too;
- 20 earlier steps (more than a page of 16) are all offered; a USER step
  with a pipeline-like key is offered nothing, a step without create_type
  is; the offers' bounds: over 1 MiB merged, over 8 MiB kept, each FAILED
  saying so.
The directory of a LOCAL step ended FAILED by an agent restart is removed
by the new process (its start-up sweep)."""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, status_of, response_of, log, run_wfctl, T  # noqa: E402

PY = sys.executable or "/usr/bin/python3"
NS = "ns1"
OUT_PREFIX = "output."

# The one action every step here runs, without a shell: the param PY (python
# source, exec'd) and then SCRIPT (sh -c) write the files; then the whole
# environment is printed as JSON after a marker (so names with a dot and
# values of several lines come through), and the exit status is SCRIPT's.
WRAPPER = r"""
import json, os, subprocess, sys
def out(data):
    with open(os.environ["WORKFLOW_OUTPUT"], "ab") as f:
        f.write(data)
src = os.environ.get("PY")
if src:
    exec(src)
sh = os.environ.get("SCRIPT")
rc = subprocess.call(["sh", "-c", sh]) if sh else 0
sys.stdout.write("\n@@ENV@@" + json.dumps(dict(os.environ), sort_keys=True) + "\n")
sys.stdout.flush()
sys.exit(rc)
"""

# docs/protocol.md appendix A: every field of the Go Step and StepStatus,
# in Go's order, with the zero value Go's encoding/json writes for it.
GO_STEP_FIELDS = [("key", ""), ("create_type", "PIPELINE"), ("namespace", ""),
                  ("pipeline_id", ""), ("create_at", 0), ("update_at", 0), ("deploy_id", ""),
                  ("resource_version", 0), ("id", 0), ("name", ""), ("action", ""),
                  ("with", None), ("is_parallel", False), ("ignore_failed", False),
                  ("with_audit", False), ("audit_params", None), ("with_notify", False),
                  ("notify_params", None), ("webhooks", None), ("node_selector", None),
                  ("status", None)]
GO_STATUS_FIELDS = [("flow_number", 0), ("start_at", 0), ("end_at", 0), ("status", "PENDDING"),
                    ("scheduled_node", ""), ("audit_at", 0), ("audit_response", "UOD"),
                    ("audit_message", ""), ("notify_at", 0), ("notify_error", ""),
                    ("message", ""), ("response", None), ("context_map", None)]
GO_OMITEMPTY = {"context_map"}


def go_rewrite(obj):
    """What a Go client that decodes into its structs and encodes them back
    keeps of a stored step: its fields only, every one of them, maps of
    strings only (it fails on anything else: checked)."""
    def maps_ok(m, what):
        check(m is None or (isinstance(m, dict) and
                            all(isinstance(v, str) for v in m.values())),
              "%s is not a map<string,string> a Go client can decode: %r", what, m)
        return m if m else None
    st_in = obj.get("status") or {}
    st = {}
    for k, zero in GO_STATUS_FIELDS:
        v = st_in.get(k, zero)
        if k in ("response", "context_map"):
            v = maps_ok(v, "status." + k)
        if k in GO_OMITEMPTY and not v:
            continue
        st[k] = v
    out = {}
    for k, zero in GO_STEP_FIELDS:
        v = obj.get(k, zero)
        if k in ("with", "audit_params", "notify_params", "node_selector"):
            v = maps_ok(v, k)
        out[k] = st if k == "status" else v
    return out


def env_of(st):
    """The environment the wrapper printed into the step's log."""
    path = response_of(st).get("log_path")
    check(path and os.path.exists(path), "no log for %s: %s", st.get("key"), response_of(st))
    with open(path, "rb") as f:
        data = f.read().decode("utf-8", "replace")
    i = data.rfind("@@ENV@@")
    check(i >= 0, "%s: the log holds no environment dump: %r", st.get("key"), data[-300:])
    return json.loads(data[i + len("@@ENV@@"):].strip())


def outputs_of(st):
    return {k[len(OUT_PREFIX):]: v for k, v in response_of(st).items()
            if k.startswith(OUT_PREFIX)}


def main():
    with Scenario("outputs") as s:
        out_root = os.path.join(s.tmp, "runner_output")  # the agent runs in s.tmp
        s.c.put(s.action_key("x"), s.action_obj("x", json.dumps([PY, "-c", WRAPPER])))
        agent = s.agent()

        pipes = set()

        def pipe(pid, with_=None):
            if pid not in pipes:
                s.c.put(s.pipeline_key(NS, pid), {
                    "id": pid, "namespace": NS, "name": "pipe-" + pid, "with": with_ or {},
                    "stages": [{"id": 1, "name": "s1", "steps": []}]})
                pipes.add(pid)

        def pstep(pid, stage, step, name, script=None, py=None, with_=None, flow=None,
                  action="x@v1"):
            """Puts a pipeline step; returns its key."""
            pipe(pid)
            key = "%s.%s.%d.%d" % (NS, pid, stage, step)
            w = dict(with_ or {})
            if script:
                w["SCRIPT"] = script
            if py:
                w["PY"] = py
            o = s.step_obj(key, action, with_=w, create_type="PIPELINE", namespace=NS,
                           pipeline_id=pid, name=name)
            if flow is not None:
                o["status"]["flow_number"] = flow
            s.c.put(s.step_key(key), o)
            return key

        def ustep(key, script=None, py=None, with_=None):
            w = dict(with_ or {})
            if script:
                w["SCRIPT"] = script
            if py:
                w["PY"] = py
            s.put_step(key, "x@v1", with_=w, name=key)
            return key

        def dir_gone(key, wait=0.0):
            d = os.path.join(out_root, key)
            deadline = time.time() + T(wait)
            while os.path.lexists(d) and time.time() < deadline:
                time.sleep(0.05)
            check(not os.path.lexists(d), "%s: the output directory %s is still there: %s",
                  key, d, os.listdir(d) if os.path.isdir(d) else "")

        def done(key, want="SUCCEEDED", timeout=30):
            st = s.wait_step(key, timeout=timeout)
            ss = status_of(st)
            check(ss["status"] == want, "%s: %s (want %s), message %r", key, ss["status"], want,
                  ss.get("message"))
            dir_gone(key)
            return st

        # ---- 1. three stages, two flows, later wins -------------------------------------
        # The consumer's action requires IMAGE (an output gives it) and has
        # defaults; the pipeline's with has SHARED (an output wins) and PONLY.
        s.c.put(s.action_key("xreq"), s.action_obj(
            "xreq", json.dumps([PY, "-c", WRAPPER]),
            run_params=[{"key_name": "IMAGE", "required": True},
                        {"key_name": "TAG", "default_value": "default-tag"},
                        {"key_name": "ADEF", "default_value": "a"}]))
        pipe("p3", with_={"SHARED": "from-pipeline", "PONLY": "p"})
        # Stage 1: 1.2 is flow 1, 1.1 is flow 2 (a higher flow, a lower step id).
        k12 = pstep("p3", 1, 2, "build-a", flow=1, script=(
            'echo "IMAGE=reg/app:1" >> "$WORKFLOW_OUTPUT"; '
            'echo "SHARED=from-stage-1" >> "$WORKFLOW_OUTPUT"; '
            'echo "FLOWX=flow-1" >> "$WORKFLOW_OUTPUT"; '
            'printf "ML<<EOF\\nline one\\n  line=two <<x\\n\\nEOF\\n" >> "$WORKFLOW_OUTPUT"; '
            'echo "built ok" > "$WORKFLOW_SUMMARY"'))
        st = done(k12)
        env = env_of(st)
        check(env.get("WORKFLOW_OUTPUT") == os.path.join(out_root, k12, "output") and
              env.get("WORKFLOW_SUMMARY") == os.path.join(out_root, k12, "summary"),
              "WORKFLOW_OUTPUT/SUMMARY not under the agent's runner_output: %r %r",
              env.get("WORKFLOW_OUTPUT"), env.get("WORKFLOW_SUMMARY"))
        check(os.path.isdir(out_root), "no %s", out_root)
        check(status_of(st).get("message") == "built ok", "summary as message: %r",
              status_of(st).get("message"))
        # A heredoc: empty lines inside are kept, "=" and "<<" inside too.
        want12 = {"IMAGE": "reg/app:1", "SHARED": "from-stage-1", "FLOWX": "flow-1",
                  "ML": "line one\n  line=two <<x\n"}
        check(outputs_of(st) == want12, "%s outputs:\n got  %r\n want %r", k12, outputs_of(st),
              want12)
        log("stage 1 flow 1: %s", outputs_of(st))

        k11 = pstep("p3", 1, 1, "build-b", flow=2, script=(
            'echo "TAG=v2" >> "$WORKFLOW_OUTPUT"; echo "FLOWX=flow-2" >> "$WORKFLOW_OUTPUT"; '
            'echo "SEEN_IMAGE=$IMAGE" >> "$WORKFLOW_OUTPUT"'))
        st = done(k11)
        env = env_of(st)
        check(env.get("IMAGE") == "reg/app:1" and env.get("build-a.IMAGE") == "reg/app:1" and
              env.get("ML") == want12["ML"],
              "stage 1 flow 2 does not see flow 1's outputs: IMAGE %r build-a.IMAGE %r ML %r",
              env.get("IMAGE"), env.get("build-a.IMAGE"), env.get("ML"))
        check(outputs_of(st) == {"TAG": "v2", "FLOWX": "flow-2", "SEEN_IMAGE": "reg/app:1"},
              "%s outputs %r", k11, outputs_of(st))

        k21 = pstep("p3", 2, 1, "pack", script=(
            'echo "SHARED=from-stage-2" >> "$WORKFLOW_OUTPUT"; '
            'echo "DIGEST=sha256:abc" >> "$WORKFLOW_OUTPUT"; echo packed > "$WORKFLOW_SUMMARY"'))
        st = done(k21)
        check(env_of(st).get("SHARED") == "from-stage-1", "stage 2 sees SHARED=%r",
              env_of(st).get("SHARED"))

        k31 = pstep("p3", 3, 1, "deploy", action="xreq@v1")
        env = env_of(done(k31))
        want = {
            "PONLY": "p", "ADEF": "a",  # the pipeline's with, the action's default
            "IMAGE": "reg/app:1", "build-a.IMAGE": "reg/app:1",
            "ML": want12["ML"], "build-a.ML": want12["ML"],
            "TAG": "v2", "build-b.TAG": "v2",
            "FLOWX": "flow-2", "build-a.FLOWX": "flow-1", "build-b.FLOWX": "flow-2",
            "SHARED": "from-stage-2", "build-a.SHARED": "from-stage-1",
            "pack.SHARED": "from-stage-2",
            "DIGEST": "sha256:abc", "pack.DIGEST": "sha256:abc",
            "SEEN_IMAGE": "reg/app:1", "build-b.SEEN_IMAGE": "reg/app:1",
        }
        bad = {k: (env.get(k), v) for k, v in want.items() if env.get(k) != v}
        check(not bad, "stage 3 environment (got, want): %s", bad)
        extra = sorted(k for k in env if "." in k and k not in want)
        check(not extra, "stage 3 got names it should not: %s", extra)
        log("stage 3 sees %d offered names, later wins", len(want))

        # ---- 2. one parallel flow: no sharing ---------------------------------------------
        kpa = pstep("ppar", 1, 1, "par-a", flow=1, script='echo "PAR_A=a" >> "$WORKFLOW_OUTPUT"')
        check(outputs_of(done(kpa)) == {"PAR_A": "a"}, "par-a outputs")
        kpb = pstep("ppar", 1, 2, "par-b", flow=1)
        env = env_of(done(kpb))
        check("PAR_A" not in env and "par-a.PAR_A" not in env,
              "a step of the same flow saw PAR_A: %r", {k: env[k] for k in env if "PAR" in k})
        kpc = pstep("ppar", 1, 3, "par-c")  # no flow number: not ordered either
        env = env_of(done(kpc))
        check("PAR_A" not in env, "a step of the same stage without flow number saw PAR_A")
        kpd = pstep("ppar", 2, 1, "after")
        env = env_of(done(kpd))
        check(env.get("PAR_A") == "a" and env.get("par-a.PAR_A") == "a",
              "the next stage does not see PAR_A: %r", env.get("PAR_A"))
        log("parallel flow: not shared; next stage: shared")

        # ---- 3. the step's own with wins ----------------------------------------------------
        kwa = pstep("pwith", 1, 1, "my producer", script=(
            'echo "IMAGE=from-output" >> "$WORKFLOW_OUTPUT"; echo "OTHER=o" >> "$WORKFLOW_OUTPUT"'))
        done(kwa)
        kwb = pstep("pwith", 2, 1, "consumer", with_={"IMAGE": "from-with"})
        env = env_of(done(kwb))
        check(env.get("IMAGE") == "from-with", "the step's with lost to an output: IMAGE=%r",
              env.get("IMAGE"))
        check(env.get("OTHER") == "o", "OTHER=%r", env.get("OTHER"))
        # "my producer" is no [A-Za-z0-9_.-]+ name: no qualified form
        check(not any(k.endswith(".OTHER") or k.endswith(".IMAGE") for k in env),
              "qualified names for a step name with a space: %s",
              sorted(k for k in env if "." in k))

        # ---- 3b. names that change how programs start are offered only qualified ------------
        kga = pstep("pguard", 1, 1, "guard", script=(
            'printf "PATH=/evil\\nSHELLOPTS=xtrace\\nLD_PRELOAD=/evil.so\\nSAFE=ok\\n" '
            '>> "$WORKFLOW_OUTPUT"'))
        st = done(kga)
        check(outputs_of(st).get("PATH") == "/evil", "a guarded name is still recorded: %s",
              outputs_of(st))
        env = env_of(done(pstep("pguard", 2, 1, "guard-use")))
        check(env.get("PATH") != "/evil" and "SHELLOPTS" not in env and "LD_PRELOAD" not in env,
              "a guarded output reached the environment unqualified: PATH=%r SHELLOPTS=%r "
              "LD_PRELOAD=%r", env.get("PATH"), env.get("SHELLOPTS"), env.get("LD_PRELOAD"))
        check(env.get("guard.PATH") == "/evil" and env.get("guard.LD_PRELOAD") == "/evil.so"
              and env.get("SAFE") == "ok",
              "qualified guarded names and plain ones: %s",
              {k: env.get(k) for k in ("guard.PATH", "guard.LD_PRELOAD", "SAFE")})

        # ---- 4. secrets ----------------------------------------------------------------------
        token = "s3cr3t-value"
        gen_pw_src = '"-".join(["generated", "pw", str(41 + 82)])'
        gen_pw = "generated-pw-123"
        ksa = pstep("psec", 1, 1, "sec", with_={"API_TOKEN": token}, py=(
            "pw = %s\n"
            "with open(os.environ['WORKFLOW_OUTPUT'], 'a') as f:\n"
            "    f.write('DB_PASSWORD=' + pw + '\\n')\n"
            "    f.write('URL=https://x/?t=' + os.environ['API_TOKEN'] + '\\n')\n"
            "    f.write('PLAIN=nothing-secret\\n')\n"
            "open(os.environ['WORKFLOW_SUMMARY'], 'w').write('deployed with ' + "
            "os.environ['API_TOKEN'] + '\\n')\n"
            "print('url https://x/?t=' + os.environ['API_TOKEN'])\n" % gen_pw_src))
        st = done(ksa)
        o = outputs_of(st)
        log("secret step outputs: %s, message %r", o, status_of(st).get("message"))
        check(o == {"DB_PASSWORD": "******", "URL": "https://x/?t=******",
                    "PLAIN": "nothing-secret"}, "secret outputs stored as %r", o)
        check(status_of(st).get("message") == "deployed with ******",
              "secret in the summary: %r", status_of(st).get("message"))
        ksb = pstep("psec", 2, 1, "sec-use")
        env = env_of(done(ksb))
        check(env.get("DB_PASSWORD") == "******" and env.get("URL") == "https://x/?t=******" and
              env.get("sec.URL") == "https://x/?t=******",
              "the next step got %r %r", env.get("DB_PASSWORD"), env.get("URL"))
        for key in (ksa, ksb):
            for args in (["describe", key], ["describe", key, "-o", "json"]):
                p = run_wfctl(args, s.etcd.url, s.prefix, timeout=T(30), cwd=s.tmp)
                check(p.returncode == 0, "wfctl %s: exit %d: %s", " ".join(args), p.returncode,
                      p.stderr)
                for secret in (token, gen_pw):
                    check(secret not in p.stdout + p.stderr, "wfctl %s shows %r:\n%s",
                          " ".join(args), secret, p.stdout)
                if key == ksa and args[-1] == "json":
                    check("https://x/?t=******" in p.stdout,
                          "wfctl describe -o json does not show the masked output: %s",
                          p.stdout[:600])
        # Everything in etcd but the param the test gave the step itself.
        for kv in s.c.get_prefix(s.prefix + "/"):
            raw = kv["value"]
            if kv["key"] == s.step_key(ksa):
                o = json.loads(raw)
                check(o["with"].pop("API_TOKEN") == token, "the step's with changed")
                raw = json.dumps(o).encode()
            for secret in (token, gen_pw):
                check(secret.encode() not in raw, "%r is stored in etcd under %s", secret,
                      kv["key"])
        for root, _, files in os.walk(s.log_dir):
            for fn in files:
                with open(os.path.join(root, fn), "rb") as f:
                    data = f.read()
                for secret in (token, gen_pw):
                    check(secret.encode() not in data, "%r in the log %s", secret, fn)
        with open(response_of(st)["log_path"], "rb") as f:
            check(b"url https://x/?t=******" in f.read(), "the secret step's log is not masked")
        for secret in (token, gen_pw):
            check(secret not in agent.stderr_text(), "%r in the agent's log", secret)
        log("secrets masked in etcd, in the next step, logs, wfctl describe")

        # ---- 5. bounds and refused kinds ----------------------------------------------------
        target_dir = os.path.join(s.tmp, "link-target")
        os.makedirs(target_dir)
        with open(os.path.join(target_dir, "keep.txt"), "w") as f:
            f.write("keep me")
        with open(os.path.join(s.tmp, "leak.txt"), "w") as f:
            f.write("LEAKED-SUMMARY\n")
        NOTWIN = ' echo "SUMMARY-MUST-NOT-WIN" > "$WORKFLOW_SUMMARY"'
        refused = {
            # key: (py, script, [substrings of the message])
            "b-name": ("out(b'GOOD=1\\n\\n1X=2\\n')", None,
                       ["WORKFLOW_OUTPUT: line 3", '"1X" is not an output name']),
            "b-name-dash": ("out(b'MY-NAME=1\\n')", None,
                            ["WORKFLOW_OUTPUT: line 1", "MY-NAME"]),
            "b-value": ("out(b'OK=1\\nBIG=' + b'a' * 65537 + b'\\n')", None,
                        ["line 2", "value of BIG is over 65536 bytes"]),
            "b-value-hd": ("out(b'OK=1\\nBIG<<E\\n' + b'a' * 40000 + b'\\n' + "
                           "b'b' * 30000 + b'\\nE\\n')", None,
                           ["line 4", "value of BIG is over 65536 bytes"]),
            "b-total": ("[out(b'V%d=' % i + b'a' * 60000 + b'\\n') for i in range(5)]",
                        None, ["values add up to over 262144 bytes"]),
            "b-names": ("[out(b'N%d=%d\\n' % (i, i)) for i in range(101)]", None,
                        ["more than 100 names"]),
            "b-file": ("out(b'\\n' * 327681)", None, ["file is over 327680 bytes"]),
            "b-heredoc": ("out(b'A=1\\nML<<EOF\\nl1\\nl2\\n')", None,
                          ["line 4", "no closing delimiter EOF for ML", "opened on line 2"]),
            "b-nul": ("out(b'A=1\\nB=x\\x00y\\n')", None, ["line 2", "NUL"]),
            "b-utf8": ("out(b'A=1\\nB=\\xff\\xfe\\n')", None,
                       ["line 2", "value of B is not UTF-8"]),
            "b-neither": ("out(b'A=1\\njust text\\n')", None,
                          ["line 2", "neither NAME=value nor NAME<<DELIMITER"]),
            "b-no-delim": ("out(b'A<<\\n')", None, ["line 1", "no delimiter after A<<"]),
            "b-reserved": ("out(b'A=1\\nWORKFLOW_FOO=1\\n')", None,
                           ["WORKFLOW_FOO", "reserved"]),
            "b-symlink": (None, 'ln -s /etc/passwd "$WORKFLOW_OUTPUT";',
                          ["WORKFLOW_OUTPUT is a symbolic link: refused"]),
            "b-fifo": (None, 'mkfifo "$WORKFLOW_OUTPUT";', ["WORKFLOW_OUTPUT is a FIFO: refused"]),
            "b-dir": (None, 'mkdir "$WORKFLOW_OUTPUT"; echo A=1 > "$WORKFLOW_OUTPUT/x";',
                      ["WORKFLOW_OUTPUT is a directory: refused"]),
            "b-socket": ("import socket\nsk = socket.socket(socket.AF_UNIX)\n"
                         "sk.bind(os.environ['WORKFLOW_OUTPUT'])\n", None,
                         ["WORKFLOW_OUTPUT is a socket: refused"]),
        }
        accepted = {
            # key: (py, script, the outputs expected)
            "a-value": ("out(b'BIG=' + b'a' * 65536 + b'\\n')", None,
                        {"BIG": "a" * 65536}),
            "a-value-hd": ("out(b'BIG<<E\\n' + b'a' * 32767 + b'\\n' + b'b' * 32768 + "
                           "b'\\nE\\n')", None, {"BIG": "a" * 32767 + "\n" + "b" * 32768}),
            "a-total": ("[out(b'V%d=' % i + b'a' * 65536 + b'\\n') for i in range(4)]",
                        None, {"V%d" % i: "a" * 65536 for i in range(4)}),
            "a-names": ("[out(b'N%d=%d\\n' % (i, i)) for i in range(100)]", None,
                        {"N%d" % i: str(i) for i in range(100)}),
            "a-file": ("out(b'\\n' * 327679 + b'\\r')", None, {}),
            # JSON-special and non-ASCII bytes, spaces kept, an empty value
            "a-special": ("out(b'Q=\\xc3\\xa4 \"q\" \\\\ {x}\\t  \\nE=\\n')", None,
                          {"Q": '\u00e4 "q" \\ {x}\t  ', "E": ""}),
            "a-repeat-crlf": ("out(b'A=1\\r\\nA=2\\r\\n\\r\\nB=x=y\\r\\n')", None,
                              {"A": "2", "B": "x=y"}),
            # a summary that is a link: left out, its target not read
            "a-sum-link": (None, 'echo A=1 > "$WORKFLOW_OUTPUT"; ln -s %s "$WORKFLOW_SUMMARY"; '
                           'ln -s %s "$(dirname "$WORKFLOW_OUTPUT")/escape"'
                           % (os.path.join(s.tmp, "leak.txt"), target_dir), {"A": "1"}),
        }
        t0 = {}
        for key, (py, script, _) in refused.items():
            t0[key] = time.time()
            ustep(key, py=py, script=(script or "") + NOTWIN)
        for key, (py, script, _) in accepted.items():
            ustep(key, py=py, script=script)
        for key, (_, _, needles) in refused.items():
            st = done(key, "FAILED")
            ss = status_of(st)
            msg = ss.get("message", "")
            log("%s: %r (%.1fs)", key, msg, (ss["end_at"] - ss["start_at"]) / 1000.0)
            for n in needles:
                check(n in msg, "%s: message %r does not hold %r", key, msg, n)
            check("SUMMARY-MUST-NOT-WIN" not in msg, "%s: the summary replaced the reason", key)
            check(str(response_of(st).get("exit_code")) == "0",
                  "%s: exit_code %r", key, response_of(st).get("exit_code"))
            check(not outputs_of(st), "%s: a refused file recorded outputs: %s", key,
                  sorted(outputs_of(st)))
            check("root:" not in json.dumps(st), "%s: /etc/passwd was read", key)
        ss = status_of(s.get_step("b-fifo"))
        check(ss["end_at"] - ss["start_at"] < T(5) * 1000,
              "the FIFO step took %d ms", ss["end_at"] - ss["start_at"])
        for key, (_, _, want) in accepted.items():
            st = done(key)
            got = outputs_of(st)
            check(got == want, "%s: outputs (%d names) differ from the %d expected: %s", key,
                  len(got), len(want),
                  sorted((k, len(got.get(k) or ""), len(want.get(k) or ""))
                         for k in set(got) | set(want) if got.get(k) != want.get(k))[:5])
        ss = status_of(s.get_step("a-sum-link"))
        check(ss.get("message") == "", "a summary that is a link became the message %r",
              ss.get("message"))
        with open(os.path.join(target_dir, "keep.txt")) as f:
            check(f.read() == "keep me", "a link's target was changed")
        check(os.path.exists(os.path.join(s.tmp, "leak.txt")) and
              os.path.exists("/etc/passwd"), "a link's target was removed")
        # A step that fails before it runs: its prepared directory goes too.
        ustep("b-early", with_={"BAD-KEY": "x"})
        st = s.wait_step("b-early")
        check(status_of(st)["status"] == "FAILED" and "BAD-KEY" in status_of(st)["message"],
              "b-early: %s", status_of(st))
        dir_gone("b-early", wait=5)
        left = os.listdir(out_root)
        check(not left, "left in %s: %s", out_root, left)
        log("%d refused kinds, %d bounds accepted, output dirs removed",
            len(refused), len(accepted))

        # ---- 6. a FAILED step: recorded, offered to nobody ----------------------------------
        kfa = pstep("pfail", 1, 1, "failer", script=(
            'echo "FX=made-before-failing" >> "$WORKFLOW_OUTPUT"; '
            'echo "SUMMARY-OF-FAILED" > "$WORKFLOW_SUMMARY"; exit 3'))
        kfb = pstep("pfail", 1, 2, "fine", script='echo "OKX=ok" >> "$WORKFLOW_OUTPUT"')
        st = done(kfa, "FAILED")
        msg = status_of(st).get("message", "")
        check("3" in msg and "SUMMARY-OF-FAILED" not in msg,
              "a FAILED step's message %r (want its exit code, not the summary)", msg)
        check(outputs_of(st) == {"FX": "made-before-failing"} and
              str(response_of(st).get("exit_code")) == "3",
              "a FAILED step's response: %s", response_of(st))
        done(kfb)
        kfc = pstep("pfail", 2, 1, "after-fail")
        env = env_of(done(kfc))
        check("FX" not in env and "failer.FX" not in env,
              "a FAILED step's output was offered: %r", env.get("FX"))
        check(env.get("OKX") == "ok" and env.get("fine.OKX") == "ok",
              "the succeeded step's OKX not offered: %r", env.get("OKX"))
        log("FAILED step: %r; outputs recorded, not offered", msg)

        # ---- 7. Go-format steps written with etcdctl ----------------------------------------
        etcdctl = shutil.which("etcdctl")

        def raw_put(key, text):
            rev0 = s.c.revision()
            if etcdctl:
                p = subprocess.run([etcdctl, "--endpoints=" + s.etcd.url, "put", key, text],
                                   capture_output=True, text=True, timeout=30,
                                   env=dict(os.environ, ETCDCTL_API="3"))
                check(p.returncode == 0, "etcdctl put: %s", p.stderr)
            else:
                s.c.put(key, text.encode())
            # the first version written after rev0 (the agent may have
            # written the key since)
            with s.c.watch(key, start_revision=rev0 + 1) as w:
                ev = next((e for e in w.events(timeout=T(5)) if e["key"] == key), None)
            check(ev is not None and ev["value"] == text.encode(),
                  "etcd did not keep the bytes of %s: %r", key, ev and ev["value"][:200])

        pipe("pgo")

        def go_step(key, sid, name, with_, flow):
            return (
                '{"key":"%s","create_type":"PIPELINE","namespace":"%s","pipeline_id":"pgo",'
                '"create_at":1626770673846,"update_at":1626770681002,"deploy_id":"",'
                '"resource_version":0,"id":%d,"name":"%s","action":"x@v1","with":%s,'
                '"is_parallel":false,"ignore_failed":false,"with_audit":false,'
                '"audit_params":null,"with_notify":false,"notify_params":null,"webhooks":null,'
                '"node_selector":null,"status":{"flow_number":%d,"start_at":0,"end_at":0,'
                '"status":"PENDDING","scheduled_node":"%s","audit_at":0,"audit_response":"UOD",'
                '"audit_message":"","notify_at":0,"notify_error":"","message":"",'
                '"response":null}}' % (key, NS, sid, name, json.dumps(with_, separators=(",", ":"))
                                       if with_ is not None else "null", flow, s.node))
        kg1 = "%s.pgo.1.1" % NS
        kg2 = "%s.pgo.2.1" % NS
        raw_put(s.step_key(kg1), go_step(kg1, 1, "gobuild", {
            "SCRIPT": 'echo "GIMAGE=reg/go:7" >> "$WORKFLOW_OUTPUT"; '
                      'printf "GML<<X\\na\\nb\\nX\\n" >> "$WORKFLOW_OUTPUT"'}, 1))
        st = done(kg1)
        check(outputs_of(st) == {"GIMAGE": "reg/go:7", "GML": "a\nb"}, "Go producer: %s",
              outputs_of(st))
        check(st.get("audit_params", 1) is None and st.get("webhooks", 1) is None,
              "the Go producer's null fields changed: %s", json.dumps(st)[:300])
        raw_put(s.step_key(kg2), go_step(kg2, 1, "godeploy", None, 1))
        st = done(kg2)
        env = env_of(st)
        check(env.get("GIMAGE") == "reg/go:7" and env.get("gobuild.GIMAGE") == "reg/go:7" and
              env.get("GML") == "a\nb" and env.get("gobuild.GML") == "a\nb",
              "the Go consumer got GIMAGE %r gobuild.GIMAGE %r GML %r", env.get("GIMAGE"),
              env.get("gobuild.GIMAGE"), env.get("GML"))
        check(st.get("with", 1) is None and st.get("node_selector", 1) is None,
              "the Go consumer's null maps changed: %s", json.dumps(st)[:300])
        log("Go-format steps: published and consumed")

        # ---- 8. a rewrite by a Go-schema client keeps them ----------------------------------
        kr1 = pstep("prw", 1, 1, "rw-build", flow=1, script=(
            'echo "RV=kept" >> "$WORKFLOW_OUTPUT"; '
            'printf "RML<<EOT\\nx y\\n\\tz\\nEOT\\n" >> "$WORKFLOW_OUTPUT"'))
        st = done(kr1)
        kv = s.c.get(s.step_key(kr1))
        stored = json.loads(kv["value"])
        g = go_rewrite(stored)
        dropped = sorted(set(stored) - set(g)) + \
            sorted("status." + k for k in set(stored.get("status") or {}) - set(g["status"]))
        log("Go rewrite drops %s", dropped or "nothing")
        g["update_at"] = stored.get("update_at", 0) + 1
        raw_put(s.step_key(kr1), json.dumps(g, separators=(",", ":")))
        back = s.get_step(kr1)
        check(outputs_of(back) == {"RV": "kept", "RML": "x y\n\tz"},
              "outputs after the Go rewrite: %s", outputs_of(back))
        kr2 = pstep("prw", 2, 1, "rw-use")
        env = env_of(done(kr2))
        check(env.get("RV") == "kept" and env.get("rw-build.RML") == "x y\n\tz",
              "after a Go rewrite the consumer got RV %r RML %r", env.get("RV"),
              env.get("rw-build.RML"))

        # ---- 9. a step run again loses its earlier outputs ----------------------------------
        kq1 = pstep("prerun", 1, 1, "again", script='echo "OLD=1" >> "$WORKFLOW_OUTPUT"')
        st = done(kq1)
        check(outputs_of(st) == {"OLD": "1"}, "first run: %s", outputs_of(st))
        first_start = status_of(st)["start_at"]

        def again(o):
            o["with"]["SCRIPT"] = 'echo "NEW=2" >> "$WORKFLOW_OUTPUT"'
            o["status"]["status"] = "PENDDING"
        s.c.update_json(s.step_key(kq1), again)
        deadline = time.time() + T(30)
        while True:
            st = s.get_step(kq1)
            if status_of(st)["status"] in ("SUCCEEDED", "FAILED") and \
                    status_of(st)["start_at"] > first_start:
                break
            check(time.time() < deadline, "the step run again did not end: %s", status_of(st))
            time.sleep(0.05)
        check(status_of(st)["status"] == "SUCCEEDED" and outputs_of(st) == {"NEW": "2"},
              "second run: %s, outputs %s", status_of(st)["status"], outputs_of(st))
        kq2 = pstep("prerun", 2, 1, "after-again")
        env = env_of(done(kq2))
        check(env.get("NEW") == "2" and "OLD" not in env, "after a rerun: NEW %r OLD %r",
              env.get("NEW"), env.get("OLD"))

        # ---- 10. the summary ---------------------------------------------------------------
        sums = {
            "s-cut-utf8": ("x" + "é" * 1000 + "\nsecond line", "x" + "é" * 511),
            "s-cut-ascii": ("y" * 1025, "y" * 1024),
            "s-exact": ("z" * 1024 + "\n", "z" * 1024),
            "s-ctl": ("a\tb\x01c\x7fd\x1b[0m\r\nsecond", "a\tb c d [0m"),
            "s-empty-first": ("\nsecond", ""),
        }
        for key, (text, _) in sums.items():
            ustep(key, py="open(os.environ['WORKFLOW_SUMMARY'], 'wb').write(%r)"
                  % text.encode())
        for key, (_, want) in sums.items():
            msg = status_of(done(key)).get("message")
            check(msg == want, "%s: message %r (%d bytes), want %r (%d bytes)", key,
                  (msg or "")[:40] + "...", len((msg or "").encode()), want[:40] + "...",
                  len(want.encode()))
        log("summaries cut at 1024 bytes on a character boundary")

        # ---- 11. canceled, timed out, deleted -----------------------------------------------
        slow = ('echo "A=1" >> "$WORKFLOW_OUTPUT"; echo "SUM-NOT-WIN" > "$WORKFLOW_SUMMARY"; '
                'touch "$WORKFLOW_OUTPUT.ready"; sleep 30')

        def wait_ready(key):
            ready = os.path.join(out_root, key, "output.ready")
            deadline = time.time() + T(20)
            while not os.path.exists(ready):
                check(time.time() < deadline, "%s did not start writing", key)
                time.sleep(0.05)
        ustep("c-cancel", script=slow)
        ustep("c-timeout", script=slow, with_={"WORKFLOW_TIMEOUT": "1"})
        ustep("c-delete", script=slow)
        for k in ("c-cancel", "c-delete"):
            wait_ready(k)
        s.set_status("c-cancel", "CANCELING")
        s.c.delete(s.step_key("c-delete"))
        st = done("c-cancel", "CANCELED")
        check(status_of(st).get("message") == "canceled" and outputs_of(st) == {"A": "1"},
              "canceled: message %r outputs %s", status_of(st).get("message"), outputs_of(st))
        st = done("c-timeout", "FAILED")
        check("timed out" in status_of(st).get("message", "") and outputs_of(st) == {"A": "1"},
              "timed out: message %r outputs %s", status_of(st).get("message"), outputs_of(st))
        dir_gone("c-delete", wait=10)
        check(s.get_step("c-delete") is None, "a deleted step was written again")
        log("canceled and timed-out steps keep their outputs and messages; dirs removed")

        # ---- 12. many earlier steps (pages of 16), a USER step, the offer bounds ---------------
        many = [pstep("pmany", 1, i, "m%d" % i, script='echo "M%d=v%d" >> "$WORKFLOW_OUTPUT"'
                      % (i, i)) for i in range(1, 21)]
        s.wait_steps(many, statuses="SUCCEEDED", timeout=60)
        env = env_of(done(pstep("pmany", 2, 1, "m-use")))
        bad = [i for i in range(1, 21)
               if env.get("M%d" % i) != "v%d" % i or env.get("m%d.M%d" % (i, i)) != "v%d" % i]
        check(not bad, "the consumer of 20 earlier steps misses the outputs of %s", bad)
        # the same run's key, but a USER step: offered nothing
        pipe("pmany")
        kuser = "%s.pmany.3.1" % NS
        s.put_step(kuser, "x@v1", create_type="USER", namespace=NS, pipeline_id="pmany",
                   name="user")
        env = env_of(done(kuser))
        offered = sorted(k for k in env if k.split(".")[-1] in ["M%d" % i for i in range(1, 21)])
        check(not offered, "a USER step was offered outputs: %s", offered)
        # a step without create_type is a pipeline step
        kmiss = "%s.pmany.3.2" % NS
        s.put_step(kmiss, "x@v1", create_type=None, namespace=NS, pipeline_id="pmany",
                   name="nocreate")
        env = env_of(done(kmiss))
        check(env.get("M7") == "v7", "a step without create_type was not offered M7")
        log("20 earlier steps read in pages; USER step offered nothing")

        # 31 steps of 256 KiB each: under 8 MiB kept, over 1 MiB merged (NAME and
        # <step>.NAME); one more passes 8 MiB while reading.
        big = ("[out(b'W%d_' % i + os.environ['WORKFLOW_STEP_KEY'].split('.')[-1].encode() + "
               "b'=' + b'a' * 65536 + b'\\n') for i in range(4)]")
        bigs = [pstep("pbig", 1, i, "b%d" % i, py=big) for i in range(1, 32)]
        s.wait_steps(bigs, statuses="SUCCEEDED", timeout=90)
        st = done(pstep("pbig", 2, 1, "big-use"), "FAILED")
        msg = status_of(st).get("message", "")
        check("outputs offered by the earlier steps add up to over 1048576 bytes" in msg,
              "over the merged bound: %r", msg)
        lp = response_of(st).get("log_path")
        check(not lp or not os.path.exists(lp) or "@@ENV@@" not in open(lp).read(),
              "the step ran although its offers were over the bound")
        done(pstep("pbig", 1, 32, "b32", py=big))
        st = done(pstep("pbig", 2, 2, "big-use2"), "FAILED")
        msg2 = status_of(st).get("message", "")
        check("outputs of the earlier steps add up to over 8388608 bytes" in msg2,
              "over the kept bound: %r", msg2)
        log("offer bounds: %r / %r", msg, msg2)

        # ---- 13. a step failed by a restart: the new process removes its directory ----------
        pidf = os.path.join(s.tmp, "restart.pid")
        s.pid_files.append(pidf)
        ustep("c-restart", script='echo $$ > %s; ' % pidf + slow)
        wait_ready("c-restart")
        agent.kill9()
        s.kill_pid_files()
        agent.start()
        st = done("c-restart", "FAILED", timeout=60)
        check("restarted" in status_of(st).get("message", ""), "restart: %s", status_of(st))
        dir_gone("c-restart", wait=5)

        check(not os.listdir(out_root), "left in %s: %s", out_root, os.listdir(out_root))

        # ---- 14. the agent stops with a step running: cut at the drain timeout ---------------
        ustep("c-drain", script=slow)
        wait_ready("c-drain")
        agent.stop()
        st = s.get_step("c-drain")
        check(status_of(st)["status"] == "FAILED" and outputs_of(st) == {"A": "1"} and
              "SUM-NOT-WIN" not in status_of(st).get("message", ""),
              "a step cut by the drain: %s", status_of(st))
        dir_gone("c-drain")
        log("drained step: %r, outputs kept, dir removed", status_of(st).get("message"))


run(main)
