/**
 * Starts a router on its own HTTP/1.1 server (`src/http/`, ADR 0007; plus an admin listener for
 * /metrics, /healthz and /readyz when `metrics.addr` is set) and stops it gracefully.
 *
 * Shutdown, for rolling updates (what a SIGTERM does in `cmd/router.ts`):
 * 1. drain (`drainDelayMs`, `server.drain_delay` on SIGTERM): `/readyz` answers 503 at once, so
 *    load balancers and Kubernetes take the router out of rotation, while the listener keeps
 *    serving; each connection is closed after its current request (`Connection: close`), so
 *    clients reconnect, to another replica once this one is out;
 * 2. the listeners close; requests in flight get `server.shutdown_timeout` to finish;
 * 3. what is left is aborted (SSE streams end with an error event, requests still waiting for a
 *    worker get 503), given {@link ABORT_GRACE_MS} to end, and the connections are closed.
 *
 * Client connections are bounded by `server.header_timeout` (a slow head), `server.idle_timeout`
 * (an idle kept-alive connection) and `server.max_connections`; accept errors (EMFILE) never end
 * the process (docs/reliability.md). The servers' counters go to the router's registry
 * (`router_http_*`, `src/metrics/http_server_metrics.ts`).
 *
 * @module
 */

import type { RouterConfig } from "../config/types.ts";
import { parseListenAddr } from "../config/mod.ts";
import { type HttpServer, serveHttp, type ServerRequest } from "../http/mod.ts";
import { registerHttpServerMetrics } from "../metrics/http_server_metrics.ts";
import { errorMessage } from "../util/errors.ts";
import { Router, type RouterDeps } from "./router.ts";

/** Time aborted streams get to end after the shutdown timeout, ms. */
const ABORT_GRACE_MS = 1000;

/** A started router. */
export interface RunningRouter {
  readonly router: Router;
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly port: number;
  /** Admin listener URL when metrics run on their own port. */
  readonly adminUrl: string | null;
  /** The main listener (connection counts and limits' statistics). */
  readonly server: HttpServer;
  /**
   * Drains for `drainDelayMs` (default 0), stops accepting, lets in-flight requests finish
   * (bounded by `server.shutdown_timeout`), closes. Idempotent.
   */
  shutdown(opts?: { readonly drainDelayMs?: number }): Promise<void>;
  /** Resolves when the listener has closed. */
  readonly finished: Promise<void>;
}

/** Options of {@link startRouter}. */
export interface StartOptions extends RouterDeps {
  /** Overrides the port of `server.addr` (0 = any free port). */
  readonly port?: number;
  /** Overrides the host of `server.addr`. */
  readonly hostname?: string;
}

/** A listener could not be opened (the address is in use, not allowed…): says which, and why. */
export class ListenError extends Error {
  constructor(readonly key: string, hostname: string, port: number, cause: unknown) {
    super(`cannot listen on ${hostname}:${port} (${key}): ${errorMessage(cause)}`, { cause });
    this.name = "ListenError";
  }
}

/** Starts a router for `config`; throws a {@link ListenError} when it cannot listen. */
export async function startRouter(
  config: RouterConfig,
  opts: StartOptions = {},
): Promise<RunningRouter> {
  const router = new Router(config, opts);
  await router.init();
  const listen = parseListenAddr(config.server.addr);
  const hostname = opts.hostname ?? listen.hostname;
  const port = opts.port ?? listen.port;
  const limits = {
    headerTimeoutMs: config.server.headerTimeoutMs,
    idleTimeoutMs: config.server.idleTimeoutMs,
    maxConnections: config.server.maxConnections,
    log: (
      level: "debug" | "info" | "warn" | "error",
      msg: string,
      fields: Record<string, unknown>,
    ) => router.logger.log(level, msg, fields),
  };
  const bind = (key: string, host: string, p: number, handler: (r: ServerRequest) => unknown) => {
    try {
      return serveHttp({ hostname: host, port: p, handler: handler as never, ...limits });
    } catch (err) {
      throw new ListenError(key, host, p, err);
    }
  };
  const server = bind("server.addr", hostname, port, router.handle);
  let admin: HttpServer | null = null;
  if (config.metrics.enabled && config.metrics.addr !== null) {
    const a = parseListenAddr(config.metrics.addr);
    try {
      admin = bind("metrics.addr", a.hostname, a.port, router.handleAdmin);
    } catch (err) {
      server.closeAll(); // the main listener is up: free it before the error surfaces
      throw err;
    }
  }
  registerHttpServerMetrics(router.metrics.registry, [
    { listener: "main", stats: server.stats },
    ...(admin === null ? [] : [{ listener: "admin", stats: admin.stats }]),
  ]);
  router.start();
  const shownHost = hostname === "0.0.0.0" || hostname === "" ? "127.0.0.1" : hostname;
  let shut: Promise<void> | null = null;
  return {
    router,
    server,
    port: server.port,
    url: `http://${shownHost}:${server.port}`,
    adminUrl: admin === null ? null : `http://${shownHost}:${admin.port}`,
    finished: server.finished,
    shutdown(o = {}) {
      shut ??= stop(router, server, admin, config.server.shutdownTimeoutMs, o.drainDelayMs ?? 0);
      return shut;
    },
  };
}

/** The shutdown sequence of the module comment. */
async function stop(
  router: Router,
  server: HttpServer,
  admin: HttpServer | null,
  shutdownTimeoutMs: number,
  drainDelayMs: number,
): Promise<void> {
  if (drainDelayMs > 0) {
    router.drain();
    server.drain();
    router.logger.info("draining", { drain_delay_ms: drainDelayMs, inflight: router.inflight });
    await new Promise((r) => setTimeout(r, drainDelayMs));
  }
  await router.stop();
  const drained = Promise.all([server.shutdown(), admin?.shutdown()]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<"timeout">((r) => {
    timer = setTimeout(() => r("timeout"), shutdownTimeoutMs);
  });
  const outcome = await Promise.race([drained.then(() => "drained" as const), limit]);
  clearTimeout(timer);
  if (outcome === "timeout") {
    router.logger.warn("shutdown timeout reached; closing in-flight requests", {
      inflight: router.inflight,
    });
    // Aborted attempts end their responses at once; a client that stops reading could still
    // hold its stream open, so the wait for them is bounded too, then its connection closed.
    router.abortInflight();
    let grace: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([drained, new Promise((r) => (grace = setTimeout(r, ABORT_GRACE_MS)))]);
    clearTimeout(grace);
    await Promise.all([server.closeAll(), admin?.closeAll()]);
  }
  router.dispose();
  // The spans of the last requests go out before the process ends.
  await router.tracer.shutdown();
}
