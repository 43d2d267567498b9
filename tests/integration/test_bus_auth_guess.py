"""Password guessing on the bus (issue 9, item 4), from outside, against the real
daemon (the sanitizer build):

- Timing: an unknown user, a CONNECT without a user name or password, and a wrong
  password are refused after the same work (a PBKDF2 check against a hash of the
  same cost, on the same worker), so their median refusal times agree within a
  factor of 2. Before, an unknown user was refused in 0.02 ms and a wrong password
  in 10 ms: anyone could list the users.
- The failed-login limit per source address: after bus.auth.max_failures failures
  an address is refused even with the right password, other addresses are not, one
  notice names the address, the user and the count, a burst during the lockout adds
  no lines, and the right password gets in again after bus.auth.lockout. IPv4 and
  IPv6 (::1), with the defaults (10 failures, 1 minute) and with a short lockout.
- Starvation: while 400 wrong-password CONNECTs are pending, an admin's node query
  answers within 300 ms. Before, the checks ran on libuv's thread pool with the
  queries' SQLite reads and the query waited 2.7 s.

Loopback is all of 127.0.0.0/8: a client that must count as another address binds
its own source address (127.x.y.z), so the tests neither trip the limit by accident
nor depend on each other.
"""
import json
import re
import select
import socket
import statistics
import time

import pytest

from conftest import NatsClient, wait_for
from peers import Edgepoint, password_hash

GOOD = "correct horse 9"
AV = b"-ERR 'Authorization Violation'\r\n"
TIMEOUT = b"-ERR 'Authentication Timeout'\r\n"
SAMPLES = 25
STORM = 400
QUERY_BOUND = 0.300  # seconds; the issue measured 2.7 s


def connect_line(user=None, password=None):
    o = {"verbose": False, "pedantic": False}
    if user is not None:
        o["user"] = user
    if password is not None:
        o["pass"] = password
    return b"CONNECT " + json.dumps(o, separators=(",", ":")).encode() + b"\r\n"


