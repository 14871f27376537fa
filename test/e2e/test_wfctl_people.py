#!/usr/bin/env python3
"""wfctl for people, against a real etcd and a running agent:

- get steps|actions|nodes: aligned tables; -o json lines and -o yaml
  documents that a real YAML parser (PyYAML) reads back to the same objects
  (quoted "8080", "2", "yes"); -o name;
- describe: every field, the merged params (action defaults < step with)
  with their origin, secret values as ****** (by name glob, by `secret:
  true`, and with --mask-params), the timeline; -o json/yaml;
- logs -f: prints lines while the step is still RUNNING and follows it to
  its end;
- run: status changes on stderr, the log streamed live on stdout, the exit
  status is the step's result;
- errors name the object and the etcd endpoint;
- the man pages render and cover every flag of --help;
- the bash completion completes commands, flags and names from etcd.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from e2e import Scenario, run, check, status_of, log, run_wfctl, WFCTL, WORKFLOW_NODE, T  # noqa: E402
from agent import sanitizer_report, SOURCE_ROOT, BUILD_ROOT  # noqa: E402

try:
    import yaml  # python3-yaml (scripts/install-deps.sh)
except ImportError:  # pragma: no cover
    yaml = None

SECRET = "tok-very-secret-123"
FILE_SECRET = "kf-secret-value"

ACTIONS = """\
kind: Action
name: greet
version: "2"
runner_type: LOCAL
runner_params:
  CMD: sh,-c,echo "$GREETING $WHO on $PORT"
run_params:
  - {key_name: WHO, default_value: world}
  - {key_name: GREETING, default_value: hello}
  - {key_name: KEYFILE, default_value: %s, secret: true}
