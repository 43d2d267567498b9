"""The cloud keeps each device's history from the up stream: points a gateway buffers
while its link is down (its cloud's nats-server stopped) arrive in the cloud's history
with their own times once the link is back, and the cloud answers the same history
query as the gateway, for d.<device>.hist.<node> and, for an id on one device only,
hist.<node>."""
from conftest import wait_for
from sync_peers import (stop_peers,  # noqa: F401 (autouse)
                        Cloud, JsServer, bus, edge, ns_time, write_points)


def history(client, subject, start, end):
    r = client.js(subject, {"type": "value", "start": start, "end": end, "limit": 10000})
    assert "points" in r, r
    return [(p["time"], p["value"]) for p in r["points"]]


def test_history_across_an_outage(tmp_path):
    js = JsServer(tmp_path / "nats").start()
    cloud = Cloud(tmp_path, js.url).start()
    gw = edge(tmp_path, "gw1", js.url)
    sent = []
    try:
        c = bus(gw)

        def produce(first, n):
            for b in range(first, first + n, 50):
                pts = [{"type": "value", "time": ns_time(i * 1000), "value": i * 0.25}
                       for i in range(b, min(first + n, b + 50))]
                write_points(c, "v", pts)
                sent.extend((p["time"], p["value"]) for p in pts)

        produce(0, 100)
        start, end = ns_time(0), ns_time(10**7)
        capi = js.client()
        wait_for(lambda: _cloud_has(capi, "d.gw1.hist.v", start, end, len(sent)), timeout=30,
                 what="the history in the cloud before the outage")

        js.stop()  # the outage: the gateway buffers in its outbox
        produce(100, 300)
        # The gateway's own history has them already, with their own times.
        assert history(c, "hist.v", start, end) == sent
        js.start()
        capi = js.client()
        wait_for(lambda: _cloud_has(capi, "d.gw1.hist.v", start, end, len(sent)), timeout=60,
                 what="the buffered points in the cloud's history")
        assert history(capi, "d.gw1.hist.v", start, end) == sent
        assert history(capi, "hist.v", start, end) == sent  # through the node index
        # Buckets in the cloud as on the gateway.
        q = {"type": "value", "start": start, "end": ns_time(400 * 1000), "buckets": 8}
        assert capi.js("d.gw1.hist.v", q)["buckets"] == c.js("hist.v", q)["buckets"]
        assert capi.js("d.gw1.hist.nope", {"type": "value"}) == {"error": "unknown node nope"}
        c.close()
        capi.close()
        assert gw.stop() == 0
        assert cloud.stop() == 0
    finally:
        gw.stop()
        cloud.stop()
        js.stop()


def _cloud_has(client, subject, start, end, n):
    try:
        r = client.js(subject, {"type": "value", "start": start, "end": end, "limit": 10000})
    except AssertionError:  # no responders: the cloud is not connected yet
        return False
    return len(r.get("points", [])) == n