def free_port6():
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def source(block, i):
    """The i-th source address (from 0) of a block of loopback addresses."""
    return "127.%d.%d.%d" % (block, i // 250, i % 250 + 1)


def dial(port, src=None, host="127.0.0.1"):
    """A connection past the server's INFO line, from source address src."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(10)
    if src:
        s.bind((src, 0))
    s.connect((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = s.recv(4096)
        assert chunk, "closed before INFO"
        buf += chunk
    assert buf.startswith(b"INFO ") and b'"auth_required":true' in buf, buf
    return s


def attempt(port, line, src=None, host="127.0.0.1"):
    """Sends CONNECT line and a PING; returns ("in", seconds) when the PONG comes, or
    ("refused", seconds) after exactly AV and a close, seconds being the time from
    the CONNECT to the verdict."""
    s = dial(port, src, host)
    try:
        t0 = time.perf_counter()
        s.sendall(line + b"PING\r\n")
        got = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if got == b"" and chunk:
                t = time.perf_counter() - t0
            if not chunk:
                assert got == AV, "refused with %r" % got
                return "refused", t
            got += chunk
            if got == b"PONG\r\n":
                return "in", t
            assert len(got) < 200, got
    finally:
        s.close()


def start(d, users, auth=None, listen6=False, **config):
    ep = Edgepoint(d, "plain")
    bus = ep.daemon.config["bus"]
    bus["auth"] = dict(auth or {}, users=[
        {"user": name, "password_hash": password_hash(pw)} for name, pw in users])
    if listen6:
        ep.port6 = free_port6()
        bus["listen"].append("[::1]:%d" % ep.port6)
    ep.daemon.config.update(config)
    ep.daemon.write_config()
    return ep.start()


def stopped(ep):
    problem = ep.stop()
    assert problem is None, problem


# --- (a) timing -----------------------------------------------------------------------------

def test_unknown_users_take_as_long_as_wrong_passwords(tmp_path):
    ep = start(tmp_path, [("alice", GOOD), ("bob", "bob pw")])
    try:
        kinds = {
            "wrong password": connect_line("alice", "not it"),
            "unknown user": connect_line("mallory", "not it"),
            "no password": connect_line("alice"),
            "no user name or password": connect_line(),
        }
        times = {k: [] for k in kinds}
        n = 0
        for _ in range(SAMPLES):
            for kind, line in kinds.items():
                # A fresh address each time: the failed-login limit stays out of it.
                verdict, t = attempt(ep.port, line, source(10, n))
                n += 1
                assert verdict == "refused", kind
                times[kind].append(t)
        med = {k: statistics.median(v) for k, v in times.items()}
        print("\nmedian refusal over %d samples each: %s" % (SAMPLES, ", ".join(
            "%s %.2f ms" % (k, v * 1e3) for k, v in med.items())))
        base = med["wrong password"]
        for kind, m in med.items():
            assert 0.5 < m / base < 2, (
                "%s: median %.3f ms vs %.3f ms for a wrong password (ratio %.3f)"
                % (kind, m * 1e3, base * 1e3, m / base))
        # The right password still gets in (and is not slowed by the dummy checks).
        assert attempt(ep.port, connect_line("alice", GOOD), source(10, n))[0] == "in"
    finally:
        stopped(ep)


# --- (b) the failed-login limit -------------------------------------------------------------

def lines_about(ep, addr):
    return [x for x in ep.output().splitlines() if addr in x]


def test_default_limit_is_ten_failures_per_address(tmp_path):
    ep = start(tmp_path, [("alice", GOOD)])
    try:
        a, b = source(31, 0), source(31, 1)
        for i in range(10):
            assert attempt(ep.port, connect_line("alice", "guess %d" % i), a)[0] == "refused"
        # Locked out: the right password from that address is refused ...
        assert attempt(ep.port, connect_line("alice", GOOD), a)[0] == "refused"
        # ... but not from another one.
        assert attempt(ep.port, connect_line("alice", GOOD), b)[0] == "in"
        wait_for(lambda: any(re.search(
            r"notice +bus: %s: 10 failed logins within 1m, .*user \"alice\".*"
            r"refusing logins from %s for 1m" % (re.escape(a), re.escape(a)), x)
            for x in lines_about(ep, a)), timeout=5, what="the lockout notice")
    finally:
        stopped(ep)


def test_lockout_refuses_then_lets_the_right_password_in(tmp_path):
    lockout = 2.0
    ep = start(tmp_path, [("alice", GOOD)], auth={"max_failures": 5, "lockout": "2s"},
               listen6=True)
    try:
        v4, other = source(30, 0), source(30, 1)
        # Five wrong guesses from each address, as different users: all count.
        for i in range(5):
            user = "alice" if i % 2 == 0 else "user%d" % i
            assert attempt(ep.port, connect_line(user, "guess"), v4)[0] == "refused"
            assert attempt(ep.port6, connect_line(user, "guess"), host="::1")[0] == "refused"
        locked_at = time.monotonic()
        good = connect_line("alice", GOOD)
        assert attempt(ep.port, good, v4)[0] == "refused"
        assert attempt(ep.port6, good, host="::1")[0] == "refused"
        assert attempt(ep.port, good, other)[0] == "in"

        for addr in (v4, "::1"):
            wait_for(lambda: any(re.search(
                r"notice +bus: %s: 5 failed logins within 2s, the last by client \d+ "
                r"\(wrong password for user \"alice\"\): refusing logins from %s for 2s"
                % (re.escape(addr), re.escape(addr)), x) for x in ep.output().splitlines()),
                timeout=5, what="the lockout notice for " + addr)
        # A burst during the lockout: refused at once, and not one more log line.
        before = len(lines_about(ep, v4))
        burst = [attempt(ep.port, connect_line("alice", "burst %d" % i), v4)
                 for i in range(50)]
        assert {v for v, _ in burst} == {"refused"}
        print("\nrefusals during the lockout: median %.2f ms"
              % (statistics.median(t for _, t in burst) * 1e3))
        assert attempt(ep.port, good, other)[0] == "in"  # a marker in the log's order
        assert len(lines_about(ep, v4)) == before, lines_about(ep, v4)[before:]
        assert before <= 5, lines_about(ep, v4)  # 4 failures at info, 1 notice

        # The right password gets in once the lockout is over (refusals meanwhile do
        # not extend it), from both addresses.
        for port, src, host in ((ep.port, v4, "127.0.0.1"), (ep.port6, None, "::1")):
            wait_for(lambda: attempt(port, good, src, host)[0] == "in", timeout=lockout + 5,
                     interval=0.05, what="the lockout of %s to end" % (src or host))
        waited = time.monotonic() - locked_at
        print("in again %.2f s after the lockout began (lockout %.1f s)" % (waited, lockout))
        assert waited > lockout - 0.2, waited
    finally:
        stopped(ep)


# --- (c) password checks do not starve queries ----------------------------------------------

def test_queries_do_not_wait_behind_password_checks(tmp_path):
    ep = start(tmp_path, [("admin", GOOD), ("storm", GOOD)],
               nodes=[{"id": "grp", "type": "group"}])
    admin = NatsClient(ep.port, connect={"user": "admin", "pass": GOOD})
    storm = []
    try:
        def query():
            t0 = time.perf_counter()
            r = admin.request("nodes.gw-test.all", "")
            assert [n["id"] for n in r["nodes"]] == ["grp"], r
            return time.perf_counter() - t0

        idle = sorted(query() for _ in range(5))
        # Every storm client from its own address, so that the failed-login limit
        # does not cut the storm short: this is about the worker, not the limit.
        storm = [dial(ep.port, source(20, i)) for i in range(STORM)]
        for i, s in enumerate(storm):
            s.sendall(connect_line("storm", "wrong %d" % i))
        poller = select.poll()
        for s in storm:
            poller.register(s, select.POLLIN)

        def pending():
            return STORM - len(poller.poll(0))

        lat, still = [], []
        for _ in range(8):
            lat.append(query())
            still.append(pending())
        print("\nnode query: idle median %.1f ms; during a storm of %d wrong passwords "
              "max %.1f ms, median %.1f ms (storm clients still waiting: %s)"
              % (statistics.median(idle) * 1e3, STORM, max(lat) * 1e3,
                 statistics.median(lat) * 1e3, still))
        assert max(lat) < QUERY_BOUND, "node query took %.0f ms during the storm" % (
            max(lat) * 1e3)
        assert still[0] > STORM * 3 // 4, "the storm was over too soon: %s" % still
        # Each storm client got what nats-server would send it: a refusal, or the
        # timeout when its turn did not come within auth_timeout.
        replies = {}
        deadline = time.monotonic() + 60
        while len(replies) < STORM and time.monotonic() < deadline:
            for fd, _ in poller.poll(1000):
                s = next(x for x in storm if x.fileno() == fd)
                try:
                    data = s.recv(4096)
                except ConnectionResetError:
                    data = b""
                if not data:
                    poller.unregister(fd)
                replies[fd] = replies.get(fd, b"") + data
        assert len(replies) == STORM
        assert set(replies.values()) <= {AV, TIMEOUT}, set(replies.values())
        assert query() < QUERY_BOUND
    finally:
        admin.close()
        for s in storm:
            s.close()
        stopped(ep)
