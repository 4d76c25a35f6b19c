/** FLOW_SCHEMA describes the keys `resolveFlowConfig` checks, and its defaults are the resolver's. */

import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import { FLOW_SCHEMA } from "./schema.ts";
import { CLASS_KEYS, LIMIT_KEYS, QUEUE_KEYS, resolveFlowConfig, TENANT_KEYS } from "./section.ts";

type Props = Record<
  string,
  { properties?: Props; items?: { properties: Props }; default?: unknown }
>;

const props = FLOW_SCHEMA.properties as Props;
const queue = props.queue.properties!;
const classes = queue.classes.items!.properties;
const tenants = props.tenants.properties!;
const limit = tenants.default.properties!;

Deno.test("FLOW_SCHEMA: the same keys as the resolver", () => {
  assert.deepEqual(Object.keys(props), ["queue", "tenants"]);
  assert.deepEqual(Object.keys(queue), [...QUEUE_KEYS]);
  assert.deepEqual(Object.keys(classes), [...CLASS_KEYS]);
  assert.deepEqual(Object.keys(tenants), [...TENANT_KEYS]);
  assert.deepEqual(Object.keys(limit), [...LIMIT_KEYS]);
});

Deno.test("FLOW_SCHEMA: the defaults it states, spelled out, resolve as the absent keys do", () => {
  const defaults = (p: Props) =>
    Object.fromEntries(
      Object.entries(p).filter(([, v]) => v.default !== undefined).map(([k, v]) => [k, v.default]),
    );
  const cls = (name: string, rank: number) => ({ ...defaults(classes), name, rank });
  const spelled = {
    queue: { ...defaults(queue), classes: [cls("a", 1), cls("b", 0)] },
    tenants: { ...defaults(tenants), default: defaults(limit) },
  };
  const bare = { queue: { classes: [{ name: "a", rank: 1 }, { name: "b" }] } };
  const a = resolveFlowConfig(spelled);
  assert.deepEqual(a.errors, []);
  assert.deepEqual(a.value, resolveFlowConfig(bare).value);
  const validate = new Ajv2020({ strict: true, allowUnionTypes: true }).compile(FLOW_SCHEMA);
  assert.ok(validate(spelled), JSON.stringify(validate.errors));
  assert.ok(!validate({ queue: { classes: [{ name: "a", order: "random" }] } }));
  assert.ok(!validate({ tenants: { limits: { t: { rps: -1 } } } }));
});
