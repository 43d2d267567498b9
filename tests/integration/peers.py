"""Peers for the bus conformance tests: a real nats-server, the edgepoint daemon with
the equivalent bus configuration, certificates made with the openssl CLI, and the
conformance programs written against the official NATS clients (nats.c, nats.go,
nats.js; tests/conformance/).

Both targets are started the same way: a generated config file, a free loopback port,
and readiness by polling that port (never by sleeping). Both get the same protocol
limits (LIMITS), so what one sends can be compared byte for byte with the other.

A server started here is shared by the tests of one session per (target, kind), where
kind is one of KINDS; start-up failures are remembered, so an edgepoint without a bus
fails each of its tests at once with the same message instead of timing out each time.
"""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import BIN, ROOT, Daemon, free_port, port_open, wait_for

NATS_SERVER = os.environ.get("NATS_SERVER", shutil.which("nats-server") or "/usr/sbin/nats-server")
CONF_SRC = os.path.join(ROOT, "tests", "conformance")
CONF_OUT = os.path.join(os.path.dirname(os.path.abspath(BIN)), "conformance")
JS_DIR = os.path.join(ROOT, "tests", "js")

# The protocol limits both targets run with. max_control_line has to leave room for
# the CONNECT lines of the official clients (nats.js sends about 250 bytes).
LIMITS = {"max_payload": 4096, "max_control_line": 1024}

# Credentials for the auth kinds. The users kind has one user; edgepoint stores a
# PBKDF2 hash of the password made by 'edgepoint passwd'.
TOKEN = "conformance-token-7f3a"
USER = "alice"
PASSWORD = "wonder land 42"

KINDS = ("plain", "token", "users", "tls", "mtls")
TLS_KINDS = ("tls", "mtls")  # mtls: client certificates required and verified


# --- certificates --------------------------------------------------------------------

class Certs:
    """A CA, a server certificate for 127.0.0.1 (IP SAN) and localhost signed by it,
    a client certificate signed by it (for mtls), and a second, unrelated CA that
    must not verify the server."""

    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca.key")
        self.cert = os.path.join(d, "server.pem")
        self.key = os.path.join(d, "server.key")
        self.other_ca = os.path.join(d, "other-ca.pem")
        self.client_cert = os.path.join(d, "client.pem")
        self.client_key = os.path.join(d, "client.key")


def _openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed:\n%s" % (" ".join(args), r.stderr))


def make_certs(d):
    """Generates the certificates of Certs into directory d (made if missing)."""
    os.makedirs(d, exist_ok=True)
    c = Certs(d)
    for ca, key, cn in ((c.ca, c.ca_key, "edgepoint test CA"),
                        (c.other_ca, os.path.join(d, "other-ca.key"), "unrelated CA")):
        _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-keyout", key, "-out", ca, "-days", "2", "-subj", "/CN=" + cn,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    csr = os.path.join(d, "server.csr")
    _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", c.key, "-out", csr, "-subj", "/CN=127.0.0.1"], d)
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    _openssl(["x509", "-req", "-in", csr, "-CA", c.ca, "-CAkey", c.ca_key,
              "-CAcreateserial", "-out", c.cert, "-days", "2", "-extfile", ext], d)
    csr = os.path.join(d, "client.csr")
    _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", c.client_key, "-out", csr, "-subj", "/CN=conformance client"], d)
    ext = os.path.join(d, "client.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n")
    _openssl(["x509", "-req", "-in", csr, "-CA", c.ca, "-CAkey", c.ca_key,
              "-CAcreateserial", "-out", c.client_cert, "-days", "2", "-extfile", ext], d)
    return c


# --- nats-server -----------------------------------------------------------------------

def _quote(s):
    return json.dumps(s)  # a JSON string is a valid nats-server config string


def server_conf_lines(kind, certs, token=TOKEN):
    """nats-server config lines for a kind: plain, token, users, tls or mtls."""
    if kind == "token":
        return ["authorization { token: %s }" % _quote(token)]
    if kind == "users":
        return ["authorization { users: [ {user: %s, password: %s} ] }"
                % (_quote(USER), _quote(PASSWORD))]
    if kind == "tls":
        return ["tls { cert_file: %s, key_file: %s, timeout: 5 }"
                % (_quote(certs.cert), _quote(certs.key))]
    if kind == "mtls":
        return ["tls { cert_file: %s, key_file: %s, ca_file: %s, verify: true, "
                "timeout: 5 }" % (_quote(certs.cert), _quote(certs.key), _quote(certs.ca))]
    if kind != "plain":
        raise ValueError(kind)
    return []


