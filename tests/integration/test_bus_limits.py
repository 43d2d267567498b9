"""The bus at its limits, seen from outside: hundreds of concurrent connections,
max_connections, a slow consumer and the daemon's memory, stale connections, and the
classes of malformed input that test_raw_protocol.py does not already cover (random
garbage, huge control lines, bad payload sizes, payloads without their CRLF, NUL
bytes, UTF-8 junk).

Where nats-server has the same limit, the test runs against it too, with an
equivalent generated config, and the expected bytes are what nats-server 2.9.10
(Debian 12) sends; the edgepoint run must send the same. Readiness and every "has it
happened yet" are polled (conftest.wait_for), never slept for.
"""
import os
import random
import resource
import socket
import time

import pytest

from conftest import NatsClient, wait_for
from peers import NatsServer, Raw, server_pool  # noqa: F401

TARGETS = ("nats-server", "edgepoint")
C = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
OPEN, CLOSED = "open", "closed"


# --- helpers -------------------------------------------------------------------------

def tcp_connections(pid):
    """How many TCP connections (listeners not counted) process pid holds open."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[9] in inodes and fields[3] != "0A":  # 0A: LISTEN
                    n += 1
    return n


def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            pytest.skip("RLIMIT_NOFILE hard limit %d is below %d" % (hard, n))
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


class Conn(Raw):
    """peers.Raw with a chosen receive buffer, a send that reports a closed server, a
    predicate wait, and 10 s timeouts."""

    def __init__(self, port, rcvbuf=None, timeout=10):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.closed = False

    def send(self, data):
        """Sends data; False when the server has closed (its error is then in buf)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def wait(self, pred, timeout=10, what="data"):
        deadline = time.monotonic() + timeout
        while not pred(self.buf):
            left = deadline - time.monotonic()
            if self.closed or left <= 0:
                raise AssertionError("no %s (have %r, closed=%s)" % (what, self.buf[-300:], self.closed))
            self.fill(left)

    def line(self, timeout=10):
        return Raw.line(self, timeout)

    def until_pong(self, timeout=10):
        return Raw.until_pong(self, timeout)

    def wait_closed(self, timeout=10):
        return Raw.wait_closed(self, timeout)


def handshake(port, connect=C, rcvbuf=None):
    c = Conn(port, rcvbuf)
    assert c.line().startswith(b"INFO {")
    c.send(connect)
    assert c.until_pong() == b""
    return c


def serves(port):
    """The server still delivers: one subscriber, one message, on a new connection."""
    c = handshake(port)
    try:
        c.send(b"SUB still.alive 1\r\nPUB still.alive 2\r\nok\r\n")
        return c.until_pong() == b"MSG still.alive 1 2\r\nok\r\n"
    finally:
        c.close()


@pytest.fixture
def nats_server(tmp_path):
    """Starts a nats-server with extra config lines on a free port; stopped after the
    test."""
    started = []

    def start(lines):
        ns = NatsServer(tmp_path / ("nats-server-%d" % len(started)))
        with open(ns.conf_path, "a") as f:
            f.write("\n".join(lines) + "\n")
        started.append(ns)
        return ns.start()
    yield start
    for ns in started:
        ns.stop()


def edgepoint(daemon_factory, **bus):
    d = daemon_factory()
    d.config["bus"].update(bus)
    d.write_config()
    return d.start()


# --- many connections ------------------------------------------------------------------

def test_500_concurrent_connections(daemon_factory):
    n = 500
    raise_nofile(n + 200)
    d = edgepoint(daemon_factory, max_connections=n + 10)
    pid = d.proc.pid
    conns = []
    try:
        for _ in range(n):
            conns.append(Conn(d.port))
        for c in conns:
            assert c.line().startswith(b"INFO {")
            c.send(C + b"SUB fan.out 1\r\n")
        for c in conns:
            assert c.until_pong() == b""
        assert tcp_connections(pid) == n
        pub = NatsClient(d.port)
        pub.pub("fan.out", "to all")
        pub.ping()
        for c in conns:
            c.wait(lambda b: b.endswith(b"\r\nto all\r\n"), what="the message")
            assert c.buf == b"MSG fan.out 1 6\r\nto all\r\n"
        pub.close()
    finally:
        for c in conns:
            c.close()
    wait_for(lambda: tcp_connections(pid) == 0, timeout=30, what="the connections to close")
    assert d.proc.poll() is None
    assert serves(d.port)


