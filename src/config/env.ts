/**
 * Environment overrides, applied after the YAML and checked like it.
 *
 * Rules:
 * - `ROUTER_<SECTION>_<KEY>` (upper case) sets `<section>.<key>` for every key of the field
 *   tables' sections (server, router, health, logging, metrics, auth); router keys also have a
 *   short form `ROUTER_<KEY>` (`ROUTER_STRATEGY`). Sync has its two (`ROUTER_SYNC_REDIS_URL`,
 *   `ROUTER_SYNC_REPLICA_ID`, read by `src/sync/section.ts`); discovery and workers have none.
 * - A value is read as a YAML scalar (`8`, `true`, `null`, `"quoted"`) unless its field has its
 *   own reader (`strategy_options`: a YAML flow mapping; `api_keys`: a comma list). Errors name
 *   the variable. Setting both forms to different values is an error.
 * - A `ROUTER_*` variable that is not an override but almost spells one is an error that names the
 *   override (`ROUTER_HEALTH_INTERVALL`: did you mean `ROUTER_HEALTH_INTERVAL`?); a typo would
 *   otherwise be silently ignored. "Almost": compared without case and `_`, past the `ROUTER_`
 *   prefix, within a distance of a quarter of that length, at most 3 (`suggest.ts`), so
 *   `ROUTER_FOO` or `ROUTER_CONFIG` stay ignored. Never a typo: `ROUTER_CONFIG` and the entry
 *   point's own (`ParseOptions.ownEnv`), and the variables Kubernetes sets for a Service named
 *   `router` (`ROUTER_SERVICE_HOST`, `ROUTER_PORT_8080_TCP`, ...).
 *
 * @module
 */

import { SYNC_ENV } from "../sync/section.ts";
import { envScalar, show } from "./checks.ts";
import { type SectionName, SECTIONS } from "./fields.ts";
import { closest, normalName } from "./suggest.ts";
import type { ParseOptions } from "./types.ts";

/** One environment override: the variable and the key it sets. */
export interface EnvOverride {
  /** Variable name, e.g. `ROUTER_ROUTER_CHUNK_SIZE`. */
  readonly name: string;
  /** Dotted YAML path, e.g. `router.chunk_size`. */
  readonly path: string;
}

/**
 * Every recognised environment override, long forms first then short ones, for `--help` output
 * and docs. Another `ROUTER_*` variable is ignored, unless it almost spells one of these.
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

/** Variables with the prefix that entry points read themselves. */
const ENTRY_POINT_ENV: readonly string[] = ["ROUTER_CONFIG"];

/** Kubernetes' service links for a Service named `router` (`enableServiceLinks`, on by default). */
const SERVICE_LINK =
  /^ROUTER_(?:SERVICE_HOST|SERVICE_PORT(?:_\w+)?|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:ADDR|PORT|PROTO))?)?)$/;

const PREFIX = "ROUTER_";
const KNOWN = new Set(ENV_OVERRIDES.map((o) => o.name));
/** The overrides' names past the prefix, for comparison. */
const SUFFIXES = ENV_OVERRIDES.map((o) => o.name.slice(PREFIX.length));

/**
 * One error per `ROUTER_*` variable of `env` that is no override but almost spells one, naming
 * the override; in `env`'s order.
 */
export function mistypedEnv(
  env: Record<string, string | undefined>,
  opts: ParseOptions,
): string[] {
  const errors: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || KNOWN.has(name)) continue;
    if (!name.toUpperCase().startsWith(PREFIX)) continue;
    if (ENTRY_POINT_ENV.includes(name) || opts.ownEnv?.includes(name)) continue;
    if (SERVICE_LINK.test(name)) continue;
    const rest = name.slice(PREFIX.length);
    const limit = Math.min(3, Math.floor(normalName(rest).length / 4));
    const near = closest(rest, SUFFIXES, limit);
    if (near !== undefined) {
      errors.push(`unknown variable ${name}, did you mean ${PREFIX}${near}?`);
    }
  }
  return errors;
}

/** Sets keys of `section` from `env` in place and records which variable set each path. */
export function applyEnv(
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
