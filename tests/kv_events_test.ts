/**
 * KV events end to end, in process: the vLLM-like publisher (PUB + replay ROUTER) → the
 * subscriber → the precise index, over real TCP on 127.0.0.1, plus raw hostile peers.
 */

import assert from "node:assert/strict";
import { KvEventPublisher, type KvEventPublisherOptions } from "../src/kv_events/publisher.ts";
import { KvEventSubscriber, type KvEventSubscriberOptions } from "../src/kv_events/subscriber.ts";
import { connectZmtp } from "../src/kv_events/client.ts";
import { encodeBatch, type EncodeOptions, type WireEvent } from "../src/kv_events/encode.ts";
import { PubServer } from "../src/kv_events/server.ts";
import { seqBytes } from "../src/kv_events/replay.ts";
import { encodeMessage, encodeReady, greeting, subscriptionBody } from "../src/kv_events/zmtp.ts";
import { BlockIndex } from "../src/precise/block_index.ts";
import { blockHashes } from "../src/precise/block_hash.ts";
import { ManualClock } from "../src/util/clock.ts";
import { write } from "../src/proxy/h1_test_server.ts";

const BS = 4;
const WAIT_MS = 15_000;

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** Token ids of a chain (distinct per `seed`). */
function chainTokens(seed: number, blocks: number): number[] {
  return Array.from({ length: blocks * BS }, (_, i) => seed * 100_000 + i);
}

/** One BlockStored per block, each the child of the one before (engine hashes seed·1e6 + b). */
function chainEvent(seed: number, b: number, tokens: number[]): WireEvent {
  const h = (x: number) => BigInt(seed) * 1_000_000n + BigInt(x) + 2n ** 60n;
  return {
    type: "BlockStored",
    blockHashes: [h(b)],
    parentBlockHash: b === 0 ? null : h(b - 1),
    tokenIds: tokens.slice(b * BS, (b + 1) * BS),
    blockSize: BS,
    medium: "GPU",
  };
}

interface Rig {
  pub: KvEventPublisher;
  port: number;
  replayPort: number | null;
}

function publisher(
  opts: Partial<KvEventPublisherOptions> & {
    replay?: boolean;
    port?: number;
    replayPort?: number;
  } = {},
): Rig {
  const { replay = true, port = 0, replayPort = 0, ...rest } = opts;
  const pub = new KvEventPublisher({
    endpoint: `tcp://127.0.0.1:${port}`,
    replayEndpoint: replay ? `tcp://127.0.0.1:${replayPort}` : undefined,
    topic: "kv",
    ...rest,
  });
  const ports = pub.start();
  return { pub, ...ports };
}

function subscriber(
  index: BlockIndex,
  rig: Rig,
  extra: Partial<KvEventSubscriberOptions> = {},
): KvEventSubscriber {
  const s = new KvEventSubscriber({
    endpoint: `tcp://127.0.0.1:${rig.port}`,
    replayEndpoint: rig.replayPort === null ? null : `tcp://127.0.0.1:${rig.replayPort}`,
    topic: "kv",
    sink: index.sink("w"),
    heartbeatIntervalMs: 200,
    reconnectBaseMs: 20,
    reconnectMaxMs: 200,
    replayTimeoutMs: 3000,
    tailCheckMs: 0,
    ...extra,
  });
  s.start();
  return s;
}

function newIndex(): BlockIndex {
  return new BlockIndex({ clock: new ManualClock(0) });
}

async function subscribed(rig: Rig): Promise<void> {
  await waitFor(() => rig.pub.pub.subscriptions >= 1, "the subscription");
}

const encodings: [string, EncodeOptions][] = [
  ["tagged arrays, u64 hashes", { events: "array", hashes: "u64" }],
  ["tagged maps, i64 hashes, map batch", { events: "map", batch: "map", hashes: "i64" }],
  ["tagged maps, bytes hashes", { events: "map", hashes: "bytes" }],
];

