import assert from "node:assert/strict";
import { parseTrace, simulate, summarize } from "./offline.ts";
import { buildMultiTurnTrace } from "./testing.ts";
import type { TraceRequest } from "./types.ts";
import { DEFAULT_KV_BUDGET } from "../config/fields.ts";

function chat(content: string, maxTokens = 64) {
  return { model: "sim", messages: [{ role: "user", content }], max_tokens: maxTokens };
}

/** `n` ASCII bytes of text tagged by `tag`. */
function text(tag: string, n: number): string {
  let s = "";
  for (let i = 0; s.length < n; i++) s += `${tag}-${i};`;
  return s.slice(0, n);
}

Deno.test("prefixaware caches a higher share than roundrobin and random at every load", () => {
  for (const sessions of [4, 8, 12, 16, 24]) {
    const trace = buildMultiTurnTrace({ sessions, seed: sessions });
    const share: Record<string, number> = {};
    for (const strategy of ["prefixaware", "roundrobin", "random"]) {
      const { summary } = simulate({ trace, workers: 4, strategy, seed: 1 });
      assert.equal(summary.requests, trace.length);
      assert.equal(summary.errors, 0);
      share[strategy] = summary.kvCachedShare;
    }
    const msg = `sessions ${sessions}: ${JSON.stringify(share)}`;
    assert.ok(share.prefixaware > share.roundrobin, msg);
    assert.ok(share.prefixaware > share.random, msg);
  }
});

Deno.test("offline simulation is deterministic for a seed and records every request", () => {
  const trace = buildMultiTurnTrace({ sessions: 6, turns: 4 });
  const a = simulate({ trace, workers: 3, strategy: "random", seed: 42 });
  const b = simulate({ trace, workers: 3, strategy: "random", seed: 42 });
  assert.deepEqual(a.records, b.records);
  const c = simulate({ trace, workers: 3, strategy: "random", seed: 43 });
  assert.notDeepEqual(
    a.records.map((r) => r.backend),
    c.records.map((r) => r.backend),
  );
  assert.equal(a.records.length, 24);
  for (const r of a.records) {
    assert.equal(r.status, 200);
    assert.ok(r.ttft_ms !== null && r.ttft_ms > 0 && r.ttft_ms <= r.total_ms);
    // Answers end at end-of-sequence (default model), never past max_tokens.
    assert.ok(r.completion_tokens >= 1 && r.completion_tokens <= 64);
    assert.equal(r.reason, "random");
  }
  // Closed loop: a session's turns start in order, each after the previous one ended.
  const s0 = a.records.filter((r) => r.session_id === "s0").sort((x, y) => x.turn - y.turn);
  for (let i = 1; i < s0.length; i++) {
    assert.ok(s0[i].start_ms >= s0[i - 1].start_ms + s0[i - 1].total_ms);
  }
  assert.deepEqual(summarize(a.records), a.summary);
});

Deno.test("prefixaware sends a session's later turns to the worker that holds its history", () => {
  const trace = buildMultiTurnTrace({ sessions: 8, turns: 5 });
  const { records } = simulate({ trace, workers: 4, strategy: "prefixaware" });
  const later = records.filter((r) => r.turn > 0);
  assert.ok(later.every((r) => r.reason === "longest-prefix"));
  // Later turns hit at least the system prompt plus the previous turn's prompt.
  for (const r of later) assert.ok(r.cached_tokens / r.prompt_tokens > 0.8, JSON.stringify(r));
});

Deno.test("over-long requests are recorded as 400 and the session goes on", () => {
  const trace = buildMultiTurnTrace({ sessions: 2, turns: 3, systemBytes: 9000 });
  const { records } = simulate({ trace, workers: 2, strategy: "roundrobin", profile: "m1-1.5b" });
  assert.equal(records.length, 6);
  assert.ok(records.every((r) => r.status === 400 && /maximum context length/.test(r.error!)));
});

Deno.test("parseTrace reads JSONL and names the bad line", () => {
  const line = JSON.stringify({
    session_id: "a",
    delay_ms: 5,
    pattern: "p",
    body: { messages: [{ role: "user", content: "hi" }] },
  });
  assert.equal(parseTrace(line + "\n\n" + line + "\n").length, 2);
  assert.throws(() => parseTrace(line + '\n{"session_id":1}'), /trace line 2: session_id/);
});

