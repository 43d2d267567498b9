"""The node and point data plane on the bus: p.<node>, e.<node>.<parent>,
nodes.<parent>.<node>, sys.<device>.info and sys.<device>.health, through a raw NATS
connection to the real daemon. Each malformed request class gets its own error."""
import json
import time

import pytest

from conftest import Daemon

TREE = [{"id": "plc", "type": "modbus", "points": {"protocol": "tcp", "uri": "127.0.0.1:5020"},
         "children": [{"id": "t1", "type": "modbusIo",
                       "points": {"table": "holdingRegister", "address": 1}}]},
        {"id": "grp", "type": "group"}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("dp"), config={"nodes": TREE, "health_interval": "200ms"})
    d.start()
    yield d
    d.stop()


@pytest.fixture
def c(gw):
    cl = gw.client()
    yield cl
    cl.close()


def node(c, subject, query=""):
    r = c.request(subject, query)
    assert "nodes" in r, r
    return r["nodes"]


def test_point_write_ack_and_read_back(c):
    t = "2026-01-02T03:04:05.123456789Z"
    assert c.request("p.t1", json.dumps([{"type": "valueSet", "value": 42.5, "time": t}])) == {"ok": True}
    [n] = node(c, "nodes.plc.t1")
    assert n["id"] == "t1" and n["type"] == "modbusIo" and n["parent"] == "plc"
    assert n["tombstone"] is False
    pts = {p["type"]: p for p in n["points"]}
    assert pts["valueSet"]["value"] == 42.5 and pts["valueSet"]["time"] == t
    assert pts["address"]["value"] == 1
    assert {p["type"] for p in n["edgePoints"]} >= {"nodeType", "tombstone"}


def test_points_are_delivered_to_subscribers(gw, c):
    w = gw.client()
    w.sub("p.t1")
    w.ping()
    payload = json.dumps([{"type": "value", "value": 7}])
    assert c.request("p.t1", payload) == {"ok": True}
    subj, _, _, _, data = w.next_msg()
    assert subj == "p.t1" and json.loads(data)[0]["value"] == 7
    w.close()


def test_older_point_loses(c):
    assert c.request("p.t1", '[{"type":"lww","value":2,"time":"2026-01-01T00:00:02Z"}]') == {"ok": True}
    assert c.request("p.t1", '[{"type":"lww","value":1,"time":"2026-01-01T00:00:01Z"}]') == {
        "ok": True, "applied": 0, "notApplied": [{
            "type": "lww", "key": "0",
            "reason": "a newer value is stored (time 2026-01-01T00:00:02.000000000Z)"}]}
    [n] = node(c, "nodes.all.t1")
    assert [p["value"] for p in n["points"] if p["type"] == "lww"] == [2]


@pytest.mark.parametrize("subject,payload,error", [
    ("p.nosuch", '[{"type":"value","value":1}]', "unknown node nosuch"),
    ("p.t1", '[{"type":"bad type","value":1}]', "points[0].type"),
    ("p.t1", '[{"type":"value","time":"yesterday"}]', "points[0].time"),
    ("p.t1", '[{"type":"value","time":"2200-01-01T00:00:00Z"}]', "ahead of this device's clock"),
    ("p.t1", '[{"type":"value",', "JSON"),
    ("p.t1", '[]', "empty"),
    ("p.t1", '{"type":"value"}', "array"),
    ("p.t1", '[{"type":"value","colour":"red"}]', "colour"),
])
def test_malformed_point_writes(c, subject, payload, error):
    r = c.request(subject, payload)
    assert set(r) == {"error"}, r
    assert error.lower() in r["error"].lower(), r


def test_create_delete_restore_node(c):
    assert c.request("e.n1.grp", '[{"type":"nodeType","text":"variable"}]') == {"ok": True}
    assert [n["id"] for n in node(c, "nodes.grp.all")] == ["n1"]
    assert c.request("p.n1", '[{"type":"value","value":3}]') == {"ok": True}
    assert c.request("e.n1.grp", '[{"type":"tombstone","value":1}]') == {"ok": True}
    assert node(c, "nodes.grp.all") == []
    [dead] = node(c, "nodes.grp.all", '{"tombstone":true}')
    assert dead["id"] == "n1" and dead["tombstone"] is True
    assert c.request("e.n1.grp", '[{"type":"tombstone","value":0}]') == {"ok": True}
    [back] = node(c, "nodes.grp.all")
    assert back["tombstone"] is False and back["points"][0]["value"] == 3