for (const [name, encoding] of encodings) {
  Deno.test(`kv e2e: ${name} flow from publisher to index`, async () => {
    const rig = publisher({ encoding, wallClock: () => 1000 });
    const index = newIndex();
    const sub = subscriber(index, rig, { wallClock: () => 1_000_250 });
    try {
      await subscribed(rig);
      const toks = chainTokens(1, 6);
      for (let b = 0; b < 6; b++) rig.pub.publish([chainEvent(1, b, toks)]);
      const req = blockHashes(toks, BS);
      await waitFor(() => index.match("w", req) === 6, "6 blocks");
      assert.equal(sub.counters.batches, 6);
      assert.equal(sub.counters.gaps, 0);
      assert.equal(sub.counters.lagMs, 250);
      assert.ok(sub.warm);
      rig.pub.publish([{
        type: "BlockRemoved",
        blockHashes: [2n ** 60n + 1_000_003n],
        medium: "GPU",
      }]);
      await waitFor(() => index.match("w", req) === 3, "the removal");
    } finally {
      await sub.stop();
      await rig.pub.stop();
    }
  });
}

Deno.test("kv e2e: a gap is filled by replay, nothing cleared", async () => {
  const rig = publisher();
  const index = newIndex();
  const sub = subscriber(index, rig);
  try {
    await subscribed(rig);
    const toks = chainTokens(2, 5);
    rig.pub.publish([chainEvent(2, 0, toks)]);
    rig.pub.publish([chainEvent(2, 1, toks)], { lose: true });
    rig.pub.publish([chainEvent(2, 2, toks)], { lose: true });
    rig.pub.publish([chainEvent(2, 3, toks)]);
    rig.pub.publish([chainEvent(2, 4, toks)]);
    await waitFor(() => index.match("w", blockHashes(toks, BS)) === 5, "5 blocks");
    assert.equal(sub.counters.gaps, 1);
    assert.equal(sub.counters.replays, 1);
    assert.equal(sub.counters.clears, 0);
    assert.equal(sub.lastSeq, 4);
    assert.ok(sub.warm);
  } finally {
    await sub.stop();
    await rig.pub.stop();
  }
});

Deno.test("kv e2e: a gap without replay clears the worker and marks it cold", async () => {
  const rig = publisher({ replay: false });
  const index = newIndex();
  const sub = subscriber(index, rig);
  try {
    await subscribed(rig);
    const toks = chainTokens(3, 3);
    rig.pub.publish([chainEvent(3, 0, toks)]);
    await waitFor(() => index.match("w", blockHashes(toks, BS)) === 1, "block 0");
    assert.ok(sub.warm);
    rig.pub.publish([chainEvent(3, 1, toks)], { lose: true });
    rig.pub.publish([chainEvent(3, 2, toks)]);
    await waitFor(() => sub.counters.clears === 1, "the clear");
    await waitFor(() => sub.lastSeq === 2, "seq 2");
    assert.equal(index.match("w", blockHashes(toks, BS)), 0); // block 0 forgotten, block 2 an orphan
    assert.equal(index.stats().orphans, 1);
    assert.ok(!sub.warm);
  } finally {
    await sub.stop();
    await rig.pub.stop();
  }
});

Deno.test("kv e2e: a replay that no longer reaches back far enough clears", async () => {
  const rig = publisher({ bufferSteps: 2 });
  const index = newIndex();
  const sub = subscriber(index, rig);
  try {
    await subscribed(rig);
    const toks = chainTokens(4, 5);
    rig.pub.publish([chainEvent(4, 0, toks)]);
    await waitFor(() => sub.lastSeq === 0, "seq 0");
    for (let b = 1; b < 4; b++) rig.pub.publish([chainEvent(4, b, toks)], { lose: true });
    rig.pub.publish([chainEvent(4, 4, toks)]);
    await waitFor(() => sub.lastSeq === 4, "seq 4");
    assert.equal(sub.counters.gaps, 1);
    assert.equal(sub.counters.clears, 1);
    assert.ok(!sub.warm);
    assert.equal(index.match("w", blockHashes(toks, BS)), 0);
  } finally {
    await sub.stop();
    await rig.pub.stop();
  }
});

