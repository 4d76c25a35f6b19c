/**
 * The config keys beyond the single-router core: `router.strategy_options`,
 * `router.session_header`, the `sync` and `discovery` sections, and which changes need a restart.
 */

import assert from "node:assert/strict";
import { createStrategy, STRATEGY_NAMES } from "../strategies/mod.ts";
import { DISCOVERY_STATIC } from "../discovery/section.ts";
import { SYNC_OFF } from "../sync/section.ts";
import { configFromWorkers, ENV_OVERRIDES, parseConfig } from "./mod.ts";
import { restartKeys } from "./restart.ts";
import type { RouterConfig } from "./types.ts";
import { errorsOf, ONE_WORKER } from "./testing.ts";

const REGISTRY = { strategies: STRATEGY_NAMES, createStrategy };

Deno.test("router.strategy_options: a mapping of numbers, from YAML or the environment", () => {
  assert.deepEqual(parseConfig(ONE_WORKER).router.strategyOptions, {});
  const yaml = `router:\n  strategy: sglang-cache-aware\n  strategy_options:\n` +
    `    cache_threshold: 0.6\n    balance_abs_threshold: 16\n${ONE_WORKER}`;
  assert.deepEqual(parseConfig(yaml, {}, REGISTRY).router.strategyOptions, {
    cache_threshold: 0.6,
    balance_abs_threshold: 16,
  });
  const env = {
    ROUTER_STRATEGY: "sglang-cache-aware",
    ROUTER_STRATEGY_OPTIONS: "{cache_threshold: 0.7}",
  };
  assert.deepEqual(parseConfig(ONE_WORKER, env, REGISTRY).router.strategyOptions, {
    cache_threshold: 0.7,
  });
  assert.deepEqual(
    errorsOf(() => parseConfig(`router: {strategy_options: {a: x}}\n${ONE_WORKER}`)),
    [
      `router.strategy_options must be a mapping of option names to numbers, got {"a":"x"}`,
    ],
  );
  assert.deepEqual(errorsOf(() => parseConfig(`router: {strategy_options: [1]}\n${ONE_WORKER}`)), [
    `router.strategy_options must be a mapping of option names to numbers, got [1]`,
  ]);
  assert.deepEqual(
    errorsOf(() => parseConfig(ONE_WORKER, { ROUTER_STRATEGY_OPTIONS: "a: [" })),
    [`ROUTER_STRATEGY_OPTIONS must be a mapping of option names to numbers, got "a: ["`],
  );
});

Deno.test("router.strategy_options: the strategy is built with them; what it rejects is an error", () => {
  const unknown =
    `router:\n  strategy: sglang-cache-aware\n  strategy_options: {cache_treshold: 0.6}\n` +
    ONE_WORKER;
  const errors = errorsOf(() => parseConfig(unknown, {}, REGISTRY));
  assert.equal(errors.length, 1);
  assert.match(
    errors[0],
    /^router\.strategy_options rejected: strategy sglang-cache-aware has no option "cache_treshold"; valid: .*cache_threshold.*, got \{"cache_treshold":0\.6\}$/,
  );
  const range =
    `router:\n  strategy: sglang-cache-aware\n  strategy_options: {cache_threshold: 7}\n` +
    ONE_WORKER;
  assert.match(
    errorsOf(() => parseConfig(range, {}, REGISTRY))[0],
    /^router\.strategy_options rejected: strategy sglang-cache-aware option cache_threshold must be/,
  );
  // Reported together with the other errors, under the variable's name when it came from there.
  assert.deepEqual(
    errorsOf(() =>
      parseConfig(`server: {addr: nope}\n${ONE_WORKER}`, {
        ROUTER_STRATEGY: "sglang-cache-aware",
        ROUTER_STRATEGY_OPTIONS: "{x: 1}",
      }, REGISTRY)
    ).map((e) => e.split(" ").slice(0, 3).join(" ")),
    ["server.addr must be", "ROUTER_STRATEGY_OPTIONS rejected: strategy"],
  );
  // configFromWorkers checks them the same way.
  assert.match(
    errorsOf(() =>
      configFromWorkers(["http://h:1"], {
        router: { strategy: "dynamo-cost", strategyOptions: { nope: 1 } },
      }, REGISTRY)
    )[0],
    /^router\.strategyOptions rejected: strategy dynamo-cost has no option "nope"/,
  );
});

