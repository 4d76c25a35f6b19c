/**
 * Answer lengths: how many tokens a simulated answer has when nothing fixes it.
 *
 * Rule: a real model stops at end-of-sequence (EOS), mostly well before `max_tokens`; the length
 * drawn here is then capped at the request's `max_tokens` (the answer finishes with
 * `finish_reason: "length"` when it reaches the cap, `"stop"` otherwise). Models, as written on
 * the command line:
 * - `geometric:MEAN`: after every token the model ends the answer with probability 1 / MEAN,
 *   whatever it wrote before (a constant EOS hazard); lengths ≥ 1, mean MEAN before the cap. The
 *   default is `geometric:200`: the Mooncake synthetic trace's answers average 149 tokens, and
 *   LMSYS-Chat-1M's responses 215 (docs/simulated-engine.md).
 * - `lognormal:MEAN:SIGMA`: the log of the length is normal with deviation SIGMA, scaled so that
 *   the mean is MEAN (many short answers, a long tail); rounded, at least 1.
 * - `fixed:N`: every answer has N tokens.
 * - `max`: every answer runs to `max_tokens` (vLLM's `ignore_eos`; the sim before EOS existed).
 *
 * Cost: one or two draws from the injected rng per answer.
 *
 * @module
 */

import type { Rng } from "../util/rng.ts";

/** A distribution of answer lengths in tokens, before the `max_tokens` cap. */
export type AnswerLengthModel =
  | { readonly kind: "max" }
  | { readonly kind: "fixed"; readonly tokens: number }
  | { readonly kind: "geometric"; readonly mean: number }
  | { readonly kind: "lognormal"; readonly mean: number; readonly sigma: number };

/** The default model: a constant EOS hazard with a mean of 200 tokens. */
export const DEFAULT_ANSWER_LENGTH: AnswerLengthModel = { kind: "geometric", mean: 200 };

/** Forms `parseAnswerLength` accepts, for help texts. */
export const ANSWER_LENGTH_FORMS = "geometric:MEAN, lognormal:MEAN:SIGMA, fixed:N or max";

/** Parses `geometric:200`, `lognormal:200:1`, `fixed:64` or `max`; throws naming the spec. */
export function parseAnswerLength(spec: string): AnswerLengthModel {
  const [kind, ...args] = spec.trim().split(":");
  const nums = args.map((a) => (a.trim() === "" ? NaN : Number(a)));
  const bad = () =>
    new RangeError(`answer length must be one of ${ANSWER_LENGTH_FORMS}, got "${spec}"`);
  switch (kind) {
    case "max":
      if (nums.length !== 0) throw bad();
      return { kind: "max" };
    case "fixed":
      if (nums.length !== 1 || !Number.isSafeInteger(nums[0]) || nums[0] < 1) throw bad();
      return { kind: "fixed", tokens: nums[0] };
    case "geometric":
      if (nums.length !== 1 || !(nums[0] >= 1) || !Number.isFinite(nums[0])) throw bad();
      return { kind: "geometric", mean: nums[0] };
    case "lognormal":
      if (
        nums.length !== 2 || !(nums[0] >= 1) || !Number.isFinite(nums[0]) || !(nums[1] >= 0) ||
        !(nums[1] <= 4)
      ) throw bad();
      return { kind: "lognormal", mean: nums[0], sigma: nums[1] };
    default:
      throw bad();
  }
}

/** The spec string of `m` (`parseAnswerLength(formatAnswerLength(m))` gives `m` back). */
export function formatAnswerLength(m: AnswerLengthModel): string {
  switch (m.kind) {
    case "max":
      return "max";
    case "fixed":
      return `fixed:${m.tokens}`;
    case "geometric":
      return `geometric:${m.mean}`;
    case "lognormal":
      return `lognormal:${m.mean}:${m.sigma}`;
  }
}

/** Draws one uncapped length ≥ 1 (`Infinity` for `max`). */
export function drawAnswerLength(m: AnswerLengthModel, rng: Rng): number {
  switch (m.kind) {
    case "max":
      return Infinity;
    case "fixed":
      return m.tokens;
    case "geometric": {
      if (m.mean <= 1) return 1;
      // Inverse CDF of the geometric law on {1, 2, ...} with p = 1 / mean; u in (0, 1].
      const u = 1 - rng.next();
      return 1 + Math.floor(Math.log(u) / Math.log(1 - 1 / m.mean));
    }
    case "lognormal": {
      // Box–Muller; mean of exp(N(mu, s²)) is exp(mu + s² / 2).
      const u1 = 1 - rng.next();
      const u2 = rng.next();
      const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      const mu = Math.log(m.mean) - m.sigma * m.sigma / 2;
      return Math.max(1, Math.round(Math.exp(mu + m.sigma * z)));
    }
  }
}
