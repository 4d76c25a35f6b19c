/**
 * Every answer of the router is counted once in `router_requests_total`, with the cause, endpoint
 * and model labels docs/metrics.md gives; TTFT for streams; `model` on the access-log line.
 */

import assert from "node:assert/strict";
import {
  chatBody,
  chatCompletion,
  heldWorker,
  refusedUrl,
  type RouterHarness,
  routerHarness,
  sample,
  sseWorker,
  startServer,
  waitFor,
} from "./_support.ts";

const CHAT = "/v1/chat/completions";

/** All `router_requests_total` samples, as label maps with their values. */
function requestSamples(text: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    const m = /^router_requests_total\{(.*)\} (\S+)$/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of m[1].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ labels, value: Number(m[2]) });
  }
  return out;
}

/** Sum of `router_requests_total` over the samples whose labels include `want`. */
function answers(text: string, want: Record<string, string>): number {
  return requestSamples(text)
    .filter((s) => Object.entries(want).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

/** The metrics text read through the router's own registry (counting no scrape of its own). */
function metricsOf(h: RouterHarness): Promise<string> {
  return h.router.metrics.render();
}

function chatWith(model: string, stream = false): string {
  return JSON.stringify({
    model,
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
    messages: [{ role: "user", content: "Hello there, how are you today? ".repeat(4) }],
  });
}

Deno.test("proxied answers carry cause, endpoint and model; unknown names are `other`", async () => {
  const worker = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion("ok"));
  });
  const unknown = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion("ok"));
  });
  // w1 serves "m" (configured); w2's list is unknown, so it may take any other name.
  const h = await routerHarness([{ url: worker.url, models: ["m"] }, { url: unknown.url }], {}, {
    closeAlso: [worker, unknown],
  });
  try {
    for (const model of ["m", "hostile-name-1", "hostile-name-2"]) {
      const res = await h.post(chatWith(model));
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    await waitFor(() => h.router.inflight === 0);
    const text = await metricsOf(h);
    const base = { cause: "proxied", endpoint: CHAT, status: "200" };
    assert.equal(answers(text, { ...base, model: "m", backend: "w1" }), 1);
    assert.equal(answers(text, { ...base, model: "other", backend: "w2" }), 2);
    assert.ok(!text.includes("hostile-name"), "no series per client-chosen name");
    assert.equal(
      sample(text, "router_request_duration_seconds_count", { endpoint: CHAT, model: "m" }),
      1,
    );
    const lines = h.logs.filter((l) => l.msg === "request");
    // The access log is bounded the same way: a name no worker is known to serve is `other`.
    assert.deepEqual(lines.map((l) => l.model), ["m", "other", "other"]);
  } finally {
    await h.close();
  }
});

Deno.test("a streamed answer is observed in the TTFT histogram by endpoint and model", async () => {
  const sse = await sseWorker({ events: 3, gapMs: 5 });
  const h = await routerHarness([{ url: sse.url, models: ["m"] }], {}, { closeAlso: [sse] });
  try {
    const res = await h.post(chatWith("m", true));
    assert.equal(res.status, 200);
    await res.text();
    await waitFor(() => h.router.inflight === 0);
    const text = await metricsOf(h);
    const l = { endpoint: CHAT, model: "m" };
    assert.equal(sample(text, "router_time_to_first_token_seconds_count", l), 1);
    assert.ok(sample(text, "router_time_to_first_token_seconds_sum", l) > 0);
    assert.equal(
      sample(text, "router_time_to_first_byte_seconds_count", { backend: "w1", stream: "true" }),
      1,
    );
    // A JSON answer has no TTFT sample.
    const json = await h.post(chatWith("m", false));
    await json.body?.cancel();
    await waitFor(() => h.router.inflight === 0);
    const after = await metricsOf(h);
    assert.equal(sample(after, "router_time_to_first_token_seconds_count", l), 1);
  } finally {
    await h.close();
  }
});

