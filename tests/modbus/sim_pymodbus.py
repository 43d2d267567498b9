"""A Modbus device simulator for edgepoint's tests, built on pymodbus (Debian's
python3-pymodbus 3.0): a TCP server, or an RTU server on a serial device (one end of
a socat PTY pair).

Usage:
  sim_pymodbus.py --tcp PORT [--units 1,2] [--size N]
  sim_pymodbus.py --rtu DEVICE [--baud 9600] [--units 1] [--size N]

Every unit id in --units has its own four tables of N entries (default 65,536),
addressed from 0 (pymodbus's zero_mode); a request past the end gets exception 02
(illegal data address). Requests to other unit ids get no answer at all, as from a
device that is not there.

Control: one JSON object per line on stdin, one JSON answer per line on stdout.
The first line out is {"ready": true} once the server listens (or has opened its
port).
  {"op": "set", "unit": 1, "table": "hr", "address": 0, "values": [1, 2]}
  {"op": "get", "unit": 1, "table": "hr", "address": 0, "count": 2}
  {"op": "count", "unit": 1, "table": "hr"}  -> {"requests": N}, requests answered
tables: co (coils), di (discrete inputs), hr (holding registers), ir (input
registers).
"""
import argparse
import asyncio
import json
import logging
import os
import sys
import threading

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.server.async_io import ModbusSerialServer, ModbusTcpServer
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer

FC = {"co": 1, "di": 2, "hr": 3, "ir": 4}
answered = [0]


def count(response):
    """pymodbus's response hook: counts every answer that goes out."""
    answered[0] += 1
    return response, False


def unit_context(size):
    def block():
        return ModbusSequentialDataBlock(0, [0] * size)
    return ModbusSlaveContext(di=block(), co=block(), hr=block(), ir=block(), zero_mode=True)


def control(context):
    """Reads commands from stdin (a thread: pymodbus's datastore is plain lists).
    The end of stdin (the test has gone) ends the simulator."""
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            slave = context[cmd["unit"]]
            fc = FC[cmd["table"]]
            if cmd["op"] == "count":
                out = {"requests": answered[0]}
            elif cmd["op"] == "set":
                slave.setValues(fc, cmd["address"], cmd["values"])
                out = {"ok": True}
            elif cmd["op"] == "get":
                vals = slave.getValues(fc, cmd["address"], cmd["count"])
                out = {"values": [int(v) for v in vals]}
            else:
                out = {"error": "unknown op " + cmd["op"]}
        except Exception as e:  # noqa: BLE001 - the test reads the text
            out = {"error": repr(e)}
        print(json.dumps(out), flush=True)
    os._exit(0)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", type=int)
    ap.add_argument("--rtu")
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--units", default="1")
    ap.add_argument("--size", type=int, default=65536)
    a = ap.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    units = [int(u) for u in a.units.split(",")]
    context = ModbusServerContext(slaves={u: unit_context(a.size) for u in units}, single=False)
    if a.tcp:
        server = ModbusTcpServer(context, framer=ModbusSocketFramer,
                                 address=("127.0.0.1", a.tcp), allow_reuse_address=True,
                                 ignore_missing_slaves=True, response_manipulator=count)
        task = asyncio.create_task(server.serve_forever())
        await server.serving
    else:
        server = ModbusSerialServer(context, framer=ModbusRtuFramer, port=a.rtu,
                                    baudrate=a.baud, ignore_missing_slaves=True,
                                    response_manipulator=count)
        await server.start()
        task = asyncio.create_task(server.serve_forever())
    threading.Thread(target=control, args=(context,), daemon=True).start()
    print(json.dumps({"ready": True}), flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main())
