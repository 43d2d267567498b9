"""Modbus RTU over a serial line made of a socat PTY pair (the client against the
pymodbus RTU simulator, unplugged and plugged back in), and server mode checked
with mbpoll, an independent Modbus master, over TCP and over RTU."""
import json
import re
import subprocess

from pymodbus.constants import Endian
from pymodbus.payload import BinaryPayloadBuilder

from conftest import Daemon, free_port, wait_for
from mbsim import PtyPair, Sim, num, points, stop_clean, text, wait_point, wait_value


def ok(c, subject, payload):
    r = c.request(subject, json.dumps(payload))
    assert r == {"ok": True}, (subject, r)


def io(iid, **pts):
    pts.setdefault("table", "holdingRegister")
    return {"id": iid, "type": "modbusIo", "points": pts}


def test_rtu_client_over_a_pty_pair(tmp_path):
    line = PtyPair(tmp_path).start()
    sim = Sim("pymodbus", device=line.b, baud=19200, units=(1,)).start()
    d = None
    try:
        sim.set("hr", 0, [1234, 0x4049, 0x0FDB])          # 1234, float32 pi (ABCD)
        b = BinaryPayloadBuilder(byteorder=Endian.Little, wordorder=Endian.Little)
        b.add_32bit_int(-123456)
        sim.set("ir", 0, b.to_registers())                  # int32 in DCBA
        sim.set("co", 0, [1])
        tree = [{"id": "line", "type": "modbus",
                 "points": {"protocol": "rtu", "port": line.a, "baud": 19200, "parity": "none",
                            "pollPeriod": 100, "timeout": 300, "degradeAfter": 2,
                            "degradeTime": 5000, "rs485": True},
                 "children": [io("u16", address=0), io("pi", address=1, format="float32"),
                              io("i32", table="inputRegister", address=0, format="int32",
                                 byteOrder="DCBA"),
                              io("c0", table="coil", address=0), io("w", address=10),
                              io("absent", unitId=2, address=0)]}]
        d = Daemon(tmp_path, config={"nodes": tree}).start()
        c = d.client()
        wait_value(c, "line", "u16", 1234)
        wait_value(c, "line", "pi", 3.1415927, tol=1e-6)
        wait_value(c, "line", "i32", -123456)
        wait_value(c, "line", "c0", 1)
        # A pseudo-terminal cannot do RS-485: said once, and the line works anyway.
        assert "does not support RS-485 mode" in d.output()
        ok(c, "p.w", [{"type": "valueSet", "value": 555}])
        wait_value(c, "line", "w", 555)
        assert sim.get("hr", 10) == [555]
        # Unit 2 is not on the line: it times out, is skipped, and unit 1 goes on.
        wait_point(c, "line", "absent", lambda p: "skipped" in text(p, "lastError"),
                   "unit 2 skipped")
        sim.set("hr", 0, [4321])
        wait_value(c, "line", "u16", 4321)

        # Unplugged: the serial device disappears.
        line.stop()
        sim.stop()
        wait_point(c, "gw-test", "line", lambda p: num(p, "connected") == 0, "disconnected")
        wait_point(c, "line", "u16", lambda p: "bus not connected" in text(p, "lastError"),
                   "the IO says why")
        # Plugged back in: the same device path, a device with new values.
        line = PtyPair(tmp_path).start()
        sim = Sim("pymodbus", device=line.b, baud=19200, units=(1,)).start()
        sim.set("hr", 0, [777])
        wait_value(c, "line", "u16", 777)
        wait_point(c, "gw-test", "line", lambda p: num(p, "connected") == 1, "reconnected")
        bus = points(c, "gw-test", "line")
        assert num(bus, "errorCount") >= 1
    finally:
        if d:
            stop_clean(d)
        sim.stop()
        line.stop()


