"""Bus conformance with clients nobody here wrote: nats.c, nats.go and nats.js run the
same cases (tests/conformance/) against the real nats-server and against edgepoint's
embedded bus, each target started with an equivalent generated config (peers.py).

The nats-server column proves the suite itself: a case that fails there is a bug in
the suite, not in the bus.
"""
import pytest

from peers import (LIMITS, PASSWORD, TLS_KINDS, TOKEN, USER,  # noqa: F401
                   conformance_clients, run_conformance, server_pool)

# The cases edgepoint cannot run YET: their config keys (bus.auth.*, bus.tls.*) and
# features are part of the bus issue. These parametrizations are not generated at all
# (not skipped). This set MUST BE EMPTY when the bus issue is resolved.
EDGEPOINT_PENDING = set()

CLIENTS = ("c", "go", "js")
TARGETS = ("nats-server", "edgepoint")

# case -> (server kind, options given to the conformance program)
CASES = {
    "connect": ("plain", ["--max-payload", str(LIMITS["max_payload"])]),
    "pubsub": ("plain", []),
    "wildcards": ("plain", []),
    "queue": ("plain", []),
    "request": ("plain", []),
    "headers": ("plain", []),
    "no_responders": ("plain", []),
    "max_payload": ("plain", ["--max-payload", str(LIMITS["max_payload"])]),
    "auth_token_ok": ("token", ["--token", TOKEN]),
    "auth_token_bad": ("token", ["--token", TOKEN + "-wrong"]),
    "auth_user_ok": ("users", ["--user", USER, "--password", PASSWORD]),
    "auth_user_bad": ("users", ["--user", USER, "--password", PASSWORD + "-wrong"]),
    "tls": ("tls", ["--ca", "{ca}"]),
    "tls_bad_ca": ("tls", ["--ca", "{other_ca}"]),
    "mtls": ("mtls", ["--ca", "{ca}", "--cert", "{client_cert}", "--key", "{client_key}"]),
    "mtls_no_cert": ("mtls", ["--ca", "{ca}"]),
}


def params():
    out = []
    for target in TARGETS:
        for case in CASES:
            if target == "edgepoint" and case in EDGEPOINT_PENDING:
                continue
            for client in CLIENTS:
                out.append(pytest.param(client, target, case, id="%s-%s-%s" % (client, target, case)))
    return out


@pytest.mark.parametrize("client,target,case", params())
def test_conformance(conformance_clients, server_pool, client, target, case):
    kind, opts = CASES[case]
    srv = server_pool.get(target, kind)
    if kind in TLS_KINDS:
        certs = server_pool.certs()
        opts = [o.format(ca=certs.ca, other_ca=certs.other_ca, client_cert=certs.client_cert,
                         client_key=certs.client_key) for o in opts]
    rc, out = run_conformance(conformance_clients, client, srv.url, case, *opts)
    print(out)
    server_pool.assert_alive(target, kind, out)
    assert rc == 0, "%s client, case %s against %s failed (exit %d):\n%s" % (
        client, case, target, rc, out)
    assert "# passed" in out, out


def test_pending_list_names_real_cases():
    # A typo in EDGEPOINT_PENDING would silently keep a case from running.
    assert EDGEPOINT_PENDING <= set(CASES)
