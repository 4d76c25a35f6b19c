/**
 * Flow control through a real router (issue 21): a burst served in priority order with none lost,
 * a full queue and a max wait answered 429 with Retry-After, displacement, a flooding tenant that
 * does not hold back another, a client that leaves while queued, two models whose queues do not
 * block each other, and the refusals on arrival (unknown priority, tenant rate limit).
 */

import assert from "node:assert/strict";
import { configFromWorkers } from "../src/config/mod.ts";
import { apiKeyTenant } from "../src/router/admission.ts";
import {
  chatBody,
  chatCompletion,
  type RouterHarness,
  routerHarness,
  sample,
  startServer,
  type TestServer,
} from "./_support.ts";

/** One request as a worker saw it, in the order all workers of a test saw them. */
interface Arrival {
  readonly worker: string;
  readonly tag: string;
  readonly model: string;
}

/**
 * A worker that holds every request until `open()`, then answers each after `delayMs`; arrivals
 * go to the shared `log` in order.
 */
async function gatedWorker(
  name: string,
  log: Arrival[],
  delayMs = 0,
): Promise<TestServer & { open(): void; readonly seen: number }> {
  const gate = Promise.withResolvers<void>();
  let seen = 0;
  const server = await startServer(async (req) => {
    const body = await req.json();
    seen++;
    log.push({ worker: name, tag: String(body.messages.at(-1).content), model: body.model });
    await gate.promise;
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    return Response.json(chatCompletion(name));
  });
  return {
    ...server,
    open: () => gate.resolve(),
    get seen() {
      return seen;
    },
  };
}

/** Polls the router's /metrics until `cond` holds (or `ms` elapse); returns whether it held. */
async function untilMetrics(
  h: RouterHarness,
  cond: (text: string) => boolean,
  ms = 10_000,
): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond(await h.metrics())) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

async function until(cond: () => boolean, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** The sum of every sample of `name` whose labels include `labels`. */
function total(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let n = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)\{(.*)\} (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = m[2].split(",");
    if (want.every((w) => have.includes(w))) n += Number(m[3]);
  }
  return n;
}

const depth = (m: string, cls: string) => sample(m, "router_flow_queue_depth", { class: cls });

/** Two classes by the `x-priority` header: high (interactive) and low (batch, sheddable). */
const CLASSES = [
  { name: "interactive", rank: 10, values: ["high"], max_wait: "30s" },
  { name: "batch", rank: 0, values: ["low"], sheddable: true, max_wait: "30s" },
];

/** Reads a response's JSON body (or nothing) so that its connection is freed. */
async function drain(res: Response): Promise<{ status: number; body: unknown; res: Response }> {
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body, res };
}

Deno.test("flow: a burst of 50 on 2 workers × max_inflight 2 is served in priority order, none lost", async () => {
  const log: Arrival[] = [];
  const w1 = await gatedWorker("w1", log);
  const w2 = await gatedWorker("w2", log);
  const h = await routerHarness(
    [{ url: w1.url, maxInflight: 2 }, { url: w2.url, maxInflight: 2 }],
    { flow: { queue: { classes: CLASSES } } },
    { closeAlso: [w1, w2] },
  );
  try {
    const fill = [0, 1, 2, 3].map((i) => h.post(chatBody(`fill-${i}`)).then(drain));
    assert.ok(await until(() => log.length === 4), "the four slots were not filled");
    const rest: Promise<{ status: number }>[] = [];
    for (let i = 0; i < 46; i++) {
      const cls = i % 2 === 0 ? "low" : "high";
      rest.push(h.post(chatBody(`${cls}-${i}`), { headers: { "x-priority": cls } }).then(drain));
    }
    assert.ok(
      await untilMetrics(h, (m) => depth(m, "interactive") === 23 && depth(m, "batch") === 23),
      "the burst did not queue",
    );
    w1.open();
    w2.open();
    const answers = await Promise.all([...fill, ...rest]);
    assert.deepEqual(answers.map((a) => a.status), new Array(50).fill(200));
    assert.equal(log.length, 50);
    const queued = log.slice(4).map((a) => a.tag.split("-")[0]);
    const lastHigh = queued.lastIndexOf("high");
    const firstLow = queued.indexOf("low");
    // Strict priority: every high request is let go before any low one; a low one may only
    // reach a worker before a high one that was let go just before it (4 slots race).
    assert.ok(lastHigh < firstLow + 4, queued.join(","));
    assert.equal(queued.filter((t) => t === "high").length, 23);
    const m = await h.metrics();
    assert.equal(
      sample(m, "router_flow_admitted_total", { class: "interactive", path: "queued" }),
      23,
    );
    assert.equal(sample(m, "router_flow_admitted_total", { class: "batch", path: "queued" }), 23);
    assert.equal(
      sample(m, "router_flow_admitted_total", { class: "interactive", path: "direct" }),
      4,
    );
    assert.equal(depth(m, "interactive") + depth(m, "batch"), 0);
    assert.equal(sample(m, "router_flow_queue_in_transit"), 0);
    assert.equal(
      sample(m, "router_flow_queue_wait_seconds_count", { class: "batch", outcome: "dispatched" }),
      23,
    );
  } finally {
    w1.open();
    w2.open();
    await h.close();
  }
});

