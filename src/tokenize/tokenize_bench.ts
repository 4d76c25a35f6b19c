/**
 * Micro-benchmarks of the local tokenizer: the follow-up turn of a 6 KB multi-turn conversation
 * (the previous turns already seen, a new assistant answer and a new user question each time),
 * with the section cache against a full re-tokenization, and the parts (template render, encode
 * with cached sections, encode whole). Target of issue 18: router CPU per follow-up turn of a 6 KB
 * conversation with the cache at most 0.3 ms.
 *
 * Run: `deno bench -A src/tokenize/tokenize_bench.ts`
 *
 * @module
 */

import { SeededRng } from "../util/rng.ts";
import type { LocalTokenizer } from "./local_tokenizer.ts";
import { type TestModel, testTokenizer } from "./test_models.ts";

const rng = new SeededRng(18);
const WORDS = [
  "the",
  "cache",
  "router",
  "prefix",
  "token",
  "engine",
  "block",
  "latency",
  "Grüße",
  "世界",
  "café",
  "🙂",
  "data,",
  "results.",
  "2048",
  "(see",
  "below)",
];

/** Pseudo-random prose of about `chars` characters. */
function prose(chars: number): string {
  let out = "";
  while (out.length < chars) {
    out += WORDS[rng.int(WORDS.length)] + (rng.int(12) === 0 ? ".\n" : " ");
  }
  return out;
}

/** Earlier turns of the conversation: a 1 KB system prompt and 4 exchanges, about 5.2 KB. */
function history(): Record<string, unknown>[] {
  const messages: Record<string, unknown>[] = [{ role: "system", content: prose(1000) }];
  for (let i = 0; i < 4; i++) {
    messages.push({ role: "user", content: prose(450) }, {
      role: "assistant",
      content: prose(600),
    });
  }
  messages.push({ role: "user", content: prose(300) });
  return messages;
}

interface Scenario {
  readonly tok: LocalTokenizer;
  /** A fresh follow-up body: the history, a new answer and a new question (about 6 KB). */
  next(): Record<string, unknown>;
}

async function scenario(model: TestModel): Promise<Scenario> {
  const tok = await testTokenizer(model);
  const earlier = history();
  // The previous turn went through the router, so its sections are cached.
  tok.tokenizeSync({ kind: "chat", body: { messages: earlier } });
  const next = () => ({
    messages: [...earlier, { role: "assistant", content: prose(500) }, {
      role: "user",
      content: prose(200),
    }],
  });
  const size = JSON.stringify(next().messages).length;
  console.log(`${model}: follow-up body of ${size} bytes of messages`);
  return { tok, next };
}

const qwen = await scenario("qwen3");
const llama = await scenario("llama3");

for (const [name, s] of [["Qwen3", qwen], ["Llama 3", llama]] as const) {
  const group = `follow-up turn, 6 KB, ${name}`;
  Deno.bench(`${name}: render + encode with the section cache`, { group, baseline: true }, (b) => {
    const body = s.next();
    b.start();
    s.tok.tokenizeSync({ kind: "chat", body });
    b.end();
  });
  Deno.bench(`${name}: render + encode whole (no cache)`, { group }, (b) => {
    const body = s.next();
    b.start();
    s.tok.encodeWhole(s.tok.renderChat(body), false);
    b.end();
  });
}

Deno.bench("Qwen3: template render only", { group: "parts, Qwen3" }, (b) => {
  const body = qwen.next();
  b.start();
  qwen.tok.renderChat(body);
  b.end();
});

Deno.bench("Qwen3: encode rendered text, cached sections", { group: "parts, Qwen3" }, (b) => {
  const text = qwen.tok.renderChat(qwen.next());
  b.start();
  qwen.tok.encodeText(text, false);
  b.end();
});

Deno.bench("Qwen3: encode rendered text whole", { group: "parts, Qwen3" }, (b) => {
  const text = qwen.tok.renderChat(qwen.next());
  b.start();
  qwen.tok.encodeWhole(text, false);
  b.end();
});