def test_move_and_cycle_refused(c):
    assert c.request("e.mv.grp", '[{"type":"nodeType","text":"group"}]') == {"ok": True}
    assert c.request("e.a1.mv", '[{"type":"nodeType","text":"group"}]') == {"ok": True}
    assert c.request("e.b1.a1", '[{"type":"nodeType","text":"group"}]') == {"ok": True}
    # a1 under its own child b1: refused, a1 stays where it was.
    r = c.request("e.a1.b1", '[{"type":"nodeType","text":"group"}]')
    assert "ancestor" in r.get("error", ""), r
    assert [n["id"] for n in node(c, "nodes.mv.all")] == ["a1"]
    assert node(c, "nodes.b1.all") == []
    # move b1 from a1 to mv: new edge, then a tombstone on the old one.
    assert c.request("e.b1.mv", '[{"type":"nodeType","text":"group"}]') == {"ok": True}
    assert c.request("e.b1.a1", '[{"type":"tombstone","value":1}]') == {"ok": True}
    assert [n["id"] for n in node(c, "nodes.mv.all")] == ["a1", "b1"]
    assert node(c, "nodes.a1.all") == []
    assert node(c, "nodes.all.b1")[0]["parent"] == "mv"


@pytest.mark.parametrize("subject,payload,error", [
    ("e.n2.grp", '[{"type":"tombstone","value":0}]', "needs a nodeType"),
    ("e.n2.nosuch", '[{"type":"nodeType","text":"variable"}]', "unknown parent nosuch"),
    ("e.n2.grp", '[{"type":"nodeType"}]', "nodeType needs the type as text"),
    ("e.n2.grp", '[{"type":"tombstone","value":2}]', "not 0 or 1"),
    ("e.n2.n2", '[{"type":"nodeType","text":"variable"}]', "own parent"),
    ("e.n2.grp", 'nope', "JSON"),
])
def test_malformed_edge_writes(c, subject, payload, error):
    r = c.request(subject, payload)
    assert set(r) == {"error"}, r
    assert error.lower() in r["error"].lower(), r


def test_query_children_by_type(c):
    assert [n["id"] for n in node(c, "nodes.plc.all", '{"type":"modbusIo"}')] == ["t1"]
    assert node(c, "nodes.plc.all", '{"type":"group"}') == []
    dev = node(c, "nodes.root.gw-test")
    assert dev[0]["type"] == "device"
    top = {n["id"] for n in node(c, "nodes.gw-test.all")}
    assert {"plc", "grp"} <= top


@pytest.mark.parametrize("subject,payload,error", [
    ("nodes.all.nosuch", "", "unknown node nosuch"),
    ("nodes.grp.t1", "", "t1 is not a child of grp"),
    ("nodes.nosuch.all", "", "unknown node nosuch"),
    ("nodes.all.all", "", "name a parent"),
    ("nodes.plc.all", '{"kind":"x"}', "unknown member"),
    ("nodes.plc.all", '{"type":5}', "query.type"),
    ("nodes.plc.all", '[1', "not a JSON object"),
])
def test_malformed_queries(c, subject, payload, error):
    r = c.request(subject, payload)
    assert set(r) == {"error"}, r
    assert error.lower() in r["error"].lower(), r


def test_sys_info_and_health(gw, c):
    c.request("p.t1", '[{"type":"value","value":1}]')
    info = c.request("sys.gw-test.info", "")
    assert info["device"] == "gw-test" and info["version"]
    assert info["pointsWritten"] >= 1 and info["busConnections"] >= 1
    assert info["storeBytes"] > 0 and info["uptime"] >= 0
    assert "errors" in info
    c.sub("sys.gw-test.health")
    t0 = time.monotonic()
    subj, _, _, _, data = c.next_msg(timeout=10)
    assert subj == "sys.gw-test.health"
    assert json.loads(data)["device"] == "gw-test"
    assert time.monotonic() - t0 < 5


def test_values_survive_restart(tmp_path):
    d = Daemon(tmp_path, config={"nodes": TREE}).start()
    c = d.client()
    assert c.request("p.t1", '[{"type":"valueSet","value":12.25}]') == {"ok": True}
    assert c.request("e.k9.grp", '[{"type":"nodeType","text":"variable"}]') == {"ok": True}
    c.close()
    d.stop()
    d.start()
    c = d.client()
    [n] = node(c, "nodes.plc.t1")
    assert [p["value"] for p in n["points"] if p["type"] == "valueSet"] == [12.25]
    assert [x["id"] for x in node(c, "nodes.grp.all")] == ["k9"]
    c.close()
    d.stop()
