"""Faults (issue 11, section 6): the store's disk fills up while points are written,
the data directory is read-only or the database is corrupt or truncated at start, and
the daemon is SIGKILLed again and again during mixed writes.

Disk-full and read-only cases mount a tmpfs (root only: they skip, saying so, where
mount is refused). Everything waits by polling a reply, a port or a log line."""
import json
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import BIN, Daemon, NatsClient, free_port, run, wait_for

FULL = "no space left on the device (the store's disk is full)"
ENOSPC = {"error": FULL, "code": "EP_ENOSPC"}


@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, size): a fresh tmpfs under tmp_path; unmounted at the end."""
    mounted = []

    def mount(name, size, opts=""):
        path = tmp_path / name
        path.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s%s" % (size, opts),
                            "tmpfs", str(path)], capture_output=True, text=True)
        if r.returncode:
            pytest.skip("cannot mount a tmpfs here (%s)" % r.stderr.strip())
        mounted.append(path)
        return path
    yield mount
    for p in reversed(mounted):
        subprocess.run(["umount", "-l", str(p)])


def fill(path, leave=0):
    """Fills the file system of path with one file, leaving about `leave` bytes."""
    filler = os.path.join(str(path), "filler")
    st = os.statvfs(str(path))
    want = max(st.f_bavail * st.f_frsize - leave, 0)
    with open(filler, "wb") as f:
        try:
            while want > 0:
                n = min(want, 1 << 20)
                f.write(b"\0" * n)
                f.flush()
                want -= n
        except OSError:
            pass
    return filler


def sqlite_copy(db, dest):
    """Copies db with its -wal (not -shm) into dest and returns the copy's path: a
    check on the copy leaves the original's WAL for the daemon to recover."""
    dest.mkdir(exist_ok=True)
    out = dest / db.name
    for suffix in ("", "-wal"):
        src = str(db) + suffix
        if os.path.exists(src):
            shutil.copyfile(src, str(out) + suffix)
        elif os.path.exists(str(out) + suffix):
            os.remove(str(out) + suffix)
    if os.path.exists(str(out) + "-shm"):
        os.remove(str(out) + "-shm")
    return out


def integrity(db):
    """PRAGMA integrity_check by the sqlite3 command-line shell."""
    r = subprocess.run(["sqlite3", str(db), "PRAGMA integrity_check;"], capture_output=True,
                       text=True, timeout=60)
    return (r.stdout + r.stderr).strip()


class Writer:
    """Pipelined point writes on one connection, each request a batch of points with
    keys of their own; remembers what was acknowledged and what was refused."""

    def __init__(self, port, node, name, npoints=50, text=200):
        self.c = NatsClient(port)
        self.node, self.name = node, name
        self.npoints, self.text = npoints, "x" * text
        self.c.sub("_INBOX.%s.>" % name)
        self.sent, self.acked, self.refused = {}, {}, []
        self.seq = 0

    def send(self):
        pts = [{"type": "fill", "key": "%s_%d_%d" % (self.name, self.seq, j),
                "value": self.seq, "text": self.text} for j in range(self.npoints)]
        self.sent[self.seq] = pts
        self.c.pub("p." + self.node, json.dumps(pts), reply="_INBOX.%s.%d" % (self.name, self.seq))
        self.seq += 1

    def reply(self):
        subj, _, _, _, data = self.c.next_msg()
        r = json.loads(data)
        pts = self.sent.pop(int(subj.rsplit(".", 1)[1]))
        if r == {"ok": True}:
            for p in pts:
                self.acked[p["key"]] = p["value"]
        else:
            self.refused.append(r)
        return r

    def run(self, until, inflight=32, limit=100000):
        """Writes with `inflight` requests outstanding until until(reply) is true."""
        for _ in range(limit):
            while len(self.sent) < inflight:
                self.send()
            if until(self.reply()):
                break
        while self.sent:
            self.reply()


def stored_fill(db):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return dict(con.execute("SELECT key, value FROM points WHERE type = 'fill'"))
    finally:
        con.close()


def lost(acked, stored):
    return [k for k, v in acked.items() if stored.get(k) != v]


def full_log_lines(text):
    return [l for l in text.splitlines() if " store: " in l and
            ("disk is" in l or "disk or" in l or "succeed again" in l)]


