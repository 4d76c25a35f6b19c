/**
 * Trace generator: deterministic, word-like request traces that share prompt prefixes the way real
 * workloads do.
 *
 * Shapes:
 * - `multiturn`: one shared system prompt; per session `turns` user turns of varied length; each
 *   turn's messages are the previous turn's messages plus the previous answer and a new user turn.
 *   The answers are generated here (about `maxTokens × 4` bytes each), so the history a replay sends
 *   is fixed by the trace, not by what the engine answered.
 * - `tool-loop`: an agent loop with the shared system prompt and tool definitions. Request 0 is the
 *   task, request 1 adds the first tool call and its result (the session prefix), then 2–3 branches
 *   each diverge with their own tool call and extend in round-robin; every branch shares the
 *   session prefix.
 * - `rag`: single-turn questions, each over several documents drawn without replacement from a
 *   shared pool with Zipf popularity (document 0 most popular).
 * - `single`: single-turn questions sharing only the system prompt.
 * - `fork` (forked tool loops) and `agentic` (growing tool outputs): see agent_traces.ts.
 * - `mixed`: sessions rotate through multiturn, tool-loop, rag and single.
 *
 * Every random choice comes from a `SeededRng` derived from `seed`, the pattern and the session
 * index, so a session's content does not depend on how many sessions the trace has. Delays come
 * from a separate stream, so timing options never change content.
 *
 * Answer lengths: with `outputTokens` (a distribution, src/sim/answer_length.ts) every request gets
 * `output_tokens` drawn from it (its own stream), capped at `maxTokens`, and a multiturn answer in
 * the next turn's history is that many tokens long. Without it, lines carry no length and the
 * answers in histories are `maxTokens` long. Lengths are in the simulated engine's tokens: the
 * text is ASCII, and the engine counts 4 bytes a token (`bytesPerToken`), so an answer of L tokens
 * is 4 L bytes.
 *
 * Timing: `generateTrace` writes closed-loop traces (`delay_ms`); `toOpenLoop` gives the same
 * requests open-loop arrival times (`arrival_ms`, Poisson at a rate). The format and its checks
 * are in trace_format.ts.
 *
 * @module
 */

import type { Rng } from "../util/rng.ts";
import { type AnswerLengthModel, drawAnswerLength } from "../sim/answer_length.ts";
import { percentile } from "./stats.ts";
import { parseTraceLines } from "./trace_format.ts";
import { agenticSession, forkSession, forkStartMs } from "./agent_traces.ts";
import { deriveRng, TOOLS, toolStep, varied, word, wordText } from "./trace_text.ts";
import type {
  AnyTraceEntry,
  ChatMessage,
  ChatRequestBody,
  OpenTraceEntry,
  Pattern,
  Shape,
  ToolDef,
  TraceEntry,
} from "./types.ts";
import { MIXED_PATTERNS, PATTERNS } from "./types.ts";

export { deriveRng, TOOLS, wordText };

/** Options of `generateTrace`. */
export interface TraceOptions {
  shape: Shape;
  /** Sessions (concurrent conversations). */
  sessions: number;
  /** Requests per session. */
  turns: number;
  seed: number;
  /** Size of the shared system prompt in bytes (default 6144). */
  systemBytes?: number;
  /** `max_tokens` of each request (default 64); also sizes the generated answers. */
  maxTokens?: number;
  /** Model name in each body (default `sim`). */
  model?: string;
  /** Mean think time between turns in ms, drawn uniformly from [0.5, 1.5] × this (default 0). */
  thinkMs?: number;
  /** First turns start uniformly within [0, staggerMs] (default 0). */
  staggerMs?: number;
  /** RAG: documents in the shared pool (default 32). */
  docs?: number;
  /** RAG: bytes per document (default 2048). */
  docBytes?: number;
  /** RAG: documents per request (default 3). */
  docsPerRequest?: number;
  /** RAG: Zipf exponent of document popularity (default 1.1). */
  zipfS?: number;
  /** Answer lengths to draw `output_tokens` from (default none: lines carry no length). */
  outputTokens?: AnswerLengthModel | null;
}

/** The shared system prompt: exactly `bytes` bytes, the same for every session of a seed. */
export function systemPrompt(seed: number, bytes: number): string {
  const head = "You are a careful assistant. Follow the rules below.\n";
  if (bytes <= head.length) return head.slice(0, bytes);
  return head + wordText(deriveRng(seed, "system"), bytes - head.length);
}

