/**
 * The sim worker's KV cache events over ZMQ, as vLLM publishes them (`--kv-events-config` with
 * the zmq publisher): the engine's events of each step form one batch, published on a PUB socket
 * as `[topic, seq, payload]`, with the last batches kept for replay on a ROUTER socket
 * (`KvEventPublisher` from src/kv_events). A new worker starts its sequence from 0, as a
 * restarted vLLM does, which is how subscribers notice the restart.
 *
 * Encoding: events as tagged maps (current vLLM, the default) or tagged arrays (older vLLM); the
 * batch as msgspec's array `[ts, events]`; block hashes as unsigned 64-bit integers.
 *
 * @module
 */

import { KvEventPublisher, type WireEvent } from "../kv_events/mod.ts";
import type { KvEvent } from "../kv_events/types.ts";

/** Where and how a sim worker publishes its KV events. */
export interface SimKvEventsOptions {
  /** PUB endpoint to bind, e.g. `tcp://*:5557` (`tcp://127.0.0.1:0` picks a port). */
  readonly endpoint: string;
  /** ROUTER endpoint for replay, e.g. `tcp://*:5558`; none when absent. */
  readonly replayEndpoint?: string;
  /** `map` (default, current vLLM) or `array` (older vLLM). */
  readonly encoding?: "array" | "map";
  /** Topic frame; default "" as vLLM's. */
  readonly topic?: string;
  /** Batches kept for replay; default 10 000 (vLLM's `buffer_steps`). */
  readonly bufferSteps?: number;
}

/** A started publisher. */
export interface SimKvPublisher {
  readonly port: number;
  readonly replayPort: number | null;
  /** Publishes one step's events as one batch. */
  publish(events: readonly KvEvent[]): void;
  stop(): Promise<void>;
}

function big(words: Uint32Array, i: number): bigint {
  return (BigInt(words[i]) << 32n) | BigInt(words[i + 1]);
}

/** A decoded-shape event (the engine's) as the wire shape the encoder takes. */
function wireEvent(e: KvEvent): WireEvent {
  if (e.type === "AllBlocksCleared") return { type: "AllBlocksCleared" };
  const hashes: bigint[] = [];
  for (let i = 0; i < e.blockHashes.length; i += 2) hashes.push(big(e.blockHashes, i));
  if (e.type === "BlockRemoved") {
    return { type: "BlockRemoved", blockHashes: hashes, medium: e.medium };
  }
  return {
    type: "BlockStored",
    blockHashes: hashes,
    parentBlockHash: e.parentBlockHash === null ? null : big(e.parentBlockHash, 0),
    tokenIds: e.tokenIds,
    blockSize: e.blockSize,
    loraId: e.loraId,
    medium: e.medium,
    loraName: e.loraName,
  };
}

/** Binds the sockets and returns the publisher. */
export function startKvPublisher(o: SimKvEventsOptions): SimKvPublisher {
  const encoding = o.encoding ?? "map";
  if (encoding !== "map" && encoding !== "array") {
    throw new RangeError(`KV event encoding must be array or map, got ${JSON.stringify(encoding)}`);
  }
  const pub = new KvEventPublisher({
    endpoint: o.endpoint,
    replayEndpoint: o.replayEndpoint,
    topic: o.topic ?? "",
    bufferSteps: o.bufferSteps,
    encoding: { events: encoding, batch: "array", hashes: "u64" },
  });
  const { port, replayPort } = pub.start();
  return {
    port,
    replayPort,
    publish: (events) => void pub.publish(events.map(wireEvent)),
    stop: () => pub.stop(),
  };
}
