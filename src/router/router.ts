/**
 * The router's request handler: one `handle(req)` serving the OpenAI endpoints, health and metrics.
 *
 * A completion request goes: read the body (bounded) → parse once → routing text → chunk hashes →
 * admitted workers → `strategy.pick` → record (index insert, in-flight) → forward with the client's
 * abort signal → stream the upstream body straight back through a tap → on the body's end, error or
 * cancellation: in-flight back down, breaker verdict, metrics, one access-log line.
 *
 * Retries: a connect failure or a status ≥ 500 is retried on another admitted worker (the
 * strategy picks again among those not yet tried) up to `router.max_retries` times. Retrying is
 * only possible before the response starts, so a failure after the first byte is never retried:
 * the client sees the stream end (or an SSE error event) instead.
 *
 * @module
 */

import type { RouterConfig } from "../config/types.ts";
import { HealthChecker } from "../backends/mod.ts";
import { RouterMetrics } from "../metrics/mod.ts";
import { chunkHashes, parseRequest } from "../prefix/mod.ts";
import { createStrategy } from "../strategies/mod.ts";
import type { Strategy } from "../strategies/types.ts";
import { downstreamHeaders, upstreamHeaders } from "../proxy/headers.ts";
import { tapBody, type TapResult } from "../proxy/usage_tap.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { errorResponse, responseForError, RouterError } from "../util/errors.ts";
import { type Rng, SeededRng } from "../util/rng.ts";
import { Logger } from "./logger.ts";
import { Backend } from "./pool.ts";
import { decide, recordDecision } from "./select.ts";

/** Injected collaborators of a router. */
export interface RouterDeps {
  readonly clock?: Clock;
  readonly rng?: Rng;
  readonly logger?: Logger;
  readonly metrics?: RouterMetrics;
}

/** Connection facts `Deno.serve` passes along. */
export interface ClientInfo {
  readonly remoteAddr?: { readonly hostname?: string };
}

type Kind = "chat" | "completion";

const ROUTES: Record<string, { methods: string[]; kind?: Kind }> = {
  "/v1/chat/completions": { methods: ["POST"], kind: "chat" },
  "/v1/completions": { methods: ["POST"], kind: "completion" },
  "/v1/models": { methods: ["GET"] },
  "/healthz": { methods: ["GET"] },
  "/readyz": { methods: ["GET"] },
  "/metrics": { methods: ["GET"] },
};

const REQUEST_ID_RE = /^[\x21-\x7e]{1,128}$/;
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** The request handler and the state it routes with. */
export class Router {
  readonly backends: Backend[];
  readonly strategy: Strategy;
  readonly metrics: RouterMetrics;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly rng: Rng;
  #health: HealthChecker | null = null;

