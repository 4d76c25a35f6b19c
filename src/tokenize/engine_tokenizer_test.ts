/**
 * Engine tokenizer tests against an in-process fake of vLLM's `/tokenize` on 127.0.0.1 port 0:
 * the request bodies it sends, the ids it returns, and its bounds (timeout, size cap, in-flight
 * limit, error statuses, bad answers, the caller's abort).
 *
 * @module
 */

import assert from "node:assert/strict";
import { RouterError } from "../util/errors.ts";
import { EngineTokenizer } from "./engine_tokenizer.ts";
import { TokenizeError } from "./types.ts";

type Handler = (body: Record<string, unknown>, req: Request) => Response | Promise<Response>;

/** A fake engine whose `/tokenize` runs `handler`; records the bodies it got. */
async function withEngine(
  handler: Handler,
  fn: (url: string, seen: Record<string, unknown>[]) => Promise<void>,
): Promise<void> {
  const seen: Record<string, unknown>[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (new URL(req.url).pathname !== "/tokenize" || req.method !== "POST") {
      return new Response("not found", { status: 404 });
    }
    const body = await req.json();
    seen.push(body);
    return handler(body, req);
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    await server.shutdown();
  }
}

const ok = (tokens: unknown[]) =>
  Response.json({ count: tokens.length, max_model_len: 8192, tokens });

function reason(r: string) {
  return (e: unknown) => e instanceof TokenizeError && e.reason === r;
}

Deno.test("EngineTokenizer: chat and completion bodies, with vLLM's defaults written out", async () => {
  await withEngine(() => ok([1, 2, 3]), async (url, seen) => {
    const tok = new EngineTokenizer({ url: `${url}/v1/`, model: "fallback-model" });
    assert.equal(tok.name, `engine:${url}`);
    const tools = [{ type: "function", function: { name: "f" } }];
    const messages = [{ role: "user", content: "Hi" }];
    const chat = await tok.tokenize({
      kind: "chat",
      body: {
        model: "m",
        messages,
        tools,
        stream: true,
        chat_template_kwargs: { enable_thinking: false },
      },
    });
    assert.deepEqual(Array.from(chat.tokens), [1, 2, 3]);
    assert.equal(chat.cachedTokens, 0);
    await tok.tokenize({
      kind: "completion",
      body: { prompt: "Hello", add_special_tokens: false },
    });
    await tok.tokenize({
      kind: "completion",
      body: { prompt: ["Hello"], truncate_prompt_tokens: 1 },
    });
    assert.deepEqual(seen, [
      {
        model: "m",
        messages,
        add_generation_prompt: true,
        continue_final_message: false,
        add_special_tokens: false,
        tools,
        chat_template_kwargs: { enable_thinking: false },
      },
      { model: "fallback-model", prompt: "Hello", add_special_tokens: false },
      { model: "fallback-model", prompt: "Hello", add_special_tokens: true },
    ]);
    const s = tok.stats();
    assert.equal(s.requests, 3);
    assert.equal(s.failures, 0);
    assert.ok(s.engineMs > 0);
  });
});

Deno.test("EngineTokenizer: token-id prompts and truncation never call the engine", async () => {
  await withEngine(() => ok([9]), async (url, seen) => {
    const tok = new EngineTokenizer({ url });
    const r = await tok.tokenize({
      kind: "completion",
      body: { prompt: [5, 6, 7], truncate_prompt_tokens: 2 },
    });
    assert.deepEqual(Array.from(r.tokens), [6, 7]);
    assert.equal(seen.length, 0);
    await assert.rejects(
      tok.tokenize({ kind: "completion", body: { prompt: ["a", "b"] } }),
      reason("unsupported"),
    );
    await assert.rejects(tok.tokenize({ kind: "chat", body: { messages: [] } }), RouterError);
    assert.equal(seen.length, 0);
    assert.equal(tok.stats().failures, 2);
  });
});

Deno.test("EngineTokenizer: error statuses and unusable answers are engine_failed", async () => {
  const answers: Response[] = [
    Response.json({ error: { message: "Conversation roles must alternate" } }, { status: 400 }),
    new Response("<html>oops</html>", { status: 200 }),
    Response.json({ count: 1 }),
    Response.json({ tokens: [1, -1] }),
    Response.json({ tokens: [1, 2 ** 32] }),
    Response.json({ tokens: [1.5] }),
  ];
  let i = 0;
  await withEngine(() => answers[i++], async (url) => {
    const tok = new EngineTokenizer({ url });
    const body = { messages: [{ role: "user", content: "x" }] };
    await assert.rejects(
      tok.tokenize({ kind: "chat", body }),
      /answered 400: Conversation roles must alternate/,
    );
    for (let k = 1; k < answers.length; k++) {
      await assert.rejects(tok.tokenize({ kind: "chat", body }), reason("engine_failed"));
    }
    assert.equal(tok.stats().failures, answers.length);
  });
});

