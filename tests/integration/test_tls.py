"""TLS on the bus listeners (bus.tls), seen from outside: the plaintext INFO with
tls_required, then a TLS handshake driven by Python's ssl module (OpenSSL), then the
NATS protocol encrypted; large messages both ways; every way a handshake fails
(wrong CA on the client, a plaintext client, silence, a missing client certificate)
closes the connection and leaves one log line with the client's address and the
reason; client certificates (mTLS); authentication after the handshake; a slow
reader and a slow consumer over TLS; the configuration errors check-config and serve
report for bad certificate files; and SIGHUP, which re-checks but does not reload
the certificates.

The certificates come from peers.make_certs (the openssl CLI), as in the conformance
tests. The official clients (nats.c, nats.go, nats.js) run against the same setup in
test_conformance.py (cases tls, tls_bad_ca, mtls, mtls_no_cert).
"""
import json
import os
import signal
import socket
import ssl
import time

import pytest

from conftest import Daemon, run, wait_for
from peers import make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


def tls_daemon(tmp_path, certs, name="ep", bus=None, **tls):
    d = Daemon(tmp_path, name=name)
    d.config["bus"].update(bus or {})
    d.config["bus"]["tls"] = dict({"cert_file": certs.cert, "key_file": certs.key}, **tls)
    d.write_config()
    return d.start()


