"""The daemon as a service: default config, sd_notify READY/WATCHDOG, SIGTERM, SIGHUP."""
import json
import os
import signal
import socket
import sqlite3
import time

from conftest import ROOT, Daemon, port_open, wait_for


def test_runs_on_the_embedded_default_config(tmp_path):
    # The default binds 127.0.0.1:4222; skip the bind check if something holds it.
    d = Daemon(tmp_path, env={"EDGEPOINT_DATA": str(tmp_path / "defdata")})
    d.start(args=["serve"], wait=False)
    wait_for(lambda: " ready: " in d.output() or d.proc.poll() is not None, what="ready")
    if d.proc.poll() is not None:
        assert "4222" in d.output(), d.output()  # port taken by another process
        return
    assert (tmp_path / "defdata" / "edgepoint.db").exists()
    assert d.stop() == 0
    assert "stopped" in d.output()


def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(20)
    return s, path


def test_sd_notify_ready_after_bind_and_watchdog(tmp_path):
    s, path = notify_socket(tmp_path)
    d = Daemon(tmp_path, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    d.start(wait=False)
    msg = s.recv(4096).decode()
    assert "READY=1" in msg.split("\n"), msg
    # READY means the listener is bound: a connection must succeed right away.
    assert port_open(d.port)
    watchdogs = 0
    while watchdogs < 3:
        if "WATCHDOG=1" in s.recv(4096).decode().split("\n"):
            watchdogs += 1
    d.send_signal(signal.SIGTERM)
    while True:
        m = s.recv(4096).decode()
        if "STOPPING=1" in m.split("\n"):
            break
    assert d.proc.wait(30) == 0


def test_no_watchdog_pings_for_another_pid(tmp_path):
    s, path = notify_socket(tmp_path)
    d = Daemon(tmp_path, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000",
                              "WATCHDOG_PID": "1"})
    d.start(wait=False)
    assert "READY=1" in s.recv(4096).decode()
    d.client().ping()  # the loop has run a while, several watchdog periods
    s.settimeout(0.5)
    got = []
    try:
        while True:
            got.append(s.recv(4096).decode())
    except socket.timeout:
        pass
    assert not any("WATCHDOG=1" in m for m in got), got
    assert d.stop() == 0


def test_sigterm_flushes_unacknowledged_writes(tmp_path):
    d = Daemon(tmp_path, config={"nodes": [{"id": "v1", "type": "variable"}]}).start()
    c = d.client()
    n = 300
    for i in range(n):
        c.pub("p.v1", json.dumps([{"type": "count", "key": str(i), "value": i}]))
    c.ping()  # every PUB before the PONG has been read and queued to the store
    assert d.stop() == 0
    db = sqlite3.connect(str(d.db_path()))
    rows = db.execute("select key, value from points where node='v1' and type='count'").fetchall()
    assert sorted((int(k), v) for k, v in rows) == [(i, float(i)) for i in range(n)]


def test_sighup_reload_rejects_invalid_file_and_keeps_running(tmp_path):
    d = Daemon(tmp_path, config={"nodes": [{"id": "v1", "type": "variable"}]}).start()
    good = d.config_path.read_text()
    d.write_config('{"device_id": "gw-test", "bus": {"max_payload": -5}}')
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in d.output(), what="the reload error")
    assert "bus.max_payload: -5 is not in" in d.output()
    c = d.client()
    assert c.request("p.v1", json.dumps([{"type": "a", "value": 1}])) == {"ok": True}

    # A valid file with a new node is merged.
    cfg = json.loads(good)
    cfg["nodes"].append({"id": "v2", "type": "variable", "points": {"setpoint": 42}})
    d.write_config(json.dumps(cfg), mtime=time.time())
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in d.output(), what="the reload")
    assert c.request("p.v2", json.dumps([{"type": "b", "value": 2}])) == {"ok": True}
    db = sqlite3.connect(str(d.db_path()))
    assert db.execute("select value from points where node='v2' and type='setpoint'").fetchone() == (42.0,)
    assert d.stop() == 0


def test_release_binary_is_static():
    release = os.path.join(ROOT, "build", "edgepoint")
    assert os.path.exists(release), "build the release first (make release)"
    out = os.popen("file -L " + release).read()
    assert "statically linked" in out or "static-pie linked" in out, out


def test_unimplemented_node_types_are_announced(tmp_path):
    d = Daemon(tmp_path, config={"nodes": [{"id": "g1", "type": "gpio"},
                                           {"id": "r1", "type": "rule"},
                                           {"id": "v1", "type": "variable"}]}).start()
    try:
        out = d.output()
        assert "node g1: gpio nodes are stored, but this version of edgepoint does not run them yet" in out
        assert "node r1" not in out  # rules run (docs/rules.md)
        assert "node v1" not in out
    finally:
        d.stop()
