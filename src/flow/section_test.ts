/** resolveFlowConfig: defaults, every value checked with its path, all errors at once. */

import assert from "node:assert/strict";
import { resolveFlowConfig } from "./section.ts";

Deno.test("flow: absent means off", () => {
  assert.deepEqual(resolveFlowConfig(undefined), { value: null, errors: [] });
  assert.deepEqual(resolveFlowConfig(null), { value: null, errors: [] });
});

Deno.test("flow: {} resolves to the documented defaults", () => {
  const { value, errors } = resolveFlowConfig({});
  assert.deepEqual(errors, []);
  assert.deepEqual(value, {
    queue: {
      maxTotal: 1000,
      classes: [
        {
          name: "interactive",
          rank: 10,
          maxQueue: 1000,
          maxWaitMs: 10_000,
          sheddable: false,
          values: ["high"],
          order: "adaptive",
        },
        {
          name: "batch",
          rank: 0,
          maxQueue: 1000,
          maxWaitMs: 60_000,
          sheddable: true,
          values: ["low"],
          order: "adaptive",
        },
      ],
      defaultClass: "interactive",
      classHeader: "x-priority",
      classField: "priority",
      fairCost: "requests",
      quantum: 1,
      maxRetryAfterS: 60,
      engineMaxWaiting: 5,
    },
    tenants: {
      source: "api_key",
      header: "",
      default: { rps: 0, burst: 0, maxConcurrent: 0, weight: 1 },
      limits: {},
      maxTracked: 10_000,
    },
  });
});

Deno.test("flow: a full config, classes sorted by rank, burst defaulting to one second", () => {
  const { value, errors } = resolveFlowConfig({
    queue: {
      max_total: 50,
      default_class: "low",
      class_header: "",
      fair_cost: "prompt_tokens",
      max_retry_after: "2m",
      classes: [
        { name: "low", rank: -1, max_wait: "5m", sheddable: true, order: "lifo" },
        { name: "top", rank: 100, max_queue: 5, max_wait: 2, values: ["p0", 0] },
      ],
    },
    tenants: {
      source: "header",
      header: "x-tenant-id",
      max_tracked: 5,
      default: { rps: 2.5 },
      limits: { "team-a": { rps: 20, burst: 40, max_concurrent: 64, weight: 2 } },
    },
  });
  assert.deepEqual(errors, []);
  assert.deepEqual(
    value!.queue.classes.map((c) => [c.name, c.maxQueue, c.maxWaitMs, c.values, c.order]),
    [
      ["top", 5, 2000, ["p0", "0"], "adaptive"],
      ["low", 50, 300_000, [], "lifo"],
    ],
  );
  assert.equal(value!.queue.quantum, 4096);
  assert.equal(value!.queue.maxRetryAfterS, 120);
  assert.equal(value!.queue.classHeader, "");
  assert.deepEqual(value!.tenants.default, { rps: 2.5, burst: 3, maxConcurrent: 0, weight: 1 });
  assert.deepEqual(value!.tenants.limits["team-a"], {
    rps: 20,
    burst: 40,
    maxConcurrent: 64,
    weight: 2,
  });
});

Deno.test("flow: every error is reported with its path and value", () => {
  const { value, errors } = resolveFlowConfig({
    queue: {
      max_total: 0,
      fair_cost: "bytes",
      quantum: -1,
      default_class: "nope",
      class_header: "X Bad",
      surprise: 1,
      classes: [
        { name: "Bad Name" },
        { name: "a", rank: 1, max_wait: "0s", values: ["x"] },
        { name: "b", rank: 1, max_queue: -2, sheddable: "yes", values: ["X"], order: "random" },
      ],
    },
    tenants: {
      source: "cookie",
      max_tracked: 0,
      default: { rps: 5, burst: 0, weight: 0 },
      limits: { other: {}, "team-b": { max_concurrent: 1.5, extra: true } },
    },
  });
  assert.equal(value, null);
  assert.deepEqual(errors, [
    "unknown key flow.queue.surprise",
    "flow.queue.max_total must be an integer 1..1000000, got 0",
    'flow.queue.fair_cost must be requests or prompt_tokens, got "bytes"',
    "flow.queue.quantum must be a number > 0, got -1",
    'flow.queue.classes[0].name must match ^[a-z][a-z0-9_-]{0,31}$, got "Bad Name"',
    'flow.queue.classes[1].max_wait must be a positive duration such as "10s", got "0s"',
    "flow.queue.classes[2].max_queue must be an integer 0..1000000, got -2",
    'flow.queue.classes[2].sheddable must be true or false, got "yes"',
    'flow.queue.classes[2].order must be one of adaptive, fcfs, lifo, got "random"',
    'flow.queue.classes[2] names "X", already named by flow.queue.classes[1]',
    "flow.queue.classes: two classes have rank 1; ranks must differ",
    'flow.queue.default_class must be one of a, b, got "nope"',
    'flow.queue.class_header must be a lower-case header name or "", got "X Bad"',
    'flow.tenants.source must be api_key or header, got "cookie"',
    "flow.tenants.max_tracked must be an integer 1..10000000, got 0",
    "flow.tenants.default.burst must be ≥ 1 when rps is set, got 0",
    "flow.tenants.default.weight must be 0 < w ≤ 1000, got 0",
    'flow.tenants.limits.other: a tenant id must be 1..128 characters and not "other" or ' +
    '"anonymous"',
    "unknown key flow.tenants.limits.team-b.extra",
    "flow.tenants.limits.team-b.max_concurrent must be an integer 0..10000000, got 1.5",
  ]);
});

Deno.test("flow: header source needs a header; a header without that source is an error", () => {
  assert.deepEqual(resolveFlowConfig({ tenants: { source: "header" } }).errors, [
    "flow.tenants.header must be a lower-case header name, got undefined",
  ]);
  assert.deepEqual(resolveFlowConfig({ tenants: { header: "x-t" } }).errors, [
    'flow.tenants.header is set but flow.tenants.source is "api_key"',
  ]);
  assert.deepEqual(resolveFlowConfig({ queue: { classes: [] } }).errors.slice(0, 1), [
    "flow.queue.classes must be a non-empty list, got []",
  ]);
  assert.deepEqual(resolveFlowConfig("on").errors, ['flow must be a mapping, got "on"']);
});
