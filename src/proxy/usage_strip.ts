/**
 * Drops the usage-only event from an SSE stream: the router asked the engine for usage on the
 * client's behalf (`stream_options.include_usage`, which the client did not set), so the client
 * must not see the answer to a question it did not ask.
 *
 * Rule: an event is dropped when its `data:` payload is a JSON object with `choices: []` and a
 * `usage` object (OpenAI's and vLLM's final usage chunk, sent before `data: [DONE]`); every other
 * byte goes through unchanged and in order. Comments, `event:`/`id:` fields and `[DONE]` pass.
 *
 * Nothing is held back but an incomplete event: complete events (up to their blank line) go out
 * as soon as they arrived, and the bytes of an event still arriving wait for its end, which a
 * client cannot use before either. Engines write one event per chunk, so in practice nothing
 * waits. A held partial event longer than {@link MAX_HELD_BYTES} goes out as it is (no usage
 * chunk is that large), so a hostile upstream cannot make the router buffer without bound.
 *
 * Cost: one scan for the blank line per chunk; a `JSON.parse` only for an event that mentions
 * `"usage"` (with a value other than `null`) and `"choices"`.
 *
 * @module
 */

import type { BodySource } from "../http/types.ts";
import { concatBytes } from "../util/bytes.ts";

/** An event still incomplete past this many bytes is passed on without being looked at. */
export const MAX_HELD_BYTES = 65536;

const decoder = new TextDecoder();

/** `src` without its usage-only SSE events; see the module comment. */
export function dropUsageEvents(src: BodySource): BodySource {
  // The partial event's pieces, in order (copies: the upstream's chunks are not kept).
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  let ended = false;

  /** Complete events so far (what ends in a blank line) minus usage-only ones; the rest held. */
  const take = (bytes: Uint8Array): Uint8Array => {
    // Only the new bytes are searched (held ones hold no event end): linear in what arrives,
    // however finely a worker cuts its stream.
    const end = lastEventEnd(bytes, held);
    if (end === -1) {
      if (heldBytes + bytes.length > MAX_HELD_BYTES) {
        const all = concatBytes([...held, bytes]);
        held = [];
        heldBytes = 0;
        return all;
      }
      if (bytes.length > 0) held.push(bytes.slice());
      heldBytes += bytes.length;
      return EMPTY;
    }
    const events = held.length === 0
      ? bytes.subarray(0, end)
      : concatBytes([...held, bytes.subarray(0, end)]);
    held = end < bytes.length ? [bytes.slice(end)] : [];
    heldBytes = bytes.length - end;
    return withoutUsageEvents(events);
  };

  return {
    async read(): Promise<ReadableStreamReadResult<Uint8Array>> {
      while (!ended) {
        const r = await src.read();
        if (r.done) {
          ended = true;
          break;
        }
        const out = take(r.value);
        if (out.length > 0) return { done: false, value: out };
      }
      if (heldBytes > 0) {
        const rest = concatBytes(held);
        held = [];
        heldBytes = 0;
        return { done: false, value: rest };
      }
      return { done: true, value: undefined };
    },
    cancel: (reason) => src.cancel(reason),
  };
}

const EMPTY = new Uint8Array(0);

/**
 * Index in `b` just past the last blank line (`\n\n`, `\r\n\r\n` or `\r\r`) that ends in `b`,
 * or -1; `held` (the bytes before `b`) is looked at only for a blank line that began there.
 */
function lastEventEnd(b: Uint8Array, held: readonly Uint8Array[]): number {
  const before = lastBytes(held, 3);
  const at = (k: number): number | undefined => k >= 0 ? b[k] : before[before.length + k];
  for (let i = b.length - 1; i >= 0; i--) {
    const c = b[i];
    if (c === 0x0a) {
      const p = at(i - 1);
      if (p === 0x0a || (p === 0x0d && at(i - 2) === 0x0a && at(i - 3) === 0x0d)) return i + 1;
    } else if (c === 0x0d && at(i - 1) === 0x0d && (i + 1 >= b.length || b[i + 1] !== 0x0a)) {
      return i + 1;
    }
  }
  return -1;
}

