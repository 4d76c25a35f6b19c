/**
 * Router API keys: when any key is configured (`auth.api_keys`, `ROUTER_AUTH_API_KEYS`,
 * `auth.api_keys_file`), a request must carry `Authorization: Bearer <key>` with one of them, or
 * it is answered 401 in OpenAI's shape. `/healthz` and `/readyz` stay open (load balancers and
 * orchestrators probe them without credentials); `/metrics` is open unless `auth.protect_metrics`.
 *
 * The comparison takes the same time whatever the presented token shares with a key: every key is
 * compared in full, over its own length, without an early exit, so response timing tells an
 * attacker nothing about how close a guess came. (It does depend on the keys' lengths, which the
 * attacker cannot vary and which is no secret worth a hash per request.)
 *
 * Cost: nothing when auth is off; one header read and a pass over each key when it is on.
 *
 * @module
 */

import { type ErrorReply, errorReply } from "../util/errors.ts";

/** Paths that never need a key. */
const OPEN_PATHS = new Set(["/healthz", "/readyz"]);

/** Checks bearer tokens against the configured keys. */
export class ApiKeyAuth {
  readonly #keys: readonly string[];
  readonly #protectMetrics: boolean;

  constructor(keys: readonly string[], protectMetrics: boolean) {
    this.#keys = keys;
    this.#protectMetrics = protectMetrics;
  }

  /** Whether any key is configured. */
  get enabled(): boolean {
    return this.#keys.length > 0;
  }

  /** Whether a request for `path` needs a key. */
  guards(path: string): boolean {
    if (this.#keys.length === 0 || OPEN_PATHS.has(path)) return false;
    return path !== "/metrics" || this.#protectMetrics;
  }

  /** Whether the `Authorization` header value carries one of the keys. */
  accepts(authorization: string | null): boolean {
    if (authorization === null) return false;
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (m === null) return false;
    const token = m[1];
    let ok = 0;
    for (const key of this.#keys) ok |= equalsFixedTime(token, key);
    return ok === 1;
  }

  /** The 401 answer, in OpenAI's shape. */
  static unauthorized(): ErrorReply {
    return errorReply(
      "unauthorized",
      "Missing or invalid API key: send Authorization: Bearer <key>",
      {
        code: "invalid_api_key",
        headers: [["www-authenticate", 'Bearer realm="llm-cache-router"']],
      },
    );
  }
}

/**
 * 1 when `given` equals `key`, else 0, in time that depends on `key.length` only: the loop runs
 * over the key, and a length mismatch is folded into the result instead of returning early.
 */
export function equalsFixedTime(given: string, key: string): number {
  let diff = given.length ^ key.length;
  for (let i = 0; i < key.length; i++) {
    // Past the end of `given`, charCodeAt is NaN, and NaN | 0 is 0: the length term decides.
    diff |= (given.charCodeAt(i) | 0) ^ key.charCodeAt(i);
  }
  return diff === 0 ? 1 : 0;
}
