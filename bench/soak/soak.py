#!/usr/bin/python3
"""soak.py - the soak bench (issue 11, section 6, "Soak"); run.sh runs it.

Against one binary (the release build by default), for DURATION seconds (default
1800): 10,000 Modbus IOs on 100 Modbus TCP buses of 100 holding registers each,
polled every second from SIMS pymodbus simulators (tests/modbus/sim_pymodbus.py),
whose registers change every 5 s (100 random registers per simulator); and 200
nats.go clients (load.go) at 5 messages a second each: half write points to 100
variable nodes (requests acknowledged after the commit), half publish and receive
plain messages. Every SAMPLE seconds (10) it prints the daemon's VmRSS and open file
descriptors (/proc/PID/fd). At the end: max and last of both against the bounds
(RSS_MAX_KIB, FDS_MAX), and the growth of VmRSS over the second half of the run
(RSS_GROWTH_KIB: SQLite's page cache and the allocator fill during the first
minutes; a leak keeps growing). Exits 1 when a
bound is exceeded, the daemon died, or the load lost connections or writes.

Waits by polling (the ready line, the port, every IO having a value), never by
sleeping for a fixed time; the sampling interval is the only timer.
"""
import argparse
import json
import os
import random
import signal
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

BUSES, IOS, NODES = 100, 100, 100


def config(port, data, sims):
    nodes = [{"id": "soak%d" % i, "type": "variable"} for i in range(NODES)]
    for b in range(BUSES):
        ios = [{"id": "io%d_%d" % (b, i), "type": "modbusIo",
                "points": {"unitId": 1, "table": "holdingRegister", "address": i,
                           "format": "uint16"}} for i in range(IOS)]
        nodes.append({"id": "bus%d" % b, "type": "modbus",
                      "points": {"protocol": "tcp", "uri": sims[b % len(sims)],
                                 "pollPeriod": 1000},
                      "children": ios})
    return {"device_id": "gw-soak", "data_dir": data, "log": {"level": "notice"},
            "bus": {"listen": ["127.0.0.1:%d" % port]}, "nodes": nodes}


def sample(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def all_polled(c):
    for b in range(BUSES):
        kids = c.request("nodes.bus%d.all" % b, "", timeout=30).get("nodes", [])
        if len(kids) < IOS or not all(any(p["type"] == "value" for p in n.get("points", []))
                                      for n in kids):
            return False
    return True


class Changer(threading.Thread):
    """Every 5 s, 100 random registers of every simulator get new values."""

    def __init__(self, sims):
        super().__init__(daemon=True)
        self.sims, self.stop = sims, threading.Event()
        self.rng = random.Random(11)

    def run(self):
        while not self.stop.wait(5):
            for s in self.sims:
                for a in self.rng.sample(range(IOS), 100):
                    s.set("hr", a, [self.rng.randrange(65536)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "edgepoint"))
    ap.add_argument("--load", required=True, help="the built load.go")
    ap.add_argument("--duration", type=float, default=1800)
    ap.add_argument("--sample", type=float, default=10)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--rate", type=float, default=5)
    ap.add_argument("--sims", type=int, default=4)
    ap.add_argument("--rss-max-kib", type=int, default=65536)
    ap.add_argument("--fds-max", type=int, default=400)
    ap.add_argument("--rss-growth-kib", type=int, default=4096)
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="ep-soak.")
    port = free_port()
    sims = [Sim("pymodbus", port=free_port(), size=IOS).start() for _ in range(a.sims)]
    cfg = os.path.join(work, "edgepoint.json")
    with open(cfg, "w") as f:
        json.dump(config(port, os.path.join(work, "data"),
                         ["127.0.0.1:%d" % s.port for s in sims]), f)
    log = open(os.path.join(work, "serve.log"), "ab")
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    d = subprocess.Popen([a.bin, "serve", "-c", cfg], stdout=log, stderr=log, env=env)
    load = None
    changer = Changer(sims)
    status = 0
    try:
        wait_for(lambda: d.poll() is None and port_open(port), 120, "the bus port")
        c = NatsClient(port)
        t0 = time.monotonic()
        wait_for(lambda: all_polled(c), 300, "every IO polled", interval=0.5)
        c.close()
        print("machine: %d CPUs, load average %s; %s" % (
            os.cpu_count(), open("/proc/loadavg").read().split()[:3], a.bin))
        print("every IO polled after %.1f s; start: VmRSS %d KiB, %d fds" % (
            (time.monotonic() - t0,) + sample(d.pid)))
        changer.start()
        load = subprocess.Popen([a.load, "-url", "nats://127.0.0.1:%d" % port,
                                 "-clients", str(a.clients), "-rate", str(a.rate),
                                 "-dur", str(a.duration)], stdout=subprocess.PIPE, text=True)
        start = time.monotonic()
        rows = []
        print("%8s %10s %6s" % ("t_s", "rss_kib", "fds"))
        n = 1
        while True:
            try:
                load.wait(timeout=max(0, start + n * a.sample - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            if d.poll() is not None:
                print("FAIL: the daemon exited (%s)" % d.returncode)
                status = 1
                break
            rss, fds = sample(d.pid)
            rows.append((time.monotonic() - start, rss, fds))
            print("%8.0f %10d %6d" % rows[-1], flush=True)
            n += 1
            if load.poll() is not None:
                break
        out = load.communicate()[0]
        print(out.strip())
        if load.returncode != 0:
            print("FAIL: the load generator exited %d (lost connections or writes)"
                  % load.returncode)
            status = 1
        if rows:
            rss_max = max(r[1] for r in rows)
            fds_max = max(r[2] for r in rows)
            # The most VmRSS of the second half over the sample at half time (the
            # caches have filled by then).
            mid = next(r for r in rows if r[0] >= rows[-1][0] / 2)
            growth = max(r[1] for r in rows if r[0] >= mid[0]) - mid[1]
            for name, val, last, bound in (
                    ("rss_kib", rss_max, rows[-1][1], a.rss_max_kib),
                    ("fds", fds_max, rows[-1][2], a.fds_max)):
                ok = val <= bound
                print("%s max %d last %d bound %d %s" % (name, val, last, bound,
                                                          "PASS" if ok else "FAIL"))
                status |= 0 if ok else 1
            ok = growth <= a.rss_growth_kib
            print("rss_growth_kib %d (second half) bound %d %s"
                  % (growth, a.rss_growth_kib, "PASS" if ok else "FAIL"))
            status |= 0 if ok else 1
    finally:
        changer.stop.set()
        if load is not None and load.poll() is None:
            load.kill()
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(60)
            except subprocess.TimeoutExpired:
                d.kill()
        for s in sims:
            s.stop()
        log.close()
        if status == 0:
            subprocess.run(["rm", "-rf", work])
        else:
            print("kept %s (serve.log)" % work)
    return status


if __name__ == "__main__":
    sys.exit(main())