Deno.test("EngineTokenizer: a slow engine times out, a slow body too", async () => {
  const release = Promise.withResolvers<void>();
  await withEngine(async (body) => {
    if (body.prompt === "slow headers") {
      await release.promise;
      return ok([1]);
    }
    // Headers at once, then a body that never ends before the timeout.
    const stream = new ReadableStream<Uint8Array>({
      async start(ctl) {
        ctl.enqueue(new TextEncoder().encode('{"tokens": [1,'));
        await release.promise;
        ctl.close();
      },
    });
    return new Response(stream, { headers: { "content-type": "application/json" } });
  }, async (url) => {
    const tok = new EngineTokenizer({ url, timeoutMs: 100 });
    await assert.rejects(
      tok.tokenize({ kind: "completion", body: { prompt: "slow headers" } }),
      reason("timeout"),
    );
    await assert.rejects(
      tok.tokenize({ kind: "completion", body: { prompt: "slow body" } }),
      reason("timeout"),
    );
    assert.equal(tok.inFlight, 0);
    release.resolve();
  });
});

Deno.test("EngineTokenizer: an answer over the size cap is cancelled", async () => {
  const big = Array.from({ length: 5000 }, (_, i) => i);
  await withEngine((body) => {
    if (body.prompt === "declared") return ok(big);
    // No content-length: the cap applies while reading.
    const bytes = new TextEncoder().encode(JSON.stringify({ tokens: big }));
    const stream = new ReadableStream<Uint8Array>({
      start(ctl) {
        for (let at = 0; at < bytes.length; at += 1024) ctl.enqueue(bytes.slice(at, at + 1024));
        ctl.close();
      },
    });
    return new Response(stream);
  }, async (url) => {
    const tok = new EngineTokenizer({ url, maxResponseBytes: 4096 });
    await assert.rejects(
      tok.tokenize({ kind: "completion", body: { prompt: "declared" } }),
      reason("too_large"),
    );
    await assert.rejects(
      tok.tokenize({ kind: "completion", body: { prompt: "streamed" } }),
      reason("too_large"),
    );
    const roomy = new EngineTokenizer({ url, maxResponseBytes: 1 << 20 });
    const r = await roomy.tokenize({ kind: "completion", body: { prompt: "streamed" } });
    assert.equal(r.tokens.length, 5000);
  });
});

Deno.test("EngineTokenizer: calls over the in-flight limit fail at once; the caller's abort ends a call", async () => {
  const release = Promise.withResolvers<void>();
  await withEngine(async () => {
    await release.promise;
    return ok([1]);
  }, async (url) => {
    const tok = new EngineTokenizer({ url, maxInFlight: 2, timeoutMs: 10_000 });
    const body = { prompt: "x" };
    const a = tok.tokenize({ kind: "completion", body });
    const b = tok.tokenize({ kind: "completion", body });
    assert.equal(tok.inFlight, 2);
    await assert.rejects(tok.tokenize({ kind: "completion", body }), reason("overloaded"));
    const ctl = new AbortController();
    const limited = new EngineTokenizer({ url, timeoutMs: 10_000 });
    const c = limited.tokenize({ kind: "completion", body, signal: ctl.signal });
    ctl.abort();
    await assert.rejects(c, /aborted/);
    assert.equal(limited.inFlight, 0);
    release.resolve();
    assert.deepEqual(Array.from((await a).tokens), [1]);
    await b;
    assert.equal(tok.inFlight, 0);
  });
});

Deno.test("EngineTokenizer: an unreachable engine is engine_failed; bad options throw", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const tok = new EngineTokenizer({ url: `http://127.0.0.1:${port}` });
  await assert.rejects(
    tok.tokenize({ kind: "completion", body: { prompt: "x" } }),
    reason("engine_failed"),
  );
  assert.throws(() => new EngineTokenizer({ url: "ftp://x" }), /must be http/);
  assert.throws(
    () => new EngineTokenizer({ url: "http://x", timeoutMs: 0 }),
    /timeoutMs must be a positive/,
  );
});
