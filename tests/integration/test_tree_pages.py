"""Large and deep trees: node queries answer in pages that fit max_payload, `tree`
and `export` follow the pages (a Modbus bus with 5,000 IOs), and one depth limit
(EP_TREE_DEPTH_MAX, 64 levels below the device) holds for the file, `tree` and
`export`."""
import json
import subprocess

import pytest

from conftest import BIN, Daemon, run

N_IOS = 5000
DEPTH_MAX = 64  # EP_TREE_DEPTH_MAX in include/edgepoint/point.h


def big_bus():
    ios = [{"id": "io%04d" % i, "type": "modbusIo",
            "points": {"table": "holdingRegister", "address": i % 65000, "format": "float32",
                       "scale": 0.1, "readOnly": False, "deadband": 0.5,
                       "description": "temperature sensor %d of the big bus" % i}}
           for i in range(N_IOS)]
    # A closed port: the bus never connects, which is all these tests need.
    return [{"id": "plc", "type": "modbus",
             "points": {"protocol": "tcp", "uri": "127.0.0.1:1", "pollPeriod": 60000},
             "children": ios}]


def chain(levels):
    """Nested groups with a variable at the bottom, `levels` levels in all."""
    node = {"id": "v%d" % levels, "type": "variable", "points": {"setpoint": levels}}
    for lvl in range(levels - 1, 0, -1):
        node = {"id": "g%d" % lvl, "type": "group", "children": [node]}
    return [node]


def ep(d, *args):
    return run(list(args) + ["-s", "nats://127.0.0.1:%d" % d.port])


def copy_of(exported, tmp_path, name):
    """A daemon that starts from an exported file, on its own port and data dir."""
    d = Daemon(tmp_path, name=name)
    cfg = json.loads(exported)
    cfg.update({"data_dir": str(d.dir / "data"), "bus": {"listen": ["127.0.0.1:%d" % d.port]}})
    d.write_config(json.dumps(cfg, indent=2))
    return d


def canonical(cfg):
    return json.dumps(cfg, sort_keys=True)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("big"), config={"nodes": big_bus()})
    d.start()
    yield d
    d.stop()


def query(c, subject, payload=""):
    inbox = "_INBOX.q%d" % (c.sid + 1)
    c.sub(inbox)
    c.pub(subject, payload, reply=inbox)
    m = c.next_msg(30)
    return len(m[4]), json.loads(m[4])


def test_pages_fit_max_payload_and_cover_every_node(big):
    c = big.client()
    max_payload = c.info["max_payload"]
    ids, after, pages = [], None, 0
    while True:
        size, r = query(c, "nodes.plc.all", json.dumps({"after": after} if after else {}))
        assert "error" not in r, r
        assert size <= max_payload
        pages += 1
        ids += [n["id"] for n in r["nodes"]]
        assert all(n["parent"] == "plc" and n["type"] == "modbusIo" for n in r["nodes"])
        if not r.get("more"):
            assert "next" not in r
            break
        assert r["more"] is True and r["next"] == r["nodes"][-1]["id"]
        after = r["next"]
    assert ids == ["io%04d" % i for i in range(N_IOS)]
    assert pages >= 8  # 5,000 IOs of ~1.7 KB do not fit one 1 MiB message
    c.close()


def test_limit_after_and_small_answers(big):
    c = big.client()
    _, r = query(c, "nodes.plc.all", '{"limit": 3}')
    assert [n["id"] for n in r["nodes"]] == ["io0000", "io0001", "io0002"]
    assert r["more"] is True and r["next"] == "io0002"
    _, r = query(c, "nodes.plc.all", '{"limit": 2, "after": "io0002"}')
    assert [n["id"] for n in r["nodes"]] == ["io0003", "io0004"]
    # "after" is a place in the id order; the id need not exist.
    _, r = query(c, "nodes.plc.all", '{"limit": 1, "after": "io0004x"}')
    assert [n["id"] for n in r["nodes"]] == ["io0005"]
    _, r = query(c, "nodes.plc.all", '{"after": "io4998"}')
    assert [n["id"] for n in r["nodes"]] == ["io4999"] and "more" not in r
    _, r = query(c, "nodes.plc.all", '{"after": "zzz"}')
    assert r == {"nodes": []}
    # A small answer is one page, exactly as before: no "more", no "next".
    _, r = query(c, "nodes.gw-test.all")
    assert set(r) == {"nodes"} and [n["id"] for n in r["nodes"]] == ["plc"]
    _, r = query(c, "nodes.plc.io0042", '{"limit": 1}')
    assert set(r) == {"nodes"} and r["nodes"][0]["id"] == "io0042"
    for bad in ('{"limit": 0}', '{"limit": 2.5}', '{"limit": "9"}', '{"after": "a b"}',
                '{"offset": 3}'):
        _, r = query(c, "nodes.plc.all", bad)
        assert "error" in r, (bad, r)
        assert "after" in r["error"] and "limit" in r["error"], r
    c.close()


