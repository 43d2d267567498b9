"""Security: secrets are write-only through the bus, stored hashed where the gateway
keeps a user's password, never sent up, and the documented example permissions keep
users' replies apart (issue 9, item 3).

The bus users and their permissions are the example of docs/security.md, read from
that file, so the documentation says what is tested. Secrets here: the sync node's
token and password, a user node's password.
"""
import base64
import hashlib
import json
import os
import re
import sqlite3

import pytest

from conftest import ROOT, Daemon, NatsClient, run, wait_for
from peers import password_hash
from sync_peers import (stop_peers,  # noqa: F401 (autouse)
                        JsServer, create_streams, uplinked_points)

PASSWORDS = {"hmi": "hmi pw 1", "viewer": "viewer pw 2", "admin": "admin pw 3"}
SYNC_TOKEN = "t0ken-9f2c-sync"
SYNC_PASSWORD = "sync-pa55-77e1"
ALICE_PW = "alice plain pw 31"
SECRETS = [SYNC_TOKEN, SYNC_PASSWORD, ALICE_PW]


def doc_users():
    """The bus.auth example of docs/security.md, with real password hashes."""
    text = open(os.path.join(ROOT, "docs", "security.md")).read()
    part = text.split("### Example permissions", 1)[1]
    block = re.search(r"```json\n(.*?)```", part, re.S).group(1)
    bus = json.loads("{" + block + "}")["bus"]
    for u in bus["auth"]["users"]:
        u["password_hash"] = password_hash(PASSWORDS[u["user"]])
    return bus["auth"]


def gateway(tmp_path, sync_uri="nats://127.0.0.1:1", name="ep"):
    d = Daemon(tmp_path, name=name)
    d.config["bus"]["auth"] = doc_users()
    d.config["nodes"] = [
        {"id": "sync", "type": "sync",
         "points": {"uri": sync_uri, "token": SYNC_TOKEN}},
        {"id": "alice", "type": "user",
         "points": {"firstName": "Alice", "password": ALICE_PW}},
        {"id": "v", "type": "variable", "points": {"seed": 1}},
    ]
    d.write_config()
    return d


def login(d, user):
    return NatsClient(d.port, connect={"user": user, "pass": PASSWORDS[user]})


def request(c, user, subject, payload="{}"):
    """A request with the reply under _INBOX.<user>; returns the raw reply bytes."""
    c.sid += 1
    inbox = "_INBOX.%s.%d" % (user, c.sid)
    c.send(("SUB %s %d\r\n" % (inbox, c.sid)).encode())
    c.pub(subject, payload, reply=inbox)
    return c.next_msg(10)[4]


def cli(d, *args, user="admin"):
    return run(list(args) + ["-s", "nats://127.0.0.1:%d" % d.port, "--user", user,
                             "--password", PASSWORDS[user]])


def db_bytes(d):
    data = b""
    for f in os.listdir(d.dir / "data"):
        if f.startswith("edgepoint.db"):
            data += (d.dir / "data" / f).read_bytes()
    return data


def stored_text(d, node, typ):
    db = sqlite3.connect("file:%s?mode=ro" % (d.dir / "data" / "edgepoint.db"), uri=True)
    try:
        row = db.execute("SELECT text FROM points WHERE node = ? AND type = ?",
                         (node, typ)).fetchone()
        return row[0] if row else None
    finally:
        db.close()


def pbkdf2_matches(h, password):
    _, alg, it, salt, key = h.split("$")
    assert alg == "pbkdf2-sha256"
    salt, key = base64.b64decode(salt), base64.b64decode(key)
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(it), len(key)) == key


@pytest.fixture
def gw(tmp_path):
    d = gateway(tmp_path).start()
    # The sync node's password is set at run time, through the bus, as from a UI.
    admin = login(d, "admin")
    r = request(admin, "admin", "p.sync", json.dumps([{"type": "password", "text": SYNC_PASSWORD}]))
    assert json.loads(r) == {"ok": True}
    admin.close()
    yield d
    assert d.stop() == 0


def test_queries_show_that_a_secret_is_set_never_its_value(gw):
    viewer = login(gw, "viewer")
    raw = request(viewer, "viewer", "nodes.gw-test.all")
    for s in SECRETS:
        assert s.encode() not in raw, s
    nodes = {n["id"]: {p["type"]: p for p in n["points"]} for n in json.loads(raw)["nodes"]}
    for node, typ in (("sync", "token"), ("sync", "password"), ("alice", "password")):
        p = nodes[node][typ]
        assert p.get("secret") is True and "text" not in p, p
    assert nodes["sync"]["uri"]["text"] == "nats://127.0.0.1:1"  # other points as they are
    assert nodes["alice"]["firstName"]["text"] == "Alice"
    one = json.loads(request(viewer, "viewer", "nodes.all.alice"))
    assert one["nodes"][0]["points"] and ALICE_PW not in json.dumps(one)
    # Writing back what was shown is refused: it cannot blank the password.
    shown = [nodes["alice"]["password"]]
    admin = login(gw, "admin")
    r = json.loads(request(admin, "admin", "p.alice", json.dumps(shown)))
    assert "error" in r and "secret" in r["error"], r
    assert pbkdf2_matches(stored_text(gw, "alice", "password"), ALICE_PW)
    viewer.close()
    admin.close()


