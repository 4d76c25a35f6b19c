/**
 * The flow-control glue on a router state without HTTP: free slots, who a request is, when it
 * waits, queues per model that share one bound, the tenant permit held until the relayed attempt
 * settles, the wait-up tick, reload and close.
 */

import assert from "node:assert/strict";
import { resolveFlowConfig } from "../flow/mod.ts";
import { apiKeyTenant, type FlowTicket, freeSlots, tenantOf, TICK_MS } from "./admission.ts";
import type { EngineLoad } from "../strategies/types.ts";
import type { Attempt } from "./attempt.ts";
import { choose } from "./choose.ts";
import { ENDPOINTS, type ProxyEndpoint } from "./endpoints.ts";
import { parse, type RequestPlan } from "./plan.ts";
import type { EngineSource } from "./pool.ts";
import { RequestLog } from "./settle.ts";
import type { RouterState } from "./state.ts";
import { fakeRequest, testState } from "./testing.ts";

const CHAT = ENDPOINTS["/v1/chat/completions"] as ProxyEndpoint;

const FLOW = {
  queue: {
    max_total: 2,
    classes: [
      { name: "interactive", rank: 10, values: ["high"] },
      { name: "batch", rank: 0, values: ["low"], sheddable: true },
    ],
  },
};

function flowOf(raw: unknown) {
  const r = resolveFlowConfig(raw);
  assert.deepEqual(r.errors, []);
  return r.value!;
}

/** Two workers serving one model each, max_inflight 1, with `flow`. */
function twoModels(flow: Record<string, unknown> = FLOW) {
  return testState([
    { url: "http://127.0.0.1:1", models: ["m-a"], maxInflight: 1 },
    { url: "http://127.0.0.1:2", models: ["m-b"], maxInflight: 1 },
  ], { flow });
}

