import assert from "node:assert/strict";
import { A100_7B_PRIORS } from "../strategies/cost_model.ts";
import { LoadTracker } from "./load_tracker.ts";

/** Round priors: 10 tokens/ms, 10 ms steps, no decode term. */
const PRIORS = { prefillTokensPerMs: 10, stepOverheadMs: 10, decodeMsPerSeq: 0, decodeStepMs: 10 };

function close(actual: number, expected: number, rel: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= Math.abs(expected) * rel,
    `${what}: ${actual}, expected ${expected} ± ${rel * 100}%`,
  );
}

/** One request alone on an idle `worker` of a tracker, served at `rate` tokens/ms. */
function serve(
  t: LoadTracker,
  worker: number,
  uncached: number,
  rate: number,
  step = 10,
  completion = 64,
): void {
  const k = t.onDispatch(worker, uncached, 0);
  const ttft = step + uncached / rate; // one step's fixed part, as the engine's steps have
  t.onFirstToken(k, ttft);
  t.onUsage(k, uncached, 0);
  t.onDone(k, { elapsedMs: ttft + (completion - 1) * step, completionTokens: completion });
}

Deno.test("load tracker: accounting through prefill, decode and done", () => {
  const t = new LoadTracker({ workers: 2, priors: PRIORS });
  const a = t.onDispatch(0, 1000, 600);
  const b = t.onDispatch(0, 500, 0);
  let f = t.figures(0);
  assert.deepEqual(
    [f.pendingPrefillTokens, f.prefilling, f.decoding, f.activeTokens, f.inflight],
    [900, 2, 0, 1500, 2],
  );
  t.onFirstToken(a, 50);
  f = t.figures(0);
  assert.deepEqual([f.pendingPrefillTokens, f.prefilling, f.decoding], [500, 1, 1]);
  // b fails before its first token (or is retried elsewhere): its prefill leaves with it.
  t.onDone(b);
  f = t.figures(0);
  assert.deepEqual([f.pendingPrefillTokens, f.prefilling, f.activeTokens, f.inflight], [
    0,
    0,
    1000,
    1,
  ]);
  t.onDone(a);
  f = t.figures(0);
  assert.deepEqual(
    [f.pendingPrefillTokens, f.prefilling, f.decoding, f.activeTokens, f.inflight],
    [0, 0, 0, 0, 0],
  );
  // Late or repeated events change nothing: counts never go negative.
  t.onDone(a);
  t.onFirstToken(b, 10);
  t.onDone(b);
  f = t.figures(0);
  assert.deepEqual([f.prefilling, f.decoding, f.inflight], [0, 0, 0]);
  assert.equal(t.figures(1).inflight, 0);
});

Deno.test("load tracker: a predicted cached length is capped at the prompt", () => {
  const t = new LoadTracker({ workers: 1, priors: PRIORS });
  const k = t.onDispatch(0, 100, 400);
  assert.equal(k.uncachedTokens, 0);
  assert.equal(t.load(0).pendingPrefillTokens, 0);
  const n = t.onDispatch(0, Number.NaN, -5);
  assert.equal(n.promptTokens, 0);
});

Deno.test("load tracker: before any observation, load() shows the priors", () => {
  const t = new LoadTracker({ workers: 1 });
  assert.deepEqual(t.load(0), {
    pendingPrefillTokens: 0,
    decoding: 0,
    prefilling: 0,
    prefillTokensPerMs: A100_7B_PRIORS.prefillTokensPerMs,
    decodeStepMs: A100_7B_PRIORS.decodeStepMs,
    stepOverheadMs: A100_7B_PRIORS.stepOverheadMs,
    decodeMsPerSeq: A100_7B_PRIORS.decodeMsPerSeq,
    activeTokens: 0,
  });
});

Deno.test("load tracker: learns a worker's prefill rate and decode step from observations", () => {
  const t = new LoadTracker({ workers: 1, priors: PRIORS });
  for (let i = 0; i < 300; i++) serve(t, 0, 500 + (i % 7) * 150, 4, 18);
  const f = t.figures(0);
  close(f.prefillTokensPerMs, 4, 0.02, "rate");
  close(f.decodeStepMs, 18, 0.01, "decode step");
  assert.equal(f.prefillSamples, 300);
  assert.equal(f.decodeSamples, 300);
});

