/**
 * Every endpoint the router proxies, against the sim worker: shapes, plain and streamed, with the
 * official `openai` client where it has a method; responses ids known only to their worker;
 * tokenize / detokenize; the prefix cache reset; vLLM's metric names.
 */

import assert from "node:assert/strict";
import OpenAI from "openai";
import { answerText } from "../src/sim/engine.ts";
import type { SimWorker, SimWorkerOptions } from "../src/sim/server.ts";
import { postJson as post, withSimWorker } from "./_support.ts";

const SYSTEM = "You are a helpful assistant. ".repeat(60); // 1740 bytes

/** {@linkcode withSimWorker} serving `sim-model` unless `opts` says otherwise. */
const withWorker = (opts: Partial<SimWorkerOptions>, fn: (w: SimWorker) => Promise<void>) =>
  withSimWorker({ models: ["sim-model"], ...opts }, fn);

function client(w: SimWorker): OpenAI {
  return new OpenAI({ baseURL: `${w.url}/v1`, apiKey: "k", maxRetries: 0 });
}

/** SSE text → [event name, data] pairs. */
async function readEvents(res: Response): Promise<Array<[string, Record<string, unknown>]>> {
  const text = await res.text();
  return text.split("\n\n").filter((s) => s !== "").map((block) => {
    const lines = block.split("\n");
    const name = lines.find((l) => l.startsWith("event: "))!.slice(7);
    const data = JSON.parse(lines.find((l) => l.startsWith("data: "))!.slice(6));
    return [name, data];
  });
}

Deno.test("embeddings: the openai client gets deterministic vectors of the configured dimension", async () => {
  await withWorker({ embeddingDim: 48 }, async (w) => {
    const c = client(w);
    // The client asks for base64 and decodes it, so this checks the base64 encoding as well.
    const r = await c.embeddings.create({
      model: "sim-model",
      input: ["red apples", "green pears"],
    });
    assert.equal(r.object, "list");
    assert.equal(r.data.length, 2);
    assert.deepEqual(r.data.map((d) => [d.index, d.object, d.embedding.length]), [
      [0, "embedding", 48],
      [1, "embedding", 48],
    ]);
    assert.ok(r.usage.prompt_tokens > 0);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens);
    const raw = await (await post(w, "/v1/embeddings", {
      input: "red apples",
      encoding_format: "float",
    })).json();
    const v: number[] = raw.data[0].embedding;
    assert.equal(v.length, 48);
    for (let i = 0; i < 48; i++) assert.ok(Math.abs(v[i] - r.data[0].embedding[i]) < 1e-6);
    assert.ok(Math.abs(v.reduce((s, x) => s + x * x, 0) - 1) < 1e-9, "unit length");
    const short = await (await post(w, "/v1/embeddings", { input: "x", dimensions: 8 })).json();
    assert.equal(short.data[0].embedding.length, 8);
    const bad = await post(w, "/v1/embeddings", { input: "x", dimensions: 99 });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  });
});

