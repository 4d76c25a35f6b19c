import assert from "node:assert/strict";
import { ManualClock } from "../util/clock.ts";
import { EngineScraper, type EngineScraperOptions, queuedRequestTokens } from "./engine_scraper.ts";

/** A `/metrics` server on 127.0.0.1, port 0, whose answer the test sets. */
interface MetricsServer {
  url: string;
  hits: number;
  /** The answer to the next requests. */
  respond: (req: Request) => Response | Promise<Response>;
  close(): Promise<void>;
}

function serve(): MetricsServer {
  const s: MetricsServer = {
    url: "",
    hits: 0,
    respond: () => new Response("", { status: 404 }),
    close: () => server.shutdown(),
  };
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    s.hits++;
    return s.respond(req);
  });
  s.url = `http://127.0.0.1:${server.addr.port}`;
  return s;
}

function page(waiting: number, running = 1, kv = 0.25): string {
  return `# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} ${waiting}
vllm:num_requests_running{model_name="m"} ${running}
vllm:kv_cache_usage_perc{model_name="m"} ${kv}
`;
}

function ok(text: string): Response {
  return new Response(text, { headers: { "content-type": "text/plain; version=0.0.4" } });
}

/** Resolves once `cond()` holds, polling; fails after `ms` (generous: the machine is shared). */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

function scraper(url: string, over: Partial<EngineScraperOptions> = {}): EngineScraper {
  return new EngineScraper({
    targets: [{ id: "w", url }],
    intervalMs: 1000,
    timeoutMs: 2000,
    ...over,
  });
}

Deno.test("scraper: constructor starts nothing; scrapeOnce reads the signals and the view", async () => {
  const srv = serve();
  srv.respond = (req) => {
    assert.equal(new URL(req.url).pathname, "/metrics");
    assert.equal(req.headers.get("authorization"), "Bearer k");
    return ok(page(4, 2, 0.5));
  };
  const clock = new ManualClock(1000);
  const s = new EngineScraper({
    targets: [{ id: "w", url: srv.url, apiKey: "k" }],
    intervalMs: 1000,
    timeoutMs: 2000,
    clock,
  });
  try {
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(srv.hits, 0, "no scrape before start or scrapeOnce");
    assert.equal(s.engineLoad("w"), undefined);
    assert.equal(s.isStale("w"), true);
    await s.scrapeOnce();
    const r = s.reading("w")!;
    assert.equal(r.signals.engine, "vllm");
    assert.equal(r.signals.waiting, 4);
    assert.equal(r.at, 1000);
    assert.equal(r.scrapes, 1);
    assert.equal(r.failures, 0);
    assert.deepEqual(s.engineLoad("w"), {
      running: 2,
      waiting: 4,
      kvUsage: 0.5,
      queuedRequestTokens: undefined,
      at: 1000,
      maxAgeMs: 3 * 1000 + 2000,
    });
    assert.equal(s.engineLoad("w"), s.engineLoad("w"), "the same object: no allocation per pick");
    assert.equal(s.engineLoad("w", "m")?.waiting, 4);
    assert.equal(s.engineLoad("nope"), undefined);
  } finally {
    await s.stop();
    await srv.close();
  }
});

Deno.test("scraper: a failed scrape keeps the last good values, stale after maxAgeMs", async () => {
  const srv = serve();
  srv.respond = () => ok(page(6));
  const clock = new ManualClock(0);
  const errors: string[] = [];
  const s = scraper(srv.url, {
    clock,
    intervalMs: 100,
    timeoutMs: 50,
    staleAfterIntervals: 3,
    onResult: (_id, _r, err) => errors.push(err?.message ?? "ok"),
  });
  try {
    assert.equal(s.maxAgeMs, 350);
    await s.scrapeOnce();
    srv.respond = () => new Response("boom", { status: 500 });
    clock.set(200);
    await s.scrapeOnce();
    const r = s.reading("w")!;
    assert.equal(r.failures, 1);
    assert.match(r.lastError!, /answered 500/);
    assert.equal(r.signals.waiting, 6, "last good values kept");
    assert.equal(r.at, 0);
    assert.equal(s.engineLoad("w")?.waiting, 6, "still fresh at 200 ms");
    clock.set(350);
    assert.equal(s.isStale("w"), false);
    clock.set(351);
    assert.equal(s.isStale("w"), true);
    assert.equal(s.engineLoad("w"), undefined, "stale: routing no longer sees it");
    // A good scrape makes it fresh again.
    srv.respond = () => ok(page(1));
    await s.scrapeOnce();
    assert.equal(s.engineLoad("w")?.waiting, 1);
    assert.equal(s.reading("w")!.failures, 0);
    assert.deepEqual(errors.map((e) => e.replace(/GET \S+/, "GET x")), [
      "ok",
      "Metrics scrape GET x answered 500",
      "ok",
    ]);
  } finally {
    await s.stop();
    await srv.close();
  }
});

