/**
 * A tiny trace builder for tests (the real generator is cmd/gen-traces.ts): multi-turn chat
 * sessions that all share one system prompt, closed loop, seeded.
 *
 * Each session has `turns` turns; turn k's body carries the system prompt, the k earlier user
 * messages and answers, and a new user message. User messages and answers are seeded filler text,
 * distinct per session and turn; delays are uniform in `[minDelayMs, maxDelayMs)`. Also the
 * small engine parameters the engine's unit tests start from (`TEST_ENGINE_PARAMS`).
 *
 * @module
 */

import { SeededRng } from "../util/rng.ts";
import type { EngineParams, TraceRequest } from "./types.ts";

/** Engine parameters for unit tests: round step costs, no API-server or context-dependent costs. */
export const TEST_ENGINE_PARAMS: EngineParams = {
  blockSize: 16,
  bytesPerToken: 4,
  capacityBlocks: 10_000,
  maxNumSeqs: 8,
  maxNumBatchedTokens: 8192,
  maxModelLen: 32_768,
  stepOverheadMs: 10,
  prefillMsPerToken: 0.1,
  prefillMsPerTokenContext: 0,
  decodeMsPerSeq: 0.1,
  decodeMsPerContextToken: 0,
  apiOverheadMs: 0,
  tokenizeMsPerToken: 0,
};

/** Options of {@linkcode buildMultiTurnTrace}. */
export interface MultiTurnTraceOptions {
  readonly sessions: number;
  /** Turns per session. Default 6. */
  readonly turns?: number;
  /** Bytes of the shared system prompt. Default 6144. */
  readonly systemBytes?: number;
  /** Bytes of each user message. Default 400. */
  readonly userBytes?: number;
  /** Bytes of each answer kept in the history. Default 256. */
  readonly answerBytes?: number;
  /** `max_tokens` of each request. Default 64. */
  readonly maxTokens?: number;
  readonly minDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly seed?: number;
}

const WORDS = [
  "cache",
  "prefix",
  "router",
  "token",
  "block",
  "engine",
  "worker",
  "stream",
  "batch",
  "latency",
  "session",
  "prompt",
  "answer",
  "model",
  "queue",
  "budget",
  "chunk",
  "hash",
  "tree",
  "policy",
];

function filler(rng: SeededRng, tag: string, bytes: number): string {
  let s = tag;
  while (s.length < bytes) s += " " + WORDS[rng.int(WORDS.length)];
  return s.slice(0, bytes);
}

/** Builds the trace; the same options give the same trace. */
export function buildMultiTurnTrace(opts: MultiTurnTraceOptions): TraceRequest[] {
  const turns = opts.turns ?? 6;
  const rng = new SeededRng(opts.seed ?? 7);
  const minDelay = opts.minDelayMs ?? 200;
  const maxDelay = opts.maxDelayMs ?? 2000;
  const system = filler(
    new SeededRng(12345),
    "You are the shared assistant.",
    opts.systemBytes ?? 6144,
  );
  const out: TraceRequest[] = [];
  for (let s = 0; s < opts.sessions; s++) {
    const messages: Array<{ role: string; content: string }> = [
      { role: "system", content: system },
    ];
    for (let k = 0; k < turns; k++) {
      messages.push({ role: "user", content: filler(rng, `[s${s} t${k}]`, opts.userBytes ?? 400) });
      out.push({
        session_id: `s${s}`,
        delay_ms: Math.round(minDelay + rng.next() * (maxDelay - minDelay)),
        pattern: "multi-turn",
        body: {
          model: "sim",
          messages: messages.map((m) => ({ ...m })),
          max_tokens: opts.maxTokens ?? 64,
          stream: true,
          stream_options: { include_usage: true },
        },
      });
      messages.push({
        role: "assistant",
        content: filler(rng, `[a${s} t${k}]`, opts.answerBytes ?? 256),
      });
    }
  }
  return out;
}
