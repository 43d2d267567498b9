"""`edgepoint passwd`: the hash it prints is PBKDF2-HMAC-SHA256 as Python's hashlib
computes it, in the format bus.auth takes, and bad input is refused clearly."""
import base64
import hashlib
import re

from conftest import run

HASH_RE = re.compile(r"^\$pbkdf2-sha256\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


def check(line, password, iterations):
    m = HASH_RE.match(line)
    assert m, line
    assert int(m.group(1)) == iterations
    salt, key = base64.b64decode(m.group(2)), base64.b64decode(m.group(3))
    assert len(salt) == 16 and len(key) == 32
    assert hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, 32) == key


def test_passwd_from_stdin():
    r = run(["passwd"], input="wonder land 42\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1
    check(r.stdout.strip(), "wonder land 42", 4096)
    # The line end is not part of the password, and every hash has its own salt.
    r2 = run(["passwd"], input="wonder land 42\r\n")
    check(r2.stdout.strip(), "wonder land 42", 4096)
    assert r2.stdout != r.stdout


def test_passwd_iterations():
    r = run(["passwd", "--iterations", "1000"], input="x")
    assert r.returncode == 0, r.stderr
    check(r.stdout.strip(), "x", 1000)
    for bad in ("999", "1000001", "-5", "ten"):
        r = run(["passwd", "--iterations", bad], input="x\n")
        assert r.returncode == 2 and r.stdout == "", r
        assert "--iterations '%s' is not in 1000..1000000" % bad in r.stderr
    r = run(["passwd", "--iterations"], input="x\n")
    assert r.returncode == 2 and "Try 'edgepoint help passwd'" in r.stderr


def test_passwd_refuses_no_password():
    for text, why in (("", "no password on stdin"), ("\n", "the password is empty"),
                      ("x" * 2000 + "\n", "the password is longer than")):
        r = run(["passwd"], input=text)
        assert r.returncode == 1 and r.stdout == "", r
        assert why in r.stderr


def test_passwd_help():
    r = run(["help", "passwd"])
    assert r.returncode == 0
    assert "usage: edgepoint passwd [--iterations N]" in r.stdout
    assert "password_hash" in r.stdout
    r = run(["passwd", "--bogus"], input="x\n")
    assert r.returncode == 2 and "unexpected argument '--bogus'" in r.stderr
