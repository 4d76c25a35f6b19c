import assert from "node:assert/strict";
import { ENV_OVERRIDES, parseConfig } from "./mod.ts";
import type { RouterConfig } from "./types.ts";
import { errorsOf, ONE_WORKER } from "./testing.ts";

const STRATEGIES = ["roundrobin", "random", "leastloaded", "prefixaware", "costaware"] as const;

Deno.test("environment overrides apply after YAML, read as YAML scalars", () => {
  type Pick = (c: RouterConfig) => unknown;
  const yaml = `router: {strategy: random, chunk_size: 16}\n${ONE_WORKER}`;
  const cases: [Record<string, string>, Pick, unknown][] = [
    [{}, (c) => c.router.strategy, "random"],
    [{ ROUTER_STRATEGY: "roundrobin" }, (c) => c.router.strategy, "roundrobin"],
    [{ ROUTER_ROUTER_STRATEGY: "leastloaded" }, (c) => c.router.strategy, "leastloaded"],
    [
      { ROUTER_STRATEGY: "random", ROUTER_ROUTER_STRATEGY: "random" },
      (c) => c.router.strategy,
      "random",
    ],
    [{ ROUTER_ROUTER_CHUNK_SIZE: "64" }, (c) => c.router.chunkSize, 64],
    [{ ROUTER_CHUNK_SIZE: "64" }, (c) => c.router.chunkSize, 64],
    [{ ROUTER_SEED: "123" }, (c) => c.router.seed, 123],
    [{ ROUTER_SERVER_ADDR: ":9000" }, (c) => c.server.addr, ":9000"],
    [{ ROUTER_SERVER_ADDR: "[::1]:9000" }, (c) => c.server.addr, "[::1]:9000"],
    [{ ROUTER_SERVER_MAX_BODY_BYTES: "1MiB" }, (c) => c.server.maxBodyBytes, 1_048_576],
    [{ ROUTER_HEALTH_INTERVAL: "0s" }, (c) => c.health.intervalMs, 0],
    [{ ROUTER_HEALTH_INTERVAL: "2" }, (c) => c.health.intervalMs, 2000],
    [{ ROUTER_HEALTH_PATH: "/v1/models" }, (c) => c.health.path, "/v1/models"],
    [{ ROUTER_LOGGING_LEVEL: "debug" }, (c) => c.logging.level, "debug"],
    [{ ROUTER_LOGGING_FORMAT: '"text"' }, (c) => c.logging.format, "text"],
    [{ ROUTER_METRICS_ENABLED: "false" }, (c) => c.metrics.enabled, false],
    [{ ROUTER_METRICS_ENABLED: "true" }, (c) => c.metrics.enabled, true],
    [{ ROUTER_METRICS_ADDR: "127.0.0.1:9090" }, (c) => c.metrics.addr, "127.0.0.1:9090"],
    [{ ROUTER_METRICS_ADDR: "null" }, (c) => c.metrics.addr, null],
    // Unknown ROUTER_* variables and per-worker keys are ignored.
    [{ ROUTER_CONFIG: "x.yaml", ROUTER_WORKERS_URL: "x", ROUTER_FOO: "1" }, (c) => c, undefined],
    [{ ROUTER_STRATEGY: undefined as unknown as string }, (c) => c.router.strategy, "random"],
  ];
  for (const [env, pick, want] of cases) {
    const config = parseConfig(yaml, env, { strategies: STRATEGIES });
    if (want === undefined) {
      assert.deepEqual(config, parseConfig(yaml), JSON.stringify(env));
    } else {
      assert.deepEqual(pick(config), want, JSON.stringify(env));
    }
  }
  // Sections absent from the YAML are created.
  const bare = parseConfig(ONE_WORKER, { ROUTER_LOGGING_LEVEL: "warn" });
  assert.equal(bare.logging.level, "warn");
  assert.equal(bare.logging.format, "json");
});