Deno.test("kv e2e: a sequence that goes back (engine restart) clears", async () => {
  const pub = new PubServer({ endpoint: "tcp://127.0.0.1:0" });
  const port = pub.start();
  const index = newIndex();
  const rig = { pub: { pub } as unknown as KvEventPublisher, port, replayPort: null };
  const sub = subscriber(index, rig);
  const topic = new TextEncoder().encode("kv");
  const send = (seq: number, ev: WireEvent) =>
    pub.publish([topic, seqBytes(seq), encodeBatch(0, [ev])]);
  try {
    await waitFor(() => pub.subscriptions >= 1, "the subscription");
    const old = chainTokens(5, 3);
    for (let b = 0; b < 3; b++) send(10 + b, chainEvent(5, b, old));
    await waitFor(() => index.match("w", blockHashes(old, BS)) === 3, "3 blocks");
    assert.ok(!sub.warm); // it joined at seq 10
    const fresh = chainTokens(6, 1);
    send(0, chainEvent(6, 0, fresh));
    await waitFor(() => sub.counters.clears === 1, "the clear");
    await waitFor(() => index.match("w", blockHashes(fresh, BS)) === 1, "the new block");
    assert.equal(index.match("w", blockHashes(old, BS)), 0);
    assert.ok(sub.warm); // the new process is seen from seq 0
  } finally {
    await sub.stop();
    await pub.stop();
  }
});

Deno.test("kv e2e: publisher gone for a while, then back on the same port: reconnect, clear, receive", async () => {
  const first = publisher();
  const index = newIndex();
  const sub = subscriber(index, first);
  const second: Rig[] = [];
  try {
    await subscribed(first);
    const old = chainTokens(7, 3);
    for (let b = 0; b < 3; b++) first.pub.publish([chainEvent(7, b, old)]);
    await waitFor(() => index.match("w", blockHashes(old, BS)) === 3, "3 blocks");
    await first.pub.stop();
    await waitFor(() => sub.state === "connecting", "the subscriber to notice");
    await delay(300); // a few failed connects with back-off
    second.push(publisher({ port: first.port, replayPort: first.replayPort! }));
    // The new engine numbers from 0 again and runs past the old last seq (2) before the
    // subscriber is back: only the payload of seq 2 tells the engines apart.
    const fresh = chainTokens(8, 6);
    for (let b = 0; b < 5; b++) second[0].pub.publish([chainEvent(8, b, fresh)]);
    await subscribed(second[0]);
    second[0].pub.publish([chainEvent(8, 5, fresh)]);
    await waitFor(() => index.match("w", blockHashes(fresh, BS)) === 6, "the new engine's blocks");
    assert.ok(sub.counters.reconnects >= 1);
    assert.equal(sub.counters.clears, 1); // continuity could not be proven
    assert.equal(index.match("w", blockHashes(old, BS)), 0);
  } finally {
    await sub.stop();
    for (const r of second) await r.pub.stop();
    await first.pub.stop();
  }
});

Deno.test("kv e2e: a dropped connection to the same engine resyncs by replay without clearing", async () => {
  const rig = publisher();
  const index = newIndex();
  const sub = subscriber(index, rig);
  try {
    await subscribed(rig);
    const toks = chainTokens(9, 6);
    for (let b = 0; b < 3; b++) rig.pub.publish([chainEvent(9, b, toks)]);
    await waitFor(() => sub.lastSeq === 2, "seq 2");
    for (const c of rig.pub.pub.connections) c.close("network blip");
    await waitFor(() => rig.pub.pub.subscribers === 0, "the drop");
    for (let b = 3; b < 5; b++) rig.pub.publish([chainEvent(9, b, toks)]); // missed live
    await waitFor(
      () => sub.counters.reconnects === 1 && rig.pub.pub.subscriptions >= 1,
      "the reconnect",
    );
    await waitFor(() => sub.lastSeq === 4, "the replayed batches");
    rig.pub.publish([chainEvent(9, 5, toks)]);
    await waitFor(() => index.match("w", blockHashes(toks, BS)) === 6, "6 blocks");
    assert.equal(sub.counters.clears, 0);
    assert.ok(sub.warm);
  } finally {
    await sub.stop();
    await rig.pub.stop();
  }
});