function body(o: Resolved, messages: ChatMessage[], tools?: readonly ToolDef[]): ChatRequestBody {
  const b: ChatRequestBody = {
    model: o.model,
    messages: structuredClone(messages),
    max_tokens: o.maxTokens,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (tools) b.tools = structuredClone(tools as ToolDef[]);
  return b;
}

type Resolved = Required<TraceOptions>;

function resolve(opts: TraceOptions): Resolved {
  const o: Resolved = {
    systemBytes: 6144,
    maxTokens: 64,
    model: "sim",
    thinkMs: 0,
    staggerMs: 0,
    docs: 32,
    docBytes: 2048,
    docsPerRequest: 3,
    zipfS: 1.1,
    outputTokens: null,
    ...stripUndefined(opts),
  } as Resolved;
  const ints: (keyof Resolved)[] = ["sessions", "turns", "systemBytes", "maxTokens", "docs"];
  for (const k of ints) {
    const v = o[k] as number;
    if (!Number.isInteger(v) || v < (k === "systemBytes" ? 0 : 1)) {
      throw new RangeError(`${k} must be a positive integer, got ${v}`);
    }
  }
  if (!Number.isInteger(o.seed)) throw new RangeError(`seed must be an integer, got ${o.seed}`);
  if (o.docsPerRequest < 1 || o.docsPerRequest > o.docs) {
    throw new RangeError(`docsPerRequest must be in [1, docs=${o.docs}], got ${o.docsPerRequest}`);
  }
  if (!(o.shape === "mixed" || (PATTERNS as string[]).includes(o.shape))) {
    throw new RangeError(
      `shape must be one of ${[...PATTERNS, "mixed"].join(", ")}, got ${o.shape}`,
    );
  }
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Delays of one session: first from the stagger window, then think times. */
function delays(o: Resolved, pattern: Pattern, i: number, n: number): number[] {
  const rng = deriveRng(o.seed, "delay", pattern, i);
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    if (k === 0) out.push(o.staggerMs > 0 ? rng.int(o.staggerMs + 1) : 0);
    else out.push(o.thinkMs > 0 ? Math.round(o.thinkMs * (0.5 + rng.next())) : 0);
  }
  return out;
}

/** Answer lengths of one session's `n` requests, or null when the trace fixes none. */
function outputLengths(o: Resolved, pattern: Pattern, i: number, n: number): number[] | null {
  if (o.outputTokens === null) return null;
  const rng = deriveRng(o.seed, "output", pattern, i);
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    out.push(Math.min(o.maxTokens, drawAnswerLength(o.outputTokens, rng)));
  }
  return out;
}

function multiturnSession(
  o: Resolved,
  sys: string,
  i: number,
  lengths: number[] | null,
): ChatRequestBody[] {
  const rng = deriveRng(o.seed, "multiturn", i);
  const history: ChatMessage[] = [{ role: "system", content: sys }];
  const out: ChatRequestBody[] = [];
  for (let k = 0; k < o.turns; k++) {
    history.push({ role: "user", content: wordText(rng, varied(rng, 40, 800)) });
    out.push(body(o, history));
    // 4 ASCII bytes per token of the simulated engine.
    const answerBytes = (lengths?.[k] ?? o.maxTokens) * 4;
    history.push({ role: "assistant", content: wordText(rng, answerBytes) });
  }
  return out;
}

function toolLoopSession(o: Resolved, sys: string, i: number): ChatRequestBody[] {
  const rng = deriveRng(o.seed, "tool-loop", i);
  const callId = (n: number) => `call_${i}_${n}`;
  let calls = 0;
  const base: ChatMessage[] = [
    { role: "system", content: sys },
    { role: "user", content: wordText(rng, varied(rng, 150, 900)) },
  ];
  const out: ChatRequestBody[] = [body(o, base, TOOLS)];
  if (o.turns === 1) return out;
  const prefix = [...base, ...toolStep(rng, callId(calls++))];
  out.push(body(o, prefix, TOOLS));
  const nBranches = Math.max(1, Math.min(o.turns - 2, 2 + rng.int(2)));
  const branches: ChatMessage[][] = [];
  for (let b = 0; b < nBranches; b++) branches.push([...prefix]);
  for (let j = 2; j < o.turns; j++) {
    const hist = branches[(j - 2) % nBranches];
    hist.push(...toolStep(rng, callId(calls++)));
    out.push(body(o, hist, TOOLS));
  }
  return out;
}

