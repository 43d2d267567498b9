"""The command-line client against a running gateway: get, set, tree, watch, export,
import and delete, readable and --json output, and errors that say what to do."""
import json
import os
import signal
import subprocess

import pytest

from conftest import BIN, Daemon, free_port, run, wait_for

TREE = [{"id": "plc", "type": "modbus",
         "points": {"protocol": "tcp", "uri": "127.0.0.1:5020", "pollPeriod": 500},
         "children": [{"id": "t1", "type": "modbusIo",
                       "points": {"table": "holdingRegister", "address": 7, "format": "float32",
                                  "readOnly": False}}]},
        {"id": "vars", "type": "group",
         "children": [{"id": "v1", "type": "variable", "points": {"setpoint": 20.5}}]}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("cli"), config={"nodes": TREE})
    d.start()
    yield d
    d.stop()


def ep(gw, *args):
    return run(list(args) + ["-s", "nats://127.0.0.1:%d" % gw.port])


def test_set_then_get(gw):
    r = ep(gw, "set", "t1", "valueSet", "42.5")
    assert r.returncode == 0, r.stderr
    r = ep(gw, "get", "t1", "valueSet")
    assert r.returncode == 0 and r.stdout.strip() == "42.5", r.stdout + r.stderr
    r = ep(gw, "set", "v1", "note", "--text", "hello world")
    assert r.returncode == 0, r.stderr
    assert ep(gw, "get", "v1", "note").stdout.strip() == "hello world"
    r = ep(gw, "set", "v1", "flag.b", "true")
    assert ep(gw, "get", "v1", "flag.b").stdout.strip() == "1"


def test_get_readable_and_json(gw):
    r = ep(gw, "get", "t1")
    assert r.returncode == 0, r.stderr
    assert "t1 (modbusIo) under plc" in r.stdout
    assert "address" in r.stdout and "7" in r.stdout
    r = ep(gw, "get", "t1", "--json")
    n = json.loads(r.stdout)
    assert n["id"] == "t1" and n["parent"] == "plc"
    assert {"type": "address", "key": "0"}.items() <= [p for p in n["points"] if p["type"] == "address"][0].items()


def test_tree(gw):
    r = ep(gw, "tree")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "gw-test (device)"
    assert any(l.endswith("plc (modbus)") for l in lines)
    assert any(l.strip().endswith("t1 (modbusIo)") and l.startswith(("|", " ")) for l in lines)
    j = json.loads(ep(gw, "tree", "vars", "--json").stdout)
    assert j["id"] == "vars" and [c["id"] for c in j["children"]] == ["v1"]


def test_export_recreates_the_tree(gw, tmp_path):
    r = ep(gw, "export")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["device_id"] == "gw-test"
    ids = {n["id"]: n for n in cfg["nodes"]}
    assert ids["plc"]["points"]["uri"] == "127.0.0.1:5020"
    t1 = ids["plc"]["children"][0]
    assert t1["id"] == "t1" and t1["points"]["address"] == 7 and t1["points"]["format"] == "float32"
    assert "valueSet" not in t1["points"] or True  # status and command points are optional
    f = tmp_path / "export.json"
    f.write_text(r.stdout)
    chk = run(["check-config", str(f)])
    assert chk.returncode == 0, chk.stderr

    # A second gateway from the exported file has the same tree.
    d2 = Daemon(tmp_path, name="copy")
    d2.write_config(r.stdout.replace('"device_id"', '"data_dir": "%s", "bus": {"listen": ["127.0.0.1:%d"]}, "device_id"'
                                     % (d2.dir / "data", d2.port), 1))
    d2.start()
    try:
        t2 = run(["tree", "-s", "nats://127.0.0.1:%d" % d2.port])
        assert t2.stdout == ep(gw, "tree").stdout
    finally:
        d2.stop()


def test_import_and_delete(gw, tmp_path):
    f = tmp_path / "more.json"
    f.write_text(json.dumps({"nodes": [{"id": "extra", "type": "group", "children": [
        {"id": "x1", "type": "variable", "points": {"level": 3}}]}]}))
    r = ep(gw, "import", str(f))
    assert r.returncode == 0 and "imported 2 nodes" in r.stdout, r.stdout + r.stderr
    assert ep(gw, "get", "x1", "level").stdout.strip() == "3"
    r = ep(gw, "delete", "x1")
    assert r.returncode == 0 and "deleted x1 (was under extra)" in r.stdout, r.stderr
    assert "x1" not in ep(gw, "tree").stdout
    assert "x1 (variable) [deleted]" in ep(gw, "tree", "--deleted").stdout


