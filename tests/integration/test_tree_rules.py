"""The tree keeps its invariants at runtime, not only in the configuration file: a node
has one live parent (a second live edge is a move, and so is a reload that moves a
node in the file), runtime edges follow the file's node-type rules, the device node
cannot be deleted or moved, `export` can always print what the store holds, and a
file dated in the future cannot freeze its points. Field devices: pymodbus
simulators over TCP."""
import calendar
import json
import signal
import time

import pytest

from conftest import Daemon, free_port, run, wait_for
from mbsim import Sim, stop_clean, wait_value


def bus(port):
    return {"protocol": "tcp", "uri": "127.0.0.1:%d" % port, "pollPeriod": 100,
            "timeout": 500}


def pump(address=100):
    return {"id": "pump", "type": "modbusIo",
            "points": {"table": "holdingRegister", "address": address}}


def ok(c, subject, payload):
    r = c.request(subject, json.dumps(payload))
    assert r == {"ok": True}, (subject, r)


def refused(c, subject, payload):
    r = c.request(subject, json.dumps(payload))
    assert set(r) == {"error"}, (subject, r)
    return r["error"]


def children(c, parent):
    r = c.request("nodes.%s.all" % parent, "")
    assert "nodes" in r, r
    return sorted(n["id"] for n in r["nodes"])


def ep(d, *args):
    return run(list(args) + ["-s", "nats://127.0.0.1:%d" % d.port])


def export_ok(d):
    r = ep(d, "export")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def where(cfg, node_id):
    """The id of node_id's parent in an exported file (the device id at the top)."""
    def walk(nodes, parent):
        for n in nodes:
            if n["id"] == node_id:
                yield parent
            yield from walk(n.get("children", []), n["id"])
    return list(walk(cfg["nodes"], cfg["device_id"]))


@pytest.fixture
def sims():
    made = []

    def make():
        s = Sim("pymodbus", port=free_port()).start()
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def test_second_edge_moves_and_value_set_reaches_one_bus(tmp_path, sims):
    s1, s2 = sims(), sims()
    s1.set("hr", 100, [11])
    s2.set("hr", 100, [22])
    tree = [{"id": "plc1", "type": "modbus", "points": bus(s1.port), "children": [pump()]},
            {"id": "plc2", "type": "modbus", "points": bus(s2.port)}]
    d = Daemon(tmp_path, config={"nodes": tree}).start()
    c = d.client()
    try:
        wait_value(c, "plc1", "pump", 11)
        # The new edge alone moves it: one live parent, at once.
        ok(c, "e.pump.plc2", [{"type": "nodeType", "text": "modbusIo"}])
        assert children(c, "plc1") == []
        assert children(c, "plc2") == ["pump"]
        wait_value(c, "plc2", "pump", 22)
        # A valueSet goes to plc2's device only.
        ok(c, "p.pump", [{"type": "valueSet", "value": 42}])
        wait_for(lambda: s2.get("hr", 100) == [42], timeout=20, what="42 on plc2's device")
        wait_value(c, "plc2", "pump", 42)
        assert s1.get("hr", 100) == [11]
        assert where(export_ok(d), "pump") == ["plc2"]
        # The client's tombstone on the old edge (the old two-step move) leaves the
        # IO where it is, still polled.
        ok(c, "e.pump.plc1", [{"type": "tombstone", "value": 1}])
        s2.set("hr", 100, [23])
        wait_value(c, "plc2", "pump", 23)
        assert children(c, "plc2") == ["pump"]
    finally:
        c.close()
        stop_clean(d)


