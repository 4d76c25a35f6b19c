/**
 * Bad input refused: body size (413), JSON nesting depth and header size (400), and 5 000 hostile
 * bodies generated with fast-check (truncated JSON, wrong types, huge strings, deep nesting,
 * invalid UTF-8), each answered 4xx in OpenAI's error shape without reaching a worker, while a
 * valid stream runs through the same router in parallel and completes.
 *
 * `HOSTILE_BODIES` sets the count (default 5000); `HOSTILE_SEED` replays a run.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { SCAN_MIN_BYTES } from "../src/router/mod.ts";
import {
  chatBody,
  chatCompletion,
  readAll,
  routerHarness,
  sseChunk,
  sseData,
  startServer,
} from "./_support.ts";

const encoder = new TextEncoder();

/** Asserts an OpenAI-shaped error body and returns it. */
async function openAiError(
  res: Response,
): Promise<{ message: string; type: string; code: string }> {
  assert.equal(res.headers.get("content-type"), "application/json");
  const body = await res.json();
  assert.equal(typeof body.error?.message, "string");
  assert.equal(typeof body.error.type, "string");
  assert.ok("param" in body.error && "code" in body.error, JSON.stringify(body));
  return body.error;
}

/** A worker that counts the completion requests reaching it. */
async function countingWorker() {
  let hits = 0;
  const s = await startServer(async (req) => {
    hits++;
    await req.arrayBuffer();
    return Response.json(chatCompletion("ok"));
  });
  return { ...s, hits: () => hits };
}

function nested(depth: number, kind: "array" | "object"): string {
  return kind === "array"
    ? "[".repeat(depth) + "]".repeat(depth)
    : '{"a":'.repeat(depth - 1) + "{}" + "}".repeat(depth - 1);
}

Deno.test("body limit: 413 by Content-Length and by counting a chunked body", async () => {
  const w = await countingWorker();
  const h = await routerHarness([w.url], { server: { maxBodyBytes: 4096 } }, { closeAlso: [w] });
  try {
    const declared = await h.post(chatBody("x".repeat(5000)));
    assert.equal(declared.status, 413);
    assert.match((await openAiError(declared)).message, /exceeds the limit of 4096 bytes/);

    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 10; i++) c.enqueue(encoder.encode("x".repeat(1000)));
        c.close();
      },
    });
    const streamed = await fetch(`${h.url}/v1/chat/completions`, {
      method: "POST",
      body: chunked,
    });
    assert.equal(streamed.status, 413);
    assert.equal((await openAiError(streamed)).type, "invalid_request_error");
    assert.equal(w.hits(), 0);
  } finally {
    await h.close();
  }
});

Deno.test("JSON depth: deeper than max_json_depth is a 400 before any worker sees it, on both the walk and the scan path", async () => {
  const w = await countingWorker();
  const h = await routerHarness([w.url], { server: { maxJsonDepth: 16 } }, { closeAlso: [w] });
  try {
    const body = (extra: string, pad = 0) =>
      `{"model":"m","pad":"${"p".repeat(pad)}","messages":[{"role":"user","content":"hi"}],` +
      `"extra":${extra}}`;
    // The top-level object is depth 1, so extra may nest 15 levels.
    for (const pad of [0, SCAN_MIN_BYTES]) {
      for (const kind of ["array", "object"] as const) {
        const ok = await h.post(body(nested(15, kind), pad));
        assert.equal(ok.status, 200, `depth 16 passes (pad ${pad}, ${kind})`);
        await ok.body?.cancel();
        const deep = await h.post(body(nested(16, kind), pad));
        assert.equal(deep.status, 400, `depth 17 is refused (pad ${pad}, ${kind})`);
        const err = await openAiError(deep);
        assert.equal(err.code, "json_too_deep");
        assert.match(err.message, /deeper than the limit of 16 levels/);
      }
    }
    // Brackets inside strings do not count.
    const quoted = await h.post(body(JSON.stringify("[".repeat(100) + '\\"{'.repeat(50)), 70_000));
    assert.equal(quoted.status, 200);
    await quoted.body?.cancel();
    assert.equal(w.hits(), 5, "the four bodies within the limit and the quoted one");
  } finally {
    await h.close();
  }
});