Deno.test("the router's own errors: router_error 502/503, limit 400/413, not_found for models", async () => {
  const h = await routerHarness([{ url: refusedUrl(), models: ["m"] }], {
    router: { maxRetries: 0 },
    server: { maxBodyBytes: 4096 },
  });
  try {
    const failed = await h.post(chatWith("m"));
    assert.equal(failed.status, 502);
    await failed.body?.cancel();
    h.router.backends[0].up = false; // no worker admitted: 503
    const none = await h.post(chatWith("m"));
    assert.equal(none.status, 503);
    await none.body?.cancel();
    const bad = await h.post("{not json");
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    const big = await h.post(chatBody("x".repeat(8000)));
    assert.equal(big.status, 413);
    await big.body?.cancel();
    const unknown = await h.post(chatWith("no-such-model"));
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    const text = await metricsOf(h);
    const e = { endpoint: CHAT };
    assert.equal(answers(text, { ...e, cause: "router_error", status: "502", backend: "w1" }), 1);
    assert.equal(answers(text, { ...e, cause: "router_error", status: "503", backend: "none" }), 1);
    assert.equal(answers(text, { ...e, cause: "router_error", model: "m" }), 2);
    assert.equal(answers(text, { ...e, cause: "limit", status: "400", model: "none" }), 1);
    assert.equal(answers(text, { ...e, cause: "limit", status: "413" }), 1);
    assert.equal(answers(text, { ...e, cause: "not_found", status: "404" }), 1);
    assert.equal(answers(text, {}), 5, "each answer counted once");
    // The durations of the three parse failures are observed (the pipeline ran), under no model.
    assert.equal(sample(text, "router_request_duration_seconds_count", { model: "none" }), 3);
  } finally {
    await h.close();
  }
});

Deno.test("denials and local endpoints: auth 401, not_found 404, method 405, local", async () => {
  const worker = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion("ok"));
  });
  const h = await routerHarness([worker.url], { auth: { apiKeys: ["k1"] } }, {
    closeAlso: [worker],
  });
  const auth = { authorization: "Bearer k1" };
  try {
    const denied = await h.post(chatWith("m"));
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    const missing = await fetch(`${h.url}/no/such/path`, { headers: auth });
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const method = await fetch(`${h.url}${CHAT}`, { headers: auth });
    assert.equal(method.status, 405);
    await method.body?.cancel();
    const health = await fetch(`${h.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const models = await fetch(`${h.url}/v1/models`, { headers: auth });
    assert.equal(models.status, 200);
    await models.body?.cancel();
    const text = await metricsOf(h);
    assert.equal(answers(text, { cause: "auth", status: "401", endpoint: CHAT }), 1);
    assert.equal(answers(text, { cause: "not_found", status: "404", endpoint: "none" }), 1);
    assert.equal(answers(text, { cause: "method", status: "405", endpoint: CHAT }), 1);
    assert.equal(answers(text, { cause: "local", status: "200", endpoint: "/healthz" }), 1);
    assert.equal(answers(text, { cause: "local", status: "200", endpoint: "/v1/models" }), 1);
    assert.equal(answers(text, {}), 5);
    assert.ok(!text.includes("/no/such/path"), "never the raw path");
  } finally {
    await h.close();
  }
});

Deno.test("a client that leaves before the answer is client_gone 499", async () => {
  const worker = await heldWorker();
  const h = await routerHarness([worker.url], {}, { closeAlso: [worker] });
  try {
    const ctl = new AbortController();
    const pending = h.post(chatWith("m"), { signal: ctl.signal }).catch(() => null);
    assert.ok(await waitFor(() => h.router.inflight === 1, 5000));
    ctl.abort();
    await pending;
    const counted = async () =>
      answers(await metricsOf(h), { cause: "client_gone", status: "499", backend: "w1" });
    const end = Date.now() + 5000;
    while ((await counted()) === 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(await counted(), 1);
    worker.release();
    assert.equal(answers(await metricsOf(h), {}), 1, "counted once");
  } finally {
    worker.release();
    await h.close();
  }
});

Deno.test("a client that leaves while sending its body is client_gone 499, not an internal error", async () => {
  const worker = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion("ok"));
  });
  const h = await routerHarness([worker.url], {}, { closeAlso: [worker] });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: h.running.port });
    const head = `POST ${CHAT} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
      "content-length: 1000\r\n\r\n";
    await conn.write(new TextEncoder().encode(head + '{"model":"m","mess'));
    conn.close();
    const counted = async () =>
      answers(await metricsOf(h), { cause: "client_gone", status: "499" });
    const end = Date.now() + 5000;
    while ((await counted()) === 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(await counted(), 1);
    const text = await metricsOf(h);
    assert.equal(answers(text, { cause: "internal" }), 0);
    assert.equal(h.logs.find((l) => l.msg === "request")?.status, 499);
  } finally {
    await h.close();
  }
});