def test_reload_moves_a_node(tmp_path):
    t = time.time()
    tree = [{"id": "plc1", "type": "modbus", "points": bus(free_port()), "children": [pump()]},
            {"id": "plc2", "type": "modbus", "points": bus(free_port())}]
    d = Daemon(tmp_path, config={"nodes": tree})
    d.write_config(mtime=t - 100)
    d.start()
    c = d.client()
    try:
        assert children(c, "plc1") == ["pump"]
        tree[1]["children"] = tree[0].pop("children")
        d.config["nodes"] = tree
        d.write_config(mtime=t - 50)
        d.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in d.output(), what="the reload")
        assert children(c, "plc1") == []
        assert children(c, "plc2") == ["pump"]
        assert where(export_ok(d), "pump") == ["plc2"]
        # A restart with the same file changes nothing.
        c.close()
        stop_clean(d)
        d.start()
        c = d.client()
        assert children(c, "plc1") == [] and children(c, "plc2") == ["pump"]
    finally:
        c.close()
        stop_clean(d)


def test_file_that_conflicts_with_newer_runtime_moves(tmp_path):
    """A file dated before a runtime move, whose placement would now close a cycle:
    that node is skipped with a warning, the rest applies, and the gateway starts."""
    t = time.time()
    tree = [{"id": "A", "type": "group"}, {"id": "B", "type": "group"}]
    d = Daemon(tmp_path, config={"nodes": tree})
    d.write_config(mtime=t - 100)
    d.start()
    c = d.client()
    try:
        ok(c, "e.A.B", NT("group"))  # now: later than both files
        assert children(c, "B") == ["A"]
        d.config["nodes"] = [{"id": "A", "type": "group", "children": [
            {"id": "B", "type": "group"}, {"id": "C", "type": "variable"}]}]
        d.write_config(mtime=t - 50)
        c.close()
        stop_clean(d)
        d.start()
        c = d.client()
        assert 'edgepoint.json: node "B" under "A" not applied: move would create a cycle ' \
               "(the store's tree, changed at runtime, does not allow it)" in d.output()
        assert children(c, "B") == ["A"] and children(c, "A") == ["C"]
        assert where(export_ok(d), "A") == ["B"]
    finally:
        c.close()
        stop_clean(d)


TREE = [{"id": "plc", "type": "modbus", "points": bus(5020),
         "children": [{"id": "t1", "type": "modbusIo",
                       "points": {"table": "holdingRegister", "address": 1}}]},
        {"id": "vars", "type": "group",
         "children": [{"id": "v1", "type": "variable", "points": {"x": 1}}]}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("tree"), config={"nodes": TREE})
    d.start()
    yield d
    stop_clean(d)


@pytest.fixture
def c(gw):
    cl = gw.client()
    yield cl
    cl.close()


NT = lambda t: [{"type": "nodeType", "text": t}]  # noqa: E731

RUNTIME_REFUSED = [
    ("e.all.vars", NT("variable"), '"all" is reserved (nodes.<parent>.all lists children)'),
    ("e.x.all", NT("variable"), '"all" is reserved (nodes.<parent>.all lists children)'),
    ("e.root.vars", NT("variable"), '"root" is reserved (the parent of the device node)'),
    ("e.x.vars", NT("banana"),
     'edgePoints[0]: nodeType "banana" is not a node type (one of modbus, modbusIo, gpio, '
     'rule, condition, action, actionInactive, sync, user, group, variable)'),
    ("e.x.vars", NT("device"), 'edgePoints[0]: x: nodeType "device" is the device node\'s alone'),
    ("e.x.plc", NT("variable"),
     'x may not be under plc: their node types do not allow it (docs/config.md, "Tree rules")'),
    ("e.x.vars", NT("modbusIo"),
     'x may not be under vars: their node types do not allow it (docs/config.md, "Tree rules")'),
    ("e.x.gw-test", NT("modbusIo"),
     'x may not be under gw-test: their node types do not allow it (docs/config.md, '
     '"Tree rules")'),
    # A bus with an IO cannot become a group, nor an IO a variable under its bus.
    ("e.plc.gw-test", NT("group"),
     'plc may not be under gw-test: their node types do not allow it (docs/config.md, '
     '"Tree rules")'),
    ("e.t1.plc", NT("variable"),
     't1 may not be under plc: their node types do not allow it (docs/config.md, '
     '"Tree rules")'),
    # A move to a parent whose type does not take the node.
    ("e.v1.plc", NT("variable"),
     'v1 may not be under plc: their node types do not allow it (docs/config.md, '
     '"Tree rules")'),
    ("e.x.root", NT("group"),
     "only the device node (gw-test) goes under root; put x under gw-test or one of its "
     "children"),
    ("e.gw-test.vars", NT("device"), "gw-test is the device node: it stays under root"),
    ("e.gw-test.root", [{"type": "tombstone", "value": 1}],
     "edgePoints[0]: gw-test is the device node: it cannot be deleted"),
    ("e.gw-test.root", NT("group"),
     'edgePoints[0]: gw-test is the device node: its nodeType is "device"'),
]


