/**
 * Precise mode when a request cannot take the fast path: the engine tokenizer is asked of a
 * worker that is up (another one when it fails), and a request routed by its text (one that is
 * not tokenized, such as an embedding) leaves no prediction in the block index.
 */

import assert from "node:assert/strict";
import { configFromWorkers } from "../src/config/mod.ts";
import { startRouter } from "../src/router/mod.ts";
import { silentLogger } from "../src/router/logger.ts";
import { type SimWorker, startSimWorker } from "../src/sim/server.ts";
import { refusedUrl, waitFor } from "./_support.ts";

const SYSTEM = "You are the assistant of a precise-mode fallback test. ".repeat(30);

function chat(user: string): string {
  return JSON.stringify({
    model: "sim",
    messages: [{ role: "system", content: SYSTEM }, { role: "user", content: user }],
    max_tokens: 2,
  });
}

async function preciseRouter(urls: string[]) {
  return await startRouter(
    configFromWorkers(urls.map((url) => ({ url, models: ["sim"] })), {
      server: { addr: "127.0.0.1:0" },
      health: { intervalMs: 0 },
      router: { index: "precise", strategy: "prefixaware", seed: 3, predictTtlMs: 60_000 },
    }),
    { logger: silentLogger },
  );
}

async function post(url: string, path: string, body: string): Promise<Response> {
  return await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
}

Deno.test("precise mode tokenizes on a worker that is up, and on another when one fails", async () => {
  const sim: SimWorker = await startSimWorker({ id: "sim", profile: "a100-7b", timeScale: 0.01 });
  const running = await preciseRouter([refusedUrl(), sim.url]);
  const precise = running.router.precise!;
  try {
    // Marked down: its /tokenize is not asked at all.
    running.router.backends[0].up = false;
    const a = await post(running.url, "/v1/chat/completions", chat("first"));
    assert.equal(a.status, 200);
    await a.body?.cancel();
    assert.deepEqual(
      { tokenized: precise.stats.tokenized, failures: precise.stats.tokenizeFailures },
      { tokenized: 1, failures: 0 },
    );
    // Believed up but refusing connections: the tokenizer falls back to the next worker.
    running.router.backends[0].up = true;
    const b = await post(running.url, "/v1/chat/completions", chat("second"));
    await b.body?.cancel();
    assert.equal(precise.stats.tokenized, 2, "tokenized by the second worker");
    assert.equal(b.headers.get("x-router-backend"), "w2");
  } finally {
    await running.shutdown();
    await sim.shutdown();
  }
});

Deno.test("precise mode: a request routed by its text leaves no prediction in the block index", async () => {
  const sim = await startSimWorker({ id: "sim", profile: "a100-7b", timeScale: 0.01 });
  const running = await preciseRouter([sim.url]);
  const precise = running.router.precise!;
  try {
    const input = "An embedding input long enough for many chunks. ".repeat(40);
    const res = await post(running.url, "/v1/embeddings", JSON.stringify({ model: "sim", input }));
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.ok(await waitFor(() => running.router.inflight === 0));
    assert.equal(precise.index.stats().predicted, 0, "no text chunk among the blocks");
    // A tokenized chat request still predicts its blocks.
    const c = await post(running.url, "/v1/chat/completions", chat("tokenized"));
    await c.body?.cancel();
    assert.ok(precise.index.stats().predicted > 0, "the chat request's blocks are predicted");
  } finally {
    await running.shutdown();
    await sim.shutdown();
  }
});

Deno.test("precise mode asks the engine to tokenize an aliased model by its served name", async () => {
  // Serving "sim" by name: its /tokenize answers 404 for any other model, as vLLM's does.
  const sim = await startSimWorker({
    id: "sim",
    profile: "a100-7b",
    timeScale: 0.01,
    model: "sim",
  });
  const running = await startRouter(
    configFromWorkers([{ url: sim.url, models: ["sim"] }], {
      server: { addr: "127.0.0.1:0" },
      health: { intervalMs: 0 },
      router: {
        index: "precise",
        strategy: "prefixaware",
        seed: 3,
        predictTtlMs: 60_000,
        modelAliases: { "gpt-x": "sim" },
      },
    }),
    { logger: silentLogger },
  );
  const precise = running.router.precise!;
  try {
    const body = JSON.parse(chat("aliased"));
    body.model = "gpt-x";
    const res = await post(running.url, "/v1/chat/completions", JSON.stringify(body));
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.deepEqual(
      { tokenized: precise.stats.tokenized, failures: precise.stats.tokenizeFailures },
      { tokenized: 1, failures: 0 },
    );
  } finally {
    await running.shutdown();
    await sim.shutdown();
  }
});
