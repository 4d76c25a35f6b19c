import assert from "node:assert/strict";
import fc from "fast-check";
import { tapReader, type TapResult, tapWhole } from "./usage_tap.ts";

const enc = new TextEncoder();

/** A body that sends `chunks`, then fails with `fail` (or ends). */
function body(chunks: string[], fail?: Error): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i < chunks.length) c.enqueue(enc.encode(chunks[i++]));
      else if (fail) c.error(fail);
      else c.close();
    },
  });
}

async function run(
  chunks: string[],
  opts: { fail?: Error; sse: boolean; event?: boolean; first?: boolean },
) {
  const reader = body(chunks, opts.fail).getReader();
  let first: Uint8Array | null = null;
  if (opts.first) first = (await reader.read()).value ?? null;
  let result: TapResult | undefined;
  let chunkCalls = 0;
  let firstTokens = 0;
  let t = 0;
  const out = tapReader(reader, first, {
    now: () => (t += 10),
    start: 0,
    sse: opts.sse,
    onChunk: () => chunkCalls++,
    onFirstToken: () => firstTokens++,
    errorEvent: opts.event ? () => JSON.stringify({ error: { message: "boom" } }) : undefined,
    onDone: (r) => (result = r),
  });
  let text = "";
  let error: unknown = null;
  try {
    for await (const c of out) text += new TextDecoder().decode(c);
  } catch (err) {
    error = err;
  }
  return { text, error, result: result!, chunkCalls, firstTokens };
}

Deno.test("a pre-read first chunk goes out first and counts as the first byte", async () => {
  const r = await run(['data: {"content":"a"}\n\n', "data: [DONE]\n\n"], {
    sse: true,
    first: true,
  });
  assert.equal(r.text, 'data: {"content":"a"}\n\ndata: [DONE]\n\n');
  assert.equal(r.result.outcome, "done");
  assert.equal(r.result.firstByteMs, 10, "timed when the tap was built");
  assert.equal(r.result.bytes, r.text.length);
  assert.equal(r.chunkCalls, 1, "onChunk for the chunks the tap read itself");
});

Deno.test("an SSE body that fails ends with the error event and closes cleanly", async () => {
  const r = await run(['data: {"content":"a"}\n\n'], {
    sse: true,
    event: true,
    fail: new Error("gone"),
  });
  assert.equal(r.error, null);
  assert.equal(r.text, 'data: {"content":"a"}\n\ndata: {"error":{"message":"boom"}}\n\n');
  assert.equal(r.result.outcome, "error");
  assert.equal((r.result.error as Error).message, "gone");
});

Deno.test("a failure inside an event closes the partial event before the error event", async () => {
  const r = await run(['data: {"content":"a"}\n\ndata: {"cont'], {
    sse: true,
    event: true,
    fail: new Error("gone"),
  });
  assert.ok(r.text.endsWith('data: {"cont\n\ndata: {"error":{"message":"boom"}}\n\n'), r.text);
});

Deno.test("without an error event (or not SSE) a failing body errors the client's stream", async () => {
  for (const opts of [{ sse: true, event: false }, { sse: false, event: true }]) {
    const r = await run(["partial"], { ...opts, fail: new Error("gone") });
    assert.equal((r.error as Error).message, "gone");
    assert.equal(r.result.outcome, "error");
  }
});

Deno.test("tapWhole reports what tapReader reports for the same complete JSON body", async () => {
  const json = JSON.stringify({
    choices: [{ message: { role: "assistant", content: "Hi there" } }],
    usage: {
      prompt_tokens: 120,
      completion_tokens: 3,
      prompt_tokens_details: { cached_tokens: 96 },
    },
  });
  const streamed = await run([json], { sse: false });
  let tokens = 0;
  const whole = tapWhole(enc.encode(json), {
    now: () => 7,
    start: 2,
    onFirstToken: () => tokens++,
  });
  assert.equal(whole.outcome, "done");
  assert.equal(whole.bytes, streamed.result.bytes);
  assert.deepEqual(whole.usage, streamed.result.usage);
  assert.deepEqual(whole.usage, { promptTokens: 120, completionTokens: 3, cachedTokens: 96 });
  assert.equal(whole.firstByteMs, 5);
  assert.equal(whole.firstTokenMs, 5);
  assert.equal(tokens, 1);
  const empty = tapWhole(new Uint8Array(0), { now: () => 1 });
  assert.deepEqual([empty.bytes, empty.firstByteMs, empty.firstTokenMs, empty.usage], [
    0,
    null,
    null,
    null,
  ]);
});

Deno.test("usage is found however the body is cut into chunks, long streams included (property)", async () => {
  // A stream of many token events, then the usage chunk, then [DONE]; cut at random places. The
  // usage object is padded to 7 KB, so it parses only if the kept tail (8 KB) is whole and in order.
  const events = Array.from(
    { length: 300 },
    (_, i) => `data: {"choices":[{"index":0,"delta":{"content":"t${i} "}}]}\n\n`,
  );
  const usage =
    `data: {"choices":[],"usage":{"prompt_tokens":1234,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1024,"pad":"${
      "x".repeat(7000)
    }"}}}\n\n`;
  const text = events.join("") + usage + "data: [DONE]\n\n";
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: text.length - 1 }), { maxLength: 400 }),
      async (cuts) => {
        const at = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks: string[] = [];
        let prev = 0;
        for (const c of [...at, text.length]) {
          chunks.push(text.slice(prev, c));
          prev = c;
        }
        const { result, text: out, firstTokens } = await run(chunks, { sse: true });
        assert.equal(out, text);
        // The first token ("t0 ") is seen even when a cut splits its marker across chunks.
        assert.notEqual(result?.firstTokenMs, null);
        assert.equal(firstTokens, 1);
        assert.deepEqual(result?.usage, {
          promptTokens: 1234,
          completionTokens: 300,
          cachedTokens: 1024,
        });
        assert.equal(result?.bytes, text.length);
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("a client that cancels: outcome cancelled, reported once, the upstream cancelled too", async () => {
  let upstreamCancelled: unknown = null;
  const upstream = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(enc.encode('data: {"content":"a"}\n\n'));
    },
    cancel(reason) {
      upstreamCancelled = reason;
    },
  });
  const results: TapResult[] = [];
  const out = tapReader(upstream.getReader(), null, {
    now: () => 0,
    sse: true,
    onDone: (r) => results.push(r),
  });
  const reader = out.getReader();
  await reader.read();
  await reader.cancel("bye");
  assert.equal(results.length, 1);
  assert.equal(results[0].outcome, "cancelled");
  assert.equal(upstreamCancelled, "bye");
});

