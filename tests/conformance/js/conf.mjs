// conf.mjs - the bus conformance cases driven by nats.js, the official NATS JavaScript
// client (npm "nats" v2, installed in tests/js by scripts/setup.sh). A client nobody
// here wrote.
//
//   node conf.mjs URL CASE [--token T] [--user U --password P] [--ca FILE]
//                 [--cert FILE --key FILE] [--max-payload N]
//
// Each case prints one "ok - ..." line per thing it checked and exits 0 when all
// passed, or prints "not ok - ..." and exits 1 at the first failure (2 for usage).
// The same cases, with the same names and checks, exist for nats.c
// (../natsc_conf.c) and nats.go (../go/conf.go).
//
// Messages are collected by subscription callbacks, which nats.js runs as each MSG
// is parsed; after the publisher's and the subscriber's flush (PING/PONG), every
// message the server routed has therefore been seen, without waiting on timers.
import { createRequire } from "node:module";

const require = createRequire(new URL("../../js/package.json", import.meta.url));
const nats = require("nats");
const { connect, headers, ErrorCode } = nats;

const enc = new TextEncoder();
const dec = new TextDecoder();
const opt = { token: "", user: "", password: "", ca: "", cert: "", key: "", maxPayload: 0 };
let url = "";
let prefix = "";

function ok(text) {
  console.log("ok - " + text);
}

class CaseFailure extends Error {}

function fail(text) {
  throw new CaseFailure(text);
}

const subj = (tail) => prefix + "." + tail;

// Connects with the credentials and CA of the command line; no reconnects.
function conn() {
  const o = { servers: url, name: "natsjs_conf", reconnect: false, timeout: 5000 };
  if (opt.token) o.token = opt.token;
  if (opt.user) {
    o.user = opt.user;
    o.pass = opt.password;
  }
  if (opt.ca) o.tls = { caFile: opt.ca };
  if (opt.cert) o.tls = { ...o.tls, certFile: opt.cert, keyFile: opt.key };
  return connect(o);
}

async function mustConn() {
  try {
    return await conn();
  } catch (e) {
    fail("connect: " + describe(e));
  }
}

function describe(e) {
  return `${e.message}${e.code ? " [" + e.code + "]" : ""}`;
}

// A subscription whose messages land in an array.
function collect(nc, subject, opts = {}) {
  const got = [];
  const sub = nc.subscribe(subject, {
    ...opts,
    callback: (err, m) => {
      if (err) got.push(err);
      else got.push(m);
    },
  });
  return { sub, got };
}

async function roundtrip(nc, what) {
  const s = subj("rt");
  const c = collect(nc, s);
  nc.publish(s, enc.encode("round trip"));
  await nc.flush();
  if (c.got.length !== 1 || dec.decode(c.got[0].data) !== "round trip") {
    fail(`${what}: got ${c.got.length} messages`);
  }
  ok(`${what}: a message made the round trip`);
}

async function caseConnect() {
  const nc = await mustConn();
  ok("connected to " + nc.getServer());
  if (!nc.info.server_id) fail("INFO has no server_id");
  ok(`INFO server_id '${nc.info.server_id}'`);
  if (opt.maxPayload && nc.info.max_payload !== opt.maxPayload) {
    fail(`INFO max_payload ${nc.info.max_payload}, want ${opt.maxPayload}`);
  }
  ok("INFO max_payload " + nc.info.max_payload);
  if (nc.info.headers !== true) fail("INFO headers is not true");
  ok("INFO headers true");
  if (nc.info.proto !== 1) fail("INFO proto " + nc.info.proto);
  ok("INFO proto 1");
  const rtt = await nc.rtt();
  ok(`PING/PONG round trip ${rtt} ms`);
  await nc.close();
  if (!nc.isClosed()) fail("close");
  ok("closed");
}

