/**
 * The sim worker: an OpenAI-compatible HTTP server in front of one {@linkcode EngineModel},
 * driven in real time.
 *
 * Endpoints: `POST /v1/chat/completions`, `POST /v1/completions` (SSE streams in OpenAI's chunk
 * format, with a final `choices: []` usage chunk when `stream_options.include_usage` is true, then
 * `data: [DONE]`; JSON otherwise), `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus
 * text, vLLM metric names). `usage.prompt_tokens_details` is `{"cached_tokens": N}` when N > 0 and
 * null otherwise, as vLLM with `--enable-prompt-tokens-details` reports it. Any `model` name is
 * accepted (the worker sits behind a router that forwards the client's); responses name the
 * worker's model.
 *
 * Time: one owner timer drives the engine. While the engine has work, the loop runs a step at
 * engine time `(wall − start) / timeScale`, sleeps `durationMs × timeScale` of wall time, then
 * delivers the step's events and runs the next step. No timer runs while the engine is idle, and
 * `shutdown` stops the loop, ends open streams and closes the listener.
 *
 * A client that disconnects (stream cancel or request abort) cancels its sequence in the engine,
 * which frees its KV blocks.
 *
 * API server time: before the engine sees a request, it waits its turn at a one-at-a-time API
 * front end (`ApiFrontend`: the profile's `apiOverheadMs` plus `tokenizeMsPerToken` per prompt
 * token, in model time, so scaled), as vLLM's API server applies the chat template and tokenizes
 * in one process before the engine core gets the request. A request over the model's length is
 * refused (400) after that time, as vLLM refuses it after tokenizing.
 *
 * vLLM sampling fields honoured: `ignore_eos` (the answer runs to `max_tokens`) and `min_tokens`;
 * other answers end at the engine's end-of-sequence model (`answerLength`).
 *
 * Fault knobs (wall-clock ms, not scaled): `errorRate` (500 with an OpenAI error body, drawn from
 * a seeded rng), `addedLatencyMs` (before handling), `refuseConnections` (the listener is closed;
 * the port is kept and reopened when the knob is turned off), `dieAfterChunks` (the stream errors
 * after N SSE chunks, so the connection ends without a terminating chunk), `stallMs` (headers are
 * sent, the first chunk waits). `setFaults` replaces them at runtime.
 *
 * @module
 */

import { errorResponse, RouterError } from "../util/errors.ts";
import { SeededRng } from "../util/rng.ts";
import type { AnswerLengthModel } from "./answer_length.ts";
import {
  BadRequestError,
  chatPromptText,
  completionPrompt,
  maxTokensOf,
  samplingOf,
} from "./chat_template.ts";
import { EngineError, EngineModel, type EngineRequest } from "./engine.ts";
import { ApiFrontend } from "./frontend.ts";
import { metricsText } from "./metrics_text.ts";
import { RealTimeLoop } from "./real_time_loop.ts";
import { getProfile } from "./profiles.ts";
import type { EngineEvent, EngineParams, FaultOptions } from "./types.ts";

/** Options of {@linkcode startSimWorker}. */
export interface SimWorkerOptions {
  /** Port to bind; 0 (default) picks a free one. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly hostname?: string;
  /** Engine profile name (`a100-7b`, `a100-14b`, `m1-1.5b`). */
  readonly profile: string;
  /** Wall time per unit of model time; 0.1 runs ten times faster. Default 1. */
  readonly timeScale?: number;
  /** Worker id, used in response ids; default `sim-<port>`. */
  readonly id?: string;
  /** Model id served; default `sim-<profile>`. */
  readonly model?: string;
  readonly faults?: FaultOptions;
  /** Seed of the fault rng. Default 1. */
  readonly seed?: number;
  /** `max_tokens` when the request gives none. Default 64. */
  readonly defaultMaxTokens?: number;
  /** Overrides of the profile's engine parameters (tests). */
  readonly params?: Partial<EngineParams>;
  /** Overrides the profile's `max_model_len` (`--max-model-len`). */
  readonly maxModelLen?: number;
  /** Lengths of answers the request does not fix. Default geometric, mean 200. */
  readonly answerLength?: AnswerLengthModel;
  /** Same-step prefix sharing as vLLM `"v1"` (default) or `"v0"`. */
  readonly prefixSharing?: "v1" | "v0";
}

