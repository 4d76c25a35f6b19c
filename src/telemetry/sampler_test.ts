import assert from "node:assert/strict";
import { RandomIds } from "./ids.ts";
import { sampledByRatio, shouldSample } from "./sampler.ts";

const T = "4bf92f3577b34da6a3ce929d0e0e4736";

Deno.test("sampler: a parent's flag decides, whatever the ratio", () => {
  const sampled = { traceId: T, spanId: "00f067aa0ba902b7", flags: 1 };
  const notSampled = { ...sampled, flags: 0 };
  const randomOnly = { ...sampled, flags: 2 };
  for (const ratio of [0, 0.5, 1]) {
    assert.equal(shouldSample(sampled, T, ratio), true, `sampled parent at ${ratio}`);
    assert.equal(shouldSample(notSampled, T, ratio), false, `unsampled parent at ${ratio}`);
    assert.equal(shouldSample(randomOnly, T, ratio), false, `random flag only at ${ratio}`);
  }
});

Deno.test("sampler: a root span follows the ratio by its trace id's low 56 bits", () => {
  // Threshold (1 - ratio) * 2^56: the randomness is the last 14 hex digits.
  const low = "0".repeat(18) + "00000000000001"; // R = 1
  const high = "0".repeat(18) + "ffffffffffffff"; // R = 2^56 - 1
  const mid = "ffffffffffffffffff" + "80000000000000"; // R = 2^55: high digits do not count
  assert.equal(sampledByRatio(low, 1), true);
  assert.equal(sampledByRatio(low, 0.999), false);
  assert.equal(sampledByRatio(high, 0.001), true);
  assert.equal(sampledByRatio(high, 0), false);
  assert.equal(sampledByRatio(mid, 0.5), true); // R ≥ 2^55
  assert.equal(sampledByRatio(mid, 0.49), false);
  assert.equal(sampledByRatio(low, Number.NaN), false);
  assert.equal(shouldSample(null, high, 0.25), true);
  assert.equal(shouldSample(null, low, 0.25), false);
});

Deno.test("sampler: over random trace ids the share recorded is near the ratio", () => {
  const ids = new RandomIds();
  for (const ratio of [0.1, 0.5, 0.9]) {
    let n = 0;
    const total = 20_000;
    for (let i = 0; i < total; i++) if (sampledByRatio(ids.traceId(), ratio)) n++;
    // 20 000 draws: the standard deviation is at most 0.0035; 0.03 is over 8 of them.
    assert.ok(Math.abs(n / total - ratio) < 0.03, `ratio ${ratio}: ${n / total}`);
  }
});