async function casePubsub() {
  const pub = await mustConn();
  const sc = await mustConn();
  const s = subj("ps");
  const big = new Uint8Array(3000).map((_, i) => 97 + (i % 26));
  const bin = new Uint8Array(256).map((_, i) => i);
  const msgs = [
    [enc.encode("hello"), ""], [new Uint8Array(0), ""], [bin, ""], [big, ""],
    [enc.encode("with reply"), "reply.to.me"],
  ];
  const c = collect(sc, s);
  await sc.flush();
  for (const [data, reply] of msgs) {
    pub.publish(s, data, reply ? { reply } : undefined);
  }
  await pub.flush();
  await sc.flush();
  msgs.forEach(([data, reply], i) => {
    const r = c.got[i];
    if (!r) fail(`message ${i} missing (${c.got.length} received)`);
    if (r.subject !== s) fail(`message ${i}: subject ${r.subject}`);
    if (Buffer.compare(Buffer.from(r.data), Buffer.from(data)) !== 0) {
      fail(`message ${i}: ${r.data.length} bytes differ from the ${data.length} sent`);
    }
    if ((r.reply || "") !== reply) fail(`message ${i}: reply '${r.reply}'`);
    ok(`message ${i}: ${data.length} bytes, in order, reply '${r.reply || ""}'`);
  });
  if (c.got.length !== msgs.length) fail(`${c.got.length} messages, want ${msgs.length}`);
  ok("nothing else delivered");
  await pub.close();
  await sc.close();
}

async function caseWildcards() {
  const pub = await mustConn();
  const sc = await mustConn();
  const pats = ["w.*", "w.>", "w.*.b", "w.a.>"];
  const pubs = ["w.a", "w.a.b", "w.b.c.d", "w", "x.a", "w.c.b"];
  const want = [0x3, 0xe, 0x2, 0x0, 0x0, 0x6];
  const cs = pats.map((p) => collect(sc, subj(p)));
  await sc.flush();
  for (const s of pubs) pub.publish(subj(s), enc.encode(s));
  await pub.flush();
  await sc.flush();
  pats.forEach((p, k) => {
    const exp = pubs.filter((_, i) => want[i] & (1 << k));
    const got = cs[k].got.map((m) => m.subject);
    if (JSON.stringify(got) !== JSON.stringify(exp.map(subj))) {
      fail(`${p} got [${got}], want [${exp.map(subj)}]`);
    }
    ok(`${p} got ${exp.join(" ")} (only these)`);
  });
  await pub.close();
  await sc.close();
}

async function caseQueue() {
  const n = 60;
  const pub = await mustConn();
  const s = subj("q");
  const members = [];
  for (let k = 0; k < 3; k++) {
    const nc = await mustConn();
    members.push({ nc, c: collect(nc, s, { queue: "workers" }) });
    await nc.flush();
  }
  const all = collect(pub, s);
  for (let i = 0; i < n; i++) pub.publish(s, enc.encode(String(i)));
  await pub.flush();
  const seen = new Array(n).fill(0);
  for (const m of members) {
    await m.nc.flush();
    for (const msg of m.c.got) {
      const i = Number(dec.decode(msg.data));
      if (!(i >= 0 && i < n)) fail(`unexpected payload '${dec.decode(msg.data)}'`);
      seen[i]++;
    }
  }
  seen.forEach((c, i) => {
    if (c !== 1) fail(`message ${i} delivered ${c} times to the group`);
  });
  const per = members.map((m) => m.c.got.length);
  ok(`each of ${n} messages went to exactly one member (${per.join(" + ")})`);
  if (all.got.length !== n) fail(`the plain subscriber got ${all.got.length}, want ${n}`);
  ok(`a plain subscriber beside the group got all ${n}`);
  for (const m of members) await m.nc.close();
  await pub.close();
}

