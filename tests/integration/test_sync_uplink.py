"""The edge's uplink against a real nats-server with JetStream (streams made by the
test, as the cloud would): outbox batches with publish acks, the snapshot after each
connect, exactly once into the stream, the status points, and the outbox caps."""
import json

from conftest import wait_for
from sync_peers import (stop_peers,  # noqa: F401 (autouse)
                        JsServer, bus, create_streams, edge, node_points, ns_time,
                        uplinked_points, write_points)


def status(d):
    c = bus(d)
    try:
        pts = {k[0]: p for k, p in node_points(c, "nodes.all.sync").items()}
        for t in ("connected", "pending", "sent", "dropped", "lastError"):
            pts.setdefault(t, {})
        return pts
    finally:
        c.close()


def test_points_go_up_once_with_their_times(tmp_path):
    js = JsServer(tmp_path / "nats").start()
    try:
        admin = js.client()
        create_streams(admin)
        gw = edge(tmp_path, "gw1", js.url, sync_points={"token": "t0ken"})
        c = bus(gw)
        sent = []
        for b in range(10):
            pts = [{"type": "t", "key": str(b * 30 + i), "time": ns_time(b * 30 + i),
                    "value": b * 30 + i + 0.25} for i in range(30)]
            write_points(c, "v", pts)
            sent += [("v", "t", p["key"], p["time"], p["value"], None) for p in pts]

        def arrived():
            got = [p for p in uplinked_points(admin, "EP_UP", "gw1") if p[1] == "t"]
            return got if len(got) >= len(sent) else None
        got = wait_for(arrived, timeout=30, what="the points in the stream")
        assert sorted(got) == sorted(sent)  # every one, once, exact values and times

        # The snapshot carries the tree: the device, the sync node, v with its points.
        snap = uplinked_points(admin, "EP_UP", "gw1", snapshots=True)
        assert ("gw1", "nodeType", "0") in [p[:3] for p in snap]
        assert ("v", "seed", "0") in [p[:3] for p in snap]
        # Status points and credentials stay home; the other settings go up.
        allup = uplinked_points(admin, "EP_UP", "gw1")
        assert not [p for p in allup + snap if p[0] == "sync" and p[1] in ("sent", "pending",
                                                                             "token")]
        assert ("sync", "uri", "0") in [p[:3] for p in snap]

        st = wait_for(lambda: (lambda s: s if s["pending"].get("value") == 0 and
                               s["sent"].get("value", 0) >= 300 else None)(status(gw)),
                      timeout=10, what="the status points")
        assert st["connected"]["value"] == 1
        assert st["lastError"].get("text", "") == ""
        assert st["dropped"]["value"] == 0
        assert "lastConnected" in st

        # Each batch is one message with a Nats-Msg-Id and the Ep-Outbox header.
        msgs = [m for m in admin.stream_messages("EP_UP", "sync.gw1.up")
                if m["headers"].get("Ep-Kind") != "snapshot"]
        assert msgs and all(m["headers"]["Nats-Msg-Id"].startswith("gw1.") for m in msgs)
        assert all(len(m["headers"]["Ep-Outbox"].split()) == 2 for m in msgs)
        c.close()
        assert gw.stop() == 0
    finally:
        js.stop()


def test_restart_resends_nothing_and_snapshots_again(tmp_path):
    js = JsServer(tmp_path / "nats").start()
    try:
        admin = js.client()
        create_streams(admin)
        gw = edge(tmp_path, "gw2", js.url)
        c = bus(gw)
        write_points(c, "v", [{"type": "a", "time": ns_time(1), "value": 1}])
        wait_for(lambda: len([p for p in uplinked_points(admin, "EP_UP", "gw2") if p[1] == "a"]) == 1,
                 timeout=20, what="the first point")
        c.close()
        assert gw.stop() == 0
        snaps = len([m for m in admin.stream_messages("EP_UP", "sync.gw2.up")
                     if m["headers"].get("Ep-Kind") == "snapshot"])

        gw.start()
        c = bus(gw)
        write_points(c, "v", [{"type": "a", "time": ns_time(2), "value": 2}])
        wait_for(lambda: len([p for p in uplinked_points(admin, "EP_UP", "gw2") if p[1] == "a"]) == 2,
                 timeout=20, what="the second point")
        wait_for(lambda: len([m for m in admin.stream_messages("EP_UP", "sync.gw2.up")
                              if m["headers"].get("Ep-Kind") == "snapshot"]) > snaps,
                 timeout=20, what="a second snapshot")
        a = [p for p in uplinked_points(admin, "EP_UP", "gw2") if p[1] == "a"]
        assert [p[4] for p in a] == [1, 2]
        c.close()
        assert gw.stop() == 0
    finally:
        js.stop()


