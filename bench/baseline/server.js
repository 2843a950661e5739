// The old backend's realtime path, as `make bench` measures it side by side with ours.
//
// Written from the client contract (/work/shared/spec/client-contract.md), only what the load
// tester's old-protocol (v1) viewers use, the way the old Node backend did it: one process, one
// `ws` server on the HTTP port, one live stream, and every event sent at once as its own frame to
// every open socket (encoded once, no batching, no coalescing, no backpressure):
//
//   register        -> registered, the live stream's snapshot (stream_started, with the viewer
//                      count), chat_history
//   chat_message    -> chat_message to everyone (kept in the last 50 for chat_history)
//   toggle_like     -> stream_update (viewerCount, likes, the whole likedBy list) to everyone
//   ping            -> pong
//
// Viewer counts reach the others with the next stream_update (a like), not as a broadcast per join
// or leave: that would be n² frames for n viewers joining (12.5 million at 5,000), which the old
// stack's measured figures (#18's table: 5,000 viewers at 179 / 382 ms) show it did not send.
//
// The REST the load tester needs to set a stream up is faked, minimally: POST /auth/login (any
// credentials; the token is not checked), POST /livestreams, POST /livestreams/:id/start and /stop,
// GET /livestreams/active, and GET /ready for the bench to know the server is up. Nothing is stored.
//
//   node bench/baseline/server.js [PORT]      (default: $PORT or 3000; prints "listening PORT")

import http from "node:http";
import { randomBytes } from "node:crypto";
import { WebSocketServer, WebSocket } from "ws";

const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
const HISTORY = 50;

const streams = new Map(); // id -> stream document
let live = null; // the one live stream (the old backend had exactly one)
const likedBy = new Set();
const history = [];

function objectId() {
  return randomBytes(12).toString("hex");
}

function streamData(s) {
  return {
    streamId: s._id,
    title: s.title,
    description: s.description,
    startTime: s.startTime,
    viewerCount: wss.clients.size,
    likes: likedBy.size,
    likedBy: [...likedBy],
    streamUrl: "",
    quality: "auto",
  };
}

function broadcast(event) {
  const text = JSON.stringify(event);
  for (const client of wss.clients) {
    if (client.readyState === WebSocket.OPEN) client.send(text);
  }
}

function streamUpdate() {
  broadcast({ type: "stream_update", viewerCount: wss.clients.size, likes: likedBy.size, likedBy: [...likedBy] });
}

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function readJson(req) {
  return new Promise((resolve) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      try {
        resolve(body ? JSON.parse(body) : {});
      } catch {
        resolve({});
      }
    });
  });
}

async function rest(req, res) {
  const path = new URL(req.url, "http://x").pathname;
  if (req.method === "GET" && (path === "/ready" || path === "/health")) return reply(res, 200, { status: "ok" });
  if (req.method === "POST" && path === "/auth/login") {
    const { email } = await readJson(req);
    return reply(res, 200, { token: "baseline", user: { _id: objectId(), email, role: "admin" } });
  }
  if (req.method === "GET" && path === "/livestreams/active") {
    return reply(res, 200, live ? [{ ...live, id: live._id, viewerCount: wss.clients.size, likes: likedBy.size }] : []);
  }
  if (req.method === "POST" && path === "/livestreams") {
    const { title = "", description = "" } = await readJson(req);
    const s = { _id: objectId(), title, description, isLive: false, startTime: null };
    streams.set(s._id, s);
    return reply(res, 201, { ...s, id: s._id });
  }
  const m = /^\/livestreams\/([0-9a-f]{24})\/(start|stop)$/.exec(path);
  if (req.method === "POST" && m && streams.has(m[1])) {
    const s = streams.get(m[1]);
    if (m[2] === "start" && live !== s) {
      s.isLive = true;
      s.startTime = new Date().toISOString();
      live = s;
      likedBy.clear();
      history.length = 0;
      broadcast({ type: "stream_started", streamData: streamData(s) });
    } else if (m[2] === "stop" && s.isLive) {
      s.isLive = false;
      if (live === s) live = null;
      broadcast({ type: "stream_stopped", streamId: s._id });
    }
    return reply(res, 200, { ...s, id: s._id });
  }
  return reply(res, 404, { message: "not found" });
}

const server = http.createServer((req, res) => {
  rest(req, res).catch((e) => reply(res, 500, { message: String(e) }));
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });

function send(ws, event) {
  ws.send(JSON.stringify(event));
}

wss.on("connection", (ws) => {
  ws.on("message", (data) => {
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return send(ws, { type: "error", message: "Invalid message format" });
    }
    switch (msg.type) {
      case "register":
        if (!msg.sessionId) return send(ws, { type: "error", message: "sessionId is required" });
        send(ws, { type: "registered", sessionId: msg.sessionId, status: "connected" });
        if (live) send(ws, { type: "stream_started", streamData: streamData(live) });
        return send(ws, { type: "chat_history", messages: history });
      case "chat_message": {
        const chat = {
          type: "chat_message",
          username: String(msg.username ?? "anonymous"),
          message: String(msg.message ?? ""),
          isAdmin: false,
          timestamp: msg.timestamp ?? new Date().toISOString(),
        };
        history.push(chat);
        if (history.length > HISTORY) history.shift();
        return broadcast(chat);
      }
      case "toggle_like": {
        const who = msg.userId ?? msg.sessionId;
        if (!who) return send(ws, { type: "error", message: "userId or sessionId is required" });
        if (likedBy.has(who)) likedBy.delete(who);
        else likedBy.add(who);
        return streamUpdate();
      }
      case "ping":
        return send(ws, { type: "pong" });
      default:
        return send(ws, { type: "error", message: `Unknown message type: ${msg.type}` });
    }
  });
  ws.on("error", () => {});
});

server.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
