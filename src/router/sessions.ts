/**
 * Session pins: the `router.session_header` value of a request → the worker its session was last
 * sent to, in least-recently-used order.
 *
 * Memory is bounded whatever clients send: at most {@link MAX_SESSIONS} pins (the least recently
 * used goes first), and an id longer than {@link MAX_ID_CHARS} is kept as a 64-bit hash of itself
 * (17 characters), so a pin costs at most about 0.3 KB and the map at most about 20 MB. A hashed id
 * pins exactly as its full text would (two ids that differ anywhere hash apart, up to collisions).
 *
 * @module
 */

import { fnv1a64Hex } from "../prefix/mod.ts";

/** Sessions pinned at most. */
export const MAX_SESSIONS = 65_536;
/** Longest session id kept as given; longer ones are kept as their hash. */
export const MAX_ID_CHARS = 128;

/** Session id → pinned value, least recently used first. */
export class SessionPins<T> {
  readonly #pins = new Map<string, T>();
  readonly #max: number;

  constructor(max = MAX_SESSIONS) {
    this.#max = max;
  }

  /** Sessions pinned now. */
  get size(): number {
    return this.#pins.size;
  }

  /** The pin of `id`, or undefined. Does not refresh its recency. */
  get(id: string): T | undefined {
    return this.#pins.get(sessionKey(id));
  }

  /** Pins `id` to `value`, most recently used; the oldest pin goes past the cap. */
  set(id: string, value: T): void {
    const key = sessionKey(id);
    this.#pins.delete(key);
    this.#pins.set(key, value);
    if (this.#pins.size > this.#max) this.#pins.delete(this.#pins.keys().next().value!);
  }

  /** Drops every pin whose value fails `keep`. */
  retain(keep: (value: T) => boolean): void {
    for (const [id, v] of this.#pins) if (!keep(v)) this.#pins.delete(id);
  }
}

/** The map key of a session id: the id itself, or `#` and its 64-bit hash when it is long. */
export function sessionKey(id: string): string {
  return id.length <= MAX_ID_CHARS ? id : `#${fnv1a64Hex(id)}`;
}
