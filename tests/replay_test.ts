/**
 * Replay against real in-process servers on port 0: a scripted SSE upstream (timing, order,
 * concurrency, usage, headers, errors, abort), and — once the router and simulated engine exist —
 * a router in front of two sim workers.
 */

import { assert, assertEquals } from "../src/bench/test_util.ts";
import { replayTrace } from "../src/bench/replay.ts";
import { generateTrace } from "../src/bench/traces.ts";
import type { TraceEntry } from "../src/bench/types.ts";
import { runSweep } from "../src/bench/sweep.ts";
import type { SweepDeps, SweepProgress } from "../src/bench/sweep.ts";
import type { RouterConfig } from "../src/config/types.ts";

interface Seen {
  session: string;
  turns: number;
  at: number;
  includeUsage: boolean;
}

/** An SSE upstream: waits `firstTokenMs`, streams 3 content chunks split at odd places, usage. */
function fakeUpstream(opts: { firstTokenMs: number; failSession?: string }) {
  const seen: Seen[] = [];
  let inflightSessions = 0;
  let maxInflight = 0;
  const enc = new TextEncoder();
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const body = await req.json();
    const user = body.messages.filter((m: { role: string }) => m.role === "user").length;
    const session = req.headers.get("x-test-session") ?? "";
    seen.push({
      session,
      turns: user,
      at: performance.now(),
      includeUsage: body.stream_options?.include_usage === true,
    });
    if (session === opts.failSession) {
      return Response.json({ error: { message: "no worker", type: "x" } }, { status: 503 });
    }
    inflightSessions++;
    maxInflight = Math.max(maxInflight, inflightSessions);
    const chunk = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
    const text = [
      chunk({ choices: [{ delta: { role: "assistant", content: "" } }] }),
      chunk({ choices: [{ delta: { content: "Hello" } }] }) +
      chunk({ choices: [{ delta: { content: " world" } }] }),
      chunk({ choices: [{ delta: {}, finish_reason: "stop" }] }) +
      chunk({
        choices: [],
        usage: {
          prompt_tokens: 100 * user,
          completion_tokens: 2,
          prompt_tokens_details: { cached_tokens: 100 * (user - 1) },
        },
      }) + "data: [DONE]\n\n",
    ];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      async start(c) {
        c.enqueue(enc.encode(text[0]));
        await new Promise((r) => timer = setTimeout(r, opts.firstTokenMs));
        const rest = text[1] + text[2];
        const cut = [7, 50, 51, 120];
        let prev = 0;
        for (const x of [...cut, rest.length]) {
          c.enqueue(enc.encode(rest.slice(prev, x)));
          prev = x;
        }
        inflightSessions--;
        c.close();
      },
      cancel() {
        clearTimeout(timer);
        inflightSessions--;
      },
    });
    return new Response(stream, {
      headers: {
        "content-type": "text/event-stream",
        "x-router-backend": "w1",
        "x-router-reason": "longest-prefix",
      },
    });
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  return { url, server, seen, max: () => maxInflight };
}

function smallTrace(sessions: number, turns: number, thinkMs = 0): TraceEntry[] {
  return generateTrace({ shape: "multiturn", sessions, turns, seed: 1, systemBytes: 256, thinkMs });
}

Deno.test("replay streams each request and records timing, headers and usage", async () => {
  const up = fakeUpstream({ firstTokenMs: 40 });
  try {
    const trace = smallTrace(3, 3, 30);
    // Strip include_usage from the trace: replay must add it.
    for (const e of trace) (e.body as { stream_options: unknown }).stream_options = {};
    const records = await replayTrace(trace, {
      url: up.url,
      headers: { "x-test-session": "s" },
    });
    assertEquals(records.length, 9);
    assert(up.seen.every((s) => s.includeUsage));
    for (const r of records) {
      assertEquals(r.status, 200);
      assertEquals(r.error, null);
      assertEquals(r.backend, "w1");
      assertEquals(r.reason, "longest-prefix");
      assertEquals(r.prompt_tokens, 100 * (r.turn + 1));
      assertEquals(r.cached_tokens, 100 * r.turn);
      assertEquals(r.completion_tokens, 2);
      assert(r.ttft_ms !== null && r.ttft_ms >= 35, `ttft ${r.ttft_ms}`);
      assert(r.total_ms >= r.ttft_ms!);
    }
    assertEquals(records.map((r) => `${r.session_id}/${r.turn}`), [
      "multiturn-0/0",
      "multiturn-0/1",
      "multiturn-0/2",
      "multiturn-1/0",
      "multiturn-1/1",
      "multiturn-1/2",
      "multiturn-2/0",
      "multiturn-2/1",
      "multiturn-2/2",
    ]);
    // Turns of a session run in order and wait their delay after the previous one finished.
    const bySession = Map.groupBy(records, (r) => r.session_id);
    for (const [id, rs] of bySession) {
      const entries = trace.filter((e) => e.session_id === id);
      for (let k = 1; k < rs.length; k++) {
        const prevEnd = rs[k - 1].start_ms + rs[k - 1].total_ms;
        assert(
          rs[k].start_ms >= prevEnd + entries[k].delay_ms - 2,
          `${id} turn ${k} started ${rs[k].start_ms} before ${prevEnd}+${entries[k].delay_ms}`,
        );
      }
    }
  } finally {
    await up.server.shutdown();
  }
});

