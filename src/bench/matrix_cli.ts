/**
 * `bench --matrix`: flags → a `MatrixSpec`, the run, and its files in `bench/results/<name>/`:
 * `matrix.md` (the summary table, then every strategy of every cell) and `matrix.json` (the same
 * figures). Flags that are lists in the matrix (`--workers 4,8,16`) are single values elsewhere.
 *
 * @module
 */

import { parseAnswerLength } from "../sim/answer_length.ts";
import { PROFILES } from "../sim/profiles.ts";
import { STRATEGY_NAMES } from "../strategies/mod.ts";
import { type Loop, type MatrixSpec, perWorker, runMatrix } from "./matrix.ts";
import {
  matrixResults,
  renderFull,
  renderSummary,
  resultsJson,
  TARGET_VS_BEST,
  TARGET_VS_LEASTLOADED,
} from "./matrix_report.ts";
import { parseAnyTraceJsonl } from "./traces.ts";
import { type Shape, SHAPES } from "./types.ts";

/** Every strategy the matrix compares by default. */
export const MATRIX_STRATEGIES = [
  "roundrobin",
  "random",
  "leastloaded",
  "prefixaware",
  "costaware",
  "sglang-cache-aware",
  "llmd-weighted",
  "dynamo-cost",
  "preble-e2",
];

/**
 * Sessions per worker by shape: each loads the fleet so that queueing matters but nothing runs
 * away; agentic sessions are long and heavy, RAG questions short.
 */
export const DEFAULT_SESSIONS_PER_WORKER: Readonly<Record<string, number>> = {
  multiturn: 4,
  "tool-loop": 4,
  rag: 8,
  single: 8,
  fork: 4,
  agentic: 2,
  mixed: 4,
};

/** Flag values the matrix reads (strings as `parseArgs` gives them). */
export interface MatrixFlags {
  name?: string;
  strategies?: string;
  default?: string;
  shapes?: string;
  profiles?: string;
  workers?: string;
  loops?: string;
  "sessions-per-worker"?: string;
  requests?: string;
  turns?: string;
  "max-tokens"?: string;
  "think-ms"?: string;
  "stagger-ms"?: string;
  "answer-length"?: string;
  "first-seed"?: string;
  "kv-blocks"?: string;
  "kv-budget"?: string;
  trace?: string;
  "max-model-len"?: string;
  "strategy-options"?: string;
  out?: string;
}

const csv = (s: string | undefined, d: string[]) =>
  s === undefined ? d : s.split(",").map((x) => x.trim()).filter(Boolean);

/**
 * The spec the flags describe, or the list of what is wrong with them. `defaultStrategy` is the
 * router's default (`router.strategy`) unless `--default` names another.
 */
export function matrixSpec(
  v: MatrixFlags,
  defaultStrategy: string,
): { spec: MatrixSpec; problems: [] } | { spec: null; problems: string[] } {
  const problems: string[] = [];
  const int = (k: keyof MatrixFlags, d: number, min = 1): number => {
    const raw = v[k];
    if (raw === undefined) return d;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min) {
      problems.push(`--${k} must be an integer >= ${min}, got "${raw}"`);
    }
    return n;
  };
  const strategies = csv(v.strategies, MATRIX_STRATEGIES);
  const def = v.default ?? defaultStrategy;
  for (const s of [...strategies, def]) {
    if (!STRATEGY_NAMES.includes(s)) {
      problems.push(`unknown strategy "${s}"; valid: ${STRATEGY_NAMES.join(", ")}`);
    }
  }
  for (const s of ["leastloaded", def]) {
    if (!strategies.includes(s)) strategies.push(s);
  }
  const shapes = csv(v.shapes, ["multiturn", "rag", "fork", "agentic"]);
  for (const s of shapes) {
    if (!SHAPES.includes(s as Shape)) problems.push(`--shapes: unknown shape "${s}"`);
  }
  const profiles = csv(v.profiles, ["a100-7b", "a100-14b"]);
  for (const p of profiles) {
    if (!(p in PROFILES)) problems.push(`--profiles: unknown profile "${p}"`);
  }
  const workers = csv(v.workers, ["4", "8", "16"]).map(Number);
  if (workers.some((w) => !Number.isSafeInteger(w) || w < 1)) {
    problems.push(`--workers must be a comma list of integers >= 1, got "${v.workers}"`);
  }
  const loops = csv(v.loops, ["closed", "open"]);
  for (const l of loops) {
    if (l !== "closed" && l !== "open") problems.push(`--loops: "${l}" is not closed or open`);
  }
  let outputTokens = parseAnswerLength("geometric:200");
  try {
    if (v["answer-length"] !== undefined) outputTokens = parseAnswerLength(v["answer-length"]);
  } catch (err) {
    problems.push(`--answer-length: ${(err as Error).message}`);
  }
  let strategyOptions: Record<string, Record<string, number>> | undefined;
  try {
    if (v["strategy-options"] !== undefined) strategyOptions = JSON.parse(v["strategy-options"]);
  } catch (err) {
    problems.push(
      `--strategy-options must be JSON ({"costaware": {...}}): ${(err as Error).message}`,
    );
  }
  let trace: MatrixSpec["trace"];
  if (v.trace !== undefined) {
    try {
      const entries = parseAnyTraceJsonl(Deno.readTextFileSync(v.trace));
      const name = v.trace.replace(/^.*\//, "").replace(/\.jsonl$/, "");
      trace = { name, entries };
    } catch (err) {
      problems.push(`--trace ${v.trace}: ${(err as Error).message}`);
    }
  }
  const spw: Record<string, number> = { ...DEFAULT_SESSIONS_PER_WORKER };
  const given = v["sessions-per-worker"];
  if (given !== undefined) {
    for (const part of given.split(",").map((x) => x.trim()).filter(Boolean)) {
      const [a, b] = part.includes(":") ? part.split(":") : [null, part];
      const n = Number(b);
      if (!Number.isSafeInteger(n) || n < 1) {
        problems.push(`--sessions-per-worker: "${part}" is not N or SHAPE:N with N >= 1`);
      } else if (a === null) { for (const k of Object.keys(spw)) spw[k] = n; }
      else spw[a] = n;
    }
  }
  if (trace !== undefined) spw[trace.name] ??= 1;
  const kvBlocks = v["kv-blocks"] === undefined ? undefined : int("kv-blocks", 0);
  const kvBudget = v["kv-budget"] === undefined ? undefined : int("kv-budget", 0);
  const maxModelLen = v["max-model-len"] === undefined ? undefined : int("max-model-len", 0);
  const spec: MatrixSpec = {
    shapes: shapes as Shape[],
    profiles,
    workers,
    loops: loops as Loop[],
    strategies,
    defaultStrategy: def,
    sessionsPerWorker: spw,
    requestsPerCell: int("requests", 1536),
    turns: int("turns", 16),
    thinkMs: int("think-ms", 1000, 0),
    staggerMs: int("stagger-ms", 6000, 0),
    maxTokens: int("max-tokens", 256),
    outputTokens,
    firstSeed: int("first-seed", 1, 0),
    ...(kvBlocks === undefined ? {} : { params: { capacityBlocks: kvBlocks } }),
    ...(maxModelLen === undefined ? {} : { maxModelLen }),
    ...(kvBudget === undefined ? {} : { kvBudgetChunks: kvBudget }),
    ...(strategyOptions === undefined ? {} : { strategyOptions }),
    ...(trace === undefined ? {} : { trace }),
  };
  return problems.length > 0 ? { spec: null, problems } : { spec, problems: [] };
}

