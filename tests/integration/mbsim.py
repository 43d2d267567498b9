"""Modbus peers for the integration tests: the simulators of tests/modbus/ (pymodbus
and npm modbus-serial, neither written here) driven over their stdin/stdout control
protocol, socat PTY pairs for RTU, and helpers that read a node's points from the
gateway. Everything waits by polling a ready line, a file or a point, never by
sleeping for a fixed time.
"""
import json
import os
import selectors
import subprocess

from conftest import ROOT, wait_for

SIM_DIR = os.path.join(ROOT, "tests", "modbus")
PYTHON = "/usr/bin/python3"


class Sim:
    """One simulator process. kind: "pymodbus" (TCP or RTU) or "modbus-serial" (TCP)."""

    def __init__(self, kind, port=None, device=None, units=(1,), baud=9600, size=None):
        self.kind, self.port, self.device, self.units, self.baud = kind, port, device, units, baud
        self.size = size  # pymodbus: registers per table
        self.proc = None

    def start(self):
        units = ",".join(str(u) for u in self.units)
        if self.kind == "pymodbus":
            cmd = [PYTHON, os.path.join(SIM_DIR, "sim_pymodbus.py"), "--units", units]
            cmd += ["--tcp", str(self.port)] if self.device is None else \
                ["--rtu", self.device, "--baud", str(self.baud)]
            if self.size:
                cmd += ["--size", str(self.size)]
        else:
            cmd = ["node", os.path.join(SIM_DIR, "sim_modbus_serial.mjs"), str(self.port), units]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        first = self._readline(30)
        assert json.loads(first) == {"ready": True}, first
        return self

    def _readline(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.proc.kill()
            raise AssertionError("simulator %s did not answer; stderr:\n%s"
                                 % (self.kind, self.proc.stderr.read()))
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("simulator %s exited; stderr:\n%s"
                                 % (self.kind, self.proc.stderr.read()))
        return line

    def cmd(self, **kw):
        self.proc.stdin.write(json.dumps(kw) + "\n")
        out = json.loads(self._readline(10))
        assert "error" not in out, out
        return out

    def set(self, table, address, values, unit=1):
        self.cmd(op="set", unit=unit, table=table, address=address, values=list(values))

    def get(self, table, address, count=1, unit=1):
        return self.cmd(op="get", unit=unit, table=table, address=address, count=count)["values"]

    def requests(self):
        """Requests answered so far (pymodbus only)."""
        return self.cmd(op="count", unit=self.units[0], table="hr")["requests"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                f.close()
        self.proc = None


class PtyPair:
    """socat linking two pseudo-terminals, a and b: a serial line in software."""

    def __init__(self, dirpath):
        self.a = os.path.join(str(dirpath), "ttyA")
        self.b = os.path.join(str(dirpath), "ttyB")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["socat", "pty,raw,echo=0,link=" + self.a, "pty,raw,echo=0,link=" + self.b],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.a) and os.path.exists(self.b),
                 timeout=10, what="the socat PTY pair")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        self.proc = None


def points(c, parent, node, deleted=False):
    """The node's points as {type: point} (key "0"); deleted: also a deleted node."""
    r = c.request("nodes.%s.%s" % (parent, node), '{"tombstone":true}' if deleted else "")
    assert "nodes" in r, r
    if not r["nodes"]:
        return {}
    return {p["type"]: p for p in r["nodes"][0]["points"] if p.get("key", "0") == "0"}


def value(c, parent, node, deleted=False):
    p = points(c, parent, node, deleted).get("value")
    return None if p is None else p.get("value")


def wait_point(c, parent, node, pred, what, timeout=20):
    """Polls the node's points until pred(points) holds; returns the points."""
    def check():
        pts = points(c, parent, node)
        return pts if pred(pts) else None
    try:
        return wait_for(check, timeout=timeout, what=what, interval=0.05)
    except AssertionError:
        raise AssertionError("timed out waiting for %s; %s has %s"
                             % (what, node, json.dumps(points(c, parent, node))))


def wait_value(c, parent, node, want, timeout=20, tol=0.0):
    return wait_point(c, parent, node,
                      lambda p: "value" in p and "value" in p["value"] and
                      abs(p["value"]["value"] - want) <= tol,
                      "%s = %r" % (node, want), timeout)


def text(pts, typ):
    return pts.get(typ, {}).get("text", "")


def num(pts, typ, default=None):
    return pts.get(typ, {}).get("value", default)


def stop_clean(d):
    """Stops the daemon and checks it exited 0 without a sanitizer report (ASan,
    LeakSanitizer or UBSan) in its log."""
    rc = d.stop()
    out = d.output()
    assert rc == 0 and "Sanitizer" not in out and "runtime error" not in out, out[-4000:]
