"""Configuration comes down: writes made through the cloud reach the gateway (also
after it was offline) and take effect, they are not echoed back up, and conflicting
edits on both sides converge by last-write-wins."""
import pytest

from conftest import free_port, wait_for
from mbsim import Sim
from sync_peers import (stop_peers,  # noqa: F401 (autouse)
                        Cloud, JsServer, bus, edge, node_points, ns_time, uplinked_points,
                        wait_value, write_points)


@pytest.fixture
def fleet(tmp_path):
    js = JsServer(tmp_path / "nats").start()
    cloud = Cloud(tmp_path, js.url).start()
    yield js, cloud
    cloud.stop()
    js.stop()


def test_cloud_write_reaches_the_edge_once(tmp_path, fleet):
    js, cloud = fleet
    gw = edge(tmp_path, "gw1", js.url)
    capi = js.client()
    c = bus(gw)
    # The cloud knows v once the snapshot has arrived.
    wait_value(capi, "d.gw1.nodes.all.v", "seed", 0)
    t = ns_time(7)
    write_points(capi, "v", [{"type": "x", "time": t, "value": 5, "origin": "ops"}],
                 subject="d.gw1.p.v")
    p = wait_value(c, "nodes.all.v", "x", 5)
    assert p["time"] == t and p["origin"] == "ops"
    # The unqualified form works for an id only gw1 has ("v" is unique in this fleet).
    write_points(capi, "v", [{"type": "x", "value": 6}], subject="p.v")
    wait_value(c, "nodes.all.v", "x", 6)
    # A write without a time got one time, the same on both sides.
    assert node_points(c, "nodes.all.v")[("x", "0")]["time"] == \
        node_points(capi, "d.gw1.nodes.all.v")[("x", "0")]["time"]
    # Nothing the cloud wrote came back up as a change of the gateway.
    write_points(c, "v", [{"type": "marker", "time": ns_time(9), "value": 1}])
    wait_for(lambda: [p for p in uplinked_points(capi, "EP_UP", "gw1") if p[1] == "marker"],
             timeout=20, what="the marker")
    assert not [p for p in uplinked_points(capi, "EP_UP", "gw1") if p[1] == "x"]
    # Errors of the gateway's data plane come back as they are.
    r = capi.js("d.gw1.p.nosuch", [{"type": "x", "value": 1}])
    assert r == {"error": "unknown node nosuch"}
    r = capi.js("d.gw1.p.v", [{"type": "x", "value": "high"}])
    assert "value" in r["error"]
    c.close()
    assert gw.stop() == 0


def test_change_made_while_offline_arrives_and_takes_effect(tmp_path, fleet):
    js, cloud = fleet
    sim = Sim("pymodbus", port=free_port()).start()
    try:
        sim.set("hr", 0, [11])
        plc = {"id": "plc", "type": "modbus",
               "points": {"protocol": "tcp", "uri": "127.0.0.1:%d" % sim.port,
                          "pollPeriod": 86400000, "timeout": 500},
               "children": [{"id": "r0", "type": "modbusIo",
                             "points": {"table": "holdingRegister", "address": 0}}]}
        gw = edge(tmp_path, "gw1", js.url, nodes=[plc])
        capi = js.client()
        wait_value(capi, "d.gw1.nodes.all.r0", "value", 11)  # polled, then uplinked
        assert gw.stop() == 0

        # Offline: the cloud shortens the poll period and the register changes.
        write_points(capi, "plc", [{"type": "pollPeriod", "value": 100}], subject="d.gw1.p.plc")
        sim.set("hr", 0, [22])
        before = sim.requests()

        gw.start()
        c = bus(gw)
        wait_value(c, "nodes.all.plc", "pollPeriod", 100)
        wait_value(c, "nodes.all.r0", "value", 22)  # a daily poll would not have seen it
        wait_for(lambda: sim.requests() >= before + 10, timeout=20,
                 what="polls every 100 ms")
        wait_value(capi, "d.gw1.nodes.all.r0", "value", 22)
        c.close()
        assert gw.stop() == 0
    finally:
        sim.stop()


def test_conflicting_edits_converge(tmp_path, fleet):
    js, cloud = fleet
    gw = edge(tmp_path, "gw1", js.url)
    capi = js.client()
    c = bus(gw)
    wait_value(capi, "d.gw1.nodes.all.v", "seed", 0)

    # The gateway goes offline: its sync now points at a port where nobody listens.
    write_points(c, "sync", [{"type": "uri", "text": "nats://127.0.0.1:%d" % free_port()}])
    wait_for(lambda: node_points(c, "nodes.all.sync").get(("connected", "0"), {})
             .get("value") == 0, timeout=10, what="the link down")

    # Both sides edit a and b; the later time wins each, whoever wrote it.
    write_points(c, "v", [{"type": "a", "time": ns_time(20), "value": 1, "origin": "edge"},
                          {"type": "b", "time": ns_time(31), "value": 1, "origin": "edge"},
                          {"type": "c", "time": ns_time(40), "value": 1, "origin": "edge"}])
    write_points(capi, "v", [{"type": "a", "time": ns_time(21), "value": 2, "origin": "cloud"},
                             {"type": "b", "time": ns_time(30), "value": 2, "origin": "cloud"},
                             {"type": "c", "time": ns_time(40), "value": 2, "origin": "cloud"}],
                 subject="d.gw1.p.v")

    # Back online.
    write_points(c, "sync", [{"type": "uri", "text": js.url}])
    want = {"a": 2, "b": 1, "c": 1}  # c: the same time, and "edge" > "cloud"
    for t, v in want.items():
        wait_value(c, "nodes.all.v", t, v)
        wait_value(capi, "d.gw1.nodes.all.v", t, v)
    e, k = node_points(c, "nodes.all.v"), node_points(capi, "d.gw1.nodes.all.v")
    for t in want:
        assert e[(t, "0")] == k[(t, "0")]
    c.close()
    assert gw.stop() == 0
