/**
 * Config loading: YAML text → raw object → environment overrides → validation into the
 * fully-resolved `RouterConfig`, or one `ConfigError` listing every problem with its path and value.
 *
 * Rules:
 * - Every section and key is described once, in the tables below (YAML key, resolved field, check,
 *   default). Defaults are written in YAML form and go through the same checks as user values.
 * - Unknown keys are errors at every level. A key set to `null` is an error unless the key is
 *   nullable; a whole section may be empty (`metrics:` with every key commented out).
 * - Env overrides: `ROUTER_<SECTION>_<KEY>` (upper-case) sets `<section>.<key>` for every key of
 *   server, router, health, logging, metrics and auth (sync has its two, discovery none); router keys also have a short form `ROUTER_<KEY>` (`ROUTER_STRATEGY`). The
 *   value is read as a YAML scalar (`8`, `true`, `null`, `"quoted"`), and errors name the variable.
 *   Setting both forms to different values is an error. Other `ROUTER_*` variables are ignored, so
 *   entry points may use the prefix for their own flags (`ROUTER_CONFIG`).
 *   `router.strategy_options` is a mapping: its variable holds a YAML flow mapping
 *   (`ROUTER_STRATEGY_OPTIONS='{cache_threshold: 0.6}'`).
 * - The `sync` and `discovery` sections are checked by their own modules (`src/sync/section.ts`,
 *   `src/discovery/section.ts`), with the same message form; `discovery.worker` is checked here
 *   with the `workers[]` table (every key but `id` and `url`). Sync reads `ROUTER_SYNC_REDIS_URL`
 *   and `ROUTER_SYNC_REPLICA_ID`.
 * - `workers` is required and non-empty with `discovery.mode: static` (the default); with `dns`
 *   or `kubernetes` it must be empty or absent (the workers come from discovery).
 * - With `ParseOptions.createStrategy`, the strategy is built once with its parameters and
 *   `router.strategy_options`, so an option it rejects is a config error.
 *
 * @module
 */

import { isScalar, LineCounter, parseDocument } from "yaml";
import {
  type DiscoveryConfig,
  type DiscoveryMode,
  resolveDiscoveryConfig,
} from "../discovery/section.ts";
import type { DnsRecordType } from "../discovery/dns_discovery.ts";
import type { StrategyParams } from "../strategies/types.ts";
import { resolveSyncConfig, SYNC_ENV, type SyncConfig } from "../sync/section.ts";
import { MAX_DURATION_MS, MAX_DURATION_TEXT, parseByteSize, parseDuration } from "./duration.ts";
import type { RouterConfig, WorkerConfig } from "./types.ts";
import { clip, show as showValue, unknownKeys } from "./validate.ts";
import { errorMessage } from "../util/errors.ts";

/** Every problem found in a configuration, reported together. */
export class ConfigError extends Error {
  /** One line per problem: `<path> <what is wrong>, got <value>`. */
  readonly errors: string[];

  constructor(errors: string[], source?: string) {
    const where = source === undefined ? "" : ` in ${source}`;
    const count = errors.length === 1 ? "1 error" : `${errors.length} errors`;
    super(`Invalid configuration${where} (${count}):\n  - ${errors.join("\n  - ")}`);
    this.name = "ConfigError";
    this.errors = errors;
  }
}

/** Options of `parseConfig`, `loadConfig` and `configFromWorkers`. */
export interface ParseOptions {
  /** Valid `router.strategy` names (the strategy registry's); absent: any non-empty string. */
  readonly strategies?: readonly string[];
  /** Name of the text's origin (a file path), shown in the error message. */
  readonly source?: string;
  /**
   * The strategy registry's `createStrategy`. When given, the strategy is built once with the
   * config's parameters and `router.strategy_options`, and what it rejects is reported at
   * `router.strategy_options`; absent: the options are only checked to be numbers.
   */
  readonly createStrategy?: (name: string, params: StrategyParams) => unknown;
}

// ---------------------------------------------------------------------------------------------
// Checks: each turns a raw value into a resolved one, or says what was expected.

/** What a value should have been; `reveal: false` keeps the value out of the message (secrets). */
class Expected {
  constructor(readonly text: string, readonly reveal = true) {}
}

type Check = (value: unknown, opts: ParseOptions) => unknown;

/** A duration already in milliseconds (from `configFromWorkers`), so it is not read as seconds. */
class Millis {
  constructor(readonly ms: number) {}
}

