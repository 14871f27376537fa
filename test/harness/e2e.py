"""Shared scaffolding for test/e2e/test_*.py (stdlib only).

Every test is a standalone script:

    from e2e import Scenario, run, check, sh
    def main():
        with Scenario("success") as s:      # private etcd, temp dir, prefix
            s.agent()                         # workflow-node --name node-success ...
            s.put_action("hello", sh("echo hi"))
            s.put_step("k1", "hello@v1")
            st = s.wait_step("k1")
            check(st["status"]["status"] == "SUCCEEDED", "status: %s", st["status"])
    run(main)

On failure the script prints the reason, the agents' stderr tails and keeps
its temp dir (the path is printed); it exits 1.  Exit 77 means skipped.
WF_KEEP_TMP=1 keeps the temp dir of a passing test too.

WF_E2E_ETCD=https runs the scenario's etcd with TLS as well (a second,
https listener with --client-cert-auth, certificates from certs.py): every
agent started by s.agent() and every s.wfctl() then talks to it at
s.etcd.tls_url with --etcd-cacert/--etcd-cert/--etcd-key, while the test's
own python client (s.c) stays on the plain http listener.  Tests that build
an agent's command line themselves use s.agent_etcd_args(); tests that put a
TcpProxy between agent and etcd use s.etcd_proxy().  meson registers such
runs as e2e-h2-<name> (test/e2e/meson.build): with TLS the agent offers
HTTP/2 by ALPN.
"""
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agent import Agent, AgentError, under_asan, run_wfctl, WORKFLOW_NODE, WFCTL  # noqa: E402,F401
from etcd import Etcd  # noqa: E402
from etcdclient import EtcdClient, EtcdError, Watch, WatchCanceled  # noqa: E402,F401

FINAL = ("SUCCEEDED", "FAILED", "CANCELED")
SKIP = 77


def slow():
    """Factor for time limits that the sanitizer build needs."""
    return 3.0 if under_asan() else 1.0


def T(seconds):
    return seconds * slow()


def log(fmt, *args):
    msg = fmt % args if args else fmt
    sys.stdout.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stdout.flush()


class TestFailure(AssertionError):
    pass


class Skip(Exception):
    pass


def check(cond, fmt, *args):
    if not cond:
        raise TestFailure(fmt % args if args else fmt)


def sh(script):
    """A LOCAL runner CMD running script with sh -c.  The comma-separated
    form cannot carry commas; scripts with commas use the JSON-array form."""
    if "," in script:
        return json.dumps(["sh", "-c", script])
    return "sh,-c," + script


def now_ms():
    return int(time.time() * 1000)


def etcd_mode():
    """"https" when WF_E2E_ETCD=https asks for etcd over TLS, else "http"."""
    mode = os.environ.get("WF_E2E_ETCD", "http").strip().lower() or "http"
    if mode not in ("http", "https"):
        raise ValueError("WF_E2E_ETCD=%r: want http or https" % mode)
    return mode


