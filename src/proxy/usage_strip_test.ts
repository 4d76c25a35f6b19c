import assert from "node:assert/strict";
import fc from "fast-check";
import type { BodySource } from "../http/types.ts";
import { dropUsageEvents, MAX_HELD_BYTES } from "./usage_strip.ts";

const enc = new TextEncoder();

function source(chunks: Uint8Array[]): BodySource & { cancelled: unknown } {
  let i = 0;
  const src = {
    cancelled: undefined as unknown,
    read: () =>
      Promise.resolve(
        i < chunks.length
          ? { done: false as const, value: chunks[i++] }
          : { done: true as const, value: undefined },
      ),
    cancel: (reason?: unknown) => {
      src.cancelled = reason ?? "cancelled";
      return Promise.resolve();
    },
  };
  return src;
}

async function drain(src: BodySource): Promise<{ text: string; reads: number }> {
  let text = "";
  let reads = 0;
  const dec = new TextDecoder();
  for (;;) {
    const r = await src.read();
    if (r.done) break;
    assert.ok(r.value.length > 0, "no empty chunk goes out");
    reads++;
    text += dec.decode(r.value, { stream: true });
  }
  return { text, reads };
}

const CONTENT = 'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n';
const FINISH = 'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n';
const USAGE =
  'data: {"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,' +
  '"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":8}}}\n\n';
const DONE = "data: [DONE]\n\n";

Deno.test("usage strip: the usage-only chunk goes, everything else stays byte for byte", async () => {
  const out = await drain(
    dropUsageEvents(source([CONTENT, FINISH, USAGE, DONE].map((c) => enc.encode(c)))),
  );
  assert.equal(out.text, CONTENT + FINISH + DONE);
  assert.equal(out.reads, 3, "one chunk out per chunk in, none for the dropped one");
  // A chunk whose text mentions usage, or a usage object beside choices, is no usage-only chunk.
  const mention = 'data: {"choices":[{"delta":{"content":"the \\"usage\\" field"}}]}\n\n';
  const beside = 'data: {"choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}\n\n';
  const comment = ': keep-alive "usage" "choices"\n\n';
  const kept = await drain(
    dropUsageEvents(source([mention, beside, comment, DONE].map((c) => enc.encode(c)))),
  );
  assert.equal(kept.text, mention + beside + comment + DONE);
});

Deno.test("usage strip: however the stream is cut, the output is the stream without the usage event (property)", async () => {
  const stream = enc.encode(
    CONTENT + 'data: {"choices":[{"delta":{"content":"é漢"}}]}\r\n\r\n' +
      FINISH + USAGE + DONE,
  );
  const want = new TextDecoder().decode(stream).replace(USAGE, "");
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }),
      async (cuts) => {
        const at = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks: Uint8Array[] = [];
        let prev = 0;
        for (const c of [...at, stream.length]) {
          chunks.push(stream.slice(prev, c));
          prev = c;
        }
        assert.equal((await drain(dropUsageEvents(source(chunks)))).text, want);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("usage strip: complete events are not held back; a partial one waits for its end only", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const parts = [enc.encode(CONTENT + 'data: {"choices":[{"de'), enc.encode('lta":{}}]}\n\n')];
  let i = 0;
  const src: BodySource = {
    read: async () => {
      if (i === 1) await gate;
      return i < parts.length
        ? { done: false, value: parts[i++] }
        : { done: true, value: undefined };
    },
    cancel: () => Promise.resolve(),
  };
  const s = dropUsageEvents(src);
  const first = await s.read();
  assert.equal(
    new TextDecoder().decode(first.value),
    CONTENT,
    "the complete event went out at once",
  );
  release();
  const second = await s.read();
  assert.equal(new TextDecoder().decode(second.value), 'data: {"choices":[{"delta":{}}]}\n\n');
  assert.equal((await s.read()).done, true);
});

Deno.test("usage strip: an unterminated tail is flushed at the end; a huge partial event is not held", async () => {
  const out = await drain(dropUsageEvents(source([enc.encode(CONTENT + 'data: {"choices":[]')])));
  assert.equal(out.text, CONTENT + 'data: {"choices":[]');
  const huge = enc.encode("data: " + "x".repeat(MAX_HELD_BYTES + 10));
  const s = dropUsageEvents(source([huge, enc.encode("\n\n")]));
  const first = await s.read();
  assert.equal(first.value!.length, huge.length, "passed on without waiting for its end");
  const src = source([]);
  await dropUsageEvents(src).cancel("bye");
  assert.equal(src.cancelled, "bye");
});

Deno.test("usage strip: a stream cut into single bytes costs copies linear in its length", async () => {
  // A worker may trickle one byte per read: the strip must not copy (or scan) all it holds again
  // on each one. Counted in bytes copied (deterministic), not time.
  const stream = enc.encode(
    CONTENT + "data: " + "x".repeat(20000) + "\r\n\r\n" + USAGE + FINISH + DONE,
  );
  const bytes = Array.from(stream, (b) => new Uint8Array([b]));
  const proto = Uint8Array.prototype;
  const { slice, set } = proto;
  let copied = 0;
  proto.slice = function (this: Uint8Array, ...args: [number?, number?]) {
    const out = slice.apply(this, args);
    copied += out.length;
    return out;
  } as typeof slice;
  proto.set = function (this: Uint8Array, src: ArrayLike<number>, offset?: number) {
    copied += src.length;
    return set.call(this, src, offset);
  } as typeof set;
  let text: string;
  try {
    text = (await drain(dropUsageEvents(source(bytes)))).text;
  } finally {
    proto.slice = slice;
    proto.set = set;
  }
  assert.equal(text, new TextDecoder().decode(stream).replace(USAGE, ""));
  assert.ok(copied < 4 * stream.length, `${copied} bytes copied for ${stream.length}`);
});

Deno.test('usage strip: chunks that carry "usage":null are passed without being parsed', async () => {
  const nulled = (text: string) =>
    `data: {"id":"x","choices":[{"index":0,"delta":{"content":"${text}"}}],"usage" : null}\n\n`;
  const chunks = [nulled("a"), nulled("b"), 'data: {"choices":[],"usage":null}\n\n', USAGE, DONE];
  const parse = JSON.parse;
  let parsed = 0;
  JSON.parse = ((...args: Parameters<typeof parse>) => {
    parsed++;
    return parse(...args);
  }) as typeof parse;
  let text: string;
  try {
    text = (await drain(dropUsageEvents(source(chunks.map((c) => enc.encode(c)))))).text;
  } finally {
    JSON.parse = parse;
  }
  assert.equal(text, chunks.join("").replace(USAGE, ""), "a null usage is no usage-only event");
  assert.equal(parsed, 1, "only the event with a usage object is parsed");
});
