/**
 * The overload experiment over HTTP, through the real router: simulated a100-7b workers
 * (`startSimWorker`), a router with `max_inflight` per worker, open-loop Poisson arrivals of two
 * classes and two tenants (`src/flow/overload.ts`'s scenarios and request sizes, streamed; answers
 * end at the engine's end of sequence, at most `max_tokens`, as offline), in two modes alternated
 * round by round:
 *
 * - `reject`: no `flow:` section: a request finding every worker full gets 503 at once;
 * - `queue`: `flow:` with the router's defaults and max waits at the classes' TTFT targets
 *   (interactive 1 s, batch 10 s), tenants from `x-tenant-id`.
 *
 * Fresh workers and router per run; arrivals are the same for both modes (seeded). TTFT is from
 * sending the request to the first content chunk, queue wait included; "met" is the share of the
 * requests sent whose TTFT met their class's target, goodput those per second. The rates are
 * shares of the fleet's capacity as `measureCapacity` finds it in virtual time; the real router
 * and HTTP add their overhead, so the offline figures and these differ a little.
 *
 * Usage: deno run -A bench/overload_http.ts [--workers 2] [--seconds 20] [--rounds 1]
 *          [--scenario priority|flood] [--max-inflight 16] [--seed 1] [--json] (`--help` lists them)
 *
 * @module
 */

import { configFromWorkers } from "../src/config/mod.ts";
import { measureCapacity, SCENARIOS } from "../src/flow/overload.ts";
import { startRouter } from "../src/router/mod.ts";
import { Logger } from "../src/router/logger.ts";
import { startSimWorker } from "../src/sim/server.ts";
import { percentile } from "../src/bench/stats.ts";
import { flagHelp, type FlagTable, parseFlags } from "../src/util/cli_flags.ts";
import { SeededRng } from "../src/util/rng.ts";

const KINDS: Record<string, { prompt: number; answer: number; targetMs: number }> = {
  interactive: { prompt: 512, answer: 64, targetMs: 1000 },
  batch: { prompt: 2048, answer: 256, targetMs: 10_000 },
};
const CLIENT_TIMEOUT_MS = 30_000;

interface Arrival {
  readonly at: number;
  readonly tenant: string;
  readonly className: string;
}

interface Outcome {
  readonly className: string;
  readonly ttftMs: number | null;
  readonly status: number;
}

function arrivals(scenario: string, capacityPerS: number, seconds: number, seed: number) {
  const rng = new SeededRng(seed);
  const out: Arrival[] = [];
  for (const s of SCENARIOS[scenario]) {
    const perMs = (s.share * capacityPerS) / 1000;
    for (let t = -Math.log(1 - rng.next()) / perMs; t < seconds * 1000;) {
      out.push({ at: t, tenant: s.tenant, className: s.className });
      t += -Math.log(1 - rng.next()) / perMs;
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

/** One request: streams it, returns its TTFT (first content chunk) or its failure. */
async function send(url: string, a: Arrival, id: number): Promise<Outcome> {
  const k = KINDS[a.className];
  const prompt = `request ${id} ` + "lorem ipsum dolor sit amet ".repeat(k.prompt * 4 / 27);
  const t0 = performance.now();
  try {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-priority": a.className,
        "x-tenant-id": a.tenant,
      },
      body: JSON.stringify({
        model: "sim",
        stream: true,
        max_tokens: k.answer,
        messages: [{ role: "user", content: prompt }],
      }),
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      return { className: a.className, ttftMs: null, status: res.status };
    }
    let ttft: number | null = null;
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) {
      if (ttft === null && decoder.decode(chunk).includes('"content"')) {
        ttft = performance.now() - t0;
      }
    }
    return { className: a.className, ttftMs: ttft, status: 200 };
  } catch {
    return { className: a.className, ttftMs: null, status: 0 };
  }
}

async function runMode(
  mode: "reject" | "queue",
  o: { workers: number; maxInflight: number; plan: Arrival[] },
): Promise<Outcome[]> {
  const workers = await Promise.all(
    Array.from(
      { length: o.workers },
      (_, i) => startSimWorker({ profile: "a100-7b", model: "sim", id: `sim${i}` }),
    ),
  );
  const config = configFromWorkers(
    workers.map((w) => ({ url: w.url, maxInflight: o.maxInflight, models: ["sim"] })),
    {
      server: { addr: "127.0.0.1:0" },
      health: { intervalMs: 0 },
      router: { strategy: "leastloaded", seed: 1 },
      flow: mode === "reject" ? undefined : {
        queue: {
          max_total: 4000,
          classes: [
            { name: "interactive", rank: 10, max_wait: "1s" },
            { name: "batch", rank: 0, max_wait: "10s", sheddable: true },
          ],
        },
        tenants: { source: "header", header: "x-tenant-id" },
      },
    },
  );
  const running = await startRouter(config, { logger: new Logger("error", "json", () => {}) });
  const start = performance.now();
  const pending: Promise<Outcome>[] = [];
  let id = 0;
  for (const a of o.plan) {
    const wait = a.at - (performance.now() - start);
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(send(running.url, a, id++));
  }
  const out = await Promise.all(pending);
  await running.shutdown();
  await Promise.all(workers.map((w) => w.shutdown()));
  return out;
}

