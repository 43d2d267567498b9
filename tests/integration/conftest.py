"""Integration-test helpers: start the real edgepoint daemon on free ports with a
generated configuration, wait for readiness by polling (the ready log line and the
bus port), and talk to it over raw NATS protocol.

EP_BIN selects the binary (default: build-asan/edgepoint, the sanitizer build).
"""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("EP_BIN", os.path.join(ROOT, "build-asan", "edgepoint"))
READY_TIMEOUT = 30.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=READY_TIMEOUT, what="condition", interval=0.01):
    """Polls pred() until it returns a true value; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def run(args, **kw):
    """Runs the edgepoint binary to completion; returns CompletedProcess (text)."""
    env = dict(os.environ)
    env.update(kw.pop("env", {}))
    return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=60,
                          env=env, **kw)


class Daemon:
    """One edgepoint serve process with its own data directory and bus port."""

    def __init__(self, tmp_path, config=None, env=None, name="ep"):
        self.dir = tmp_path / name
        self.dir.mkdir(exist_ok=True)
        self.port = free_port()
        self.config_path = self.dir / "edgepoint.json"
        self.log_path = self.dir / "stderr.log"
        self.env = dict(os.environ)
        self.env.pop("NOTIFY_SOCKET", None)
        self.env.pop("JOURNAL_STREAM", None)
        self.env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
        self.env.update(env or {})
        self.proc = None
        self.config = {
            "device_id": "gw-test",
            "data_dir": str(self.dir / "data"),
            "log": {"level": "info"},
            "bus": {"listen": ["127.0.0.1:%d" % self.port]},
        }
        if config:
            self.config.update(config)
        self.write_config()

    def write_config(self, text=None, mtime=None):
        self.config_path.write_text(text if text is not None else json.dumps(self.config, indent=2))
        if mtime is not None:
            os.utime(self.config_path, (mtime, mtime))

    def start(self, args=None, wait=True):
        self.log = open(self.log_path, "ab")
        self._log_offset = self.log_path.stat().st_size
        cmd = [BIN, "serve", "-c", str(self.config_path)] if args is None else [BIN] + args
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=self.env,
                                     cwd=self.dir)
        if wait:
            self.wait_ready()
        return self

    def output(self):
        return self.log_path.read_text(errors="replace")[self._log_offset:]

    def wait_ready(self):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited with %d:\n%s" % (self.proc.returncode, self.output()))
            return " ready: " in self.output()
        wait_for(ready, what="the ready line")
        wait_for(lambda: port_open(self.port), what="the bus port")

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("daemon did not stop within %ds:\n%s" % (timeout, self.output()))
        self.log.close()
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def db_path(self):
        return self.dir / "data" / "edgepoint.db"

    def client(self):
        return NatsClient(self.port)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class NatsClient:
    """A minimal raw NATS-protocol client, enough to drive the gateway in tests."""

    def __init__(self, port, connect=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        line = self.readline()
        assert line.startswith(b"INFO "), line
        self.info = json.loads(line[5:])
        opts = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                "name": "pytest", "lang": "python", "version": "0", "protocol": 1}
        opts.update(connect or {})
        self.send(b"CONNECT " + json.dumps(opts).encode() + b"\r\n")
        self.ping()
        self.sid = 0

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the gateway")
        self.buf += chunk

    def readline(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def readn(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def ping(self):
        self.send(b"PING\r\n")
        while True:
            line = self.readline()
            if line == b"PONG":
                return
            if line == b"PING":
                self.send(b"PONG\r\n")
            elif line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                self._pending_msg(line)

    def _pending_msg(self, line):
        self.pending = getattr(self, "pending", [])
        self.pending.append(self._read_msg(line))

    def _read_msg(self, line):
        parts = line.split()
        if parts[0] == b"MSG":
            subj, sid = parts[1].decode(), parts[2].decode()
            reply = parts[3].decode() if len(parts) == 5 else None
            return (subj, sid, reply, None, self.readn(int(parts[-1])))
        subj, sid = parts[1].decode(), parts[2].decode()
        reply = parts[3].decode() if len(parts) == 6 else None
        hlen, tlen = int(parts[-2]), int(parts[-1])
        data = self.readn(tlen)
        return (subj, sid, reply, data[:hlen], data[hlen:])

    def sub(self, subject, queue=None):
        self.sid += 1
        q = (" " + queue) if queue else ""
        self.send(("SUB %s%s %d\r\n" % (subject, q, self.sid)).encode())
        return str(self.sid)

    def pub(self, subject, payload, reply=None):
        if isinstance(payload, str):
            payload = payload.encode()
        r = (" " + reply) if reply else ""
        self.send(("PUB %s%s %d\r\n" % (subject, r, len(payload))).encode() + payload + b"\r\n")

    def next_msg(self, timeout=10):
        pending = getattr(self, "pending", [])
        if pending:
            return pending.pop(0)
        self.sock.settimeout(timeout)
        try:
            while True:
                line = self.readline()
                if line == b"PING":
                    self.send(b"PONG\r\n")
                    continue
                if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                    return self._read_msg(line)
                if line.startswith(b"-ERR"):
                    raise AssertionError(line.decode())
        finally:
            self.sock.settimeout(10)

    def request(self, subject, payload, timeout=10):
        inbox = "_INBOX.t%d" % (self.sid + 1)
        self.sub(inbox)
        self.pub(subject, payload, reply=inbox)
        m = self.next_msg(timeout)
        return json.loads(m[4])

    def close(self):
        self.sock.close()


@pytest.fixture
def daemon_factory(tmp_path):
    made = []

    def make(**kw):
        d = Daemon(tmp_path, name="ep%d" % len(made), **kw)
        made.append(d)
        return d
    yield make
    for d in made:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
