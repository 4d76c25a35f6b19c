/**
 * Every way a proxied request can end settles its attempt exactly once: in-flight back to 0, one
 * breaker verdict (a success, a failure, or the release of a probe token), one access-log line.
 * One worker and `max_retries: 0`, so each request is one attempt.
 */

import assert from "node:assert/strict";
import type { ConfigOverrides } from "../src/config/mod.ts";
import type { Backend } from "../src/router/mod.ts";
import {
  chatBody,
  hangingPort,
  heldWorker,
  readAll,
  refusedUrl,
  type RouterHarness,
  routerHarness,
  sseWorker,
  startServer,
  waitFor,
} from "./_support.ts";

/** Counts the breaker verdicts given to `b` (success, failure, release). */
function countVerdicts(b: Backend): { n: number } {
  const count = { n: 0 };
  const br = b.breaker;
  for (const m of ["success", "failure", "release"] as const) {
    const orig = br[m].bind(br) as (...a: unknown[]) => unknown;
    (br as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
      count.n++;
      return orig(...a);
    };
  }
  return count;
}

/** A test upstream: its URL, how to close it, and for held workers how to let them answer. */
interface Upstream {
  readonly url: string;
  close(): void | Promise<void>;
  readonly release?: () => void;
}

interface Case {
  readonly name: string;
  readonly worker: () => Promise<Upstream> | Upstream;
  readonly overrides?: ConfigOverrides;
  /** Sends the request and ends it the case's way. */
  readonly run: (h: RouterHarness, w: Upstream) => Promise<void>;
}

const STREAM = chatBody("x", { stream: true });

const CASES: Case[] = [
  {
    name: "answer done (JSON)",
    worker: () => heldWorker(),
    run: async (h, w) => {
      const res = h.post(chatBody("x"));
      setTimeout(() => w.release!(), 10);
      await (await res).text();
    },
  },
  {
    name: "answer done (SSE)",
    worker: () => sseWorker({ events: 3 }),
    run: async (h) => void await readAll(await h.post(STREAM)),
  },
  {
    name: "worker error before the first byte (connection refused)",
    worker: () => ({ url: refusedUrl(), close() {} }),
    run: async (h) => assert.equal((await h.post(chatBody("x"))).status, 502),
  },
  {
    name: "worker answers 500",
    worker: () => startServer(() => Response.json({ error: "boom" }, { status: 500 })),
    run: async (h) => void await (await h.post(chatBody("x"))).text(),
  },
  {
    name: "worker error after the first byte",
    worker: () => sseWorker({ events: 2, tail: "error" }),
    run: async (h) => void await readAll(await h.post(STREAM)),
  },
  {
    name: "client abort while waiting for the worker",
    worker: () => heldWorker(),
    run: async (h, w) => {
      const ctl = new AbortController();
      const res = h.post(chatBody("x"), { signal: ctl.signal }).catch(() => null);
      await waitFor(() => h.router.inflight === 1);
      ctl.abort();
      await res;
      w.release!();
    },
  },
  {
    name: "client abort while streaming",
    worker: () => sseWorker({ events: 50, gapMs: 20 }),
    run: async (h) => {
      const ctl = new AbortController();
      const res = await h.post(STREAM, { signal: ctl.signal });
      const reader = res.body!.getReader();
      await reader.read();
      ctl.abort();
      await reader.read().catch(() => {});
    },
  },
  {
    name: "time-to-first-byte timeout",
    worker: () => heldWorker(),
    overrides: { worker: { ttfbTimeoutMs: 100 } },
    run: async (h, w) => {
      assert.equal((await h.post(chatBody("x"))).status, 504);
      w.release!();
    },
  },
  {
    name: "idle timeout mid-stream",
    worker: () => sseWorker({ events: 2, tail: "hang" }),
    overrides: { worker: { idleTimeoutMs: 100 } },
    run: async (h) => void await readAll(await h.post(STREAM)),
  },
  {
    name: "whole-request timeout",
    worker: () => sseWorker({ events: 100, gapMs: 20 }),
    overrides: { worker: { timeoutMs: 150 } },
    run: async (h) => void await readAll(await h.post(STREAM)),
  },
  {
    name: "connect timeout",
    worker: () => hangingPort(),
    overrides: { worker: { connectTimeoutMs: 100 } },
    run: async (h) => assert.equal((await h.post(chatBody("x"))).status, 504),
  },
  {
    name: "shutdown cuts a stream short",
    worker: () => sseWorker({ events: 500, gapMs: 10 }),
    overrides: { server: { shutdownTimeoutMs: 50 } },
    run: async (h) => {
      const res = await h.post(STREAM);
      const reader = res.body!.getReader();
      await reader.read();
      const closing = h.running.shutdown();
      while (!(await reader.read().catch(() => ({ done: true }))).done) { /* drain */ }
      await closing;
    },
  },
  {
    name: "reload removes the worker mid-request",
    worker: () => heldWorker(),
    run: async (h, w) => {
      const res = h.post(chatBody("x"));
      await waitFor(() => h.router.inflight === 1);
      const c = h.router.config;
      await h.router.reload({ ...c, workers: [{ ...c.workers[0], id: "other" }] });
      w.release!();
      await (await res).text();
    },
  },
];

for (const c of CASES) {
  Deno.test(`settles exactly once: ${c.name}`, async () => {
    const w = await c.worker();
    const h = await routerHarness([w.url], {
      ...c.overrides,
      router: { maxRetries: 0, ...c.overrides?.router },
    });
    const b = h.router.backends[0];
    const verdicts = countVerdicts(b);
    try {
      await c.run(h, w);
      assert.ok(await waitFor(() => h.router.inflight === 0), "in-flight back to 0");
      assert.ok(await waitFor(() => h.logs.some((l) => l.msg === "request")), "an access-log line");
      await new Promise((r) => setTimeout(r, 30)); // a second settle would show by now
      assert.equal(b.inflight, 0);
      assert.equal(verdicts.n, 1, "one breaker verdict");
      assert.equal(h.logs.filter((l) => l.msg === "request").length, 1, "one access-log line");
    } finally {
      await h.close();
      await w.close();
    }
  });
}
