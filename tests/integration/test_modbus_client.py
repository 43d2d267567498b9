"""The Modbus client over TCP, against simulators nobody here wrote: pymodbus (Debian's
python3-pymodbus) and npm modbus-serial. Every format in every byte order from
register contents made by pymodbus's own payload builder, scale and offset, gap
filling counted by the simulator itself, writes and their read-back, a dead unit
that does not stall a live one, a simulator that goes away and comes back."""
import struct
import time

import pytest
from pymodbus.constants import Endian
from pymodbus.payload import BinaryPayloadBuilder

from conftest import Daemon, free_port, wait_for
from mbsim import Sim, num, points, stop_clean, text, value, wait_point, wait_value

SIMS = ["pymodbus", "modbus-serial"]

# (format, value, builder method); the uint64 and float values are exact in a double.
FORMATS = [
    ("int16", -12345, "add_16bit_int"),
    ("uint16", 54321, "add_16bit_uint"),
    ("int32", -123456789, "add_32bit_int"),
    ("uint32", 3000000001, "add_32bit_uint"),
    ("int64", -1234567890123, "add_64bit_int"),
    ("uint64", 0xF0E0D0C0B0A09800, "add_64bit_uint"),
    ("float32", struct.unpack(">f", struct.pack(">f", -123.456))[0], "add_32bit_float"),
    ("float64", 3.141592653589793, "add_64bit_float"),
]
# byteOrder -> pymodbus (byte order within a word, word order).
ORDERS = {"ABCD": (Endian.Big, Endian.Big), "CDAB": (Endian.Big, Endian.Little),
          "BADC": (Endian.Little, Endian.Big), "DCBA": (Endian.Little, Endian.Little)}


def registers(method, v, order):
    b = BinaryPayloadBuilder(byteorder=ORDERS[order][0], wordorder=ORDERS[order][1])
    getattr(b, method)(v)
    return b.to_registers()


def bus_node(bid, port, children, **pts):
    p = {"protocol": "tcp", "uri": "127.0.0.1:%d" % port, "pollPeriod": 100, "timeout": 500}
    p.update(pts)
    return {"id": bid, "type": "modbus", "points": p, "children": children}


def io(iid, **pts):
    pts.setdefault("table", "holdingRegister")
    return {"id": iid, "type": "modbusIo", "points": pts}


@pytest.fixture
def sims():
    made = []

    def make(kind, units=(1,), port=None, size=None):
        s = Sim(kind, port=port or free_port(), units=units, size=size).start()
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


@pytest.fixture
def gw(tmp_path):
    made = []

    def make(nodes):
        d = Daemon(tmp_path, config={"nodes": nodes}, name="ep%d" % len(made)).start()
        made.append(d)
        return d, d.client()
    yield make
    for d in made:
        stop_clean(d)


@pytest.mark.parametrize("kind", SIMS)
def test_every_format_and_byte_order(kind, sims, gw):
    sim = sims(kind)
    ios, want = [], {}
    addr = {"holdingRegister": 0, "inputRegister": 0}
    for order in ORDERS:
        # DCBA values live in input registers, the rest in holding registers.
        table = "inputRegister" if order == "DCBA" else "holdingRegister"
        for fmt, v, method in FORMATS:
            regs = registers(method, v, order)
            sim.set("ir" if table == "inputRegister" else "hr", addr[table], regs)
            iid = "%s_%s" % (fmt, order)
            ios.append(io(iid, table=table, address=addr[table], format=fmt, byteOrder=order))
            want[iid] = v
            addr[table] += len(regs)
    sim.set("co", 0, [1, 0, 1])
    sim.set("di", 5, [1])
    sim.set("hr", 200, [7])
    sim.set("hr", 300, registers("add_16bit_int", -200, "ABCD"))
    ios += [io("coil0", table="coil", address=0), io("coil1", table="coil", address=1),
            io("coil2", table="coil", address=2), io("di5", table="discreteInput", address=5),
            io("regbit", address=200, format="bit"),
            io("scaled", address=300, format="int16", scale=0.5, offset=10)]
    want.update({"coil0": 1, "coil1": 0, "coil2": 1, "di5": 1, "regbit": 1, "scaled": -90})
    # The bus's order is the default for IOs without one: CDAB here, overridden above.
    d, c = gw([bus_node("plc", sim.port, ios, byteOrder="CDAB")])
    for iid, v in want.items():
        wait_value(c, "plc", iid, v)
    # Holding 0..59, holding 200, holding 300, input 0..19, coils 0..2, input 5.
    bus = wait_point(c, "gw-test", "plc", lambda p: num(p, "requestsPerCycle") == 6,
                     "requestsPerCycle 6")
    assert num(bus, "connected") == 1
    assert text(bus, "lastError") == ""


