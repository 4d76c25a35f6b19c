/**
 * Engine signals end to end: two simulated vLLM workers over HTTP, another client loading one of
 * them directly (the router never sees those requests), the `EngineScraper` reading both
 * `/metrics`, and the strategies deciding with what it read.
 *
 * @module
 */

import assert from "node:assert/strict";
import { EngineScraper } from "../src/backends/engine_scraper.ts";
import { configFromWorkers } from "../src/config/mod.ts";
import { silentLogger, startRouter } from "../src/router/mod.ts";
import { type SimWorker, startSimWorker } from "../src/sim/server.ts";
import { createStrategy } from "../src/strategies/registry.ts";
import type { Candidate, EngineLoad } from "../src/strategies/types.ts";
import { systemClock } from "../src/util/clock.ts";
import { SeededRng } from "../src/util/rng.ts";

const PARAMS = { minMatchChunks: 2, saturationInflight: 8 };

/** Two a100-7b workers running at most 2 sequences each, so a third request waits. */
async function twoWorkers(): Promise<SimWorker[]> {
  const opts = { profile: "a100-7b", timeScale: 1, params: { maxNumSeqs: 2 } };
  return [await startSimWorker({ ...opts, id: "w0" }), await startSimWorker({ ...opts, id: "w1" })];
}

/** The other client: `n` long streaming requests straight to `w`, aborted by `ctl`. */
function otherClient(w: SimWorker, n: number, ctl: AbortController): Promise<void>[] {
  const out: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      fetch(w.url + "/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: w.model,
          messages: [{ role: "user", content: `other client ${i} `.repeat(200) }],
          max_tokens: 4000,
          stream: true,
        }),
        signal: ctl.signal,
        // Read on (a client that leaves cancels its request in the engine) until `ctl` aborts.
      }).then((r) => r.text()).then(() => {}, () => {}),
    );
  }
  return out;
}

function candidates(engines: (EngineLoad | undefined)[]): Candidate[] {
  return engines.map((engine, index) => ({
    index,
    id: `w${index}`,
    inflight: 0,
    match: 0,
    cachedChunks: 0,
    capacityChunks: 0,
    engine,
  }));
}

Deno.test("engine signals: costaware and leastloaded avoid an engine another client loads", async () => {
  const workers = await twoWorkers();
  const ctl = new AbortController();
  const scraper = new EngineScraper({
    targets: workers.map((w) => ({ id: w.id, url: w.url })),
    intervalMs: 100,
    timeoutMs: 2000,
    clock: systemClock,
  });
  const others = otherClient(workers[0], 8, ctl);
  try {
    scraper.start();
    // Bounded generously: the machine is shared.
    const end = Date.now() + 10_000;
    while ((scraper.engineLoad("w0")?.waiting ?? 0) < 6) {
      if (Date.now() > end) {
        assert.fail(`w0 never showed its queue: ${JSON.stringify(scraper.reading("w0"))}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const views = [scraper.engineLoad("w0"), scraper.engineLoad("w1")];
    assert.ok((views[0]?.running ?? 0) >= 1);
    assert.equal(views[1]?.waiting, 0);
    const now = systemClock.now();
    for (const name of ["costaware", "leastloaded"]) {
      const s = createStrategy(name, PARAMS);
      const picked = new Set<string>();
      const blind = new Set<string>();
      for (let seed = 0; seed < 40; seed++) {
        // The router's own view is the same for both workers: nothing in flight, no load.
        picked.add(
          s.pick({
            candidates: candidates(views),
            requestChunks: 100,
            chunkSize: 32,
            rng: new SeededRng(seed),
            now,
          })!.candidate.id,
        );
        blind.add(
          s.pick({
            candidates: candidates([undefined, undefined]),
            requestChunks: 100,
            chunkSize: 32,
            rng: new SeededRng(seed),
            now,
          })!.candidate.id,
        );
      }
      assert.deepEqual([...picked], ["w1"], `${name} with signals`);
      assert.deepEqual([...blind].sort(), ["w0", "w1"], `${name} without signals is a coin toss`);
      // Stale signals (as after three failed scrapes) are ignored again.
      const later = now + scraper.maxAgeMs + 1;
      const stale = new Set<string>();
      for (let seed = 0; seed < 40; seed++) {
        stale.add(
          s.pick({
            candidates: candidates(views),
            requestChunks: 100,
            chunkSize: 32,
            rng: new SeededRng(seed),
            now: later,
          })!.candidate.id,
        );
      }
      assert.deepEqual([...stale].sort(), ["w0", "w1"], `${name} with stale signals`);
    }
  } finally {
    ctl.abort();
    await Promise.all(others);
    await scraper.stop();
    for (const w of workers) await w.shutdown();
  }
});

Deno.test("engine signals through the router: with health.scrape_metrics, leastloaded avoids the engine another client loads", async () => {
  const workers = await twoWorkers();
  const ctl = new AbortController();
  const others = otherClient(workers[0], 8, ctl);
  const running = await startRouter(
    configFromWorkers(workers.map((w) => w.url), {
      server: { addr: "127.0.0.1:0" },
      health: { intervalMs: 0, scrapeMetrics: true, scrapeIntervalMs: 100 },
      router: { strategy: "leastloaded", seed: 3 },
    }),
    { logger: silentLogger },
  );
  try {
    const b0 = running.router.backends[0];
    const end = Date.now() + 10_000;
    while ((b0.engine?.waiting ?? 0) < 6) {
      if (Date.now() > end) assert.fail("the router never saw w0's queue");
      await new Promise((r) => setTimeout(r, 20));
    }
    const picked = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${running.url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ messages: [{ role: "user", content: `mine ${i}` }], max_tokens: 1 }),
      });
      picked.add(res.headers.get("x-router-backend")!);
      await res.body?.cancel();
    }
    assert.deepEqual([...picked], ["w2"], "every request went to the engine without a queue");
  } finally {
    ctl.abort();
    await Promise.all(others);
    await running.shutdown();
    for (const w of workers) await w.shutdown();
  }
});
