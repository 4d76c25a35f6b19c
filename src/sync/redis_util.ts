/**
 * Small Redis helpers of the sync: a URL fit for logs, the default replica id, and closing an
 * ioredis client for good.
 *
 * @module
 */

import type { Redis } from "ioredis";

/** Hides the password of a Redis URL for logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable url)";
  }
}

/** A replica id that is unique per process: `$HOSTNAME` (the pod name in Kubernetes) + pid. */
export function defaultReplicaId(): string {
  let host = "router";
  try {
    host = Deno.env.get("HOSTNAME") || Deno.hostname();
  } catch { /* no env or sys permission: keep the fallback */ }
  const rand = crypto.getRandomValues(new Uint16Array(1))[0].toString(16).padStart(4, "0");
  return `${host}-${Deno.pid}-${rand}`;
}

/** Disconnects `c` and waits (at most 1 s) until its socket, if any, is closed. */
export function closeClient(c: Redis): Promise<void> {
  if (c.status === "end") return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, 1000);
    c.once("end", done);
    // Between reconnect attempts there is no socket: nothing will report its closing.
    const live = c.status === "connecting" || c.status === "connect" || c.status === "ready";
    c.disconnect();
    if (!live || (c.status as string) === "end") done();
    function done() {
      clearTimeout(timer);
      resolve();
    }
  });
}