/** The shared RAG document pool of a seed. */
export function ragDocuments(seed: number, docs: number, docBytes: number): string[] {
  const rng = deriveRng(seed, "rag-docs");
  const out: string[] = [];
  for (let d = 0; d < docs; d++) {
    const head = `[document ${d}] ${word(rng)} ${word(rng)} ${word(rng)}\n`;
    out.push(head + wordText(rng, Math.max(0, docBytes - head.length)));
  }
  return out;
}

/** Draws `k` distinct ranks from [0, n) with probability ∝ 1/(rank+1)^s, in draw order. */
export function zipfSample(rng: Rng, n: number, k: number, s: number): number[] {
  const ranks = Array.from({ length: n }, (_, r) => r);
  const weights = ranks.map((r) => 1 / Math.pow(r + 1, s));
  const out: number[] = [];
  for (let j = 0; j < k; j++) {
    let total = 0;
    for (const w of weights) total += w;
    let u = rng.next() * total;
    let pick = weights.length - 1;
    for (let x = 0; x < weights.length; x++) {
      u -= weights[x];
      if (u < 0) {
        pick = x;
        break;
      }
    }
    out.push(ranks[pick]);
    ranks.splice(pick, 1);
    weights.splice(pick, 1);
  }
  return out;
}

function ragSession(o: Resolved, sys: string, docs: string[], i: number): ChatRequestBody[] {
  const rng = deriveRng(o.seed, "rag", i);
  const out: ChatRequestBody[] = [];
  for (let k = 0; k < o.turns; k++) {
    const picked = zipfSample(rng, docs.length, o.docsPerRequest, o.zipfS);
    const content = "Answer using only these documents.\n\n" +
      picked.map((d) => docs[d]).join("\n\n") +
      "\n\nQuestion: " + wordText(rng, varied(rng, 40, 300));
    out.push(body(o, [{ role: "system", content: sys }, { role: "user", content }]));
  }
  return out;
}

function singleSession(o: Resolved, sys: string, i: number): ChatRequestBody[] {
  const rng = deriveRng(o.seed, "single", i);
  const out: ChatRequestBody[] = [];
  for (let k = 0; k < o.turns; k++) {
    out.push(body(o, [
      { role: "system", content: sys },
      { role: "user", content: wordText(rng, varied(rng, 60, 1200)) },
    ]));
  }
  return out;
}

/**
 * Generates a trace: sessions in order, each session's requests in turn order. Session ids are
 * `<pattern>-<index>`.
 */
export function generateTrace(opts: TraceOptions): TraceEntry[] {
  const o = resolve(opts);
  const sys = systemPrompt(o.seed, o.systemBytes);
  let docs: string[] | null = null;
  const out: TraceEntry[] = [];
  for (let i = 0; i < o.sessions; i++) {
    const pattern: Pattern = o.shape === "mixed"
      ? MIXED_PATTERNS[i % MIXED_PATTERNS.length]
      : o.shape;
    let bodies: ChatRequestBody[];
    const lengths = outputLengths(o, pattern, i, o.turns);
    switch (pattern) {
      case "multiturn":
        bodies = multiturnSession(o, sys, i, lengths);
        break;
      case "tool-loop":
        bodies = toolLoopSession(o, sys, i);
        break;
      case "rag":
        docs ??= ragDocuments(o.seed, o.docs, o.docBytes);
        bodies = ragSession(o, sys, docs, i);
        break;
      case "single":
        bodies = singleSession(o, sys, i);
        break;
      case "fork":
        bodies = forkSession(o.seed, sys, i, o.turns, (m, t) => body(o, m, t));
        break;
      case "agentic":
        bodies = agenticSession(o.seed, sys, i, o.turns, (m, t) => body(o, m, t));
        break;
    }
    const ds = delays(o, pattern, i, bodies.length);
    if (pattern === "fork") ds[0] = forkStartMs(o.seed, i, o.staggerMs, o.thinkMs);
    bodies.forEach((b, k) => {
      const e: TraceEntry = { session_id: `${pattern}-${i}`, delay_ms: ds[k], pattern, body: b };
      if (lengths !== null) e.output_tokens = lengths[k];
      out.push(e);
    });
  }
  return out;
}

