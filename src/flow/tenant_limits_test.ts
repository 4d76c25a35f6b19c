/**
 * TenantLimits: the token bucket refills and sets Retry-After, the concurrency cap, labels and
 * weights of listed tenants, and the LRU bound on unlisted ones.
 */

import assert from "node:assert/strict";
import { ManualClock } from "../util/clock.ts";
import { NO_LIMIT } from "./section.ts";
import { TenantLimits, TokenBucket } from "./tenant_limits.ts";
import type { Shed, TenantLimitConfig, TenantsConfig } from "./types.ts";

function config(over: Partial<TenantsConfig> = {}): TenantsConfig {
  return {
    source: "api_key",
    header: "",
    default: NO_LIMIT,
    limits: {},
    maxTracked: 100,
    ...over,
  };
}

const limit = (l: Partial<TenantLimitConfig>): TenantLimitConfig => ({ ...NO_LIMIT, ...l });

const BUCKET_CASES: ReadonlyArray<{
  name: string;
  rps: number;
  burst: number;
  /** [ms to advance first, expected: 0 = admitted, n = refused with Retry-After n]. */
  steps: ReadonlyArray<[number, number]>;
}> = [
  {
    name: "burst 3 at 2/s, then one token per 500 ms",
    rps: 2,
    burst: 3,
    steps: [[0, 0], [0, 0], [0, 0], [0, 1], [499, 1], [1, 0], [0, 1], [500, 0]],
  },
  {
    name: "a long quiet period refills to the burst, not beyond",
    rps: 2,
    burst: 3,
    steps: [[0, 0], [0, 0], [0, 0], [60_000, 0], [0, 0], [0, 0], [0, 1]],
  },
  {
    name: "Retry-After from the bucket: 0.1/s waits 10 s",
    rps: 0.1,
    burst: 1,
    steps: [[0, 0], [0, 10], [4000, 6], [6000, 0]],
  },
  {
    name: "Retry-After rounds up and is at least 1",
    rps: 1000,
    burst: 1,
    steps: [[0, 0], [0, 1], [1, 0]],
  },
];

for (const c of BUCKET_CASES) {
  Deno.test(`token bucket: ${c.name}`, () => {
    const clock = new ManualClock(1000);
    const limits = new TenantLimits(
      config({ default: limit({ rps: c.rps, burst: c.burst }) }),
      clock,
    );
    c.steps.forEach(([advance, expect], i) => {
      clock.advance(advance);
      const d = limits.admit("t");
      if (expect === 0) {
        assert.ok(d.ok, `step ${i}: expected admitted, got ${JSON.stringify(d)}`);
        d.permit.release();
      } else {
        assert.ok(!d.ok, `step ${i}: expected refused`);
        assert.equal(d.reason, "rate_limited");
        assert.equal(d.status, 429);
        assert.equal(d.retryAfterS, expect, `step ${i}`);
      }
    });
  });
}

Deno.test("TokenBucket reports fractional tokens and refuses bad settings", () => {
  const b = new TokenBucket(4, 2, 0);
  assert.equal(b.take(0), 0);
  assert.equal(b.take(0), 0);
  assert.equal(b.take(0), 250);
  assert.equal(b.tokens(125), 0.5);
  assert.throws(() => new TokenBucket(0, 1, 0), /rps > 0/);
  assert.throws(() => new TokenBucket(1, 0, 0), /burst ≥ 1/);
});

Deno.test("concurrency cap: refused with Retry-After 1, a release frees a permit once", () => {
  const limits = new TenantLimits(
    config({ limits: { gold: limit({ maxConcurrent: 2 }) } }),
    new ManualClock(),
  );
  const a = limits.admit("gold");
  const b = limits.admit("gold");
  assert.ok(a.ok && b.ok);
  const c = limits.admit("gold") as Shed;
  assert.equal(c.reason, "concurrency_limited");
  assert.equal(c.retryAfterS, 1);
  a.permit.release();
  a.permit.release(); // idempotent: still one free permit, not two
  const d = limits.admit("gold");
  assert.ok(d.ok);
  assert.equal(limits.admit("gold").ok, false);
  assert.deepEqual(limits.stats().gold, { active: 2, rateLimited: 0, concurrencyLimited: 2 });
  // Another tenant is not affected.
  assert.ok(limits.admit("silver").ok);
});

Deno.test("labels and weights: listed tenants by id, the rest as other", () => {
  const limits = new TenantLimits(
    config({ default: limit({ weight: 1 }), limits: { gold: limit({ weight: 4 }) } }),
    new ManualClock(),
  );
  assert.equal(limits.labelOf("gold"), "gold");
  assert.equal(limits.labelOf("someone"), "other");
  assert.equal(limits.weightOf("gold"), 4);
  assert.equal(limits.weightOf("someone"), 1);
  const d = limits.admit("someone");
  assert.ok(d.ok);
  assert.equal(d.permit.label, "other");
  assert.deepEqual(Object.keys(limits.stats()), ["gold", "other"]);
  assert.equal(limits.stats().other.active, 1);
});

Deno.test("unlisted tenants: LRU bounded by max_tracked under random ids", () => {
  const clock = new ManualClock();
  const limits = new TenantLimits(
    config({ default: limit({ rps: 1, burst: 1 }), maxTracked: 100 }),
    clock,
  );
  const first = limits.admit("victim");
  assert.ok(first.ok);
  first.permit.release(); // idle: eligible for eviction
  assert.equal(limits.admit("victim").ok, false); // its bucket is empty
  for (let i = 0; i < 10_000; i++) {
    const d = limits.admit(crypto.randomUUID());
    if (d.ok) d.permit.release();
    assert.ok(limits.tracked <= 100);
    if (i === 50) {
      // Seen again within the last 100 ids: still tracked, still limited (and now recent).
      assert.equal(limits.admit("victim").ok, false);
    }
  }
  assert.equal(limits.tracked, 100);
  // Forgotten after 100 newer ids: it comes back with a full bucket.
  assert.ok(limits.admit("victim").ok);
});

Deno.test("unlisted tenants: eviction prefers an idle tenant over one holding permits", () => {
  const limits = new TenantLimits(
    config({ default: limit({ maxConcurrent: 1 }), maxTracked: 3 }),
    new ManualClock(),
  );
  const busy = limits.admit("busy"); // least recent, holds its permit
  assert.ok(busy.ok);
  for (const t of ["idle1", "idle2"]) {
    const d = limits.admit(t);
    if (d.ok) d.permit.release();
  }
  const d = limits.admit("new"); // evicts idle1, not busy
  assert.ok(d.ok);
  assert.equal(limits.tracked, 3);
  assert.equal(limits.admit("busy").ok, false, "busy was forgotten and its cap reset");
});

Deno.test("update keeps a listed tenant's state when its limits stay, resets it otherwise", () => {
  const clock = new ManualClock();
  const one = config({ limits: { gold: limit({ rps: 1, burst: 1 }) } });
  const limits = new TenantLimits(one, clock);
  assert.ok(limits.admit("gold").ok);
  limits.update({ ...one, maxTracked: 50 });
  assert.equal(limits.admit("gold").ok, false, "same limits: the empty bucket stays");
  limits.update(config({ limits: { gold: limit({ rps: 2, burst: 1 }) } }));
  assert.ok(limits.admit("gold").ok, "new limits: a fresh bucket");
});