Deno.test("header limit: an oversized header block is a 400 in OpenAI's shape and never forwarded", async () => {
  const w = await countingWorker();
  const h = await routerHarness([w.url], { server: { maxHeaderBytes: 8192 } }, { closeAlso: [w] });
  try {
    const res = await h.post(chatBody("x"), { headers: { "x-big": "a".repeat(9000) } });
    assert.equal(res.status, 400);
    const err = await openAiError(res);
    assert.equal(err.code, "headers_too_large");
    assert.match(err.message, /exceed the limit of 8192 bytes/);
    const ok = await h.post(chatBody("x"), { headers: { "x-fine": "a".repeat(4000) } });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    assert.equal(w.hits(), 1);
  } finally {
    await h.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Hostile bodies.

interface Hostile {
  readonly kind: string;
  readonly path: string;
  readonly body: Uint8Array<ArrayBuffer>;
  /** Statuses this body may get. */
  readonly want: readonly number[];
}

const MAX_BODY = 128 * 1024;
const DEPTH = 64;

const json = (v: unknown) => encoder.encode(JSON.stringify(v));
const chatPath = "/v1/chat/completions";

const messageArb = fc.record({
  role: fc.constantFrom("system", "user", "assistant"),
  content: fc.string({ maxLength: 120, unit: "grapheme" }),
});
const validChatArb = fc.record({
  model: fc.constantFrom("m", "llama"),
  stream: fc.boolean(),
  messages: fc.array(messageArb, { minLength: 1, maxLength: 4 }),
});

const truncatedArb: fc.Arbitrary<Hostile> = validChatArb.chain((v) => {
  const text = JSON.stringify(v);
  return fc.integer({ min: 1, max: text.length - 1 }).map((n) => ({
    kind: "truncated",
    path: chatPath,
    body: encoder.encode(text.slice(0, n)),
    want: [400],
  }));
});

/** Any JSON value that is not a (non-empty) array. */
const notArray = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constant([]),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);
const notString = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);
const notObject = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.integer(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 2 }),
);

const wrongTypeArb: fc.Arbitrary<Hostile> = fc.oneof(
  notArray.map((messages) => ({ model: "m", messages })),
  fc.array(notObject, { minLength: 1, maxLength: 3 }).map((messages) => ({ model: "m", messages })),
  notString.map((role) => ({ model: "m", messages: [{ role, content: "hi" }] })),
  fc.oneof(fc.integer(), fc.boolean(), fc.dictionary(fc.string({ maxLength: 3 }), fc.integer()))
    .map((content) => ({ model: "m", messages: [{ role: "user", content }] })),
  fc.oneof(
    notObject.map((part) => [part]),
    notString.map((type) => [{ type, text: "x" }]),
    notString.map((text) => [{ type: "text", text }]),
  ).map((content) => ({ model: "m", messages: [{ role: "user", content }] })),
  notString.map((model) => ({ model, messages: [{ role: "user", content: "hi" }] })),
  fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.array(fc.boolean(), { maxLength: 2 }))
    .map((stream) => ({ model: "m", stream, messages: [{ role: "user", content: "hi" }] })),
  fc.oneof(
    fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 3 }),
    fc.string({ maxLength: 10 }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
  ),
).map((v) => ({ kind: "wrong-type", path: chatPath, body: json(v), want: [400] }));

const wrongPromptArb: fc.Arbitrary<Hostile> = fc.oneof(
  fc.boolean(),
  fc.constant(null),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }),
  fc.array(fc.double({ min: 0.1, max: 0.9 }), { minLength: 1, maxLength: 3 }),
  fc.array(fc.boolean(), { minLength: 1, maxLength: 3 }),
  fc.tuple(fc.string({ maxLength: 4 }), fc.integer()).map(([s, n]) => [s, n]),
  fc.tuple(fc.array(fc.integer(), { maxLength: 2 }), fc.string({ maxLength: 3 })).map(
    ([a, s]) => [a, s],
  ),
).map((prompt) => ({
  kind: "wrong-type",
  path: "/v1/completions",
  body: json({ model: "m", prompt }),
  want: [400],
}));

const hugeArb: fc.Arbitrary<Hostile> = fc.tuple(
  fc.string({ minLength: 1, maxLength: 6, unit: "binary" }),
  fc.boolean(),
).chain(([unit, over]) => {
  // Bytes the unit takes inside a JSON string (control characters are escaped).
  const unitBytes = Math.max(1, encoder.encode(JSON.stringify(unit)).length - 2);
  const [min, max] = over ? [MAX_BODY + 1, MAX_BODY * 2] : [SCAN_MIN_BYTES, MAX_BODY - 100];
  return fc.integer({ min: Math.ceil(min / unitBytes), max: Math.floor(max / unitBytes) }).map(
    (n) => {
      const big = unit.repeat(n);
      // Under the limit the huge string sits where a list belongs (400); over it, anywhere (413).
      const v = over
        ? { model: "m", messages: [{ role: "user", content: big }] }
        : { model: "m", messages: big };
      return {
        kind: over ? "huge-over-limit" : "huge-wrong-type",
        path: chatPath,
        body: json(v),
        want: [over ? 413 : 400],
      };
    },
  );
});

const deepArb: fc.Arbitrary<Hostile> = fc.tuple(
  fc.integer({ min: DEPTH + 1, max: 5000 }),
  fc.constantFrom("array", "object") as fc.Arbitrary<"array" | "object">,
  fc.constantFrom("extra", "content", "top"),
  fc.boolean(),
).map(([depth, shape, where, pad]) => {
  const deep = nested(depth, shape);
  const padding = pad ? `,"pad":"${"p".repeat(SCAN_MIN_BYTES)}"` : "";
  const text = where === "top"
    ? deep
    : where === "content"
    ? `{"model":"m"${padding},"messages":[{"role":"user","content":[{"type":"x","v":${deep}}]}]}`
    : `{"model":"m"${padding},"messages":[{"role":"user","content":"hi"}],"extra":${deep}}`;
  return { kind: "deep", path: chatPath, body: encoder.encode(text), want: [400] };
});

