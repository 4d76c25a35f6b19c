/**
 * Request limits: the JSON nesting limit (`server.max_json_depth` → 400). The bounded body read
 * (`server.max_body_bytes` → 413, `server.read_timeout` → 408) is the HTTP server's
 * (`ServerRequest.readBody`, `src/http/server_request.ts`).
 *
 * Why a depth limit: `JSON.parse` itself copes with any depth, but deep nesting is cheap to send
 * and dear to handle: 8 MiB of `[` took V8 about 0.8 s to parse (a flat 8 MiB body: about 10 ms),
 * and engines written in Python stop at a recursion limit of 1000 with a 500, which the router
 * would count against the worker's breaker: a hostile client could open every breaker.
 *
 * Depth counts containers: `{}` is depth 1, `{"a":[1]}` depth 2. Two checks, one rule:
 * - bodies up to {@link SCAN_MIN_BYTES} are parsed first, then the parsed value is walked down to
 *   the limit ({@link valueTooDeep}): about 1 µs for a 34 KB chat body, and parsing such a body
 *   costs at most a few ms however it nests;
 * - larger bodies are scanned before parsing ({@link jsonTooDeep}), so the parser never sees deep
 *   input: the scan costs about as much as the parse (1.4 µs/KB measured), paid only by large
 *   bodies, whose prefill upstream takes far longer.
 *
 * @module
 */

import { RouterError } from "../util/errors.ts";

/** Bodies larger than this are scanned for depth before parsing; smaller ones walked after. */
export const SCAN_MIN_BYTES = 64 * 1024;

/**
 * Whether the JSON text in `b` nests containers deeper than `max`, by a scan that skips string
 * contents. Meant to run before parsing: it assumes nothing about validity and never throws.
 */
export function jsonTooDeep(b: Uint8Array, max: number): boolean {
  let depth = 0;
  const n = b.length;
  for (let i = 0; i < n; i++) {
    const c = b[i];
    if (c === 0x22) {
      // Skip to the closing quote: one not preceded by an odd number of backslashes.
      while (true) {
        i = b.indexOf(0x22, i + 1);
        if (i === -1) return false;
        let k = i - 1;
        while (b[k] === 0x5c) k--;
        if (((i - 1 - k) & 1) === 0) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/** Whether a parsed JSON value nests containers deeper than `max`. Iterative: no recursion. */
export function valueTooDeep(value: unknown, max: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  const stack: object[] = [value];
  const depths: number[] = [1];
  while (stack.length > 0) {
    const v = stack.pop()!;
    const d = depths.pop()!;
    if (d > max) return true;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const e = v[i];
        if (typeof e === "object" && e !== null) {
          stack.push(e);
          depths.push(d + 1);
        }
      }
    } else {
      for (const k in v) {
        const e = (v as Record<string, unknown>)[k];
        if (typeof e === "object" && e !== null) {
          stack.push(e);
          depths.push(d + 1);
        }
      }
    }
  }
  return false;
}

/** The 400 for a body nested deeper than `max`. */
export function tooDeepError(max: number): RouterError {
  return new RouterError(
    "bad_request",
    `Request body nests JSON deeper than the limit of ${max} levels`,
    null,
    "json_too_deep",
  );
}
