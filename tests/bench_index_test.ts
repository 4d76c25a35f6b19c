/**
 * `bench --index precise`: the HTTP sweep's simulated workers publish KV events, its router runs
 * the precise index subscribed to them, and the engines' blocks (not text chunks) are what the
 * router matches; `--capacity-blocks` shrinks the engines' caches.
 */

import assert from "node:assert/strict";
import { runSweep, type SweepDeps } from "../src/bench/sweep.ts";
import { startRouter } from "../src/router/mod.ts";
import { silentLogger } from "../src/router/logger.ts";
import type { RunningRouter } from "../src/router/mod.ts";
import { startSimWorker } from "../src/sim/server.ts";

const base = {
  warmup: false,
  strategies: ["prefixaware"],
  sessions: [2],
  seeds: [1],
  turns: 3,
  systemBytes: 2048,
  maxTokens: 4,
  workers: 2,
  profile: "a100-7b",
  timeScale: 0.05,
};

Deno.test("bench --index precise: the router indexes the engines' KV events and routes by them", async () => {
  const routers: RunningRouter[] = [];
  const capacities: number[] = [];
  let blocksSeen = 0;
  const deps: SweepDeps = {
    startSimWorker: (o) => {
      capacities.push(o.params?.capacityBlocks ?? -1);
      return startSimWorker(o);
    },
    startRouter: async (config, o) => {
      const running = await startRouter(config, { ...o, logger: silentLogger });
      routers.push(running);
      const precise = running.router.precise;
      return {
        url: running.url,
        port: running.port,
        kvConnected: () =>
          precise !== null && precise.subscriptions().every((s) => s.sub.state === "connected"),
        shutdown: async () => {
          blocksSeen = precise?.index.stats().stored ?? 0;
          await running.shutdown();
        },
      };
    },
  };
  const records = await runSweep({ ...base, index: "precise", capacityBlocks: 512, deps });
  assert.equal(records.length, 6);
  assert.ok(records.every((r) => r.status === 200), "every request answered");
  assert.equal(routers.length, 1);
  assert.equal(routers[0].router.config.router.index, "precise");
  assert.deepEqual(capacities, [512, 512]);
  assert.ok(blocksSeen > 0, `the engines' stored blocks reached the index (${blocksSeen})`);
  const followUps = records.filter((r) => r.turn > 0);
  assert.ok(
    followUps.some((r) => r.reason === "longest-prefix"),
    "a follow-up turn is routed by the blocks its engine reported",
  );
});

Deno.test("bench --index precise needs simulated workers over HTTP", async () => {
  await assert.rejects(
    runSweep({ ...base, index: "precise", offline: true }),
    /simulated workers over HTTP/,
  );
});