Deno.test("router.session_header: default x-session-id, lower-cased, empty turns it off", () => {
  const header = (yaml: string, env = {}) =>
    parseConfig(yaml + ONE_WORKER, env).router.sessionHeader;
  assert.equal(header(""), "x-session-id");
  assert.equal(header("router: {session_header: X-Conversation}\n"), "x-conversation");
  assert.equal(header(`router: {session_header: ""}\n`), "");
  assert.equal(header("", { ROUTER_SESSION_HEADER: "" }), "");
  assert.equal(header("", { ROUTER_ROUTER_SESSION_HEADER: "X-User" }), "x-user");
  assert.deepEqual(errorsOf(() => parseConfig(`router: {session_header: "a b"}\n${ONE_WORKER}`)), [
    `router.session_header must be an HTTP header name such as "x-session-id", or "" (off), got "a b"`,
  ]);
});

Deno.test("sync: off by default; redis url from YAML or ROUTER_SYNC_REDIS_URL; errors with paths", () => {
  assert.deepEqual(parseConfig(ONE_WORKER).sync, SYNC_OFF);
  assert.deepEqual(parseConfig(`sync:\n${ONE_WORKER}`).sync, SYNC_OFF);
  const on = parseConfig(
    `sync:\n  replica_id: r1\n  redis:\n    url: redis://redis:6379/0\n    catch_up: 5m\n` +
      ONE_WORKER,
  ).sync;
  assert.deepEqual(on, {
    replicaId: "r1",
    redis: {
      url: "redis://redis:6379/0",
      stream: "llm-cache-router:prefix",
      maxLen: 50_000,
      catchUpMs: 300_000,
      queueMax: 10_000,
    },
  });
  const env = parseConfig(ONE_WORKER, { ROUTER_SYNC_REDIS_URL: "redis://127.0.0.1:1" }).sync;
  assert.equal(env.redis?.url, "redis://127.0.0.1:1");
  assert.deepEqual(
    errorsOf(() =>
      parseConfig(`sync:\n  redis: {url: "http://x", max_len: 0}\n  other: 1\n${ONE_WORKER}`)
    ),
    [
      "unknown key sync.other",
      "sync.redis.url must be a redis:// or rediss:// URL",
      "sync.redis.max_len must be an integer >= 1, got 0",
    ],
  );
  const names = ENV_OVERRIDES.map((o) => o.name);
  assert.ok(names.includes("ROUTER_SYNC_REDIS_URL"));
  assert.ok(names.includes("ROUTER_SYNC_REPLICA_ID"));
  assert.ok(names.includes("ROUTER_STRATEGY_OPTIONS"));
  assert.ok(names.includes("ROUTER_SESSION_HEADER"));
});

Deno.test("discovery: static needs workers; dns and kubernetes need none and get a worker template", () => {
  assert.deepEqual(parseConfig(ONE_WORKER).discovery, {
    ...DISCOVERY_STATIC,
    worker: configFromWorkers(["http://h:1"]).discovery.worker,
  });
  const k8s = parseConfig(
    "discovery:\n  mode: kubernetes\n  kubernetes: {label_selector: app=vllm, port: 8000}\n" +
      "  worker: {kv_budget: 25000, timeout: 300s}\n",
  );
  assert.deepEqual(k8s.workers, []);
  assert.equal(k8s.discovery.mode, "kubernetes");
  assert.deepEqual(k8s.discovery.kubernetes, {
    namespace: null,
    labelSelector: "app=vllm",
    port: 8000,
    scheme: "http",
  });
  assert.equal(k8s.discovery.worker.kvBudget, 25_000);
  assert.equal(k8s.discovery.worker.timeoutMs, 300_000);
  assert.equal(k8s.discovery.worker.idleTimeoutMs, 30_000);
  const dns = "discovery:\n  mode: dns\n  dns: {name: vllm.svc, port: 8000}\n";
  assert.deepEqual(parseConfig(dns + "workers: []\n").workers, []);
  assert.deepEqual(parseConfig(dns + "workers:\n").workers, []);

  assert.deepEqual(errorsOf(() => parseConfig("discovery: {mode: static}\n")), [
    "workers is required",
  ]);
  assert.deepEqual(errorsOf(() => parseConfig(dns + ONE_WORKER)), [
    "workers must be empty or absent when discovery.mode is dns (workers come from discovery; " +
    `their settings go under discovery.worker), got [{"id":"a","url":"http://127.0.0.1:8001"}]`,
  ]);
  assert.deepEqual(
    errorsOf(() =>
      parseConfig(
        "discovery:\n  mode: kubernetes\n  kubernetes: {port: 0}\n" +
          "  worker: {id: x, timeout: -1s, max_inflight: -1}\n",
      )
    ),
    [
      `discovery.kubernetes.label_selector is required, such as "app=vllm", got undefined`,
      "discovery.kubernetes.port must be a port 1..65535, got 0",
      "unknown key discovery.worker.id",
      `discovery.worker.max_inflight must be an integer >= 0, got -1`,
      `discovery.worker.timeout must be a duration such as "150ms", "1.5s" or "1h30m", ` +
      `or a number of seconds, got "-1s"`,
    ],
  );
});

