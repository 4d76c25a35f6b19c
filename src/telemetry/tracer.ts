/**
 * The router's tracer: a server-kind span per request and a client-kind child per upstream
 * attempt, W3C trace context in and out, parent-based ratio sampling, batched OTLP/HTTP JSON
 * export. docs/decisions/0008-tracing.md says why it is the project's own code and not Deno's
 * built-in OpenTelemetry nor the npm SDK.
 *
 * - `createTracer(null)` is the no-op tracer: every span is one shared frozen object whose methods
 *   do nothing, so the request path costs a method call or two (measured in `tracer_bench.ts`).
 * - A request whose `traceparent` is valid continues the client's trace (its span's parent is the
 *   client's span, marked remote), else a new trace starts; its `tracestate`, when valid, is kept
 *   and sent on. The decision to record is taken once per request (see `sampler.ts`); a request
 *   not recorded still gets ids, so the engine is told "not sampled" under a fresh parent id
 *   and the access log still names the trace.
 * - Each attempt's `traceparent()` names the attempt's span, so the engine's spans nest under it.
 * - Attributes: at most 64 a span, string values cut at 256 characters (a client chooses the
 *   model name: its size must not reach the export queue), non-finite numbers as strings.
 * - Times: epoch ms from `performance.timeOrigin + performance.now()`: monotonic within the
 *   process, so durations are right even when the wall clock steps.
 *
 * @module
 */

import { VERSION } from "../version.ts";
import { BatchExporter, httpTransport, type Transport } from "./exporter.ts";
import { type IdSource, RandomIds } from "./ids.ts";
import {
  exportHead,
  SPAN_KIND_CLIENT,
  SPAN_KIND_SERVER,
  type SpanRecord,
  STATUS_ERROR,
  STATUS_UNSET,
} from "./otlp_json.ts";
import { shouldSample } from "./sampler.ts";
import {
  FLAG_RANDOM,
  FLAG_SAMPLED,
  formatTraceparent,
  parseTraceparent,
  parseTracestate,
} from "./trace_context.ts";
import type {
  Attrs,
  AttrValue,
  HeaderSource,
  Span,
  Tracer,
  TracerStats,
  TracingConfig,
} from "./types.ts";

/** Most attributes kept on one span. */
export const MAX_ATTRS = 64;
/** Longest string attribute value (and status message) kept, characters. */
export const MAX_VALUE_CHARS = 256;

/** Injection points, for tests. */
export interface TracerOptions {
  /** Epoch milliseconds; default `performance.timeOrigin + performance.now()`. */
  readonly now?: () => number;
  readonly ids?: IdSource;
  /** Default: POST to `<endpoint>/v1/traces` with `fetch`. */
  readonly transport?: Transport;
  /** Back-off jitter in [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

/**
 * The tracer for `config`: the no-op tracer when `config` is null or its endpoint empty. The
 * exporter starts no timer until a span ends; call `shutdown()` to flush and stop it.
 * @throws TypeError when `config.headers` holds a header `fetch` refuses
 */
export function createTracer(config: TracingConfig | null, options: TracerOptions = {}): Tracer {
  if (config === null || config.endpoint === "") return NOOP_TRACER;
  return new RecordingTracer(config, options);
}

/** The URL spans are POSTed to: the OTLP/HTTP traces path under `endpoint`. */
export function tracesUrl(endpoint: string): string {
  return `${endpoint.replace(/\/+$/, "")}/v1/traces`;
}

/** What every span of one tracer shares. */
interface Core {
  readonly now: () => number;
  readonly ids: IdSource;
  readonly exporter: BatchExporter;
}

class RecordingTracer implements Tracer {
  readonly enabled = true;
  readonly #core: Core;
  readonly #ratio: number;
  readonly #exportTimeoutMs: number;

