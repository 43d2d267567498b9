"""Replies tell the truth about bad input: text that is not UTF-8 or holds a NUL, and
numbers that JSON cannot hold, are refused with an error that says where (so queries
and export keep working); `get` prints numbers as JSON does; check-config refuses a
sync node with both a token and a user, and a FIFO, without hanging; a full disk
reaches the writer as such, not as "storage error"."""
import json
import os
import subprocess

import pytest

from conftest import BIN, Daemon, run, wait_for

TREE = [{"id": "vars", "type": "group",
         "children": [{"id": "v1", "type": "variable", "points": {"seed": 1}}]}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("input"), config={"nodes": TREE})
    d.start()
    yield d
    d.stop()


@pytest.fixture
def c(gw):
    cl = gw.client()
    yield cl
    cl.close()


def ep(gw, *args):
    return run(list(args) + ["-s", "nats://127.0.0.1:%d" % gw.port])


def raw_request(c, subject, payload):
    """A request whose reply is decoded as strict UTF-8 JSON, as other clients do."""
    inbox = "_INBOX.raw%d" % (c.sid + 1)
    c.sub(inbox)
    c.pub(subject, payload, reply=inbox)
    return json.loads(c.next_msg()[4].decode("utf-8", errors="strict"))


def node_points(c, node="v1", parent="vars"):
    [n] = raw_request(c, "nodes.%s.%s" % (parent, node), b"")["nodes"]
    return {(p["type"], p["key"]): p for p in n["points"]}


def test_text_that_is_not_utf8_is_refused_and_says_where(gw, c):
    cases = [
        (b'[{"type":"a","text":"ok"},{"type":"note","text":"caf\xff"}]',
         'points[1].text: "caf?" is not valid UTF-8: byte 3 is 0xff '
         '(text is UTF-8 without NUL)'),
        (b'[{"type":"note","text":"\xed\xa0\x80"}]',  # a UTF-16 surrogate
         'points[0].text: "???" is not valid UTF-8: byte 0 is 0xed'),
        (b'[{"type":"note","text":"\xc0\xaf"}]',  # an overlong "/"
         'points[0].text: "??" is not valid UTF-8: byte 0 is 0xc0'),
    ]
    for payload, want in cases:
        r = raw_request(c, "p.v1", payload)
        assert "error" in r and want in r["error"], (payload, r)
    pts = node_points(c)
    assert ("note", "0") not in pts and ("a", "0") not in pts  # nothing of the request
    r = raw_request(c, "e.v9.vars", b'[{"type":"nodeType","text":"vari\xffable"}]')
    assert 'points[0].text: "vari?able" is not valid UTF-8: byte 4 is 0xff' in r["error"], r
    r = ep(gw, "export")
    assert r.returncode == 0, r.stderr


def test_nul_in_text_or_tokens_is_refused(gw, c):
    r = raw_request(c, "p.v1", b'[{"type":"nul","text":"a\\u0000b"}]')
    assert r == {"error": 'points[0].text: "a\\u0000b" holds a NUL (\\u0000) at byte 1 '
                          '(text is UTF-8 without NUL)'}, r
    r = raw_request(c, "p.v1", b'[{"type":"nul\\u0000x","value":1}]')
    assert 'points[0].type: "nul\\u0000x" is not a token' in r["error"], r
    r = raw_request(c, "p.v1", b'[{"type":"nul","text":"a\\u00zzb"}]')
    assert "malformed JSON at offset 24 (\\u needs four hex digits)" in r["error"], r
    r = raw_request(c, "p.v1", b'[{"type":"nul","text":"a\x00b"}]')
    assert "malformed JSON at offset 24 (a NUL byte)" in r["error"], r
    assert ("nul", "0") not in node_points(c)
    # An escaped backslash before u0000 is plain text and round-trips.
    assert raw_request(c, "p.v1", b'[{"type":"bs","text":"a\\\\u0000b"}]') == {"ok": True}
    assert node_points(c)[("bs", "0")]["text"] == "a\\u0000b"
    assert ep(gw, "export").returncode == 0


