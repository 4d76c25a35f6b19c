/**
 * Test support for replica sync and discovery: whether `redis-server` is installed (the tests skip with a
 * clear message when it is not), and bounded polling.
 *
 * @module
 */

import { findRedisServer } from "./redis_server.ts";

/** `redis-server --version`, or null when the binary is absent. */
export const redisVersion = await findRedisServer();

/** Why the Redis tests are skipped, or null when they run. */
export const redisSkipReason = redisVersion === null
  ? "redis-server not found: install Debian's redis-server package " +
    "(apt-get update && apt-get install -y redis-server) or set REDIS_SERVER; skipping Redis sync tests"
  : null;

if (redisSkipReason !== null) console.warn(`warning: ${redisSkipReason}`);

/** Polls `cond` every 5 ms; throws with `what` when it does not hold within `ms`. */
export async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
