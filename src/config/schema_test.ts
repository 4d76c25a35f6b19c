import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import { parse } from "yaml";
import { STRATEGY_NAMES } from "../strategies/mod.ts";
import { DISCOVERY_SCHEMA } from "../discovery/section.ts";
import { SYNC_SCHEMA } from "../sync/section.ts";
import { SECTIONS, WORKER } from "./fields.ts";
import { configSchema, SCHEMA_FILE, schemaText } from "./schema.ts";
import { parseConfig } from "./mod.ts";
import { errorsOf } from "./testing.ts";

const root = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, root));

/** A validator of the generated schema; strict: an unknown keyword or a bad schema throws. */
function validator() {
  const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
  return ajv.compile(configSchema({ strategies: STRATEGY_NAMES }));
}

function problems(validate: ReturnType<typeof validator>, doc: unknown): string[] {
  return validate(doc) ? [] : validate.errors!.map((e) => `${e.instancePath} ${e.message}`);
}

Deno.test("config/router.schema.json is what src/config/schema.ts generates now", () => {
  const committed = read(`config/${SCHEMA_FILE}`);
  assert.equal(
    committed,
    schemaText({ strategies: STRATEGY_NAMES }),
    "stale schema: run deno run src/config/schema.ts > config/router.schema.json",
  );
});

Deno.test("config/router.yaml points at the schema and validates against it", () => {
  const yaml = read("config/router.yaml");
  assert.equal(yaml.split("\n")[0], `# yaml-language-server: $schema=./${SCHEMA_FILE}`);
  assert.deepEqual(problems(validator(), parse(yaml)), []);
});

Deno.test("deploy/configmap.yaml's router config validates against the schema", () => {
  const manifest = parse(read("deploy/configmap.yaml")) as { data: Record<string, string> };
  const text = Object.values(manifest.data).find((v) => v.includes("discovery:"));
  assert.ok(text !== undefined, "the ConfigMap holds a router config");
  assert.deepEqual(problems(validator(), parse(text)), []);
});

Deno.test("every key has a description; every default validates against its own key", () => {
  const validate = validator();
  const schema = configSchema();
  const props = schema.properties as Record<string, { properties: Record<string, unknown> }>;
  for (const [section, fields] of Object.entries(SECTIONS)) {
    assert.deepEqual(Object.keys(props[section].properties), fields.map((fd) => fd.key));
    for (const fd of fields) {
      const p = props[section].properties[fd.key] as { description?: string; default?: unknown };
      assert.ok((p.description ?? "").length > 10, `${section}.${fd.key} has a description`);
      // The default, written out, is a valid config (with one worker).
      const doc = { [section]: { [fd.key]: fd.def }, workers: [{ id: "a", url: "http://h:1" }] };
      assert.deepEqual(problems(validate, doc), [], `${section}.${fd.key}`);
    }
  }
  const worker = (props.workers as unknown as { items: { properties: object; required: string[] } })
    .items;
  assert.deepEqual(Object.keys(worker.properties), WORKER.map((fd) => fd.key));
  assert.deepEqual(worker.required, ["id", "url"]);
  assert.equal(props.sync, SYNC_SCHEMA);
});

Deno.test("the schema rejects what the loader rejects: unknown keys, bad enums and units", () => {
  const validate = validator();
  const w = [{ id: "a", url: "http://h:1" }];
  const bad: [unknown, string][] = [
    [{ router: { stratgy: "x" }, workers: w }, "/router must NOT have additional properties"],
    [{ router: { strategy: "nope" }, workers: w }, "/router/strategy must be equal to one of"],
    [{ server: { read_timeout: "5 sec" }, workers: w }, "/server/read_timeout must match"],
    [{ server: { max_body_bytes: "8 MB!" }, workers: w }, "/server/max_body_bytes must match"],
    [{ logging: { level: "loud" }, workers: w }, "/logging/level must be equal to one of"],
    [{ workers: [{ id: "a" }] }, "/workers/0 must have required property 'url'"],
    [{ workers: [] }, "/workers must NOT have fewer than 1 items"],
    [{}, " must have required property 'workers'"],
    [{ discovery: { mode: "dns", dns: { name: "x", port: 1 } }, workers: w }, "/workers must NOT"],
    [{ discovery: { worker: { id: "x" } }, workers: w }, "/discovery/worker must NOT have"],
    [
      { sync: { redis: { url: "redis://r", max_len: 0 } }, workers: w },
      "/sync/redis/max_len must be >= 1",
    ],
  ];
  for (const [doc, want] of bad) {
    const got = problems(validate, doc);
    assert.ok(got.some((p) => p.startsWith(want)), `${JSON.stringify(doc)}: ${got.join("; ")}`);
    // And the loader agrees that each is invalid.
    errorsOf(() => parseConfig(JSON.stringify(doc), {}, { strategies: STRATEGY_NAMES }), want);
  }
  const good: unknown[] = [
    { discovery: { mode: "kubernetes", kubernetes: { label_selector: "app=v", port: 8000 } } },
    { server: { read_timeout: 1.5, max_body_bytes: 1024 }, workers: w },
    { server: { read_timeout: "1h30m", max_body_bytes: "1.5MiB" }, workers: w },
    { metrics: null, router: { seed: null, strategy_options: { a: 1 } }, workers: w },
  ];
  for (const doc of good) {
    assert.deepEqual(problems(validate, doc), [], JSON.stringify(doc));
    parseConfig(JSON.stringify(doc), {}, { strategies: STRATEGY_NAMES });
  }
});

Deno.test("sync and discovery: the schema's keys and defaults are the loader's", () => {
  type Props = Record<string, { default?: unknown; properties?: Props }>;
  const sync = SYNC_SCHEMA.properties as Props;
  const redis = sync.redis.properties!;
  const defaults = (p: Props) =>
    Object.fromEntries(
      Object.entries(p).filter(([, v]) => "default" in v).map(([k, v]) => [k, v.default]),
    );
  const base = "workers: [{id: a, url: 'http://h:1'}]\n";
  // Every default written out gives the config the loader builds when the keys are absent.
  const spelled = JSON.stringify({
    sync: { redis: { ...defaults(redis), url: "redis://r:6379" } },
  });
  assert.deepEqual(
    parseConfig(`${base}sync: ${JSON.stringify(JSON.parse(spelled).sync)}`).sync,
    parseConfig(`${base}sync: {redis: {url: 'redis://r:6379'}}`).sync,
  );
  const disc = DISCOVERY_SCHEMA.properties as Props;
  assert.deepEqual(
    parseConfig(`${base}discovery: ${JSON.stringify(defaults(disc))}`).discovery,
    parseConfig(base).discovery,
  );
  // Every key the schema names is one the loader knows (no "unknown key" for any of them).
  const all = [
    `sync: {${Object.keys(sync).map((k) => `${k}: null`).join(", ")}}`,
    `sync: {redis: {${Object.keys(redis).map((k) => `${k}: null`).join(", ")}}}`,
    `discovery: {${Object.keys(disc).map((k) => `${k}: null`).join(", ")}}`,
  ];
  for (const yaml of all) {
    let errors: string[] = [];
    try {
      parseConfig(`${base}${yaml}`);
    } catch (err) {
      errors = (err as { errors: string[] }).errors;
    }
    assert.deepEqual(errors.filter((e) => e.startsWith("unknown key")), [], yaml);
  }
});
