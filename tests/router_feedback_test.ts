/**
 * Issue 7's router wiring: session affinity, prediction feedback from the engine's
 * `cached_tokens` (metric and tree shrink), and load accounting for cost-model strategies that
 * returns to zero however requests end.
 *
 * @module
 */

import assert from "node:assert/strict";
import { chunkCount } from "../src/prefix/mod.ts";
import {
  chatBody,
  chatCompletion,
  routerHarness,
  routingHashes,
  sample,
  sseChunk,
  sseResponse,
  sseUsage,
  sseWorker,
  startServer,
  type TestServer,
  waitFor,
} from "./_support.ts";
import { startLlamaServer } from "./_llama_server.ts";

function jsonWorker(name: string): Promise<TestServer> {
  return startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion(name));
  });
}

async function send(
  h: Awaited<ReturnType<typeof routerHarness>>,
  user: string,
  session?: string,
): Promise<[string | null, string | null]> {
  const res = await h.post(chatBody(user), { headers: session ? { "x-session-id": session } : {} });
  await res.body?.cancel();
  return [res.headers.get("x-router-backend"), res.headers.get("x-router-reason")];
}

Deno.test("session affinity pins a session to its worker while that worker is admitted", async () => {
  const workers = await Promise.all(["a", "b", "c"].map(jsonWorker));
  const h = await routerHarness(workers.map((w) => w.url), { router: { strategy: "roundrobin" } }, {
    closeAlso: workers,
  });
  try {
    assert.deepEqual(await send(h, "one", "s1"), ["w1", "round-robin"]);
    assert.deepEqual(await send(h, "two", "s1"), ["w1", "session-affinity"]);
    assert.deepEqual(await send(h, "three"), ["w2", "round-robin"]);
    assert.deepEqual(await send(h, "four", "s2"), ["w3", "round-robin"]);
    assert.deepEqual(await send(h, "five", "s1"), ["w1", "session-affinity"]);
    assert.deepEqual(await send(h, "six", "s2"), ["w3", "session-affinity"]);
    assert.equal(h.router.pinnedSessions, 2);

    // The pinned worker goes down: the strategy decides, and the session moves with it.
    h.router.backends[0].up = false;
    const [moved, why] = await send(h, "seven", "s1");
    assert.notEqual(moved, "w1");
    assert.equal(why, "round-robin");
    assert.deepEqual(await send(h, "eight", "s1"), [moved, "session-affinity"]);
  } finally {
    await h.close();
  }
});

Deno.test("session affinity is off with an empty session_header", async () => {
  const workers = await Promise.all(["a", "b"].map(jsonWorker));
  const h = await routerHarness(
    workers.map((w) => w.url),
    { router: { strategy: "roundrobin", sessionHeader: "" } },
    { closeAlso: workers },
  );
  try {
    assert.deepEqual(await send(h, "one", "s1"), ["w1", "round-robin"]);
    assert.deepEqual(await send(h, "two", "s1"), ["w2", "round-robin"]);
    assert.equal(h.router.pinnedSessions, 0);
  } finally {
    await h.close();
  }
});

Deno.test("a cached_tokens report far below the prediction is measured and shrinks the worker's tree in proportion", async () => {
  // The worker reports whatever share of the prompt the test sets as cached.
  let cachedShare = 1;
  const worker = await startServer(async (req) => {
    await req.arrayBuffer();
    const prompt = 1000;
    const events = [
      sseChunk("ok"),
      sseUsage(prompt, Math.round(prompt * cachedShare)),
      "data: [DONE]\n\n",
    ];
    return sseResponse(events);
  });
  const h = await routerHarness([worker.url], { router: { strategy: "prefixaware" } }, {
    closeAlso: [worker],
  });
  const tree = h.router.backends[0].prefix;
  const stream = (user: string) => h.post(chatBody(user, { stream: true })).then((r) => r.text());
  try {
    for (let i = 0; i < 4; i++) await stream(`question number ${i} `.repeat(6)); // all accurate
    const held = tree.stats().chunks;
    assert.equal(tree.stats().maxChunks, h.router.backends[0].capacityChunks, "the default budget");

    // The shared system prompt predicted cached, the engine says 0, nothing else in flight: an
    // eviction. The tree shrinks by a quarter of itself at most, never by the whole miss at once,
    // and the request just recorded stays whole.
    const last = chatBody("second question ".repeat(4));
    cachedShare = 0;
    await stream("second question ".repeat(4));
    await waitFor(() => h.router.inflight === 0);
    const shrunk = tree.stats().maxChunks;
    const grownBy = chunkCount(routingHashes(last)) - 35; // its own chunks beyond the system prompt
    assert.ok(shrunk < held + grownBy, `capacity ${shrunk} did not shrink from ${held + grownBy}`);
    assert.ok(
      shrunk >= Math.floor(0.75 * (held + grownBy)),
      `shrunk by more than a quarter: ${shrunk}`,
    );
    assert.equal(tree.match(routingHashes(last)), chunkCount(routingHashes(last)));
    const text = await h.metrics();
    assert.equal(sample(text, "router_prefix_prediction_error_tokens_count"), 5);

    // Accurate reports let the capacity grow back.
    cachedShare = 1;
    for (let i = 0; i < 3; i++) await stream(`question ${i}`);
    assert.ok(tree.stats().maxChunks > shrunk, "capacity did not grow back");
  } finally {
    await h.close();
  }
});

