/**
 * llm-cache-router entry point: loads the YAML config, starts the router, drains gracefully on
 * SIGINT/SIGTERM (exit 0), and reloads the config file on SIGHUP: a valid file replaces the config
 * in force (see `Router.reload`), an invalid one is refused with its errors logged and the old
 * config stays. Prints `listening on http://HOST:PORT` as its first line.
 *
 * Around the router it runs, when configured, the Redis replica sync (`sync.redis.url`: the
 * replicas share their routing records, ADR 0004) and a worker discovery (`discovery.mode` dns or
 * kubernetes): each change of the discovered list goes through `Router.reload` like a config
 * reload, and on SIGHUP the discovered list replaces the file's (empty) one. Reloads of either
 * kind run one at a time, each on top of the config the previous one left. Shutdown: discovery
 * stops, the router drains, then the sync writes what it still holds and closes.
 *
 * Usage: deno run --allow-net --allow-read --allow-env cmd/router.ts --config config/router.yaml
 *
 * @module
 */

import {
  ConfigError,
  loadConfig,
  type ParseOptions,
  restartKeys,
  type RouterConfig,
} from "../src/config/mod.ts";
import {
  createDiscovery,
  type DiscoveredWorker,
  type Discovery,
  withDiscoveredWorkers,
} from "../src/discovery/mod.ts";
import { createStrategy, STRATEGY_NAMES } from "../src/strategies/mod.ts";
import { type Router, type RunningRouter, startRouter } from "../src/router/mod.ts";
import { errorMessage } from "../src/util/errors.ts";
import {
  createPrefixSync,
  type PrefixSync,
  redactRedisUrl,
  registerSyncMetrics,
  type SyncLogger,
} from "../src/sync/mod.ts";
import { flagHelp, type FlagTable, parseFlags } from "../src/util/cli_flags.ts";
import { VERSION } from "../src/version.ts";

/** The router's flags (the help lists them from here). */
export const FLAGS = {
  config: {
    type: "string",
    short: "c",
    value: "FILE",
    default: "config/router.yaml",
    help: "YAML config",
  },
  port: {
    type: "string",
    short: "p",
    value: "N",
    shown: "the port of server.addr",
    help: "listen port, overriding server.addr (0 = any free port)",
  },
  version: { type: "boolean", short: "v", default: false, help: "print the version and exit" },
  help: { type: "boolean", short: "h", default: false, help: "print this help and exit" },
} as const satisfies FlagTable;

const HELP = `llm-cache-router ${VERSION}: a cache-aware router for OpenAI-compatible LLM servers

Usage:
  router --config FILE [--port N]

Options:
${flagHelp(FLAGS)}

Signals: SIGTERM drains (server.drain_delay: /readyz says 503, requests are still served), then
in-flight requests finish (up to server.shutdown_timeout) and the router exits 0; SIGINT skips
the drain;
SIGHUP reloads the config file (an invalid file is refused and the old config stays).

Environment overrides: ROUTER_STRATEGY, ROUTER_SERVER_ADDR, ROUTER_<SECTION>_<KEY>, ...,
ROUTER_SYNC_REDIS_URL, ROUTER_SYNC_REPLICA_ID
`;

/** How configs are checked here: registry names, and the strategy built with its options. */
const PARSE: ParseOptions = { strategies: STRATEGY_NAMES, createStrategy };

/** What a reload needs besides the router: the running discovery and sync, and the reload queue. */
export interface ReloadContext {
  /** The running discovery; a `dns` or `kubernetes` one supplies the workers on reload. */
  readonly discovery?: Discovery | null;
  /** Re-reads the router's workers after each reload. */
  readonly sync?: PrefixSync | null;
  /** Runs reloads one at a time; default: at once. */
  readonly serial?: <T>(fn: () => Promise<T>) => Promise<T>;
}

