/**
 * EventQueue: a binary min-heap of events by (time, insertion number), so events at the same time
 * come out in the order they were scheduled and a run is reproducible.
 *
 * Cost: O(log n) per push and pop.
 *
 * @module
 */

/** Events ordered by time, ties by insertion order. */
export class EventQueue<T> {
  #items: Array<{ t: number; n: number; v: T }> = [];
  #n = 0;

  get size(): number {
    return this.#items.length;
  }

  push(t: number, v: T): void {
    const a = this.#items;
    a.push({ t, n: this.#n++, v });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  pop(): { t: number; v: T } | undefined {
    const a = this.#items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.#less(a[l], a[m])) m = l;
        if (r < a.length && this.#less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }

  #less(x: { t: number; n: number }, y: { t: number; n: number }): boolean {
    return x.t < y.t || (x.t === y.t && x.n < y.n);
  }
}
