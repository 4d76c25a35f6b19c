/**
 * What reading the engines' own load signals is worth when someone else also loads an engine:
 * two simulated a100-7b engines in virtual time (`EngineModel`, no HTTP); another client sends
 * long prompts straight to engine 0 (Poisson, open loop); the router sends its own requests
 * (Poisson, unique prompts, so no prefix effect) through a strategy, with and without
 * `Candidate.engine` filled from each engine's counters as a scrape every `--interval` ms would
 * see them (the figures lag by up to one interval, like the real scraper's).
 *
 * `costaware` runs with the router's `LoadTracker` fed as the router feeds it (dispatch, first
 * token, usage, done), so the baseline already learns that engine 0 answers slowly; the signals
 * add what the tracker cannot see: the other client's queue.
 *
 * Usage: deno run -A bench/engine_signals.ts [--seeds 10] [--interval 1000] [--seconds 120]
 *          [--other-rate 2.2] [--ours-rate 3] [--switch-every 0]
 * `--switch-every S` moves the other client to the other engine every S seconds: the load the
 * router cannot see then changes place, which a learned rate follows only slowly.
 * Prints per strategy and signal setting (`off`; `basic`: running, waiting, KV usage; `full`:
 * also the engine's mean uncached prompt, `queuedRequestTokens`, to price others' queue): TTFT of
 * the router's requests (mean over seeds of p50, p90, mean) and the share it sent to engine 0.
 *
 * @module
 */

import { type LoadTicket, LoadTracker } from "../src/router/load_tracker.ts";
import { EngineModel } from "../src/sim/engine.ts";
import { getProfile } from "../src/sim/profiles.ts";
import type { StepResult } from "../src/sim/types.ts";
import { createStrategy } from "../src/strategies/mod.ts";
import type { Candidate, EngineLoad, Strategy } from "../src/strategies/types.ts";
import { flagHelp, type FlagTable, parseFlags } from "../src/util/cli_flags.ts";
import { SeededRng } from "../src/util/rng.ts";
import { percentile } from "../src/bench/stats.ts";
import type { EngineFigures } from "../src/backends/engine_metrics.ts";
import { queuedRequestTokens } from "../src/backends/engine_scraper.ts";

interface Scenario {
  readonly seconds: number;
  /** Other client's requests per second to engine 0, prompt and answer tokens. */
  readonly otherRate: number;
  readonly otherPrompt: number;
  readonly otherAnswer: number;
  /** The router's requests per second, prompt and answer tokens. */
  readonly oursRate: number;
  readonly oursPrompt: number;
  readonly oursAnswer: number;
  /** Scrape interval, ms (0: no signals). */
  readonly intervalMs: number;
  /** The other client moves to the other engine every this many seconds (0: stays on 0). */
  readonly switchEvery: number;
}

interface Pending {
  readonly ours: boolean;
  readonly worker: number;
  readonly start: number;
  readonly ticket?: LoadTicket;
  first?: number;
}

interface Result {
  ttfts: number[];
  toEngine0: number;
  total: number;
}

