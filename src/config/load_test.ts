import assert from "node:assert/strict";
import { configFromWorkers, loadConfig, parseConfig } from "./mod.ts";
import type { RouterConfig } from "./types.ts";
import { DISCOVERY_STATIC } from "../discovery/section.ts";
import { SYNC_OFF } from "../sync/section.ts";
import { errorsOf, ONE_WORKER } from "./testing.ts";

const STRATEGIES = ["roundrobin", "random", "leastloaded", "prefixaware", "costaware"] as const;

/** A `workers[]` entry's defaults (all but id and url): also `discovery.worker`'s. */
const WORKER_DEFAULTS = {
  kvBudget: 131_072,
  models: null,
  maxInflight: 0,
  timeoutMs: 0,
  connectTimeoutMs: 5_000,
  ttfbTimeoutMs: 300_000,
  idleTimeoutMs: 30_000,
  breakerThreshold: 5,
  breakerCooldownMs: 30_000,
  apiKey: null,
  metricsUrl: null,
  kvEvents: null,
  kvEventsReplay: null,
  kvEventsTopic: "",
};

/** The config for ONE_WORKER: every default, written out. */
const DEFAULTS: RouterConfig = {
  server: {
    addr: ":8080",
    readTimeoutMs: 30_000,
    shutdownTimeoutMs: 10_000,
    maxBodyBytes: 8 * 1024 * 1024,
    maxHeaderBytes: 16 * 1024,
    maxJsonDepth: 64,
    headerTimeoutMs: 10_000,
    idleTimeoutMs: 60_000,
    maxConnections: 4096,
    drainDelayMs: 5_000,
  },
  router: {
    strategy: "costaware",
    chunkSize: 32,
    minMatchChunks: 2,
    saturationInflight: 8,
    maxRetries: 2,
    seed: null,
    strategyOptions: {},
    sessionHeader: "x-session-id",
    upstreamClient: "native",
    retryTimeouts: false,
    indexMaxBytes: 256 * 1024 * 1024,
    index: "approximate",
    blockSize: 16,
    predictTtlMs: 2_000,
    modelAliases: {},
    passthroughPaths: [],
  },
  health: {
    intervalMs: 5_000,
    path: "/health",
    timeoutMs: 2_000,
    scrapeMetrics: false,
    scrapeIntervalMs: 1_000,
  },
  workers: [{ id: "a", url: "http://127.0.0.1:8001", ...WORKER_DEFAULTS }],
  logging: { level: "info", format: "json" },
  metrics: { enabled: true, addr: null },
  auth: { apiKeys: [], apiKeysFile: null, protectMetrics: false, forwardClientAuth: false },
  sync: SYNC_OFF,
  discovery: { ...DISCOVERY_STATIC, worker: WORKER_DEFAULTS },
  tokenizers: [],
  tracing: {
    endpoint: "",
    headers: {},
    serviceName: "llm-cache-router",
    resourceAttributes: {},
    sampleRatio: 1,
    maxBatchSize: 512,
    maxQueueSize: 2048,
    flushIntervalMs: 5_000,
    exportTimeoutMs: 10_000,
    maxRetries: 5,
  },
  flow: null,
};

Deno.test("parseConfig fills every default", () => {
  assert.deepEqual(parseConfig(ONE_WORKER), DEFAULTS);
});

Deno.test("config/router.yaml parses and spells out exactly the defaults", async () => {
  const path = new URL("../../config/router.yaml", import.meta.url).pathname;
  const config = await loadConfig(path, {}, { strategies: STRATEGIES });
  const urls = ["http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003"];
  assert.deepEqual(config, configFromWorkers(urls));
  assert.deepEqual(config.workers.map((w) => w.id), ["w1", "w2", "w3"]);
  assert.deepEqual({ ...config, workers: [] }, { ...DEFAULTS, workers: [] });
});

