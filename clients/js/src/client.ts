import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import type {
  Ack,
  ChatEntry,
  ClientFrame,
  ErrorFrame,
  PinnedProduct,
  Registered,
  ResumeFailed,
  Resumed,
  ServerFrame,
  StreamData,
  StreamEvent,
  StreamStopped,
  StreamUpdate,
} from "./protocol.js";

/** What the client needs of a WebSocket: the platform's (browsers, React Native, Node 22+),
 * or `ws` in older Node. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type SocketFactory = new (url: string) => SocketLike;

const OPEN = 1;
/** The gateway is restarting or draining: reconnect at once, to another gateway. */
export const CLOSE_SERVICE_RESTART = 1012;
/** Try again later: this connection fell behind, or too many from one address. */
export const CLOSE_TRY_AGAIN_LATER = 1013;

export interface LiveClientOptions {
  /** Gateway WebSocket URLs (`wss://host/ws`); each reconnection tries the next one. */
  urls: string | string[];
  /** This app's session: keep it across restarts of the app to stay one viewer (default: random). */
  sessionId?: string;
  /** A user's JWT; without one (or with a refused one) the app is a guest. */
  token?: string;
  /** The WebSocket class (default: `globalThis.WebSocket`). */
  WebSocket?: SocketFactory;
  backoff?: BackoffOptions;
  /** The least wait after a 1013 close, in ms (default 2 000). */
  tryAgainLaterMs?: number;
  /** A socket that does not open within this is given up, in ms (default 10 000). */
  connectTimeoutMs?: number;
  /** A ping after this much silence; the connection is dropped after twice as much, in ms (default 15 000). */
  heartbeatMs?: number;
}

/** A refusal from the gateway (the connection stays open). `code` is its stable name
 * (`invalid_frame`, `rate_limited`, `slow_mode`, `muted`, `busy`, `forbidden`...). */
export class LiveError extends Error {
  readonly code: string | undefined;
  readonly retryAfter: number | undefined;
  readonly frame: ErrorFrame;
  constructor(frame: ErrorFrame) {
    super(frame.message);
    this.name = "LiveError";
    this.frame = frame;
    this.code = frame.code ?? undefined;
    this.retryAfter = frame.retryAfter ?? undefined;
  }
}

export type ConnectionState = "connecting" | "open" | "closed";

/** What a client tells its listeners. Stream events come once each, in `seq` order. */
export interface LiveEvents {
  /** The connection changed state; `code` is the close code when it closed. */
  state: { state: ConnectionState; url: string; code?: number };
  registered: Registered;
  /** The stream's whole state: on joining, and after a resume that could not be served. */
  snapshot: { streamId: string; streamData: StreamData; seq: number; epoch: string };
  pinned: { streamId: string; pinnedProducts: PinnedProduct[] };
  chatHistory: { streamId: string; messages: ChatEntry[] };
  /** Every stream event, once, in order (also the ones below). */
  event: StreamEvent;
  chat: ChatEntry & { streamId: string };
  update: StreamUpdate;
  stopped: StreamStopped;
  resumed: Resumed;
  resumeFailed: ResumeFailed;
  /** A refusal not tied to a chat message or like of this client. */
  error: LiveError;
  /** Every frame as it arrived (for debugging and tests). */
  frame: ServerFrame;
}

/** Counters of what the client had to do, for tests and monitoring. */
export interface LiveStats {
  connects: number;
  reconnects: number;
  resent: number;
  duplicatesDropped: number;
  gaps: number;
  resumed: number;
  resumeFailed: number;
}

interface Pending {
  frame: ClientFrame & { clientMsgId: string };
  resolve: (ack: Ack) => void;
  reject: (error: LiveError) => void;
}

interface PendingJoin {
  streamId: string;
  resolve: () => void;
  reject: (error: LiveError) => void;
}

/**
 * One app's connection to WrenCOS Live, over the opted-in protocol (2).
 *
 * Guarantees: the stream's events reach listeners once each, in `seq` order, across
 * reconnections to any gateway (the client resumes from the last `seq`/`epoch`; when the
 * gateway cannot serve the gap it says so and the client takes the fresh `snapshot`).
 * `chat` and `toggleLike` resolve once the message is stored and reject when it is refused;
 * one that is not yet acknowledged when the connection drops is sent again after the
 * reconnection, with the same `clientMsgId`, and the stream counts it once.
 */
