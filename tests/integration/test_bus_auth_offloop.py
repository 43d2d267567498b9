"""Password verification off the bus's loop thread.

A bus user's password is a PBKDF2 hash: a few ms of CPU per verification. The daemon
runs it on libuv's thread pool, so a storm of CONNECTs with wrong passwords must not
hold up the clients already connected. These tests measure that from outside: PING
round trips of a connected client while 20 clients with wrong passwords connect at
once (before the change the loop verified them one after the other, and a PING waited
for up to all 20 verifications, 20 x 8 ms and more).

They also check that what a client pipelines right after its CONNECT (in the same
packet) is processed after the verdict and in order, and that a daemon stopped or a
client gone while verifications are still running exits cleanly (ASan builds report
leaks and use-after-free through the exit status).
"""
import json
import select
import socket
import ssl
import time

import pytest

from peers import Edgepoint, make_certs, password_hash

STORM = 20
GOOD = "good pw 1"
AV = b"-ERR 'Authorization Violation'\r\n"


def connect(user, password, verbose=False):
    o = {"verbose": verbose, "pedantic": False, "user": user, "pass": password}
    return b"CONNECT " + json.dumps(o, separators=(",", ":")).encode() + b"\r\n"


@pytest.fixture(scope="module")
def bus(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth-offloop")
    ep = Edgepoint(d, "plain")
    h = password_hash(GOOD)
    # No failed-login limit: the storms below come from one address, and this is
    # about the checks being off the loop (test_bus_auth_guess.py tests the limit).
    ep.daemon.config["bus"]["auth"] = {"max_failures": 0, "users": [
        {"user": "probe", "password_hash": h},
        {"user": "storm", "password_hash": h},
        {"user": "pipe", "password_hash": h},
        {"user": "pipe2", "password_hash": h},
    ]}
    ep.daemon.write_config()
    ep.start()
    yield ep
    problem = ep.stop()
    assert problem is None, problem


def open_client(port):
    """A socket past the server's INFO line."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while b"\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, "closed before INFO"
        buf += chunk
    assert buf.startswith(b"INFO ")
    return s


def read_until_closed(s, timeout=10):
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def read_exactly(s, want, timeout=10):
    s.settimeout(timeout)
    out = b""
    while len(out) < len(want):
        chunk = s.recv(4096)
        assert chunk, "closed after %r, wanted %r" % (out, want)
        out += chunk
    return out


def ping_rtt(s):
    t0 = time.perf_counter()
    s.sendall(b"PING\r\n")
    got = b""
    while not got.endswith(b"PONG\r\n"):
        chunk = s.recv(64)
        assert chunk, "probe closed"
        got += chunk
    assert got == b"PONG\r\n", got
    return time.perf_counter() - t0


def test_loop_answers_pings_during_a_wrong_password_storm(bus):
    probe = open_client(bus.port)
    probe.sendall(connect("probe", GOOD) + b"PING\r\n")
    assert read_exactly(probe, b"PONG\r\n") == b"PONG\r\n"
    # Idle round trips first, for scale.
    idle = sorted(ping_rtt(probe) for _ in range(50))

    storm = [open_client(bus.port) for _ in range(STORM)]
    bad = [connect("storm", "wrong pw %d" % i) for i in range(STORM)]
    pending = {s.fileno(): s for s in storm}
    replies = {fd: b"" for fd in pending}
    t0 = time.perf_counter()
    for s, c in zip(storm, bad):
        s.sendall(c)
    rtts = []
    deadline = t0 + 30
    while pending and time.perf_counter() < deadline:
        rtts.append(ping_rtt(probe))
        ready, _, _ = select.select(list(pending.values()), [], [], 0)
        for s in ready:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                chunk = b""
            replies[s.fileno()] += chunk
            if not chunk:
                del pending[s.fileno()]
    storm_s = time.perf_counter() - t0
    assert not pending, "%d clients got no verdict in 30 s" % len(pending)
    for s in storm:
        assert replies[s.fileno()] == AV, replies[s.fileno()]
        s.close()

    rtts.sort()
    p50 = rtts[len(rtts) // 2]
    p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
    print("\nstorm of %d wrong passwords: verdicts after %.1f ms; %d PINGs meanwhile: "
          "p50 %.2f ms, p99 %.2f ms, max %.2f ms (idle p50 %.2f ms)"
          % (STORM, storm_s * 1e3, len(rtts), p50 * 1e3, p99 * 1e3, rtts[-1] * 1e3,
             idle[len(idle) // 2] * 1e3))
    # On the loop, 20 verifications in a row held a PING up to 20 x 8 ms (160 ms, more
    # under a sanitizer). Off the loop, the PING waits for the CPU at most: the pool's
    # 4 threads share the machine's cores with the loop (p99 5-10 ms on 2 cores).
    assert len(rtts) >= 5
    assert p50 < 0.005, "p50 PING round trip %.1f ms during the storm" % (p50 * 1e3)
    assert p99 < 0.050, "p99 PING round trip %.1f ms during the storm" % (p99 * 1e3)
    assert ping_rtt(probe) < 1.0
    probe.close()


def test_pipelined_after_a_good_password_is_processed_in_order(bus):
    # "pipe" has not connected before, so its password is not cached: the CONNECT
    # waits for the thread pool and what follows it in the packet must wait too.
    s = open_client(bus.port)
    s.sendall(connect("pipe", GOOD, verbose=True) +
              b"SUB w.pipe 1\r\nPUB w.pipe 2\r\nhi\r\nPING\r\nPUB w.pipe 3\r\nbye\r\nPING\r\n")
    want = (b"+OK\r\n" b"+OK\r\n" b"+OK\r\n" b"MSG w.pipe 1 2\r\nhi\r\n" b"PONG\r\n"
            b"+OK\r\n" b"MSG w.pipe 1 3\r\nbye\r\n" b"PONG\r\n")
    assert read_exactly(s, want) == want
    # The connection reads again afterwards.
    s.sendall(b"PING\r\n")
    assert read_exactly(s, b"PONG\r\n") == b"PONG\r\n"
    s.close()


def test_pipelined_after_a_wrong_password_is_dropped(bus):
    s = open_client(bus.port)
    s.sendall(connect("pipe2", "not it") + b"PING\r\nPUB w.pipe 1\r\nx\r\n")
    assert read_until_closed(s) == AV


def test_clients_gone_while_verifying(bus):
    # The clients leave before their verdicts; the daemon must neither answer into
    # freed memory nor leak (the fixture's stop checks the exit status).
    storm = [open_client(bus.port) for _ in range(STORM)]
    for i, s in enumerate(storm):
        s.sendall(connect("storm", "gone %d" % i))
    for s in storm:
        s.close()
    probe = open_client(bus.port)
    probe.sendall(connect("probe", GOOD) + b"PING\r\n")
    assert read_exactly(probe, b"PONG\r\n") == b"PONG\r\n"
    probe.close()


def test_stop_while_verifying(tmp_path):
    ep = Edgepoint(tmp_path, "plain")
    ep.daemon.config["bus"]["auth"] = {"users": [
        {"user": "storm", "password_hash": password_hash(GOOD)}]}
    ep.daemon.write_config()
    ep.start()
    storm = [open_client(ep.port) for _ in range(STORM)]
    for i, s in enumerate(storm):
        s.sendall(connect("storm", GOOD if i % 2 else "wrong %d" % i))
    problem = ep.stop()
    for s in storm:
        s.close()
    assert problem is None, problem


def test_pipelined_after_a_good_password_over_tls(tmp_path):
    # Over TLS the held input is plaintext the session already decrypted; reading
    # resumes on the same session afterwards. 210 KB of PUBs after the CONNECT span
    # many TLS records and reads.
    certs = make_certs(str(tmp_path / "certs"))
    ep = Edgepoint(tmp_path / "ep", "plain")
    bus_conf = ep.daemon.config["bus"]
    bus_conf["tls"] = {"cert_file": certs.cert, "key_file": certs.key}
    bus_conf["auth"] = {"users": [{"user": "tls", "password_hash": password_hash(GOOD)}]}
    ep.daemon.write_config()
    ep.start()
    try:
        raw = open_client(ep.port)
        ctx = ssl.create_default_context(cafile=certs.ca)
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        pubs = [b"%02d" % i + b"z" * 2998 for i in range(70)]
        s.sendall(connect("tls", GOOD, verbose=True) + b"SUB w.tls 1\r\n" +
                  b"".join(b"PUB w.tls 3000\r\n" + p + b"\r\n" for p in pubs) +
                  b"PING\r\n")
        want = (b"+OK\r\n" b"+OK\r\n" +
                b"".join(b"+OK\r\nMSG w.tls 1 3000\r\n" + p + b"\r\n" for p in pubs) +
                b"PONG\r\n")
        assert read_exactly(s, want) == want
        s.sendall(b"PING\r\n")
        assert read_exactly(s, b"PONG\r\n") == b"PONG\r\n"
        s.close()
    finally:
        problem = ep.stop()
    assert problem is None, problem
