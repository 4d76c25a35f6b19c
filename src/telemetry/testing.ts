/**
 * Test helpers of the tracing: a config with short timers, a transport that records what it was
 * given, and the spans of OTLP JSON bodies flattened.
 *
 * @module
 */

import { TRACING_DEFAULTS } from "./defaults.ts";
import type { ExportResult, Transport } from "./exporter.ts";
import type { TracingConfig } from "./types.ts";

/** A tracing config for tests: `overrides` on the defaults, with an endpoint set. */
export function testConfig(overrides: Partial<TracingConfig> = {}): TracingConfig {
  return { ...TRACING_DEFAULTS, endpoint: "http://127.0.0.1:9", ...overrides };
}

/** An OTLP span as JSON carries it (the fields tests read). */
export interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  flags: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: Record<string, unknown> }[];
  status: { code?: number; message?: string };
}

/** The spans of an `ExportTraceServiceRequest` JSON body. */
export function spansOf(body: string): JsonSpan[] {
  // deno-lint-ignore no-explicit-any
  const req = JSON.parse(body) as any;
  // deno-lint-ignore no-explicit-any
  return req.resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans));
}

/** A span's attributes as a plain record of their values. */
export function attrsOf(span: JsonSpan): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of span.attributes) out[a.key] = Object.values(a.value)[0];
  return out;
}

/** A transport that records each body and answers with `answer` (default: accepted). */
export class RecordingTransport {
  readonly bodies: string[] = [];
  answer: () => ExportResult | Promise<ExportResult> = () => ({
    ok: true,
    retryable: false,
    retryAfterMs: null,
    rejected: 0,
  });

  readonly send: Transport = (body) => {
    this.bodies.push(body);
    return Promise.resolve(this.answer());
  };

  /** All spans sent so far. */
  spans(): JsonSpan[] {
    return this.bodies.flatMap(spansOf);
  }
}
