/**
 * Pooling endpoints of the sim worker, in vLLM's shapes: `POST /v1/embeddings`, `/pooling`,
 * `/v1/score` and `/score`, `/v1/rerank`, `/rerank` and `/v2/rerank` (Jina / Cohere shape).
 *
 * Every input runs through the engine as a prefill-only sequence (one step's worth of prompt, no
 * answer), so pooling requests take the engine's time, load it and use its prefix cache as
 * generation does; a rerank or score pair is the query's tokens then the document's, so pairs that
 * share a query share its blocks.
 *
 * Vectors: a deterministic hashed bag of words of the input (each word, or token id, adds ±1 to
 * one of `embeddingDim` dimensions chosen by its FNV-1a hash; then L2-normalised), so texts that
 * share words are close. `dimensions` (≤ the worker's) keeps the first ones, renormalised;
 * `encoding_format: "base64"` sends little-endian float32s. A score is `(1 + cos) / 2` of the two
 * texts' vectors; rerank results are sorted by it, cut to `top_n`.
 *
 * Bounds: at most 2048 inputs (or pairs) a request.
 *
 * Peers: the answer is a body stream, so a client that leaves mid-prefill cancels its sequences
 * (a shutdown errors the body, as generation's answers).
 *
 * @module
 */

import { BadRequestError } from "./chat_template.ts";
import {
  errorFor,
  frontendTurn,
  gate,
  randomHex,
  readJson,
  type WorkerCore,
} from "./generation.ts";
import type { ResolvedModel } from "./models.ts";
import type { EngineEvent, LoraRef } from "./types.ts";

const MAX_INPUTS = 2048;

/** One pooling input: text, or token ids. */
type Input = { readonly text: string; readonly ids?: undefined } | {
  readonly text?: undefined;
  readonly ids: readonly number[];
};

function isIds(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 &&
    v.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff);
}

/** `input`: a string, strings, token ids, or lists of token ids. */
function inputsOf(v: unknown, param: string): Input[] {
  let out: Input[];
  if (typeof v === "string") out = [{ text: v }];
  else if (isIds(v)) out = [{ ids: v }];
  else if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string")) {
    out = v.map((text) => ({ text }));
  } else if (Array.isArray(v) && v.length > 0 && v.every(isIds)) {
    out = v.map((ids) => ({ ids }));
  } else {
    throw new BadRequestError(`${param} must be a string, strings or token ids`, param);
  }
  if (out.length > MAX_INPUTS) {
    throw new BadRequestError(`at most ${MAX_INPUTS} inputs a request, got ${out.length}`, param);
  }
  return out;
}

function fnv32(s: string): number {
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The vector of an input (module comment). */
function embeddingOf(input: Input, dim: number): number[] {
  const v = new Float64Array(dim);
  const words = input.text !== undefined
    ? input.text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => w !== "")
    : input.ids!.map((x) => `#${x}`);
  for (const w of words) {
    const h = fnv32(w);
    v[h % dim] += h & 0x80000000 ? -1 : 1;
  }
  const seed = fnv32(input.text ?? input.ids!.join(","));
  v[seed % dim] += 1e-3; // so that an input without words still has a direction
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  return Array.from(v, (x) => x / norm);
}

