/**
 * The endpoint table: one row per path the router serves. A proxied row says how the routing key
 * comes from the body, whether answers may stream and what may be retried; a local row names the
 * router's own handler. Adding an endpoint is one row here plus, where needed, one routing-key
 * function in `src/prefix/routing_text.ts`.
 *
 * Retry rules (what `attempt` failures another worker may take over, always only while no byte
 * reached the client):
 * - `before-first-byte`: connect failures, a status ≥ 500, and a body that broke or timed out
 *   before its first byte. For generation endpoints, whose work is wasted but harmless when run
 *   twice.
 * - `connect-only`: only failures where the worker cannot have started the request.
 *
 * @module
 */

import type { RequestKind } from "../prefix/mod.ts";

/** Which failures of an attempt may be retried on another worker. */
export type RetryRule = "before-first-byte" | "connect-only";

/** A path whose requests go through the proxy pipeline. */
export interface ProxyEndpoint {
  readonly serve: "proxy";
  readonly methods: readonly string[];
  /** How the routing key is read from the JSON body. */
  readonly kind: RequestKind;
  /** Whether the answer may be an event stream (the body's `stream` field asks for it). */
  readonly streams: boolean;
  readonly retry: RetryRule;
}

/** The router's own handlers. */
export type LocalHandler = "healthz" | "readyz" | "metrics" | "models";

/** A path the router answers itself. */
export interface LocalEndpoint {
  readonly serve: LocalHandler;
  readonly methods: readonly string[];
}

export type Endpoint = ProxyEndpoint | LocalEndpoint;

/** Every path of the main listener. */
export const ENDPOINTS: Readonly<Record<string, Endpoint>> = {
  "/v1/chat/completions": {
    serve: "proxy",
    methods: ["POST"],
    kind: "chat",
    streams: true,
    retry: "before-first-byte",
  },
  "/v1/completions": {
    serve: "proxy",
    methods: ["POST"],
    kind: "completion",
    streams: true,
    retry: "before-first-byte",
  },
  "/v1/models": { serve: "models", methods: ["GET"] },
  "/healthz": { serve: "healthz", methods: ["GET"] },
  "/readyz": { serve: "readyz", methods: ["GET"] },
  "/metrics": { serve: "metrics", methods: ["GET"] },
};

/** Paths of the admin listener (`metrics.addr`): nothing there is proxied. */
export const ADMIN_ENDPOINTS: Readonly<Record<string, LocalEndpoint>> = {
  "/metrics": { serve: "metrics", methods: ["GET"] },
  "/healthz": { serve: "healthz", methods: ["GET"] },
  "/readyz": { serve: "readyz", methods: ["GET"] },
};

/** The row for `path` in `table`, or undefined. */
export function endpointFor<E extends Endpoint>(
  table: Readonly<Record<string, E>>,
  path: string,
): E | undefined {
  return Object.hasOwn(table, path) ? table[path] : undefined;
}