Deno.test("parseConfig accepts valid values in every form", () => {
  type Pick = (c: RouterConfig) => unknown;
  const w0: Pick = (c) => c.workers[0];
  const cases: [string, Pick, unknown][] = [
    ["server: {addr: '127.0.0.1:0'}", (c) => c.server.addr, "127.0.0.1:0"],
    ["server: {addr: '[::1]:9000'}", (c) => c.server.addr, "[::1]:9000"],
    ["server: {read_timeout: 1.5}", (c) => c.server.readTimeoutMs, 1500],
    ["server: {read_timeout: 1h30m}", (c) => c.server.readTimeoutMs, 5_400_000],
    ["server: {shutdown_timeout: 0s}", (c) => c.server.shutdownTimeoutMs, 0],
    ["server: {max_body_bytes: 1024}", (c) => c.server.maxBodyBytes, 1024],
    ["server: {max_body_bytes: 512KiB}", (c) => c.server.maxBodyBytes, 524_288],
    ["server: {max_body_bytes: 1MB}", (c) => c.server.maxBodyBytes, 1_000_000],
    ["router: {strategy: roundrobin}", (c) => c.router.strategy, "roundrobin"],
    ["router: {chunk_size: 1}", (c) => c.router.chunkSize, 1],
    ["router: {min_match_chunks: 0}", (c) => c.router.minMatchChunks, 0],
    ["router: {saturation_inflight: 0}", (c) => c.router.saturationInflight, 0],
    ["router: {max_retries: 0}", (c) => c.router.maxRetries, 0],
    ["router: {seed: 42}", (c) => c.router.seed, 42],
    ["router: {seed: -7}", (c) => c.router.seed, -7],
    ["router: {seed: 0x10}", (c) => c.router.seed, 16],
    ["health: {interval: 0s}", (c) => c.health.intervalMs, 0],
    ["health: {interval: 0}", (c) => c.health.intervalMs, 0],
    ["health: {path: /v1/models, timeout: 150ms}", (c) => c.health, {
      intervalMs: 5000,
      path: "/v1/models",
      timeoutMs: 150,
      scrapeMetrics: false,
      scrapeIntervalMs: 1000,
    }],
    ["logging: {level: debug, format: text}", (c) => c.logging, { level: "debug", format: "text" }],
    ["metrics: {enabled: false, addr: ':9090'}", (c) => c.metrics, {
      enabled: false,
      addr: ":9090",
    }],
    ["metrics: {addr: '127.0.0.1:0'}", (c) => c.metrics.addr, "127.0.0.1:0"],
    ["server: {max_header_bytes: 32KiB}", (c) => c.server.maxHeaderBytes, 32_768],
    ["server: {max_json_depth: 8}", (c) => c.server.maxJsonDepth, 8],
    ["auth: {api_keys: [k1, k2, k1]}", (c) => c.auth.apiKeys, ["k1", "k2"]],
    ["auth: {protect_metrics: true, forward_client_auth: true}", (c) => c.auth, {
      apiKeys: [],
      apiKeysFile: null,
      protectMetrics: true,
      forwardClientAuth: true,
    }],
    // An empty section (every key commented out) means all defaults.
    ["metrics:", (c) => c.metrics, DEFAULTS.metrics],
  ];
  for (const [yaml, pick, want] of cases) {
    const config = parseConfig(`${yaml}\n${ONE_WORKER}`, {}, { strategies: STRATEGIES });
    assert.deepEqual(pick(config), want, yaml);
  }

  const workerCases: [string, unknown][] = [
    ["url: http://127.0.0.1:8001/", "http://127.0.0.1:8001"],
    ["url: https://GPU-1.example.com", "https://gpu-1.example.com"],
    ["url: http://10.0.0.1:80/engine-a//", "http://10.0.0.1/engine-a"],
    ["url: http://h:1\n    kv_budget: 4096\n    max_inflight: 16", "http://h:1"],
  ];
  for (const [fields, url] of workerCases) {
    const config = parseConfig(`workers:\n  - id: A.b_c-1\n    ${fields}\n`);
    assert.equal(config.workers[0].url, url, fields);
    assert.equal(config.workers[0].id, "A.b_c-1");
  }
  const full = parseConfig(
    "workers:\n  - {id: x, url: 'http://h:1', kv_budget: 4096, max_inflight: 16, timeout: 2m," +
      " breaker_threshold: 1, breaker_cooldown: 0s, api_key: sk-123, connect_timeout: 250ms," +
      " ttfb_timeout: 10s, idle_timeout: 0s}\n",
  );
  assert.deepEqual(w0(full), {
    id: "x",
    url: "http://h:1",
    kvBudget: 4096,
    models: null,
    maxInflight: 16,
    timeoutMs: 120_000,
    connectTimeoutMs: 250,
    ttfbTimeoutMs: 10_000,
    idleTimeoutMs: 0,
    breakerThreshold: 1,
    breakerCooldownMs: 0,
    apiKey: "sk-123",
    metricsUrl: null,
    kvEvents: null,
    kvEventsReplay: null,
    kvEventsTopic: "",
  });
});