Deno.test("load tracker: learns a step's fixed and per-sequence parts from decode steps", () => {
  const t = new LoadTracker({ workers: 2 });
  // An engine whose steps take 18 ms + 0.8 ms per decoding sequence (a 14B model at long
  // contexts), with 0 to 11 sequences decoding beside each request.
  for (let i = 0; i < 400; i++) {
    const beside = i % 12;
    const held = Array.from({ length: beside }, () => {
      const k = t.onDispatch(0, 100, 0);
      t.onFirstToken(k, 20);
      return k;
    });
    const k = t.onDispatch(0, 100, 0);
    t.onFirstToken(k, 30);
    const step = 18 + 0.8 * (beside + 1);
    t.onDone(k, { elapsedMs: 30 + 63 * step, completionTokens: 64 });
    for (const h of held) t.onDone(h);
  }
  const f = t.load(0);
  close(f.stepOverheadMs!, 18, 0.05, "step overhead");
  close(f.decodeMsPerSeq!, 0.8, 0.1, "per sequence");
  assert.deepEqual([t.load(1).stepOverheadMs, t.load(1).decodeMsPerSeq], [
    f.stepOverheadMs,
    f.decodeMsPerSeq,
  ], "pooled over workers");
});

Deno.test("load tracker: the queue a request waited behind counts as work", () => {
  // Worker at 5 tokens/ms. Each round: A (1000 uncached) dispatched on an idle worker, then B
  // (500) while A is still prefilling; B's TTFT covers A's prefill and its own, in one more step.
  const t = new LoadTracker({ workers: 1, priors: PRIORS });
  for (let i = 0; i < 300; i++) {
    const a = t.onDispatch(0, 1000, 0);
    const b = t.onDispatch(0, 500, 0);
    t.onFirstToken(a, 10 + 1000 / 5);
    // Fixed part for B: half a step (busy) + one overhead.
    t.onFirstToken(b, 5 + 10 + 1500 / 5);
    t.onDone(a);
    t.onDone(b);
  }
  close(t.load(0).prefillTokensPerMs, 5, 0.01, "rate");
});

Deno.test("load tracker: cached_tokens reports replace the prediction, in router units", () => {
  // The router predicted 800 of 1000 tokens cached; the engine had nothing (its cache evicted
  // them) and took 10 + 1000/10 ms. With the reports the rate stays right; without them the same
  // TTFT looks like 200 tokens in 100 ms.
  const withUsage = new LoadTracker({ workers: 1, priors: PRIORS });
  const without = new LoadTracker({ workers: 1, priors: PRIORS });
  for (let i = 0; i < 200; i++) {
    for (const t of [withUsage, without]) {
      const k = t.onDispatch(0, 1000, 800);
      t.onFirstToken(k, 110);
      // The engine counts 10% more tokens than the router's estimate: rescaled, not mixed in.
      if (t === withUsage) assert.equal(t.onUsage(k, 1100, 0), -800);
      t.onDone(k);
    }
  }
  close(withUsage.load(0).prefillTokensPerMs, 10, 0.01, "with usage");
  close(without.load(0).prefillTokensPerMs, 2, 0.05, "without usage");
});

Deno.test("load tracker: onUsage returns the prediction error and rejects bad reports", () => {
  const t = new LoadTracker({ workers: 1, priors: PRIORS });
  const k = t.onDispatch(0, 1000, 800);
  assert.equal(t.onUsage(k, 2000, 1000), -300);
  assert.equal(t.onUsage(k, 1000, 900), 100);
  assert.ok(Number.isNaN(t.onUsage(k, 0, 0)));
  assert.ok(Number.isNaN(t.onUsage(k, 100, 101)));
});

Deno.test("load tracker: unmeasured workers take the pool's rate; a slower one drifts apart", () => {
  const t = new LoadTracker({ workers: 3, priors: PRIORS });
  // Workers 0 and 1 both run at 4 tokens/ms (prior says 10); worker 2 is never measured.
  for (let i = 0; i < 200; i++) {
    serve(t, 0, 800, 4);
    serve(t, 1, 800, 4);
  }
  close(t.load(2).prefillTokensPerMs, 4, 0.02, "unmeasured worker");
  // Worker 1 turns out slower: 2 tokens/ms.
  for (let i = 0; i < 200; i++) serve(t, 1, 800, 2);
  const r0 = t.load(0).prefillTokensPerMs;
  const r1 = t.load(1).prefillTokensPerMs;
  assert.ok(r1 < 2.4, `slow worker ${r1}`);
  assert.ok(r0 > r1 * 1.3, `fast ${r0} vs slow ${r1}`);
});