Deno.test("flow: a full queue answers 429 with Retry-After; a higher class displaces a sheddable one", async () => {
  const log: Arrival[] = [];
  const w = await gatedWorker("w1", log);
  const h = await routerHarness(
    [{ url: w.url, maxInflight: 1 }],
    { flow: { queue: { max_total: 2, classes: CLASSES } } },
    { closeAlso: [w] },
  );
  try {
    const a = h.post(chatBody("a")).then(drain);
    assert.ok(await until(() => log.length === 1));
    const b = h.post(chatBody("b"), { headers: { "x-priority": "low" } }).then(drain);
    const c = h.post(chatBody("c"), { headers: { "x-priority": "low" } }).then(drain);
    assert.ok(await untilMetrics(h, (m) => depth(m, "batch") === 2));
    // Full, and nothing below batch to displace: refused at once.
    const d = await drain(await h.post(chatBody("d"), { headers: { "x-priority": "low" } }));
    assert.equal(d.status, 429);
    const retryAfter = Number(d.res.headers.get("retry-after"));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `retry-after ${retryAfter}`);
    assert.deepEqual((d.body as { error: Record<string, unknown> }).error.type, "rate_limit_error");
    assert.equal((d.body as { error: Record<string, unknown> }).error.code, "queue_full");
    assert.ok(d.res.headers.get("x-request-id"));
    // A high request takes the place of the newest low one (c).
    const e = h.post(chatBody("e"), { headers: { "x-priority": "high" } }).then(drain);
    const displaced = await c;
    assert.equal(displaced.status, 429);
    assert.equal((displaced.body as { error: Record<string, unknown> }).error.code, "displaced");
    assert.ok(Number(displaced.res.headers.get("retry-after")) >= 1);
    w.open();
    assert.deepEqual((await Promise.all([a, b, e])).map((x) => x.status), [200, 200, 200]);
    assert.deepEqual(log.map((x) => x.tag), ["a", "e", "b"], "the high request went first");
    const m = await h.metrics();
    assert.equal(sample(m, "router_flow_shed_total", { class: "batch", reason: "queue_full" }), 1);
    assert.equal(sample(m, "router_flow_shed_total", { class: "batch", reason: "displaced" }), 1);
    // Both 429s are counted once in router_requests_total, as cause "limit" (docs/metrics.md).
    assert.equal(total(m, "router_requests_total", { status: "429", cause: "limit" }), 2);
    assert.equal(total(m, "router_requests_total", { status: "429" }), 2);
  } finally {
    w.open();
    await h.close();
  }
});

Deno.test("flow: a request that waited max_wait gets 429 timeout with Retry-After", async () => {
  const log: Arrival[] = [];
  const w = await gatedWorker("w1", log);
  const h = await routerHarness(
    [{ url: w.url, maxInflight: 1 }],
    { flow: { queue: { classes: [{ name: "interactive", max_wait: "300ms" }] } } },
    { closeAlso: [w] },
  );
  try {
    const a = h.post(chatBody("a")).then(drain);
    assert.ok(await until(() => log.length === 1));
    const late = await drain(await h.post(chatBody("late")));
    assert.equal(late.status, 429);
    assert.equal((late.body as { error: Record<string, unknown> }).error.code, "timeout");
    assert.ok(Number(late.res.headers.get("retry-after")) >= 1);
    w.open();
    assert.equal((await a).status, 200);
    assert.equal(w.seen, 1, "the timed-out request never reached the worker");
  } finally {
    w.open();
    await h.close();
  }
});