async function caseRequest() {
  const svc = await mustConn();
  const cli = await mustConn();
  const s = subj("svc");
  svc.subscribe(s, {
    callback: (err, m) => {
      if (!err) m.respond(enc.encode("re:" + dec.decode(m.data)));
    },
  });
  await svc.flush();
  for (let i = 0; i < 5; i++) {
    const q = `question ${i}`;
    let r;
    try {
      r = await cli.request(s, enc.encode(q), { timeout: 5000 });
    } catch (e) {
      fail("request: " + describe(e));
    }
    if (dec.decode(r.data) !== "re:" + q) fail(`reply '${dec.decode(r.data)}', want 're:${q}'`);
    ok(`request '${q}' -> '${dec.decode(r.data)}'`);
  }
  await svc.close();
  await cli.close();
}

async function caseHeaders() {
  const pub = await mustConn();
  const sc = await mustConn();
  if (pub.info.headers !== true) fail("server headers support");
  const s = subj("h");
  const c = collect(sc, s);
  await sc.flush();
  const h = headers();
  h.append("X-Multi", "one");
  h.append("X-Multi", "two");
  h.set("X-Single", "a value with spaces");
  pub.publish(s, enc.encode("body"), { headers: h });
  await pub.flush();
  await sc.flush();
  if (c.got.length !== 1) fail(`${c.got.length} messages, want 1`);
  const r = c.got[0];
  if (!r.headers) fail("no headers received");
  const v = r.headers.values("X-Multi");
  if (JSON.stringify(v) !== JSON.stringify(["one", "two"])) fail(`X-Multi values ${JSON.stringify(v)}`);
  ok("X-Multi: one, two (both values, in order)");
  if (r.headers.get("X-Single") !== "a value with spaces") {
    fail(`X-Single '${r.headers.get("X-Single")}'`);
  }
  ok(`X-Single: '${r.headers.get("X-Single")}'`);
  if (dec.decode(r.data) !== "body") fail(`payload '${dec.decode(r.data)}'`);
  ok("payload 'body' after the headers");
  await pub.close();
  await sc.close();
}

async function caseNoResponders() {
  const nc = await mustConn();
  const t0 = Date.now();
  try {
    await nc.request(subj("nobody.home"), enc.encode("anyone?"), { timeout: 5000 });
    fail("request to nobody got a reply");
  } catch (e) {
    if (e instanceof CaseFailure) throw e;
    const took = Date.now() - t0;
    if (e.code !== ErrorCode.NoResponders) {
      fail(`request to nobody: ${describe(e)}, want code ${ErrorCode.NoResponders}`);
    }
    if (took > 2000) fail(`no-responders took ${took} ms`);
    ok(`request to nobody failed with '${describe(e)}' in ${took} ms`);
  }
  await nc.close();
}

async function caseMaxPayload() {
  const nc = await mustConn();
  const max = nc.info.max_payload;
  if (!(max > 0) || (opt.maxPayload && max !== opt.maxPayload)) {
    fail(`INFO max_payload ${max}, want ${opt.maxPayload}`);
  }
  const s = subj("mp");
  const c = collect(nc, s);
  nc.publish(s, new Uint8Array(max).fill(109));
  await nc.flush();
  if (c.got.length !== 1 || c.got[0].data.length !== max) fail("max_payload message not delivered");
  ok(`exactly max_payload (${max} bytes) is delivered`);
  try {
    nc.publish(s, new Uint8Array(max + 1).fill(109));
    fail(`publishing ${max + 1} bytes succeeded`);
  } catch (e) {
    if (e instanceof CaseFailure) throw e;
    if (e.code !== ErrorCode.MaxPayloadExceeded) {
      fail(`publishing ${max + 1} bytes: ${describe(e)}, want ${ErrorCode.MaxPayloadExceeded}`);
    }
    ok(`max_payload + 1 bytes refused: '${describe(e)}'`);
  }
  await nc.flush();
  ok("connection still usable");
  await nc.close();
}

async function caseAuthOk() {
  const nc = await mustConn();
  ok("connected with " + (opt.token ? "the token" : "user and password"));
  await roundtrip(nc, "authenticated");
  await nc.close();
}

