"""The change feed (issue 10, section 1): everything that acts on the world follows
what the store committed, never the write requests.

Field devices are pymodbus simulators. "Nothing was written" is checked in order,
not by waiting: after the write that must not reach the device, a write that must
reach another register is sent and waited for; the module handles changes in
commit order, so by then it has seen (and ignored) the first.

The feed's subjects: chg.<node> (node points) and chg.<node>.<parent> (edge points),
arrays of the points that won the merge, in commit order.
"""
import json
import random
import signal
import subprocess
import time

import pytest

from conftest import BIN, Daemon, NatsClient, free_port, run, wait_for
from mbsim import Sim, stop_clean, wait_value

HOUR = 3600 * 10**9
DAY = 24 * HOUR


def t(ns):
    """RFC 3339 text for ns since the epoch."""
    s, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%09dZ" % frac


def now_ns():
    return time.time_ns()


def io(iid, address, table="holdingRegister"):
    return {"id": iid, "type": "modbusIo", "points": {"table": table, "address": address}}


def bus(bid, port, ios):
    return {"id": bid, "type": "modbus",
            "points": {"protocol": "tcp", "uri": "127.0.0.1:%d" % port, "pollPeriod": 100,
                       "timeout": 500},
            "children": ios}


@pytest.fixture
def site(tmp_path):
    made = []

    def make(nodes, sims=1):
        ss = [Sim("pymodbus", port=free_port()).start() for _ in range(sims)]
        d = Daemon(tmp_path, config={"nodes": nodes(*[s.port for s in ss])}).start()
        c = d.client()
        made.append((d, c, ss))
        return d, c, ss
    yield make
    for d, c, ss in made:
        c.close()
        stop_clean(d)
        for s in ss:
            s.stop()


def ok(c, subject, points):
    r = c.request(subject, json.dumps(points))
    assert r == {"ok": True} or "ok" in r, (subject, r)
    return r


def test_refused_and_losing_writes_never_reach_the_device(site):
    d, c, (sim,) = site(lambda port: [bus("plc", port, [io("io_w", 100), io("io_x", 101)])])
    wait_value(c, "plc", "io_w", 0)
    # A valueSet an hour ahead is refused, and so never written.
    r = c.request("p.io_w", json.dumps([{"type": "valueSet", "time": t(now_ns() + HOUR),
                                         "value": 999}]))
    assert "error" in r and "ahead" in r["error"], r
    ok(c, "p.io_w", [{"type": "valueSet", "value": 42}])
    wait_for(lambda: sim.get("hr", 100) == [42], 20, "42 written")
    wait_value(c, "plc", "io_w", 42)
    # A tombstone dated a day back loses in the store: the IO stays, and its next
    # valueSet is written.
    ok(c, "e.io_w.plc", [{"type": "tombstone", "value": 1, "time": t(now_ns() - DAY)}])
    ok(c, "p.io_w", [{"type": "valueSet", "value": 43}])
    wait_for(lambda: sim.get("hr", 100) == [43], 20, "43 written after the stale delete")
    # A real delete, then a restore dated before it: the restore loses, the IO stays
    # deleted, and a valueSet sent to it reaches no device.
    ok(c, "e.io_w.plc", [{"type": "tombstone", "value": 1}])
    ok(c, "e.io_w.plc", [{"type": "tombstone", "value": 0, "time": t(now_ns() - HOUR)}])
    c.request("p.io_w", json.dumps([{"type": "valueSet", "value": 44}]))
    ok(c, "p.io_x", [{"type": "valueSet", "value": 7}])
    wait_for(lambda: sim.get("hr", 101) == [7], 20, "io_x written")
    assert sim.get("hr", 100) == [43], "a valueSet to a deleted IO was written"


def test_a_refused_move_changes_nothing(site):
    # gA holds the bus plc2 and an empty group gB. Moving gA under gB is a cycle and
    # refused; deleting the empty gB must then leave plc2 (under gA) running.
    d, c, (sim,) = site(lambda port: [
        {"id": "gA", "type": "group", "children": [
            bus("plc2", port, [io("r1", 10)]),
            {"id": "gB", "type": "group"}]}])
    sim.set("hr", 10, [5])
    wait_value(c, "plc2", "r1", 5)
    r = c.request("e.gA.gB", json.dumps([{"type": "nodeType", "text": "group"}]))
    assert "error" in r and "ancestor" in r["error"], r
    ok(c, "e.gB.gA", [{"type": "tombstone", "value": 1}])
    sim.set("hr", 10, [6])
    wait_value(c, "plc2", "r1", 6)


def test_a_client_value_gives_way_to_the_device_reading(site):
    d, c, (sim,) = site(lambda port: [bus("plc", port, [io("level", 50)])])
    sim.set("hr", 50, [7])
    wait_value(c, "plc", "level", 7)
    ok(c, "p.level", [{"type": "value", "value": 99}])
    wait_value(c, "plc", "level", 7)