Deno.test("configFromWorkers: sync and discovery overrides in resolved form", () => {
  const base = configFromWorkers(["http://h:1"]);
  assert.deepEqual(base.sync, SYNC_OFF);
  assert.equal(base.discovery.mode, "static");
  const c = configFromWorkers([], {
    sync: { replicaId: "r2", redis: { url: "redis://127.0.0.1:6379", catchUpMs: 1500 } },
    discovery: {
      mode: "dns",
      intervalMs: 2500,
      dns: { name: "vllm.svc", type: "SRV" },
      worker: { kvBudget: 64, timeoutMs: 1500 },
    },
  });
  assert.deepEqual(c.workers, []);
  assert.equal(c.sync.replicaId, "r2");
  assert.equal(c.sync.redis?.catchUpMs, 1500);
  assert.equal(c.sync.redis?.stream, "llm-cache-router:prefix");
  assert.equal(c.discovery.intervalMs, 2500);
  assert.deepEqual(c.discovery.dns, { name: "vllm.svc", type: "SRV", port: null, scheme: "http" });
  assert.equal(c.discovery.worker.kvBudget, 64);
  assert.equal(c.discovery.worker.timeoutMs, 1500);
  assert.equal(c.discovery.worker.breakerThreshold, 5);
  assert.deepEqual(
    errorsOf(() =>
      configFromWorkers([], {
        discovery: { mode: "kubernetes", kubernetes: { labelSelector: "a=b", port: 80 } },
        sync: { redis: { url: "redis://h", maxLen: 0 } },
      })
    ),
    ["sync.redis.max_len must be an integer >= 1, got 0"],
  );
  assert.deepEqual(
    errorsOf(() => configFromWorkers([], { discovery: { worker: { maxInflight: -2 } } })),
    [
      "discovery.worker.maxInflight must be an integer >= 0, got -2",
      "workers must be a non-empty list, got []",
    ],
  );
});

Deno.test("restartKeys: listeners, sync and discovery changes need a restart", () => {
  const a: RouterConfig = configFromWorkers(["http://h:1"]);
  assert.deepEqual(restartKeys(a, a), []);
  const synced = configFromWorkers(["http://h:1"], { sync: { redis: { url: "redis://r:1" } } });
  assert.deepEqual(restartKeys(a, synced), ["sync.redis.url"]);
  const other = configFromWorkers(["http://h:1"], {
    sync: { replicaId: "x", redis: { url: "redis://r:1", stream: "s", catchUpMs: 1000 } },
    router: { chunkSize: 64 },
    server: { addr: ":9000" },
  });
  assert.deepEqual(restartKeys(synced, other), [
    "server.addr",
    "sync.replica_id",
    "sync.redis.stream",
    "sync.redis.catch_up",
    "router.chunk_size",
  ]);
  // Without sync a chunk size change applies at once.
  assert.deepEqual(
    restartKeys(a, configFromWorkers(["http://h:1"], { router: { chunkSize: 8 } })),
    [],
  );
  const dns = configFromWorkers([], {
    discovery: { mode: "dns", dns: { name: "a", port: 1 }, worker: { kvBudget: 5 } },
  });
  assert.deepEqual(restartKeys(a, dns), ["discovery.mode", "discovery.dns"]);
  const dns2 = configFromWorkers([], {
    discovery: { mode: "dns", dns: { name: "b", port: 1 }, intervalMs: 1000 },
  });
  // discovery.worker is applied by the entry point on reload; not listed.
  assert.deepEqual(restartKeys(dns, dns2), ["discovery.interval", "discovery.dns"]);
});

