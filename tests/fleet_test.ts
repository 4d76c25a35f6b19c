/**
 * The router as a fleet's front door (issue 17): three sim workers, two serving `llama-8b` (one of
 * them also a LoRA adapter `sql-lora`) and one serving `qwen-1.5b`, their models learned from
 * their `/v1/models`. Each model's requests reach only its workers; an unknown model is a 404
 * `model_not_found`; aliases resolve; the official `openai` client's endpoint families work through
 * the router, including a Responses API follow-up that must reach the worker holding its previous
 * response.
 */

import assert from "node:assert/strict";
import OpenAI from "openai";
import { configFromWorkers } from "../src/config/mod.ts";
import { Logger, type RunningRouter, startRouter } from "../src/router/mod.ts";
import type { SimWorker } from "../src/sim/server.ts";
import { startFleetWorkers } from "../src/bench/fleet_demo.ts";

interface Fleet {
  readonly running: RunningRouter;
  readonly sims: SimWorker[];
  readonly logs: Record<string, unknown>[];
  readonly client: OpenAI;
  close(): Promise<void>;
}

async function fleet(): Promise<Fleet> {
  const sims = await startFleetWorkers(0.01);
  const logs: Record<string, unknown>[] = [];
  const running = await startRouter(
    configFromWorkers(sims.map((w) => w.url), {
      server: { addr: "127.0.0.1:0" },
      // The models are learned from /v1/models at the health interval (the first round at start).
      health: { intervalMs: 60_000 },
      router: { strategy: "roundrobin", seed: 1, modelAliases: { "gpt-4o-mini": "qwen-1.5b" } },
    }),
    { logger: new Logger("info", "json", (l) => logs.push(JSON.parse(l))) },
  );
  await running.router.refreshModels();
  const client = new OpenAI({ baseURL: `${running.url}/v1`, apiKey: "k", maxRetries: 0 });
  return {
    running,
    sims,
    logs,
    client,
    async close() {
      await running.shutdown();
      for (const s of sims) await s.shutdown();
    },
  };
}

Deno.test("fleet: each model's requests reach only its workers; unknown model 404; aliases; no model field", async () => {
  const f = await fleet();
  try {
    const seen: Record<string, Set<string>> = {};
    for (const model of ["qwen-1.5b", "llama-8b", "sql-lora", "gpt-4o-mini"]) {
      seen[model] = new Set();
      for (let i = 0; i < 6; i++) {
        const { response } = await f.client.chat.completions
          .create({ model, messages: [{ role: "user", content: `hi ${i}` }], max_tokens: 2 })
          .withResponse();
        seen[model].add(response.headers.get("x-router-backend")!);
      }
    }
    assert.deepEqual([...seen["qwen-1.5b"]], ["w3"]);
    assert.deepEqual([...seen["llama-8b"]].sort(), ["w1", "w2"]);
    assert.deepEqual([...seen["sql-lora"]], ["w1"], "the adapter only where it is loaded");
    assert.deepEqual([...seen["gpt-4o-mini"]], ["w3"], "the alias resolves to its served model");
    await assert.rejects(
      f.client.chat.completions.create({
        model: "nope",
        messages: [{ role: "user", content: "x" }],
      }),
      (err: unknown) =>
        err instanceof OpenAI.NotFoundError &&
        (err.error as { code?: string }).code === "model_not_found",
    );
    // Several models: a request without `model` cannot be routed.
    const bare = await fetch(`${f.running.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ messages: [{ role: "user", content: "x" }] }),
    });
    assert.equal(bare.status, 400);
    assert.equal((await bare.json()).error.code, "model_required");
    // A known model with no admitted worker: 503.
    f.running.router.backends[2].up = false;
    const down = await fetch(`${f.running.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "qwen-1.5b", messages: [{ role: "user", content: "x" }] }),
    });
    assert.equal(down.status, 503);
    await down.body?.cancel();
    const retrieved = await f.client.models.retrieve("sql-lora");
    assert.equal(retrieved.id, "sql-lora");
    assert.equal((retrieved as unknown as { parent: string }).parent, "llama-8b");
    const listed = (await f.client.models.list()).data.map((m) => m.id).sort();
    assert.deepEqual(listed, ["gpt-4o-mini", "llama-8b", "qwen-1.5b", "sql-lora"]);
  } finally {
    await f.close();
  }
});