def test_gap_filling_one_request_per_range(sims, gw):
    """The simulator counts the requests it answers: one per range, gaps filled."""
    sim = sims("pymodbus")
    sim.set("hr", 0, [1, 0, 0, 0, 0, 0x4048, 0xF5C3])  # 1 at 0, float32 3.14 at 5
    sim.set("hr", 40, [40])
    sim.set("ir", 0, [10, 11, 12, 13])
    sim.set("co", 0, [1, 1])
    ios = [io("h0", address=0), io("h5", address=5, format="float32"),
           io("h40", address=40)] + \
        [io("i%d" % a, table="inputRegister", address=a) for a in range(4)] + \
        [io("c%d" % a, table="coil", address=a) for a in range(2)]
    # One cycle a day: after the first, only plan changes start a cycle.
    d, c = gw([bus_node("plc", sim.port, ios, pollPeriod=86400000)])
    for iid, v in [("h0", 1), ("h40", 40), ("i3", 13), ("c1", 1)]:
        wait_value(c, "plc", iid, v)
    wait_value(c, "plc", "h5", 3.14, tol=1e-6)
    # 0..6 (gap of 3 filled), 40 (33 away: apart), input 0..3, coils 0..1.
    wait_point(c, "gw-test", "plc", lambda p: num(p, "requestsPerCycle") == 4, "4 requests")
    wait_for(lambda: sim.requests() >= 4, what="4 requests answered")
    assert sim.requests() == 4  # 9 IOs, 4 requests: not one per IO

    # A wider gap joins 0..40 into one request; the new plan is read at once.
    assert c.request("p.plc", '[{"type":"maxGap","value":40}]') == {"ok": True}
    wait_point(c, "gw-test", "plc", lambda p: num(p, "requestsPerCycle") == 3, "3 requests")
    wait_for(lambda: sim.requests() >= 7, what="3 more requests")
    # A smaller request size splits it again: 0..4, 5..6, 40 -> 5 requests.
    assert c.request("p.plc", '[{"type":"maxRegistersPerRequest","value":5}]') == {"ok": True}
    wait_point(c, "gw-test", "plc", lambda p: num(p, "requestsPerCycle") == 5, "5 requests")
    wait_for(lambda: sim.requests() >= 12, what="5 more requests")
    assert sim.requests() == 12


@pytest.mark.parametrize("kind", SIMS)
def test_writes_and_read_back(kind, sims, gw):
    sim = sims(kind)
    sim.set("hr", 60, [5])
    ios = [io("c", table="coil", address=10), io("h", address=20),
           io("f", address=30, format="float32", byteOrder="CDAB"),
           io("s", address=40, format="int16", scale=0.1),
           io("d", address=50, format="float64", byteOrder="DCBA"),
           io("ro", address=60, readOnly=True), io("ir", table="inputRegister", address=0),
           io("big", address=70)]
    d, c = gw([bus_node("plc", sim.port, ios)])
    wait_value(c, "plc", "ro", 5)

    def put(iid, v):
        assert c.request("p." + iid, '[{"type":"valueSet","value":%r}]' % v) == {"ok": True}

    put("c", 1)      # FC05
    put("h", 4321)   # FC06
    put("f", 12.5)   # FC16, two registers
    put("s", 21.5)   # raw 215
    put("d", -1.25)  # FC16, four registers
    wait_value(c, "plc", "c", 1)
    wait_value(c, "plc", "h", 4321)
    wait_value(c, "plc", "f", 12.5)
    wait_value(c, "plc", "s", 21.5, tol=1e-9)
    wait_value(c, "plc", "d", -1.25)
    assert sim.get("co", 10) == [1]
    assert sim.get("hr", 20) == [4321]
    assert sim.get("hr", 30, 2) == registers("add_32bit_float", 12.5, "CDAB")
    assert sim.get("hr", 40) == [215]
    assert sim.get("hr", 50, 4) == registers("add_64bit_float", -1.25, "DCBA")

    put("ro", 9)
    put("ir", 9)
    put("big", 70000)
    p = wait_point(c, "plc", "ro", lambda p: num(p, "errorCount") == 1, "ro refused")
    assert text(p, "lastError") == "valueSet: not written: the IO is read-only (readOnly is set)"
    p = wait_point(c, "plc", "ir", lambda p: num(p, "errorCount") == 1, "ir refused")
    assert text(p, "lastError") == "valueSet: not written: input registers are read-only"
    p = wait_point(c, "plc", "big", lambda p: num(p, "errorCount") == 1, "big refused")
    assert text(p, "lastError") == "valueSet: not written: 70000 does not fit uint16 (0..65535)"
    assert sim.get("hr", 60) == [5]
    # A failed write is counted; the next good one works and clears nothing it
    # should not: the read-back value is published again.
    put("h", 1)
    wait_value(c, "plc", "h", 1)
    assert sim.get("hr", 20) == [1]