IDS = ["all-node", "all-parent", "root-node", "unknown-type", "device-type", "var-in-bus",
       "io-in-group", "io-at-top", "bus-with-io-to-group", "io-to-var-in-bus",
       "var-moved-to-bus", "not-device-under-root", "device-moved", "device-deleted",
       "device-retyped"]


@pytest.mark.parametrize("subject,payload,error", RUNTIME_REFUSED, ids=IDS)
def test_runtime_edges_follow_the_tree_rules(gw, c, subject, payload, error):
    assert refused(c, subject, payload) == error
    # Nothing changed: the tree and the file form of it still come out whole.
    assert children(c, "vars") == ["v1"] and children(c, "plc") == ["t1"]
    assert [n["type"] for n in c.request("nodes.all.plc", "")["nodes"]] == ["modbus"]
    cfg = export_ok(gw)
    assert where(cfg, "t1") == ["plc"] and where(cfg, "v1") == ["vars"]
    assert ep(gw, "tree").returncode == 0


def test_allowed_runtime_edges(gw, c):
    ok(c, "e.g2.vars", NT("group"))
    ok(c, "e.v2.g2", NT("variable"))
    ok(c, "e.v2.vars", NT("variable"))  # a move
    assert children(c, "g2") == [] and children(c, "vars") == ["g2", "v1", "v2"]
    ok(c, "e.v2.vars", [{"type": "tombstone", "value": 1}])
    ok(c, "e.g2.vars", [{"type": "tombstone", "value": 1}])
    assert where(export_ok(gw), "v1") == ["vars"]


def test_the_device_node_cannot_be_deleted(gw, c):
    r = ep(gw, "delete", "gw-test")
    assert r.returncode != 0
    assert "gw-test is the device node: it cannot be deleted" in r.stderr, r.stderr
    assert children(c, "root") == ["gw-test"]
    assert children(c, "gw-test") == ["plc", "vars"]


def test_future_file_time_is_clamped(tmp_path):
    tree = [{"id": "vars", "type": "group",
             "children": [{"id": "v1", "type": "variable", "points": {"sp": 20}}]}]
    d = Daemon(tmp_path, config={"nodes": tree})
    future = calendar.timegm((2030, 1, 1, 0, 0, 0, 0, 0, 0))
    d.write_config(mtime=future)
    d.start()
    c = d.client()

    def sp():
        [n] = c.request("nodes.vars.v1", "")["nodes"]
        [p] = [p for p in n["points"] if p["type"] == "sp"]
        return p["value"]
    try:
        assert sp() == 20
        # A later runtime write wins, and keeps winning after a restart with the
        # same file (the clamped time is remembered, not taken anew).
        ok(c, "p.v1", [{"type": "sp", "value": 30}])
        assert sp() == 30
        out = d.output()
        assert "edgepoint.json: modification time 2030-01-01T" in out, out
        assert "ahead of this device's clock (max_clock_skew 300 s): its nodes and points " \
               "are merged with time" in out and " (now), so that later runtime changes " \
               "win over them; edit or touch the file (or fix the clock) to date it again" \
               in out, out
        c.close()
        stop_clean(d)
        d.start()
        c = d.client()
        assert "(when this version of the file was first applied)" in d.output()
        assert sp() == 30
        # A later edit of the file wins.
        tree[0]["children"][0]["points"]["sp"] = 40
        d.config["nodes"] = tree
        d.write_config()
        d.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in d.output(), what="the reload")
        assert sp() == 40
    finally:
        c.close()
        stop_clean(d)
