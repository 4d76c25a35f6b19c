/**
 * Resolution: a raw document (YAML turned into plain values, or `configFromWorkers`' overrides in
 * raw form) plus environment overrides → the fully-resolved `RouterConfig`, or one `ConfigError`
 * with every problem.
 *
 * Rules:
 * - Every key is checked by its row of the field tables (`fields.ts`); absent keys take the row's
 *   default, which goes through the same check. Unknown keys are errors at every level, with the
 *   closest known key when one is close. A key set to `null` is an error unless the key is
 *   nullable; a whole section may be empty (`metrics:` with every key commented out).
 * - The `sync`, `discovery` and `flow` sections are checked by their own modules
 *   (`src/sync/section.ts`, `src/discovery/section.ts`, `src/flow/section.ts`), with the same
 *   message form; `discovery.worker` is checked here
 *   with the `workers[]` table (every key but `id` and `url`).
 * - `workers` is required and non-empty with `discovery.mode: static` (the default); with `dns`
 *   or `kubernetes` it must be empty or absent (the workers come from discovery).
 * - Cross-field: `metrics.addr` must not share `server.addr`'s port; `auth.api_keys_file`'s keys
 *   join `auth.api_keys`; with `ParseOptions.createStrategy` the strategy is built once with its
 *   parameters and `router.strategy_options`, so an option it rejects is a config error.
 *
 * @module
 */

import { resolveDiscoveryConfig } from "../discovery/section.ts";
import { resolveFlowConfig } from "../flow/section.ts";
import { resolveSyncConfig } from "../sync/section.ts";
import { resolveTokenizersConfig } from "../tokenize/section.ts";
import { errorMessage } from "../util/errors.ts";
import { Expected, isMapping, Millis, parseListenAddr, ROUTER_KEY_RE, show } from "./checks.ts";
import { ConfigError } from "./config_error.ts";
import { applyEnv, mistypedEnv } from "./env.ts";
import {
  type Field,
  REQUIRED,
  type SectionName,
  SECTIONS,
  TOP_KEYS,
  WORKER,
  WORKER_TEMPLATE,
} from "./fields.ts";
import type { ParseOptions, RouterConfig } from "./types.ts";
import { unknownKeys } from "./validate.ts";

/** Records `<path> <what is wrong>[, got <value>][hint]`. */
type Problem = (path: string, value: unknown, want: Expected) => void;

/**
 * Resolves `root` with `env`'s overrides. `labels` maps a YAML path to the name errors give it
 * (an environment variable, or a `configFromWorkers` field).
 *
 * @throws {ConfigError} with every problem found.
 */
export function resolve(
  root: unknown,
  env: Record<string, string | undefined>,
  labels: Map<string, string>,
  opts: ParseOptions,
): RouterConfig {
  const errors: string[] = [];
  const label = (path: string) => labels.get(path) ?? path;
  const problem: Problem = (path, value, want) =>
    errors.push(
      `${label(path)} ${want.text}${want.reveal ? `, got ${show(value)}` : ""}${want.hint}`,
    );

  const top = root ?? {};
  if (!isMapping(top)) {
    throw new ConfigError([`the document must be a mapping, got ${show(top)}`], opts.source);
  }
  unknownKeys(top, TOP_KEYS, "", errors);
  errors.push(...mistypedEnv(env, opts));

  const { out, raws } = resolveSections(top, env, labels, problem, errors, opts);

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
  const discovery = { ...disc.value, workerRaw: plainMillis(workerRaw), worker: template };
  const workers = resolveWorkers(top.workers, disc.value.mode, problem, errors, opts);
  const source = opts.source;
  const baseDir = source !== undefined && source.includes("/")
    ? source.slice(0, source.lastIndexOf("/"))
    : null;
  const tokenizers = resolveTokenizersConfig(top.tokenizers, baseDir);
  errors.push(...tokenizers.errors);
  const flow = resolveFlowConfig(top.flow, "flow");
  errors.push(...flow.errors);

  checkListeners(out, problem);
  addKeysFile(out, problem, opts);
  checkStrategy(out, raws, problem, opts);

  if (errors.length > 0) throw new ConfigError(errors, opts.source);
  return {
    ...out,
    workers,
    sync: sync.value,
    discovery,
    tokenizers: tokenizers.value,
    flow: flow.value,
  } as unknown as RouterConfig;
}

/** The scalar sections, environment overrides applied; `raws`: each section as given. */
function resolveSections(
  top: Record<string, unknown>,
  env: Record<string, string | undefined>,
  labels: Map<string, string>,
  problem: Problem,
  errors: string[],
  opts: ParseOptions,
) {
  const out: Record<string, Record<string, unknown>> = {};
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
    out[section] = checkMapping(raw, fields, section, problem, errors, opts);
  }
  return { out, raws };
}

/** The `workers` list: required and non-empty in static mode, empty with dns or kubernetes. */
function resolveWorkers(
  list: unknown,
  mode: string,
  problem: Problem,
  errors: string[],
  opts: ParseOptions,
): Record<string, unknown>[] {
  const workers: Record<string, unknown>[] = [];
  if (mode === "dns" || mode === "kubernetes") {
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
  return workers;
}

/** An admin listener on the main port would fail to bind at start-up. */
function checkListeners(out: Record<string, Record<string, unknown>>, problem: Problem): void {
  const { server, metrics } = out;
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
}

/**
 * Keys from auth.api_keys_file join auth.api_keys. A configured file without keys is an error:
 * the router would otherwise run open while its operator believes it is protected. The file is
 * read even when the list itself is invalid: all errors are reported together.
 */
function addKeysFile(
  out: Record<string, Record<string, unknown>>,
  problem: Problem,
  opts: ParseOptions,
): void {
  const auth = out.auth;
  if (typeof auth.apiKeysFile !== "string") return;
  const file = readKeysFile(auth.apiKeysFile, opts.source);
  if (typeof file === "string") {
    problem("auth.api_keys_file", auth.apiKeysFile, new Expected(file));
  } else if (Array.isArray(auth.apiKeys)) auth.apiKeys = [...new Set([...auth.apiKeys, ...file])];
}

/** The strategy takes its options (tried only once everything it is built from is valid). */
function checkStrategy(
  out: Record<string, Record<string, unknown>>,
  raws: Record<string, Record<string, unknown>>,
  problem: Problem,
  opts: ParseOptions,
): void {
  const router = out.router;
  if (
    opts.createStrategy === undefined || typeof router.strategy !== "string" ||
    router.strategyOptions === undefined || router.minMatchChunks === undefined ||
    router.saturationInflight === undefined
  ) return;
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
  problem: Problem,
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

/** `m` with `Millis` values written as `"<n>ms"` strings: plain data, read back the same. */
export function plainMillis(m: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(m).map(([k, v]) => [k, v instanceof Millis ? `${v.ms}ms` : v]),
  );
}
