export { LiveClient, LiveError, CLOSE_SERVICE_RESTART, CLOSE_TRY_AGAIN_LATER } from "./client.js";
export type { LiveClientOptions, LiveEvents, LiveStats, ConnectionState, SocketLike, SocketFactory } from "./client.js";
export { backoffDelay } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export * from "./protocol.js";
