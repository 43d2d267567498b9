"""The file's points merge at start with time = the file's modification time: a later
runtime change beats an older file, a later edit of the file beats older runtime
changes."""
import json
import os
import sqlite3
import time

from conftest import Daemon


def point(d, node, typ):
    db = sqlite3.connect(str(d.db_path()))
    try:
        return db.execute("select value, origin from points where node=? and type=?",
                          (node, typ)).fetchone()
    finally:
        db.close()


def test_file_time_decides_against_runtime_changes(tmp_path):
    d = Daemon(tmp_path, config={"nodes": [{"id": "pump", "type": "variable",
                                            "points": {"setpoint": 10}}]})
    old = time.time() - 3600
    d.write_config(mtime=old)
    d.start()
    assert point(d, "pump", "setpoint") == (10.0, "config")

    # A runtime change (now) is newer than the file: it survives a restart.
    c = d.client()
    assert c.request("p.pump", json.dumps([{"type": "setpoint", "value": 20, "origin": "ui"}])) == {"ok": True}
    assert d.stop() == 0
    d.start()
    assert point(d, "pump", "setpoint") == (20.0, "ui")
    assert d.stop() == 0

    # An edit of the file after the runtime change wins.
    d.config["nodes"][0]["points"]["setpoint"] = 30
    d.write_config(mtime=time.time() + 1)
    d.start()
    assert point(d, "pump", "setpoint") == (30.0, "config")
    assert d.stop() == 0


def test_device_node_and_tree_come_from_the_file(tmp_path):
    d = Daemon(tmp_path, config={"nodes": [
        {"id": "plc", "type": "modbus", "points": {"protocol": "tcp", "uri": "127.0.0.1:1502"},
         "children": [{"id": "t1", "type": "modbusIo",
                       "points": {"table": "holdingRegister", "address": 3, "format": "float32"}}]}]})
    d.start()
    db = sqlite3.connect(str(d.db_path()))
    edges = set(db.execute("select node, parent from edges where tombstone=0"))
    assert {("gw-test", "root"), ("plc", "gw-test"), ("t1", "plc")} <= edges
    types = dict(db.execute("select id, type from nodes"))
    assert types["gw-test"] == "device" and types["plc"] == "modbus" and types["t1"] == "modbusIo"
    rows = dict(db.execute("select type, coalesce(text, value) from points where node='t1'"))
    assert rows["table"] == "holdingRegister" and rows["address"] == 3.0
    db.close()
    assert d.stop() == 0
