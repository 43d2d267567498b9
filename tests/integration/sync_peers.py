"""Peers for the sync tests: nats-server with JetStream (alone, with TLS or mTLS, with
a token, or as a three-server cluster on loopback), a small NATS client that speaks
headers and TLS for the JetStream API, the cloud process, and gateways configured
with a sync node.

Everything starts on free loopback ports with generated configs, and readiness is
polled (a port, a JetStream API answer, a ready log line), never slept for.
"""
import base64
import json
import os
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BIN, Daemon, free_port, wait_for
from peers import NatsServer, server_conf_lines

# Every process started here, stopped after each test however it ends (the
# autouse fixture below, which each test module imports).
_started = []


@pytest.fixture(autouse=True)
def stop_peers():
    yield
    while _started:
        p = _started.pop()
        try:
            p.stop()
        except Exception:  # a failed test already says what went wrong
            pass


TOKEN = "sync-token-5b1e"


def q(s):
    return json.dumps(s)  # a JSON string is a valid nats-server config string


# --- a NATS client for the tests ------------------------------------------------------

class JsClient:
    """Raw NATS protocol with headers, optional TLS (and a client certificate), and
    the JetStream API calls the tests need."""

    def __init__(self, port, ca=None, cert=None, key=None, token=None, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.sid = 0
        self.inbox_n = 0
        self.pending = []
        info = json.loads(self._line()[5:])
        if info.get("tls_required"):
            ctx = ssl.create_default_context(cafile=ca)
            if cert:
                ctx.load_cert_chain(cert, key)
            self.sock = ctx.wrap_socket(self.sock, server_hostname="127.0.0.1")
        opts = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                "protocol": 1, "lang": "python", "version": "0", "name": "sync-test"}
        if token:
            opts["auth_token"] = token
        self.sock.sendall(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        while True:
            line = self._line()
            if line == b"PONG":
                break
            if line.startswith(b"-ERR"):
                raise AssertionError(line.decode())
        self.inbox = "_INBOX.pytest%d" % id(self)
        self.sub(self.inbox + ".*")

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _n(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def sub(self, subject, queue=None):
        self.sid += 1
        self.sock.sendall(("SUB %s%s %d\r\n" % (subject, " " + queue if queue else "",
                                                self.sid)).encode())
        return self.sid

    def pub(self, subject, payload, reply=None, headers=None):
        if isinstance(payload, str):
            payload = payload.encode()
        r = " " + reply if reply else ""
        if headers:
            h = ("NATS/1.0\r\n" + "".join("%s: %s\r\n" % kv for kv in headers.items())
                 + "\r\n").encode()
            self.sock.sendall(("HPUB %s%s %d %d\r\n" % (subject, r, len(h), len(h) + len(payload)))
                              .encode() + h + payload + b"\r\n")
        else:
            self.sock.sendall(("PUB %s%s %d\r\n" % (subject, r, len(payload))).encode()
                              + payload + b"\r\n")

    def next_msg(self, timeout=10):
        """(subject, reply, headers bytes or None, data) of the next message."""
        if self.pending:
            return self.pending.pop(0)
        self.sock.settimeout(timeout)
        try:
            while True:
                line = self._line()
                if line == b"PING":
                    self.sock.sendall(b"PONG\r\n")
                elif line.startswith(b"MSG "):
                    p = line.split()
                    return (p[1].decode(), p[3].decode() if len(p) == 5 else None, None,
                            self._n(int(p[-1])))
                elif line.startswith(b"HMSG "):
                    p = line.split()
                    data = self._n(int(p[-1]))
                    hl = int(p[-2])
                    return (p[1].decode(), p[3].decode() if len(p) == 6 else None,
                            data[:hl], data[hl:])
                elif line.startswith(b"-ERR"):
                    raise AssertionError(line.decode())
        finally:
            self.sock.settimeout(10)

    def request(self, subject, payload=b"", headers=None, timeout=10):
        self.inbox_n += 1
        reply = "%s.%d" % (self.inbox, self.inbox_n)
        self.pub(subject, payload, reply=reply, headers=headers)
        deadline = time.monotonic() + timeout
        while True:
            m = self.next_msg(max(0.1, deadline - time.monotonic()))
            if m[0] == reply:
                return m
            if time.monotonic() > deadline:
                raise AssertionError("no reply on " + subject)

    def js(self, subject, obj=None, timeout=10):
        m = self.request(subject, b"" if obj is None else json.dumps(obj), timeout=timeout)
        if m[2] and m[2].startswith(b"NATS/1.0 503"):
            raise AssertionError("no responders for " + subject)
        return json.loads(m[3])

    def stream_messages(self, stream, subject=None):
        """Every message of stream (or of subject in it), in order: dicts with seq,
        subject, headers (dict) and data (parsed JSON)."""
        out = []
        info = self.js("$JS.API.STREAM.INFO." + stream)
        last = info["state"]["last_seq"]
        seq = info["state"]["first_seq"]
        while 0 < seq <= last:
            req = {"seq": seq}
            if subject:
                req = {"seq": seq, "next_by_subj": subject}
            r = self.js("$JS.API.STREAM.MSG.GET." + stream, req)
            if "error" in r:
                if r["error"].get("err_code") == 10037:
                    break
                raise AssertionError(r)
            m = r["message"]
            hdrs = {}
            if m.get("hdrs"):
                for line in base64.b64decode(m["hdrs"]).decode().split("\r\n")[1:]:
                    if ": " in line:
                        k, v = line.split(": ", 1)
                        hdrs[k] = v
            out.append({"seq": m["seq"], "subject": m["subject"], "headers": hdrs,
                        "data": json.loads(base64.b64decode(m.get("data", "")) or b"null")})
            seq = m["seq"] + 1
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def uplinked_points(client, stream, device, snapshots=False):
    """The points of every entry in sync.<device>.up, as (node, type, key, time, value,
    text) tuples, in order; snapshot messages only when asked for."""
    pts = []
    for m in client.stream_messages(stream, "sync.%s.up" % device):
        if (m["headers"].get("Ep-Kind") == "snapshot") != snapshots:
            continue
        for e in m["data"]:
            for p in e.get("points", []) + e.get("edgePoints", []):
                pts.append((e["node"], p["type"], p.get("key", "0"), p["time"],
                            p.get("value"), p.get("text")))
    return pts


# --- nats-server with JetStream ----------------------------------------------------------

class JsServer(NatsServer):
    """One nats-server with JetStream: kind plain, token, tls or mtls; cluster peers
    when routes are given (cluster_port, routes: a list of cluster ports)."""

    def __init__(self, d, kind="plain", certs=None, name=None, cluster_port=None, routes=None,
                 port=None):
        self.dir = str(d)
        os.makedirs(self.dir, exist_ok=True)
        self.kind = kind
        self.certs = certs
        self.port = port or free_port()
        self.conf_path = os.path.join(self.dir, "nats.conf")
        self.log_path = os.path.join(self.dir, "nats.log")
        self.proc = None
        lines = ["listen: 127.0.0.1:%d" % self.port,
                 "jetstream { store_dir: %s, max_memory_store: 64MB, max_file_store: 1GB }"
                 % q(os.path.join(self.dir, "js"))]
        if name:
            lines.append("server_name: %s" % name)
        if cluster_port:
            lines.append("cluster { name: edgepoint-test, listen: 127.0.0.1:%d, routes: [%s] }"
                         % (cluster_port, ", ".join("nats-route://127.0.0.1:%d" % r
                                                    for r in routes or [])))
        lines += server_conf_lines(kind, certs, token=TOKEN)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def client(self):
        c = self.certs
        return JsClient(self.port, ca=c.ca if c else None,
                        cert=c.client_cert if c and self.kind == "mtls" else None,
                        key=c.client_key if c and self.kind == "mtls" else None,
                        token=TOKEN if self.kind == "token" else None)

    def start(self, wait_js=True):
        _started.append(self)
        super().start()
        if wait_js:
            self.wait_js()
        return self

    def wait_js(self, timeout=30):
        """Polls $JS.API.INFO until JetStream answers without an error."""
        def ready():
            try:
                c = self.client()
                try:
                    r = c.js("$JS.API.INFO", timeout=2)
                finally:
                    c.close()
                return "error" not in r
            except (AssertionError, OSError, ValueError):
                return False
        wait_for(ready, timeout=timeout, what="JetStream on port %d" % self.port, interval=0.1)

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None and not self.log.closed:
            self.log.close()


def cluster(tmp_path, n=3):
    """n JetStream servers routed to each other on loopback (not started)."""
    cports = [free_port() for _ in range(n)]
    return [JsServer(tmp_path / ("n%d" % i), name="n%d" % i, cluster_port=cports[i],
                     routes=[p for j, p in enumerate(cports) if j != i]) for i in range(n)]


def create_streams(client, replicas=1, max_age=3600 * 10**9):
    """EP_UP and EP_DOWN as the cloud creates them (for tests without the cloud)."""
    for name, subj in (("EP_UP", "sync.*.up"), ("EP_DOWN", "sync.*.down")):
        r = client.js("$JS.API.STREAM.CREATE." + name,
                      {"name": name, "subjects": [subj], "retention": "limits",
                       "storage": "file", "num_replicas": replicas, "max_age": max_age})
        assert "error" not in r, r


# --- gateways with a sync node -------------------------------------------------------------

def sync_node(uri, **points):
    p = {"uri": uri}
    p.update(points)
    return {"id": "sync", "type": "sync", "points": p}


def edge(tmp_path, name, uri, nodes=None, sync_points=None, start=True):
    """A gateway (device id = name) with a sync node pointing at uri, and a variable
    node "v" to write test points into."""
    d = Daemon(tmp_path, name=name)
    d.config["device_id"] = name
    d.config["nodes"] = [sync_node(uri, **(sync_points or {})),
                         {"id": "v", "type": "variable", "points": {"seed": 0}}] + (nodes or [])
    d.write_config()
    _started.append(d)
    if start:
        d.start()
    return d


def bus(d):
    """A JsClient on a gateway's bus (its inboxes are unique per connection)."""
    return JsClient(d.port)


def write_points(client, node, points, subject=None):
    r = client.js(subject or "p." + node, points)
    assert r == {"ok": True}, r


def node_points(client, subject):
    """{(type, key): point} of the one node a nodes.* query returns."""
    r = client.js(subject, {})
    assert "nodes" in r and len(r["nodes"]) == 1, r
    return {(p["type"], p.get("key", "0")): p for p in r["nodes"][0]["points"]}


BASE_TIME = int(time.time()) - 86400


def ns_time(i, base=None):
    """A distinct RFC 3339 time with nanoseconds for test point i (in the past day,
    so within any clock-skew limit)."""
    t = (BASE_TIME if base is None else base) + i // 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        ".%09dZ" % ((i % 1000) * 1000003 + 7)


# --- the cloud -------------------------------------------------------------------------------

class Cloud:
    """One `edgepoint cloud` process with a generated cloud.json."""

    def __init__(self, tmp_path, url, name="cloud", instance="c1", nats=None, streams=None,
                 extra=None):
        self.dir = tmp_path / name
        self.dir.mkdir(exist_ok=True)
        self.config_path = self.dir / "cloud.json"
        self.log_path = self.dir / "stderr.log"
        self.proc = None
        self.config = {"instance": instance, "data_dir": str(self.dir / "data"),
                       "log": {"level": "info"}, "nats": dict({"url": url}, **(nats or {})),
                       "streams": streams or {"up": {"max_age": "1h"},
                                              "down": {"max_age": "1h"}},
                       "store": {"batch_window": "2ms"}}
        self.config.update(extra or {})
        self.write_config()

    def write_config(self):
        self.config_path.write_text(json.dumps(self.config, indent=2))

    def start(self, wait=True):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
        self.log = open(self.log_path, "ab")
        self._offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen([BIN, "cloud", "-c", str(self.config_path)], stdout=self.log,
                                     stderr=self.log, env=env, cwd=self.dir)
        _started.append(self)
        if wait:
            self.wait_ready()
        return self

    def output(self):
        return self.log_path.read_text(errors="replace")[self._offset:]

    def wait_ready(self, timeout=60):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("cloud exited with %d:\n%s" % (self.proc.returncode,
                                                                   self.output()))
            return " ready: " in self.output()
        wait_for(ready, timeout=timeout, what="the cloud's ready line")

    def stop(self, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the cloud did not stop:\n" + self.output()[-3000:])
        self.log.close()
        return rc


def wait_value(client, subject, type_, value, key="0", timeout=30):
    """Polls a nodes.* query until the point (type, key) has value; returns it."""
    def check():
        try:
            r = client.js(subject, {}, timeout=5)
        except AssertionError:
            return None
        for n in r.get("nodes", []):
            for p in n["points"]:
                if p["type"] == type_ and p.get("key", "0") == key and p.get("value") == value:
                    return p
        return None
    return wait_for(check, timeout=timeout, what="%s %s=%s" % (subject, type_, value),
                    interval=0.05)