/** A TCP server that completes the ZMTP handshake as `type`, then runs `then` on the socket. */
function fakePeer(type: string, then: (conn: Deno.TcpConn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.TcpConn[] = [];
  const tasks: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      tasks.push((async () => {
        try {
          await write(conn, greeting(true));
          await write(conn, encodeReady({ "Socket-Type": type }));
          await then(conn);
        } catch { /* peer went away */ }
      })());
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    accepted: () => conns.length,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
      await Promise.all(tasks);
    },
  };
}

async function drain(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(4096);
  while ((await conn.read(buf)) !== null) { /* swallow, never answer */ }
}

Deno.test("kv e2e: a silent dead peer is detected by heartbeat and the subscriber reconnects", async () => {
  const peer = fakePeer("PUB", drain); // reads our PINGs, never answers, keeps the socket open
  try {
    const closed = Promise.withResolvers<string>();
    const conn = await connectZmtp(`tcp://127.0.0.1:${peer.port}`, {
      socketType: "SUB",
      heartbeatIntervalMs: 50,
      heartbeatTimeoutMs: 200,
    }, { closed: closed.resolve });
    assert.match(await closed.promise, /heartbeat timed out/);
    await conn.finished();

    const index = newIndex();
    const sub = subscriber(index, { pub: null!, port: peer.port, replayPort: null }, {
      heartbeatIntervalMs: 50,
      heartbeatTimeoutMs: 200,
    });
    try {
      await waitFor(() => sub.counters.reconnects >= 1, "a reconnect after the silence");
    } finally {
      await sub.stop();
    }
  } finally {
    await peer.close();
  }
});

Deno.test("kv e2e: a hostile publisher (huge frame, garbage) drops the connection, not the process", async () => {
  const huge = fakePeer("PUB", async (conn) => {
    await write(conn, Uint8Array.of(0x02, 0, 0, 0, 0x40, 0, 0, 0, 0)); // a 256 GiB frame header
    await drain(conn);
  });
  const index = newIndex();
  const sub = subscriber(index, { pub: null!, port: huge.port, replayPort: null });
  try {
    await waitFor(() => huge.accepted() >= 2, "the subscriber to drop and reconnect");
    assert.equal(index.stats().blocks, 0);
  } finally {
    await sub.stop();
    await huge.close();
  }
  const wrongType = fakePeer("ROUTER", drain);
  try {
    await assert.rejects(
      connectZmtp(`tcp://127.0.0.1:${wrongType.port}`, { socketType: "SUB" }),
      /socket type ROUTER cannot talk to SUB/,
    );
  } finally {
    await wrongType.close();
  }
});