/** A running sim worker. */
export interface SimWorker {
  /** `http://host:port`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  readonly id: string;
  readonly model: string;
  readonly engine: EngineModel;
  /** Replaces the fault knobs; resolves once the listener state matches `refuseConnections`. */
  setFaults(faults: FaultOptions): Promise<void>;
  /** Current fault knobs. */
  faults(): FaultOptions;
  /** Stops the engine loop, ends open streams and closes the listener. */
  shutdown(): Promise<void>;
}

type Timer = ReturnType<typeof setTimeout>;

const encoder = new TextEncoder();

function usageOf(ev: EngineEvent) {
  return {
    prompt_tokens: ev.promptTokens,
    total_tokens: ev.promptTokens + ev.completionTokens,
    completion_tokens: ev.completionTokens,
    prompt_tokens_details: ev.cachedTokens > 0 ? { cached_tokens: ev.cachedTokens } : null,
  };
}

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json" },
  });
}

const ROUTES: Record<string, string> = {
  "/v1/chat/completions": "POST",
  "/v1/completions": "POST",
  "/v1/models": "GET",
  "/health": "GET",
  "/metrics": "GET",
};

/** Starts a sim worker; resolves once it listens. */
export async function startSimWorker(opts: SimWorkerOptions): Promise<SimWorker> {
  const profile = getProfile(opts.profile);
  const timeScale = opts.timeScale ?? 1;
  if (!(timeScale > 0) || !Number.isFinite(timeScale)) {
    throw new RangeError(`time scale must be a positive number, got ${timeScale}`);
  }
  const params = { ...profile.params, ...opts.params };
  if (opts.maxModelLen !== undefined) params.maxModelLen = opts.maxModelLen;
  const engine = new EngineModel(params, {
    answerLength: opts.answerLength,
    prefixSharing: opts.prefixSharing,
    seed: opts.seed,
  });
  const frontend = new ApiFrontend(params);
  const loop = new RealTimeLoop(engine, timeScale);
  const hostname = opts.hostname ?? "127.0.0.1";
  // "sim" is what generated traces ask for (src/bench/traces.ts), so a router that routes by model
  // finds it; `--model` names it otherwise.
  const model = opts.model ?? "sim";
  const defaultMaxTokens = opts.defaultMaxTokens ?? 64;
  const rng = new SeededRng(opts.seed ?? 1);
  const created = Math.floor(Date.now() / 1000);
  let faults: FaultOptions = { ...opts.faults };
  let port = opts.port ?? 0;
  let id = opts.id ?? "";
  let server: Deno.HttpServer | undefined;
  let closing = false;
  let seqNo = 0;
  const timers = new Set<Timer>();
  /** Open responses: each ends itself (stream error or promise reject) on shutdown. */
  const open = new Set<() => void>();

  function later(fn: () => void, ms: number): Timer {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  }
  function clearLater(t: Timer | undefined): void {
    if (t === undefined) return;
    clearTimeout(t);
    timers.delete(t);
  }
  /** Wall-clock delay that shutdown cuts short (it then rejects). */
  function sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const end = () => {
        clearLater(t);
        open.delete(end);
        reject(new Error("sim worker shutting down"));
      };
      const t = later(() => {
        open.delete(end);
        resolve();
      }, ms);
      open.add(end);
    });
  }

  async function completion(req: Request, kind: "chat" | "text"): Promise<Response> {
    let body: Record<string, unknown>;
    try {
      const parsed = await req.json();
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new BadRequestError("request body must be a JSON object");
      }
      body = parsed;
    } catch (err) {
      const msg = err instanceof BadRequestError ? err.message : `invalid JSON body: ${err}`;
      return errorResponse("bad_request", msg);
    }
    const f = faults;
    if ((f.addedLatencyMs ?? 0) > 0) {
      try {
        await sleep(f.addedLatencyMs!);
      } catch {
        return errorResponse("no_worker", "sim worker is shutting down");
      }
    }
    if ((f.errorRate ?? 0) > 0 && rng.next() < f.errorRate!) {
      return errorResponse("internal", "simulated engine failure", { code: "simulated_error" });
    }
    let engineReq: EngineRequest;
    try {
      let prompt: string;
      let promptTokens: number | undefined;
      if (kind === "chat") prompt = chatPromptText(body);
      else ({ text: prompt, promptTokens } = completionPrompt(body));
      const maxTokens = maxTokensOf(body, defaultMaxTokens);
      engineReq = { prompt, promptTokens, maxTokens, ...samplingOf(body) };
      // The API server's turn: template and tokenizer run before the engine sees the request.
      const now = loop.now();
      const wait = frontend.admit(now, promptTokens ?? engine.countTokens(prompt)) - now;
      if (wait > 0) await sleep(wait * timeScale);
      engine.validate(engineReq);
    } catch (err) {
      if (err instanceof BadRequestError) {
        return errorResponse("bad_request", err.message, { param: err.param });
      }
      if (err instanceof EngineError) {
        return errorResponse("bad_request", err.message, { code: err.code });
      }
      if (err instanceof RouterError) {
        return errorResponse(err.kind, err.message, { param: err.param, code: err.code });
      }
      if (closing) return errorResponse("no_worker", "sim worker is shutting down");
      throw err;
    }
    const reqId = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${id}-${++seqNo}`;
    const so = body.stream_options as Record<string, unknown> | undefined;
    const includeUsage = so !== null && typeof so === "object" && so.include_usage === true;
    const args = { kind, reqId, req: engineReq, includeUsage, faults: f };
    return body.stream === true ? streamResponse(args) : jsonResponse(args);
  }

  interface Args {
    kind: "chat" | "text";
    reqId: string;
    req: EngineRequest;
    includeUsage: boolean;
    faults: FaultOptions;
  }

  function chunkOf(a: Args, choice: Record<string, unknown> | null, usage?: unknown): string {
    const obj: Record<string, unknown> = {
      id: a.reqId,
      object: a.kind === "chat" ? "chat.completion.chunk" : "text_completion",
      created,
      model,
      choices: choice === null ? [] : [choice],
    };
    if (usage !== undefined) obj.usage = usage;
    return `data: ${JSON.stringify(obj)}\n\n`;
  }

  /** What an {@linkcode engineBody} event handler may do with its body. */
  interface BodySink {
    /** True once the body has ended (closed, errored, cancelled by the client or on shutdown). */
    readonly finished: boolean;
    /** Enqueues `s`, UTF-8 encoded. */
    enqueue(s: string): void;
    /** Errors the body (the connection ends without a terminator) and cancels the sequence. */
    fail(err: unknown): void;
    /** For a sequence finished in the engine: enqueues `last` if given, then closes the body. */
    end(last?: string): void;
  }

  /**
   * A response body driven by one engine sequence. Submission waits `stallMs` when that fault is
   * set; a submit error errors the body. `onEvent` gets the sequence's events until the body ends
   * and encodes them through the sink. A client that cancels the body cancels the sequence, and
   * shutdown errors it.
   */
  function engineBody(
    a: Args,
    onEvent: (ev: EngineEvent, out: BodySink) => void,
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
      clearLater(stall);
      if (seq !== undefined) loop.cancel(seq);
      open.delete(kill);
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
        seq = loop.submit(a.req, (ev) => {
          if (!finished) onEvent(ev, out);
        });
      } catch (err) {
        out.fail(err);
      }
    };
    return new ReadableStream<Uint8Array>({
      start(c) {
        ctrl = c;
        open.add(kill);
        const stallMs = a.faults.stallMs ?? 0;
        if (stallMs > 0) stall = later(begin, stallMs);
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

  /** The SSE answer: one chunk per event, `dieAfterChunks` counting every chunk sent. */
  function streamResponse(a: Args): Response {
    let chunks = 0;
    const body = engineBody(a, (ev, out) => {
      const send = (s: string): boolean => {
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
      if (ev.kind === "first_token" && a.kind === "chat") {
        const role = {
          index: 0,
          delta: { role: "assistant", content: "" },
          logprobs: null,
          finish_reason: null,
        };
        if (!send(chunkOf(a, role))) return;
      }
      if (ev.kind !== "done") {
        const choice = a.kind === "chat"
          ? { index: 0, delta: { content: ev.text }, logprobs: null, finish_reason: null }
          : { index: 0, text: ev.text, logprobs: null, finish_reason: null };
        send(chunkOf(a, choice));
        return;
      }
      const last = a.kind === "chat"
        ? { index: 0, delta: {}, logprobs: null, finish_reason: ev.finishReason, stop_reason: null }
        : { index: 0, text: "", logprobs: null, finish_reason: ev.finishReason, stop_reason: null };
      if (!send(chunkOf(a, last))) return;
      if (a.includeUsage && !send(chunkOf(a, null, usageOf(ev)))) return;
      if (!send("data: [DONE]\n\n")) return;
      out.end();
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
      },
    });
  }

  /**
   * The JSON answer, sent as a one-chunk body stream: headers go out at once and a client that
   * disconnects cancels the stream, which cancels the sequence (no `request.signal` needed).
   */
  function jsonResponse(a: Args): Response {
    let text = "";
    const body = engineBody(a, (ev, out) => {
      if (ev.kind !== "done") {
        text += ev.text;
        return;
      }
      const choice = a.kind === "chat"
        ? {
          index: 0,
          message: { role: "assistant", content: text },
          logprobs: null,
          finish_reason: ev.finishReason,
          stop_reason: null,
        }
        : { index: 0, text, logprobs: null, finish_reason: ev.finishReason, stop_reason: null };
      out.end(JSON.stringify({
        id: a.reqId,
        object: a.kind === "chat" ? "chat.completion" : "text_completion",
        created,
        model,
        choices: [choice],
        usage: usageOf(ev),
      }));
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  }

  function metrics(): Response {
    return new Response(metricsText(engine.stats(), model), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  }

  async function handler(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const method = ROUTES[path];
    if (method === undefined) return errorResponse("not_found", `no route for ${path}`);
    if (req.method !== method) {
      return errorResponse("method_not_allowed", `${req.method} is not allowed on ${path}`, {
        headers: { allow: method },
      });
    }
    if (closing) return errorResponse("no_worker", "sim worker is shutting down");
    switch (path) {
      case "/v1/chat/completions":
        return await completion(req, "chat");
      case "/v1/completions":
        return await completion(req, "text");
      case "/v1/models":
        return json({
          object: "list",
          data: [{
            id: model,
            object: "model",
            created,
            owned_by: "llm-cache-router-sim",
            root: profile.model,
            max_model_len: engine.params.maxModelLen,
          }],
        });
      case "/health":
        return new Response(null, { status: 200 });
      default:
        return metrics();
    }
  }

  function listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        server = Deno.serve({
          port,
          hostname,
          onListen: (addr) => {
            port = (addr as Deno.NetAddr).port;
            resolve();
          },
        }, handler);
      } catch (err) {
        reject(err);
      }
    });
  }

  async function applyListener(): Promise<void> {
    const refuse = faults.refuseConnections === true;
    if (refuse && server !== undefined) {
      const s = server;
      server = undefined;
      await s.shutdown();
    } else if (!refuse && server === undefined && !closing) {
      await listen();
    }
  }

  await listen();
  if (id === "") id = `sim-${port}`;
  await applyListener();

  return {
    url: `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`,
    port,
    id,
    model,
    engine,
    async setFaults(next: FaultOptions) {
      faults = { ...next };
      await applyListener();
    },
    faults: () => ({ ...faults }),
    async shutdown() {
      if (closing) return;
      closing = true;
      loop.stop();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const end of [...open]) end();
      if (server !== undefined) {
        const s = server;
        server = undefined;
        await s.shutdown();
      }
    },
  };
}
