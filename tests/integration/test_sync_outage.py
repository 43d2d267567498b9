"""An outage of the cloud's nats-server while two gateways keep producing, one of
them restarted during the outage: once the server is back, every point produced
arrives in the cloud's fleet store, and the stream holds each exactly once."""
from conftest import wait_for
from sync_peers import (stop_peers,  # noqa: F401 (autouse)
                        Cloud, JsServer, bus, edge, node_points, ns_time, uplinked_points,
                        write_points)


def produce(gw, first, n, sent):
    """Writes n points with distinct keys and times on v; records them in sent."""
    c = bus(gw)
    dev = gw.config["device_id"]
    for b in range(0, n, 25):
        pts = [{"type": "q", "key": str(first + i), "time": ns_time(first + i),
                "value": (first + i) * 1.5} for i in range(b, min(n, b + 25))]
        write_points(c, "v", pts)
        sent[dev].update({p["key"]: (p["time"], p["value"]) for p in pts})
    c.close()


def status(gw):
    c = bus(gw)
    try:
        return {k[0]: p.get("value", p.get("text")) for k, p in
                node_points(c, "nodes.all.sync").items()}
    finally:
        c.close()


def test_outage_and_restart_lose_nothing(tmp_path):
    js = JsServer(tmp_path / "nats").start()
    cloud = Cloud(tmp_path, js.url).start()
    gws = [edge(tmp_path, name, js.url) for name in ("gw1", "gw2")]
    sent = {"gw1": {}, "gw2": {}}
    try:
        for gw in gws:
            produce(gw, 0, 100, sent)
        capi = js.client()

        def in_cloud(dev):
            try:
                r = capi.js("d.%s.nodes.all.v" % dev, {})
            except AssertionError:  # no responders: the cloud is not back yet
                return False
            got = {p["key"]: (p["time"], p["value"]) for p in r.get("nodes", [{}])[0]
                   .get("points", []) if p["type"] == "q"} if r.get("nodes") else {}
            return got == sent[dev]
        for dev in sent:
            wait_for(lambda dev=dev: in_cloud(dev), timeout=30, what=dev + " before the outage")
        capi.close()

        js.stop()  # the outage
        for gw in gws:
            wait_for(lambda gw=gw: status(gw).get("connected") == 0, timeout=15,
                     what="the link down")
        produce(gws[0], 1000, 300, sent)
        produce(gws[1], 1000, 300, sent)
        assert gws[0].stop() == 0  # a restart during the outage
        gws[0].start()
        produce(gws[0], 2000, 200, sent)
        for gw in gws:
            wait_for(lambda gw=gw: (status(gw).get("pending") or 0) >= 200, timeout=10,
                     what="the outbox filling")

        js.start()  # the server returns, with its streams
        capi = js.client()
        for dev in sent:
            wait_for(lambda dev=dev: in_cloud(dev), timeout=60, what=dev + " after the outage")
        for dev in sent:  # exactly once into the stream
            up = [p for p in uplinked_points(capi, "EP_UP", dev) if p[1] == "q"]
            keys = [p[2] for p in up]
            assert len(keys) == len(set(keys)) == len(sent[dev]), \
                (dev, len(keys), len(set(keys)), len(sent[dev]))
            assert {p[2]: (p[3], p[4]) for p in up} == sent[dev]
        for gw in gws:
            wait_for(lambda gw=gw: status(gw).get("pending") == 0, timeout=20,
                     what="the outbox drained")
            assert status(gw).get("dropped") == 0
        capi.close()
        for gw in gws:
            assert gw.stop() == 0
        assert cloud.stop() == 0
    finally:
        for gw in gws:
            gw.stop()
        cloud.stop()
        js.stop()
