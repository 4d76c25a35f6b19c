/**
 * Config sources and errors: API keys from the list, the environment and a file; YAML syntax
 * errors and non-mapping documents; free-form strategy names; listen addresses; `loadConfig` with
 * files and environment overrides. (Defaults and per-field checks: load_test.ts.)
 */

import assert from "node:assert/strict";
import { ConfigError, loadConfig, parseConfig, parseListenAddr } from "./mod.ts";
import { errorsOf, ONE_WORKER } from "./testing.ts";

Deno.test("auth keys come from the list, ROUTER_AUTH_API_KEYS and api_keys_file together", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/keys`, "# rotated monthly\nfile-key-1\n\n  file-key-2  \r\n");
    await Deno.writeTextFile(`${dir}/empty`, "# nothing yet\n\n");
    await Deno.writeTextFile(`${dir}/bad`, "good\nnot a key\n");
    const yaml = `auth: {api_keys: [list-key], api_keys_file: keys}\n${ONE_WORKER}`;
    await Deno.writeTextFile(`${dir}/r.yaml`, yaml);
    // A relative file is read from the config file's directory.
    const loaded = await loadConfig(`${dir}/r.yaml`, {});
    assert.deepEqual(loaded.auth.apiKeys, ["list-key", "file-key-1", "file-key-2"]);
    assert.equal(loaded.auth.apiKeysFile, "keys");
    // The variable replaces the YAML list (as every override does); the file still adds its keys.
    const env = { ROUTER_AUTH_API_KEYS: " env-a, ,env-b " };
    assert.deepEqual((await loadConfig(`${dir}/r.yaml`, env)).auth.apiKeys, [
      "env-a",
      "env-b",
      "file-key-1",
      "file-key-2",
    ]);
    assert.deepEqual(
      parseConfig(ONE_WORKER, { ROUTER_AUTH_API_KEYS: "a,b" }).auth.apiKeys,
      ["a", "b"],
    );
    for (const empty of ["", " , "]) {
      // An empty variable (a secret that failed to mount) must not turn auth off.
      const listed = `auth: {api_keys: [list-key]}\n${ONE_WORKER}`;
      assert.deepEqual(errorsOf(() => parseConfig(listed, { ROUTER_AUTH_API_KEYS: empty })), [
        "ROUTER_AUTH_API_KEYS must hold at least one key when set (unset it to use the config's)",
      ]);
    }
    assert.deepEqual(
      parseConfig(ONE_WORKER, { ROUTER_AUTH_API_KEYS_FILE: `${dir}/keys` }).auth.apiKeys,
      ["file-key-1", "file-key-2"],
    );
    const fileErr = (name: string) =>
      errorsOf(() => parseConfig(`auth: {api_keys_file: ${dir}/${name}}\n${ONE_WORKER}`));
    assert.deepEqual(fileErr("empty"), [
      `auth.api_keys_file must hold at least one key, got "${dir}/empty"`,
    ]);
    assert.deepEqual(fileErr("bad"), [
      `auth.api_keys_file line 2 must be one key of printable ASCII characters without spaces, got "${dir}/bad"`,
    ]);
    assert.match(fileErr("missing")[0], /^auth\.api_keys_file cannot be read \(/);
    // A bad list does not hide the file's problem: both are reported.
    assert.deepEqual(
      errorsOf(() =>
        parseConfig(`auth: {api_keys: ["a b"], api_keys_file: ${dir}/empty}\n${ONE_WORKER}`)
      ),
      [
        "auth.api_keys must be a list of keys of printable ASCII characters without spaces",
        `auth.api_keys_file must hold at least one key, got "${dir}/empty"`,
      ],
    );
    assert.deepEqual(errorsOf(() => parseConfig(ONE_WORKER, { ROUTER_AUTH_API_KEYS: "a b" })), [
      "ROUTER_AUTH_API_KEYS must be a list of keys of printable ASCII characters without spaces",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseConfig reports YAML syntax errors with line and column", () => {
  const cases: [string, string[]][] = [
    ["router:\n  strategy: a\n  strategy: b\n", [
      "yaml: line 3, column 3: Map keys must be unique",
    ]],
    ["router: {strategy: a\nworkers: []\n", [
      "yaml: line 2, column 1: Flow map in block collection must be sufficiently indented and end with a }",
    ]],
    ['server:\n  addr: "x\n', [`yaml: line 3, column 1: Missing closing "quote`]],
    ["a: b: c\n", ["yaml: line 1, column 4: Nested mappings are not allowed in compact mappings"]],
    ["a: 1\n---\nb: 2\n", [
      "yaml: line 2, column 1: Source contains multiple documents; please use YAML.parseAllDocuments()",
    ]],
    ["x: !custom 3\n", ["yaml: line 1, column 4: Unresolved tag: !custom"]],
  ];
  for (const [yaml, want] of cases) {
    assert.deepEqual(errorsOf(() => parseConfig(yaml)), want, JSON.stringify(yaml));
  }
});

