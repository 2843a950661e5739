// The client's logic against a scripted socket: no gateway, no network.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { LiveClient, LiveError, backoffDelay } from "../dist/index.js";

const STREAM = "0123456789abcdef01234567";

class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.onopen = this.onclose = this.onmessage = this.onerror = null;
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code) {
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(check, what, ms = 3000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
const chat = (seq, epoch = "e1") => ({
  type: "chat_message", id: seq, seq, username: "u", message: `m${seq}`, isAdmin: false,
  timestamp: "2026-01-01T00:00:00.000Z", streamId: STREAM, epoch,
});
const snapshot = (seq, epoch = "e1") => ({
  type: "stream_started", streamId: STREAM, seq, epoch,
  streamData: { streamId: STREAM, title: "t", description: "", startTime: "", streamUrl: "", quality: "auto" },
});

const made = [];
after(() => made.forEach((c) => c.close())); // also after a failure: open timers would keep node running

function client(extra = {}) {
  FakeSocket.all = [];
  return remember(new LiveClient({ urls: ["ws://a/ws", "ws://b/ws"], sessionId: "s1", WebSocket: FakeSocket, backoff: { initialMs: 10, maxMs: 40 }, ...extra }));
}
function remember(c) {
  made.push(c);
  return c;
}

test("backoff grows exponentially, is capped, and is jittered within its share", () => {
  const none = () => 0, all = () => 0.999999;
  assert.equal(backoffDelay(0, { initialMs: 100, jitter: 0.5 }, all).toFixed(0), "100");
  assert.equal(backoffDelay(3, { initialMs: 100, jitter: 0.5 }, all).toFixed(0), "800");
  assert.equal(backoffDelay(3, { initialMs: 100, jitter: 0.5 }, none), 400);
  assert.equal(backoffDelay(30, { initialMs: 100, maxMs: 5000, jitter: 0 }), 5000);
  const seen = new Set(Array.from({ length: 20 }, () => backoffDelay(2, { initialMs: 100 })));
  assert.ok(seen.size > 10, "jittered delays differ");
});

test("registers with protocol 2, joins, and delivers each event once, in order", async () => {
  const c = client({ token: "jwt" });
  const got = [];
  c.on("chat", (m) => got.push(m.seq));
  const joined = c.join(STREAM);
  const s = FakeSocket.all[0];
  s.open();
  assert.deepEqual(s.sent[0], { type: "register", sessionId: "s1", protocol: 2, token: "jwt", streamId: STREAM });
  s.receive(snapshot(4));
  await joined;
  s.receive({ type: "batch", streamId: STREAM, events: [chat(4), chat(5), chat(6)] });
  s.receive({ type: "batch", streamId: STREAM, events: [chat(6), chat(7)] });
  assert.deepEqual(got, [5, 6, 7]);
  assert.equal(c.stats.duplicatesDropped, 2);
  assert.deepEqual(c.position, { streamId: STREAM, seq: 7, epoch: "e1" });
  c.close();
});

test("a gap is never delivered: the client asks for the missing events and waits for them", async () => {
  const c = client();
  const got = [];
  c.on("chat", (m) => got.push(m.seq));
  c.join(STREAM);
  const s = FakeSocket.all[0];
  s.open();
  s.receive(snapshot(1));
  s.receive({ type: "batch", streamId: STREAM, events: [chat(2), chat(4)] });
  assert.deepEqual(s.sent.at(-1), { type: "join_stream", streamId: STREAM, protocol: 2, resume: { seq: 2, epoch: "e1" } });
  s.receive({ type: "batch", streamId: STREAM, events: [chat(5)] }); // ignored until resumed
  s.receive({ type: "resumed", streamId: STREAM, fromSeq: 2, toSeq: 5, epoch: "e1" });
  s.receive({ type: "batch", streamId: STREAM, events: [chat(3), chat(4), chat(5)] });
  assert.deepEqual(got, [2, 3, 4, 5]);
  assert.equal(c.stats.gaps, 1);
  c.close();
});

test("chat resolves on its ack, rejects on its error, and is resent after a reconnect with the same id", async () => {
  const c = client();
  c.join(STREAM);
  let s = FakeSocket.all[0];
  s.open();
  s.receive(snapshot(1));
  const first = c.chat("hello", "ann");
  const refused = c.chat("   ");
  const [sent, bad] = s.sent.slice(-2);
  assert.equal(sent.type, "chat_message");
  assert.equal(sent.streamId, STREAM);
  s.receive({ type: "error", message: "Invalid chat_message", code: "invalid_frame", clientMsgId: bad.clientMsgId });
  await assert.rejects(refused, (e) => e instanceof LiveError && e.code === "invalid_frame");
  s.drop(1006); // the ack of `first` never came
  await until(() => FakeSocket.all.length === 2, "a reconnection");
  s = FakeSocket.all[1];
  assert.equal(s.url, "ws://b/ws", "the next gateway");
  s.open();
  assert.deepEqual(s.sent[0].resume, { seq: 1, epoch: "e1" });
  assert.deepEqual(s.sent[1], sent, "the same frame, the same clientMsgId");
  s.receive({ type: "ack", clientMsgId: sent.clientMsgId, seq: 2, streamId: STREAM });
  assert.equal((await first).seq, 2);
  assert.equal(c.stats.resent, 1);
  c.close();
});

test("1012 reconnects at once to the other gateway; 1013 waits at least tryAgainLaterMs", async () => {
  let c = client({ backoff: { initialMs: 5000, maxMs: 5000, jitter: 0 } });
  c.connect();
  FakeSocket.all[0].open();
  let t = Date.now();
  FakeSocket.all[0].drop(1012);
  await until(() => FakeSocket.all.length === 2, "a reconnection after 1012", 2000);
  assert.ok(Date.now() - t < 1000, "not the 5 s backoff");
  assert.equal(FakeSocket.all[1].url, "ws://b/ws");
  c.close();
  c = client({ tryAgainLaterMs: 300 });
  c.connect();
  FakeSocket.all[0].open();
  t = Date.now();
  FakeSocket.all[0].drop(1013);
  await until(() => FakeSocket.all.length === 2, "a reconnection after 1013", 5000);
  assert.ok(Date.now() - t >= 290, "waited for try-again-later, not the 10 ms backoff");
  c.close();
});

test("resume_failed then a fresh snapshot: the client starts again from the snapshot", async () => {
  const c = client();
  const snaps = [];
  c.on("snapshot", (s) => snaps.push(s.seq));
  c.join(STREAM);
  let s = FakeSocket.all[0];
  s.open();
  s.receive(snapshot(10));
  s.drop(1006);
  await until(() => FakeSocket.all.length === 2, "a reconnection");
  s = FakeSocket.all[1];
  s.open();
  s.receive({ type: "resume_failed", streamId: STREAM, reason: "new epoch", seq: 3, epoch: "e2" });
  s.receive(snapshot(3, "e2"));
  s.receive({ type: "batch", streamId: STREAM, events: [chat(4, "e2")] });
  assert.deepEqual(snaps, [10, 3]);
  assert.deepEqual(c.position, { streamId: STREAM, seq: 4, epoch: "e2" });
  assert.equal(c.stats.resumeFailed, 1);
  c.close();
});
