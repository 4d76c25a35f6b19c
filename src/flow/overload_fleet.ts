/**
 * A fleet of simulated engines ({@linkcode EngineModel}, the same model the offline simulator and
 * the sim worker run) driven on a {@linkcode VirtualScheduler}, for the overload experiment.
 *
 * Rule: each engine steps while it has work, one step at a time, as in `src/sim/offline.ts`: a
 * step starts when the previous one ended (or when work arrives at an idle engine) and its events
 * (first token, done) happen at its end. The fleet keeps the router's in-flight count per worker;
 * a request leaves it when its answer is done or when its client cancels it (the engine frees its
 * sequence at once, as vLLM aborts a request whose client disconnected), and the fleet then calls
 * `onFree` so the owner can wake its queue.
 *
 * Cost: one engine step per worker per step event; prompts are hashed once by the engine.
 *
 * @module
 */

import { EngineModel } from "../sim/engine.ts";
import type { EngineParams, StepResult } from "../sim/types.ts";
import type { VirtualScheduler } from "./scheduler.ts";

/** One request's life in the experiment. */
export interface SimRequest {
  readonly id: number;
  readonly tenant: string;
  readonly className: string;
  readonly promptTokens: number;
  readonly maxTokens: number;
  /** Arrival at the router, ms. */
  readonly arrivedAt: number;
  worker: number;
  seq: number;
  /** When it reached its engine, ms; null when it never did. */
  dispatchedAt: number | null;
  firstAt: number | null;
  doneAt: number | null;
  /** `done`, `client_timeout`, `no_worker` or a shed reason; null while in progress. */
  outcome: string | null;
}

/** Engines plus the router's in-flight counts. */
export class SimFleet {
  readonly inflight: number[];
  readonly #engines: EngineModel[];
  readonly #stepping: boolean[];
  readonly #bySeq: Map<number, SimRequest>[];
  readonly #sched: VirtualScheduler;
  /** Called for each request that left a worker (done or cancelled). */
  onFree: (r: SimRequest) => void = () => {};

  constructor(sched: VirtualScheduler, params: EngineParams, workers: number) {
    this.#sched = sched;
    this.#engines = Array.from({ length: workers }, () => new EngineModel(params));
    this.inflight = new Array(workers).fill(0);
    this.#stepping = new Array(workers).fill(false);
    this.#bySeq = Array.from({ length: workers }, () => new Map());
  }

  /** The least-loaded worker under `cap` in-flight requests (0 = no cap); −1 when none. */
  pick(cap: number): number {
    let best = -1;
    for (let w = 0; w < this.inflight.length; w++) {
      if (cap > 0 && this.inflight[w] >= cap) continue;
      if (best < 0 || this.inflight[w] < this.inflight[best]) best = w;
    }
    return best;
  }

  /** Free slots over the fleet under `cap`. */
  free(cap: number): number {
    let n = 0;
    for (const i of this.inflight) n += Math.max(0, cap - i);
    return n;
  }

  /**
   * Sends `r` to worker `w`. The prompt is a short unique text with its token count given: no
   * cache hits (the experiment is about load, not reuse), and no prompt blocks hashed, so they
   * are freed at once instead of filling the cache's LRU. Both count as free room to the engine's
   * admission, so step times are the same; it avoids evicting a block per admitted block, which
   * `EngineModel` does slowly once the LRU has churned (`Map.keys().next()` skips deleted slots).
   */
  submit(w: number, r: SimRequest): void {
    r.worker = w;
    r.dispatchedAt = this.#sched.now();
    // Token ids unique to the request (no cache hits between requests), `promptTokens` of them.
    const tokens = new Uint32Array(r.promptTokens);
    for (let i = 0; i < tokens.length; i++) tokens[i] = (r.id * 7919 + i) % 150_000;
    r.seq = this.#engines[w].submit({ tokens, maxTokens: r.maxTokens });
    this.#bySeq[w].set(r.seq, r);
    this.inflight[w]++;
    this.#startStep(w);
  }

  /** The client of `r` left: the engine drops it. */
  cancel(r: SimRequest): void {
    const w = r.worker;
    if (w < 0 || !this.#bySeq[w].delete(r.seq)) return;
    this.#engines[w].cancel(r.seq);
    this.inflight[w]--;
    this.onFree(r);
  }

  /** Waiting and running sequences of every engine. */
  engineDepths(): Array<{ waiting: number; running: number }> {
    return this.#engines.map((e) => {
      const s = e.stats();
      return { waiting: s.waiting, running: s.running };
    });
  }

  #startStep(w: number): void {
    if (this.#stepping[w]) return;
    const result = this.#engines[w].step(this.#sched.now());
    if (result === undefined) return;
    this.#stepping[w] = true;
    this.#sched.at(result.endMs, () => this.#stepDone(w, result));
  }

  #stepDone(w: number, result: StepResult): void {
    this.#stepping[w] = false;
    const now = result.endMs;
    const freed: SimRequest[] = [];
    for (const ev of result.events) {
      const r = this.#bySeq[w].get(ev.id);
      if (r === undefined) continue; // cancelled meanwhile
      if (ev.kind === "first_token") r.firstAt = now;
      if (ev.kind !== "done") continue;
      this.#bySeq[w].delete(ev.id);
      this.inflight[w]--;
      r.doneAt = now;
      r.outcome = "done";
      freed.push(r);
    }
    this.#startStep(w);
    for (const r of freed) this.onFree(r);
  }
}
