/**
 * Contracts of the simulated engine: engine parameters, engine events, fault knobs, trace lines
 * and the per-request record shared by the offline simulator and the HTTP bench.
 *
 * @module
 */

import type { KvEvent } from "../kv_events/types.ts";
import type { AnswerLengthModel } from "./answer_length.ts";

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
  /**
   * KV cache events of the step (blocks stored, blocks evicted), in order, as vLLM publishes one
   * batch per step; empty unless the engine was built with `kvEvents: true`.
   */
  readonly kvEvents: readonly KvEvent[];
}

/** A LoRA adapter a request runs with: vLLM's `lora_name` and `lora_int_id`. */
export interface LoraRef {
  readonly name: string;
  readonly id: number;
}

/**
 * Generated tokens when the engine knows a real vocabulary: token `i` of every answer has id
 * `id(i)` and text `text(i)`. Without one, answers are the pseudo tokens of `answerText`.
 */
export interface AnswerVocab {
  id(i: number): number;
  text(i: number): string;
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
  /**
   * Offline simulator only: the cached tokens the router's index predicted when it routed the
   * request (approximate: matched chunks in tokens; precise: matched blocks, capped as the engine
   * caps a hit).
   */
  readonly predicted_cached_tokens?: number;
}

/** Counters and gauges, as exported on /metrics. */
export interface EngineStats {
  readonly waiting: number;
  readonly running: number;
  readonly capacityBlocks: number;
  /** Blocks in use by sequences (pinned or private). */
  readonly usedBlocks: number;
  /** Hashed blocks held (pinned or free in the LRU). */
  readonly cachedBlocks: number;
  /** `usedBlocks / capacityBlocks` (vLLM's KV cache usage: free cached blocks count as free). */
  readonly usage: number;
  /** Tokens looked up at admissions (vLLM `prefix_cache_queries`). */
  readonly prefixCacheQueries: number;
  /** Cached tokens found at admissions (vLLM `prefix_cache_hits`). */
  readonly prefixCacheHits: number;
  readonly promptTokensTotal: number;
  readonly generationTokensTotal: number;
  readonly requestsFinished: number;
  /** Of `requestsFinished`: ended at end-of-sequence. */
  readonly requestsFinishedStop: number;
  /** Of `requestsFinished`: ran to `max_tokens`. */
  readonly requestsFinishedLength: number;
  readonly requestsCancelled: number;
  /** Running sequences preempted for want of blocks (vLLM `num_preemptions`). */
  readonly preemptions: number;
  readonly evictedBlocks: number;
  readonly steps: number;
}

/** A prompt to look up: text (pseudo tokens) or token ids, with the LoRA adapter it runs with. */
export interface PromptRef {
  readonly prompt?: string | Uint8Array;
  readonly tokens?: ArrayLike<number>;
  readonly lora?: LoraRef | null;
}

/** A request as the engine takes it. */
export interface EngineRequest extends PromptRef {
  /**
   * The prompt as the model would see it (chat template applied), text or UTF-8 bytes; its pseudo
   * token ids are used unless `tokens` is given.
   */
  readonly prompt?: string | Uint8Array;
  /** The prompt's token ids (a tokenizer's, or a token-id prompt's). */
  readonly tokens?: ArrayLike<number>;
  /**
   * With pseudo `tokens` of a text: its bytes after the last full token, which the answer's bytes
   * regroup with (as the next turn's text does). Empty or absent for real ids.
   */
  readonly tail?: Uint8Array;
  /** The LoRA adapter the request runs with; its blocks never match the base model's. */
  readonly lora?: LoraRef | null;
  /** Tokens to generate at most (`max_tokens`), ≥ 1. */
  readonly maxTokens: number;
  /** Length of the answer, when the caller knows it (a trace's `output_tokens`); capped. */
  readonly outputTokens?: number;
  /** vLLM's `ignore_eos`: the answer runs to `maxTokens`. */
  readonly ignoreEos?: boolean;
  /** vLLM's `min_tokens`: no end of sequence before this many tokens. */
  readonly minTokens?: number;
  /** Engine time the request arrived, for its queue time. */
  readonly arrivalMs?: number;
}

/** Options of the engine beyond its hardware parameters. */
export interface EngineOptions {
  /** Lengths of answers nothing fixes. Default geometric, mean 200. */
  readonly answerLength?: AnswerLengthModel;
  /** Seed of the answer-length draws. Default 1. */
  readonly seed?: number;
  /** When a prefix computed in a step becomes reusable: `"v1"` (default) or `"v0"`. */
  readonly prefixSharing?: "v1" | "v0";
  /** Report KV cache events in each step's `kvEvents` (default false: nothing is collected). */
  readonly kvEvents?: boolean;
  /** Real ids and texts of generated tokens (a tokenizer is configured); default pseudo tokens. */
  readonly vocab?: AnswerVocab;
}
