import { assert, assertEquals } from "./test_util.ts";
import {
  generateTrace,
  parseAnyTraceJsonl,
  parseTraceJsonl,
  promptBytes,
  summarizeTrace,
  systemPrompt,
  toOpenLoop,
  traceToJsonl,
  wordText,
  zipfSample,
} from "./traces.ts";
import type { ChatMessage, TraceEntry } from "./types.ts";
import { SHAPES } from "./types.ts";
import { SeededRng } from "../util/rng.ts";
import { chatPromptText } from "../sim/chat_template.ts";
import { EngineModel } from "../sim/engine.ts";
import { getProfile } from "../sim/profiles.ts";

function bySession(entries: TraceEntry[]): Map<string, TraceEntry[]> {
  const m = new Map<string, TraceEntry[]>();
  for (const e of entries) m.set(e.session_id, [...(m.get(e.session_id) ?? []), e]);
  return m;
}

function isPrefix(a: ChatMessage[], b: ChatMessage[]): boolean {
  return a.length < b.length && a.every((m, i) => JSON.stringify(m) === JSON.stringify(b[i]));
}

Deno.test("same seed gives the same trace, another seed a different one", () => {
  for (const shape of SHAPES) {
    const a = generateTrace({ shape, sessions: 4, turns: 5, seed: 7, thinkMs: 300 });
    const b = generateTrace({ shape, sessions: 4, turns: 5, seed: 7, thinkMs: 300 });
    const c = generateTrace({ shape, sessions: 4, turns: 5, seed: 8, thinkMs: 300 });
    assertEquals(traceToJsonl(a), traceToJsonl(b), shape);
    assert(traceToJsonl(a) !== traceToJsonl(c), shape);
    assertEquals(a.length, 20, shape);
  }
});

Deno.test("a session's content does not depend on the session count", () => {
  const small = generateTrace({ shape: "multiturn", sessions: 2, turns: 3, seed: 1 });
  const big = generateTrace({ shape: "multiturn", sessions: 6, turns: 3, seed: 1 });
  assertEquals(small, big.slice(0, small.length));
});

Deno.test("multiturn: turn k+1 extends turn k by the answer and a new user turn", () => {
  const maxTokens = 32;
  const t = generateTrace({ shape: "multiturn", sessions: 3, turns: 6, seed: 5, maxTokens });
  for (const [, turns] of bySession(t)) {
    assertEquals(turns.length, 6);
    for (let k = 0; k + 1 < turns.length; k++) {
      const a = turns[k].body.messages;
      const b = turns[k + 1].body.messages;
      assert(isPrefix(a, b), `turn ${k} is not a prefix of turn ${k + 1}`);
      assertEquals(b.length, a.length + 2);
      assertEquals(b[a.length].role, "assistant");
      assertEquals(b[a.length].content!.length, maxTokens * 4);
      assertEquals(b[a.length + 1].role, "user");
    }
    const body = turns[0].body;
    assertEquals(body.stream, true);
    assertEquals(body.stream_options, { include_usage: true });
    assertEquals(body.max_tokens, maxTokens);
  }
});

Deno.test("system prompt is within ±5% of system-bytes and shared by all sessions", () => {
  for (const systemBytes of [6144, 1000, 100]) {
    const t = generateTrace({ shape: "mixed", sessions: 8, turns: 2, seed: 2, systemBytes });
    const sys = new Set(t.map((e) => e.body.messages[0].content));
    assertEquals(sys.size, 1);
    const len = new TextEncoder().encode([...sys][0]!).length;
    assert(Math.abs(len - systemBytes) <= 0.05 * systemBytes, `${len} vs ${systemBytes}`);
  }
  assertEquals(systemPrompt(3, 6144), systemPrompt(3, 6144));
});

Deno.test("text is word-like and of the requested size", () => {
  const rng = new SeededRng(1);
  for (const n of [1, 2, 10, 257, 4096]) assertEquals(wordText(rng, n).length, n);
  const words = wordText(new SeededRng(2), 2000).split(/[ .]+/).filter(Boolean);
  assert(words.every((w) => /^[A-Za-z]+$/.test(w)));
  assert(new Set(words.map((w) => w.toLowerCase())).size > 50);
});

