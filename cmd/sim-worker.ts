/**
 * sim-worker: an OpenAI-compatible simulated engine on one port (see src/sim/server.ts).
 *
 *   deno task sim-worker --port 0 --profile a100-7b [--time-scale 0.1] [--id w0]
 *     [--model NAME ...] [--lora NAME[=PATH] ...] [--kv-events tcp://*:5557]
 *
 * Prints `listening on http://HOST:PORT` as its first stdout line (the KV event ports, when
 * publishing, go to stderr); exits cleanly on SIGINT and SIGTERM.
 *
 * @module
 */

import { ANSWER_LENGTH_FORMS, parseAnswerLength } from "../src/sim/answer_length.ts";
import { PROFILE_NAMES } from "../src/sim/profiles.ts";
import type { LoraModule } from "../src/sim/models.ts";
import { startSimWorker } from "../src/sim/server.ts";
import { loadSimTokenizer, type SimTokenizer } from "../src/sim/sim_tokenizer.ts";
import type { FaultOptions } from "../src/sim/types.ts";
import { flagChoice, flagHelp, type FlagTable, parseFlags } from "../src/util/cli_flags.ts";

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
  model: {
    type: "string",
    value: "NAME",
    multiple: true,
    aliases: ["served-model-name"],
    shown: "sim, accepting any model name",
    help: "model name served; the first is the one responses name; given, a request for another " +
      "model gets vLLM's 404",
  },
  lora: {
    type: "string",
    value: "NAME[=PATH]",
    multiple: true,
    shown: "none",
    help: "a LoRA adapter of the first model; its blocks never match the base model's",
  },
  "allow-runtime-lora": {
    type: "boolean",
    default: false,
    help: "serve POST /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM with " +
      "VLLM_ALLOW_RUNTIME_LORA_UPDATING)",
  },
  "tokenizer-json": {
    type: "string",
    value: "FILE",
    shown: "none: pseudo tokens",
    help: "the model's tokenizer.json: real token ids (with --tokenizer-config)",
  },
  "tokenizer-config": {
    type: "string",
    value: "FILE",
    shown: "none",
    help: "the model's tokenizer_config.json",
  },
  "chat-template": {
    type: "string",
    value: "FILE",
    shown: "the config's",
    help: "a Jinja chat template replacing the config's (vLLM --chat-template)",
  },
  "kv-events": {
    type: "string",
    value: "ENDPOINT",
    shown: "none",
    help: "publish KV cache events on a ZMQ PUB socket, e.g. tcp://*:5557",
  },
  "kv-events-replay": {
    type: "string",
    value: "ENDPOINT",
    shown: "none",
    help: "the replay ROUTER socket, e.g. tcp://*:5558",
  },
  "kv-events-encoding": {
    type: "string",
    value: "E",
    shown: "map",
    help: "map (current vLLM) or array (older vLLM)",
  },
  "kv-events-topic": {
    type: "string",
    value: "T",
    shown: '""',
    help: "topic frame of every message",
  },
  "embedding-dim": {
    type: "string",
    value: "N",
    shown: "64",
    help: "dimensions of /v1/embeddings vectors",
  },
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

/** The real tokenizer when its files are given (both or neither). */
async function tokenizerOf(v: Record<string, unknown>): Promise<SimTokenizer | undefined> {
  const json = v["tokenizer-json"] as string | undefined;
  const config = v["tokenizer-config"] as string | undefined;
  const template = v["chat-template"] as string | undefined;
  if (json === undefined && config === undefined) {
    if (template !== undefined) throw new Error("--chat-template needs --tokenizer-json");
    return undefined;
  }
  if (json === undefined || config === undefined) {
    throw new Error("give both --tokenizer-json and --tokenizer-config");
  }
  return await loadSimTokenizer({
    tokenizerJson: json,
    tokenizerConfig: config,
    chatTemplate: template,
  });
}

/** The KV event options, when publishing. */
function kvEventsOf(v: Record<string, unknown>) {
  const endpoint = v["kv-events"] as string | undefined;
  const replay = v["kv-events-replay"] as string | undefined;
  const encoding = v["kv-events-encoding"] as string | undefined;
  const topic = v["kv-events-topic"] as string | undefined;
  if (endpoint === undefined) {
    if (replay !== undefined || encoding !== undefined || topic !== undefined) {
      throw new Error(
        "--kv-events-replay, --kv-events-encoding and --kv-events-topic need --kv-events",
      );
    }
    return undefined;
  }
  return {
    endpoint,
    replayEndpoint: replay,
    encoding: flagChoice("kv-events-encoding", encoding, ["map", "array"]),
    topic,
  };
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
  const sharing = flagChoice("prefix-sharing", values["prefix-sharing"], ["v0", "v1"]);
  const answer = values["answer-length"];
  const port = int("port", values.port)!;
  if (port > 65535) {
    throw new Error(`--port must be an integer 0..65535, got "${values.port}"`);
  }
  const names = [...(values.model ?? [])];
  const loras: LoraModule[] = (values.lora ?? []).map((l) => {
    const eq = l.indexOf("=");
    const name = eq < 0 ? l : l.slice(0, eq);
    if (name === "") throw new Error(`--lora must be NAME or NAME=PATH, got "${l}"`);
    return eq < 0 ? { name } : { name, path: l.slice(eq + 1) };
  });
  const tokenizer = await tokenizerOf(values);
  const kvEvents = kvEventsOf(values);
  const worker = await startSimWorker({
    port,
    hostname: values.hostname,
    profile: values.profile!,
    timeScale,
    id: values.id,
    models: names.length > 0 ? names : undefined,
    loras,
    allowRuntimeLora: values["allow-runtime-lora"],
    tokenizer,
    kvEvents,
    embeddingDim: int("embedding-dim", values["embedding-dim"], 1),
    faults,
    seed: int("seed", values.seed),
    defaultMaxTokens: int("max-tokens", values["max-tokens"], 1),
    maxModelLen: int("max-model-len", values["max-model-len"], 1),
    answerLength: answer === undefined ? undefined : parseAnswerLength(answer),
    prefixSharing: sharing,
  });
  console.log(`listening on ${worker.url}`);
  if (worker.kvEventsPort !== null) {
    const replay = worker.kvEventsReplayPort === null
      ? ""
      : `, replay on ${worker.kvEventsReplayPort}`;
    console.error(`sim-worker ${worker.id}: KV events on port ${worker.kvEventsPort}${replay}`);
  }
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
