/**
 * The `flow:` section of the router config, resolved and checked here so that the loader only
 * calls {@linkcode resolveFlowConfig} and collects its errors. Absent (or null) = flow control
 * off: the router answers 503 at once when every worker is full, as before.
 *
 * ```yaml
 * flow:
 *   queue:
 *     max_total: 1000            # requests waiting in all classes together
 *     default_class: interactive # class of a request naming none (default: highest rank)
 *     class_header: x-priority   # header naming the class ("" = none)
 *     class_field: priority      # top-level body field naming it ("" = none); header wins
 *     fair_cost: requests        # DRR cost: requests (1 each) | prompt_tokens (estimate)
 *     quantum: 1                 # DRR credit per turn per unit of weight (prompt_tokens: 4096)
 *     max_retry_after: 60s       # largest Retry-After answered
 *     engine_max_waiting: 5      # a worker whose engine reports this many waiting is full (0 = off)
 *     classes:                   # default: these two
 *       - { name: interactive, rank: 10, max_queue: 1000, max_wait: 10s, sheddable: false,
 *           values: [high], order: adaptive }
 *       - { name: batch, rank: 0, max_queue: 1000, max_wait: 60s, sheddable: true,
 *           values: [low], order: adaptive }
 *   tenants:
 *     source: api_key            # api_key (fingerprint of the client's key) | header
 *     header: x-tenant-id        # required with source: header
 *     max_tracked: 10000         # unlisted tenants remembered (LRU)
 *     default: { rps: 0, burst: 0, max_concurrent: 0, weight: 1 }   # 0 = no limit
 *     limits:
 *       team-a: { rps: 20, burst: 40, max_concurrent: 64, weight: 2 }
 * ```
 *
 * `burst` defaults to one second's worth (`ceil(rps)`); `max_queue` to `max_total`. `order` is the
 * order of one tenant's waiting requests in a class: `fcfs` (oldest first), `lifo` (newest
 * first), or `adaptive` (the default: FCFS while the class's oldest request has waited less than
 * half its max wait, LIFO after). Measured in `overload.ts`: FCFS with a max wait near the TTFT
 * target sends only requests that are already late under sustained overload (less goodput than
 * answering 503 at once); LIFO keeps the goodput but lengthens the tail of a burst that drains;
 * adaptive has the goodput of LIFO and the TTFT p95 of FCFS.
 *
 * @module
 */

import { MAX_DURATION_MS, MAX_DURATION_TEXT, parseDuration } from "../config/duration.ts";
import { mapping, show, unknownKeys } from "../config/validate.ts";
import { MAX_TENANT_ID } from "./classify.ts";
import { OTHER_TENANT } from "./types.ts";
import type {
  ClassOrder,
  FairCost,
  FlowClassConfig,
  FlowConfig,
  FlowQueueConfig,
  TenantLimitConfig,
  TenantsConfig,
} from "./types.ts";

const CLASS_NAME = /^[a-z][a-z0-9_-]{0,31}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
/** Keys of `flow.queue`. */
export const QUEUE_KEYS: readonly string[] = [
  "max_total",
  "default_class",
  "class_header",
  "class_field",
  "fair_cost",
  "quantum",
  "max_retry_after",
  "engine_max_waiting",
  "classes",
];
/** Values of `flow.queue.classes[].order`. */
export const ORDERS: readonly ClassOrder[] = ["adaptive", "fcfs", "lifo"];
/** Keys of one `flow.queue.classes[]` entry. */
export const CLASS_KEYS: readonly string[] = [
  "name",
  "rank",
  "max_queue",
  "max_wait",
  "sheddable",
  "values",
  "order",
];
/** Keys of one tenant's limits. */
export const LIMIT_KEYS: readonly string[] = ["rps", "burst", "max_concurrent", "weight"];

/** Keys of `flow.tenants`. */
export const TENANT_KEYS: readonly string[] = [
  "source",
  "header",
  "max_tracked",
  "default",
  "limits",
];

/**
 * Default `flow.queue.engine_max_waiting`: the waiting-queue threshold of the Gateway API
 * Inference Extension's saturation detector (llm-d), 5 requests. A few waiting requests are
 * scheduled at the engine's next steps; more mean its batch or KV cache is full.
 */
export const DEFAULT_ENGINE_MAX_WAITING = 5;

/** Limits that limit nothing. */
export const NO_LIMIT: TenantLimitConfig = { rps: 0, burst: 0, maxConcurrent: 0, weight: 1 };

/** Checks and resolves the raw `flow` value; null (off) when absent. Every problem is returned. */
export function resolveFlowConfig(
  raw: unknown,
  path = "flow",
): { value: FlowConfig | null; errors: string[] } {
  const errors: string[] = [];
  if (raw === undefined || raw === null) return { value: null, errors };
  const s = mapping(raw, path, errors);
  if (s === null) return { value: null, errors };
  unknownKeys(s, ["queue", "tenants"], path, errors);
  const queue = resolveQueue(s.queue, `${path}.queue`, errors);
  const tenants = resolveTenants(s.tenants, `${path}.tenants`, errors);
  return { value: errors.length > 0 ? null : { queue, tenants }, errors };
}

