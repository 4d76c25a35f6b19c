/**
 * The waiting requests of one priority class, fair across tenants by deficit round robin (DRR,
 * Shreedhar and Varghese 1995).
 *
 * Rule. Each tenant with waiting requests has a FIFO ("flow") and sits in a ring. The flow at the
 * head of the ring is on its turn: when its turn starts it gains `quantum × weight` credit; it
 * sends its first request while that request's cost fits the credit (credit − cost), and when the
 * next one does not fit its turn ends and it moves to the back of the ring. A flow that empties
 * leaves the ring and loses its credit (no banking while idle). So each backlogged tenant gets
 * `weight / Σ weights` of the dispatches (by cost) whatever the others send, and a request of a
 * tenant with `k − 1` requests ahead of it in its own flow waits at most `k` rounds; one round
 * lets each other backlogged tenant send at most `quantum × weight + maxCost − 1` cost.
 *
 * When a request costs more than one quantum, a tenant needs several turns to send it; rather than
 * spinning through empty turns, after one whole round with nothing sent every flow gets the number
 * of quanta that the closest one still needed, less one, at once (the same as running those rounds).
 *
 * Order within a flow: FCFS (oldest first), or LIFO (newest first, `lifo = true`). LIFO serves a
 * tenant's backlog newest first, so under sustained overload the requests sent are the ones that
 * can still be on time while the oldest reach their max wait and are shed; it reorders only one
 * tenant's own requests, so the shares between tenants stay the same.
 *
 * A request given back after a lost race (`pushFront`) goes to the front of its flow (the end sent
 * next) with its cost refunded; a flow it re-creates goes to the head of the ring, so it is sent
 * next.
 *
 * Every request is also on an age list in arrival order (the oldest first), for max-wait deadlines
 * and displacement of the newest.
 *
 * Cost: push, remove and (with cost 1) pick are O(1); `pushFront` walks the age list to its place
 * from the end where it likely is (near it: the race was lost just after the dispatch). Memory: one flow object per tenant with
 * waiting requests, dropped when it empties.
 *
 * @module
 */

/** A waiting request as the class queue links it. */
export interface FairEntry {
  readonly tenant: string;
  /** DRR cost, ≥ 1. */
  readonly cost: number;
  /** Arrival time on the queue's clock; kept by `pushFront`. */
  readonly enqueuedAt: number;
  /** Flow the entry waits in; null while not queued. */
  flow: Flow | null;
  prevInFlow: FairEntry | null;
  nextInFlow: FairEntry | null;
  older: FairEntry | null;
  newer: FairEntry | null;
}

/** One tenant's FIFO within a class, and its DRR state. */
export interface Flow {
  readonly tenant: string;
  /** Credit gained per turn: the queue's quantum × the tenant's weight. */
  readonly quantum: number;
  deficit: number;
  /** Whether this turn's quantum was granted already. */
  granted: boolean;
  first: FairEntry | null;
  last: FairEntry | null;
  size: number;
  prev: Flow | null;
  next: Flow | null;
}

/** Fields a new entry starts with. */
export function unlinked(): Pick<
  FairEntry,
  "flow" | "prevInFlow" | "nextInFlow" | "older" | "newer"
> {
  return { flow: null, prevInFlow: null, nextInFlow: null, older: null, newer: null };
}

/** The waiting requests of one class; see the module comment. */
export class FairQueue<E extends FairEntry> {
  readonly #flows = new Map<string, Flow>();
  readonly #quantumOf: (tenant: string) => number;
  #ringHead: Flow | null = null;
  #ringTail: Flow | null = null;
  #oldest: E | null = null;
  #newest: E | null = null;
  #size = 0;
  /** Newest first within each flow (see the module comment); may change at any time. */
  lifo: boolean;

  /** @param quantumOf credit per turn of a tenant (quantum × weight), > 0 */
  constructor(quantumOf: (tenant: string) => number, lifo = false) {
    this.#quantumOf = quantumOf;
    this.lifo = lifo;
  }

  /** Requests waiting. */
  get size(): number {
    return this.#size;
  }

  /** Tenants with requests waiting. */
  get tenants(): number {
    return this.#flows.size;
  }

  /** The request waiting longest, or null. */
  get oldest(): E | null {
    return this.#oldest;
  }

  /** The request that arrived last, or null. */
  get newest(): E | null {
    return this.#newest;
  }