function figures(out: readonly Outcome[], seconds: number) {
  const rows: Record<string, Record<string, number | string>> = {};
  let goodput = 0;
  for (const cls of Object.keys(KINDS)) {
    const mine = out.filter((r) => r.className === cls);
    const ttft = mine.flatMap((r) => r.ttftMs === null ? [] : [r.ttftMs]);
    const met = ttft.filter((t) => t <= KINDS[cls].targetMs).length;
    goodput += met / seconds;
    const lost: Record<number, number> = {};
    for (const r of mine) if (r.ttftMs === null) lost[r.status] = (lost[r.status] ?? 0) + 1;
    rows[cls] = {
      sent: mine.length,
      served: ttft.length,
      ttftP50Ms: Math.round(percentile(ttft, 50)),
      ttftP95Ms: Math.round(percentile(ttft, 95)),
      met: mine.length === 0 ? 1 : met / mine.length,
      goodputPerS: met / seconds,
      lost: Object.entries(lost).map(([s, n]) => `${s === "0" ? "timeout" : s}=${n}`).join(" "),
    };
  }
  return { classes: rows, goodputPerS: goodput };
}

/** The flags (the help lists them from here). */
export const FLAGS = {
  workers: { type: "string", value: "N", default: "2", help: "simulated a100-7b workers" },
  seconds: { type: "string", value: "S", default: "20", help: "arrival window, seconds" },
  rounds: {
    type: "string",
    value: "N",
    default: "1",
    help: "rounds; each runs both modes, the first mode alternating",
  },
  scenario: {
    type: "string",
    value: "NAME",
    default: "priority",
    help: `${Object.keys(SCENARIOS).join(", ")} (src/flow/overload.ts)`,
  },
  "max-inflight": { type: "string", value: "N", default: "16", help: "per-worker cap" },
  seed: { type: "string", value: "N", default: "1", help: "arrival seed" },
  json: { type: "boolean", default: false, help: "also print every round's figures as JSON" },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagTable;

const USAGE = `Usage: deno run -A bench/overload_http.ts [options]

The overload experiment over HTTP through the real router: reject (503 at once) vs the router
queue, alternated round by round.

Options:
${flagHelp(FLAGS)}`;

if (import.meta.main) {
  let values;
  try {
    values = parseFlags(FLAGS, Deno.args);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    Deno.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const workers = Number(values.workers);
  const seconds = Number(values.seconds);
  const streams = SCENARIOS[values.scenario];
  if (streams === undefined) throw new RangeError(`unknown scenario ${values.scenario}`);
  const capacityPerS = measureCapacity({ workers, streams });
  const plan = arrivals(values.scenario, capacityPerS, seconds, Number(values.seed));
  console.error(
    `capacity ${capacityPerS.toFixed(1)} req/s (virtual time), ${plan.length} requests in ` +
      `${seconds} s (${(plan.length / seconds / capacityPerS).toFixed(2)}x)`,
  );
  const results: { round: number; mode: string; figures: ReturnType<typeof figures> }[] = [];
  for (let round = 0; round < Number(values.rounds); round++) {
    // Alternate which mode goes first: the machine's load drifts.
    const modes = round % 2 === 0 ? ["reject", "queue"] as const : ["queue", "reject"] as const;
    for (const mode of modes) {
      const out = await runMode(mode, {
        workers,
        maxInflight: Number(values["max-inflight"]),
        plan,
      });
      results.push({ round, mode, figures: figures(out, seconds) });
      const f = results.at(-1)!.figures;
      for (const [cls, r] of Object.entries(f.classes)) {
        console.log(
          `round ${round} ${mode.padEnd(6)} ${cls.padEnd(11)} sent ${r.sent} served ${r.served} ` +
            `TTFT p50 ${r.ttftP50Ms} p95 ${r.ttftP95Ms} ms, met ${
              Math.round(Number(r.met) * 100)
            }%, goodput ${Number(r.goodputPerS).toFixed(1)}/s ${r.lost}`,
        );
      }
      console.log(`round ${round} ${mode.padEnd(6)} goodput ${f.goodputPerS.toFixed(1)} req/s`);
    }
  }
  if (values.json) console.log(JSON.stringify(results, null, 2));
}