class Scenario:
    def __init__(self, name, start_etcd=True, etcd_args=(), etcd_tls=None):
        """etcd_tls: True or False forces etcd over TLS on or off; None
        (the default) follows WF_E2E_ETCD."""
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="wf-e2e-%s-" % name)
        self.prefix = "t-%s-%s" % (name, uuid.uuid4().hex[:8])
        self.node = "node-" + name
        self.log_dir = os.path.join(self.tmp, "runner_log")
        self.start_etcd = start_etcd
        # WF_E2E_ETCD=https: the certificates are made in __enter__ (their
        # paths are fixed now, so that Etcd picks its https port here and
        # keeps it across restarts).
        self.etcd_mode = etcd_mode() if etcd_tls is None else ("https" if etcd_tls else "http")
        self.tls_dir = os.path.join(self.tmp, "etcd-tls")
        self.pem = None   # certs.make_certs() paths once made
        tls = None
        if self.etcd_mode == "https":
            tls = {"ca": os.path.join(self.tls_dir, "ca.crt"),
                   "cert": os.path.join(self.tls_dir, "server.crt"),
                   "key": os.path.join(self.tls_dir, "server.key")}
        self.etcd = Etcd(data_dir=os.path.join(self.tmp, "etcd"), extra_args=etcd_args,
                         tls=tls) if start_etcd else None
        self.agents = []
        self.pid_files = []  # files holding pids of processes to kill at the end
        self.c = None

    # -- lifetime -------------------------------------------------------
    def __enter__(self):
        log("scenario %s: tmp %s, prefix %s", self.name, self.tmp, self.prefix)
        if self.etcd:
            os.makedirs(self.etcd.dir, exist_ok=True)
            if self.etcd.tls and self.etcd.tls["cert"].startswith(self.tls_dir + "/"):
                from certs import make_certs  # certs imports this module
                self.pem = make_certs(self.tls_dir)
            self.etcd.start()
            self.c = EtcdClient(self.etcd.url)
            log("etcd %s pid %d", self.etcd.url, self.etcd.pid)
            if self.pem:
                log("etcd mode https: agents and wfctl use %s with "
                    "client certificates; the test's own client stays on %s",
                    self.etcd.tls_url, self.etcd.url)
        return self

    def __exit__(self, etype, exc, tb):
        failed = etype is not None
        errors = []
        for a in self.agents:
            try:
                a.stop(timeout=T(60), expect_clean=not failed)
            except AgentError as e:
                errors.append(str(e))
        self.kill_pid_files()
        if self.etcd:
            self.etcd.cleanup()
        if failed or errors or os.environ.get("WF_KEEP_TMP") == "1":
            for a in (self.agents if failed or errors else []):
                sys.stdout.write("---- agent %s stderr (%s), last 60 lines:\n%s\n"
                                 % (a.name, a.stderr_path, a.stderr_tail(60)))
            log("kept %s for inspection", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if errors and not failed:
            raise TestFailure("\n".join(errors))
        return False

    def kill_pid_files(self):
        for path in self.pid_files:
            try:
                with open(path) as f:
                    pids = [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                continue
            for pid in pids:
                for target in (-pid, pid):
                    try:
                        os.kill(target, signal.SIGKILL)
                    except OSError:
                        pass

    # -- how agents and wfctl reach etcd ---------------------------------
    @property
    def tls(self):
        """True when agents talk https to this scenario's etcd
        (WF_E2E_ETCD=https)."""
        return self.pem is not None and self.etcd is not None and self.etcd.tls_url is not None

    @property
    def etcd_url_for_agent(self):
        """The etcd URL agents and wfctl use: https in TLS mode, else http."""
        return self.etcd.tls_url if self.tls else self.etcd.url

    @property
    def etcd_port_for_agent(self):
        return self.etcd.tls_port if self.tls else self.etcd.client_port

    def agent_tls_args(self, url=None):
        """--etcd-cacert/--etcd-cert/--etcd-key when url (default: the
        agents' URL) is https to this scenario's etcd in TLS mode, else []."""
        url = url or self.etcd_url_for_agent
        if not self.tls or not url.startswith("https://"):
            return []
        return ["--etcd-cacert", self.pem["ca.crt"], "--etcd-cert", self.pem["client.crt"],
                "--etcd-key", self.pem["client.key"]]

    def agent_etcd_args(self, url=None):
        """--etcd URL and, in TLS mode, the certificate flags: for tests
        that build an agent's command line themselves."""
        url = url or self.etcd_url_for_agent
        return ["--etcd", url] + self.agent_tls_args(url)

    def etcd_proxy(self, cls=None):
        """A started TcpProxy (or cls, a subclass) in front of the etcd
        listener agents use; its url is https in TLS mode (the proxy only
        moves bytes, so TLS and HTTP/2 pass through; it cannot tell requests
        apart inside them)."""
        if cls is None:
            from proxy import TcpProxy as cls
        p = cls("127.0.0.1", self.etcd_port_for_agent)
        if self.tls:
            p.url = "https://127.0.0.1:%d" % p.port
        return p.start()

    def tls_client_without_cn(self):
        """In TLS mode, switches agents and wfctl to a client certificate
        whose subject has no CommonName (signed by the same CA).  etcd with
        --client-cert-auth answers HTTP 400 "CommonName of client sending a
        request against gateway will be ignored and not used as expected" to
        every /v3/ request over a certificate with a CN once auth is enabled
        (etcd's embed/serve.go): a test that enables auth calls this."""
        if not self.tls:
            return
        from certs import openssl
        d = self.tls_dir
        with open(os.path.join(d, "nocn.ext"), "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")
        openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "client-nocn.key", "-out", "client-nocn.csr", "-subj", "/O=wf-e2e")
        openssl(d, "x509", "-req", "-in", "client-nocn.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "nocn.ext",
                "-out", "client-nocn.crt")
        self.pem["client.crt"] = os.path.join(d, "client-nocn.crt")
        self.pem["client.key"] = os.path.join(d, "client-nocn.key")
        log("TLS mode: agents use a client certificate without a CommonName (%s)",
            self.pem["client.crt"])

    def wfctl_env(self, url=None):
        """Environment for wfctl on this scenario's etcd (and certificates
        in TLS mode)."""
        url = url or self.etcd_url_for_agent
        e = {"WORKFLOW_ETCD": url, "WORKFLOW_PREFIX": self.prefix}
        if self.tls and url.startswith("https://"):
            e.update(WORKFLOW_ETCD_CACERT=self.pem["ca.crt"],
                     WORKFLOW_ETCD_CERT=self.pem["client.crt"],
                     WORKFLOW_ETCD_KEY=self.pem["client.key"])
        return e

    def wfctl(self, args, etcd_url=None, env=None, **kw):
        """run_wfctl on this scenario's etcd and prefix (TLS mode aware)."""
        e = self.wfctl_env(etcd_url)
        if env:
            e.update(env)
        return run_wfctl(args, e["WORKFLOW_ETCD"], self.prefix, env=e, **kw)

    # -- agents ---------------------------------------------------------
    def agent(self, name=None, args=(), etcd_url=None, env=None, start=True, register=True,
              prefix=None, log_dir=None, defaults=True):
        """A workflow-node on this scenario's etcd and prefix.  defaults adds
        short --stop-grace/--drain-timeout so that teardown is quick.  In TLS
        mode (WF_E2E_ETCD=https) the agent gets the https URL and the
        certificate flags, unless etcd_url is given; an https etcd_url (a
        proxy from etcd_proxy()) gets the certificate flags too, unless args
        name their own --etcd-cacert."""
        name = name or self.node
        extra = []
        given = " ".join(args)
        url = etcd_url or self.etcd_url_for_agent
        if "--etcd-cacert" not in given and "--etcd-cert" not in given:
            extra += self.agent_tls_args(url)
        if defaults:
            if "--stop-grace" not in given:
                extra += ["--stop-grace", "2"]
            if "--drain-timeout" not in given:
                extra += ["--drain-timeout", "2"]
        a = Agent(url, name, prefix=prefix or self.prefix,
                  log_dir=log_dir or self.log_dir, workdir=self.tmp, args=extra + list(args),
                  env=env, stderr_path=os.path.join(self.tmp, "agent-%s-%d.stderr"
                                                    % (name, len(self.agents))))
        self.agents.append(a)
        if start:
            a.start()
            if register:
                a.wait_registered(self.c, timeout=T(20))
        return a

    # -- keys and objects -----------------------------------------------
    def step_key(self, key):
        return "%s/workflow/steps/%s" % (self.prefix, key)

    def action_key(self, name, version="v1"):
        return "%s/workflow/actions/%s@%s" % (self.prefix, name, version)

    def pipeline_key(self, ns, pid):
        return "%s/workflow/pipelines/%s/%s" % (self.prefix, ns, pid)

    def node_key(self, name=None):
        return "%s/workflow/service/node/%s" % (self.prefix, name or self.node)

    def action_obj(self, name, cmd, run_params=(), version="v1", runner_type="LOCAL",
                   runner_params=None):
        rp = {"CMD": cmd}
        if runner_params:
            rp.update(runner_params)
        return {"name": name, "version": version, "runner_type": runner_type,
                "runner_params": rp, "run_params": list(run_params)}

    def put_action(self, name, cmd, run_params=(), version="v1", **kw):
        return self.c.put(self.action_key(name, version),
                          self.action_obj(name, cmd, run_params, version, **kw))

    def step_obj(self, key, action, node=None, with_=None, create_type="USER",
                 status="PENDDING", **extra):
        o = {"key": key, "create_type": create_type, "name": "step-" + key, "action": action,
             "with": with_ if with_ is not None else {},
             "status": {"status": status, "scheduled_node": self.node if node is None else node}}
        if create_type is None:
            del o["create_type"]
        o.update(extra)
        return o

    def put_step(self, key, action, node=None, with_=None, **kw):
        return self.c.put(self.step_key(key), self.step_obj(key, action, node, with_, **kw))

    def get_step(self, key):
        return self.c.get_json(self.step_key(key))

    def set_status(self, key, status):
        def f(o):
            o["status"]["status"] = status
        return self.c.update_json(self.step_key(key), f)

    # -- waiting --------------------------------------------------------
    def _alive_check(self):
        for a in self.agents:
            if a.proc is not None and a.proc.returncode is None and a.proc.poll() is not None:
                raise AgentError("agent %s died (exit status %s); stderr tail:\n%s"
                                 % (a.name, a.proc.returncode, a.stderr_tail()))

    def wait_step(self, key, statuses=FINAL, timeout=30, poll=0.05):
        """Waits until the step's status is one of statuses; returns the step."""
        if isinstance(statuses, str):
            statuses = (statuses,)
        deadline = time.time() + T(timeout)
        last = None
        while time.time() < deadline:
            self._alive_check()
            last = self.get_step(key)
            if last and (last.get("status") or {}).get("status") in statuses:
                return last
            time.sleep(poll)
        raise TestFailure("step %s did not reach %s within %.0fs; last value: %s"
                          % (key, "/".join(statuses), T(timeout), json.dumps(last)[:800]))

    def wait_steps(self, keys, statuses=FINAL, timeout=60, poll=0.25):
        """Waits until every step in keys has one of statuses; returns
        {key: step}."""
        if isinstance(statuses, str):
            statuses = (statuses,)
        want = set(keys)
        deadline = time.time() + T(timeout)
        while True:
            self._alive_check()
            got = {}
            for k, v in self.c.get_prefix_json(self.step_key("")).items():
                sk = k[len(self.step_key("")):]
                if sk in want and isinstance(v, dict) and \
                        (v.get("status") or {}).get("status") in statuses:
                    got[sk] = v
            if len(got) == len(want):
                return got
            if time.time() > deadline:
                missing = sorted(want - set(got))
                raise TestFailure("%d of %d steps did not reach %s within %.0fs, e.g. %s: %s"
                                  % (len(missing), len(want), "/".join(statuses), T(timeout),
                                     missing[0], json.dumps(self.get_step(missing[0]))[:600]))
            time.sleep(poll)

    def log_file(self, key):
        """The log file of step key under the log dir, or None."""
        for root, _, files in os.walk(self.log_dir):
            if key in files:
                return os.path.join(root, key)
        return None


def status_of(step):
    return (step or {}).get("status") or {}


def response_of(step):
    return status_of(step).get("response") or {}


def run(fn):
    """Runs a test's main function: exit 0 on success, 1 on failure, 77 on skip."""
    t0 = time.time()
    name = os.path.basename(sys.argv[0])
    try:
        fn()
    except Skip as e:
        log("SKIP %s: %s", name, e)
        sys.exit(SKIP)
    except (TestFailure, AgentError) as e:
        log("FAIL %s after %.1fs: %s", name, time.time() - t0, e)
        sys.exit(1)
    except Exception:
        traceback.print_exc(file=sys.stdout)
        log("FAIL %s after %.1fs (error in the test)", name, time.time() - t0)
        sys.exit(1)
    log("PASS %s in %.1fs", name, time.time() - t0)
    sys.exit(0)
