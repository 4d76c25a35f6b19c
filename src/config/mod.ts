/**
 * Router configuration: the resolved types, the YAML loader with environment overrides, and the
 * unit parsers it uses.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./mod.ts";
 * const config = await loadConfig("config/router.yaml");
 * console.log(config.router.strategy, config.workers.length);
 * ```
 *
 * @module
 */

export type {
  DiscoveryConfig,
  FlowConfig,
  LogLevel,
  ParseOptions,
  RouterConfig,
  SyncConfig,
  WorkerConfig,
  WorkerTemplate,
} from "./types.ts";
export { configFromWorkers, loadConfig, parseConfig } from "./load.ts";
export type { ConfigOverrides, WorkerInput } from "./load.ts";
export { ConfigError } from "./config_error.ts";
export { ENV_OVERRIDES } from "./env.ts";
export type { EnvOverride } from "./env.ts";
export { parseListenAddr } from "./checks.ts";
export { parseByteSize, parseDuration } from "./duration.ts";
export { restartKeys } from "./restart.ts";