export class LiveClient extends Emitter<LiveEvents> {
  readonly sessionId: string;
  readonly stats: LiveStats = { connects: 0, reconnects: 0, resent: 0, duplicatesDropped: 0, gaps: 0, resumed: 0, resumeFailed: 0 };
  private readonly urls: string[];
  private readonly options: LiveClientOptions;
  private readonly factory: SocketFactory;
  private socket: SocketLike | null = null;
  private urlIndex = 0;
  private attempt = 0;
  private closedByApp = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private lastHeard = 0;
  private registeredHere = false;
  private streamId: string | null = null;
  private seq: number | null = null;
  private epoch: string | null = null;
  private resyncing = false;
  private readonly pending = new Map<string, Pending>();
  private pendingJoin: PendingJoin | null = null;
  private counter = 0;

  constructor(options: LiveClientOptions) {
    super();
    this.options = options;
    this.urls = Array.isArray(options.urls) ? [...options.urls] : [options.urls];
    if (this.urls.length === 0) throw new TypeError("LiveClient needs at least one gateway URL");
    const platform = (globalThis as { WebSocket?: SocketFactory }).WebSocket;
    const factory = options.WebSocket ?? platform;
    if (!factory) throw new TypeError("no WebSocket: pass options.WebSocket (for example `ws` in Node 20)");
    this.factory = factory;
    this.sessionId = options.sessionId ?? `s-${randomId()}`;
  }

  /** Where this client is in the stream it watches (`seq` of the last event delivered). */
  get position(): { streamId: string | null; seq: number | null; epoch: string | null } {
    return { streamId: this.streamId, seq: this.seq, epoch: this.epoch };
  }

  /** The URL of the gateway this client uses (or is about to). */
  get url(): string {
    return this.urls[this.urlIndex];
  }

  get connected(): boolean {
    return this.socket !== null && this.socket.readyState === OPEN && this.registeredHere;
  }

  /** Open the connection (and keep it open: it reconnects until `close()`). */
  connect(): void {
    this.closedByApp = false;
    if (this.socket === null && this.timer === null) this.open();
  }

