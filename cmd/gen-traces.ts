/**
 * `gen-traces`: writes a benchmark trace as JSONL, one request a line.
 *
 *   deno run --allow-write cmd/gen-traces.ts --shape multiturn --sessions 8 --turns 8 \
 *     --seed 1 [--system-bytes 6144] [--max-tokens 64] [--model sim] [--think-ms 0] \
 *     [--stagger-ms 0] [--out FILE] [--summary]
 *
 *   deno run --allow-read --allow-write cmd/gen-traces.ts --from-mooncake FILE [--limit N] --out F
 *
 * Without `--out` the trace goes to stdout. `--summary` prints the request count and prompt sizes
 * (to stderr when the trace goes to stdout). `--output-tokens DIST` gives every request an answer
 * length drawn from DIST (see src/sim/answer_length.ts); `--arrival-rate R` writes the trace open
 * loop (Poisson arrivals, R requests a second) instead of closed loop. `--from-mooncake` converts a
 * Mooncake trace (src/bench/mooncake.ts) to an open-loop trace, line by line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { importMooncake } from "../src/bench/mooncake.ts";
import { generateTrace, summarizeTrace, toOpenLoop, traceToJsonl } from "../src/bench/traces.ts";
import type { AnyTraceEntry, Shape } from "../src/bench/types.ts";
import { ANSWER_LENGTH_FORMS, parseAnswerLength } from "../src/sim/answer_length.ts";
import { SHAPES } from "../src/bench/types.ts";

const USAGE = `Usage: gen-traces --shape ${SHAPES.join("|")} [--sessions N] [--turns N] [--seed N]
  [--system-bytes N] [--max-tokens N] [--model NAME] [--think-ms N] [--stagger-ms N]
  [--docs N] [--doc-bytes N] [--docs-per-request N] [--output-tokens DIST]
  [--arrival-rate R] [--out FILE] [--summary]
  or: gen-traces --from-mooncake FILE [--limit N] [--seed N] [--model NAME] [--out FILE] [--summary]

  --output-tokens DIST  answer lengths (output_tokens per line, capped at --max-tokens):
                        ${ANSWER_LENGTH_FORMS}; default: none (answers of --max-tokens)
  --arrival-rate R      open loop: arrival_ms per line, Poisson at R requests/s (default:
                        closed loop, delay_ms per line)
  --from-mooncake FILE  convert a Mooncake trace ({timestamp, input_length, output_length,
                        hash_ids} per line) to an open-loop trace; Mooncake's traces are in
                        github.com/kvcache-ai/Mooncake (FAST25-release/traces/)
  --limit N             with --from-mooncake: the first N requests only`;

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

function summaryLine(trace: readonly AnyTraceEntry[]): string {
  const s = summarizeTrace(trace);
  const patterns = Object.entries(s.byPattern).map(([k, v]) => `${k}=${v}`).join(" ");
  return `${s.requests} requests, ${s.sessions} sessions (${patterns}); prompt bytes ` +
    `min ${s.promptBytes.min} p50 ${Math.round(s.promptBytes.p50)} max ${s.promptBytes.max}`;
}

/** The summary goes to stdout when the trace went to a file, else to stderr. */
function report(line: string, toFile: boolean): void {
  if (toFile) console.log(line);
  else console.error(line);
}

/** `--from-mooncake`: converts line by line, writing as it goes. */
function fromMooncake(values: Record<string, string | boolean | undefined>): number {
  const file = values["from-mooncake"] as string;
  const text = Deno.readTextFileSync(file);
  const limit = values.limit === undefined ? undefined : int("limit", values.limit as string, 0, 1);
  const out = values.out
    ? Deno.openSync(values.out as string, { write: true, create: true, truncate: true })
    : Deno.stdout;
  const enc = new TextEncoder();
  const sample: AnyTraceEntry[] = [];
  let n = 0;
  try {
    const entries = importMooncake(text, {
      seed: int("seed", values.seed as string | undefined, 1),
      model: values.model as string | undefined,
      limit,
    });
    for (const e of entries) {
      writeAll(out, enc.encode(JSON.stringify(e) + "\n"));
      n++;
      if (values.summary && sample.length < 1000) sample.push(e);
    }
  } finally {
    if (out !== Deno.stdout) out.close();
  }
  if (values.summary) {
    report(
      `${n} requests from ${file} (open loop); first ${sample.length}: ${summaryLine(sample)}`,
      !!values.out,
    );
  }
  return 0;
}

function writeAll(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length;) off += w.writeSync(bytes.subarray(off));
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
      "output-tokens": { type: "string" },
      "arrival-rate": { type: "string" },
      "from-mooncake": { type: "string" },
      limit: { type: "string" },
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
  if (values["from-mooncake"] !== undefined) return fromMooncake(values);
  if (!(SHAPES as string[]).includes(values.shape!)) {
    throw new Error(`--shape must be one of ${SHAPES.join(", ")}, got "${values.shape}"`);
  }
  const rate = values["arrival-rate"] === undefined ? undefined : Number(values["arrival-rate"]);
  if (rate !== undefined && !(rate > 0 && Number.isFinite(rate))) {
    throw new Error(`--arrival-rate must be a number > 0, got "${values["arrival-rate"]}"`);
  }
  const seed = int("seed", values.seed, 1);
  const closed = generateTrace({
    shape: values.shape as Shape,
    sessions: int("sessions", values.sessions, 8, 1),
    turns: int("turns", values.turns, 8, 1),
    seed,
    systemBytes: int("system-bytes", values["system-bytes"], 6144, 1),
    maxTokens: int("max-tokens", values["max-tokens"], 64, 1),
    model: values.model,
    thinkMs: int("think-ms", values["think-ms"], 0, 0),
    staggerMs: int("stagger-ms", values["stagger-ms"], 0, 0),
    docs: int("docs", values.docs, 32, 1),
    docBytes: int("doc-bytes", values["doc-bytes"], 2048, 1),
    docsPerRequest: int("docs-per-request", values["docs-per-request"], 3, 1),
    outputTokens: values["output-tokens"] === undefined
      ? null
      : parseAnswerLength(values["output-tokens"]),
  });
  const trace: AnyTraceEntry[] = rate === undefined ? closed : toOpenLoop(closed, rate, seed);
  const jsonl = traceToJsonl(trace);
  if (values.out) Deno.writeTextFileSync(values.out, jsonl);
  else writeAll(Deno.stdout, new TextEncoder().encode(jsonl));
  if (values.summary) report(summaryLine(trace), values.out !== undefined);
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
