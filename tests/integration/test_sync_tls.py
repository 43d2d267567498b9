"""The sync over TLS and mTLS to a real nats-server with JetStream, and what bad
credentials and a wrong CA do: a clear lastError point and one log line, retries
with a growing backoff, no crash, and recovery once the setting is fixed."""
import pytest

from conftest import wait_for
from peers import make_certs
from sync_peers import (stop_peers,  # noqa: F401 (autouse)
                        TOKEN, Cloud, JsServer, bus, edge, node_points, ns_time, wait_value,
                        write_points)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


def sync_status(gw):
    c = bus(gw)
    try:
        return {k[0]: p.get("value", p.get("text")) for k, p in
                node_points(c, "nodes.all.sync").items()}
    finally:
        c.close()


@pytest.mark.parametrize("kind", ["tls", "mtls"])
def test_points_up_and_config_down_over_tls(tmp_path, certs, kind):
    js = JsServer(tmp_path / "nats", kind=kind, certs=certs).start()
    tls = {"ca_file": certs.ca}
    sync_tls = {"caFile": certs.ca}
    if kind == "mtls":
        tls.update(cert_file=certs.client_cert, key_file=certs.client_key)
        sync_tls.update(certFile=certs.client_cert, keyFile=certs.client_key)
    cloud = Cloud(tmp_path, js.url, nats=tls).start()
    try:
        gw = edge(tmp_path, "gw1", js.url, sync_points=sync_tls)
        capi = js.client()
        c = bus(gw)
        write_points(c, "v", [{"type": "up", "time": ns_time(1), "value": 1.25}])
        p = wait_value(capi, "d.gw1.nodes.all.v", "up", 1.25)
        assert p["time"] == ns_time(1)
        write_points(capi, "v", [{"type": "down", "value": 2}], subject="d.gw1.p.v")
        wait_value(c, "nodes.all.v", "down", 2)
        wait_for(lambda: sync_status(gw).get("connected") == 1, timeout=10, what="connected")
        c.close()
        assert gw.stop() == 0
        assert cloud.stop() == 0
    finally:
        cloud.stop()
        js.stop()


def attempts(js, text):
    return js.output().count(text)


@pytest.mark.parametrize("case", ["token", "ca", "client-cert"])
def test_bad_credentials_are_reported_and_retried(tmp_path, certs, case):
    if case == "token":
        js = JsServer(tmp_path / "nats", kind="token").start()
        bad, good = {"token": "wrong"}, {"token": TOKEN}
        want, server_says = "Authorization Violation", "authentication error"
    elif case == "ca":
        js = JsServer(tmp_path / "nats", kind="tls", certs=certs).start()
        bad, good = {"caFile": certs.other_ca}, {"caFile": certs.ca}
        want, server_says = "certificate", "TLS handshake error"
    else:
        js = JsServer(tmp_path / "nats", kind="mtls", certs=certs).start()
        bad = {"caFile": certs.ca}  # no client certificate
        good = {"caFile": certs.ca, "certFile": certs.client_cert, "keyFile": certs.client_key}
        want, server_says = "", "TLS handshake error"
    try:
        gw = edge(tmp_path, "gw1", js.url, sync_points=bad)
        st = wait_for(lambda: (lambda s: s if s.get("lastError") else None)(sync_status(gw)),
                      timeout=15, what="lastError")
        assert st["connected"] == 0
        assert "cannot connect to %s" % js.url in st["lastError"]
        assert want in st["lastError"], st["lastError"]
        log = gw.output()
        assert log.count("sync: cannot connect to %s" % js.url) == 1, log  # once, not per attempt

        # Retried with a growing backoff: a few attempts over three seconds, not hundreds.
        n0 = attempts(js, server_says)
        wait_for(lambda: attempts(js, server_says) >= n0 + 2, timeout=10, what="retries")
        t0 = attempts(js, server_says)
        import time
        deadline = time.monotonic() + 3
        wait_for(lambda: time.monotonic() > deadline, timeout=5, what="three seconds",
                 interval=0.2)
        assert attempts(js, server_says) - t0 <= 8
        assert gw.proc.poll() is None  # never a crash
        assert gw.output().count("sync: ") == log.count("sync: ")  # no line per attempt

        # Fixed at runtime: it connects.
        c = bus(gw)
        write_points(c, "sync", [{"type": k, "text": v} for k, v in good.items()])
        wait_for(lambda: sync_status(gw).get("connected") == 1, timeout=30,
                 what="the link up with good credentials")
        assert sync_status(gw).get("lastError", "") in ("", None) or \
            "stream" in sync_status(gw)["lastError"]  # no cloud here: no stream yet
        c.close()
        assert gw.stop() == 0
    finally:
        js.stop()
