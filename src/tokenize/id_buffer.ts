/**
 * A growing buffer of token ids: doubles when full; `result()` copies it to its final length.
 * Owners reuse one buffer across calls by setting `length` to 0.
 *
 * @module
 */

/** A growing output buffer of ids. */
export class IdBuffer {
  ids: Uint32Array;
  length = 0;
  constructor(capacity: number) {
    this.ids = new Uint32Array(Math.max(16, capacity));
  }
  #room(extra: number): void {
    if (this.length + extra <= this.ids.length) return;
    const next = new Uint32Array(Math.max(this.ids.length * 2, this.length + extra));
    next.set(this.ids.subarray(0, this.length));
    this.ids = next;
  }
  push(id: number): void {
    this.#room(1);
    this.ids[this.length++] = id;
  }
  append(ids: ArrayLike<number>): void {
    const n = ids.length;
    this.#room(n);
    if (n > 8) {
      this.ids.set(ids, this.length);
      this.length += n;
      return;
    }
    // A word's few ids: a loop is cheaper than TypedArray#set's call.
    const out = this.ids;
    let at = this.length;
    for (let i = 0; i < n; i++) out[at++] = ids[i];
    this.length = at;
  }
  /** Appends `n` ids of `source` from `start`. */
  appendFrom(source: Uint32Array, start: number, n: number): void {
    this.#room(n);
    const out = this.ids;
    let at = this.length;
    if (n > 8) {
      out.set(source.subarray(start, start + n), at);
      at += n;
    } else {
      for (let i = 0; i < n; i++) out[at++] = source[start + i];
    }
    this.length = at;
  }
  result(): Uint32Array {
    return this.ids.slice(0, this.length);
  }
}