function resolveQueue(raw: unknown, path: string, errors: string[]): FlowQueueConfig {
  const q = mapping(raw ?? {}, path, errors) ?? {};
  unknownKeys(q, QUEUE_KEYS, path, errors);
  const maxTotal = int(q.max_total, 1000, 1, 1_000_000, `${path}.max_total`, errors);
  const fairCost = q.fair_cost ?? "requests";
  if (fairCost !== "requests" && fairCost !== "prompt_tokens") {
    errors.push(`${path}.fair_cost must be requests or prompt_tokens, got ${show(fairCost)}`);
  }
  const quantum = num(
    q.quantum,
    fairCost === "prompt_tokens" ? 4096 : 1,
    `${path}.quantum`,
    errors,
    (v) => v > 0 && v <= 1e9,
    "a number > 0",
  );
  const maxRetryAfterMs = duration(q.max_retry_after, "60s", `${path}.max_retry_after`, errors);
  const engineMaxWaiting = int(
    q.engine_max_waiting,
    DEFAULT_ENGINE_MAX_WAITING,
    0,
    1_000_000,
    `${path}.engine_max_waiting`,
    errors,
  );
  const classes = resolveClasses(q.classes, maxTotal, `${path}.classes`, errors);
  const names = classes.map((c) => c.name);
  const defaultClass = q.default_class ?? classes[0]?.name ?? "";
  if (typeof defaultClass !== "string" || !names.includes(defaultClass)) {
    errors.push(
      `${path}.default_class must be one of ${names.join(", ")}, got ${show(defaultClass)}`,
    );
  }
  const classHeader = q.class_header ?? "x-priority";
  if (typeof classHeader !== "string" || (classHeader !== "" && !HEADER_NAME.test(classHeader))) {
    errors.push(
      `${path}.class_header must be a lower-case header name or "", got ${show(classHeader)}`,
    );
  }
  const classField = q.class_field ?? "priority";
  if (typeof classField !== "string") {
    errors.push(`${path}.class_field must be a field name or "", got ${show(classField)}`);
  }
  return {
    maxTotal,
    classes,
    defaultClass: defaultClass as string,
    classHeader: classHeader as string,
    classField: classField as string,
    fairCost: fairCost as FairCost,
    quantum,
    maxRetryAfterS: Math.max(1, Math.ceil(maxRetryAfterMs / 1000)),
    engineMaxWaiting,
  };
}

function resolveClasses(
  raw: unknown,
  maxTotal: number,
  path: string,
  errors: string[],
): FlowClassConfig[] {
  const list = raw ?? [
    { name: "interactive", rank: 10, max_wait: "10s", sheddable: false, values: ["high"] },
    { name: "batch", rank: 0, max_wait: "60s", sheddable: true, values: ["low"] },
  ];
  if (!Array.isArray(list) || list.length === 0) {
    errors.push(`${path} must be a non-empty list, got ${show(raw)}`);
    return [];
  }
  const out: FlowClassConfig[] = [];
  const seen = new Map<string, string>(); // value (lower case) → where it was given
  list.forEach((item, i) => {
    const p = `${path}[${i}]`;
    const c = mapping(item, p, errors);
    if (c === null) return;
    unknownKeys(c, CLASS_KEYS, p, errors);
    const name = c.name;
    if (typeof name !== "string" || !CLASS_NAME.test(name)) {
      errors.push(`${p}.name must match ${CLASS_NAME.source}, got ${show(name)}`);
      return;
    }
    const rank = int(c.rank, 0, -1_000_000, 1_000_000, `${p}.rank`, errors);
    const maxQueue = int(c.max_queue, maxTotal, 0, 1_000_000, `${p}.max_queue`, errors);
    const maxWaitMs = duration(c.max_wait, "30s", `${p}.max_wait`, errors);
    const sheddable = c.sheddable ?? false;
    if (typeof sheddable !== "boolean") {
      errors.push(`${p}.sheddable must be true or false, got ${show(sheddable)}`);
    }
    const order = c.order ?? "adaptive";
    if (!ORDERS.includes(order as ClassOrder)) {
      errors.push(`${p}.order must be one of ${ORDERS.join(", ")}, got ${show(order)}`);
    }
    const values: string[] = [];
    const rawValues = c.values ?? [];
    if (!Array.isArray(rawValues)) {
      errors.push(`${p}.values must be a list, got ${show(rawValues)}`);
    } else {
      rawValues.forEach((v, j) => {
        if (typeof v !== "string" && typeof v !== "number") {
          errors.push(`${p}.values[${j}] must be a string or number, got ${show(v)}`);
        } else if (String(v).trim() === "") {
          errors.push(`${p}.values[${j}] must not be empty`);
        } else values.push(String(v).trim());
      });
    }
    for (const v of [name, ...values]) {
      const k = v.toLowerCase();
      const where = seen.get(k);
      if (where !== undefined) errors.push(`${p} names ${show(v)}, already named by ${where}`);
      else seen.set(k, p);
    }
    out.push({
      name,
      rank,
      maxQueue,
      maxWaitMs,
      sheddable: sheddable === true,
      values,
      order: ORDERS.includes(order as ClassOrder) ? order as ClassOrder : "adaptive",
    });
  });
  const ranks = new Set<number>();
  for (const c of out) {
    if (ranks.has(c.rank)) {
      errors.push(`${path}: two classes have rank ${c.rank}; ranks must differ`);
    }
    ranks.add(c.rank);
  }
  return out.sort((a, b) => b.rank - a.rank);
}