Deno.test("load tracker: zero-time samples cannot push the rate past 16 × the prior", () => {
  const t = new LoadTracker({ workers: 1, priors: PRIORS });
  for (let i = 0; i < 500; i++) {
    const k = t.onDispatch(0, 5000, 0);
    t.onFirstToken(k, 1); // below the fixed part: time 0
    t.onDone(k);
  }
  assert.equal(t.load(0).prefillTokensPerMs, 160);
});

Deno.test("load tracker: no TTFT, no sample; a one-token answer gives no decode step", () => {
  const t = new LoadTracker({ workers: 1, priors: PRIORS });
  const a = t.onDispatch(0, 1000, 0);
  t.onDone(a, { elapsedMs: 500, completionTokens: 10 });
  const b = t.onDispatch(0, 1000, 0);
  t.onFirstToken(b, 30);
  t.onDone(b, { elapsedMs: 30, completionTokens: 1 });
  const f = t.figures(0);
  assert.equal(f.prefillSamples, 1);
  assert.equal(f.decodeSamples, 0);
});

Deno.test("load tracker: option and index errors", () => {
  assert.throws(() => new LoadTracker({ workers: -1 }), /workers must be a non-negative integer/);
  assert.throws(
    () => new LoadTracker({ workers: 1, priors: { prefillTokensPerMs: 0 } }),
    /prior prefillTokensPerMs must be > 0, got 0/,
  );
  assert.throws(
    () => new LoadTracker({ workers: 1, priors: { stepOverheadMs: -1 } }),
    /prior stepOverheadMs must be a finite number ≥ 0, got -1/,
  );
  assert.throws(() => new LoadTracker({ workers: 1, alpha: 0 }), /alpha must be in \(0, 1\]/);
  assert.throws(() => new LoadTracker({ workers: 1, horizonTokens: 0 }), /horizonTokens/);
  assert.throws(() => new LoadTracker({ workers: 1, priorTokens: 0 }), /priorTokens/);
  const t = new LoadTracker({ workers: 2 });
  assert.equal(t.workers, 2);
  assert.throws(() => t.load(2), { message: "worker index must be in [0, 2), got 2" });
  assert.throws(() => t.onDispatch(-1, 1, 0), /worker index must be in \[0, 2\), got -1/);
});

Deno.test("load tracker: remap keeps kept workers' load and learning under their new index", () => {
  const t = new LoadTracker({ workers: 2, priors: PRIORS });
  for (let i = 0; i < 20; i++) serve(t, 1, 4000, 40); // worker 1 is fast, and learned so
  const learned = t.load(1).prefillTokensPerMs;
  assert.ok(learned > 20, `learned ${learned}`);
  const held = t.onDispatch(1, 1000, 200); // still prefilling at the reload

  // Reload: old worker 1 becomes worker 0, old worker 0 is removed, a new worker 1 joins.
  const next = t.remap([1, null]);
  assert.equal(next.workers, 2);
  assert.equal(next.load(0).prefillTokensPerMs, learned);
  assert.deepEqual(
    [next.load(0).prefilling, next.load(0).pendingPrefillTokens, next.load(0).activeTokens],
    [1, 800, 1000],
  );
  assert.equal(next.figures(1).inflight, 0, "the new worker starts empty");
  assert.ok(
    next.load(1).prefillTokensPerMs > 2 * PRIORS.prefillTokensPerMs,
    "the new worker takes the pool's rate, which kept what was learned (a fresh pool: the prior)",
  );
  // A ticket issued before the reload settles on its worker, through either tracker.
  next.onFirstToken(held, 50);
  assert.deepEqual([next.load(0).prefilling, next.load(0).decoding], [0, 1]);
  t.onDone(held);
  assert.equal(next.figures(0).inflight, 0);
  assert.equal(next.figures(1).inflight, 0);
});