function cosine(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function base64Floats(v: readonly number[]): string {
  const bytes = new Uint8Array(new Float32Array(v).buffer);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/**
 * Runs each token list as a prefill-only sequence; resolves with their `done` events in order.
 * `signal` (the client went away) or a shutdown cancels them.
 */
function prefill(
  core: WorkerCore,
  inputs: readonly Uint32Array[],
  lora: LoraRef | null,
  arrivalMs: number,
  signal: AbortSignal,
): Promise<EngineEvent[]> {
  return new Promise((resolve, reject) => {
    const done: EngineEvent[] = new Array(inputs.length);
    const ids: number[] = [];
    let left = inputs.length;
    const stop = (why: string) => {
      for (const id of ids) core.loop.cancel(id);
      core.open.delete(kill);
      signal.removeEventListener("abort", abort);
      reject(new Error(why));
    };
    const kill = () => stop("sim worker shutting down");
    const abort = () => stop("client went away");
    core.open.add(kill);
    signal.addEventListener("abort", abort, { once: true });
    inputs.forEach((tokens, i) => {
      ids.push(core.loop.submit({ tokens, maxTokens: 1, ignoreEos: true, lora }, (ev) => {
        if (ev.kind !== "done") return;
        core.latency.e2e.observe((core.loop.now() - arrivalMs) / 1000);
        done[i] = ev;
        if (--left > 0) return;
        core.open.delete(kill);
        signal.removeEventListener("abort", abort);
        resolve(done);
      }));
    });
  });
}

type Job = {
  /** Engine inputs, one sequence each. */
  tokens: Uint32Array[];
  answer: (done: EngineEvent[], model: string) => unknown;
};

/** Parses with `parse`, admits the sequences, runs them and answers with `job.answer`. */
async function run(
  core: WorkerCore,
  req: Request,
  parse: (body: Record<string, unknown>) => Job,
): Promise<Response> {
  const body = await readJson(core, req);
  if (body instanceof Response) return body;
  const g = await gate(core, body);
  if (g instanceof Response) return g;
  let job: Job;
  try {
    job = parse(body);
    await frontendTurn(core, job.tokens.reduce((n, t) => n + t.length, 0));
    for (const tokens of job.tokens) core.engine.validate({ tokens, maxTokens: 1 });
  } catch (err) {
    return errorFor(core, err);
  }
  return pooledAnswer(core, job, g.model, g.arrivalMs);
}

/**
 * The answer as a one-chunk body stream, as generation's JSON answers: Deno aborts no
 * `request.signal` while the handler is still running, so the body's cancellation is what tells
 * that the client went away. A shutdown errors the body.
 */
function pooledAnswer(
  core: WorkerCore,
  job: Job,
  model: ResolvedModel,
  arrivalMs: number,
): Response {
  const gone = new AbortController();
  const body = new ReadableStream<Uint8Array>({
    async start(c) {
      try {
        const done = await prefill(core, job.tokens, model.lora, arrivalMs, gone.signal);
        c.enqueue(new TextEncoder().encode(JSON.stringify(job.answer(done, model.name))));
        c.close();
      } catch (err) {
        try {
          c.error(err);
        } catch { /* cancelled */ }
      }
    },
    cancel() {
      gone.abort();
    },
  });
  return new Response(body, { headers: { "content-type": "application/json" } });
}

function tokensOf(core: WorkerCore, input: Input): Uint32Array {
  return input.ids !== undefined
    ? Uint32Array.from(input.ids)
    : core.tokenizer.text(input.text).tokens;
}

function usage(done: readonly EngineEvent[]) {
  const prompt = done.reduce((n, ev) => n + ev.promptTokens, 0);
  return {
    prompt_tokens: prompt,
    total_tokens: prompt,
    completion_tokens: 0,
    prompt_tokens_details: null,
  };
}

/** `POST /v1/embeddings` (`kind` "embedding") or `/pooling` ("pooling"). */
export function embeddingsRequest(
  core: WorkerCore,
  req: Request,
  kind: "embedding" | "pooling",
): Promise<Response> {
  return run(core, req, (body) => {
    const inputs = inputsOf(body.input, "input");
    let dim = core.embeddingDim;
    const d = body.dimensions;
    if (d !== undefined && d !== null) {
      if (!Number.isInteger(d) || (d as number) < 1 || (d as number) > dim) {
        throw new BadRequestError(`dimensions must be an integer from 1 to ${dim}`, "dimensions");
      }
      dim = d as number;
    }
    const format = body.encoding_format ?? "float";
    if (format !== "float" && format !== "base64") {
      throw new BadRequestError("encoding_format must be float or base64", "encoding_format");
    }
    return {
      tokens: inputs.map((x) => tokensOf(core, x)),
      answer: (done, model) => ({
        id: `${kind === "embedding" ? "embd" : "pool"}-${randomHex()}`,
        object: "list",
        created: core.created,
        model,
        data: inputs.map((x, index) => {
          let v = embeddingOf(x, core.embeddingDim);
          if (dim < v.length) v = renorm(v.slice(0, dim));
          const value = format === "base64" ? base64Floats(v) : v;
          return kind === "embedding"
            ? { index, object: "embedding", embedding: value }
            : { index, object: "pooling", data: value };
        }),
        usage: usage(done),
      }),
    };
  });
}

function renorm(v: number[]): number[] {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0)) || 1;
  return v.map((x) => x / n);
}

