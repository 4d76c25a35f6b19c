/**
 * FairQueue (DRR): shares by weight and by cost, and the fast path (skipped empty rounds, O(1)
 * links) checked against a slow obvious DRR with property tests.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { type FairEntry, FairQueue, unlinked } from "./fair_queue.ts";

interface E extends FairEntry {
  readonly id: number;
}

let nextId = 0;
function entry(tenant: string, cost = 1, at = 0): E {
  return { ...unlinked(), id: nextId++, tenant, cost, enqueuedAt: at };
}

const SHARE_CASES: ReadonlyArray<{
  name: string;
  quantum: number;
  weights: Record<string, number>;
  costs: Record<string, number>;
  picks: number;
  expect: Record<string, number>;
}> = [
  {
    name: "equal weights, unit cost",
    quantum: 1,
    weights: { A: 1, B: 1 },
    costs: { A: 1, B: 1 },
    picks: 40,
    expect: { A: 20, B: 20 },
  },
  {
    name: "weights 3 : 1",
    quantum: 1,
    weights: { A: 3, B: 1 },
    costs: { A: 1, B: 1 },
    picks: 40,
    expect: { A: 30, B: 10 },
  },
  {
    name: "prompt-token cost 4000 vs 1000, quantum 4096",
    quantum: 4096,
    weights: { A: 1, B: 1 },
    costs: { A: 4000, B: 1000 },
    picks: 50,
    expect: { A: 10, B: 40 },
  },
  {
    name: "cost above the quantum (several turns per request)",
    quantum: 100,
    weights: { A: 1, B: 1 },
    costs: { A: 1000, B: 100 },
    picks: 44,
    expect: { A: 4, B: 40 },
  },
];

for (const c of SHARE_CASES) {
  Deno.test(`DRR shares: ${c.name}`, () => {
    const q = new FairQueue<E>((t) => c.quantum * c.weights[t]);
    for (let i = 0; i < 200; i++) {
      for (const t of Object.keys(c.weights)) q.push(entry(t, c.costs[t]));
    }
    const got: Record<string, number> = {};
    for (let i = 0; i < c.picks; i++) {
      const e = q.pick()!;
      got[e.tenant] = (got[e.tenant] ?? 0) + 1;
    }
    assert.deepEqual(got, c.expect);
  });
}

Deno.test("LIFO: a tenant's newest request goes first; tenants still alternate", () => {
  const q = new FairQueue<E>(() => 1, true);
  const a = [entry("A", 1, 1), entry("A", 1, 2), entry("A", 1, 3)];
  const b = [entry("B", 1, 4), entry("B", 1, 5)];
  for (const e of [...a, ...b]) q.push(e);
  const order = Array.from({ length: 5 }, () => q.pick()!.id);
  assert.deepEqual(order, [a[2].id, b[1].id, a[1].id, b[0].id, a[0].id]);
  const x = entry("A", 1, 6);
  const y = entry("A", 1, 7);
  q.push(x);
  q.push(y);
  const got = q.pick()!;
  assert.equal(got, y);
  q.pushFront(got); // sent next again, and back in its place on the age list
  assert.equal(q.pick(), y);
  q.pushFront(y);
  assert.deepEqual([...q.entries()].map((e) => e.id), [x.id, y.id]);
});

Deno.test("a flow that empties leaves the ring and loses its credit", () => {
  const q = new FairQueue<E>(() => 5);
  q.push(entry("A"));
  assert.equal(q.pick()!.tenant, "A");
  assert.equal(q.tenants, 0);
  // Had A kept its 4 units of credit it would now send 5 in a row before B's first.
  for (let i = 0; i < 5; i++) q.push(entry("B"));
  for (let i = 0; i < 6; i++) q.push(entry("A"));
  const order = Array.from({ length: 10 }, () => q.pick()!.tenant).join("");
  assert.equal(order, "BBBBBAAAAA");
});

Deno.test("remove, oldest and newest keep the age list in arrival order", () => {
  const q = new FairQueue<E>(() => 1);
  const a = entry("A", 1, 1);
  const b = entry("B", 1, 2);
  const c = entry("A", 1, 3);
  q.push(a);
  q.push(b);
  q.push(c);
  q.remove(b);
  q.remove(b); // not queued: nothing happens
  assert.equal(q.size, 2);
  assert.deepEqual([...q.entries()].map((e) => e.id), [a.id, c.id]);
  const first = q.pick()!;
  q.pushFront(first);
  assert.deepEqual([...q.entries()].map((e) => e.id), [a.id, c.id]);
  assert.equal(q.oldest, a);
  assert.equal(q.newest, c);
});

// ---- Reference: DRR written the obvious way (arrays, one round at a time) ----

interface RefFlow {
  tenant: string;
  deficit: number;
  granted: boolean;
  items: E[];
}

class RefDrr {
  ring: RefFlow[] = [];
  constructor(readonly quantumOf: (t: string) => number, readonly lifo: boolean) {}
  push(e: E): void {
    let f = this.ring.find((x) => x.tenant === e.tenant);
    if (!f) this.ring.push(f = { tenant: e.tenant, deficit: 0, granted: false, items: [] });
    f.items.push(e);
  }
  pushFront(e: E): void {
    let f = this.ring.find((x) => x.tenant === e.tenant);
    if (!f) this.ring.unshift(f = { tenant: e.tenant, deficit: 0, granted: true, items: [] });
    f.deficit += e.cost;
    if (this.lifo) f.items.push(e);
    else f.items.unshift(e);
  }
  remove(id: number): void {
    for (const [i, f] of this.ring.entries()) {
      const k = f.items.findIndex((e) => e.id === id);
      if (k < 0) continue;
      f.items.splice(k, 1);
      if (f.items.length === 0) this.ring.splice(i, 1);
      return;
    }
  }
  pick(): E | null {
    if (this.ring.length === 0) return null;
    for (;;) {
      const f = this.ring[0];
      if (!f.granted) {
        f.deficit += this.quantumOf(f.tenant);
        f.granted = true;
      }
      const head = this.lifo ? f.items.at(-1)! : f.items[0];
      if (head.cost <= f.deficit) {
        const e = this.lifo ? f.items.pop()! : f.items.shift()!;
        f.deficit -= e.cost;
        if (f.items.length === 0) this.ring.shift();
        return e;
      }
      f.granted = false;
      this.ring.push(this.ring.shift()!);
    }
  }
}

type Op =
  | { kind: "push"; tenant: number; cost: number }
  | { kind: "pick" }
  | { kind: "requeue" }
  | { kind: "remove"; which: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("push" as const),
    tenant: fc.integer({ min: 0, max: 3 }),
    cost: fc.integer({ min: 1, max: 60 }),
  }),
  fc.constant({ kind: "pick" as const }),
  fc.constant({ kind: "requeue" as const }),
  fc.record({ kind: fc.constant("remove" as const), which: fc.nat() }),
);

Deno.test("property: FairQueue picks exactly what a slow obvious DRR picks (FCFS and LIFO)", () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.integer({ min: 1, max: 20 }),
      fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }),
      fc.array(opArb, { maxLength: 200 }),
      (lifo, quantum, weights, ops) => {
        const quantumOf = (t: string) => quantum * weights[Number(t.slice(1))];
        const q = new FairQueue<E>(quantumOf, lifo);
        const ref = new RefDrr(quantumOf, lifo);
        const waiting: E[] = [];
        let clock = 0;
        for (const op of ops) {
          if (op.kind === "push") {
            const e = entry(`t${op.tenant}`, op.cost, clock++);
            q.push(e);
            ref.push(e);
            waiting.push(e);
          } else if (op.kind === "remove") {
            if (waiting.length === 0) continue;
            const [e] = waiting.splice(op.which % waiting.length, 1);
            q.remove(e);
            ref.remove(e.id);
          } else {
            const got = q.pick();
            const want = ref.pick();
            assert.equal(got?.id, want?.id);
            if (got === null) continue;
            if (op.kind === "requeue") {
              q.pushFront(got);
              ref.pushFront(want!);
            } else waiting.splice(waiting.indexOf(got), 1);
          }
          assert.equal(q.size, ref.ring.reduce((n, f) => n + f.items.length, 0));
        }
        const ages = [...q.entries()].map((e) => e.enqueuedAt);
        assert.deepEqual(ages, [...ages].sort((a, b) => a - b));
      },
    ),
    { numRuns: 500 },
  );
});