def test_pages_end_by_bytes_under_a_small_max_payload(tmp_path):
    ios = big_bus()[0]
    ios["children"] = ios["children"][:200]
    huge = {"id": "huge", "type": "variable", "points": {"note": "x" * 30000}}
    d = Daemon(tmp_path, config={"bus": {"listen": [], "max_payload": 20000}, "nodes": [
        ios, {"id": "grp", "type": "group", "children": [huge]}]})
    d.config["bus"]["listen"] = ["127.0.0.1:%d" % d.port]
    d.write_config()
    d.start()
    try:
        c = d.client()
        assert c.info["max_payload"] == 20000
        ids, after, pages = [], None, 0
        while True:
            size, r = query(c, "nodes.plc.all", json.dumps({"after": after} if after else {}))
            assert "error" not in r and size <= 20000, r
            pages += 1
            ids += [n["id"] for n in r["nodes"]]
            if "more" not in r:
                break
            after = r["next"]
        assert ids == ["io%04d" % i for i in range(200)] and pages >= 10
        # One node bigger than a message on its own cannot be sent: the error says so.
        _, r = query(c, "nodes.grp.all")
        assert r == {"error": "node huge alone is larger than the bus's max_payload (20000 bytes)"}
        c.close()
        r = ep(d, "tree", "plc")
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 201, r.stderr
    finally:
        d.stop()


def test_tree_and_export_of_5000_ios(big, tmp_path):
    r = ep(big, "tree")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "gw-test (device)" and len(lines) == 2 + N_IOS
    assert lines[-1].endswith("`-- io4999 (modbusIo)")
    j = json.loads(ep(big, "tree", "plc", "--json").stdout)
    assert [k["id"] for k in j["children"]] == ["io%04d" % i for i in range(N_IOS)]

    r = ep(big, "export")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    kids = cfg["nodes"][0]["children"]
    assert len(kids) == N_IOS and kids[1234]["points"]["address"] == 1234
    assert kids[4999]["points"]["description"] == "temperature sensor 4999 of the big bus"
    f = tmp_path / "export.json"
    f.write_text(r.stdout)
    chk = run(["check-config", str(f)])
    assert chk.returncode == 0, chk.stderr

    # The file loads into a new gateway, which exports the same tree.
    d2 = copy_of(r.stdout, tmp_path, "copy")
    d2.start()
    try:
        again = ep(d2, "export")
        assert again.returncode == 0, again.stderr
        assert canonical(json.loads(again.stdout)) == canonical(cfg)
        assert ep(d2, "tree").stdout == ep(big, "tree").stdout
    finally:
        d2.stop()


def test_import_of_5000_ios(big, tmp_path):
    r = ep(big, "export")
    assert r.returncode == 0, r.stderr
    f = tmp_path / "export.json"
    f.write_text(r.stdout)
    d2 = Daemon(tmp_path, name="empty")
    d2.start()
    try:
        # 10,001 requests one after the other: longer than run()'s minute under ASan.
        imp = subprocess.run([BIN, "import", str(f), "-s", "nats://127.0.0.1:%d" % d2.port],
                             capture_output=True, text=True, timeout=600)
        assert imp.returncode == 0 and "imported %d nodes" % (N_IOS + 1) in imp.stdout, imp.stderr
        again = json.loads(ep(d2, "export").stdout)
        assert again["nodes"] == json.loads(r.stdout)["nodes"]
    finally:
        d2.stop()


