import assert from "node:assert/strict";
import { parseTrace, simulate, summarize } from "./offline.ts";
import { buildMultiTurnTrace } from "./testing.ts";

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
    assert.equal(r.completion_tokens, 64);
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
