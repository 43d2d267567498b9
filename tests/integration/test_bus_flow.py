"""Flow control (src/bus/flow.c): a publisher that outruns a subscriber which keeps
reading waits for it, so the subscriber gets every message instead of being cut off
as a slow consumer; a subscriber that stopped reading is still cut off at
max_pending (test_bus_limits.py), and the publisher goes on.

The subscriber here reads steadily but slower than the daemon can produce (small
reads with a pause between them: a rate, not a wait for something to happen)."""
import threading
import time

from test_bus_limits import handshake, serves

MSG = b"PUB flow 1024\r\n" + b"x" * 1024 + b"\r\n"
WIRE = len(b"MSG flow 1 1024\r\n") + 1024 + 2


def slow_reader(conn, want, out):
    """Reads until want MSG bytes (or an -ERR, or a close) arrived, 16 KiB at a time
    with a pause: about 8 MB/s at most."""
    conn.sock.settimeout(30)
    got = 0
    tail = b""
    while got < want:
        try:
            chunk = conn.sock.recv(16 * 1024)
        except OSError:
            break
        if not chunk:
            break
        got += len(chunk)
        tail = (tail + chunk)[-64:]
        if b"-ERR" in tail:
            out["err"] = tail
            break
        time.sleep(0.002)
    out["bytes"] = got


def test_publisher_waits_for_a_subscriber_that_reads(daemon_factory):
    d = daemon_factory()
    d.config["bus"].update(max_pending=256 * 1024, max_payload=64 * 1024)
    d.write_config()
    d.start()
    sub = handshake(d.port, rcvbuf=16 * 1024)
    sub.send(b"SUB flow 1\r\n")
    assert sub.until_pong() == b""
    pub = handshake(d.port)
    n = 8192  # 8 MiB: 32 times max_pending
    out = {}
    t = threading.Thread(target=slow_reader, args=(sub, n * WIRE, out), daemon=True)
    t.start()
    batch = MSG * 64
    start = time.monotonic()
    for _ in range(n // 64):
        assert pub.send(batch), "the publisher was cut off: %r" % pub.buf
    assert pub.until_pong(timeout=30) == b""
    t.join(60)
    elapsed = time.monotonic() - start
    assert "err" not in out, "the subscriber got %r\n%s" % (out["err"], d.output()[-2000:])
    assert "slow consumer" not in d.output()
    assert out["bytes"] == n * WIRE, "%d of %d bytes" % (out["bytes"], n * WIRE)
    print("8 MiB to a subscriber reading ~8 MB/s through max_pending 256 KiB: %.2f s"
          % elapsed)
    for c in (sub, pub):
        c.close()
    assert serves(d.port)


def test_publisher_is_not_held_by_a_subscriber_that_stopped(daemon_factory):
    """One subscriber that never reads, one that keeps up: the first is cut off at
    max_pending after it held the publisher once (flow.c's FLOW_MAX_MS, 1 s), the
    second gets everything."""
    d = daemon_factory()
    d.config["bus"].update(max_pending=256 * 1024, max_payload=64 * 1024)
    d.write_config()
    d.start()
    dead = handshake(d.port, rcvbuf=4096)
    dead.send(b"SUB flow 1\r\n")
    assert dead.until_pong() == b""
    live = handshake(d.port)
    live.send(b"SUB flow 1\r\n")
    assert live.until_pong() == b""
    out = {}
    n = 4096

    def reader():
        live.sock.settimeout(30)
        got = 0
        while got < n * WIRE:
            chunk = live.sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        out["bytes"] = got
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    pub = handshake(d.port)
    batch = MSG * 64
    start = time.monotonic()
    for _ in range(n // 64):
        assert pub.send(batch), "the publisher was cut off: %r" % pub.buf
    assert pub.until_pong(timeout=30) == b""
    elapsed = time.monotonic() - start
    t.join(30)
    assert out.get("bytes") == n * WIRE, out
    assert dead.wait_closed(), "the subscriber that never reads was not cut off"
    assert dead.buf.endswith(b"-ERR 'Slow Consumer'\r\n"), dead.buf[-200:]
    print("4 MiB past a stopped subscriber: %.2f s" % elapsed)
    for c in (live, pub):
        c.close()
    assert serves(d.port)
