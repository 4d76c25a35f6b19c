/**
 * simulate: replays a trace offline (virtual time, no HTTP) against N simulated engines through
 * the real strategies, and prints one summary line per strategy (see src/sim/offline.ts).
 *
 *   deno task simulate --trace traces/multi-turn.jsonl --workers 4 --strategies prefixaware,roundrobin
 *
 * @module
 */

import { ANSWER_LENGTH_FORMS, parseAnswerLength } from "../src/sim/answer_length.ts";
import { parseTrace, simulate, type SimulateResult } from "../src/sim/offline.ts";
import { getProfile, PROFILE_NAMES } from "../src/sim/profiles.ts";
import { STRATEGY_NAMES } from "../src/strategies/mod.ts";
import { buildMultiTurnTrace } from "../src/sim/testing.ts";
import type { TraceRequest } from "../src/sim/types.ts";
import { flagChoice, flagHelp, type FlagTable, parseFlags } from "../src/util/cli_flags.ts";
import { DEFAULT_KV_BUDGET } from "../src/config/fields.ts";

/** simulate's flags (the help lists them from here). */
export const FLAGS = {
  trace: {
    type: "string",
    value: "FILE",
    shown: "none: give it or --demo-sessions",
    help: 'JSONL trace, one {"session_id","pattern","body"} a line with either "delay_ms" ' +
      '(closed loop) or "arrival_ms" (open loop) on every line, and optionally "output_tokens"',
  },
  "demo-sessions": {
    type: "string",
    value: "N",
    shown: "none",
    help: "instead of --trace: the built-in test trace (6 turns, 6 KB shared system prompt) " +
      "with N sessions",
  },
  workers: { type: "string", value: "N", default: "4", help: "engines" },
  profile: {
    type: "string",
    value: "NAME",
    default: "a100-7b",
    help: `engine profile: ${PROFILE_NAMES.join(", ")}`,
  },
  "max-model-len": {
    type: "string",
    value: "N",
    shown: "the profile's",
    help: "max model length, tokens",
  },
  "answer-length": {
    type: "string",
    value: "DIST",
    shown: "geometric:200",
    help: `lengths of answers the trace does not fix: ${ANSWER_LENGTH_FORMS}; capped at ` +
      "max_tokens",
  },
  "prefix-sharing": {
    type: "string",
    value: "V",
    shown: "v1",
    help: "v1 (a prefix computed in a step is reused by requests scheduled after it) or v0 " +
      "(each computes it)",
  },
  strategies: {
    type: "string",
    value: "A[,B...]",
    default: "prefixaware,roundrobin,random",
    aliases: ["strategy"],
    help: `strategies to compare: ${STRATEGY_NAMES.join(", ")}`,
  },
  "chunk-size": { type: "string", value: "N", shown: "32", help: "router chunk size, bytes" },
  "min-match-chunks": {
    type: "string",
    value: "N",
    shown: "2",
    help: "prefixaware min_match_chunks",
  },
  "saturation-inflight": {
    type: "string",
    value: "N",
    shown: "8",
    help: "prefixaware valve, 0 = off",
  },
  "kv-budget": {
    type: "string",
    value: "N",
    shown: "131072, the router's; 0 = unbounded",
    help: "prefix index budget per worker in chunks, as the router's kv_budget (prediction " +
      "feedback shrinks it)",
  },
  "no-feedback": {
    type: "boolean",
    default: false,
    help: "keep the index budget fixed (no prediction feedback)",
  },
  index: {
    type: "string",
    value: "MODE",
    shown: "approximate",
    help: "the router's index: approximate (its own routing text, corrected by cached_tokens) " +
      "or precise (the engines' KV events)",
  },
  "event-lag-ms": {
    type: "string",
    value: "N",
    shown: "20",
    help: "precise: from a step's end to its KV events reaching the index",
  },
  "capacity-blocks": {
    type: "string",
    value: "N",
    shown: "the profile's",
    help: "override the profile's KV cache capacity (blocks of 16 tokens)",
  },
  seed: { type: "string", value: "N", shown: "1", help: "routing seed" },
  out: {
    type: "string",
    value: "FILE",
    shown: "none",
    help: "write the per-request records as JSONL (strategy added per line)",
  },
  json: { type: "boolean", default: false, help: "print summaries as JSON lines, not a table" },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagTable;

const HELP = `Usage: simulate [options]

Replays a JSONL trace in virtual time against simulated engines, routed by the real strategies.

Options:
${flagHelp(FLAGS)}

Columns: ttft and total in ms (p50, p95, p99), tpot = time per output token after the first (ms),
queue = time in the engine's queue (ms), preempt = preemptions, evicted = KV blocks evicted,
pred_err = mean |predicted − engine cached tokens| of the router's index, in 16-token blocks.
`;

function int(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isSafeInteger(n) || n < min) {
    throw new Error(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  }
  return n;
}

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "-";
}