def test_the_feed_is_what_the_store_holds(tmp_path):
    """10,000 writes, a fifth of them stale or refused: a watcher on chg.> sees exactly
    the changes the store holds afterwards, in commit order, none of the others."""
    nodes = [{"id": "v%d" % i, "type": "variable"} for i in range(10)]
    d = Daemon(tmp_path, config={"nodes": nodes}).start()
    try:
        watcher = NatsClient(d.port)
        watcher.sub("chg.>")
        watcher.ping()
        c = d.client()
        rnd = random.Random(10)
        base = now_ns() - HOUR
        latest = {}
        sent = 0
        refused_or_stale = 0
        inbox = "_INBOX.burst"
        c.sub(inbox + ".*")
        for i in range(10000):
            node = "v%d" % rnd.randrange(10)
            key = str(rnd.randrange(20))
            kind = rnd.random()
            if kind < 0.1 and (node, key) in latest:
                ts = latest[(node, key)] - 10**6  # older than what is stored: loses
                refused_or_stale += 1
            elif kind < 0.15:
                node = "nosuch%d" % i  # refused: unknown node
                ts = base + i * 10**6
                refused_or_stale += 1
            elif kind < 0.2:
                ts = now_ns() + HOUR  # refused: ahead of the clock
                refused_or_stale += 1
            else:
                ts = base + i * 10**6
                latest[(node, key)] = max(ts, latest.get((node, key), 0))
            p = [{"type": "level", "key": key, "time": t(ts), "value": i}]
            c.pub("p." + node, json.dumps(p), reply="%s.%d" % (inbox, i))
            sent += 1
        answers = 0
        while answers < sent:
            c.next_msg(30)
            answers += 1
        assert refused_or_stale >= 1800
        # Everything the feed said, in order; applied in order it must give the store.
        feed = {}
        order = {}
        watcher.ping()
        for m in getattr(watcher, "pending", []):
            subj, _, _, _, data = m
            node = subj.split(".")[1]
            if len(subj.split(".")) != 2:
                continue
            for p in json.loads(data):
                k = (node, p["key"])
                # Commit order: each change of one point is newer than the last one.
                assert p["time"] > order.get(k, ""), (k, p, order.get(k))
                order[k] = p["time"]
                feed[k] = p["value"]
        held = {}
        for i in range(10):
            r = c.request("nodes.all.v%d" % i, "{}")
            for p in r["nodes"][0]["points"]:
                if p["type"] == "level":
                    held[("v%d" % i, p["key"])] = p["value"]
        assert feed == held
        assert set(feed) == set(latest)
        watcher.close()
        c.close()
    finally:
        assert d.stop() == 0


def test_watch_follows_the_feed_by_default(tmp_path):
    d = Daemon(tmp_path, config={"nodes": [{"id": "v1", "type": "variable"}]}).start()
    p = subprocess.Popen([BIN, "watch", "-s", "nats://127.0.0.1:%d" % d.port],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "watching chg.>" in p.stderr.readline()
        c = d.client()
        # A refused write (an hour ahead) shows nothing; the good one after it shows.
        marker = 0
        while True:
            marker += 1
            r = c.request("p.v1", json.dumps([{"type": "sp", "time": t(now_ns() + HOUR),
                                               "value": 1000 + marker}]))
            assert "error" in r
            c.request("p.v1", json.dumps([{"type": "sp", "value": marker}]))
            line = p.stdout.readline()
            assert "100%d" % marker not in line, line
            if line.startswith("chg.v1 ["):
                break
        assert json.loads(line.split(" ", 1)[1])[0]["type"] == "sp"
        c.close()
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 0
        assert d.stop() == 0


def test_replies_say_what_was_applied(tmp_path):
    nodes = [{"id": "v1", "type": "variable"}, {"id": "v2", "type": "variable"}]
    d = Daemon(tmp_path, config={"nodes": nodes}).start()
    try:
        c = d.client()
        now = now_ns()
        assert c.request("p.v1", json.dumps([{"type": "sp", "time": t(now), "value": 1}])) \
            == {"ok": True}
        r = c.request("p.v1", json.dumps([{"type": "sp", "time": t(now - 10**9), "value": 8},
                                          {"type": "other", "value": 3}]))
        assert r == {"ok": True, "applied": 1, "notApplied": [
            {"type": "sp", "key": "0",
             "reason": "a newer value is stored (time %s)" % t(now)}]}, r
        # The command line says so and exits non-zero (a newer value, as after a
        # clock step: within max_clock_skew ahead).
        ahead = now_ns() + 60 * 10**9
        assert c.request("p.v2", json.dumps([{"type": "sp", "time": t(ahead), "value": 1}])) \
            == {"ok": True}
        r = run(["set", "v2", "sp", "8", "-s", "nats://127.0.0.1:%d" % d.port])
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "sp 0: not applied: a newer value is stored (time %s)" % t(ahead) in r.stderr
        assert "v2 sp = 8" not in r.stdout
        # A write to a deleted node is kept (the merge converges wherever the
        # tombstone lands) and the reply says the node is deleted; so does the CLI.
        assert c.request("e.v1.gw-test", '[{"type":"tombstone","value":1}]') == {"ok": True}
        r = c.request("p.v1", json.dumps([{"type": "sp", "value": 9}]))
        assert r == {"ok": True, "applied": 1, "nodeDeleted": True}, r
        r = run(["set", "v1", "sp", "10", "-s", "nats://127.0.0.1:%d" % d.port])
        assert r.returncode == 1 and "the node is deleted" in r.stderr, (r.stdout, r.stderr)
        c.close()
    finally:
        assert d.stop() == 0