def test_disk_full_refuses_writes_keeps_acknowledged_and_recovers(tmp_path, tmpfs):
    """Three times: fill the disk while writing, check what is refused and that the
    rest goes on, free the space and check that writes go through again; then every
    acknowledged write is there, before and after a restart (and a start on a full
    disk fails with exit code 4)."""
    disk = tmpfs("disk", "64m")
    nodes = [{"id": "v1", "type": "variable"}, {"id": "r1", "type": "variable"},
             # An unreachable cloud: the outbox records every change, so it fills too.
             {"id": "up", "type": "sync", "points": {"uri": "nats://127.0.0.1:1"}}]
    d = Daemon(tmp_path, config={"nodes": nodes, "data_dir": str(disk / "data")}).start()
    w = Writer(d.port, "v1", "w")
    tiny = Writer(d.port, "v1", "t", npoints=1, text=10)
    reader = d.client()
    sub, pub = d.client(), d.client()
    filler = None
    try:
        assert reader.request("p.r1", json.dumps([{"type": "seen", "value": 7}])) == {"ok": True}
        # Small requests fail at COMMIT (the WAL cannot grow); big batches (10,000
        # points, 5 MB) fail halfway, when SQLite spills its page cache to the WAL.
        rounds = ((3 << 20, 50, 200), (3 << 20, 500, 1000), (256 << 10, 50, 200))
        for rnd, (leave, w.npoints, text) in enumerate(rounds):
            w.text = "x" * text
            filler = fill(disk, leave)
            w.run(lambda r: r != {"ok": True})
            assert w.refused, "round %d: the disk never filled up" % rnd
            # Every refusal says the disk is full, in words and as a code.
            assert all(r == ENOSPC for r in w.refused), w.refused[:3]
            # Still full: keep writing at full speed; every write is refused.
            w.refused.clear()
            w.run(lambda r: len(w.refused) >= 300)
            assert all(r == ENOSPC for r in w.refused), w.refused[:3]
            # Small writes may still fit where the failed batches grew the WAL
            # file; once they too are refused, so is the command line's.
            tiny.run(lambda r: r != {"ok": True}, inflight=1)
            assert tiny.refused == [ENOSPC], tiny.refused
            tiny.refused.clear()
            r = run(["set", "v1", "big", "--text", "y" * 60000, "-s",
                     "nats://127.0.0.1:%d" % d.port])
            assert r.returncode == 1 and FULL in r.stderr, (r.returncode, r.stderr)
            # Reads and the bus go on.
            r = reader.request("nodes.gw-test.r1", "")
            assert r["nodes"][0]["points"][0]["value"] == 7, r
            assert "version" in reader.request("sys.gw-test.info", "")
            sub.sub("fault.echo.%d" % rnd)
            sub.ping()
            pub.pub("fault.echo.%d" % rnd, "still here")
            assert sub.next_msg()[4] == b"still here"
            # Room again: the very next write goes through, no restart.
            os.remove(filler)
            filler = None
            before = len(w.acked)
            w.refused.clear()
            w.run(lambda r: True, inflight=1)
            assert len(w.acked) > before and not w.refused, w.refused
            # The log says so once writes have gone through for a while.
            def over():
                tiny.run(lambda r: True, inflight=1)
                return d.output().count("writes succeed again") == rnd + 1
            try:
                wait_for(over, timeout=20, what="the log line saying that writes succeed again")
            except AssertionError:
                st = os.statvfs(str(disk))
                raise AssertionError("round %d: %d bytes free, files %s, refused %s" % (
                    rnd, st.f_bavail * st.f_frsize,
                    {f: os.path.getsize(disk / "data" / f) for f in os.listdir(disk / "data")},
                    tiny.refused[:2]))
            assert not tiny.refused, tiny.refused[:3]
            # The WAL that the full disk let grow is cut back to 4 MiB once it starts
            # over, so the space comes back (PRAGMA journal_size_limit).
            wal = disk / "data" / "edgepoint.db-wal"
            wait_for(lambda: (tiny.run(lambda r: True, inflight=1),
                              os.path.getsize(wal) <= 4 << 20)[1], timeout=20,
                     what="the WAL cut back to 4 MiB (%d bytes)" % os.path.getsize(wal))
        # The log says it once per episode, not once per refused write.
        lines = full_log_lines(d.output())
        assert len(lines) == 6, "\n".join(lines)
        acked = dict(w.acked, **tiny.acked)
        assert not lost(acked, stored_fill(disk / "data" / "edgepoint.db"))
        assert d.stop() == 0
        assert integrity(disk / "data" / "edgepoint.db") == "ok"
        # A start on a full disk: the store cannot make its WAL index (-shm); exit
        # code 4 names the disk, and nothing of the file is lost.
        filler = fill(disk, 0)
        rc, out = start_fails(d)
        assert rc == 4 and "edgepoint.db: cannot open the store: the disk is full" in out, out
        os.remove(filler)
        filler = None
        d.start()
        assert not lost(acked, stored_fill(disk / "data" / "edgepoint.db"))
        assert NatsClient(d.port).request("p.v1", json.dumps([{"type": "after", "value": 1}])) == {"ok": True}
        assert d.stop() == 0
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.kill()