class NatsServer:
    """One nats-server process with a generated config on a free loopback port."""

    def __init__(self, d, kind="plain", certs=None, limits=None):
        self.dir = str(d)
        os.makedirs(self.dir, exist_ok=True)
        self.kind = kind
        self.port = free_port()
        self.conf_path = os.path.join(self.dir, "nats-server.conf")
        self.log_path = os.path.join(self.dir, "nats-server.log")
        self.proc = None
        lim = dict(LIMITS, **(limits or {}))
        lines = ["listen: 127.0.0.1:%d" % self.port,
                 "max_payload: %d" % lim["max_payload"],
                 "max_control_line: %d" % lim["max_control_line"]]
        lines += server_conf_lines(kind, certs)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def url(self):
        return ("tls://" if self.kind in TLS_KINDS else "nats://") + "127.0.0.1:%d" % self.port

    def start(self):
        if not os.access(NATS_SERVER, os.X_OK):
            raise AssertionError("nats-server not found at %s: run scripts/setup.sh" % NATS_SERVER)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", self.conf_path], stdout=self.log,
                                     stderr=self.log, cwd=self.dir)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("nats-server exited with %d:\n%s"
                                     % (self.proc.returncode, self.output()))
            return port_open(self.port)
        wait_for(up, what="nats-server's port")
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and not self.log.closed:
            self.log.close()


# --- edgepoint -------------------------------------------------------------------------

def password_hash(password):
    """The config hash of password, as 'edgepoint passwd' prints it (password on stdin,
    the hash on the last line of stdout)."""
    r = subprocess.run([BIN, "passwd"], input=password + "\n", capture_output=True,
                       text=True, timeout=60)
    lines = [x for x in r.stdout.splitlines() if x.strip()]
    if r.returncode != 0 or not lines:
        raise AssertionError("edgepoint passwd failed (%d):\n%s%s"
                             % (r.returncode, r.stdout, r.stderr))
    return lines[-1].strip()


def edgepoint_bus_config(port, kind="plain", certs=None, limits=None):
    """The 'bus' section equivalent to NatsServer(kind): same port, limits and auth."""
    bus = {"listen": ["127.0.0.1:%d" % port]}
    bus.update(dict(LIMITS, **(limits or {})))
    if kind == "token":
        bus["auth"] = {"token": TOKEN}
    elif kind == "users":
        bus["auth"] = {"users": [{"user": USER, "password_hash": password_hash(PASSWORD)}]}
    elif kind == "tls":
        bus["tls"] = {"cert_file": certs.cert, "key_file": certs.key}
    elif kind == "mtls":
        bus["tls"] = {"cert_file": certs.cert, "key_file": certs.key, "ca_file": certs.ca,
                      "verify_clients": True}
    elif kind != "plain":
        raise ValueError(kind)
    return bus


class Edgepoint:
    """The edgepoint daemon (conftest.Daemon) as a bus target with NatsServer's API."""

    def __init__(self, d, kind="plain", certs=None, limits=None):
        os.makedirs(str(d), exist_ok=True)
        self.kind = kind
        self.daemon = Daemon(d, name="ep-" + kind)
        self.port = self.daemon.port
        self.daemon.config["bus"] = edgepoint_bus_config(self.port, kind, certs, limits)
        self.daemon.write_config()

    @property
    def url(self):
        return ("tls://" if self.kind in TLS_KINDS else "nats://") + "127.0.0.1:%d" % self.port

    def start(self):
        if not os.access(BIN, os.X_OK):
            raise AssertionError("edgepoint binary not found at %s (cmake --build build-asan)" % BIN)
        self.daemon.start()
        return self

    def alive(self):
        return self.daemon.proc is not None and self.daemon.proc.poll() is None

    def output(self):
        return self.daemon.output()

    def stop(self):
        """Stops the daemon; returns a problem to report (a non-zero exit status, which
        is how a leak or sanitizer report at exit shows) or None."""
        rc = self.daemon.stop()
        if rc not in (0, None):
            return "edgepoint (%s) exited with %s:\n%s" % (self.kind, rc, self.output()[-4000:])
        return None


TARGETS = {"nats-server": NatsServer, "edgepoint": Edgepoint}


class ServerPool:
    """Servers shared by one session, started on first use per (target, kind)."""

    def __init__(self, tmp_path_factory):
        self.tmp = tmp_path_factory
        self.servers = {}
        self.failed = {}
        self._certs = None

    def certs(self):
        if self._certs is None:
            self._certs = make_certs(str(self.tmp.mktemp("certs")))
        return self._certs

    def get(self, target, kind="plain"):
        key = (target, kind)
        if key in self.failed:
            raise AssertionError("%s (%s) did not start earlier in this session:\n%s"
                                 % (target, kind, self.failed[key]))
        s = self.servers.get(key)
        if s is not None and not s.alive():
            del self.servers[key]
            out = s.output()
            s.stop()
            raise AssertionError("%s (%s) had died before this test:\n%s"
                                 % (target, kind, out[-4000:]))
        if s is None:
            d = self.tmp.mktemp("%s-%s" % (target, kind))
            certs = self.certs() if kind in TLS_KINDS else None
            try:
                s = TARGETS[target](d, kind, certs).start()
            except Exception as e:  # remembered for the next tests of this key
                self.failed[key] = str(e)[-4000:]
                raise
            self.servers[key] = s
        return s

    def assert_alive(self, target, kind="plain", detail=""):
        """Fails the current test when its server died during it, with the server's
        log; the next test then starts a fresh one instead of failing too."""
        s = self.servers.get((target, kind))
        if s is not None and not s.alive():
            del self.servers[(target, kind)]
            s.stop()
            raise AssertionError("%s (%s) died during this test:\n%s\n--- its log:\n%s"
                                 % (target, kind, detail, s.output()[-4000:]))

    def stop_all(self):
        problems = [p for p in (s.stop() for s in self.servers.values()) if p]
        self.servers.clear()
        if problems:
            raise AssertionError("\n".join(problems))


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory):
    pool = ServerPool(tmp_path_factory)
    yield pool
    pool.stop_all()


