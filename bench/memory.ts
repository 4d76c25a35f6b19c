/**
 * Memory bound of the prefix index: routes 1 000 000 distinct 6 KB prompts across 16 workers
 * through the routing step the router runs (`chunkHashes` → `decide` with prefixaware →
 * `recordDecision`; no HTTP) and reports RSS, V8 heap and off-heap (ArrayBuffer) memory before and
 * after, the chunks held, and the measured bytes per held chunk.
 *
 * Budget: the router's default `kv_budget` is 0 (unbounded), which would grow without end under
 * this load. The bench gives every worker the budget a deployment of the simulated a100-7b engine
 * should configure: its KV capacity in tokens (56 000 blocks × 16 = 896 000) × 4 bytes of text per
 * token ÷ 32-byte chunks = 112 000 chunks. A chunk costs 8 bytes of hash on its edge plus its
 * share of the node that holds the edge (see docs/performance.md for the measured figure).
 *
 * Prompts: one of 16 shared 1 KB system prompts, then a 5 KB user turn that starts with a unique
 * request number, so every prompt is distinct and shares only its system prompt with others.
 * `--scenario last-chunk` is the adversarial shape for node overhead: prompts that differ only in
 * their last chunk, so each insert adds a one-chunk leaf.
 *
 * Usage: deno run -A --v8-flags=--expose-gc bench/memory.ts [--prompts 1000000] [--workers 16]
 *          [--budget 112000] [--scenario distinct|last-chunk]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { chunkHashes } from "../src/prefix/chunker.ts";
import { RadixTree } from "../src/prefix/radix_tree.ts";
import { decide, recordDecision, type RouteTarget } from "../src/router/select.ts";
import { getProfile } from "../src/sim/profiles.ts";
import { PrefixAwareStrategy } from "../src/strategies/prefix_aware.ts";
import { SeededRng } from "../src/util/rng.ts";

const CHUNK = 32;

/**
 * Per-worker `kv_budget` in chunks for a worker running the simulated a100-7b engine: KV capacity
 * in tokens × bytes of text per token ÷ bytes per chunk (112 000 for 32-byte chunks).
 */
export function a100BudgetChunks(chunkSize = CHUNK): number {
  const p = getProfile("a100-7b").params;
  return Math.floor((p.capacityBlocks * p.blockSize * p.bytesPerToken) / chunkSize);
}

const MiB = 1024 * 1024;

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

