/**
 * The router: request handler, worker pool, routing step and server lifecycle.
 * @module
 */
export { type ClientInfo, readBody, Router, type RouterDeps } from "./router.ts";
export { type RunningRouter, type StartOptions, startRouter } from "./server.ts";
export { Backend } from "./pool.ts";
export {
  candidatesFor,
  decide,
  recordDecision,
  type RouteInput,
  type RouteTarget,
} from "./select.ts";
export { Logger, silentLogger } from "./logger.ts";
