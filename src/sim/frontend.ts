/**
 * ApiFrontend: the time a request spends in the engine's API server before the engine core sees
 * it (vLLM V1 runs HTTP handling, the chat template and the tokenizer in a front-end process and
 * hands the request to the engine core over ZMQ).
 *
 * Rule: one request at a time, in arrival order: a request arriving at `now` starts when the
 * previous one is done, and takes `apiOverheadMs + tokenizeMsPerToken × promptTokens`. One at a
 * time is the first-order model of one Python process; it makes a burst queue at the front end as
 * it does on a real server. Times are the engine's (model time).
 *
 * Cost: O(1) per request, no timers.
 *
 * @module
 */

import type { EngineParams } from "./types.ts";

/** The API server in front of one engine, as a single queue. */
export class ApiFrontend {
  readonly #overheadMs: number;
  readonly #msPerToken: number;
  #busyUntil = -Infinity;

  constructor(params: Pick<EngineParams, "apiOverheadMs" | "tokenizeMsPerToken">) {
    this.#overheadMs = params.apiOverheadMs;
    this.#msPerToken = params.tokenizeMsPerToken;
  }

  /** When a request that reaches the server at `now` with `promptTokens` tokens reaches the engine. */
  admit(now: number, promptTokens: number): number {
    const cost = this.#overheadMs + this.#msPerToken * promptTokens;
    if (!(cost > 0)) return now;
    const done = Math.max(now, this.#busyUntil) + cost;
    this.#busyUntil = done;
    return done;
  }
}
