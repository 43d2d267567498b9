"""The downlink queue is durable: a write the cloud accepted while the down stream
refused it is kept in the device's fleet store, survives a kill -9 of the cloud, and
reaches the gateway once the stream takes messages again; what the cloud ingests
from the gateways is never queued for the downlink.

How the publish is made to fail: the fleet API is served over the same NATS
connection as the downlink, so stopping nats-server would stop the write too.
Instead the down stream is made full and refusing (max_msgs at its current count,
discard "new"), which is what a JetStream cluster does when a stream hits its
limits: the publish gets an error PubAck ("maximum messages exceeded") while the
API and the gateway's consumer keep working. The cloud does not check max_msgs or
discard against cloud.json, so its restart leaves the limit in place; the test
lifts it afterwards.
"""
import sqlite3

from conftest import wait_for
from sync_peers import (stop_peers,  # noqa: F401 (autouse)
                        Cloud, JsServer, bus, edge, node_points, ns_time, wait_value,
                        write_points)


def info(client):
    return client.js("cloud.info", {})


def outbox_rows(cloud, device):
    db = sqlite3.connect("file:%s?mode=ro" % (cloud.dir / "data" / "devices" /
                                              ("%s.db" % device)), uri=True)
    try:
        return db.execute("SELECT node, type FROM outbox ORDER BY id").fetchall()
    finally:
        db.close()


def down_messages(client, device):
    return client.stream_messages("EP_DOWN", "sync.%s.down" % device)


def set_down_limit(client, max_msgs, discard):
    cfg = client.js("$JS.API.STREAM.INFO.EP_DOWN")["config"]
    cfg.update(max_msgs=max_msgs, discard=discard)
    r = client.js("$JS.API.STREAM.UPDATE.EP_DOWN", cfg)
    assert "error" not in r, r


def test_queued_downlink_survives_a_cloud_kill(tmp_path):
    js = JsServer(tmp_path / "nats").start()
    cloud = Cloud(tmp_path, js.url).start()
    gw = edge(tmp_path, "gw1", js.url)
    capi = js.client()
    c = bus(gw)
    wait_value(capi, "d.gw1.nodes.all.v", "seed", 0)

    # What comes up (the snapshot, a change on the gateway) is not queued to go down.
    write_points(c, "v", [{"type": "local", "time": ns_time(1), "value": 1}])
    wait_value(capi, "d.gw1.nodes.all.v", "local", 1)
    assert outbox_rows(cloud, "gw1") == []
    assert info(capi)["downPending"] == 0
    assert down_messages(capi, "gw1") == []

    # A write through the fleet API goes down at once, and only it.
    write_points(capi, "v", [{"type": "cfg", "time": ns_time(2), "value": 1}],
                 subject="d.gw1.p.v")
    wait_value(c, "nodes.all.v", "cfg", 1)
    assert [m["data"][0]["points"][0]["type"] for m in down_messages(capi, "gw1")] == ["cfg"]
    wait_for(lambda: outbox_rows(cloud, "gw1") == [], timeout=10, what="the row deleted")

    # The down stream refuses: writes are accepted, kept, and said to be pending.
    n = len(down_messages(capi, "gw1"))
    set_down_limit(capi, n, "new")
    r = capi.js("d.gw1.p.v", [{"type": "cfg", "time": ns_time(3), "value": 2}])
    assert r["ok"] is True and r["downlink"].startswith("pending: "), r
    r = capi.js("d.gw1.e.v.gw1", [{"type": "description", "time": ns_time(4),
                                    "text": "set while the stream was full"}])
    assert r["ok"] is True and "pending" in r["downlink"], r
    assert outbox_rows(cloud, "gw1") == [("v", "cfg"), ("v", "description")]
    assert info(capi)["downPending"] == 2
    assert "downlink not published" in cloud.output()

    # kill -9 and start again: the queue is still there, the stream still refuses.
    cloud.proc.kill()
    cloud.proc.wait()
    cloud.log.close()
    cloud.start()
    wait_for(lambda: "downlink not published" in cloud.output(), timeout=20,
             what="the resend refused after the restart")
    assert outbox_rows(cloud, "gw1") == [("v", "cfg"), ("v", "description")]
    assert node_points(c, "nodes.all.v")[("cfg", "0")]["value"] == 1

    # The stream takes messages again: the retry delivers both, in one message.
    set_down_limit(capi, -1, "old")
    p = wait_value(c, "nodes.all.v", "cfg", 2)
    assert p["time"] == ns_time(3)
    wait_for(lambda: any(p.get("type") == "description" and
                         p.get("text") == "set while the stream was full"
                         for p in c.js("nodes.all.v", {})["nodes"][0]["edgePoints"]),
             timeout=10, what="the edge point")
    wait_for(lambda: outbox_rows(cloud, "gw1") == [], timeout=10, what="the queue empty")
    st = wait_for(lambda: (lambda i: i if i["downPending"] == 0 else None)(info(capi)),
                  timeout=10, what="downPending 0")
    assert st["downRetried"] == 1
    msgs = down_messages(capi, "gw1")
    assert len(msgs) == n + 1
    assert msgs[-1]["headers"]["Nats-Msg-Id"].startswith("c1.gw1.")
    assert [(e["node"], e.get("parent")) for e in msgs[-1]["data"]] == [("v", None),
                                                                        ("v", "gw1")]
    # Nothing the gateway got came back down again, and nothing went up twice.
    write_points(capi, "v", [{"type": "cfg", "time": ns_time(5), "value": 3}],
                 subject="d.gw1.p.v")
    wait_value(c, "nodes.all.v", "cfg", 3)
    assert len(down_messages(capi, "gw1")) == n + 2
    c.close()
    capi.close()
    assert gw.stop() == 0
    assert cloud.stop() == 0