Deno.test("replay runs at most `concurrency` sessions at once", async () => {
  const up = fakeUpstream({ firstTokenMs: 20 });
  try {
    const records = await replayTrace(smallTrace(6, 2), {
      url: up.url,
      concurrency: 2,
      headers: { "x-test-session": "s" },
    });
    assertEquals(records.length, 12);
    assertEquals(up.max(), 2);
    const all = await replayTrace(smallTrace(6, 1), { url: up.url });
    assertEquals(all.length, 6);
    assertEquals(up.max(), 6);
  } finally {
    await up.server.shutdown();
  }
});

Deno.test("replay records HTTP errors and unreachable servers", async () => {
  const up = fakeUpstream({ firstTokenMs: 1, failSession: "bad" });
  try {
    const [r] = await replayTrace(smallTrace(1, 1), {
      url: up.url,
      headers: { "x-test-session": "bad" },
    });
    assertEquals(r.status, 503);
    assertEquals(r.error, "HTTP 503: no worker");
    assertEquals(r.ttft_ms, null);
  } finally {
    await up.server.shutdown();
  }
  const [r] = await replayTrace(smallTrace(1, 1), { url: up.url });
  assertEquals(r.status, 0);
  assert(r.error !== null && r.error.length > 0);
});

Deno.test("replay: the first token of a tool call or of reasoning counts, a role-only chunk does not; a stream cut before [DONE] is an error", async () => {
  // Answers with no `content` at all: a tool call, or reasoning then nothing (a cut-off thinker).
  const deltas: Record<string, Record<string, unknown>> = {
    tool: { tool_calls: [{ index: 0, id: "c1", type: "function", function: { name: "f" } }] },
    think: { reasoning_content: "Let me see" },
    silent: {},
    cut: { content: "Hel" }, // and then the connection ends: no usage, no [DONE]
  };
  const enc = new TextEncoder();
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    await req.arrayBuffer();
    const kind = req.headers.get("x-test-session") ?? "";
    const event = (o: unknown) => enc.encode(`data: ${JSON.stringify(o)}\n\n`);
    const body = new ReadableStream<Uint8Array>({
      async start(c) {
        c.enqueue(event({ choices: [{ index: 0, delta: { role: "assistant", content: "" } }] }));
        await new Promise((r) => setTimeout(r, 30));
        c.enqueue(event({ choices: [{ index: 0, delta: deltas[kind] }] }));
        if (kind !== "cut") {
          c.enqueue(event({ choices: [], usage: { prompt_tokens: 10, completion_tokens: 1 } }));
          c.enqueue(enc.encode("data: [DONE]\n\n"));
        }
        c.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  try {
    const url = `http://127.0.0.1:${server.addr.port}`;
    for (const kind of Object.keys(deltas)) {
      const [r] = await replayTrace(smallTrace(1, 1), { url, headers: { "x-test-session": kind } });
      if (kind === "cut") {
        assertEquals(r.error, "Stream ended without data: [DONE]", "a cut stream is no success");
        continue;
      }
      assertEquals([r.status, r.error], [200, null], kind);
      if (kind === "silent") assertEquals(r.ttft_ms, null, "no generated token, no TTFT");
      else {assert(
          r.ttft_ms !== null && r.ttft_ms >= 25,
          `${kind}: TTFT at the delta, ${r.ttft_ms}`,
        );}
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("replay times out slow requests and stops on abort", async () => {
  const up = fakeUpstream({ firstTokenMs: 2000 });
  try {
    const [r] = await replayTrace(smallTrace(1, 1), { url: up.url, timeoutMs: 100 });
    assertEquals(r.status, 200);
    assertEquals(r.error, "Request timed out after 100 ms");
    const ctrl = new AbortController();
    const t = setTimeout(() => ctrl.abort(), 100);
    const t0 = performance.now();
    const records = await replayTrace(smallTrace(2, 3), { url: up.url, signal: ctrl.signal });
    clearTimeout(t);
    assert(performance.now() - t0 < 1500);
    assertEquals(records.length, 2);
    assert(records.every((x) => x.error === "Replay aborted"));
  } finally {
    await up.server.shutdown();
  }
});

Deno.test("sweep runs every cell on fresh workers and a router, and tags records", async () => {
  const started: string[] = [];
  let workersDown = 0;
  let routersUp = 0;
  const configs: unknown[] = [];
  const deps: SweepDeps = {
    startSimWorker: (o) => {
      started.push(`${o.id}:${o.profile}:${o.timeScale}`);
      return Promise.resolve({
        url: `http://127.0.0.1:9/${o.id}`,
        port: 9,
        id: o.id,
        shutdown: () => Promise.resolve(void workersDown++),
      });
    },
    configFromWorkers: (workers, overrides) => {
      configs.push({ workers, overrides });
      return { workers, overrides } as unknown as RouterConfig;
    },
    startRouter: () => {
      routersUp++;
      const up = fakeUpstream({ firstTokenMs: 1 });
      return Promise.resolve({
        url: up.url,
        port: up.server.addr.port,
        shutdown: async () => {
          routersUp--;
          await up.server.shutdown();
        },
      });
    },
  };
  const progress: SweepProgress[] = [];
  const records = await runSweep({
    warmup: false,
    strategies: ["prefixaware", "round-robin"],
    sessions: [1, 2],
    seeds: [1, 2],
    turns: 2,
    systemBytes: 128,
    maxTokens: 8,
    workers: 2,
    profile: "a100-7b",
    timeScale: 0.5,
    deps,
    onProgress: (p) => progress.push(p),
  });
  // 2 strategies × (1 + 2 sessions) × 2 seeds × 2 turns.
  assertEquals(records.length, 24);
  assertEquals(started.length, 16);
  assertEquals(started[0], "w1:a100-7b:0.5");
  assertEquals(workersDown, 16);
  assertEquals(routersUp, 0);
  assertEquals((configs[0] as { overrides: unknown }).overrides, {
    router: { strategy: "prefixaware", seed: 1 },
    logging: { level: "error" },
  });
  const cells = new Set(records.map((r) => `${r.strategy}/${r.sessions}/${r.seed}`));
  assertEquals(cells.size, 8);
  assert(records.every((r) => r.status === 200 && r.ttft_ms !== null));
  const cellDone = progress.filter((p) => p.kind === "cell-done");
  assertEquals(cellDone.map((p) => p.cell), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert(cellDone.every((p) => p.cells === 8 && p.done === p.total));
  assertEquals(progress.filter((p) => p.kind === "request").length, 24);
});

Deno.test("sweep runs one unrecorded warm-up cell first over HTTP", async () => {
  const strategies: string[] = [];
  const deps: SweepDeps = {
    startSimWorker: (o) =>
      Promise.resolve({
        url: `http://127.0.0.1:9/${o.id}`,
        port: 9,
        id: o.id,
        shutdown: () => Promise.resolve(),
      }),
    configFromWorkers: (workers, overrides) => {
      strategies.push(String(overrides.router?.strategy));
      return { workers, overrides } as unknown as RouterConfig;
    },
    startRouter: () => {
      const up = fakeUpstream({ firstTokenMs: 1 });
      return Promise.resolve({
        url: up.url,
        port: up.server.addr.port,
        shutdown: () => up.server.shutdown(),
      });
    },
  };
  const records = await runSweep({
    strategies: ["leastloaded"],
    sessions: [1],
    seeds: [3],
    turns: 2,
    systemBytes: 128,
    maxTokens: 8,
    workers: 1,
    profile: "a100-7b",
    timeScale: 0.5,
    deps,
  });
  // A warm-up router, then the one measured cell; only the cell's 2 requests are recorded.
  assertEquals(strategies, ["leastloaded", "leastloaded"]);
  assertEquals(records.length, 2);
  assert(records.every((r) => r.seed === 3 && r.sessions === 1));
});

Deno.test("sweep offline mode hands each cell's trace to the offline simulator", async () => {
  const calls: string[] = [];
  const records = await runSweep({
    strategies: ["random"],
    sessions: [3],
    seeds: [5],
    turns: 2,
    systemBytes: 64,
    maxTokens: 8,
    workers: 4,
    profile: "m1-1.5b",
    timeScale: 1,
    offline: true,
    deps: {
      runOffline: (trace, o) => {
        calls.push(`${o.strategy}:${o.workers}:${o.profile}:${o.seed}:${trace.length}`);
        return trace.map((e, i) => ({
          session_id: e.session_id,
          pattern: e.pattern,
          turn: i % 2,
          start_ms: i,
          ttft_ms: 1,
          total_ms: 2,
          status: 200,
          backend: "w1",
          reason: "random",
          prompt_tokens: 10,
          cached_tokens: 0,
          completion_tokens: 8,
          error: null,
        }));
      },
    },
  });
  assertEquals(calls, ["random:4:m1-1.5b:5:6"]);
  assertEquals(records.length, 6);
  assert(records.every((r) => r.strategy === "random" && r.sessions === 3 && r.seed === 5));
});

Deno.test({
  name: "replay through a router and two sim workers: 200s, headers, cached tokens",
  async fn() {
    const records = await runSweep({
      strategies: ["prefixaware"],
      sessions: [2],
      seeds: [1],
      turns: 3,
      systemBytes: 2048,
      maxTokens: 8,
      workers: 2,
      profile: "a100-7b",
      timeScale: 0.05,
      timeoutMs: 5000,
    });
    assertEquals(records.length, 6);
    for (const r of records) {
      assertEquals(r.status, 200, r.error ?? "");
      assertEquals(r.error, null);
      assert(r.backend !== null && r.reason !== null, "router headers missing");
      assert(r.ttft_ms !== null && r.prompt_tokens !== null && r.prompt_tokens > 0);
      if (r.turn > 0) assert((r.cached_tokens ?? 0) > 0, `turn ${r.turn} had no cached tokens`);
    }
  },
});