def test_user_passwords_are_stored_hashed(gw):
    h = stored_text(gw, "alice", "password")
    assert h.startswith("$pbkdf2-sha256$") and pbkdf2_matches(h, ALICE_PW), h
    admin = login(gw, "admin")
    r = request(admin, "admin", "p.alice", json.dumps([{"type": "password", "text": "new pw 4"}]))
    assert json.loads(r) == {"ok": True}
    h2 = stored_text(gw, "alice", "password")
    assert h2 != h and pbkdf2_matches(h2, "new pw 4")
    # A hash written as such is kept as it is (what `edgepoint passwd` prints).
    ready = password_hash("from passwd 5")
    r = request(admin, "admin", "p.alice", json.dumps([{"type": "password", "text": ready}]))
    assert json.loads(r) == {"ok": True}
    assert stored_text(gw, "alice", "password") == ready
    admin.close()
    assert ALICE_PW.encode() not in db_bytes(gw) and b"new pw 4" not in db_bytes(gw)
    # The outbox never holds a secret.
    db = sqlite3.connect("file:%s?mode=ro" % (gw.dir / "data" / "edgepoint.db"), uri=True)
    rows = db.execute("SELECT node, type FROM outbox").fetchall()
    db.close()
    assert rows, "the outbox is on (a sync node exists) and holds the other points"
    assert not [r for r in rows if (r[0], r[1]) in (("alice", "password"), ("sync", "token"),
                                                    ("sync", "password"))], rows


def test_export_leaves_secrets_out_and_says_so(gw, tmp_path):
    r = cli(gw, "export")
    assert r.returncode == 0, r.stderr
    for s in SECRETS:
        assert s not in r.stdout and s not in r.stderr
    assert "$pbkdf2" not in r.stdout
    for node, typ in (("sync", "token"), ("sync", "password"), ("alice", "password")):
        assert "node %s: %s is set but not exported" % (node, typ) in r.stderr, r.stderr
    f = tmp_path / "exported.json"
    f.write_text(r.stdout)
    assert run(["check-config", str(f)]).returncode == 0
    nodes = {n["id"]: n for n in json.loads(r.stdout)["nodes"]}
    assert nodes["alice"]["points"] == {"firstName": "Alice"}
    assert nodes["sync"]["points"]["uri"] == "nats://127.0.0.1:1"


def test_example_permissions_keep_replies_apart(gw):
    viewer = login(gw, "viewer")
    # Other users' inboxes, or all of them, are not the viewer's to read.
    for subj in ("_INBOX.>", "_INBOX.hmi.>", "_INBOX.*.*"):
        viewer.send(("SUB %s 9%d\r\n" % (subj, len(subj))).encode())
        line = viewer.readline()
        assert line == ('-ERR \'Permissions Violation for Subscription to "%s"\'' % subj).encode()
    viewer.send(b"SUB _INBOX.viewer.> 99\r\n")
    viewer.ping()
    # hmi's command-line requests use _INBOX.hmi by themselves and work...
    r = cli(gw, "get", "alice", user="hmi")
    assert r.returncode == 0, r.stderr
    assert "Alice" in r.stdout and ALICE_PW not in r.stdout
    # ... and nothing of them reached the viewer (PONG comes after anything queued).
    viewer.ping()
    assert not getattr(viewer, "pending", []), viewer.pending
    # hmi may not read the viewer's inbox either, nor publish to the denied pump.
    hmi = login(gw, "hmi")
    hmi.send(b"SUB _INBOX.viewer.> 1\r\n")
    assert hmi.readline() == b'-ERR \'Permissions Violation for Subscription to "_INBOX.viewer.>"\''
    viewer.close()
    hmi.close()


def test_secrets_never_go_up(tmp_path):
    js = JsServer(tmp_path / "nats").start()
    admin = js.client()
    create_streams(admin)
    d = gateway(tmp_path, sync_uri=js.url, name="gw").start()
    try:
        check_nothing_secret_goes_up(d, admin)
    finally:
        admin.close()
        assert d.stop() == 0


def check_nothing_secret_goes_up(d, admin):
    c = login(d, "admin")
    assert json.loads(request(c, "admin", "p.alice", json.dumps(
        [{"type": "password", "text": "runtime pw 6"}]))) == {"ok": True}
    assert json.loads(request(c, "admin", "p.v", json.dumps(
        [{"type": "marker", "value": 7}]))) == {"ok": True}
    c.close()
    wait_for(lambda: ("v", "marker", "0") in
             [p[:3] for p in uplinked_points(admin, "EP_UP", "gw-test")], 30, "the marker upstream")
    up = uplinked_points(admin, "EP_UP", "gw-test")
    snap = uplinked_points(admin, "EP_UP", "gw-test", snapshots=True)
    assert ("alice", "firstName", "0") in [p[:3] for p in snap]
    sent = json.dumps(up + snap)
    for s in SECRETS + ["runtime pw 6", "$pbkdf2"]:
        assert s not in sent, s
    assert not [p for p in up + snap if p[1] in ("password", "token")]
