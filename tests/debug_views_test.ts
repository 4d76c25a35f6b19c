/**
 * The admin views: `GET /debug/workers` (per-worker state) and the dry-run `POST /debug/route`,
 * where they are served, and that a dry run sends and records nothing.
 */

import assert from "node:assert/strict";
import type { WorkerInput } from "../src/config/mod.ts";
import {
  chatCompletion,
  refusedUrl,
  type RouterHarness,
  routerHarness,
  startServer,
  type TestServer,
  waitFor,
} from "./_support.ts";

/** JSON workers that count the requests they get. */
async function countingWorkers(n: number): Promise<{ servers: TestServer[]; hits: number[] }> {
  const hits = new Array(n).fill(0);
  const servers: TestServer[] = [];
  for (let i = 0; i < n; i++) {
    servers.push(
      await startServer(async (req) => {
        await req.arrayBuffer();
        hits[i]++;
        return Response.json(chatCompletion(`w${i + 1}`));
      }),
    );
  }
  return { servers, hits };
}

const SYSTEM = "You are a meticulous assistant who answers in full sentences. ".repeat(20);

function chat(user: string, model = "m"): Record<string, unknown> {
  return {
    model,
    messages: [{ role: "system", content: SYSTEM }, { role: "user", content: user }],
  };
}

// deno-lint-ignore no-explicit-any -- the views are read field by field, as JSON
async function getJson(url: string, init: RequestInit = {}): Promise<[number, any]> {
  const res = await fetch(url, init);
  const text = await res.text();
  return [res.status, text === "" ? null : JSON.parse(text)];
}

/** A harness with an admin listener on port 0. */
function withAdmin(workers: WorkerInput[], router: Record<string, unknown> = {}) {
  return routerHarness(workers, {
    metrics: { addr: "127.0.0.1:0" },
    router: router as never,
  });
}

function admin(h: RouterHarness): string {
  assert.ok(h.running.adminUrl !== null);
  return h.running.adminUrl!;
}

Deno.test("/debug/workers shows each worker's models, health, breaker since, load, index and last error", async () => {
  const { servers } = await countingWorkers(1);
  const h = await withAdmin([{ url: servers[0].url, models: ["m"] }, {
    url: refusedUrl(),
    models: ["m"],
    breakerThreshold: 1,
  }], { strategy: "prefixaware" });
  try {
    // Routed to w1 and records its prefix; a request pinned to w2 fails there (retried on w1).
    const ok = await h.post(JSON.stringify(chat("first question")));
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    h.router.backends[0].up = false;
    const failed = await h.post(JSON.stringify(chat("second question")));
    await failed.body?.cancel();
    h.router.backends[0].up = true;
    await waitFor(() => h.router.inflight === 0);

    const [status, body] = await getJson(`${admin(h)}/debug/workers`);
    assert.equal(status, 200);
    assert.equal(body.strategy, "prefixaware");
    const [w1, w2] = body.workers;
    assert.equal(w1.id, "w1");
    assert.equal(w1.url, servers[0].url);
    assert.deepEqual(w1.models, ["m"]);
    assert.deepEqual(w1.health, { up: true });
    assert.equal(w1.breaker.state, "closed");
    assert.equal(typeof w1.breaker.since.at, "string");
    assert.ok(w1.prefix_index.chunks > 0, "w1 holds the first request's prefix");
    assert.ok(w1.prefix_index.nodes >= 1 && w1.prefix_index.bytes > 0);
    assert.equal(w1.inflight, 0);
    assert.equal(typeof w1.load.prefill_tokens_per_ms, "number");
    assert.equal(w1.load.inflight, 0);
    assert.equal(w1.last_error, null);
    assert.equal(w2.breaker.state, "open", "one connect failure opens a threshold-1 breaker");
    assert.ok(w2.breaker.since.ago_ms >= 0);
    assert.equal(w2.last_error.kind, "connect-error");
    assert.match(w2.last_error.message, /Worker w2/);
    assert.equal(w2.admitted, false);
  } finally {
    await h.close();
    for (const s of servers) await s.close();
  }
});

Deno.test("debug views: admin listener, or the main port only behind the API key", async () => {
  const { servers } = await countingWorkers(1);
  const open = await routerHarness([servers[0].url]);
  const keyed = await routerHarness([servers[0].url], { auth: { apiKeys: ["k1"] } });
  const both = await routerHarness([servers[0].url], {
    auth: { apiKeys: ["k1"] },
    metrics: { addr: "127.0.0.1:0" },
  });
  const key = { authorization: "Bearer k1" };
  try {
    assert.equal((await getJson(`${open.url}/debug/workers`))[0], 404, "never open to clients");
    assert.equal((await getJson(`${keyed.url}/debug/workers`))[0], 401);
    assert.equal((await getJson(`${keyed.url}/debug/workers`, { headers: key }))[0], 200);
    assert.equal(
      (await getJson(`${both.url}/debug/workers`, { headers: key }))[0],
      404,
      "with an admin listener, only there",
    );
    assert.equal((await getJson(`${admin(both)}/debug/workers`))[0], 401, "keyed there too");
    assert.equal((await getJson(`${admin(both)}/debug/workers`, { headers: key }))[0], 200);
    const [m] = await getJson(`${admin(both)}/debug/route`, { headers: key });
    assert.equal(m, 405, "the dry run is a POST");
  } finally {
    await open.close();
    await keyed.close();
    await both.close();
    for (const s of servers) await s.close();
  }
});

/** What a dry run must leave untouched. */
function snapshot(h: RouterHarness): string {
  return JSON.stringify({
    trees: h.router.backends.map((b) => b.prefix.stats()).map((s) => [s.chunks, s.inserts]),
    inflight: h.router.inflight,
    sessions: h.router.pinnedSessions,
  });
}

