/**
 * What every endpoint of the sim worker shares: its state (`WorkerCore`), bounded body reading,
 * admission of a request (model, faults, tokens, the API server's turn, length check) and response
 * bodies driven by one engine sequence, streamed or whole.
 *
 * Admission order, as the worker always did it: body → model (vLLM's 404) → fault knobs
 * (`addedLatencyMs`, `errorRate`) → token ids (the tokenizer) → the API front end's turn
 * (`ApiFrontend`, scaled model time) → the engine's length check (400 with vLLM's message).
 *
 * Bodies: a body driven by one sequence submits it when the client starts reading (after
 * `stallMs` when that fault is set), hands each engine event to the endpoint's encoder, and
 * cancels the sequence when the client goes away; shutdown errors it. `dieAfterChunks` counts
 * every SSE event sent. The latency histograms get each request's TTFT and end-to-end time in
 * model time from its arrival at the worker.
 *
 * Cost: one closure set per request; text answers are concatenated once.
 *
 * @module
 */

import { errorResponse, RouterError } from "../util/errors.ts";
import { readCapped } from "../util/read_capped.ts";
import type { SeededRng } from "../util/rng.ts";
import { BadRequestError } from "./chat_template.ts";
import { EngineError, type EngineModel, type EngineRequest } from "./engine.ts";
import type { ApiFrontend } from "./frontend.ts";
import type { LatencyHistograms } from "./metrics_text.ts";
import type { ModelRegistry, ResolvedModel } from "./models.ts";
import type { RealTimeLoop } from "./real_time_loop.ts";
import type { SimTokenizer } from "./sim_tokenizer.ts";
import type { EngineEvent, FaultOptions } from "./types.ts";

type Timer = ReturnType<typeof setTimeout>;

/** The state of one sim worker that its endpoints use. */
export interface WorkerCore {
  readonly engine: EngineModel;
  readonly loop: RealTimeLoop;
  readonly frontend: ApiFrontend;
  readonly models: ModelRegistry;
  readonly tokenizer: SimTokenizer;
  readonly latency: LatencyHistograms;
  readonly rng: SeededRng;
  readonly timeScale: number;
  /** `created` of responses, seconds since the epoch. */
  readonly created: number;
  readonly defaultMaxTokens: number;
  readonly embeddingDim: number;
  readonly maxBodyBytes: number;
  /** Worker id (known once the port is). */
  id(): string;
  /** A fresh request number. */
  nextSeq(): number;
  faults(): FaultOptions;
  closing(): boolean;
  /** A timer shutdown clears. */
  later(fn: () => void, ms: number): Timer;
  clearLater(t: Timer | undefined): void;
  /** Wall-clock delay that shutdown cuts short (it then rejects). */
  sleep(ms: number): Promise<void>;
  /** Open responses: each ends itself on shutdown. */
  readonly open: Set<() => void>;
}

/** A request admitted to the engine. */
export interface Admitted {
  readonly req: EngineRequest;
  readonly model: ResolvedModel;
  readonly faults: FaultOptions;
  /** Engine time of its arrival at the worker. */
  readonly arrivalMs: number;
}

const encoder = new TextEncoder();

/** A JSON response. */
export function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** The body's bytes, at most `max` (413 past it). */
export async function readBytes(
  req: Request,
  max: number,
): Promise<Uint8Array<ArrayBuffer> | Response> {
  try {
    return await readCapped(req, max, () => new BodyTooLarge());
  } catch (err) {
    if (err instanceof BodyTooLarge) {
      return errorResponse("too_large", `request body over ${max} bytes`);
    }
    return errorResponse("bad_request", `cannot read the request body: ${err}`);
  }
}

/** A request body over the worker's cap. */
class BodyTooLarge extends Error {}

