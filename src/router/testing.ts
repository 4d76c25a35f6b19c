/**
 * Test helpers of the request stages: a {@link ServerRequest} built in memory, and a router state
 * over given workers with health checks off and seed 7.
 *
 * @module
 */

import { configFromWorkers, type ConfigOverrides, type WorkerInput } from "../config/mod.ts";
import type { BodySource, HeaderList, ServerRequest } from "../http/types.ts";
import { RouterError } from "../util/errors.ts";
import { Logger } from "./logger.ts";
import { newRouterState, type RouterState } from "./state.ts";

/** What {@link fakeRequest} builds a request from. */
export interface FakeRequestInit {
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Uint8Array;
  readonly signal?: AbortSignal;
}

/** A request as the router's HTTP server would hand it over; `readBody` honours `maxBytes`. */
export function fakeRequest(init: FakeRequestInit = {}): ServerRequest {
  const headers: HeaderList = Object.entries(init.headers ?? {}).map((
    [k, v],
  ) => [k.toLowerCase(), v]);
  const body = typeof init.body === "string" ? new TextEncoder().encode(init.body) : init.body;
  let read = false;
  const q = (init.path ?? "/v1/chat/completions").indexOf("?");
  const full = init.path ?? "/v1/chat/completions";
  return {
    method: init.method ?? "POST",
    path: q === -1 ? full : full.slice(0, q),
    search: q === -1 ? "" : full.slice(q),
    version: "1.1",
    headers,
    header(name) {
      const vals = headers.filter(([n]) => n === name).map(([, v]) => v);
      return vals.length === 0 ? null : vals.join(", ");
    },
    scheme: "http",
    remote: { hostname: "127.0.0.1", port: 40000 },
    signal: init.signal ?? new AbortController().signal,
    hasBody: body !== undefined && body.length > 0,
    readBody(maxBytes) {
      if (read) throw new Error("body read twice");
      read = true;
      const b = body ?? new Uint8Array(0);
      if (b.length > maxBytes) {
        return Promise.reject(
          new RouterError(
            "too_large",
            `Request body of ${b.length} bytes exceeds the limit of ${maxBytes} bytes`,
          ),
        );
      }
      return Promise.resolve(new Uint8Array(b));
    },
    bodySource(): BodySource {
      let done = false;
      return {
        read: () => {
          if (done || body === undefined) return Promise.resolve({ done: true, value: undefined });
          done = true;
          return Promise.resolve({ done: false, value: body });
        },
        cancel: () => Promise.resolve(),
      };
    },
  };
}

/** A router state over `workers`, health checks off, seed 7, log lines collected in `logs`. */
export function testState(
  workers: WorkerInput[],
  overrides: ConfigOverrides = {},
): RouterState & { logs: Record<string, unknown>[] } {
  const logs: Record<string, unknown>[] = [];
  const config = configFromWorkers(workers, {
    ...overrides,
    health: { intervalMs: 0, ...overrides.health },
    router: { seed: 7, ...overrides.router },
  });
  const state = newRouterState(config, {
    logger: new Logger("info", "json", (line) => logs.push(JSON.parse(line))),
  });
  return Object.assign(state, { logs });
}
