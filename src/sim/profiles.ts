/**
 * Engine profiles: parameters of the simulated engine for one engine instance on named hardware.
 * Figures and their sources are in docs/simulated-engine.md; the derivation is summarised beside
 * each value.
 *
 * `timeScale` is not part of a profile: the real-time server multiplies every model duration by it
 * (0.1 = ten times faster), the offline simulator runs in virtual time and ignores it.
 *
 * @module
 */

import type { EngineParams } from "./types.ts";

/** A named engine profile. */
export interface EngineProfile {
  readonly name: string;
  /** One line: engine, hardware, model. */
  readonly description: string;
  /** Model id served by default (`sim-<profile>` is used on the wire unless overridden). */
  readonly model: string;
  readonly params: EngineParams;
}

/**
 * vLLM's API server time per request (docs/simulated-engine.md, "API server time"): about 1 ms of
 * HTTP handling, validation, chat template and the hop to the engine core, plus about 2 µs per
 * prompt token of tokenization (a fast tokenizer on one core; 131-token chat prompts measured
 * 1.3–2.8 ms end to end on another OpenAI server, tenstorrent/tt-inference-server issue 2173).
 */
const VLLM_FRONTEND = { apiOverheadMs: 1, tokenizeMsPerToken: 0.002 } as const;

const A100_7B: EngineProfile = {
  name: "a100-7b",
  description: "vLLM on one A100 80GB, Qwen2.5-7B-Instruct bf16",
  model: "Qwen/Qwen2.5-7B-Instruct",
  params: {
    blockSize: 16,
    bytesPerToken: 4,
    // 0.9 × 80 GB − 15.2 GB weights − ~6 GB activations/graphs ≈ 51 GB at 56 KiB per token
    // ≈ 0.9 M tokens; 56 000 blocks = 896 000 tokens.
    capacityBlocks: 56_000,
    maxNumSeqs: 256,
    maxNumBatchedTokens: 8192,
    maxModelLen: 32_768,
    // Weights 15.2 GB ÷ ~2.0 TB/s effective HBM ≈ 7.6 ms, plus ~2.4 ms launch/scheduler:
    // batch-1 decode ≈ 10 ms/token (≈ 95–100 tok/s; published vLLM batch-1 figures ≈ 80–90).
    stepOverheadMs: 10,
    // 2 × 6.5 G non-embedding params = 13 GFLOP/token at ~45% of 312 TFLOP/s ≈ 0.093 ms;
    // rounded to 0.09 ms (≈ 11 k tok/s) for short contexts.
    prefillMsPerToken: 0.09,
    // Attention ≈ 4 × layers × hidden = 4 × 28 × 3584 ≈ 0.4 MFLOP per token per context token
    // at ~140 TFLOP/s ≈ 2.9e-6 ms: +9% per token at 3 k context, +25% at 8 k.
    prefillMsPerTokenContext: 2.9e-6,
    // Per extra decoding sequence: sampling, small GEMM growth; 256 sequences add ~15 ms.
    decodeMsPerSeq: 0.06,
    // KV read per context token: 57 344 B ÷ 2.0 TB/s ≈ 2.9e-5 ms.
    decodeMsPerContextToken: 2.9e-5,
    ...VLLM_FRONTEND,
  },
};

/**
 * The same engine with Qwen2.5's long-context setting: YaRN rope scaling, factor 4 over the
 * native 32 768 positions (Qwen2.5 model card), so `max_model_len` 131 072. The KV cache is the
 * card's: 896 000 tokens hold about 6.8 sequences of full length (7.3 GB each at 56 KiB a token).
 */
const A100_7B_128K: EngineProfile = {
  name: "a100-7b-128k",
  description: "vLLM on one A100 80GB, Qwen2.5-7B-Instruct bf16 with YaRN ×4 (128 k context)",
  model: "Qwen/Qwen2.5-7B-Instruct",
  params: { ...A100_7B.params, maxModelLen: 131_072 },
};