/** The body as a JSON object (400 otherwise, 413 when too large). */
export async function readJson(
  core: WorkerCore,
  req: Request,
): Promise<Record<string, unknown> | Response> {
  const bytes = await readBytes(req, core.maxBodyBytes);
  if (bytes instanceof Response) return bytes;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    return errorResponse("bad_request", `invalid JSON body: ${err}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return errorResponse("bad_request", "request body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

/** The response for an error thrown while admitting a request; rethrows defects. */
export function errorFor(core: WorkerCore, err: unknown): Response {
  if (err instanceof BadRequestError) {
    return errorResponse("bad_request", err.message, { param: err.param });
  }
  if (err instanceof EngineError) {
    return errorResponse("bad_request", err.message, { code: err.code });
  }
  if (err instanceof RouterError) {
    return errorResponse(err.kind, err.message, { param: err.param, code: err.code });
  }
  if (core.closing()) return errorResponse("no_worker", "sim worker is shutting down");
  throw err;
}

/** The request's model, then the fault knobs; a Response when the request ends there. */
export async function gate(
  core: WorkerCore,
  body: Record<string, unknown>,
): Promise<{ model: ResolvedModel; faults: FaultOptions; arrivalMs: number } | Response> {
  const arrivalMs = core.loop.now();
  const model = core.models.resolve(body.model);
  if (model instanceof Response) return model;
  const f = core.faults();
  if ((f.addedLatencyMs ?? 0) > 0) {
    try {
      await core.sleep(f.addedLatencyMs!);
    } catch {
      return errorResponse("no_worker", "sim worker is shutting down");
    }
  }
  if ((f.errorRate ?? 0) > 0 && core.rng.next() < f.errorRate!) {
    return errorResponse("internal", "simulated engine failure", { code: "simulated_error" });
  }
  return { model, faults: f, arrivalMs };
}

/** Waits the API server's turn for `tokens` prompt tokens (model time, scaled). */
export async function frontendTurn(core: WorkerCore, tokens: number): Promise<void> {
  const now = core.loop.now();
  const wait = core.frontend.admit(now, tokens) - now;
  if (wait > 0) await core.sleep(wait * core.timeScale);
}

/**
 * Admits one generation request: `build` gives the engine request for the resolved model (its
 * token ids, `max_tokens`, sampling fields); see the module comment for the order.
 */
export async function admit(
  core: WorkerCore,
  body: Record<string, unknown>,
  build: (model: ResolvedModel) => Omit<EngineRequest, "lora">,
): Promise<Admitted | Response> {
  const g = await gate(core, body);
  if (g instanceof Response) return g;
  try {
    const req: EngineRequest = { ...build(g.model), lora: g.model.lora };
    await frontendTurn(core, req.tokens?.length ?? 1);
    core.engine.validate(req);
    return { req, model: g.model, faults: g.faults, arrivalMs: g.arrivalMs };
  } catch (err) {
    return errorFor(core, err);
  }
}

/** What an {@linkcode engineBody} event handler may do with its body. */
interface BodySink {
  /** True once the body has ended (closed, errored, cancelled by the client or on shutdown). */
  readonly finished: boolean;
  enqueue(s: string): void;
  /** Errors the body (the connection ends without a terminator) and cancels the sequence. */
  fail(err: unknown): void;
  /** For a sequence finished in the engine: enqueues `last` if given, then closes the body. */
  end(last?: string): void;
}

/** A response body driven by one engine sequence (module comment). */
function engineBody(
  core: WorkerCore,
  a: Admitted,
  onEvent: (ev: EngineEvent, out: BodySink) => void,
  prelude: readonly string[] = [],
): ReadableStream<Uint8Array> {
  let seq: number | undefined;
  let stall: Timer | undefined;
  let finished = false;
  /** A failure held back until the chunks already queued are read (see `fail`). */
  let failure: { err: unknown } | null = null;
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  const cleanup = () => {
    if (finished) return;
    finished = true;
    core.clearLater(stall);
    if (seq !== undefined) core.loop.cancel(seq);
    core.open.delete(kill);
  };
  const kill = () => {
    cleanup();
    try {
      ctrl.error(new Error("sim worker shutting down"));
    } catch { /* already closed */ }
  };
  const out: BodySink = {
    get finished() {
      return finished;
    },
    enqueue(s) {
      ctrl.enqueue(encoder.encode(s));
    },
    fail(err) {
      cleanup();
      // Erroring a stream drops what is still queued; chunks "sent" before the failure should
      // reach the client first, so the error waits until the queue is read (`pull`).
      if ((ctrl.desiredSize ?? 0) >= 1) ctrl.error(err);
      else failure = { err };
    },
    end(last) {
      seq = undefined; // finished in the engine
      cleanup();
      if (last !== undefined) ctrl.enqueue(encoder.encode(last));
      ctrl.close();
    },
  };
  const begin = () => {
    stall = undefined;
    if (finished) return;
    try {
      seq = core.loop.submit(a.req, (ev) => {
        const secs = (core.loop.now() - a.arrivalMs) / 1000;
        if (ev.kind === "first_token") core.latency.ttft.observe(secs);
        else if (ev.kind === "done") core.latency.e2e.observe(secs);
        if (!finished) onEvent(ev, out);
      });
    } catch (err) {
      out.fail(err);
    }
  };
  return new ReadableStream<Uint8Array>({
    start(c) {
      ctrl = c;
      core.open.add(kill);
      for (const p of prelude) c.enqueue(encoder.encode(p));
      const stallMs = a.faults.stallMs ?? 0;
      if (stallMs > 0) stall = core.later(begin, stallMs);
      else begin();
    },
    pull() {
      if (failure !== null) ctrl.error(failure.err);
    },
    cancel() {
      cleanup();
    },
  });
}

/** Sends SSE text; false once the body ended (or `dieAfterChunks` cut it). */
export type Send = (s: string) => boolean;

/**
 * An SSE response: `encode` turns each event into SSE text through `send`; the body closes after
 * the `done` event's text. `dieAfterChunks` counts every `send`, the prelude's included.
 */
export function sseResponse(
  core: WorkerCore,
  a: Admitted,
  encode: (ev: EngineEvent, send: Send) => void,
  prelude: readonly string[] = [],
): Response {
  let chunks = prelude.length;
  const body = engineBody(core, a, (ev, out) => {
    const send: Send = (s) => {
      if (out.finished) return false;
      out.enqueue(s);
      chunks++;
      const die = a.faults.dieAfterChunks ?? 0;
      if (die > 0 && chunks >= die) {
        out.fail(new Error("simulated connection drop"));
        return false;
      }
      return true;
    };
    encode(ev, send);
    if (ev.kind === "done" && !out.finished) out.end();
  }, prelude);
  return new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
  });
}

/**
 * A JSON answer, sent as a one-chunk body stream: headers go out at once and a client that
 * disconnects cancels the stream, which cancels the sequence (no `request.signal` needed).
 */
export function jsonAnswer(
  core: WorkerCore,
  a: Admitted,
  final: (done: EngineEvent, text: string) => unknown,
): Response {
  let text = "";
  const body = engineBody(core, a, (ev, out) => {
    if (ev.kind !== "done") text += ev.text;
    else out.end(JSON.stringify(final(ev, text)));
  });
  return new Response(body, { headers: { "content-type": "application/json" } });
}

/** Usage in OpenAI's shape with vLLM's `prompt_tokens_details` (null when nothing was cached). */
export function usageOf(ev: EngineEvent) {
  return {
    prompt_tokens: ev.promptTokens,
    total_tokens: ev.promptTokens + ev.completionTokens,
    completion_tokens: ev.completionTokens,
    prompt_tokens_details: ev.cachedTokens > 0 ? { cached_tokens: ev.cachedTokens } : null,
  };
}

/** A random lowercase hex string of `bytes` bytes (ids only this worker knows). */
export function randomHex(bytes = 16): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}
