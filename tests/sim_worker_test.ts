import assert from "node:assert/strict";
import { answerText, EngineModel } from "../src/sim/engine.ts";
import { getProfile } from "../src/sim/profiles.ts";
import { chatPromptText } from "../src/sim/chat_template.ts";
import { type SimWorker, startSimWorker } from "../src/sim/server.ts";
import { postJson as post, withSimWorker } from "./_support.ts";

const SYSTEM = "You are a helpful assistant. ".repeat(200); // ~5.8 KB

function chatBody(extra: Record<string, unknown> = {}, user = "hello there") {
  return {
    model: "anything",
    messages: [{ role: "system", content: SYSTEM }, { role: "user", content: user }],
    max_tokens: 8,
    ...extra,
  };
}

/**
 * A worker whose answers run to max_tokens unless `opts` says otherwise, so tests can count
 * tokens (the default model ends answers at end-of-sequence; tested on its own below).
 */
const withWorker = (
  fn: (w: SimWorker) => Promise<void>,
  opts: Partial<Parameters<typeof startSimWorker>[0]> = {},
) => withSimWorker(opts, fn);

/** Reads a whole SSE body into its `data:` payloads. */
async function readSse(res: Response): Promise<string[]> {
  const text = await res.text();
  assert.ok(text.endsWith("\n\n"), "every event ends with a blank line");
  return text.split("\n\n").filter((s) => s !== "").map((ev) => {
    assert.ok(ev.startsWith("data: "), `event ${JSON.stringify(ev)} starts with data:`);
    return ev.slice(6);
  });
}

Deno.test("streaming chat with include_usage: OpenAI chunks, cached_tokens on the repeat", async () => {
  await withWorker(async (w) => {
    const body = chatBody({ stream: true, stream_options: { include_usage: true } });
    const usages = [];
    for (let i = 0; i < 2; i++) {
      const res = await post(w, "/v1/chat/completions", body);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
      const data = await readSse(res);
      assert.equal(data.at(-1), "[DONE]");
      const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
      for (const c of chunks) {
        assert.equal(c.object, "chat.completion.chunk");
        assert.equal(c.model, "sim");
      }
      assert.deepEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
      const usageChunk = chunks.at(-1);
      assert.deepEqual(usageChunk.choices, []);
      const final = chunks.at(-2);
      assert.equal(final.choices[0].finish_reason, "length");
      const content = chunks.slice(1, -2).map((c) => c.choices[0].delta.content).join("");
      assert.equal(content, answerText(8));
      usages.push(usageChunk.usage);
    }
    assert.equal(usages[0].prompt_tokens_details, null);
    assert.equal(usages[0].completion_tokens, 8);
    assert.equal(usages[0].total_tokens, usages[0].prompt_tokens + 8);
    const cached = usages[1].prompt_tokens_details.cached_tokens;
    assert.ok(cached > 0);
    assert.equal(cached, Math.floor((usages[1].prompt_tokens - 1) / 16) * 16);
  });
});

Deno.test("a follow-up turn reuses the previous prompt and the answer", async () => {
  await withWorker(async (w) => {
    const first = await (await post(w, "/v1/chat/completions", chatBody())).json();
    const answer = first.choices[0].message.content;
    assert.equal(answer, answerText(8));
    const next = chatBody({
      messages: [
        { role: "system", content: SYSTEM },
        { role: "user", content: "hello there" },
        { role: "assistant", content: answer },
        { role: "user", content: "and then?" },
      ],
    });
    const second = await (await post(w, "/v1/chat/completions", next)).json();
    const firstPromptTokens = first.usage.prompt_tokens;
    // Every full block of prompt + answer (minus the last sampled token) is reused.
    const expected = Math.floor((firstPromptTokens + 8 - 1) / 16) * 16;
    assert.equal(second.usage.prompt_tokens_details.cached_tokens, expected);
  });
});

