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
  LogLevel,
  RouterConfig,
  SyncConfig,
  WorkerConfig,
  WorkerTemplate,
} from "./types.ts";
export {
  ConfigError,
  configFromWorkers,
  ENV_OVERRIDES,
  loadConfig,
  parseConfig,
  parseListenAddr,
} from "./load.ts";
export type { ConfigOverrides, EnvOverride, ParseOptions, WorkerInput } from "./load.ts";
export { parseByteSize, parseDuration } from "./duration.ts";
export { restartKeys } from "./restart.ts";
