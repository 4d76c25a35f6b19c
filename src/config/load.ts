/**
 * Config loading, the public entry: YAML text → raw object → environment overrides → validation
 * into the fully-resolved `RouterConfig`, or one `ConfigError` listing every problem with its path
 * and value. `configFromWorkers` builds the same config in code from resolved-form overrides.
 *
 * The work is split by concept: the field tables (one row per key) in `fields.ts`, the checks of
 * values in `checks.ts`, environment overrides in `env.ts`, resolution and cross-field rules in
 * `resolve.ts`; the JSON Schema of the config is generated from the same tables by `schema.ts`.
 *
 * @module
 */

import { LineCounter, parseDocument } from "yaml";
import type { DiscoveryMode } from "../discovery/section.ts";
import type { DnsRecordType } from "../discovery/dns_discovery.ts";
import type { SyncConfig } from "../sync/section.ts";
import { errorMessage } from "../util/errors.ts";
import { Millis } from "./checks.ts";
import { ConfigError } from "./config_error.ts";
import { type Field, type SectionName, SECTIONS, WORKER, WORKER_TEMPLATE } from "./fields.ts";
import { didYouMean } from "./suggest.ts";
import { plainMillis, resolve } from "./resolve.ts";
import type { ParseOptions, RouterConfig, WorkerConfig } from "./types.ts";

/**
 * Parses YAML `text`, applies overrides from `env` and validates the result.
 *
 * @throws {ConfigError} with every YAML syntax error (line and column), or every validation error.
 */
export function parseConfig(
  yamlText: string,
  env: Record<string, string | undefined> = {},
  opts: ParseOptions = {},
): RouterConfig {
  const lines = new LineCounter();
  const doc = parseDocument(yamlText, { lineCounter: lines, prettyErrors: false });
  const syntax = [...doc.errors, ...doc.warnings].map((e) => {
    const { line, col } = lines.linePos(e.pos[0]);
    return `yaml: line ${line}, column ${col}: ${e.message}`;
  });
  if (syntax.length > 0) throw new ConfigError(syntax, opts.source);
  return resolve(doc.toJS(), env, new Map(), opts);
}

/**
 * Reads and parses the YAML file at `path`; see `parseConfig`.
 *
 * @throws {ConfigError} when the file cannot be read or the configuration is invalid.
 */
export async function loadConfig(
  path: string,
  env: Record<string, string | undefined> = Deno.env.toObject(),
  opts: ParseOptions = {},
): Promise<RouterConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    const why = errorMessage(err);
    throw new ConfigError([`cannot read config file: ${why}`], path);
  }
  return parseConfig(text, env, { ...opts, source: path });
}

/** A worker for `configFromWorkers`: a URL, or resolved fields with at least the URL. */
export type WorkerInput = string | (Partial<WorkerConfig> & { readonly url: string });

/** Resolved-form overrides for `configFromWorkers`; durations in milliseconds as in `RouterConfig`. */
export interface ConfigOverrides {
  readonly server?: Partial<RouterConfig["server"]>;
  readonly router?: Partial<RouterConfig["router"]>;
  readonly health?: Partial<RouterConfig["health"]>;
  readonly logging?: Partial<RouterConfig["logging"]>;
  readonly metrics?: Partial<RouterConfig["metrics"]>;
  readonly auth?: Partial<RouterConfig["auth"]>;
  readonly tracing?: Partial<RouterConfig["tracing"]>;
  /** Applied to every worker; a field given on the worker itself wins. */
  readonly worker?: Partial<Omit<WorkerConfig, "id" | "url">>;
  /** Replica sync; default off. `redis` needs at least `url`; the other fields default. */
  readonly sync?: {
    readonly replicaId?: string | null;
    readonly redis?: (Partial<NonNullable<SyncConfig["redis"]>> & { readonly url: string }) | null;
  };
  /** Worker discovery; default static (the `workers` argument). */
  readonly discovery?: {
    readonly mode?: DiscoveryMode;
    readonly intervalMs?: number;
    readonly dns?: {
      readonly name: string;
      readonly type?: DnsRecordType;
      readonly port?: number | null;
      readonly scheme?: "http" | "https";
    } | null;
    readonly kubernetes?: {
      readonly namespace?: string | null;
      readonly labelSelector: string;
      readonly port: number;
      readonly scheme?: "http" | "https";
    } | null;
    /** Settings of every discovered worker; absent fields take the `workers[]` defaults. */
    readonly worker?: Partial<Omit<WorkerConfig, "id" | "url">>;
  };
  /**
   * Flow control, in its YAML form (`{queue: {max_total: 100, classes: [...]}, tenants: {...}}`,
   * durations as strings); default off. Errors name its YAML keys (`flow.queue.max_total`).
   */
  readonly flow?: Readonly<Record<string, unknown>> | null;
}

