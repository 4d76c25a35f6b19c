/**
 * Section reuse is exact: property tests that cached and whole tokenization give the same ids on
 * random multi-turn conversations (multi-byte text, added-token strings inside messages,
 * whitespace next to them, tools, reasoning, a cache small enough to evict) with the real Qwen3
 * and Llama 3 tokenizers, and on random texts; and the guards, with small hand-made tokenizers
 * whose sections are not independent (Metaspace `prepend_scheme: "first"`) or whose added tokens
 * strip their neighbours.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Tokenizer } from "@huggingface/tokenizers";
import { SectionCache } from "./section_cache.ts";
import { SectionEncoder } from "./section_encoder.ts";
import { type TestModel, testTokenizer } from "./test_models.ts";

const PIECES = [
  "the",
  " cache",
  " router",
  "Hello",
  " world",
  "Grüße",
  " 東京",
  "世界",
  "🙂",
  " naïve",
  "e\u0301",
  "123",
  "4567",
  ".",
  ",",
  "!?",
  " ",
  "  ",
  "\n",
  "\n\n",
  "\t",
  "'s",
  "<|im_start|>",
  "<|im_end|>",
  "<|endoftext|>",
  "<think>",
  "</think>",
  "<tool_call>",
  "<|eot_id|>",
  "<|begin_of_text|>",
  "<|start_header_id|>",
  "<|im_",
  "|>",
  "<",
];

/** Text made of pieces that stress boundaries: added tokens, spaces and multi-byte characters. */
const textArb = fc.oneof(
  fc.array(fc.constantFrom(...PIECES), { maxLength: 24 }).map((p) => p.join("")),
  fc.string({ unit: "grapheme", maxLength: 40 }),
);

const toolArb = fc.record({
  type: fc.constant("function"),
  function: fc.record({ name: fc.constantFrom("get_weather", "search"), description: textArb }),
});

interface Turn {
  user: string;
  assistant: string;
  reasoning: string | null;
  call: boolean;
}

const turnArb: fc.Arbitrary<Turn> = fc.record({
  user: textArb,
  assistant: textArb,
  reasoning: fc.option(textArb, { nil: null }),
  call: fc.boolean(),
});

const conversationArb = fc.record({
  system: fc.option(textArb, { nil: null }),
  tools: fc.option(fc.array(toolArb, { minLength: 1, maxLength: 2 }), { nil: null }),
  turns: fc.array(turnArb, { minLength: 1, maxLength: 4 }),
});

type Conversation = typeof conversationArb extends fc.Arbitrary<infer T> ? T : never;

/** The request body of turn `t` (0-based): history up to and including user message `t`. */
function bodyAt(c: Conversation, t: number): Record<string, unknown> {
  const messages: Record<string, unknown>[] = [];
  if (c.system !== null) messages.push({ role: "system", content: c.system });
  for (let i = 0; i <= t; i++) {
    const turn = c.turns[i];
    messages.push({ role: "user", content: turn.user });
    if (i === t) break;
    const assistant: Record<string, unknown> = { role: "assistant", content: turn.assistant };
    if (turn.reasoning !== null) assistant.reasoning = turn.reasoning;
    if (turn.call) {
      assistant.tool_calls = [{
        id: `c${i}`,
        type: "function",
        function: { name: "search", arguments: JSON.stringify({ q: turn.user }) },
      }];
      messages.push(assistant, { role: "tool", tool_call_id: `c${i}`, content: turn.assistant });
    } else {
      messages.push(assistant);
    }
  }
  return c.tools === null ? { messages } : { messages, tools: c.tools };
}

async function conversationsAgree(model: TestModel, cacheBytes: number | undefined, runs: number) {
  const tok = await testTokenizer(model, cacheBytes === undefined ? {} : { cacheBytes });
  assert.equal(tok.cacheOff, undefined);
  fc.assert(
    fc.property(conversationArb, (c) => {
      for (let t = 0; t < c.turns.length; t++) {
        const body = bodyAt(c, t);
        const cached = tok.tokenizeSync({ kind: "chat", body }).tokens;
        const whole = tok.encodeWhole(tok.renderChat(body), false);
        assert.deepEqual(cached, whole);
      }
    }),
    { numRuns: runs },
  );
  const s = tok.stats();
  assert.ok(s.cacheHits > 0, "follow-up turns hit the cache");
  assert.ok(s.cacheBytes <= s.cacheMaxBytes);
}

