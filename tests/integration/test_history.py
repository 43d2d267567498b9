"""Point history on the gateway (hist.<node>, store.history) and the tree built from
the command line (edgepoint add, move, set with pairs, history): what is recorded,
late points, buckets against a brute-force computation here, retention by size under
continuous writes, and the commands' errors."""
import json
import random
import subprocess
import time

from conftest import BIN, Daemon, wait_for

BASE = int(time.time()) - 3 * 3600  # every test point lies in the last three hours


def t(sec, frac=0):
    """RFC 3339 for BASE + sec seconds (+ frac nanoseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BASE + sec)) + ".%09dZ" % frac


def cli(d, *args):
    return subprocess.run([BIN] + list(args) + ["-s", "nats://127.0.0.1:%d" % d.port],
                          capture_output=True, text=True, timeout=60)


def hist(c, node, **q):
    return c.request("hist." + node, json.dumps(q).encode())


def gateway(tmp_path, history=None, nodes=None):
    d = Daemon(tmp_path)
    d.config["nodes"] = nodes if nodes is not None else [
        {"id": "t1", "type": "variable", "points": {"description": "probe"}}]
    if history is not None:
        d.config["store"] = {"history": history}
    d.write_config()
    return d.start()


def write(c, node, points):
    r = c.request("p." + node, json.dumps(points).encode())
    assert r.get("ok") is True, r
    return r


def test_late_points_are_history_and_the_query_pages(tmp_path):
    d = gateway(tmp_path)
    c = d.client()
    try:
        write(c, "t1", [{"type": "value", "time": t(100), "value": 1}])
        # Older than what is stored: not applied to the current value, but history.
        r = write(c, "t1", [{"type": "value", "time": t(50), "value": 0.5}])
        assert r["applied"] == 0 and r["notApplied"][0]["type"] == "value"
        write(c, "t1", [{"type": "value", "time": t(100 + i), "value": i} for i in range(1, 30)])
        r = hist(c, "t1", type="value", start=t(0), end=t(200), limit=10)
        assert [p["value"] for p in r["points"]] == [0.5, 1] + list(range(1, 9))
        assert r["more"] is True and r["next"] == r["points"][-1]["time"]
        seen = list(r["points"])
        while r["more"]:
            r = hist(c, "t1", type="value", start=t(0), end=t(200), limit=10, after=r["next"])
            seen += r["points"]
        assert [p["time"] for p in seen] == [t(50), t(100)] + [t(100 + i) for i in range(1, 30)]
        # The current value is the newest; the late point did not change it.
        n = c.request("nodes.all.t1", b"{}")["nodes"][0]
        assert [p["value"] for p in n["points"] if p["type"] == "value"] == [29]
        # A text point is not history by default; an unknown node is an error; a
        # point never recorded has an empty history.
        assert hist(c, "t1", type="description")["points"] == []
        assert hist(c, "nope", type="value") == {"error": "unknown node nope"}
        for bad, why in [({"type": "value", "start": "yesterday"}, "RFC 3339"),
                         ({"type": "value", "buckets": 0}, "1..10000"),
                         ({"type": "value", "since": "1h", "start": t(0)}, "not both"),
                         ({"key": "0"}, "query.type: missing"),
                         ({"type": "value", "colour": 1}, "unknown member")]:
            assert why in hist(c, "t1", **bad)["error"], bad
    finally:
        c.close()
        assert d.stop() == 0


def test_buckets_match_a_brute_force_computation(tmp_path):
    d = gateway(tmp_path)
    c = d.client()
    rnd = random.Random(7)
    pts, sec = [], 0
    for i in range(2000):
        sec += rnd.randint(1, 4)
        pts.append((sec * 10**9 + rnd.randint(0, 999), round(rnd.uniform(-50, 150), 3)))
    try:
        for b in range(0, len(pts), 200):
            write(c, "t1", [{"type": "value", "time": t(ns // 10**9, ns % 10**9), "value": v}
                            for ns, v in pts[b:b + 200]])
        for start, end, n in [(0, sec + 1, 7), (37, 2222, 100), (100, 101, 3), (0, sec + 500, 1)]:
            r = hist(c, "t1", type="value", start=t(start), end=t(end), buckets=n)
            assert len(r["buckets"]) <= n
            s0, span = start * 10**9, (end - start) * 10**9
            width = -(-span // n)
            total = 0
            for k, b in enumerate(r["buckets"]):
                lo, hi = s0 + k * width, min(s0 + (k + 1) * width, s0 + span)
                assert b["start"] == t((lo // 10**9), lo % 10**9)
                inb = [(ns, v) for ns, v in pts if lo <= ns < hi]
                assert b["count"] == len(inb), (k, b)
                total += len(inb)
                if inb:
                    vals = [v for _, v in inb]
                    assert b["min"] == min(vals) and b["max"] == max(vals)
                    assert abs(b["mean"] - sum(vals) / len(vals)) < 1e-9 * max(1, abs(b["mean"]))
                    assert b["last"] == max(inb)[1]
                else:
                    assert "min" not in b
            assert total == len([1 for ns, _ in pts if s0 <= ns < s0 + span])
    finally:
        c.close()
        assert d.stop() == 0


def test_retention_by_size_under_continuous_writes(tmp_path):
    # 120,000 bytes: about 2,500 rows of 48 bytes.
    d = gateway(tmp_path, history={"max_bytes": 120000, "max_age": "1d"})
    c = d.client()
    try:
        worst = 0
        for i in range(60):
            t0 = time.monotonic()
            write(c, "t1", [{"type": "value", "time": t(i * 100 + k), "value": i * 100 + k}
                            for k in range(100)])
            worst = max(worst, time.monotonic() - t0)
        # 6,000 rows written: the oldest went while the writes went on, none stalled.
        assert worst < 2.0, worst

        def trimmed():
            r = hist(c, "t1", type="value", start=t(0), end=t(7000), buckets=1)
            return r["buckets"][0]["count"] <= 2500 and r
        r = wait_for(trimmed, timeout=20, what="the history trimmed to its size")
        b = r["buckets"][0]
        assert b["count"] >= 2000, b  # down to 95% of the size, not emptied
        assert b["last"] == 5999  # the newest stay
        oldest = hist(c, "t1", type="value", start=t(0), end=t(7000), limit=1)["points"][0]
        assert oldest["value"] >= 6000 - b["count"] - 200, oldest  # the oldest went first
    finally:
        c.close()
        assert d.stop() == 0
    # The count survives a restart (kept in the store, not recounted).
    d.start()
    c = d.client()
    try:
        r = hist(c, "t1", type="value", start=t(0), end=t(7000), buckets=1)
        assert r["buckets"][0]["count"] == b["count"]
    finally:
        c.close()
        assert d.stop() == 0


def test_history_config_filters_and_refusals(tmp_path):
    d = gateway(tmp_path, history={"point_types": ["value", "state"], "node_types": ["variable"],
                                   "text": True},
                nodes=[{"id": "t1", "type": "variable", "points": {}},
                       {"id": "g1", "type": "group", "points": {}}])
    c = d.client()
    try:
        write(c, "t1", [{"type": "state", "time": t(1), "text": "running"},
                        {"type": "other", "time": t(1), "value": 3}])
        write(c, "g1", [{"type": "value", "time": t(1), "value": 1}])
        assert hist(c, "t1", type="state", start=t(0), end=t(9))["points"] == \
            [{"time": t(1), "text": "running"}]
        assert hist(c, "t1", type="other", start=t(0), end=t(9))["points"] == []
        assert hist(c, "g1", type="value", start=t(0), end=t(9))["points"] == []
    finally:
        c.close()
        assert d.stop() == 0
    bad = tmp_path / "bad.json"
    for history, why in [({"point_types": "value"}, "store.history.point_types"),
                         ({"node_types": ["a.b"]}, "store.history.node_types[0]"),
                         ({"max_age": "forever"}, "store.history.max_age"),
                         ({"keep": True}, "store.history.keep")]:
        bad.write_text(json.dumps({"store": {"history": history}}))
        r = subprocess.run([BIN, "check-config", str(bad)], capture_output=True, text=True)
        assert r.returncode == 3 and why in r.stderr, (history, r.stderr)


def test_cli_builds_the_tree_and_shows_history(tmp_path):
    d = gateway(tmp_path, nodes=[])
    try:
        r = cli(d, "add", "hall", "group")
        assert r.returncode == 0 and "added hall (group) under gw-test" in r.stdout, r.stderr
        r = cli(d, "add", "t1", "variable", "--parent", "hall", "description=supply temp",
                "value=21.5")
        assert r.returncode == 0, r.stderr
        r = cli(d, "set", "t1", "value=22", "valueSet=23.5", "unit=degC")
        assert r.returncode == 0 and "t1 value = 22" in r.stdout, r.stderr
        r = cli(d, "get", "t1", "--json")
        pts = {p["type"]: p for p in json.loads(r.stdout)["points"]}
        assert pts["value"]["value"] == 22 and pts["valueSet"]["value"] == 23.5
        assert pts["unit"]["text"] == "degC" and pts["description"]["text"] == "supply temp"
        # One write: both points have the same time.
        assert pts["value"]["time"] == pts["valueSet"]["time"]
        r = cli(d, "history", "t1", "value")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert "2 points" in lines[0] and lines[2].split()[1] == "21.5", r.stdout
        assert lines[3].split()[1] == "22"
        r = cli(d, "history", "t1", "value", "--buckets", "4", "--json")
        assert sum(b["count"] for b in json.loads(r.stdout)["buckets"]) == 2
        r = cli(d, "history", "t1", "value", "--since", "1h", "--buckets", "2")
        assert r.returncode == 0 and "2 buckets" in r.stdout
        # Moves, and what is refused.
        assert cli(d, "add", "hall2", "group").returncode == 0
        r = cli(d, "move", "t1", "hall2")
        assert r.returncode == 0 and "moved t1 from hall to hall2" in r.stdout, r.stderr
        assert cli(d, "move", "hall", "hall2").returncode == 0
        r = cli(d, "move", "hall2", "hall")
        assert r.returncode == 1 and "own ancestor" in r.stderr, r.stderr
        r = cli(d, "add", "t2", "variable", "--parent", "nowhere")
        assert r.returncode == 1 and "unknown parent nowhere" in r.stderr
        r = cli(d, "add", "io1", "modbusIo")
        assert r.returncode == 1 and "may not be under gw-test" in r.stderr
        r = cli(d, "add", "x1", "thermostat")
        assert r.returncode == 2 and "not a node type" in r.stderr
        r = cli(d, "add", "t1", "variable")
        assert r.returncode == 1 and "exists already" in r.stderr
        r = cli(d, "set", "t9", "value=1")
        assert r.returncode == 1 and "unknown node t9" in r.stderr
        r = cli(d, "set", "t1", "value=1", "bad.key.x=2")
        assert r.returncode == 2 and "not TYPE or TYPE.KEY" in r.stderr
        r = cli(d, "history", "t1", "value", "--since", "soon")
        assert r.returncode == 2 and "not a duration" in r.stderr
        r = cli(d, "history", "t9", "value")
        assert r.returncode == 1 and "unknown node t9" in r.stderr
        r = cli(d, "tree")
        assert r.stdout.split() == ["gw-test", "(device)", "`--", "hall2", "(group)", "|--",
                                    "hall", "(group)", "`--", "t1", "(variable)"], r.stdout
    finally:
        assert d.stop() == 0
