/**
 * Contracts of the benchmark suite: trace entries (one JSONL line each), the per-request record a
 * replay produces, and the tagged record a sweep collects.
 *
 * `RequestRecord` mirrors the record type of the simulated engine (`src/sim/types.ts`) field for
 * field, so records from a live replay and from the offline simulator aggregate the same way.
 *
 * @module
 */

/** How a trace's sessions share prompt text. */
export type Pattern = "multiturn" | "tool-loop" | "rag" | "single" | "fork" | "agentic";

/** Trace shapes `gen-traces --shape` accepts: one pattern, or `mixed` (sessions rotate patterns). */
export type Shape = Pattern | "mixed";

/** All patterns. */
export const PATTERNS: readonly Pattern[] = [
  "multiturn",
  "tool-loop",
  "rag",
  "single",
  "fork",
  "agentic",
];

/** The patterns `mixed` rotates through, in order. */
export const MIXED_PATTERNS: readonly Pattern[] = ["multiturn", "tool-loop", "rag", "single"];

/** All shapes. */
export const SHAPES: readonly Shape[] = [...PATTERNS, "mixed"];

/** A tool call inside an assistant message (OpenAI chat format). */
export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** One chat message (OpenAI chat format, the subset traces use). */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string | null;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
}

/** A tool definition (OpenAI chat format). */
export interface ToolDef {
  type: "function";
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

/** The body of one streamed chat completion request. */
export interface ChatRequestBody {
  model: string;
  messages: ChatMessage[];
  max_tokens: number;
  stream: true;
  stream_options: { include_usage: true };
  tools?: ToolDef[];
  /** vLLM's `ignore_eos`: the answer runs to `max_tokens` (imported traces with known lengths). */
  ignore_eos?: boolean;
}

/**
 * One request of a trace. Entries of a session run in order; each waits `delay_ms` after the
 * previous entry of its session finished (the first: after its session started, which is the
 * replay's start unless the replay's `concurrency` holds the session back).
 */
export interface TraceEntry {
  session_id: string;
  delay_ms: number;
  pattern: Pattern;
  body: ChatRequestBody;
  /** Tokens the answer has (≤ `max_tokens`), when the trace fixes it; the offline simulator uses it. */
  output_tokens?: number;
}

/**
 * One request of an open-loop trace: sent at `arrival_ms` from the start of the run, whatever
 * happened to the requests before it. A trace is either closed loop (`delay_ms` on every line) or
 * open loop (`arrival_ms` on every line).
 */
export interface OpenTraceEntry {
  session_id: string;
  arrival_ms: number;
  /** A generated pattern, or another label (`mooncake` for imported traces). */
  pattern: Pattern | string;
  body: ChatRequestBody;
  output_tokens?: number;
}

/** A line of either kind of trace. */
export type AnyTraceEntry = TraceEntry | OpenTraceEntry;

/** What one request did, as the client saw it. Times in ms; `start_ms` from the replay's start. */
export interface RequestRecord {
  session_id: string;
  pattern: string;
  /** Position of the request within its session, from 0. */
  turn: number;
  start_ms: number;
  /** Time to the first non-empty content delta; null when none arrived. */
  ttft_ms: number | null;
  total_ms: number;
  /** HTTP status; 0 when no response arrived (transport error, timeout, abort). */
  status: number;
  /** `X-Router-Backend` header, or null. */
  backend: string | null;
  /** `X-Router-Reason` header, or null. */
  reason: string | null;
  /** From the usage chunk; null when the stream carried no usage. */
  prompt_tokens: number | null;
  /** `usage.prompt_tokens_details.cached_tokens`; null when not reported. */
  cached_tokens: number | null;
  completion_tokens: number | null;
  /** What failed, or null. */
  error: string | null;
}

/** A record tagged with the sweep cell it came from. */
export interface BenchRecord extends RequestRecord {
  strategy: string;
  sessions: number;
  seed: number;
}
