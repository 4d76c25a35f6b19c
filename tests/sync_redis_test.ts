/**
 * PrefixSync against a real `redis-server` (started here on a free port): records flow between
 * replicas, own records are skipped, foreign ones are checked, history is caught up, and Redis
 * going away and coming back degrades to local-only routing and then recovers.
 */

import assert from "node:assert/strict";
import { chunkHashes, RadixTree } from "../src/prefix/mod.ts";
import { freePort, startRedisServer } from "../src/sync/redis_server.ts";
import { PrefixSync, type PrefixSyncOptions } from "../src/sync/redis_sync.ts";
import type { SyncedBackend } from "../src/sync/types.ts";
import { redisSkipReason, until } from "../src/sync/testing.ts";

const ignore = redisSkipReason !== null;

function fleet(ids: string[]): { backends: SyncedBackend[] } {
  return { backends: ids.map((id) => ({ id, prefix: new RadixTree({ maxChunks: 0 }) })) };
}

const text = (tag: string, chunks: number) =>
  chunkHashes(`${tag}:`.padEnd(32 * chunks, tag.slice(0, 1)), 32);

function treeOf(f: { backends: SyncedBackend[] }, id: string): RadixTree {
  return f.backends.find((b) => b.id === id)!.prefix as RadixTree;
}

type Extra = Partial<Omit<PrefixSyncOptions, "indexFor">>;

function attach(f: { backends: SyncedBackend[] }, url: string, replicaId: string, o: Extra = {}) {
  return PrefixSync.attach(f, {
    url,
    replicaId,
    stream: o.stream ?? "test:prefix",
    blockMs: 100,
    reconnectMaxMs: 50,
    chunkSize: 32,
    ...o,
  });
}

Deno.test({
  name: "PrefixSync: another replica's inserts reach the same worker's tree; own records skipped",
  ignore,
  async fn() {
    const redis = await startRedisServer();
    const a = fleet(["w1", "w2"]);
    const b = fleet(["w1", "w2"]);
    const sa = attach(a, redis.url, "a");
    const sb = attach(b, redis.url, "b");
    try {
      sa.start();
      sb.start();
      await until("both connected", () => sa.connected && sb.connected);
      const h1 = text("one", 12);
      const h2 = text("two", 7);
      treeOf(a, "w2").insert(h1);
      treeOf(b, "w1").insert(h2);
      await until("b applies a's record", () => treeOf(b, "w2").match(h1) === 12);
      await until("a applies b's record", () => treeOf(a, "w1").match(h2) === 7);
      // Only the worker the request went to learns the prefix.
      assert.equal(treeOf(b, "w1").match(h1), 0);
      assert.equal(treeOf(a, "w2").match(h2), 0);
      await until("counters", () => sa.stats().applied === 1 && sb.stats().applied === 1);
      // Applying does not publish again, and a replica does not apply its own record: one insert
      // per tree, however long we wait.
      await new Promise((r) => setTimeout(r, 250));
      assert.equal(treeOf(a, "w2").stats().inserts, 1);
      assert.equal(treeOf(b, "w2").stats().inserts, 1);
      assert.equal(sa.stats().published, 1);
      assert.equal(sb.stats().published, 1);
      assert.equal(sa.stats().applied, 1);
      assert.equal(sa.stats().ignored, 0);
    } finally {
      await sa.stop();
      await sb.stop();
      await redis.stop();
    }
    // stop() removed the wrappers: inserts no longer publish.
    assert.equal(Object.hasOwn(treeOf(a, "w1"), "insert"), false);
  },
});

