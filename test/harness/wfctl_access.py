"""What the tests of wfctl's access to etcd and to nodes share
(test_wfctl_etcd_tls.py, test_wfctl_etcd_auth.py, test_remote_logs.py):
the actions they apply, and an environment without the settings of the
machine's own shell."""
import os

# One action that needs a param and one that prints for a while (for -f).
ACTIONS_YAML = """\
kind: action
name: echo
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,echo "msg=$MSG"
run_params:
  - key_name: MSG
    required: true
---
kind: action
name: ticker
version: v1
runner_type: LOCAL
runner_params:
  CMD: sh,-c,for i in 1 2 3; do echo tick $i; sleep 0.5; done
"""


def clean_env(extra=None):
    """The environment without any WORKFLOW_ or WFCTL_ variable, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WORKFLOW_") and not k.startswith("WFCTL_")}
    env.update(extra or {})
    return env
