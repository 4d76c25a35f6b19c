/**
 * The endpoint families that only the simulated worker's own tests covered, now through the
 * router in a two-model fleet: each reaches a worker of its model and comes back as that worker
 * made it (rerank and score shapes, detokenize's prompt, audio translations' text); a multipart
 * upload over `server.max_body_bytes` is a 413 before any worker sees it.
 */

import assert from "node:assert/strict";
import { configFromWorkers } from "../src/config/mod.ts";
import { silentLogger, startRouter } from "../src/router/mod.ts";
import { startSimWorker } from "../src/sim/server.ts";

async function fleet(maxBodyBytes?: number) {
  const opts = { profile: "a100-7b", timeScale: 0.01 } as const;
  const sims = [
    await startSimWorker({ ...opts, id: "w1", models: ["llama-8b"] }),
    await startSimWorker({ ...opts, id: "w2", profile: "m1-1.5b", models: ["qwen-1.5b"] }),
  ];
  const running = await startRouter(
    configFromWorkers(sims.map((w) => w.url), {
      server: { addr: "127.0.0.1:0", ...(maxBodyBytes ? { maxBodyBytes } : {}) },
      health: { intervalMs: 60_000 },
      router: { strategy: "costaware", seed: 1 },
    }),
    { logger: silentLogger },
  );
  await running.router.refreshModels();
  const post = (path: string, body: BodyInit, json = true) =>
    fetch(`${running.url}${path}`, {
      method: "POST",
      headers: json ? { "content-type": "application/json" } : {},
      body,
    });
  return {
    post,
    async close() {
      await running.shutdown();
      for (const s of sims) await s.shutdown();
    },
  };
}

Deno.test("rerank, v2 rerank, score, detokenize and audio translations reach their model's worker", async () => {
  const f = await fleet();
  try {
    const cases: [string, Record<string, unknown>, string, (j: Record<string, unknown>) => void][] =
      [
        ["/rerank", { model: "qwen-1.5b", query: "q", documents: ["a", "b"] }, "w2", (j) => {
          assert.equal((j.results as unknown[]).length, 2);
        }],
        ["/v2/rerank", { model: "llama-8b", query: "q", documents: ["a", "b", "c"] }, "w1", (j) => {
          assert.equal((j.results as unknown[]).length, 3);
        }],
        ["/v1/score", { model: "qwen-1.5b", text_1: "q", text_2: ["a", "b"] }, "w2", (j) => {
          assert.equal((j.data as unknown[]).length, 2);
        }],
        ["/detokenize", { model: "llama-8b", tokens: [1, 2, 3] }, "w1", (j) => {
          assert.equal(typeof j.prompt, "string");
        }],
      ];
    for (const [path, body, worker, check] of cases) {
      const res = await f.post(path, JSON.stringify(body));
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("x-router-backend"), worker, path);
      check(await res.json());
    }
    const form = new FormData();
    form.append("file", new Blob([new Uint8Array(64)], { type: "audio/wav" }), "a.wav");
    form.append("model", "llama-8b");
    const audio = await f.post("/v1/audio/translations", form, false);
    assert.equal(audio.status, 200);
    assert.equal(audio.headers.get("x-router-backend"), "w1");
    assert.equal(typeof (await audio.json()).text, "string");
  } finally {
    await f.close();
  }
});

Deno.test("a multipart upload over server.max_body_bytes is a 413 and reaches no worker", async () => {
  const f = await fleet(64 * 1024);
  try {
    const form = new FormData();
    form.append("model", "llama-8b");
    form.append("file", new Blob([new Uint8Array(256 * 1024)], { type: "audio/wav" }), "a.wav");
    const res = await f.post("/v1/audio/transcriptions", form, false);
    assert.equal(res.status, 413);
    assert.equal(res.headers.get("x-router-backend"), null, "no worker was tried");
    assert.equal((await res.json()).error.type, "invalid_request_error");
  } finally {
    await f.close();
  }
});
