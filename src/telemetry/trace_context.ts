/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate`
 * headers, read strictly and written in version 00.
 *
 * `traceparent` = `version "-" trace-id "-" parent-id "-" trace-flags`, all lower-case hex:
 * - version: 2 digits, `ff` forbidden. Version `00` is exactly 55 characters; anything after is
 *   invalid. A higher (future) version is read by its first 55 characters, which must be followed
 *   by the end of the value or a `-` (the spec's rule for versions a receiver does not know).
 * - trace-id: 32 digits, not all zero; parent-id: 16 digits, not all zero; flags: 2 digits, bit 0
 *   `sampled`, bit 1 `random` (Level 2); other bits are ignored and not passed on.
 * - Upper-case hex is invalid (the grammar is `HEXDIGLC`), and so are several `traceparent` fields
 *   (joined with `, ` they fail the length or the `-` check).
 *
 * `tracestate` = up to 32 `key=value` members separated by `,` with optional spaces or tabs; keys
 * `lcalpha 0*255(lcalpha / digit / _ - * /)` or `tenant@system`; values up to 256 printable ASCII
 * characters but `,` and `=`, not ending in a space; no key twice. Empty members are skipped. Any
 * violation discards the whole header (it is not recorded nor sent on), and so does an invalid
 * `traceparent`. A valid value over 512 characters is shortened as the spec advises: members over
 * 128 characters go first, then members from the end.
 *
 * Cost: one pass over the value, no regular expression for `traceparent`.
 *
 * @module
 */

/** A parent span context taken from a valid `traceparent`. */
export interface ParentContext {
  readonly traceId: string;
  readonly spanId: string;
  /** Flags as received (bit 0 sampled, bit 1 random). */
  readonly flags: number;
}

/** Flag bit: the caller recorded its span. */
export const FLAG_SAMPLED = 0x01;
/** Flag bit (Level 2): the trace id's low 56 bits are random. */
export const FLAG_RANDOM = 0x02;

/** Length of a version-00 `traceparent`. */
const TRACEPARENT_LENGTH = 55;

/** The parent context of a `traceparent` value, or null when it is invalid; see the module. */
export function parseTraceparent(value: string): ParentContext | null {
  if (value.length < TRACEPARENT_LENGTH) return null;
  const v0 = hexDigit(value.charCodeAt(0));
  const v1 = hexDigit(value.charCodeAt(1));
  if (v0 < 0 || v1 < 0 || (v0 === 15 && v1 === 15)) return null;
  if (v0 === 0 && v1 === 0) {
    if (value.length !== TRACEPARENT_LENGTH) return null;
  } else if (value.length > TRACEPARENT_LENGTH && value.charCodeAt(TRACEPARENT_LENGTH) !== DASH) {
    return null;
  }
  if (value.charCodeAt(2) !== DASH || value.charCodeAt(35) !== DASH) return null;
  if (value.charCodeAt(52) !== DASH) return null;
  if (!lowerHexNonZero(value, 3, 35) || !lowerHexNonZero(value, 36, 52)) return null;
  const f0 = hexDigit(value.charCodeAt(53));
  const f1 = hexDigit(value.charCodeAt(54));
  if (f0 < 0 || f1 < 0) return null;
  return {
    traceId: value.slice(3, 35),
    spanId: value.slice(36, 52),
    flags: ((f0 << 4) | f1) & (FLAG_SAMPLED | FLAG_RANDOM),
  };
}

/** A version-00 `traceparent` value. */
export function formatTraceparent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${flags < 16 ? "0" : ""}${flags.toString(16)}`;
}

/** Most members a `tracestate` may hold. */
const MAX_MEMBERS = 32;
/** Longest `tracestate` sent on, characters. */
export const MAX_TRACESTATE_CHARS = 512;
/** Members longer than this go first when a `tracestate` is shortened. */
const LONG_MEMBER_CHARS = 128;

const SIMPLE_KEY = /^[a-z][a-z0-9_\-*/]{0,255}$/;
const TENANT_KEY = /^[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}$/;
/** A value: printable ASCII but `,` and `=`, the last one not a space. */
const VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * The `tracestate` to record and send on, or null when `value` is null, empty or invalid; see the
 * module comment.
 */
export function parseTracestate(value: string | null): string | null {
  if (value === null) return null;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of value.split(",")) {
    const m = trimOws(raw);
    if (m === "") continue;
    const eq = m.indexOf("=");
    if (eq <= 0) return null;
    const key = m.slice(0, eq);
    if (!(SIMPLE_KEY.test(key) || TENANT_KEY.test(key)) || keys.has(key)) return null;
    if (!VALUE.test(m.slice(eq + 1))) return null;
    keys.add(key);
    members.push(m);
    if (members.length > MAX_MEMBERS) return null;
  }
  if (members.length === 0) return null;
  return shorten(members);
}

/** `members` joined, shortened to {@link MAX_TRACESTATE_CHARS} as the spec advises. */
function shorten(members: string[]): string | null {
  let joined = members.join(",");
  if (joined.length <= MAX_TRACESTATE_CHARS) return joined;
  let kept = members.filter((m) => m.length <= LONG_MEMBER_CHARS);
  joined = kept.join(",");
  while (joined.length > MAX_TRACESTATE_CHARS) {
    kept = kept.slice(0, -1);
    joined = kept.join(",");
  }
  return kept.length === 0 ? null : joined;
}

const DASH = 0x2d;

/** The value of a lower-case hex digit, or -1. */
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** Whether `s[from, to)` is lower-case hex with at least one digit not zero. */
function lowerHexNonZero(s: string, from: number, to: number): boolean {
  let any = 0;
  for (let i = from; i < to; i++) {
    const d = hexDigit(s.charCodeAt(i));
    if (d < 0) return false;
    any |= d;
  }
  return any !== 0;
}

/** `s` without leading and trailing spaces and tabs (HTTP's OWS). */
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--;
  return s.slice(a, b);
}