/** A min-heap of timed events (ties in insertion order). */
class Events {
  #h: { t: number; n: number; f: () => void }[] = [];
  #n = 0;
  push(t: number, f: () => void): void {
    const h = this.#h;
    h.push({ t, n: this.#n++, f });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.#less(h[p], h[i])) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }
  pop(): { t: number; f: () => void } | undefined {
    const h = this.#h;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && this.#less(h[l], h[m])) m = l;
        if (r < h.length && this.#less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
  #less(a: { t: number; n: number }, b: { t: number; n: number }): boolean {
    return a.t < b.t || (a.t === b.t && a.n < b.n);
  }
}

/** A prompt of `tokens` tokens (4 bytes each) that shares no block with any other. */
function uniquePrompt(id: number, tokens: number): string {
  const head = `request ${id} `;
  return head + "abcd".repeat(Math.max(0, tokens - Math.ceil(head.length / 4)));
}

/** Signals off; running/waiting/KV only; and with the queued-request size estimate too. */
type Mode = "off" | "basic" | "full";

/** Requests issued before this time are warm-up: routed but not counted. */
const WARMUP_MS = 10_000;

/** One run of the scenario in virtual time. */
class Run {
  readonly engines: EngineModel[];
  readonly busy = [false, false];
  readonly pending: Map<number, Pending>[];
  readonly inflight = [0, 0];
  readonly views: (EngineLoad | undefined)[] = [undefined, undefined];
  readonly tracker = new LoadTracker({ workers: 2 });
  readonly rng: SeededRng;
  readonly arrivals: SeededRng;
  readonly q = new Events();
  readonly res: Result = { ttfts: [], toEngine0: 0, total: 0 };
  readonly endMs: number;
  ids = 0;

  constructor(
    readonly strategy: Strategy,
    readonly mode: Mode,
    readonly sc: Scenario,
    seed: number,
  ) {
    const params = getProfile("a100-7b").params;
    this.engines = [new EngineModel(params), new EngineModel(params)];
    this.pending = this.engines.map(() => new Map<number, Pending>());
    this.rng = new SeededRng(seed);
    this.arrivals = new SeededRng(seed * 7919 + 1);
    this.endMs = sc.seconds * 1000;
  }

  /** Runs every event; returns the router's requests' TTFTs and where they went. */
  go(): Result {
    const sc = this.sc;
    if (sc.otherRate > 0) {
      const target = (now: number) =>
        sc.switchEvery > 0 ? Math.floor(now / (sc.switchEvery * 1000)) % 2 : 0;
      this.poisson(sc.otherRate, (now) => {
        this.submit(target(now), now, sc.otherPrompt, sc.otherAnswer, false);
      });
    }
    this.poisson(sc.oursRate, (now) => this.ours(now));
    if (sc.intervalMs > 0) this.q.push(0, () => this.scrape(0));
    for (let e = this.q.pop(); e !== undefined; e = this.q.pop()) e.f();
    return this.res;
  }

  kick(w: number, now: number): void {
    if (this.busy[w] || !this.engines[w].hasWork()) return;
    const step = this.engines[w].step(now);
    if (step === undefined) return;
    this.busy[w] = true;
    this.q.push(step.endMs, () => this.stepEnd(w, step));
  }

  stepEnd(w: number, step: StepResult): void {
    this.busy[w] = false;
    const now = step.endMs;
    for (const ev of step.events) {
      const p = this.pending[w].get(ev.id);
      if (p === undefined) continue;
      if (ev.kind === "first_token") {
        p.first = now;
        if (p.ticket) this.tracker.onFirstToken(p.ticket, now - p.start);
        if (p.ours && p.start >= WARMUP_MS) this.res.ttfts.push(now - p.start);
      } else if (ev.kind === "done") {
        this.pending[w].delete(ev.id);
        if (p.ticket) {
          this.tracker.onUsage(p.ticket, ev.promptTokens, ev.cachedTokens);
          this.tracker.onDone(p.ticket, {
            elapsedMs: now - p.start,
            completionTokens: ev.completionTokens,
          });
        }
        if (p.ours) this.inflight[w]--;
      }
    }
    this.kick(w, now);
  }

  submit(w: number, now: number, tokens: number, answer: number, ours: boolean): void {
    const prompt = uniquePrompt(this.ids++, tokens);
    const id = this.engines[w].submit({ prompt, maxTokens: answer });
    const ticket = ours ? this.tracker.onDispatch(w, prompt.length / 4, 0) : undefined;
    this.pending[w].set(id, { ours, worker: w, start: now, ticket });
    this.kick(w, now);
  }

  /** One of the router's requests: decide as the router would, then send. */
  ours(now: number): void {
    const cands: Candidate[] = [0, 1].map((i) => ({
      index: i,
      id: `w${i}`,
      inflight: this.inflight[i],
      match: 0,
      cachedChunks: 0,
      capacityChunks: 0,
      load: this.strategy.usesLoad ? this.tracker.load(i) : undefined,
      engine: this.mode === "off" ? undefined : this.views[i],
    }));
    const d = this.strategy.pick({
      candidates: cands,
      requestChunks: this.sc.oursPrompt * 4 / 32,
      chunkSize: 32,
      rng: this.rng,
      now,
    })!;
    const w = d.candidate.index;
    this.inflight[w]++;
    if (now >= WARMUP_MS) {
      this.res.total++;
      if (w === 0) this.res.toEngine0++;
    }
    this.submit(w, now, this.sc.oursPrompt, this.sc.oursAnswer, true);
  }

  /** What a scrape at `now` would read (the figures then lag until the next one). */
  scrape(now: number): void {
    for (let i = 0; i < 2; i++) {
      const s = this.engines[i].stats();
      const figures: EngineFigures = {
        promptTokens: s.promptTokensTotal,
        requests: s.requestsFinished,
        prefixCacheHits: s.prefixCacheHits,
        prefixCacheQueries: s.prefixCacheQueries,
      };
      this.views[i] = {
        running: s.running,
        waiting: s.waiting,
        kvUsage: s.usage,
        // What the scraper derives from the engine's counters (engine_scraper.ts).
        queuedRequestTokens: this.mode === "full" ? queuedRequestTokens(figures) : undefined,
        at: now,
        maxAgeMs: 3 * this.sc.intervalMs + 2000,
      };
    }
    const next = now + this.sc.intervalMs;
    if (next < this.endMs) this.q.push(next, () => this.scrape(next));
  }

  /** Poisson arrivals at `rate` per second until the end, calling `f` at each. */
  poisson(rate: number, f: (now: number) => void): void {
    const gap = () => -Math.log(1 - this.arrivals.next()) * 1000 / rate;
    const next = (now: number) => {
      f(now);
      const t = now + gap();
      if (t < this.endMs) this.q.push(t, () => next(t));
    };
    const t0 = gap();
    this.q.push(t0, () => next(t0));
  }
}

/** The flags (the help lists them from here). */
export const FLAGS = {
  seeds: { type: "string", value: "N", default: "10", help: "runs per cell, seeds 1..N" },
  interval: { type: "string", value: "MS", default: "1000", help: "scrape interval, ms" },
  seconds: {
    type: "string",
    value: "S",
    default: "120",
    help: "virtual seconds per run (the first 10 not counted)",
  },
  "other-rate": {
    type: "string",
    value: "R",
    default: "2.2",
    help: "the other client's requests per second to engine 0 (4000-token prompts)",
  },
  "ours-rate": {
    type: "string",
    value: "R",
    default: "3",
    help: "the router's requests per second (1000-token prompts)",
  },
  "switch-every": {
    type: "string",
    value: "S",
    default: "0",
    help: "the other client moves to the other engine every S seconds; 0 = never",
  },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagTable;

const USAGE = `Usage: deno run -A bench/engine_signals.ts [options]

Engine signals in virtual time: leastloaded and costaware with the engines' scraped queues off,
basic and full, on two a100-7b engines one of which another client loads.

Options:
${flagHelp(FLAGS)}`;

function main(): number {
  let values;
  try {
    values = parseFlags(FLAGS, Deno.args);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const sc: Scenario = {
    seconds: Number(values.seconds),
    otherRate: Number(values["other-rate"]),
    otherPrompt: 4000,
    otherAnswer: 32,
    oursRate: Number(values["ours-rate"]),
    oursPrompt: 1000,
    oursAnswer: 64,
    intervalMs: Number(values.interval),
    switchEvery: Number(values["switch-every"]),
  };
  const seeds = Number(values.seeds);
  console.log(
    `a100-7b × 2; other client → engine 0${
      sc.switchEvery > 0 ? `, moving to the other engine every ${sc.switchEvery} s` : ""
    }: ${sc.otherRate}/s × ${sc.otherPrompt} tokens; ` +
      `router: ${sc.oursRate}/s × ${sc.oursPrompt} tokens; scrape every ${sc.intervalMs} ms; ` +
      `${sc.seconds} s per run (first 10 s not counted), seeds 1..${seeds}`,
  );
  console.log("strategy      signals  p50 ms   p90 ms   mean ms  to engine 0");
  for (const name of ["leastloaded", "costaware"]) {
    // leastloaded reads only the queue depth: its `full` would repeat `basic`.
    const modes = name === "costaware"
      ? ["off", "basic", "full"] as const
      : ["off", "basic"] as const;
    for (const mode of modes) {
      let p50 = 0, p90 = 0, mean = 0, share = 0;
      for (let seed = 1; seed <= seeds; seed++) {
        const strategy = createStrategy(name, { minMatchChunks: 2, saturationInflight: 8 });
        const r = new Run(strategy, mode, sc, seed).go();
        const sorted = [...r.ttfts].sort((a, b) => a - b);
        p50 += percentile(sorted, 50) / seeds;
        p90 += percentile(sorted, 90) / seeds;
        mean += sorted.reduce((a, b) => a + b, 0) / sorted.length / seeds;
        share += r.toEngine0 / r.total / seeds;
      }
      console.log(
        `${name.padEnd(13)} ${mode.padEnd(8)} ${p50.toFixed(1).padStart(6)}` +
          `   ${p90.toFixed(1).padStart(6)}   ${mean.toFixed(1).padStart(7)}  ${
            (share * 100).toFixed(1)
          }%`,
      );
    }
  }
  return 0;
}

if (import.meta.main) Deno.exit(main());
