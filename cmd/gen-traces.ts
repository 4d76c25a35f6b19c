/**
 * `gen-traces`: writes a benchmark trace as JSONL, one request a line.
 *
 *   deno run --allow-write cmd/gen-traces.ts --shape multiturn --sessions 8 --turns 8 \
 *     --seed 1 [--system-bytes 6144] [--max-tokens 64] [--model sim] [--think-ms 0] \
 *     [--stagger-ms 0] [--out FILE] [--summary]
 *
 * Without `--out` the trace goes to stdout. `--summary` prints the request count and prompt sizes
 * (to stderr when the trace goes to stdout).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { generateTrace, summarizeTrace, traceToJsonl } from "../src/bench/traces.ts";
import type { Shape } from "../src/bench/types.ts";
import { SHAPES } from "../src/bench/types.ts";

const USAGE = `Usage: gen-traces --shape ${SHAPES.join("|")} [--sessions N] [--turns N] [--seed N]
  [--system-bytes N] [--max-tokens N] [--model NAME] [--think-ms N] [--stagger-ms N]
  [--docs N] [--doc-bytes N] [--docs-per-request N] [--out FILE] [--summary]`;

/** Flag `name` as an integer (default `dflt`), at least `min` when given. */
function int(name: string, v: string | undefined, dflt: number, min = -Infinity): number {
  if (v === undefined) return dflt;
  const n = v.trim() === "" ? NaN : Number(v);
  if (!Number.isSafeInteger(n) || n < min) {
    const floor = min === -Infinity ? "" : ` >= ${min}`;
    throw new Error(`--${name} must be an integer${floor}, got "${v}"`);
  }
  return n;
}

function main(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: {
      shape: { type: "string", default: "multiturn" },
      sessions: { type: "string" },
      turns: { type: "string" },
      seed: { type: "string" },
      "system-bytes": { type: "string" },
      "max-tokens": { type: "string" },
      model: { type: "string" },
      "think-ms": { type: "string" },
      "stagger-ms": { type: "string" },
      docs: { type: "string" },
      "doc-bytes": { type: "string" },
      "docs-per-request": { type: "string" },
      out: { type: "string" },
      summary: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!(SHAPES as string[]).includes(values.shape!)) {
    throw new Error(`--shape must be one of ${SHAPES.join(", ")}, got "${values.shape}"`);
  }
  const trace = generateTrace({
    shape: values.shape as Shape,
    sessions: int("sessions", values.sessions, 8, 1),
    turns: int("turns", values.turns, 8, 1),
    seed: int("seed", values.seed, 1),
    systemBytes: int("system-bytes", values["system-bytes"], 6144, 1),
    maxTokens: int("max-tokens", values["max-tokens"], 64, 1),
    model: values.model,
    thinkMs: int("think-ms", values["think-ms"], 0, 0),
    staggerMs: int("stagger-ms", values["stagger-ms"], 0, 0),
    docs: int("docs", values.docs, 32, 1),
    docBytes: int("doc-bytes", values["doc-bytes"], 2048, 1),
    docsPerRequest: int("docs-per-request", values["docs-per-request"], 3, 1),
  });
  const jsonl = traceToJsonl(trace);
  if (values.out) Deno.writeTextFileSync(values.out, jsonl);
  else Deno.stdout.writeSync(new TextEncoder().encode(jsonl));
  if (values.summary) {
    const s = summarizeTrace(trace);
    const patterns = Object.entries(s.byPattern).map(([k, v]) => `${k}=${v}`).join(" ");
    const line = `${s.requests} requests, ${s.sessions} sessions (${patterns}); prompt bytes ` +
      `min ${s.promptBytes.min} p50 ${Math.round(s.promptBytes.p50)} max ${s.promptBytes.max}`;
    if (values.out) console.log(line);
    else console.error(line);
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(main(Deno.args));
  } catch (err) {
    console.error(`gen-traces: ${(err as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
}