Deno.test("a token marker split across chunks still counts as the first token", async () => {
  const r = await run(
    ['data: {"choices":[{"index":0,"delta":{"con', 'tent":"hi"}}]}\n\n', "data: [DONE]\n\n"],
    { sse: true },
  );
  assert.equal(r.firstTokens, 1);
  assert.notEqual(r.result.firstTokenMs, null);
  assert.ok(
    r.result.firstTokenMs! > r.result.firstByteMs!,
    "seen at the second chunk, after the first byte",
  );
});

Deno.test("answer text, reasoning and tool calls count as the first token; empty values do not", () => {
  const cases: [string, boolean][] = [
    ['{"choices":[{"delta":{"role":"assistant","content":""}}]}', false],
    ['{"choices":[{"delta":{"content":null}}]}', false],
    ['{"choices":[{"message":{"content":null,"tool_calls":[]}}]}', false],
    ['{"choices":[{"delta":{"content":"hi"}}]}', true],
    ['{"choices": [{"delta": {"content": "hi"}}]}', true], // Python's json.dumps spacing
    ['{"choices":[{"delta":{"reasoning_content":"Let me"}}]}', true],
    ['{"choices":[{"delta":{"reasoning": "Let me"}}]}', true],
    ['{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}', true],
    ['{"choices":[{"text":"once upon"}]}', true],
    ['{"content":[{"type":"text","text":"hi"}]}', true],
    ['{"type":"text"}', false],
  ];
  for (const [json, expected] of cases) {
    let tokens = 0;
    const r = tapWhole(enc.encode(json), { now: () => 3, start: 1, onFirstToken: () => tokens++ });
    assert.equal(r.firstTokenMs !== null, expected, json);
    assert.equal(tokens, expected ? 1 : 0, json);
  }
});

Deno.test("usage counts that are not finite numbers >= 0 are ignored, not passed on", () => {
  const usage = (u: string) =>
    tapWhole(enc.encode(`{"choices":[],"usage":${u}}`), { now: () => 1 }).usage;
  assert.equal(usage('{"prompt_tokens":1e999,"completion_tokens":1}'), null);
  assert.equal(usage('{"prompt_tokens":-5,"completion_tokens":1}'), null);
  assert.deepEqual(
    usage(
      '{"prompt_tokens":10,"completion_tokens":1e999,"prompt_tokens_details":{"cached_tokens":-1}}',
    ),
    { promptTokens: 10, completionTokens: 0, cachedTokens: null },
  );
  assert.deepEqual(
    usage('{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":8}}'),
    { promptTokens: 10, completionTokens: 2, cachedTokens: 8 },
  );
});

Deno.test("llama-server's timings give the usage when the stream has no usage chunk", async () => {
  // llama-server's last chunk without include_usage: finish_reason and timings, no usage.
  const last = JSON.stringify({
    choices: [{ index: 0, delta: {}, finish_reason: "stop" }],
    object: "chat.completion.chunk",
    timings: { cache_n: 236, prompt_n: 14, prompt_ms: 30.9, predicted_n: 35, predicted_ms: 661 },
  });
  const chunks = [`data: {"choices":[{"delta":{"content":"hi"}}]}\n\n`, `data: ${last}\n\n`];
  const r = (await run([...chunks, "data: [DONE]\n\n"], { sse: true })).result;
  assert.deepEqual(r.usage, { promptTokens: 250, completionTokens: 35, cachedTokens: 236 });
  // An older build's final chunk has usage without details: timings add the cached count.
  const withUsage = JSON.stringify({
    choices: [{ index: 0, delta: {}, finish_reason: "stop" }],
    usage: { prompt_tokens: 250, completion_tokens: 35, total_tokens: 285 },
    timings: { cache_n: 236, prompt_n: 14, predicted_n: 35 },
  });
  const r2 = (await run([chunks[0], `data: ${withUsage}\n\n`], { sse: true })).result;
  assert.deepEqual(r2.usage, { promptTokens: 250, completionTokens: 35, cachedTokens: 236 });
  // The engine's own cached_tokens wins; a timings block without prompt_n is no usage.
  const both = JSON.stringify({
    choices: [],
    usage: {
      prompt_tokens: 250,
      completion_tokens: 3,
      prompt_tokens_details: { cached_tokens: 8 },
    },
    timings: { cache_n: 236, prompt_n: 14 },
  });
  const r3 = (await run([`data: ${both}\n\n`], { sse: true })).result;
  assert.equal(r3.usage!.cachedTokens, 8);
  const r4 = (await run([`data: {"timings":{"cache_n":3}}\n\n`], { sse: true })).result;
  assert.equal(r4.usage, null);
});