Deno.test("flow: a tenant flooding the router does not hold back another tenant's requests", async () => {
  const log: Arrival[] = [];
  const w = await gatedWorker("w1", log, 15);
  const h = await routerHarness(
    [{ url: w.url, maxInflight: 2 }],
    { flow: { queue: { classes: CLASSES }, tenants: { source: "header", header: "x-tenant-id" } } },
    { closeAlso: [w] },
  );
  try {
    const started = Date.now();
    const timed = (tenant: string, tag: string) =>
      h.post(chatBody(tag), { headers: { "x-tenant-id": tenant } }).then(drain).then((r) => ({
        ...r,
        ms: Date.now() - started,
      }));
    const flood = Array.from({ length: 40 }, (_, i) => timed("flood", `flood-${i}`));
    assert.ok(
      await untilMetrics(h, (m) => depth(m, "interactive") >= 38, 3000),
      (await h.metrics()).split("\n").filter((l) => l.startsWith("router_flow")).join("\n"),
    );
    w.open();
    const light: Promise<{ status: number; ms: number }>[] = [];
    const sentAt: number[] = [];
    for (let i = 0; i < 8; i++) {
      sentAt.push(log.length);
      const t0 = Date.now();
      light.push(timed("light", `light-${i}`).then((r) => ({ ...r, ms: r.ms - (t0 - started) })));
      await new Promise((r) => setTimeout(r, 20));
    }
    const lights = await Promise.all(light);
    const floods = await Promise.all(flood);
    assert.ok([...lights, ...floods].every((r) => r.status === 200));
    // Requests let go between a light request's arrival and its own dispatch: DRR lets each
    // backlogged tenant send one per round, so about one flood request (plus the 2 slots racing).
    const between = lights.map((_, i) => {
      const at = log.findIndex((a) => a.tag === `light-${i}`);
      return at - sentAt[i];
    });
    assert.ok(Math.max(...between) <= 6, `flood requests ahead of a light one: ${between}`);
    const lastLight = log.findLastIndex((a) => a.tag.startsWith("light"));
    assert.ok(lastLight < log.length - 5, "the flood was over before the light tenant came");
    const p95 = (xs: number[]) => xs.sort((a, b) => a - b)[Math.ceil(0.95 * xs.length) - 1];
    const p50 = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const lightP95 = p95(lights.map((r) => r.ms));
    const floodP50 = p50(floods.map((r) => r.ms));
    assert.ok(lightP95 < floodP50, `light p95 ${lightP95} ms, flood p50 ${floodP50} ms`);
  } finally {
    w.open();
    await h.close();
  }
});

Deno.test("flow: a client that leaves while queued never reaches a worker; gauges back to 0", async () => {
  const log: Arrival[] = [];
  const w = await gatedWorker("w1", log);
  const h = await routerHarness(
    [{ url: w.url, maxInflight: 1 }],
    { flow: { queue: { classes: CLASSES } } },
    { closeAlso: [w] },
  );
  try {
    const a = h.post(chatBody("a")).then(drain);
    assert.ok(await until(() => log.length === 1));
    const ctl = new AbortController();
    const gone = h.post(chatBody("gone"), { signal: ctl.signal }).catch((e) => e);
    assert.ok(await untilMetrics(h, (m) => depth(m, "interactive") === 1));
    ctl.abort();
    assert.ok(await gone instanceof Error);
    assert.ok(await untilMetrics(h, (m) => depth(m, "interactive") === 0), "still queued");
    w.open();
    assert.equal((await a).status, 200);
    // Another request goes through: the slot the leaver would have taken is free.
    assert.equal((await drain(await h.post(chatBody("after")))).status, 200);
    assert.deepEqual(log.map((x) => x.tag), ["a", "after"]);
    assert.ok(await until(() => h.router.inflight === 0));
    const m = await h.metrics();
    assert.equal(sample(m, "router_inflight", { backend: "w1" }), 0);
    assert.equal(depth(m, "interactive"), 0);
    assert.equal(sample(m, "router_flow_queue_in_transit"), 0);
    assert.equal(
      sample(m, "router_flow_shed_total", { class: "interactive", reason: "aborted" }),
      1,
    );
    assert.equal(sample(m, "router_flow_tenant_active_requests", { tenant: "other" }), 0);
  } finally {
    w.open();
    await h.close();
  }
});