# --- the conformance programs ------------------------------------------------------------

def _build(cmd, env=None, what=""):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=e, cwd=ROOT)
    if r.returncode != 0:
        raise AssertionError("building %s failed: %s\n%s%s"
                             % (what, " ".join(cmd), r.stdout, r.stderr))


def build_conformance():
    """Builds the C and Go conformance programs into build-*/conformance/. Returns, for
    each client, its command prefix, or the reason it cannot run (an AssertionError,
    raised by run_conformance so that only that client's tests fail)."""
    os.makedirs(CONF_OUT, exist_ok=True)
    out = {}
    c_bin = os.path.join(CONF_OUT, "natsc_conf")
    go_bin = os.path.join(CONF_OUT, "natsgo_conf")
    try:
        _build(["cc", "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-o", c_bin,
                os.path.join(CONF_SRC, "natsc_conf.c"), "-lnats"], what="natsc_conf")
        out["c"] = [c_bin]
    except AssertionError as e:
        out["c"] = e
    try:
        if not shutil.which("go"):
            raise AssertionError("go not found: run scripts/setup.sh (golang-go, "
                                 "golang-github-nats-io-go-nats-dev)")
        # GOPATH mode against the Debian package of nats.go; nothing is downloaded.
        _build(["go", "build", "-o", go_bin, os.path.join(CONF_SRC, "go", "conf.go")],
               env={"GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOFLAGS": "",
                    "GOPROXY": "off", "GOCACHE": os.path.join(CONF_OUT, "gocache")},
               what="natsgo_conf")
        out["go"] = [go_bin]
    except AssertionError as e:
        out["go"] = e
    if not shutil.which("node"):
        out["js"] = AssertionError("node not found: run scripts/setup.sh")
    elif not os.path.isdir(os.path.join(JS_DIR, "node_modules", "nats")):
        out["js"] = AssertionError("nats.js missing in tests/js/node_modules: run scripts/setup.sh")
    else:
        out["js"] = ["node", os.path.join(CONF_SRC, "js", "conf.mjs")]
    return out


@pytest.fixture(scope="session")
def conformance_clients():
    return build_conformance()


def run_conformance(clients, client, url, case, *opts, timeout=60):
    """Runs one conformance case; returns (exit code, combined output)."""
    if isinstance(clients[client], Exception):
        raise clients[client]
    cmd = clients[client] + [url, case] + list(opts)
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return -1, "%s\n(timed out after %ds)" % (out, timeout)
    took = time.monotonic() - t0
    return r.returncode, "$ %s\n%s%s(%.2fs)" % (" ".join(cmd), r.stdout, r.stderr, took)


# --- raw protocol ------------------------------------------------------------------------

class Raw:
    """A raw TCP connection: send exact bytes, read what comes back."""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.closed = False

    def send(self, data):
        self.sock.sendall(data)

    def fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def line(self, timeout=5):
        """The next line with its CRLF; fails the test if none comes in time."""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if self.closed or left <= 0 or not self.fill(left):
                raise AssertionError("no complete line (have %r, closed=%s)"
                                     % (self.buf, self.closed))
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exactly(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if self.closed or left <= 0 or not self.fill(left):
                raise AssertionError("wanted %d bytes, have %r" % (n, self.buf))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def until_pong(self, timeout=5):
        """Sends PING and returns every byte received before the PONG that answers it."""
        self.send(b"PING\r\n")
        deadline = time.monotonic() + timeout
        while b"PONG\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if self.closed or left <= 0 or not self.fill(left):
                raise AssertionError("no PONG (have %r, closed=%s)" % (self.buf, self.closed))
        i = self.buf.index(b"PONG\r\n")
        out, self.buf = self.buf[:i], self.buf[i + 6:]
        return out

    def wait_closed(self, timeout=5):
        """True when the peer closes within timeout; whatever came before is in buf."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.fill(left)
        return True

    def close(self):
        self.sock.close()