  /** Close for good: nothing reconnects; what is not acknowledged is rejected. */
  close(): void {
    this.closedByApp = true;
    this.clearTimers();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      detach(socket);
      socket.close(1000, "closed by the app");
    }
    const closed = new LiveError({ type: "error", message: "the client was closed", code: "closed" });
    for (const p of this.pending.values()) p.reject(closed);
    this.pending.clear();
    this.pendingJoin?.reject(closed);
    this.pendingJoin = null;
    this.emit("state", { state: "closed", url: this.url, code: 1000 });
  }

  /** Watch `streamId` (and nothing else) from its current state on. Resolves once
   * the snapshot (or, when rejoining, the missed events) arrived. */
  join(streamId: string): Promise<void> {
    if (streamId !== this.streamId) {
      this.streamId = streamId;
      this.seq = null;
      this.epoch = null;
    }
    this.pendingJoin?.reject(new LiveError({ type: "error", message: "another join replaced this one", code: "replaced" }));
    const joined = new Promise<void>((resolve, reject) => {
      this.pendingJoin = { streamId, resolve, reject };
    });
    if (this.connected) this.sendFrame({ type: "join_stream", streamId, protocol: 2, ...this.resumeField() });
    else this.connect();
    return joined;
  }

  /** Stop watching. */
  leave(): void {
    const streamId = this.streamId;
    this.streamId = null;
    this.seq = null;
    this.epoch = null;
    if (streamId !== null && this.connected) this.sendFrame({ type: "leave_stream", streamId });
  }

  /** Send a chat message to the watched stream; resolves with its `ack` (its `seq`) once stored. */
  chat(message: string, username?: string): Promise<Ack> {
    return this.operation((clientMsgId, streamId) => ({
      type: "chat_message",
      message,
      ...(username === undefined ? {} : { username }),
      streamId,
      clientMsgId,
    }));
  }

  /** Like the watched stream, or unlike it if this session likes it; the ack says which (`liked`, `likes`). */
  toggleLike(): Promise<Ack> {
    return this.operation((clientMsgId, streamId) => ({ type: "toggle_like", streamId, clientMsgId }));
  }

  /** Send any frame as it is (for frames this class has no method for). */
  send(frame: ClientFrame): void {
    this.sendFrame(frame);
  }

  // ------------------------------------------------------------ operations

  private operation(make: (clientMsgId: string, streamId: string) => ClientFrame & { clientMsgId: string }): Promise<Ack> {
    if (this.streamId === null) return Promise.reject(new LiveError({ type: "error", message: "join a stream first", code: "not_watching" }));
    const clientMsgId = `${this.sessionId.slice(0, 24)}-${++this.counter}-${randomId().slice(0, 8)}`;
    const frame = make(clientMsgId, this.streamId);
    return new Promise<Ack>((resolve, reject) => {
      this.pending.set(clientMsgId, { frame, resolve, reject });
      if (this.connected) this.sendFrame(frame);
    });
  }

  // ------------------------------------------------------------ connection

  private open(): void {
    this.timer = null;
    const url = this.url;
    this.registeredHere = false;
    this.stats.connects += 1;
    this.emit("state", { state: "connecting", url });
    let socket: SocketLike;
    try {
      socket = new this.factory(url);
    } catch {
      this.scheduleReconnect(undefined);
      return;
    }
    this.socket = socket;
    this.connectTimer = setTimeout(() => {
      if (this.socket === socket && socket.readyState !== OPEN) this.drop(socket, undefined);
    }, this.options.connectTimeoutMs ?? 10_000);
    socket.onopen = () => {
      this.clearConnectTimer();
      if (this.socket !== socket) return;
      this.lastHeard = Date.now();
      this.emit("state", { state: "open", url });
      this.startHeartbeat(socket);
      this.sendRaw(socket, {
        type: "register",
        sessionId: this.sessionId,
        protocol: 2,
        ...(this.options.token ? { token: this.options.token } : {}),
        ...(this.streamId ? { streamId: this.streamId, ...this.resumeField() } : {}),
      });
      // Frames on one connection are handled in order: these follow the register.
      for (const p of this.pending.values()) {
        this.sendRaw(socket, p.frame);
        if (this.stats.connects > 1) this.stats.resent += 1;
      }
      this.registeredHere = true;
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      this.lastHeard = Date.now();
      let frame: ServerFrame;
      try {
        frame = JSON.parse(typeof event.data === "string" ? event.data : String(event.data)) as ServerFrame;
      } catch {
        return;
      }
      this.receive(frame);
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.drop(socket, event.code);
    };
    socket.onerror = () => {
      // A close follows (browsers, React Native, ws): reconnection happens there.
    };
  }

  private drop(socket: SocketLike, code: number | undefined): void {
    detach(socket);
    try {
      socket.close();
    } catch {
      // already closed
    }
    this.socket = null;
    this.registeredHere = false;
    this.resyncing = false;
    this.clearConnectTimer();
    this.stopHeartbeat();
    this.emit("state", { state: "closed", url: this.url, code });
    if (!this.closedByApp) this.scheduleReconnect(code);
  }

  private scheduleReconnect(code: number | undefined): void {
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    this.stats.reconnects += 1;
    let delay: number;
    if (code === CLOSE_SERVICE_RESTART) {
      // The gateway is going away on purpose and another one is ready: come back at once,
      // spread over half a second so that its viewers do not arrive together.
      this.attempt = 0;
      delay = Math.random() * 500;
    } else {
      delay = backoffDelay(this.attempt, this.options.backoff);
      this.attempt += 1;
      if (code === CLOSE_TRY_AGAIN_LATER) delay = Math.max(delay, this.options.tryAgainLaterMs ?? 2_000);
    }
    this.timer = setTimeout(() => this.open(), delay);
  }

  private startHeartbeat(socket: SocketLike): void {
    this.stopHeartbeat();
    const every = this.options.heartbeatMs ?? 15_000;
    this.heartbeat = setInterval(() => {
      const silent = Date.now() - this.lastHeard;
      if (silent > 2 * every) this.drop(socket, undefined);
      else if (silent >= every) this.sendRaw(socket, { type: "ping" });
    }, every / 2);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private clearConnectTimer(): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
  }

  private clearTimers(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.clearConnectTimer();
    this.stopHeartbeat();
  }

  private resumeField(): { resume?: { seq: number; epoch: string } } {
    return this.seq !== null && this.epoch !== null ? { resume: { seq: this.seq, epoch: this.epoch } } : {};
  }

  private sendFrame(frame: ClientFrame): void {
    if (this.socket !== null && this.socket.readyState === OPEN) this.sendRaw(this.socket, frame);
  }

  private sendRaw(socket: SocketLike, frame: ClientFrame): void {
    try {
      socket.send(JSON.stringify(frame));
    } catch {
      // closing: the close handler reconnects and pending operations go again
    }
  }

  // ------------------------------------------------------------ inbound

  private receive(frame: ServerFrame): void {
    this.emit("frame", frame);
    switch (frame.type) {
      case "registered":
        this.attempt = 0;
        this.emit("registered", frame);
        return;
      case "ack": {
        const p = this.pending.get(frame.clientMsgId);
        if (p) {
          this.pending.delete(frame.clientMsgId);
          p.resolve(frame);
        }
        return;
      }
      case "error": {
        const error = new LiveError(frame);
        const p = frame.clientMsgId ? this.pending.get(frame.clientMsgId) : undefined;
        if (p && frame.clientMsgId) {
          this.pending.delete(frame.clientMsgId);
          p.reject(error);
          return;
        }
        const join = this.pendingJoin;
        if (join && frame.message.includes(join.streamId)) {
          this.pendingJoin = null;
          join.reject(error);
        }
        this.emit("error", error);
        return;
      }
      case "resumed":
        if (frame.streamId !== this.streamId) return;
        this.epoch = frame.epoch;
        this.resyncing = false;
        this.stats.resumed += 1;
        this.emit("resumed", frame);
        this.joined(frame.streamId);
        return;
      case "resume_failed":
        if (frame.streamId !== this.streamId) return;
        this.seq = null;
        this.epoch = null;
        this.resyncing = false;
        this.stats.resumeFailed += 1;
        this.emit("resumeFailed", frame);
        return;
      case "stream_started":
        // The stream's state: what this connection starts from (with `seq`/`epoch`), or a
        // stream going live (announced to everyone).
        if (frame.streamId !== this.streamId || frame.seq === null || frame.epoch === null) return;
        this.seq = frame.seq;
        this.epoch = frame.epoch;
        this.resyncing = false;
        this.emit("snapshot", { streamId: frame.streamId, streamData: frame.streamData, seq: frame.seq, epoch: frame.epoch });
        this.joined(frame.streamId);
        return;
      case "pinned_products_updated":
        // Alone (not in a batch): part of a snapshot, at the snapshot's seq.
        if (frame.streamId === this.streamId) this.emit("pinned", { streamId: frame.streamId, pinnedProducts: frame.pinnedProducts });
        return;
      case "chat_history":
        if (frame.streamId && frame.streamId === this.streamId) this.emit("chatHistory", { streamId: frame.streamId, messages: frame.messages });
        return;
      case "batch":
        if (frame.streamId !== this.streamId) return;
        for (const event of frame.events) this.deliver(event);
        return;
      case "stream_stopped":
        if (frame.streamId === this.streamId) this.emit("stopped", frame);
        return;
      default:
        return;
    }
  }

  private joined(streamId: string): void {
    const join = this.pendingJoin;
    if (join && join.streamId === streamId) {
      this.pendingJoin = null;
      join.resolve();
    }
  }

  /** One numbered event: delivered if it is the next one; dropped if already delivered;
   * a gap (never expected) asks the gateway for the missing events and waits for them. */
  private deliver(event: StreamEvent): void {
    if (this.resyncing) return;
    if (event.type === "stream_stopped" && (event.seq === null || event.seq === undefined)) {
      this.emit("stopped", event);
      return;
    }
    const seq = event.seq as number;
    if (this.epoch !== null && event.epoch !== this.epoch) {
      // The stream's history was lost: its events are numbered afresh.
      this.seq = null;
    }
    if (this.seq !== null && seq <= this.seq) {
      this.stats.duplicatesDropped += 1;
      return;
    }
    if (this.seq !== null && seq > this.seq + 1) {
      this.stats.gaps += 1;
      this.resyncing = true;
      this.sendFrame({ type: "join_stream", streamId: event.streamId, protocol: 2, ...this.resumeField() });
      return;
    }
    this.seq = seq;
    this.epoch = event.epoch ?? this.epoch;
    this.emit("event", event);
    switch (event.type) {
      case "chat_message":
        this.emit("chat", {
          id: event.id,
          _id: event._id,
          seq: event.seq,
          username: event.username,
          message: event.message,
          isAdmin: event.isAdmin,
          timestamp: event.timestamp,
          streamId: event.streamId,
        });
        break;
      case "stream_update":
        this.emit("update", event);
        break;
      case "pinned_products_updated":
        this.emit("pinned", { streamId: event.streamId, pinnedProducts: event.pinnedProducts });
        break;
      case "stream_stopped":
        this.emit("stopped", event);
        break;
      default:
        break;
    }
  }
}

function detach(socket: SocketLike): void {
  socket.onopen = null;
  socket.onmessage = null;
  socket.onclose = null;
  socket.onerror = null;
}

function randomId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID().replace(/-/g, "");
  return Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");
}