const int = (min: number): Check => (v) =>
  Number.isSafeInteger(v) && (v as number) >= min
    ? v
    : new Expected(`must be an integer >= ${min}`);

const duration = (positive: boolean): Check => {
  const want = new Expected(
    `must be a ${positive ? "positive " : ""}duration such as "150ms", "1.5s" or "1h30m", ` +
      `or a number of seconds`,
  );
  return (v) => {
    let ms: number;
    if (v instanceof Millis) {
      ms = Number.isFinite(v.ms) && v.ms >= 0 ? v.ms : -1;
    } else if (typeof v === "string" || typeof v === "number") {
      try {
        ms = parseDuration(v);
      } catch {
        return want;
      }
    } else {
      return want;
    }
    if (ms > MAX_DURATION_MS) return new Expected(`must be ${MAX_DURATION_TEXT}`);
    return ms < 0 || (positive && ms === 0) ? want : ms;
  };
};

const byteSize = (min: number): Check => (v) => {
  const want = new Expected(
    `must be a size of at least ${min} byte(s) such as ` +
      `1048576, "512KiB" or "8MiB"`,
  );
  if (typeof v !== "string" && typeof v !== "number") return want;
  try {
    const bytes = parseByteSize(v);
    return bytes >= min ? bytes : want;
  } catch {
    return want;
  }
};

const oneOf = (values: readonly string[]): Check => (v) =>
  typeof v === "string" && values.includes(v)
    ? v
    : new Expected(`must be one of ${values.join(", ")}`);

const bool: Check = (v) => typeof v === "boolean" ? v : new Expected("must be true or false");

const nullable = (check: Check, suffix = " or null"): Check => (v, opts) => {
  if (v === null) return null;
  const r = check(v, opts);
  return r instanceof Expected ? new Expected(r.text + suffix, r.reveal) : r;
};

const listenAddr: Check = (v) => {
  const want = new Expected(`must be "host:port" such as ":8080" or "127.0.0.1:8080"`);
  if (typeof v !== "string") return want;
  try {
    parseListenAddr(v);
    return v;
  } catch {
    return want;
  }
};

const strategy: Check = (v, opts) => {
  if (opts.strategies !== undefined) return oneOf(opts.strategies)(v, opts);
  return typeof v === "string" && v !== "" ? v : new Expected("must be a non-empty string");
};

const healthPath: Check = (v) =>
  typeof v === "string" && /^\/\S*$/.test(v) ? v : new Expected(`must be a path starting with "/"`);

const workerId: Check = (v) =>
  typeof v === "string" && /^[A-Za-z0-9._-]+$/.test(v)
    ? v
    : new Expected("must match [A-Za-z0-9._-]+");

const workerUrl: Check = (v) => {
  const want = new Expected("must be an http(s) URL");
  if (typeof v !== "string") return want;
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return want;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") return want;
  // The URL would end up in error messages and logs; credentials belong in api_key.
  if (url.username !== "" || url.password !== "") {
    return new Expected("must not embed credentials (use api_key)", false);
  }
  if (url.search !== "" || url.hash !== "" || v.includes("?") || v.includes("#")) {
    return new Expected("must be an http(s) URL without query or fragment");
  }
  const path = url.pathname.replace(/\/+$/, "");
  // The router appends /v1/...; a base ending in /v1 would request /v1/v1/chat/completions.
  if (/\/v1$/.test(path)) return new Expected("must be the server's base URL, without /v1");
  return url.origin + path;
};

const apiKey: Check = (v) =>
  typeof v === "string" && v !== "" ? v : new Expected("must be a non-empty string", false);

const seed: Check = (v) => Number.isSafeInteger(v) ? v : new Expected("must be an integer");

/** Router API keys: printable ASCII without spaces, so they fit `Authorization: Bearer <key>`. */
const ROUTER_KEY_RE = /^[\x21-\x7e]+$/;

/** What `ROUTER_AUTH_API_KEYS` gives when it holds no key: refused, not an empty list. */
const NO_ENV_KEYS = Symbol("no keys");

const apiKeyList: Check = (v) => {
  if (v === NO_ENV_KEYS) {
    // A secret that failed to mount often arrives as an empty variable: it must not open the router.
    return new Expected(
      "must hold at least one key when set (unset it to use the config's)",
      false,
    );
  }
  const want = new Expected(
    "must be a list of keys of printable ASCII characters without spaces",
    false,
  );
  if (!Array.isArray(v)) return want;
  for (const k of v) if (typeof k !== "string" || !ROUTER_KEY_RE.test(k)) return want;
  return [...new Set(v as string[])];
};