Deno.test("responses: plain and streamed via the openai client, a follow-up hits the prefix cache", async () => {
  await withWorker({}, async (w) => {
    const c = client(w);
    const first = await c.responses.create({
      model: "sim-model",
      instructions: SYSTEM,
      input: "What is a prefix cache?",
      max_output_tokens: 8,
    });
    assert.match(first.id, /^resp_[0-9a-f]{32}$/);
    assert.equal(first.object, "response");
    assert.equal(first.status, "incomplete"); // the answer ran to max_output_tokens
    assert.equal(first.output_text, answerText(8));
    assert.equal(first.usage!.output_tokens, 8);

    const stream = await c.responses.create({
      model: "sim-model",
      instructions: SYSTEM,
      input: "And then?",
      previous_response_id: first.id,
      max_output_tokens: 4,
      stream: true,
    });
    const types: string[] = [];
    let deltas = "";
    let done: OpenAI.Responses.Response | undefined;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === "response.output_text.delta") deltas += ev.delta;
      if (ev.type === "response.completed") done = ev.response;
    }
    assert.deepEqual(
      types.filter((t) => t !== "response.output_text.delta"),
      [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
      ],
    );
    assert.equal(types.filter((t) => t === "response.output_text.delta").length, 4);
    assert.equal(deltas, answerText(4));
    assert.ok(done !== undefined);
    assert.equal(done.previous_response_id, first.id);
    // The stored conversation comes first: the previous prompt and answer are reused.
    const cached = done.usage!.input_tokens_details.cached_tokens;
    const expected = Math.floor((first.usage!.input_tokens + 8 - 1) / 16) * 16;
    assert.equal(cached, expected);

    const again = await c.responses.create({
      model: "sim-model",
      input: "Third turn",
      previous_response_id: done.id,
      max_output_tokens: 2,
    });
    assert.equal(again.status, "incomplete");
    const got = await (await fetch(`${w.url}/v1/responses/${again.id}`)).json();
    assert.equal(got.id, again.id);
    assert.equal(got.output[0].content[0].text, answerText(2));
  });
});

Deno.test("responses: an id is known only to the worker that made it (vLLM's 404 elsewhere)", async () => {
  await withWorker({}, async (a) => {
    await withWorker({}, async (b) => {
      const made = await client(a).responses.create({ model: "sim-model", input: "hi" });
      const body = { model: "sim-model", input: "again", previous_response_id: made.id };
      const other = await post(b, "/v1/responses", body);
      assert.equal(other.status, 404);
      assert.deepEqual(await other.json(), {
        error: {
          message: `Response with id '${made.id}' not found.`,
          type: "invalid_request_error",
          param: "response_id",
          code: 404,
        },
      });
      const back = await post(a, "/v1/responses", body);
      assert.equal(back.status, 200);
      await back.body?.cancel();
      const nowhere = await fetch(`${b.url}/v1/responses/${made.id}`);
      assert.equal(nowhere.status, 404);
      await nowhere.body?.cancel();
      // store: false keeps nothing.
      const unstored = await client(a).responses.create({
        model: "sim-model",
        input: "x",
        store: false,
      });
      const follow = await post(a, "/v1/responses", {
        input: "y",
        previous_response_id: unstored.id,
      });
      assert.equal(follow.status, 404);
      await follow.body?.cancel();
    });
  });
});

