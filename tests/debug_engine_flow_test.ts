/**
 * What the operator sees of the engines' own signals and of the router queue (issues 20 and 21):
 * each worker's scraped engine figures and their age in `/debug/workers` and as
 * `router_engine_*{backend}` gauges (fresh, then stale); the flow queue's depth per model, class
 * and tenant and its oldest wait in `/debug/workers`; and `/debug/route` saying a request would
 * be queued (a full worker, a saturated engine) rather than answered 503, or refused 400 for an
 * unknown priority.
 */

import assert from "node:assert/strict";
import {
  chatCompletion,
  type RouterHarness,
  routerHarness,
  sample,
  startServer,
  waitFor,
} from "./_support.ts";

// deno-lint-ignore no-explicit-any -- the views are read field by field, as JSON
async function getJson(url: string, init: RequestInit = {}): Promise<[number, any]> {
  const res = await fetch(url, init);
  const text = await res.text();
  return [res.status, text === "" ? null : JSON.parse(text)];
}

function admin(h: RouterHarness): string {
  assert.ok(h.running.adminUrl !== null);
  return h.running.adminUrl!;
}

function dryRun(h: RouterHarness, body: unknown, headers: Record<string, string> = {}) {
  return getJson(`${admin(h)}/debug/route`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

const CHAT = { model: "m", messages: [{ role: "user", content: "hello" }] };

/** A worker whose `/metrics` reports vLLM's names (500 while `broken`); chat waits for `gate`. */
async function engineWorker() {
  const st = { waiting: 7, broken: false, gate: Promise.resolve() };
  const server = await startServer(async (req) => {
    if (new URL(req.url).pathname === "/metrics") {
      if (st.broken) return new Response("down", { status: 500 });
      return new Response(
        `vllm:num_requests_waiting{model_name="m"} ${st.waiting}\n` +
          `vllm:num_requests_running{model_name="m"} 3\n` +
          `vllm:kv_cache_usage_perc{model_name="m"} 0.42\n`,
      );
    }
    await req.text();
    await st.gate;
    return Response.json(chatCompletion("w"));
  });
  return Object.assign(server, { st });
}

/** Whether the Prometheus text has a sample of `name` for `backend`. */
function has(text: string, name: string, backend: string): boolean {
  return text.split("\n").some((l) => l.startsWith(`${name}{backend="${backend}"}`));
}

Deno.test("engine signals per worker: /debug/workers and router_engine_* gauges, fresh then stale", async () => {
  const w = await engineWorker();
  const h = await routerHarness([{ url: w.url, models: ["m"] }], {
    metrics: { addr: "127.0.0.1:0" },
    health: { scrapeMetrics: true, scrapeIntervalMs: 50, timeoutMs: 200 },
    flow: { queue: {} },
  });
  const plain = await routerHarness([{ url: w.url, models: ["m"] }], {
    metrics: { addr: "127.0.0.1:0" },
  });
  try {
    const b = h.router.backends[0];
    assert.ok(await waitFor(() => b.engine?.waiting === 7, 10_000), "never scraped");
    const [, view] = await getJson(`${admin(h)}/debug/workers`);
    const e = view.workers[0].engine;
    assert.equal(e.kind, "vllm");
    assert.equal(e.fresh, true);
    assert.equal(e.held_back, true, "7 waiting ≥ engine_max_waiting 5");
    assert.deepEqual([e.waiting, e.running, e.kv_usage], [7, 3, 0.42]);
    assert.ok(e.scraped.ago_ms >= 0 && e.scraped.ago_ms < 5_000, JSON.stringify(e.scraped));
    assert.ok(e.max_age_ms > 0);
    assert.equal(e.failures, 0);
    assert.equal(e.last_error, null);
    let m = await (await fetch(`${admin(h)}/metrics`)).text();
    assert.equal(sample(m, "router_engine_waiting_requests", { backend: b.id }), 7);
    assert.equal(sample(m, "router_engine_running_requests", { backend: b.id }), 3);
    assert.equal(sample(m, "router_engine_kv_usage_ratio", { backend: b.id }), 0.42);
    assert.ok(has(m, "router_engine_signal_age_seconds", b.id));
    assert.equal(sample(m, "router_engine_scrape_failures", { backend: b.id }), 0);

    // The dry run shows the saturated engine held back and the request queued, not a 503.
    const [, route] = await dryRun(h, CHAT);
    assert.equal(route.decision, null);
    assert.match(route.candidates[0].excluded_because, /^engine queue at 7 waiting/);
    assert.equal(route.would_answer.queued, true);
    assert.equal(route.would_answer.status, null);

    w.st.broken = true;
    assert.ok(await waitFor(() => b.engine === undefined, 10_000), "never turned stale");
    const [, stale] = await getJson(`${admin(h)}/debug/workers`);
    const s = stale.workers[0].engine;
    assert.equal(s.fresh, false);
    assert.equal(s.held_back, false, "stale figures hold nothing back");
    assert.equal(s.waiting, 7, "the last reading is shown, marked stale");
    assert.ok(s.failures >= 1);
    assert.match(s.last_error, /500/);
    m = await (await fetch(`${admin(h)}/metrics`)).text();
    assert.ok(!has(m, "router_engine_waiting_requests", b.id), "a stale figure is not exported");
    assert.ok(!has(m, "router_engine_kv_usage_ratio", b.id));
    assert.ok(sample(m, "router_engine_signal_age_seconds", { backend: b.id }) > 0);
    assert.ok(sample(m, "router_engine_scrape_failures", { backend: b.id }) >= 1);

    // Scraping off: no engine view, no series.
    const [, off] = await getJson(`${admin(plain)}/debug/workers`);
    assert.equal(off.workers[0].engine, null);
    assert.equal(off.flow, null, "flow control off: no queue view");
    const pm = await (await fetch(`${admin(plain)}/metrics`)).text();
    assert.ok(!pm.includes("router_engine_waiting_requests{"));
  } finally {
    await h.close();
    await plain.close();
    await w.close();
  }
});

Deno.test("the router queue in /debug/workers, and /debug/route saying a request would be queued", async () => {
  const w = await engineWorker();
  const held = Promise.withResolvers<void>();
  w.st.gate = held.promise;
  const classes = [
    { name: "interactive", rank: 10, values: ["high"] },
    { name: "batch", rank: 0, values: ["low"], sheddable: true },
  ];
  const h = await routerHarness([{ url: w.url, models: ["m"], maxInflight: 1 }], {
    metrics: { addr: "127.0.0.1:0" },
    flow: { queue: { classes } },
  });
  const noFlow = await routerHarness([{ url: w.url, models: ["m"], maxInflight: 1 }], {
    metrics: { addr: "127.0.0.1:0" },
  });
  try {
    const [, idle] = await dryRun(h, CHAT);
    assert.equal(idle.would_answer, null, "a free worker: it would go on at once");
    assert.deepEqual(idle.flow, { class: "interactive", would_wait: false });
    const first = h.post(JSON.stringify(CHAT));
    assert.ok(await waitFor(() => h.router.inflight === 1, 10_000));
    const second = h.post(JSON.stringify(CHAT), { headers: { "x-priority": "low" } });
    const depth = async () =>
      sample(
        await (await fetch(`${admin(h)}/metrics`)).text(),
        "router_flow_queue_depth",
        { class: "batch" },
      );
    const end = Date.now() + 10_000;
    while (await depth() !== 1) {
      if (Date.now() > end) assert.fail("it did not queue");
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 20));

    const [, view] = await getJson(`${admin(h)}/debug/workers`);
    assert.equal(view.flow.enabled, true);
    assert.equal(view.flow.depth, 1);
    assert.equal(view.flow.engine_max_waiting, 5);
    assert.equal(view.flow.queues.length, 1);
    const q = view.flow.queues[0];
    assert.equal(q.model, "m");
    assert.equal(q.depth, 1);
    assert.equal(q.classes.batch.depth, 1);
    assert.equal(q.classes.interactive.depth, 0);
    assert.ok(q.classes.batch.oldest_wait_ms >= 10, JSON.stringify(q.classes.batch));
    assert.equal(q.tenants.other.depth, 1);

    const [, full] = await dryRun(h, CHAT, { "x-priority": "high" });
    assert.equal(full.decision, null);
    assert.equal(full.candidates[0].excluded_because, "at max_inflight");
    assert.equal(full.would_answer.queued, true);
    assert.equal(full.would_answer.class, "interactive");
    assert.deepEqual(full.flow, { class: "interactive", would_wait: true });
    const [, behind] = await dryRun(h, CHAT, { "x-priority": "low" });
    assert.equal(behind.would_answer.ahead, 1, "one batch request waits ahead of it");
    const [, bad] = await dryRun(h, CHAT, { "x-priority": "urgent" });
    assert.equal(bad.would_answer.status, 400);
    assert.equal(bad.would_answer.error.code, "invalid_priority");
    assert.equal(await depth(), 1, "the dry runs queued nothing");

    // Without flow control a full worker still means 503 at once.
    const blocker = noFlow.post(JSON.stringify(CHAT));
    assert.ok(await waitFor(() => noFlow.router.inflight === 1, 10_000));
    const [, refused] = await dryRun(noFlow, CHAT);
    assert.equal(refused.would_answer.status, 503);
    assert.equal(refused.flow, null);

    held.resolve();
    for (const r of await Promise.all([first, second, blocker])) {
      assert.equal(r.status, 200);
      await r.body?.cancel();
    }
  } finally {
    held.resolve();
    await h.close();
    await noFlow.close();
    await w.close();
  }
});