  constructor(config: TracingConfig, o: TracerOptions) {
    const head = exportHead(
      {
        ...config.resourceAttributes,
        "service.name": config.serviceName,
        "service.version": VERSION,
      },
      "llm-cache-router",
      VERSION,
    );
    const exporter = new BatchExporter({
      maxBatchSize: config.maxBatchSize,
      maxQueueSize: config.maxQueueSize,
      flushIntervalMs: config.flushIntervalMs,
      exportTimeoutMs: config.exportTimeoutMs,
      maxRetries: config.maxRetries,
      transport: o.transport ?? httpTransport(tracesUrl(config.endpoint), config.headers),
      head,
      random: o.random,
    });
    this.#core = {
      now: o.now ?? (() => performance.timeOrigin + performance.now()),
      ids: o.ids ?? new RandomIds(),
      exporter,
    };
    this.#ratio = config.sampleRatio;
    this.#exportTimeoutMs = config.exportTimeoutMs;
  }

  startRequest(headers: HeaderSource, name: string, attrs?: Attrs): Span {
    const core = this.#core;
    const tp = headers.header("traceparent");
    const parent = tp === null ? null : parseTraceparent(tp);
    const traceId = parent?.traceId ?? core.ids.traceId();
    const sampled = shouldSample(parent, traceId, this.#ratio);
    // A new trace's id is random (ids.ts): the Level 2 `random` flag says so; a continued trace
    // keeps its caller's word on that.
    const flags = (parent === null ? FLAG_RANDOM : parent.flags & FLAG_RANDOM) |
      (sampled ? FLAG_SAMPLED : 0);
    const state = parent === null ? null : parseTracestate(headers.header("tracestate"));
    const spanId = core.ids.spanId();
    if (!sampled) return new UnsampledSpan(core, traceId, spanId, flags, state);
    const span = new RecordingSpan(core, {
      traceId,
      spanId,
      parentSpanId: parent?.spanId ?? null,
      parentRemote: parent !== null,
      traceState: state,
      name,
      kind: SPAN_KIND_SERVER,
      flags,
    });
    if (attrs !== undefined) span.setAll(attrs);
    return span;
  }

  stats(): TracerStats {
    const e = this.#core.exporter;
    return { queued: e.queued, ...e.counters };
  }

  shutdown(timeoutMs = this.#exportTimeoutMs): Promise<void> {
    return this.#core.exporter.shutdown(timeoutMs);
  }
}

/** The identity of a span at its start: the export record's fields fixed when it begins. */
type SpanStart = Pick<
  SpanRecord,
  "traceId" | "spanId" | "parentSpanId" | "parentRemote" | "traceState" | "name" | "kind" | "flags"
>;

/** A recorded span; it is its own export record once ended. */
class RecordingSpan implements Span, SpanRecord {
  readonly sampled = true;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | null;
  readonly parentRemote: boolean;
  readonly traceState: string | null;
  readonly name: string;
  readonly kind: number;
  readonly flags: number;
  readonly startMs: number;
  endMs = 0;
  readonly attrs: (string | AttrValue)[] = [];
  statusCode = STATUS_UNSET;
  statusMessage = "";
  readonly #core: Core;
  #ended = false;
  #traceparent: string | null = null;

  constructor(core: Core, s: SpanStart) {
    this.#core = core;
    this.traceId = s.traceId;
    this.spanId = s.spanId;
    this.parentSpanId = s.parentSpanId;
    this.parentRemote = s.parentRemote;
    this.traceState = s.traceState;
    this.name = s.name;
    this.kind = s.kind;
    this.flags = s.flags;
    this.startMs = core.now();
  }