Deno.test("parseConfig reports each invalid value with its path and value", () => {
  const msWant = `duration such as "150ms", "1.5s" or "1h30m", or a number of seconds`;
  const cases: [string, string][] = [
    [
      "server: {addr: '8080'}",
      `server.addr must be "host:port" such as ":8080" or "127.0.0.1:8080", got "8080"`,
    ],
    [
      "server: {addr: ':99999'}",
      `server.addr must be "host:port" such as ":8080" or "127.0.0.1:8080", got ":99999"`,
    ],
    [
      "server: {addr: }",
      `server.addr must be "host:port" such as ":8080" or "127.0.0.1:8080", got null`,
    ],
    ["server: {read_timeout: 0s}", `server.read_timeout must be a positive ${msWant}, got "0s"`],
    ["server: {read_timeout: 30}", ""],
    ["server: {read_timeout: '30'}", `server.read_timeout must be a positive ${msWant}, got "30"`],
    ["server: {shutdown_timeout: -1}", `server.shutdown_timeout must be a ${msWant}, got -1`],
    ["server: {shutdown_timeout: 10 s}", `server.shutdown_timeout must be a ${msWant}, got "10 s"`],
    [
      "server: {max_body_bytes: 0}",
      `server.max_body_bytes must be a size of at least 1 byte(s) such as 1048576, "512KiB" or "8MiB", got 0`,
    ],
    [
      "server: {max_body_bytes: 8mb}",
      `server.max_body_bytes must be a size of at least 1 byte(s) such as 1048576, "512KiB" or "8MiB", got "8mb"`,
    ],
    [
      "router: {strategy: foo}",
      `router.strategy must be one of roundrobin, random, leastloaded, prefixaware, costaware, got "foo"`,
    ],
    [
      "router: {strategy: 3}",
      `router.strategy must be one of roundrobin, random, leastloaded, prefixaware, costaware, got 3`,
    ],
    ["router: {chunk_size: 0}", "router.chunk_size must be an integer >= 1, got 0"],
    ["router: {chunk_size: 1.5}", "router.chunk_size must be an integer >= 1, got 1.5"],
    ["router: {chunk_size: '32'}", `router.chunk_size must be an integer >= 1, got "32"`],
    ["router: {min_match_chunks: -1}", "router.min_match_chunks must be an integer >= 0, got -1"],
    [
      "router: {saturation_inflight: true}",
      "router.saturation_inflight must be an integer >= 0, got true",
    ],
    [
      "router: {max_retries: 1e20}",
      "router.max_retries must be an integer >= 0, got 100000000000000000000",
    ],
    ["router: {seed: 1.5}", "router.seed must be an integer or null, got 1.5"],
    ["health: {interval: fast}", `health.interval must be a ${msWant}, got "fast"`],
    [
      "health: {interval: 1000h}",
      `health.interval must be at most 2147483647 ms (about 24.8 days, the longest timer), got "1000h"`,
    ],
    [
      "server: {shutdown_timeout: 2147484}",
      "server.shutdown_timeout must be at most 2147483647 ms (about 24.8 days, the longest timer), got 2147484",
    ],
    ["health: {path: health}", `health.path must be a path starting with "/", got "health"`],
    ["health: {path: '/a b'}", `health.path must be a path starting with "/", got "/a b"`],
    ["health: {timeout: 0}", `health.timeout must be a positive ${msWant}, got 0`],
    [
      "logging: {level: verbose}",
      `logging.level must be one of debug, info, warn, error, got "verbose"`,
    ],
    [
      "logging: {format: JSON}",
      `logging.format must be one of text, json, got "JSON", did you mean json?`,
    ],
    ["metrics: {enabled: yes}", `metrics.enabled must be true or false, got "yes"`],
    [
      "metrics: {addr: 9090}",
      `metrics.addr must be "host:port" such as ":8080" or "127.0.0.1:8080" or null, got 9090`,
    ],
    [
      "metrics: {addr: ':8080'}",
      `metrics.addr must use a port other than server.addr's, got ":8080"`,
    ],
    [
      "server: {max_json_depth: 0}",
      "server.max_json_depth must be an integer >= 1, got 0",
    ],
    [
      "server: {max_header_bytes: lots}",
      `server.max_header_bytes must be a size of at least 1 byte(s) such as 1048576, "512KiB" or "8MiB", got "lots"`,
    ],
    [
      "auth: {api_keys: ['has space']}",
      "auth.api_keys must be a list of keys of printable ASCII characters without spaces",
    ],
    [
      "auth: {api_keys: secret}",
      "auth.api_keys must be a list of keys of printable ASCII characters without spaces",
    ],
    ["auth: {api_keys_file: ''}", `auth.api_keys_file must be a file path or null, got ""`],
    ["auth: {protect_metrics: 1}", "auth.protect_metrics must be true or false, got 1"],
    ["server: [1]", "server must be a mapping, got [1]"],
    ["router: prefixaware", `router must be a mapping, got "prefixaware"`],
  ];
  for (const [yaml, want] of cases) {
    const text = `${yaml}\n${ONE_WORKER}`;
    const run = () => parseConfig(text, {}, { strategies: STRATEGIES });
    if (want === "") run(); // the valid neighbour of an invalid case
    else assert.deepEqual(errorsOf(run), [want], yaml);
  }
});

