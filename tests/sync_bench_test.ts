/**
 * The replica benchmark end to end at a tiny size: R routers over sim workers, turns spread across
 * replicas, KV-cached share from the engines' usage.
 */

import assert from "node:assert/strict";
import { runReplicaComparison } from "../src/sync/bench_replicas.ts";
import { redisSkipReason } from "../src/sync/testing.ts";

const small = { sessions: 3, turns: 3, workers: 3, timeScale: 0.01, maxTokens: 8, seed: 5 };

Deno.test({
  name: "runReplicaComparison: with sync, turns spread over replicas keep their worker",
  ignore: redisSkipReason !== null,
  async fn() {
    const r = await runReplicaComparison({ ...small, replicas: 2, sync: true });
    assert.equal(r.requests, 9);
    assert.equal(r.errors, 0);
    assert.equal(r.sameWorkerShare, 1);
    assert.ok(r.cachedShare > 0.5, `cached share ${r.cachedShare}`);
    assert.equal(r.cachedShare, r.cachedTokens / r.promptTokens);
    assert.equal(r.syncStats.length, 2);
    const published = r.syncStats.reduce((a, s) => a + s.published, 0);
    assert.equal(published, 9, "one record per request");
    assert.ok(r.syncStats.every((s) => s.connected === true && s.dropped === 0));
  },
});

Deno.test("runReplicaComparison: one router is the baseline; replicas must be >= 1", async () => {
  const r = await runReplicaComparison({ ...small, replicas: 1, sync: false });
  assert.equal(r.errors, 0);
  assert.equal(r.sameWorkerShare, 1);
  assert.deepEqual(r.syncStats, []);
  await assert.rejects(
    () => runReplicaComparison({ ...small, replicas: 0, sync: false }),
    /replicas must be an integer >= 1, got 0/,
  );
});
