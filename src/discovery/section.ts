/**
 * The `discovery:` section of the router config, resolved and checked here so that the loader
 * only calls {@linkcode resolveDiscoveryConfig} and collects its errors; and
 * {@linkcode withDiscoveredWorkers}, which turns a discovered list into the config a reload takes.
 * This file loads no discovery implementation (the Kubernetes client is heavy), so loading a config
 * does not load one; the factory from the resolved section to a `Discovery` is in `config.ts`.
 *
 * ```yaml
 * discovery:
 *   mode: kubernetes          # static (default: the workers list) | dns | kubernetes
 *   interval: 10s             # dns: re-resolve period
 *   dns:
 *     name: vllm.llm.svc.cluster.local
 *     type: A                 # A | AAAA | SRV
 *     port: 8000              # required for A/AAAA; overrides SRV ports when set
 *     scheme: http
 *   kubernetes:
 *     namespace: llm          # default: the router pod's own namespace
 *     label_selector: app=vllm
 *     port: 8000
 *     scheme: http
 *   worker:                   # settings of every discovered worker (workers[] keys but id, url)
 *     kv_budget: 0
 *     max_inflight: 0
 * ```
 *
 * `discovery.worker` is returned raw (`workerRaw`): the loader checks it with its own table for
 * `workers[]` entries (all keys but `id` and `url`), so both places share one set of rules.
 *
 * @module
 */

import { MAX_DURATION_MS, MAX_DURATION_TEXT, parseDuration } from "../config/duration.ts";
import type { RouterConfig, WorkerConfig } from "../config/types.ts";
import { mapping, show, unknownKeys } from "../config/validate.ts";
import { durationSchema, type JsonSchema, objectSchema } from "../config/json_schema.ts";
import type { DnsRecordType } from "./dns_discovery.ts";
import type { DiscoveredWorker } from "./types.ts";
import { isPort } from "./worker_list.ts";

/** Discovery modes. */
export const DISCOVERY_MODES = ["static", "dns", "kubernetes"] as const;
export type DiscoveryMode = typeof DISCOVERY_MODES[number];

const PORT: JsonSchema = { type: "integer", minimum: 1, maximum: 65535 };
const SCHEME: JsonSchema = {
  type: ["string", "null"],
  enum: ["http", "https", null],
  default: "http",
  description: "Scheme of the workers' URLs.",
};

/**
 * The keys of `discovery:` as JSON Schema (draft 2020-12) for `config/router.schema.json`; the
 * checks below accept exactly these keys. `worker` holds only its description: the loader checks
 * it with its `workers[]` table, and the schema generator fills its keys in from that table.
 */
export const DISCOVERY_SCHEMA: JsonSchema = objectSchema({
  mode: {
    type: "string",
    enum: DISCOVERY_MODES,
    default: "static",
    description: "static (the workers list) | dns | kubernetes (discovered at run time).",
  },
  interval: { ...durationSchema(true), default: "10s", description: "dns: re-resolve period." },
  dns: objectSchema({
    name: { type: "string", minLength: 1, description: "DNS name, e.g. a headless Service." },
    type: { type: "string", enum: ["A", "AAAA", "SRV"], default: "A", description: "Record type." },
    port: {
      type: ["integer", "null"],
      minimum: 1,
      maximum: 65535,
      default: null,
      description: "Required for A/AAAA; overrides SRV ports when set.",
    },
    scheme: SCHEME,
  }, { description: "With mode dns: the name whose records are the workers.", required: ["name"] }),
  kubernetes: objectSchema({
    namespace: {
      type: ["string", "null"],
      pattern: "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
      default: null,
      description: "Default: the router pod's own namespace.",
    },
    label_selector: {
      type: "string",
      pattern: "\\S",
      description: "Required: ready pods matching it are the workers.",
    },
    port: { ...PORT, description: "Required: the engine's port in the pod." },
    scheme: SCHEME,
  }, {
    description: "With mode kubernetes: the pods that are the workers.",
    required: ["label_selector", "port"],
  }),
  worker: {
    description: "Settings of every discovered worker: the keys of a workers entry but id and " +
      "url, with the same defaults.",
  },
}, {
  description: "Where workers come from. static: the workers list (reloaded with SIGHUP). dns " +
    "or kubernetes: discovered at run time (leave workers out). Changing this section needs a " +
    "restart, except worker, which applies on SIGHUP.",
});

const keysOf = (schema: unknown): string[] =>
  Object.keys((schema as { properties: object }).properties);
const PROPS = DISCOVERY_SCHEMA.properties as Record<string, JsonSchema>;

/** The resolved `discovery:` section. */
export interface DiscoveryConfig {
  readonly mode: DiscoveryMode;
  /** DNS re-resolve period, ms. */
  readonly intervalMs: number;
  readonly dns: {
    readonly name: string;
    readonly type: DnsRecordType;
    readonly port: number | null;
    readonly scheme: "http" | "https";
  } | null;
  readonly kubernetes: {
    /** Null: the pod's own namespace (service account), else `default`. */
    readonly namespace: string | null;
    readonly labelSelector: string;
    readonly port: number;
    readonly scheme: "http" | "https";
  } | null;
  /** `discovery.worker` as written (checked by the loader), `{}` when absent. */
  readonly workerRaw: Record<string, unknown>;
}

