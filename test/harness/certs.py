"""Test certificates made with the openssl CLI (stdlib only, like the rest).

    pem = make_certs(os.path.join(tmp, "tls"))
    pem["ca.crt"], pem["ca2.crt"]           # a CA, and an unrelated one
    pem["server.crt"], pem["server.key"]    # for 127.0.0.1 and localhost,
                                            # serverAuth and clientAuth (etcd's
                                            # gateway shows it to etcd itself)
    pem["client.crt"], pem["client.key"]    # clientAuth, signed by ca.crt
    pem["other.crt"], pem["other.key"]      # clientAuth, signed by ca2.crt

Raises Skip (e2e.Skip) when there is no openssl."""
import os
import shutil
import subprocess

from e2e import Skip


def openssl(cwd, *args):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_certs(d):
    """PEM files in d (created); returns their paths by name."""
    if not shutil.which("openssl"):
        raise Skip("no openssl CLI to make test certificates")
    os.makedirs(d)
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca, cn in (("ca", "wf-e2e-ca"), ("ca2", "wf-e2e-other-ca")):
        openssl(d, "req", "-x509", *newkey, "-keyout", ca + ".key", "-out", ca + ".crt",
                "-days", "2", "-subj", "/CN=" + cn)
    leaves = {
        "server": ("ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                         "extendedKeyUsage=serverAuth,clientAuth\n"),
        "client": ("ca", "extendedKeyUsage=clientAuth\n"),
        "other": ("ca2", "extendedKeyUsage=clientAuth\n"),
    }
    for name, (ca, ext) in leaves.items():
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        openssl(d, "req", *newkey, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=wf-e2e-" + name)
        openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey",
                ca + ".key", "-CAcreateserial", "-days", "2", "-extfile", name + ".ext",
                "-out", name + ".crt")
    return {n: os.path.join(d, n) for n in (
        "ca.crt", "ca2.crt", "server.crt", "server.key", "client.crt", "client.key",
        "other.crt", "other.key")}
