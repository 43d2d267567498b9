"""libmodbus and descriptors past FD_SETSIZE (issue 9, item 1).

libmodbus waits with select(), and FD_SET on a descriptor numbered 1024 or more
writes past the fd_set on the stack. A stranger on the LAN can push the gateway's
descriptors that high without logging in: he only has to open about a thousand
idle TCP connections to the bus. These tests do exactly that (under the sanitizer
build, with the descriptor limits raised so that such numbers are reachable), then
make every kind of Modbus link (re)connect while the connections are open: a TCP
client bus that keeps failing against a closed port, a TCP client and an RTU
client that read a pymodbus simulator, a TCP server and an RTU server that mbpoll
reads. The gateway must neither crash nor turn anything away, and must still
answer on the bus afterwards. Buses made at run time beyond the reserved low
descriptors are refused one by one (lastError says why) and connect once low
numbers are free again."""
import json
import os
import resource
import socket

import pytest

from conftest import Daemon, NatsClient, free_port, wait_for
from mbsim import PtyPair, Sim, num, points, stop_clean, text, wait_point, wait_value
from test_modbus_rtu_server import mbpoll, read_refs

IDLE = 1020        # idle bus connections, as in the issue
FD_SETSIZE = 1024  # glibc's


@pytest.fixture
def nofile():
    """Raises this process's descriptor limit (the daemon inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if want < IDLE + 200:
        pytest.skip("RLIMIT_NOFILE hard limit %d is too low" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def idle(nofile):
    """Opens idle TCP connections to a port (no CONNECT); open_idle.close() or the
    end of the test closes them."""
    socks = []

    def open_idle(port, n=IDLE):
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))

    def close():
        while socks:
            socks.pop().close()
    open_idle.close = close
    yield open_idle
    close()


def daemon_fds(d):
    return len(os.listdir("/proc/%d/fd" % d.proc.pid))


def daemon_nofile(d):
    with open("/proc/%d/limits" % d.proc.pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no 'Max open files' line")


def fds_to(d, target):
    """The daemon's descriptor numbers whose link reads target."""
    out = []
    for name in os.listdir("/proc/%d/fd" % d.proc.pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (d.proc.pid, name)) == target:
                out.append(int(name))
        except OSError:
            pass  # closed meanwhile
    return out