Deno.test("open loop: every request starts at its arrival_ms, whatever the others do", () => {
  const trace: TraceRequest[] = [
    // One session: the first answer takes seconds, the second request still goes at 300 ms.
    {
      session_id: "a",
      arrival_ms: 0,
      pattern: "p",
      output_tokens: 500,
      body: chat(text("a", 2000), 600),
    },
    { session_id: "a", arrival_ms: 300, pattern: "p", body: chat(text("b", 2000)) },
    { session_id: "c", arrival_ms: 1250, pattern: "p", body: chat(text("c", 2000)) },
    { session_id: "d", arrival_ms: 40_000, pattern: "p", body: chat(text("d", 2000)) },
  ];
  const { records } = simulate({ trace, workers: 1, strategy: "roundrobin" });
  const start = (sid: string, turn: number) =>
    records.find((r) => r.session_id === sid && r.turn === turn)!;
  assert.deepEqual(
    [start("a", 0), start("a", 1), start("c", 0), start("d", 0)].map((r) => r.start_ms),
    [0, 300, 1250, 40_000],
  );
  const first = start("a", 0);
  assert.equal(first.completion_tokens, 500, "output_tokens honoured");
  assert.ok(first.total_ms > 300, "the first was still running when the second went");
  // Closed loop, the same requests wait for each other.
  const closed = simulate({
    trace: trace.map(({ arrival_ms: _, ...r }) => ({ ...r, delay_ms: 0 })),
    workers: 1,
    strategy: "roundrobin",
  }).records;
  const a1 = closed.find((r) => r.session_id === "a" && r.turn === 1)!;
  assert.ok(a1.start_ms >= first.total_ms);
});

