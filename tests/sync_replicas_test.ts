/**
 * Two router replicas, one Redis, four sim workers: a session's turns alternate between the
 * replicas and still land on the worker that holds the session's prefix, because each replica
 * applies the other's routing records. Redis is stopped mid-run (routing goes on, local-only) and
 * restarted (records queued meanwhile are written, and sync resumes).
 */

import assert from "node:assert/strict";
import { configFromWorkers } from "../src/config/mod.ts";
import { chunkCount, chunkHashes } from "../src/prefix/mod.ts";
import { type RunningRouter, startRouter } from "../src/router/mod.ts";
import { type SimWorker, startSimWorker } from "../src/sim/server.ts";
import { startRedisServer } from "../src/sync/redis_server.ts";
import { PrefixSync } from "../src/sync/redis_sync.ts";
import { redisSkipReason, until } from "../src/sync/testing.ts";
import { routingHashes } from "./_support.ts";

const CHUNK = 32;

/** A session with its own long system prompt, so only its own turns share a prefix. */
function session(name: string, turns: number): Record<string, unknown>[] {
  const system = `Session ${name}. ` +
    `You answer about ${name} with care and in detail. `.repeat(30);
  const history: { role: string; content: string }[] = [{ role: "system", content: system }];
  const out: Record<string, unknown>[] = [];
  for (let k = 0; k < turns; k++) {
    history.push({ role: "user", content: `Turn ${k} of ${name}: ` + "tell me more. ".repeat(12) });
    out.push({ model: "sim", max_tokens: 4, messages: [...history] });
    history.push({ role: "assistant", content: `Answer ${k} for ${name}. `.repeat(10) });
  }
  return out;
}

interface Routed {
  status: number;
  backend: string;
  reason: string;
}