Deno.test("tool-loop: branches share the session prefix and each branch grows by prefix", () => {
  const t = generateTrace({ shape: "tool-loop", sessions: 3, turns: 8, seed: 4 });
  for (const [, reqs] of bySession(t)) {
    const msgs = reqs.map((r) => r.body.messages);
    assert(reqs.every((r) => r.body.tools && r.body.tools.length > 0));
    assert(isPrefix(msgs[0], msgs[1]));
    const prefix = msgs[1];
    for (const m of msgs.slice(2)) assert(isPrefix(prefix, m), "branch lost the session prefix");
    // At least two branches diverge right after the prefix.
    const firstSteps = new Set(msgs.slice(2).map((m) => JSON.stringify(m[prefix.length])));
    assert(firstSteps.size >= 2, "no branching");
    // Every request after the prefix extends an earlier request of the same session.
    for (let j = 2; j < msgs.length; j++) {
      assert(msgs.slice(1, j).some((p) => isPrefix(p, msgs[j])), `request ${j} extends nothing`);
    }
    const call = msgs[1][2];
    assertEquals(call.role, "assistant");
    assertEquals(call.tool_calls![0].type, "function");
    JSON.parse(call.tool_calls![0].function.arguments);
    assertEquals(msgs[1][3].role, "tool");
    assertEquals(msgs[1][3].tool_call_id, call.tool_calls![0].id);
  }
});

Deno.test("rag: Zipf popularity makes document 0 the most used", () => {
  const t = generateTrace({
    shape: "rag",
    sessions: 20,
    turns: 10,
    seed: 11,
    docs: 16,
    docsPerRequest: 3,
  });
  const counts = new Array(16).fill(0);
  for (const e of t) {
    assertEquals(e.body.messages.length, 2);
    const ids = [...e.body.messages[1].content!.matchAll(/\[document (\d+)\]/g)].map((m) => +m[1]);
    assertEquals(new Set(ids).size, 3);
    for (const d of ids) counts[d]++;
  }
  const max = Math.max(...counts);
  assertEquals(counts[0], max);
  assert(counts[0] > 3 * counts[15], `counts ${counts}`);
  // Sampling is without replacement.
  const s = zipfSample(new SeededRng(1), 5, 5, 1.1);
  assertEquals([...s].sort(), [0, 1, 2, 3, 4]);
});

Deno.test("single: requests share only the system prompt", () => {
  const t = generateTrace({ shape: "single", sessions: 3, turns: 3, seed: 1 });
  const users = new Set(t.map((e) => e.body.messages[1].content));
  assertEquals(users.size, t.length);
  assert(t.every((e) => e.body.messages.length === 2 && e.body.messages[0].role === "system"));
});

Deno.test("mixed rotates patterns; delays follow stagger and think time", () => {
  const t = generateTrace({
    shape: "mixed",
    sessions: 8,
    turns: 3,
    seed: 1,
    thinkMs: 100,
    staggerMs: 50,
  });
  assertEquals(summarizeTrace(t).byPattern, { multiturn: 6, "tool-loop": 6, rag: 6, single: 6 });
  for (const [id, reqs] of bySession(t)) {
    assert(id.startsWith(reqs[0].pattern + "-"));
    assert(reqs[0].delay_ms >= 0 && reqs[0].delay_ms <= 50);
    for (const r of reqs.slice(1)) assert(r.delay_ms >= 50 && r.delay_ms <= 150);
  }
});

Deno.test("summary and JSONL round trip", () => {
  const t = generateTrace({ shape: "multiturn", sessions: 2, turns: 2, seed: 1, systemBytes: 500 });
  const s = summarizeTrace(t);
  assertEquals(s.requests, 4);
  assertEquals(s.sessions, 2);
  assertEquals(s.promptBytes.min, Math.min(...t.map((e) => promptBytes(e.body))));
  assert(s.promptBytes.min >= 500 && s.promptBytes.max >= s.promptBytes.p50);
  assertEquals(parseTraceJsonl(traceToJsonl(t)), t);
});

Deno.test("output lengths: drawn per request, capped, and sizing the answers in histories", () => {
  const maxTokens = 300;
  const t = generateTrace({
    shape: "multiturn",
    sessions: 6,
    turns: 5,
    seed: 3,
    maxTokens,
    outputTokens: { kind: "geometric", mean: 80 },
  });
  const lengths = t.map((e) => e.output_tokens!);
  assert(lengths.every((n) => Number.isInteger(n) && n >= 1 && n <= maxTokens));
  assert(new Set(lengths).size > 10, "lengths vary");
  const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
  assert(mean < maxTokens / 2, `mean ${mean}`);
  const engine = new EngineModel(getProfile("a100-7b").params);
  const count = (m: ChatMessage[]) => engine.countTokens(chatPromptText({ messages: m }) as string);
  for (const [, turns] of bySession(t)) {
    for (let k = 0; k + 1 < turns.length; k++) {
      const answer = turns[k + 1].body.messages.at(-2)!;
      assertEquals(answer.role, "assistant");
      // L tokens of answer are 4 L ASCII bytes: what the simulated engine counts.
      assertEquals(new TextEncoder().encode(answer.content!).length, 4 * turns[k].output_tokens!);
      const before = count(turns[k + 1].body.messages.slice(0, -2));
      const after = count(turns[k + 1].body.messages.slice(0, -1));
      // Plus the template's "assistant:" and newline: 11 bytes, 2 or 3 tokens after rounding.
      const extra = after - before - turns[k].output_tokens!;
      assert(extra === 2 || extra === 3, `answer counted as ${extra} extra tokens`);
    }
  }
  // Without a distribution lines carry no length and answers are max_tokens long (as before).
  const plain = generateTrace({ shape: "multiturn", sessions: 1, turns: 2, seed: 3 });
  assert(plain.every((e) => e.output_tokens === undefined));
});