Deno.test("messages: Anthropic shape, plain and streamed, with cache_read_input_tokens", async () => {
  await withWorker({}, async (w) => {
    const body = {
      model: "sim-model",
      max_tokens: 5,
      system: SYSTEM,
      messages: [{ role: "user", content: [{ type: "text", text: "hello" }] }],
    };
    const first = await (await post(w, "/v1/messages", body)).json();
    assert.match(first.id, /^msg_/);
    assert.equal(first.type, "message");
    assert.equal(first.role, "assistant");
    assert.deepEqual(first.content, [{ type: "text", text: answerText(5) }]);
    assert.equal(first.stop_reason, "max_tokens");
    assert.equal(first.usage.cache_read_input_tokens, 0);
    const prompt = first.usage.input_tokens;
    const res = await post(w, "/v1/messages", { ...body, stream: true });
    assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
    const events = await readEvents(res);
    const names = events.map(([n]) => n);
    assert.deepEqual(names.filter((n) => n !== "content_block_delta"), [
      "message_start",
      "content_block_start",
      "ping",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    for (const [n, d] of events) assert.equal(d.type, n);
    const start = events[0][1].message as { usage: Record<string, number> };
    const cached = start.usage.cache_read_input_tokens;
    assert.equal(cached, Math.floor((prompt - 1) / 16) * 16);
    assert.equal(start.usage.input_tokens + cached, prompt);
    const text = events.filter(([n]) => n === "content_block_delta")
      .map(([, d]) => (d.delta as { text: string }).text).join("");
    assert.equal(text, answerText(5));
    const delta = events.find(([n]) => n === "message_delta")![1];
    assert.deepEqual(delta.delta, { stop_reason: "max_tokens", stop_sequence: null });
    assert.deepEqual(delta.usage, { output_tokens: 5 });
    const missing = await post(w, "/v1/messages", { ...body, model: "nope" });
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.type, "not_found_error");
  });
});

Deno.test("tokenize and detokenize: vLLM's shapes; the ids are the chat endpoint's prompt", async () => {
  await withWorker({}, async (w) => {
    const messages = [{ role: "system", content: SYSTEM }, { role: "user", content: "hi" }];
    const t = await (await post(w, "/tokenize", { model: "sim-model", messages })).json();
    assert.deepEqual(Object.keys(t).sort(), ["count", "max_model_len", "token_strs", "tokens"]);
    assert.equal(t.count, t.tokens.length);
    assert.equal(t.max_model_len, 32_768);
    const chat = await (await post(w, "/v1/chat/completions", { messages, max_tokens: 1 })).json();
    assert.equal(chat.usage.prompt_tokens, t.count);
    const noGen = await (await post(w, "/tokenize", { messages, add_generation_prompt: false }))
      .json();
    assert.ok(noGen.count < t.count);
    assert.deepEqual(noGen.tokens, t.tokens.slice(0, noGen.count));
    const prompt = "Once upon a time there were four bytes!!";
    const p = await (await post(w, "/tokenize", { prompt, return_token_strs: true })).json();
    assert.equal(p.count, prompt.length / 4);
    assert.equal(p.token_strs.join(""), prompt);
    const d = await (await post(w, "/detokenize", { tokens: p.tokens })).json();
    assert.deepEqual(d, { prompt });
    const bad = await post(w, "/detokenize", { tokens: ["x"] });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  });
});

Deno.test("rerank, score and pooling: vLLM's shapes, relevance follows shared words", async () => {
  await withWorker({}, async (w) => {
    const docs = ["the cat sat on the mat", "stock prices fell sharply", "a cat and a mat"];
    for (const path of ["/v1/rerank", "/rerank", "/v2/rerank"]) {
      const r = await (await post(w, path, { query: "cat on a mat", documents: docs, top_n: 2 }))
        .json();
      assert.match(r.id, /^rerank-/);
      assert.equal(r.results.length, 2);
      assert.ok(r.results[0].relevance_score >= r.results[1].relevance_score);
      assert.ok(
        r.results.every((x: { index: number }) => x.index !== 1),
        "the unrelated one is last",
      );
      assert.equal(r.results[0].document.text, docs[r.results[0].index]);
      assert.ok(r.usage.total_tokens > 0);
    }
    const s = await (await post(w, "/v1/score", { text_1: "cat on a mat", text_2: docs })).json();
    assert.equal(s.object, "list");
    assert.deepEqual(s.data.map((d: { index: number; object: string }) => [d.index, d.object]), [
      [0, "score"],
      [1, "score"],
      [2, "score"],
    ]);
    assert.ok(s.data[0].score > s.data[1].score);
    assert.ok(s.data.every((d: { score: number }) => d.score >= 0 && d.score <= 1));
    const same = await (await post(w, "/score", { text_1: "cat on a mat", text_2: docs })).json();
    assert.deepEqual(same.data, s.data);
    const pool = await (await post(w, "/pooling", { input: ["a b", "c d"] })).json();
    assert.equal(pool.data.length, 2);
    assert.equal(pool.data[0].object, "pooling");
    assert.equal(pool.data[0].data.length, 64);
    assert.ok(pool.usage.prompt_tokens > 0);
    const mismatch = await post(w, "/score", { text_1: ["a", "b"], text_2: ["c", "d", "e"] });
    assert.equal(mismatch.status, 400);
    await mismatch.body?.cancel();
  });
});

Deno.test("audio: multipart uploads answer {text}; other bodies are a 400", async () => {
  await withWorker({}, async (w) => {
    const c = client(w);
    const file = new File([new Uint8Array(1234)], "clip.wav", { type: "audio/wav" });
    const t = await c.audio.transcriptions.create({ model: "sim-model", file });
    assert.equal(t.text, "Simulated transcription of clip.wav (1234 bytes).");
    const form = new FormData();
    form.set("model", "sim-model");
    form.set("file", file);
    const tr = await (await fetch(`${w.url}/v1/audio/translations`, { method: "POST", body: form }))
      .json();
    assert.equal(tr.text, "Simulated translation of clip.wav (1234 bytes).");
    const json = await post(w, "/v1/audio/transcriptions", { model: "sim-model", file: "x" });
    assert.equal(json.status, 400);
    await json.body?.cancel();
    const noFile = new FormData();
    noFile.set("model", "sim-model");
    const nf = await fetch(`${w.url}/v1/audio/transcriptions`, { method: "POST", body: noFile });
    assert.equal(nf.status, 400);
    await nf.body?.cancel();
    form.set("model", "nope");
    const nm = await fetch(`${w.url}/v1/audio/transcriptions`, { method: "POST", body: form });
    assert.equal(nm.status, 404);
    await nm.body?.cancel();
  });
});

Deno.test("reset_prefix_cache starts the next request cold; metrics carry vLLM's names", async () => {
  await withWorker({}, async (w) => {
    const body = {
      messages: [{ role: "system", content: SYSTEM }, { role: "user", content: "q" }],
    };
    const cached = async () =>
      (await (await post(w, "/v1/chat/completions", { ...body, max_tokens: 2 })).json()).usage
        .prompt_tokens_details?.cached_tokens ?? 0;
    assert.equal(await cached(), 0);
    assert.ok(await cached() > 0);
    const reset = await fetch(`${w.url}/reset_prefix_cache`, { method: "POST" });
    assert.equal(reset.status, 200);
    await reset.body?.cancel();
    assert.equal(await cached(), 0);
    const m = await (await fetch(`${w.url}/metrics`)).text();
    for (
      const name of [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:num_preemptions_total",
      ]
    ) assert.match(m, new RegExp(`^${name}\\{model_name="sim-model"\\} \\d`, "m"), name);
    assert.match(m, /^# TYPE vllm:time_to_first_token_seconds histogram$/m);
    assert.match(m, /^vllm:time_to_first_token_seconds_count\{model_name="sim-model"\} 3$/m);
    assert.match(
      m,
      /^vllm:time_to_first_token_seconds_bucket\{model_name="sim-model",le="\+Inf"\} 3$/m,
    );
    assert.match(m, /^vllm:e2e_request_latency_seconds_count\{model_name="sim-model"\} 3$/m);
  });
});

Deno.test("hostile bodies: too large is a 413, not JSON a 400; the responses store is bounded", async () => {
  await withWorker({ maxBodyBytes: 4096, maxStoredResponses: 2 }, async (w) => {
    const big = await post(w, "/v1/chat/completions", {
      messages: [{ role: "user", content: "x".repeat(10_000) }],
    });
    assert.equal(big.status, 413);
    await big.body?.cancel();
    const bad = await fetch(w.url + "/v1/embeddings", { method: "POST", body: "{not json" });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    for (const path of ["/v1/responses", "/v1/messages", "/rerank", "/score", "/tokenize"]) {
      const r = await post(w, path, {
        input: 7,
        messages: 3,
        query: 1,
        text_1: null,
        max_tokens: 1,
      });
      assert.equal(r.status, 400, path);
      await r.body?.cancel();
    }
    const ids = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await client(w).responses.create({ model: "sim-model", input: `q${i}` })).id);
    }
    const oldest = await fetch(`${w.url}/v1/responses/${ids[0]}`);
    assert.equal(oldest.status, 404, "the oldest response was dropped");
    await oldest.body?.cancel();
    const newest = await fetch(`${w.url}/v1/responses/${ids[2]}`);
    assert.equal(newest.status, 200);
    await newest.body?.cancel();
  });
});