description: 'says: hello'
---
kind: Action
name: ticker
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,for i in 1 2 3 4; do echo tick $i; sleep 1; done
---
kind: Action
name: fail
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,echo about to fail; exit 3
""" % FILE_SECRET


def main():
    with Scenario("wfctl_people") as s:
        check(os.access(WFCTL, os.X_OK), "no wfctl at %s", WFCTL)

        def ctl(*args, timeout=60, env=None, etcd=None):
            p = run_wfctl(list(args), etcd or s.etcd.url, s.prefix, timeout=T(timeout),
                          cwd=s.tmp, env=env)
            log("wfctl %s -> exit %d%s%s", " ".join(args), p.returncode,
                ("\n  stdout: " + p.stdout.strip()[:300]) if p.stdout.strip() else "",
                ("\n  stderr: " + p.stderr.strip()[:300]) if p.stderr.strip() else "")
            rep = sanitizer_report(p.stderr)
            check(rep is None, "wfctl %s: %s", " ".join(args), rep)
            return p

        af = os.path.join(s.tmp, "actions.yaml")
        with open(af, "w") as f:
            f.write(ACTIONS)
        check(ctl("apply", "-f", af).returncode == 0, "apply actions")
        s.agent()

        # applied by wfctl: create_at set, so the timeline shows the wait
        sf = os.path.join(s.tmp, "step.json")
        with open(sf, "w") as f:
            json.dump({"kind": "Step", "key": "people1", "action": "greet@2",
                       "with": {"WHO": "you", "API_TOKEN": SECRET, "PORT": "8080"}}, f)
        check(ctl("apply", "-f", sf, "--node", s.node).returncode == 0, "apply step")
        st = s.wait_step("people1")
        check(status_of(st)["status"] == "SUCCEEDED", "people1: %s", status_of(st))

        # ---- get: tables ----
        p = ctl("get", "steps")
        check(p.returncode == 0, "get steps: exit %d", p.returncode)
        lines = p.stdout.splitlines()
        check(lines[0].split() == ["KEY", "ACTION", "NODE", "STATUS", "MESSAGE"],
              "get steps header: %r", lines[0])
        col = lines[0].index("STATUS")
        row = [l for l in lines if l.startswith("people1 ")]
        check(len(row) == 1 and row[0][col:].startswith("SUCCEEDED"),
              "STATUS column not aligned: %r / %r", lines[0], row)
        p = ctl("get", "actions")
        check(p.returncode == 0 and p.stdout.splitlines()[0].split()
              == ["NAME", "VERSION", "RUNNER", "DESCRIPTION"], "get actions: %r", p.stdout)
        p = ctl("get", "nodes")
        check(p.returncode == 0 and s.node in p.stdout, "get nodes: %r", p.stdout)

        # ---- get: -o json / yaml / name, compared with what etcd holds ----
        for kind, prefix in (("steps", s.step_key("")), ("actions", s.action_key("x")[:-4]),
                             ("nodes", s.node_key("")), ):
            stored = s.c.get_prefix_json(prefix)
            p = ctl("get", kind, "-o", "json")
            check(p.returncode == 0, "get %s -o json: exit %d", kind, p.returncode)
            got = [json.loads(l) for l in p.stdout.splitlines()]
            check(sorted(got, key=json.dumps) == sorted(stored.values(), key=json.dumps),
                  "get %s -o json differs from etcd:\n%s\n%s", kind, got, stored)
            p = ctl("get", kind, "-o", "yaml")
            check(p.returncode == 0, "get %s -o yaml: exit %d", kind, p.returncode)
            if yaml:
                docs = [d for d in yaml.safe_load_all(p.stdout)]
                check(docs == got, "get %s -o yaml reads back differently:\n%s\n%s",
                      kind, p.stdout, got)
            # keys in the stored order, as -o json prints them
            first_keys = [l.split(":")[0] for l in p.stdout.split("---\n")[0].splitlines()
                          if l and not l.startswith((" ", "-"))]
            check(first_keys == list(got[0].keys()), "yaml key order %s vs %s", first_keys,
                  list(got[0].keys()))
        p = ctl("get", "actions", "greet@2", "-o", "yaml")
        check("version: '2'" in p.stdout and "description: 'says: hello'" in p.stdout,
              "quoted scalars in yaml: %r", p.stdout)
        p = ctl("get", "steps", "people1", "-o", "yaml")
        check("PORT: '8080'" in p.stdout, "8080 must stay a string: %r", p.stdout)
        p = ctl("get", "steps", "-o", "name")
        check(p.returncode == 0 and p.stdout.split() == ["people1"], "-o name: %r", p.stdout)
        p = ctl("get", "actions", "-o", "name")
        check(sorted(p.stdout.split()) == ["fail@v1", "greet@2", "ticker@v1"],
              "actions -o name: %r", p.stdout)
        p = ctl("get", "steps", "-o", "wide")
        check(p.returncode == 2 and "wide" in p.stderr, "-o wide must be a usage error")

        # ---- describe ----
        p = ctl("describe", "people1")
        out = p.stdout
        check(p.returncode == 0, "describe: exit %d", p.returncode)
        check(SECRET not in out and FILE_SECRET not in out, "a secret leaked:\n%s", out)
        for want in ("Step:     people1", "Status:   SUCCEEDED on " + s.node,
                     "Action:   greet@2 (LOCAL runner)", "Fields:", "  key: people1",
                     "    API_TOKEN: '******'", "    PORT: '8080'", "log_path:",
                     "Params (action defaults < pipeline with < step with):",
                     "Timeline (local time):", "  created ", "  started ", "  ended ",
                     "(waited ", "(ran "):
            check(want in out, "describe lacks %r:\n%s", want, out)
        params = {}
        section = out.split("Params (")[1].split("Timeline")[0].splitlines()[2:]
        for l in section:
            f = l.split(None, 2)
            if len(f) == 3:
                params[f[0]] = (f[1], f[2])
        check(params.get("WHO") == ("you", "step") and params.get("GREETING")
              == ("hello", "action default") and params.get("API_TOKEN") == ("******", "step")
              and params.get("KEYFILE") == ("******", "action default")
              and params.get("PORT") == ("8080", "step"), "merged params: %s", params)

        p = ctl("describe", "people1", "-o", "json")
        d = json.loads(p.stdout)
        byname = {x["name"]: x for x in d["params"]}
        tl = d["timeline"]
        check(byname["API_TOKEN"]["secret"] and byname["API_TOKEN"]["value"] == "******"
              and byname["KEYFILE"]["secret"] and not byname["WHO"]["secret"]
              and d["step"]["with"]["API_TOKEN"] == "******"
              and tl["create_at"] == st["create_at"]
              and tl["waited_ms"] == status_of(st)["start_at"] - st["create_at"]
              and tl["ran_ms"] == status_of(st)["end_at"] - status_of(st)["start_at"],
              "describe -o json: %s", d)
        if yaml:
            # a finished step: nothing in it depends on the time of the call
            p = ctl("describe", "people1", "-o", "yaml")
            check(yaml.safe_load(p.stdout) == d, "describe -o yaml differs from -o json:\n%s",
                  p.stdout)
        p = ctl("describe", "people1", "--mask-params", "WHO")
        check("API_TOKEN   " + SECRET in p.stdout and "WHO         ******" in p.stdout
              and FILE_SECRET not in p.stdout, "--mask-params WHO:\n%s", p.stdout)
        p = ctl("describe", "people1", env={"WORKFLOW_MASK_PARAMS": "*PORT*"})
        check("PORT        ******" in p.stdout and SECRET in p.stdout,
              "WORKFLOW_MASK_PARAMS:\n%s", p.stdout)

        # a pipeline step (on a node that does not exist: it stays PENDDING):
        # the pipeline's `with` sits between the action defaults and the step
        pf = os.path.join(s.tmp, "pipeline.yaml")
        with open(pf, "w") as f:
            f.write("kind: Pipeline\nid: p1\nnamespace: ns1\n"
                    "with: {WHO: pipe, DB_PASSWORD: pw-secret-1, PORT: '1'}\n---\n"
                    "kind: Step\nkey: ns1.p1.1.1\nnamespace: ns1\npipeline_id: p1\n"
                    "create_type: PIPELINE\naction: greet@2\nwith: {PORT: '2'}\n"
                    "status: {scheduled_node: elsewhere}\n")
        check(ctl("apply", "-f", pf).returncode == 0, "apply pipeline")
        p = ctl("describe", "ns1.p1.1.1", "-o", "json")
        byname = {x["name"]: (x["value"], x["from"]) for x in json.loads(p.stdout)["params"]}
        check(byname == {"WHO": ("pipe", "pipeline"), "GREETING": ("hello", "action default"),
                         "KEYFILE": ("******", "action default"),
                         "DB_PASSWORD": ("******", "pipeline"), "PORT": ("2", "step")},
              "pipeline step params: %s", byname)
        check("pw-secret-1" not in p.stdout, "pipeline secret leaked")
        s.c.delete(s.step_key("ns1.p1.1.1"))

        # ---- logs -f follows a running step to its end ----
        s.put_step("tick1", "ticker@v1")
        s.wait_step("tick1", "RUNNING", timeout=20)
        proc = subprocess.Popen([WFCTL, "--etcd", s.etcd.url, "--prefix", s.prefix, "logs",
                                 "tick1", "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=s.tmp)
        first = proc.stdout.readline()
        status_at_first = status_of(s.get_step("tick1"))["status"]
        rest, err = proc.communicate(timeout=T(30))
        check(first == "tick 1\n" and status_at_first == "RUNNING",
              "logs -f did not stream live: first %r while %s", first, status_at_first)
        check(proc.returncode == 0 and first + rest == "tick 1\ntick 2\ntick 3\ntick 4\n",
              "logs -f: exit %d, %r, %r", proc.returncode, first + rest, err)
        check(status_of(s.get_step("tick1"))["status"] == "SUCCEEDED", "tick1 not done")

        # ---- run: status changes, live log, exit status = the step's result ----
        proc = subprocess.Popen([WFCTL, "--etcd", s.etcd.url, "--prefix", s.prefix, "run",
                                 "ticker@v1", "--node", s.node], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=s.tmp)
        key = proc.stdout.readline().strip()
        first = proc.stdout.readline()
        status_at_first = status_of(s.get_step(key))["status"]
        rest, err = proc.communicate(timeout=T(30))
        log("run: key %s, stderr:\n%s", key, err)
        check(first == "tick 1\n" and status_at_first == "RUNNING",
              "run did not stream live: %r while %s", first, status_at_first)
        check(proc.returncode == 0 and first + rest == "tick 1\ntick 2\ntick 3\ntick 4\n",
              "run ticker: exit %d, %r", proc.returncode, first + rest)
        for want in ("step %s PENDDING" % key, "step %s RUNNING on %s" % (key, s.node),
                     "step %s SUCCEEDED on %s" % (key, s.node)):
            check(want in err, "run stderr lacks %r: %s", want, err)
        check(err.index("RUNNING") < err.index("SUCCEEDED"), "status order: %s", err)
        p = ctl("run", "fail@v1", "--node", s.node)
        check(p.returncode == 1 and "about to fail" in p.stdout and "FAILED" in p.stderr,
              "run fail: exit %d %r %r", p.returncode, p.stdout, p.stderr)

        # ---- errors name the object and the endpoint ----
        for args, obj in ((["describe", "nosuch"], 'step "nosuch" not found'),
                          (["logs", "nosuch"], 'step "nosuch" not found'),
                          (["cancel", "nosuch"], 'step "nosuch" not found'),
                          (["get", "steps", "nosuch"], 'step "nosuch" not found'),
                          (["get", "actions", "no@v9"], 'action "no@v9" not found')):
            p = ctl(*args)
            check(p.returncode == 1 and obj in p.stderr and "(etcd %s)" % s.etcd.url
                  in p.stderr, "%s: %r", args, p.stderr)
        dead = "http://127.0.0.1:9"
        for args, obj in ((["get", "steps"], "listing steps"),
                          (["describe", "people1"], 'reading step "people1"'),
                          (["logs", "people1"], 'reading step "people1"'),
                          (["cancel", "people1"], 'reading step "people1"'),
                          (["apply", "-f", af], "writing action/greet@2"),
                          (["run", "greet@2", "--node", "n"], "creating step")):
            p = ctl(*args, etcd=dead, timeout=120)
            check(p.returncode == 1 and obj in p.stderr and "(etcd %s)" % dead in p.stderr,
                  "unreachable etcd, %s: %r", args, p.stderr)

        man_pages()
        completion(s)


def help_flags(argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    flags = set()
    for word in out.replace(",", " ").replace("[", " ").replace("]", " ").split():
        m = re.fullmatch(r"(--[a-z][a-z0-9-]*)(=.*)?", word)
        if m:  # not prose like "etcd's --client-cert-auth;"
            flags.add(m.group(1))
    return flags


def man_pages():
    docs = os.path.join(BUILD_ROOT, "docs")
    if not shutil.which("scdoc"):
        log("scdoc not installed: man pages not built, not checked")
        return
    for page, binary in (("wfctl.1", WFCTL), ("workflow-node.1", WORKFLOW_NODE)):
        path = os.path.join(docs, page)
        check(os.path.exists(path), "%s was not built (docs/meson.build)", path)
        p = subprocess.run(["man", "-l", path], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, MANPAGER="cat", MANWIDTH="100"))
        check(p.returncode == 0 and "NAME" in p.stdout and page.split(".")[0] in p.stdout,
              "man -l %s: exit %d %s", path, p.returncode, p.stderr)
        text = p.stdout.replace("\u2010", "-").replace("\u2010\n", "")
        with open(os.path.join(SOURCE_ROOT, "docs", "man", page + ".scd")) as f:
            src = f.read().replace("\\_", "_")
        missing = sorted(f for f in help_flags([binary, "--help"]) if f not in src)
        check(not missing, "%s does not document %s", page, missing)
        check(text.count("\n") > 40, "%s renders short:\n%s", page, text)
    log("man pages render and cover --help")


def completion(s):
    script = os.path.join(SOURCE_ROOT, "contrib", "wfctl.bash")
    if not shutil.which("bash"):
        log("no bash: completion not checked")
        return

    def complete(line):
        words = line.split(" ")
        prog = ("source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_wfctl\n"
                "printf '%%s\\n' \"${COMPREPLY[@]}\"\n"
                % (shq(script), " ".join(shq(w) for w in words), len(words) - 1))
        env = dict(os.environ, WORKFLOW_ETCD=s.etcd.url, WORKFLOW_PREFIX=s.prefix)
        p = subprocess.run(["bash", "--norc", "-c", prog], capture_output=True, text=True,
                           timeout=T(30), env=env)
        check(p.returncode == 0, "completion %r: %s", line, p.stderr)
        got = sorted(x for x in p.stdout.split("\n") if x)
        log("complete %r -> %s", line, got)
        return got

    check({"apply", "get", "describe", "logs", "cancel", "run"} <= set(complete(WFCTL + " ")),
          "commands")
    check(complete(WFCTL + " de") == ["describe"], "prefix")
    check(complete(WFCTL + " get ") == ["actions", "nodes", "steps"], "kinds")
    check(complete(WFCTL + " get steps -o ") == ["json", "name", "table", "yaml"], "-o")
    check(complete(WFCTL + " describe -o ") == ["json", "text", "yaml"], "describe -o")
    check("--mask-params" in complete(WFCTL + " describe --"), "describe flags")
    check("--follow" in complete(WFCTL + " logs people1 --"), "logs flags")
    keys = complete(WFCTL + " describe ")
    check("people1" in keys and "tick1" in keys, "step keys: %s", keys)
    check(complete(WFCTL + " logs tic") == ["tick1"], "step key prefix")
    check(complete(WFCTL + " run ") == ["fail@v1", "greet@2", "ticker@v1"], "action refs")
    check(complete(WFCTL + " run greet@2 --node ") == [s.node], "node names")
    check(complete(WFCTL + " get actions gr") == ["greet@2"], "get actions NAME")
    # --etcd/--prefix on the line win over the environment
    check(complete(WFCTL + " --prefix nothing-here describe ") == [], "--prefix honoured")
    check(complete("%s --etcd %s --prefix %s cancel peo" % (WFCTL, s.etcd.url, s.prefix))
          == ["people1"], "--etcd honoured")


def shq(w):
    return "'" + w.replace("'", "'\\''") + "'"


run(main)