Deno.test("parseConfig rejects a document that is not a mapping", () => {
  assert.deepEqual(errorsOf(() => parseConfig("- a\n- b\n")), [
    `the document must be a mapping, got ["a","b"]`,
  ]);
  assert.deepEqual(errorsOf(() => parseConfig("just text")), [
    `the document must be a mapping, got "just text"`,
  ]);
  assert.deepEqual(errorsOf(() => parseConfig("")), ["workers is required"]);
});

Deno.test("strategy names are free-form without a registry", () => {
  assert.equal(parseConfig(`router: {strategy: my-own}\n${ONE_WORKER}`).router.strategy, "my-own");
  assert.deepEqual(errorsOf(() => parseConfig(`router: {strategy: ''}\n${ONE_WORKER}`)), [
    `router.strategy must be a non-empty string, got ""`,
  ]);
});

Deno.test("parseListenAddr splits host and port", () => {
  const cases: [string, { hostname: string; port: number }][] = [
    [":8080", { hostname: "0.0.0.0", port: 8080 }],
    ["127.0.0.1:0", { hostname: "127.0.0.1", port: 0 }],
    ["localhost:65535", { hostname: "localhost", port: 65535 }],
    ["[::1]:8080", { hostname: "::1", port: 8080 }],
    ["[::]:1", { hostname: "::", port: 1 }],
  ];
  for (const [addr, want] of cases) assert.deepEqual(parseListenAddr(addr), want, addr);
  for (
    const addr of [
      "",
      "8080",
      ":",
      ":65536",
      ":-1",
      "::1:8080",
      "host:80x",
      "a b:1",
      "[::1]",
      ":123456",
    ]
  ) {
    assert.throws(() => parseListenAddr(addr), RangeError, addr);
  }
});

Deno.test("loadConfig reports an unreadable file as a ConfigError naming it", async () => {
  const path = "/nonexistent/router.yaml";
  await assert.rejects(loadConfig(path, {}), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.errors.length, 1);
    assert.match(err.errors[0], /^cannot read config file: /);
    assert.match(err.message, /^Invalid configuration in \/nonexistent\/router\.yaml \(1 error\):/);
    return true;
  });
});

Deno.test("loadConfig applies env overrides and names the file in errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/r.yaml`;
    await Deno.writeTextFile(path, ONE_WORKER);
    const config = await loadConfig(path, { ROUTER_STRATEGY: "random" });
    assert.equal(config.router.strategy, "random");
    await Deno.writeTextFile(path, `router: {chunk_size: 0}\n${ONE_WORKER}`);
    await assert.rejects(loadConfig(path, {}), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(
        err.message,
        `Invalid configuration in ${path} (1 error):\n  - router.chunk_size must be an integer >= 1, got 0`,
      );
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config/fleet.yaml: a two-model fleet with an alias and passthrough paths", async () => {
  const path = new URL("../../config/fleet.yaml", import.meta.url).pathname;
  const config = await loadConfig(path, {});
  assert.deepEqual(config.workers.map((w) => [w.id, w.models]), [
    ["w1", null],
    ["w2", ["llama-8b"]],
    ["w3", ["qwen-1.5b"]],
  ]);
  assert.deepEqual(config.router.modelAliases, { "gpt-4o-mini": "qwen-1.5b" });
  assert.deepEqual(config.router.passthroughPaths, [
    "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter",
  ]);
});
