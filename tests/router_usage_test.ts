/**
 * Usage from streams whose client did not ask for it (issue 19): the router adds
 * `stream_options.include_usage` upstream and drops the usage-only chunk from the client's
 * stream, and reads llama-server's `timings` when an engine sends no usage at all.
 *
 * @module
 */

import assert from "node:assert/strict";
import { routerHarness, sseData, sseResponse, startServer } from "./_support.ts";
import { startLlamaServer } from "./_llama_server.ts";

const SYSTEM = "You are a careful assistant. ".repeat(20);

function body(user: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    model: "test-model",
    stream: true,
    ...extra,
    messages: [{ role: "system", content: SYSTEM }, { role: "user", content: user }],
  });
}

function requestLines(logs: Record<string, unknown>[]): Record<string, unknown>[] {
  return logs.filter((l) => l.msg === "request");
}

Deno.test("usage: a stream without include_usage is asked for it upstream, and the client never sees it", async () => {
  const llama = await startLlamaServer(1);
  const h = await routerHarness([llama.url], {}, { closeAlso: [llama] });
  try {
    const sent = body("first question");
    await (await h.post(sent)).text();
    const res = await h.post(body("first question, again"));
    const events = sseData(await res.text());
    // What the engine sent without the usage chunk: content, finish with timings, [DONE].
    assert.equal(events.length, 3);
    assert.equal(events.at(-1), "[DONE]");
    assert.ok(events.every((e) => e === "[DONE]" || JSON.parse(e).choices.length === 1));
    // The engine was asked for usage, the rest of the body as the client sent it.
    const upstream = JSON.parse(llama.bodies[0]);
    assert.deepEqual(upstream.stream_options, { include_usage: true });
    assert.deepEqual({ ...upstream, stream_options: undefined }, {
      ...JSON.parse(sent),
      stream_options: undefined,
    });
    // And the router learned the usage.
    const [a, b] = requestLines(h.logs);
    assert.equal(typeof a.prompt_tokens, "number");
    assert.equal(a.cached_tokens, 0);
    assert.ok((b.cached_tokens as number) > 50, `cached ${b.cached_tokens}`);
  } finally {
    await h.close();
  }
});

Deno.test("usage: a stream that asks for usage goes upstream byte for byte and keeps its usage chunk", async () => {
  const llama = await startLlamaServer(1);
  const h = await routerHarness([llama.url], {}, { closeAlso: [llama] });
  try {
    const sent = body("hello", { stream_options: { include_usage: true } });
    const events = sseData(await (await h.post(sent)).text());
    assert.equal(llama.bodies[0], sent);
    assert.equal(events.length, 4);
    const usage = JSON.parse(events[2]);
    assert.deepEqual(usage.choices, []);
    assert.equal(typeof usage.usage.prompt_tokens, "number");
    // Other stream options are kept when include_usage is added.
    const other = body("hello", { stream_options: { continuous_usage_stats: false } });
    const events2 = sseData(await (await h.post(other)).text());
    assert.deepEqual(JSON.parse(llama.bodies[1]).stream_options, {
      continuous_usage_stats: false,
      include_usage: true,
    });
    assert.equal(events2.length, 3, "the added usage chunk is dropped");
    // A request that is not streamed is sent as it is.
    const plain = JSON.stringify({ ...JSON.parse(body("plain")), stream: false });
    await (await h.post(plain)).text();
    assert.equal(llama.bodies[2], plain);
  } finally {
    await h.close();
  }
});

Deno.test("usage: llama-server's timings give the router cached tokens when no usage chunk comes", async () => {
  // An engine that never sends usage in streams, only llama-server's timings on its last chunk.
  const worker = await startServer(async (req) => {
    await req.arrayBuffer();
    return sseResponse([
      `data: {"choices":[{"index":0,"delta":{"content":"ok"}}]}\n\n`,
      `data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],` +
      `"timings":{"cache_n":120,"prompt_n":30,"predicted_n":1}}\n\n`,
      "data: [DONE]\n\n",
    ]);
  });
  const h = await routerHarness([worker.url], {}, { closeAlso: [worker] });
  try {
    const events = sseData(await (await h.post(body("hi"))).text());
    assert.equal(events.length, 3, "the stream passes unchanged");
    const [line] = requestLines(h.logs);
    assert.equal(line.prompt_tokens, 150);
    assert.equal(line.cached_tokens, 120);
  } finally {
    await h.close();
  }
});
