/**
 * Contracts of the tokenize layer: a request body in, the token ids the engine will compute out.
 *
 * Precise mode indexes the engines' KV blocks by token ids, so the router needs each request's
 * tokens exactly as the engine computes them: the model's tokenizer applied to the chat template's
 * rendering. Two implementations sit behind {@linkcode RequestTokenizer}: a local one (tokenizer.json
 * and tokenizer_config.json on disk, with a section cache so a follow-up turn tokenizes only its
 * new part) and one that asks the engine (`POST /tokenize`).
 *
 * Token ids are a `Uint32Array`: ids are below 2^32 in every tokenizer format, the array takes 4
 * bytes per token (a `number[]` takes 8), cached pieces are joined with one `set` each, and a
 * block hash can read the ids as bytes without a conversion.
 *
 * Errors: a body whose shape is wrong throws `RouterError` `bad_request` (as `parseRequest` does);
 * anything the tokenizer cannot reproduce or reach throws {@linkcode TokenizeError}, after which
 * the router should fall back to approximate routing rather than fail the request.
 *
 * @module
 */

import type { RequestKind } from "../prefix/routing_text.ts";

export type { RequestKind };

/** One request to tokenize: the parsed JSON body of `/v1/chat/completions` or `/v1/completions`. */
export interface TokenizeRequest {
  /** Which endpoint the body was sent to. */
  readonly kind: RequestKind;
  /** The parsed JSON body, as the client sent it (never modified). */
  readonly body: unknown;
  /** Aborts an engine call (the client went away). */
  readonly signal?: AbortSignal;
}

/** Token ids of one request and where they came from. */
export interface TokenizeResult {
  /** The ids, in prompt order. A fresh array the caller may keep or modify. */
  readonly tokens: Uint32Array;
  /** Ids taken from the section cache (local tokenizer; 0 for the engine). */
  readonly cachedTokens: number;
  /** Ids the tokenizer model computed for this request (the rest are cached or added tokens). */
  readonly encodedTokens: number;
  /** Milliseconds spent in this call (render + encode, or the engine round trip). */
  readonly ms: number;
}

/** Cumulative counters of one tokenizer, for /metrics. */
export interface TokenizerStats {
  /** `tokenize` calls. */
  readonly requests: number;
  /** Calls that threw (bad request, unsupported, engine failure). */
  readonly failures: number;
  /** Sections found in the cache. */
  readonly cacheHits: number;
  /** Sections tokenized because they were not cached (or the cache is off). */
  readonly cacheMisses: number;
  /** Ids served from the cache. */
  readonly cachedTokens: number;
  /** Ids computed by the tokenizer model. */
  readonly encodedTokens: number;
  /** Sections held now. */
  readonly cacheEntries: number;
  /** Estimated bytes held now (keys as UTF-16, ids as 4 bytes, a fixed overhead per entry). */
  readonly cacheBytes: number;
  /** Byte budget of the cache; 0 when off. */
  readonly cacheMaxBytes: number;
  /** Sections evicted to stay within the budget. */
  readonly cacheEvictions: number;
  /** Milliseconds spent rendering chat templates. */
  readonly renderMs: number;
  /** Milliseconds spent splitting, looking up and encoding text. */
  readonly encodeMs: number;
  /** Milliseconds spent waiting for the engine's `/tokenize`. */
  readonly engineMs: number;
}

/** Turns a request body into the engine's token ids. */
export interface RequestTokenizer {
  /** Short description for logs, e.g. `local:Qwen2Tokenizer` or `engine:http://10.0.0.5:8000`. */
  readonly name: string;
  /**
   * Token ids of `req` as the engine will compute them.
   * @throws RouterError `bad_request` when the body does not have the shape `kind` requires
   * @throws TokenizeError when the tokens cannot be reproduced or fetched
   */
  tokenize(req: TokenizeRequest): Promise<TokenizeResult>;
  /** Current counters. */
  stats(): TokenizerStats;
}

/** Why a request could not be tokenized. */
export type TokenizeErrorReason =
  /** The request uses something this tokenizer does not reproduce (media parts, a per-request
   * chat template, several prompts, a template error). */
  | "unsupported"
  /** The engine answered with an error status or an unusable body. */
  | "engine_failed"
  /** The engine did not answer in time. */
  | "timeout"
  /** The prompt (local: `maxChars`, or one word over 2048 characters, which BPE takes
   * superlinear time on) or the engine's answer is over a size cap. */
  | "too_large"
  /** Too many engine calls in flight. */
  | "overloaded";

/** The request's tokens cannot be had; route it approximately. */
export class TokenizeError extends Error {
  /** Why (see {@linkcode TokenizeErrorReason}). */
  readonly reason: TokenizeErrorReason;

  /** An error with its reason and a message for logs. */
  constructor(reason: TokenizeErrorReason, message: string) {
    super(message);
    this.reason = reason;
    this.name = "TokenizeError";
  }
}

/** Counters every implementation starts from. */
export function zeroStats(): TokenizerStats {
  return {
    requests: 0,
    failures: 0,
    cacheHits: 0,
    cacheMisses: 0,
    cachedTokens: 0,
    encodedTokens: 0,
    cacheEntries: 0,
    cacheBytes: 0,
    cacheMaxBytes: 0,
    cacheEvictions: 0,
    renderMs: 0,
    encodeMs: 0,
    engineMs: 0,
  };
}