Deno.test("scraper: unknown pages, 404s and closed ports never throw, give no view", async () => {
  const srv = serve();
  srv.respond = () => ok("# TYPE tgi_queue_size gauge\ntgi_queue_size 3\n");
  const dead = serve();
  await dead.close();
  const s = new EngineScraper({
    targets: [
      { id: "tgi", url: srv.url },
      { id: "none", url: srv.url, path: "/nope" },
      { id: "dead", url: dead.url },
    ],
    intervalMs: 1000,
    timeoutMs: 2000,
  });
  try {
    await s.scrapeOnce();
    assert.equal(s.reading("tgi")!.signals.engine, "unknown");
    assert.equal(s.reading("tgi")!.scrapes, 1);
    assert.equal(s.engineLoad("tgi"), undefined);
    srv.respond = () => new Response("not found", { status: 404 });
    await s.scrapeOnce();
    assert.match(s.reading("none")!.lastError!, /answered 404/);
    assert.match(s.reading("dead")!.lastError!, /failed/);
    assert.equal(s.engineLoad("dead"), undefined);
  } finally {
    await s.stop();
    await srv.close();
  }
});

Deno.test("scraper: one scrape per target at a time; a hung worker times out", async () => {
  const srv = serve();
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  srv.respond = async () => {
    await gate;
    return ok(page(2));
  };
  const s = scraper(srv.url, { timeoutMs: 5000 });
  try {
    const a = s.scrapeOnce();
    const b = s.scrapeOnce();
    await until(() => srv.hits >= 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(srv.hits, 1, "the second call joins the scrape in flight");
    release();
    await Promise.all([a, b]);
    assert.equal(s.reading("w")!.scrapes, 1);
  } finally {
    await s.stop();
    await srv.close();
  }
  const hung = serve();
  const never = Promise.withResolvers<void>();
  hung.respond = async () => {
    await never.promise;
    return ok("");
  };
  const t = scraper(hung.url, { timeoutMs: 100 });
  try {
    await t.scrapeOnce();
    assert.match(t.reading("w")!.lastError!, /timed out after 100 ms/);
  } finally {
    await t.stop();
    never.resolve();
    await hung.close();
  }
});

Deno.test("scraper: a body past the cap is cut, not read to its end", async () => {
  const srv = serve();
  let sent = 0;
  srv.respond = () => {
    const chunk = new TextEncoder().encode("# filler line of an endless page\n".repeat(1000));
    const body = new ReadableStream<Uint8Array>({
      start(ctl) {
        ctl.enqueue(new TextEncoder().encode(page(3)));
      },
      pull(ctl) {
        sent += chunk.length;
        if (sent > 64 << 20) ctl.close(); // a safety stop for the test itself
        else ctl.enqueue(chunk);
      },
    });
    return new Response(body);
  };
  const s = scraper(srv.url, { maxBytes: 256 * 1024 });
  try {
    await s.scrapeOnce();
    const r = s.reading("w")!;
    assert.equal(r.failures, 0);
    assert.equal(r.signals.truncated, true);
    assert.equal(r.signals.bytes, 256 * 1024);
    assert.equal(r.signals.waiting, 3);
    assert.ok(sent < 16 << 20, `server sent ${sent} bytes`);
  } finally {
    await s.stop();
    await srv.close();
  }
});

Deno.test("scraper: start scrapes periodically; stop clears timers and aborts the scrape", async () => {
  const srv = serve();
  srv.respond = () => ok(page(srv.hits));
  const results: string[] = [];
  const s = scraper(srv.url, { intervalMs: 20, onResult: (id) => results.push(id) });
  s.start();
  s.start(); // idempotent: still one loop
  assert.equal(s.running, true);
  await until(() => srv.hits >= 3);
  // A worker that hangs: the next scrape is in flight when stop() comes.
  const hang = Promise.withResolvers<void>();
  srv.respond = async () => {
    await hang.promise;
    return ok(page(99));
  };
  const hitsBefore = srv.hits;
  await until(() => srv.hits > hitsBefore);
  const reported = results.length;
  assert.deepEqual(s.pending, { timers: 0, scrapes: 1 });
  await s.stop();
  assert.deepEqual(s.pending, { timers: 0, scrapes: 0 });
  assert.equal(s.running, false);
  assert.equal(results.length, reported, "the aborted scrape is not reported");
  assert.notEqual(s.reading("w")!.signals.waiting, 99);
  const after = srv.hits;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(srv.hits, after, "no scrape after stop");
  hang.resolve();
  await srv.close();
});

Deno.test("scraper: stop between scrapes clears the pending timer", async () => {
  const srv = serve();
  srv.respond = () => ok(page(1));
  const s = scraper(srv.url, { intervalMs: 100 });
  s.start();
  await until(() => s.reading("w")!.scrapes === 1 && s.pending.timers === 1);
  await s.stop();
  assert.deepEqual(s.pending, { timers: 0, scrapes: 0 });
  const hits = srv.hits;
  await new Promise((r) => setTimeout(r, 300)); // three intervals: a leaked timer would fire
  assert.equal(srv.hits, hits, "no scrape after stop");
  await srv.close();
});

Deno.test("scraper: intervalMs ≤ 0 turns start off", async () => {
  const srv = serve();
  const s = scraper(srv.url, { intervalMs: 0 });
  s.start();
  assert.equal(s.running, false);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(srv.hits, 0);
  assert.equal(s.maxAgeMs, 3 * 2000 + 2000);
  await s.stop();
  await srv.close();
});

Deno.test("scraper: setTargets keeps same id and url, drops removed, scrapes new", async () => {
  const a = serve();
  const b = serve();
  a.respond = () => ok(page(1));
  b.respond = () => ok(page(2));
  const s = new EngineScraper({
    targets: [{ id: "a", url: a.url }, { id: "b", url: b.url }],
    intervalMs: 60_000,
    timeoutMs: 2000,
  });
  try {
    s.start();
    await until(() => s.reading("a")!.scrapes === 1 && s.reading("b")!.scrapes === 1);
    s.setTargets([{ id: "a", url: a.url }, { id: "c", url: b.url }]);
    assert.equal(s.reading("a")!.scrapes, 1, "kept");
    assert.equal(s.reading("b"), undefined, "removed");
    await until(() => s.reading("c")!.scrapes === 1); // new target scraped at once
    assert.equal(a.hits, 1, "a kept target is not scraped again early");
    // Same id, new url: a new target.
    s.setTargets([{ id: "a", url: b.url }]);
    assert.equal(s.reading("a")!.scrapes, 0);
    assert.throws(
      () => s.setTargets([{ id: "x", url: a.url }, { id: "x", url: b.url }]),
      /Duplicate scrape target id "x"/,
    );
  } finally {
    await s.stop();
    await a.close();
    await b.close();
  }
});

Deno.test("scraper: bad options are RangeErrors", () => {
  const t = [{ id: "w", url: "http://127.0.0.1:1" }];
  assert.throws(
    () => new EngineScraper({ targets: t, intervalMs: 1, timeoutMs: 1, path: "metrics" }),
    /Metrics path must start with "\/", got "metrics"/,
  );
  assert.throws(
    () => new EngineScraper({ targets: t, intervalMs: 1, timeoutMs: 0 }),
    /Scrape timeout must be a positive number of ms, got 0/,
  );
  assert.throws(
    () => new EngineScraper({ targets: t, intervalMs: 1, timeoutMs: 1, staleAfterIntervals: 0 }),
    /Stale-after interval count must be at least 1, got 0/,
  );
});

Deno.test("queuedRequestTokens: mean prompt × the share the prefix cache did not serve", () => {
  assert.equal(queuedRequestTokens({ promptTokens: 1.5e6, requests: 1000 }), 1500);
  assert.equal(
    queuedRequestTokens({
      promptTokens: 1.5e6,
      requests: 1000,
      prefixCacheQueries: 1.2e6,
      prefixCacheHits: 9e5,
    }),
    375,
  );
  assert.equal(
    queuedRequestTokens({ promptTokens: 2000, requests: 2, prefixCacheHitRate: 0.75 }),
    250,
  );
  assert.equal(queuedRequestTokens({ promptTokens: 2000, requests: 0 }), undefined);
  assert.equal(queuedRequestTokens({ running: 3 }), undefined, "llama-server: no counters");
});

Deno.test("scraper: the view carries the queued-request estimate from vLLM's counters", async () => {
  const srv = serve();
  srv.respond = () =>
    ok(
      page(2) + `vllm:prompt_tokens_total{model_name="m"} 3000
vllm:request_success_total{finished_reason="stop",model_name="m"} 2
vllm:request_success_total{finished_reason="length",model_name="m"} 1
`,
    );
  const s = scraper(srv.url);
  try {
    await s.scrapeOnce();
    assert.equal(s.engineLoad("w")?.queuedRequestTokens, 1000);
  } finally {
    await s.stop();
    await srv.close();
  }
});

Deno.test("scraper: llama-server's KV ratio is not offered as a preemption risk", async () => {
  const srv = serve();
  srv.respond = () =>
    ok(`llamacpp:kv_cache_usage_ratio 0.98
llamacpp:requests_processing 1
llamacpp:requests_deferred 2
`);
  const s = scraper(srv.url);
  try {
    await s.scrapeOnce();
    assert.equal(s.reading("w")!.signals.kvUsage, 0.98, "read and kept for operators");
    const view = s.engineLoad("w")!;
    assert.equal(view.kvUsage, undefined);
    assert.equal(view.waiting, 2);
  } finally {
    await s.stop();
    await srv.close();
  }
});