const BAD_UTF8 = [[0xff], [0xfe], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80], [
  0xf8,
  0x88,
  0x80,
  0x80,
  0x80,
], [0xf4, 0x90, 0x80, 0x80]];

const invalidUtf8Arb: fc.Arbitrary<Hostile> = fc.tuple(
  validChatArb,
  fc.constantFrom(...BAD_UTF8),
  fc.nat(),
).map(([v, bad, at]) => {
  const text = JSON.stringify({ ...v, messages: [...v.messages, { role: "user", content: "@@" }] });
  const [before, after] = text.split('"@@"');
  const pre = encoder.encode(before + '"' + "x".repeat(at % 5));
  const post = encoder.encode('"' + after);
  const body = new Uint8Array(pre.length + bad.length + post.length);
  body.set(pre, 0);
  body.set(bad, pre.length);
  body.set(post, pre.length + bad.length);
  return { kind: "invalid-utf8", path: chatPath, body, want: [400] };
});

const hostileArb: fc.Arbitrary<Hostile> = fc.oneof(
  { arbitrary: truncatedArb, weight: 3 },
  { arbitrary: wrongTypeArb, weight: 4 },
  { arbitrary: wrongPromptArb, weight: 1 },
  { arbitrary: hugeArb, weight: 1 },
  { arbitrary: deepArb, weight: 2 },
  { arbitrary: invalidUtf8Arb, weight: 2 },
);

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

Deno.test("5000 hostile bodies each get a 4xx in OpenAI's shape, none reaches a worker, and a valid stream in parallel completes", async () => {
  const count = Number(Deno.env.get("HOSTILE_BODIES") ?? 5000);
  const seed = Number(Deno.env.get("HOSTILE_SEED") ?? 20_261_125);
  let hostileHits = 0;
  let streamEvents = 0;
  let stop = false;
  const worker = await startServer(async (req) => {
    const text = await req.text();
    if (!text.includes("the valid stream")) {
      hostileHits++;
      return Response.json(chatCompletion("should not happen"));
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        const step = () => {
          if (stop && streamEvents > 0) {
            c.enqueue(encoder.encode("data: [DONE]\n\n"));
            c.close();
            return;
          }
          c.enqueue(encoder.encode(sseChunk(`e${streamEvents++}`)));
          timer = setTimeout(step, 5);
        };
        step();
      },
      cancel() {
        clearTimeout(timer);
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });
  const h = await routerHarness([worker.url], {
    server: { maxBodyBytes: MAX_BODY, maxJsonDepth: DEPTH },
  }, { closeAlso: [worker] });
  const unhandled: unknown[] = [];
  const onUnhandled = (e: PromiseRejectionEvent) => {
    unhandled.push(e.reason);
    e.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  try {
    const valid = h.post(chatBody("the valid stream", { stream: true })).then(readAll);
    const bodies = fc.sample(hostileArb, { numRuns: count, seed });
    const byKind = new Map<string, number>();
    const failures: string[] = [];
    await pool(bodies, 8, async (b) => {
      byKind.set(b.kind, (byKind.get(b.kind) ?? 0) + 1);
      const res = await h.post(b.body, { path: b.path });
      try {
        assert.ok(b.want.includes(res.status), `status ${res.status}, want ${b.want}`);
        await openAiError(res);
      } catch (err) {
        failures.push(
          `${b.kind} (seed ${seed}): ${(err as Error).message}; body starts ` +
            JSON.stringify(new TextDecoder().decode(b.body.subarray(0, 120))),
        );
        await res.body?.cancel().catch(() => {});
      }
    });
    stop = true;
    const { text, error } = await valid;
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} hostile bodies misanswered`);
    assert.equal(hostileHits, 0, "a hostile body reached the worker");
    assert.equal(error, null);
    const data = sseData(text);
    assert.equal(data.at(-1), "[DONE]");
    assert.equal(data.length - 1, streamEvents, "every event of the valid stream arrived");
    for (let i = 0; i < data.length - 1; i++) {
      assert.equal(JSON.parse(data[i]).choices[0].delta.content, `e${i}`, "in order");
    }
    for (
      const kind of [
        "truncated",
        "wrong-type",
        "huge-over-limit",
        "huge-wrong-type",
        "deep",
        "invalid-utf8",
      ]
    ) {
      if (count >= 1000) assert.ok((byKind.get(kind) ?? 0) > 0, `no ${kind} body generated`);
    }
    assert.equal(h.router.inflight, 0);
    assert.deepEqual(unhandled, []);
    console.log(
      `hostile bodies: ${count} sent (seed ${seed}), ${count - failures.length} answered 4xx ` +
        `as expected, ${failures.length} not; by kind ${
          JSON.stringify(Object.fromEntries(byKind))
        }; ` +
        `valid stream: ${streamEvents} events, completed`,
    );
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
    stop = true;
    await h.close();
  }
});
