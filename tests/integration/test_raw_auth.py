"""Authentication and permissions on the bus, byte for byte against nats-server 2.9:
the auth timeout, bad or missing credentials, CONNECT missing, publish and subscribe
permission violations (the connection stays open) and deliveries filtered by a
subscribe deny list.

Both targets run the same authorization: a "token" server and a "users" server with
three users whose permissions nats-server reads from the same JSON as edgepoint's
bus.auth (edgepoint gets PBKDF2 hashes from 'edgepoint passwd', nats-server the plain
passwords). Each case carries what nats-server 2.9.10 sends, recorded from it; the
nats-server run re-checks that record and the edgepoint run compares with it and
with the nats-server of this session, as tests/integration/test_raw_protocol.py does.

Subjects live under "w." (and "x."), never a bare ">": the daemon's own modules
publish on sys.<device>.* and a wide subscription would see them.
"""
import json

import pytest

from peers import Edgepoint, NatsServer, Raw, password_hash

TARGETS = ("nats-server", "edgepoint")
TOKEN = "raw-auth-token-31c4"
AUTH_TIMEOUT = 0.5  # seconds, both targets

USERS = [
    {"user": "alice", "password": "alice pw",
     "permissions": {"publish": {"allow": ["w.>", "req"], "deny": ["w.secret"]},
                     "subscribe": {"allow": ["w.>", "x.*"],
                                   "deny": ["w.secret", "w.*.hidden"]}}},
    {"user": "bob", "password": "bob pw"},
    {"user": "carol", "password": "carol pw",
     "permissions": {"publish": {"deny": [">"]},
                     "subscribe": {"deny": ["w.a.*"]}}},
]

OPEN, CLOSED = "open", "closed"


def connect(user=None, password=None, token=None, verbose=False):
    o = {"verbose": verbose, "pedantic": False}
    if user is not None:
        o["user"] = user
    if password is not None:
        o["pass"] = password
    if token is not None:
        o["auth_token"] = token
    return b"CONNECT " + json.dumps(o, separators=(",", ":")).encode() + b"\r\n"


def user_connect(name, verbose=False):
    u = next(x for x in USERS if x["user"] == name)
    return connect(name, u["password"], verbose=verbose)


# --- the two targets with the same authorization ------------------------------------------

def nats_server(d, kind):
    srv = NatsServer(d, "plain")
    if kind == "token":
        auth = {"token": TOKEN, "timeout": AUTH_TIMEOUT}
    else:
        auth = {"users": [{k: v for k, v in u.items()} for u in USERS],
                "timeout": AUTH_TIMEOUT}
    with open(srv.conf_path, "a") as f:
        f.write("authorization: %s\n" % json.dumps(auth))
    return srv.start()


def edgepoint(d, kind):
    ep = Edgepoint(d, "plain")
    bus = ep.daemon.config["bus"]
    bus["auth_timeout"] = "%dms" % int(AUTH_TIMEOUT * 1000)
    if kind == "token":
        bus["auth"] = {"token": TOKEN}
    else:
        users = []
        for u in USERS:
            e = {"user": u["user"], "password_hash": password_hash(u["password"])}
            if "permissions" in u:
                e["permissions"] = u["permissions"]
            users.append(e)
        bus["auth"] = {"users": users}
    ep.daemon.write_config()
    return ep.start()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    started = {}

    def get(target, kind):
        key = (target, kind)
        if key not in started:
            d = tmp_path_factory.mktemp("auth-%s-%s" % (target, kind))
            make = nats_server if target == "nats-server" else edgepoint
            started[key] = make(d, kind)
        s = started[key]
        assert s.alive(), "%s (%s) died:\n%s" % (target, kind, s.output()[-4000:])
        return s
    yield get
    problems = [p for p in (s.stop() for s in started.values()) if p]
    assert not problems, "\n".join(problems)


# --- one connection: exact bytes in, exact bytes out ----------------------------------------

class Case:
    """Chunks sent on one connection to a kind of server, what nats-server sends back
    after its INFO, and whether it then closes."""

    def __init__(self, name, kind, sends, nats_server_sends, state=OPEN):
        self.name = name
        self.kind = kind
        self.sends = sends
        self.expect = nats_server_sends
        self.state = state


AV = b"-ERR 'Authorization Violation'\r\n"