Deno.test("non-streaming chat and legacy completions, models, health, metrics, 404, 405", async () => {
  await withWorker(async (w) => {
    const res = await post(w, "/v1/chat/completions", chatBody({ max_tokens: undefined }));
    const j = await res.json();
    assert.equal(j.object, "chat.completion");
    assert.equal(j.usage.completion_tokens, 64); // default max_tokens
    assert.equal(j.choices[0].finish_reason, "length");

    const c = await post(w, "/v1/completions", { prompt: SYSTEM, max_tokens: 3, stream: true });
    const data = await readSse(c);
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.equal(chunks[0].object, "text_completion");
    assert.equal(chunks.map((x) => x.choices[0].text).join(""), answerText(3));
    assert.equal(chunks.at(-1).choices[0].finish_reason, "length");

    const models = await (await fetch(w.url + "/v1/models")).json();
    assert.deepEqual(models.data.map((m: { id: string }) => m.id), ["sim"]);
    const health = await fetch(w.url + "/health");
    await health.body?.cancel();
    assert.equal(health.status, 200);

    await (await post(w, "/v1/chat/completions", chatBody())).json();
    const metrics = await (await fetch(w.url + "/metrics")).text();
    assert.match(metrics, /^vllm:num_requests_waiting\{model_name="sim"\} 0$/m);
    assert.match(metrics, /^vllm:num_requests_running\{[^}]*\} 0$/m);
    assert.match(metrics, /^vllm:kv_cache_usage_perc\{[^}]*\} 0$/m);
    const hits = Number(metrics.match(/^vllm:prefix_cache_hits_total\{[^}]*\} (\d+)$/m)![1]);
    assert.ok(hits > 0);
    assert.match(metrics, /^vllm:prompt_tokens_total\{[^}]*\} \d+$/m);

    const nf = await fetch(w.url + "/nope");
    assert.equal(nf.status, 404);
    assert.equal((await nf.json()).error.type, "invalid_request_error");
    const na = await fetch(w.url + "/v1/chat/completions");
    assert.equal(na.status, 405);
    assert.equal(na.headers.get("allow"), "POST");
    await na.body?.cancel();
    const bad = await post(w, "/v1/chat/completions", { messages: [] });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  }, { id: "w0" });
});

Deno.test("legacy completions: token-id prompts cache by 16 ids a block; a batch of prompts is a 400", async () => {
  await withWorker(async (w) => {
    const ids = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 151_000);
    const usage = async (prompt: unknown) => {
      const res = await post(w, "/v1/completions", { prompt, max_tokens: 1 });
      assert.equal(res.status, 200);
      return (await res.json()).usage;
    };
    assert.equal((await usage(ids)).prompt_tokens, 1000);
    // The repeat: every full block of 16 ids (62 of them), as vLLM reports it.
    assert.equal((await usage([ids])).prompt_tokens_details.cached_tokens, 992);
    // Sharing the first 40 ids: two full blocks, not more.
    const other = [...ids.slice(0, 40), ...ids.slice(40).map((x) => x + 1)];
    assert.equal((await usage(other)).prompt_tokens_details.cached_tokens, 32);

    const batch = await post(w, "/v1/completions", { prompt: ["one", "two"], max_tokens: 1 });
    assert.equal(batch.status, 400);
    const err = (await batch.json()).error;
    assert.equal(err.param, "prompt");
    assert.match(err.message, /one prompt per request/);
  });
});

Deno.test("requests longer than the context are rejected with 400 like vLLM", async () => {
  await withWorker(async (w) => {
    const res = await post(w, "/v1/completions", { prompt: "x".repeat(9000), max_tokens: 10 });
    assert.equal(res.status, 400);
    const j = await res.json();
    assert.match(j.error.message, /maximum context length is 2048 tokens/);
  }, { profile: "m1-1.5b" });
});

