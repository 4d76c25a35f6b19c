/**
 * Statistics for benchmark reports.
 *
 * - Percentiles: linear interpolation between closest ranks, numpy's default (`method="linear"`):
 *   for sorted x of length n and p in [0, 100], h = (n − 1)·p/100, result
 *   x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]).
 * - Standard deviation: sample (n − 1 denominator); 0 for fewer than two values.
 * - Confidence intervals: percentile bootstrap. Resample the items with replacement B times
 *   (default 1000) with a seeded RNG, compute the statistic on each resample, and take the
 *   (1−level)/2 and (1+level)/2 percentiles of those B values. Cost O(B · cost(stat)).
 * - Slope: ordinary least squares of y on x.
 *
 * @module
 */

import { SeededRng } from "../util/rng.ts";
import type { Rng } from "../util/rng.ts";

/** Percentile of already sorted values (ascending, no NaN); NaN when empty. */
export function percentileSorted(s: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${p}`);
  const n = s.length;
  if (n === 0) return NaN;
  const h = (n - 1) * p / 100;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  const w = h - lo;
  // At an exact rank the value itself: 0 · (∞ − x) would be NaN.
  return w === 0 ? s[lo] : s[lo] + w * (s[hi] - s[lo]);
}

/**
 * Percentile (p in [0, 100]) of unsorted values, numpy's linear method; NaN when empty. A NaN
 * among the values is a RangeError: it would sort last and quietly become the top percentiles.
 */
export function percentile(xs: readonly number[], p: number): number {
  const s = Float64Array.from(xs).sort();
  if (s.length > 0 && Number.isNaN(s[s.length - 1])) {
    throw new RangeError("percentile of values that include NaN");
  }
  return percentileSorted(s, p);
}

/** Arithmetic mean; NaN when empty. */
export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample standard deviation (n − 1); 0 for fewer than two values. */
export function stddev(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return Math.sqrt(s / (xs.length - 1));
}

/** A point estimate with its confidence interval. */
export interface Estimate {
  /** The statistic on the full sample. */
  value: number;
  /** Lower bound of the interval. */
  lo: number;
  /** Upper bound of the interval. */
  hi: number;
}

/** Options of `bootstrap`. */
export interface BootstrapOptions {
  /** Resamples (default 1000). */
  resamples?: number;
  /** Confidence level (default 0.95). */
  level?: number;
  /** Random source (default `SeededRng(1)`, so reports are reproducible). */
  rng?: Rng;
}

/**
 * Percentile-bootstrap confidence interval of `stat` over `items`. Returns NaNs for an empty
 * sample; a one-item sample gives a zero-width interval.
 */
export function bootstrap<T>(
  items: readonly T[],
  stat: (sample: readonly T[]) => number,
  opts: BootstrapOptions = {},
): Estimate {
  return bootstrapMany([items], ([sample]) => stat(sample), opts);
}

/** Bootstrap CI of the p-th percentile of `xs`. */
export function percentileCI(xs: readonly number[], p: number, opts?: BootstrapOptions): Estimate {
  return bootstrap(xs, (s) => percentile(s, p), opts);
}

/** Bootstrap CI of the mean of `xs`. */
export function meanCI(xs: readonly number[], opts?: BootstrapOptions): Estimate {
  return bootstrap(xs, mean, opts);
}

/** Prompt and cached token counts of one request. */
export interface TokenPair {
  prompt: number;
  cached: number;
}

/** Σ cached / Σ prompt; NaN when Σ prompt is 0. */
export function cachedShare(pairs: readonly TokenPair[]): number {
  let p = 0;
  let c = 0;
  for (const x of pairs) {
    p += x.prompt;
    c += x.cached;
  }
  return p === 0 ? NaN : c / p;
}

/** KV-cached share with a bootstrap CI over requests (each request resampled as a pair). */
export function cachedShareCI(pairs: readonly TokenPair[], opts?: BootstrapOptions): Estimate {
  return bootstrap(pairs, cachedShare, opts);
}

/** Least-squares slope of y on x; NaN with fewer than two distinct x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  if (xs.length !== ys.length) {
    throw new RangeError(`slope needs equal lengths, got ${xs.length} and ${ys.length}`);
  }
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) * (xs[i] - mx);
  }
  return sxx === 0 ? NaN : sxy / sxx;
}

/**
 * Percentile-bootstrap CI of a statistic of several independent samples, each resampled with
 * replacement on its own in every round (e.g. a difference of medians, or of slopes). NaNs when
 * any sample is empty.
 */
export function bootstrapMany<T>(
  samples: readonly (readonly T[])[],
  stat: (samples: readonly (readonly T[])[]) => number,
  opts: BootstrapOptions = {},
): Estimate {
  if (samples.some((x) => x.length === 0)) return { value: NaN, lo: NaN, hi: NaN };
  const value = stat(samples);
  const resamples = opts.resamples ?? 1000;
  const level = opts.level ?? 0.95;
  const rng = opts.rng ?? new SeededRng(1);
  const stats = new Float64Array(resamples);
  const drawn = samples.map((x) => new Array<T>(x.length));
  for (let r = 0; r < resamples; r++) {
    for (let k = 0; k < samples.length; k++) {
      const src = samples[k];
      const dst = drawn[k];
      for (let i = 0; i < src.length; i++) dst[i] = src[rng.int(src.length)];
    }
    stats[r] = stat(drawn);
  }
  stats.sort();
  return {
    value,
    lo: percentileSorted(stats, 100 * (1 - level) / 2),
    hi: percentileSorted(stats, 100 * (1 + level) / 2),
  };
}