/**
 * Builds a configuration in code (demo, benchmarks, tests) with the YAML path's defaults and
 * checks. Workers given as plain URLs get ids `w1`, `w2`, … by position. Errors name the
 * overrides' own fields (`router.chunkSize`), except in `sync`, `discovery` and `flow` (their
 * YAML keys, `sync.redis.max_len`). Sync is off and discovery static unless overridden; with a `dns` or
 * `kubernetes` discovery `workers` must be empty.
 *
 * @throws {ConfigError} when a value is invalid.
 */
export function configFromWorkers(
  workers: readonly WorkerInput[],
  overrides: ConfigOverrides = {},
  opts: ParseOptions = {},
): RouterConfig {
  const labels = new Map<string, string>();
  const errors: string[] = [];
  const raw: Record<string, unknown> = {};
  for (const [section, fields] of Object.entries(SECTIONS)) {
    const given = overrides[section as SectionName] as Record<string, unknown> | undefined;
    raw[section] = toRaw(given ?? {}, fields, section, labels, errors);
  }
  raw.workers = workers.map((w, i) => {
    const given = typeof w === "string" ? { url: w } : w;
    const merged = { id: `w${i + 1}`, ...overrides.worker, ...given };
    return toRaw(merged, WORKER, `workers[${i}]`, labels, errors);
  });
  if (overrides.sync !== undefined) raw.sync = syncToRaw(overrides.sync);
  if (overrides.flow !== undefined) raw.flow = overrides.flow;
  if (overrides.discovery !== undefined) {
    const d = overrides.discovery;
    const k = d.kubernetes;
    raw.discovery = dropUndefined({
      mode: d.mode,
      interval: d.intervalMs === undefined ? undefined : `${d.intervalMs}ms`,
      dns: d.dns,
      kubernetes: k == null ? k : dropUndefined({
        namespace: k.namespace,
        label_selector: k.labelSelector,
        port: k.port,
        scheme: k.scheme,
      }),
      worker: d.worker === undefined
        ? undefined
        : plainMillis(toRaw(d.worker, WORKER_TEMPLATE, "discovery.worker", labels, errors)),
    });
  }
  if (errors.length > 0) throw new ConfigError(errors, opts.source);
  return resolve(raw, {}, labels, opts);
}

/** Resolved-form sync overrides in raw YAML form (durations as `"<n>ms"`). */
function syncToRaw(s: NonNullable<ConfigOverrides["sync"]>): Record<string, unknown> {
  const r = s.redis;
  return dropUndefined({
    replica_id: s.replicaId,
    redis: r === undefined ? undefined : r === null ? { url: null } : dropUndefined({
      url: r.url,
      stream: r.stream,
      max_len: r.maxLen,
      catch_up: r.catchUpMs === undefined ? undefined : `${r.catchUpMs}ms`,
      queue_max: r.queueMax,
    }),
  });
}

/** `m` without its undefined values. */
function dropUndefined(m: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined));
}

/** Turns resolved-form fields (camelCase, ms) into raw YAML form, labelling paths by field name. */
function toRaw(
  given: Record<string, unknown>,
  fields: readonly Field[],
  path: string,
  labels: Map<string, string>,
  errors: string[],
): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(given)) {
    if (value === undefined) continue;
    const fd = fields.find((x) => x.field === name);
    if (fd === undefined) {
      errors.push(`unknown key ${path}.${name}${didYouMean(name, fields.map((x) => x.field))}`);
      continue;
    }
    const isMs = name.endsWith("Ms") && typeof value === "number";
    raw[fd.key] = isMs ? new Millis(value) : value;
    labels.set(`${path}.${fd.key}`, `${path}.${name}`);
  }
  return raw;
}