Deno.test("invalid environment values are reported under the variable's name", () => {
  const cases: [Record<string, string>, string[]][] = [
    [{ ROUTER_ROUTER_CHUNK_SIZE: "abc" }, [
      `ROUTER_ROUTER_CHUNK_SIZE must be an integer >= 1, got "abc"`,
    ]],
    [{ ROUTER_CHUNK_SIZE: "0" }, ["ROUTER_CHUNK_SIZE must be an integer >= 1, got 0"]],
    [{ ROUTER_STRATEGY: "foo" }, [
      `ROUTER_STRATEGY must be one of roundrobin, random, leastloaded, prefixaware, costaware, got "foo"`,
    ]],
    [{ ROUTER_STRATEGY: "" }, [
      `ROUTER_STRATEGY must be one of roundrobin, random, leastloaded, prefixaware, costaware, got ""`,
    ]],
    [{ ROUTER_METRICS_ENABLED: "yes" }, [
      `ROUTER_METRICS_ENABLED must be true or false, got "yes"`,
    ]],
    [{ ROUTER_HEALTH_INTERVAL: "soon" }, [
      `ROUTER_HEALTH_INTERVAL must be a duration such as "150ms", "1.5s" or "1h30m", or a number of seconds, got "soon"`,
    ]],
    [{ ROUTER_SERVER_ADDR: "a: b" }, [
      `ROUTER_SERVER_ADDR must be "host:port" such as ":8080" or "127.0.0.1:8080", got "a: b"`,
    ]],
    [{ ROUTER_STRATEGY: "random", ROUTER_ROUTER_STRATEGY: "roundrobin" }, [
      `ROUTER_ROUTER_STRATEGY and ROUTER_STRATEGY must not disagree, got "roundrobin" and "random"`,
    ]],
    [{ ROUTER_LOGGING_LEVEL: "loud", ROUTER_CHUNK_SIZE: "-1" }, [
      "ROUTER_CHUNK_SIZE must be an integer >= 1, got -1",
      `ROUTER_LOGGING_LEVEL must be one of debug, info, warn, error, got "loud"`,
    ]],
  ];
  for (const [env, want] of cases) {
    const run = () => parseConfig(ONE_WORKER, env, { strategies: STRATEGIES });
    assert.deepEqual(errorsOf(run), want, JSON.stringify(env));
  }
});

Deno.test("ENV_OVERRIDES lists long forms for every scalar key and short forms for router keys", () => {
  const names = ENV_OVERRIDES.map((o) => o.name);
  for (
    const name of [
      "ROUTER_SERVER_ADDR",
      "ROUTER_SERVER_MAX_BODY_BYTES",
      "ROUTER_ROUTER_STRATEGY",
      "ROUTER_STRATEGY",
      "ROUTER_CHUNK_SIZE",
      "ROUTER_HEALTH_INTERVAL",
      "ROUTER_LOGGING_LEVEL",
      "ROUTER_METRICS_ENABLED",
      "ROUTER_METRICS_ADDR",
    ]
  ) assert.ok(names.includes(name), name);
  assert.equal(new Set(names).size, names.length);
  assert.ok(!names.some((n) => n.includes("WORKER")));
  assert.deepEqual(ENV_OVERRIDES.find((o) => o.name === "ROUTER_STRATEGY"), {
    name: "ROUTER_STRATEGY",
    path: "router.strategy",
  });
});