Deno.test("deploy/configmap.yaml holds a valid router config: kubernetes discovery, redis sync", async () => {
  const { parse } = await import("yaml");
  const path = new URL("../../deploy/configmap.yaml", import.meta.url).pathname;
  const manifest = parse(await Deno.readTextFile(path));
  const config = parseConfig(manifest.data["router.yaml"], {}, { ...REGISTRY, source: path });
  assert.equal(config.discovery.mode, "kubernetes");
  assert.deepEqual(config.workers, []);
  assert.equal(config.sync.redis?.url, "redis://llm-cache-router-redis:6379/0");
});

Deno.test("flow: off by default; the section from YAML or configFromWorkers; errors with paths", () => {
  assert.equal(parseConfig(ONE_WORKER).flow, null);
  const flow = parseConfig(`flow:\n  queue:\n    max_total: 10\n${ONE_WORKER}`).flow;
  assert.equal(flow?.queue.maxTotal, 10);
  assert.deepEqual(flow?.queue.classes.map((c) => [c.name, c.order]), [
    ["interactive", "adaptive"],
    ["batch", "adaptive"],
  ]);
  assert.deepEqual(
    configFromWorkers(["http://127.0.0.1:1"], { flow: { queue: { max_total: 10 } } }).flow,
    flow,
  );
  assert.deepEqual(errorsOf(() => parseConfig(`flow: {queue: {max_total: 0}}\n${ONE_WORKER}`)), [
    "flow.queue.max_total must be an integer 1..1000000, got 0",
  ]);
  assert.deepEqual(errorsOf(() => parseConfig(`flow: {tenant: {}}\n${ONE_WORKER}`)), [
    "unknown key flow.tenant, did you mean tenants?",
  ]);
});

Deno.test("config/router.yaml's commented flow: example, uncommented, is a valid config", () => {
  const text = Deno.readTextFileSync(new URL("../../config/router.yaml", import.meta.url));
  const lines = text.split("\n");
  const start = lines.indexOf("# flow:");
  assert.ok(start > 0, "router.yaml has a commented flow: example");
  const block: string[] = [];
  for (const line of lines.slice(start)) {
    if (!line.startsWith("#")) break;
    block.push(line.slice(2));
  }
  const flow = parseConfig(`${block.join("\n")}\n${ONE_WORKER}`).flow;
  assert.equal(flow?.queue.classes.length, 2);
  assert.equal(flow?.tenants.limits["key:0123456789abcdef"]?.weight, 2);
});

Deno.test("tracing.headers: names must be HTTP header names, values without line breaks", () => {
  const yaml = (h: string) => `tracing:\n  headers: ${h}\n${ONE_WORKER}`;
  assert.deepEqual(parseConfig(yaml(`{authorization: "Bearer k", x-team: a}`)).tracing.headers, {
    authorization: "Bearer k",
    "x-team": "a",
  });
  // A name fetch would refuse is the config's error, not a TypeError when the router starts.
  for (const bad of [`{"my header": x}`, `{"x:y": x}`, `{"": x}`, `{a: "x\\ny"}`]) {
    assert.deepEqual(
      errorsOf(() => parseConfig(yaml(bad))).map((e) => e.replace(/, got .*/, "")),
      ["tracing.headers must be a mapping of HTTP header names to values"],
      bad,
    );
  }
  // Resource attributes are any names.
  assert.deepEqual(
    parseConfig(`tracing:\n  resource_attributes: {"my attr": x}\n${ONE_WORKER}`).tracing
      .resourceAttributes,
    { "my attr": "x" },
  );
});
