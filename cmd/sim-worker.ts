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

import { parseArgs } from "node:util";
import { ANSWER_LENGTH_FORMS, parseAnswerLength } from "../src/sim/answer_length.ts";
import { PROFILE_NAMES } from "../src/sim/profiles.ts";
import { startSimWorker } from "../src/sim/server.ts";
import type { FaultOptions } from "../src/sim/types.ts";

const HELP = `Usage: sim-worker [options]

Serves a simulated vLLM-like engine with a prefix-cached KV store.

Options:
  --port N                 port to bind, 0 picks a free one (default 8000)
  --hostname HOST          address to bind (default 127.0.0.1)
  --profile NAME           engine profile: ${PROFILE_NAMES.join(", ")} (default a100-7b)
  --time-scale X           wall time per unit of model time, 0.1 = ten times faster (default 1)
  --id ID                  worker id (default sim-PORT)
  --model NAME             model id served (default sim-PROFILE)
  --max-tokens N           max_tokens when a request gives none (default 64)
  --max-model-len N        override the profile's max model length (tokens)
  --answer-length DIST     lengths of answers the request does not fix: ${ANSWER_LENGTH_FORMS}
                           (default geometric:200, capped at max_tokens; ignore_eos and
                           min_tokens in a request are honoured)
  --prefix-sharing V       v1 (default) or v0: whether requests scheduled in the same step share
                           a prefix one of them computes
  --seed N                 seed of the fault rng and of the answer lengths (default 1)
  --error-rate P           answer this share of requests with 500 (0..1)
  --added-latency-ms MS    delay before handling each request
  --refuse-connections     do not accept connections (the port stays reserved)
  --die-after-chunks N     drop the connection after N SSE chunks
  --stall-ms MS            send headers, then wait before the first chunk
  -h, --help               show this help
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
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string", default: "8000" },
      hostname: { type: "string", default: "127.0.0.1" },
      profile: { type: "string", default: "a100-7b" },
      "time-scale": { type: "string", default: "1" },
      id: { type: "string" },
      model: { type: "string" },
      "max-tokens": { type: "string" },
      "max-model-len": { type: "string" },
      "answer-length": { type: "string" },
      "prefix-sharing": { type: "string" },
      seed: { type: "string" },
      "error-rate": { type: "string" },
      "added-latency-ms": { type: "string" },
      "refuse-connections": { type: "boolean", default: false },
      "die-after-chunks": { type: "string" },
      "stall-ms": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
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