Deno.test("SectionEncoder: cached and whole ids agree on random conversations, Qwen3 (property)", async () => {
  await conversationsAgree("qwen3", undefined, 60);
});

Deno.test("SectionEncoder: cached and whole ids agree on random conversations, Llama 3 (property)", async () => {
  await conversationsAgree("llama3", undefined, 60);
});

Deno.test("SectionEncoder: cached and whole ids agree with a cache that evicts (property)", async () => {
  await conversationsAgree("qwen3", 16 * 1024, 40);
  const s = (await testTokenizer("qwen3", { cacheBytes: 16 * 1024 })).stats();
  assert.ok(s.cacheEvictions > 0, "the small cache evicted");
});

Deno.test("SectionEncoder: cached and whole ids agree on random texts, with and without specials (property)", async () => {
  for (const model of ["qwen3", "llama3"] as const) {
    const tok = await testTokenizer(model);
    fc.assert(
      fc.property(textArb, fc.boolean(), (text, special) => {
        assert.deepEqual(tok.encodeText(text, special).tokens, tok.encodeWhole(text, special));
        // A second time every section is a hit, and the ids are the same.
        const again = tok.encodeText(text, special);
        assert.equal(again.encodedTokens, 0);
        assert.deepEqual(again.tokens, tok.encodeWhole(text, special));
      }),
      { numRuns: 150 },
    );
  }
});

/** A tiny Metaspace BPE tokenizer over "a", "b" and spaces with two added tokens. */
function tinyTokenizer(prependScheme: "first" | "always", strip: boolean): Record<string, unknown> {
  const added = (id: number, content: string, s: boolean) => ({
    id,
    content,
    single_word: false,
    lstrip: s,
    rstrip: s,
    normalized: false,
    special: true,
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [added(0, "<unk>", false), added(1, "<s>", false), added(2, "<sep>", strip)],
    normalizer: null,
    pre_tokenizer: {
      type: "Metaspace",
      replacement: "▁",
      prepend_scheme: prependScheme,
      split: true,
    },
    post_processor: null,
    decoder: null,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: { "<unk>": 0, "<s>": 1, "<sep>": 2, "▁": 3, a: 4, b: 5, "▁a": 6, "▁b": 7, ab: 8 },
      merges: ["▁ a", "▁ b", "a b"],
    },
  };
}

Deno.test("SectionEncoder: sections that depend on their position turn the cache off", () => {
  const json = tinyTokenizer("first", false);
  // The hazard: with prepend_scheme "first" only the first section gets "▁", so encoding the
  // sections alone would give [6, 1, 6] where the tokenizer gives [6, 1, 4].
  const lib = new Tokenizer(json, {});
  assert.deepEqual(lib.encode("a<s>a", { add_special_tokens: false }).ids, [6, 1, 4]);
  assert.deepEqual(lib.encode("a", { add_special_tokens: false }).ids, [6]);
  const enc = new SectionEncoder(json, {}, new SectionCache(1 << 20));
  assert.match(enc.cacheOff ?? "", /prepend_scheme first/);
  assert.deepEqual(Array.from(enc.encode("a<s>a", false).tokens), [6, 1, 4]);
});

Deno.test("SectionEncoder: added tokens that strip their neighbours are reproduced (property)", () => {
  const json = tinyTokenizer("always", true);
  const enc = new SectionEncoder(json, {}, new SectionCache(1 << 20));
  assert.equal(enc.cacheOff, undefined);
  // "<sep>" strips the spaces on both sides: "a <sep> b" is a, <sep>, b.
  assert.deepEqual(Array.from(enc.encode("a <sep> b", false).tokens), [6, 2, 7]);
  const text = fc.array(fc.constantFrom("a", "b", " ", "  ", "<s>", "<sep>", "<se"), {
    maxLength: 16,
  })
    .map((p) => p.join(""));
  fc.assert(
    fc.property(text, (t) => {
      assert.deepEqual(enc.encode(t, false).tokens, enc.encodeWhole(t, false));
    }),
    { numRuns: 300 },
  );
});
