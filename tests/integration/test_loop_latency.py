"""The loop never stalls on a module's bookkeeping (issue 10, section 4).

Three messages of about 0.9 MB to one modbusIo node, each with 26,000 point types
nobody uses, blocked the loop for 1.3 s, 5.8 s and 9.9 s (the Modbus module kept
every type in a list it scanned), and after a restart for about 75 s while the
module read them back: under systemd's 30 s watchdog, a restart loop. The module
now keeps only the types it uses. A second client PINGs through the bus all along;
the round trips are the loop's latency.

The bound is the issue's, p99 under 50 ms, for the release binary (build/edgepoint,
which `make test` builds before it runs the tests). Under ASan, whose allocator
costs several times more per allocation (and decoding 26,000 points is mostly
allocation), the same test runs with p99 under 250 ms, and checks that nothing
leaks or overflows.

A reload of the configuration file (issue 11, section 6) blocked the loop for 1.7-2 s
with 50,000 nodes: the file was parsed, applied and its change feed delivered on the
loop, in one go. Now the file is read and prepared on the thread pool, committed by
the store's thread and its feed delivered in slices, and a file of 8,000 nodes and a
Modbus bus of 100 IOs reloads with the PING round trips under the same bounds, this
time the longest of them (a stall is what a reload must not cause at all).
EP_RELEASE_BIN names another release binary than build/edgepoint.
"""
import os
import json
import signal
import socket
import threading
import time

import pytest

from conftest import BIN, ROOT, Daemon, free_port, wait_for
from mbsim import Sim, stop_clean, wait_value

RELEASE = os.environ.get("EP_RELEASE_BIN", os.path.join(ROOT, "build", "edgepoint"))


class Pinger(threading.Thread):
    """PINGs every 5 ms on its own connection and records each round trip (s)."""

    def __init__(self, port, stamps=False):
        super().__init__(daemon=True)
        self.port = port
        self.rtts = []
        self.stamped = []  # (start, round trip), with stamps
        self.stamps = stamps
        self.stop = threading.Event()

    def run(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        f = s.makefile("rb")
        f.readline()  # INFO
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        while not self.stop.is_set():
            t0 = time.monotonic()
            s.sendall(b"PING\r\n")
            while f.readline() != b"PONG\r\n":
                pass
            self.rtts.append(time.monotonic() - t0)
            if self.stamps:
                self.stamped.append((t0, self.rtts[-1]))
            self.stop.wait(0.002 if self.stamps else 0.005)
        s.close()


def p99(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * 0.99))]


def big_message(k):
    return json.dumps([{"type": "junk%d_%d" % (k, i), "value": i} for i in range(26000)],
                      separators=(",", ":"))


@pytest.mark.parametrize("binary,bound", [("asan", 0.250), ("release", 0.050)])
def test_unused_point_types_do_not_stall_the_loop(tmp_path, binary, bound):
    exe = BIN if binary == "asan" else RELEASE
    assert os.access(exe, os.X_OK), "%s not built (make release)" % exe
    sim = Sim("pymodbus", port=free_port()).start()
    nodes = [{"id": "plc", "type": "modbus",
              "points": {"protocol": "tcp", "uri": "127.0.0.1:%d" % sim.port, "pollPeriod": 100},
              "children": [{"id": "io1", "type": "modbusIo",
                            "points": {"table": "holdingRegister", "address": 3}}]}]
    d = Daemon(tmp_path, config={"nodes": nodes})
    start = [exe, "serve", "-c", str(d.config_path)]
    _start_with(d, start)
    try:
        c = d.client()
        wait_value(c, "plc", "io1", 0)
        msgs = [big_message(k) for k in range(3)]
        assert all(800_000 < len(m) < 1_000_000 for m in msgs), [len(m) for m in msgs]
        pinger = Pinger(d.port)
        pinger.start()
        wait_for(lambda: len(pinger.rtts) >= 20, 10, "the first PINGs")
        for m in msgs:
            assert c.request("p.io1", m, timeout=60) == {"ok": True}
        # The module still works: a write reaches the device.
        assert c.request("p.io1", '[{"type":"valueSet","value":5}]') == {"ok": True}
        wait_for(lambda: sim.get("hr", 3) == [5], 20, "the valueSet written")
        pinger.stop.set()
        pinger.join(10)
        during = pinger.rtts[20:]
        print("%s: PING during the writes: %d samples, p99 %.1f ms, max %.1f ms"
              % (binary, len(during), p99(during) * 1e3, max(during) * 1e3))
        assert p99(during) < bound
        c.close()

        # A restart reads the node's 78,000 points back while the module starts.
        assert d.stop() == 0
        _start_with(d, start, wait=False)
        wait_for(lambda: _port_open(d.port), 60, "the bus port after the restart")
        pinger = Pinger(d.port)
        pinger.start()
        c = d.client()
        assert c.request("p.io1", '[{"type":"valueSet","value":6}]') == {"ok": True}
        wait_for(lambda: sim.get("hr", 3) == [6], 60, "a valueSet after the restart")
        wait_for(lambda: len(pinger.rtts) >= 100, 30, "100 PINGs after the restart")
        pinger.stop.set()
        pinger.join(10)
        print("%s: PING after the restart: %d samples, p99 %.1f ms, max %.1f ms"
              % (binary, len(pinger.rtts), p99(pinger.rtts) * 1e3, max(pinger.rtts) * 1e3))
        assert p99(pinger.rtts) < bound
        c.close()
    finally:
        stop_clean(d)
        sim.stop()