@pytest.mark.parametrize("target", TARGETS)
def test_max_connections(nats_server, daemon_factory, target):
    if target == "nats-server":
        port = nats_server(["max_connections: 3"]).port
    else:
        port = edgepoint(daemon_factory, max_connections=3).port
    held = [handshake(port) for _ in range(3)]
    try:
        over = Conn(port)
        assert over.line().startswith(b"INFO {")
        assert over.wait_closed(), over.buf
        assert over.buf == b"-ERR 'maximum connections exceeded'\r\n"
        over.close()
        # One leaves: a newcomer gets in (once the server has seen the close).
        held.pop().close()

        def newcomer():
            c = Conn(port)
            c.line()
            c.send(C + b"PING\r\n")
            c.wait(lambda b: b"PONG" in b or b"-ERR" in b)
            if b"PONG" in c.buf:
                return c
            c.close()
            return None
        held.append(wait_for(newcomer, timeout=10, what="a free connection slot"))
        assert serves_nothing_more(port)
    finally:
        for c in held:
            c.close()


def serves_nothing_more(port):
    """The server is full again: the next client is turned away."""
    c = Conn(port)
    try:
        c.line()
        return c.wait_closed() and c.buf == b"-ERR 'maximum connections exceeded'\r\n"
    finally:
        c.close()


# --- slow consumer and memory ------------------------------------------------------------

