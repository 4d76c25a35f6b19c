/**
 * Units in config values: Go-style durations (`"150ms"`, `"1.5s"`, `"1h30m"`) and byte sizes
 * (`"8MiB"`, `"512KiB"`, `"1MB"`). Both parsers are strict: they throw on anything they do not
 * fully understand rather than guess, and the loader turns the throw into a config error with the
 * key's path. Byte sizes live here too because they are the same kind of problem (a number with a
 * unit suffix) and share the number grammar; a second file for ten lines would only scatter it.
 *
 * @module
 */

/** Milliseconds per duration unit. `us` and `µs` are both accepted, as in Go. */
const DURATION_UNITS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3, // U+00B5 micro sign
  "μs": 1e-3, // U+03BC Greek mu, which Go also accepts
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** Bytes per size unit: SI (powers of 1000) and IEC (powers of 1024). */
const SIZE_UNITS: Readonly<Record<string, number>> = {
  B: 1,
  kB: 1e3,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
};

const NUMBER = String.raw`(?:\d+(?:\.\d*)?|\.\d+)`;
const DURATION_PART = new RegExp(`(${NUMBER})(ns|us|µs|μs|ms|s|m|h)`, "y");
const SIZE = new RegExp(`^(${NUMBER}) ?([A-Za-z]+)$`);

/**
 * Every duration string `parseDuration` accepts, as an ECMAScript pattern (for the config's JSON
 * Schema): built from the same parts as the parser, so the two cannot disagree.
 */
export const DURATION_PATTERN = `^(?:0|(?:${NUMBER}(?:${
  Object.keys(DURATION_UNITS).join("|")
}))+)$`;

/** Every byte-size string `parseByteSize` reads, as an ECMAScript pattern (see DURATION_PATTERN). */
export const SIZE_PATTERN = `^${NUMBER} ?(?:${Object.keys(SIZE_UNITS).join("|")})$`;

/**
 * The longest duration a config value may take: 2³¹ − 1 ms, about 24.8 days. Every duration in
 * the config ends up in a timer, and a longer `setTimeout` fires after 1 ms instead.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** What a config error says about {@link MAX_DURATION_MS}. */
export const MAX_DURATION_TEXT = "at most 2147483647 ms (about 24.8 days, the longest timer)";

/**
 * Parses a duration to milliseconds.
 *
 * A string is a sequence of decimal numbers each with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`,
 * `h`), summed: `"1h30m"`, `"1.5s"`, `"150ms"`; `"0"` is the one unitless string accepted (as in
 * Go). A plain number means seconds, so YAML `timeout: 2` is two seconds. Negative, non-finite and
 * empty values throw. The result is rounded to whole nanoseconds to drop float noise
 * (`"1.1s"` → 1100, not 1100.0000000000002).
 *
 * @throws {RangeError} when `input` is not a valid non-negative duration.
 */
export function parseDuration(input: string | number): number {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0) throw new RangeError(`invalid duration ${input}`);
    return roundNs(input * 1_000);
  }
  if (input === "0") return 0;
  let total = 0;
  let at = 0;
  while (at < input.length) {
    DURATION_PART.lastIndex = at;
    const m = DURATION_PART.exec(input);
    if (m === null) throw new RangeError(`invalid duration ${JSON.stringify(input)}`);
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    at = DURATION_PART.lastIndex;
  }
  if (at === 0 || !Number.isFinite(total)) {
    throw new RangeError(`invalid duration ${JSON.stringify(input)}`);
  }
  return roundNs(total);
}

/**
 * Parses a byte size to a whole number of bytes.
 *
 * A number must be a non-negative safe integer. A string is a decimal number, an optional space and
 * a unit: `B`, `kB`/`KB`, `MB`, `GB` (powers of 1000) or `KiB`, `MiB`, `GiB` (powers of 1024);
 * `"1.5MiB"` is fine, `"1.5B"` is not (not a whole number of bytes).
 *
 * @throws {RangeError} when `input` is not a valid size.
 */
export function parseByteSize(input: string | number): number {
  let bytes: number;
  if (typeof input === "number") {
    bytes = input;
  } else {
    const m = SIZE.exec(input);
    const unit = m === null ? undefined : SIZE_UNITS[m[2]];
    if (m === null || unit === undefined) {
      throw new RangeError(`invalid size ${JSON.stringify(input)}`);
    }
    // Round away float noise from the decimal multiply ("0.3KB" is 300, not 299.99999999999994).
    const exact = Number(m[1]) * unit;
    bytes = Math.abs(exact - Math.round(exact)) < 1e-6 ? Math.round(exact) : exact;
  }
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new RangeError(`invalid size ${JSON.stringify(input)}`);
  }
  return bytes;
}

function roundNs(ms: number): number {
  return Math.round(ms * 1e6) / 1e6;
}