Deno.test("a trace that mixes delay_ms and arrival_ms, or has neither, is an error", () => {
  const line = (o: Record<string, unknown>) =>
    JSON.stringify({ session_id: "s", pattern: "p", body: chat("hi"), ...o });
  const cases: Array<[string, RegExp]> = [
    [
      line({ delay_ms: 0 }) + "\n" + line({ arrival_ms: 5 }),
      /trace line 2 has arrival_ms \(open loop\) but line 1 has delay_ms \(closed loop\)/,
    ],
    [line({}), /trace line 1 has neither delay_ms .* nor arrival_ms/],
    [line({ delay_ms: 1, arrival_ms: 1 }), /trace line 1 has both delay_ms .* and arrival_ms/],
    [line({ arrival_ms: -1 }), /trace line 1: arrival_ms must be a number ≥ 0/],
    [line({ delay_ms: 0, output_tokens: 0 }), /output_tokens must be a positive integer/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseTrace(text), re);
  const mixed: TraceRequest[] = [
    { session_id: "a", delay_ms: 0, pattern: "p", body: chat("x") },
    { session_id: "b", arrival_ms: 0, pattern: "p", body: chat("y") },
  ];
  assert.throws(() => simulate({ trace: mixed, workers: 1, strategy: "random" }), /line 1 has/);
});

Deno.test("a refused request (over max model len) leaves nothing in the worker's prefix index", () => {
  const long = { session_id: "x", delay_ms: 0, pattern: "p", body: chat(text("big", 12_000)) };
  const cases = [
    { name: "refused", maxModelLen: 2048, status: 400, indexed: false },
    { name: "served", maxModelLen: 8192, status: 200, indexed: true },
  ];
  for (const c of cases) {
    const res = simulate({
      trace: [long],
      workers: 1,
      strategy: "prefixaware",
      maxModelLen: c.maxModelLen,
    });
    assert.equal(res.records[0].status, c.status, c.name);
    assert.equal(res.workers[0].indexChunks > 0, c.indexed, c.name);
  }
  // The refusal comes after the API server's tokenizing time, as vLLM's does.
  const refused = simulate({ trace: [long], workers: 1, strategy: "random", maxModelLen: 2048 });
  assert.ok(refused.records[0].total_ms > 1, `${refused.records[0].total_ms} ms`);
  assert.match(refused.records[0].error!, /maximum context length is 2048 tokens/);
});

Deno.test("prediction feedback shrinks an unbounded index when the engine evicts", () => {
  // A cache of 256 blocks (4 096 tokens) and 40 distinct 3 KB prompts, one after another (a cold
  // report on an idle worker is an eviction): the engine keeps few.
  const trace: TraceRequest[] = [];
  for (let i = 0; i < 40; i++) {
    for (let k = 0; k < 2; k++) {
      trace.push({
        session_id: `s${i}`,
        arrival_ms: (k * 40 + i) * 1000,
        pattern: "p",
        body: chat(text(`s${i}`, 3000), 4),
      });
    }
  }
  const params = { capacityBlocks: 256, maxModelLen: 4096 };
  const run = (feedback: boolean) =>
    simulate({ trace, workers: 1, strategy: "prefixaware", params, feedback, kvBudgetChunks: 0 });
  // Requests the index believed cached that the engine had evicted (off by over 64 tokens).
  const overPredicted = (r: ReturnType<typeof run>) =>
    r.records.filter((x) => (x.predicted_cached_tokens ?? 0) > (x.cached_tokens ?? 0) + 64).length;
  const off = run(false);
  const on = run(true);
  assert.equal(off.workers[0].indexCapacity, 0);
  assert.ok(off.workers[0].stats.evictedBlocks > 0);
  assert.ok(on.workers[0].indexCapacity > 0, "the budget was set from the engine's reports");
  assert.ok(
    overPredicted(on) < overPredicted(off) / 2,
    `over-predicted: ${overPredicted(on)} with feedback, ${overPredicted(off)} without`,
  );
});

Deno.test("the offline index budget is the router's default kv_budget", () => {
  const trace: TraceRequest[] = [
    { session_id: "a", delay_ms: 0, pattern: "p", body: chat(text("a", 500), 4) },
  ];
  const w = simulate({ trace, workers: 1, strategy: "prefixaware" }).workers[0];
  assert.equal(w.indexCapacity, DEFAULT_KV_BUDGET);
});

Deno.test("a cold report on a busy worker does not shrink the offline index, as in the router", () => {
  // A (3 KB) is served and then evicted by 30 other prompts that arrive together; A's second
  // request arrives while they are in flight and reports nothing cached. The router reads such a
  // report as a busy slot (llama-server), not as an eviction, and keeps the tree's capacity.
  const trace: TraceRequest[] = [
    { session_id: "a", arrival_ms: 0, pattern: "p", body: chat(text("a", 3000), 4) },
  ];
  for (let i = 0; i < 30; i++) {
    trace.push({
      session_id: `b${i}`,
      arrival_ms: 2000,
      pattern: "p",
      output_tokens: 400,
      body: chat(text(`b${i}`, 3000), 400),
    });
  }
  trace.push({ session_id: "a", arrival_ms: 2500, pattern: "p", body: chat(text("a", 3000), 4) });
  const params = { capacityBlocks: 256, maxModelLen: 4096 };
  const res = simulate({ trace, workers: 1, strategy: "prefixaware", params });
  const again = res.records.find((r) => r.session_id === "a" && r.turn === 1)!;
  assert.equal(again.cached_tokens ?? 0, 0, "A was evicted: a cold report");
  assert.ok((again.predicted_cached_tokens ?? 0) > 0, "while the router predicted a match");
  assert.equal(
    res.workers[0].indexCapacity,
    DEFAULT_KV_BUDGET,
    "no shrink from a busy cold report",
  );
});

Deno.test("summary: p99 TTFT, TPOT and queue time; preemptions counted", () => {
  // Long answers on a small cache: the engines run out of blocks and preempt.
  const trace: TraceRequest[] = [];
  for (let i = 0; i < 12; i++) {
    trace.push({
      session_id: `s${i}`,
      arrival_ms: i * 5,
      pattern: "p",
      output_tokens: 900,
      body: chat(text(`s${i}`, 2000), 1000),
    });
  }
  const res = simulate({
    trace,
    workers: 2,
    strategy: "roundrobin",
    params: { capacityBlocks: 400, maxModelLen: 6400 },
  });
  const s = res.summary;
  assert.equal(s.errors, 0);
  for (const k of ["ttftP99Ms", "tpotP50Ms", "tpotP95Ms", "queueP50Ms", "queueP95Ms"] as const) {
    assert.ok(Number.isFinite(s[k]), k);
  }
  assert.ok(s.ttftP99Ms >= s.ttftP95Ms && s.tpotP95Ms >= s.tpotP50Ms);
  assert.ok(res.totals.preemptions > 0, "preempted");
  assert.equal(s.preemptions, res.totals.preemptions);
  assert.ok(res.records.every((r) => r.completion_tokens === 900), "every request completed");
});