Deno.test("open loop: Poisson arrivals at the rate, session order kept; replay refuses them", () => {
  const closed = generateTrace({ shape: "mixed", sessions: 8, turns: 25, seed: 1 });
  const open = toOpenLoop(closed, 20, 9);
  assertEquals(open.length, closed.length);
  assert(open.every((e) => !("delay_ms" in e) && e.arrival_ms >= 0));
  for (let i = 1; i < open.length; i++) assert(open[i].arrival_ms >= open[i - 1].arrival_ms);
  const span = open.at(-1)!.arrival_ms / 1000;
  const rate = (open.length - 1) / span;
  assert(rate > 15 && rate < 26, `rate ${rate}`);
  for (const [, reqs] of bySession(open as unknown as TraceEntry[])) {
    const mine = closed.filter((e) => e.session_id === reqs[0].session_id);
    assertEquals(reqs.map((r) => r.body), mine.map((r) => r.body));
  }
  const jsonl = traceToJsonl(open);
  assertEquals(parseAnyTraceJsonl(jsonl), open);
  let msg = "";
  try {
    parseTraceJsonl(jsonl);
  } catch (err) {
    msg = (err as Error).message;
  }
  assert(/open loop/.test(msg), msg);
  // A line without timing is an error now, not a silent delay of 0.
  const line = JSON.stringify({ session_id: "a", pattern: "single", body: closed[0].body });
  let missing = "";
  try {
    parseTraceJsonl(line);
  } catch (err) {
    missing = (err as Error).message;
  }
  assert(/neither delay_ms/.test(missing), missing);
});

Deno.test("fork: a group's branches share the parent context, start together after the parent, and grow", () => {
  const t = generateTrace({
    shape: "fork",
    sessions: 8,
    turns: 4,
    seed: 3,
    thinkMs: 500,
    staggerMs: 1000,
  });
  const sessions = [...bySession(t).values()];
  assertEquals(sessions.length, 8);
  for (let g = 0; g < 2; g++) {
    const group = sessions.slice(4 * g, 4 * g + 4);
    const parent = group[0][0].body.messages;
    // The parent's first request is the parent context alone; every branch extends it.
    assertEquals(parent.at(-1)!.role, "tool");
    for (const [b, reqs] of group.entries()) {
      const msgs = reqs.map((r) => r.body.messages);
      if (b > 0) assert(isPrefix(parent, msgs[0]), `branch ${b} lost the parent context`);
      for (let k = 1; k < msgs.length; k++) assert(isPrefix(msgs[k - 1], msgs[k]));
      assert(reqs.every((r) => r.body.tools && r.body.tools.length > 0));
    }
    // Branches diverge right after the parent context.
    const firsts = new Set(group.slice(1).map((r) => JSON.stringify(r[0].body.messages.at(-2))));
    assertEquals(firsts.size, 3);
    // The other branches start 2 s + think time after the parent, within 20 ms of each other.
    const start = group[0][0].delay_ms;
    assert(start >= 0 && start <= 1000);
    for (const reqs of group.slice(1)) {
      const d = reqs[0].delay_ms - start;
      assert(d >= 2500 && d <= 2520, `branch starts ${d} ms after its parent`);
    }
  }
  // Another group has another parent context.
  assert(sessions[0][0].body.messages[1].content !== sessions[4][0].body.messages[1].content);
});

Deno.test("agentic: each turn adds a tool call whose result grows about 1.6× a turn, up to 16 KiB", () => {
  const t = generateTrace({ shape: "agentic", sessions: 3, turns: 12, seed: 2 });
  for (const [, reqs] of bySession(t)) {
    const msgs = reqs.map((r) => r.body.messages);
    assertEquals(msgs[0].length, 2);
    const results: number[] = [];
    for (let k = 1; k < msgs.length; k++) {
      assert(isPrefix(msgs[k - 1], msgs[k]));
      assertEquals(msgs[k].length, msgs[k - 1].length + 2);
      assertEquals(msgs[k].at(-2)!.role, "assistant");
      results.push(msgs[k].at(-1)!.content!.length);
    }
    assert(results[0] >= 384 && results[0] <= 640, `first result ${results[0]}`);
    assert(results[5] > 3 * results[0], `results ${results}`);
    assert(results.every((n) => n <= 16384));
    assertEquals(results.at(-1), 16384);
  }
});
