/**
 * The sim worker's models: several served names, LoRA adapters listed in vLLM's shape, vLLM's 404
 * for a model it does not serve, runtime adapter loading, and adapter cache isolation.
 */

import assert from "node:assert/strict";
import OpenAI from "openai";
import { postJson as post, withSimWorker as withWorker } from "./_support.ts";

const SYSTEM = "You are a helpful assistant. ".repeat(60);

function chat(model: string | undefined, user = "hello") {
  return {
    model,
    messages: [{ role: "system", content: SYSTEM }, { role: "user", content: user }],
    max_tokens: 2,
  };
}

Deno.test("models: vLLM's /v1/models lists base names and adapters with their parent", async () => {
  await withWorker({
    models: ["Qwen/Qwen3-8B", "qwen3"],
    loras: [{ name: "sql", path: "/adapters/sql" }, { name: "chat" }],
  }, async (w) => {
    const list = await (await fetch(w.url + "/v1/models")).json();
    assert.equal(list.object, "list");
    assert.deepEqual(list.data.map((m: { id: string }) => m.id), [
      "Qwen/Qwen3-8B",
      "qwen3",
      "sql",
      "chat",
    ]);
    const [base, alias, sql] = list.data;
    for (const m of list.data) {
      assert.equal(m.object, "model");
      assert.equal(m.owned_by, "vllm");
      assert.equal(typeof m.created, "number");
      assert.equal(m.permission.length, 1);
      assert.equal(m.permission[0].object, "model_permission");
    }
    assert.equal(base.parent, null);
    assert.equal(alias.parent, null);
    assert.equal(base.max_model_len, 32_768);
    assert.equal(sql.parent, "Qwen/Qwen3-8B");
    assert.equal(sql.root, "/adapters/sql");
    assert.equal(sql.max_model_len, null);
    // The official client reads the list too.
    const client = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: "k", maxRetries: 0 });
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ["Qwen/Qwen3-8B", "qwen3", "sql", "chat"]);
  });
});

Deno.test("models: an unknown model is vLLM's 404; base names, adapters and no model are served", async () => {
  await withWorker({ models: ["base-a", "base-b"], loras: [{ name: "ad" }] }, async (w) => {
    const res = await post(w, "/v1/chat/completions", chat("nope"));
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), {
      error: {
        message: "The model `nope` does not exist.",
        type: "NotFoundError",
        param: "model",
        code: 404,
      },
    });
    for (const path of ["/v1/completions", "/v1/embeddings", "/tokenize", "/v1/responses"]) {
      const r = await post(w, path, { model: "nope", prompt: "x", input: "x" });
      assert.equal(r.status, 404, path);
      assert.equal((await r.json()).error.type, "NotFoundError", path);
    }
    const names = [];
    for (const m of ["base-a", "base-b", "ad", undefined]) {
      const r = await post(w, "/v1/chat/completions", chat(m));
      assert.equal(r.status, 200, String(m));
      names.push((await r.json()).model);
    }
    // Responses name the adapter, else the first base name (vLLM's model_name()).
    assert.deepEqual(names, ["base-a", "base-a", "ad", "base-a"]);
  });
});

Deno.test("models: a worker given no names accepts any model, as before", async () => {
  await withWorker({}, async (w) => {
    const r = await post(w, "/v1/chat/completions", chat("whatever-the-trace-says"));
    assert.equal(r.status, 200);
    assert.equal((await r.json()).model, "sim");
  });
});

Deno.test("models: load and unload adapters at run time, with vLLM's answers", async () => {
  await withWorker({ models: ["base"], allowRuntimeLora: true }, async (w) => {
    const load = await post(w, "/v1/load_lora_adapter", { lora_name: "new", lora_path: "/a/new" });
    assert.equal(load.status, 200);
    assert.equal(await load.text(), "Success: LoRA adapter 'new' added successfully.");
    let ids = (await (await fetch(w.url + "/v1/models")).json()).data.map((m: { id: string }) =>
      m.id
    );
    assert.deepEqual(ids, ["base", "new"]);
    assert.equal((await post(w, "/v1/chat/completions", chat("new"))).status, 200);

    const again = await post(w, "/v1/load_lora_adapter", { lora_name: "new", lora_path: "/a/new" });
    assert.equal(again.status, 400);
    assert.equal((await again.json()).error.type, "InvalidUserInput");
    const missing = await post(w, "/v1/load_lora_adapter", { lora_name: "x" });
    assert.equal(missing.status, 400);
    assert.equal(
      (await missing.json()).error.message,
      "Both 'lora_name' and 'lora_path' must be provided.",
    );

    const unload = await post(w, "/v1/unload_lora_adapter", { lora_name: "new" });
    assert.equal(unload.status, 200);
    assert.equal(await unload.text(), "Success: LoRA adapter 'new' removed successfully.");
    ids = (await (await fetch(w.url + "/v1/models")).json()).data.map((m: { id: string }) => m.id);
    assert.deepEqual(ids, ["base"]);
    assert.equal((await post(w, "/v1/chat/completions", chat("new"))).status, 404);
    const gone = await post(w, "/v1/unload_lora_adapter", { lora_name: "new" });
    assert.equal(gone.status, 404);
    assert.deepEqual(await gone.json(), {
      error: {
        message: "The lora adapter 'new' cannot be found.",
        type: "NotFoundError",
        param: null,
        code: 404,
      },
    });
  });
  // Without the flag the routes do not exist, as in vLLM without VLLM_ALLOW_RUNTIME_LORA_UPDATING.
  await withWorker({ models: ["base"] }, async (w) => {
    const r = await post(w, "/v1/load_lora_adapter", { lora_name: "n", lora_path: "/p" });
    assert.equal(r.status, 404);
    await r.body?.cancel();
  });
});

Deno.test("models: an adapter's blocks never match the base model's, nor another adapter's", async () => {
  await withWorker({ models: ["base"], loras: [{ name: "a1" }, { name: "a2" }] }, async (w) => {
    const cached = async (model: string) => {
      const j = await (await post(w, "/v1/chat/completions", chat(model))).json();
      return j.usage.prompt_tokens_details?.cached_tokens ?? 0;
    };
    assert.equal(await cached("base"), 0);
    assert.equal(await cached("a1"), 0, "the base model's blocks do not serve an adapter");
    assert.ok(await cached("a1") > 0, "the adapter's own blocks do");
    assert.equal(await cached("a2"), 0, "nor another adapter's");
    assert.ok(await cached("base") > 0);
  });
});
