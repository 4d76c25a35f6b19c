import assert from "node:assert/strict";
import { type SimWorker, type SimWorkerOptions, startSimWorker } from "./server.ts";

async function withWorker(opts: Partial<SimWorkerOptions>, fn: (w: SimWorker) => Promise<void>) {
  const w = await startSimWorker({ profile: "a100-7b", timeScale: 0.01, ...opts });
  try {
    await fn(w);
  } finally {
    await w.shutdown();
  }
}

async function until(cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < 300 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

const CHAT = JSON.stringify({
  messages: [{ role: "user", content: "hello" }],
  max_tokens: 5000,
  ignore_eos: true,
  stream: true,
});

Deno.test("a stored-response path that is not valid percent-encoding is a 404 in OpenAI's shape", async () => {
  await withWorker({}, async (w) => {
    const res = await fetch(`${w.url}/v1/responses/%E0%A4`);
    assert.equal(res.status, 404);
    const j = await res.json();
    assert.equal(typeof j.error.message, "string");
  });
});

Deno.test("a client that leaves mid-upload or before admission leaves no sequence behind", async () => {
  await withWorker({ faults: { addedLatencyMs: 200 } }, async (w) => {
    // Declares 1000 bytes, sends a few, hangs up.
    const c = await Deno.connect({ hostname: "127.0.0.1", port: w.port });
    await c.write(
      new TextEncoder().encode(
        'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{"mess',
      ),
    );
    c.close();
    // Leaves while the request waits out its added latency, before the engine has it.
    const ac = new AbortController();
    const p = fetch(`${w.url}/v1/chat/completions`, {
      method: "POST",
      body: CHAT,
      signal: ac.signal,
    })
      .catch(() => null);
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    await p;
    assert.ok(
      await until(() => w.engine.stats().requestsCancelled === 1),
      "the sequence admitted after the client left is cancelled",
    );
    const s = w.engine.stats();
    assert.equal(s.running + s.waiting, 0);
    assert.equal(s.usedBlocks, 0);
    // The worker still serves.
    await w.setFaults({});
    const ok = await fetch(`${w.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ prompt: "hi", max_tokens: 2 }),
    });
    assert.equal(ok.status, 200);
    await ok.text();
  });
});

Deno.test("a body past maxBodyBytes without a content-length is a 413", async () => {
  await withWorker({ maxBodyBytes: 1 << 16 }, async (w) => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 8; i++) c.enqueue(new Uint8Array(1 << 14).fill(0x20));
        c.close();
      },
    });
    const res = await fetch(`${w.url}/v1/completions`, { method: "POST", body });
    assert.equal(res.status, 413);
    assert.match((await res.json()).error.message, /over 65536 bytes/);
  });
});

Deno.test("an embeddings client that leaves mid-prefill cancels its sequences", async () => {
  // Model time at wall speed, so 64 long inputs take many engine steps.
  await withWorker({ timeScale: 1 }, async (w) => {
    const ac = new AbortController();
    const p = fetch(`${w.url}/v1/embeddings`, {
      method: "POST",
      body: JSON.stringify({
        input: Array.from({ length: 64 }, (_, i) => `${i} ${"word ".repeat(3000)}`),
      }),
      signal: ac.signal,
    }).catch(() => null);
    assert.ok(await until(() => w.engine.stats().running + w.engine.stats().waiting > 0));
    ac.abort();
    await p;
    assert.ok(
      await until(() => w.engine.stats().running + w.engine.stats().waiting === 0),
      "the client's prefill sequences are cancelled",
    );
    assert.ok(w.engine.stats().requestsCancelled > 0);
    assert.equal(w.engine.stats().usedBlocks, 0);
  });
});
