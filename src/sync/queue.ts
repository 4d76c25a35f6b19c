/**
 * A FIFO with O(1) push, shift and unshift of a batch; its owner bounds it.
 *
 * @module
 */

/** FIFO with O(1) push, shift and unshift of a batch, bounded by the owner. */
export class Queue<T> {
  #items: T[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }
  push(x: T): void {
    this.#items.push(x);
  }
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const x = this.#items[this.#head];
    this.#items[this.#head++] = undefined as T;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return x;
  }
  /** Takes up to `n` items from the front. */
  take(n: number): T[] {
    const out: T[] = [];
    while (out.length < n && this.length > 0) out.push(this.shift()!);
    return out;
  }
  /** Puts `xs` back at the front, in order. */
  unshift(xs: readonly T[]): void {
    if (xs.length === 0) return;
    this.#items = [...xs, ...this.#items.slice(this.#head)];
    this.#head = 0;
  }
}
