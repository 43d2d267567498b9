"""The last words before a close reach a client that is still sending (issue 11,
section 6).

Closing a socket whose input was not read makes the kernel answer with a reset
(RST) instead of a FIN, and throw away what it had not yet delivered of the
socket's output. A client that sends an oversized PUB and keeps sending could lose
the -ERR 'Maximum Payload Violation' that explains the close, even INFO. The bus
now shuts down its write side once the last output is handed over, keeps reading
(and discarding) for a bounded time (src/bus/conn.c: LINGER_MS, LINGER_BYTES), and
closes only then.

To make "the kernel had not delivered it yet" certain rather than a matter of
timing, the client shrinks its receive buffer and subscribes to a subject it then
publishes 16 KiB to: the MSG fills the client's small receive window, and its tail
waits in the server's send queue (the window is closed), where the -ERR queues
behind it. The client then streams its oversized PUB and megabytes more, without
reading, from a second thread; it starts reading only after 256 KiB of that went
out. Before, the reset discarded the tail of the MSG and the -ERR; now the client
reads the whole MSG, the -ERR and an orderly end of stream.

The same over TLS: the bus sends a close_notify, shuts down the write side and
discards what comes in.
"""
import os
import socket
import ssl
import threading
import time

import pytest

from conftest import Daemon, wait_for
from peers import make_certs
from test_tls import context, read_info

ERR = b"-ERR 'Maximum Payload Violation'\r\n"
PAYLOAD = 16 * 1024
JUNK = 64 * 1024


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


def start(tmp_path, tls=None):
    d = Daemon(tmp_path)
    d.config["bus"]["max_payload"] = 64 * 1024
    if tls:
        d.config["bus"]["tls"] = tls
    d.write_config()
    return d.start()


class Sender(threading.Thread):
    """Sends the oversized PUB, then total bytes more, counting what went out."""

    def __init__(self, send, total):
        super().__init__(daemon=True)
        self.send, self.total = send, total
        self.sent = 0
        self.error = None

    def run(self):
        try:
            self.send(b"PUB big 1000000\r\n")
            chunk = b"x" * JUNK
            while self.sent < self.total:
                self.send(chunk)
                self.sent += len(chunk)
        except OSError as e:
            self.error = e


def read_all(recv):
    got = b""
    while True:
        try:
            chunk = recv(1 << 16)
        except (ConnectionResetError, ssl.SSLError, ssl.SSLEOFError) as e:
            return got, repr(e)
        if not chunk:
            return got, "eof"
        got += chunk


def expected_msg():
    return b"MSG fill 1 %d\r\n" % PAYLOAD + b"m" * PAYLOAD + b"\r\n"


def test_err_reaches_a_client_that_keeps_sending(tmp_path):
    d = start(tmp_path)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(20)
    s.connect(("127.0.0.1", d.port))
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB fill 1\r\n'
              b"PUB fill %d\r\n" % PAYLOAD + b"m" * PAYLOAD + b"\r\n")
    sender = Sender(s.sendall, 4 << 20)
    sender.start()
    wait_for(lambda: sender.sent >= 256 * 1024 or not sender.is_alive(), timeout=20,
             what="256 KiB sent after the oversized PUB")
    # A closing connection gets no more messages.
    other = d.client()
    other.pub("fill", "late")
    other.ping()
    got, end = read_all(s.recv)
    sender.join(timeout=20)
    s.close()
    assert got.startswith(b"INFO {"), (got[:100], end)
    rest = got[got.index(b"\r\n") + 2:]
    assert rest == expected_msg() + ERR, (len(rest), rest[-120:], end, sender.error)
    assert end == "eof", end
    other.ping()
    other.close()
    d.stop()


def test_err_reaches_a_tls_client_that_keeps_sending(tmp_path, certs):
    d = start(tmp_path, {"cert_file": certs.cert, "key_file": certs.key})
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(20)
    raw.connect(("127.0.0.1", d.port))
    read_info(raw)
    s = context(certs.ca).wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"tls_required":true}\r\n'
              b"SUB fill 1\r\nPUB fill %d\r\n" % PAYLOAD + b"m" * PAYLOAD + b"\r\n")
    # One thread at a time on an SSL socket: all the sending first (the server
    # discards it), then the reading.
    sender = Sender(s.sendall, 512 * 1024)
    sender.run()
    got, end = read_all(s.recv)
    s.close()
    assert got == expected_msg() + ERR, (len(got), got[-120:], end, sender.error)
    # The close_notify: Python reports a clean end of the TLS stream as b"".
    assert end == "eof", end
    d.stop()


def linger(port):
    """A client that gets its -ERR and then neither reads nor closes."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPUB big 1000000\r\n'
              + b"x" * 8192)
    buf = b""
    while ERR not in buf:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    return s


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_lingering_connections_do_not_count_and_end(tmp_path):
    d = Daemon(tmp_path)
    d.config["bus"].update(max_payload=64 * 1024, max_connections=2)
    d.write_config()
    d.start()
    base = fds(d.proc.pid)
    held = [linger(d.port) for _ in range(2)]
    # Not against max_connections: two more clients get in.
    clients = [d.client() for _ in range(2)]
    for c in clients:
        c.ping()
    for c in clients:
        c.close()
    # And gone within LINGER_MS (2 s), although their clients keep them open.
    wait_for(lambda: fds(d.proc.pid) <= base, timeout=10,
             what="the lingering connections' descriptors closed")
    for s in held:
        s.close()
    d.stop()


def test_sigterm_does_not_wait_for_lingering_connections(tmp_path):
    """Connections that linger (a client that neither reads nor closes) end at once
    with the daemon."""
    d = start(tmp_path)
    # Each gets its -ERR (the server has handed it over) and lingers then.
    socks = [linger(d.port) for _ in range(5)]
    t0 = time.monotonic()
    assert d.stop() == 0
    took = time.monotonic() - t0
    assert took < 1.5, "SIGTERM took %.2f s (a linger lasts 2 s)" % took
    for s in socks:
        s.close()