def context(ca, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def read_info(sock):
    """The plaintext INFO line; the server sends nothing else before the handshake."""
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        assert chunk, "closed before INFO (have %r)" % buf
        buf += chunk
    assert buf.startswith(b"INFO ") and buf.count(b"\r\n") == 1, buf
    return json.loads(buf[5:])


class TlsClient:
    """A raw NATS client over TLS: INFO in plaintext, then the handshake."""

    def __init__(self, port, ctx, connect=None, timeout=10):
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.info = read_info(self.raw)
        self.sock = ctx.wrap_socket(self.raw, server_hostname="127.0.0.1")
        self.buf = b""
        if connect is not False:
            opts = {"verbose": False, "pedantic": False, "headers": True,
                    "tls_required": True}
            opts.update(connect or {})
            self.send(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
            assert self.line() == b"PONG", "no PONG after CONNECT"

    def send(self, data):
        self.sock.sendall(data)

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed by the server (have %r)" % self.buf[-200:])
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def msg(self):
        """The next MSG: (subject, payload)."""
        while True:
            line = self.line()
            if line == b"PING":
                self.send(b"PONG\r\n")
                continue
            parts = line.split()
            assert parts[0] == b"MSG", line
            data = self.exactly(int(parts[-1]) + 2)
            return parts[1].decode(), data[:-2]

    def close(self):
        self.sock.close()


def log_has(d, text, timeout=10):
    wait_for(lambda: text in d.output(), timeout=timeout, what="log line %r" % text)
    return [x for x in d.output().splitlines() if text in x]


def closed_by_server(sock, timeout=10):
    """True when the server closes sock within timeout (any bytes before are read)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, ssl.SSLError):
        pass
    return True


def test_info_handshake_and_roundtrip(tmp_path, certs):
    d = tls_daemon(tmp_path, certs)
    ctx = context(certs.ca)
    sub = TlsClient(d.port, ctx)
    assert sub.info["tls_required"] is True
    assert "tls_verify" not in sub.info
    pub = TlsClient(d.port, ctx)
    sub.send(b"SUB t.big 1\r\nPING\r\n")
    assert sub.line() == b"PONG"
    # Messages larger than a TLS record, and many small ones in one write.
    big = os.urandom(900 * 1024)
    pub.send(b"PUB t.big %d\r\n%s\r\n" % (len(big), big))
    small = b"".join(b"PUB t.big 5\r\nn%04d\r\n" % i for i in range(2000))
    pub.send(small + b"PING\r\n")
    assert pub.line() == b"PONG"
    assert sub.msg() == ("t.big", big)
    for i in range(2000):
        assert sub.msg() == ("t.big", b"n%04d" % i)
    # A plaintext client still sees the same INFO and can do nothing else.
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    assert read_info(raw)["tls_required"] is True
    raw.close()
    for c in (sub, pub):
        c.close()
    assert d.stop() == 0, d.output()[-3000:]


def test_slow_reader_and_slow_consumer(tmp_path, certs):
    d = tls_daemon(tmp_path, certs, bus={"max_pending": 4 * 1024 * 1024})
    ctx = context(certs.ca)
    # A reader that stops reading: the socket fills, the rest waits encrypted and
    # counted against max_pending, and arrives intact when it reads again.
    slow = TlsClient(d.port, ctx)
    slow.send(b"SUB s.data 1\r\nPING\r\n")
    assert slow.line() == b"PONG"
    pub = TlsClient(d.port, ctx)
    chunks = [os.urandom(300 * 1024) for _ in range(10)]
    for c in chunks:
        pub.send(b"PUB s.data %d\r\n%s\r\n" % (len(c), c))
    pub.send(b"PING\r\n")
    assert pub.line() == b"PONG"
    for c in chunks:
        assert slow.msg() == ("s.data", c)
    # One that never reads is cut off past max_pending; the others carry on.
    stuck = TlsClient(d.port, ctx)
    stuck.send(b"SUB s.data 1\r\nPING\r\n")
    assert stuck.line() == b"PONG"
    for _ in range(3):
        for c in chunks:
            pub.send(b"PUB s.data %d\r\n%s\r\n" % (len(c), c))
    log_has(d, "slow consumer")
    pub.send(b"PING\r\n")
    assert pub.line() == b"PONG"
    for c in (slow, pub, stuck):
        c.close()
    assert d.stop() == 0, d.output()[-3000:]


def test_handshake_failures_are_logged_and_closed(tmp_path, certs):
    d = tls_daemon(tmp_path, certs, timeout="300ms")
    # The client does not trust the server: OpenSSL sends "unknown CA" and closes.
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    read_info(raw)
    with pytest.raises(ssl.SSLCertVerificationError):
        context(certs.other_ca).wrap_socket(raw, server_hostname="127.0.0.1")
    raw.close()
    line = log_has(d, "TLS handshake failed: the peer refused the handshake: alert 48 "
                      "(unknown CA)")
    assert "127.0.0.1" in line[0] and "bus" in line[0], line

    # A client without TLS.
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    read_info(raw)
    raw.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
    assert closed_by_server(raw)
    raw.close()
    log_has(d, "TLS handshake failed: the peer did not start a TLS handshake "
               "(first byte 0x43 'C'; not a TLS client?)")

    # Silence, and half a ClientHello: the handshake timeout closes both.
    t0 = time.monotonic()
    quiet = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    read_info(quiet)
    half = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    read_info(half)
    half.sendall(b"\x16\x03\x01\x02\x00\x01")
    assert closed_by_server(quiet) and closed_by_server(half)
    assert time.monotonic() - t0 < 5
    log_has(d, "TLS handshake failed: timed out after 300ms (the client sent nothing)")
    log_has(d, "TLS handshake failed: timed out after 300ms\n")

    # Each failure is one line; the bus still serves TLS clients.
    assert d.output().count("TLS handshake failed") == 4, d.output()
    c = TlsClient(d.port, context(certs.ca))
    c.close()
    assert d.stop() == 0, d.output()[-3000:]


def test_client_certificates(tmp_path, certs):
    d = tls_daemon(tmp_path, certs, ca_file=certs.ca, verify_clients=True)
    with_cert = context(certs.ca, certs.client_cert, certs.client_key)
    c = TlsClient(d.port, with_cert)
    assert c.info["tls_required"] is True and c.info["tls_verify"] is True
    c.send(b"SUB m 1\r\nPUB m 2\r\nhi\r\n")
    assert c.msg() == ("m", b"hi")
    c.close()

    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    read_info(raw)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        s = context(certs.ca).wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(b"CONNECT {}\r\nPING\r\n")
        s.recv(100)
    raw.close()
    log_has(d, "TLS handshake failed: the client sent no certificate (one is required)")
    assert d.stop() == 0, d.output()[-3000:]


def test_authentication_after_the_handshake(tmp_path, certs):
    d = tls_daemon(tmp_path, certs, bus={"auth": {"token": "tls-token"},
                                         "auth_timeout": "400ms"}, timeout="5s")
    ctx = context(certs.ca)
    c = TlsClient(d.port, ctx, connect={"auth_token": "tls-token"})
    assert c.info["auth_required"] is True and c.info["tls_required"] is True
    c.close()
    # The auth timeout counts from the end of the handshake; its -ERR is encrypted.
    c = TlsClient(d.port, ctx, connect=False)
    assert c.line() == b"-ERR 'Authentication Timeout'"
    c.close()
    assert d.stop() == 0, d.output()[-3000:]


def write_config(tmp_path, tls):
    path = tmp_path / "tls.json"
    path.write_text(json.dumps({"data_dir": str(tmp_path / "data"),
                                "bus": {"listen": ["127.0.0.1:4299"], "tls": tls}}))
    return str(path)


def test_bad_certificate_files_are_config_errors(tmp_path, certs):
    ok = write_config(tmp_path, {"cert_file": certs.cert, "key_file": certs.key})
    r = run(["check-config", ok])
    assert r.returncode == 0, r.stderr
    missing = str(tmp_path / "nope.pem")
    path = write_config(tmp_path, {"cert_file": missing, "key_file": certs.key})
    for args in (["check-config", path], ["serve", "-c", path]):
        r = run(args)
        assert r.returncode == 3, (args, r.stdout, r.stderr)
        assert "tls.json: bus.tls: cert_file %s: cannot open: No such file or directory" \
            % missing in r.stderr, r.stderr
    path = write_config(tmp_path, {"cert_file": certs.cert, "key_file": certs.client_key})
    r = run(["check-config", path])
    assert r.returncode == 3
    assert "bus.tls: key_file %s: does not match cert_file %s" % (certs.client_key, certs.cert) \
        in r.stderr, r.stderr
    path = write_config(tmp_path, {"cert_file": certs.cert})
    r = run(["check-config", path])
    assert r.returncode == 3
    assert "bus.tls: cert_file is set but key_file is missing (both are needed)" in r.stderr


def test_reload_keeps_the_certificates(tmp_path, certs):
    d = tls_daemon(tmp_path, certs)
    ctx = context(certs.ca)
    # A reload whose certificate cannot be loaded is refused as a whole.
    d.config["bus"]["tls"]["cert_file"] = str(tmp_path / "gone.pem")
    d.write_config()
    d.send_signal(signal.SIGHUP)
    log_has(d, "reload refused, running configuration kept")
    assert "gone.pem: cannot open" in d.output()
    # A valid reload leaves the bus with the certificate it started with.
    d.config["bus"]["tls"]["cert_file"] = certs.cert
    d.write_config()
    d.send_signal(signal.SIGHUP)
    log_has(d, "configuration reloaded")
    c = TlsClient(d.port, ctx)
    c.send(b"SUB r 1\r\nPUB r 2\r\nok\r\n")
    assert c.msg() == ("r", b"ok")
    c.close()
    assert d.stop() == 0, d.output()[-3000:]