def reload_file(version, sim_port, groups=80):
    """groups x 100 nodes (a group of 99 variables), and a bus of 100 IOs; version 1
    changes every variable's value and every IO's deadband."""
    nodes = [{"id": "g%d" % g, "type": "group", "children": [
        {"id": "v%d_%d" % (g, i), "type": "variable",
         "points": {"value": i + 0.5 * version, "description": "variable %d" % i}}
        for i in range(99)]} for g in range(groups)]
    ios = [{"id": "io%d" % i, "type": "modbusIo",
            "points": dict({"table": "holdingRegister", "address": i},
                           **({"deadband": 0.5} if version else {}))}
           for i in range(100)]
    nodes.append({"id": "plc", "type": "modbus",
                  "points": {"protocol": "tcp", "uri": "127.0.0.1:%d" % sim_port,
                             "pollPeriod": 100},
                  "children": ios})
    return nodes


@pytest.mark.parametrize("binary,bound", [("asan", 0.250), ("release", 0.050)])
def test_reload_does_not_stall_the_loop(tmp_path, binary, bound):
    exe = BIN if binary == "asan" else RELEASE
    assert os.access(exe, os.X_OK), "%s not built (make release)" % exe
    sim = Sim("pymodbus", port=free_port(), size=200).start()
    d = Daemon(tmp_path, config={"nodes": reload_file(0, sim.port)})
    _start_with(d, [exe, "serve", "-c", str(d.config_path)])
    try:
        c = d.client()
        wait_value(c, "plc", "io99", 0)
        pinger = Pinger(d.port, stamps=True)
        pinger.start()
        wait_for(lambda: len(pinger.rtts) >= 20, 10, "the first PINGs")
        worst = 0.0
        for k in range(1, 4):
            version = k % 2
            d.config["nodes"] = reload_file(version, sim.port)
            d.write_config(mtime=time.time() + k)  # a new modification time each time
            done = d.output().count("configuration reloaded")
            t0 = time.monotonic()
            d.send_signal(signal.SIGHUP)
            wait_for(lambda: d.output().count("configuration reloaded") > done, 120,
                     "reload %d" % k)
            # The file's values are what the store answers (its feed was delivered
            # before the PING after it is answered).
            r = c.request("nodes.g79.v79_98", "")
            pts = {p["type"]: p for p in r["nodes"][0]["points"]}
            assert pts["value"]["value"] == 98 + 0.5 * version, pts
            c.ping()
            n0 = len(pinger.rtts)
            wait_for(lambda: len(pinger.rtts) > n0 + 2, 30, "PINGs after reload %d" % k)
            during = [rtt for (t, rtt) in pinger.stamped if t + rtt >= t0]
            print("%s: reload %d: %d PINGs, longest %.1f ms, %.2f s in all"
                  % (binary, k, len(during), max(during) * 1e3, time.monotonic() - t0))
            worst = max(worst, max(during))
        pinger.stop.set()
        pinger.join(10)
        # The Modbus module follows the reloaded file and still polls.
        sim.set("hr", 99, [7])
        wait_value(c, "plc", "io99", 7)
        assert worst < bound, "a reload stalled the loop for %.1f ms" % (worst * 1e3)
        c.close()
    finally:
        stop_clean(d)
        sim.stop()


def _start_with(d, cmd, wait=True):
    """Daemon.start() with another binary (the release build)."""
    import subprocess
    d.log = open(d.log_path, "ab")
    d._log_offset = d.log_path.stat().st_size
    d.proc = subprocess.Popen(cmd, stdout=d.log, stderr=d.log, env=d.env, cwd=d.dir)
    if wait:
        d.wait_ready()


def _port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False
