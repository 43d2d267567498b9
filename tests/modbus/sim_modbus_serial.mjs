// A Modbus TCP device simulator for edgepoint's tests, built on the npm package
// modbus-serial (its ServerTCP): the second, independent implementation next to
// pymodbus. Run from anywhere: node tests/modbus/sim_modbus_serial.mjs PORT [UNITS]
//
// Each unit id in UNITS (comma-separated, default 1) has four tables of 65,536
// entries, addressed from 0. Requests to other unit ids are never answered, as
// from a device that is not there. The control protocol on stdin/stdout is the one
// of sim_pymodbus.py: one JSON object per line in, one JSON answer per line out,
// {"ready": true} first once the server listens.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "js", "package.json"));
const { ServerTCP } = require("modbus-serial");

const port = Number(process.argv[2]);
const units = new Map();
for (const u of (process.argv[3] || "1").split(",")) {
  units.set(Number(u), {
    co: new Uint8Array(65536),
    di: new Uint8Array(65536),
    hr: new Uint16Array(65536),
    ir: new Uint16Array(65536),
  });
}

// A unit that does not exist: a promise that never settles, so no answer goes out.
const silent = () => new Promise(() => {});
const table = (name) => (addr, unit) => {
  const t = units.get(unit);
  return t ? t[name][addr] : silent();
};

const vector = {
  getCoil: (addr, unit) => {
    const t = units.get(unit);
    return t ? t.co[addr] === 1 : silent();
  },
  getDiscreteInput: (addr, unit) => {
    const t = units.get(unit);
    return t ? t.di[addr] === 1 : silent();
  },
  getHoldingRegister: table("hr"),
  getInputRegister: table("ir"),
  setCoil: (addr, value, unit) => {
    const t = units.get(unit);
    if (!t) return silent();
    t.co[addr] = value ? 1 : 0;
  },
  setRegister: (addr, value, unit) => {
    const t = units.get(unit);
    if (!t) return silent();
    t.hr[addr] = value;
  },
};

const server = new ServerTCP(vector, { host: "127.0.0.1", port, unitID: 255 });
server.on("serverError", (e) => {
  console.error(String(e));
  process.exit(1);
});
server.on("initialized", () => console.log(JSON.stringify({ ready: true })));

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let out;
  try {
    const cmd = JSON.parse(line);
    const t = units.get(cmd.unit);
    if (!t) throw new Error("no unit " + cmd.unit);
    const arr = t[cmd.table];
    if (!arr) throw new Error("no table " + cmd.table);
    if (cmd.op === "set") {
      cmd.values.forEach((v, i) => (arr[cmd.address + i] = Number(v)));
      out = { ok: true };
    } else if (cmd.op === "get") {
      out = { values: Array.from(arr.slice(cmd.address, cmd.address + cmd.count)) };
    } else {
      out = { error: "unknown op " + cmd.op };
    }
  } catch (e) {
    out = { error: String(e) };
  }
  console.log(JSON.stringify(out));
});
rl.on("close", () => process.exit(0)); // the test has gone
