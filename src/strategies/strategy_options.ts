/**
 * Strategy-specific numeric options (`StrategyParams.options`): resolved against a strategy's
 * table of published defaults and checked, so that a typo or an out-of-range value is an error
 * that names the strategy, the option and the value instead of a silently used default.
 *
 * @module
 */

/** One option: its default and the range it must lie in. */
export interface OptionSpec {
  /** Published default, used when the option is absent. */
  readonly default: number;
  /** Smallest allowed value (inclusive); default 0. */
  readonly min?: number;
  /** Largest allowed value (inclusive); default no bound. */
  readonly max?: number;
  /** Whether the value must be an integer. */
  readonly integer?: boolean;
  /** One line for docs and error messages. */
  readonly doc: string;
}

/**
 * The options of `strategy` with defaults filled in. Throws a RangeError naming the strategy when
 * `given` holds an unknown name (listing the valid ones) or a value outside its spec.
 */
export function resolveOptions<K extends string>(
  strategy: string,
  specs: Readonly<Record<K, OptionSpec>>,
  given: Readonly<Record<string, number>> | undefined,
): Record<K, number> {
  const names = Object.keys(specs) as K[];
  const out = {} as Record<K, number>;
  for (const k of names) out[k] = specs[k].default;
  if (given === undefined) return out;
  for (const [k, v] of Object.entries(given)) {
    if (!Object.hasOwn(specs, k)) {
      const valid = names.length > 0 ? names.join(", ") : "none";
      throw new RangeError(`strategy ${strategy} has no option "${k}"; valid: ${valid}`);
    }
    const spec = specs[k as K];
    const min = spec.min ?? 0;
    const max = spec.max ?? Infinity;
    const ok = typeof v === "number" && Number.isFinite(v) && v >= min && v <= max &&
      (!spec.integer || Number.isInteger(v));
    if (!ok) {
      const range = max === Infinity ? `≥ ${min}` : `in [${min}, ${max}]`;
      const kind = spec.integer ? "an integer" : "a number";
      throw new RangeError(
        `strategy ${strategy} option ${k} must be ${kind} ${range}, got ${JSON.stringify(v)}`,
      );
    }
    out[k as K] = v;
  }
  return out;
}