Deno.test("fleet: the openai client's endpoint families through the router (completions, embeddings, responses with a follow-up)", async () => {
  const f = await fleet();
  try {
    const done = await f.client.completions.create({
      model: "qwen-1.5b",
      prompt: "Once",
      max_tokens: 3,
    });
    assert.equal(done.object, "text_completion");
    const emb = await f.client.embeddings.create({ model: "llama-8b", input: ["a", "b"] });
    assert.equal(emb.data.length, 2);
    assert.ok(emb.data[0].embedding.length > 0);

    const first = await f.client.responses.create({
      model: "llama-8b",
      instructions: "Be brief.",
      input: "What is a KV cache?",
      max_output_tokens: 8,
    });
    assert.match(first.id, /^resp_/);
    const made = f.logs.filter((l) => l.msg === "request").at(-1)!.backend as string;
    // Round robin would send the next llama-8b request to the other worker; the follow-up must go
    // back to the one that holds its previous response, streamed or not.
    for (const stream of [false, true]) {
      const req = {
        model: "llama-8b",
        input: `And why does it matter? (${stream})`,
        previous_response_id: first.id,
        max_output_tokens: 8,
      };
      if (stream) {
        const events: string[] = [];
        for await (const e of await f.client.responses.create({ ...req, stream: true })) {
          events.push(e.type);
        }
        assert.equal(events[0], "response.created");
        assert.equal(events.at(-1), "response.completed");
      } else {
        const follow = await f.client.responses.create(req);
        assert.match(follow.id, /^resp_/);
      }
      const line = f.logs.filter((l) => l.msg === "request").at(-1)!;
      assert.equal(line.backend, made, "the follow-up reached the worker that made the response");
      assert.equal(line.reason, "previous-response");
    }
    // The other families, as bytes: Anthropic messages, tokenize, rerank, score, pooling, audio.
    const post = (path: string, body: BodyInit, headers: Record<string, string> = {}) =>
      fetch(`${f.running.url}${path}`, { method: "POST", body, headers });
    const msg = await post(
      "/v1/messages",
      JSON.stringify({
        model: "llama-8b",
        system: "Terse.",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 4,
      }),
    );
    assert.equal(msg.status, 200);
    assert.equal((await msg.json()).type, "message");
    const tok = await post("/tokenize", JSON.stringify({ model: "qwen-1.5b", prompt: "hello" }));
    assert.equal(tok.status, 200);
    assert.ok((await tok.json()).tokens.length > 0);
    assert.equal(tok.headers.get("x-router-backend"), "w3");
    for (
      const [path, body] of [
        ["/v1/rerank", { model: "llama-8b", query: "q", documents: ["a", "b"] }],
        ["/score", { model: "llama-8b", text_1: "q", text_2: ["a"] }],
        ["/pooling", { model: "llama-8b", input: "x" }],
      ] as const
    ) {
      const r = await post(path, JSON.stringify(body));
      assert.equal(r.status, 200, path);
      await r.body?.cancel();
    }
    const form = new FormData();
    form.append("file", new Blob([new Uint8Array(64)], { type: "audio/wav" }), "a.wav");
    form.append("model", "qwen-1.5b");
    const audio = await post("/v1/audio/transcriptions", form);
    assert.equal(audio.status, 200);
    assert.equal(
      audio.headers.get("x-router-backend"),
      "w3",
      "routed by the multipart model field",
    );
    assert.equal(typeof (await audio.json()).text, "string");

    // A streamed response's id is learned too: its follow-up also goes home.
    let streamedId = "";
    for await (
      const e of await f.client.responses.create({ model: "llama-8b", input: "Hi", stream: true })
    ) {
      if (e.type === "response.created") streamedId = e.response.id;
    }
    const home = f.logs.filter((l) => l.msg === "request").at(-1)!.backend;
    await f.client.responses.create({
      model: "llama-8b",
      input: "Again",
      previous_response_id: streamedId,
    });
    assert.equal(f.logs.filter((l) => l.msg === "request").at(-1)!.backend, home);
  } finally {
    await f.close();
  }
});