def mbpoll(*args, check=True):
    r = subprocess.run(["mbpoll", "-1", "-0", "-o", "1"] + list(args), capture_output=True,
                       text=True, timeout=30)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def read_refs(out):
    """mbpoll's "[ref]: value" lines as {ref: text}."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\[(\d+)\]:\s+(\S+)", out, re.M)}


SERVED = [io("u16", address=0), io("f32", address=10, format="float32"),
          io("f32le", address=12, format="float32", byteOrder="CDAB"),
          io("ro", address=20, readOnly=True), io("co3", table="coil", address=3),
          io("di1", table="discreteInput", address=1),
          io("ir5", table="inputRegister", address=5, format="int16", scale=0.1)]
VALUES = {"u16": 1234, "f32": -2.5, "f32le": 6.25, "ro": 9, "co3": 1, "di1": 1, "ir5": -12.3}


def set_values(c):
    for iid, v in VALUES.items():
        ok(c, "p." + iid, [{"type": "value", "value": v}])


def test_server_tcp_answers_mbpoll(tmp_path):
    port = free_port()
    tree = [{"id": "srv", "type": "modbus",
             "points": {"clientServer": "server", "protocol": "tcp",
                        "uri": "127.0.0.1:%d" % port},
             "children": SERVED}]
    d = Daemon(tmp_path, config={"nodes": tree}).start()
    c = d.client()
    try:
        set_values(c)
        host = ["-m", "tcp", "-p", str(port), "-a", "1"]

        def served():
            r = mbpoll(*host, "-r", "0", "-t", "4", "127.0.0.1", check=False)
            return r.returncode == 0 and read_refs(r.stdout).get(0) == "1234"
        wait_for(served, what="the server answering with 1234", interval=0.1)
        refs = read_refs(mbpoll(*host, "-r", "10", "-t", "4:float", "-B", "127.0.0.1").stdout)
        assert float(refs[10]) == -2.5
        # mbpoll's default word order for 32-bit values is low word first: CDAB.
        refs = read_refs(mbpoll(*host, "-r", "12", "-t", "4:float", "127.0.0.1").stdout)
        assert float(refs[12]) == 6.25
        assert read_refs(mbpoll(*host, "-r", "3", "-t", "0", "127.0.0.1").stdout)[3] == "1"
        assert read_refs(mbpoll(*host, "-r", "1", "-t", "1", "127.0.0.1").stdout)[1] == "1"
        # -12.3 / 0.1 = -123 as int16; mbpoll shows registers unsigned: 0xff85.
        assert read_refs(mbpoll(*host, "-r", "5", "-t", "3", "127.0.0.1").stdout)[5] == "65413"

        # A master's writes become value points.
        mbpoll(*host, "-r", "0", "-t", "4", "127.0.0.1", "4321")
        wait_value(c, "srv", "u16", 4321)
        mbpoll(*host, "-r", "10", "-t", "4:float", "-B", "127.0.0.1", "--", "-0.75")
        wait_value(c, "srv", "f32", -0.75)
        mbpoll(*host, "-r", "3", "-t", "0", "127.0.0.1", "0")
        wait_value(c, "srv", "co3", 0)
        # A read-only IO refuses writes; an unknown unit gets a gateway exception.
        r = mbpoll(*host, "-r", "20", "-t", "4", "127.0.0.1", "1", check=False)
        assert r.returncode != 0 and "Illegal data address" in r.stdout + r.stderr
        assert points(c, "srv", "ro")["value"]["value"] == 9
        r = mbpoll("-m", "tcp", "-p", str(port), "-a", "7", "-r", "0", "127.0.0.1",
                   check=False)
        assert r.returncode != 0 and "Target device failed to respond" in r.stdout + r.stderr
        # Outside every IO: illegal data address.
        r = mbpoll(*host, "-r", "100", "-t", "4", "127.0.0.1", check=False)
        assert r.returncode != 0 and "Illegal data address" in r.stdout + r.stderr
        # A value point from the bus changes what is served.
        ok(c, "p.u16", [{"type": "value", "value": 42}])
        wait_for(lambda: read_refs(mbpoll(*host, "-r", "0", "127.0.0.1").stdout)[0] == "42",
                 what="42 served", interval=0.1)
        bus = points(c, "gw-test", "srv")
        assert num(bus, "connected") == 1
    finally:
        stop_clean(d)


def test_server_rtu_answers_mbpoll(tmp_path):
    line = PtyPair(tmp_path).start()
    tree = [{"id": "srv", "type": "modbus",
             "points": {"clientServer": "server", "protocol": "rtu", "port": line.a,
                        "baud": 19200, "parity": "even"},
             "children": SERVED}]
    d = Daemon(tmp_path, config={"nodes": tree}).start()
    c = d.client()
    try:
        set_values(c)
        rtu = ["-m", "rtu", "-b", "19200", "-P", "even", "-a", "1"]
        wait_for(lambda: read_refs(mbpoll(*rtu, "-r", "0", line.b, check=False).stdout)
                 .get(0) == "1234", what="the RTU server answering", interval=0.1)
        refs = read_refs(mbpoll(*rtu, "-r", "10", "-t", "4:float", "-B", line.b).stdout)
        assert float(refs[10]) == -2.5
        mbpoll(*rtu, "-r", "0", "-t", "4", line.b, "99")
        wait_value(c, "srv", "u16", 99)
        # Another unit id gets no answer on a serial line.
        r = mbpoll("-m", "rtu", "-b", "19200", "-P", "even", "-a", "5", "-r", "0", line.b,
                   check=False)
        assert r.returncode != 0
    finally:
        stop_clean(d)
        line.stop()
