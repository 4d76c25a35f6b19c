/**
 * 10 000 requests through an in-process router with random client aborts (before the answer,
 * mid-stream, or never), 64 at a time, against fast in-process SSE and JSON workers. Afterwards:
 * in-flight is 0 on the router and every upstream stream is closed, no breaker holds a failure
 * (a client abort is no verdict on a worker), no promise rejection went unhandled, every request
 * that was not aborted completed intact (lost = 0), and the live heap is flat.
 *
 * `RELIABILITY_REQUESTS` sets the count (default 10 000).
 *
 * @module
 */

import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { SeededRng } from "../src/util/rng.ts";
import {
  bytes,
  chatBody,
  chatCompletion,
  routerHarness,
  sample,
  sseChunk,
  sseData,
  sseUsage,
  startServer,
  waitFor,
} from "./_support.ts";

/** A worker streaming 6 events 0–2 ms apart (or one JSON body), counting open streams. */
async function fastWorker() {
  let open = 0;
  let served = 0;
  const s = await startServer(async (req) => {
    const text = await req.text();
    served++;
    if (!text.includes('"stream":true')) return Response.json(chatCompletion("json"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    let i = 0;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      open--;
    };
    open++;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        const step = () => {
          try {
            if (i < 6) {
              c.enqueue(bytes(sseChunk(`t${i}`)));
              i++;
              timer = setTimeout(step, i % 3);
              return;
            }
            c.enqueue(bytes(sseUsage(50, 32, 6)));
            c.enqueue(bytes("data: [DONE]\n\n"));
            c.close();
          } catch {
            // The server dropped the body (the router went away mid-stream): stop here.
          }
          end();
        };
        step();
      },
      cancel: end,
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });
  return { ...s, open: () => open, served: () => served };
}

type Plan = "complete" | "json" | "abort-early" | "abort-mid";

/**
 * V8's collector, so heap readings count what is retained, not garbage not yet collected (without
 * it, the heap of this test floats by some 70 MiB with nothing leaked). `--expose-gc` set at run
 * time takes effect for new contexts, hence the `vm` detour.
 */
function collector(): () => void {
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc");
}

Deno.test("10 000 requests with random client aborts: in-flight 0, breakers clean, nothing lost, memory flat", async () => {
  const total = Number(Deno.env.get("RELIABILITY_REQUESTS") ?? 10_000);
  const concurrency = 64;
  const workers = [await fastWorker(), await fastWorker()];
  const h = await routerHarness(workers.map((w) => w.url), {
    router: { strategy: "leastloaded" },
  }, { closeAlso: workers });
  // The access log is one JSON line per request; keep the test's memory reading about the router.
  h.logs.push = () => 0;
  const unhandled: unknown[] = [];
  const onUnhandled = (e: PromiseRejectionEvent) => {
    unhandled.push(e.reason);
    e.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  const gc = collector();
  const rng = new SeededRng(42);
  const counts = { sent: 0, completed: 0, abortedAsPlanned: 0, lost: 0 };
  const lost: string[] = [];
  let heapAfterWarmup = 0;
  let rssAfterWarmup = 0;

  const one = async (n: number) => {
    const r = rng.next();
    const plan: Plan = r < 0.4
      ? "complete"
      : r < 0.5
      ? "json"
      : r < 0.7
      ? "abort-early"
      : "abort-mid";
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (plan === "abort-early") timer = setTimeout(() => ctl.abort(), rng.next() * 3);
    counts.sent++;
    try {
      const res = await h.post(
        chatBody(`request ${n % 50}`, {
          stream: plan !== "json",
          system: "shared prefix ".repeat(8),
        }),
        { signal: ctl.signal },
      );
      if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
      if (plan === "json") {
        const body = await res.json();
        if (body.choices[0].message.content !== "json") throw new Error("bad JSON body");
      } else if (plan === "abort-mid") {
        const reader = res.body!.getReader();
        await reader.read();
        ctl.abort();
        await reader.cancel().catch(() => {});
        counts.abortedAsPlanned++;
        return;
      } else {
        const data = sseData(await res.text());
        if (data.length !== 8 || data.at(-1) !== "[DONE]") {
          throw new Error(`stream of ${data.length} events`);
        }
      }
      counts.completed++;
    } catch (err) {
      if (ctl.signal.aborted) counts.abortedAsPlanned++;
      else {
        counts.lost++;
        lost.push(`${plan}: ${(err as Error).message}`);
      }
    } finally {
      clearTimeout(timer);
    }
  };

  try {
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const n = next++;
        await one(n);
        if (n === Math.floor(total / 10)) {
          gc();
          const m = Deno.memoryUsage();
          heapAfterWarmup = m.heapUsed;
          rssAfterWarmup = m.rss;
        }
      }
    }));
    assert.ok(await waitFor(() => h.router.inflight === 0, 5000), "router in-flight leaked");
    assert.ok(
      await waitFor(() => workers.every((w) => w.open() === 0), 5000),
      "upstream stream leaked",
    );
    gc();
    const mem = Deno.memoryUsage();
    assert.deepEqual(lost.slice(0, 5), [], `${counts.lost} requests lost`);
    assert.equal(counts.completed + counts.abortedAsPlanned, total);
    assert.deepEqual(unhandled, []);
    for (const b of h.router.backends) {
      assert.equal(b.inflight, 0);
      assert.equal(b.breaker.state, "closed");
      assert.equal(b.breaker.consecutiveFailures, 0, `${b.id}: a client abort counted as failure`);
    }
    const metrics = await h.metrics();
    assert.equal(sample(metrics, "router_upstream_failures_total"), 0);
    const status499 = sample(metrics, "router_requests_total", { status: "499" });
    assert.ok(status499 > 0, "aborted requests are recorded as 499");
    // Flat: the live heap after warm-up grows less than a leak of 1 KiB per request would add.
    // (RSS is reported, not asserted: the allocator keeps freed pages.)
    const heapGrowth = mem.heapUsed - heapAfterWarmup;
    const rssGrowth = mem.rss - rssAfterWarmup;
    const bound = Math.max(4 * 2 ** 20, (total - total / 10) * 1024);
    assert.ok(heapGrowth < bound, `heap grew ${heapGrowth} bytes (bound ${bound})`);
    console.log(
      `load: ${counts.sent} sent, ${counts.completed} completed, ${counts.abortedAsPlanned} ` +
        `aborted by the client as planned, ${counts.lost} lost; 499s recorded ${status499}; ` +
        `upstream served ${workers.map((w) => w.served()).join("+")}; heap ${
          (heapGrowth / 2 ** 20).toFixed(1)
        } MiB and rss ${(rssGrowth / 2 ** 20).toFixed(1)} MiB growth after warm-up`,
    );
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
    await h.close();
  }
});