const A100_14B: EngineProfile = {
  name: "a100-14b",
  description: "vLLM on one A100 80GB, Qwen2.5-14B-Instruct bf16",
  model: "Qwen/Qwen2.5-14B-Instruct",
  params: {
    blockSize: 16,
    bytesPerToken: 4,
    // 0.9 × 80 GB − 29.5 GB weights − ~4 GB ≈ 39 GB at 192 KiB per token ≈ 200 k tokens;
    // 12 500 blocks = 200 000 tokens.
    capacityBlocks: 12_500,
    maxNumSeqs: 256,
    maxNumBatchedTokens: 8192,
    maxModelLen: 32_768,
    // Weights 29.5 GB ÷ ~2.0 TB/s ≈ 14.8 ms plus ~3 ms: batch-1 decode ≈ 18 ms/token.
    stepOverheadMs: 18,
    // 2 × 13.1 G non-embedding params = 26 GFLOP/token at ~140 TFLOP/s ≈ 0.19 ms (≈ 5.3 k tok/s).
    prefillMsPerToken: 0.19,
    // 4 × 48 × 5120 ≈ 0.98 MFLOP per token per context token at ~140 TFLOP/s ≈ 7.0e-6 ms.
    prefillMsPerTokenContext: 7.0e-6,
    decodeMsPerSeq: 0.12,
    // 196 608 B ÷ 2.0 TB/s ≈ 9.8e-5 ms per context token.
    decodeMsPerContextToken: 9.8e-5,
    ...VLLM_FRONTEND,
  },
};

const M1_1_5B: EngineProfile = {
  name: "m1-1.5b",
  description: "llama.cpp llama-server on an M1 Pro, Qwen2.5-1.5B-Instruct Q4_K_M, --parallel 2",
  model: "Qwen2.5-1.5B-Instruct-Q4_K_M",
  params: {
    blockSize: 16,
    bytesPerToken: 4,
    // --ctx-size 4096 shared by the slots: 256 blocks.
    capacityBlocks: 256,
    // --parallel 2.
    maxNumSeqs: 2,
    // llama-server's default batch (-b 2048) bounds a step's prompt tokens.
    maxNumBatchedTokens: 2048,
    // Each slot gets ctx-size / parallel = 2048 tokens.
    maxModelLen: 2048,
    // Generation ≈ 70 tok/s at batch 1 ≈ 14 ms/token: 13 ms fixed plus 1 ms per sequence.
    stepOverheadMs: 13,
    // Prompt processing ≈ 1.25 k tok/s (Metal) ≈ 0.8 ms/token.
    prefillMsPerToken: 0.8,
    // 4 × 28 × 1536 ≈ 0.17 MFLOP per token per context token at ~4 TFLOP/s ≈ 4e-5 ms:
    // +5% per token at 1 k context.
    prefillMsPerTokenContext: 4e-5,
    decodeMsPerSeq: 1,
    // 28 672 B ÷ ~180 GB/s ≈ 1.6e-4 ms per context token.
    decodeMsPerContextToken: 1.6e-4,
    // llama-server parses and tokenizes in C++ on its HTTP thread: estimated at half of vLLM's.
    apiOverheadMs: 0.5,
    tokenizeMsPerToken: 0.001,
  },
};

/** Profiles by name. */
export const PROFILES: Readonly<Record<string, EngineProfile>> = {
  [A100_7B.name]: A100_7B,
  [A100_7B_128K.name]: A100_7B_128K,
  [A100_14B.name]: A100_14B,
  [M1_1_5B.name]: M1_1_5B,
};

/** Names of the profiles. */
export const PROFILE_NAMES: readonly string[] = Object.keys(PROFILES);

/** The profile named `name`; throws listing the valid names. */
export function getProfile(name: string): EngineProfile {
  const p = PROFILES[name];
  if (p === undefined) {
    throw new RangeError(
      `unknown engine profile "${name}", valid profiles: ${PROFILE_NAMES.join(", ")}`,
    );
  }
  return p;
}

/** First-order figures a profile implies, for docs and sanity checks. */
export interface ProfileFigures {
  /** Prefill rate of one 1 k-token cold prompt alone (overhead included), tokens/s. */
  readonly prefillTokensPerSec1k: number;
  /** Marginal prefill rate at short context, tokens/s. */
  readonly prefillTokensPerSecMarginal: number;
  /** Time per output token of one sequence at 1 k context, ms. */
  readonly decodeMsPerToken: number;
  /** Time per step with 64 sequences decoding at 2 k context, ms. */
  readonly decodeStepMs64: number;
  readonly cacheCapacityTokens: number;
}

/** Figures implied by `params`. */
export function profileFigures(params: EngineParams): ProfileFigures {
  const p = params;
  const prefill1k = p.stepOverheadMs + 1000 * p.prefillMsPerToken +
    p.prefillMsPerTokenContext * 1000 * 500;
  return {
    prefillTokensPerSec1k: 1000 / (prefill1k / 1000),
    prefillTokensPerSecMarginal: 1000 / p.prefillMsPerToken,
    decodeMsPerToken: p.stepOverheadMs + p.decodeMsPerSeq + p.decodeMsPerContextToken * 1000,
    decodeStepMs64: p.stepOverheadMs + 64 * (p.decodeMsPerSeq + p.decodeMsPerContextToken * 2000),
    cacheCapacityTokens: p.capacityBlocks * p.blockSize,
  };
}
