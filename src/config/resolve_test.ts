import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "./mod.ts";
import { errorsOf, ONE_WORKER } from "./testing.ts";

const STRATEGIES = ["roundrobin", "random", "leastloaded", "prefixaware", "costaware"] as const;

Deno.test("parseConfig reports unknown keys at every level, with the closest known key", () => {
  const cases: [string, string][] = [
    ["stratgy: x", "unknown key stratgy"],
    ["sever: {addr: ':1'}", "unknown key sever, did you mean server?"],
    ["server: {adr: ':1'}", "unknown key server.adr, did you mean addr?"],
    ["router: {stratgy: foo}", "unknown key router.stratgy, did you mean strategy?"],
    ["router: {chunkSize: 16}", "unknown key router.chunkSize, did you mean chunk_size?"],
    [
      "router: {sesion-header: x}",
      "unknown key router.sesion-header, did you mean session_header?",
    ],
    ["health: {enabled: false}", "unknown key health.enabled"],
    ["health: {intervall: 1s}", "unknown key health.intervall, did you mean interval?"],
    ["logging: {lvl: info}", "unknown key logging.lvl"],
    ["metrics: {port: 9090}", "unknown key metrics.port"],
    ["auth: {api_key: [k]}", "unknown key auth.api_key, did you mean api_keys?"],
    ["sync: {replicaid: x}", "unknown key sync.replicaid, did you mean replica_id?"],
    ["sync: {redis: {max_lne: 1}}", "unknown key sync.redis.max_lne, did you mean max_len?"],
    ["discovery: {mdoe: static}", "unknown key discovery.mdoe, did you mean mode?"],
    [
      "discovery: {worker: {timout: 1s}}",
      "unknown key discovery.worker.timout, did you mean timeout?",
    ],
  ];
  for (const [yaml, want] of cases) {
    assert.deepEqual(errorsOf(() => parseConfig(`${yaml}\n${ONE_WORKER}`)), [want], yaml);
  }
  assert.deepEqual(
    errorsOf(() => parseConfig("workers: [{id: a, url: 'http://h:1', kv_bugdet: 10}]")),
    ["unknown key workers[0].kv_bugdet, did you mean kv_budget?"],
  );
  // Only suggested, never applied: the typo's value is not used for the key it resembles.
  assert.deepEqual(
    errorsOf(() => parseConfig(`router: {stratgy: roundrobin}\n${ONE_WORKER}`)).length,
    1,
  );
});

Deno.test("parseConfig reports all problems together, in a fixed order", () => {
  const yaml = `
extra: 1
server:
  addr: nope
router:
  stratgy: prefixaware
  chunk_size: 0
workers:
  - id: a
    url: ftp://x
  - id: a
    url: http://h:2
    weight: 3
logging:
  level: loud
`;
  let err: unknown;
  try {
    parseConfig(yaml, {}, { strategies: STRATEGIES, source: "test.yaml" });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError);
  assert.deepEqual(err.errors, [
    "unknown key extra",
    `server.addr must be "host:port" such as ":8080" or "127.0.0.1:8080", got "nope"`,
    "unknown key router.stratgy, did you mean strategy?",
    "router.chunk_size must be an integer >= 1, got 0",
    `logging.level must be one of debug, info, warn, error, got "loud"`,
    `workers[0].url must be an http(s) URL, got "ftp://x"`,
    "unknown key workers[1].weight",
    `workers[1].id must be unique (also workers[0].id), got "a"`,
  ]);
  assert.equal(err.name, "ConfigError");
  assert.ok(
    err.message.startsWith(
      "Invalid configuration in test.yaml (8 errors):\n  - unknown key extra\n",
    ),
  );
});