Deno.test({
  name:
    "PrefixSync: unknown workers, other chunk sizes and other hash schemes are ignored; truncate and new backends",
  ignore,
  async fn() {
    const redis = await startRedisServer();
    const a = fleet(["w1", "w9"]);
    const b = fleet(["w1"]);
    const c = fleet(["w1", "w9"]);
    const sa = attach(a, redis.url, "a");
    const sb = attach(b, redis.url, "b");
    const sc = attach(c, redis.url, "c", { chunkSize: 16 });
    // A replica of an older version: FNV-1a hashes, published without a scheme field.
    const d = fleet(["w1", "w9"]);
    const sd = attach(d, redis.url, "d", { hashScheme: 1 });
    try {
      for (const s of [sa, sb, sc, sd]) s.start();
      await until("connected", () => sa.connected && sb.connected && sc.connected && sd.connected);
      const h = text("alpha", 10);
      treeOf(a, "w9").insert(h);
      treeOf(a, "w1").insert(h);
      await until("b applies w1, ignores w9", () => sb.stats().applied + sb.stats().ignored === 2);
      assert.equal(sb.stats().applied, 1);
      assert.equal(sb.stats().ignored, 1);
      assert.equal(treeOf(b, "w1").match(h), 10);
      await until("c ignores both (chunk size 16)", () => sc.stats().ignored === 2);
      assert.equal(sc.stats().applied, 0);
      assert.equal(treeOf(c, "w1").match(h), 0);
      await until("d ignores both (hash scheme 2)", () => sd.stats().ignored === 2);
      assert.equal(sd.stats().applied, 0);
      assert.equal(treeOf(d, "w1").match(h), 0);
      // ...and the others ignore d's records.
      const old = text("delta", 6);
      treeOf(d, "w1").insert(old);
      await until("b ignores d's record", () => sb.stats().ignored === 2);
      assert.equal(treeOf(b, "w1").match(old), 0);

      // Truncate travels too: the engine reported only 4 chunks cached.
      treeOf(a, "w1").truncate(h, 4);
      await until("b truncates", () => treeOf(b, "w1").match(h) === 4);

      // A backend added after attach (a reload) publishes and receives after refresh().
      b.backends.push({ id: "w9", prefix: new RadixTree({ maxChunks: 0 }) });
      sb.refresh();
      const g = text("gamma", 5);
      treeOf(b, "w9").insert(g);
      await until("a applies b's new backend", () => treeOf(a, "w9").match(g) === 5);
    } finally {
      await Promise.all([sa.stop(), sb.stop(), sc.stop(), sd.stop()]);
      await redis.stop();
    }
  },
});

Deno.test({
  name: "PrefixSync: a replica started later catches up on the stream's history",
  ignore,
  async fn() {
    const redis = await startRedisServer();
    const a = fleet(["w1"]);
    const late = fleet(["w1"]);
    const fresh = fleet(["w1"]);
    const sa = attach(a, redis.url, "a");
    const sLate = attach(late, redis.url, "late", { catchUpMs: 60_000 });
    const sFresh = attach(fresh, redis.url, "fresh", { catchUpMs: 0 });
    try {
      sa.start();
      await until("a connected", () => sa.connected);
      const h = text("history", 9);
      treeOf(a, "w1").insert(h);
      await until("a published", () => sa.stats().published === 1);
      sLate.start();
      sFresh.start();
      await until("late replica caught up", () => treeOf(late, "w1").match(h) === 9);
      await until("fresh connected", () => sFresh.connected);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(treeOf(fresh, "w1").match(h), 0, "catchUpMs 0 reads new records only");
    } finally {
      await Promise.all([sa.stop(), sLate.stop(), sFresh.stop()]);
      await redis.stop();
    }
  },
});