const strategyOptions: Check = (v) => {
  const want = new Expected("must be a mapping of option names to numbers");
  if (!isMapping(v)) return want;
  for (const x of Object.values(v)) if (typeof x !== "number" || !Number.isFinite(x)) return want;
  return { ...v };
};

/** An HTTP header name (RFC 9110 token), kept in lower case; `""` turns the feature off. */
const headerName: Check = (v) =>
  typeof v === "string" && /^[!#$%&'*+\-.^_`|~0-9A-Za-z]*$/.test(v)
    ? v.toLowerCase()
    : new Expected(`must be an HTTP header name such as "x-session-id", or "" (off)`);

const filePath: Check = (v) =>
  typeof v === "string" && v.trim() !== "" ? v : new Expected("must be a file path");

// ---------------------------------------------------------------------------------------------
// The schema.

/** Marks a key with no default. */
const REQUIRED = Symbol("required");

interface Field {
  /** YAML key (snake_case). */
  readonly key: string;
  /** Resolved field (camelCase). */
  readonly field: string;
  readonly check: Check;
  /** Default in YAML form, checked like a user value. */
  readonly def: unknown;
  /** Reads the key's environment variable; absent: the value is read as a YAML scalar. */
  readonly fromEnv?: (text: string) => unknown;
}

const f = (
  key: string,
  field: string,
  check: Check,
  def: unknown,
  fromEnv?: (text: string) => unknown,
): Field => ({ key, field, check, def, fromEnv });

/** A comma-separated environment value as a list; blanks around and between items are dropped. */
const commaList = (text: string): string[] =>
  text.split(",").map((s) => s.trim()).filter((s) => s !== "");

/** `ROUTER_AUTH_API_KEYS`: a comma list; with no key at all, refused (see `apiKeyList`). */
const envKeys = (text: string): unknown => {
  const keys = commaList(text);
  return keys.length > 0 ? keys : NO_ENV_KEYS;
};

/** An environment value holding a YAML flow mapping (`{a: 1}`); anything else stays text. */
const flowMapping = (text: string): unknown => {
  const doc = parseDocument(text);
  return doc.errors.length === 0 ? doc.toJS() : text;
};

type SectionName = "server" | "router" | "health" | "logging" | "metrics" | "auth";

/** Scalar sections, in the order errors are reported. */
const SECTIONS: Readonly<Record<SectionName, readonly Field[]>> = {
  server: [
    f("addr", "addr", listenAddr, ":8080"),
    f("read_timeout", "readTimeoutMs", duration(true), "30s"),
    f("shutdown_timeout", "shutdownTimeoutMs", duration(false), "10s"),
    f("max_body_bytes", "maxBodyBytes", byteSize(1), "8MiB"),
    f("max_header_bytes", "maxHeaderBytes", byteSize(1), "16KiB"),
    f("max_json_depth", "maxJsonDepth", int(1), 64),
  ],
  router: [
    f("strategy", "strategy", strategy, "prefixaware"),
    f("chunk_size", "chunkSize", int(1), 32),
    f("min_match_chunks", "minMatchChunks", int(0), 2),
    f("saturation_inflight", "saturationInflight", int(0), 8),
    f("max_retries", "maxRetries", int(0), 2),
    f("seed", "seed", nullable(seed), null),
    f("strategy_options", "strategyOptions", strategyOptions, {}, flowMapping),
    f("session_header", "sessionHeader", headerName, "x-session-id"),
    f("upstream_client", "upstreamClient", oneOf(["native", "fetch"]), "native"),
  ],
  health: [
    f("interval", "intervalMs", duration(false), "5s"),
    f("path", "path", healthPath, "/health"),
    f("timeout", "timeoutMs", duration(true), "2s"),
  ],
  logging: [
    f("level", "level", oneOf(["debug", "info", "warn", "error"]), "info"),
    f("format", "format", oneOf(["text", "json"]), "json"),
  ],
  metrics: [
    f("enabled", "enabled", bool, true),
    f("addr", "addr", nullable(listenAddr), null),
  ],
  auth: [
    f("api_keys", "apiKeys", apiKeyList, [], envKeys),
    f("api_keys_file", "apiKeysFile", nullable(filePath), null),
    f("protect_metrics", "protectMetrics", bool, false),
    f("forward_client_auth", "forwardClientAuth", bool, false),
  ],
};

/** Keys of one `workers[]` entry. */
const WORKER: readonly Field[] = [
  f("id", "id", workerId, REQUIRED),
  f("url", "url", workerUrl, REQUIRED),
  f("kv_budget", "kvBudget", int(0), 0),
  f("max_inflight", "maxInflight", int(0), 0),
  f("timeout", "timeoutMs", duration(true), "60s"),
  f("connect_timeout", "connectTimeoutMs", duration(false), "5s"),
  f("ttfb_timeout", "ttfbTimeoutMs", duration(false), "0s"),
  f("idle_timeout", "idleTimeoutMs", duration(false), "30s"),
  f("breaker_threshold", "breakerThreshold", int(1), 5),
  f("breaker_cooldown", "breakerCooldownMs", duration(false), "30s"),
  f("api_key", "apiKey", nullable(apiKey), null),
];

/** Keys of `discovery.worker`: a `workers[]` entry's, but `id` and `url`. */
const WORKER_TEMPLATE: readonly Field[] = WORKER.filter((fd) =>
  fd.key !== "id" && fd.key !== "url"
);

const TOP_KEYS = [...Object.keys(SECTIONS), "workers", "sync", "discovery"];

/** One environment override: the variable and the key it sets. */
export interface EnvOverride {
  /** Variable name, e.g. `ROUTER_ROUTER_CHUNK_SIZE`. */
  readonly name: string;
  /** Dotted YAML path, e.g. `router.chunk_size`. */
  readonly path: string;
}

/**
 * Every recognised environment override, long forms first then short ones, for `--help` output
 * and docs. A variable not listed here is ignored.
 */
export const ENV_OVERRIDES: readonly EnvOverride[] = [
  ...Object.entries(SECTIONS).flatMap(([section, fields]) =>
    fields.map((fd) => ({
      name: `ROUTER_${section}_${fd.key}`.toUpperCase(),
      path: `${section}.${fd.key}`,
    }))
  ),
  ...SECTIONS.router.map((fd) => ({
    name: `ROUTER_${fd.key}`.toUpperCase(),
    path: `router.${fd.key}`,
  })),
  { name: SYNC_ENV.url, path: "sync.redis.url" },
  { name: SYNC_ENV.replicaId, path: "sync.replica_id" },
];

// ---------------------------------------------------------------------------------------------
// Public API.

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
}

