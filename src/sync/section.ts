/**
 * The `sync:` section of the router config, resolved and checked here so that the config loader
 * only has to call {@linkcode resolveSyncConfig} and collect its errors. This file imports no Redis
 * client, so loading a config does not load one; the factory that starts a sync is in
 * `config.ts`.
 *
 * ```yaml
 * sync:
 *   replica_id: null          # default: $HOSTNAME (the pod name) + pid
 *   redis:
 *     url: redis://redis:6379/0   # absent or null: no sync (single replica)
 *     stream: llm-cache-router:prefix
 *     max_len: 50000          # entries Redis keeps (approximate trim)
 *     catch_up: 0s            # history a starting replica reads
 *     queue_max: 10000        # local records kept while Redis is away
 * ```
 *
 * Environment: `ROUTER_SYNC_REDIS_URL` and `ROUTER_SYNC_REPLICA_ID` override the two keys (a
 * Redis password belongs in a Secret, not in the ConfigMap).
 *
 * Messages follow the loader's form: `<path> <what is wrong>, got <value>`.
 *
 * @module
 */

import { MAX_DURATION_MS, MAX_DURATION_TEXT, parseDuration } from "../config/duration.ts";
import { mapping, show, unknownKeys } from "../config/validate.ts";
import { durationSchema, type JsonSchema, objectSchema } from "../config/json_schema.ts";

export { show };

/** Default Redis stream key. */
export const DEFAULT_STREAM = "llm-cache-router:prefix";

/** The resolved `sync:` section. */
export interface SyncConfig {
  /** Null: sync off. */
  readonly redis: {
    readonly url: string;
    readonly stream: string;
    readonly maxLen: number;
    readonly catchUpMs: number;
    readonly queueMax: number;
  } | null;
  /** Null: {@linkcode defaultReplicaId} at start. */
  readonly replicaId: string | null;
}

/** Sync off. */
export const SYNC_OFF: SyncConfig = { redis: null, replicaId: null };

/** Environment variables read by {@linkcode resolveSyncConfig}. */
export const SYNC_ENV = {
  url: "ROUTER_SYNC_REDIS_URL",
  replicaId: "ROUTER_SYNC_REPLICA_ID",
} as const;

/**
 * The keys of `sync:` as JSON Schema (draft 2020-12) for `config/router.schema.json`; the checks
 * below accept exactly these keys, with these defaults.
 */
export const SYNC_SCHEMA: JsonSchema = objectSchema({
  replica_id: {
    type: ["string", "null"],
    pattern: "^[!-~]{1,128}$",
    default: null,
    description: "Unique per replica; null = $HOSTNAME (the pod name) plus the process id. " +
      `Environment: ${SYNC_ENV.replicaId}.`,
  },
  redis: objectSchema({
    url: {
      type: ["string", "null"],
      pattern: "^rediss?://",
      default: null,
      description: "redis://[:password@]host:port[/db] or rediss://...; null = sync off. " +
        `Environment: ${SYNC_ENV.url}.`,
    },
    stream: {
      type: "string",
      minLength: 1,
      default: DEFAULT_STREAM,
      description: "Stream key; the replicas of one fleet share it.",
    },
    max_len: {
      type: "integer",
      minimum: 1,
      default: 50_000,
      description: "Records Redis keeps (approximate trim): covers the longest outage replicas " +
        "catch up from.",
    },
    catch_up: {
      ...durationSchema(),
      default: "0s",
      description: "History a starting replica reads to warm its trees (0s = new records only).",
    },
    queue_max: {
      type: "integer",
      minimum: 1,
      default: 10_000,
      description: "Records a replica keeps while Redis is away (the oldest are dropped first).",
    },
  }),
}, {
  description: "Replica sync: several router replicas share their routing records through a " +
    "Redis stream (ADR 0004). Off while redis.url is null. Changing this section needs a " +
    "restart; all replicas need the same chunk_size.",
});

const KEYS = Object.keys(SYNC_SCHEMA.properties as object);
const REDIS_KEYS = Object.keys(
  (SYNC_SCHEMA.properties as Record<string, JsonSchema>).redis.properties as object,
);

type Env = Record<string, string | undefined>;

/** Checks and resolves the raw `sync` value (absent = off); every problem is returned. */
export function resolveSyncConfig(
  raw: unknown,
  env: Env = {},
  path = "sync",
): { value: SyncConfig; errors: string[] } {
  const errors: string[] = [];
  const section = mapping(raw ?? {}, path, errors);
  if (section === null) return { value: SYNC_OFF, errors };
  unknownKeys(section, KEYS, path, errors);

  let replicaId: string | null = null;
  const rid = env[SYNC_ENV.replicaId] ?? section.replica_id ?? null;
  const ridPath = env[SYNC_ENV.replicaId] !== undefined ? SYNC_ENV.replicaId : `${path}.replica_id`;
  if (rid !== null) {
    if (typeof rid === "string" && /^[\x21-\x7e]{1,128}$/.test(rid)) replicaId = rid;
    else errors.push(`${ridPath} must be 1 to 128 printable characters or null, got ${show(rid)}`);
  }

  const rpath = `${path}.redis`;
  const redis = mapping(section.redis ?? {}, rpath, errors) ?? {};
  unknownKeys(redis, REDIS_KEYS, rpath, errors);
  const url = env[SYNC_ENV.url] ?? redis.url ?? null;
  const urlPath = env[SYNC_ENV.url] !== undefined ? SYNC_ENV.url : `${rpath}.url`;
  if (url === null || url === "") {
    return { value: { redis: null, replicaId }, errors };
  }
  if (!isRedisUrl(url)) {
    // The value may hold a password: not shown.
    errors.push(`${urlPath} must be a redis:// or rediss:// URL`);
  }
  const stream = redis.stream ?? DEFAULT_STREAM;
  if (typeof stream !== "string" || stream === "") {
    errors.push(`${rpath}.stream must be a non-empty string, got ${show(stream)}`);
  }
  const maxLen = int(redis.max_len ?? 50_000, 1, `${rpath}.max_len`, errors);
  const queueMax = int(redis.queue_max ?? 10_000, 1, `${rpath}.queue_max`, errors);
  let catchUpMs = 0;
  const cu = redis.catch_up ?? 0;
  try {
    if (typeof cu !== "string" && typeof cu !== "number") throw new TypeError();
    catchUpMs = parseDuration(cu);
  } catch {
    errors.push(`${rpath}.catch_up must be a duration such as "30s" or "5m", got ${show(cu)}`);
  }
  if (catchUpMs > MAX_DURATION_MS) {
    errors.push(`${rpath}.catch_up must be ${MAX_DURATION_TEXT}, got ${show(cu)}`);
  }
  return {
    value: {
      redis: {
        url: url as string,
        stream: stream as string,
        maxLen,
        catchUpMs,
        queueMax,
      },
      replicaId,
    },
    errors,
  };
}

function isRedisUrl(v: unknown): boolean {
  if (typeof v !== "string") return false;
  try {
    const u = new URL(v);
    return (u.protocol === "redis:" || u.protocol === "rediss:") && u.hostname !== "";
  } catch {
    return false;
  }
}

function int(v: unknown, min: number, path: string, errors: string[]): number {
  if (Number.isSafeInteger(v) && (v as number) >= min) return v as number;
  errors.push(`${path} must be an integer >= ${min}, got ${show(v)}`);
  return min;
}
