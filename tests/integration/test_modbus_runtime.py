"""Modbus nodes changed while the gateway runs: IOs and buses created, changed,
moved, disabled and deleted through the bus, bad settings reported as lastError,
a configuration reload (SIGHUP), and malformed configuration files refused with
clear errors. Simulators: pymodbus over TCP."""
import json
import signal
import time

import pytest

from conftest import Daemon, free_port, run
from mbsim import Sim, num, points, stop_clean, text, value, wait_point, wait_value


def bus_points(port, **kw):
    p = {"protocol": "tcp", "uri": "127.0.0.1:%d" % port, "pollPeriod": 100, "timeout": 500}
    p.update(kw)
    return p


@pytest.fixture
def sims():
    made = []

    def make(units=(1,)):
        s = Sim("pymodbus", port=free_port(), units=units).start()
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def ok(c, subject, payload):
    r = c.request(subject, json.dumps(payload))
    assert r == {"ok": True}, (subject, r)


def test_nodes_change_at_runtime(tmp_path, sims):
    s1, s2, s3 = sims(), sims(), sims()
    s1.set("hr", 0, [100, 101, 102, 0x0001, 0x0002])
    s2.set("hr", 0, [200])
    s3.set("hr", 0, [300])
    tree = [{"id": "A", "type": "modbus", "points": bus_points(s1.port),
             "children": [{"id": "a1", "type": "modbusIo",
                           "points": {"table": "holdingRegister", "address": 0}}]},
            {"id": "g", "type": "group", "children": [
                {"id": "G", "type": "modbus", "points": bus_points(s3.port),
                 "children": [{"id": "g1", "type": "modbusIo",
                               "points": {"table": "holdingRegister", "address": 0}}]}]}]
    d = Daemon(tmp_path, config={"nodes": tree}).start()
    c = d.client()
    try:
        wait_value(c, "A", "a1", 100)
        wait_value(c, "G", "g1", 300)  # a bus inside a group
        a_connected = points(c, "gw-test", "A")["connected"]

        # A new IO on a running bus.
        ok(c, "e.a2.A", [{"type": "nodeType", "text": "modbusIo"}])
        ok(c, "p.a2", [{"type": "table", "text": "holdingRegister"},
                       {"type": "address", "value": 1}])
        wait_value(c, "A", "a2", 101)
        # Changed: another address, then a setting the module refuses, then fixed.
        ok(c, "p.a2", [{"type": "address", "value": 2}])
        wait_value(c, "A", "a2", 102)
        ok(c, "p.a2", [{"type": "format", "text": "float"}])
        p = wait_point(c, "A", "a2", lambda p: "configuration" in text(p, "lastError"),
                       "the refusal")
        assert text(p, "lastError") == (
            "configuration: format: \"float\" is not one of bit, int16, uint16, int32, "
            "uint32, int64, uint64, float32, float64")
        ok(c, "p.a2", [{"type": "format", "text": "uint32"}, {"type": "address", "value": 3}])
        wait_value(c, "A", "a2", 0x00010002)
        assert text(points(c, "A", "a2"), "lastError") == ""
        ok(c, "p.a2", [{"type": "address", "value": 70000}])
        wait_point(c, "A", "a2", lambda p: text(p, "lastError") ==
                   "configuration: address: 70000 is not in 0..65535", "address refused")

        # Deleted: no more reads (a1, in the same range, moves on; a2 does not).
        ok(c, "p.a2", [{"type": "address", "value": 2}, {"type": "format", "text": "uint16"}])
        wait_value(c, "A", "a2", 102)
        ok(c, "e.a2.A", [{"type": "tombstone", "value": 1}])
        s1.set("hr", 0, [110, 111, 112])
        wait_value(c, "A", "a1", 110)
        wait_value(c, "A", "a1", 110)
        assert value(c, "all", "a2", deleted=True) == 102

        # A new bus, created and configured through the bus, beside the running one.
        ok(c, "e.B.gw-test", [{"type": "nodeType", "text": "modbus"}])
        ok(c, "p.B", [{"type": k, "value": v} if not isinstance(v, str) else
                      {"type": k, "text": v} for k, v in bus_points(s2.port).items()])
        ok(c, "e.b1.B", [{"type": "nodeType", "text": "modbusIo"}])
        ok(c, "p.b1", [{"type": "table", "text": "holdingRegister"},
                       {"type": "address", "value": 0}])
        wait_value(c, "B", "b1", 200)
        # Pointed at another device: the worker restarts on the new link.
        ok(c, "p.B", [{"type": "uri", "text": "127.0.0.1:%d" % s3.port}])
        wait_value(c, "B", "b1", 300)
        # Moved to bus A (new edge, then the old one deleted): read from s1 now.
        ok(c, "e.b1.A", [{"type": "nodeType", "text": "modbusIo"}])
        ok(c, "e.b1.B", [{"type": "tombstone", "value": 1}])
        wait_value(c, "A", "b1", 110)
        # Disabled, then deleted.
        ok(c, "p.B", [{"type": "disabled", "value": 1}])
        wait_point(c, "gw-test", "B", lambda p: num(p, "connected") == 0, "B disconnected")
        ok(c, "e.B.gw-test", [{"type": "tombstone", "value": 1}])
        # A group deleted takes its bus with it; restored, it comes back.
        ok(c, "e.g.gw-test", [{"type": "tombstone", "value": 1}])
        s3.set("hr", 0, [333])
        s1.set("hr", 0, [120])
        wait_value(c, "A", "a1", 120)
        wait_value(c, "A", "a1", 120)
        assert value(c, "G", "g1") == 300
        ok(c, "e.g.gw-test", [{"type": "tombstone", "value": 0}])
        wait_value(c, "G", "g1", 333)

        # None of this disturbed bus A: it never reconnected.
        bus = points(c, "gw-test", "A")
        assert bus["connected"] == a_connected
        assert num(bus, "errorCount", 0) == 0
    finally:
        stop_clean(d)