Deno.test("a client abort cancels the sequence and frees its blocks", async () => {
  await withWorker(async (w) => {
    const ac = new AbortController();
    const res = await post(
      w,
      "/v1/chat/completions",
      chatBody({ stream: true, max_tokens: 5000 }),
      ac.signal,
    );
    const reader = res.body!.getReader();
    await reader.read(); // the role chunk
    assert.equal(w.engine.stats().running, 1);
    ac.abort();
    await reader.read().catch(() => {});
    for (let i = 0; i < 100 && w.engine.stats().running > 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const s = w.engine.stats();
    assert.equal(s.running, 0);
    assert.equal(s.requestsCancelled, 1);
    assert.equal(s.usedBlocks, 0);
    assert.ok(s.cachedBlocks > 0, "computed prompt blocks stay cached");

    // Non-streaming: the JSON body is a stream too, so a disconnect cancels the sequence.
    const ac2 = new AbortController();
    const res2 = await post(w, "/v1/chat/completions", chatBody({ max_tokens: 5000 }), ac2.signal);
    assert.equal(w.engine.stats().running + w.engine.stats().waiting, 1);
    ac2.abort();
    await res2.body?.cancel().catch(() => {});
    for (let i = 0; i < 100 && w.engine.stats().running > 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(w.engine.stats().running, 0);
    assert.equal(w.engine.stats().requestsCancelled, 2);
  });
});

Deno.test("fault: error_rate answers 500 with an OpenAI error body", async () => {
  await withWorker(async (w) => {
    const res = await post(w, "/v1/chat/completions", chatBody());
    assert.equal(res.status, 500);
    const j = await res.json();
    assert.equal(j.error.type, "server_error");
    assert.equal(j.error.code, "simulated_error");
    await w.setFaults({ errorRate: 0 });
    const ok = await post(w, "/v1/chat/completions", chatBody());
    assert.equal(ok.status, 200);
    await ok.json();
  }, { faults: { errorRate: 1 } });
});

Deno.test("fault: added_latency_ms delays the response", async () => {
  await withWorker(async (w) => {
    const t0 = performance.now();
    const res = await post(w, "/v1/chat/completions", chatBody({ max_tokens: 1 }));
    await res.json();
    assert.ok(performance.now() - t0 >= 150);
  }, { faults: { addedLatencyMs: 150 } });
});

Deno.test("fault: refuse_connections makes connects fail, and can be turned off", async () => {
  await withWorker(async (w) => {
    await assert.rejects(fetch(w.url + "/health"));
    await w.setFaults({ refuseConnections: false });
    const res = await fetch(w.url + "/health");
    assert.equal(res.status, 200);
    await res.body?.cancel();
    await w.setFaults({ refuseConnections: true });
    await assert.rejects(fetch(w.url + "/health"));
  }, { faults: { refuseConnections: true } });
});

Deno.test("fault: die_after_chunks aborts the stream after N chunks", async () => {
  await withWorker(async (w) => {
    const res = await post(w, "/v1/chat/completions", chatBody({ stream: true, max_tokens: 20 }));
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let text = "";
    await assert.rejects(async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += dec.decode(value);
      }
    });
    assert.equal(text.split("\n\n").filter((s) => s !== "").length, 3);
    assert.ok(!text.includes("[DONE]"));
    for (let i = 0; i < 100 && w.engine.stats().running > 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(w.engine.stats().running, 0);
  }, { faults: { dieAfterChunks: 3 } });
});

Deno.test("fault: stall_ms sends headers, then waits before the first chunk", async () => {
  await withWorker(async (w) => {
    const t0 = performance.now();
    const res = await post(w, "/v1/chat/completions", chatBody({ stream: true, max_tokens: 2 }));
    const tHeaders = performance.now() - t0;
    const reader = res.body!.getReader();
    await reader.read();
    const tFirst = performance.now() - t0;
    assert.ok(tHeaders < 150, `headers after ${tHeaders} ms`);
    assert.ok(tFirst >= 200, `first chunk after ${tFirst} ms`);
    while (!(await reader.read()).done) { /* drain */ }
  }, { faults: { stallMs: 200 } });
});

Deno.test("the time scale holds over many short steps: wall time follows model time × scale", async () => {
  // 256 decode steps of about 10 ms of model time each, at scale 0.01: 0.1 ms of wall time per
  // step, far below what a timer can wait. One timer per step took at least 4 ms each (nested
  // timers are clamped), over a second for this answer.
  const body = chatBody({ max_tokens: 256, stream: false });
  const engine = new EngineModel(getProfile("a100-7b").params, { answerLength: { kind: "max" } });
  engine.submit({ prompt: chatPromptText(body), maxTokens: 256 });
  let modelMs = 0;
  for (let r = engine.step(0); r !== undefined; r = engine.step(modelMs)) modelMs = r.endMs;
  await withWorker(async (w) => {
    const t0 = performance.now();
    const res = await post(w, "/v1/chat/completions", body);
    assert.equal((await res.json()).usage.completion_tokens, 256);
    const wall = performance.now() - t0;
    const expected = modelMs * 0.01;
    assert.ok(
      wall < 3 * expected + 200,
      `wall ${wall.toFixed(0)} ms for ${expected.toFixed(0)} ms`,
    );
  });
});

Deno.test("answers end at end-of-sequence by default; ignore_eos, min_tokens and max_model_len", async () => {
  await withWorker(async (w) => {
    const lengths: number[] = [];
    for (let i = 0; i < 12; i++) {
      const j =
        await (await post(w, "/v1/chat/completions", chatBody({ max_tokens: 4000 }, `q${i}`)))
          .json();
      assert.ok(j.usage.completion_tokens < 4000);
      assert.equal(j.choices[0].finish_reason, "stop");
      lengths.push(j.usage.completion_tokens);
    }
    assert.ok(new Set(lengths).size > 3, `lengths ${lengths}`);
    const full = await (await post(w, "/v1/chat/completions", chatBody({ ignore_eos: true })))
      .json();
    assert.equal(full.usage.completion_tokens, 8);
    assert.equal(full.choices[0].finish_reason, "length");
    const min = await (await post(
      w,
      "/v1/chat/completions",
      chatBody({ min_tokens: 700, max_tokens: 800 }),
    )).json();
    assert.ok(min.usage.completion_tokens >= 700);
    const bad = await post(w, "/v1/chat/completions", chatBody({ ignore_eos: "yes" }));
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.param, "ignore_eos");
    // --max-model-len: 6 000 tokens here, so the ~1.5 k-token prompt + 5 000 is refused.
    const metrics = await (await fetch(w.url + "/metrics")).text();
    assert.match(metrics, /^vllm:request_success_total\{[^}]*finished_reason="stop"\} 1[23]$/m);
    assert.match(metrics, /^vllm:request_success_total\{[^}]*finished_reason="length"\} [12]$/m);
    assert.match(metrics, /^vllm:num_preemptions_total\{[^}]*\} 0$/m);
    const long = await post(w, "/v1/chat/completions", chatBody({ max_tokens: 5000 }));
    assert.equal(long.status, 400);
    assert.match((await long.json()).error.message, /maximum context length is 6000 tokens/);
    const models = await (await fetch(w.url + "/v1/models")).json();
    assert.equal(models.data[0].max_model_len, 6000);
  }, { answerLength: undefined, maxModelLen: 6000 });
});

