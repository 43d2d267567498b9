"""The NATS client protocol byte for byte, in the style of Mosquitto's broker tests:
open a TCP socket, send exact bytes, compare the exact bytes that come back, and
whether the server then closes the connection.

Every conversation runs against the real nats-server and against edgepoint's bus,
both with the same limits (peers.LIMITS: max_payload 4096, max_control_line 1024).
Each case carries what nats-server 2.9.10 (Debian 12) actually sends, recorded from
it; the nats-server run re-checks that record, and the edgepoint run checks that the
bus sends the same bytes as the nats-server of the same session. INFO lines differ by
nature (ids, host, version) and are compared field by field instead.

An open conversation ends with one extra PING: everything the server sends before
the answering PONG is the transcript, so no test waits on a timer. A closing one
ends when the server closes (and fails after 5 s if it does not).
"""
import json

import pytest

from peers import LIMITS, Raw, server_pool  # noqa: F401

TARGETS = ("nats-server", "edgepoint")

C = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
CV = b'CONNECT {"verbose":true,"pedantic":false}\r\n'
CP = b'CONNECT {"verbose":false,"pedantic":true}\r\n'
CH = b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n'
MP = LIMITS["max_payload"]
MCL = LIMITS["max_control_line"]
HDR = b"NATS/1.0\r\nX-Multi: one\r\nX-Multi: two\r\n\r\n"  # 40 bytes

OPEN, CLOSED = "open", "closed"


class Case:
    """One conversation: the chunks sent (each with its own write), what nats-server
    sends back after its INFO, and whether it then closes. unordered compares the
    protocol frames as a multiset (delivery order across subscriptions is not part
    of the protocol)."""

    def __init__(self, name, sends, nats_server_sends, state=OPEN, unordered=False):
        self.name = name
        self.sends = sends
        self.expect = nats_server_sends
        self.state = state
        self.unordered = unordered