/** The last `n` bytes (or fewer) of `pieces` taken together. */
function lastBytes(pieces: readonly Uint8Array[], n: number): number[] {
  const out: number[] = [];
  for (let p = pieces.length - 1; p >= 0 && out.length < n; p--) {
    const piece = pieces[p];
    for (let i = piece.length - 1; i >= 0 && out.length < n; i--) out.unshift(piece[i]);
  }
  return out;
}

/**
 * `events` (whole events, each ending in its blank line) without the usage-only ones; the bytes
 * kept are the upstream's own, not re-encoded.
 */
function withoutUsageEvents(events: Uint8Array): Uint8Array {
  if (!mentionsUsage(events)) return events;
  let out: Uint8Array[] | null = null;
  let start = 0;
  let kept = 0;
  while (start < events.length) {
    const end = nextEventEnd(events, start);
    if (
      mentionsUsage(events, start, end) && isUsageOnly(decoder.decode(events.subarray(start, end)))
    ) {
      out ??= [];
      if (kept < start) out.push(events.subarray(kept, start));
      kept = end;
    }
    start = end;
  }
  if (out === null) return events;
  if (kept < events.length) out.push(events.subarray(kept));
  return concatBytes(out);
}

/** `"usage"` as bytes. */
const USAGE_KEY = [0x22, 0x75, 0x73, 0x61, 0x67, 0x65, 0x22];

/**
 * Whether `b[from, to)` holds the bytes `"usage"` not followed by `: null` (without decoding it):
 * a stream whose every chunk carries `"usage":null` (OpenAI's with `include_usage`) is not
 * decoded and parsed chunk by chunk.
 */
function mentionsUsage(b: Uint8Array, from = 0, to = b.length): boolean {
  for (let i = b.indexOf(0x22, from); i !== -1 && i + 7 <= to; i = b.indexOf(0x22, i + 1)) {
    let j = 1;
    while (j < 7 && b[i + j] === USAGE_KEY[j]) j++;
    if (j === 7 && !nullAfter(b, i + 7, to)) return true;
  }
  return false;
}

/** Whether `b` from `at` reads `:` and then a value starting with `n` (`null`), blanks aside. */
function nullAfter(b: Uint8Array, at: number, to: number): boolean {
  at = skipBlanks(b, at, to);
  if (at >= to || b[at] !== 0x3a) return false;
  at = skipBlanks(b, at + 1, to);
  return at < to && b[at] === 0x6e;
}

/** The index of the first byte at or after `at` that is no space or tab, or `to`. */
function skipBlanks(b: Uint8Array, at: number, to: number): number {
  while (at < to && (b[at] === 0x20 || b[at] === 0x09)) at++;
  return at;
}

/** Index just past the first blank line at or after `from`, or the end of `b`. */
function nextEventEnd(b: Uint8Array, from: number): number {
  for (let i = from + 1; i < b.length; i++) {
    const c = b[i];
    if (
      c === 0x0a && (b[i - 1] === 0x0a || (b[i - 1] === 0x0d && i >= 3 && b[i - 2] === 0x0a &&
        b[i - 3] === 0x0d))
    ) return i + 1;
    if (c === 0x0d && b[i - 1] === 0x0d && (i + 1 >= b.length || b[i + 1] !== 0x0a)) return i + 1;
  }
  return b.length;
}

/** Whether one event's data is `{..., "choices": [], "usage": {...}}`. */
function isUsageOnly(event: string): boolean {
  if (event.length > MAX_HELD_BYTES) return false;
  if (!event.includes('"usage"') || !event.includes('"choices"')) return false;
  const data = event.split(/\r\n|\n|\r/).filter((l) => l.startsWith("data:"))
    .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
  try {
    const v = JSON.parse(data);
    return v !== null && typeof v === "object" && Array.isArray(v.choices) &&
      v.choices.length === 0 && v.usage !== null && typeof v.usage === "object";
  } catch {
    return false;
  }
}