CASES = [
    Case("token_ok", "token", [connect(token=TOKEN, verbose=True)],
         b"+OK\r\n" b"PONG\r\n"),
    Case("bad_token", "token", [connect(token=TOKEN + "x")], AV, CLOSED),
    Case("token_missing", "token", [connect()], AV, CLOSED),
    Case("token_given_as_user", "token", [connect(user=TOKEN)], AV, CLOSED),
    Case("password_ok", "users", [user_connect("bob", verbose=True)],
         b"+OK\r\n" b"PONG\r\n"),
    Case("bad_password", "users", [connect("alice", "alice pw!")], AV, CLOSED),
    Case("unknown_user", "users", [connect("mallory", "alice pw")], AV, CLOSED),
    Case("password_without_user", "users", [connect(password="bob pw")], AV, CLOSED),
    Case("connect_missing_ping_first", "users", [b"PING\r\n"], AV, CLOSED),
    Case("connect_missing_sub_first", "users", [b"SUB w.a 1\r\n"], AV, CLOSED),
    Case("connect_missing_token_server", "token", [b"PUB w.a 1\r\nx\r\n"], AV, CLOSED),
    # Denied publishes get an -ERR instead of +OK; the message goes nowhere and the
    # connection carries on.
    Case("publish_violations", "users",
         [user_connect("alice", verbose=True),
          b"SUB w.> 1\r\nPUB w.secret 1\r\na\r\nPUB y.z 1\r\nb\r\nPUB w.ok 1\r\nc\r\n"
          b"PUB req 1\r\nd\r\n"],
         b"+OK\r\n" b"+OK\r\n"
         b"-ERR 'Permissions Violation for Publish to \"w.secret\"'\r\n"
         b"-ERR 'Permissions Violation for Publish to \"y.z\"'\r\n"
         b"+OK\r\n" b"MSG w.ok 1 1\r\nc\r\n" b"+OK\r\n" b"PONG\r\n"),
    Case("deny_everything", "users",
         [user_connect("carol"), b"PUB w.x 1\r\na\r\n"],
         b"-ERR 'Permissions Violation for Publish to \"w.x\"'\r\n" b"PONG\r\n"),
    Case("subscribe_violations", "users",
         [user_connect("alice", verbose=True),
          b"SUB w.secret 1\r\nSUB y.z 2\r\nSUB y.z q 3\r\nSUB x.> 4\r\nSUB x.* 5\r\n"
          b"SUB w.secret 5\r\nPUB x.a 1\r\nm\r\n"],
         b"+OK\r\n"
         b"-ERR 'Permissions Violation for Subscription to \"w.secret\"'\r\n"
         b"-ERR 'Permissions Violation for Subscription to \"y.z\"'\r\n"
         b"-ERR 'Permissions Violation for Subscription to \"y.z\" using queue \"q\"'\r\n"
         b"+OK\r\n" b"+OK\r\n"
         b"-ERR 'Permissions Violation for Subscription to \"w.secret\"'\r\n"
         b"-ERR 'Permissions Violation for Publish to \"x.a\"'\r\n" b"PONG\r\n"),
    # Entries match a SUB's wildcards as nats-server's sublist does: an entry's '*'
    # covers the SUB's '>' token, so allow x.* permits SUB x.> (above) and deny w.a.*
    # refuses SUB w.a.>.
    Case("deny_wildcard_covers_sub_wildcard", "users",
         [user_connect("carol"), b"SUB w.a.> 1\r\nSUB w.a.b 2\r\nSUB w.* 3\r\n"],
         b"-ERR 'Permissions Violation for Subscription to \"w.a.>\"'\r\n"
         b"-ERR 'Permissions Violation for Subscription to \"w.a.b\"'\r\n" b"PONG\r\n"),
    Case("subject_quoted_as_go_does", "users",
         [user_connect("alice"), b'SUB y."q\\ 1\r\n'],
         b"-ERR 'Permissions Violation for Subscription to \"y.\\\"q\\\\\"'\r\n"
         b"PONG\r\n"),
]


def converse(port, case):
    """Runs case; returns (transcript after INFO, state)."""
    r = Raw(port)
    try:
        info = r.line()
        assert info.startswith(b"INFO {") and info.endswith(b"\r\n"), info
        assert json.loads(info[5:]).get("auth_required") is True, info
        for chunk in case.sends:
            r.send(chunk)
        if case.state == CLOSED:
            closed = r.wait_closed(5)
            return r.buf, CLOSED if closed else OPEN
        r.send(b"PING\r\n")
        while not r.buf.endswith(b"PONG\r\n"):
            if not r.fill(5):
                return r.buf, CLOSED if r.closed else "timed out"
        return r.buf, OPEN
    finally:
        r.close()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_raw_auth(servers, target, case):
    got, state = converse(servers(target, case.kind).port, case)
    detail = "%s sent %r, then the connection was %s" % (target, got, state)
    assert got == case.expect, detail + "\nrecorded from nats-server: %r" % case.expect
    assert state == case.state, detail + "; nats-server leaves it " + case.state
    if target != "nats-server":
        ns_got, ns_state = converse(servers("nats-server", case.kind).port, case)
        assert (got, state) == (ns_got, ns_state), (
            "%s and this session's nats-server disagree:\n%r (%s)\n%r (%s)"
            % (target, got, state, ns_got, ns_state))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", ["token", "users"])
def test_auth_timeout(servers, target, kind):
    # nats-server sends nothing but its INFO until the timeout, then
    # -ERR 'Authentication Timeout' and closes.
    r = Raw(servers(target, kind).port)
    try:
        r.line()
        closed = r.wait_closed(AUTH_TIMEOUT + 5)
        assert (r.buf, closed) == (b"-ERR 'Authentication Timeout'\r\n", True), r.buf
    finally:
        r.close()