/**
 * Builds a configuration in code (demo, benchmarks, tests) with the YAML path's defaults and
 * checks. Workers given as plain URLs get ids `w1`, `w2`, … by position. Errors name the
 * overrides' own fields (`router.chunkSize`), except in `sync` and `discovery` (their YAML keys,
 * `sync.redis.max_len`). Sync is off and discovery static unless overridden; with a `dns` or
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

/**
 * Splits a Go-style listen address. An empty host means all interfaces: `":8080"` →
 * `{ hostname: "0.0.0.0", port: 8080 }`. IPv6 hosts are bracketed (`"[::1]:8080"`). Port 0 asks
 * the OS for a free port.
 *
 * @throws {RangeError} when `addr` is not `host:port` with a port in 0..65535.
 */
export function parseListenAddr(addr: string): { hostname: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(addr);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) {
    throw new RangeError(`invalid listen address ${JSON.stringify(addr)}, want "host:port"`);
  }
  return { hostname: m[1] ?? (m[2] || "0.0.0.0"), port };
}

// ---------------------------------------------------------------------------------------------
// Resolution.

function resolve(
  root: unknown,
  env: Record<string, string | undefined>,
  labels: Map<string, string>,
  opts: ParseOptions,
): RouterConfig {
  const errors: string[] = [];
  const label = (path: string) => labels.get(path) ?? path;
  const problem = (path: string, value: unknown, want: Expected) =>
    errors.push(`${label(path)} ${want.text}${want.reveal ? `, got ${show(value)}` : ""}`);

  const top = root ?? {};
  if (!isMapping(top)) {
    throw new ConfigError([`the document must be a mapping, got ${show(top)}`], opts.source);
  }
  for (const key of Object.keys(top)) {
    if (!TOP_KEYS.includes(key)) errors.push(`unknown key ${key}`);
  }

  const out: Record<string, unknown> = {};
  const raws: Record<string, Record<string, unknown>> = {};
  for (const [section, fields] of Object.entries(SECTIONS)) {
    const given = top[section] ?? {};
    const raw: Record<string, unknown> = {};
    raws[section] = raw;
    if (isMapping(given)) {
      Object.assign(raw, given);
      applyEnv(raw, section as SectionName, env, labels, errors);
    } else {
      problem(section, given, new Expected("must be a mapping"));
    }
    out[section] = checkMapping(
      raw as Record<string, unknown>,
      fields,
      section,
      problem,
      errors,
      opts,
    );
  }

  // Sync and discovery: checked by their own modules; discovery.worker with the workers[] table.
  const sync = resolveSyncConfig(top.sync, env, "sync");
  errors.push(...sync.errors);
  const disc = resolveDiscoveryConfig(top.discovery, "discovery");
  errors.push(...disc.errors);
  const workerRaw = isMapping(disc.value.workerRaw) ? disc.value.workerRaw : {};
  const template = checkMapping(
    workerRaw,
    WORKER_TEMPLATE,
    "discovery.worker",
    problem,
    errors,
    opts,
  );
  const discovery: DiscoveryConfig & { worker: unknown } = {
    ...disc.value,
    workerRaw: plainMillis(workerRaw),
    worker: template,
  };
  const mode = disc.value.mode;
  const dynamic = mode === "dns" || mode === "kubernetes";

  const workers: Record<string, unknown>[] = [];
  const list = top.workers;
  if (dynamic) {
    if (list !== undefined && list !== null && !(Array.isArray(list) && list.length === 0)) {
      problem(
        "workers",
        list,
        new Expected(
          `must be empty or absent when discovery.mode is ${mode} ` +
            "(workers come from discovery; their settings go under discovery.worker)",
        ),
      );
    }
  } else if (list === undefined) {
    errors.push("workers is required");
  } else if (!Array.isArray(list) || list.length === 0) {
    problem("workers", list, new Expected("must be a non-empty list"));
  } else {
    const firstById = new Map<string, number>();
    list.forEach((w, i) => {
      const path = `workers[${i}]`;
      if (!isMapping(w)) {
        problem(path, w, new Expected("must be a mapping"));
        return;
      }
      const worker = checkMapping(w, WORKER, path, problem, errors, opts);
      workers.push(worker);
      const id = worker.id;
      if (typeof id !== "string") return;
      const first = firstById.get(id);
      if (first === undefined) firstById.set(id, i);
      else problem(`${path}.id`, id, new Expected(`must be unique (also workers[${first}].id)`));
    });
  }

  // Cross-field: an admin listener on the main port would fail to bind at start-up.
  const server = out.server as Record<string, unknown>;
  const metrics = out.metrics as Record<string, unknown>;
  if (typeof metrics.addr === "string" && typeof server.addr === "string" && metrics.enabled) {
    const port = parseListenAddr(metrics.addr).port;
    if (port !== 0 && port === parseListenAddr(server.addr).port) {
      problem(
        "metrics.addr",
        metrics.addr,
        new Expected("must use a port other than server.addr's"),
      );
    }
  }

  // Keys from auth.api_keys_file join auth.api_keys. A configured file without keys is an error:
  // the router would otherwise run open while its operator believes it is protected.
  const auth = out.auth as Record<string, unknown>;
  // The file is read even when the list itself is invalid: all errors are reported together.
  if (typeof auth.apiKeysFile === "string") {
    const file = readKeysFile(auth.apiKeysFile, opts.source);
    if (typeof file === "string") {
      problem("auth.api_keys_file", auth.apiKeysFile, new Expected(file));
    } else if (Array.isArray(auth.apiKeys)) auth.apiKeys = [...new Set([...auth.apiKeys, ...file])];
  }

  // Cross-field: the strategy takes its options (only once everything it is built from is valid).
  const router = out.router as Record<string, unknown>;
  if (
    opts.createStrategy !== undefined && typeof router.strategy === "string" &&
    router.strategyOptions !== undefined && router.minMatchChunks !== undefined &&
    router.saturationInflight !== undefined
  ) {
    const options = router.strategyOptions as Record<string, number>;
    try {
      opts.createStrategy(router.strategy, {
        minMatchChunks: router.minMatchChunks as number,
        saturationInflight: router.saturationInflight as number,
        options,
      });
    } catch (err) {
      const why = errorMessage(err);
      if (Object.keys(options).length === 0) {
        problem("router.strategy", router.strategy, new Expected(`cannot be built: ${why}`));
      } else {
        const given = raws.router.strategy_options ?? options;
        problem("router.strategy_options", given, new Expected(`rejected: ${why}`));
      }
    }
  }

  if (errors.length > 0) throw new ConfigError(errors, opts.source);
  return { ...out, workers, sync: sync.value, discovery } as unknown as RouterConfig;
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

/** `m` with `Millis` values written as `"<n>ms"` strings: plain data, read back the same. */
function plainMillis(m: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(m).map(([k, v]) => [k, v instanceof Millis ? `${v.ms}ms` : v]),
  );
}