Deno.test("flow: two models' queues do not block each other", async () => {
  const log: Arrival[] = [];
  const wa = await gatedWorker("wa", log);
  const wb = await gatedWorker("wb", log);
  const h = await routerHarness(
    [
      { url: wa.url, maxInflight: 1, models: ["m-a"] },
      { url: wb.url, maxInflight: 1, models: ["m-b"] },
    ],
    { flow: { queue: { classes: CLASSES } } },
    { closeAlso: [wa, wb] },
  );
  const body = (model: string, tag: string) =>
    JSON.stringify({ model, messages: [{ role: "user", content: tag }] });
  try {
    const a1 = h.post(body("m-a", "a1")).then(drain);
    assert.ok(await until(() => wa.seen === 1));
    const a2 = h.post(body("m-a", "a2")).then(drain);
    assert.ok(await untilMetrics(h, (m) => depth(m, "interactive") === 1));
    const b1 = h.post(body("m-b", "b1")).then(drain);
    assert.ok(await until(() => wb.seen === 1), "m-b waited behind m-a's queue");
    const b2 = h.post(body("m-b", "b2")).then(drain);
    assert.ok(await untilMetrics(h, (m) => depth(m, "interactive") === 2));
    wb.open();
    // b1's slot goes to b2 although a2 waited longer: a2 cannot use it.
    assert.deepEqual([(await b1).status, (await b2).status], [200, 200]);
    assert.equal(wa.seen, 1);
    assert.equal(depth(await h.metrics(), "interactive"), 1, "a2 still waits for its worker");
    wa.open();
    assert.deepEqual([(await a1).status, (await a2).status], [200, 200]);
    assert.deepEqual(
      log.map((x) => `${x.worker}:${x.tag}`).sort(),
      ["wa:a1", "wa:a2", "wb:b1", "wb:b2"],
    );
  } finally {
    wa.open();
    wb.open();
    await h.close();
  }
});

Deno.test("flow: unknown priority is 400; a tenant over its rate gets 429 with Retry-After", async () => {
  const log: Arrival[] = [];
  const w = await gatedWorker("w1", log);
  w.open();
  const key = "sk-team-a-secret";
  const h = await routerHarness([w.url], {
    flow: {
      queue: { classes: CLASSES },
      tenants: { limits: { [apiKeyTenant(key)]: { rps: 0.5, burst: 2 } } },
    },
  }, { closeAlso: [w] });
  try {
    const bad = await drain(await h.post(chatBody("x"), { headers: { "x-priority": "urgent" } }));
    assert.equal(bad.status, 400);
    const err = (bad.body as { error: Record<string, unknown> }).error;
    assert.equal(err.code, "invalid_priority");
    assert.equal(err.param, "x-priority");
    assert.match(String(err.message), /Unknown priority class "urgent", valid values: /);
    // The body field names the class when the header is absent.
    const byField = JSON.stringify({ ...JSON.parse(chatBody("f")), priority: "low" });
    assert.equal((await drain(await h.post(byField))).status, 200);
    const badField = JSON.stringify({ ...JSON.parse(chatBody("f")), priority: 7 });
    assert.equal((await drain(await h.post(badField))).status, 400);
    const auth = { authorization: `Bearer ${key}` };
    const ok = [
      await h.post(chatBody("1"), { headers: auth }),
      await h.post(chatBody("2"), { headers: auth }),
    ];
    for (const r of ok) assert.equal((await drain(r)).status, 200);
    const limited = await drain(await h.post(chatBody("3"), { headers: auth }));
    assert.equal(limited.status, 429);
    assert.equal((limited.body as { error: Record<string, unknown> }).error.code, "rate_limited");
    assert.equal(limited.res.headers.get("retry-after"), "2");
    // Another tenant (no key: anonymous, unlisted) is not limited.
    assert.equal((await drain(await h.post(chatBody("4")))).status, 200);
    const m = await h.metrics();
    const tenant = apiKeyTenant(key);
    assert.equal(
      sample(m, "router_flow_tenant_requests_total", { tenant, outcome: "admitted" }),
      2,
    );
    assert.equal(sample(m, "router_flow_tenant_requests_total", { tenant, outcome: "shed" }), 1);
    assert.equal(sample(m, "router_flow_admitted_total", { class: "batch", path: "direct" }), 1);
    assert.ok(!m.includes(key), "the key itself never appears");
    // Flow's refusals are cause "limit": two unknown priorities (400), one rate limit (429).
    assert.equal(total(m, "router_requests_total", { status: "400", cause: "limit" }), 2);
    assert.equal(total(m, "router_requests_total", { status: "429", cause: "limit" }), 1);
  } finally {
    await h.close();
  }
});