def test_outbox_cap_drops_oldest_and_counts(tmp_path):
    js = JsServer(tmp_path / "nats")  # never started: the link stays down
    gw = edge(tmp_path, "gw3", js.url, sync_points={"outboxMaxRows": 50})
    c = bus(gw)
    for b in range(4):
        write_points(c, "v", [{"type": "x", "key": str(b * 40 + i), "time": ns_time(b * 40 + i),
                               "value": i} for i in range(40)])
    st = wait_for(lambda: (lambda s: s if s["dropped"].get("value", 0) > 0 and
                           s["pending"].get("value", 0) > 0 else None)(status(gw)),
                  timeout=10, what="dropped and pending")
    assert st["pending"]["value"] <= 50
    assert st["dropped"]["value"] >= 160 - 50
    assert st["connected"]["value"] == 0
    assert "cannot connect" in st["lastError"]["text"]
    assert "cannot connect to nats://127.0.0.1:%d" % js.port in gw.output()
    # Offline, the status points' own rows do not make pending creep up.
    import time
    p0 = status(gw)["pending"]["value"]
    t0 = time.monotonic()
    wait_for(lambda: time.monotonic() - t0 > 2.5, timeout=5, what="2.5 s", interval=0.1)
    assert status(gw)["pending"]["value"] == p0

    # A runtime change of the cap applies to the next writes.
    write_points(c, "sync", [{"type": "outboxMaxRows", "value": 10}])
    write_points(c, "v", [{"type": "y", "key": str(i), "time": ns_time(500 + i), "value": i}
                          for i in range(5)])
    wait_for(lambda: status(gw)["pending"].get("value", 99) <= 10, timeout=10,
             what="the smaller cap")
    c.close()
    assert gw.stop() == 0


def outbox_rows(db):
    import sqlite3
    con = sqlite3.connect(str(db))
    try:
        return [r[0] for r in con.execute("SELECT id FROM outbox ORDER BY id")]
    finally:
        con.close()


def test_rows_already_in_the_stream_are_not_sent_again(tmp_path):
    """A batch stored whose PubAck never came back (the daemon died first): after a
    restart the stream's last message says which rows it holds, and they are not
    sent twice."""
    import sqlite3
    js = JsServer(tmp_path / "nats").start()
    try:
        admin = js.client()
        create_streams(admin)
        gw = edge(tmp_path, "gw4", "nats://127.0.0.1:1")  # nobody listens: offline
        c = bus(gw)
        pts = [{"type": "r", "key": str(i), "time": ns_time(i), "value": i} for i in range(10)]
        write_points(c, "v", pts)
        c.close()
        assert gw.stop() == 0
        rows = outbox_rows(gw.db_path())
        con = sqlite3.connect(str(gw.db_path()))
        epoch = con.execute("SELECT text FROM points WHERE node = 'sync' AND "
                            "type = 'outboxEpoch'").fetchone()[0]
        con.close()
        # What the lost batch put into the stream.
        m = admin.request("sync.gw4.up", json.dumps([{"node": "v", "points": pts}]),
                          headers={"Nats-Msg-Id": "lost", "Ep-Outbox": "%s %d" % (epoch, rows[-1]),
                                   "Nats-Expected-Last-Subject-Sequence": "0"})
        assert json.loads(m[3])["seq"] >= 1

        gw.config["nodes"][0]["points"]["uri"] = js.url
        gw.write_config()
        gw.start()
        c = bus(gw)
        wait_for(lambda: status(gw)["pending"].get("value") == 0 and
                 status(gw)["connected"].get("value") == 1, timeout=20, what="the outbox empty")
        write_points(c, "v", [{"type": "r", "key": "next", "time": ns_time(50), "value": 50}])
        wait_for(lambda: [p for p in uplinked_points(admin, "EP_UP", "gw4") if p[2] == "next"],
                 timeout=20, what="the next point")
        got = [p for p in uplinked_points(admin, "EP_UP", "gw4") if p[1] == "r"]
        assert len(got) == 11 and len({p[2] for p in got}) == 11
        c.close()
        assert gw.stop() == 0
    finally:
        js.stop()


def test_a_foreign_message_on_the_subject(tmp_path):
    """Another publisher on sync.<device>.up moves the subject's last sequence: the
    next batch is refused (wrong last sequence), the link reads the subject again
    and sends the batch once."""
    js = JsServer(tmp_path / "nats").start()
    try:
        admin = js.client()
        create_streams(admin)
        gw = edge(tmp_path, "gw5", js.url)
        c = bus(gw)
        write_points(c, "v", [{"type": "f", "key": "0", "time": ns_time(0), "value": 0}])
        wait_for(lambda: [p for p in uplinked_points(admin, "EP_UP", "gw5") if p[1] == "f"],
                 timeout=20, what="the first point")
        m = admin.request("sync.gw5.up", "[]", headers={"Ep-Outbox": "someone-else 999999"})
        assert "seq" in json.loads(m[3])
        for i in range(1, 4):
            write_points(c, "v", [{"type": "f", "key": str(i), "time": ns_time(i), "value": i}])
        wait_for(lambda: len([p for p in uplinked_points(admin, "EP_UP", "gw5")
                              if p[1] == "f"]) >= 4, timeout=20, what="the next points")
        got = [p[2] for p in uplinked_points(admin, "EP_UP", "gw5") if p[1] == "f"]
        assert sorted(got) == ["0", "1", "2", "3"]
        c.close()
        assert gw.stop() == 0
    finally:
        js.stop()
