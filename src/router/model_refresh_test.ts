import assert from "node:assert/strict";
import {
  fetchModels,
  MAX_MODELS_BYTES,
  ModelRefresher,
  type ModelTarget,
} from "./model_refresh.ts";

function server(handler: (req: Request) => Response | Promise<Response>) {
  const ready = Promise.withResolvers<number>();
  const s = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: (a) => ready.resolve(a.port) },
    handler,
  );
  return ready.promise.then((port) => ({
    url: `http://127.0.0.1:${port}`,
    close: () => s.shutdown(),
  }));
}

Deno.test("case 6: a worker's /v1/models is read up to a cap, never buffered whole; the worker stays unknown", async () => {
  let sent = 0;
  let cancelled = false;
  const w = await server(() =>
    new Response(
      new ReadableStream({
        pull(c) {
          if (sent > 150 * 1024 * 1024) return c.close();
          sent += 65536;
          c.enqueue(new Uint8Array(65536).fill(0x20));
        },
        cancel() {
          cancelled = true;
        },
      }),
      { headers: { "content-type": "application/json" } },
    )
  );
  try {
    await assert.rejects(fetchModels(w.url, null, 5000), /larger than 1048576 bytes/);
    // It stops at the cap: what the worker produced beyond it sat in socket buffers, not the router.
    assert.ok(sent < 16 * MAX_MODELS_BYTES, `the worker produced ${sent} bytes of 150 MiB`);
    // The worker (Deno.serve) hears of the closed connection late, but it does hear of it.
    for (let i = 0; i < 300 && !cancelled; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(cancelled, "the rest of the answer is cancelled");
  } finally {
    await w.close();
  }
});

Deno.test("ModelRefresher: learns lists, keeps the last good one when a fetch fails, reports changes, stops clean", async () => {
  let answer: unknown = { data: [{ id: "a" }, { id: "lora", parent: "a" }] };
  const w = await server(() => Response.json(answer));
  const t: ModelTarget = { id: "w1", url: w.url, apiKey: null, models: null };
  const changes: string[][] = [];
  const r = new ModelRefresher({
    targets: [t],
    intervalMs: 60_000,
    timeoutMs: 2000,
    onChange: (_, m) => changes.push([...m]),
  });
  try {
    await r.refresh();
    assert.deepEqual([...t.models!.keys()], ["a", "lora"]);
    assert.equal(t.models!.get("lora")!.parent, "a");
    answer = "not a list";
    await r.refresh();
    assert.deepEqual([...t.models!.keys()], ["a", "lora"], "a bad answer keeps the last list");
    answer = { data: [{ id: "a" }] };
    await r.refresh();
    assert.deepEqual(changes, [["a", "lora"], ["a"]]);
    r.start();
    await r.stop();
  } finally {
    await w.close();
  }
});

Deno.test("ModelRefresher: stop aborts a refresh() called while a round runs, and the round too", async () => {
  const hung: Promise<void>[] = [];
  let requests = 0;
  // Answers nothing until the request is aborted.
  const w = await server((req) => {
    requests++;
    const gone = Promise.withResolvers<void>();
    req.signal.addEventListener("abort", () => gone.resolve());
    hung.push(gone.promise);
    return gone.promise.then(() => new Response("{}"));
  });
  const target: ModelTarget = { id: "w", url: w.url, apiKey: null, models: null };
  const changes: string[] = [];
  const r = new ModelRefresher({
    targets: [target],
    intervalMs: 60_000,
    timeoutMs: 60_000,
    onChange: (id) => changes.push(id),
  });
  try {
    r.start(); // round one, in flight
    const extra = r.refresh(); // a second round on demand, while the first runs
    while (requests < 2) await new Promise((res) => setTimeout(res, 5));
    let stopped = false;
    const stopping = r.stop().then(() => stopped = true);
    // Both rounds are aborted: stop resolves long before the 60 s fetch timeout.
    const bound = new Promise((res) => setTimeout(res, 10_000));
    await Promise.race([Promise.all([stopping, extra]), bound]);
    assert.ok(stopped, "stop() resolved: every round in flight was aborted");
    assert.equal(target.models, null);
  } finally {
    await w.close();
  }
});
