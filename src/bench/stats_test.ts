import { assert, assertEquals } from "./test_util.ts";
import {
  bootstrap,
  bootstrapMany,
  cachedShare,
  cachedShareCI,
  mean,
  meanCI,
  percentile,
  percentileCI,
  slope,
  stddev,
} from "./stats.ts";
import { SeededRng } from "../util/rng.ts";

const close = (a: number, b: number, eps = 1e-9) =>
  assert(Math.abs(a - b) <= eps, `expected ${b}, got ${a}`);

Deno.test("percentile of 1..100 matches numpy's linear method", () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // unsorted on purpose
  close(percentile(xs, 0), 1);
  close(percentile(xs, 50), 50.5);
  close(percentile(xs, 95), 95.05);
  close(percentile(xs, 99), 99.01);
  close(percentile(xs, 100), 100);
  close(percentile(xs, 25), 25.75);
});

Deno.test("percentile of small arrays with literal values", () => {
  close(percentile([7], 50), 7);
  close(percentile([1, 2], 50), 1.5);
  close(percentile([3, 1, 2, 4], 50), 2.5);
  close(percentile([10, 20, 30, 40, 50], 90), 46);
  close(percentile([15, 20, 35, 40, 50], 40), 29);
  assert(Number.isNaN(percentile([], 50)));
});

Deno.test("percentile with infinite values at and between ranks; NaN values are refused", () => {
  assertEquals(percentile([1, Infinity], 0), 1);
  assertEquals(percentile([1, 2, Infinity], 50), 2);
  assertEquals(percentile([1, 2, Infinity], 100), Infinity);
  assertEquals(percentile([1, Infinity], 50), Infinity);
  let threw: unknown = null;
  try {
    percentile([NaN, 1, 2], 50);
  } catch (err) {
    threw = err;
  }
  assert(threw instanceof RangeError, "a NaN among the values is refused");
});

Deno.test("mean and sample stddev", () => {
  close(mean([2, 4, 4, 4, 5, 5, 7, 9]), 5);
  close(stddev([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7));
  assertEquals(stddev([3]), 0);
});

Deno.test("bootstrap CI of the mean of uniform(0,1) covers 0.5 and is tight", () => {
  const rng = new SeededRng(42);
  const xs = Array.from({ length: 5000 }, () => rng.next());
  const ci = meanCI(xs, { rng: new SeededRng(7) });
  assert(ci.lo < 0.5 && 0.5 < ci.hi, `[${ci.lo}, ${ci.hi}] misses 0.5`);
  assert(ci.lo <= ci.value && ci.value <= ci.hi);
  // Standard error is 1/sqrt(12·5000) ≈ 0.0041, so the 95% width is about 0.016.
  assert(ci.hi - ci.lo > 0.01 && ci.hi - ci.lo < 0.025, `width ${ci.hi - ci.lo}`);
});

Deno.test("bootstrap CI of p50 and p95 of uniform(0,100) covers the true quantiles", () => {
  const rng = new SeededRng(3);
  const xs = Array.from({ length: 4000 }, () => rng.next() * 100);
  const p50 = percentileCI(xs, 50, { rng: new SeededRng(1) });
  const p95 = percentileCI(xs, 95, { rng: new SeededRng(1) });
  assert(p50.lo < 50 && 50 < p50.hi, `p50 [${p50.lo}, ${p50.hi}]`);
  assert(p95.lo < 95 && 95 < p95.hi, `p95 [${p95.lo}, ${p95.hi}]`);
});

Deno.test("bootstrap is deterministic for a seed and degenerate on tiny samples", () => {
  const xs = [1, 5, 2, 8, 3];
  const a = bootstrap(xs, mean, { rng: new SeededRng(9) });
  const b = bootstrap(xs, mean, { rng: new SeededRng(9) });
  assertEquals(a, b);
  assertEquals(bootstrap([4], mean), { value: 4, lo: 4, hi: 4 });
  const empty = bootstrap([], mean);
  assert(Number.isNaN(empty.value) && Number.isNaN(empty.lo));
});

Deno.test("cached share is Σcached/Σprompt, with a CI over requests", () => {
  const pairs = [{ prompt: 100, cached: 0 }, { prompt: 300, cached: 200 }];
  close(cachedShare(pairs), 0.5);
  assert(Number.isNaN(cachedShare([])));
  const all = Array.from({ length: 200 }, (_, i) => ({ prompt: 100, cached: i % 2 ? 100 : 0 }));
  const ci = cachedShareCI(all);
  close(ci.value, 0.5);
  assert(ci.lo < 0.5 && ci.hi > 0.5 && ci.hi - ci.lo < 0.2);
});

Deno.test("slope of an exact line, and of noisy symmetric data", () => {
  close(slope([4, 8, 12, 16, 24], [4, 8, 12, 16, 24].map((x) => 3 * x + 7)), 3);
  close(slope([0, 1, 2], [1, 0, 1]), 0);
  assert(Number.isNaN(slope([5, 5], [1, 2])));
});

Deno.test("bootstrapMany: the CI of a difference of medians covers the true one, and says when it is 0", () => {
  const rng = new SeededRng(11);
  const u = (lo: number, n: number) => Array.from({ length: n }, () => lo + rng.next() * 10);
  // Medians 15 and 25: difference 10.
  const diff = ([a, b]: readonly (readonly number[])[]) => percentile(b, 50) - percentile(a, 50);
  const apart = bootstrapMany([u(10, 600), u(20, 600)], diff, { rng: new SeededRng(2) });
  assert(apart.lo < 10 && 10 < apart.hi && apart.lo > 8, `[${apart.lo}, ${apart.hi}]`);
  // Same distribution: the CI holds 0.
  const same = bootstrapMany([u(10, 600), u(10, 600)], diff, { rng: new SeededRng(2) });
  assert(same.lo < 0 && 0 < same.hi, `[${same.lo}, ${same.hi}]`);
  assert(Number.isNaN(bootstrapMany([[1], []], diff).value));
});