  /** Appends `e` to its tenant's flow and the age list. `e.enqueuedAt` must not go back in time. */
  push(e: E): void {
    this.#append(this.#flowOf(e.tenant, false), e);
    e.older = this.#newest;
    e.newer = null;
    if (this.#newest) this.#newest.newer = e;
    else this.#oldest = e;
    this.#newest = e;
    this.#size++;
  }

  /** Puts a dispatched `e` back at the end of its flow sent next, its cost refunded (a lost race). */
  pushFront(e: E): void {
    const f = this.#flowOf(e.tenant, true);
    f.deficit += e.cost;
    if (this.lifo) this.#append(f, e);
    else {
      e.nextInFlow = f.first;
      e.prevInFlow = null;
      if (f.first) f.first.prevInFlow = e;
      else f.last = e;
      f.first = e;
      f.size++;
      e.flow = f;
    }
    // Age list: before the first entry that arrived later. Walked from the end it is likely near:
    // the oldest under FCFS (it was its flow's oldest), the newest under LIFO.
    let after: FairEntry | null;
    if (this.lifo) {
      let before: FairEntry | null = this.#newest;
      while (before !== null && before.enqueuedAt > e.enqueuedAt) before = before.older;
      after = before === null ? this.#oldest : before.newer;
    } else {
      after = this.#oldest;
      while (after !== null && after.enqueuedAt <= e.enqueuedAt) after = after.newer;
    }
    if (after === null) {
      e.older = this.#newest;
      e.newer = null;
      if (this.#newest) this.#newest.newer = e;
      else this.#oldest = e;
      this.#newest = e;
    } else {
      e.newer = after;
      e.older = after.older;
      if (after.older) after.older.newer = e;
      else this.#oldest = e;
      after.older = e;
    }
    this.#size++;
  }

  #append(f: Flow, e: E): void {
    e.prevInFlow = f.last;
    e.nextInFlow = null;
    if (f.last) f.last.nextInFlow = e;
    else f.first = e;
    f.last = e;
    f.size++;
    e.flow = f;
  }

  /** The request of `f` sent next. */
  #next(f: Flow): FairEntry {
    return this.lifo ? f.last! : f.first!;
  }

  /** Takes `e` out (abort, timeout, displacement). Does nothing when it is not queued. */
  remove(e: E): void {
    const f = e.flow;
    if (f === null) return;
    if (e.prevInFlow) e.prevInFlow.nextInFlow = e.nextInFlow;
    else f.first = e.nextInFlow;
    if (e.nextInFlow) e.nextInFlow.prevInFlow = e.prevInFlow;
    else f.last = e.prevInFlow;
    e.prevInFlow = e.nextInFlow = null;
    e.flow = null;
    f.size--;
    if (e.older) e.older.newer = e.newer;
    else this.#oldest = e.newer as E | null;
    if (e.newer) e.newer.older = e.older;
    else this.#newest = e.older as E | null;
    e.older = e.newer = null;
    this.#size--;
    if (f.size === 0) this.#dropFlow(f);
  }

  /** Takes the next request in DRR order; null when none waits. */
  pick(): E | null {
    if (this.#size === 0) return null;
    let misses = 0;
    for (;;) {
      const f = this.#ringHead!;
      if (!f.granted) {
        f.deficit += f.quantum;
        f.granted = true;
      }
      const e = this.#next(f);
      if (e.cost <= f.deficit) {
        f.deficit -= e.cost;
        this.remove(e as E);
        return e as E;
      }
      this.#rotate();
      if (++misses >= this.#flows.size) {
        this.#skipRounds();
        misses = 0;
      }
    }
  }

  /** Every request waiting, oldest first (for `close` and reconfiguration). */
  *entries(): IterableIterator<E> {
    for (let e = this.#oldest; e !== null; e = e.newer as E | null) yield e;
  }

  /**
   * A round passed with nothing sent: grant every flow at once the quanta of the rounds until the
   * flow closest to sending can send, less the round that follows (it grants its own).
   */
  #skipRounds(): void {
    let k = Infinity;
    for (const f of this.#flows.values()) {
      k = Math.min(k, Math.ceil((this.#next(f).cost - f.deficit) / f.quantum));
    }
    if (!(k > 1) || !Number.isFinite(k)) return;
    for (const f of this.#flows.values()) f.deficit += (k - 1) * f.quantum;
  }

  #flowOf(tenant: string, atHead: boolean): Flow {
    let f = this.#flows.get(tenant);
    if (f !== undefined) return f;
    const quantum = this.#quantumOf(tenant);
    f = {
      tenant,
      quantum,
      deficit: 0,
      granted: atHead,
      first: null,
      last: null,
      size: 0,
      prev: null,
      next: null,
    };
    this.#flows.set(tenant, f);
    if (atHead) {
      f.next = this.#ringHead;
      if (this.#ringHead) this.#ringHead.prev = f;
      else this.#ringTail = f;
      this.#ringHead = f;
    } else {
      f.prev = this.#ringTail;
      if (this.#ringTail) this.#ringTail.next = f;
      else this.#ringHead = f;
      this.#ringTail = f;
    }
    return f;
  }

  #dropFlow(f: Flow): void {
    this.#flows.delete(f.tenant);
    if (f.prev) f.prev.next = f.next;
    else this.#ringHead = f.next;
    if (f.next) f.next.prev = f.prev;
    else this.#ringTail = f.prev;
    f.prev = f.next = null;
  }

  /** Ends the head flow's turn: it goes to the back of the ring. */
  #rotate(): void {
    const f = this.#ringHead!;
    f.granted = false;
    if (f === this.#ringTail) return;
    this.#ringHead = f.next;
    this.#ringHead!.prev = null;
    f.prev = this.#ringTail;
    f.next = null;
    this.#ringTail!.next = f;
    this.#ringTail = f;
  }
}