Deno.test("/debug/route explains the decision and records nothing", async () => {
  const { servers, hits } = await countingWorkers(2);
  const workers = servers.map((s) => ({ url: s.url, models: ["m"] }));
  const h = await withAdmin(workers, { strategy: "prefixaware" });
  const session = { "x-session-id": "s-1" };
  try {
    const routed = await h.post(JSON.stringify(chat("warm the cache")));
    const first = routed.headers.get("x-router-backend");
    await routed.body?.cancel();
    await waitFor(() => h.router.inflight === 0);
    const before = snapshot(h);
    const sentBefore = [...hits];

    const [status, out] = await getJson(`${admin(h)}/debug/route`, {
      method: "POST",
      headers: { "content-type": "application/json", ...session },
      body: JSON.stringify(chat("another question")),
    });
    assert.equal(status, 200, JSON.stringify(out));
    assert.equal(out.endpoint, "/v1/chat/completions");
    assert.deepEqual(out.model, { requested: "m", served: "m" });
    assert.equal(out.strategy, "prefixaware");
    assert.equal(out.decision.backend, first, "the worker holding the shared prefix");
    assert.equal(out.decision.reason, "longest-prefix");
    assert.equal(out.decision.rule, "strategy");
    const held = out.candidates.find((c: { id: string }) => c.id === first);
    const other = out.candidates.find((c: { id: string }) => c.id !== first);
    assert.ok(held.match_chunks > 0 && other.match_chunks === 0);
    assert.equal(held.offered, true);
    assert.equal(typeof held.load.pending_prefill_tokens, "number");
    assert.deepEqual(out.session, { id: "s-1", pinned_to: null });

    assert.equal(snapshot(h), before, "no index insert, no session pin, no in-flight change");
    assert.deepEqual(hits, sentBefore, "nothing sent to a worker");
  } finally {
    await h.close();
    for (const s of servers) await s.close();
  }
});

Deno.test("/debug/route: a pinned session, another endpoint, and a request that would fail", async () => {
  const { servers } = await countingWorkers(2);
  const h = await withAdmin(servers.map((s) => ({ url: s.url, models: ["m"] })));
  const post = (body: unknown, path = "", headers: Record<string, string> = {}) =>
    getJson(`${admin(h)}/debug/route${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  try {
    const res = await h.post(JSON.stringify(chat("pin me")), { headers: { "x-session-id": "s" } });
    const pinned = res.headers.get("x-router-backend");
    await res.body?.cancel();
    const [, p] = await post(chat("unrelated text ".repeat(20)), "", { "x-session-id": "s" });
    assert.deepEqual(p.decision, {
      backend: pinned,
      reason: "session-affinity",
      rule: "session-affinity",
    });

    const [, c] = await post(
      { model: "m", prompt: "Once upon a time ".repeat(10) },
      "?path=/v1/completions",
    );
    assert.equal(c.endpoint, "/v1/completions");
    assert.ok(c.request_chunks > 0);
    const [, f] = await post({ path: "/v1/completions", model: "m", prompt: "x".repeat(100) });
    assert.equal(f.endpoint, "/v1/completions", "path given as a body field");

    const [s404, missing] = await post(chat("hi", "no-such-model"));
    assert.equal(s404, 200);
    assert.equal(missing.decision, null);
    assert.equal(missing.would_answer.status, 404);
    assert.equal(missing.would_answer.error.code, "model_not_found");
    const [, bad] = await post("{not json");
    assert.equal(bad.would_answer.status, 400);
    const [s400, wrong] = await post(chat("hi"), "?path=/v1/audio/transcriptions");
    assert.equal(s400, 200);
    assert.equal(wrong.would_answer.status, 400);
    assert.equal(wrong.would_answer.error.param, "path");

    for (const b of h.router.backends) b.up = false;
    const [, none] = await post(chat("hi"));
    assert.equal(none.decision, null);
    assert.equal(none.would_answer.status, 503);
    assert.deepEqual(
      none.candidates.map((x: { excluded_because: string }) => x.excluded_because),
      ["health check failing", "health check failing"],
    );
  } finally {
    await h.close();
    for (const s of servers) await s.close();
  }
});

Deno.test("/debug/route leaves a stateful strategy's position alone and shows cost scores", async () => {
  const { servers } = await countingWorkers(3);
  const urls = servers.map((s) => s.url);
  const rr = await withAdmin(urls, { strategy: "roundrobin" });
  const cost = await withAdmin(urls, { strategy: "costaware" });
  const dry = (h: RouterHarness) =>
    getJson(`${admin(h)}/debug/route`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chat("hello")),
    });
  const live = async (h: RouterHarness) => {
    const res = await h.post(JSON.stringify(chat("hello")));
    await res.body?.cancel();
    return res.headers.get("x-router-backend");
  };
  try {
    assert.equal(await live(rr), "w1");
    for (let i = 0; i < 2; i++) await dry(rr);
    assert.equal(await live(rr), "w2", "the cycle did not move for the dry runs");

    const [, out] = await dry(cost);
    assert.deepEqual(out.score, { kind: "cost_ms", better: "lower" });
    for (const c of out.candidates) assert.equal(typeof c.score, "number");
    const best = out.candidates.reduce((a: { score: number }, b: { score: number }) =>
      b.score < a.score ? b : a
    );
    assert.equal(out.decision.reason, "min-cost");
    assert.ok(
      out.candidates.find((c: { id: string }) => c.id === out.decision.backend).score <=
        best.score * 1.05,
      "the decision is within the tie margin of the lowest cost",
    );
  } finally {
    await rr.close();
    await cost.close();
    for (const s of servers) await s.close();
  }
});
