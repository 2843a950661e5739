/** Reconnection delays: exponential, capped, with jitter so that the viewers of a
 * gateway that went away do not all come back at the same instant. */
export interface BackoffOptions {
  /** The first delay, in ms (default 250). */
  initialMs?: number;
  /** The longest delay, in ms (default 10 000). */
  maxMs?: number;
  /** Each failed attempt multiplies the delay by this (default 2). */
  factor?: number;
  /** The share of each delay that is random, 0 to 1 (default 0.5). */
  jitter?: number;
}

/** The delay before reconnection attempt `attempt` (0 first): `initialMs * factor^attempt`,
 * at most `maxMs`, of which a random share `jitter` is taken away. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialMs ?? 250;
  const max = options.maxMs ?? 10_000;
  const factor = options.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5));
  const base = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt)));
  return base * (1 - jitter) + random() * base * jitter;
}