def socket_to(d, port):
    """The daemon's descriptor numbers of its TCP connections to a local port."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                col = line.split()
                if int(col[2].rsplit(":", 1)[1], 16) == port and col[3] == "01":
                    inodes.add(col[9])
    return [fd for i in inodes for fd in fds_to(d, "socket:[%s]" % i)]


def pushed_high(d, open_idle):
    """Opens the idle connections and waits until the daemon holds them all, so
    that its next descriptor is numbered past FD_SETSIZE."""
    assert daemon_nofile(d) > IDLE + 100, "the daemon's descriptor limit is too low"
    base = daemon_fds(d)
    open_idle(d.port)
    wait_for(lambda: daemon_fds(d) >= base + IDLE, timeout=30,
             what="the daemon to accept %d connections" % IDLE)
    assert daemon_fds(d) > FD_SETSIZE + 4


def answering(d, c):
    """The daemon is alive and answers: PING/PONG on an open connection and on a
    new one, and a node query."""
    assert d.proc.poll() is None, "daemon died:\n" + d.output()[-4000:]
    c.ping()
    fresh = NatsClient(d.port)
    fresh.ping()
    r = fresh.request("nodes.root.gw-test", "")
    assert r["nodes"] and r["nodes"][0]["id"] == "gw-test", r
    fresh.close()


def ok(c, subject, payload):
    r = c.request(subject, json.dumps(payload))
    assert r == {"ok": True}, (subject, r)


def io(iid, **pts):
    pts.setdefault("table", "holdingRegister")
    return {"id": iid, "type": "modbusIo", "points": pts}


def test_reconnecting_tcp_bus_with_1020_idle_connections(tmp_path, idle):
    """The reproduction of the issue: a bus that keeps reconnecting to a closed
    port while 1,020 idle connections are open. A second bus is switched on only
    once they are open, so that one connection attempt is known to have happened
    with every low descriptor taken."""
    closed1, closed2 = free_port(), free_port()
    tree = [{"id": "dead", "type": "modbus",
             "points": {"protocol": "tcp", "uri": "127.0.0.1:%d" % closed1,
                        "pollPeriod": 100, "timeout": 200},
             "children": [io("d0", address=0)]},
            {"id": "late", "type": "modbus",
             "points": {"protocol": "tcp", "uri": "127.0.0.1:%d" % closed2,
                        "pollPeriod": 100, "timeout": 200, "disabled": True},
             "children": [io("l0", address=0)]}]
    d = Daemon(tmp_path, config={"nodes": tree}).start()
    c = d.client()
    wait_point(c, "gw-test", "dead", lambda p: "cannot connect" in text(p, "lastError"),
               "the first failed attempt")
    pushed_high(d, idle)
    ok(c, "p.late", [{"type": "disabled", "value": 0}])
    p = wait_point(c, "gw-test", "late",
                   lambda p: "cannot connect to 127.0.0.1:%d" % closed2 in text(p, "lastError"),
                   "an attempt made with every low descriptor taken")
    assert "Connection refused" in text(p, "lastError"), p
    answering(d, c)
    stop_clean(d)


@pytest.fixture
def peers(tmp_path):
    made = []

    def make(p):
        made.append(p)
        return p.start()
    yield make
    for p in reversed(made):
        p.stop()


def test_buses_connect_and_serve_with_1020_idle_connections(tmp_path, idle, peers):
    """Every kind of link opened with every low descriptor taken: a TCP client and
    an RTU client read a simulator, a TCP server and an RTU server answer mbpoll."""
    for sub in ("c", "s"):
        (tmp_path / sub).mkdir()
    tcp_sim = peers(Sim("pymodbus", port=free_port()))
    tcp_sim.set("hr", 0, [1111])
    cline = peers(PtyPair(tmp_path / "c"))
    rtu_sim = peers(Sim("pymodbus", device=cline.b, baud=19200))
    rtu_sim.set("hr", 0, [2222])
    sline = peers(PtyPair(tmp_path / "s"))
    srv_port = free_port()
    off = {"disabled": True}
    tree = [{"id": "tcpc", "type": "modbus",
             "points": dict(off, protocol="tcp", uri="127.0.0.1:%d" % tcp_sim.port,
                            pollPeriod=100, timeout=500),
             "children": [io("t0", address=0), io("t1", address=1)]},
            {"id": "rtuc", "type": "modbus",
             "points": dict(off, protocol="rtu", port=cline.a, baud=19200, pollPeriod=100,
                            timeout=500),
             "children": [io("r0", address=0)]},
            {"id": "tcps", "type": "modbus",
             "points": dict(off, clientServer="server", protocol="tcp",
                            uri="127.0.0.1:%d" % srv_port),
             "children": [io("s0", address=0)]},
            {"id": "rtus", "type": "modbus",
             "points": dict(off, clientServer="server", protocol="rtu", port=sline.a,
                            baud=19200),
             "children": [io("q0", address=0)]}]
    d = Daemon(tmp_path, config={"nodes": tree}).start()
    c = d.client()
    pushed_high(d, idle)
    for bus in ("tcpc", "rtuc", "tcps", "rtus"):
        ok(c, "p." + bus, [{"type": "disabled", "value": 0}])

    # The clients read, and a write goes through.
    wait_value(c, "tcpc", "t0", 1111)
    wait_value(c, "rtuc", "r0", 2222)
    # What libmodbus waits on is numbered low, although nothing low was free.
    links = socket_to(d, tcp_sim.port) + fds_to(d, os.path.realpath(cline.a))
    assert len(links) == 2 and max(links) < FD_SETSIZE, links
    ok(c, "p.t1", [{"type": "valueSet", "value": 77}])
    wait_value(c, "tcpc", "t1", 77)
    assert tcp_sim.get("hr", 1) == [77]

    # The servers answer masters whose connections land past FD_SETSIZE.
    ok(c, "p.s0", [{"type": "value", "value": 3333}])
    ok(c, "p.q0", [{"type": "value", "value": 4444}])
    tcp = ["-m", "tcp", "-p", str(srv_port), "-a", "1", "-r", "0", "-t", "4", "127.0.0.1"]
    rtu = ["-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-r", "0", sline.b]
    wait_for(lambda: read_refs(mbpoll(*tcp, check=False).stdout).get(0) == "3333",
             what="the TCP server answering", interval=0.1)
    wait_for(lambda: read_refs(mbpoll(*rtu, check=False).stdout).get(0) == "4444",
             what="the RTU server answering", interval=0.1)
    mbpoll(*tcp, "5555")
    wait_value(c, "tcps", "s0", 5555)

    # Links closed and opened again give their low descriptors back and take
    # them anew.
    for _ in range(3):
        ok(c, "p.tcpc", [{"type": "disabled", "value": 1}])
        wait_point(c, "gw-test", "tcpc", lambda p: num(p, "connected") == 0, "tcpc off")
        tcp_sim.set("hr", 0, [tcp_sim.get("hr", 0)[0] + 1])
        ok(c, "p.tcpc", [{"type": "disabled", "value": 0}])
        wait_value(c, "tcpc", "t0", tcp_sim.get("hr", 0)[0])
    for bus in ("tcpc", "rtuc", "tcps", "rtus"):
        assert num(points(c, "gw-test", bus), "connected") == 1, bus
    answering(d, c)
    stop_clean(d)


def test_out_of_low_descriptors_refuses_a_link_not_the_daemon(tmp_path, idle, peers):
    """Buses made at run time beyond the reserve, while nothing low is free: the
    ones that find no low descriptor say so and keep trying; once the idle
    connections go away they connect."""
    sim = peers(Sim("pymodbus", port=free_port()))
    d = Daemon(tmp_path).start()  # no bus in the file: 8 spare slots
    c = d.client()
    pushed_high(d, idle)
    buses = ["b%d" % i for i in range(12)]
    for b in buses:
        ok(c, "e.%s.gw-test" % b, [{"type": "nodeType", "text": "modbus"}])
        ok(c, "p." + b, [{"type": "protocol", "text": "tcp"},
                         {"type": "uri", "text": "127.0.0.1:%d" % sim.port},
                         {"type": "pollPeriod", "value": 100}, {"type": "timeout", "value": 500}])

    def state():
        pts = [points(c, "gw-test", b) for b in buses]
        up = sum(num(p, "connected") == 1 for p in pts)
        refused = sum("no descriptor below 1024 is free for libmodbus" in text(p, "lastError")
                      for p in pts)
        return (up, refused) if up + refused == len(buses) else None
    up, refused = wait_for(state, timeout=20, what="every bus connected or refused",
                           interval=0.05)
    assert up >= 8 and refused >= 1, (up, refused)
    answering(d, c)
    idle.close()
    for b in buses:
        wait_point(c, "gw-test", b, lambda p: num(p, "connected") == 1, b + " connected")
    stop_clean(d)