Deno.test("parseConfig reports each invalid worker with its index", () => {
  const cases: [string, string[]][] = [
    ["", ["workers is required"]],
    ["workers: []", ["workers must be a non-empty list, got []"]],
    ["workers: {id: a}", [`workers must be a non-empty list, got {"id":"a"}`]],
    ["workers: [http://h:1]", [`workers[0] must be a mapping, got "http://h:1"`]],
    ["workers: [{url: 'http://h:1'}]", ["workers[0].id is required"]],
    ["workers: [{id: a}]", ["workers[0].url is required"]],
    ["workers: [{id: 'a b', url: 'http://h:1'}]", [
      `workers[0].id must match [A-Za-z0-9._-]+, got "a b"`,
    ]],
    ["workers: [{id: '', url: 'http://h:1'}]", [
      `workers[0].id must match [A-Za-z0-9._-]+, got ""`,
    ]],
    ["workers: [{id: 7, url: 'http://h:1'}]", ["workers[0].id must match [A-Za-z0-9._-]+, got 7"]],
    [
      "workers: [{id: a, url: 'http://h:1'}, {id: b, url: 'http://h:2'}, {id: c, url: 'ftp://x'}]",
      [`workers[2].url must be an http(s) URL, got "ftp://x"`],
    ],
    ["workers: [{id: a, url: 'h:1'}]", [`workers[0].url must be an http(s) URL, got "h:1"`]],
    ["workers: [{id: a, url: '127.0.0.1:8001'}]", [
      `workers[0].url must be an http(s) URL, got "127.0.0.1:8001"`,
    ]],
    ["workers: [{id: a, url: 'http://'}]", [
      `workers[0].url must be an http(s) URL, got "http://"`,
    ]],
    ["workers: [{id: a, url: 'http://h:1/?x=1'}]", [
      `workers[0].url must be an http(s) URL without query or fragment, got "http://h:1/?x=1"`,
    ]],
    ["workers: [{id: a, url: 'http://h:1/v1'}]", [
      `workers[0].url must be the server's base URL, without /v1, got "http://h:1/v1"`,
    ]],
    ["workers: [{id: a, url: 'http://u:secret@h:1'}]", [
      "workers[0].url must not embed credentials (use api_key)",
    ]],
    ["workers: [{id: a, url: 'http://h:1', api_key: ''}]", [
      "workers[0].api_key must be a non-empty string or null",
    ]],
    ["workers: [{id: a, url: 'http://h:1', api_key: 12345}]", [
      "workers[0].api_key must be a non-empty string or null",
    ]],
    ["workers: [{id: a, url: 'http://h:1', kv_budget: -1}]", [
      "workers[0].kv_budget must be an integer >= 0, got -1",
    ]],
    ["workers: [{id: a, url: 'http://h:1', max_inflight: 0.5}]", [
      "workers[0].max_inflight must be an integer >= 0, got 0.5",
    ]],
    ["workers: [{id: a, url: 'http://h:1', timeout: -1s}]", [
      `workers[0].timeout must be a duration such as "150ms", "1.5s" or "1h30m", or a number of seconds, got "-1s"`,
    ]],
    ["workers: [{id: a, url: 'http://h:1', models: []}]", [
      "workers[0].models must be a non-empty list of model names, or null, got []",
    ]],
    ["workers: [{id: a, url: 'http://h:1', breaker_threshold: 0}]", [
      "workers[0].breaker_threshold must be an integer >= 1, got 0",
    ]],
    ["workers: [{id: a, url: 'http://h:1', breaker_cooldown: 1d}]", [
      `workers[0].breaker_cooldown must be a duration such as "150ms", "1.5s" or "1h30m", or a number of seconds, got "1d"`,
    ]],
    [
      "workers: [{id: a, url: 'http://h:1'}, {id: b, url: 'http://h:2'}, {id: a, url: 'http://h:3'}, {id: a, url: 'http://h:4'}]",
      [
        `workers[2].id must be unique (also workers[0].id), got "a"`,
        `workers[3].id must be unique (also workers[0].id), got "a"`,
      ],
    ],
  ];
  for (const [yaml, want] of cases) {
    assert.deepEqual(errorsOf(() => parseConfig(yaml)), want, yaml);
  }
});