Deno.test("flow: a reload turns the queue on (no more instant 503) and a shutdown answers the queue 503", async () => {
  const log: Arrival[] = [];
  const w = await gatedWorker("w1", log);
  const workers = [{ url: w.url, maxInflight: 1 }];
  const h = await routerHarness(workers, { server: { shutdownTimeoutMs: 300 } }, {
    closeAlso: [w],
  });
  try {
    const a = h.post(chatBody("a")).then(drain);
    assert.ok(await until(() => log.length === 1));
    const off = await drain(await h.post(chatBody("off")));
    assert.equal(off.status, 503, "flow control off: every worker full is a 503 at once");
    await h.router.reload(configFromWorkers(workers, {
      server: { addr: "127.0.0.1:0", shutdownTimeoutMs: 300 },
      health: { intervalMs: 0 },
      flow: { queue: { classes: CLASSES } },
    }));
    const queued = h.post(chatBody("queued")).then(drain);
    assert.ok(await untilMetrics(h, (m) => depth(m, "interactive") === 1));
    // Shutdown: the grace period ends with the worker still busy; the queued request gets 503.
    await h.running.shutdown();
    const q = await queued;
    assert.equal(q.status, 503);
    assert.equal((q.body as { error: Record<string, unknown> }).error.code, "queue_closed");
    await a.catch(() => {});
    assert.deepEqual(log.map((x) => x.tag), ["a"]);
  } finally {
    w.open();
    await h.close();
  }
});

/**
 * A worker that answers chat at once and whose `/metrics` reports `waiting` queued requests
 * (vLLM's names), or fails with 500 while `broken`.
 */
async function engineWorker(name: string) {
  const st = { waiting: 0, broken: false, seen: 0 };
  const server = await startServer(async (req) => {
    if (new URL(req.url).pathname === "/metrics") {
      if (st.broken) return new Response("down", { status: 500 });
      return new Response(
        `vllm:num_requests_waiting{model_name="m"} ${st.waiting}\n` +
          `vllm:num_requests_running{model_name="m"} 4\n`,
      );
    }
    await req.text();
    st.seen++;
    return Response.json(chatCompletion(name));
  });
  return Object.assign(server, { st });
}

/** A router with flow control and scraping every 50 ms (stale after 3 × 50 + 200 ms). */
async function gatedRouter(url: string, queue: Record<string, unknown> = {}) {
  return await routerHarness([{ url }], {
    flow: { queue: { classes: CLASSES, ...queue } },
    health: { scrapeMetrics: true, scrapeIntervalMs: 50, timeoutMs: 200 },
  });
}

Deno.test("flow: an engine reporting engine_max_waiting queued requests makes requests wait in the router, not the engine", async () => {
  const w = await engineWorker("w1");
  w.st.waiting = 12;
  const h = await gatedRouter(w.url, { engine_max_waiting: 5 });
  try {
    assert.ok(await until(() => h.router.backends[0].engine?.waiting === 12), "never scraped");
    const pending = h.post(chatBody("held")).then(drain);
    assert.ok(await untilMetrics(h, (m) => depth(m, "interactive") === 1), "it did not queue");
    await new Promise((r) => setTimeout(r, 300)); // several scrapes and ticks later: still held
    assert.equal(w.st.seen, 0, "the request reached the saturated engine");
    assert.equal(depth(await h.metrics(), "interactive"), 1);
    w.st.waiting = 2; // the engine drained: the next scrape and tick let the request go
    const got = await pending;
    assert.equal(got.status, 200);
    assert.equal(w.st.seen, 1);
    const m = await h.metrics();
    assert.equal(
      sample(m, "router_flow_admitted_total", { class: "interactive", path: "queued" }),
      1,
    );
    assert.equal(depth(m, "interactive"), 0);
  } finally {
    await h.close();
    await w.close();
  }
});

Deno.test("flow: stale engine figures, or engine_max_waiting 0, never hold a request back", async () => {
  const w = await engineWorker("w1");
  w.st.waiting = 12;
  const h = await gatedRouter(w.url);
  const off = await gatedRouter(w.url, { engine_max_waiting: 0 });
  try {
    const b = h.router.backends[0];
    assert.ok(await until(() => b.engine?.waiting === 12), "never scraped");
    assert.ok(await until(() => off.router.backends[0].engine?.waiting === 12), "never scraped");
    // Off: the fresh queue of 12 is not a reason to wait.
    assert.equal((await off.post(chatBody("off")).then(drain)).status, 200);
    w.st.broken = true; // scrapes fail from now on; the last reading (12 waiting) turns stale
    assert.ok(await until(() => b.engine === undefined), "the figures never turned stale");
    assert.equal(b.engineReading?.signals.waiting, 12, "the stale reading is kept");
    assert.equal((await h.post(chatBody("stale")).then(drain)).status, 200);
    const m = await h.metrics();
    assert.equal(
      sample(m, "router_flow_admitted_total", { class: "interactive", path: "direct" }),
      1,
    );
    assert.equal(w.st.seen, 2);
  } finally {
    await h.close();
    await off.close();
    await w.close();
  }
});
