import assert from "node:assert/strict";
import { resolveSyncConfig, SYNC_OFF } from "./config.ts";

Deno.test("resolveSyncConfig: absent or without url is off", () => {
  assert.deepEqual(resolveSyncConfig(undefined), { value: SYNC_OFF, errors: [] });
  assert.deepEqual(resolveSyncConfig({ redis: { url: null } }), { value: SYNC_OFF, errors: [] });
});

Deno.test("resolveSyncConfig: defaults, values and env overrides", () => {
  assert.deepEqual(resolveSyncConfig({ redis: { url: "redis://redis:6379/0" } }), {
    value: {
      redis: {
        url: "redis://redis:6379/0",
        stream: "llm-cache-router:prefix",
        maxLen: 50_000,
        catchUpMs: 0,
        queueMax: 10_000,
      },
      replicaId: null,
    },
    errors: [],
  });
  const r = resolveSyncConfig(
    {
      replica_id: "a",
      redis: { url: "redis://x", stream: "s", max_len: 10, catch_up: "2m", queue_max: 1 },
    },
    {
      ROUTER_SYNC_REDIS_URL: "rediss://:secret@redis.example:6380",
      ROUTER_SYNC_REPLICA_ID: "pod-1",
    },
  );
  assert.deepEqual(r.errors, []);
  assert.equal(r.value.redis?.url, "rediss://:secret@redis.example:6380");
  assert.equal(r.value.redis?.catchUpMs, 120_000);
  assert.equal(r.value.replicaId, "pod-1");
});

Deno.test("resolveSyncConfig: every problem with its path; passwords not shown", () => {
  const r = resolveSyncConfig({
    replica_id: "",
    redis: { url: "http://:pw@x", max_len: 0, catch_up: "soon", queue_max: -1, extra: 1 },
    other: true,
  });
  assert.deepEqual(r.errors, [
    "unknown key sync.other",
    'sync.replica_id must be 1 to 128 printable characters or null, got ""',
    "unknown key sync.redis.extra",
    "sync.redis.url must be a redis:// or rediss:// URL",
    "sync.redis.max_len must be an integer >= 1, got 0",
    "sync.redis.queue_max must be an integer >= 1, got -1",
    'sync.redis.catch_up must be a duration such as "30s" or "5m", got "soon"',
  ]);
  assert.deepEqual(resolveSyncConfig([1]).errors, ["sync must be a mapping, got [1]"]);
  // 0 would leave no room for the record being published (it used to hang the request path).
  assert.deepEqual(resolveSyncConfig({ redis: { url: "redis://x", queue_max: 0 } }).errors, [
    "sync.redis.queue_max must be an integer >= 1, got 0",
  ]);
  assert.deepEqual(
    resolveSyncConfig({ redis: { url: "redis://x", catch_up: "1000h" } }).errors,
    [
      'sync.redis.catch_up must be at most 2147483647 ms (about 24.8 days, the longest timer), got "1000h"',
    ],
  );
});
