/**
 * llm-cache-router entry point: loads the YAML config, starts the router, drains gracefully on
 * SIGINT/SIGTERM (exit 0), and reloads the config file on SIGHUP: a valid file replaces the config
 * in force (see `Router.reload`), an invalid one is refused with its errors logged and the old
 * config stays. Prints `listening on http://HOST:PORT` as its first line.
 *
 * Usage: deno run --allow-net --allow-read --allow-env cmd/router.ts --config config/router.yaml
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../src/config/mod.ts";
import { STRATEGY_NAMES } from "../src/strategies/mod.ts";
import { type Router, startRouter } from "../src/router/mod.ts";
import { VERSION } from "../src/version.ts";

const HELP = `llm-cache-router ${VERSION}: a cache-aware router for OpenAI-compatible LLM servers

Usage:
  router --config FILE [--port N]

Options:
  -c, --config FILE   YAML config (default: config/router.yaml)
  -p, --port N        listen port, overriding server.addr (0 = any free port)

Signals: SIGTERM/SIGINT drain in-flight requests (up to server.shutdown_timeout) and exit 0;
SIGHUP reloads the config file (an invalid file is refused and the old config stays).
  -v, --version       print the version and exit
  -h, --help          print this help and exit

Environment overrides: ROUTER_STRATEGY, ROUTER_SERVER_ADDR, ROUTER_<SECTION>_<KEY>, ...
`;

/** Runs the router CLI; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        config: { type: "string", short: "c", default: "config/router.yaml" },
        port: { type: "string", short: "p" },
        version: { type: "boolean", short: "v" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
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
    port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      console.error(`error: --port must be an integer in 0..65535, got "${values.port}"`);
      return 2;
    }
  }
  let config;
  try {
    config = await loadConfig(values.config!, Deno.env.toObject(), { strategies: STRATEGY_NAMES });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`error: invalid config ${values.config}:`);
      for (const e of err.errors) console.error(`  - ${e}`);
    } else console.error(`error: ${(err as Error).message}`);
    return 1;
  }

  const running = await startRouter(config, { port });
  console.log(`listening on ${running.url}`);
  running.router.logger.info("router started", {
    version: VERSION,
    url: running.url,
    admin_url: running.adminUrl,
    strategy: config.router.strategy,
    workers: config.workers.map((w) => `${w.id}=${w.url}`),
  });

  const configPath = values.config!;
  const reload = () => reloadConfig(running.router, configPath);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGHUP", reload);

  const stop = Promise.withResolvers<string>();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => stop.resolve(sig));
  }
  const sig = await stop.promise;
  if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGHUP", reload);
  running.router.logger.info("shutting down", { signal: sig, inflight: running.router.inflight });
  await running.shutdown();
  running.router.logger.info("stopped");
  return 0;
}

/**
 * Re-reads `path` (with the environment's overrides, as at start-up) and applies it. Never
 * throws: an invalid file or a failed reload is logged and the config in force stays.
 */
export async function reloadConfig(router: Router, path: string): Promise<boolean> {
  const logger = router.logger;
  let next;
  try {
    next = await loadConfig(path, Deno.env.toObject(), { strategies: STRATEGY_NAMES });
  } catch (err) {
    const errors = err instanceof ConfigError ? err.errors : [(err as Error).message];
    logger.error("config reload refused; keeping the config in force", { path, errors });
    return false;
  }
  try {
    const s = await router.reload(next);
    logger.info("config reloaded", {
      path,
      strategy: s.strategy,
      added: s.added,
      removed: s.removed,
      kept: s.kept,
      reset: s.reset,
    });
    if (s.needsRestart.length > 0) {
      logger.warn("config changes that need a restart to apply", { keys: s.needsRestart });
    }
    return true;
  } catch (err) {
    logger.error("config reload failed; keeping the config in force", {
      path,
      errors: [(err as Error).message],
    });
    return false;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