Deno.test("llama-server slots: a cold start in another slot while the prefix's slot is busy keeps the tree whole", async () => {
  const llama = await startLlamaServer(2);
  const h = await routerHarness([llama.url], { router: { strategy: "prefixaware" } }, {
    closeAlso: [llama],
  });
  const tree = h.router.backends[0].prefix;
  const body = (user: string) => chatBody(user, { stream: true });
  const send = (user: string) => h.post(body(user)).then((r) => r.text());
  try {
    // One conversation, then its next turn: both in slot 0, the second one a hit there.
    const first = "tell me about the river and the bridge. ".repeat(4);
    await send(first);
    await send(first + "and the castle?");
    assert.equal(llama.slots.filter((s) => s.text !== "").length, 1, "one slot used so far");
    const before = tree.stats();
    // Two follow-ups of it at once: the first takes slot 0; the second finds it busy and starts
    // cold in slot 1, reporting 0 cached although the worker holds the whole prefix.
    llama.hold();
    const a = h.post(body(first + "and the castle? and the harbor?"));
    assert.ok(await waitFor(() => llama.started === 3));
    const b = h.post(body(first + "and the castle? and the market?"));
    assert.ok(await waitFor(() => llama.started === 4));
    llama.release();
    await Promise.all([a, b].map((p) => p.then((r) => r.text())));
    assert.ok(await waitFor(() => h.router.inflight === 0));
    const reports = h.logs.filter((l) => l.msg === "request").map((l) => l.cached_tokens);
    assert.equal(reports.at(-1), 0, "the second follow-up started cold");
    assert.ok((reports.at(-2) as number) > 50, "the first follow-up hit slot 0");
    // Nothing was dropped: every path is still held, at the capacity it had.
    assert.equal(tree.stats().maxChunks, before.maxChunks);
    for (
      const u of [
        first,
        first + "and the castle? and the harbor?",
        first + "and the castle? and the market?",
      ]
    ) {
      const hashes = routingHashes(body(u));
      assert.equal(tree.match(hashes), chunkCount(hashes), `lost ${u.slice(-12)}`);
    }
    assert.equal(tree.stats().evictions, 0);
  } finally {
    llama.release();
    await h.close();
  }
});

Deno.test("costaware gets load figures, and they return to zero after finished and aborted streams", async () => {
  const workers = [
    await sseWorker({ events: 20, gapMs: 2 }),
    await sseWorker({ events: 20, gapMs: 2 }),
  ];
  const h = await routerHarness(workers.map((w) => w.url), { router: { strategy: "costaware" } }, {
    closeAlso: workers,
  });
  try {
    assert.ok(h.router.backends[0].load !== undefined);
    // One stream past its first token: it counts as decoding, no longer as prefilling.
    {
      const ctl = new AbortController();
      const res = await h.post(chatBody("probe", { stream: true }), { signal: ctl.signal });
      const reader = res.body!.getReader();
      await reader.read();
      const sum = (k: "decoding" | "prefilling") =>
        h.router.backends.reduce((n, b) => n + (b.load![k] ?? 0), 0);
      assert.equal(sum("decoding"), 1);
      assert.equal(sum("prefilling"), 0);
      ctl.abort();
      await reader.closed.catch(() => {});
    }
    const finished = Array.from(
      { length: 6 },
      (_, i) => h.post(chatBody(`q${i}`, { stream: true })).then((r) => r.text()),
    );
    const aborted = Array.from({ length: 4 }, async (_, i) => {
      const ctl = new AbortController();
      const res = await h.post(chatBody(`a${i}`, { stream: true }), { signal: ctl.signal });
      const reader = res.body!.getReader();
      await reader.read();
      ctl.abort();
      await reader.closed.catch(() => {});
    });
    await Promise.all([...finished, ...aborted]);
    assert.ok(await waitFor(() => h.router.inflight === 0));
    for (const b of h.router.backends) {
      const load = b.load!;
      assert.equal(load.prefilling, 0, `${b.id} prefilling`);
      assert.equal(load.decoding, 0, `${b.id} decoding`);
      assert.equal(load.pendingPrefillTokens, 0, `${b.id} pending`);
    }
  } finally {
    await h.close();
  }
});

Deno.test("load-blind strategies get no load figures", async () => {
  const w = await jsonWorker("a");
  const h = await routerHarness([w.url], { router: { strategy: "leastloaded" } }, {
    closeAlso: [w],
  });
  try {
    assert.equal(h.router.backends[0].load, undefined);
  } finally {
    await h.close();
  }
});

Deno.test("a request the engine refuses (4xx) or that fails before its answer leaves no prefix on the worker", async () => {
  let status = 200;
  const worker = await startServer(async (req) => {
    await req.arrayBuffer();
    return status === 200
      ? Response.json(chatCompletion("ok"))
      : Response.json({ error: { message: "too long" } }, { status });
  });
  const h = await routerHarness([worker.url], { router: { maxRetries: 0 } }, {
    closeAlso: [worker],
  });
  try {
    const system = "You are a careful assistant. ".repeat(20);
    const tree = h.router.backends[0].prefix;
    await (await h.post(chatBody("first", { system }))).body?.cancel();
    const held = tree.chunks;
    assert.ok(held > 0);
    status = 400;
    const refused = await h.post(chatBody("a much longer follow-up ".repeat(10), { system }));
    assert.equal(refused.status, 400);
    await refused.body?.cancel();
    assert.ok(await waitFor(() => h.router.inflight === 0));
    assert.equal(tree.chunks, held, "the refused request's new chunks were taken back");
    const firstHashes = routingHashes(chatBody("first", { system }));
    assert.equal(tree.match(firstHashes), chunkCount(firstHashes));
    status = 503;
    await (await h.post(chatBody("another one ".repeat(10), { system }))).body?.cancel();
    assert.equal(tree.chunks, held, "a 5xx leaves nothing either");
  } finally {
    await h.close();
  }
});
