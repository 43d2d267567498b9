"""Cross smoke test: the ARM edgepoint binary (make cross ARCH=...) serving under
qemu-user, driven by peers nobody here wrote: nats.c (the official C client, built
for the host: tests/cross/natsc_req.c and the conformance cases of
tests/conformance/natsc_conf.c) and the pymodbus simulator of tests/modbus/.

tests/cross/run.sh sets EP_BIN to a wrapper that runs the ARM binary under
qemu-ARCH-static, and EP_CROSS_DIR to its build directory (where the host clients
are built). Everything waits by polling, with timeouts generous enough for an
emulated CPU (5-20x slower than the host), never by sleeping.
"""
import json
import os
import sqlite3
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from conftest import BIN, ROOT, Daemon, free_port, port_open, wait_for  # noqa: E402
from mbsim import Sim  # noqa: E402

# Polling timeouts: an emulated start opens SQLite, applies the tree and binds.
START_TIMEOUT = 120.0
POINT_TIMEOUT = 60.0
CLIENT_DIR = os.path.join(os.environ.get("EP_CROSS_DIR", os.path.dirname(BIN)), "host-clients")


def _cc(out, src):
    os.makedirs(CLIENT_DIR, exist_ok=True)
    r = subprocess.run(["cc", "-std=gnu11", "-O1", "-Wall", "-Wextra", "-Werror", "-o", out,
                        src, "-lnats"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, "building %s failed:\n%s" % (out, r.stdout + r.stderr)
    return out


@pytest.fixture(scope="module")
def natsc():
    return {"req": _cc(os.path.join(CLIENT_DIR, "natsc_req"),
                       os.path.join(HERE, "natsc_req.c")),
            "conf": _cc(os.path.join(CLIENT_DIR, "natsc_conf"),
                        os.path.join(ROOT, "tests", "conformance", "natsc_conf.c"))}


class Req:
    """Requests to the gateway through nats.c (natsc_req), one process each."""

    def __init__(self, exe, port):
        self.exe, self.url = exe, "nats://127.0.0.1:%d" % port

    def __call__(self, subject, payload="", timeout_ms=20000):
        r = subprocess.run([self.exe, self.url, subject, payload, str(timeout_ms)],
                           capture_output=True, text=True, timeout=timeout_ms / 1000 + 30)
        assert r.returncode == 0, "nats.c request %s %s: exit %d: %s" % (
            subject, payload, r.returncode, r.stderr)
        return json.loads(r.stdout)

    def points(self, parent, node):
        r = self(("nodes.%s.%s" % (parent, node)))
        assert "nodes" in r, r
        if not r["nodes"]:
            return {}
        return {(p["type"], p.get("key", "0")): p for p in r["nodes"][0]["points"]}

    def wait_value(self, parent, node, want, what):
        def check():
            p = self.points(parent, node).get(("value", "0"))
            return p is not None and p.get("value") == want
        try:
            wait_for(check, timeout=POINT_TIMEOUT, what=what, interval=0.2)
        except AssertionError:
            raise AssertionError("timed out waiting for %s; %s has %s" % (
                what, node, json.dumps(list(self.points(parent, node).values()))))


def start(d):
    """Starts the daemon and waits (long) for the ready line and the bus port."""
    d.start(wait=False)

    def ready():
        if d.proc.poll() is not None:
            raise AssertionError("daemon exited with %d:\n%s" % (d.proc.returncode, d.output()))
        return " ready: " in d.output() and port_open(d.port)
    wait_for(ready, timeout=START_TIMEOUT, what="the ready line and the bus port", interval=0.1)
    return d


@pytest.fixture
def sim():
    s = Sim("pymodbus", port=free_port()).start()
    yield s
    s.stop()


def test_binary_is_the_target_arch():
    """EP_BIN runs the cross binary, not a host one that slipped in."""
    r = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("edgepoint "), r.stdout + r.stderr
    real = os.path.join(os.environ.get("EP_CROSS_DIR", os.path.dirname(BIN)), "edgepoint")
    out = subprocess.run(["file", "-L", real], capture_output=True, text=True).stdout
    assert "statically linked" in out and "ARM" in out, out


def test_serve_bus_modbus_sigkill_restart(tmp_path, sim, natsc):
    sim.set("hr", 0, [1234])
    plc = {"id": "plc", "type": "modbus",
           "points": {"protocol": "tcp", "uri": "127.0.0.1:%d" % sim.port,
                      "pollPeriod": 100, "timeout": 2000},
           "children": [{"id": "temp", "type": "modbusIo",
                         "points": {"table": "holdingRegister", "address": 0}},
                        {"id": "setpoint", "type": "modbusIo",
                         "points": {"table": "holdingRegister", "address": 1}}]}
    d = Daemon(tmp_path, config={"nodes": [plc, {"id": "meter", "type": "variable"}]})
    start(d)
    req = Req(natsc["req"], d.port)
    try:
        # The official client's own checks of the bus: pub/sub, request/reply, headers.
        for case in ("connect", "pubsub", "request", "headers", "wildcards"):
            r = subprocess.run([natsc["conf"], req.url, case], capture_output=True,
                               text=True, timeout=300)
            assert r.returncode == 0, "nats.c case %s:\n%s%s" % (case, r.stdout, r.stderr)

        # A Modbus TCP read from the simulator appears as the IO's value point.
        req.wait_value("plc", "temp", 1234, "temp = 1234 read from the simulator")
        # A write through the bus reaches the device.
        assert req("p.setpoint", '[{"type":"valueSet","value":77}]') == {"ok": True}
        wait_for(lambda: sim.get("hr", 1) == [77], timeout=POINT_TIMEOUT,
                 what="valueSet 77 written to holding register 1", interval=0.2)

        # Acknowledged writes, then SIGKILL with no warning.
        acked = {}
        for i in range(20):
            pts = [{"type": "energy", "key": "k%d" % i, "value": 1000 + i}]
            assert req("p.meter", json.dumps(pts)) == {"ok": True}
            acked["k%d" % i] = 1000 + i
        d.kill()

        db = sqlite3.connect(str(d.db_path()))
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        db.close()
        start(d)  # WAL recovery; serves again
        got = req.points("gw-test", "meter")
        lost = {k: v for k, v in acked.items() if got.get(("energy", k), {}).get("value") != v}
        assert not lost, "acknowledged points lost after SIGKILL: %s" % lost
        # Modbus polling resumes after the restart.
        sim.set("hr", 0, [4321])
        req.wait_value("plc", "temp", 4321, "temp = 4321 after the restart")
        assert req("p.meter", '[{"type":"after","value":1}]') == {"ok": True}
        rc = d.stop(timeout=120)
        assert rc == 0, "exit %s after SIGTERM:\n%s" % (rc, d.output()[-4000:])
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.kill()