function mem() {
  gc();
  const m = Deno.memoryUsage();
  return { rss: m.rss, heapTotal: m.heapTotal, heap: m.heapUsed, external: m.external };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      prompts: { type: "string", default: "1000000" },
      workers: { type: "string", default: "16" },
      budget: { type: "string", default: String(a100BudgetChunks()) },
      scenario: { type: "string", default: "distinct" },
      out: { type: "string" },
    },
    strict: true,
  });
  const prompts = Number(values.prompts);
  const workers = Number(values.workers);
  const budget = Number(values.budget);
  const scenario = values.scenario!;
  if (scenario !== "distinct" && scenario !== "last-chunk") {
    throw new Error(`--scenario must be distinct or last-chunk, got ${scenario}`);
  }
  if (!(globalThis as { gc?: unknown }).gc) {
    console.error("note: run with --v8-flags=--expose-gc for figures after a full collection");
  }

  const rng = new SeededRng(1);
  const words = ["the", "cache", "router", "prefix", "token", "worker", "kv", "block", "decode"];
  const text = (bytes: number) => {
    let s = "";
    while (s.length < bytes) s += words[rng.int(words.length)] + " ";
    return s.slice(0, bytes);
  };
  const systems = Array.from({ length: 16 }, () => text(1024));
  // Unique user turns are slices of one long text behind a unique number: cheap to build.
  const corpus = text(4 * MiB);
  const userBytes = 5 * 1024;
  const lastChunkBase = systems[0] + text(6 * 1024 - 1024 - CHUNK);

  const prompt = (n: number): string => {
    if (scenario === "last-chunk") {
      // Same 6 KB - 32 B everywhere, then a unique final 32-byte chunk.
      return lastChunkBase + `#${n}`.padEnd(CHUNK, ".");
    }
    const head = `request ${n}: `;
    const at = (n * 7919) % (corpus.length - userBytes);
    return systems[n & 15] + head + corpus.slice(at, at + userBytes - head.length);
  };

  const strategy = new PrefixAwareStrategy({ minMatchChunks: 2, saturationInflight: 8 });
  const pickRng = new SeededRng(7);
  // In-flight counts as a live router would see them: the last INFLIGHT picks are still running,
  // so a worker that takes many requests in a row looks busy and the saturation valve works.
  const targets: { -readonly [K in keyof RouteTarget]: RouteTarget[K] }[] = Array.from(
    { length: workers },
    (_, index) => ({
      index,
      id: `w${index + 1}`,
      prefix: new RadixTree({ maxChunks: budget, chained: true }),
      capacityChunks: budget,
      inflight: 0,
    }),
  );
  const INFLIGHT = 32;
  const running = new Int32Array(INFLIGHT).fill(-1);

  const before = mem();
  const t0 = performance.now();
  let matched = 0;
  let lastReport = t0;
  for (let n = 0; n < prompts; n++) {
    const hashes = chunkHashes(prompt(n), CHUNK);
    const d = decide({ strategy, targets, hashes, chunkSize: CHUNK, rng: pickRng, now: n })!;
    const chosen = targets[d.candidate.index];
    recordDecision(chosen, hashes);
    matched += d.candidate.match;
    const slot = n % INFLIGHT;
    if (running[slot] >= 0) targets[running[slot]].inflight--;
    running[slot] = chosen.index;
    chosen.inflight++;
    if ((n & 0xffff) === 0 && performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      console.error(
        `${n} prompts, ${((n / (lastReport - t0)) * 1000).toFixed(0)}/s, ` +
          `rss ${(Deno.memoryUsage().rss / MiB).toFixed(0)} MiB`,
      );
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const after = mem();

  let chunks = 0;
  let terminals = 0;
  let evictions = 0;
  let overBudget = 0;
  let minChunks = Infinity;
  let maxChunks = 0;
  for (const t of targets) {
    const s = t.prefix.stats();
    chunks += s.chunks;
    terminals += s.terminals;
    evictions += s.evictions;
    if (budget > 0 && s.chunks > budget) overBudget++;
    minChunks = Math.min(minChunks, s.chunks);
    maxChunks = Math.max(maxChunks, s.chunks);
  }
  const grown = {
    rss: after.rss - before.rss,
    heap: after.heap - before.heap,
    external: after.external - before.external,
  };
  const mib = (b: number) => (b / MiB).toFixed(1);
  const perChunk = (grown.heap + grown.external) / Math.max(1, chunks);
  const md = [
    `Scenario: ${scenario}; ${prompts} prompts of 6 KB, ${workers} workers, budget ${budget} ` +
    `chunks per worker (${workers * budget} in all); ${CHUNK}-byte chunks`,
    "",
    "| figure | before | after | growth |",
    "|---|--:|--:|--:|",
    `| RSS MiB | ${mib(before.rss)} | ${mib(after.rss)} | ${mib(grown.rss)} |`,
    `| V8 heap reserved MiB | ${mib(before.heapTotal)} | ${mib(after.heapTotal)} | ` +
    `${mib(after.heapTotal - before.heapTotal)} |`,
    `| V8 heap used MiB | ${mib(before.heap)} | ${mib(after.heap)} | ${mib(grown.heap)} |`,
    `| off-heap (ArrayBuffers) MiB | ${mib(before.external)} | ${mib(after.external)} | ` +
    `${mib(grown.external)} |`,
    "",
    `Held: ${chunks} chunks in ${terminals} sequences, ${minChunks}…${maxChunks} per worker ` +
    `(workers over budget: ${overBudget}); ` +
    `evicted ${evictions} chunks; mean match ${(matched / prompts).toFixed(1)} chunks.`,
    `Live bytes per held chunk (heap + off-heap growth ÷ chunks): ${perChunk.toFixed(1)} B.`,
    `Routing rate: ${(prompts / seconds).toFixed(0)} prompts/s (${seconds.toFixed(1)} s, ` +
    `${((seconds / prompts) * 1e6).toFixed(1)} µs per chunk + decide + record).`,
    `RSS growth ${mib(grown.rss)} MiB: ${
      grown.rss <= 256 * MiB ? "within" : "OVER"
    } the 256 MB bound.`,
    "",
  ].join("\n");
  console.log(md);
  if (values.out) await Deno.writeTextFile(values.out, md);
  if (overBudget > 0 || grown.rss > 256 * MiB) Deno.exitCode = 1;
}

if (import.meta.main) await main();
