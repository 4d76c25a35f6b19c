/**
 * Micro-benchmarks of the local tokenizer: the follow-up turn of a 6 KB multi-turn conversation
 * (the previous turns already seen, a new assistant answer of 500 characters and a new question
 * of 200 each time), with the section cache against a full re-tokenization, and the parts
 * (template render, encode with cached sections, encode whole), and the same turn rendered by the
 * library's plain `Template.render` instead of fast_template.ts (same output). Text: words drawn from a
 * 3000-word vocabulary, frequent ones more often, multi-byte ones included, and a share of words
 * never seen before (random identifiers) so that BPE has real work on the new part. Target of
 * issue 18: router CPU per follow-up turn of a 6 KB conversation with the cache at most 0.3 ms.
 *
 * Run: `deno bench -A src/tokenize/tokenize_bench.ts`
 *
 * @module
 */

import { SeededRng } from "../util/rng.ts";
import { ChatRenderer } from "./chat_render.ts";
import { type LocalTokenizer, specialTokenVariables } from "./local_tokenizer.ts";
import { chatFlags } from "./request_fields.ts";
import { modelFiles, type TestModel, testTokenizer } from "./test_models.ts";

const rng = new SeededRng(18);
const SYLLABLES = ["ka", "ro", "te", "mi", "su", "la", "ven", "dor", "é", "ü", "東", "京", "data"];
const PUNCT = [" ", " ", " ", " ", " ", ", ", ". ", ".\n", "\n\n", " (", ") ", ": "];

/** A fixed vocabulary of pseudo-words, frequent ones first. */
const VOCAB = Array.from({ length: 3000 }, (_, i) => {
  if (i < 6) return ["the", "a", "of", "to", "cache", "router"][i];
  let w = "";
  const syllables = 1 + rng.int(3);
  for (let k = 0; k < syllables; k++) w += SYLLABLES[rng.int(SYLLABLES.length)];
  return w;
});

/** Pseudo-random prose of about `chars` characters; `fresh` of the words are new identifiers. */
function prose(chars: number, fresh: number): string {
  let out = "";
  while (out.length < chars) {
    const word = rng.next() < fresh
      ? `x${Math.floor(rng.next() * 2 ** 40).toString(36)}`
      : VOCAB[Math.floor(VOCAB.length * rng.next() ** 3)];
    out += word + PUNCT[rng.int(PUNCT.length)];
  }
  return out;
}

/** Earlier turns of the conversation: a 1 KB system prompt and 4 exchanges, about 5.2 KB. */
function history(fresh: number): Record<string, unknown>[] {
  const messages: Record<string, unknown>[] = [{ role: "system", content: prose(1000, fresh) }];
  for (let i = 0; i < 4; i++) {
    messages.push({ role: "user", content: prose(450, fresh) }, {
      role: "assistant",
      content: prose(600, fresh),
    });
  }
  messages.push({ role: "user", content: prose(300, fresh) });
  return messages;
}

interface Scenario {
  readonly tok: LocalTokenizer;
  /** The model's template through the library's plain `Template.render`. */
  readonly plain: ChatRenderer;
  /** A fresh follow-up body: the history, a new answer and a new question (about 6.7 KB). */
  next(): Record<string, unknown>;
}

async function scenario(model: TestModel, fresh: number): Promise<Scenario> {
  const tok = await testTokenizer(model);
  const earlier = history(fresh);
  // The previous turn went through the router, so its sections are cached.
  tok.tokenizeSync({ kind: "chat", body: { messages: earlier } });
  const next = () => ({
    messages: [...earlier, { role: "assistant", content: prose(500, fresh) }, {
      role: "user",
      content: prose(200, fresh),
    }],
  });
  // A router that has run a while knows the frequent words: warm the word cache with other turns.
  for (let i = 0; i < 500; i++) tok.tokenizeSync({ kind: "chat", body: next() });
  const size = new TextEncoder().encode(JSON.stringify(next().messages)).length;
  console.log(`${model}, ${fresh * 100}% new words: follow-up messages of ${size} bytes`);
  const config = JSON.parse(Deno.readTextFileSync(modelFiles(model).tokenizerConfig));
  const plain = new ChatRenderer({
    chatTemplate: String(config.chat_template),
    specialTokens: specialTokenVariables(config),
    plainRender: true,
  });
  return { tok, plain, next };
}

const scenarios: [string, Scenario][] = [
  ["Qwen3, 10% new words", await scenario("qwen3", 0.1)],
  ["Llama 3, 10% new words", await scenario("llama3", 0.1)],
  ["Qwen3, no new words", await scenario("qwen3", 0)],
];

for (const [name, s] of scenarios) {
  const group = `follow-up turn, 6 KB, ${name}`;
  Deno.bench(`${name}: render + encode with the section cache`, { group, baseline: true }, (b) => {
    const body = s.next();
    b.start();
    s.tok.tokenizeSync({ kind: "chat", body });
    b.end();
  });
  Deno.bench(`${name}: library Template.render + encode with the section cache`, { group }, (b) => {
    const body = s.next();
    b.start();
    const flags = chatFlags(body);
    s.tok.encodeText(s.plain.render(body, flags), flags.addSpecialTokens);
    b.end();
  });
  Deno.bench(`${name}: render + encode whole (no cache)`, { group }, (b) => {
    const body = s.next();
    b.start();
    s.tok.encodeWhole(s.tok.renderChat(body), false);
    b.end();
  });
}

const [, qwen] = scenarios[0];

Deno.bench("Qwen3: template render only", { group: "parts, Qwen3, 10% new words" }, (b) => {
  const body = qwen.next();
  b.start();
  qwen.tok.renderChat(body);
  b.end();
});

Deno.bench("Qwen3: template render only, library Template.render", {
  group: "parts, Qwen3, 10% new words",
}, (b) => {
  const body = qwen.next();
  b.start();
  qwen.plain.render(body, chatFlags(body));
  b.end();
});

Deno.bench("Qwen3: encode rendered text, cached sections", {
  group: "parts, Qwen3, 10% new words",
}, (b) => {
  const text = qwen.tok.renderChat(qwen.next());
  b.start();
  qwen.tok.encodeText(text, false);
  b.end();
});

Deno.bench("Qwen3: encode rendered text whole", { group: "parts, Qwen3, 10% new words" }, (b) => {
  const text = qwen.tok.renderChat(qwen.next());
  b.start();
  qwen.tok.encodeWhole(text, false);
  b.end();
});