/**
 * Reads an API key file: one key per line, blank lines and `#` comments skipped. A relative path
 * is taken from the config file's directory (`source`), else from the working directory. Returns
 * the keys, or what is wrong (never quoting a key).
 */
function readKeysFile(path: string, source: string | undefined): string[] | string {
  let full = path;
  if (!path.startsWith("/") && source !== undefined && source.includes("/")) {
    full = source.slice(0, source.lastIndexOf("/") + 1) + path;
  }
  let text: string;
  try {
    text = Deno.readTextFileSync(full);
  } catch (err) {
    return `cannot be read (${errorMessage(err)})`;
  }
  const keys: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    if (!ROUTER_KEY_RE.test(line)) {
      return `line ${i + 1} must be one key of printable ASCII characters without spaces`;
    }
    keys.push(line);
  }
  return keys.length > 0 ? keys : "must hold at least one key";
}

/** Checks one mapping against its fields; returns the resolved fields that passed. */
function checkMapping(
  raw: Record<string, unknown>,
  fields: readonly Field[],
  path: string,
  problem: (path: string, value: unknown, want: Expected) => void,
  errors: string[],
  opts: ParseOptions,
): Record<string, unknown> {
  unknownKeys(raw, fields.map((fd) => fd.key), path, errors);
  const out: Record<string, unknown> = {};
  for (const fd of fields) {
    const present = Object.hasOwn(raw, fd.key);
    if (!present && fd.def === REQUIRED) {
      errors.push(`${path}.${fd.key} is required`);
      continue;
    }
    const value = present ? raw[fd.key] : fd.def;
    const result = fd.check(value, opts);
    if (result instanceof Expected) problem(`${path}.${fd.key}`, value, result);
    else out[fd.field] = result;
  }
  return out;
}

