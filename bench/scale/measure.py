#!/usr/bin/python3
"""measure.py - the scale benchmark (issue 11, section 6, "Scale"); run.sh runs it.

Two scenarios against one binary (the release build by default):

  nodes   a 50,000-node file (gen.py nodes): `check-config` peak RSS
          (/usr/bin/time -v), VmRSS/VmHWM of `serve` at start and after 5 SIGHUP
          reloads that alternate the file's two versions, and the loop's longest
          stall during the reloads.
  modbus  10,000 Modbus IOs on 100 Modbus TCP buses (gen.py modbus) served by
          pymodbus simulators (tests/modbus/sim_pymodbus.py): VmRSS at start,
          once every IO has a value, with 100 bus clients connected, and after 5
          reloads, and the loop's longest stall during the reloads.

The loop's stall is measured by a client that sends PING every 2 ms on its own
connection and times each PONG: a reload that blocks the loop for 1 s shows as a
round trip of 1 s. A reload counts from SIGHUP until the daemon logs that it is
done and the change feed it caused has been delivered (a PING answered after the
log line). Everything waits by polling, never by sleeping.

Prints one "name value" line per figure and "PASS"/"FAIL" per target; exits 1
when a target is missed.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from conftest import NatsClient, free_port, port_open, wait_for  # noqa: E402
from mbsim import Sim  # noqa: E402

MIB = 1024 * 1024


def gen(kind, path, port, data, version, **kw):
    args = ["/usr/bin/python3", os.path.join(HERE, "gen.py"), kind, "--port", str(port),
            "--data", data, "--version", str(version)]
    for k, v in kw.items():
        args += ["--" + k, str(v)]
    with open(path + ".tmp", "w") as f:
        subprocess.run(args, stdout=f, check=True)
    os.replace(path + ".tmp", path)


def status(pid):
    """VmRSS and VmHWM of pid, in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out["VmRSS"], out["VmHWM"]


def settled(pid, window=10, slack=256 * 1024):
    """VmRSS and VmHWM once VmRSS has stopped moving (the last window samples,
    0.1 s apart, within slack): a reload frees its leftovers on the thread pool
    just after it is done."""
    seen = []

    def steady():
        seen.append(status(pid))
        last = [r for r, _ in seen[-window:]]
        return len(last) == window and max(last) - min(last) <= slack
    wait_for(steady, 60, "a steady VmRSS", interval=0.1)
    return seen[-1]


class Pinger(threading.Thread):
    """PINGs every interval s and records (send time, round trip) pairs."""

    def __init__(self, port, interval=0.002):
        super().__init__(daemon=True)
        self.port, self.interval = port, interval
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        while not self.stop.is_set():
            t0 = time.monotonic()
            s.sendall(b"PING\r\n")
            while f.readline() != b"PONG\r\n":
                pass
            self.samples.append((t0, time.monotonic() - t0))
            self.stop.wait(self.interval)
        s.close()

    def max_between(self, t0, t1):
        """The longest round trip that overlapped [t0, t1], and when it began
        (seconds after t0)."""
        v = [(rtt, t - t0) for (t, rtt) in self.samples if t0 <= t + rtt and t <= t1]
        return max(v) if v else (0.0, 0.0)


class Serve:
    def __init__(self, exe, cfg, workdir):
        self.log_path = os.path.join(workdir, "serve.log")
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        # EP_SCALE_WRAP: a command to run serve under, e.g. "valgrind --tool=massif
        # --massif-out-file=/tmp/ms.%p" (VmRSS then is valgrind's, not the daemon's).
        wrap = os.environ.get("EP_SCALE_WRAP", "").split()
        self.proc = subprocess.Popen(wrap + [exe, "serve", "-c", cfg], stdout=self.log,
                                     stderr=self.log, env=env, cwd=workdir)

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def count(self, text):
        return self.output().count(text)

    def wait_line(self, text, n=1, timeout=600):
        def seen():
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited:\n" + self.output()[-3000:])
            return self.count(text) >= n
        wait_for(seen, timeout, repr(text), interval=0.005)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return self.proc.returncode


def reloads(d, pinger, port, write_version, n=5):
    """n SIGHUP reloads alternating the file's versions; the longest PONG (s)."""
    worst = 0.0
    c = NatsClient(port)
    for i in range(n):
        write_version(1 - i % 2)
        done = d.count("configuration reloaded")
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGHUP)
        d.wait_line("configuration reloaded", done + 1)
        c.ping()  # the feed's slices run before a later PING is answered
        n0 = len(pinger.samples)
        wait_for(lambda: len(pinger.samples) > n0 + 2, 60, "PINGs after the reload")
        t1 = time.monotonic()
        m, at = pinger.max_between(t0, t1)
        print("reload_%d_seconds %.3f loop_block_ms %.1f (at %.3f s)"
              % (i + 1, t1 - t0, m * 1e3, at))
        worst = max(worst, m)
    c.close()
    return worst


def idle_block(pinger, seconds=3.0):
    """The longest PONG over a few seconds without a reload: what the machine's
    other load (shared cores) adds to every figure."""
    t0 = time.monotonic()
    n0 = len(pinger.samples)
    wait_for(lambda: time.monotonic() - t0 >= seconds and len(pinger.samples) > n0 + 10,
             seconds + 30, "idle PINGs", interval=0.05)
    m, _ = pinger.max_between(t0, time.monotonic())
    print("idle_loop_block_ms %.1f" % (m * 1e3))
    return m