def test_slow_consumer_is_cut_off_and_memory_stays_bounded(daemon_factory):
    max_pending = 256 * 1024
    d = daemon_factory(env={
        # ASan keeps freed memory in a quarantine (256 MiB by default), which would
        # hide what the daemon itself holds; the release build has none.
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=0"})
    d.config["bus"].update(max_pending=max_pending, max_payload=64 * 1024)
    d.write_config()
    d.start()
    pid = d.proc.pid
    slow = handshake(d.port, rcvbuf=4096)
    slow.send(b"SUB flood 1\r\n")
    assert slow.until_pong() == b""
    pub = handshake(d.port)
    base = vmrss_kib(pid)
    peak = base
    msg = b"PUB flood 1024\r\n" + b"x" * 1024 + b"\r\n"
    batch = msg * 64
    sent = 0
    cut_at = None
    while sent < 64 * 1024 * 1024 and cut_at is None:
        assert pub.send(batch), "the publisher was cut off: %r" % pub.buf
        sent += len(batch)
        peak = max(peak, vmrss_kib(pid))
        if "slow consumer" in d.output():
            cut_at = time.monotonic()
    assert cut_at is not None, "no slow consumer after %d bytes:\n%s" % (sent, d.output())
    # Drain at once: the -ERR is queued behind the write in flight, which has a second
    # to complete before the connection is dropped without it.
    assert slow.wait_closed(), "the slow consumer was not closed"
    assert slow.buf.endswith(b"-ERR 'Slow Consumer'\r\n"), slow.buf[-200:]
    assert slow.buf.count(b"-ERR") == 1
    # The flood goes on with nobody to take it.
    for _ in range(256):
        assert pub.send(batch), "the publisher was cut off: %r" % pub.buf
        peak = max(peak, vmrss_kib(pid))
    # Growth stays within a few times max_pending (the output buffer, the write in
    # flight, a copy while growing), plus what the allocator keeps of freed small
    # chunks (ASan's keeps more), however much is published.
    growth = (peak - base) * 1024
    assert growth < 4 * max_pending + 512 * 1024, (
        "VmRSS grew by %d KiB (base %d KiB, peak %d KiB)" % (growth // 1024, base, peak))
    # The publisher keeps working, and the bus still delivers.
    assert pub.until_pong() == b""
    other = handshake(d.port)
    other.send(b"SUB after 1\r\n")
    assert other.until_pong() == b""
    pub.send(b"PUB after 2\r\nok\r\n")
    assert pub.until_pong() == b""
    other.wait(lambda b: b == b"MSG after 1 2\r\nok\r\n", what="the message after the flood")
    for c in (slow, pub, other):
        c.close()
    assert serves(d.port)


def flood_until_cut(d, pub, slows, limit_bytes, pid):
    """Publishes 1 KiB messages on "flood" until every slow subscriber is cut off;
    returns the peak VmRSS (KiB) seen meanwhile."""
    msg = b"PUB flood 1024\r\n" + b"x" * 1024 + b"\r\n"
    batch = msg * 64
    sent, peak = 0, vmrss_kib(pid)
    while sent < limit_bytes and d.output().count("slow consumer") < len(slows):
        assert pub.send(batch), "the publisher was cut off: %r" % pub.buf
        sent += len(batch)
        peak = max(peak, vmrss_kib(pid))
    assert d.output().count("slow consumer") >= len(slows), (
        "not every slow consumer was cut after %d bytes:\n%s" % (sent, d.output()))
    for s in slows:
        assert s.wait_closed(), "a slow consumer was not closed"
        assert s.buf.endswith(b"-ERR 'Slow Consumer'\r\n"), s.buf[-200:]
    return peak


def slow_subscribers(port, n):
    """n connections subscribed to "flood" that never read (4 KiB receive buffers)."""
    slows = []
    for _ in range(n):
        s = handshake(port, rcvbuf=4096)
        s.send(b"SUB flood 1\r\n")
        assert s.until_pong() == b""
        slows.append(s)
    return slows


NO_QUARANTINE = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=0"}


def test_default_pending_limits_fit_an_edge_device(daemon_factory):
    """Four clients that subscribe and never read, with the default settings: each is
    cut at bus.max_pending (4 MiB, nats-server's 64 MiB took 267 MB for four), and
    the daemon's memory stays within what a 256 MB device can spare."""
    d = daemon_factory(env=NO_QUARANTINE).start()
    pid = d.proc.pid
    slows = slow_subscribers(d.port, 4)
    pub = handshake(d.port)
    base = vmrss_kib(pid)
    peak = flood_until_cut(d, pub, slows, 512 * 1024 * 1024, pid)
    growth_mib = (peak - base) / 1024
    print("default limits, 4 slow consumers: VmRSS base %d KiB, peak %d KiB (+%.1f MiB)"
          % (base, peak, growth_mib))
    assert growth_mib < 48, "VmRSS grew by %.1f MiB" % growth_mib
    assert pub.until_pong() == b""
    for c in slows + [pub]:
        c.close()
    assert serves(d.port)


def test_total_pending_cap_cuts_the_largest_holders(daemon_factory):
    """bus.max_pending_total bounds the sum over all connections: four subscribers that
    never read are cut once together they hold it (each far below its own
    max_pending), largest first, while a subscriber that keeps up is never cut and
    gets the messages published after them."""
    import threading
    d = daemon_factory(env=NO_QUARANTINE)
    d.config["bus"].update(max_pending=4 * 1024 * 1024, max_pending_total=6 * 1024 * 1024)
    d.write_config()
    d.start()
    pid = d.proc.pid
    fast = handshake(d.port)
    fast.send(b"SUB flood 1\r\nSUB done 2\r\n")
    assert fast.until_pong() == b""
    got = {"bytes": 0, "done": False}

    def reader():
        fast.sock.settimeout(60)
        tail = b""
        while not got["done"]:
            try:
                chunk = fast.sock.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            got["bytes"] += len(chunk)
            tail = (tail + chunk)[-64:]
            if b"MSG done 2 2\r\nok\r\n" in tail:
                got["done"] = True
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    slows = slow_subscribers(d.port, 4)
    pub = handshake(d.port)
    base = vmrss_kib(pid)
    peak = flood_until_cut(d, pub, slows, 512 * 1024 * 1024, pid)
    out = d.output()
    assert out.count("(bus.max_pending_total reached)") >= 3, out[-3000:]
    pub.send(b"PUB done 2\r\nok\r\n")
    assert pub.until_pong() == b""
    t.join(60)
    assert got["done"], "the subscriber that keeps up did not get the last message"
    assert got["bytes"] > 1024 * 1024
    growth_mib = (peak - base) / 1024
    print("max_pending_total 6 MiB, 4 slow + 1 fast: VmRSS +%.1f MiB" % growth_mib)
    assert growth_mib < 40, "VmRSS grew by %.1f MiB" % growth_mib
    for c in slows + [pub, fast]:
        c.close()
    assert serves(d.port)


# --- stale connections ---------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_stale_connection(nats_server, daemon_factory, target):
    if target == "nats-server":
        port = nats_server(['ping_interval: "200ms"', "ping_max: 2"]).port
    else:
        port = edgepoint(daemon_factory, ping_interval="200ms", max_pings_out=2).port
    mute = handshake(port)
    lively = handshake(port)
    t0 = time.monotonic()
    answered = 0
    # The mute client is dropped; the lively one, which answers, stays however many
    # intervals pass.
    while not mute.closed or answered < 4:
        assert time.monotonic() - t0 < 10, (mute.buf, lively.buf, answered)
        if not mute.closed:
            mute.fill(0.01)
        lively.fill(0.01)
        assert not lively.closed, lively.buf
        while b"PING\r\n" in lively.buf:
            assert lively.buf.startswith(b"PING\r\n"), lively.buf
            lively.buf = lively.buf[6:]
            lively.send(b"PONG\r\n")
            answered += 1
        if mute.closed:
            assert mute.buf == b"PING\r\nPING\r\n-ERR 'Stale Connection'\r\n"
    assert lively.until_pong().replace(b"PING\r\n", b"") == b""
    mute.close()
    lively.close()


# --- malformed input -----------------------------------------------------------------------

GARBAGE = b"\x8f" + bytes(random.Random(7).randrange(256) for _ in range(255))

# (name, bytes sent after CONNECT, what nats-server 2.9.10 sends, state after)
MALFORMED = [
    ("random_garbage", GARBAGE, b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    ("huge_garbage", b"a" * (1 << 20), b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    ("huge_control_line_in_one_write", b"SUB " + b"s" * (1 << 20) + b" 1\r\n",
     b"-ERR 'maximum control line exceeded'\r\n", CLOSED),
    ("huge_connect", b'CONNECT {"name":"' + b"n" * 8000 + b'"}\r\n',
     b"-ERR 'maximum control line exceeded'\r\n", CLOSED),
    ("payload_size_not_a_number", b"PUB foo abc\r\nx\r\n", b"", CLOSED),
    ("payload_size_negative", b"PUB foo -1\r\n", b"", CLOSED),
    ("payload_size_over_nine_digits", b"PUB foo 1234567890\r\n", b"", CLOSED),
    ("payload_size_then_junk", b"PUB foo 5 x\r\nhello\r\n", b"", CLOSED),
    ("header_size_over_total_size", b"HPUB foo 20 10\r\n", b"", CLOSED),
    ("payload_without_crlf", b"PUB foo 5\r\nhelloPING\r\n",
     b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    ("payload_ended_by_lf_only", b"PUB foo 5\r\nhello\n",
     b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    ("payload_ended_by_cr_cr_lf", b"PUB foo 5\r\nhello\r\r\n",
     b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    ("nul_bytes_as_operation", b"\x00\x00\x00\x00\r\n",
     b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    ("nul_inside_operation_name", b"PU\x00B foo 1\r\nx\r\n",
     b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    ("nul_bytes_in_payload_are_data", b"SUB foo 1\r\nPUB foo 5\r\nh\x00l\x00o\r\n",
     b"MSG foo 1 5\r\nh\x00l\x00o\r\n", OPEN),
    ("utf8_subject", "SUB été.€ 9\r\nPUB été.€ 2\r\nhi\r\n".encode(),
     "MSG été.€ 9 2\r\nhi\r\n".encode(), OPEN),
    ("invalid_utf8_subject", b"SUB foo\xff 7\r\nPUB foo\xff 1\r\nz\r\n",
     b"MSG foo\xff 7 1\r\nz\r\n", OPEN),
    ("utf8_junk_as_operation", "é€\r\n".encode(), b"-ERR 'Unknown Protocol Operation'\r\n",
     CLOSED),
]


def converse(port, connect, data):
    """Sends CONNECT, data and PING; returns (what came back before the PONG, "open"),
    or (everything that came back, "closed") when the server closed."""
    c = Conn(port)
    try:
        assert c.line().startswith(b"INFO {")
        if c.send(connect) and c.send(data) and c.send(b"PING\r\n"):
            c.wait(lambda b: b.endswith(b"PONG\r\n") or c.closed, what="PONG or a close")
        else:
            c.wait_closed()
        if c.closed:
            return c.buf, CLOSED
        return c.buf[:-len(b"PONG\r\n")], OPEN
    finally:
        c.close()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name,data,expect,state", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input(server_pool, target, name, data, expect, state):
    srv = server_pool.get(target)
    connect = b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'
    got, got_state = converse(srv.port, connect, data)
    detail = "%s sent %r, then the connection was %s" % (target, got[-300:], got_state)
    server_pool.assert_alive(target, "plain", detail)
    assert got == expect and got_state == state, detail + "; nats-server: %r, %s" % (expect, state)
    assert serves(srv.port), "%s stopped serving other clients after %s" % (target, name)


def test_nul_in_subject_is_refused(server_pool):
    # A deliberate difference: nats-server 2.9 takes a NUL as a subject byte and
    # delivers "a.\x00"; in-process subscribers read subjects as C strings, so the bus
    # refuses control bytes in subjects (tests/integration/test_bus_subject_ctl.py).
    data = b"SUB a.\x00 5\r\nPUB a.\x00 1\r\nx\r\n"
    ns = server_pool.get("nats-server")
    assert converse(ns.port, C, data) == (b"MSG a.\x00 5 1\r\nx\r\n", OPEN)
    srv = server_pool.get("edgepoint")
    assert converse(srv.port, C, data) == (
        b"-ERR 'Invalid Subject'\r\n-ERR 'Invalid Publish Subject'\r\n", OPEN)
    server_pool.assert_alive("edgepoint")


def test_cr_in_pub_arguments_never_reaches_subscribers(server_pool):
    # Edgepoint only, on purpose: nats-server splits PUB at blanks alone and forwards
    # a reply such as "a\rb\rc" into MSG lines its own clients cannot parse, so one
    # publisher can cut every subscriber off. The bus takes '\r' as a separator, like
    # SUB and MSG do: this PUB has too many arguments and is refused like any other.
    srv = server_pool.get("edgepoint")
    sub = handshake(srv.port)
    sub.send(b"SUB cr.test 1\r\nSUB cr.* 2\r\n")
    assert sub.until_pong() == b""
    assert converse(srv.port, C, b"PUB cr.test a\rb\rc 1\r\nx\r\n") == (b"", CLOSED)
    # Around a subject, a '\r' is a blank: "cr.test" is what gets delivered.
    assert converse(srv.port, C, b"PUB cr.test\r 1\r\ny\r\n") == (b"", OPEN)
    assert sub.until_pong() in (b"MSG cr.test 1 1\r\ny\r\nMSG cr.test 2 1\r\ny\r\n",
                                b"MSG cr.test 2 1\r\ny\r\nMSG cr.test 1 1\r\ny\r\n")
    sub.close()
    server_pool.assert_alive("edgepoint")