async function send(router: RunningRouter, body: Record<string, unknown>): Promise<Routed> {
  const res = await fetch(`${router.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  await res.body?.cancel();
  return {
    status: res.status,
    backend: res.headers.get("x-router-backend") ?? "",
    reason: res.headers.get("x-router-reason") ?? "",
  };
}

function hashesOf(body: Record<string, unknown>) {
  return routingHashes(body, CHUNK);
}

/** Whether `router` believes `worker` holds all of `body`'s prefix. */
function holds(router: RunningRouter, worker: string, body: Record<string, unknown>): boolean {
  const h = hashesOf(body);
  const b = router.router.backends.find((x) => x.id === worker);
  return b !== undefined && b.prefix.match(h) === chunkCount(h);
}

/**
 * Plays `name`'s turns, turn k on `replicas[k % 2]`. With `synced`, waits after each turn until
 * the other replica has applied the record, as a user's think time would allow.
 */
async function play(
  replicas: [RunningRouter, RunningRouter],
  name: string,
  turns: number,
  synced: boolean,
): Promise<Routed[]> {
  const out: Routed[] = [];
  for (const [k, body] of session(name, turns).entries()) {
    const r = await send(replicas[k % 2], body);
    assert.equal(r.status, 200, `${name} turn ${k}`);
    out.push(r);
    if (synced) {
      await until(
        `${name} turn ${k} applied by the other replica`,
        () => holds(replicas[(k + 1) % 2], r.backend, body),
      );
    }
  }
  return out;
}

function assertSticky(name: string, routed: Routed[]): void {
  for (let k = 1; k < routed.length; k++) {
    assert.equal(routed[k].backend, routed[0].backend, `${name} turn ${k} changed worker`);
    assert.equal(routed[k].reason, "longest-prefix", `${name} turn ${k}`);
  }
}

/** Four fast a100-7b sim workers, w1…w4, pushed onto `into` as they start (for cleanup). */
async function startWorkers(into: SimWorker[]): Promise<void> {
  for (let i = 1; i <= 4; i++) {
    into.push(await startSimWorker({ profile: "a100-7b", timeScale: 0.01, id: `w${i}` }));
  }
}

/** Replica `r`: a prefixaware router over `workers`, seeded per replica. */
function startReplica(workers: SimWorker[], r: number): Promise<RunningRouter> {
  const config = configFromWorkers(workers.map((w) => ({ id: w.id, url: w.url })), {
    router: { strategy: "prefixaware", seed: 7 + r, chunkSize: CHUNK },
    logging: { level: "error" },
    health: { intervalMs: 0 },
  });
  return startRouter(config, { port: 0, hostname: "127.0.0.1" });
}

Deno.test({
  name: "two replicas with Redis sync: alternating turns stick to the prefix's worker; " +
    "Redis stopped and restarted",
  ignore: redisSkipReason !== null,
  async fn() {
    const redis = await startRedisServer();
    const workers: SimWorker[] = [];
    const routers: RunningRouter[] = [];
    const syncs: PrefixSync[] = [];
    try {
      await startWorkers(workers);
      for (let r = 0; r < 2; r++) {
        const running = await startReplica(workers, r);
        routers.push(running);
        const sync = PrefixSync.attach(running.router, {
          url: redis.url,
          replicaId: `r${r}`,
          stream: "test:replicas",
          chunkSize: CHUNK,
          blockMs: 100,
          reconnectMaxMs: 50,
        });
        sync.start();
        syncs.push(sync);
      }
      const pair = routers as [RunningRouter, RunningRouter];
      await until("sync connected", () => syncs.every((s) => s.connected));

      // Phase 1: Redis up. Every session's turns alternate replicas and stay on one worker.
      const placed = new Set<string>();
      for (const name of ["alpha", "beta", "gamma", "delta"]) {
        const routed = await play(pair, name, 4, true);
        assertSticky(name, routed);
        placed.add(routed[0].backend);
      }
      assert.ok(placed.size >= 2, "sessions spread over workers");

      // Phase 2: Redis gone. Both replicas keep routing on their own records.
      await redis.stop();
      await until("both replicas see Redis gone", () => syncs.every((s) => !s.connected));
      const down = session("epsilon", 3);
      const d0 = await send(pair[0], down[0]);
      const d1 = await send(pair[0], down[1]);
      assert.equal(d0.status, 200);
      assert.equal(d1.status, 200);
      // Replica 0 alone still follows its own records.
      assert.equal(d1.backend, d0.backend);
      assert.equal(d1.reason, "longest-prefix");
      assert.equal((await send(pair[1], session("zeta", 1)[0])).status, 200);
      assert.ok(syncs[0].stats().queued >= 2, "records wait for Redis");

      // Phase 3: Redis back (empty). Queued records are written and applied by the other replica;
      // then a new session alternates and sticks again.
      await redis.restart();
      await until("sync reconnected", () => syncs.every((s) => s.connected), 10_000);
      await until("queued records applied", () => holds(pair[1], d1.backend, down[1]));
      const d2 = await send(pair[1], down[2]);
      assert.equal(d2.backend, d0.backend, "turn after recovery follows the outage's records");
      assert.equal(d2.reason, "longest-prefix");
      assertSticky("eta", await play(pair, "eta", 4, true));
      assert.equal(syncs[0].stats().disconnects, 1);
      assert.equal(syncs[0].stats().dropped, 0);
    } finally {
      await Promise.all(syncs.map((s) => s.stop()));
      await Promise.all(routers.map((r) => r.shutdown()));
      await Promise.all(workers.map((w) => w.shutdown()));
      await redis.stop();
    }
  },
});

Deno.test({
  name: "two replicas without sync: alternating turns lose their worker (control)",
  async fn() {
    const workers: SimWorker[] = [];
    const routers: RunningRouter[] = [];
    try {
      await startWorkers(workers);
      for (let r = 0; r < 2; r++) {
        routers.push(await startReplica(workers, r));
      }
      const pair = routers as [RunningRouter, RunningRouter];
      let notLongest = 0;
      for (const name of ["alpha", "beta", "gamma", "delta"]) {
        const routed = await play(pair, name, 4, false);
        // Turn 1 reaches the replica that never saw the session: it cannot know the prefix.
        if (routed[1].reason !== "longest-prefix") notLongest++;
      }
      assert.equal(notLongest, 4, "without sync the second replica has no record of a session");
    } finally {
      await Promise.all(routers.map((r) => r.shutdown()));
      await Promise.all(workers.map((w) => w.shutdown()));
    }
  },
});

Deno.test({
  name: "sync follows Router.reload: kept workers keep publishing, added ones join after refresh",
  ignore: redisSkipReason !== null,
  async fn() {
    const redis = await startRedisServer();
    const routers: RunningRouter[] = [];
    const syncs: PrefixSync[] = [];
    // No request is sent: the workers' URLs are never dialled.
    const workers = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ id: `w${i + 1}`, url: `http://127.0.0.1:${9 + i}` }));
    const configFor = (n: number, r: number) =>
      configFromWorkers(workers(n), {
        router: { seed: r, chunkSize: CHUNK },
        logging: { level: "error" },
        health: { intervalMs: 0 },
      });
    try {
      for (let r = 0; r < 2; r++) {
        const running = await startRouter(configFor(2, r), { port: 0, hostname: "127.0.0.1" });
        routers.push(running);
        const sync = PrefixSync.attach(running.router, {
          url: redis.url,
          replicaId: `r${r}`,
          stream: "test:reload",
          chunkSize: CHUNK,
          blockMs: 100,
        });
        sync.start();
        syncs.push(sync);
      }
      await until("sync connected", () => syncs.every((s) => s.connected));
      const tree = (r: number, id: string) =>
        routers[r].router.backends.find((b) => b.id === id)!.prefix;
      const kept = tree(0, "w1");

      await routers[0].router.reload(configFor(3, 0));
      await routers[1].router.reload(configFor(3, 1));
      syncs[0].refresh();
      assert.equal(tree(0, "w1"), kept, "a kept worker keeps its index");

      const h1 = chunkHashes("kept worker prefix ".repeat(20), CHUNK);
      tree(0, "w1").insert(h1);
      await until("kept worker's record applied", () => tree(1, "w1").match(h1) === chunkCount(h1));
      // Replica 1 was not told to refresh: its read loop finds w3 within one block time.
      const h3 = chunkHashes("added worker prefix ".repeat(20), CHUNK);
      tree(0, "w3").insert(h3);
      await until(
        "added worker's record applied",
        () => tree(1, "w3").match(h3) === chunkCount(h3),
      );
      const back = chunkHashes("and back again ".repeat(20), CHUNK);
      await until("replica 1 taps w3", () => {
        tree(1, "w3").insert(back);
        return tree(0, "w3").match(back) === chunkCount(back);
      });
    } finally {
      await Promise.all(syncs.map((s) => s.stop()));
      await Promise.all(routers.map((r) => r.shutdown()));
      await redis.stop();
    }
  },
});
