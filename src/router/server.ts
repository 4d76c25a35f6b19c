/**
 * Starts a router on a `Deno.serve` listener (plus an admin listener for /metrics, /healthz and
 * /readyz when `metrics.addr` is set) and stops it gracefully: stop accepting, let in-flight
 * streams finish up to `server.shutdown_timeout`, then abort what is left (SSE streams end with an
 * error event, requests still waiting for a worker get 503) and close.
 *
 * @module
 */

import type { RouterConfig } from "../config/types.ts";
import { parseListenAddr } from "../config/mod.ts";
import { Router, type RouterDeps } from "./router.ts";
import { errorMessage } from "../util/errors.ts";
import { fromDenoRequest, toResponse } from "./deno_adapter.ts";

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
  /** Stops accepting, drains in-flight requests (bounded by `server.shutdown_timeout`), closes. */
  shutdown(): Promise<void>;
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
  const listen = parseListenAddr(config.server.addr);
  const hostname = opts.hostname ?? listen.hostname;
  const port = opts.port ?? listen.port;

  const ready = Promise.withResolvers<number>();
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname,
      port,
      onListen: (addr) => ready.resolve(addr.port),
      onError: (err) => {
        router.logger.error("unhandled error", { error: String(err) });
        return new Response(null, { status: 500 });
      },
    }, (req, info) => router.handle(fromDenoRequest(req, info)).then(toResponse));
  } catch (err) {
    throw new ListenError("server.addr", hostname, port, err);
  }

  let admin: Deno.HttpServer | null = null;
  const adminReady = Promise.withResolvers<number | null>();
  if (config.metrics.enabled && config.metrics.addr !== null) {
    const a = parseListenAddr(config.metrics.addr);
    try {
      admin = Deno.serve({
        hostname: a.hostname,
        port: a.port,
        onListen: (addr) => adminReady.resolve(addr.port),
      }, (req, info) => router.handleAdmin(fromDenoRequest(req, info)).then(toResponse));
    } catch (err) {
      server.shutdown(); // the main listener is up: free it before the error surfaces
      throw new ListenError("metrics.addr", a.hostname, a.port, err);
    }
  } else adminReady.resolve(null);

  router.start();
  const [boundPort, adminPort] = await Promise.all([ready.promise, adminReady.promise]);
  const shownHost = hostname === "0.0.0.0" || hostname === "" ? "127.0.0.1" : hostname;
  let shut: Promise<void> | null = null;
  return {
    router,
    port: boundPort,
    url: `http://${shownHost}:${boundPort}`,
    adminUrl: adminPort === null ? null : `http://${shownHost}:${adminPort}`,
    finished: server.finished,
    shutdown() {
      shut ??= (async () => {
        await router.stop();
        const drained = Promise.all([server.shutdown(), admin?.shutdown()]);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const limit = new Promise<"timeout">((r) => {
          timer = setTimeout(() => r("timeout"), config.server.shutdownTimeoutMs);
        });
        const outcome = await Promise.race([drained.then(() => "drained" as const), limit]);
        clearTimeout(timer);
        if (outcome === "timeout") {
          router.logger.warn("shutdown timeout reached; closing in-flight requests", {
            inflight: router.inflight,
          });
          // Aborted attempts end their responses at once; a client that stops reading could
          // still hold its stream open, so the wait for them is bounded too.
          router.abortInflight();
          let grace: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([
            drained,
            new Promise((r) => (grace = setTimeout(r, ABORT_GRACE_MS))),
          ]);
          clearTimeout(grace);
        }
        router.dispose();
      })();
      return shut;
    },
  };
}
