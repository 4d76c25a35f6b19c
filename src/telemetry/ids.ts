/**
 * Trace and span ids: 16 and 8 random bytes as lower-case hex, never all zero (W3C Trace Context).
 *
 * Bytes come from `crypto.getRandomValues`, 4 KiB at a time, turned into one 8 KiB hex string;
 * an id is a slice of it. A request then pays a substring instead of a call into the runtime and
 * a string built digit by digit (which V8 keeps as a rope until it is flattened, more garbage per
 * span). A slice keeps its 8 KiB parent alive while the span waits for export: with the queue's
 * cap that is at most a few hundred KiB. The trace id's low 56 bits are random, as the `random`
 * flag (Level 2) promises and as the ratio sampler assumes.
 *
 * @module
 */

/** A source of ids; tests may inject a predictable one. */
export interface IdSource {
  traceId(): string;
  spanId(): string;
}

const POOL_BYTES = 4096;
const DIGITS = new TextEncoder().encode("0123456789abcdef");
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

/** Ids from a pool of cryptographically random bytes; see the module comment. */
export class RandomIds implements IdSource {
  readonly #bytes = new Uint8Array(POOL_BYTES);
  readonly #ascii = new Uint8Array(2 * POOL_BYTES);
  readonly #decoder = new TextDecoder();
  #hex = "";
  #at = 0;

  traceId(): string {
    for (;;) {
      const id = this.#take(32);
      if (id !== ZERO_TRACE) return id;
    }
  }

  spanId(): string {
    for (;;) {
      const id = this.#take(16);
      if (id !== ZERO_SPAN) return id;
    }
  }

  /** The next `n` hex digits of the pool. */
  #take(n: number): string {
    if (this.#at + n > this.#hex.length) this.#refill();
    const id = this.#hex.slice(this.#at, this.#at + n);
    this.#at += n;
    return id;
  }

  #refill(): void {
    const b = this.#bytes;
    const a = this.#ascii;
    crypto.getRandomValues(b);
    for (let i = 0; i < POOL_BYTES; i++) {
      a[2 * i] = DIGITS[b[i] >> 4];
      a[2 * i + 1] = DIGITS[b[i] & 15];
    }
    this.#hex = this.#decoder.decode(a);
    this.#at = 0;
  }
}