def test_non_finite_numbers_are_refused(gw, c):
    for arg in ("inf", "-inf", "1e400", "-1e400", "Infinity"):
        # "--": "-inf" does not look like a number to the option parser.
        r = run(["set", "-s", "nats://127.0.0.1:%d" % gw.port, "--", "v1", "big", arg])
        assert r.returncode == 2, (arg, r.stdout, r.stderr)
        assert ("'%s' is not a finite number" % arg) in r.stderr, r.stderr
        assert r.stdout == ""
    r = ep(gw, "set", "v1", "big", "nan")
    assert r.returncode == 2 and "is not a number or true/false" in r.stderr
    r = raw_request(c, "p.v1", b'[{"type":"big","value":1e400}]')
    assert r == {"error": "points[0].value: inf is not a finite number (at most "
                          "1.7976931348623157e+308 either side of 0)"}, r
    assert ("big", "0") not in node_points(c)
    r = ep(gw, "set", "v1", "big", "1.7976931348623157e308")
    assert r.returncode == 0, r.stderr
    assert node_points(c)[("big", "0")]["value"] == 1.7976931348623157e308


def test_get_prints_numbers_as_json_does(gw):
    values = {"n10": ("10", "10"), "n500": ("5e2", "500"), "n21": ("21.5", "21.5"),
              "tenth": ("0.1", "0.1"), "huge": ("1e300", "1e+300"),
              "neg": ("-3", "-3"), "frac": ("0.30000000000000004", "0.30000000000000004")}
    for typ, (arg, _) in values.items():
        r = ep(gw, "set", "v1", typ, arg)
        assert r.returncode == 0, r.stderr
    for typ, (_, shown) in values.items():
        r = ep(gw, "get", "v1", typ)
        assert r.returncode == 0 and r.stdout == shown + "\n", (typ, r.stdout)
    lines = {ln.split()[0]: ln.split()[1] for ln in ep(gw, "get", "v1").stdout.splitlines()[1:]}
    for typ, (_, shown) in values.items():
        assert lines[typ] == shown, (typ, lines)
    # --json prints the same numbers (cJSON's own form).
    got = {p["type"]: p["value"] for p in json.loads(ep(gw, "get", "v1", "--json").stdout)["points"]
           if p["type"] in values}
    assert got["n500"] == 500 and got["huge"] == 1e300


def test_check_config_refuses_sync_token_with_user(tmp_path):
    p = tmp_path / "edgepoint.json"
    p.write_text(json.dumps({"nodes": [{"id": "up", "type": "sync", "points": {
        "uri": "nats://cloud:4222", "token": "s3cret", "user": "gw1", "password": "pw"}}]}))
    r = run(["check-config", str(p)])
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert r.stderr.strip() == (
        '%s: nodes[0].points.user: "gw1" cannot be set together with "token" (the link '
        'logs in with a token, or with a user and password, not both)' % p)
    assert "s3cret" not in r.stderr


def test_check_config_on_a_fifo_does_not_hang(tmp_path):
    p = tmp_path / "edgepoint.json"
    os.mkfifo(p)
    r = subprocess.run([BIN, "check-config", str(p)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode != 0
    assert r.stderr.strip().endswith("%s: is not a regular file (it is a FIFO)" % p), r.stderr
    r = subprocess.run([BIN, "serve", "-c", str(p)], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "is not a regular file (it is a FIFO)" in r.stderr


def fill(path):
    """Fills the file system of path's directory; returns the filler's path."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_is_reported_as_such(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    d = None
    try:
        d = Daemon(tmp_path, config={"nodes": TREE, "data_dir": str(disk / "data")})
        d.start()
        c = d.client()
        assert c.request("p.v1", json.dumps([{"type": "before", "value": 1}])) == {"ok": True}
        filler = fill(str(disk))
        batch = json.dumps([{"type": "t%d" % i, "text": "x" * 1000} for i in range(200)])
        want = "no space left on the device (the store's disk is full)"
        wait_for(lambda: c.request("p.v1", batch) == {"error": want, "code": "EP_ENOSPC"},
                 timeout=10,
                 what="a write refused for the full disk")
        r = run(["set", "v1", "big", "--text", "y" * 4000, "-s", "nats://127.0.0.1:%d" % d.port])
        assert r.returncode != 0 and want in r.stderr, (r.stdout, r.stderr)
        assert "database or disk is full" in d.output()
        os.remove(filler)
        assert c.request("p.v1", batch) == {"ok": True}  # room again: writes go through
        c.close()
        assert d.stop() == 0
    finally:
        if d is not None and d.proc is not None and d.proc.poll() is None:
            d.kill()
        subprocess.run(["umount", "-l", str(disk)])
