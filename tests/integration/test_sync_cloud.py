"""The cloud side: two gateways push into one `edgepoint cloud` through a real
nats-server with JetStream; the fleet store holds every point with its exact value
and time, and the fleet API answers for the whole fleet."""
from conftest import wait_for
from sync_peers import (stop_peers,  # noqa: F401 (autouse)
                        Cloud, JsServer, bus, edge, ns_time, uplinked_points, wait_value,
                        write_points)


def test_two_edges_into_the_fleet_store(tmp_path):
    js = JsServer(tmp_path / "nats").start()
    cloud = Cloud(tmp_path, js.url).start()
    try:
        admin = js.client()
        info = admin.js("$JS.API.STREAM.INFO.EP_UP")
        assert info["config"]["subjects"] == ["sync.*.up"]
        assert info["config"]["max_age"] == 3600 * 10**9

        gws = [edge(tmp_path, name, js.url, nodes=[{"id": "t_" + name, "type": "variable",
                                                     "points": {"n": 0}}])
               for name in ("gw1", "gw2")]
        sent = {}
        for k, gw in enumerate(gws):
            c = bus(gw)
            for b in range(5):
                pts = [{"type": "p", "key": str(i), "time": ns_time(k * 1000 + b * 40 + i),
                        "value": k * 1000 + b * 40 + i + 0.5} for i in range(40)]
                write_points(c, "v", pts)
                for p in pts:  # the last write of each key wins
                    sent[(gw.config["device_id"], p["key"])] = (p["time"], p["value"])
            c.close()

        capi = js.client()
        for dev in ("gw1", "gw2"):
            def all_there(dev=dev):
                r = capi.js("d.%s.nodes.all.v" % dev, {})
                pts = {p["key"]: (p["time"], p["value"]) for p in r["nodes"][0]["points"]
                       if p["type"] == "p"} if r.get("nodes") else {}
                want = {k[1]: v for k, v in sent.items() if k[0] == dev}
                return pts == want
            wait_for(all_there, timeout=30, what="gateway %s's points in the cloud" % dev)

        # None twice in the stream: every point of the outbox went up once.
        for dev in ("gw1", "gw2"):
            up = [p for p in uplinked_points(admin, "EP_UP", dev) if p[1] == "p"]
            assert len(up) == 200 and len(set(up)) == 200

        # The fleet API: unique ids without the device, ambiguous ones refused.
        r = capi.js("nodes.all.t_gw1", {})
        assert r["nodes"][0]["id"] == "t_gw1"
        r = capi.js("nodes.all.v", {})
        assert "several devices" in r["error"] and "gw1" in r["error"] and "gw2" in r["error"]
        r = capi.js("p.v", [{"type": "x", "value": 1}])
        assert "several devices" in r["error"]
        r = capi.js("nodes.root.all", {})
        assert sorted(n["id"] for n in r["nodes"]) == ["gw1", "gw2"]
        r = capi.js("d.nope.nodes.all.v", {})
        assert "unknown device nope" in r["error"]
        info = capi.js("cloud.info", {})
        assert info["devices"] == 2 and info["upPoints"] >= 400 and info["snapshots"] >= 2

        for gw in gws:
            assert gw.stop() == 0
        assert cloud.stop() == 0

        # A restarted cloud knows its fleet from its files.
        cloud.start()
        r = capi.js("nodes.all.t_gw2", {})
        assert r["nodes"][0]["parent"] == "gw2"
        assert cloud.stop() == 0
    finally:
        cloud.stop()
        js.stop()


def stored_value(cloud, dev, node, type_):
    """The value of a point in one cloud instance's own store file (read-only)."""
    import sqlite3
    path = cloud.dir / "data" / "devices" / (dev + ".db")
    if not path.exists():
        return None
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        r = con.execute("SELECT value FROM points WHERE node = ? AND type = ? AND key = '0'",
                        (node, type_)).fetchone()
        return r[0] if r else None
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()


def test_two_cloud_instances_share_one_cluster(tmp_path):
    js = JsServer(tmp_path / "nats").start()
    c1 = Cloud(tmp_path, js.url, name="cloud1", instance="c1").start()
    c2 = Cloud(tmp_path, js.url, name="cloud2", instance="c2").start()
    try:
        gw = edge(tmp_path, "gw1", js.url)
        c = bus(gw)
        write_points(c, "v", [{"type": "up", "time": ns_time(3), "value": 3}])
        for cl in (c1, c2):  # each instance keeps a full copy
            wait_for(lambda cl=cl: stored_value(cl, "gw1", "v", "up") == 3, timeout=20,
                     what="the point in " + cl.config["instance"])
        capi = js.client()
        # Writes go to whichever instance the queue group picks; all converge.
        for i in range(6):
            write_points(capi, "v", [{"type": "w%d" % i, "value": i}], subject="d.gw1.p.v")
        for i in range(6):
            wait_value(c, "nodes.all.v", "w%d" % i, i)
            for cl in (c1, c2):
                wait_for(lambda cl=cl, i=i: stored_value(cl, "gw1", "v", "w%d" % i) == i,
                         timeout=20, what="w%d in %s" % (i, cl.config["instance"]))
        writes = [capi.js("cloud.%s.info" % n, {})["writes"] for n in ("c1", "c2")]
        assert sum(writes) == 6, writes  # each write taken by one instance
        c.close()
        assert gw.stop() == 0
        assert c1.stop() == 0 and c2.stop() == 0
    finally:
        c1.stop()
        c2.stop()
        js.stop()