Deno.test({
  name: "PrefixSync: Redis away → local queue (bounded, oldest dropped), state reported, recovery",
  ignore,
  async fn() {
    const redis = await startRedisServer();
    const a = fleet(["w1"]);
    const b = fleet(["w1"]);
    const states: boolean[] = [];
    const warnings: string[] = [];
    const logger = {
      debug() {},
      info() {},
      warn: (msg: string) => void warnings.push(msg),
      error() {},
    };
    const sa = attach(a, redis.url, "a", { queueMax: 3, onStateChange: (up) => states.push(up) });
    const sb = attach(b, redis.url, "b", { logger });
    try {
      sa.start();
      sb.start();
      await until("connected", () => sa.connected && sb.connected);
      assert.deepEqual(states, [true]);

      await redis.stop();
      await until("a sees the loss", () => !sa.connected);
      await until("b sees the loss", () => !sb.connected);
      assert.deepEqual(states, [true, false]);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /routing on this replica's records only/);

      // Local routing goes on: the tree is updated at once; records wait, the oldest dropped.
      const hs = [1, 2, 3, 4, 5].map((i) => text(`down${i}`, 6));
      for (const h of hs) treeOf(a, "w1").insert(h);
      assert.equal(treeOf(a, "w1").match(hs[0]), 6);
      assert.equal(sa.stats().queued, 3);
      assert.equal(sa.stats().dropped, 2);

      await redis.restart();
      await until("reconnected", () => sa.connected && sb.connected, 10_000);
      assert.deepEqual(states, [true, false, true]);
      await until("queued records reach b", () => treeOf(b, "w1").match(hs[4]) === 6);
      assert.equal(treeOf(b, "w1").match(hs[2]), 6);
      assert.equal(treeOf(b, "w1").match(hs[0]), 0, "the oldest records were dropped");
      assert.equal(sa.stats().published, 3);
      assert.equal(sa.stats().queued, 0);
      assert.equal(sa.stats().disconnects, 1);

      // And new records flow again.
      const after = text("after", 8);
      treeOf(a, "w1").insert(after);
      await until("new record after recovery", () => treeOf(b, "w1").match(after) === 8);
    } finally {
      await Promise.all([sa.stop(), sb.stop()]);
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "PrefixSync: a Redis that holds the connection but answers nothing counts as lost, then returns",
  ignore,
  async fn() {
    const redis = await startRedisServer();
    const a = fleet(["w1"]);
    const warnings: string[] = [];
    const s = attach(a, redis.url, "a", {
      commandTimeoutMs: 300,
      logger: { debug() {}, info() {}, error() {}, warn: (m) => void warnings.push(m) },
    });
    try {
      s.start();
      await until("connected", () => s.connected);
      Deno.kill(redis.pid!, "SIGSTOP"); // the process holds its sockets and answers nothing
      treeOf(a, "w1").insert(text("during", 4));
      await until("seen as lost", () => !s.connected, 5000);
      assert.equal(s.stats().disconnects, 1);
      assert.deepEqual(warnings, [
        "redis sync lost; routing on this replica's records only until it returns",
      ]);
      Deno.kill(redis.pid!, "SIGCONT");
      await until("back", () => s.connected, 10_000);
      await until("the record queued meanwhile is published", () => s.stats().published === 1);
    } finally {
      try {
        Deno.kill(redis.pid!, "SIGCONT");
      } catch { /* not running */ }
      await s.stop();
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "PrefixSync: a replica restarted under the same id catches up on its previous life's records",
  ignore,
  async fn() {
    const redis = await startRedisServer();
    const before = fleet(["w1"]);
    const after = fleet(["w1"]);
    // The same id in both lives, as a pod name is across a container restart.
    const first = attach(before, redis.url, "pod-0");
    const second = attach(after, redis.url, "pod-0", { catchUpMs: 60_000 });
    try {
      first.start();
      await until("first life connected", () => first.connected);
      const h = text("earlier", 7);
      treeOf(before, "w1").insert(h);
      await until("published", () => first.stats().published === 1);
      await first.stop();
      second.start();
      await until("caught up on its earlier life", () => treeOf(after, "w1").match(h) === 7);
      // Its own new records are still its echo, not applied twice (the count would grow).
      treeOf(after, "w1").insert(text("now", 5));
      await until("published", () => second.stats().published === 1);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(second.stats().applied, 1, "only the earlier life's record was applied");
    } finally {
      await Promise.all([first.stop(), second.stop()]);
      await redis.stop();
    }
  },
});

Deno.test("PrefixSync: never connected, routing unaffected; stop is prompt and leaks nothing", async () => {
  const a = fleet(["w1"]);
  const s = attach(a, `redis://127.0.0.1:${freePort()}`, "a");
  s.start();
  const h = text("alone", 4);
  treeOf(a, "w1").insert(h);
  assert.equal(treeOf(a, "w1").match(h), 4, "the local insert happened at once");
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(s.connected, false);
  assert.equal(s.stats().queued, 1);
  const t0 = performance.now();
  await s.stop();
  assert.ok(performance.now() - t0 < 500, "stop does not wait for a connection that never came");
});
