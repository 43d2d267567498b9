"""The data plane through nats.js and nats.go (tests/dataplane/): the JSON formats
of p.*, e.*, nodes.* and sys.* checked by clients nobody here wrote."""
import os
import shutil
import subprocess

import pytest

from conftest import BIN, ROOT, Daemon

SRC = os.path.join(ROOT, "tests", "dataplane")
OUT = os.path.join(os.path.dirname(os.path.abspath(BIN)), "dataplane")


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("dpp"))
    d.start()
    yield d
    d.stop()


def run(cmd, env=None):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=e, cwd=ROOT)
    return r.returncode, r.stdout + r.stderr


def test_nats_js(gw):
    assert os.path.isdir(os.path.join(ROOT, "tests", "js", "node_modules", "nats")), \
        "nats.js missing: run scripts/setup.sh"
    rc, out = run(["node", os.path.join(SRC, "dataplane.mjs"),
                   "nats://127.0.0.1:%d" % gw.port, "gw-test"])
    print(out)
    assert rc == 0 and "not ok" not in out, out
    assert out.count("ok - ") >= 15


def test_nats_go(gw):
    assert shutil.which("go"), "go missing: run scripts/setup.sh"
    os.makedirs(OUT, exist_ok=True)
    exe = os.path.join(OUT, "dataplane")
    rc, out = run(["go", "build", "-o", exe, os.path.join(SRC, "dataplane.go")],
                  env={"GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOFLAGS": "",
                       "GOPROXY": "off", "GOCACHE": os.path.join(OUT, "gocache")})
    assert rc == 0, out
    rc, out = run([exe, "nats://127.0.0.1:%d" % gw.port, "gw-test"])
    print(out)
    assert rc == 0 and "not ok" not in out, out
    assert out.count("ok - ") >= 12