/** A parsed request for `model` and its ticket's `admit` outcome. */
async function arrive(
  state: RouterState,
  model: string,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<{ ticket: FlowTicket; plan: RequestPlan; admitted: ReturnType<FlowTicket["admit"]> }> {
  const req = fakeRequest({
    headers,
    signal,
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });
  const plan = await parse(req, CHAT, state, "req-1");
  const ticket = state.flow.ticket();
  const log = new RequestLog(state.logger, state.clock, "req-1", "/v1/chat/completions", "x", 0);
  return { ticket, plan, admitted: ticket.admit(req, plan, log) };
}

Deno.test("freeSlots: up, max_inflight, breaker state", () => {
  const s = testState([
    { url: "http://127.0.0.1:1", maxInflight: 3 },
    { url: "http://127.0.0.1:2", breakerThreshold: 1, breakerCooldownMs: 0 },
  ]);
  const [a, b] = s.backends;
  assert.equal(freeSlots(a), 3);
  a.inflight = 2;
  assert.equal(freeSlots(a), 1);
  a.inflight = 5;
  assert.equal(freeSlots(a), 0);
  a.inflight = 0;
  a.up = false;
  assert.equal(freeSlots(a), 0);
  assert.equal(freeSlots(b), Infinity);
  b.breaker.failure(); // open, cooldown 0: one probe may go
  assert.equal(freeSlots(b), 1);
  b.breaker.acquire(); // the probe is out
  assert.equal(freeSlots(b), 0);
});

Deno.test("tenantOf: the bearer key's fingerprint (never the key), a header, anonymous", () => {
  const apiKey = flowOf({}).tenants;
  const byKey = tenantOf(fakeRequest({ headers: { authorization: "Bearer sk-1" } }), apiKey);
  assert.equal(byKey, apiKeyTenant("sk-1"));
  assert.match(byKey, /^key:[0-9a-f]{16}$/);
  assert.ok(!byKey.includes("sk-1"));
  assert.equal(tenantOf(fakeRequest(), apiKey), "anonymous");
  assert.equal(
    tenantOf(fakeRequest({ headers: { authorization: "Basic x" } }), apiKey),
    "anonymous",
  );
  const header = flowOf({ tenants: { source: "header", header: "x-team" } }).tenants;
  assert.equal(tenantOf(fakeRequest({ headers: { "x-team": "a" } }), header), "a");
  const long = tenantOf(fakeRequest({ headers: { "x-team": "t".repeat(5000) } }), header);
  assert.match(long, /^#[0-9a-f]{16}$/);
});

Deno.test("flow off: the ticket does nothing and never waits", async () => {
  const s = testState(["http://127.0.0.1:1"]);
  assert.equal(s.flow.enabled, false);
  const { ticket, admitted } = await arrive(s, "m");
  assert.equal(admitted, null);
  assert.equal(ticket.waits, false);
  ticket.end();
  assert.equal(s.flow.queues, 0);
});

Deno.test("capacity per model: a full worker of one model makes only its requests wait", async () => {
  const s = twoModels();
  const [wa, wb] = s.backends;
  assert.equal((await arrive(s, "m-a")).admitted, null);
  wa.inflight = 1;
  const a2 = await arrive(s, "m-a");
  assert.ok(a2.admitted instanceof Promise, "m-a must wait");
  assert.equal(s.flow.depth, 1);
  assert.equal((await arrive(s, "m-b")).admitted, null, "m-b has a free worker");
  // wb frees a slot for m-b only: the m-a request is not let go.
  wb.inflight = 1;
  const b2 = await arrive(s, "m-b");
  assert.ok(b2.admitted instanceof Promise);
  wb.inflight = 0;
  s.flow.freed();
  assert.equal(await b2.admitted, null);
  assert.equal(s.flow.depth, 1);
  assert.equal(s.flow.inTransit, 1);
  b2.ticket.started();
  assert.equal(s.flow.inTransit, 0);
  wa.inflight = 0;
  s.flow.freed();
  assert.equal(await a2.admitted, null);
  a2.ticket.end(); // never started: its dispatch is given back
  assert.equal(s.flow.inTransit, 0);
  s.flow.close();
});

Deno.test("queues of two models share max_total; a higher class displaces across models", async () => {
  const s = twoModels();
  for (const b of s.backends) b.inflight = 1;
  const low = await arrive(s, "m-a", { "x-priority": "low" });
  const high = await arrive(s, "m-b", { "x-priority": "high" });
  assert.equal(s.flow.depth, 2);
  const newcomer = await arrive(s, "m-b", { "x-priority": "high" });
  const shed = await low.admitted;
  assert.equal(shed?.status, 429);
  assert.match(new TextDecoder().decode(shed!.body as Uint8Array), /"code":"displaced"/);
  assert.ok(shed!.headers.some(([n]) => n === "retry-after"));
  assert.equal(s.flow.depth, 2);
  const full = await arrive(s, "m-a", { "x-priority": "high" });
  const refused = await full.admitted;
  assert.equal(refused?.status, 429, "nothing below interactive to displace");
  s.flow.close();
  for (const t of [high, newcomer]) assert.equal((await t.admitted)?.status, 503);
});

Deno.test("the tenant's permit is held until the relayed attempt settles", async () => {
  const s = twoModels({ ...FLOW, tenants: { default: { max_concurrent: 1 } } });
  const first = await arrive(s, "m-a");
  assert.equal(first.admitted, null);
  first.ticket.started();
  const att = {} as Attempt;
  first.ticket.hold(att);
  first.ticket.end();
  const second = await arrive(s, "m-a");
  assert.equal((second.admitted as { status: number } | null)?.status, 429);
  s.flow.settled(att);
  assert.equal((await arrive(s, "m-a")).admitted, null);
});

Deno.test("an unknown priority is 400 and takes no permit", async () => {
  const s = twoModels({ ...FLOW, tenants: { default: { max_concurrent: 1 } } });
  const bad = await arrive(s, "m-a", { "x-priority": "urgent" });
  assert.equal((bad.admitted as { status: number }).status, 400);
  bad.ticket.end();
  const good = await arrive(s, "m-a", { "x-priority": "HIGH" });
  assert.equal(good.admitted, null);
});

Deno.test("a client that left while queued is answered 499 and leaves nothing behind", async () => {
  const s = twoModels();
  s.backends[0].inflight = 1;
  const ctl = new AbortController();
  const gone = await arrive(s, "m-a", {}, ctl.signal);
  ctl.abort();
  assert.equal((await gone.admitted)?.status, 400); // 499 in the log; the client reads nothing
  gone.ticket.end();
  assert.equal(s.flow.depth, 0);
  assert.equal(s.flow.inTransit, 0);
});

Deno.test("the tick wakes a queue when a breaker's cooldown ends, and drops empty queues", async () => {
  const s = testState(
    [{ url: "http://127.0.0.1:1", breakerThreshold: 1, breakerCooldownMs: 2 * TICK_MS }],
    { flow: FLOW },
  );
  s.backends[0].breaker.failure(); // open: no slot until the cooldown ends, and no event then
  const waiting = await arrive(s, "m");
  assert.ok(waiting.admitted instanceof Promise);
  s.flow.start();
  // The tick is unref'd (a listener keeps a router alive): keep this test's loop alive.
  const alive = setTimeout(() => {}, 10_000);
  try {
    assert.equal(await waiting.admitted, null);
    waiting.ticket.started();
    const end = Date.now() + 5000;
    while (s.flow.queues > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.flow.queues, 0);
  } finally {
    clearTimeout(alive);
    s.flow.stop();
  }
});

Deno.test("update: flow turned off lets waiting requests finish; turned on again, they wait", async () => {
  const s = twoModels();
  s.backends[0].inflight = 1;
  const waiting = await arrive(s, "m-a");
  s.flow.update(null);
  assert.equal(s.flow.enabled, false);
  assert.equal((await arrive(s, "m-a")).admitted, null, "off: no wait (the pipeline answers 503)");
  s.backends[0].inflight = 0;
  s.flow.freed();
  assert.equal(await waiting.admitted, null, "the queued request still went");
  waiting.ticket.started();
  s.flow.update(flowOf({ queue: { classes: [{ name: "only" }] } }));
  s.backends[0].inflight = 1;
  const again = await arrive(s, "m-a");
  assert.ok(again.admitted instanceof Promise);
  s.flow.close();
  assert.equal((await again.admitted)?.status, 503);
});

/** An engine source whose figures for every worker are `load` (or none). */
function engineOf(load: () => EngineLoad | undefined): EngineSource {
  return { engineLoad: () => load(), reading: () => undefined };
}

Deno.test("engine gate: a fresh waiting count at engine_max_waiting holds the worker back; stale or below does not", async () => {
  const s = testState([
    { url: "http://127.0.0.1:1", models: ["m"] },
    { url: "http://127.0.0.1:2", models: ["m"] },
  ], { flow: { queue: { engine_max_waiting: 4 } } });
  const [a, b] = s.backends;
  let waiting = 4;
  let at = s.clock.now();
  const load = () => ({ waiting, running: 8, at, maxAgeMs: 1_000 });
  a.engineSource = engineOf(load);
  b.engineSource = engineOf(load);
  const gate = s.flow.engineGate!;
  assert.ok(gate !== null);
  assert.equal(freeSlots(a, gate), 0, "4 waiting ≥ 4: no slot");
  assert.equal(freeSlots(a), Infinity, "without the gate, the cap alone counts");
  const held = await arrive(s, "m");
  assert.ok(held.admitted instanceof Promise, "every engine saturated: the request waits");
  assert.equal(s.flow.depth, 1);
  assert.equal(
    choose(s, { ...held.plan }, new Set(), false, s.clock.now()),
    null,
    "a first attempt is offered no saturated engine",
  );
  assert.notEqual(
    choose(s, { ...held.plan }, new Set(), true, s.clock.now()),
    null,
    "a retry is never held back",
  );
  waiting = 3; // the engines drained below the threshold: the next wake-up lets it go
  s.flow.freed();
  assert.equal(await held.admitted, null);
  held.ticket.end();
  waiting = 50;
  at = s.clock.now() - 5_000; // stale: older than maxAgeMs
  assert.equal(freeSlots(a, gate), Infinity, "stale figures are ignored");
  assert.equal((await arrive(s, "m")).admitted, null, "stale: goes on at once");
  at = s.clock.now();
  a.engineSource = engineOf(() => ({ running: 3, at, maxAgeMs: 1_000 }));
  assert.equal(freeSlots(a, gate), Infinity, "an engine without a waiting count is not held back");
  const off = testState(["http://127.0.0.1:1"], { flow: { queue: { engine_max_waiting: 0 } } });
  assert.equal(off.flow.engineGate, null, "engine_max_waiting: 0 turns the gate off");
  assert.equal(testState(["http://127.0.0.1:1"]).flow.engineGate, null, "flow off: no gate");
  s.flow.close();
});

Deno.test("engine gate: hostile figures (NaN, negative, Infinity, a NaN or future time) hold no worker back", () => {
  const s = testState([{ url: "http://127.0.0.1:1", models: ["m"] }], {
    flow: { queue: { engine_max_waiting: 4 } },
  });
  const [a] = s.backends;
  const gate = s.flow.engineGate!;
  const now = s.clock.now();
  const cases: [string, EngineLoad][] = [
    ["NaN waiting", { waiting: NaN, at: now, maxAgeMs: 1_000 }],
    ["negative waiting", { waiting: -5, at: now, maxAgeMs: 1_000 }],
    ["infinite waiting", { waiting: Infinity, at: now, maxAgeMs: 1_000 }],
    ["NaN time", { waiting: 50, at: NaN, maxAgeMs: 1_000 }],
    ["far-future time", { waiting: 50, at: now + 1e9, maxAgeMs: 1_000 }],
    ["NaN age limit", { waiting: 50, at: now, maxAgeMs: NaN }],
  ];
  for (const [name, load] of cases) {
    a.engineSource = engineOf(() => load);
    assert.equal(gate(a), false, name);
  }
  a.engineSource = engineOf(() => ({ waiting: 1e12, at: now, maxAgeMs: 1_000 }));
  assert.equal(gate(a), true, "a huge finite fresh count is saturation");
  s.flow.close();
});

Deno.test("engine gate: a Responses follow-up still goes to the worker holding its previous response", async () => {
  const s = testState([
    { url: "http://127.0.0.1:1", models: ["m"] },
    { url: "http://127.0.0.1:2", models: ["m"] },
  ], { flow: { queue: { engine_max_waiting: 4 } } });
  const [a, b] = s.backends;
  const at = s.clock.now();
  a.engineSource = engineOf(() => ({ waiting: 9, running: 8, at, maxAgeMs: 1_000 }));
  b.engineSource = engineOf(() => ({ waiting: 0, running: 0, at, maxAgeMs: 1_000 }));
  s.responses.set("resp_1", a);
  const responses = ENDPOINTS["/v1/responses"] as ProxyEndpoint;
  const body = JSON.stringify({ model: "m", input: "more", previous_response_id: "resp_1" });
  const plan = await parse(fakeRequest({ body }), responses, s, "req-1");
  const choice = choose(s, plan, new Set(), false, s.clock.now());
  // Only `a` holds resp_1 (vLLM keeps it in that instance's memory): `b` can only fail it.
  assert.equal(choice?.backend, a, "the owner's busy engine is still the only one that can answer");
  assert.equal(choice?.reason, "previous-response");
  s.flow.close();
});
