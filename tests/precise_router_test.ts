/**
 * Precise mode end to end: a router with `router.index: precise` in front of two sim workers that
 * publish their KV cache events over ZMQ (as vLLM does) and answer `/tokenize` with the ids they
 * cache. The router's index learns what each engine holds from the events, routes a follow-up to
 * the worker holding its prefix, predicts a routed request's blocks until the engine confirms
 * them, and stops sending a prefix to a worker that evicted it.
 */

import assert from "node:assert/strict";
import { configFromWorkers } from "../src/config/mod.ts";
import { Logger, startRouter } from "../src/router/mod.ts";
import { type SimWorker, startSimWorker } from "../src/sim/server.ts";
import { waitFor } from "./_support.ts";

const SYSTEM = "You are the shared assistant of a precise-mode routing test. ".repeat(40);

function chat(user: string, stream = false): string {
  return JSON.stringify({
    model: "sim",
    messages: [{ role: "system", content: SYSTEM }, { role: "user", content: user }],
    max_tokens: 4,
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
  });
}

async function workers(n: number): Promise<SimWorker[]> {
  const out: SimWorker[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      await startSimWorker({
        id: `w${i + 1}`,
        profile: "a100-7b",
        timeScale: 0.01,
        kvEvents: { endpoint: "tcp://127.0.0.1:0", replayEndpoint: "tcp://127.0.0.1:0" },
      }),
    );
  }
  return out;
}

Deno.test("precise mode: events fill the index, a follow-up goes where its blocks are, an eviction is learned", async () => {
  const sims = await workers(2);
  const logs: Record<string, unknown>[] = [];
  const config = configFromWorkers(
    sims.map((w) => ({
      url: w.url,
      kvEvents: `tcp://{host}:${w.kvEventsPort}`,
      kvEventsReplay: `tcp://127.0.0.1:${w.kvEventsReplayPort}`,
    })),
    {
      server: { addr: "127.0.0.1:0" },
      health: { intervalMs: 0 },
      router: { index: "precise", strategy: "prefixaware", seed: 7, predictTtlMs: 300 },
    },
  );
  const running = await startRouter(config, {
    logger: new Logger("info", "json", (l) => logs.push(JSON.parse(l))),
  });
  const router = running.router;
  const precise = router.precise!;
  const post = async (body: string) => {
    const res = await fetch(`${running.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const text = await res.text();
    return { res, json: JSON.parse(text) };
  };
  try {
    assert.ok(
      await waitFor(
        () => precise.subscriptions().every((s) => s.sub.state === "connected"),
        10_000,
      ),
      "both subscriptions connect",
    );
    const first = await post(chat("first question"));
    assert.equal(first.res.status, 200);
    const owner = first.res.headers.get("x-router-backend")!;
    // The engine's BlockStored events arrive: the owner holds real (not only predicted) blocks.
    assert.ok(
      await waitFor(() => precise.index.stats().blocks > 10, 10_000),
      "blocks indexed from events",
    );
    await new Promise((r) => setTimeout(r, 400)); // predictions expired: what is left is the engine's
    const follow = await post(chat("second question"));
    assert.equal(
      follow.res.headers.get("x-router-backend"),
      owner,
      "to the worker holding the prefix",
    );
    assert.equal(follow.res.headers.get("x-router-reason"), "longest-prefix");
    const cached = follow.json.usage.prompt_tokens_details?.cached_tokens ?? 0;
    assert.ok(cached > 300, `the engine reused the prefix (${cached} cached)`);
    const line = logs.filter((l) => l.msg === "request").at(-1)!;
    const predicted = Number(line.match_chunks) * 16;
    assert.ok(
      Math.abs(predicted - cached) < 16,
      `predicted ${predicted}, engine ${cached}: within a block`,
    );

    // The owner evicts everything (a reset): AllBlocksCleared reaches the router.
    const sim = sims.find((w) => w.id === owner)!;
    const reset = await fetch(`${sim.url}/reset_prefix_cache`, { method: "POST" });
    assert.equal(reset.status, 200);
    await reset.body?.cancel();
    const ownerView = router.backends.find((b) => b.id === owner)!.prefix;
    assert.ok(await waitFor(() => ownerView.chunks === 0, 10_000), "the eviction is learned");
    const after = await post(chat("third question"));
    assert.notEqual(after.res.headers.get("x-router-reason"), "longest-prefix", "no stale match");
    const m = await (await fetch(`${running.url}/metrics`)).text();
    assert.match(m, new RegExp(`router_kv_events_total\\{backend="${owner}"\\} [1-9]`));
    assert.match(m, /router_kv_subscription_connected\{backend="w1"\} 1/);
    assert.match(
      m,
      /router_tokenizer_requests_total\{tokenizer="engine:http:\/\/127\.0\.0\.1:\d+\|sim"\} [1-9]/,
    );
  } finally {
    await running.shutdown();
    for (const w of sims) await w.shutdown();
  }
});
