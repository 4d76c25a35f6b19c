/**
 * llm-cache-router entry point: loads the YAML config, starts the router, and drains gracefully on
 * SIGINT/SIGTERM. Prints `listening on http://HOST:PORT` as its first line.
 *
 * Usage: deno run --allow-net --allow-read --allow-env cmd/router.ts --config config/router.yaml
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../src/config/mod.ts";
import { STRATEGY_NAMES } from "../src/strategies/mod.ts";
import { startRouter } from "../src/router/mod.ts";
import { VERSION } from "../src/version.ts";

const HELP = `llm-cache-router ${VERSION}: a cache-aware router for OpenAI-compatible LLM servers

Usage:
  router --config FILE [--port N]

Options:
  -c, --config FILE   YAML config (default: config/router.yaml)
  -p, --port N        listen port, overriding server.addr (0 = any free port)
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

  const stop = Promise.withResolvers<string>();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => stop.resolve(sig));
  }
  const sig = await stop.promise;
  running.router.logger.info("shutting down", { signal: sig, inflight: running.router.inflight });
  await running.shutdown();
  running.router.logger.info("stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