/** The method line of a run over generated shapes. */
function shapesHeader(spec: MatrixSpec): string {
  const o = spec.outputTokens;
  return (
    `Offline simulator (virtual time). Sessions per worker: ${spwText(spec)}; ` +
    `${spec.turns} turns, think ${spec.thinkMs} ms, first turns over ${spec.staggerMs} ms, ` +
    `max_tokens ${spec.maxTokens}, answer lengths ${o.kind}${
      "mean" in o ? ` mean ${o.mean}` : ""
    }; ` +
    `open loop: the same requests, each arriving when leastloaded issued it in the closed loop. ` +
    `${spec.requestsPerCell} requests per cell and strategy (seeds from ${spec.firstSeed ?? 1}).` +
    (spec.params?.capacityBlocks
      ? ` Engine KV cache: ${spec.params.capacityBlocks} blocks of 16 tokens.`
      : "") +
    (spec.kvBudgetChunks ? ` Router kv_budget: ${spec.kvBudgetChunks} chunks.` : "")
  );
}

/** The method line of a run over a trace file. */
function traceHeader(spec: MatrixSpec): string {
  const t = spec.trace!;
  return `Offline simulator (virtual time) over the trace ${t.name} (${t.entries.length} requests, ` +
    "its own arrival times and answer lengths), every strategy on the same requests." +
    (spec.kvBudgetChunks ? ` Router kv_budget: ${spec.kvBudgetChunks} chunks.` : "");
}

/** Sessions per worker of the shapes (or trace) `spec` runs, as text. */
function spwText(spec: MatrixSpec): string {
  const names = spec.trace ? [spec.trace.name] : [...spec.shapes];
  return names.map((k) => `${k} ${perWorker(spec, k)}`).join(", ");
}

/** Runs the matrix and writes `matrix.md` and `matrix.json` into `dir`; returns the summary. */
export async function matrixStudy(dir: string, title: string, spec: MatrixSpec): Promise<string> {
  const started = performance.now();
  const cells = runMatrix({
    ...spec,
    onCell: (c, done, total) => {
      const s = ((performance.now() - started) / 1000).toFixed(0);
      const x = c.cell;
      console.log(`[${done}/${total}] ${x.shape} ${x.profile} ${x.workers}w ${x.loop}: ${s} s`);
    },
  });
  const results = matrixResults(cells, spec.defaultStrategy);
  const summary = renderSummary(results);
  const md = [
    `# ${title}`,
    "",
    spec.trace ? traceHeader(spec) : shapesHeader(spec),
    "",
    `Target: ${spec.defaultStrategy} p95 TTFT ≤ ${TARGET_VS_LEASTLOADED} × leastloaded's and ≤ ` +
    `${TARGET_VS_BEST} × the best other strategy's. Brackets: 95% paired bootstrap CIs (requests ` +
    "resampled, the same draw for every strategy).",
    "",
    summary,
    "",
    "## Every strategy",
    "",
    renderFull(results),
  ].join("\n");
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/matrix.md`, md);
  await Deno.writeTextFile(
    `${dir}/matrix.json`,
    JSON.stringify(resultsJson(results), null, 1) + "\n",
  );
  return summary;
}
