import assert from "node:assert/strict";
import { readCapped } from "./read_capped.ts";

class TooLarge extends Error {
  constructor(readonly declared: number | null) {
    super("too large");
  }
}
const tooLarge = (declared: number | null) => new TooLarge(declared);

/** A body of `chunks` that records whether it was cancelled and how many chunks were pulled. */
function body(chunks: Uint8Array[]) {
  const seen = { pulled: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (seen.pulled === chunks.length) return c.close();
      c.enqueue(chunks[seen.pulled++]);
    },
    cancel() {
      seen.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, seen };
}

Deno.test("readCapped: a body of exactly max bytes in pieces is returned whole", async () => {
  const { stream } = body([Uint8Array.of(1, 2), Uint8Array.of(3), Uint8Array.of(4, 5)]);
  assert.deepEqual(
    await readCapped(new Response(stream), 5, tooLarge),
    Uint8Array.of(1, 2, 3, 4, 5),
  );
  assert.deepEqual(await readCapped(new Response(null), 5, tooLarge), new Uint8Array(0));
});

Deno.test("readCapped: a declared Content-Length over max fails before any byte is read", async () => {
  const { stream, seen } = body([new Uint8Array(4)]);
  const res = new Response(stream, { headers: { "content-length": "4" } });
  await assert.rejects(
    readCapped(res, 3, tooLarge),
    (e) => e instanceof TooLarge && e.declared === 4,
  );
  assert.equal(seen.pulled, 0, "nothing read");
  assert.equal(seen.cancelled, true, "the body is cancelled");
});

Deno.test("readCapped: a body that grows past max is cancelled at the piece that crosses it", async () => {
  // No Content-Length (a chunked answer): the cap holds on what actually arrives.
  const { stream, seen } = body([new Uint8Array(3), new Uint8Array(3), new Uint8Array(3)]);
  await assert.rejects(
    readCapped(new Response(stream), 5, tooLarge),
    (e) => e instanceof TooLarge && e.declared === null,
  );
  assert.equal(seen.pulled, 2, "stopped at the piece that crossed the cap");
  assert.equal(seen.cancelled, true, "the body is cancelled");
});
