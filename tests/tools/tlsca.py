"""A throw-away certificate authority for the TLS tests, made with the openssl CLI.

CA(dir, name) creates a self-signed P-256 CA in dir; ca.issue(name, ...) signs a
certificate for 127.0.0.1 (IP SAN) and localhost (DNS SAN) usable as server and
client certificate (both extended key usages), optionally already expired
(`openssl x509 -days -1`: valid from now until a day ago). Every file is
written 0600 in dir; paths are returned.
"""
import os
import subprocess

OPENSSL = "openssl"


def _run(args, cwd):
    r = subprocess.run([OPENSSL] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args), r.stdout))


class CA:
    def __init__(self, directory, name="ca"):
        self.dir = directory
        self.name = name
        self.cert = os.path.join(directory, name + ".pem")
        self.key = os.path.join(directory, name + ".key")
        os.makedirs(directory, exist_ok=True)
        _run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", self.key, "-out", self.cert, "-days", "3", "-subj", "/CN=" + name,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)
        os.chmod(self.key, 0o600)

    def issue(self, name, ips=("127.0.0.1",), dns=("localhost",), expired=False):
        """Returns (cert_path, key_path) of a new certificate signed by this CA."""
        base = os.path.join(self.dir, "%s-%s" % (self.name, name))
        key, csr, cert, ext = base + ".key", base + ".csr", base + ".pem", base + ".ext"
        _run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", key, "-out", csr, "-subj", "/CN=" + name], self.dir)
        os.chmod(key, 0o600)
        sans = ["IP:" + ip for ip in ips] + ["DNS:" + d for d in dns]
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\n" % ",".join(sans))
            f.write("extendedKeyUsage=serverAuth,clientAuth\n")
            f.write("basicConstraints=CA:FALSE\n")
        _run(["x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
              "-CAcreateserial", "-days", "-1" if expired else "2", "-out", cert,
              "-extfile", ext], self.dir)
        return cert, key

    def read(self):
        with open(self.cert, "rb") as f:
            return f.read()


def read(path):
    with open(path, "rb") as f:
        return f.read()