// The connection must be refused for its credentials, not for anything else.
async function expectAuthFailure(what) {
  let nc;
  try {
    nc = await conn();
  } catch (e) {
    if (e.code !== ErrorCode.AuthorizationViolation) {
      fail(`${what}: ${describe(e)}, want ${ErrorCode.AuthorizationViolation}`);
    }
    ok(`${what} refused: ${describe(e)}`);
    return;
  }
  await nc.close();
  fail(`${what}: connected, want an authorization error`);
}

async function caseAuthBad() {
  await expectAuthFailure("wrong credentials");
  opt.token = opt.user = opt.password = "";
  await expectAuthFailure("no credentials");
}

async function caseTls() {
  const nc = await mustConn();
  if (nc.info.tls_required !== true) fail("INFO tls_required is not true");
  ok(`TLS connection verified with ${opt.ca}`);
  await roundtrip(nc, "over TLS");
  await nc.close();
}

async function caseTlsBadCa() {
  let nc;
  try {
    nc = await conn();
  } catch (e) {
    const text = describe(e) + " " + (e.chainedError ? describe(e.chainedError) : "");
    if (!/certificate|verify|issuer/i.test(text)) {
      fail(`${text}, want a certificate verification error`);
    }
    ok("refused: " + text.trim());
    return;
  }
  await nc.close();
  fail(`connected although the server's certificate is not from ${opt.ca}`);
}

async function caseMtls() {
  const nc = await mustConn();
  if (nc.info.tls_verify !== true) fail("INFO tls_verify is not true");
  ok(`TLS connection with client certificate ${opt.cert}`);
  await roundtrip(nc, "over mutual TLS");
  await nc.close();
}

async function caseMtlsNoCert() {
  let nc;
  try {
    nc = await conn();
  } catch (e) {
    ok("refused: " + (describe(e) + " " + (e.chainedError ? describe(e.chainedError) : "")).trim());
    return;
  }
  // TLS 1.3 (nats-server): the client may finish its handshake before the server
  // refuses the certificate; the refusal then closes the connection at the first flush.
  try {
    await nc.flush();
  } catch (e) {
    ok("refused after the handshake: " + describe(e));
    return;
  }
  await nc.close();
  fail("connected without a client certificate to a server that requires one");
}

const cases = {
  connect: caseConnect,
  pubsub: casePubsub,
  wildcards: caseWildcards,
  queue: caseQueue,
  request: caseRequest,
  headers: caseHeaders,
  no_responders: caseNoResponders,
  max_payload: caseMaxPayload,
  auth_token_ok: caseAuthOk,
  auth_token_bad: caseAuthBad,
  auth_user_ok: caseAuthOk,
  auth_user_bad: caseAuthBad,
  tls: caseTls,
  tls_bad_ca: caseTlsBadCa,
  mtls: caseMtls,
  mtls_no_cert: caseMtlsNoCert,
};

function usage() {
  console.error("usage: conf.mjs URL CASE [--token T] [--user U --password P] [--ca FILE] [--cert FILE --key FILE] [--max-payload N]");
  process.exit(2);
}

const argv = process.argv.slice(2);
if (argv.length < 2) usage();
url = argv[0];
const name = argv[1];
for (let k = 2; k < argv.length; k += 2) {
  const v = argv[k + 1];
  if (v === undefined) usage();
  switch (argv[k]) {
    case "--token": opt.token = v; break;
    case "--user": opt.user = v; break;
    case "--password": opt.password = v; break;
    case "--ca": opt.ca = v; break;
    case "--cert": opt.cert = v; break;
    case "--key": opt.key = v; break;
    case "--max-payload": opt.maxPayload = Number(v); break;
    default: usage();
  }
}
if (!cases[name]) {
  console.error(`conf.mjs: unknown case '${name}'`);
  process.exit(2);
}
prefix = `conf.js.${process.pid}`;
const version = require("nats/package.json").version;
console.log(`# nats.js ${version}, case ${name} against ${url}`);
try {
  await cases[name]();
  console.log("# passed");
  process.exit(0);
} catch (e) {
  console.log("not ok - " + (e instanceof CaseFailure ? e.message : "unexpected: " + (e.stack || e)));
  process.exit(1);
}
