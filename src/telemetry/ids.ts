/**
 * Trace and span ids: 16 and 8 random bytes as lower-case hex, never all zero (W3C Trace Context).
 *
 * Bytes come from `crypto.getRandomValues`, drawn 4 KiB at a time into a pool and handed out from
 * it, so that a request pays a few table look-ups instead of a call into the runtime per id. The
 * trace id's low 56 bits are then random, as the `random` flag (Level 2) promises and as the
 * ratio sampler assumes.
 *
 * @module
 */

/** A source of ids; tests may inject a predictable one. */
export interface IdSource {
  traceId(): string;
  spanId(): string;
}

const POOL_BYTES = 4096;

/** Two hex digits of each byte value. */
const HEX: readonly string[] = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

/** Ids from a pool of cryptographically random bytes; see the module comment. */
export class RandomIds implements IdSource {
  readonly #pool = new Uint8Array(POOL_BYTES);
  #at = POOL_BYTES;

  traceId(): string {
    return this.#hex(16);
  }

  spanId(): string {
    return this.#hex(8);
  }

  #hex(n: number): string {
    for (;;) {
      if (this.#at + n > POOL_BYTES) {
        crypto.getRandomValues(this.#pool);
        this.#at = 0;
      }
      const p = this.#pool;
      let s = "";
      let any = 0;
      for (let i = this.#at, end = this.#at + n; i < end; i++) {
        s += HEX[p[i]];
        any |= p[i];
      }
      this.#at += n;
      if (any !== 0) return s;
    }
  }
}