  constructor(readonly config: RouterConfig, deps: RouterDeps = {}) {
    this.clock = deps.clock ?? systemClock;
    this.rng = deps.rng ??
      new SeededRng(config.router.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]);
    this.logger = deps.logger ?? new Logger(config.logging.level, config.logging.format);
    this.metrics = deps.metrics ?? new RouterMetrics();
    this.strategy = createStrategy(config.router.strategy, {
      minMatchChunks: config.router.minMatchChunks,
      saturationInflight: config.router.saturationInflight,
    });
    this.backends = config.workers.map((w, i) => new Backend(i, w, this.clock));
  }

  /** Starts active health checks (when configured). */
  start(): void {
    if (this.config.health.intervalMs <= 0 || this.#health) return;
    this.#health = new HealthChecker({
      targets: this.backends.map((b) => ({
        id: b.id,
        url: b.url,
        breaker: b.breaker,
        apiKey: b.config.apiKey ?? undefined,
      })),
      intervalMs: this.config.health.intervalMs,
      timeoutMs: this.config.health.timeoutMs,
      path: this.config.health.path,
      onResult: (id, up, err) => {
        const b = this.backends.find((x) => x.id === id);
        if (!b) return;
        if (b.up !== up) {
          this.logger.warn(up ? "worker is up" : "worker is down", {
            backend: id,
            error: err === undefined ? undefined : String(err),
          });
        }
        b.up = up;
      },
    });
    this.#health.start();
  }

  /** Stops health checks. In-flight requests are not touched. */
  async stop(): Promise<void> {
    const h = this.#health;
    this.#health = null;
    if (h) await h.stop();
  }

  /** Requests in flight over all workers. */
  get inflight(): number {
    let n = 0;
    for (const b of this.backends) n += b.inflight;
    return n;
  }

  /** Workers the strategy may be offered now. */
  admitted(): Backend[] {
    return this.backends.filter((b) => b.admits());
  }

  /** Handles one HTTP request. Never throws. */
  handle = async (req: Request, info: ClientInfo = {}): Promise<Response> => {
    const url = new URL(req.url);
    const route = ROUTES[url.pathname];
    if (!route || (url.pathname === "/metrics" && !this.#metricsOnMain())) {
      return errorResponse("not_found", `No route for ${req.method} ${url.pathname}`);
    }
    if (!route.methods.includes(req.method)) {
      return errorResponse(
        "method_not_allowed",
        `Method ${req.method} is not allowed on ${url.pathname}; use ${route.methods.join(", ")}`,
        { headers: { allow: route.methods.join(", ") } },
      );
    }
    try {
      if (route.kind) return await this.#proxy(route.kind, req, url, info);
      switch (url.pathname) {
        case "/healthz":
          return Response.json({ status: "ok" });
        case "/readyz": {
          const n = this.admitted().length;
          return n > 0
            ? Response.json({ status: "ready", admitted: n })
            : errorResponse("no_worker", "No worker is admitted");
        }
        case "/metrics":
          return await this.metricsResponse();
        default:
          return await this.#models();
      }
    } catch (err) {
      return responseForError(err);
    }
  };

  #metricsOnMain(): boolean {
    return this.config.metrics.enabled && this.config.metrics.addr === null;
  }

  /** Prometheus text; per-worker gauges are read at scrape time, off the request path. */
  async metricsResponse(): Promise<Response> {
    for (const b of this.backends) {
      this.metrics.setInflight(b.id, b.inflight);
      this.metrics.setBackendUp(b.id, b.up);
      this.metrics.setBreakerState(b.id, b.breaker.stateCode);
      this.metrics.setPrefixTreeStats(b.id, b.prefix.stats());
    }
    return new Response(await this.metrics.render(), {
      headers: { "content-type": this.metrics.contentType },
    });
  }

  /** The union of the workers' models; workers that do not answer are skipped. */
  async #models(): Promise<Response> {
    const lists = await Promise.all(this.backends.map(async (b) => {
      try {
        const headers = b.config.apiKey
          ? { authorization: `Bearer ${b.config.apiKey}` }
          : undefined;
        const res = await fetch(`${b.url}/v1/models`, {
          headers,
          signal: AbortSignal.timeout(this.config.health.timeoutMs),
        });
        if (!res.ok) {
          await res.body?.cancel();
          return [];
        }
        const body = await res.json();
        return Array.isArray(body?.data) ? body.data as { id: string }[] : [];
      } catch {
        return [];
      }
    }));
    const byId = new Map<string, unknown>();
    for (const list of lists) {
      for (const m of list) if (m && typeof m.id === "string" && !byId.has(m.id)) byId.set(m.id, m);
    }
    return Response.json({ object: "list", data: [...byId.values()] });
  }

  async #proxy(kind: Kind, req: Request, url: URL, info: ClientInfo): Promise<Response> {
    const t0 = this.clock.now();
    const given = req.headers.get("x-request-id");
    const requestId = given && REQUEST_ID_RE.test(given) ? given : crypto.randomUUID();
    const idHeader = { "x-request-id": requestId };
    const log = (fields: Record<string, unknown>) =>
      this.logger.info("request", {
        request_id: requestId,
        path: url.pathname,
        strategy: this.strategy.name,
        ...fields,
        total_ms: round(this.clock.now() - t0),
      });

    let body: Uint8Array<ArrayBuffer>;
    let parsed: ReturnType<typeof parseRequest>;
    try {
      body = await readBody(req, this.config.server.maxBodyBytes, this.config.server.readTimeoutMs);
      let json: unknown;
      try {
        json = JSON.parse(utf8Strict.decode(body));
      } catch (err) {
        throw new RouterError(
          "bad_request",
          err instanceof SyntaxError
            ? `Request body is not valid JSON: ${err.message}`
            : "Request body is not valid UTF-8",
        );
      }
      parsed = parseRequest(kind, json);
    } catch (err) {
      const res = responseForError(err, idHeader);
      log({ status: res.status, error: err instanceof Error ? err.message : String(err) });
      return res;
    }

    const hashes = chunkHashes(parsed.text, this.config.router.chunkSize);
    const tried = new Set<number>();
    let lastError = "";
    let lastKind: "upstream_failed" | "timeout" = "upstream_failed";

    for (let attempt = 0; attempt <= this.config.router.maxRetries; attempt++) {
      const targets = this.backends.filter((b) => !tried.has(b.index) && b.admits());
      const decision = decide({
        strategy: this.strategy,
        targets,
        hashes,
        chunkSize: this.config.router.chunkSize,
        rng: this.rng,
        now: t0,
      });
      if (!decision) break;
      const backend = this.backends[decision.candidate.index];
      const reason = attempt === 0 ? decision.reason : `retry-after-${decision.reason}`;
      const match = this.strategy.usesPrefix
        ? decision.candidate.match
        : backend.prefix.match(hashes);
      tried.add(backend.index);
      recordDecision(backend, hashes);
      backend.inflight++;
      backend.breaker.acquire();

      const timeout = new AbortController();
      const timer = setTimeout(
        () =>
          timeout.abort(
            new RouterError(
              "timeout",
              `Worker ${backend.id} timed out after ${backend.config.timeoutMs} ms`,
            ),
          ),
        backend.config.timeoutMs,
      );
      const signal = AbortSignal.any([req.signal, timeout.signal]);
      const release = () => {
        clearTimeout(timer);
        backend.inflight--;
      };

      let upstream: Response;
      try {
        upstream = await fetch(backend.url + url.pathname, {
          method: "POST",
          headers: upstreamHeaders(req.headers, {
            clientIp: info.remoteAddr?.hostname ?? "unknown",
            host: req.headers.get("host"),
            proto: url.protocol.replace(":", ""),
            requestId,
            forwardClientAuth: true,
            apiKey: backend.config.apiKey,
          }),
          body,
          signal,
        });
      } catch (err) {
        release();
        if (req.signal.aborted) {
          // The client went away before the worker answered: no verdict on the worker.
          backend.breaker.release();
          log({
            backend: backend.id,
            reason,
            match_chunks: match,
            status: 499,
            error: "client closed request",
          });
          return errorResponse("bad_request", "Client closed request", { headers: idHeader });
        }
        backend.breaker.failure();
        const timedOut = timeout.signal.aborted;
        lastKind = timedOut ? "timeout" : "upstream_failed";
        lastError = timedOut
          ? `Worker ${backend.id} timed out after ${backend.config.timeoutMs} ms`
          : `Worker ${backend.id} failed: ${errorMessage(err)}`;
        this.metrics.incRetry(backend.id, timedOut ? "timeout" : "connect-error");
        this.logger.warn("upstream failed", {
          request_id: requestId,
          backend: backend.id,
          error: lastError,
        });
        continue;
      }

      if (
        upstream.status >= 500 && attempt < this.config.router.maxRetries &&
        this.backends.some((b) => !tried.has(b.index) && b.admits())
      ) {
        await upstream.body?.cancel().catch(() => {});
        release();
        backend.breaker.failure();
        lastError = `Worker ${backend.id} answered ${upstream.status}`;
        this.metrics.incRetry(backend.id, `status-${upstream.status}`);
        continue;
      }

      return this.#respond(upstream, {
        backend,
        reason,
        match,
        t0,
        idHeader,
        release,
        log,
        sse: parsed.stream,
        clientGone: () => req.signal.aborted,
      });
    }

    const res = lastError === ""
      ? errorResponse("no_worker", "No worker is available to serve this request", {
        headers: idHeader,
      })
      : errorResponse(lastKind, lastError, { headers: idHeader });
    log({ status: res.status, error: lastError || "no worker admitted" });
    return res;
  }

  #respond(upstream: Response, ctx: {
    backend: Backend;
    reason: string;
    match: number;
    t0: number;
    idHeader: Record<string, string>;
    release: () => void;
    log: (fields: Record<string, unknown>) => void;
    sse: boolean;
    clientGone: () => boolean;
  }): Response {
    const { backend, reason, match, t0 } = ctx;
    const status = upstream.status;
    const headers = downstreamHeaders(upstream.headers);
    headers.set("x-router-backend", backend.id);
    headers.set("x-router-reason", reason);
    headers.set("x-request-id", ctx.idHeader["x-request-id"]);
    if (status < 500) backend.breaker.success();

    const done = (tapped: TapResult) => {
      ctx.release();
      // A client that disconnects aborts the upstream fetch too; count that as the client's doing.
      const r: TapResult = ctx.clientGone() && tapped.outcome === "error"
        ? { ...tapped, outcome: "cancelled" }
        : tapped;
      if (r.outcome === "cancelled") backend.breaker.release();
      if (status >= 500 || r.outcome === "error") backend.breaker.failure();
      const cachedTokens = r.usage?.cachedTokens ?? null;
      if (r.usage) {
        this.metrics.addUpstreamTokens(backend.id, r.usage.promptTokens, cachedTokens ?? 0);
      }
      const totalS = (this.clock.now() - t0) / 1000;
      this.metrics.observeRequest({
        strategy: this.strategy.name,
        backend: backend.id,
        reason,
        status: r.outcome === "cancelled" ? 499 : status,
        durationS: totalS,
        ttfbS: r.firstByteMs === null ? null : r.firstByteMs / 1000,
        matchChunks: match,
        bytes: r.bytes,
        cacheHit: match > 0,
      });
      ctx.log({
        backend: backend.id,
        reason,
        match_chunks: match,
        status: r.outcome === "cancelled" ? 499 : status,
        ttft_ms: r.firstTokenMs === null ? null : round(r.firstTokenMs),
        ttfb_ms: r.firstByteMs === null ? null : round(r.firstByteMs),
        bytes: r.bytes,
        prompt_tokens: r.usage?.promptTokens ?? null,
        cached_tokens: cachedTokens,
        error: r.outcome === "done"
          ? null
          : r.outcome === "cancelled"
          ? "client closed request"
          : errorMessage(r.error),
      });
    };

    if (!upstream.body) {
      done({
        outcome: "done",
        bytes: 0,
        firstByteMs: null,
        firstTokenMs: null,
        usage: null,
        error: null,
      });
      return new Response(null, { status, headers });
    }
    const body = tapBody(upstream.body, {
      now: () => this.clock.now(),
      start: t0,
      sse: ctx.sse,
      onDone: done,
    });
    return new Response(body, { status, statusText: upstream.statusText, headers });
  }
}

/** Reads a request body of at most `max` bytes within `timeoutMs`. */
export async function readBody(
  req: Request,
  max: number,
  timeoutMs: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > max) {
    throw new RouterError(
      "too_large",
      `Request body of ${declared} bytes exceeds the limit of ${max} bytes`,
    );
  }
  if (!req.body) throw new RouterError("bad_request", "Request body is empty");
  const reader = req.body.getReader();
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let total = 0;
  let timedOut = false;
  const timer = timeoutMs > 0
    ? setTimeout(() => {
      timedOut = true;
      reader.cancel().catch(() => {});
    }, timeoutMs)
    : undefined;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw new RouterError("too_large", `Request body exceeds the limit of ${max} bytes`);
      }
      parts.push(value);
    }
  } catch (err) {
    if (err instanceof RouterError) throw err;
    throw new RouterError("bad_request", `Request body could not be read: ${errorMessage(err)}`);
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) {
    throw new RouterError(
      "request_timeout",
      `Request body was not received within ${timeoutMs} ms`,
    );
  }
  if (total === 0) throw new RouterError("bad_request", "Request body is empty");
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