/** Query-document pairs as engine inputs: the query's tokens, then the document's. */
function pairTokens(core: WorkerCore, a: Input, b: Input): Uint32Array {
  if (a.text !== undefined && b.text !== undefined) {
    return core.tokenizer.text(`${a.text}\n${b.text}`).tokens;
  }
  const x = tokensOf(core, a);
  const y = tokensOf(core, b);
  const out = new Uint32Array(x.length + y.length);
  out.set(x);
  out.set(y, x.length);
  return out;
}

function score(core: WorkerCore, a: Input, b: Input): number {
  const dim = core.embeddingDim;
  return (1 + cosine(embeddingOf(a, dim), embeddingOf(b, dim))) / 2;
}

/** `POST /v1/score` and `/score`: `text_1` against each `text_2` (or pairwise). */
export function scoreRequest(core: WorkerCore, req: Request): Promise<Response> {
  return run(core, req, (body) => {
    const left = inputsOf(body.text_1, "text_1");
    const right = inputsOf(body.text_2, "text_2");
    if (left.length !== 1 && left.length !== right.length) {
      throw new BadRequestError("text_1 must be one text or as many as text_2", "text_1");
    }
    const pairs = right.map((b, i) => [left.length === 1 ? left[0] : left[i], b] as const);
    return {
      tokens: pairs.map(([a, b]) => pairTokens(core, a, b)),
      answer: (done, model) => ({
        id: `score-${randomHex()}`,
        object: "list",
        created: core.created,
        model,
        data: pairs.map(([a, b], index) => ({ index, object: "score", score: score(core, a, b) })),
        usage: usage(done),
      }),
    };
  });
}

/** `POST /v1/rerank`, `/rerank`, `/v2/rerank`: documents by relevance to `query`. */
export function rerankRequest(core: WorkerCore, req: Request): Promise<Response> {
  return run(core, req, (body) => {
    if (typeof body.query !== "string") {
      throw new BadRequestError("query must be a string", "query");
    }
    const query: Input = { text: body.query };
    const docs = Array.isArray(body.documents)
      ? body.documents.map((d) =>
        typeof d === "object" && d !== null && typeof (d as { text?: unknown }).text === "string"
          ? (d as { text: string }).text
          : d
      )
      : body.documents;
    const inputs = inputsOf(docs, "documents");
    const topN = body.top_n;
    if (topN !== undefined && topN !== null && (!Number.isInteger(topN) || (topN as number) < 0)) {
      throw new BadRequestError("top_n must be an integer ≥ 0", "top_n");
    }
    return {
      tokens: inputs.map((d) => pairTokens(core, query, d)),
      answer: (done, model) => {
        const results = inputs.map((d, index) => ({
          index,
          document: { text: d.text ?? d.ids!.join(" ") },
          relevance_score: score(core, query, d),
        })).sort((x, y) => y.relevance_score - x.relevance_score || x.index - y.index);
        const n = typeof topN === "number" && topN > 0 ? topN : results.length;
        const total = done.reduce((s, ev) => s + ev.promptTokens, 0);
        return {
          id: `rerank-${randomHex()}`,
          model,
          usage: { total_tokens: total },
          results: results.slice(0, n),
        };
      },
    };
  });
}