def test_reload_applies_changed_ios(tmp_path, sims):
    s = sims()
    s.set("hr", 0, [1, 2])
    tree = [{"id": "A", "type": "modbus", "points": bus_points(s.port),
             "children": [{"id": "a1", "type": "modbusIo",
                           "points": {"table": "holdingRegister", "address": 0}}]}]
    d = Daemon(tmp_path, config={"nodes": tree}).start()
    c = d.client()
    try:
        wait_value(c, "A", "a1", 1)
        tree[0]["children"][0]["points"]["address"] = 1
        tree[0]["children"].append({"id": "a2", "type": "modbusIo",
                                    "points": {"table": "holdingRegister", "address": 0,
                                               "scale": 10}})
        d.config["nodes"] = tree
        d.write_config(mtime=time.time() + 5)
        d.send_signal(signal.SIGHUP)
        wait_value(c, "A", "a1", 2)
        wait_value(c, "A", "a2", 10)
    finally:
        stop_clean(d)


BAD = [
    ({"address": 70000, "table": "holdingRegister"},
     "nodes[0].children[0].points.address: 70000 is not in 0..65535"),
    ({"address": 1, "table": "holdingRegister", "format": "float"},
     "nodes[0].children[0].points.format: \"float\" is not one of bit, int16, uint16, int32, "
     "uint32, int64, uint64, float32, float64"),
    ({"address": 1, "table": "coil", "format": "int32"},
     "nodes[0].children[0].points.format: \"int32\" is not allowed for table \"coil\" "
     "(use \"bit\")"),
    ({"address": 65535, "table": "inputRegister", "format": "float32"},
     "nodes[0].children[0].points.address: 65535 is not in 0..65534 (format \"float32\" "
     "uses 2 registers)"),
]


@pytest.mark.parametrize("io_points,message", BAD)
def test_malformed_config_is_refused(tmp_path, io_points, message):
    path = tmp_path / "edgepoint.json"
    path.write_text(json.dumps({"nodes": [{
        "id": "plc", "type": "modbus", "points": {"protocol": "tcp", "uri": "127.0.0.1:502"},
        "children": [{"id": "t1", "type": "modbusIo", "points": io_points}]}]}))
    r = run(["check-config", str(path)])
    assert r.returncode == 3
    assert r.stderr.strip() == "%s: %s" % (path, message)
    # serve refuses it the same way, before starting anything.
    r = run(["serve", "-c", str(path)])
    assert r.returncode == 3
    assert message in r.stderr
