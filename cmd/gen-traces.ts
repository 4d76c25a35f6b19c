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
 * (to stderr when the trace goes to stdout). `--answer-length DIST` (old name `--output-tokens`,
 * still accepted) gives every request an answer length drawn from DIST (see
 * src/sim/answer_length.ts); `--arrival-rate R` writes the trace open loop (Poisson arrivals, R
 * requests a second) instead of closed loop. `--from-mooncake` converts a Mooncake trace
 * (src/bench/mooncake.ts) to an open-loop trace, line by line.
 *
 * @module
 */

import { importMooncake } from "../src/bench/mooncake.ts";
import { generateTrace, summarizeTrace, toOpenLoop, traceToJsonl } from "../src/bench/traces.ts";
import type { AnyTraceEntry, Shape } from "../src/bench/types.ts";
import { ANSWER_LENGTH_FORMS, parseAnswerLength } from "../src/sim/answer_length.ts";
import { SHAPES } from "../src/bench/types.ts";
import { flagHelp, type FlagTable, parseFlags } from "../src/util/cli_flags.ts";

/** gen-traces' flags (the help lists them from here). */
export const FLAGS = {
  shape: {
    type: "string",
    value: "S",
    default: "multiturn",
    help: `trace shape: ${SHAPES.join(", ")}`,
  },
  sessions: { type: "string", value: "N", shown: "8", help: "sessions" },
  turns: { type: "string", value: "N", shown: "8", help: "turns per session" },
  seed: { type: "string", value: "N", shown: "1", help: "trace seed" },
  "system-bytes": {
    type: "string",
    value: "N",
    shown: "6144",
    help: "shared system prompt size, bytes",
  },
  "max-tokens": { type: "string", value: "N", shown: "64", help: "max_tokens per request" },
  model: { type: "string", value: "NAME", shown: "sim", help: "model name in the requests" },
  "think-ms": {
    type: "string",
    value: "MS",
    shown: "0",
    help: "mean pause between a session's turns (closed loop)",
  },
  "stagger-ms": {
    type: "string",
    value: "MS",
    shown: "0",
    help: "sessions' first turns spread over [0, MS]",
  },
  docs: { type: "string", value: "N", shown: "32", help: "rag shape: documents in the corpus" },
  "doc-bytes": { type: "string", value: "N", shown: "2048", help: "rag shape: document size" },
  "docs-per-request": {
    type: "string",
    value: "N",
    shown: "3",
    help: "rag shape: documents per request",
  },
  "answer-length": {
    type: "string",
    value: "DIST",
    shown: "none: answers of --max-tokens",
    aliases: ["output-tokens"],
    help: "answer lengths, written as output_tokens per line (capped at --max-tokens): " +
      ANSWER_LENGTH_FORMS,
  },
  "arrival-rate": {
    type: "string",
    value: "R",
    shown: "closed loop, delay_ms per line",
    help: "open loop: arrival_ms per line, Poisson at R requests/s",
  },
  "from-mooncake": {
    type: "string",
    value: "FILE",
    shown: "none",
    help: "convert a Mooncake trace ({timestamp, input_length, output_length, hash_ids} per " +
      "line) to an open-loop trace; Mooncake's traces are in github.com/kvcache-ai/Mooncake " +
      "(FAST25-release/traces/)",
  },
  limit: {
    type: "string",
    value: "N",
    shown: "all",
    help: "with --from-mooncake: the first N requests only",
  },
  out: { type: "string", value: "FILE", shown: "stdout", help: "where the trace goes" },
  summary: {
    type: "boolean",
    default: false,
    help: "print the request count and prompt sizes (to stderr when the trace goes to stdout)",
  },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagTable;

const USAGE = `Usage: gen-traces --shape S [options]
  or: gen-traces --from-mooncake FILE [--limit N] [--seed N] [--model NAME] [--out FILE] [--summary]

Options:
${flagHelp(FLAGS)}`;

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
  const values = parseFlags(FLAGS, args);
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
    outputTokens: values["answer-length"] === undefined
      ? null
      : parseAnswerLength(values["answer-length"]),
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