@pytest.mark.parametrize("kind", SIMS)
def test_dead_unit_does_not_stall_a_live_one(kind, sims, gw):
    sim = sims(kind, units=(2,))  # unit 1 never answers
    ios = [io("dead", unitId=1, address=0), io("dead2", unitId=1, address=50),
           io("live", unitId=2, address=0)]
    d, c = gw([bus_node("plc", sim.port, ios, timeout=300, degradeAfter=2,
                        degradeTime=3000)])
    p = wait_point(c, "plc", "dead", lambda p: num(p, "errorCount", 0) >= 1, "a timeout")
    assert "timed out" in text(p, "lastError"), p
    p = wait_point(c, "plc", "dead", lambda p: "skipped" in text(p, "lastError"),
                   "unit 1 degraded")
    assert text(p, "lastError") == "unit 1 failed 2 polls in a row: skipped for 3000 ms"
    # The live unit keeps up: each change shows within about one poll period.
    for k in range(1, 6):
        sim.set("hr", 0, [k * 11], unit=2)
        t0 = time.monotonic()
        wait_value(c, "plc", "live", k * 11)
        assert time.monotonic() - t0 < 2.0
    bus = points(c, "gw-test", "plc")
    assert num(bus, "connected") == 1
    assert num(bus, "errorCount") >= 1
    assert text(points(c, "plc", "live"), "lastError") == ""


@pytest.mark.parametrize("kind", SIMS)
def test_simulator_goes_away_and_comes_back(kind, sims, gw):
    sim = sims(kind)
    sim.set("hr", 0, [11])
    d, c = gw([bus_node("plc", sim.port, [io("a", address=0)], timeout=300)])
    wait_value(c, "plc", "a", 11)
    wait_point(c, "gw-test", "plc", lambda p: num(p, "connected") == 1, "connected")
    sim.stop()
    bus = wait_point(c, "gw-test", "plc", lambda p: num(p, "connected") == 0, "disconnected")
    assert num(bus, "errorCount") >= 1
    wait_point(c, "plc", "a", lambda p: "bus not connected" in text(p, "lastError"),
               "the IO says why")
    assert value(c, "plc", "a") == 11  # the last value stays
    back = sims(kind, port=sim.port)
    back.set("hr", 0, [22])
    wait_value(c, "plc", "a", 22)
    wait_point(c, "gw-test", "plc", lambda p: num(p, "connected") == 1, "reconnected")
    wait_point(c, "plc", "a", lambda p: text(p, "lastError") == "", "lastError cleared")


def test_deadband_refresh_and_pause(sims, gw):
    sim = sims("pymodbus")
    sim.set("hr", 0, [100])
    sim.set("hr", 100, [7])
    ios = [io("db", address=0, deadband=5), io("rf", address=100, refreshPeriod=300)]
    d, c = gw([bus_node("plc", sim.port, ios)])
    wait_value(c, "plc", "db", 100)
    sim.set("hr", 0, [104])  # within the deadband: not published
    sim.set("hr", 100, [8])
    wait_value(c, "plc", "rf", 8)  # a later read than the one that saw 104
    wait_value(c, "plc", "rf", 8)
    assert value(c, "plc", "db") == 100
    sim.set("hr", 0, [106])  # past it
    wait_value(c, "plc", "db", 106)
    # An unchanged value is published again every refreshPeriod.
    t1 = points(c, "plc", "rf")["value"]["time"]
    wait_point(c, "plc", "rf", lambda p: p["value"]["time"] > t1, "a refresh")

    # A pause between requests: 2 ranges, 400 ms apart, so at most 2 cycles a second
    # however short the poll period.
    assert c.request("p.plc", '[{"type":"pauseBetweenRequests","value":400},'
                     '{"type":"pollPeriod","value":10}]') == {"ok": True}
    wait_for(lambda: sim.requests() > 0, what="requests")
    n0, t0 = sim.requests(), time.monotonic()
    wait_for(lambda: time.monotonic() - t0 >= 2, what="two seconds")  # an interval, not readiness
    rate = (sim.requests() - n0) / (time.monotonic() - t0)
    assert 1.0 <= rate <= 3.5, rate  # about 2.5; without the pause it would be ~100


def test_exception_responses_and_isolation(sims, gw):
    """A device with 10 registers: a gap-filled read that reaches past them gets
    exception 02; its IOs are then read one by one and only the bad one fails."""
    sim = sims("pymodbus", size=10)
    sim.set("hr", 0, [1, 0, 0, 0, 0, 6])
    ios = [io("ok0", address=0), io("ok5", address=5), io("bad", address=12)]
    d, c = gw([bus_node("plc", sim.port, ios)])
    wait_value(c, "plc", "ok0", 1)
    wait_value(c, "plc", "ok5", 6)
    p = wait_point(c, "plc", "bad", lambda p: num(p, "errorCount", 0) >= 2, "errors")
    assert text(p, "lastError") == "unit 1 holdingRegister 12..12: Illegal data address"
    bus = wait_point(c, "gw-test", "plc", lambda p: num(p, "requestsPerCycle") == 3,
                     "one request per IO after the isolation")
    assert num(bus, "errorCount") >= 2
    assert "Illegal data address" in text(bus, "lastError")
    assert text(points(c, "plc", "ok5"), "lastError") == ""
