/**
 * The JSON Schema of the `flow:` section, for `config/router.schema.json` (`src/config/schema.ts`
 * puts it in). It describes the keys `resolveFlowConfig` (`section.ts`) checks, with their
 * defaults; as everywhere in the schema, the loader stays the judge where a rule is not a JSON
 * Schema one (distinct ranks, values named once, `header` only with `source: header`).
 * `schema_test.ts` checks that its keys are the resolver's.
 *
 * @module
 */

import { durationSchema, type JsonSchema, objectSchema } from "../config/json_schema.ts";
import { DEFAULT_ENGINE_MAX_WAITING, ORDERS } from "./section.ts";

const LIMIT: JsonSchema = objectSchema({
  rps: {
    type: "number",
    minimum: 0,
    maximum: 1e6,
    default: 0,
    description: "Sustained requests per second (token bucket); 0 = no rate limit.",
  },
  burst: {
    type: "integer",
    minimum: 0,
    description: "Requests that may arrive at once after a quiet period; default ceil(rps).",
  },
  max_concurrent: {
    type: "integer",
    minimum: 0,
    default: 0,
    description: "Requests held at once (waiting in the router queue or in flight); 0 = no cap.",
  },
  weight: {
    type: "number",
    exclusiveMinimum: 0,
    maximum: 1000,
    default: 1,
    description: "Share of the router queue's fair round relative to other tenants of a class.",
  },
}, { description: "Limits of one tenant; over one: 429 with Retry-After." });

const CLASS: JsonSchema = objectSchema(
  {
    name: {
      type: "string",
      pattern: "^[a-z][a-z0-9_-]{0,31}$",
      description: "Class name, used in metric labels and messages.",
    },
    rank: {
      type: "integer",
      minimum: -1_000_000,
      maximum: 1_000_000,
      default: 0,
      description: "Higher ranks are dispatched first (strict priority); ranks must differ.",
    },
    max_queue: {
      type: "integer",
      minimum: 0,
      description: "Requests of this class waiting at most (default max_total); 0 = never waits.",
    },
    max_wait: {
      ...durationSchema(true),
      default: "30s",
      description: "Longest wait in the router queue; a request still waiting then gets 429.",
    },
    sheddable: {
      type: "boolean",
      default: false,
      description: "Whether a waiting request may give up its place to a higher class when the " +
        "queue is full.",
    },
    values: {
      type: "array",
      items: { type: ["string", "number"] },
      default: [],
      description: "Header or body values naming this class besides its name (case-insensitive).",
    },
    order: {
      enum: [...ORDERS],
      default: "adaptive",
      description: "Order of one tenant's waiting requests: fcfs (oldest first), lifo (newest " +
        "first) or adaptive (fcfs until the oldest has waited half its max_wait, then lifo).",
    },
  },
  { required: ["name"], description: "One priority class." },
  false,
);

/** The `flow:` section's schema. */
export const FLOW_SCHEMA: JsonSchema = objectSchema({
  queue: objectSchema({
    max_total: {
      type: "integer",
      minimum: 1,
      maximum: 1_000_000,
      default: 1000,
      description: "Requests waiting in the router queue, all classes and models together.",
    },
    default_class: {
      type: "string",
      description: "Class of a request that names none (default: the highest-ranked class).",
    },
    class_header: {
      type: "string",
      default: "x-priority",
      description: 'Request header naming the class ("" = none); wins over class_field.',
    },
    class_field: {
      type: "string",
      default: "priority",
      description: 'Top-level JSON body field naming the class ("" = none).',
    },
    fair_cost: {
      enum: ["requests", "prompt_tokens"],
      default: "requests",
      description: "What a request costs in the fair round across tenants: 1, or its prompt " +
        "tokens as the router estimates them.",
    },
    quantum: {
      type: "number",
      exclusiveMinimum: 0,
      description: "Credit per turn of the fair round per unit of weight (default 1, or 4096 " +
        "with fair_cost: prompt_tokens).",
    },
    max_retry_after: {
      ...durationSchema(true),
      default: "60s",
      description: "Largest Retry-After the router answers.",
    },
    engine_max_waiting: {
      type: "integer",
      minimum: 0,
      maximum: 1_000_000,
      default: DEFAULT_ENGINE_MAX_WAITING,
      description: "A worker whose engine reports this many requests waiting (fresh figures of " +
        "health.scrape_metrics) takes no new request, which waits in the router queue; 0 = off.",
    },
    classes: {
      type: "array",
      minItems: 1,
      items: CLASS,
      description: "Priority classes; default interactive (rank 10, max_wait 10s, value high) " +
        "and batch (rank 0, max_wait 60s, sheddable, value low).",
    },
  }, { description: "The router queue: where requests wait while every worker is full." }),
  tenants: objectSchema({
    source: {
      enum: ["api_key", "header"],
      default: "api_key",
      description: "Where the tenant id comes from: the fingerprint of the client's bearer key " +
        "(key:<16 hex digits>) or a request header.",
    },
    header: {
      type: "string",
      pattern: "^[!#$%&'*+.^_`|~0-9a-z-]+$",
      description: "The header with source: header (lower case).",
    },
    max_tracked: {
      type: "integer",
      minimum: 1,
      maximum: 10_000_000,
      default: 10_000,
      description: "Tenants not listed in limits remembered at most (least recently seen " +
        "forgotten first).",
    },
    default: LIMIT,
    limits: {
      type: ["object", "null"],
      additionalProperties: LIMIT,
      description: "Limits by tenant id; listed tenants also get their own metric label.",
    },
  }, { description: "Per-tenant limits and fairness weights." }),
}, {
  description: "Flow control: a bounded, fair, prioritised router queue and per-tenant limits " +
    "(docs/flow-control.md). Absent = off: a request finding every worker full gets 503 at once.",
});
