/**
 * A Responses API follow-up (`previous_response_id`) goes only to the worker that holds the
 * previous response; when that worker answers 5xx, the client gets the worker's own error (status
 * and body), not the router's 502: no other worker could have served it.
 */

import assert from "node:assert/strict";
import { configFromWorkers } from "../src/config/mod.ts";
import { silentLogger, startRouter } from "../src/router/mod.ts";
import { startServer, type TestServer } from "./_support.ts";

function responsesWorker(name: string, hits: string[]): Promise<TestServer> {
  return startServer(async (req) => {
    const body = await req.json();
    hits.push(`${name}:${body.previous_response_id ?? "new"}`);
    if (body.previous_response_id !== undefined) {
      return Response.json(
        { error: { message: `${name} is overloaded`, type: "ServiceUnavailable", code: 503 } },
        { status: 503 },
      );
    }
    return Response.json({
      id: `resp_${name}_1`,
      object: "response",
      status: "completed",
      model: "m",
      output: [],
    });
  });
}

Deno.test("a Responses follow-up whose worker answers 5xx gets the worker's error", async () => {
  const hits: string[] = [];
  const workers = [await responsesWorker("a", hits), await responsesWorker("b", hits)];
  const running = await startRouter(
    configFromWorkers(workers.map((w) => w.url), {
      server: { addr: "127.0.0.1:0" },
      health: { intervalMs: 0 },
      router: { strategy: "roundrobin", seed: 1, maxRetries: 2 },
    }),
    { logger: silentLogger },
  );
  try {
    const post = (body: unknown) =>
      fetch(`${running.url}/v1/responses`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const first = await (await post({ model: "m", input: "hi" })).json();
    const owner = (first.id as string).split("_")[1];
    const res = await post({ model: "m", input: "more", previous_response_id: first.id });
    const err = await res.json();
    assert.equal(res.status, 503);
    assert.equal(err.error.message, `${owner} is overloaded`, "the worker's own error");
    assert.deepEqual(hits.filter((h) => h.endsWith(first.id)), [`${owner}:${first.id}`]);
  } finally {
    await running.shutdown();
    for (const w of workers) await w.close();
  }
});

Deno.test("a Responses follow-up whose id the router never saw is retried on 5xx like any request", async () => {
  const hits: string[] = [];
  // "a" always fails with 503; "b" answers. The id is unknown: no worker is known to hold it.
  const a = await startServer(async (req) => {
    const body = await req.json();
    hits.push(`a:${body.previous_response_id}`);
    return Response.json({ error: { message: "a is broken" } }, { status: 503 });
  });
  const b = await startServer(async (req) => {
    const body = await req.json();
    hits.push(`b:${body.previous_response_id}`);
    return Response.json({ id: "resp_b_2", object: "response", status: "completed", output: [] });
  });
  const running = await startRouter(
    configFromWorkers([a.url, b.url], {
      server: { addr: "127.0.0.1:0" },
      health: { intervalMs: 0 },
      router: { strategy: "roundrobin", seed: 1, maxRetries: 2 },
    }),
    { logger: silentLogger },
  );
  try {
    for (let i = 0; i < 2; i++) { // roundrobin: one of the two starts on "a"
      const res = await fetch(`${running.url}/v1/responses`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", input: "more", previous_response_id: `resp_gone_${i}` }),
      });
      const text = await res.text();
      assert.equal(res.status, 200, `no owner known: the 503 is retried elsewhere (${text})`);
    }
  } finally {
    await running.shutdown();
    await a.close();
    await b.close();
  }
});
