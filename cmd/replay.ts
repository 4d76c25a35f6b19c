/**
 * `replay`: sends a JSONL trace to an OpenAI-compatible endpoint and writes one record per request.
 *
 *   deno run --allow-net --allow-read --allow-write cmd/replay.ts --trace trace.jsonl \
 *     --url http://127.0.0.1:8080 [--concurrency N] [--out results.jsonl] [--timeout-ms 300000]
 *
 * Records go to `--out` or stdout as JSONL; a one-line summary goes to stderr. Ctrl-C stops new
 * requests, cancels those in flight, and still writes what was recorded. Exit code: 0; 1 when no
 * request succeeded; 2 for bad arguments or an `--out` that cannot be written (checked first);
 * 130 after Ctrl-C.
 *
 * @module
 */

import { recordsToJsonl, replayTrace } from "../src/bench/replay.ts";
import { parseTraceJsonl } from "../src/bench/traces.ts";
import { mean, percentile } from "../src/bench/stats.ts";
import { flagHelp, type FlagTable, parseFlags } from "../src/util/cli_flags.ts";

/** replay's flags (the help lists them from here). */
export const FLAGS = {
  trace: { type: "string", value: "FILE", shown: "required", help: "JSONL trace to send" },
  url: {
    type: "string",
    value: "URL",
    shown: "required",
    help: "base URL of the router or engine (http:// or https://)",
  },
  concurrency: {
    type: "string",
    value: "N",
    shown: "every session at once",
    help: "sessions in flight at once (a session's turns stay in order)",
  },
  out: {
    type: "string",
    value: "FILE",
    shown: "stdout",
    help: "where the JSONL records go (opened before the first request)",
  },
  "timeout-ms": { type: "string", value: "MS", shown: "300000", help: "timeout of each request" },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagTable;

const USAGE = `Usage: replay --trace FILE --url URL [options]

Sends a JSONL trace to an OpenAI-compatible endpoint and writes one record per request.

Options:
${flagHelp(FLAGS)}

Exit code: 0; 1 when no request succeeded; 2 for bad arguments; 130 after Ctrl-C.`;

function posInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`--${name} must be a positive integer, got "${v}"`);
  }
  return n;
}

async function main(args: string[]): Promise<number> {
  const values = parseFlags(FLAGS, args);
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.trace) throw new Error("--trace is required");
  if (!values.url || !/^https?:\/\//.test(values.url)) {
    throw new Error(`--url must be an http(s) URL, got "${values.url ?? ""}"`);
  }
  const entries = parseTraceJsonl(await Deno.readTextFile(values.trace));
  // Opened before the first request, so a bad path fails now, not after the whole replay.
  let out: Deno.FsFile | null = null;
  if (values.out) {
    try {
      out = await Deno.open(values.out, { write: true, create: true, truncate: true });
    } catch (err) {
      throw new Error(`cannot write --out ${values.out}: ${(err as Error).message}`);
    }
  }
  const ctrl = new AbortController();
  const onSignal = () => ctrl.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  let done = 0;
  const tty = Deno.stderr.isTerminal();
  const records = await replayTrace(entries, {
    url: values.url,
    concurrency: posInt("concurrency", values.concurrency),
    timeoutMs: posInt("timeout-ms", values["timeout-ms"]),
    signal: ctrl.signal,
    onRecord: () => {
      done++;
      if (tty) {
        Deno.stderr.writeSync(new TextEncoder().encode(`\r${done}/${entries.length} requests`));
      }
    },
  });
  Deno.removeSignalListener("SIGINT", onSignal);
  if (tty) console.error();
  const jsonl = new TextEncoder().encode(recordsToJsonl(records));
  if (out !== null) {
    try {
      await out.write(jsonl);
    } finally {
      out.close();
    }
  } else await Deno.stdout.write(jsonl);
  const ok = records.filter((r) => r.status === 200 && r.error === null);
  const ttft = ok.flatMap((r) => (r.ttft_ms === null ? [] : [r.ttft_ms]));
  const prompt = ok.reduce((s, r) => s + (r.prompt_tokens ?? 0), 0);
  const cached = ok.reduce((s, r) => s + (r.cached_tokens ?? 0), 0);
  console.error(
    `${records.length} requests, ${records.length - ok.length} failed; TTFT p50 ` +
      `${percentile(ttft, 50).toFixed(1)} ms p95 ${percentile(ttft, 95).toFixed(1)} ms mean ` +
      `${mean(ttft).toFixed(1)} ms; KV cached ${
        prompt ? (100 * cached / prompt).toFixed(1) : "n/a"
      }%`,
  );
  if (ctrl.signal.aborted) return 130;
  return records.length > 0 && ok.length === 0 ? 1 : 0; // nothing succeeded: say so to scripts
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`replay: ${(err as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
}