def test_a_tree_at_the_depth_limit_loads_prints_and_exports(tmp_path):
    d = Daemon(tmp_path, config={"nodes": chain(DEPTH_MAX)})
    chk = run(["check-config", str(d.config_path)])
    assert chk.returncode == 0, chk.stderr
    d.start()
    try:
        r = ep(d, "tree")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert len(lines) == 1 + DEPTH_MAX
        assert lines[-1] == " " * 4 * (DEPTH_MAX - 1) + "`-- v%d (variable)" % DEPTH_MAX
        j = json.loads(ep(d, "tree", "g1", "--json").stdout)
        for _ in range(DEPTH_MAX - 1):
            j = j["children"][0]
        assert j["id"] == "v%d" % DEPTH_MAX and j["children"] == []

        r = ep(d, "export")
        assert r.returncode == 0, r.stderr
        cfg = json.loads(r.stdout)
        assert cfg["nodes"] == chain(DEPTH_MAX)
        f = tmp_path / "export.json"
        f.write_text(r.stdout)
        chk = run(["check-config", str(f)])
        assert chk.returncode == 0, chk.stderr
        d2 = copy_of(r.stdout, tmp_path, "copy")
        d2.start()
        try:
            assert ep(d2, "tree").stdout == ep(d, "tree").stdout
        finally:
            d2.stop()

        # One level more at runtime (a group at level 64, a variable under it): the
        # store refuses it, as check-config refuses it in a file.
        cli = d.client()
        acks = []
        for node, parent, typ in (("x%d" % DEPTH_MAX, "g%d" % (DEPTH_MAX - 1), "group"),
                                  ("x%d" % (DEPTH_MAX + 1), "x%d" % DEPTH_MAX, "variable")):
            _, ack = query(cli, "e.%s.%s" % (node, parent),
                           '[{"type":"nodeType","text":"%s"},{"type":"tombstone","value":0}]' % typ)
            acks.append(ack)
        cli.close()
        assert acks[0] == {"ok": True} or acks[0].get("ok") is True, acks
        assert acks[1] == {"error": "x%d under x%d would put nodes more than %d levels below "
                           "the device (EP_TREE_DEPTH_MAX, as in the configuration file)"
                           % (DEPTH_MAX + 1, DEPTH_MAX, DEPTH_MAX)}, acks
        # Moving a subtree so that its leaves would pass the limit is refused too:
        # h1 (with a child h2) from the device to g63 would put h2 at level 65.
        cli = d.client()
        dev = d.config["device_id"]
        for node, parent in (("h1", dev), ("h2", "h1")):
            _, ack = query(cli, "e.%s.%s" % (node, parent), '[{"type":"nodeType","text":"group"}]')
            assert ack.get("ok") is True, ack
        _, ack = query(cli, "e.h1.g%d" % (DEPTH_MAX - 1), '[{"type":"nodeType","text":"group"}]')
        cli.close()
        assert "levels below the device" in ack.get("error", ""), ack
        assert ep(d, "tree").returncode == 0 and ep(d, "export").returncode == 0
    finally:
        d.stop()


def test_one_level_deeper_is_refused_with_the_path(tmp_path):
    p = tmp_path / "edgepoint.json"
    p.write_text(json.dumps({"device_id": "gw", "nodes": chain(DEPTH_MAX + 1)}))
    r = run(["check-config", str(p)])
    assert r.returncode == 3, (r.stdout, r.stderr)
    msg = r.stderr.strip()
    # The path of the node, with its middle left out when it is this long.
    assert msg.startswith(str(p) + ": nodes[0].children[0].children[0]"), msg
    assert "].children[0]...children[0].children[0]" in msg, msg
    assert ("children[0]: node \"v%d\" is %d levels below the device; a tree may be at "
            "most %d levels deep" % (DEPTH_MAX + 1, DEPTH_MAX + 1, DEPTH_MAX)) in msg, msg
    assert msg.endswith("(move the node up or drop a group)"), msg
    # The daemon refuses it the same way.
    r = run(["serve", "-c", str(p)])
    assert r.returncode == 3 and "is %d levels below the device" % (DEPTH_MAX + 1) in r.stderr


def test_errors_deep_in_a_tree_keep_their_end(tmp_path):
    tree = chain(DEPTH_MAX)
    n = tree[0]
    while n["children"][0]["type"] == "group":
        n = n["children"][0]
    n["points"] = {"description": 5}  # g63, the deepest group
    p = tmp_path / "edgepoint.json"
    p.write_text(json.dumps({"device_id": "gw", "nodes": tree}))
    r = run(["check-config", str(p)])
    assert r.returncode == 3
    msg = r.stderr.strip()
    assert msg.startswith(str(p) + ": nodes[0].children[0]"), msg
    assert "].children[0]...children[0].children[0]" in msg, msg
    assert msg.endswith("].children[0].points.description: 5 is not a string"), msg