def test_import_bad_file(gw, tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{"nodes": [{"id": "b", "type": "modbus", "points": {"protocol": "tcp", '
                 '"uri": "127.0.0.1:502"}, "children": [{"id": "q", "type": "modbusIo", '
                 '"points": {"address": 70000}}]}]}')
    r = ep(gw, "import", str(f))
    assert r.returncode == 3
    assert "70000" in r.stderr


def test_watch(gw):
    p = subprocess.Popen([BIN, "watch", "p.v1", "-s", "nats://127.0.0.1:%d" % gw.port],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The ready line on stderr says the subscription is being made; set until seen.
        first = p.stderr.readline()
        assert "watching p.v1" in first
        c = gw.client()

        def seen():
            c.request("p.v1", '[{"type":"setpoint","value":99}]')
            return True
        seen()
        line = p.stdout.readline()
        while "99" not in line:
            seen()
            line = p.stdout.readline()
        assert line.startswith("p.v1 [")
        c.close()
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 0


@pytest.mark.parametrize("args,code,text", [
    (["get", "nosuch"], 1, "unknown node nosuch"),
    (["get", "t1", "nosuch"], 1, "t1 has no point nosuch"),
    (["set", "t1", "valueSet", "abc"], 2, "not a number"),
    (["set", "t1", "valueSet"], 2, "one VALUE or --text TEXT"),
    (["set", "nosuch", "x", "1"], 1, "unknown node nosuch"),
    (["get", "bad id"], 2, "not a node id"),
    (["delete", "nosuch"], 1, "unknown node nosuch"),
    (["get", "t1", "--bogus"], 2, "unknown option"),
])
def test_errors(gw, args, code, text):
    r = ep(gw, *args)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert text in r.stderr, r.stderr


def test_unreachable_gateway_says_what_to_do():
    r = run(["get", "t1", "-s", "nats://127.0.0.1:%d" % free_port()])
    assert r.returncode == 1
    assert "cannot reach the gateway" in r.stderr and "-s URL" in r.stderr


def test_help():
    for cmd in ("get", "set", "tree", "watch", "export", "import", "delete"):
        r = run(["help", cmd])
        assert r.returncode == 0 and ("usage: edgepoint " + cmd) in r.stdout


def test_acknowledged_set_survives_sigkill(tmp_path):
    d = Daemon(tmp_path, name="kill", config={"nodes": TREE}).start()
    url = ["-s", "nats://127.0.0.1:%d" % d.port]
    r = run(["set", "v1", "setpoint", "77.125"] + url)
    assert r.returncode == 0, r.stderr
    d.proc.kill()
    d.proc.wait()
    d.start()
    try:
        assert run(["get", "v1", "setpoint"] + url).stdout.strip() == "77.125"
    finally:
        d.stop()


def test_token_and_tls_options(tmp_path):
    from peers import make_certs
    certs = make_certs(str(tmp_path / "certs"))
    d = Daemon(tmp_path, name="sec", config={
        "nodes": TREE,
        "bus": {"auth": {"token": "s3cret"}, "tls": {"cert_file": certs.cert, "key_file": certs.key}}})
    d.config["bus"]["listen"] = ["127.0.0.1:%d" % d.port]
    d.write_config()
    d.start()
    try:
        url = ["-s", "tls://127.0.0.1:%d" % d.port]
        r = run(["get", "v1", "setpoint", "--token", "s3cret", "--tls-ca", certs.ca] + url)
        assert r.returncode == 0 and r.stdout.strip() == "20.5", r.stderr
        r = run(["get", "v1", "setpoint", "--token", "wrong", "--tls-ca", certs.ca] + url)
        assert r.returncode == 1 and "Authorization Violation" in r.stderr, r.stderr
        r = run(["get", "v1", "setpoint", "--token", "s3cret", "--tls-ca", certs.other_ca] + url)
        assert r.returncode == 1 and "certificate" in r.stderr, r.stderr
    finally:
        d.stop()


def test_export_leaves_out_a_point_the_file_would_refuse(tmp_path):
    # A value written at run time that the file's rules refuse (the Modbus module
    # reports it in lastError) is left out and named; the rest still exports.
    d = Daemon(tmp_path, config={"nodes": TREE}).start()
    try:
        assert ep(d, "set", "t1", "address", "70000").returncode == 0
        r = ep(d, "export")
        assert r.returncode == 0, r.stderr
        assert ("export: nodes[0].children[0].points.address not exported: 70000 is not in "
                "0..65535") in r.stderr, r.stderr
        nodes = json.loads(r.stdout)["nodes"]
        t1 = nodes[0]["children"][0]
        assert t1["id"] == "t1" and "address" not in t1["points"]
        assert t1["points"]["format"] == "float32"
    finally:
        d.stop()
