/**
 * The sim worker: a vLLM-like OpenAI-compatible HTTP server in front of one
 * {@linkcode EngineModel}, driven in real time.
 *
 * Endpoints (each in its own module):
 * - generation through the engine: `POST /v1/chat/completions`, `/v1/completions`
 *   (openai_api.ts), `/v1/responses` and `GET /v1/responses/{id}` (responses_api.ts),
 *   `/v1/messages` (messages_api.ts, Anthropic);
 * - pooling through the engine (prefill only): `/v1/embeddings`, `/pooling`, `/v1/score`,
 *   `/score`, `/v1/rerank`, `/rerank`, `/v2/rerank` (pooling_api.ts);
 * - `/tokenize`, `/detokenize` (tokenize_api.ts), `/v1/audio/transcriptions` and
 *   `/v1/audio/translations` (audio_api.ts, multipart);
 * - `GET /v1/models`, and with `allowRuntimeLora` `POST /v1/load_lora_adapter` and
 *   `/v1/unload_lora_adapter` (models.ts); `POST /reset_prefix_cache` (vLLM's; with
 *   `?reset_running_requests=true` running requests are preempted first; refused with 409 while
 *   sequences hold blocks, where vLLM only logs a warning); `GET /health`, `GET /metrics`.
 * Unknown paths get 404 and a wrong method 405 with `Allow`, in OpenAI's error shape.
 *
 * Models: see models.ts (vLLM's 404 for a model not served, when names were given). Tokens: see
 * sim_tokenizer.ts (pseudo, or a model's real tokenizer). KV events: see kv_publish.ts (one batch
 * per engine step over ZMQ, when `kvEvents` is set).
 *
 * Time: one owner timer drives the engine (real_time_loop.ts): a step runs at engine time
 * `(wall − start) / timeScale` and its events are delivered `durationMs × timeScale` of wall time
 * later. No timer runs while the engine is idle; `shutdown` stops the loop, ends open streams,
 * closes the listener and the KV sockets. A client that disconnects cancels its sequence, which
 * frees its KV blocks. API server time: see generation.ts.
 *
 * Fault knobs (wall-clock ms, not scaled): `errorRate` (500 with an OpenAI error body, drawn from
 * a seeded rng), `addedLatencyMs` (before handling), `refuseConnections` (the listener is closed;
 * the port is kept and reopened when the knob is turned off), `dieAfterChunks` (the stream errors
 * after N SSE events, so the connection ends without a terminating one), `stallMs` (headers are
 * sent, the first token waits). `setFaults` replaces them at runtime.
 *
 * @module
 */

import { errorResponse } from "../util/errors.ts";
import { SeededRng } from "../util/rng.ts";
import type { AnswerLengthModel } from "./answer_length.ts";
import { audioRequest } from "./audio_api.ts";
import { EngineModel } from "./engine.ts";
import { ApiFrontend } from "./frontend.ts";
import { json, readJson, type WorkerCore } from "./generation.ts";
import { type SimKvEventsOptions, type SimKvPublisher, startKvPublisher } from "./kv_publish.ts";
import { messagesRequest } from "./messages_api.ts";
import { latencyHistograms, metricsText } from "./metrics_text.ts";
import { type LoraModule, ModelRegistry } from "./models.ts";
import { completionRequest } from "./openai_api.ts";
import { embeddingsRequest, rerankRequest, scoreRequest } from "./pooling_api.ts";
import { getProfile } from "./profiles.ts";
import { RealTimeLoop } from "./real_time_loop.ts";
import { responsesRequest, ResponseStore, retrieveResponse } from "./responses_api.ts";
import { pseudoTokenizer, type SimTokenizer } from "./sim_tokenizer.ts";
import { detokenizeRequest, tokenizeRequest } from "./tokenize_api.ts";
import type { EngineParams, FaultOptions } from "./types.ts";
import { vllmError } from "./vllm_errors.ts";