CASES = [
    Case("ping_pong", [C, b"PING\r\n"],
         b"PONG\r\n" b"PONG\r\n"),
    Case("lower_case_operations", [b'connect {"verbose":false}\r\n',
                                   b"sub foo 1\r\npub foo 1\r\nx\r\nping\r\n"],
         b"MSG foo 1 1\r\nx\r\n" b"PONG\r\n" b"PONG\r\n"),
    Case("pong_from_client_is_ignored", [C, b"PONG\r\n"],
         b"PONG\r\n"),
    Case("verbose_connect_then_pub_ok", [CV, b"PUB foo 5\r\nhello\r\n"],
         b"+OK\r\n" b"+OK\r\n" b"PONG\r\n"),
    Case("verbose_sub_unsub_ok", [CV, b"SUB foo 1\r\nUNSUB 1\r\n"],
         b"+OK\r\n" b"+OK\r\n" b"+OK\r\n" b"PONG\r\n"),
    Case("verbose_error_has_no_ok", [CV, b"SUB foo..bar 1\r\n"],
         b"+OK\r\n" b"-ERR 'Invalid Subject'\r\n" b"PONG\r\n"),
    Case("sub_pub_msg", [C, b"SUB foo 1\r\nPUB foo 5\r\nhello\r\n"],
         b"MSG foo 1 5\r\nhello\r\n" b"PONG\r\n"),
    Case("pub_with_reply", [C, b"SUB foo 1\r\nPUB foo bar.baz 2\r\nhi\r\n"],
         b"MSG foo 1 bar.baz 2\r\nhi\r\n" b"PONG\r\n"),
    Case("empty_payload", [C, b"SUB foo 1\r\nPUB foo 0\r\n\r\n"],
         b"MSG foo 1 0\r\n\r\n" b"PONG\r\n"),
    Case("payload_containing_crlf", [C, b"SUB foo 1\r\nPUB foo 6\r\na\r\nb\r\n\r\n"],
         b"MSG foo 1 6\r\na\r\nb\r\n\r\n" b"PONG\r\n"),
    Case("tabs_and_bare_lf_are_accepted", [C, b"SUB\tfoo\t1\nPUB foo  1\r\ny\r\n"],
         b"MSG foo 1 1\r\ny\r\n" b"PONG\r\n"),
    Case("split_into_single_bytes",
         [C] + [bytes([b]) for b in b"SUB foo 1\r\nPUB foo 5\r\nhello\r\n"],
         b"MSG foo 1 5\r\nhello\r\n" b"PONG\r\n"),
    Case("payload_of_exactly_max_payload",
         [C, b"SUB foo 1\r\nPUB foo %d\r\n" % MP + b"p" * MP + b"\r\n"],
         b"MSG foo 1 %d\r\n" % MP + b"p" * MP + b"\r\n" b"PONG\r\n"),
    # Under a prefix: the daemon's own modules publish too (sys.<device>.health ...),
    # and a bare ">" would see their messages, which nats-server does not have.
    Case("wildcards",
         [C, b"SUB w.foo.* 1\r\nSUB w.foo.> 2\r\nSUB w.> 3\r\nSUB w.* 4\r\n"
             b"SUB w.foo.*.baz 5\r\nPUB w.foo.bar 1\r\nx\r\nPUB w.foo.bar.baz 1\r\ny\r\n"
             b"PUB w.foo 1\r\nz\r\nPUB w.bar.baz 1\r\nv\r\nPUB x.foo 1\r\nu\r\n"],
         b"MSG w.foo.bar 1 1\r\nx\r\n" b"MSG w.foo.bar 2 1\r\nx\r\n"
         b"MSG w.foo.bar 3 1\r\nx\r\n"
         b"MSG w.foo.bar.baz 2 1\r\ny\r\n" b"MSG w.foo.bar.baz 3 1\r\ny\r\n"
         b"MSG w.foo.bar.baz 5 1\r\ny\r\n"
         b"MSG w.foo 3 1\r\nz\r\n" b"MSG w.foo 4 1\r\nz\r\n"
         b"MSG w.bar.baz 3 1\r\nv\r\n"
         b"PONG\r\n", unordered=True),
    Case("echo_false_gets_no_own_messages",
         [b'CONNECT {"verbose":false,"echo":false}\r\n', b"SUB foo 1\r\nPUB foo 2\r\nhi\r\n"],
         b"PONG\r\n"),
    Case("unsub_with_max",
         [C, b"SUB foo 1\r\nUNSUB 1 2\r\n"
             b"PUB foo 1\r\na\r\nPUB foo 1\r\nb\r\nPUB foo 1\r\nc\r\n"],
         b"MSG foo 1 1\r\na\r\n" b"MSG foo 1 1\r\nb\r\n" b"PONG\r\n"),
    Case("unsub_with_max_already_reached",
         [C, b"SUB foo 1\r\nPUB foo 1\r\nx\r\nUNSUB 1 1\r\nPUB foo 1\r\ny\r\n"],
         b"MSG foo 1 1\r\nx\r\n" b"PONG\r\n"),
    Case("unsub_now", [C, b"SUB foo 1\r\nUNSUB 1\r\nPUB foo 1\r\ny\r\n"],
         b"PONG\r\n"),
    Case("unsub_unknown_sid_is_ignored", [C, b"UNSUB 99\r\n"],
         b"PONG\r\n"),
    Case("hpub_hmsg_multi_value_header",
         [CH, b"SUB foo 1\r\nHPUB foo %d %d\r\n" % (len(HDR), len(HDR) + 4) + HDR + b"body\r\n"],
         b"HMSG foo 1 40 44\r\n" + HDR + b"body\r\n" b"PONG\r\n"),
    Case("hpub_with_reply",
         [CH, b"SUB foo 1\r\nHPUB foo r.1 %d %d\r\n" % (len(HDR), len(HDR) + 2) + HDR + b"hi\r\n"],
         b"HMSG foo 1 r.1 40 42\r\n" + HDR + b"hi\r\n" b"PONG\r\n"),
    Case("no_responders_503",
         [CH, b"SUB _INBOX.x 1\r\nPUB nobody _INBOX.x 2\r\nhi\r\n"],
         b"HMSG _INBOX.x 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n" b"PONG\r\n"),
    Case("no_503_without_no_responders",
         [b'CONNECT {"verbose":false,"headers":true}\r\n',
          b"SUB _INBOX.x 1\r\nPUB nobody _INBOX.x 2\r\nhi\r\n"],
         b"PONG\r\n"),
    Case("no_responders_requires_headers",
         [b'CONNECT {"verbose":false,"no_responders":true}\r\n'],
         b"-ERR 'no responders requires headers support'\r\n", CLOSED),
    Case("max_payload_violation", [C, b"PUB foo %d\r\n" % (MP + 1)],
         b"-ERR 'Maximum Payload Violation'\r\n", CLOSED),
    Case("hpub_max_payload_violation", [CH, b"HPUB foo 12 %d\r\n" % (MP + 1)],
         b"-ERR 'Maximum Payload Violation'\r\n", CLOSED),
    Case("unknown_operation", [C, b"FOO bar\r\n"],
         b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    Case("payload_longer_than_declared", [C, b"PUB foo 2\r\nhello\r\n"],
         b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    Case("invalid_subjects_keep_the_connection",
         [C, b"SUB foo..bar 1\r\nSUB foo. 2\r\nSUB .foo 3\r\nSUB foo.>.bar 4\r\n"
             b"SUB >.foo 5\r\nSUB ok 9\r\nPUB ok 1\r\nx\r\n"],
         b"-ERR 'Invalid Subject'\r\n" * 5 + b"MSG ok 9 1\r\nx\r\n" b"PONG\r\n"),
    Case("pedantic_publish_to_wildcard",
         [CP, b"PUB foo.* 2\r\nhi\r\nPUB foo.> 2\r\nhi\r\nPUB foo..bar 2\r\nhi\r\n"],
         b"-ERR 'Invalid Publish Subject'\r\n" * 3 + b"PONG\r\n"),
    # nats-server checks the limit on a control line that has not ended yet (one that
    # is still arriving), and its text here is in lower case.
    Case("max_control_line_exceeded", [C, b"PUB " + b"a" * (2 * MCL)],
         b"-ERR 'maximum control line exceeded'\r\n", CLOSED),
    Case("long_control_line_within_the_limit",
         [C, b"SUB " + b"a" * (MCL - 100) + b" 1\r\nPUB " + b"a" * (MCL - 100) + b" 1\r\nx\r\n"],
         b"MSG " + b"a" * (MCL - 100) + b" 1 1\r\nx\r\n" b"PONG\r\n"),
]


def frames(data):
    """Splits a server transcript into protocol frames (a MSG/HMSG with its payload)."""
    out = []
    while data:
        if b"\r\n" not in data:
            return out + [data]  # an incomplete line stays one (unequal) frame
        i = data.index(b"\r\n") + 2
        line = data[:i]
        n = 0
        if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
            last = line.split()[-1]
            n = int(last) + 2 if last.isdigit() else 0
        out.append(data[:i + n])
        data = data[i + n:]
    return out


def converse(port, case):
    """Runs case against the server on port; returns (INFO object, transcript, state)."""
    r = Raw(port)
    try:
        info = r.line()
        assert info.startswith(b"INFO {") and info.endswith(b"\r\n"), info
        for chunk in case.sends:
            r.send(chunk)
        if case.state == CLOSED:
            closed = r.wait_closed(5)
            return json.loads(info[5:]), r.buf, CLOSED if closed else OPEN
        r.send(b"PING\r\n")
        pings = sum(c.upper().count(b"PING\r\n") for c in case.sends) + 1
        while not (r.buf.count(b"PONG\r\n") >= pings and r.buf.endswith(b"PONG\r\n")):
            if not r.fill(5):
                return json.loads(info[5:]), r.buf, CLOSED if r.closed else "timed out"
        return json.loads(info[5:]), r.buf, OPEN
    finally:
        r.close()


def same(case, a, b):
    if case.unordered:
        return sorted(frames(a)) == sorted(frames(b))
    return a == b


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_raw(server_pool, target, case):
    srv = server_pool.get(target)
    _, got, state = converse(srv.port, case)
    detail = "%s sent %r, then the connection was %s" % (target, got, state)
    server_pool.assert_alive(target, "plain", detail)
    assert same(case, got, case.expect), detail + "\nrecorded from nats-server: %r" % case.expect
    assert state == case.state, detail + "; nats-server leaves it " + case.state
    if target != "nats-server":
        ns = server_pool.get("nats-server")
        _, ns_got, ns_state = converse(ns.port, case)
        assert same(case, got, ns_got) and state == ns_state, (
            "%s and this session's nats-server disagree:\n%r (%s)\n%r (%s)"
            % (target, got, state, ns_got, ns_state))


@pytest.mark.parametrize("target", TARGETS)
def test_info(server_pool, target):
    # nats-server 2.9.10 sends, on one line ending in " \r\n":
    # INFO {"server_id":"N...","server_name":"N...","version":"2.9.10","proto":1,
    #       "go":"go1.19.8","host":"127.0.0.1","port":P,"headers":true,
    #       "max_payload":4096,"client_id":4,"client_ip":"127.0.0.1"}
    srv = server_pool.get(target)
    r = Raw(srv.port)
    try:
        line = r.line()
    finally:
        r.close()
    server_pool.assert_alive(target, "plain", line)
    assert line.startswith(b"INFO {") and line.endswith(b"\r\n"), line
    info = json.loads(line[5:])
    assert isinstance(info.get("server_id"), str) and info["server_id"], info
    assert isinstance(info.get("version"), str) and info["version"], info
    assert info.get("proto") == 1, info
    assert info.get("headers") is True, info
    assert info.get("max_payload") == MP, info
    assert not info.get("auth_required"), info
    assert not info.get("tls_required"), info


@pytest.mark.parametrize("target", TARGETS)
def test_queue_group_delivers_each_message_once(server_pool, target):
    # nats-server sends each of the six payloads once to sid 4 and once to one of
    # sids 1..3, chosen at random: for example
    # MSG q 4 1\r\na\r\n MSG q 2 1\r\na\r\n MSG q 4 1\r\nb\r\n MSG q 1 1\r\nb\r\n ...
    payloads = [b"a", b"b", b"c", b"d", b"e", b"f"]
    case = Case("queue", [C, b"SUB q g 1\r\nSUB q g 2\r\nSUB q g 3\r\nSUB q 4\r\n"
                            + b"".join(b"PUB q 1\r\n%s\r\n" % p for p in payloads)], None)
    srv = server_pool.get(target)
    _, got, state = converse(srv.port, case)
    server_pool.assert_alive(target, "plain", got)
    assert state == OPEN, got
    fs = frames(got)
    assert fs[-1] == b"PONG\r\n", fs
    plain = [f for f in fs[:-1] if f.startswith(b"MSG q 4 1\r\n")]
    group = [f for f in fs[:-1] if f not in plain]
    assert [f[-3:-2] for f in plain] == payloads, fs
    assert sorted(f[-3:-2] for f in group) == payloads, fs
    for f in group:
        assert f[:8] in (b"MSG q 1 ", b"MSG q 2 ", b"MSG q 3 ") and f[8:] == b"1\r\n" + f[-3:], f