Deno.test("kv e2e: hostile subscribers (bad greeting, huge frame) are dropped; others still get data", async () => {
  const rig = publisher();
  const index = newIndex();
  const sub = subscriber(index, rig);
  const raw: Deno.TcpConn[] = [];
  try {
    await subscribed(rig);
    const http = await Deno.connect({ hostname: "127.0.0.1", port: rig.port });
    raw.push(http);
    await write(http, new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const big = await Deno.connect({ hostname: "127.0.0.1", port: rig.port });
    raw.push(big);
    await write(big, greeting(false));
    await write(big, encodeReady({ "Socket-Type": "SUB" }));
    await write(big, Uint8Array.of(0x02, 0, 0, 0, 0x10, 0, 0, 0, 0));
    // Both are closed by the publisher: reads end (the greeting it sent may come first).
    for (const c of raw) await drain(c);
    const toks = chainTokens(10, 2);
    for (let b = 0; b < 2; b++) rig.pub.publish([chainEvent(10, b, toks)]);
    await waitFor(() => index.match("w", blockHashes(toks, BS)) === 2, "2 blocks");
  } finally {
    for (const c of raw) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await sub.stop();
    await rig.pub.stop();
  }
});

Deno.test("kv e2e: a subscriber that never reads does not grow the publisher's memory", async () => {
  const hwmBytes = 256 * 1024;
  const rig = publisher({ sendHwm: 100, sendHwmBytes: hwmBytes });
  const slow = await Deno.connect({ hostname: "127.0.0.1", port: rig.port });
  try {
    await write(slow, greeting(false));
    await write(slow, encodeReady({ "Socket-Type": "SUB" }));
    await write(slow, encodeMessage([subscriptionBody(new Uint8Array(0))]));
    await waitFor(() => rig.pub.pub.subscriptions >= 1, "the slow subscription");
    const filler = Array.from({ length: 2500 }, (_, i) => i); // ~10 KB payloads
    let maxQueued = 0;
    for (let i = 0; i < 3000; i++) {
      rig.pub.publish([{
        type: "BlockStored",
        blockHashes: [BigInt(i)],
        parentBlockHash: null,
        tokenIds: filler,
        blockSize: 2500,
      }]);
      maxQueued = Math.max(maxQueued, rig.pub.pub.queuedBytes);
      if (i % 100 === 0) await delay(1); // let writes reach the kernel until its buffers fill
    }
    assert.ok(maxQueued <= hwmBytes, `queued ${maxQueued} bytes`);
    assert.ok(rig.pub.pub.dropped > 0, "drops at the high-water mark");
  } finally {
    slow.close();
    await rig.pub.stop();
  }
});

Deno.test("kv e2e: a bursty publisher: drops at the HWM, even at the burst's end, are replayed", async () => {
  const rig = publisher({ sendHwm: 200 });
  const index = newIndex();
  const sub = subscriber(index, rig, { tailCheckMs: 100 });
  try {
    await subscribed(rig);
    const n = 1500;
    const toks = chainTokens(11, n);
    for (let b = 0; b < n; b++) rig.pub.publish([chainEvent(11, b, toks)]); // one tick: the queue overflows
    await waitFor(() => sub.lastSeq === n - 1, "the last batch");
    assert.equal(index.match("w", blockHashes(toks, BS)), n);
    assert.ok(rig.pub.pub.dropped > 0, "the burst overflowed the HWM");
    assert.ok(sub.counters.gaps >= 1);
    assert.equal(sub.counters.clears, 0);
  } finally {
    await sub.stop();
    await rig.pub.stop();
  }
});

Deno.test("kv e2e: a late subscriber replays what the engine kept and starts warm", async () => {
  const rig = publisher();
  const toks = chainTokens(12, 4);
  for (let b = 0; b < 3; b++) rig.pub.publish([chainEvent(12, b, toks)]); // nobody listens yet
  const index = newIndex();
  const sub = subscriber(index, rig);
  try {
    await subscribed(rig);
    rig.pub.publish([chainEvent(12, 3, toks)]);
    await waitFor(() => index.match("w", blockHashes(toks, BS)) === 4, "4 blocks");
    assert.ok(sub.warm);
    rig.pub.publishPayload(Uint8Array.of(0xc1)); // not msgpack
    rig.pub.publish([{ type: "AllBlocksCleared" }]);
    await waitFor(() => sub.lastSeq === 5, "seq 5");
    assert.equal(sub.counters.malformed, 1);
    assert.equal(sub.counters.gaps, 0);
    assert.equal(index.match("w", blockHashes(toks, BS)), 0);
  } finally {
    await sub.stop();
    await rig.pub.stop();
  }
});

Deno.test("kv e2e: stop() during a replay that is never answered ends it at once", async () => {
  const pub = new PubServer({ endpoint: "tcp://127.0.0.1:0" });
  const port = pub.start();
  const silentRouter = fakePeer("ROUTER", drain);
  const index = newIndex();
  const sub = subscriber(index, { pub: null!, port, replayPort: silentRouter.port }, {
    replayTimeoutMs: 120_000,
  });
  try {
    await waitFor(() => pub.subscriptions >= 1, "the subscription");
    pub.publish([new TextEncoder().encode("kv"), seqBytes(5), encodeBatch(0, [])]); // cold start: replay from 0
    await waitFor(() => sub.counters.replays === 1, "the replay request");
    await waitFor(() => silentRouter.accepted() === 1, "the replay connection");
    const t0 = performance.now();
    await sub.stop();
    assert.ok(performance.now() - t0 < 30_000, "stop waited for the replay timeout");
    assert.equal(sub.counters.replayFailures, 1);
  } finally {
    await sub.stop();
    await silentRouter.close();
    await pub.stop();
  }
});