const COLUMNS: Array<[string, number]> = [
  ["strategy", 15],
  ["requests", 8],
  ["errors", 6],
  ["kv_cached", 9],
  ["ttft_p50", 8],
  ["ttft_p95", 8],
  ["ttft_p99", 8],
  ["tpot_p50", 8],
  ["tpot_p95", 8],
  ["queue_p50", 9],
  ["queue_p95", 9],
  ["total_p50", 9],
  ["total_p95", 9],
  ["preempt", 7],
  ["evicted", 8],
  ["pred_err", 8],
  ["makespan_s", 10],
];

function row(strategy: string, res: SimulateResult): string {
  const s = res.summary;
  const cells = [
    strategy,
    String(s.requests),
    String(s.errors),
    `${fmt(100 * s.kvCachedShare, 1)}%`,
    fmt(s.ttftP50Ms),
    fmt(s.ttftP95Ms),
    fmt(s.ttftP99Ms),
    fmt(s.tpotP50Ms, 1),
    fmt(s.tpotP95Ms, 1),
    fmt(s.queueP50Ms),
    fmt(s.queueP95Ms),
    fmt(s.totalP50Ms),
    fmt(s.totalP95Ms),
    String(res.totals.preemptions),
    String(res.totals.evictedBlocks),
    fmt(s.predictionErrorBlocks, 2),
    fmt(s.makespanMs / 1000, 1),
  ];
  return cells.map((c, i) => i === 0 ? c.padEnd(COLUMNS[i][1]) : c.padStart(COLUMNS[i][1]))
    .join(" ");
}

async function main(args: string[]): Promise<number> {
  const values = parseFlags(FLAGS, args);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const strategies = values.strategies.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const sharing = flagChoice("prefix-sharing", values["prefix-sharing"], ["v0", "v1"]);
  const index = flagChoice("index", values.index, ["approximate", "precise"]);
  const capacity = int("capacity-blocks", values["capacity-blocks"], 1);
  // Every flag is checked before the trace is read and before the first line of output.
  const params = {
    index,
    eventLagMs: int("event-lag-ms", values["event-lag-ms"], 0),
    params: capacity === undefined ? undefined : { capacityBlocks: capacity },
    workers: int("workers", values.workers, 1)!,
    profile: values.profile!,
    maxModelLen: int("max-model-len", values["max-model-len"], 1),
    answerLength: values["answer-length"] === undefined
      ? undefined
      : parseAnswerLength(values["answer-length"]),
    prefixSharing: sharing,
    chunkSize: int("chunk-size", values["chunk-size"], 1),
    minMatchChunks: int("min-match-chunks", values["min-match-chunks"], 0),
    saturationInflight: int("saturation-inflight", values["saturation-inflight"], 0),
    kvBudgetChunks: int("kv-budget", values["kv-budget"], DEFAULT_KV_BUDGET),
    feedback: !values["no-feedback"],
    seed: int("seed", values.seed, 0),
  };
  if (strategies.length === 0) throw new Error("--strategies must name at least one strategy");
  for (const s of strategies) {
    if (!STRATEGY_NAMES.includes(s)) {
      throw new Error(`unknown strategy "${s}"; valid: ${STRATEGY_NAMES.join(", ")}`);
    }
  }
  getProfile(params.profile); // throws on an unknown profile
  let trace: TraceRequest[];
  if (values.trace !== undefined) {
    trace = parseTrace(await Deno.readTextFile(values.trace));
  } else if (values["demo-sessions"] !== undefined) {
    trace = buildMultiTurnTrace({ sessions: int("demo-sessions", values["demo-sessions"], 1)! });
  } else {
    throw new Error("give --trace FILE or --demo-sessions N (see --help)");
  }
  const out: string[] = [];
  if (!values.json) {
    console.log(
      COLUMNS.map(([name, w], i) => i === 0 ? name.padEnd(w) : name.padStart(w)).join(" "),
    );
  }
  for (const strategy of strategies) {
    const t0 = performance.now();
    const res = simulate({ trace, strategy, ...params });
    if (values.json) {
      const wallMs = performance.now() - t0;
      console.log(JSON.stringify({ strategy, ...res.summary, ...res.totals, wallMs }));
    } else {
      console.log(row(strategy, res));
    }
    if (values.out !== undefined) {
      for (const r of res.records) out.push(JSON.stringify({ strategy, ...r }));
    }
  }
  if (values.out !== undefined) await Deno.writeTextFile(values.out, out.join("\n") + "\n");
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`simulate: ${err instanceof Error ? err.message : err}`);
    Deno.exit(2);
  }
}