export type { SimKvEventsOptions } from "./kv_publish.ts";
export type { LoraModule } from "./models.ts";

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
  /** One served model name; same as `models: [model]`. */
  readonly model?: string;
  /**
   * Served model names (the first names responses); given, a request for another model is
   * vLLM's 404. Default `sim-<profile>`, accepting any model name.
   */
  readonly models?: readonly string[];
  /** LoRA adapters served from the start (parent: the first model). */
  readonly loras?: readonly LoraModule[];
  /** Serve vLLM's runtime adapter endpoints (`VLLM_ALLOW_RUNTIME_LORA_UPDATING`). Default false. */
  readonly allowRuntimeLora?: boolean;
  /** The tokenizer (see `loadSimTokenizer`); default pseudo tokens. */
  readonly tokenizer?: SimTokenizer;
  /** Publish KV cache events over ZMQ. */
  readonly kvEvents?: SimKvEventsOptions;
  /** Dimensions of embedding vectors. Default 64. */
  readonly embeddingDim?: number;
  /** Largest JSON body accepted, bytes. Default 32 MiB. */
  readonly maxBodyBytes?: number;
  /** Responses kept for `previous_response_id`. Default 1024. */
  readonly maxStoredResponses?: number;
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
  /** The first served model name. */
  readonly model: string;
  readonly models: ModelRegistry;
  readonly engine: EngineModel;
  readonly tokenizer: SimTokenizer;
  /** Port of the KV event PUB socket, and of its replay ROUTER; null without. */
  readonly kvEventsPort: number | null;
  readonly kvEventsReplayPort: number | null;
  /** Replaces the fault knobs; resolves once the listener state matches `refuseConnections`. */
  setFaults(faults: FaultOptions): Promise<void>;
  /** Current fault knobs. */
  faults(): FaultOptions;
  /** Stops the engine loop, ends open streams, closes the listener and the KV sockets. */
  shutdown(): Promise<void>;
}

type Timer = ReturnType<typeof setTimeout>;

const ROUTES: Record<string, string> = {
  "/v1/chat/completions": "POST",
  "/v1/completions": "POST",
  "/v1/responses": "POST",
  "/v1/messages": "POST",
  "/v1/embeddings": "POST",
  "/pooling": "POST",
  "/v1/score": "POST",
  "/score": "POST",
  "/v1/rerank": "POST",
  "/rerank": "POST",
  "/v2/rerank": "POST",
  "/tokenize": "POST",
  "/detokenize": "POST",
  "/v1/audio/transcriptions": "POST",
  "/v1/audio/translations": "POST",
  "/reset_prefix_cache": "POST",
  "/v1/models": "GET",
  "/health": "GET",
  "/metrics": "GET",
};

const LORA_ROUTES: Record<string, string> = {
  "/v1/load_lora_adapter": "POST",
  "/v1/unload_lora_adapter": "POST",
};