# --- several connections: deliveries filtered by the subscriber's deny list ---------------

def deliveries(port):
    """Alice (deny w.secret, w.*.hidden) and carol (deny w.a.*) subscribe with
    wildcards, bob publishes; returns what each subscriber received."""
    subs = {}
    conns = []
    try:
        for name, lines in (("alice", b"SUB w.> 1\r\nSUB w.* 2\r\nSUB w.*.* 3\r\n"),
                            ("carol", b"SUB w.> 1\r\nSUB w.*.* 2\r\nSUB w.x.* 3\r\n")):
            r = Raw(port)
            conns.append(r)
            r.line()
            r.send(user_connect(name) + lines)
            assert r.until_pong() == b"", (name, r.buf)
            subs[name] = r
        bob = Raw(port)
        conns.append(bob)
        bob.line()
        bob.send(user_connect("bob") + b"".join(
            b"PUB %s 1\r\n%s\r\n" % (s, p) for s, p in (
                (b"w.secret", b"1"), (b"w.q.hidden", b"2"), (b"w.ok", b"3"),
                (b"w.a.b", b"4"), (b"w.a.b.c", b"5"), (b"w.x.y", b"6"))))
        assert bob.until_pong() == b"", bob.buf
        return {name: sorted(frames(r.until_pong())) for name, r in subs.items()}
    finally:
        for r in conns:
            r.close()


def frames(data):
    out = []
    while data:
        i = data.index(b"\r\n") + 2
        n = int(data[:i].split()[-1]) + 2 if data.startswith(b"MSG ") else 0
        out.append(data[:i + n])
        data = data[i + n:]
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_filtered_delivery(servers, target):
    got = deliveries(servers(target, "users").port)
    expect = {
        "alice": sorted([b"MSG w.ok 1 1\r\n3\r\n", b"MSG w.ok 2 1\r\n3\r\n",
                         b"MSG w.a.b 1 1\r\n4\r\n", b"MSG w.a.b 3 1\r\n4\r\n",
                         b"MSG w.a.b.c 1 1\r\n5\r\n",
                         b"MSG w.x.y 1 1\r\n6\r\n", b"MSG w.x.y 3 1\r\n6\r\n"]),
        "carol": sorted([b"MSG w.secret 1 1\r\n1\r\n", b"MSG w.q.hidden 1 1\r\n2\r\n",
                         b"MSG w.q.hidden 2 1\r\n2\r\n", b"MSG w.ok 1 1\r\n3\r\n",
                         b"MSG w.a.b.c 1 1\r\n5\r\n", b"MSG w.x.y 1 1\r\n6\r\n",
                         b"MSG w.x.y 2 1\r\n6\r\n", b"MSG w.x.y 3 1\r\n6\r\n"]),
    }
    assert got == expect, "%s delivered %r" % (target, got)


@pytest.mark.parametrize("target", TARGETS)
def test_reply_subject_needs_publish_permission(servers, target):
    # nats-server 2.9 without allow_responses: a reply goes through the publish
    # permissions like any message. alice may not publish to bob's inbox "y.inbox".
    port = servers(target, "users").port
    alice, bob = Raw(port), Raw(port)
    try:
        for r, name, lines in ((alice, "alice", b"SUB w.svc 1\r\n"),
                               (bob, "bob", b"SUB y.inbox 7\r\n")):
            r.line()
            r.send(user_connect(name) + lines)
            assert r.until_pong() == b"", r.buf
        bob.send(b"PUB w.svc y.inbox 1\r\nq\r\n")
        assert bob.until_pong() == b"", bob.buf
        assert alice.until_pong() == b"MSG w.svc 1 y.inbox 1\r\nq\r\n"
        alice.send(b"PUB y.inbox 1\r\nr\r\n")
        assert alice.until_pong() == b"-ERR 'Permissions Violation for Publish to \"y.inbox\"'\r\n"
        assert bob.until_pong() == b""
    finally:
        alice.close()
        bob.close()


def test_info_nonce_only_with_auth(servers, tmp_path):
    """With auth on, INFO carries a fresh nonce (unpadded base64url, as nats-server's
    15 characters); without auth there is none."""
    import re
    seen = set()
    for _ in range(3):
        r = Raw(servers("edgepoint", "token").port)
        info = json.loads(r.line()[5:])
        r.close()
        assert re.fullmatch(r"[A-Za-z0-9_-]{15}", info.get("nonce", "")), info
        seen.add(info["nonce"])
    assert len(seen) == 3
    from conftest import Daemon
    d = Daemon(tmp_path, name="open").start()
    try:
        r = Raw(d.port)
        info = json.loads(r.line()[5:])
        r.close()
    finally:
        d.stop()
    assert "nonce" not in info and "auth_required" not in info