def test_disk_full_a_polled_reading_is_stored_once_space_returns(tmp_path, tmpfs):
    """A Modbus reading refused for the full disk is published again, not dropped:
    once space returns, the store gets the device's value without waiting for it to
    change (refreshPeriod is 0: unchanged values are not published again)."""
    from mbsim import Sim, value, wait_value
    disk = tmpfs("disk", "8m")
    sim = Sim("pymodbus", port=free_port(), size=16).start()
    nodes = [{"id": "v1", "type": "variable"},
             {"id": "plc", "type": "modbus",
              "points": {"protocol": "tcp", "uri": "127.0.0.1:%d" % sim.port, "pollPeriod": 20,
                         "timeout": 500},
              "children": [{"id": "io1", "type": "modbusIo",
                            "points": {"table": "holdingRegister", "address": 0}}]}]
    d = Daemon(tmp_path, config={"nodes": nodes, "data_dir": str(disk / "data")})
    filler = None
    try:
        sim.set("hr", 0, [1])
        d.start()
        c = d.client()
        wait_value(c, "plc", "io1", 1)
        filler = fill(disk, 0)
        tiny = Writer(d.port, "v1", "t", npoints=1, text=10)
        tiny.run(lambda r: r != {"ok": True}, inflight=1)  # even small writes fail now
        assert tiny.refused == [ENOSPC], tiny.refused
        sim.set("hr", 0, [2])
        polls = sim.requests()
        wait_for(lambda: sim.requests() >= polls + 10, timeout=10, what="ten more polls")
        tiny.refused.clear()
        tiny.run(lambda r: True, inflight=1)
        assert tiny.refused == [ENOSPC], tiny.refused  # still full: the reading was refused
        assert value(c, "plc", "io1") == 1
        os.remove(filler)
        filler = None
        wait_value(c, "plc", "io1", 2, timeout=10)
        c.close()
        assert d.stop() == 0
    finally:
        sim.stop()
        if d.proc is not None and d.proc.poll() is None:
            d.kill()


# --- A store that cannot be opened -------------------------------------------------

STORE_NODES = [{"id": "v%d" % i, "type": "variable"} for i in range(10)]


def make_store(tmp_path):
    """A stopped gateway whose store holds 5,000 points (500 per node), and those
    points as {(node, key): value}."""
    d = Daemon(tmp_path, config={"nodes": STORE_NODES}, name="ep").start()
    c = d.client()
    want = {}
    for i in range(10):
        for j in range(10):
            pts = [{"type": "t", "key": "k%d_%d" % (j, k), "value": j * 100 + k, "text": "z" * 100}
                   for k in range(50)]
            assert c.request("p.v%d" % i, json.dumps(pts)) == {"ok": True}
            want.update((("v%d" % i, p["key"]), p["value"]) for p in pts)
    c.close()
    assert d.stop() == 0
    return d, want


def start_fails(d):
    """Starts the daemon, which must exit on its own; returns (code, output)."""
    d.start(wait=False)
    try:
        rc = d.proc.wait(30)
    except subprocess.TimeoutExpired:
        d.kill()
        raise AssertionError("the daemon started on a store it should refuse:\n" + d.output())
    d.log.close()
    return rc, d.output()