/** A decoded path segment; one that is not valid percent-encoding is kept as sent (no id matches). */
function pathSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Starts a sim worker; resolves once it listens. */
export async function startSimWorker(opts: SimWorkerOptions): Promise<SimWorker> {
  const profile = getProfile(opts.profile);
  const timeScale = opts.timeScale ?? 1;
  if (!(timeScale > 0) || !Number.isFinite(timeScale)) {
    throw new RangeError(`time scale must be a positive number, got ${timeScale}`);
  }
  const embeddingDim = opts.embeddingDim ?? 64;
  if (!Number.isInteger(embeddingDim) || embeddingDim < 1 || embeddingDim > 65536) {
    throw new RangeError(`embedding dimension must be an integer 1..65536, got ${embeddingDim}`);
  }
  const params = { ...profile.params, ...opts.params };
  if (opts.maxModelLen !== undefined) params.maxModelLen = opts.maxModelLen;
  const tokenizer = opts.tokenizer ?? pseudoTokenizer();
  const engine = new EngineModel(params, {
    answerLength: opts.answerLength,
    prefixSharing: opts.prefixSharing,
    seed: opts.seed,
    kvEvents: opts.kvEvents !== undefined,
    vocab: tokenizer.vocab,
  });
  const named = opts.models ?? (opts.model === undefined ? undefined : [opts.model]);
  const created = Math.floor(Date.now() / 1000);
  const models = new ModelRegistry({
    // "sim" is what generated traces ask for (src/bench/traces.ts), so a router that routes by
    // model finds it; `--model` names others.
    names: named ?? ["sim"],
    strict: named !== undefined,
    root: profile.model,
    maxModelLen: params.maxModelLen,
    loras: opts.loras,
    created,
  });
  const kv: SimKvPublisher | null = opts.kvEvents ? startKvPublisher(opts.kvEvents) : null;
  const loop = new RealTimeLoop(engine, timeScale, kv === null ? undefined : kv.publish);
  const hostname = opts.hostname ?? "127.0.0.1";
  const responses = new ResponseStore(opts.maxStoredResponses ?? 1024);
  let faults: FaultOptions = { ...opts.faults };
  let port = opts.port ?? 0;
  let id = opts.id ?? "";
  let server: Deno.HttpServer | undefined;
  let closing = false;
  let seqNo = 0;
  const timers = new Set<Timer>();
  const open = new Set<() => void>();

  const core: WorkerCore = {
    engine,
    loop,
    frontend: new ApiFrontend(params),
    models,
    tokenizer,
    latency: latencyHistograms(),
    rng: new SeededRng(opts.seed ?? 1),
    timeScale,
    created,
    defaultMaxTokens: opts.defaultMaxTokens ?? 64,
    embeddingDim,
    maxBodyBytes: opts.maxBodyBytes ?? 32 * 1024 * 1024,
    id: () => id,
    nextSeq: () => ++seqNo,
    faults: () => faults,
    closing: () => closing,
    later(fn, ms) {
      const t = setTimeout(() => {
        timers.delete(t);
        fn();
      }, ms);
      timers.add(t);
      return t;
    },
    clearLater(t) {
      if (t === undefined) return;
      clearTimeout(t);
      timers.delete(t);
    },
    sleep(ms) {
      return new Promise((resolve, reject) => {
        const end = () => {
          core.clearLater(t);
          open.delete(end);
          reject(new Error("sim worker shutting down"));
        };
        const t = core.later(() => {
          open.delete(end);
          resolve();
        }, ms);
        open.add(end);
      });
    },
    open,
  };

  function resetPrefixCache(req: Request): Response {
    const running = new URL(req.url).searchParams.get("reset_running_requests") === "true";
    loop.flushKvEvents(); // the step in flight announced its blocks before the clear
    const ok = engine.resetPrefixCache(running);
    const events = engine.takeKvEvents();
    if (events.length > 0) kv?.publish(events);
    loop.wake();
    if (ok) return new Response(null, { status: 200 });
    const used = engine.stats().usedBlocks;
    return vllmError(
      409,
      "Conflict",
      `Failed to reset prefix cache because some blocks (${used}) are not freed yet`,
    );
  }

  async function loraRoute(req: Request, path: string): Promise<Response> {
    const body = await readJson(core, req);
    if (body instanceof Response) return body;
    return path === "/v1/load_lora_adapter" ? models.load(body) : models.unload(body);
  }

  function route(req: Request, path: string): Promise<Response> | Response {
    switch (path) {
      case "/v1/chat/completions":
        return completionRequest(core, req, "chat");
      case "/v1/completions":
        return completionRequest(core, req, "text");
      case "/v1/responses":
        return responsesRequest(core, responses, req);
      case "/v1/messages":
        return messagesRequest(core, req);
      case "/v1/embeddings":
        return embeddingsRequest(core, req, "embedding");
      case "/pooling":
        return embeddingsRequest(core, req, "pooling");
      case "/v1/score":
      case "/score":
        return scoreRequest(core, req);
      case "/v1/rerank":
      case "/rerank":
      case "/v2/rerank":
        return rerankRequest(core, req);
      case "/tokenize":
        return tokenizeRequest(core, req);
      case "/detokenize":
        return detokenizeRequest(core, req);
      case "/v1/audio/transcriptions":
        return audioRequest(core, req, "transcription");
      case "/v1/audio/translations":
        return audioRequest(core, req, "translation");
      case "/reset_prefix_cache":
        return resetPrefixCache(req);
      case "/v1/load_lora_adapter":
      case "/v1/unload_lora_adapter":
        return loraRoute(req, path);
      case "/v1/models":
        return json(models.list());
      case "/health":
        return new Response(null, { status: 200 });
      default:
        return new Response(metricsText(engine.stats(), models.base, core.latency), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
    }
  }

  async function handler(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const stored = path.startsWith("/v1/responses/") ? path.slice("/v1/responses/".length) : null;
    const method = stored !== null && stored !== "" && !stored.includes("/")
      ? "GET"
      : ROUTES[path] ?? (opts.allowRuntimeLora ? LORA_ROUTES[path] : undefined);
    if (method === undefined) return errorResponse("not_found", `no route for ${path}`);
    if (req.method !== method) {
      return errorResponse("method_not_allowed", `${req.method} is not allowed on ${path}`, {
        headers: { allow: method },
      });
    }
    if (closing) return errorResponse("no_worker", "sim worker is shutting down");
    if (stored !== null && method === "GET" && path !== "/v1/responses") {
      return retrieveResponse(responses, pathSegment(stored));
    }
    return await route(req, path);
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

  try {
    await listen();
  } catch (err) {
    await kv?.stop();
    throw err;
  }
  if (id === "") id = `sim-${port}`;
  await applyListener();

  return {
    url: `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`,
    port,
    id,
    model: models.base,
    models,
    engine,
    tokenizer,
    kvEventsPort: kv?.port ?? null,
    kvEventsReplayPort: kv?.replayPort ?? null,
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
      await kv?.stop();
    },
  };
}
