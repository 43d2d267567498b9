"""Security: a control byte in a subject must not slip past the permission check
(issue 9, item 2).

User "hmi" may publish "p.>" except "p.pump". The permission check reads the counted
bytes of the subject; in-process subscribers (the data plane, and through it the
Modbus module) read C strings. "p.pump\\x00x" passed the check and reached them as
"p.pump", and the simulator's coil was switched. The bus now refuses every PUB/HPUB
whose subject or reply holds a control byte (0x00-0x1f, 0x7f) with
-ERR 'Invalid Publish Subject', and every such SUB with -ERR 'Invalid Subject'; the
connection stays, as for other invalid subjects.

The simulator is pymodbus; the check that nothing was written is ordered, not timed:
after the refused PUBs a permitted write to another coil is sent on the same
connection and waited for, so the module has already seen whatever came before it.
"""
import json

import pytest

from conftest import Daemon, NatsClient, free_port, wait_for
from mbsim import Sim, stop_clean, wait_value
from peers import Raw, password_hash

PW = "hmi pw 7"


def connect(user, password):
    o = {"verbose": False, "pedantic": False, "headers": True, "user": user, "pass": password}
    return b"CONNECT " + json.dumps(o).encode() + b"\r\n"


@pytest.fixture
def site(tmp_path):
    sim = Sim("pymodbus", port=free_port()).start()
    ios = [{"id": "pump", "type": "modbusIo", "points": {"table": "coil", "address": 3}},
           {"id": "valve", "type": "modbusIo", "points": {"table": "coil", "address": 4}}]
    nodes = [{"id": "plc", "type": "modbus",
              "points": {"protocol": "tcp", "uri": "127.0.0.1:%d" % sim.port,
                         "pollPeriod": 100, "timeout": 500},
              "children": ios}]
    d = Daemon(tmp_path, config={"nodes": nodes})
    d.config["bus"]["auth"] = {"users": [
        {"user": "hmi", "password_hash": password_hash(PW),
         "permissions": {"publish": {"allow": ["p.>"], "deny": ["p.pump"]},
                         "subscribe": {"allow": ["_INBOX.hmi.>"]}}},
        {"user": "admin", "password_hash": password_hash("admin pw")}]}
    d.write_config()
    d.start()
    admin = NatsClient(d.port, connect={"user": "admin", "pass": "admin pw"})
    wait_value(admin, "plc", "pump", 0)
    wait_value(admin, "plc", "valve", 0)
    yield sim, d, admin
    admin.close()
    stop_clean(d)
    sim.stop()


def hmi(d):
    r = Raw(d.port)
    assert r.line().startswith(b"INFO ")
    r.send(connect("hmi", PW) + b"SUB _INBOX.hmi.> 1\r\n")
    assert r.until_pong() == b""
    return r


SET_ON = b'[{"type":"valueSet","value":1}]'


def pub(subject, reply, payload):
    r = b" " + reply if reply else b""
    return b"PUB " + subject + r + b" %d\r\n" % len(payload) + payload + b"\r\n"


SPELLINGS = [b"p.pump\x00x", b"p.pump\x00", b"p.pump\x00.x", b"p.pump\x01", b"p.pump\x1b[0m",
             b"p.pump\x7f", b"p.pump\x0b", b"p.pump\x0c"]


def test_control_bytes_do_not_bypass_the_deny_list(site):
    sim, d, admin = site
    r = hmi(d)
    # The plain subject is denied, as before.
    r.send(pub(b"p.pump", b"_INBOX.hmi.1", SET_ON))
    assert r.until_pong() == b"-ERR 'Permissions Violation for Publish to \"p.pump\"'\r\n"
    for s in SPELLINGS:
        r.send(pub(s, b"_INBOX.hmi.2", SET_ON))
        got = r.until_pong()
        assert got == b"-ERR 'Invalid Publish Subject'\r\n", (s, got)
    # HPUB too, and a reply subject with a NUL in it.
    hdr = b"NATS/1.0\r\n\r\n"
    r.send(b"HPUB p.pump\x00x _INBOX.hmi.3 %d %d\r\n" % (len(hdr), len(hdr) + len(SET_ON))
           + hdr + SET_ON + b"\r\n")
    assert r.until_pong() == b"-ERR 'Invalid Publish Subject'\r\n"
    # A permitted write on the same connection, after all of them: once it is on the
    # device, the module has seen everything sent before it.
    r.send(pub(b"p.valve", b"_INBOX.hmi.4", SET_ON))
    assert r.line() == b"MSG _INBOX.hmi.4 1 11\r\n"
    assert r.exactly(13) == b'{"ok":true}\r\n'
    wait_for(lambda: sim.get("co", 4) == [1], 20, "valve written")
    assert sim.get("co", 3) == [0], "the pump coil was switched"
    wait_value(admin, "plc", "valve", 1)
    assert wait_value(admin, "plc", "pump", 0) is not None
    r.close()


def test_control_bytes_refused_without_auth_and_in_sub(tmp_path):
    d = Daemon(tmp_path).start()
    try:
        r = Raw(d.port)
        assert r.line().startswith(b"INFO ")
        r.send(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB w.> 1\r\n')
        assert r.until_pong() == b""
        r.send(pub(b"w.a\x00b", None, b"hi"))
        assert r.until_pong() == b"-ERR 'Invalid Publish Subject'\r\n"
        r.send(pub(b"w.a", b"r\x00x", b"hi"))
        assert r.until_pong() == b"-ERR 'Invalid Publish Subject'\r\n"
        r.send(b"SUB w.\x00> 2\r\n")
        assert r.until_pong() == b"-ERR 'Invalid Subject'\r\n"
        r.send(b"SUB w.b q\x01 3\r\n")
        assert r.until_pong() == b"-ERR 'Invalid Subject'\r\n"
        # The connection is still good: a clean PUB is delivered to the wildcard SUB.
        r.send(pub(b"w.a", None, b"hi"))
        assert r.until_pong() == b"MSG w.a 1 2\r\nhi\r\n"
        r.close()
    finally:
        assert d.stop() == 0
