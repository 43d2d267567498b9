// dataplane.mjs - the gateway's data plane driven by nats.js, the official NATS
// JavaScript client: the JSON formats of p.*, e.*, nodes.* and sys.* checked from
// outside C. The same checks exist for nats.go (dataplane.go).
//
//   node dataplane.mjs URL DEVICE
//
// Prints "ok - ..." per check; exits 0 when all passed, 1 at the first failure.
import { createRequire } from "node:module";

const require = createRequire(new URL("../js/package.json", import.meta.url));
const { connect, StringCodec } = require("nats");

const sc = StringCodec();
const [url, device] = process.argv.slice(2);
let nc;

function check(cond, what, detail) {
  if (!cond) {
    console.log("not ok - " + what + (detail ? ": " + JSON.stringify(detail) : ""));
    process.exit(1);
  }
  console.log("ok - " + what);
}

async function req(subject, body) {
  const m = await nc.request(subject, sc.encode(typeof body === "string" ? body : JSON.stringify(body)),
    { timeout: 5000 });
  return JSON.parse(sc.decode(m.data));
}

async function main() {
  nc = await connect({ servers: url, reconnect: false });
  const node = "js" + process.pid;

  let r = await req(`e.${node}.${device}`, [{ type: "nodeType", text: "variable" }]);
  check(r.ok === true && Object.keys(r).length === 1, "create a node with e.<node>.<parent>", r);

  const sub = nc.subscribe(`p.${node}`, { max: 1 });
  const t = "2026-05-06T07:08:09.123456789Z";
  r = await req(`p.${node}`, [{ type: "temp", key: "a", value: 21.5, time: t }, { type: "label", text: "hall" }]);
  check(r.ok === true, "p.<node> acknowledged after the commit", r);
  for await (const m of sub) {
    const pts = JSON.parse(sc.decode(m.data));
    check(m.subject === `p.${node}` && pts[0].value === 21.5, "a subscriber of p.<node> sees the points", pts);
  }

  r = await req(`nodes.${device}.${node}`, {});
  check(Array.isArray(r.nodes) && r.nodes.length === 1, "nodes.<parent>.<node> answers one node", r);
  const n = r.nodes[0];
  check(n.id === node && n.type === "variable" && n.parent === device && n.tombstone === false,
    "the node's id, type, parent and tombstone", n);
  const temp = n.points.find((p) => p.type === "temp");
  check(temp && temp.key === "a" && temp.value === 21.5 && temp.time === t,
    "a point's type, key, value and time (nanoseconds kept)", temp);
  const label = n.points.find((p) => p.type === "label");
  check(label && label.text === "hall" && label.key === "0", "a text point, default key 0", label);
  check(n.edgePoints.some((p) => p.type === "nodeType" && p.text === "variable"), "edgePoints carry nodeType", n.edgePoints);

  r = await req(`nodes.${device}.all`, { type: "variable" });
  check(r.nodes.some((x) => x.id === node) && r.nodes.every((x) => x.type === "variable"),
    "nodes.<parent>.all filtered by type", r.nodes.map((x) => x.id));

  r = await req(`p.${node}`, [{ type: "temp", time: "2200-01-01T00:00:00Z", value: 1 }]);
  check(typeof r.error === "string" && r.error.includes("ahead"), "a time too far in the future is refused", r);
  r = await req(`p.${node}`, "[{\"type\":");
  check(typeof r.error === "string" && /JSON/i.test(r.error), "malformed JSON is refused", r);
  r = await req(`p.nosuch${process.pid}`, [{ type: "x", value: 1 }]);
  check(r.error === `unknown node nosuch${process.pid}`, "an unknown node is refused", r);

  r = await req(`e.${node}.${device}`, [{ type: "tombstone", value: 1 }]);
  check(r.ok === true, "delete with a tombstone edge point", r);
  r = await req(`nodes.${device}.all`, {});
  check(!r.nodes.some((x) => x.id === node), "a deleted node is not listed", r.nodes.map((x) => x.id));
  r = await req(`nodes.${device}.all`, { tombstone: true });
  check(r.nodes.some((x) => x.id === node && x.tombstone === true), "listed with tombstone:true", r.nodes.length);

  r = await req(`sys.${device}.info`, "");
  check(r.device === device && typeof r.uptime === "number" && r.pointsWritten >= 2 &&
    r.busConnections >= 1 && r.storeBytes > 0, "sys.<device>.info", r);
  await nc.close();
}

main().catch((e) => {
  console.log("not ok - " + e);
  process.exit(1);
});
