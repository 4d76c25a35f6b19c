/**
 * The sim worker's KV cache events over real ZMQ (TCP on 127.0.0.1), read by the router's
 * `KvEventSubscriber` into a `BlockIndex`: what the index holds matches what the engine holds
 * (both encodings, pseudo tokens and the real Qwen3 tokenizer), evictions arrive as BlockRemoved,
 * a reset as AllBlocksCleared, a restarted worker numbers from 0 again, and `/tokenize` returns
 * the very ids whose blocks the events announce.
 */

import assert from "node:assert/strict";
import { KvEventSubscriber } from "../src/kv_events/subscriber.ts";
import { blockHashes } from "../src/precise/block_hash.ts";
import { BlockIndex } from "../src/precise/block_index.ts";
import { type SimWorker, type SimWorkerOptions, startSimWorker } from "../src/sim/server.ts";
import { loadSimTokenizer, type SimTokenizer } from "../src/sim/sim_tokenizer.ts";
import { modelFiles, testTokenizer } from "../src/tokenize/test_models.ts";
import { ManualClock } from "../src/util/clock.ts";

const SYSTEM = "You are the shared assistant of a cache-aware router test. ".repeat(30);
const WAIT_MS = 15_000;

let qwen: Promise<SimTokenizer> | undefined;
function qwenTokenizer(): Promise<SimTokenizer> {
  qwen ??= loadSimTokenizer(modelFiles("qwen3"));
  return qwen;
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const end = performance.now() + WAIT_MS;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Rig {
  w: SimWorker;
  index: BlockIndex;
  sub: KvEventSubscriber;
}

async function rig(
  opts: Partial<SimWorkerOptions>,
  encoding: "map" | "array" = "map",
): Promise<Rig> {
  const w = await startSimWorker({
    profile: "a100-7b",
    timeScale: 0.01,
    answerLength: { kind: "max" },
    kvEvents: {
      endpoint: "tcp://127.0.0.1:0",
      replayEndpoint: "tcp://127.0.0.1:0",
      encoding,
      topic: "kv@w",
    },
    ...opts,
  });
  const index = new BlockIndex({ clock: new ManualClock(0), blockSize: 16 });
  const sub = subscribe(w, index);
  return { w, index, sub };
}

function subscribe(w: SimWorker, index: BlockIndex, port = w.kvEventsPort): KvEventSubscriber {
  const sub = new KvEventSubscriber({
    endpoint: `tcp://127.0.0.1:${port}`,
    replayEndpoint: `tcp://127.0.0.1:${w.kvEventsReplayPort}`,
    topic: "kv@w",
    sink: index.sink("w"),
    heartbeatIntervalMs: 200,
    reconnectBaseMs: 20,
    reconnectMaxMs: 200,
    tailCheckMs: 0,
  });
  sub.start();
  return sub;
}

async function stop(r: Rig): Promise<void> {
  await r.sub.stop();
  await r.w.shutdown();
}

async function post(w: SimWorker, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(w.url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return await res.json();
}

/** Sends chats one after another (a shared system prompt, distinct questions, one follow-up). */
async function conversation(w: SimWorker, model?: string): Promise<Record<string, unknown>[]> {
  const bodies: Record<string, unknown>[] = [];
  const first = [{ role: "system", content: SYSTEM }, { role: "user", content: "What is KV?" }];
  bodies.push({ model, messages: first, max_tokens: 12 });
  bodies.push({
    model,
    messages: [first[0], { role: "user", content: "Another question" }],
    max_tokens: 3,
  });
  const a = await post(w, "/v1/chat/completions", bodies[0]);
  await post(w, "/v1/chat/completions", bodies[1]);
  const answer = (a.choices as Array<{ message: { content: string } }>)[0].message.content;
  const follow = [...first, { role: "assistant", content: answer }, {
    role: "user",
    content: "More",
  }];
  bodies.push({ model, messages: follow, max_tokens: 5 });
  await post(w, "/v1/chat/completions", bodies[2]);
  return bodies;
}

/** The index matches the engine: same block count, and every prompt's full blocks are matched. */
async function assertInSync(
  r: Rig,
  bodies: Record<string, unknown>[],
  lora?: string,
): Promise<void> {
  await waitFor(
    () => r.index.blocks("w") === r.w.engine.stats().cachedBlocks,
    `index ${r.index.blocks("w")} = engine ${r.w.engine.stats().cachedBlocks} blocks`,
  );
  assert.equal(r.index.stats().orphans, 0);
  for (const body of bodies) {
    const t = await post(r.w, "/tokenize", body);
    const tokens = t.tokens as number[];
    const matched = r.index.match("w", blockHashes(tokens, 16, { loraName: lora ?? null }));
    // Every full block of each prompt was computed and announced with these very ids.
    assert.equal(matched, Math.floor(tokens.length / 16));
    const engineHit = r.w.engine.peekCachedTokens({
      tokens,
      lora: lora === undefined ? null : { name: lora, id: 1 },
    });
    assert.equal(engineHit, Math.min(matched * 16, Math.floor((tokens.length - 1) / 16) * 16));
  }
}

for (const encoding of ["map", "array"] as const) {
  Deno.test(`sim kv events (${encoding}, pseudo tokens): the index holds what the engine holds`, async () => {
    const r = await rig({}, encoding);
    try {
      await waitFor(() => r.w.kvEventsPort !== null && r.sub.state === "connected", "connect");
      await new Promise((res) => setTimeout(res, 100)); // the subscription reaches the PUB
      const bodies = await conversation(r.w);
      await assertInSync(r, bodies);
      assert.equal(r.sub.counters.gaps, 0);
      assert.ok(r.sub.warm);
    } finally {
      await stop(r);
    }
  });
}

Deno.test("sim kv events with the real Qwen3 tokenizer: ids of /tokenize = local = announced", async () => {
  const tokenizer = await qwenTokenizer();
  for (const encoding of ["map", "array"] as const) {
    const r = await rig(
      { tokenizer, models: ["Qwen/Qwen3-8B"], loras: [{ name: "sql" }] },
      encoding,
    );
    try {
      await waitFor(() => r.sub.state === "connected", "connect");
      await new Promise((res) => setTimeout(res, 100));
      const bodies = await conversation(r.w);
      await assertInSync(r, bodies);
      const local = await testTokenizer("qwen3");
      for (const body of bodies) {
        const t = await post(r.w, "/tokenize", body);
        const mine = (await local.tokenize({ kind: "chat", body })).tokens;
        assert.deepEqual(
          t.tokens,
          Array.from(mine),
          "the engine's /tokenize is the router's tokenizer",
        );
      }
      // The adapter's blocks are announced under its name and matched only with it.
      const adapter = await conversation(r.w, "sql");
      await assertInSync(r, adapter, "sql");
    } finally {
      await stop(r);
    }
  }
});

Deno.test("sim kv events: evictions arrive as BlockRemoved, a reset as AllBlocksCleared", async () => {
  const r = await rig({ params: { capacityBlocks: 200 }, maxModelLen: 3000 });
  try {
    await waitFor(() => r.sub.state === "connected", "connect");
    await new Promise((res) => setTimeout(res, 100));
    for (let i = 0; i < 12; i++) {
      const user = `question ${i} `.repeat(200);
      await post(r.w, "/v1/chat/completions", {
        messages: [{ role: "system", content: SYSTEM }, { role: "user", content: user }],
        max_tokens: 4,
      });
    }
    const evicted = r.w.engine.stats().evictedBlocks;
    assert.ok(evicted > 0, "the small cache evicted");
    await waitFor(() => r.index.stats().removed === evicted, `${evicted} removals`);
    assert.equal(r.index.blocks("w"), r.w.engine.stats().cachedBlocks);
    const res = await fetch(`${r.w.url}/reset_prefix_cache`, { method: "POST" });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    await waitFor(() => r.index.stats().clears === 1, "the clear");
    assert.equal(r.index.blocks("w"), 0);
    assert.equal(r.w.engine.stats().cachedBlocks, 0);
  } finally {
    await stop(r);
  }
});

Deno.test("sim kv events: a restarted worker numbers its batches from 0 again", async () => {
  const first = await rig({});
  let second: SimWorker | undefined;
  try {
    await waitFor(() => first.sub.state === "connected", "connect");
    await new Promise((res) => setTimeout(res, 100));
    await conversation(first.w);
    await waitFor(() => first.index.blocks("w") === first.w.engine.stats().cachedBlocks, "sync");
    const before = first.sub.lastSeq!;
    assert.ok(before >= 2);
    const { port, kvEventsPort, kvEventsReplayPort } = first.w;
    await first.w.shutdown();
    second = await startSimWorker({
      profile: "a100-7b",
      timeScale: 0.01,
      port,
      kvEvents: {
        endpoint: `tcp://127.0.0.1:${kvEventsPort}`,
        replayEndpoint: `tcp://127.0.0.1:${kvEventsReplayPort}`,
        topic: "kv@w",
      },
    });
    await waitFor(() => first.sub.counters.reconnects >= 1, "the reconnect");
    await new Promise((res) => setTimeout(res, 100));
    await post(second, "/v1/chat/completions", {
      messages: [{ role: "user", content: "a fresh engine " + SYSTEM }],
      max_tokens: 1,
    });
    await waitFor(() => first.index.blocks("w") === second!.engine.stats().cachedBlocks, "resync");
    assert.equal(first.sub.lastSeq, 0, "the new worker's first batch is seq 0");
    assert.ok(first.sub.counters.clears >= 1, "the old worker's blocks were forgotten");
  } finally {
    await first.sub.stop();
    await first.w.shutdown();
    await second?.shutdown();
  }
});