/** Static discovery: the config's own `workers`. */
export const DISCOVERY_STATIC: DiscoveryConfig = {
  mode: "static",
  intervalMs: 10_000,
  dns: null,
  kubernetes: null,
  workerRaw: {},
};

/** Checks and resolves the raw `discovery` value (absent = static); every problem is returned. */
export function resolveDiscoveryConfig(
  raw: unknown,
  path = "discovery",
): { value: DiscoveryConfig; errors: string[] } {
  const errors: string[] = [];
  const s = mapping(raw ?? {}, path, errors);
  if (s === null) return { value: DISCOVERY_STATIC, errors };
  unknownKeys(s, keysOf(DISCOVERY_SCHEMA), path, errors);

  const mode = s.mode ?? "static";
  if (!DISCOVERY_MODES.includes(mode as DiscoveryMode)) {
    errors.push(`${path}.mode must be one of ${DISCOVERY_MODES.join(", ")}, got ${show(mode)}`);
  }
  let intervalMs = 10_000;
  const iv = s.interval ?? "10s";
  try {
    if (typeof iv !== "string" && typeof iv !== "number") throw new TypeError();
    intervalMs = parseDuration(iv);
    if (!(intervalMs > 0)) throw new RangeError();
  } catch {
    errors.push(`${path}.interval must be a positive duration such as "10s", got ${show(iv)}`);
  }
  if (intervalMs > MAX_DURATION_MS) {
    errors.push(`${path}.interval must be ${MAX_DURATION_TEXT}, got ${show(iv)}`);
  }
  const workerRaw = mapping(s.worker ?? {}, `${path}.worker`, errors) ?? {};

  let dns: DiscoveryConfig["dns"] = null;
  if (mode === "dns") {
    const p = `${path}.dns`;
    const d = mapping(s.dns ?? {}, p, errors) ?? {};
    unknownKeys(d, keysOf(PROPS.dns), p, errors);
    const name = d.name;
    if (typeof name !== "string" || name === "") {
      errors.push(`${p}.name must be a DNS name, got ${show(name)}`);
    }
    const type = d.type ?? "A";
    if (type !== "A" && type !== "AAAA" && type !== "SRV") {
      errors.push(`${p}.type must be one of A, AAAA, SRV, got ${show(type)}`);
    }
    const port = d.port ?? null;
    if (port !== null && !isPort(port)) {
      errors.push(`${p}.port must be a port 1..65535 or null, got ${show(port)}`);
    } else if (port === null && type !== "SRV") {
      errors.push(`${p}.port is required for ${type} records`);
    }
    const scheme = checkScheme(d.scheme, `${p}.scheme`, errors);
    dns = {
      name: name as string,
      type: type as DnsRecordType,
      port: port as number | null,
      scheme,
    };
  } else if (s.dns !== undefined && s.dns !== null) {
    errors.push(`${path}.dns is set but ${path}.mode is ${show(mode)}`);
  }

  let kubernetes: DiscoveryConfig["kubernetes"] = null;
  if (mode === "kubernetes") {
    const p = `${path}.kubernetes`;
    const k = mapping(s.kubernetes ?? {}, p, errors) ?? {};
    unknownKeys(k, keysOf(PROPS.kubernetes), p, errors);
    const ns = k.namespace ?? null;
    if (
      ns !== null && (typeof ns !== "string" || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns))
    ) {
      errors.push(`${p}.namespace must be a namespace name or null, got ${show(ns)}`);
    }
    const sel = k.label_selector;
    if (typeof sel !== "string" || sel.trim() === "") {
      errors.push(`${p}.label_selector is required, such as "app=vllm", got ${show(sel)}`);
    }
    if (!isPort(k.port)) errors.push(`${p}.port must be a port 1..65535, got ${show(k.port)}`);
    const scheme = checkScheme(k.scheme, `${p}.scheme`, errors);
    kubernetes = {
      namespace: ns as string | null,
      labelSelector: sel as string,
      port: k.port as number,
      scheme,
    };
  } else if (s.kubernetes !== undefined && s.kubernetes !== null) {
    errors.push(`${path}.kubernetes is set but ${path}.mode is ${show(mode)}`);
  }

  return { value: { mode: mode as DiscoveryMode, intervalMs, dns, kubernetes, workerRaw }, errors };
}

/** Worker settings besides id and URL. */
export type WorkerTemplate = Omit<WorkerConfig, "id" | "url">;

/**
 * `base` with its workers replaced by `discovered`, each with `template`'s settings: the config a
 * reload takes. A worker whose id and URL stay the same is "kept" by the reload.
 */
export function withDiscoveredWorkers(
  base: RouterConfig,
  discovered: readonly DiscoveredWorker[],
  template: WorkerTemplate,
): RouterConfig {
  return {
    ...base,
    workers: discovered.map((w) => ({ ...template, id: w.id, url: w.url })),
  };
}

function checkScheme(v: unknown, path: string, errors: string[]): "http" | "https" {
  if (v === undefined || v === null || v === "http") return "http";
  if (v === "https") return "https";
  errors.push(`${path} must be http or https, got ${show(v)}`);
  return "http";
}
