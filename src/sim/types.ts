/**
 * Contracts of the simulated engine: engine parameters, engine events, fault knobs, trace lines
 * and the per-request record shared by the offline simulator and the HTTP bench.
 *
 * @module
 */

/** Parameters of one simulated engine instance (a profile resolves to these). */
export interface EngineParams {
  /** Tokens per KV block (vLLM default 16). */
  readonly blockSize: number;
  /** UTF-8 bytes per token when the token count is estimated from text. */
  readonly bytesPerToken: number;
  /** KV cache capacity in blocks. */
  readonly capacityBlocks: number;
  /** Sequences running at once at most (vLLM `max_num_seqs`, llama.cpp `--parallel`). */
  readonly maxNumSeqs: number;
  /** Tokens per step at most, prefill chunks plus one per decoding sequence. */
  readonly maxNumBatchedTokens: number;
  /** Prompt plus completion tokens per sequence at most (vLLM `max_model_len`). */
  readonly maxModelLen: number;
  /** Fixed cost of every step, ms (weights read, launch and scheduler overhead). */
  readonly stepOverheadMs: number;
  /** Prefill cost per uncached prompt token, ms. */
  readonly prefillMsPerToken: number;
  /** Extra prefill cost per token per token of context before it, ms (attention). */
  readonly prefillMsPerTokenContext: number;
  /** Cost of each decoding sequence in a step, ms. */
  readonly decodeMsPerSeq: number;
  /** Extra decode cost per token of the sequence's context, ms (KV read). */
  readonly decodeMsPerContextToken: number;
  /**
   * Fixed time the API server spends on a request before the engine core sees it, ms (HTTP
   * parsing, validation, chat template, the hop to the engine core). Requests queue for it.
   */
  readonly apiOverheadMs: number;
  /** Tokenization time per prompt token, ms, on top of `apiOverheadMs`. */
  readonly tokenizeMsPerToken: number;
}

/** What happened to one sequence at the end of a step. */
export interface EngineEvent {
  /** Sequence id from `submit`. */
  readonly id: number;
  /** `first_token` ends the prefill; `token` is each later token; `done` follows the last token. */
  readonly kind: "first_token" | "token" | "done";
  /** Engine time of the event, ms (the end of the step). */
  readonly timeMs: number;
  /** Index of the token (0 for `first_token`); for `done`, the completion token count. */
  readonly index: number;
  /** Text of the token (`""` for `done`). */
  readonly text: string;
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly completionTokens: number;
  /**
   * On `done`: `"stop"` when the answer ended at end-of-sequence, `"length"` when it ran to
   * `max_tokens`; null otherwise.
   */
  readonly finishReason: "length" | "stop" | null;
  /**
   * From the request's arrival at the engine to its first scheduled step, ms (vLLM's queue time);
   * null when the request gave no arrival time.
   */
  readonly queueMs: number | null;
  /** Times the sequence was preempted and recomputed so far. */
  readonly preemptions: number;
}

/** One executed engine step. */
export interface StepResult {
  readonly startMs: number;
  readonly durationMs: number;
  /** `startMs + durationMs`: when the events below happen. */
  readonly endMs: number;
  /** Tokens computed in the step: prefill chunk tokens plus one per decoding sequence. */
  readonly batchedTokens: number;
  readonly events: readonly EngineEvent[];
}

/** Fault knobs of the sim worker. All durations are wall-clock ms, not scaled by `time_scale`. */
export interface FaultOptions {
  /** Share of completion requests answered 500 with an OpenAI error body, 0..1. */
  readonly errorRate?: number;
  /** Delay before a completion request is handled, ms. */
  readonly addedLatencyMs?: number;
  /** Close the listener so connections fail; the port is kept and reopened when turned off. */
  readonly refuseConnections?: boolean;
  /** Abort the connection mid-stream after this many SSE chunks (0 = off). */
  readonly dieAfterChunks?: number;
  /** Send the response headers, then wait this long before the first chunk, ms. */
  readonly stallMs?: number;
}

/**
 * One line of a trace file. A trace is closed loop (every line has `delay_ms`) or open loop
 * (every line has `arrival_ms`), never both (`parseTrace` checks).
 */
export interface TraceRequest {
  readonly session_id: string;
  /**
   * Closed loop: think time after the previous turn of the session completed (or from t = 0 for
   * the first), ms.
   */
  readonly delay_ms?: number;
  /** Open loop: when the request is sent, ms from the start of the run, whatever else happens. */
  readonly arrival_ms?: number;
  /** Tokens the answer has (≤ `max_tokens`); absent: drawn from the engine's answer lengths. */
  readonly output_tokens?: number;
  /** Free-form label of the workload pattern. */
  readonly pattern: string;
  /** OpenAI chat completion request body. */
  readonly body: Record<string, unknown>;
}

/** One request as the offline simulator and the HTTP bench record it. */
export interface RequestRecord {
  readonly session_id: string;
  readonly pattern: string;
  /** 0-based turn within the session. */
  readonly turn: number;
  /** When the request was issued, ms from the start of the run. */
  readonly start_ms: number;
  /** Time to the first content token, ms; null when none arrived. */
  readonly ttft_ms: number | null;
  /** Time to the end of the response, ms. */
  readonly total_ms: number;
  /** HTTP status (200 on success), 0 for a transport error. */
  readonly status: number;
  /** Worker id that served it, null when none was picked. */
  readonly backend: string | null;
  /** Routing reason, null when unknown. */
  readonly reason: string | null;
  readonly prompt_tokens: number;
  readonly cached_tokens: number;
  readonly completion_tokens: number;
  /** Error message, null on success. */
  readonly error: string | null;
  /** Offline simulator only: time the request waited in the engine's queue, ms. */
  readonly queue_ms?: number | null;
  /** Offline simulator only: times the engine preempted the request. */
  readonly preemptions?: number;
}