Deno.test("shutdown ends open streams and stops the engine loop", async () => {
  const w = await startSimWorker({ profile: "a100-7b", timeScale: 1, port: 0 });
  const res = await post(w, "/v1/chat/completions", chatBody({ stream: true, max_tokens: 5000 }));
  const reader = res.body!.getReader();
  await reader.read();
  await w.shutdown();
  await assert.rejects(async () => {
    while (!(await reader.read()).done) { /* drain */ }
  });
});

Deno.test("cmd/sim-worker prints its URL first and exits cleanly on SIGTERM", async () => {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cmd/sim-worker.ts", "--port", "0", "--time-scale", "0.01", "--id", "w9"],
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  const first = out.split("\n")[0];
  assert.match(first, /^listening on http:\/\/127\.0\.0\.1:\d+$/);
  const url = first.slice("listening on ".length);
  const res = await fetch(url + "/v1/chat/completions", {
    method: "POST",
    body: JSON.stringify(chatBody({ max_tokens: 2 })),
  });
  assert.equal(res.status, 200);
  assert.match((await res.json()).id, /w9/);
  child.kill("SIGTERM");
  const status = await child.status;
  assert.equal(status.code, 0);
  await reader.cancel();
  await child.stderr.cancel();

  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cmd/sim-worker.ts", "--help"],
  }).output();
  assert.equal(help.code, 0);
  assert.match(new TextDecoder().decode(help.stdout), /--profile NAME/);

  // A count that is not whole is refused at start, not by every request later.
  for (const [flag, value] of [["--max-tokens", "1.5"], ["--seed", "1.5"], ["--port", "1.5"]]) {
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cmd/sim-worker.ts", flag, value],
    }).output();
    assert.equal(bad.code, 2, flag);
    assert.match(new TextDecoder().decode(bad.stderr), new RegExp(`${flag} must be an integer`));
  }
});

Deno.test("cmd/sim-worker serves --model, --lora and publishes with --kv-events", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "cmd/sim-worker.ts",
      "--port",
      "0",
      "--time-scale",
      "0.01",
      "--model",
      "base",
      "--served-model-name",
      "alias",
      "--lora",
      "ad=/adapters/ad",
      "--allow-runtime-lora",
      "--kv-events",
      "tcp://127.0.0.1:0",
      "--kv-events-encoding",
      "array",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = (s: ReadableStream<Uint8Array>) =>
    s.pipeThrough(new TextDecoderStream()).getReader();
  const out = lines(child.stdout);
  const err = lines(child.stderr);
  const readLine = async (r: ReadableStreamDefaultReader<string>) => {
    let s = "";
    while (!s.includes("\n")) {
      const { value, done } = await r.read();
      if (done) break;
      s += value;
    }
    return s.split("\n")[0];
  };
  try {
    const url = (await readLine(out)).slice("listening on ".length);
    assert.match(await readLine(err), /KV events on port \d+/);
    const models = await (await fetch(url + "/v1/models")).json();
    assert.deepEqual(models.data.map((m: { id: string }) => m.id), ["base", "alias", "ad"]);
    assert.equal(models.data[2].root, "/adapters/ad");
    const unknown = await fetch(url + "/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify(chatBody({ model: "nope", max_tokens: 1 })),
    });
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    const load = await fetch(url + "/v1/load_lora_adapter", {
      method: "POST",
      body: JSON.stringify({ lora_name: "new", lora_path: "/x" }),
    });
    assert.equal(load.status, 200);
    await load.body?.cancel();
  } finally {
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0);
    await out.cancel();
    await err.cancel();
  }
  // Flags that need another are refused at start.
  for (
    const [args, msg] of [
      [["--kv-events-encoding", "map"], /need --kv-events/],
      [["--tokenizer-json", "x.json"], /both --tokenizer-json and --tokenizer-config/],
      [["--kv-events", "tcp://127.0.0.1:0", "--kv-events-encoding", "json"], /map or array/],
    ] as const
  ) {
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cmd/sim-worker.ts", ...args],
    }).output();
    assert.equal(bad.code, 2, args.join(" "));
    assert.match(new TextDecoder().decode(bad.stderr), msg);
  }
});