/**
 * Prompt size of a request in bytes: UTF-8 bytes of every message's content and tool-call
 * arguments, plus the tools JSON. Roughly what an engine tokenizes.
 */
export function promptBytes(b: ChatRequestBody): number {
  const enc = new TextEncoder();
  let n = b.tools ? enc.encode(JSON.stringify(b.tools)).length : 0;
  for (const m of b.messages) {
    if (m.content) n += enc.encode(m.content).length;
    for (const c of m.tool_calls ?? []) n += enc.encode(c.function.arguments).length;
  }
  return n;
}

/** What `gen-traces --summary` prints. */
export interface TraceSummary {
  requests: number;
  sessions: number;
  byPattern: Record<string, number>;
  promptBytes: { min: number; p50: number; max: number };
}

/**
 * The requests of a closed-loop trace sent open loop: arrivals form a Poisson process of
 * `ratePerSec` requests a second (exponential gaps from a stream of `seed`), handed out turn by
 * turn across sessions (every session's first request, then every second one, ...), so a
 * session's requests keep their order and sessions progress side by side. Within a round the
 * sessions come in an order shuffled with `seed`: in a fixed order, session s's turn k would be
 * request k × sessions + s, which round-robin over a worker count dividing the session count
 * sends to the same worker every time (perfect affinity by accident). Returned in arrival order.
 */
export function toOpenLoop(
  entries: readonly TraceEntry[],
  ratePerSec: number,
  seed: number,
): OpenTraceEntry[] {
  if (!(ratePerSec > 0) || !Number.isFinite(ratePerSec)) {
    throw new RangeError(`arrival rate must be a positive number, got ${ratePerSec}`);
  }
  const turn = new Map<string, number>();
  const order = entries.map((e, idx) => {
    const k = turn.get(e.session_id) ?? 0;
    turn.set(e.session_id, k + 1);
    return { e, k, idx, r: 0 };
  });
  // A fresh shuffle of the sessions per round: rank of (round, session) from a seeded stream.
  const shuffled = deriveRng(seed, "arrival-order");
  for (const o of order) o.r = shuffled.next();
  order.sort((a, b) => a.k - b.k || a.r - b.r || a.idx - b.idx);
  const rng = deriveRng(seed, "arrivals");
  let t = 0;
  return order.map(({ e }, n) => {
    if (n > 0) t += -Math.log(1 - rng.next()) * 1000 / ratePerSec;
    const { delay_ms: _, ...rest } = e;
    return { ...rest, arrival_ms: Math.round(t) };
  });
}

/** Counts and prompt sizes of a trace. */
export function summarizeTrace(entries: readonly AnyTraceEntry[]): TraceSummary {
  const sizes = entries.map((e) => promptBytes(e.body));
  const byPattern: Record<string, number> = {};
  for (const e of entries) byPattern[e.pattern] = (byPattern[e.pattern] ?? 0) + 1;
  return {
    requests: entries.length,
    sessions: new Set(entries.map((e) => e.session_id)).size,
    byPattern,
    promptBytes: sizes.length === 0 ? { min: 0, p50: 0, max: 0 } : {
      min: Math.min(...sizes),
      p50: percentile(sizes, 50),
      max: Math.max(...sizes),
    },
  };
}

/** One JSON object a line. */
export function traceToJsonl(entries: readonly AnyTraceEntry[]): string {
  return entries.map((e) => JSON.stringify(e)).join("\n") + (entries.length ? "\n" : "");
}

/**
 * Parses a closed-loop trace (blank lines skipped); errors name the line. An open-loop trace
 * (`arrival_ms`) is an error: the HTTP replay runs sessions closed loop.
 */
export function parseTraceJsonl(text: string): TraceEntry[] {
  const { lines, timing } = parseTraceLines(text);
  if (timing === "open") {
    throw new SyntaxError(
      "trace is open loop (arrival_ms on every line); this replays closed-loop traces " +
        "(delay_ms) only: run open-loop traces with simulate",
    );
  }
  return lines as unknown as TraceEntry[];
}

/** Parses a trace of either timing (trace_format.ts); errors name the line. */
export function parseAnyTraceJsonl(text: string): AnyTraceEntry[] {
  return parseTraceLines(text).lines as unknown as AnyTraceEntry[];
}