def check_config_rss(exe, cfg):
    r = subprocess.run(["/usr/bin/time", "-v", exe, "check-config", cfg],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    return int(m.group(1)) * 1024


def scenario_nodes(exe, work, nnodes, results):
    port = free_port()
    cfg = os.path.join(work, "nodes.json")
    data = os.path.join(work, "data-nodes")

    def version(v):
        gen("nodes", cfg, port, data, v, nodes=nnodes)
    version(0)
    results["nodes_check_config_rss"] = check_config_rss(exe, cfg)
    t0 = time.monotonic()
    d = Serve(exe, cfg, work)
    try:
        d.wait_line(" ready: ")
        wait_for(lambda: port_open(port), 60, "the bus port")
        print("nodes_start_seconds %.2f" % (time.monotonic() - t0))
        c = NatsClient(port)
        c.ping()
        results["nodes_start_rss"], _ = status(d.proc.pid)
        pinger = Pinger(port)
        pinger.start()
        wait_for(lambda: len(pinger.samples) > 10, 30, "the first PINGs")
        results["nodes_idle_block"] = idle_block(pinger)
        results["nodes_reload_block"] = reloads(d, pinger, port, version)
        pinger.stop.set()
        pinger.join(10)
        results["nodes_reload_rss"], results["nodes_hwm"] = settled(d.proc.pid)
        c.close()
    finally:
        rc = d.stop()
        if os.environ.get("EP_SCALE_LOG"):
            sys.stderr.write(d.output())
    assert rc == 0, d.output()[-3000:]


def all_polled(c, buses, ios):
    for b in range(buses):
        r = c.request("nodes.bus%d.all" % b, "", timeout=30)
        kids = r.get("nodes", [])
        if len(kids) < ios:
            return False
        for n in kids:
            if not any(p["type"] == "value" for p in n.get("points", [])):
                return False
    return True


def scenario_modbus(exe, work, buses, ios, nsims, nclients, results):
    port = free_port()
    sims = [Sim("pymodbus", port=free_port(), size=max(ios, 16)).start()
            for _ in range(nsims)]
    cfg = os.path.join(work, "modbus.json")
    data = os.path.join(work, "data-modbus")
    uris = ",".join("127.0.0.1:%d" % s.port for s in sims)

    def version(v):
        gen("modbus", cfg, port, data, v, buses=buses, ios=ios, sims=uris)
    version(0)
    results["modbus_check_config_rss"] = check_config_rss(exe, cfg)
    d = Serve(exe, cfg, work)
    clients = []
    try:
        d.wait_line(" ready: ")
        wait_for(lambda: port_open(port), 60, "the bus port")
        c = NatsClient(port)
        c.ping()
        results["modbus_start_rss"], _ = status(d.proc.pid)
        t0 = time.monotonic()
        wait_for(lambda: all_polled(c, buses, ios), 300, "every IO polled", interval=0.2)
        print("modbus_all_polled_seconds %.2f" % (time.monotonic() - t0))
        results["modbus_polled_rss"], _ = settled(d.proc.pid)
        for _ in range(nclients):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            f = s.makefile("rb")
            assert f.readline().startswith(b"INFO ")
            s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
            assert f.readline() == b"PONG\r\n"
            clients.append((s, f))
        c.ping()
        results["modbus_clients_rss"], _ = settled(d.proc.pid)
        pinger = Pinger(port)
        pinger.start()
        wait_for(lambda: len(pinger.samples) > 10, 30, "the first PINGs")
        results["modbus_idle_block"] = idle_block(pinger)
        results["modbus_reload_block"] = reloads(d, pinger, port, version)
        pinger.stop.set()
        pinger.join(10)
        wait_for(lambda: all_polled(c, buses, ios), 300, "every IO polled", interval=0.2)
        results["modbus_reload_rss"], results["modbus_hwm"] = settled(d.proc.pid)
        c.close()
    finally:
        for s, f in clients:
            s.close()
        rc = d.stop()
        for s in sims:
            s.stop()
    assert rc == 0, d.output()[-3000:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "edgepoint"))
    ap.add_argument("--nodes", type=int, default=50000)
    ap.add_argument("--buses", type=int, default=100)
    ap.add_argument("--ios", type=int, default=100)
    ap.add_argument("--sims", type=int, default=4)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--only", choices=["nodes", "modbus"])
    ap.add_argument("--rss-target", type=float, default=16.0, help="MiB")
    ap.add_argument("--block-target", type=float, default=50.0, help="ms")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="ep-scale-") as work:
        if args.only in (None, "nodes"):
            scenario_nodes(args.bin, work, args.nodes, results)
        if args.only in (None, "modbus"):
            scenario_modbus(args.bin, work, args.buses, args.ios, args.sims, args.clients,
                            results)
    for k in sorted(results):
        v = results[k]
        if k.endswith("_block"):
            print("%s_ms %.1f" % (k, v * 1e3))
        else:
            print("%s_mib %.1f" % (k, v / MIB))
    ok = True
    checks = []
    for k in ("modbus_polled_rss", "modbus_clients_rss", "modbus_reload_rss"):
        if k in results:
            checks.append(("%s <= %.0f MiB" % (k, args.rss_target),
                           results[k] <= args.rss_target * MIB))
    for k in ("nodes_reload_block", "modbus_reload_block"):
        if k in results:
            checks.append(("%s <= %.0f ms" % (k, args.block_target),
                           results[k] * 1e3 <= args.block_target))
    for name, good in checks:
        print("%s %s" % ("PASS" if good else "FAIL", name))
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