  set(key: string, value: AttrValue): void {
    if (this.#ended) return;
    const v = typeof value === "string"
      ? (value.length > MAX_VALUE_CHARS ? value.slice(0, MAX_VALUE_CHARS) : value)
      : typeof value === "number" && !Number.isFinite(value)
      ? String(value)
      : value;
    const a = this.attrs;
    for (let i = 0; i < a.length; i += 2) {
      if (a[i] === key) {
        a[i + 1] = v;
        return;
      }
    }
    if (a.length < 2 * MAX_ATTRS) a.push(key, v);
  }

  /** Sets each of `attrs`. */
  setAll(attrs: Attrs): void {
    for (const k in attrs) this.set(k, attrs[k]);
  }

  error(kind: string, message = ""): void {
    if (this.#ended) return;
    this.set("error.type", kind);
    this.statusCode = STATUS_ERROR;
    this.statusMessage = message.length > MAX_VALUE_CHARS
      ? message.slice(0, MAX_VALUE_CHARS)
      : message;
  }

  end(status?: number | null): void {
    if (this.#ended) return;
    if (status !== undefined && status !== null) {
      this.set("http.response.status_code", status);
      const bad = this.kind === SPAN_KIND_SERVER ? status >= 500 : status >= 400;
      if (bad && this.statusCode === STATUS_UNSET) this.error(String(status));
    }
    this.#ended = true;
    this.endMs = this.#core.now();
    this.#core.exporter.add(this);
  }

  child(name: string, attrs?: Attrs): Span {
    const span = new RecordingSpan(this.#core, {
      traceId: this.traceId,
      spanId: this.#core.ids.spanId(),
      parentSpanId: this.spanId,
      parentRemote: false,
      traceState: this.traceState,
      name,
      kind: SPAN_KIND_CLIENT,
      flags: this.flags,
    });
    if (attrs !== undefined) span.setAll(attrs);
    return span;
  }

  traceparent(): string {
    return this.#traceparent ??= formatTraceparent(this.traceId, this.spanId, this.flags);
  }

  tracestate(): string | null {
    return this.traceState;
  }
}

/** A span that is not recorded: ids for propagation and the log, nothing else. */
class UnsampledSpan implements Span {
  readonly sampled = false;
  readonly #core: Core;
  readonly #spanId: string;
  readonly #flags: number;
  readonly #state: string | null;

  constructor(
    core: Core,
    readonly traceId: string,
    spanId: string,
    flags: number,
    state: string | null,
  ) {
    this.#core = core;
    this.#spanId = spanId;
    this.#flags = flags;
    this.#state = state;
  }

  set(): void {}
  error(): void {}
  end(): void {}

  child(): Span {
    return new UnsampledSpan(
      this.#core,
      this.traceId,
      this.#core.ids.spanId(),
      this.#flags,
      this.#state,
    );
  }

  traceparent(): string {
    return formatTraceparent(this.traceId, this.#spanId, this.#flags);
  }

  tracestate(): string | null {
    return this.#state;
  }
}

/** The span of the no-op tracer. */
const NOOP_SPAN: Span = Object.freeze({
  traceId: null,
  sampled: false,
  set() {},
  error() {},
  end() {},
  child: () => NOOP_SPAN,
  traceparent: () => null,
  tracestate: () => null,
});

const NOOP_STATS: TracerStats = Object.freeze({
  queued: 0,
  exported: 0,
  droppedQueueFull: 0,
  droppedExportFailed: 0,
  rejected: 0,
  failedRequests: 0,
});

/** The tracer when tracing is off. */
export const NOOP_TRACER: Tracer = Object.freeze({
  enabled: false,
  startRequest: () => NOOP_SPAN,
  stats: () => NOOP_STATS,
  shutdown: () => Promise.resolve(),
});

/**
 * `headers` for an upstream request made under `span`: the client's `traceparent` and
 * `tracestate` replaced by the span's. Without a trace (tracing off) `headers` itself, unchanged;
 * else a copy.
 */
export function withTraceHeaders(headers: [string, string][], span: Span): [string, string][] {
  const tp = span.traceparent();
  if (tp === null) return headers;
  const out: [string, string][] = [];
  for (const h of headers) if (h[0] !== "traceparent" && h[0] !== "tracestate") out.push(h);
  out.push(["traceparent", tp]);
  const ts = span.tracestate();
  if (ts !== null) out.push(["tracestate", ts]);
  return out;
}
