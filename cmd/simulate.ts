/**
 * simulate: replays a trace offline (virtual time, no HTTP) against N simulated engines through
 * the real strategies, and prints one summary line per strategy (see src/sim/offline.ts).
 *
 *   deno task simulate --trace traces/multi-turn.jsonl --workers 4 --strategy prefixaware,roundrobin
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseTrace, simulate } from "../src/sim/offline.ts";
import { getProfile, PROFILE_NAMES } from "../src/sim/profiles.ts";
import { STRATEGY_NAMES } from "../src/strategies/mod.ts";
import { buildMultiTurnTrace } from "../src/sim/testing.ts";
import type { TraceRequest } from "../src/sim/types.ts";

const HELP = `Usage: simulate [options]

Replays a JSONL trace in virtual time against simulated engines, routed by the real strategies.

Options:
  --trace FILE               JSONL trace ({"session_id","delay_ms","pattern","body"} per line)
  --demo-sessions N          instead of --trace: the built-in test trace (6 turns, 6 KB shared
                             system prompt) with N sessions
  --workers N                engines (default 4)
  --profile NAME             ${PROFILE_NAMES.join(", ")} (default a100-7b)
  --strategy A[,B...]        strategies to compare (default prefixaware,roundrobin,random)
  --chunk-size N             router chunk size in bytes (default 32)
  --min-match-chunks N       prefixaware min_match_chunks (default 2)
  --saturation-inflight N    prefixaware valve, 0 = off (default 8)
  --kv-budget N              prefix index budget per worker in chunks (default: engine capacity)
  --seed N                   routing seed (default 1)
  --out FILE                 write the per-request records as JSONL (strategy added per line)
  --json                     print summaries as JSON lines instead of a table
  -h, --help                 show this help
`;

function int(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || n < min) {
    throw new Error(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  }
  return n;
}

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "-";
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      trace: { type: "string" },
      "demo-sessions": { type: "string" },
      workers: { type: "string", default: "4" },
      profile: { type: "string", default: "a100-7b" },
      strategy: { type: "string", default: "prefixaware,roundrobin,random" },
      "chunk-size": { type: "string" },
      "min-match-chunks": { type: "string" },
      "saturation-inflight": { type: "string" },
      "kv-budget": { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  let trace: TraceRequest[];
  if (values.trace !== undefined) {
    trace = parseTrace(await Deno.readTextFile(values.trace));
  } else if (values["demo-sessions"] !== undefined) {
    trace = buildMultiTurnTrace({ sessions: int("demo-sessions", values["demo-sessions"], 1)! });
  } else {
    throw new Error("give --trace FILE or --demo-sessions N (see --help)");
  }
  const strategies = values.strategy!.split(",").map((s) => s.trim()).filter((s) => s !== "");
  // Every flag is checked before the first line of output.
  const params = {
    workers: int("workers", values.workers, 1)!,
    chunkSize: int("chunk-size", values["chunk-size"], 1),
    minMatchChunks: int("min-match-chunks", values["min-match-chunks"], 0),
    saturationInflight: int("saturation-inflight", values["saturation-inflight"], 0),
    kvBudgetChunks: int("kv-budget", values["kv-budget"], 0),
    seed: int("seed", values.seed, 0),
  };
  if (strategies.length === 0) throw new Error("--strategy must name at least one strategy");
  for (const s of strategies) {
    if (!STRATEGY_NAMES.includes(s)) {
      throw new Error(`unknown strategy "${s}"; valid: ${STRATEGY_NAMES.join(", ")}`);
    }
  }
  getProfile(values.profile!); // throws on an unknown profile
  const out: string[] = [];
  if (!values.json) {
    console.log(
      "strategy        requests errors kv_cached ttft_p50 ttft_p95 total_p50 total_p95 makespan_s",
    );
  }
  for (const strategy of strategies) {
    const t0 = performance.now();
    const res = simulate({ trace, profile: values.profile, strategy, ...params });
    const s = res.summary;
    if (values.json) {
      console.log(JSON.stringify({ strategy, ...s, wallMs: performance.now() - t0 }));
    } else {
      console.log(
        [
          strategy.padEnd(15),
          String(s.requests).padStart(8),
          String(s.errors).padStart(6),
          `${fmt(100 * s.kvCachedShare, 1)}%`.padStart(9),
          fmt(s.ttftP50Ms).padStart(8),
          fmt(s.ttftP95Ms).padStart(8),
          fmt(s.totalP50Ms).padStart(9),
          fmt(s.totalP95Ms).padStart(9),
          fmt(s.makespanMs / 1000, 1).padStart(10),
        ].join(" "),
      );
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