Deno.test("a ROUTER_* variable that almost spells an override is an error naming it", () => {
  const cases: [Record<string, string>, string[]][] = [
    [{ ROUTER_HEALTH_INTERVALL: "1s" }, [
      "unknown variable ROUTER_HEALTH_INTERVALL, did you mean ROUTER_HEALTH_INTERVAL?",
    ]],
    [{ ROUTER_STRATEGY_OPTION: "{}" }, [
      "unknown variable ROUTER_STRATEGY_OPTION, did you mean ROUTER_STRATEGY_OPTIONS?",
    ]],
    [{ ROUTER_SEDE: "1" }, ["unknown variable ROUTER_SEDE, did you mean ROUTER_SEED?"]],
    [{ ROUTER_LOGING_LEVEL: "debug" }, [
      "unknown variable ROUTER_LOGING_LEVEL, did you mean ROUTER_LOGGING_LEVEL?",
    ]],
    [{ ROUTER_AUTH_API_KEY: "k" }, [
      "unknown variable ROUTER_AUTH_API_KEY, did you mean ROUTER_AUTH_API_KEYS?",
    ]],
    [{ ROUTER_SYNC_REDIS_URI: "redis://r" }, [
      "unknown variable ROUTER_SYNC_REDIS_URI, did you mean ROUTER_SYNC_REDIS_URL?",
    ]],
    // Case and underscores do not hide a typo.
    [{ router_strategy: "random" }, [
      "unknown variable router_strategy, did you mean ROUTER_STRATEGY?",
    ]],
    [{ ROUTER_SERVERADDR: ":1" }, [
      "unknown variable ROUTER_SERVERADDR, did you mean ROUTER_SERVER_ADDR?",
    ]],
  ];
  for (const [env, want] of cases) {
    assert.deepEqual(errorsOf(() => parseConfig(ONE_WORKER, env)), want, JSON.stringify(env));
  }
  // Only suggested: the value is not applied to the variable it resembles.
  const both = { ROUTER_HEALTH_INTERVALL: "1s", ROUTER_LOGGING_LEVEL: "loud" };
  assert.deepEqual(errorsOf(() => parseConfig(ONE_WORKER, both)), [
    "unknown variable ROUTER_HEALTH_INTERVALL, did you mean ROUTER_HEALTH_INTERVAL?",
    `ROUTER_LOGGING_LEVEL must be one of debug, info, warn, error, got "loud"`,
  ]);
});

Deno.test("other ROUTER_* variables stay ignored: far from any override, the entry point's own, Kubernetes'", () => {
  const ignored = {
    ROUTER_CONFIG: "x.yaml",
    ROUTER_FOO: "1",
    ROUTER_WORKERS_URL: "x",
    ROUTER_PORT: "tcp://10.0.0.1:80",
    ROUTER_PORT_80_TCP: "tcp://10.0.0.1:80",
    ROUTER_PORT_80_TCP_ADDR: "10.0.0.1",
    ROUTER_PORT_80_TCP_PORT: "80",
    ROUTER_PORT_80_TCP_PROTO: "tcp",
    ROUTER_SERVICE_HOST: "10.0.0.1",
    ROUTER_SERVICE_PORT: "80",
    ROUTER_SERVICE_PORT_HTTP: "80",
    ROUTER_IMAGE: "x",
    ROUTER_VERSION: "1",
    ROUTER_HOST: "h",
    ROUTER_NAME: "n",
  };
  assert.deepEqual(parseConfig(ONE_WORKER, ignored), parseConfig(ONE_WORKER));
  // The entry point declares its own: a near miss of an override that it reads itself.
  assert.deepEqual(errorsOf(() => parseConfig(ONE_WORKER, { ROUTER_STRATEGYS: "x" })), [
    "unknown variable ROUTER_STRATEGYS, did you mean ROUTER_STRATEGY?",
  ]);
  const own = parseConfig(ONE_WORKER, { ROUTER_STRATEGYS: "x" }, { ownEnv: ["ROUTER_STRATEGYS"] });
  assert.deepEqual(own, parseConfig(ONE_WORKER));
  // Unset variables (undefined values) are not looked at.
  assert.deepEqual(
    parseConfig(ONE_WORKER, { ROUTER_HEALTH_INTERVALL: undefined as unknown as string }),
    parseConfig(ONE_WORKER),
  );
});