Deno.test("secrets never appear in error messages", () => {
  const err = errorsOf(() =>
    parseConfig("workers: [{id: a, url: 'http://u:hunter2@h:1', api_key: 987654}]")
  );
  assert.equal(err.length, 2);
  for (const line of err) {
    assert.ok(!line.includes("hunter2") && !line.includes("987654"), line);
  }
  const keys = errorsOf(() => parseConfig(`auth: {api_keys: [ok, 'bad secret']}\n${ONE_WORKER}`));
  assert.equal(keys.length, 1);
  assert.ok(!keys[0].includes("secret"), keys[0]);
});

Deno.test("worker timeouts: connect, first byte and idle, 0 = off, negative rejected", () => {
  const w = (fields: string) =>
    parseConfig(`workers:\n  - {id: a, url: 'http://h:1', ${fields}}\n`);
  assert.equal(w("connect_timeout: 0").workers[0].connectTimeoutMs, 0);
  assert.equal(w("ttfb_timeout: 1.5").workers[0].ttfbTimeoutMs, 1500);
  assert.equal(w("idle_timeout: 2m").workers[0].idleTimeoutMs, 120_000);
  const msWant = `duration such as "150ms", "1.5s" or "1h30m", or a number of seconds`;
  assert.deepEqual(errorsOf(() => w("connect_timeout: -1, idle_timeout: soon")), [
    `workers[0].connect_timeout must be a ${msWant}, got -1`,
    `workers[0].idle_timeout must be a ${msWant}, got "soon"`,
  ]);
  const config = configFromWorkers(["http://h:1"], {
    worker: { connectTimeoutMs: 100, ttfbTimeoutMs: 200, idleTimeoutMs: 300 },
  });
  assert.deepEqual(
    [
      config.workers[0].connectTimeoutMs,
      config.workers[0].ttfbTimeoutMs,
      config.workers[0].idleTimeoutMs,
    ],
    [100, 200, 300],
  );
});