def damage(db, how):
    size = os.path.getsize(db)
    if how == "truncated":
        os.truncate(db, size // 2)
    elif how == "garbage":
        with open(db, "r+b") as f:  # four pages of random bytes in the middle
            f.seek((size // 4096 // 2) * 4096)
            f.write(random.Random(1).randbytes(4 * 4096))
    elif how == "not-sqlite":
        with open(db, "wb") as f:
            f.write(b"this is a configuration backup, not a database\n" * 100)


@pytest.mark.parametrize("how,says", [
    ("truncated", "is corrupt (database disk image is malformed)"),
    ("garbage", "is corrupt (PRAGMA quick_check: *** in database main ***"),
    ("not-sqlite", "is not an SQLite database (file is not a database)"),
])
def test_a_damaged_store_is_refused_with_exit_code_4(tmp_path, how, says):
    d, want = make_store(tmp_path)
    db = d.db_path()
    damage(db, how)
    before = db.read_bytes()
    rc, out = start_fails(d)
    assert rc == 4, out
    assert "%s %s" % (db, says) in out, out
    assert "move it aside" in out and "docs/operations.md" in out, out
    assert db.read_bytes() == before  # never replaced by a new, empty store
    if how == "not-sqlite":
        return
    # The recovery path of docs/operations.md: salvage what is readable into a new
    # file and start on it; the configuration file brings its nodes back. (Debian
    # 12's sqlite3 has no .recover: it is built without the sqlite_dbpage table.)
    bad = str(db) + ".bad"
    os.rename(db, bad)
    rec = subprocess.run("sqlite3 '%s' .dump | sed 's/^ROLLBACK; -- due to errors$/COMMIT;/' "
                         "| sqlite3 '%s'" % (bad, db), shell=True,
                         capture_output=True, text=True, timeout=120)
    # Rows that the damage left without their node or type are refused one by one
    # (NOT NULL constraint failed) and the rest load: exit code 1, not a failure.
    assert all("constraint failed" in l for l in rec.stderr.splitlines()), rec.stderr
    assert integrity(db) == "ok"
    d.start()
    c = d.client()
    got = {}
    for i in range(10):
        r = c.request("nodes.gw-test.v%d" % i, "")
        assert r["nodes"] and r["nodes"][0]["type"] == "variable", r
        got.update((("v%d" % i, p["key"]), p.get("value")) for p in r["nodes"][0]["points"])
    saved = sum(1 for k, v in want.items() if got.get(k) == v)
    # Half a file keeps what its first half holds; four bad pages lose their rows.
    assert saved > (0 if how == "truncated" else len(want) // 2), \
        "only %d of %d points salvaged" % (saved, len(want))
    assert c.request("p.v1", json.dumps([{"type": "after", "value": 1}])) == {"ok": True}
    c.close()
    assert d.stop() == 0
    assert integrity(db) == "ok"


def test_moving_a_damaged_store_aside_starts_a_new_one_from_the_file(tmp_path):
    d, _ = make_store(tmp_path)
    damage(d.db_path(), "garbage")
    rc, out = start_fails(d)
    assert rc == 4, out
    os.rename(d.db_path(), str(d.db_path()) + ".bad")
    d.start()
    assert "%s does not exist: creating a new, empty store" % d.db_path() in d.output()
    c = d.client()
    r = c.request("nodes.gw-test.all", "")
    assert sorted(n["id"] for n in r["nodes"]) == sorted(n["id"] for n in STORE_NODES), r
    c.close()
    assert d.stop() == 0


def test_an_empty_store_file_is_said_to_start_a_new_store(tmp_path):
    d, _ = make_store(tmp_path)
    os.truncate(d.db_path(), 0)
    d.start()
    assert "%s is empty (0 bytes): starting a new, empty store" % d.db_path() in d.output()
    assert d.stop() == 0


def test_a_wal_left_by_a_crash_is_recovered_not_refused(tmp_path):
    d = Daemon(tmp_path, config={"nodes": STORE_NODES}).start()
    c = d.client()
    for i in range(200):
        assert c.request("p.v1", json.dumps([{"type": "n", "key": "k%d" % i, "value": i}])) == {"ok": True}
    d.kill()
    wal = str(d.db_path()) + "-wal"
    assert os.path.getsize(wal) > 0  # the commits are in the WAL only
    d.start()
    c = d.client()
    pts = c.request("nodes.gw-test.v1", "")["nodes"][0]["points"]
    assert {p["key"]: p["value"] for p in pts if p["type"] == "n"} == {"k%d" % i: i for i in range(200)}
    assert d.stop() == 0


def test_a_read_only_data_dir_is_refused_with_exit_code_4(tmp_path):
    d, _ = make_store(tmp_path)
    data = d.db_path().parent
    r = subprocess.run(["mount", "--bind", "-o", "ro", str(data), str(data)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip("cannot bind-mount read-only here (%s)" % r.stderr.strip())
    try:
        rc, out = start_fails(d)
    finally:
        subprocess.run(["umount", str(data)])
    assert rc == 4, out
    assert "data_dir %s is not writable (Read-only file system)" % data in out, out
    d.start()  # writable again: it starts on the same store
    assert d.stop() == 0


def unprivileged(cmd, **kw):
    return subprocess.run(["runuser", "-u", "nobody", "--"] + cmd, capture_output=True,
                          text=True, timeout=60, **kw)


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the daemon as another user")
def test_a_store_the_user_cannot_write_is_refused_with_exit_code_4():
    top = tempfile.mkdtemp(prefix="ep-faults-", dir="/tmp")
    try:
        os.chmod(top, 0o755)
        # A copy the user can reach: a checkout under /root is not (0700).
        exe = os.path.join(top, "edgepoint")
        shutil.copy2(BIN, exe)
        os.chmod(exe, 0o755)
        r = unprivileged([exe, "version"])
        assert r.returncode == 0, "user nobody cannot run a copy of %s: %s" % (BIN, r.stderr)
        data = os.path.join(top, "data")
        cfg = os.path.join(top, "edgepoint.json")
        with open(cfg, "w") as f:
            json.dump({"device_id": "gw-test", "data_dir": data,
                       "bus": {"listen": ["127.0.0.1:%d" % free_port()]}}, f)
        os.chmod(cfg, 0o644)
        os.mkdir(data)
        os.chmod(data, 0o555)  # the data directory is not writable
        r = unprivileged([exe, "serve", "-c", cfg])
        assert r.returncode == 4, r.stderr
        assert "data_dir %s is not writable (Permission denied)" % data in r.stderr, r.stderr
        # A writable directory, but a database left by root (uid 0).
        os.chmod(data, 0o777)
        with open(os.path.join(data, "edgepoint.db"), "wb"):
            pass
        r = unprivileged([exe, "serve", "-c", cfg])
        assert r.returncode == 4, r.stderr
        assert "%s/edgepoint.db: cannot open the store for writing (Permission denied)" % data \
            in r.stderr, r.stderr
    finally:
        shutil.rmtree(top)


# --- SIGKILL, again and again ------------------------------------------------------

def rfc3339(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + ".%09dZ" % (ns % 10**9)


class Clock:
    """Strictly increasing nanosecond times for one writer, across restarts."""

    def __init__(self):
        self.last = 0

    def next(self):
        self.last = max(self.last + 1, time.time_ns())
        return self.last


class KillWriter(threading.Thread):
    """Writes on one connection with up to 8 requests in flight until the gateway
    goes away, remembering what each acknowledged write said. kind "points": node
    points on `node`, 20 keys, each value the writer's sequence number (so a newer
    write from this writer has a larger value). kind "edges": deletes and restores of
    the nodes e0..e7 under grp, and a new node under grp now and then."""

    def __init__(self, port, kind, node, state):
        super().__init__(daemon=True)
        self.port, self.kind, self.node, self.st = port, kind, node, state
        self.error = None

    def request(self):
        st = self.st
        st["seq"] = st.get("seq", 0) + 1
        seq, t = st["seq"], st["clock"].next()
        if self.kind == "points":
            key = "k%d" % (seq % 20)
            return ("p." + self.node, [{"type": "v", "key": key, "value": seq, "time": rfc3339(t)}],
                    ("p", key, seq))
        if seq % 5 == 0:  # a new node
            n = "n%d" % seq
            return ("e.%s.grp" % n, [{"type": "nodeType", "text": "variable", "time": rfc3339(t)}],
                    ("new", n, t))
        n, tomb = "e%d" % (seq % 8), (seq // 8) % 2
        return ("e.%s.grp" % n, [{"type": "tombstone", "value": tomb, "time": rfc3339(t)}],
                ("tomb", n, (t, tomb)))

    def run(self):
        try:
            c = NatsClient(self.port)
            c.sub("_INBOX.k%s.>" % self.node)
            c.ping()
            pending = {}
            n = 0
            while True:
                while len(pending) < 8:
                    subj, pts, what = self.request()
                    n += 1
                    pending[n] = what
                    c.pub(subj, json.dumps(pts), reply="_INBOX.k%s.%d" % (self.node, n))
                subj, _, _, _, data = c.next_msg(timeout=30)
                kind, k, v = pending.pop(int(subj.rsplit(".", 1)[1]))
                r = json.loads(data)
                if r != {"ok": True}:
                    self.error = (kind, k, r)
                    return
                self.st["acked"][(kind, k)] = v
                self.st["n"] = self.st.get("n", 0) + 1
        except (ConnectionError, OSError):
            pass  # killed


def check_acked(db, states):
    """Every acknowledged write is in the database at db, or a newer one of the same
    writer. Returns the number of writes checked."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        points = {(n, k): v for n, k, v in con.execute("SELECT node, key, value FROM points WHERE type = 'v'")}
        edges = {(n, ty): (t, v) for n, ty, t, v in con.execute(
            "SELECT node, type, time, value FROM edge_points WHERE parent = 'grp'")}
    finally:
        con.close()
    checked = 0
    for node, st in states.items():
        for (kind, k), v in st["acked"].items():
            checked += 1
            if kind == "p":
                assert points.get((node, k), -1) >= v, (node, k, v, points.get((node, k)))
            elif kind == "new":
                assert (k, "nodeType") in edges, (k, "new node lost")
            else:
                t, tomb = edges.get((k, "tombstone"), (0, None))
                assert t > v[0] or (t == v[0] and tomb == v[1]), (k, v, (t, tomb))
    return checked


def test_sigkill_cycles_lose_no_acknowledged_write(tmp_path):
    """EP_KILL_CYCLES (default 100) cycles: start, mixed writes from four clients and
    a polled Modbus point, SIGKILL at a random moment, PRAGMA integrity_check on a
    copy of the files as the kill left them, every acknowledged write there; then the
    gateway recovers the WAL itself and serves the same values."""
    from mbsim import Sim
    cycles = int(os.environ.get("EP_KILL_CYCLES", "100"))
    rnd = random.Random(int(os.environ.get("EP_KILL_SEED", "11")))
    sim = Sim("pymodbus", port=free_port(), size=16).start()
    nodes = [{"id": "w%d" % i, "type": "variable"} for i in range(3)] + [
        {"id": "grp", "type": "group",
         "children": [{"id": "e%d" % i, "type": "variable"} for i in range(8)]},
        {"id": "plc", "type": "modbus",
         "points": {"protocol": "tcp", "uri": "127.0.0.1:%d" % sim.port, "pollPeriod": 20,
                    "timeout": 500},
         "children": [{"id": "io1", "type": "modbusIo",
                       "points": {"table": "holdingRegister", "address": 0}}]}]
    d = Daemon(tmp_path, config={"nodes": nodes})
    states = {n: {"clock": Clock(), "acked": {}} for n in ("w0", "w1", "w2", "edges")}
    wal_seen = checked = 0
    t0 = time.monotonic()
    try:
        for cycle in range(cycles):
            sim.set("hr", 0, [cycle])  # a new reading for the poller to store
            d.start()
            if cycle > 0:
                # The gateway recovered the WAL that the last kill left and serves it.
                c = d.client()
                for i in range(3):
                    pts = {p["key"]: p["value"] for p in
                           c.request("nodes.gw-test.w%d" % i, "")["nodes"][0]["points"]
                           if p["type"] == "v"}
                    for (kind, k), v in states["w%d" % i]["acked"].items():
                        assert pts.get(k, -1) >= v, ("after restart", cycle, i, k, v, pts.get(k))
                c.close()
            ws = [KillWriter(d.port, "points", "w%d" % i, states["w%d" % i]) for i in range(3)]
            ws.append(KillWriter(d.port, "edges", "edges", states["edges"]))
            for w in ws:
                w.start()
            time.sleep(rnd.uniform(0.0, 0.3))  # the random moment of the kill
            d.kill()
            for w in ws:
                w.join(30)
                assert w.error is None, (cycle, w.error)
            copy = sqlite_copy(d.db_path(), tmp_path / "copy")
            wal_seen += os.path.exists(str(copy) + "-wal") and os.path.getsize(str(copy) + "-wal") > 0
            assert integrity(copy) == "ok", (cycle, integrity(copy))
            checked = check_acked(copy, states)
        d.start()
        assert "Sanitizer" not in d.output()
        assert d.stop() == 0
    finally:
        sim.stop()
        if d.proc is not None and d.proc.poll() is None:
            d.kill()
    elapsed = time.monotonic() - t0
    acks = sum(s.get("n", 0) for s in states.values())
    print("%d SIGKILL cycles in %.1f s: %d writes acknowledged, the last ones of %d "
          "points and edges checked after every kill, a WAL left by %d kills"
          % (cycles, elapsed, acks, checked, wal_seen))
    assert wal_seen > cycles // 2  # the kills did hit the gateway while it wrote
    assert acks > 10 * cycles