function resolveTenants(raw: unknown, path: string, errors: string[]): TenantsConfig {
  const t = mapping(raw ?? {}, path, errors) ?? {};
  unknownKeys(t, TENANT_KEYS, path, errors);
  const source = t.source ?? "api_key";
  if (source !== "api_key" && source !== "header") {
    errors.push(`${path}.source must be api_key or header, got ${show(source)}`);
  }
  let header = "";
  if (source === "header") {
    if (typeof t.header !== "string" || !HEADER_NAME.test(t.header)) {
      errors.push(`${path}.header must be a lower-case header name, got ${show(t.header)}`);
    } else header = t.header;
  } else if (t.header !== undefined) {
    errors.push(`${path}.header is set but ${path}.source is ${show(source)}`);
  }
  const maxTracked = int(t.max_tracked, 10_000, 1, 10_000_000, `${path}.max_tracked`, errors);
  const def = resolveLimit(t.default, `${path}.default`, errors);
  const limits: Record<string, TenantLimitConfig> = {};
  const l = mapping(t.limits ?? {}, `${path}.limits`, errors) ?? {};
  for (const [id, v] of Object.entries(l)) {
    const p = `${path}.limits.${id}`;
    if (id === "" || id.length > MAX_TENANT_ID || id === OTHER_TENANT || id === "anonymous") {
      errors.push(
        `${p}: a tenant id must be 1..${MAX_TENANT_ID} characters and not ` +
          `"${OTHER_TENANT}" or "anonymous"`,
      );
      continue;
    }
    limits[id] = resolveLimit(v, p, errors);
  }
  return {
    source: source as "api_key" | "header",
    header,
    default: def,
    limits,
    maxTracked,
  };
}

function resolveLimit(raw: unknown, path: string, errors: string[]): TenantLimitConfig {
  if (raw === undefined || raw === null) return NO_LIMIT;
  const m = mapping(raw, path, errors);
  if (m === null) return NO_LIMIT;
  unknownKeys(m, LIMIT_KEYS, path, errors);
  const rps = num(m.rps, 0, `${path}.rps`, errors, (v) => v >= 0 && v <= 1e6, "a number ≥ 0");
  const burst = int(m.burst, Math.ceil(rps), 0, 10_000_000, `${path}.burst`, errors);
  if (rps > 0 && burst < 1) errors.push(`${path}.burst must be ≥ 1 when rps is set, got ${burst}`);
  const maxConcurrent = int(m.max_concurrent, 0, 0, 10_000_000, `${path}.max_concurrent`, errors);
  const weight = num(
    m.weight,
    1,
    `${path}.weight`,
    errors,
    (v) => v > 0 && v <= 1000,
    "0 < w ≤ 1000",
  );
  return { rps, burst, maxConcurrent, weight };
}

function int(
  v: unknown,
  def: number,
  min: number,
  max: number,
  path: string,
  errors: string[],
): number {
  if (v === undefined || v === null) return def;
  if (typeof v === "number" && Number.isInteger(v) && v >= min && v <= max) return v;
  errors.push(`${path} must be an integer ${min}..${max}, got ${show(v)}`);
  return def;
}

function num(
  v: unknown,
  def: number,
  path: string,
  errors: string[],
  ok: (v: number) => boolean,
  what: string,
): number {
  if (v === undefined || v === null) return def;
  if (typeof v === "number" && Number.isFinite(v) && ok(v)) return v;
  errors.push(`${path} must be ${what}, got ${show(v)}`);
  return def;
}

function duration(v: unknown, def: string, path: string, errors: string[]): number {
  const given = v ?? def;
  let ms: number;
  try {
    if (typeof given !== "string" && typeof given !== "number") throw new TypeError();
    ms = parseDuration(given);
  } catch {
    errors.push(`${path} must be a positive duration such as "10s", got ${show(v)}`);
    return parseDuration(def);
  }
  if (!(ms > 0)) {
    errors.push(`${path} must be a positive duration such as "10s", got ${show(v)}`);
    return parseDuration(def);
  }
  if (ms > MAX_DURATION_MS) {
    errors.push(`${path} must be ${MAX_DURATION_TEXT}, got ${show(v)}`);
    return MAX_DURATION_MS;
  }
  return ms;
}
