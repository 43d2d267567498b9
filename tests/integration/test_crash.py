"""Crash safety: SIGKILL while points are being written loses no acknowledged point
and leaves a database that passes PRAGMA integrity_check."""
import json
import select
import sqlite3

from conftest import Daemon, wait_for


def test_sigkill_loses_no_acknowledged_point(tmp_path):
    d = Daemon(tmp_path, config={"nodes": [{"id": "meter", "type": "variable"}]}).start()
    c = d.client()
    c.sub("_INBOX.crash.>")
    acked = {}
    sent = {}
    seq = 0
    # Keep up to 64 requests in flight; each carries 10 points with distinct keys.
    inflight = 0
    while len(acked) < 4000:
        while inflight < 64:
            pts = [{"type": "energy", "key": "k%d_%d" % (seq, j), "value": seq * 10 + j}
                   for j in range(10)]
            sent[seq] = pts
            c.pub("p.meter", json.dumps(pts), reply="_INBOX.crash.%d" % seq)
            seq += 1
            inflight += 1
        subj, _, _, _, data = c.next_msg()
        assert json.loads(data) == {"ok": True}, data
        for p in sent[int(subj.rsplit(".", 1)[1])]:
            acked[p["key"]] = p["value"]
        inflight -= 1
    # Writes are still in flight: kill without warning.
    d.kill()
    c.close()

    db = sqlite3.connect(str(d.db_path()))
    assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    db.close()
    d.start()  # the store reopens (WAL recovery) and serves again
    db = sqlite3.connect(str(d.db_path()))
    assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    stored = dict(db.execute("select key, value from points where node='meter' and type='energy'"))
    missing = [k for k in acked if stored.get(k) != acked[k]]
    assert not missing, "%d acknowledged points lost, e.g. %s" % (len(missing), missing[:5])
    assert len(stored) >= len(acked)
    c2 = d.client()
    assert c2.request("p.meter", json.dumps([{"type": "after", "value": 1}])) == {"ok": True}
    assert d.stop() == 0
