// The client against real gateways (started by tests/clients/test_js_client.py): a gateway
// SIGKILLed under its viewers, messages resent and stored once, the stream's actor restarted
// mid-stream, bad input. Skipped unless WRENCOS_WS names the gateways.
//
// Environment: WRENCOS_WS and WRENCOS_HTTP (gateways A, B and C, comma-separated), WRENCOS_STREAM
// (a live stream), WRENCOS_HOOK (the pytest side's fault hook: POST /stop-gateway/0,
// /kill-gateway/0, /drain-gateway/2, /kill-actor; GET /actor-pid), WRENCOS_FRAMES_OUT (every frame received
// is appended there, one JSON a line, for the pytest side to check against the models).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import WebSocket from "ws";
import { LiveClient, LiveError } from "../dist/index.js";

const env = process.env;
const skip = env.WRENCOS_WS ? false : "needs real gateways (run through tests/clients/test_js_client.py)";
const [A, B, C] = (env.WRENCOS_WS ?? "").split(",");
const [, HTTP_B] = (env.WRENCOS_HTTP ?? "").split(",");
const STREAM = env.WRENCOS_STREAM;
const frames = [];
const clients = [];
let sessions = 0;

after(() => {
  for (const c of clients) c.close(); // also after a failure: a client left open would keep node running
  if (env.WRENCOS_FRAMES_OUT && frames.length) appendFileSync(env.WRENCOS_FRAMES_OUT, frames.map((f) => JSON.stringify(f)).join("\n") + "\n");
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(check, what, ms = 20000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}
async function hook(path, method = "POST") {
  const answer = await fetch(env.WRENCOS_HOOK + path, { method, signal: AbortSignal.timeout(30000) });
  assert.equal(answer.status, 200, `hook ${path}`);
  return answer.json();
}

/** A client that records every frame, every chat event it delivered, and the raw seqs of batches. */
function viewer(urls, extra = {}) {
  const c = new LiveClient({ urls, sessionId: `js-${process.pid}-${++sessions}`, WebSocket, backoff: { initialMs: 100, maxMs: 2000 }, ...extra });
  c.chats = [];
  c.batchSeqs = [];
  c.on("frame", (f) => {
    frames.push(f);
    if (f.type === "batch" && f.streamId === STREAM) c.batchSeqs.push(...f.events.map((e) => e.seq));
  });
  c.on("chat", (m) => c.chats.push(m));
  clients.push(c);
  return c;
}

/** Send `texts` as chat, `gapMs` apart (under the per-connection chat limit); the acks' promises. */
function sendAll(c, texts, gapMs) {
  return texts.map(async (text, i) => {
    await sleep(i * gapMs);
    return [text, await c.chat(text, "js")];
  });
}

/** Every acknowledged message reached `v` exactly once, in `seq` order, and no batch repeated an event. */
function assertSawOnce(v, acked) {
  const seqs = v.chats.map((m) => m.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "in seq order");
  assert.equal(new Set(seqs).size, seqs.length, "no duplicate delivered");
  for (const [text, ack] of acked) {
    const shown = v.chats.filter((m) => m.message === text);
    assert.equal(shown.length, 1, `${text} delivered once`);
    assert.equal(shown[0].seq, ack.seq, `${text} at its acknowledged seq`);
  }
  const raw = v.batchSeqs;
  assert.equal(new Set(raw).size, raw.length, "the gateways sent no event twice");
  assert.equal(v.stats.gaps, 0, "no gap");
}

async function storedTexts() {
  const out = [];
  for (let page = 1; page <= 10; page++) {
    const answer = await fetch(`${HTTP_B}/livestreams/${STREAM}/chat?page=${page}&limit=100`);
    assert.equal(answer.status, 200);
    const batch = await answer.json();
    out.push(...batch.map((m) => m.message));
    if (batch.length < 100) break;
  }
  return out;
}

test("a viewer survives its gateway being SIGKILLed; unacknowledged messages are resent and stored once", { skip, timeout: 90000 }, async () => {
  const v = viewer([A, B]); // on A, then B
  const q = viewer([A, B]); // sends through A
  const p = viewer([B]); // sends through B all along
  await Promise.all([v.join(STREAM), q.join(STREAM), p.join(STREAM)]);
  assert.equal(v.url, A);
  const tag = `k${Date.now() % 100000}`;
  const fromP = sendAll(p, Array.from({ length: 16 }, (_, i) => `${tag}-p-${i}`), 250);
  await sleep(800);
  const before = await Promise.all(sendAll(q, [0, 1, 2].map((i) => `${tag}-q-pre-${i}`), 0));
  await until(() => v.chats.some((m) => m.message === `${tag}-q-pre-2`), "the viewer on A seeing chat");
  await hook("/stop-gateway/0"); // A hangs: what q sends now cannot be acknowledged there
  const stuck = sendAll(q, [0, 1, 2, 3, 4].map((i) => `${tag}-q-${i}`), 0);
  await sleep(400);
  await hook("/kill-gateway/0");
  const acked = [...before, ...(await Promise.all(fromP)), ...(await Promise.all(stuck))];
  assert.equal(acked.length, 24);
  await until(() => acked.every(([text]) => v.chats.some((m) => m.message === text)), "every acknowledged message at the viewer");
  assert.equal(v.url, B, "the viewer moved to the other gateway");
  assert.ok(v.stats.resumed >= 1 && v.stats.resumeFailed === 0, `resumed: ${JSON.stringify(v.stats)}`);
  assertSawOnce(v, acked);
  assert.ok(q.stats.resent >= 5, `the stuck messages were resent: ${JSON.stringify(q.stats)}`);
  const stored = await storedTexts();
  for (const [text] of acked) assert.equal(stored.filter((t) => t === text).length, 1, `${text} stored once`);
  for (const c of [v, q, p]) c.close();
});

test("a draining gateway closes with 1012: the viewer moves to another at once and resumes", { skip, timeout: 90000 }, async () => {
  const v = viewer([C, B]);
  const p = viewer([B]);
  const closes = [];
  v.on("state", (s) => s.state === "closed" && closes.push(s.code));
  await Promise.all([v.join(STREAM), p.join(STREAM)]);
  assert.equal(v.url, C);
  const tag = `d${Date.now() % 100000}`;
  const sent = sendAll(p, Array.from({ length: 12 }, (_, i) => `${tag}-${i}`), 250);
  await until(() => v.chats.some((m) => m.message.startsWith(tag)), "chat before the drain");
  await hook("/drain-gateway/2");
  const acked = await Promise.all(sent);
  await until(() => acked.every(([text]) => v.chats.some((m) => m.message === text)), "every acknowledged message at the viewer");
  assert.deepEqual(closes, [1012], "closed once, as a restart");
  assert.equal(v.url, B);
  assert.ok(v.stats.resumed >= 1 && v.stats.resumeFailed === 0, `resumed: ${JSON.stringify(v.stats)}`);
  assertSawOnce(v, acked);
  for (const c of [v, p]) c.close();
});

test("the stream's actor restarts mid-stream: nothing acknowledged is lost or repeated", { skip, timeout: 90000 }, async () => {
  const v = viewer([B]);
  const p = viewer([B]);
  await Promise.all([v.join(STREAM), p.join(STREAM)]);
  const tag = `r${Date.now() % 100000}`;
  const sent = sendAll(p, Array.from({ length: 14 }, (_, i) => `${tag}-${i}`), 250);
  await until(() => v.chats.filter((m) => m.message.startsWith(tag)).length >= 3, "chat before the kill");
  const { killed } = await hook("/kill-actor");
  const acked = await Promise.all(sent);
  await until(() => acked.every(([text]) => v.chats.some((m) => m.message === text)), "every acknowledged message at the viewer");
  assertSawOnce(v, acked);
  const { pid } = await hook("/actor-pid", "GET");
  assert.notEqual(pid, killed, "a new actor process serves the stream");
  const stored = await storedTexts();
  for (const [text] of acked) assert.equal(stored.filter((t) => t === text).length, 1, `${text} stored once`);
  for (const c of [v, p]) c.close();
});

test("registers with a token, or as a guest when the token is refused", { skip, timeout: 60000 }, async () => {
  const user = viewer([B], { token: env.WRENCOS_ADMIN_TOKEN });
  const guest = viewer([B], { token: "not-a-token" });
  const registered = (c) => new Promise((resolve) => c.on("registered", resolve));
  const errors = [];
  guest.on("error", (e) => errors.push(e.message));
  const [userReg, guestReg] = [registered(user), registered(guest)];
  await Promise.all([user.join(STREAM), guest.join(STREAM)]);
  assert.equal((await userReg).authenticated, true);
  assert.equal((await guestReg).authenticated, false);
  assert.ok(errors.some((m) => /Authentication failed/.test(m)), JSON.stringify(errors));
  assert.ok((await guest.chat("a guest may chat", "guest")).seq > 0);
  for (const c of [user, guest]) c.close();
});

test("bad input is answered with an error and the connection stays usable", { skip, timeout: 60000 }, async () => {
  const c = viewer([B]);
  await c.join(STREAM);
  await assert.rejects(c.chat("   "), (e) => e instanceof LiveError && e.message.length > 0);
  await assert.rejects(c.chat("x".repeat(5000)), (e) => e instanceof LiveError);
  await assert.rejects(c.join("0123456789abcdef01234567"), (e) => e instanceof LiveError && /not live/.test(e.message));
  await c.join(STREAM);
  const ack = await c.chat("still here", "js");
  assert.ok(ack.seq > 0);
  c.close();

  // Below the library: frames no client should send.
  const raw = new WebSocket(B);
  clients.push({ close: () => raw.terminate() });
  const got = [];
  raw.on("message", (data) => got.push(JSON.parse(String(data))));
  await new Promise((resolve, reject) => raw.once("open", resolve).once("error", reject));
  raw.send("not json");
  raw.send(JSON.stringify({ type: "no_such_frame" }));
  raw.send(JSON.stringify({ type: "register", sessionId: { $gt: "" } }));
  raw.send(JSON.stringify({ type: "ping" }));
  await until(() => got.some((f) => f.type === "pong"), "the pong after the junk", 10000);
  frames.push(...got);
  const errors = got.filter((f) => f.type === "error");
  assert.equal(errors.length, 3, JSON.stringify(got));
  assert.ok(errors.some((f) => f.code === "unknown_type"));
  assert.ok(errors.every((f) => typeof f.message === "string" && f.message.length > 0));
  raw.close();
});
