"""A three-server nats-server cluster on loopback with streams of three replicas:
one server is killed while the gateways send, and nothing is lost or doubled."""
from conftest import wait_for
from sync_peers import (stop_peers,  # noqa: F401 (autouse)
                        Cloud, bus, cluster, edge, ns_time, uplinked_points, write_points)


def test_a_server_killed_during_the_uplink(tmp_path):
    servers = cluster(tmp_path)
    for s in servers:
        s.start(wait_js=False)
    for s in servers:
        s.wait_js(timeout=60)
    urls = ",".join(s.url for s in servers)
    streams = {"up": {"replicas": 3, "max_age": "1h"}, "down": {"replicas": 3, "max_age": "1h"}}
    cloud = Cloud(tmp_path, urls, streams=streams).start(wait=False)
    gws = []
    try:
        cloud.wait_ready(timeout=90)
        admin = servers[0].client()
        info = admin.js("$JS.API.STREAM.INFO.EP_UP")
        assert info["config"]["num_replicas"] == 3
        gws = [edge(tmp_path, name, urls) for name in ("gw1", "gw2")]
        sent = {"gw1": set(), "gw2": set()}

        def produce(first, n):
            for gw in gws:
                c = bus(gw)
                dev = gw.config["device_id"]
                for b in range(first, first + n, 20):
                    pts = [{"type": "k", "key": str(i), "time": ns_time(i), "value": i}
                           for i in range(b, b + 20)]
                    write_points(c, "v", pts)
                    sent[dev].update(p["key"] for p in pts)
                c.close()

        produce(0, 200)
        # Kill the up stream's leader while the batches are going up.
        leader = admin.js("$JS.API.STREAM.INFO.EP_UP")["cluster"]["leader"]
        victim = next(s for s in servers if s.conf_path and ("server_name: " + leader)
                      in open(s.conf_path).read())
        produce(200, 200)
        victim.kill()
        produce(400, 200)
        alive = [s for s in servers if s is not victim]
        admin.close()
        admin = alive[0].client()

        def arrived(dev):
            try:
                keys = [p[2] for p in uplinked_points(admin, "EP_UP", dev) if p[1] == "k"]
            except (AssertionError, KeyError, OSError):
                return False  # a new leader is being elected
            return sorted(keys, key=int) == sorted(sent[dev], key=int)
        for dev in sent:  # all there, none twice
            wait_for(lambda dev=dev: arrived(dev), timeout=60, what=dev + "'s points")

        def in_cloud(dev):
            try:
                r = admin.js("d.%s.nodes.all.v" % dev, {}, timeout=5)
            except AssertionError:
                return False
            keys = {p["key"] for p in r["nodes"][0]["points"] if p["type"] == "k"} \
                if r.get("nodes") else set()
            return keys == sent[dev]
        for dev in sent:
            wait_for(lambda dev=dev: in_cloud(dev), timeout=60, what=dev + " in the cloud")
        admin.close()
        for gw in gws:
            assert gw.stop() == 0
        assert cloud.stop() == 0
    finally:
        for gw in gws:
            gw.stop()
        cloud.stop()
        for s in servers:
            s.stop()
