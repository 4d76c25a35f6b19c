/**
 * Ended spans → an OTLP/HTTP JSON export request (`ExportTraceServiceRequest`, protobuf JSON
 * mapping as the OTLP spec amends it): ids as lower-case hex (not base64), enums as integers,
 * 64-bit integers (times, `intValue`) as decimal strings, field names in lowerCamelCase. One
 * resource and one scope per request.
 *
 * Span `flags` carry the W3C flags in bits 0-7 and, in bits 8-9, whether the parent is remote
 * (`HAS_IS_REMOTE` 0x100, `IS_REMOTE` 0x200), so a backend can tell where the router's trace was
 * continued from a client's.
 *
 * Cost: about 1.5-5 µs a span on the project's 2-core machine (`tracer_bench.ts`, a 512-span
 * batch), paid in the exporter's timer, not by the request that ended the span.
 *
 * @module
 */

import type { AttrValue } from "./types.ts";

/** OTLP `SpanKind` values used by the router. */
export const SPAN_KIND_SERVER = 2;
export const SPAN_KIND_CLIENT = 3;

/** OTLP `Status.code` values. */
export const STATUS_UNSET = 0;
export const STATUS_ERROR = 2;

/** An ended span as the exporter holds it until it is sent. */
export interface SpanRecord {
  readonly traceId: string;
  readonly spanId: string;
  /** Null for a root span. */
  readonly parentSpanId: string | null;
  readonly parentRemote: boolean;
  readonly traceState: string | null;
  readonly name: string;
  readonly kind: number;
  /** W3C flags sent on (bit 0 sampled, bit 1 random). */
  readonly flags: number;
  /** Epoch milliseconds (fractional). */
  readonly startMs: number;
  readonly endMs: number;
  /** Keys and values alternating. */
  readonly attrs: readonly (string | AttrValue)[];
  readonly statusCode: number;
  readonly statusMessage: string;
}

/** An OTLP `KeyValue`. */
interface KeyValue {
  key: string;
  value: { stringValue: string } | { intValue: string } | { doubleValue: number } | {
    boolValue: boolean;
  };
}

/** The resource and scope shared by every span of a tracer, encoded once. */
export interface ExportHead {
  readonly resource: readonly KeyValue[];
  readonly scopeName: string;
  readonly scopeVersion: string;
}

/** An {@link ExportHead} from resource attributes. */
export function exportHead(
  resource: Readonly<Record<string, string>>,
  scopeName: string,
  scopeVersion: string,
): ExportHead {
  return {
    resource: Object.entries(resource).map(([key, v]) => keyValue(key, v)),
    scopeName,
    scopeVersion,
  };
}

/** The JSON body of an export request holding `spans`. */
export function encodeTraces(head: ExportHead, spans: readonly SpanRecord[]): string {
  return encodeRequest(head, [encodeSpans(spans)]);
}

/**
 * `spans` as JSON array elements without the brackets (`{…},{…}`): a piece of an export request,
 * so that a large batch can be encoded a slice at a time (see `exporter.ts`).
 */
export function encodeSpans(spans: readonly SpanRecord[]): string {
  return JSON.stringify(spans.map(encodeSpan)).slice(1, -1);
}

/** The JSON body of an export request whose spans are `pieces` (from {@link encodeSpans}). */
export function encodeRequest(head: ExportHead, pieces: readonly string[]): string {
  const scope = JSON.stringify({ name: head.scopeName, version: head.scopeVersion });
  return `{"resourceSpans":[{"resource":{"attributes":${JSON.stringify(head.resource)}},` +
    `"scopeSpans":[{"scope":${scope},"spans":[${pieces.filter((p) => p !== "").join(",")}]}]}]}`;
}

function encodeSpan(s: SpanRecord): Record<string, unknown> {
  const attributes: KeyValue[] = [];
  for (let i = 0; i < s.attrs.length; i += 2) {
    attributes.push(keyValue(s.attrs[i] as string, s.attrs[i + 1]));
  }
  const out: Record<string, unknown> = {
    traceId: s.traceId,
    spanId: s.spanId,
    name: s.name,
    kind: s.kind,
    startTimeUnixNano: unixNano(s.startMs),
    endTimeUnixNano: unixNano(s.endMs),
    attributes,
    status: s.statusCode === STATUS_UNSET
      ? {}
      : s.statusMessage === ""
      ? { code: s.statusCode }
      : { code: s.statusCode, message: s.statusMessage },
    flags: (s.flags & 0xff) | 0x100 | (s.parentRemote ? 0x200 : 0),
  };
  if (s.parentSpanId !== null) out.parentSpanId = s.parentSpanId;
  if (s.traceState !== null) out.traceState = s.traceState;
  return out;
}

function keyValue(key: string, v: AttrValue): KeyValue {
  if (typeof v === "string") return { key, value: { stringValue: v } };
  if (typeof v === "boolean") return { key, value: { boolValue: v } };
  return Number.isSafeInteger(v)
    ? { key, value: { intValue: String(v) } }
    : { key, value: { doubleValue: v } };
}

/**
 * Epoch milliseconds (fractional, ≥ 0) as a decimal string of nanoseconds. Built from the whole
 * milliseconds and the rounded nanoseconds left over: the product itself would pass 2^53.
 */
export function unixNano(ms: number): string {
  let whole = Math.floor(ms);
  let ns = Math.round((ms - whole) * 1e6);
  if (ns >= 1e6) {
    whole += 1;
    ns -= 1e6;
  }
  return whole === 0 ? String(ns) : `${whole}${String(ns).padStart(6, "0")}`;
}
