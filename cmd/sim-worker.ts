/**
 * sim-worker: an OpenAI-compatible simulated engine on one port (see src/sim/server.ts).
 *
 *   deno task sim-worker --port 0 --profile a100-7b [--time-scale 0.1] [--id w0]
 *
 * Prints `listening on http://HOST:PORT` as its first stdout line; exits cleanly on SIGINT and
 * SIGTERM.
 *
 * @module
 */

import { ANSWER_LENGTH_FORMS, parseAnswerLength } from "../src/sim/answer_length.ts";
import { PROFILE_NAMES } from "../src/sim/profiles.ts";
import { startSimWorker } from "../src/sim/server.ts";
import type { FaultOptions } from "../src/sim/types.ts";
import { flagHelp, type FlagTable, parseFlags } from "../src/util/cli_flags.ts";

/** sim-worker's flags (the help lists them from here). */
export const FLAGS = {
  port: { type: "string", value: "N", default: "8000", help: "port to bind, 0 picks a free one" },
  hostname: { type: "string", value: "HOST", default: "127.0.0.1", help: "address to bind" },
  profile: {
    type: "string",
    value: "NAME",
    default: "a100-7b",
    help: `engine profile: ${PROFILE_NAMES.join(", ")}`,
  },
  "time-scale": {
    type: "string",
    value: "X",
    default: "1",
    help: "wall time per unit of model time, 0.1 = ten times faster",
  },
  id: { type: "string", value: "ID", shown: "sim-PORT", help: "worker id" },
  model: { type: "string", value: "NAME", shown: "sim-PROFILE", help: "model id served" },
  "max-tokens": {
    type: "string",
    value: "N",
    shown: "64",
    help: "max_tokens when a request gives none",
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
    help: `lengths of answers the request does not fix: ${ANSWER_LENGTH_FORMS}; capped at ` +
      "max_tokens (ignore_eos and min_tokens in a request are honoured)",
  },
  "prefix-sharing": {
    type: "string",
    value: "V",
    shown: "v1",
    help: "v1 or v0: whether requests scheduled in the same step share a prefix one of them " +
      "computes (v1) or each computes it (v0)",
  },
  seed: {
    type: "string",
    value: "N",
    shown: "1",
    help: "seed of the fault rng and of the answer lengths",
  },
  "error-rate": {
    type: "string",
    value: "P",
    shown: "0",
    help: "answer this share of requests with 500 (0..1)",
  },
  "added-latency-ms": {
    type: "string",
    value: "MS",
    shown: "0",
    help: "delay before handling each request",
  },
  "refuse-connections": {
    type: "boolean",
    default: false,
    help: "do not accept connections (the port stays reserved)",
  },
  "die-after-chunks": {
    type: "string",
    value: "N",
    shown: "never",
    help: "drop the connection after N SSE chunks",
  },
  "stall-ms": {
    type: "string",
    value: "MS",
    shown: "0",
    help: "send headers, then wait this long before the first chunk",
  },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagTable;

const HELP = `Usage: sim-worker [options]

Serves a simulated vLLM-like engine with a prefix-cached KV store.

Options:
${flagHelp(FLAGS)}
`;

function num(name: string, v: string | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < min) {
    throw new Error(`--${name} must be a number ≥ ${min}, got "${v}"`);
  }
  return n;
}

/** `num`, for a count: a whole number. */
function int(name: string, v: string | undefined, min = 0): number | undefined {
  const n = num(name, v, min);
  if (n !== undefined && !Number.isSafeInteger(n)) {
    throw new Error(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  }
  return n;
}

async function main(args: string[]): Promise<number> {
  const values = parseFlags(FLAGS, args);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const errorRate = num("error-rate", values["error-rate"]);
  if (errorRate !== undefined && errorRate > 1) {
    throw new Error(`--error-rate must be between 0 and 1, got "${values["error-rate"]}"`);
  }
  const faults: FaultOptions = {
    errorRate,
    addedLatencyMs: num("added-latency-ms", values["added-latency-ms"]),
    refuseConnections: values["refuse-connections"],
    dieAfterChunks: int("die-after-chunks", values["die-after-chunks"]),
    stallMs: num("stall-ms", values["stall-ms"]),
  };
  const timeScale = num("time-scale", values["time-scale"])!;
  if (timeScale <= 0) throw new Error(`--time-scale must be > 0, got "${values["time-scale"]}"`);
  const sharing = values["prefix-sharing"];
  if (sharing !== undefined && sharing !== "v0" && sharing !== "v1") {
    throw new Error(`--prefix-sharing must be v0 or v1, got "${sharing}"`);
  }
  const answer = values["answer-length"];
  const port = int("port", values.port)!;
  if (port > 65535) {
    throw new Error(`--port must be an integer 0..65535, got "${values.port}"`);
  }
  const worker = await startSimWorker({
    port,
    hostname: values.hostname,
    profile: values.profile!,
    timeScale,
    id: values.id,
    model: values.model,
    faults,
    seed: int("seed", values.seed),
    defaultMaxTokens: int("max-tokens", values["max-tokens"], 1),
    maxModelLen: int("max-model-len", values["max-model-len"], 1),
    answerLength: answer === undefined ? undefined : parseAnswerLength(answer),
    prefixSharing: sharing as "v0" | "v1" | undefined,
  });
  console.log(`listening on ${worker.url}`);
  const { promise: stopped, resolve } = Promise.withResolvers<string>();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const handlers = signals.map((sig) => {
    const h = () => resolve(sig);
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  const sig = await stopped;
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  console.error(`sim-worker ${worker.id}: ${sig}, shutting down`);
  await worker.shutdown();
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`sim-worker: ${err instanceof Error ? err.message : err}`);
    Deno.exit(2);
  }
}