Deno.test("configFromWorkers builds the same config as YAML, with resolved-form overrides", () => {
  assert.deepEqual(configFromWorkers(["http://127.0.0.1:8001/"]), {
    ...DEFAULTS,
    workers: [{ ...DEFAULTS.workers[0], id: "w1" }],
  });
  const config = configFromWorkers(
    ["http://h:1", { url: "http://h:2", id: "big", kvBudget: 9000 }],
    {
      router: { strategy: "roundrobin", chunkSize: 16, seed: 7 },
      health: { intervalMs: 0 },
      server: { readTimeoutMs: 1500, maxBodyBytes: 1024 },
      worker: { kvBudget: 100, timeoutMs: 250 },
    },
    { strategies: STRATEGIES },
  );
  assert.deepEqual(config.router, {
    ...DEFAULTS.router,
    strategy: "roundrobin",
    chunkSize: 16,
    seed: 7,
  });
  assert.equal(config.health.intervalMs, 0);
  assert.equal(config.server.readTimeoutMs, 1500);
  assert.equal(config.server.maxBodyBytes, 1024);
  assert.deepEqual(
    config.workers.map((w) => [w.id, w.url, w.kvBudget, w.timeoutMs]),
    [["w1", "http://h:1", 100, 250], ["big", "http://h:2", 9000, 250]],
  );
});

Deno.test("configFromWorkers validates like YAML and names the fields given", () => {
  const cases: [() => unknown, string[]][] = [
    [() => configFromWorkers([]), ["workers must be a non-empty list, got []"]],
    [() => configFromWorkers(["ftp://x"]), [
      `workers[0].url must be an http(s) URL, got "ftp://x"`,
    ]],
    [() => configFromWorkers(["http://h:1", "http://h:2"], {}, {}), []],
    [
      () =>
        configFromWorkers(["http://h:1"], { router: { chunkSize: 0 }, health: { timeoutMs: -5 } }),
      [
        "router.chunkSize must be an integer >= 1, got 0",
        `health.timeoutMs must be a positive duration such as "150ms", "1.5s" or "1h30m", or a number of seconds, got -5`,
      ],
    ],
    [
      () =>
        configFromWorkers(["http://h:1"], { router: { strategy: "nope" } }, {
          strategies: STRATEGIES,
        }),
      [`router.strategy must be one of roundrobin, random, leastloaded, prefixaware, costaware, got "nope"`],
    ],
    [
      () => configFromWorkers([{ url: "http://h:1", id: "x" }, { url: "http://h:2", id: "x" }]),
      [`workers[1].id must be unique (also workers[0].id), got "x"`],
    ],
    [
      () => configFromWorkers(["http://h:1"], { worker: { maxInflight: -1 } }),
      ["workers[0].maxInflight must be an integer >= 0, got -1"],
    ],
    [
      () => configFromWorkers(["http://h:1"], { router: { chunk_size: 8 } as never }),
      ["unknown key router.chunk_size, did you mean chunkSize?"],
    ],
  ];
  for (const [run, want] of cases) {
    if (want.length === 0) run();
    else assert.deepEqual(errorsOf(run), want);
  }
});