/** Sets keys of `section` from `env` in place and records which variable set each path. */
function applyEnv(
  raw: Record<string, unknown>,
  section: SectionName,
  env: Record<string, string | undefined>,
  labels: Map<string, string>,
  errors: string[],
): void {
  for (const fd of SECTIONS[section]) {
    const path = `${section}.${fd.key}`;
    const names = ENV_OVERRIDES.filter((o) => o.path === path).map((o) => o.name);
    const set = names.filter((n) => env[n] !== undefined);
    if (set.length === 0) continue;
    const [name, other] = set;
    if (other !== undefined && env[name] !== env[other]) {
      errors.push(
        `${name} and ${other} must not disagree, got ${show(env[name])} and ` +
          show(env[other]),
      );
      continue;
    }
    raw[fd.key] = fd.fromEnv ? fd.fromEnv(env[name]!) : envScalar(env[name]!);
    labels.set(path, name);
  }
}

/**
 * Reads an environment value as a YAML scalar (`8` → 8, `true` → true, `null` → null, `"x"` → x).
 * Text that YAML would read as something else (a list, a mapping, a comment) stays a string.
 */
function envScalar(text: string): unknown {
  const doc = parseDocument(text);
  return doc.errors.length === 0 && isScalar(doc.contents) ? doc.contents.value : text;
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
      errors.push(`unknown key ${path}.${name}`);
      continue;
    }
    const isMs = name.endsWith("Ms") && typeof value === "number";
    raw[fd.key] = isMs ? new Millis(value) : value;
    labels.set(`${path}.${fd.key}`, `${path}.${name}`);
  }
  return raw;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) &&
    Object.getPrototypeOf(v) === Object.prototype;
}

/** A value as it appears in messages: strings quoted, structures as short JSON. */
function show(v: unknown): string {
  if (v instanceof Millis) return String(v.ms);
  if (v === null || typeof v !== "object") return showValue(v);
  // Unlike the sections' form, a structure JSON cannot write (a cycle) is shown by its tag.
  let json: string;
  try {
    json = JSON.stringify(v);
  } catch {
    json = Object.prototype.toString.call(v);
  }
  return clip(json);
}