/** Runs the router CLI; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    values = parseFlags(FLAGS, args);
  } catch (err) {
    console.error(`error: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.version) {
    console.log(VERSION);
    return 0;
  }
  let port: number | undefined;
  if (values.port !== undefined) {
    port = values.port.trim() === "" ? NaN : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      console.error(`error: --port must be an integer in 0..65535, got "${values.port}"`);
      return 2;
    }
  }
  let config: RouterConfig;
  try {
    config = await loadConfig(values.config!, Deno.env.toObject(), PARSE);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`error: invalid config ${values.config}:`);
      for (const e of err.errors) console.error(`  - ${e}`);
    } else console.error(`error: ${(err as Error).message}`);
    return 1;
  }

  // Signals first: Deno sets its signal machinery up lazily, and if the descriptors are already
  // exhausted by then (a flood of client connections), setting it up later panics.
  const stop = Promise.withResolvers<"SIGINT" | "SIGTERM">();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => stop.resolve(sig));
  }

  let running: RunningRouter;
  try {
    running = await startRouter(config, { port });
  } catch (err) {
    console.error(`error: ${errorMessage(err)}`);
    return 1;
  }
  console.log(`listening on ${running.url}`);
  const router = running.router;
  // The router's logger is replaced when a reload changes the level or format.
  const log: SyncLogger = {
    debug: (msg, fields) => router.logger.debug(msg, fields),
    info: (msg, fields) => router.logger.info(msg, fields),
    warn: (msg, fields) => router.logger.warn(msg, fields),
    error: (msg, fields) => router.logger.error(msg, fields),
  };

  // Precise mode learns what each engine holds from the engine itself: every replica subscribes,
  // and there is nothing to share through Redis.
  if (config.router.index === "precise" && config.sync.redis !== null) {
    router.logger.warn("sync.redis is ignored with router.index: precise", {});
  }
  const sync = config.router.index === "precise" ? null : createPrefixSync(config.sync, router, {
    chunkSize: config.router.chunkSize,
    logger: log,
    // With discovery the workers are not known yet: catching up now would ignore every record.
    start: config.discovery.mode === "static",
  });
  if (sync !== null) registerSyncMetrics(router.metrics.registry, () => sync.stats());
  const discovery = createDiscovery(config.discovery, {
    staticWorkers: config.workers,
    logger: log,
  });
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn);
    queue = run.catch(() => {});
    return run;
  };
  const ctx: ReloadContext = { discovery, sync, serial };

  router.logger.info("router started", {
    version: VERSION,
    url: running.url,
    admin_url: running.adminUrl,
    strategy: config.router.strategy,
    workers: config.workers.map((w) => `${w.id}=${w.url}`),
    discovery: config.discovery.mode,
    sync: config.sync.redis === null ? null : redactRedisUrl(config.sync.redis.url),
    replica: sync?.replicaId ?? null,
  });

  const configPath = values.config!;
  const reload = () => reloadConfig(router, configPath, ctx);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGHUP", reload);

  if (discovery.kind !== "static") {
    // Not awaited: a discovery that cannot look yet retries on its own, and signals must work.
    // The sync starts once the first look was applied (or failed), so its catch-up finds the
    // discovered workers.
    discovery.start((workers) => void applyDiscovered(router, workers, ctx))
      .catch((err) => log.error("worker discovery failed to start", { error: String(err) }))
      .then(() => queue)
      .finally(() => sync?.start());
  }

  const sig = await stop.promise;
  if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGHUP", reload);
  router.logger.info("shutting down", { signal: sig, inflight: router.inflight });
  // Readiness flips before anything is awaited (a discovery watch or a reload may take a while).
  if (sig === "SIGTERM") router.drain();
  await discovery.stop();
  await queue;
  // SIGTERM (an orchestrator) drains first: /readyz says 503 while requests are still served.
  await running.shutdown({
    drainDelayMs: sig === "SIGTERM" ? router.config.server.drainDelayMs : 0,
  });
  await sync?.stop();
  router.logger.info("stopped");
  return 0;
}

/**
 * Applies a discovered worker list: the config in force with its workers replaced (each with the
 * `discovery.worker` settings), through `Router.reload`, then the sync re-reads the workers. Never
 * throws; returns whether it applied.
 */
export async function applyDiscovered(
  router: Router,
  workers: readonly DiscoveredWorker[],
  ctx: ReloadContext = {},
): Promise<boolean> {
  const serial = ctx.serial ?? ((fn) => fn());
  try {
    return await serial(async () => {
      const current = router.config;
      const s = await router.reload(
        withDiscoveredWorkers(current, workers, current.discovery.worker),
      );
      ctx.sync?.refresh();
      router.logger.info("discovered workers applied", {
        source: ctx.discovery?.kind ?? current.discovery.mode,
        workers: workers.map((w) => `${w.id}=${w.url}`),
        added: s.added,
        removed: s.removed,
        kept: s.kept,
        reset: s.reset,
      });
      return true;
    });
  } catch (err) {
    router.logger.error("applying discovered workers failed; keeping the workers in force", {
      error: (err as Error).message,
    });
    return false;
  }
}

/**
 * Re-reads `path` (with the environment's overrides, as at start-up) and applies it. With a
 * running `dns` or `kubernetes` discovery, its current list replaces the file's workers. Never
 * throws: an invalid file or a failed reload is logged and the config in force stays.
 */
export async function reloadConfig(
  router: Router,
  path: string,
  ctx: ReloadContext = {},
): Promise<boolean> {
  const logger = router.logger;
  let loaded: RouterConfig;
  try {
    loaded = await loadConfig(path, Deno.env.toObject(), PARSE);
  } catch (err) {
    const errors = err instanceof ConfigError ? err.errors : [(err as Error).message];
    logger.error("config reload refused; keeping the config in force", { path, errors });
    return false;
  }
  const serial = ctx.serial ?? ((fn) => fn());
  try {
    return await serial(async () => {
      const prev = router.config;
      let next = loaded;
      const discovery = ctx.discovery;
      if (discovery && discovery.kind !== "static") {
        // The running discovery owns the worker list until a restart.
        next = withDiscoveredWorkers(next, discovery.current(), next.discovery.worker);
      } else if (next.discovery.mode !== "static") {
        // A switch to discovery needs a restart (listed below); keep the workers in force.
        next = { ...next, workers: prev.workers };
      }
      const s = await router.reload(next);
      ctx.sync?.refresh();
      const needsRestart = [...new Set([...s.needsRestart, ...restartKeys(prev, next)])];
      router.logger.info("config reloaded", {
        path,
        strategy: s.strategy,
        added: s.added,
        removed: s.removed,
        kept: s.kept,
        reset: s.reset,
      });
      if (needsRestart.length > 0) {
        router.logger.warn("config changes that need a restart to apply", { keys: needsRestart });
      }
      return true;
    });
  } catch (err) {
    logger.error("config reload failed; keeping the config in force", {
      path,
      errors: [(err as Error).message],
    });
    return false;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
