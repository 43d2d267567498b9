#!/usr/bin/python3
"""gen.py - configuration files for the scale benchmark (bench/scale/run.sh).

Two kinds of file, each in two versions (--version 0 or 1) that differ in one
point per node, so that a reload from one to the other really changes something
(every point of a touched file wins the merge anyway: it carries the file's new
modification time):

  nodes    --nodes N: N nodes, groups of 99 variables (one group per 100 nodes),
           each variable with a value and a description: the issue's 50,000-node
           file.
  modbus   --buses B --ios I --sims host:port,...: B Modbus TCP buses of I
           holdingRegister IOs each (addresses 0..I-1, uint16), the buses spread
           over the given simulators; version 1 sets a deadband on every IO.

Usage: gen.py nodes|modbus [options] --port BUS_PORT --data DIR > edgepoint.json
"""
import argparse
import json
import sys


def base(args):
    return {
        "device_id": "gw-scale",
        "data_dir": args.data,
        "log": {"level": "notice"},
        "bus": {"listen": ["127.0.0.1:%d" % args.port]},
    }


def nodes_file(args):
    nodes, left, g = [], args.nodes, 0
    while left > 0:
        kids = min(99, left - 1)
        children = [{"id": "v%d_%d" % (g, i), "type": "variable",
                     "points": {"value": i + 0.5 * args.version,
                                "description": "variable %d of group %d" % (i, g)}}
                    for i in range(kids)]
        nodes.append({"id": "g%d" % g, "type": "group",
                      "points": {"description": "group %d" % g}, "children": children})
        left -= kids + 1
        g += 1
    return nodes


def modbus_file(args):
    sims = args.sims.split(",")
    nodes = []
    for b in range(args.buses):
        ios = []
        for i in range(args.ios):
            pts = {"unitId": 1, "table": "holdingRegister", "address": i, "format": "uint16"}
            if args.version:
                pts["deadband"] = 0.5
            ios.append({"id": "io%d_%d" % (b, i), "type": "modbusIo", "points": pts})
        nodes.append({"id": "bus%d" % b, "type": "modbus",
                      "points": {"protocol": "tcp", "uri": sims[b % len(sims)],
                                 "pollPeriod": args.poll},
                      "children": ios})
    return nodes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["nodes", "modbus"])
    ap.add_argument("--nodes", type=int, default=50000)
    ap.add_argument("--buses", type=int, default=100)
    ap.add_argument("--ios", type=int, default=100)
    ap.add_argument("--sims", default="127.0.0.1:5020")
    ap.add_argument("--poll", type=int, default=1000)
    ap.add_argument("--version", type=int, default=0, choices=[0, 1])
    ap.add_argument("--port", type=int, default=4222)
    ap.add_argument("--data", default="./edgepoint-data")
    args = ap.parse_args()
    c = base(args)
    c["nodes"] = nodes_file(args) if args.kind == "nodes" else modbus_file(args)
    json.dump(c, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
