/**
 * The official `openai` npm client, pointed at the router with two in-process workers, completes a
 * streaming and a non-streaming chat request; its raw response shows the router's headers.
 *
 * @module
 */

import assert from "node:assert/strict";
import OpenAI from "openai";
import { configFromWorkers } from "../src/config/mod.ts";
import { silentLogger, startRouter } from "../src/router/mod.ts";
import { chatCompletion, sseChunk, sseResponse, sseUsage, startServer } from "./_support.ts";

/** A worker that answers like vLLM: JSON, or SSE with a final usage chunk when asked. */
function worker(name: string) {
  return startServer(async (req) => {
    const body = await req.json();
    if (!body.stream) return Response.json(chatCompletion(`hello from ${name}`, 40, 32));
    const events = [
      sseChunk("hello "),
      sseChunk(`from ${name}`),
      ...(body.stream_options?.include_usage ? [sseUsage(40, 32, 2)] : []),
      "data: [DONE]\n\n",
    ];
    return sseResponse(events);
  });
}

Deno.test("the openai client completes streaming and non-streaming chats through the router", async () => {
  const workers = [await worker("a"), await worker("b")];
  const running = await startRouter(
    configFromWorkers(workers.map((w) => w.url), {
      server: { addr: "127.0.0.1:0" },
      health: { intervalMs: 0 },
      router: { seed: 1, strategy: "prefixaware" },
    }),
    { logger: silentLogger },
  );
  try {
    const client = new OpenAI({ baseURL: `${running.url}/v1`, apiKey: "test-key", maxRetries: 0 });
    const messages = [
      { role: "system" as const, content: "You answer briefly. ".repeat(20) },
      { role: "user" as const, content: "Say hello." },
    ];

    const { data, response } = await client.chat.completions
      .create({ model: "test-model", messages })
      .withResponse();
    assert.match(data.choices[0].message.content ?? "", /^hello from [ab]$/);
    assert.equal(data.usage?.prompt_tokens_details?.cached_tokens, 32);
    assert.match(response.headers.get("x-router-backend") ?? "", /^w[12]$/);
    assert.ok(response.headers.get("x-router-reason"));
    assert.ok(response.headers.get("x-request-id"));

    const { data: stream, response: raw } = await client.chat.completions
      .create({
        model: "test-model",
        messages,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    assert.match(raw.headers.get("x-router-backend") ?? "", /^w[12]$/);
    assert.equal(raw.headers.get("x-router-reason"), "longest-prefix");
    let text = "";
    let cached: number | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) cached = chunk.usage.prompt_tokens_details?.cached_tokens;
    }
    assert.match(text, /^hello from [ab]$/);
    assert.equal(cached, 32);
  } finally {
    await running.shutdown();
    await Promise.all(workers.map((w) => w.close()));
  }
});
