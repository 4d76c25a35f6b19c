/**
 * The `candidates` and `choose` stages: which workers may take this attempt, which one does, and
 * recording the choice.
 *
 * Candidates: the current workers the request has not tried yet that serve its model
 * (`models.ts`) and are admitted (health check passed, breaker admits, under `max_inflight`; see
 * `Backend.admits`); for a first attempt with flow control on, also not held back by the engine
 * gate (`engine_gate.ts`: the engine reports `flow.queue.engine_max_waiting` requests waiting).
 *
 * Choose, first rule that applies:
 * - a Responses API follow-up goes to the worker that made its `previous_response_id` (the
 *   engine keeps the response in that instance's memory), while it is a candidate, the engine
 *   gate aside (reason `previous-response`);
 * - a request whose session (`router.session_header`) is pinned goes to its pinned worker while
 *   that worker is a candidate (reason `session-affinity`);
 * - otherwise the strategy picks among the candidates (`select.ts`).
 * The session, if any, is pinned to the choice. A retry's reason is
 * `retry-after-<reason>`. Recording (the chosen worker's prefix index now holds the request's
 * prefix) is a separate step, {@link record}, taken when the attempt begins.
 *
 * Cost: one `PrefixIndex.match` per candidate when the strategy uses prefixes (one for the chosen
 * worker otherwise, for the access log and prediction feedback), one map lookup for the session.
 *
 * @module
 */

import type { ChunkHashes } from "../prefix/mod.ts";
import type { Gate } from "./engine_gate.ts";
import { anyServes, servesModel } from "./models.ts";
import type { Backend } from "./pool.ts";
import { decide, recordDecision } from "./select.ts";
import type { RouterState } from "./state.ts";

/** Reason of a request sent to its session's pinned worker. */
export const SESSION_REASON = "session-affinity";
/** Reason of a Responses API follow-up sent to the worker that holds its previous response. */
export const PREVIOUS_RESPONSE_REASON = "previous-response";

/** The worker an attempt goes to, and why. */
export interface Choice {
  readonly backend: Backend;
  /** `X-Router-Reason`, e.g. `longest-prefix` or `retry-after-least-loaded`. */
  readonly reason: string;
  /** Chunks of the request's prefix the router believes the worker holds. */
  readonly match: number;
}

/** What `choose` needs of the request. */
export interface ChooseInput {
  readonly hashes: ChunkHashes;
  readonly sessionId: string | null;
  /** The served model (null: any worker). */
  readonly served: string | null;
  readonly previousResponseId: string | null;
  /** Bytes a chunk stands for (the strategies' `chunkSize`); default `router.chunk_size`. */
  readonly chunkSize?: number;
  /** Prompt tokens of the request. */
  readonly promptTokens?: number;
  /** Precise mode's exact tokens: `promptTokens` is passed to the strategy only then. */
  readonly precise?: boolean;
}

/**
 * Whether `b` may take an attempt of `req` now (`known`: some worker is known to serve it;
 * `held`: flow control's engine gate, `engine_gate.ts`).
 */
function eligible(
  b: Backend,
  served: string | null,
  known: boolean,
  tried: ReadonlySet<Backend>,
  held: Gate | null,
) {
  return !tried.has(b) && servesModel(b, served, known) && b.admits() && !held?.(b);
}

/**
 * The workers an attempt may go to: admitted ones serving the model, not tried yet, and not held
 * back by `held` (flow control's engine gate).
 */
export function candidates(
  backends: readonly Backend[],
  tried: ReadonlySet<Backend>,
  served: string | null = null,
  held: Gate | null = null,
): Backend[] {
  const known = anyServes(backends, served);
  const out: Backend[] = [];
  for (const b of backends) if (eligible(b, served, known, tried, held)) out.push(b);
  return out;
}

/** Whether some admitted worker serving the model (not held back by `held`) is left untried. */
export function anyCandidate(
  backends: readonly Backend[],
  tried: ReadonlySet<Backend>,
  served: string | null = null,
  held: Gate | null = null,
): boolean {
  const known = anyServes(backends, served);
  for (const b of backends) if (eligible(b, served, known, tried, held)) return true;
  return false;
}

/**
 * Chooses the worker of the next attempt (see the module comment); null when no candidate is left.
 * @param retry whether an earlier attempt of this request failed
 * @param now the request's start on the router's clock (strategies read no clock of their own)
 */
export function choose(
  state: RouterState,
  req: ChooseInput,
  tried: ReadonlySet<Backend>,
  retry: boolean,
  now: number,
): Choice | null {
  const backends = state.backends;
  const known = anyServes(backends, req.served);
  // A first attempt may still wait in the router queue: the engine gate holds saturated engines
  // back; a retry may not wait any more.
  const held = retry ? null : state.flow.engineGate;
  const usable = (b: Backend | undefined, gate: Gate | null = held): b is Backend =>
    b !== undefined && backends[b.index] === b && eligible(b, req.served, known, tried, gate);
  const owner = req.previousResponseId === null
    ? undefined
    : state.responses.get(req.previousResponseId);
  const pinned = req.sessionId === null ? undefined : state.sessions.get(req.sessionId);
  let backend: Backend;
  let reason: string;
  let match: number;
  // The engine gate spares the owner: no other worker holds the previous response, so another
  // engine's shorter queue would only turn a wait into a failure.
  if (usable(owner, null)) {
    backend = owner;
    reason = PREVIOUS_RESPONSE_REASON;
    match = owner.prefix.match(req.hashes);
  } else if (usable(pinned)) {
    backend = pinned;
    reason = SESSION_REASON;
    match = pinned.prefix.match(req.hashes);
  } else {
    const strategy = state.strategy;
    const decision = decide({
      strategy,
      targets: candidates(backends, tried, req.served, held),
      hashes: req.hashes,
      chunkSize: req.chunkSize ?? state.config.router.chunkSize,
      requestTokens: req.precise ? req.promptTokens : undefined,
      rng: state.rng,
      now,
    });
    if (!decision) return null;
    backend = backends[decision.candidate.index];
    reason = decision.reason;
    match = strategy.usesPrefix ? decision.candidate.match : backend.prefix.match(req.hashes);
  }
  if (req.sessionId !== null) state.sessions.set(req.sessionId, backend);
  return { backend, reason: retry ? `retry-after-${reason}` : reason, match };
}

/** Records that the chosen worker will now hold the request's prefix. */
export function record(choice: Choice, hashes: ChunkHashes): void {
  recordDecision(choice.backend, hashes);
}
